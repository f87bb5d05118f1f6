//! Agents: programs that answer messages (seed 001).
//!
//! An [`Agent`] is a [`Client`] with a message handler. It reads new messages
//! from the client's encrypted database, which the client's follower task
//! fills from the node's subscription and resumes after a dropped connection
//! (see the stream module), so an agent keeps running across network faults.
//!
//! ```text
//!   follower (subscribe + catch-up sync) --> messages table (seq order)
//!        dispatcher: for each stored message after the cursor,
//!                    skip own, skip handled, push to the conversation's queue
//!        one worker task per conversation with messages in flight:
//!                    handler(message) one at a time, then persist
//!                    "handled up to seq" for that conversation
//! ```
//!
//! Conversations are handled concurrently (a slow handler holds up only its
//! own conversation) while each conversation's messages are handled one
//! after another, in storage order.
//!
//! Handled-once: two sealed records in the client's database, under names
//! prefixed `agent/`, say what was handled: a per-conversation mark (the
//! storage sequence number of its last handled message) and a global cursor
//! below which everything was handled (the lowest message still in flight,
//! minus one). After a restart the dispatcher resumes at the cursor and skips
//! messages at or below their conversation's mark, so nothing handled is
//! handled again and nothing stored is missed. The one gap is a crash between
//! a handler's return and the write of its mark: that message is handled
//! again after the restart (at least once in that window, never zero times).
//!
//! Own messages (any installation of the agent's address) are never handed
//! to the handler, so an agent does not answer its own replies.

use std::{
    collections::{BTreeSet, HashMap},
    future::Future,
    path::PathBuf,
    sync::Arc,
};

use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};
use xmtp_cryptography::{LocalWallet, WalletSigner};
use xmtp_networking::XmtpApi;
use xmtp_proto::xmtp::message_contents::EncodedContent;

use crate::{
    builder::{ClientBuilder, ClientOptions},
    client::Client,
    error::ClientError,
    messages::Message,
    storage::{DatabaseKey, StorageError, StorageTx},
};

/// Messages read from the database per dispatch round.
const DISPATCH_BATCH: u32 = 100;
/// Name of the sealed record holding the agent's global cursor.
const CURSOR_SECRET: &str = "agent/cursor";
/// Prefix of the per-conversation "handled up to" marks.
const CONVERSATION_MARK_PREFIX: &str = "agent/handled/";

/// What a handler may fail with: any error (it is logged; the message still
/// counts as handled, so a failing handler is not retried forever).
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// An agent's failure.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The client failed (building it, or its database).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A wallet key that is not a valid secp256k1 private key.
    #[error("invalid wallet key: {0}")]
    WalletKey(String),
    /// The agent's task ended abnormally.
    #[error("the agent task ended abnormally: {0}")]
    Task(String),
}

impl From<StorageError> for AgentError {
    fn from(e: StorageError) -> Self {
        Self::Client(ClientError::from(e))
    }
}

/// A new message, with what a handler needs to answer it.
#[derive(Debug, Clone)]
pub struct MessageContext {
    client: Client,
    message: Message,
}

impl MessageContext {
    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The sender's address (EIP-55).
    pub fn sender(&self) -> &str {
        &self.message.sender_address
    }

    /// The conversation the message belongs to (for a direct message, the
    /// peer's address).
    pub fn conversation_id(&self) -> &str {
        &self.message.conversation_id
    }

    /// The text, if the message is `xmtp.org/text:1.0`.
    pub fn text(&self) -> Option<String> {
        self.message.text()
    }

    /// The agent's client (to send elsewhere, list conversations, ...).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Replies with text in the same conversation (direct or group).
    pub async fn reply(&self, text: &str) -> Result<Message, ClientError> {
        self.reply_content(crate::content::encode_text(text)).await
    }

    /// Replies with any content in the same conversation (direct or group).
    pub async fn reply_content(&self, content: EncodedContent) -> Result<Message, ClientError> {
        self.client
            .send_to_conversation(&self.message.conversation_id, content)
            .await
    }
}

/// Handles each new message. Implemented for any
/// `Fn(MessageContext) -> impl Future<Output = Result<(), HandlerError>>`,
/// so an async closure is a handler.
#[async_trait::async_trait]
pub trait MessageHandler: Send + Sync + 'static {
    /// Called once per new message from someone else; calls for one
    /// conversation never overlap and come in storage order.
    async fn on_message(&self, context: MessageContext) -> Result<(), HandlerError>;
}

#[async_trait::async_trait]
impl<F, Fut> MessageHandler for F
where
    F: Fn(MessageContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    async fn on_message(&self, context: MessageContext) -> Result<(), HandlerError> {
        self(context).await
    }
}

/// Builds an [`Agent`]: a client (wallet, node, database) for it to run on.
pub struct AgentBuilder {
    client: ClientBuilder,
}

impl std::fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentBuilder")
    }
}

impl AgentBuilder {
    /// The node's gRPC URL.
    pub fn node_url(mut self, url: impl Into<String>) -> Self {
        self.client = self.client.node_url(url);
        self
    }

    /// An API client to use instead of a URL.
    pub fn api(mut self, api: Arc<dyn XmtpApi>) -> Self {
        self.client = self.client.api(api);
        self
    }

    /// The agent's wallet (without one, an ephemeral random wallet).
    pub fn wallet(mut self, wallet: Arc<dyn WalletSigner>) -> Self {
        self.client = self.client.wallet(wallet);
        self
    }

    /// The agent's wallet from its 32-byte secp256k1 private key.
    pub fn wallet_key(self, key: &[u8; 32]) -> Result<Self, AgentError> {
        let wallet =
            LocalWallet::from_key_bytes(key).map_err(|e| AgentError::WalletKey(e.to_string()))?;
        Ok(self.wallet(Arc::new(wallet)))
    }

    /// Keep state in a database file; needs [`AgentBuilder::database_key`].
    /// Without a file, state is in memory and a restarted agent starts afresh.
    pub fn database_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.client = self.client.database_path(path);
        self
    }

    /// The database's key.
    pub fn database_key(mut self, key: DatabaseKey) -> Self {
        self.client = self.client.database_key(key);
        self
    }

    /// Client tunables.
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.client = self.client.options(options);
        self
    }

    /// Builds (and registers) the agent's client.
    pub async fn build(self) -> Result<Agent, AgentError> {
        Ok(Agent {
            client: self.client.build().await?,
        })
    }
}

/// A client that hands each new message to a [`MessageHandler`].
///
/// ```no_run
/// # async fn example() -> Result<(), xmtp_core::agent::AgentError> {
/// use xmtp_core::agent::{Agent, MessageContext};
///
/// let agent = Agent::builder().node_url("http://localhost:5556").build().await?;
/// println!("talk to me at {}", agent.address());
/// let running = agent
///     .start(|ctx: MessageContext| async move {
///         let text = ctx.text().unwrap_or_default();
///         ctx.reply(&format!("echo: {text}")).await?;
///         Ok(())
///     })
///     .await?;
/// tokio::signal::ctrl_c().await.ok();
/// running.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Agent {
    client: Client,
}

impl Agent {
    /// A builder with an in-memory database and a random wallet.
    pub fn builder() -> AgentBuilder {
        AgentBuilder {
            client: ClientBuilder::new(),
        }
    }

    /// An agent running on an existing client.
    pub fn from_client(client: Client) -> Self {
        Self { client }
    }

    /// The agent's client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The agent's address, where people message it.
    pub fn address(&self) -> String {
        self.client.address()
    }

    /// Starts handling messages in the background: every message stored
    /// after the agent's cursor (on a first start: from now on).
    pub async fn start<H: MessageHandler>(self, handler: H) -> Result<RunningAgent, AgentError> {
        let client = self.client;
        client.ensure_not_revoked()?;
        let cursor = match client
            .inner
            .storage
            .transaction(|tx| read_seq(tx, CURSOR_SECRET))?
        {
            Some(cursor) => cursor,
            None => {
                let now = client
                    .inner
                    .storage
                    .transaction(|tx| tx.max_message_seq())?;
                client
                    .inner
                    .storage
                    .transaction(|tx| write_seq(tx, CURSOR_SECRET, now))?;
                now
            }
        };
        let (stop, stop_rx) = watch::channel(false);
        let dispatcher = Dispatcher {
            client: client.clone(),
            handler: Arc::new(handler),
            own_address: client.address(),
            cursor,
            dispatched: cursor,
            in_flight: BTreeSet::new(),
            workers: HashMap::new(),
            marks: HashMap::new(),
            stop_rx,
        };
        client.ensure_following();
        let task = tokio::spawn(dispatcher.run());
        tracing::info!(address = %client.address(), cursor, "agent started");
        Ok(RunningAgent { client, stop, task })
    }
}

/// A started agent. Dropping it does not stop the agent task; call
/// [`RunningAgent::stop`].
#[derive(Debug)]
pub struct RunningAgent {
    client: Client,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), AgentError>>,
}

impl RunningAgent {
    /// The agent's client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The agent's address.
    pub fn address(&self) -> String {
        self.client.address()
    }

    /// Stops gracefully: no new message is started, the handlers running now
    /// finish and are recorded, and messages not yet started are left for the
    /// next start.
    pub async fn stop(self) -> Result<(), AgentError> {
        self.stop.send_replace(true);
        self.task
            .await
            .map_err(|e| AgentError::Task(e.to_string()))?
    }
}

struct Job {
    seq: i64,
    message: Message,
}

/// A conversation's queue and how many of its messages are in flight.
struct Worker {
    queue: mpsc::UnboundedSender<Job>,
    pending: usize,
}

/// A worker's report: this message of this conversation is done.
type Done = (i64, String);

struct Dispatcher {
    client: Client,
    handler: Arc<dyn MessageHandler>,
    own_address: String,
    /// Everything at or below it is handled (persisted).
    cursor: i64,
    /// The highest sequence number looked at.
    dispatched: i64,
    /// Sequence numbers queued or being handled.
    in_flight: BTreeSet<i64>,
    /// The live workers, by conversation; a worker is dropped (and its task
    /// ends) when its conversation has nothing in flight.
    workers: HashMap<String, Worker>,
    /// Per-conversation marks read from the database on first use.
    marks: HashMap<String, i64>,
    stop_rx: watch::Receiver<bool>,
}

impl Dispatcher {
    async fn run(mut self) -> Result<(), AgentError> {
        let mut stored = self.client.inner.stored.subscribe();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut stop_rx = self.stop_rx.clone();
        let result = loop {
            if *stop_rx.borrow() {
                break Ok(());
            }
            if let Err(e) = self
                .dispatch_new(&done_tx)
                .and_then(|()| self.advance_cursor())
            {
                break Err(e);
            }
            tokio::select! {
                _ = stop_rx.changed() => break Ok(()),
                changed = stored.changed() => {
                    if changed.is_err() {
                        break Ok(());
                    }
                }
                Some(done) = done_rx.recv() => self.finished(done),
            }
        };
        // Graceful stop: close the queues; workers finish their current
        // message, leave the rest, and drop their completion senders.
        self.workers.clear();
        drop(done_tx);
        while let Some(done) = done_rx.recv().await {
            self.finished(done);
        }
        self.advance_cursor()?;
        tracing::info!(address = %self.own_address, cursor = self.cursor, "agent stopped");
        result
    }

    /// Queues every stored message after `dispatched` that needs handling.
    /// Records a finished message; retires its worker when idle.
    fn finished(&mut self, (seq, conversation): Done) {
        self.in_flight.remove(&seq);
        if let Some(worker) = self.workers.get_mut(&conversation) {
            worker.pending = worker.pending.saturating_sub(1);
            if worker.pending == 0 {
                self.workers.remove(&conversation);
            }
        }
    }

    fn dispatch_new(&mut self, done: &mpsc::UnboundedSender<Done>) -> Result<(), AgentError> {
        loop {
            let rows =
                self.client.inner.storage.transaction(|tx| {
                    tx.messages_after_seq(self.dispatched, None, DISPATCH_BATCH)
                })?;
            if rows.is_empty() {
                return Ok(());
            }
            for record in rows {
                let seq = record.seq;
                self.dispatched = self.dispatched.max(seq);
                if record
                    .sender_address
                    .eq_ignore_ascii_case(&self.own_address)
                {
                    continue;
                }
                if seq <= self.mark(&record.conversation_id)? {
                    continue;
                }
                let message = match Message::from_record(record) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(seq, error = %e, "agent skips an unreadable stored message");
                        continue;
                    }
                };
                self.in_flight.insert(seq);
                let conversation = message.conversation_id.clone();
                let job = Job { seq, message };
                let job = match self.workers.get_mut(&conversation) {
                    Some(worker) => match worker.queue.send(job) {
                        Ok(()) => {
                            worker.pending += 1;
                            continue;
                        }
                        Err(mpsc::error::SendError(job)) => job,
                    },
                    None => job,
                };
                let queue = self.spawn_worker(conversation.clone(), done.clone());
                if queue.send(job).is_err() {
                    tracing::error!(%conversation, "agent worker ended at once");
                }
                self.workers
                    .insert(conversation, Worker { queue, pending: 1 });
            }
        }
    }

    fn mark(&mut self, conversation: &str) -> Result<i64, AgentError> {
        if let Some(mark) = self.marks.get(conversation) {
            return Ok(*mark);
        }
        let mark = self
            .client
            .inner
            .storage
            .transaction(|tx| read_seq(tx, &mark_name(conversation)))?
            .unwrap_or(0);
        self.marks.insert(conversation.to_string(), mark);
        Ok(mark)
    }

    fn spawn_worker(
        &self,
        conversation: String,
        done: mpsc::UnboundedSender<Done>,
    ) -> mpsc::UnboundedSender<Job> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(work(
            self.client.clone(),
            self.handler.clone(),
            conversation,
            rx,
            done,
            self.stop_rx.clone(),
        ));
        tx
    }

    /// Persists the cursor: just below the oldest message still in flight.
    fn advance_cursor(&mut self) -> Result<(), AgentError> {
        let cursor = match self.in_flight.first() {
            Some(oldest) => oldest - 1,
            None => self.dispatched,
        };
        if cursor > self.cursor {
            // Not fsynced: a cursor rolled back by a power loss only makes the
            // next start re-read messages that the (durable) marks then skip.
            self.client
                .inner
                .storage
                .transaction_relaxed(|tx| write_seq(tx, CURSOR_SECRET, cursor))?;
            self.cursor = cursor;
        }
        Ok(())
    }
}

/// One conversation's worker: handles its messages one at a time.
async fn work(
    client: Client,
    handler: Arc<dyn MessageHandler>,
    conversation: String,
    mut queue: mpsc::UnboundedReceiver<Job>,
    done: mpsc::UnboundedSender<Done>,
    stop: watch::Receiver<bool>,
) {
    let mark = mark_name(&conversation);
    while let Some(job) = queue.recv().await {
        if *stop.borrow() {
            // Left unhandled (and unmarked) for the next start.
            break;
        }
        let context = MessageContext {
            client: client.clone(),
            message: job.message,
        };
        let id = context.message.id.clone();
        let handler = handler.clone();
        // Its own task, so that a panicking handler is contained and logged.
        match tokio::spawn(async move { handler.on_message(context).await }).await {
            Ok(Ok(())) => tracing::debug!(message = %id, %conversation, "handled"),
            Ok(Err(e)) => {
                tracing::warn!(message = %id, %conversation, error = %e, "the message handler failed")
            }
            Err(e) => {
                tracing::error!(message = %id, %conversation, error = %e, "the message handler panicked")
            }
        }
        if let Err(e) = client
            .inner
            .storage
            .transaction(|tx| write_seq(tx, &mark, job.seq))
        {
            tracing::error!(message = %id, error = %e, "could not record a handled message; it may be handled again after a restart");
        }
        if done.send((job.seq, conversation.clone())).is_err() {
            break;
        }
    }
}

fn mark_name(conversation: &str) -> String {
    format!("{CONVERSATION_MARK_PREFIX}{conversation}")
}

fn read_seq(tx: &StorageTx<'_>, name: &str) -> Result<Option<i64>, StorageError> {
    let Some(bytes) = tx.secret(name)? else {
        return Ok(None);
    };
    let bytes: [u8; 8] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| StorageError::Corrupt {
            what: "agent progress record",
        })?;
    Ok(Some(i64::from_be_bytes(bytes)))
}

fn write_seq(tx: &StorageTx<'_>, name: &str, seq: i64) -> Result<(), StorageError> {
    tx.put_secret(name, &seq.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

    #[test]
    fn progress_records_round_trip_and_reject_corruption() {
        let storage = Storage::in_memory(&DatabaseKey::random()).unwrap();
        storage
            .transaction(|tx| write_seq(tx, "agent/x", 42))
            .unwrap();
        assert_eq!(
            storage.transaction(|tx| read_seq(tx, "agent/x")).unwrap(),
            Some(42)
        );
        assert_eq!(
            storage.transaction(|tx| read_seq(tx, "agent/y")).unwrap(),
            None
        );
        storage
            .transaction(|tx| tx.put_secret("agent/z", b"short"))
            .unwrap();
        assert!(matches!(
            storage.transaction(|tx| read_seq(tx, "agent/z")),
            Err(StorageError::Corrupt { .. })
        ));
    }

    #[test]
    fn conversation_marks_are_namespaced() {
        assert_eq!(mark_name("0xAb"), "agent/handled/0xAb");
        assert_ne!(mark_name("a"), CURSOR_SECRET);
    }
}
