//! Seed 000 in-process: two HTTP servers on port 0, a node in-process, and
//! proof that the plaintext never crosses HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use xmtp_cli::secure_channel_http::{send_encrypted, Server, WireMessage};
use xmtp_core::{Client, ClientBuilder};
use xmtp_node::{Node, NodeConfig};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The plaintext, raw or in any of the encodings a body could carry it.
fn assert_no_plaintext(body: &[u8], plaintext: &[u8]) {
    assert!(!contains(body, plaintext), "plaintext in an HTTP body");
    for shift in 0..3 {
        // base64 of the plaintext at any alignment (drop the unstable edges).
        let encoded = BASE64.encode(&plaintext[shift..]);
        let core = &encoded.as_bytes()[4..encoded.len() - 4];
        assert!(!contains(body, core), "base64 plaintext in an HTTP body");
    }
    assert!(
        !contains(body, hex::encode(plaintext).as_bytes()),
        "hex plaintext in an HTTP body"
    );
}

async fn client(url: &str) -> Client {
    let c = ClientBuilder::new().node_url(url).build().await.unwrap();
    c.enable_secure_channel().await.unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_and_b_exchange_encrypted_messages_over_http_without_plaintext() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let a = client(&node.grpc_url()).await;
    let b = client(&node.grpc_url()).await;
    let any = "127.0.0.1:0".parse().unwrap();
    let server_a = Server::start(a.clone(), any).await.unwrap();
    let server_b = Server::start(b.clone(), any).await.unwrap();
    let http = reqwest::Client::new();

    let secret = b"Hello from A! The launch code is 0000.";
    let sent = send_encrypted(&a, &http, &server_b.receive_url(), &b.address(), secret)
        .await
        .unwrap();
    assert_eq!(
        sent.status,
        200,
        "{}",
        String::from_utf8_lossy(&sent.response_body)
    );
    let wire: WireMessage = serde_json::from_slice(&sent.request_body).unwrap();
    assert_eq!(wire.from_address, a.address());
    assert_eq!(BASE64.decode(&wire.nonce).unwrap().len(), 12);

    let reply = b"Hello back from B, received.";
    let back = send_encrypted(&b, &http, &server_a.receive_url(), &a.address(), reply)
        .await
        .unwrap();
    assert_eq!(back.status, 200);

    {
        let inbox_b = server_b.inbox();
        let inbox_b = inbox_b.lock().unwrap();
        assert_eq!(inbox_b.received.len(), 1);
        assert_eq!(inbox_b.received[0].plaintext, secret);
        assert_eq!(inbox_b.received[0].from, a.address());
        let inbox_a = server_a.inbox();
        let inbox_a = inbox_a.lock().unwrap();
        assert_eq!(inbox_a.received[0].plaintext, reply);
        // Every byte that crossed HTTP, in both directions, on both servers.
        for body in [&sent.request_body, &sent.response_body]
            .into_iter()
            .chain(inbox_b.raw_bodies.iter())
        {
            assert_no_plaintext(body, secret);
        }
        for body in [&back.request_body, &back.response_body]
            .into_iter()
            .chain(inbox_a.raw_bodies.iter())
        {
            assert_no_plaintext(body, reply);
        }
    }

    // A replayed POST and a tampered one are refused, with no plaintext.
    let replay = http
        .post(server_b.receive_url())
        .header("content-type", "application/json")
        .body(sent.request_body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status().as_u16(), 400);
    let mut tampered = wire.clone();
    let mut ct = BASE64.decode(&tampered.ciphertext).unwrap();
    let last = ct.len() - 1;
    ct[last] ^= 1;
    tampered.ciphertext = BASE64.encode(ct);
    let refused = http
        .post(server_b.receive_url())
        .json_body(&tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    let body = refused.bytes().await.unwrap();
    assert_no_plaintext(&body, secret);
    assert_eq!(server_b.inbox().lock().unwrap().received.len(), 1);

    server_a.shutdown().await;
    server_b.shutdown().await;
}

trait JsonBody {
    fn json_body(self, value: &WireMessage) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, value: &WireMessage) -> Self {
        self.header("content-type", "application/json")
            .body(serde_json::to_vec(value).unwrap())
    }
}
