//! Keys and primitives of the XMTP v3 protocol. No I/O: every function is
//! synchronous and pure except [`wallet::WalletSigner::sign_text`], which an
//! app's wallet may answer asynchronously.
//!
//! - [`wallet`]: EVM wallets, EIP-191 signatures, EIP-55 addresses.
//! - [`association`]: the texts a wallet signs to grant or revoke an installation.
//! - [`installation`]: an installation's own keys (vodozemac `Account`).
//! - [`bundle`]: public key bundles, verified into [`bundle::VerifiedInstallation`].
//! - [`x3dh`]: Signal's X3DH key agreement.
//! - [`olm`], [`megolm`]: pairwise and group ratchets (vodozemac).
//! - [`aead`]: AES-256-GCM with HKDF-derived keys, for storage and secure channels.
//! - [`error`]: one error enum per concern.
//! - [`v2`]: XMTP's V1/V2 protocol, for talking to XMTP's existing users.
//!
//! The exact bytes signed and encrypted are documented in `docs/PROTOCOL.md`.
//!
//! ```
//! use xmtp_cryptography::{
//!     association::Association, bundle::VerifiedInstallation, installation::InstallationKeys,
//!     olm::OlmSession, wallet::{LocalWallet, WalletSigner},
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! // Bob's wallet grants his installation, and he publishes the bundle.
//! let bob_wallet = LocalWallet::random();
//! let mut bob = InstallationKeys::new();
//! let grant = rt.block_on(Association::create(&bob_wallet, bob.installation_id(), 1_700_000_000_000_000_000))?;
//! let bundle_bytes = VerifiedInstallation::from_proto(&bob.public_bundle(&grant)?)?.to_bytes();
//!
//! // Alice does the same, then verifies Bob's bundle and writes to him.
//! let alice_wallet = LocalWallet::random();
//! let alice = InstallationKeys::new();
//! let alice_grant = rt.block_on(Association::create(&alice_wallet, alice.installation_id(), 1_700_000_000_000_000_000))?;
//! let alice_public = VerifiedInstallation::from_proto(&alice.public_bundle(&alice_grant)?)?;
//! let bob_public = VerifiedInstallation::from_bytes(&bundle_bytes)?;
//! assert_eq!(bob_public.address(), bob_wallet.address());
//! let mut to_bob = OlmSession::outbound(&alice, &bob_public, &bob_public.fallback_as_claimed())?;
//! let ciphertext = to_bob.encrypt(b"gm")?;
//!
//! // Bob opens the session from the first message.
//! let (_session, plaintext) = OlmSession::inbound(&mut bob, &alice_public, &ciphertext)?;
//! assert_eq!(plaintext, b"gm");
//! # Ok(())
//! # }
//! ```

pub mod aead;
pub mod association;
pub mod bundle;
pub mod error;
pub mod installation;
pub mod megolm;
pub mod olm;
pub mod v2;
pub mod wallet;
pub mod x3dh;

pub use aead::SecretKey;
pub use association::{Association, Revocation};
pub use bundle::{verify_installations, ClaimedPreKey, InstallationSet, VerifiedInstallation};
pub use error::{
    AddressError, AeadError, AssociationError, BundleError, DecryptError, EncryptError,
    KeySignatureError, PickleError, SessionError, SignatureError, WalletError, X3dhError,
};
pub use installation::{InstallationId, InstallationKeys, PreKeyKind, SignedPreKey};
pub use megolm::{InboundGroupSession, OutboundGroupSession, ReplayGuard};
pub use olm::{OlmCiphertext, OlmMessageType, OlmSession};
pub use vodozemac::Curve25519PublicKey;
pub use wallet::{recover_address, Address, LocalWallet, RecoverableSignature, WalletSigner};
