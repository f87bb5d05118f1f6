//! The library half of the example CLI package: the secure-channel HTTP demo
//! (seed 000), shared by `cargo run -p xmtp_cli --example secure_channel_http`
//! and its integration test. The `xmtp` binary itself lives in `main.rs`.

pub mod secure_channel_http;
