//! Bundle, association and revocation decoding and verification never panic,
//! and whatever verifies re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use xmtp_cryptography::{
    association::{Association, Revocation},
    bundle::{verify_installations, VerifiedInstallation},
    wallet::Address,
};
use xmtp_proto::xmtp::v3::message_contents::{
    InstallationPublicKeyBundle, WalletAssociation, WalletRevocation,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(verified) = VerifiedInstallation::from_bytes(data) {
        assert_eq!(verified.to_bytes(), data);
    }
    if let Ok(association) = WalletAssociation::decode(data) {
        let _ = Association::from_proto(&association);
    }
    if let Ok(revocation) = WalletRevocation::decode(data) {
        let _ = Revocation::from_proto(&revocation);
    }
    if let Ok(bundle) = InstallationPublicKeyBundle::decode(data) {
        let address = Address::from_bytes([0; 20]);
        let set = verify_installations(&address, &[bundle], &[]);
        assert!(set.installations.is_empty());
    }
});
