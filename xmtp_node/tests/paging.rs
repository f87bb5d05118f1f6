#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Paging over thousands of envelopes, both directions, with and without
//! time filters: no duplicates, no gaps, the right order.

mod common;

use common::{client, env, query, query_all, start};
use xmtp_node::store::envelope_digest;
use xmtp_proto::xmtp::message_api::v1::{Envelope, PublishRequest, SortDirection};

fn order_key(e: &Envelope) -> (u64, [u8; 32]) {
    (
        e.timestamp_ns,
        envelope_digest(&e.content_topic, &e.message),
    )
}

#[tokio::test]
async fn thousands_of_envelopes_page_completely_in_both_directions() {
    let node = start().await;
    let mut c = client(&node).await;
    // 3,000 envelopes, five per timestamp so ties are common, published out
    // of order in batches, plus noise on another topic.
    let mut all: Vec<Envelope> = (0..3000u64)
        .map(|i| env("p", 1_000 + (i * 7919) % 600, i.to_be_bytes()))
        .collect();
    for chunk in all.chunks(250) {
        c.publish(PublishRequest {
            envelopes: chunk.to_vec(),
        })
        .await
        .unwrap();
        c.publish(PublishRequest {
            envelopes: vec![env("noise", chunk[0].timestamp_ns, b"n")],
        })
        .await
        .unwrap();
    }
    all.sort_by_key(order_key);

    for limit in [100, 37, 0] {
        let asc = query_all(&mut c, query("p", SortDirection::Ascending, limit)).await;
        assert_eq!(asc, all, "ascending, limit {limit}");
        let mut desc = query_all(&mut c, query("p", SortDirection::Descending, limit)).await;
        desc.reverse();
        assert_eq!(desc, all, "descending, limit {limit}");
    }

    for (start_ns, end_ns) in [(1_100, 1_300), (1_100, 0), (0, 1_050), (1_599, 1_599)] {
        let want: Vec<Envelope> = all
            .iter()
            .filter(|e| e.timestamp_ns >= start_ns && (end_ns == 0 || e.timestamp_ns <= end_ns))
            .cloned()
            .collect();
        assert!(!want.is_empty());
        for direction in [SortDirection::Ascending, SortDirection::Descending] {
            let mut q = query("p", direction, 64);
            q.start_time_ns = start_ns;
            q.end_time_ns = end_ns;
            let mut got = query_all(&mut c, q).await;
            if direction == SortDirection::Descending {
                got.reverse();
            }
            assert_eq!(got, want, "{start_ns}..={end_ns} {direction:?}");
        }
    }
}

#[tokio::test]
async fn paging_is_stable_while_new_envelopes_arrive() {
    let node = start().await;
    let mut c = client(&node).await;
    let old: Vec<Envelope> = (0..500u64).map(|i| env("s", i, i.to_le_bytes())).collect();
    c.publish(PublishRequest {
        envelopes: old.clone(),
    })
    .await
    .unwrap();
    // Read ascending page by page while newer envelopes are published.
    let mut q = query("s", SortDirection::Ascending, 50);
    let mut got = Vec::new();
    let mut t = 10_000u64;
    loop {
        let resp = c.query(q.clone()).await.unwrap().into_inner();
        got.extend(resp.envelopes);
        t += 1;
        c.publish(PublishRequest {
            envelopes: vec![env("s", t, b"new")],
        })
        .await
        .unwrap();
        match resp.paging_info.unwrap().cursor {
            Some(cursor) => q.paging_info.as_mut().unwrap().cursor = Some(cursor),
            None => break,
        }
    }
    let mut unique = got.clone();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "no duplicates");
    assert_eq!(&got[..500], &old[..], "no gaps, in order");
    assert!(got[500..].iter().all(|e| e.message == b"new"));
}
