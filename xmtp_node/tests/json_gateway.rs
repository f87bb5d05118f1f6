#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Every gateway route, with grpc-gateway's JSON conventions.

mod common;

use futures::StreamExt;
use serde_json::{json, Value};
use xmtp_node::RunningNode;

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    fn new(node: &RunningNode) -> Self {
        Self {
            base: node.http_url(),
            client: reqwest::Client::new(),
        }
    }

    /// POSTs `body` as `text/plain`, as XMTP's JS SDK does.
    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "text/plain;charset=UTF-8")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
        )
    }

    async fn ok(&self, path: &str, body: Value) -> Value {
        let (status, value) = self.post(path, &body.to_string()).await;
        assert_eq!(status, 200, "{path}: {value}");
        value
    }

    /// Opens a stream; returns its lines as they come.
    async fn stream(&self, path: &str, body: Value) -> impl futures::Stream<Item = Value> + Unpin {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let mut buf = Vec::new();
        Box::pin(resp.bytes_stream().flat_map(move |chunk| {
            buf.extend_from_slice(&chunk.unwrap());
            let mut lines = Vec::new();
            while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                lines.push(serde_json::from_slice::<Value>(&line).unwrap());
            }
            futures::stream::iter(lines)
        }))
    }
}

#[tokio::test]
async fn message_routes_speak_grpc_gateway_json() {
    let node = common::start().await;
    let http = Http::new(&node);
    let mut sub = http
        .stream("/message/v1/subscribe", json!({"contentTopics": ["/t/1"]}))
        .await;
    let mut all = http.stream("/message/v1/subscribe-all", json!({})).await;
    // Subscriptions are registered when the response starts; publish in
    // snake_case with a numeric string timestamp and base64 bytes.
    let (status, value) = http
        .post(
            "/message/v1/publish",
            r#"{"envelopes":[{"content_topic":"/t/1","timestamp_ns":"18446744073709551615","message":"AQID"}]}"#,
        )
        .await;
    assert_eq!((status, value), (200, json!({})));
    http.ok(
        "/message/v1/publish",
        json!({"envelopes":[{"contentTopic":"/t/2","timestampNs":"5","message":"BA=="}]}),
    )
    .await;
    let expected = json!({"result": {"contentTopic": "/t/1", "timestampNs": "18446744073709551615", "message": "AQID"}});
    assert_eq!(sub.next().await.unwrap(), expected);
    assert_eq!(all.next().await.unwrap(), expected);
    assert_eq!(all.next().await.unwrap()["result"]["contentTopic"], "/t/2");

    let page = http
        .ok("/message/v1/query", json!({"contentTopics": ["/t/1"], "pagingInfo": {"direction": "SORT_DIRECTION_ASCENDING"}}))
        .await;
    assert_eq!(page["envelopes"][0], expected["result"]);
    assert_eq!(page["pagingInfo"]["direction"], "SORT_DIRECTION_ASCENDING");
    assert_eq!(page["pagingInfo"]["limit"], 100);
    let page = http
        .ok(
            "/message/v1/query",
            json!({"content_topics": ["/t/1"], "paging_info": {"direction": 1}}),
        )
        .await;
    assert_eq!(page["envelopes"].as_array().unwrap().len(), 1);

    let batch = http
        .ok(
            "/message/v1/batch-query",
            json!({"requests": [{"contentTopics": ["/t/2"]}, {"contentTopics": ["/t/1"]}]}),
        )
        .await;
    assert_eq!(batch["responses"][0]["envelopes"][0]["message"], "BA==");
    assert_eq!(batch["responses"][1]["envelopes"][0]["message"], "AQID");
    node.shutdown().await;
    assert!(
        sub.next().await.is_none(),
        "streams end when the node stops"
    );
}

#[tokio::test]
async fn errors_are_json_with_grpc_gateway_statuses() {
    let node = common::start().await;
    let http = Http::new(&node);
    let (status, body) = http
        .post(
            "/message/v1/publish",
            r#"{"envelopes":[{"contentTopic":"","message":"AA=="}]}"#,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], 3);
    assert!(body["message"].as_str().unwrap().contains("empty"));
    assert_eq!(body["details"], json!([]));
    let (status, body) = http.post("/message/v1/query", "{not json").await;
    assert_eq!((status, body["code"].clone()), (400, json!(3)));
    let requests: Vec<Value> = (0..51).map(|_| json!({"contentTopics": ["t"]})).collect();
    let (status, _) = http
        .post(
            "/message/v1/batch-query",
            &json!({"requests": requests}).to_string(),
        )
        .await;
    assert_eq!(status, 400);
    let (status, body) = http
        .post("/key/v1/upload-one-time-keys", &json!({"installationKey": base64_of(&[1; 32]), "oneTimeKeys": [{"key": base64_of(&[2; 32]), "signature": base64_of(&[3; 64])}]}).to_string())
        .await;
    assert_eq!((status, body["code"].clone()), (404, json!(5)));
    // A message over 1 MiB, and a body over the gateway's limit.
    let big = base64_of(&vec![0u8; (1 << 20) + 3]);
    let body =
        format!(r#"{{"envelopes":[{{"contentTopic":"t","timestampNs":"1","message":"{big}"}}]}}"#);
    let (status, value) = http.post("/message/v1/publish", &body).await;
    assert_eq!((status, value["code"].clone()), (400, json!(3)), "{value}");
    let huge = format!(
        r#"{{"envelopes":[{{"contentTopic":"t","message":"{}"}}]}}"#,
        "A".repeat(8 << 20)
    );
    let (status, value) = http.post("/message/v1/publish", &huge).await;
    assert_eq!((status, value["code"].clone()), (400, json!(3)), "{value}");
    // Routing errors are JSON too.
    let (status, value) = http.post("/message/v1/nope", "{}").await;
    assert_eq!((status, value["code"].clone()), (404, json!(5)));
    let resp = http
        .client
        .get(format!("{}/message/v1/query", http.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], 12);
    // The node keeps serving.
    assert_eq!(
        http.client
            .get(format!("{}/healthz", http.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

fn base64_of(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn bundle_json(address: &str, key: u8) -> Value {
    json!({
        "identityKey": base64_of(&[key ^ 0x55; 32]),
        "signingKey": base64_of(&[key; 32]),
        "identityKeySignature": base64_of(&[1; 64]),
        "fallbackKey": {"key": base64_of(&[0xfb; 32]), "signature": base64_of(&[2; 64])},
        "association": {
            "textVersion": 1,
            "accountAddress": address,
            "installationKey": base64_of(&[key; 32]),
            "createdNs": "1",
            "walletSignature": base64_of(&[3; 65]),
        }
    })
}

#[tokio::test]
async fn key_routes_register_upload_count_list_claim_and_revoke() {
    let node = common::start().await;
    let http = Http::new(&node);
    let key = base64_of(&[7; 32]);
    http.ok(
        "/key/v1/register-installation",
        json!({"bundle": bundle_json("0xAbC", 7)}),
    )
    .await;
    let otks: Vec<Value> = (0u8..3)
        .map(|i| json!({"key": base64_of(&[i; 32]), "signature": base64_of(&[9; 64])}))
        .collect();
    let up = http
        .ok(
            "/key/v1/upload-one-time-keys",
            json!({"installationKey": key, "oneTimeKeys": otks}),
        )
        .await;
    assert_eq!(up["remaining"], 3);
    assert_eq!(
        http.ok(
            "/key/v1/count-one-time-keys",
            json!({"installationKey": key})
        )
        .await["remaining"],
        3
    );
    let listed = http
        .ok(
            "/key/v1/get-installations",
            json!({"accountAddresses": ["0xabc"]}),
        )
        .await;
    assert_eq!(listed["installations"][0]["accountAddress"], "0xabc");
    assert_eq!(
        listed["installations"][0]["bundles"][0]["association"]["accountAddress"],
        "0xAbC"
    );
    let claimed = http
        .ok(
            "/key/v1/claim-one-time-keys",
            json!({"installationKeys": [key]}),
        )
        .await;
    assert_eq!(claimed["keys"][0]["installationKey"], key);
    assert!(claimed["keys"][0]
        .get("isFallback")
        .is_none_or(|v| v == false));
    http.ok(
        "/key/v1/publish-revocation",
        json!({"revocation": {"textVersion": 1, "accountAddress": "0xABC", "installationKey": key, "revokedNs": "2", "walletSignature": base64_of(&[4; 65])}}),
    )
    .await;
    let listed = http
        .ok(
            "/key/v1/get-installations",
            json!({"accountAddresses": ["0xABC"]}),
        )
        .await;
    assert_eq!(
        listed["installations"][0]["revocations"][0]["revokedNs"],
        "2"
    );
}

#[tokio::test]
async fn health_metrics_and_cors() {
    let node = common::start().await;
    let http = Http::new(&node);
    http.ok(
        "/message/v1/publish",
        json!({"envelopes":[{"contentTopic":"m","timestampNs":"1","message":"AA=="}]}),
    )
    .await;
    http.ok("/message/v1/query", json!({"contentTopics": ["m"]}))
        .await;
    let metrics = http
        .client
        .get(format!("{}/metrics", http.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("xmtp_node_publish_requests_total 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("xmtp_node_envelopes_stored_total 1\n"));
    assert!(metrics.contains("xmtp_node_queries_total 1\n"));
    assert!(metrics.contains("xmtp_node_request_duration_seconds_count{rpc=\"publish\"} 1\n"));
    let preflight = http
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/message/v1/publish", http.base),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-client-version",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert!(preflight
        .headers()
        .contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn a_lagging_json_subscriber_gets_an_error_line() {
    let node = xmtp_node::Node::start(xmtp_node::NodeConfig {
        subscriber_buffer: 16,
        ..Default::default()
    })
    .await
    .unwrap();
    let http = Http::new(&node);
    let mut sub = http
        .stream("/message/v1/subscribe", json!({"contentTopics": ["lag"]}))
        .await;
    let mut grpc = common::client(&node).await;
    // 48 MiB that the subscriber does not read while they are published.
    for batch in 0..64u64 {
        let envelopes = (0..12)
            .map(|i| common::env("lag", batch * 100 + i, vec![1u8; 64 << 10]))
            .collect();
        grpc.publish(xmtp_proto::xmtp::message_api::v1::PublishRequest { envelopes })
            .await
            .unwrap();
    }
    let error = loop {
        let line = sub
            .next()
            .await
            .expect("the stream ended without an error line");
        if let Some(error) = line.get("error") {
            break error.clone();
        }
    };
    assert_eq!(error["code"], 8);
    assert!(error["message"].as_str().unwrap().contains("lagged"));
    assert!(
        sub.next().await.is_none(),
        "the stream ends after the error"
    );
}
