//! Placeholder until the client bench lands.
#![allow(missing_docs)]
fn main() {}
