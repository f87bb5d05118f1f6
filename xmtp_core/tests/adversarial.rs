//! Hostile and unreliable input: reordered and duplicated envelopes, forged
//! bundles, garbage and replays on an installation's topic, revoked
//! installations. Against a real node started in-process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use prost::Message as _;
use xmtp_core::{
    content::encode_text, installation_topic, ClientError, EnvelopeResult, LocalWallet,
};
use xmtp_cryptography::{
    Association, InstallationKeys, OlmSession, PreKeyKind, VerifiedInstallation,
};
use xmtp_proto::xmtp::{
    message_api::v1::{Envelope, SortDirection},
    v3::message_contents::{
        installation_message::Payload, DirectMessagePayload, InstallationMessage, OlmEnvelope,
    },
};

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test]
async fn reordered_and_duplicated_envelopes_are_stored_once_each() {
    let node = start_node().await;
    let alice = client(&node, &LocalWallet::random()).await;
    let bob = client(&node, &LocalWallet::random()).await;
    for i in 0..4 {
        alice
            .send_text(&bob.address(), &format!("m{i}"))
            .await
            .unwrap();
    }
    let envelopes = bob
        .api()
        .query_all(&bob.inbox_topic(), 0, 0, SortDirection::Ascending)
        .await
        .unwrap();
    assert_eq!(envelopes.len(), 4);
    // Newest first, each twice.
    let mut new = 0;
    let mut duplicates = 0;
    for e in envelopes.iter().rev().flat_map(|e| [e.clone(), e.clone()]) {
        match bob.process_envelope(e).await.unwrap() {
            EnvelopeResult::New(_) => new += 1,
            EnvelopeResult::Duplicate => duplicates += 1,
            EnvelopeResult::Failed(reason) => panic!("refused: {reason}"),
        }
    }
    assert_eq!((new, duplicates), (4, 4));
    assert_eq!(texts(&bob, &alice.address()), ["m0", "m1", "m2", "m3"]);
    // The same envelopes again through a sync change nothing.
    let summary = bob.sync().await.unwrap();
    assert_eq!(
        (summary.envelopes, summary.new_messages, summary.failed),
        (4, 0, 0)
    );
    // And the session still works both ways.
    bob.send_text(&alice.address(), "ack").await.unwrap();
    alice.sync().await.unwrap();
    assert_eq!(texts(&alice, &bob.address()).last().unwrap(), "ack");
}

/// An attacker's own installation, with a session to `target`.
async fn attacker_session(
    node_api: &dyn xmtp_networking::XmtpApi,
    attacker: &InstallationKeys,
    target_address: &str,
    target_installation: &str,
) -> (VerifiedInstallation, OlmSession) {
    let listed = node_api
        .get_installations(vec![target_address.to_string()])
        .await
        .unwrap();
    let target = listed[0]
        .bundles
        .iter()
        .map(|b| VerifiedInstallation::from_proto(b).unwrap())
        .find(|v| v.installation_id().to_hex() == target_installation)
        .unwrap();
    let claimed = node_api
        .claim_one_time_keys(vec![target.installation_id().as_bytes().to_vec()])
        .await
        .unwrap();
    let kind = if claimed[0].is_fallback {
        PreKeyKind::Fallback
    } else {
        PreKeyKind::OneTime
    };
    let claim = target
        .verify_claimed_key(claimed[0].key.as_ref().unwrap(), kind)
        .unwrap();
    let session = OlmSession::outbound(attacker, &target, &claim).unwrap();
    (target, session)
}

fn payload(sender: &str, recipient: &VerifiedInstallation, peer: &str, text: &str) -> Vec<u8> {
    InstallationMessage {
        version: 1,
        sender_address: sender.into(),
        recipient_installation_key: recipient.installation_id().as_bytes().to_vec(),
        payload: Some(Payload::DirectMessage(DirectMessagePayload {
            message_id: rand_id(),
            peer_address: peer.into(),
            sent_ns: now_ns(),
            content: Some(encode_text(text)),
        })),
    }
    .encode_to_vec()
}

fn rand_id() -> Vec<u8> {
    let mut id = vec![0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut id);
    id
}

fn olm_envelope(
    keys: &InstallationKeys,
    claimed_address: &str,
    session: &mut OlmSession,
    plaintext: &[u8],
) -> Vec<u8> {
    let (t, bytes) = session.encrypt(plaintext).unwrap().to_parts();
    OlmEnvelope {
        version: 1,
        sender_installation_key: keys.installation_id().as_bytes().to_vec(),
        sender_identity_key: keys.identity_key().to_vec(),
        sender_address: claimed_address.into(),
        message_type: t.as_u64() as u32,
        ciphertext: bytes,
    }
    .encode_to_vec()
}

#[tokio::test]
async fn a_forged_bundle_for_alices_address_is_ignored() {
    let node = start_node().await;
    let api = api(&node).await;
    let alice = client(&node, &LocalWallet::random()).await;
    let bob = client(&node, &LocalWallet::random()).await;

    // Mallory makes an installation and claims it belongs to Alice: her own
    // wallet signs, and the association names Alice's address.
    let mallory_wallet = LocalWallet::random();
    let mut mallory = InstallationKeys::new();
    mallory.rotate_fallback_key();
    let association = Association::create(&mallory_wallet, mallory.installation_id(), now_ns())
        .await
        .unwrap();
    let mut bundle = mallory.public_bundle(&association).unwrap();
    bundle.association.as_mut().unwrap().account_address = alice.address();
    api.register_installation(bundle).await.unwrap();
    let otks = mallory.generate_one_time_keys(5);
    api.upload_one_time_keys(
        mallory.installation_id().as_bytes().to_vec(),
        otks.iter().map(|k| k.to_proto()).collect(),
    )
    .await
    .unwrap();
    let listed = api.get_installations(vec![alice.address()]).await.unwrap();
    assert_eq!(
        listed[0].bundles.len(),
        2,
        "the node lists the forged bundle beside Alice's"
    );

    // Bob sees only Alice's real installation and sends nothing to Mallory.
    let seen = bob.installations_of(&alice.address()).await.unwrap();
    assert_eq!(
        seen.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        [alice.installation_id()]
    );
    bob.send_text(&alice.address(), "for alice only")
        .await
        .unwrap();
    let to_mallory = api
        .query_all(
            &installation_topic(&mallory.installation_id()),
            0,
            0,
            SortDirection::Ascending,
        )
        .await
        .unwrap();
    assert!(to_mallory.is_empty());
    alice.sync().await.unwrap();
    assert_eq!(texts(&alice, &bob.address()), ["for alice only"]);

    // Mallory writes to Bob pretending to be Alice: refused.
    let (bob_inst, mut session) = attacker_session(
        api.as_ref(),
        &mallory,
        &bob.address(),
        &bob.installation_id(),
    )
    .await;
    let forged = olm_envelope(
        &mallory,
        &alice.address(),
        &mut session,
        &payload(&alice.address(), &bob_inst, &bob.address(), "i am alice"),
    );
    api.publish(vec![Envelope {
        content_topic: bob.inbox_topic(),
        timestamp_ns: now_ns(),
        message: forged,
    }])
    .await
    .unwrap();
    let summary = bob.sync().await.unwrap();
    assert_eq!((summary.new_messages, summary.failed), (0, 1));
    assert!(bob.failed_envelopes().unwrap()[0]
        .reason
        .contains("unauthentic sender"));
    assert_eq!(texts(&bob, &alice.address()), ["for alice only"]);
}

#[tokio::test]
async fn a_valid_installation_cannot_speak_for_another_address_inside_the_ciphertext() {
    let node = start_node().await;
    let api = api(&node).await;
    let alice = client(&node, &LocalWallet::random()).await;
    let bob = client(&node, &LocalWallet::random()).await;
    // Mallory is registered properly, under her own address...
    let mallory_wallet = LocalWallet::random();
    let mut mallory = InstallationKeys::new();
    mallory.rotate_fallback_key();
    let association = Association::create(&mallory_wallet, mallory.installation_id(), now_ns())
        .await
        .unwrap();
    api.register_installation(mallory.public_bundle(&association).unwrap())
        .await
        .unwrap();
    let (bob_inst, mut session) = attacker_session(
        api.as_ref(),
        &mallory,
        &bob.address(),
        &bob.installation_id(),
    )
    .await;
    // ...but the payload inside claims Alice sent it.
    let m = mallory_wallet.address().to_checksum();
    let forged = olm_envelope(
        &mallory,
        &m,
        &mut session,
        &payload(&alice.address(), &bob_inst, &bob.address(), "alice here"),
    );
    // And a message to a conversation Bob is not part of.
    let elsewhere = olm_envelope(
        &mallory,
        &m,
        &mut session,
        &payload(&m, &bob_inst, &alice.address(), "psst"),
    );
    let t = now_ns();
    api.publish(vec![
        Envelope {
            content_topic: bob.inbox_topic(),
            timestamp_ns: t,
            message: forged,
        },
        Envelope {
            content_topic: bob.inbox_topic(),
            timestamp_ns: t + 1,
            message: elsewhere,
        },
    ])
    .await
    .unwrap();
    let summary = bob.sync().await.unwrap();
    assert_eq!((summary.new_messages, summary.failed), (0, 2));
    let reasons: Vec<_> = bob
        .failed_envelopes()
        .unwrap()
        .into_iter()
        .map(|f| f.reason)
        .collect();
    assert!(reasons[0].contains("sender address inside"), "{reasons:?}");
    assert!(reasons[1].contains("not part of"), "{reasons:?}");
    assert!(bob.conversations().unwrap().is_empty());
}

#[tokio::test]
async fn garbage_and_replays_on_bobs_topic_are_recorded_and_change_nothing() {
    let node = start_node().await;
    let api = api(&node).await;
    let alice = client(&node, &LocalWallet::random()).await;
    let bob_wallet = LocalWallet::random();
    let bob1 = client(&node, &bob_wallet).await;
    let bob2 = client(&node, &bob_wallet).await;
    alice.send_text(&bob1.address(), "legit 1").await.unwrap();
    bob1.sync().await.unwrap();
    bob2.sync().await.unwrap();
    let legit = api
        .query_all(&bob1.inbox_topic(), 0, 0, SortDirection::Ascending)
        .await
        .unwrap();
    assert_eq!(legit.len(), 1);

    let t = now_ns();
    let mut hostile = vec![
        // Not a protobuf at all.
        Envelope {
            content_topic: bob1.inbox_topic(),
            timestamp_ns: t,
            message: vec![0xff; 64],
        },
        // A well-formed envelope with a random ciphertext, claiming Alice's installation.
        Envelope {
            content_topic: bob1.inbox_topic(),
            timestamp_ns: t + 1,
            message: OlmEnvelope {
                version: 1,
                sender_installation_key: hex::decode(alice.installation_id()).unwrap(),
                sender_identity_key: vec![9; 32],
                sender_address: alice.address(),
                message_type: 1,
                ciphertext: vec![7; 120],
            }
            .encode_to_vec(),
        },
        // The legit envelope replayed later (a new timestamp, the node stores it again).
        Envelope {
            content_topic: bob1.inbox_topic(),
            timestamp_ns: t + 2,
            message: legit[0].message.clone(),
        },
        // Bob1's copy replayed onto Bob2's topic.
        Envelope {
            content_topic: bob2.inbox_topic(),
            timestamp_ns: t + 3,
            message: legit[0].message.clone(),
        },
        // An unknown envelope version.
        Envelope {
            content_topic: bob1.inbox_topic(),
            timestamp_ns: t + 4,
            message: OlmEnvelope {
                version: 99,
                ..Default::default()
            }
            .encode_to_vec(),
        },
    ];
    api.publish(std::mem::take(&mut hostile)).await.unwrap();
    alice.send_text(&bob1.address(), "legit 2").await.unwrap();

    let s1 = bob1.sync().await.unwrap();
    assert_eq!(
        s1.new_messages, 1,
        "the legit message after the garbage still arrives"
    );
    assert_eq!(s1.failed, 3, "{:?}", bob1.failed_envelopes().unwrap());
    let s2 = bob2.sync().await.unwrap();
    assert_eq!(s2.new_messages, 1);
    assert_eq!(s2.failed, 1, "{:?}", bob2.failed_envelopes().unwrap());
    for b in [&bob1, &bob2] {
        assert_eq!(texts(b, &alice.address()), ["legit 1", "legit 2"]);
    }
    // A second sync records nothing new.
    let again = bob1.sync().await.unwrap();
    assert_eq!((again.new_messages, again.failed), (0, 0));
    assert_eq!(bob1.failed_envelopes().unwrap().len(), 3);
    // The conversation continues normally.
    bob1.send_text(&alice.address(), "still fine")
        .await
        .unwrap();
    alice.sync().await.unwrap();
    assert_eq!(
        texts(&alice, &bob1.address()),
        ["legit 1", "legit 2", "still fine"]
    );
}

#[tokio::test]
async fn a_revoked_installation_can_no_longer_send_or_receive() {
    let node = start_node().await;
    let alice_wallet = LocalWallet::random();
    let a1 = client(&node, &alice_wallet).await;
    let a2 = client(&node, &alice_wallet).await;
    let bob = client(&node, &LocalWallet::random()).await;
    a2.send_text(&bob.address(), "hello from a2").await.unwrap();
    bob.sync().await.unwrap();
    a1.sync().await.unwrap();
    a2.send_text(&bob.address(), "sent by a2 just before its revocation")
        .await
        .unwrap();

    a1.revoke_installation(&a2.installation_id()).await.unwrap();
    let own = a1.installations().await.unwrap();
    assert_eq!(
        own.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        [a1.installation_id()]
    );

    // a2 can no longer send...
    assert!(matches!(
        a2.send_text(&bob.address(), "after").await,
        Err(ClientError::InstallationRevoked)
    ));
    assert!(a2.is_revoked());
    // ...and what it sent is refused by Bob once the revocation is known.
    let summary = bob.sync().await.unwrap();
    assert_eq!((summary.new_messages, summary.failed), (0, 1));
    assert!(bob.failed_envelopes().unwrap()[0]
        .reason
        .contains("revoked"));
    // Nobody sends to a2 any more.
    bob.send_text(&a1.address(), "to alice").await.unwrap();
    a1.send_text(&bob.address(), "from a1").await.unwrap();
    let before = api(&node)
        .await
        .query_all(&a2.inbox_topic(), 0, 0, SortDirection::Ascending)
        .await
        .unwrap()
        .len();
    a1.sync().await.unwrap();
    bob.sync().await.unwrap();
    let after = api(&node)
        .await
        .query_all(&a2.inbox_topic(), 0, 0, SortDirection::Ascending)
        .await
        .unwrap()
        .len();
    assert_eq!(before, after);
    assert_eq!(
        texts(&a1, &bob.address()),
        ["hello from a2", "to alice", "from a1"]
    );
    assert_eq!(
        texts(&bob, &a1.address()),
        ["hello from a2", "to alice", "from a1"]
    );
    // Revoking needs the wallet; an unknown installation is refused.
    assert!(matches!(
        a1.revoke_installation(&"ab".repeat(32)).await,
        Err(ClientError::UnknownInstallation(_))
    ));
}

#[tokio::test]
async fn an_envelope_dated_in_the_far_future_does_not_hide_later_messages() {
    let node = start_node().await;
    let api = api(&node).await;
    let alice = client(&node, &LocalWallet::random()).await;
    let bob = client(&node, &LocalWallet::random()).await;
    let far_future = now_ns() + 100 * 365 * 24 * 3600 * 1_000_000_000;
    api.publish(vec![Envelope {
        content_topic: bob.inbox_topic(),
        timestamp_ns: far_future,
        message: vec![1, 2, 3],
    }])
    .await
    .unwrap();
    let first = bob.sync().await.unwrap();
    assert_eq!(first.failed, 1);
    alice
        .send_text(&bob.address(), "still delivered")
        .await
        .unwrap();
    let second = bob.sync().await.unwrap();
    assert_eq!(second.new_messages, 1);
    assert_eq!(texts(&bob, &alice.address()), ["still delivered"]);
}

#[tokio::test]
async fn an_installation_can_revoke_itself_and_revoking_needs_the_wallet() {
    let node = start_node().await;
    let dir = tempfile::tempdir().unwrap();
    let wallet = LocalWallet::random();
    let a1 = client(&node, &wallet).await;
    let path = dir.path().join("a2.db3");
    let key = xmtp_core::DatabaseKey::random();
    let a2 = file_client(api(&node).await, &wallet, &path, &key).await;
    let a2_id = a2.installation_id();
    drop(a2);
    // Reopened without the wallet (it was the app's, not one the client made):
    // it can still read and write, but not sign a revocation.
    let without_wallet = xmtp_core::ClientBuilder::new()
        .api(api(&node).await)
        .database_path(&path)
        .database_key(key.clone())
        .options(options())
        .build()
        .await
        .unwrap();
    assert_eq!(without_wallet.installation_id(), a2_id);
    assert!(matches!(
        without_wallet
            .revoke_installation(&a1.installation_id())
            .await,
        Err(ClientError::NoWallet)
    ));
    drop(without_wallet);

    let a2 = file_client(api(&node).await, &wallet, &path, &key).await;
    a2.revoke_installation(&a2_id).await.unwrap();
    assert!(a2.is_revoked());
    assert!(matches!(
        a2.send_text(&a1.address(), "x").await,
        Err(ClientError::InstallationRevoked)
    ));
    let ids: Vec<_> = a1
        .installations()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, [a1.installation_id()]);
    drop(a2);
    // The revocation is remembered across a restart.
    let a2 = file_client(api(&node).await, &wallet, &path, &key).await;
    assert!(a2.is_revoked());
}
