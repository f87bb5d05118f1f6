//! This installation's life with the node: registration, pre-keys, revocation.
//!
//! ```text
//! register:  publish the bundle (identity key, signing key, fallback key, wallet association)
//! pre-keys:  keep between min and target one-time keys on the node; each is
//!            signed by the installation's Ed25519 key and spent by one claim
//! fallback:  rotated when older than the configured age (the previous one is
//!            kept until the next rotation, for sessions started meanwhile)
//! revoke:    the wallet signs the revocation of one of its installations; the
//!            node publishes it beside the bundles; every client drops it
//! ```
//!
//! One-time keys are uploaded after the account holding their private halves
//! is saved, and marked published (and saved again) after the node took them,
//! so a crash in between re-uploads the same keys rather than losing them.

use std::sync::atomic::Ordering;

use xmtp_cryptography::{InstallationId, Revocation};

use crate::{client::Client, contacts::Installation, error::ClientError, time::now_ns};

impl Client {
    /// Publishes the bundle, tops up one-time keys and rotates the fallback
    /// key when due. Called by `build()`; safe to call again.
    pub async fn register(&self) -> Result<(), ClientError> {
        self.ensure_not_revoked()?;
        let inner = &self.inner;
        let rotated = inner
            .storage
            .transaction(|tx| tx.account())?
            .map(|a| a.fallback_rotated_ns)
            .unwrap_or(0);
        let due = u128::from(now_ns().saturating_sub(rotated))
            >= inner.options.fallback_key_rotation.as_nanos();
        let bundle = {
            let mut keys = inner.keys.lock().await;
            if due {
                keys.forget_previous_fallback_key();
                keys.rotate_fallback_key();
                let pickle = keys
                    .pickle(&inner.pickle_key)
                    .map_err(|e| ClientError::Crypto(e.to_string()))?;
                inner.storage.transaction(|tx| {
                    tx.update_account_pickle(inner.installation_id.as_bytes(), &pickle)?;
                    tx.set_fallback_rotated(now_ns())
                })?;
                tracing::info!(installation = %inner.installation_id, "rotated fallback key");
            }
            keys.public_bundle(&inner.association)
                .map_err(|e| ClientError::Crypto(e.to_string()))?
        };
        inner.api.register_installation(bundle).await?;
        self.top_up_one_time_keys().await
    }

    /// Uploads one-time keys when the node holds fewer than the minimum.
    pub(crate) async fn top_up_one_time_keys(&self) -> Result<(), ClientError> {
        let inner = &self.inner;
        let id = inner.installation_id.as_bytes().to_vec();
        let remaining = inner.api.count_one_time_keys(id.clone()).await?;
        inner.spent_one_time_keys.store(0, Ordering::SeqCst);
        if remaining >= inner.options.min_one_time_keys {
            return Ok(());
        }
        let mut keys = inner.keys.lock().await;
        let max = u32::try_from(keys.max_one_time_keys()).unwrap_or(u32::MAX) / 2;
        let wanted = inner
            .options
            .target_one_time_keys
            .min(max)
            .saturating_sub(remaining);
        let mut fresh = keys.unpublished_one_time_keys();
        let missing = usize::try_from(wanted)
            .unwrap_or(0)
            .saturating_sub(fresh.len());
        if missing > 0 {
            keys.generate_one_time_keys(missing);
            fresh = keys.unpublished_one_time_keys();
        }
        let pickle = keys
            .pickle(&inner.pickle_key)
            .map_err(|e| ClientError::Crypto(e.to_string()))?;
        inner.storage.transaction(|tx| {
            tx.update_account_pickle(inner.installation_id.as_bytes(), &pickle)
        })?;
        let now_on_node = inner
            .api
            .upload_one_time_keys(id, fresh.iter().map(|k| k.to_proto()).collect())
            .await?;
        keys.mark_keys_as_published();
        let pickle = keys
            .pickle(&inner.pickle_key)
            .map_err(|e| ClientError::Crypto(e.to_string()))?;
        inner.storage.transaction(|tx| {
            tx.update_account_pickle(inner.installation_id.as_bytes(), &pickle)
        })?;
        tracing::debug!(
            uploaded = fresh.len(),
            now_on_node,
            "topped up one-time keys"
        );
        Ok(())
    }

    /// Re-reads this address's installations; if the wallet revoked this one,
    /// remembers it (every later send fails with `InstallationRevoked`).
    pub(crate) async fn check_own_revocation(&self) -> Result<(), ClientError> {
        let inner = &self.inner;
        let set = inner
            .contacts
            .installations(inner.api.as_ref(), &inner.storage, &inner.address, true)
            .await?;
        if set.revoked.contains(&inner.installation_id) {
            self.mark_revoked()?;
        }
        Ok(())
    }

    fn mark_revoked(&self) -> Result<(), ClientError> {
        if !self.inner.revoked.swap(true, Ordering::SeqCst) {
            tracing::warn!(installation = %self.inner.installation_id, "this installation was revoked by its wallet");
        }
        self.inner
            .storage
            .transaction(|tx| tx.set_account_revoked())?;
        Ok(())
    }

    /// The installations of this client's address, as the node lists them
    /// and as verified here (revoked and forged ones left out).
    pub async fn installations(&self) -> Result<Vec<Installation>, ClientError> {
        self.installations_of(&self.address()).await
    }

    /// The verified, unrevoked installations of any address.
    pub async fn installations_of(&self, address: &str) -> Result<Vec<Installation>, ClientError> {
        let address = crate::client::parse_address(address)?;
        let inner = &self.inner;
        let set = inner
            .contacts
            .installations(inner.api.as_ref(), &inner.storage, &address, true)
            .await?;
        if address == inner.address && set.revoked.contains(&inner.installation_id) {
            self.mark_revoked()?;
        }
        Ok(set
            .installations
            .iter()
            .map(|v| Installation {
                id: v.installation_id().to_hex(),
                address: v.address().to_checksum(),
                created_ns: v.created_ns(),
                is_current: v.installation_id() == inner.installation_id,
            })
            .collect())
    }

    /// Revokes one of this address's installations (this one included): the
    /// wallet signs the revocation, the node publishes it, and other clients
    /// stop sending to it and refuse its messages.
    pub async fn revoke_installation(&self, installation_id: &str) -> Result<(), ClientError> {
        let inner = &self.inner;
        let id = InstallationId::from_hex(installation_id.trim()).ok_or_else(|| {
            ClientError::InvalidInstallationId(installation_id.chars().take(80).collect())
        })?;
        let wallet = inner.wallet.as_ref().ok_or(ClientError::NoWallet)?;
        let own = inner
            .contacts
            .installations(inner.api.as_ref(), &inner.storage, &inner.address, true)
            .await?;
        let known = id == inner.installation_id
            || own.revoked.contains(&id)
            || own.installations.iter().any(|v| v.installation_id() == id);
        if !known {
            return Err(ClientError::UnknownInstallation(id.to_hex()));
        }
        let revocation = Revocation::create(wallet.as_ref(), id, now_ns())
            .await
            .map_err(|e| ClientError::Wallet(e.to_string()))?;
        inner.api.publish_revocation(revocation.to_proto()).await?;
        inner
            .storage
            .transaction(|tx| tx.delete_sessions_with(id.as_bytes()))?;
        inner.contacts.invalidate(&inner.address);
        if id == inner.installation_id {
            self.mark_revoked()?;
        } else {
            inner
                .contacts
                .installations(inner.api.as_ref(), &inner.storage, &inner.address, true)
                .await?;
        }
        tracing::info!(installation = %id, "revoked installation");
        Ok(())
    }
}
