//! uniffi bindings of `xmtp_core` for Kotlin, Swift and Python.
//!
//! The crate builds a cdylib (Android's `.so`, Python's `ctypes` library)
//! and a staticlib (iOS); `uniffi-bindgen` generates the foreign code from
//! the built library (`dev/gen-bindings`). The exported surface:
//!
//! - [`create_client`] (async) -> [`FfiClient`]: `send`, `sync`,
//!   `list_conversations`, `messages`, `stream` (a foreign
//!   [`FfiMessageCallback`], an [`FfiStreamHandle`] to close), `installations`,
//!   `revoke`, the secure channel `encrypt` / `decrypt`, and groups
//!   (`create_group`, `send_group`, `list_groups` -> [`FfiGroup`],
//!   `group_messages`, `add_group_members`, `remove_group_members`,
//!   `leave_group`, `stream_group`).
//! - [`FfiWalletSigner`]: the app's wallet as a foreign trait, and
//!   [`FfiLocalWallet`], a local key for tests.
//! - Records ([`FfiMessage`], [`FfiConversation`], ...) and the typed
//!   exception [`FfiError`].
//! - XMTP V1/V2, to talk to the users of XMTP's SDKs: `enable_v2` ->
//!   [`FfiV2Identity`], `v2_identity`, `can_message_v2`, `send_v2`,
//!   `send_auto` (Olm when the peer has our installations, else V2) and
//!   `messages_with` (every protocol); each [`FfiMessage`] says its
//!   [`FfiProtocol`].
//! - `FfiClient.start_agent` (a foreign [`FfiAgentHandler`] answers each new
//!   message) -> [`FfiAgentHandle`].
//! - [`set_logger`]: the library's `tracing` logs to a foreign [`FfiLogger`].
//!
//! From Python, after `dev/gen-bindings`:
//!
//! ```text
//! import asyncio
//! from bindings_ffi import create_client, FfiLocalWallet
//!
//! async def main():
//!     alice = await create_client("http://localhost:5556", None, b"", FfiLocalWallet().as_signer())
//!     bob = await create_client("http://localhost:5556", None, b"", None)
//!     await alice.send(bob.address(), "gm")
//!     await bob.sync()
//!     print(bob.messages(alice.address())[0].text)
//!
//! asyncio.run(main())
//! ```
//!
//! The same calls from Rust (the exported functions are plain Rust too):
//!
//! ```no_run
//! # async fn example() -> Result<(), bindings_ffi::FfiError> {
//! let alice = bindings_ffi::create_client("http://localhost:5556".into(), None, vec![], None).await?;
//! let bob = bindings_ffi::create_client("http://localhost:5556".into(), None, vec![], None).await?;
//! alice.send(bob.address(), "gm".into()).await?;
//! bob.sync().await?;
//! assert_eq!(bob.messages(alice.address(), None)?[0].text.as_deref(), Some("gm"));
//! # Ok(()) }
//! ```

mod agent;
mod client;
mod error;
mod logging;
mod records;
mod signer;
mod stream;

pub use agent::{FfiAgentHandle, FfiAgentHandler};
pub use client::{create_client, FfiClient};
pub use error::{FfiCallbackError, FfiError, FfiSignerError};
pub use logging::{clear_logger, set_logger, FfiLogLevel, FfiLogger};
pub use records::{
    text_content_type, FfiConversation, FfiGroup, FfiInstallation, FfiMessage, FfiPaging,
    FfiProtocol, FfiSealed, FfiSyncSummary, FfiV2Identity, FfiV2IdentityOrigin,
};
pub use signer::{recover_signer, FfiLocalWallet, FfiWalletSigner};
pub use stream::{FfiMessageCallback, FfiStreamHandle};

uniffi::setup_scaffolding!();
