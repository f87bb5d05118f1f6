//! An agent that answers every message with its echo.
//!
//! ```text
//! cargo run -p xmtp_cli --example agent_echo
//! ```
//!
//! Environment: `XMTP_NODE` (default `http://localhost:5556`);
//! `XMTP_WALLET_KEY` (hex) for a fixed identity, else an ephemeral one;
//! `XMTP_DB` and `XMTP_DB_KEY` (hex) to keep state in a file, so that a
//! restarted agent neither loses nor repeats a message (else in memory).
//! Stop it with Ctrl-C. Talk to it with `xmtp send <its address> <text>`,
//! or from XMTP's own SDKs: it enables XMTP V2 too, and answers each message
//! over the protocol it came by.

use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use xmtp_core::{
    agent::{Agent, HandlerError, MessageContext},
    DatabaseKey, LocalWallet,
};

fn hex_key(name: &str) -> Result<Option<[u8; 32]>> {
    let Some(text) = std::env::var(name).ok().filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let bytes = hex::decode(text.trim().trim_start_matches("0x"))
        .map_err(|_| anyhow!("{name} must be 64 hex digits"))?;
    let key = <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| anyhow!("{name} must be 64 hex digits"))?;
    Ok(Some(key))
}

async fn answer(ctx: MessageContext) -> Result<(), HandlerError> {
    let reply = match ctx.text() {
        Some(text) => format!("echo: {text}"),
        None => format!("echo: <{} content>", ctx.message().content_type()),
    };
    ctx.reply(&reply).await?;
    tracing::info!(from = %ctx.sender(), "answered");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let node = std::env::var("XMTP_NODE").unwrap_or_else(|_| "http://localhost:5556".into());
    let mut builder = Agent::builder().node_url(node.clone());
    if let Some(key) = hex_key("XMTP_WALLET_KEY")? {
        let wallet = LocalWallet::from_key_bytes(&key).context("XMTP_WALLET_KEY")?;
        builder = builder.wallet(Arc::new(wallet));
    }
    if let Some(path) = std::env::var_os("XMTP_DB") {
        let key = hex_key("XMTP_DB_KEY")?
            .ok_or_else(|| anyhow!("XMTP_DB needs XMTP_DB_KEY (64 hex digits)"))?;
        builder = builder
            .database_path(path)
            .database_key(DatabaseKey::from_bytes(key));
    }
    let agent = builder
        .build()
        .await
        .with_context(|| format!("cannot start the agent on {node}"))?;
    match agent.client().enable_v2().await {
        Ok(identity) => tracing::info!(
            identity_key = %identity.identity_key,
            origin = identity.origin.as_str(),
            "reachable over XMTP V2 too"
        ),
        Err(e) => tracing::warn!(error = %e, "XMTP V2 is not available; answering over Olm only"),
    }
    println!("echo agent listening at {}", agent.address());
    let running = agent.start(answer).await?;
    tokio::signal::ctrl_c().await?;
    running.stop().await?;
    Ok(())
}
