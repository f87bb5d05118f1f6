//! The client object: one installation of one wallet, as the app sees it.
//!
//! [`create_client`] builds an `xmtp_core::Client` (loading the installation
//! from the database or creating and registering a new one) and wraps it in
//! [`FfiClient`]. Calls that touch the network are exported as async
//! functions run on tokio (Kotlin `suspend`, Swift `async`, Python
//! coroutines); calls that only read the local database are synchronous.
//! Every error crosses as a typed [`FfiError`].

use std::sync::Arc;

use xmtp_core::{ClientBuilder, ContentType, DatabaseKey, WalletSigner};
use zeroize::Zeroizing;

use crate::{
    error::FfiError,
    records::{
        FfiConversation, FfiGroup, FfiInstallation, FfiMessage, FfiPaging, FfiSealed,
        FfiSyncSummary, FfiV2Identity,
    },
    signer::{FfiWalletSigner, ForeignWallet},
    stream::{FfiMessageCallback, FfiStreamHandle},
};

/// Length of a database key in bytes.
const DATABASE_KEY_LEN: usize = 32;

/// Creates a client: loads this installation from the database (or creates
/// one, has the wallet sign its association, and registers it on the node).
///
/// - `node_url`: `http://host:port` or `https://host[:port]` of an XMTP node.
/// - `db_path`: the database file; `None` or empty for an in-memory database
///   (an ephemeral installation).
/// - `db_key`: 32 bytes sealing the database's secrets and messages; keep it
///   in the platform's keystore. May be empty for an in-memory database (a
///   random key is used).
/// - `signer`: the wallet; `None` makes (or, for an existing database,
///   reloads) a random wallet kept in the database.
#[uniffi::export(async_runtime = "tokio")]
pub async fn create_client(
    node_url: String,
    db_path: Option<String>,
    db_key: Vec<u8>,
    signer: Option<Arc<dyn FfiWalletSigner>>,
) -> Result<Arc<FfiClient>, FfiError> {
    let db_key = Zeroizing::new(db_key);
    let mut builder = ClientBuilder::new().node_url(node_url.trim());
    if let Some(signer) = signer {
        let wallet: Arc<dyn WalletSigner> = Arc::new(ForeignWallet::new(signer)?);
        builder = builder.wallet(wallet);
    }
    builder = match db_path.as_deref().map(str::trim) {
        None | Some("") => builder.in_memory(),
        Some(path) => builder.database_path(path),
    };
    if !db_key.is_empty() {
        builder = builder.database_key(database_key(&db_key)?);
    }
    let client = builder.build().await?;
    tracing::info!(address = %client.address(), installation = %client.installation_id(), "client ready");
    Ok(Arc::new(FfiClient { client }))
}

fn database_key(bytes: &[u8]) -> Result<DatabaseKey, FfiError> {
    let key: [u8; DATABASE_KEY_LEN] =
        bytes
            .try_into()
            .map_err(|_| FfiError::InvalidConfiguration {
                message: format!(
                    "the database key must be {DATABASE_KEY_LEN} bytes, not {}",
                    bytes.len()
                ),
            })?;
    Ok(DatabaseKey::from_bytes(key))
}

/// An XMTP client for one installation of one wallet.
#[derive(uniffi::Object)]
pub struct FfiClient {
    client: xmtp_core::Client,
}

impl FfiClient {
    /// The core client.
    pub(crate) fn core(&self) -> &xmtp_core::Client {
        &self.client
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl FfiClient {
    /// The wallet address this installation speaks for (EIP-55).
    pub fn address(&self) -> String {
        self.client.address()
    }

    /// This installation's id (hex of its Ed25519 key).
    pub fn installation_id(&self) -> String {
        self.client.installation_id()
    }

    /// Whether the wallet revoked this installation.
    pub fn is_revoked(&self) -> bool {
        self.client.is_revoked()
    }

    /// Publishes the bundle again, tops up one-time keys and rotates the
    /// fallback key when due. `create_client` already registers; call this
    /// to refresh keys in a long-lived app.
    pub async fn register(&self) -> Result<(), FfiError> {
        Ok(self.client.register().await?)
    }

    /// Sends text to an address (every installation of the peer and of this
    /// address receives it). Returns the message id. If the node could not
    /// be reached after the message was stored, throws `Queued` (with the
    /// id): the next `sync` publishes it.
    pub async fn send(&self, peer_address: String, text: String) -> Result<String, FfiError> {
        Ok(self.client.send_text(&peer_address, &text).await?.id)
    }

    /// Sends content of a custom type (`authority/type:major.minor`) with an
    /// optional fallback text for readers that do not know the type.
    pub async fn send_content(
        &self,
        peer_address: String,
        content_type: String,
        content: Vec<u8>,
        fallback: Option<String>,
    ) -> Result<String, FfiError> {
        let kind = ContentType::parse(&content_type).map_err(xmtp_core::ClientError::from)?;
        let encoded = xmtp_core::content::encode_custom(&kind, content, fallback);
        Ok(self.client.send(&peer_address, encoded).await?.id)
    }

    /// Pulls new messages from the node, decrypts and stores them, and
    /// publishes queued messages.
    pub async fn sync(&self) -> Result<FfiSyncSummary, FfiError> {
        Ok(self.client.sync().await?.into())
    }

    /// Every conversation, most recently active first, with its newest
    /// message (from the local database; `sync` first for the latest).
    pub fn list_conversations(&self) -> Result<Vec<FfiConversation>, FfiError> {
        Ok(self
            .client
            .conversations()?
            .into_iter()
            .map(FfiConversation::from)
            .collect())
    }

    /// A page of a conversation's messages (its id: the peer's address, or
    /// an XMTP V1/V2 conversation's topic; `messages_with` merges them all);
    /// all of them, oldest first, without `paging`.
    #[uniffi::method(default(paging = None))]
    pub fn messages(
        &self,
        conversation_id: String,
        paging: Option<FfiPaging>,
    ) -> Result<Vec<FfiMessage>, FfiError> {
        let page = paging.unwrap_or_default().into();
        Ok(self
            .client
            .messages(&conversation_id, &page)?
            .into_iter()
            .map(FfiMessage::from)
            .collect())
    }

    /// One stored message by its id.
    pub fn message(&self, message_id: String) -> Result<Option<FfiMessage>, FfiError> {
        Ok(self.client.message(&message_id)?.map(FfiMessage::from))
    }

    /// Number of stored messages.
    pub fn message_count(&self) -> Result<u64, FfiError> {
        Ok(self.client.message_count()?)
    }

    /// New messages of every conversation, from now on, delivered to
    /// `callback` until the returned handle is closed (or freed).
    pub async fn stream(
        &self,
        callback: Arc<dyn FfiMessageCallback>,
    ) -> Result<Arc<FfiStreamHandle>, FfiError> {
        let stream = self.client.stream_messages().await?;
        Ok(Arc::new(FfiStreamHandle::spawn(stream, callback)))
    }

    /// New messages of one conversation (the peer's address), from now on.
    pub async fn stream_conversation(
        &self,
        conversation_id: String,
        callback: Arc<dyn FfiMessageCallback>,
    ) -> Result<Arc<FfiStreamHandle>, FfiError> {
        let stream = self.client.stream_conversation(&conversation_id).await?;
        Ok(Arc::new(FfiStreamHandle::spawn(stream, callback)))
    }

    /// Creates a group of this account and `members` (addresses), named
    /// `name`, with this account its only admin; returns the group id (64
    /// hex digits). Members see it after their next `sync`.
    pub async fn create_group(
        &self,
        members: Vec<String>,
        name: String,
    ) -> Result<String, FfiError> {
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        Ok(self.client.create_group(&members, &name).await?)
    }

    /// Adds members to a group (admins only: others get `Group`).
    pub async fn add_group_members(
        &self,
        group_id: String,
        members: Vec<String>,
    ) -> Result<(), FfiError> {
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        Ok(self.client.add_members(&group_id, &members).await?)
    }

    /// Removes members from a group (admins only). Every remaining sender
    /// replaces its session key, so removed members cannot read what follows.
    pub async fn remove_group_members(
        &self,
        group_id: String,
        members: Vec<String>,
    ) -> Result<(), FfiError> {
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        Ok(self.client.remove_members(&group_id, &members).await?)
    }

    /// Leaves a group.
    pub async fn leave_group(&self, group_id: String) -> Result<(), FfiError> {
        Ok(self.client.leave_group(&group_id).await?)
    }

    /// Sends text to a group; returns the message id. Throws `Queued` like
    /// `send` when the node could not be reached after storing it.
    pub async fn send_group(&self, group_id: String, text: String) -> Result<String, FfiError> {
        Ok(self.client.send_group_text(&group_id, &text).await?.id)
    }

    /// Every group this installation knows, oldest first (from the local
    /// database; `sync` first for new groups and membership changes).
    pub fn list_groups(&self) -> Result<Vec<FfiGroup>, FfiError> {
        Ok(self
            .client
            .list_groups()?
            .into_iter()
            .map(FfiGroup::from)
            .collect())
    }

    /// A page of a group's messages; all of them, oldest first, without
    /// `paging`.
    #[uniffi::method(default(paging = None))]
    pub fn group_messages(
        &self,
        group_id: String,
        paging: Option<FfiPaging>,
    ) -> Result<Vec<FfiMessage>, FfiError> {
        let page = paging.unwrap_or_default().into();
        Ok(self
            .client
            .group_messages(&group_id, &page)?
            .into_iter()
            .map(FfiMessage::from)
            .collect())
    }

    /// New messages of one group, from now on.
    pub async fn stream_group(
        &self,
        group_id: String,
        callback: Arc<dyn FfiMessageCallback>,
    ) -> Result<Arc<FfiStreamHandle>, FfiError> {
        let stream = self.client.stream_group(&group_id).await?;
        Ok(Arc::new(FfiStreamHandle::spawn(stream, callback)))
    }

    /// The verified, unrevoked installations of an address (this client's
    /// own address when `None`).
    #[uniffi::method(default(address = None))]
    pub async fn installations(
        &self,
        address: Option<String>,
    ) -> Result<Vec<FfiInstallation>, FfiError> {
        let list = match address {
            Some(address) => self.client.installations_of(&address).await?,
            None => self.client.installations().await?,
        };
        Ok(list.into_iter().map(FfiInstallation::from).collect())
    }

    /// Revokes one of this address's installations (this one included): the
    /// wallet signs the revocation and every client stops using it.
    pub async fn revoke(&self, installation_id: String) -> Result<(), FfiError> {
        Ok(self.client.revoke_installation(&installation_id).await?)
    }

    /// Publishes this installation's secure-channel keys, once, so peers can
    /// open channels to it (`encrypt` and `decrypt` do it too).
    pub async fn enable_secure_channel(&self) -> Result<(), FfiError> {
        Ok(self.client.enable_secure_channel().await?)
    }

    /// Encrypts `plaintext` for `peer_address` on the secure channel. The
    /// first call to a peer runs an X3DH handshake over XMTP; later calls
    /// use no network.
    pub async fn encrypt(
        &self,
        plaintext: Vec<u8>,
        peer_address: String,
    ) -> Result<FfiSealed, FfiError> {
        let plaintext = Zeroizing::new(plaintext);
        Ok(self.client.encrypt(&plaintext, &peer_address).await?.into())
    }

    /// Decrypts a secure-channel message that `from_address` made with
    /// `encrypt`. Tampering, a wrong sender and replays throw
    /// `Authentication`.
    pub async fn decrypt(
        &self,
        nonce: Vec<u8>,
        ciphertext: Vec<u8>,
        from_address: String,
    ) -> Result<Vec<u8>, FfiError> {
        Ok(self
            .client
            .decrypt(&nonce, &ciphertext, &from_address)
            .await?)
    }

    /// Enables XMTP V1/V2, to talk to the users of XMTP's SDKs: loads the
    /// wallet's XMTP identity from the database, else recovers it from the
    /// node (the wallet signs "XMTP : Enable Identity"), else creates one (the
    /// wallet signs "XMTP : Create Identity" and "Enable Identity") and
    /// stores it there, encrypted, for the wallet's other clients; then
    /// publishes its contact bundle. Once enabled, `sync`, `stream` and
    /// `list_conversations` include V1/V2 conversations. Throws `Wallet` when
    /// the wallet is needed and cannot sign.
    pub async fn enable_v2(&self) -> Result<FfiV2Identity, FfiError> {
        Ok(self.client.enable_v2().await?.into())
    }

    /// This client's XMTP V1/V2 identity (origin `Loaded`), or `None` before
    /// `enable_v2`.
    pub fn v2_identity(&self) -> Option<FfiV2Identity> {
        self.client.v2_identity().map(FfiV2Identity::from)
    }

    /// Whether an address can be reached over XMTP V2 (it published a valid
    /// XMTP contact bundle). Does not need `enable_v2`.
    pub async fn can_message_v2(&self, address: String) -> Result<bool, FfiError> {
        Ok(self.client.can_message_v2(&address).await?)
    }

    /// Sends text to an address over XMTP V2 (no forward secrecy), starting
    /// the conversation if there is none; returns the message id. Throws
    /// `InvalidConfiguration` before `enable_v2`, `PeerNotRegistered` when the
    /// address has no XMTP contact bundle, and `Queued` like `send`.
    pub async fn send_v2(&self, peer_address: String, text: String) -> Result<String, FfiError> {
        Ok(self.client.send_v2_text(&peer_address, &text).await?.id)
    }

    /// Sends text to an address over the best protocol both sides share:
    /// Olm (like `send`) when the peer has installations of this library,
    /// else XMTP V2 when V2 is enabled here and the peer has an XMTP contact
    /// bundle, else throws `PeerNotRegistered`. Returns the message id; its
    /// `protocol` (see `message(id)`) says which was used.
    pub async fn send_auto(&self, peer_address: String, text: String) -> Result<String, FfiError> {
        Ok(self.client.send_text_auto(&peer_address, &text).await?.id)
    }

    /// A page of every message with an address over every protocol (Olm,
    /// XMTP V2 and V1) merged by sent time; each says its `protocol`. All of
    /// them, oldest first, without `paging`.
    #[uniffi::method(default(paging = None))]
    pub fn messages_with(
        &self,
        peer_address: String,
        paging: Option<FfiPaging>,
    ) -> Result<Vec<FfiMessage>, FfiError> {
        let page = paging.unwrap_or_default().into();
        Ok(self
            .client
            .messages_with(&peer_address, &page)?
            .into_iter()
            .map(FfiMessage::from)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_key_must_be_32_bytes() {
        assert!(database_key(&[7u8; 32]).is_ok());
        assert!(matches!(
            database_key(&[7u8; 31]),
            Err(FfiError::InvalidConfiguration { message }) if message.contains("31")
        ));
    }
}
