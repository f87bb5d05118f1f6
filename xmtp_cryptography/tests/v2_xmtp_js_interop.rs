//! Data written by XMTP's own JavaScript SDK, @xmtp/xmtp-js@13.0.4
//! (tests/vectors/v2/xmtp_js_13.json, produced by
//! tests/vectors/v2/xmtp_js_interop.cjs from fixed wallet keys), read by our
//! code: identities, the privatestore bundle, a deterministic invitation, V2
//! and V1 messages and an authentication token. The same script's `verify`
//! mode checked the reverse direction (xmtp-js reading tests/vectors/v2/own.json).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use prost::Message as _;
use serde_json::Value;
use xmtp_cryptography::v2::{
    authn, invitation, message, private_key::PrivateKeyBundleV1, private_store::LockedBundle, topic,
};
use xmtp_cryptography::wallet::{Address, LocalWallet};
use xmtp_proto::xmtp::{message_api::v1::Token, message_contents::EncodedContent};

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/v2/xmtp_js_13.json")).unwrap()
}

fn hex_field(v: &Value, name: &str) -> Vec<u8> {
    hex::decode(v[name].as_str().unwrap()).unwrap()
}

fn address(v: &Value, name: &str) -> Address {
    v[name].as_str().unwrap().parse().unwrap()
}

fn u64_field(v: &Value, name: &str) -> u64 {
    v[name].as_str().unwrap().parse().unwrap()
}

fn text_of(payload: &[u8]) -> String {
    let content = EncodedContent::decode(payload).unwrap();
    let kind = content.r#type.unwrap();
    assert_eq!(
        (kind.authority_id.as_str(), kind.type_id.as_str()),
        ("xmtp.org", "text")
    );
    String::from_utf8(content.content).unwrap()
}

fn wallet(seed: u8) -> LocalWallet {
    LocalWallet::from_key_bytes(&[seed; 32]).unwrap()
}

#[test]
fn identities_made_by_xmtp_js_verify_to_their_wallets() {
    let v = vectors();
    for (name, seed) in [("alice", 0xc1), ("dave", 0xd1)] {
        let keys =
            PrivateKeyBundleV1::decode(&hex_field(&v, &format!("{name}_private_key_bundle")))
                .unwrap();
        assert_eq!(
            keys.wallet_address().unwrap(),
            address(&v, &format!("{name}_address"))
        );
        assert_eq!(wallet(seed).address(), keys.wallet_address().unwrap());
    }
}

#[test]
fn privatestore_bundle_written_by_xmtp_js_is_recovered_with_the_wallet() {
    let v = vectors();
    let alice = address(&v, "alice_address");
    assert_eq!(
        topic::private_store_topic(&alice),
        v["alice_privatestore_topic"].as_str().unwrap()
    );
    let locked = LockedBundle::decode(&hex_field(&v, "alice_privatestore_message")).unwrap();
    let signature = wallet(0xc1).sign_text_sync(locked.text()).unwrap();
    let recovered = locked.decrypt(signature.as_bytes()).unwrap();
    assert_eq!(
        recovered.encode().as_slice(),
        hex_field(&v, "alice_private_key_bundle").as_slice()
    );
}

#[test]
fn invitation_from_xmtp_js_opens_and_matches_our_deterministic_derivation() {
    let v = vectors();
    let alice = PrivateKeyBundleV1::decode(&hex_field(&v, "alice_private_key_bundle"))
        .unwrap()
        .to_v2()
        .unwrap();
    let dave = PrivateKeyBundleV1::decode(&hex_field(&v, "dave_private_key_bundle"))
        .unwrap()
        .to_v2()
        .unwrap();
    let sealed = hex_field(&v, "invitation");
    let created = u64_field(&v, "invitation_created_ns");
    let for_dave = invitation::open(&dave, &sealed, Some(created)).unwrap();
    let for_alice = invitation::open(&alice, &sealed, Some(created)).unwrap();
    assert_eq!(for_dave.peer_address(), address(&v, "alice_address"));
    assert_eq!(for_alice.peer_address(), address(&v, "dave_address"));
    assert_eq!(
        for_dave.invitation.topic,
        v["conversation_topic"].as_str().unwrap()
    );
    // xmtp-js derived the topic and key deterministically; Dave, deriving on his side, agrees.
    let ours = invitation::deterministic_invitation(
        &dave,
        alice.public_bundle(),
        for_dave.invitation.context.clone(),
    )
    .unwrap();
    assert_eq!(ours.topic, for_dave.invitation.topic);
    assert_eq!(
        invitation::key_material(&ours).unwrap(),
        invitation::key_material(&for_dave.invitation).unwrap()
    );
}

#[test]
fn v2_message_from_xmtp_js_decrypts_and_verifies() {
    let v = vectors();
    let dave = PrivateKeyBundleV1::decode(&hex_field(&v, "dave_private_key_bundle"))
        .unwrap()
        .to_v2()
        .unwrap();
    let opened = invitation::open(&dave, &hex_field(&v, "invitation"), None).unwrap();
    let key = invitation::key_material(&opened.invitation).unwrap();
    let topic = v["conversation_topic"].as_str().unwrap();
    let decoded = message::decode_v2(&hex_field(&v, "message_v2"), topic, key).unwrap();
    assert_eq!(decoded.sender_address, address(&v, "alice_address"));
    assert_eq!(
        text_of(&decoded.payload),
        v["message_v2_text"].as_str().unwrap()
    );
    assert_eq!(decoded.should_push, Some(true));
    // xmtp-js keyed its HMAC on the period it sent in; the header time is in the same window.
    let hmac = decoded.sender_hmac.as_deref().unwrap();
    assert!(message::verify_sender_hmac(
        key,
        &decoded.sender_address,
        &decoded.header_bytes,
        hmac,
        decoded.sent_ns
    ));
    // Read in another conversation, it is refused.
    assert!(
        message::decode_v2(&hex_field(&v, "message_v2"), "/xmtp/0/m-other/proto", key).is_err()
    );
}

#[test]
fn v1_message_from_xmtp_js_decrypts_for_its_recipient() {
    let v = vectors();
    let dave = PrivateKeyBundleV1::decode(&hex_field(&v, "dave_private_key_bundle")).unwrap();
    let decoded = message::decode_v1(&dave, &hex_field(&v, "message_v1")).unwrap();
    assert!(!decoded.viewer_is_sender);
    assert_eq!(
        decoded.sender.wallet_address(),
        address(&v, "alice_address")
    );
    assert_eq!(
        decoded.recipient.wallet_address(),
        address(&v, "dave_address")
    );
    assert_eq!(
        text_of(&decoded.payload),
        v["message_v1_text"].as_str().unwrap()
    );
}

#[test]
fn token_from_xmtp_js_verifies_and_ours_is_byte_identical() {
    let v = vectors();
    let token = Token::decode(hex_field(&v, "token").as_slice()).unwrap();
    let verified = authn::verify_token(&token).unwrap();
    assert_eq!(verified.wallet_address, address(&v, "alice_address"));
    // xmtp-js turns the requested time into a Date, so the token keeps whole milliseconds.
    let requested = u64_field(&v, "token_created_ns");
    assert_eq!(verified.created_ns, requested / 1_000_000 * 1_000_000);
    // Deterministic signing: our token for the same keys and time is the same bytes.
    let alice = PrivateKeyBundleV1::decode(&hex_field(&v, "alice_private_key_bundle")).unwrap();
    let ours = authn::create_token(&alice, verified.created_ns).unwrap();
    assert_eq!(ours.encode_to_vec(), hex_field(&v, "token"));
}
