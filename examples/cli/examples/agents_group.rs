//! Three agents and a person in one group (seed 001: multi-agent chats).
//!
//! ```text
//! cargo run -p xmtp_cli --example agents_group
//! ```
//!
//! The person creates a group with three agents (echo, shout, count) and
//! writes to it; each agent answers the person in the group (agents ignore
//! each other, so they do not talk in circles). Every message is encrypted
//! once with the sender's Megolm session; keys travel over Olm. Uses the node
//! at `XMTP_NODE` if set, else starts one in-process. Prints the group's
//! conversation as the person sees it, then exits.

use std::{collections::HashSet, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use futures::StreamExt;
use xmtp_core::{
    agent::{Agent, HandlerError, MessageContext, RunningAgent},
    ClientBuilder, LocalWallet,
};

/// Starts an agent that answers `person` with `answer(text)`.
async fn start_agent(
    node: &str,
    person: String,
    answer: fn(&str) -> String,
) -> Result<RunningAgent> {
    let agent = Agent::builder().node_url(node).build().await?;
    let handler = move |ctx: MessageContext| {
        let person = person.clone();
        async move {
            if ctx.sender() != person {
                return Ok::<(), HandlerError>(());
            }
            let text = ctx.text().unwrap_or_default();
            ctx.reply(&answer(&text)).await?;
            Ok(())
        }
    };
    Ok(agent.start(handler).await?)
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
    let (_local_node, node) = match std::env::var("XMTP_NODE") {
        Ok(url) => (None, url),
        Err(_) => {
            let running = xmtp_node::Node::start(xmtp_node::NodeConfig::default()).await?;
            let url = running.grpc_url();
            (Some(running), url)
        }
    };
    let person = ClientBuilder::new()
        .node_url(node.clone())
        .wallet(Arc::new(LocalWallet::random()))
        .build()
        .await
        .with_context(|| format!("cannot connect to {node}"))?;
    let me = person.address();
    let agents = [
        start_agent(&node, me.clone(), |t| format!("echo: {t}")).await?,
        start_agent(&node, me.clone(), |t| t.to_uppercase()).await?,
        start_agent(&node, me.clone(), |t| {
            format!("{} words", t.split_whitespace().count())
        })
        .await?,
    ];
    let addresses: Vec<String> = agents.iter().map(|a| a.address()).collect();
    let members: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let group = person
        .create_group(&members, "three agents and a person")
        .await?;
    println!("group {group}");
    let mut stream = person.stream_group(&group).await?;
    for text in ["hello agents", "how are you all today"] {
        person.send_group_text(&group, text).await?;
        let mut answered = HashSet::new();
        while answered.len() < agents.len() {
            let next = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .context("an agent did not answer within 30 s")?;
            let Some(message) = next else { break };
            let message = message?;
            if message.sender_address != me {
                answered.insert(message.sender_address.clone());
            }
        }
    }
    for m in person.group_messages(&group, &Default::default())? {
        let who = if m.sender_address == me {
            "person".to_string()
        } else {
            let i = addresses
                .iter()
                .position(|a| *a == m.sender_address)
                .unwrap_or(0);
            format!("agent {}", i + 1)
        };
        println!("{who:>8}: {}", m.display_text().unwrap_or_default());
    }
    for agent in agents {
        agent.stop().await?;
    }
    Ok(())
}
