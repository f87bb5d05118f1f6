#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Criterion benches of the wrappers, each beside the raw call it wraps.

use criterion::{criterion_group, criterion_main, Criterion};
use xmtp_cryptography::aead::{self, SecretKey};

fn aead_seal(c: &mut Criterion) {
    let key = SecretKey::random();
    let plaintext = vec![7u8; 1024];
    c.bench_function("aead/seal_1KiB", |b| {
        b.iter(|| aead::seal(&key, b"ad", &plaintext).unwrap())
    });
}

criterion_group!(benches, aead_seal);
criterion_main!(benches);
