//! `https://` against a real node: a TLS terminator (tokio-rustls, with the
//! test certificate in `tests/fixtures`) in front of the node's plaintext gRPC
//! port. The client trusts the test CA and works end to end; without it, the
//! certificate is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;

use common::{envelope, quick_retries, start_node, topic};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;
use xmtp_networking::{ApiError, ClientOptions, GrpcClient, XmtpApi};
use xmtp_proto::xmtp::message_api::v1::SortDirection;

const CA: &[u8] = include_bytes!("fixtures/ca.pem");
const CERT: &[u8] = include_bytes!("fixtures/localhost.pem");
const KEY: &[u8] = include_bytes!("fixtures/localhost.key");

/// Accepts TLS (ALPN h2) on a free port and pipes each connection to
/// `backend`; returns the port. The task ends with the test's runtime.
async fn tls_terminator(backend: std::net::SocketAddr) -> u16 {
    let certs = vec![CertificateDer::from_pem_slice(CERT).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn https_with_a_trusted_ca_reaches_the_node() {
    let node = start_node().await;
    let port = tls_terminator(node.grpc_addr()).await;
    let options = ClientOptions::default()
        .with_retry(quick_retries(3))
        .with_ca_certificate(CA, true);
    let api = GrpcClient::connect_with_options(&format!("https://localhost:{port}"), options)
        .await
        .unwrap();

    let topic = topic("tls");
    let sent = vec![envelope(&topic, 1, 1), envelope(&topic, 2, 2)];
    api.publish(sent.clone()).await.unwrap();
    assert_eq!(
        api.query_all(&topic, 0, 0, SortDirection::Ascending)
            .await
            .unwrap(),
        sent
    );
    node.shutdown().await;
}

#[tokio::test]
async fn https_refuses_a_certificate_from_an_untrusted_ca() {
    let node = start_node().await;
    let port = tls_terminator(node.grpc_addr()).await;
    // The platform's roots only: the test CA is not among them.
    let options = ClientOptions::default().with_retry(quick_retries(2));
    let api = GrpcClient::connect_lazy(&format!("https://localhost:{port}"), options).unwrap();
    let result = api
        .publish(vec![envelope(&topic("tls-refused"), 1, 1)])
        .await;
    match result {
        Err(ApiError::Unavailable(message)) => {
            assert!(
                message.contains("certificate"),
                "refused for another reason: {message}"
            )
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    node.shutdown().await;
}
