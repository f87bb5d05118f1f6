//! XMTP V1/V2 constructions checked against vectors published in XMTP's SDK
//! test suites (tests/vectors/v2/published.json; each vector names the
//! repository and file it was taken from).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use base64::Engine as _;
use prost::Message as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use xmtp_cryptography::v2::{
    ciphertext,
    contact::Contact,
    invitation,
    keys::{PublicKey, SecretKey},
    message,
    private_key::PrivateKeyBundleV1,
    public_key::{
        legacy_bytes_to_sign, legacy_key_point, legacy_key_wallet_address, VerifiedPublicKeyBundle,
    },
    signature::{self, create_identity_text, enable_identity_text},
};
use xmtp_cryptography::wallet::Address;
use xmtp_proto::xmtp::message_contents::{
    self as proto, ciphertext as ct, invitation_v1, private_key, Ciphertext, MessageHeaderV1,
    PublicKeyBundle,
};

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/v2/published.json")).unwrap()
}

fn hex_field(v: &Value, name: &str) -> Vec<u8> {
    hex::decode(v[name].as_str().unwrap()).unwrap()
}

fn bytes_field(v: &Value, name: &str) -> Vec<u8> {
    v[name]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect()
}

fn address(v: &Value, name: &str) -> Address {
    v[name].as_str().unwrap().parse().unwrap()
}

// xmtp/xmtp-js sdks/js-sdk/test/crypto/PublicKey.test.ts, "derives address from public key".
#[test]
fn address_of_public_key_matches_xmtp_js() {
    let v = &vectors()["address_from_public_key"];
    let key = PublicKey::from_uncompressed(&hex_field(v, "public_key")).unwrap();
    assert_eq!(key.address().to_checksum(), v["address"].as_str().unwrap());
}

// xmtp/xmtp-js sdks/js-sdk/test/crypto/PublicKey.test.ts, "human-friendly identity key signature request".
#[test]
fn create_identity_text_matches_xmtp_js() {
    let v = &vectors()["create_identity_text"];
    let key = proto::PrivateKey::decode(hex_field(v, "private_key").as_slice()).unwrap();
    let public = key.public_key.as_ref().unwrap();
    assert_eq!(
        create_identity_text(&legacy_bytes_to_sign(public)),
        v["text"].as_str().unwrap()
    );
    // The stored public key is the private key's.
    let Some(private_key::Union::Secp256k1(secret)) = &key.union else {
        panic!("no secret")
    };
    assert_eq!(
        SecretKey::from_bytes(&secret.bytes).unwrap().public_key(),
        legacy_key_point(public).unwrap()
    );
}

// xmtp/xmtp-js sdks/js-sdk/test/crypto/PrivateKeyBundle.test.ts, "human-friendly storage signature request text".
#[test]
fn enable_identity_text_matches_xmtp_js() {
    let v = &vectors()["enable_identity_text"];
    assert_eq!(
        enable_identity_text(&hex_field(v, "wallet_pre_key")),
        v["text"].as_str().unwrap()
    );
}

// xmtp/xmtp-js sdks/js-sdk/test/keystore/InMemoryKeystore.test.ts, "generates known deterministic topic".
#[test]
fn bundles_made_by_xmtp_js_verify_to_their_wallets() {
    let v = &vectors()["deterministic_topic"];
    let alice = PrivateKeyBundleV1::decode(&hex_field(v, "alice_private_key_bundle")).unwrap();
    let bob = PrivateKeyBundleV1::decode(&hex_field(v, "bob_private_key_bundle")).unwrap();
    assert_eq!(alice.wallet_address().unwrap(), address(v, "alice_address"));
    assert_eq!(bob.wallet_address().unwrap(), address(v, "bob_address"));
    // Their V2 forms verify to the same wallets.
    assert_eq!(
        alice.to_v2().unwrap().public_bundle().wallet_address(),
        address(v, "alice_address")
    );
    // Our encoding of the decoded bundle is byte-identical to xmtp-js's.
    assert_eq!(
        alice.encode().as_slice(),
        hex_field(v, "alice_private_key_bundle").as_slice()
    );
}

// xmtp/xmtp-js sdks/js-sdk/test/keystore/InMemoryKeystore.test.ts: the pre-key signatures in these
// bundles were made by xmtp-js (noble-secp256k1); signing the same digest again must give the same bytes.
#[test]
fn pre_key_signatures_are_byte_identical_to_xmtp_js() {
    let v = &vectors()["deterministic_topic"];
    for name in ["alice_private_key_bundle", "bob_private_key_bundle"] {
        let bundle = PrivateKeyBundleV1::decode(&hex_field(v, name)).unwrap();
        for pre in bundle.pre_keys() {
            let digest: [u8; 32] = Sha256::digest(legacy_bytes_to_sign(pre.public_key())).into();
            let ours = bundle.identity_key().sign_digest(&digest).unwrap();
            assert_eq!(Some(&ours), pre.public_key().signature.as_ref());
        }
    }
}

// xmtp/xmtp-js sdks/js-sdk/test/keystore/InMemoryKeystore.test.ts, "generates known deterministic topic":
// Alice inviting Bob and Bob inviting Alice with conversation id "test" both land on the published topic.
#[test]
fn deterministic_topic_matches_xmtp_js_from_both_sides() {
    let v = &vectors()["deterministic_topic"];
    let alice = PrivateKeyBundleV1::decode(&hex_field(v, "alice_private_key_bundle")).unwrap();
    let bob = PrivateKeyBundleV1::decode(&hex_field(v, "bob_private_key_bundle")).unwrap();
    let context = invitation_v1::Context {
        conversation_id: v["conversation_id"].as_str().unwrap().into(),
        metadata: Default::default(),
    };
    let alice_v2 = alice.to_v2().unwrap();
    let bob_v2 = bob.to_v2().unwrap();
    let from_alice = invitation::deterministic_invitation(
        &alice_v2,
        &VerifiedPublicKeyBundle::verify(&bob.public_bundle().unwrap())
            .unwrap()
            .to_signed()
            .unwrap(),
        Some(context.clone()),
    )
    .unwrap();
    let from_bob =
        invitation::deterministic_invitation(&bob_v2, alice_v2.public_bundle(), Some(context))
            .unwrap();
    assert_eq!(from_alice.topic, v["topic"].as_str().unwrap());
    assert_eq!(from_bob.topic, v["topic"].as_str().unwrap());
    assert_eq!(
        invitation::key_material(&from_alice).unwrap(),
        invitation::key_material(&from_bob).unwrap()
    );
}

// xmtp/xmtp-android library/src/test/java/org/xmtp/android/library/MessageTest.kt testCanDecrypt
// (also xmtp/xmtp-ios Tests/XMTPTests/MessageTests.swift): a V1 message encrypted by xmtp-js.
#[test]
fn v1_ciphertext_from_xmtp_js_decrypts_with_its_header() {
    let v = &vectors()["decrypt_v1_message"];
    let c = Ciphertext {
        union: Some(ct::Union::Aes256GcmHkdfSha256(ct::Aes256gcmHkdfsha256 {
            hkdf_salt: hex_field(v, "salt"),
            gcm_nonce: hex_field(v, "nonce"),
            payload: hex_field(v, "payload"),
        })),
    };
    let header = hex_field(v, "additional_data");
    let plain = ciphertext::decrypt(&c, &hex_field(v, "secret"), &header).unwrap();
    assert_eq!(plain.as_slice(), hex_field(v, "content").as_slice());
    // The secret is a V1 3-DH secret: three uncompressed points.
    let secret = hex_field(v, "secret");
    assert_eq!(secret.len(), 195);
    for point in secret.chunks(65) {
        PublicKey::from_uncompressed(point).unwrap();
    }
    // The associated data is the message header, whose bundles verify.
    let header = MessageHeaderV1::decode(header.as_slice()).unwrap();
    let sender = VerifiedPublicKeyBundle::verify(header.sender.as_ref().unwrap()).unwrap();
    let recipient = VerifiedPublicKeyBundle::verify(header.recipient.as_ref().unwrap()).unwrap();
    assert_ne!(sender.wallet_address(), recipient.wallet_address());
    // A different header is refused.
    assert!(ciphertext::decrypt(&c, &hex_field(v, "secret"), b"").is_err());
}

// xmtp/xmtp-android library/src/test/java/org/xmtp/android/library/CryptoTest.kt testDecryptingKnownCypherText.
#[test]
fn known_ciphertext_from_xmtp_js_decrypts() {
    let v = &vectors()["decrypt_known_ciphertext"];
    let c = Ciphertext::decode(bytes_field(v, "ciphertext").as_slice()).unwrap();
    let plain = ciphertext::decrypt(&c, &hex_field(v, "secret"), &[]).unwrap();
    assert_eq!(plain.as_slice(), hex_field(v, "plaintext").as_slice());
}

// xmtp/xmtp-ios Tests/XMTPTests/PrivateKeyBundleTests.swift testSharedSecretMatchesWhatJSGenerates.
#[test]
fn v2_shared_secret_matches_xmtp_js() {
    let v = &vectors()["shared_secret"];
    let me = PrivateKeyBundleV1::decode(&hex_field(v, "me_private_key_bundle"))
        .unwrap()
        .to_v2()
        .unwrap();
    let you = VerifiedPublicKeyBundle::verify(
        &PublicKeyBundle::decode(hex_field(v, "you_public_key_bundle").as_slice()).unwrap(),
    )
    .unwrap()
    .to_signed()
    .unwrap();
    let my_pre_key = *me.pre_keys()[0].point();
    let secret = me
        .shared_secret(&you, &my_pre_key, v["is_recipient"].as_bool().unwrap())
        .unwrap();
    assert_eq!(secret.as_bytes(), hex_field(v, "secret").as_slice());
}

// xmtp/xmtp-android library/src/test/java/org/xmtp/android/library/MessageTest.kt testGetsV2ID
// (also xmtp/xmtp-ios Tests/XMTPTests/MessageTests.swift): a V2 message written by xmtp-js.
#[test]
fn v2_message_from_xmtp_js_decrypts_verifies_and_has_the_published_id() {
    let v = &vectors()["v2_message"];
    let key = base64::engine::general_purpose::STANDARD
        .decode(v["key_material_base64"].as_str().unwrap())
        .unwrap();
    let topic = v["topic"].as_str().unwrap();
    let decoded = message::decode_v2(&hex_field(v, "message"), topic, &key).unwrap();
    assert_eq!(decoded.id, v["id"].as_str().unwrap());
    // The sender is one of the conversation's two parties.
    let reader = PrivateKeyBundleV1::decode(&hex_field(v, "reader_private_key_bundle")).unwrap();
    let parties = [address(v, "peer_address"), reader.wallet_address().unwrap()];
    assert!(
        parties.contains(&decoded.sender_address),
        "sender {}",
        decoded.sender_address
    );
    // The payload is an EncodedContent.
    let content = proto::EncodedContent::decode(decoded.payload.as_slice()).unwrap();
    assert!(content.r#type.is_some());
    // Read from another conversation's topic, it is refused.
    assert!(message::decode_v2(&hex_field(v, "message"), "/xmtp/0/m-other/proto", &key).is_err());
}

// xmtp/xmtp-ios Tests/XMTPTests/ContactTests.swift testParsingV2Bundle.
#[test]
fn v2_contact_bundle_verifies_to_its_wallet() {
    let v = &vectors()["contact_bundle_v2"];
    let contact = Contact::decode(&bytes_field(v, "bytes")).unwrap();
    assert!(matches!(contact, Contact::V2(_)));
    assert_eq!(contact.wallet_address(), address(v, "address"));
}

// xmtp/xmtp-ios Tests/XMTPTests/ContactTests.swift testParsingV1Bundle: a bare legacy PublicKeyBundle
// with an identity key only; its wallet is readable, but it is not a usable contact (no pre-key).
#[test]
fn legacy_bare_bundle_names_its_wallet_but_is_not_a_usable_contact() {
    let v = &vectors()["contact_bundle_v1_legacy"];
    let bytes = bytes_field(v, "bytes");
    let bundle = PublicKeyBundle::decode(bytes.as_slice()).unwrap();
    assert_eq!(
        legacy_key_wallet_address(bundle.identity_key.as_ref().unwrap()).unwrap(),
        address(v, "address")
    );
    assert!(Contact::decode(&bytes).is_err());
    // The identity text the wallet signed is recoverable from the key alone.
    let identity = bundle.identity_key.unwrap();
    let (_, sig) = signature::from_proto(identity.signature.as_ref().unwrap()).unwrap();
    let text = create_identity_text(&legacy_bytes_to_sign(&identity));
    assert_eq!(
        signature::recover_wallet_address(&text, &sig).unwrap(),
        address(v, "address")
    );
}
