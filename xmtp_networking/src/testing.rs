//! Test doubles shared by the unit tests of this crate.

use async_trait::async_trait;
use xmtp_proto::xmtp::key_api::v1::{AddressInstallations, ClaimedKey};
use xmtp_proto::xmtp::message_api::v1::{Envelope, QueryRequest, QueryResponse};
use xmtp_proto::xmtp::v3::message_contents::{
    InstallationPublicKeyBundle, SignedCurve25519Key, WalletRevocation,
};

use crate::api::EnvelopeStream;
use crate::{ApiError, XmtpApi};

/// An API that refuses every call, for tests that must not reach a node.
pub(crate) struct Refusing;

fn refused<T>() -> Result<T, ApiError> {
    Err(ApiError::Unavailable(
        "this test double refuses every call".into(),
    ))
}

#[async_trait]
impl XmtpApi for Refusing {
    async fn publish(&self, _: Vec<Envelope>) -> Result<(), ApiError> {
        refused()
    }
    async fn query(&self, _: QueryRequest) -> Result<QueryResponse, ApiError> {
        refused()
    }
    async fn batch_query(&self, _: Vec<QueryRequest>) -> Result<Vec<QueryResponse>, ApiError> {
        refused()
    }
    async fn subscribe(&self, _: Vec<String>) -> Result<EnvelopeStream, ApiError> {
        refused()
    }
    async fn subscribe_all(&self) -> Result<EnvelopeStream, ApiError> {
        refused()
    }
    async fn register_installation(&self, _: InstallationPublicKeyBundle) -> Result<(), ApiError> {
        refused()
    }
    async fn upload_one_time_keys(
        &self,
        _: Vec<u8>,
        _: Vec<SignedCurve25519Key>,
    ) -> Result<u32, ApiError> {
        refused()
    }
    async fn count_one_time_keys(&self, _: Vec<u8>) -> Result<u32, ApiError> {
        refused()
    }
    async fn get_installations(
        &self,
        _: Vec<String>,
    ) -> Result<Vec<AddressInstallations>, ApiError> {
        refused()
    }
    async fn claim_one_time_keys(&self, _: Vec<Vec<u8>>) -> Result<Vec<ClaimedKey>, ApiError> {
        refused()
    }
    async fn publish_revocation(&self, _: WalletRevocation) -> Result<(), ApiError> {
        refused()
    }
}
