//! Typed errors against a real node: refused requests fail at once with
//! InvalidArgument, a closed port is a Connect or Unavailable error after the
//! configured attempts, and rate limiting is ResourceExhausted, which retries
//! with backoff get through.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{client, envelope, metric, quick_retries, start_node, topic};
use xmtp_networking::{ApiError, ClientOptions, GrpcClient, RetryPolicy, XmtpApi};
use xmtp_node::{BucketConfig, Node, NodeConfig};
use xmtp_proto::xmtp::message_api::v1::{Envelope, SortDirection};

#[tokio::test]
async fn an_oversized_message_is_invalid_and_not_retried() {
    let node = start_node().await;
    let api = client(&node).await;
    let topic = topic("oversized");
    let huge = Envelope {
        content_topic: topic.clone(),
        timestamp_ns: 1,
        message: vec![7; (1 << 20) + 1],
    };

    let result = api.publish(vec![huge]).await;
    assert!(
        matches!(result, Err(ApiError::InvalidArgument(_))),
        "{result:?}"
    );
    assert!(!result.unwrap_err().is_retryable());
    // The client allows 5 attempts; a refused request must have used one.
    assert_eq!(metric(&node, "xmtp_node_invalid_requests_total").await, 1);
    assert!(api
        .query_all(&topic, 0, 0, SortDirection::Ascending)
        .await
        .unwrap()
        .is_empty());
    node.shutdown().await;
}

#[tokio::test]
async fn an_oversized_topic_is_invalid() {
    let node = start_node().await;
    let api = client(&node).await;
    let long_topic = "t".repeat(301);
    let result = api.publish(vec![envelope(&long_topic, 1, 1)]).await;
    assert!(
        matches!(result, Err(ApiError::InvalidArgument(_))),
        "{result:?}"
    );
    let result = api.subscribe(vec![long_topic]).await;
    assert!(
        matches!(result, Err(ApiError::InvalidArgument(_))),
        "{:?}",
        result.err()
    );
    node.shutdown().await;
}

/// A port on which nothing listens (bound, then released).
async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_a_connect_error() {
    let url = closed_port_url().await;
    let options = ClientOptions::default().with_retry(quick_retries(3));
    let result = GrpcClient::connect_with_options(&url, options).await;
    match result {
        Err(error @ ApiError::Connect { .. }) => {
            assert!(error.is_retryable());
            assert!(error.to_string().contains(&url), "{error}");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_lazy_client_of_a_closed_port_gets_unavailable() {
    let url = closed_port_url().await;
    let api = GrpcClient::connect_lazy(&url, ClientOptions::default().with_retry(quick_retries(3)))
        .unwrap();
    let result = api.publish(vec![envelope("/t", 1, 1)]).await;
    assert!(
        matches!(result, Err(ApiError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn urls_that_are_not_http_are_refused_before_dialling() {
    for url in ["localhost:5556", "ftp://localhost:1", "http://"] {
        let result = GrpcClient::connect(url).await;
        assert!(
            matches!(result, Err(ApiError::InvalidUrl { .. })),
            "{url}: {result:?}"
        );
    }
}

#[tokio::test]
async fn rate_limiting_is_resource_exhausted_and_retries_get_through() {
    let config = NodeConfig {
        publish_limit: BucketConfig {
            per_second: 0.5,
            burst: 3.0,
        },
        ..NodeConfig::default()
    };
    let node = Node::start(config).await.unwrap();
    let topic = topic("rate");
    let impatient = GrpcClient::connect_with_options(
        &node.grpc_url(),
        ClientOptions::default().with_retry(RetryPolicy::none()),
    )
    .await
    .unwrap();
    for n in 0..3 {
        impatient
            .publish(vec![envelope(&topic, n + 1, n)])
            .await
            .unwrap();
    }
    let refused = impatient.publish(vec![envelope(&topic, 10, 10)]).await;
    match refused {
        Err(error @ ApiError::ResourceExhausted(_)) => assert!(error.is_retryable()),
        other => panic!("expected ResourceExhausted, got {other:?}"),
    }

    // Same client address, so the same bucket: a patient client backs off
    // until the bucket refills (one token every two seconds).
    let patient = GrpcClient::connect_with_options(
        &node.grpc_url(),
        ClientOptions::default().with_retry(RetryPolicy::new(
            10,
            std::time::Duration::from_millis(200),
            std::time::Duration::from_secs(1),
        )),
    )
    .await
    .unwrap();
    let before = metric(&node, "xmtp_node_rate_limited_total").await;
    patient
        .publish(vec![envelope(&topic, 11, 11)])
        .await
        .unwrap();
    let after = metric(&node, "xmtp_node_rate_limited_total").await;
    assert!(
        after > before,
        "the patient publish should have been refused at least once first"
    );
    let stored = patient
        .query_all(&topic, 0, 0, SortDirection::Ascending)
        .await
        .unwrap();
    assert_eq!(stored.len(), 4);
    node.shutdown().await;
}

#[tokio::test]
async fn a_node_that_never_answers_is_deadline_exceeded() {
    // Accepts connections and never speaks: every call hangs until the
    // client's request timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let options = ClientOptions::default()
        .with_retry(quick_retries(2))
        .with_request_timeout(std::time::Duration::from_millis(200));
    let api = GrpcClient::connect_lazy(&url, options).unwrap();
    let result = api
        .query(xmtp_networking::paging::topic_query(
            "/t",
            0,
            0,
            SortDirection::Ascending,
        ))
        .await;
    match result {
        Err(error @ ApiError::DeadlineExceeded(_)) => assert!(error.is_retryable()),
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
    holder.abort();
}

#[tokio::test]
async fn a_publish_retried_across_a_node_restart_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("node.db3").to_string_lossy().into_owned();
    let node = Node::start(NodeConfig::with_sqlite(db.clone()))
        .await
        .unwrap();
    let port = node.grpc_addr().port();
    let patient = ClientOptions::default().with_retry(RetryPolicy::new(
        100,
        std::time::Duration::from_millis(20),
        std::time::Duration::from_millis(200),
    ));
    let api = GrpcClient::connect_with_options(&node.grpc_url(), patient)
        .await
        .unwrap();
    let topic = topic("restart-publish");
    let first = envelope(&topic, 1, 1);
    api.publish(vec![first.clone()]).await.unwrap();

    node.shutdown().await;
    let second = envelope(&topic, 2, 2);
    let publishing = tokio::spawn({
        let api = api.clone();
        let envelopes = vec![first.clone(), second.clone()];
        async move { api.publish(envelopes).await }
    });
    // Let the first attempts meet the closed port (not a speed assertion:
    // it only orders the restart after them).
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let node = Node::start(NodeConfig {
        grpc_port: port,
        ..NodeConfig::with_sqlite(db)
    })
    .await
    .unwrap();
    publishing.await.unwrap().unwrap();
    let stored = api
        .query_all(&topic, 0, 0, SortDirection::Ascending)
        .await
        .unwrap();
    assert_eq!(stored, vec![first, second]);
    node.shutdown().await;
}
