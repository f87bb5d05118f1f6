//! The database schema and its versioned migrations.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Each migration
//! runs in its own transaction together with the version bump, so a crash
//! leaves the database at a whole version. Migrations are only ever appended;
//! a database from a newer version of the library is refused rather than
//! silently misread.
//!
//! Columns named `*_sealed` hold values sealed by
//! [`ColumnCipher`](super::encrypted::ColumnCipher); everything else is public
//! metadata (addresses, public keys, timestamps, topics) or already ciphertext.

use rusqlite::Connection;

use super::StorageError;

/// The migrations, in order. Never edit one that has shipped: append a new one.
const MIGRATIONS: &[&str] = &[
    // v1: direct messages over Olm.
    r#"
    CREATE TABLE account (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        address TEXT NOT NULL,
        installation_key BLOB NOT NULL,
        account_sealed BLOB NOT NULL,
        association BLOB NOT NULL,
        created_ns INTEGER NOT NULL,
        fallback_rotated_ns INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value_sealed BLOB NOT NULL
    );
    CREATE TABLE installations (
        installation_key BLOB PRIMARY KEY,
        address TEXT NOT NULL,
        bundle BLOB NOT NULL,
        revoked_ns INTEGER,
        checked_ns INTEGER NOT NULL
    );
    CREATE INDEX installations_by_address ON installations(address);
    CREATE TABLE contacts (
        address TEXT PRIMARY KEY,
        refreshed_ns INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        peer_installation BLOB NOT NULL,
        session_id TEXT NOT NULL,
        session_sealed BLOB NOT NULL,
        created_ns INTEGER NOT NULL,
        last_used_ns INTEGER NOT NULL,
        PRIMARY KEY (peer_installation, session_id)
    );
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        peer_address TEXT,
        created_ns INTEGER NOT NULL,
        last_message_ns INTEGER NOT NULL
    );
    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id BLOB NOT NULL UNIQUE,
        conversation_id TEXT NOT NULL,
        sender_address TEXT NOT NULL,
        sender_installation BLOB NOT NULL,
        sent_ns INTEGER NOT NULL,
        received_ns INTEGER NOT NULL,
        content_sealed BLOB NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, sent_ns, seq);
    CREATE TABLE cursors (
        topic TEXT PRIMARY KEY,
        timestamp_ns INTEGER NOT NULL
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        timestamp_ns INTEGER NOT NULL,
        envelope BLOB NOT NULL,
        message_id BLOB,
        created_ns INTEGER NOT NULL
    );
    CREATE TABLE processed_envelopes (
        digest BLOB PRIMARY KEY,
        topic TEXT NOT NULL,
        timestamp_ns INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT,
        processed_ns INTEGER NOT NULL
    );
    "#,
    // v2: groups (issue 5).
    r#"
    CREATE TABLE groups (
        id BLOB PRIMARY KEY,
        created_ns INTEGER NOT NULL
    );
    CREATE TABLE group_log (
        group_id BLOB NOT NULL,
        hash BLOB NOT NULL,
        change_sealed BLOB NOT NULL,
        PRIMARY KEY (group_id, hash)
    );
    CREATE TABLE group_outbound (
        group_id BLOB PRIMARY KEY,
        session_id TEXT NOT NULL,
        session_sealed BLOB NOT NULL,
        created_ns INTEGER NOT NULL,
        sent INTEGER NOT NULL,
        rotate INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE group_shared (
        group_id BLOB NOT NULL,
        session_id TEXT NOT NULL,
        installation BLOB NOT NULL,
        key_sealed BLOB NOT NULL,
        PRIMARY KEY (group_id, session_id, installation)
    );
    CREATE TABLE group_inbound (
        group_id BLOB NOT NULL,
        sender_installation BLOB NOT NULL,
        session_id TEXT NOT NULL,
        sender_address TEXT NOT NULL,
        session_sealed BLOB NOT NULL,
        PRIMARY KEY (group_id, sender_installation, session_id)
    );
    CREATE TABLE group_pending (
        digest BLOB PRIMARY KEY,
        group_id BLOB NOT NULL,
        sender_installation BLOB NOT NULL,
        session_id TEXT NOT NULL,
        envelope BLOB NOT NULL,
        received_ns INTEGER NOT NULL
    );
    CREATE TABLE group_inbox (
        id BLOB PRIMARY KEY,
        sender_address TEXT NOT NULL,
        sender_installation BLOB NOT NULL,
        payload_sealed BLOB NOT NULL,
        received_ns INTEGER NOT NULL
    );
    "#,
    // v3: XMTP V1/V2 conversations (issue 10). The identity's private keys
    // live in `secrets`; each V2 conversation's invitation (its key material)
    // is sealed here. Their messages go to `messages`, their conversations to
    // `conversations` (kinds `v2` and `v1`).
    r#"
    CREATE TABLE v2_conversations (
        topic TEXT PRIMARY KEY,
        peer_address TEXT NOT NULL,
        context_id TEXT,
        created_ns INTEGER NOT NULL,
        invitation_sealed BLOB NOT NULL
    );
    CREATE INDEX v2_conversations_by_peer ON v2_conversations(peer_address, created_ns);
    "#,
];

/// The schema version this library writes.
pub(crate) const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database up to [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StorageError> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(StorageError::NewerSchema {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as u32 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::debug!(version, "applied storage migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_are_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(StorageError::NewerSchema { .. })
        ));
    }
}
