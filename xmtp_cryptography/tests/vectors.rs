#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Fixed vectors: a change that alters bytes on the wire fails here.
//!
//! `vectors/x3dh.json` and `vectors/aead.json` come from `vectors/generate.py`,
//! an independent implementation over Python's `cryptography` (OpenSSL).
//! `vectors/association.json` pins the signed texts and their signatures.

use serde_json::Value;
use xmtp_cryptography::{
    aead::{self, SecretKey},
    association::{association_text, revocation_text, Association, Revocation},
    installation::InstallationId,
    wallet::{recover_address, Address, LocalWallet},
    x3dh::{self, InitialMessage, PreKeyBundle, X25519KeyPair, X25519PublicKey},
};
use xmtp_proto::xmtp::v3::message_contents::{WalletAssociation, WalletRevocation};

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn bytes(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().unwrap()).unwrap()
}

fn array32(value: &Value) -> [u8; 32] {
    bytes(value).try_into().unwrap()
}

#[test]
fn association_and_revocation_match_their_vectors() {
    let v = load("association.json");
    let wallet = LocalWallet::from_hex(v["wallet_key"].as_str().unwrap()).unwrap();
    let address: Address = v["account_address"].as_str().unwrap().parse().unwrap();
    assert_eq!(wallet.address(), address);
    let installation = InstallationId::from_slice(&bytes(&v["installation_key"])).unwrap();
    let created_ns = v["created_ns"].as_u64().unwrap();
    let revoked_ns = v["revoked_ns"].as_u64().unwrap();

    let text = association_text(&address, &installation, created_ns).unwrap();
    assert_eq!(text, v["association_text"].as_str().unwrap());
    let text = revocation_text(&address, &installation, revoked_ns).unwrap();
    assert_eq!(text, v["revocation_text"].as_str().unwrap());

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let association = rt
        .block_on(Association::create(&wallet, installation, created_ns))
        .unwrap();
    assert_eq!(
        association.signature().as_bytes().to_vec(),
        bytes(&v["association_signature"])
    );
    let revocation = rt
        .block_on(Revocation::create(&wallet, installation, revoked_ns))
        .unwrap();
    assert_eq!(
        revocation.to_proto().wallet_signature,
        bytes(&v["revocation_signature"])
    );

    // The vectors verify from the wire, independent of signing.
    let proto = WalletAssociation {
        text_version: 1,
        account_address: address.to_string(),
        installation_key: installation.as_bytes().to_vec(),
        created_ns,
        wallet_signature: bytes(&v["association_signature"]),
    };
    assert_eq!(
        Association::from_proto(&proto).unwrap().account_address(),
        address
    );
    let proto = WalletRevocation {
        text_version: 1,
        account_address: address.to_string(),
        installation_key: installation.as_bytes().to_vec(),
        revoked_ns,
        wallet_signature: bytes(&v["revocation_signature"]),
    };
    assert_eq!(
        Revocation::from_proto(&proto).unwrap().installation_id(),
        installation
    );
}

#[test]
fn eip191_matches_viems_published_signature() {
    let v = load("association.json");
    let wallet = LocalWallet::from_hex(v["wallet_key"].as_str().unwrap()).unwrap();
    let text = v["eip191_hello_world"]["text"].as_str().unwrap();
    let expected = bytes(&v["eip191_hello_world"]["signature"]);
    assert_eq!(
        wallet.sign_text_sync(text).unwrap().as_bytes().to_vec(),
        expected
    );
    assert_eq!(recover_address(text, &expected).unwrap(), wallet.address());
}

#[test]
fn x3dh_matches_the_independent_vector() {
    let v = load("x3dh.json");
    let secret = |name: &str| X25519KeyPair::from_secret_bytes(array32(&v["secret_keys"][name]));
    let (ik_a, ik_b, spk_b, opk_b, ek_a) = (
        secret("ik_a"),
        secret("ik_b"),
        secret("spk_b"),
        secret("opk_b"),
        secret("ek_a"),
    );
    for (name, pair) in [
        ("ik_a", &ik_a),
        ("ik_b", &ik_b),
        ("spk_b", &spk_b),
        ("opk_b", &opk_b),
        ("ek_a", &ek_a),
    ] {
        assert_eq!(
            pair.public_key().as_bytes().to_vec(),
            bytes(&v["public_keys"][name]),
            "{name}"
        );
    }
    let signer = ed25519_dalek::SigningKey::from_bytes(&array32(&v["secret_keys"]["ed25519_seed"]));
    assert_eq!(
        signer.verifying_key().to_bytes().to_vec(),
        bytes(&v["public_keys"]["signing_key"])
    );
    let signature = ed25519_dalek::Signer::sign(
        &signer,
        &x3dh::signed_pre_key_message(&ik_b.public_key(), &spk_b.public_key()),
    )
    .to_bytes();
    assert_eq!(signature.to_vec(), bytes(&v["signed_pre_key_signature"]));

    let mut bundle = PreKeyBundle {
        identity_key: ik_b.public_key(),
        signing_key: InstallationId::from_bytes(signer.verifying_key().to_bytes()),
        signed_pre_key: spk_b.public_key(),
        signed_pre_key_signature: signature,
        one_time_pre_key: Some(opk_b.public_key()),
    };
    let (alice, message) = x3dh::initiate_with_ephemeral(&ik_a, &bundle, &ek_a).unwrap();
    assert_eq!(
        hex::encode(alice.shared_secret.expose_secret()),
        v["sk_with_one_time_pre_key"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode(alice.initial_message_key().expose_secret()),
        v["initial_message_key_with_one_time_pre_key"]
            .as_str()
            .unwrap()
    );
    assert_eq!(alice.associated_data, bytes(&v["associated_data"]));
    let bob = x3dh::respond(
        &ik_b,
        &spk_b,
        Some(&opk_b),
        &InitialMessage::from_bytes(&message.to_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(bob.shared_secret, alice.shared_secret);

    bundle.one_time_pre_key = None;
    let (alice, message) = x3dh::initiate_with_ephemeral(&ik_a, &bundle, &ek_a).unwrap();
    assert_eq!(
        hex::encode(alice.shared_secret.expose_secret()),
        v["sk_without_one_time_pre_key"].as_str().unwrap()
    );
    let bob = x3dh::respond(&ik_b, &spk_b, None, &message).unwrap();
    assert_eq!(bob.shared_secret, alice.shared_secret);
    assert_eq!(
        message.ephemeral_key,
        X25519PublicKey::from_bytes(array32(&v["public_keys"]["ek_a"]))
    );
}

#[test]
fn aead_matches_the_independent_vector() {
    let v = load("aead.json");
    let key = SecretKey::from_slice(&bytes(&v["key"])).unwrap();
    let nonce: [u8; 12] = bytes(&v["nonce"]).try_into().unwrap();
    let (ad, plaintext) = (bytes(&v["ad"]), bytes(&v["plaintext"]));
    let ciphertext = aead::encrypt_with_nonce(&key, &nonce, &ad, &plaintext).unwrap();
    assert_eq!(ciphertext, bytes(&v["ciphertext_and_tag"]));
    assert_eq!(
        aead::decrypt(&key, &nonce, &ad, &ciphertext).unwrap(),
        plaintext
    );

    let h = &v["hkdf"];
    let derived = SecretKey::derive(&bytes(&h["salt"]), &bytes(&h["ikm"]), &bytes(&h["info"]));
    assert_eq!(derived.expose_secret().to_vec(), bytes(&h["okm"]));
    let subkey = key.derive_subkey(&bytes(&v["subkey"]["info"]));
    assert_eq!(subkey.expose_secret().to_vec(), bytes(&v["subkey"]["okm"]));
    assert_eq!(
        aead::open(&subkey, &ad, &bytes(&v["sealed_under_subkey"])).unwrap(),
        plaintext
    );
}

#[test]
fn aes_gcm_matches_the_gcm_spec_test_case_16() {
    // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16 (AES-256, with AAD).
    let key = SecretKey::from_slice(
        &hex::decode("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308").unwrap(),
    )
    .unwrap();
    let nonce: [u8; 12] = hex::decode("cafebabefacedbaddecaf888")
        .unwrap()
        .try_into()
        .unwrap();
    let plaintext = hex::decode("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39").unwrap();
    let ad = hex::decode("feedfacedeadbeeffeedfacedeadbeefabaddad2").unwrap();
    let out = aead::encrypt_with_nonce(&key, &nonce, &ad, &plaintext).unwrap();
    assert_eq!(
        hex::encode(&out),
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662\
         76fc6ece0f4e1768cddf8853bb2d551b"
    );
}
