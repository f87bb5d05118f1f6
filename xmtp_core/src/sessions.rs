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

/// Result of a successful decryption.
#[derive(Debug)]
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
