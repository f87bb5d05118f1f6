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
    Address, InstallationId, InstallationKeys, OlmCiphertext, OlmMessageType, SecretKey,
    VerifiedInstallation,
};
use xmtp_proto::xmtp::{
    message_api::v1::{Envelope, PagingInfo, QueryRequest, SortDirection},
    v3::message_contents::OlmEnvelope,
};

use crate::{
    client::Client,
    conversations::store_direct,
    error::ClientError,
    messages::{decode_payload, InstallationPayload, Message},
    sessions::{self, Decrypted},
    storage::{EnvelopeOutcome, ProcessedEnvelope, StorageTx},
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
pub(crate) struct Authenticated {
    pub(crate) sender: VerifiedInstallation,
    pub(crate) address: Address,
    pub(crate) ciphertext: OlmCiphertext,
}

/// This installation, as the receive step sees it.
pub(crate) struct Receiver<'a> {
    pub(crate) address: Address,
    pub(crate) installation_id: InstallationId,
    pub(crate) pickle_key: &'a SecretKey,
}

/// What the receive step did.
pub(crate) struct Accepted {
    pub(crate) result: EnvelopeResult,
    /// A new inbound session spent one of this installation's one-time keys.
    pub(crate) spent_one_time_key: bool,
}

/// The receive step, sans I/O: decrypts an envelope whose sender verified,
/// checks the payload against the envelope and this installation, and writes
/// every effect (session, account, message, conversation, processed mark,
/// cursor) in `tx`. Hostile input yields [`EnvelopeResult::Failed`], recorded.
pub(crate) fn accept(
    tx: &StorageTx<'_>,
    me: &Receiver<'_>,
    keys: &mut InstallationKeys,
    envelope: &Envelope,
    digest: &[u8],
    a: &Authenticated,
    now: u64,
) -> Result<Accepted, ClientError> {
    let done = |result| {
        Ok(Accepted {
            result,
            spent_one_time_key: false,
        })
    };
    if tx.is_processed(digest)? {
        return done(EnvelopeResult::Duplicate);
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
            cursor_time(envelope.timestamp_ns, now),
        )?;
        Ok(())
    };
    let failed = |reason: String, spent: bool| -> Result<Accepted, ClientError> {
        finish(EnvelopeOutcome::Failed(reason.clone()))?;
        Ok(Accepted {
            result: EnvelopeResult::Failed(reason),
            spent_one_time_key: spent,
        })
    };
    let Decrypted {
        plaintext,
        new_session,
    } = match sessions::decrypt_from(tx, me.pickle_key, keys, &a.sender, &a.ciphertext, now)? {
        Ok(d) => d,
        Err(e) => return failed(e.to_string(), false),
    };
    if new_session {
        let pickle = keys
            .pickle(me.pickle_key)
            .map_err(|e| ClientError::Crypto(e.to_string()))?;
        tx.update_account_pickle(me.installation_id.as_bytes(), &pickle)?;
    }
    let payload = match decode_payload(&plaintext) {
        Ok(p) => p,
        Err(e) => return failed(format!("invalid payload: {e}"), new_session),
    };
    if payload.sender_address() != a.address {
        return failed(
            "sender address inside the ciphertext differs from the envelope's".into(),
            new_session,
        );
    }
    if payload.recipient_installation_key() != me.installation_id.as_bytes() {
        return failed(
            "message was encrypted for another installation".into(),
            new_session,
        );
    }
    let received = match payload {
        InstallationPayload::Direct(direct) => {
            store_direct(tx, me.address, a.sender.installation_id(), direct, now)?
        }
        InstallationPayload::Group(group) => {
            let sender = a.sender.installation_id();
            crate::groups::queue_payload(tx, &sender, &a.address, &group.payload, now)?;
            Ok(None)
        }
    };
    let result = match received {
        Err(reason) => return failed(reason, new_session),
        Ok(None) => EnvelopeResult::Duplicate,
        Ok(Some(message)) => EnvelopeResult::New(Box::new(message)),
    };
    finish(EnvelopeOutcome::Accepted)?;
    Ok(Accepted {
        result,
        spent_one_time_key: new_session,
    })
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
        let groups = self.sync_groups().await?;
        summary.new_messages += groups.new_messages;
        summary.failed += groups.failed;
        if self.v2_state().is_some() {
            let v2 = self.sync_v2().await?;
            summary.envelopes += v2.envelopes;
            summary.new_messages += v2.new_messages;
            summary.failed += v2.failed;
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
        let me = Receiver {
            address: inner.address,
            installation_id: inner.installation_id,
            pickle_key: &inner.pickle_key,
        };
        let accepted = inner
            .storage
            .transaction_relaxed(|tx| accept(tx, &me, keys, envelope, digest, a, now_ns()))?;
        if accepted.spent_one_time_key {
            inner
                .spent_one_time_keys
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(accepted.result)
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

#[cfg(test)]
mod tests {
    use xmtp_cryptography::LocalWallet;

    use super::*;
    use crate::{
        content::encode_text,
        messages::DirectMessage,
        storage::MessagePage,
        test_support::{side, Side},
    };

    /// Alice's installation encrypts `plaintext` for Bob's and wraps it
    /// as it would travel; returns the envelope and what Bob's client knows
    /// after verifying the sender.
    fn envelope(
        alice: &Side,
        bob: &Side,
        plaintext: &[u8],
        timestamp_ns: u64,
    ) -> (Envelope, Authenticated) {
        let claim = bob.public.fallback_as_claimed();
        let ciphertext = alice
            .storage
            .transaction(|tx| {
                sessions::encrypt_for(
                    tx,
                    alice.storage.pickle_key(),
                    &alice.keys,
                    &bob.public,
                    Some(&claim),
                    plaintext,
                    1,
                )
            })
            .unwrap();
        let (t, bytes) = ciphertext.to_parts();
        let olm = OlmEnvelope {
            version: 1,
            sender_installation_key: alice.public.installation_id().as_bytes().to_vec(),
            sender_identity_key: alice.public.identity_key().to_vec(),
            sender_address: alice.address.to_checksum(),
            message_type: t.as_u64() as u32,
            ciphertext: bytes,
        };
        let envelope = Envelope {
            content_topic: crate::installation_topic(&bob.public.installation_id()),
            timestamp_ns,
            message: olm.encode_to_vec(),
        };
        (
            envelope,
            Authenticated {
                sender: alice.public.clone(),
                address: alice.address,
                ciphertext,
            },
        )
    }

    fn direct(from: &Side, to: &Side, peer: Address, text: &str, id: u8) -> Vec<u8> {
        DirectMessage {
            message_id: [id; 16],
            sender_address: from.address,
            recipient_installation_key: to.public.installation_id().as_bytes().to_vec(),
            peer_address: peer,
            sent_ns: u64::from(id),
            content: encode_text(text),
        }
        .encode()
    }

    fn run(bob: &mut Side, envelope: &Envelope, a: &Authenticated) -> Accepted {
        let digest = envelope_digest(envelope);
        let Side {
            keys,
            public,
            address,
            storage,
        } = bob;
        let me = Receiver {
            address: *address,
            installation_id: public.installation_id(),
            pickle_key: storage.pickle_key(),
        };
        storage
            .transaction(|tx| accept(tx, &me, keys, envelope, &digest, a, 10))
            .unwrap()
    }

    #[test]
    fn a_message_is_accepted_once_and_its_duplicate_changes_nothing() {
        let alice = side(&LocalWallet::random());
        let mut bob = side(&LocalWallet::random());
        let (env, a) = envelope(&alice, &bob, &direct(&alice, &bob, bob.address, "hi", 1), 5);
        let first = run(&mut bob, &env, &a);
        assert!(
            first.spent_one_time_key,
            "a fallback-key session counts as a spent pre-key"
        );
        let EnvelopeResult::New(m) = first.result else {
            panic!("not accepted")
        };
        assert_eq!(m.text().as_deref(), Some("hi"));
        assert_eq!(m.conversation_id, alice.address.to_checksum());
        assert_eq!(run(&mut bob, &env, &a).result, EnvelopeResult::Duplicate);
        let stored = bob
            .storage
            .transaction(|tx| tx.messages(&m.conversation_id, &MessagePage::default()))
            .unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(
            bob.storage
                .transaction(|tx| tx.cursor(&env.content_topic))
                .unwrap(),
            Some(5)
        );
    }

    #[test]
    fn the_same_message_id_in_another_envelope_is_a_duplicate() {
        let alice = side(&LocalWallet::random());
        let mut bob = side(&LocalWallet::random());
        let (e1, a1) = envelope(&alice, &bob, &direct(&alice, &bob, bob.address, "hi", 1), 5);
        let (e2, a2) = envelope(
            &alice,
            &bob,
            &direct(&alice, &bob, bob.address, "hi again", 1),
            6,
        );
        assert!(matches!(
            run(&mut bob, &e1, &a1).result,
            EnvelopeResult::New(_)
        ));
        assert_eq!(run(&mut bob, &e2, &a2).result, EnvelopeResult::Duplicate);
    }

    #[test]
    fn payloads_that_contradict_the_envelope_are_refused_and_recorded() {
        let alice = side(&LocalWallet::random());
        let mut bob = side(&LocalWallet::random());
        let carol = side(&LocalWallet::random());
        let cases = [
            // Claims another sender inside the ciphertext.
            (
                direct(&carol, &bob, bob.address, "x", 1),
                "sender address inside",
            ),
            // Encrypted for another installation (a copy replayed to Bob).
            (
                direct(&alice, &carol, bob.address, "x", 2),
                "another installation",
            ),
            // A conversation between Alice and Carol, delivered to Bob.
            (direct(&alice, &bob, carol.address, "x", 3), "not part of"),
            // Not a payload at all.
            (vec![0xff, 0x01], "invalid payload"),
        ];
        for (i, (plaintext, reason)) in cases.iter().enumerate() {
            let (env, a) = envelope(&alice, &bob, plaintext, 100 + i as u64);
            match run(&mut bob, &env, &a).result {
                EnvelopeResult::Failed(r) => assert!(r.contains(reason), "{r}"),
                other => panic!("case {i} accepted: {other:?}"),
            }
        }
        let failed = bob.storage.transaction(|tx| tx.failed_envelopes()).unwrap();
        assert_eq!(failed.len(), 4);
        assert_eq!(bob.storage.transaction(|tx| tx.message_count()).unwrap(), 0);
    }

    #[test]
    fn a_copy_of_the_users_own_message_files_under_the_peer() {
        let wallet = LocalWallet::random();
        let alice1 = side(&wallet);
        let mut alice2 = side(&wallet);
        let bob = side(&LocalWallet::random());
        let (env, a) = envelope(
            &alice1,
            &alice2,
            &direct(&alice1, &alice2, bob.address, "to bob", 7),
            5,
        );
        let EnvelopeResult::New(m) = run(&mut alice2, &env, &a).result else {
            panic!("not accepted")
        };
        assert_eq!(m.conversation_id, bob.address.to_checksum());
        assert_eq!(m.sender_address, alice1.address.to_checksum());
    }

    #[test]
    fn the_cursor_never_passes_the_local_clock() {
        assert_eq!(cursor_time(5, 10), 5);
        assert_eq!(cursor_time(u64::MAX, 10), 10);
    }
}
