//! Direct conversations between clients over a real node started in-process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::atomic::Ordering;

use common::*;
use xmtp_core::{
    content::encode_custom, ClientError, ContentType, DatabaseKey, LocalWallet, MessagePage,
};
use xmtp_node::{Node, NodeConfig};

#[tokio::test]
async fn every_message_reaches_all_five_installations_and_histories_agree() {
    let node = start_node().await;
    let (alice, bob) = (LocalWallet::random(), LocalWallet::random());
    let a = [client(&node, &alice).await, client(&node, &alice).await];
    let b = [
        client(&node, &bob).await,
        client(&node, &bob).await,
        client(&node, &bob).await,
    ];
    let (alice_addr, bob_addr) = (a[0].address(), b[0].address());

    for (i, c) in a.iter().enumerate() {
        c.send_text(&bob_addr, &format!("from a{i}")).await.unwrap();
    }
    for (i, c) in b.iter().enumerate() {
        c.send_text(&alice_addr, &format!("from b{i}"))
            .await
            .unwrap();
    }
    // A second round, over the sessions the first one created.
    a[1].send_text(&bob_addr, "again from a1").await.unwrap();
    b[2].send_text(&alice_addr, "again from b2").await.unwrap();

    for c in a.iter().chain(b.iter()) {
        c.sync().await.unwrap();
    }
    let reference = history(&a[0], &bob_addr);
    assert_eq!(reference.len(), 7);
    let mut all_texts: Vec<_> = reference.iter().map(|(_, _, t)| t.clone()).collect();
    all_texts.sort();
    assert_eq!(
        all_texts,
        vec![
            "again from a1",
            "again from b2",
            "from a0",
            "from a1",
            "from b0",
            "from b1",
            "from b2"
        ]
    );
    for c in &a[1..] {
        assert_eq!(
            history(c, &bob_addr),
            reference,
            "alice installation {}",
            c.installation_id()
        );
    }
    for c in &b {
        assert_eq!(
            history(c, &alice_addr),
            reference,
            "bob installation {}",
            c.installation_id()
        );
    }
    // The conversation list shows the peer and the newest message.
    let conversations = b[0].conversations().unwrap();
    assert_eq!(conversations.len(), 1);
    assert_eq!(
        conversations[0].peer_address.as_deref(),
        Some(alice_addr.as_str())
    );
    assert_eq!(
        conversations[0].last_message.as_ref().unwrap().id,
        reference.last().unwrap().0
    );
    // A second sync changes nothing.
    let again = b[1].sync().await.unwrap();
    assert_eq!(again.new_messages, 0);
    assert_eq!(history(&b[1], &alice_addr), reference);
}

#[tokio::test]
async fn offline_peer_and_restarted_client_continue_the_conversation() {
    let node = start_node().await;
    let dir = tempfile::tempdir().unwrap();
    let (alice_w, bob_w) = (LocalWallet::random(), LocalWallet::random());
    let (alice_key, bob_key) = (DatabaseKey::random(), DatabaseKey::random());
    let alice_path = dir.path().join("alice.db3");
    let bob_path = dir.path().join("bob.db3");
    let alice = file_client(api(&node).await, &alice_w, &alice_path, &alice_key).await;
    let bob = file_client(api(&node).await, &bob_w, &bob_path, &bob_key).await;
    let bob_id = bob.installation_id();
    let bob_addr = bob.address();
    alice.send_text(&bob_addr, "one").await.unwrap();
    bob.sync().await.unwrap();
    bob.send_text(&alice.address(), "two").await.unwrap();
    drop(bob); // Bob goes offline.

    alice.sync().await.unwrap();
    alice
        .send_text(&bob_addr, "three (while bob is offline)")
        .await
        .unwrap();
    alice.send_text(&bob_addr, "four").await.unwrap();
    drop(alice); // Alice restarts too.

    let bob = file_client(api(&node).await, &bob_w, &bob_path, &bob_key).await;
    assert_eq!(
        bob.installation_id(),
        bob_id,
        "the installation is loaded, not recreated"
    );
    let summary = bob.sync().await.unwrap();
    assert_eq!(summary.new_messages, 2);
    assert_eq!(summary.failed, 0);
    bob.send_text(&alice_w_address(&alice_w), "five")
        .await
        .unwrap();

    let alice = file_client(api(&node).await, &alice_w, &alice_path, &alice_key).await;
    alice.sync().await.unwrap();
    let expected = vec!["one", "two", "three (while bob is offline)", "four", "five"];
    assert_eq!(texts(&alice, &bob_addr), expected);
    assert_eq!(texts(&bob, &alice.address()), expected);
    assert!(alice.failed_envelopes().unwrap().is_empty());
    assert!(bob.failed_envelopes().unwrap().is_empty());
}

fn alice_w_address(w: &LocalWallet) -> String {
    w.address().to_checksum()
}

#[tokio::test]
async fn a_wrong_wallet_or_database_key_is_refused() {
    let node = start_node().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db3");
    let key = DatabaseKey::random();
    let wallet = LocalWallet::random();
    drop(file_client(api(&node).await, &wallet, &path, &key).await);
    let other = xmtp_core::ClientBuilder::new()
        .api(api(&node).await)
        .wallet(std::sync::Arc::new(LocalWallet::random()))
        .database_path(&path)
        .database_key(key.clone())
        .build()
        .await;
    assert!(matches!(other, Err(ClientError::WalletMismatch { .. })));
    let wrong_key = xmtp_core::ClientBuilder::new()
        .api(api(&node).await)
        .database_path(&path)
        .database_key(DatabaseKey::random())
        .build()
        .await;
    assert!(matches!(wrong_key, Err(ClientError::Storage(_))));
}

#[tokio::test]
async fn a_message_to_an_unregistered_address_is_refused() {
    let node = start_node().await;
    let alice = client(&node, &LocalWallet::random()).await;
    let stranger = alice_w_address(&LocalWallet::random());
    assert!(matches!(
        alice.send_text(&stranger, "hi").await,
        Err(ClientError::PeerNotRegistered(_))
    ));
    assert!(matches!(
        alice.send_text("not an address", "hi").await,
        Err(ClientError::InvalidAddress(_))
    ));
}

#[tokio::test]
async fn custom_content_types_are_kept_and_reported() {
    let node = start_node().await;
    let alice = client(&node, &LocalWallet::random()).await;
    let bob = client(&node, &LocalWallet::random()).await;
    let reaction = ContentType::parse("example.com/reaction:1.2").unwrap();
    alice
        .send(
            &bob.address(),
            encode_custom(&reaction, b"\x01thumbs".to_vec(), Some("reacted 👍".into())),
        )
        .await
        .unwrap();
    bob.sync().await.unwrap();
    let m = &bob
        .messages(&alice.address(), &MessagePage::default())
        .unwrap()[0];
    assert_eq!(m.content_type(), "example.com/reaction:1.2");
    assert_eq!(m.text(), None);
    assert_eq!(m.display_text().as_deref(), Some("reacted 👍"));
    assert_eq!(m.content.content, b"\x01thumbs");
}

#[tokio::test]
async fn messages_page_by_sent_time() {
    let node = start_node().await;
    let alice = client(&node, &LocalWallet::random()).await;
    let bob = client(&node, &LocalWallet::random()).await;
    for i in 0..7 {
        alice
            .send_text(&bob.address(), &format!("m{i}"))
            .await
            .unwrap();
    }
    bob.sync().await.unwrap();
    let first = bob
        .messages(
            &alice.address(),
            &MessagePage {
                limit: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        first.iter().map(|m| m.text().unwrap()).collect::<Vec<_>>(),
        ["m0", "m1", "m2"]
    );
    let next = bob
        .messages(
            &alice.address().to_lowercase(),
            &MessagePage {
                limit: Some(3),
                sent_after_ns: Some(first[2].sent_ns),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        next.iter().map(|m| m.text().unwrap()).collect::<Vec<_>>(),
        ["m3", "m4", "m5"]
    );
    let newest = bob
        .messages(
            &alice.address(),
            &MessagePage {
                limit: Some(2),
                descending: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        newest.iter().map(|m| m.text().unwrap()).collect::<Vec<_>>(),
        ["m6", "m5"]
    );
}

#[tokio::test]
async fn a_queued_message_survives_a_crash_and_is_published_once_after_restart() {
    let node = start_node().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.db3");
    let key = DatabaseKey::random();
    let alice_w = LocalWallet::random();
    let bob = client(&node, &LocalWallet::random()).await;
    let flaky = FlakyApi::new(api(&node).await);
    let alice = file_client(flaky.clone(), &alice_w, &path, &key).await;
    alice
        .send_text(&bob.address(), "before the outage")
        .await
        .unwrap();

    flaky.fail_publish.store(true, Ordering::SeqCst);
    let queued = alice.send_text(&bob.address(), "queued").await;
    assert!(
        matches!(queued, Err(ClientError::Queued { .. })),
        "{queued:?}"
    );
    assert_eq!(alice.outbox_len().unwrap(), 1);
    drop(alice); // The process dies with the envelope still queued.

    let alice = file_client(api(&node).await, &alice_w, &path, &key).await;
    assert_eq!(
        alice.outbox_len().unwrap(),
        0,
        "build() publishes what was queued"
    );
    // A second publish of the same envelopes (as after a crash right after
    // the node acknowledged) is stored once by the node.
    assert_eq!(alice.flush_outbox().await.unwrap(), 0);
    bob.sync().await.unwrap();
    assert_eq!(
        texts(&bob, &alice.address()),
        ["before the outage", "queued"]
    );
    let topic = bob.inbox_topic();
    let on_node = bob
        .api()
        .query_all(
            &topic,
            0,
            0,
            xmtp_proto::xmtp::message_api::v1::SortDirection::Ascending,
        )
        .await
        .unwrap();
    assert_eq!(on_node.len(), 2, "each envelope published once");
    // The sender's own history has both, once.
    assert_eq!(
        texts(&alice, &bob.address()),
        ["before the outage", "queued"]
    );
}

#[tokio::test]
async fn streams_deliver_new_messages_once_and_in_order() {
    let node = start_node().await;
    let alice = client(&node, &LocalWallet::random()).await;
    let bob = client(&node, &LocalWallet::random()).await;
    let carol = client(&node, &LocalWallet::random()).await;
    let mut all = bob.stream_messages().await.unwrap();
    let mut with_alice = bob.stream_conversation(&alice.address()).await.unwrap();
    for i in 0..5 {
        alice
            .send_text(&bob.address(), &format!("a{i}"))
            .await
            .unwrap();
    }
    carol.send_text(&bob.address(), "c0").await.unwrap();
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(next(&mut all).await.text().unwrap());
    }
    assert_eq!(&got[..5], ["a0", "a1", "a2", "a3", "a4"]);
    assert_eq!(got[5], "c0");
    let mut only_alice = Vec::new();
    for _ in 0..5 {
        only_alice.push(next(&mut with_alice).await.text().unwrap());
    }
    assert_eq!(only_alice, ["a0", "a1", "a2", "a3", "a4"]);
    // Bob's own reply appears on his stream too.
    bob.send_text(&alice.address(), "reply").await.unwrap();
    let own = next(&mut all).await;
    assert_eq!(own.text().as_deref(), Some("reply"));
    assert_eq!(own.sender_address, bob.address());
}

#[tokio::test]
async fn a_stream_resumes_after_the_node_restarts_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let node_db = dir.path().join("node.db3").to_string_lossy().into_owned();
    let node = Node::start(NodeConfig::with_sqlite(node_db.clone()))
        .await
        .unwrap();
    let addr = node.grpc_addr();
    let alice = client(&node, &LocalWallet::random()).await;
    let bob = client(&node, &LocalWallet::random()).await;
    let mut stream = bob.stream_messages().await.unwrap();
    alice.send_text(&bob.address(), "before").await.unwrap();
    assert_eq!(next(&mut stream).await.text().as_deref(), Some("before"));

    node.shutdown().await;
    let config = NodeConfig {
        grpc_port: addr.port(),
        ..NodeConfig::with_sqlite(node_db)
    };
    let _node = Node::start(config).await.unwrap();
    // Messages sent after the restart reach the stream through the resubscription.
    let mut sent = Vec::new();
    for i in 0..3 {
        let text = format!("after {i}");
        loop {
            match alice.send_text(&bob.address(), &text).await {
                Ok(_) => break,
                Err(ClientError::Queued { .. }) => break,
                Err(e) => {
                    // The channel may need a moment to reconnect.
                    tracing::debug!(%e, "retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
        sent.push(text);
    }
    while alice.outbox_len().unwrap() > 0 {
        if alice.flush_outbox().await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next(&mut stream).await.text().unwrap());
    }
    assert_eq!(got, sent);
    assert_eq!(
        texts(&bob, &alice.address()),
        ["before", "after 0", "after 1", "after 2"]
    );
}

#[tokio::test]
async fn one_time_keys_run_out_fall_back_top_up_and_survive_a_fallback_rotation() {
    let node = start_node().await;
    let api = api(&node).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob.db3");
    let key = DatabaseKey::random();
    let bob_wallet = LocalWallet::random();
    let few_keys = xmtp_core::ClientOptions {
        min_one_time_keys: 2,
        target_one_time_keys: 3,
        ..options()
    };
    let build_bob = |options: xmtp_core::ClientOptions| {
        xmtp_core::ClientBuilder::new()
            .api(api.clone())
            .wallet(std::sync::Arc::new(bob_wallet.clone()))
            .database_path(&path)
            .database_key(key.clone())
            .options(options)
            .build()
    };
    let bob = build_bob(few_keys.clone()).await.unwrap();
    let bob_key = hex::decode(bob.installation_id()).unwrap();
    assert_eq!(api.count_one_time_keys(bob_key.clone()).await.unwrap(), 3);

    // Five new contacts: three get one-time keys, two the fallback key.
    let mut senders = Vec::new();
    for i in 0..5 {
        let c = client(&node, &LocalWallet::random()).await;
        c.send_text(&bob.address(), &format!("hello {i}"))
            .await
            .unwrap();
        senders.push(c);
    }
    assert_eq!(api.count_one_time_keys(bob_key.clone()).await.unwrap(), 0);
    let summary = bob.sync().await.unwrap();
    assert_eq!((summary.new_messages, summary.failed), (5, 0));
    assert!(
        api.count_one_time_keys(bob_key.clone()).await.unwrap() >= 2,
        "topped up after the sync"
    );

    // Exhaust again, so the next contact starts on the current fallback key...
    for i in 5..9 {
        let c = client(&node, &LocalWallet::random()).await;
        c.send_text(&bob.address(), &format!("hello {i}"))
            .await
            .unwrap();
        senders.push(c);
    }
    drop(bob);
    // ...which Bob rotates on restart before reading that message.
    let rotate_now = xmtp_core::ClientOptions {
        fallback_key_rotation: std::time::Duration::ZERO,
        ..few_keys
    };
    let bob = build_bob(rotate_now).await.unwrap();
    let summary = bob.sync().await.unwrap();
    assert_eq!(
        (summary.new_messages, summary.failed),
        (4, 0),
        "{:?}",
        bob.failed_envelopes().unwrap()
    );
    for (i, s) in senders.iter().enumerate() {
        assert_eq!(texts(&bob, &s.address()), [format!("hello {i}")]);
        // And every one of these sessions works in the other direction.
        bob.send_text(&s.address(), "welcome").await.unwrap();
        s.sync().await.unwrap();
        assert_eq!(
            texts(s, &bob.address()),
            [format!("hello {i}"), "welcome".to_string()]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_syncs_and_streams_store_each_message_once() {
    let node = start_node().await;
    let alice_wallet = LocalWallet::random();
    let alice1 = client(&node, &alice_wallet).await;
    let alice2 = client(&node, &alice_wallet).await;
    let bob = client(&node, &LocalWallet::random()).await;
    let mut stream = bob.stream_messages().await.unwrap();
    // Both sides start sessions with each other at the same time.
    let mut tasks = Vec::new();
    for i in 0..10 {
        for (name, c, peer) in [
            ("a1", &alice1, bob.address()),
            ("a2", &alice2, bob.address()),
            ("b", &bob, alice1.address()),
        ] {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                c.send_text(&peer, &format!("{name}-{i}")).await.map(|_| ())
            }));
        }
        let b = bob.clone();
        tasks.push(tokio::spawn(async move { b.sync().await.map(|_| ()) }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for c in [&alice1, &alice2, &bob] {
        c.sync().await.unwrap();
        c.sync().await.unwrap();
    }
    let reference = history(&bob, &alice1.address());
    assert_eq!(reference.len(), 30);
    let mut unique: Vec<_> = reference.iter().map(|(id, _, _)| id.clone()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 30, "each message stored once");
    assert_eq!(history(&alice1, &bob.address()), reference);
    assert_eq!(history(&alice2, &bob.address()), reference);
    for c in [&alice1, &alice2, &bob] {
        assert!(
            c.failed_envelopes().unwrap().is_empty(),
            "{:?}",
            c.failed_envelopes().unwrap()
        );
    }
    // Bob's stream yields the 30 messages (his own 10 included), each once.
    let mut streamed = Vec::new();
    for _ in 0..30 {
        streamed.push(next(&mut stream).await.id);
    }
    streamed.sort();
    assert_eq!(streamed, unique);
}
