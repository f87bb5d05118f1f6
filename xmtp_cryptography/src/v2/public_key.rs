//! Public keys and public key bundles of XMTP's V1/V2 protocol, verified.
//!
//! A bundle is an identity key authorised by a wallet and a pre-key signed by
//! the identity key. Verification yields the wallet's address:
//!
//! ```text
//! V2 (SignedPublicKey):  key_bytes = encode(UnsignedPublicKey{created_ns, point})
//!   identity: wallet_ecdsa_compact over eip191(create_identity_text(key_bytes))
//!   pre-key:  ecdsa_compact by the identity key over sha256(key_bytes)
//! V1 (PublicKey):        bytes_to_sign = encode(PublicKey{timestamp, point})
//!   identity: ecdsa_compact (made by the wallet) over eip191(create_identity_text(bytes_to_sign))
//!   pre-key:  ecdsa_compact by the identity key over sha256(bytes_to_sign)
//! ```
//!
//! The V1 encoding `PublicKey{timestamp=1, point=3}` is also a valid
//! `UnsignedPublicKey{created_ns=1, point=3}` encoding, which is how XMTP's SDKs
//! convert V1 keys to V2 without new signatures ([`signed_from_legacy`]).
//! [`VerifiedSignedBundle`] and [`VerifiedPublicKeyBundle`] can only be made by
//! verifying, so code holding one knows whose bundle it is.

use crate::wallet::Address;
use prost::Message;
use sha2::{Digest, Sha256};
use xmtp_proto::xmtp::message_contents::{
    public_key, unsigned_public_key, PublicKeyBundle, SignedPublicKey, SignedPublicKeyBundle,
    UnsignedPublicKey,
};

use super::{
    keys::{KeyError, PublicKey},
    signature::{self, SignatureKind},
};

/// Why a public key or bundle is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// A required field is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// `key_bytes` is not an encoded `UnsignedPublicKey`.
    #[error("key bytes are not an UnsignedPublicKey: {0}")]
    KeyBytes(#[from] prost::DecodeError),
    /// A key or signature is malformed or does not verify.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The identity key carries a key signature where a wallet signature is
    /// required.
    #[error("identity key is not signed by a wallet")]
    NotWalletSigned,
    /// The pre-key carries a wallet signature where the identity key's is
    /// required.
    #[error("pre-key is not signed by a key")]
    NotKeySigned,
    /// The pre-key's signature was not made by the bundle's identity key.
    #[error("pre-key is not signed by the identity key")]
    PreKeyNotSignedByIdentity,
    /// The bundle verifies, but for another wallet than the one expected.
    #[error("bundle belongs to {actual}, expected {expected}")]
    WrongWallet {
        /// The wallet the caller expected.
        expected: Address,
        /// The wallet that authorised the bundle.
        actual: Address,
    },
}

fn expect_wallet(actual: Address, expected: &Address) -> Result<(), BundleError> {
    if actual == *expected {
        Ok(())
    } else {
        Err(BundleError::WrongWallet {
            expected: *expected,
            actual,
        })
    }
}

/// The point of a V2 signed public key.
pub fn signed_key_point(key: &SignedPublicKey) -> Result<PublicKey, BundleError> {
    let unsigned = UnsignedPublicKey::decode(key.key_bytes.as_slice())?;
    match unsigned.union {
        Some(unsigned_public_key::Union::Secp256k1Uncompressed(p)) => {
            Ok(PublicKey::from_uncompressed(&p.bytes)?)
        }
        None => Err(BundleError::Missing("secp256k1 public key")),
    }
}

/// The creation time of a V2 signed public key, in nanoseconds (milliseconds
/// for keys converted from V1, whose value is below 10^18).
pub fn signed_key_created_ns(key: &SignedPublicKey) -> Result<u64, BundleError> {
    Ok(UnsignedPublicKey::decode(key.key_bytes.as_slice())?.created_ns)
}

/// The point of a V1 public key.
pub fn legacy_key_point(
    key: &xmtp_proto::xmtp::message_contents::PublicKey,
) -> Result<PublicKey, BundleError> {
    match &key.union {
        Some(public_key::Union::Secp256k1Uncompressed(p)) => {
            Ok(PublicKey::from_uncompressed(&p.bytes)?)
        }
        None => Err(BundleError::Missing("secp256k1 public key")),
    }
}

/// The bytes a V1 public key's signature covers: the key re-encoded without
/// its signature.
pub fn legacy_bytes_to_sign(key: &xmtp_proto::xmtp::message_contents::PublicKey) -> Vec<u8> {
    xmtp_proto::xmtp::message_contents::PublicKey {
        timestamp: key.timestamp,
        signature: None,
        union: key.union.clone(),
    }
    .encode_to_vec()
}

/// The wallet that authorised a V2 identity key (its signature must be a
/// `wallet_ecdsa_compact`).
pub fn signed_key_wallet_address(key: &SignedPublicKey) -> Result<Address, BundleError> {
    let sig = key
        .signature
        .as_ref()
        .ok_or(BundleError::Missing("identity key signature"))?;
    let (kind, sig) = signature::from_proto(sig)?;
    if kind != SignatureKind::Wallet {
        return Err(BundleError::NotWalletSigned);
    }
    Ok(signature::recover_wallet_address(
        &signature::create_identity_text(&key.key_bytes),
        &sig,
    )?)
}

/// The wallet that authorised a V1 identity key (either signature kind; V1
/// keys carry the wallet's signature as `ecdsa_compact`).
pub fn legacy_key_wallet_address(
    key: &xmtp_proto::xmtp::message_contents::PublicKey,
) -> Result<Address, BundleError> {
    let sig = key
        .signature
        .as_ref()
        .ok_or(BundleError::Missing("identity key signature"))?;
    let (_, sig) = signature::from_proto(sig)?;
    let text = signature::create_identity_text(&legacy_bytes_to_sign(key));
    Ok(signature::recover_wallet_address(&text, &sig)?)
}

/// Checks that `signer` signed `key_bytes` (SHA-256, `ecdsa_compact`).
pub fn verify_key_signature(
    signer: &PublicKey,
    key_bytes: &[u8],
    sig: Option<&xmtp_proto::xmtp::message_contents::Signature>,
) -> Result<(), BundleError> {
    let sig = sig.ok_or(BundleError::Missing("pre-key signature"))?;
    let (kind, sig) = signature::from_proto(sig)?;
    if kind != SignatureKind::Key {
        return Err(BundleError::NotKeySigned);
    }
    let digest: [u8; 32] = Sha256::digest(key_bytes).into();
    signer
        .verify_digest(&digest, &sig)
        .map_err(|_| BundleError::PreKeyNotSignedByIdentity)
}

/// Converts a V1 public key to the V2 form without new signatures, as XMTP's
/// SDKs do: the key bytes are the V1 bytes-to-sign, and the signature is
/// relabelled as a wallet signature when `signed_by_wallet`.
pub fn signed_from_legacy(
    key: &xmtp_proto::xmtp::message_contents::PublicKey,
    signed_by_wallet: bool,
) -> Result<SignedPublicKey, BundleError> {
    let sig = key
        .signature
        .as_ref()
        .ok_or(BundleError::Missing("key signature"))?;
    let (_, sig) = signature::from_proto(sig)?;
    let kind = if signed_by_wallet {
        SignatureKind::Wallet
    } else {
        SignatureKind::Key
    };
    Ok(SignedPublicKey {
        key_bytes: legacy_bytes_to_sign(key),
        signature: Some(signature::to_proto(kind, &sig)),
    })
}

/// A V2 bundle whose wallet and pre-key signatures verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedSignedBundle {
    bundle: SignedPublicKeyBundle,
    wallet_address: Address,
    identity_key: PublicKey,
    pre_key: PublicKey,
}

impl VerifiedSignedBundle {
    /// Verifies both signatures and returns the bundle with its wallet.
    pub fn verify(bundle: &SignedPublicKeyBundle) -> Result<Self, BundleError> {
        let identity = bundle
            .identity_key
            .as_ref()
            .ok_or(BundleError::Missing("identity key"))?;
        let pre = bundle
            .pre_key
            .as_ref()
            .ok_or(BundleError::Missing("pre-key"))?;
        let identity_key = signed_key_point(identity)?;
        let pre_key = signed_key_point(pre)?;
        let wallet_address = signed_key_wallet_address(identity)?;
        verify_key_signature(&identity_key, &pre.key_bytes, pre.signature.as_ref())?;
        Ok(Self {
            bundle: bundle.clone(),
            wallet_address,
            identity_key,
            pre_key,
        })
    }

    /// Decodes and verifies an encoded `SignedPublicKeyBundle`.
    pub fn decode(bytes: &[u8]) -> Result<Self, BundleError> {
        Self::verify(&SignedPublicKeyBundle::decode(bytes)?)
    }

    /// The wallet that authorised the identity key.
    pub fn wallet_address(&self) -> Address {
        self.wallet_address
    }

    /// Refuses the bundle unless `expected` authorised it (e.g. a contact
    /// published on `expected`'s contact topic).
    pub fn expect_wallet(&self, expected: &Address) -> Result<(), BundleError> {
        expect_wallet(self.wallet_address, expected)
    }

    /// The identity key.
    pub fn identity_key(&self) -> &PublicKey {
        &self.identity_key
    }

    /// The pre-key.
    pub fn pre_key(&self) -> &PublicKey {
        &self.pre_key
    }

    /// The bundle as received.
    pub fn proto(&self) -> &SignedPublicKeyBundle {
        &self.bundle
    }
}

/// A V1 bundle whose wallet and pre-key signatures verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedPublicKeyBundle {
    bundle: PublicKeyBundle,
    wallet_address: Address,
    identity_key: PublicKey,
    pre_key: PublicKey,
}

impl VerifiedPublicKeyBundle {
    /// Verifies both signatures and returns the bundle with its wallet.
    pub fn verify(bundle: &PublicKeyBundle) -> Result<Self, BundleError> {
        let identity = bundle
            .identity_key
            .as_ref()
            .ok_or(BundleError::Missing("identity key"))?;
        let pre = bundle
            .pre_key
            .as_ref()
            .ok_or(BundleError::Missing("pre-key"))?;
        let identity_key = legacy_key_point(identity)?;
        let pre_key = legacy_key_point(pre)?;
        let wallet_address = legacy_key_wallet_address(identity)?;
        // V1 pre-key signatures are `ecdsa_compact`; a few clients wrote them
        // as `wallet_ecdsa_compact`, which XMTP's SDKs read as the former.
        let pre_sig = pre
            .signature
            .as_ref()
            .ok_or(BundleError::Missing("pre-key signature"))?;
        let (_, pre_sig) = signature::from_proto(pre_sig)?;
        let as_key_sig = signature::to_proto(SignatureKind::Key, &pre_sig);
        verify_key_signature(&identity_key, &legacy_bytes_to_sign(pre), Some(&as_key_sig))?;
        Ok(Self {
            bundle: bundle.clone(),
            wallet_address,
            identity_key,
            pre_key,
        })
    }

    /// Decodes and verifies an encoded `PublicKeyBundle`.
    pub fn decode(bytes: &[u8]) -> Result<Self, BundleError> {
        Self::verify(&PublicKeyBundle::decode(bytes)?)
    }

    /// The wallet that authorised the identity key.
    pub fn wallet_address(&self) -> Address {
        self.wallet_address
    }

    /// Refuses the bundle unless `expected` authorised it (e.g. a contact
    /// published on `expected`'s contact topic).
    pub fn expect_wallet(&self, expected: &Address) -> Result<(), BundleError> {
        expect_wallet(self.wallet_address, expected)
    }

    /// The identity key.
    pub fn identity_key(&self) -> &PublicKey {
        &self.identity_key
    }

    /// The pre-key.
    pub fn pre_key(&self) -> &PublicKey {
        &self.pre_key
    }

    /// The bundle as received.
    pub fn proto(&self) -> &PublicKeyBundle {
        &self.bundle
    }

    /// The same bundle in V2 form, as XMTP's SDKs convert it
    /// (`SignedPublicKeyBundle.fromLegacyBundle`).
    pub fn to_signed(&self) -> Result<VerifiedSignedBundle, BundleError> {
        let identity = self
            .bundle
            .identity_key
            .as_ref()
            .ok_or(BundleError::Missing("identity key"))?;
        let pre = self
            .bundle
            .pre_key
            .as_ref()
            .ok_or(BundleError::Missing("pre-key"))?;
        VerifiedSignedBundle::verify(&SignedPublicKeyBundle {
            identity_key: Some(signed_from_legacy(identity, true)?),
            pre_key: Some(signed_from_legacy(pre, false)?),
        })
    }
}

/// Remembers bundles that verified, keyed by their exact encoding, so that a
/// conversation's many messages from the same sender cost one bundle
/// verification (a wallet-signature recovery and a pre-key check) instead of
/// one each. A bundle that differs in any byte is verified afresh.
#[derive(Debug, Default)]
pub struct BundleCache {
    verified: std::collections::HashMap<Vec<u8>, VerifiedSignedBundle>,
}

impl BundleCache {
    /// Bundles kept at most; the cache is emptied when it is full.
    pub const CAPACITY: usize = 4096;

    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies `bundle`, or returns the result of an earlier verification of
    /// the same bytes.
    pub fn verify(
        &mut self,
        bundle: &SignedPublicKeyBundle,
    ) -> Result<VerifiedSignedBundle, BundleError> {
        let key = bundle.encode_to_vec();
        if let Some(hit) = self.verified.get(&key) {
            return Ok(hit.clone());
        }
        let verified = VerifiedSignedBundle::verify(bundle)?;
        if self.verified.len() >= Self::CAPACITY {
            self.verified.clear();
        }
        self.verified.insert(key, verified.clone());
        Ok(verified)
    }

    /// Bundles currently remembered.
    pub fn len(&self) -> usize {
        self.verified.len()
    }

    /// Whether no bundle is remembered.
    pub fn is_empty(&self) -> bool {
        self.verified.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_refuses_what_verification_refuses_and_remembers_only_successes() {
        let mut cache = BundleCache::new();
        let empty = SignedPublicKeyBundle::default();
        assert_eq!(
            cache.verify(&empty),
            Err(BundleError::Missing("identity key"))
        );
        assert!(cache.is_empty());
    }
}
