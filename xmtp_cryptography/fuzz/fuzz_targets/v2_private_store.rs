//! The `privatestore` bundle and private key bundles. The first byte is the
//! length of an arbitrary wallet signature that follows it; the rest is the
//! stored bundle. `LockedBundle::decode` + `decrypt` (with those signature
//! bytes, and with the fixed wallet's real signature) and
//! `PrivateKeyBundleV1::decode` never panic, and a decoded private bundle
//! re-encodes to something that decodes to the same bundle.
#![no_main]

mod v2_fixtures;

use libfuzzer_sys::fuzz_target;
use xmtp_cryptography::v2::{private_key::PrivateKeyBundleV1, private_store::LockedBundle};

fn roundtrips(bundle: &PrivateKeyBundleV1) {
    let encoded = bundle.encode();
    let again = PrivateKeyBundleV1::decode(&encoded).expect("a decoded bundle re-decodes");
    assert_eq!(again.encode(), encoded);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = PrivateKeyBundleV1::decode(data) {
        roundtrips(&bundle);
    }
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let (signature, stored) = rest.split_at(usize::from(len).min(rest.len()));
    let Ok(locked) = LockedBundle::decode(stored) else {
        return;
    };
    if let Ok(bundle) = locked.decrypt(signature) {
        roundtrips(&bundle);
    }
    let f = v2_fixtures::fixtures();
    let real = f
        .alice_wallet
        .sign_text_sync(locked.text())
        .expect("the fixed wallet signs");
    if let Ok(bundle) = locked.decrypt(real.as_bytes()) {
        roundtrips(&bundle);
    }
});
