//! The encrypted private key bundle stored on a wallet's `privatestore` topic,
//! which lets the wallet recover its XMTP identity on a new device.
//!
//! The wallet signs (EIP-191) a text naming 32 random bytes, the "wallet
//! pre-key"; the 65 bytes of that signature, exactly as the wallet returned
//! them, are the secret of [`super::ciphertext`] (no associated data):
//!
//! ```text
//! text      = "XMTP : Enable Identity\n" || hex(wallet_pre_key) || "\n\nFor more info: https://xmtp.org/signatures/"
//! sig       = wallet.personal_sign(text)                        r || s || v, 65 bytes
//! stored    = EncryptedPrivateKeyBundle{ v1: { wallet_pre_key, encrypt(PrivateKeyBundle{v1}, sig, aad = "") } }
//! ```
//!
//! Wallets disagree on `v` (27/28 or 0/1); as XMTP's SDKs do, decryption
//! tries the signature as given and then with `v` moved by 27. Legacy stores
//! hold a bare `EncryptedPrivateKeyBundleV1`, which is read too.

use crate::wallet::Address;
use prost::Message;
use rand::{CryptoRng, RngCore};
use xmtp_proto::xmtp::message_contents::{
    encrypted_private_key_bundle, EncryptedPrivateKeyBundle, EncryptedPrivateKeyBundleV1,
};
use zeroize::Zeroizing;

use super::{
    ciphertext::{self, CiphertextError},
    keys::{KeyError, RecoverableSignature},
    private_key::{PrivateKeyBundleV1, PrivateKeyError},
    signature,
};

/// Length of the wallet pre-key.
pub const WALLET_PRE_KEY_LEN: usize = 32;

/// Why a bundle cannot be stored or recovered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrivateStoreError {
    /// The stored bytes are not an encrypted private key bundle.
    #[error("not an encrypted private key bundle: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A required field is absent or empty.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The wallet signature is malformed.
    #[error(transparent)]
    Signature(#[from] KeyError),
    /// The signature was made by another wallet than the bundle's.
    #[error("signature by {actual}, expected {expected}")]
    WrongWallet {
        /// The bundle's wallet.
        expected: Address,
        /// The wallet that signed.
        actual: Address,
    },
    /// The ciphertext does not open with this signature.
    #[error(transparent)]
    Ciphertext(#[from] CiphertextError),
    /// The decrypted bundle is not valid.
    #[error(transparent)]
    Bundle(#[from] PrivateKeyError),
}

/// A request to the wallet to sign the "Enable Identity" text for a fresh
/// wallet pre-key (to store a bundle).
#[derive(Debug, Clone)]
pub struct EnableIdentityRequest {
    wallet_pre_key: [u8; WALLET_PRE_KEY_LEN],
    text: String,
}

impl EnableIdentityRequest {
    /// Draws a fresh wallet pre-key.
    pub fn new<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut wallet_pre_key = [0u8; WALLET_PRE_KEY_LEN];
        rng.fill_bytes(&mut wallet_pre_key);
        Self {
            text: signature::enable_identity_text(&wallet_pre_key),
            wallet_pre_key,
        }
    }

    /// The text the wallet must sign.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Encrypts `bundle` under the wallet's signature of [`Self::text`],
    /// after checking that the bundle's own wallet made it (as xmtp-js does,
    /// against wallets that return a stale signature). Returns the encoded
    /// `EncryptedPrivateKeyBundle` to publish on the `privatestore` topic.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        bundle: &PrivateKeyBundleV1,
        wallet_signature: &[u8],
    ) -> Result<Vec<u8>, PrivateStoreError> {
        let sig = RecoverableSignature::from_wallet_bytes(wallet_signature)?;
        let actual = signature::recover_wallet_address(&self.text, &sig)?;
        let expected = bundle.wallet_address()?;
        if actual != expected {
            return Err(PrivateStoreError::WrongWallet { expected, actual });
        }
        let plaintext = bundle.encode();
        let ciphertext = ciphertext::encrypt(rng, &plaintext, wallet_signature, &[])?;
        Ok(EncryptedPrivateKeyBundle {
            version: Some(encrypted_private_key_bundle::Version::V1(
                EncryptedPrivateKeyBundleV1 {
                    wallet_pre_key: self.wallet_pre_key.to_vec(),
                    ciphertext: Some(ciphertext),
                },
            )),
        }
        .encode_to_vec())
    }
}

/// A stored encrypted bundle, decoded but still locked.
#[derive(Debug, Clone)]
pub struct LockedBundle {
    inner: EncryptedPrivateKeyBundleV1,
    text: String,
}

impl LockedBundle {
    /// Decodes the stored bytes (the current or the legacy form).
    pub fn decode(bytes: &[u8]) -> Result<Self, PrivateStoreError> {
        let inner = match EncryptedPrivateKeyBundle::decode(bytes) {
            Ok(EncryptedPrivateKeyBundle {
                version: Some(encrypted_private_key_bundle::Version::V1(v1)),
            }) => v1,
            Ok(_) => return Err(PrivateStoreError::Missing("encrypted bundle version")),
            Err(_) => EncryptedPrivateKeyBundleV1::decode(bytes)?,
        };
        if inner.wallet_pre_key.is_empty() {
            return Err(PrivateStoreError::Missing("wallet pre-key"));
        }
        if inner.ciphertext.is_none() {
            return Err(PrivateStoreError::Missing("ciphertext"));
        }
        Ok(Self {
            text: signature::enable_identity_text(&inner.wallet_pre_key),
            inner,
        })
    }

    /// The text the wallet must sign to unlock the bundle.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Unlocks the bundle with the wallet's signature of [`Self::text`].
    pub fn decrypt(
        &self,
        wallet_signature: &[u8],
    ) -> Result<PrivateKeyBundleV1, PrivateStoreError> {
        let ciphertext = self
            .inner
            .ciphertext
            .as_ref()
            .ok_or(PrivateStoreError::Missing("ciphertext"))?;
        let plaintext = match ciphertext::decrypt(ciphertext, wallet_signature, &[]) {
            Ok(plaintext) => plaintext,
            Err(first) => {
                let Some((&v, rest)) = wallet_signature.split_last() else {
                    return Err(first.into());
                };
                if wallet_signature.len() != 65 {
                    return Err(first.into());
                }
                let other_v = if v < 27 { v + 27 } else { v - 27 };
                let mut other = Zeroizing::new(rest.to_vec());
                other.push(other_v);
                ciphertext::decrypt(ciphertext, &other, &[])?
            }
        };
        Ok(PrivateKeyBundleV1::decode(&plaintext)?)
    }
}
