//! The errors of the node API client.
//!
//! Every failure of a call maps to one [`ApiError`] variant that says what went
//! wrong and what the caller can do about it. gRPC statuses are converted by
//! code ([`From<tonic::Status>`]), so callers never parse message strings.
//! [`ApiError::is_retryable`] is the single place that decides which failures
//! are transient: the retry loop ([`crate::RetryPolicy`]) and the resilient
//! subscription ([`crate::ResilientSubscription`]) both ask it.

use tonic::Code;

/// A failed call to the node.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The node URL could not be used; fix the URL (it must be `http://host:port`
    /// or `https://host[:port]`).
    #[error("invalid node URL {url:?}: {reason}; use http://host:port or https://host[:port]")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },

    /// No connection to the node could be made; check that the node runs and
    /// is reachable at this URL, then retry.
    #[error("could not connect to the node at {url}: {source}; check that the node is running and reachable")]
    Connect {
        /// The URL that was dialled.
        url: String,
        /// The transport failure.
        #[source]
        source: tonic::transport::Error,
    },

    /// The node refused the request as malformed (for example a topic longer
    /// than 300 bytes or a message larger than 1 MiB). Retrying the same
    /// request cannot succeed; change the request.
    #[error(
        "the node refused the request as invalid: {0}; retrying will not help, change the request"
    )]
    InvalidArgument(String),

    /// The node's rate limit was exceeded. Retryable after a backoff.
    #[error("rate limited by the node: {0}; slow down and retry after a backoff")]
    ResourceExhausted(String),

    /// The node is unreachable or shutting down, or the connection dropped.
    /// Retryable after a backoff.
    #[error("the node is unavailable: {0}; retry after a backoff")]
    Unavailable(String),

    /// The call did not finish within the request timeout. Retryable; if it
    /// keeps happening, raise [`crate::ClientOptions::request_timeout`].
    #[error("the call did not complete in time: {0}; retry, or raise the request timeout")]
    DeadlineExceeded(String),

    /// The node requires an XMTP authentication token that the request
    /// lacked, or the token was invalid or expired (a node started with
    /// `--require-auth`, for publishes on XMTP V1/V2 topics). Not retried:
    /// set a fresh token with [`crate::XmtpApi::set_auth_token`], then retry.
    #[error(
        "the node requires a valid authentication token: {0}; make a fresh token (xmtp_cryptography::v2::authn::create_token), set it with XmtpApi::set_auth_token, then retry"
    )]
    Unauthenticated(String),

    /// The node authenticated the request but does not allow it (a token's
    /// wallet publishing on another wallet's `contact-` or `privatestore-`
    /// topic). Not retryable; change the request or the token's wallet.
    #[error("the node does not allow this request: {0}; a wallet may publish only on its own contact and privatestore topics")]
    PermissionDenied(String),

    /// The node does not know what was asked for.
    #[error("not found on the node: {0}")]
    NotFound(String),

    /// The node failed while handling the request, or answered with a status
    /// this client has no better variant for. Report it to the node's operator.
    #[error(
        "the node failed ({code:?}): {message}; report this to the node's operator if it persists"
    )]
    Internal {
        /// The gRPC status code the node answered with.
        code: Code,
        /// The node's message.
        message: String,
    },

    /// The node's answer could not be used (a malformed or inconsistent
    /// response). The node or something between us and it misbehaves.
    #[error("could not use the node's response: {0}")]
    Decode(String),

    /// A subscription stream ended and could not be resumed. Subscribe again,
    /// or use [`crate::ResilientSubscription`], which does so by itself.
    #[error("the subscription stream closed: {0}; subscribe again")]
    StreamClosed(String),
}

impl ApiError {
    /// Whether the same request may succeed if sent again after a backoff:
    /// true for [`Unavailable`](Self::Unavailable),
    /// [`ResourceExhausted`](Self::ResourceExhausted),
    /// [`DeadlineExceeded`](Self::DeadlineExceeded) and
    /// [`Connect`](Self::Connect); false for everything else.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_)
                | Self::ResourceExhausted(_)
                | Self::DeadlineExceeded(_)
                | Self::Connect { .. }
        )
    }

    /// The gRPC status code that corresponds to this error.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidUrl { .. } | Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::Connect { .. } | Self::Unavailable(_) | Self::StreamClosed(_) => {
                Code::Unavailable
            }
            Self::ResourceExhausted(_) => Code::ResourceExhausted,
            Self::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::NotFound(_) => Code::NotFound,
            Self::Internal { code, .. } => *code,
            Self::Decode(_) => Code::Internal,
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => Self::InvalidArgument(message),
            Code::ResourceExhausted => Self::ResourceExhausted(message),
            // Aborted is gRPC's "retry at a higher level" signal; tonic's
            // client reports Cancelled when the connection closed before the
            // request could be sent, which is as safe to retry.
            Code::Unavailable | Code::Aborted | Code::Cancelled => Self::Unavailable(message),
            Code::DeadlineExceeded => Self::DeadlineExceeded(message),
            Code::Unauthenticated => Self::Unauthenticated(message),
            Code::PermissionDenied => Self::PermissionDenied(message),
            Code::NotFound => Self::NotFound(message),
            code => Self::Internal { code, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_map_to_their_variants() {
        let cases = [
            (Code::InvalidArgument, "InvalidArgument"),
            (Code::ResourceExhausted, "ResourceExhausted"),
            (Code::Unavailable, "Unavailable"),
            (Code::DeadlineExceeded, "DeadlineExceeded"),
            (Code::Unauthenticated, "Unauthenticated"),
            (Code::PermissionDenied, "PermissionDenied"),
            (Code::NotFound, "NotFound"),
            (Code::Internal, "Internal"),
            (Code::Unknown, "Internal"),
        ];
        for (code, variant) in cases {
            let error = ApiError::from(tonic::Status::new(code, "why"));
            assert!(
                format!("{error:?}").starts_with(variant),
                "{code:?} became {error:?}"
            );
            assert!(error.to_string().contains("why"), "message lost: {error}");
        }
    }

    #[test]
    fn only_transient_errors_are_retryable() {
        let retryable = [
            Code::Unavailable,
            Code::ResourceExhausted,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::Cancelled,
        ];
        let permanent = [
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::NotFound,
            Code::Internal,
            Code::Unknown,
            Code::Unimplemented,
        ];
        for code in retryable {
            assert!(
                ApiError::from(tonic::Status::new(code, "")).is_retryable(),
                "{code:?}"
            );
        }
        for code in permanent {
            assert!(
                !ApiError::from(tonic::Status::new(code, "")).is_retryable(),
                "{code:?}"
            );
        }
        assert!(!ApiError::Decode("x".into()).is_retryable());
        assert!(!ApiError::StreamClosed("x".into()).is_retryable());
    }

    #[test]
    fn code_round_trips_through_status_conversion() {
        for code in [
            Code::InvalidArgument,
            Code::ResourceExhausted,
            Code::NotFound,
            Code::Internal,
            Code::Unauthenticated,
            Code::PermissionDenied,
        ] {
            assert_eq!(ApiError::from(tonic::Status::new(code, "")).code(), code);
        }
    }
}
