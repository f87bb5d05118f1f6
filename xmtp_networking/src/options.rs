//! How a [`crate::GrpcClient`] connects and behaves: timeouts, retries, message
//! size limits and the app version it announces.
//!
//! The defaults suit a mobile or desktop client talking to one node: a 10 s
//! connect timeout, a 30 s timeout per unary call, five attempts with backoff
//! from 100 ms to 5 s, and a 128 MiB limit on a decoded response (a query page
//! of 100 envelopes of up to 1 MiB each must fit).

use std::time::Duration;

use crate::RetryPolicy;

/// Options of a [`crate::GrpcClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// How long establishing the connection may take.
    pub connect_timeout: Duration,
    /// How long one unary call (publish, query, key API) may take, per attempt.
    /// Subscriptions are not limited by it, only the call that opens them.
    pub request_timeout: Duration,
    /// Retries of transient failures, also used when connecting.
    pub retry: RetryPolicy,
    /// Largest message this client encodes or decodes, in bytes.
    pub max_message_size: usize,
    /// Sent as the `x-app-version` header on every call, so a node operator can
    /// tell apps apart. Must be visible ASCII.
    pub app_version: Option<String>,
    /// Interval of HTTP/2 keep-alive pings, which detect a dead connection
    /// under an idle subscription. `None` disables them.
    pub keep_alive_interval: Option<Duration>,
    /// For `https://` URLs: trust the platform's root certificates.
    pub trust_native_roots: bool,
    /// For `https://` URLs: a PEM certificate authority to trust besides (or,
    /// with `trust_native_roots` off, instead of) the platform's roots, for a
    /// node behind a private CA.
    pub ca_certificate_pem: Option<Vec<u8>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_message_size: 128 * 1024 * 1024,
            app_version: None,
            keep_alive_interval: Some(Duration::from_secs(30)),
            trust_native_roots: true,
            ca_certificate_pem: None,
        }
    }
}

impl ClientOptions {
    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`retry`](Self::retry).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets [`max_message_size`](Self::max_message_size).
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`app_version`](Self::app_version).
    pub fn with_app_version(mut self, version: impl Into<String>) -> Self {
        self.app_version = Some(version.into());
        self
    }

    /// Trusts the PEM certificate authority `pem` for `https://` nodes; with
    /// `only` set, trusts it alone and not the platform's roots.
    pub fn with_ca_certificate(mut self, pem: impl Into<Vec<u8>>, only: bool) -> Self {
        self.ca_certificate_pem = Some(pem.into());
        self.trust_native_roots = !only;
        self
    }

    /// Sets [`keep_alive_interval`](Self::keep_alive_interval).
    pub fn with_keep_alive_interval(mut self, interval: Option<Duration>) -> Self {
        self.keep_alive_interval = interval;
        self
    }
}
