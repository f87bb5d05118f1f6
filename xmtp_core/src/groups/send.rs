//! The sending side of groups: membership changes (signed, sent as the
//! whole log over Olm), key shares, and messages (Megolm, once, on the
//! group's topic). A lock per (installation, group) serialises the sends of
//! one installation to one group, so that a session key is shared before
//! the message it protects is queued and a rotation happens once.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::Stream;
use prost::Message as _;
use xmtp_cryptography::{
    megolm::GroupSessionKey, Address, InstallationId, OutboundGroupSession, VerifiedInstallation,
};
use xmtp_proto::xmtp::{
    message_contents::EncodedContent,
    v3::message_contents::{
        group_change::Kind, group_payload, installation_message::Payload, GroupChange, GroupCreate,
        GroupEnvelope, GroupKeyShare, GroupLeave, GroupLog, GroupMembers, GroupMessagePlaintext,
        GroupPayload, GroupRename, InstallationMessage,
    },
};
use zeroize::Zeroizing;

use super::{
    group_topic, membership, parse_group_id, parse_members, stored_log, GroupError, GroupState,
    GROUP_ENVELOPE_VERSION, KIND_GROUP,
};
use crate::{
    content::encode_text,
    error::ClientError,
    messages::{Message, PAYLOAD_VERSION},
    storage::{MessageRecord, OutboundGroupRecord, StorageError},
    stream::MessageStream,
    time::now_ns,
    Client,
};

/// One lock per (installation, group): serialises sends (share the key,
/// then queue the message).
type SendLocks = HashMap<([u8; 32], [u8; 32]), Arc<tokio::sync::Mutex<()>>>;
static GROUP_SEND: std::sync::Mutex<Option<SendLocks>> = std::sync::Mutex::new(None);

fn send_lock(installation: &InstallationId, group: &[u8; 32]) -> Arc<tokio::sync::Mutex<()>> {
    let mut locks = GROUP_SEND
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    locks
        .get_or_insert_with(HashMap::new)
        .entry((*installation.as_bytes(), *group))
        .or_default()
        .clone()
}

/// The Olm plaintext of a group payload for one installation.
pub(crate) fn olm_plaintext(
    sender: Address,
    recipient: &InstallationId,
    payload: &GroupPayload,
) -> Vec<u8> {
    InstallationMessage {
        version: PAYLOAD_VERSION,
        sender_address: sender.to_checksum(),
        recipient_installation_key: recipient.as_bytes().to_vec(),
        payload: Some(Payload::Group(payload.clone())),
    }
    .encode_to_vec()
}

fn addresses(list: &[Address]) -> Vec<String> {
    list.iter().map(|a| a.to_checksum()).collect()
}

impl Client {
    /// Creates a group of this account and `members`, named `name`; returns
    /// its id (64 hex digits). The creator is its only admin.
    pub async fn create_group(&self, members: &[&str], name: &str) -> Result<String, ClientError> {
        self.create_group_with_admins(members, &[], name).await
    }

    /// Creates a group and names `admins` (members too) admins beside the creator.
    pub async fn create_group_with_admins(
        &self,
        members: &[&str],
        admins: &[&str],
        name: &str,
    ) -> Result<String, ClientError> {
        self.ensure_not_revoked()?;
        let members = parse_members(members)?;
        let admins = parse_members(admins)?;
        let change = GroupChange {
            group_id: Vec::new(),
            base_version: 0,
            created_ns: now_ns(),
            nonce: rand::random::<[u8; 32]>().to_vec(),
            kind: Some(Kind::Create(GroupCreate {
                name: name.to_string(),
                members: addresses(&members),
                admins: addresses(&admins),
            })),
        };
        let signed = {
            let keys = self.inner.keys.lock().await;
            membership::sign(&keys, self.inner.address, &change)
        };
        let id = membership::group_id_of(&signed.change);
        let verified = membership::verify(&signed)
            .map_err(|e| ClientError::Crypto(format!("own group change: {e}")))?;
        let state = membership::fold(&id, std::slice::from_ref(&verified))
            .ok_or_else(|| ClientError::Crypto("own group creation does not fold".into()))?;
        self.publish_change(&id, None, &state, verified).await?;
        tracing::info!(group = %hex::encode(id), "created group");
        Ok(hex::encode(id))
    }

    /// Adds members (admins only).
    pub async fn add_members(&self, group_id: &str, members: &[&str]) -> Result<(), ClientError> {
        let add = Kind::AddMembers(GroupMembers {
            addresses: addresses(&parse_members(members)?),
        });
        self.change_group(group_id, add, true).await
    }

    /// Removes members (admins only); every remaining sender rotates its
    /// session key, so removed members cannot read what follows.
    pub async fn remove_members(
        &self,
        group_id: &str,
        members: &[&str],
    ) -> Result<(), ClientError> {
        let remove = Kind::RemoveMembers(GroupMembers {
            addresses: addresses(&parse_members(members)?),
        });
        self.change_group(group_id, remove, true).await
    }

    /// Leaves a group.
    pub async fn leave_group(&self, group_id: &str) -> Result<(), ClientError> {
        self.change_group(group_id, Kind::Leave(GroupLeave {}), false)
            .await
    }

    /// Renames a group (any member).
    pub async fn rename_group(&self, group_id: &str, name: &str) -> Result<(), ClientError> {
        let rename = Kind::Rename(GroupRename {
            name: name.to_string(),
        });
        self.change_group(group_id, rename, false).await
    }

    /// Sends an add even if this account is not an admin. Every member
    /// refuses it at its place in the order; this exists to test that.
    #[doc(hidden)]
    pub async fn add_members_unchecked(
        &self,
        group_id: &str,
        members: &[&str],
    ) -> Result<(), ClientError> {
        let add = Kind::AddMembers(GroupMembers {
            addresses: addresses(&parse_members(members)?),
        });
        self.change_group_inner(group_id, add).await
    }

    async fn change_group(
        &self,
        group_id: &str,
        kind: Kind,
        admin_only: bool,
    ) -> Result<(), ClientError> {
        let id = parse_group_id(group_id)?;
        let state = self.group_state(&id)?;
        if !state.members.contains(&self.inner.address) {
            return Err(GroupError::NotAMember(hex::encode(id)).into());
        }
        if admin_only && !state.admins.contains(&self.inner.address) {
            return Err(GroupError::NotAnAdmin(hex::encode(id)).into());
        }
        self.change_group_inner(group_id, kind).await
    }

    async fn change_group_inner(&self, group_id: &str, kind: Kind) -> Result<(), ClientError> {
        self.ensure_not_revoked()?;
        let id = parse_group_id(group_id)?;
        let state = self.group_state(&id)?;
        let change = GroupChange {
            group_id: id.to_vec(),
            base_version: state.version,
            created_ns: now_ns(),
            nonce: rand::random::<[u8; 32]>().to_vec(),
            kind: Some(kind),
        };
        let signed = {
            let keys = self.inner.keys.lock().await;
            membership::sign(&keys, self.inner.address, &change)
        };
        let verified = membership::verify(&signed)
            .map_err(|e| ClientError::Crypto(format!("own group change: {e}")))?;
        let mut changes: Vec<_> = self
            .inner
            .storage
            .transaction(|tx| stored_log(tx, &id))?
            .iter()
            .filter_map(|s| membership::verify(s).ok())
            .collect();
        changes.push(verified.clone());
        let after = membership::fold(&id, &changes)
            .ok_or_else(|| GroupError::UnknownGroup(hex::encode(id)))?;
        self.publish_change(&id, Some(&state), &after, verified)
            .await
    }

    /// Stores a new change and sends the whole log to every installation of
    /// every member before and after it.
    async fn publish_change(
        &self,
        id: &[u8; 32],
        before: Option<&GroupState>,
        after: &GroupState,
        change: membership::VerifiedChange,
    ) -> Result<(), ClientError> {
        let me = self.inner.address;
        let mut to: BTreeSet<Address> = after.members.clone();
        if let Some(b) = before {
            to.extend(b.members.iter().copied());
        }
        to.remove(&me);
        let to: Vec<Address> = to.into_iter().collect();
        let recipients = self.recipients(&to).await?;
        let mut log = self.inner.storage.transaction(|tx| stored_log(tx, id))?;
        log.push(change.signed.clone());
        let payload = GroupPayload {
            group_id: id.to_vec(),
            kind: Some(group_payload::Kind::Log(GroupLog { changes: log })),
        };
        let removed = before.is_some_and(|b| b.members.iter().any(|m| !after.members.contains(m)));
        let signed_bytes = change.signed.encode_to_vec();
        let (_, published) = self
            .fan_out(
                &recipients,
                None,
                |r| olm_plaintext(me, r, &payload),
                |tx| {
                    tx.insert_group_change(id, &change.hash, &signed_bytes)?;
                    tx.insert_group(id, now_ns())?;
                    if removed {
                        tx.mark_group_rotation(id)?;
                    }
                    Ok(())
                },
            )
            .await?;
        if let Err(e) = published {
            tracing::warn!(error = %e, "group change queued; it is published on the next sync");
        }
        Ok(())
    }

    /// Sends this installation's whole log of a group to every installation
    /// of `to` (gossip: used when a received log lacked changes held here,
    /// so that concurrent changes reach every member).
    pub(crate) async fn resend_log(
        &self,
        id: &[u8; 32],
        to: BTreeSet<Address>,
    ) -> Result<(), ClientError> {
        let me = self.inner.address;
        let to: Vec<Address> = to.into_iter().filter(|a| *a != me).collect();
        let recipients = self.recipients(&to).await?;
        let log = self.inner.storage.transaction(|tx| stored_log(tx, id))?;
        let payload = GroupPayload {
            group_id: id.to_vec(),
            kind: Some(group_payload::Kind::Log(GroupLog { changes: log })),
        };
        let (_, published) = self
            .fan_out(
                &recipients,
                None,
                |r| olm_plaintext(me, r, &payload),
                |_| Ok(()),
            )
            .await?;
        published?;
        Ok(())
    }

    /// Sends content to a conversation: a group (by its id), a peer (by its
    /// address), or an XMTP V1/V2 conversation (by its topic; answered over V2).
    pub async fn send_to_conversation(
        &self,
        conversation_id: &str,
        content: EncodedContent,
    ) -> Result<Message, ClientError> {
        if conversation_id.starts_with("/xmtp/0/") {
            return self.send_v2_to_topic(conversation_id, content).await;
        }
        match parse_group_id(conversation_id) {
            Ok(_) => self.send_group(conversation_id, content).await,
            Err(_) => self.send(conversation_id, content).await,
        }
    }

    /// Sends a text message to a group.
    pub async fn send_group_text(
        &self,
        group_id: &str,
        text: &str,
    ) -> Result<Message, ClientError> {
        self.send_group(group_id, encode_text(text)).await
    }

    /// Sends content to a group: shares this installation's session key with
    /// every member installation that lacks it (over Olm), then publishes
    /// the message once, Megolm-encrypted, on the group's topic.
    pub async fn send_group(
        &self,
        group_id: &str,
        content: EncodedContent,
    ) -> Result<Message, ClientError> {
        self.ensure_not_revoked()?;
        let id = parse_group_id(group_id)?;
        let state = self.group_state(&id)?;
        let me = self.inner.address;
        if !state.members.contains(&me) {
            return Err(GroupError::NotAMember(hex::encode(id)).into());
        }
        let others: Vec<Address> = state.members.iter().copied().filter(|m| *m != me).collect();
        let recipients = self.recipients(&others).await?;
        let lock = send_lock(&self.inner.installation_id, &id);
        let _serial = lock.lock().await;
        let session_id = self.share_session(&id, &recipients).await?;
        let message_id: [u8; 16] = rand::random();
        let now = now_ns();
        let plaintext = GroupMessagePlaintext {
            message_id: message_id.to_vec(),
            group_id: id.to_vec(),
            sender_address: me.to_checksum(),
            sender_installation_key: self.inner.installation_id.as_bytes().to_vec(),
            sent_ns: now,
            content: Some(content.clone()),
        };
        let pickle_key = &self.inner.pickle_key;
        let stored = self.inner.storage.transaction(|tx| {
            let record = tx
                .outbound_group_session(&id)?
                .ok_or(StorageError::Corrupt {
                    what: "outbound group session",
                })?;
            let mut session = OutboundGroupSession::from_pickle(&record.pickle, pickle_key)
                .map_err(|e| ClientError::Crypto(e.to_string()))?;
            if session.session_id() != session_id {
                return Err(ClientError::Crypto(
                    "group session changed while sending".into(),
                ));
            }
            let ciphertext = session.encrypt(&Zeroizing::new(plaintext.encode_to_vec()));
            tx.save_outbound_group_session(
                &id,
                &OutboundGroupRecord {
                    session_id: session_id.clone(),
                    pickle: Zeroizing::new(session.pickle(pickle_key)),
                    created_ns: record.created_ns,
                    sent: record.sent + 1,
                    rotate: false,
                },
            )?;
            let envelope = GroupEnvelope {
                version: GROUP_ENVELOPE_VERSION,
                group_id: id.to_vec(),
                sender_installation_key: self.inner.installation_id.as_bytes().to_vec(),
                sender_address: me.to_checksum(),
                session_id: session_id.clone(),
                ciphertext,
            };
            tx.push_outbox(
                &group_topic(&id),
                now,
                &envelope.encode_to_vec(),
                Some(&message_id),
                now,
            )?;
            let conversation = hex::encode(id);
            tx.insert_message(&MessageRecord {
                seq: 0,
                message_id: message_id.to_vec(),
                conversation_id: conversation.clone(),
                sender_address: me.to_checksum(),
                sender_installation: self.inner.installation_id.as_bytes().to_vec(),
                sent_ns: now,
                received_ns: now,
                content: content.encode_to_vec(),
                conversation_kind: KIND_GROUP.into(),
            })?;
            tx.touch_conversation(&conversation, KIND_GROUP, None, now, now)?;
            Ok(tx.message(&message_id)?.ok_or(StorageError::Corrupt {
                what: "message just stored",
            })?)
        })?;
        drop(_serial);
        self.notify_stored();
        let message = Message::from_record(stored)?;
        if let Err(e) = self.flush_outbox().await {
            return Err(ClientError::Queued {
                message_id: message.id,
                reason: e.to_string(),
            });
        }
        Ok(message)
    }

    /// Makes sure this installation's outbound session of the group is
    /// current (rotating it when due) and shared with every recipient;
    /// returns its id.
    async fn share_session(
        &self,
        id: &[u8; 32],
        recipients: &[VerifiedInstallation],
    ) -> Result<String, ClientError> {
        let rotation = self.group_rotation()?;
        let pickle_key = &self.inner.pickle_key;
        let now = now_ns();
        let wanted: HashSet<Vec<u8>> = recipients
            .iter()
            .map(|r| r.installation_id().as_bytes().to_vec())
            .collect();
        let (session_id, key, missing) = self.inner.storage.transaction(|tx| {
            let current = tx.outbound_group_session(id)?;
            let reuse = match &current {
                None => None,
                Some(r) => {
                    let shared = tx.group_shared_installations(id, &r.session_id)?;
                    let age = now.saturating_sub(r.created_ns);
                    let stale = r.rotate
                        || r.sent >= rotation.max_messages
                        || u128::from(age) >= rotation.max_age.as_nanos()
                        || shared.iter().any(|s| !wanted.contains(s));
                    if stale {
                        None
                    } else {
                        Some(
                            OutboundGroupSession::from_pickle(&r.pickle, pickle_key)
                                .map_err(|e| ClientError::Crypto(e.to_string()))?,
                        )
                    }
                }
            };
            let session = match reuse {
                Some(s) => s,
                None => {
                    let s = OutboundGroupSession::new();
                    tx.save_outbound_group_session(
                        id,
                        &OutboundGroupRecord {
                            session_id: s.session_id(),
                            pickle: Zeroizing::new(s.pickle(pickle_key)),
                            created_ns: now,
                            sent: 0,
                            rotate: false,
                        },
                    )?;
                    tracing::debug!(group = %hex::encode(id), "new outbound group session");
                    s
                }
            };
            let session_id = session.session_id();
            let shared: HashSet<Vec<u8>> = tx
                .group_shared_installations(id, &session_id)?
                .into_iter()
                .collect();
            let missing: Vec<VerifiedInstallation> = recipients
                .iter()
                .filter(|r| !shared.contains(r.installation_id().as_bytes().as_slice()))
                .cloned()
                .collect();
            Ok::<_, ClientError>((session_id, session.session_key(), missing))
        })?;
        if !missing.is_empty() {
            self.send_key(id, &session_id, &key, &missing).await?;
        }
        Ok(session_id)
    }

    /// Sends a session key over Olm to `to` and records it per installation.
    pub(crate) async fn send_key(
        &self,
        id: &[u8; 32],
        session_id: &str,
        key: &GroupSessionKey,
        to: &[VerifiedInstallation],
    ) -> Result<(), ClientError> {
        let me = self.inner.address;
        let bytes = key.to_bytes();
        let payload = GroupPayload {
            group_id: id.to_vec(),
            kind: Some(group_payload::Kind::KeyShare(GroupKeyShare {
                session_id: session_id.to_string(),
                session_key: bytes.to_vec(),
            })),
        };
        let (_, published) = self
            .fan_out(
                to,
                None,
                |r| olm_plaintext(me, r, &payload),
                |tx| {
                    for r in to {
                        tx.record_group_share(
                            id,
                            session_id,
                            r.installation_id().as_bytes(),
                            &bytes,
                        )?;
                    }
                    Ok(())
                },
            )
            .await?;
        if let Err(e) = published {
            tracing::warn!(error = %e, "group key share queued; it is published on the next sync");
        }
        Ok(())
    }

    /// New messages of one group, from now on (the client's follower
    /// follows the group topics beside the inbox).
    pub async fn stream_group(&self, group_id: &str) -> Result<GroupMessageStream, ClientError> {
        let id = parse_group_id(group_id)?;
        let _ = self.group_state(&id)?;
        let messages = self.stream_conversation(&hex::encode(id)).await?;
        Ok(GroupMessageStream { messages })
    }
}

/// New messages of one group (see [`Client::stream_group`]).
pub struct GroupMessageStream {
    messages: MessageStream,
}

impl std::fmt::Debug for GroupMessageStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMessageStream").finish_non_exhaustive()
    }
}

impl Stream for GroupMessageStream {
    type Item = Result<Message, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.messages).poll_next(cx)
    }
}
