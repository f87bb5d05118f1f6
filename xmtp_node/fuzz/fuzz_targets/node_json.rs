//! The JSON gateway's body decoding (`gateway::decode_body`, what every
//! `POST /message/v1/...` route runs on its body) into the publish, query,
//! batch-query, subscribe and subscribe-all requests never panics; whatever
//! decodes re-encodes to JSON that decodes to the same request, and passes
//! through the service's pure checks without panicking.
#![no_main]

mod node_checks;

use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use xmtp_node::gateway::decode_body;
use xmtp_proto::xmtp::message_api::v1::{
    BatchQueryRequest, PublishRequest, QueryRequest, SubscribeAllRequest, SubscribeRequest,
};

fn decode<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) -> Option<T> {
    let value: T = decode_body(data).ok()?;
    // Serialising may refuse (e.g. an unknown enum value); what it writes must decode back.
    if let Ok(json) = serde_json::to_vec(&value) {
        let again: T = decode_body(&json).expect("re-encoded JSON decodes");
        assert_eq!(again, value);
    }
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    if let Some(req) = decode::<PublishRequest>(data) {
        node_checks::publish(&req);
    }
    if let Some(req) = decode::<QueryRequest>(data) {
        node_checks::query(&req);
    }
    if let Some(req) = decode::<BatchQueryRequest>(data) {
        node_checks::batch_query(&req);
    }
    if let Some(req) = decode::<SubscribeRequest>(data) {
        node_checks::subscribe(&req);
    }
    let _ = decode::<SubscribeAllRequest>(data);
});
