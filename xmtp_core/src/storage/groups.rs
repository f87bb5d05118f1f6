//! Group tables (issue 5): groups, their membership logs, Megolm sessions
//! (outbound and inbound, pickled and sealed), the keys shared per
//! installation, messages waiting for their key, and group payloads received
//! over Olm waiting to be applied.
//!
//! Sealed columns are bound to their row (group id, hash, session id,
//! installation), like every other sealed column.

use rusqlite::{params, OptionalExtension};
use zeroize::Zeroizing;

use super::{ns, sql_ns, StorageError, StorageTx};

/// This device's outbound Megolm session of a group.
pub struct OutboundGroupRecord {
    /// The Megolm session id.
    pub session_id: String,
    /// The pickled session (opened, still secret).
    pub pickle: Zeroizing<Vec<u8>>,
    /// When it was created.
    pub created_ns: u64,
    /// Messages it encrypted.
    pub sent: u64,
    /// Whether it must be replaced before the next message (a member left).
    pub rotate: bool,
}

/// A group message kept until its key arrives.
pub struct PendingGroupMessage {
    /// sha256(topic || envelope).
    pub digest: Vec<u8>,
    /// The group id.
    pub group_id: Vec<u8>,
    /// The sending installation.
    pub sender_installation: Vec<u8>,
    /// The Megolm session it needs.
    pub session_id: String,
    /// The `GroupEnvelope` bytes (Megolm ciphertext inside).
    pub envelope: Vec<u8>,
}

/// A group payload received over Olm, not yet applied.
pub struct GroupInboxRecord {
    /// Random row id.
    pub id: Vec<u8>,
    /// The verified sender address.
    pub sender_address: String,
    /// The verified sending installation.
    pub sender_installation: Vec<u8>,
    /// The encoded `GroupPayload` (opened).
    pub payload: Zeroizing<Vec<u8>>,
}

/// An inbound session's bound sender address and its pickle.
pub type BoundSession = (String, Zeroizing<Vec<u8>>);

fn row(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

impl StorageTx<'_> {
    /// Records a group this installation belongs (or belonged) to.
    pub fn insert_group(&self, id: &[u8], now_ns: u64) -> Result<(), StorageError> {
        self.tx.execute(
            "INSERT OR IGNORE INTO groups (id, created_ns) VALUES (?1, ?2)",
            params![id, sql_ns(now_ns)],
        )?;
        Ok(())
    }

    /// Every known group id, oldest first.
    pub fn group_ids(&self) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT id FROM groups ORDER BY created_ns, id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Adds a verified signed change to a group's log; `false` if present.
    pub fn insert_group_change(
        &self,
        group_id: &[u8],
        hash: &[u8],
        signed: &[u8],
    ) -> Result<bool, StorageError> {
        let sealed = self.cipher.seal(
            "group_log",
            "change_sealed",
            &row(&[group_id, hash]),
            signed,
        )?;
        let n = self.tx.execute(
            "INSERT OR IGNORE INTO group_log (group_id, hash, change_sealed) VALUES (?1, ?2, ?3)",
            params![group_id, hash, sealed],
        )?;
        Ok(n == 1)
    }

    /// Whether a change is in a group's log.
    pub fn has_group_change(&self, group_id: &[u8], hash: &[u8]) -> Result<bool, StorageError> {
        Ok(self
            .tx
            .query_row(
                "SELECT 1 FROM group_log WHERE group_id = ?1 AND hash = ?2",
                params![group_id, hash],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// A group's log (encoded `SignedGroupChange`s).
    pub fn group_changes(&self, group_id: &[u8]) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT hash, change_sealed FROM group_log WHERE group_id = ?1")?;
        let rows = stmt.query_map([group_id], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let raw: Vec<(Vec<u8>, Vec<u8>)> = rows.collect::<Result<_, _>>()?;
        raw.into_iter()
            .map(|(hash, sealed)| {
                Ok(self.cipher.open(
                    "group_log",
                    "change_sealed",
                    &row(&[group_id, &hash]),
                    &sealed,
                )?)
            })
            .collect()
    }

    /// This device's outbound session of a group.
    pub fn outbound_group_session(
        &self,
        group_id: &[u8],
    ) -> Result<Option<OutboundGroupRecord>, StorageError> {
        let raw = self
            .tx
            .query_row(
                "SELECT session_id, session_sealed, created_ns, sent, rotate FROM group_outbound WHERE group_id = ?1",
                [group_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, bool>(4)?,
                    ))
                },
            )
            .optional()?;
        raw.map(|(session_id, sealed, created, sent, rotate)| {
            let pickle = self
                .cipher
                .open("group_outbound", "session_sealed", group_id, &sealed)?;
            Ok(OutboundGroupRecord {
                session_id,
                pickle: Zeroizing::new(pickle),
                created_ns: ns(created),
                sent: ns(sent),
                rotate,
            })
        })
        .transpose()
    }

    /// Saves (replaces) this device's outbound session of a group.
    pub fn save_outbound_group_session(
        &self,
        group_id: &[u8],
        r: &OutboundGroupRecord,
    ) -> Result<(), StorageError> {
        let sealed = self
            .cipher
            .seal("group_outbound", "session_sealed", group_id, &r.pickle)?;
        self.tx.execute(
            "INSERT INTO group_outbound (group_id, session_id, session_sealed, created_ns, sent, rotate) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(group_id) DO UPDATE SET session_id = excluded.session_id, session_sealed = excluded.session_sealed,
               created_ns = excluded.created_ns, sent = excluded.sent, rotate = excluded.rotate",
            params![group_id, r.session_id, sealed, sql_ns(r.created_ns), sql_ns(r.sent), r.rotate],
        )?;
        Ok(())
    }

    /// Marks a group's outbound session to be replaced before the next message.
    pub fn mark_group_rotation(&self, group_id: &[u8]) -> Result<(), StorageError> {
        self.tx.execute(
            "UPDATE group_outbound SET rotate = 1 WHERE group_id = ?1",
            [group_id],
        )?;
        Ok(())
    }

    /// Records the session key given to one installation.
    pub fn record_group_share(
        &self,
        group_id: &[u8],
        session_id: &str,
        installation: &[u8],
        key: &[u8],
    ) -> Result<(), StorageError> {
        let sealed = self.cipher.seal(
            "group_shared",
            "key_sealed",
            &row(&[group_id, session_id.as_bytes(), installation]),
            key,
        )?;
        self.tx.execute(
            "INSERT OR IGNORE INTO group_shared (group_id, session_id, installation, key_sealed) VALUES (?1, ?2, ?3, ?4)",
            params![group_id, session_id, installation, sealed],
        )?;
        Ok(())
    }

    /// The session key given to one installation, if any.
    pub fn group_share(
        &self,
        group_id: &[u8],
        session_id: &str,
        installation: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StorageError> {
        let sealed: Option<Vec<u8>> = self
            .tx
            .query_row(
                "SELECT key_sealed FROM group_shared WHERE group_id = ?1 AND session_id = ?2 AND installation = ?3",
                params![group_id, session_id, installation],
                |r| r.get(0),
            )
            .optional()?;
        sealed
            .map(|s| {
                Ok(Zeroizing::new(self.cipher.open(
                    "group_shared",
                    "key_sealed",
                    &row(&[group_id, session_id.as_bytes(), installation]),
                    &s,
                )?))
            })
            .transpose()
    }

    /// The installations a session key was given to.
    pub fn group_shared_installations(
        &self,
        group_id: &[u8],
        session_id: &str,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT installation FROM group_shared WHERE group_id = ?1 AND session_id = ?2",
        )?;
        let rows = stmt.query_map(params![group_id, session_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// An inbound session: the address it is bound to and its pickle.
    pub fn inbound_group_session(
        &self,
        group_id: &[u8],
        installation: &[u8],
        session_id: &str,
    ) -> Result<Option<BoundSession>, StorageError> {
        let raw: Option<(String, Vec<u8>)> = self
            .tx
            .query_row(
                "SELECT sender_address, session_sealed FROM group_inbound WHERE group_id = ?1 AND sender_installation = ?2 AND session_id = ?3",
                params![group_id, installation, session_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        raw.map(|(address, sealed)| {
            let pickle = self.cipher.open(
                "group_inbound",
                "session_sealed",
                &row(&[group_id, installation, session_id.as_bytes()]),
                &sealed,
            )?;
            Ok((address, Zeroizing::new(pickle)))
        })
        .transpose()
    }

    /// Saves an inbound session, bound to the installation (and its address)
    /// that shared it over Olm.
    pub fn save_inbound_group_session(
        &self,
        group_id: &[u8],
        installation: &[u8],
        session_id: &str,
        sender_address: &str,
        pickle: &[u8],
    ) -> Result<(), StorageError> {
        let sealed = self.cipher.seal(
            "group_inbound",
            "session_sealed",
            &row(&[group_id, installation, session_id.as_bytes()]),
            pickle,
        )?;
        self.tx.execute(
            "INSERT INTO group_inbound (group_id, sender_installation, session_id, sender_address, session_sealed) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(group_id, sender_installation, session_id) DO UPDATE SET session_sealed = excluded.session_sealed",
            params![group_id, installation, session_id, sender_address, sealed],
        )?;
        Ok(())
    }

    /// Keeps a group message until its key arrives; `false` if kept already.
    pub fn push_group_pending(
        &self,
        p: &PendingGroupMessage,
        now_ns: u64,
    ) -> Result<bool, StorageError> {
        let n = self.tx.execute(
            "INSERT OR IGNORE INTO group_pending (digest, group_id, sender_installation, session_id, envelope, received_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![p.digest, p.group_id, p.sender_installation, p.session_id, p.envelope, sql_ns(now_ns)],
        )?;
        Ok(n == 1)
    }

    /// Every message waiting for a key, oldest first.
    pub fn group_pending(&self) -> Result<Vec<PendingGroupMessage>, StorageError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT digest, group_id, sender_installation, session_id, envelope FROM group_pending ORDER BY received_ns, digest",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PendingGroupMessage {
                digest: r.get(0)?,
                group_id: r.get(1)?,
                sender_installation: r.get(2)?,
                session_id: r.get(3)?,
                envelope: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets a pending message (decrypted, or refused).
    pub fn delete_group_pending(&self, digest: &[u8]) -> Result<(), StorageError> {
        self.tx
            .execute("DELETE FROM group_pending WHERE digest = ?1", [digest])?;
        Ok(())
    }

    /// Queues a group payload received over Olm from a verified sender.
    pub fn push_group_inbox(&self, r: &GroupInboxRecord, now_ns: u64) -> Result<(), StorageError> {
        let sealed = self
            .cipher
            .seal("group_inbox", "payload_sealed", &r.id, &r.payload)?;
        self.tx.execute(
            "INSERT OR IGNORE INTO group_inbox (id, sender_address, sender_installation, payload_sealed, received_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![r.id, r.sender_address, r.sender_installation, sealed, sql_ns(now_ns)],
        )?;
        Ok(())
    }

    /// Queued group payloads, oldest first.
    pub fn group_inbox(&self) -> Result<Vec<GroupInboxRecord>, StorageError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT id, sender_address, sender_installation, payload_sealed FROM group_inbox ORDER BY received_ns, rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        let raw: Vec<_> = rows.collect::<Result<_, _>>()?;
        raw.into_iter()
            .map(|(id, sender_address, sender_installation, sealed)| {
                let payload = self
                    .cipher
                    .open("group_inbox", "payload_sealed", &id, &sealed)?;
                Ok(GroupInboxRecord {
                    id,
                    sender_address,
                    sender_installation,
                    payload: Zeroizing::new(payload),
                })
            })
            .collect()
    }

    /// Removes an applied group payload.
    pub fn delete_group_inbox(&self, id: &[u8]) -> Result<(), StorageError> {
        self.tx
            .execute("DELETE FROM group_inbox WHERE id = ?1", [id])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{DatabaseKey, Storage};

    #[test]
    fn group_rows_round_trip_and_a_sealed_value_opens_only_in_its_own_row() {
        let storage = Storage::in_memory(&DatabaseKey::random()).unwrap();
        storage
            .transaction(|tx| {
                tx.insert_group(&[1; 32], 5)?;
                assert!(tx.insert_group_change(&[1; 32], &[9; 32], b"signed")?);
                assert!(!tx.insert_group_change(&[1; 32], &[9; 32], b"signed")?);
                assert_eq!(tx.group_changes(&[1; 32])?, vec![b"signed".to_vec()]);
                tx.save_inbound_group_session(&[1; 32], &[2; 32], "s", "0xabc", b"pickle")?;
                let (address, pickle) = tx.inbound_group_session(&[1; 32], &[2; 32], "s")?.unwrap();
                assert_eq!(
                    (address.as_str(), pickle.as_slice()),
                    ("0xabc", &b"pickle"[..])
                );
                // Move the sealed session to another group's row: it no longer opens.
                tx.tx.execute(
                    "UPDATE group_inbound SET group_id = ?1 WHERE group_id = ?2",
                    params![vec![3u8; 32], vec![1u8; 32]],
                )?;
                assert!(matches!(
                    tx.inbound_group_session(&[3; 32], &[2; 32], "s"),
                    Err(StorageError::Sealed(_))
                ));
                Ok::<_, StorageError>(())
            })
            .unwrap();
    }

    #[test]
    fn the_outbound_session_is_replaced_and_marked_for_rotation() {
        let storage = Storage::in_memory(&DatabaseKey::random()).unwrap();
        storage
            .transaction(|tx| {
                let record = |id: &str, sent| OutboundGroupRecord {
                    session_id: id.into(),
                    pickle: Zeroizing::new(b"p".to_vec()),
                    created_ns: 1,
                    sent,
                    rotate: false,
                };
                tx.save_outbound_group_session(&[1; 32], &record("a", 0))?;
                tx.save_outbound_group_session(&[1; 32], &record("b", 3))?;
                tx.mark_group_rotation(&[1; 32])?;
                let r = tx.outbound_group_session(&[1; 32])?.unwrap();
                assert_eq!((r.session_id.as_str(), r.sent, r.rotate), ("b", 3, true));
                tx.record_group_share(&[1; 32], "b", &[4; 32], b"key")?;
                assert_eq!(
                    tx.group_share(&[1; 32], "b", &[4; 32])?.unwrap().as_slice(),
                    b"key"
                );
                assert_eq!(
                    tx.group_shared_installations(&[1; 32], "b")?,
                    vec![vec![4u8; 32]]
                );
                assert!(tx.group_share(&[1; 32], "a", &[4; 32])?.is_none());
                Ok::<_, StorageError>(())
            })
            .unwrap();
    }
}
