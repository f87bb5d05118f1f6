//! The agent API against a node started in-process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use tokio::sync::Semaphore;
use xmtp_core::{
    agent::{Agent, HandlerError, MessageContext},
    Client, ClientBuilder, ClientError, ClientOptions, DatabaseKey, LocalWallet, MessageStream,
};
use xmtp_node::{Node, NodeConfig, RunningNode};

fn options() -> ClientOptions {
    ClientOptions {
        contact_refresh: Duration::ZERO,
        ..ClientOptions::default()
    }
}

async fn user(node: &RunningNode) -> Client {
    ClientBuilder::new()
        .node_url(node.grpc_url())
        .options(options())
        .build()
        .await
        .unwrap()
}

/// The next message in `stream` sent by `from` (a safety bound of 30 s keeps
/// a broken agent from hanging the test).
async fn next_from(stream: &mut MessageStream, from: &str) -> String {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("a message within 30 s")
            .expect("stream open")
            .expect("readable");
        if m.sender_address == from {
            return m.text().unwrap();
        }
    }
}

/// Sends, retrying while the node is restarting.
async fn send_retrying(client: &Client, to: &str, text: &str) {
    loop {
        match client.send_text(to, text).await {
            Ok(_) | Err(ClientError::Queued { .. }) => break,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    while client.outbox_len().unwrap() > 0 {
        if client.flush_outbox().await.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

type Log = Arc<Mutex<Vec<String>>>;

/// An echo handler that also logs what it handled.
fn echo(
    log: Log,
) -> impl Fn(MessageContext) -> futures::future::BoxFuture<'static, Result<(), HandlerError>>
       + Send
       + Sync
       + 'static {
    move |ctx: MessageContext| {
        let log = log.clone();
        Box::pin(async move {
            let text = ctx.text().unwrap_or_default();
            log.lock().unwrap().push(text.clone());
            ctx.reply(&format!("echo: {text}")).await?;
            Ok(())
        })
    }
}

#[tokio::test]
async fn an_echo_agent_answers_in_the_same_conversation() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let agent = Agent::builder()
        .node_url(node.grpc_url())
        .options(options())
        .build()
        .await
        .unwrap();
    let agent_address = agent.address();
    let log = Log::default();
    let running = agent.start(echo(log.clone())).await.unwrap();

    let alice = user(&node).await;
    let mut stream = alice.stream_conversation(&agent_address).await.unwrap();
    alice.send_text(&agent_address, "gm agent").await.unwrap();
    assert_eq!(
        next_from(&mut stream, &agent_address).await,
        "echo: gm agent"
    );
    alice.send_text(&agent_address, "second").await.unwrap();
    assert_eq!(next_from(&mut stream, &agent_address).await, "echo: second");
    running.stop().await.unwrap();
    // The agent's own replies were not handed to the handler.
    assert_eq!(*log.lock().unwrap(), ["gm agent", "second"]);
}

#[tokio::test]
async fn each_message_is_handled_once_across_node_and_agent_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let node_db = dir.path().join("node.db3").to_string_lossy().into_owned();
    let node = Node::start(NodeConfig::with_sqlite(node_db.clone()))
        .await
        .unwrap();
    let port = node.grpc_addr().port();
    let wallet = LocalWallet::random();
    let agent_db = dir.path().join("agent.db3");
    let key = DatabaseKey::random();
    let build_agent = |url: String| {
        let wallet = wallet.clone();
        let agent_db = agent_db.clone();
        let key = key.clone();
        async move {
            Agent::builder()
                .node_url(url)
                .wallet(Arc::new(wallet))
                .database_path(agent_db)
                .database_key(key)
                .options(options())
                .build()
                .await
                .unwrap()
        }
    };
    let agent = build_agent(node.grpc_url()).await;
    let agent_address = agent.address();
    let first_run = Log::default();
    let running = agent.start(echo(first_run.clone())).await.unwrap();

    let alice = user(&node).await;
    let mut stream = alice.stream_conversation(&agent_address).await.unwrap();
    alice.send_text(&agent_address, "one").await.unwrap();
    assert_eq!(next_from(&mut stream, &agent_address).await, "echo: one");

    // The node restarts under the running agent.
    node.shutdown().await;
    let node = Node::start(NodeConfig {
        grpc_port: port,
        ..NodeConfig::with_sqlite(node_db)
    })
    .await
    .unwrap();
    send_retrying(&alice, &agent_address, "two").await;
    assert_eq!(next_from(&mut stream, &agent_address).await, "echo: two");

    // The agent restarts; a message arrives while it is down.
    running.stop().await.unwrap();
    send_retrying(&alice, &agent_address, "three").await;
    let second_run = Log::default();
    let running = build_agent(node.grpc_url())
        .await
        .start(echo(second_run.clone()))
        .await
        .unwrap();
    assert_eq!(next_from(&mut stream, &agent_address).await, "echo: three");
    alice.send_text(&agent_address, "four").await.unwrap();
    assert_eq!(next_from(&mut stream, &agent_address).await, "echo: four");
    running.stop().await.unwrap();

    assert_eq!(*first_run.lock().unwrap(), ["one", "two"]);
    assert_eq!(*second_run.lock().unwrap(), ["three", "four"]);
    alice.sync().await.unwrap();
    let echoes: Vec<String> = alice
        .messages(&agent_address, &Default::default())
        .unwrap()
        .into_iter()
        .filter(|m| m.sender_address == agent_address)
        .map(|m| m.text().unwrap())
        .collect();
    assert_eq!(
        echoes,
        ["echo: one", "echo: two", "echo: three", "echo: four"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_run_concurrently_and_each_stays_in_order() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let agent = Agent::builder()
        .node_url(node.grpc_url())
        .options(options())
        .build()
        .await
        .unwrap();
    let agent_address = agent.address();
    let release = Arc::new(Semaphore::new(0));
    let log: Log = Log::default();
    let handler = {
        let release = release.clone();
        let log = log.clone();
        move |ctx: MessageContext| {
            let release = release.clone();
            let log = log.clone();
            async move {
                let text = ctx.text().unwrap_or_default();
                log.lock().unwrap().push(format!("start {text}"));
                if text == "slow" {
                    // Held until the test has seen the other conversation answered.
                    release.acquire().await?.forget();
                }
                log.lock().unwrap().push(format!("end {text}"));
                ctx.reply(&format!("echo: {text}")).await?;
                Ok::<(), HandlerError>(())
            }
        }
    };
    let running = agent.start(handler).await.unwrap();

    let alice = user(&node).await;
    let bob = user(&node).await;
    let mut alice_stream = alice.stream_conversation(&agent_address).await.unwrap();
    let mut bob_stream = bob.stream_conversation(&agent_address).await.unwrap();
    for text in ["slow", "a2", "a3"] {
        alice.send_text(&agent_address, text).await.unwrap();
    }
    // Wait until the slow handler holds Alice's conversation.
    while !log.lock().unwrap().contains(&"start slow".to_string()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bob.send_text(&agent_address, "fast").await.unwrap();
    assert_eq!(
        next_from(&mut bob_stream, &agent_address).await,
        "echo: fast"
    );
    {
        let log = log.lock().unwrap();
        assert!(
            !log.contains(&"start a2".to_string()),
            "a2 must wait for slow: {log:?}"
        );
        assert!(!log.contains(&"end slow".to_string()));
    }
    release.add_permits(1);
    for expected in ["echo: slow", "echo: a2", "echo: a3"] {
        assert_eq!(next_from(&mut alice_stream, &agent_address).await, expected);
    }
    running.stop().await.unwrap();
    let alice_order: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|e| !e.ends_with("fast"))
        .cloned()
        .collect();
    assert_eq!(
        alice_order,
        [
            "start slow",
            "end slow",
            "start a2",
            "end a2",
            "start a3",
            "end a3"
        ]
    );
}

#[tokio::test]
async fn a_failing_handler_does_not_stop_the_agent() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let agent = Agent::builder()
        .node_url(node.grpc_url())
        .options(options())
        .build()
        .await
        .unwrap();
    let agent_address = agent.address();
    let running = agent
        .start(|ctx: MessageContext| async move {
            match ctx.text().as_deref() {
                Some("fail") => Err::<(), HandlerError>("refused".into()),
                Some("panic") => panic!("handler bug"),
                other => {
                    ctx.reply(&format!("ok: {}", other.unwrap_or_default()))
                        .await?;
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
    let alice = user(&node).await;
    let mut stream = alice.stream_conversation(&agent_address).await.unwrap();
    for text in ["fail", "panic", "fine"] {
        alice.send_text(&agent_address, text).await.unwrap();
    }
    assert_eq!(next_from(&mut stream, &agent_address).await, "ok: fine");
    running.stop().await.unwrap();
}
