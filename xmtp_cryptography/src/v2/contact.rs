//! Contact bundles: what a user publishes on `/xmtp/0/contact-<address>/proto`
//! so that others can message it.
//!
//! xmtp-js 13 publishes a `ContactBundle{v1}` (the V1 public bundle) and a
//! `ContactBundle{v2}` (the V2 signed bundle). Very old clients published a
//! bare `PublicKeyBundle`, which is read when the bytes are not a
//! `ContactBundle`. Every contact is verified on decoding: the identity key
//! must be authorised by a wallet and the pre-key signed by the identity key.

use crate::wallet::Address;
use prost::Message;
use xmtp_proto::xmtp::message_contents::{
    contact_bundle, ContactBundle, ContactBundleV1, ContactBundleV2, PublicKeyBundle,
    SignedPublicKeyBundle,
};

use super::public_key::{BundleError, VerifiedPublicKeyBundle, VerifiedSignedBundle};

/// A verified contact.
#[derive(Debug, Clone, PartialEq)]
pub enum Contact {
    /// A V1 public bundle.
    V1(VerifiedPublicKeyBundle),
    /// A V2 signed bundle.
    V2(VerifiedSignedBundle),
}

impl Contact {
    /// Decodes and verifies a contact bundle.
    pub fn decode(bytes: &[u8]) -> Result<Self, BundleError> {
        let contact = match ContactBundle::decode(bytes) {
            Ok(contact) => contact,
            Err(_) => {
                return Ok(Self::V1(VerifiedPublicKeyBundle::verify(
                    &PublicKeyBundle::decode(bytes)?,
                )?));
            }
        };
        match contact.version {
            Some(contact_bundle::Version::V1(ContactBundleV1 {
                key_bundle: Some(b),
            })) => Ok(Self::V1(VerifiedPublicKeyBundle::verify(&b)?)),
            Some(contact_bundle::Version::V2(ContactBundleV2 {
                key_bundle: Some(b),
            })) => Ok(Self::V2(VerifiedSignedBundle::verify(&b)?)),
            _ => Err(BundleError::Missing("contact key bundle")),
        }
    }

    /// Decodes and verifies a contact read from `expected`'s contact topic,
    /// refusing one that another wallet authorised.
    pub fn decode_for(bytes: &[u8], expected: &Address) -> Result<Self, BundleError> {
        let contact = Self::decode(bytes)?;
        match &contact {
            Self::V1(b) => b.expect_wallet(expected)?,
            Self::V2(b) => b.expect_wallet(expected)?,
        }
        Ok(contact)
    }

    /// The wallet that owns the contact.
    pub fn wallet_address(&self) -> Address {
        match self {
            Self::V1(b) => b.wallet_address(),
            Self::V2(b) => b.wallet_address(),
        }
    }

    /// The contact's V2 bundle (converted from V1 as XMTP's SDKs do), to
    /// invite it to a V2 conversation.
    pub fn to_signed(&self) -> Result<VerifiedSignedBundle, BundleError> {
        match self {
            Self::V1(b) => b.to_signed(),
            Self::V2(b) => Ok(b.clone()),
        }
    }
}

/// Encodes a V1 contact bundle.
pub fn encode_v1(bundle: &PublicKeyBundle) -> Vec<u8> {
    ContactBundle {
        version: Some(contact_bundle::Version::V1(ContactBundleV1 {
            key_bundle: Some(bundle.clone()),
        })),
    }
    .encode_to_vec()
}

/// Encodes a V2 contact bundle.
pub fn encode_v2(bundle: &SignedPublicKeyBundle) -> Vec<u8> {
    ContactBundle {
        version: Some(contact_bundle::Version::V2(ContactBundleV2 {
            key_bundle: Some(bundle.clone()),
        })),
    }
    .encode_to_vec()
}
