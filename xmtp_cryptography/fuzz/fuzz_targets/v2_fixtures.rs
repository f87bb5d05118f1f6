//! Fixed keys for the V2 targets, decoded once from our own vectors
//! (`tests/vectors/v2/own.json`, made from the wallet keys 32 x 0xa1 for
//! alice and 32 x 0xb0 for bob), so every run sees the same viewer and the
//! seed inputs (`seeds.py`) decrypt for it and reach the deepest checks.
#![allow(dead_code)]

use std::sync::OnceLock;

use xmtp_cryptography::{
    v2::private_key::{PrivateKeyBundleV1, PrivateKeyBundleV2},
    wallet::{Address, LocalWallet},
};

const OWN: &str = include_str!("../../tests/vectors/v2/own.json");

/// The decoded vectors and the fixed identities made from them.
pub struct Fixtures {
    /// Alice's wallet (key 32 x 0xa1).
    pub alice_wallet: LocalWallet,
    /// Alice's address.
    pub alice: Address,
    /// Bob's address.
    pub bob: Address,
    /// Bob's V1 bundle: the viewer of V1 messages.
    pub bob_v1: PrivateKeyBundleV1,
    /// Bob's V2 bundle: the viewer of invitations.
    pub bob_v2: PrivateKeyBundleV2,
    /// The alice-bob conversation topic.
    pub topic: String,
    /// The alice-bob conversation key material.
    pub key_material: Vec<u8>,
    /// The sealed invitation's creation time.
    pub sealed_created_ns: u64,
}

fn field(v: &serde_json::Value, name: &str) -> Vec<u8> {
    hex::decode(v[name].as_str().expect("vector field")).expect("hex vector field")
}

/// The fixtures, built on first use.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let v: serde_json::Value = serde_json::from_str(OWN).expect("own.json");
        let alice_wallet = LocalWallet::from_key_bytes(&[0xa1; 32]).expect("alice wallet");
        let bob_wallet = LocalWallet::from_key_bytes(&[0xb0; 32]).expect("bob wallet");
        let bob_v1 =
            PrivateKeyBundleV1::decode(&field(&v, "bob_private_key_bundle")).expect("bob's bundle");
        assert_eq!(bob_v1.wallet_address().expect("bob"), bob_wallet.address());
        let bob_v2 = bob_v1.to_v2().expect("bob's V2 bundle");
        Fixtures {
            alice: alice_wallet.address(),
            alice_wallet,
            bob: bob_wallet.address(),
            bob_v1,
            bob_v2,
            topic: v["invitation_topic"].as_str().expect("topic").to_owned(),
            key_material: field(&v, "invitation_key_material"),
            sealed_created_ns: v["sealed_created_ns"].as_u64().expect("created_ns"),
        }
    })
}
