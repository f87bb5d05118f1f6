//! In-memory installations for unit tests of the protocol steps: keys, a
//! verified public bundle, an address and a database, no node.

use xmtp_cryptography::{
    Address, Association, InstallationKeys, LocalWallet, VerifiedInstallation,
};

use crate::{
    fanout::Sender,
    storage::{DatabaseKey, Storage},
};

/// One installation, in memory.
pub(crate) struct Side {
    pub(crate) keys: InstallationKeys,
    pub(crate) public: VerifiedInstallation,
    pub(crate) address: Address,
    pub(crate) storage: Storage,
}

/// A new installation of `wallet`.
pub(crate) fn side(wallet: &LocalWallet) -> Side {
    let mut keys = InstallationKeys::new();
    keys.rotate_fallback_key();
    let association = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(Association::create(wallet, keys.installation_id(), 1))
        .unwrap();
    let public =
        VerifiedInstallation::from_proto(&keys.public_bundle(&association).unwrap()).unwrap();
    Side {
        keys,
        public,
        address: wallet.address(),
        storage: Storage::in_memory(&DatabaseKey::random()).unwrap(),
    }
}

impl Side {
    pub(crate) fn sender(&self) -> Sender<'_> {
        Sender {
            address: self.address,
            installation_id: self.public.installation_id(),
            identity_key: self.public.identity_key(),
            pickle_key: self.storage.pickle_key(),
        }
    }
}
