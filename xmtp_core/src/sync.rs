//! Receiving: from envelopes on the installation's topic to stored messages.
//!
//! For each envelope, in this order:
//!
//! ```text
//! digest = sha256(topic || message)            seen before?            -> duplicate, nothing changes
//! decode OlmEnvelope                           malformed?              -> recorded as failed
//! sender installation ∈ verified installations of the claimed address,
//!   not revoked, identity key matches          otherwise               -> recorded as failed
//! Olm decrypt (existing session, or inbound from a pre-key message)
//! InstallationMessage: sender inside = sender outside, recipient = this installation,
//!   conversation involves this address         otherwise               -> recorded as failed
//! store message + session + processed mark + cursor, in one transaction
//! ```
//!
//! Every failure is recorded against the envelope's digest and never stops a
//! sync. A message id already stored is not stored again, and Olm refuses to
//! decrypt a message twice, so a replayed envelope changes nothing.
//!
//! `sync` pages through the topic in ascending order from the stored cursor,
//! minus a look-back window, because envelope timestamps are the senders'
//! clocks and a late envelope may carry an earlier time. For the same reason
//! an envelope never moves the cursor past the local clock: a forged envelope
//! dated in the far future cannot make later syncs skip everything.

use futures::StreamExt;
use prost::Message as _;
use sha2::{Digest, Sha256};
use xmtp_cryptography::{
    Address, InstallationId, InstallationKeys, OlmCiphertext, OlmMessageType, VerifiedInstallation,
};
use xmtp_proto::xmtp::{
    message_api::v1::{Envelope, PagingInfo, QueryRequest, SortDirection},
    v3::message_contents::OlmEnvelope,
};

use crate::{
    client::Client,
    error::ClientError,
    messages::{decode_payload, InstallationPayload, Message},
    sessions::{self, Decrypted},
    storage::{EnvelopeOutcome, ProcessedEnvelope},
    time::now_ns,
};

/// Spent one-time keys after which the stream tops them up.
const TOP_UP_AFTER_SPENT: u32 = 5;

/// What became of one envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvelopeResult {
    /// A new message was stored.
    New(Box<Message>),
    /// The envelope, or its message, was processed before: nothing changed.
    Duplicate,
    /// The envelope was refused; the reason is recorded.
    Failed(String),
}

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Envelopes read from the node.
    pub envelopes: usize,
    /// New messages stored.
    pub new_messages: usize,
    /// Envelopes refused (undecryptable, unauthentic, malformed).
    pub failed: usize,
}

/// A refused envelope, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEnvelope {
    /// Hex of sha256(topic || message).
    pub digest: String,
    /// Its timestamp.
    pub timestamp_ns: u64,
    /// Why it was refused.
    pub reason: String,
}

/// The cursor position an envelope may set: its (sender-chosen) timestamp,
/// but never past the local clock, so an envelope dated in the future cannot
/// push the cursor past the messages to come (those from senders whose clock
/// runs ahead are read again by the next sync, and skipped as duplicates).
fn cursor_time(timestamp_ns: u64, now_ns: u64) -> u64 {
    timestamp_ns.min(now_ns)
}

pub(crate) fn envelope_digest(envelope: &Envelope) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(envelope.content_topic.as_bytes());
    h.update(&envelope.message);
    h.finalize().to_vec()
}

/// An envelope whose sender verified, ready to decrypt.
struct Authenticated {
    sender: VerifiedInstallation,
    address: Address,
    ciphertext: OlmCiphertext,
}

impl Client {
    /// Pulls new envelopes from this installation's topic and processes
    /// them; publishes anything left in the outbox first.
    pub async fn sync(&self) -> Result<SyncSummary, ClientError> {
        if let Err(e) = self.flush_outbox().await {
            tracing::warn!(error = %e, "outbox not flushed; continuing with the sync");
        }
        let inner = &self.inner;
        let topic = self.inbox_topic();
        let cursor = inner.storage.transaction(|tx| tx.cursor(&topic))?;
        let lookback = u64::try_from(inner.options.sync_lookback.as_nanos()).unwrap_or(u64::MAX);
        let start = cursor
            .map(|c| c.saturating_sub(lookback).max(1))
            .unwrap_or(0);
        let request = QueryRequest {
            content_topics: vec![topic],
            start_time_ns: start,
            end_time_ns: 0,
            paging_info: Some(PagingInfo {
                limit: 100,
                cursor: None,
                direction: SortDirection::Ascending as i32,
            }),
        };
        let mut summary = SyncSummary::default();
        let mut envelopes = inner.api.query_envelopes(request);
        while let Some(envelope) = envelopes.next().await {
            summary.envelopes += 1;
            match self.process_envelope(envelope?).await? {
                EnvelopeResult::New(_) => summary.new_messages += 1,
                EnvelopeResult::Failed(_) => summary.failed += 1,
                EnvelopeResult::Duplicate => {}
            }
        }
        drop(envelopes);
        if inner
            .spent_one_time_keys
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
        {
            if let Err(e) = self.top_up_one_time_keys().await {
                tracing::warn!(error = %e, "could not top up one-time keys");
            }
        }
        Ok(summary)
    }

    /// Processes one envelope of this installation's topic (from a query, a
    /// subscription, or any other source): idempotent, and hostile input only
    /// ever yields [`EnvelopeResult::Failed`]. Errors are local failures
    /// (storage) or a node that cannot be reached to check the sender.
    pub async fn process_envelope(
        &self,
        envelope: Envelope,
    ) -> Result<EnvelopeResult, ClientError> {
        let inner = &self.inner;
        let digest = envelope_digest(&envelope);
        if inner.storage.transaction(|tx| tx.is_processed(&digest))? {
            return Ok(EnvelopeResult::Duplicate);
        }
        let authenticated = match self.authenticate(&envelope).await? {
            Ok(a) => a,
            Err(reason) => return self.record_failure(&envelope, digest, reason),
        };
        let result = {
            let mut keys = inner.keys.lock().await;
            let result = self.decrypt_and_store(&mut keys, &envelope, &digest, &authenticated);
            if result.is_err() {
                // The transaction rolled back: forget in-memory key changes too.
                if let Ok(Some(account)) = inner.storage.transaction(|tx| tx.account()) {
                    if let Ok(reloaded) =
                        InstallationKeys::from_pickle(&account.account_pickle, &inner.pickle_key)
                    {
                        *keys = reloaded;
                    }
                }
            }
            result?
        };
        match &result {
            EnvelopeResult::New(_) => {
                self.notify_stored();
                let spent = inner
                    .spent_one_time_keys
                    .load(std::sync::atomic::Ordering::SeqCst);
                if spent >= TOP_UP_AFTER_SPENT {
                    if let Err(e) = self.top_up_one_time_keys().await {
                        tracing::warn!(error = %e, "could not top up one-time keys");
                    }
                }
            }
            EnvelopeResult::Failed(reason) => {
                tracing::warn!(digest = %hex::encode(&digest), %reason, "refused envelope");
            }
            EnvelopeResult::Duplicate => {}
        }
        Ok(result)
    }

    fn record_failure(
        &self,
        envelope: &Envelope,
        digest: Vec<u8>,
        reason: String,
    ) -> Result<EnvelopeResult, ClientError> {
        tracing::warn!(digest = %hex::encode(&digest), %reason, "refused envelope");
        self.inner.storage.transaction_relaxed(|tx| {
            tx.mark_processed(
                &ProcessedEnvelope {
                    digest,
                    topic: envelope.content_topic.clone(),
                    timestamp_ns: envelope.timestamp_ns,
                    outcome: EnvelopeOutcome::Failed(reason.clone()),
                },
                now_ns(),
            )?;
            if envelope.content_topic == self.inbox_topic() {
                tx.advance_cursor(
                    &envelope.content_topic,
                    cursor_time(envelope.timestamp_ns, now_ns()),
                )?;
            }
            Ok::<_, ClientError>(())
        })?;
        Ok(EnvelopeResult::Failed(reason))
    }

    /// Decodes the envelope and verifies its sender against the claimed address.
    async fn authenticate(
        &self,
        envelope: &Envelope,
    ) -> Result<Result<Authenticated, String>, ClientError> {
        let inner = &self.inner;
        if envelope.content_topic != self.inbox_topic() {
            return Ok(Err("envelope is not on this installation's topic".into()));
        }
        let Ok(olm) = OlmEnvelope::decode(envelope.message.as_slice()) else {
            return Ok(Err("malformed envelope".into()));
        };
        if olm.version != crate::fanout::ENVELOPE_VERSION {
            return Ok(Err(format!("unsupported envelope version {}", olm.version)));
        }
        let Some(id) = InstallationId::from_slice(&olm.sender_installation_key) else {
            return Ok(Err("malformed sender installation key".into()));
        };
        if id == inner.installation_id {
            return Ok(Err("envelope claims to come from this installation".into()));
        }
        let Ok(address) = olm.sender_address.parse::<Address>() else {
            return Ok(Err("malformed sender address".into()));
        };
        let ciphertext = match OlmMessageType::from_u64(u64::from(olm.message_type))
            .and_then(|t| OlmCiphertext::from_parts(t, &olm.ciphertext))
        {
            Ok(c) => c,
            Err(e) => return Ok(Err(format!("malformed ciphertext: {e}"))),
        };
        let sender = match inner
            .contacts
            .verify_sender(inner.api.as_ref(), &inner.storage, &address, &id)
            .await?
        {
            Ok(v) => v,
            Err(e) => return Ok(Err(format!("unauthentic sender: {e}"))),
        };
        if sender.identity_key().to_vec() != olm.sender_identity_key {
            return Ok(Err(format!(
                "unauthentic sender: identity key does not match installation {id}"
            )));
        }
        if let Some(claimed) = ciphertext.sender_identity_key() {
            if claimed != sender.identity_key() {
                return Ok(Err("pre-key message names another identity key".into()));
            }
        }
        Ok(Ok(Authenticated {
            sender,
            address,
            ciphertext,
        }))
    }

    /// Decrypts and stores, in one transaction (under the keys lock).
    fn decrypt_and_store(
        &self,
        keys: &mut InstallationKeys,
        envelope: &Envelope,
        digest: &[u8],
        a: &Authenticated,
    ) -> Result<EnvelopeResult, ClientError> {
        let inner = &self.inner;
        let own_id = inner.installation_id;
        inner.storage.transaction_relaxed(|tx| {
            let now = now_ns();
            if tx.is_processed(digest)? {
                return Ok(EnvelopeResult::Duplicate);
            }
            let finish = |outcome: EnvelopeOutcome| -> Result<(), ClientError> {
                tx.mark_processed(
                    &ProcessedEnvelope {
                        digest: digest.to_vec(),
                        topic: envelope.content_topic.clone(),
                        timestamp_ns: envelope.timestamp_ns,
                        outcome,
                    },
                    now,
                )?;
                tx.advance_cursor(
                    &envelope.content_topic,
                    cursor_time(envelope.timestamp_ns, now_ns()),
                )?;
                Ok(())
            };
            let failed = |reason: String| -> Result<EnvelopeResult, ClientError> {
                finish(EnvelopeOutcome::Failed(reason.clone()))?;
                Ok(EnvelopeResult::Failed(reason))
            };
            let Decrypted {
                plaintext,
                new_session,
            } = match sessions::decrypt_from(
                tx,
                &inner.pickle_key,
                keys,
                &a.sender,
                &a.ciphertext,
                now,
            )? {
                Ok(d) => d,
                Err(e) => return failed(e.to_string()),
            };
            if new_session {
                let pickle = keys
                    .pickle(&inner.pickle_key)
                    .map_err(|e| ClientError::Crypto(e.to_string()))?;
                tx.update_account_pickle(own_id.as_bytes(), &pickle)?;
                inner
                    .spent_one_time_keys
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            let payload = match decode_payload(&plaintext) {
                Ok(p) => p,
                Err(e) => return failed(format!("invalid payload: {e}")),
            };
            if payload.sender_address() != a.address {
                return failed(
                    "sender address inside the ciphertext differs from the envelope's".into(),
                );
            }
            if payload.recipient_installation_key() != own_id.as_bytes() {
                return failed("message was encrypted for another installation".into());
            }
            let received = match payload {
                InstallationPayload::Direct(direct) => {
                    self.receive_direct(tx, a.sender.installation_id(), direct, now)?
                }
            };
            match received {
                Err(reason) => failed(reason),
                Ok(None) => {
                    finish(EnvelopeOutcome::Accepted)?;
                    Ok(EnvelopeResult::Duplicate)
                }
                Ok(Some(message)) => {
                    finish(EnvelopeOutcome::Accepted)?;
                    Ok(EnvelopeResult::New(Box::new(message)))
                }
            }
        })
    }

    /// The envelopes this installation refused, oldest first.
    pub fn failed_envelopes(&self) -> Result<Vec<FailedEnvelope>, ClientError> {
        let rows = self.inner.storage.transaction(|tx| tx.failed_envelopes())?;
        Ok(rows
            .into_iter()
            .map(|p| FailedEnvelope {
                digest: hex::encode(&p.digest),
                timestamp_ns: p.timestamp_ns,
                reason: match p.outcome {
                    EnvelopeOutcome::Failed(r) => r,
                    EnvelopeOutcome::Accepted => String::new(),
                },
            })
            .collect())
    }
}
