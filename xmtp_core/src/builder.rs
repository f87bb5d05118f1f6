//! [`ClientBuilder`]: where the node, the wallet and the database come from.
//!
//! `build()` opens (or creates) the encrypted database, loads the installation
//! or creates one (the wallet signs its association, once per installation),
//! registers the bundle with the node, tops up the one-time keys, rotates the
//! fallback key when it is old, and publishes whatever a previous run left in
//! the outbox. Without a wallet, a random one is made: identities are
//! ephemeral and anonymous by default (its key is kept, sealed, in the
//! database, so the identity survives a restart and can revoke).

use std::{path::PathBuf, sync::Arc, time::Duration};

use xmtp_cryptography::{LocalWallet, WalletSigner};
use xmtp_networking::{GrpcClient, XmtpApi};

use crate::{
    client::Client,
    contacts::ContactPolicy,
    error::ClientError,
    storage::{DatabaseKey, Storage},
};

/// Tunables of a client, with sensible defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// How long a verified list of an address's installations is trusted.
    pub contact_refresh: Duration,
    /// Top up one-time keys on the node when fewer than this many are left.
    pub min_one_time_keys: u32,
    /// How many one-time keys to keep on the node after a top-up.
    pub target_one_time_keys: u32,
    /// Rotate the fallback key when it is older than this.
    pub fallback_key_rotation: Duration,
    /// Sync re-reads this much before its cursor, so that envelopes whose
    /// sender clock lags are not missed (duplicates are skipped).
    pub sync_lookback: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            contact_refresh: ContactPolicy::default().refresh_after,
            min_one_time_keys: 25,
            target_one_time_keys: 50,
            fallback_key_rotation: Duration::from_secs(7 * 24 * 3600),
            sync_lookback: Duration::from_secs(60),
        }
    }
}

enum Api {
    Url(String),
    Client(Arc<dyn XmtpApi>),
}

enum Database {
    InMemory,
    Path(PathBuf),
}

/// Builds a [`Client`].
///
/// ```no_run
/// # async fn example() -> Result<(), xmtp_core::ClientError> {
/// use xmtp_core::{ClientBuilder, DatabaseKey};
/// let client = ClientBuilder::new()
///     .node_url("http://localhost:5556")
///     .database_path("/tmp/alice.db3")
///     .database_key(DatabaseKey::from_bytes([7; 32]))
///     .build()
///     .await?;
/// println!("{} {}", client.address(), client.installation_id());
/// # Ok(()) }
/// ```
pub struct ClientBuilder {
    api: Option<Api>,
    wallet: Option<Arc<dyn WalletSigner>>,
    database: Database,
    key: Option<DatabaseKey>,
    options: ClientOptions,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientBuilder {
    /// A builder with an in-memory database and a random wallet.
    pub fn new() -> Self {
        Self {
            api: None,
            wallet: None,
            database: Database::InMemory,
            key: None,
            options: ClientOptions::default(),
        }
    }

    /// The node's gRPC URL (`http://host:port` or `https://host[:port]`).
    pub fn node_url(mut self, url: impl Into<String>) -> Self {
        self.api = Some(Api::Url(url.into()));
        self
    }

    /// An API client to use instead of connecting to a URL.
    pub fn api(mut self, api: Arc<dyn XmtpApi>) -> Self {
        self.api = Some(Api::Client(api));
        self
    }

    /// The wallet that owns (or will own) the installation.
    pub fn wallet(mut self, wallet: Arc<dyn WalletSigner>) -> Self {
        self.wallet = Some(wallet);
        self
    }

    /// Keep state in a database file (created if missing).
    pub fn database_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.database = Database::Path(path.into());
        self
    }

    /// Keep state in memory only (lost when the client is dropped).
    pub fn in_memory(mut self) -> Self {
        self.database = Database::InMemory;
        self
    }

    /// The key the database is encrypted under. Required for a database file;
    /// an in-memory database gets a random one if none is given.
    pub fn database_key(mut self, key: DatabaseKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Tunables.
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }

    /// Opens the database, loads or creates and registers the installation.
    pub async fn build(self) -> Result<Client, ClientError> {
        let api: Arc<dyn XmtpApi> = match self.api {
            Some(Api::Client(api)) => api,
            Some(Api::Url(url)) => Arc::new(GrpcClient::connect(&url).await?),
            None => return Err(ClientError::MissingSetting("a node URL or an API client")),
        };
        let storage = match (&self.database, self.key) {
            (Database::InMemory, key) => {
                Storage::in_memory(&key.unwrap_or_else(DatabaseKey::random))?
            }
            (Database::Path(path), Some(key)) => Storage::open(path, &key)?,
            (Database::Path(_), None) => return Err(ClientError::MissingSetting("a database key")),
        };
        Client::start(api, Arc::new(storage), self.wallet, self.options).await
    }
}

/// Name of the sealed secret holding a wallet key generated by the client.
pub(crate) const GENERATED_WALLET_SECRET: &str = "generated_wallet_key";

/// The wallet to use: the one given, else one the client generated earlier
/// for this database, else (for a new database) a new random one.
pub(crate) fn resolve_wallet(
    storage: &Storage,
    given: Option<Arc<dyn WalletSigner>>,
    have_account: bool,
) -> Result<Option<Arc<dyn WalletSigner>>, ClientError> {
    if let Some(wallet) = given {
        return Ok(Some(wallet));
    }
    if let Some(bytes) = storage.transaction(|tx| tx.secret(GENERATED_WALLET_SECRET))? {
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| ClientError::Crypto("stored wallet key is corrupt".into()))?;
        let wallet =
            LocalWallet::from_key_bytes(&key).map_err(|e| ClientError::Wallet(e.to_string()))?;
        return Ok(Some(Arc::new(wallet)));
    }
    if have_account {
        return Ok(None);
    }
    let wallet = LocalWallet::random();
    storage.transaction(|tx| {
        tx.put_secret(GENERATED_WALLET_SECRET, wallet.to_key_bytes().as_slice())
    })?;
    Ok(Some(Arc::new(wallet)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_wallet_is_kept_and_reused_and_a_given_one_wins() {
        let storage = Storage::in_memory(&DatabaseKey::random()).unwrap();
        let first = resolve_wallet(&storage, None, false).unwrap().unwrap();
        let again = resolve_wallet(&storage, None, true).unwrap().unwrap();
        assert_eq!(first.address(), again.address());
        let given: Arc<dyn WalletSigner> = Arc::new(LocalWallet::random());
        let chosen = resolve_wallet(&storage, Some(given.clone()), true)
            .unwrap()
            .unwrap();
        assert_eq!(chosen.address(), given.address());
    }

    #[test]
    fn an_existing_account_without_a_stored_wallet_gets_none() {
        let storage = Storage::in_memory(&DatabaseKey::random()).unwrap();
        assert!(resolve_wallet(&storage, None, true).unwrap().is_none());
    }

    #[tokio::test]
    async fn a_database_file_needs_a_key_and_a_node_is_required() {
        let dir = tempfile::tempdir().unwrap();
        let r = ClientBuilder::new()
            .database_path(dir.path().join("x.db3"))
            .build()
            .await;
        assert!(matches!(r, Err(ClientError::MissingSetting(_))));
    }
}
