//! Streams of new messages, built on the node's subscribe.
//!
//! One background task per client follows the installation's topic:
//!
//! ```text
//! loop { subscribe(topic)            -- from now on, everything published arrives
//!        sync()                      -- fills the gap since the cursor (before or during a drop)
//!        process each streamed envelope until the connection drops
//!        back off, and loop }
//! ```
//!
//! Subscribing before the catch-up sync means nothing published around a
//! reconnection is lost; processing is idempotent (digest and message id), so
//! what both paths deliver is stored once. A [`MessageStream`] does not read
//! the subscription itself: it reads the *database*, in storage order, after
//! the last message it yielded, and waits for the "stored" signal. So a slow
//! consumer never loses a message and never sees one twice, and sends from
//! this installation appear too.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{Arc, Weak},
    task::{Context, Poll},
    time::Duration,
};

use futures::{stream::BoxStream, Stream, StreamExt};

use crate::{
    client::{Client, Inner},
    conversations::normalize_conversation_id,
    error::ClientError,
    messages::Message,
};

/// Messages read from storage per wake-up.
const STREAM_BATCH: u32 = 100;
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A stream of newly stored messages (received and sent), in storage order.
/// Ends only when the client shuts down.
pub struct MessageStream {
    inner: BoxStream<'static, Result<Message, ClientError>>,
}

impl std::fmt::Debug for MessageStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageStream")
    }
}

impl Stream for MessageStream {
    type Item = Result<Message, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

struct StreamState {
    client: Client,
    after_seq: i64,
    conversation: Option<String>,
    buffered: VecDeque<Message>,
    stored: tokio::sync::watch::Receiver<i64>,
}

impl Client {
    /// New messages of every conversation, from now on.
    pub async fn stream_messages(&self) -> Result<MessageStream, ClientError> {
        self.stream(None).await
    }

    /// New messages of one conversation (a peer's address), from now on.
    pub async fn stream_conversation(
        &self,
        conversation_id: &str,
    ) -> Result<MessageStream, ClientError> {
        self.stream(Some(normalize_conversation_id(conversation_id)))
            .await
    }

    async fn stream(&self, conversation: Option<String>) -> Result<MessageStream, ClientError> {
        let stored = self.inner.stored.subscribe();
        let after_seq = self.inner.storage.transaction(|tx| tx.max_message_seq())?;
        self.ensure_following();
        let state = StreamState {
            client: self.clone(),
            after_seq,
            conversation,
            buffered: VecDeque::new(),
            stored,
        };
        let inner = futures::stream::unfold(state, |mut s| async move {
            loop {
                if let Some(m) = s.buffered.pop_front() {
                    return Some((Ok(m), s));
                }
                let page = s.client.inner.storage.transaction(|tx| {
                    tx.messages_after_seq(s.after_seq, s.conversation.as_deref(), STREAM_BATCH)
                });
                match page {
                    Err(e) => return Some((Err(ClientError::from(e)), s)),
                    Ok(rows) if !rows.is_empty() => {
                        for r in rows {
                            s.after_seq = s.after_seq.max(r.seq);
                            match Message::from_record(r) {
                                Ok(m) => s.buffered.push_back(m),
                                Err(e) => {
                                    tracing::warn!(error = %e, "skipping unreadable stored message")
                                }
                            }
                        }
                    }
                    Ok(_) => {
                        if s.stored.changed().await.is_err() {
                            return None;
                        }
                    }
                }
            }
        });
        Ok(MessageStream {
            inner: inner.boxed(),
        })
    }

    /// Starts the task following this installation's topic, if not running.
    pub(crate) fn ensure_following(&self) {
        let Ok(mut follower) = self.inner.follower.lock() else {
            return;
        };
        if follower.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        *follower = Some(tokio::spawn(follow(weak)));
    }
}

/// Follows the installation's topic until the client is dropped.
async fn follow(weak: Weak<Inner>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match follow_once(&weak).await {
            Connection::ClientGone => return,
            Connection::Delivered => backoff = Duration::from_millis(100),
            Connection::Failed => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// How one subscription ended.
enum Connection {
    /// The client was dropped: stop following.
    ClientGone,
    /// It delivered envelopes before it ended.
    Delivered,
    /// It failed before delivering anything.
    Failed,
}

/// Subscribes, catches up, and processes streamed envelopes until the
/// connection drops. Holds the client only while working, never while waiting.
async fn follow_once(weak: &Weak<Inner>) -> Connection {
    let Some(inner) = weak.upgrade() else {
        return Connection::ClientGone;
    };
    let client = Client { inner };
    // The inbox and every group topic (a new group makes it resubscribe).
    let inbox = client.inbox_topic();
    let groups = match client.group_topics() {
        Ok(groups) => groups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list group topics; retrying");
            return Connection::Failed;
        }
    };
    let v2_topics = match client.v2_topics() {
        Ok(topics) => topics,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list XMTP V2 topics; retrying");
            return Connection::Failed;
        }
    };
    let mut topics = vec![inbox.clone()];
    topics.extend(groups.iter().cloned());
    topics.extend(v2_topics.iter().cloned());
    let mut envelopes = match client.inner.api.subscribe(topics).await {
        Ok(envelopes) => envelopes,
        Err(e) => {
            tracing::warn!(error = %e, "subscribe failed; retrying");
            return Connection::Failed;
        }
    };
    // Without the catch-up, envelopes from before the subscription could be
    // missed: on failure, subscribe again and retry.
    if let Err(e) = client.sync().await {
        tracing::warn!(error = %e, "catch-up sync failed; resubscribing");
        return Connection::Failed;
    }
    drop(client);
    let mut delivered = false;
    while let Some(item) = envelopes.next().await {
        let Some(inner) = weak.upgrade() else {
            return Connection::ClientGone;
        };
        let client = Client { inner };
        match item {
            Ok(envelope) => {
                delivered = true;
                let mut new_v2_conversation = false;
                let processed = if envelope.content_topic == inbox {
                    client.process_envelope(envelope).await.map(|_| ())
                } else if v2_topics.contains(&envelope.content_topic) {
                    client.process_v2_envelope(&envelope).and_then(|(new, _)| {
                        // A conversation this client started itself is
                        // stored before its invitation comes back, and a V1
                        // conversation first seen on the intro topic, add
                        // topics too: compare the topic lists.
                        let may_add = envelope.content_topic.starts_with("/xmtp/0/invite-")
                            || envelope.content_topic.starts_with("/xmtp/0/intro-");
                        new_v2_conversation =
                            new || (may_add && client.v2_topics()?.len() != v2_topics.len());
                        Ok(())
                    })
                } else {
                    client.process_group_envelope(envelope).await.map(|_| ())
                };
                if new_v2_conversation {
                    // A new XMTP V2 conversation: resubscribe with its topic.
                    break;
                }
                if let Err(e) = processed {
                    // A local or network failure (not a hostile envelope): the
                    // catch-up sync after resubscribing retries it.
                    tracing::warn!(error = %e, "could not process a streamed envelope; resubscribing");
                    break;
                }
                match client.apply_group_updates(&groups).await {
                    Ok(false) => {}
                    // A new group: resubscribe with its topic.
                    Ok(true) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not apply group updates; resubscribing");
                        break;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "subscription dropped; resubscribing");
                break;
            }
        }
    }
    if delivered {
        Connection::Delivered
    } else {
        Connection::Failed
    }
}
