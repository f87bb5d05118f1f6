//! [`ResilientSubscription`]: a subscription that survives dropped
//! connections without losing or repeating an envelope.
//!
//! A plain subscription delivers what is published while it is connected.
//! When the connection drops, envelopes published before the next subscribe
//! would be lost. This stream closes that gap:
//!
//! ```text
//! on a drop:   wait backoff(n)            (capped exponential, jittered)
//!              subscribe(topics)           (new envelopes from here on are buffered)
//!              for each topic: query ascending from
//!                  floor = last seen timestamp - lookback
//!              yield the queried envelopes, then the live ones,
//!              skipping any (topic, timestamp, sha256(topic || message)) already seen
//! ```
//!
//! Subscribing before querying means every envelope is in the query, the live
//! stream, or both; the de-duplication by digest removes the "both". Back-filled
//! envelopes come topic by topic, each topic in timestamp order. The
//! lookback (one minute by default) covers senders whose clocks lag: the node
//! orders by the sender's timestamp, so an envelope published during the gap
//! may carry a timestamp a little older than the last one seen. Envelopes
//! older than the floor are forgotten, which bounds the memory the
//! de-duplication needs.
//!
//! Errors that retrying cannot fix (InvalidArgument, Unauthenticated,
//! NotFound, InvalidUrl) end the stream after being yielded; every other
//! failure leads to a reconnect. After `reconnect.max_attempts` consecutive
//! failed reconnects the stream yields [`ApiError::StreamClosed`] and ends.

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{stream, Stream, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use xmtp_proto::xmtp::message_api::v1::{Envelope, SortDirection};

use crate::api::EnvelopeStream;
use crate::paging::topic_query;
use crate::{ApiError, RetryPolicy, XmtpApi};

/// Options of a [`ResilientSubscription`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResilientOptions {
    /// Also deliver the stored envelopes with a timestamp at or after this
    /// (nanoseconds since the Unix epoch) before the live ones, for example
    /// the time of the last envelope a previous run handled. `None` delivers
    /// what is published after [`ResilientSubscription::start`]; but if the
    /// connection drops before the first envelope arrives, the back-fill
    /// starts `lookback` before the start (losing nothing to a sender's slow
    /// clock), so envelopes stamped up to `lookback` earlier may appear.
    pub since_ns: Option<u64>,
    /// How far before the last seen timestamp a back-fill query starts.
    pub lookback: Duration,
    /// Backoff between reconnects; `max_attempts` bounds consecutive failures.
    pub reconnect: RetryPolicy,
}

impl Default for ResilientOptions {
    /// No history, a one-minute lookback, reconnects without limit backing
    /// off from 100 ms up to 10 s.
    fn default() -> Self {
        Self {
            since_ns: None,
            lookback: Duration::from_secs(60),
            reconnect: RetryPolicy::new(
                u32::MAX,
                Duration::from_millis(100),
                Duration::from_secs(10),
            ),
        }
    }
}

/// A stream of the envelopes published on some topics, resumed after every
/// dropped connection with a back-fill query, each envelope exactly once.
pub struct ResilientSubscription {
    inner: EnvelopeStream,
}

impl std::fmt::Debug for ResilientSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientSubscription")
            .finish_non_exhaustive()
    }
}

impl ResilientSubscription {
    /// Subscribes to `topics`. Returns once the node has registered the first
    /// subscription (so every envelope published afterwards will arrive), or
    /// with the error of the first subscribe.
    pub async fn start(
        api: Arc<dyn XmtpApi>,
        topics: Vec<String>,
        options: ResilientOptions,
    ) -> Result<Self, ApiError> {
        let live = api.subscribe(topics.clone()).await?;
        let started_ns = now_ns();
        let state = State {
            api,
            topics: topics
                .into_iter()
                .map(|topic| (topic, TopicState::default()))
                .collect(),
            live: Some(live),
            pending: VecDeque::new(),
            needs_backfill: options.since_ns.is_some(),
            failures: 0,
            default_floor: options.since_ns.unwrap_or_else(|| {
                started_ns
                    .saturating_sub(duration_ns(options.lookback))
                    .max(1)
            }),
            options,
            done: false,
        };
        let inner = stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        })
        .boxed();
        Ok(Self { inner })
    }
}

impl Stream for ResilientSubscription {
    type Item = Result<Envelope, ApiError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// What has been delivered on one topic.
#[derive(Default)]
struct TopicState {
    /// The highest timestamp delivered.
    high_water_ns: Option<u64>,
    /// Identity of the envelopes delivered at or after the prune floor.
    seen: HashSet<(u64, [u8; 32])>,
    /// Size of `seen` after the last prune, to prune in amortised O(1).
    pruned_len: usize,
}

struct State {
    api: Arc<dyn XmtpApi>,
    options: ResilientOptions,
    topics: HashMap<String, TopicState>,
    live: Option<EnvelopeStream>,
    pending: VecDeque<Envelope>,
    needs_backfill: bool,
    /// Consecutive failed connections since the last healthy one (a
    /// back-fill or a live envelope received).
    failures: u32,
    /// Back-fill floor of a topic on which nothing was delivered yet.
    default_floor: u64,
    done: bool,
}

/// Whether an error on the subscription leaves hope for a reconnect.
fn can_reconnect(error: &ApiError) -> bool {
    !matches!(
        error,
        ApiError::InvalidArgument(_)
            | ApiError::Unauthenticated(_)
            | ApiError::PermissionDenied(_)
            | ApiError::NotFound(_)
            | ApiError::InvalidUrl { .. }
    )
}

/// The identity of an envelope for de-duplication: its timestamp and the
/// node's digest, `sha256(content_topic || message)`.
fn envelope_key(envelope: &Envelope) -> (u64, [u8; 32]) {
    let mut hasher = Sha256::new();
    hasher.update(envelope.content_topic.as_bytes());
    hasher.update(&envelope.message);
    (envelope.timestamp_ns, hasher.finalize().into())
}

/// Queries each topic, ascending, from its floor (a free function so that the
/// future borrows only the API, which is `Sync`, not the whole state).
async fn backfill(
    api: &dyn XmtpApi,
    floors: Vec<(String, u64)>,
) -> Result<Vec<Envelope>, ApiError> {
    let mut envelopes = Vec::new();
    for (topic, floor) in floors {
        let request = topic_query(&topic, floor, 0, SortDirection::Ascending);
        let queried: Vec<Envelope> = api.query_envelopes(request).try_collect().await?;
        tracing::debug!(topic, floor, count = queried.len(), "back-filled");
        envelopes.extend(queried);
    }
    Ok(envelopes)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl State {
    async fn next(&mut self) -> Option<Result<Envelope, ApiError>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(envelope) = self.pending.pop_front() {
                if self.accept(&envelope) {
                    return Some(Ok(envelope));
                }
                continue;
            }
            if self.live.is_none() {
                if let Err(error) = self.reconnect().await {
                    self.done = true;
                    return Some(Err(error));
                }
                continue;
            }
            if self.needs_backfill {
                match self.backfill().await {
                    Ok(envelopes) => {
                        // Subscribed and queried: the connection is healthy.
                        self.failures = 0;
                        self.needs_backfill = false;
                        self.pending.extend(envelopes);
                    }
                    Err(error) => {
                        if let Some(fatal) = self.on_failure(error) {
                            return Some(Err(fatal));
                        }
                    }
                }
                continue;
            }
            let live = self.live.as_mut()?;
            match live.next().await {
                Some(Ok(envelope)) => {
                    self.failures = 0;
                    if self.accept(&envelope) {
                        return Some(Ok(envelope));
                    }
                }
                Some(Err(error)) => {
                    if let Some(fatal) = self.on_failure(error) {
                        return Some(Err(fatal));
                    }
                }
                None => {
                    tracing::info!("subscription ended by the node; resubscribing");
                    self.live = None;
                }
            }
        }
    }

    /// Drops the connection after a failure; returns the error when it is
    /// fatal, ending the stream.
    fn on_failure(&mut self, error: ApiError) -> Option<ApiError> {
        self.live = None;
        if can_reconnect(&error) {
            tracing::warn!(%error, "subscription dropped; resubscribing");
            None
        } else {
            self.done = true;
            Some(error)
        }
    }

    /// Subscribes again after a backoff, and schedules a back-fill.
    async fn reconnect(&mut self) -> Result<(), ApiError> {
        let policy = self.options.reconnect;
        loop {
            self.failures = self.failures.saturating_add(1);
            if !policy.allows_another(self.failures) {
                return Err(ApiError::StreamClosed(format!(
                    "gave up resubscribing after {} attempts",
                    self.failures.saturating_sub(1)
                )));
            }
            let delay = policy.backoff(self.failures - 1, &mut rand::thread_rng());
            tokio::time::sleep(delay).await;
            let topics: Vec<String> = self.topics.keys().cloned().collect();
            match self.api.subscribe(topics).await {
                Ok(live) => {
                    tracing::info!(attempt = self.failures, "resubscribed");
                    self.live = Some(live);
                    self.needs_backfill = true;
                    return Ok(());
                }
                Err(error) if can_reconnect(&error) => {
                    tracing::warn!(%error, attempt = self.failures, "resubscribe failed");
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Queries every topic, ascending, from its floor.
    fn backfill(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<Envelope>, ApiError>> + Send + 'static {
        let lookback = duration_ns(self.options.lookback);
        let floors: Vec<(String, u64)> = self
            .topics
            .iter()
            .map(|(topic, state)| {
                let floor = match state.high_water_ns {
                    Some(high) => high.saturating_sub(lookback).max(1),
                    None => self.default_floor,
                };
                (topic.clone(), floor)
            })
            .collect();
        let api = Arc::clone(&self.api);
        async move { backfill(api.as_ref(), floors).await }
    }

    /// Records a delivery; false if this envelope was delivered before or is
    /// on a topic this subscription does not follow.
    fn accept(&mut self, envelope: &Envelope) -> bool {
        let lookback = duration_ns(self.options.lookback);
        let Some(state) = self.topics.get_mut(&envelope.content_topic) else {
            return false;
        };
        if !state.seen.insert(envelope_key(envelope)) {
            return false;
        }
        let high = state
            .high_water_ns
            .map_or(envelope.timestamp_ns, |h| h.max(envelope.timestamp_ns));
        state.high_water_ns = Some(high);
        if state.seen.len() > 2 * state.pruned_len + 1024 {
            let floor = high.saturating_sub(lookback);
            state.seen.retain(|(timestamp, _)| *timestamp >= floor);
            state.pruned_len = state.seen.len();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(lookback: Duration) -> State {
        let api: Arc<dyn XmtpApi> = Arc::new(crate::testing::Refusing);
        State {
            api,
            options: ResilientOptions {
                lookback,
                ..ResilientOptions::default()
            },
            topics: [("a".to_owned(), TopicState::default())]
                .into_iter()
                .collect(),
            live: None,
            pending: VecDeque::new(),
            needs_backfill: false,
            failures: 0,
            default_floor: 0,
            done: false,
        }
    }

    fn envelope(topic: &str, timestamp_ns: u64, message: &[u8]) -> Envelope {
        Envelope {
            content_topic: topic.into(),
            timestamp_ns,
            message: message.to_vec(),
        }
    }

    #[test]
    fn each_envelope_is_accepted_once() {
        let mut s = state(Duration::from_nanos(10));
        assert!(s.accept(&envelope("a", 5, b"x")));
        assert!(!s.accept(&envelope("a", 5, b"x")));
        assert!(
            s.accept(&envelope("a", 5, b"y")),
            "another message at the same time is new"
        );
        assert!(
            s.accept(&envelope("a", 6, b"x")),
            "the same message at another time is new"
        );
        assert_eq!(s.topics["a"].high_water_ns, Some(6));
    }

    #[test]
    fn envelopes_of_unfollowed_topics_are_dropped() {
        let mut s = state(Duration::from_nanos(10));
        assert!(!s.accept(&envelope("b", 5, b"x")));
    }

    #[test]
    fn pruning_keeps_everything_within_the_lookback() {
        let mut s = state(Duration::from_nanos(100));
        for t in 0..5000u64 {
            assert!(s.accept(&envelope("a", t, &t.to_be_bytes())));
        }
        let seen = &s.topics["a"].seen;
        assert!(seen.len() < 3000, "not pruned: {}", seen.len());
        for t in 4899..5000u64 {
            assert!(
                !s.accept(&envelope("a", t, &t.to_be_bytes())),
                "{t} forgotten too early"
            );
        }
    }

    #[test]
    fn only_permanent_errors_end_the_stream() {
        assert!(can_reconnect(&ApiError::Unavailable("x".into())));
        assert!(can_reconnect(&ApiError::Internal {
            code: tonic::Code::Unknown,
            message: "h2".into()
        }));
        assert!(can_reconnect(&ApiError::StreamClosed("x".into())));
        assert!(!can_reconnect(&ApiError::InvalidArgument("x".into())));
        assert!(!can_reconnect(&ApiError::Unauthenticated("x".into())));
    }

    mod with_a_fake_node {
        use futures::TryStreamExt;

        use super::*;
        use crate::testing::FakeNode;

        fn options() -> ResilientOptions {
            ResilientOptions {
                reconnect: RetryPolicy::new(
                    10,
                    Duration::from_millis(10),
                    Duration::from_millis(100),
                ),
                ..ResilientOptions::default()
            }
        }

        fn batch(topic: &str, base: u64, range: std::ops::Range<u64>) -> Vec<Envelope> {
            range
                .map(|n| envelope(topic, base + n, &n.to_be_bytes()))
                .collect()
        }

        async fn take(stream: &mut ResilientSubscription, n: usize) -> Vec<Envelope> {
            stream.by_ref().take(n).try_collect().await.unwrap()
        }

        #[tokio::test(start_paused = true)]
        async fn the_gap_of_a_restart_is_back_filled_exactly_once() {
            let node = Arc::new(FakeNode::default());
            let mut stream =
                ResilientSubscription::start(node.clone(), vec!["a".into()], options())
                    .await
                    .unwrap();
            let base = now_ns();
            let before = batch("a", base, 0..150);
            node.publish(before.clone()).await.unwrap();
            assert_eq!(take(&mut stream, 150).await, before);

            // Down for three subscribe attempts; meanwhile others publish,
            // one of them with a clock a little behind ours.
            node.restart(3);
            let mut gap = batch("a", base, 150..400);
            gap.push(envelope("a", base + 100, b"late clock"));
            node.store_quietly(gap.clone());

            let mut got = take(&mut stream, gap.len()).await;
            got.sort_by_key(|e| e.timestamp_ns);
            gap.sort_by_key(|e| e.timestamp_ns);
            assert_eq!(got, gap);
            assert_eq!(node.subscribe_calls(), 1 + 3 + 1);

            let live = batch("a", base, 400..410);
            node.publish(live.clone()).await.unwrap();
            assert_eq!(take(&mut stream, live.len()).await, live);
        }

        #[tokio::test(start_paused = true)]
        async fn a_repeated_live_envelope_is_delivered_once() {
            let node = Arc::new(FakeNode::default());
            let mut stream =
                ResilientSubscription::start(node.clone(), vec!["a".into()], options())
                    .await
                    .unwrap();
            let one = envelope("a", now_ns(), b"one");
            let two = envelope("a", now_ns() + 1, b"two");
            node.publish(vec![one.clone()]).await.unwrap();
            node.broadcast_only(&one);
            node.publish(vec![two.clone()]).await.unwrap();
            assert_eq!(take(&mut stream, 2).await, vec![one, two]);
        }

        #[tokio::test(start_paused = true)]
        async fn it_gives_up_after_the_configured_reconnects() {
            let node = Arc::new(FakeNode::default());
            let mut stream =
                ResilientSubscription::start(node.clone(), vec!["a".into()], options())
                    .await
                    .unwrap();
            node.restart(u32::MAX);
            let item = stream.next().await;
            assert!(
                matches!(item, Some(Err(ApiError::StreamClosed(_)))),
                "{item:?}"
            );
            assert!(stream.next().await.is_none());
            // One initial subscribe, then max_attempts - 1 reconnects.
            assert_eq!(node.subscribe_calls(), 1 + 9);
        }

        #[tokio::test(start_paused = true)]
        async fn since_replays_history_then_goes_live() {
            let node = Arc::new(FakeNode::default());
            let base = now_ns();
            node.store_quietly(vec![envelope("a", base - 1, b"too old")]);
            let history = batch("a", base, 0..230);
            node.store_quietly(history.clone());
            let options = ResilientOptions {
                since_ns: Some(base),
                ..options()
            };
            let mut stream = ResilientSubscription::start(node.clone(), vec!["a".into()], options)
                .await
                .unwrap();
            let live = envelope("a", base + 999, b"live");
            node.publish(vec![live.clone()]).await.unwrap();
            let mut expected = history;
            expected.push(live);
            assert_eq!(take(&mut stream, expected.len()).await, expected);
        }
    }
}
