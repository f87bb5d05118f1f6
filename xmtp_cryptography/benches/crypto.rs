#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Criterion benches of the wrappers, each in one group beside the raw
//! vodozemac / dalek / alloy calls it wraps, so the overhead can be read as a
//! ratio of the two medians (`wrapper` / `raw`).
//!
//! Run: `cargo bench -p xmtp_cryptography --bench crypto -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use alloy_primitives::Signature as AlloySignature;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ed25519_dalek::{Signature as DalekSignature, VerifyingKey};
use hkdf::Hkdf;
use prost::Message;
use sha2::Sha256;
use vodozemac::{
    megolm::{
        GroupSession, InboundGroupSession as RawInbound, MegolmMessage,
        SessionConfig as MegolmConfig,
    },
    olm::{Account, OlmMessage, Session, SessionConfig},
};
use x25519_dalek::{PublicKey, StaticSecret};
use xmtp_cryptography::{
    association::{association_text, Association},
    bundle::VerifiedInstallation,
    installation::{InstallationKeys, FALLBACK_KEY_DOMAIN, IDENTITY_KEY_DOMAIN},
    megolm::{InboundGroupSession, OutboundGroupSession},
    olm::{OlmCiphertext, OlmSession},
    wallet::{Address, LocalWallet},
    x3dh::{self, PreKeyBundle, X25519KeyPair},
};
use xmtp_proto::xmtp::v3::message_contents::{
    InstallationPublicKeyBundle, SignedCurve25519Key, WalletAssociation,
};

const WALLET_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const CREATED_NS: u64 = 1_700_000_000_000_000_000;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn signed(domain: &[u8], key: &[u8]) -> Vec<u8> {
    [domain, key].concat()
}

fn bundle(c: &mut Criterion) {
    let wallet = LocalWallet::from_hex(WALLET_KEY).unwrap();
    let signer: PrivateKeySigner = WALLET_KEY.parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("bundle_create");
    group.bench_function("wrapper", |b| {
        b.iter(|| {
            let keys = InstallationKeys::new();
            let association = rt
                .block_on(Association::create(
                    &wallet,
                    keys.installation_id(),
                    CREATED_NS,
                ))
                .unwrap();
            black_box(keys.public_bundle(&association).unwrap().encode_to_vec())
        })
    });
    group.bench_function("wrapper_local_wallet", |b| {
        b.iter(|| {
            let keys = InstallationKeys::new();
            let association =
                Association::create_local(&wallet, keys.installation_id(), CREATED_NS).unwrap();
            black_box(keys.public_bundle(&association).unwrap().encode_to_vec())
        })
    });
    group.bench_function("raw", |b| {
        b.iter(|| {
            let mut account = Account::new();
            account.generate_fallback_key();
            let fallback = account.fallback_key().into_values().next().unwrap();
            let identity = account.curve25519_key();
            let id = *account.ed25519_key().as_bytes();
            let address = Address::from(signer.address());
            let text = association_text(
                &address,
                &xmtp_cryptography::InstallationId::from_bytes(id),
                CREATED_NS,
            )
            .unwrap();
            let signature = signer.sign_message_sync(text.as_bytes()).unwrap();
            let proto = InstallationPublicKeyBundle {
                identity_key: identity.to_vec(),
                signing_key: id.to_vec(),
                identity_key_signature: account
                    .sign(signed(IDENTITY_KEY_DOMAIN, identity.as_bytes()))
                    .to_bytes()
                    .to_vec(),
                fallback_key: Some(SignedCurve25519Key {
                    key: fallback.to_vec(),
                    signature: account
                        .sign(signed(FALLBACK_KEY_DOMAIN, fallback.as_bytes()))
                        .to_bytes()
                        .to_vec(),
                }),
                association: Some(WalletAssociation {
                    text_version: 1,
                    account_address: address.to_string(),
                    installation_key: id.to_vec(),
                    created_ns: CREATED_NS,
                    wallet_signature: signature.as_bytes().to_vec(),
                }),
            };
            black_box(proto.encode_to_vec())
        })
    });
    group.finish();

    let keys = InstallationKeys::new();
    let association = block_on(Association::create(
        &wallet,
        keys.installation_id(),
        CREATED_NS,
    ))
    .unwrap();
    let bytes = keys.public_bundle(&association).unwrap().encode_to_vec();
    let mut group = c.benchmark_group("bundle_verify");
    group.bench_function("wrapper", |b| {
        b.iter(|| black_box(VerifiedInstallation::from_bytes(black_box(&bytes)).unwrap()))
    });
    group.bench_function("raw", |b| {
        b.iter(|| {
            let proto = InstallationPublicKeyBundle::decode(black_box(bytes.as_slice())).unwrap();
            let key =
                VerifyingKey::from_bytes(&proto.signing_key.clone().try_into().unwrap()).unwrap();
            let sig = DalekSignature::from_slice(&proto.identity_key_signature).unwrap();
            key.verify_strict(&signed(IDENTITY_KEY_DOMAIN, &proto.identity_key), &sig)
                .unwrap();
            let fallback = proto.fallback_key.as_ref().unwrap();
            let sig = DalekSignature::from_slice(&fallback.signature).unwrap();
            key.verify_strict(&signed(FALLBACK_KEY_DOMAIN, &fallback.key), &sig)
                .unwrap();
            let a = proto.association.as_ref().unwrap();
            let address: Address = a.account_address.parse().unwrap();
            let id = xmtp_cryptography::InstallationId::from_slice(&a.installation_key).unwrap();
            let text = association_text(&address, &id, a.created_ns).unwrap();
            let recovered = AlloySignature::from_raw(&a.wallet_signature)
                .unwrap()
                .recover_address_from_msg(text)
                .unwrap();
            assert_eq!(Address::from(recovered), address);
            black_box(proto)
        })
    });
    group.finish();
}

fn x3dh_bench(c: &mut Criterion) {
    let signer = InstallationKeys::new();
    let (ik_a, ik_b, spk, opk) = (
        X25519KeyPair::random(),
        X25519KeyPair::random(),
        X25519KeyPair::random(),
        X25519KeyPair::random(),
    );
    let bundle = PreKeyBundle {
        identity_key: ik_b.public_key(),
        signing_key: signer.installation_id(),
        signed_pre_key: spk.public_key(),
        signed_pre_key_signature: signer.sign_x3dh_pre_key(&ik_b.public_key(), &spk.public_key()),
        one_time_pre_key: Some(opk.public_key()),
    };
    let raw_ik_a = StaticSecret::from(*ik_a.secret_bytes());
    let mut group = c.benchmark_group("x3dh_initiate");
    group.bench_function("wrapper", |b| {
        b.iter(|| black_box(x3dh::initiate(&ik_a, black_box(&bundle)).unwrap()))
    });
    group.bench_function("raw", |b| {
        b.iter(|| {
            let key = VerifyingKey::from_bytes(bundle.signing_key.as_bytes()).unwrap();
            let message =
                x3dh::signed_pre_key_message(&bundle.identity_key, &bundle.signed_pre_key);
            key.verify_strict(
                &message,
                &DalekSignature::from_bytes(&bundle.signed_pre_key_signature),
            )
            .unwrap();
            let ek = StaticSecret::random_from_rng(rand::rngs::OsRng);
            let spk_pub = PublicKey::from(*bundle.signed_pre_key.as_bytes());
            let dh1 = raw_ik_a.diffie_hellman(&spk_pub);
            let dh2 = ek.diffie_hellman(&PublicKey::from(*bundle.identity_key.as_bytes()));
            let dh3 = ek.diffie_hellman(&spk_pub);
            let dh4 = ek.diffie_hellman(&PublicKey::from(
                *bundle.one_time_pre_key.unwrap().as_bytes(),
            ));
            let ikm = [
                [0xffu8; 32],
                dh1.to_bytes(),
                dh2.to_bytes(),
                dh3.to_bytes(),
                dh4.to_bytes(),
            ]
            .concat();
            let mut sk = [0u8; 32];
            Hkdf::<Sha256>::new(Some(&[0u8; 32]), &ikm)
                .expand(x3dh::X3DH_INFO, &mut sk)
                .unwrap();
            black_box((sk, PublicKey::from(&ek)))
        })
    });
    group.finish();
}

fn verified_pair() -> (
    InstallationKeys,
    VerifiedInstallation,
    InstallationKeys,
    VerifiedInstallation,
) {
    let wallet = LocalWallet::random();
    let make = || {
        let keys = InstallationKeys::new();
        let association = block_on(Association::create(
            &wallet,
            keys.installation_id(),
            CREATED_NS,
        ))
        .unwrap();
        let public =
            VerifiedInstallation::from_proto(&keys.public_bundle(&association).unwrap()).unwrap();
        (keys, public)
    };
    let (a, ap) = make();
    let (b, bp) = make();
    (a, ap, b, bp)
}

fn olm(c: &mut Criterion) {
    let (alice, alice_public, mut bob, bob_public) = verified_pair();
    let claimed = bob_public.fallback_as_claimed();
    let raw_alice = Account::new();
    let mut raw_bob = Account::new();
    raw_bob.generate_fallback_key();
    let raw_fallback = raw_bob.fallback_key().into_values().next().unwrap();

    let mut group = c.benchmark_group("olm_session_create");
    group.bench_function("wrapper", |b| {
        b.iter(|| black_box(OlmSession::outbound(&alice, &bob_public, &claimed).unwrap()))
    });
    group.bench_function("raw", |b| {
        b.iter(|| {
            black_box(
                raw_alice
                    .create_outbound_session(
                        SessionConfig::version_1(),
                        raw_bob.curve25519_key(),
                        raw_fallback,
                    )
                    .unwrap(),
            )
        })
    });
    group.finish();

    // Established sessions in both directions, wrapper and raw.
    let mut a_to_b = OlmSession::outbound(&alice, &bob_public, &claimed).unwrap();
    let first = a_to_b.encrypt(b"setup").unwrap();
    let (mut b_from_a, _) = OlmSession::inbound(&mut bob, &alice_public, &first).unwrap();
    a_to_b.decrypt(&b_from_a.encrypt(b"ack").unwrap()).unwrap();
    let mut raw_a: Session = raw_alice
        .create_outbound_session(
            SessionConfig::version_1(),
            raw_bob.curve25519_key(),
            raw_fallback,
        )
        .unwrap();
    let OlmMessage::PreKey(pre_key) = raw_a.encrypt(b"setup").unwrap() else {
        panic!("first message is a pre-key message")
    };
    let mut raw_b = raw_bob
        .create_inbound_session(
            SessionConfig::version_1(),
            raw_alice.curve25519_key(),
            &pre_key,
        )
        .unwrap()
        .session;
    raw_a.decrypt(&raw_b.encrypt(b"ack").unwrap()).unwrap();

    let plaintext = vec![0x5a; 1024];
    let mut group = c.benchmark_group("olm_encrypt_1KiB");
    group.bench_function("wrapper", |b| {
        b.iter(|| black_box(a_to_b.encrypt(black_box(&plaintext)).unwrap().to_parts()))
    });
    group.bench_function("raw", |b| {
        b.iter(|| black_box(raw_a.encrypt(black_box(&plaintext)).unwrap().to_parts()))
    });
    group.finish();

    // The encrypt bench left a gap of many unreceived messages in those
    // sessions; decrypt with fresh pairs.
    let (alice, alice_public, mut bob, bob_public) = verified_pair();
    let claimed = bob_public.fallback_as_claimed();
    let mut a_to_b = OlmSession::outbound(&alice, &bob_public, &claimed).unwrap();
    let first = a_to_b.encrypt(b"setup").unwrap();
    let (mut b_from_a, _) = OlmSession::inbound(&mut bob, &alice_public, &first).unwrap();
    a_to_b.decrypt(&b_from_a.encrypt(b"ack").unwrap()).unwrap();
    let mut raw_bob = Account::new();
    raw_bob.generate_fallback_key();
    let raw_fallback = raw_bob.fallback_key().into_values().next().unwrap();
    let mut raw_a: Session = raw_alice
        .create_outbound_session(
            SessionConfig::version_1(),
            raw_bob.curve25519_key(),
            raw_fallback,
        )
        .unwrap();
    let OlmMessage::PreKey(pre_key) = raw_a.encrypt(b"setup").unwrap() else {
        panic!("first message is a pre-key message")
    };
    let mut raw_b = raw_bob
        .create_inbound_session(
            SessionConfig::version_1(),
            raw_alice.curve25519_key(),
            &pre_key,
        )
        .unwrap()
        .session;
    raw_a.decrypt(&raw_b.encrypt(b"ack").unwrap()).unwrap();

    let mut group = c.benchmark_group("olm_decrypt_1KiB");
    group.bench_function("wrapper", |b| {
        b.iter_batched(
            || a_to_b.encrypt(&plaintext).unwrap().to_parts(),
            |(kind, bytes)| {
                black_box(
                    b_from_a
                        .decrypt(&OlmCiphertext::from_parts(kind, &bytes).unwrap())
                        .unwrap(),
                )
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("raw", |b| {
        b.iter_batched(
            || raw_a.encrypt(&plaintext).unwrap().to_parts(),
            |(kind, bytes)| {
                black_box(
                    raw_b
                        .decrypt(&OlmMessage::from_parts(kind, &bytes).unwrap())
                        .unwrap(),
                )
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn megolm(c: &mut Criterion) {
    let plaintext = vec![0x5a; 1024];
    let mut outbound = OutboundGroupSession::new();
    let mut raw_outbound = GroupSession::new(MegolmConfig::version_1());
    let mut group = c.benchmark_group("megolm_encrypt_1KiB");
    group.bench_function("wrapper", |b| {
        b.iter(|| black_box(outbound.encrypt(black_box(&plaintext))))
    });
    group.bench_function("raw", |b| {
        b.iter(|| black_box(raw_outbound.encrypt(black_box(&plaintext)).to_bytes()))
    });
    group.finish();

    let mut inbound = InboundGroupSession::new(&outbound.session_key());
    let mut raw_inbound = RawInbound::new(&raw_outbound.session_key(), MegolmConfig::version_1());
    let message = outbound.encrypt(&plaintext);
    let raw_message = raw_outbound.encrypt(&plaintext).to_bytes();
    let mut group = c.benchmark_group("megolm_decrypt_1KiB");
    group.bench_function("wrapper", |b| {
        b.iter(|| black_box(inbound.decrypt(black_box(&message)).unwrap()))
    });
    group.bench_function("raw", |b| {
        b.iter(|| {
            black_box(
                raw_inbound
                    .decrypt(&MegolmMessage::from_bytes(black_box(&raw_message)).unwrap())
                    .unwrap(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bundle, x3dh_bench, olm, megolm);
criterion_main!(benches);
