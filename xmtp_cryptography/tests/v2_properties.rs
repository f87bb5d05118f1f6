//! Properties of the XMTP V1/V2 constructions over random inputs: the
//! ciphertext round-trips for any plaintext and header and refuses any
//! single flipped bit; any flipped bit of a sealed invitation or of a V2
//! message's header or ciphertext is refused; 3-DH agrees for any keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::OnceLock;

use base64::Engine as _;
use proptest::prelude::*;
use prost::Message as _;
use rand::{rngs::StdRng, SeedableRng};
use xmtp_cryptography::v2::{
    authn, ciphertext, contact, invitation,
    keys::SecretKey,
    message,
    private_key::{self, three_dh, IdentityRequest, PrivateKeyBundleV2},
    private_store,
};
use xmtp_cryptography::wallet::LocalWallet;
use xmtp_proto::xmtp::message_contents::{self as proto, message as msg, Ciphertext};

struct Fixture {
    alice: PrivateKeyBundleV2,
    bob: PrivateKeyBundleV2,
    sealed: Vec<u8>,
    invite: proto::InvitationV1,
    message: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(7);
        let make = |rng: &mut StdRng, seed: u8| {
            let wallet = LocalWallet::from_key_bytes(&[seed; 32]).unwrap();
            let request = IdentityRequest::new(rng, 1_700_000_000_000);
            let sig = wallet.sign_text_sync(request.text()).unwrap();
            request
                .complete(rng, sig.as_bytes(), Some(wallet.address()))
                .unwrap()
                .to_v2()
                .unwrap()
        };
        let alice = make(&mut rng, 1);
        let bob = make(&mut rng, 2);
        let invite = invitation::random_invitation(&mut rng, None);
        let sealed = invitation::seal(&mut rng, &alice, bob.public_bundle(), 42, &invite).unwrap();
        let key = invitation::key_material(&invite).unwrap();
        let message =
            message::encode_v2(&mut rng, &alice, &invite.topic, key, 43, b"property", None)
                .unwrap()
                .bytes;
        Fixture {
            alice,
            bob,
            sealed,
            invite,
            message,
        }
    })
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let bit = bit % (out.len() * 8);
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ciphertext_round_trips_and_refuses_any_flipped_bit(
        plaintext in proptest::collection::vec(any::<u8>(), 0..512),
        header in proptest::collection::vec(any::<u8>(), 0..128),
        secret in proptest::collection::vec(any::<u8>(), 1..200),
        bit in any::<usize>(),
        seed in any::<u64>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let sealed = ciphertext::encrypt(&mut rng, &plaintext, &secret, &header).unwrap();
        let opened = ciphertext::decrypt(&sealed, &secret, &header).unwrap();
        prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
        // Any bit of the encoded ciphertext: it no longer decodes, or no longer decrypts.
        let tampered = flip(&sealed.encode_to_vec(), bit);
        if let Ok(c) = Ciphertext::decode(tampered.as_slice()) {
            prop_assert!(ciphertext::decrypt(&c, &secret, &header).is_err());
        }
        // Any bit of the associated data.
        if !header.is_empty() {
            prop_assert!(ciphertext::decrypt(&sealed, &secret, &flip(&header, bit)).is_err());
        }
    }

    #[test]
    fn any_flipped_bit_of_a_sealed_invitation_is_refused(bit in any::<usize>()) {
        let f = fixture();
        let tampered = flip(&f.sealed, bit);
        prop_assert!(invitation::open(&f.bob, &tampered, Some(42)).is_err());
        prop_assert!(invitation::open(&f.alice, &tampered, Some(42)).is_err());
    }

    #[test]
    fn any_flipped_bit_of_a_v2_header_or_ciphertext_is_refused(bit in any::<usize>(), in_header in any::<bool>()) {
        let f = fixture();
        let key = invitation::key_material(&f.invite).unwrap();
        let Some(msg::Version::V2(mut v2)) = proto::Message::decode(f.message.as_slice()).unwrap().version else {
            panic!("not v2")
        };
        if in_header {
            v2.header_bytes = flip(&v2.header_bytes, bit);
        } else {
            let encoded = v2.ciphertext.as_ref().unwrap().encode_to_vec();
            match Ciphertext::decode(flip(&encoded, bit).as_slice()) {
                Ok(c) => v2.ciphertext = Some(c),
                Err(_) => return Ok(()),
            }
        }
        let bytes = proto::Message { version: Some(msg::Version::V2(v2)) }.encode_to_vec();
        prop_assert!(message::decode_v2(&bytes, &f.invite.topic, key).is_err());
    }

    #[test]
    fn arbitrary_bytes_are_refused_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let f = fixture();
        let key = invitation::key_material(&f.invite).unwrap();
        prop_assert!(invitation::open(&f.bob, &bytes, None).is_err());
        prop_assert!(message::decode_v2(&bytes, &f.invite.topic, key).is_err());
        prop_assert!(contact::Contact::decode(&bytes).is_err());
        prop_assert!(private_store::LockedBundle::decode(&bytes).and_then(|l| l.decrypt(&[27; 65])).is_err());
        prop_assert!(private_key::PrivateKeyBundleV1::decode(&bytes).is_err());
        if let Ok(token) = authn::decode_token(&base64::engine::general_purpose::STANDARD.encode(&bytes)) {
            prop_assert!(authn::verify_token(&token).is_err());
        }
    }

    #[test]
    fn three_dh_agrees_for_any_keys(seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (ia, pa, ib, pb) = (
            SecretKey::random(&mut rng),
            SecretKey::random(&mut rng),
            SecretKey::random(&mut rng),
            SecretKey::random(&mut rng),
        );
        let sender = three_dh(&ia, &pa, &ib.public_key(), &pb.public_key(), false);
        let recipient = three_dh(&ib, &pb, &ia.public_key(), &pa.public_key(), true);
        prop_assert_eq!(sender.as_bytes(), recipient.as_bytes());
        let both_senders = three_dh(&ib, &pb, &ia.public_key(), &pa.public_key(), false);
        prop_assert_ne!(sender.as_bytes(), both_senders.as_bytes());
    }
}
