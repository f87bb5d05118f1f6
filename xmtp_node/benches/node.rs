#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Node benchmarks over real gRPC on loopback, against an in-process node
//! with an SQLite file in a temporary directory:
//!
//! - publish throughput, 1 KiB envelopes from 16 concurrent clients;
//! - latency of one 100-envelope query page on a topic of 100,000 envelopes
//!   (newest page, and a page at a random cursor);
//! - publish-to-subscriber delivery latency at 1,000 envelopes/s.
//!
//! Criterion measures each; the fixed-size runs after it record every sample
//! and print p50/p99 (and envelopes/s) in a summary. `XMTP_BENCH_QUICK=1`
//! shrinks those runs for a smoke test; `XMTP_BENCH_ONLY=publish` (or
//! `query`, `delivery`) runs one phase.
//!
//! Run: `cargo bench -p xmtp_node --bench node` (add
//! `-- --warm-up-time 1 --measurement-time 3` for a short run).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput};
use futures::StreamExt;
use tokio::runtime::Runtime;
use tonic::transport::Channel;
use xmtp_node::{
    store::{envelope_digest, SqliteSync},
    Node, NodeConfig, RunningNode,
};
use xmtp_proto::xmtp::message_api::v1::{
    cursor, message_api_client::MessageApiClient, Cursor, Envelope, IndexCursor, PagingInfo,
    PublishRequest, QueryRequest, SortDirection, SubscribeRequest,
};

type Client = MessageApiClient<Channel>;

const CLIENTS: usize = 16;
const ENVELOPE_BYTES: usize = 1024;
const QUERY_TOPIC: &str = "/bench/query/proto";

/// Whether to run a phase (`XMTP_BENCH_ONLY=publish|query|delivery` picks one).
fn phase(name: &str) -> bool {
    std::env::var("XMTP_BENCH_ONLY").map_or(true, |only| only == name)
}

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

async fn clients(node: &RunningNode, n: usize) -> Vec<Client> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            MessageApiClient::connect(node.grpc_url())
                .await
                .unwrap()
                .max_decoding_message_size(16 << 20),
        );
    }
    out
}

async fn start(dir: &tempfile::TempDir, name: &str, sync: SqliteSync) -> RunningNode {
    let path = dir.path().join(name);
    let config = NodeConfig {
        sqlite_sync: sync,
        ..NodeConfig::with_sqlite(path.to_str().unwrap())
    };
    Node::start(config).await.unwrap()
}

/// `total` single-envelope publishes spread over the clients; returns the
/// elapsed time.
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

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let n = samples.len();
    (samples[n / 2], samples[(n * 99 / 100).min(n - 1)])
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Fills the query topic with `n` envelopes; returns each one's cursor.
async fn fill_query_topic(client: &mut Client, n: u64) -> Vec<(u64, [u8; 32])> {
    let mut cursors = Vec::with_capacity(n as usize);
    let mut batch = Vec::new();
    for _ in 0..n {
        let e = envelope(QUERY_TOPIC);
        cursors.push((
            e.timestamp_ns,
            envelope_digest(&e.content_topic, &e.message),
        ));
        batch.push(e);
        if batch.len() == 500 {
            client
                .publish(PublishRequest {
                    envelopes: std::mem::take(&mut batch),
                })
                .await
                .unwrap();
        }
    }
    if !batch.is_empty() {
        client
            .publish(PublishRequest { envelopes: batch })
            .await
            .unwrap();
    }
    cursors
}

fn page_query(cursor: Option<(u64, [u8; 32])>) -> QueryRequest {
    QueryRequest {
        content_topics: vec![QUERY_TOPIC.into()],
        paging_info: Some(PagingInfo {
            limit: 100,
            cursor: cursor.map(|(t, d)| Cursor {
                cursor: Some(cursor::Cursor::Index(IndexCursor {
                    digest: d.to_vec(),
                    sender_time_ns: t,
                })),
            }),
            direction: SortDirection::Descending.into(),
        }),
        ..Default::default()
    }
}

async fn timed_query(client: &mut Client, q: QueryRequest) -> Duration {
    let start = Instant::now();
    let resp = client.query(q).await.unwrap().into_inner();
    let elapsed = start.elapsed();
    assert_eq!(resp.envelopes.len(), 100);
    elapsed
}

/// Publishes `n` envelopes at `rate` per second (open loop: each on its own
/// task at its tick) and returns each one's publish-to-delivery latency.
async fn delivery_latencies(node: &RunningNode, n: usize, rate: u64) -> Vec<Duration> {
    let topic = "/bench/delivery/proto";
    let mut sub_client = clients(node, 1).await.remove(0);
    let mut stream = sub_client
        .subscribe(SubscribeRequest {
            content_topics: vec![topic.into()],
        })
        .await
        .unwrap()
        .into_inner();
    let publishers = clients(node, 4).await;
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
    // Let the subscription settle before the clock starts.
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

fn main() {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut criterion = Criterion::default().configure_from_args();
    let mut summary = Vec::new();

    if phase("publish") {
        publish_phase(&rt, &dir, &mut criterion, &mut summary);
    }
    if phase("query") {
        query_phase(&rt, &dir, &mut criterion, &mut summary);
    }
    if phase("delivery") {
        delivery_phase(&rt, &dir, &mut criterion, &mut summary);
    }
    criterion.final_summary();
    println!(
        "\n== xmtp_node summary ({} cores) ==",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for line in summary {
        println!("{line}");
    }
}

fn publish_phase(
    rt: &Runtime,
    dir: &tempfile::TempDir,
    criterion: &mut Criterion,
    summary: &mut Vec<String>,
) {
    // Publish throughput, default durability (synchronous=NORMAL).
    let node = rt.block_on(start(dir, "publish.db3", SqliteSync::Normal));
    let pubs = rt.block_on(clients(&node, CLIENTS));
    {
        let mut group = criterion.benchmark_group("publish");
        group.throughput(Throughput::Elements(1));
        group.sample_size(10);
        group.bench_function("1KiB_16_clients", |b| {
            b.to_async(rt).iter_custom(|iters| {
                let pubs = pubs.clone();
                async move { publish_load(&pubs, iters).await }
            })
        });
        group.finish();
    }
    let total = if quick() { 8_000 } else { 64_000 };
    // (label, durability, connections the 16 clients use, runs)
    for (label, sync, connections, runs) in [
        (
            "own connection each, synchronous=NORMAL (default)",
            SqliteSync::Normal,
            CLIENTS,
            3,
        ),
        (
            "own connection each, synchronous=FULL",
            SqliteSync::Full,
            CLIENTS,
            1,
        ),
        (
            "sharing one HTTP/2 connection, synchronous=NORMAL",
            SqliteSync::Normal,
            1,
            3,
        ),
    ] {
        // A fresh node and database per run, warmed up; the median is shown.
        let mut rates: Vec<f64> = (0..runs)
            .map(|run| {
                let name = format!("publish-{sync:?}-{connections}-{run}.db3");
                let node = rt.block_on(start(dir, &name, sync));
                let own = rt.block_on(clients(&node, connections));
                let pubs: Vec<Client> = (0..CLIENTS).map(|i| own[i % own.len()].clone()).collect();
                // Warm the connections and the database up, as criterion does.
                rt.block_on(publish_load(&pubs, total / 8));
                let elapsed = rt.block_on(publish_load(&pubs, total));
                drop((own, pubs));
                rt.block_on(node.shutdown());
                total as f64 / elapsed.as_secs_f64()
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        let all: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        summary.push(format!(
            "publish 1 KiB, {CLIENTS} clients, {label}: {:.0} envelopes/s (median of {runs} runs of {total}: {}; target >= 20000)",
            rates[rates.len() / 2],
            all.join(", ")
        ));
    }
    drop(pubs);
    rt.block_on(node.shutdown());
}

fn query_phase(
    rt: &Runtime,
    dir: &tempfile::TempDir,
    criterion: &mut Criterion,
    summary: &mut Vec<String>,
) {
    // Query latency on a topic of 100,000 envelopes.
    let node = rt.block_on(start(dir, "query.db3", SqliteSync::Normal));
    let mut client = rt.block_on(clients(&node, 1)).remove(0);
    let size = if quick() { 20_000 } else { 100_000 };
    let cursors = rt.block_on(fill_query_topic(&mut client, size));
    let mut pick = {
        // A small xorshift: reproducible positions, no extra dependency.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Leave at least a full page below the cursor.
            cursors[100 + (x % (cursors.len() as u64 - 100)) as usize]
        }
    };
    {
        let mut group = criterion.benchmark_group("query");
        group.bench_function("newest_page_of_100", |b| {
            b.to_async(rt).iter(|| {
                let mut c = client.clone();
                async move { timed_query(&mut c, page_query(None)).await }
            })
        });
        group.bench_function("page_of_100_at_random_cursor", |b| {
            b.to_async(rt).iter(|| {
                let mut c = client.clone();
                let q = page_query(Some(pick()));
                async move { timed_query(&mut c, q).await }
            })
        });
        group.finish();
    }
    let samples = if quick() { 500 } else { 3_000 };
    for (label, random) in [("newest page", false), ("page at a random cursor", true)] {
        let latencies: Vec<Duration> = (0..samples)
            .map(|_| {
                let q = page_query(random.then(&mut pick));
                rt.block_on(timed_query(&mut client, q))
            })
            .collect();
        let (p50, p99) = percentiles(latencies);
        summary.push(format!(
            "query 100 of {size} envelopes, {label}: p50 {} p99 {} ({samples} samples; target p99 < 5 ms)",
            ms(p50),
            ms(p99)
        ));
    }
    drop(client);
    rt.block_on(node.shutdown());
}

fn delivery_phase(
    rt: &Runtime,
    dir: &tempfile::TempDir,
    criterion: &mut Criterion,
    summary: &mut Vec<String>,
) {
    // Delivery latency.
    let node = rt.block_on(start(dir, "delivery.db3", SqliteSync::Normal));
    {
        let mut sub_client = rt.block_on(clients(&node, 1)).remove(0);
        let pub_client = rt.block_on(clients(&node, 1)).remove(0);
        let stream = rt.block_on(async {
            sub_client
                .subscribe(SubscribeRequest {
                    content_topics: vec!["/bench/roundtrip/proto".into()],
                })
                .await
                .unwrap()
                .into_inner()
        });
        let stream = Arc::new(tokio::sync::Mutex::new(stream));
        let mut group = criterion.benchmark_group("delivery");
        group.bench_function("publish_to_subscriber_one_envelope", |b| {
            b.to_async(rt).iter(|| {
                let mut c = pub_client.clone();
                let stream = Arc::clone(&stream);
                async move {
                    c.publish(PublishRequest {
                        envelopes: vec![envelope("/bench/roundtrip/proto")],
                    })
                    .await
                    .unwrap();
                    stream.lock().await.next().await.unwrap().unwrap()
                }
            })
        });
        group.finish();
        drop(pub_client);
    }
    let n = if quick() { 1_000 } else { 5_000 };
    let (p50, p99) = percentiles(rt.block_on(delivery_latencies(&node, n, 1_000)));
    summary.push(format!(
        "delivery at 1000 envelopes/s: p50 {} p99 {} ({n} envelopes; target p99 < 10 ms)",
        ms(p50),
        ms(p99)
    ));
    rt.block_on(node.shutdown());

    criterion.final_summary();
    println!(
        "\n== xmtp_node summary ({} cores) ==",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for line in summary {
        println!("{line}");
    }
}
