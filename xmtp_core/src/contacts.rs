//! Contacts: which installations speak for an address.
//!
//! The node lists an address's bundles and revocations and verifies nothing;
//! the client verifies each bundle itself
//! ([`xmtp_cryptography::verify_installations`]): an installation belongs to
//! an address exactly when its wallet association verifies for that address
//! and no valid revocation signed by the same wallet names it. Forged,
//! foreign and revoked bundles are left out and logged.
//!
//! Verified sets are cached in memory and in the database (`installations`,
//! `contacts`); a set older than [`ContactPolicy::refresh_after`] is fetched
//! again, and an installation missing from a fresh set triggers one refresh
//! before it is refused (a peer may have added a device since). Revoked
//! installations are remembered, so that messages from them are refused and
//! sessions with them are dropped.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::Duration,
};

use xmtp_cryptography::{
    bundle::DropReason, verify_installations, Address, InstallationId, VerifiedInstallation,
};
use xmtp_networking::XmtpApi;

use crate::{
    error::ClientError,
    storage::{InstallationRecord, Storage},
    time::now_ns,
};

/// How long verified contact information is trusted before it is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactPolicy {
    /// Refresh an address's installations when the cached set is older than this.
    pub refresh_after: Duration,
}

impl Default for ContactPolicy {
    fn default() -> Self {
        Self {
            refresh_after: Duration::from_secs(60),
        }
    }
}

/// A verified installation set of one address.
#[derive(Debug, Clone)]
pub(crate) struct ContactSet {
    refreshed_ns: u64,
    pub(crate) installations: Vec<VerifiedInstallation>,
    pub(crate) revoked: HashSet<InstallationId>,
}

/// Why a sender installation was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SenderError {
    /// The installation is not (or no longer) granted by the claimed address.
    #[error("installation {installation} does not belong to {address}")]
    NotAnInstallationOf {
        /// The sending installation.
        installation: String,
        /// The address it claimed.
        address: String,
    },
    /// The claimed address's wallet revoked the installation.
    #[error("installation {0} was revoked by its wallet")]
    Revoked(String),
    /// The envelope's identity key is not the installation's.
    #[error("identity key does not match installation {0}")]
    IdentityKeyMismatch(String),
}

/// The contact cache and its refresh logic.
#[derive(Debug, Default)]
pub(crate) struct Contacts {
    cache: Mutex<HashMap<Address, ContactSet>>,
    policy: ContactPolicy,
}

impl Contacts {
    pub(crate) fn new(policy: ContactPolicy) -> Self {
        Self {
            cache: Mutex::new(HashMap::new()),
            policy,
        }
    }

    fn cached(&self, address: &Address) -> Option<ContactSet> {
        self.cache.lock().ok()?.get(address).cloned()
    }

    fn is_fresh(&self, set: &ContactSet) -> bool {
        let age = now_ns().saturating_sub(set.refreshed_ns);
        u128::from(age) < self.policy.refresh_after.as_nanos()
    }

    /// Loads a set from the database when it is there and fresh.
    fn load_stored(
        &self,
        storage: &Storage,
        address: &Address,
    ) -> Result<Option<ContactSet>, ClientError> {
        let key = address.to_checksum();
        let (refreshed, records) = storage.transaction(|tx| {
            Ok::<_, ClientError>((tx.contact_refreshed(&key)?, tx.installations_of(&key)?))
        })?;
        let Some(refreshed_ns) = refreshed else {
            return Ok(None);
        };
        let mut set = ContactSet {
            refreshed_ns,
            installations: Vec::new(),
            revoked: HashSet::new(),
        };
        for r in records {
            if r.revoked_ns.is_some() {
                if let Some(id) = InstallationId::from_slice(&r.installation_key) {
                    set.revoked.insert(id);
                }
            } else if let Ok(v) = xmtp_cryptography::VerifiedInstallation::from_bytes(&r.bundle) {
                if v.address() == *address {
                    set.installations.push(v);
                }
            }
        }
        if !self.is_fresh(&set) {
            return Ok(None);
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(*address, set.clone());
        }
        Ok(Some(set))
    }

    /// The verified, unrevoked installations of `address`, refreshed from
    /// the node if the cached set is stale (or `force`).
    pub(crate) async fn installations(
        &self,
        api: &dyn XmtpApi,
        storage: &Storage,
        address: &Address,
        force: bool,
    ) -> Result<ContactSet, ClientError> {
        if !force {
            if let Some(set) = self.cached(address).filter(|s| self.is_fresh(s)) {
                return Ok(set);
            }
            if let Some(set) = self.load_stored(storage, address)? {
                return Ok(set);
            }
        }
        let mut sets = self
            .refresh(api, storage, std::slice::from_ref(address))
            .await?;
        Ok(sets.pop().unwrap_or_else(|| ContactSet {
            refreshed_ns: now_ns(),
            installations: Vec::new(),
            revoked: HashSet::new(),
        }))
    }

    /// Fetches, verifies and stores the installations of `addresses` (one
    /// request), returning their sets in the same order.
    pub(crate) async fn refresh(
        &self,
        api: &dyn XmtpApi,
        storage: &Storage,
        addresses: &[Address],
    ) -> Result<Vec<ContactSet>, ClientError> {
        let listed = api
            .get_installations(addresses.iter().map(Address::to_checksum).collect())
            .await?;
        let now = now_ns();
        let mut out = Vec::with_capacity(addresses.len());
        for address in addresses {
            let key = address.to_checksum();
            let entry = listed
                .iter()
                .find(|e| e.account_address.eq_ignore_ascii_case(&key));
            let (bundles, revocations) = entry
                .map(|e| (e.bundles.as_slice(), e.revocations.as_slice()))
                .unwrap_or((&[], &[]));
            let verified = verify_installations(address, bundles, revocations);
            let mut set = ContactSet {
                refreshed_ns: now,
                installations: verified.installations,
                revoked: HashSet::new(),
            };
            let mut records: Vec<InstallationRecord> = set
                .installations
                .iter()
                .map(|v| InstallationRecord {
                    installation_key: v.installation_id().as_bytes().to_vec(),
                    address: key.clone(),
                    bundle: v.to_bytes(),
                    revoked_ns: None,
                    checked_ns: now,
                })
                .collect();
            for dropped in &verified.dropped {
                let installation = hex::encode(&dropped.installation_key);
                match &dropped.reason {
                    DropReason::Revoked(at) => {
                        tracing::warn!(%address, %installation, "ignoring revoked installation");
                        if let Some(id) = InstallationId::from_slice(&dropped.installation_key) {
                            set.revoked.insert(id);
                            records.push(InstallationRecord {
                                installation_key: id.as_bytes().to_vec(),
                                address: key.clone(),
                                bundle: Vec::new(),
                                revoked_ns: Some(*at),
                                checked_ns: now,
                            });
                        }
                    }
                    DropReason::Duplicate => {}
                    reason => {
                        tracing::warn!(%address, %installation, ?reason, "ignoring forged or invalid installation bundle")
                    }
                }
            }
            for ignored in &verified.ignored_revocations {
                tracing::warn!(%address, installation = %hex::encode(&ignored.installation_key), reason = ?ignored.reason, "ignoring invalid revocation");
            }
            let revoked: Vec<InstallationId> = set.revoked.iter().copied().collect();
            storage.transaction(|tx| {
                tx.replace_installations(&key, &records, now)?;
                for id in &revoked {
                    tx.delete_sessions_with(id.as_bytes())?;
                }
                Ok::<_, ClientError>(())
            })?;
            if let Ok(mut cache) = self.cache.lock() {
                cache.insert(*address, set.clone());
            }
            out.push(set);
        }
        Ok(out)
    }

    /// Checks that `installation` speaks for `address` (refreshing once if it
    /// is not in a cached set) and returns its verified bundle.
    pub(crate) async fn verify_sender(
        &self,
        api: &dyn XmtpApi,
        storage: &Storage,
        address: &Address,
        installation: &InstallationId,
    ) -> Result<Result<VerifiedInstallation, SenderError>, ClientError> {
        let find = |set: &ContactSet| -> Option<Result<VerifiedInstallation, SenderError>> {
            if set.revoked.contains(installation) {
                return Some(Err(SenderError::Revoked(installation.to_hex())));
            }
            set.installations
                .iter()
                .find(|v| v.installation_id() == *installation)
                .cloned()
                .map(Ok)
        };
        let set = self.installations(api, storage, address, false).await?;
        if let Some(found) = find(&set) {
            return Ok(found);
        }
        let set = self.installations(api, storage, address, true).await?;
        Ok(find(&set).unwrap_or_else(|| {
            Err(SenderError::NotAnInstallationOf {
                installation: installation.to_hex(),
                address: address.to_checksum(),
            })
        }))
    }

    /// Forgets the cached set of `address` (after a revocation, say).
    pub(crate) fn invalidate(&self, address: &Address) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(address);
        }
    }
}

/// One installation of an address, as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// The installation id (64 hex digits).
    pub id: String,
    /// The address it speaks for.
    pub address: String,
    /// When the wallet granted it, ns since the Unix epoch.
    pub created_ns: u64,
    /// Whether it is this client's own installation.
    pub is_current: bool,
}
