//! V1 and V2 messages of XMTP's protocol: encryption, signing and
//! verification.
//!
//! A V1 direct message is encrypted under the 3-DH secret of both parties'
//! V1 bundles, with its header as associated data; the sender's address is the
//! wallet that authorised the identity key in the header.
//!
//! A V2 message is encrypted under the conversation's key material (from its
//! invitation). Its plaintext is a `SignedContent`: the payload (an encoded
//! `EncodedContent`), the sender's V2 bundle and the sender pre-key's
//! signature over the header and payload. The sender also attaches an HMAC of
//! the header that lets a notification server that holds the conversation's
//! HMAC keys attribute the message without reading it (xmtp-js 13
//! `InMemoryKeystore.encryptV2`):
//!
//! ```text
//! V1: header = MessageHeaderV1{sender bundle, recipient bundle, timestamp_ms}
//!     ct     = encrypt(payload, 3DH(sender, recipient, false), aad = header_bytes)
//! V2: header = MessageHeaderV2{created_ns, topic}
//!     sig    = sign_{sender pre-key}(sha256(header_bytes || payload))
//!     ct     = encrypt(SignedContent{payload, sender bundle, sig}, key_material, aad = header_bytes)
//!     period = floor(created_ns / 10^9 / 2_592_000)             (30-day periods since the epoch)
//!     hmac   = HMAC-SHA256(HKDF-SHA256(key_material, salt = "", info = period || "-" || address), header_bytes)
//! id = hex(sha256(encoded Message))
//! ```
//!
//! Decoding refuses a header whose topic is not the conversation's, a
//! ciphertext that does not authenticate, a pre-key not signed by the
//! identity key, a signature that does not verify, and an identity key not
//! signed by a wallet.

use crate::wallet::Address;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use prost::Message as _;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use xmtp_proto::xmtp::message_contents::{
    message, Message, MessageHeaderV1, MessageHeaderV2, MessageV1, MessageV2, SignedContent,
    SignedPublicKeyBundle,
};
use zeroize::Zeroizing;

use super::{
    ciphertext::{self, CiphertextError},
    keys::KeyError,
    private_key::{PrivateKeyBundleV1, PrivateKeyBundleV2, PrivateKeyError},
    public_key::{BundleCache, BundleError, VerifiedPublicKeyBundle, VerifiedSignedBundle},
    signature,
};

/// Seconds in XMTP's 30-day HMAC key period.
pub const HMAC_PERIOD_SECS: u64 = 60 * 60 * 24 * 30;

/// Why a message cannot be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The bytes are not the expected proto.
    #[error("malformed message: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A required field is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The message is of the other protocol version.
    #[error("expected a {0} message")]
    WrongVersion(&'static str),
    /// The header names another conversation than the one it was read from.
    #[error("header topic {header} is not the conversation topic {expected}")]
    TopicMismatch {
        /// The topic in the header.
        header: String,
        /// The conversation's topic.
        expected: String,
    },
    /// The ciphertext does not authenticate under the key and header.
    #[error(transparent)]
    Ciphertext(#[from] CiphertextError),
    /// A bundle does not verify.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Our keys cannot make or open it.
    #[error(transparent)]
    Keys(#[from] PrivateKeyError),
    /// The sender's signature of header and payload does not verify.
    #[error("sender signature does not verify")]
    BadSignature,
    /// A signature is malformed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The viewer's identity key is neither the sender's nor the recipient's.
    #[error("message is not between the viewer and anyone")]
    NotAParty,
    /// HMAC-SHA256 refused its key (cannot happen with a 32-byte key).
    #[error("HMAC key refused")]
    HmacKey,
}

fn message_id(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The 30-day period index of a time in nanoseconds since the epoch.
pub fn hmac_period(time_ns: u64) -> u64 {
    time_ns / 1_000_000_000 / HMAC_PERIOD_SECS
}

/// The HMAC key of a sender in a conversation for one 30-day period (what
/// xmtp-js 13 exports through `getV2ConversationHmacKeys`).
pub fn sender_hmac_key(key_material: &[u8], period: u64, sender: &Address) -> Zeroizing<[u8; 32]> {
    let info = format!("{period}-{}", sender.to_checksum());
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ =
        Hkdf::<Sha256>::new(Some(&[]), key_material).expand(info.as_bytes(), key.as_mut_slice());
    key
}

/// The sender HMAC of a V2 header for one period.
pub fn sender_hmac(
    key_material: &[u8],
    period: u64,
    sender: &Address,
    header_bytes: &[u8],
) -> Result<Vec<u8>, MessageError> {
    let key = sender_hmac_key(key_material, period, sender);
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.as_slice()).map_err(|_| MessageError::HmacKey)?;
    mac.update(header_bytes);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Checks a V2 message's sender HMAC against `sender`, accepting the period
/// of `now_ns` and the ones before and after it (as XMTP's keystore hands out
/// keys for those three periods).
pub fn verify_sender_hmac(
    key_material: &[u8],
    sender: &Address,
    header_bytes: &[u8],
    hmac: &[u8],
    now_ns: u64,
) -> bool {
    let period = hmac_period(now_ns);
    [period.saturating_sub(1), period, period.saturating_add(1)]
        .into_iter()
        .any(|p| {
            let key = sender_hmac_key(key_material, p, sender);
            <Hmac<Sha256> as Mac>::new_from_slice(key.as_slice())
                .map(|mut mac| {
                    mac.update(header_bytes);
                    mac.verify_slice(hmac).is_ok()
                })
                .unwrap_or(false)
        })
}

/// An encoded message, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedMessage {
    /// The encoded `Message`, the envelope's payload.
    pub bytes: Vec<u8>,
    /// hex(sha256(bytes)), the message id XMTP's SDKs use.
    pub id: String,
}

/// Encodes a V2 message of `sender` in the
/// conversation `topic` with `key_material`, created at `created_ns`.
/// `payload` is the encoded `EncodedContent`.
#[allow(clippy::too_many_arguments)]
pub fn encode_v2<R: RngCore + CryptoRng>(
    rng: &mut R,
    sender: &PrivateKeyBundleV2,
    topic: &str,
    key_material: &[u8],
    created_ns: u64,
    payload: &[u8],
    should_push: Option<bool>,
) -> Result<EncodedMessage, MessageError> {
    let header_bytes = MessageHeaderV2 {
        created_ns,
        topic: topic.to_owned(),
    }
    .encode_to_vec();
    let digest: [u8; 32] = Sha256::new()
        .chain_update(&header_bytes)
        .chain_update(payload)
        .finalize()
        .into();
    let pre_key = sender.current_pre_key()?;
    let signed = SignedContent {
        payload: payload.to_vec(),
        sender: Some(sender.public_bundle().proto().clone()),
        signature: Some(pre_key.sign_digest(&digest)?),
    };
    let plaintext = Zeroizing::new(signed.encode_to_vec());
    let ciphertext = ciphertext::encrypt(rng, &plaintext, key_material, &header_bytes)?;
    let sender_hmac = sender_hmac(
        key_material,
        hmac_period(created_ns),
        &sender.wallet_address(),
        &header_bytes,
    )?;
    let bytes = Message {
        version: Some(message::Version::V2(MessageV2 {
            header_bytes,
            ciphertext: Some(ciphertext),
            sender_hmac: Some(sender_hmac),
            should_push,
        })),
    }
    .encode_to_vec();
    Ok(EncodedMessage {
        id: message_id(&bytes),
        bytes,
    })
}

/// A V2 message that decrypted and whose sender verified.
#[derive(Debug, Clone)]
pub struct DecodedMessageV2 {
    /// hex(sha256(encoded Message)).
    pub id: String,
    /// The header's creation time, nanoseconds since the epoch.
    pub sent_ns: u64,
    /// The wallet of the sender, from its verified bundle.
    pub sender_address: Address,
    /// The sender's verified bundle.
    pub sender: VerifiedSignedBundle,
    /// The encoded `EncodedContent`.
    pub payload: Vec<u8>,
    /// The encoded header, kept verbatim.
    pub header_bytes: Vec<u8>,
    /// The sender HMAC, if any.
    pub sender_hmac: Option<Vec<u8>>,
    /// Whether the sender asked for a push notification.
    pub should_push: Option<bool>,
}

/// Decrypts and verifies an encoded V2 `Message` read from the conversation
/// `topic` whose key material is `key_material`.
pub fn decode_v2(
    bytes: &[u8],
    topic: &str,
    key_material: &[u8],
) -> Result<DecodedMessageV2, MessageError> {
    decode_v2_with(bytes, topic, key_material, VerifiedSignedBundle::verify)
}

/// As [`decode_v2`], remembering verified sender bundles in `cache` (for
/// reading many messages of a conversation).
pub fn decode_v2_cached(
    bytes: &[u8],
    topic: &str,
    key_material: &[u8],
    cache: &mut BundleCache,
) -> Result<DecodedMessageV2, MessageError> {
    decode_v2_with(bytes, topic, key_material, |bundle| cache.verify(bundle))
}

fn decode_v2_with(
    bytes: &[u8],
    topic: &str,
    key_material: &[u8],
    mut verify_bundle: impl FnMut(&SignedPublicKeyBundle) -> Result<VerifiedSignedBundle, BundleError>,
) -> Result<DecodedMessageV2, MessageError> {
    let message = Message::decode(bytes)?;
    let v2 = match message.version {
        Some(message::Version::V2(v2)) => v2,
        Some(message::Version::V1(_)) => return Err(MessageError::WrongVersion("V2")),
        None => return Err(MessageError::Missing("message version")),
    };
    let header = MessageHeaderV2::decode(v2.header_bytes.as_slice())?;
    if header.topic != topic {
        return Err(MessageError::TopicMismatch {
            header: header.topic,
            expected: topic.to_owned(),
        });
    }
    let ciphertext = v2
        .ciphertext
        .as_ref()
        .ok_or(MessageError::Missing("ciphertext"))?;
    let plaintext = ciphertext::decrypt(ciphertext, key_material, &v2.header_bytes)?;
    let signed = SignedContent::decode(plaintext.as_slice())?;
    let bundle = signed
        .sender
        .as_ref()
        .ok_or(MessageError::Missing("sender bundle"))?;
    // The pre-key must be the identity key's, and the identity key the wallet's.
    let sender = verify_bundle(bundle)?;
    let sig = signed
        .signature
        .as_ref()
        .ok_or(MessageError::Missing("signature"))?;
    let (kind, sig) = signature::from_proto(sig)?;
    if kind != signature::SignatureKind::Key {
        return Err(MessageError::BadSignature);
    }
    let digest: [u8; 32] = Sha256::new()
        .chain_update(&v2.header_bytes)
        .chain_update(&signed.payload)
        .finalize()
        .into();
    sender
        .pre_key()
        .verify_digest(&digest, &sig)
        .map_err(|_| MessageError::BadSignature)?;
    Ok(DecodedMessageV2 {
        id: message_id(bytes),
        sent_ns: header.created_ns,
        sender_address: sender.wallet_address(),
        sender,
        payload: signed.payload,
        header_bytes: v2.header_bytes,
        sender_hmac: v2.sender_hmac,
        should_push: v2.should_push,
    })
}

/// Encodes a V1 direct message from `sender` to `recipient`, sent at
/// `timestamp_ms` (milliseconds since the epoch).
pub fn encode_v1<R: RngCore + CryptoRng>(
    rng: &mut R,
    sender: &PrivateKeyBundleV1,
    recipient: &VerifiedPublicKeyBundle,
    timestamp_ms: u64,
    payload: &[u8],
) -> Result<EncodedMessage, MessageError> {
    let header_bytes = MessageHeaderV1 {
        sender: Some(sender.public_bundle()?),
        recipient: Some(recipient.proto().clone()),
        timestamp: timestamp_ms,
    }
    .encode_to_vec();
    let pre_key = *sender.current_pre_key()?.point();
    let secret = sender.shared_secret(recipient, &pre_key, false)?;
    let ciphertext = ciphertext::encrypt(rng, payload, secret.as_bytes(), &header_bytes)?;
    let bytes = Message {
        version: Some(message::Version::V1(MessageV1 {
            header_bytes,
            ciphertext: Some(ciphertext),
        })),
    }
    .encode_to_vec();
    Ok(EncodedMessage {
        id: message_id(&bytes),
        bytes,
    })
}

/// A V1 message that decrypted, with both parties' verified bundles.
#[derive(Debug, Clone)]
pub struct DecodedMessageV1 {
    /// hex(sha256(encoded Message)).
    pub id: String,
    /// The header's timestamp, milliseconds since the epoch.
    pub sent_ms: u64,
    /// The sender's verified bundle.
    pub sender: VerifiedPublicKeyBundle,
    /// The recipient's verified bundle.
    pub recipient: VerifiedPublicKeyBundle,
    /// The decrypted payload.
    pub payload: Vec<u8>,
    /// Whether the viewer sent it.
    pub viewer_is_sender: bool,
}

/// Decrypts an encoded V1 `Message` with `viewer`'s keys (the viewer may be
/// either party).
pub fn decode_v1(
    viewer: &PrivateKeyBundleV1,
    bytes: &[u8],
) -> Result<DecodedMessageV1, MessageError> {
    let message = Message::decode(bytes)?;
    let v1 = match message.version {
        Some(message::Version::V1(v1)) => v1,
        Some(message::Version::V2(_)) => return Err(MessageError::WrongVersion("V1")),
        None => return Err(MessageError::Missing("message version")),
    };
    let header = MessageHeaderV1::decode(v1.header_bytes.as_slice())?;
    let sender = VerifiedPublicKeyBundle::verify(
        header
            .sender
            .as_ref()
            .ok_or(MessageError::Missing("sender"))?,
    )?;
    let recipient = VerifiedPublicKeyBundle::verify(
        header
            .recipient
            .as_ref()
            .ok_or(MessageError::Missing("recipient"))?,
    )?;
    let viewer_is_sender = viewer.identity_key().point() == sender.identity_key();
    if !viewer_is_sender && viewer.identity_key().point() != recipient.identity_key() {
        return Err(MessageError::NotAParty);
    }
    let secret = if viewer_is_sender {
        viewer.shared_secret(&recipient, sender.pre_key(), false)?
    } else {
        viewer.shared_secret(&sender, recipient.pre_key(), true)?
    };
    let ciphertext = v1
        .ciphertext
        .as_ref()
        .ok_or(MessageError::Missing("ciphertext"))?;
    let payload = ciphertext::decrypt(ciphertext, secret.as_bytes(), &v1.header_bytes)?;
    Ok(DecodedMessageV1 {
        id: message_id(bytes),
        sent_ms: header.timestamp,
        sender,
        recipient,
        payload: payload.to_vec(),
        viewer_is_sender,
    })
}
