//! Membership: a group's state is a pure function of its set of signed changes.
//!
//! ```text
//! change     = GroupChange { group_id, base_version, created_ns, nonce, kind }
//! signed     = Ed25519(installation, "xmtp-v3-group-change", change bytes)
//! group id   = sha256("xmtp-v3-group-id" || bytes of the creating change)
//! hash(c)    = sha256(change bytes)
//! state      = fold(create, rest sorted by (base_version, hash))
//! ```
//!
//! Every member keeps the set of verified changes it has seen and folds it
//! from scratch: the order is total and depends only on the set, so two
//! members holding the same changes hold the same state, whatever order the
//! changes arrived in. Concurrent changes from two admins (both against
//! version v) are therefore both applied, in hash order, by everyone. A
//! change is checked at its place in the order (an add by someone who is no
//! longer an admin there is skipped, by every member alike). The group id is
//! derived from the creating change, so no one can write a second "create"
//! for an existing group.
//!
//! Rules: the creator and the admins it names may add and remove; the
//! creator cannot be removed; any member may leave or rename.

use std::collections::BTreeSet;

use prost::Message as _;
use sha2::{Digest, Sha256};
use xmtp_cryptography::{Address, InstallationId, InstallationKeys};
use xmtp_proto::xmtp::v3::message_contents::{group_change::Kind, GroupChange, SignedGroupChange};

/// Signature context of a membership change.
pub(crate) const CHANGE_CONTEXT: &str = "xmtp-v3-group-change";

/// Why a signed change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// Not a valid `GroupChange`.
    #[error("membership change is not a valid GroupChange")]
    Decode,
    /// The signer's installation key is not 32 bytes.
    #[error("malformed signer installation key")]
    BadInstallation,
    /// The signer's address is not an EVM address.
    #[error("malformed signer address")]
    BadAddress,
    /// The signature does not verify.
    #[error("membership change signature does not verify")]
    Signature,
    /// The change has no kind.
    #[error("membership change has no kind")]
    Empty,
}

/// A change whose signature verified (the signer's address binding is
/// checked by the caller against the verified contacts).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VerifiedChange {
    pub(crate) signed: SignedGroupChange,
    pub(crate) change: GroupChange,
    pub(crate) signer: Address,
    pub(crate) installation: InstallationId,
    pub(crate) hash: [u8; 32],
}

/// The group id a creating change defines.
pub(crate) fn group_id_of(create_bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"xmtp-v3-group-id");
    h.update(create_bytes);
    h.finalize().into()
}

/// Signs a change with this installation's key.
pub(crate) fn sign(
    keys: &InstallationKeys,
    address: Address,
    change: &GroupChange,
) -> SignedGroupChange {
    let bytes = change.encode_to_vec();
    let signature = keys.sign(CHANGE_CONTEXT, &bytes);
    SignedGroupChange {
        change: bytes,
        signer_address: address.to_checksum(),
        signer_installation_key: keys.installation_id().as_bytes().to_vec(),
        signature: signature.to_vec(),
    }
}

/// Decodes a signed change and verifies its signature.
pub(crate) fn verify(signed: &SignedGroupChange) -> Result<VerifiedChange, ChangeError> {
    let installation = InstallationId::from_slice(&signed.signer_installation_key)
        .ok_or(ChangeError::BadInstallation)?;
    let signer = signed
        .signer_address
        .parse::<Address>()
        .map_err(|_| ChangeError::BadAddress)?;
    installation
        .verify(CHANGE_CONTEXT, &signed.change, &signed.signature)
        .map_err(|_| ChangeError::Signature)?;
    let change = GroupChange::decode(signed.change.as_slice()).map_err(|_| ChangeError::Decode)?;
    if change.kind.is_none() {
        return Err(ChangeError::Empty);
    }
    Ok(VerifiedChange {
        signed: signed.clone(),
        change,
        signer,
        installation,
        hash: Sha256::digest(&signed.change).into(),
    })
}

/// A group's state, as folded from its changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    /// The group id.
    pub id: [u8; 32],
    /// Who created it.
    pub creator: Address,
    /// Its name.
    pub name: String,
    /// Its members.
    pub members: BTreeSet<Address>,
    /// Its admins (the creator and those it named), while members.
    pub admins: BTreeSet<Address>,
    /// Number of changes applied (the creation is version 1).
    pub version: u64,
    /// Hashes of changes refused at their place in the order.
    pub rejected: Vec<[u8; 32]>,
}

fn parse_all(addresses: &[String]) -> Vec<Address> {
    addresses.iter().filter_map(|a| a.parse().ok()).collect()
}

/// Folds the changes of group `id` into its state; `None` without a valid
/// creating change for that id.
pub(crate) fn fold(id: &[u8; 32], changes: &[VerifiedChange]) -> Option<GroupState> {
    let create = changes.iter().find(|c| {
        matches!(c.change.kind, Some(Kind::Create(_)))
            && c.change.group_id.is_empty()
            && group_id_of(&c.signed.change) == *id
    })?;
    let Some(Kind::Create(first)) = &create.change.kind else {
        return None;
    };
    let mut state = GroupState {
        id: *id,
        creator: create.signer,
        name: first.name.clone(),
        members: parse_all(&first.members).into_iter().collect(),
        admins: parse_all(&first.admins).into_iter().collect(),
        version: 1,
        rejected: Vec::new(),
    };
    state.members.insert(create.signer);
    state.admins.insert(create.signer);
    state.admins.retain(|a| state.members.contains(a));
    let mut rest: Vec<&VerifiedChange> = changes
        .iter()
        .filter(|c| c.change.group_id == id.as_slice())
        .filter(|c| !matches!(c.change.kind, Some(Kind::Create(_))))
        .collect();
    rest.sort_by_key(|a| (a.change.base_version, a.hash));
    rest.dedup_by(|a, b| a.hash == b.hash);
    for c in rest {
        let signer = c.signer;
        let is_member = state.members.contains(&signer);
        let is_admin = is_member && state.admins.contains(&signer);
        let applied = match &c.change.kind {
            Some(Kind::AddMembers(m)) if is_admin => {
                state.members.extend(parse_all(&m.addresses));
                true
            }
            Some(Kind::RemoveMembers(m)) if is_admin => {
                for a in parse_all(&m.addresses) {
                    if a != state.creator {
                        state.members.remove(&a);
                        state.admins.remove(&a);
                    }
                }
                true
            }
            Some(Kind::Leave(_)) if is_member => {
                state.members.remove(&signer);
                state.admins.remove(&signer);
                true
            }
            Some(Kind::Rename(r)) if is_member => {
                state.name = r.name.clone();
                true
            }
            _ => false,
        };
        if applied {
            state.version += 1;
        } else {
            state.rejected.push(c.hash);
        }
    }
    Some(state)
}

#[cfg(test)]
mod tests {
    use xmtp_cryptography::LocalWallet;
    use xmtp_proto::xmtp::v3::message_contents::{GroupCreate, GroupMembers, GroupRename};

    use super::*;

    struct Signer {
        keys: InstallationKeys,
        address: Address,
    }

    fn signer() -> Signer {
        Signer {
            keys: InstallationKeys::new(),
            address: LocalWallet::random().address(),
        }
    }

    fn change(group_id: &[u8], base: u64, kind: Kind) -> GroupChange {
        GroupChange {
            group_id: group_id.to_vec(),
            base_version: base,
            created_ns: 1,
            nonce: rand::random::<[u8; 32]>().to_vec(),
            kind: Some(kind),
        }
    }

    fn signed(s: &Signer, c: &GroupChange) -> VerifiedChange {
        verify(&sign(&s.keys, s.address, c)).unwrap()
    }

    fn create(s: &Signer, members: &[Address], admins: &[Address]) -> ([u8; 32], VerifiedChange) {
        let c = change(
            &[],
            0,
            Kind::Create(GroupCreate {
                name: "g".into(),
                members: members.iter().map(|a| a.to_checksum()).collect(),
                admins: admins.iter().map(|a| a.to_checksum()).collect(),
            }),
        );
        let v = signed(s, &c);
        (group_id_of(&v.signed.change), v)
    }

    fn add(addresses: &[Address]) -> Kind {
        Kind::AddMembers(GroupMembers {
            addresses: addresses.iter().map(|a| a.to_checksum()).collect(),
        })
    }

    fn remove(addresses: &[Address]) -> Kind {
        Kind::RemoveMembers(GroupMembers {
            addresses: addresses.iter().map(|a| a.to_checksum()).collect(),
        })
    }

    #[test]
    fn concurrent_changes_of_two_admins_converge_in_any_arrival_order() {
        let (a, b, c, d) = (signer(), signer(), signer(), signer());
        let (id, create) = create(&a, &[b.address, c.address], &[b.address]);
        // Both admins change version 1 concurrently: a adds d, b removes c and renames.
        let x = signed(&a, &change(&id, 1, add(&[d.address])));
        let y = signed(&b, &change(&id, 1, remove(&[c.address])));
        let z = signed(
            &b,
            &change(&id, 1, Kind::Rename(GroupRename { name: "n".into() })),
        );
        let one = fold(&id, &[create.clone(), x.clone(), y.clone(), z.clone()]).unwrap();
        let two = fold(&id, &[z, y, create, x]).unwrap();
        assert_eq!(one, two);
        assert_eq!(one.version, 4);
        assert_eq!(one.name, "n");
        assert_eq!(
            one.members,
            [a.address, b.address, d.address].into_iter().collect()
        );
    }

    #[test]
    fn a_non_admin_cannot_add_or_remove() {
        let (a, b, c) = (signer(), signer(), signer());
        let (id, create) = create(&a, &[b.address], &[]);
        let x = signed(&b, &change(&id, 1, add(&[c.address])));
        let y = signed(&b, &change(&id, 1, remove(&[a.address])));
        let state = fold(&id, &[create, x.clone(), y.clone()]).unwrap();
        assert_eq!(state.members, [a.address, b.address].into_iter().collect());
        assert_eq!(state.version, 1);
        assert!(state.rejected.contains(&x.hash) && state.rejected.contains(&y.hash));
    }

    #[test]
    fn an_admin_removed_first_cannot_add_afterwards() {
        let (a, b, c) = (signer(), signer(), signer());
        let (id, create) = create(&a, &[b.address], &[b.address]);
        let r = signed(&a, &change(&id, 1, remove(&[b.address])));
        let x = signed(&b, &change(&id, 2, add(&[c.address])));
        let state = fold(&id, &[create, x, r]).unwrap();
        assert_eq!(state.members, [a.address].into_iter().collect());
    }

    #[test]
    fn a_tampered_change_or_foreign_create_is_refused() {
        let (a, b) = (signer(), signer());
        let (id, create) = create(&a, &[b.address], &[]);
        let mut forged = create.signed.clone();
        forged.change.push(0);
        assert_eq!(verify(&forged), Err(ChangeError::Signature));
        // A valid signature by another installation cannot claim the group id.
        let (_, foreign) = self::create(&b, &[a.address], &[]);
        assert!(fold(&id, &[foreign]).is_none());
    }
}
