//! The pre-key service through the client against a real node: register a
//! bundle, list it by address, upload one-time keys (more than one request
//! holds), claim each once and then the fallback key, and revoke.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::HashSet;

use common::{client, now_ns, start_node};
use xmtp_networking::limits::MAX_KEYS_PER_REQUEST;
use xmtp_networking::XmtpApi;
use xmtp_proto::xmtp::v3::message_contents::{
    InstallationPublicKeyBundle, SignedCurve25519Key, WalletAssociation, WalletRevocation,
};

/// A bundle of the right shape. The node verifies no signature, so filler
/// bytes are enough to exercise storage and claiming.
fn bundle(address: &str, seed: u8) -> InstallationPublicKeyBundle {
    let signing_key = vec![seed; 32];
    InstallationPublicKeyBundle {
        identity_key: vec![seed.wrapping_add(1); 32],
        signing_key: signing_key.clone(),
        identity_key_signature: vec![seed; 64],
        fallback_key: Some(SignedCurve25519Key {
            key: vec![0xfb; 32],
            signature: vec![0xfb; 64],
        }),
        association: Some(WalletAssociation {
            text_version: 1,
            account_address: address.to_owned(),
            installation_key: signing_key,
            created_ns: now_ns(),
            wallet_signature: vec![seed; 65],
        }),
    }
}

fn one_time_key(n: u16) -> SignedCurve25519Key {
    let mut key = vec![0u8; 32];
    key[..2].copy_from_slice(&n.to_be_bytes());
    SignedCurve25519Key {
        key,
        signature: vec![1; 64],
    }
}

#[tokio::test]
async fn keys_are_claimed_once_each_then_the_fallback() {
    let node = start_node().await;
    let api = client(&node).await;
    let address = "0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B";
    let alice = bundle(address, 0x11);
    let installation = alice.signing_key.clone();
    api.register_installation(alice.clone()).await.unwrap();

    let listed = api
        .get_installations(vec![address.to_lowercase()])
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].bundles, vec![alice.clone()]);
    assert!(listed[0].revocations.is_empty());

    // More keys than one upload request may carry.
    let count = MAX_KEYS_PER_REQUEST as u16 + 50;
    let keys: Vec<SignedCurve25519Key> = (0..count).map(one_time_key).collect();
    let remaining = api
        .upload_one_time_keys(installation.clone(), keys.clone())
        .await
        .unwrap();
    assert_eq!(remaining, u32::from(count));
    assert_eq!(
        api.count_one_time_keys(installation.clone()).await.unwrap(),
        u32::from(count)
    );

    let mut claimed = HashSet::new();
    for _ in 0..count {
        let got = api
            .claim_one_time_keys(vec![installation.clone()])
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].installation_key, installation);
        assert!(!got[0].is_fallback);
        assert!(
            claimed.insert(got[0].key.clone().unwrap().key),
            "a key was handed out twice"
        );
    }
    assert_eq!(claimed, keys.iter().map(|k| k.key.clone()).collect());
    assert_eq!(
        api.count_one_time_keys(installation.clone()).await.unwrap(),
        0
    );

    for _ in 0..2 {
        let got = api
            .claim_one_time_keys(vec![installation.clone()])
            .await
            .unwrap();
        assert!(got[0].is_fallback);
        assert_eq!(got[0].key, alice.fallback_key);
    }
    node.shutdown().await;
}

#[tokio::test]
async fn claims_cover_many_installations_and_skip_unknown_ones() {
    let node = start_node().await;
    let api = client(&node).await;
    let bundles: Vec<_> = (0..3u8)
        .map(|i| bundle(&format!("0x{:040x}", i), 0x40 + i))
        .collect();
    for b in &bundles {
        api.register_installation(b.clone()).await.unwrap();
        api.upload_one_time_keys(
            b.signing_key.clone(),
            vec![one_time_key(u16::from(b.signing_key[0]))],
        )
        .await
        .unwrap();
    }
    let mut wanted: Vec<Vec<u8>> = bundles.iter().map(|b| b.signing_key.clone()).collect();
    wanted.push(vec![0xee; 32]);
    let got = api.claim_one_time_keys(wanted).await.unwrap();
    let installations: HashSet<Vec<u8>> = got.iter().map(|k| k.installation_key.clone()).collect();
    assert_eq!(
        installations,
        bundles.iter().map(|b| b.signing_key.clone()).collect()
    );
    assert!(got.iter().all(|k| !k.is_fallback));

    let addresses: Vec<String> = (0..3u8).map(|i| format!("0x{:040x}", i)).collect();
    let listed = api.get_installations(addresses.clone()).await.unwrap();
    assert_eq!(
        listed.iter().map(|a| a.bundles.len()).collect::<Vec<_>>(),
        [1, 1, 1]
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_published_revocation_is_listed_with_the_address() {
    let node = start_node().await;
    let api = client(&node).await;
    let address = "0x1111111111111111111111111111111111111111";
    let b = bundle(address, 0x22);
    api.register_installation(b.clone()).await.unwrap();
    let revocation = WalletRevocation {
        text_version: 1,
        account_address: address.to_owned(),
        installation_key: b.signing_key.clone(),
        revoked_ns: now_ns(),
        wallet_signature: vec![9; 65],
    };
    api.publish_revocation(revocation.clone()).await.unwrap();
    let listed = api
        .get_installations(vec![address.to_owned()])
        .await
        .unwrap();
    assert_eq!(listed[0].revocations, vec![revocation]);
    node.shutdown().await;
}
