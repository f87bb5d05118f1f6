//! XMTP V2 conversations (issue 10): one row per conversation topic, with
//! the invitation that holds its key material, sealed and bound to the topic.

use rusqlite::{params, OptionalExtension};
use zeroize::Zeroizing;

use super::{ns, sql_ns, StorageError, StorageTx};

/// A V2 conversation this identity was invited to (or started).
pub struct V2ConversationRecord {
    /// The conversation topic (`/xmtp/0/m-.../proto`).
    pub topic: String,
    /// The other party's address (EIP-55).
    pub peer_address: String,
    /// The application's conversation id from the invitation's context.
    pub context_id: Option<String>,
    /// The sealed invitation's creation time.
    pub created_ns: u64,
    /// The encoded `InvitationV1` (opened, still secret: it holds the key).
    pub invitation: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for V2ConversationRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V2ConversationRecord")
            .field("topic", &self.topic)
            .field("peer_address", &self.peer_address)
            .field("context_id", &self.context_id)
            .field("created_ns", &self.created_ns)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str =
    "SELECT topic, peer_address, context_id, created_ns, invitation_sealed FROM v2_conversations";

type RawRow = (String, String, Option<String>, i64, Vec<u8>);

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

impl StorageTx<'_> {
    /// Stores a V2 conversation; returns `false` (and changes nothing) if its
    /// topic is already known: the first invitation to a topic wins.
    pub fn insert_v2_conversation(&self, c: &V2ConversationRecord) -> Result<bool, StorageError> {
        let sealed = self.cipher.seal(
            "v2_conversations",
            "invitation_sealed",
            c.topic.as_bytes(),
            &c.invitation,
        )?;
        let n = self.tx.execute(
            "INSERT OR IGNORE INTO v2_conversations (topic, peer_address, context_id, created_ns, invitation_sealed)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![c.topic, c.peer_address, c.context_id, sql_ns(c.created_ns), sealed],
        )?;
        Ok(n == 1)
    }

    /// One V2 conversation by topic.
    pub fn v2_conversation(
        &self,
        topic: &str,
    ) -> Result<Option<V2ConversationRecord>, StorageError> {
        let raw = self
            .tx
            .query_row(&format!("{COLUMNS} WHERE topic = ?1"), [topic], raw_row)
            .optional()?;
        raw.map(|r| self.open_v2(r)).transpose()
    }

    /// Every V2 conversation, oldest first.
    pub fn v2_conversations(&self) -> Result<Vec<V2ConversationRecord>, StorageError> {
        let mut stmt = self
            .tx
            .prepare_cached(&format!("{COLUMNS} ORDER BY created_ns, topic"))?;
        let raw: Vec<RawRow> = stmt.query_map([], raw_row)?.collect::<Result<_, _>>()?;
        raw.into_iter().map(|r| self.open_v2(r)).collect()
    }

    /// The oldest V2 conversation with `peer_address` without an application
    /// context (the one XMTP's SDKs pick for a plain direct conversation).
    pub fn v2_conversation_with(
        &self,
        peer_address: &str,
    ) -> Result<Option<V2ConversationRecord>, StorageError> {
        let raw = self
            .tx
            .query_row(
                &format!(
                    "{COLUMNS} WHERE peer_address = ?1 AND coalesce(context_id, '') = '' ORDER BY created_ns, topic LIMIT 1"
                ),
                [peer_address],
                raw_row,
            )
            .optional()?;
        raw.map(|r| self.open_v2(r)).transpose()
    }

    fn open_v2(
        &self,
        (topic, peer_address, context_id, created_ns, sealed): RawRow,
    ) -> Result<V2ConversationRecord, StorageError> {
        let invitation = self.cipher.open(
            "v2_conversations",
            "invitation_sealed",
            topic.as_bytes(),
            &sealed,
        )?;
        Ok(V2ConversationRecord {
            topic,
            peer_address,
            context_id,
            created_ns: ns(created_ns),
            invitation: Zeroizing::new(invitation),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{DatabaseKey, Storage};

    fn record(
        topic: &str,
        peer: &str,
        created_ns: u64,
        context: Option<&str>,
    ) -> V2ConversationRecord {
        V2ConversationRecord {
            topic: topic.into(),
            peer_address: peer.into(),
            context_id: context.map(Into::into),
            created_ns,
            invitation: Zeroizing::new(topic.as_bytes().to_vec()),
        }
    }

    #[test]
    fn first_invitation_wins_and_plain_conversation_is_found() {
        let storage = Storage::in_memory(&DatabaseKey::from_bytes([3; 32])).unwrap();
        storage
            .transaction(|tx| -> Result<(), StorageError> {
                assert!(tx.insert_v2_conversation(&record("/t/b", "0xP", 20, None))?);
                assert!(tx.insert_v2_conversation(&record("/t/a", "0xP", 30, Some("ctx")))?);
                assert!(tx.insert_v2_conversation(&record("/t/c", "0xP", 40, None))?);
                let mut again = record("/t/b", "0xQ", 1, None);
                again.invitation = Zeroizing::new(b"other".to_vec());
                assert!(!tx.insert_v2_conversation(&again)?);
                let b = tx.v2_conversation("/t/b")?.unwrap();
                assert_eq!(b.peer_address, "0xP");
                assert_eq!(b.invitation.as_slice(), b"/t/b");
                assert_eq!(tx.v2_conversation_with("0xP")?.unwrap().topic, "/t/b");
                assert!(tx.v2_conversation_with("0xQ")?.is_none());
                assert_eq!(tx.v2_conversations()?.len(), 3);
                Ok(())
            })
            .unwrap();
    }
}
