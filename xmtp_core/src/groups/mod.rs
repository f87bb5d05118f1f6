//! Groups: one Megolm encryption per message whatever the group's size,
//! membership changes signed and checked by every member, session keys
//! shared over the pairwise Olm sessions.
//!
//! ```text
//! membership   signed changes, merged as a set and folded in (base_version, hash) order
//!              (see [`membership`]); each change goes over Olm, as the whole log,
//!              to every installation of every member (old and new)
//! keys         each sending installation holds one outbound Megolm session per group;
//!              before it sends, it shares the session key (at the current index) over Olm
//!              with every installation of every member that does not have it yet
//!              (its own other installations included); a receiver binds the inbound
//!              session to the installation and address that shared it over Olm
//! messages     GroupEnvelope { group id, sender installation, session id, Megolm(plaintext) }
//!              on /xmtp/3/group-<hex id>/proto, published once
//! rotation     a new outbound session after a removal (or leave), after
//!              `max_messages` messages or `max_age` (see [`GroupRotation`]), or when an
//!              installation that holds the key is no longer a recipient: removed members
//!              never receive a key that decrypts what follows
//! joining      a new member gets each sender's key at that sender's current index:
//!              it reads from the time it joined, not before
//! missing key  a message whose session key has not arrived is kept (`group_pending`),
//!              a key request goes over Olm to the sending installation, and the message
//!              is decrypted when the key arrives
//! ```
//!
//! Group payloads that arrive over Olm are stored by the receive step in the
//! same transaction as the ratchet step (`group_inbox`) and applied by
//! [`Client::sync_groups`], which may need the node (to verify the
//! installations that signed membership changes). [`Client::sync`] runs it.

pub mod membership;
mod receive;
mod send;

use std::{collections::BTreeSet, time::Duration};

use prost::Message as _;
use xmtp_cryptography::Address;
use xmtp_proto::xmtp::v3::message_contents::{GroupPayload, SignedGroupChange};

pub use membership::{ChangeError, GroupState};
pub(crate) use receive::queue_payload;
pub use receive::GroupSyncSummary;
pub use send::GroupMessageStream;

use crate::{
    client::{parse_address, Client},
    error::ClientError,
    messages::Message,
    storage::{MessagePage, StorageTx},
};

/// The conversation kind of a group.
pub(crate) const KIND_GROUP: &str = "group";
/// Version of the `GroupEnvelope` this client writes.
pub(crate) const GROUP_ENVELOPE_VERSION: u32 = 1;
/// Secret name of the rotation policy.
const ROTATION_SECRET: &str = "group_rotation";

/// What can go wrong with a group operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// A group id that is not 64 hex digits.
    #[error("invalid group id {0:?}: expected 64 hex digits")]
    InvalidGroupId(String),
    /// No such group on this installation.
    #[error("unknown group {0}; sync first, or check the id")]
    UnknownGroup(String),
    /// This account is not a member of the group.
    #[error("this account is not a member of group {0}")]
    NotAMember(String),
    /// Only admins may add or remove members.
    #[error("only the group's admins may add or remove members of {0}")]
    NotAnAdmin(String),
}

/// The topic of a group.
pub fn group_topic(group_id: &[u8; 32]) -> String {
    format!("/xmtp/3/group-{}/proto", hex::encode(group_id))
}

/// A group payload received over Olm, decoded (applied later by
/// [`Client::sync_groups`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupOlm {
    /// The sender's address, bound inside the Olm ciphertext.
    pub sender_address: Address,
    /// The installation the plaintext was encrypted for.
    pub recipient_installation_key: Vec<u8>,
    /// The group payload.
    pub payload: GroupPayload,
}

/// When a sending installation replaces its Megolm session (besides on
/// every removal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRotation {
    /// After this many messages.
    pub max_messages: u64,
    /// After this long.
    pub max_age: Duration,
}

impl Default for GroupRotation {
    fn default() -> Self {
        Self {
            max_messages: 100,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// A group, as this installation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The group id (64 hex digits); also its conversation id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its creator (EIP-55).
    pub creator: String,
    /// Its members (EIP-55, sorted).
    pub members: Vec<String>,
    /// Its admins (EIP-55, sorted).
    pub admins: Vec<String>,
    /// Number of membership changes applied.
    pub version: u64,
    /// Whether this account is still a member.
    pub is_member: bool,
}

impl Group {
    fn from_state(state: &GroupState, me: &Address) -> Self {
        let list = |s: &BTreeSet<Address>| {
            let mut v: Vec<String> = s.iter().map(|a| a.to_checksum()).collect();
            v.sort();
            v
        };
        Self {
            id: hex::encode(state.id),
            name: state.name.clone(),
            creator: state.creator.to_checksum(),
            members: list(&state.members),
            admins: list(&state.admins),
            version: state.version,
            is_member: state.members.contains(me),
        }
    }
}

/// Parses a group id given by a user.
pub(crate) fn parse_group_id(id: &str) -> Result<[u8; 32], ClientError> {
    let bad = || GroupError::InvalidGroupId(id.chars().take(80).collect());
    let bytes = hex::decode(id.trim()).map_err(|_| bad())?;
    Ok(bytes.try_into().map_err(|_| bad())?)
}

/// A group's stored log, decoded (each entry verified when it was stored).
pub(crate) fn stored_log(
    tx: &StorageTx<'_>,
    id: &[u8; 32],
) -> Result<Vec<SignedGroupChange>, ClientError> {
    Ok(tx
        .group_changes(id)?
        .iter()
        .filter_map(|b| SignedGroupChange::decode(b.as_slice()).ok())
        .collect())
}

/// A group's state, folded from its stored log.
pub(crate) fn load_state(
    tx: &StorageTx<'_>,
    id: &[u8; 32],
) -> Result<Option<GroupState>, ClientError> {
    let changes: Vec<_> = stored_log(tx, id)?
        .iter()
        .filter_map(|s| membership::verify(s).ok())
        .collect();
    Ok(membership::fold(id, &changes))
}

impl Client {
    /// Every group this installation knows, oldest first.
    pub fn list_groups(&self) -> Result<Vec<Group>, ClientError> {
        let me = self.inner.address;
        self.inner.storage.transaction(|tx| {
            let mut out = Vec::new();
            for id in tx.group_ids()? {
                let Ok(id) = <[u8; 32]>::try_from(id.as_slice()) else {
                    continue;
                };
                if let Some(state) = load_state(tx, &id)? {
                    out.push(Group::from_state(&state, &me));
                }
            }
            Ok(out)
        })
    }

    /// One group.
    pub fn group(&self, group_id: &str) -> Result<Group, ClientError> {
        let id = parse_group_id(group_id)?;
        let state = self.group_state(&id)?;
        Ok(Group::from_state(&state, &self.inner.address))
    }

    pub(crate) fn group_state(&self, id: &[u8; 32]) -> Result<GroupState, ClientError> {
        self.inner
            .storage
            .transaction(|tx| load_state(tx, id))?
            .ok_or_else(|| GroupError::UnknownGroup(hex::encode(id)).into())
    }

    /// A page of a group's messages (by sent time; oldest first unless
    /// `page.descending`).
    pub fn group_messages(
        &self,
        group_id: &str,
        page: &MessagePage,
    ) -> Result<Vec<Message>, ClientError> {
        let id = parse_group_id(group_id)?;
        let rows = self
            .inner
            .storage
            .transaction(|tx| tx.messages(&hex::encode(id), page))?;
        rows.into_iter()
            .map(|r| Message::from_record(r).map_err(ClientError::from))
            .collect()
    }

    /// Sets when this installation's outbound group sessions rotate (kept in
    /// the database).
    pub fn set_group_rotation(&self, rotation: GroupRotation) -> Result<(), ClientError> {
        let mut bytes = rotation.max_messages.to_be_bytes().to_vec();
        let secs = rotation.max_age.as_secs();
        bytes.extend_from_slice(&secs.to_be_bytes());
        Ok(self
            .inner
            .storage
            .transaction(|tx| tx.put_secret(ROTATION_SECRET, &bytes))?)
    }

    /// The rotation policy in force.
    pub fn group_rotation(&self) -> Result<GroupRotation, ClientError> {
        let stored = self
            .inner
            .storage
            .transaction(|tx| tx.secret(ROTATION_SECRET))?;
        Ok(stored
            .and_then(|b| {
                let m: [u8; 8] = b.get(0..8)?.try_into().ok()?;
                let s: [u8; 8] = b.get(8..16)?.try_into().ok()?;
                Some(GroupRotation {
                    max_messages: u64::from_be_bytes(m),
                    max_age: Duration::from_secs(u64::from_be_bytes(s)),
                })
            })
            .unwrap_or_default())
    }
}

/// Parses a list of member addresses.
pub(crate) fn parse_members(members: &[&str]) -> Result<Vec<Address>, ClientError> {
    members.iter().map(|m| parse_address(m)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_parse_only_as_64_hex_digits() {
        let id = [7u8; 32];
        assert_eq!(parse_group_id(&hex::encode(id)).unwrap(), id);
        assert!(parse_group_id("abcd").is_err());
        assert!(parse_group_id(&"zz".repeat(32)).is_err());
        assert_eq!(
            group_topic(&id),
            format!("/xmtp/3/group-{}/proto", "07".repeat(32))
        );
    }
}
