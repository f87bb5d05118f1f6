//! The crate's errors, one enum per concern.
//!
//! Every function that reads hostile input (a signature, a bundle, a
//! ciphertext, a pickle) returns one of these and never panics, so a caller can
//! log what went wrong and carry on.

use thiserror::Error;

/// A wallet address could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    /// The text is not `0x` followed by 40 hex digits.
    #[error("an address is 0x followed by 40 hex digits, got {0:?}")]
    Malformed(String),
    /// Mixed-case text whose capitals do not match the EIP-55 checksum.
    #[error("the EIP-55 checksum of {0:?} does not match")]
    BadChecksum(String),
}

/// A wallet failed to produce a signature, or a wallet key is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WalletError {
    /// The private key is not a valid secp256k1 scalar, or not 32 bytes of hex.
    #[error("invalid wallet private key")]
    InvalidKey,
    /// The signer (for example an app's wallet behind FFI) refused or failed.
    #[error("the wallet could not sign: {0}")]
    Signing(String),
    /// The signer returned a signature that does not recover to its own
    /// address.
    #[error("the wallet's signature recovers to {recovered}, not to its address {expected}")]
    WrongSigner {
        /// The address the wallet claims.
        expected: String,
        /// The address the signature recovers to.
        recovered: String,
    },
}

/// A wallet (EIP-191) signature could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// A recoverable signature is 65 bytes (r || s || v).
    #[error("a recoverable signature is 65 bytes, got {0}")]
    BadLength(usize),
    /// The recovery byte `v` is not 0, 1, 27 or 28.
    #[error("invalid recovery byte v = {0}")]
    BadRecoveryId(u8),
    /// The `s` value is in the upper half of the curve order (a malleated
    /// signature).
    #[error("signature s value is not normalized (high s)")]
    HighS,
    /// No public key can be recovered from the signature.
    #[error("no public key can be recovered from the signature")]
    Unrecoverable,
}

/// An Ed25519 signature by an installation key did not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeySignatureError {
    /// The public key is not 32 bytes or not a valid Ed25519 point.
    #[error("invalid Ed25519 public key")]
    BadPublicKey,
    /// The signature is not 64 bytes.
    #[error("an Ed25519 signature is 64 bytes, got {0}")]
    BadSignatureLength(usize),
    /// The signature does not verify under the key.
    #[error("the Ed25519 signature does not verify")]
    Invalid,
}

/// A wallet association (or revocation) is malformed or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AssociationError {
    /// The text version is not one this crate knows.
    #[error("unsupported association text version {0}")]
    UnsupportedVersion(u32),
    /// The claimed account address is not an EIP-55 address.
    #[error("bad account address: {0}")]
    BadAddress(#[from] AddressError),
    /// The claimed account address is not written in its EIP-55 form.
    #[error("account address {0:?} is not in EIP-55 form")]
    NotChecksummed(String),
    /// The installation key is not 32 bytes.
    #[error("an installation key is 32 bytes, got {0}")]
    BadInstallationKey(usize),
    /// The time is zero or does not fit the text format.
    #[error("invalid association time {0} ns")]
    BadTime(u64),
    /// The wallet signature is malformed.
    #[error("bad wallet signature: {0}")]
    Signature(#[from] SignatureError),
    /// The signature verifies, but for another address than the one claimed.
    #[error("the association is signed by {recovered}, not by the claimed {claimed}")]
    AddressMismatch {
        /// The address the association claims.
        claimed: String,
        /// The address the signature recovers to.
        recovered: String,
    },
    /// The wallet failed to sign.
    #[error("wallet error: {0}")]
    Wallet(#[from] WalletError),
}

/// A public key bundle is malformed or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BundleError {
    /// The bytes are not a protobuf `InstallationPublicKeyBundle`.
    #[error("the bundle is not valid protobuf: {0}")]
    Decode(String),
    /// The bytes decode, but are not the canonical encoding of what they
    /// decode to (extra, repeated or unknown fields).
    #[error("the bundle is not canonically encoded")]
    NonCanonical,
    /// A required field is absent.
    #[error("the bundle lacks its {0}")]
    Missing(&'static str),
    /// A Curve25519 key is not 32 bytes.
    #[error("the {0} is not a 32-byte Curve25519 key")]
    BadCurve25519Key(&'static str),
    /// The signature binding the identity key to the installation does not
    /// verify.
    #[error("identity key signature: {0}")]
    IdentityKeySignature(KeySignatureError),
    /// The fallback key's signature does not verify.
    #[error("fallback key signature: {0}")]
    FallbackKeySignature(KeySignatureError),
    /// A one-time key's signature does not verify.
    #[error("one-time key signature: {0}")]
    OneTimeKeySignature(KeySignatureError),
    /// The signing key is not a valid Ed25519 key.
    #[error("bad installation signing key: {0}")]
    SigningKey(KeySignatureError),
    /// The wallet association does not verify.
    #[error("wallet association: {0}")]
    Association(#[from] AssociationError),
    /// The association names another installation than the bundle's signing
    /// key.
    #[error("the association grants another installation than this bundle's")]
    AssociationForOtherInstallation,
    /// The installation has no fallback key to publish.
    #[error("the installation has no fallback key; rotate one first")]
    NoFallbackKey,
    /// A claimed key was issued for another installation.
    #[error("the claimed key belongs to another installation")]
    WrongInstallation,
}

/// X3DH key agreement failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum X3dhError {
    /// The signed pre-key's signature does not verify under the bundle's
    /// signing key.
    #[error("signed pre-key signature: {0}")]
    SignedPreKeySignature(KeySignatureError),
    /// A Diffie-Hellman output was all zeros (a low-order public key).
    #[error("a Diffie-Hellman output was not contributory (low-order public key)")]
    NonContributory,
    /// The initial message names a signed pre-key the responder does not hold.
    #[error("the initial message used another signed pre-key")]
    UnknownSignedPreKey,
    /// The initial message names a one-time pre-key the responder does not
    /// hold (or it was not supplied).
    #[error("the initial message used a one-time pre-key the responder does not have")]
    UnknownOneTimePreKey,
    /// The initial message is malformed.
    #[error("malformed initial message: {0}")]
    Malformed(&'static str),
}

/// An Olm session could not be created.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    /// The message to create an inbound session from is not a pre-key message.
    #[error("an inbound session starts from a pre-key message")]
    NotPreKeyMessage,
    /// The pre-key message's sender identity key is not the expected one.
    #[error("the pre-key message comes from another identity key than expected")]
    WrongSender,
    /// The pre-key message used a one-time key this installation does not
    /// hold (never had, or already used).
    #[error("the pre-key message used an unknown or spent one-time key")]
    UnknownOneTimeKey,
    /// The claimed key belongs to another installation than the peer.
    #[error("the claimed key belongs to another installation")]
    WrongInstallation,
    /// A Diffie-Hellman output was not contributory.
    #[error("non-contributory key exchange")]
    NonContributory,
    /// The first message does not decrypt, so no session was made.
    #[error("the pre-key message does not decrypt: {0}")]
    Decrypt(#[from] DecryptError),
    /// Another vodozemac failure.
    #[error("session creation failed: {0}")]
    Other(String),
}

/// A ciphertext could not be decrypted (Olm, Megolm).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecryptError {
    /// The bytes are not a message of the expected kind.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message type number is not 0 (pre-key) or 1 (normal).
    #[error("unknown Olm message type {0}")]
    UnknownMessageType(u64),
    /// The MAC or signature does not verify: the message was tampered with or
    /// belongs to another session.
    #[error("message authentication failed")]
    Authentication,
    /// The message key is gone: a replay of a message already decrypted, or a
    /// message too far back or too far ahead.
    #[error("no message key for this message (replay, or outside the skipped-key window)")]
    MissingMessageKey,
    /// A Megolm message from before the first index this session knows.
    #[error("message index {index} is before the first known index {first_known}")]
    UnknownMessageIndex {
        /// The message's index.
        index: u32,
        /// The first index this inbound session can decrypt.
        first_known: u32,
    },
    /// A Megolm message index already seen for this session.
    #[error("replay of message {index} of group session {session_id}")]
    Replay {
        /// The group session.
        session_id: String,
        /// The replayed index.
        index: u32,
    },
    /// Another vodozemac failure.
    #[error("decryption failed: {0}")]
    Other(String),
}

/// Encrypting an Olm or Megolm message failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncryptError {
    /// vodozemac refused to encrypt (for example a session that may not send).
    #[error("encryption failed: {0}")]
    Olm(String),
}

/// A pickle (encrypted saved state) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PickleError {
    /// The pickle does not decrypt under the key: wrong key, or tampered.
    #[error("the pickle does not decrypt under this key, or was tampered with")]
    Decrypt,
    /// The pickle decrypts but its content is malformed.
    #[error("malformed pickle: {0}")]
    Malformed(String),
    /// The pickle's format version is unknown.
    #[error("unsupported pickle version {0}")]
    UnsupportedVersion(u32),
}

/// AES-256-GCM sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AeadError {
    /// The ciphertext is shorter than a nonce and a tag.
    #[error("ciphertext too short: {0} bytes")]
    TooShort(usize),
    /// A key is not 32 bytes.
    #[error("an AES-256 key is 32 bytes, got {0}")]
    BadKeyLength(usize),
    /// The tag does not verify: wrong key, wrong associated data, or tampered.
    #[error("authentication failed (wrong key, wrong associated data, or tampered)")]
    Authentication,
    /// The plaintext is too long for one AES-GCM message.
    #[error("plaintext too long")]
    TooLong,
}
