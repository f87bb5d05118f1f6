//! The errors that cross the FFI boundary.
//!
//! Every fallible export returns [`FfiError`], which uniffi turns into a typed
//! exception in each language (`FfiException.InvalidAddress` in Kotlin,
//! `FfiError.InvalidAddress` in Swift and Python) whose message is the
//! variant's human-readable text (a flat error: only the text crosses).
//! Variants follow what the caller can do about the
//! failure (fix the input, retry later, use another wallet...), not the
//! internal layer that failed. Foreign callbacks report their own failures
//! with [`FfiSignerError`] and [`FfiCallbackError`], whose field is `reason`:
//! a field named `message` would clash with Kotlin's `Throwable.message`.

use xmtp_core::{ClientError, SecureChannelError, V2Error};
use xmtp_networking::ApiError;

/// Why a call into the library failed.
///
/// A flat error: each variant crosses as its message, so the foreign
/// exception's own message property carries it (a field named `message`
/// would clash with `Throwable.message` in Kotlin).
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum FfiError {
    /// An address is not `0x` and 40 hex digits (or has a bad EIP-55 checksum).
    #[error("{message}")]
    InvalidAddress {
        /// What was wrong.
        message: String,
    },
    /// An installation id is not 64 hex digits, or not one of this account's.
    #[error("{message}")]
    InvalidInstallationId {
        /// What was wrong.
        message: String,
    },
    /// A setting is missing or malformed (node URL, database key...), or a
    /// feature is used before it is enabled (`send_v2` before `enable_v2`).
    #[error("{message}")]
    InvalidConfiguration {
        /// What was wrong.
        message: String,
    },
    /// The node could not be reached or refused the request; retry later.
    #[error("{message}")]
    Network {
        /// What was wrong.
        message: String,
    },
    /// The local database failed (wrong key, corrupt or newer file, disk).
    #[error("{message}")]
    Storage {
        /// What was wrong.
        message: String,
    },
    /// The wallet could not sign, signed for another address, or does not
    /// own this database.
    #[error("{message}")]
    Wallet {
        /// What was wrong.
        message: String,
    },
    /// The peer has no registered installation yet (for `send_v2`: no XMTP
    /// contact bundle; for `send_auto`: neither).
    #[error("{message}")]
    PeerNotRegistered {
        /// What was wrong.
        message: String,
    },
    /// This installation was revoked by its wallet.
    #[error("{message}")]
    InstallationRevoked {
        /// What was wrong.
        message: String,
    },
    /// The message was stored but not yet published; the next `sync`
    /// publishes it. The message names the message id.
    #[error("{message}")]
    Queued {
        /// Hex id of the queued message.
        message_id: String,
        /// Why publishing failed.
        message: String,
    },
    /// Content or a stored payload could not be encoded or decoded.
    #[error("{message}")]
    Content {
        /// What was wrong.
        message: String,
    },
    /// A cryptographic operation failed.
    #[error("{message}")]
    Crypto {
        /// What was wrong.
        message: String,
    },
    /// A secure-channel message does not authenticate, is a replay, or is not
    /// from the given address.
    #[error("{message}")]
    Authentication {
        /// What was wrong.
        message: String,
    },
    /// A task of the library ended abnormally (a bug: please report it).
    #[error("{message}")]
    Internal {
        /// What was wrong.
        message: String,
    },
    /// A secure channel cannot be opened or used (peer not enabled, own
    /// address, unknown or exhausted channel, malformed input).
    #[error("{message}")]
    SecureChannel {
        /// What was wrong.
        message: String,
    },
    /// A group operation was refused: a malformed or unknown group id (sync
    /// first), this account is not a member, or not an admin.
    #[error("{message}")]
    Group {
        /// What was wrong.
        message: String,
    },
}

impl From<ClientError> for FfiError {
    fn from(e: ClientError) -> Self {
        let message = e.to_string();
        match e {
            ClientError::InvalidAddress(_) => Self::InvalidAddress { message },
            ClientError::InvalidInstallationId(_) | ClientError::UnknownInstallation(_) => {
                Self::InvalidInstallationId { message }
            }
            ClientError::MissingSetting(_) | ClientError::Api(ApiError::InvalidUrl { .. }) => {
                Self::InvalidConfiguration { message }
            }
            ClientError::Api(_) | ClientError::Connect { .. } => Self::Network { message },
            ClientError::Storage(_) => Self::Storage { message },
            ClientError::Wallet(_) | ClientError::WalletMismatch { .. } | ClientError::NoWallet => {
                Self::Wallet { message }
            }
            ClientError::PeerNotRegistered(_) => Self::PeerNotRegistered { message },
            ClientError::InstallationRevoked => Self::InstallationRevoked { message },
            ClientError::Queued { message_id, .. } => Self::Queued {
                message_id,
                message,
            },
            ClientError::Content(_) | ClientError::Payload(_) => Self::Content { message },
            ClientError::Crypto(_) => Self::Crypto { message },
            ClientError::Group(_) | ClientError::UnknownConversation(_) => Self::Group { message },
            ClientError::V2(V2Error::NoContact(_)) => Self::PeerNotRegistered { message },
            ClientError::V2(V2Error::NotEnabled) => Self::InvalidConfiguration { message },
            ClientError::V2(_) => Self::Crypto { message },
        }
    }
}

impl From<SecureChannelError> for FfiError {
    fn from(e: SecureChannelError) -> Self {
        let message = e.to_string();
        match e {
            SecureChannelError::Client(inner) => Self::from(inner),
            SecureChannelError::Authentication
            | SecureChannelError::WrongSender { .. }
            | SecureChannelError::UnknownSenderInstallation(_)
            | SecureChannelError::Replayed(_) => Self::Authentication { message },
            SecureChannelError::Corrupt(_) => Self::Storage { message },
            SecureChannelError::OwnAddress
            | SecureChannelError::PeerNotEnabled(_)
            | SecureChannelError::Malformed(_)
            | SecureChannelError::UnknownChannel
            | SecureChannelError::Exhausted => Self::SecureChannel { message },
        }
    }
}

/// Why a foreign wallet could not sign (thrown by an app's
/// [`crate::FfiWalletSigner`]).
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum FfiSignerError {
    /// The user declined to sign.
    #[error("the user declined to sign: {reason}")]
    Declined {
        /// Why.
        reason: String,
    },
    /// The wallet failed to sign.
    #[error("the wallet failed: {reason}")]
    Failed {
        /// Why.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for FfiSignerError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Failed { reason: e.reason }
    }
}

/// A failure reported by a foreign stream callback; it is logged and the
/// stream goes on.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum FfiCallbackError {
    /// The callback failed.
    #[error("the callback failed: {reason}")]
    Failed {
        /// Why.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for FfiCallbackError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Failed { reason: e.reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_map_to_the_variant_the_caller_can_act_on_with_its_message() {
        let e = FfiError::from(ClientError::InvalidAddress("0xnope".into()));
        assert!(matches!(&e, FfiError::InvalidAddress { message } if message.contains("0xnope")));
        let e = FfiError::from(ClientError::Queued {
            message_id: "ab".into(),
            reason: "down".into(),
        });
        assert!(
            matches!(&e, FfiError::Queued { message_id, message } if message_id == "ab" && message.contains("down"))
        );
        assert!(matches!(
            FfiError::from(ClientError::NoWallet),
            FfiError::Wallet { .. }
        ));
    }

    #[test]
    fn v2_errors_map_to_what_the_caller_can_do() {
        assert!(matches!(
            FfiError::from(ClientError::V2(V2Error::NotEnabled)),
            FfiError::InvalidConfiguration { message } if message.contains("enable_v2")
        ));
        assert!(matches!(
            FfiError::from(ClientError::V2(V2Error::NoContact("0xab".into()))),
            FfiError::PeerNotRegistered { message } if message.contains("0xab")
        ));
        assert!(matches!(
            FfiError::from(ClientError::UnknownConversation("/xmtp/0/m-x".into())),
            FfiError::Group { .. }
        ));
    }

    #[test]
    fn group_errors_map_to_the_group_variant_with_their_message() {
        let e = FfiError::from(ClientError::from(xmtp_core::GroupError::NotAnAdmin(
            "ab12".into(),
        )));
        assert!(
            matches!(&e, FfiError::Group { message } if message.contains("admins") && message.contains("ab12"))
        );
    }

    #[test]
    fn secure_channel_errors_unwrap_client_errors_and_keep_authentication_apart() {
        let e = FfiError::from(SecureChannelError::Client(ClientError::InvalidAddress(
            "x".into(),
        )));
        assert!(matches!(e, FfiError::InvalidAddress { .. }));
        assert!(matches!(
            FfiError::from(SecureChannelError::Replayed(3)),
            FfiError::Authentication { .. }
        ));
        assert!(matches!(
            FfiError::from(SecureChannelError::OwnAddress),
            FfiError::SecureChannel { .. }
        ));
    }
}
