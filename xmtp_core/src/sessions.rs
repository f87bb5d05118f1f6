//! Olm sessions with peer installations, kept in the database.
//!
//! One double-ratchet session per pair of installations, created on first use:
//!
//! ```text
//! outbound: claim a one-time (or the fallback) key of the peer installation,
//!           verify its signature against the peer's verified bundle, run Olm's 3DH
//! inbound:  from the peer's first (pre-key) message, after the sender's bundle verified
//! ```
//!
//! This module is sans-I/O: it takes an open [`StorageTx`], the installation's
//! keys and decoded, verified inputs, and returns ciphertexts or plaintexts.
//! Each session is loaded from the database, advanced, and written back in the
//! caller's transaction, so the ratchet step commits together with the
//! message it produced (or not at all). When two sessions exist with a peer
//! (both sides started one at once), messages are sent on the one used most
//! recently, and incoming messages are tried on each.

use xmtp_cryptography::{
    ClaimedPreKey, DecryptError, InstallationKeys, OlmCiphertext, OlmMessageType, OlmSession,
    SecretKey, SessionError, VerifiedInstallation,
};

use crate::{
    error::ClientError,
    storage::{SessionRecord, StorageTx},
};

/// Why an incoming ciphertext could not be decrypted (hostile or stale input;
/// recorded, never fatal).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InboundError {
    /// A normal message for which no session exists.
    #[error("no session with the sender can decrypt this message")]
    NoSession,
    /// Every session refused it (forged, corrupted, or a replay).
    #[error("decryption failed: {0}")]
    Decrypt(String),
    /// The pre-key message could not start a session.
    #[error("cannot start a session from this message: {0}")]
    Session(String),
}

fn load(key: &SecretKey, record: &SessionRecord) -> Result<OlmSession, ClientError> {
    OlmSession::from_pickle(&record.pickle, key)
        .map_err(|e| ClientError::Crypto(format!("stored session: {e}")))
}

fn save(
    tx: &StorageTx<'_>,
    key: &SecretKey,
    peer: &[u8],
    session: &OlmSession,
    created_ns: u64,
    now_ns: u64,
) -> Result<(), ClientError> {
    tx.save_session(&SessionRecord {
        peer_installation: peer.to_vec(),
        session_id: session.session_id(),
        pickle: zeroize::Zeroizing::new(session.pickle(key)),
        created_ns,
        last_used_ns: now_ns,
    })?;
    Ok(())
}

/// Whether a session with `peer` exists.
pub(crate) fn has_session(
    tx: &StorageTx<'_>,
    peer: &VerifiedInstallation,
) -> Result<bool, ClientError> {
    Ok(!tx
        .sessions_with(peer.installation_id().as_bytes())?
        .is_empty())
}

/// Encrypts `plaintext` for `peer` on the most recently used session, or on a
/// new outbound session from `claimed` when there is none.
pub(crate) fn encrypt_for(
    tx: &StorageTx<'_>,
    key: &SecretKey,
    own: &InstallationKeys,
    peer: &VerifiedInstallation,
    claimed: Option<&ClaimedPreKey>,
    plaintext: &[u8],
    now_ns: u64,
) -> Result<OlmCiphertext, ClientError> {
    let peer_id = peer.installation_id();
    let existing = tx.sessions_with(peer_id.as_bytes())?;
    let (mut session, created) = match existing.first() {
        Some(record) => (load(key, record)?, record.created_ns),
        None => {
            let claimed = claimed.ok_or_else(|| {
                ClientError::Crypto(format!(
                    "no session with {peer_id} and no claimed key to start one"
                ))
            })?;
            let session = OlmSession::outbound(own, peer, claimed).map_err(|e| {
                ClientError::Crypto(format!("cannot start a session with {peer_id}: {e}"))
            })?;
            (session, now_ns)
        }
    };
    let ciphertext = session
        .encrypt(plaintext)
        .map_err(|e| ClientError::Crypto(e.to_string()))?;
    save(tx, key, peer_id.as_bytes(), &session, created, now_ns)?;
    Ok(ciphertext)
}

/// Result of a successful decryption (no `Debug`: it holds plaintext).
pub(crate) struct Decrypted {
    /// The plaintext.
    pub(crate) plaintext: zeroize::Zeroizing<Vec<u8>>,
    /// Whether a new inbound session was created (a one-time key was spent,
    /// so `own` changed and must be saved in the same transaction).
    pub(crate) new_session: bool,
}

/// Decrypts a ciphertext from the verified installation `sender`.
pub(crate) fn decrypt_from(
    tx: &StorageTx<'_>,
    key: &SecretKey,
    own: &mut InstallationKeys,
    sender: &VerifiedInstallation,
    ciphertext: &OlmCiphertext,
    now_ns: u64,
) -> Result<Result<Decrypted, InboundError>, ClientError> {
    let peer = sender.installation_id();
    let records = tx.sessions_with(peer.as_bytes())?;
    let mut last_error = None;
    for record in &records {
        let mut session = load(key, record)?;
        if ciphertext.message_type() == OlmMessageType::PreKey && !session.matches(ciphertext) {
            continue;
        }
        match session.decrypt(ciphertext) {
            Ok(plaintext) => {
                save(
                    tx,
                    key,
                    peer.as_bytes(),
                    &session,
                    record.created_ns,
                    now_ns,
                )?;
                return Ok(Ok(Decrypted {
                    plaintext: zeroize::Zeroizing::new(plaintext),
                    new_session: false,
                }));
            }
            Err(e) => last_error = Some(e),
        }
    }
    if ciphertext.message_type() == OlmMessageType::Normal {
        return Ok(Err(match last_error {
            Some(e) => InboundError::Decrypt(e.to_string()),
            None => InboundError::NoSession,
        }));
    }
    if let Some(e) = last_error {
        // The pre-key message belongs to a session we have: it was a replay
        // or a forgery, not a reason to start another session.
        return Ok(Err(InboundError::Decrypt(e.to_string())));
    }
    match OlmSession::inbound(own, sender, ciphertext) {
        Ok((session, plaintext)) => {
            save(tx, key, peer.as_bytes(), &session, now_ns, now_ns)?;
            Ok(Ok(Decrypted {
                plaintext: zeroize::Zeroizing::new(plaintext),
                new_session: true,
            }))
        }
        Err(SessionError::Decrypt(DecryptError::MissingMessageKey)) => Ok(Err(
            InboundError::Decrypt("message key already used (replay)".into()),
        )),
        Err(e) => Ok(Err(InboundError::Session(e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use xmtp_cryptography::{Association, LocalWallet};

    use super::*;
    use crate::storage::{DatabaseKey, Storage};

    struct Side {
        keys: InstallationKeys,
        public: VerifiedInstallation,
        storage: Storage,
    }

    fn side() -> Side {
        let wallet = LocalWallet::random();
        let mut keys = InstallationKeys::new();
        keys.rotate_fallback_key();
        let association = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(Association::create(&wallet, keys.installation_id(), 1))
            .unwrap();
        let public =
            VerifiedInstallation::from_proto(&keys.public_bundle(&association).unwrap()).unwrap();
        Side {
            keys,
            public,
            storage: Storage::in_memory(&DatabaseKey::random()).unwrap(),
        }
    }

    fn send(from: &Side, to: &Side, claim: Option<&ClaimedPreKey>, text: &[u8]) -> OlmCiphertext {
        from.storage
            .transaction(|tx| {
                encrypt_for(
                    tx,
                    from.storage.pickle_key(),
                    &from.keys,
                    &to.public,
                    claim,
                    text,
                    1,
                )
            })
            .unwrap()
    }

    fn receive(to: &mut Side, from: &Side, ct: &OlmCiphertext) -> Result<Decrypted, InboundError> {
        let Side { keys, storage, .. } = to;
        storage
            .transaction(|tx| decrypt_from(tx, storage.pickle_key(), keys, &from.public, ct, 2))
            .unwrap()
    }

    #[test]
    fn sessions_persist_between_messages_in_both_directions() {
        let alice = side();
        let mut bob = side();
        let claim = bob.public.fallback_as_claimed();
        let first = send(&alice, &bob, Some(&claim), b"one");
        assert_eq!(first.message_type(), OlmMessageType::PreKey);
        let d = receive(&mut bob, &alice, &first).unwrap();
        assert!(d.new_session);
        assert_eq!(d.plaintext.as_slice(), b"one");
        // Bob answers on the stored session; no claim needed.
        let reply = send(&bob, &alice, None, b"two");
        let mut alice = alice;
        let d = receive(&mut alice, &bob, &reply).unwrap();
        assert!(!d.new_session);
        assert_eq!(d.plaintext.as_slice(), b"two");
        // After the reply, Alice's messages are normal messages.
        let third = send(&alice, &bob, None, b"three");
        assert_eq!(third.message_type(), OlmMessageType::Normal);
        assert_eq!(
            receive(&mut bob, &alice, &third)
                .unwrap()
                .plaintext
                .as_slice(),
            b"three"
        );
    }

    #[test]
    fn a_replayed_message_is_refused_and_changes_nothing() {
        let alice = side();
        let mut bob = side();
        let claim = bob.public.fallback_as_claimed();
        let first = send(&alice, &bob, Some(&claim), b"one");
        receive(&mut bob, &alice, &first).unwrap();
        assert!(matches!(
            receive(&mut bob, &alice, &first),
            Err(InboundError::Decrypt(_))
        ));
        let second = send(&alice, &bob, None, b"two");
        assert_eq!(
            receive(&mut bob, &alice, &second)
                .unwrap()
                .plaintext
                .as_slice(),
            b"two"
        );
        assert!(matches!(
            receive(&mut bob, &alice, &second),
            Err(InboundError::Decrypt(_))
        ));
        let sessions = bob
            .storage
            .transaction(|tx| tx.sessions_with(alice.public.installation_id().as_bytes()))
            .unwrap();
        assert_eq!(sessions.len(), 1, "a replay starts no second session");
    }

    #[test]
    fn a_normal_message_without_a_session_is_refused() {
        let alice = side();
        let mut bob = side();
        let mut carol = side();
        let claim = bob.public.fallback_as_claimed();
        let first = send(&alice, &bob, Some(&claim), b"one");
        receive(&mut bob, &alice, &first).unwrap();
        let reply = send(&bob, &alice, None, b"two");
        let mut alice = alice;
        receive(&mut alice, &bob, &reply).unwrap();
        let normal = send(&alice, &bob, None, b"three");
        // Carol never had a session with Alice.
        assert_eq!(
            receive(&mut carol, &alice, &normal).err(),
            Some(InboundError::NoSession)
        );
    }

    #[test]
    fn sessions_started_by_both_sides_at_once_both_work() {
        let mut alice = side();
        let mut bob = side();
        let to_bob = send(
            &alice,
            &bob,
            Some(&bob.public.fallback_as_claimed()),
            b"from alice",
        );
        let to_alice = send(
            &bob,
            &alice,
            Some(&alice.public.fallback_as_claimed()),
            b"from bob",
        );
        assert_eq!(
            receive(&mut bob, &alice, &to_bob)
                .unwrap()
                .plaintext
                .as_slice(),
            b"from alice"
        );
        assert_eq!(
            receive(&mut alice, &bob, &to_alice)
                .unwrap()
                .plaintext
                .as_slice(),
            b"from bob"
        );
        // Each side now holds two sessions and can read whatever the other sends next.
        for _ in 0..3 {
            let m = send(&alice, &bob, None, b"a");
            assert_eq!(
                receive(&mut bob, &alice, &m).unwrap().plaintext.as_slice(),
                b"a"
            );
            let m = send(&bob, &alice, None, b"b");
            assert_eq!(
                receive(&mut alice, &bob, &m).unwrap().plaintext.as_slice(),
                b"b"
            );
        }
    }

    #[test]
    fn encrypting_without_a_session_or_a_claim_is_an_error() {
        let alice = side();
        let bob = side();
        let r = alice.storage.transaction(|tx| {
            encrypt_for(
                tx,
                alice.storage.pickle_key(),
                &alice.keys,
                &bob.public,
                None,
                b"x",
                1,
            )
        });
        assert!(matches!(r, Err(ClientError::Crypto(_))));
    }
}
