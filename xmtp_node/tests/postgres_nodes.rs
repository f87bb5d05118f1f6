#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Two nodes in-process over one PostgreSQL database: subscriptions cross
//! nodes in order and exactly once, one-time-key claims never repeat across
//! nodes, and when one node stops the clients of the other miss nothing.

mod common;
mod postgres_support;

use std::{collections::HashSet, time::Duration};

use common::{client, env, Client};
use postgres_support::TestDb;
use tonic::{transport::Channel, Code};
use xmtp_node::{Node, NodeConfig, RunningNode};
use xmtp_proto::xmtp::{
    key_api::v1::{
        key_api_client::KeyApiClient, ClaimOneTimeKeysRequest, RegisterInstallationRequest,
        UploadOneTimeKeysRequest,
    },
    message_api::v1::{Envelope, PublishRequest, SubscribeRequest},
    v3::message_contents::{InstallationPublicKeyBundle, SignedCurve25519Key, WalletAssociation},
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

/// The next `n` envelopes of a stream (failing, not hanging, if they do not
/// come).
async fn next_n(stream: &mut Stream, n: usize) -> Vec<Envelope> {
    tokio::time::timeout(Duration::from_secs(60), common::take(stream, n))
        .await
        .unwrap_or_else(|_| panic!("fewer than {n} envelopes arrived within a minute"))
}

/// Publishes a sentinel and checks that it is the next thing the stream
/// delivers: nothing was delivered twice or late.
async fn assert_nothing_more(publisher: &mut Client, stream: &mut Stream, topic: &str) {
    let sentinel = env(topic, u64::MAX, b"sentinel");
    publisher
        .publish(PublishRequest {
            envelopes: vec![sentinel.clone()],
        })
        .await
        .unwrap();
    assert_eq!(next_n(stream, 1).await, vec![sentinel]);
}

/// Messages are `"<publisher>/<n>"`; each publisher's must arrive in order.
fn assert_publisher_order(got: &[Envelope]) {
    let mut last: std::collections::HashMap<String, u64> = Default::default();
    for e in got {
        let text = String::from_utf8(e.message.clone()).unwrap();
        let (who, n) = text.rsplit_once('/').unwrap();
        let n: u64 = n.parse().unwrap();
        if let Some(prev) = last.insert(who.to_owned(), n) {
            assert!(prev < n, "{who}: {n} arrived after {prev}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_on_either_node_get_every_publish_once_in_the_same_order() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let a = node(&db).await;
    let b = node(&db).await;
    let topic = "/xmtp/3/group-c0ffee/proto";
    let mut sub_a = subscribe(&mut client(&a).await, topic).await;
    let mut sub_b = subscribe(&mut client(&b).await, topic).await;

    let mut tasks = Vec::new();
    for (name, running) in [("a", &a), ("b", &b)] {
        for p in 0..3 {
            let mut c = client(running).await;
            let who = format!("{name}{p}");
            tasks.push(tokio::spawn(async move {
                for n in 0..100u64 {
                    let e = env(topic, n + 1, format!("{who}/{n}"));
                    c.publish(PublishRequest { envelopes: vec![e] })
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got_a = next_n(&mut sub_a, 600).await;
    let got_b = next_n(&mut sub_b, 600).await;
    assert_eq!(got_a, got_b, "both nodes deliver one global order");
    let distinct: HashSet<&Vec<u8>> = got_b.iter().map(|e| &e.message).collect();
    assert_eq!(distinct.len(), 600, "every publish exactly once");
    assert_publisher_order(&got_b);
    let mut publisher = client(&a).await;
    assert_nothing_more(&mut publisher, &mut sub_b, topic).await;
    a.shutdown().await;
    b.shutdown().await;
}

fn bundle(key: u8) -> InstallationPublicKeyBundle {
    InstallationPublicKeyBundle {
        identity_key: vec![key ^ 0xaa; 32],
        signing_key: vec![key; 32],
        identity_key_signature: vec![1; 64],
        fallback_key: Some(SignedCurve25519Key {
            key: vec![0xfb; 32],
            signature: vec![2; 64],
        }),
        association: Some(WalletAssociation {
            text_version: 1,
            account_address: "0xC1A1M".into(),
            installation_key: vec![key; 32],
            created_ns: 1,
            wallet_signature: vec![3; 65],
        }),
    }
}

fn otk(i: u32) -> SignedCurve25519Key {
    let mut key = vec![0u8; 32];
    key[..4].copy_from_slice(&i.to_be_bytes());
    SignedCurve25519Key {
        key,
        signature: vec![9; 64],
    }
}

async fn keys(node: &RunningNode) -> KeyApiClient<Channel> {
    KeyApiClient::connect(node.grpc_url()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_claims_over_two_nodes_never_hand_out_a_key_twice() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let a = node(&db).await;
    let b = node(&db).await;
    let mut c = keys(&a).await;
    c.register_installation(RegisterInstallationRequest {
        bundle: Some(bundle(7)),
    })
    .await
    .unwrap();
    for batch in 0..4u32 {
        c.upload_one_time_keys(UploadOneTimeKeysRequest {
            installation_key: vec![7; 32],
            one_time_keys: (batch * 200..(batch + 1) * 200).map(otk).collect(),
        })
        .await
        .unwrap();
    }

    // 1,000 claims: 20 clients, half on each node, 50 claims each.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let mut c = keys(if i % 2 == 0 { &a } else { &b }).await;
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..50 {
                let resp = c
                    .claim_one_time_keys(ClaimOneTimeKeysRequest {
                        installation_keys: vec![vec![7; 32]],
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(resp.keys.len(), 1);
                got.extend(resp.keys);
            }
            got
        }));
    }
    let mut seen = HashSet::new();
    let mut fallbacks = 0;
    for t in tasks {
        for claimed in t.await.unwrap() {
            let key = claimed.key.unwrap();
            if claimed.is_fallback {
                assert_eq!(key.key, vec![0xfb; 32]);
                fallbacks += 1;
            } else {
                assert!(seen.insert(key.key), "a one-time key was handed out twice");
            }
        }
    }
    assert_eq!(seen.len(), 800, "every uploaded key was handed out");
    assert_eq!(fallbacks, 200);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_one_node_stops_the_clients_of_the_other_see_no_gap() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let a = node(&db).await;
    let b = node(&db).await;
    let topic = "/xmtp/3/installation-5ab1e/proto";
    let mut sub_b = subscribe(&mut client(&b).await, topic).await;
    let (half_tx, half_rx) = tokio::sync::oneshot::channel();

    // A publisher that starts on node A and moves to B when A goes away,
    // re-sending what was not acknowledged (duplicates are stored once).
    let mut on_a = client(&a).await;
    let mut on_b = client(&b).await;
    let mover = tokio::spawn(async move {
        let mut half = Some(half_tx);
        let mut moved = false;
        for n in 0..200u64 {
            if n == 100 {
                if let Some(tx) = half.take() {
                    let _ = tx.send(());
                }
            }
            let e = env(topic, n + 1, format!("mover/{n}"));
            loop {
                let target = if moved { &mut on_b } else { &mut on_a };
                match target
                    .publish(PublishRequest {
                        envelopes: vec![e.clone()],
                    })
                    .await
                {
                    Ok(_) => break,
                    Err(status) if !moved => {
                        assert_ne!(status.code(), Code::InvalidArgument);
                        moved = true;
                    }
                    Err(status) => panic!("node B refused a publish: {status}"),
                }
            }
        }
        moved
    });
    let mut on_b2 = client(&b).await;
    let steady = tokio::spawn(async move {
        for n in 0..200u64 {
            let e = env(topic, n + 1, format!("steady/{n}"));
            on_b2
                .publish(PublishRequest { envelopes: vec![e] })
                .await
                .unwrap();
        }
    });
    half_rx.await.unwrap();
    a.shutdown().await;
    let moved = mover.await.unwrap();
    steady.await.unwrap();
    assert!(moved, "the publisher had to move to node B");

    let got = next_n(&mut sub_b, 400).await;
    let distinct: HashSet<&Vec<u8>> = got.iter().map(|e| &e.message).collect();
    assert_eq!(distinct.len(), 400, "every acknowledged publish, once");
    assert_publisher_order(&got);
    let mut publisher = client(&b).await;
    assert_nothing_more(&mut publisher, &mut sub_b, topic).await;
    b.shutdown().await;
}
