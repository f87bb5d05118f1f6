//! Wallet associations: a wallet grants an installation the right to speak for
//! its address, or revokes that right, by signing a versioned human-readable
//! text with EIP-191 `personal_sign`.
//!
//! The grant text, version 1 (lines joined by `\n`, no trailing newline):
//!
//! ```text
//! XMTP : Grant installation
//!
//! I allow this installation to send and receive messages for my account.
//!
//! Account: <EIP-55 address>
//! Installation: <64 lowercase hex digits of the installation's Ed25519 key>
//! Created at: <RFC 3339 UTC time with 9 fractional digits>
//! Version: 1
//! ```
//!
//! The revocation text is the same with `Revoke installation`, the sentence
//! `I revoke this installation: it may no longer send or receive messages for
//! my account.` and `Revoked at:`. The time is the proto's nanosecond field
//! written out exactly, so the text can be rebuilt from the proto and checked.
//! The exact texts are pinned by fixed-vector tests and documented in
//! docs/PROTOCOL.md; a change needs a new version number.

use std::fmt;

use xmtp_proto::xmtp::v3::message_contents::{WalletAssociation, WalletRevocation};

use crate::{
    error::AssociationError,
    installation::InstallationId,
    wallet::{Address, LocalWallet, RecoverableSignature, WalletSigner},
};

/// The version of the association and revocation texts this crate writes and
/// reads.
pub const TEXT_VERSION: u32 = 1;

/// What a text says: a grant or a revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Grant,
    Revoke,
}

fn signed_text(
    kind: Kind,
    account: &Address,
    installation: &InstallationId,
    time_ns: u64,
) -> Result<String, AssociationError> {
    let time = rfc3339_nanos(time_ns).ok_or(AssociationError::BadTime(time_ns))?;
    let (title, sentence, time_label) = match kind {
        Kind::Grant => (
            "Grant installation",
            "I allow this installation to send and receive messages for my account.",
            "Created at",
        ),
        Kind::Revoke => (
            "Revoke installation",
            "I revoke this installation: it may no longer send or receive messages for my account.",
            "Revoked at",
        ),
    };
    Ok(format!(
        "XMTP : {title}\n\n{sentence}\n\nAccount: {account}\nInstallation: {installation}\n{time_label}: {time}\nVersion: {TEXT_VERSION}"
    ))
}

/// The exact text a wallet signs to grant `installation` the right to speak
/// for `account` at `created_ns` (nanoseconds since the Unix epoch).
pub fn association_text(
    account: &Address,
    installation: &InstallationId,
    created_ns: u64,
) -> Result<String, AssociationError> {
    signed_text(Kind::Grant, account, installation, created_ns)
}

/// The exact text a wallet signs to revoke `installation` at `revoked_ns`.
pub fn revocation_text(
    account: &Address,
    installation: &InstallationId,
    revoked_ns: u64,
) -> Result<String, AssociationError> {
    signed_text(Kind::Revoke, account, installation, revoked_ns)
}

/// The signed facts shared by a grant and a revocation.
#[derive(Clone, PartialEq, Eq)]
struct Signed {
    account: Address,
    installation: InstallationId,
    time_ns: u64,
    signature: RecoverableSignature,
}

impl Signed {
    async fn sign(
        kind: Kind,
        wallet: &dyn WalletSigner,
        installation: InstallationId,
        time_ns: u64,
    ) -> Result<Self, AssociationError> {
        if time_ns == 0 {
            return Err(AssociationError::BadTime(0));
        }
        let account = wallet.address();
        let text = signed_text(kind, &account, &installation, time_ns)?;
        let signature = wallet.sign_text(&text).await?;
        let recovered = signature.recover(&text)?;
        if recovered != account {
            return Err(AssociationError::AddressMismatch {
                claimed: account.to_string(),
                recovered: recovered.to_string(),
            });
        }
        Ok(Self {
            account,
            installation,
            time_ns,
            signature,
        })
    }

    /// Signs with a key held in this process. The address is derived from the
    /// very key that signs, so the signature needs no self-check.
    fn sign_local(
        kind: Kind,
        wallet: &LocalWallet,
        installation: InstallationId,
        time_ns: u64,
    ) -> Result<Self, AssociationError> {
        if time_ns == 0 {
            return Err(AssociationError::BadTime(0));
        }
        let account = wallet.address();
        let text = signed_text(kind, &account, &installation, time_ns)?;
        let signature = wallet.sign_text_sync(&text)?;
        Ok(Self {
            account,
            installation,
            time_ns,
            signature,
        })
    }

    fn verify(
        kind: Kind,
        version: u32,
        account: &str,
        installation: &[u8],
        time_ns: u64,
        signature: &[u8],
    ) -> Result<Self, AssociationError> {
        if version != TEXT_VERSION {
            return Err(AssociationError::UnsupportedVersion(version));
        }
        let claimed = Address::parse_checksummed(account).map_err(|e| match e {
            crate::error::AddressError::BadChecksum(s) => AssociationError::NotChecksummed(s),
            other => AssociationError::BadAddress(other),
        })?;
        let installation = InstallationId::from_slice(installation)
            .ok_or(AssociationError::BadInstallationKey(installation.len()))?;
        if time_ns == 0 {
            return Err(AssociationError::BadTime(0));
        }
        let signature = RecoverableSignature::from_slice(signature)?;
        let text = signed_text(kind, &claimed, &installation, time_ns)?;
        let recovered = signature.recover(&text)?;
        if recovered != claimed {
            return Err(AssociationError::AddressMismatch {
                claimed: claimed.to_string(),
                recovered: recovered.to_string(),
            });
        }
        Ok(Self {
            account: claimed,
            installation,
            time_ns,
            signature,
        })
    }
}

/// A wallet's grant of one installation, verified: it can only be made by a
/// wallet signing it ([`Association::create`]) or by verifying a signed proto
/// ([`Association::from_proto`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Association(Signed);

impl Association {
    /// Has `wallet` sign the grant of `installation` at `created_ns`, and
    /// checks that the signature recovers to the wallet's address (a wallet
    /// behind FFI may sign with another account than it claims).
    pub async fn create(
        wallet: &dyn WalletSigner,
        installation: InstallationId,
        created_ns: u64,
    ) -> Result<Self, AssociationError> {
        Signed::sign(Kind::Grant, wallet, installation, created_ns)
            .await
            .map(Self)
    }

    /// Signs the grant with a local wallet, synchronously (the CLI, agents,
    /// tests). Unlike [`Association::create`] it skips recovering the
    /// signature it just made: a local key cannot sign for another address.
    pub fn create_local(
        wallet: &LocalWallet,
        installation: InstallationId,
        created_ns: u64,
    ) -> Result<Self, AssociationError> {
        Signed::sign_local(Kind::Grant, wallet, installation, created_ns).map(Self)
    }

    /// Verifies a grant from the wire: the version is known, the address is
    /// EIP-55, and the signature over the rebuilt text recovers to it.
    pub fn from_proto(proto: &WalletAssociation) -> Result<Self, AssociationError> {
        Signed::verify(
            Kind::Grant,
            proto.text_version,
            &proto.account_address,
            &proto.installation_key,
            proto.created_ns,
            &proto.wallet_signature,
        )
        .map(Self)
    }

    /// The wire form.
    pub fn to_proto(&self) -> WalletAssociation {
        WalletAssociation {
            text_version: TEXT_VERSION,
            account_address: self.0.account.to_string(),
            installation_key: self.0.installation.as_bytes().to_vec(),
            created_ns: self.0.time_ns,
            wallet_signature: self.0.signature.to_vec(),
        }
    }

    /// The wallet that granted.
    pub fn account_address(&self) -> Address {
        self.0.account
    }

    /// The installation granted.
    pub fn installation_id(&self) -> InstallationId {
        self.0.installation
    }

    /// When it was granted, nanoseconds since the Unix epoch.
    pub fn created_ns(&self) -> u64 {
        self.0.time_ns
    }

    /// The wallet's signature.
    pub fn signature(&self) -> &RecoverableSignature {
        &self.0.signature
    }

    /// The text the wallet signed.
    pub fn text(&self) -> String {
        // The values were checked when this was made, so the text builds.
        association_text(&self.0.account, &self.0.installation, self.0.time_ns).unwrap_or_default()
    }
}

impl fmt::Debug for Association {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Association")
            .field("account", &self.0.account)
            .field("installation", &self.0.installation)
            .field("created_ns", &self.0.time_ns)
            .finish()
    }
}

/// A wallet's revocation of one installation, verified like [`Association`].
#[derive(Clone, PartialEq, Eq)]
pub struct Revocation(Signed);

impl Revocation {
    /// Has `wallet` sign the revocation of `installation` at `revoked_ns`.
    pub async fn create(
        wallet: &dyn WalletSigner,
        installation: InstallationId,
        revoked_ns: u64,
    ) -> Result<Self, AssociationError> {
        Signed::sign(Kind::Revoke, wallet, installation, revoked_ns)
            .await
            .map(Self)
    }

    /// Signs the revocation with a local wallet, synchronously.
    pub fn create_local(
        wallet: &LocalWallet,
        installation: InstallationId,
        revoked_ns: u64,
    ) -> Result<Self, AssociationError> {
        Signed::sign_local(Kind::Revoke, wallet, installation, revoked_ns).map(Self)
    }

    /// Verifies a revocation from the wire.
    pub fn from_proto(proto: &WalletRevocation) -> Result<Self, AssociationError> {
        Signed::verify(
            Kind::Revoke,
            proto.text_version,
            &proto.account_address,
            &proto.installation_key,
            proto.revoked_ns,
            &proto.wallet_signature,
        )
        .map(Self)
    }

    /// The wire form.
    pub fn to_proto(&self) -> WalletRevocation {
        WalletRevocation {
            text_version: TEXT_VERSION,
            account_address: self.0.account.to_string(),
            installation_key: self.0.installation.as_bytes().to_vec(),
            revoked_ns: self.0.time_ns,
            wallet_signature: self.0.signature.to_vec(),
        }
    }

    /// The wallet that revoked.
    pub fn account_address(&self) -> Address {
        self.0.account
    }

    /// The installation revoked.
    pub fn installation_id(&self) -> InstallationId {
        self.0.installation
    }

    /// When it was revoked, nanoseconds since the Unix epoch.
    pub fn revoked_ns(&self) -> u64 {
        self.0.time_ns
    }

    /// The text the wallet signed.
    pub fn text(&self) -> String {
        revocation_text(&self.0.account, &self.0.installation, self.0.time_ns).unwrap_or_default()
    }
}

impl fmt::Debug for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocation")
            .field("account", &self.0.account)
            .field("installation", &self.0.installation)
            .field("revoked_ns", &self.0.time_ns)
            .finish()
    }
}

/// Nanoseconds since the Unix epoch as RFC 3339 UTC with nine fractional
/// digits, e.g. `2024-01-02T03:04:05.000000006Z`. Every `u64` fits (the last
/// one is in 2554).
fn rfc3339_nanos(ns: u64) -> Option<String> {
    let secs = ns / 1_000_000_000;
    let nanos = ns % 1_000_000_000;
    let days = i64::try_from(secs / 86_400).ok()?;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    ))
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wallet::LocalWallet;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_nanos(0).unwrap(), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_nanos(1_700_000_000_123_456_789).unwrap(),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            rfc3339_nanos(951_782_400_000_000_000).unwrap(),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339_nanos(u64::MAX).unwrap(),
            "2554-07-21T23:34:33.709551615Z"
        );
    }

    #[test]
    fn association_text_is_pinned() {
        let account: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
            .parse()
            .unwrap();
        let installation = InstallationId::from_bytes([0x11; 32]);
        let text = association_text(&account, &installation, 1_700_000_000_123_456_789).unwrap();
        assert_eq!(
            text,
            "XMTP : Grant installation\n\n\
             I allow this installation to send and receive messages for my account.\n\n\
             Account: 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\n\
             Installation: 1111111111111111111111111111111111111111111111111111111111111111\n\
             Created at: 2023-11-14T22:13:20.123456789Z\n\
             Version: 1"
        );
        let text = revocation_text(&account, &installation, 1_700_000_000_123_456_789).unwrap();
        assert_eq!(
            text,
            "XMTP : Revoke installation\n\n\
             I revoke this installation: it may no longer send or receive messages for my account.\n\n\
             Account: 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\n\
             Installation: 1111111111111111111111111111111111111111111111111111111111111111\n\
             Revoked at: 2023-11-14T22:13:20.123456789Z\n\
             Version: 1"
        );
    }

    #[test]
    fn created_association_verifies_from_proto() {
        let wallet = LocalWallet::random();
        let installation = InstallationId::from_bytes([3; 32]);
        let association = block_on(Association::create(&wallet, installation, 42)).unwrap();
        let verified = Association::from_proto(&association.to_proto()).unwrap();
        assert_eq!(verified, association);
        assert_eq!(verified.account_address(), wallet.address());
        assert_eq!(verified.installation_id(), installation);
        assert_eq!(verified.created_ns(), 42);
    }

    #[test]
    fn association_from_another_wallet_is_rejected() {
        let wallet = LocalWallet::random();
        let other = LocalWallet::random();
        let association = block_on(Association::create(
            &wallet,
            InstallationId::from_bytes([3; 32]),
            42,
        ))
        .unwrap();
        let mut proto = association.to_proto();
        proto.account_address = other.address().to_string();
        assert!(matches!(
            Association::from_proto(&proto),
            Err(AssociationError::AddressMismatch { .. })
        ));
    }

    #[test]
    fn association_fields_are_all_bound() {
        let wallet = LocalWallet::random();
        let proto = block_on(Association::create(
            &wallet,
            InstallationId::from_bytes([3; 32]),
            42,
        ))
        .unwrap()
        .to_proto();
        let mut p = proto.clone();
        p.created_ns = 43;
        assert!(matches!(
            Association::from_proto(&p),
            Err(AssociationError::AddressMismatch { .. })
        ));
        let mut p = proto.clone();
        p.installation_key[0] ^= 1;
        assert!(matches!(
            Association::from_proto(&p),
            Err(AssociationError::AddressMismatch { .. })
        ));
        let mut p = proto.clone();
        p.text_version = 2;
        assert_eq!(
            Association::from_proto(&p),
            Err(AssociationError::UnsupportedVersion(2))
        );
        let mut p = proto.clone();
        p.account_address = p.account_address.to_lowercase();
        assert!(matches!(
            Association::from_proto(&p),
            Err(AssociationError::NotChecksummed(_))
        ));
        let mut p = proto.clone();
        p.installation_key.pop();
        assert_eq!(
            Association::from_proto(&p),
            Err(AssociationError::BadInstallationKey(31))
        );
        let mut p = proto;
        p.created_ns = 0;
        assert_eq!(
            Association::from_proto(&p),
            Err(AssociationError::BadTime(0))
        );
    }

    #[test]
    fn local_and_async_signing_agree() {
        let wallet = LocalWallet::random();
        let installation = InstallationId::from_bytes([9; 32]);
        let local = Association::create_local(&wallet, installation, 5).unwrap();
        let remote = block_on(Association::create(&wallet, installation, 5)).unwrap();
        assert_eq!(local, remote);
        assert_eq!(Association::from_proto(&local.to_proto()).unwrap(), local);
        let local = Revocation::create_local(&wallet, installation, 6).unwrap();
        assert_eq!(Revocation::from_proto(&local.to_proto()).unwrap(), local);
    }

    #[test]
    fn a_zero_time_is_refused_when_signing() {
        let wallet = LocalWallet::random();
        let result = block_on(Association::create(
            &wallet,
            InstallationId::from_bytes([3; 32]),
            0,
        ));
        assert_eq!(result.unwrap_err(), AssociationError::BadTime(0));
    }

    #[test]
    fn a_revocation_does_not_verify_as_a_grant() {
        let wallet = LocalWallet::random();
        let installation = InstallationId::from_bytes([5; 32]);
        let revocation = block_on(Revocation::create(&wallet, installation, 7)).unwrap();
        let verified = Revocation::from_proto(&revocation.to_proto()).unwrap();
        assert_eq!(verified.revoked_ns(), 7);
        let r = revocation.to_proto();
        let as_grant = WalletAssociation {
            text_version: r.text_version,
            account_address: r.account_address,
            installation_key: r.installation_key,
            created_ns: r.revoked_ns,
            wallet_signature: r.wallet_signature,
        };
        assert!(matches!(
            Association::from_proto(&as_grant),
            Err(AssociationError::AddressMismatch { .. })
        ));
    }
}
