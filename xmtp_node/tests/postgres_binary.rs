#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! The `xmtp-node` binary on PostgreSQL, as `dev/up --postgres` runs it: two
//! processes started at once with the same `--store postgres://...` URL of a
//! database that does not exist yet both come up (one creates the database,
//! migrations run once), share their envelopes, and `kill -9` of one loses
//! nothing it acknowledged.

mod common;
mod postgres_support;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
};

use common::{env, query, query_all};
use postgres_support::TestDb;
use xmtp_proto::xmtp::message_api::v1::{
    message_api_client::MessageApiClient, PublishRequest, SortDirection,
};

/// A node process, killed when dropped (also when a test fails).
struct Proc(Child);

impl Proc {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the binary on `store` and reads its "listening" line.
fn spawn_node(store: &str) -> (Proc, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xmtp-node"))
        .args(["--grpc-port", "0", "--http-port", "0", "--store", store])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let grpc = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("grpc="))
        .unwrap_or_else(|| panic!("the node did not start: {line:?}"));
    (Proc(child), grpc.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_binaries_start_together_on_a_new_database_and_share_it() {
    let Some(db) = TestDb::missing().await else {
        return;
    };
    let (a, b) = {
        let url = db.url.clone();
        let first = std::thread::spawn(move || spawn_node(&url));
        let second = spawn_node(&db.url);
        (first.join().unwrap(), second)
    };
    let (mut child_a, addr_a) = a;
    let (mut child_b, addr_b) = b;
    let versions: Vec<i32> = db
        .admin()
        .await
        .query("SELECT version FROM xmtp_schema_version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1], "the schema was migrated once");

    let topic = "/xmtp/3/group-b1/proto";
    let mut on_a = MessageApiClient::connect(format!("http://{addr_a}"))
        .await
        .unwrap();
    let mut on_b = MessageApiClient::connect(format!("http://{addr_b}"))
        .await
        .unwrap();
    let sent: Vec<_> = (1..=50u64)
        .map(|i| env(topic, i, i.to_be_bytes()))
        .collect();
    for e in &sent {
        on_a.publish(PublishRequest {
            envelopes: vec![e.clone()],
        })
        .await
        .unwrap();
    }
    // Node A dies at once; node B has everything A acknowledged.
    child_a.kill();
    let got = query_all(&mut on_b, query(topic, SortDirection::Ascending, 100)).await;
    assert_eq!(got, sent);

    // A restarted node A serves it too.
    let (mut child_a, addr_a) = spawn_node(&db.url);
    let mut on_a = MessageApiClient::connect(format!("http://{addr_a}"))
        .await
        .unwrap();
    let got = query_all(&mut on_a, query(topic, SortDirection::Ascending, 100)).await;
    assert_eq!(got, sent);
    child_a.kill();
    child_b.kill();
}
