//! The node's request logic, independent of transport: validation, rate
//! limits, storage and subscriptions. The gRPC server ([`crate::grpc`]) and
//! the JSON gateway ([`crate::gateway`]) are thin adapters over these
//! services, so both transports behave identically.

use std::{net::IpAddr, sync::Arc, time::Instant};

use crate::{
    auth::{AuthError, Authenticator},
    hub::Hub,
    metrics::{Metrics, Rpc},
    rate_limit::{RateLimited, RateLimiter},
    store::{Store, StoreError},
};

pub mod key_api;
pub mod message_api;

pub use key_api::KeyService;
pub use message_api::MessageService;

/// Largest content topic, in bytes.
pub const MAX_TOPIC_BYTES: usize = 300;
/// Largest envelope message, in bytes (1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Largest encoded request the transports accept, in bytes (4 MiB): a few
/// maximal envelopes per publish.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;

/// Why a request failed, with the gRPC code it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or exceeds a size limit.
    #[error("{0}")]
    InvalidArgument(String),
    /// A rate limit or a bounded resource refused the request.
    #[error("{0}")]
    ResourceExhausted(String),
    /// Something the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The storage backend cannot be reached now; retrying may help.
    #[error("{0}")]
    Unavailable(String),
    /// The node failed; not the caller's fault.
    #[error("{0}")]
    Internal(String),
    /// The request needs a valid wallet token and has none
    /// (`--require-auth`, see [`crate::auth`]).
    #[error("{0}")]
    Unauthenticated(String),
    /// The token is valid, but its wallet may not do this.
    #[error("{0}")]
    PermissionDenied(String),
}

impl ApiError {
    /// The gRPC status code.
    pub fn code(&self) -> tonic::Code {
        match self {
            ApiError::InvalidArgument(_) => tonic::Code::InvalidArgument,
            ApiError::ResourceExhausted(_) => tonic::Code::ResourceExhausted,
            ApiError::NotFound(_) => tonic::Code::NotFound,
            ApiError::Unavailable(_) => tonic::Code::Unavailable,
            ApiError::Internal(_) => tonic::Code::Internal,
            ApiError::Unauthenticated(_) => tonic::Code::Unauthenticated,
            ApiError::PermissionDenied(_) => tonic::Code::PermissionDenied,
        }
    }

    /// The message, as sent to the client.
    pub fn message(&self) -> &str {
        match self {
            ApiError::InvalidArgument(m)
            | ApiError::ResourceExhausted(m)
            | ApiError::NotFound(m)
            | ApiError::Unavailable(m)
            | ApiError::Internal(m)
            | ApiError::Unauthenticated(m)
            | ApiError::PermissionDenied(m) => m,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err.code() {
            tonic::Code::PermissionDenied => ApiError::PermissionDenied(err.to_string()),
            _ => ApiError::Unauthenticated(err.to_string()),
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(err: ApiError) -> Self {
        tonic::Status::new(err.code(), err.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::LimitReached(m) => ApiError::ResourceExhausted(m),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            e @ (StoreError::Database(_) | StoreError::Corrupt(_)) => {
                tracing::error!(error = %e, "store failure");
                ApiError::Internal(e.to_string())
            }
        }
    }
}

impl From<RateLimited> for ApiError {
    fn from(err: RateLimited) -> Self {
        ApiError::ResourceExhausted(err.to_string())
    }
}

/// Who sent a request: the peer's IP address when the transport knows it.
pub type Client = Option<IpAddr>;

/// State shared by the services.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) publish_limiter: RateLimiter,
    pub(crate) read_limiter: RateLimiter,
    pub(crate) max_one_time_keys: u32,
    pub(crate) auth: Authenticator,
}

impl Shared {
    /// Charges `cost` to `client` in `limiter`; requests whose peer is unknown
    /// (in-process transports) are not limited.
    fn charge(&self, limiter: &RateLimiter, client: Client, cost: u32) -> Result<(), ApiError> {
        let Some(ip) = client else { return Ok(()) };
        limiter.check(ip, cost).map_err(|e| {
            Metrics::inc(&self.metrics.rate_limited);
            tracing::debug!(%ip, "rate limited");
            ApiError::from(e)
        })
    }

    /// Checks a publish's token (when `--require-auth` is on), counting and
    /// logging (at debug level, without the token) a refusal.
    fn authenticate(
        &self,
        client: Client,
        authorization: Option<&str>,
        req: &xmtp_proto::xmtp::message_api::v1::PublishRequest,
    ) -> Result<(), ApiError> {
        match self.auth.check_publish(authorization, req) {
            Ok(Some(token)) => {
                tracing::trace!(wallet = %token.wallet, "publish authenticated");
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(err) => {
                let counter = match err {
                    AuthError::RestrictedTopic => &self.metrics.permission_denied,
                    _ => &self.metrics.unauthenticated,
                };
                Metrics::inc(counter);
                tracing::debug!(client = ?client, reason = %err, "publish refused");
                Err(ApiError::from(err))
            }
        }
    }

    /// Counts an invalid request and passes the error on.
    fn invalid(&self, message: String) -> ApiError {
        Metrics::inc(&self.metrics.invalid_requests);
        ApiError::InvalidArgument(message)
    }

    /// Records the latency of a unary call that started at `start`.
    fn observe(&self, rpc: Rpc, start: Instant) {
        self.metrics.observe(rpc, start.elapsed());
    }
}

/// Checks a content topic: not empty, at most [`MAX_TOPIC_BYTES`].
pub fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("content topic is empty".into());
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(format!(
            "content topic is {} bytes; at most {MAX_TOPIC_BYTES} allowed",
            topic.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_bounded_and_non_empty() {
        assert!(check_topic("").is_err());
        assert!(check_topic(&"t".repeat(MAX_TOPIC_BYTES)).is_ok());
        assert!(check_topic(&"t".repeat(MAX_TOPIC_BYTES + 1)).is_err());
    }

    #[test]
    fn store_errors_map_to_grpc_codes() {
        let code = |e| ApiError::from(e).code();
        assert_eq!(
            code(StoreError::NotFound("x".into())),
            tonic::Code::NotFound
        );
        assert_eq!(
            code(StoreError::LimitReached("x".into())),
            tonic::Code::ResourceExhausted
        );
        assert_eq!(
            code(StoreError::Unavailable("x".into())),
            tonic::Code::Unavailable
        );
        assert_eq!(
            code(StoreError::Database("x".into())),
            tonic::Code::Internal
        );
    }
}
