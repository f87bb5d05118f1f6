//! Writes a corpus of XMTP V2 messages in one conversation to a JSON file, for
//! the side-by-side decrypt + verify benchmark of our reader
//! (`benches/v2_decrypt.rs`) and xmtp-js 13's
//! (`interop/xmtp-js/bench/v2_decrypt.cjs`).
//!
//! ```text
//! cargo run -p xmtp_cryptography --release --example v2_corpus -- OUT.json [MESSAGES] [SEED]
//! ```
//!
//! MESSAGES defaults to 10,000. The same seed gives the same file.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

#[path = "../benches/support/v2_corpus.rs"]
mod v2_corpus;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first() else {
        eprintln!("usage: v2_corpus OUT.json [MESSAGES] [SEED]");
        return ExitCode::from(2);
    };
    let parse = |i: usize, default: u64| -> Option<u64> {
        args.get(i).map_or(Some(default), |s| s.parse().ok())
    };
    let (Some(count), Some(seed)) = (
        parse(1, v2_corpus::DEFAULT_MESSAGES as u64),
        parse(2, v2_corpus::DEFAULT_SEED),
    ) else {
        eprintln!("MESSAGES and SEED are numbers");
        return ExitCode::from(2);
    };
    let started = std::time::Instant::now();
    let corpus = v2_corpus::generate(count as usize, seed);
    let json = serde_json::to_string(&corpus).expect("corpus serialises");
    if let Err(e) = std::fs::write(out, json) {
        eprintln!("cannot write {out}: {e}");
        return ExitCode::FAILURE;
    }
    let bytes: usize = corpus.messages.iter().map(|m| m.bytes.len() / 2).sum();
    let text: usize = corpus.messages.iter().map(|m| m.text.len()).sum();
    println!(
        "{out}: {} messages ({} bytes encoded, texts {} bytes on average), {} tampered, topic {}, in {:.1} s",
        corpus.messages.len(),
        bytes,
        text / corpus.messages.len().max(1),
        corpus.tampered.len(),
        corpus.topic,
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
