//! `xmtp group ...` driven through the built binary against an in-process node.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use xmtp_node::{Node, NodeConfig};

mod common;

use common::User;

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
    let out = bob.run(&["--json", "group", "remove", &id, &c]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("admins"), "{stderr}");
}
