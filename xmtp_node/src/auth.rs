//! Wallet authentication of publishes (`--require-auth`), as XMTP's node
//! (`xmtp-node-go`, `pkg/api/interceptor.go` and `authentication.go`) did it.
//!
//! A client sends `authorization: Bearer <base64(xmtp.message_api.v1.Token)>`
//! (gRPC metadata, or the HTTP `Authorization` header on the JSON gateway).
//! The token carries a V1 identity key with its wallet's signature,
//! `AuthData{wallet_addr, created_ns}` as bytes, and the identity key's
//! signature of those bytes. It is valid when:
//!
//! ```text
//! wallet = recover(eip191("XMTP : Create Identity\n" || hex(encode(PublicKey{timestamp, key})) || ...),
//!                  identity_key.signature)          ecdsa_compact or wallet_ecdsa_compact
//! verify(identity_key, keccak256(auth_data_bytes), auth_data_signature)   ecdsa_compact, low-S
//! EIP-55(wallet) == auth_data.wallet_addr           exact string, as XMTP compares
//! now - created_ns <= 1 hour                        (a token from the future is accepted)
//! ```
//!
//! Which publishes need one ([`requires_token`]): every `Publish`, unless all
//! of its envelopes (at least one) are on `/xmtp/3/` topics, XMTP's exemption
//! for its V3 protocol (xmtp-node-go `isProtocolVersion3`, August 2023 to
//! January 2024, when V3 moved to its own API). This project's own protocol
//! publishes on `/xmtp/3/` topics, so only V1/V2 traffic needs tokens. Queries
//! and subscriptions never do.
//!
//! A valid token then authorises the publish ([`allowed_to_publish`]): an
//! envelope on `/xmtp/0/contact-<wallet>/...` or
//! `/xmtp/0/privatestore-<wallet>/...` must name the token's own wallet
//! (PermissionDenied, "publishing to restricted topic", otherwise).
//!
//! Error messages follow XMTP's ("authorization token is not provided",
//! "validating token: token expired", ...). None of them, and no log line,
//! contains the token.
//!
//! Verified tokens are remembered (by their SHA-256, up to
//! [`TokenCache::CAPACITY`]), since a client reuses one token for many
//! publishes; the age is checked again on every use.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use k256::elliptic_curve::sec1::ToEncodedPoint;
use prost::Message;
use sha2::{Digest as _, Sha256};
use sha3::{Digest as _, Keccak256};
use xmtp_proto::xmtp::{
    message_api::v1::{AuthData, PublishRequest, Token},
    message_contents::{public_key, signature, PublicKey},
};

/// The metadata key (gRPC) and header (HTTP, case-insensitive) of the token.
pub const AUTHORIZATION: &str = "authorization";

/// How long a token is accepted after its `created_ns`: one hour, as XMTP's
/// node (`TokenExpiration`).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The prefix of XMTP V3 topics, whose publishes need no token.
pub const V3_TOPIC_PREFIX: &str = "/xmtp/3/";

/// Longest `Authorization` value considered (a real token is about 400
/// characters); longer values are refused before decoding.
pub const MAX_AUTHORIZATION_LEN: usize = 8192;

/// Why a signature or key inside a token is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A signature is not 64 bytes of `r || s`.
    #[error("invalid signature length {0}")]
    Length(usize),
    /// A recovery id is neither 0 nor 1.
    #[error("invalid recovery id {0}")]
    RecoveryId(u32),
    /// `r` or `s` is zero or not below the group order.
    #[error("signature scalars out of range")]
    Scalars,
    /// `s` is above half the group order (a malleated signature).
    #[error("signature is not low-S normalised")]
    HighS,
    /// No public key can be recovered from the signature.
    #[error("no public key can be recovered from the signature")]
    Unrecoverable,
    /// The identity key is not 65 bytes.
    #[error("invalid public key length {0}")]
    PublicKeyLength(usize),
    /// The identity key is not an uncompressed point of secp256k1.
    #[error("invalid public key")]
    PublicKey,
}

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` metadata or header.
    #[error("authorization token is not provided")]
    Missing,
    /// The value is not `<scheme> <token>` in visible ASCII, or is too long.
    #[error("invalid authorization header")]
    MalformedHeader,
    /// The scheme is not `Bearer`. Only short alphanumeric schemes are named
    /// in the message, so that a token sent without scheme is not echoed.
    #[error("unrecognized authorization scheme {0}")]
    Scheme(String),
    /// The token is not standard base64.
    #[error("extracting token: illegal base64 data")]
    Base64,
    /// The bytes are not an encoded `Token`.
    #[error("extracting token: {0}")]
    Decode(prost::DecodeError),
    /// The token has no identity key, or the key no signature.
    #[error("extracting token: missing identity key")]
    MissingIdentityKey,
    /// A signature carries neither `ecdsa_compact` nor `wallet_ecdsa_compact`
    /// (the auth data signature must be `ecdsa_compact`).
    #[error("validating token: unknown signature type")]
    UnknownSignatureType,
    /// The identity key is not a secp256k1 key.
    #[error("validating token: unknown public key type")]
    UnknownKeyType,
    /// A signature or the identity key is malformed.
    #[error("validating token: {0}")]
    Signature(#[from] SignatureError),
    /// The token carries no auth data.
    #[error("validating token: missing auth data")]
    MissingAuthData,
    /// The token carries no auth data signature.
    #[error("validating token: missing auth data signature")]
    MissingAuthDataSignature,
    /// The identity key did not sign the auth data.
    #[error("validating token: invalid signature")]
    InvalidSignature,
    /// The signed auth data is not an encoded `AuthData`.
    #[error("validating token: auth data: {0}")]
    AuthData(prost::DecodeError),
    /// The wallet that authorised the identity key is not the one the auth
    /// data names.
    #[error("validating token: wallet address mismatch")]
    WalletMismatch,
    /// The token is older than the node's token lifetime.
    #[error("validating token: token expired")]
    Expired,
    /// An envelope is on another wallet's `contact` or `privatestore` topic.
    #[error("publishing to restricted topic")]
    RestrictedTopic,
}

impl AuthError {
    /// The gRPC code: PermissionDenied for [`AuthError::RestrictedTopic`],
    /// Unauthenticated for everything else.
    pub fn code(&self) -> tonic::Code {
        match self {
            AuthError::RestrictedTopic => tonic::Code::PermissionDenied,
            _ => tonic::Code::Unauthenticated,
        }
    }
}

/// A token whose signatures verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The wallet, EIP-55 checksummed (`0xAbC...`).
    pub wallet: String,
    /// When the client made the token, nanoseconds since the epoch.
    pub created_ns: u64,
}

/// Whether a publish needs a token: every publish but one whose envelopes
/// (at least one) are all on `/xmtp/3/` topics.
pub fn requires_token(request: &PublishRequest) -> bool {
    request.envelopes.is_empty()
        || !request
            .envelopes
            .iter()
            .all(|e| e.content_topic.starts_with(V3_TOPIC_PREFIX))
}

/// Whether `wallet` (EIP-55) may publish on `topic`: on `/xmtp/0/` topics
/// whose name starts with `contact-` or `privatestore-`, only when the part
/// after the first `-` is exactly `wallet`; every other topic is open.
pub fn allowed_to_publish(topic: &str, wallet: &str) -> bool {
    let Some(rest) = topic.strip_prefix("/xmtp/0/") else {
        return true;
    };
    let name = rest.split('/').next().unwrap_or_default();
    let mut parts = name.split('-');
    match parts.next() {
        Some("contact" | "privatestore") => parts.next() == Some(wallet),
        _ => true,
    }
}

/// Extracts the token from an `authorization` value: `Bearer <base64>`.
pub fn decode_authorization(value: &str) -> Result<Token, AuthError> {
    if value.len() > MAX_AUTHORIZATION_LEN
        || !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
    {
        return Err(AuthError::MalformedHeader);
    }
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::MalformedHeader)?;
    let scheme = scheme.trim();
    if scheme != "Bearer" {
        let shown = if scheme.len() <= 16 && scheme.bytes().all(|b| b.is_ascii_alphanumeric()) {
            scheme.to_owned()
        } else {
            "(not shown)".to_owned()
        };
        return Err(AuthError::Scheme(shown));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| AuthError::Base64)?;
    let token = Token::decode(bytes.as_slice()).map_err(AuthError::Decode)?;
    match &token.identity_key {
        Some(key) if key.signature.is_some() => Ok(token),
        _ => Err(AuthError::MissingIdentityKey),
    }
}

/// Verifies a decoded token at time `now_ns` (nanoseconds since the epoch)
/// with the given lifetime, in XMTP's order: the identity key's wallet, the
/// auth data signature, the wallet match, the age.
pub fn verify_token(
    token: &Token,
    now_ns: u64,
    lifetime: Duration,
) -> Result<VerifiedToken, AuthError> {
    let identity = token
        .identity_key
        .as_ref()
        .ok_or(AuthError::MissingIdentityKey)?;
    let wallet = identity_wallet(identity)?;
    let auth_data = verify_auth_data(identity, token)?;
    if auth_data.wallet_addr != wallet {
        return Err(AuthError::WalletMismatch);
    }
    // XMTP reads created_ns as a signed 64-bit time: beyond i64::MAX it is
    // far in the past.
    let created = i128::from(auth_data.created_ns as i64);
    let age = i128::from(now_ns) - created;
    if age > lifetime.as_nanos() as i128 {
        return Err(AuthError::Expired);
    }
    Ok(VerifiedToken {
        wallet,
        created_ns: auth_data.created_ns,
    })
}

/// The EIP-55 address of the wallet that signed the identity key's "Create
/// Identity" text.
fn identity_wallet(identity: &PublicKey) -> Result<String, AuthError> {
    let sig = identity
        .signature
        .as_ref()
        .ok_or(AuthError::MissingIdentityKey)?;
    // The wallet's signature, which V1 keys carry as `ecdsa_compact` and a
    // few clients as `wallet_ecdsa_compact`: both are accepted, as by XMTP.
    let (bytes, recovery) = match &sig.union {
        Some(signature::Union::EcdsaCompact(s)) => (&s.bytes, s.recovery),
        Some(signature::Union::WalletEcdsaCompact(s)) => (&s.bytes, s.recovery),
        None => return Err(AuthError::UnknownSignatureType),
    };
    let unsigned = PublicKey {
        timestamp: identity.timestamp,
        signature: None,
        union: identity.union.clone(),
    }
    .encode_to_vec();
    let text = format!(
        "XMTP : Create Identity\n{}\n\nFor more info: https://xmtp.org/signatures/",
        hex_lower(&unsigned)
    );
    let key = recover(&eip191_digest(text.as_bytes()), bytes, recovery)?;
    Ok(address(&key))
}

/// Checks the identity key's signature of the auth data and decodes it.
fn verify_auth_data(identity: &PublicKey, token: &Token) -> Result<AuthData, AuthError> {
    if token.auth_data_bytes.is_empty() {
        return Err(AuthError::MissingAuthData);
    }
    let sig = token
        .auth_data_signature
        .as_ref()
        .ok_or(AuthError::MissingAuthDataSignature)?;
    let point = match &identity.union {
        Some(public_key::Union::Secp256k1Uncompressed(p)) => &p.bytes,
        None => return Err(AuthError::UnknownKeyType),
    };
    let key = parse_uncompressed(point)?;
    let sig = match &sig.union {
        Some(signature::Union::EcdsaCompact(s)) => parse_signature(&s.bytes)?,
        _ => return Err(AuthError::UnknownSignatureType),
    };
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    key.verify_prehash(&keccak256(&token.auth_data_bytes), &sig)
        .map_err(|_| AuthError::InvalidSignature)?;
    AuthData::decode(token.auth_data_bytes.as_slice()).map_err(AuthError::AuthData)
}

fn parse_uncompressed(bytes: &[u8]) -> Result<VerifyingKey, SignatureError> {
    if bytes.len() != 65 {
        return Err(SignatureError::PublicKeyLength(bytes.len()));
    }
    if bytes[0] != 0x04 {
        return Err(SignatureError::PublicKey);
    }
    VerifyingKey::from_sec1_bytes(bytes).map_err(|_| SignatureError::PublicKey)
}

/// `r || s`, refusing zero, out-of-range and high `s`.
fn parse_signature(bytes: &[u8]) -> Result<Signature, SignatureError> {
    if bytes.len() != 64 {
        return Err(SignatureError::Length(bytes.len()));
    }
    let sig = Signature::from_slice(bytes).map_err(|_| SignatureError::Scalars)?;
    if sig.normalize_s().is_some() {
        return Err(SignatureError::HighS);
    }
    Ok(sig)
}

fn recover(digest: &[u8; 32], bytes: &[u8], recovery: u32) -> Result<VerifyingKey, AuthError> {
    let sig = parse_signature(bytes)?;
    let id = match recovery {
        0 | 1 => RecoveryId::from_byte(recovery as u8),
        _ => None,
    }
    .ok_or(SignatureError::RecoveryId(recovery))?;
    Ok(VerifyingKey::recover_from_prehash(digest, &sig, id)
        .map_err(|_| SignatureError::Unrecoverable)?)
}

fn keccak256(bytes: &[u8]) -> [u8; 32] {
    Keccak256::digest(bytes).into()
}

/// EIP-191 `personal_sign` digest.
fn eip191_digest(message: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(format!("\x19Ethereum Signed Message:\n{}", message.len()).as_bytes());
    hasher.update(message);
    hasher.finalize().into()
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The EIP-55 checksummed address of a key.
fn address(key: &VerifyingKey) -> String {
    let point = key.as_affine().to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    let lower = hex_lower(&hash[12..]);
    let check = keccak256(lower.as_bytes());
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (check[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
        out.push(if nibble >= 8 {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    out
}

/// Verified tokens by the SHA-256 of their `authorization` value.
#[derive(Debug, Default)]
pub struct TokenCache {
    verified: Mutex<HashMap<[u8; 32], VerifiedToken>>,
}

impl TokenCache {
    /// Tokens remembered at most; the cache is emptied when full.
    pub const CAPACITY: usize = 10_000;

    fn get(&self, key: &[u8; 32]) -> Option<VerifiedToken> {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn insert(&self, key: [u8; 32], token: VerifiedToken) {
        let mut map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.insert(key, token);
    }
}

/// The node's publish authentication: off (every publish passes, the header
/// is not read) or on (`--require-auth`).
#[derive(Debug)]
pub struct Authenticator {
    required: bool,
    lifetime: Duration,
    cache: TokenCache,
}

impl Authenticator {
    /// An authenticator; `required` false lets everything through.
    pub fn new(required: bool, lifetime: Duration) -> Self {
        Self {
            required,
            lifetime,
            cache: TokenCache::default(),
        }
    }

    /// Whether tokens are required.
    pub fn required(&self) -> bool {
        self.required
    }

    /// Checks a publish and its `authorization` value (`None` when absent):
    /// `Ok(None)` when no token is needed, the verified token when one is.
    pub fn check_publish(
        &self,
        authorization: Option<&str>,
        request: &PublishRequest,
    ) -> Result<Option<VerifiedToken>, AuthError> {
        if !self.required || !requires_token(request) {
            return Ok(None);
        }
        let token = self.verify(authorization.ok_or(AuthError::Missing)?, now_ns())?;
        if request
            .envelopes
            .iter()
            .all(|e| allowed_to_publish(&e.content_topic, &token.wallet))
        {
            Ok(Some(token))
        } else {
            Err(AuthError::RestrictedTopic)
        }
    }

    /// Verifies an `authorization` value at `now_ns`, using the cache.
    pub fn verify(&self, authorization: &str, now_ns: u64) -> Result<VerifiedToken, AuthError> {
        let key: [u8; 32] = Sha256::digest(authorization.as_bytes()).into();
        let verified = match self.cache.get(&key) {
            Some(hit) => hit,
            None => {
                let token = decode_authorization(authorization)?;
                let verified = verify_token(&token, now_ns, self.lifetime)?;
                self.cache.insert(key, verified.clone());
                verified
            }
        };
        let age = i128::from(now_ns) - i128::from(verified.created_ns as i64);
        if age > self.lifetime.as_nanos() as i128 {
            return Err(AuthError::Expired);
        }
        Ok(verified)
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmtp_cryptography::{
        v2::{
            authn,
            private_key::{IdentityRequest, PrivateKeyBundleV1},
        },
        wallet::LocalWallet,
    };
    use xmtp_proto::xmtp::message_api::v1::Envelope;

    const HOUR: Duration = DEFAULT_TOKEN_LIFETIME;
    const T0: u64 = 1_700_000_000_000_000_000;

    fn keys(wallet: &LocalWallet) -> PrivateKeyBundleV1 {
        let mut rng = rand::thread_rng();
        let request = IdentityRequest::new(&mut rng, 1_700_000_000_000);
        let signature = wallet.sign_text_sync(request.text()).unwrap();
        request
            .complete(&mut rng, signature.as_bytes(), Some(wallet.address()))
            .unwrap()
    }

    fn header(token: &Token) -> String {
        authn::bearer(token)
    }

    fn check(token: &Token, now_ns: u64) -> Result<VerifiedToken, AuthError> {
        verify_token(&decode_authorization(&header(token))?, now_ns, HOUR)
    }

    fn ecdsa(
        sig: &mut Option<xmtp_proto::xmtp::message_contents::Signature>,
    ) -> (&mut Vec<u8>, &mut u32) {
        match sig.as_mut().and_then(|s| s.union.as_mut()) {
            Some(signature::Union::EcdsaCompact(s)) => (&mut s.bytes, &mut s.recovery),
            Some(signature::Union::WalletEcdsaCompact(s)) => (&mut s.bytes, &mut s.recovery),
            None => panic!("no signature"),
        }
    }

    #[test]
    fn our_token_verifies_and_names_the_checksummed_wallet() {
        let wallet = LocalWallet::random();
        let token = authn::create_token(&keys(&wallet), T0).unwrap();
        let verified = check(&token, T0 + 1).unwrap();
        assert_eq!(verified.wallet, wallet.address().to_checksum());
        assert_eq!(verified.created_ns, T0);
    }

    #[test]
    fn xmtp_js_13_token_verifies_within_its_hour_only() {
        // Made by @xmtp/xmtp-js 13.0.4 (see the vector file's comment).
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../xmtp_cryptography/tests/vectors/v2/xmtp_js_13.json"
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let bytes = hex::decode(v["token"].as_str().unwrap()).unwrap();
        // xmtp-js keeps whole milliseconds of the requested time.
        let requested = v["token_created_ns"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap();
        let created = requested / 1_000_000 * 1_000_000;
        let token = Token::decode(bytes.as_slice()).unwrap();
        let verified = check(&token, created + 1_000_000_000).unwrap();
        assert_eq!(verified.wallet, v["alice_address"].as_str().unwrap());
        assert_eq!(verified.created_ns, created);
        assert!(check(&token, created + HOUR.as_nanos() as u64).is_ok());
        assert_eq!(
            check(&token, created + HOUR.as_nanos() as u64 + 1),
            Err(AuthError::Expired)
        );
        // A token from the future is accepted, as by XMTP's node.
        assert!(check(&token, created - 3_600_000_000_000).is_ok());
    }

    #[test]
    fn malformed_headers_are_refused() {
        let wallet = LocalWallet::random();
        let good = header(&authn::create_token(&keys(&wallet), T0).unwrap());
        let b64 = good.strip_prefix("Bearer ").unwrap();
        assert_eq!(
            decode_authorization(b64).unwrap_err(),
            AuthError::MalformedHeader
        );
        assert_eq!(
            decode_authorization(&format!("Basic {b64}")).unwrap_err(),
            AuthError::Scheme("Basic".into())
        );
        assert_eq!(
            decode_authorization(&format!("bearer {b64}")).unwrap_err(),
            AuthError::Scheme("bearer".into())
        );
        // A token sent as the scheme is not echoed.
        let err = decode_authorization(&format!("{b64} x")).unwrap_err();
        assert!(!err.to_string().contains(&b64[..20]), "{err}");
        assert_eq!(
            decode_authorization("Bearer not*base64").unwrap_err(),
            AuthError::Base64
        );
        assert!(matches!(
            decode_authorization("Bearer /////w==").unwrap_err(),
            AuthError::Decode(_)
        ));
        assert_eq!(
            decode_authorization("Bearer ").unwrap_err(),
            AuthError::MissingIdentityKey
        );
        assert_eq!(
            decode_authorization("Bearer\tx").unwrap_err(),
            AuthError::MalformedHeader
        );
        assert_eq!(
            decode_authorization(&format!("Bearer {}", "A".repeat(MAX_AUTHORIZATION_LEN)))
                .unwrap_err(),
            AuthError::MalformedHeader
        );
        // Surrounding spaces are tolerated, as XMTP trims them.
        assert!(decode_authorization(&format!("Bearer  {b64} ")).is_ok());
    }

    #[test]
    fn identity_key_signed_by_another_wallet_is_refused() {
        let alice = LocalWallet::random();
        let mallory = LocalWallet::random();
        let mut token = authn::create_token(&keys(&alice), T0).unwrap();
        let identity = token.identity_key.as_mut().unwrap();
        let unsigned = PublicKey {
            signature: None,
            ..identity.clone()
        }
        .encode_to_vec();
        let text = xmtp_cryptography::v2::signature::create_identity_text(&unsigned);
        let sig = mallory.sign_text_sync(&text).unwrap();
        let (bytes, recovery) = ecdsa(&mut identity.signature);
        bytes.copy_from_slice(&sig.as_bytes()[..64]);
        let v = sig.as_bytes()[64];
        *recovery = u32::from(if v >= 27 { v - 27 } else { v });
        // The key now belongs to mallory; the auth data still claims alice.
        assert_eq!(check(&token, T0), Err(AuthError::WalletMismatch));
    }

    #[test]
    fn auth_data_naming_another_wallet_is_refused() {
        let alice = LocalWallet::random();
        let bob = LocalWallet::random();
        let keys = keys(&alice);
        for claimed in [
            bob.address().to_checksum(),
            alice.address().to_checksum().to_lowercase(),
        ] {
            let mut token = authn::create_token(&keys, T0).unwrap();
            token.auth_data_bytes = AuthData {
                wallet_addr: claimed,
                created_ns: T0,
            }
            .encode_to_vec();
            token.auth_data_signature = Some(
                keys.identity_key()
                    .sign_digest(&keccak256(&token.auth_data_bytes))
                    .unwrap(),
            );
            assert_eq!(check(&token, T0), Err(AuthError::WalletMismatch));
        }
    }

    #[test]
    fn flipped_bits_are_refused() {
        let keys = keys(&LocalWallet::random());
        let token = authn::create_token(&keys, T0).unwrap();
        for bit in [0usize, 7, 100, 255, 256, 300, 511] {
            let mut t = token.clone();
            ecdsa(&mut t.auth_data_signature).0[bit / 8] ^= 1 << (bit % 8);
            let err = check(&t, T0).unwrap_err();
            assert!(
                matches!(
                    err,
                    AuthError::InvalidSignature
                        | AuthError::Signature(SignatureError::HighS | SignatureError::Scalars)
                ),
                "auth data signature bit {bit}: {err:?}"
            );
            let mut t = token.clone();
            ecdsa(&mut t.identity_key.as_mut().unwrap().signature).0[bit / 8] ^= 1 << (bit % 8);
            assert!(check(&t, T0).is_err(), "identity signature bit {bit}");
        }
        let mut t = token.clone();
        t.auth_data_bytes[3] ^= 1;
        assert!(check(&t, T0).is_err());
        let mut t = token.clone();
        if let Some(public_key::Union::Secp256k1Uncompressed(p)) =
            &mut t.identity_key.as_mut().unwrap().union
        {
            p.bytes[10] ^= 1;
        }
        assert!(check(&t, T0).is_err());
    }

    #[test]
    fn high_s_lengths_and_recovery_ids_are_typed_errors() {
        let keys = keys(&LocalWallet::random());
        let token = authn::create_token(&keys, T0).unwrap();
        // The same auth data signature with s replaced by n - s.
        let mut t = token.clone();
        let bytes = ecdsa(&mut t.auth_data_signature).0;
        let sig = Signature::from_slice(bytes.as_slice()).unwrap();
        let (r, s) = sig.split_scalars();
        let neg_s: k256::Scalar = -*s.as_ref();
        let high = Signature::from_scalars(r, neg_s).unwrap();
        bytes.copy_from_slice(&high.to_bytes());
        assert_eq!(check(&t, T0), Err(SignatureError::HighS.into()));
        let mut t = token.clone();
        ecdsa(&mut t.auth_data_signature).0.pop();
        assert_eq!(check(&t, T0), Err(SignatureError::Length(63).into()));
        let mut t = token.clone();
        ecdsa(&mut t.auth_data_signature).0.fill(0);
        assert_eq!(check(&t, T0), Err(SignatureError::Scalars.into()));
        for recovery in [2, 27, u32::MAX] {
            let mut t = token.clone();
            *ecdsa(&mut t.identity_key.as_mut().unwrap().signature).1 = recovery;
            assert_eq!(
                check(&t, T0),
                Err(SignatureError::RecoveryId(recovery).into())
            );
        }
        let mut t = token.clone();
        if let Some(public_key::Union::Secp256k1Uncompressed(p)) =
            &mut t.identity_key.as_mut().unwrap().union
        {
            p.bytes.truncate(33);
        }
        // The wallet signature now recovers another wallet or nothing; the
        // key's length is reported when the wallet step passes.
        assert!(check(&t, T0).is_err());
        let mut t = token.clone();
        t.auth_data_bytes.clear();
        assert_eq!(check(&t, T0), Err(AuthError::MissingAuthData));
        let mut t = token.clone();
        t.auth_data_signature = None;
        assert_eq!(check(&t, T0), Err(AuthError::MissingAuthDataSignature));
        let mut t = token;
        t.auth_data_signature = Some(xmtp_proto::xmtp::message_contents::Signature { union: None });
        assert_eq!(check(&t, T0), Err(AuthError::UnknownSignatureType));
    }

    #[test]
    fn created_ns_beyond_i64_is_expired() {
        let keys = keys(&LocalWallet::random());
        let token = authn::create_token(&keys, u64::MAX).unwrap();
        assert_eq!(check(&token, T0), Err(AuthError::Expired));
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, RngCore};
        let mut rng = rand::thread_rng();
        let keys = keys(&LocalWallet::random());
        let good = authn::create_token(&keys, T0).unwrap().encode_to_vec();
        for _ in 0..2000 {
            let mut bytes = if rng.gen_bool(0.5) {
                let mut b = vec![0u8; rng.gen_range(0..400)];
                rng.fill_bytes(&mut b);
                b
            } else {
                good.clone()
            };
            if !bytes.is_empty() {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] = rng.gen();
            }
            let value = format!(
                "Bearer {}",
                base64::engine::general_purpose::STANDARD.encode(&bytes)
            );
            if let Ok(token) = decode_authorization(&value) {
                let _ = verify_token(&token, T0, HOUR);
            }
        }
    }

    fn publish(topics: &[&str]) -> PublishRequest {
        PublishRequest {
            envelopes: topics
                .iter()
                .map(|t| Envelope {
                    content_topic: (*t).into(),
                    timestamp_ns: 1,
                    message: vec![1],
                })
                .collect(),
        }
    }

    #[test]
    fn only_all_v3_publishes_are_exempt() {
        assert!(!requires_token(&publish(&[
            "/xmtp/3/installation-00/proto"
        ])));
        assert!(!requires_token(&publish(&[
            "/xmtp/3/a/proto",
            "/xmtp/3/group-1/proto"
        ])));
        assert!(requires_token(&publish(&[])));
        assert!(requires_token(&publish(&["/xmtp/0/m-1/proto"])));
        assert!(requires_token(&publish(&[
            "/xmtp/3/a/proto",
            "/xmtp/0/m-1/proto"
        ])));
        assert!(requires_token(&publish(&["/xmtp/mls/1/g-1/proto"])));
        assert!(requires_token(&publish(&["/xmtp/30/a/proto"])));
    }

    #[test]
    fn contact_and_privatestore_topics_belong_to_their_wallet() {
        let w = "0xEb3b580543341e68da1462eDCe4f168a9d6682CE";
        assert!(allowed_to_publish(&format!("/xmtp/0/contact-{w}/proto"), w));
        assert!(allowed_to_publish(
            &format!("/xmtp/0/privatestore-{w}/key_bundle/proto"),
            w
        ));
        let other = "0xd92936450350aB8F5a7426dC200964d3A9150306";
        assert!(!allowed_to_publish(
            &format!("/xmtp/0/contact-{other}/proto"),
            w
        ));
        assert!(!allowed_to_publish(
            &format!("/xmtp/0/contact-{}/proto", w.to_lowercase()),
            w
        ));
        assert!(!allowed_to_publish("/xmtp/0/contact/proto", w));
        assert!(!allowed_to_publish("/xmtp/0/privatestore-", w));
        assert!(allowed_to_publish(
            &format!("/xmtp/0/invite-{other}/proto"),
            w
        ));
        assert!(allowed_to_publish(
            &format!("/xmtp/0/dm-{w}-{other}/proto"),
            w
        ));
        assert!(allowed_to_publish("/xmtp/0/m-abc/proto", w));
        assert!(allowed_to_publish(
            &format!("/other/contact-{other}/proto"),
            w
        ));
    }

    #[test]
    fn authenticator_off_reads_nothing_and_on_checks_and_caches() {
        let wallet = LocalWallet::random();
        let keys = keys(&wallet);
        let req = publish(&["/xmtp/0/m-1/proto"]);
        let off = Authenticator::new(false, HOUR);
        assert_eq!(off.check_publish(Some("garbage"), &req), Ok(None));
        let on = Authenticator::new(true, HOUR);
        assert_eq!(on.check_publish(None, &req), Err(AuthError::Missing));
        assert_eq!(
            on.check_publish(None, &publish(&["/xmtp/3/x/proto"])),
            Ok(None)
        );
        let now = now_ns();
        let value = header(&authn::create_token(&keys, now).unwrap());
        let ok = on.check_publish(Some(&value), &req).unwrap().unwrap();
        assert_eq!(ok.wallet, wallet.address().to_checksum());
        let mine = format!("/xmtp/0/contact-{}/proto", ok.wallet);
        assert!(on.check_publish(Some(&value), &publish(&[&mine])).is_ok());
        let theirs = format!(
            "/xmtp/0/contact-{}/proto",
            LocalWallet::random().address().to_checksum()
        );
        assert_eq!(
            on.check_publish(Some(&value), &publish(&[&mine, &theirs])),
            Err(AuthError::RestrictedTopic)
        );
        assert_eq!(
            AuthError::RestrictedTopic.code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(AuthError::Missing.code(), tonic::Code::Unauthenticated);
        // Cached, yet still aged on every use.
        assert!(on.verify(&value, now + 10).is_ok());
        assert_eq!(
            on.verify(&value, now + HOUR.as_nanos() as u64 + 1),
            Err(AuthError::Expired)
        );
        // A failure is not cached as a success.
        assert_eq!(
            on.verify("Bearer ", now),
            Err(AuthError::MissingIdentityKey)
        );
        assert_eq!(
            on.verify("Bearer ", now),
            Err(AuthError::MissingIdentityKey)
        );
    }
}
