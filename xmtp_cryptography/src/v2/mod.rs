//! XMTP's V1/V2 protocol, byte for byte as XMTP's SDKs (xmtp-js 13,
//! xmtp-android, xmtp-ios) speak it, so that our users can talk to XMTP's
//! existing users and read their history.
//!
//! - [`keys`]: secp256k1 keys, recoverable signatures, uncompressed-point DH.
//! - [`signature`]: the wallet texts ("Create Identity", "Enable Identity").
//! - [`public_key`]: verified V1/V2 public bundles and their wallet address.
//! - [`private_key`]: private bundles, identity creation, the 3-DH secret.
//! - [`ciphertext`]: HKDF-SHA256 + AES-256-GCM with associated data.
//! - [`private_store`]: the wallet-encrypted private bundle (`privatestore`).
//! - [`identity`]: create, store and recover an identity with any wallet.
//! - [`contact`]: contact bundles. [`topic`]: content topics.
//! - [`invitation`]: random and deterministic invitations, sealed and opened.
//! - [`message`]: V1 and V2 messages, the sender signature and HMAC.
//! - [`authn`]: the node's bearer tokens.
//!
//! How a client uses the pieces (the client does the I/O):
//!
//! | step | call | topic |
//! | --- | --- | --- |
//! | make, store, recover an identity | [`identity::create_identity`], [`identity::store_identity`], [`identity::recover_identity`] | [`topic::private_store_topic`] |
//! | authenticate to the node | [`authn::create_token`], [`authn::bearer`] | |
//! | publish the contact | [`contact::encode_v1`], [`contact::encode_v2`] | [`topic::contact_topic`] |
//! | find a peer | [`contact::Contact::decode_for`], then [`contact::Contact::to_signed`] | [`topic::contact_topic`] |
//! | start a conversation | [`invitation::deterministic_invitation`], [`invitation::seal`] (envelope time = `created_ns`) | [`topic::invite_topic`] of both |
//! | list conversations | [`invitation::open`] with the envelope's timestamp | own [`topic::invite_topic`] |
//! | send, read | [`message::encode_v2`], [`message::decode_v2_cached`] (then check the sender is a party) | the invitation's topic |
//! | read V1 history | [`message::decode_v1`] | [`topic::direct_message_topic_v1`] |
//!
//! V2 has no forward secrecy: a conversation's key material never changes.
//! Our own conversations use the double ratchet; V2 is for interoperability.
//!
//! Addresses are [`crate::wallet::Address`]. Everything here is synchronous
//! and does no I/O: the wallet (any [`crate::wallet::WalletSigner`]) signs texts
//! the caller obtains from [`private_key::IdentityRequest`] and
//! [`private_store::EnableIdentityRequest`] / [`private_store::LockedBundle`].
//!
//! ```
//! use xmtp_cryptography::v2::{invitation, message, private_key::IdentityRequest};
//! use xmtp_cryptography::wallet::LocalWallet;
//!
//! let mut rng = rand::thread_rng();
//! let make = |wallet: &LocalWallet| {
//!     let mut rng = rand::thread_rng();
//!     let request = IdentityRequest::new(&mut rng, 1_700_000_000_000);
//!     let sig = wallet.sign_text_sync(request.text()).unwrap();
//!     request.complete(&mut rng, sig.as_bytes(), Some(wallet.address())).unwrap()
//! };
//! let (alice_wallet, bob_wallet) = (LocalWallet::random(), LocalWallet::random());
//! let alice = make(&alice_wallet).to_v2().unwrap();
//! let bob = make(&bob_wallet).to_v2().unwrap();
//!
//! // Alice invites Bob; Bob opens the invitation with his keys.
//! let bob_public = bob.public_bundle();
//! let invite = invitation::deterministic_invitation(&alice, bob_public, None).unwrap();
//! let sealed = invitation::seal(&mut rng, &alice, bob_public, 1, &invite).unwrap();
//! let opened = invitation::open(&bob, &sealed, Some(1)).unwrap();
//! assert_eq!(opened.peer_address(), alice_wallet.address());
//!
//! // Alice writes in the conversation; Bob reads and verifies it.
//! let key = invitation::key_material(&opened.invitation).unwrap();
//! let topic = &opened.invitation.topic;
//! let sent = message::encode_v2(&mut rng, &alice, topic, key, 2, b"hi", Some(true)).unwrap();
//! let read = message::decode_v2(&sent.bytes, topic, key).unwrap();
//! assert_eq!(read.payload, b"hi");
//! assert_eq!(read.sender_address, alice_wallet.address());
//! ```

pub mod authn;
pub mod ciphertext;
pub mod contact;
pub mod identity;
pub mod invitation;
pub mod keys;
pub mod message;
pub mod private_key;
pub mod private_store;
pub mod public_key;
pub mod signature;
pub mod topic;
