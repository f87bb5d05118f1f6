//! The texts a wallet signs in XMTP's V1/V2 protocol, and the mapping between
//! recoverable signatures and the `Signature` proto.
//!
//! A wallet authorises an identity key by signing, with EIP-191
//! `personal_sign`, a text that names the key's encoded bytes in hex; it
//! unlocks the encrypted private key bundle by signing a text that names a
//! random 32-byte "wallet pre-key". Both texts must stay byte-identical to
//! XMTP's SDKs, or existing signatures stop verifying:
//!
//! ```text
//! "XMTP : Create Identity\n" || hex(key_bytes) || "\n\nFor more info: https://xmtp.org/signatures/"
//! "XMTP : Enable Identity\n" || hex(wallet_pre_key) || "\n\nFor more info: https://xmtp.org/signatures/"
//! digest = keccak256("\x19Ethereum Signed Message:\n" || len(text) || text)
//! ```
//!
//! Keys sign with SHA-256 digests and carry `ecdsa_compact`; wallets sign with
//! the EIP-191 digest and carry `wallet_ecdsa_compact` (V2) or, in V1 public
//! keys, `ecdsa_compact` as well.

use crate::wallet::Address;
use xmtp_proto::xmtp::message_contents::{signature, Signature};

use super::keys::{KeyError, PublicKey, RecoverableSignature};

const MORE_INFO: &str = "\n\nFor more info: https://xmtp.org/signatures/";

/// The text a wallet signs to authorise an identity key whose encoding is
/// `key_bytes` (a V1 `PublicKey` without signature, or a V2
/// `UnsignedPublicKey`).
pub fn create_identity_text(key_bytes: &[u8]) -> String {
    format!(
        "XMTP : Create Identity\n{}{MORE_INFO}",
        hex::encode(key_bytes)
    )
}

/// The text a wallet signs to encrypt or decrypt its private key bundle on
/// the `privatestore` topic.
pub fn enable_identity_text(wallet_pre_key: &[u8]) -> String {
    format!(
        "XMTP : Enable Identity\n{}{MORE_INFO}",
        hex::encode(wallet_pre_key)
    )
}

/// The EIP-191 `personal_sign` digest of `text`.
pub fn eip191_digest(text: &str) -> [u8; 32] {
    alloy_primitives::eip191_hash_message(text.as_bytes()).0
}

/// The address of the wallet that signed `text` with `signature`.
pub fn recover_wallet_address(
    text: &str,
    signature: &RecoverableSignature,
) -> Result<Address, KeyError> {
    PublicKey::recover(&eip191_digest(text), signature).map(|key| key.address())
}

/// Which kind of signer made a `Signature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureKind {
    /// `ecdsa_compact`: an XMTP key over a SHA-256 digest (or, in V1 public
    /// keys, a wallet).
    Key,
    /// `wallet_ecdsa_compact`: a wallet over an EIP-191 digest.
    Wallet,
}

/// Reads a `Signature` proto: its kind and the checked signature.
pub fn from_proto(
    signature: &Signature,
) -> Result<(SignatureKind, RecoverableSignature), KeyError> {
    match &signature.union {
        Some(signature::Union::EcdsaCompact(s)) => Ok((
            SignatureKind::Key,
            RecoverableSignature::from_parts(&s.bytes, s.recovery)?,
        )),
        Some(signature::Union::WalletEcdsaCompact(s)) => Ok((
            SignatureKind::Wallet,
            RecoverableSignature::from_parts(&s.bytes, s.recovery)?,
        )),
        None => Err(KeyError::MissingSignature),
    }
}

/// Writes a signature as a `Signature` proto of the given kind.
pub fn to_proto(kind: SignatureKind, signature: &RecoverableSignature) -> Signature {
    let bytes = signature.bytes.to_vec();
    let recovery = u32::from(signature.recovery);
    let union = match kind {
        SignatureKind::Key => {
            signature::Union::EcdsaCompact(signature::EcdsaCompact { bytes, recovery })
        }
        SignatureKind::Wallet => {
            signature::Union::WalletEcdsaCompact(signature::WalletEcdsaCompact { bytes, recovery })
        }
    };
    Signature { union: Some(union) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_have_the_sdk_layout() {
        assert_eq!(
            create_identity_text(&[0x08, 0xab]),
            "XMTP : Create Identity\n08ab\n\nFor more info: https://xmtp.org/signatures/"
        );
        assert_eq!(
            enable_identity_text(&[0xff]),
            "XMTP : Enable Identity\nff\n\nFor more info: https://xmtp.org/signatures/"
        );
    }

    #[test]
    fn proto_round_trip_keeps_the_kind() {
        let sig = RecoverableSignature::from_parts(&[3u8; 64], 1).unwrap();
        for kind in [SignatureKind::Key, SignatureKind::Wallet] {
            assert_eq!(from_proto(&to_proto(kind, &sig)).unwrap(), (kind, sig));
        }
        assert!(from_proto(&Signature { union: None }).is_err());
    }
}
