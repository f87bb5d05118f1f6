//! Fixed vectors of our own (tests/vectors/v2/own.json) for the XMTP V1/V2
//! constructions that XMTP's SDK test suites publish no vector for: the
//! wallet-encrypted private key bundle, authentication tokens, the sender
//! HMAC, sealed invitations and messages between two fixed identities. They
//! were produced by `regenerate_own_vectors` (run it with `--ignored` only
//! when a deliberate wire change is made) from fixed wallet keys and a seeded
//! RNG; the tests check that today's code reads them and, for the
//! deterministic constructions, reproduces them byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use prost::Message as _;
use rand::{rngs::StdRng, SeedableRng};
use serde_json::{json, Value};
use xmtp_cryptography::v2::{
    authn,
    contact::Contact,
    invitation, message,
    private_key::IdentityRequest,
    private_key::PrivateKeyBundleV1,
    private_store::{EnableIdentityRequest, LockedBundle},
    public_key::VerifiedPublicKeyBundle,
};
use xmtp_cryptography::wallet::Address;
use xmtp_cryptography::wallet::LocalWallet;
use xmtp_proto::xmtp::message_contents::invitation_v1;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/v2/own.json");
const CREATED_MS: u64 = 1_700_000_000_000;
const CREATED_NS: u64 = CREATED_MS * 1_000_000;

fn wallet(seed: u8) -> LocalWallet {
    LocalWallet::from_key_bytes(&[seed; 32]).unwrap()
}

fn sign(wallet: &LocalWallet, text: &str) -> Vec<u8> {
    wallet.sign_text_sync(text).unwrap().as_bytes().to_vec()
}

fn vectors() -> Value {
    serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap()
}

fn hex_field(v: &Value, name: &str) -> Vec<u8> {
    hex::decode(v[name].as_str().unwrap()).unwrap()
}

fn bundle(v: &Value, name: &str) -> PrivateKeyBundleV1 {
    PrivateKeyBundleV1::decode(&hex_field(v, name)).unwrap()
}

fn context() -> invitation_v1::Context {
    invitation_v1::Context {
        conversation_id: "xmtp-rs/vectors".into(),
        metadata: [("k".to_string(), "v".to_string())].into_iter().collect(),
    }
}

#[test]
#[ignore = "writes tests/vectors/v2/own.json; run only for a deliberate wire change"]
fn regenerate_own_vectors() {
    let mut rng = StdRng::seed_from_u64(0x786d_7470);
    let (alice_wallet, bob_wallet) = (wallet(0xa1), wallet(0xb0));
    let make = |rng: &mut StdRng, w: &LocalWallet| {
        let request = IdentityRequest::new(rng, CREATED_MS);
        let sig = sign(w, request.text());
        request.complete(rng, &sig, Some(w.address())).unwrap()
    };
    let alice = make(&mut rng, &alice_wallet);
    let bob = make(&mut rng, &bob_wallet);
    let (alice_v2, bob_v2) = (alice.to_v2().unwrap(), bob.to_v2().unwrap());

    let store = EnableIdentityRequest::new(&mut rng);
    let encrypted = store
        .encrypt(&mut rng, &alice, &sign(&alice_wallet, store.text()))
        .unwrap();

    let token = authn::create_token(&alice, CREATED_NS).unwrap();

    let invite =
        invitation::deterministic_invitation(&alice_v2, bob_v2.public_bundle(), Some(context()))
            .unwrap();
    let sealed = invitation::seal(
        &mut rng,
        &alice_v2,
        bob_v2.public_bundle(),
        CREATED_NS,
        &invite,
    )
    .unwrap();
    let key = invitation::key_material(&invite).unwrap().to_vec();
    let v2 = message::encode_v2(
        &mut rng,
        &bob_v2,
        &invite.topic,
        &key,
        CREATED_NS + 1,
        b"hello from bob",
        Some(true),
    )
    .unwrap();
    let bob_v1 = VerifiedPublicKeyBundle::verify(&bob.public_bundle().unwrap()).unwrap();
    let v1 = message::encode_v1(
        &mut rng,
        &alice,
        &bob_v1,
        CREATED_MS + 2,
        b"hello from alice",
    )
    .unwrap();
    let hmac = message::sender_hmac(
        &key,
        message::hmac_period(CREATED_NS),
        &alice_wallet.address(),
        b"header",
    )
    .unwrap();

    let out = json!({
        "_comment": "Our own fixed vectors (no published ones exist for these). Wallet keys are 32 bytes of 0xa1 (alice) and 0xb0 (bob). Regenerate with `cargo test -p xmtp_cryptography --test v2_own_vectors -- --ignored`.",
        "alice_address": alice_wallet.address().to_checksum(),
        "bob_address": bob_wallet.address().to_checksum(),
        "alice_private_key_bundle": hex::encode(alice.encode().as_slice()),
        "bob_private_key_bundle": hex::encode(bob.encode().as_slice()),
        "alice_contact_v1": hex::encode(xmtp_cryptography::v2::contact::encode_v1(&alice.public_bundle().unwrap())),
        "alice_contact_v2": hex::encode(xmtp_cryptography::v2::contact::encode_v2(alice_v2.public_bundle().proto())),
        "encrypted_private_key_bundle": hex::encode(&encrypted),
        "token": hex::encode(token.encode_to_vec()),
        "token_created_ns": CREATED_NS,
        "invitation_topic": invite.topic,
        "invitation_key_material": hex::encode(&key),
        "sealed_invitation": hex::encode(&sealed),
        "sealed_created_ns": CREATED_NS,
        "message_v2": hex::encode(&v2.bytes),
        "message_v2_id": v2.id,
        "message_v1": hex::encode(&v1.bytes),
        "hmac_header": hex::encode(b"header"),
        "hmac_period": message::hmac_period(CREATED_NS),
        "hmac": hex::encode(hmac),
    });
    std::fs::write(PATH, serde_json::to_string_pretty(&out).unwrap() + "\n").unwrap();
}

// Own vector: identities of two fixed wallets, made by IdentityRequest.
#[test]
fn fixed_identities_verify_and_their_wallet_signatures_reproduce() {
    let v = vectors();
    for (name, w) in [("alice", wallet(0xa1)), ("bob", wallet(0xb0))] {
        let keys = bundle(&v, &format!("{name}_private_key_bundle"));
        let address: Address = v[format!("{name}_address")]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(keys.wallet_address().unwrap(), address);
        assert_eq!(w.address(), address);
        // The wallet's EIP-191 signature of the Create Identity text is deterministic: the stored
        // identity signature is exactly what the wallet returns for our text today.
        let public = keys.identity_key().public_key();
        let text = xmtp_cryptography::v2::signature::create_identity_text(
            &xmtp_cryptography::v2::public_key::legacy_bytes_to_sign(public),
        );
        let sig = sign(&w, &text);
        let xmtp_proto::xmtp::message_contents::signature::Union::EcdsaCompact(stored) =
            public.signature.as_ref().unwrap().union.as_ref().unwrap()
        else {
            panic!("V1 identity signatures are ecdsa_compact")
        };
        assert_eq!(stored.bytes.as_slice(), &sig[..64]);
        assert_eq!(stored.recovery, u32::from(sig[64] - 27));
    }
}

// Own vector: contact bundles of a fixed identity, both versions.
#[test]
fn fixed_contact_bundles_verify() {
    let v = vectors();
    let alice: Address = v["alice_address"].as_str().unwrap().parse().unwrap();
    for name in ["alice_contact_v1", "alice_contact_v2"] {
        assert_eq!(
            Contact::decode(&hex_field(&v, name))
                .unwrap()
                .wallet_address(),
            alice
        );
    }
}

// Own vector: the privatestore bundle, recovered with the wallet as on a new device.
#[test]
fn encrypted_private_key_bundle_is_recovered_by_its_wallet() {
    let v = vectors();
    let locked = LockedBundle::decode(&hex_field(&v, "encrypted_private_key_bundle")).unwrap();
    let sig = sign(&wallet(0xa1), locked.text());
    let recovered = locked.decrypt(&sig).unwrap();
    assert_eq!(
        recovered.encode(),
        bundle(&v, "alice_private_key_bundle").encode()
    );
    // A wallet that returns v as 0/1 instead of 27/28 recovers it too.
    let mut canonical = sig.clone();
    canonical[64] -= 27;
    assert_eq!(
        locked.decrypt(&canonical).unwrap().encode(),
        recovered.encode()
    );
    // Another wallet cannot.
    assert!(locked.decrypt(&sign(&wallet(0xb0), locked.text())).is_err());
}

// Own vector: an authentication token; signing is deterministic, so it is reproduced exactly.
#[test]
fn token_verifies_and_is_reproduced() {
    let v = vectors();
    let token = xmtp_proto::xmtp::message_api::v1::Token::decode(hex_field(&v, "token").as_slice())
        .unwrap();
    let verified = authn::verify_token(&token).unwrap();
    assert_eq!(
        verified.wallet_address.to_checksum(),
        v["alice_address"].as_str().unwrap()
    );
    assert_eq!(verified.created_ns, v["token_created_ns"].as_u64().unwrap());
    let again =
        authn::create_token(&bundle(&v, "alice_private_key_bundle"), verified.created_ns).unwrap();
    assert_eq!(again.encode_to_vec(), hex_field(&v, "token"));
    let bearer = authn::bearer(&again);
    let decoded = authn::decode_token(bearer.strip_prefix("Bearer ").unwrap()).unwrap();
    assert_eq!(decoded, token);
}

// Own vector: the deterministic invitation between the fixed identities, from both sides.
#[test]
fn deterministic_invitation_is_reproduced_from_both_sides() {
    let v = vectors();
    let alice = bundle(&v, "alice_private_key_bundle");
    let bob = bundle(&v, "bob_private_key_bundle");
    let (alice_v2, bob_v2) = (alice.to_v2().unwrap(), bob.to_v2().unwrap());
    for (me, peer) in [
        (&alice_v2, bob_v2.public_bundle()),
        (&bob_v2, alice_v2.public_bundle()),
    ] {
        let invite = invitation::deterministic_invitation(me, peer, Some(context())).unwrap();
        assert_eq!(invite.topic, v["invitation_topic"].as_str().unwrap());
        assert_eq!(
            invitation::key_material(&invite).unwrap(),
            hex_field(&v, "invitation_key_material")
        );
    }
}

// Own vector: a sealed invitation from alice to bob opens for both, with the right peers.
#[test]
fn sealed_invitation_opens_for_both_parties() {
    let v = vectors();
    let alice = bundle(&v, "alice_private_key_bundle").to_v2().unwrap();
    let bob = bundle(&v, "bob_private_key_bundle").to_v2().unwrap();
    let sealed = hex_field(&v, "sealed_invitation");
    let created = v["sealed_created_ns"].as_u64();
    let for_bob = invitation::open(&bob, &sealed, created).unwrap();
    let for_alice = invitation::open(&alice, &sealed, created).unwrap();
    assert!(!for_bob.viewer_is_sender && for_alice.viewer_is_sender);
    assert_eq!(
        for_bob.peer_address().to_checksum(),
        v["alice_address"].as_str().unwrap()
    );
    assert_eq!(
        for_alice.peer_address().to_checksum(),
        v["bob_address"].as_str().unwrap()
    );
    for opened in [&for_bob, &for_alice] {
        assert_eq!(
            opened.invitation.topic,
            v["invitation_topic"].as_str().unwrap()
        );
        assert_eq!(opened.invitation.context, Some(context()));
        // Debug output never shows the conversation's key material.
        let debug = format!("{opened:?}");
        assert!(debug.contains(v["invitation_topic"].as_str().unwrap()));
        assert!(!debug.contains(v["invitation_key_material"].as_str().unwrap()));
        let key = hex_field(&v, "invitation_key_material");
        assert!(!debug.contains(&format!("{key:?}")));
    }
}

// Own vector: a V2 message from bob in that conversation, with its id and sender HMAC.
#[test]
fn v2_message_decodes_with_its_id_and_hmac() {
    let v = vectors();
    let key = hex_field(&v, "invitation_key_material");
    let bytes = hex_field(&v, "message_v2");
    let decoded =
        message::decode_v2(&bytes, v["invitation_topic"].as_str().unwrap(), &key).unwrap();
    assert_eq!(decoded.payload, b"hello from bob");
    assert_eq!(decoded.id, v["message_v2_id"].as_str().unwrap());
    assert_eq!(
        decoded.sender_address.to_checksum(),
        v["bob_address"].as_str().unwrap()
    );
    assert_eq!(decoded.should_push, Some(true));
    let hmac = decoded.sender_hmac.as_deref().unwrap();
    let bob: Address = v["bob_address"].as_str().unwrap().parse().unwrap();
    let alice: Address = v["alice_address"].as_str().unwrap().parse().unwrap();
    assert!(message::verify_sender_hmac(
        &key,
        &bob,
        &decoded.header_bytes,
        hmac,
        decoded.sent_ns
    ));
    assert!(!message::verify_sender_hmac(
        &key,
        &alice,
        &decoded.header_bytes,
        hmac,
        decoded.sent_ns
    ));
    // Thirty days is one period: two periods later the key no longer matches.
    let later = decoded.sent_ns + 2 * message::HMAC_PERIOD_SECS * 1_000_000_000 + 1;
    assert!(!message::verify_sender_hmac(
        &key,
        &bob,
        &decoded.header_bytes,
        hmac,
        later
    ));
}

// Own vector: the sender HMAC of fixed inputs, reproduced exactly.
#[test]
fn sender_hmac_is_reproduced() {
    let v = vectors();
    let alice: Address = v["alice_address"].as_str().unwrap().parse().unwrap();
    let hmac = message::sender_hmac(
        &hex_field(&v, "invitation_key_material"),
        v["hmac_period"].as_u64().unwrap(),
        &alice,
        &hex_field(&v, "hmac_header"),
    )
    .unwrap();
    assert_eq!(hmac, hex_field(&v, "hmac"));
}

// Own vector: a V1 message from alice to bob, read by both.
#[test]
fn v1_message_decodes_for_both_parties() {
    let v = vectors();
    let bytes = hex_field(&v, "message_v1");
    for (name, is_sender) in [
        ("alice_private_key_bundle", true),
        ("bob_private_key_bundle", false),
    ] {
        let decoded = message::decode_v1(&bundle(&v, name), &bytes).unwrap();
        assert_eq!(decoded.payload, b"hello from alice");
        assert_eq!(decoded.viewer_is_sender, is_sender);
        assert_eq!(
            decoded.sender.wallet_address().to_checksum(),
            v["alice_address"].as_str().unwrap()
        );
        assert_eq!(
            decoded.recipient.wallet_address().to_checksum(),
            v["bob_address"].as_str().unwrap()
        );
    }
}
