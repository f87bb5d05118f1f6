//! Content topics of XMTP's V1/V2 protocol.
//!
//! ```text
//! /xmtp/0/contact-<EIP-55 address>/proto              a user's contact bundles
//! /xmtp/0/invite-<EIP-55 address>/proto               sealed invitations to a user
//! /xmtp/0/intro-<EIP-55 address>/proto                V1 introductions
//! /xmtp/0/privatestore-<EIP-55 address>/key_bundle/proto   the encrypted private key bundle
//! /xmtp/0/dm-<addr A>-<addr B>/proto                  a V1 conversation (addresses sorted)
//! /xmtp/0/m-<id>/proto                                a V2 conversation
//! ```
//!
//! A random V2 id is 32 random bytes in standard base64 without padding and
//! with `/` replaced by `-`; a deterministic one is 64 hex digits (see
//! [`super::invitation`]).

use crate::wallet::Address;
use base64::Engine as _;
use rand::{CryptoRng, RngCore};

/// `/xmtp/0/<name>/proto`.
pub fn content_topic(name: &str) -> String {
    format!("/xmtp/0/{name}/proto")
}

/// The topic where a user's contact bundles are published.
pub fn contact_topic(address: &Address) -> String {
    content_topic(&format!("contact-{}", address.to_checksum()))
}

/// The topic where sealed invitations to a user are published.
pub fn invite_topic(address: &Address) -> String {
    content_topic(&format!("invite-{}", address.to_checksum()))
}

/// The topic where V1 introductions to a user are published.
pub fn intro_topic(address: &Address) -> String {
    content_topic(&format!("intro-{}", address.to_checksum()))
}

/// The topic where a wallet's encrypted private key bundle is stored.
pub fn private_store_topic(address: &Address) -> String {
    content_topic(&format!(
        "privatestore-{}/key_bundle",
        address.to_checksum()
    ))
}

/// The topic of the V1 conversation between two addresses.
pub fn direct_message_topic_v1(a: &Address, b: &Address) -> String {
    let mut members = [a.to_checksum(), b.to_checksum()];
    members.sort();
    content_topic(&format!("dm-{}-{}", members[0], members[1]))
}

/// The topic of a V2 conversation with id `id`.
pub fn direct_message_topic_v2(id: &str) -> String {
    content_topic(&format!("m-{id}"))
}

/// The ephemeral companion of a V2 conversation topic (`/xmtp/0/mE-...`),
/// where XMTP's SDKs send messages that need not be stored.
pub fn ephemeral_topic(topic: &str) -> String {
    topic.replacen("/xmtp/0/m", "/xmtp/0/mE", 1)
}

/// A new random V2 conversation topic.
pub fn random_conversation_topic<R: RngCore + CryptoRng>(rng: &mut R) -> String {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    let id = base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(bytes)
        .replace('/', "-");
    direct_message_topic_v2(&id)
}

/// Whether the name inside `/xmtp/0/<name>/proto` is printable ASCII (0x21 to
/// 0x7f), as XMTP's SDKs require.
pub fn is_valid_topic(topic: &str) -> bool {
    let Some(start) = topic.find("0/") else {
        return false;
    };
    let end = topic.rfind("/proto").unwrap_or(topic.len());
    let name = topic.get(start + 2..end).unwrap_or("");
    !name.is_empty() && name.bytes().all(|b| (0x21..=0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_topics_are_valid_and_distinct() {
        let mut rng = rand::thread_rng();
        let a = random_conversation_topic(&mut rng);
        let b = random_conversation_topic(&mut rng);
        assert_ne!(a, b);
        for topic in [&a, &b] {
            assert!(topic.starts_with("/xmtp/0/m-") && topic.ends_with("/proto"));
            assert!(is_valid_topic(topic));
            // 43 base64 characters, no padding, no slash inside the id.
            let id = &topic["/xmtp/0/m-".len()..topic.len() - "/proto".len()];
            assert_eq!(id.len(), 43);
            assert!(!id.contains('/') && !id.contains('='));
        }
    }

    #[test]
    fn ephemeral_topic_marks_the_conversation_id() {
        assert_eq!(
            ephemeral_topic("/xmtp/0/m-abc/proto"),
            "/xmtp/0/mE-abc/proto"
        );
    }

    #[test]
    fn invalid_topic_names_are_detected() {
        assert!(is_valid_topic(&content_topic("*&+-)")));
        assert!(!is_valid_topic(&content_topic("∫ß")));
        assert!(!is_valid_topic(&content_topic("\u{1}")));
        assert!(!is_valid_topic("no-version"));
    }

    #[test]
    fn v1_topic_is_symmetric_and_checksummed() {
        let a: Address = "0xf56d1f3b1290204441cb3843c2cac1c2f5aed690"
            .parse()
            .unwrap();
        let b: Address = "0x3de402a325323bb97f00ce3ad5bfac96a11f9a34"
            .parse()
            .unwrap();
        assert_eq!(
            direct_message_topic_v1(&a, &b),
            direct_message_topic_v1(&b, &a)
        );
        assert_eq!(
            direct_message_topic_v1(&a, &b),
            "/xmtp/0/dm-0x3De402A325323Bb97f00cE3ad5bFAc96A11F9A34-0xF56d1F3b1290204441Cb3843C2Cac1C2f5AEd690/proto"
        );
        assert_eq!(
            private_store_topic(&a),
            "/xmtp/0/privatestore-0xF56d1F3b1290204441Cb3843C2Cac1C2f5AEd690/key_bundle/proto"
        );
    }
}
