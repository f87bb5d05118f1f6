#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! The pre-key service over gRPC: registration, uploads, lookups, and claims
//! that never hand out a key twice.

mod common;

use std::collections::HashSet;

use tonic::{transport::Channel, Code};
use xmtp_proto::xmtp::{
    key_api::v1::{
        key_api_client::KeyApiClient, ClaimOneTimeKeysRequest, CountOneTimeKeysRequest,
        GetInstallationsRequest, PublishRevocationRequest, RegisterInstallationRequest,
        UploadOneTimeKeysRequest,
    },
    v3::message_contents::{
        InstallationPublicKeyBundle, SignedCurve25519Key, WalletAssociation, WalletRevocation,
    },
};

async fn keys(node: &xmtp_node::RunningNode) -> KeyApiClient<Channel> {
    KeyApiClient::connect(node.grpc_url()).await.unwrap()
}

fn bundle(address: &str, key: u8) -> InstallationPublicKeyBundle {
    InstallationPublicKeyBundle {
        identity_key: vec![key ^ 0xaa; 32],
        signing_key: vec![key; 32],
        identity_key_signature: vec![1; 64],
        fallback_key: Some(SignedCurve25519Key {
            key: vec![0xfb; 32],
            signature: vec![2; 64],
        }),
        association: Some(WalletAssociation {
            text_version: 1,
            account_address: address.into(),
            installation_key: vec![key; 32],
            created_ns: 1,
            wallet_signature: vec![3; 65],
        }),
    }
}

fn otk(i: u32) -> SignedCurve25519Key {
    let mut key = vec![0u8; 32];
    key[..4].copy_from_slice(&i.to_be_bytes());
    SignedCurve25519Key {
        key,
        signature: vec![9; 64],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_hand_out_each_key_once_then_the_fallback() {
    let node = common::start().await;
    let mut c = keys(&node).await;
    c.register_installation(RegisterInstallationRequest {
        bundle: Some(bundle("0xA11CE", 1)),
    })
    .await
    .unwrap();
    for batch in 0..5u32 {
        let one_time_keys = (batch * 200..(batch + 1) * 200).map(otk).collect();
        c.upload_one_time_keys(UploadOneTimeKeysRequest {
            installation_key: vec![1; 32],
            one_time_keys,
        })
        .await
        .unwrap();
    }
    let count = c
        .count_one_time_keys(CountOneTimeKeysRequest {
            installation_key: vec![1; 32],
        })
        .await
        .unwrap();
    assert_eq!(count.into_inner().remaining, 1000);

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut c = keys(&node).await;
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..150 {
                let resp = c
                    .claim_one_time_keys(ClaimOneTimeKeysRequest {
                        installation_keys: vec![vec![1; 32]],
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(resp.keys.len(), 1);
                got.push(resp.keys.into_iter().next().unwrap());
            }
            got
        }));
    }
    let mut seen = HashSet::new();
    let mut fallbacks = 0;
    for t in tasks {
        for claimed in t.await.unwrap() {
            let key = claimed.key.unwrap();
            if claimed.is_fallback {
                assert_eq!(key.key, vec![0xfb; 32]);
                fallbacks += 1;
            } else {
                assert!(seen.insert(key.key), "a one-time key was handed out twice");
            }
        }
    }
    assert_eq!(seen.len(), 1000);
    assert_eq!(fallbacks, 200);
}

#[tokio::test]
async fn installations_are_listed_by_address_case_insensitively_with_revocations() {
    let node = common::start().await;
    let mut c = keys(&node).await;
    c.register_installation(RegisterInstallationRequest {
        bundle: Some(bundle("0xBoB", 2)),
    })
    .await
    .unwrap();
    c.register_installation(RegisterInstallationRequest {
        bundle: Some(bundle("0xBOB", 3)),
    })
    .await
    .unwrap();
    let revocation = WalletRevocation {
        text_version: 1,
        account_address: "0xBoB".into(),
        installation_key: vec![2; 32],
        revoked_ns: 9,
        wallet_signature: vec![4; 65],
    };
    c.publish_revocation(PublishRevocationRequest {
        revocation: Some(revocation.clone()),
    })
    .await
    .unwrap();
    let resp = c
        .get_installations(GetInstallationsRequest {
            account_addresses: vec!["0xbob".into(), "0xnobody".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.installations.len(), 2);
    let bob = &resp.installations[0];
    assert_eq!(bob.account_address, "0xbob");
    assert_eq!(
        bob.bundles,
        vec![bundle("0xBoB", 2), bundle("0xBOB", 3)],
        "returned as given"
    );
    assert_eq!(bob.revocations, vec![revocation]);
    assert!(resp.installations[1].bundles.is_empty());
}

#[tokio::test]
async fn malformed_key_requests_are_refused() {
    let node = common::start().await;
    let mut c = keys(&node).await;
    let mut short = bundle("0x1", 4);
    short.identity_key = vec![0; 31];
    let mut mismatched = bundle("0x1", 4);
    mismatched.association.as_mut().unwrap().installation_key = vec![5; 32];
    let mut no_fallback = bundle("0x1", 4);
    no_fallback.fallback_key = None;
    let mut bad_sig = bundle("0x1", 4);
    bad_sig.association.as_mut().unwrap().wallet_signature = vec![0; 10];
    for b in [short, mismatched, no_fallback, bad_sig] {
        let err = c
            .register_installation(RegisterInstallationRequest { bundle: Some(b) })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    }
    assert_eq!(
        c.register_installation(RegisterInstallationRequest { bundle: None })
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    c.register_installation(RegisterInstallationRequest {
        bundle: Some(bundle("0x1", 4)),
    })
    .await
    .unwrap();
    let too_many = (0..201).map(otk).collect();
    let err = c
        .upload_one_time_keys(UploadOneTimeKeysRequest {
            installation_key: vec![4; 32],
            one_time_keys: too_many,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut bad = otk(1);
    bad.signature = vec![0; 63];
    let err = c
        .upload_one_time_keys(UploadOneTimeKeysRequest {
            installation_key: vec![4; 32],
            one_time_keys: vec![bad],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = c
        .claim_one_time_keys(ClaimOneTimeKeysRequest {
            installation_keys: vec![vec![1; 8]],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = c
        .get_installations(GetInstallationsRequest {
            account_addresses: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // Unknown installations: upload is NotFound, a claim is simply empty.
    let err = c
        .upload_one_time_keys(UploadOneTimeKeysRequest {
            installation_key: vec![8; 32],
            one_time_keys: vec![otk(1)],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let resp = c
        .claim_one_time_keys(ClaimOneTimeKeysRequest {
            installation_keys: vec![vec![8; 32]],
        })
        .await
        .unwrap();
    assert!(resp.into_inner().keys.is_empty());
}
