//! Contact bundles and V1/V2 public bundles: decoding and verification never
//! panic, `decode_for` agrees with `decode`, and the bundle cache gives the
//! same answer as a fresh verification.
#![no_main]

mod v2_fixtures;

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use xmtp_cryptography::v2::{
    contact::Contact,
    public_key::{BundleCache, VerifiedPublicKeyBundle, VerifiedSignedBundle},
};
use xmtp_proto::xmtp::message_contents::SignedPublicKeyBundle;

thread_local! {
    static CACHE: RefCell<BundleCache> = RefCell::new(BundleCache::new());
}

fuzz_target!(|data: &[u8]| {
    let f = v2_fixtures::fixtures();
    let contact = Contact::decode(data);
    if let Ok(contact) = &contact {
        let address = contact.wallet_address();
        assert_eq!(
            Contact::decode_for(data, &address).ok().as_ref(),
            Some(contact)
        );
        if address != f.alice {
            assert!(Contact::decode_for(data, &f.alice).is_err());
        }
        if let Ok(signed) = contact.to_signed() {
            assert_eq!(signed.wallet_address(), address);
        }
    } else {
        assert!(Contact::decode_for(data, &f.alice).is_err());
    }

    if let Ok(bundle) = VerifiedPublicKeyBundle::decode(data) {
        if let Ok(signed) = bundle.to_signed() {
            assert_eq!(signed.wallet_address(), bundle.wallet_address());
        }
    }

    let fresh = VerifiedSignedBundle::decode(data);
    if let Ok(proto) = SignedPublicKeyBundle::decode(data) {
        let fresh = VerifiedSignedBundle::verify(&proto);
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            let first = cache.verify(&proto);
            let again = cache.verify(&proto);
            assert_eq!(first.is_ok(), fresh.is_ok());
            assert_eq!(first.ok(), again.ok());
            assert!(cache.len() <= BundleCache::CAPACITY);
        });
    } else {
        assert!(fresh.is_err());
    }
});
