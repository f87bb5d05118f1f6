//! Authentication tokens against a node started with `require_auth`: a
//! publish on an XMTP V1/V2 topic fails without a token (Unauthenticated, not
//! retried), succeeds once `set_auth_token` is called (on any clone), and
//! fails again after the token is cleared; `/xmtp/3/` publishes need none.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{client, envelope, metric, now_ns, topic};
use xmtp_cryptography::{
    v2::{authn, private_key::IdentityRequest},
    wallet::LocalWallet,
};
use xmtp_networking::{ApiError, XmtpApi};
use xmtp_node::{Node, NodeConfig};
use xmtp_proto::xmtp::message_api::v1::SortDirection;

/// A fresh wallet's token, base64, without `Bearer `.
fn token() -> (LocalWallet, String) {
    let mut rng = rand::thread_rng();
    let wallet = LocalWallet::random();
    let request = IdentityRequest::new(&mut rng, now_ns() / 1_000_000);
    let signature = wallet.sign_text_sync(request.text()).unwrap();
    let keys = request
        .complete(&mut rng, signature.as_bytes(), Some(wallet.address()))
        .unwrap();
    let bearer = authn::bearer(&authn::create_token(&keys, now_ns()).unwrap());
    (wallet, bearer.strip_prefix("Bearer ").unwrap().to_owned())
}

#[tokio::test]
async fn publishes_need_the_token_set_on_the_client() {
    let node = Node::start(NodeConfig::default().with_require_auth(true))
        .await
        .unwrap();
    let api = client(&node).await;
    let v2_topic = format!("/xmtp/0/m-networking-auth-{}/proto", now_ns());

    let refused = api.publish(vec![envelope(&v2_topic, 1, 1)]).await;
    let err = refused.unwrap_err();
    assert!(matches!(err, ApiError::Unauthenticated(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("set_auth_token"), "{err}");
    // One attempt only, although the client allows five.
    assert_eq!(metric(&node, "xmtp_node_unauthenticated_total").await, 1);

    // /xmtp/3/ topics need no token.
    let v3_topic = topic("networking-auth");
    api.publish(vec![envelope(&v3_topic, 1, 1)]).await.unwrap();

    // The token set on a clone is used by the original.
    let (wallet, token) = token();
    api.clone().set_auth_token(Some(token));
    api.publish(vec![envelope(&v2_topic, 2, 2)]).await.unwrap();
    let stored = api
        .query_all(&v2_topic, 0, 0, SortDirection::Ascending)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].timestamp_ns, 2);

    // The wallet's own contact topic is allowed, another wallet's is not.
    let own = format!("/xmtp/0/contact-{}/proto", wallet.address().to_checksum());
    api.publish(vec![envelope(&own, 3, 3)]).await.unwrap();
    let other = format!(
        "/xmtp/0/contact-{}/proto",
        LocalWallet::random().address().to_checksum()
    );
    let err = api.publish(vec![envelope(&other, 4, 4)]).await.unwrap_err();
    assert!(matches!(err, ApiError::PermissionDenied(_)), "{err:?}");
    assert!(!err.is_retryable());

    // Cleared again: refused.
    api.set_auth_token(None);
    let err = api
        .publish(vec![envelope(&v2_topic, 5, 5)])
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Unauthenticated(_)), "{err:?}");
    // A garbage token is refused the same way.
    api.set_auth_token(Some("bm90IGEgdG9rZW4=".into()));
    let err = api
        .publish(vec![envelope(&v2_topic, 6, 6)])
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Unauthenticated(_)), "{err:?}");
    node.shutdown().await;
}
