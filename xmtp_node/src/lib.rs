//! A local XMTP node: XMTP's message API (`xmtp.message_api.v1.MessageApi`)
//! and this project's pre-key service (`xmtp.key_api.v1.KeyApi`), over gRPC
//! and over a grpc-gateway-compatible JSON gateway, stored in SQLite.
//!
//! Start one in-process (tests in other crates do this):
//!
//! ```no_run
//! # async fn demo() -> Result<(), xmtp_node::NodeError> {
//! let node = xmtp_node::Node::start(xmtp_node::NodeConfig::default()).await?;
//! println!("gRPC at {}", node.grpc_url());
//! node.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Modules: [`config`] (what can be configured), [`store`] (the `Store` trait
//! and SQLite), [`hub`] (subscriptions), [`service`] (the API semantics),
//! [`grpc`] and [`gateway`] (the two transports), [`rate_limit`], [`metrics`],
//! [`node`] (start and stop).

pub mod config;
pub mod gateway;
pub mod grpc;
pub mod hub;
pub mod metrics;
pub mod node;
pub mod rate_limit;
pub mod service;
pub mod store;

pub use config::{NodeConfig, StoreConfig};
pub use node::{Node, NodeError, RunningNode};
pub use rate_limit::BucketConfig;
pub use store::{SqliteStore, Store, StoreError};
