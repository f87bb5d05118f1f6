//! The exported API called from Rust, as the foreign bindings call it,
//! against a real node started in-process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::{sync::Arc, time::Duration};

use bindings_ffi::{
    create_client, FfiCallbackError, FfiError, FfiLocalWallet, FfiMessage, FfiMessageCallback,
    FfiPaging, FfiProtocol, FfiV2IdentityOrigin,
};
use tokio::sync::mpsc;

/// A bound against a hang, not a speed assertion.
const WAIT: Duration = Duration::from_secs(60);

struct Forward(mpsc::UnboundedSender<FfiMessage>);

impl FfiMessageCallback for Forward {
    fn on_message(&self, message: FfiMessage) -> Result<(), FfiCallbackError> {
        self.0.send(message).map_err(|e| FfiCallbackError::Failed {
            reason: e.to_string(),
        })
    }
    fn on_error(&self, error: FfiError) -> Result<(), FfiCallbackError> {
        panic!("stream error: {error}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_converse_and_a_stream_delivers_until_closed() {
    let node = xmtp_node::Node::start(xmtp_node::NodeConfig::default())
        .await
        .unwrap();
    let wallet = FfiLocalWallet::new();
    let alice = create_client(
        node.grpc_url(),
        None,
        vec![],
        Some(wallet.clone().as_signer()),
    )
    .await
    .unwrap();
    let bob = create_client(node.grpc_url(), None, vec![], None)
        .await
        .unwrap();
    assert_eq!(alice.address(), wallet.address());

    let (tx, mut rx) = mpsc::unbounded_channel();
    let handle = bob.stream(Arc::new(Forward(tx))).await.unwrap();
    let id = alice.send(bob.address(), "gm".into()).await.unwrap();
    let streamed = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (streamed.id.as_str(), streamed.text.as_deref()),
        (id.as_str(), Some("gm"))
    );
    handle.end();
    assert!(handle.is_closed());

    bob.sync().await.unwrap();
    let reply = bob.send(alice.address(), "gm back".into()).await.unwrap();
    alice.sync().await.unwrap();
    let texts: Vec<_> = alice
        .messages(bob.address(), None)
        .unwrap()
        .into_iter()
        .map(|m| m.text.unwrap())
        .collect();
    assert_eq!(texts, ["gm", "gm back"]);
    let newest = alice
        .messages(
            bob.address(),
            Some(FfiPaging {
                limit: Some(1),
                descending: true,
                ..FfiPaging::default()
            }),
        )
        .unwrap();
    assert_eq!(newest[0].id, reply);
    assert_eq!(
        alice.list_conversations().unwrap()[0]
            .peer_address
            .as_deref(),
        Some(bob.address().as_str())
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_peer_address_is_a_typed_error() {
    let node = xmtp_node::Node::start(xmtp_node::NodeConfig::default())
        .await
        .unwrap();
    let alice = create_client(node.grpc_url(), None, vec![], None)
        .await
        .unwrap();
    let err = alice.send("0xabc".into(), "hi".into()).await.unwrap_err();
    assert!(matches!(err, FfiError::InvalidAddress { ref message } if message.contains("0xabc")));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_conversations_beside_olm_through_the_exported_api() {
    let node = xmtp_node::Node::start(xmtp_node::NodeConfig::default())
        .await
        .unwrap();
    let alice = create_client(
        node.grpc_url(),
        None,
        vec![],
        Some(FfiLocalWallet::new().as_signer()),
    )
    .await
    .unwrap();
    let bob = create_client(
        node.grpc_url(),
        None,
        vec![],
        Some(FfiLocalWallet::new().as_signer()),
    )
    .await
    .unwrap();

    // Not enabled yet: a typed error naming what to call.
    assert_eq!(alice.v2_identity(), None);
    let err = alice
        .send_v2(bob.address(), "too early".into())
        .await
        .unwrap_err();
    assert!(
        matches!(err, FfiError::InvalidConfiguration { ref message } if message.contains("enable_v2")),
        "{err:?}"
    );
    assert!(!alice.can_message_v2(bob.address()).await.unwrap());

    let made = alice.enable_v2().await.unwrap();
    assert_eq!(made.origin, FfiV2IdentityOrigin::Created);
    assert_eq!(made.identity_key.len(), 130);
    assert_eq!(
        alice.v2_identity().map(|i| (i.identity_key, i.origin)),
        Some((made.identity_key.clone(), FfiV2IdentityOrigin::Loaded))
    );
    assert_eq!(
        alice.enable_v2().await.unwrap().origin,
        FfiV2IdentityOrigin::Loaded
    );
    bob.enable_v2().await.unwrap();
    assert!(alice.can_message_v2(bob.address()).await.unwrap());

    let first = alice
        .send_v2(bob.address(), "gm over v2".into())
        .await
        .unwrap();
    bob.sync().await.unwrap();
    let reply = bob
        .send_v2(alice.address(), "gm back over v2".into())
        .await
        .unwrap();
    // Bob has installations of ours, so the automatic choice is Olm.
    let auto = alice
        .send_auto(bob.address(), "olm now".into())
        .await
        .unwrap();
    assert_eq!(
        alice.message(auto.clone()).unwrap().unwrap().protocol,
        FfiProtocol::Olm
    );
    bob.sync().await.unwrap();

    let history = bob.messages_with(alice.address(), None).unwrap();
    let seen: Vec<_> = history
        .iter()
        .map(|m| (m.id.as_str(), m.text.as_deref().unwrap(), m.protocol))
        .collect();
    assert_eq!(
        seen,
        [
            (first.as_str(), "gm over v2", FfiProtocol::V2),
            (reply.as_str(), "gm back over v2", FfiProtocol::V2),
            (auto.as_str(), "olm now", FfiProtocol::Olm),
        ]
    );
    assert!(history[0].conversation_id.starts_with("/xmtp/0/m-"));
    assert_eq!(history[0].conversation_id, history[1].conversation_id);
    assert_eq!(history[2].conversation_id, alice.address());
    assert_eq!(history[0].sender_address, alice.address());
    assert_eq!(history[0].sender_installation_id, made.identity_key);
    // The same paging as `messages`.
    let newest_v2 = bob
        .messages_with(
            alice.address(),
            Some(FfiPaging {
                sent_before_ns: Some(history[2].sent_ns),
                limit: Some(1),
                descending: true,
                ..FfiPaging::default()
            }),
        )
        .unwrap();
    assert_eq!(newest_v2.len(), 1);
    assert_eq!(newest_v2[0].id, reply);
    // `messages` of the Olm conversation has the Olm message only.
    let olm: Vec<_> = bob
        .messages(alice.address(), None)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(olm, [auto]);
    let kinds: Vec<_> = bob
        .list_conversations()
        .unwrap()
        .into_iter()
        .map(|c| (c.kind, c.peer_address))
        .collect();
    assert!(kinds.contains(&("v2".to_owned(), Some(alice.address()))));
    assert!(kinds.contains(&("dm".to_owned(), Some(alice.address()))));

    // Nobody at this address: neither protocol reaches it.
    let nobody = FfiLocalWallet::new().address();
    assert!(!alice.can_message_v2(nobody.clone()).await.unwrap());
    let err = alice
        .send_v2(nobody.clone(), "anyone?".into())
        .await
        .unwrap_err();
    assert!(matches!(err, FfiError::PeerNotRegistered { .. }), "{err:?}");
    let err = alice.send_auto(nobody, "anyone?".into()).await.unwrap_err();
    assert!(matches!(err, FfiError::PeerNotRegistered { .. }), "{err:?}");
    node.shutdown().await;
}
