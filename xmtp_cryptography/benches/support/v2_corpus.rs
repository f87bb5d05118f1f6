//! A corpus of XMTP V2 messages in one conversation, for benchmarking readers
//! side by side (ours in `benches/v2_decrypt.rs`, xmtp-js 13 in
//! `interop/xmtp-js/bench/v2_decrypt.cjs`) on exactly the same bytes.
//!
//! Shared by `examples/v2_corpus.rs` (which writes it to a JSON file) and the
//! bench (which reads that file, or generates one in memory).
//!
//! Two identities, alice and bob, made from fixed wallet keys with an RNG
//! seeded from `seed`, so a corpus is reproducible byte for byte. Alice opens
//! the conversation with XMTP's deterministic invitation and seals it to bob,
//! as `client.conversations.newConversation` does in xmtp-js 13. Both then
//! write alternately (runs of 1 to 4 messages, as a chat goes) texts encoded
//! as `xmtp.org/text:1.0` `EncodedContent`, of 20 to 500 bytes (mostly short).
//! Bob is the reader: the corpus carries his private key bundle so that
//! another client can open the sealed invitation itself.
//!
//! A few tampered messages come along; every reader must refuse each of them.
#![allow(dead_code)]

use prost::Message as _;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use xmtp_cryptography::v2::{
    ciphertext, invitation,
    message::{self, hmac_period, sender_hmac},
    private_key::{IdentityRequest, PrivateKeyBundleV1},
};
use xmtp_cryptography::wallet::LocalWallet;
use xmtp_proto::xmtp::message_contents::{
    message as message_proto, ContentTypeId, EncodedContent, Message, MessageHeaderV2, MessageV2,
    SignedContent, SignedPublicKeyBundle,
};

/// The corpus format written in `format`.
pub(crate) const FORMAT: &str = "xmtp-v2-corpus/1";

/// Messages in a corpus unless told otherwise.
pub(crate) const DEFAULT_MESSAGES: usize = 10_000;

/// The seed unless told otherwise.
pub(crate) const DEFAULT_SEED: u64 = 0x786d_7470_7632;

/// When the conversation starts (2025-11-25T00:00:00Z), in nanoseconds.
const START_NS: u64 = 1_764_028_800_000_000_000;

/// One party of the conversation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Party {
    /// "alice" or "bob".
    pub(crate) name: String,
    /// EIP-55 wallet address.
    pub(crate) address: String,
    /// The encoded `SignedPublicKeyBundle` it sends in every message.
    pub(crate) signed_public_key_bundle: String,
}

/// One message as it sits in an envelope on the conversation topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CorpusMessage {
    /// Index of the sender in `parties`.
    pub(crate) sender: usize,
    /// The header's `created_ns` (also the envelope's timestamp), decimal.
    pub(crate) sent_ns: String,
    /// The encoded `Message` (the envelope's `message`), hex.
    pub(crate) bytes: String,
    /// The text it carries.
    pub(crate) text: String,
}

/// A message every reader must refuse.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TamperedMessage {
    /// What is wrong with it.
    pub(crate) kind: String,
    /// The header's `created_ns`, decimal.
    pub(crate) sent_ns: String,
    /// The encoded `Message`, hex.
    pub(crate) bytes: String,
}

/// Everything a reader needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Corpus {
    /// [`FORMAT`].
    pub(crate) format: String,
    /// How it was made.
    pub(crate) comment: String,
    /// The RNG seed it was made from.
    pub(crate) seed: u64,
    /// The conversation topic.
    pub(crate) topic: String,
    /// The conversation's key material (from the invitation), hex.
    pub(crate) key_material: String,
    /// The encoded `InvitationV1`, hex.
    pub(crate) invitation: String,
    /// The encoded `SealedInvitation` alice sealed to bob, hex.
    pub(crate) sealed_invitation: String,
    /// Its header's `created_ns` (the envelope timestamp), decimal.
    pub(crate) sealed_invitation_created_ns: String,
    /// alice (index 0) and bob (index 1).
    pub(crate) parties: Vec<Party>,
    /// Index of the reader in `parties`.
    pub(crate) reader: usize,
    /// The reader's encoded `PrivateKeyBundle { v1 }` (xmtp-js's
    /// `privateKeyOverride` format), hex. Test keys from fixed wallets.
    pub(crate) reader_private_key_bundle: String,
    /// The conversation, oldest first.
    pub(crate) messages: Vec<CorpusMessage>,
    /// Messages to refuse.
    pub(crate) tampered: Vec<TamperedMessage>,
}

/// The corpus decoded once into bytes, as a reader holds it in memory.
pub(crate) struct Loaded {
    /// The conversation topic.
    pub(crate) topic: String,
    /// The sealed invitation and its envelope timestamp.
    pub(crate) sealed_invitation: (Vec<u8>, u64),
    /// The reader's keys.
    pub(crate) reader: PrivateKeyBundleV1,
    /// Wallet addresses of the parties.
    pub(crate) addresses: Vec<String>,
    /// (sender index, encoded message, text).
    pub(crate) messages: Vec<(usize, Vec<u8>, String)>,
    /// (kind, encoded message).
    pub(crate) tampered: Vec<(String, Vec<u8>)>,
}

fn text_content(text: &str) -> Vec<u8> {
    EncodedContent {
        r#type: Some(ContentTypeId {
            authority_id: "xmtp.org".into(),
            type_id: "text".into(),
            version_major: 1,
            version_minor: 0,
        }),
        parameters: HashMap::from([("encoding".to_owned(), "UTF-8".to_owned())]),
        fallback: None,
        compression: None,
        content: text.as_bytes().to_vec(),
    }
    .encode_to_vec()
}

const WORDS: &[&str] = &[
    "the", "meeting", "is", "at", "noon", "tomorrow", "can", "you", "send", "me", "latest",
    "draft", "thanks", "sounds", "good", "I", "will", "be", "there", "a", "bit", "late", "traffic",
    "coffee", "after", "lunch", "did", "see", "new", "release", "notes", "yes", "no", "maybe",
    "later", "call", "when", "free", "wallet", "address", "gas", "fees", "are", "high", "today",
    "let's", "wait", "for", "the", "weekend", "ok", "great",
];

/// A text of `len` bytes made of words.
fn text_of_len(rng: &mut StdRng, len: usize) -> String {
    let mut text = String::with_capacity(len + 16);
    while text.len() < len {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
    }
    text.truncate(len);
    text
}

/// A message length: three in four are 20 to 120 bytes, the rest up to 500.
fn text_len(rng: &mut StdRng) -> usize {
    if rng.gen_bool(0.75) {
        rng.gen_range(20..=120)
    } else {
        rng.gen_range(121..=500)
    }
}

fn identity(rng: &mut StdRng, wallet_key: u8) -> PrivateKeyBundleV1 {
    let wallet = LocalWallet::from_key_bytes(&[wallet_key; 32]).expect("fixed wallet key");
    let request = IdentityRequest::new(rng, START_NS / 1_000_000 - 86_400_000);
    let signature = wallet
        .sign_text_sync(request.text())
        .expect("local wallet signs");
    request
        .complete(rng, signature.as_bytes(), Some(wallet.address()))
        .expect("identity from a local wallet")
}

fn wrap(v2: MessageV2) -> Vec<u8> {
    Message {
        version: Some(message_proto::Version::V2(v2)),
    }
    .encode_to_vec()
}

/// Generates a corpus of `count` messages from `seed`.
pub(crate) fn generate(count: usize, seed: u64) -> Corpus {
    let mut rng = StdRng::seed_from_u64(seed);
    let alice_v1 = identity(&mut rng, 0xa1);
    let bob_v1 = identity(&mut rng, 0xb1);
    let mallory_v1 = identity(&mut rng, 0xe1);
    let alice = alice_v1.to_v2().expect("v2 keys");
    let bob = bob_v1.to_v2().expect("v2 keys");
    let mallory = mallory_v1.to_v2().expect("v2 keys");

    let invite = invitation::deterministic_invitation(&alice, bob.public_bundle(), None)
        .expect("invitation");
    let sealed = invitation::seal(&mut rng, &alice, bob.public_bundle(), START_NS, &invite)
        .expect("sealed invitation");
    let key = invitation::key_material(&invite)
        .expect("key material")
        .to_vec();
    let topic = invite.topic.clone();

    let parties = [&alice, &bob];
    let mut messages = Vec::with_capacity(count);
    let mut sender = 0usize;
    let mut run_left = 0u32;
    let mut now = START_NS;
    for _ in 0..count {
        if run_left == 0 {
            sender = 1 - sender;
            run_left = rng.gen_range(1..=4);
        }
        run_left -= 1;
        now += rng.gen_range(1_000_000_000..60_000_000_000u64);
        let len = text_len(&mut rng);
        let text = text_of_len(&mut rng, len);
        let sent = message::encode_v2(
            &mut rng,
            parties[sender],
            &topic,
            &key,
            now,
            &text_content(&text),
            Some(true),
        )
        .expect("encode");
        messages.push(CorpusMessage {
            sender,
            sent_ns: now.to_string(),
            bytes: hex::encode(&sent.bytes),
            text,
        });
    }

    // Messages that must be refused.
    now += 1_000_000_000;
    let payload = text_content("this message must not be shown");
    let header_bytes = MessageHeaderV2 {
        created_ns: now,
        topic: topic.clone(),
    }
    .encode_to_vec();
    let digest = |header: &[u8]| -> [u8; 32] {
        use sha2::{Digest, Sha256};
        Sha256::new()
            .chain_update(header)
            .chain_update(&payload)
            .finalize()
            .into()
    };
    let seal_message = |rng: &mut StdRng, header: &[u8], signed: &SignedContent| {
        let ciphertext =
            ciphertext::encrypt(rng, &signed.encode_to_vec(), &key, header).expect("encrypt");
        wrap(MessageV2 {
            header_bytes: header.to_vec(),
            ciphertext: Some(ciphertext),
            sender_hmac: Some(
                sender_hmac(&key, hmac_period(now), &alice.wallet_address(), header).expect("hmac"),
            ),
            should_push: Some(true),
        })
    };
    let alice_bundle = alice.public_bundle().proto().clone();
    let mut tampered = Vec::new();

    // 1. Alice's bundle, but the content signed by bob's pre-key.
    let forged = SignedContent {
        payload: payload.clone(),
        sender: Some(alice_bundle.clone()),
        signature: Some(
            bob.current_pre_key()
                .expect("pre-key")
                .sign_digest(&digest(&header_bytes))
                .expect("sign"),
        ),
    };
    tampered.push((
        "signature by another key than the sender's pre-key",
        seal_message(&mut rng, &header_bytes, &forged),
    ));

    // 2. Alice's identity key with mallory's pre-key (signed by mallory's
    // identity, not alice's); the content signature itself verifies.
    let grafted = SignedContent {
        payload: payload.clone(),
        sender: Some(SignedPublicKeyBundle {
            identity_key: alice_bundle.identity_key.clone(),
            pre_key: mallory.public_bundle().proto().pre_key.clone(),
        }),
        signature: Some(
            mallory
                .current_pre_key()
                .expect("pre-key")
                .sign_digest(&digest(&header_bytes))
                .expect("sign"),
        ),
    };
    tampered.push((
        "pre-key not signed by the sender's identity key",
        seal_message(&mut rng, &header_bytes, &grafted),
    ));

    // 3. A genuine message with one ciphertext bit flipped.
    let genuine = SignedContent {
        payload: payload.clone(),
        sender: Some(alice_bundle.clone()),
        signature: Some(
            alice
                .current_pre_key()
                .expect("pre-key")
                .sign_digest(&digest(&header_bytes))
                .expect("sign"),
        ),
    };
    let mut flipped = Message::decode(seal_message(&mut rng, &header_bytes, &genuine).as_slice())
        .expect("own message");
    if let Some(message_proto::Version::V2(v2)) = &mut flipped.version {
        if let Some(xmtp_proto::xmtp::message_contents::ciphertext::Union::Aes256GcmHkdfSha256(c)) =
            v2.ciphertext.as_mut().and_then(|c| c.union.as_mut())
        {
            c.payload[0] ^= 0x01;
        }
    }
    tampered.push(("one ciphertext bit flipped", flipped.encode_to_vec()));

    // 4. A genuine message of another conversation (same key material,
    // another topic in its header), read on this topic.
    let other_header = MessageHeaderV2 {
        created_ns: now,
        topic: "/xmtp/0/m-someotherconversation/proto".into(),
    }
    .encode_to_vec();
    let elsewhere = SignedContent {
        signature: Some(
            alice
                .current_pre_key()
                .expect("pre-key")
                .sign_digest(&digest(&other_header))
                .expect("sign"),
        ),
        ..genuine
    };
    tampered.push((
        "header names another conversation",
        seal_message(&mut rng, &other_header, &elsewhere),
    ));

    Corpus {
        format: FORMAT.into(),
        comment: format!(
            "Written by xmtp_cryptography/examples/v2_corpus.rs: {count} XMTP V2 messages between \
             alice (wallet key 32 x 0xa1) and bob (32 x 0xb1), read by bob. Test keys only."
        ),
        seed,
        topic,
        key_material: hex::encode(&key),
        invitation: hex::encode(invite.encode_to_vec()),
        sealed_invitation: hex::encode(&sealed),
        sealed_invitation_created_ns: START_NS.to_string(),
        parties: [("alice", &alice), ("bob", &bob)]
            .into_iter()
            .map(|(name, keys)| Party {
                name: name.into(),
                address: keys.wallet_address().to_checksum(),
                signed_public_key_bundle: hex::encode(keys.public_bundle().proto().encode_to_vec()),
            })
            .collect(),
        reader: 1,
        reader_private_key_bundle: hex::encode(bob_v1.encode().as_slice()),
        messages,
        tampered: tampered
            .into_iter()
            .map(|(kind, bytes)| TamperedMessage {
                kind: kind.into(),
                sent_ns: now.to_string(),
                bytes: hex::encode(bytes),
            })
            .collect(),
    }
}

impl Corpus {
    /// Decodes the hex once.
    pub(crate) fn load(&self) -> Loaded {
        assert_eq!(self.format, FORMAT, "unknown corpus format");
        let unhex = |s: &str| hex::decode(s).expect("corpus hex");
        Loaded {
            topic: self.topic.clone(),
            sealed_invitation: (
                unhex(&self.sealed_invitation),
                self.sealed_invitation_created_ns
                    .parse()
                    .expect("corpus timestamp"),
            ),
            reader: PrivateKeyBundleV1::decode(&unhex(&self.reader_private_key_bundle))
                .expect("reader keys"),
            addresses: self.parties.iter().map(|p| p.address.clone()).collect(),
            messages: self
                .messages
                .iter()
                .map(|m| (m.sender, unhex(&m.bytes), m.text.clone()))
                .collect(),
            tampered: self
                .tampered
                .iter()
                .map(|t| (t.kind.clone(), unhex(&t.bytes)))
                .collect(),
        }
    }
}
