//! XMTP V1/V2 conversations through a real node: two of our clients, and
//! our client with an "XMTP-only" user driven directly by
//! `xmtp_cryptography::v2` (what XMTP's SDKs do: a contact bundle, no
//! installations of ours).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{api, client, next, start_node};
use prost::Message as _;
use rand::rngs::OsRng;
use xmtp_core::{
    content::encode_text, ClientError, LocalWallet, MessagePage, Protocol, V2Error,
    V2IdentityOrigin,
};
use xmtp_cryptography::v2::{
    contact, invitation, message,
    private_key::{IdentityRequest, PrivateKeyBundleV1},
    public_key::VerifiedPublicKeyBundle,
    topic,
};
use xmtp_networking::XmtpApi;
use xmtp_proto::xmtp::message_api::v1::{Envelope, PagingInfo, QueryRequest, SortDirection};
use xmtp_proto::xmtp::message_contents::EncodedContent;

fn now_ns() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

/// An XMTP user outside this library: keys made with the wallet, a contact
/// bundle on the node, and nothing else.
struct XmtpOnly {
    wallet: LocalWallet,
    keys: PrivateKeyBundleV1,
}

impl XmtpOnly {
    async fn new(api: &Arc<dyn XmtpApi>) -> Self {
        let wallet = LocalWallet::random();
        let request = IdentityRequest::new(&mut OsRng, now_ns() / 1_000_000);
        let sig = wallet.sign_text_sync(request.text()).unwrap();
        let keys = request
            .complete(&mut OsRng, sig.as_bytes(), Some(wallet.address()))
            .unwrap();
        api.publish(vec![Envelope {
            content_topic: topic::contact_topic(&wallet.address()),
            timestamp_ns: now_ns(),
            message: contact::encode_v1(&keys.public_bundle().unwrap()),
        }])
        .await
        .unwrap();
        Self { wallet, keys }
    }

    fn address(&self) -> String {
        self.wallet.address().to_checksum()
    }

    /// Opens the one invitation on its invite topic: the invitation and the
    /// conversation's key material.
    async fn open_invitation(
        &self,
        api: &Arc<dyn XmtpApi>,
    ) -> (invitation::OpenedInvitation, Vec<u8>) {
        let invites = all(api, topic::invite_topic(&self.wallet.address())).await;
        assert_eq!(invites.len(), 1);
        let opened = invitation::open(
            &self.keys.to_v2().unwrap(),
            &invites[0].message,
            Some(invites[0].timestamp_ns),
        )
        .unwrap();
        let key = invitation::key_material(&opened.invitation)
            .unwrap()
            .to_vec();
        (opened, key)
    }

    /// Its V2 message with `content` in the conversation `topic`, sent at `at`.
    fn message(&self, topic: &str, key: &[u8], at: u64, content: &EncodedContent) -> Envelope {
        sealed_message(&self.keys, topic, key, at, content)
    }
}

/// A V2 message by the owner of `keys`, as an envelope on `topic`.
fn sealed_message(
    keys: &PrivateKeyBundleV1,
    topic: &str,
    key: &[u8],
    at: u64,
    content: &EncodedContent,
) -> Envelope {
    let m = message::encode_v2(
        &mut OsRng,
        &keys.to_v2().unwrap(),
        topic,
        key,
        at,
        &content.encode_to_vec(),
        Some(true),
    )
    .unwrap();
    Envelope {
        content_topic: topic.to_owned(),
        timestamp_ns: at,
        message: m.bytes,
    }
}

async fn all(api: &Arc<dyn XmtpApi>, topic: String) -> Vec<Envelope> {
    api.query(QueryRequest {
        content_topics: vec![topic],
        start_time_ns: 0,
        end_time_ns: 0,
        paging_info: Some(PagingInfo {
            limit: 100,
            cursor: None,
            direction: SortDirection::Ascending as i32,
        }),
    })
    .await
    .unwrap()
    .envelopes
}

#[tokio::test]
async fn two_of_our_clients_talk_over_v2_and_stream() {
    let node = start_node().await;
    let (aw, bw) = (LocalWallet::random(), LocalWallet::random());
    let alice = client(&node, &aw).await;
    let bob = client(&node, &bw).await;
    let a_id = alice.enable_v2().await.unwrap();
    let b_id = bob.enable_v2().await.unwrap();
    assert_eq!(a_id.origin, V2IdentityOrigin::Created);
    assert_eq!(b_id.identity_key.len(), 130);
    assert!(alice.can_message_v2(&bob.address()).await.unwrap());

    let sent = alice
        .send_v2_text(&bob.address(), "gm over v2")
        .await
        .unwrap();
    assert_eq!(sent.protocol, Protocol::V2);
    assert!(sent.conversation_id.starts_with("/xmtp/0/m-"));
    assert_eq!(sent.id.len(), 64);

    bob.sync().await.unwrap();
    let got = bob
        .messages_with(&alice.address(), &MessagePage::default())
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text().as_deref(), Some("gm over v2"));
    assert_eq!(got[0].sender_address, alice.address());
    assert_eq!(got[0].protocol, Protocol::V2);
    assert_eq!(got[0].id, sent.id);
    // Both sides agree on the (deterministic) topic.
    assert_eq!(got[0].conversation_id, sent.conversation_id);
    let conversations = bob.conversations().unwrap();
    assert!(conversations
        .iter()
        .any(|c| c.kind == "v2" && c.peer_address.as_deref() == Some(alice.address().as_str())));

    // Bob's stream sees Alice's next message; Alice's sees Bob's reply.
    let mut bob_stream = bob.stream_messages().await.unwrap();
    let mut alice_stream = alice.stream_messages().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    alice.send_v2_text(&bob.address(), "second").await.unwrap();
    let m = next(&mut bob_stream).await;
    assert_eq!(m.text().as_deref(), Some("second"));
    assert_eq!(m.protocol, Protocol::V2);
    bob.send_v2_text(&alice.address(), "reply").await.unwrap();
    loop {
        let m = next(&mut alice_stream).await;
        if m.text().as_deref() == Some("reply") {
            assert_eq!(m.sender_address, bob.address());
            break;
        }
    }

    // Both are our users, so the automatic choice is Olm.
    let auto = alice
        .send_text_auto(&bob.address(), "olm please")
        .await
        .unwrap();
    assert_eq!(auto.protocol, Protocol::Olm);
    bob.sync().await.unwrap();
    let history = bob
        .messages_with(&alice.address(), &MessagePage::default())
        .unwrap();
    let protocols: Vec<_> = history.iter().map(|m| m.protocol).collect();
    assert_eq!(
        protocols,
        vec![Protocol::V2, Protocol::V2, Protocol::V2, Protocol::Olm]
    );
    node.shutdown().await;
}

#[tokio::test]
async fn identity_is_recovered_from_the_private_store_by_a_new_client() {
    let node = start_node().await;
    let wallet = LocalWallet::random();
    let first = client(&node, &wallet).await;
    let made = first.enable_v2().await.unwrap();
    assert_eq!(made.origin, V2IdentityOrigin::Created);
    // Loaded on the next call.
    assert_eq!(
        first.enable_v2().await.unwrap().origin,
        V2IdentityOrigin::Loaded
    );
    // Another device (a new database) of the same wallet.
    let second = client(&node, &wallet).await;
    let recovered = second.enable_v2().await.unwrap();
    assert_eq!(recovered.origin, V2IdentityOrigin::Recovered);
    assert_eq!(recovered.identity_key, made.identity_key);
    // The bundle on the node is encrypted: the private key bytes are not in it.
    let api = api(&node).await;
    let stored = all(&api, topic::private_store_topic(&wallet.address())).await;
    assert_eq!(stored.len(), 1, "stored once, then recovered");
    // A client of another wallet cannot use it.
    let other = client(&node, &LocalWallet::random()).await;
    assert_eq!(
        other.enable_v2().await.unwrap().origin,
        V2IdentityOrigin::Created
    );
    // The contact bundles (legacy and V2) were published once per identity.
    let contacts = all(&api, topic::contact_topic(&wallet.address())).await;
    assert_eq!(contacts.len(), 2);
    node.shutdown().await;
}

#[tokio::test]
async fn our_client_and_an_xmtp_only_user_talk_both_ways() {
    let node = start_node().await;
    let api = api(&node).await;
    let peer = XmtpOnly::new(&api).await;
    let alice = client(&node, &LocalWallet::random()).await;

    // Without V2, the peer (no installations of ours) cannot be reached.
    assert!(matches!(
        alice.send_text_auto(&peer.address(), "hi").await,
        Err(ClientError::PeerNotRegistered(_))
    ));
    alice.enable_v2().await.unwrap();
    let sent = alice
        .send_text_auto(&peer.address(), "hello xmtp user")
        .await
        .unwrap();
    assert_eq!(sent.protocol, Protocol::V2);

    // The peer finds the invitation on its invite topic and opens it.
    let (opened, key) = peer.open_invitation(&api).await;
    assert_eq!(opened.peer_address().to_checksum(), alice.address());
    let conversation = opened.invitation.topic.clone();
    // The same invitation is on Alice's own invite topic, for her other devices.
    let alice_address = alice.address().parse().unwrap();
    assert_eq!(
        all(&api, topic::invite_topic(&alice_address)).await.len(),
        1
    );
    // It reads and verifies Alice's message.
    let messages = all(&api, conversation.clone()).await;
    assert_eq!(messages.len(), 1);
    let read = message::decode_v2(&messages[0].message, &conversation, &key).unwrap();
    assert_eq!(read.sender_address.to_checksum(), alice.address());
    let content = EncodedContent::decode(read.payload.as_slice()).unwrap();
    assert_eq!(content.content, b"hello xmtp user");

    // It answers, with text and with a content type we do not know.
    let mut custom = encode_text("ignored");
    custom.r#type.as_mut().unwrap().type_id = "reaction".into();
    custom.fallback = Some("reacted with a thumbs up".into());
    let t = now_ns();
    let replies = vec![
        peer.message(&conversation, &key, t, &encode_text("hello library user")),
        peer.message(&conversation, &key, t + 1, &custom),
    ];
    api.publish(replies).await.unwrap();
    alice.sync().await.unwrap();
    let history = alice
        .messages_with(&peer.address(), &MessagePage::default())
        .unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[1].text().as_deref(), Some("hello library user"));
    assert_eq!(history[1].sender_address, peer.address());
    assert_eq!(history[2].content_type(), "xmtp.org/reaction:1.0");
    assert_eq!(history[2].text(), None);
    assert_eq!(
        history[2].display_text().as_deref(),
        Some("reacted with a thumbs up")
    );
    assert!(history.iter().all(|m| m.protocol == Protocol::V2));

    // A V1 message from the peer (published to the V1 topic and Alice's intro
    // topic, as XMTP's V1 clients did) is read as V1.
    // Our client publishes its legacy bundle (for V1-era clients), then its
    // V2 bundle (newest, read first by current SDKs).
    let alice_bundles = all(&api, topic::contact_topic(&alice_address)).await;
    assert_eq!(alice_bundles.len(), 2);
    let newest = contact::Contact::decode_for(&alice_bundles[1].message, &alice_address).unwrap();
    assert!(matches!(newest, contact::Contact::V2(_)));
    let oldest = contact::Contact::decode_for(&alice_bundles[0].message, &alice_address).unwrap();
    let contact::Contact::V1(alice_v1) = oldest else {
        panic!("the legacy bundle comes first");
    };
    let v1 = message::encode_v1(
        &mut OsRng,
        &peer.keys,
        &VerifiedPublicKeyBundle::verify(alice_v1.proto()).unwrap(),
        now_ns() / 1_000_000,
        &encode_text("old style").encode_to_vec(),
    )
    .unwrap();
    let dm_topic = topic::direct_message_topic_v1(&peer.wallet.address(), &alice_address);
    api.publish(vec![
        Envelope {
            content_topic: dm_topic.clone(),
            timestamp_ns: now_ns(),
            message: v1.bytes.clone(),
        },
        Envelope {
            content_topic: topic::intro_topic(&alice_address),
            timestamp_ns: now_ns(),
            message: v1.bytes,
        },
    ])
    .await
    .unwrap();
    alice.sync().await.unwrap();
    let history = alice
        .messages_with(&peer.address(), &MessagePage::default())
        .unwrap();
    assert_eq!(history.len(), 4, "the intro copy is the same message");
    assert_eq!(history[3].protocol, Protocol::V1);
    assert_eq!(history[3].text().as_deref(), Some("old style"));
    node.shutdown().await;
}

#[tokio::test]
async fn tampered_and_foreign_envelopes_are_refused_not_shown() {
    let node = start_node().await;
    let api = api(&node).await;
    let peer = XmtpOnly::new(&api).await;
    let mallory = XmtpOnly::new(&api).await;
    let alice = client(&node, &LocalWallet::random()).await;
    alice.enable_v2().await.unwrap();
    let sent = alice.send_v2_text(&peer.address(), "start").await.unwrap();
    let conversation = sent.conversation_id.clone();
    let (_, key) = peer.open_invitation(&api).await;
    let t = now_ns();
    let good = peer
        .message(&conversation, &key, t, &encode_text("genuine"))
        .message;
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 50] ^= 0x01;
    // Mallory knows the key (say it leaked) but is not a party.
    let mallory_v2 = mallory.keys.to_v2().unwrap();
    let intruder = mallory
        .message(&conversation, &key, t + 2, &encode_text("I am the peer"))
        .message;
    // A message of another conversation replayed on this one.
    let other = peer
        .message(
            "/xmtp/0/m-elsewhere/proto",
            &key,
            t + 3,
            &encode_text("moved"),
        )
        .message;
    // An invitation sealed by Mallory whose envelope time was changed.
    let alice_address = alice.address().parse().unwrap();
    let alice_bundle = all(&api, topic::contact_topic(&alice_address)).await;
    let alice_signed = contact::Contact::decode_for(&alice_bundle[0].message, &alice_address)
        .unwrap()
        .to_signed()
        .unwrap();
    let invite = invitation::deterministic_invitation(&mallory_v2, &alice_signed, None).unwrap();
    let sealed = invitation::seal(&mut OsRng, &mallory_v2, &alice_signed, t, &invite).unwrap();
    let envelope = |topic: &str, at: u64, message: Vec<u8>| Envelope {
        content_topic: topic.to_owned(),
        timestamp_ns: at,
        message,
    };
    api.publish(vec![
        envelope(&conversation, t, good),
        envelope(&conversation, t + 1, flipped),
        envelope(&conversation, t + 2, intruder),
        envelope(&conversation, t + 3, other),
        envelope(&conversation, t + 4, vec![0xde, 0xad, 0xbe, 0xef]),
        envelope(&topic::invite_topic(&alice_address), t + 5, sealed),
    ])
    .await
    .unwrap();
    let summary = alice.sync().await.unwrap();
    assert_eq!(summary.failed, 5, "{summary:?}");
    let history = alice
        .messages_with(&peer.address(), &MessagePage::default())
        .unwrap();
    let texts: Vec<_> = history.iter().filter_map(|m| m.text()).collect();
    assert_eq!(texts, vec!["start", "genuine"]);
    assert!(alice
        .messages_with(&mallory.address(), &MessagePage::default())
        .unwrap()
        .is_empty());
    let failed = alice.failed_envelopes().unwrap();
    assert_eq!(failed.len(), 5);
    assert!(failed.iter().any(|f| f.reason.contains("not a party")));
    assert!(failed.iter().any(|f| f.reason.contains("invitation")));
    node.shutdown().await;
}

#[tokio::test]
async fn v2_needs_enabling_and_a_contact() {
    let node = start_node().await;
    let alice = client(&node, &LocalWallet::random()).await;
    assert!(matches!(
        alice
            .send_v2_text(&LocalWallet::random().address().to_checksum(), "x")
            .await,
        Err(ClientError::V2(V2Error::NotEnabled))
    ));
    alice.enable_v2().await.unwrap();
    assert!(matches!(
        alice
            .send_v2_text(&LocalWallet::random().address().to_checksum(), "x")
            .await,
        Err(ClientError::V2(V2Error::NoContact(_)))
    ));
    node.shutdown().await;
}

#[tokio::test]
async fn clients_work_with_a_node_that_requires_auth() {
    let node = xmtp_node::Node::start(xmtp_node::NodeConfig::default().with_require_auth(true))
        .await
        .unwrap();
    let alice = client(&node, &LocalWallet::random()).await;
    let bob = client(&node, &LocalWallet::random()).await;
    // Our own protocol (all /xmtp/3/ topics) needs no token.
    alice.send_text(&bob.address(), "olm").await.unwrap();
    // V2 publishes (privatestore, contact, invitations, messages) carry one.
    alice.enable_v2().await.unwrap();
    bob.enable_v2().await.unwrap();
    alice.send_v2_text(&bob.address(), "v2").await.unwrap();
    bob.sync().await.unwrap();
    let texts: Vec<_> = bob
        .messages_with(&alice.address(), &MessagePage::default())
        .unwrap()
        .iter()
        .filter_map(|m| m.text())
        .collect();
    assert_eq!(texts, vec!["olm", "v2"]);
    // Without a token, a V2 publish is refused.
    let api = api(&node).await;
    let refused = api
        .publish(vec![Envelope {
            content_topic: topic::contact_topic(&LocalWallet::random().address()),
            timestamp_ns: now_ns(),
            message: vec![1, 2, 3],
        }])
        .await;
    assert!(refused.is_err());
    node.shutdown().await;
}

#[tokio::test]
async fn an_agent_answers_v2_messages_over_v2() {
    use xmtp_core::agent::{Agent, HandlerError, MessageContext};
    let node = start_node().await;
    let agent_client = client(&node, &LocalWallet::random()).await;
    agent_client.enable_v2().await.unwrap();
    let agent_address = agent_client.address();
    let running = Agent::from_client(agent_client)
        .start(|ctx: MessageContext| async move {
            let text = ctx.text().unwrap_or_default();
            ctx.reply(&format!("echo: {text}")).await?;
            Ok::<(), HandlerError>(())
        })
        .await
        .unwrap();
    let user = client(&node, &LocalWallet::random()).await;
    user.enable_v2().await.unwrap();
    let mut stream = user.stream_messages().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    user.send_v2_text(&agent_address, "ping").await.unwrap();
    let reply = loop {
        let m = next(&mut stream).await;
        if m.sender_address == agent_address {
            break m;
        }
    };
    assert_eq!(reply.text().as_deref(), Some("echo: ping"));
    assert_eq!(reply.protocol, Protocol::V2);
    running.stop().await.unwrap();
    node.shutdown().await;
}

#[tokio::test]
async fn sync_reads_many_conversations_and_long_topics() {
    let node = start_node().await;
    let api = api(&node).await;
    let alice = client(&node, &LocalWallet::random()).await;
    alice.enable_v2().await.unwrap();
    // Three XMTP-only peers; the first writes more than a page (100).
    let mut peers = Vec::new();
    for _ in 0..3 {
        let peer = XmtpOnly::new(&api).await;
        alice.send_v2_text(&peer.address(), "hi").await.unwrap();
        peers.push(peer);
    }
    let mut expected = Vec::new();
    for (i, peer) in peers.iter().enumerate() {
        let (opened, key) = peer.open_invitation(&api).await;
        let conversation = opened.invitation.topic.clone();
        let count = if i == 0 { 130 } else { 2 };
        let t = now_ns();
        let envelopes: Vec<Envelope> = (0..count)
            .map(|n| {
                peer.message(
                    &conversation,
                    &key,
                    t + n,
                    &encode_text(&format!("{i}-{n}")),
                )
            })
            .collect();
        api.publish(envelopes).await.unwrap();
        expected.push(count as usize + 1);
    }
    let summary = alice.sync().await.unwrap();
    assert_eq!(summary.failed, 0);
    assert_eq!(summary.new_messages, 134, "{summary:?}");
    for (peer, n) in peers.iter().zip(expected) {
        let history = alice
            .messages_with(&peer.address(), &MessagePage::default())
            .unwrap();
        assert_eq!(history.len(), n);
    }
    // A second sync finds nothing new.
    assert_eq!(alice.sync().await.unwrap().new_messages, 0);
    node.shutdown().await;
}

#[tokio::test]
async fn v1_messages_stream_from_the_intro_topic_then_the_conversation_topic() {
    let node = start_node().await;
    let api = api(&node).await;
    let peer = XmtpOnly::new(&api).await;
    let alice = client(&node, &LocalWallet::random()).await;
    alice.enable_v2().await.unwrap();
    let alice_address = alice.address().parse().unwrap();
    let bundles = all(&api, topic::contact_topic(&alice_address)).await;
    let contact::Contact::V1(alice_v1) =
        contact::Contact::decode_for(&bundles[0].message, &alice_address).unwrap()
    else {
        panic!("the legacy bundle comes first");
    };
    let alice_v1 = VerifiedPublicKeyBundle::verify(alice_v1.proto()).unwrap();
    let v1 = |text: &str| {
        message::encode_v1(
            &mut OsRng,
            &peer.keys,
            &alice_v1,
            now_ns() / 1_000_000,
            &encode_text(text).encode_to_vec(),
        )
        .unwrap()
        .bytes
    };
    let dm_topic = topic::direct_message_topic_v1(&peer.wallet.address(), &alice_address);
    let mut stream = alice.stream_messages().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The first message of a V1 conversation also goes to the intro topic;
    // later ones only to the conversation's topic.
    let first = v1("first");
    api.publish(vec![
        Envelope {
            content_topic: topic::intro_topic(&alice_address),
            timestamp_ns: now_ns(),
            message: first.clone(),
        },
        Envelope {
            content_topic: dm_topic.clone(),
            timestamp_ns: now_ns(),
            message: first,
        },
    ])
    .await
    .unwrap();
    let m = next(&mut stream).await;
    assert_eq!(
        (m.text().as_deref(), m.protocol),
        (Some("first"), Protocol::V1)
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    api.publish(vec![Envelope {
        content_topic: dm_topic,
        timestamp_ns: now_ns(),
        message: v1("second"),
    }])
    .await
    .unwrap();
    let m = next(&mut stream).await;
    assert_eq!(m.text().as_deref(), Some("second"));
    node.shutdown().await;
}
