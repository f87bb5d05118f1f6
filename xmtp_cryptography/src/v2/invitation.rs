//! V2 invitations: the topic and key material of a conversation, sealed to
//! both parties.
//!
//! A conversation's invitation is encrypted under the 3-DH secret of the
//! sender's and recipient's V2 bundles, with the encoded header (both bundles
//! and the creation time) as associated data, and published to both parties'
//! invite topics. Either party opens it with its own keys:
//!
//! ```text
//! header  = SealedInvitationHeaderV1{sender bundle, recipient bundle, created_ns}
//! secret  = 3DH(sender keys, recipient bundle, is_recipient = false)      (see private_key)
//! sealed  = SealedInvitationV1{header_bytes, encrypt(invitation, secret, aad = header_bytes)}
//! ```
//!
//! XMTP's SDKs (xmtp-js 13 `InMemoryKeystore.createInvite`) derive a
//! direct conversation's topic and key material deterministically, so that
//! both parties arrive at the same conversation whoever invites first:
//!
//! ```text
//! [A, B]  = EIP-55 addresses sorted;  me_is_recipient = (my address < peer address)
//! s       = 3DH(my keys, peer bundle, me_is_recipient)
//! topic   = "/xmtp/0/m-" || hex(HMAC-SHA256(s, conversation_id || A || "," || B)) || "/proto"
//! key     = HKDF-SHA256(ikm = s, salt = "__XMTP__INVITATION__SALT__XMTP__", info = "0|" || A || "|" || B, L = 32)
//! ```

use crate::wallet::Address;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use prost::Message;
use rand::{CryptoRng, RngCore};
use sha2::Sha256;
use xmtp_proto::xmtp::message_contents::{
    invitation_v1, sealed_invitation, InvitationV1, SealedInvitation, SealedInvitationHeaderV1,
    SealedInvitationV1,
};
use zeroize::Zeroizing;

use super::{
    ciphertext::{self, CiphertextError},
    private_key::{PrivateKeyBundleV2, PrivateKeyError},
    public_key::{BundleError, VerifiedSignedBundle},
    topic,
};

/// The HKDF salt of deterministic invitation key material (32 bytes).
pub const INVITE_SALT: &[u8; 32] = b"__XMTP__INVITATION__SALT__XMTP__";

/// Why an invitation cannot be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvitationError {
    /// The bytes are not an encoded sealed invitation or invitation.
    #[error("malformed invitation: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A required field is absent or empty.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The envelope's timestamp differs from the header's creation time.
    #[error("envelope timestamp {envelope_ns} differs from header created_ns {header_ns}")]
    TimestampMismatch {
        /// The envelope's timestamp.
        envelope_ns: u64,
        /// The header's creation time.
        header_ns: u64,
    },
    /// A bundle in the header does not verify.
    #[error("bundle in header: {0}")]
    Bundle(#[from] BundleError),
    /// Our keys cannot open or make it (e.g. none of our pre-keys is named).
    #[error(transparent)]
    Keys(#[from] PrivateKeyError),
    /// Decryption failed: a wrong key, or altered ciphertext or header.
    #[error(transparent)]
    Ciphertext(#[from] CiphertextError),
    /// HMAC or HKDF refused its input (cannot happen with a 195-byte secret
    /// and a 32-byte output).
    #[error("key derivation failed")]
    Derivation,
    /// The viewer's identity key is neither the sender's nor the recipient's.
    #[error("invitation is not between the viewer and anyone")]
    NotAParty,
}

fn check_invitation(invitation: &InvitationV1) -> Result<&[u8], InvitationError> {
    if invitation.topic.is_empty() {
        return Err(InvitationError::Missing("topic"));
    }
    match &invitation.encryption {
        Some(invitation_v1::Encryption::Aes256GcmHkdfSha256(k)) if !k.key_material.is_empty() => {
            Ok(&k.key_material)
        }
        _ => Err(InvitationError::Missing("key material")),
    }
}

/// The key material of an invitation.
pub fn key_material(invitation: &InvitationV1) -> Result<&[u8], InvitationError> {
    check_invitation(invitation)
}

/// A new invitation with a random topic and random 32-byte key material.
pub fn random_invitation<R: RngCore + CryptoRng>(
    rng: &mut R,
    context: Option<invitation_v1::Context>,
) -> InvitationV1 {
    let topic = topic::random_conversation_topic(rng);
    let mut key_material = vec![0u8; 32];
    rng.fill_bytes(&mut key_material);
    InvitationV1 {
        topic,
        context,
        encryption: Some(invitation_v1::Encryption::Aes256GcmHkdfSha256(
            invitation_v1::Aes256gcmHkdfsha256 { key_material },
        )),
        consent_proof: None,
    }
}

/// The invitation both parties derive for their direct conversation (see the
/// module documentation).
pub fn deterministic_invitation(
    me: &PrivateKeyBundleV2,
    peer: &VerifiedSignedBundle,
    context: Option<invitation_v1::Context>,
) -> Result<InvitationV1, InvitationError> {
    let mine = me.wallet_address().to_checksum();
    let theirs = peer.wallet_address().to_checksum();
    let my_pre_key = *me.current_pre_key()?.point();
    let secret = me.shared_secret(peer, &my_pre_key, mine < theirs)?;
    let mut sorted = [mine, theirs];
    sorted.sort();
    let conversation_id = context
        .as_ref()
        .map(|c| c.conversation_id.as_str())
        .unwrap_or("");

    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .map_err(|_| InvitationError::Derivation)?;
    mac.update(format!("{conversation_id}{},{}", sorted[0], sorted[1]).as_bytes());
    let topic = topic::direct_message_topic_v2(&hex::encode(mac.finalize().into_bytes()));

    let mut key_material = Zeroizing::new(vec![0u8; 32]);
    Hkdf::<Sha256>::new(Some(INVITE_SALT), secret.as_bytes())
        .expand(
            format!("0|{}|{}", sorted[0], sorted[1]).as_bytes(),
            &mut key_material,
        )
        .map_err(|_| InvitationError::Derivation)?;

    Ok(InvitationV1 {
        topic,
        context,
        encryption: Some(invitation_v1::Encryption::Aes256GcmHkdfSha256(
            invitation_v1::Aes256gcmHkdfsha256 {
                key_material: key_material.to_vec(),
            },
        )),
        consent_proof: None,
    })
}

/// Seals `invitation` from `sender` to `recipient`, created at `created_ns`
/// (which must also be the envelope's timestamp). Returns the encoded
/// `SealedInvitation`, to publish on both invite topics.
pub fn seal<R: RngCore + CryptoRng>(
    rng: &mut R,
    sender: &PrivateKeyBundleV2,
    recipient: &VerifiedSignedBundle,
    created_ns: u64,
    invitation: &InvitationV1,
) -> Result<Vec<u8>, InvitationError> {
    check_invitation(invitation)?;
    let my_bundle = sender.public_bundle();
    let header_bytes = SealedInvitationHeaderV1 {
        sender: Some(my_bundle.proto().clone()),
        recipient: Some(recipient.proto().clone()),
        created_ns,
    }
    .encode_to_vec();
    let secret = sender.shared_secret(recipient, my_bundle.pre_key(), false)?;
    let plaintext = Zeroizing::new(invitation.encode_to_vec());
    let ciphertext = ciphertext::encrypt(rng, &plaintext, secret.as_bytes(), &header_bytes)?;
    Ok(SealedInvitation {
        version: Some(sealed_invitation::Version::V1(SealedInvitationV1 {
            header_bytes,
            ciphertext: Some(ciphertext),
        })),
    }
    .encode_to_vec())
}

/// An invitation opened and authenticated by one of its parties. Its
/// `Debug` names the topic and parties but never the key material.
#[derive(Clone)]
pub struct OpenedInvitation {
    /// The invitation: the conversation's topic and key material.
    pub invitation: InvitationV1,
    /// The verified bundle of the party that sealed it.
    pub sender: VerifiedSignedBundle,
    /// The verified bundle of the party it was sealed to.
    pub recipient: VerifiedSignedBundle,
    /// The header's creation time, nanoseconds since the epoch.
    pub created_ns: u64,
    /// Whether the viewer is the sender.
    pub viewer_is_sender: bool,
}

impl std::fmt::Debug for OpenedInvitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedInvitation")
            .field("topic", &self.invitation.topic)
            .field("sender", &self.sender.wallet_address())
            .field("recipient", &self.recipient.wallet_address())
            .field("created_ns", &self.created_ns)
            .field("viewer_is_sender", &self.viewer_is_sender)
            .finish_non_exhaustive()
    }
}

impl OpenedInvitation {
    /// The wallet of the other party.
    pub fn peer_address(&self) -> Address {
        if self.viewer_is_sender {
            self.recipient.wallet_address()
        } else {
            self.sender.wallet_address()
        }
    }
}

/// Opens an encoded `SealedInvitation` with `viewer`'s keys. When the
/// envelope's timestamp is given it must equal the header's creation time,
/// as XMTP's SDKs require.
pub fn open(
    viewer: &PrivateKeyBundleV2,
    sealed: &[u8],
    envelope_timestamp_ns: Option<u64>,
) -> Result<OpenedInvitation, InvitationError> {
    let sealed = SealedInvitation::decode(sealed)?;
    let Some(sealed_invitation::Version::V1(v1)) = sealed.version else {
        return Err(InvitationError::Missing("v1 sealed invitation"));
    };
    if v1.header_bytes.is_empty() {
        return Err(InvitationError::Missing("header bytes"));
    }
    let ciphertext = v1
        .ciphertext
        .ok_or(InvitationError::Missing("ciphertext"))?;
    let header = SealedInvitationHeaderV1::decode(v1.header_bytes.as_slice())?;
    if let Some(envelope_ns) = envelope_timestamp_ns {
        if envelope_ns != header.created_ns {
            return Err(InvitationError::TimestampMismatch {
                envelope_ns,
                header_ns: header.created_ns,
            });
        }
    }
    let sender = VerifiedSignedBundle::verify(
        header
            .sender
            .as_ref()
            .ok_or(InvitationError::Missing("sender"))?,
    )?;
    let recipient = VerifiedSignedBundle::verify(
        header
            .recipient
            .as_ref()
            .ok_or(InvitationError::Missing("recipient"))?,
    )?;

    let viewer_is_sender = viewer.identity_key().point() == sender.identity_key();
    if !viewer_is_sender && viewer.identity_key().point() != recipient.identity_key() {
        return Err(InvitationError::NotAParty);
    }
    let secret = if viewer_is_sender {
        viewer.shared_secret(&recipient, sender.pre_key(), false)?
    } else {
        viewer.shared_secret(&sender, recipient.pre_key(), true)?
    };
    let plaintext = ciphertext::decrypt(&ciphertext, secret.as_bytes(), &v1.header_bytes)?;
    let invitation = InvitationV1::decode(plaintext.as_slice())?;
    check_invitation(&invitation)?;
    Ok(OpenedInvitation {
        invitation,
        sender,
        recipient,
        created_ns: header.created_ns,
        viewer_is_sender,
    })
}
