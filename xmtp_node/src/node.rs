//! Starting and stopping a node: open the store, bind both listeners, serve
//! gRPC (tonic) and the JSON gateway (axum) until shut down.
//!
//! Shutdown (an explicit [`RunningNode::shutdown`], or dropping the
//! [`RunningNode`]) stops accepting connections, lets in-flight requests
//! finish (a publish being committed is still acknowledged), and ends every
//! subscription stream so that the servers can drain.

use std::{net::SocketAddr, sync::Arc};

use futures::StreamExt;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;
use xmtp_proto::xmtp::{
    key_api::v1::key_api_server::KeyApiServer,
    message_api::v1::message_api_server::MessageApiServer,
};

use crate::{
    auth::Authenticator,
    config::{NodeConfig, StoreConfig},
    gateway,
    grpc::{GrpcKeyApi, GrpcMessageApi},
    hub::Hub,
    metrics::Metrics,
    rate_limit::RateLimiter,
    service::{KeyService, MessageService, Shared, MAX_REQUEST_BYTES},
    store::{PostgresStore, SqliteStore, Store, StoreError},
};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A listener could not bind its address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// The configured store is not available in this build.
    #[error("store not supported yet: {0}")]
    UnsupportedStore(String),
}

/// Entry point of the node as a library.
#[derive(Debug, Clone, Copy)]
pub struct Node;

impl Node {
    /// Opens the store, binds both listeners and starts serving.
    pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
        let hub = Hub::new(config.subscriber_buffer);
        let store: Arc<dyn Store> = match &config.store {
            StoreConfig::Sqlite(path) => Arc::new(SqliteStore::open_with(
                path,
                config.sqlite_sync,
                hub.clone(),
            )?),
            StoreConfig::Postgres(url) => Arc::new(PostgresStore::open(url, hub.clone()).await?),
        };
        let metrics = Arc::new(Metrics::default());
        let shared = Arc::new(Shared {
            store,
            hub: Arc::clone(&hub),
            metrics: Arc::clone(&metrics),
            publish_limiter: RateLimiter::new(config.publish_limit),
            read_limiter: RateLimiter::new(config.read_limit),
            max_one_time_keys: config.max_one_time_keys,
            auth: Authenticator::new(config.require_auth, config.auth_token_lifetime),
        });
        let messages = MessageService::new(Arc::clone(&shared));
        let keys = KeyService::new(shared);

        let grpc_listener = bind(SocketAddr::new(config.host, config.grpc_port)).await?;
        let http_listener = bind(SocketAddr::new(config.host, config.http_port)).await?;
        let grpc_addr = local_addr(&grpc_listener)?;
        let http_addr = local_addr(&http_listener)?;
        let (stop_tx, stop_rx) = watch::channel(false);

        let grpc = tonic::transport::Server::builder()
            .add_service(
                MessageApiServer::new(GrpcMessageApi(messages.clone()))
                    .max_decoding_message_size(MAX_REQUEST_BYTES),
            )
            .add_service(
                KeyApiServer::new(GrpcKeyApi(keys.clone()))
                    .max_decoding_message_size(MAX_REQUEST_BYTES),
            );
        let incoming = TcpListenerStream::new(grpc_listener).map(|conn| {
            conn.inspect(|stream| {
                let _ = stream.set_nodelay(true);
            })
        });
        let grpc_task = tokio::spawn({
            let stop = stopped(stop_rx.clone());
            async move {
                if let Err(err) = grpc.serve_with_incoming_shutdown(incoming, stop).await {
                    tracing::error!(%err, "gRPC server failed");
                }
            }
        });

        let router = gateway::router(messages, keys, metrics, Arc::clone(&hub));
        let http_task = tokio::spawn({
            let stop = stopped(stop_rx);
            async move {
                let service = router.into_make_service_with_connect_info::<SocketAddr>();
                if let Err(err) = axum::serve(http_listener, service)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(%err, "JSON gateway failed");
                }
            }
        });
        tracing::info!(%grpc_addr, %http_addr, require_auth = config.require_auth, "node listening");
        Ok(RunningNode {
            grpc_addr,
            http_addr,
            stop: stop_tx,
            hub,
            grace: config.shutdown_grace,
            tasks: vec![grpc_task, http_task],
        })
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, NodeError> {
    listener.local_addr().map_err(|source| NodeError::Bind {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

/// Resolves once the stop flag is raised (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// A node that is serving. Dropping it stops it (without waiting).
#[derive(Debug)]
pub struct RunningNode {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    hub: Arc<Hub>,
    grace: std::time::Duration,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningNode {
    /// Where gRPC listens.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Where the JSON gateway listens.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The gRPC endpoint as a URL, `http://HOST:PORT`.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// The JSON gateway as a URL, `http://HOST:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    fn signal_stop(&self) {
        self.stop.send_replace(true);
        self.hub.close();
    }

    /// Stops accepting, lets in-flight requests finish, ends subscriptions and
    /// waits until both servers have stopped, or until the shutdown grace
    /// period is over, after which remaining connections are closed.
    pub async fn shutdown(mut self) {
        self.signal_stop();
        let tasks = std::mem::take(&mut self.tasks);
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        if tokio::time::timeout(self.grace, futures::future::join_all(tasks))
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.grace, "connections did not drain in time; closing them");
            for abort in aborts {
                abort.abort();
            }
        }
        tracing::info!("node stopped");
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.signal_stop();
    }
}
