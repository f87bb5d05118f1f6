//! The client of the XMTP node API: the [`XmtpApi`] trait and its gRPC
//! implementation, [`GrpcClient`].
//!
//! - [`XmtpApi`]: publish, query (one page, every page as a stream, or all
//!   collected), batch query, subscribe, and the pre-key service, in the
//!   generated protobuf types of `xmtp_proto`.
//! - [`GrpcClient`]: tonic over `http://` or `https://` (rustls, native
//!   roots), with timeouts and retries of transient failures
//!   ([`ClientOptions`], [`RetryPolicy`]).
//! - [`ResilientSubscription`]: a subscription that resubscribes after a
//!   dropped connection and back-fills the gap, each envelope exactly once.
//! - [`ApiError`]: what went wrong, and whether retrying can help.
//!
//! ```no_run
//! use futures::StreamExt;
//! use xmtp_networking::{GrpcClient, XmtpApi};
//! use xmtp_proto::xmtp::message_api::v1::{Envelope, SortDirection};
//!
//! # async fn example() -> Result<(), xmtp_networking::ApiError> {
//! let client = GrpcClient::connect("http://localhost:5556").await?;
//! let topic = "/xmtp/3/installation-00/proto".to_owned();
//! let mut stream = client.subscribe(vec![topic.clone()]).await?;
//! client
//!     .publish(vec![Envelope { content_topic: topic.clone(), timestamp_ns: 1, message: b"hi".to_vec() }])
//!     .await?;
//! let received = stream.next().await.transpose()?;
//! let history = client.query_all(&topic, 0, 0, SortDirection::Ascending).await?;
//! assert_eq!(history.len(), 1);
//! # let _ = received;
//! # Ok(())
//! # }
//! ```

mod api;
mod client;
mod error;
pub mod limits;
mod options;
pub mod paging;
mod retry;
mod subscription;
#[cfg(test)]
mod testing;

pub use api::{EnvelopeStream, PageStream, QueriedEnvelopes, XmtpApi};
pub use client::{GrpcClient, APP_VERSION_HEADER, AUTHORIZATION_HEADER};
pub use error::ApiError;
pub use limits::MAX_BATCH_QUERIES;
pub use options::ClientOptions;
pub use retry::RetryPolicy;
pub use subscription::{ResilientOptions, ResilientSubscription};
