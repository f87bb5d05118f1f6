//! Decrypting and verifying one XMTP V2 message (AES-256-GCM with HKDF,
//! the sender's pre-key signature, the pre-key's identity signature and the
//! identity key's wallet signature), and encoding one for comparison.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use xmtp_cryptography::v2::{
    invitation, message, private_key::IdentityRequest, public_key::BundleCache,
};
use xmtp_cryptography::wallet::LocalWallet;

fn bench_v2(c: &mut Criterion) {
    let mut rng = rand::thread_rng();
    let wallet = LocalWallet::random();
    let request = IdentityRequest::new(&mut rng, 1_700_000_000_000);
    let signature = wallet.sign_text_sync(request.text()).unwrap();
    let alice = request
        .complete(&mut rng, signature.as_bytes(), Some(wallet.address()))
        .unwrap()
        .to_v2()
        .unwrap();
    let invite = invitation::random_invitation(&mut rng, None);
    let key = invitation::key_material(&invite).unwrap().to_vec();
    let payload = vec![0x61u8; 256];
    let sent = message::encode_v2(
        &mut rng,
        &alice,
        &invite.topic,
        &key,
        1_700_000_000_000_000_000,
        &payload,
        Some(true),
    )
    .unwrap();

    c.bench_function("v2_decode_and_verify_256B", |b| {
        b.iter(|| message::decode_v2(black_box(&sent.bytes), &invite.topic, &key).unwrap())
    });
    // Many messages of one sender: the sender's bundle is verified once.
    let mut cache = BundleCache::new();
    c.bench_function("v2_decode_and_verify_256B_cached_bundle", |b| {
        b.iter(|| {
            message::decode_v2_cached(black_box(&sent.bytes), &invite.topic, &key, &mut cache)
                .unwrap()
        })
    });
    c.bench_function("v2_encode_and_sign_256B", |b| {
        b.iter(|| {
            message::encode_v2(
                &mut rng,
                &alice,
                &invite.topic,
                &key,
                1_700_000_000_000_000_000,
                black_box(&payload),
                Some(true),
            )
            .unwrap()
        })
    });
}

criterion_group!(benches, bench_v2);
criterion_main!(benches);
