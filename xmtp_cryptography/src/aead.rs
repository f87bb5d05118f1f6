//! AES-256-GCM with HKDF-SHA256-derived keys and random 96-bit nonces.
//!
//! ```text
//! key      = HKDF-SHA256(salt, ikm, info)[0..32]      (SecretKey::derive)
//! subkey   = HKDF-SHA256(salt = none, ikm = key, info) (SecretKey::derive_subkey)
//! sealed   = nonce (12 random bytes) || AES-256-GCM(key, nonce, ad, plaintext) (ciphertext || 16-byte tag)
//! ```
//!
//! Every call takes associated data; it is authenticated, never optional, so a
//! ciphertext cannot be moved to another row, column or conversation without
//! failing to open. Nonces are drawn from the operating system's CSPRNG for
//! every message: with 96 random bits the chance of a repeat stays below
//! 2^-32 for up to 2^32 messages under one key, which is why long-lived users
//! of a key (the storage key, a secure channel) rotate or derive per-purpose
//! subkeys well before that. See docs/PROTOCOL.md, "AEAD".

use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use hkdf::Hkdf;
use rand::{rngs::OsRng, RngCore};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::AeadError;

/// Length of an AES-GCM nonce in bytes (96 bits).
pub const NONCE_LEN: usize = 12;
/// Length of an AES-GCM tag in bytes.
pub const TAG_LEN: usize = 16;
/// Length of a [`SecretKey`] in bytes.
pub const KEY_LEN: usize = 32;

/// A 32-byte symmetric key: an AES-256 key, a pickle key, a database key.
///
/// Boxed so it is not copied around the stack, zeroized on drop, and its
/// `Debug` prints nothing of the key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(Box<[u8; KEY_LEN]>);

impl SecretKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn random() -> Self {
        let mut key = Box::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(key.as_mut_slice());
        Self(key)
    }

    /// Wraps 32 key bytes (the caller should zeroize its copy).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let mut bytes = bytes;
        let key = Box::new(bytes);
        bytes.zeroize();
        Self(key)
    }

    /// Wraps a 32-byte slice.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, AeadError> {
        let array: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| AeadError::BadKeyLength(bytes.len()))?;
        Ok(Self::from_bytes(array))
    }

    /// HKDF-SHA256 (RFC 5869) of `ikm` with `salt` and `info`, 32 bytes out.
    pub fn derive(salt: &[u8], ikm: &[u8], info: &[u8]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(salt), ikm);
        let mut key = Box::new([0u8; KEY_LEN]);
        #[allow(clippy::expect_used)]
        hkdf.expand(info, key.as_mut_slice())
            .expect("32 bytes is below HKDF-SHA256's output limit of 255 * 32");
        Self(key)
    }

    /// A key for one purpose, derived from this one: HKDF-SHA256 with no salt,
    /// this key as input keying material, and `info` naming the purpose.
    pub fn derive_subkey(&self, info: &[u8]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(None, self.0.as_slice());
        let mut key = Box::new([0u8; KEY_LEN]);
        #[allow(clippy::expect_used)]
        hkdf.expand(info, key.as_mut_slice())
            .expect("32 bytes is below HKDF-SHA256's output limit of 255 * 32");
        Self(key)
    }

    /// The raw key bytes, for handing to another primitive (a vodozemac
    /// pickle, SQLCipher). Do not log or store them.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl PartialEq for SecretKey {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        use subtle_eq::ct_eq;
        ct_eq(self.0.as_slice(), other.0.as_slice())
    }
}

impl Eq for SecretKey {}

mod subtle_eq {
    /// Compares two equal-length slices without an early exit.
    pub(super) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

fn cipher(key: &SecretKey) -> Aes256Gcm {
    Aes256Gcm::new(key.0.as_slice().into())
}

/// A fresh random 96-bit nonce.
pub fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    nonce
}

/// Encrypts under an explicit nonce: returns `ciphertext || tag`.
///
/// The caller must never use a nonce twice under one key; prefer [`encrypt`]
/// or [`seal`], which draw a random one. This exists for fixed test vectors and
/// for protocols that count nonces.
pub fn encrypt_with_nonce(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, AeadError> {
    cipher(key)
        .encrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad: ad,
            },
        )
        .map_err(|_| AeadError::TooLong)
}

/// Encrypts under a fresh random nonce; returns the nonce and `ciphertext || tag`.
pub fn encrypt(
    key: &SecretKey,
    ad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>), AeadError> {
    let nonce = random_nonce();
    let ciphertext = encrypt_with_nonce(key, &nonce, ad, plaintext)?;
    Ok((nonce, ciphertext))
}

/// Decrypts `ciphertext || tag` made by [`encrypt`] or [`encrypt_with_nonce`].
pub fn decrypt(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, AeadError> {
    if ciphertext.len() < TAG_LEN {
        return Err(AeadError::TooShort(ciphertext.len()));
    }
    cipher(key)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: ad,
            },
        )
        .map_err(|_| AeadError::Authentication)
}

/// Seals a blob (a storage column, a file): `nonce || ciphertext || tag`,
/// with a fresh random nonce and `ad` authenticated.
pub fn seal(key: &SecretKey, ad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AeadError> {
    let (nonce, ciphertext) = encrypt(key, ad, plaintext)?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// Opens a blob made by [`seal`] under the same key and associated data.
pub fn open(key: &SecretKey, ad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, AeadError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(AeadError::TooShort(sealed.len()));
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| AeadError::TooShort(sealed.len()))?;
    decrypt(key, &nonce, ad, ciphertext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips() {
        let key = SecretKey::random();
        let sealed = seal(&key, b"row 1", b"hello").unwrap();
        assert_eq!(sealed.len(), NONCE_LEN + 5 + TAG_LEN);
        assert_eq!(open(&key, b"row 1", &sealed).unwrap(), b"hello");
    }

    #[test]
    fn open_refuses_other_associated_data() {
        let key = SecretKey::random();
        let sealed = seal(&key, b"row 1", b"hello").unwrap();
        assert_eq!(
            open(&key, b"row 2", &sealed),
            Err(AeadError::Authentication)
        );
    }

    #[test]
    fn open_refuses_other_key() {
        let sealed = seal(&SecretKey::random(), b"", b"hello").unwrap();
        assert_eq!(
            open(&SecretKey::random(), b"", &sealed),
            Err(AeadError::Authentication)
        );
    }

    #[test]
    fn open_refuses_every_flipped_bit() {
        let key = SecretKey::random();
        let sealed = seal(&key, b"ad", b"some plaintext").unwrap();
        for bit in 0..sealed.len() * 8 {
            let mut tampered = sealed.clone();
            tampered[bit / 8] ^= 1 << (bit % 8);
            assert!(open(&key, b"ad", &tampered).is_err(), "bit {bit} accepted");
        }
    }

    #[test]
    fn open_refuses_short_input_without_panicking() {
        let key = SecretKey::random();
        for len in 0..NONCE_LEN + TAG_LEN {
            assert_eq!(
                open(&key, b"", &vec![0; len]),
                Err(AeadError::TooShort(len))
            );
        }
    }

    #[test]
    fn seal_uses_a_fresh_nonce_each_time() {
        let key = SecretKey::random();
        let a = seal(&key, b"", b"same").unwrap();
        let b = seal(&key, b"", b"same").unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn derived_subkeys_differ_by_purpose() {
        let key = SecretKey::from_bytes([7; 32]);
        assert_ne!(key.derive_subkey(b"a"), key.derive_subkey(b"b"));
        assert_eq!(key.derive_subkey(b"a"), key.derive_subkey(b"a"));
        assert_ne!(key.derive_subkey(b"a"), key);
    }

    #[test]
    fn hkdf_matches_rfc5869_test_case_1() {
        // RFC 5869, appendix A.1 (first 32 bytes of the 42-byte OKM).
        let ikm = [0x0b; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let key = SecretKey::derive(&salt, &ikm, &info);
        assert_eq!(
            hex::encode(key.expose_secret()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
    }

    #[test]
    fn debug_does_not_print_key_bytes() {
        let key = SecretKey::from_bytes([0xab; 32]);
        let debug = format!("{key:?}");
        assert_eq!(debug, "SecretKey(..)");
        assert!(!debug.contains("ab"));
    }
}
