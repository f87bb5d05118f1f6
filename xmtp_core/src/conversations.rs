//! Direct conversations: sending to an address, and reading back.
//!
//! A direct conversation is identified by the peer's address. Sending fans a
//! message out to every installation of both parties:
//!
//! ```text
//! recipients = verified installations of the peer  ∪  verified installations of the sender
//!              minus the sending installation itself
//! for each recipient r:  Olm_r(InstallationMessage{ sender, r, DirectMessagePayload })
//!                        -> Envelope{ /xmtp/3/installation-<r>/proto, sent_ns, OlmEnvelope }
//! ```
//!
//! The ratchet steps, the outbox rows and the sender's own copy of the message
//! are committed in one transaction before anything is published, so a crash
//! never loses a ratchet step that produced a ciphertext, nor a queued
//! envelope; the outbox is flushed after the commit (and again on restart),
//! and the node stores a republished envelope once.

use std::collections::HashMap;

use prost::Message as _;
use rand::RngCore;
use xmtp_cryptography::{ClaimedPreKey, InstallationId, PreKeyKind, VerifiedInstallation};
use xmtp_proto::xmtp::{message_contents::EncodedContent, v3::message_contents::OlmEnvelope};

use crate::{
    client::{installation_topic, parse_address, Client},
    content::encode_text,
    error::ClientError,
    messages::{DirectMessage, Message, MESSAGE_ID_LEN},
    sessions,
    storage::{MessagePage, MessageRecord},
    time::now_ns,
};

/// Version of the `OlmEnvelope` this client writes.
pub(crate) const ENVELOPE_VERSION: u32 = 1;

/// The kind of a direct conversation in storage.
pub(crate) const KIND_DM: &str = "dm";

/// A conversation, with its newest message.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// Its id: for a direct conversation, the peer's address (EIP-55).
    pub id: String,
    /// `"dm"` for a direct conversation.
    pub kind: String,
    /// The peer's address, for a direct conversation.
    pub peer_address: Option<String>,
    /// When this installation first saw it.
    pub created_ns: u64,
    /// Sent time of its newest message.
    pub last_message_ns: u64,
    /// Its newest message.
    pub last_message: Option<Message>,
}

impl Client {
    /// Sends text (`xmtp.org/text:1.0`) to an address.
    pub async fn send_text(&self, peer_address: &str, text: &str) -> Result<Message, ClientError> {
        self.send(peer_address, encode_text(text)).await
    }

    /// Sends content to an address: one Olm ciphertext for each installation
    /// of the peer and each other installation of this address.
    ///
    /// Returns the stored message. If publishing fails after the message was
    /// committed, the error is [`ClientError::Queued`] and the envelopes are
    /// published by the next `sync` or `flush_outbox`.
    pub async fn send(
        &self,
        peer_address: &str,
        content: EncodedContent,
    ) -> Result<Message, ClientError> {
        self.ensure_not_revoked()?;
        let peer = parse_address(peer_address)?;
        let inner = &self.inner;
        let peer_set = inner
            .contacts
            .installations(inner.api.as_ref(), &inner.storage, &peer, false)
            .await?;
        if peer_set.installations.is_empty() {
            return Err(ClientError::PeerNotRegistered(peer.to_checksum()));
        }
        let own_set = if peer == inner.address {
            peer_set.clone()
        } else {
            inner
                .contacts
                .installations(inner.api.as_ref(), &inner.storage, &inner.address, false)
                .await?
        };
        if own_set.revoked.contains(&inner.installation_id) {
            self.check_own_revocation().await?;
            self.ensure_not_revoked()?;
        }
        let mut recipients: Vec<VerifiedInstallation> = Vec::new();
        for v in peer_set
            .installations
            .iter()
            .chain(own_set.installations.iter())
        {
            let id = v.installation_id();
            if id != inner.installation_id && !recipients.iter().any(|r| r.installation_id() == id)
            {
                recipients.push(v.clone());
            }
        }

        let mut message_id = [0u8; MESSAGE_ID_LEN];
        rand::thread_rng().fill_bytes(&mut message_id);
        let sent_ns = now_ns();
        let record = MessageRecord {
            seq: 0,
            message_id: message_id.to_vec(),
            conversation_id: peer.to_checksum(),
            sender_address: inner.address.to_checksum(),
            sender_installation: inner.installation_id.as_bytes().to_vec(),
            sent_ns,
            received_ns: sent_ns,
            content: content.encode_to_vec(),
        };

        let keys = inner.keys.lock().await;
        let without_session: Vec<InstallationId> = inner.storage.transaction(|tx| {
            let mut out = Vec::new();
            for r in &recipients {
                if !sessions::has_session(tx, r)? {
                    out.push(r.installation_id());
                }
            }
            Ok::<_, ClientError>(out)
        })?;
        let claimed = self.claim_keys(&recipients, &without_session).await?;

        let stored = inner.storage.transaction(|tx| {
            let now = now_ns();
            for r in &recipients {
                let id = r.installation_id();
                let claim = claimed.get(&id);
                if claim.is_none() && without_session.contains(&id) {
                    tracing::warn!(installation = %id, "no pre-key could be claimed; skipping this installation");
                    continue;
                }
                let plaintext = DirectMessage {
                    message_id,
                    sender_address: inner.address,
                    recipient_installation_key: id.as_bytes().to_vec(),
                    peer_address: peer,
                    sent_ns,
                    content: content.clone(),
                }
                .encode();
                let ciphertext =
                    sessions::encrypt_for(tx, &inner.pickle_key, &keys, r, claim, &plaintext, now)?;
                let (message_type, bytes) = ciphertext.to_parts();
                let envelope = OlmEnvelope {
                    version: ENVELOPE_VERSION,
                    sender_installation_key: inner.installation_id.as_bytes().to_vec(),
                    sender_identity_key: inner.identity_key.to_vec(),
                    sender_address: inner.address.to_checksum(),
                    message_type: u32::from(message_type.as_u64() == 1),
                    ciphertext: bytes,
                };
                tx.push_outbox(&installation_topic(&id), sent_ns, &envelope.encode_to_vec(), Some(&message_id), now)?;
            }
            tx.insert_message(&record)?;
            tx.touch_conversation(&record.conversation_id, KIND_DM, Some(&record.conversation_id), sent_ns, now)?;
            Ok::<_, ClientError>(tx.message(&message_id)?)
        })?;
        drop(keys);
        self.notify_stored();
        let message = Message::from_record(stored.ok_or(ClientError::Storage(
            crate::storage::StorageError::Corrupt {
                what: "message just stored",
            },
        ))?)?;
        if let Err(e) = self.flush_outbox().await {
            return Err(ClientError::Queued {
                message_id: message.id.clone(),
                reason: e.to_string(),
            });
        }
        Ok(message)
    }

    /// Claims one pre-key of each installation in `ids` and verifies it.
    async fn claim_keys(
        &self,
        recipients: &[VerifiedInstallation],
        ids: &[InstallationId],
    ) -> Result<HashMap<InstallationId, ClaimedPreKey>, ClientError> {
        let mut out = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let claimed = self
            .inner
            .api
            .claim_one_time_keys(ids.iter().map(|id| id.as_bytes().to_vec()).collect())
            .await?;
        for c in claimed {
            let Some(installation) = recipients
                .iter()
                .find(|r| r.installation_id().as_bytes() == c.installation_key.as_slice())
            else {
                continue;
            };
            let Some(key) = c.key else { continue };
            let kind = if c.is_fallback {
                PreKeyKind::Fallback
            } else {
                PreKeyKind::OneTime
            };
            match installation.verify_claimed_key(&key, kind) {
                Ok(claim) => {
                    out.insert(installation.installation_id(), claim);
                }
                Err(e) => {
                    tracing::warn!(installation = %installation.installation_id(), error = %e, "claimed pre-key does not verify; using the bundle's fallback key");
                    out.insert(
                        installation.installation_id(),
                        installation.fallback_as_claimed(),
                    );
                }
            }
        }
        for r in recipients {
            let id = r.installation_id();
            if ids.contains(&id) && !out.contains_key(&id) {
                out.insert(id, r.fallback_as_claimed());
            }
        }
        Ok(out)
    }

    /// Every conversation, most recently active first, with its newest message.
    pub fn conversations(&self) -> Result<Vec<Conversation>, ClientError> {
        let storage = &self.inner.storage;
        let rows = storage.transaction(|tx| {
            let mut out = Vec::new();
            for c in tx.conversations()? {
                let last = tx.messages(
                    &c.id,
                    &MessagePage {
                        limit: Some(1),
                        descending: true,
                        ..Default::default()
                    },
                )?;
                out.push((c, last.into_iter().next()));
            }
            Ok::<_, ClientError>(out)
        })?;
        rows.into_iter()
            .map(|(c, last)| {
                Ok(Conversation {
                    id: c.id,
                    kind: c.kind,
                    peer_address: c.peer_address,
                    created_ns: c.created_ns,
                    last_message_ns: c.last_message_ns,
                    last_message: last.map(Message::from_record).transpose()?,
                })
            })
            .collect()
    }

    /// A page of a conversation's messages (by sent time; oldest first unless
    /// `page.descending`). A direct conversation's id is the peer's address,
    /// in any letter case.
    pub fn messages(
        &self,
        conversation_id: &str,
        page: &MessagePage,
    ) -> Result<Vec<Message>, ClientError> {
        let id = normalize_conversation_id(conversation_id);
        let records = self
            .inner
            .storage
            .transaction(|tx| tx.messages(&id, page))?;
        records
            .into_iter()
            .map(|r| Message::from_record(r).map_err(ClientError::from))
            .collect()
    }

    /// One stored message by its hex id.
    pub fn message(&self, message_id: &str) -> Result<Option<Message>, ClientError> {
        let Ok(id) = hex::decode(message_id.trim()) else {
            return Ok(None);
        };
        let record = self.inner.storage.transaction(|tx| tx.message(&id))?;
        record
            .map(|r| Message::from_record(r).map_err(ClientError::from))
            .transpose()
    }
}

/// A direct conversation's id is the peer's EIP-55 address; accept any case.
pub(crate) fn normalize_conversation_id(id: &str) -> String {
    parse_address(id)
        .map(|a| a.to_checksum())
        .unwrap_or_else(|_| id.to_string())
}
