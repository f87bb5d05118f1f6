//! Agents from foreign code: a handler the app writes (in Kotlin, Swift or
//! Python) answers each new message, on top of `xmtp_core::Agent` (seed 001).
//!
//! The core agent handles each stored message from someone else once, keeps
//! running across dropped connections, and runs different conversations
//! concurrently while one conversation's messages are handled in order. The
//! foreign [`FfiAgentHandler`] receives the message and returns the reply
//! text, if any, which is sent to the same conversation; a handler that
//! throws is logged and the message still counts as handled (so a failing
//! handler is not retried forever).

use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use xmtp_core::{Agent, AgentError, MessageContext, RunningAgent};

use crate::{
    client::FfiClient,
    error::{FfiCallbackError, FfiError},
    records::FfiMessage,
};

/// Answers an agent's messages; implemented by the app.
#[uniffi::export(foreign)]
#[async_trait::async_trait]
pub trait FfiAgentHandler: Send + Sync {
    /// A new message from someone else. Returns the text to reply with in
    /// the same conversation, or nothing.
    async fn on_message(&self, message: FfiMessage) -> Result<Option<String>, FfiCallbackError>;
}

impl From<AgentError> for FfiError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Client(inner) => Self::from(inner),
            AgentError::WalletKey(_) => Self::Wallet {
                message: e.to_string(),
            },
            AgentError::Task(_) => Self::Internal {
                message: e.to_string(),
            },
        }
    }
}

/// A running agent; `stop()` ends it gracefully (freeing the handle stops
/// it too).
#[derive(uniffi::Object)]
pub struct FfiAgentHandle {
    address: String,
    running: Mutex<Option<RunningAgent>>,
    runtime: Handle,
}

impl FfiClient {
    async fn start_agent_inner(
        &self,
        handler: Arc<dyn FfiAgentHandler>,
    ) -> Result<FfiAgentHandle, FfiError> {
        let client = self.core().clone();
        let running = Agent::from_client(client)
            .start(move |context: MessageContext| {
                let handler = handler.clone();
                async move {
                    let reply = handler
                        .on_message(FfiMessage::from(context.message().clone()))
                        .await?;
                    if let Some(text) = reply {
                        context.reply(&text).await?;
                    }
                    Ok(())
                }
            })
            .await?;
        Ok(FfiAgentHandle {
            address: running.address(),
            running: Mutex::new(Some(running)),
            runtime: Handle::current(),
        })
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl FfiClient {
    /// Runs this client as an agent: `handler` gets each new message from
    /// someone else (from now on, or after where a previous agent on this
    /// database stopped) and its returned text is sent as the reply.
    pub async fn start_agent(
        &self,
        handler: Arc<dyn FfiAgentHandler>,
    ) -> Result<Arc<FfiAgentHandle>, FfiError> {
        Ok(Arc::new(self.start_agent_inner(handler).await?))
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl FfiAgentHandle {
    /// The agent's address.
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// Stops gracefully: running handlers finish and are recorded; messages
    /// not yet started are left for the next start. Safe to call twice.
    pub async fn stop(&self) -> Result<(), FfiError> {
        let running = self.running.lock().ok().and_then(|mut r| r.take());
        match running {
            Some(agent) => Ok(agent.stop().await?),
            None => Ok(()),
        }
    }

    /// Whether `stop()` was called.
    pub fn is_stopped(&self) -> bool {
        self.running.lock().map(|r| r.is_none()).unwrap_or(true)
    }
}

impl Drop for FfiAgentHandle {
    fn drop(&mut self) {
        if let Some(agent) = self.running.get_mut().ok().and_then(Option::take) {
            self.runtime.spawn(async move {
                if let Err(e) = agent.stop().await {
                    tracing::warn!(error = %e, "a dropped agent stopped with an error");
                }
            });
        }
    }
}
