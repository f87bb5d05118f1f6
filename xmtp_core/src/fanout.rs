//! Fan-out: one plaintext per installation, each over its own Olm session.
//!
//! ```text
//! recipients(addresses) = ⋃ verified, unrevoked installations of each address
//!                         ∪ the other installations of this address
//! fan_out:  claim pre-keys for installations without a session (one request)
//!           in ONE transaction: for each recipient r, encrypt plaintext(r) and
//!                               queue Envelope{ /xmtp/3/installation-<r>/proto, OlmEnvelope }
//!                               + the caller's own writes (the stored message, group state...)
//!           then publish the outbox
//! ```
//!
//! Direct messages use it today; group key shares and group control messages
//! (issue 5) are other plaintexts sent the same way.

use std::collections::HashMap;

use prost::Message as _;
use xmtp_cryptography::{
    Address, ClaimedPreKey, Curve25519PublicKey, InstallationId, InstallationKeys, PreKeyKind,
    SecretKey, VerifiedInstallation,
};
use xmtp_proto::xmtp::v3::message_contents::OlmEnvelope;

use crate::{
    client::{installation_topic, Client},
    error::ClientError,
    sessions,
    storage::StorageTx,
    time::now_ns,
};

/// Installations per claim request (the node takes at most 200).
const CLAIM_BATCH: usize = 100;

/// Version of the `OlmEnvelope` this client writes.
pub(crate) const ENVELOPE_VERSION: u32 = 1;

/// This installation, as the send step sees it.
pub(crate) struct Sender<'a> {
    pub(crate) address: Address,
    pub(crate) installation_id: InstallationId,
    pub(crate) identity_key: Curve25519PublicKey,
    pub(crate) pickle_key: &'a SecretKey,
}

/// What every envelope of one fan-out shares.
pub(crate) struct Outgoing<'a> {
    /// The envelopes' timestamp.
    pub(crate) timestamp_ns: u64,
    /// The message they carry, if any (kept with the outbox rows).
    pub(crate) message_id: Option<&'a [u8]>,
    /// Verified pre-keys claimed for recipients without a session.
    pub(crate) claimed: &'a HashMap<InstallationId, ClaimedPreKey>,
}

/// The send step, sans I/O: for each recipient, advances (or starts) the
/// Olm session, encrypts `plaintext_for(recipient)` and queues the envelope
/// in the outbox, all in `tx`. A recipient without a session and without a
/// claimed key is skipped (logged). Returns how many envelopes were queued.
pub(crate) fn encrypt_to_outbox(
    tx: &StorageTx<'_>,
    me: &Sender<'_>,
    keys: &InstallationKeys,
    recipients: &[VerifiedInstallation],
    outgoing: &Outgoing<'_>,
    plaintext_for: &dyn Fn(&InstallationId) -> Vec<u8>,
    now: u64,
) -> Result<usize, ClientError> {
    let mut queued = 0;
    for r in recipients {
        let id = r.installation_id();
        let claim = outgoing.claimed.get(&id);
        if claim.is_none() && !sessions::has_session(tx, r)? {
            tracing::warn!(installation = %id, "no session and no pre-key could be claimed; skipping this installation");
            continue;
        }
        let ciphertext =
            sessions::encrypt_for(tx, me.pickle_key, keys, r, claim, &plaintext_for(&id), now)?;
        let (message_type, bytes) = ciphertext.to_parts();
        let envelope = OlmEnvelope {
            version: ENVELOPE_VERSION,
            sender_installation_key: me.installation_id.as_bytes().to_vec(),
            sender_identity_key: me.identity_key.to_vec(),
            sender_address: me.address.to_checksum(),
            message_type: u32::try_from(message_type.as_u64()).unwrap_or(u32::MAX),
            ciphertext: bytes,
        };
        tx.push_outbox(
            &installation_topic(&id),
            outgoing.timestamp_ns,
            &envelope.encode_to_vec(),
            outgoing.message_id,
            now,
        )?;
        queued += 1;
    }
    Ok(queued)
}

impl Client {
    /// Every verified installation of `addresses` and every other
    /// installation of this client's address, each once. Fails with
    /// [`ClientError::PeerNotRegistered`] for an address without any.
    pub(crate) async fn recipients(
        &self,
        addresses: &[Address],
    ) -> Result<Vec<VerifiedInstallation>, ClientError> {
        let inner = &self.inner;
        let mut recipients: Vec<VerifiedInstallation> = Vec::new();
        let mut push = |set: &[VerifiedInstallation]| {
            for v in set {
                let id = v.installation_id();
                if id != inner.installation_id
                    && !recipients.iter().any(|r| r.installation_id() == id)
                {
                    recipients.push(v.clone());
                }
            }
        };
        for address in addresses {
            let set = inner
                .contacts
                .installations(inner.api.as_ref(), &inner.storage, address, false)
                .await?;
            if set.installations.is_empty() {
                return Err(ClientError::PeerNotRegistered(address.to_checksum()));
            }
            push(&set.installations);
        }
        let own = inner
            .contacts
            .installations(inner.api.as_ref(), &inner.storage, &inner.address, false)
            .await?;
        if own.revoked.contains(&inner.installation_id) {
            self.check_own_revocation().await?;
            self.ensure_not_revoked()?;
        }
        push(&own.installations);
        Ok(recipients)
    }

    /// Encrypts `plaintext_for(recipient)` for each recipient, queues the
    /// envelopes and runs `commit` in the same transaction, then publishes.
    /// Returns what `commit` returned, and the outcome of publishing (on
    /// failure the envelopes stay queued for the next flush).
    ///
    /// The envelopes are timestamped under the keys lock, so that envelope
    /// times follow the order of the ratchet steps (receivers sync in time
    /// order; this keeps skipped message keys to a minimum).
    pub(crate) async fn fan_out<T>(
        &self,
        recipients: &[VerifiedInstallation],
        message_id: Option<&[u8]>,
        plaintext_for: impl Fn(&InstallationId) -> Vec<u8>,
        commit: impl FnOnce(&StorageTx<'_>) -> Result<T, ClientError>,
    ) -> Result<(T, Result<usize, ClientError>), ClientError> {
        let inner = &self.inner;
        let keys = inner.keys.lock().await;
        let without_session: Vec<InstallationId> = inner.storage.transaction(|tx| {
            let mut out = Vec::new();
            for r in recipients {
                if !sessions::has_session(tx, r)? {
                    out.push(r.installation_id());
                }
            }
            Ok::<_, ClientError>(out)
        })?;
        let claimed = self.claim_keys(recipients, &without_session).await?;
        let me = Sender {
            address: inner.address,
            installation_id: inner.installation_id,
            identity_key: inner.identity_key,
            pickle_key: &inner.pickle_key,
        };
        let committed = inner.storage.transaction(|tx| {
            let now = now_ns();
            let outgoing = Outgoing {
                timestamp_ns: now,
                message_id,
                claimed: &claimed,
            };
            encrypt_to_outbox(tx, &me, &keys, recipients, &outgoing, &plaintext_for, now)?;
            commit(tx)
        })?;
        drop(keys);
        Ok((committed, self.flush_outbox().await))
    }

    /// Claims one pre-key of each installation in `ids` and verifies it; an
    /// installation whose claim fails verification gets its bundle's fallback key.
    async fn claim_keys(
        &self,
        recipients: &[VerifiedInstallation],
        ids: &[InstallationId],
    ) -> Result<HashMap<InstallationId, ClaimedPreKey>, ClientError> {
        let mut out = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut claimed = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CLAIM_BATCH) {
            let keys = chunk.iter().map(|id| id.as_bytes().to_vec()).collect();
            claimed.extend(self.inner.api.claim_one_time_keys(keys).await?);
        }
        for c in claimed {
            let Some(installation) = recipients
                .iter()
                .find(|r| r.installation_id().as_bytes() == c.installation_key.as_slice())
            else {
                continue;
            };
            let Some(key) = c.key else { continue };
            let kind = if c.is_fallback {
                PreKeyKind::Fallback
            } else {
                PreKeyKind::OneTime
            };
            match installation.verify_claimed_key(&key, kind) {
                Ok(claim) => {
                    out.insert(installation.installation_id(), claim);
                }
                Err(e) => {
                    tracing::warn!(installation = %installation.installation_id(), error = %e, "claimed pre-key does not verify; using the bundle's fallback key");
                    out.insert(
                        installation.installation_id(),
                        installation.fallback_as_claimed(),
                    );
                }
            }
        }
        for r in recipients {
            let id = r.installation_id();
            if ids.contains(&id) && !out.contains_key(&id) {
                out.insert(id, r.fallback_as_claimed());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use xmtp_cryptography::{LocalWallet, OlmCiphertext, OlmMessageType};
    use xmtp_proto::xmtp::message_api::v1::Envelope;

    use super::*;
    use crate::{
        content::encode_text,
        messages::DirectMessage,
        sync::{accept, envelope_digest, Authenticated, EnvelopeResult},
        test_support::{side, Side},
    };

    /// Delivers every queued envelope of `from` addressed to `to`, as the
    /// node would, through the receive step.
    fn deliver(from: &Side, to: &mut Side) -> Vec<EnvelopeResult> {
        let topic = installation_topic(&to.public.installation_id());
        let rows = from.storage.transaction(|tx| tx.outbox(1000)).unwrap();
        let mut results = Vec::new();
        for row in rows.into_iter().filter(|r| r.topic == topic) {
            let envelope = Envelope {
                content_topic: row.topic,
                timestamp_ns: row.timestamp_ns,
                message: row.envelope,
            };
            let olm = OlmEnvelope::decode(envelope.message.as_slice()).unwrap();
            assert_eq!(olm.sender_address, from.address.to_checksum());
            let t = OlmMessageType::from_u64(u64::from(olm.message_type)).unwrap();
            let ciphertext = OlmCiphertext::from_parts(t, &olm.ciphertext).unwrap();
            let a = Authenticated {
                sender: from.public.clone(),
                address: from.address,
                ciphertext,
            };
            let digest = envelope_digest(&envelope);
            let Side { keys, storage, .. } = to;
            let me = crate::sync::Receiver {
                address: to.address,
                installation_id: to.public.installation_id(),
                pickle_key: storage.pickle_key(),
            };
            results.push(
                storage
                    .transaction(|tx| accept(tx, &me, keys, &envelope, &digest, &a, 50))
                    .unwrap()
                    .result,
            );
        }
        results
    }

    #[test]
    fn one_send_reaches_every_installation_of_both_addresses() {
        let alice_wallet = LocalWallet::random();
        let bob_wallet = LocalWallet::random();
        let alice1 = side(&alice_wallet);
        let mut alice2 = side(&alice_wallet);
        let mut bob1 = side(&bob_wallet);
        let mut bob2 = side(&bob_wallet);
        let recipients = [
            bob1.public.clone(),
            bob2.public.clone(),
            alice2.public.clone(),
        ];
        let claimed: HashMap<_, _> = recipients
            .iter()
            .map(|r| (r.installation_id(), r.fallback_as_claimed()))
            .collect();
        let id = [4u8; 16];
        let plaintext_for = |r: &InstallationId| {
            DirectMessage {
                message_id: id,
                sender_address: alice1.address,
                recipient_installation_key: r.as_bytes().to_vec(),
                peer_address: bob1.address,
                sent_ns: 40,
                content: encode_text("to everyone"),
            }
            .encode()
        };
        let outgoing = Outgoing {
            timestamp_ns: 40,
            message_id: Some(&id),
            claimed: &claimed,
        };
        let queued = alice1
            .storage
            .transaction(|tx| {
                encrypt_to_outbox(
                    tx,
                    &alice1.sender(),
                    &alice1.keys,
                    &recipients,
                    &outgoing,
                    &plaintext_for,
                    40,
                )
            })
            .unwrap();
        assert_eq!(queued, 3);
        for to in [&mut bob1, &mut bob2, &mut alice2] {
            let results = deliver(&alice1, to);
            assert_eq!(results.len(), 1);
            let EnvelopeResult::New(m) = &results[0] else {
                panic!("not accepted: {results:?}")
            };
            assert_eq!(m.id, hex::encode(id));
            assert_eq!(m.text().as_deref(), Some("to everyone"));
        }
        // Bob's installations file it under Alice, Alice's other one under Bob.
        assert_eq!(
            bob2.storage.transaction(|tx| tx.conversations()).unwrap()[0].id,
            alice1.address.to_checksum()
        );
        assert_eq!(
            alice2.storage.transaction(|tx| tx.conversations()).unwrap()[0].id,
            bob1.address.to_checksum()
        );
    }

    #[test]
    fn a_recipient_without_session_or_claimed_key_is_skipped() {
        let alice = side(&LocalWallet::random());
        let bob = side(&LocalWallet::random());
        let claimed = HashMap::new();
        let outgoing = Outgoing {
            timestamp_ns: 1,
            message_id: None,
            claimed: &claimed,
        };
        let queued = alice
            .storage
            .transaction(|tx| {
                encrypt_to_outbox(
                    tx,
                    &alice.sender(),
                    &alice.keys,
                    std::slice::from_ref(&bob.public),
                    &outgoing,
                    &|_| vec![1],
                    1,
                )
            })
            .unwrap();
        assert_eq!(queued, 0);
        assert_eq!(
            alice.storage.transaction(|tx| tx.outbox_count()).unwrap(),
            0
        );
    }
}
