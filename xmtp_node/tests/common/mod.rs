//! Helpers shared by the integration tests: a node, clients, envelopes.
#![allow(dead_code, unreachable_pub)]

use futures::StreamExt;
use tonic::transport::Channel;
use xmtp_node::{Node, NodeConfig, RunningNode};
use xmtp_proto::xmtp::message_api::v1::{
    message_api_client::MessageApiClient, Envelope, PagingInfo, QueryRequest, SortDirection,
};

pub type Client = MessageApiClient<Channel>;

pub async fn start() -> RunningNode {
    Node::start(NodeConfig::default()).await.unwrap()
}

pub async fn client(node: &RunningNode) -> Client {
    MessageApiClient::connect(node.grpc_url())
        .await
        .unwrap()
        .max_decoding_message_size(64 << 20)
}

pub fn env(topic: &str, t: u64, msg: impl AsRef<[u8]>) -> Envelope {
    Envelope {
        content_topic: topic.into(),
        timestamp_ns: t,
        message: msg.as_ref().to_vec(),
    }
}

pub fn query(topic: &str, direction: SortDirection, limit: u32) -> QueryRequest {
    QueryRequest {
        content_topics: vec![topic.into()],
        paging_info: Some(PagingInfo {
            limit,
            cursor: None,
            direction: direction.into(),
        }),
        ..Default::default()
    }
}

/// Every page of `q`, in order, checking each page's size.
pub async fn query_all(client: &mut Client, mut q: QueryRequest) -> Vec<Envelope> {
    let limit = q
        .paging_info
        .as_ref()
        .map(|p| p.limit)
        .filter(|l| *l > 0)
        .unwrap_or(100)
        .min(100) as usize;
    let mut out = Vec::new();
    loop {
        let resp = client.query(q.clone()).await.unwrap().into_inner();
        assert!(resp.envelopes.len() <= limit);
        let paging = resp.paging_info.unwrap();
        out.extend(resp.envelopes);
        match paging.cursor {
            Some(cursor) => {
                q.paging_info.get_or_insert_with(Default::default).cursor = Some(cursor)
            }
            None => return out,
        }
    }
}

/// Reads `n` items of a stream of envelopes.
pub async fn take<S>(stream: &mut S, n: usize) -> Vec<Envelope>
where
    S: futures::Stream<Item = Result<Envelope, tonic::Status>> + Unpin,
{
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.push(
            stream
                .next()
                .await
                .expect("stream ended early")
                .expect("stream failed"),
        );
    }
    out
}
