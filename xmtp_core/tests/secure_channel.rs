//! The secure channel (seed 000) against a node started in-process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use async_trait::async_trait;
use prost::Message as _;
use xmtp_core::{
    secure_channel::handshake_topic, Client, ClientBuilder, ClientOptions, DatabaseKey,
    LocalWallet, SecureChannelError,
};
use xmtp_cryptography::InstallationId;
use xmtp_networking::{ApiError, EnvelopeStream, GrpcClient, XmtpApi};
use xmtp_node::{Node, NodeConfig, RunningNode};
use xmtp_proto::xmtp::{
    key_api::v1::{AddressInstallations, ClaimedKey},
    message_api::v1::{Envelope, QueryRequest, QueryResponse},
    v3::message_contents::{
        InstallationPublicKeyBundle, SecureChannelHandshake, SignedCurve25519Key,
        SignedSecureChannelHandshake, WalletRevocation,
    },
};

/// Forwards to the node, counting calls; can hold publishes back.
struct TestApi {
    inner: Arc<dyn XmtpApi>,
    calls: AtomicUsize,
    hold_publishes: AtomicBool,
    held: Mutex<Vec<Envelope>>,
}

impl TestApi {
    async fn connect(node: &RunningNode) -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::new(GrpcClient::connect(&node.grpc_url()).await.unwrap()),
            calls: AtomicUsize::new(0),
            hold_publishes: AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
        })
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl XmtpApi for TestApi {
    async fn publish(&self, envelopes: Vec<Envelope>) -> Result<(), ApiError> {
        self.count();
        if self.hold_publishes.load(Ordering::SeqCst) {
            self.held.lock().unwrap().extend(envelopes);
            return Ok(());
        }
        self.inner.publish(envelopes).await
    }
    async fn query(&self, request: QueryRequest) -> Result<QueryResponse, ApiError> {
        self.count();
        self.inner.query(request).await
    }
    async fn batch_query(
        &self,
        requests: Vec<QueryRequest>,
    ) -> Result<Vec<QueryResponse>, ApiError> {
        self.count();
        self.inner.batch_query(requests).await
    }
    async fn subscribe(&self, topics: Vec<String>) -> Result<EnvelopeStream, ApiError> {
        self.count();
        self.inner.subscribe(topics).await
    }
    async fn subscribe_all(&self) -> Result<EnvelopeStream, ApiError> {
        self.count();
        self.inner.subscribe_all().await
    }
    async fn register_installation(
        &self,
        bundle: InstallationPublicKeyBundle,
    ) -> Result<(), ApiError> {
        self.count();
        self.inner.register_installation(bundle).await
    }
    async fn upload_one_time_keys(
        &self,
        key: Vec<u8>,
        keys: Vec<SignedCurve25519Key>,
    ) -> Result<u32, ApiError> {
        self.count();
        self.inner.upload_one_time_keys(key, keys).await
    }
    async fn count_one_time_keys(&self, key: Vec<u8>) -> Result<u32, ApiError> {
        self.count();
        self.inner.count_one_time_keys(key).await
    }
    async fn get_installations(
        &self,
        addresses: Vec<String>,
    ) -> Result<Vec<AddressInstallations>, ApiError> {
        self.count();
        self.inner.get_installations(addresses).await
    }
    async fn claim_one_time_keys(&self, keys: Vec<Vec<u8>>) -> Result<Vec<ClaimedKey>, ApiError> {
        self.count();
        self.inner.claim_one_time_keys(keys).await
    }
    async fn publish_revocation(&self, revocation: WalletRevocation) -> Result<(), ApiError> {
        self.count();
        self.inner.publish_revocation(revocation).await
    }
}

fn options() -> ClientOptions {
    ClientOptions {
        contact_refresh: Duration::ZERO,
        ..ClientOptions::default()
    }
}

async fn client(api: Arc<TestApi>) -> Client {
    ClientBuilder::new()
        .api(api)
        .options(options())
        .build()
        .await
        .unwrap()
}

async fn file_client(
    api: Arc<TestApi>,
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
        .unwrap()
}

#[tokio::test]
async fn messages_round_trip_both_ways_and_then_use_no_network() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let (alice_api, bob_api) = (TestApi::connect(&node).await, TestApi::connect(&node).await);
    let alice = client(alice_api.clone()).await;
    let bob = client(bob_api.clone()).await;
    bob.enable_secure_channel().await.unwrap();

    let sealed = alice
        .encrypt(b"Hello from A!", &bob.address())
        .await
        .unwrap();
    assert!(!sealed.ciphertext.windows(13).any(|w| w == b"Hello from A!"));
    let opened = bob
        .decrypt(&sealed.nonce, &sealed.ciphertext, &alice.address())
        .await
        .unwrap();
    assert_eq!(opened, b"Hello from A!");
    let reply = bob
        .encrypt(b"Hello from B!", &alice.address())
        .await
        .unwrap();
    assert_eq!(
        alice
            .decrypt(&reply.nonce, &reply.ciphertext, &bob.address())
            .await
            .unwrap(),
        b"Hello from B!"
    );

    // The handshake is done: from now on, both sides work offline.
    let before = (
        alice_api.calls.load(Ordering::SeqCst),
        bob_api.calls.load(Ordering::SeqCst),
    );
    let mut nonces = std::collections::HashSet::new();
    for i in 0..20 {
        let text = format!("message {i}");
        let a = alice
            .encrypt(text.as_bytes(), &bob.address())
            .await
            .unwrap();
        assert!(nonces.insert(a.nonce), "nonce reused");
        assert_eq!(
            bob.decrypt(&a.nonce, &a.ciphertext, &alice.address())
                .await
                .unwrap(),
            text.as_bytes()
        );
        let b = bob
            .encrypt(text.as_bytes(), &alice.address())
            .await
            .unwrap();
        assert_eq!(
            alice
                .decrypt(&b.nonce, &b.ciphertext, &bob.address())
                .await
                .unwrap(),
            text.as_bytes()
        );
    }
    assert_eq!(
        (
            alice_api.calls.load(Ordering::SeqCst),
            bob_api.calls.load(Ordering::SeqCst)
        ),
        before,
        "no network call after the handshake"
    );
}

#[tokio::test]
async fn tampering_a_wrong_sender_and_replays_are_refused() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let alice = client(TestApi::connect(&node).await).await;
    let bob = client(TestApi::connect(&node).await).await;
    let carol = client(TestApi::connect(&node).await).await;
    bob.enable_secure_channel().await.unwrap();
    let sealed = alice.encrypt(b"secret", &bob.address()).await.unwrap();
    let from = alice.address();

    // Tampered before the channel is known: the handshake is still accepted
    // and the forgery refused.
    let mut nonce = sealed.nonce;
    nonce[11] ^= 1;
    assert!(matches!(
        bob.decrypt(&nonce, &sealed.ciphertext, &from).await,
        Err(SecureChannelError::Authentication)
    ));
    let mut body = sealed.ciphertext.clone();
    let last = body.len() - 1;
    body[last] ^= 0x80;
    assert!(matches!(
        bob.decrypt(&sealed.nonce, &body, &from).await,
        Err(SecureChannelError::Authentication)
    ));
    let mut header = sealed.ciphertext.clone();
    header[1] ^= 1; // another channel id
    assert!(matches!(
        bob.decrypt(&sealed.nonce, &header, &from).await,
        Err(SecureChannelError::UnknownChannel)
    ));
    let mut sender = sealed.ciphertext.clone();
    sender[20] ^= 1; // another sending installation
    assert!(bob.decrypt(&sealed.nonce, &sender, &from).await.is_err());
    assert!(matches!(
        bob.decrypt(&sealed.nonce, &sealed.ciphertext[..30], &from)
            .await,
        Err(SecureChannelError::Malformed(_))
    ));
    assert!(matches!(
        bob.decrypt(&sealed.nonce[..8], &sealed.ciphertext, &from)
            .await,
        Err(SecureChannelError::Malformed(_))
    ));
    assert!(matches!(
        bob.decrypt(&sealed.nonce, &sealed.ciphertext, &carol.address())
            .await,
        Err(SecureChannelError::WrongSender { .. })
    ));
    assert!(matches!(
        bob.decrypt(&sealed.nonce, &sealed.ciphertext, "0xnot-an-address")
            .await,
        Err(SecureChannelError::Client(_))
    ));

    // The untampered message opens once; its replay is refused.
    assert_eq!(
        bob.decrypt(&sealed.nonce, &sealed.ciphertext, &from)
            .await
            .unwrap(),
        b"secret"
    );
    assert!(matches!(
        bob.decrypt(&sealed.nonce, &sealed.ciphertext, &from).await,
        Err(SecureChannelError::Replayed(0))
    ));
    // Bob's own message cannot be fed back to him as Alice's.
    let back = bob.encrypt(b"to alice", &alice.address()).await.unwrap();
    assert!(matches!(
        bob.decrypt(&back.nonce, &back.ciphertext, &from).await,
        Err(SecureChannelError::UnknownSenderInstallation(_))
    ));
    // Carol cannot read Alice's message to Bob.
    assert!(carol
        .decrypt(&sealed.nonce, &sealed.ciphertext, &from)
        .await
        .is_err());
}

#[tokio::test]
async fn a_restarted_client_keeps_its_channels_and_counters() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (alice_w, bob_w) = (LocalWallet::random(), LocalWallet::random());
    let (alice_key, bob_key) = (DatabaseKey::random(), DatabaseKey::random());
    let (alice_db, bob_db) = (dir.path().join("a.db3"), dir.path().join("b.db3"));
    let alice = file_client(
        TestApi::connect(&node).await,
        &alice_w,
        &alice_db,
        &alice_key,
    )
    .await;
    let bob = file_client(TestApi::connect(&node).await, &bob_w, &bob_db, &bob_key).await;
    bob.enable_secure_channel().await.unwrap();
    let first = alice.encrypt(b"before", &bob.address()).await.unwrap();
    assert_eq!(
        bob.decrypt(&first.nonce, &first.ciphertext, &alice.address())
            .await
            .unwrap(),
        b"before"
    );
    let (alice_addr, bob_addr) = (alice.address(), bob.address());
    drop((alice, bob));

    let alice_api = TestApi::connect(&node).await;
    let bob_api = TestApi::connect(&node).await;
    let alice = file_client(alice_api.clone(), &alice_w, &alice_db, &alice_key).await;
    let bob = file_client(bob_api.clone(), &bob_w, &bob_db, &bob_key).await;
    let calls = (
        alice_api.calls.load(Ordering::SeqCst),
        bob_api.calls.load(Ordering::SeqCst),
    );
    let second = alice.encrypt(b"after", &bob_addr).await.unwrap();
    assert_ne!(
        second.nonce, first.nonce,
        "the counter survived the restart"
    );
    assert_eq!(
        bob.decrypt(&second.nonce, &second.ciphertext, &alice_addr)
            .await
            .unwrap(),
        b"after"
    );
    assert!(matches!(
        bob.decrypt(&first.nonce, &first.ciphertext, &alice_addr)
            .await,
        Err(SecureChannelError::Replayed(0))
    ));
    let reply = bob.encrypt(b"still here", &alice_addr).await.unwrap();
    assert_eq!(
        alice
            .decrypt(&reply.nonce, &reply.ciphertext, &bob_addr)
            .await
            .unwrap(),
        b"still here"
    );
    assert_eq!(
        (
            alice_api.calls.load(Ordering::SeqCst),
            bob_api.calls.load(Ordering::SeqCst)
        ),
        calls,
        "a restored channel needs no new handshake"
    );
}

#[tokio::test]
async fn a_peer_without_keys_or_registration_is_reported() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let alice = client(TestApi::connect(&node).await).await;
    let bob = client(TestApi::connect(&node).await).await;
    assert!(matches!(
        alice.encrypt(b"x", &bob.address()).await,
        Err(SecureChannelError::PeerNotEnabled(_))
    ));
    assert!(matches!(
        alice.encrypt(b"x", &alice.address()).await,
        Err(SecureChannelError::OwnAddress)
    ));
    let stranger = LocalWallet::random().address().to_checksum();
    assert!(matches!(
        alice.encrypt(b"x", &stranger).await,
        Err(SecureChannelError::Client(
            xmtp_core::ClientError::PeerNotRegistered(_)
        ))
    ));
}

#[tokio::test]
async fn a_handshake_claiming_another_address_is_refused() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let alice = client(TestApi::connect(&node).await).await;
    let bob = client(TestApi::connect(&node).await).await;
    let mallory_api = TestApi::connect(&node).await;
    let mallory = client(mallory_api.clone()).await;
    bob.enable_secure_channel().await.unwrap();
    mallory.enable_secure_channel().await.unwrap();

    // Mallory opens a channel to Bob but holds her handshake back, then
    // publishes it rewritten to claim Alice's address.
    mallory_api.hold_publishes.store(true, Ordering::SeqCst);
    let sealed = mallory
        .encrypt(b"I am Alice", &bob.address())
        .await
        .unwrap();
    mallory_api.hold_publishes.store(false, Ordering::SeqCst);
    let bob_id = InstallationId::from_hex(&bob.installation_id()).unwrap();
    let held: Vec<Envelope> = mallory_api.held.lock().unwrap().drain(..).collect();
    let mut original = held
        .into_iter()
        .find(|e| e.content_topic == handshake_topic(&bob_id))
        .unwrap();
    let signed = SignedSecureChannelHandshake::decode(original.message.as_slice()).unwrap();
    let mut handshake = SecureChannelHandshake::decode(signed.handshake.as_slice()).unwrap();
    handshake.initiator_address = alice.address();
    let forged = SignedSecureChannelHandshake {
        handshake: handshake.encode_to_vec(),
        signature: signed.signature.clone(),
    };
    let raw = GrpcClient::connect(&node.grpc_url()).await.unwrap();
    raw.publish(vec![Envelope {
        message: forged.encode_to_vec(),
        ..original.clone()
    }])
    .await
    .unwrap();
    assert!(matches!(
        bob.decrypt(&sealed.nonce, &sealed.ciphertext, &alice.address())
            .await,
        Err(SecureChannelError::UnknownChannel)
    ));

    // The genuine handshake, once published, names Mallory, not Alice.
    original.timestamp_ns += 1;
    raw.publish(vec![original]).await.unwrap();
    assert!(matches!(
        bob.decrypt(&sealed.nonce, &sealed.ciphertext, &alice.address())
            .await,
        Err(SecureChannelError::WrongSender { .. })
    ));
    assert_eq!(
        bob.decrypt(&sealed.nonce, &sealed.ciphertext, &mallory.address())
            .await
            .unwrap(),
        b"I am Alice"
    );
}

#[tokio::test]
async fn every_installation_of_the_responder_can_decrypt() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let bob_w = LocalWallet::random();
    let alice = client(TestApi::connect(&node).await).await;
    let bob1 = ClientBuilder::new()
        .api(TestApi::connect(&node).await)
        .wallet(Arc::new(bob_w.clone()))
        .options(options())
        .build()
        .await
        .unwrap();
    let bob2 = ClientBuilder::new()
        .api(TestApi::connect(&node).await)
        .wallet(Arc::new(bob_w))
        .options(options())
        .build()
        .await
        .unwrap();
    bob1.enable_secure_channel().await.unwrap();
    bob2.enable_secure_channel().await.unwrap();
    let sealed = alice.encrypt(b"to both", &bob1.address()).await.unwrap();
    for bob in [&bob1, &bob2] {
        assert_eq!(
            bob.decrypt(&sealed.nonce, &sealed.ciphertext, &alice.address())
                .await
                .unwrap(),
            b"to both"
        );
    }
    // Each Bob installation sends under its own keys; Alice reads both.
    let r1 = bob1.encrypt(b"one", &alice.address()).await.unwrap();
    let r2 = bob2.encrypt(b"two", &alice.address()).await.unwrap();
    assert_eq!(r1.nonce, r2.nonce, "same counter value ...");
    assert_ne!(r1.ciphertext, r2.ciphertext, "... under different keys");
    for (r, text) in [(r1, b"one"), (r2, b"two")] {
        assert_eq!(
            alice
                .decrypt(&r.nonce, &r.ciphertext, &bob1.address())
                .await
                .unwrap(),
            text
        );
    }
}
