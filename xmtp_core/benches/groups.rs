//! Group send cost at the cryptographic level (in memory, no node): one
//! Megolm encryption for the whole group against one Olm encryption per
//! installation, and the cost of a removal (a new Megolm session plus one
//! Olm-encrypted key share per remaining installation), for groups of 2, 10,
//! 100 and 1,000 installations.
//!
//! Run: `cargo bench -p xmtp_core --bench groups -- --warm-up-time 1 --measurement-time 2`
//!
//! Medians on the shared 2-core dev machine (2026-11-25, 256-byte message):
//!
//! ```text
//! installations   Megolm once   Olm pairwise   pairwise/Megolm   removal re-key
//!             2       20.3 µs        37.5 µs             1.9x          55.9 µs
//!            10       16.4 µs         166 µs              10x           152 µs
//!           100       16.7 µs        3.96 ms             237x          1.67 ms
//!         1,000       22.5 µs        25.0 ms           1,110x          14.8 ms
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use vodozemac::olm::{Account, Session, SessionConfig};
use xmtp_cryptography::OutboundGroupSession;

const SIZES: [usize; 4] = [2, 10, 100, 1_000];
const MESSAGE: [u8; 256] = [7; 256];

/// Outbound Olm sessions from one sender to `n` installations.
fn olm_sessions(n: usize) -> Vec<Session> {
    let sender = Account::new();
    (0..n)
        .map(|_| {
            let mut peer = Account::new();
            peer.generate_one_time_keys(1);
            let otk = *peer.one_time_keys().values().next().unwrap();
            peer.mark_keys_as_published();
            sender
                .create_outbound_session(SessionConfig::version_1(), peer.curve25519_key(), otk)
                .unwrap()
        })
        .collect()
}

fn send(c: &mut Criterion) {
    let mut g = c.benchmark_group("group_send");
    for n in SIZES {
        let mut megolm = OutboundGroupSession::new();
        g.bench_with_input(BenchmarkId::new("megolm_once", n), &n, |b, _| {
            b.iter(|| megolm.encrypt(&MESSAGE))
        });
        let mut sessions = olm_sessions(n);
        g.bench_with_input(BenchmarkId::new("olm_pairwise", n), &n, |b, _| {
            b.iter(|| {
                for s in sessions.iter_mut() {
                    std::hint::black_box(s.encrypt(MESSAGE).unwrap());
                }
            })
        });
    }
    g.finish();
}

fn removal(c: &mut Criterion) {
    let mut g = c.benchmark_group("group_removal_rekey");
    g.sample_size(10);
    for n in SIZES {
        let mut sessions = olm_sessions(n - 1);
        g.bench_with_input(BenchmarkId::new("new_session_and_shares", n), &n, |b, _| {
            b.iter(|| {
                let session = OutboundGroupSession::new();
                let key = session.session_key().to_bytes();
                for s in sessions.iter_mut() {
                    std::hint::black_box(s.encrypt(key.as_slice()).unwrap());
                }
                session
            })
        });
    }
    g.finish();
}

criterion_group!(benches, send, removal);
criterion_main!(benches);
