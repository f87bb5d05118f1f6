#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Full-stack client benches against an in-process node (SQLite in memory),
//! beside the raw vodozemac encrypt+decrypt rate in the same run.
//!
//! - `first_message_to_new_contact`: fetch and verify the bundle, claim a
//!   one-time key, open the Olm session, encrypt, commit, publish.
//! - `send_to_receive/batch_100`: Alice sends 100 messages; the time until
//!   Bob's stream yielded all 100 (throughput in messages).
//! - `raw_vodozemac/encrypt_decrypt`: one Olm encrypt plus decrypt of the
//!   same plaintext size, no storage, no network.
//! - Before the criterion groups, a sustained run of `XMTP_BENCH_MESSAGES`
//!   messages (default 1,000; 10,000 for the reported figures) prints
//!   messages/s and p50/p99 send-to-receive latency (with in-memory and with
//!   file databases), and the raw vodozemac rate over the same number of
//!   messages.
//!
//! Run: `XMTP_BENCH_MESSAGES=10000 cargo bench -p xmtp_core --bench client`
//! (add `-- --warm-up-time 1 --measurement-time 3` while others work).

use std::{
    collections::HashMap,
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt;
use vodozemac::olm::{Account, OlmMessage, SessionConfig};
use xmtp_core::{Client, ClientBuilder, LocalWallet};
use xmtp_networking::{GrpcClient, XmtpApi};
use xmtp_node::{Node, NodeConfig, RunningNode};

/// Roughly what one text message weighs inside the ratchet.
const PAYLOAD_LEN: usize = 160;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn new_client(api: &Arc<dyn XmtpApi>) -> Client {
    ClientBuilder::new()
        .api(api.clone())
        .wallet(Arc::new(LocalWallet::random()))
        .build()
        .await
        .unwrap()
}

/// A client whose database is a file (WAL, synchronous = FULL: one fsync per commit).
async fn file_client(api: &Arc<dyn XmtpApi>, path: &std::path::Path) -> Client {
    ClientBuilder::new()
        .api(api.clone())
        .wallet(Arc::new(LocalWallet::random()))
        .database_path(path)
        .database_key(xmtp_core::DatabaseKey::random())
        .build()
        .await
        .unwrap()
}

struct Setup {
    _node: RunningNode,
    api: Arc<dyn XmtpApi>,
}

async fn setup() -> Setup {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let api: Arc<dyn XmtpApi> = Arc::new(GrpcClient::connect(&node.grpc_url()).await.unwrap());
    Setup { _node: node, api }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Sends `n` messages from Alice to Bob (each send awaited) while Bob's
/// stream receives them; returns (messages/s, per-message latencies).
async fn sustained(alice: &Client, bob: &Client, n: usize) -> (f64, Vec<Duration>) {
    let mut stream = bob.stream_conversation(&alice.address()).await.unwrap();
    let receiver = tokio::spawn(async move {
        let mut received = HashMap::with_capacity(n);
        while received.len() < n {
            let m = stream.next().await.unwrap().unwrap();
            let text = m.text().unwrap();
            let index: usize = text.split(':').next().unwrap().parse().unwrap();
            received.insert(index, Instant::now());
        }
        received
    });
    let padding = "x".repeat(PAYLOAD_LEN.saturating_sub(80));
    let start = Instant::now();
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        sent.push(Instant::now());
        alice
            .send_text(&bob.address(), &format!("{i}:{padding}"))
            .await
            .unwrap();
    }
    let received = receiver.await.unwrap();
    let elapsed = received.values().max().unwrap().duration_since(start);
    let mut latencies: Vec<Duration> = (0..n)
        .map(|i| received[&i].duration_since(sent[i]))
        .collect();
    latencies.sort();
    (n as f64 / elapsed.as_secs_f64(), latencies)
}

/// One-direction Olm traffic without storage or network.
struct RawPair {
    sender: vodozemac::olm::Session,
    receiver: vodozemac::olm::Session,
}

fn raw_pair() -> RawPair {
    let alice = Account::new();
    let mut bob = Account::new();
    bob.generate_one_time_keys(1);
    let otk = *bob.one_time_keys().values().next().unwrap();
    let mut sender = alice
        .create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), otk)
        .unwrap();
    let OlmMessage::PreKey(first) = sender.encrypt(b"hello").unwrap() else {
        panic!("first message is pre-key")
    };
    let receiver = bob
        .create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &first)
        .unwrap()
        .session;
    RawPair { sender, receiver }
}

fn raw_rate(n: usize) -> f64 {
    let mut pair = raw_pair();
    let plaintext = vec![7u8; PAYLOAD_LEN];
    let start = Instant::now();
    for _ in 0..n {
        let m = pair.sender.encrypt(&plaintext).unwrap();
        black_box(pair.receiver.decrypt(&m).unwrap());
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn report_sustained() {
    let n: usize = std::env::var("XMTP_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    for storage in ["in-memory", "file"] {
        let (rate, latencies) = rt.block_on(async {
            let s = setup().await;
            let (alice, bob) = if storage == "file" {
                (
                    file_client(&s.api, &dir.path().join("alice.db3")).await,
                    file_client(&s.api, &dir.path().join("bob.db3")).await,
                )
            } else {
                (new_client(&s.api).await, new_client(&s.api).await)
            };
            alice.send_text(&bob.address(), "warm-up").await.unwrap();
            bob.sync().await.unwrap();
            sustained(&alice, &bob, n).await
        });
        println!(
            "sustained {n} messages alice->bob ({storage} databases): {rate:.0} messages/s, send-to-receive p50 {:?}, p99 {:?}",
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
        );
    }
    let raw = raw_rate(n);
    println!("raw vodozemac encrypt+decrypt ({PAYLOAD_LEN} B), {n} messages: {raw:.0} messages/s");
}

fn benches(c: &mut Criterion) {
    report_sustained();
    let rt = runtime();
    let s = rt.block_on(setup());
    let alice = rt.block_on(new_client(&s.api));

    let mut group = c.benchmark_group("first_message_to_new_contact");
    group.sample_size(20);
    group.bench_function("send", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let alice = alice.clone();
            let api = s.api.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let bob = new_client(&api).await;
                    let start = Instant::now();
                    alice
                        .send_text(&bob.address(), "hello, new contact")
                        .await
                        .unwrap();
                    total += start.elapsed();
                }
                total
            }
        })
    });
    group.finish();

    let bob = rt.block_on(async {
        let bob = new_client(&s.api).await;
        alice.send_text(&bob.address(), "warm-up").await.unwrap();
        bob.sync().await.unwrap();
        bob
    });
    let mut group = c.benchmark_group("send_to_receive");
    group.sample_size(10);
    group.throughput(Throughput::Elements(100));
    group.bench_function("batch_100", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (alice, bob) = (alice.clone(), bob.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    black_box(sustained(&alice, &bob, 100).await);
                    total += start.elapsed();
                }
                total
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("raw_vodozemac");
    group.throughput(Throughput::Elements(1));
    let mut pair = raw_pair();
    let plaintext = vec![7u8; PAYLOAD_LEN];
    group.bench_function("encrypt_decrypt", |b| {
        b.iter(|| {
            let m = pair.sender.encrypt(&plaintext).unwrap();
            black_box(pair.receiver.decrypt(&m).unwrap())
        })
    });
    group.finish();
}

criterion_group!(client_benches, benches);
criterion_main!(client_benches);
