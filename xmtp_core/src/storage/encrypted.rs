//! Column encryption for the local database.
//!
//! Every secret (the installation's pickled account, pickled Olm sessions,
//! stored wallet keys) and every message body is sealed before it reaches
//! SQLite, so that the database file and its write-ahead log reveal nothing
//! without the database key.
//!
//! ```text
//! K          = HKDF-SHA256(ikm = database key, salt = "xmtp_core/storage", info = "column-key/v1")
//! AD         = "xmtp_core/v1" || 0 || table || 0 || column || 0 || row key
//! sealed     = 0x01 || nonce (12 random bytes) || AES-256-GCM(K, nonce, plaintext, AD)
//! ```
//!
//! The associated data names the table, the column and the row's key, so a
//! ciphertext copied into another row or column fails to open. Nonces are
//! random 96-bit values; with one key per database and far fewer than 2^32
//! writes, the birthday bound on a nonce collision stays negligible.
//!
//! The AEAD itself is [`xmtp_cryptography::aead`] (AES-256-GCM, random
//! nonce, `nonce || ciphertext || tag`); this module adds the key derivation,
//! the version byte and the associated data.

use rand::RngCore;
use xmtp_cryptography::{aead, AeadError, SecretKey};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Format version byte of a sealed column value.
const SEALED_VERSION: u8 = 1;

/// The 32-byte key that protects a local database. Keep it outside the
/// database (a platform keystore, or derived from a secret the user holds).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DatabaseKey([u8; 32]);

impl DatabaseKey {
    /// Wraps 32 bytes of key material.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The raw key bytes (for the caller to store in a keystore).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseKey(<redacted>)")
    }
}

/// Why a sealed column could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The value is shorter than a nonce and a tag, or has an unknown version.
    #[error("sealed value is malformed (the database may be corrupt)")]
    Malformed,
    /// Authentication failed: wrong database key, or the value was moved or altered.
    #[error("sealed value does not open: wrong database key, or the row was tampered with")]
    Authentication,
    /// Encryption failed (only possible for absurdly large values).
    #[error("value could not be sealed")]
    Seal,
}

/// Seals and opens column values under a key derived from the [`DatabaseKey`].
pub(crate) struct ColumnCipher {
    key: SecretKey,
    /// Derived key under which vodozemac pickles are encrypted (never stored).
    pickle_key: SecretKey,
}

impl ColumnCipher {
    /// Derives the column key and the pickle key from the database key.
    pub(crate) fn new(db_key: &DatabaseKey) -> Self {
        Self {
            key: SecretKey::derive(b"xmtp_core/storage", db_key.as_bytes(), b"column-key/v1"),
            pickle_key: SecretKey::derive(
                b"xmtp_core/storage",
                db_key.as_bytes(),
                b"pickle-key/v1",
            ),
        }
    }

    /// The key under which vodozemac pickles are encrypted before sealing.
    pub(crate) fn pickle_key(&self) -> &SecretKey {
        &self.pickle_key
    }

    fn aad(table: &str, column: &str, row: &[u8]) -> Vec<u8> {
        let mut ad = Vec::with_capacity(16 + table.len() + column.len() + row.len());
        ad.extend_from_slice(b"xmtp_core/v1\0");
        ad.extend_from_slice(table.as_bytes());
        ad.push(0);
        ad.extend_from_slice(column.as_bytes());
        ad.push(0);
        ad.extend_from_slice(row);
        ad
    }

    /// Seals `plaintext` for `table.column` of the row keyed by `row`.
    pub(crate) fn seal(
        &self,
        table: &str,
        column: &str,
        row: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let sealed = aead::seal(&self.key, &Self::aad(table, column, row), plaintext)
            .map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(1 + sealed.len());
        out.push(SEALED_VERSION);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value sealed by [`ColumnCipher::seal`] for the same place.
    pub(crate) fn open(
        &self,
        table: &str,
        column: &str,
        row: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        match sealed.split_first() {
            Some((&SEALED_VERSION, rest)) => {
                aead::open(&self.key, &Self::aad(table, column, row), rest).map_err(|e| match e {
                    AeadError::TooShort(_) => SealError::Malformed,
                    _ => SealError::Authentication,
                })
            }
            _ => Err(SealError::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_in_its_own_place_only() {
        let c = ColumnCipher::new(&DatabaseKey::random());
        let sealed = c.seal("messages", "content", b"id-1", b"hello").unwrap();
        assert_eq!(
            c.open("messages", "content", b"id-1", &sealed).unwrap(),
            b"hello"
        );
        assert_eq!(
            c.open("messages", "content", b"id-2", &sealed),
            Err(SealError::Authentication)
        );
        assert_eq!(
            c.open("sessions", "content", b"id-1", &sealed),
            Err(SealError::Authentication)
        );
        assert_eq!(
            c.open("messages", "pickle", b"id-1", &sealed),
            Err(SealError::Authentication)
        );
    }

    #[test]
    fn wrong_key_or_flipped_bit_fails_to_open() {
        let c = ColumnCipher::new(&DatabaseKey::random());
        let other = ColumnCipher::new(&DatabaseKey::random());
        let mut sealed = c.seal("t", "c", b"r", b"secret").unwrap();
        assert_eq!(
            other.open("t", "c", b"r", &sealed),
            Err(SealError::Authentication)
        );
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(
            c.open("t", "c", b"r", &sealed),
            Err(SealError::Authentication)
        );
        assert_eq!(
            c.open("t", "c", b"r", &sealed[..10]),
            Err(SealError::Malformed)
        );
    }

    #[test]
    fn same_plaintext_seals_to_different_ciphertexts() {
        let c = ColumnCipher::new(&DatabaseKey::random());
        let a = c.seal("t", "c", b"r", b"same").unwrap();
        let b = c.seal("t", "c", b"r", b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn database_key_debug_is_redacted() {
        let k = DatabaseKey::from_bytes([7u8; 32]);
        assert_eq!(format!("{k:?}"), "DatabaseKey(<redacted>)");
    }
}
