//! `xmtp-node`: runs a node until SIGINT or SIGTERM.
//!
//! Configuration comes from flags, each with an environment variable; see
//! `xmtp-node --help`. Logs go to stderr through `tracing` (filter with
//! `RUST_LOG`, format with `--log-format`); once both listeners are bound one
//! line `xmtp-node listening: grpc=ADDR http=ADDR` is printed on stdout.

use std::{net::IpAddr, process::ExitCode};

use clap::{Parser, ValueEnum};
use tracing_subscriber::EnvFilter;
use xmtp_node::{
    config::UNLIMITED, store::SqliteSync, BucketConfig, Node, NodeConfig, StoreConfig,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SyncMode {
    /// Durable when the node is killed, not on a power cut (fast).
    Normal,
    /// Every commit fsyncs: durable on a power cut too (about 2 ms a commit).
    Full,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// A local XMTP node: XMTP's message API and the pre-key service over gRPC and
/// a JSON gateway (grpc-gateway conventions), stored in SQLite or PostgreSQL.
///
/// Rate limits are per client IP, as token buckets: `--*-rate` tokens per
/// second up to `--*-burst`. A publish costs one token per envelope; a query,
/// each query of a batch, and a subscription cost one read token. By default
/// the limits are so high that nothing is throttled.
#[derive(Debug, Parser)]
#[command(name = "xmtp-node", version)]
struct Args {
    /// gRPC port (0 picks a free port).
    #[arg(long, env = "XMTP_GRPC_PORT", default_value_t = 5556)]
    grpc_port: u16,
    /// JSON gateway port (0 picks a free port).
    #[arg(long, env = "XMTP_HTTP_PORT", default_value_t = 5555)]
    http_port: u16,
    /// Address both listeners bind to.
    #[arg(long, env = "XMTP_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// SQLite database file (`:memory:` for a throw-away node). Ignored when
    /// --store is given.
    #[arg(long, env = "XMTP_NODE_DB", default_value = "xmtp-node.db3")]
    db: String,
    /// Store URL: `sqlite:PATH`, `sqlite::memory:` or `postgres://...`
    /// (several nodes may share one PostgreSQL database, created if missing).
    /// Overrides --db.
    #[arg(long, env = "XMTP_NODE_STORE")]
    store: Option<String>,
    /// Durability of SQLite commits: `normal` survives the node being killed
    /// (kill -9), `full` also survives a power cut at the cost of an fsync
    /// per group commit.
    #[arg(long, env = "XMTP_SQLITE_SYNC", value_enum, default_value_t = SyncMode::Normal)]
    sqlite_sync: SyncMode,
    /// Published envelopes per second per client.
    #[arg(long, env = "XMTP_PUBLISH_RATE", default_value_t = UNLIMITED.per_second)]
    publish_rate: f64,
    /// Burst of published envelopes per client.
    #[arg(long, env = "XMTP_PUBLISH_BURST", default_value_t = UNLIMITED.burst)]
    publish_burst: f64,
    /// Reads (queries, subscriptions) per second per client.
    #[arg(long, env = "XMTP_READ_RATE", default_value_t = UNLIMITED.per_second)]
    read_rate: f64,
    /// Burst of reads per client.
    #[arg(long, env = "XMTP_READ_BURST", default_value_t = UNLIMITED.burst)]
    read_burst: f64,
    /// Envelopes buffered per subscriber before a slow one is disconnected.
    #[arg(long, env = "XMTP_SUBSCRIBER_BUFFER", default_value_t = 4096)]
    subscriber_buffer: usize,
    /// Unclaimed one-time keys an installation may hold.
    #[arg(long, env = "XMTP_MAX_ONE_TIME_KEYS", default_value_t = 2000)]
    max_one_time_keys: u32,
    /// Seconds to wait for connections to drain at shutdown.
    #[arg(long, env = "XMTP_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    shutdown_grace_secs: u64,
    /// Refuse publishes without a valid XMTP bearer token (`Authorization:
    /// Bearer <base64 Token>`: an identity key signed by a wallet, and that
    /// key's signature of the wallet address and a creation time at most an
    /// hour old), as XMTP's node did: Unauthenticated (HTTP 401) otherwise.
    /// Publishes whose envelopes are all on `/xmtp/3/` topics need no token; a
    /// token's wallet may publish on `contact-` and `privatestore-` topics of
    /// its own address only (PermissionDenied, HTTP 403). Queries and
    /// subscriptions never need a token.
    #[arg(long, env = "XMTP_NODE_REQUIRE_AUTH", value_parser = clap::builder::BoolishValueParser::new())]
    require_auth: bool,
    /// Log format on stderr.
    #[arg(long, env = "XMTP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

impl Args {
    fn config(&self) -> Result<NodeConfig, String> {
        let store = match &self.store {
            Some(url) => url.parse::<StoreConfig>().map_err(|e| e.to_string())?,
            None => StoreConfig::Sqlite(self.db.clone()),
        };
        for (name, value) in [
            ("--publish-rate", self.publish_rate),
            ("--publish-burst", self.publish_burst),
            ("--read-rate", self.read_rate),
            ("--read-burst", self.read_burst),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!("{name} must be a positive number"));
            }
        }
        Ok(NodeConfig {
            host: self.host,
            grpc_port: self.grpc_port,
            http_port: self.http_port,
            store,
            sqlite_sync: match self.sqlite_sync {
                SyncMode::Normal => SqliteSync::Normal,
                SyncMode::Full => SqliteSync::Full,
            },
            publish_limit: BucketConfig {
                per_second: self.publish_rate,
                burst: self.publish_burst,
            },
            read_limit: BucketConfig {
                per_second: self.read_rate,
                burst: self.read_burst,
            },
            subscriber_buffer: self.subscriber_buffer,
            max_one_time_keys: self.max_one_time_keys,
            shutdown_grace: std::time::Duration::from_secs(self.shutdown_grace_secs),
            require_auth: self.require_auth,
            auth_token_lifetime: xmtp_node::auth::DEFAULT_TOKEN_LIFETIME,
        })
    }
}

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(%err, "cannot watch SIGTERM; only SIGINT stops the node");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logs(args.log_format);
    let config = match args.config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("xmtp-node: {err}");
            return ExitCode::from(2);
        }
    };
    let node = match Node::start(config).await {
        Ok(node) => node,
        Err(err) => {
            tracing::error!(%err, "cannot start");
            eprintln!("xmtp-node: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "xmtp-node listening: grpc={} http={}",
        node.grpc_addr(),
        node.http_addr()
    );
    termination().await;
    tracing::info!("shutting down: finishing in-flight requests, closing streams");
    node.shutdown().await;
    ExitCode::SUCCESS
}
