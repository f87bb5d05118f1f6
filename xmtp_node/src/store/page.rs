//! Assembling a query page, shared by every store so that all page alike.
//!
//! A store reads each topic of a query on its own, in the query's direction,
//! at most `limit` rows and stopping once past the byte budget. Here the
//! per-topic rows are merged by `(sender_time_ns, digest)`, cut to `limit`
//! and then to the byte budget (always keeping one envelope), and the page
//! gets the cursor of its last envelope when it is full by either measure:
//! a client pages on while a cursor comes back.

use xmtp_proto::xmtp::message_api::v1::Envelope;

use super::{
    ordered_u64, Direction, EnvelopePage, EnvelopeQuery, PageCursor, StoreError, DIGEST_LEN,
};

/// A row of a page, before conversion.
pub(crate) struct Row {
    pub(crate) envelope: Envelope,
    pub(crate) digest: [u8; DIGEST_LEN],
}

impl Row {
    /// The row a store read for `topic`: the sender time as stored (see
    /// [`super::ordered_i64`]), the digest and the message.
    pub(crate) fn stored(
        topic: &str,
        time: i64,
        digest: Vec<u8>,
        message: Vec<u8>,
    ) -> Result<Self, StoreError> {
        let digest: [u8; DIGEST_LEN] = digest
            .try_into()
            .map_err(|_| StoreError::Corrupt("envelope digest is not 32 bytes".into()))?;
        Ok(Self {
            envelope: Envelope {
                content_topic: topic.to_owned(),
                timestamp_ns: ordered_u64(time),
                message,
            },
            digest,
        })
    }

    fn order_key(&self) -> (u64, [u8; DIGEST_LEN]) {
        (self.envelope.timestamp_ns, self.digest)
    }
}

/// What a store's per-topic read selects: sender times in `lo..=hi` and
/// `(sender_time, digest)` strictly after the cursor in the query's direction.
pub(crate) struct Bounds {
    pub(crate) lo: u64,
    pub(crate) hi: u64,
    pub(crate) cursor_time: u64,
    pub(crate) cursor_digest: Vec<u8>,
}

impl Bounds {
    /// The bounds of `q`, or `None` when no row can match. Without a cursor,
    /// the cursor bound is one every row passes (digests are 32 bytes, so an
    /// empty one sorts before and 33 bytes of 0xff after all of them).
    pub(crate) fn of(q: &EnvelopeQuery) -> Option<Self> {
        let mut lo = q.start_ns.unwrap_or(0);
        let mut hi = q.end_ns.unwrap_or(u64::MAX);
        let (cursor_time, cursor_digest) = match q.direction {
            Direction::Ascending => {
                let (t, d) = match q.cursor {
                    Some(c) => (c.sender_time_ns, c.digest.to_vec()),
                    None => (0, Vec::new()),
                };
                lo = lo.max(t);
                (t, d)
            }
            Direction::Descending => {
                let (t, d) = match q.cursor {
                    Some(c) => (c.sender_time_ns, c.digest.to_vec()),
                    None => (u64::MAX, vec![0xff; DIGEST_LEN + 1]),
                };
                hi = hi.min(t);
                (t, d)
            }
        };
        (lo <= hi).then_some(Self {
            lo,
            hi,
            cursor_time,
            cursor_digest,
        })
    }
}

/// Merges the per-topic results into one page and decides its cursor.
pub(crate) fn assemble_page(mut rows: Vec<Row>, q: &EnvelopeQuery, topics: usize) -> EnvelopePage {
    if topics > 1 {
        rows.sort_by(|a, b| match q.direction {
            Direction::Ascending => a.order_key().cmp(&b.order_key()),
            Direction::Descending => b.order_key().cmp(&a.order_key()),
        });
    }
    let limit = q.limit as usize;
    let mut full = rows.len() >= limit;
    rows.truncate(limit);
    let mut bytes = 0usize;
    let mut keep = rows.len();
    for (i, row) in rows.iter().enumerate() {
        bytes += row.envelope.message.len() + row.envelope.content_topic.len();
        if bytes > q.max_bytes && i > 0 {
            keep = i;
            full = true;
            break;
        }
    }
    rows.truncate(keep);
    let next = if full {
        rows.last().map(|r| PageCursor {
            sender_time_ns: r.envelope.timestamp_ns,
            digest: r.digest,
        })
    } else {
        None
    };
    EnvelopePage {
        envelopes: rows.into_iter().map(|r| r.envelope).collect(),
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: u64, d: u8, bytes: usize) -> Row {
        Row {
            envelope: Envelope {
                content_topic: String::new(),
                timestamp_ns: t,
                message: vec![0; bytes],
            },
            digest: [d; DIGEST_LEN],
        }
    }

    fn query(direction: Direction, limit: u32, max_bytes: usize) -> EnvelopeQuery {
        EnvelopeQuery {
            topics: vec!["a".into(), "b".into()],
            start_ns: None,
            end_ns: None,
            limit,
            direction,
            cursor: None,
            max_bytes,
        }
    }

    #[test]
    fn rows_of_several_topics_merge_in_order_with_ties_broken_by_digest() {
        let rows = vec![row(2, 1, 1), row(1, 9, 1), row(2, 0, 1), row(3, 0, 1)];
        let page = assemble_page(rows, &query(Direction::Descending, 3, 100), 2);
        let order: Vec<u64> = page.envelopes.iter().map(|e| e.timestamp_ns).collect();
        assert_eq!(order, vec![3, 2, 2]);
        assert_eq!(
            page.next,
            Some(PageCursor {
                sender_time_ns: 2,
                digest: [0; DIGEST_LEN]
            })
        );
    }

    #[test]
    fn a_page_short_of_the_limit_has_no_cursor_and_the_byte_budget_cuts_with_one() {
        let page = assemble_page(vec![row(1, 0, 1)], &query(Direction::Ascending, 5, 100), 1);
        assert_eq!(page.next, None);
        let rows = vec![row(1, 0, 60), row(2, 0, 60), row(3, 0, 60)];
        let page = assemble_page(rows, &query(Direction::Ascending, 5, 100), 1);
        assert_eq!(page.envelopes.len(), 1);
        assert_eq!(page.next.map(|c| c.sender_time_ns), Some(1));
        let page = assemble_page(
            vec![row(1, 0, 500)],
            &query(Direction::Ascending, 5, 100),
            1,
        );
        assert_eq!(
            page.envelopes.len(),
            1,
            "one envelope even when it alone is over budget"
        );
    }
}
