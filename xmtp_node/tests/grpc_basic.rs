#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! A node started in-process answers every RPC over gRPC.

use futures::StreamExt;
use xmtp_node::{Node, NodeConfig};
use xmtp_proto::xmtp::message_api::v1::{
    message_api_client::MessageApiClient, Envelope, PublishRequest, QueryRequest, SubscribeRequest,
};

#[tokio::test]
async fn publish_subscribe_and_query_over_grpc() {
    let node = Node::start(NodeConfig::default()).await.unwrap();
    let mut client = MessageApiClient::connect(node.grpc_url()).await.unwrap();
    let topic = "/xmtp/3/installation-00/proto".to_owned();
    let mut stream = client
        .subscribe(SubscribeRequest {
            content_topics: vec![topic.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    let env = Envelope {
        content_topic: topic.clone(),
        timestamp_ns: 42,
        message: b"hello".to_vec(),
    };
    client
        .publish(PublishRequest {
            envelopes: vec![env.clone()],
        })
        .await
        .unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), env);

    let page = client
        .query(QueryRequest {
            content_topics: vec![topic],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.envelopes, vec![env]);
    node.shutdown().await;
    assert!(
        stream.next().await.is_none_or(|item| item.is_err()),
        "the stream ends at shutdown"
    );
}
