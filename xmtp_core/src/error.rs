//! The client's errors: one enum for what a caller of [`crate::Client`] can
//! meet, each variant saying what went wrong and what to do about it.

use crate::{content::ContentError, messages::PayloadError, storage::StorageError};

/// An error from the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Local storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The node could not be reached or refused the call.
    #[error("node request failed: {0}; check the node URL and your connection, then retry")]
    Api(#[from] xmtp_networking::ApiError),
    /// Connecting to the node failed.
    #[error("cannot connect to the node at {url}: {reason}")]
    Connect {
        /// The node URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A required builder setting is missing.
    #[error("the client builder needs {0}")]
    MissingSetting(&'static str),
    /// The wallet could not sign.
    #[error("the wallet could not sign: {0}")]
    Wallet(String),
    /// The database belongs to another wallet than the one given.
    #[error("the database belongs to {stored}, not to the wallet given ({given}); use that wallet or another database")]
    WalletMismatch {
        /// The address in the database.
        stored: String,
        /// The address of the wallet given.
        given: String,
    },
    /// The operation needs the wallet (e.g. revoking), and none is available.
    #[error("this operation needs the wallet's signature; build the client with the wallet that owns it")]
    NoWallet,
    /// An address that is not an EVM address.
    #[error("invalid address {0:?}: expected 0x followed by 40 hex digits")]
    InvalidAddress(String),
    /// An installation id that is not 64 hex digits.
    #[error("invalid installation id {0:?}: expected 64 hex digits")]
    InvalidInstallationId(String),
    /// The peer has no valid installation: they never registered, or revoked all.
    #[error("{0} has no registered installation; they must open an XMTP client once before they can be messaged")]
    PeerNotRegistered(String),
    /// This installation was revoked by its wallet.
    #[error(
        "this installation was revoked by its wallet; create a new installation (a new database)"
    )]
    InstallationRevoked,
    /// The installation to revoke is not one of this wallet's.
    #[error("installation {0} is not one of this account's installations")]
    UnknownInstallation(String),
    /// A cryptographic operation failed on local data.
    #[error("cryptography error: {0}")]
    Crypto(String),
    /// Content could not be encoded or decoded.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// A group operation was refused.
    #[error(transparent)]
    Group(#[from] crate::groups::GroupError),
    /// No conversation has this id.
    #[error("no conversation {0:?}; list them with `conversations()`")]
    UnknownConversation(String),
    /// An XMTP V1/V2 operation failed.
    #[error(transparent)]
    V2(#[from] crate::v2::V2Error),
    /// A stored or received payload is malformed.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// A message was stored and queued, but publishing it failed; it will be
    /// published by the next `sync` or `flush_outbox`.
    #[error("message {message_id} is queued but not yet published ({reason}); it is retried on the next sync")]
    Queued {
        /// Hex id of the queued message.
        message_id: String,
        /// Why publishing failed.
        reason: String,
    },
}
