//! The node's token check on the `Authorization` header value:
//! `auth::decode_authorization` + `auth::verify_token`, and the cached
//! `Authenticator::verify`, never panic and agree; a token the node accepts
//! is also accepted by the library's independent `v2::authn::verify_token`
//! for the same wallet. The input is the header value (as text) and, as
//! bytes, an encoded `Token`.
#![no_main]

use std::{cell::RefCell, time::Duration};

use libfuzzer_sys::fuzz_target;
use prost::Message;
use xmtp_cryptography::v2::authn;
use xmtp_node::auth::{
    decode_authorization, verify_token, Authenticator, VerifiedToken, DEFAULT_TOKEN_LIFETIME,
};
use xmtp_proto::xmtp::message_api::v1::Token;

/// A fixed "now": shortly after the own vectors' token (1.7e18 ns).
const NOW_NS: u64 = 1_700_000_000_000_000_000 + 60_000_000_000;

thread_local! {
    static AUTH: RefCell<Authenticator> =
        RefCell::new(Authenticator::new(true, DEFAULT_TOKEN_LIFETIME));
}

fn cross_check(token: &Token, node: &VerifiedToken) {
    let library = authn::verify_token(token).expect("the library accepts what the node accepts");
    assert_eq!(library.wallet_address.to_checksum(), node.wallet);
    assert_eq!(library.created_ns, node.created_ns);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = std::str::from_utf8(data) {
        let direct = decode_authorization(value).and_then(|token| {
            verify_token(&token, NOW_NS, DEFAULT_TOKEN_LIFETIME).map(|v| (token, v))
        });
        let cached = AUTH.with(|auth| auth.borrow().verify(value, NOW_NS));
        match (&direct, &cached) {
            (Ok((token, a)), Ok(b)) => {
                assert_eq!(a, b);
                cross_check(token, a);
            }
            (Err(_), Err(_)) => {}
            _ => panic!("Authenticator::verify disagrees with decode + verify"),
        }
    }
    if let Ok(token) = Token::decode(data) {
        // Without the age limit: only the signatures and the wallet count.
        if let Ok(verified) = verify_token(&token, 0, Duration::MAX) {
            cross_check(&token, &verified);
        }
    }
});
