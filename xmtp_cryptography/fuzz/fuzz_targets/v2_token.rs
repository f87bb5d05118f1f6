//! Node tokens: `authn::decode_token` (from text) and `verify_token` (on
//! tokens decoded from text or straight from bytes) never panic, and a token
//! that verifies names the wallet of its identity key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use xmtp_cryptography::v2::authn;
use xmtp_proto::xmtp::message_api::v1::{AuthData, Token};

fn check(token: &Token) {
    if let Ok(verified) = authn::verify_token(token) {
        let auth_data =
            AuthData::decode(token.auth_data_bytes.as_slice()).expect("verified auth data decodes");
        assert_eq!(auth_data.created_ns, verified.created_ns);
        assert_eq!(
            auth_data.wallet_addr.parse().ok(),
            Some(verified.wallet_address)
        );
        // The bearer form of the same token decodes back to it.
        let bearer = authn::bearer(token);
        let text = bearer.strip_prefix("Bearer ").expect("bearer prefix");
        assert_eq!(authn::decode_token(text).ok().as_ref(), Some(token));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(token) = authn::decode_token(text) {
            check(&token);
        }
    }
    if let Ok(token) = Token::decode(data) {
        check(&token);
    }
});
