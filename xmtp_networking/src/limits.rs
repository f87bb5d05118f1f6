//! The node's per-request limits, and splitting requests to fit them.
//!
//! The node refuses a batch of more than 50 queries, a publish of more than
//! 1,000 envelopes or of more than 4 MiB, and key requests naming more than
//! 200 keys or 100 addresses. The client splits larger requests into chunks
//! that fit and sends them in order, so callers need not know the limits.
//! A split publish is not atomic: a failure part-way leaves the earlier chunks
//! stored, and retrying the whole publish is safe because the node stores a
//! duplicate envelope once.

use xmtp_proto::prost::Message;
use xmtp_proto::xmtp::message_api::v1::Envelope;

/// The most queries the node accepts in one batch query.
pub const MAX_BATCH_QUERIES: usize = 50;
/// The most envelopes the node accepts in one publish.
pub const MAX_PUBLISH_ENVELOPES: usize = 1000;
/// The size a publish request is kept under (the node accepts 4 MiB; the rest
/// is headroom for framing).
pub const MAX_PUBLISH_BYTES: usize = 3 * 1024 * 1024;
/// The most one-time keys per upload, and installations per claim.
pub const MAX_KEYS_PER_REQUEST: usize = 200;
/// The most addresses per installation lookup.
pub const MAX_ADDRESSES_PER_REQUEST: usize = 100;

/// Splits envelopes into publish requests of at most
/// [`MAX_PUBLISH_ENVELOPES`] envelopes and, where possible,
/// [`MAX_PUBLISH_BYTES`]. An envelope larger than that on its own goes alone
/// (the node then refuses it with InvalidArgument if it exceeds 1 MiB of
/// message). The order of the envelopes is kept.
pub fn publish_chunks(envelopes: Vec<Envelope>) -> Vec<Vec<Envelope>> {
    let mut chunks = Vec::new();
    let mut current: Vec<Envelope> = Vec::new();
    let mut current_bytes = 0usize;
    for envelope in envelopes {
        // Field tag, length prefix and the envelope itself.
        let size = envelope.encoded_len() + 11;
        let full =
            current.len() >= MAX_PUBLISH_ENVELOPES || current_bytes + size > MAX_PUBLISH_BYTES;
        if full && !current.is_empty() {
            chunks.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += size;
        current.push(envelope);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(size: usize, n: u64) -> Envelope {
        Envelope {
            content_topic: "/t".into(),
            timestamp_ns: n,
            message: vec![0; size],
        }
    }

    #[test]
    fn small_publishes_stay_whole() {
        let chunks = publish_chunks((0..10).map(|n| envelope(10, n)).collect());
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].len(), 10);
        assert!(publish_chunks(Vec::new()).is_empty());
    }

    #[test]
    fn chunks_respect_count_and_size_and_keep_order() {
        let many: Vec<Envelope> = (0..2500).map(|n| envelope(10, n)).collect();
        let chunks = publish_chunks(many.clone());
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        assert_eq!(chunks.concat(), many);

        let big: Vec<Envelope> = (0..10).map(|n| envelope(1 << 20, n)).collect();
        let chunks = publish_chunks(big.clone());
        for chunk in &chunks {
            let bytes: usize = chunk.iter().map(|e| e.encoded_len()).sum();
            assert!(bytes <= MAX_PUBLISH_BYTES, "{bytes}");
        }
        assert_eq!(chunks.concat(), big);
    }

    #[test]
    fn an_oversized_envelope_goes_alone() {
        let chunks = publish_chunks(vec![envelope(1, 0), envelope(5 << 20, 1), envelope(1, 2)]);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);
    }
}
