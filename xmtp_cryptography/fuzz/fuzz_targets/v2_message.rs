//! V1 and V2 messages: `decode_v2`, `decode_v2_cached` and `decode_v1` never
//! panic on hostile bytes with the fixed conversation key and viewer, and
//! the cached decoder agrees with the uncached one.
#![no_main]

mod v2_fixtures;

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use xmtp_cryptography::v2::{message, public_key::BundleCache};

thread_local! {
    static CACHE: RefCell<BundleCache> = RefCell::new(BundleCache::new());
}

fuzz_target!(|data: &[u8]| {
    let f = v2_fixtures::fixtures();
    let plain = message::decode_v2(data, &f.topic, &f.key_material);
    let cached = CACHE.with(|cache| {
        message::decode_v2_cached(data, &f.topic, &f.key_material, &mut cache.borrow_mut())
    });
    match (&plain, &cached) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.id, b.id);
            assert_eq!(a.payload, b.payload);
            assert_eq!(a.sender, b.sender);
            assert_eq!(a.sender_address, a.sender.wallet_address());
        }
        (Err(_), Err(_)) => {}
        _ => panic!("decode_v2 and decode_v2_cached disagree"),
    }
    // Any other key material refuses what this one accepts.
    if plain.is_ok() {
        let mut other = f.key_material.clone();
        other[0] ^= 1;
        assert!(message::decode_v2(data, &f.topic, &other).is_err());
    }

    if let Ok(v1) = message::decode_v1(&f.bob_v1, data) {
        let bob = if v1.viewer_is_sender {
            v1.sender.wallet_address()
        } else {
            v1.recipient.wallet_address()
        };
        assert_eq!(bob, f.bob);
    }
});
