//! [`GrpcClient`]: the [`XmtpApi`] over gRPC (tonic), on one HTTP/2 channel
//! shared by the message API and the pre-key service.
//!
//! `http://` URLs speak plaintext HTTP/2; `https://` URLs speak TLS through
//! rustls, trusting the platform's native root certificates and any CA given
//! in [`ClientOptions::ca_certificate_pem`]. Every unary call
//! runs under the request timeout and the retry policy of [`ClientOptions`];
//! calls that open a subscription are retried the same way, the stream itself
//! is not (see [`crate::ResilientSubscription`]). The channel reconnects by
//! itself after the node goes away, so one client outlives node restarts.
//! Cloning a client is cheap and shares the connection, and the
//! authentication token of [`XmtpApi::set_auth_token`], which is sent on
//! every call once set.

use std::future::Future;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use futures::StreamExt;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Uri};
use xmtp_proto::xmtp::key_api::v1::key_api_client::KeyApiClient;
use xmtp_proto::xmtp::key_api::v1::{
    AddressInstallations, ClaimOneTimeKeysRequest, ClaimedKey, CountOneTimeKeysRequest,
    GetInstallationsRequest, PublishRevocationRequest, RegisterInstallationRequest,
    UploadOneTimeKeysRequest,
};
use xmtp_proto::xmtp::message_api::v1::message_api_client::MessageApiClient;
use xmtp_proto::xmtp::message_api::v1::{
    BatchQueryRequest, Envelope, PublishRequest, QueryRequest, QueryResponse, SubscribeAllRequest,
    SubscribeRequest,
};
use xmtp_proto::xmtp::v3::message_contents::{
    InstallationPublicKeyBundle, SignedCurve25519Key, WalletRevocation,
};

use crate::api::EnvelopeStream;
use crate::limits::{
    publish_chunks, MAX_ADDRESSES_PER_REQUEST, MAX_BATCH_QUERIES, MAX_KEYS_PER_REQUEST,
};
use crate::{ApiError, ClientOptions, XmtpApi};

/// The header that carries [`ClientOptions::app_version`].
pub const APP_VERSION_HEADER: &str = "x-app-version";

/// The header that carries the token of [`XmtpApi::set_auth_token`], as
/// `Bearer <token>`.
pub const AUTHORIZATION_HEADER: &str = "authorization";

type Transport = InterceptedService<Channel, Headers>;

/// A client of one XMTP node over gRPC.
#[derive(Clone)]
pub struct GrpcClient {
    url: String,
    options: ClientOptions,
    messages: MessageApiClient<Transport>,
    keys: KeyApiClient<Transport>,
    headers: Headers,
}

impl std::fmt::Debug for GrpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClient")
            .field("url", &self.url)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl GrpcClient {
    /// Connects to the node at `url` (`http://host:port` or
    /// `https://host[:port]`) with default [`ClientOptions`].
    pub async fn connect(url: &str) -> Result<Self, ApiError> {
        Self::connect_with_options(url, ClientOptions::default()).await
    }

    /// Connects to the node at `url`, retrying a failed connection attempt
    /// according to `options.retry`. Fails with [`ApiError::Connect`] when the
    /// node cannot be reached after the last attempt.
    pub async fn connect_with_options(url: &str, options: ClientOptions) -> Result<Self, ApiError> {
        let endpoint = endpoint(url, &options)?;
        let channel = options
            .retry
            .run("connect", || async {
                endpoint
                    .connect()
                    .await
                    .map_err(|source| ApiError::Connect {
                        url: url.to_owned(),
                        source,
                    })
            })
            .await?;
        Self::from_channel(url, channel, options)
    }

    /// A client that connects on its first call rather than now: creating it
    /// checks only the URL. Calls made while the node is down fail with
    /// [`ApiError::Unavailable`] (after the configured retries).
    pub fn connect_lazy(url: &str, options: ClientOptions) -> Result<Self, ApiError> {
        let channel = endpoint(url, &options)?.connect_lazy();
        Self::from_channel(url, channel, options)
    }

    /// The URL this client talks to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The options this client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    fn from_channel(url: &str, channel: Channel, options: ClientOptions) -> Result<Self, ApiError> {
        let headers = Headers::new(options.app_version.as_deref())?;
        let size = options.max_message_size;
        let messages = MessageApiClient::with_interceptor(channel.clone(), headers.clone())
            .max_decoding_message_size(size)
            .max_encoding_message_size(size);
        let keys = KeyApiClient::with_interceptor(channel, headers.clone())
            .max_decoding_message_size(size)
            .max_encoding_message_size(size);
        Ok(Self {
            url: url.to_owned(),
            options,
            messages,
            keys,
            headers,
        })
    }

    /// Runs one unary call under the request timeout and the retry policy.
    /// Each attempt gives `call` a fresh copy of `client` (the message or the
    /// key API) and of `request`.
    async fn unary<C, R, T, F, Fut>(
        &self,
        what: &'static str,
        client: &C,
        request: &R,
        call: F,
    ) -> Result<T, ApiError>
    where
        C: Clone,
        R: Clone,
        F: Fn(C, R) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let timeout = self.options.request_timeout;
        self.options
            .retry
            .run(what, || {
                let attempt = call(client.clone(), request.clone());
                async move {
                    match tokio::time::timeout(timeout, attempt).await {
                        Ok(Ok(response)) => Ok(response.into_inner()),
                        Ok(Err(status)) => Err(ApiError::from(status)),
                        Err(_) => Err(ApiError::DeadlineExceeded(format!(
                            "{what} took longer than {timeout:?}"
                        ))),
                    }
                }
            })
            .await
    }
}

/// Parses and checks `url`, and configures the endpoint from `options`.
fn endpoint(url: &str, options: &ClientOptions) -> Result<Endpoint, ApiError> {
    let invalid = |reason: &str| ApiError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(invalid("the scheme must be http or https")),
    };
    let mut endpoint = Endpoint::from(uri)
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        .keep_alive_while_idle(true);
    if let Some(interval) = options.keep_alive_interval {
        endpoint = endpoint.http2_keep_alive_interval(interval);
    }
    if tls {
        let mut config = ClientTlsConfig::new();
        if options.trust_native_roots {
            config = config.with_native_roots();
        }
        if let Some(pem) = &options.ca_certificate_pem {
            config = config.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint
            .tls_config(config)
            .map_err(|source| ApiError::Connect {
                url: url.to_owned(),
                source,
            })?;
    }
    Ok(endpoint)
}

/// Adds the configured headers to every call.
#[derive(Clone)]
struct Headers {
    app_version: Option<MetadataValue<Ascii>>,
    /// `Bearer <token>`, shared by the clones of a client.
    authorization: Arc<RwLock<Option<MetadataValue<Ascii>>>>,
}

impl Headers {
    fn new(app_version: Option<&str>) -> Result<Self, ApiError> {
        let app_version = app_version
            .map(|version| {
                version.parse::<MetadataValue<Ascii>>().map_err(|_| {
                    ApiError::InvalidArgument(format!(
                        "app version {version:?} is not a valid header value"
                    ))
                })
            })
            .transpose()?;
        Ok(Self {
            app_version,
            authorization: Arc::default(),
        })
    }

    /// Sets or clears the token. A token that is not a header value (base64
    /// always is) is dropped with a warning; the token itself is not logged.
    fn set_token(&self, token: Option<&str>) {
        let value = token.and_then(|token| {
            let parsed = format!("Bearer {}", token.trim()).parse::<MetadataValue<Ascii>>();
            if parsed.is_err() {
                tracing::warn!("authentication token is not a valid header value; not sent");
            }
            parsed.ok()
        });
        *self
            .authorization
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = value;
    }
}

impl Interceptor for Headers {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(version) = &self.app_version {
            request
                .metadata_mut()
                .insert(APP_VERSION_HEADER, version.clone());
        }
        let authorization = self
            .authorization
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some(value) = authorization {
            request.metadata_mut().insert(AUTHORIZATION_HEADER, value);
        }
        Ok(request)
    }
}

/// Turns a tonic envelope stream into an [`EnvelopeStream`].
fn envelope_stream(stream: tonic::Streaming<Envelope>) -> EnvelopeStream {
    stream.map(|item| item.map_err(ApiError::from)).boxed()
}

#[async_trait]
impl XmtpApi for GrpcClient {
    async fn publish(&self, envelopes: Vec<Envelope>) -> Result<(), ApiError> {
        for chunk in publish_chunks(envelopes) {
            let request = PublishRequest { envelopes: chunk };
            self.unary("publish", &self.messages, &request, |mut c, r| async move {
                c.publish(r).await
            })
            .await?;
        }
        Ok(())
    }

    async fn query(&self, request: QueryRequest) -> Result<QueryResponse, ApiError> {
        self.unary("query", &self.messages, &request, |mut c, r| async move {
            c.query(r).await
        })
        .await
    }

    async fn batch_query(
        &self,
        requests: Vec<QueryRequest>,
    ) -> Result<Vec<QueryResponse>, ApiError> {
        let mut responses = Vec::with_capacity(requests.len());
        for chunk in requests.chunks(MAX_BATCH_QUERIES) {
            let request = BatchQueryRequest {
                requests: chunk.to_vec(),
            };
            let response = self
                .unary(
                    "batch query",
                    &self.messages,
                    &request,
                    |mut c, r| async move { c.batch_query(r).await },
                )
                .await?;
            if response.responses.len() != chunk.len() {
                return Err(ApiError::Decode(format!(
                    "batch query of {} requests answered with {} responses",
                    chunk.len(),
                    response.responses.len()
                )));
            }
            responses.extend(response.responses);
        }
        Ok(responses)
    }

    async fn subscribe(&self, topics: Vec<String>) -> Result<EnvelopeStream, ApiError> {
        let request = SubscribeRequest {
            content_topics: topics,
        };
        let stream = self
            .unary(
                "subscribe",
                &self.messages,
                &request,
                |mut c, r| async move { c.subscribe(r).await },
            )
            .await?;
        Ok(envelope_stream(stream))
    }

    async fn subscribe_all(&self) -> Result<EnvelopeStream, ApiError> {
        let stream = self
            .unary(
                "subscribe all",
                &self.messages,
                &SubscribeAllRequest {},
                |mut c, r| async move { c.subscribe_all(r).await },
            )
            .await?;
        Ok(envelope_stream(stream))
    }

    async fn register_installation(
        &self,
        bundle: InstallationPublicKeyBundle,
    ) -> Result<(), ApiError> {
        let request = RegisterInstallationRequest {
            bundle: Some(bundle),
        };
        self.unary(
            "register installation",
            &self.keys,
            &request,
            |mut c, r| async move { c.register_installation(r).await },
        )
        .await
        .map(drop)
    }

    async fn upload_one_time_keys(
        &self,
        installation_key: Vec<u8>,
        keys: Vec<SignedCurve25519Key>,
    ) -> Result<u32, ApiError> {
        if keys.is_empty() {
            return self.count_one_time_keys(installation_key).await;
        }
        let mut remaining = 0;
        for chunk in keys.chunks(MAX_KEYS_PER_REQUEST) {
            let request = UploadOneTimeKeysRequest {
                installation_key: installation_key.clone(),
                one_time_keys: chunk.to_vec(),
            };
            remaining = self
                .unary(
                    "upload one-time keys",
                    &self.keys,
                    &request,
                    |mut c, r| async move { c.upload_one_time_keys(r).await },
                )
                .await?
                .remaining;
        }
        Ok(remaining)
    }

    async fn count_one_time_keys(&self, installation_key: Vec<u8>) -> Result<u32, ApiError> {
        let request = CountOneTimeKeysRequest { installation_key };
        self.unary(
            "count one-time keys",
            &self.keys,
            &request,
            |mut c, r| async move { c.count_one_time_keys(r).await },
        )
        .await
        .map(|response| response.remaining)
    }

    async fn get_installations(
        &self,
        addresses: Vec<String>,
    ) -> Result<Vec<AddressInstallations>, ApiError> {
        let mut installations = Vec::with_capacity(addresses.len());
        for chunk in addresses.chunks(MAX_ADDRESSES_PER_REQUEST) {
            let request = GetInstallationsRequest {
                account_addresses: chunk.to_vec(),
            };
            let response = self
                .unary(
                    "get installations",
                    &self.keys,
                    &request,
                    |mut c, r| async move { c.get_installations(r).await },
                )
                .await?;
            installations.extend(response.installations);
        }
        Ok(installations)
    }

    async fn claim_one_time_keys(
        &self,
        installation_keys: Vec<Vec<u8>>,
    ) -> Result<Vec<ClaimedKey>, ApiError> {
        // Retrying a claim whose answer was lost consumes a second key of each
        // installation; that wastes keys but never hands one out twice.
        let mut claimed = Vec::with_capacity(installation_keys.len());
        for chunk in installation_keys.chunks(MAX_KEYS_PER_REQUEST) {
            let request = ClaimOneTimeKeysRequest {
                installation_keys: chunk.to_vec(),
            };
            let response = self
                .unary(
                    "claim one-time keys",
                    &self.keys,
                    &request,
                    |mut c, r| async move { c.claim_one_time_keys(r).await },
                )
                .await?;
            claimed.extend(response.keys);
        }
        Ok(claimed)
    }

    async fn publish_revocation(&self, revocation: WalletRevocation) -> Result<(), ApiError> {
        let request = PublishRevocationRequest {
            revocation: Some(revocation),
        };
        self.unary(
            "publish revocation",
            &self.keys,
            &request,
            |mut c, r| async move { c.publish_revocation(r).await },
        )
        .await
        .map(drop)
    }

    fn set_auth_token(&self, token: Option<String>) {
        self.headers.set_token(token.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_without_http_or_https_are_refused() {
        for url in [
            "",
            "localhost:5556",
            "ftp://localhost:5556",
            "http://",
            "not a url",
            "grpc://h:1",
        ] {
            let result = endpoint(url, &ClientOptions::default());
            assert!(
                matches!(result, Err(ApiError::InvalidUrl { .. })),
                "{url:?} gave {result:?}"
            );
        }
    }

    #[test]
    fn http_and_https_urls_are_accepted() {
        for url in [
            "http://127.0.0.1:5556",
            "https://node.example.org",
            "https://node.example.org:443/",
        ] {
            assert!(endpoint(url, &ClientOptions::default()).is_ok(), "{url}");
        }
    }

    #[test]
    fn app_version_must_be_a_header_value() {
        assert!(Headers::new(Some("xmtp-cli/0.1.0")).is_ok());
        assert!(matches!(
            Headers::new(Some("bad\nversion")),
            Err(ApiError::InvalidArgument(_))
        ));
    }

    #[test]
    fn app_version_header_is_added_to_every_request() {
        let mut headers = Headers::new(Some("app/1.2")).unwrap();
        let request = headers.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get(APP_VERSION_HEADER).unwrap(),
            "app/1.2"
        );
        let mut none = Headers::new(None).unwrap();
        assert!(none
            .call(tonic::Request::new(()))
            .unwrap()
            .metadata()
            .get(AUTHORIZATION_HEADER)
            .is_none());
        assert!(none
            .call(tonic::Request::new(()))
            .unwrap()
            .metadata()
            .get(APP_VERSION_HEADER)
            .is_none());
    }

    #[test]
    fn auth_token_is_shared_by_clones_and_can_be_cleared() {
        let headers = Headers::new(None).unwrap();
        let mut clone = headers.clone();
        headers.set_token(Some("dG9rZW4="));
        let request = clone.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get(AUTHORIZATION_HEADER).unwrap(),
            "Bearer dG9rZW4="
        );
        headers.set_token(Some("bad\ntoken"));
        assert!(clone
            .call(tonic::Request::new(()))
            .unwrap()
            .metadata()
            .get(AUTHORIZATION_HEADER)
            .is_none());
        headers.set_token(Some("dG9rZW4="));
        headers.set_token(None);
        assert!(clone
            .call(tonic::Request::new(()))
            .unwrap()
            .metadata()
            .get(AUTHORIZATION_HEADER)
            .is_none());
    }
}
