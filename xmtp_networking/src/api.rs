//! The node API as a trait, so that the client core can be written and tested
//! against any implementation (the gRPC client, or a fake in unit tests).
//!
//! The trait speaks the generated protobuf types directly: an
//! [`Envelope`] is what goes on the wire. The required methods are one call
//! each; the provided ones ([`XmtpApi::query_pages`], [`XmtpApi::query_all`],
//! ...) are built on [`XmtpApi::query`] and follow the node's cursors.

use async_trait::async_trait;
use futures::stream::BoxStream;
use xmtp_proto::xmtp::key_api::v1::{AddressInstallations, ClaimedKey};
use xmtp_proto::xmtp::message_api::v1::{Envelope, QueryRequest, QueryResponse, SortDirection};
use xmtp_proto::xmtp::v3::message_contents::{
    InstallationPublicKeyBundle, SignedCurve25519Key, WalletRevocation,
};

use crate::{paging, ApiError};

/// A stream of envelopes from a subscription; it owns its connection.
pub type EnvelopeStream = BoxStream<'static, Result<Envelope, ApiError>>;

/// A stream of query pages, borrowing the API it queries.
pub type PageStream<'a> = BoxStream<'a, Result<QueryResponse, ApiError>>;

/// A stream of queried envelopes, page after page, borrowing the API it queries.
pub type QueriedEnvelopes<'a> = BoxStream<'a, Result<Envelope, ApiError>>;

/// The XMTP node's message API and pre-key service.
///
/// Implementations retry transient failures themselves; an error returned
/// from a method is final for that call. Usable as `Arc<dyn XmtpApi>`.
#[async_trait]
pub trait XmtpApi: Send + Sync {
    /// Publishes envelopes. Returns once the node has stored them durably.
    ///
    /// Idempotent: the node stores a duplicate envelope (same topic, timestamp
    /// and message) once, so a publish may be retried safely. Any number of
    /// envelopes is accepted; implementations split them into requests that
    /// fit the node's limits ([`crate::limits`]), so a failure may leave
    /// earlier chunks published (retry the whole call).
    async fn publish(&self, envelopes: Vec<Envelope>) -> Result<(), ApiError>;

    /// Queries one page of stored envelopes. The response carries a cursor in
    /// its paging info when another page may follow.
    async fn query(&self, request: QueryRequest) -> Result<QueryResponse, ApiError>;

    /// Runs several queries, one page each, returning the responses in the
    /// order of the requests. Any number of requests is accepted: they are
    /// sent in chunks of the node's limit of 50.
    async fn batch_query(
        &self,
        requests: Vec<QueryRequest>,
    ) -> Result<Vec<QueryResponse>, ApiError>;

    /// Subscribes to envelopes published on `topics` from now on.
    ///
    /// When this returns `Ok`, the node has registered the subscription: every
    /// envelope published afterwards on these topics arrives on the stream, in
    /// publish order per topic. The stream ends or yields an error when the
    /// connection drops; [`crate::ResilientSubscription`] resumes it without
    /// losing envelopes.
    async fn subscribe(&self, topics: Vec<String>) -> Result<EnvelopeStream, ApiError>;

    /// Subscribes to every envelope published on the node from now on.
    async fn subscribe_all(&self) -> Result<EnvelopeStream, ApiError>;

    /// Publishes (or replaces) an installation's public key bundle.
    async fn register_installation(
        &self,
        bundle: InstallationPublicKeyBundle,
    ) -> Result<(), ApiError>;

    /// Adds one-time keys to an installation's pool and returns how many
    /// unclaimed keys it now has. Any number of keys is accepted (sent in
    /// chunks of the node's limit).
    async fn upload_one_time_keys(
        &self,
        installation_key: Vec<u8>,
        keys: Vec<SignedCurve25519Key>,
    ) -> Result<u32, ApiError>;

    /// How many unclaimed one-time keys an installation has.
    async fn count_one_time_keys(&self, installation_key: Vec<u8>) -> Result<u32, ApiError>;

    /// The bundles and revocations stored for each address, in request order.
    /// Nothing is verified by the node: verify every bundle before use.
    async fn get_installations(
        &self,
        addresses: Vec<String>,
    ) -> Result<Vec<AddressInstallations>, ApiError>;

    /// Claims one one-time key of each installation (atomically: no key is
    /// handed out twice), or its fallback key when none is left
    /// (`is_fallback`). Installations the node does not know are left out.
    async fn claim_one_time_keys(
        &self,
        installation_keys: Vec<Vec<u8>>,
    ) -> Result<Vec<ClaimedKey>, ApiError>;

    /// Publishes a wallet's revocation of one of its installations.
    async fn publish_revocation(&self, revocation: WalletRevocation) -> Result<(), ApiError>;

    /// Sets (or, with `None`, clears) the XMTP authentication token sent with
    /// later calls: the base64 encoding of an `xmtp.message_api.v1.Token`,
    /// without the `Bearer ` prefix (make one with
    /// `xmtp_cryptography::v2::authn::create_token` and encode it, or take
    /// `bearer(&token)` minus its prefix). It is sent as
    /// `authorization: Bearer <token>`.
    ///
    /// A node started with `--require-auth` refuses publishes on XMTP V1/V2
    /// topics without a valid token with [`ApiError::Unauthenticated`];
    /// publishes whose envelopes are all on `/xmtp/3/` topics need none.
    /// Tokens expire an hour after their creation time: make a new one
    /// before then. The token is shared by the clones of a client.
    ///
    /// The default implementation ignores the token, for implementations
    /// that do not talk to a node (test doubles).
    fn set_auth_token(&self, token: Option<String>) {
        let _ = token;
    }

    /// Every page of a query, following the node's cursors until the last one.
    /// The request's direction and page size are kept (descending, 100 per
    /// page, when unset, as the node decides).
    fn query_pages(&self, request: QueryRequest) -> PageStream<'_> {
        paging::pages(self, request)
    }

    /// Every envelope of a query, page after page, without collecting them.
    /// Use it for large topics.
    fn query_envelopes(&self, request: QueryRequest) -> QueriedEnvelopes<'_> {
        paging::envelopes(self, request)
    }

    /// All envelopes of `topic` with `start_ns <= timestamp <= end_ns` (0
    /// means no bound) in `direction`, collected from every page.
    async fn query_all(
        &self,
        topic: &str,
        start_ns: u64,
        end_ns: u64,
        direction: SortDirection,
    ) -> Result<Vec<Envelope>, ApiError> {
        paging::collect(
            self,
            paging::topic_query(topic, start_ns, end_ns, direction),
        )
        .await
    }
}
