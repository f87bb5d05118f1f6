//! Streams of new messages delivered to a foreign callback.
//!
//! A stream is a task on the library's tokio runtime that reads the core's
//! `MessageStream` and calls [`FfiMessageCallback::on_message`] for each new
//! message, in storage order. The app keeps the returned [`FfiStreamHandle`]
//! and calls `end()` to stop it; freeing the handle stops it too (Kotlin's
//! `close()` / `use {}`, Swift's `deinit`, Python's garbage collection), so a
//! forgotten handle cannot leak a task. After `end()` returns no new
//! callback starts (one already running finishes).
//!
//! The method is `end`, not `close`: every uniffi object in Kotlin already
//! has an `AutoCloseable.close()` that frees it, and a second `close()` would
//! not compile.
//!
//! A callback that throws is logged and the stream goes on: one bad message
//! handler must not silence the conversation.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};

use futures::{Stream, StreamExt};
use tokio::task::JoinHandle;
use xmtp_core::{ClientError, Message};

use crate::{
    error::{FfiCallbackError, FfiError},
    records::FfiMessage,
};

/// Receives the messages of a stream; implemented by the app.
#[uniffi::export(foreign)]
pub trait FfiMessageCallback: Send + Sync {
    /// A new message (received, or sent by any installation of this address).
    fn on_message(&self, message: FfiMessage) -> Result<(), FfiCallbackError>;

    /// The stream failed to read a message; it goes on after this.
    fn on_error(&self, error: FfiError) -> Result<(), FfiCallbackError>;
}

/// A running stream; `end()` stops it.
#[derive(uniffi::Object)]
pub struct FfiStreamHandle {
    closed: Arc<AtomicBool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl FfiStreamHandle {
    /// Starts delivering `stream` (every conversation, one conversation or
    /// one group) to `callback` on the current tokio runtime.
    pub(crate) fn spawn<S>(stream: S, callback: Arc<dyn FfiMessageCallback>) -> Self
    where
        S: Stream<Item = Result<Message, ClientError>> + Send + Unpin + 'static,
    {
        let closed = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(deliver(stream, callback, closed.clone()));
        Self {
            closed,
            task: Mutex::new(Some(task)),
        }
    }
}

async fn deliver<S>(mut stream: S, callback: Arc<dyn FfiMessageCallback>, closed: Arc<AtomicBool>)
where
    S: Stream<Item = Result<Message, ClientError>> + Unpin,
{
    while let Some(item) = stream.next().await {
        if closed.load(Ordering::SeqCst) {
            return;
        }
        let outcome = match item {
            Ok(message) => callback.on_message(FfiMessage::from(message)),
            Err(e) => callback.on_error(FfiError::from(e)),
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "a stream callback failed; the stream goes on");
        }
    }
    closed.store(true, Ordering::SeqCst);
}

#[uniffi::export]
impl FfiStreamHandle {
    /// Stops the stream. Safe to call more than once.
    pub fn end(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Ok(mut task) = self.task.lock() {
            if let Some(task) = task.take() {
                task.abort();
            }
        }
    }

    /// Whether the stream was ended (or ended with its client).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

impl Drop for FfiStreamHandle {
    fn drop(&mut self) {
        self.end();
    }
}
