//! The message API against a real node started in-process: publish and
//! query, paging over thousands of envelopes, batch queries beyond the node's
//! limit of 50, and subscriptions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::HashSet;

use common::{client, envelope, now_ns, start_node, topic};
use futures::{StreamExt, TryStreamExt};
use xmtp_networking::paging::topic_query;
use xmtp_networking::{XmtpApi, MAX_BATCH_QUERIES};
use xmtp_proto::xmtp::message_api::v1::{Envelope, PagingInfo, QueryRequest, SortDirection};

#[tokio::test]
async fn published_envelopes_come_back_from_a_query() {
    let node = start_node().await;
    let api = client(&node).await;
    let topic = topic("round-trip");
    let sent: Vec<Envelope> = (0..3).map(|n| envelope(&topic, 1_000 + n, n)).collect();
    api.publish(sent.clone()).await.unwrap();

    let page = api
        .query(topic_query(&topic, 0, 0, SortDirection::Ascending))
        .await
        .unwrap();
    assert_eq!(page.envelopes, sent);
    let newest_first = api
        .query(topic_query(&topic, 0, 0, SortDirection::Descending))
        .await
        .unwrap();
    assert_eq!(
        newest_first.envelopes,
        sent.iter().rev().cloned().collect::<Vec<_>>()
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_publish_is_stored_once() {
    let node = start_node().await;
    let api = client(&node).await;
    let topic = topic("duplicate");
    let one = envelope(&topic, 5, 5);
    api.publish(vec![one.clone()]).await.unwrap();
    api.publish(vec![one.clone()]).await.unwrap();
    let all = api
        .query_all(&topic, 0, 0, SortDirection::Ascending)
        .await
        .unwrap();
    assert_eq!(all, vec![one]);
    node.shutdown().await;
}

#[tokio::test]
async fn query_all_follows_cursors_over_thousands_of_envelopes_both_ways() {
    let node = start_node().await;
    let api = client(&node).await;
    let topic = topic("paging");
    let count = 3_050u64;
    let sent: Vec<Envelope> = (1..=count).map(|n| envelope(&topic, n * 10, n)).collect();
    // 3,050 envelopes go out as several publish requests (limit 1,000 each).
    api.publish(sent.clone()).await.unwrap();

    let ascending = api
        .query_all(&topic, 0, 0, SortDirection::Ascending)
        .await
        .unwrap();
    assert_eq!(ascending, sent);
    let descending = api
        .query_all(&topic, 0, 0, SortDirection::Descending)
        .await
        .unwrap();
    assert_eq!(descending, sent.iter().rev().cloned().collect::<Vec<_>>());

    // Inclusive time bounds, both directions.
    let window = api
        .query_all(&topic, 1_000, 20_000, SortDirection::Ascending)
        .await
        .unwrap();
    assert_eq!(window, sent[99..2_000].to_vec());
    let window_down = api
        .query_all(&topic, 1_000, 20_000, SortDirection::Descending)
        .await
        .unwrap();
    assert_eq!(
        window_down,
        sent[99..2_000].iter().rev().cloned().collect::<Vec<_>>()
    );
    node.shutdown().await;
}

#[tokio::test]
async fn query_pages_streams_pages_of_the_requested_size() {
    let node = start_node().await;
    let api = client(&node).await;
    let topic = topic("pages");
    let sent: Vec<Envelope> = (1..=250).map(|n| envelope(&topic, n, n)).collect();
    api.publish(sent.clone()).await.unwrap();

    let request = QueryRequest {
        content_topics: vec![topic.clone()],
        paging_info: Some(PagingInfo {
            limit: 30,
            cursor: None,
            direction: SortDirection::Ascending as i32,
        }),
        ..QueryRequest::default()
    };
    let pages: Vec<_> = api
        .query_pages(request.clone())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        pages.iter().map(|p| p.envelopes.len()).collect::<Vec<_>>(),
        [30, 30, 30, 30, 30, 30, 30, 30, 10]
    );
    let streamed: Vec<Envelope> = api.query_envelopes(request).try_collect().await.unwrap();
    assert_eq!(streamed, sent);
    node.shutdown().await;
}

#[tokio::test]
async fn batch_query_beyond_the_node_limit_answers_every_request_in_order() {
    let node = start_node().await;
    let api = client(&node).await;
    let topics: Vec<String> = (0..(2 * MAX_BATCH_QUERIES + 17))
        .map(|i| topic(&format!("batch-{i}")))
        .collect();
    let sent: Vec<Envelope> = topics
        .iter()
        .enumerate()
        .flat_map(|(i, t)| (0..=i as u64 % 3).map(move |n| envelope(t, 100 + n, n)))
        .collect();
    api.publish(sent).await.unwrap();

    let requests: Vec<QueryRequest> = topics
        .iter()
        .map(|t| topic_query(t, 0, 0, SortDirection::Ascending))
        .collect();
    let responses = api.batch_query(requests).await.unwrap();
    assert_eq!(responses.len(), topics.len());
    for (i, (topic, response)) in topics.iter().zip(&responses).enumerate() {
        let expected: Vec<Envelope> = (0..=i as u64 % 3)
            .map(|n| envelope(topic, 100 + n, n))
            .collect();
        assert_eq!(response.envelopes, expected, "response {i}");
    }
    node.shutdown().await;
}

#[tokio::test]
async fn a_subscriber_receives_every_envelope_published_after_it_subscribed_in_order() {
    let node = start_node().await;
    let api = client(&node).await;
    let publisher = client(&node).await;
    let topic = topic("subscribe");
    let other = topic.replace("subscribe", "other");
    publisher
        .publish(vec![envelope(&topic, 1, 0)])
        .await
        .unwrap();

    let mut stream = api.subscribe(vec![topic.clone()]).await.unwrap();
    let base = now_ns();
    let sent: Vec<Envelope> = (1..=300).map(|n| envelope(&topic, base + n, n)).collect();
    for chunk in sent.chunks(7) {
        publisher.publish(chunk.to_vec()).await.unwrap();
        publisher
            .publish(vec![envelope(&other, base, 0)])
            .await
            .unwrap();
    }
    let received: Vec<Envelope> = stream
        .by_ref()
        .take(sent.len())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(received, sent);
    node.shutdown().await;
    // The node ended the stream; nothing else was queued for us.
    let rest: Vec<_> = stream.collect().await;
    assert!(
        rest.iter().all(|item| item.is_err()),
        "unexpected envelopes after the last: {rest:?}"
    );
}

#[tokio::test]
async fn subscribe_all_sees_every_topic() {
    let node = start_node().await;
    let api = client(&node).await;
    let mut stream = api.subscribe_all().await.unwrap();
    let topics: Vec<String> = (0..5).map(|i| topic(&format!("all-{i}"))).collect();
    let sent: Vec<Envelope> = topics.iter().map(|t| envelope(t, 7, 7)).collect();
    api.publish(sent.clone()).await.unwrap();
    let received: Vec<Envelope> = stream
        .by_ref()
        .take(sent.len())
        .try_collect()
        .await
        .unwrap();
    let received: HashSet<String> = received.into_iter().map(|e| e.content_topic).collect();
    assert_eq!(received, topics.into_iter().collect());
    node.shutdown().await;
}

#[tokio::test]
async fn concurrent_publishers_reach_every_subscriber_exactly_once_in_each_publishers_order() {
    let node = start_node().await;
    let topic = topic("concurrent");
    let mut subscribers = Vec::new();
    for _ in 0..3 {
        let api = client(&node).await;
        subscribers.push(api.subscribe(vec![topic.clone()]).await.unwrap());
    }
    let publishers = 4u64;
    let each = 250u64;
    let base = now_ns();
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let api = client(&node).await;
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..each {
                api.publish(vec![envelope(&topic, base + p * each + n, p * each + n)])
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for stream in &mut subscribers {
        let received: Vec<Envelope> = stream
            .by_ref()
            .take((publishers * each) as usize)
            .try_collect()
            .await
            .unwrap();
        let numbers: Vec<u64> = received.iter().map(|e| e.timestamp_ns - base).collect();
        assert_eq!(
            numbers.iter().copied().collect::<HashSet<_>>().len(),
            numbers.len(),
            "a repeat"
        );
        for p in 0..publishers {
            let mine: Vec<u64> = numbers.iter().copied().filter(|n| n / each == p).collect();
            assert_eq!(
                mine,
                (p * each..(p + 1) * each).collect::<Vec<_>>(),
                "publisher {p}"
            );
        }
    }
    node.shutdown().await;
}
