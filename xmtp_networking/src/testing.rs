//! Test doubles shared by the unit tests of this crate.

use async_trait::async_trait;
use xmtp_proto::xmtp::key_api::v1::{AddressInstallations, ClaimedKey};
use xmtp_proto::xmtp::message_api::v1::{Envelope, QueryRequest, QueryResponse};
use xmtp_proto::xmtp::v3::message_contents::{
    InstallationPublicKeyBundle, SignedCurve25519Key, WalletRevocation,
};

use crate::api::EnvelopeStream;
use crate::{ApiError, XmtpApi};

/// An API that refuses every call, for tests that must not reach a node.
pub(crate) struct Refusing;

fn refused<T>() -> Result<T, ApiError> {
    Err(ApiError::Unavailable(
        "this test double refuses every call".into(),
    ))
}

#[async_trait]
impl XmtpApi for Refusing {
    async fn publish(&self, _: Vec<Envelope>) -> Result<(), ApiError> {
        refused()
    }
    async fn query(&self, _: QueryRequest) -> Result<QueryResponse, ApiError> {
        refused()
    }
    async fn batch_query(&self, _: Vec<QueryRequest>) -> Result<Vec<QueryResponse>, ApiError> {
        refused()
    }
    async fn subscribe(&self, _: Vec<String>) -> Result<EnvelopeStream, ApiError> {
        refused()
    }
    async fn subscribe_all(&self) -> Result<EnvelopeStream, ApiError> {
        refused()
    }
    async fn register_installation(&self, _: InstallationPublicKeyBundle) -> Result<(), ApiError> {
        refused()
    }
    async fn upload_one_time_keys(
        &self,
        _: Vec<u8>,
        _: Vec<SignedCurve25519Key>,
    ) -> Result<u32, ApiError> {
        refused()
    }
    async fn count_one_time_keys(&self, _: Vec<u8>) -> Result<u32, ApiError> {
        refused()
    }
    async fn get_installations(
        &self,
        _: Vec<String>,
    ) -> Result<Vec<AddressInstallations>, ApiError> {
        refused()
    }
    async fn claim_one_time_keys(&self, _: Vec<Vec<u8>>) -> Result<Vec<ClaimedKey>, ApiError> {
        refused()
    }
    async fn publish_revocation(&self, _: WalletRevocation) -> Result<(), ApiError> {
        refused()
    }
}

/// An in-memory node for unit tests of the subscription logic: it stores and
/// pages envelopes like the real node (inclusive time bounds, cursor on full
/// pages), fans publishes out to subscribers, and can drop every connection
/// and refuse a number of reconnects, as a restarting node does.
#[derive(Default)]
pub(crate) struct FakeNode {
    state: std::sync::Mutex<FakeState>,
}

/// The sending side of one fake subscription.
type Subscriber = tokio::sync::mpsc::UnboundedSender<Result<Envelope, ApiError>>;

#[derive(Default)]
struct FakeState {
    stored: Vec<Envelope>,
    subscribers: Vec<(Vec<String>, Subscriber)>,
    /// Calls refused with Unavailable before the node answers again.
    refuse_next: u32,
    subscribe_calls: u32,
}

impl FakeNode {
    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends every subscription (the streams end without an error) and
    /// refuses the next `refusals` calls.
    pub(crate) fn restart(&self, refusals: u32) {
        let mut state = self.state();
        state.subscribers.clear();
        state.refuse_next = refusals;
    }

    /// Stores envelopes without telling subscribers, as if published while
    /// they were cut off.
    pub(crate) fn store_quietly(&self, envelopes: Vec<Envelope>) {
        self.state().stored.extend(envelopes);
    }

    /// Sends an envelope to subscribers without storing it (a node that
    /// repeats itself).
    pub(crate) fn broadcast_only(&self, envelope: &Envelope) {
        let state = self.state();
        for (topics, sender) in &state.subscribers {
            if topics.contains(&envelope.content_topic) {
                let _ = sender.send(Ok(envelope.clone()));
            }
        }
    }

    /// How many subscribe calls were made, refused ones included.
    pub(crate) fn subscribe_calls(&self) -> u32 {
        self.state().subscribe_calls
    }

    fn refuse(state: &mut FakeState) -> Result<(), ApiError> {
        if state.refuse_next > 0 {
            state.refuse_next -= 1;
            return Err(ApiError::Unavailable("fake node restarting".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl XmtpApi for FakeNode {
    async fn publish(&self, envelopes: Vec<Envelope>) -> Result<(), ApiError> {
        let mut state = self.state();
        Self::refuse(&mut state)?;
        for envelope in envelopes {
            if state.stored.contains(&envelope) {
                continue;
            }
            state.stored.push(envelope.clone());
            for (topics, sender) in &state.subscribers {
                if topics.contains(&envelope.content_topic) {
                    let _ = sender.send(Ok(envelope.clone()));
                }
            }
        }
        Ok(())
    }

    async fn query(&self, request: QueryRequest) -> Result<QueryResponse, ApiError> {
        use xmtp_proto::xmtp::message_api::v1::{
            cursor, Cursor, IndexCursor, PagingInfo, SortDirection,
        };
        let mut state = self.state();
        Self::refuse(&mut state)?;
        let info = request.paging_info.clone().unwrap_or_default();
        let limit = if info.limit == 0 {
            100
        } else {
            info.limit as usize
        };
        let mut matching: Vec<Envelope> = state
            .stored
            .iter()
            .filter(|e| request.content_topics.contains(&e.content_topic))
            .filter(|e| request.start_time_ns == 0 || e.timestamp_ns >= request.start_time_ns)
            .filter(|e| request.end_time_ns == 0 || e.timestamp_ns <= request.end_time_ns)
            .cloned()
            .collect();
        matching.sort_by_key(|e| e.timestamp_ns);
        if info.direction != SortDirection::Ascending as i32 {
            matching.reverse();
        }
        // The fake's cursor is the offset of the next page.
        let offset = match info.cursor.and_then(|c| c.cursor) {
            Some(cursor::Cursor::Index(index)) => index.sender_time_ns as usize,
            None => 0,
        };
        let page: Vec<Envelope> = matching.iter().skip(offset).take(limit).cloned().collect();
        let cursor = (page.len() == limit).then(|| Cursor {
            cursor: Some(cursor::Cursor::Index(IndexCursor {
                digest: vec![],
                sender_time_ns: (offset + limit) as u64,
            })),
        });
        Ok(QueryResponse {
            envelopes: page,
            paging_info: Some(PagingInfo {
                limit: limit as u32,
                cursor,
                direction: info.direction,
            }),
        })
    }

    async fn batch_query(
        &self,
        requests: Vec<QueryRequest>,
    ) -> Result<Vec<QueryResponse>, ApiError> {
        let mut responses = Vec::new();
        for request in requests {
            responses.push(self.query(request).await?);
        }
        Ok(responses)
    }

    async fn subscribe(&self, topics: Vec<String>) -> Result<EnvelopeStream, ApiError> {
        use futures::StreamExt;
        let mut state = self.state();
        state.subscribe_calls += 1;
        Self::refuse(&mut state)?;
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        state.subscribers.push((topics, sender));
        Ok(tokio_stream::wrappers::UnboundedReceiverStream::new(receiver).boxed())
    }

    async fn subscribe_all(&self) -> Result<EnvelopeStream, ApiError> {
        refused()
    }
    async fn register_installation(&self, _: InstallationPublicKeyBundle) -> Result<(), ApiError> {
        refused()
    }
    async fn upload_one_time_keys(
        &self,
        _: Vec<u8>,
        _: Vec<SignedCurve25519Key>,
    ) -> Result<u32, ApiError> {
        refused()
    }
    async fn count_one_time_keys(&self, _: Vec<u8>) -> Result<u32, ApiError> {
        refused()
    }
    async fn get_installations(
        &self,
        _: Vec<String>,
    ) -> Result<Vec<AddressInstallations>, ApiError> {
        refused()
    }
    async fn claim_one_time_keys(&self, _: Vec<Vec<u8>>) -> Result<Vec<ClaimedKey>, ApiError> {
        refused()
    }
    async fn publish_revocation(&self, _: WalletRevocation) -> Result<(), ApiError> {
        refused()
    }
}
