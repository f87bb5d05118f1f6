//! Helpers shared by the integration tests: a node started in-process,
//! clients of it, and an API wrapper that can fail publishes on demand.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use futures::StreamExt;
use xmtp_core::{
    Client, ClientBuilder, ClientOptions, DatabaseKey, LocalWallet, Message, MessagePage,
    MessageStream,
};
use xmtp_networking::{ApiError, EnvelopeStream, GrpcClient, XmtpApi};
use xmtp_node::{Node, NodeConfig, RunningNode};
use xmtp_proto::xmtp::{
    key_api::v1::{AddressInstallations, ClaimedKey},
    message_api::v1::{Envelope, QueryRequest, QueryResponse},
    v3::message_contents::{InstallationPublicKeyBundle, SignedCurve25519Key, WalletRevocation},
};

pub async fn start_node() -> RunningNode {
    Node::start(NodeConfig::default())
        .await
        .expect("node starts")
}

/// Options for tests: contacts are re-read on every use, so a revocation or
/// a new installation is seen at once.
pub fn options() -> ClientOptions {
    ClientOptions {
        contact_refresh: Duration::ZERO,
        ..ClientOptions::default()
    }
}

pub async fn api(node: &RunningNode) -> Arc<dyn XmtpApi> {
    Arc::new(
        GrpcClient::connect(&node.grpc_url())
            .await
            .expect("connects"),
    )
}

/// A client with an in-memory database.
pub async fn client(node: &RunningNode, wallet: &LocalWallet) -> Client {
    ClientBuilder::new()
        .api(api(node).await)
        .wallet(Arc::new(wallet.clone()))
        .options(options())
        .build()
        .await
        .expect("client builds")
}

/// A client with a database file.
pub async fn file_client(
    api: Arc<dyn XmtpApi>,
    wallet: &LocalWallet,
    path: &Path,
    key: &DatabaseKey,
) -> Client {
    ClientBuilder::new()
        .api(api)
        .wallet(Arc::new(wallet.clone()))
        .database_path(path)
        .database_key(key.clone())
        .options(options())
        .build()
        .await
        .expect("client builds")
}

/// The texts of a conversation, oldest first.
pub fn texts(client: &Client, peer: &str) -> Vec<String> {
    client
        .messages(peer, &MessagePage::default())
        .unwrap()
        .into_iter()
        .map(|m| m.text().unwrap_or_default())
        .collect()
}

/// (id, sender, text) of a conversation, oldest first.
pub fn history(client: &Client, peer: &str) -> Vec<(String, String, String)> {
    client
        .messages(peer, &MessagePage::default())
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                m.id.clone(),
                m.sender_address.clone(),
                m.text().unwrap_or_default(),
            )
        })
        .collect()
}

/// The next message of a stream, failing the test after 20 s.
pub async fn next(stream: &mut MessageStream) -> Message {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("a message within 20 s")
        .expect("stream open")
        .expect("no error")
}

/// An API that forwards to another, and can be told to fail publishes (to
/// play a crash or an outage between commit and publish).
pub struct FlakyApi {
    pub inner: Arc<dyn XmtpApi>,
    pub fail_publish: AtomicBool,
}

impl FlakyApi {
    pub fn new(inner: Arc<dyn XmtpApi>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fail_publish: AtomicBool::new(false),
        })
    }
}

#[async_trait]
impl XmtpApi for FlakyApi {
    async fn publish(&self, envelopes: Vec<Envelope>) -> Result<(), ApiError> {
        if self.fail_publish.load(Ordering::SeqCst) {
            return Err(ApiError::Unavailable("test outage".into()));
        }
        self.inner.publish(envelopes).await
    }
    async fn query(&self, request: QueryRequest) -> Result<QueryResponse, ApiError> {
        self.inner.query(request).await
    }
    async fn batch_query(
        &self,
        requests: Vec<QueryRequest>,
    ) -> Result<Vec<QueryResponse>, ApiError> {
        self.inner.batch_query(requests).await
    }
    async fn subscribe(&self, topics: Vec<String>) -> Result<EnvelopeStream, ApiError> {
        self.inner.subscribe(topics).await
    }
    async fn subscribe_all(&self) -> Result<EnvelopeStream, ApiError> {
        self.inner.subscribe_all().await
    }
    async fn register_installation(
        &self,
        bundle: InstallationPublicKeyBundle,
    ) -> Result<(), ApiError> {
        self.inner.register_installation(bundle).await
    }
    async fn upload_one_time_keys(
        &self,
        key: Vec<u8>,
        keys: Vec<SignedCurve25519Key>,
    ) -> Result<u32, ApiError> {
        self.inner.upload_one_time_keys(key, keys).await
    }
    async fn count_one_time_keys(&self, key: Vec<u8>) -> Result<u32, ApiError> {
        self.inner.count_one_time_keys(key).await
    }
    async fn get_installations(
        &self,
        addresses: Vec<String>,
    ) -> Result<Vec<AddressInstallations>, ApiError> {
        self.inner.get_installations(addresses).await
    }
    async fn claim_one_time_keys(&self, keys: Vec<Vec<u8>>) -> Result<Vec<ClaimedKey>, ApiError> {
        self.inner.claim_one_time_keys(keys).await
    }
    async fn publish_revocation(&self, revocation: WalletRevocation) -> Result<(), ApiError> {
        self.inner.publish_revocation(revocation).await
    }
}
