//! Megolm message and session-key decoding and decryption never panic on
//! hostile bytes, and never accept a forged message.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use xmtp_cryptography::megolm::{
    message_index, ExportedGroupSessionKey, GroupSessionKey, InboundGroupSession,
    OutboundGroupSession, ReplayGuard,
};

thread_local! {
    static INBOUND: RefCell<(InboundGroupSession, ReplayGuard)> =
        RefCell::new((InboundGroupSession::new(&OutboundGroupSession::new().session_key()), ReplayGuard::new()));
}

fuzz_target!(|data: &[u8]| {
    let _ = message_index(data);
    let _ = GroupSessionKey::from_bytes(data);
    let _ = ExportedGroupSessionKey::from_bytes(data);
    INBOUND.with(|state| {
        let (inbound, guard) = &mut *state.borrow_mut();
        // The session's sender never sent anything: nothing may decrypt.
        assert!(inbound.decrypt(data).is_err());
        assert!(inbound.decrypt_once(data, guard).is_err());
    });
});
