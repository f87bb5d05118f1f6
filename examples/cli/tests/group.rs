//! `xmtp group ...` driven through the built binary against an in-process node.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use serde_json::Value;
use xmtp_node::{Node, NodeConfig};

struct User {
    dir: tempfile::TempDir,
    node: String,
}

impl User {
    fn new(node: &str) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            node: node.to_string(),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("data").join("xmtp.db3")
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xmtp"));
        cmd.arg("--node")
            .arg(&self.node)
            .arg("--db")
            .arg(self.db())
            .arg("--json")
            .args(args)
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("HOME", self.dir.path())
            .env_remove("XMTP_DB_KEY")
            .env_remove("XMTP_WALLET_KEY")
            .env_remove("XMTP_NODE")
            .env_remove("XMTP_DB")
            .env_remove("RUST_LOG");
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    async fn json(&self, args: &[&str]) -> Vec<Value> {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "xmtp {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    async fn address(&self) -> String {
        self.json(&["register"]).await[0]["address"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_users_create_use_and_change_a_group_through_the_cli() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let (alice, bob, carol) = (
        User::new(&node.grpc_url()),
        User::new(&node.grpc_url()),
        User::new(&node.grpc_url()),
    );
    let (_, b, c) = (
        alice.address().await,
        bob.address().await,
        carol.address().await,
    );
    let created = alice.json(&["group", "create", &b, "--name", "trio"]).await;
    let id = created[0]["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 64);
    alice.json(&["group", "add", &id, &c]).await;
    alice.json(&["group", "send", &id, "hello group"]).await;
    bob.json(&["group", "send", &id, "hi from bob"]).await;

    let listed = carol.json(&["group", "list"]).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "trio");
    assert_eq!(listed[0]["members"].as_array().unwrap().len(), 3);
    let texts: Vec<String> = carol
        .json(&["messages", &id])
        .await
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts, ["hello group", "hi from bob"]);

    alice.json(&["group", "remove", &id, &c]).await;
    let listed = carol.json(&["group", "list"]).await;
    assert_eq!(listed[0]["is_member"], false);
    // A non-admin cannot remove: one clear error line, non-zero exit.
    let out = bob.run(&["group", "remove", &id, &c]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("admins"), "{stderr}");
}
