//! The PostgreSQL [`Store`]: several stateless nodes over one database, with
//! subscriptions that cross nodes.
//!
//! Construction:
//! - **Schema.** Migrations run at start inside one transaction that first
//!   takes `pg_advisory_xact_lock(MIGRATION_LOCK)`, so nodes starting together
//!   apply them one at a time; the applied versions are rows of
//!   `xmtp_schema_version`, and a database newer than this node is refused.
//!   The database itself is created (from the `postgres` maintenance
//!   database) when it does not exist yet. Topics, addresses and keys are
//!   `BYTEA`, so any string the API accepts is stored as is (PostgreSQL `TEXT`
//!   refuses NUL characters).
//! - **Publish.** One writer task per node folds the publishes queued while
//!   the previous commit was running into one transaction (group commit, as
//!   the SQLite store does). The transaction takes the global advisory lock
//!   `PUBLISH_LOCK`, inserts with `INSERT ... ON CONFLICT DO NOTHING
//!   RETURNING` (duplicates are stored once and reported as duplicates),
//!   sends `NOTIFY xmtp_envelopes` and commits, all sent as one pipeline so
//!   that the lock is never held across a client round trip. The publishers
//!   are acknowledged only when every step, COMMIT included, succeeded. A
//!   group that fails for want of a connection is retried once on a fresh
//!   one (safe: duplicates are ignored); after that, or when the commit's
//!   outcome is unknown because the connection broke, the publishers get
//!   [`StoreError::Unavailable`], never a false acknowledgement.
//! - **The global sequence.** Every envelope gets a `BIGSERIAL seq`. Sequence
//!   values are handed out before commit, so two concurrent transactions could
//!   make `seq` 11 visible before `seq` 10, and a reader that moved its
//!   position past 11 would never see 10. The publish lock prevents this:
//!   envelope inserts are serialised across all nodes and PostgreSQL releases
//!   a transaction's locks only after its commit is visible, so whenever a
//!   reader sees `seq = n`, every smaller `seq` that will ever exist is
//!   visible too. Gaps (rolled-back inserts, values consumed by duplicates)
//!   are permanent and harmless.
//! - **Subscriptions across nodes: a follower per node.** Each node runs one
//!   task that reads `WHERE seq > last ORDER BY seq` and hands the envelopes
//!   to the node's [`CommitListener`] (the subscription hub), advancing
//!   `last`. It is woken by `LISTEN xmtp_envelopes` (the publisher's
//!   `NOTIFY`, sent at commit), by the local writer after each commit, and by
//!   a timer as a safety net (a notification can be lost while the listening
//!   connection is down). The node's own publishes reach its subscribers the
//!   same way, so each envelope reaches the hub exactly once and in `seq`
//!   order, which is commit order, which is publish order per topic. The
//!   follower starts at the current end of the table and, when its connection
//!   drops, reconnects and catches up from `last`: nothing is skipped.
//!   LISTEN/NOTIFY alone would not do: notifications are not delivered to a
//!   connection that is down, and their payload is limited to 8000 bytes.
//!   Polling alone would add the poll interval to every delivery. The two
//!   together give the latency of NOTIFY and the completeness of the durable
//!   sequence.
//! - **Pre-keys.** A claim is `UPDATE ... SET claimed = TRUE WHERE id =
//!   (SELECT id ... FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING`: concurrent
//!   claims on any node lock different rows, so no key is handed out twice,
//!   and a claim that finds every remaining key taken gets the fallback key.
//!   Claimed keys are kept (marked), so a key uploaded again is not handed out
//!   again.
//! - **Connections.** A small pool per node opens connections lazily and
//!   drops any connection that failed or closed; when PostgreSQL is
//!   unreachable every call fails with [`StoreError::Unavailable`] within
//!   [`PostgresOptions::op_timeout`], and the pool reconnects by itself when
//!   it is back.
//!
//! Limits:
//! - All publishes of the whole network are serialised on one lock, held
//!   through each commit's WAL flush, so publish throughput is bounded by
//!   (envelopes per group commit) / (commit latency of the one PostgreSQL
//!   server). A group holds what was queued during the previous commit, so
//!   with a fixed number of clients spread over more nodes each group is
//!   smaller, and lock hand-overs between nodes cost a wake-up of the waiting
//!   backend: more nodes add request capacity (TLS, validation, fan-out to
//!   subscribers), not write throughput. Removing the lock would need
//!   followers that wait out in-flight sequence gaps (and the permanent gaps
//!   duplicates leave), trading delivery latency for write concurrency.
//! - Only nodes may write `envelopes`: a writer that skipped the lock could
//!   commit sequence values out of order and followers would miss its rows.
//! - A follower delivers at most [`FOLLOW_BATCH`] envelopes per round trip;
//!   after a long outage a burst can overflow slow subscribers, who are then
//!   cut off as lagging (see [`crate::hub`]) and resubscribe.
//! - A node that cannot reach PostgreSQL at start does not start; once
//!   running it rides out outages as above. TLS to PostgreSQL is not
//!   supported (use a local socket or a private network).

use std::{
    collections::{HashMap, HashSet},
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use futures::future::poll_fn;
use prost::Message;
use tokio::sync::{mpsc, oneshot, watch, Notify, Semaphore, SemaphorePermit};
use tokio_postgres::{
    error::SqlState, types::ToSql, AsyncMessage, Client, Config, GenericClient, NoTls, Statement,
};
use xmtp_proto::xmtp::{
    message_api::v1::Envelope,
    v3::message_contents::{InstallationPublicKeyBundle, SignedCurve25519Key, WalletRevocation},
};

use super::{
    decode, ordered_i64, ordered_u64,
    page::{assemble_page, Bounds, Row},
    with_digests, Claimed, CommitListener, Direction, EnvelopePage, EnvelopeQuery,
    InstallationRecord, PublishOutcome, RevocationRecord, Store, StoreError, StoredInstallations,
    DIGEST_LEN,
};

/// Advisory lock key held while migrating ("xmtp" "mig").
const MIGRATION_LOCK: i64 = 0x786d_7470_006d_6967;
/// Advisory lock key that serialises envelope inserts ("xmtp" "pub").
const PUBLISH_LOCK: i64 = 0x786d_7470_0070_7562;
/// The notification channel of new envelopes.
pub const NOTIFY_CHANNEL: &str = "xmtp_envelopes";
/// Most publish requests folded into one transaction.
const MAX_GROUP: usize = 512;
/// Most envelopes folded into one transaction (a group stops growing here).
const MAX_GROUP_ENVELOPES: usize = 8192;
/// Queued publishes before publishers wait (back-pressure).
const QUEUE_DEPTH: usize = 8192;
/// Envelopes a follower reads per round trip.
pub const FOLLOW_BATCH: i64 = 1000;

/// Schema migrations, applied in order; never edit a released one.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "
CREATE TABLE envelopes (
    seq BIGSERIAL PRIMARY KEY,
    topic BYTEA NOT NULL,
    sender_time BIGINT NOT NULL,
    digest BYTEA NOT NULL,
    message BYTEA NOT NULL,
    UNIQUE (topic, sender_time, digest)
);
CREATE TABLE installations (
    seq BIGSERIAL PRIMARY KEY,
    address_key BYTEA NOT NULL,
    installation_key BYTEA NOT NULL,
    bundle BYTEA NOT NULL,
    UNIQUE (address_key, installation_key)
);
CREATE INDEX installations_by_key ON installations (installation_key, seq);
CREATE TABLE one_time_keys (
    id BIGSERIAL PRIMARY KEY,
    installation_key BYTEA NOT NULL,
    key BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    claimed BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (installation_key, key)
);
CREATE INDEX one_time_keys_unclaimed ON one_time_keys (installation_key, id) WHERE NOT claimed;
CREATE TABLE revocations (
    address_key BYTEA NOT NULL,
    installation_key BYTEA NOT NULL,
    revocation BYTEA NOT NULL,
    PRIMARY KEY (address_key, installation_key)
);
",
)];

const INSERT_ENVELOPES: &str = "
INSERT INTO envelopes (topic, sender_time, digest, message)
SELECT t, s, d, m FROM UNNEST($1::bytea[], $2::int8[], $3::bytea[], $4::bytea[])
    WITH ORDINALITY AS u(t, s, d, m, n)
ORDER BY n
ON CONFLICT (topic, sender_time, digest) DO NOTHING
RETURNING seq, topic, sender_time, digest";

const PUBLISH_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1)";

/// Wakes every follower; the payload is not needed (they read from `seq`).
const NOTIFY_SQL: &str = "SELECT pg_notify($1, '')";

const FOLLOW: &str = "SELECT seq, topic, sender_time, message FROM envelopes \
     WHERE seq > $1 ORDER BY seq LIMIT $2";

/// One topic's page, ascending. `before` is the message and topic bytes of
/// the rows ahead of each row, so rows past the byte budget are never sent.
const QUERY_ASC: &str = "
SELECT sender_time, digest, message FROM (
    SELECT sender_time, digest, message,
        SUM(octet_length(message) + $7::int8) OVER w - (octet_length(message) + $7::int8) AS before
    FROM (
        SELECT sender_time, digest, message FROM envelopes
        WHERE topic = $1 AND sender_time >= $2 AND sender_time <= $3
          AND (sender_time, digest) > ($4, $5)
        ORDER BY sender_time ASC, digest ASC LIMIT $6
    ) page
    WINDOW w AS (ORDER BY sender_time ASC, digest ASC ROWS UNBOUNDED PRECEDING)
) sized WHERE before <= $8::int8 ORDER BY sender_time ASC, digest ASC";

const QUERY_DESC: &str = "
SELECT sender_time, digest, message FROM (
    SELECT sender_time, digest, message,
        SUM(octet_length(message) + $7::int8) OVER w - (octet_length(message) + $7::int8) AS before
    FROM (
        SELECT sender_time, digest, message FROM envelopes
        WHERE topic = $1 AND sender_time >= $2 AND sender_time <= $3
          AND (sender_time, digest) < ($4, $5)
        ORDER BY sender_time DESC, digest DESC LIMIT $6
    ) page
    WINDOW w AS (ORDER BY sender_time DESC, digest DESC ROWS UNBOUNDED PRECEDING)
) sized WHERE before <= $8::int8 ORDER BY sender_time DESC, digest DESC";

const CLAIM: &str = "
UPDATE one_time_keys SET claimed = TRUE WHERE id = (
    SELECT id FROM one_time_keys WHERE installation_key = $1 AND NOT claimed
    ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING key, signature";

const FALLBACK: &str =
    "SELECT bundle FROM installations WHERE installation_key = $1 ORDER BY seq DESC LIMIT 1";

const COUNT_UNCLAIMED: &str =
    "SELECT COUNT(*) FROM one_time_keys WHERE installation_key = $1 AND NOT claimed";

/// Tuning of a [`PostgresStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Most connections a node opens for requests (the follower has its own).
    pub pool_size: usize,
    /// How often the follower polls when no notification arrives.
    pub poll_interval: Duration,
    /// Longest a store call may take, connecting included, before it fails
    /// with [`StoreError::Unavailable`].
    pub op_timeout: Duration,
    /// Longest a connection attempt may take.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 8,
            poll_interval: Duration::from_millis(250),
            op_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// An error of one store operation, before it is classified.
enum OpError {
    Pg(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for OpError {
    fn from(err: tokio_postgres::Error) -> Self {
        OpError::Pg(err)
    }
}

impl From<StoreError> for OpError {
    fn from(err: StoreError) -> Self {
        OpError::Store(err)
    }
}

/// What an error means for the connection and for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    /// The connection is gone or unusable; the caller may retry.
    Broken,
    /// The connection is fine; the server is busy or a transaction lost a
    /// conflict; the caller may retry.
    Busy,
    /// The server refused the statement; retrying will not help.
    Refused,
}

/// Classifies an SQLSTATE (`None`: no server error, the socket or the
/// protocol failed). Connection exceptions (08), operator interventions such
/// as `pg_terminate_backend` or a shutdown (57P) and the idle-in-transaction
/// timeout (25P03) break the connection; insufficient resources (53),
/// serialisation failures, deadlocks and lock timeouts (55P03) are
/// transient.
fn severity(code: Option<&str>) -> Severity {
    match code {
        None => Severity::Broken,
        Some(c) if c.starts_with("08") || c.starts_with("57P") || c == "25P03" => Severity::Broken,
        Some(c) if c.starts_with("53") || matches!(c, "40001" | "40P01" | "55P03") => {
            Severity::Busy
        }
        Some(_) => Severity::Refused,
    }
}

/// Classifies a driver error: whether the connection is unusable afterwards
/// and which [`StoreError`] it is (`Unavailable` when retrying may help).
fn classify(err: &tokio_postgres::Error) -> (bool, StoreError) {
    let text = format!("PostgreSQL: {}", describe(err));
    match severity(err.code().map(SqlState::code)) {
        Severity::Broken => (true, StoreError::Unavailable(text)),
        Severity::Busy => (false, StoreError::Unavailable(text)),
        Severity::Refused => (false, StoreError::Database(text)),
    }
}

/// A driver error with its causes ("error connecting to server: Connection
/// refused (os error 111)").
fn describe(err: &tokio_postgres::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn copy_err(err: &StoreError) -> StoreError {
    match err {
        StoreError::Database(m) => StoreError::Database(m.clone()),
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::NotFound(m) => StoreError::NotFound(m.clone()),
        StoreError::LimitReached(m) => StoreError::LimitReached(m.clone()),
    }
}

/// A connection with its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    async fn prepare(&mut self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(stmt) = self.statements.get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = self.client.prepare(sql).await?;
        self.statements.insert(sql, stmt.clone());
        Ok(stmt)
    }
}

/// Opens one connection and spawns the task that drives it.
async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// A small connection pool: idle connections are reused, broken ones
/// dropped, and at most `size` are in use at once.
struct Pool {
    config: Config,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

impl Pool {
    fn new(config: Config, size: usize) -> Self {
        Self {
            config,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1)),
        }
    }

    async fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("connection pool closed".into()))?;
        let reused = loop {
            let candidate = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            match candidate {
                Some(conn) if conn.client.is_closed() => continue,
                other => break other,
            }
        };
        let conn = match reused {
            Some(conn) => conn,
            None => Conn {
                client: connect(&self.config).await.map_err(|e| {
                    StoreError::Unavailable(format!("cannot connect: {}", describe(&e)))
                })?,
                statements: HashMap::new(),
            },
        };
        Ok(Pooled {
            conn: Some(conn),
            pool: self,
            _permit: permit,
            clean: false,
        })
    }
}

/// A connection on loan. It goes back to the pool only when the operation
/// settled cleanly ([`Pooled::settle`]); a cancelled or broken one is closed.
struct Pooled<'a> {
    conn: Option<Conn>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
    clean: bool,
}

impl Pooled<'_> {
    fn conn(&mut self) -> Result<&mut Conn, StoreError> {
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("connection already released".into()))
    }

    /// Turns an operation's result into the store's, keeping the connection
    /// for reuse unless the error says it is broken.
    fn settle<T>(mut self, result: Result<T, OpError>) -> Result<T, StoreError> {
        match result {
            Ok(value) => {
                self.clean = true;
                Ok(value)
            }
            Err(OpError::Store(err)) => {
                self.clean = true;
                Err(err)
            }
            Err(OpError::Pg(err)) => {
                let (broken, err) = classify(&err);
                self.clean = !broken;
                Err(err)
            }
        }
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.clean && !conn.client.is_closed() {
                if let Ok(mut idle) = self.pool.idle.lock() {
                    idle.push(conn);
                }
            }
        }
    }
}

/// A publish waiting for the writer: envelopes with their digests.
struct PendingPublish {
    envelopes: Vec<(Envelope, [u8; DIGEST_LEN])>,
    reply: oneshot::Sender<Result<PublishOutcome, StoreError>>,
}

/// The PostgreSQL store. Dropping it stops its writer and follower tasks.
pub struct PostgresStore {
    pool: Arc<Pool>,
    jobs: mpsc::Sender<PendingPublish>,
    options: PostgresOptions,
    database: String,
    /// Dropped with the store, which stops the follower.
    _stop: watch::Sender<()>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("PostgresStore")
            .field("database", &self.database)
            .field("options", &self.options)
            .finish()
    }
}

/// Parses a `postgres://` URL (or key=value string) into a driver config.
fn parse_config(url: &str, options: &PostgresOptions) -> Result<Config, StoreError> {
    let mut config = Config::from_str(url)
        .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL: {e}")))?;
    config
        .connect_timeout(options.connect_timeout)
        .keepalives(true)
        .application_name("xmtp-node");
    // A node that vanished in the middle of a transaction (a half-sent
    // publish pipeline) must not hold the publish lock until TCP gives up.
    let mut server_options = config.get_options().unwrap_or_default().to_owned();
    if !server_options.contains("idle_in_transaction_session_timeout") {
        server_options.push_str(" -c idle_in_transaction_session_timeout=10000");
    }
    config.options(server_options.trim());
    if config.get_dbname().is_none() {
        let user = config.get_user().unwrap_or("postgres").to_owned();
        config.dbname(user);
    }
    Ok(config)
}

/// Quotes an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Runs `sql` on the `postgres` maintenance database of the server `config`
/// points at.
async fn on_maintenance_db(config: &Config, sql: &str) -> Result<(), tokio_postgres::Error> {
    let mut admin = config.clone();
    admin.dbname("postgres");
    let client = connect(&admin).await?;
    client.batch_execute(sql).await
}

/// Creates the database named in `url` when it does not exist yet (several
/// nodes may race to do so; the losers find it created). Returns whether it
/// was created by this call.
pub async fn create_database_if_missing(url: &str) -> Result<bool, StoreError> {
    let options = PostgresOptions::default();
    let config = parse_config(url, &options)?;
    create_if_missing(&config).await
}

async fn create_if_missing(config: &Config) -> Result<bool, StoreError> {
    match connect(config).await {
        Ok(_) => Ok(false),
        Err(err) if err.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            let name = config.get_dbname().unwrap_or("postgres");
            let sql = format!("CREATE DATABASE {}", quote_ident(name));
            match on_maintenance_db(config, &sql).await {
                Ok(()) => {
                    tracing::info!(database = name, "created the PostgreSQL database");
                    Ok(true)
                }
                Err(err)
                    if err.code() == Some(&SqlState::DUPLICATE_DATABASE)
                        || err.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
                {
                    Ok(false)
                }
                Err(err) => Err(classify(&err).1),
            }
        }
        Err(err) => Err(classify(&err).1),
    }
}

/// `url` with its database replaced by `database` (keeping user, host, port
/// and parameters): how tests and tools name a scratch database on the same
/// server.
pub fn with_database(url: &str, database: &str) -> String {
    let (head, params) = match url.find('?') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let authority_start = head.find("://").map_or(0, |i| i + 3);
    let base = match head[authority_start..].find('/') {
        Some(i) => &head[..authority_start + i],
        None => head,
    };
    format!("{base}/{database}{params}")
}

/// Drops the database named in `url`, disconnecting its sessions first
/// (`WITH (FORCE)`, PostgreSQL 13 and later). For tests and tools.
pub async fn drop_database(url: &str) -> Result<(), StoreError> {
    let options = PostgresOptions::default();
    let config = parse_config(url, &options)?;
    let name = config.get_dbname().unwrap_or("postgres");
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
    on_maintenance_db(&config, &sql)
        .await
        .map_err(|e| classify(&e).1)
}

/// Applies the migrations this database lacks, under the migration lock.
async fn migrate(client: &mut Client) -> Result<(), OpError> {
    let txn = client.transaction().await?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // Under the lock, so no other node creates it meanwhile (and no
    // "already exists" notice is logged).
    let versioned: bool = txn
        .query_one("SELECT to_regclass('xmtp_schema_version') IS NOT NULL", &[])
        .await?
        .try_get(0)?;
    if !versioned {
        txn.batch_execute(
            "CREATE TABLE xmtp_schema_version (
                version INTEGER PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
    }
    let current: i32 = txn
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM xmtp_schema_version",
            &[],
        )
        .await?
        .try_get(0)?;
    let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if current > latest {
        return Err(StoreError::Database(format!(
            "database schema version {current} is newer than this node ({latest})"
        ))
        .into());
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        txn.batch_execute(sql).await?;
        txn.execute(
            "INSERT INTO xmtp_schema_version (version) VALUES ($1)",
            &[version],
        )
        .await?;
        tracing::info!(version, "applied PostgreSQL schema migration");
    }
    txn.commit().await?;
    Ok(())
}

impl PostgresStore {
    /// Connects to the database at `url` (creating it if missing), migrates
    /// it, and starts the writer and the follower that announces every
    /// envelope committed from now on, by any node, to `listener`.
    pub async fn open(url: &str, listener: Arc<dyn CommitListener>) -> Result<Self, StoreError> {
        Self::open_with(url, listener, PostgresOptions::default()).await
    }

    /// [`PostgresStore::open`] with explicit tuning.
    pub async fn open_with(
        url: &str,
        listener: Arc<dyn CommitListener>,
        options: PostgresOptions,
    ) -> Result<Self, StoreError> {
        let config = parse_config(url, &options)?;
        let database = config.get_dbname().unwrap_or("postgres").to_owned();
        let setup = async {
            create_if_missing(&config).await?;
            let mut client = connect(&config).await.map_err(|e| {
                StoreError::Unavailable(format!("cannot connect: {}", describe(&e)))
            })?;
            match migrate(&mut client).await {
                Ok(()) => {}
                Err(OpError::Store(e)) => return Err(e),
                Err(OpError::Pg(e)) => return Err(classify(&e).1),
            }
            let last: i64 = client
                .query_one("SELECT COALESCE(MAX(seq), 0) FROM envelopes", &[])
                .await
                .and_then(|row| row.try_get(0))
                .map_err(|e| classify(&e).1)?;
            Ok(last)
        };
        let last = tokio::time::timeout(options.op_timeout, setup)
            .await
            .map_err(|_| StoreError::Unavailable("PostgreSQL did not answer in time".into()))??;

        let pool = Arc::new(Pool::new(config.clone(), options.pool_size));
        let wake = Arc::new(Notify::new());
        let (stop, stop_rx) = watch::channel(());
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(writer_loop(
            Arc::clone(&pool),
            rx,
            Arc::clone(&wake),
            options.op_timeout,
        ));
        tokio::spawn(
            Follower {
                config,
                listener,
                last,
                wake,
                stop: stop_rx,
                options,
                connected: false,
            }
            .run(),
        );
        tracing::info!(database, last_seq = last, "PostgreSQL store open");
        Ok(Self {
            pool,
            jobs,
            options,
            database,
            _stop: stop,
        })
    }

    /// Runs `op` on a pooled connection within the operation timeout.
    async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'c> AsyncFnOnce(&'c mut Conn) -> Result<T, OpError>,
    {
        let work = async {
            let mut pooled = self.pool.get().await?;
            let result = match pooled.conn() {
                Ok(conn) => op(conn).await,
                Err(e) => Err(OpError::Store(e)),
            };
            pooled.settle(result)
        };
        tokio::time::timeout(self.options.op_timeout, work)
            .await
            .map_err(|_| StoreError::Unavailable("PostgreSQL did not answer in time".into()))?
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the store's writer has stopped".into())
}

/// The writer task: group commit of queued publishes.
async fn writer_loop(
    pool: Arc<Pool>,
    mut rx: mpsc::Receiver<PendingPublish>,
    wake: Arc<Notify>,
    op_timeout: Duration,
) {
    while let Some(first) = rx.recv().await {
        let mut envelopes = first.envelopes.len();
        let mut group = vec![first];
        while group.len() < MAX_GROUP && envelopes < MAX_GROUP_ENVELOPES {
            match rx.try_recv() {
                Ok(p) => {
                    envelopes += p.envelopes.len();
                    group.push(p);
                }
                Err(_) => break,
            }
        }
        let result = commit_with_retry(&pool, &group, op_timeout).await;
        match result {
            Ok(outcomes) => {
                wake.notify_one();
                for (p, outcome) in group.into_iter().zip(outcomes) {
                    let _ = p.reply.send(Ok(outcome));
                }
            }
            Err(StoreError::Database(err)) if group.len() > 1 => {
                // Something in one request upset the database: commit each
                // alone so that one bad request cannot fail the others.
                tracing::warn!(%err, "group commit failed, retrying publishes one by one");
                for p in group {
                    let alone = std::slice::from_ref(&p);
                    let result = commit_with_retry(&pool, alone, op_timeout)
                        .await
                        .map(|o| o.into_iter().next().unwrap_or_default());
                    if result.is_ok() {
                        wake.notify_one();
                    }
                    let _ = p.reply.send(result);
                }
            }
            Err(err) => {
                for p in group {
                    let _ = p.reply.send(Err(copy_err(&err)));
                }
            }
        }
    }
    tracing::debug!("PostgreSQL writer stopped");
}

/// Commits a group, retrying once on a fresh connection when the first
/// attempt found the database unavailable (a stale pooled connection after a
/// server restart). Retrying is safe: duplicates are ignored. A retry after a
/// commit whose outcome was lost reports those envelopes as duplicates.
async fn commit_with_retry(
    pool: &Pool,
    group: &[PendingPublish],
    op_timeout: Duration,
) -> Result<Vec<PublishOutcome>, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let work = async {
            let mut pooled = pool.get().await?;
            let result = match pooled.conn() {
                Ok(conn) => commit_group(conn, group).await,
                Err(e) => Err(OpError::Store(e)),
            };
            pooled.settle(result)
        };
        let result = tokio::time::timeout(op_timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "PostgreSQL did not answer in time".into(),
                ))
            });
        match result {
            Err(StoreError::Unavailable(err)) if attempt < 2 => {
                tracing::debug!(%err, "publish failed, retrying on a fresh connection");
            }
            other => return other,
        }
    }
}

/// The identity of an envelope in the table.
type EnvelopeKey = (Vec<u8>, i64, Vec<u8>);

/// Inserts a group in one transaction under the publish lock.
async fn commit_group(
    conn: &mut Conn,
    group: &[PendingPublish],
) -> Result<Vec<PublishOutcome>, OpError> {
    // First occurrence of each envelope in the group; later ones are
    // duplicates whatever the table holds.
    let mut first: HashSet<EnvelopeKey> = HashSet::new();
    let mut is_first = Vec::new();
    let mut topics: Vec<&[u8]> = Vec::new();
    let mut times: Vec<i64> = Vec::new();
    let mut digests: Vec<&[u8]> = Vec::new();
    let mut messages: Vec<&[u8]> = Vec::new();
    for p in group {
        for (env, digest) in &p.envelopes {
            let time = ordered_i64(env.timestamp_ns);
            let key = (env.content_topic.as_bytes().to_vec(), time, digest.to_vec());
            let fresh = first.insert(key);
            is_first.push(fresh);
            if fresh {
                topics.push(env.content_topic.as_bytes());
                times.push(time);
                digests.push(&digest[..]);
                messages.push(&env.message);
            }
        }
    }
    let insert = conn.prepare(INSERT_ENVELOPES).await?;
    let lock = conn.prepare(PUBLISH_LOCK_SQL).await?;
    let notify = conn.prepare(NOTIFY_SQL).await?;
    // The whole transaction goes out as one pipeline (each request is sent
    // when its future is first polled, in this order), so the publish lock
    // is held for the server's work and the commit's WAL flush only, not for
    // client round trips. The publishers are acknowledged only if every
    // step, COMMIT included, succeeded; if one failed, the pipelined COMMIT
    // ends the aborted transaction as a rollback.
    let client = &conn.client;
    let lock_params: [&(dyn ToSql + Sync); 1] = [&PUBLISH_LOCK];
    let insert_params: [&(dyn ToSql + Sync); 4] = [&topics, &times, &digests, &messages];
    let notify_params: [&(dyn ToSql + Sync); 1] = [&NOTIFY_CHANNEL];
    let (_, _, rows, _, _) = futures::try_join!(
        // A publish waits at most 5 s for the lock, then fails Unavailable.
        client.batch_execute("BEGIN; SET LOCAL lock_timeout = '5s'"),
        client.execute(&lock, &lock_params),
        client.query(&insert, &insert_params),
        client.execute(&notify, &notify_params),
        client.batch_execute("COMMIT"),
    )?;
    let mut inserted: HashSet<EnvelopeKey> = HashSet::with_capacity(rows.len());
    for row in &rows {
        inserted.insert((row.try_get(1)?, row.try_get(2)?, row.try_get(3)?));
    }

    let mut outcomes = Vec::with_capacity(group.len());
    let mut flags = is_first.into_iter();
    for p in group {
        let mut outcome = PublishOutcome::default();
        for (env, digest) in &p.envelopes {
            let fresh = flags.next().unwrap_or(false);
            let key = (
                env.content_topic.as_bytes().to_vec(),
                ordered_i64(env.timestamp_ns),
                digest.to_vec(),
            );
            if fresh && inserted.contains(&key) {
                outcome.stored += 1;
            } else {
                outcome.duplicates += 1;
            }
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The task that announces committed envelopes, of every node, in `seq`
/// order. See the module docs.
struct Follower {
    config: Config,
    listener: Arc<dyn CommitListener>,
    last: i64,
    wake: Arc<Notify>,
    stop: watch::Receiver<()>,
    options: PostgresOptions,
    /// Whether the current round got a working connection.
    connected: bool,
}

/// How a follower's round ended.
enum Round {
    /// The store was dropped.
    Stop,
    /// The connection failed; reconnect.
    Reconnect,
}

impl Follower {
    async fn run(mut self) {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.follow().await {
                Round::Stop => break,
                Round::Reconnect => {}
            }
            // A connection that worked starts the backoff over.
            if std::mem::take(&mut self.connected) {
                backoff = Duration::from_millis(50);
            }
            tokio::select! {
                _ = self.stop.changed() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        tracing::debug!("PostgreSQL follower stopped");
    }

    /// Connects, listens, and delivers until the connection fails.
    async fn follow(&mut self) -> Round {
        let notified = Arc::new(Notify::new());
        let connected =
            tokio::time::timeout(self.options.op_timeout, self.connect(Arc::clone(&notified)))
                .await;
        let client = match connected {
            Ok(Ok(client)) => client,
            Ok(Err(err)) => {
                tracing::warn!(%err, "follower cannot connect to PostgreSQL; retrying");
                return Round::Reconnect;
            }
            Err(_) => {
                tracing::warn!("follower's connection attempt timed out; retrying");
                return Round::Reconnect;
            }
        };
        let statement = match client.prepare(FOLLOW).await {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(%err, "follower cannot prepare its query; reconnecting");
                return Round::Reconnect;
            }
        };
        self.connected = true;
        tracing::debug!(last = self.last, "follower connected");
        loop {
            // Catch up: everything after `last`, in order.
            loop {
                let read = tokio::time::timeout(
                    self.options.op_timeout,
                    client.query(&statement, &[&self.last, &FOLLOW_BATCH]),
                )
                .await;
                let rows = match read {
                    Ok(Ok(rows)) => rows,
                    Ok(Err(err)) => {
                        tracing::warn!(%err, last = self.last, "follower lost PostgreSQL; reconnecting");
                        return Round::Reconnect;
                    }
                    Err(_) => {
                        tracing::warn!(last = self.last, "follower's read timed out; reconnecting");
                        return Round::Reconnect;
                    }
                };
                let full = rows.len() as i64 >= FOLLOW_BATCH;
                self.deliver(&rows);
                if !full {
                    break;
                }
            }
            if client.is_closed() {
                return Round::Reconnect;
            }
            tokio::select! {
                _ = self.stop.changed() => return Round::Stop,
                _ = notified.notified() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.options.poll_interval) => {}
            }
        }
    }

    /// A connection that has run `LISTEN`; its notifications (and its end)
    /// wake `notified`.
    async fn connect(&self, notified: Arc<Notify>) -> Result<Client, tokio_postgres::Error> {
        let (client, mut connection) = self.config.connect(NoTls).await?;
        tokio::spawn(async move {
            loop {
                match poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(_))) => notified.notify_one(),
                    Some(Ok(_)) => {}
                    Some(Err(err)) => {
                        tracing::debug!(%err, "follower connection ended");
                        break;
                    }
                    None => break,
                }
            }
            // Wake the follower so that it notices the closed connection.
            notified.notify_one();
        });
        client
            .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
            .await?;
        Ok(client)
    }

    /// Hands rows (in `seq` order) to the listener and advances `last`.
    fn deliver(&mut self, rows: &[tokio_postgres::Row]) {
        let mut batch = Vec::with_capacity(rows.len());
        for row in rows {
            let decoded = (|| -> Result<(i64, Envelope), String> {
                let seq: i64 = row.try_get(0).map_err(|e| e.to_string())?;
                let topic: Vec<u8> = row.try_get(1).map_err(|e| e.to_string())?;
                let time: i64 = row.try_get(2).map_err(|e| e.to_string())?;
                let message: Vec<u8> = row.try_get(3).map_err(|e| e.to_string())?;
                let content_topic = String::from_utf8(topic)
                    .map_err(|_| format!("envelope {seq} has a topic that is not UTF-8"))?;
                Ok((
                    seq,
                    Envelope {
                        content_topic,
                        timestamp_ns: ordered_u64(time),
                        message,
                    },
                ))
            })();
            match decoded {
                Ok((seq, envelope)) => {
                    self.last = self.last.max(seq);
                    batch.push(Arc::new(envelope));
                }
                Err(err) => {
                    // Skip a corrupt row rather than stall every subscriber.
                    tracing::error!(%err, "follower skipped a stored envelope");
                    if let Ok(seq) = row.try_get::<_, i64>(0) {
                        self.last = self.last.max(seq);
                    }
                }
            }
        }
        if !batch.is_empty() {
            self.listener.committed(&batch);
        }
    }
}

fn to_u32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// One topic's rows of a page.
async fn query_topic(conn: &mut Conn, topic: &str, q: &EnvelopeQuery) -> Result<Vec<Row>, OpError> {
    let Some(b) = Bounds::of(q) else {
        return Ok(Vec::new());
    };
    let sql = match q.direction {
        Direction::Ascending => QUERY_ASC,
        Direction::Descending => QUERY_DESC,
    };
    let stmt = conn.prepare(sql).await?;
    let topic_len = i64::try_from(topic.len()).unwrap_or(i64::MAX);
    let max_bytes = i64::try_from(q.max_bytes).unwrap_or(i64::MAX);
    let rows = conn
        .client
        .query(
            &stmt,
            &[
                &topic.as_bytes(),
                &ordered_i64(b.lo),
                &ordered_i64(b.hi),
                &ordered_i64(b.cursor_time),
                &b.cursor_digest,
                &i64::from(q.limit),
                &topic_len,
                &max_bytes,
            ],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(Row::stored(
            topic,
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
        )?);
    }
    Ok(out)
}

async fn count_unclaimed<C: GenericClient>(
    client: &C,
    installation_key: &[u8],
) -> Result<u32, OpError> {
    let n: i64 = client
        .query_one(COUNT_UNCLAIMED, &[&installation_key])
        .await?
        .try_get(0)?;
    Ok(to_u32(n))
}

#[async_trait]
impl Store for PostgresStore {
    async fn publish(&self, envelopes: Vec<Envelope>) -> Result<PublishOutcome, StoreError> {
        if envelopes.is_empty() {
            return Ok(PublishOutcome::default());
        }
        let envelopes = with_digests(envelopes);
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(PendingPublish { envelopes, reply })
            .await
            .map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }

    async fn query(&self, query: EnvelopeQuery) -> Result<EnvelopePage, StoreError> {
        self.run(async |conn: &mut Conn| {
            let mut rows = Vec::new();
            for topic in &query.topics {
                rows.extend(query_topic(conn, topic, &query).await?);
            }
            Ok(assemble_page(rows, &query, query.topics.len()))
        })
        .await
    }

    async fn register_installation(&self, record: InstallationRecord) -> Result<(), StoreError> {
        let bundle = record.bundle.encode_to_vec();
        self.run(async |conn: &mut Conn| {
            conn.client
                .execute(
                    "INSERT INTO installations (address_key, installation_key, bundle)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (address_key, installation_key)
                     DO UPDATE SET bundle = EXCLUDED.bundle, seq = DEFAULT",
                    &[
                        &record.address_key.as_bytes(),
                        &record.installation_key,
                        &bundle,
                    ],
                )
                .await?;
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
        let key_bytes: Vec<&[u8]> = keys.iter().map(|k| k.key.as_slice()).collect();
        let signatures: Vec<&[u8]> = keys.iter().map(|k| k.signature.as_slice()).collect();
        self.run(async |conn: &mut Conn| {
            let txn = conn.client.transaction().await?;
            let known = txn
                .query_opt(
                    "SELECT 1 FROM installations WHERE installation_key = $1 LIMIT 1",
                    &[&installation_key],
                )
                .await?;
            if known.is_none() {
                return Err(StoreError::NotFound("installation is not registered".into()).into());
            }
            txn.execute(
                "INSERT INTO one_time_keys (installation_key, key, signature)
                 SELECT $1, k, s FROM UNNEST($2::bytea[], $3::bytea[]) AS u(k, s)
                 ON CONFLICT (installation_key, key) DO NOTHING",
                &[&installation_key, &key_bytes, &signatures],
            )
            .await?;
            let remaining = count_unclaimed(&txn, &installation_key).await?;
            if remaining > max_pool {
                // Dropping the transaction rolls the upload back.
                return Err(StoreError::LimitReached(format!(
                    "an installation may hold at most {max_pool} unclaimed one-time keys"
                ))
                .into());
            }
            txn.commit().await?;
            Ok(remaining)
        })
        .await
    }

    async fn count_one_time_keys(&self, installation_key: Vec<u8>) -> Result<u32, StoreError> {
        self.run(async |conn: &mut Conn| count_unclaimed(&conn.client, &installation_key).await)
            .await
    }

    async fn get_installations(
        &self,
        address_keys: Vec<String>,
    ) -> Result<Vec<StoredInstallations>, StoreError> {
        self.run(async |conn: &mut Conn| {
            let bundles_stmt = conn
                .prepare("SELECT bundle FROM installations WHERE address_key = $1 ORDER BY seq")
                .await?;
            let revocations_stmt = conn
                .prepare(
                    "SELECT revocation FROM revocations WHERE address_key = $1 \
                     ORDER BY installation_key",
                )
                .await?;
            let mut out = Vec::with_capacity(address_keys.len());
            for address in &address_keys {
                let mut entry = StoredInstallations::default();
                for row in conn
                    .client
                    .query(&bundles_stmt, &[&address.as_bytes()])
                    .await?
                {
                    let bytes: Vec<u8> = row.try_get(0)?;
                    entry
                        .bundles
                        .push(decode::<InstallationPublicKeyBundle>(&bytes, "bundle")?);
                }
                for row in conn
                    .client
                    .query(&revocations_stmt, &[&address.as_bytes()])
                    .await?
                {
                    let bytes: Vec<u8> = row.try_get(0)?;
                    entry
                        .revocations
                        .push(decode::<WalletRevocation>(&bytes, "revocation")?);
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
        self.run(async |conn: &mut Conn| {
            let claim = conn.prepare(CLAIM).await?;
            let fallback = conn.prepare(FALLBACK).await?;
            let txn = conn.client.transaction().await?;
            let mut out = Vec::new();
            for installation_key in &installation_keys {
                if let Some(row) = txn.query_opt(&claim, &[installation_key]).await? {
                    out.push(Claimed {
                        installation_key: installation_key.clone(),
                        key: SignedCurve25519Key {
                            key: row.try_get(0)?,
                            signature: row.try_get(1)?,
                        },
                        is_fallback: false,
                    });
                    continue;
                }
                if let Some(row) = txn.query_opt(&fallback, &[installation_key]).await? {
                    let bytes: Vec<u8> = row.try_get(0)?;
                    let bundle = decode::<InstallationPublicKeyBundle>(&bytes, "bundle")?;
                    if let Some(key) = bundle.fallback_key {
                        out.push(Claimed {
                            installation_key: installation_key.clone(),
                            key,
                            is_fallback: true,
                        });
                    }
                }
            }
            txn.commit().await?;
            Ok(out)
        })
        .await
    }

    async fn publish_revocation(&self, record: RevocationRecord) -> Result<(), StoreError> {
        let revocation = record.revocation.encode_to_vec();
        self.run(async |conn: &mut Conn| {
            conn.client
                .execute(
                    "INSERT INTO revocations (address_key, installation_key, revocation)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (address_key, installation_key)
                     DO UPDATE SET revocation = EXCLUDED.revocation",
                    &[
                        &record.address_key.as_bytes(),
                        &record.installation_key,
                        &revocation,
                    ],
                )
                .await?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Scratch databases for tests: each test gets fresh ones, dropped at the
    //! end. The server is `XMTP_PG_URL` (default
    //! `postgres://postgres@127.0.0.1:5432/postgres`); with `XMTP_SKIP_PG=1`
    //! the PostgreSQL tests are skipped, otherwise an unreachable server fails
    //! them with a clear message.

    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    };

    use super::*;

    /// The server's URL, or `None` when PostgreSQL tests are to be skipped.
    pub(crate) fn server_url() -> Option<String> {
        if std::env::var("XMTP_SKIP_PG").is_ok_and(|v| v == "1") {
            eprintln!("XMTP_SKIP_PG=1: skipping a PostgreSQL test");
            return None;
        }
        Some(
            std::env::var("XMTP_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        )
    }

    /// Fresh databases, dropped (with their sessions) when this is dropped.
    pub(crate) struct Scratch {
        server: String,
        created: Mutex<Vec<String>>,
    }

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    impl Scratch {
        /// Checks that the server answers (panics with how to fix it if not).
        pub(crate) async fn new() -> Option<Self> {
            let server = server_url()?;
            let config = parse_config(&server, &PostgresOptions::default()).unwrap();
            if let Err(err) = connect(&config).await {
                panic!(
                    "PostgreSQL is not reachable at XMTP_PG_URL={server}: {err}. \
                     Start it (user postgres, trust auth) or set XMTP_SKIP_PG=1"
                );
            }
            Some(Self {
                server,
                created: Mutex::new(Vec::new()),
            })
        }

        /// The URL of a new, empty database.
        pub(crate) async fn fresh(&self) -> String {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let name = format!(
                "xmtp_test_{}_{}_{}",
                std::process::id(),
                nanos,
                COUNTER.fetch_add(1, Ordering::SeqCst)
            );
            let url = with_database(&self.server, &name);
            assert!(create_database_if_missing(&url).await.unwrap());
            self.created.lock().unwrap().push(url.clone());
            url
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let urls = std::mem::take(&mut *self.created.lock().unwrap());
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    for url in urls {
                        if let Err(err) = drop_database(&url).await {
                            eprintln!("could not drop a test database: {err}");
                        }
                    }
                });
            })
            .join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{test_support::Scratch, *};
    use crate::store::{conformance, NoListener};

    /// Records what a follower announces.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Envelope>>);

    impl CommitListener for Recorder {
        fn committed(&self, envelopes: &[Arc<Envelope>]) {
            let mut seen = self.0.lock().unwrap();
            seen.extend(envelopes.iter().map(|e| Envelope::clone(e)));
        }
    }

    impl Recorder {
        async fn wait_for(&self, n: usize) -> Vec<Envelope> {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "only {} of {n} envelopes announced",
                    self.0.lock().unwrap().len()
                );
                {
                    let seen = self.0.lock().unwrap();
                    if seen.len() >= n {
                        return seen.clone();
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    fn env(topic: &str, t: u64, msg: &[u8]) -> Envelope {
        Envelope {
            content_topic: topic.into(),
            timestamp_ns: t,
            message: msg.to_vec(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite_on_postgres() {
        let Some(scratch) = Scratch::new().await else {
            return;
        };
        let scratch = &scratch;
        conformance::run_all(|| async move {
            let url = scratch.fresh().await;
            PostgresStore::open(&url, Arc::new(NoListener))
                .await
                .unwrap()
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_starting_together_migrate_once() {
        let Some(scratch) = Scratch::new().await else {
            return;
        };
        let url = scratch.fresh().await;
        let opens = (0..4).map(|_| PostgresStore::open(&url, Arc::new(NoListener)));
        let stores = futures::future::join_all(opens).await;
        assert!(stores.iter().all(Result::is_ok), "every node starts");
        let config = parse_config(&url, &PostgresOptions::default()).unwrap();
        let client = connect(&config).await.unwrap();
        let versions: Vec<i32> = client
            .query("SELECT version FROM xmtp_schema_version", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(versions, vec![1]);
        let timeout: String = client
            .query_one("SHOW idle_in_transaction_session_timeout", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(timeout, "10s", "store sessions cannot sit in a transaction");
        // Opening again changes nothing.
        PostgresStore::open(&url, Arc::new(NoListener))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let Some(scratch) = Scratch::new().await else {
            return;
        };
        let url = scratch.fresh().await;
        drop(
            PostgresStore::open(&url, Arc::new(NoListener))
                .await
                .unwrap(),
        );
        let config = parse_config(&url, &PostgresOptions::default()).unwrap();
        let client = connect(&config).await.unwrap();
        client
            .execute("INSERT INTO xmtp_schema_version (version) VALUES (99)", &[])
            .await
            .unwrap();
        let err = PostgresStore::open(&url, Arc::new(NoListener))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Database(m) if m.contains("newer")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_store_announces_every_commit_once_in_the_same_order() {
        let Some(scratch) = Scratch::new().await else {
            return;
        };
        let url = scratch.fresh().await;
        let seen_a = Arc::new(Recorder::default());
        let seen_b = Arc::new(Recorder::default());
        let a = Arc::new(PostgresStore::open(&url, seen_a.clone()).await.unwrap());
        let b = Arc::new(PostgresStore::open(&url, seen_b.clone()).await.unwrap());
        let mut tasks = Vec::new();
        for (i, store) in [&a, &b].into_iter().enumerate() {
            // The stores outlive the publishers: dropping one stops its
            // follower.
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                for n in 0..100u64 {
                    let e = env(&format!("t{i}"), n, &n.to_be_bytes());
                    // Every publish twice: the duplicate is not announced.
                    store.publish(vec![e.clone()]).await.unwrap();
                    store.publish(vec![e]).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let got_a = seen_a.wait_for(200).await;
        let got_b = seen_b.wait_for(200).await;
        assert_eq!(got_a, got_b, "both nodes announce the same sequence");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(seen_a.0.lock().unwrap().len(), 200, "nothing twice");
        for topic in ["t0", "t1"] {
            let times: Vec<u64> = got_a
                .iter()
                .filter(|e| e.content_topic == topic)
                .map(|e| e.timestamp_ns)
                .collect();
            assert_eq!(
                times,
                (0..100).collect::<Vec<_>>(),
                "publish order per topic"
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        let options = PostgresOptions {
            connect_timeout: Duration::from_millis(500),
            op_timeout: Duration::from_secs(2),
            ..PostgresOptions::default()
        };
        // Port 1 on the loopback: nothing listens there.
        let err = PostgresStore::open_with(
            "postgres://postgres@127.0.0.1:1/none",
            Arc::new(NoListener),
            options,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }

    #[test]
    fn lost_connections_and_overload_are_retryable_and_sql_errors_are_not() {
        assert_eq!(severity(None), Severity::Broken);
        assert_eq!(severity(Some("57P01")), Severity::Broken, "admin_shutdown");
        assert_eq!(severity(Some("08006")), Severity::Broken);
        assert_eq!(
            severity(Some("53300")),
            Severity::Busy,
            "too_many_connections"
        );
        assert_eq!(severity(Some("40001")), Severity::Busy);
        assert_eq!(severity(Some("55P03")), Severity::Busy, "lock_timeout");
        assert_eq!(severity(Some("25P03")), Severity::Broken);
        assert_eq!(severity(Some("23505")), Severity::Refused);
        assert_eq!(severity(Some("42601")), Severity::Refused);
    }

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
    }
}
