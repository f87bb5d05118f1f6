#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Concurrent publishers and subscribers: every subscriber gets every
//! envelope published after it subscribed, exactly once, in per-topic order;
//! a subscriber that does not read is cut off instead of growing memory.

mod common;

use std::collections::HashMap;

use common::{client, env, take};
use futures::StreamExt;
use tonic::Code;
use xmtp_node::{Node, NodeConfig};
use xmtp_proto::xmtp::message_api::v1::{
    Envelope, PublishRequest, SubscribeAllRequest, SubscribeRequest,
};

const PUBLISHERS: u64 = 6;
const PER_PUBLISHER: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_everything_once_in_per_topic_order() {
    let node = common::start().await;
    let topics: Vec<String> = (0..PUBLISHERS / 2).map(|i| format!("/c/{i}")).collect();
    // Subscribers: one per topic, two on everything, one on two topics.
    let mut subs = Vec::new();
    for t in &topics {
        let mut c = client(&node).await;
        subs.push((
            vec![t.clone()],
            c.subscribe(SubscribeRequest {
                content_topics: vec![t.clone()],
            })
            .await
            .unwrap()
            .into_inner(),
        ));
    }
    for _ in 0..2 {
        let mut c = client(&node).await;
        subs.push((
            topics.clone(),
            c.subscribe_all(SubscribeAllRequest {})
                .await
                .unwrap()
                .into_inner(),
        ));
    }
    let pair = topics[..2].to_vec();
    let mut c = client(&node).await;
    subs.push((
        pair.clone(),
        c.subscribe(SubscribeRequest {
            content_topics: pair,
        })
        .await
        .unwrap()
        .into_inner(),
    ));

    // Two publishers per topic, each publishing its own sequence in order.
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let topic = topics[(p / 2) as usize].clone();
        let mut c = client(&node).await;
        publishers.push(tokio::spawn(async move {
            for i in 0..PER_PUBLISHER {
                let e = env(&topic, i, format!("{p}:{i}"));
                c.publish(PublishRequest { envelopes: vec![e] })
                    .await
                    .unwrap();
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }

    let mut orders: HashMap<String, Vec<Vec<Envelope>>> = HashMap::new();
    for (wanted, mut stream) in subs {
        let n = wanted.len() * (2 * PER_PUBLISHER) as usize;
        let got = take(&mut stream, n).await;
        let mut per_topic: HashMap<String, Vec<Envelope>> = HashMap::new();
        for e in got {
            per_topic
                .entry(e.content_topic.clone())
                .or_default()
                .push(e);
        }
        assert_eq!(per_topic.len(), wanted.len());
        for (topic, envelopes) in per_topic {
            // Exactly once: every (publisher, i) once; in order per publisher.
            let mut next = HashMap::<String, u64>::new();
            for e in &envelopes {
                let text = String::from_utf8(e.message.clone()).unwrap();
                let (p, i) = text.split_once(':').unwrap();
                let expected = next.entry(p.to_owned()).or_default();
                assert_eq!(
                    i.parse::<u64>().unwrap(),
                    *expected,
                    "publisher {p} on {topic}"
                );
                *expected += 1;
            }
            assert!(next.values().all(|n| *n == PER_PUBLISHER));
            orders.entry(topic).or_default().push(envelopes);
        }
    }
    // Every subscriber of a topic saw the same (commit) order.
    for (topic, seen) in orders {
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "subscribers of {topic} disagree on the order"
        );
    }
}

#[tokio::test]
async fn a_subscriber_that_does_not_read_is_cut_off() {
    let node = Node::start(NodeConfig {
        subscriber_buffer: 16,
        ..NodeConfig::default()
    })
    .await
    .unwrap();
    let mut c = client(&node).await;
    let mut slow = c
        .subscribe(SubscribeRequest {
            content_topics: vec!["slow".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let mut fast = c
        .subscribe(SubscribeRequest {
            content_topics: vec!["fast".into()],
        })
        .await
        .unwrap()
        .into_inner();
    // 48 MiB to a subscriber that reads nothing: more than the hub buffer,
    // the HTTP/2 window and the socket buffers together can hold.
    for batch in 0..64u64 {
        let envelopes = (0..12)
            .map(|i| env("slow", batch * 100 + i, vec![i as u8; 64 << 10]))
            .collect();
        c.publish(PublishRequest { envelopes }).await.unwrap();
    }
    let mut received = 0;
    let status = loop {
        match slow.next().await {
            Some(Ok(_)) => received += 1,
            Some(Err(status)) => break status,
            None => panic!("the stream ended without an error"),
        }
    };
    assert!(received < 64 * 12);
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("lagged"), "{}", status.message());
    // Others are unaffected.
    let e = env("fast", 1, b"x");
    c.publish(PublishRequest {
        envelopes: vec![e.clone()],
    })
    .await
    .unwrap();
    assert_eq!(take(&mut fast, 1).await, vec![e]);
    let metrics = reqwest::get(format!("{}/metrics", node.http_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("xmtp_node_lagged_subscribers_total 1\n"),
        "{metrics}"
    );
}
