//! An installation's own keys: a vodozemac Olm `Account` (Curve25519 identity
//! key, Ed25519 signing key, one-time keys, fallback key).
//!
//! The Ed25519 signing key is the installation's id. It signs, each with its
//! own domain-separation prefix so no signature can be replayed as another:
//!
//! ```text
//! identity key binding  Ed25519(sk, "xmtp-v3-identity-key" || curve25519 identity key)
//! one-time key          Ed25519(sk, "xmtp-v3-one-time-key" || curve25519 key)
//! fallback key          Ed25519(sk, "xmtp-v3-fallback-key" || curve25519 key)
//! application message   Ed25519(sk, "xmtp-v3-sign" || u16be(len(context)) || context || message)
//! ```
//!
//! Secrets never leave in plaintext: [`InstallationKeys::pickle`] seals
//! vodozemac's account pickle (and the current fallback key, which vodozemac
//! forgets once published) with AES-256-GCM under a key the caller supplies.
//! `Debug` prints only public keys.

use std::fmt;

use ed25519_dalek::{Signature as DalekSignature, VerifyingKey};
use serde::{Deserialize, Serialize};
use vodozemac::{olm::Account, olm::AccountPickle, Curve25519PublicKey};
use xmtp_proto::xmtp::v3::message_contents::SignedCurve25519Key;
use zeroize::Zeroizing;

use crate::{
    aead::{self, SecretKey},
    error::{KeySignatureError, PickleError},
};

/// Domain prefix of the signature binding the identity key to the installation.
pub const IDENTITY_KEY_DOMAIN: &[u8] = b"xmtp-v3-identity-key";
/// Domain prefix of a one-time key's signature.
pub const ONE_TIME_KEY_DOMAIN: &[u8] = b"xmtp-v3-one-time-key";
/// Domain prefix of a fallback key's signature.
pub const FALLBACK_KEY_DOMAIN: &[u8] = b"xmtp-v3-fallback-key";
/// Domain prefix of an application signature ([`InstallationKeys::sign`]).
pub const APPLICATION_SIGNATURE_DOMAIN: &[u8] = b"xmtp-v3-sign";

const PICKLE_VERSION: u32 = 1;
const PICKLE_KEY_INFO: &[u8] = b"xmtp-v3-installation-pickle";
const PICKLE_AD: &[u8] = b"xmtp-v3-installation-pickle-v1";

/// An installation's id: its 32-byte Ed25519 signing key. Printed as 64
/// lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstallationId([u8; 32]);

impl InstallationId {
    /// The id from its 32 bytes (not checked to be a valid Ed25519 point; use
    /// [`InstallationId::verifying_key`] for that).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The id from a slice, if it is 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The Ed25519 verifying key, if the bytes are a valid point.
    pub fn verifying_key(&self) -> Result<VerifyingKey, KeySignatureError> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| KeySignatureError::BadPublicKey)
    }

    /// Verifies an Ed25519 signature by this installation over
    /// `domain || message` (strict verification: no malleable or small-order
    /// encodings).
    pub fn verify_domain(
        &self,
        domain: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), KeySignatureError> {
        verify_with_key(&self.verifying_key()?, domain, message, signature)
    }

    /// Verifies a signature made with [`InstallationKeys::sign`] for `context`.
    pub fn verify(
        &self,
        context: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), KeySignatureError> {
        self.verify_domain(
            APPLICATION_SIGNATURE_DOMAIN,
            &application_message(context, message),
            signature,
        )
    }
}

impl fmt::Display for InstallationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InstallationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstallationId({})", self.to_hex())
    }
}

/// Verifies `signature` over `domain || message` under an already decoded
/// key (decoding an Ed25519 point costs as much as a third of a verification,
/// so a bundle decodes its key once).
pub(crate) fn verify_with_key(
    key: &VerifyingKey,
    domain: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), KeySignatureError> {
    let signature: [u8; 64] = signature
        .try_into()
        .map_err(|_| KeySignatureError::BadSignatureLength(signature.len()))?;
    let signature = DalekSignature::from_bytes(&signature);
    let mut signed = Vec::with_capacity(domain.len() + message.len());
    signed.extend_from_slice(domain);
    signed.extend_from_slice(message);
    key.verify_strict(&signed, &signature)
        .map_err(|_| KeySignatureError::Invalid)
}

/// `u16be(len(context)) || context || message`; contexts longer than 65535
/// bytes are cut, which only a caller's bug could cause.
fn application_message(context: &str, message: &[u8]) -> Vec<u8> {
    let context = &context.as_bytes()[..context.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(2 + context.len() + message.len());
    out.extend_from_slice(&(context.len() as u16).to_be_bytes());
    out.extend_from_slice(context);
    out.extend_from_slice(message);
    out
}

/// Which kind of pre-key a signed Curve25519 key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PreKeyKind {
    /// A one-time key: used for one session, then forgotten.
    OneTime,
    /// The fallback key: handed out when no one-time key is left.
    Fallback,
}

impl PreKeyKind {
    /// The signature's domain prefix.
    pub const fn domain(self) -> &'static [u8] {
        match self {
            Self::OneTime => ONE_TIME_KEY_DOMAIN,
            Self::Fallback => FALLBACK_KEY_DOMAIN,
        }
    }
}

/// A Curve25519 pre-key signed by its installation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SignedPreKey {
    kind: PreKeyKind,
    key: Curve25519PublicKey,
    signature: [u8; 64],
}

impl SignedPreKey {
    /// One-time or fallback.
    pub const fn kind(&self) -> PreKeyKind {
        self.kind
    }

    /// The public key.
    pub const fn key(&self) -> Curve25519PublicKey {
        self.key
    }

    /// The Ed25519 signature over `kind.domain() || key`.
    pub const fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// The wire form.
    pub fn to_proto(&self) -> SignedCurve25519Key {
        SignedCurve25519Key {
            key: self.key.to_vec(),
            signature: self.signature.to_vec(),
        }
    }
}

impl fmt::Debug for SignedPreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedPreKey")
            .field("kind", &self.kind)
            .field("key", &self.key)
            .finish()
    }
}

/// An installation's private keys. Zeroized on drop (by vodozemac); stored
/// only as an encrypted pickle.
pub struct InstallationKeys {
    account: Account,
    /// The current fallback key: vodozemac stops reporting it once published.
    fallback_key: Option<Curve25519PublicKey>,
}

#[derive(Serialize, Deserialize)]
struct Pickle {
    version: u32,
    account: AccountPickle,
    fallback_key: Option<Curve25519PublicKey>,
}

impl InstallationKeys {
    /// New random keys, with a fallback key already generated.
    pub fn new() -> Self {
        let mut keys = Self {
            account: Account::new(),
            fallback_key: None,
        };
        keys.generate_fallback_key();
        keys
    }

    /// The installation id (the Ed25519 signing key).
    pub fn installation_id(&self) -> InstallationId {
        InstallationId(*self.account.ed25519_key().as_bytes())
    }

    /// The Curve25519 identity key.
    pub fn identity_key(&self) -> Curve25519PublicKey {
        self.account.curve25519_key()
    }

    /// The signature binding the identity key to this installation.
    pub fn identity_key_signature(&self) -> [u8; 64] {
        self.sign_domain(IDENTITY_KEY_DOMAIN, self.identity_key().as_bytes())
    }

    fn sign_domain(&self, domain: &[u8], message: &[u8]) -> [u8; 64] {
        let mut signed = Vec::with_capacity(domain.len() + message.len());
        signed.extend_from_slice(domain);
        signed.extend_from_slice(message);
        self.account.sign(&signed).to_bytes()
    }

    fn sign_pre_key(&self, kind: PreKeyKind, key: Curve25519PublicKey) -> SignedPreKey {
        SignedPreKey {
            kind,
            key,
            signature: self.sign_domain(kind.domain(), key.as_bytes()),
        }
    }

    /// Signs an application message (a group membership change, say) under a
    /// context string; verify with [`InstallationId::verify`].
    pub fn sign(&self, context: &str, message: &[u8]) -> [u8; 64] {
        self.sign_domain(
            APPLICATION_SIGNATURE_DOMAIN,
            &application_message(context, message),
        )
    }

    /// Generates `count` new one-time keys and returns them signed. vodozemac
    /// keeps at most 5,000 private one-time keys and drops the oldest beyond
    /// that; keep at most [`InstallationKeys::max_one_time_keys`] on the node.
    pub fn generate_one_time_keys(&mut self, count: usize) -> Vec<SignedPreKey> {
        let result = self.account.generate_one_time_keys(count);
        result
            .created
            .into_iter()
            .map(|key| self.sign_pre_key(PreKeyKind::OneTime, key))
            .collect()
    }

    /// The one-time keys not yet marked as published, signed.
    pub fn unpublished_one_time_keys(&self) -> Vec<SignedPreKey> {
        let mut keys: Vec<_> = self.account.one_time_keys().into_iter().collect();
        keys.sort_by_key(|(id, _)| id.to_base64());
        keys.into_iter()
            .map(|(_, key)| self.sign_pre_key(PreKeyKind::OneTime, key))
            .collect()
    }

    /// Marks every one-time key and the fallback key as published.
    pub fn mark_keys_as_published(&mut self) {
        self.account.mark_keys_as_published();
    }

    /// How many private one-time keys this installation holds.
    pub fn stored_one_time_key_count(&self) -> usize {
        self.account.stored_one_time_key_count()
    }

    /// How many one-time keys should be on the server at most.
    pub fn max_one_time_keys(&self) -> usize {
        self.account.max_number_of_one_time_keys()
    }

    /// Generates a new fallback key and returns it signed. The previous one
    /// stays usable (for sessions started before the rotation was seen) until
    /// [`InstallationKeys::forget_previous_fallback_key`].
    pub fn rotate_fallback_key(&mut self) -> SignedPreKey {
        let key = self.generate_fallback_key();
        self.sign_pre_key(PreKeyKind::Fallback, key)
    }

    fn generate_fallback_key(&mut self) -> Curve25519PublicKey {
        self.account.generate_fallback_key();
        #[allow(clippy::expect_used)]
        let key =
            self.account.fallback_key().into_values().next().expect(
                "vodozemac reports a fallback key as unpublished right after generating it",
            );
        self.fallback_key = Some(key);
        key
    }

    /// The current fallback key, signed.
    pub fn fallback_key(&self) -> Option<SignedPreKey> {
        self.fallback_key
            .map(|key| self.sign_pre_key(PreKeyKind::Fallback, key))
    }

    /// Forgets the fallback key before the current one. Returns whether there
    /// was one.
    pub fn forget_previous_fallback_key(&mut self) -> bool {
        self.account.forget_fallback_key()
    }

    /// Seals the keys under `key`: AES-256-GCM (see [`crate::aead`]) under
    /// HKDF(key, "xmtp-v3-installation-pickle") of vodozemac's account pickle.
    pub fn pickle(&self, key: &SecretKey) -> Result<Vec<u8>, PickleError> {
        let pickle = Pickle {
            version: PICKLE_VERSION,
            account: self.account.pickle(),
            fallback_key: self.fallback_key,
        };
        let json = Zeroizing::new(
            serde_json::to_vec(&pickle).map_err(|e| PickleError::Malformed(e.to_string()))?,
        );
        aead::seal(&key.derive_subkey(PICKLE_KEY_INFO), PICKLE_AD, &json)
            .map_err(|e| PickleError::Malformed(e.to_string()))
    }

    /// Opens a pickle made by [`InstallationKeys::pickle`] under the same key.
    pub fn from_pickle(pickle: &[u8], key: &SecretKey) -> Result<Self, PickleError> {
        let json = Zeroizing::new(
            aead::open(&key.derive_subkey(PICKLE_KEY_INFO), PICKLE_AD, pickle)
                .map_err(|_| PickleError::Decrypt)?,
        );
        let pickle: Pickle =
            serde_json::from_slice(&json).map_err(|e| PickleError::Malformed(e.to_string()))?;
        if pickle.version != PICKLE_VERSION {
            return Err(PickleError::UnsupportedVersion(pickle.version));
        }
        Ok(Self {
            account: Account::from_pickle(pickle.account),
            fallback_key: pickle.fallback_key,
        })
    }

    pub(crate) fn account(&self) -> &Account {
        &self.account
    }

    pub(crate) fn account_mut(&mut self) -> &mut Account {
        &mut self.account
    }
}

impl Default for InstallationKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InstallationKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstallationKeys")
            .field("installation_id", &self.installation_id())
            .field("identity_key", &self.identity_key())
            .finish_non_exhaustive()
    }
}

/// Verifies a pre-key's signature by `installation`.
pub fn verify_pre_key(
    installation: &InstallationId,
    kind: PreKeyKind,
    proto: &SignedCurve25519Key,
) -> Result<SignedPreKey, crate::error::BundleError> {
    let wrap = |e| match kind {
        PreKeyKind::OneTime => crate::error::BundleError::OneTimeKeySignature(e),
        PreKeyKind::Fallback => crate::error::BundleError::FallbackKeySignature(e),
    };
    verify_pre_key_with(&installation.verifying_key().map_err(wrap)?, kind, proto)
}

/// [`verify_pre_key`] under an already decoded installation key.
pub(crate) fn verify_pre_key_with(
    key: &VerifyingKey,
    kind: PreKeyKind,
    proto: &SignedCurve25519Key,
) -> Result<SignedPreKey, crate::error::BundleError> {
    use crate::error::BundleError;
    let name = match kind {
        PreKeyKind::OneTime => "one-time key",
        PreKeyKind::Fallback => "fallback key",
    };
    let key_bytes: [u8; 32] = proto
        .key
        .as_slice()
        .try_into()
        .map_err(|_| BundleError::BadCurve25519Key(name))?;
    let wrap = |e| match kind {
        PreKeyKind::OneTime => BundleError::OneTimeKeySignature(e),
        PreKeyKind::Fallback => BundleError::FallbackKeySignature(e),
    };
    verify_with_key(key, kind.domain(), &key_bytes, &proto.signature).map_err(wrap)?;
    let signature: [u8; 64] = proto
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| wrap(KeySignatureError::BadSignatureLength(proto.signature.len())))?;
    Ok(SignedPreKey {
        kind,
        key: Curve25519PublicKey::from_bytes(key_bytes),
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_time_keys_are_signed_by_the_installation() {
        let mut keys = InstallationKeys::new();
        let otks = keys.generate_one_time_keys(5);
        assert_eq!(otks.len(), 5);
        for otk in &otks {
            let verified = verify_pre_key(
                &keys.installation_id(),
                PreKeyKind::OneTime,
                &otk.to_proto(),
            )
            .unwrap();
            assert_eq!(verified, *otk);
            // A one-time key's signature is not a fallback key's.
            assert!(verify_pre_key(
                &keys.installation_id(),
                PreKeyKind::Fallback,
                &otk.to_proto()
            )
            .is_err());
        }
        assert_eq!(keys.unpublished_one_time_keys().len(), 5);
        keys.mark_keys_as_published();
        assert!(keys.unpublished_one_time_keys().is_empty());
        assert_eq!(keys.stored_one_time_key_count(), 5);
    }

    #[test]
    fn fallback_key_survives_publishing_and_rotates() {
        let mut keys = InstallationKeys::new();
        let first = keys.fallback_key().unwrap();
        keys.mark_keys_as_published();
        assert_eq!(keys.fallback_key().unwrap(), first);
        let second = keys.rotate_fallback_key();
        assert_ne!(second.key(), first.key());
        assert_eq!(keys.fallback_key().unwrap(), second);
        verify_pre_key(
            &keys.installation_id(),
            PreKeyKind::Fallback,
            &second.to_proto(),
        )
        .unwrap();
    }

    #[test]
    fn pickle_round_trips_under_its_key_only() {
        let mut keys = InstallationKeys::new();
        keys.generate_one_time_keys(3);
        let key = SecretKey::random();
        let pickle = keys.pickle(&key).unwrap();
        let restored = InstallationKeys::from_pickle(&pickle, &key).unwrap();
        assert_eq!(restored.installation_id(), keys.installation_id());
        assert_eq!(restored.identity_key(), keys.identity_key());
        assert_eq!(restored.fallback_key(), keys.fallback_key());
        assert_eq!(
            restored.unpublished_one_time_keys(),
            keys.unpublished_one_time_keys()
        );
        assert_eq!(
            InstallationKeys::from_pickle(&pickle, &SecretKey::random()).unwrap_err(),
            PickleError::Decrypt
        );
        let mut tampered = pickle.clone();
        tampered[20] ^= 1;
        assert_eq!(
            InstallationKeys::from_pickle(&tampered, &key).unwrap_err(),
            PickleError::Decrypt
        );
    }

    #[test]
    fn pickle_is_not_plaintext() {
        let keys = InstallationKeys::new();
        let pickle = keys.pickle(&SecretKey::random()).unwrap();
        let text = String::from_utf8_lossy(&pickle);
        assert!(!text.contains("signing_key"));
        assert!(!text.contains("fallback"));
    }

    #[test]
    fn application_signatures_are_bound_to_context() {
        let keys = InstallationKeys::new();
        let id = keys.installation_id();
        let signature = keys.sign("group-change", b"add bob");
        id.verify("group-change", b"add bob", &signature).unwrap();
        assert_eq!(
            id.verify("group-change", b"add eve", &signature),
            Err(KeySignatureError::Invalid)
        );
        assert_eq!(
            id.verify("other", b"add bob", &signature),
            Err(KeySignatureError::Invalid)
        );
        assert_eq!(
            id.verify("group-change", b"add bob", &signature[..63]),
            Err(KeySignatureError::BadSignatureLength(63))
        );
    }

    #[test]
    fn debug_is_pinned_to_public_keys_only() {
        let keys = InstallationKeys::new();
        let debug = format!("{keys:?}");
        // Pinned: only the two public keys, whatever vodozemac's own Debug does.
        assert_eq!(
            debug,
            format!(
                "InstallationKeys {{ installation_id: InstallationId({}), identity_key: {:?}, .. }}",
                keys.installation_id().to_hex(),
                keys.identity_key()
            )
        );
    }

    #[test]
    fn installation_id_hex_round_trips() {
        let id = InstallationKeys::new().installation_id();
        assert_eq!(InstallationId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(id.to_string().len(), 64);
        assert_eq!(InstallationId::from_hex("00"), None);
    }
}
