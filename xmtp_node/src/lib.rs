//! A local XMTP node: XMTP's message API (`xmtp.message_api.v1.MessageApi`)
//! and this project's pre-key service (`xmtp.key_api.v1.KeyApi`), over gRPC
//! and over a grpc-gateway-compatible JSON gateway, stored in SQLite (one
//! node) or PostgreSQL (several nodes over one database).
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
//! # Configuration
//!
//! The `xmtp-node` binary takes flags, each with an environment variable
//! (`xmtp-node --help` lists them all); in-process, set the same things on
//! [`NodeConfig`].
//!
//! | flag | env | default | meaning |
//! |---|---|---|---|
//! | `--grpc-port` | `XMTP_GRPC_PORT` | 5556 | gRPC port (0: any free port) |
//! | `--http-port` | `XMTP_HTTP_PORT` | 5555 | JSON gateway port |
//! | `--host` | `XMTP_HOST` | 127.0.0.1 | address both listen on |
//! | `--db` | `XMTP_NODE_DB` | `xmtp-node.db3` | SQLite file, or `:memory:` |
//! | `--store` | `XMTP_NODE_STORE` | | `sqlite:PATH` or `postgres://...` (overrides `--db`) |
//! | `--sqlite-sync` | `XMTP_SQLITE_SYNC` | `normal` | `full` also survives power cuts (an fsync per commit) |
//! | `--publish-rate`, `--publish-burst` | `XMTP_PUBLISH_RATE`, `_BURST` | unlimited | envelopes/s per client IP |
//! | `--read-rate`, `--read-burst` | `XMTP_READ_RATE`, `_BURST` | unlimited | queries and subscriptions/s per client IP |
//! | `--subscriber-buffer` | `XMTP_SUBSCRIBER_BUFFER` | 4096 | envelopes queued per subscriber before it is cut off |
//! | `--max-one-time-keys` | `XMTP_MAX_ONE_TIME_KEYS` | 2000 | unclaimed one-time keys per installation |
//! | `--shutdown-grace-secs` | `XMTP_SHUTDOWN_GRACE_SECS` | 10 | time connections get to drain at shutdown |
//! | `--log-format` | `XMTP_LOG_FORMAT` | `text` | `text` or `json` logs on stderr; filter with `RUST_LOG` |
//! | `--require-auth` | `XMTP_NODE_REQUIRE_AUTH` | off | refuse publishes without a valid XMTP token (see [`auth`]) |
//!
//! Limits enforced on every request (InvalidArgument beyond them): topics of
//! 1 to 300 bytes, messages up to 1 MiB, 4 MiB per gRPC request, pages of at
//! most 100 envelopes, batches of at most 50 queries; see [`service`].
//!
//! Modules: [`auth`] (XMTP's bearer tokens, `--require-auth`), [`config`] (what can be configured), [`store`] (the `Store` trait
//! and SQLite), [`hub`] (subscriptions), [`service`] (the API semantics),
//! [`grpc`] and [`gateway`] (the two transports), [`rate_limit`], [`metrics`],
//! [`node`] (start and stop).

pub mod auth;
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
