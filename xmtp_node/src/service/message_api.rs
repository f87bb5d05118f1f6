//! `xmtp.message_api.v1.MessageApi` semantics, as XMTP's node has them.
//!
//! - **Publish**: every envelope is checked first (topic 1..=300 bytes,
//!   message at most 1 MiB, at most [`MAX_PUBLISH_ENVELOPES`] per request);
//!   one bad envelope refuses the whole request with InvalidArgument. The
//!   reply is sent only after the store has committed durably. Duplicates
//!   (same topic, sender time and message) are stored and announced once.
//! - **Query**: direction defaults to descending; `limit` 0 means 100 and
//!   anything above 100 is cut to 100. Pages are ordered by
//!   `(sender_time_ns, digest)`, so ties on the time are broken by the digest
//!   and paging is stable. `start_time_ns`/`end_time_ns` are inclusive bounds
//!   on the sender time, 0 meaning unbounded (as XMTP's node). A page that is
//!   full carries the cursor of its last envelope; a page may also end early
//!   to keep a response under [`PAGE_BYTE_BUDGET`] bytes, and then carries a
//!   cursor too. A cursor's digest must be 32 bytes.
//! - **BatchQuery**: at most [`MAX_BATCH_QUERIES`] queries, answered in order;
//!   they share one byte budget.
//! - **Subscribe / SubscribeAll / Subscribe2**: see [`crate::hub`].
//!
//! With `--require-auth`, a publish first needs a valid wallet token (see
//! [`crate::auth`]): Unauthenticated or PermissionDenied otherwise.
//!
//! Publishes cost one publish token per envelope; each query, batch entry and
//! subscription costs one read token.

use std::{collections::HashSet, sync::Arc, time::Instant};

use xmtp_proto::xmtp::message_api::v1::{
    cursor, BatchQueryRequest, BatchQueryResponse, Cursor, IndexCursor, PagingInfo, PublishRequest,
    PublishResponse, QueryRequest, QueryResponse, SortDirection, SubscribeRequest,
};

use super::{check_topic, ApiError, Client, Shared, MAX_MESSAGE_BYTES};
use crate::{
    hub::{Interest, Subscription},
    metrics::{Metrics, Rpc},
    store::{Direction, EnvelopeQuery, PageCursor, DIGEST_LEN},
};

/// Largest page.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Most queries in a batch.
pub const MAX_BATCH_QUERIES: usize = 50;
/// Most envelopes in one publish.
pub const MAX_PUBLISH_ENVELOPES: usize = 1000;
/// Most topics in one query.
pub const MAX_QUERY_TOPICS: usize = 100;
/// Most topics in one subscription.
pub const MAX_SUBSCRIBE_TOPICS: usize = 10_000;
/// Message and topic bytes after which a page (or a whole batch) ends early,
/// so that a response stays under gRPC's usual 4 MiB decoding limit.
pub const PAGE_BYTE_BUDGET: usize = 3 << 20;

/// The message API. Cheap to clone.
#[derive(Clone)]
pub struct MessageService {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MessageService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageService").finish_non_exhaustive()
    }
}

impl MessageService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Stores the envelopes durably, then acknowledges. `authorization` is
    /// the request's `authorization` metadata or header, read only when the
    /// node requires tokens ([`crate::auth`]). A publish that needs a token
    /// is charged to the rate limit first (so that a flood of bad tokens
    /// costs no signature checks beyond the limit), then its token is checked,
    /// then the envelopes, as XMTP's node ordered it; other publishes are
    /// checked, then charged.
    pub async fn publish(
        &self,
        client: Client,
        authorization: Option<&str>,
        req: PublishRequest,
    ) -> Result<PublishResponse, ApiError> {
        let start = Instant::now();
        let s = &self.shared;
        let cost = u32::try_from(req.envelopes.len()).unwrap_or(u32::MAX);
        let needs_token = s.auth.required() && crate::auth::requires_token(&req);
        if needs_token {
            s.charge(&s.publish_limiter, client, cost.max(1))?;
        }
        s.authenticate(client, authorization, &req)?;
        if req.envelopes.is_empty() {
            return Err(s.invalid("publish request has no envelopes".into()));
        }
        if req.envelopes.len() > MAX_PUBLISH_ENVELOPES {
            return Err(s.invalid(format!(
                "publish request has {} envelopes; at most {MAX_PUBLISH_ENVELOPES} allowed",
                req.envelopes.len()
            )));
        }
        for (i, env) in req.envelopes.iter().enumerate() {
            check_topic(&env.content_topic).map_err(|m| s.invalid(format!("envelope {i}: {m}")))?;
            if env.message.len() > MAX_MESSAGE_BYTES {
                return Err(s.invalid(format!(
                    "envelope {i}: message is {} bytes; at most {MAX_MESSAGE_BYTES} allowed",
                    env.message.len()
                )));
            }
        }
        if !needs_token {
            s.charge(&s.publish_limiter, client, cost)?;
        }
        let outcome = s.store.publish(req.envelopes).await?;
        Metrics::inc(&s.metrics.publishes);
        s.metrics
            .envelopes_stored
            .fetch_add(outcome.stored as u64, std::sync::atomic::Ordering::Relaxed);
        s.metrics.envelopes_duplicate.fetch_add(
            outcome.duplicates as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        s.observe(Rpc::Publish, start);
        Ok(PublishResponse {})
    }

    /// One page of stored envelopes.
    pub async fn query(
        &self,
        client: Client,
        req: QueryRequest,
    ) -> Result<QueryResponse, ApiError> {
        let start = Instant::now();
        let s = &self.shared;
        let query = self.validate_query(req, PAGE_BYTE_BUDGET)?;
        s.charge(&s.read_limiter, client, 1)?;
        let response = self.run_query(query).await?;
        s.observe(Rpc::Query, start);
        Ok(response)
    }

    /// Several queries, answered in order.
    pub async fn batch_query(
        &self,
        client: Client,
        req: BatchQueryRequest,
    ) -> Result<BatchQueryResponse, ApiError> {
        let start = Instant::now();
        let s = &self.shared;
        if req.requests.len() > MAX_BATCH_QUERIES {
            return Err(s.invalid(format!(
                "batch has {} queries; at most {MAX_BATCH_QUERIES} allowed",
                req.requests.len()
            )));
        }
        let queries = req
            .requests
            .into_iter()
            .enumerate()
            .map(|(i, q)| {
                self.validate_query(q, PAGE_BYTE_BUDGET)
                    .map_err(|e| match e {
                        ApiError::InvalidArgument(m) => {
                            ApiError::InvalidArgument(format!("query {i}: {m}"))
                        }
                        other => other,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cost = u32::try_from(queries.len().max(1)).unwrap_or(u32::MAX);
        s.charge(&s.read_limiter, client, cost)?;
        let mut budget = PAGE_BYTE_BUDGET;
        let mut responses = Vec::with_capacity(queries.len());
        for mut query in queries {
            // At least one envelope per query even when the budget is spent.
            query.max_bytes = budget.max(1);
            let response = self.run_query(query).await?;
            let used: usize = response
                .envelopes
                .iter()
                .map(|e| e.message.len() + e.content_topic.len())
                .sum();
            budget = budget.saturating_sub(used);
            responses.push(response);
        }
        s.observe(Rpc::BatchQuery, start);
        Ok(BatchQueryResponse { responses })
    }

    /// Subscribes to some topics from now on.
    pub fn subscribe(
        &self,
        client: Client,
        req: SubscribeRequest,
    ) -> Result<Subscription, ApiError> {
        let interest = self.interest(req.content_topics)?;
        if matches!(&interest, Interest::Topics(t) if t.is_empty()) {
            return Err(self
                .shared
                .invalid("subscription names no content topic".into()));
        }
        self.shared.charge(&self.shared.read_limiter, client, 1)?;
        Ok(self.shared.hub.subscribe(interest))
    }

    /// Subscribes to every topic from now on.
    pub fn subscribe_all(&self, client: Client) -> Result<Subscription, ApiError> {
        self.shared.charge(&self.shared.read_limiter, client, 1)?;
        Ok(self.shared.hub.subscribe(Interest::All))
    }

    /// Starts a Subscribe2 subscription with the topics of its first request
    /// (possibly none); later requests change them through
    /// [`MessageService::interest`] and the subscription's handle.
    pub fn subscribe_updatable(
        &self,
        client: Client,
        req: SubscribeRequest,
    ) -> Result<Subscription, ApiError> {
        let interest = self.interest(req.content_topics)?;
        self.shared.charge(&self.shared.read_limiter, client, 1)?;
        Ok(self.shared.hub.subscribe(interest))
    }

    /// Validates a subscription's topic list.
    pub fn interest(&self, topics: Vec<String>) -> Result<Interest, ApiError> {
        if topics.len() > MAX_SUBSCRIBE_TOPICS {
            return Err(self.shared.invalid(format!(
                "subscription names {} topics; at most {MAX_SUBSCRIBE_TOPICS} allowed",
                topics.len()
            )));
        }
        for t in &topics {
            check_topic(t).map_err(|m| self.shared.invalid(m))?;
        }
        Ok(Interest::Topics(topics.into_iter().collect::<HashSet<_>>()))
    }

    /// Counts a subscriber cut off for lagging.
    pub fn note_lagged(&self) {
        Metrics::inc(&self.shared.metrics.lagged_subscribers);
    }

    fn validate_query(
        &self,
        req: QueryRequest,
        max_bytes: usize,
    ) -> Result<EnvelopeQuery, ApiError> {
        let s = &self.shared;
        if req.content_topics.is_empty() {
            return Err(s.invalid("query names no content topic".into()));
        }
        if req.content_topics.len() > MAX_QUERY_TOPICS {
            return Err(s.invalid(format!(
                "query names {} topics; at most {MAX_QUERY_TOPICS} allowed",
                req.content_topics.len()
            )));
        }
        for t in &req.content_topics {
            check_topic(t).map_err(|m| s.invalid(m))?;
        }
        let mut topics = req.content_topics;
        let mut seen = HashSet::new();
        topics.retain(|t| seen.insert(t.clone()));
        let paging = req.paging_info.unwrap_or_default();
        let limit = match paging.limit {
            0 => MAX_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let direction = match SortDirection::try_from(paging.direction) {
            Ok(SortDirection::Ascending) => Direction::Ascending,
            Ok(SortDirection::Descending | SortDirection::Unspecified) => Direction::Descending,
            Err(_) => return Err(s.invalid(format!("unknown sort direction {}", paging.direction))),
        };
        let cursor = match paging.cursor.and_then(|c| c.cursor) {
            None => None,
            Some(cursor::Cursor::Index(index)) => {
                let digest: [u8; DIGEST_LEN] =
                    index.digest.as_slice().try_into().map_err(|_| {
                        s.invalid(format!(
                            "cursor digest is {} bytes; expected {DIGEST_LEN}",
                            index.digest.len()
                        ))
                    })?;
                Some(PageCursor {
                    sender_time_ns: index.sender_time_ns,
                    digest,
                })
            }
        };
        let nonzero = |t: u64| (t != 0).then_some(t);
        Ok(EnvelopeQuery {
            topics,
            start_ns: nonzero(req.start_time_ns),
            end_ns: nonzero(req.end_time_ns),
            limit,
            direction,
            cursor,
            max_bytes,
        })
    }

    async fn run_query(&self, query: EnvelopeQuery) -> Result<QueryResponse, ApiError> {
        let limit = query.limit;
        let direction = match query.direction {
            Direction::Ascending => SortDirection::Ascending,
            Direction::Descending => SortDirection::Descending,
        };
        let page = self.shared.store.query(query).await?;
        Metrics::inc(&self.shared.metrics.queries);
        let cursor = page.next.map(|c| Cursor {
            cursor: Some(cursor::Cursor::Index(IndexCursor {
                digest: c.digest.to_vec(),
                sender_time_ns: c.sender_time_ns,
            })),
        });
        Ok(QueryResponse {
            envelopes: page.envelopes,
            paging_info: Some(PagingInfo {
                limit,
                cursor,
                direction: direction.into(),
            }),
        })
    }
}
