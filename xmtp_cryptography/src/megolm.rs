//! Group sessions: a thin wrapper over vodozemac's Megolm.
//!
//! ```text
//! R(i)       = the Megolm hash ratchet at index i (4 x 256 bits, advanced by HMAC-SHA256)
//! message i  = AES-256-CBC + HMAC-SHA256 (keys from HKDF(R(i))), signed with the
//!              session's Ed25519 key
//! ```
//!
//! See <https://gitlab.matrix.org/matrix-org/olm/-/blob/master/docs/megolm.md>.
//! One sender encrypts once per message for the whole group; the session key
//! (ratchet + public signing key) travels to each member over Olm. An inbound
//! session can decrypt any index at or after the one it was given, any number
//! of times: vodozemac does not refuse a replay. [`ReplayGuard`] does, keyed
//! by (session id, message index), and [`InboundGroupSession::decrypt_once`]
//! uses it; a caller that persists messages may instead keep that pair unique
//! in its database.

use std::{collections::HashSet, fmt};

use vodozemac::megolm::{
    DecryptionError as VDecryptionError, ExportedSessionKey, GroupSession, GroupSessionPickle,
    InboundGroupSession as VInboundGroupSession, InboundGroupSessionPickle, MegolmMessage,
    SessionConfig, SessionKey,
};
use zeroize::Zeroizing;

use crate::{
    aead::SecretKey,
    error::{DecryptError, PickleError},
};

/// The key that lets members read a group session from its current index on:
/// the ratchet and the session's public signing key, signed by the session.
pub struct GroupSessionKey(SessionKey);

impl GroupSessionKey {
    /// The key's bytes (secret: send only over Olm).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// Decodes a key received over Olm.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecryptError> {
        SessionKey::from_bytes(bytes)
            .map(Self)
            .map_err(|e| DecryptError::Malformed(e.to_string()))
    }
}

impl fmt::Debug for GroupSessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupSessionKey(..)")
    }
}

/// An inbound session exported at some index, for handing on to another
/// installation of the same member (not signed by the session: trust it only
/// from an authenticated peer).
pub struct ExportedGroupSessionKey(ExportedSessionKey);

impl ExportedGroupSessionKey {
    /// The key's bytes (secret).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// Decodes an exported key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecryptError> {
        ExportedSessionKey::from_bytes(bytes)
            .map(Self)
            .map_err(|e| DecryptError::Malformed(e.to_string()))
    }
}

impl fmt::Debug for ExportedGroupSessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExportedGroupSessionKey(..)")
    }
}

/// The sending side of a group session.
pub struct OutboundGroupSession(GroupSession);

impl OutboundGroupSession {
    /// A new session with a random ratchet and signing key.
    pub fn new() -> Self {
        Self(GroupSession::new(SessionConfig::version_1()))
    }

    /// The session id (the base64 public signing key), shared by all members.
    pub fn session_id(&self) -> String {
        self.0.session_id()
    }

    /// The index the next message will have.
    pub fn message_index(&self) -> u32 {
        self.0.message_index()
    }

    /// The key to share (over Olm) so members can read from the current index on.
    pub fn session_key(&self) -> GroupSessionKey {
        GroupSessionKey(self.0.session_key())
    }

    /// Encrypts one message; returns its bytes.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.0.encrypt(plaintext).to_bytes()
    }

    /// Saves the session, encrypted under `key` (vodozemac's pickle format).
    pub fn pickle(&self, key: &SecretKey) -> Vec<u8> {
        self.0.pickle().encrypt(key.expose_secret()).into_bytes()
    }

    /// Restores a session saved by [`OutboundGroupSession::pickle`].
    pub fn from_pickle(pickle: &[u8], key: &SecretKey) -> Result<Self, PickleError> {
        let text = std::str::from_utf8(pickle).map_err(|_| PickleError::Decrypt)?;
        let pickle = GroupSessionPickle::from_encrypted(text, key.expose_secret())
            .map_err(|_| PickleError::Decrypt)?;
        Ok(Self(GroupSession::from_pickle(pickle)))
    }
}

impl Default for OutboundGroupSession {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for OutboundGroupSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundGroupSession")
            .field("session_id", &self.session_id())
            .field("message_index", &self.message_index())
            .finish()
    }
}

/// A decrypted group message.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupPlaintext {
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// The message's index in its session.
    pub message_index: u32,
}

impl fmt::Debug for GroupPlaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupPlaintext")
            .field("len", &self.plaintext.len())
            .field("message_index", &self.message_index)
            .finish()
    }
}

/// Parses a Megolm message, accepting only its canonical encoding: vodozemac
/// signs and MACs the re-encoded fields, so without this check a message with
/// an extra or renamed protobuf field would still verify, and one message would
/// have many byte forms.
fn parse(bytes: &[u8]) -> Result<MegolmMessage, DecryptError> {
    let message =
        MegolmMessage::from_bytes(bytes).map_err(|e| DecryptError::Malformed(e.to_string()))?;
    if message.to_bytes() != bytes {
        return Err(DecryptError::Malformed(
            "not canonically encoded".to_owned(),
        ));
    }
    Ok(message)
}

/// The index a Megolm message claims (before it is authenticated), or a
/// typed error if the bytes are not a Megolm message.
pub fn message_index(bytes: &[u8]) -> Result<u32, DecryptError> {
    parse(bytes).map(|m| m.message_index())
}

/// The receiving side of a group session.
pub struct InboundGroupSession(VInboundGroupSession);

impl InboundGroupSession {
    /// From a key the sender shared over Olm.
    pub fn new(key: &GroupSessionKey) -> Self {
        Self(VInboundGroupSession::new(
            &key.0,
            SessionConfig::version_1(),
        ))
    }

    /// From an exported key.
    pub fn import(key: &ExportedGroupSessionKey) -> Self {
        Self(VInboundGroupSession::import(
            &key.0,
            SessionConfig::version_1(),
        ))
    }

    /// The session id.
    pub fn session_id(&self) -> String {
        self.0.session_id()
    }

    /// The first index this session can decrypt.
    pub fn first_known_index(&self) -> u32 {
        self.0.first_known_index()
    }

    /// Exports the session at its first known index.
    pub fn export_at_first_known_index(&self) -> ExportedGroupSessionKey {
        ExportedGroupSessionKey(self.0.export_at_first_known_index())
    }

    /// Decrypts a message. Does not refuse replays: see
    /// [`InboundGroupSession::decrypt_once`].
    pub fn decrypt(&mut self, bytes: &[u8]) -> Result<GroupPlaintext, DecryptError> {
        let message = parse(bytes)?;
        match self.0.decrypt(&message) {
            Ok(decrypted) => Ok(GroupPlaintext {
                plaintext: decrypted.plaintext,
                message_index: decrypted.message_index,
            }),
            Err(VDecryptionError::UnknownMessageIndex(first_known, index)) => {
                Err(DecryptError::UnknownMessageIndex { index, first_known })
            }
            Err(VDecryptionError::Signature(_))
            | Err(VDecryptionError::InvalidMAC(_))
            | Err(VDecryptionError::InvalidMACLength(..))
            | Err(VDecryptionError::InvalidPadding(_)) => Err(DecryptError::Authentication),
        }
    }

    /// Decrypts a message and records its index in `guard`, refusing an index
    /// seen before with [`DecryptError::Replay`]. Only authentic messages are
    /// recorded, so a forged message cannot block a real one.
    pub fn decrypt_once(
        &mut self,
        bytes: &[u8],
        guard: &mut ReplayGuard,
    ) -> Result<GroupPlaintext, DecryptError> {
        let session_id = self.session_id();
        let index = message_index(bytes)?;
        if guard.contains(&session_id, index) {
            return Err(DecryptError::Replay { session_id, index });
        }
        let plaintext = self.decrypt(bytes)?;
        guard.record(&session_id, plaintext.message_index)?;
        Ok(plaintext)
    }

    /// Saves the session, encrypted under `key` (vodozemac's pickle format).
    pub fn pickle(&self, key: &SecretKey) -> Vec<u8> {
        self.0.pickle().encrypt(key.expose_secret()).into_bytes()
    }

    /// Restores a session saved by [`InboundGroupSession::pickle`].
    pub fn from_pickle(pickle: &[u8], key: &SecretKey) -> Result<Self, PickleError> {
        let text = std::str::from_utf8(pickle).map_err(|_| PickleError::Decrypt)?;
        let pickle = InboundGroupSessionPickle::from_encrypted(text, key.expose_secret())
            .map_err(|_| PickleError::Decrypt)?;
        Ok(Self(VInboundGroupSession::from_pickle(pickle)))
    }
}

impl fmt::Debug for InboundGroupSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundGroupSession")
            .field("session_id", &self.session_id())
            .field("first_known_index", &self.first_known_index())
            .finish()
    }
}

/// The (session id, message index) pairs already decrypted, to refuse
/// replays of Megolm messages. In memory; a client that restarts should keep
/// the same pairs unique in its store.
#[derive(Debug, Default, Clone)]
pub struct ReplayGuard {
    seen: HashSet<(String, u32)>,
}

impl ReplayGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether this pair was recorded.
    pub fn contains(&self, session_id: &str, index: u32) -> bool {
        self.seen.contains(&(session_id.to_owned(), index))
    }

    /// Records a pair, or returns [`DecryptError::Replay`] if it was recorded before.
    pub fn record(&mut self, session_id: &str, index: u32) -> Result<(), DecryptError> {
        if self.seen.insert((session_id.to_owned(), index)) {
            Ok(())
        } else {
            Err(DecryptError::Replay {
                session_id: session_id.to_owned(),
                index,
            })
        }
    }

    /// How many pairs are recorded.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_decrypt_what_the_sender_encrypts() {
        let mut outbound = OutboundGroupSession::new();
        let key = GroupSessionKey::from_bytes(&outbound.session_key().to_bytes()).unwrap();
        let mut inbound = InboundGroupSession::new(&key);
        assert_eq!(inbound.session_id(), outbound.session_id());
        let m0 = outbound.encrypt(b"zero");
        let m1 = outbound.encrypt(b"one");
        assert_eq!(outbound.message_index(), 2);
        let p1 = inbound.decrypt(&m1).unwrap();
        assert_eq!(
            (p1.plaintext.as_slice(), p1.message_index),
            (&b"one"[..], 1)
        );
        let p0 = inbound.decrypt(&m0).unwrap();
        assert_eq!(
            (p0.plaintext.as_slice(), p0.message_index),
            (&b"zero"[..], 0)
        );
    }

    #[test]
    fn a_late_member_cannot_read_earlier_messages() {
        let mut outbound = OutboundGroupSession::new();
        let early = outbound.encrypt(b"before");
        let mut inbound = InboundGroupSession::new(&outbound.session_key());
        assert_eq!(inbound.first_known_index(), 1);
        assert_eq!(
            inbound.decrypt(&early).unwrap_err(),
            DecryptError::UnknownMessageIndex {
                index: 0,
                first_known: 1
            }
        );
        assert_eq!(
            inbound
                .decrypt(&outbound.encrypt(b"after"))
                .unwrap()
                .plaintext,
            b"after"
        );
    }

    #[test]
    fn decrypt_once_refuses_a_replay() {
        let mut outbound = OutboundGroupSession::new();
        let mut inbound = InboundGroupSession::new(&outbound.session_key());
        let mut guard = ReplayGuard::new();
        let message = outbound.encrypt(b"once");
        assert_eq!(
            inbound
                .decrypt_once(&message, &mut guard)
                .unwrap()
                .plaintext,
            b"once"
        );
        assert_eq!(
            inbound.decrypt_once(&message, &mut guard).unwrap_err(),
            DecryptError::Replay {
                session_id: outbound.session_id(),
                index: 0
            }
        );
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn a_forged_message_is_refused_and_does_not_burn_its_index() {
        let mut outbound = OutboundGroupSession::new();
        let mut inbound = InboundGroupSession::new(&outbound.session_key());
        let mut guard = ReplayGuard::new();
        let message = outbound.encrypt(b"real");
        let mut forged = message.clone();
        forged[10] ^= 1;
        assert!(inbound.decrypt_once(&forged, &mut guard).is_err());
        assert_eq!(
            inbound
                .decrypt_once(&message, &mut guard)
                .unwrap()
                .plaintext,
            b"real"
        );
    }

    #[test]
    fn a_message_from_another_session_is_refused() {
        let mut a = OutboundGroupSession::new();
        let b = OutboundGroupSession::new();
        let mut inbound = InboundGroupSession::new(&b.session_key());
        assert_eq!(
            inbound.decrypt(&a.encrypt(b"x")).unwrap_err(),
            DecryptError::Authentication
        );
    }

    #[test]
    fn exported_sessions_and_pickles_round_trip() {
        let outbound = OutboundGroupSession::new();
        let inbound = InboundGroupSession::new(&outbound.session_key());
        let exported =
            ExportedGroupSessionKey::from_bytes(&inbound.export_at_first_known_index().to_bytes())
                .unwrap();
        let mut imported = InboundGroupSession::import(&exported);
        let key = SecretKey::random();
        let mut restored = InboundGroupSession::from_pickle(&inbound.pickle(&key), &key).unwrap();
        let mut outbound = OutboundGroupSession::from_pickle(&outbound.pickle(&key), &key).unwrap();
        let message = outbound.encrypt(b"hello");
        assert_eq!(imported.decrypt(&message).unwrap().plaintext, b"hello");
        assert_eq!(restored.decrypt(&message).unwrap().plaintext, b"hello");
        assert_eq!(
            InboundGroupSession::from_pickle(&inbound.pickle(&key), &SecretKey::random())
                .unwrap_err(),
            PickleError::Decrypt
        );
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let outbound = OutboundGroupSession::new();
        let mut inbound = InboundGroupSession::new(&outbound.session_key());
        assert!(matches!(
            inbound.decrypt(b"garbage"),
            Err(DecryptError::Malformed(_))
        ));
        assert!(matches!(
            GroupSessionKey::from_bytes(b"garbage"),
            Err(DecryptError::Malformed(_))
        ));
        assert_eq!(
            format!("{:?}", outbound.session_key()),
            "GroupSessionKey(..)"
        );
    }
}
