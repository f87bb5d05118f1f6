//! The embedded SQLite [`Store`]: one file (or `:memory:`), one writer thread
//! with group commit, and a pool of read connections.
//!
//! Construction:
//! - **Durability.** The file is in WAL mode. A commit appends the
//!   transaction to the WAL with `write()` before the publisher is
//!   acknowledged, so once acknowledged it is in the operating system's page
//!   cache and survives the node being killed (`kill -9`, a panic, an OOM
//!   kill). [`SqliteSync::Normal`] (the default, `synchronous=NORMAL`) stops
//!   there: an operating-system crash or power cut can lose the last
//!   acknowledged commits (the database stays consistent). With
//!   [`SqliteSync::Full`] (`synchronous=FULL`) every commit also fsyncs the
//!   WAL, which survives power cuts too but costs an fsync per group commit
//!   (about 2 ms on the development VM, 8 ms at p99), and so caps publish
//!   throughput at roughly `concurrent publishers / fsync time`.
//! - **Group commit.** Every write goes through one thread that owns the write
//!   connection. It takes all the publishes queued while the previous commit
//!   was running and stores them in one transaction, then announces the new
//!   envelopes to the [`CommitListener`] and only then acknowledges each
//!   publisher. One fsync is shared by a whole batch, which is what makes
//!   thousands of small publishes per second possible.
//! - **Checkpoints** run on their own thread and connection
//!   (`wal_checkpoint(PASSIVE)` every [`CHECKPOINT_EVERY`], automatic
//!   checkpoints being off on the writer), so the writer never stalls
//!   copying the WAL into the database and fsyncing it while publishers wait.
//! - **Reads** run on `spawn_blocking` threads with connections from a small
//!   pool (WAL lets them read while the writer writes). An in-memory database
//!   exists on one connection only, so there reads go through the writer.
//!
//! Sender times are stored with [`ordered_i64`] so that SQLite's signed
//! integers sort like the `u64` they come from.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    thread,
};

use async_trait::async_trait;
use prost::Message;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{mpsc, oneshot};
use xmtp_proto::xmtp::{
    message_api::v1::Envelope,
    v3::message_contents::{InstallationPublicKeyBundle, SignedCurve25519Key, WalletRevocation},
};

use super::{
    decode, ordered_i64, with_digests, Claimed, CommitListener, Direction, EnvelopePage,
    EnvelopeQuery, InstallationRecord, PublishOutcome, RevocationRecord, Store, StoreError,
    StoredInstallations, DIGEST_LEN,
};

/// Most publish requests folded into one transaction.
const MAX_GROUP: usize = 1024;
/// Queued writes before publishers wait (back-pressure).
const QUEUE_DEPTH: usize = 8192;
/// Idle read connections kept open.
const READ_POOL: usize = 8;
/// Interval between background WAL checkpoints.
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);
/// Schema version written to `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS envelopes (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    sender_time INTEGER NOT NULL,
    digest BLOB NOT NULL,
    message BLOB NOT NULL,
    UNIQUE (topic, sender_time, digest)
);
CREATE TABLE IF NOT EXISTS installations (
    seq INTEGER PRIMARY KEY,
    address_key TEXT NOT NULL,
    installation_key BLOB NOT NULL,
    bundle BLOB NOT NULL,
    UNIQUE (address_key, installation_key)
);
CREATE INDEX IF NOT EXISTS installations_by_key ON installations (installation_key, seq);
CREATE TABLE IF NOT EXISTS one_time_keys (
    id INTEGER PRIMARY KEY,
    installation_key BLOB NOT NULL,
    key BLOB NOT NULL,
    signature BLOB NOT NULL,
    claimed INTEGER NOT NULL DEFAULT 0,
    UNIQUE (installation_key, key)
);
CREATE INDEX IF NOT EXISTS one_time_keys_unclaimed ON one_time_keys (installation_key, claimed, id);
CREATE TABLE IF NOT EXISTS revocations (
    address_key TEXT NOT NULL,
    installation_key BLOB NOT NULL,
    revocation BLOB NOT NULL,
    PRIMARY KEY (address_key, installation_key)
);
";

type WriteFn = Box<dyn FnOnce(&mut Connection) + Send>;

/// A publish waiting for the writer: envelopes with their digests.
struct PendingPublish {
    envelopes: Vec<(Envelope, [u8; DIGEST_LEN])>,
    reply: oneshot::Sender<Result<PublishOutcome, StoreError>>,
}

enum Job {
    Publish(PendingPublish),
    Exec(WriteFn),
}

/// How hard a commit works to be durable (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqliteSync {
    /// `synchronous=NORMAL`: durable when the process dies, not when the
    /// machine does.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit fsyncs the WAL.
    Full,
}

impl SqliteSync {
    fn pragma(self) -> &'static str {
        match self {
            SqliteSync::Normal => "PRAGMA synchronous=NORMAL;",
            SqliteSync::Full => "PRAGMA synchronous=FULL;",
        }
    }
}

/// Where reads run.
enum Readers {
    /// A file database: pooled read-only connections.
    Pool {
        path: PathBuf,
        idle: Mutex<Vec<Connection>>,
    },
    /// An in-memory database: through the writer's connection.
    Writer,
}

/// The SQLite store. Cheap to share behind an `Arc`; dropping the last
/// reference stops the writer thread after it has finished its queue.
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    readers: Arc<Readers>,
    /// Dropping it stops the checkpoint thread.
    _checkpointer: Option<std::sync::mpsc::Sender<()>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.readers.as_ref() {
            Readers::Pool { path, .. } => path.display().to_string(),
            Readers::Writer => ":memory:".to_owned(),
        };
        f.debug_struct("SqliteStore")
            .field("database", &kind)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, or an in-memory one
    /// for `":memory:"`, with the default durability, and starts its writer
    /// thread. New envelopes are announced to `listener`.
    pub fn open(path: &str, listener: Arc<dyn CommitListener>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteSync::default(), listener)
    }

    /// [`SqliteStore::open`] with an explicit durability.
    pub fn open_with(
        path: &str,
        sync: SqliteSync,
        listener: Arc<dyn CommitListener>,
    ) -> Result<Self, StoreError> {
        let (conn, readers) = if path == ":memory:" {
            (Connection::open_in_memory()?, Readers::Writer)
        } else {
            let conn = Connection::open(path)?;
            let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Database(format!(
                    "could not enable WAL (got {mode})"
                )));
            }
            let idle = Mutex::new(Vec::new());
            (
                conn,
                Readers::Pool {
                    path: Path::new(path).to_path_buf(),
                    idle,
                },
            )
        };
        conn.execute_batch(sync.pragma())?;
        conn.execute_batch("PRAGMA busy_timeout=5000;")?;
        migrate(&conn)?;
        let checkpointer = match readers {
            Readers::Pool { ref path, .. } => {
                conn.execute_batch("PRAGMA wal_autocheckpoint=0;")?;
                Some(start_checkpointer(path.clone(), sync)?)
            }
            Readers::Writer => None,
        };

        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        thread::Builder::new()
            .name("xmtp-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, listener))
            .map_err(|e| StoreError::Unavailable(format!("cannot start writer thread: {e}")))?;
        Ok(Self {
            jobs,
            readers: Arc::new(readers),
            _checkpointer: checkpointer,
        })
    }

    /// Runs `f` on the writer's connection, in its own transaction.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: WriteFn = Box::new(move |conn: &mut Connection| {
            let result = conn
                .transaction()
                .map_err(StoreError::from)
                .and_then(|txn| {
                    let value = f(&txn)?;
                    txn.commit()?;
                    Ok(value)
                });
            let _ = tx.send(result);
        });
        self.jobs
            .send(Job::Exec(job))
            .await
            .map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }

    /// Runs `f` on a read connection.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        match self.readers.as_ref() {
            Readers::Writer => self.write(move |txn| f(txn)).await,
            Readers::Pool { .. } => {
                let readers = Arc::clone(&self.readers);
                tokio::task::spawn_blocking(move || {
                    let Readers::Pool { path, idle } = readers.as_ref() else {
                        return Err(StoreError::Unavailable("reader pool missing".into()));
                    };
                    let pooled = idle.lock().map_err(|_| poisoned())?.pop();
                    let conn = match pooled {
                        Some(conn) => conn,
                        None => open_reader(path)?,
                    };
                    let result = f(&conn);
                    let mut idle = idle.lock().map_err(|_| poisoned())?;
                    if idle.len() < READ_POOL {
                        idle.push(conn);
                    }
                    result
                })
                .await
                .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
            }
        }
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the store's writer has stopped".into())
}

fn poisoned() -> StoreError {
    StoreError::Unavailable("reader pool lock poisoned".into())
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Starts the checkpoint thread; it runs until the returned sender is
/// dropped, then checkpoints once more and stops.
fn start_checkpointer(
    path: PathBuf,
    sync: SqliteSync,
) -> Result<std::sync::mpsc::Sender<()>, StoreError> {
    let conn = Connection::open(&path)?;
    conn.execute_batch(sync.pragma())?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    thread::Builder::new()
        .name("xmtp-sqlite-checkpoint".into())
        .spawn(move || loop {
            let done = matches!(
                stopped.recv_timeout(CHECKPOINT_EVERY),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) | Ok(())
            );
            if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(%err, "WAL checkpoint failed");
            }
            if done {
                return;
            }
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot start checkpoint thread: {e}")))?;
    Ok(stop)
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Database(format!(
            "database schema version {version} is newer than this node ({SCHEMA_VERSION})"
        )));
    }
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}"))?;
    Ok(())
}

/// The writer thread: runs jobs in arrival order, folding consecutive
/// publishes into one transaction.
fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    listener: Arc<dyn CommitListener>,
) {
    let mut group: Vec<PendingPublish> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Publish(p) => group.push(p),
                Job::Exec(f) => {
                    commit_group(&mut conn, &mut group, listener.as_ref());
                    f(&mut conn);
                }
            }
            if group.len() < MAX_GROUP {
                next = rx.try_recv().ok();
            }
        }
        commit_group(&mut conn, &mut group, listener.as_ref());
    }
    tracing::debug!("sqlite writer stopped");
}

/// Commits the queued publishes together; if that fails, retries each alone so
/// one bad request cannot fail the others.
fn commit_group(
    conn: &mut Connection,
    group: &mut Vec<PendingPublish>,
    listener: &dyn CommitListener,
) {
    if group.is_empty() {
        return;
    }
    let pending = std::mem::take(group);
    match insert_all(conn, pending.iter().map(|p| p.envelopes.as_slice())) {
        Ok((outcomes, fresh)) => {
            if !fresh.is_empty() {
                listener.committed(&fresh);
            }
            for (p, outcome) in pending.into_iter().zip(outcomes) {
                let _ = p.reply.send(Ok(outcome));
            }
        }
        Err(err) if pending.len() > 1 => {
            tracing::warn!(%err, "group commit failed, retrying publishes one by one");
            for p in pending {
                let result =
                    insert_all(conn, std::iter::once(p.envelopes.as_slice())).map(|(o, fresh)| {
                        if !fresh.is_empty() {
                            listener.committed(&fresh);
                        }
                        o.into_iter().next().unwrap_or_default()
                    });
                let _ = p.reply.send(result);
            }
        }
        Err(err) => {
            for p in pending {
                let _ = p.reply.send(Err(StoreError::Database(err.to_string())));
            }
        }
    }
}

pub(super) use super::page::{assemble_page, Bounds, Row};

type Inserted = (Vec<PublishOutcome>, Vec<Arc<Envelope>>);

fn insert_all<'a>(
    conn: &mut Connection,
    requests: impl Iterator<Item = &'a [(Envelope, [u8; DIGEST_LEN])]>,
) -> Result<Inserted, StoreError> {
    let txn = conn.transaction()?;
    let mut outcomes = Vec::new();
    let mut fresh = Vec::new();
    {
        let mut stmt = txn.prepare_cached(
            "INSERT OR IGNORE INTO envelopes (topic, sender_time, digest, message) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for envelopes in requests {
            let mut outcome = PublishOutcome::default();
            for (env, digest) in envelopes {
                let changed = stmt.execute(params![
                    env.content_topic,
                    ordered_i64(env.timestamp_ns),
                    &digest[..],
                    env.message
                ])?;
                if changed == 1 {
                    outcome.stored += 1;
                    fresh.push(Arc::new(env.clone()));
                } else {
                    outcome.duplicates += 1;
                }
            }
            outcomes.push(outcome);
        }
    }
    txn.commit()?;
    Ok((outcomes, fresh))
}

fn query_topic(conn: &Connection, topic: &str, q: &EnvelopeQuery) -> Result<Vec<Row>, StoreError> {
    let Some(b) = Bounds::of(q) else {
        return Ok(Vec::new());
    };
    let sql = match q.direction {
        Direction::Ascending => {
            "SELECT sender_time, digest, message FROM envelopes \
                 WHERE topic = ?1 AND sender_time >= ?2 AND sender_time <= ?3 \
                 AND (sender_time, digest) > (?4, ?5) \
                 ORDER BY sender_time ASC, digest ASC LIMIT ?6"
        }
        Direction::Descending => {
            "SELECT sender_time, digest, message FROM envelopes \
                 WHERE topic = ?1 AND sender_time >= ?2 AND sender_time <= ?3 \
                 AND (sender_time, digest) < (?4, ?5) \
                 ORDER BY sender_time DESC, digest DESC LIMIT ?6"
        }
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params![
        topic,
        ordered_i64(b.lo),
        ordered_i64(b.hi),
        ordered_i64(b.cursor_time),
        b.cursor_digest,
        i64::from(q.limit)
    ])?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    while let Some(row) = rows.next()? {
        let row = Row::stored(topic, row.get(0)?, row.get(1)?, row.get(2)?)?;
        bytes += row.envelope.message.len() + topic.len();
        out.push(row);
        if bytes > q.max_bytes {
            break;
        }
    }
    Ok(out)
}

fn count_unclaimed(conn: &Connection, installation_key: &[u8]) -> Result<u32, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM one_time_keys WHERE installation_key = ?1 AND claimed = 0",
        [installation_key],
        |r| r.get(0),
    )?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

#[async_trait]
impl Store for SqliteStore {
    async fn publish(&self, envelopes: Vec<Envelope>) -> Result<PublishOutcome, StoreError> {
        if envelopes.is_empty() {
            return Ok(PublishOutcome::default());
        }
        let envelopes = with_digests(envelopes);
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::Publish(PendingPublish { envelopes, reply }))
            .await
            .map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }

    async fn query(&self, query: EnvelopeQuery) -> Result<EnvelopePage, StoreError> {
        self.read(move |conn| {
            let mut rows = Vec::new();
            for topic in &query.topics {
                rows.extend(query_topic(conn, topic, &query)?);
            }
            Ok(assemble_page(rows, &query, query.topics.len()))
        })
        .await
    }

    async fn register_installation(&self, record: InstallationRecord) -> Result<(), StoreError> {
        let bundle = record.bundle.encode_to_vec();
        self.write(move |txn| {
            txn.execute(
                "INSERT OR REPLACE INTO installations (address_key, installation_key, bundle) VALUES (?1, ?2, ?3)",
                params![record.address_key, record.installation_key, bundle],
            )?;
            Ok(())
        })
        .await
    }

    async fn upload_one_time_keys(
        &self,
        installation_key: Vec<u8>,
        keys: Vec<SignedCurve25519Key>,
        max_pool: u32,
    ) -> Result<u32, StoreError> {
        self.write(move |txn| {
            let known: Option<i64> = txn
                .query_row(
                    "SELECT seq FROM installations WHERE installation_key = ?1 LIMIT 1",
                    [&installation_key],
                    |r| r.get(0),
                )
                .optional()?;
            if known.is_none() {
                return Err(StoreError::NotFound("installation is not registered".into()));
            }
            {
                let mut stmt = txn.prepare_cached(
                    "INSERT OR IGNORE INTO one_time_keys (installation_key, key, signature) VALUES (?1, ?2, ?3)",
                )?;
                for k in &keys {
                    stmt.execute(params![installation_key, k.key, k.signature])?;
                }
            }
            let remaining = count_unclaimed(txn, &installation_key)?;
            if remaining > max_pool {
                // Dropping the transaction rolls the upload back.
                return Err(StoreError::LimitReached(format!(
                    "an installation may hold at most {max_pool} unclaimed one-time keys"
                )));
            }
            Ok(remaining)
        })
        .await
    }

    async fn count_one_time_keys(&self, installation_key: Vec<u8>) -> Result<u32, StoreError> {
        self.read(move |conn| count_unclaimed(conn, &installation_key))
            .await
    }

    async fn get_installations(
        &self,
        address_keys: Vec<String>,
    ) -> Result<Vec<StoredInstallations>, StoreError> {
        self.read(move |conn| {
            let mut bundles_stmt =
                conn.prepare_cached("SELECT bundle FROM installations WHERE address_key = ?1 ORDER BY seq")?;
            let mut revocations_stmt = conn.prepare_cached(
                "SELECT revocation FROM revocations WHERE address_key = ?1 ORDER BY installation_key",
            )?;
            let mut out = Vec::with_capacity(address_keys.len());
            for address in &address_keys {
                let mut entry = StoredInstallations::default();
                let mut rows = bundles_stmt.query([address])?;
                while let Some(row) = rows.next()? {
                    let bytes: Vec<u8> = row.get(0)?;
                    entry.bundles.push(decode::<InstallationPublicKeyBundle>(&bytes, "bundle")?);
                }
                let mut rows = revocations_stmt.query([address])?;
                while let Some(row) = rows.next()? {
                    let bytes: Vec<u8> = row.get(0)?;
                    entry.revocations.push(decode::<WalletRevocation>(&bytes, "revocation")?);
                }
                out.push(entry);
            }
            Ok(out)
        })
        .await
    }

    async fn claim_one_time_keys(
        &self,
        installation_keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Claimed>, StoreError> {
        // One transaction on the single writer: claims are serialised, and the
        // UPDATE ... RETURNING both picks and consumes a key.
        self.write(move |txn| {
            let mut claim = txn.prepare_cached(
                "UPDATE one_time_keys SET claimed = 1 WHERE id = (
                     SELECT id FROM one_time_keys WHERE installation_key = ?1 AND claimed = 0
                     ORDER BY id LIMIT 1)
                 RETURNING key, signature",
            )?;
            let mut fallback = txn.prepare_cached(
                "SELECT bundle FROM installations WHERE installation_key = ?1 ORDER BY seq DESC LIMIT 1",
            )?;
            let mut out = Vec::new();
            for installation_key in installation_keys {
                let key = claim
                    .query_row([&installation_key], |r| {
                        Ok(SignedCurve25519Key { key: r.get(0)?, signature: r.get(1)? })
                    })
                    .optional()?;
                if let Some(key) = key {
                    out.push(Claimed { installation_key, key, is_fallback: false });
                    continue;
                }
                let bundle: Option<Vec<u8>> = fallback.query_row([&installation_key], |r| r.get(0)).optional()?;
                if let Some(bytes) = bundle {
                    let bundle = decode::<InstallationPublicKeyBundle>(&bytes, "bundle")?;
                    if let Some(key) = bundle.fallback_key {
                        out.push(Claimed { installation_key, key, is_fallback: true });
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn publish_revocation(&self, record: RevocationRecord) -> Result<(), StoreError> {
        let revocation = record.revocation.encode_to_vec();
        self.write(move |txn| {
            txn.execute(
                "INSERT OR REPLACE INTO revocations (address_key, installation_key, revocation) VALUES (?1, ?2, ?3)",
                params![record.address_key, record.installation_key, revocation],
            )?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{conformance, NoListener};

    fn memory() -> SqliteStore {
        SqliteStore::open(":memory:", Arc::new(NoListener)).unwrap()
    }

    #[tokio::test]
    async fn conformance_suite_in_memory() {
        conformance::run_all(|| async { memory() }).await;
    }

    #[tokio::test]
    async fn conformance_suite_on_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let counter = std::sync::atomic::AtomicUsize::new(0);
        let dir_path = dir.path().to_path_buf();
        conformance::run_all(|| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = dir_path.join(format!("store-{n}.db3"));
            async move { SqliteStore::open(path.to_str().unwrap(), Arc::new(NoListener)).unwrap() }
        })
        .await;
    }

    #[tokio::test]
    async fn data_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reopen.db3");
        let path = path.to_str().unwrap();
        let env = Envelope {
            content_topic: "t".into(),
            timestamp_ns: 7,
            message: vec![1, 2],
        };
        {
            let store = SqliteStore::open(path, Arc::new(NoListener)).unwrap();
            store.publish(vec![env.clone()]).await.unwrap();
        }
        let store = SqliteStore::open(path, Arc::new(NoListener)).unwrap();
        let page = store
            .query(conformance::query_all("t", Direction::Ascending))
            .await
            .unwrap();
        assert_eq!(page.envelopes, vec![env]);
    }

    #[tokio::test]
    async fn durability_mode_is_applied_to_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        for (mode, expected) in [(SqliteSync::Normal, 1i64), (SqliteSync::Full, 2)] {
            let path = dir.path().join(format!("{mode:?}.db3"));
            let store =
                SqliteStore::open_with(path.to_str().unwrap(), mode, Arc::new(NoListener)).unwrap();
            let level: i64 = store
                .write(|txn| Ok(txn.query_row("PRAGMA synchronous", [], |r| r.get(0))?))
                .await
                .unwrap();
            assert_eq!(level, expected);
            let journal: String = store
                .write(|txn| Ok(txn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
                .await
                .unwrap();
            assert_eq!(journal, "wal");
        }
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("future.db3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version=99").unwrap();
        drop(conn);
        let err = SqliteStore::open(path.to_str().unwrap(), Arc::new(NoListener)).unwrap_err();
        assert!(matches!(err, StoreError::Database(m) if m.contains("newer")));
    }
}
