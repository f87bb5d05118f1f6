//! The database file reveals no secret and no message text without its key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use xmtp_core::{DatabaseKey, LocalWallet};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The bytes of the database and its WAL and shared-memory files.
fn raw_files(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| {
            let p = format!("{}{suffix}", path.display());
            std::fs::read(&p).ok().map(|bytes| (p, bytes))
        })
        .collect()
}

#[tokio::test]
async fn no_message_text_or_secret_is_readable_in_the_raw_database_files() {
    let node = start_node().await;
    let dir = tempfile::tempdir().unwrap();
    let key = DatabaseKey::random();
    let alice_wallet = LocalWallet::random();
    let bob_wallet = LocalWallet::random();
    let alice_path = dir.path().join("alice.db3");
    let bob_path = dir.path().join("bob.db3");
    let alice = file_client(api(&node).await, &alice_wallet, &alice_path, &key).await;
    let bob = file_client(api(&node).await, &bob_wallet, &bob_path, &key).await;

    let sent = "TOP-SECRET-PLAINTEXT-alpha-7781";
    let received = "TOP-SECRET-PLAINTEXT-bravo-1234";
    alice.send_text(&bob.address(), sent).await.unwrap();
    bob.sync().await.unwrap();
    bob.send_text(&alice.address(), received).await.unwrap();
    alice.sync().await.unwrap();
    assert_eq!(texts(&alice, &bob.address()), [sent, received]);

    // Also a wallet key generated (and stored) by the client itself.
    let ephemeral_path = dir.path().join("ephemeral.db3");
    let ephemeral = xmtp_core::ClientBuilder::new()
        .api(api(&node).await)
        .database_path(&ephemeral_path)
        .database_key(key.clone())
        .build()
        .await
        .unwrap();
    ephemeral.send_text(&alice.address(), sent).await.unwrap();

    // Read the files while the clients are open (WAL not yet checkpointed)
    // and again after they closed.
    let mut snapshots = Vec::new();
    for p in [&alice_path, &bob_path, &ephemeral_path] {
        snapshots.extend(raw_files(p));
    }
    assert!(
        snapshots.iter().any(|(p, _)| p.ends_with("-wal")),
        "the WAL is checked too"
    );
    drop((alice, bob, ephemeral));
    for p in [&alice_path, &bob_path, &ephemeral_path] {
        snapshots.extend(raw_files(p));
    }

    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("sent text", sent.as_bytes().to_vec()),
        ("received text", received.as_bytes().to_vec()),
        ("text fragment", b"TOP-SECRET".to_vec()),
        ("alice wallet key", alice_wallet.to_key_bytes().to_vec()),
        (
            "alice wallet key hex",
            alice_wallet.to_hex().as_bytes().to_vec(),
        ),
        ("bob wallet key", bob_wallet.to_key_bytes().to_vec()),
        ("database key", key.as_bytes().to_vec()),
    ];
    for (file, bytes) in &snapshots {
        for (what, secret) in &secrets {
            assert!(!contains(bytes, secret), "{what} readable in {file}");
        }
        // vodozemac's pickles are JSON; none may be stored in the clear.
        assert!(
            !contains(bytes, b"\"private_key\""),
            "pickle JSON readable in {file}"
        );
        assert!(
            !contains(bytes, b"one_time_keys"),
            "pickle JSON readable in {file}"
        );
    }
    // Sanity: the files are really the databases (public metadata is there).
    let alice_main = &snapshots
        .iter()
        .find(|(p, _)| p.ends_with("alice.db3"))
        .unwrap()
        .1;
    assert!(contains(alice_main, b"SQLite format 3"));
    let all: Vec<u8> = snapshots.iter().flat_map(|(_, b)| b.clone()).collect();
    assert!(
        contains(&all, alice_wallet_address(&alice_wallet).as_bytes()),
        "addresses are stored in the clear"
    );
}

fn alice_wallet_address(w: &LocalWallet) -> String {
    w.address().to_checksum()
}
