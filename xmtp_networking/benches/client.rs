#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! End-to-end costs through `GrpcClient` against a node started in-process
//! (in-memory SQLite, loopback): one 1 KiB publish, 16 concurrent publishers,
//! one query page of 100 envelopes from a 10,000-envelope topic, following
//! every cursor of that topic, and publish-to-subscriber delivery.
//!
//! Run: `cargo bench -p xmtp_networking --bench client -- --warm-up-time 1 --measurement-time 3`

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt;
use tokio::runtime::Runtime;
use xmtp_networking::paging::topic_query;
use xmtp_networking::{GrpcClient, XmtpApi};
use xmtp_node::{Node, NodeConfig, RunningNode};
use xmtp_proto::xmtp::message_api::v1::{Envelope, SortDirection};

const PUBLISHERS: usize = 16;
const TOPIC_SIZE: u64 = 10_000;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn envelope(topic: &str, n: u64) -> Envelope {
    let mut message = vec![0u8; 1024];
    message[..8].copy_from_slice(&n.to_be_bytes());
    Envelope {
        content_topic: topic.to_owned(),
        timestamp_ns: now_ns() + n,
        message,
    }
}

struct Setup {
    node: RunningNode,
    client: GrpcClient,
}

fn setup(runtime: &Runtime) -> Setup {
    runtime.block_on(async {
        let node = Node::start(NodeConfig::default()).await.unwrap();
        let client = GrpcClient::connect(&node.grpc_url()).await.unwrap();
        Setup { node, client }
    })
}

fn publish(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let Setup { node, client } = setup(&runtime);
    let mut group = c.benchmark_group("publish");
    group.throughput(Throughput::Elements(1));
    let mut n = 0;
    group.bench_function("one_1kib_envelope", |b| {
        b.to_async(&runtime).iter(|| {
            n += 1;
            let envelope = envelope("/bench/publish-one", n);
            let client = client.clone();
            async move { client.publish(vec![envelope]).await.unwrap() }
        })
    });

    let clients: Vec<GrpcClient> = runtime.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..PUBLISHERS {
            clients.push(GrpcClient::connect(&node.grpc_url()).await.unwrap());
        }
        clients
    });
    group.throughput(Throughput::Elements(PUBLISHERS as u64));
    let mut round = 0u64;
    group.bench_function("16_concurrent_publishers_1kib", |b| {
        b.to_async(&runtime).iter(|| {
            round += 1;
            let tasks: Vec<_> = clients
                .iter()
                .enumerate()
                .map(|(i, client)| {
                    let client = client.clone();
                    let envelope = envelope(&format!("/bench/publish-many-{i}"), round);
                    tokio::spawn(async move { client.publish(vec![envelope]).await.unwrap() })
                })
                .collect();
            async move {
                for task in tasks {
                    task.await.unwrap();
                }
            }
        })
    });
    group.finish();
    runtime.block_on(node.shutdown());
}

fn query(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let Setup { node, client } = setup(&runtime);
    let topic = "/bench/query";
    runtime.block_on(async {
        let envelopes: Vec<Envelope> = (0..TOPIC_SIZE).map(|n| envelope(topic, n)).collect();
        client.publish(envelopes).await.unwrap();
    });
    let mut group = c.benchmark_group("query");
    group.throughput(Throughput::Elements(100));
    group.bench_function("page_of_100_from_10k", |b| {
        b.to_async(&runtime).iter(|| {
            let client = client.clone();
            async move {
                let page = client
                    .query(topic_query(topic, 0, 0, SortDirection::Descending))
                    .await
                    .unwrap();
                assert_eq!(page.envelopes.len(), 100);
            }
        })
    });
    group.throughput(Throughput::Elements(TOPIC_SIZE));
    group.sample_size(10);
    group.bench_function("query_all_10k_ascending", |b| {
        b.to_async(&runtime).iter(|| {
            let client = client.clone();
            async move {
                let all = client
                    .query_all(topic, 0, 0, SortDirection::Ascending)
                    .await
                    .unwrap();
                assert_eq!(all.len() as u64, TOPIC_SIZE);
            }
        })
    });
    group.finish();
    runtime.block_on(node.shutdown());
}

fn delivery(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let Setup { node, client } = setup(&runtime);
    let topic = "/bench/delivery";
    let mut stream = runtime
        .block_on(client.subscribe(vec![topic.to_owned()]))
        .unwrap();
    let mut n = 0;
    c.bench_function("delivery/publish_to_subscriber_1kib", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    n += 1;
                    let start = Instant::now();
                    client.publish(vec![envelope(topic, n)]).await.unwrap();
                    stream.next().await.unwrap().unwrap();
                    total += start.elapsed();
                }
                total
            })
        })
    });
    drop(stream);
    runtime.block_on(node.shutdown());
}

criterion_group!(benches, publish, query, delivery);
criterion_main!(benches);
