//! Encrypted local storage: SQLite (bundled) with sealed secret columns.
//!
//! One [`Storage`] holds one connection behind a mutex. Every read and write
//! goes through a [`StorageTx`], a transaction that commits only when the
//! closure given to [`Storage::transaction`] returns `Ok`, so that a ratchet
//! step and the message it produced (an outbox row, a stored message, the
//! processed-envelope mark, the cursor) are committed together or not at all.
//!
//! Secrets and message bodies are sealed with AES-256-GCM under a key derived
//! from the [`DatabaseKey`] (see [`encrypted`]); the associated data binds each
//! value to its table, column and row.
//!
//! File databases run in WAL mode. [`Storage::transaction`] commits with
//! `synchronous = FULL`: durable before it returns, which every write whose
//! effect then leaves the device needs (a ratchet step and the ciphertext it
//! produced, before the ciphertext is published; keys, before their public
//! halves are uploaded). [`Storage::transaction_relaxed`] skips the fsync for
//! writes that can be redone from the node (processing a received envelope,
//! deleting published outbox rows): a power loss may roll them back, never
//! tear one, and the node still holds the envelopes to process again.

pub mod encrypted;
mod groups;
pub(crate) mod schema;
mod v2;

use std::{path::Path, sync::Mutex};

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use zeroize::Zeroizing;

use encrypted::ColumnCipher;
pub use encrypted::{DatabaseKey, SealError};
pub use groups::{BoundSession, GroupInboxRecord, OutboundGroupRecord, PendingGroupMessage};
pub use v2::V2ConversationRecord;

/// What went wrong in local storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// SQLite reported an error (disk full, file locked, corrupt file...).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A sealed value could not be opened: usually the wrong database key.
    #[error("cannot decrypt stored data ({0}); is this the right database key?")]
    Sealed(#[from] SealError),
    /// The database was written by a newer version of this library.
    #[error("database schema version {found} is newer than this library supports ({supported}); upgrade the library")]
    NewerSchema {
        /// The version found in the file.
        found: u32,
        /// The newest version this library knows.
        supported: u32,
    },
    /// A stored value does not have the expected shape.
    #[error("stored {what} is corrupt")]
    Corrupt {
        /// Which value.
        what: &'static str,
    },
    /// The storage mutex was poisoned by a panic in another thread.
    #[error("storage lock poisoned by an earlier panic; reopen the client")]
    Poisoned,
}

/// The installation's own record.
#[derive(Clone)]
pub struct AccountRecord {
    /// EIP-55 address of the wallet that owns the installation.
    pub address: String,
    /// The installation's Ed25519 signing key (its id).
    pub installation_key: Vec<u8>,
    /// The installation's keys in their pickled form (opened, still secret).
    pub account_pickle: Zeroizing<Vec<u8>>,
    /// The wallet association, encoded `WalletAssociation`.
    pub association: Vec<u8>,
    /// When the installation was created.
    pub created_ns: u64,
    /// When the fallback key was last rotated.
    pub fallback_rotated_ns: u64,
    /// Whether the wallet revoked this installation.
    pub revoked: bool,
}

impl std::fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRecord")
            .field("address", &self.address)
            .field("installation_key", &hex::encode(&self.installation_key))
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// A verified installation of some address (public data only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationRecord {
    /// The installation's Ed25519 signing key.
    pub installation_key: Vec<u8>,
    /// The address whose wallet signed its association.
    pub address: String,
    /// Its encoded `InstallationPublicKeyBundle`.
    pub bundle: Vec<u8>,
    /// When its revocation was signed, if it is revoked.
    pub revoked_ns: Option<u64>,
    /// When this record was last checked against the node.
    pub checked_ns: u64,
}

/// A pickled Olm session with one peer installation.
pub struct SessionRecord {
    /// The peer installation's signing key.
    pub peer_installation: Vec<u8>,
    /// vodozemac's session id.
    pub session_id: String,
    /// The pickled session (opened, still secret).
    pub pickle: Zeroizing<Vec<u8>>,
    /// When it was created.
    pub created_ns: u64,
    /// When it last encrypted or decrypted a message.
    pub last_used_ns: u64,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// Local insertion order (for stable paging).
    pub seq: i64,
    /// The message id shared by every copy of the message.
    pub message_id: Vec<u8>,
    /// The conversation it belongs to.
    pub conversation_id: String,
    /// The sender's address.
    pub sender_address: String,
    /// The sending installation.
    pub sender_installation: Vec<u8>,
    /// Sender's clock.
    pub sent_ns: u64,
    /// Local clock when stored.
    pub received_ns: u64,
    /// Encoded `EncodedContent`.
    pub content: Vec<u8>,
    /// The kind of its conversation (`dm`, `group`, `v2`, `v1`); filled in
    /// when read, ignored when inserted.
    pub conversation_kind: String,
}

/// A stored conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRecord {
    /// Its id (for a direct conversation, the peer's address).
    pub id: String,
    /// `"dm"` (groups will add their own kind).
    pub kind: String,
    /// The peer's address for a direct conversation.
    pub peer_address: Option<String>,
    /// When it was first seen.
    pub created_ns: u64,
    /// Sent time of its newest message.
    pub last_message_ns: u64,
}

/// An envelope waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// Row id, to delete it once published.
    pub id: i64,
    /// Destination topic.
    pub topic: String,
    /// The envelope's timestamp (fixed, so a republish is byte-identical).
    pub timestamp_ns: u64,
    /// The envelope's message bytes.
    pub envelope: Vec<u8>,
    /// The message this envelope carries, if any.
    pub message_id: Option<Vec<u8>>,
}

/// What processing an envelope led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeOutcome {
    /// Decrypted, authenticated and stored (or already known).
    Accepted,
    /// Refused; the reason is recorded.
    Failed(String),
}

/// A processed envelope, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedEnvelope {
    /// sha256(topic || message).
    pub digest: Vec<u8>,
    /// Its topic.
    pub topic: String,
    /// Its timestamp.
    pub timestamp_ns: u64,
    /// What came of it.
    pub outcome: EnvelopeOutcome,
}

/// Which page of a conversation's messages to return.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessagePage {
    /// Only messages sent strictly after this time.
    pub sent_after_ns: Option<u64>,
    /// Only messages sent strictly before this time.
    pub sent_before_ns: Option<u64>,
    /// At most this many (all if `None`).
    pub limit: Option<u32>,
    /// Newest first instead of oldest first.
    pub descending: bool,
}

/// The local database.
pub struct Storage {
    conn: Mutex<Connection>,
    cipher: ColumnCipher,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Storage")
    }
}

fn ns(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn sql_ns(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Storage {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: impl AsRef<Path>, key: &DatabaseKey) -> Result<Self, StorageError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Self::init(conn, key)
    }

    /// An in-memory database, gone when dropped (tests, ephemeral agents).
    pub fn in_memory(key: &DatabaseKey) -> Result<Self, StorageError> {
        Self::init(Connection::open_in_memory()?, key)
    }

    fn init(mut conn: Connection, key: &DatabaseKey) -> Result<Self, StorageError> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&mut conn)?;
        let storage = Self {
            conn: Mutex::new(conn),
            cipher: ColumnCipher::new(key),
        };
        // Fail early, with a clear error, when the key does not match the file.
        storage.transaction(|tx| tx.account().map(|_| ()))?;
        Ok(storage)
    }

    /// The key vodozemac pickles are encrypted under before being sealed.
    pub(crate) fn pickle_key(&self) -> &xmtp_cryptography::SecretKey {
        self.cipher.pickle_key()
    }

    /// Runs `f` in one transaction, committed only if it returns `Ok`. The
    /// commit is durable (fsynced) before this returns: use it for every
    /// write whose effect leaves the device afterwards (a ciphertext to
    /// publish, keys to upload) or cannot be recomputed.
    pub fn transaction<T, E>(&self, f: impl FnOnce(&StorageTx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        self.run(true, f)
    }

    /// Like [`Storage::transaction`], atomic but not fsynced at commit (WAL
    /// with `synchronous = NORMAL`): a power loss may roll back the last
    /// such commits, never part of one. For writes that can be redone from
    /// the node (processing received envelopes, deleting published outbox
    /// rows). The next durable commit makes every earlier one durable too.
    pub fn transaction_relaxed<T, E>(
        &self,
        f: impl FnOnce(&StorageTx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        self.run(false, f)
    }

    fn run<T, E>(
        &self,
        durable: bool,
        f: impl FnOnce(&StorageTx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        let mut conn = self.conn.lock().map_err(|_| StorageError::Poisoned)?;
        if !durable {
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(StorageError::from)?;
        }
        let result = (|| {
            let tx = conn.transaction().map_err(StorageError::from)?;
            let stx = StorageTx {
                tx,
                cipher: &self.cipher,
            };
            let out = f(&stx)?;
            stx.tx.commit().map_err(StorageError::from)?;
            Ok(out)
        })();
        if !durable {
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(StorageError::from)?;
        }
        result
    }
}

/// One open transaction, with typed reads and writes.
pub struct StorageTx<'a> {
    tx: Transaction<'a>,
    cipher: &'a ColumnCipher,
}

impl StorageTx<'_> {
    // ----- account -----

    /// The installation's own record, if one was created.
    pub fn account(&self) -> Result<Option<AccountRecord>, StorageError> {
        let row = self
            .tx
            .query_row(
                "SELECT address, installation_key, account_sealed, association, created_ns, fallback_rotated_ns, revoked FROM account WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, bool>(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((address, installation_key, sealed, association, created, rotated, revoked)) = row
        else {
            return Ok(None);
        };
        let pickle = Zeroizing::new(self.cipher.open(
            "account",
            "account_sealed",
            &installation_key,
            &sealed,
        )?);
        Ok(Some(AccountRecord {
            address,
            installation_key,
            account_pickle: pickle,
            association,
            created_ns: ns(created),
            fallback_rotated_ns: ns(rotated),
            revoked,
        }))
    }

    /// Creates or replaces the installation's own record.
    pub fn save_account(&self, account: &AccountRecord) -> Result<(), StorageError> {
        let sealed = self.cipher.seal(
            "account",
            "account_sealed",
            &account.installation_key,
            &account.account_pickle,
        )?;
        self.tx.execute(
            "INSERT INTO account (id, address, installation_key, account_sealed, association, created_ns, fallback_rotated_ns, revoked)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(id) DO UPDATE SET address = excluded.address, installation_key = excluded.installation_key,
               account_sealed = excluded.account_sealed, association = excluded.association, created_ns = excluded.created_ns,
               fallback_rotated_ns = excluded.fallback_rotated_ns, revoked = excluded.revoked",
            params![
                account.address,
                account.installation_key,
                sealed,
                account.association,
                sql_ns(account.created_ns),
                sql_ns(account.fallback_rotated_ns),
                account.revoked
            ],
        )?;
        Ok(())
    }

    /// Replaces only the pickled keys of the installation (after a key change).
    pub fn update_account_pickle(
        &self,
        installation_key: &[u8],
        pickle: &[u8],
    ) -> Result<(), StorageError> {
        let sealed = self
            .cipher
            .seal("account", "account_sealed", installation_key, pickle)?;
        self.tx.execute(
            "UPDATE account SET account_sealed = ?1 WHERE id = 1 AND installation_key = ?2",
            params![sealed, installation_key],
        )?;
        Ok(())
    }

    /// Records a fallback key rotation.
    pub fn set_fallback_rotated(&self, at_ns: u64) -> Result<(), StorageError> {
        self.tx.execute(
            "UPDATE account SET fallback_rotated_ns = ?1 WHERE id = 1",
            params![sql_ns(at_ns)],
        )?;
        Ok(())
    }

    /// Marks the installation as revoked by its wallet.
    pub fn set_account_revoked(&self) -> Result<(), StorageError> {
        self.tx
            .execute("UPDATE account SET revoked = 1 WHERE id = 1", [])?;
        Ok(())
    }

    // ----- secrets -----

    /// Stores a named secret (sealed).
    pub fn put_secret(&self, name: &str, value: &[u8]) -> Result<(), StorageError> {
        let sealed = self
            .cipher
            .seal("secrets", "value_sealed", name.as_bytes(), value)?;
        self.tx.execute(
            "INSERT INTO secrets (name, value_sealed) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value_sealed = excluded.value_sealed",
            params![name, sealed],
        )?;
        Ok(())
    }

    /// A named secret, if stored.
    pub fn secret(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StorageError> {
        let sealed: Option<Vec<u8>> = self
            .tx
            .query_row(
                "SELECT value_sealed FROM secrets WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        sealed
            .map(|s| {
                Ok(Zeroizing::new(self.cipher.open(
                    "secrets",
                    "value_sealed",
                    name.as_bytes(),
                    &s,
                )?))
            })
            .transpose()
    }

    // ----- installations and contacts -----

    /// Replaces what is known of `address`'s installations by `installations`
    /// (all verified by the caller) and stamps the refresh time.
    pub fn replace_installations(
        &self,
        address: &str,
        installations: &[InstallationRecord],
        refreshed_ns: u64,
    ) -> Result<(), StorageError> {
        self.tx
            .execute("DELETE FROM installations WHERE address = ?1", [address])?;
        for i in installations {
            self.upsert_installation(i)?;
        }
        self.tx.execute(
            "INSERT INTO contacts (address, refreshed_ns) VALUES (?1, ?2) ON CONFLICT(address) DO UPDATE SET refreshed_ns = excluded.refreshed_ns",
            params![address, sql_ns(refreshed_ns)],
        )?;
        Ok(())
    }

    /// Inserts or replaces one verified installation.
    pub fn upsert_installation(&self, i: &InstallationRecord) -> Result<(), StorageError> {
        self.tx.execute(
            "INSERT INTO installations (installation_key, address, bundle, revoked_ns, checked_ns) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(installation_key) DO UPDATE SET address = excluded.address, bundle = excluded.bundle,
               revoked_ns = excluded.revoked_ns, checked_ns = excluded.checked_ns",
            params![i.installation_key, i.address, i.bundle, i.revoked_ns.map(sql_ns), sql_ns(i.checked_ns)],
        )?;
        Ok(())
    }

    /// When `address`'s installations were last fetched and verified.
    pub fn contact_refreshed(&self, address: &str) -> Result<Option<u64>, StorageError> {
        Ok(self
            .tx
            .query_row(
                "SELECT refreshed_ns FROM contacts WHERE address = ?1",
                [address],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(ns))
    }

    /// The known installations of `address` (revoked ones included, flagged).
    pub fn installations_of(&self, address: &str) -> Result<Vec<InstallationRecord>, StorageError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT installation_key, address, bundle, revoked_ns, checked_ns FROM installations WHERE address = ?1 ORDER BY installation_key",
        )?;
        let rows = stmt.query_map([address], installation_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One known installation.
    pub fn installation(
        &self,
        installation_key: &[u8],
    ) -> Result<Option<InstallationRecord>, StorageError> {
        Ok(self
            .tx
            .query_row(
                "SELECT installation_key, address, bundle, revoked_ns, checked_ns FROM installations WHERE installation_key = ?1",
                [installation_key],
                installation_row,
            )
            .optional()?)
    }

    // ----- sessions -----

    /// The sessions with a peer installation, most recently used first.
    pub fn sessions_with(
        &self,
        peer_installation: &[u8],
    ) -> Result<Vec<SessionRecord>, StorageError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT session_id, session_sealed, created_ns, last_used_ns FROM sessions WHERE peer_installation = ?1
             ORDER BY last_used_ns DESC, created_ns DESC",
        )?;
        let rows = stmt.query_map([peer_installation], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (session_id, sealed, created, used) = row?;
            let pickle = self.cipher.open(
                "sessions",
                "session_sealed",
                &session_row_key(peer_installation, &session_id),
                &sealed,
            )?;
            out.push(SessionRecord {
                peer_installation: peer_installation.to_vec(),
                session_id,
                pickle: Zeroizing::new(pickle),
                created_ns: ns(created),
                last_used_ns: ns(used),
            });
        }
        Ok(out)
    }

    /// Creates or replaces a session.
    pub fn save_session(&self, s: &SessionRecord) -> Result<(), StorageError> {
        let sealed = self.cipher.seal(
            "sessions",
            "session_sealed",
            &session_row_key(&s.peer_installation, &s.session_id),
            &s.pickle,
        )?;
        self.tx.execute(
            "INSERT INTO sessions (peer_installation, session_id, session_sealed, created_ns, last_used_ns) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(peer_installation, session_id) DO UPDATE SET session_sealed = excluded.session_sealed, last_used_ns = excluded.last_used_ns",
            params![s.peer_installation, s.session_id, sealed, sql_ns(s.created_ns), sql_ns(s.last_used_ns)],
        )?;
        Ok(())
    }

    /// Forgets every session with a peer installation (after its revocation).
    pub fn delete_sessions_with(&self, peer_installation: &[u8]) -> Result<usize, StorageError> {
        Ok(self.tx.execute(
            "DELETE FROM sessions WHERE peer_installation = ?1",
            [peer_installation],
        )?)
    }

    // ----- conversations and messages -----

    /// Creates the conversation if needed and moves its last-message time forward.
    pub fn touch_conversation(
        &self,
        id: &str,
        kind: &str,
        peer_address: Option<&str>,
        message_ns: u64,
        now_ns: u64,
    ) -> Result<(), StorageError> {
        self.tx.execute(
            "INSERT INTO conversations (id, kind, peer_address, created_ns, last_message_ns) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET last_message_ns = max(last_message_ns, excluded.last_message_ns)",
            params![id, kind, peer_address, sql_ns(now_ns), sql_ns(message_ns)],
        )?;
        Ok(())
    }

    /// Stores a message; returns `false` (and changes nothing) if a message
    /// with the same id is already stored.
    pub fn insert_message(&self, m: &MessageRecord) -> Result<bool, StorageError> {
        let sealed = self
            .cipher
            .seal("messages", "content_sealed", &m.message_id, &m.content)?;
        let n = self.tx.execute(
            "INSERT OR IGNORE INTO messages (message_id, conversation_id, sender_address, sender_installation, sent_ns, received_ns, content_sealed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![m.message_id, m.conversation_id, m.sender_address, m.sender_installation, sql_ns(m.sent_ns), sql_ns(m.received_ns), sealed],
        )?;
        Ok(n == 1)
    }

    /// One message by id.
    pub fn message(&self, message_id: &[u8]) -> Result<Option<MessageRecord>, StorageError> {
        let row = self
            .tx
            .query_row(
                &format!("{MESSAGE_COLUMNS} WHERE message_id = ?1"),
                [message_id],
                raw_message_row,
            )
            .optional()?;
        row.map(|r| self.open_message(r)).transpose()
    }

    /// A page of a conversation's messages.
    pub fn messages(
        &self,
        conversation_id: &str,
        page: &MessagePage,
    ) -> Result<Vec<MessageRecord>, StorageError> {
        self.page_of_messages("conversation_id = ?1", conversation_id, page)
    }

    /// A page of the messages of every conversation with `peer_address`
    /// (direct over Olm, XMTP V2 and V1), merged by sent time.
    pub fn messages_with_peer(
        &self,
        peer_address: &str,
        page: &MessagePage,
    ) -> Result<Vec<MessageRecord>, StorageError> {
        self.page_of_messages(
            "conversations.peer_address = ?1 AND conversations.kind != 'group'",
            peer_address,
            page,
        )
    }

    /// A page of the messages that `filter` (over `?1` = `key`) selects.
    fn page_of_messages(
        &self,
        filter: &str,
        key: &str,
        page: &MessagePage,
    ) -> Result<Vec<MessageRecord>, StorageError> {
        let order = if page.descending { "DESC" } else { "ASC" };
        let sql = format!(
            "{MESSAGE_COLUMNS} WHERE {filter} AND sent_ns > ?2 AND sent_ns < ?3 ORDER BY sent_ns {order}, seq {order} LIMIT ?4"
        );
        let mut stmt = self.tx.prepare_cached(&sql)?;
        let after = page.sent_after_ns.map_or(-1, sql_ns);
        let before = page.sent_before_ns.map_or(i64::MAX, sql_ns);
        let limit = page.limit.map_or(-1, i64::from);
        let rows = stmt.query_map(params![key, after, before, limit], raw_message_row)?;
        let raw: Vec<RawMessage> = rows.collect::<Result<_, _>>()?;
        raw.into_iter().map(|r| self.open_message(r)).collect()
    }

    /// Every conversation, most recently active first.
    pub fn conversations(&self) -> Result<Vec<ConversationRecord>, StorageError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT id, kind, peer_address, created_ns, last_message_ns FROM conversations ORDER BY last_message_ns DESC, id",
        )?;
        let rows = stmt.query_map([], conversation_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One conversation.
    pub fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, StorageError> {
        Ok(self
            .tx
            .query_row(
                "SELECT id, kind, peer_address, created_ns, last_message_ns FROM conversations WHERE id = ?1",
                [id],
                conversation_row,
            )
            .optional()?)
    }

    /// The highest message sequence number (0 when there is none).
    pub fn max_message_seq(&self) -> Result<i64, StorageError> {
        Ok(self
            .tx
            .query_row("SELECT coalesce(max(seq), 0) FROM messages", [], |r| {
                r.get(0)
            })?)
    }

    /// Messages stored after sequence number `seq`, in storage order,
    /// optionally of one conversation only. (The unary `+` keeps SQLite on
    /// the `seq` range, so a stream's wake-up costs the new rows only, not a
    /// scan of the whole conversation.)
    pub fn messages_after_seq(
        &self,
        seq: i64,
        conversation_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StorageError> {
        let raw: Vec<RawMessage> = match conversation_id {
            Some(c) => {
                let mut stmt = self.tx.prepare_cached(&format!(
                    "{MESSAGE_COLUMNS} WHERE seq > ?1 AND +conversation_id = ?2 ORDER BY seq LIMIT ?3"
                ))?;
                let rows = stmt.query_map(params![seq, c, limit], raw_message_row)?;
                rows.collect::<Result<_, _>>()?
            }
            None => {
                let mut stmt = self.tx.prepare_cached(&format!(
                    "{MESSAGE_COLUMNS} WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ))?;
                let rows = stmt.query_map(params![seq, limit], raw_message_row)?;
                rows.collect::<Result<_, _>>()?
            }
        };
        raw.into_iter().map(|r| self.open_message(r)).collect()
    }

    /// Number of stored messages.
    pub fn message_count(&self) -> Result<u64, StorageError> {
        Ok(ns(self.tx.query_row(
            "SELECT count(*) FROM messages",
            [],
            |r| r.get(0),
        )?))
    }

    fn open_message(&self, r: RawMessage) -> Result<MessageRecord, StorageError> {
        let content = self.cipher.open(
            "messages",
            "content_sealed",
            &r.message_id,
            &r.content_sealed,
        )?;
        Ok(MessageRecord {
            seq: r.seq,
            message_id: r.message_id,
            conversation_id: r.conversation_id,
            sender_address: r.sender_address,
            sender_installation: r.sender_installation,
            sent_ns: ns(r.sent_ns),
            received_ns: ns(r.received_ns),
            content,
            conversation_kind: r.conversation_kind,
        })
    }

    // ----- cursors -----

    /// The newest envelope timestamp processed on a topic.
    pub fn cursor(&self, topic: &str) -> Result<Option<u64>, StorageError> {
        Ok(self
            .tx
            .query_row(
                "SELECT timestamp_ns FROM cursors WHERE topic = ?1",
                [topic],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(ns))
    }

    /// Moves a topic's cursor forward (never backward).
    pub fn advance_cursor(&self, topic: &str, timestamp_ns: u64) -> Result<(), StorageError> {
        self.tx.execute(
            "INSERT INTO cursors (topic, timestamp_ns) VALUES (?1, ?2)
             ON CONFLICT(topic) DO UPDATE SET timestamp_ns = max(timestamp_ns, excluded.timestamp_ns)",
            params![topic, sql_ns(timestamp_ns)],
        )?;
        Ok(())
    }

    // ----- outbox -----

    /// Queues an envelope for publishing; returns its row id.
    pub fn push_outbox(
        &self,
        topic: &str,
        timestamp_ns: u64,
        envelope: &[u8],
        message_id: Option<&[u8]>,
        now_ns: u64,
    ) -> Result<i64, StorageError> {
        self.tx.execute(
            "INSERT INTO outbox (topic, timestamp_ns, envelope, message_id, created_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![topic, sql_ns(timestamp_ns), envelope, message_id, sql_ns(now_ns)],
        )?;
        Ok(self.tx.last_insert_rowid())
    }

    /// The oldest queued envelopes, at most `limit`.
    pub fn outbox(&self, limit: u32) -> Result<Vec<OutboxRecord>, StorageError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT id, topic, timestamp_ns, envelope, message_id FROM outbox ORDER BY id LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(OutboxRecord {
                id: r.get(0)?,
                topic: r.get(1)?,
                timestamp_ns: ns(r.get(2)?),
                envelope: r.get(3)?,
                message_id: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Number of queued envelopes.
    pub fn outbox_count(&self) -> Result<u64, StorageError> {
        Ok(ns(self.tx.query_row(
            "SELECT count(*) FROM outbox",
            [],
            |r| r.get(0),
        )?))
    }

    /// Removes published envelopes from the outbox.
    pub fn delete_outbox(&self, ids: &[i64]) -> Result<(), StorageError> {
        let mut stmt = self.tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
        for id in ids {
            stmt.execute([id])?;
        }
        Ok(())
    }

    // ----- processed envelopes -----

    /// Whether an envelope with this digest was processed already.
    pub fn is_processed(&self, digest: &[u8]) -> Result<bool, StorageError> {
        Ok(self
            .tx
            .query_row(
                "SELECT 1 FROM processed_envelopes WHERE digest = ?1",
                [digest],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Records the outcome of processing an envelope (first outcome wins).
    pub fn mark_processed(&self, p: &ProcessedEnvelope, now_ns: u64) -> Result<(), StorageError> {
        let (outcome, detail) = match &p.outcome {
            EnvelopeOutcome::Accepted => ("accepted", None),
            EnvelopeOutcome::Failed(d) => ("failed", Some(d.as_str())),
        };
        self.tx.execute(
            "INSERT OR IGNORE INTO processed_envelopes (digest, topic, timestamp_ns, outcome, detail, processed_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![p.digest, p.topic, sql_ns(p.timestamp_ns), outcome, detail, sql_ns(now_ns)],
        )?;
        Ok(())
    }

    /// Processed envelopes that were refused, oldest first.
    pub fn failed_envelopes(&self) -> Result<Vec<ProcessedEnvelope>, StorageError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT digest, topic, timestamp_ns, detail FROM processed_envelopes WHERE outcome = 'failed' ORDER BY processed_ns, rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ProcessedEnvelope {
                digest: r.get(0)?,
                topic: r.get(1)?,
                timestamp_ns: ns(r.get(2)?),
                outcome: EnvelopeOutcome::Failed(
                    r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                ),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Message columns, with the kind of the message's conversation (no column
/// name is shared by the two tables, so filters need no qualifier).
const MESSAGE_COLUMNS: &str = "SELECT seq, message_id, conversation_id, sender_address, sender_installation, sent_ns, received_ns, content_sealed, coalesce(conversations.kind, 'dm') FROM messages LEFT JOIN conversations ON conversations.id = messages.conversation_id";

struct RawMessage {
    seq: i64,
    message_id: Vec<u8>,
    conversation_id: String,
    sender_address: String,
    sender_installation: Vec<u8>,
    sent_ns: i64,
    received_ns: i64,
    content_sealed: Vec<u8>,
    conversation_kind: String,
}

fn raw_message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawMessage> {
    Ok(RawMessage {
        seq: r.get(0)?,
        message_id: r.get(1)?,
        conversation_id: r.get(2)?,
        sender_address: r.get(3)?,
        sender_installation: r.get(4)?,
        sent_ns: r.get(5)?,
        received_ns: r.get(6)?,
        content_sealed: r.get(7)?,
        conversation_kind: r.get(8)?,
    })
}

fn conversation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationRecord> {
    Ok(ConversationRecord {
        id: r.get(0)?,
        kind: r.get(1)?,
        peer_address: r.get(2)?,
        created_ns: ns(r.get(3)?),
        last_message_ns: ns(r.get(4)?),
    })
}

fn installation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InstallationRecord> {
    Ok(InstallationRecord {
        installation_key: r.get(0)?,
        address: r.get(1)?,
        bundle: r.get(2)?,
        revoked_ns: r.get::<_, Option<i64>>(3)?.map(ns),
        checked_ns: ns(r.get(4)?),
    })
}

fn session_row_key(peer: &[u8], session_id: &str) -> Vec<u8> {
    let mut k = peer.to_vec();
    k.push(0);
    k.extend_from_slice(session_id.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u8, conv: &str, sent: u64, text: &[u8]) -> MessageRecord {
        MessageRecord {
            seq: 0,
            message_id: vec![id; 16],
            conversation_id: conv.into(),
            sender_address: "0xabc".into(),
            sender_installation: vec![1; 32],
            sent_ns: sent,
            received_ns: sent + 1,
            content: text.to_vec(),
            conversation_kind: "dm".into(),
        }
    }

    #[test]
    fn duplicate_message_id_is_stored_once() {
        let s = Storage::in_memory(&DatabaseKey::random()).unwrap();
        s.transaction(|tx| {
            assert!(tx.insert_message(&message(1, "c", 10, b"a"))?);
            assert!(!tx.insert_message(&message(1, "c", 11, b"b"))?);
            Ok::<_, StorageError>(())
        })
        .unwrap();
        let msgs = s
            .transaction(|tx| tx.messages("c", &MessagePage::default()))
            .unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].content, b"a");
    }

    #[test]
    fn message_pages_follow_sent_time_in_both_directions() {
        let s = Storage::in_memory(&DatabaseKey::random()).unwrap();
        s.transaction(|tx| {
            for i in 0..10u8 {
                tx.insert_message(&message(i, "c", 100 + u64::from(i), &[i]))?;
            }
            tx.insert_message(&message(99, "other", 5, b"x"))?;
            Ok::<_, StorageError>(())
        })
        .unwrap();
        let page = MessagePage {
            sent_after_ns: Some(102),
            limit: Some(3),
            ..Default::default()
        };
        let asc = s.transaction(|tx| tx.messages("c", &page)).unwrap();
        assert_eq!(
            asc.iter().map(|m| m.sent_ns).collect::<Vec<_>>(),
            vec![103, 104, 105]
        );
        let page = MessagePage {
            sent_before_ns: Some(105),
            limit: Some(2),
            descending: true,
            ..Default::default()
        };
        let desc = s.transaction(|tx| tx.messages("c", &page)).unwrap();
        assert_eq!(
            desc.iter().map(|m| m.sent_ns).collect::<Vec<_>>(),
            vec![104, 103]
        );
    }

    #[test]
    fn failed_transaction_commits_nothing() {
        let s = Storage::in_memory(&DatabaseKey::random()).unwrap();
        let r: Result<(), StorageError> = s.transaction(|tx| {
            tx.insert_message(&message(1, "c", 10, b"a"))?;
            tx.push_outbox("/t", 1, b"env", None, 1)?;
            Err(StorageError::Corrupt { what: "test" })
        });
        assert!(r.is_err());
        assert_eq!(s.transaction(|tx| tx.message_count()).unwrap(), 0);
        assert!(s.transaction(|tx| tx.outbox(10)).unwrap().is_empty());
    }

    #[test]
    fn relaxed_transactions_are_atomic_and_restore_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path().join("db.sqlite"), &DatabaseKey::random()).unwrap();
        let failed: Result<(), StorageError> = s.transaction_relaxed(|tx| {
            tx.insert_message(&message(1, "c", 10, b"a"))?;
            Err(StorageError::Corrupt { what: "test" })
        });
        assert!(failed.is_err());
        assert_eq!(s.transaction(|tx| tx.message_count()).unwrap(), 0);
        s.transaction_relaxed(|tx| tx.insert_message(&message(2, "c", 11, b"b")))
            .unwrap();
        assert_eq!(s.transaction(|tx| tx.message_count()).unwrap(), 1);
        let conn = s.conn.lock().unwrap();
        let mode: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, 2, "back to FULL after a relaxed commit");
    }

    #[test]
    fn cursor_only_moves_forward() {
        let s = Storage::in_memory(&DatabaseKey::random()).unwrap();
        s.transaction(|tx| {
            tx.advance_cursor("/t", 50)?;
            tx.advance_cursor("/t", 40)?;
            Ok::<_, StorageError>(())
        })
        .unwrap();
        assert_eq!(s.transaction(|tx| tx.cursor("/t")).unwrap(), Some(50));
    }

    #[test]
    fn wrong_database_key_is_refused_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let key = DatabaseKey::random();
        let s = Storage::open(&path, &key).unwrap();
        s.transaction(|tx| {
            tx.save_account(&AccountRecord {
                address: "0xabc".into(),
                installation_key: vec![3; 32],
                account_pickle: Zeroizing::new(b"pickle".to_vec()),
                association: vec![],
                created_ns: 1,
                fallback_rotated_ns: 1,
                revoked: false,
            })
        })
        .unwrap();
        drop(s);
        assert!(matches!(
            Storage::open(&path, &DatabaseKey::random()),
            Err(StorageError::Sealed(_))
        ));
        let again = Storage::open(&path, &key).unwrap();
        let acc = again.transaction(|tx| tx.account()).unwrap().unwrap();
        assert_eq!(acc.account_pickle.as_slice(), b"pickle");
    }

    #[test]
    fn sessions_are_sealed_per_row() {
        let s = Storage::in_memory(&DatabaseKey::random()).unwrap();
        s.transaction(|tx| {
            tx.save_session(&SessionRecord {
                peer_installation: vec![1; 32],
                session_id: "s1".into(),
                pickle: Zeroizing::new(b"p1".to_vec()),
                created_ns: 1,
                last_used_ns: 1,
            })?;
            // Move s1's sealed value to another row: it must no longer open.
            tx.tx.execute(
                "INSERT INTO sessions (peer_installation, session_id, session_sealed, created_ns, last_used_ns)
                 SELECT ?1, 's2', session_sealed, 2, 2 FROM sessions WHERE session_id = 's1'",
                [vec![2u8; 32]],
            )?;
            Ok::<_, StorageError>(())
        })
        .unwrap();
        let ok = s.transaction(|tx| tx.sessions_with(&[1; 32])).unwrap();
        assert_eq!(ok[0].pickle.as_slice(), b"p1");
        assert!(matches!(
            s.transaction(|tx| tx.sessions_with(&[2; 32])),
            Err(StorageError::Sealed(_))
        ));
    }
}
