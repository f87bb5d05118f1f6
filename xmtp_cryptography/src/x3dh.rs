//! Signal's X3DH key agreement over X25519, HKDF-SHA256 and Ed25519, following
//! <https://signal.org/docs/specifications/x3dh/>.
//!
//! ```text
//! Bob publishes   IK_B, SPK_B, Sig = Ed25519(installation key, "xmtp-v3-x3dh-signed-pre-key" || IK_B || SPK_B),
//!                 optionally OPK_B
//! Alice checks Sig, draws EK_A and computes
//!   DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)   [DH4 = DH(EK_A, OPK_B)]
//!   SK  = HKDF-SHA256(salt = 0x00 * 32, ikm = F || DH1 || DH2 || DH3 [|| DH4], info = "XMTP_X3DH_v1")
//!         with F = 0xFF * 32 (the spec's prefix for X25519)
//!   AD  = Encode(IK_A) || Encode(IK_B), Encode = the 32-byte little-endian u-coordinate
//! Initial message: IK_A, EK_A, SPK_B, [OPK_B]
//! ```
//!
//! The identity keys are X25519 keys; instead of XEdDSA, Bob's identity is
//! bound by his installation's Ed25519 key (whose wallet association the
//! caller verified), which signs both IK_B and SPK_B. Every DH output must be
//! contributory (a low-order public key is refused). The initiator's IK_A is
//! authenticated by the caller (for instance by a signature of its own
//! installation key), not by X3DH itself, as in the spec.

use std::fmt;

use rand::rngs::OsRng;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::{
    aead::SecretKey,
    error::{KeySignatureError, X3dhError},
    installation::{InstallationId, InstallationKeys},
};

/// HKDF info string of the shared secret.
pub const X3DH_INFO: &[u8] = b"XMTP_X3DH_v1";
/// HKDF info of the key for the initial message, derived from SK.
pub const INITIAL_MESSAGE_INFO: &[u8] = b"XMTP_X3DH_v1 initial message";
/// Domain prefix of the signed pre-key's Ed25519 signature.
pub const SIGNED_PRE_KEY_DOMAIN: &[u8] = b"xmtp-v3-x3dh-signed-pre-key";
const F: [u8; 32] = [0xff; 32];
const SALT: [u8; 32] = [0u8; 32];
const INITIAL_MESSAGE_VERSION: u8 = 1;

/// An X25519 public key (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct X25519PublicKey([u8; 32]);

impl X25519PublicKey {
    /// From its 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes (Encode(PK)).
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for X25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "X25519PublicKey({})", hex::encode(self.0))
    }
}

/// An X25519 key pair (an identity key, a signed pre-key or a one-time
/// pre-key). The secret is zeroized on drop and never printed.
pub struct X25519KeyPair {
    secret: StaticSecret,
    public: X25519PublicKey,
}

impl X25519KeyPair {
    /// A random key pair.
    pub fn random() -> Self {
        Self::from_secret(StaticSecret::random_from_rng(OsRng))
    }

    /// A key pair from a fixed secret (for test vectors and restoring state).
    pub fn from_secret_bytes(bytes: [u8; 32]) -> Self {
        Self::from_secret(StaticSecret::from(bytes))
    }

    fn from_secret(secret: StaticSecret) -> Self {
        let public = X25519PublicKey(PublicKey::from(&secret).to_bytes());
        Self { secret, public }
    }

    /// The public key.
    pub const fn public_key(&self) -> X25519PublicKey {
        self.public
    }

    /// The secret bytes, for storing encrypted. Do not log them.
    pub fn secret_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.secret.to_bytes())
    }

    fn dh(&self, public: &X25519PublicKey) -> Result<zeroize::Zeroizing<[u8; 32]>, X3dhError> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(public.0));
        if !shared.was_contributory() {
            return Err(X3dhError::NonContributory);
        }
        Ok(zeroize::Zeroizing::new(shared.to_bytes()))
    }
}

impl fmt::Debug for X25519KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X25519KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The message the signed pre-key signature covers:
/// `"xmtp-v3-x3dh-signed-pre-key" || IK_B || SPK_B`.
pub fn signed_pre_key_message(
    identity_key: &X25519PublicKey,
    signed_pre_key: &X25519PublicKey,
) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNED_PRE_KEY_DOMAIN.len() + 64);
    message.extend_from_slice(SIGNED_PRE_KEY_DOMAIN);
    message.extend_from_slice(&identity_key.0);
    message.extend_from_slice(&signed_pre_key.0);
    message
}

impl InstallationKeys {
    /// Signs an X3DH signed pre-key (with the identity key it belongs to) with
    /// this installation's Ed25519 key.
    pub fn sign_x3dh_pre_key(
        &self,
        identity_key: &X25519PublicKey,
        signed_pre_key: &X25519PublicKey,
    ) -> [u8; 64] {
        self.account()
            .sign(signed_pre_key_message(identity_key, signed_pre_key))
            .to_bytes()
    }
}

/// What a responder publishes for X3DH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreKeyBundle {
    /// IK_B.
    pub identity_key: X25519PublicKey,
    /// The Ed25519 key that signs SPK_B: the responder's installation id.
    pub signing_key: InstallationId,
    /// SPK_B.
    pub signed_pre_key: X25519PublicKey,
    /// Ed25519 signature over [`signed_pre_key_message`].
    pub signed_pre_key_signature: [u8; 64],
    /// OPK_B, if one was handed out.
    pub one_time_pre_key: Option<X25519PublicKey>,
}

impl PreKeyBundle {
    /// Checks the signed pre-key's signature.
    pub fn verify(&self) -> Result<(), X3dhError> {
        // The domain is inside the message, so verify it with an empty extra domain.
        self.signing_key
            .verify_domain(
                &[],
                &signed_pre_key_message(&self.identity_key, &self.signed_pre_key),
                &self.signed_pre_key_signature,
            )
            .map_err(X3dhError::SignedPreKeySignature)
    }
}

/// The initiator's first message: which keys it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMessage {
    /// IK_A.
    pub identity_key: X25519PublicKey,
    /// EK_A.
    pub ephemeral_key: X25519PublicKey,
    /// The SPK_B used.
    pub signed_pre_key: X25519PublicKey,
    /// The OPK_B used, if any.
    pub one_time_pre_key: Option<X25519PublicKey>,
}

impl InitialMessage {
    /// `version (1) || has_opk (0|1) || IK_A || EK_A || SPK_B [|| OPK_B]`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 32 * 4);
        out.push(INITIAL_MESSAGE_VERSION);
        out.push(u8::from(self.one_time_pre_key.is_some()));
        out.extend_from_slice(&self.identity_key.0);
        out.extend_from_slice(&self.ephemeral_key.0);
        out.extend_from_slice(&self.signed_pre_key.0);
        if let Some(opk) = &self.one_time_pre_key {
            out.extend_from_slice(&opk.0);
        }
        out
    }

    /// Parses [`InitialMessage::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, X3dhError> {
        let (&version, rest) = bytes.split_first().ok_or(X3dhError::Malformed("empty"))?;
        if version != INITIAL_MESSAGE_VERSION {
            return Err(X3dhError::Malformed("unknown version"));
        }
        let (&has_opk, rest) = rest
            .split_first()
            .ok_or(X3dhError::Malformed("truncated"))?;
        let expected = match has_opk {
            0 => 96,
            1 => 128,
            _ => return Err(X3dhError::Malformed("bad one-time pre-key flag")),
        };
        if rest.len() != expected {
            return Err(X3dhError::Malformed("wrong length"));
        }
        let key = |i: usize| -> Result<X25519PublicKey, X3dhError> {
            let bytes: [u8; 32] = rest[i * 32..(i + 1) * 32]
                .try_into()
                .map_err(|_| X3dhError::Malformed("wrong length"))?;
            Ok(X25519PublicKey(bytes))
        };
        Ok(Self {
            identity_key: key(0)?,
            ephemeral_key: key(1)?,
            signed_pre_key: key(2)?,
            one_time_pre_key: if has_opk == 1 { Some(key(3)?) } else { None },
        })
    }
}

/// The result of X3DH on either side.
pub struct X3dhOutput {
    /// SK, the shared secret.
    pub shared_secret: SecretKey,
    /// AD = Encode(IK_A) || Encode(IK_B).
    pub associated_data: Vec<u8>,
}

impl X3dhOutput {
    /// The AEAD key for the initial message: HKDF(SK, "XMTP_X3DH_v1 initial message").
    pub fn initial_message_key(&self) -> SecretKey {
        self.shared_secret.derive_subkey(INITIAL_MESSAGE_INFO)
    }
}

impl fmt::Debug for X3dhOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X3dhOutput")
            .field("associated_data", &hex::encode(&self.associated_data))
            .finish_non_exhaustive()
    }
}

fn kdf(dhs: &[&[u8; 32]]) -> SecretKey {
    let mut ikm = zeroize::Zeroizing::new(Vec::with_capacity(32 * (dhs.len() + 1)));
    ikm.extend_from_slice(&F);
    for dh in dhs {
        ikm.extend_from_slice(dh.as_slice());
    }
    SecretKey::derive(&SALT, &ikm, X3DH_INFO)
}

fn associated_data(ik_a: &X25519PublicKey, ik_b: &X25519PublicKey) -> Vec<u8> {
    let mut ad = Vec::with_capacity(64);
    ad.extend_from_slice(&ik_a.0);
    ad.extend_from_slice(&ik_b.0);
    ad
}

/// Alice's side: verifies Bob's bundle, draws an ephemeral key, and returns SK,
/// AD and the initial message to send.
pub fn initiate(
    identity: &X25519KeyPair,
    bundle: &PreKeyBundle,
) -> Result<(X3dhOutput, InitialMessage), X3dhError> {
    initiate_with_ephemeral(identity, bundle, &X25519KeyPair::random())
}

/// [`initiate`] with a given ephemeral key: for fixed test vectors only. An
/// ephemeral key used twice breaks X3DH's guarantees.
pub fn initiate_with_ephemeral(
    identity: &X25519KeyPair,
    bundle: &PreKeyBundle,
    ephemeral: &X25519KeyPair,
) -> Result<(X3dhOutput, InitialMessage), X3dhError> {
    bundle.verify()?;
    let dh1 = identity.dh(&bundle.signed_pre_key)?;
    let dh2 = ephemeral.dh(&bundle.identity_key)?;
    let dh3 = ephemeral.dh(&bundle.signed_pre_key)?;
    let shared_secret = match &bundle.one_time_pre_key {
        Some(opk) => {
            let dh4 = ephemeral.dh(opk)?;
            kdf(&[&dh1, &dh2, &dh3, &dh4])
        }
        None => kdf(&[&dh1, &dh2, &dh3]),
    };
    let output = X3dhOutput {
        shared_secret,
        associated_data: associated_data(&identity.public, &bundle.identity_key),
    };
    let message = InitialMessage {
        identity_key: identity.public,
        ephemeral_key: ephemeral.public,
        signed_pre_key: bundle.signed_pre_key,
        one_time_pre_key: bundle.one_time_pre_key,
    };
    Ok((output, message))
}

/// Bob's side: from his keys and Alice's initial message, SK and AD. The
/// caller deletes the one-time pre-key afterwards.
pub fn respond(
    identity: &X25519KeyPair,
    signed_pre_key: &X25519KeyPair,
    one_time_pre_key: Option<&X25519KeyPair>,
    message: &InitialMessage,
) -> Result<X3dhOutput, X3dhError> {
    if message.signed_pre_key != signed_pre_key.public {
        return Err(X3dhError::UnknownSignedPreKey);
    }
    // X25519 ignores the top bit of a public key, so a key with it set is a
    // second encoding of another key: refuse it, or a tampered message would
    // still agree on the secret.
    if !is_canonical(&message.identity_key) || !is_canonical(&message.ephemeral_key) {
        return Err(X3dhError::Malformed("non-canonical X25519 public key"));
    }
    let dh1 = signed_pre_key.dh(&message.identity_key)?;
    let dh2 = identity.dh(&message.ephemeral_key)?;
    let dh3 = signed_pre_key.dh(&message.ephemeral_key)?;
    let shared_secret = match (&message.one_time_pre_key, one_time_pre_key) {
        (None, _) => kdf(&[&dh1, &dh2, &dh3]),
        (Some(used), Some(opk)) if *used == opk.public => {
            let dh4 = opk.dh(&message.ephemeral_key)?;
            kdf(&[&dh1, &dh2, &dh3, &dh4])
        }
        (Some(_), _) => return Err(X3dhError::UnknownOneTimePreKey),
    };
    Ok(X3dhOutput {
        shared_secret,
        associated_data: associated_data(&message.identity_key, &identity.public),
    })
}

/// Whether a public key is in its canonical encoding (top bit clear).
fn is_canonical(key: &X25519PublicKey) -> bool {
    key.as_bytes()[31] & 0x80 == 0
}

/// Maps a signature failure for callers that check pre-key signatures
/// themselves.
impl From<KeySignatureError> for X3dhError {
    fn from(error: KeySignatureError) -> Self {
        X3dhError::SignedPreKeySignature(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bob {
        installation: InstallationKeys,
        identity: X25519KeyPair,
        spk: X25519KeyPair,
        opk: X25519KeyPair,
    }

    impl Bob {
        fn new() -> Self {
            Self {
                installation: InstallationKeys::new(),
                identity: X25519KeyPair::random(),
                spk: X25519KeyPair::random(),
                opk: X25519KeyPair::random(),
            }
        }

        fn bundle(&self, with_opk: bool) -> PreKeyBundle {
            PreKeyBundle {
                identity_key: self.identity.public_key(),
                signing_key: self.installation.installation_id(),
                signed_pre_key: self.spk.public_key(),
                signed_pre_key_signature: self
                    .installation
                    .sign_x3dh_pre_key(&self.identity.public_key(), &self.spk.public_key()),
                one_time_pre_key: with_opk.then(|| self.opk.public_key()),
            }
        }
    }

    #[test]
    fn both_sides_agree_with_and_without_a_one_time_key() {
        let bob = Bob::new();
        let alice = X25519KeyPair::random();
        for with_opk in [true, false] {
            let (a, message) = initiate(&alice, &bob.bundle(with_opk)).unwrap();
            let message = InitialMessage::from_bytes(&message.to_bytes()).unwrap();
            let b = respond(&bob.identity, &bob.spk, Some(&bob.opk), &message).unwrap();
            assert_eq!(a.shared_secret, b.shared_secret);
            assert_eq!(a.associated_data, b.associated_data);
            assert_eq!(a.initial_message_key(), b.initial_message_key());
            assert_eq!(&a.associated_data[..32], alice.public_key().as_bytes());
            assert_eq!(
                &a.associated_data[32..],
                bob.identity.public_key().as_bytes()
            );
        }
    }

    #[test]
    fn a_bad_signed_pre_key_signature_is_refused() {
        let bob = Bob::new();
        let alice = X25519KeyPair::random();
        let mut bundle = bob.bundle(true);
        bundle.signed_pre_key_signature[0] ^= 1;
        assert!(matches!(
            initiate(&alice, &bundle),
            Err(X3dhError::SignedPreKeySignature(_))
        ));
        let mut bundle = bob.bundle(true);
        bundle.signed_pre_key = X25519KeyPair::random().public_key();
        assert!(matches!(
            initiate(&alice, &bundle),
            Err(X3dhError::SignedPreKeySignature(_))
        ));
        let mut bundle = bob.bundle(true);
        bundle.identity_key = X25519KeyPair::random().public_key();
        assert!(matches!(
            initiate(&alice, &bundle),
            Err(X3dhError::SignedPreKeySignature(_))
        ));
        let mut bundle = bob.bundle(true);
        bundle.signing_key = InstallationKeys::new().installation_id();
        assert!(matches!(
            initiate(&alice, &bundle),
            Err(X3dhError::SignedPreKeySignature(_))
        ));
    }

    #[test]
    fn the_responder_refuses_keys_it_does_not_hold() {
        let bob = Bob::new();
        let alice = X25519KeyPair::random();
        let (_, message) = initiate(&alice, &bob.bundle(true)).unwrap();
        assert_eq!(
            respond(&bob.identity, &bob.spk, None, &message).unwrap_err(),
            X3dhError::UnknownOneTimePreKey
        );
        let other = X25519KeyPair::random();
        assert_eq!(
            respond(&bob.identity, &bob.spk, Some(&other), &message).unwrap_err(),
            X3dhError::UnknownOneTimePreKey
        );
        assert_eq!(
            respond(&bob.identity, &other, Some(&bob.opk), &message).unwrap_err(),
            X3dhError::UnknownSignedPreKey
        );
    }

    #[test]
    fn a_low_order_key_is_refused() {
        let bob = Bob::new();
        let alice = X25519KeyPair::random();
        let (_, mut message) = initiate(&alice, &bob.bundle(false)).unwrap();
        message.ephemeral_key = X25519PublicKey::from_bytes([0; 32]);
        assert_eq!(
            respond(&bob.identity, &bob.spk, None, &message).unwrap_err(),
            X3dhError::NonContributory
        );
    }

    #[test]
    fn malformed_initial_messages_are_typed_errors() {
        assert!(InitialMessage::from_bytes(&[]).is_err());
        assert!(InitialMessage::from_bytes(&[1]).is_err());
        assert!(InitialMessage::from_bytes(&[2, 0]).is_err());
        assert!(InitialMessage::from_bytes(&[1, 2]).is_err());
        assert!(InitialMessage::from_bytes(&[1, 0, 0]).is_err());
        assert!(InitialMessage::from_bytes(&[vec![1, 1], vec![0; 96]].concat()).is_err());
        assert!(InitialMessage::from_bytes(&[vec![1, 0], vec![0; 96]].concat()).is_ok());
    }

    #[test]
    fn debug_hides_secrets() {
        let pair = X25519KeyPair::from_secret_bytes([0x42; 32]);
        let debug = format!("{pair:?}");
        assert!(!debug.contains(&hex::encode([0x42; 32])));
        assert_eq!(
            debug,
            format!("X25519KeyPair {{ public: {:?}, .. }}", pair.public_key())
        );
    }

    #[test]
    fn output_debug_shows_only_associated_data() {
        let bob = Bob::new();
        let (output, _) = initiate(&X25519KeyPair::random(), &bob.bundle(false)).unwrap();
        let debug = format!("{output:?}");
        assert_eq!(
            debug,
            format!(
                "X3dhOutput {{ associated_data: {:?}, .. }}",
                hex::encode(&output.associated_data)
            )
        );
        assert!(!debug.contains(&hex::encode(output.shared_secret.expose_secret())));
    }
}
