//! The exported API called from Rust, as the foreign bindings call it,
//! against a real node started in-process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::{sync::Arc, time::Duration};

use bindings_ffi::{
    create_client, FfiCallbackError, FfiError, FfiLocalWallet, FfiMessage, FfiMessageCallback,
    FfiPaging,
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
