#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! The whole protocol in memory, byte by byte, as xmtp_core drives it: wallets
//! grant installations, bundles cross the wire as protobuf, a revoked and a
//! forged installation are dropped, Olm sessions are opened from claimed keys,
//! state is pickled and restored mid-conversation, and a Megolm key travels
//! over Olm.

use prost::Message;
use xmtp_cryptography::{
    association::{Association, Revocation},
    bundle::{verify_installations, DropReason},
    installation::{InstallationKeys, PreKeyKind},
    megolm::{GroupSessionKey, InboundGroupSession, OutboundGroupSession, ReplayGuard},
    olm::{OlmCiphertext, OlmSession},
    wallet::{LocalWallet, WalletSigner},
    SecretKey, VerifiedInstallation,
};
use xmtp_proto::xmtp::v3::message_contents::{InstallationPublicKeyBundle, WalletRevocation};

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn register(wallet: &dyn WalletSigner, created_ns: u64) -> (InstallationKeys, Vec<u8>) {
    let mut keys = InstallationKeys::new();
    let association = block_on(Association::create(
        wallet,
        keys.installation_id(),
        created_ns,
    ))
    .unwrap();
    let bundle = keys.public_bundle(&association).unwrap().encode_to_vec();
    keys.generate_one_time_keys(5);
    keys.mark_keys_as_published();
    (keys, bundle)
}

#[test]
fn two_wallets_talk_across_installations_with_revocation_and_restarts() {
    let alice = LocalWallet::random();
    let bob = LocalWallet::random();
    let mallory = LocalWallet::random();
    let (alice_1, alice_1_bundle) = register(&alice, 1);
    let (bob_1, bob_1_bundle) = register(&bob, 2);
    let (mut bob_2, bob_2_bundle) = register(&bob, 3);
    let (bob_3, bob_3_bundle) = register(&bob, 4);
    // Mallory publishes her own installation under Bob's address: its association is hers.
    let (_, forged_bundle) = register(&mallory, 5);
    // Bob revokes his third installation.
    let revocation: WalletRevocation =
        block_on(Revocation::create(&bob, bob_3.installation_id(), 6))
            .unwrap()
            .to_proto();

    // Alice lists Bob's installations as the node returns them and verifies each.
    let decode = |b: &Vec<u8>| InstallationPublicKeyBundle::decode(b.as_slice()).unwrap();
    let set = verify_installations(
        &bob.address(),
        &[
            decode(&bob_1_bundle),
            decode(&bob_2_bundle),
            decode(&bob_3_bundle),
            decode(&forged_bundle),
        ],
        &[revocation],
    );
    let ids: Vec<_> = set
        .installations
        .iter()
        .map(|i| i.installation_id())
        .collect();
    assert_eq!(ids, vec![bob_1.installation_id(), bob_2.installation_id()]);
    assert_eq!(set.dropped[0].reason, DropReason::Revoked(6));
    assert_eq!(
        set.dropped[1].reason,
        DropReason::OtherAddress(mallory.address())
    );

    // Alice claims a one-time key of bob_2 (as the node would hand it out) and writes to him.
    let alice_public = VerifiedInstallation::from_bytes(&alice_1_bundle).unwrap();
    let bob_2_public = &set.installations[1];
    let claimed_otk = bob_2.generate_one_time_keys(1)[0].to_proto();
    let claimed = bob_2_public
        .verify_claimed_key(&claimed_otk, PreKeyKind::OneTime)
        .unwrap();
    let mut alice_to_bob = OlmSession::outbound(&alice_1, bob_2_public, &claimed).unwrap();
    let first = alice_to_bob.encrypt(b"hello bob").unwrap().to_parts();

    // Bob receives it off the wire, checks the sender's identity key against Alice's verified bundle.
    let message = OlmCiphertext::from_parts(first.0, &first.1).unwrap();
    assert_eq!(
        message.sender_identity_key(),
        Some(alice_public.identity_key())
    );
    let (bob_session, plaintext) =
        OlmSession::inbound(&mut bob_2, &alice_public, &message).unwrap();
    assert_eq!(plaintext, b"hello bob");

    // Bob restarts: everything comes back from encrypted pickles.
    let storage_key = SecretKey::random();
    let bob_2_pickle = bob_2.pickle(&storage_key).unwrap();
    let session_pickle = bob_session.pickle(&storage_key);
    drop((bob_2, bob_session));
    let bob_2 = InstallationKeys::from_pickle(&bob_2_pickle, &storage_key).unwrap();
    let mut bob_session = OlmSession::from_pickle(&session_pickle, &storage_key).unwrap();
    assert_eq!(bob_2.installation_id(), bob_2_public.installation_id());

    // Bob starts a group and shares its Megolm key with Alice over the Olm session.
    let mut group = OutboundGroupSession::new();
    let key_message = bob_session
        .encrypt(&group.session_key().to_bytes())
        .unwrap();
    let key_bytes = alice_to_bob.decrypt(&key_message).unwrap();
    let mut alice_inbound =
        InboundGroupSession::new(&GroupSessionKey::from_bytes(&key_bytes).unwrap());
    let mut guard = ReplayGuard::new();
    let group_message = group.encrypt(b"welcome to the group");
    assert_eq!(
        alice_inbound
            .decrypt_once(&group_message, &mut guard)
            .unwrap()
            .plaintext,
        b"welcome to the group"
    );
    assert!(alice_inbound
        .decrypt_once(&group_message, &mut guard)
        .is_err());

    // A replay of Alice's first Olm message opens nothing new at Bob's: its one-time key is spent.
    let mut bob_2 = bob_2;
    assert!(OlmSession::inbound(&mut bob_2, &alice_public, &message).is_err());
    // ...but Bob's existing session recognises it as its own.
    assert!(bob_session.matches(&message));
}
