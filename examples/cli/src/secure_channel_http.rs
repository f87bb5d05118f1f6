//! Two HTTP servers that talk through the secure channel (seed 000).
//!
//! ```text
//! A: sealed = client_A.encrypt(plaintext, address_B)            (XMTP only on the first call)
//!    POST http://B/receive  {"nonce": b64, "ciphertext": b64, "fromAddress": address_A}
//! B: plaintext = client_B.decrypt(nonce, ciphertext, fromAddress)  (local AES-256-GCM)
//!    200 {"success": true}   |   400 {"success": false, "error": "..."}
//! ```
//!
//! Only the nonce, the ciphertext and the sender's address cross HTTP; the
//! plaintext stays in the two processes. Each server keeps the raw request
//! bodies it received, so a test can show that no plaintext crossed.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{body::Bytes, extract::State, http::StatusCode, routing::post, Json, Router};
use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use xmtp_core::{Client, SecureChannelError};

/// The JSON body of `POST /receive`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireMessage {
    /// The 12-byte nonce, base64.
    pub nonce: String,
    /// The ciphertext, base64.
    pub ciphertext: String,
    /// The sender's address.
    pub from_address: String,
}

/// A message a server decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The sender's address.
    pub from: String,
    /// The plaintext (kept in memory only).
    pub plaintext: Vec<u8>,
}

/// What one server has seen.
#[derive(Debug, Default)]
pub struct Inbox {
    /// Messages decrypted, in arrival order.
    pub received: Vec<Received>,
    /// Raw request bodies, exactly as they arrived over HTTP.
    pub raw_bodies: Vec<Vec<u8>>,
}

#[derive(Clone)]
struct AppState {
    client: Client,
    inbox: Arc<Mutex<Inbox>>,
}

/// Why a demo step failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Encrypting or decrypting failed.
    #[error(transparent)]
    Channel(#[from] SecureChannelError),
    /// The HTTP server could not start.
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    /// The HTTP request failed.
    #[error("HTTP request failed: {0}")]
    Http(#[from] reqwest::Error),
}

async fn receive(State(state): State<AppState>, body: Bytes) -> (StatusCode, Json<Value>) {
    if let Ok(mut inbox) = state.inbox.lock() {
        inbox.raw_bodies.push(body.to_vec());
    }
    let refuse = |status: StatusCode, error: String| {
        tracing::warn!(%error, "refused a message");
        (status, Json(json!({"success": false, "error": error})))
    };
    let message: WireMessage = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")),
    };
    let (Ok(nonce), Ok(ciphertext)) = (
        BASE64.decode(&message.nonce),
        BASE64.decode(&message.ciphertext),
    ) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "nonce and ciphertext must be base64".into(),
        );
    };
    match state
        .client
        .decrypt(&nonce, &ciphertext, &message.from_address)
        .await
    {
        Ok(plaintext) => {
            tracing::info!(from = %message.from_address, bytes = plaintext.len(), "decrypted a message");
            if let Ok(mut inbox) = state.inbox.lock() {
                inbox.received.push(Received {
                    from: message.from_address,
                    plaintext,
                });
            }
            (StatusCode::OK, Json(json!({"success": true})))
        }
        Err(SecureChannelError::Client(e)) => {
            refuse(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Err(e) => refuse(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// One party's HTTP server, stopped when dropped.
pub struct Server {
    addr: SocketAddr,
    inbox: Arc<Mutex<Inbox>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    /// Serves `POST /receive` for `client` on `addr` (port 0 for any).
    pub async fn start(client: Client, addr: SocketAddr) -> Result<Self, DemoError> {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let app = Router::new()
            .route("/receive", post(receive))
            .with_state(AppState {
                client,
                inbox: inbox.clone(),
            });
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        Ok(Self {
            addr,
            inbox,
            stop: Some(stop),
            task,
        })
    }

    /// The URL of `/receive`.
    pub fn receive_url(&self) -> String {
        format!("http://{}/receive", self.addr)
    }

    /// What this server has received so far.
    pub fn inbox(&self) -> Arc<Mutex<Inbox>> {
        self.inbox.clone()
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What one POST carried, both ways.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The HTTP status.
    pub status: u16,
    /// The request body as sent.
    pub request_body: Vec<u8>,
    /// The response body as received.
    pub response_body: Vec<u8>,
}

/// Encrypts `plaintext` for `peer_address` and POSTs it to `url`.
pub async fn send_encrypted(
    client: &Client,
    http: &reqwest::Client,
    url: &str,
    peer_address: &str,
    plaintext: &[u8],
) -> Result<Exchange, DemoError> {
    let sealed = client.encrypt(plaintext, peer_address).await?;
    let message = WireMessage {
        nonce: BASE64.encode(sealed.nonce),
        ciphertext: BASE64.encode(&sealed.ciphertext),
        from_address: client.address(),
    };
    let request_body = serde_json::to_vec(&message).map_err(std::io::Error::other)?;
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body(request_body.clone())
        .send()
        .await?;
    let status = response.status().as_u16();
    let response_body = response.bytes().await?.to_vec();
    Ok(Exchange {
        status,
        request_body,
        response_body,
    })
}
