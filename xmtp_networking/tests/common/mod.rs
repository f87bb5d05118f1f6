//! Helpers shared by the integration tests: a node started in-process, a
//! client of it, envelopes, and the node's metrics.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xmtp_networking::{ClientOptions, GrpcClient, RetryPolicy};
use xmtp_node::{Node, NodeConfig, RunningNode};
use xmtp_proto::xmtp::message_api::v1::Envelope;

/// A node with an in-memory store on free ports.
pub async fn start_node() -> RunningNode {
    Node::start(NodeConfig::default())
        .await
        .expect("node starts")
}

/// Fast retries, so tests that exercise them do not dawdle.
pub fn quick_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::new(
        max_attempts,
        Duration::from_millis(20),
        Duration::from_millis(200),
    )
}

/// A connected client with quick retries.
pub async fn client(node: &RunningNode) -> GrpcClient {
    let options = ClientOptions::default()
        .with_retry(quick_retries(5))
        .with_app_version("xmtp-networking-tests/1");
    GrpcClient::connect_with_options(&node.grpc_url(), options)
        .await
        .expect("client connects")
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A unique topic name for a test.
pub fn topic(name: &str) -> String {
    format!("/xmtp/3/test-{name}-{}/proto", now_ns())
}

/// An envelope whose message names its topic and number.
pub fn envelope(topic: &str, timestamp_ns: u64, n: u64) -> Envelope {
    Envelope {
        content_topic: topic.to_owned(),
        timestamp_ns,
        message: format!("{topic}#{n}").into_bytes(),
    }
}

/// The value of one counter from the node's `GET /metrics`.
pub async fn metric(node: &RunningNode, name: &str) -> u64 {
    let mut stream = tokio::net::TcpStream::connect(node.http_addr())
        .await
        .unwrap();
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        node.http_addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body.lines()
        .find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("metric {name} missing from:\n{body}"))
        .trim()
        .parse()
        .unwrap()
}
