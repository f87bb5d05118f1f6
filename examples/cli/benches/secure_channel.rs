//! The secure channel after its handshake: encrypt + decrypt of 1 KiB
//! between two clients (in-memory and file databases), beside the raw
//! AES-256-GCM call it wraps.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xmtp_core::{Client, ClientBuilder, DatabaseKey};
use xmtp_cryptography::{aead, SecretKey};
use xmtp_node::{Node, NodeConfig};

async fn pair(url: &str, dir: Option<&std::path::Path>) -> (Client, Client) {
    let build = |name: &str| {
        let mut b = ClientBuilder::new().node_url(url);
        if let Some(dir) = dir {
            b = b
                .database_path(dir.join(name))
                .database_key(DatabaseKey::random());
        }
        b.build()
    };
    let a = build("a.db3").await.unwrap();
    let b = build("b.db3").await.unwrap();
    b.enable_secure_channel().await.unwrap();
    let first = a.encrypt(b"handshake", &b.address()).await.unwrap();
    b.decrypt(&first.nonce, &first.ciphertext, &a.address())
        .await
        .unwrap();
    (a, b)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let node = rt.block_on(Node::start(NodeConfig::default())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plaintext = vec![7u8; 1024];
    let mut group = c.benchmark_group("secure_channel_1KiB");
    group.throughput(Throughput::Bytes(1024));

    let key = SecretKey::random();
    let mut n = 0u64;
    group.bench_function("raw_aes_gcm_encrypt_decrypt", |bench| {
        bench.iter(|| {
            n += 1;
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&n.to_be_bytes());
            let ct = aead::encrypt_with_nonce(&key, &nonce, b"ad", &plaintext).unwrap();
            black_box(aead::decrypt(&key, &nonce, b"ad", &ct).unwrap())
        })
    });

    for (name, dir) in [("in_memory", None), ("file_db", Some(dir.path()))] {
        let (a, b) = rt.block_on(pair(&node.grpc_url(), dir));
        let (from, to) = (a.address(), b.address());
        group.bench_function(format!("encrypt_decrypt_{name}"), |bench| {
            bench.to_async(&rt).iter(|| async {
                let sealed = a.encrypt(&plaintext, &to).await.unwrap();
                black_box(
                    b.decrypt(&sealed.nonce, &sealed.ciphertext, &from)
                        .await
                        .unwrap(),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
