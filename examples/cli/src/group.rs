//! `xmtp group ...`: create a group, add and remove members, send, list.
//!
//! A group's id (64 hex digits) is also its conversation id, so
//! `xmtp messages <group-id>` shows its messages.

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use xmtp_core::{Client, Group};

use crate::output::Output;

/// What to do with groups.
#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// Create a group with these members (prints the group id).
    Create {
        /// The members' addresses.
        #[arg(required = true)]
        addresses: Vec<String>,
        /// The group's name.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Add a member (admins only).
    Add {
        /// The group id.
        group_id: String,
        /// The address to add.
        address: String,
    },
    /// Remove a member (admins only); the group's keys are rotated.
    Remove {
        /// The group id.
        group_id: String,
        /// The address to remove.
        address: String,
    },
    /// Send a text to a group.
    Send {
        /// The group id.
        group_id: String,
        /// The text to send.
        text: String,
    },
    /// The groups you belong (or belonged) to (after a sync).
    List,
}

fn group_json(g: &Group) -> serde_json::Value {
    json!({
        "type": "group",
        "id": g.id,
        "name": g.name,
        "creator": g.creator,
        "members": g.members,
        "admins": g.admins,
        "version": g.version,
        "is_member": g.is_member,
    })
}

/// Runs a group command.
pub(crate) async fn run(client: &Client, out: Output, command: &GroupCommand) -> Result<()> {
    match command {
        GroupCommand::Create { addresses, name } => {
            let spinner = out.spinner("creating the group");
            let members: Vec<&str> = addresses.iter().map(String::as_str).collect();
            let created = client.create_group(&members, name).await;
            if let Some(bar) = spinner {
                bar.finish_and_clear();
            }
            let id = created?;
            out.emit(json!({"type": "group_created", "id": id}), || id.clone());
        }
        GroupCommand::Add { group_id, address } => {
            client.sync().await?;
            client.add_members(group_id, &[address]).await?;
            out.emit(
                json!({"type": "member_added", "group": group_id, "address": address}),
                || format!("added {address} to {group_id}"),
            );
        }
        GroupCommand::Remove { group_id, address } => {
            client.sync().await?;
            client.remove_members(group_id, &[address]).await?;
            out.emit(
                json!({"type": "member_removed", "group": group_id, "address": address}),
                || format!("removed {address} from {group_id}"),
            );
        }
        GroupCommand::Send { group_id, text } => {
            let spinner = out.spinner("sending");
            let sent = async {
                client.sync().await?;
                client.send_group_text(group_id, text).await
            }
            .await;
            if let Some(bar) = spinner {
                bar.finish_and_clear();
            }
            let message = sent?;
            out.emit(
                json!({"type": "sent", "id": message.id, "conversation": message.conversation_id, "sent_ns": message.sent_ns.to_string()}),
                || format!("sent to group {} (message {})", message.conversation_id, message.id),
            );
        }
        GroupCommand::List => {
            client.sync().await?;
            let groups = client.list_groups()?;
            if groups.is_empty() {
                out.status("no groups yet; create one with `xmtp group create <address>...`");
            }
            for g in &groups {
                out.emit(group_json(g), || {
                    format!(
                        "{}  {:?}  {} members{}",
                        g.id,
                        g.name,
                        g.members.len(),
                        if g.is_member {
                            ""
                        } else {
                            "  (left or removed)"
                        }
                    )
                });
            }
        }
    }
    Ok(())
}
