//! Messages: the plaintext inside the ratchet, and what the application sees.
//!
//! On the wire (inside one Olm ciphertext per recipient installation) a
//! message is an `InstallationMessage` (see `xmtp/v3/message_contents/message.proto`):
//!
//! ```text
//! InstallationMessage { version = 1, sender_address, recipient_installation_key,
//!                       payload = DirectMessagePayload { message_id (16 random bytes),
//!                                                        peer_address, sent_ns, content } }
//! ```
//!
//! The sender's address and the recipient installation are repeated inside
//! the ciphertext, so that the unauthenticated outer fields cannot be changed
//! and a copy cannot be replayed to another installation. Decoding validates
//! everything once and yields a [`DirectMessage`], which the rest of the
//! client trusts.

use prost::Message as _;
use xmtp_cryptography::Address;
use xmtp_proto::xmtp::{
    message_contents::EncodedContent,
    v3::message_contents::{
        installation_message::Payload, DirectMessagePayload, InstallationMessage,
    },
};

use crate::{
    content::{content_type_of, decode_text},
    storage::MessageRecord,
};

/// Version of the `InstallationMessage` this client writes.
pub(crate) const PAYLOAD_VERSION: u32 = 1;
/// Length of a message id.
pub const MESSAGE_ID_LEN: usize = 16;

/// Why a decrypted payload was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// Not a valid protobuf `InstallationMessage`.
    #[error("payload is not a valid InstallationMessage")]
    Decode,
    /// A payload version this client does not know.
    #[error("payload version {0} is not supported; upgrade the client")]
    UnsupportedVersion(u32),
    /// A payload kind this client does not handle (yet).
    #[error("payload kind is not supported by this client")]
    UnsupportedPayload,
    /// The message id is not 16 bytes.
    #[error("message id has {0} bytes, expected 16")]
    BadMessageId(usize),
    /// An address that is not an EVM address.
    #[error("invalid address in payload: {0}")]
    BadAddress(String),
    /// The payload has no content.
    #[error("message has no content")]
    MissingContent,
}

/// A validated direct message, as decrypted from one installation's copy.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectMessage {
    /// The id shared by all copies.
    pub message_id: [u8; MESSAGE_ID_LEN],
    /// Who sent it (inside the ciphertext).
    pub sender_address: Address,
    /// The installation it was encrypted for.
    pub recipient_installation_key: Vec<u8>,
    /// The other party, from the sender's point of view.
    pub peer_address: Address,
    /// Sender's clock.
    pub sent_ns: u64,
    /// The content.
    pub content: EncodedContent,
}

/// A decoded `InstallationMessage` payload.
#[derive(Debug, Clone, PartialEq)]
pub enum InstallationPayload {
    /// A direct message.
    Direct(DirectMessage),
    /// A group payload (issue 5): membership log, key share or key request.
    Group(crate::groups::GroupOlm),
}

impl InstallationPayload {
    /// The sender's address, as bound inside the ciphertext.
    pub fn sender_address(&self) -> Address {
        match self {
            Self::Direct(d) => d.sender_address,
            Self::Group(g) => g.sender_address,
        }
    }

    /// The installation the plaintext was encrypted for.
    pub fn recipient_installation_key(&self) -> &[u8] {
        match self {
            Self::Direct(d) => &d.recipient_installation_key,
            Self::Group(g) => &g.recipient_installation_key,
        }
    }
}

impl DirectMessage {
    /// Encodes the plaintext for one recipient installation.
    pub(crate) fn encode(&self) -> Vec<u8> {
        InstallationMessage {
            version: PAYLOAD_VERSION,
            sender_address: self.sender_address.to_checksum(),
            recipient_installation_key: self.recipient_installation_key.clone(),
            payload: Some(Payload::DirectMessage(DirectMessagePayload {
                message_id: self.message_id.to_vec(),
                peer_address: self.peer_address.to_checksum(),
                sent_ns: self.sent_ns,
                content: Some(self.content.clone()),
            })),
        }
        .encode_to_vec()
    }
}

fn parse_address(s: &str) -> Result<Address, PayloadError> {
    s.parse::<Address>()
        .map_err(|_| PayloadError::BadAddress(s.chars().take(64).collect()))
}

/// Decodes and validates a decrypted payload.
pub(crate) fn decode_payload(bytes: &[u8]) -> Result<InstallationPayload, PayloadError> {
    let m = InstallationMessage::decode(bytes).map_err(|_| PayloadError::Decode)?;
    if m.version != PAYLOAD_VERSION {
        return Err(PayloadError::UnsupportedVersion(m.version));
    }
    let sender_address = parse_address(&m.sender_address)?;
    match m.payload {
        Some(Payload::DirectMessage(d)) => {
            let message_id: [u8; MESSAGE_ID_LEN] = d
                .message_id
                .as_slice()
                .try_into()
                .map_err(|_| PayloadError::BadMessageId(d.message_id.len()))?;
            Ok(InstallationPayload::Direct(DirectMessage {
                message_id,
                sender_address,
                recipient_installation_key: m.recipient_installation_key,
                peer_address: parse_address(&d.peer_address)?,
                sent_ns: d.sent_ns,
                content: d.content.ok_or(PayloadError::MissingContent)?,
            }))
        }
        Some(Payload::Group(payload)) => Ok(InstallationPayload::Group(crate::groups::GroupOlm {
            sender_address,
            recipient_installation_key: m.recipient_installation_key,
            payload,
        })),
        None => Err(PayloadError::UnsupportedPayload),
    }
}

/// The protocol a message travelled over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// A direct message over Olm double-ratchet sessions (this library's own).
    Olm,
    /// A group message over Megolm (this library's own).
    Megolm,
    /// XMTP V2 (an invitation's static key; no forward secrecy).
    V2,
    /// XMTP V1 (static 3-DH between two identities; no forward secrecy).
    V1,
}

impl Protocol {
    /// `olm`, `megolm`, `v2` or `v1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Olm => "olm",
            Self::Megolm => "megolm",
            Self::V2 => "v2",
            Self::V1 => "v1",
        }
    }

    /// The protocol of a conversation kind as stored.
    pub(crate) fn of_kind(kind: &str) -> Self {
        match kind {
            crate::groups::KIND_GROUP => Self::Megolm,
            crate::v2::KIND_V2 => Self::V2,
            crate::v2::KIND_V1 => Self::V1,
            _ => Self::Olm,
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message of a conversation, as stored locally.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Hex of the message id, the same on every installation: 16 random
    /// bytes for our own protocols, sha256 of the encoded message for XMTP
    /// V1/V2 (as XMTP's SDKs compute it).
    pub id: String,
    /// The conversation it belongs to.
    pub conversation_id: String,
    /// The sender's address (EIP-55).
    pub sender_address: String,
    /// Hex id of the sending installation (for XMTP V1/V2: the sender's
    /// identity key, uncompressed).
    pub sender_installation_id: String,
    /// Sender's clock, nanoseconds since the Unix epoch.
    pub sent_ns: u64,
    /// Local clock when stored.
    pub received_ns: u64,
    /// The content, as sent.
    pub content: EncodedContent,
    /// The protocol it travelled over.
    pub protocol: Protocol,
}

impl Message {
    /// The content type, `authority/type:major.minor` (empty if missing).
    pub fn content_type(&self) -> String {
        content_type_of(&self.content)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    /// The text, if the content is `xmtp.org/text:1.0`.
    pub fn text(&self) -> Option<String> {
        decode_text(&self.content).ok()
    }

    /// What to show: the text, else the sender's fallback, else nothing.
    pub fn display_text(&self) -> Option<String> {
        self.text().or_else(|| self.content.fallback.clone())
    }

    pub(crate) fn from_record(r: MessageRecord) -> Result<Self, PayloadError> {
        Ok(Self {
            id: hex::encode(&r.message_id),
            conversation_id: r.conversation_id,
            sender_address: r.sender_address,
            sender_installation_id: hex::encode(&r.sender_installation),
            sent_ns: r.sent_ns,
            received_ns: r.received_ns,
            content: EncodedContent::decode(r.content.as_slice())
                .map_err(|_| PayloadError::Decode)?,
            protocol: Protocol::of_kind(&r.conversation_kind),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::encode_text;

    fn addr(b: u8) -> Address {
        Address::from_bytes([b; 20])
    }

    #[test]
    fn direct_message_round_trips() {
        let m = DirectMessage {
            message_id: [9; 16],
            sender_address: addr(1),
            recipient_installation_key: vec![5; 32],
            peer_address: addr(2),
            sent_ns: 42,
            content: encode_text("hi"),
        };
        assert_eq!(
            decode_payload(&m.encode()).unwrap(),
            InstallationPayload::Direct(m)
        );
    }

    #[test]
    fn malformed_payloads_are_typed_errors() {
        assert_eq!(
            decode_payload(&[0xff, 0xff, 0xff]),
            Err(PayloadError::Decode)
        );
        let mut m = InstallationMessage {
            version: 7,
            ..Default::default()
        };
        assert_eq!(
            decode_payload(&m.encode_to_vec()),
            Err(PayloadError::UnsupportedVersion(7))
        );
        m.version = 1;
        m.sender_address = "bob".into();
        assert!(matches!(
            decode_payload(&m.encode_to_vec()),
            Err(PayloadError::BadAddress(_))
        ));
        m.sender_address = addr(1).to_checksum();
        assert_eq!(
            decode_payload(&m.encode_to_vec()),
            Err(PayloadError::UnsupportedPayload)
        );
        m.payload = Some(Payload::DirectMessage(DirectMessagePayload {
            message_id: vec![1; 3],
            peer_address: addr(2).to_checksum(),
            sent_ns: 1,
            content: Some(encode_text("x")),
        }));
        assert_eq!(
            decode_payload(&m.encode_to_vec()),
            Err(PayloadError::BadMessageId(3))
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_payload_decoder(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_payload(&bytes);
        }

        #[test]
        fn any_valid_direct_message_round_trips(
            id in proptest::array::uniform16(proptest::num::u8::ANY),
            sent_ns in proptest::num::u64::ANY,
            text in ".{0,64}",
            a in proptest::num::u8::ANY,
            b in proptest::num::u8::ANY,
        ) {
            let m = DirectMessage {
                message_id: id,
                sender_address: addr(a),
                recipient_installation_key: vec![b; 32],
                peer_address: addr(b),
                sent_ns,
                content: encode_text(&text),
            };
            proptest::prop_assert_eq!(decode_payload(&m.encode()).unwrap(), InstallationPayload::Direct(m));
        }
    }
}
