//! How results are printed: human lines, or one JSON object a line (`--json`).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use xmtp_core::{Conversation, Installation, Message};

/// Prints results in the chosen format.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    pub(crate) json: bool,
}

impl Output {
    /// Prints one JSON object, or the human text.
    pub(crate) fn emit(&self, value: Value, human: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", human());
        }
    }

    /// A spinner on stderr for a long operation, only when a person watches.
    pub(crate) fn spinner(&self, message: &'static str) -> Option<ProgressBar> {
        if self.json || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(message);
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        Some(bar)
    }

    /// A status line for people (stderr, so it never mixes with results).
    pub(crate) fn status(&self, text: &str) {
        if !self.json {
            eprintln!("{text}");
        }
    }

    /// Prints a message.
    pub(crate) fn message(&self, m: &Message, own_address: &str, with_conversation: bool) {
        let outgoing = m.sender_address.eq_ignore_ascii_case(own_address);
        self.emit(message_json(m, outgoing), || {
            let who = if outgoing { "me" } else { &m.sender_address };
            let mark = match m.protocol {
                xmtp_core::Protocol::V2 => " [v2]",
                xmtp_core::Protocol::V1 => " [v1]",
                _ => "",
            };
            let body = m
                .display_text()
                .unwrap_or_else(|| format!("<{} content>", m.content_type()));
            if with_conversation {
                format!(
                    "{}{mark} [{}] {who}: {body}",
                    format_time(m.sent_ns),
                    m.conversation_id
                )
            } else {
                format!("{}{mark} {who}: {body}", format_time(m.sent_ns))
            }
        });
    }

    /// Prints a conversation with its newest message.
    pub(crate) fn conversation(&self, c: &Conversation, own_address: &str) {
        let last = c.last_message.as_ref();
        let value = json!({
            "type": "conversation",
            "id": c.id,
            "kind": c.kind,
            "peer_address": c.peer_address,
            "last_message_ns": c.last_message_ns.to_string(),
            "last_message": last.map(|m| message_json(m, m.sender_address.eq_ignore_ascii_case(own_address))),
        });
        self.emit(value, || {
            let preview = last
                .and_then(|m| m.display_text())
                .unwrap_or_else(|| "(no messages)".into());
            format!(
                "{}  {}  {}",
                c.id,
                format_time(c.last_message_ns),
                preview.replace('\n', " ")
            )
        });
    }

    /// Prints an installation.
    pub(crate) fn installation(&self, i: &Installation) {
        self.emit(
            json!({
                "type": "installation",
                "id": i.id,
                "address": i.address,
                "created_ns": i.created_ns.to_string(),
                "current": i.is_current,
            }),
            || {
                let mark = if i.is_current { "  (this one)" } else { "" };
                format!("{}  created {}{mark}", i.id, format_time(i.created_ns))
            },
        );
    }
}

fn message_json(m: &Message, outgoing: bool) -> Value {
    json!({
        "type": "message",
        "id": m.id,
        "conversation": m.conversation_id,
        "sender": m.sender_address,
        "sender_installation": m.sender_installation_id,
        "sent_ns": m.sent_ns.to_string(),
        "content_type": m.content_type(),
        "text": m.display_text(),
        "outgoing": outgoing,
        "protocol": m.protocol.as_str(),
    })
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) from nanoseconds since the Unix epoch.
pub(crate) fn format_time(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Days to civil date (Howard Hinnant's algorithm, proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_formatted_in_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        // 2024-02-29 12:34:56 UTC
        assert_eq!(
            format_time(1_709_210_096 * 1_000_000_000),
            "2024-02-29 12:34:56"
        );
        // 2000-12-31 23:59:59 UTC
        assert_eq!(format_time(978_307_199_000_000_000), "2000-12-31 23:59:59");
    }
}
