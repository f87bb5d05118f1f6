//! XMTP's V1/V2 symmetric encryption: AES-256-GCM under a key derived with
//! HKDF-SHA256 from a secret and a fresh random salt.
//!
//! ```text
//! salt  = random(32)            nonce = random(12)
//! key   = HKDF-SHA256(ikm = secret, salt, info = "", L = 32)
//! ct    = AES-256-GCM(key, nonce, plaintext, aad = header bytes) || tag(16)
//! Ciphertext.aes256_gcm_hkdf_sha256 = { hkdf_salt: salt, gcm_nonce: nonce, payload: ct }
//! ```
//!
//! The secret is a 3-DH secret (V1 messages, sealed invitations), an
//! invitation's key material (V2 messages) or a wallet signature (the
//! encrypted private key bundle). A fresh salt gives a fresh key for every
//! message, so a random nonce is never reused under one key. The associated
//! data binds the unencrypted header to the ciphertext.

use aes_gcm::{
    aead::{Aead, Payload},
    Aes256Gcm, KeyInit, Nonce,
};
use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use sha2::Sha256;
use xmtp_proto::xmtp::message_contents::{ciphertext, Ciphertext};
use zeroize::Zeroizing;

/// HKDF salt length.
pub const SALT_LEN: usize = 32;
/// AES-GCM nonce length.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;

/// Why a ciphertext cannot be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CiphertextError {
    /// The `Ciphertext` has no AES-256-GCM/HKDF-SHA256 content.
    #[error("ciphertext is missing or of an unknown kind")]
    Missing,
    /// The salt is not 32 bytes.
    #[error("HKDF salt has {0} bytes, expected 32")]
    SaltLength(usize),
    /// The nonce is not 12 bytes.
    #[error("GCM nonce has {0} bytes, expected 12")]
    NonceLength(usize),
    /// The payload is shorter than the tag.
    #[error("payload has {0} bytes, shorter than the 16-byte tag")]
    PayloadTooShort(usize),
    /// The tag does not verify: wrong secret, or the ciphertext or associated
    /// data was altered.
    #[error("ciphertext does not authenticate")]
    Authentication,
    /// The secret is empty.
    #[error("secret is empty")]
    EmptySecret,
}

fn derive_key(secret: &[u8], salt: &[u8]) -> Result<Aes256Gcm, CiphertextError> {
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt), secret)
        .expand(&[], key.as_mut_slice())
        .map_err(|_| CiphertextError::EmptySecret)?;
    Aes256Gcm::new_from_slice(key.as_slice()).map_err(|_| CiphertextError::EmptySecret)
}

/// Encrypts `plaintext` under `secret`, binding `associated_data`.
pub fn encrypt<R: RngCore + CryptoRng>(
    rng: &mut R,
    plaintext: &[u8],
    secret: &[u8],
    associated_data: &[u8],
) -> Result<Ciphertext, CiphertextError> {
    if secret.is_empty() {
        return Err(CiphertextError::EmptySecret);
    }
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut nonce);
    let cipher = derive_key(secret, &salt)?;
    let payload = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: associated_data,
            },
        )
        .map_err(|_| CiphertextError::Authentication)?;
    Ok(Ciphertext {
        union: Some(ciphertext::Union::Aes256GcmHkdfSha256(
            ciphertext::Aes256gcmHkdfsha256 {
                hkdf_salt: salt.to_vec(),
                gcm_nonce: nonce.to_vec(),
                payload,
            },
        )),
    })
}

/// Decrypts `ciphertext` under `secret`, checking `associated_data`.
pub fn decrypt(
    ciphertext: &Ciphertext,
    secret: &[u8],
    associated_data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CiphertextError> {
    let Some(ciphertext::Union::Aes256GcmHkdfSha256(c)) = &ciphertext.union else {
        return Err(CiphertextError::Missing);
    };
    if c.hkdf_salt.len() != SALT_LEN {
        return Err(CiphertextError::SaltLength(c.hkdf_salt.len()));
    }
    if c.gcm_nonce.len() != NONCE_LEN {
        return Err(CiphertextError::NonceLength(c.gcm_nonce.len()));
    }
    if c.payload.len() < TAG_LEN {
        return Err(CiphertextError::PayloadTooShort(c.payload.len()));
    }
    if secret.is_empty() {
        return Err(CiphertextError::EmptySecret);
    }
    let cipher = derive_key(secret, &c.hkdf_salt)?;
    cipher
        .decrypt(
            Nonce::from_slice(&c.gcm_nonce),
            Payload {
                msg: &c.payload,
                aad: associated_data,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CiphertextError::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload_mut(c: &mut Ciphertext) -> &mut ciphertext::Aes256gcmHkdfsha256 {
        match &mut c.union {
            Some(ciphertext::Union::Aes256GcmHkdfSha256(inner)) => inner,
            None => panic!("no ciphertext"),
        }
    }

    #[test]
    fn round_trip_with_associated_data() {
        let mut rng = rand::thread_rng();
        let c = encrypt(&mut rng, b"hello", b"secret", b"header").unwrap();
        assert_eq!(
            decrypt(&c, b"secret", b"header").unwrap().as_slice(),
            b"hello"
        );
    }

    #[test]
    fn any_change_is_refused() {
        let mut rng = rand::thread_rng();
        let c = encrypt(&mut rng, b"hello", b"secret", b"header").unwrap();
        assert_eq!(
            decrypt(&c, b"secret", b"other").unwrap_err(),
            CiphertextError::Authentication
        );
        assert_eq!(
            decrypt(&c, b"secreT", b"header").unwrap_err(),
            CiphertextError::Authentication
        );
        for field in 0..3 {
            let mut bad = c.clone();
            let inner = payload_mut(&mut bad);
            match field {
                0 => inner.payload[0] ^= 1,
                1 => inner.hkdf_salt[0] ^= 1,
                _ => inner.gcm_nonce[0] ^= 1,
            }
            assert_eq!(
                decrypt(&bad, b"secret", b"header").unwrap_err(),
                CiphertextError::Authentication
            );
        }
    }

    #[test]
    fn malformed_ciphertexts_are_typed_errors() {
        let mut rng = rand::thread_rng();
        let c = encrypt(&mut rng, b"", b"secret", b"").unwrap();
        let mut bad = c.clone();
        payload_mut(&mut bad).hkdf_salt.pop();
        assert_eq!(
            decrypt(&bad, b"secret", b"").unwrap_err(),
            CiphertextError::SaltLength(31)
        );
        let mut bad = c.clone();
        payload_mut(&mut bad).gcm_nonce.push(0);
        assert_eq!(
            decrypt(&bad, b"secret", b"").unwrap_err(),
            CiphertextError::NonceLength(13)
        );
        let mut bad = c;
        payload_mut(&mut bad).payload.truncate(3);
        assert_eq!(
            decrypt(&bad, b"secret", b"").unwrap_err(),
            CiphertextError::PayloadTooShort(3)
        );
        assert_eq!(
            decrypt(&Ciphertext { union: None }, b"secret", b"").unwrap_err(),
            CiphertextError::Missing
        );
    }
}
