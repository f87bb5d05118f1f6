//! Protobuf decoding of the gRPC requests (PublishRequest, QueryRequest,
//! BatchQueryRequest, SubscribeRequest) never panics; whatever decodes
//! re-encodes to bytes that decode to the same request, and passes through
//! the service's pure checks without panicking.
#![no_main]

mod node_checks;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use xmtp_proto::xmtp::message_api::v1::{
    BatchQueryRequest, PublishRequest, QueryRequest, SubscribeRequest,
};

fn decode<T: Message + Default + PartialEq>(data: &[u8]) -> Option<T> {
    let value = T::decode(data).ok()?;
    let again = T::decode(value.encode_to_vec().as_slice()).expect("re-encoded bytes decode");
    assert!(again == value, "re-encoding changed the request");
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
});
