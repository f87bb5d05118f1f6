//! Turns any failure into one line that tells the user what to do.
//!
//! The client's typed errors ([`ClientError`], and the node API's
//! [`ApiError`] inside it) already say what went wrong; here the common
//! cases get the CLI's own remedies (which flag or variable to set).

use xmtp_core::{storage::StorageError, ClientError};
use xmtp_networking::ApiError;

/// One line (no newline) explaining `error` to a user of node `node`.
pub(crate) fn explain(error: &anyhow::Error, node: &str) -> String {
    let text = match error.downcast_ref::<ClientError>() {
        Some(e) => explain_client(e, node),
        None => format!("{error:#}"),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn explain_client(error: &ClientError, node: &str) -> String {
    match error {
        ClientError::Api(api) => explain_api(api, node),
        ClientError::Connect { url, .. } => unreachable_node(url),
        ClientError::Storage(StorageError::Sealed(_)) => {
            "the database does not open with this key: set XMTP_DB_KEY to the key it was created with, or use another --db".into()
        }
        ClientError::Storage(StorageError::Sqlite(e)) => {
            format!("cannot use the database ({e}); check the --db path and that no other program holds it")
        }
        ClientError::Queued { message_id, .. } => format!(
            "message {message_id} is saved but the node could not be reached to deliver it; it will be sent by the next command that reaches {node}"
        ),
        ClientError::NoWallet => {
            "this needs the wallet that owns this installation: set XMTP_WALLET_KEY to its private key (hex)".into()
        }
        other => other.to_string(),
    }
}

fn explain_api(error: &ApiError, node: &str) -> String {
    match error {
        ApiError::Connect { .. } | ApiError::Unavailable(_) | ApiError::DeadlineExceeded(_) => {
            unreachable_node(node)
        }
        other => format!("the node at {node} refused the request: {other}"),
    }
}

fn unreachable_node(node: &str) -> String {
    format!(
        "cannot reach the node at {node}: start one with `dev/up`, or point --node (or XMTP_NODE) at a running node"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_are_one_line_with_a_remedy() {
        let e = anyhow::Error::from(ClientError::Api(ApiError::Unavailable("x\ny".into())));
        let line = explain(&e, "http://127.0.0.1:1");
        assert!(!line.contains('\n'));
        assert!(line.contains("dev/up"), "{line}");
        let e = anyhow::Error::from(ClientError::InvalidAddress("bob".into()));
        assert!(explain(&e, "n").contains("0x followed by 40 hex digits"));
        let e = anyhow::anyhow!("outer").context("context");
        assert_eq!(explain(&e, "n"), "context: outer");
    }
}
