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

/// Addresses per lookup request (the node takes at most 100).
const LOOKUP_BATCH: usize = 50;

/// How long verified contact information is trusted before it is refreshed.
///
/// The default, 10 s, bounds how long a new installation of a peer (or of
/// this address) can miss messages sent to the address, and how long a
/// revoked one keeps receiving them; one lookup per address per interval is
/// cheap. Set it to zero to look up on every send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactPolicy {
    /// Refresh an address's installations when the cached set is older than this.
    pub refresh_after: Duration,
}

impl Default for ContactPolicy {
    fn default() -> Self {
        Self {
            refresh_after: Duration::from_secs(10),
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
        let mut listed = Vec::with_capacity(addresses.len());
        for chunk in addresses.chunks(LOOKUP_BATCH) {
            listed.extend(
                api.get_installations(chunk.iter().map(Address::to_checksum).collect())
                    .await?,
            );
        }
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

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use async_trait::async_trait;
    use xmtp_cryptography::{Association, InstallationKeys, LocalWallet, Revocation};
    use xmtp_networking::{ApiError, EnvelopeStream};
    use xmtp_proto::xmtp::{
        key_api::v1::{AddressInstallations, ClaimedKey},
        message_api::v1::{Envelope, QueryRequest, QueryResponse},
        v3::message_contents::{
            InstallationPublicKeyBundle, SignedCurve25519Key, WalletRevocation,
        },
    };

    use super::*;
    use crate::storage::DatabaseKey;

    /// A key service that lists what the test put in it and counts lookups.
    #[derive(Default)]
    struct Listing {
        entries: Mutex<Vec<AddressInstallations>>,
        lookups: AtomicUsize,
    }

    fn unused<T>() -> Result<T, ApiError> {
        Err(ApiError::Unavailable("not used by this test".into()))
    }

    #[async_trait]
    impl XmtpApi for Listing {
        async fn publish(&self, _: Vec<Envelope>) -> Result<(), ApiError> {
            unused()
        }
        async fn query(&self, _: QueryRequest) -> Result<QueryResponse, ApiError> {
            unused()
        }
        async fn batch_query(&self, _: Vec<QueryRequest>) -> Result<Vec<QueryResponse>, ApiError> {
            unused()
        }
        async fn subscribe(&self, _: Vec<String>) -> Result<EnvelopeStream, ApiError> {
            unused()
        }
        async fn subscribe_all(&self) -> Result<EnvelopeStream, ApiError> {
            unused()
        }
        async fn register_installation(
            &self,
            _: InstallationPublicKeyBundle,
        ) -> Result<(), ApiError> {
            unused()
        }
        async fn upload_one_time_keys(
            &self,
            _: Vec<u8>,
            _: Vec<SignedCurve25519Key>,
        ) -> Result<u32, ApiError> {
            unused()
        }
        async fn count_one_time_keys(&self, _: Vec<u8>) -> Result<u32, ApiError> {
            unused()
        }
        async fn get_installations(
            &self,
            addresses: Vec<String>,
        ) -> Result<Vec<AddressInstallations>, ApiError> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let entries = self.entries.lock().unwrap();
            Ok(addresses
                .into_iter()
                .map(|a| {
                    entries
                        .iter()
                        .find(|e| e.account_address == a)
                        .cloned()
                        .unwrap_or(AddressInstallations {
                            account_address: a,
                            ..Default::default()
                        })
                })
                .collect())
        }
        async fn claim_one_time_keys(&self, _: Vec<Vec<u8>>) -> Result<Vec<ClaimedKey>, ApiError> {
            unused()
        }
        async fn publish_revocation(&self, _: WalletRevocation) -> Result<(), ApiError> {
            unused()
        }
    }

    async fn installation(wallet: &LocalWallet) -> (InstallationId, InstallationPublicKeyBundle) {
        let mut keys = InstallationKeys::new();
        keys.rotate_fallback_key();
        let association = Association::create(wallet, keys.installation_id(), 1)
            .await
            .unwrap();
        (
            keys.installation_id(),
            keys.public_bundle(&association).unwrap(),
        )
    }

    struct World {
        api: Arc<Listing>,
        storage: Storage,
        alice: Address,
        genuine: InstallationId,
        forged: InstallationId,
        revoked: InstallationId,
    }

    async fn world() -> World {
        let alice_wallet = LocalWallet::random();
        let mallory = LocalWallet::random();
        let (genuine, genuine_bundle) = installation(&alice_wallet).await;
        let (revoked, revoked_bundle) = installation(&alice_wallet).await;
        let (forged, mut forged_bundle) = installation(&mallory).await;
        let alice = alice_wallet.address();
        if let Some(a) = forged_bundle.association.as_mut() {
            a.account_address = alice.to_checksum();
        }
        let revocation = Revocation::create(&alice_wallet, revoked, 2).await.unwrap();
        let api = Arc::new(Listing::default());
        api.entries.lock().unwrap().push(AddressInstallations {
            account_address: alice.to_checksum(),
            bundles: vec![genuine_bundle, forged_bundle, revoked_bundle],
            revocations: vec![revocation.to_proto()],
        });
        World {
            api,
            storage: Storage::in_memory(&DatabaseKey::random()).unwrap(),
            alice,
            genuine,
            forged,
            revoked,
        }
    }

    #[tokio::test]
    async fn only_verified_unrevoked_installations_are_kept_and_revoked_ones_remembered() {
        let w = world().await;
        let contacts = Contacts::new(ContactPolicy::default());
        let set = contacts
            .installations(w.api.as_ref(), &w.storage, &w.alice, false)
            .await
            .unwrap();
        let ids: Vec<_> = set
            .installations
            .iter()
            .map(|v| v.installation_id())
            .collect();
        assert_eq!(ids, [w.genuine]);
        assert!(set.revoked.contains(&w.revoked));
        assert!(!set.revoked.contains(&w.forged));
        let check = |id| contacts.verify_sender(w.api.as_ref(), &w.storage, &w.alice, id);
        assert!(check(&w.genuine).await.unwrap().is_ok());
        assert_eq!(
            check(&w.revoked).await.unwrap().err(),
            Some(SenderError::Revoked(w.revoked.to_hex()))
        );
        assert!(matches!(
            check(&w.forged).await.unwrap(),
            Err(SenderError::NotAnInstallationOf { .. })
        ));
    }

    #[tokio::test]
    async fn fresh_sets_are_served_from_the_cache_and_the_database() {
        let w = world().await;
        let contacts = Contacts::new(ContactPolicy::default());
        contacts
            .installations(w.api.as_ref(), &w.storage, &w.alice, false)
            .await
            .unwrap();
        contacts
            .installations(w.api.as_ref(), &w.storage, &w.alice, false)
            .await
            .unwrap();
        assert_eq!(w.api.lookups.load(Ordering::SeqCst), 1, "cached in memory");
        // A new Contacts (a restarted client) reads the fresh set from the database.
        let restarted = Contacts::new(ContactPolicy::default());
        let set = restarted
            .installations(w.api.as_ref(), &w.storage, &w.alice, false)
            .await
            .unwrap();
        assert_eq!(
            w.api.lookups.load(Ordering::SeqCst),
            1,
            "loaded from the database"
        );
        assert_eq!(set.installations.len(), 1);
        assert!(set.revoked.contains(&w.revoked));
        // A stale set is fetched again.
        let always = Contacts::new(ContactPolicy {
            refresh_after: Duration::ZERO,
        });
        always
            .installations(w.api.as_ref(), &w.storage, &w.alice, false)
            .await
            .unwrap();
        assert_eq!(w.api.lookups.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unknown_sender_installation_triggers_one_refresh() {
        let w = world().await;
        let contacts = Contacts::new(ContactPolicy::default());
        contacts
            .installations(w.api.as_ref(), &w.storage, &w.alice, false)
            .await
            .unwrap();
        // An installation that is not in the fresh cached set (a device
        // added since, or an impostor): the set is fetched once more.
        let stranger = InstallationId::from_bytes([9; 32]);
        let verdict = contacts
            .verify_sender(w.api.as_ref(), &w.storage, &w.alice, &stranger)
            .await
            .unwrap();
        assert!(matches!(
            verdict,
            Err(SenderError::NotAnInstallationOf { .. })
        ));
        assert_eq!(
            w.api.lookups.load(Ordering::SeqCst),
            2,
            "one refresh for the unknown installation"
        );
    }
}
