//! The pure checks the message service runs on decoded requests, applied to
//! whatever a target decoded. (The service's `validate_query` is a method
//! that also counts metrics, so the targets reach its parts that are public
//! functions: `check_topic`, `requires_token`, `allowed_to_publish`.)
#![allow(dead_code)]

use xmtp_node::{
    auth::{allowed_to_publish, requires_token, V3_TOPIC_PREFIX},
    service::{check_topic, MAX_TOPIC_BYTES},
};
use xmtp_proto::xmtp::message_api::v1::{
    BatchQueryRequest, PublishRequest, QueryRequest, SubscribeRequest,
};

/// A fixed EIP-55 wallet for the topic permission check.
pub const WALLET: &str = "0x5d5c99EdF529335160FF180fA141Dd4967fc00D2";

fn topic(t: &str) {
    assert_eq!(
        check_topic(t).is_ok(),
        !t.is_empty() && t.len() <= MAX_TOPIC_BYTES
    );
    let allowed = allowed_to_publish(t, WALLET);
    if !t.starts_with("/xmtp/0/") {
        assert!(allowed);
    }
}

/// The publish checks: token requirement, topics, topic permissions.
pub fn publish(req: &PublishRequest) {
    let needs = requires_token(req);
    if req.envelopes.is_empty() {
        assert!(needs);
    }
    for env in &req.envelopes {
        topic(&env.content_topic);
        if !env.content_topic.starts_with(V3_TOPIC_PREFIX) {
            assert!(needs);
        }
    }
}

/// The query checks on each topic.
pub fn query(req: &QueryRequest) {
    req.content_topics.iter().for_each(|t| topic(t));
}

/// The batch-query checks, one query at a time.
pub fn batch_query(req: &BatchQueryRequest) {
    req.requests.iter().for_each(query);
}

/// The subscribe checks on each topic.
pub fn subscribe(req: &SubscribeRequest) {
    req.content_topics.iter().for_each(|t| topic(t));
}
