#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! `kill -9` of the real `xmtp-node` binary during a publish load loses no
//! acknowledged envelope.

mod common;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
};

use common::{env, query_all};
use xmtp_proto::xmtp::message_api::v1::{
    message_api_client::MessageApiClient, Envelope, PublishRequest, SortDirection,
};

/// Starts the binary on `db` and reads its "listening" line.
fn spawn_node(db: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xmtp-node"))
        .args(["--grpc-port", "0", "--http-port", "0", "--db", db])
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
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, grpc.parse().unwrap())
}

const TASKS: usize = 4;
const TOPIC: &str = "/durable/proto";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_publishes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("node.db3");
    let db = db.to_str().unwrap();
    let (mut child, addr) = spawn_node(db);
    let url = format!("http://{addr}");

    let acked: Arc<Mutex<Vec<Envelope>>> = Arc::default();
    let (enough_tx, mut enough_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let acked = Arc::clone(&acked);
        let url = url.clone();
        let enough = enough_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = MessageApiClient::connect(url).await.unwrap();
            for i in 0u64.. {
                let e = env(TOPIC, i * TASKS as u64 + task as u64, vec![task as u8; 512]);
                // Keep publishing until the node dies; only successes count.
                if client
                    .publish(PublishRequest {
                        envelopes: vec![e.clone()],
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                let n = {
                    let mut acked = acked.lock().unwrap();
                    acked.push(e);
                    acked.len()
                };
                if n == 400 {
                    let _ = enough.try_send(());
                }
            }
        }));
    }
    drop(enough_tx);
    enough_rx.recv().await.unwrap();
    // SIGKILL while the publishers are still going.
    child.kill().unwrap();
    child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 400);

    let (mut child, addr) = spawn_node(db);
    let mut client = MessageApiClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let stored = query_all(
        &mut client,
        common::query(TOPIC, SortDirection::Ascending, 100),
    )
    .await;
    let stored: std::collections::HashSet<_> = stored.into_iter().collect();
    let missing: Vec<_> = acked.iter().filter(|e| !stored.contains(*e)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged envelopes lost",
        missing.len(),
        acked.len()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_node_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("term.db3");
    let (mut child, addr) = spawn_node(db.to_str().unwrap());
    let mut client = MessageApiClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    client
        .publish(PublishRequest {
            envelopes: vec![env("t", 1, b"x")],
        })
        .await
        .unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Wait off the runtime so the client's connection can answer the GOAWAY.
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
}
