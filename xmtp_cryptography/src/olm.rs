//! Pairwise double-ratchet sessions: a thin wrapper over vodozemac's Olm.
//!
//! ```text
//! outbound: Olm 3DH  S = ECDH(I_a, O_b) || ECDH(E_a, I_b) || ECDH(E_a, O_b)
//!           with I = Curve25519 identity keys, O_b = a claimed one-time or fallback key
//!           of a *verified* installation, E_a fresh; then the double ratchet.
//! inbound:  from the first (pre-key) message, whose sender identity key must be
//!           the expected one; the one-time key is spent on success.
//! ```
//!
//! See <https://gitlab.matrix.org/matrix-org/olm/-/blob/master/docs/olm.md>.
//! Forward secrecy and post-compromise security are vodozemac's: this wrapper
//! keeps no message keys and caches no plaintext; a message decrypts at most
//! once (vodozemac discards its key), so a replay is refused with
//! [`DecryptError::MissingMessageKey`]. State is saved only as vodozemac's
//! encrypted pickle under a caller-supplied key.
//!
//! vodozemac's limits on out-of-order delivery: a session keeps the last 5
//! receiving chains, at most 40 skipped message keys per chain, and refuses a
//! gap of more than 2,000 messages in one chain.

use std::fmt;

use vodozemac::{
    olm::{
        DecryptionError as VDecryptionError, OlmMessage, Session, SessionConfig,
        SessionCreationError, SessionPickle,
    },
    Curve25519PublicKey,
};

use crate::{
    aead::SecretKey,
    bundle::{ClaimedPreKey, VerifiedInstallation},
    error::{DecryptError, EncryptError, PickleError, SessionError},
    installation::InstallationKeys,
};

/// The two kinds of Olm message on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OlmMessageType {
    /// Type 0: carries the session's set-up keys; sent until the peer replies.
    PreKey,
    /// Type 1: an ordinary ratchet message.
    Normal,
}

impl OlmMessageType {
    /// The wire number (0 or 1).
    pub const fn as_u64(self) -> u64 {
        match self {
            Self::PreKey => 0,
            Self::Normal => 1,
        }
    }

    /// From the wire number.
    pub fn from_u64(value: u64) -> Result<Self, DecryptError> {
        match value {
            0 => Ok(Self::PreKey),
            1 => Ok(Self::Normal),
            other => Err(DecryptError::UnknownMessageType(other)),
        }
    }
}

/// An Olm ciphertext: its type and bytes, decoded and checked for shape.
#[derive(Clone, PartialEq, Eq)]
pub struct OlmCiphertext(OlmMessage);

impl OlmCiphertext {
    /// Decodes a message of `message_type` from its bytes.
    pub fn from_parts(message_type: OlmMessageType, bytes: &[u8]) -> Result<Self, DecryptError> {
        let number = match message_type {
            OlmMessageType::PreKey => 0,
            OlmMessageType::Normal => 1,
        };
        let message = OlmMessage::from_parts(number, bytes)
            .map_err(|e| DecryptError::Malformed(e.to_string()))?;
        // vodozemac MACs the re-encoded message, so only the canonical
        // encoding is accepted: one message, one byte form.
        if message.to_parts().1 != bytes {
            return Err(DecryptError::Malformed(
                "not canonically encoded".to_owned(),
            ));
        }
        Ok(Self(message))
    }

    /// The message type.
    pub fn message_type(&self) -> OlmMessageType {
        match self.0 {
            OlmMessage::PreKey(_) => OlmMessageType::PreKey,
            OlmMessage::Normal(_) => OlmMessageType::Normal,
        }
    }

    /// The message bytes (without the type).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_parts().1
    }

    /// The type and bytes.
    pub fn to_parts(&self) -> (OlmMessageType, Vec<u8>) {
        (self.message_type(), self.to_bytes())
    }

    /// For a pre-key message, the sender's Curve25519 identity key (as the
    /// message claims it; it is authenticated when the session is created).
    pub fn sender_identity_key(&self) -> Option<Curve25519PublicKey> {
        match &self.0 {
            OlmMessage::PreKey(m) => Some(m.identity_key()),
            OlmMessage::Normal(_) => None,
        }
    }

    /// For a pre-key message, the id of the session it belongs to.
    pub fn session_id(&self) -> Option<String> {
        match &self.0 {
            OlmMessage::PreKey(m) => Some(m.session_id()),
            OlmMessage::Normal(_) => None,
        }
    }
}

impl fmt::Debug for OlmCiphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OlmCiphertext")
            .field("message_type", &self.message_type())
            .field("len", &self.to_bytes().len())
            .finish()
    }
}

/// An Olm session with one peer installation.
pub struct OlmSession {
    session: Session,
}

fn map_decrypt(error: VDecryptionError) -> DecryptError {
    match error {
        VDecryptionError::InvalidMAC(_)
        | VDecryptionError::InvalidMACLength(..)
        | VDecryptionError::InvalidPadding(_) => DecryptError::Authentication,
        VDecryptionError::MissingMessageKey(_) | VDecryptionError::TooBigMessageGap(..) => {
            DecryptError::MissingMessageKey
        }
        other => DecryptError::Other(other.to_string()),
    }
}

fn map_creation(error: SessionCreationError) -> SessionError {
    match error {
        SessionCreationError::MissingOneTimeKey(_) => SessionError::UnknownOneTimeKey,
        SessionCreationError::MismatchedIdentityKey(..) => SessionError::WrongSender,
        SessionCreationError::NonContributoryKey => SessionError::NonContributory,
        SessionCreationError::Decryption(e) => SessionError::Decrypt(map_decrypt(e)),
        other => SessionError::Other(other.to_string()),
    }
}

impl OlmSession {
    /// Opens a session to `peer` with a key claimed from it (a one-time key,
    /// or its fallback key) whose signature was verified.
    pub fn outbound(
        own: &InstallationKeys,
        peer: &VerifiedInstallation,
        claimed: &ClaimedPreKey,
    ) -> Result<Self, SessionError> {
        if claimed.installation_id() != peer.installation_id() {
            return Err(SessionError::WrongInstallation);
        }
        let session = own
            .account()
            .create_outbound_session(
                SessionConfig::version_1(),
                peer.identity_key(),
                claimed.key(),
            )
            .map_err(map_creation)?;
        Ok(Self { session })
    }

    /// Creates the receiving side from the first (pre-key) message of
    /// `sender`, returning the session and the message's plaintext. Spends the
    /// one-time key the message used.
    pub fn inbound(
        own: &mut InstallationKeys,
        sender: &VerifiedInstallation,
        message: &OlmCiphertext,
    ) -> Result<(Self, Vec<u8>), SessionError> {
        Self::inbound_from_identity_key(own, sender.identity_key(), message)
    }

    /// Like [`OlmSession::inbound`], for a sender known only by its Curve25519
    /// identity key (the caller must then bind that key to an address).
    pub fn inbound_from_identity_key(
        own: &mut InstallationKeys,
        sender_identity_key: Curve25519PublicKey,
        message: &OlmCiphertext,
    ) -> Result<(Self, Vec<u8>), SessionError> {
        let OlmMessage::PreKey(pre_key) = &message.0 else {
            return Err(SessionError::NotPreKeyMessage);
        };
        let result = own
            .account_mut()
            .create_inbound_session(SessionConfig::version_1(), sender_identity_key, pre_key)
            .map_err(map_creation)?;
        Ok((
            Self {
                session: result.session,
            },
            result.plaintext,
        ))
    }

    /// The session id (the same on both sides).
    pub fn session_id(&self) -> String {
        self.session.session_id()
    }

    /// Whether `message` is a pre-key message of this very session (a
    /// re-sent first message, decryptable with [`OlmSession::decrypt`]).
    pub fn matches(&self, message: &OlmCiphertext) -> bool {
        match &message.0 {
            OlmMessage::PreKey(m) => m.session_keys() == self.session.session_keys(),
            OlmMessage::Normal(_) => false,
        }
    }

    /// Encrypts one message, advancing the ratchet.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<OlmCiphertext, EncryptError> {
        self.session
            .encrypt(plaintext)
            .map(OlmCiphertext)
            .map_err(|e| EncryptError::Olm(e.to_string()))
    }

    /// Decrypts one message. A message decrypts at most once.
    pub fn decrypt(&mut self, message: &OlmCiphertext) -> Result<Vec<u8>, DecryptError> {
        self.session.decrypt(&message.0).map_err(map_decrypt)
    }

    /// Saves the session, encrypted under `key` (vodozemac's pickle format).
    pub fn pickle(&self, key: &SecretKey) -> Vec<u8> {
        self.session
            .pickle()
            .encrypt(key.expose_secret())
            .into_bytes()
    }

    /// Restores a session saved by [`OlmSession::pickle`] under the same key.
    pub fn from_pickle(pickle: &[u8], key: &SecretKey) -> Result<Self, PickleError> {
        let text = std::str::from_utf8(pickle).map_err(|_| PickleError::Decrypt)?;
        let pickle = SessionPickle::from_encrypted(text, key.expose_secret())
            .map_err(|_| PickleError::Decrypt)?;
        Ok(Self {
            session: Session::from_pickle(pickle),
        })
    }
}

impl fmt::Debug for OlmSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OlmSession")
            .field("session_id", &self.session_id())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{association::Association, installation::PreKeyKind, wallet::LocalWallet};

    fn installation() -> (InstallationKeys, VerifiedInstallation) {
        let wallet = LocalWallet::random();
        let keys = InstallationKeys::new();
        let association = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(Association::create(&wallet, keys.installation_id(), 1))
            .unwrap();
        let verified =
            VerifiedInstallation::from_proto(&keys.public_bundle(&association).unwrap()).unwrap();
        (keys, verified)
    }

    fn pair() -> (
        InstallationKeys,
        VerifiedInstallation,
        InstallationKeys,
        VerifiedInstallation,
        OlmSession,
    ) {
        let (alice, alice_public) = installation();
        let (mut bob, bob_public) = installation();
        let otk = bob.generate_one_time_keys(1)[0];
        bob.mark_keys_as_published();
        let claimed = bob_public
            .verify_claimed_key(&otk.to_proto(), PreKeyKind::OneTime)
            .unwrap();
        let session = OlmSession::outbound(&alice, &bob_public, &claimed).unwrap();
        (alice, alice_public, bob, bob_public, session)
    }

    #[test]
    fn both_sides_agree_and_reply() {
        let (_alice, alice_public, mut bob, _, mut alice_session) = pair();
        let first = alice_session.encrypt(b"hi bob").unwrap();
        assert_eq!(first.message_type(), OlmMessageType::PreKey);
        assert_eq!(
            first.sender_identity_key(),
            Some(alice_public.identity_key())
        );
        let (mut bob_session, plaintext) =
            OlmSession::inbound(&mut bob, &alice_public, &first).unwrap();
        assert_eq!(plaintext, b"hi bob");
        assert_eq!(bob_session.session_id(), alice_session.session_id());
        assert!(bob_session.matches(&first));
        let reply = bob_session.encrypt(b"hi alice").unwrap();
        assert_eq!(reply.message_type(), OlmMessageType::Normal);
        assert_eq!(alice_session.decrypt(&reply).unwrap(), b"hi alice");
        let next = alice_session.encrypt(b"again").unwrap();
        assert_eq!(next.message_type(), OlmMessageType::Normal);
        assert_eq!(bob_session.decrypt(&next).unwrap(), b"again");
    }

    #[test]
    fn a_one_time_key_opens_one_session_only() {
        let (_alice, alice_public, mut bob, _, mut alice_session) = pair();
        let first = alice_session.encrypt(b"hi").unwrap();
        OlmSession::inbound(&mut bob, &alice_public, &first).unwrap();
        assert_eq!(
            OlmSession::inbound(&mut bob, &alice_public, &first).unwrap_err(),
            SessionError::UnknownOneTimeKey
        );
    }

    #[test]
    fn the_fallback_key_opens_sessions_too() {
        let (alice, alice_public) = installation();
        let (mut bob, bob_public) = installation();
        let claimed = bob_public.fallback_as_claimed();
        let mut session = OlmSession::outbound(&alice, &bob_public, &claimed).unwrap();
        let first = session.encrypt(b"via fallback").unwrap();
        let (_, plaintext) = OlmSession::inbound(&mut bob, &alice_public, &first).unwrap();
        assert_eq!(plaintext, b"via fallback");
    }

    #[test]
    fn inbound_from_the_wrong_sender_is_refused() {
        let (_alice, _, mut bob, _, mut alice_session) = pair();
        let (_, mallory_public) = installation();
        let first = alice_session.encrypt(b"hi").unwrap();
        assert_eq!(
            OlmSession::inbound(&mut bob, &mallory_public, &first).unwrap_err(),
            SessionError::WrongSender
        );
    }

    #[test]
    fn a_claimed_key_of_another_installation_is_refused() {
        let (alice, _) = installation();
        let (_, bob_public) = installation();
        let (_, carol_public) = installation();
        let claimed = carol_public.fallback_as_claimed();
        assert_eq!(
            OlmSession::outbound(&alice, &bob_public, &claimed).unwrap_err(),
            SessionError::WrongInstallation
        );
    }

    #[test]
    fn a_replayed_message_is_refused() {
        let (_alice, alice_public, mut bob, _, mut alice_session) = pair();
        let first = alice_session.encrypt(b"1").unwrap();
        let (mut bob_session, _) = OlmSession::inbound(&mut bob, &alice_public, &first).unwrap();
        let reply = bob_session.encrypt(b"r").unwrap();
        alice_session.decrypt(&reply).unwrap();
        let second = alice_session.encrypt(b"2").unwrap();
        assert_eq!(bob_session.decrypt(&second).unwrap(), b"2");
        assert_eq!(
            bob_session.decrypt(&second).unwrap_err(),
            DecryptError::MissingMessageKey
        );
    }

    #[test]
    fn a_replayed_pre_key_message_is_refused_by_the_session() {
        let (_alice, alice_public, mut bob, _, mut alice_session) = pair();
        let first = alice_session.encrypt(b"1").unwrap();
        let (mut bob_session, _) = OlmSession::inbound(&mut bob, &alice_public, &first).unwrap();
        assert!(bob_session.matches(&first));
        assert_eq!(
            bob_session.decrypt(&first).unwrap_err(),
            DecryptError::MissingMessageKey
        );
    }

    #[test]
    fn a_tampered_message_is_refused() {
        let (_alice, alice_public, mut bob, _, mut alice_session) = pair();
        let first = alice_session.encrypt(b"1").unwrap();
        let (mut bob_session, _) = OlmSession::inbound(&mut bob, &alice_public, &first).unwrap();
        let reply = bob_session.encrypt(b"r").unwrap();
        let mut bytes = reply.to_bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = OlmCiphertext::from_parts(OlmMessageType::Normal, &bytes).unwrap();
        assert_eq!(
            alice_session.decrypt(&tampered).unwrap_err(),
            DecryptError::Authentication
        );
        assert_eq!(alice_session.decrypt(&reply).unwrap(), b"r");
    }

    #[test]
    fn pickles_round_trip_under_their_key_only() {
        let (_alice, alice_public, mut bob, _, mut alice_session) = pair();
        let key = SecretKey::random();
        let first = alice_session.encrypt(b"1").unwrap();
        let (bob_session, _) = OlmSession::inbound(&mut bob, &alice_public, &first).unwrap();
        let pickle = bob_session.pickle(&key);
        drop(bob_session);
        let mut restored = OlmSession::from_pickle(&pickle, &key).unwrap();
        let second = alice_session.encrypt(b"2").unwrap();
        assert_eq!(restored.decrypt(&second).unwrap(), b"2");
        assert_eq!(
            OlmSession::from_pickle(&pickle, &SecretKey::random()).unwrap_err(),
            PickleError::Decrypt
        );
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(
            OlmCiphertext::from_parts(OlmMessageType::PreKey, b"junk"),
            Err(DecryptError::Malformed(_))
        ));
        assert!(matches!(
            OlmCiphertext::from_parts(OlmMessageType::Normal, &[]),
            Err(DecryptError::Malformed(_))
        ));
        assert_eq!(
            OlmMessageType::from_u64(7),
            Err(DecryptError::UnknownMessageType(7))
        );
    }

    #[test]
    fn debug_shows_only_ids_and_lengths() {
        let (_alice, _, _bob, _, mut session) = pair();
        assert_eq!(
            format!("{session:?}"),
            format!("OlmSession {{ session_id: {:?} }}", session.session_id())
        );
        let message = session.encrypt(b"secret words").unwrap();
        let debug = format!("{message:?}");
        assert_eq!(
            debug,
            format!(
                "OlmCiphertext {{ message_type: PreKey, len: {} }}",
                message.to_bytes().len()
            )
        );
    }
}
