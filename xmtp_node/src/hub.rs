//! The subscription hub: fans committed envelopes out to subscribers.
//!
//! The store announces each committed batch (in commit order) through
//! [`CommitListener`]; the hub looks up the subscribers of each envelope's
//! topic (an index from topic to subscriber ids, plus the subscribe-all set)
//! and hands each a shared `Arc<Envelope>` through its own bounded channel.
//! Because announcements happen after the commit and in commit order, a
//! subscriber sees every envelope committed after it subscribed, once, in
//! commit order per topic.
//!
//! A subscriber whose buffer is full is not waited for (that would stall every
//! publisher): it is removed and its stream ends with
//! [`SubscriptionError::Lagged`], so memory stays bounded by
//! `subscribers x buffer` envelopes. It can resubscribe and query to catch up.

use std::{
    collections::{HashMap, HashSet},
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard, Weak,
    },
    task::{Context, Poll},
};

use futures::Stream;
use tokio::sync::mpsc;
use xmtp_proto::xmtp::message_api::v1::Envelope;

use crate::store::CommitListener;

/// Why a subscription ended early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// The subscriber did not keep up and its buffer overflowed.
    #[error("subscriber lagged: more than {0} envelopes were waiting; resubscribe and query to catch up")]
    Lagged(usize),
}

/// What a subscriber listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interest {
    /// These topics.
    Topics(HashSet<String>),
    /// Every topic.
    All,
}

struct Subscriber {
    tx: mpsc::Sender<Arc<Envelope>>,
    interest: Interest,
    lagged: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
    by_topic: HashMap<String, HashSet<u64>>,
    all: HashSet<u64>,
    closed: bool,
}

impl State {
    fn index(&mut self, id: u64, interest: &Interest) {
        match interest {
            Interest::All => {
                self.all.insert(id);
            }
            Interest::Topics(topics) => {
                for t in topics {
                    self.by_topic.entry(t.clone()).or_default().insert(id);
                }
            }
        }
    }

    fn unindex(&mut self, id: u64, interest: &Interest) {
        match interest {
            Interest::All => {
                self.all.remove(&id);
            }
            Interest::Topics(topics) => {
                for t in topics {
                    if let Some(ids) = self.by_topic.get_mut(t) {
                        ids.remove(&id);
                        if ids.is_empty() {
                            self.by_topic.remove(t);
                        }
                    }
                }
            }
        }
    }

    fn remove(&mut self, id: u64) -> Option<Subscriber> {
        let sub = self.subscribers.remove(&id)?;
        self.unindex(id, &sub.interest);
        Some(sub)
    }
}

/// The hub. Share it behind an `Arc`.
pub struct Hub {
    state: Mutex<State>,
    buffer: usize,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("buffer", &self.buffer)
            .field("subscribers", &self.subscriber_count())
            .finish()
    }
}

impl Hub {
    /// A hub whose subscribers each buffer at most `buffer` envelopes.
    pub fn new(buffer: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            buffer: buffer.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps inconsistent
        // in a way that matters more than losing every subscription would.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a subscriber; envelopes committed from now on reach it.
    pub fn subscribe(self: &Arc<Self>, interest: Interest) -> Subscription {
        let (tx, rx) = mpsc::channel(self.buffer);
        let lagged = Arc::new(AtomicBool::new(false));
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        if !state.closed {
            state.index(id, &interest);
            state.subscribers.insert(
                id,
                Subscriber {
                    tx,
                    interest,
                    lagged: Arc::clone(&lagged),
                },
            );
        }
        Subscription {
            id,
            rx,
            lagged,
            buffer: self.buffer,
            hub: Arc::downgrade(self),
            reported: false,
        }
    }

    /// The number of live subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// Ends every subscription (their streams finish) and refuses new ones.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.subscribers.clear();
        state.by_topic.clear();
        state.all.clear();
    }

    fn set_interest(&self, id: u64, interest: Interest) {
        let mut state = self.lock();
        let Some(old) = state.subscribers.get(&id).map(|s| s.interest.clone()) else {
            return;
        };
        state.unindex(id, &old);
        state.index(id, &interest);
        if let Some(sub) = state.subscribers.get_mut(&id) {
            sub.interest = interest;
        }
    }

    fn unsubscribe(&self, id: u64) {
        self.lock().remove(id);
    }
}

impl CommitListener for Hub {
    fn committed(&self, envelopes: &[Arc<Envelope>]) {
        let mut state = self.lock();
        let mut lagging = Vec::new();
        for env in envelopes {
            let topical = state.by_topic.get(&env.content_topic).into_iter().flatten();
            for id in topical.chain(state.all.iter()) {
                if let Some(sub) = state.subscribers.get(id) {
                    if let Err(mpsc::error::TrySendError::Full(_)) =
                        sub.tx.try_send(Arc::clone(env))
                    {
                        sub.lagged.store(true, Ordering::SeqCst);
                        lagging.push(*id);
                    }
                }
            }
            // Remove at once so a lagging subscriber misses nothing silently:
            // it gets no later envelope after the one it could not take.
            for id in lagging.drain(..) {
                state.remove(id);
            }
        }
    }
}

/// A live subscription: a stream of envelopes that ends when the hub closes,
/// or with an error when the subscriber lagged. Dropping it unsubscribes.
pub struct Subscription {
    id: u64,
    rx: mpsc::Receiver<Arc<Envelope>>,
    lagged: Arc<AtomicBool>,
    buffer: usize,
    hub: Weak<Hub>,
    reported: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl Subscription {
    /// Replaces what this subscription listens to (Subscribe2).
    pub fn set_interest(&self, interest: Interest) {
        if let Some(hub) = self.hub.upgrade() {
            hub.set_interest(self.id, interest);
        }
    }

    /// A handle that can change the interest while the stream is consumed
    /// elsewhere.
    pub fn handle(&self) -> SubscriptionHandle {
        SubscriptionHandle {
            id: self.id,
            hub: self.hub.clone(),
        }
    }
}

/// Changes a subscription's interest from another task.
#[derive(Debug, Clone)]
pub struct SubscriptionHandle {
    id: u64,
    hub: Weak<Hub>,
}

impl SubscriptionHandle {
    /// Replaces what the subscription listens to.
    pub fn set_interest(&self, interest: Interest) {
        if let Some(hub) = self.hub.upgrade() {
            hub.set_interest(self.id, interest);
        }
    }
}

impl Stream for Subscription {
    type Item = Result<Arc<Envelope>, SubscriptionError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(env)) => Poll::Ready(Some(Ok(env))),
            Poll::Ready(None) if self.lagged.load(Ordering::SeqCst) && !self.reported => {
                self.reported = true;
                Poll::Ready(Some(Err(SubscriptionError::Lagged(self.buffer))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.unsubscribe(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn env(topic: &str, t: u64) -> Arc<Envelope> {
        Arc::new(Envelope {
            content_topic: topic.into(),
            timestamp_ns: t,
            message: vec![],
        })
    }

    fn topics(t: &[&str]) -> Interest {
        Interest::Topics(t.iter().map(|s| s.to_string()).collect())
    }

    #[tokio::test]
    async fn subscribers_get_their_topics_in_commit_order() {
        let hub = Hub::new(16);
        let mut a = hub.subscribe(topics(&["a"]));
        let mut all = hub.subscribe(Interest::All);
        hub.committed(&[env("a", 1), env("b", 2), env("a", 3)]);
        hub.close();
        let got: Vec<u64> = (&mut a).map(|e| e.unwrap().timestamp_ns).collect().await;
        assert_eq!(got, vec![1, 3]);
        let got: Vec<u64> = (&mut all).map(|e| e.unwrap().timestamp_ns).collect().await;
        assert_eq!(got, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_cut_off_with_an_error() {
        let hub = Hub::new(2);
        let mut slow = hub.subscribe(topics(&["t"]));
        hub.committed(&[env("t", 1), env("t", 2), env("t", 3), env("t", 4)]);
        assert_eq!(hub.subscriber_count(), 0);
        assert_eq!(slow.next().await.unwrap().unwrap().timestamp_ns, 1);
        assert_eq!(slow.next().await.unwrap().unwrap().timestamp_ns, 2);
        assert_eq!(
            slow.next().await.unwrap(),
            Err(SubscriptionError::Lagged(2))
        );
        assert!(slow.next().await.is_none());
    }

    #[tokio::test]
    async fn changing_interest_and_dropping_unsubscribe() {
        let hub = Hub::new(8);
        let mut sub = hub.subscribe(topics(&["x"]));
        sub.set_interest(topics(&["y"]));
        hub.committed(&[env("x", 1), env("y", 2)]);
        assert_eq!(sub.next().await.unwrap().unwrap().timestamp_ns, 2);
        drop(sub);
        assert_eq!(hub.subscriber_count(), 0);
        assert!(hub.lock().by_topic.is_empty());
    }
}
