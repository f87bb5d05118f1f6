//! What the node benchmarks share: the envelopes they publish, gRPC clients
//! over loopback, the publish load, the delivery-latency run, and the
//! percentiles and summary they print.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use futures::StreamExt;
use tonic::transport::Channel;
use xmtp_node::RunningNode;
use xmtp_proto::xmtp::message_api::v1::{
    message_api_client::MessageApiClient, Envelope, PublishRequest, SubscribeRequest,
};

/// A gRPC client of the message API.
pub(crate) type Client = MessageApiClient<Channel>;

/// How many concurrent clients publish.
pub(crate) const CLIENTS: usize = 16;
const ENVELOPE_BYTES: usize = 1024;

/// Whether `XMTP_BENCH_QUICK=1` asks for shorter fixed-size runs.
pub(crate) fn quick() -> bool {
    std::env::var("XMTP_BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// A sender time unique across the whole run, so no publish is a duplicate.
static CLOCK: AtomicU64 = AtomicU64::new(1);

/// A 1 KiB envelope on `topic` whose first 8 bytes are its sender time.
pub(crate) fn envelope(topic: &str) -> Envelope {
    let t = CLOCK.fetch_add(1, Ordering::Relaxed);
    let mut message = vec![0u8; ENVELOPE_BYTES];
    message[..8].copy_from_slice(&t.to_le_bytes());
    Envelope {
        content_topic: topic.to_owned(),
        timestamp_ns: t,
        message,
    }
}

/// A client on its own connection to `node`.
pub(crate) async fn connect(node: &RunningNode) -> Client {
    MessageApiClient::connect(node.grpc_url())
        .await
        .unwrap()
        .max_decoding_message_size(16 << 20)
}

/// `n` clients, each on its own connection, spread round-robin over the nodes.
pub(crate) async fn clients(nodes: &[RunningNode], n: usize) -> Vec<Client> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(connect(&nodes[i % nodes.len()]).await);
    }
    out
}

/// `total` single-envelope publishes spread over the clients; returns the
/// elapsed time.
pub(crate) async fn publish_load(clients: &[Client], total: u64) -> Duration {
    let start = Instant::now();
    let n = clients.len() as u64;
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut c = c.clone();
            let count = total / n + u64::from((i as u64) < total % n);
            tokio::spawn(async move {
                let topic = format!("/bench/publish-{i}/proto");
                for _ in 0..count {
                    c.publish(PublishRequest {
                        envelopes: vec![envelope(&topic)],
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// Publishes `n` envelopes at `rate` per second (open loop: each on its own
/// task at its tick) from 4 clients alternating over the nodes, to a
/// subscriber on the last node; returns each publish-to-delivery latency.
pub(crate) async fn delivery_latencies(
    nodes: &[RunningNode],
    n: usize,
    rate: u64,
) -> Vec<Duration> {
    let topic = "/bench/delivery/proto";
    let mut sub_client = connect(&nodes[nodes.len() - 1]).await;
    let mut stream = sub_client
        .subscribe(SubscribeRequest {
            content_topics: vec![topic.into()],
        })
        .await
        .unwrap()
        .into_inner();
    let publishers = clients(nodes, 4).await;
    let base = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(n);
        while latencies.len() < n {
            let env = stream.next().await.unwrap().unwrap();
            let now = base.elapsed().as_nanos() as u64;
            let sent = u64::from_le_bytes(env.message[8..16].try_into().unwrap());
            latencies.push(Duration::from_nanos(now - sent));
        }
        latencies
    });
    // Let the subscription settle before the clock starts.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sends = Vec::with_capacity(n);
    for i in 0..n {
        ticker.tick().await;
        let mut c = publishers[i % publishers.len()].clone();
        let mut e = envelope(topic);
        let sent = base.elapsed().as_nanos() as u64;
        e.message[8..16].copy_from_slice(&sent.to_le_bytes());
        sends.push(tokio::spawn(async move {
            c.publish(PublishRequest { envelopes: vec![e] })
                .await
                .unwrap()
        }));
    }
    for s in sends {
        s.await.unwrap();
    }
    receiver.await.unwrap()
}

/// The median and the 99th percentile of the samples.
pub(crate) fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let n = samples.len();
    (samples[n / 2], samples[(n * 99 / 100).min(n - 1)])
}

/// `d` in milliseconds, to the microsecond.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Ends criterion's report and prints the summary lines under `title`, with
/// the number of cores.
pub(crate) fn print_summary(criterion: &mut criterion::Criterion, title: &str, summary: &[String]) {
    criterion.final_summary();
    println!(
        "\n== {title} ({} cores) ==",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for line in summary {
        println!("{line}");
    }
}
