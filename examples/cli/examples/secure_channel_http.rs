//! Seed 000: two HTTP servers exchange messages encrypted with the secure
//! channel; XMTP carries only the one-time handshake.
//!
//! ```text
//! dev/up
//! cargo run -p xmtp_cli --example secure_channel_http
//! ```
//!
//! Environment: `XMTP_NODE` (default `http://localhost:5556`); `A_ADDR` and
//! `B_ADDR` for the servers' listen addresses (default 127.0.0.1:3000 and
//! 127.0.0.1:3001). Both parties are ephemeral identities made on the spot.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use xmtp_cli::secure_channel_http::{send_encrypted, Server};
use xmtp_core::ClientBuilder;

fn listen_addr(var: &str, default: &str) -> Result<SocketAddr> {
    let text = std::env::var(var).unwrap_or_else(|_| default.to_string());
    text.parse()
        .with_context(|| format!("{var} must be host:port, not {text:?}"))
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let node = std::env::var("XMTP_NODE").unwrap_or_else(|_| "http://localhost:5556".into());
    let connect = || async {
        ClientBuilder::new()
            .node_url(node.clone())
            .build()
            .await
            .with_context(|| format!("cannot reach the node at {node}; start one with dev/up"))
    };
    let agent_a = connect().await?;
    let agent_b = connect().await?;
    agent_a.enable_secure_channel().await?;
    agent_b.enable_secure_channel().await?;
    println!("A is {}", agent_a.address());
    println!("B is {}", agent_b.address());

    let server_a = Server::start(agent_a.clone(), listen_addr("A_ADDR", "127.0.0.1:3000")?).await?;
    let server_b = Server::start(agent_b.clone(), listen_addr("B_ADDR", "127.0.0.1:3001")?).await?;
    println!("A listens on {}", server_a.receive_url());
    println!("B listens on {}", server_b.receive_url());

    let http = reqwest::Client::new();
    let sent = send_encrypted(
        &agent_a,
        &http,
        &server_b.receive_url(),
        &agent_b.address(),
        b"Hello from A!",
    )
    .await?;
    println!(
        "A -> B body: {}",
        String::from_utf8_lossy(&sent.request_body)
    );
    println!(
        "B answered {}: {}",
        sent.status,
        String::from_utf8_lossy(&sent.response_body)
    );
    if sent.status != 200 {
        bail!("B refused the message");
    }
    for m in &server_b
        .inbox()
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .received
    {
        println!(
            "B decrypted: {} (from {})",
            String::from_utf8_lossy(&m.plaintext),
            m.from
        );
    }

    let reply = send_encrypted(
        &agent_b,
        &http,
        &server_a.receive_url(),
        &agent_a.address(),
        b"Hello back from B!",
    )
    .await?;
    if reply.status != 200 {
        bail!("A refused the reply");
    }
    for m in &server_a
        .inbox()
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .received
    {
        println!(
            "A decrypted: {} (from {})",
            String::from_utf8_lossy(&m.plaintext),
            m.from
        );
    }
    server_a.shutdown().await;
    server_b.shutdown().await;
    Ok(())
}
