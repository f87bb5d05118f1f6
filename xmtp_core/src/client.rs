//! [`Client`]: the async driver around the protocol logic.
//!
//! The client owns the installation's keys (behind one async mutex, which
//! also serialises every ratchet step), the encrypted storage, the contact
//! cache and the node API. The protocol steps are sans-I/O functions over a
//! storage transaction, taking decoded and verified inputs:
//!
//! ```text
//! send:     recipients (contacts) -> claim pre-keys (node) -> fanout::encrypt_to_outbox (tx) -> publish (node)
//! receive:  envelope (node) -> authenticate (contacts) -> sync::accept (tx) -> streams wake up
//! ```
//!
//! This module starts the client and holds what the steps share; the
//! network calls sit in the thin async methods around them. A `Client` is
//! cheap to clone: clones share one state.

use std::sync::{
    atomic::{AtomicBool, AtomicU32, Ordering},
    Arc,
};

use prost::Message as _;
use tokio::sync::{watch, Mutex as AsyncMutex};
use xmtp_cryptography::{
    Address, Association, Curve25519PublicKey, InstallationId, InstallationKeys, SecretKey,
    WalletSigner,
};
use xmtp_networking::XmtpApi;
use xmtp_proto::xmtp::v3::message_contents::WalletAssociation;

use crate::{
    builder::{resolve_wallet, ClientOptions},
    contacts::{ContactPolicy, Contacts},
    error::ClientError,
    storage::{AccountRecord, Storage},
    time::now_ns,
};

/// The topic of an installation's inbox.
pub fn installation_topic(installation: &InstallationId) -> String {
    format!("/xmtp/3/installation-{}/proto", installation.to_hex())
}

/// An XMTP client for one installation of one wallet. Build it with
/// [`crate::ClientBuilder`].
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.inner.address)
            .field("installation_id", &self.inner.installation_id)
            .finish()
    }
}

/// State shared by every clone of a [`Client`].
pub(crate) struct Inner {
    pub(crate) api: Arc<dyn XmtpApi>,
    pub(crate) storage: Arc<Storage>,
    pub(crate) wallet: Option<Arc<dyn WalletSigner>>,
    pub(crate) address: Address,
    pub(crate) installation_id: InstallationId,
    pub(crate) identity_key: Curve25519PublicKey,
    pub(crate) association: Association,
    /// The installation's private keys; holding this lock is holding the
    /// right to advance any ratchet.
    pub(crate) keys: AsyncMutex<InstallationKeys>,
    pub(crate) pickle_key: SecretKey,
    pub(crate) contacts: Contacts,
    pub(crate) options: ClientOptions,
    pub(crate) revoked: AtomicBool,
    /// One-time keys spent since the last top-up.
    pub(crate) spent_one_time_keys: AtomicU32,
    /// Highest stored message sequence number; streams wait on it.
    pub(crate) stored: watch::Sender<i64>,
    /// Serialises outbox flushes (a flush publishes each row once).
    pub(crate) outbox_lock: AsyncMutex<()>,
    /// The background task that follows the installation's topic.
    pub(crate) follower: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The XMTP V1/V2 identity, once enabled ([`Client::enable_v2`]).
    pub(crate) v2: std::sync::Mutex<Option<Arc<crate::v2::V2State>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut follower) = self.follower.lock() {
            if let Some(task) = follower.take() {
                task.abort();
            }
        }
    }
}

impl Client {
    /// Loads or creates the installation, registers it and flushes the outbox.
    pub(crate) async fn start(
        api: Arc<dyn XmtpApi>,
        storage: Arc<Storage>,
        wallet: Option<Arc<dyn WalletSigner>>,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let pickle_key = storage.pickle_key().clone();
        let existing = storage.transaction(|tx| tx.account())?;
        let wallet = resolve_wallet(&storage, wallet, existing.is_some())?;
        let (keys, association, revoked) = match existing {
            Some(account) => {
                if let Some(wallet) = &wallet {
                    let given = wallet.address().to_checksum();
                    if given != account.address {
                        return Err(ClientError::WalletMismatch {
                            stored: account.address,
                            given,
                        });
                    }
                }
                let keys = InstallationKeys::from_pickle(&account.account_pickle, &pickle_key)
                    .map_err(|e| ClientError::Crypto(format!("stored installation keys: {e}")))?;
                let proto = WalletAssociation::decode(account.association.as_slice())
                    .map_err(|_| ClientError::Crypto("stored association is corrupt".into()))?;
                let association = Association::from_proto(&proto)
                    .map_err(|e| ClientError::Crypto(format!("stored association: {e}")))?;
                (keys, association, account.revoked)
            }
            None => {
                let wallet = wallet.as_ref().ok_or(ClientError::NoWallet)?;
                let mut keys = InstallationKeys::new();
                keys.rotate_fallback_key();
                let now = now_ns();
                let association = Association::create(wallet.as_ref(), keys.installation_id(), now)
                    .await
                    .map_err(|e| ClientError::Wallet(e.to_string()))?;
                let pickle = keys
                    .pickle(&pickle_key)
                    .map_err(|e| ClientError::Crypto(e.to_string()))?;
                storage.transaction(|tx| {
                    tx.save_account(&AccountRecord {
                        address: wallet.address().to_checksum(),
                        installation_key: keys.installation_id().as_bytes().to_vec(),
                        account_pickle: zeroize::Zeroizing::new(pickle),
                        association: association.to_proto().encode_to_vec(),
                        created_ns: now,
                        fallback_rotated_ns: now,
                        revoked: false,
                    })
                })?;
                tracing::info!(address = %wallet.address(), installation = %keys.installation_id(), "created installation");
                (keys, association, false)
            }
        };
        let last_seq = storage.transaction(|tx| tx.max_message_seq())?;
        let v2 = storage.transaction(crate::v2::load_state)?;
        let inner = Inner {
            api,
            address: association.account_address(),
            installation_id: keys.installation_id(),
            identity_key: keys.identity_key(),
            association,
            keys: AsyncMutex::new(keys),
            pickle_key,
            contacts: Contacts::new(ContactPolicy {
                refresh_after: options.contact_refresh,
            }),
            options,
            revoked: AtomicBool::new(revoked),
            spent_one_time_keys: AtomicU32::new(0),
            stored: watch::Sender::new(last_seq),
            outbox_lock: AsyncMutex::new(()),
            follower: std::sync::Mutex::new(None),
            v2: std::sync::Mutex::new(v2.clone()),
            storage,
            wallet,
        };
        let client = Self {
            inner: Arc::new(inner),
        };
        if let Some(state) = &v2 {
            client.renew_token(state)?;
        }
        if !client.is_revoked() {
            client.register().await?;
            client.check_own_revocation().await?;
        }
        if let Err(e) = client.flush_outbox().await {
            tracing::warn!(error = %e, "could not publish queued envelopes; will retry on the next sync");
        }
        Ok(client)
    }

    /// The wallet address this installation speaks for (EIP-55).
    pub fn address(&self) -> String {
        self.inner.address.to_checksum()
    }

    /// This installation's id (64 lowercase hex digits).
    pub fn installation_id(&self) -> String {
        self.inner.installation_id.to_hex()
    }

    /// This installation's inbox topic.
    pub fn inbox_topic(&self) -> String {
        installation_topic(&self.inner.installation_id)
    }

    /// Whether this installation was revoked by its wallet.
    pub fn is_revoked(&self) -> bool {
        self.inner.revoked.load(Ordering::SeqCst)
    }

    /// The node API this client uses.
    pub fn api(&self) -> Arc<dyn XmtpApi> {
        self.inner.api.clone()
    }

    /// Number of messages stored locally.
    pub fn message_count(&self) -> Result<u64, ClientError> {
        Ok(self.inner.storage.transaction(|tx| tx.message_count())?)
    }

    pub(crate) fn ensure_not_revoked(&self) -> Result<(), ClientError> {
        if self.is_revoked() {
            Err(ClientError::InstallationRevoked)
        } else {
            Ok(())
        }
    }

    /// Announces newly stored messages to the streams.
    pub(crate) fn notify_stored(&self) {
        if let Ok(seq) = self.inner.storage.transaction(|tx| tx.max_message_seq()) {
            self.inner.stored.send_if_modified(|current| {
                if seq > *current {
                    *current = seq;
                    true
                } else {
                    false
                }
            });
        }
    }
}

/// Parses an address given by a user or an application.
pub(crate) fn parse_address(address: &str) -> Result<Address, ClientError> {
    address
        .trim()
        .parse::<Address>()
        .map_err(|_| ClientError::InvalidAddress(address.chars().take(64).collect()))
}
