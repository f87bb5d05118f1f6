//! secp256k1 keys, recoverable ECDSA signatures and the Diffie-Hellman of
//! XMTP's V1/V2 protocol.
//!
//! XMTP's SDKs (noble-secp256k1 in xmtp-js) sign 32-byte digests with RFC 6979
//! deterministic nonces and low-S normalisation, carry signatures as
//! `r || s` plus a recovery id, and use the *uncompressed* shared point as the
//! Diffie-Hellman output:
//!
//! ```text
//! sign(k, digest)  = (r || s, recovery)            RFC 6979, s <= n/2
//! dh(a, B)         = 0x04 || X(a·B) || Y(a·B)      65 bytes
//! address(P)       = EIP-55(keccak256(X(P) || Y(P))[12..])
//! ```
//!
//! k256 produces byte-identical signatures, so vectors from XMTP's test suites
//! can be checked exactly.

use crate::wallet::Address;
use k256::{
    ecdsa::{RecoveryId, Signature as K256Signature, SigningKey, VerifyingKey},
    elliptic_curve::sec1::ToEncodedPoint,
    ProjectivePoint,
};
use rand::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

/// Length of an uncompressed SEC1 point: `0x04 || X || Y`.
pub const UNCOMPRESSED_POINT_LEN: usize = 65;

/// Why bytes are not a usable secp256k1 key or signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A public key is not 65 bytes.
    #[error("public key has {0} bytes, expected 65")]
    PublicKeyLength(usize),
    /// A public key does not start with the uncompressed prefix 0x04.
    #[error("public key prefix {0:#04x} is not the uncompressed prefix 0x04")]
    PublicKeyPrefix(u8),
    /// A public key is not a point of the curve.
    #[error("public key is not a point of secp256k1")]
    PublicKeyNotOnCurve,
    /// A private key is not 32 bytes.
    #[error("private key has {0} bytes, expected 32")]
    PrivateKeyLength(usize),
    /// A private key is zero or not below the group order.
    #[error("private key is not a valid secp256k1 scalar")]
    PrivateKeyOutOfRange,
    /// A signature is not 64 bytes of `r || s`.
    #[error("signature has {0} bytes, expected 64")]
    SignatureLength(usize),
    /// A recovery id is neither 0 nor 1.
    #[error("recovery id {0} is neither 0 nor 1")]
    RecoveryId(u32),
    /// `r` or `s` is zero or not below the group order.
    #[error("signature scalars are out of range")]
    SignatureScalars,
    /// No public key can be recovered from this signature and digest.
    #[error("no public key can be recovered from the signature")]
    Unrecoverable,
    /// The signature does not verify under the key.
    #[error("signature does not verify")]
    BadSignature,
    /// A `Signature` proto carries no signature.
    #[error("signature is missing")]
    MissingSignature,
}

/// A secp256k1 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses an uncompressed point (`0x04 || X || Y`, 65 bytes), the only
    /// form XMTP's V1/V2 protocol carries.
    pub fn from_uncompressed(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != UNCOMPRESSED_POINT_LEN {
            return Err(KeyError::PublicKeyLength(bytes.len()));
        }
        if bytes[0] != 0x04 {
            return Err(KeyError::PublicKeyPrefix(bytes[0]));
        }
        VerifyingKey::from_sec1_bytes(bytes)
            .map(Self)
            .map_err(|_| KeyError::PublicKeyNotOnCurve)
    }

    /// The uncompressed point, 65 bytes.
    pub fn to_uncompressed(&self) -> [u8; UNCOMPRESSED_POINT_LEN] {
        let point = self.0.to_encoded_point(false);
        let mut out = [0u8; UNCOMPRESSED_POINT_LEN];
        out.copy_from_slice(point.as_bytes());
        out
    }

    /// The Ethereum address of this key.
    pub fn address(&self) -> Address {
        let point = self.to_uncompressed();
        Address::from(alloy_primitives::Address::from_raw_public_key(&point[1..]))
    }

    /// Verifies an ECDSA signature of a 32-byte digest (the recovery id is
    /// not needed to verify). High-S signatures are refused, as XMTP's SDKs do.
    pub fn verify_digest(
        &self,
        digest: &[u8; 32],
        signature: &RecoverableSignature,
    ) -> Result<(), KeyError> {
        use k256::ecdsa::signature::hazmat::PrehashVerifier;
        let sig = signature.to_k256()?;
        self.0
            .verify_prehash(digest, &sig)
            .map_err(|_| KeyError::BadSignature)
    }

    /// Recovers the key that made `signature` over `digest`.
    pub fn recover(digest: &[u8; 32], signature: &RecoverableSignature) -> Result<Self, KeyError> {
        let sig = signature.to_k256()?;
        let recovery = RecoveryId::from_byte(signature.recovery)
            .ok_or(KeyError::RecoveryId(u32::from(signature.recovery)))?;
        VerifyingKey::recover_from_prehash(digest, &sig, recovery)
            .map(Self)
            .map_err(|_| KeyError::Unrecoverable)
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.to_uncompressed()))
    }
}

/// A secp256k1 private key. Zeroized on drop; its `Debug` prints the public
/// key only.
#[derive(Clone)]
pub struct SecretKey(Box<SigningKey>);

impl SecretKey {
    /// A fresh random key.
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self(Box::new(SigningKey::random(rng)))
    }

    /// Parses a big-endian 32-byte scalar.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != 32 {
            return Err(KeyError::PrivateKeyLength(bytes.len()));
        }
        SigningKey::from_slice(bytes)
            .map(|k| Self(Box::new(k)))
            .map_err(|_| KeyError::PrivateKeyOutOfRange)
    }

    /// The big-endian scalar, in a buffer that zeroizes on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut bytes = self.0.to_bytes();
        let out = Zeroizing::new(bytes.to_vec());
        bytes.zeroize();
        out
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.0.verifying_key())
    }

    /// Signs a 32-byte digest: RFC 6979 nonce, low-S, with recovery id.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Result<RecoverableSignature, KeyError> {
        let (sig, recovery) = self
            .0
            .sign_prehash_recoverable(digest)
            .map_err(|_| KeyError::SignatureScalars)?;
        let mut bytes = [0u8; 64];
        bytes.copy_from_slice(&sig.to_bytes());
        Ok(RecoverableSignature {
            bytes,
            recovery: recovery.to_byte(),
        })
    }

    /// The uncompressed shared point with `peer`, 65 bytes, as XMTP's
    /// `getSharedSecret(private, public, false)`.
    pub fn diffie_hellman(&self, peer: &PublicKey) -> Zeroizing<[u8; UNCOMPRESSED_POINT_LEN]> {
        let scalar = self.0.as_nonzero_scalar();
        let shared = (ProjectivePoint::from(*peer.0.as_affine()) * scalar.as_ref()).to_affine();
        let point = shared.to_encoded_point(false);
        let mut out = Zeroizing::new([0u8; UNCOMPRESSED_POINT_LEN]);
        out.copy_from_slice(point.as_bytes());
        out
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// An ECDSA signature as XMTP carries it: `r || s` and a recovery id.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecoverableSignature {
    /// `r || s`, big-endian.
    pub bytes: [u8; 64],
    /// Recovery id, 0 or 1.
    pub recovery: u8,
}

impl RecoverableSignature {
    /// Builds a signature from its wire fields, checking their shape.
    pub fn from_parts(bytes: &[u8], recovery: u32) -> Result<Self, KeyError> {
        let bytes: [u8; 64] = bytes
            .try_into()
            .map_err(|_| KeyError::SignatureLength(bytes.len()))?;
        let recovery = match recovery {
            0 => 0,
            1 => 1,
            other => return Err(KeyError::RecoveryId(other)),
        };
        Ok(Self { bytes, recovery })
    }

    /// Parses a 65-byte Ethereum signature `r || s || v` as wallets return it
    /// (v in {0, 1, 27, 28}), the way XMTP's SDKs split it.
    pub fn from_wallet_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != 65 {
            return Err(KeyError::SignatureLength(bytes.len()));
        }
        let recovery = match bytes[64] {
            0 | 27 => 0,
            1 | 28 => 1,
            other => return Err(KeyError::RecoveryId(u32::from(other))),
        };
        Self::from_parts(&bytes[..64], recovery)
    }

    fn to_k256(self) -> Result<K256Signature, KeyError> {
        K256Signature::from_slice(&self.bytes).map_err(|_| KeyError::SignatureScalars)
    }
}

impl std::fmt::Debug for RecoverableSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RecoverableSignature({}, {})",
            hex::encode(self.bytes),
            self.recovery
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn diffie_hellman_agrees_and_is_uncompressed() {
        let mut rng = rand::thread_rng();
        let a = SecretKey::random(&mut rng);
        let b = SecretKey::random(&mut rng);
        let ab = a.diffie_hellman(&b.public_key());
        let ba = b.diffie_hellman(&a.public_key());
        assert_eq!(*ab, *ba);
        assert_eq!(ab[0], 0x04);
        assert!(PublicKey::from_uncompressed(ab.as_slice()).is_ok());
    }

    #[test]
    fn signature_recovers_the_signer_and_verifies() {
        let key = SecretKey::random(&mut rand::thread_rng());
        let digest: [u8; 32] = Sha256::digest(b"Hello world").into();
        let sig = key.sign_digest(&digest).unwrap();
        assert_eq!(PublicKey::recover(&digest, &sig).unwrap(), key.public_key());
        key.public_key().verify_digest(&digest, &sig).unwrap();
        let mut other = digest;
        other[0] ^= 1;
        assert_eq!(
            key.public_key().verify_digest(&other, &sig),
            Err(KeyError::BadSignature)
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert_eq!(
            PublicKey::from_uncompressed(&[4; 64]),
            Err(KeyError::PublicKeyLength(64))
        );
        let mut bytes = [0u8; 65];
        bytes[0] = 2;
        assert_eq!(
            PublicKey::from_uncompressed(&bytes),
            Err(KeyError::PublicKeyPrefix(2))
        );
        bytes[0] = 4;
        assert_eq!(
            PublicKey::from_uncompressed(&bytes),
            Err(KeyError::PublicKeyNotOnCurve)
        );
        assert!(matches!(
            SecretKey::from_bytes(&[0; 32]),
            Err(KeyError::PrivateKeyOutOfRange)
        ));
        assert!(matches!(
            SecretKey::from_bytes(&[1; 31]),
            Err(KeyError::PrivateKeyLength(31))
        ));
        assert_eq!(
            RecoverableSignature::from_parts(&[1; 64], 2),
            Err(KeyError::RecoveryId(2))
        );
    }

    #[test]
    fn secret_key_debug_does_not_print_the_scalar() {
        let key = SecretKey::from_bytes(&[7u8; 32]).unwrap();
        let debug = format!("{key:?}");
        assert!(!debug.contains(&hex::encode([7u8; 32])));
        assert!(debug.contains("SecretKey"));
    }

    #[test]
    fn wallet_signature_v_values_map_to_recovery_ids() {
        let mut bytes = [1u8; 65];
        for (v, expected) in [(27u8, 0u8), (28, 1), (0, 0), (1, 1)] {
            bytes[64] = v;
            assert_eq!(
                RecoverableSignature::from_wallet_bytes(&bytes)
                    .unwrap()
                    .recovery,
                expected
            );
        }
        bytes[64] = 29;
        assert_eq!(
            RecoverableSignature::from_wallet_bytes(&bytes),
            Err(KeyError::RecoveryId(29))
        );
    }
}
