#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! The PostgreSQL store beside SQLite, in one run, over real gRPC on
//! loopback with in-process nodes:
//!
//! - publish throughput, 1 KiB envelopes from 16 concurrent clients: SQLite
//!   on one node, PostgreSQL on one node, and PostgreSQL on two nodes (the
//!   clients split between them);
//! - publish-to-subscriber delivery latency at 1,000 envelopes/s in the same
//!   three set-ups (with two nodes the subscriber is on node B and the
//!   publishers alternate between A and B, so half the envelopes cross
//!   nodes through the database).
//!
//! Criterion measures the throughputs; fixed-size runs after it record every
//! delivery and print p50/p99 in a summary. PostgreSQL is `XMTP_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`); each set-up gets
//! a scratch database, dropped afterwards. `XMTP_BENCH_QUICK=1` shrinks the
//! fixed-size runs.
//!
//! Run: `cargo bench -p xmtp_node --bench postgres` (add
//! `-- --warm-up-time 1 --measurement-time 3` for a short run).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput};
use futures::StreamExt;
use tokio::runtime::Runtime;
use tonic::transport::Channel;
use xmtp_node::{
    store::postgres::{create_database_if_missing, drop_database, with_database},
    Node, NodeConfig, RunningNode,
};
use xmtp_proto::xmtp::message_api::v1::{
    message_api_client::MessageApiClient, Envelope, PublishRequest, SubscribeRequest,
};

type Client = MessageApiClient<Channel>;

const CLIENTS: usize = 16;
const ENVELOPE_BYTES: usize = 1024;

fn quick() -> bool {
    std::env::var("XMTP_BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// A sender time unique across the whole run, so no publish is a duplicate.
static CLOCK: AtomicU64 = AtomicU64::new(1);

fn envelope(topic: &str) -> Envelope {
    let t = CLOCK.fetch_add(1, Ordering::Relaxed);
    let mut message = vec![0u8; ENVELOPE_BYTES];
    message[..8].copy_from_slice(&t.to_le_bytes());
    Envelope {
        content_topic: topic.to_owned(),
        timestamp_ns: t,
        message,
    }
}

async fn connect(node: &RunningNode) -> Client {
    MessageApiClient::connect(node.grpc_url()).await.unwrap()
}

/// `n` clients spread round-robin over the nodes.
async fn clients(nodes: &[RunningNode], n: usize) -> Vec<Client> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(connect(&nodes[i % nodes.len()]).await);
    }
    out
}

/// A set-up under test: its nodes and, for PostgreSQL, its database.
struct Setup {
    label: &'static str,
    nodes: Vec<RunningNode>,
    database: Option<String>,
}

async fn sqlite(dir: &tempfile::TempDir) -> Setup {
    let path = dir.path().join("bench.db3");
    let node = Node::start(NodeConfig::with_sqlite(path.to_str().unwrap()))
        .await
        .unwrap();
    Setup {
        label: "SQLite, 1 node",
        nodes: vec![node],
        database: None,
    }
}

async fn postgres(label: &'static str, nodes: usize) -> Setup {
    let server = std::env::var("XMTP_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let url = with_database(&server, &format!("xmtp_bench_{}", std::process::id()));
    let _ = drop_database(&url).await;
    create_database_if_missing(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at XMTP_PG_URL={server}: {e}"));
    let mut started = Vec::new();
    for _ in 0..nodes {
        started.push(
            Node::start(NodeConfig::with_postgres(url.clone()))
                .await
                .unwrap(),
        );
    }
    Setup {
        label,
        nodes: started,
        database: Some(url),
    }
}

impl Setup {
    async fn stop(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
        if let Some(url) = self.database {
            drop_database(&url).await.unwrap();
        }
    }
}

/// `total` single-envelope publishes spread over the clients.
async fn publish_load(clients: &[Client], total: u64) -> Duration {
    let start = Instant::now();
    let n = clients.len() as u64;
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut c = c.clone();
            let count = total / n + u64::from((i as u64) < total % n);
            tokio::spawn(async move {
                let topic = format!("/bench/publish-{i}/proto");
                for _ in 0..count {
                    c.publish(PublishRequest {
                        envelopes: vec![envelope(&topic)],
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// Publishes `n` envelopes at `rate` per second from clients alternating
/// over the nodes, to a subscriber on the last node; returns each
/// publish-to-delivery latency.
async fn delivery_latencies(nodes: &[RunningNode], n: usize, rate: u64) -> Vec<Duration> {
    let topic = "/bench/delivery/proto";
    let mut sub_client = connect(&nodes[nodes.len() - 1]).await;
    let mut stream = sub_client
        .subscribe(SubscribeRequest {
            content_topics: vec![topic.into()],
        })
        .await
        .unwrap()
        .into_inner();
    let publishers = clients(nodes, 4).await;
    let base = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(n);
        while latencies.len() < n {
            let env = stream.next().await.unwrap().unwrap();
            let now = base.elapsed().as_nanos() as u64;
            let sent = u64::from_le_bytes(env.message[8..16].try_into().unwrap());
            latencies.push(Duration::from_nanos(now - sent));
        }
        latencies
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sends = Vec::with_capacity(n);
    for i in 0..n {
        ticker.tick().await;
        let mut c = publishers[i % publishers.len()].clone();
        let mut e = envelope(topic);
        let sent = base.elapsed().as_nanos() as u64;
        e.message[8..16].copy_from_slice(&sent.to_le_bytes());
        sends.push(tokio::spawn(async move {
            c.publish(PublishRequest { envelopes: vec![e] })
                .await
                .unwrap()
        }));
    }
    for s in sends {
        s.await.unwrap();
    }
    receiver.await.unwrap()
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let n = samples.len();
    (samples[n / 2], samples[(n * 99 / 100).min(n - 1)])
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    if std::env::var("XMTP_SKIP_PG").is_ok_and(|v| v == "1") {
        eprintln!("XMTP_SKIP_PG=1: skipping the PostgreSQL benchmarks");
        return;
    }
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut criterion = Criterion::default().configure_from_args();
    let mut summary = Vec::new();
    let total: u64 = if quick() { 4_000 } else { 20_000 };
    let deliveries = if quick() { 1_000 } else { 3_000 };

    for which in 0..3 {
        let setup = rt.block_on(async {
            match which {
                0 => sqlite(&dir).await,
                1 => postgres("PostgreSQL, 1 node", 1).await,
                _ => postgres("PostgreSQL, 2 nodes", 2).await,
            }
        });
        let pubs = rt.block_on(clients(&setup.nodes, CLIENTS));
        {
            let mut group = criterion.benchmark_group("store_publish");
            group.throughput(Throughput::Elements(1));
            group.sample_size(10);
            group.bench_function(setup.label, |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let pubs = pubs.clone();
                    async move { publish_load(&pubs, iters).await }
                })
            });
            group.finish();
        }
        let elapsed = rt.block_on(publish_load(&pubs, total));
        summary.push(format!(
            "{}: publish 1 KiB from {CLIENTS} clients: {:.0} envelopes/s ({total} in {:.2} s)",
            setup.label,
            total as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64()
        ));
        drop(pubs);
        let (p50, p99) =
            percentiles(rt.block_on(delivery_latencies(&setup.nodes, deliveries, 1_000)));
        summary.push(format!(
            "{}: delivery at 1000 envelopes/s: p50 {} p99 {} ({deliveries} envelopes)",
            setup.label,
            ms(p50),
            ms(p99)
        ));
        rt.block_on(setup.stop());
    }

    criterion.final_summary();
    println!(
        "\n== xmtp_node stores summary ({} cores) ==",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for line in summary {
        println!("{line}");
    }
}
