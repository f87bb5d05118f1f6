//! Where the CLI keeps its database and the database's key.
//!
//! ```text
//! database  --db PATH | $XMTP_DB | $XDG_DATA_HOME/xmtp/xmtp.db3 | ~/.local/share/xmtp/xmtp.db3
//! db key    $XMTP_DB_KEY (64 hex digits)
//!           | key file  $XDG_CONFIG_HOME/xmtp/db-keys/<first 16 bytes of sha256(absolute db path), hex>.key
//!                       (default ~/.config/xmtp/...; directory 0700, file 0600; created on first use)
//! ```
//!
//! The trade-off: the database seals every secret and message body under its
//! key, so the key must not sit in plaintext beside the file (a copy of the
//! data directory, a backup or a synced folder would then carry both). It is
//! kept in a separate per-user configuration directory, readable only by the
//! user, so that the CLI does not ask for it on every command. That protects
//! against the database file leaking alone, not against malware running as
//! the user; whoever wants more supplies the key from a password manager or
//! keystore through `XMTP_DB_KEY`, and no key file is written then.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use xmtp_core::DatabaseKey;

/// The default database path, in the user's data directory.
pub(crate) fn default_db_path() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => home()?.join(".local").join("share"),
    };
    Ok(base.join("xmtp").join("xmtp.db3"))
}

fn config_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => home()?.join(".config"),
    };
    Ok(base.join("xmtp"))
}

fn home() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("HOME is not set; pass --db PATH and set XMTP_DB_KEY"))
}

/// Where the key of the database at `db` is kept (when not given by env).
pub(crate) fn key_file_for(db: &Path) -> Result<PathBuf> {
    let digest = Sha256::digest(db.as_os_str().as_encoded_bytes());
    Ok(config_dir()?
        .join("db-keys")
        .join(format!("{}.key", hex::encode(&digest[..16]))))
}

/// Makes `db` absolute (without requiring it to exist) and creates its folder.
pub(crate) fn prepare_db_path(db: &Path) -> Result<PathBuf> {
    let absolute = if db.is_absolute() {
        db.to_path_buf()
    } else {
        std::env::current_dir()
            .context("cannot read the current directory")?
            .join(db)
    };
    if let Some(parent) = absolute.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the folder {}", parent.display()))?;
    }
    Ok(absolute)
}

/// Parses 64 hex digits into a key.
pub(crate) fn parse_key_hex(text: &str, what: &str) -> Result<[u8; 32]> {
    let bytes = hex::decode(text.trim().trim_start_matches("0x"))
        .map_err(|_| anyhow!("{what} must be 64 hex digits"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| anyhow!("{what} must be 64 hex digits"))
}

/// The database key: `$XMTP_DB_KEY`, else the key file, else a new random
/// key written to the key file (only if the database does not exist yet:
/// a missing key for an existing database is an error, not a new key).
pub(crate) fn database_key(db: &Path) -> Result<DatabaseKey> {
    if let Some(hex_key) = std::env::var("XMTP_DB_KEY").ok().filter(|v| !v.is_empty()) {
        return Ok(DatabaseKey::from_bytes(parse_key_hex(
            &hex_key,
            "XMTP_DB_KEY",
        )?));
    }
    let file = key_file_for(db)?;
    match fs::read_to_string(&file) {
        Ok(text) => {
            let key = parse_key_hex(&text, &format!("the key file {}", file.display()))?;
            return Ok(DatabaseKey::from_bytes(key));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("cannot read the key file {}: {e}", file.display()),
    }
    if db.exists() {
        bail!(
            "no key for the database {}: set XMTP_DB_KEY to the key it was created with (expected it in {})",
            db.display(),
            file.display()
        );
    }
    let key = DatabaseKey::random();
    write_private(&file, hex::encode(key.as_bytes()).as_bytes())?;
    tracing::info!(file = %file.display(), "stored a new database key");
    Ok(key)
}

/// Writes a file readable only by the user (0600, folder 0700 on Unix).
fn write_private(file: &Path, contents: &[u8]) -> Result<()> {
    let dir = file
        .parent()
        .ok_or_else(|| anyhow!("bad key file path {}", file.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
        options.mode(0o600);
    }
    let mut f = options
        .open(file)
        .with_context(|| format!("cannot create the key file {}", file.display()))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write the key file {}", file.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_depends_on_the_database_path() {
        let a = key_file_for(Path::new("/tmp/a.db3")).unwrap();
        let b = key_file_for(Path::new("/tmp/b.db3")).unwrap();
        assert_ne!(a, b);
        assert!(a.to_string_lossy().ends_with(".key"));
    }

    #[test]
    fn hex_keys_must_be_32_bytes() {
        assert_eq!(parse_key_hex(&"ab".repeat(32), "k").unwrap(), [0xab; 32]);
        assert!(parse_key_hex("abcd", "k").is_err());
        assert!(parse_key_hex(&"zz".repeat(32), "k").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys").join("k.key");
        write_private(&file, b"secret").unwrap();
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(file.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert!(write_private(&file, b"again").is_err(), "never overwrites");
    }
}
