#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! PostgreSQL failures under a node: sessions terminated during a publish
//! load (what a server restart looks like to the node) and a database that
//! refuses connections for a while. Publishes are acknowledged only when
//! stored, fail with Unavailable otherwise, and the node recovers by itself:
//! nothing acknowledged is lost and subscribers miss nothing.

mod common;
mod postgres_support;

use std::{collections::HashSet, time::Duration};

use common::{client, env, query, query_all, Client};
use postgres_support::TestDb;
use tonic::Code;
use xmtp_node::{Node, NodeConfig, RunningNode};
use xmtp_proto::xmtp::message_api::v1::{
    Envelope, PublishRequest, SortDirection, SubscribeRequest,
};

async fn node(db: &TestDb) -> RunningNode {
    Node::start(NodeConfig::with_postgres(db.url.clone()))
        .await
        .unwrap()
}

type Stream = tonic::codec::Streaming<Envelope>;

async fn subscribe(client: &mut Client, topic: &str) -> Stream {
    client
        .subscribe(SubscribeRequest {
            content_topics: vec![topic.to_owned()],
        })
        .await
        .unwrap()
        .into_inner()
}

/// Reads the stream until `last` arrives (failing, not hanging, if it does
/// not).
async fn read_until(stream: &mut Stream, last: &Envelope) -> Vec<Envelope> {
    let read = async {
        let mut out = Vec::new();
        loop {
            let e = common::take(stream, 1).await.remove(0);
            let done = &e == last;
            out.push(e);
            if done {
                return out;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the final envelope did not arrive within a minute")
}

/// Publishes `e`, retrying while the node answers Unavailable (for up to
/// 30 s): how a client rides out an outage.
async fn publish_until_accepted(c: &mut Client, e: &Envelope) {
    for _ in 0..300 {
        match c
            .publish(PublishRequest {
                envelopes: vec![e.clone()],
            })
            .await
        {
            Ok(_) => return,
            Err(s) if s.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("unexpected error: {s}"),
        }
    }
    panic!("the node did not recover within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_sessions_under_load_lose_nothing_acknowledged() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let node = node(&db).await;
    let topic = "/xmtp/3/group-fa17/proto";
    let mut sub = subscribe(&mut client(&node).await, topic).await;

    let mut tasks = Vec::new();
    for p in 0..4 {
        let mut c = client(&node).await;
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut refused = 0;
            for n in 0..1000u64 {
                let e = env(topic, n + 1, format!("p{p}/{n}"));
                match c
                    .publish(PublishRequest {
                        envelopes: vec![e.clone()],
                    })
                    .await
                {
                    Ok(_) => acked.push(e),
                    Err(s) => {
                        assert_eq!(s.code(), Code::Unavailable, "{s}");
                        refused += 1;
                    }
                }
            }
            (acked, refused)
        }));
    }
    // The outage: every session of the database is ended, again and again
    // (at least three times) for as long as the publishers run.
    let mut terminated = 0;
    let mut rounds = 0;
    while rounds < 3 || !tasks.iter().all(|t| t.is_finished()) {
        terminated += db.terminate_sessions().await;
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(terminated > 0, "the outage hit the node's sessions");

    let mut acked = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (a, r) = t.await.unwrap();
        acked.extend(a);
        refused += r;
    }
    eprintln!(
        "{} acknowledged, {refused} refused as Unavailable, \
         {terminated} sessions terminated in {rounds} rounds",
        acked.len()
    );

    // The node goes on: a new publish is accepted...
    let mut c = client(&node).await;
    let last = env(topic, u64::MAX, b"after the outage");
    publish_until_accepted(&mut c, &last).await;
    // ...every acknowledged envelope is stored...
    let stored = query_all(&mut c, query(topic, SortDirection::Ascending, 100)).await;
    let stored: HashSet<Vec<u8>> = stored.into_iter().map(|e| e.message).collect();
    for e in &acked {
        assert!(stored.contains(&e.message), "acknowledged but lost: {e:?}");
    }
    // ...and the subscriber got each of them once.
    let got = read_until(&mut sub, &last).await;
    let delivered: HashSet<&Vec<u8>> = got.iter().map(|e| &e.message).collect();
    assert_eq!(delivered.len(), got.len(), "nothing delivered twice");
    for e in &acked {
        assert!(delivered.contains(&e.message), "not delivered: {e:?}");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_means_unavailable_until_it_returns() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let node = node(&db).await;
    let topic = "/xmtp/3/installation-0ff1ine/proto";
    let mut sub = subscribe(&mut client(&node).await, topic).await;
    let mut c = client(&node).await;
    let before = env(topic, 1, b"before");
    c.publish(PublishRequest {
        envelopes: vec![before.clone()],
    })
    .await
    .unwrap();

    db.set_reachable(false).await;
    let refused = c
        .publish(PublishRequest {
            envelopes: vec![env(topic, 2, b"during")],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused}");
    let refused = c
        .query(query(topic, SortDirection::Ascending, 10))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused}");

    db.set_reachable(true).await;
    let after = env(topic, 3, b"after");
    publish_until_accepted(&mut c, &after).await;
    let got = read_until(&mut sub, &after).await;
    assert_eq!(got, vec![before.clone(), after.clone()]);
    let stored = query_all(&mut c, query(topic, SortDirection::Ascending, 100)).await;
    assert_eq!(stored, vec![before, after]);
    node.shutdown().await;
}
