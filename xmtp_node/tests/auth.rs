#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! `--require-auth`: publishes need XMTP's bearer token over gRPC and the JSON
//! gateway, with XMTP's exemption of all-`/xmtp/3/` publishes; without the
//! option nothing changes. Also the binary's flag and environment variable.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;
use common::{env, query, query_all};
use prost::Message as _;
use serde_json::{json, Value};
use tonic::{metadata::MetadataValue, Code};
use xmtp_cryptography::{
    v2::{
        authn,
        private_key::{IdentityRequest, PrivateKeyBundleV1},
    },
    wallet::LocalWallet,
};
use xmtp_node::{Node, NodeConfig, RunningNode};
use xmtp_proto::xmtp::{
    message_api::v1::{PublishRequest, SortDirection, Token},
    message_contents::signature,
};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn keys(wallet: &LocalWallet) -> PrivateKeyBundleV1 {
    let mut rng = rand::thread_rng();
    let request = IdentityRequest::new(&mut rng, 1_700_000_000_000);
    let signature = wallet.sign_text_sync(request.text()).unwrap();
    request
        .complete(&mut rng, signature.as_bytes(), Some(wallet.address()))
        .unwrap()
}

/// A fresh wallet's token, and its `authorization` value.
fn fresh_token() -> (LocalWallet, Token, String) {
    let wallet = LocalWallet::random();
    let token = authn::create_token(&keys(&wallet), now_ns()).unwrap();
    let bearer = authn::bearer(&token);
    (wallet, token, bearer)
}

async fn auth_node() -> RunningNode {
    Node::start(NodeConfig::default().with_require_auth(true))
        .await
        .unwrap()
}

fn publish_request(topics: &[&str], t: u64) -> PublishRequest {
    PublishRequest {
        envelopes: topics.iter().map(|topic| env(topic, t, b"m")).collect(),
    }
}

/// Publishes over gRPC with an optional `authorization` value.
async fn grpc_publish(
    node: &RunningNode,
    authorization: Option<&str>,
    request: PublishRequest,
) -> Result<(), tonic::Status> {
    let mut client = common::client(node).await;
    let mut req = tonic::Request::new(request);
    if let Some(value) = authorization {
        req.metadata_mut()
            .insert("authorization", MetadataValue::try_from(value).unwrap());
    }
    client.publish(req).await.map(drop)
}

/// Publishes over the JSON gateway (as `text/plain`, like xmtp-js) with an
/// optional `Authorization` header; returns the status and JSON body.
async fn http_publish(
    node: &RunningNode,
    authorization: Option<&str>,
    topics: &[&str],
    t: u64,
) -> (u16, Value) {
    let envelopes: Vec<Value> = topics
        .iter()
        .map(|topic| {
            json!({
                "contentTopic": topic,
                "timestampNs": t.to_string(),
                "message": base64::engine::general_purpose::STANDARD.encode(b"m"),
            })
        })
        .collect();
    let mut req = reqwest::Client::new()
        .post(format!("{}/message/v1/publish", node.http_url()))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(json!({ "envelopes": envelopes }).to_string());
    if let Some(value) = authorization {
        req = req.header("Authorization", value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

/// Asserts a gateway refusal: the HTTP status, grpc-gateway's error shape, the
/// gRPC code and a message containing `needle`.
fn assert_refused((status, body): &(u16, Value), http: u16, code: Code, needle: &str) {
    assert_eq!(*status, http, "{body}");
    assert_eq!(body["code"], json!(code as i32), "{body}");
    assert_eq!(body["details"], json!([]), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}

async fn metric(node: &RunningNode, name: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", node.http_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name}"))
        .parse()
        .unwrap()
}

const V0_TOPIC: &str = "/xmtp/0/m-authtest/proto";

fn flip_auth_signature_bit(token: &mut Token, byte: usize) {
    match token
        .auth_data_signature
        .as_mut()
        .and_then(|s| s.union.as_mut())
    {
        Some(signature::Union::EcdsaCompact(s)) => s.bytes[byte] ^= 0x10,
        other => panic!("unexpected signature {other:?}"),
    }
}

fn encode(token: &Token) -> String {
    format!(
        "Bearer {}",
        base64::engine::general_purpose::STANDARD.encode(token.encode_to_vec())
    )
}

/// The token of `wallet`'s keys, with the identity key's wallet signature
/// replaced by `other`'s signature of the same "Create Identity" text.
fn token_signed_by_other_wallet() -> String {
    let (_, mut token, _) = fresh_token();
    let other = LocalWallet::random();
    let identity = token.identity_key.as_mut().unwrap();
    let unsigned = xmtp_proto::xmtp::message_contents::PublicKey {
        signature: None,
        ..identity.clone()
    }
    .encode_to_vec();
    let text = xmtp_cryptography::v2::signature::create_identity_text(&unsigned);
    let sig = other.sign_text_sync(&text).unwrap();
    let sig = sig.as_bytes();
    match identity.signature.as_mut().and_then(|s| s.union.as_mut()) {
        Some(signature::Union::EcdsaCompact(s)) => {
            s.bytes.copy_from_slice(&sig[..64]);
            s.recovery = u32::from(if sig[64] >= 27 { sig[64] - 27 } else { sig[64] });
        }
        other => panic!("unexpected signature {other:?}"),
    }
    encode(&token)
}

#[tokio::test]
async fn grpc_publish_needs_a_valid_token() {
    let node = auth_node().await;
    let (_, token, bearer) = fresh_token();

    grpc_publish(&node, Some(&bearer), publish_request(&[V0_TOPIC], 1))
        .await
        .unwrap();

    let refused = |r: Result<(), tonic::Status>, code: Code, needle: &str| {
        let status = r.expect_err("publish must be refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(
            status.message().contains(needle),
            "{:?} lacks {needle:?}",
            status.message()
        );
        assert!(!status.message().contains(&bearer[7..40]));
    };
    let req = || publish_request(&[V0_TOPIC], 2);
    refused(
        grpc_publish(&node, None, req()).await,
        Code::Unauthenticated,
        "authorization token is not provided",
    );
    refused(
        grpc_publish(&node, Some("Bearer !!garbage!!"), req()).await,
        Code::Unauthenticated,
        "extracting token",
    );
    refused(
        grpc_publish(&node, Some(bearer.trim_start_matches("Bearer ")), req()).await,
        Code::Unauthenticated,
        "invalid authorization header",
    );
    refused(
        grpc_publish(&node, Some(&token_signed_by_other_wallet()), req()).await,
        Code::Unauthenticated,
        "wallet address mismatch",
    );
    let mut flipped = token.clone();
    flip_auth_signature_bit(&mut flipped, 5);
    refused(
        grpc_publish(&node, Some(&encode(&flipped)), req()).await,
        Code::Unauthenticated,
        "validating token",
    );
    // An empty publish is refused for its missing token first, as by XMTP.
    refused(
        grpc_publish(&node, None, PublishRequest::default()).await,
        Code::Unauthenticated,
        "authorization token is not provided",
    );

    // Only the authenticated publish was stored.
    let mut client = common::client(&node).await;
    let stored = query_all(&mut client, query(V0_TOPIC, SortDirection::Ascending, 0)).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].timestamp_ns, 1);
    // Reads never need a token.
    assert!(client
        .query(query(V0_TOPIC, SortDirection::Ascending, 0))
        .await
        .is_ok());
    assert_eq!(metric(&node, "xmtp_node_unauthenticated_total").await, 6);
    node.shutdown().await;
}

#[tokio::test]
async fn gateway_publish_needs_a_valid_token() {
    let node = auth_node().await;
    let (_, token, bearer) = fresh_token();

    let (status, body) = http_publish(&node, Some(&bearer), &[V0_TOPIC], 1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({}));

    assert_refused(
        &http_publish(&node, None, &[V0_TOPIC], 2).await,
        401,
        Code::Unauthenticated,
        "authorization token is not provided",
    );
    assert_refused(
        &http_publish(&node, Some("Bearer garbage"), &[V0_TOPIC], 2).await,
        401,
        Code::Unauthenticated,
        "extracting token",
    );
    assert_refused(
        &http_publish(&node, Some("Basic dXNlcjpwdw=="), &[V0_TOPIC], 2).await,
        401,
        Code::Unauthenticated,
        "unrecognized authorization scheme Basic",
    );
    assert_refused(
        &http_publish(&node, Some(&token_signed_by_other_wallet()), &[V0_TOPIC], 2).await,
        401,
        Code::Unauthenticated,
        "wallet address mismatch",
    );
    let mut flipped = token.clone();
    flip_auth_signature_bit(&mut flipped, 40);
    assert_refused(
        &http_publish(&node, Some(&encode(&flipped)), &[V0_TOPIC], 2).await,
        401,
        Code::Unauthenticated,
        "validating token",
    );

    let mut client = common::client(&node).await;
    let stored = query_all(&mut client, query(V0_TOPIC, SortDirection::Ascending, 0)).await;
    assert_eq!(stored.len(), 1);
    node.shutdown().await;
}

#[tokio::test]
async fn expired_tokens_are_refused_and_the_lifetime_is_configurable() {
    let node = auth_node().await;
    let wallet = LocalWallet::random();
    let keys = keys(&wallet);
    let hour_and_a_bit = now_ns() - 3_601 * 1_000_000_000;
    let old = authn::bearer(&authn::create_token(&keys, hour_and_a_bit).unwrap());
    let status = grpc_publish(&node, Some(&old), publish_request(&[V0_TOPIC], 1))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("token expired"), "{status:?}");
    assert_refused(
        &http_publish(&node, Some(&old), &[V0_TOPIC], 1).await,
        401,
        Code::Unauthenticated,
        "token expired",
    );
    // Still fresh: 59 minutes.
    let recent =
        authn::bearer(&authn::create_token(&keys, now_ns() - 59 * 60 * 1_000_000_000).unwrap());
    grpc_publish(&node, Some(&recent), publish_request(&[V0_TOPIC], 1))
        .await
        .unwrap();
    node.shutdown().await;

    let lenient = Node::start(
        NodeConfig::default()
            .with_require_auth(true)
            .with_auth_token_lifetime(Duration::from_secs(2 * 3600)),
    )
    .await
    .unwrap();
    grpc_publish(&lenient, Some(&old), publish_request(&[V0_TOPIC], 1))
        .await
        .unwrap();
    lenient.shutdown().await;
}

/// The token in xmtp_cryptography's vectors, made by @xmtp/xmtp-js 13.0.4
/// (xmtp_cryptography/tests/vectors/v2/xmtp_js_13.json). It was made at a
/// fixed time, so the node under test accepts tokens as old as it is.
#[tokio::test]
async fn xmtp_js_13_token_is_accepted() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../xmtp_cryptography/tests/vectors/v2/xmtp_js_13.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let token = Token::decode(
        hex::decode(v["token"].as_str().unwrap())
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let created = v["token_created_ns"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let age = Duration::from_nanos(now_ns().saturating_sub(created));
    let node = Node::start(
        NodeConfig::default()
            .with_require_auth(true)
            .with_auth_token_lifetime(age + Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    let bearer = encode(&token);
    let alice = v["alice_address"].as_str().unwrap();
    // Alice may publish on her own contact topic, over both transports.
    let contact = format!("/xmtp/0/contact-{alice}/proto");
    grpc_publish(&node, Some(&bearer), publish_request(&[&contact], 1))
        .await
        .unwrap();
    let (status, body) = http_publish(&node, Some(&bearer), &[&contact], 2).await;
    assert_eq!(status, 200, "{body}");
    // Not on another wallet's.
    let dave = v["dave_address"].as_str().unwrap();
    let theirs = format!("/xmtp/0/contact-{dave}/proto");
    let status = grpc_publish(&node, Some(&bearer), publish_request(&[&theirs], 3))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_refused(
        &http_publish(&node, Some(&bearer), &[&theirs], 3).await,
        403,
        Code::PermissionDenied,
        "publishing to restricted topic",
    );
    assert_eq!(metric(&node, "xmtp_node_permission_denied_total").await, 2);
    node.shutdown().await;
}

#[tokio::test]
async fn v3_publishes_need_no_token_but_mixed_ones_do() {
    let node = auth_node().await;
    let v3 = "/xmtp/3/installation-00/proto";
    let group = "/xmtp/3/group-01/proto";
    grpc_publish(&node, None, publish_request(&[v3, group], 1))
        .await
        .unwrap();
    let (status, body) = http_publish(&node, None, &[v3], 2).await;
    assert_eq!(status, 200, "{body}");
    // A garbage header on an exempt publish is not even read.
    grpc_publish(&node, Some("Bearer garbage"), publish_request(&[v3], 3))
        .await
        .unwrap();

    let status = grpc_publish(&node, None, publish_request(&[v3, V0_TOPIC], 4))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_refused(
        &http_publish(&node, None, &[v3, "/xmtp/mls/1/g-1/proto"], 4).await,
        401,
        Code::Unauthenticated,
        "authorization token is not provided",
    );
    let mut client = common::client(&node).await;
    assert_eq!(
        query_all(&mut client, query(v3, SortDirection::Ascending, 0))
            .await
            .len(),
        3
    );
    node.shutdown().await;
}

#[tokio::test]
async fn without_require_auth_nothing_changes() {
    let node = common::start().await;
    grpc_publish(&node, None, publish_request(&[V0_TOPIC], 1))
        .await
        .unwrap();
    grpc_publish(
        &node,
        Some("Bearer garbage"),
        publish_request(&[V0_TOPIC], 2),
    )
    .await
    .unwrap();
    let (status, body) = http_publish(&node, Some("garbage"), &[V0_TOPIC], 3).await;
    assert_eq!(status, 200, "{body}");
    // Other wallets' contact topics are open too.
    let (status, _) = http_publish(
        &node,
        None,
        &["/xmtp/0/contact-0xd92936450350aB8F5a7426dC200964d3A9150306/proto"],
        4,
    )
    .await;
    assert_eq!(status, 200);
    let status = grpc_publish(&node, None, PublishRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    node.shutdown().await;
}

/// A node process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn help_documents_the_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_xmtp-node"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("--require-auth"), "{text}");
    assert!(text.contains("XMTP_NODE_REQUIRE_AUTH"), "{text}");
}

#[tokio::test]
async fn binary_requires_tokens_when_the_environment_says_so() {
    let (_, _, bearer) = fresh_token();
    for (value, required) in [("true", true), ("1", true), ("false", false)] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xmtp-node"))
            .args(["--grpc-port", "0", "--http-port", "0", "--db", ":memory:"])
            .env("XMTP_NODE_REQUIRE_AUTH", value)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let proc = Proc(child);
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        let http = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http="))
            .unwrap_or_else(|| panic!("the node did not start: {line:?}"));
        let url = format!("http://{http}/message/v1/publish");
        let body = json!({"envelopes": [{"contentTopic": V0_TOPIC, "timestampNs": "1", "message": "bQ=="}]})
            .to_string();
        let client = reqwest::Client::new();
        let without = client.post(&url).body(body.clone()).send().await.unwrap();
        assert_eq!(
            without.status().as_u16(),
            if required { 401 } else { 200 },
            "XMTP_NODE_REQUIRE_AUTH={value}"
        );
        let with = client
            .post(&url)
            .header("authorization", &bearer)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            with.status().as_u16(),
            200,
            "XMTP_NODE_REQUIRE_AUTH={value}"
        );
        drop(proc);
    }
}

#[tokio::test]
async fn bad_tokens_are_charged_to_the_rate_limit_before_they_are_checked() {
    let node = Node::start(NodeConfig {
        publish_limit: xmtp_node::BucketConfig {
            per_second: 0.001,
            burst: 3.0,
        },
        ..NodeConfig::default().with_require_auth(true)
    })
    .await
    .unwrap();
    for t in 1..=3 {
        let (status, _) = http_publish(&node, Some("Bearer garbage"), &[V0_TOPIC], t).await;
        assert_eq!(status, 401);
    }
    // The burst is spent: refused before the token is looked at.
    assert_refused(
        &http_publish(&node, Some("Bearer garbage"), &[V0_TOPIC], 4).await,
        429,
        Code::ResourceExhausted,
        "",
    );
    let (_, _, bearer) = fresh_token();
    assert_refused(
        &http_publish(&node, Some(&bearer), &[V0_TOPIC], 5).await,
        429,
        Code::ResourceExhausted,
        "",
    );
    assert_eq!(metric(&node, "xmtp_node_unauthenticated_total").await, 3);
    assert_eq!(metric(&node, "xmtp_node_rate_limited_total").await, 2);
    node.shutdown().await;
}
