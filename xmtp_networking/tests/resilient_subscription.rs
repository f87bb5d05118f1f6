//! A resilient subscription across a node restart: envelopes published while
//! the subscriber is cut off arrive through the back-fill, nothing is lost and
//! nothing arrives twice.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{client, envelope, now_ns, start_node, topic};
use futures::{StreamExt, TryStreamExt};
use xmtp_networking::{
    ClientOptions, GrpcClient, ResilientOptions, ResilientSubscription, RetryPolicy, XmtpApi,
};
use xmtp_node::{Node, NodeConfig};
use xmtp_proto::xmtp::message_api::v1::Envelope;

fn resilient_options() -> ResilientOptions {
    ResilientOptions {
        reconnect: RetryPolicy::new(200, Duration::from_millis(20), Duration::from_millis(250)),
        ..ResilientOptions::default()
    }
}

async fn next_n(stream: &mut ResilientSubscription, n: usize) -> Vec<Envelope> {
    stream.by_ref().take(n).try_collect().await.unwrap()
}

#[tokio::test]
async fn a_node_restart_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("node.db3").to_string_lossy().into_owned();
    let node = Node::start(NodeConfig::with_sqlite(db.clone()))
        .await
        .unwrap();
    let port = node.grpc_addr().port();
    let url = node.grpc_url();
    let options = ClientOptions::default().with_retry(RetryPolicy::new(
        50,
        Duration::from_millis(20),
        Duration::from_millis(250),
    ));
    let api = GrpcClient::connect_with_options(&url, options.clone())
        .await
        .unwrap();
    let topics = vec![topic("resilient-a"), topic("resilient-b")];
    let mut stream =
        ResilientSubscription::start(Arc::new(api.clone()), topics.clone(), resilient_options())
            .await
            .unwrap();

    let base = now_ns();
    let batch = |from: u64, to: u64| -> Vec<Envelope> {
        (from..to)
            .map(|n| envelope(&topics[(n % 2) as usize], base + n, n))
            .collect()
    };
    let before = batch(0, 40);
    api.publish(before.clone()).await.unwrap();
    assert_eq!(next_n(&mut stream, before.len()).await, before);

    // Stop the node; while the subscriber is cut off, a new node on the same
    // port and database takes publishes.
    node.shutdown().await;
    let node = Node::start(NodeConfig {
        grpc_port: port,
        ..NodeConfig::with_sqlite(db.clone())
    })
    .await
    .unwrap();
    let publisher = GrpcClient::connect_with_options(&url, options)
        .await
        .unwrap();
    let gap = batch(40, 120);
    publisher.publish(gap.clone()).await.unwrap();

    // The subscriber reconnects, back-fills the gap (skipping what it already
    // had, which the back-fill's lookback queries again), then goes live.
    let mut after_gap = next_n(&mut stream, gap.len()).await;
    after_gap.sort_by_key(|e| e.timestamp_ns);
    assert_eq!(after_gap, gap);

    let live = batch(120, 160);
    for e in &live {
        publisher.publish(vec![e.clone()]).await.unwrap();
    }
    assert_eq!(next_n(&mut stream, live.len()).await, live);

    // Nothing else is pending: the next item is the sentinel, not a repeat.
    let sentinel = envelope(&topics[0], base + 1_000, 1_000);
    publisher.publish(vec![sentinel.clone()]).await.unwrap();
    assert_eq!(next_n(&mut stream, 1).await, vec![sentinel]);
    node.shutdown().await;
}

#[tokio::test]
async fn since_delivers_stored_history_before_live_envelopes() {
    let node = start_node().await;
    let api = client(&node).await;
    let topic = topic("since");
    let base = now_ns();
    let old = envelope(&topic, base - 10_000, 0);
    let history: Vec<Envelope> = (1..=150).map(|n| envelope(&topic, base + n, n)).collect();
    api.publish(vec![old]).await.unwrap();
    api.publish(history.clone()).await.unwrap();

    let options = ResilientOptions {
        since_ns: Some(base),
        ..resilient_options()
    };
    let mut stream =
        ResilientSubscription::start(Arc::new(api.clone()), vec![topic.clone()], options)
            .await
            .unwrap();
    let live = envelope(&topic, base + 500, 500);
    api.publish(vec![live.clone()]).await.unwrap();

    let mut expected = history;
    expected.push(live);
    assert_eq!(next_n(&mut stream, expected.len()).await, expected);
    node.shutdown().await;
}

#[tokio::test]
async fn a_permanent_error_ends_the_stream() {
    let node = start_node().await;
    let api = client(&node).await;
    let result =
        ResilientSubscription::start(Arc::new(api), vec!["t".repeat(301)], resilient_options())
            .await;
    assert!(
        matches!(result, Err(xmtp_networking::ApiError::InvalidArgument(_))),
        "{:?}",
        result.err()
    );
    node.shutdown().await;
}
