//! The XMTP client: an address talks to an address, and every message reaches
//! every installation of both.
//!
//! An installation (one app on one device) has its own keys; its wallet
//! grants it the right to speak for the address. A direct message is
//! encrypted once per installation of the peer and of the sender, each over
//! its own Olm double-ratchet session, and published to that installation's
//! topic. State (keys, sessions, messages) lives in an SQLite database whose
//! secrets and message bodies are sealed under a database key.
//!
//! ```no_run
//! # async fn example() -> Result<(), xmtp_core::ClientError> {
//! use xmtp_core::{ClientBuilder, MessagePage};
//!
//! let alice = ClientBuilder::new().node_url("http://localhost:5556").build().await?;
//! let bob = ClientBuilder::new().node_url("http://localhost:5556").build().await?;
//! alice.send_text(&bob.address(), "gm").await?;
//! bob.sync().await?;
//! let messages = bob.messages(&alice.address(), &MessagePage::default())?;
//! assert_eq!(messages[0].text().as_deref(), Some("gm"));
//! # Ok(()) }
//! ```

pub mod agent;
mod builder;
mod client;
pub mod contacts;
pub mod content;
mod conversations;
mod error;
mod fanout;
pub mod groups;
mod installation;
pub mod messages;
mod outbox;
pub mod secure_channel;
pub mod sessions;
pub mod storage;
mod stream;
mod sync;
#[cfg(test)]
mod test_support;
mod time;
pub mod v2;

pub use agent::{Agent, AgentBuilder, AgentError, MessageContext, MessageHandler, RunningAgent};
pub use builder::{ClientBuilder, ClientOptions};
pub use client::{installation_topic, Client};
pub use contacts::Installation;
pub use content::{ContentError, ContentType};
pub use conversations::Conversation;
pub use error::ClientError;
pub use groups::{
    group_topic, Group, GroupError, GroupMessageStream, GroupRotation, GroupSyncSummary,
};
pub use messages::{Message, Protocol};
pub use secure_channel::{SealedMessage, SecureChannelError};
pub use storage::{DatabaseKey, MessagePage};
pub use stream::MessageStream;
pub use sync::{EnvelopeResult, FailedEnvelope, SyncSummary};
pub use v2::{V2Error, V2Identity, V2IdentityOrigin};
pub use xmtp_cryptography::{Address, LocalWallet, WalletSigner};
pub use xmtp_proto::xmtp::message_contents::EncodedContent;
