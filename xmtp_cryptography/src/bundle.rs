//! Installation public key bundles, verified once at the boundary.
//!
//! A bundle is accepted only if every signature in it verifies:
//!
//! ```text
//! identity_key_signature = Ed25519(signing_key, "xmtp-v3-identity-key" || identity_key)
//! fallback_key.signature = Ed25519(signing_key, "xmtp-v3-fallback-key" || fallback_key.key)
//! association            = EIP-191 signature by account_address over the grant text
//!                          naming signing_key (see crate::association)
//! ```
//!
//! "Parse, don't validate": a [`VerifiedInstallation`] can only be made by
//! verifying a bundle, so code that holds one knows the installation speaks for
//! its address. [`verify_installations`] applies an address's revocations and
//! says why each other bundle was dropped.

use std::{collections::HashMap, fmt};

use prost::Message;
use vodozemac::Curve25519PublicKey;
use xmtp_proto::xmtp::v3::message_contents::{
    InstallationPublicKeyBundle, SignedCurve25519Key, WalletRevocation,
};

use crate::{
    association::{Association, Revocation},
    error::{AssociationError, BundleError},
    installation::{
        verify_pre_key, verify_pre_key_with, verify_with_key, InstallationId, InstallationKeys,
        PreKeyKind, SignedPreKey, IDENTITY_KEY_DOMAIN,
    },
    wallet::Address,
};

impl InstallationKeys {
    /// The public bundle of these keys, carrying the wallet's `association`
    /// of this installation.
    pub fn public_bundle(
        &self,
        association: &Association,
    ) -> Result<InstallationPublicKeyBundle, BundleError> {
        if association.installation_id() != self.installation_id() {
            return Err(BundleError::AssociationForOtherInstallation);
        }
        let fallback_key = self.fallback_key().ok_or(BundleError::NoFallbackKey)?;
        Ok(InstallationPublicKeyBundle {
            identity_key: self.identity_key().to_vec(),
            signing_key: self.installation_id().as_bytes().to_vec(),
            identity_key_signature: self.identity_key_signature().to_vec(),
            fallback_key: Some(fallback_key.to_proto()),
            association: Some(association.to_proto()),
        })
    }
}

/// An installation whose bundle verified: it speaks for [`Self::address`].
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedInstallation {
    bundle: InstallationPublicKeyBundle,
    association: Association,
    identity_key: Curve25519PublicKey,
    fallback_key: SignedPreKey,
}

impl VerifiedInstallation {
    /// Verifies a decoded bundle.
    pub fn from_proto(bundle: &InstallationPublicKeyBundle) -> Result<Self, BundleError> {
        let installation = InstallationId::from_slice(&bundle.signing_key).ok_or(
            BundleError::SigningKey(crate::error::KeySignatureError::BadPublicKey),
        )?;
        let key = installation
            .verifying_key()
            .map_err(BundleError::SigningKey)?;
        let identity_bytes: [u8; 32] = bundle
            .identity_key
            .as_slice()
            .try_into()
            .map_err(|_| BundleError::BadCurve25519Key("identity key"))?;
        verify_with_key(
            &key,
            IDENTITY_KEY_DOMAIN,
            &identity_bytes,
            &bundle.identity_key_signature,
        )
        .map_err(BundleError::IdentityKeySignature)?;
        let fallback = bundle
            .fallback_key
            .as_ref()
            .ok_or(BundleError::Missing("fallback key"))?;
        let fallback_key = verify_pre_key_with(&key, PreKeyKind::Fallback, fallback)?;
        let association = Association::from_proto(
            bundle
                .association
                .as_ref()
                .ok_or(BundleError::Missing("association"))?,
        )?;
        if association.installation_id() != installation {
            return Err(BundleError::AssociationForOtherInstallation);
        }
        Ok(Self {
            bundle: bundle.clone(),
            association,
            identity_key: Curve25519PublicKey::from_bytes(identity_bytes),
            fallback_key,
        })
    }

    /// Decodes and verifies a bundle's protobuf bytes. Only the canonical
    /// encoding is accepted, so one bundle has exactly one byte form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BundleError> {
        let bundle = InstallationPublicKeyBundle::decode(bytes)
            .map_err(|e| BundleError::Decode(e.to_string()))?;
        if bundle.encode_to_vec() != bytes {
            return Err(BundleError::NonCanonical);
        }
        Self::from_proto(&bundle)
    }

    /// The bundle as verified.
    pub fn to_proto(&self) -> InstallationPublicKeyBundle {
        self.bundle.clone()
    }

    /// The bundle's protobuf bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bundle.encode_to_vec()
    }

    /// The wallet this installation speaks for.
    pub fn address(&self) -> Address {
        self.association.account_address()
    }

    /// The installation id (its Ed25519 signing key).
    pub fn installation_id(&self) -> InstallationId {
        self.association.installation_id()
    }

    /// The Curve25519 identity key (Olm's identity key).
    pub fn identity_key(&self) -> Curve25519PublicKey {
        self.identity_key
    }

    /// The signed fallback key.
    pub fn fallback_key(&self) -> SignedPreKey {
        self.fallback_key
    }

    /// When the wallet granted this installation, ns since the Unix epoch.
    pub fn created_ns(&self) -> u64 {
        self.association.created_ns()
    }

    /// The wallet's grant.
    pub fn association(&self) -> &Association {
        &self.association
    }

    /// Verifies a pre-key claimed from the node for this installation.
    pub fn verify_claimed_key(
        &self,
        key: &SignedCurve25519Key,
        kind: PreKeyKind,
    ) -> Result<ClaimedPreKey, BundleError> {
        let key = verify_pre_key(&self.installation_id(), kind, key)?;
        Ok(ClaimedPreKey {
            installation: self.installation_id(),
            key,
        })
    }

    /// The bundle's own fallback key as a claimed key (for when the node had
    /// no one-time key left and the caller already holds the bundle).
    pub fn fallback_as_claimed(&self) -> ClaimedPreKey {
        ClaimedPreKey {
            installation: self.installation_id(),
            key: self.fallback_key,
        }
    }
}

impl fmt::Debug for VerifiedInstallation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedInstallation")
            .field("address", &self.address())
            .field("installation_id", &self.installation_id())
            .field("identity_key", &self.identity_key)
            .field("created_ns", &self.created_ns())
            .finish()
    }
}

/// A pre-key of a verified installation whose signature verified; the only
/// way to start an outbound Olm session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimedPreKey {
    installation: InstallationId,
    key: SignedPreKey,
}

impl ClaimedPreKey {
    /// The installation the key belongs to.
    pub fn installation_id(&self) -> InstallationId {
        self.installation
    }

    /// The signed key.
    pub fn signed_key(&self) -> &SignedPreKey {
        &self.key
    }

    /// The Curve25519 key.
    pub fn key(&self) -> Curve25519PublicKey {
        self.key.key()
    }

    /// One-time or fallback.
    pub fn kind(&self) -> PreKeyKind {
        self.key.kind()
    }
}

/// Why a bundle was left out of an address's installations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// A signature in the bundle does not verify, or it is malformed.
    Invalid(BundleError),
    /// The bundle is valid but its wallet is another address.
    OtherAddress(Address),
    /// The wallet revoked the installation (at this time, ns).
    Revoked(u64),
    /// Another valid bundle for the same installation was kept (the later
    /// association wins).
    Duplicate,
}

/// A bundle left out, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedInstallation {
    /// The bundle's signing key as sent (not necessarily 32 bytes).
    pub installation_key: Vec<u8>,
    /// Why it was dropped.
    pub reason: DropReason,
}

/// Why a revocation was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoredRevocationReason {
    /// It does not verify.
    Invalid(AssociationError),
    /// It is signed by another address.
    OtherAddress(Address),
}

/// A revocation not applied, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredRevocation {
    /// The installation key it names, as sent.
    pub installation_key: Vec<u8>,
    /// Why it was ignored.
    pub reason: IgnoredRevocationReason,
}

/// The outcome of [`verify_installations`].
#[derive(Debug, Clone, Default)]
pub struct InstallationSet {
    /// The verified, unrevoked installations, in input order.
    pub installations: Vec<VerifiedInstallation>,
    /// The bundles left out, and why.
    pub dropped: Vec<DroppedInstallation>,
    /// The revocations not applied, and why.
    pub ignored_revocations: Vec<IgnoredRevocation>,
}

/// The installations of `address`: the bundles that verify, are granted by
/// `address` and are not revoked by a valid revocation signed by `address`.
///
/// A revocation is final: it removes the installation whatever the times of
/// grant and revocation, since an installation's keys cannot be trusted again
/// once its wallet disowned it.
pub fn verify_installations(
    address: &Address,
    bundles: &[InstallationPublicKeyBundle],
    revocations: &[WalletRevocation],
) -> InstallationSet {
    let mut set = InstallationSet::default();
    let mut revoked: HashMap<InstallationId, u64> = HashMap::new();
    for proto in revocations {
        match Revocation::from_proto(proto) {
            Ok(revocation) if revocation.account_address() == *address => {
                let at = revoked
                    .entry(revocation.installation_id())
                    .or_insert(revocation.revoked_ns());
                *at = (*at).min(revocation.revoked_ns());
            }
            Ok(revocation) => set.ignored_revocations.push(IgnoredRevocation {
                installation_key: proto.installation_key.clone(),
                reason: IgnoredRevocationReason::OtherAddress(revocation.account_address()),
            }),
            Err(e) => set.ignored_revocations.push(IgnoredRevocation {
                installation_key: proto.installation_key.clone(),
                reason: IgnoredRevocationReason::Invalid(e),
            }),
        }
    }
    let mut kept: HashMap<InstallationId, usize> = HashMap::new();
    for bundle in bundles {
        let drop = |reason| DroppedInstallation {
            installation_key: bundle.signing_key.clone(),
            reason,
        };
        let verified = match VerifiedInstallation::from_proto(bundle) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(installation = %hex::encode(&bundle.signing_key), error = %e, "dropping invalid bundle");
                set.dropped.push(drop(DropReason::Invalid(e)));
                continue;
            }
        };
        if verified.address() != *address {
            tracing::warn!(installation = %verified.installation_id(), claimed = %verified.address(), expected = %address, "dropping bundle of another address");
            set.dropped
                .push(drop(DropReason::OtherAddress(verified.address())));
            continue;
        }
        if let Some(at) = revoked.get(&verified.installation_id()) {
            tracing::info!(installation = %verified.installation_id(), "dropping revoked installation");
            set.dropped.push(drop(DropReason::Revoked(*at)));
            continue;
        }
        match kept.get(&verified.installation_id()) {
            Some(&index) if set.installations[index].created_ns() >= verified.created_ns() => {
                set.dropped.push(drop(DropReason::Duplicate));
            }
            Some(&index) => {
                let old = std::mem::replace(&mut set.installations[index], verified);
                set.dropped.push(DroppedInstallation {
                    installation_key: old.installation_id().as_bytes().to_vec(),
                    reason: DropReason::Duplicate,
                });
            }
            None => {
                kept.insert(verified.installation_id(), set.installations.len());
                set.installations.push(verified);
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{association::Revocation, wallet::LocalWallet};

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn bundle_for(
        wallet: &LocalWallet,
        created_ns: u64,
    ) -> (InstallationKeys, InstallationPublicKeyBundle) {
        let keys = InstallationKeys::new();
        let association = block_on(Association::create(
            wallet,
            keys.installation_id(),
            created_ns,
        ))
        .unwrap();
        let bundle = keys.public_bundle(&association).unwrap();
        (keys, bundle)
    }

    #[test]
    fn a_fresh_bundle_verifies_and_exposes_its_keys() {
        let wallet = LocalWallet::random();
        let (keys, bundle) = bundle_for(&wallet, 99);
        let verified = VerifiedInstallation::from_bytes(&bundle.encode_to_vec()).unwrap();
        assert_eq!(verified.address(), wallet.address());
        assert_eq!(verified.installation_id(), keys.installation_id());
        assert_eq!(verified.identity_key(), keys.identity_key());
        assert_eq!(verified.fallback_key(), keys.fallback_key().unwrap());
        assert_eq!(verified.created_ns(), 99);
        assert_eq!(verified.to_proto(), bundle);
    }

    #[test]
    fn a_bundle_with_another_installations_association_is_rejected() {
        let wallet = LocalWallet::random();
        let (_, mut bundle) = bundle_for(&wallet, 1);
        let (_, other) = bundle_for(&wallet, 1);
        bundle.association = other.association;
        assert_eq!(
            VerifiedInstallation::from_proto(&bundle),
            Err(BundleError::AssociationForOtherInstallation)
        );
    }

    #[test]
    fn swapped_identity_key_is_rejected() {
        let wallet = LocalWallet::random();
        let (_, mut bundle) = bundle_for(&wallet, 1);
        bundle.identity_key = InstallationKeys::new().identity_key().to_vec();
        assert!(matches!(
            VerifiedInstallation::from_proto(&bundle),
            Err(BundleError::IdentityKeySignature(_))
        ));
    }

    #[test]
    fn missing_parts_are_typed_errors() {
        let wallet = LocalWallet::random();
        let (_, bundle) = bundle_for(&wallet, 1);
        let mut b = bundle.clone();
        b.fallback_key = None;
        assert_eq!(
            VerifiedInstallation::from_proto(&b),
            Err(BundleError::Missing("fallback key"))
        );
        let mut b = bundle.clone();
        b.association = None;
        assert_eq!(
            VerifiedInstallation::from_proto(&b),
            Err(BundleError::Missing("association"))
        );
        assert!(matches!(
            VerifiedInstallation::from_bytes(&[0xff, 0xff]),
            Err(BundleError::Decode(_))
        ));
        let mut bytes = bundle.encode_to_vec();
        bytes.extend_from_slice(&[0x30, 0x01]); // unknown field 6
        assert_eq!(
            VerifiedInstallation::from_bytes(&bytes),
            Err(BundleError::NonCanonical)
        );
    }

    #[test]
    fn claimed_keys_verify_against_their_installation_only() {
        let wallet = LocalWallet::random();
        let (mut keys, bundle) = bundle_for(&wallet, 1);
        let verified = VerifiedInstallation::from_proto(&bundle).unwrap();
        let otk = keys.generate_one_time_keys(1)[0];
        let claimed = verified
            .verify_claimed_key(&otk.to_proto(), PreKeyKind::OneTime)
            .unwrap();
        assert_eq!(claimed.key(), otk.key());
        assert_eq!(claimed.installation_id(), keys.installation_id());
        let (mut other, _) = bundle_for(&wallet, 1);
        let foreign = other.generate_one_time_keys(1)[0];
        assert!(verified
            .verify_claimed_key(&foreign.to_proto(), PreKeyKind::OneTime)
            .is_err());
    }

    #[test]
    fn verify_installations_applies_revocations_and_explains_drops() {
        let alice = LocalWallet::random();
        let mallory = LocalWallet::random();
        let (a1, b1) = bundle_for(&alice, 10);
        let (_, b2) = bundle_for(&alice, 20);
        let (_, forged) = bundle_for(&mallory, 30);
        let mut broken = b2.clone();
        broken.identity_key_signature[0] ^= 1;
        let revoke_a1 = block_on(Revocation::create(&alice, a1.installation_id(), 40))
            .unwrap()
            .to_proto();
        let foreign_revocation = block_on(Revocation::create(
            &mallory,
            InstallationId::from_slice(&b2.signing_key).unwrap(),
            40,
        ))
        .unwrap()
        .to_proto();
        let set = verify_installations(
            &alice.address(),
            &[b1.clone(), b2.clone(), forged, broken, b2.clone()],
            &[revoke_a1, foreign_revocation],
        );
        assert_eq!(set.installations.len(), 1);
        assert_eq!(set.installations[0].to_proto(), b2);
        let reasons: Vec<_> = set.dropped.iter().map(|d| d.reason.clone()).collect();
        assert_eq!(reasons.len(), 4);
        assert_eq!(reasons[0], DropReason::Revoked(40));
        assert_eq!(reasons[1], DropReason::OtherAddress(mallory.address()));
        assert!(matches!(
            reasons[2],
            DropReason::Invalid(BundleError::IdentityKeySignature(_))
        ));
        assert_eq!(reasons[3], DropReason::Duplicate);
        assert_eq!(set.ignored_revocations.len(), 1);
        assert_eq!(
            set.ignored_revocations[0].reason,
            IgnoredRevocationReason::OtherAddress(mallory.address())
        );
    }
}
