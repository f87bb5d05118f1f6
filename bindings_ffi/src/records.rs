//! The plain values that cross the FFI boundary.
//!
//! Records are copied into the foreign language (Kotlin data classes, Swift
//! structs, Python dataclasses), so they hold simple owned types only:
//! strings, byte arrays, integers and options. Times are nanoseconds since
//! the Unix epoch; ids are lowercase hex; addresses are EIP-55.

use xmtp_core::{
    ContentType, Conversation, Group, Installation, Message, MessagePage, Protocol, SealedMessage,
    SyncSummary, V2Identity, V2IdentityOrigin,
};

/// The protocol a message travelled over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum FfiProtocol {
    /// A direct message over this library's Olm double-ratchet sessions.
    Olm,
    /// A group message over this library's Megolm sessions.
    Megolm,
    /// XMTP V2: a conversation key that never changes (no forward secrecy).
    V2,
    /// XMTP V1: static Diffie-Hellman between two identities (no forward
    /// secrecy); read only, replies go over V2.
    V1,
}

impl From<Protocol> for FfiProtocol {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Olm => Self::Olm,
            Protocol::Megolm => Self::Megolm,
            Protocol::V2 => Self::V2,
            Protocol::V1 => Self::V1,
        }
    }
}

/// A message of a conversation, as stored on this installation.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiMessage {
    /// Hex of the 16-byte message id (the same on every installation).
    pub id: String,
    /// The conversation: for a direct message, the peer's address.
    pub conversation_id: String,
    /// The sender's address.
    pub sender_address: String,
    /// Hex id of the sending installation.
    pub sender_installation_id: String,
    /// Sender's clock.
    pub sent_ns: u64,
    /// Local clock when stored.
    pub received_ns: u64,
    /// `authority/type:major.minor`, e.g. `xmtp.org/text:1.0`.
    pub content_type: String,
    /// The text, when the content type is text.
    pub text: Option<String>,
    /// The sender's fallback text for content types a reader does not know.
    pub fallback: Option<String>,
    /// The encoded content bytes, for custom content types.
    pub content: Vec<u8>,
    /// The protocol it travelled over.
    pub protocol: FfiProtocol,
}

impl From<Message> for FfiMessage {
    fn from(m: Message) -> Self {
        Self {
            content_type: m.content_type(),
            text: m.text(),
            fallback: m.content.fallback.clone(),
            id: m.id,
            conversation_id: m.conversation_id,
            sender_address: m.sender_address,
            sender_installation_id: m.sender_installation_id,
            sent_ns: m.sent_ns,
            received_ns: m.received_ns,
            content: m.content.content,
            protocol: m.protocol.into(),
        }
    }
}

/// A conversation with its newest message.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiConversation {
    /// Its id: for a direct conversation, the peer's address; for an XMTP
    /// V1/V2 conversation, its topic.
    pub id: String,
    /// `"dm"` for a direct conversation (Olm), `"v2"` or `"v1"` for an XMTP
    /// V2 or V1 conversation with the peer.
    pub kind: String,
    /// The peer's address, for a direct conversation.
    pub peer_address: Option<String>,
    /// When this installation first saw it.
    pub created_ns: u64,
    /// Sent time of its newest message.
    pub last_message_ns: u64,
    /// Its newest message.
    pub last_message: Option<FfiMessage>,
}

impl From<Conversation> for FfiConversation {
    fn from(c: Conversation) -> Self {
        Self {
            id: c.id,
            kind: c.kind,
            peer_address: c.peer_address,
            created_ns: c.created_ns,
            last_message_ns: c.last_message_ns,
            last_message: c.last_message.map(FfiMessage::from),
        }
    }
}

/// A group, as this installation sees it (from the local database; `sync`
/// first for the latest membership).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiGroup {
    /// The group id (64 hex digits); also its messages' `conversation_id`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The address that created it.
    pub creator: String,
    /// Its members' addresses (sorted).
    pub members: Vec<String>,
    /// Its admins' addresses (sorted); only they may add or remove members.
    pub admins: Vec<String>,
    /// Number of membership changes applied.
    pub version: u64,
    /// Whether this account is still a member.
    pub is_member: bool,
}

impl From<Group> for FfiGroup {
    fn from(g: Group) -> Self {
        Self {
            id: g.id,
            name: g.name,
            creator: g.creator,
            members: g.members,
            admins: g.admins,
            version: g.version,
            is_member: g.is_member,
        }
    }
}

/// Which page of a conversation's messages to return. Every field has a
/// default, so `FfiPaging()` is "all of them, oldest first".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, uniffi::Record)]
pub struct FfiPaging {
    /// Only messages sent strictly after this time.
    #[uniffi(default = None)]
    pub sent_after_ns: Option<u64>,
    /// Only messages sent strictly before this time.
    #[uniffi(default = None)]
    pub sent_before_ns: Option<u64>,
    /// At most this many.
    #[uniffi(default = None)]
    pub limit: Option<u32>,
    /// Newest first instead of oldest first.
    #[uniffi(default = false)]
    pub descending: bool,
}

impl From<FfiPaging> for MessagePage {
    fn from(p: FfiPaging) -> Self {
        Self {
            sent_after_ns: p.sent_after_ns,
            sent_before_ns: p.sent_before_ns,
            limit: p.limit,
            descending: p.descending,
        }
    }
}

/// An installation of an address, verified by this client.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiInstallation {
    /// Hex of the installation's Ed25519 key.
    pub id: String,
    /// The address that owns it.
    pub address: String,
    /// When the wallet granted it.
    pub created_ns: u64,
    /// Whether it is this client's own installation.
    pub is_current: bool,
}

impl From<Installation> for FfiInstallation {
    fn from(i: Installation) -> Self {
        Self {
            id: i.id,
            address: i.address,
            created_ns: i.created_ns,
            is_current: i.is_current,
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct FfiSyncSummary {
    /// Envelopes read from the node.
    pub envelopes: u64,
    /// New messages stored.
    pub new_messages: u64,
    /// Envelopes that could not be decrypted or authenticated (kept aside).
    pub failed: u64,
}

impl From<SyncSummary> for FfiSyncSummary {
    fn from(s: SyncSummary) -> Self {
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        Self {
            envelopes: n(s.envelopes),
            new_messages: n(s.new_messages),
            failed: n(s.failed),
        }
    }
}

/// A secure-channel message: send both fields and your address to the peer.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiSealed {
    /// The 12-byte nonce.
    pub nonce: Vec<u8>,
    /// The ciphertext (header and AES-256-GCM output).
    pub ciphertext: Vec<u8>,
}

impl From<SealedMessage> for FfiSealed {
    fn from(s: SealedMessage) -> Self {
        Self {
            nonce: s.nonce.to_vec(),
            ciphertext: s.ciphertext,
        }
    }
}

/// Where this client's XMTP V1/V2 identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum FfiV2IdentityOrigin {
    /// Made now (the wallet signed twice) and stored, encrypted, on the node
    /// for the wallet's other clients.
    Created,
    /// Recovered from the node, where another client of the wallet (ours or
    /// one of XMTP's SDKs) stored it (the wallet signed once).
    Recovered,
    /// Already in this client's database (no signature).
    Loaded,
}

impl From<V2IdentityOrigin> for FfiV2IdentityOrigin {
    fn from(o: V2IdentityOrigin) -> Self {
        match o {
            V2IdentityOrigin::Created => Self::Created,
            V2IdentityOrigin::Recovered => Self::Recovered,
            V2IdentityOrigin::Loaded => Self::Loaded,
        }
    }
}

/// This client's XMTP V1/V2 identity (its public part).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FfiV2Identity {
    /// The identity key: an uncompressed secp256k1 point, 130 hex digits.
    pub identity_key: String,
    /// Where it came from.
    pub origin: FfiV2IdentityOrigin,
}

impl From<V2Identity> for FfiV2Identity {
    fn from(i: V2Identity) -> Self {
        Self {
            identity_key: i.identity_key,
            origin: i.origin.into(),
        }
    }
}

/// The content type of plain text, `xmtp.org/text:1.0`.
#[uniffi::export]
pub fn text_content_type() -> String {
    ContentType::text().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_paging_is_every_message_oldest_first() {
        assert_eq!(
            MessagePage::from(FfiPaging::default()),
            MessagePage::default()
        );
    }

    #[test]
    fn protocols_and_identity_origins_map_one_to_one() {
        let protocols = [
            (Protocol::Olm, FfiProtocol::Olm),
            (Protocol::Megolm, FfiProtocol::Megolm),
            (Protocol::V2, FfiProtocol::V2),
            (Protocol::V1, FfiProtocol::V1),
        ];
        for (core, ffi) in protocols {
            assert_eq!(FfiProtocol::from(core), ffi, "{core}");
        }
        let identity = FfiV2Identity::from(V2Identity {
            identity_key: "04ab".into(),
            origin: V2IdentityOrigin::Recovered,
        });
        assert_eq!(identity.identity_key, "04ab");
        assert_eq!(identity.origin, FfiV2IdentityOrigin::Recovered);
        assert_eq!(
            FfiV2IdentityOrigin::from(V2IdentityOrigin::Created),
            FfiV2IdentityOrigin::Created
        );
        assert_eq!(
            FfiV2IdentityOrigin::from(V2IdentityOrigin::Loaded),
            FfiV2IdentityOrigin::Loaded
        );
    }

    #[test]
    fn text_content_type_names_xmtp_text() {
        assert_eq!(text_content_type(), "xmtp.org/text:1.0");
    }
}
