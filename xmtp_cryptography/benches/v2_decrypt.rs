//! Decrypting and verifying a whole XMTP V2 conversation (10,000 messages by
//! default) the way our client reads one: each message's AES-256-GCM/HKDF
//! decryption, the sender's pre-key signature over header and payload, the
//! sender bundle (pre-key signed by the identity key, identity key signed by a
//! wallet), the sender checked to be a party of the conversation, and the
//! `xmtp.org/text:1.0` content decoded.
//!
//! The messages come from the corpus `examples/v2_corpus.rs` writes
//! (`XMTP_V2_CORPUS=path`), which xmtp-js 13 reads in
//! `interop/xmtp-js/bench/v2_decrypt.cjs`; without it a corpus of
//! `XMTP_V2_MESSAGES` (default 10,000) messages is generated in memory from
//! the default seed (the same bytes as the example's default file).
//!
//! Each criterion iteration reads all the messages:
//! - `ours_cached`: [`message::decode_v2_cached`] with one [`BundleCache`] for
//!   the reading (as a client reads a conversation: two bundles verified);
//! - `ours_uncached`: [`message::decode_v2`], every bundle verified.
//!
//! Before measuring, every message is checked to decrypt to its text from its
//! sender, and every tampered message of the corpus to be refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "support/v2_corpus.rs"]
mod v2_corpus;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use prost::Message as _;
use std::hint::black_box;
use std::time::{Duration, Instant};
use xmtp_cryptography::v2::{
    invitation,
    message::{self, DecodedMessageV2, MessageError},
    public_key::BundleCache,
};
use xmtp_cryptography::wallet::Address;
use xmtp_proto::xmtp::message_contents::EncodedContent;

/// What the reader shows of a message.
struct Shown {
    sender: Address,
    text: String,
}

/// After decryption and verification: the sender must be one of the
/// conversation's two parties, and the content a text.
fn show(decoded: DecodedMessageV2, parties: &[Address; 2]) -> Result<Shown, String> {
    if !parties.contains(&decoded.sender_address) {
        return Err(MessageError::NotAParty.to_string());
    }
    let content = EncodedContent::decode(decoded.payload.as_slice()).map_err(|e| e.to_string())?;
    let kind = content.r#type.ok_or("no content type")?;
    if kind.authority_id != "xmtp.org" || kind.type_id != "text" || kind.version_major != 1 {
        return Err(format!(
            "unexpected content type {}/{}",
            kind.authority_id, kind.type_id
        ));
    }
    let text = String::from_utf8(content.content).map_err(|e| e.to_string())?;
    Ok(Shown {
        sender: decoded.sender_address,
        text,
    })
}

fn bench_v2_decrypt(c: &mut Criterion) {
    let corpus = match std::env::var("XMTP_V2_CORPUS") {
        Ok(path) => {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read corpus {path}: {e}"));
            serde_json::from_str::<v2_corpus::Corpus>(&text).expect("corpus JSON")
        }
        Err(_) => {
            let count = std::env::var("XMTP_V2_MESSAGES")
                .ok()
                .map(|s| s.parse().expect("XMTP_V2_MESSAGES is a number"))
                .unwrap_or(v2_corpus::DEFAULT_MESSAGES);
            v2_corpus::generate(count, v2_corpus::DEFAULT_SEED)
        }
    };
    let loaded = corpus.load();
    let count = loaded.messages.len();

    // The reader opens the invitation once, as it lists its conversations.
    let reader = loaded.reader.to_v2().unwrap();
    let (sealed, sealed_ns) = &loaded.sealed_invitation;
    let opened = invitation::open(&reader, sealed, Some(*sealed_ns)).unwrap();
    let topic = opened.invitation.topic.clone();
    assert_eq!(topic, loaded.topic);
    let key = invitation::key_material(&opened.invitation)
        .unwrap()
        .to_vec();
    let parties = [
        opened.sender.wallet_address(),
        opened.recipient.wallet_address(),
    ];

    let read_cached = |messages: &[(usize, Vec<u8>, String)]| -> Vec<Shown> {
        let mut cache = BundleCache::new();
        messages
            .iter()
            .map(|(_, bytes, _)| {
                let decoded =
                    message::decode_v2_cached(black_box(bytes), &topic, &key, &mut cache).unwrap();
                show(decoded, &parties).unwrap()
            })
            .collect()
    };
    let read_uncached = |messages: &[(usize, Vec<u8>, String)]| -> Vec<Shown> {
        messages
            .iter()
            .map(|(_, bytes, _)| {
                let decoded = message::decode_v2(black_box(bytes), &topic, &key).unwrap();
                show(decoded, &parties).unwrap()
            })
            .collect()
    };

    // Really decrypts and verifies: every text and sender as written; every
    // tampered message refused, with a cache warmed by the genuine ones.
    let started = Instant::now();
    let shown = read_cached(&loaded.messages);
    let pass_cached = started.elapsed();
    for ((sender, _, text), got) in loaded.messages.iter().zip(&shown) {
        assert_eq!(&got.text, text);
        assert_eq!(got.sender.to_checksum(), loaded.addresses[*sender]);
    }
    let started = Instant::now();
    let shown = read_uncached(&loaded.messages);
    let pass_uncached = started.elapsed();
    assert_eq!(shown.len(), count);
    assert!(!loaded.tampered.is_empty());
    let mut cache = BundleCache::new();
    for (_, bytes, _) in loaded.messages.iter().take(8) {
        message::decode_v2_cached(bytes, &topic, &key, &mut cache).unwrap();
    }
    for (kind, bytes) in &loaded.tampered {
        let cached = message::decode_v2_cached(bytes, &topic, &key, &mut cache);
        let uncached = message::decode_v2(bytes, &topic, &key);
        assert!(cached.is_err() && uncached.is_err(), "accepted: {kind}");
        eprintln!("refused ({kind}): {}", uncached.err().unwrap());
    }
    eprintln!(
        "checked {count} messages (first pass: cached {:.3} s, uncached {:.3} s) and {} tampered ones",
        pass_cached.as_secs_f64(),
        pass_uncached.as_secs_f64(),
        loaded.tampered.len()
    );

    let mut group = c.benchmark_group(format!("v2_decrypt_verify_{count}"));
    group.throughput(Throughput::Elements(count as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    // Ten samples of one iteration each, with room for a noisy machine.
    let budget = |pass: Duration| pass.mul_f64(15.0).max(Duration::from_secs(3));
    group.measurement_time(budget(pass_cached));
    group.bench_function("ours_cached", |b| b.iter(|| read_cached(&loaded.messages)));
    group.measurement_time(budget(pass_uncached));
    group.bench_function("ours_uncached", |b| {
        b.iter(|| read_uncached(&loaded.messages))
    });
    group.finish();
}

criterion_group!(benches, bench_v2_decrypt);
criterion_main!(benches);
