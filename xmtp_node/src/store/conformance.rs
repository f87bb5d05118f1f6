//! The behaviour every [`Store`] must have, as one suite generic over the
//! store, so the SQLite store and a PostgreSQL store are held to the same
//! contract. Each check gets a fresh, empty store from the factory.

use std::{collections::HashSet, future::Future, sync::Arc};

use xmtp_proto::xmtp::{
    message_api::v1::Envelope,
    v3::message_contents::{
        InstallationPublicKeyBundle, SignedCurve25519Key, WalletAssociation, WalletRevocation,
    },
};

use super::*;

/// A query of everything on one topic, 100 a page.
pub(crate) fn query_all(topic: &str, direction: Direction) -> EnvelopeQuery {
    EnvelopeQuery {
        topics: vec![topic.to_owned()],
        start_ns: None,
        end_ns: None,
        limit: 100,
        direction,
        cursor: None,
        max_bytes: 4 << 20,
    }
}

fn env(topic: &str, t: u64, msg: &[u8]) -> Envelope {
    Envelope {
        content_topic: topic.into(),
        timestamp_ns: t,
        message: msg.to_vec(),
    }
}

/// Runs every check against fresh stores from `make`.
pub(crate) async fn run_all<S, F, Fut>(make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    duplicates_are_stored_once(make().await).await;
    paging_is_complete_and_ordered_both_ways(make().await).await;
    time_filters_are_inclusive(make().await).await;
    multi_topic_query_merges_in_order(make().await).await;
    pages_stop_at_the_byte_budget(make().await).await;
    installations_register_replace_and_list(make().await).await;
    one_time_keys_are_claimed_once_then_fallback(make().await).await;
    concurrent_claims_never_share_a_key(Arc::new(make().await)).await;
    upload_checks_registration_and_pool_limit(make().await).await;
}

async fn duplicates_are_stored_once<S: Store>(store: S) {
    let e = env("dup", 5, b"same");
    let first = store.publish(vec![e.clone(), e.clone()]).await.unwrap();
    assert_eq!(
        first,
        PublishOutcome {
            stored: 1,
            duplicates: 1
        }
    );
    let again = store.publish(vec![e.clone()]).await.unwrap();
    assert_eq!(
        again,
        PublishOutcome {
            stored: 0,
            duplicates: 1
        }
    );
    // Same message at another time is a different envelope.
    store.publish(vec![env("dup", 6, b"same")]).await.unwrap();
    let page = store
        .query(query_all("dup", Direction::Ascending))
        .await
        .unwrap();
    assert_eq!(page.envelopes, vec![e, env("dup", 6, b"same")]);
}

/// Reads every page of `q`, returning the envelopes in order.
async fn read_all<S: Store>(store: &S, mut q: EnvelopeQuery) -> Vec<Envelope> {
    let mut out = Vec::new();
    loop {
        let page = store.query(q.clone()).await.unwrap();
        assert!(page.envelopes.len() <= q.limit as usize);
        out.extend(page.envelopes);
        match page.next {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
}

async fn paging_is_complete_and_ordered_both_ways<S: Store>(store: S) {
    // 250 envelopes, with many ties on the timestamp (broken by digest).
    let all: Vec<Envelope> = (0..250u64)
        .map(|i| env("page", i / 3, &i.to_be_bytes()))
        .collect();
    store.publish(all[..120].to_vec()).await.unwrap();
    store.publish(all[120..].to_vec()).await.unwrap();
    let mut expected = all.clone();
    expected.sort_by_key(|e| {
        (
            e.timestamp_ns,
            envelope_digest(&e.content_topic, &e.message),
        )
    });

    let mut q = query_all("page", Direction::Ascending);
    q.limit = 7;
    assert_eq!(read_all(&store, q.clone()).await, expected);
    q.direction = Direction::Descending;
    let mut desc = read_all(&store, q).await;
    desc.reverse();
    assert_eq!(desc, expected);
    let first = store
        .query(query_all("page", Direction::Ascending))
        .await
        .unwrap();
    assert_eq!(first.envelopes.len(), 100);
    assert!(first.next.is_some(), "a full page carries a cursor");
    assert!(store
        .query(query_all("other", Direction::Ascending))
        .await
        .unwrap()
        .envelopes
        .is_empty());
}

async fn time_filters_are_inclusive<S: Store>(store: S) {
    let all: Vec<Envelope> = (1..=50u64)
        .map(|i| env("time", i * 10, &i.to_le_bytes()))
        .collect();
    store.publish(all.clone()).await.unwrap();
    for direction in [Direction::Ascending, Direction::Descending] {
        let mut q = query_all("time", direction);
        q.start_ns = Some(100);
        q.end_ns = Some(200);
        q.limit = 4;
        let mut got = read_all(&store, q).await;
        if direction == Direction::Descending {
            got.reverse();
        }
        let want: Vec<Envelope> = all
            .iter()
            .filter(|e| (100..=200).contains(&e.timestamp_ns))
            .cloned()
            .collect();
        assert_eq!(got, want);
    }
    let mut q = query_all("time", Direction::Ascending);
    q.start_ns = Some(300);
    q.end_ns = Some(299);
    assert!(store.query(q).await.unwrap().envelopes.is_empty());
}

async fn multi_topic_query_merges_in_order<S: Store>(store: S) {
    let a: Vec<Envelope> = (0..30u64).map(|i| env("a", i * 2, b"a")).collect();
    let b: Vec<Envelope> = (0..30u64).map(|i| env("b", i * 2 + 1, b"b")).collect();
    store
        .publish(a.iter().chain(&b).cloned().collect())
        .await
        .unwrap();
    let mut q = query_all("a", Direction::Descending);
    q.topics.push("b".into());
    q.limit = 9;
    let got = read_all(&store, q).await;
    let times: Vec<u64> = got.iter().map(|e| e.timestamp_ns).collect();
    let want: Vec<u64> = (0..60u64).rev().collect();
    assert_eq!(times, want);
}

async fn pages_stop_at_the_byte_budget<S: Store>(store: S) {
    let all: Vec<Envelope> = (0..10u64)
        .map(|i| env("big", i, &vec![i as u8; 1000]))
        .collect();
    store.publish(all.clone()).await.unwrap();
    let mut q = query_all("big", Direction::Ascending);
    q.max_bytes = 2500;
    let page = store.query(q.clone()).await.unwrap();
    assert_eq!(page.envelopes.len(), 2);
    assert!(page.next.is_some());
    assert_eq!(read_all(&store, q).await, all);
}

fn bundle(address: &str, key: u8, fallback: u8) -> InstallationPublicKeyBundle {
    InstallationPublicKeyBundle {
        identity_key: vec![key ^ 0x55; 32],
        signing_key: vec![key; 32],
        identity_key_signature: vec![1; 64],
        fallback_key: Some(SignedCurve25519Key {
            key: vec![fallback; 32],
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

fn record(address: &str, key: u8, fallback: u8) -> InstallationRecord {
    InstallationRecord {
        address_key: address.to_lowercase(),
        installation_key: vec![key; 32],
        bundle: bundle(address, key, fallback),
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

async fn installations_register_replace_and_list<S: Store>(store: S) {
    store
        .register_installation(record("0xAbC", 1, 10))
        .await
        .unwrap();
    store
        .register_installation(record("0xAbC", 2, 20))
        .await
        .unwrap();
    store
        .register_installation(record("0xAbC", 1, 11))
        .await
        .unwrap();
    let revocation = WalletRevocation {
        text_version: 1,
        account_address: "0xAbC".into(),
        installation_key: vec![2; 32],
        revoked_ns: 5,
        wallet_signature: vec![4; 65],
    };
    store
        .publish_revocation(RevocationRecord {
            address_key: "0xabc".into(),
            installation_key: vec![2; 32],
            revocation: revocation.clone(),
        })
        .await
        .unwrap();
    let got = store
        .get_installations(vec!["0xabc".into(), "0xdef".into()])
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    let fallbacks: HashSet<u8> = got[0]
        .bundles
        .iter()
        .map(|b| b.fallback_key.as_ref().unwrap().key[0])
        .collect();
    assert_eq!(
        fallbacks,
        HashSet::from([11, 20]),
        "re-registration replaces the bundle"
    );
    assert_eq!(
        got[0].bundles[0]
            .association
            .as_ref()
            .unwrap()
            .account_address,
        "0xAbC"
    );
    assert_eq!(got[0].revocations, vec![revocation]);
    assert_eq!(got[1], StoredInstallations::default());
}

async fn one_time_keys_are_claimed_once_then_fallback<S: Store>(store: S) {
    store
        .register_installation(record("0x1", 7, 70))
        .await
        .unwrap();
    let remaining = store
        .upload_one_time_keys(vec![7; 32], vec![otk(1), otk(2), otk(2)], 100)
        .await
        .unwrap();
    assert_eq!(remaining, 2);
    assert_eq!(store.count_one_time_keys(vec![7; 32]).await.unwrap(), 2);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let claimed = store
            .claim_one_time_keys(vec![vec![7; 32], vec![99; 32]])
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "unknown installations are skipped");
        assert!(!claimed[0].is_fallback);
        seen.push(claimed[0].key.clone());
    }
    seen.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(seen, vec![otk(1), otk(2)]);
    assert_eq!(store.count_one_time_keys(vec![7; 32]).await.unwrap(), 0);
    let claimed = store.claim_one_time_keys(vec![vec![7; 32]]).await.unwrap();
    assert!(claimed[0].is_fallback);
    assert_eq!(claimed[0].key.key, vec![70; 32]);
    // A claimed key uploaded again is not handed out again.
    assert_eq!(
        store
            .upload_one_time_keys(vec![7; 32], vec![otk(1)], 100)
            .await
            .unwrap(),
        0
    );
}

async fn concurrent_claims_never_share_a_key<S: Store>(store: Arc<S>) {
    store
        .register_installation(record("0x2", 8, 80))
        .await
        .unwrap();
    store
        .upload_one_time_keys(vec![8; 32], (0..100).map(otk).collect(), 1000)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..150 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.claim_one_time_keys(vec![vec![8; 32]]).await.unwrap()
        }));
    }
    let mut keys = HashSet::new();
    let mut fallbacks = 0;
    for t in tasks {
        let claimed = t.await.unwrap();
        assert_eq!(claimed.len(), 1);
        if claimed[0].is_fallback {
            fallbacks += 1;
        } else {
            assert!(
                keys.insert(claimed[0].key.key.clone()),
                "a one-time key was handed out twice"
            );
        }
    }
    assert_eq!(keys.len(), 100);
    assert_eq!(fallbacks, 50);
}

async fn upload_checks_registration_and_pool_limit<S: Store>(store: S) {
    let err = store
        .upload_one_time_keys(vec![5; 32], vec![otk(1)], 10)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
    store
        .register_installation(record("0x3", 5, 50))
        .await
        .unwrap();
    assert_eq!(
        store
            .upload_one_time_keys(vec![5; 32], (0..10).map(otk).collect(), 10)
            .await
            .unwrap(),
        10
    );
    let err = store
        .upload_one_time_keys(vec![5; 32], vec![otk(10)], 10)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LimitReached(_)));
    assert_eq!(
        store.count_one_time_keys(vec![5; 32]).await.unwrap(),
        10,
        "a refused upload adds nothing"
    );
}
