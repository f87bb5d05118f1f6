//! Group conversations over a real node started in-process: Megolm sessions
//! shared over Olm, signed membership changes checked by every member.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use xmtp_core::{Client, ClientError, DatabaseKey, GroupError, LocalWallet, MessagePage};
use xmtp_proto::xmtp::message_api::v1::SortDirection;

/// The texts of a group, oldest first.
fn group_texts(client: &Client, group: &str) -> Vec<String> {
    client
        .group_messages(group, &MessagePage::default())
        .unwrap()
        .into_iter()
        .map(|m| m.text().unwrap_or_default())
        .collect()
}

async fn sync_all(clients: &[&Client]) {
    for c in clients {
        c.sync().await.unwrap();
    }
}

#[tokio::test]
async fn three_members_with_several_installations_each_get_every_message() {
    let node = start_node().await;
    let (alice, bob, carol) = (
        LocalWallet::random(),
        LocalWallet::random(),
        LocalWallet::random(),
    );
    let a = [client(&node, &alice).await, client(&node, &alice).await];
    let b = [client(&node, &bob).await, client(&node, &bob).await];
    let c = [
        client(&node, &carol).await,
        client(&node, &carol).await,
        client(&node, &carol).await,
    ];
    let all: Vec<&Client> = a.iter().chain(&b).chain(&c).collect();
    let group = a[0]
        .create_group(&[&b[0].address(), &c[0].address()], "three")
        .await
        .unwrap();
    sync_all(&all).await;
    for x in &all {
        let g = x.group(&group).unwrap();
        assert_eq!(g.members.len(), 3);
        assert_eq!(g.name, "three");
        assert!(g.is_member);
    }
    a[0].send_group_text(&group, "from alice 1").await.unwrap();
    sync_all(&all).await;
    b[1].send_group_text(&group, "from bob 2").await.unwrap();
    sync_all(&all).await;
    c[2].send_group_text(&group, "from carol 3").await.unwrap();
    a[1].send_group_text(&group, "from alice 2").await.unwrap();
    sync_all(&all).await;
    let expected = ["from alice 1", "from bob 2", "from carol 3", "from alice 2"];
    for x in &all {
        let mut got = group_texts(x, &group);
        got.sort();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "installation {}", x.installation_id());
        assert_eq!(x.list_groups().unwrap().len(), 1);
    }
    // Group messages are also listed among the conversations.
    assert!(b[0]
        .conversations()
        .unwrap()
        .iter()
        .any(|conv| conv.id == group && conv.kind == "group"));
}

#[tokio::test]
async fn a_removed_member_cannot_decrypt_anything_new_and_a_new_member_reads_from_its_join() {
    let node = start_node().await;
    let (alice, bob, carol, dave) = (
        LocalWallet::random(),
        LocalWallet::random(),
        LocalWallet::random(),
        LocalWallet::random(),
    );
    let a = client(&node, &alice).await;
    let b = client(&node, &bob).await;
    let c = [client(&node, &carol).await, client(&node, &carol).await];
    let d = client(&node, &dave).await;
    let group = a
        .create_group(&[&b.address(), &c[0].address()], "g")
        .await
        .unwrap();
    sync_all(&[&a, &b, &c[0], &c[1]]).await;
    a.send_group_text(&group, "before").await.unwrap();
    b.send_group_text(&group, "bob before").await.unwrap();
    sync_all(&[&a, &b, &c[0], &c[1]]).await;
    assert_eq!(group_texts(&c[1], &group).len(), 2);

    a.remove_members(&group, &[&c[0].address()]).await.unwrap();
    a.add_members(&group, &[&d.address()]).await.unwrap();
    sync_all(&[&a, &b, &c[0], &c[1], &d]).await;
    a.send_group_text(&group, "after").await.unwrap();
    b.send_group_text(&group, "bob after").await.unwrap();
    sync_all(&[&a, &b, &c[0], &c[1], &d]).await;

    for x in [&a, &b] {
        assert_eq!(group_texts(x, &group).len(), 4);
        assert!(!x.group(&group).unwrap().members.contains(&c[0].address()));
    }
    for x in &c {
        let g = x.group(&group).unwrap();
        assert!(!g.is_member, "carol knows she was removed");
        assert_eq!(group_texts(x, &group), ["before", "bob before"]);
        // The new messages are kept, undecryptable (no key was shared).
        let summary = x.sync_groups().await.unwrap();
        assert_eq!(summary.pending, 2);
    }
    let mut dave_sees = group_texts(&d, &group);
    dave_sees.sort();
    assert_eq!(dave_sees, ["after", "bob after"]);
    assert!(matches!(
        c[0].send_group_text(&group, "still here?").await,
        Err(ClientError::Group(GroupError::NotAMember(_)))
    ));
}

#[tokio::test]
async fn concurrent_membership_changes_of_two_admins_converge() {
    let node = start_node().await;
    let wallets: Vec<LocalWallet> = (0..4).map(|_| LocalWallet::random()).collect();
    let mut cs = Vec::new();
    for w in &wallets {
        cs.push(client(&node, w).await);
    }
    let (a, b, c, d) = (&cs[0], &cs[1], &cs[2], &cs[3]);
    let group = a
        .create_group_with_admins(&[&b.address(), &c.address()], &[&b.address()], "g")
        .await
        .unwrap();
    sync_all(&[a, b, c]).await;
    // Both admins change version 1 without seeing each other's change.
    a.add_members(&group, &[&d.address()]).await.unwrap();
    b.remove_members(&group, &[&c.address()]).await.unwrap();
    b.rename_group(&group, "renamed").await.unwrap();
    for _ in 0..3 {
        sync_all(&[a, b, c, d]).await;
    }
    let views: Vec<_> = [a, b, d].iter().map(|x| x.group(&group).unwrap()).collect();
    for v in &views {
        assert_eq!(v, &views[0]);
    }
    let mut want = vec![a.address(), b.address(), d.address()];
    want.sort();
    assert_eq!(views[0].members, want);
    assert_eq!(views[0].name, "renamed");
    assert_eq!(views[0].version, 4);
    // Carol, removed, agrees on the member list too.
    assert_eq!(c.group(&group).unwrap().members, want);
    // Everyone can talk in the converged group.
    d.send_group_text(&group, "hi from dave").await.unwrap();
    sync_all(&[a, b]).await;
    assert_eq!(group_texts(a, &group), ["hi from dave"]);
    assert_eq!(group_texts(b, &group), ["hi from dave"]);
}

#[tokio::test]
async fn a_message_that_arrives_before_its_key_is_decrypted_when_the_key_comes() {
    let node = start_node().await;
    let (alice, bob) = (LocalWallet::random(), LocalWallet::random());
    let a = client(&node, &alice).await;
    let b = client(&node, &bob).await;
    let group = a.create_group(&[&b.address()], "g").await.unwrap();
    b.sync().await.unwrap();
    a.send_group_text(&group, "early").await.unwrap();
    // Bob reads the group topic before his inbox: the key is not there yet.
    let summary = b.sync_group_topics().await.unwrap();
    assert_eq!(summary.pending, 1);
    assert!(group_texts(&b, &group).is_empty());
    // The key request reaches Alice, who shares the key again: one more
    // envelope on Bob's inbox (applying it twice is harmless).
    let inbox_len = || async {
        b.api()
            .query_all(&b.inbox_topic(), 0, 0, SortDirection::Ascending)
            .await
            .unwrap()
            .len()
    };
    let before = inbox_len().await;
    a.sync().await.unwrap();
    assert_eq!(inbox_len().await, before + 1);
    let summary = b.sync().await.unwrap();
    assert_eq!(summary.new_messages, 1);
    assert_eq!(group_texts(&b, &group), ["early"]);
    assert_eq!(b.sync_groups().await.unwrap().pending, 0);
}

#[tokio::test]
async fn a_non_admin_trying_to_add_someone_is_refused_by_every_member() {
    let node = start_node().await;
    let wallets: Vec<LocalWallet> = (0..4).map(|_| LocalWallet::random()).collect();
    let mut cs = Vec::new();
    for w in &wallets {
        cs.push(client(&node, w).await);
    }
    let (a, b, c, d) = (&cs[0], &cs[1], &cs[2], &cs[3]);
    let group = a
        .create_group(&[&b.address(), &c.address()], "g")
        .await
        .unwrap();
    sync_all(&[a, b, c]).await;
    assert!(matches!(
        b.add_members(&group, &[&d.address()]).await,
        Err(ClientError::Group(GroupError::NotAnAdmin(_)))
    ));
    // Sent anyway, bypassing the local check: every member refuses it.
    b.add_members_unchecked(&group, &[&d.address()])
        .await
        .unwrap();
    sync_all(&[a, b, c, d]).await;
    for x in [a, b, c] {
        let g = x.group(&group).unwrap();
        assert_eq!(g.members.len(), 3);
        assert!(!g.members.contains(&d.address()));
        assert_eq!(g.version, 1);
    }
    assert!(d.list_groups().unwrap().iter().all(|g| !g.is_member));
}

#[tokio::test]
async fn groups_keys_and_messages_survive_a_restart() {
    let node = start_node().await;
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (LocalWallet::random(), LocalWallet::random());
    let (ka, kb) = (DatabaseKey::random(), DatabaseKey::random());
    let (pa, pb) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let group = {
        let a = file_client(api(&node).await, &alice, &pa, &ka).await;
        let b = file_client(api(&node).await, &bob, &pb, &kb).await;
        let group = a.create_group(&[&b.address()], "kept").await.unwrap();
        b.sync().await.unwrap();
        a.send_group_text(&group, "one").await.unwrap();
        b.sync().await.unwrap();
        assert_eq!(group_texts(&b, &group), ["one"]);
        group
    };
    let a = file_client(api(&node).await, &alice, &pa, &ka).await;
    let b = file_client(api(&node).await, &bob, &pb, &kb).await;
    for x in [&a, &b] {
        let groups = x.list_groups().unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].name, "kept");
        assert_eq!(group_texts(x, &group), ["one"]);
    }
    // The outbound session survived: no new key share is needed.
    a.send_group_text(&group, "two").await.unwrap();
    assert_eq!(a.outbox_len().unwrap(), 0);
    let summary = b.sync_group_topics().await.unwrap();
    assert_eq!(summary.new_messages, 1);
    assert_eq!(group_texts(&b, &group), ["one", "two"]);
    // Nothing of the group is readable in the database files.
    drop((a, b));
    let raw = std::fs::read(&pa).unwrap();
    assert!(!raw.windows(4).any(|w| w == b"kept"));
}

#[tokio::test]
async fn a_group_stream_yields_new_messages() {
    let node = start_node().await;
    let (alice, bob) = (LocalWallet::random(), LocalWallet::random());
    let a = client(&node, &alice).await;
    let b = client(&node, &bob).await;
    let group = a.create_group(&[&b.address()], "g").await.unwrap();
    b.sync().await.unwrap();
    let mut stream = b.stream_group(&group).await.unwrap();
    a.send_group_text(&group, "streamed").await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("a message within 20 s")
        .unwrap()
        .unwrap();
    assert_eq!(m.text().as_deref(), Some("streamed"));
    assert_eq!(m.conversation_id, group);
}

#[tokio::test]
async fn the_outbound_session_rotates_after_the_configured_number_of_messages_and_age() {
    use prost::Message as _;
    use xmtp_core::GroupRotation;
    use xmtp_proto::xmtp::v3::message_contents::GroupEnvelope;

    let node = start_node().await;
    let (alice, bob) = (LocalWallet::random(), LocalWallet::random());
    let a = client(&node, &alice).await;
    let b = client(&node, &bob).await;
    a.set_group_rotation(GroupRotation {
        max_messages: 2,
        max_age: Duration::from_secs(3600),
    })
    .unwrap();
    assert_eq!(a.group_rotation().unwrap().max_messages, 2);
    let group = a.create_group(&[&b.address()], "g").await.unwrap();
    b.sync().await.unwrap();
    for text in ["1", "2", "3", "4", "5"] {
        a.send_group_text(&group, text).await.unwrap();
    }
    b.sync().await.unwrap();
    assert_eq!(group_texts(&b, &group), ["1", "2", "3", "4", "5"]);
    let id: [u8; 32] = hex::decode(&group).unwrap().try_into().unwrap();
    let envelopes = a
        .api()
        .query_all(&xmtp_core::group_topic(&id), 0, 0, SortDirection::Ascending)
        .await
        .unwrap();
    let sessions: Vec<String> = envelopes
        .iter()
        .map(|e| {
            GroupEnvelope::decode(e.message.as_slice())
                .unwrap()
                .session_id
        })
        .collect();
    assert_eq!(sessions.len(), 5);
    assert_eq!(sessions[0], sessions[1]);
    assert_ne!(sessions[1], sessions[2]);
    assert_eq!(sessions[2], sessions[3]);
    assert_ne!(sessions[3], sessions[4]);

    // A session older than max_age is replaced too (here: at once).
    a.set_group_rotation(GroupRotation {
        max_messages: 1000,
        max_age: Duration::ZERO,
    })
    .unwrap();
    a.send_group_text(&group, "6").await.unwrap();
    a.send_group_text(&group, "7").await.unwrap();
    let envelopes = a
        .api()
        .query_all(&xmtp_core::group_topic(&id), 0, 0, SortDirection::Ascending)
        .await
        .unwrap();
    let sessions: Vec<String> = envelopes
        .iter()
        .map(|e| {
            GroupEnvelope::decode(e.message.as_slice())
                .unwrap()
                .session_id
        })
        .collect();
    assert_eq!(sessions.len(), 7);
    assert_ne!(sessions[4], sessions[5]);
    assert_ne!(sessions[5], sessions[6]);
    b.sync().await.unwrap();
    assert_eq!(group_texts(&b, &group), ["1", "2", "3", "4", "5", "6", "7"]);
}

#[tokio::test]
async fn an_agent_answers_in_the_group_and_the_all_messages_stream_shows_both() {
    use xmtp_core::agent::{Agent, HandlerError, MessageContext};

    async fn pong(ctx: MessageContext) -> Result<(), HandlerError> {
        let text = ctx.text().unwrap_or_default();
        ctx.reply(&format!("pong: {text}")).await?;
        Ok(())
    }

    let node = start_node().await;
    let (alice, bot) = (LocalWallet::random(), LocalWallet::random());
    let a = client(&node, &alice).await;
    let agent = Agent::from_client(client(&node, &bot).await);
    let bot_address = agent.address();
    let running = agent.start(pong).await.unwrap();
    let group = a.create_group(&[&bot_address], "with a bot").await.unwrap();
    let mut all = a.stream_messages().await.unwrap();
    // The agent's follower learns the group from its inbox, resubscribes
    // with the group's topic and catches up, whenever "ping" arrives.
    a.send_group_text(&group, "ping").await.unwrap();
    let first = next(&mut all).await;
    assert_eq!(first.text().as_deref(), Some("ping"));
    let second = next(&mut all).await;
    assert_eq!(second.text().as_deref(), Some("pong: ping"));
    assert_eq!(second.conversation_id, group);
    assert_eq!(second.sender_address, bot_address);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn garbage_and_tampered_group_envelopes_are_refused_without_stopping_the_sync() {
    use prost::Message as _;
    use xmtp_proto::xmtp::{message_api::v1::Envelope, v3::message_contents::GroupEnvelope};

    let node = start_node().await;
    let (alice, bob) = (LocalWallet::random(), LocalWallet::random());
    let a = client(&node, &alice).await;
    let b = client(&node, &bob).await;
    let group = a.create_group(&[&b.address()], "g").await.unwrap();
    b.sync().await.unwrap();
    a.send_group_text(&group, "real").await.unwrap();
    let id: [u8; 32] = hex::decode(&group).unwrap().try_into().unwrap();
    let topic = xmtp_core::group_topic(&id);
    let real = a
        .api()
        .query_all(&topic, 0, 0, SortDirection::Ascending)
        .await
        .unwrap()
        .remove(0);
    let mut tampered = GroupEnvelope::decode(real.message.as_slice()).unwrap();
    let last = tampered.ciphertext.len() - 1;
    tampered.ciphertext[last] ^= 1;
    let now = real.timestamp_ns + 1;
    a.api()
        .publish(vec![
            Envelope {
                content_topic: topic.clone(),
                timestamp_ns: now,
                message: b"garbage".to_vec(),
            },
            Envelope {
                content_topic: topic.clone(),
                timestamp_ns: now + 1,
                message: tampered.encode_to_vec(),
            },
            // A replay of the real envelope under another timestamp.
            Envelope {
                content_topic: topic,
                timestamp_ns: now + 2,
                message: real.message.clone(),
            },
        ])
        .await
        .unwrap();
    let summary = b.sync().await.unwrap();
    assert_eq!(summary.new_messages, 1);
    assert_eq!(summary.failed, 2);
    assert_eq!(group_texts(&b, &group), ["real"]);
}

#[tokio::test]
async fn a_member_who_leaves_reads_nothing_after_and_any_member_may_rename() {
    let node = start_node().await;
    let wallets: Vec<LocalWallet> = (0..3).map(|_| LocalWallet::random()).collect();
    let mut cs = Vec::new();
    for w in &wallets {
        cs.push(client(&node, w).await);
    }
    let (a, b, c) = (&cs[0], &cs[1], &cs[2]);
    let group = a
        .create_group(&[&b.address(), &c.address()], "g")
        .await
        .unwrap();
    sync_all(&[a, b, c]).await;
    b.send_group_text(&group, "before").await.unwrap();
    sync_all(&[a, b, c]).await;
    c.rename_group(&group, "named by carol").await.unwrap();
    c.leave_group(&group).await.unwrap();
    sync_all(&[a, b, c]).await;
    b.send_group_text(&group, "after").await.unwrap();
    sync_all(&[a, b, c]).await;
    for x in [a, b, c] {
        let g = x.group(&group).unwrap();
        assert_eq!(g.name, "named by carol");
        assert_eq!(g.members.len(), 2);
        assert_eq!(g.version, 3);
    }
    assert_eq!(group_texts(a, &group), ["before", "after"]);
    assert_eq!(group_texts(c, &group), ["before"]);
    assert_eq!(c.sync_groups().await.unwrap().pending, 1);
}
