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
use xmtp_cryptography::{Address, ClaimedPreKey, InstallationId, PreKeyKind, VerifiedInstallation};
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
    pub(crate) async fn fan_out<T>(
        &self,
        recipients: &[VerifiedInstallation],
        timestamp_ns: u64,
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
        let committed = inner.storage.transaction(|tx| {
            let now = now_ns();
            for r in recipients {
                let id = r.installation_id();
                let claim = claimed.get(&id);
                if claim.is_none() && without_session.contains(&id) {
                    tracing::warn!(installation = %id, "no pre-key could be claimed; skipping this installation");
                    continue;
                }
                let ciphertext =
                    sessions::encrypt_for(tx, &inner.pickle_key, &keys, r, claim, &plaintext_for(&id), now)?;
                let (message_type, bytes) = ciphertext.to_parts();
                let envelope = OlmEnvelope {
                    version: ENVELOPE_VERSION,
                    sender_installation_key: inner.installation_id.as_bytes().to_vec(),
                    sender_identity_key: inner.identity_key.to_vec(),
                    sender_address: inner.address.to_checksum(),
                    message_type: u32::try_from(message_type.as_u64()).unwrap_or(u32::MAX),
                    ciphertext: bytes,
                };
                tx.push_outbox(&installation_topic(&id), timestamp_ns, &envelope.encode_to_vec(), message_id, now)?;
            }
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
