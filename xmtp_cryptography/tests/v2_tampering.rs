//! Tampered XMTP V1/V2 data is refused with a typed error: flipped ciphertext
//! bits, wrong signatures, bundles authorised by another wallet, headers
//! swapped between conversations, invitations opened by outsiders.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use prost::Message as _;
use sha2::{Digest, Sha256};
use xmtp_cryptography::v2::{
    authn::{self, TokenError},
    ciphertext::{self, CiphertextError},
    contact::{self, Contact},
    invitation::{self, InvitationError},
    message::{self, MessageError},
    private_key::{IdentityRequest, PrivateKeyBundleV1, PrivateKeyBundleV2, PrivateKeyError},
    private_store::{EnableIdentityRequest, LockedBundle, PrivateStoreError},
    public_key::{BundleCache, BundleError, VerifiedPublicKeyBundle, VerifiedSignedBundle},
    signature::{self as sig, SignatureKind},
};
use xmtp_cryptography::wallet::LocalWallet;
use xmtp_proto::xmtp::message_contents::{
    self as proto, ciphertext as ct, message as msg, sealed_invitation, Ciphertext,
    SealedInvitation, SignedContent,
};

struct User {
    wallet: LocalWallet,
    v1: PrivateKeyBundleV1,
    v2: PrivateKeyBundleV2,
}

fn user() -> User {
    let mut rng = rand::thread_rng();
    let wallet = LocalWallet::random();
    let request = IdentityRequest::new(&mut rng, 1_700_000_000_000);
    let signature = wallet.sign_text_sync(request.text()).unwrap();
    let v1 = request
        .complete(&mut rng, signature.as_bytes(), Some(wallet.address()))
        .unwrap();
    let v2 = v1.to_v2().unwrap();
    User { wallet, v1, v2 }
}

fn flip_payload_bit(c: &mut Option<Ciphertext>) {
    match c.as_mut().and_then(|c| c.union.as_mut()) {
        Some(ct::Union::Aes256GcmHkdfSha256(inner)) => inner.payload[0] ^= 0x01,
        None => panic!("no ciphertext"),
    }
}

fn sealed_v1(bytes: &[u8]) -> proto::SealedInvitationV1 {
    match SealedInvitation::decode(bytes).unwrap().version {
        Some(sealed_invitation::Version::V1(v1)) => v1,
        None => panic!("not v1"),
    }
}

fn reseal(v1: proto::SealedInvitationV1) -> Vec<u8> {
    SealedInvitation {
        version: Some(sealed_invitation::Version::V1(v1)),
    }
    .encode_to_vec()
}

fn message_v2(bytes: &[u8]) -> proto::MessageV2 {
    match proto::Message::decode(bytes).unwrap().version {
        Some(msg::Version::V2(v2)) => v2,
        _ => panic!("not v2"),
    }
}

fn remessage(v2: proto::MessageV2) -> Vec<u8> {
    proto::Message {
        version: Some(msg::Version::V2(v2)),
    }
    .encode_to_vec()
}

fn conversation(alice: &User, bob: &User, id: &str) -> (proto::InvitationV1, Vec<u8>) {
    let mut rng = rand::thread_rng();
    let context = proto::invitation_v1::Context {
        conversation_id: id.into(),
        metadata: Default::default(),
    };
    let bob_public = bob.v2.public_bundle();
    let invite =
        invitation::deterministic_invitation(&alice.v2, bob_public, Some(context)).unwrap();
    let sealed = invitation::seal(&mut rng, &alice.v2, bob_public, 10, &invite).unwrap();
    (invite, sealed)
}

#[test]
fn sealed_invitation_with_a_flipped_ciphertext_bit_is_refused() {
    let (alice, bob) = (user(), user());
    let (_, sealed) = conversation(&alice, &bob, "a");
    let mut v1 = sealed_v1(&sealed);
    flip_payload_bit(&mut v1.ciphertext);
    assert!(matches!(
        invitation::open(&bob.v2, &reseal(v1), Some(10)),
        Err(InvitationError::Ciphertext(CiphertextError::Authentication))
    ));
}

#[test]
fn sealed_invitation_header_swapped_with_another_conversation_is_refused() {
    // Alice's invitation to Bob, under the header of her invitation to Carol: Carol is named in
    // the header, but the ciphertext was sealed for Bob and to another header.
    let (alice, bob, carol) = (user(), user(), user());
    let (_, to_bob) = conversation(&alice, &bob, "a");
    let (_, to_carol) = conversation(&alice, &carol, "a");
    let mut swapped = sealed_v1(&to_bob);
    swapped.header_bytes = sealed_v1(&to_carol).header_bytes;
    let swapped = reseal(swapped);
    assert!(matches!(
        invitation::open(&carol.v2, &swapped, Some(10)),
        Err(InvitationError::Ciphertext(CiphertextError::Authentication))
    ));
    // Bob is no longer named in it.
    assert!(matches!(
        invitation::open(&bob.v2, &swapped, Some(10)),
        Err(InvitationError::NotAParty)
    ));
}

#[test]
fn sealed_invitation_with_another_timestamp_is_refused() {
    let (alice, bob) = (user(), user());
    let (_, sealed) = conversation(&alice, &bob, "a");
    assert!(matches!(
        invitation::open(&bob.v2, &sealed, Some(11)),
        Err(InvitationError::TimestampMismatch {
            envelope_ns: 11,
            header_ns: 10
        })
    ));
}

#[test]
fn outsider_cannot_open_an_invitation() {
    let (alice, bob, eve) = (user(), user(), user());
    let (_, sealed) = conversation(&alice, &bob, "a");
    assert!(matches!(
        invitation::open(&eve.v2, &sealed, Some(10)),
        Err(InvitationError::NotAParty)
    ));
}

#[test]
fn invitation_to_a_pre_key_the_recipient_does_not_hold_is_refused() {
    // Bob's identity with a pre-key that this copy of Bob's keys does not hold (as after a
    // rotation on another device that was not synced).
    let (alice, bob) = (user(), user());
    let mut rotated = bob.v1.clone();
    rotated
        .add_pre_key(&mut rand::thread_rng(), 1_700_000_000_001)
        .unwrap();
    let rotated = rotated.to_v2().unwrap();
    let invite = invitation::random_invitation(&mut rand::thread_rng(), None);
    let sealed = invitation::seal(
        &mut rand::thread_rng(),
        &alice.v2,
        rotated.public_bundle(),
        10,
        &invite,
    )
    .unwrap();
    assert!(matches!(
        invitation::open(&bob.v2, &sealed, Some(10)),
        Err(InvitationError::Keys(PrivateKeyError::NoMatchingPreKey(_)))
    ));
    assert_eq!(
        invitation::open(&rotated, &sealed, Some(10))
            .unwrap()
            .invitation
            .topic,
        invite.topic
    );
}

#[test]
fn invitation_header_naming_a_bundle_signed_by_another_wallet_is_refused() {
    let (alice, bob, mallory) = (user(), user(), user());
    let (_, sealed) = conversation(&alice, &bob, "a");
    let mut v1 = sealed_v1(&sealed);
    let mut header = proto::SealedInvitationHeaderV1::decode(v1.header_bytes.as_slice()).unwrap();
    // Alice's identity key, but with Mallory's wallet signature over it.
    let sender = header.sender.as_mut().unwrap();
    let identity = sender.identity_key.as_mut().unwrap();
    let text = sig::create_identity_text(&identity.key_bytes);
    let forged = mallory.wallet.sign_text_sync(&text).unwrap().to_vec();
    let forged =
        xmtp_cryptography::v2::keys::RecoverableSignature::from_wallet_bytes(&forged).unwrap();
    identity.signature = Some(sig::to_proto(SignatureKind::Wallet, &forged));
    // The bundle now verifies as Mallory's, not Alice's...
    let as_mallory = VerifiedSignedBundle::verify(sender).unwrap();
    assert_eq!(as_mallory.wallet_address(), mallory.wallet.address());
    assert!(matches!(
        as_mallory.expect_wallet(&alice.wallet.address()),
        Err(BundleError::WrongWallet { .. })
    ));
    // ...and the altered header no longer authenticates the invitation.
    v1.header_bytes = header.encode_to_vec();
    assert!(matches!(
        invitation::open(&bob.v2, &reseal(v1), Some(10)),
        Err(InvitationError::Ciphertext(CiphertextError::Authentication))
    ));
}

#[test]
fn v2_message_with_a_flipped_ciphertext_bit_is_refused() {
    let (alice, bob) = (user(), user());
    let (invite, _) = conversation(&alice, &bob, "a");
    let key = invitation::key_material(&invite).unwrap();
    let sent = message::encode_v2(
        &mut rand::thread_rng(),
        &alice.v2,
        &invite.topic,
        key,
        5,
        b"hi",
        None,
    )
    .unwrap();
    let mut v2 = message_v2(&sent.bytes);
    flip_payload_bit(&mut v2.ciphertext);
    assert!(matches!(
        message::decode_v2(&remessage(v2), &invite.topic, key),
        Err(MessageError::Ciphertext(CiphertextError::Authentication))
    ));
}

#[test]
fn v2_message_header_swapped_between_conversations_is_refused() {
    let (alice, bob) = (user(), user());
    let (first, _) = conversation(&alice, &bob, "first");
    let (second, _) = conversation(&alice, &bob, "second");
    let k1 = invitation::key_material(&first).unwrap();
    let k2 = invitation::key_material(&second).unwrap();
    let mut rng = rand::thread_rng();
    let m1 = message::encode_v2(&mut rng, &alice.v2, &first.topic, k1, 5, b"one", None).unwrap();
    let m2 = message::encode_v2(&mut rng, &alice.v2, &second.topic, k2, 5, b"two", None).unwrap();
    // Replayed into the other conversation as is: its header names the first topic.
    assert!(matches!(
        message::decode_v2(&m1.bytes, &second.topic, k2),
        Err(MessageError::TopicMismatch { .. })
    ));
    // With the second conversation's header: the ciphertext does not authenticate.
    let mut swapped = message_v2(&m1.bytes);
    swapped.header_bytes = message_v2(&m2.bytes).header_bytes;
    assert!(matches!(
        message::decode_v2(&remessage(swapped), &second.topic, k2),
        Err(MessageError::Ciphertext(CiphertextError::Authentication))
    ));
}

#[test]
fn v2_message_with_a_wrong_signature_is_refused() {
    // Bob knows the conversation key and tries to pass a message off as Alice's: he puts Alice's
    // bundle in the signed content but can only sign with his own pre-key.
    let (alice, bob) = (user(), user());
    let (invite, _) = conversation(&alice, &bob, "a");
    let key = invitation::key_material(&invite).unwrap();
    let header_bytes = proto::MessageHeaderV2 {
        created_ns: 5,
        topic: invite.topic.clone(),
    }
    .encode_to_vec();
    let payload = b"transfer everything".to_vec();
    let digest: [u8; 32] = Sha256::new()
        .chain_update(&header_bytes)
        .chain_update(&payload)
        .finalize()
        .into();
    let forged = SignedContent {
        payload,
        sender: Some(alice.v2.public_bundle().proto().clone()),
        signature: Some(
            bob.v2
                .current_pre_key()
                .unwrap()
                .sign_digest(&digest)
                .unwrap(),
        ),
    };
    let c = ciphertext::encrypt(
        &mut rand::thread_rng(),
        &forged.encode_to_vec(),
        key,
        &header_bytes,
    )
    .unwrap();
    let bytes = remessage(proto::MessageV2 {
        header_bytes,
        ciphertext: Some(c),
        sender_hmac: None,
        should_push: None,
    });
    assert!(matches!(
        message::decode_v2(&bytes, &invite.topic, key),
        Err(MessageError::BadSignature)
    ));
    // With Alice's bundle already verified and cached from a genuine message, the forgery is
    // still refused: the cache saves the bundle check, never the message's own signature check.
    let mut cache = BundleCache::new();
    let genuine = message::encode_v2(
        &mut rand::thread_rng(),
        &alice.v2,
        &invite.topic,
        key,
        6,
        b"ok",
        None,
    )
    .unwrap();
    let read = message::decode_v2_cached(&genuine.bytes, &invite.topic, key, &mut cache).unwrap();
    assert_eq!(read.sender_address, alice.wallet.address());
    assert_eq!(cache.len(), 1);
    assert!(matches!(
        message::decode_v2_cached(&bytes, &invite.topic, key, &mut cache),
        Err(MessageError::BadSignature)
    ));
}

#[test]
fn v2_message_whose_pre_key_is_not_the_identitys_is_refused() {
    let (alice, bob) = (user(), user());
    let (invite, _) = conversation(&alice, &bob, "a");
    let key = invitation::key_material(&invite).unwrap();
    let header_bytes = proto::MessageHeaderV2 {
        created_ns: 5,
        topic: invite.topic.clone(),
    }
    .encode_to_vec();
    let payload = b"hi".to_vec();
    let digest: [u8; 32] = Sha256::new()
        .chain_update(&header_bytes)
        .chain_update(&payload)
        .finalize()
        .into();
    // Alice's identity key with Bob's pre-key (signed by Bob's identity).
    let mut sender = alice.v2.public_bundle().proto().clone();
    sender.pre_key = bob.v2.public_bundle().proto().pre_key.clone();
    let forged = SignedContent {
        payload,
        sender: Some(sender),
        signature: Some(
            bob.v2
                .current_pre_key()
                .unwrap()
                .sign_digest(&digest)
                .unwrap(),
        ),
    };
    let c = ciphertext::encrypt(
        &mut rand::thread_rng(),
        &forged.encode_to_vec(),
        key,
        &header_bytes,
    )
    .unwrap();
    let bytes = remessage(proto::MessageV2 {
        header_bytes,
        ciphertext: Some(c),
        sender_hmac: None,
        should_push: None,
    });
    assert!(matches!(
        message::decode_v2(&bytes, &invite.topic, key),
        Err(MessageError::Bundle(BundleError::PreKeyNotSignedByIdentity))
    ));
}

#[test]
fn v1_message_tampering_is_refused() {
    let (alice, bob, eve) = (user(), user(), user());
    let bob_public = VerifiedPublicKeyBundle::verify(&bob.v1.public_bundle().unwrap()).unwrap();
    let sent =
        message::encode_v1(&mut rand::thread_rng(), &alice.v1, &bob_public, 7, b"yo").unwrap();
    assert_eq!(
        message::decode_v1(&bob.v1, &sent.bytes).unwrap().payload,
        b"yo"
    );

    let mut v1 = match proto::Message::decode(sent.bytes.as_slice())
        .unwrap()
        .version
    {
        Some(msg::Version::V1(v1)) => v1,
        _ => panic!("not v1"),
    };
    let original = v1.clone();
    flip_payload_bit(&mut v1.ciphertext);
    let flipped = proto::Message {
        version: Some(msg::Version::V1(v1)),
    }
    .encode_to_vec();
    assert!(matches!(
        message::decode_v1(&bob.v1, &flipped),
        Err(MessageError::Ciphertext(CiphertextError::Authentication))
    ));

    // A header with another timestamp no longer authenticates the ciphertext.
    let mut header = proto::MessageHeaderV1::decode(original.header_bytes.as_slice()).unwrap();
    header.timestamp += 1;
    let reheadered = proto::Message {
        version: Some(msg::Version::V1(proto::MessageV1 {
            header_bytes: header.encode_to_vec(),
            ciphertext: original.ciphertext.clone(),
        })),
    }
    .encode_to_vec();
    assert!(matches!(
        message::decode_v1(&bob.v1, &reheadered),
        Err(MessageError::Ciphertext(CiphertextError::Authentication))
    ));
    // Someone else cannot read it.
    assert!(matches!(
        message::decode_v1(&eve.v1, &sent.bytes),
        Err(MessageError::NotAParty)
    ));
}

#[test]
fn contact_bundle_authorised_by_another_wallet_is_refused() {
    let (alice, mallory) = (user(), user());
    let bytes = contact::encode_v2(mallory.v2.public_bundle().proto());
    assert!(matches!(
        Contact::decode_for(&bytes, &alice.wallet.address()),
        Err(BundleError::WrongWallet { .. })
    ));
    assert!(Contact::decode_for(&bytes, &mallory.wallet.address()).is_ok());
}

#[test]
fn contact_bundle_with_a_flipped_signature_bit_is_refused_or_changes_owner() {
    let alice = user();
    let public = alice.v1.public_bundle().unwrap();
    let mut tampered = public.clone();
    let identity = tampered.identity_key.as_mut().unwrap();
    match identity.signature.as_mut().unwrap().union.as_mut().unwrap() {
        proto::signature::Union::EcdsaCompact(s) => s.bytes[10] ^= 0x01,
        proto::signature::Union::WalletEcdsaCompact(s) => s.bytes[10] ^= 0x01,
    }
    let bytes = contact::encode_v1(&tampered);
    // A flipped signature recovers some other key, or none: never Alice.
    assert!(Contact::decode_for(&bytes, &alice.wallet.address()).is_err());

    // A pre-key signature flipped: refused outright.
    let mut tampered = public;
    match tampered
        .pre_key
        .as_mut()
        .unwrap()
        .signature
        .as_mut()
        .unwrap()
        .union
        .as_mut()
        .unwrap()
    {
        proto::signature::Union::EcdsaCompact(s) => s.bytes[40] ^= 0x01,
        proto::signature::Union::WalletEcdsaCompact(s) => s.bytes[40] ^= 0x01,
    }
    assert!(Contact::decode(&contact::encode_v1(&tampered)).is_err());
}

#[test]
fn private_store_refuses_other_wallets_and_flipped_bits() {
    let (alice, bob) = (user(), user());
    let mut rng = rand::thread_rng();
    let request = EnableIdentityRequest::new(&mut rng);
    // Bob's wallet cannot store Alice's keys.
    let bob_sig = bob.wallet.sign_text_sync(request.text()).unwrap().to_vec();
    assert!(matches!(
        request.encrypt(&mut rng, &alice.v1, &bob_sig),
        Err(PrivateStoreError::WrongWallet { .. })
    ));
    let alice_sig = alice
        .wallet
        .sign_text_sync(request.text())
        .unwrap()
        .to_vec();
    let stored = request.encrypt(&mut rng, &alice.v1, &alice_sig).unwrap();

    let mut wrapper = proto::EncryptedPrivateKeyBundle::decode(stored.as_slice()).unwrap();
    let Some(proto::encrypted_private_key_bundle::Version::V1(inner)) = wrapper.version.as_mut()
    else {
        panic!("not v1")
    };
    flip_payload_bit(&mut inner.ciphertext);
    let locked = LockedBundle::decode(&wrapper.encode_to_vec()).unwrap();
    assert!(matches!(
        locked.decrypt(&alice_sig),
        Err(PrivateStoreError::Ciphertext(
            CiphertextError::Authentication
        ))
    ));
    assert!(matches!(
        LockedBundle::decode(b"\x0a\x01"),
        Err(PrivateStoreError::Decode(_))
    ));
}

#[test]
fn token_with_a_wrong_wallet_or_signature_is_refused() {
    let (alice, bob) = (user(), user());
    let token = authn::create_token(&alice.v1, 1).unwrap();
    assert_eq!(
        authn::verify_token(&token).unwrap().wallet_address,
        alice.wallet.address()
    );

    // Claiming Bob's wallet with Alice's identity key.
    let mut claims_bob = token.clone();
    claims_bob.auth_data_bytes = xmtp_proto::xmtp::message_api::v1::AuthData {
        wallet_addr: bob.wallet.address().to_checksum(),
        created_ns: 1,
    }
    .encode_to_vec();
    assert!(matches!(
        authn::verify_token(&claims_bob),
        Err(TokenError::WalletMismatch { .. })
    ));

    // Auth data signed by Bob's identity key.
    let mut wrong_sig = token.clone();
    let digest = alloy_primitives::keccak256(&wrong_sig.auth_data_bytes);
    wrong_sig.auth_data_signature = Some(bob.v1.identity_key().sign_digest(&digest.0).unwrap());
    assert!(matches!(
        authn::verify_token(&wrong_sig),
        Err(TokenError::BadSignature)
    ));

    // Altered timestamp under the original signature.
    let mut later = token;
    later.auth_data_bytes = xmtp_proto::xmtp::message_api::v1::AuthData {
        wallet_addr: alice.wallet.address().to_checksum(),
        created_ns: 2,
    }
    .encode_to_vec();
    assert!(matches!(
        authn::verify_token(&later),
        Err(TokenError::BadSignature)
    ));
    assert!(matches!(
        authn::decode_token("not base64!"),
        Err(TokenError::Base64)
    ));
}

#[test]
fn garbage_is_a_typed_error_everywhere() {
    let alice = user();
    for garbage in [&b""[..], b"\xff\xff\xff", b"\x0a\x05hello", &[0x12; 64]] {
        assert!(invitation::open(&alice.v2, garbage, None).is_err());
        assert!(message::decode_v2(garbage, "/xmtp/0/m-x/proto", b"key").is_err());
        assert!(message::decode_v1(&alice.v1, garbage).is_err());
        assert!(Contact::decode(garbage).is_err());
        assert!(LockedBundle::decode(garbage).is_err());
        assert!(PrivateKeyBundleV1::decode(garbage).is_err());
        assert!(VerifiedSignedBundle::decode(garbage).is_err());
    }
}
