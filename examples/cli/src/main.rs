//! `xmtp`: a console client for an XMTP node.
//!
//! Each command opens the encrypted database (see [`config`] for where it and
//! its key live), loads or creates the installation, does its work and
//! exits. Results go to stdout (human text, or one JSON object a line with
//! `--json`); errors are one line on stderr with a non-zero exit status.
//! Logs go to stderr, filtered by `RUST_LOG` (quiet by default).

mod config;
mod errors;
mod group;
mod output;

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use serde_json::json;
use xmtp_core::{
    storage::Storage, Client, ClientBuilder, LocalWallet, MessagePage, V2Identity, WalletSigner,
};

use output::Output;

/// Name of the sealed secret where the CLI keeps a wallet key given through
/// `XMTP_WALLET_KEY`, so later commands can sign (revoke) without it.
const WALLET_SECRET: &str = "xmtp_cli/wallet_key";

/// A console client for XMTP: direct messages over Olm, end-to-end encrypted.
#[derive(Debug, Parser)]
#[command(name = "xmtp", version, about)]
struct Cli {
    /// The node's gRPC URL.
    #[arg(
        long,
        global = true,
        env = "XMTP_NODE",
        default_value = "http://localhost:5556"
    )]
    node: String,
    /// The database file [default: $XDG_DATA_HOME/xmtp/xmtp.db3, else ~/.local/share/xmtp/xmtp.db3].
    #[arg(long, global = true, env = "XMTP_DB")]
    db: Option<PathBuf>,
    /// Print one JSON object a line (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or load the installation and publish it; prints address and installation id.
    Register,
    /// Address, installation id, node, and counts of conversations and messages.
    Info,
    /// Send a direct message, over the best protocol both sides share.
    Send {
        /// The recipient's address (0x followed by 40 hex digits).
        address: String,
        /// The text to send.
        text: String,
        /// `auto`: our Olm sessions when the peer has registered
        /// installations, else XMTP V2 when it has an XMTP contact bundle.
        #[arg(long, value_enum, default_value_t = SendProtocol::Auto)]
        protocol: SendProtocol,
    },
    /// Conversations with their last message (after a sync).
    List,
    /// A conversation's messages, oldest first (after a sync). For an
    /// address: every protocol (Olm, XMTP V2 and V1), each message marked.
    Messages {
        /// The peer's address, a group id, or an XMTP V1/V2 conversation topic.
        address: String,
    },
    /// Print new messages as they arrive, until interrupted (Ctrl-C).
    Stream,
    /// The installations of an address (yours by default).
    Installations {
        /// Whose installations; yours if omitted.
        address: Option<String>,
    },
    /// Revoke one of your installations (needs the wallet).
    Revoke {
        /// The installation id (64 hex digits), as `xmtp installations` prints it.
        installation_id: String,
    },
    /// Group conversations: create, add, remove, send, list.
    Group {
        #[command(subcommand)]
        command: group::GroupCommand,
    },
}

/// The protocol `xmtp send` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SendProtocol {
    /// Olm when the peer has registered installations, else XMTP V2.
    Auto,
    /// Our double-ratchet direct messages only.
    Olm,
    /// XMTP V2 only (no forward secrecy; for XMTP's existing users).
    V2,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let out = Output { json: cli.json };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli, out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = errors::explain(&e, &cli.node);
            if out.json {
                println!("{}", json!({"type": "error", "error": line}));
            }
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Opens the client for this database, with the wallet chosen as documented,
/// and enables XMTP V1/V2 (the wallet signs once, the first time).
async fn open_client(cli: &Cli) -> Result<(Client, Option<V2Identity>)> {
    let db = match &cli.db {
        Some(path) => path.clone(),
        None => config::default_db_path()?,
    };
    let db = config::prepare_db_path(&db)?;
    let key = config::database_key(&db)?;
    let given = match std::env::var("XMTP_WALLET_KEY")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(hex_key) => {
            let bytes = config::parse_key_hex(&hex_key, "XMTP_WALLET_KEY")?;
            Some(
                LocalWallet::from_key_bytes(&bytes)
                    .context("XMTP_WALLET_KEY is not a valid secp256k1 key")?,
            )
        }
        None => None,
    };
    // The wallet stored by an earlier command, read before the client opens.
    let stored = {
        let storage = Storage::open(&db, &key).map_err(xmtp_core::ClientError::from)?;
        let secret = storage
            .transaction(|tx| tx.secret(WALLET_SECRET))
            .map_err(xmtp_core::ClientError::from)?;
        match secret {
            Some(bytes) => {
                let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    anyhow::anyhow!("the wallet key stored in the database is corrupt")
                })?;
                Some(LocalWallet::from_key_bytes(&bytes)?)
            }
            None => None,
        }
    };
    let remember = given.as_ref().map(|w| w.to_key_bytes());
    let mut builder = ClientBuilder::new()
        .node_url(cli.node.clone())
        .database_path(&db)
        .database_key(key.clone());
    if let Some(wallet) = given.or(stored) {
        let wallet: Arc<dyn WalletSigner> = Arc::new(wallet);
        builder = builder.wallet(wallet);
    }
    let client = builder.build().await?;
    if let Some(bytes) = remember {
        // Seal the given key in the database, so later commands can sign.
        let storage = Storage::open(&db, &key).map_err(xmtp_core::ClientError::from)?;
        storage
            .transaction(|tx| tx.put_secret(WALLET_SECRET, bytes.as_slice()))
            .map_err(xmtp_core::ClientError::from)?;
    }
    if client.is_revoked() {
        return Ok((client, None));
    }
    let v2 = match client.enable_v2().await {
        Ok(identity) => Some(identity),
        // `register` reports it; other commands still work over Olm.
        Err(e) if !matches!(cli.command, Command::Register) => {
            tracing::warn!(error = %e, "XMTP V2 is not available");
            None
        }
        Err(e) => return Err(e.into()),
    };
    Ok((client, v2))
}

/// Syncs with a spinner; returns the number of new messages.
async fn sync(client: &Client, out: Output) -> Result<usize> {
    let spinner = out.spinner("syncing messages");
    let result = client.sync().await;
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let summary = result?;
    if summary.failed > 0 {
        tracing::warn!(failed = summary.failed, "some envelopes could not be read");
    }
    Ok(summary.new_messages)
}

async fn run(cli: &Cli, out: Output) -> Result<()> {
    let (client, v2) = open_client(cli).await?;
    let v2_key = v2.as_ref().map(|i| i.identity_key.clone());
    match &cli.command {
        Command::Register => out.emit(
            json!({
                "type": "registered",
                "address": client.address(),
                "installation_id": client.installation_id(),
                "v2_identity_key": v2_key,
                "v2_identity": v2.as_ref().map(|i| i.origin.as_str()),
            }),
            || {
                let v2_line = v2.as_ref().map_or(String::new(), |i| {
                    format!(
                        "\nXMTP V2 identity: {} ({})",
                        i.identity_key,
                        i.origin.as_str()
                    )
                });
                format!(
                    "address:         {}\ninstallation id: {}{v2_line}",
                    client.address(),
                    client.installation_id()
                )
            },
        ),
        Command::Info => {
            sync(&client, out).await?;
            let conversations = client.conversations()?.len();
            let messages = client.message_count()?;
            out.emit(
                json!({
                    "type": "info",
                    "address": client.address(),
                    "installation_id": client.installation_id(),
                    "node": cli.node,
                    "conversations": conversations,
                    "messages": messages,
                    "revoked": client.is_revoked(),
                    "v2_identity_key": v2_key,
                }),
                || {
                    format!(
                        "address:         {}\ninstallation id: {}\nnode:            {}\nconversations:   {conversations}\nmessages:        {messages}{}",
                        client.address(),
                        client.installation_id(),
                        cli.node,
                        if client.is_revoked() { "\nthis installation is REVOKED" } else { "" }
                    )
                },
            );
        }
        Command::Send {
            address,
            text,
            protocol,
        } => {
            let spinner = out.spinner("sending");
            let sent = match protocol {
                SendProtocol::Auto => client.send_text_auto(address, text).await,
                SendProtocol::Olm => client.send_text(address, text).await,
                SendProtocol::V2 => client.send_v2_text(address, text).await,
            };
            if let Some(bar) = spinner {
                bar.finish_and_clear();
            }
            let message = sent?;
            out.emit(
                json!({"type": "sent", "id": message.id, "conversation": message.conversation_id, "sent_ns": message.sent_ns.to_string(), "protocol": message.protocol.as_str()}),
                || format!("sent to {} over {} (message {})", message.conversation_id, message.protocol, message.id),
            );
        }
        Command::List => {
            sync(&client, out).await?;
            let conversations = client.conversations()?;
            if conversations.is_empty() {
                out.status("no conversations yet; start one with `xmtp send <address> <text>`");
            }
            for c in &conversations {
                out.conversation(c, &client.address());
            }
        }
        Command::Messages { address } => {
            sync(&client, out).await?;
            let messages = if address.trim().parse::<xmtp_core::Address>().is_ok() {
                client.messages_with(address, &MessagePage::default())?
            } else {
                client.messages(address, &MessagePage::default())?
            };
            if messages.is_empty() {
                out.status("no messages in this conversation");
            }
            for m in &messages {
                out.message(m, &client.address(), false);
            }
        }
        Command::Stream => {
            let mut stream = client.stream_messages().await?;
            out.status("listening for new messages (Ctrl-C to stop)");
            if out.json {
                println!(
                    "{}",
                    json!({"type": "listening", "address": client.address()})
                );
            }
            let own = client.address();
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    next = stream.next() => match next {
                        Some(Ok(m)) => out.message(&m, &own, true),
                        Some(Err(e)) => tracing::warn!(error = %e, "could not read a message"),
                        None => break,
                    },
                }
            }
        }
        Command::Installations { address } => {
            let spinner = out.spinner("fetching installations");
            let listed = match address {
                Some(a) => client.installations_of(a).await,
                None => client.installations().await,
            };
            if let Some(bar) = spinner {
                bar.finish_and_clear();
            }
            let listed = listed?;
            if listed.is_empty() {
                out.status("no valid installation");
            }
            for i in &listed {
                out.installation(i);
            }
        }
        Command::Revoke { installation_id } => {
            client.revoke_installation(installation_id).await?;
            out.emit(
                json!({"type": "revoked", "installation_id": installation_id.trim().to_lowercase()}),
                || format!("revoked installation {}", installation_id.trim()),
            );
        }
        Command::Group { command } => group::run(&client, out, command).await?,
    }
    Ok(())
}
