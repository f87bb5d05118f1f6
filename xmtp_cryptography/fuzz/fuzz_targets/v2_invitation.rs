//! Sealed invitations: `invitation::open` never panics on hostile bytes for
//! the fixed viewer (bob), and whatever opens names bob as a party and has
//! usable key material.
#![no_main]

mod v2_fixtures;

use libfuzzer_sys::fuzz_target;
use xmtp_cryptography::v2::invitation;

fuzz_target!(|data: &[u8]| {
    let f = v2_fixtures::fixtures();
    let Ok(opened) = invitation::open(&f.bob_v2, data, None) else {
        return;
    };
    let bob_is = if opened.viewer_is_sender {
        opened.sender.wallet_address()
    } else {
        opened.recipient.wallet_address()
    };
    assert_eq!(bob_is, f.bob);
    assert!(invitation::key_material(&opened.invitation).is_ok());
    // With the envelope time it opens only when that time is the header's.
    assert!(invitation::open(&f.bob_v2, data, Some(opened.created_ns)).is_ok());
    assert!(invitation::open(&f.bob_v2, data, Some(opened.created_ns ^ 1)).is_err());
});
