//! The secure channel (seed 000): XMTP carries one X3DH handshake, after
//! which two parties encrypt and decrypt locally with AES-256-GCM and send
//! `nonce` and `ciphertext` over any transport of their own.
//!
//! # Keys published in advance
//!
//! Each installation that enables the channel ([`Client::enable_secure_channel`],
//! also done by the first `encrypt` or `decrypt`) makes an X25519 identity key
//! IK and a signed pre-key SPK, signs `"xmtp-v3-x3dh-signed-pre-key" || IK || SPK`
//! with its installation Ed25519 key and publishes a `SecureChannelPreKey` on
//! `/xmtp/3/secure-channel-prekey-<hex installation id>/proto`. A peer trusts
//! it only if that installation is in the address's verified, unrevoked
//! installation set (its wallet signed the association) and the signature
//! verifies, so the responder's SPK is bound to the responder's wallet.
//!
//! # Handshake (first `encrypt` to a peer)
//!
//! ```text
//! R  = 32 random bytes (the channel root), C = 16 random bytes (the channel id)
//! for each verified installation B_i of the peer with a valid pre-key:
//!     SK_i, (IK_A, EK_A, SPK_Bi) = X3DH-initiate(IK_A, IK_Bi, SPK_Bi)          (xmtp_cryptography::x3dh)
//!     wrapped_i = AES-256-GCM-seal(HKDF(SK_i, "XMTP_X3DH_v1 initial message"), R,
//!                   AD = "xmtp-secure-channel/v1 root" || IK_A || IK_Bi || C
//!                        || addr_A || inst_A || addr_B || inst_Bi)
//!     SignedSecureChannelHandshake{ h_i, Ed25519_instA("xmtp-v3-secure-channel-handshake", h_i) }
//!         -> /xmtp/3/secure-channel-<hex inst_Bi>/proto
//! ```
//!
//! The responder accepts a handshake only if `inst_A` is a verified,
//! unrevoked installation of `addr_A` and the signature verifies: the
//! initiator's X3DH identity IK_A is thereby bound to its wallet. The channel
//! joins the initiating installation with every responder installation that
//! had published keys (each learns R); other installations of the initiator
//! do not share it and open their own channel when they first encrypt.
//! A responder processes pending handshakes when `decrypt` meets a channel
//! id it does not know (it syncs its handshake topic first).
//!
//! # Messages (local only, no network)
//!
//! ```text
//! n          = the sending installation's message number on this channel (0, 1, 2, ...)
//! epoch      = n / 2^20
//! K(s, e)    = HKDF-SHA256(salt = C, ikm = R, info = "xmtp-secure-channel/v1 message key" || inst_s || e as u32 BE)
//! nonce      = e as u32 BE || n as u64 BE                       (12 bytes)
//! AD         = "xmtp-secure-channel/v1" || 0x01 || C || direction (0x01 initiator->responder, 0x02 back)
//!              || addr_sender || inst_sender || addr_recipient || inst_initiator
//! ciphertext = 0x01 || C || inst_sender || AES-256-GCM(K(sender, epoch), nonce, plaintext, AD)
//! ```
//!
//! - Rotation: the key changes every 2^20 messages of a sender (a new epoch);
//!   each sending installation has its own keys, so two installations of the
//!   responder never share a key.
//! - Nonce uniqueness: nonces are counters, not random. `n` is taken from the
//!   stored counter and the incremented counter is committed before the
//!   ciphertext is returned, so a nonce is never used twice under a key, even
//!   across crashes (a crash can only skip numbers).
//! - Binding: the associated data names both addresses, the sending
//!   installation, the initiating installation, the channel and the
//!   direction, so a ciphertext presented with another `from_address`, as if
//!   sent the other way, or on another channel fails to authenticate.
//! - Replay: each receiver keeps, per sending installation, the highest `n`
//!   accepted and a 64-message window; a repeated or older number is refused.
//!
//! Channel state (R, counters, windows) is sealed in the client's database
//! under its database key, so a restarted client keeps its channels.
//!
//! Limits: there is no forward secrecy within a channel (R is kept for the
//! channel's life, as in seed 000) and the SPK is not rotated; a revocation
//! of a peer installation after the handshake does not close the channel.

use std::{collections::HashSet, sync::OnceLock};

use prost::Message as _;
use rand::RngCore;
use tokio::sync::Mutex as AsyncMutex;
use xmtp_cryptography::{
    aead,
    x3dh::{self, InitialMessage, PreKeyBundle, X25519KeyPair, X25519PublicKey},
    Address, InstallationId, SecretKey, X3dhError,
};
use xmtp_proto::xmtp::{
    message_api::v1::{Envelope, SortDirection},
    v3::message_contents::{
        SecureChannelHandshake, SecureChannelPreKey, SecureChannelReplayWindow, SecureChannelState,
        SignedSecureChannelHandshake,
    },
};
use zeroize::{Zeroize, Zeroizing};

use crate::{
    client::{parse_address, Client},
    contacts::SenderError,
    error::ClientError,
    storage::{StorageError, StorageTx},
    time::now_ns,
};

/// Length of the nonce returned with each sealed message.
pub const NONCE_LEN: usize = 12;
/// Length of a channel id.
pub const CHANNEL_ID_LEN: usize = 16;
/// Messages a sending installation sends under one key before the next epoch.
pub const EPOCH_LEN: u64 = 1 << 20;
/// Format version of the ciphertext header.
const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + CHANNEL_ID_LEN + 32;
const REPLAY_WINDOW: u64 = 64;
const AD_LABEL: &[u8] = b"xmtp-secure-channel/v1";
const ROOT_AD_LABEL: &[u8] = b"xmtp-secure-channel/v1 root";
const MESSAGE_KEY_INFO: &[u8] = b"xmtp-secure-channel/v1 message key";
/// Application signature context of a handshake.
pub const HANDSHAKE_CONTEXT: &str = "xmtp-v3-secure-channel-handshake";
const PRE_KEY_SECRET: &str = "secure_channel/identity";
const PUBLISHED_SECRET: &str = "secure_channel/published";
const CHANNEL_PREFIX: &str = "secure_channel/channel/";
const PEER_PREFIX: &str = "secure_channel/peer/";

/// Serialises handshakes (opening and processing), so that two concurrent
/// first calls do not open two channels.
fn handshake_lock() -> &'static AsyncMutex<()> {
    static LOCK: OnceLock<AsyncMutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| AsyncMutex::new(()))
}

/// The topic where an installation publishes its secure-channel pre-key.
pub fn pre_key_topic(installation: &InstallationId) -> String {
    format!(
        "/xmtp/3/secure-channel-prekey-{}/proto",
        installation.to_hex()
    )
}

/// The topic where an installation receives secure-channel handshakes.
pub fn handshake_topic(installation: &InstallationId) -> String {
    format!("/xmtp/3/secure-channel-{}/proto", installation.to_hex())
}

/// What [`Client::encrypt`] returns: send both to the peer, with your address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedMessage {
    /// The 12-byte AES-GCM nonce (epoch and message number).
    pub nonce: [u8; NONCE_LEN],
    /// Header (version, channel id, sending installation) and AES-GCM output.
    pub ciphertext: Vec<u8>,
}

/// Why a secure-channel call failed.
#[derive(Debug, thiserror::Error)]
pub enum SecureChannelError {
    /// The client failed (storage, network, an invalid address...).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A channel to one's own address was asked for.
    #[error("a secure channel needs another address than your own")]
    OwnAddress,
    /// None of the peer's installations published secure-channel keys.
    #[error("{0} has not enabled the secure channel; they must call enable_secure_channel (or encrypt/decrypt) once")]
    PeerNotEnabled(String),
    /// The nonce or ciphertext does not have the expected shape.
    #[error("malformed secure-channel message: {0}")]
    Malformed(&'static str),
    /// No handshake for this channel reached this installation.
    #[error("unknown secure channel: no handshake for it reached this installation")]
    UnknownChannel,
    /// The message is on a channel with another address than `from_address`.
    #[error("the message is not from {given}: its channel is with {expected}")]
    WrongSender {
        /// The channel's peer.
        expected: String,
        /// The address given to `decrypt`.
        given: String,
    },
    /// The sending installation is not part of the channel.
    #[error("installation {0} is not a member of this secure channel")]
    UnknownSenderInstallation(String),
    /// This message number was already accepted, or is too old to tell.
    #[error("message {0} was already received (replay) or is too old")]
    Replayed(u64),
    /// Authentication failed: tampered nonce, ciphertext or address.
    #[error("the message does not authenticate: it was altered, or is not from this sender")]
    Authentication,
    /// The sender's message numbers are exhausted (2^64 messages).
    #[error("this channel's message counter is exhausted; open a new channel")]
    Exhausted,
    /// Stored channel state is corrupt.
    #[error("stored secure-channel state is corrupt: {0}")]
    Corrupt(&'static str),
}

impl From<StorageError> for SecureChannelError {
    fn from(e: StorageError) -> Self {
        Self::Client(ClientError::from(e))
    }
}

impl From<xmtp_networking::ApiError> for SecureChannelError {
    fn from(e: xmtp_networking::ApiError) -> Self {
        Self::Client(ClientError::from(e))
    }
}

/// Logs a refused handshake; a refusal never stops a sync.
fn refuse(e: HandshakeError) -> Result<bool, SecureChannelError> {
    tracing::warn!(error = %e, "refused a secure-channel handshake");
    Ok(false)
}

/// Why a received handshake was refused (logged, never fatal to a sync).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Not a valid `SignedSecureChannelHandshake`.
    #[error("not a valid handshake encoding")]
    Decode,
    /// An unknown format version.
    #[error("handshake version {0} is not supported")]
    Version(u32),
    /// A field has the wrong length or form.
    #[error("malformed handshake field: {0}")]
    Field(&'static str),
    /// The handshake names another responder.
    #[error("the handshake is for another installation or address")]
    NotForUs,
    /// The initiator's installation is not granted by its claimed address.
    #[error("the initiating installation does not speak for its address: {0}")]
    Unauthentic(#[from] SenderError),
    /// The initiator's signature does not verify.
    #[error("the handshake signature does not verify")]
    Signature,
    /// X3DH failed (unknown pre-key, low-order key...).
    #[error("X3DH failed: {0}")]
    X3dh(#[from] X3dhError),
    /// The wrapped root does not open under the agreed key.
    #[error("the channel root does not open under the agreed key")]
    Unwrap,
}

/// This installation's secure-channel keys.
struct ChannelIdentity {
    identity: X25519KeyPair,
    signed_pre_key: X25519KeyPair,
    created_ns: u64,
}

impl ChannelIdentity {
    fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(72));
        out.extend_from_slice(self.identity.secret_bytes().as_slice());
        out.extend_from_slice(self.signed_pre_key.secret_bytes().as_slice());
        out.extend_from_slice(&self.created_ns.to_be_bytes());
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, SecureChannelError> {
        if bytes.len() != 72 {
            return Err(SecureChannelError::Corrupt("channel identity keys"));
        }
        let mut ik = [0u8; 32];
        let mut spk = [0u8; 32];
        ik.copy_from_slice(&bytes[..32]);
        spk.copy_from_slice(&bytes[32..64]);
        let mut created = [0u8; 8];
        created.copy_from_slice(&bytes[64..72]);
        let out = Self {
            identity: X25519KeyPair::from_secret_bytes(ik),
            signed_pre_key: X25519KeyPair::from_secret_bytes(spk),
            created_ns: u64::from_be_bytes(created),
        };
        ik.zeroize();
        spk.zeroize();
        Ok(out)
    }
}

/// Which message numbers of one sender were accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReplayWindow {
    highest: u64,
    /// Bit i: `highest - i` was accepted.
    seen: u64,
}

impl ReplayWindow {
    fn check(window: Option<&Self>, n: u64) -> Result<(), SecureChannelError> {
        let Some(w) = window else { return Ok(()) };
        if n > w.highest {
            return Ok(());
        }
        let age = w.highest - n;
        if age >= REPLAY_WINDOW || w.seen & (1 << age) != 0 {
            return Err(SecureChannelError::Replayed(n));
        }
        Ok(())
    }

    fn accept(window: Option<Self>, n: u64) -> Self {
        match window {
            None => Self {
                highest: n,
                seen: 1,
            },
            Some(w) if n > w.highest => {
                let shift = n - w.highest;
                let seen = if shift >= REPLAY_WINDOW {
                    1
                } else {
                    (w.seen << shift) | 1
                };
                Self { highest: n, seen }
            }
            Some(w) => Self {
                highest: w.highest,
                seen: w.seen | (1 << (w.highest - n)),
            },
        }
    }
}

/// A channel as this installation holds it.
struct Channel {
    id: [u8; CHANNEL_ID_LEN],
    root: SecretKey,
    initiator: bool,
    peer: Address,
    initiator_installation: InstallationId,
    peer_installations: Vec<InstallationId>,
    next_send: u64,
    windows: Vec<(InstallationId, ReplayWindow)>,
    created_ns: u64,
}

impl Channel {
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut state = SecureChannelState {
            channel_id: self.id.to_vec(),
            root: self.root.expose_secret().to_vec(),
            initiator: self.initiator,
            peer_address: self.peer.to_checksum(),
            initiator_installation_key: self.initiator_installation.as_bytes().to_vec(),
            peer_installation_keys: self
                .peer_installations
                .iter()
                .map(|i| i.as_bytes().to_vec())
                .collect(),
            next_send_counter: self.next_send,
            windows: self
                .windows
                .iter()
                .map(|(i, w)| SecureChannelReplayWindow {
                    installation_key: i.as_bytes().to_vec(),
                    highest: w.highest,
                    seen: w.seen,
                })
                .collect(),
            created_ns: self.created_ns,
        };
        let out = Zeroizing::new(state.encode_to_vec());
        state.root.zeroize();
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, SecureChannelError> {
        let corrupt = SecureChannelError::Corrupt;
        let mut state = SecureChannelState::decode(bytes).map_err(|_| corrupt("channel state"))?;
        let root = SecretKey::from_slice(&state.root).map_err(|_| corrupt("channel root"));
        state.root.zeroize();
        let installation = |b: &[u8]| InstallationId::from_slice(b).ok_or(corrupt("installation"));
        Ok(Self {
            id: state
                .channel_id
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("channel id"))?,
            root: root?,
            initiator: state.initiator,
            peer: state
                .peer_address
                .parse()
                .map_err(|_| corrupt("peer address"))?,
            initiator_installation: installation(&state.initiator_installation_key)?,
            peer_installations: state
                .peer_installation_keys
                .iter()
                .map(|k| installation(k))
                .collect::<Result<_, _>>()?,
            next_send: state.next_send_counter,
            windows: state
                .windows
                .iter()
                .map(|w| {
                    Ok((
                        installation(&w.installation_key)?,
                        ReplayWindow {
                            highest: w.highest,
                            seen: w.seen,
                        },
                    ))
                })
                .collect::<Result<_, SecureChannelError>>()?,
            created_ns: state.created_ns,
        })
    }

    fn window(&self, sender: &InstallationId) -> Option<ReplayWindow> {
        self.windows
            .iter()
            .find(|(i, _)| i == sender)
            .map(|(_, w)| *w)
    }

    fn set_window(&mut self, sender: InstallationId, window: ReplayWindow) {
        match self.windows.iter_mut().find(|(i, _)| *i == sender) {
            Some(entry) => entry.1 = window,
            None => self.windows.push((sender, window)),
        }
    }
}

fn message_key(channel: &Channel, sender: &InstallationId, epoch: u32) -> SecretKey {
    let mut info = Vec::with_capacity(MESSAGE_KEY_INFO.len() + 36);
    info.extend_from_slice(MESSAGE_KEY_INFO);
    info.extend_from_slice(sender.as_bytes());
    info.extend_from_slice(&epoch.to_be_bytes());
    SecretKey::derive(&channel.id, channel.root.expose_secret(), &info)
}

/// `AD` of a message (see the module doc).
fn message_ad(
    channel_id: &[u8; CHANNEL_ID_LEN],
    from_initiator: bool,
    sender: &Address,
    sender_installation: &InstallationId,
    recipient: &Address,
    initiator_installation: &InstallationId,
) -> Vec<u8> {
    let mut ad = Vec::with_capacity(AD_LABEL.len() + 2 + CHANNEL_ID_LEN + 1 + 20 + 32 + 20 + 32);
    ad.extend_from_slice(AD_LABEL);
    ad.push(VERSION);
    ad.extend_from_slice(channel_id);
    ad.push(if from_initiator { 0x01 } else { 0x02 });
    ad.extend_from_slice(sender.as_bytes());
    ad.extend_from_slice(sender_installation.as_bytes());
    ad.extend_from_slice(recipient.as_bytes());
    ad.extend_from_slice(initiator_installation.as_bytes());
    ad
}

/// `AD` of the wrapped root (see the module doc).
fn root_ad(
    x3dh_ad: &[u8],
    channel_id: &[u8],
    initiator: &Address,
    initiator_installation: &InstallationId,
    responder: &Address,
    responder_installation: &InstallationId,
) -> Vec<u8> {
    let mut ad = Vec::with_capacity(ROOT_AD_LABEL.len() + x3dh_ad.len() + 16 + 104);
    ad.extend_from_slice(ROOT_AD_LABEL);
    ad.extend_from_slice(x3dh_ad);
    ad.extend_from_slice(channel_id);
    ad.extend_from_slice(initiator.as_bytes());
    ad.extend_from_slice(initiator_installation.as_bytes());
    ad.extend_from_slice(responder.as_bytes());
    ad.extend_from_slice(responder_installation.as_bytes());
    ad
}

fn nonce_for(n: u64) -> Result<(u32, [u8; NONCE_LEN]), SecureChannelError> {
    let epoch = u32::try_from(n / EPOCH_LEN).map_err(|_| SecureChannelError::Exhausted)?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..4].copy_from_slice(&epoch.to_be_bytes());
    nonce[4..].copy_from_slice(&n.to_be_bytes());
    Ok((epoch, nonce))
}

fn parse_nonce(nonce: &[u8]) -> Result<(u32, u64, [u8; NONCE_LEN]), SecureChannelError> {
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| SecureChannelError::Malformed("the nonce must be 12 bytes"))?;
    let mut e = [0u8; 4];
    e.copy_from_slice(&nonce[..4]);
    let mut c = [0u8; 8];
    c.copy_from_slice(&nonce[4..]);
    let (epoch, n) = (u32::from_be_bytes(e), u64::from_be_bytes(c));
    if u64::from(epoch) != n / EPOCH_LEN {
        return Err(SecureChannelError::Authentication);
    }
    Ok((epoch, n, nonce))
}

/// The header of a ciphertext: channel id and sending installation.
fn parse_header(
    ciphertext: &[u8],
) -> Result<([u8; CHANNEL_ID_LEN], InstallationId, &[u8]), SecureChannelError> {
    if ciphertext.len() < HEADER_LEN {
        return Err(SecureChannelError::Malformed("the ciphertext is too short"));
    }
    let (header, body) = ciphertext.split_at(HEADER_LEN);
    if header[0] != VERSION {
        return Err(SecureChannelError::Malformed("unknown ciphertext version"));
    }
    let mut id = [0u8; CHANNEL_ID_LEN];
    id.copy_from_slice(&header[1..1 + CHANNEL_ID_LEN]);
    let sender = InstallationId::from_slice(&header[1 + CHANNEL_ID_LEN..])
        .ok_or(SecureChannelError::Malformed("bad sending installation"))?;
    Ok((id, sender, body))
}

fn channel_name(id: &[u8]) -> String {
    format!("{CHANNEL_PREFIX}{}", hex::encode(id))
}

fn peer_name(peer: &Address) -> String {
    format!("{PEER_PREFIX}{}", peer.to_checksum())
}

fn load_channel(tx: &StorageTx<'_>, id: &[u8]) -> Result<Option<Channel>, SecureChannelError> {
    tx.secret(&channel_name(id))?
        .map(|bytes| Channel::decode(&bytes))
        .transpose()
}

fn save_channel(tx: &StorageTx<'_>, channel: &Channel) -> Result<(), SecureChannelError> {
    tx.put_secret(&channel_name(&channel.id), &channel.encode())?;
    Ok(())
}

fn load_identity(tx: &StorageTx<'_>) -> Result<Option<ChannelIdentity>, SecureChannelError> {
    tx.secret(PRE_KEY_SECRET)?
        .map(|bytes| ChannelIdentity::from_bytes(&bytes))
        .transpose()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::thread_rng().fill_bytes(&mut out);
    out
}

/// A verified pre-key of one of the peer's installations.
fn verify_pre_key(installation: &InstallationId, envelope: &Envelope) -> Option<PreKeyBundle> {
    let p = SecureChannelPreKey::decode(envelope.message.as_slice()).ok()?;
    if p.version != 1 || p.installation_key.as_slice() != installation.as_bytes() {
        return None;
    }
    let bundle = PreKeyBundle {
        identity_key: X25519PublicKey::from_bytes(p.identity_key.as_slice().try_into().ok()?),
        signing_key: *installation,
        signed_pre_key: X25519PublicKey::from_bytes(p.signed_pre_key.as_slice().try_into().ok()?),
        signed_pre_key_signature: p.signature.as_slice().try_into().ok()?,
        one_time_pre_key: None,
    };
    bundle.verify().ok()?;
    Some(bundle)
}

impl Client {
    /// Makes and publishes this installation's secure-channel keys, once, so
    /// that peers can open channels to it. `encrypt` and `decrypt` call it too.
    pub async fn enable_secure_channel(&self) -> Result<(), SecureChannelError> {
        self.ensure_not_revoked()?;
        let storage = &self.inner.storage;
        if storage
            .transaction(|tx| tx.secret(PUBLISHED_SECRET))?
            .is_some()
        {
            return Ok(());
        }
        let identity = match storage.transaction(load_identity)? {
            Some(identity) => identity,
            None => {
                let identity = ChannelIdentity {
                    identity: X25519KeyPair::random(),
                    signed_pre_key: X25519KeyPair::random(),
                    created_ns: now_ns(),
                };
                storage.transaction(|tx| {
                    tx.put_secret(PRE_KEY_SECRET, &identity.to_bytes())
                        .map_err(SecureChannelError::from)
                })?;
                identity
            }
        };
        let ik = identity.identity.public_key();
        let spk = identity.signed_pre_key.public_key();
        let signature = self.inner.keys.lock().await.sign_x3dh_pre_key(&ik, &spk);
        let announcement = SecureChannelPreKey {
            version: 1,
            installation_key: self.inner.installation_id.as_bytes().to_vec(),
            identity_key: ik.as_bytes().to_vec(),
            signed_pre_key: spk.as_bytes().to_vec(),
            signature: signature.to_vec(),
            created_ns: identity.created_ns,
        };
        self.inner
            .api
            .publish(vec![Envelope {
                content_topic: pre_key_topic(&self.inner.installation_id),
                timestamp_ns: identity.created_ns,
                message: announcement.encode_to_vec(),
            }])
            .await?;
        storage.transaction(|tx| {
            tx.put_secret(PUBLISHED_SECRET, &now_ns().to_be_bytes())
                .map_err(SecureChannelError::from)
        })?;
        tracing::info!(installation = %self.inner.installation_id, "published secure-channel keys");
        Ok(())
    }

    /// Encrypts `plaintext` for `peer_address`. The first call to a peer runs
    /// the X3DH handshake over XMTP; later calls use no network at all.
    pub async fn encrypt(
        &self,
        plaintext: &[u8],
        peer_address: &str,
    ) -> Result<SealedMessage, SecureChannelError> {
        let peer = parse_address(peer_address)?;
        if peer == self.inner.address {
            return Err(SecureChannelError::OwnAddress);
        }
        let storage = &self.inner.storage;
        let known = storage.transaction(|tx| tx.secret(&peer_name(&peer)))?;
        let channel_id = match known {
            Some(id) => id.to_vec(),
            None => self.open_channel(&peer).await?.to_vec(),
        };
        let me = self.inner.installation_id;
        let address = self.inner.address;
        storage.transaction(|tx| {
            let mut channel = load_channel(tx, &channel_id)?
                .ok_or(SecureChannelError::Corrupt("channel index"))?;
            let n = channel.next_send;
            let (epoch, nonce) = nonce_for(n)?;
            channel.next_send = n.checked_add(1).ok_or(SecureChannelError::Exhausted)?;
            let key = message_key(&channel, &me, epoch);
            let ad = message_ad(
                &channel.id,
                channel.initiator,
                &address,
                &me,
                &channel.peer,
                &channel.initiator_installation,
            );
            let body = aead::encrypt_with_nonce(&key, &nonce, &ad, plaintext)
                .map_err(|_| SecureChannelError::Malformed("the plaintext is too long"))?;
            // The counter is committed with this transaction, before the
            // ciphertext leaves: a nonce is never reused under a key.
            save_channel(tx, &channel)?;
            let mut ciphertext = Vec::with_capacity(HEADER_LEN + body.len());
            ciphertext.push(VERSION);
            ciphertext.extend_from_slice(&channel.id);
            ciphertext.extend_from_slice(me.as_bytes());
            ciphertext.extend_from_slice(&body);
            Ok(SealedMessage { nonce, ciphertext })
        })
    }

    /// Decrypts a message made by the peer's [`Client::encrypt`]. When the
    /// channel is new, pending handshakes are fetched first; otherwise no
    /// network is used. Tampering, a wrong `from_address` and replays are
    /// refused.
    pub async fn decrypt(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
        from_address: &str,
    ) -> Result<Vec<u8>, SecureChannelError> {
        let from = parse_address(from_address)?;
        let (channel_id, sender, body) = parse_header(ciphertext)?;
        let (epoch, n, nonce) = parse_nonce(nonce)?;
        let storage = &self.inner.storage;
        if storage
            .transaction(|tx| load_channel(tx, &channel_id))?
            .is_none()
        {
            self.sync_secure_channels().await?;
        }
        let address = self.inner.address;
        storage.transaction(|tx| {
            let mut channel =
                load_channel(tx, &channel_id)?.ok_or(SecureChannelError::UnknownChannel)?;
            if channel.peer != from {
                return Err(SecureChannelError::WrongSender {
                    expected: channel.peer.to_checksum(),
                    given: from.to_checksum(),
                });
            }
            if !channel.peer_installations.contains(&sender) {
                return Err(SecureChannelError::UnknownSenderInstallation(
                    sender.to_hex(),
                ));
            }
            let window = channel.window(&sender);
            ReplayWindow::check(window.as_ref(), n)?;
            let key = message_key(&channel, &sender, epoch);
            let ad = message_ad(
                &channel.id,
                !channel.initiator,
                &from,
                &sender,
                &address,
                &channel.initiator_installation,
            );
            let plaintext = aead::decrypt(&key, &nonce, &ad, body)
                .map_err(|_| SecureChannelError::Authentication)?;
            channel.set_window(sender, ReplayWindow::accept(window, n));
            save_channel(tx, &channel)?;
            Ok(plaintext)
        })
    }

    /// Processes the secure-channel handshakes sent to this installation;
    /// returns how many new channels were accepted.
    pub async fn sync_secure_channels(&self) -> Result<usize, SecureChannelError> {
        self.enable_secure_channel().await?;
        let _guard = handshake_lock().lock().await;
        let topic = handshake_topic(&self.inner.installation_id);
        let storage = &self.inner.storage;
        let cursor = storage.transaction(|tx| tx.cursor(&topic))?.unwrap_or(0);
        let lookback = u64::try_from(self.inner.options.sync_lookback.as_nanos()).unwrap_or(0);
        let start = cursor.saturating_sub(lookback);
        let envelopes = self
            .inner
            .api
            .query_all(&topic, start, 0, SortDirection::Ascending)
            .await?;
        let Some(identity) = storage.transaction(load_identity)? else {
            return Err(SecureChannelError::Corrupt("missing channel identity keys"));
        };
        let mut accepted = 0;
        let mut newest = cursor;
        for envelope in &envelopes {
            newest = newest.max(envelope.timestamp_ns);
            match self.accept_handshake(&identity, &envelope.message).await {
                Ok(true) => accepted += 1,
                Ok(false) => {}
                Err(SecureChannelError::Client(e)) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %e, "could not process a secure-channel handshake")
                }
            }
        }
        storage.transaction(|tx| tx.advance_cursor(&topic, newest))?;
        Ok(accepted)
    }

    /// Verifies and accepts one handshake; `Ok(false)` if already known.
    async fn accept_handshake(
        &self,
        identity: &ChannelIdentity,
        bytes: &[u8],
    ) -> Result<bool, SecureChannelError> {
        let Ok(signed) = SignedSecureChannelHandshake::decode(bytes) else {
            return refuse(HandshakeError::Decode);
        };
        let Ok(h) = SecureChannelHandshake::decode(signed.handshake.as_slice()) else {
            return refuse(HandshakeError::Decode);
        };
        if h.version != 1 {
            return refuse(HandshakeError::Version(h.version));
        }
        if h.channel_id.len() != CHANNEL_ID_LEN {
            return refuse(HandshakeError::Field("channel id"));
        }
        let storage = &self.inner.storage;
        if storage
            .transaction(|tx| load_channel(tx, &h.channel_id))?
            .is_some()
        {
            return Ok(false);
        }
        let me = self.inner.installation_id;
        if h.responder_installation_key.as_slice() != me.as_bytes()
            || h.responder_address != self.inner.address.to_checksum()
        {
            return refuse(HandshakeError::NotForUs);
        }
        let Ok(initiator) = Address::parse_checksummed(&h.initiator_address) else {
            return refuse(HandshakeError::Field("initiator address"));
        };
        if initiator == self.inner.address {
            return refuse(HandshakeError::NotForUs);
        }
        let Some(initiator_installation) =
            InstallationId::from_slice(&h.initiator_installation_key)
        else {
            return refuse(HandshakeError::Field("initiator installation"));
        };
        if let Err(e) = self
            .inner
            .contacts
            .verify_sender(
                self.inner.api.as_ref(),
                storage,
                &initiator,
                &initiator_installation,
            )
            .await?
        {
            return refuse(HandshakeError::Unauthentic(e));
        }
        if initiator_installation
            .verify(HANDSHAKE_CONTEXT, &signed.handshake, &signed.signature)
            .is_err()
        {
            return refuse(HandshakeError::Signature);
        }
        let initial = match InitialMessage::from_bytes(&h.x3dh_initial_message) {
            Ok(m) => m,
            Err(e) => return refuse(HandshakeError::X3dh(e)),
        };
        let agreed =
            match x3dh::respond(&identity.identity, &identity.signed_pre_key, None, &initial) {
                Ok(out) => out,
                Err(e) => return refuse(HandshakeError::X3dh(e)),
            };
        let ad = root_ad(
            &agreed.associated_data,
            &h.channel_id,
            &initiator,
            &initiator_installation,
            &self.inner.address,
            &me,
        );
        let Ok(root) =
            aead::open(&agreed.initial_message_key(), &ad, &h.wrapped_root).map(Zeroizing::new)
        else {
            return refuse(HandshakeError::Unwrap);
        };
        let Ok(root) = SecretKey::from_slice(&root) else {
            return refuse(HandshakeError::Field("root length"));
        };
        let mut id = [0u8; CHANNEL_ID_LEN];
        id.copy_from_slice(&h.channel_id);
        let channel = Channel {
            id,
            root,
            initiator: false,
            peer: initiator,
            initiator_installation,
            peer_installations: vec![initiator_installation],
            next_send: 0,
            windows: Vec::new(),
            created_ns: now_ns(),
        };
        storage.transaction(|tx| {
            save_channel(tx, &channel)?;
            if tx.secret(&peer_name(&initiator))?.is_none() {
                tx.put_secret(&peer_name(&initiator), &id)?;
            }
            Ok::<_, SecureChannelError>(())
        })?;
        tracing::info!(peer = %initiator, channel = %hex::encode(id), "accepted a secure channel");
        Ok(true)
    }

    /// Runs the handshake with every installation of `peer` that published
    /// keys; returns the new channel's id.
    async fn open_channel(
        &self,
        peer: &Address,
    ) -> Result<[u8; CHANNEL_ID_LEN], SecureChannelError> {
        self.enable_secure_channel().await?;
        let _guard = handshake_lock().lock().await;
        let storage = &self.inner.storage;
        if let Some(id) = storage.transaction(|tx| tx.secret(&peer_name(peer)))? {
            if let Ok(id) = <[u8; CHANNEL_ID_LEN]>::try_from(id.as_slice()) {
                return Ok(id);
            }
        }
        let inner = &self.inner;
        let set = inner
            .contacts
            .installations(inner.api.as_ref(), storage, peer, true)
            .await?;
        if set.installations.is_empty() {
            return Err(ClientError::PeerNotRegistered(peer.to_checksum()).into());
        }
        let mut targets = Vec::new();
        for v in &set.installations {
            let id = v.installation_id();
            let envelopes = inner
                .api
                .query_all(&pre_key_topic(&id), 0, 0, SortDirection::Descending)
                .await?;
            match envelopes.iter().find_map(|e| verify_pre_key(&id, e)) {
                Some(bundle) => targets.push((id, bundle)),
                None => tracing::debug!(installation = %id, "no valid secure-channel pre-key"),
            }
        }
        if targets.is_empty() {
            return Err(SecureChannelError::PeerNotEnabled(peer.to_checksum()));
        }
        let identity = storage
            .transaction(load_identity)?
            .ok_or(SecureChannelError::Corrupt("missing channel identity keys"))?;
        let channel_id: [u8; CHANNEL_ID_LEN] = random_bytes();
        let root = SecretKey::random();
        let me = inner.installation_id;
        let responders: Vec<Vec<u8>> = targets
            .iter()
            .map(|(id, _)| id.as_bytes().to_vec())
            .collect();
        let created_ns = now_ns();
        let mut envelopes = Vec::new();
        for (responder, bundle) in &targets {
            let (agreed, initial) = x3dh::initiate(&identity.identity, bundle)
                .map_err(|_| SecureChannelError::PeerNotEnabled(peer.to_checksum()))?;
            let ad = root_ad(
                &agreed.associated_data,
                &channel_id,
                &inner.address,
                &me,
                peer,
                responder,
            );
            let wrapped = aead::seal(&agreed.initial_message_key(), &ad, root.expose_secret())
                .map_err(|_| SecureChannelError::Corrupt("root sealing"))?;
            let handshake = SecureChannelHandshake {
                version: 1,
                channel_id: channel_id.to_vec(),
                initiator_address: inner.address.to_checksum(),
                initiator_installation_key: me.as_bytes().to_vec(),
                responder_address: peer.to_checksum(),
                responder_installation_key: responder.as_bytes().to_vec(),
                x3dh_initial_message: initial.to_bytes(),
                wrapped_root: wrapped,
                responder_installation_keys: responders.clone(),
                created_ns,
            }
            .encode_to_vec();
            let signature = inner.keys.lock().await.sign(HANDSHAKE_CONTEXT, &handshake);
            envelopes.push(Envelope {
                content_topic: handshake_topic(responder),
                timestamp_ns: created_ns,
                message: SignedSecureChannelHandshake {
                    handshake,
                    signature: signature.to_vec(),
                }
                .encode_to_vec(),
            });
        }
        let channel = Channel {
            id: channel_id,
            root,
            initiator: true,
            peer: *peer,
            initiator_installation: me,
            peer_installations: targets.iter().map(|(id, _)| *id).collect(),
            next_send: 0,
            windows: Vec::new(),
            created_ns,
        };
        // Stored before publishing: a crash after the publish must not lose
        // the root the peer is about to accept.
        storage.transaction(|tx| {
            save_channel(tx, &channel)?;
            tx.put_secret(&peer_name(peer), &channel_id)?;
            Ok::<_, SecureChannelError>(())
        })?;
        inner.api.publish(envelopes).await?;
        let unique: HashSet<_> = channel.peer_installations.iter().collect();
        tracing::info!(peer = %peer, installations = unique.len(), channel = %hex::encode(channel_id), "opened a secure channel");
        Ok(channel_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_window_accepts_each_number_once() {
        let mut w = None;
        for n in [5u64, 3, 4, 70, 69, 10] {
            assert!(ReplayWindow::check(w.as_ref(), n).is_ok(), "{n}");
            w = Some(ReplayWindow::accept(w, n));
        }
        for n in [5u64, 3, 4, 70, 69, 10] {
            assert!(matches!(
                ReplayWindow::check(w.as_ref(), n),
                Err(SecureChannelError::Replayed(_))
            ));
        }
        // Unseen but inside the window: fine; older than the window: refused.
        assert!(ReplayWindow::check(w.as_ref(), 68).is_ok());
        assert!(ReplayWindow::check(w.as_ref(), 2).is_err());
    }

    #[test]
    fn nonces_count_and_name_their_epoch() {
        let (epoch, nonce) = nonce_for(EPOCH_LEN + 7).unwrap();
        assert_eq!(epoch, 1);
        let (e, n, _) = parse_nonce(&nonce).unwrap();
        assert_eq!((e, n), (1, EPOCH_LEN + 7));
        let mut bad = nonce;
        bad[3] = 2;
        assert!(matches!(
            parse_nonce(&bad),
            Err(SecureChannelError::Authentication)
        ));
        assert!(matches!(
            parse_nonce(&nonce[..11]),
            Err(SecureChannelError::Malformed(_))
        ));
        let distinct: HashSet<[u8; 12]> = (0..1000).map(|n| nonce_for(n).unwrap().1).collect();
        assert_eq!(distinct.len(), 1000);
    }

    #[test]
    fn message_keys_differ_by_sender_and_epoch() {
        let channel = Channel {
            id: [1; 16],
            root: SecretKey::from_bytes([2; 32]),
            initiator: true,
            peer: Address::from_bytes([3; 20]),
            initiator_installation: InstallationId::from_slice(&[4; 32]).unwrap(),
            peer_installations: vec![],
            next_send: 0,
            windows: vec![],
            created_ns: 0,
        };
        let a = InstallationId::from_slice(&[4; 32]).unwrap();
        let b = InstallationId::from_slice(&[5; 32]).unwrap();
        assert_ne!(message_key(&channel, &a, 0), message_key(&channel, &b, 0));
        assert_ne!(message_key(&channel, &a, 0), message_key(&channel, &a, 1));
        assert_eq!(message_key(&channel, &a, 3), message_key(&channel, &a, 3));
    }

    #[test]
    fn channel_state_round_trips() {
        let a = InstallationId::from_slice(&[4; 32]).unwrap();
        let channel = Channel {
            id: [1; 16],
            root: SecretKey::from_bytes([2; 32]),
            initiator: false,
            peer: Address::from_bytes([3; 20]),
            initiator_installation: a,
            peer_installations: vec![a],
            next_send: 9,
            windows: vec![(
                a,
                ReplayWindow {
                    highest: 7,
                    seen: 0b101,
                },
            )],
            created_ns: 11,
        };
        let back = Channel::decode(&channel.encode()).unwrap();
        assert_eq!(back.id, channel.id);
        assert_eq!(back.root, channel.root);
        assert_eq!(back.peer, channel.peer);
        assert_eq!(back.next_send, 9);
        assert_eq!(
            back.window(&a),
            Some(ReplayWindow {
                highest: 7,
                seen: 0b101
            })
        );
        assert!(matches!(
            Channel::decode(&[0xff, 0xff]),
            Err(SecureChannelError::Corrupt(_))
        ));
    }

    #[test]
    fn headers_are_checked() {
        assert!(matches!(
            parse_header(&[1; 10]),
            Err(SecureChannelError::Malformed(_))
        ));
        let mut c = vec![2u8];
        c.extend_from_slice(&[0; 48]);
        assert!(matches!(
            parse_header(&c),
            Err(SecureChannelError::Malformed(_))
        ));
    }
}
