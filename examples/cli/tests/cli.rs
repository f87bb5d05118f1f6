//! Drives the built `xmtp` binary against a node started in-process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Output, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;
use xmtp_node::{Node, NodeConfig};

mod common;

use common::User;

fn texts(messages: &[Value]) -> Vec<(String, bool)> {
    messages
        .iter()
        .map(|m| {
            (
                m["text"].as_str().unwrap().to_string(),
                m["outgoing"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_talk_both_ways_through_the_cli() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let alice = User::new(&node.grpc_url());
    let bob = User::new(&node.grpc_url());
    let (alice_addr, alice_inst) = alice.register().await;
    let (bob_addr, _) = bob.register().await;
    assert!(alice_addr.starts_with("0x") && alice_addr.len() == 42);
    assert_eq!(alice_inst.len(), 64);
    // Registering again loads the same installation.
    assert_eq!(alice.register().await, (alice_addr.clone(), alice_inst));

    let sent = alice.json(&["send", &bob_addr, "gm bob"]).await;
    assert_eq!(sent[0]["type"], "sent");
    bob.ok(&["send", &alice_addr, "gm alice"]).await;
    alice.ok(&["send", &bob_addr, "how are you?"]).await;

    let bob_view = bob.json(&["messages", &alice_addr.to_lowercase()]).await;
    assert_eq!(
        texts(&bob_view),
        vec![
            ("gm bob".to_string(), false),
            ("gm alice".to_string(), true),
            ("how are you?".to_string(), false)
        ]
    );
    let alice_view = alice.json(&["messages", &bob_addr]).await;
    assert_eq!(
        texts(&alice_view),
        vec![
            ("gm bob".to_string(), true),
            ("gm alice".to_string(), false),
            ("how are you?".to_string(), true)
        ]
    );

    let list = bob.json(&["list"]).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], Value::String(alice_addr.clone()));
    assert_eq!(list[0]["last_message"]["text"], "how are you?");

    let human = bob.ok(&["messages", &alice_addr]).await;
    assert!(
        human.contains("gm bob") && human.contains("me: gm alice"),
        "{human}"
    );

    let info = alice.json(&["info"]).await;
    assert_eq!(info[0]["address"], Value::String(alice_addr.clone()));
    assert_eq!(info[0]["conversations"], 1);
    assert_eq!(info[0]["messages"], 3);

    let installations = bob.json(&["installations", &alice_addr]).await;
    assert_eq!(installations.len(), 1);
    assert_eq!(installations[0]["address"], Value::String(alice_addr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_key_is_kept_outside_the_data_folder() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let user = User::new(&node.grpc_url());
    user.register().await;
    let key_files: Vec<_> = std::fs::read_dir(user.dir.path().join("config/xmtp/db-keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(key_files.len(), 1);
    let key = std::fs::read_to_string(&key_files[0]).unwrap();
    let data: Vec<PathBuf> = std::fs::read_dir(user.db().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for file in data {
        let bytes = std::fs::read(&file).unwrap();
        let hex_hit = bytes.windows(key.len()).any(|w| w == key.as_bytes());
        assert!(!hex_hit, "the key is in {}", file.display());
    }
    // The wrong key is refused with a remedy.
    let out = {
        let mut cmd = user.command(&["info"]);
        cmd.env("XMTP_DB_KEY", "11".repeat(32));
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    };
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("XMTP_DB_KEY"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_wallet_key_is_used_and_remembered() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let user = User::new(&node.grpc_url());
    let wallet = xmtp_core::LocalWallet::random();
    let mut cmd = user.command(&["--json", "register"]);
    cmd.env("XMTP_WALLET_KEY", wallet.to_hex().as_str());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["address"], Value::String(wallet.address().to_checksum()));
    // Without the variable, the stored key still signs a revocation.
    let installations = user.json(&["installations"]).await;
    let id = installations[0]["id"].as_str().unwrap().to_string();
    let revoked = user.json(&["revoke", &id]).await;
    assert_eq!(revoked[0]["type"], "revoked");
    let info = user.json(&["info"]).await;
    assert_eq!(info[0]["revoked"], true);
}

fn assert_one_line_failure(out: &Output, expect: &str) {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(expect), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_line_and_fail() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let user = User::new(&node.grpc_url());
    user.register().await;
    let out = user.run(&["send", "0x1234", "hi"]).await;
    assert_one_line_failure(&out, "40 hex digits");
    let unregistered = xmtp_core::LocalWallet::random().address().to_checksum();
    let out = user.run(&["send", &unregistered, "hi"]).await;
    assert_one_line_failure(&out, "no registered installation");
    let out = user.run(&["revoke", "nothex"]).await;
    assert_one_line_failure(&out, "64 hex digits");

    // A node that is not there: a port that was free a moment ago.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let other = User::new(&closed);
    let out = other.run(&["register"]).await;
    assert_one_line_failure(&out, "cannot reach the node");
    let out = other.run(&["--json", "register"]).await;
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["type"], "error");
}

/// Reads lines of a child's stdout on a thread, so a test can wait with a timeout.
fn line_reader(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

async fn next_line(rx: &mpsc::Receiver<String>) -> String {
    // A generous bound so a broken stream fails the test instead of hanging it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(line) = rx.try_recv() {
            return line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no line from the stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_prints_a_message_sent_while_it_runs() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let alice = User::new(&node.grpc_url());
    let bob = User::new(&node.grpc_url());
    let (alice_addr, _) = alice.register().await;
    let (bob_addr, _) = bob.register().await;

    let mut child = bob
        .command(&["--json", "stream"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = line_reader(child.stdout.take().unwrap());
    let ready: Value = serde_json::from_str(&next_line(&lines).await).unwrap();
    assert_eq!(ready["type"], "listening");

    alice.ok(&["send", &bob_addr, "are you streaming?"]).await;
    let line = next_line(&lines).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let m: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(m["type"], "message");
    assert_eq!(m["text"], "are you streaming?");
    assert_eq!(m["sender"], Value::String(alice_addr.clone()));
    assert_eq!(m["conversation"], Value::String(alice_addr));
}
