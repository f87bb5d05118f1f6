//! Wallet signers: the app's own wallet as a foreign callback, and a local
//! key for tests and scripts.
//!
//! An installation speaks for an address only after that address's wallet
//! signs the association text (EIP-191 `personal_sign`). On a phone the key
//! lives in the app's wallet, so the library asks it through
//! [`FfiWalletSigner`], a trait the app implements in Kotlin, Swift or Python.
//! Signing may prompt the user, so `sign_text` is async (a Kotlin `suspend`
//! function, a Swift `async` one, a Python coroutine).
//!
//! [`ForeignWallet`] adapts it to `xmtp_cryptography::WalletSigner`: the
//! address is parsed once, and every returned signature must recover to that
//! address, so a misbehaving wallet fails with a clear error rather than
//! producing an association every peer would reject.

use std::sync::Arc;

use xmtp_core::{LocalWallet, WalletSigner};
use xmtp_cryptography::{Address, RecoverableSignature, WalletError};

use crate::error::{FfiError, FfiSignerError};

/// A wallet that signs text for one address, implemented by the app.
#[uniffi::export(rust, foreign)]
#[async_trait::async_trait]
pub trait FfiWalletSigner: Send + Sync {
    /// The wallet's address, `0x` and 40 hex digits.
    fn address(&self) -> String;

    /// Signs `text` with EIP-191 `personal_sign`; returns the 65-byte
    /// signature `r || s || v`.
    async fn sign_text(&self, text: String) -> Result<Vec<u8>, FfiSignerError>;
}

/// Adapts a foreign [`FfiWalletSigner`] to the core's [`WalletSigner`].
pub(crate) struct ForeignWallet {
    signer: Arc<dyn FfiWalletSigner>,
    address: Address,
}

impl ForeignWallet {
    /// Asks the signer for its address once and checks it.
    pub(crate) fn new(signer: Arc<dyn FfiWalletSigner>) -> Result<Self, FfiError> {
        let text = signer.address();
        let address = text
            .trim()
            .parse::<Address>()
            .map_err(|e| FfiError::InvalidAddress {
                message: format!("the wallet signer's address: {e}"),
            })?;
        Ok(Self { signer, address })
    }
}

#[async_trait::async_trait]
impl WalletSigner for ForeignWallet {
    fn address(&self) -> Address {
        self.address
    }

    async fn sign_text(&self, text: &str) -> Result<RecoverableSignature, WalletError> {
        let bytes = self
            .signer
            .sign_text(text.to_owned())
            .await
            .map_err(|e| WalletError::Signing(e.to_string()))?;
        let signature = RecoverableSignature::from_slice(&bytes)
            .map_err(|e| WalletError::Signing(format!("the wallet returned {e}")))?;
        let recovered = signature
            .recover(text)
            .map_err(|e| WalletError::Signing(format!("the wallet's signature: {e}")))?;
        if recovered != self.address {
            return Err(WalletError::WrongSigner {
                expected: self.address.to_checksum(),
                recovered: recovered.to_checksum(),
            });
        }
        Ok(signature)
    }
}

/// A wallet whose private key is held by the library: for tests, scripts and
/// agents. The key is zeroized when the object is freed and is never printed.
#[derive(uniffi::Object)]
pub struct FfiLocalWallet {
    wallet: LocalWallet,
}

#[uniffi::export]
impl FfiLocalWallet {
    /// A new random wallet: an ephemeral, anonymous identity.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            wallet: LocalWallet::random(),
        })
    }

    /// A wallet from its private key, 64 hex digits (with or without `0x`).
    #[uniffi::constructor]
    pub fn from_hex(private_key: String) -> Result<Arc<Self>, FfiError> {
        let wallet = LocalWallet::from_hex(private_key.trim()).map_err(|e| FfiError::Wallet {
            message: e.to_string(),
        })?;
        Ok(Arc::new(Self { wallet }))
    }

    /// The wallet's address (EIP-55).
    pub fn address(&self) -> String {
        self.wallet.address().to_checksum()
    }

    /// Signs `text` with EIP-191 `personal_sign` (65 bytes).
    pub fn sign_text(&self, text: String) -> Result<Vec<u8>, FfiError> {
        self.wallet
            .sign_text_sync(&text)
            .map(|s| s.to_vec())
            .map_err(|e| FfiError::Wallet {
                message: e.to_string(),
            })
    }

    /// This wallet as a signer to give to `create_client`.
    pub fn as_signer(self: Arc<Self>) -> Arc<dyn FfiWalletSigner> {
        self
    }
}

#[async_trait::async_trait]
impl FfiWalletSigner for FfiLocalWallet {
    fn address(&self) -> String {
        FfiLocalWallet::address(self)
    }

    async fn sign_text(&self, text: String) -> Result<Vec<u8>, FfiSignerError> {
        FfiLocalWallet::sign_text(self, text).map_err(|e| FfiSignerError::Failed {
            reason: e.to_string(),
        })
    }
}

/// Recovers the address that signed `text` (EIP-191) with `signature`; lets
/// an app check a signature its wallet produced.
#[uniffi::export]
pub fn recover_signer(text: String, signature: Vec<u8>) -> Result<String, FfiError> {
    xmtp_cryptography::recover_address(&text, &signature)
        .map(|a| a.to_checksum())
        .map_err(|e| FfiError::Crypto {
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A foreign-style signer whose key is not the address it claims.
    struct Impostor {
        claimed: String,
        key: LocalWallet,
    }

    #[async_trait::async_trait]
    impl FfiWalletSigner for Impostor {
        fn address(&self) -> String {
            self.claimed.clone()
        }
        async fn sign_text(&self, text: String) -> Result<Vec<u8>, FfiSignerError> {
            Ok(self.key.sign_text_sync(&text).unwrap().to_vec())
        }
    }

    #[tokio::test]
    async fn a_local_wallet_through_the_adapter_signs_for_its_own_address() {
        let local = FfiLocalWallet::new();
        let wallet = ForeignWallet::new(local.clone().as_signer()).unwrap();
        assert_eq!(wallet.address().to_checksum(), local.address());
        let signature = wallet.sign_text("hello").await.unwrap();
        assert_eq!(
            recover_signer("hello".into(), signature.to_vec()).unwrap(),
            local.address()
        );
    }

    #[tokio::test]
    async fn a_signature_by_another_key_is_refused_as_the_wrong_signer() {
        let impostor = Impostor {
            claimed: LocalWallet::random().address().to_checksum(),
            key: LocalWallet::random(),
        };
        let wallet = ForeignWallet::new(Arc::new(impostor)).unwrap();
        assert!(matches!(
            wallet.sign_text("hi").await,
            Err(WalletError::WrongSigner { .. })
        ));
    }

    #[test]
    fn a_malformed_signer_address_or_key_is_a_typed_error() {
        let bad = Impostor {
            claimed: "0x1234".into(),
            key: LocalWallet::random(),
        };
        assert!(matches!(
            ForeignWallet::new(Arc::new(bad)),
            Err(FfiError::InvalidAddress { .. })
        ));
        assert!(matches!(
            FfiLocalWallet::from_hex("zz".into()),
            Err(FfiError::Wallet { .. })
        ));
    }

    #[test]
    fn a_wallet_from_hex_has_the_address_of_its_key() {
        let original = LocalWallet::random();
        let again = FfiLocalWallet::from_hex(original.to_hex().to_string()).unwrap();
        assert_eq!(again.address(), original.address().to_checksum());
    }
}
