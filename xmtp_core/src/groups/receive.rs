//! The receiving side of groups.
//!
//! ```text
//! Olm (receive step, one transaction):  GroupPayload from a verified installation -> group_inbox
//! sync_groups:
//!   group_inbox   log         verify each new change's signature, and its signer installation
//!                             against the signer's verified contacts -> group_log; a removal
//!                             marks this installation's outbound session for rotation
//!                 key share   the sender must be a member; the inbound session is bound to the
//!                             sending installation and address -> group_inbound
//!                 key request the requester must be a member installation: its key is sent again
//!   group topics  GroupEnvelope -> inbound session of (group, installation, session id)?
//!                             yes: Megolm decrypt, check the plaintext against the binding, store
//!                             no:  keep in group_pending, ask the sender's installation for the key
//!   pending       decrypted as soon as their key is there
//! ```
//!
//! Replays: an envelope seen before (by digest) is skipped, and a message id
//! is stored once. A message whose sender is not a member when it is read
//! is kept pending, not shown (so a removed member's session, still held by
//! the others, cannot be used to speak in the group; the price is that
//! messages a member sent just before its removal and read after it are not
//! shown), and likewise a key share from a non-member is kept unused; a
//! message from a known-revoked installation is refused.

use std::collections::BTreeSet;

use futures::StreamExt;
use prost::Message as _;
use xmtp_cryptography::{megolm::GroupSessionKey, Address, InboundGroupSession, InstallationId};
use xmtp_proto::xmtp::{
    message_api::v1::{Envelope, PagingInfo, QueryRequest, SortDirection},
    v3::message_contents::{
        group_payload, GroupEnvelope, GroupKeyRequest, GroupMessagePlaintext, GroupPayload,
    },
};

use super::{group_topic, load_state, membership, send::olm_plaintext, stored_log, KIND_GROUP};
use crate::{
    error::ClientError,
    storage::{
        EnvelopeOutcome, GroupInboxRecord, MessageRecord, PendingGroupMessage, ProcessedEnvelope,
        StorageTx,
    },
    sync::envelope_digest,
    time::now_ns,
    Client,
};

/// What a group sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupSyncSummary {
    /// Group payloads applied from the inbox (logs, keys, key requests).
    pub applied: usize,
    /// New group messages stored.
    pub new_messages: usize,
    /// Messages still waiting for their key.
    pub pending: usize,
    /// Group envelopes refused.
    pub failed: usize,
}

/// The receive step's part: queues a group payload from a verified sender,
/// in the receive step's transaction.
pub(crate) fn queue_payload(
    tx: &StorageTx<'_>,
    sender_installation: &InstallationId,
    sender_address: &Address,
    payload: &GroupPayload,
    now: u64,
) -> Result<(), ClientError> {
    tx.push_group_inbox(
        &GroupInboxRecord {
            id: rand::random::<[u8; 16]>().to_vec(),
            sender_address: sender_address.to_checksum(),
            sender_installation: sender_installation.as_bytes().to_vec(),
            payload: zeroize::Zeroizing::new(payload.encode_to_vec()),
        },
        now,
    )?;
    Ok(())
}

/// What became of one group envelope.
enum Outcome {
    Stored,
    Duplicate,
    Pending,
    Failed(String),
}

/// Decrypts a group envelope with a stored inbound session, checks it
/// against the session's binding and stores the message.
fn open_envelope(
    tx: &StorageTx<'_>,
    pickle_key: &xmtp_cryptography::SecretKey,
    env: &GroupEnvelope,
    now: u64,
) -> Result<Outcome, ClientError> {
    let Some((bound_address, pickle)) =
        tx.inbound_group_session(&env.group_id, &env.sender_installation_key, &env.session_id)?
    else {
        return Ok(Outcome::Pending);
    };
    // The sender must still be a member, and its installation not revoked
    // (as far as the verified contacts stored here know).
    let Ok(id) = <[u8; 32]>::try_from(env.group_id.as_slice()) else {
        return Ok(Outcome::Failed("malformed group id".into()));
    };
    let member = load_state(tx, &id)?.is_some_and(|s| {
        bound_address
            .parse::<Address>()
            .is_ok_and(|a| s.members.contains(&a))
    });
    if !member {
        // Kept: the change that makes the sender a member may still be on
        // its way. A removed member's messages stay here, never shown.
        return Ok(Outcome::Pending);
    }
    if tx
        .installation(&env.sender_installation_key)?
        .is_some_and(|i| i.revoked_ns.is_some())
    {
        return Ok(Outcome::Failed(
            "group message from a revoked installation".into(),
        ));
    }
    let mut session = InboundGroupSession::from_pickle(&pickle, pickle_key)
        .map_err(|e| ClientError::Crypto(format!("stored group session: {e}")))?;
    let decrypted = match session.decrypt(&env.ciphertext) {
        Ok(d) => d,
        Err(e) => return Ok(Outcome::Failed(format!("group message: {e}"))),
    };
    let Ok(p) = GroupMessagePlaintext::decode(decrypted.plaintext.as_slice()) else {
        return Ok(Outcome::Failed("malformed group plaintext".into()));
    };
    if p.group_id != env.group_id
        || p.sender_installation_key != env.sender_installation_key
        || p.sender_address != bound_address
    {
        return Ok(Outcome::Failed(
            "group plaintext does not match its envelope or its session's sender".into(),
        ));
    }
    if p.message_id.len() != 16 {
        return Ok(Outcome::Failed("group message id is not 16 bytes".into()));
    }
    let Some(content) = p.content else {
        return Ok(Outcome::Failed("group message has no content".into()));
    };
    let conversation = hex::encode(&env.group_id);
    let inserted = tx.insert_message(&MessageRecord {
        seq: 0,
        message_id: p.message_id.clone(),
        conversation_id: conversation.clone(),
        sender_address: bound_address,
        sender_installation: env.sender_installation_key.clone(),
        sent_ns: p.sent_ns,
        received_ns: now,
        content: content.encode_to_vec(),
        conversation_kind: KIND_GROUP.into(),
    })?;
    if !inserted {
        return Ok(Outcome::Duplicate);
    }
    tx.touch_conversation(&conversation, KIND_GROUP, None, p.sent_ns, now)?;
    Ok(Outcome::Stored)
}

impl Client {
    /// Applies group payloads received over Olm, pulls every group's topic
    /// and decrypts messages whose key has arrived. [`Client::sync`] runs it
    /// after pulling the inbox.
    pub async fn sync_groups(&self) -> Result<GroupSyncSummary, ClientError> {
        let mut summary = GroupSyncSummary {
            applied: self.apply_group_inbox().await?,
            ..Default::default()
        };
        let (stored, pending) = self.retry_pending()?;
        summary.new_messages += stored;
        let topics = self.sync_group_topics().await?;
        summary.new_messages += topics.new_messages;
        summary.failed += topics.failed;
        summary.pending = pending.max(topics.pending);
        Ok(summary)
    }

    /// The topics of every known group.
    pub(crate) fn group_topics(&self) -> Result<Vec<String>, ClientError> {
        let ids = self.inner.storage.transaction(|tx| tx.group_ids())?;
        Ok(ids
            .iter()
            .filter_map(|id| <[u8; 32]>::try_from(id.as_slice()).ok())
            .map(|id| group_topic(&id))
            .collect())
    }

    /// For the follower, after each streamed envelope: applies queued group
    /// payloads and decrypts messages whose key came. Returns whether the
    /// set of group topics differs from `followed`.
    pub(crate) async fn apply_group_updates(
        &self,
        followed: &[String],
    ) -> Result<bool, ClientError> {
        let queued = self.inner.storage.transaction(|tx| tx.group_inbox())?;
        if !queued.is_empty() {
            self.apply_group_inbox().await?;
            self.retry_pending()?;
        }
        Ok(self.group_topics()? != followed)
    }

    /// Pulls every known group's topic (not the inbox): messages whose key
    /// is missing are kept, and their keys requested.
    pub async fn sync_group_topics(&self) -> Result<GroupSyncSummary, ClientError> {
        let ids = self.inner.storage.transaction(|tx| tx.group_ids())?;
        let mut summary = GroupSyncSummary::default();
        let lookback =
            u64::try_from(self.inner.options.sync_lookback.as_nanos()).unwrap_or(u64::MAX);
        for id in ids {
            let Ok(id) = <[u8; 32]>::try_from(id.as_slice()) else {
                continue;
            };
            let topic = group_topic(&id);
            let cursor = self.inner.storage.transaction(|tx| tx.cursor(&topic))?;
            let request = QueryRequest {
                content_topics: vec![topic.clone()],
                start_time_ns: cursor
                    .map(|c| c.saturating_sub(lookback).max(1))
                    .unwrap_or(0),
                end_time_ns: 0,
                paging_info: Some(PagingInfo {
                    limit: 100,
                    cursor: None,
                    direction: SortDirection::Ascending as i32,
                }),
            };
            let mut envelopes = self.inner.api.query_envelopes(request);
            let mut batch = Vec::new();
            while let Some(envelope) = envelopes.next().await {
                batch.push(envelope?);
            }
            drop(envelopes);
            for envelope in batch {
                match self.process_group_envelope_inner(envelope).await? {
                    Outcome::Stored => summary.new_messages += 1,
                    Outcome::Pending => summary.pending += 1,
                    Outcome::Failed(_) => summary.failed += 1,
                    Outcome::Duplicate => {}
                }
            }
        }
        if summary.new_messages > 0 {
            self.notify_stored();
        }
        Ok(summary)
    }

    /// Processes one envelope of a group topic; `Ok(false)` when it waits
    /// for its key.
    pub async fn process_group_envelope(&self, envelope: Envelope) -> Result<bool, ClientError> {
        let outcome = self.process_group_envelope_inner(envelope).await?;
        if matches!(outcome, Outcome::Stored) {
            self.notify_stored();
        }
        Ok(!matches!(outcome, Outcome::Pending))
    }

    async fn process_group_envelope_inner(
        &self,
        envelope: Envelope,
    ) -> Result<Outcome, ClientError> {
        let digest = envelope_digest(&envelope);
        let now = now_ns();
        let pickle_key = &self.inner.pickle_key;
        let me = self.inner.installation_id.as_bytes().to_vec();
        let (outcome, request) = self.inner.storage.transaction_relaxed(|tx| {
            if tx.is_processed(&digest)? {
                return Ok::<_, ClientError>((Outcome::Duplicate, None));
            }
            let decoded = GroupEnvelope::decode(envelope.message.as_slice())
                .ok()
                .filter(|e| e.version == super::GROUP_ENVELOPE_VERSION)
                .filter(|e| {
                    e.group_id.len() == 32
                        && group_topic(&e.group_id.clone().try_into().unwrap_or([0; 32]))
                            == envelope.content_topic
                });
            let (outcome, request) = match decoded {
                None => (Outcome::Failed("malformed group envelope".into()), None),
                Some(env) if env.sender_installation_key == me => (Outcome::Duplicate, None),
                Some(env) => match open_envelope(tx, pickle_key, &env, now)? {
                    Outcome::Pending => {
                        let fresh = tx.push_group_pending(
                            &PendingGroupMessage {
                                digest: digest.clone(),
                                group_id: env.group_id.clone(),
                                sender_installation: env.sender_installation_key.clone(),
                                session_id: env.session_id.clone(),
                                envelope: envelope.message.clone(),
                            },
                            now,
                        )?;
                        (Outcome::Pending, fresh.then_some(env))
                    }
                    other => (other, None),
                },
            };
            tx.mark_processed(
                &ProcessedEnvelope {
                    digest: digest.clone(),
                    topic: envelope.content_topic.clone(),
                    timestamp_ns: envelope.timestamp_ns,
                    outcome: match &outcome {
                        Outcome::Failed(r) => EnvelopeOutcome::Failed(r.clone()),
                        _ => EnvelopeOutcome::Accepted,
                    },
                },
                now,
            )?;
            tx.advance_cursor(&envelope.content_topic, envelope.timestamp_ns.min(now))?;
            Ok((outcome, request))
        })?;
        if let Outcome::Failed(reason) = &outcome {
            tracing::warn!(%reason, "refused group envelope");
        }
        if let Some(env) = request {
            if let Err(e) = self.request_key(&env).await {
                tracing::warn!(error = %e, "could not request a missing group key");
            }
        }
        Ok(outcome)
    }

    /// Asks the sending installation of `env` for its session key, over Olm.
    async fn request_key(&self, env: &GroupEnvelope) -> Result<(), ClientError> {
        let Ok(address) = env.sender_address.parse::<Address>() else {
            return Ok(());
        };
        let Some(installation) = InstallationId::from_slice(&env.sender_installation_key) else {
            return Ok(());
        };
        let inner = &self.inner;
        let sender = match inner
            .contacts
            .verify_sender(inner.api.as_ref(), &inner.storage, &address, &installation)
            .await?
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "not asking an unverified installation for a group key");
                return Ok(());
            }
        };
        let payload = GroupPayload {
            group_id: env.group_id.clone(),
            kind: Some(group_payload::Kind::KeyRequest(GroupKeyRequest {
                session_id: env.session_id.clone(),
            })),
        };
        let me = inner.address;
        let (_, published) = self
            .fan_out(
                std::slice::from_ref(&sender),
                None,
                |r| olm_plaintext(me, r, &payload),
                |_| Ok(()),
            )
            .await?;
        published?;
        tracing::info!(group = %hex::encode(&env.group_id), installation = %installation, "requested a missing group key");
        Ok(())
    }

    /// Asks again for the key of every message still waiting for one.
    pub async fn request_missing_group_keys(&self) -> Result<usize, ClientError> {
        let pending = self.inner.storage.transaction(|tx| tx.group_pending())?;
        let mut asked = BTreeSet::new();
        for p in pending {
            let key = (p.sender_installation.clone(), p.session_id.clone());
            if asked.contains(&key) {
                continue;
            }
            if let Ok(env) = GroupEnvelope::decode(p.envelope.as_slice()) {
                self.request_key(&env).await?;
                asked.insert(key);
            }
        }
        Ok(asked.len())
    }

    /// Decrypts pending messages whose key has arrived; returns (stored, still pending).
    fn retry_pending(&self) -> Result<(usize, usize), ClientError> {
        let now = now_ns();
        let pickle_key = &self.inner.pickle_key;
        let (stored, left) = self.inner.storage.transaction_relaxed(|tx| {
            let mut stored = 0;
            let mut left = 0;
            for p in tx.group_pending()? {
                let Ok(env) = GroupEnvelope::decode(p.envelope.as_slice()) else {
                    tx.delete_group_pending(&p.digest)?;
                    continue;
                };
                match open_envelope(tx, pickle_key, &env, now)? {
                    Outcome::Pending => left += 1,
                    Outcome::Stored => {
                        stored += 1;
                        tx.delete_group_pending(&p.digest)?;
                    }
                    Outcome::Duplicate => tx.delete_group_pending(&p.digest)?,
                    Outcome::Failed(reason) => {
                        tracing::warn!(%reason, "refused a pending group message");
                        tx.delete_group_pending(&p.digest)?;
                    }
                }
            }
            Ok::<_, ClientError>((stored, left))
        })?;
        if stored > 0 {
            self.notify_stored();
        }
        Ok((stored, left))
    }

    /// Applies the queued group payloads; returns how many were applied.
    async fn apply_group_inbox(&self) -> Result<usize, ClientError> {
        let inner = &self.inner;
        let rows = inner.storage.transaction(|tx| tx.group_inbox())?;
        let mut applied = 0;
        for row in rows {
            let keep = self.apply_one(&row).await?;
            if !keep {
                inner
                    .storage
                    .transaction(|tx| tx.delete_group_inbox(&row.id))?;
                applied += 1;
            }
        }
        Ok(applied)
    }

    /// Applies one queued payload; `Ok(true)` to keep it for later (its
    /// group is not known yet).
    async fn apply_one(&self, row: &GroupInboxRecord) -> Result<bool, ClientError> {
        let inner = &self.inner;
        let Ok(payload) = GroupPayload::decode(row.payload.as_slice()) else {
            return Ok(false);
        };
        let Ok(id) = <[u8; 32]>::try_from(payload.group_id.as_slice()) else {
            return Ok(false);
        };
        let Ok(sender) = row.sender_address.parse::<Address>() else {
            return Ok(false);
        };
        let Some(sender_installation) = InstallationId::from_slice(&row.sender_installation) else {
            return Ok(false);
        };
        match payload.kind {
            Some(group_payload::Kind::Log(log)) => {
                let mut fresh = Vec::new();
                for signed in &log.changes {
                    let Ok(v) = membership::verify(signed) else {
                        tracing::warn!("refused a group change whose signature does not verify");
                        continue;
                    };
                    if inner
                        .storage
                        .transaction(|tx| tx.has_group_change(&id, &v.hash))?
                    {
                        continue;
                    }
                    let binding = inner
                        .contacts
                        .verify_sender(
                            inner.api.as_ref(),
                            &inner.storage,
                            &v.signer,
                            &v.installation,
                        )
                        .await?;
                    if let Err(e) = binding {
                        tracing::warn!(error = %e, "refused a group change signed by an installation not (or no longer) of its address");
                        continue;
                    }
                    fresh.push(v);
                }
                let me = inner.address;
                let theirs: BTreeSet<Vec<u8>> = log
                    .changes
                    .iter()
                    .filter_map(|c| membership::verify(c).ok())
                    .map(|v| v.hash.to_vec())
                    .collect();
                let gossip_to = inner.storage.transaction(|tx| {
                    let before = load_state(tx, &id)?;
                    for v in &fresh {
                        tx.insert_group_change(&id, &v.hash, &v.signed.encode_to_vec())?;
                    }
                    let after = load_state(tx, &id)?;
                    if let Some(after) = &after {
                        if after.members.contains(&me) || before.is_some() {
                            tx.insert_group(&id, now_ns())?;
                        }
                        let shrunk = before
                            .as_ref()
                            .is_some_and(|b| b.members.iter().any(|m| !after.members.contains(m)));
                        if shrunk {
                            tx.mark_group_rotation(&id)?;
                        }
                    }
                    // The sender lacked changes held here while sending new
                    // ones: concurrent changes. Send the merged log on.
                    let mine = stored_log(tx, &id)?;
                    let sender_lacks = mine
                        .iter()
                        .filter_map(|c| membership::verify(c).ok())
                        .any(|v| !theirs.contains(v.hash.as_slice()));
                    let gossip = !fresh.is_empty() && sender_lacks;
                    Ok::<_, ClientError>(match (gossip, after) {
                        (true, Some(after)) => {
                            let mut to = after.members.clone();
                            if let Some(b) = before {
                                to.extend(b.members);
                            }
                            Some(to)
                        }
                        _ => None,
                    })
                })?;
                if let Some(to) = gossip_to {
                    if let Err(e) = self.resend_log(&id, to).await {
                        tracing::warn!(error = %e, "could not pass a merged group log on");
                    }
                }
                Ok(false)
            }
            Some(group_payload::Kind::KeyShare(share)) => {
                let pickle_key = &inner.pickle_key;
                inner.storage.transaction(|tx| {
                    let Some(state) = load_state(tx, &id)? else {
                        return Ok::<_, ClientError>(true);
                    };
                    if !state.members.contains(&sender) {
                        // Kept until the sender is a member (the change that
                        // adds it may arrive later); never used before.
                        tracing::debug!(group = %hex::encode(id), "group key from a non-member kept for later");
                        return Ok(true);
                    }
                    let Ok(key) = GroupSessionKey::from_bytes(&share.session_key) else {
                        return Ok(false);
                    };
                    let session = InboundGroupSession::new(&key);
                    if session.session_id() != share.session_id {
                        return Ok(false);
                    }
                    if let Some((_, existing)) = tx.inbound_group_session(
                        &id,
                        sender_installation.as_bytes(),
                        &share.session_id,
                    )? {
                        let existing = InboundGroupSession::from_pickle(&existing, pickle_key)
                            .map_err(|e| ClientError::Crypto(e.to_string()))?;
                        if existing.first_known_index() <= session.first_known_index() {
                            return Ok(false);
                        }
                    }
                    tx.save_inbound_group_session(
                        &id,
                        sender_installation.as_bytes(),
                        &share.session_id,
                        &sender.to_checksum(),
                        &session.pickle(pickle_key),
                    )?;
                    Ok(false)
                })
            }
            Some(group_payload::Kind::KeyRequest(request)) => {
                let (state, key) = inner.storage.transaction(|tx| {
                    Ok::<_, ClientError>((
                        load_state(tx, &id)?,
                        tx.group_share(&id, &request.session_id, sender_installation.as_bytes())?,
                    ))
                })?;
                let member = state.is_some_and(|s| s.members.contains(&sender));
                let (true, Some(key)) = (member, key) else {
                    tracing::warn!(group = %hex::encode(id), "ignored a group key request (not a member, or never given that key)");
                    return Ok(false);
                };
                let requester = inner
                    .contacts
                    .verify_sender(
                        inner.api.as_ref(),
                        &inner.storage,
                        &sender,
                        &sender_installation,
                    )
                    .await?;
                let Ok(requester) = requester else {
                    return Ok(false);
                };
                let Ok(key) = GroupSessionKey::from_bytes(&key) else {
                    return Ok(false);
                };
                self.send_key(&id, &request.session_id, &key, &[requester])
                    .await?;
                Ok(false)
            }
            None => Ok(false),
        }
    }
}
