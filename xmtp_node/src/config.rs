//! Node configuration: where to listen, which store, the abuse limits and
//! whether publishes need a wallet token.
//!
//! [`NodeConfig::default`] is the configuration for tests: both listeners on
//! 127.0.0.1 port 0 (a free port each), an in-memory SQLite store, and rate
//! limits so large that nothing is throttled. The `xmtp-node` binary builds a
//! `NodeConfig` from its flags (see `xmtp-node --help`).

use std::{
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
    time::Duration,
};

use crate::{rate_limit::BucketConfig, store::SqliteSync};

/// Which storage backend to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// Embedded SQLite at this path, or `:memory:`.
    Sqlite(String),
    /// PostgreSQL at this URL (`postgres://user@host:port/database`); several
    /// nodes may share one database (see [`crate::store::postgres`]).
    Postgres(String),
}

/// A `--store` value that names no known backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown store '{0}': expected sqlite:PATH, sqlite::memory: or postgres://...")]
pub struct UnknownStore(pub String);

impl FromStr for StoreConfig {
    type Err = UnknownStore;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(UnknownStore(s.to_owned()));
            }
            Ok(StoreConfig::Sqlite(path.to_owned()))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(StoreConfig::Postgres(s.to_owned()))
        } else {
            Err(UnknownStore(s.to_owned()))
        }
    }
}

/// Everything [`crate::Node::start`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// Address both listeners bind to.
    pub host: IpAddr,
    /// gRPC port (0: any free port).
    pub grpc_port: u16,
    /// JSON gateway port (0: any free port).
    pub http_port: u16,
    /// Storage backend.
    pub store: StoreConfig,
    /// Durability of SQLite commits (ignored by other stores).
    pub sqlite_sync: SqliteSync,
    /// Per-client limit on published envelopes.
    pub publish_limit: BucketConfig,
    /// Per-client limit on queries and subscriptions.
    pub read_limit: BucketConfig,
    /// Envelopes buffered per subscriber before it is cut off as lagging.
    pub subscriber_buffer: usize,
    /// Unclaimed one-time keys an installation may hold.
    pub max_one_time_keys: u32,
    /// How long [`crate::RunningNode::shutdown`] waits for connections to
    /// drain before closing them (a client that ignores GOAWAY must not keep
    /// the node alive).
    pub shutdown_grace: Duration,
    /// Refuse publishes without a valid XMTP bearer token (`--require-auth`;
    /// see [`crate::auth`] for the rule and its exemption of `/xmtp/3/`
    /// topics). Off by default: the `authorization` header is not read.
    pub require_auth: bool,
    /// How long a token is accepted after its creation time when
    /// [`require_auth`](Self::require_auth) is on: one hour, as XMTP's node.
    pub auth_token_lifetime: Duration,
}

/// Rate limits so high that tests and benchmarks are never throttled.
pub const UNLIMITED: BucketConfig = BucketConfig {
    per_second: 1e9,
    burst: 1e9,
};

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            grpc_port: 0,
            http_port: 0,
            store: StoreConfig::Sqlite(":memory:".into()),
            sqlite_sync: SqliteSync::default(),
            publish_limit: UNLIMITED,
            read_limit: UNLIMITED,
            subscriber_buffer: 4096,
            max_one_time_keys: 2000,
            shutdown_grace: Duration::from_secs(10),
            require_auth: false,
            auth_token_lifetime: crate::auth::DEFAULT_TOKEN_LIFETIME,
        }
    }
}

impl NodeConfig {
    /// The test configuration with an SQLite file (or `:memory:`) as store.
    pub fn with_sqlite(path: impl Into<String>) -> Self {
        Self {
            store: StoreConfig::Sqlite(path.into()),
            ..Self::default()
        }
    }

    /// The test configuration with the PostgreSQL database at `url` as store
    /// (created if missing, migrated at start).
    pub fn with_postgres(url: impl Into<String>) -> Self {
        Self {
            store: StoreConfig::Postgres(url.into()),
            ..Self::default()
        }
    }

    /// Sets [`require_auth`](Self::require_auth).
    pub fn with_require_auth(mut self, required: bool) -> Self {
        self.require_auth = required;
        self
    }

    /// Sets [`auth_token_lifetime`](Self::auth_token_lifetime).
    pub fn with_auth_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.auth_token_lifetime = lifetime;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse() {
        assert_eq!(
            "sqlite:a.db3".parse(),
            Ok(StoreConfig::Sqlite("a.db3".into()))
        );
        assert_eq!(
            "sqlite::memory:".parse(),
            Ok(StoreConfig::Sqlite(":memory:".into()))
        );
        assert_eq!(
            "sqlite:///tmp/x.db".parse(),
            Ok(StoreConfig::Sqlite("/tmp/x.db".into()))
        );
        assert_eq!(
            "postgres://u@h/db".parse(),
            Ok(StoreConfig::Postgres("postgres://u@h/db".into()))
        );
        assert!("mysql://x".parse::<StoreConfig>().is_err());
        assert!("sqlite:".parse::<StoreConfig>().is_err());
    }
}
