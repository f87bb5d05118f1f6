//! XMTP's protocol buffers, and the Rust code generated from them at build time.
//!
//! Every message type implements [`prost::Message`] for the binary encoding and
//! `serde`'s traits for the proto3 JSON mapping (camelCase names, 64-bit
//! integers as decimal strings, bytes as base64), which is what the node's JSON
//! gateway speaks.
//!
//! ```
//! use prost::Message;
//! use xmtp_proto::xmtp::message_api::v1::Envelope;
//!
//! let envelope = Envelope {
//!     content_topic: "/xmtp/0/example/proto".into(),
//!     timestamp_ns: 1,
//!     message: vec![1, 2, 3],
//! };
//! let bytes = envelope.encode_to_vec();
//! assert_eq!(Envelope::decode(bytes.as_slice()).unwrap(), envelope);
//! let json = serde_json::to_string(&envelope).unwrap();
//! assert_eq!(json, r#"{"contentTopic":"/xmtp/0/example/proto","timestampNs":"1","message":"AQID"}"#);
//!
//! // As grpc-gateway does, JSON decoding accepts snake_case names and ignores unknown fields.
//! let parsed: Envelope =
//!     serde_json::from_str(r#"{"content_topic":"/t","timestampNs":"1","message":"AQID","extra":true}"#).unwrap();
//! assert_eq!(parsed.content_topic, "/t");
//! ```

/// The generated packages, laid out as the proto package names.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
pub mod xmtp {
    /// `xmtp.message_api.*`: the node's message API.
    pub mod message_api {
        /// `xmtp.message_api.v1`.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/xmtp.message_api.v1.rs"));
            include!(concat!(env!("OUT_DIR"), "/xmtp.message_api.v1.serde.rs"));
        }
    }
    /// `xmtp.message_contents`: content shared by every protocol version.
    pub mod message_contents {
        include!(concat!(env!("OUT_DIR"), "/xmtp.message_contents.rs"));
        include!(concat!(env!("OUT_DIR"), "/xmtp.message_contents.serde.rs"));
    }
    /// `xmtp.v3.*`: the installation-based protocol.
    pub mod v3 {
        /// `xmtp.v3.message_contents`: associations and key bundles.
        pub mod message_contents {
            include!(concat!(env!("OUT_DIR"), "/xmtp.v3.message_contents.rs"));
            include!(concat!(
                env!("OUT_DIR"),
                "/xmtp.v3.message_contents.serde.rs"
            ));
        }
    }
    /// `xmtp.key_api.*`: the node's pre-key service.
    pub mod key_api {
        /// `xmtp.key_api.v1`.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/xmtp.key_api.v1.rs"));
            include!(concat!(env!("OUT_DIR"), "/xmtp.key_api.v1.serde.rs"));
        }
    }
}

/// The encoded `FileDescriptorSet` of every proto in this crate (for gRPC
/// reflection and for tools).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/xmtp_descriptor.bin"));

pub use prost;
pub use tonic;
