//! Following the node's query cursors until the last page.
//!
//! The node answers a query with at most one page (100 envelopes unless the
//! request asks for fewer) and, when the page is full, a cursor naming the
//! last envelope it returned (`sender_time_ns` and
//! `digest = sha256(content_topic || message)`). Sending the same request
//! again with that cursor yields the next page. These helpers do that until a
//! page comes back without a cursor or empty, as a stream so that a topic of
//! any size can be read without holding it in memory.
//!
//! A node that answers twice with the same cursor would make this loop
//! forever; that is reported as [`ApiError::Decode`] instead.

use futures::{stream, StreamExt, TryStreamExt};
use xmtp_proto::xmtp::message_api::v1::{
    Envelope, PagingInfo, QueryRequest, QueryResponse, SortDirection,
};

use crate::api::{PageStream, QueriedEnvelopes};
use crate::{ApiError, XmtpApi};

/// A query of one topic between two times (0 means no bound) in a direction,
/// with the node's default page size.
pub fn topic_query(
    topic: &str,
    start_ns: u64,
    end_ns: u64,
    direction: SortDirection,
) -> QueryRequest {
    QueryRequest {
        content_topics: vec![topic.to_owned()],
        start_time_ns: start_ns,
        end_time_ns: end_ns,
        paging_info: Some(PagingInfo {
            limit: 0,
            cursor: None,
            direction: direction as i32,
        }),
    }
}

/// The request for the page after `response`, or `None` after the last page.
pub fn next_page_request(
    request: &QueryRequest,
    response: &QueryResponse,
) -> Result<Option<QueryRequest>, ApiError> {
    let Some(cursor) = response
        .paging_info
        .as_ref()
        .and_then(|info| info.cursor.clone())
    else {
        return Ok(None);
    };
    if response.envelopes.is_empty() {
        return Ok(None);
    }
    let previous = request
        .paging_info
        .as_ref()
        .and_then(|info| info.cursor.as_ref());
    if previous == Some(&cursor) {
        return Err(ApiError::Decode(
            "the node returned the same query cursor twice; paging would never end".into(),
        ));
    }
    let mut next = request.clone();
    let info = next.paging_info.get_or_insert_with(PagingInfo::default);
    info.cursor = Some(cursor);
    Ok(Some(next))
}

/// Every page of `request`, following cursors.
pub fn pages<A: XmtpApi + ?Sized>(api: &A, request: QueryRequest) -> PageStream<'_> {
    stream::try_unfold(Some(request), move |next| async move {
        let Some(request) = next else {
            return Ok(None);
        };
        let response = api.query(request.clone()).await?;
        let next = next_page_request(&request, &response)?;
        Ok(Some((response, next)))
    })
    .boxed()
}

/// Every envelope of `request`, page after page.
pub fn envelopes<A: XmtpApi + ?Sized>(api: &A, request: QueryRequest) -> QueriedEnvelopes<'_> {
    pages(api, request)
        .map_ok(|page| stream::iter(page.envelopes.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
}

/// Every envelope of `request`, collected.
pub async fn collect<A: XmtpApi + ?Sized>(
    api: &A,
    request: QueryRequest,
) -> Result<Vec<Envelope>, ApiError> {
    envelopes(api, request).try_collect().await
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use xmtp_proto::xmtp::key_api::v1::{AddressInstallations, ClaimedKey};
    use xmtp_proto::xmtp::message_api::v1::{cursor, Cursor, IndexCursor};
    use xmtp_proto::xmtp::v3::message_contents::{
        InstallationPublicKeyBundle, SignedCurve25519Key, WalletRevocation,
    };

    use super::*;
    use crate::api::EnvelopeStream;

    /// An in-memory topic that pages like the node (cursor on full pages),
    /// optionally repeating its first cursor forever like a broken node.
    struct FakeTopic {
        envelopes: Vec<Envelope>,
        stuck_cursor: bool,
    }

    fn unsupported<T>() -> Result<T, ApiError> {
        Err(ApiError::NotFound("not part of this fake".into()))
    }

    #[async_trait]
    impl XmtpApi for FakeTopic {
        async fn publish(&self, _: Vec<Envelope>) -> Result<(), ApiError> {
            unsupported()
        }
        async fn query(&self, request: QueryRequest) -> Result<QueryResponse, ApiError> {
            let info = request.paging_info.unwrap_or_default();
            let limit = if info.limit == 0 {
                100
            } else {
                info.limit as usize
            };
            let ascending = info.direction == SortDirection::Ascending as i32;
            let after = info
                .cursor
                .and_then(|c| c.cursor)
                .map(|cursor::Cursor::Index(i)| i.sender_time_ns);
            let mut matching: Vec<Envelope> = self
                .envelopes
                .iter()
                .filter(|e| request.start_time_ns == 0 || e.timestamp_ns >= request.start_time_ns)
                .filter(|e| request.end_time_ns == 0 || e.timestamp_ns <= request.end_time_ns)
                .filter(|e| match (after, self.stuck_cursor) {
                    (Some(t), false) if ascending => e.timestamp_ns > t,
                    (Some(t), false) => e.timestamp_ns < t,
                    _ => true,
                })
                .cloned()
                .collect();
            matching.sort_by_key(|e| e.timestamp_ns);
            if !ascending {
                matching.reverse();
            }
            matching.truncate(limit);
            let cursor = (matching.len() == limit).then(|| Cursor {
                cursor: Some(cursor::Cursor::Index(IndexCursor {
                    digest: vec![],
                    sender_time_ns: matching.last().map_or(0, |e| e.timestamp_ns),
                })),
            });
            Ok(QueryResponse {
                envelopes: matching,
                paging_info: Some(PagingInfo {
                    limit: limit as u32,
                    cursor,
                    direction: info.direction,
                }),
            })
        }
        async fn batch_query(&self, _: Vec<QueryRequest>) -> Result<Vec<QueryResponse>, ApiError> {
            unsupported()
        }
        async fn subscribe(&self, _: Vec<String>) -> Result<EnvelopeStream, ApiError> {
            unsupported()
        }
        async fn subscribe_all(&self) -> Result<EnvelopeStream, ApiError> {
            unsupported()
        }
        async fn register_installation(
            &self,
            _: InstallationPublicKeyBundle,
        ) -> Result<(), ApiError> {
            unsupported()
        }
        async fn upload_one_time_keys(
            &self,
            _: Vec<u8>,
            _: Vec<SignedCurve25519Key>,
        ) -> Result<u32, ApiError> {
            unsupported()
        }
        async fn count_one_time_keys(&self, _: Vec<u8>) -> Result<u32, ApiError> {
            unsupported()
        }
        async fn get_installations(
            &self,
            _: Vec<String>,
        ) -> Result<Vec<AddressInstallations>, ApiError> {
            unsupported()
        }
        async fn claim_one_time_keys(&self, _: Vec<Vec<u8>>) -> Result<Vec<ClaimedKey>, ApiError> {
            unsupported()
        }
        async fn publish_revocation(&self, _: WalletRevocation) -> Result<(), ApiError> {
            unsupported()
        }
    }

    fn topic(count: u64) -> FakeTopic {
        let envelopes = (1..=count)
            .map(|t| Envelope {
                content_topic: "t".into(),
                timestamp_ns: t,
                message: t.to_be_bytes().to_vec(),
            })
            .collect();
        FakeTopic {
            envelopes,
            stuck_cursor: false,
        }
    }

    #[tokio::test]
    async fn query_all_reads_every_page_in_both_directions() {
        for count in [0, 1, 99, 100, 101, 250, 300] {
            let api = topic(count);
            let up = api
                .query_all("t", 0, 0, SortDirection::Ascending)
                .await
                .unwrap();
            let times: Vec<u64> = up.iter().map(|e| e.timestamp_ns).collect();
            assert_eq!(times, (1..=count).collect::<Vec<_>>(), "ascending, {count}");
            let down = api
                .query_all("t", 0, 0, SortDirection::Descending)
                .await
                .unwrap();
            let times: Vec<u64> = down.iter().map(|e| e.timestamp_ns).collect();
            assert_eq!(
                times,
                (1..=count).rev().collect::<Vec<_>>(),
                "descending, {count}"
            );
        }
    }

    #[tokio::test]
    async fn pages_keep_time_bounds_and_page_size() {
        let api = topic(500);
        let mut request = topic_query("t", 101, 350, SortDirection::Ascending);
        request.paging_info.as_mut().unwrap().limit = 40;
        let pages: Vec<QueryResponse> = api.query_pages(request).try_collect().await.unwrap();
        assert!(pages.iter().all(|p| p.envelopes.len() <= 40));
        let times: Vec<u64> = pages
            .iter()
            .flat_map(|p| p.envelopes.iter().map(|e| e.timestamp_ns))
            .collect();
        assert_eq!(times, (101..=350).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_repeated_cursor_is_an_error_not_an_endless_loop() {
        let api = FakeTopic {
            stuck_cursor: true,
            ..topic(300)
        };
        let result = api.query_all("t", 0, 0, SortDirection::Ascending).await;
        assert!(matches!(result, Err(ApiError::Decode(_))), "{result:?}");
    }
}
