//! Durable storage of envelopes and of the pre-key service's public keys.
//!
//! The node talks to storage only through the [`Store`] trait, so that the
//! embedded SQLite store (one node, one file) and a PostgreSQL store (several
//! nodes over one database, issue 8) are interchangeable.
//!
//! Two rules shape the trait:
//! - A publish returns only once the envelopes are durable, and reports which
//!   ones were new: duplicates (same topic, sender time and message) are stored
//!   once and announced once.
//! - Newly committed envelopes are announced through the [`CommitListener`]
//!   the store was opened with, in commit order, *after* the commit. The SQLite
//!   store calls it from its writer thread; a PostgreSQL store would call it
//!   from its `LISTEN` task so that a subscriber on one node sees what another
//!   node committed. The node's subscription hub is that listener.
//!
//! Queries are described by a validated [`EnvelopeQuery`] and answered with an
//! [`EnvelopePage`]. Envelopes are ordered by `(sender_time_ns, digest)` where
//! `digest = sha256(content_topic || message)`, which makes the order total
//! within a topic and the cursor stable under concurrent inserts.

use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use xmtp_proto::xmtp::{
    message_api::v1::Envelope,
    v3::message_contents::{InstallationPublicKeyBundle, SignedCurve25519Key, WalletRevocation},
};

mod page;
pub mod postgres;
pub mod sqlite;

#[cfg(test)]
mod conformance;

pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::{SqliteStore, SqliteSync};

/// Length of an envelope digest (SHA-256).
pub const DIGEST_LEN: usize = 32;

/// `sha256(content_topic || message)`, the digest of an envelope used for
/// de-duplication and in query cursors.
pub fn envelope_digest(content_topic: &str, message: &[u8]) -> [u8; DIGEST_LEN] {
    let mut hasher = Sha256::new();
    hasher.update(content_topic.as_bytes());
    hasher.update(message);
    hasher.finalize().into()
}

/// Each envelope with its [`envelope_digest`], as the stores' writers take them.
pub(crate) fn with_digests(envelopes: Vec<Envelope>) -> Vec<(Envelope, [u8; DIGEST_LEN])> {
    envelopes
        .into_iter()
        .map(|e| {
            let d = envelope_digest(&e.content_topic, &e.message);
            (e, d)
        })
        .collect()
}

/// Decodes a protobuf message a store kept (`what` names it in the error).
pub(crate) fn decode<M: prost::Message + Default>(
    bytes: &[u8],
    what: &str,
) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|e| StoreError::Corrupt(format!("stored {what} does not decode: {e}")))
}

/// Maps a `u64` to an `i64` preserving order (flips the sign bit), so that
/// databases with signed 64-bit integers sort sender times correctly.
pub fn ordered_i64(value: u64) -> i64 {
    (value ^ (1 << 63)) as i64
}

/// The inverse of [`ordered_i64`].
pub fn ordered_u64(value: i64) -> u64 {
    (value as u64) ^ (1 << 63)
}

/// Errors of a storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(String),
    /// The store is shut down or its worker is gone.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored bytes did not decode (corruption or a foreign writer).
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// A record the operation needs does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A bounded pool is full.
    #[error("limit reached: {0}")]
    LimitReached(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::Database(err.to_string())
    }
}

/// Receives the envelopes a store has durably committed, in commit order.
///
/// Called synchronously by the store right after each commit and before the
/// publishers are acknowledged; implementations must not block.
pub trait CommitListener: Send + Sync + 'static {
    /// `envelopes` were newly committed (duplicates are not repeated).
    fn committed(&self, envelopes: &[Arc<Envelope>]);
}

/// A listener that ignores commits (for stores used without subscriptions).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoListener;

impl CommitListener for NoListener {
    fn committed(&self, _envelopes: &[Arc<Envelope>]) {}
}

/// Order of a query's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first.
    Ascending,
    /// Newest first.
    Descending,
}

/// A position in a topic: the `(sender_time_ns, digest)` of the last envelope
/// of the previous page. The next page starts strictly after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    /// Sender time of the envelope.
    pub sender_time_ns: u64,
    /// Its digest.
    pub digest: [u8; DIGEST_LEN],
}

/// A validated query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeQuery {
    /// Topics to read (at least one).
    pub topics: Vec<String>,
    /// Only envelopes with `sender_time_ns >= start` (inclusive), if set.
    pub start_ns: Option<u64>,
    /// Only envelopes with `sender_time_ns <= end` (inclusive), if set.
    pub end_ns: Option<u64>,
    /// Page size (1..=100 after validation).
    pub limit: u32,
    /// Order of the page.
    pub direction: Direction,
    /// Continue after this position.
    pub cursor: Option<PageCursor>,
    /// Stop the page early once this many message bytes are in it (at least
    /// one envelope is always returned), so a response fits a client's
    /// decoding limit.
    pub max_bytes: usize,
}

/// One page of envelopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvelopePage {
    /// The envelopes, in the query's order.
    pub envelopes: Vec<Envelope>,
    /// Position of the last envelope when there may be more (the page was
    /// full by count or by bytes).
    pub next: Option<PageCursor>,
}

/// What a publish did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Envelopes newly stored.
    pub stored: usize,
    /// Envelopes that were already stored.
    pub duplicates: usize,
}

/// An installation's registration, as the key service stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallationRecord {
    /// Lower-cased account address, the lookup key.
    pub address_key: String,
    /// The installation's Ed25519 key (32 bytes).
    pub installation_key: Vec<u8>,
    /// The bundle exactly as given.
    pub bundle: InstallationPublicKeyBundle,
}

/// A wallet's revocation, as the key service stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct RevocationRecord {
    /// Lower-cased account address, the lookup key.
    pub address_key: String,
    /// The revoked installation key.
    pub installation_key: Vec<u8>,
    /// The revocation exactly as given.
    pub revocation: WalletRevocation,
}

/// Bundles and revocations stored for one address.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredInstallations {
    /// Registered bundles, oldest registration first.
    pub bundles: Vec<InstallationPublicKeyBundle>,
    /// Published revocations.
    pub revocations: Vec<WalletRevocation>,
}

/// A key handed out by a claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The installation it belongs to.
    pub installation_key: Vec<u8>,
    /// The one-time key, or the fallback key.
    pub key: SignedCurve25519Key,
    /// Whether it is the fallback key (no one-time key was left).
    pub is_fallback: bool,
}

/// Storage of envelopes and pre-keys. See the module docs for the contract.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores `envelopes` durably in one transaction and announces the new
    /// ones to the commit listener before returning.
    async fn publish(&self, envelopes: Vec<Envelope>) -> Result<PublishOutcome, StoreError>;

    /// Reads one page.
    async fn query(&self, query: EnvelopeQuery) -> Result<EnvelopePage, StoreError>;

    /// Registers or replaces an installation's bundle under its address.
    async fn register_installation(&self, record: InstallationRecord) -> Result<(), StoreError>;

    /// Adds one-time keys to a registered installation's pool (keys already
    /// in the pool are ignored) and returns how many are unclaimed. Fails with
    /// [`StoreError::NotFound`] for an unknown installation and
    /// [`StoreError::LimitReached`] when the pool would exceed `max_pool`.
    async fn upload_one_time_keys(
        &self,
        installation_key: Vec<u8>,
        keys: Vec<SignedCurve25519Key>,
        max_pool: u32,
    ) -> Result<u32, StoreError>;

    /// The number of unclaimed one-time keys of an installation.
    async fn count_one_time_keys(&self, installation_key: Vec<u8>) -> Result<u32, StoreError>;

    /// Bundles and revocations of each address key, in the given order.
    async fn get_installations(
        &self,
        address_keys: Vec<String>,
    ) -> Result<Vec<StoredInstallations>, StoreError>;

    /// Atomically removes and returns one one-time key of each installation,
    /// or its fallback key when none is left. Installations the store does not
    /// know are skipped. No key is ever returned twice.
    async fn claim_one_time_keys(
        &self,
        installation_keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Stores (or replaces) a revocation.
    async fn publish_revocation(&self, record: RevocationRecord) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_i64_preserves_order_and_round_trips() {
        let values = [
            0u64,
            1,
            1 << 62,
            (1 << 63) - 1,
            1 << 63,
            u64::MAX - 1,
            u64::MAX,
        ];
        for pair in values.windows(2) {
            assert!(ordered_i64(pair[0]) < ordered_i64(pair[1]));
        }
        for v in values {
            assert_eq!(ordered_u64(ordered_i64(v)), v);
        }
    }

    #[test]
    fn digest_is_sha256_of_topic_then_message() {
        let d = envelope_digest("ab", b"c");
        let mut h = Sha256::new();
        h.update(b"abc");
        let expected: [u8; 32] = h.finalize().into();
        assert_eq!(d, expected);
    }
}
