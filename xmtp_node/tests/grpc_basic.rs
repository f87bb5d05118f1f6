#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Every MessageApi RPC over gRPC against an in-process node.

mod common;

use common::{client, env, query, query_all, start, take};
use futures::StreamExt;
use tonic::Code;
use xmtp_proto::xmtp::message_api::v1::{
    cursor, BatchQueryRequest, Cursor, IndexCursor, PagingInfo, PublishRequest, QueryRequest,
    SortDirection, SubscribeAllRequest, SubscribeRequest,
};

#[tokio::test]
async fn publish_subscribe_and_query_over_grpc() {
    let node = start().await;
    let mut client = client(&node).await;
    let topic = "/xmtp/3/installation-00/proto".to_owned();
    let mut stream = client
        .subscribe(SubscribeRequest {
            content_topics: vec![topic.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    let e = env(&topic, 42, b"hello");
    client
        .publish(PublishRequest {
            envelopes: vec![e.clone()],
        })
        .await
        .unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), e);

    let page = client
        .query(QueryRequest {
            content_topics: vec![topic],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.envelopes, vec![e]);
    node.shutdown().await;
    assert!(
        stream.next().await.is_none_or(|item| item.is_err()),
        "the stream ends at shutdown"
    );
}

#[tokio::test]
async fn query_defaults_to_descending_and_pages_of_100_with_a_cursor() {
    let node = start().await;
    let mut c = client(&node).await;
    let all: Vec<_> = (1..=150u64).map(|i| env("t", i, i.to_be_bytes())).collect();
    c.publish(PublishRequest {
        envelopes: all.clone(),
    })
    .await
    .unwrap();
    let resp = c
        .query(QueryRequest {
            content_topics: vec!["t".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.envelopes.len(), 100);
    assert_eq!(
        resp.envelopes[0].timestamp_ns, 150,
        "newest first by default"
    );
    let paging = resp.paging_info.unwrap();
    assert_eq!(paging.direction, SortDirection::Descending as i32);
    let Some(cursor::Cursor::Index(index)) = paging.cursor.unwrap().cursor else {
        panic!("no index cursor")
    };
    assert_eq!(index.sender_time_ns, 51);
    let last = &resp.envelopes[99];
    assert_eq!(
        index.digest,
        xmtp_node::store::envelope_digest(&last.content_topic, &last.message).to_vec()
    );

    // A limit above 100 is cut to 100; a partial page has no cursor.
    let resp = c
        .query(query("t", SortDirection::Ascending, 1000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.envelopes.len(), 100);
    let mut q = query("t", SortDirection::Ascending, 100);
    q.start_time_ns = 101;
    let resp = c.query(q).await.unwrap().into_inner();
    assert_eq!(resp.envelopes.len(), 50);
    assert!(resp.paging_info.unwrap().cursor.is_none());
}

#[tokio::test]
async fn duplicate_publishes_are_stored_and_delivered_once() {
    let node = start().await;
    let mut c = client(&node).await;
    let mut sub = c
        .subscribe(SubscribeRequest {
            content_topics: vec!["d".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let e = env("d", 1, b"x");
    for _ in 0..3 {
        c.publish(PublishRequest {
            envelopes: vec![e.clone(), e.clone()],
        })
        .await
        .unwrap();
    }
    let marker = env("d", 2, b"end");
    c.publish(PublishRequest {
        envelopes: vec![marker.clone()],
    })
    .await
    .unwrap();
    assert_eq!(take(&mut sub, 2).await, vec![e.clone(), marker.clone()]);
    assert_eq!(
        query_all(&mut c, query("d", SortDirection::Ascending, 0)).await,
        vec![e, marker]
    );
}

#[tokio::test]
async fn batch_query_answers_in_order_and_refuses_more_than_50() {
    let node = start().await;
    let mut c = client(&node).await;
    c.publish(PublishRequest {
        envelopes: vec![env("a", 1, b"a"), env("b", 2, b"b")],
    })
    .await
    .unwrap();
    let resp = c
        .batch_query(BatchQueryRequest {
            requests: vec![
                query("b", SortDirection::Ascending, 0),
                query("a", SortDirection::Ascending, 0),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.responses[0].envelopes, vec![env("b", 2, b"b")]);
    assert_eq!(resp.responses[1].envelopes, vec![env("a", 1, b"a")]);
    let ok = vec![query("a", SortDirection::Ascending, 0); 50];
    assert_eq!(
        c.batch_query(BatchQueryRequest { requests: ok })
            .await
            .unwrap()
            .into_inner()
            .responses
            .len(),
        50
    );
    let too_many = vec![query("a", SortDirection::Ascending, 0); 51];
    let err = c
        .batch_query(BatchQueryRequest { requests: too_many })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("at most 50"), "{}", err.message());
}

#[tokio::test]
async fn subscribe_all_sees_every_topic() {
    let node = start().await;
    let mut c = client(&node).await;
    let mut all = c
        .subscribe_all(SubscribeAllRequest {})
        .await
        .unwrap()
        .into_inner();
    let sent = vec![env("x", 1, b"1"), env("y", 2, b"2"), env("z", 3, b"3")];
    for e in &sent {
        c.publish(PublishRequest {
            envelopes: vec![e.clone()],
        })
        .await
        .unwrap();
    }
    assert_eq!(take(&mut all, 3).await, sent);
}

#[tokio::test]
async fn subscribe2_follows_topic_changes() {
    let node = start().await;
    let mut c = client(&node).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(SubscribeRequest {
        content_topics: vec!["one".into()],
    })
    .await
    .unwrap();
    let mut stream = c
        .subscribe2(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    // Topic changes apply asynchronously (the response starts at once, as
    // XMTP's node does): publish until the first envelope of the topic arrives.
    let mut i = 0;
    for topic in ["one", "two"] {
        if topic == "two" {
            tx.send(SubscribeRequest {
                content_topics: vec!["two".into()],
            })
            .await
            .unwrap();
        }
        loop {
            i += 1;
            c.publish(PublishRequest {
                envelopes: vec![env(topic, i, b"probe")],
            })
            .await
            .unwrap();
            // A probe, not a timing assertion: retry until the change is live.
            let wait = std::time::Duration::from_millis(100);
            if let Ok(got) = tokio::time::timeout(wait, stream.next()).await {
                let got = got.unwrap().unwrap();
                assert_eq!(got.content_topic, topic);
                break;
            }
        }
    }
    c.publish(PublishRequest {
        envelopes: vec![env("one", 100, b"old")],
    })
    .await
    .unwrap();
    let last = env("two", 101, b"new");
    c.publish(PublishRequest {
        envelopes: vec![last.clone()],
    })
    .await
    .unwrap();
    assert_eq!(
        stream.next().await.unwrap().unwrap(),
        last,
        "the old topic is no longer delivered"
    );
    // A bad update ends the stream with InvalidArgument.
    tx.send(SubscribeRequest {
        content_topics: vec![String::new()],
    })
    .await
    .unwrap();
    let err = stream.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_typed_errors_and_the_node_keeps_serving() {
    let node = start().await;
    let mut c = client(&node).await;
    let cases = vec![
        PublishRequest { envelopes: vec![] },
        PublishRequest {
            envelopes: vec![env("", 1, b"x")],
        },
        PublishRequest {
            envelopes: vec![env(&"t".repeat(301), 1, b"x")],
        },
        PublishRequest {
            envelopes: vec![env("t", 1, vec![0u8; (1 << 20) + 1])],
        },
        PublishRequest {
            envelopes: vec![env("ok", 1, b"x"), env("", 1, b"x")],
        },
    ];
    for req in cases {
        let err = c.publish(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    }
    // The whole request was refused: the valid envelope beside a bad one is not stored.
    assert!(query_all(&mut c, query("ok", SortDirection::Ascending, 0))
        .await
        .is_empty());
    // Exactly at the limits is fine.
    c.publish(PublishRequest {
        envelopes: vec![env(&"t".repeat(300), 1, vec![7u8; 1 << 20])],
    })
    .await
    .unwrap();
    // A request beyond the transport limit (4 MiB) is refused by tonic.
    let big: Vec<_> = (0..5).map(|i| env("big", i, vec![1u8; 1 << 20])).collect();
    let err = c
        .publish(PublishRequest { envelopes: big })
        .await
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{err:?}"
    );

    let bad_queries = vec![
        QueryRequest::default(),
        QueryRequest {
            content_topics: vec![String::new()],
            ..Default::default()
        },
        QueryRequest {
            content_topics: vec!["t".into()],
            paging_info: Some(PagingInfo {
                limit: 1,
                cursor: None,
                direction: 7,
            }),
            ..Default::default()
        },
        QueryRequest {
            content_topics: vec!["t".into()],
            paging_info: Some(PagingInfo {
                limit: 1,
                cursor: Some(Cursor {
                    cursor: Some(cursor::Cursor::Index(IndexCursor {
                        digest: vec![1; 5],
                        sender_time_ns: 1,
                    })),
                }),
                direction: 0,
            }),
            ..Default::default()
        },
    ];
    for q in bad_queries {
        assert_eq!(c.query(q).await.unwrap_err().code(), Code::InvalidArgument);
    }
    let err = c
        .subscribe(SubscribeRequest {
            content_topics: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    c.publish(PublishRequest {
        envelopes: vec![env("alive", 1, b"x")],
    })
    .await
    .unwrap();
    assert_eq!(
        query_all(&mut c, query("alive", SortDirection::Ascending, 0))
            .await
            .len(),
        1
    );
}
