//! Olm message decoding, inbound session creation and decryption never panic
//! on hostile bytes. The first byte picks the message type.
#![no_main]

use std::{cell::RefCell, sync::OnceLock};

use libfuzzer_sys::fuzz_target;
use xmtp_cryptography::{
    installation::InstallationKeys,
    olm::{OlmCiphertext, OlmMessageType, OlmSession},
    x3dh::InitialMessage,
};

fn sender_identity() -> &'static xmtp_cryptography::Curve25519PublicKey {
    static KEY: OnceLock<xmtp_cryptography::Curve25519PublicKey> = OnceLock::new();
    KEY.get_or_init(|| InstallationKeys::new().identity_key())
}

thread_local! {
    static RECEIVER: RefCell<InstallationKeys> = RefCell::new(InstallationKeys::new());
}

fuzz_target!(|data: &[u8]| {
    let _ = InitialMessage::from_bytes(data);
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    let kind = if kind & 1 == 0 {
        OlmMessageType::PreKey
    } else {
        OlmMessageType::Normal
    };
    let Ok(message) = OlmCiphertext::from_parts(kind, bytes) else {
        return;
    };
    let _ = message.to_parts();
    let sender = message.sender_identity_key().unwrap_or(*sender_identity());
    RECEIVER.with(|receiver| {
        let _ = OlmSession::inbound_from_identity_key(&mut receiver.borrow_mut(), sender, &message);
    });
});
