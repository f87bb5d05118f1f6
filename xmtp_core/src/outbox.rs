//! The outbox: envelopes committed locally, waiting to be published.
//!
//! A send commits its ratchet steps and its envelopes (outbox rows) in one
//! transaction, then publishes the rows and deletes them once the node
//! acknowledged them. A crash between the two leaves the rows, which the next
//! start (or sync) publishes again. Each row keeps the exact envelope bytes
//! and timestamp, so a republish is byte-identical and the node (which stores
//! a duplicate envelope once) keeps a single copy: published once.

use xmtp_proto::xmtp::message_api::v1::Envelope;

use crate::{client::Client, error::ClientError};

/// Envelopes per publish request.
const PUBLISH_BATCH: u32 = 100;

impl Client {
    /// Publishes every queued envelope; returns how many were published.
    pub async fn flush_outbox(&self) -> Result<usize, ClientError> {
        let inner = &self.inner;
        let _guard = inner.outbox_lock.lock().await;
        let mut published = 0;
        loop {
            let rows = inner.storage.transaction(|tx| tx.outbox(PUBLISH_BATCH))?;
            if rows.is_empty() {
                return Ok(published);
            }
            let envelopes = rows
                .iter()
                .map(|r| Envelope {
                    content_topic: r.topic.clone(),
                    timestamp_ns: r.timestamp_ns,
                    message: r.envelope.clone(),
                })
                .collect();
            inner.api.publish(envelopes).await?;
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            inner
                .storage
                .transaction_relaxed(|tx| tx.delete_outbox(&ids))?;
            published += rows.len();
        }
    }

    /// Number of envelopes waiting in the outbox.
    pub fn outbox_len(&self) -> Result<u64, ClientError> {
        Ok(self.inner.storage.transaction(|tx| tx.outbox_count())?)
    }
}
