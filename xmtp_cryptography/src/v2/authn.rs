//! Client authentication tokens (`xmtp.message_api.v1.Token`), sent to the
//! node as `Authorization: Bearer <base64(token)>`.
//!
//! A token carries the V1 identity key (with the wallet's signature),
//! `AuthData{wallet_addr, created_ns}` as bytes, and the identity key's
//! signature of those bytes (xmtp-js 13 `LocalAuthenticator`):
//!
//! ```text
//! sig = sign_{identity key}(keccak256(auth_data_bytes))        ecdsa_compact
//! ```
//!
//! A node verifies that the identity key is authorised by the wallet named in
//! the auth data and that the identity key signed the auth data.

use alloy_primitives::keccak256;

use crate::wallet::Address;
use base64::Engine as _;
use prost::Message;
use xmtp_proto::xmtp::message_api::v1::{AuthData, Token};

use super::{
    keys::KeyError,
    private_key::{PrivateKeyBundleV1, PrivateKeyError},
    public_key::{legacy_key_point, legacy_key_wallet_address, BundleError},
    signature::{self, SignatureKind},
};

/// Why a token cannot be made or is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The bearer value is not base64.
    #[error("token is not base64")]
    Base64,
    /// The bytes are not an encoded token or auth data.
    #[error("malformed token: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A required field is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The identity key is malformed or not authorised by a wallet.
    #[error(transparent)]
    IdentityKey(#[from] BundleError),
    /// The signature is malformed.
    #[error(transparent)]
    Signature(#[from] KeyError),
    /// The identity key's wallet is not the one named in the auth data.
    #[error("identity key belongs to {actual}, token claims {claimed}")]
    WalletMismatch {
        /// The wallet named in the auth data.
        claimed: String,
        /// The wallet that authorised the identity key.
        actual: Address,
    },
    /// The identity key did not sign the auth data.
    #[error("auth data signature does not verify")]
    BadSignature,
    /// Our keys cannot make a token.
    #[error(transparent)]
    Keys(#[from] PrivateKeyError),
}

/// A token whose signatures verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The wallet the client speaks for.
    pub wallet_address: Address,
    /// When the token was made, nanoseconds since the epoch.
    pub created_ns: u64,
}

/// Makes a token for `keys`, created at `created_ns`.
pub fn create_token(keys: &PrivateKeyBundleV1, created_ns: u64) -> Result<Token, TokenError> {
    let identity = keys.identity_key();
    let auth_data_bytes = AuthData {
        wallet_addr: keys.wallet_address()?.to_checksum(),
        created_ns,
    }
    .encode_to_vec();
    let digest = keccak256(&auth_data_bytes);
    Ok(Token {
        identity_key: Some(identity.public_key().clone()),
        auth_data_signature: Some(identity.sign_digest(&digest.0)?),
        auth_data_bytes,
    })
}

/// The `Authorization` header value of a token: `Bearer <base64>`.
pub fn bearer(token: &Token) -> String {
    format!(
        "Bearer {}",
        base64::engine::general_purpose::STANDARD.encode(token.encode_to_vec())
    )
}

/// Decodes a base64 token (the part after `Bearer `).
pub fn decode_token(base64_token: &str) -> Result<Token, TokenError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_token.trim())
        .map_err(|_| TokenError::Base64)?;
    Ok(Token::decode(bytes.as_slice())?)
}

/// Verifies a token: the identity key is authorised by the wallet the auth
/// data names, and the identity key signed the auth data.
pub fn verify_token(token: &Token) -> Result<VerifiedToken, TokenError> {
    let identity = token
        .identity_key
        .as_ref()
        .ok_or(TokenError::Missing("identity key"))?;
    let point = legacy_key_point(identity)?;
    let actual = legacy_key_wallet_address(identity)?;
    let auth_data = AuthData::decode(token.auth_data_bytes.as_slice())?;
    let claimed: Option<Address> = auth_data.wallet_addr.parse().ok();
    if claimed != Some(actual) {
        return Err(TokenError::WalletMismatch {
            claimed: auth_data.wallet_addr,
            actual,
        });
    }
    let sig = token
        .auth_data_signature
        .as_ref()
        .ok_or(TokenError::Missing("auth data signature"))?;
    let (kind, sig) = signature::from_proto(sig)?;
    if kind != SignatureKind::Key {
        return Err(TokenError::BadSignature);
    }
    point
        .verify_digest(&keccak256(&token.auth_data_bytes).0, &sig)
        .map_err(|_| TokenError::BadSignature)?;
    Ok(VerifiedToken {
        wallet_address: actual,
        created_ns: auth_data.created_ns,
    })
}
