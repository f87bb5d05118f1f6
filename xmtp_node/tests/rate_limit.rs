#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Per-client token buckets for publishes and reads, over gRPC and JSON.

mod common;

use common::{client, env, query};
use tonic::Code;
use xmtp_node::{BucketConfig, Node, NodeConfig};
use xmtp_proto::xmtp::message_api::v1::{PublishRequest, SortDirection, SubscribeRequest};

/// Refills so slowly that no token comes back during the test.
fn bucket(burst: f64) -> BucketConfig {
    BucketConfig {
        per_second: 1e-6,
        burst,
    }
}

#[tokio::test]
async fn publishes_and_reads_are_limited_separately() {
    let config = NodeConfig {
        publish_limit: bucket(5.0),
        read_limit: bucket(3.0),
        ..NodeConfig::default()
    };
    let node = Node::start(config).await.unwrap();
    let mut c = client(&node).await;
    // Publish: one token per envelope.
    c.publish(PublishRequest {
        envelopes: vec![env("r", 1, b"1"), env("r", 2, b"2")],
    })
    .await
    .unwrap();
    c.publish(PublishRequest {
        envelopes: vec![env("r", 3, b"3"), env("r", 4, b"4"), env("r", 5, b"5")],
    })
    .await
    .unwrap();
    let err = c
        .publish(PublishRequest {
            envelopes: vec![env("r", 6, b"6")],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("rate limit"));

    // Reads have their own bucket: two queries and a subscription, then no more.
    c.query(query("r", SortDirection::Ascending, 0))
        .await
        .unwrap();
    c.query(query("r", SortDirection::Ascending, 0))
        .await
        .unwrap();
    let _sub = c
        .subscribe(SubscribeRequest {
            content_topics: vec!["r".into()],
        })
        .await
        .unwrap();
    assert_eq!(
        c.query(query("r", SortDirection::Ascending, 0))
            .await
            .unwrap_err()
            .code(),
        Code::ResourceExhausted
    );
    let err = c
        .subscribe(SubscribeRequest {
            content_topics: vec!["r".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);

    // The same client over JSON is the same IP: 429 with a gRPC-style body.
    let resp = reqwest::Client::new()
        .post(format!("{}/message/v1/publish", node.http_url()))
        .body(r#"{"envelopes":[{"contentTopic":"r","timestampNs":"9","message":"AA=="}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 8);
    let metrics = reqwest::get(format!("{}/metrics", node.http_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("xmtp_node_rate_limited_total 4\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_request_larger_than_the_burst_is_refused_without_spending() {
    let node = Node::start(NodeConfig {
        publish_limit: bucket(3.0),
        ..NodeConfig::default()
    })
    .await
    .unwrap();
    let mut c = client(&node).await;
    let four = (0..4).map(|i| env("b", i, b"x")).collect();
    assert_eq!(
        c.publish(PublishRequest { envelopes: four })
            .await
            .unwrap_err()
            .code(),
        Code::ResourceExhausted
    );
    let three = (0..3).map(|i| env("b", i, b"x")).collect();
    c.publish(PublishRequest { envelopes: three })
        .await
        .unwrap();
}
