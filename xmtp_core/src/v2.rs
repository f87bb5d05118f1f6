//! XMTP V1/V2 conversations, beside our own Olm-based ones, so that a user of
//! this library can talk to the users of XMTP's SDKs and read their history.
//!
//! The identity is a secp256k1 key bundle authorised by the wallet
//! ("XMTP : Create Identity"), kept encrypted on the node's `privatestore`
//! topic ("XMTP : Enable Identity") so that every client of the wallet, ours
//! or XMTP's, uses the same one. The client:
//!
//! ```text
//! enable_v2:   load from the database | recover from privatestore | create + store there
//!              -> publish the contact bundle on /xmtp/0/contact-<address>/proto
//! send_v2:     conversation with the peer? else contact bundle -> deterministic invitation,
//!              sealed to both invite topics -> MessageV2 (signed, encrypted, HMAC) on its topic
//! sync_v2:     own invite topic -> conversations; own intro topic and V1 topics -> V1 messages;
//!              every conversation topic -> messages
//! ```
//!
//! Every message is decrypted, its signature checked against the sender's
//! bundle, the bundle against the sender's wallet, and the sender against the
//! conversation's two parties before it is stored; a refused envelope is
//! recorded as failed (see [`Client::failed_envelopes`]), never shown. Like
//! everything in `xmtp_cryptography::v2`, this protocol has no forward
//! secrecy: a conversation's key never changes. Our own conversations use the
//! double ratchet; V2 is for talking to XMTP's existing users.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use prost::Message as _;
use rand::rngs::OsRng;
use xmtp_cryptography::{
    v2::{
        authn,
        contact::{self, Contact},
        identity::{self, IdentityError},
        invitation::{self, InvitationError},
        message::{self as v2message, MessageError},
        private_key::{PrivateKeyBundleV1, PrivateKeyBundleV2, PrivateKeyError},
        private_store::PrivateStoreError,
        public_key::{BundleCache, BundleError},
        topic,
    },
    Address,
};
use xmtp_proto::xmtp::{
    message_api::v1::{Envelope, PagingInfo, QueryRequest, SortDirection},
    message_contents::{EncodedContent, InvitationV1},
};

use crate::{
    client::{parse_address, Client},
    content::encode_text,
    error::ClientError,
    messages::Message,
    storage::{
        EnvelopeOutcome, MessagePage, MessageRecord, ProcessedEnvelope, StorageError, StorageTx,
        V2ConversationRecord,
    },
    sync::{envelope_digest, EnvelopeResult, SyncSummary},
    time::now_ns,
};

/// The conversation kind of an XMTP V2 conversation (id: its topic).
pub(crate) const KIND_V2: &str = "v2";
/// The conversation kind of an XMTP V1 conversation (id: its topic).
pub(crate) const KIND_V1: &str = "v1";
/// Where the identity's private bundle is kept (sealed) in the database.
const IDENTITY_SECRET: &str = "xmtp_v2/private_key_bundle_v1";
/// Stored bundles tried (newest first) when recovering from `privatestore`;
/// each try costs the wallet one signature.
const MAX_RECOVERY_TRIES: usize = 3;
/// A bearer token is renewed when it is older than this (XMTP's SDKs renew
/// theirs hourly).
const TOKEN_RENEW_NS: u64 = 30 * 60 * 1_000_000_000;
/// Envelopes a sync asks for per page (the node's maximum).
const SYNC_PAGE: u32 = 100;

/// Why an XMTP V1/V2 operation failed.
#[derive(Debug, thiserror::Error)]
pub enum V2Error {
    /// V2 is not enabled on this client.
    #[error("XMTP V2 is not enabled on this client; call enable_v2 (the CLI's `register`) first")]
    NotEnabled,
    /// The address has no XMTP contact bundle on the node.
    #[error("{0} has no XMTP contact bundle on this node; they must open an XMTP client once")]
    NoContact(String),
    /// The identity could not be created, stored or recovered.
    #[error("XMTP identity: {0}")]
    Identity(#[from] IdentityError),
    /// The stored or recovered keys are unusable.
    #[error("XMTP keys: {0}")]
    Keys(#[from] PrivateKeyError),
    /// An invitation could not be made or opened.
    #[error("invitation: {0}")]
    Invitation(#[from] InvitationError),
    /// A message could not be made or read.
    #[error("message: {0}")]
    Message(#[from] MessageError),
    /// A contact bundle is invalid.
    #[error("contact bundle: {0}")]
    Bundle(#[from] BundleError),
    /// The bearer token could not be made.
    #[error("auth token: {0}")]
    Token(#[from] authn::TokenError),
}

/// Where this client's XMTP identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2IdentityOrigin {
    /// Made now, and stored on the node for the wallet's other clients.
    Created,
    /// Recovered from the wallet's `privatestore` topic (made by another client).
    Recovered,
    /// Already in this client's database.
    Loaded,
}

impl V2IdentityOrigin {
    /// `created`, `recovered` or `loaded`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Recovered => "recovered",
            Self::Loaded => "loaded",
        }
    }
}

/// This client's XMTP V1/V2 identity (public parts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Identity {
    /// The identity key, uncompressed secp256k1 point, hex (130 digits).
    pub identity_key: String,
    /// Where it came from.
    pub origin: V2IdentityOrigin,
}

/// The identity's keys, loaded.
pub(crate) struct V2State {
    v1: PrivateKeyBundleV1,
    v2: PrivateKeyBundleV2,
    cache: Mutex<BundleCache>,
    /// When the current bearer token was made.
    token_ns: Mutex<u64>,
}

impl V2State {
    fn new(v1: PrivateKeyBundleV1) -> Result<Self, V2Error> {
        let v2 = v1.to_v2()?;
        Ok(Self {
            v1,
            v2,
            cache: Mutex::new(BundleCache::new()),
            token_ns: Mutex::new(0),
        })
    }

    fn identity_key_hex(&self) -> String {
        hex::encode(self.v1.identity_key().point().to_uncompressed())
    }

    fn address(&self) -> Address {
        self.v2.wallet_address()
    }
}

/// Loads the identity stored in the database, if any.
pub(crate) fn load_state(tx: &StorageTx<'_>) -> Result<Option<Arc<V2State>>, ClientError> {
    let Some(bytes) = tx.secret(IDENTITY_SECRET)? else {
        return Ok(None);
    };
    let v1 = PrivateKeyBundleV1::decode(&bytes).map_err(|_| StorageError::Corrupt {
        what: "XMTP identity",
    })?;
    Ok(Some(Arc::new(V2State::new(v1).map_err(|_| {
        StorageError::Corrupt {
            what: "XMTP identity",
        }
    })?)))
}

fn query_newest(topic: String, limit: u32) -> QueryRequest {
    QueryRequest {
        content_topics: vec![topic],
        start_time_ns: 0,
        end_time_ns: 0,
        paging_info: Some(PagingInfo {
            limit,
            cursor: None,
            direction: SortDirection::Descending as i32,
        }),
    }
}

impl Client {
    pub(crate) fn v2_state(&self) -> Option<Arc<V2State>> {
        self.inner.v2.lock().ok().and_then(|s| s.clone())
    }

    fn require_v2(&self) -> Result<Arc<V2State>, ClientError> {
        self.v2_state()
            .ok_or_else(|| ClientError::V2(V2Error::NotEnabled))
    }

    /// This client's XMTP V1/V2 identity, if enabled.
    pub fn v2_identity(&self) -> Option<V2Identity> {
        self.v2_state().map(|s| V2Identity {
            identity_key: s.identity_key_hex(),
            origin: V2IdentityOrigin::Loaded,
        })
    }

    /// Enables XMTP V1/V2: loads the identity from the database, else
    /// recovers the wallet's identity from its `privatestore` topic (the
    /// wallet signs "XMTP : Enable Identity"), else creates one (the wallet
    /// signs "XMTP : Create Identity", then "Enable Identity" to store it
    /// there). Then publishes the contact bundle if the node does not have it.
    /// Needs the wallet unless the identity is already in the database.
    pub async fn enable_v2(&self) -> Result<V2Identity, ClientError> {
        if let Some(state) = self.v2_state() {
            self.publish_contact_if_missing(&state).await?;
            return Ok(V2Identity {
                identity_key: state.identity_key_hex(),
                origin: V2IdentityOrigin::Loaded,
            });
        }
        let wallet = self.inner.wallet.clone().ok_or(ClientError::NoWallet)?;
        let address = self.inner.address;
        let store_topic = topic::private_store_topic(&address);
        let stored = self
            .inner
            .api
            .query(query_newest(store_topic.clone(), MAX_RECOVERY_TRIES as u32))
            .await?
            .envelopes;
        let mut recovered = None;
        for envelope in &stored {
            match identity::recover_identity(wallet.as_ref(), &envelope.message).await {
                Ok(bundle) => {
                    recovered = Some(bundle);
                    break;
                }
                Err(IdentityError::Wallet(e)) => return Err(ClientError::Wallet(e.to_string())),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an unreadable bundle on the privatestore topic")
                }
            }
        }
        let (bundle, origin) = match recovered {
            Some(bundle) => (bundle, V2IdentityOrigin::Recovered),
            None => {
                let bundle = identity::create_identity(wallet.as_ref(), now_ns() / 1_000_000)
                    .await
                    .map_err(wallet_or_v2)?;
                let sealed = identity::store_identity(wallet.as_ref(), &bundle)
                    .await
                    .map_err(wallet_or_v2)?;
                // A node that requires authentication wants the new
                // identity's token on this publish already.
                self.renew_token(&V2State::new(bundle.clone())?)?;
                self.inner
                    .api
                    .publish(vec![Envelope {
                        content_topic: store_topic,
                        timestamp_ns: now_ns(),
                        message: sealed,
                    }])
                    .await?;
                (bundle, V2IdentityOrigin::Created)
            }
        };
        if bundle.wallet_address().map_err(V2Error::from)? != address {
            return Err(ClientError::V2(V2Error::Identity(IdentityError::Store(
                PrivateStoreError::WrongWallet {
                    expected: address,
                    actual: bundle.wallet_address().map_err(V2Error::from)?,
                },
            ))));
        }
        let encoded = bundle.encode();
        self.inner
            .storage
            .transaction(|tx| tx.put_secret(IDENTITY_SECRET, &encoded))?;
        let state = Arc::new(V2State::new(bundle)?);
        if let Ok(mut slot) = self.inner.v2.lock() {
            *slot = Some(state.clone());
        }
        self.renew_token(&state)?;
        self.publish_contact_if_missing(&state).await?;
        tracing::info!(address = %address, origin = origin.as_str(), "XMTP V2 enabled");
        Ok(V2Identity {
            identity_key: state.identity_key_hex(),
            origin,
        })
    }

    /// Gives the node a fresh bearer token when the current one is old.
    pub(crate) fn renew_token(&self, state: &V2State) -> Result<(), ClientError> {
        let now = now_ns();
        let Ok(mut made) = state.token_ns.lock() else {
            return Ok(());
        };
        if *made != 0 && now.saturating_sub(*made) < TOKEN_RENEW_NS {
            return Ok(());
        }
        let token = authn::create_token(&state.v1, now).map_err(V2Error::from)?;
        let bearer = authn::bearer(&token);
        let value = bearer.trim_start_matches("Bearer ").to_owned();
        self.inner.api.set_auth_token(Some(value));
        *made = now;
        Ok(())
    }

    async fn publish_contact_if_missing(&self, state: &V2State) -> Result<(), ClientError> {
        let address = state.address();
        let own_key = state.v1.identity_key().point().to_uncompressed();
        let newest = self
            .inner
            .api
            .query(query_newest(topic::contact_topic(&address), 1))
            .await?
            .envelopes;
        let current = newest.first().is_some_and(|e| {
            Contact::decode_for(&e.message, &address).is_ok_and(|c| match c {
                Contact::V1(b) => b.identity_key().to_uncompressed() == own_key,
                Contact::V2(b) => b.identity_key().to_uncompressed() == own_key,
            })
        });
        if !current {
            // The legacy (V1) bundle for V1-era clients, then the V2 bundle,
            // newest, which current SDKs read first (given a V1 bundle only,
            // xmtp-js would start a V1 conversation).
            let public = state.v1.public_bundle().map_err(V2Error::from)?;
            self.renew_token(state)?;
            let now = now_ns();
            let contact_topic = topic::contact_topic(&address);
            self.inner
                .api
                .publish(vec![
                    Envelope {
                        content_topic: contact_topic.clone(),
                        timestamp_ns: now,
                        message: contact::encode_v1(&public),
                    },
                    Envelope {
                        content_topic: contact_topic,
                        timestamp_ns: now + 1,
                        message: contact::encode_v2(state.v2.public_bundle().proto()),
                    },
                ])
                .await?;
        }
        Ok(())
    }

    /// The verified XMTP contact of `address`, if it published one.
    pub(crate) async fn v2_contact(
        &self,
        address: &Address,
    ) -> Result<Option<Contact>, ClientError> {
        let envelopes = self
            .inner
            .api
            .query(query_newest(topic::contact_topic(address), 10))
            .await?
            .envelopes;
        for envelope in envelopes {
            match Contact::decode_for(&envelope.message, address) {
                Ok(contact) => return Ok(Some(contact)),
                Err(e) => {
                    tracing::warn!(%address, error = %e, "ignoring an invalid contact bundle")
                }
            }
        }
        Ok(None)
    }

    /// Whether `address` can be reached over XMTP V2 (it published a valid
    /// contact bundle).
    pub async fn can_message_v2(&self, address: &str) -> Result<bool, ClientError> {
        let peer = parse_address(address)?;
        Ok(self.v2_contact(&peer).await?.is_some())
    }

    /// Sends text over XMTP V2 (see [`Client::send_v2`]).
    pub async fn send_v2_text(
        &self,
        peer_address: &str,
        text: &str,
    ) -> Result<Message, ClientError> {
        self.send_v2(peer_address, encode_text(text)).await
    }

    /// Sends content to `peer_address` over XMTP V2, in the conversation
    /// without context shared with the peer, starting it (a deterministic
    /// invitation sealed to both invite topics, as XMTP's SDKs do) if there is
    /// none. The message is stored and queued in one transaction, then
    /// published; on a publish failure the error is [`ClientError::Queued`].
    pub async fn send_v2(
        &self,
        peer_address: &str,
        content: EncodedContent,
    ) -> Result<Message, ClientError> {
        let state = self.require_v2()?;
        let peer = parse_address(peer_address)?;
        self.renew_token(&state)?;
        let conversation = self.v2_conversation_with(&state, &peer).await?;
        self.send_v2_in(&state, &conversation, content).await
    }

    /// Sends content in an XMTP conversation given by its topic: a V2
    /// conversation's own topic, or a V1 topic (answered over V2, since this
    /// client writes no V1 messages).
    pub(crate) async fn send_v2_to_topic(
        &self,
        topic: &str,
        content: EncodedContent,
    ) -> Result<Message, ClientError> {
        let state = self.require_v2()?;
        self.renew_token(&state)?;
        let (v2, any) = self.inner.storage.transaction(|tx| {
            Ok::<_, StorageError>((tx.v2_conversation(topic)?, tx.conversation(topic)?))
        })?;
        match (v2, any) {
            (Some(conversation), _) => self.send_v2_in(&state, &conversation, content).await,
            (None, Some(c)) if c.kind == KIND_V1 => {
                let peer = c.peer_address.ok_or(StorageError::Corrupt {
                    what: "conversation peer",
                })?;
                self.send_v2(&peer, content).await
            }
            _ => Err(ClientError::UnknownConversation(
                topic.chars().take(100).collect(),
            )),
        }
    }

    async fn send_v2_in(
        &self,
        state: &V2State,
        conversation: &V2ConversationRecord,
        content: EncodedContent,
    ) -> Result<Message, ClientError> {
        let peer = &conversation.peer_address;
        let invitation =
            InvitationV1::decode(conversation.invitation.as_slice()).map_err(|_| {
                StorageError::Corrupt {
                    what: "stored invitation",
                }
            })?;
        let key = invitation::key_material(&invitation).map_err(V2Error::from)?;
        let sent_ns = now_ns();
        let payload = content.encode_to_vec();
        let encoded = v2message::encode_v2(
            &mut OsRng,
            &state.v2,
            &conversation.topic,
            key,
            sent_ns,
            &payload,
            Some(true),
        )
        .map_err(V2Error::from)?;
        let message_id =
            hex::decode(&encoded.id).map_err(|_| StorageError::Corrupt { what: "message id" })?;
        let record = MessageRecord {
            seq: 0,
            message_id: message_id.clone(),
            conversation_id: conversation.topic.clone(),
            sender_address: self.inner.address.to_checksum(),
            sender_installation: state.v1.identity_key().point().to_uncompressed().to_vec(),
            sent_ns,
            received_ns: sent_ns,
            content: payload,
            conversation_kind: KIND_V2.into(),
        };
        let stored = self.inner.storage.transaction(|tx| {
            tx.touch_conversation(
                &record.conversation_id,
                KIND_V2,
                Some(peer),
                sent_ns,
                now_ns(),
            )?;
            tx.insert_message(&record)?;
            tx.push_outbox(
                &conversation.topic,
                sent_ns,
                &encoded.bytes,
                Some(&message_id),
                now_ns(),
            )?;
            tx.message(&message_id)
        })?;
        self.notify_stored();
        let stored = stored.ok_or(StorageError::Corrupt {
            what: "message just stored",
        })?;
        let message = Message::from_record(stored)?;
        if let Err(e) = self.flush_outbox().await {
            return Err(ClientError::Queued {
                message_id: message.id.clone(),
                reason: e.to_string(),
            });
        }
        Ok(message)
    }

    /// The conversation with `peer`, from the database, else from the
    /// invite topic, else a new one.
    async fn v2_conversation_with(
        &self,
        state: &V2State,
        peer: &Address,
    ) -> Result<V2ConversationRecord, ClientError> {
        let peer_text = peer.to_checksum();
        let find = || {
            self.inner
                .storage
                .transaction(|tx| tx.v2_conversation_with(&peer_text))
        };
        if let Some(c) = find()? {
            return Ok(c);
        }
        // The peer may have invited us since the last sync.
        self.sync_invites(state).await?;
        if let Some(c) = find()? {
            return Ok(c);
        }
        let contact = self
            .v2_contact(peer)
            .await?
            .ok_or_else(|| ClientError::V2(V2Error::NoContact(peer_text.clone())))?;
        let peer_bundle = contact.to_signed().map_err(V2Error::from)?;
        let invite = invitation::deterministic_invitation(&state.v2, &peer_bundle, None)
            .map_err(V2Error::from)?;
        let created_ns = now_ns();
        let sealed = invitation::seal(&mut OsRng, &state.v2, &peer_bundle, created_ns, &invite)
            .map_err(V2Error::from)?;
        let record = V2ConversationRecord {
            topic: invite.topic.clone(),
            peer_address: peer_text.clone(),
            context_id: None,
            created_ns,
            invitation: zeroize::Zeroizing::new(invite.encode_to_vec()),
        };
        let own_invites = topic::invite_topic(&state.address());
        self.inner.storage.transaction(|tx| {
            tx.insert_v2_conversation(&record)?;
            tx.touch_conversation(
                &record.topic,
                KIND_V2,
                Some(&peer_text),
                created_ns,
                now_ns(),
            )?;
            // Both copies carry the invitation's creation time, which the
            // reader checks against the sealed header.
            tx.push_outbox(
                &topic::invite_topic(peer),
                created_ns,
                &sealed,
                None,
                now_ns(),
            )?;
            tx.push_outbox(&own_invites, created_ns, &sealed, None, now_ns())?;
            Ok::<_, StorageError>(())
        })?;
        self.flush_outbox().await?;
        tracing::info!(peer = %peer_text, topic = %record.topic, "started an XMTP V2 conversation");
        let stored = self
            .inner
            .storage
            .transaction(|tx| tx.v2_conversation(&record.topic))?;
        Ok(stored.unwrap_or(record))
    }

    /// Sends content to an address over the best protocol both sides share:
    /// our Olm sessions when the peer has registered installations, else XMTP
    /// V2 when it has an XMTP contact bundle (and V2 is enabled here).
    pub async fn send_auto(
        &self,
        peer_address: &str,
        content: EncodedContent,
    ) -> Result<Message, ClientError> {
        match self.send(peer_address, content.clone()).await {
            Err(ClientError::PeerNotRegistered(who)) => {
                if self.v2_state().is_none() {
                    return Err(ClientError::PeerNotRegistered(who));
                }
                match self.send_v2(peer_address, content).await {
                    Err(ClientError::V2(V2Error::NoContact(_))) => {
                        Err(ClientError::PeerNotRegistered(who))
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Text over the best protocol (see [`Client::send_auto`]).
    pub async fn send_text_auto(
        &self,
        peer_address: &str,
        text: &str,
    ) -> Result<Message, ClientError> {
        self.send_auto(peer_address, encode_text(text)).await
    }

    /// Messages with an address over every protocol (Olm, XMTP V2 and V1),
    /// merged by sent time; each says which protocol it travelled over.
    pub fn messages_with(
        &self,
        peer_address: &str,
        page: &MessagePage,
    ) -> Result<Vec<Message>, ClientError> {
        let peer = parse_address(peer_address)?.to_checksum();
        let records = self
            .inner
            .storage
            .transaction(|tx| tx.messages_with_peer(&peer, page))?;
        records
            .into_iter()
            .map(|r| Message::from_record(r).map_err(ClientError::from))
            .collect()
    }

    /// The topics a V2-enabled client follows: its invite and intro topics and
    /// every V1/V2 conversation topic.
    pub(crate) fn v2_topics(&self) -> Result<Vec<String>, ClientError> {
        let Some(state) = self.v2_state() else {
            return Ok(Vec::new());
        };
        let address = state.address();
        let mut topics = vec![topic::invite_topic(&address), topic::intro_topic(&address)];
        self.inner.storage.transaction(|tx| {
            for c in tx.conversations()? {
                if c.kind == KIND_V2 || c.kind == KIND_V1 {
                    topics.push(c.id);
                }
            }
            Ok::<_, StorageError>(())
        })?;
        Ok(topics)
    }

    /// Reads the invite topic, then every conversation topic, from their
    /// cursors. Part of [`Client::sync`] once V2 is enabled.
    pub async fn sync_v2(&self) -> Result<SyncSummary, ClientError> {
        let state = self.require_v2()?;
        let mut summary = self.sync_invites(&state).await?;
        let address = state.address();
        let intro = self
            .sync_topic(&state, topic::intro_topic(&address))
            .await?;
        add(&mut summary, intro);
        // Every conversation topic's first page in batched queries; only a
        // topic whose page came back full is paged on its own.
        let topics: Vec<String> = self.v2_topics()?.into_iter().skip(2).collect();
        let requests = topics
            .iter()
            .map(|t| self.sync_request(t))
            .collect::<Result<Vec<_>, _>>()?;
        let responses = self.inner.api.batch_query(requests).await?;
        for (t, response) in topics.into_iter().zip(responses) {
            let full = response.envelopes.len() >= SYNC_PAGE as usize;
            for envelope in &response.envelopes {
                summary.envelopes += 1;
                count(&mut summary, self.accept_v2(&state, envelope)?);
            }
            if full {
                let s = self.sync_topic(&state, t).await?;
                add(&mut summary, s);
            }
        }
        self.notify_stored();
        Ok(summary)
    }

    /// The first page of a topic from its cursor, minus the look-back.
    fn sync_request(&self, topic: &str) -> Result<QueryRequest, ClientError> {
        let cursor = self.inner.storage.transaction(|tx| tx.cursor(topic))?;
        let lookback =
            u64::try_from(self.inner.options.sync_lookback.as_nanos()).unwrap_or(u64::MAX);
        let start = cursor
            .map(|c| c.saturating_sub(lookback).max(1))
            .unwrap_or(0);
        Ok(QueryRequest {
            content_topics: vec![topic.to_owned()],
            start_time_ns: start,
            end_time_ns: 0,
            paging_info: Some(PagingInfo {
                limit: SYNC_PAGE,
                cursor: None,
                direction: SortDirection::Ascending as i32,
            }),
        })
    }

    async fn sync_invites(&self, state: &V2State) -> Result<SyncSummary, ClientError> {
        self.sync_topic(state, topic::invite_topic(&state.address()))
            .await
    }

    async fn sync_topic(&self, state: &V2State, topic: String) -> Result<SyncSummary, ClientError> {
        let request = self.sync_request(&topic)?;
        let mut summary = SyncSummary::default();
        let mut envelopes = self.inner.api.query_envelopes(request);
        while let Some(envelope) = envelopes.next().await {
            summary.envelopes += 1;
            count(&mut summary, self.accept_v2(state, &envelope?)?);
        }
        drop(envelopes);
        self.notify_stored();
        Ok(summary)
    }

    /// Processes one envelope of a V1/V2 topic (invite, intro or
    /// conversation) from any source. Returns whether it started a new
    /// conversation (whose topic must then be followed) and what it stored.
    pub(crate) fn process_v2_envelope(
        &self,
        envelope: &Envelope,
    ) -> Result<(bool, EnvelopeResult), ClientError> {
        let state = self.require_v2()?;
        let accepted = self.accept_v2(&state, envelope)?;
        self.notify_stored();
        Ok(match accepted {
            V2Accepted::Conversation => (true, EnvelopeResult::Duplicate),
            V2Accepted::Message(m) => (false, EnvelopeResult::New(m)),
            V2Accepted::Failed(reason) => (false, EnvelopeResult::Failed(reason)),
            V2Accepted::Duplicate => (false, EnvelopeResult::Duplicate),
        })
    }

    fn accept_v2(&self, state: &V2State, envelope: &Envelope) -> Result<V2Accepted, ClientError> {
        let digest = envelope_digest(envelope);
        let now = now_ns();
        let mut cache = state
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.inner.storage.transaction_relaxed(|tx| {
            if tx.is_processed(&digest)? {
                return Ok(V2Accepted::Duplicate);
            }
            let result = accept_v2_envelope(tx, state, &mut cache, envelope, now)?;
            let outcome = match &result {
                V2Accepted::Failed(reason) => {
                    tracing::warn!(topic = %envelope.content_topic, %reason, "refused an XMTP V1/V2 envelope");
                    EnvelopeOutcome::Failed(reason.clone())
                }
                _ => EnvelopeOutcome::Accepted,
            };
            tx.mark_processed(
                &ProcessedEnvelope {
                    digest: digest.clone(),
                    topic: envelope.content_topic.clone(),
                    timestamp_ns: envelope.timestamp_ns,
                    outcome,
                },
                now,
            )?;
            tx.advance_cursor(&envelope.content_topic, envelope.timestamp_ns.min(now))?;
            Ok::<_, ClientError>(result)
        })
    }
}

fn count(summary: &mut SyncSummary, accepted: V2Accepted) {
    match accepted {
        V2Accepted::Message(_) => summary.new_messages += 1,
        V2Accepted::Failed(_) => summary.failed += 1,
        V2Accepted::Conversation | V2Accepted::Duplicate => {}
    }
}

fn add(total: &mut SyncSummary, more: SyncSummary) {
    total.envelopes += more.envelopes;
    total.new_messages += more.new_messages;
    total.failed += more.failed;
}

fn wallet_or_v2(e: IdentityError) -> ClientError {
    match e {
        IdentityError::Wallet(w) => ClientError::Wallet(w.to_string()),
        other => ClientError::V2(V2Error::Identity(other)),
    }
}

/// What one V1/V2 envelope led to.
enum V2Accepted {
    /// A new conversation (from an invitation).
    Conversation,
    /// A new message.
    Message(Box<Message>),
    /// Seen before (the envelope, or the message under another topic).
    Duplicate,
    /// Refused, with the reason.
    Failed(String),
}

/// The receive step for V1/V2 envelopes, sans I/O: decides by topic, checks
/// everything, and writes the conversation or message in `tx`.
fn accept_v2_envelope(
    tx: &StorageTx<'_>,
    state: &V2State,
    cache: &mut BundleCache,
    envelope: &Envelope,
    now: u64,
) -> Result<V2Accepted, ClientError> {
    let own = state.address();
    let topic = envelope.content_topic.as_str();
    if topic == topic::invite_topic(&own) {
        return accept_invitation(tx, state, envelope, now);
    }
    if topic == topic::intro_topic(&own) || topic.starts_with("/xmtp/0/dm-") {
        return accept_v1(tx, state, envelope, now);
    }
    let Some(conversation) = tx.v2_conversation(topic)? else {
        return Ok(V2Accepted::Failed(format!(
            "no known XMTP V2 conversation has topic {topic}"
        )));
    };
    let invitation = InvitationV1::decode(conversation.invitation.as_slice()).map_err(|_| {
        StorageError::Corrupt {
            what: "stored invitation",
        }
    })?;
    let key = invitation::key_material(&invitation).map_err(V2Error::from)?;
    let decoded = match v2message::decode_v2_cached(&envelope.message, topic, key, cache) {
        Ok(d) => d,
        Err(e) => return Ok(V2Accepted::Failed(format!("XMTP V2 message refused: {e}"))),
    };
    let peer: Address = match conversation.peer_address.parse() {
        Ok(a) => a,
        Err(_) => {
            return Err(StorageError::Corrupt {
                what: "conversation peer",
            }
            .into())
        }
    };
    if decoded.sender_address != own && decoded.sender_address != peer {
        return Ok(V2Accepted::Failed(format!(
            "XMTP V2 message signed by {}, who is not a party to the conversation",
            decoded.sender_address
        )));
    }
    let content = match EncodedContent::decode(decoded.payload.as_slice()) {
        Ok(c) => c,
        Err(_) => {
            return Ok(V2Accepted::Failed(
                "XMTP V2 content is not an EncodedContent".into(),
            ))
        }
    };
    let id = hex::decode(&decoded.id).map_err(|_| StorageError::Corrupt { what: "message id" })?;
    store(
        tx,
        MessageRecord {
            seq: 0,
            message_id: id,
            conversation_id: conversation.topic.clone(),
            sender_address: decoded.sender_address.to_checksum(),
            sender_installation: decoded.sender.identity_key().to_uncompressed().to_vec(),
            sent_ns: decoded.sent_ns,
            received_ns: now,
            content: content.encode_to_vec(),
            conversation_kind: KIND_V2.into(),
        },
        &conversation.peer_address,
        now,
    )
}

fn accept_invitation(
    tx: &StorageTx<'_>,
    state: &V2State,
    envelope: &Envelope,
    now: u64,
) -> Result<V2Accepted, ClientError> {
    let opened = match invitation::open(&state.v2, &envelope.message, Some(envelope.timestamp_ns)) {
        Ok(o) => o,
        Err(e) => return Ok(V2Accepted::Failed(format!("invitation refused: {e}"))),
    };
    let topic = &opened.invitation.topic;
    if !topic.starts_with("/xmtp/0/m-") || !topic::is_valid_topic(topic) {
        return Ok(V2Accepted::Failed(format!(
            "invitation names an invalid conversation topic {:?}",
            topic.chars().take(80).collect::<String>()
        )));
    }
    let peer = opened.peer_address();
    if peer == state.address() {
        return Ok(V2Accepted::Failed(
            "invitation from this address to itself".into(),
        ));
    }
    let record = V2ConversationRecord {
        topic: topic.clone(),
        peer_address: peer.to_checksum(),
        context_id: opened
            .invitation
            .context
            .as_ref()
            .map(|c| c.conversation_id.clone())
            .filter(|c| !c.is_empty()),
        created_ns: opened.created_ns,
        invitation: zeroize::Zeroizing::new(opened.invitation.encode_to_vec()),
    };
    if let Some(existing) = tx.v2_conversation(topic)? {
        // The first invitation to a topic wins; a later one for the same
        // topic must come from the same peer.
        if existing.peer_address != record.peer_address {
            return Ok(V2Accepted::Failed(format!(
                "invitation from {} reuses the topic of a conversation with {}",
                record.peer_address, existing.peer_address
            )));
        }
        return Ok(V2Accepted::Duplicate);
    }
    tx.insert_v2_conversation(&record)?;
    tx.touch_conversation(
        topic,
        KIND_V2,
        Some(&record.peer_address),
        record.created_ns,
        now,
    )?;
    Ok(V2Accepted::Conversation)
}

fn accept_v1(
    tx: &StorageTx<'_>,
    state: &V2State,
    envelope: &Envelope,
    now: u64,
) -> Result<V2Accepted, ClientError> {
    let decoded = match v2message::decode_v1(&state.v1, &envelope.message) {
        Ok(d) => d,
        Err(e) => return Ok(V2Accepted::Failed(format!("XMTP V1 message refused: {e}"))),
    };
    let sender = decoded.sender.wallet_address();
    let recipient = decoded.recipient.wallet_address();
    let peer = if decoded.viewer_is_sender {
        recipient
    } else {
        sender
    };
    let conversation = topic::direct_message_topic_v1(&sender, &recipient);
    let own = state.address();
    let topic = envelope.content_topic.as_str();
    if topic != conversation && topic != topic::intro_topic(&own) {
        return Ok(V2Accepted::Failed(format!(
            "XMTP V1 message between {sender} and {recipient} published on {topic}"
        )));
    }
    let content = match EncodedContent::decode(decoded.payload.as_slice()) {
        Ok(c) => c,
        Err(_) => {
            return Ok(V2Accepted::Failed(
                "XMTP V1 content is not an EncodedContent".into(),
            ))
        }
    };
    let id = hex::decode(&decoded.id).map_err(|_| StorageError::Corrupt { what: "message id" })?;
    let sent_ns = decoded.sent_ms.saturating_mul(1_000_000);
    store(
        tx,
        MessageRecord {
            seq: 0,
            message_id: id,
            conversation_id: conversation,
            sender_address: sender.to_checksum(),
            sender_installation: decoded.sender.identity_key().to_uncompressed().to_vec(),
            sent_ns,
            received_ns: now,
            content: content.encode_to_vec(),
            conversation_kind: KIND_V1.into(),
        },
        &peer.to_checksum(),
        now,
    )
}

fn store(
    tx: &StorageTx<'_>,
    record: MessageRecord,
    peer: &str,
    now: u64,
) -> Result<V2Accepted, ClientError> {
    let kind = record.conversation_kind.clone();
    tx.touch_conversation(
        &record.conversation_id,
        &kind,
        Some(peer),
        record.sent_ns,
        now,
    )?;
    if !tx.insert_message(&record)? {
        return Ok(V2Accepted::Duplicate);
    }
    let stored = tx
        .message(&record.message_id)?
        .ok_or(StorageError::Corrupt {
            what: "message just stored",
        })?;
    Ok(V2Accepted::Message(Box::new(Message::from_record(stored)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        messages::Protocol,
        storage::{DatabaseKey, Storage},
    };
    use xmtp_cryptography::{v2::private_key::IdentityRequest, wallet::LocalWallet};

    fn identity(wallet: &LocalWallet) -> V2State {
        let request = IdentityRequest::new(&mut OsRng, 1_700_000_000_000);
        let sig = wallet.sign_text_sync(request.text()).unwrap();
        V2State::new(
            request
                .complete(&mut OsRng, sig.as_bytes(), Some(wallet.address()))
                .unwrap(),
        )
        .unwrap()
    }

    struct Pair {
        alice: V2State,
        bob: V2State,
        mallory: V2State,
        topic: String,
        sealed: Vec<u8>,
        created_ns: u64,
    }

    fn pair() -> Pair {
        let alice = identity(&LocalWallet::random());
        let bob = identity(&LocalWallet::random());
        let mallory = identity(&LocalWallet::random());
        let invite =
            invitation::deterministic_invitation(&alice.v2, bob.v2.public_bundle(), None).unwrap();
        let created_ns = 1_700_000_000_000_000_000;
        let sealed = invitation::seal(
            &mut OsRng,
            &alice.v2,
            bob.v2.public_bundle(),
            created_ns,
            &invite,
        )
        .unwrap();
        Pair {
            alice,
            bob,
            mallory,
            topic: invite.topic,
            sealed,
            created_ns,
        }
    }

    fn envelope(topic: &str, timestamp_ns: u64, message: Vec<u8>) -> Envelope {
        Envelope {
            content_topic: topic.into(),
            timestamp_ns,
            message,
        }
    }

    fn accept(storage: &Storage, state: &V2State, e: &Envelope) -> V2Accepted {
        let mut cache = BundleCache::new();
        storage
            .transaction(|tx| accept_v2_envelope(tx, state, &mut cache, e, 1))
            .unwrap()
    }

    fn send(from: &V2State, topic: &str, key: &[u8], text: &str) -> Vec<u8> {
        v2message::encode_v2(
            &mut OsRng,
            &from.v2,
            topic,
            key,
            1_700_000_000_000_000_001,
            &encode_text(text).encode_to_vec(),
            Some(true),
        )
        .unwrap()
        .bytes
    }

    fn opened_key(p: &Pair) -> Vec<u8> {
        let opened = invitation::open(&p.bob.v2, &p.sealed, Some(p.created_ns)).unwrap();
        invitation::key_material(&opened.invitation)
            .unwrap()
            .to_vec()
    }

    #[test]
    fn invitation_then_messages_are_accepted_and_tampering_refused() {
        let p = pair();
        let storage = Storage::in_memory(&DatabaseKey::from_bytes([1; 32])).unwrap();
        let invites = topic::invite_topic(&p.bob.address());
        assert!(matches!(
            accept(
                &storage,
                &p.bob,
                &envelope(&invites, p.created_ns, p.sealed.clone())
            ),
            V2Accepted::Conversation
        ));
        let key = opened_key(&p);
        let good = send(&p.alice, &p.topic, &key, "hello bob");
        match accept(&storage, &p.bob, &envelope(&p.topic, 5, good.clone())) {
            V2Accepted::Message(m) => {
                assert_eq!(m.text().as_deref(), Some("hello bob"));
                assert_eq!(m.sender_address, p.alice.address().to_checksum());
                assert_eq!(m.protocol, Protocol::V2);
            }
            _ => panic!("a valid message must be stored"),
        }
        // The same message again (another envelope time) is a duplicate.
        assert!(matches!(
            accept(&storage, &p.bob, &envelope(&p.topic, 6, good.clone())),
            V2Accepted::Duplicate
        ));
        // A flipped ciphertext bit.
        let mut flipped = good.clone();
        let n = flipped.len();
        flipped[n - 40] ^= 1;
        assert!(matches!(
            accept(&storage, &p.bob, &envelope(&p.topic, 7, flipped)),
            V2Accepted::Failed(_)
        ));
        // A third party who learnt the key cannot speak in the conversation.
        let intruder = send(&p.mallory, &p.topic, &key, "I am alice");
        match accept(&storage, &p.bob, &envelope(&p.topic, 8, intruder)) {
            V2Accepted::Failed(reason) => assert!(reason.contains("not a party"), "{reason}"),
            _ => panic!("a non-party sender must be refused"),
        }
        // A message made for another conversation (its header names another
        // topic) is refused on this one.
        let other = send(&p.alice, "/xmtp/0/m-other/proto", &key, "elsewhere");
        assert!(matches!(
            accept(&storage, &p.bob, &envelope(&p.topic, 9, other)),
            V2Accepted::Failed(_)
        ));
        // Unknown topics and garbage.
        assert!(matches!(
            accept(
                &storage,
                &p.bob,
                &envelope("/xmtp/0/m-unknown/proto", 1, vec![1, 2, 3])
            ),
            V2Accepted::Failed(_)
        ));
        assert!(matches!(
            accept(&storage, &p.bob, &envelope(&invites, 1, vec![0xff; 40])),
            V2Accepted::Failed(_)
        ));
    }

    #[test]
    fn tampered_invitations_are_refused() {
        let p = pair();
        let storage = Storage::in_memory(&DatabaseKey::from_bytes([2; 32])).unwrap();
        let invites = topic::invite_topic(&p.bob.address());
        // Envelope time that differs from the sealed header's time.
        assert!(matches!(
            accept(
                &storage,
                &p.bob,
                &envelope(&invites, p.created_ns + 1, p.sealed.clone())
            ),
            V2Accepted::Failed(_)
        ));
        // A flipped bit anywhere in the last part (ciphertext).
        let mut flipped = p.sealed.clone();
        let n = flipped.len();
        flipped[n - 20] ^= 0x10;
        assert!(matches!(
            accept(&storage, &p.bob, &envelope(&invites, p.created_ns, flipped)),
            V2Accepted::Failed(_)
        ));
        // Sealed to someone else: Mallory cannot open it.
        let mallory_invites = topic::invite_topic(&p.mallory.address());
        assert!(matches!(
            accept(
                &storage,
                &p.mallory,
                &envelope(&mallory_invites, p.created_ns, p.sealed.clone())
            ),
            V2Accepted::Failed(_)
        ));
        storage
            .transaction(|tx| {
                assert!(tx.v2_conversations()?.is_empty());
                Ok::<_, StorageError>(())
            })
            .unwrap();
    }

    #[test]
    fn v1_messages_are_read_by_both_parties() {
        let p = pair();
        let storage = Storage::in_memory(&DatabaseKey::from_bytes([4; 32])).unwrap();
        let bob_public = xmtp_cryptography::v2::public_key::VerifiedPublicKeyBundle::verify(
            &p.bob.v1.public_bundle().unwrap(),
        )
        .unwrap();
        let sent = v2message::encode_v1(
            &mut OsRng,
            &p.alice.v1,
            &bob_public,
            1_700_000_000_000,
            &encode_text("v1 hello").encode_to_vec(),
        )
        .unwrap();
        let dm = topic::direct_message_topic_v1(&p.alice.address(), &p.bob.address());
        match accept(&storage, &p.bob, &envelope(&dm, 1, sent.bytes.clone())) {
            V2Accepted::Message(m) => {
                assert_eq!(m.text().as_deref(), Some("v1 hello"));
                assert_eq!(m.protocol, Protocol::V1);
                assert_eq!(m.sender_address, p.alice.address().to_checksum());
            }
            _ => panic!("a valid V1 message must be stored"),
        }
        // The copy on Bob's intro topic is the same message.
        let intro = topic::intro_topic(&p.bob.address());
        assert!(matches!(
            accept(&storage, &p.bob, &envelope(&intro, 1, sent.bytes.clone())),
            V2Accepted::Duplicate
        ));
        // On a topic that is not theirs, it is refused.
        assert!(matches!(
            accept(
                &storage,
                &p.bob,
                &envelope("/xmtp/0/dm-a-b/proto", 1, sent.bytes.clone())
            ),
            V2Accepted::Failed(_)
        ));
        // Mallory is not a party.
        let other = Storage::in_memory(&DatabaseKey::from_bytes([5; 32])).unwrap();
        assert!(matches!(
            accept(&other, &p.mallory, &envelope(&dm, 1, sent.bytes)),
            V2Accepted::Failed(_)
        ));
    }
}
