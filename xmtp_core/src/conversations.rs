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

use prost::Message as _;
use rand::RngCore;
use xmtp_cryptography::{Address, InstallationId};
use xmtp_proto::xmtp::message_contents::EncodedContent;

use crate::{
    client::{parse_address, Client},
    content::encode_text,
    error::ClientError,
    messages::{DirectMessage, Message, MESSAGE_ID_LEN},
    storage::{MessagePage, MessageRecord, StorageError, StorageTx},
    time::now_ns,
};

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
        let recipients = self.recipients(&[peer]).await?;
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
            conversation_kind: KIND_DM.into(),
        };
        let plaintext_for = |recipient: &InstallationId| {
            DirectMessage {
                message_id,
                sender_address: inner.address,
                recipient_installation_key: recipient.as_bytes().to_vec(),
                peer_address: peer,
                sent_ns,
                content: content.clone(),
            }
            .encode()
        };
        let (stored, published) = self
            .fan_out(&recipients, Some(&message_id), plaintext_for, |tx| {
                tx.insert_message(&record)?;
                tx.touch_conversation(
                    &record.conversation_id,
                    KIND_DM,
                    Some(&record.conversation_id),
                    sent_ns,
                    now_ns(),
                )?;
                Ok(tx.message(&message_id)?)
            })
            .await?;
        self.notify_stored();
        let stored = stored.ok_or(StorageError::Corrupt {
            what: "message just stored",
        })?;
        let message = Message::from_record(stored)?;
        if let Err(e) = published {
            return Err(ClientError::Queued {
                message_id: message.id.clone(),
                reason: e.to_string(),
            });
        }
        Ok(message)
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

/// Stores a received direct message for the account `own` (its sender
/// verified and its envelope fields checked by the caller). `Ok(Ok(None))`:
/// already stored; `Ok(Err(reason))`: refused.
pub(crate) fn store_direct(
    tx: &StorageTx<'_>,
    own: Address,
    sender_installation: InstallationId,
    direct: DirectMessage,
    now: u64,
) -> Result<Result<Option<Message>, String>, ClientError> {
    let sender = direct.sender_address;
    let peer = if sender == own {
        direct.peer_address
    } else if direct.peer_address == own {
        sender
    } else {
        return Ok(Err(
            "message belongs to a conversation this account is not part of".into(),
        ));
    };
    let conversation_id = peer.to_checksum();
    let record = MessageRecord {
        seq: 0,
        message_id: direct.message_id.to_vec(),
        conversation_id: conversation_id.clone(),
        sender_address: sender.to_checksum(),
        sender_installation: sender_installation.as_bytes().to_vec(),
        sent_ns: direct.sent_ns,
        received_ns: now,
        content: direct.content.encode_to_vec(),
        conversation_kind: KIND_DM.into(),
    };
    if !tx.insert_message(&record)? {
        return Ok(Ok(None));
    }
    tx.touch_conversation(
        &conversation_id,
        KIND_DM,
        Some(&conversation_id),
        direct.sent_ns,
        now,
    )?;
    let stored = tx
        .message(&direct.message_id)?
        .ok_or(StorageError::Corrupt {
            what: "message just stored",
        })?;
    Ok(Ok(Some(Message::from_record(stored)?)))
}
