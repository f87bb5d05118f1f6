//! The wallet-driven flows of XMTP's V1/V2 identities, over any
//! [`WalletSigner`] (a local key, or an app's wallet behind FFI):
//!
//! ```text
//! create:  identity key  --wallet signs "XMTP : Create Identity ..."-->  PrivateKeyBundleV1 (+ pre-key)
//! store:   bundle        --wallet signs "XMTP : Enable Identity ..."-->  EncryptedPrivateKeyBundle (privatestore topic)
//! recover: stored bytes  --wallet signs the same text again---------->  PrivateKeyBundleV1
//! ```
//!
//! Each flow checks that the signature recovers to the wallet's own address,
//! so a wallet that answers with a stale or foreign signature is refused. The
//! steps themselves are in [`super::private_key`] and [`super::private_store`];
//! these functions only sequence them around the wallet's asynchronous call.

use rand::rngs::OsRng;

use super::{
    private_key::{IdentityRequest, PrivateKeyBundleV1, PrivateKeyError},
    private_store::{EnableIdentityRequest, LockedBundle, PrivateStoreError},
};
use crate::{error::WalletError, wallet::WalletSigner};

/// Why a wallet-driven flow failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The wallet did not sign.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The identity could not be made from the wallet's signature.
    #[error(transparent)]
    Keys(#[from] PrivateKeyError),
    /// The bundle could not be stored or recovered.
    #[error(transparent)]
    Store(#[from] PrivateStoreError),
}

/// Creates a new identity authorised by `wallet`, created at `created_ms`
/// (milliseconds since the epoch), with one pre-key.
pub async fn create_identity<W: WalletSigner + ?Sized>(
    wallet: &W,
    created_ms: u64,
) -> Result<PrivateKeyBundleV1, IdentityError> {
    let request = IdentityRequest::new(&mut OsRng, created_ms);
    let signature = wallet.sign_text(request.text()).await?;
    Ok(request.complete(&mut OsRng, signature.as_bytes(), Some(wallet.address()))?)
}

/// Encrypts `bundle` for the wallet's `privatestore` topic; returns the bytes
/// to publish there.
pub async fn store_identity<W: WalletSigner + ?Sized>(
    wallet: &W,
    bundle: &PrivateKeyBundleV1,
) -> Result<Vec<u8>, IdentityError> {
    let request = EnableIdentityRequest::new(&mut OsRng);
    let signature = wallet.sign_text(request.text()).await?;
    Ok(request.encrypt(&mut OsRng, bundle, signature.as_bytes())?)
}

/// Recovers an identity from bytes read on the wallet's `privatestore` topic,
/// checking that it belongs to the wallet.
pub async fn recover_identity<W: WalletSigner + ?Sized>(
    wallet: &W,
    stored: &[u8],
) -> Result<PrivateKeyBundleV1, IdentityError> {
    let locked = LockedBundle::decode(stored)?;
    let signature = wallet.sign_text(locked.text()).await?;
    let bundle = locked.decrypt(signature.as_bytes())?;
    let owner = bundle.wallet_address()?;
    if owner != wallet.address() {
        return Err(PrivateStoreError::WrongWallet {
            expected: wallet.address(),
            actual: owner,
        }
        .into());
    }
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wallet::LocalWallet;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn identity_stored_by_a_wallet_is_recovered_by_it_only() {
        let (alice, bob) = (LocalWallet::random(), LocalWallet::random());
        block_on(async {
            let keys = create_identity(&alice, 1_700_000_000_000).await.unwrap();
            assert_eq!(keys.wallet_address().unwrap(), alice.address());
            let stored = store_identity(&alice, &keys).await.unwrap();
            let recovered = recover_identity(&alice, &stored).await.unwrap();
            assert_eq!(recovered.encode(), keys.encode());
            assert!(matches!(
                recover_identity(&bob, &stored).await,
                Err(IdentityError::Store(PrivateStoreError::Ciphertext(_)))
            ));
            // Bob cannot store Alice's keys under his wallet either.
            assert!(matches!(
                store_identity(&bob, &keys).await,
                Err(IdentityError::Store(PrivateStoreError::WrongWallet { .. }))
            ));
        });
    }
}
