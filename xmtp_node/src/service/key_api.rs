//! `xmtp.key_api.v1.KeyApi`: the pre-key service.
//!
//! The node stores public keys only and verifies no signature: clients verify
//! every bundle, association and one-time key themselves. What the node does
//! check is shape, so that storage stays bounded and well-formed: keys are 32
//! bytes, Ed25519 signatures 64, wallet signatures 64 or 65, an address at most
//! [`MAX_ADDRESS_BYTES`], at most [`MAX_KEYS_PER_REQUEST`] keys or
//! installations per request and [`MAX_ADDRESSES_PER_REQUEST`] addresses.
//!
//! Addresses are looked up case-insensitively (EIP-55 mixes cases): the store
//! is keyed by the lower-cased address, while bundles and revocations are
//! returned exactly as they were given. A bundle's key is
//! `(association.account_address, signing_key)`; registering it again
//! replaces it. Claims are atomic in the store: one one-time key per
//! installation, never the same twice, then the installation's fallback key
//! (from its latest registration) with `is_fallback = true`.

use std::{sync::Arc, time::Instant};

use xmtp_proto::xmtp::{
    key_api::v1::{
        AddressInstallations, ClaimOneTimeKeysRequest, ClaimOneTimeKeysResponse, ClaimedKey,
        CountOneTimeKeysRequest, CountOneTimeKeysResponse, GetInstallationsRequest,
        GetInstallationsResponse, PublishRevocationRequest, PublishRevocationResponse,
        RegisterInstallationRequest, RegisterInstallationResponse, UploadOneTimeKeysRequest,
        UploadOneTimeKeysResponse,
    },
    v3::message_contents::SignedCurve25519Key,
};

use futures::future::BoxFuture;

use super::{ApiError, Client, Shared};
use crate::{
    metrics::Rpc,
    rate_limit::RateLimiter,
    store::{InstallationRecord, RevocationRecord, Store, StoreError},
};

/// Public keys are 32 bytes (Curve25519 and Ed25519).
pub const KEY_BYTES: usize = 32;
/// Ed25519 signatures are 64 bytes.
pub const SIGNATURE_BYTES: usize = 64;
/// Most one-time keys per upload, and most installations per claim.
pub const MAX_KEYS_PER_REQUEST: usize = 200;
/// Most addresses per lookup.
pub const MAX_ADDRESSES_PER_REQUEST: usize = 100;
/// Longest account address accepted.
pub const MAX_ADDRESS_BYTES: usize = 128;
/// Wallet signatures are 64 bytes, or 65 with a recovery id.
const WALLET_SIGNATURE_BYTES: &[usize] = &[64, 65];

/// The pre-key service. Cheap to clone.
#[derive(Clone)]
pub struct KeyService {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyService").finish_non_exhaustive()
    }
}

fn bytes_of(what: &str, value: &[u8], allowed: &[usize]) -> Result<(), String> {
    if allowed.contains(&value.len()) {
        Ok(())
    } else {
        let allowed: Vec<String> = allowed.iter().map(|n| n.to_string()).collect();
        Err(format!(
            "{what} is {} bytes; expected {}",
            value.len(),
            allowed.join(" or ")
        ))
    }
}

fn check_signed_key(what: &str, key: &SignedCurve25519Key) -> Result<(), String> {
    bytes_of(&format!("{what} key"), &key.key, &[KEY_BYTES])?;
    bytes_of(
        &format!("{what} signature"),
        &key.signature,
        &[SIGNATURE_BYTES],
    )
}

fn address_key(address: &str) -> Result<String, String> {
    if address.is_empty() {
        return Err("account address is empty".into());
    }
    if address.len() > MAX_ADDRESS_BYTES {
        return Err(format!(
            "account address is {} bytes; at most {MAX_ADDRESS_BYTES} allowed",
            address.len()
        ));
    }
    Ok(address.to_ascii_lowercase())
}

fn check_count(what: &str, n: usize, max: usize) -> Result<(), String> {
    if n == 0 {
        Err(format!("request has no {what}"))
    } else if n > max {
        Err(format!("request has {n} {what}; at most {max} allowed"))
    } else {
        Ok(())
    }
}

impl KeyService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn checked<T>(&self, result: Result<T, String>) -> Result<T, ApiError> {
        result.map_err(|m| self.shared.invalid(m))
    }

    /// `value`, or an invalid-argument error saying `missing`.
    fn required<T>(&self, value: Option<T>, missing: &str) -> Result<T, ApiError> {
        value.ok_or_else(|| self.shared.invalid(missing.to_owned()))
    }

    /// Checks that `value`, named `what` in the error, is a public key.
    fn check_key(&self, what: &str, value: &[u8]) -> Result<(), ApiError> {
        self.checked(bytes_of(what, value, &[KEY_BYTES]))
    }

    /// Checks the length of a wallet signature.
    fn check_wallet_signature(&self, value: &[u8]) -> Result<(), ApiError> {
        self.checked(bytes_of("wallet signature", value, WALLET_SIGNATURE_BYTES))
    }

    /// Charges the request to `client` in `limiter`, then runs `op` on the
    /// store and records the call's latency since `start`.
    async fn stored<T, F>(
        &self,
        start: Instant,
        limiter: &RateLimiter,
        client: Client,
        op: F,
    ) -> Result<T, ApiError>
    where
        F: for<'s> FnOnce(&'s dyn Store) -> BoxFuture<'s, Result<T, StoreError>>,
    {
        self.shared.charge(limiter, client, 1)?;
        let value = op(self.shared.store.as_ref()).await?;
        self.shared.observe(Rpc::KeyApi, start);
        Ok(value)
    }

    /// Registers or replaces an installation's bundle.
    pub async fn register_installation(
        &self,
        client: Client,
        req: RegisterInstallationRequest,
    ) -> Result<RegisterInstallationResponse, ApiError> {
        let start = Instant::now();
        let bundle = self.required(req.bundle, "request has no bundle")?;
        let association =
            self.required(bundle.association.as_ref(), "bundle has no association")?;
        let fallback = self.required(bundle.fallback_key.as_ref(), "bundle has no fallback key")?;
        self.check_key("identity key", &bundle.identity_key)?;
        self.check_key("signing key", &bundle.signing_key)?;
        self.checked(bytes_of(
            "identity key signature",
            &bundle.identity_key_signature,
            &[SIGNATURE_BYTES],
        ))?;
        self.checked(check_signed_key("fallback", fallback))?;
        self.check_wallet_signature(&association.wallet_signature)?;
        if association.installation_key != bundle.signing_key {
            return Err(self
                .shared
                .invalid("association names another installation key than the bundle's".into()));
        }
        let address_key = self.checked(address_key(&association.account_address))?;
        let record = InstallationRecord {
            address_key,
            installation_key: bundle.signing_key.clone(),
            bundle,
        };
        self.stored(start, &self.shared.publish_limiter, client, |store| {
            store.register_installation(record)
        })
        .await?;
        Ok(RegisterInstallationResponse {})
    }

    /// Adds one-time keys to an installation's pool.
    pub async fn upload_one_time_keys(
        &self,
        client: Client,
        req: UploadOneTimeKeysRequest,
    ) -> Result<UploadOneTimeKeysResponse, ApiError> {
        let start = Instant::now();
        self.check_key("installation key", &req.installation_key)?;
        self.checked(check_count(
            "one-time keys",
            req.one_time_keys.len(),
            MAX_KEYS_PER_REQUEST,
        ))?;
        for (i, key) in req.one_time_keys.iter().enumerate() {
            self.checked(check_signed_key(&format!("one-time key {i}"), key))?;
        }
        let max_pool = self.shared.max_one_time_keys;
        let remaining = self
            .stored(start, &self.shared.publish_limiter, client, |store| {
                store.upload_one_time_keys(req.installation_key, req.one_time_keys, max_pool)
            })
            .await?;
        Ok(UploadOneTimeKeysResponse { remaining })
    }

    /// The number of unclaimed one-time keys.
    pub async fn count_one_time_keys(
        &self,
        client: Client,
        req: CountOneTimeKeysRequest,
    ) -> Result<CountOneTimeKeysResponse, ApiError> {
        let start = Instant::now();
        self.check_key("installation key", &req.installation_key)?;
        let remaining = self
            .stored(start, &self.shared.read_limiter, client, |store| {
                store.count_one_time_keys(req.installation_key)
            })
            .await?;
        Ok(CountOneTimeKeysResponse { remaining })
    }

    /// The bundles and revocations of some addresses, in request order.
    pub async fn get_installations(
        &self,
        client: Client,
        req: GetInstallationsRequest,
    ) -> Result<GetInstallationsResponse, ApiError> {
        let start = Instant::now();
        self.checked(check_count(
            "addresses",
            req.account_addresses.len(),
            MAX_ADDRESSES_PER_REQUEST,
        ))?;
        let keys = req
            .account_addresses
            .iter()
            .map(|a| self.checked(address_key(a)))
            .collect::<Result<Vec<_>, _>>()?;
        let stored = self
            .stored(start, &self.shared.read_limiter, client, |store| {
                store.get_installations(keys)
            })
            .await?;
        let installations = req
            .account_addresses
            .into_iter()
            .zip(stored)
            .map(|(account_address, s)| AddressInstallations {
                account_address,
                bundles: s.bundles,
                revocations: s.revocations,
            })
            .collect();
        Ok(GetInstallationsResponse { installations })
    }

    /// Claims one key of each installation.
    pub async fn claim_one_time_keys(
        &self,
        client: Client,
        req: ClaimOneTimeKeysRequest,
    ) -> Result<ClaimOneTimeKeysResponse, ApiError> {
        let start = Instant::now();
        self.checked(check_count(
            "installation keys",
            req.installation_keys.len(),
            MAX_KEYS_PER_REQUEST,
        ))?;
        for key in &req.installation_keys {
            self.check_key("installation key", key)?;
        }
        let claimed = self
            .stored(start, &self.shared.read_limiter, client, |store| {
                store.claim_one_time_keys(req.installation_keys)
            })
            .await?;
        let keys = claimed
            .into_iter()
            .map(|c| ClaimedKey {
                installation_key: c.installation_key,
                key: Some(c.key),
                is_fallback: c.is_fallback,
            })
            .collect();
        Ok(ClaimOneTimeKeysResponse { keys })
    }

    /// Stores a wallet's revocation of an installation.
    pub async fn publish_revocation(
        &self,
        client: Client,
        req: PublishRevocationRequest,
    ) -> Result<PublishRevocationResponse, ApiError> {
        let start = Instant::now();
        let revocation = self.required(req.revocation, "request has no revocation")?;
        self.check_key("installation key", &revocation.installation_key)?;
        self.check_wallet_signature(&revocation.wallet_signature)?;
        let address_key = self.checked(address_key(&revocation.account_address))?;
        let record = RevocationRecord {
            address_key,
            installation_key: revocation.installation_key.clone(),
            revocation,
        };
        self.stored(start, &self.shared.publish_limiter, client, |store| {
            store.publish_revocation(record)
        })
        .await?;
        Ok(PublishRevocationResponse {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_lowercased_and_bounded() {
        assert_eq!(address_key("0xAbCd").unwrap(), "0xabcd");
        assert!(address_key("").is_err());
        assert!(address_key(&"a".repeat(MAX_ADDRESS_BYTES + 1)).is_err());
    }

    #[test]
    fn key_lengths_are_checked() {
        assert!(bytes_of("k", &[0; 32], &[KEY_BYTES]).is_ok());
        let err = bytes_of("k", &[0; 31], &[KEY_BYTES]).unwrap_err();
        assert_eq!(err, "k is 31 bytes; expected 32");
        assert!(bytes_of("s", &[0; 65], WALLET_SIGNATURE_BYTES).is_ok());
        assert!(check_count("keys", 0, 5).is_err());
        assert!(check_count("keys", 6, 5).is_err());
    }
}
