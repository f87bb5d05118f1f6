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

mod support;

use criterion::{Criterion, Throughput};
use support::{
    clients, delivery_latencies, ms, percentiles, print_summary, publish_load, quick, CLIENTS,
};
use tokio::runtime::Runtime;
use xmtp_node::{
    store::postgres::{create_database_if_missing, drop_database, with_database},
    Node, NodeConfig, RunningNode,
};

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

    print_summary(&mut criterion, "xmtp_node stores summary", &summary);
}
