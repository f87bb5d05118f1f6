#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Property tests: bundles, X3DH, Olm and Megolm under random inputs.

use std::sync::OnceLock;

use proptest::prelude::*;
use prost::Message;
use xmtp_cryptography::{
    association::Association,
    bundle::VerifiedInstallation,
    installation::{InstallationKeys, PreKeyKind},
    megolm::{InboundGroupSession, OutboundGroupSession, ReplayGuard},
    olm::{OlmCiphertext, OlmSession},
    wallet::LocalWallet,
    x3dh::{self, InitialMessage, PreKeyBundle, X25519KeyPair, X25519PublicKey},
    DecryptError,
};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

struct Installation {
    keys: InstallationKeys,
    public: VerifiedInstallation,
    bytes: Vec<u8>,
}

fn make_installation(wallet: &LocalWallet, created_ns: u64) -> Installation {
    let keys = InstallationKeys::new();
    let association = block_on(Association::create(
        wallet,
        keys.installation_id(),
        created_ns,
    ))
    .unwrap();
    let proto = keys.public_bundle(&association).unwrap();
    let bytes = proto.encode_to_vec();
    let public = VerifiedInstallation::from_bytes(&bytes).unwrap();
    Installation {
        keys,
        public,
        bytes,
    }
}

/// A few signed bundles, made once (wallet signatures are the slow part).
fn bundles() -> &'static Vec<Vec<u8>> {
    static BUNDLES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    BUNDLES.get_or_init(|| {
        (0..4u64)
            .map(|i| make_installation(&LocalWallet::random(), 1_700_000_000_000_000_000 + i).bytes)
            .collect()
    })
}

#[test]
fn every_single_bit_flip_of_a_bundle_is_rejected() {
    let bytes = &bundles()[0];
    for bit in 0..bytes.len() * 8 {
        let mut tampered = bytes.clone();
        tampered[bit / 8] ^= 1 << (bit % 8);
        assert!(
            VerifiedInstallation::from_bytes(&tampered).is_err(),
            "flipping bit {bit} was accepted"
        );
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_bundle_round_trips_through_protobuf(key in any::<[u8; 32]>(), created_ns in 1u64..) {
        let Ok(wallet) = LocalWallet::from_key_bytes(&key) else { return Ok(()) };
        let installation = make_installation(&wallet, created_ns);
        let decoded = VerifiedInstallation::from_bytes(&installation.public.to_bytes()).unwrap();
        prop_assert_eq!(decoded.to_bytes(), installation.bytes.clone());
        prop_assert_eq!(decoded.address(), wallet.address());
        prop_assert_eq!(decoded.installation_id(), installation.keys.installation_id());
        prop_assert_eq!(decoded.identity_key(), installation.keys.identity_key());
        prop_assert_eq!(decoded.created_ns(), created_ns);
        let json = serde_json::to_string(&decoded.to_proto()).unwrap();
        let from_json = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(VerifiedInstallation::from_proto(&from_json).unwrap(), decoded);
    }

    #[test]
    fn any_flipped_bit_in_a_signed_bundle_is_rejected(which in 0usize..4, bit in any::<prop::sample::Index>()) {
        let bytes = &bundles()[which];
        let bit = bit.index(bytes.len() * 8);
        let mut tampered = bytes.clone();
        tampered[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(VerifiedInstallation::from_bytes(&tampered).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_verify_as_a_bundle(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(VerifiedInstallation::from_bytes(&bytes).is_err());
    }

    #[test]
    fn x3dh_agrees_for_any_keys(
        ik_a in any::<[u8; 32]>(), ik_b in any::<[u8; 32]>(), spk in any::<[u8; 32]>(),
        opk in any::<[u8; 32]>(), ek in any::<[u8; 32]>(), with_opk in any::<bool>(),
    ) {
        let signer = InstallationKeys::new();
        let (ik_a, ik_b, spk, opk, ek) = (
            X25519KeyPair::from_secret_bytes(ik_a), X25519KeyPair::from_secret_bytes(ik_b),
            X25519KeyPair::from_secret_bytes(spk), X25519KeyPair::from_secret_bytes(opk),
            X25519KeyPair::from_secret_bytes(ek),
        );
        let bundle = PreKeyBundle {
            identity_key: ik_b.public_key(),
            signing_key: signer.installation_id(),
            signed_pre_key: spk.public_key(),
            signed_pre_key_signature: signer.sign_x3dh_pre_key(&ik_b.public_key(), &spk.public_key()),
            one_time_pre_key: with_opk.then(|| opk.public_key()),
        };
        let (alice, message) = x3dh::initiate_with_ephemeral(&ik_a, &bundle, &ek).unwrap();
        let message = InitialMessage::from_bytes(&message.to_bytes()).unwrap();
        let bob = x3dh::respond(&ik_b, &spk, with_opk.then_some(&opk), &message).unwrap();
        prop_assert_eq!(&alice.shared_secret, &bob.shared_secret);
        prop_assert_eq!(&alice.associated_data, &bob.associated_data);
    }

    #[test]
    fn x3dh_fails_for_any_tampered_input(field in 0usize..8, bit in 0usize..256) {
        let signer = InstallationKeys::new();
        let (ik_a, ik_b, spk, opk) = (X25519KeyPair::random(), X25519KeyPair::random(), X25519KeyPair::random(), X25519KeyPair::random());
        let mut bundle = PreKeyBundle {
            identity_key: ik_b.public_key(),
            signing_key: signer.installation_id(),
            signed_pre_key: spk.public_key(),
            signed_pre_key_signature: signer.sign_x3dh_pre_key(&ik_b.public_key(), &spk.public_key()),
            one_time_pre_key: Some(opk.public_key()),
        };
        let flip = |bytes: &[u8; 32]| {
            let mut out = *bytes;
            out[bit / 8] ^= 1 << (bit % 8);
            X25519PublicKey::from_bytes(out)
        };
        match field {
            // Tampering with what Bob signed: Alice refuses the bundle.
            0 => bundle.identity_key = flip(bundle.identity_key.as_bytes()),
            1 => bundle.signed_pre_key = flip(bundle.signed_pre_key.as_bytes()),
            2 => bundle.signed_pre_key_signature[bit / 4] ^= 1 << (bit % 8),
            3 => {
                let mut key = *bundle.signing_key.as_bytes();
                key[bit / 8] ^= 1 << (bit % 8);
                bundle.signing_key = xmtp_cryptography::InstallationId::from_bytes(key);
            }
            _ => {}
        }
        if field < 4 {
            prop_assert!(x3dh::initiate(&ik_a, &bundle).is_err());
            return Ok(());
        }
        // An OPK swapped in transit is not signed, but then Bob does not hold it.
        if field == 4 {
            bundle.one_time_pre_key = Some(flip(opk.public_key().as_bytes()));
            let (_, message) = x3dh::initiate(&ik_a, &bundle).unwrap();
            prop_assert!(x3dh::respond(&ik_b, &spk, Some(&opk), &message).is_err());
            return Ok(());
        }
        // Tampering with the initial message: Bob errs or derives another secret.
        let (alice, mut message) = x3dh::initiate(&ik_a, &bundle).unwrap();
        match field {
            5 => message.identity_key = flip(message.identity_key.as_bytes()),
            6 => message.ephemeral_key = flip(message.ephemeral_key.as_bytes()),
            _ => message.signed_pre_key = flip(message.signed_pre_key.as_bytes()),
        }
        match x3dh::respond(&ik_b, &spk, Some(&opk), &message) {
            Err(_) => {}
            Ok(bob) => {
                prop_assert_ne!(alice.shared_secret, bob.shared_secret);
                if field == 5 {
                    prop_assert_ne!(alice.associated_data, bob.associated_data);
                }
            }
        }
    }
}

struct OlmPair {
    alice: OlmSession,
    bob: OlmSession,
}

fn olm_pair() -> OlmPair {
    let wallet = LocalWallet::random();
    let alice = make_installation(&wallet, 1);
    let mut bob = make_installation(&wallet, 2);
    let otk = bob.keys.generate_one_time_keys(1)[0];
    let claimed = bob
        .public
        .verify_claimed_key(&otk.to_proto(), PreKeyKind::OneTime)
        .unwrap();
    let mut alice_session = OlmSession::outbound(&alice.keys, &bob.public, &claimed).unwrap();
    let first = alice_session.encrypt(b"hello").unwrap();
    let (mut bob_session, _) = OlmSession::inbound(&mut bob.keys, &alice.public, &first).unwrap();
    // Bob replies so that Alice's next messages are ordinary ratchet messages.
    let reply = bob_session.encrypt(b"hi").unwrap();
    alice_session.decrypt(&reply).unwrap();
    OlmPair {
        alice: alice_session,
        bob: bob_session,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn olm_messages_decrypt_in_any_order_and_once(
        order in Just((0..24usize).collect::<Vec<_>>()).prop_shuffle(),
        replay in 0usize..24,
    ) {
        let mut pair = olm_pair();
        // Two chains: 12 messages, a reply from Bob (a DH ratchet step), 12 more.
        let mut messages: Vec<_> = (0..12).map(|i| pair.alice.encrypt(format!("m{i}").as_bytes()).unwrap()).collect();
        let reply = pair.bob.encrypt(b"step").unwrap();
        pair.alice.decrypt(&reply).unwrap();
        messages.extend((12..24).map(|i| pair.alice.encrypt(format!("m{i}").as_bytes()).unwrap()));
        for &i in &order {
            prop_assert_eq!(pair.bob.decrypt(&messages[i]).unwrap(), format!("m{i}").into_bytes());
        }
        prop_assert_eq!(pair.bob.decrypt(&messages[replay]).unwrap_err(), DecryptError::MissingMessageKey);
    }

    #[test]
    fn megolm_messages_decrypt_in_any_order_and_once(
        order in Just((0..32usize).collect::<Vec<_>>()).prop_shuffle(),
        replay in 0usize..32,
    ) {
        let mut outbound = OutboundGroupSession::new();
        let mut inbound = InboundGroupSession::new(&outbound.session_key());
        let mut guard = ReplayGuard::new();
        let messages: Vec<_> = (0..32).map(|i| outbound.encrypt(format!("g{i}").as_bytes())).collect();
        for &i in &order {
            let plaintext = inbound.decrypt_once(&messages[i], &mut guard).unwrap();
            prop_assert_eq!(plaintext.plaintext, format!("g{i}").into_bytes());
            prop_assert_eq!(plaintext.message_index as usize, i);
        }
        let replayed = inbound.decrypt_once(&messages[replay], &mut guard);
        let is_replay = matches!(replayed, Err(DecryptError::Replay { .. }));
        prop_assert!(is_replay);
    }

    #[test]
    fn megolm_refuses_any_flipped_bit(bit in any::<prop::sample::Index>()) {
        let mut outbound = OutboundGroupSession::new();
        let mut inbound = InboundGroupSession::new(&outbound.session_key());
        let message = outbound.encrypt(b"group message");
        let bit = bit.index(message.len() * 8);
        let mut tampered = message.clone();
        tampered[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(inbound.decrypt(&tampered).is_err());
    }

    #[test]
    fn olm_refuses_any_flipped_bit(bit in any::<prop::sample::Index>(), pre_key in any::<bool>()) {
        if pre_key {
            // A fresh outbound session's first message is a pre-key message.
            let wallet = LocalWallet::random();
            let alice = make_installation(&wallet, 1);
            let mut bob = make_installation(&wallet, 2);
            let mut session = OlmSession::outbound(&alice.keys, &bob.public, &bob.public.fallback_as_claimed()).unwrap();
            let (kind, bytes) = session.encrypt(b"pre-key message").unwrap().to_parts();
            let tampered = flip(&bytes, bit.index(bytes.len() * 8));
            if let Ok(tampered) = OlmCiphertext::from_parts(kind, &tampered) {
                prop_assert!(OlmSession::inbound(&mut bob.keys, &alice.public, &tampered).is_err());
            }
            let genuine = OlmCiphertext::from_parts(kind, &bytes).unwrap();
            prop_assert_eq!(OlmSession::inbound(&mut bob.keys, &alice.public, &genuine).unwrap().1, b"pre-key message".to_vec());
        } else {
            let mut pair = olm_pair();
            let message = pair.alice.encrypt(b"ratchet message").unwrap();
            let (kind, bytes) = message.to_parts();
            let tampered = flip(&bytes, bit.index(bytes.len() * 8));
            if let Ok(tampered) = OlmCiphertext::from_parts(kind, &tampered) {
                prop_assert!(pair.bob.decrypt(&tampered).is_err());
            }
            // The genuine message still decrypts: a forgery changes no state.
            prop_assert_eq!(pair.bob.decrypt(&message).unwrap(), b"ratchet message".to_vec());
        }
    }
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

#[test]
fn every_single_bit_flip_of_an_olm_message_is_rejected() {
    let mut pair = olm_pair();
    let message = pair.alice.encrypt(b"ratchet message").unwrap();
    let (kind, bytes) = message.to_parts();
    for bit in 0..bytes.len() * 8 {
        if let Ok(tampered) = OlmCiphertext::from_parts(kind, &flip(&bytes, bit)) {
            assert!(
                pair.bob.decrypt(&tampered).is_err(),
                "flipping bit {bit} was accepted"
            );
        }
    }
    assert_eq!(pair.bob.decrypt(&message).unwrap(), b"ratchet message");
}

#[test]
fn every_single_bit_flip_of_a_megolm_message_is_rejected() {
    let mut outbound = OutboundGroupSession::new();
    let mut inbound = InboundGroupSession::new(&outbound.session_key());
    let message = outbound.encrypt(b"group message");
    for bit in 0..message.len() * 8 {
        assert!(
            inbound.decrypt(&flip(&message, bit)).is_err(),
            "flipping bit {bit} was accepted"
        );
    }
    assert_eq!(
        inbound.decrypt(&message).unwrap().plaintext,
        b"group message"
    );
}
