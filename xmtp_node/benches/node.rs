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

mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput};
use futures::StreamExt;
use support::{
    clients, connect, delivery_latencies, envelope, ms, percentiles, print_summary, publish_load,
    quick, Client, CLIENTS,
};
use tokio::runtime::Runtime;
use xmtp_node::{
    store::{envelope_digest, SqliteSync},
    Node, NodeConfig, RunningNode,
};
use xmtp_proto::xmtp::message_api::v1::{
    cursor, Cursor, IndexCursor, PagingInfo, PublishRequest, QueryRequest, SortDirection,
    SubscribeRequest,
};

const QUERY_TOPIC: &str = "/bench/query/proto";

/// Whether to run a phase (`XMTP_BENCH_ONLY=publish|query|delivery` picks one).
fn phase(name: &str) -> bool {
    std::env::var("XMTP_BENCH_ONLY").map_or(true, |only| only == name)
}

async fn start(dir: &tempfile::TempDir, name: &str, sync: SqliteSync) -> RunningNode {
    let path = dir.path().join(name);
    let config = NodeConfig {
        sqlite_sync: sync,
        ..NodeConfig::with_sqlite(path.to_str().unwrap())
    };
    Node::start(config).await.unwrap()
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
    print_summary(&mut criterion, "xmtp_node summary", &summary);
}

fn publish_phase(
    rt: &Runtime,
    dir: &tempfile::TempDir,
    criterion: &mut Criterion,
    summary: &mut Vec<String>,
) {
    // Publish throughput, default durability (synchronous=NORMAL).
    let node = rt.block_on(start(dir, "publish.db3", SqliteSync::Normal));
    let pubs = rt.block_on(clients(std::slice::from_ref(&node), CLIENTS));
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
                let own = rt.block_on(clients(std::slice::from_ref(&node), connections));
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
    let mut client = rt.block_on(connect(&node));
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
        let mut sub_client = rt.block_on(connect(&node));
        let pub_client = rt.block_on(connect(&node));
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
    let (p50, p99) =
        percentiles(rt.block_on(delivery_latencies(std::slice::from_ref(&node), n, 1_000)));
    summary.push(format!(
        "delivery at 1000 envelopes/s: p50 {} p99 {} ({n} envelopes; target p99 < 10 ms)",
        ms(p50),
        ms(p99)
    ));
    rt.block_on(node.shutdown());
}
