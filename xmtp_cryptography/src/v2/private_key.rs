//! Private keys and private key bundles of XMTP's V1/V2 protocol, the creation
//! of a wallet-authorised identity, and the 3-DH shared secret.
//!
//! An identity is made in two steps so that any wallet, local or behind FFI,
//! can sign asynchronously: [`IdentityRequest::new`] draws the identity key and
//! gives the text to sign; [`IdentityRequest::complete`] takes the wallet's
//! EIP-191 signature and adds a pre-key signed by the identity key.
//!
//! The shared secret is XMTP's variant of X3DH in which the sender's pre-key
//! stands in for the ephemeral key. Each term is the 65-byte uncompressed
//! point (see [`super::keys`]), so the secret is 195 bytes:
//!
//! ```text
//! sender    (is_recipient = false): dh(I_me, P_peer) || dh(P_me, I_peer) || dh(P_me, P_peer)
//! recipient (is_recipient = true):  dh(P_me, I_peer) || dh(I_me, P_peer) || dh(P_me, P_peer)
//! ```
//!
//! Both parties compute the same bytes when exactly one of them acts as the
//! recipient. Secrets live in [`SecretKey`] and [`SharedSecret`], which zeroize
//! on drop and print nothing secret.

use crate::wallet::Address;
use prost::Message;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use xmtp_proto::xmtp::message_contents::{
    self as proto, private_key, private_key_bundle, public_key, signed_private_key,
    PublicKeyBundle, SignedPublicKey, SignedPublicKeyBundle,
};
use zeroize::{Zeroize, Zeroizing};

use super::{
    keys::{KeyError, PublicKey, RecoverableSignature, SecretKey},
    public_key::{
        legacy_key_point, legacy_key_wallet_address, signed_from_legacy, signed_key_point,
        verify_key_signature, BundleError, VerifiedPublicKeyBundle, VerifiedSignedBundle,
    },
    signature::{self, SignatureKind},
};

/// Why private keys cannot be decoded, created or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrivateKeyError {
    /// The bytes are not an encoded private key bundle.
    #[error("not a private key bundle: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A required field is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The bundle is of a version this call does not take.
    #[error("unsupported private key bundle version")]
    UnsupportedVersion,
    /// A key or signature is malformed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A public key or its signature does not verify.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A stored public key is not the public key of its private key.
    #[error("public key does not match its private key")]
    PublicKeyMismatch,
    /// None of our pre-keys is the one named.
    #[error("no pre-key of ours matches {0:?}")]
    NoMatchingPreKey(PublicKey),
    /// The bundle has no pre-key.
    #[error("bundle has no pre-key")]
    NoPreKey,
    /// The wallet signature was made by another wallet than expected.
    #[error("identity signed by {actual}, expected {expected}")]
    WrongWallet {
        /// The wallet the caller expected.
        expected: Address,
        /// The wallet that signed.
        actual: Address,
    },
}

/// A 3-DH shared secret (195 bytes). Zeroized on drop; never printed.
pub struct SharedSecret(Zeroizing<Vec<u8>>);

impl SharedSecret {
    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

/// The 3-DH of XMTP's V1 and V2 bundles (see the module documentation).
pub fn three_dh(
    my_identity: &SecretKey,
    my_pre_key: &SecretKey,
    peer_identity: &PublicKey,
    peer_pre_key: &PublicKey,
    is_recipient: bool,
) -> SharedSecret {
    let (dh1, dh2) = if is_recipient {
        (
            my_pre_key.diffie_hellman(peer_identity),
            my_identity.diffie_hellman(peer_pre_key),
        )
    } else {
        (
            my_identity.diffie_hellman(peer_pre_key),
            my_pre_key.diffie_hellman(peer_identity),
        )
    };
    let dh3 = my_pre_key.diffie_hellman(peer_pre_key);
    let mut secret = Zeroizing::new(Vec::with_capacity(dh1.len() * 3));
    secret.extend_from_slice(dh1.as_slice());
    secret.extend_from_slice(dh2.as_slice());
    secret.extend_from_slice(dh3.as_slice());
    SharedSecret(secret)
}

fn secret_from_bytes(bytes: &[u8], public: &PublicKey) -> Result<SecretKey, PrivateKeyError> {
    let secret = SecretKey::from_bytes(bytes)?;
    if secret.public_key() != *public {
        return Err(PrivateKeyError::PublicKeyMismatch);
    }
    Ok(secret)
}

fn legacy_public(point: &PublicKey, timestamp_ms: u64) -> proto::PublicKey {
    proto::PublicKey {
        timestamp: timestamp_ms,
        signature: None,
        union: Some(public_key::Union::Secp256k1Uncompressed(
            public_key::Secp256k1Uncompressed {
                bytes: point.to_uncompressed().to_vec(),
            },
        )),
    }
}

/// A V1 private key with its (signed) public key.
#[derive(Debug, Clone)]
pub struct PrivateKeyV1 {
    secret: SecretKey,
    /// The private key's own creation time (milliseconds), kept as stored.
    timestamp: u64,
    public: proto::PublicKey,
    point: PublicKey,
}

impl PrivateKeyV1 {
    fn from_proto(key: &proto::PrivateKey) -> Result<Self, PrivateKeyError> {
        let public = key
            .public_key
            .clone()
            .ok_or(PrivateKeyError::Missing("public key"))?;
        let point = legacy_key_point(&public)?;
        let secret = match &key.union {
            Some(private_key::Union::Secp256k1(s)) => secret_from_bytes(&s.bytes, &point)?,
            None => return Err(PrivateKeyError::Missing("secp256k1 private key")),
        };
        Ok(Self {
            secret,
            timestamp: key.timestamp,
            public,
            point,
        })
    }

    fn to_proto(&self) -> proto::PrivateKey {
        proto::PrivateKey {
            timestamp: self.timestamp,
            union: Some(private_key::Union::Secp256k1(private_key::Secp256k1 {
                bytes: self.secret.to_bytes().to_vec(),
            })),
            public_key: Some(self.public.clone()),
        }
    }

    /// The signed public key.
    pub fn public_key(&self) -> &proto::PublicKey {
        &self.public
    }

    /// The public point.
    pub fn point(&self) -> &PublicKey {
        &self.point
    }

    /// The private key.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// Signs a digest (`ecdsa_compact`).
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Result<proto::Signature, PrivateKeyError> {
        Ok(signature::to_proto(
            SignatureKind::Key,
            &self.secret.sign_digest(digest)?,
        ))
    }

    fn to_v2(&self, signed_by_wallet: bool) -> Result<SignedPrivateKey, PrivateKeyError> {
        Ok(SignedPrivateKey {
            secret: self.secret.clone(),
            created_ns: self.timestamp.saturating_mul(1_000_000),
            public: signed_from_legacy(&self.public, signed_by_wallet)?,
            point: self.point,
        })
    }
}

/// A request to a wallet to authorise a new identity key (V1, the form
/// XMTP's SDKs create and store).
pub struct IdentityRequest {
    identity: SecretKey,
    public: proto::PublicKey,
    text: String,
}

impl IdentityRequest {
    /// Draws an identity key created at `created_ms` (milliseconds since the
    /// epoch) and prepares the "XMTP : Create Identity" text.
    pub fn new<R: RngCore + CryptoRng>(rng: &mut R, created_ms: u64) -> Self {
        let identity = SecretKey::random(rng);
        let public = legacy_public(&identity.public_key(), created_ms);
        let text = signature::create_identity_text(&public.encode_to_vec());
        Self {
            identity,
            public,
            text,
        }
    }

    /// The text the wallet must sign with EIP-191 `personal_sign`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Takes the wallet's 65-byte signature of [`Self::text`], checks that it
    /// was made by `expected` (when given), and returns the new bundle with one
    /// pre-key created at `created_ms`.
    pub fn complete<R: RngCore + CryptoRng>(
        self,
        rng: &mut R,
        wallet_signature: &[u8],
        expected: Option<Address>,
    ) -> Result<PrivateKeyBundleV1, PrivateKeyError> {
        let sig = RecoverableSignature::from_wallet_bytes(wallet_signature)?;
        let actual = signature::recover_wallet_address(&self.text, &sig)?;
        if let Some(expected) = expected {
            if expected != actual {
                return Err(PrivateKeyError::WrongWallet { expected, actual });
            }
        }
        let mut public = self.public;
        public.signature = Some(signature::to_proto(SignatureKind::Key, &sig));
        let point = self.identity.public_key();
        let created_ms = public.timestamp;
        let mut bundle = PrivateKeyBundleV1 {
            identity: PrivateKeyV1 {
                secret: self.identity,
                timestamp: created_ms,
                public,
                point,
            },
            pre_keys: Vec::new(),
        };
        bundle.add_pre_key(rng, created_ms)?;
        Ok(bundle)
    }
}

impl std::fmt::Debug for IdentityRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityRequest")
            .field("text", &self.text)
            .finish_non_exhaustive()
    }
}

/// A user's V1 private keys: the wallet-authorised identity key and its
/// pre-keys, newest first. This is what XMTP's SDKs store on the
/// `privatestore` topic.
#[derive(Debug, Clone)]
pub struct PrivateKeyBundleV1 {
    identity: PrivateKeyV1,
    pre_keys: Vec<PrivateKeyV1>,
}

impl PrivateKeyBundleV1 {
    /// Reads a bundle from its proto, checking that every public key belongs
    /// to its private key, that the identity key is wallet-signed and that each
    /// pre-key is signed by the identity key.
    pub fn from_proto(bundle: &proto::PrivateKeyBundleV1) -> Result<Self, PrivateKeyError> {
        let identity = PrivateKeyV1::from_proto(
            bundle
                .identity_key
                .as_ref()
                .ok_or(PrivateKeyError::Missing("identity key"))?,
        )?;
        legacy_key_wallet_address(&identity.public)?;
        let pre_keys = bundle
            .pre_keys
            .iter()
            .map(PrivateKeyV1::from_proto)
            .collect::<Result<Vec<_>, _>>()?;
        if pre_keys.is_empty() {
            return Err(PrivateKeyError::NoPreKey);
        }
        for pre in &pre_keys {
            VerifiedPublicKeyBundle::verify(&PublicKeyBundle {
                identity_key: Some(identity.public.clone()),
                pre_key: Some(pre.public.clone()),
            })?;
        }
        Ok(Self { identity, pre_keys })
    }

    /// Decodes an encoded `PrivateKeyBundle` holding a V1 bundle, or a bare
    /// `PrivateKeyBundleV1` (the legacy storage form XMTP's SDKs still read).
    pub fn decode(bytes: &[u8]) -> Result<Self, PrivateKeyError> {
        match proto::PrivateKeyBundle::decode(bytes) {
            Ok(proto::PrivateKeyBundle {
                version: Some(private_key_bundle::Version::V1(v1)),
            }) => Self::from_proto(&v1),
            Ok(proto::PrivateKeyBundle {
                version: Some(private_key_bundle::Version::V2(_)),
            }) => Err(PrivateKeyError::UnsupportedVersion),
            _ => Self::from_proto(&proto::PrivateKeyBundleV1::decode(bytes)?),
        }
    }

    /// Encodes the bundle as a `PrivateKeyBundle { v1 }`, in a buffer that
    /// zeroizes on drop.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut message = proto::PrivateKeyBundle {
            version: Some(private_key_bundle::Version::V1(proto::PrivateKeyBundleV1 {
                identity_key: Some(self.identity.to_proto()),
                pre_keys: self.pre_keys.iter().map(PrivateKeyV1::to_proto).collect(),
            })),
        };
        let out = Zeroizing::new(message.encode_to_vec());
        if let Some(private_key_bundle::Version::V1(v1)) = &mut message.version {
            for key in v1.identity_key.iter_mut().chain(v1.pre_keys.iter_mut()) {
                if let Some(private_key::Union::Secp256k1(s)) = &mut key.union {
                    s.bytes.zeroize();
                }
            }
        }
        out
    }

    /// Adds a new current pre-key, signed by the identity key.
    pub fn add_pre_key<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        created_ms: u64,
    ) -> Result<(), PrivateKeyError> {
        let secret = SecretKey::random(rng);
        let point = secret.public_key();
        let mut public = legacy_public(&point, created_ms);
        let digest: [u8; 32] = Sha256::digest(public.encode_to_vec()).into();
        public.signature = Some(self.identity.sign_digest(&digest)?);
        self.pre_keys.insert(
            0,
            PrivateKeyV1 {
                secret,
                timestamp: created_ms,
                public,
                point,
            },
        );
        Ok(())
    }

    /// The identity key.
    pub fn identity_key(&self) -> &PrivateKeyV1 {
        &self.identity
    }

    /// The pre-keys, newest first.
    pub fn pre_keys(&self) -> &[PrivateKeyV1] {
        &self.pre_keys
    }

    /// The current (newest) pre-key.
    pub fn current_pre_key(&self) -> Result<&PrivateKeyV1, PrivateKeyError> {
        self.pre_keys.first().ok_or(PrivateKeyError::NoPreKey)
    }

    /// The pre-key whose public point is `point`.
    pub fn find_pre_key(&self, point: &PublicKey) -> Result<&PrivateKeyV1, PrivateKeyError> {
        self.pre_keys
            .iter()
            .find(|k| k.point == *point)
            .ok_or(PrivateKeyError::NoMatchingPreKey(*point))
    }

    /// The wallet that authorised the identity key.
    pub fn wallet_address(&self) -> Result<Address, PrivateKeyError> {
        Ok(legacy_key_wallet_address(&self.identity.public)?)
    }

    /// The public bundle with the current pre-key (advertised in V1 contact
    /// bundles and V1 message headers).
    pub fn public_bundle(&self) -> Result<PublicKeyBundle, PrivateKeyError> {
        Ok(PublicKeyBundle {
            identity_key: Some(self.identity.public.clone()),
            pre_key: Some(self.current_pre_key()?.public.clone()),
        })
    }

    /// The V1 shared secret with `peer`, using our pre-key `my_pre_key`.
    pub fn shared_secret(
        &self,
        peer: &VerifiedPublicKeyBundle,
        my_pre_key: &PublicKey,
        is_recipient: bool,
    ) -> Result<SharedSecret, PrivateKeyError> {
        let pre = self.find_pre_key(my_pre_key)?;
        Ok(three_dh(
            &self.identity.secret,
            &pre.secret,
            peer.identity_key(),
            peer.pre_key(),
            is_recipient,
        ))
    }

    /// The same keys in V2 form, as XMTP's SDKs convert them
    /// (`PrivateKeyBundleV2.fromLegacyBundle`).
    pub fn to_v2(&self) -> Result<PrivateKeyBundleV2, PrivateKeyError> {
        PrivateKeyBundleV2::new(
            self.identity.to_v2(true)?,
            self.pre_keys
                .iter()
                .map(|k| k.to_v2(false))
                .collect::<Result<Vec<_>, _>>()?,
        )
    }
}

/// A V2 private key with its signed public key.
#[derive(Debug, Clone)]
pub struct SignedPrivateKey {
    secret: SecretKey,
    created_ns: u64,
    public: SignedPublicKey,
    point: PublicKey,
}

impl SignedPrivateKey {
    fn from_proto(key: &proto::SignedPrivateKey) -> Result<Self, PrivateKeyError> {
        let public = key
            .public_key
            .clone()
            .ok_or(PrivateKeyError::Missing("public key"))?;
        let point = signed_key_point(&public)?;
        let secret = match &key.union {
            Some(signed_private_key::Union::Secp256k1(s)) => secret_from_bytes(&s.bytes, &point)?,
            None => return Err(PrivateKeyError::Missing("secp256k1 private key")),
        };
        Ok(Self {
            secret,
            created_ns: key.created_ns,
            public,
            point,
        })
    }

    /// The signed public key.
    pub fn public_key(&self) -> &SignedPublicKey {
        &self.public
    }

    /// The public point.
    pub fn point(&self) -> &PublicKey {
        &self.point
    }

    /// Creation time, nanoseconds since the epoch.
    pub fn created_ns(&self) -> u64 {
        self.created_ns
    }

    /// The private key.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// Signs a digest (`ecdsa_compact`).
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Result<proto::Signature, PrivateKeyError> {
        Ok(signature::to_proto(
            SignatureKind::Key,
            &self.secret.sign_digest(digest)?,
        ))
    }
}

/// A user's V2 private keys, used for invitations and V2 messages.
#[derive(Debug, Clone)]
pub struct PrivateKeyBundleV2 {
    identity: SignedPrivateKey,
    pre_keys: Vec<SignedPrivateKey>,
    /// The verified public bundle with the current pre-key, kept so that
    /// every message does not verify our own signatures again.
    public: VerifiedSignedBundle,
}

impl PrivateKeyBundleV2 {
    /// Reads a bundle from its proto, checking keys and signatures.
    pub fn from_proto(bundle: &proto::PrivateKeyBundleV2) -> Result<Self, PrivateKeyError> {
        let identity = SignedPrivateKey::from_proto(
            bundle
                .identity_key
                .as_ref()
                .ok_or(PrivateKeyError::Missing("identity key"))?,
        )?;
        let pre_keys = bundle
            .pre_keys
            .iter()
            .map(SignedPrivateKey::from_proto)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(identity, pre_keys)
    }

    fn new(
        identity: SignedPrivateKey,
        pre_keys: Vec<SignedPrivateKey>,
    ) -> Result<Self, PrivateKeyError> {
        let current = pre_keys.first().ok_or(PrivateKeyError::NoPreKey)?;
        let public = VerifiedSignedBundle::verify(&SignedPublicKeyBundle {
            identity_key: Some(identity.public.clone()),
            pre_key: Some(current.public.clone()),
        })?;
        // Every older pre-key must be ours too.
        for pre in &pre_keys[1..] {
            verify_key_signature(
                &identity.point,
                &pre.public.key_bytes,
                pre.public.signature.as_ref(),
            )?;
        }
        Ok(Self {
            identity,
            pre_keys,
            public,
        })
    }

    /// The wallet that authorised the identity key.
    pub fn wallet_address(&self) -> Address {
        self.public.wallet_address()
    }

    /// The identity key.
    pub fn identity_key(&self) -> &SignedPrivateKey {
        &self.identity
    }

    /// The pre-keys, newest first.
    pub fn pre_keys(&self) -> &[SignedPrivateKey] {
        &self.pre_keys
    }

    /// The current (newest) pre-key.
    pub fn current_pre_key(&self) -> Result<&SignedPrivateKey, PrivateKeyError> {
        self.pre_keys.first().ok_or(PrivateKeyError::NoPreKey)
    }

    /// The pre-key whose public point is `point`.
    pub fn find_pre_key(&self, point: &PublicKey) -> Result<&SignedPrivateKey, PrivateKeyError> {
        self.pre_keys
            .iter()
            .find(|k| k.point == *point)
            .ok_or(PrivateKeyError::NoMatchingPreKey(*point))
    }

    /// The verified public bundle with the current pre-key (advertised in V2
    /// contact bundles, invitations and messages).
    pub fn public_bundle(&self) -> &VerifiedSignedBundle {
        &self.public
    }

    /// The V2 shared secret with `peer`, using our pre-key `my_pre_key`.
    pub fn shared_secret(
        &self,
        peer: &VerifiedSignedBundle,
        my_pre_key: &PublicKey,
        is_recipient: bool,
    ) -> Result<SharedSecret, PrivateKeyError> {
        let pre = self.find_pre_key(my_pre_key)?;
        Ok(three_dh(
            &self.identity.secret,
            &pre.secret,
            peer.identity_key(),
            peer.pre_key(),
            is_recipient,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wallet::LocalWallet;

    fn new_bundle(wallet: &LocalWallet) -> PrivateKeyBundleV1 {
        let mut rng = rand::thread_rng();
        let request = IdentityRequest::new(&mut rng, 1_700_000_000_000);
        let sig = wallet.sign_text_sync(request.text()).unwrap();
        request
            .complete(&mut rng, sig.as_bytes(), Some(wallet.address()))
            .unwrap()
    }

    #[test]
    fn identity_is_authorised_by_the_wallet_that_signed() {
        let wallet = LocalWallet::random();
        let bundle = new_bundle(&wallet);
        assert_eq!(bundle.wallet_address().unwrap(), wallet.address());
        let v2 = bundle.to_v2().unwrap();
        assert_eq!(v2.public_bundle().wallet_address(), wallet.address());
    }

    #[test]
    fn identity_signed_by_another_wallet_is_refused() {
        let mut rng = rand::thread_rng();
        let wallet = LocalWallet::random();
        let other = LocalWallet::random();
        let request = IdentityRequest::new(&mut rng, 1);
        let sig = other.sign_text_sync(request.text()).unwrap();
        assert!(matches!(
            request.complete(&mut rng, sig.as_bytes(), Some(wallet.address())),
            Err(PrivateKeyError::WrongWallet { .. })
        ));
    }

    #[test]
    fn three_dh_agrees_between_sender_and_recipient() {
        let alice = new_bundle(&LocalWallet::random()).to_v2().unwrap();
        let bob = new_bundle(&LocalWallet::random()).to_v2().unwrap();
        let a_pub = alice.public_bundle();
        let b_pub = bob.public_bundle();
        let a = alice.shared_secret(b_pub, a_pub.pre_key(), false).unwrap();
        let b = bob.shared_secret(a_pub, b_pub.pre_key(), true).unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes());
        assert_eq!(a.as_bytes().len(), 195);
        let wrong = bob.shared_secret(a_pub, b_pub.pre_key(), false).unwrap();
        assert_ne!(a.as_bytes(), wrong.as_bytes());
    }

    #[test]
    fn bundle_round_trips_through_its_encoding() {
        let bundle = new_bundle(&LocalWallet::random());
        let decoded = PrivateKeyBundleV1::decode(&bundle.encode()).unwrap();
        assert_eq!(decoded.encode(), bundle.encode());
        assert_eq!(
            decoded.wallet_address().unwrap(),
            bundle.wallet_address().unwrap()
        );
    }

    #[test]
    fn mismatched_public_key_is_refused() {
        let a = new_bundle(&LocalWallet::random());
        let b = new_bundle(&LocalWallet::random());
        let mut message = proto::PrivateKeyBundleV1 {
            identity_key: Some(a.identity.to_proto()),
            pre_keys: vec![a.pre_keys[0].to_proto()],
        };
        if let Some(id) = &mut message.identity_key {
            id.public_key = Some(b.identity.public.clone());
        }
        assert_eq!(
            PrivateKeyBundleV1::from_proto(&message).unwrap_err(),
            PrivateKeyError::PublicKeyMismatch
        );
    }

    #[test]
    fn shared_secret_debug_is_redacted() {
        let bundle = new_bundle(&LocalWallet::random()).to_v2().unwrap();
        let public = bundle.public_bundle();
        let secret = bundle
            .shared_secret(public, public.pre_key(), false)
            .unwrap();
        assert_eq!(format!("{secret:?}"), "SharedSecret(..)");
    }
}
