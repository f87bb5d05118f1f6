//! The CLI tests' user: the built `xmtp` binary with its own database and
//! config folder, against a node given by URL.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use serde_json::Value;

/// One user of the CLI: a database in a temp dir, a private config dir.
pub struct User {
    /// Its private folder (database, config, home).
    pub dir: tempfile::TempDir,
    /// The node's gRPC URL.
    pub node: String,
}

impl User {
    pub fn new(node: &str) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            node: node.to_string(),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("data").join("xmtp.db3")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xmtp"));
        cmd.arg("--node")
            .arg(&self.node)
            .arg("--db")
            .arg(self.db())
            .args(args)
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("HOME", self.dir.path())
            .env_remove("XMTP_DB_KEY")
            .env_remove("XMTP_WALLET_KEY")
            .env_remove("XMTP_NODE")
            .env_remove("XMTP_DB")
            .env_remove("RUST_LOG");
        cmd
    }

    /// Runs a command on a blocking thread (the node runs on the runtime).
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "xmtp {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub async fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        self.ok(&full)
            .await
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    }

    /// Registers; returns the address.
    pub async fn address(&self) -> String {
        self.json(&["register"]).await[0]["address"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Registers; returns the address and the installation id.
    pub async fn register(&self) -> (String, String) {
        let out = self.json(&["register"]).await;
        assert_eq!(out.len(), 1);
        (
            out[0]["address"].as_str().unwrap().to_string(),
            out[0]["installation_id"].as_str().unwrap().to_string(),
        )
    }
}
