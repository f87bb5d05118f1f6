//! Wallet identities: EVM accounts that sign text with EIP-191 `personal_sign`.
//!
//! ```text
//! hash      = keccak256("\x19Ethereum Signed Message:\n" || len(text) || text)
//! signature = r (32) || s (32) || v (1, 27 or 28)           secp256k1 ECDSA, low s
//! address   = keccak256(uncompressed public key)[12..32]    shown as EIP-55 mixed case
//! ```
//!
//! An account owns an identity; [`WalletSigner`] is "something that can sign
//! text for an address", asynchronously, so that a mobile app's own wallet can
//! sign through FFI. [`LocalWallet`] is the in-process signer for tests, the
//! CLI and agents; [`LocalWallet::random`] makes an ephemeral, anonymous
//! identity on the spot. [`recover_address`] is the verifier: it recovers the
//! address from a 65-byte signature and accepts only non-malleable encodings
//! (v in {0, 1, 27, 28}, low s), so that one signature has one byte form.

use std::{fmt, str::FromStr};

use alloy_primitives::{Address as AlloyAddress, Signature, B256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::error::{AddressError, SignatureError, WalletError};

/// An EVM account address (20 bytes), displayed in EIP-55 mixed case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address([u8; 20]);

impl Address {
    /// The address from its 20 bytes.
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// The 20 address bytes.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The EIP-55 mixed-case form, `0x` and 40 hex digits.
    pub fn to_checksum(&self) -> String {
        AlloyAddress::from(self.0).to_checksum(None)
    }

    /// Parses only the exact EIP-55 form (what signed texts and protos carry).
    pub fn parse_checksummed(text: &str) -> Result<Self, AddressError> {
        let address = Self::parse_hex(text)?;
        if address.to_checksum() == text {
            Ok(address)
        } else {
            Err(AddressError::BadChecksum(text.to_owned()))
        }
    }
}

impl Address {
    /// `0x` and 40 hex digits, any case, checksum not checked.
    fn parse_hex(text: &str) -> Result<Self, AddressError> {
        let malformed = || AddressError::Malformed(text.chars().take(64).collect());
        let digits = text.strip_prefix("0x").ok_or_else(malformed)?;
        if digits.len() != 40 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed());
        }
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| malformed())?;
        Ok(Self(bytes))
    }
}

impl FromStr for Address {
    type Err = AddressError;

    /// Parses `0x` and 40 hex digits: all lowercase, all uppercase, or mixed
    /// case with a correct EIP-55 checksum.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let address = Self::parse_hex(text)?;
        let digits = &text[2..];
        let has_lower = digits.bytes().any(|b| b.is_ascii_lowercase());
        let has_upper = digits.bytes().any(|b| b.is_ascii_uppercase());
        if has_lower && has_upper && address.to_checksum() != text {
            return Err(AddressError::BadChecksum(text.to_owned()));
        }
        Ok(address)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.to_checksum())
    }
}

impl From<AlloyAddress> for Address {
    fn from(address: AlloyAddress) -> Self {
        Self(address.into_array())
    }
}

/// A 65-byte recoverable secp256k1 signature, `r || s || v`, as a wallet's
/// `personal_sign` returns it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecoverableSignature([u8; 65]);

impl RecoverableSignature {
    /// Length in bytes.
    pub const LEN: usize = 65;

    /// Wraps 65 bytes; the shape is checked when the signature is used.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, SignatureError> {
        let array: [u8; 65] = bytes
            .try_into()
            .map_err(|_| SignatureError::BadLength(bytes.len()))?;
        Ok(Self(array))
    }

    /// The 65 bytes.
    pub const fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }

    /// The 65 bytes as a vector (for protobuf fields).
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.to_vec()
    }

    /// Recovers the address that signed `text` with EIP-191 `personal_sign`.
    pub fn recover(&self, text: &str) -> Result<Address, SignatureError> {
        let v = self.0[64];
        if !matches!(v, 0 | 1 | 27 | 28) {
            return Err(SignatureError::BadRecoveryId(v));
        }
        let signature =
            Signature::from_raw_array(&self.0).map_err(|_| SignatureError::BadRecoveryId(v))?;
        if signature.normalize_s().is_some() {
            return Err(SignatureError::HighS);
        }
        signature
            .recover_address_from_msg(text.as_bytes())
            .map(Address::from)
            .map_err(|_| SignatureError::Unrecoverable)
    }
}

impl fmt::Debug for RecoverableSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoverableSignature({})", hex::encode(self.0))
    }
}

/// Recovers the EIP-55 address that signed `text` (EIP-191 `personal_sign`)
/// from a 65-byte signature.
pub fn recover_address(text: &str, signature: &[u8]) -> Result<Address, SignatureError> {
    RecoverableSignature::from_slice(signature)?.recover(text)
}

/// Something that can sign text for an address: a local key, or an app's
/// wallet reached through FFI.
#[async_trait]
pub trait WalletSigner: Send + Sync {
    /// The account address this signer signs for.
    fn address(&self) -> Address;

    /// Signs `text` with EIP-191 `personal_sign`.
    async fn sign_text(&self, text: &str) -> Result<RecoverableSignature, WalletError>;
}

/// A wallet whose secp256k1 private key is held in this process.
///
/// The key is zeroized on drop (by `k256`); `Debug` shows only the address.
#[derive(Clone)]
pub struct LocalWallet {
    signer: PrivateKeySigner,
}

impl LocalWallet {
    /// A new random wallet: an ephemeral, anonymous identity.
    pub fn random() -> Self {
        Self {
            signer: PrivateKeySigner::random(),
        }
    }

    /// A wallet from its 32-byte private key.
    pub fn from_key_bytes(bytes: &[u8; 32]) -> Result<Self, WalletError> {
        let signer = PrivateKeySigner::from_bytes(&B256::from(*bytes))
            .map_err(|_| WalletError::InvalidKey)?;
        Ok(Self { signer })
    }

    /// A wallet from its private key in hex (64 digits, `0x` optional).
    pub fn from_hex(text: &str) -> Result<Self, WalletError> {
        let digits = text.trim().strip_prefix("0x").unwrap_or(text.trim());
        let mut bytes = Zeroizing::new([0u8; 32]);
        if digits.len() != 64 {
            return Err(WalletError::InvalidKey);
        }
        hex::decode_to_slice(digits, bytes.as_mut_slice()).map_err(|_| WalletError::InvalidKey)?;
        Self::from_key_bytes(&bytes)
    }

    /// The 32-byte private key, for storing (encrypted) by the caller.
    pub fn to_key_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signer.to_bytes().0)
    }

    /// The private key as 64 lowercase hex digits (no `0x`).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(*self.to_key_bytes()))
    }

    /// The account address.
    pub fn address(&self) -> Address {
        Address::from(self.signer.address())
    }

    /// Signs `text` with EIP-191 `personal_sign`, synchronously.
    pub fn sign_text_sync(&self, text: &str) -> Result<RecoverableSignature, WalletError> {
        let signature = self
            .signer
            .sign_message_sync(text.as_bytes())
            .map_err(|e| WalletError::Signing(e.to_string()))?;
        Ok(RecoverableSignature(signature.as_bytes()))
    }
}

#[async_trait]
impl WalletSigner for LocalWallet {
    fn address(&self) -> Address {
        LocalWallet::address(self)
    }

    async fn sign_text(&self, text: &str) -> Result<RecoverableSignature, WalletError> {
        self.sign_text_sync(text)
    }
}

impl fmt::Debug for LocalWallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalWallet({})", self.address())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The private key of Hardhat's and Anvil's first well-known test account.
    const TEST_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    const TEST_ADDRESS: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

    #[test]
    fn known_key_has_known_address() {
        let wallet = LocalWallet::from_hex(TEST_KEY).unwrap();
        assert_eq!(wallet.address().to_string(), TEST_ADDRESS);
        assert_eq!(*wallet.to_hex(), TEST_KEY);
    }

    #[test]
    fn signature_recovers_to_signer() {
        let wallet = LocalWallet::random();
        let signature = wallet.sign_text_sync("hello").unwrap();
        assert_eq!(signature.recover("hello").unwrap(), wallet.address());
        assert_ne!(
            signature.recover("hellO").unwrap_or(Address([0; 20])),
            wallet.address()
        );
    }

    #[test]
    fn eip191_signature_matches_viems_published_vector() {
        // RFC 6979 makes the signature deterministic; viem's signMessage tests
        // publish this one for the same key and text.
        let wallet = LocalWallet::from_hex(TEST_KEY).unwrap();
        let signature = wallet.sign_text_sync("hello world").unwrap();
        assert_eq!(
            hex::encode(signature.as_bytes()),
            "a461f509887bd19e312c0c58467ce8ff8e300d3c1a90b608a760c5b80318eaf15fe57c96f9175d6cd4daad4663763baa7e78836e067d0163e9a2ccf2ff753f5b1b"
        );
        assert_eq!(
            recover_address("hello world", signature.as_bytes())
                .unwrap()
                .to_string(),
            TEST_ADDRESS
        );
    }

    #[test]
    fn recover_rejects_bad_length_and_v() {
        assert_eq!(
            recover_address("x", &[0; 64]),
            Err(SignatureError::BadLength(64))
        );
        let wallet = LocalWallet::random();
        let mut bytes = *wallet.sign_text_sync("x").unwrap().as_bytes();
        bytes[64] = 59; // an EIP-155 v with the same parity as 27
        assert_eq!(
            recover_address("x", &bytes),
            Err(SignatureError::BadRecoveryId(59))
        );
    }

    #[test]
    fn recover_rejects_high_s() {
        let wallet = LocalWallet::random();
        let signature = wallet.sign_text_sync("x").unwrap();
        let parsed = Signature::from_raw_array(signature.as_bytes()).unwrap();
        let order = alloy_primitives::U256::from_be_slice(
            &hex::decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
                .unwrap(),
        );
        let high = Signature::new(parsed.r(), order - parsed.s(), !parsed.v());
        assert_eq!(
            recover_address("x", &high.as_bytes()),
            Err(SignatureError::HighS)
        );
    }

    #[test]
    fn address_parsing_accepts_checksummed_and_lowercase_only() {
        let address: Address = TEST_ADDRESS.parse().unwrap();
        assert_eq!(
            TEST_ADDRESS.to_lowercase().parse::<Address>().unwrap(),
            address
        );
        assert_eq!(
            format!("0x{}", TEST_ADDRESS[2..].to_uppercase())
                .parse::<Address>()
                .unwrap(),
            address
        );
        let wrong_case = TEST_ADDRESS.replace('F', "f").replacen("f39f", "f39F", 1);
        assert!(matches!(
            wrong_case.parse::<Address>(),
            Err(AddressError::BadChecksum(_))
        ));
        for bad in [
            "",
            "0x",
            "f39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb9226",
            "0xg39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb922666",
        ] {
            assert!(
                matches!(bad.parse::<Address>(), Err(AddressError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(Address::parse_checksummed(&TEST_ADDRESS.to_lowercase()).is_err());
        assert_eq!(Address::parse_checksummed(TEST_ADDRESS).unwrap(), address);
    }

    #[test]
    fn eip55_matches_the_eip_examples() {
        for text in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let address: Address = text.to_lowercase().parse().unwrap();
            assert_eq!(address.to_string(), text);
        }
    }

    #[test]
    fn debug_shows_address_not_key() {
        let wallet = LocalWallet::from_hex(TEST_KEY).unwrap();
        let debug = format!("{wallet:?}");
        assert_eq!(debug, format!("LocalWallet({TEST_ADDRESS})"));
        assert!(!debug.contains(&TEST_KEY[..16]));
    }

    #[test]
    fn from_hex_rejects_bad_keys() {
        assert_eq!(
            LocalWallet::from_hex("00").unwrap_err(),
            WalletError::InvalidKey
        );
        assert_eq!(
            LocalWallet::from_hex(&"0".repeat(64)).unwrap_err(),
            WalletError::InvalidKey
        );
        assert_eq!(
            LocalWallet::from_hex(&"z".repeat(64)).unwrap_err(),
            WalletError::InvalidKey
        );
    }
}
