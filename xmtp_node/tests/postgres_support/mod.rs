//! Scratch PostgreSQL databases for the `postgres_*` integration tests.
//!
//! The server is `XMTP_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Each test makes its own
//! database, `xmtp_test_<pid>_<nanos>_<n>`, and drops it at the end, so runs
//! do not collide. With `XMTP_SKIP_PG=1` the tests are skipped; otherwise an
//! unreachable server fails them with a message saying what to do.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicUsize, Ordering};

use xmtp_node::store::postgres::{create_database_if_missing, drop_database, with_database};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One fresh database, dropped (sessions included) when this is dropped.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    name: String,
}

impl TestDb {
    /// A new empty database, or `None` when `XMTP_SKIP_PG=1`.
    pub async fn new() -> Option<Self> {
        if std::env::var("XMTP_SKIP_PG").is_ok_and(|v| v == "1") {
            eprintln!("XMTP_SKIP_PG=1: skipping a PostgreSQL test");
            return None;
        }
        let server = std::env::var("XMTP_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "xmtp_test_{}_{}_{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let url = with_database(&server, &name);
        match create_database_if_missing(&url).await {
            Ok(true) => {}
            Ok(false) => panic!("test database {name} already existed"),
            Err(err) => panic!(
                "PostgreSQL is not reachable at XMTP_PG_URL={server}: {err}. \
                 Start it (user postgres, trust auth) or set XMTP_SKIP_PG=1 to skip these tests"
            ),
        }
        Some(Self { url, name })
    }

    /// The URL of a database that does not exist yet (a node is to create
    /// it), dropped like the others at the end; `None` when `XMTP_SKIP_PG=1`.
    pub async fn missing() -> Option<Self> {
        let db = Self::new().await?;
        drop_database(&db.url).await.unwrap();
        Some(db)
    }

    /// A direct connection to the database, for the test's own SQL.
    pub async fn admin(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    /// The maintenance database of the same server.
    pub async fn server_admin(&self) -> tokio_postgres::Client {
        let url = with_database(&self.url, "postgres");
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    /// Terminates every session of this database but the caller's: what the
    /// nodes see when PostgreSQL restarts. Returns how many were ended.
    pub async fn terminate_sessions(&self) -> usize {
        let admin = self.server_admin().await;
        let rows = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&self.name],
            )
            .await
            .unwrap();
        rows.len()
    }

    /// Refuses (or allows again) new connections to this database and ends
    /// the existing ones: an outage that lasts until `set_reachable(true)`.
    pub async fn set_reachable(&self, reachable: bool) {
        let admin = self.server_admin().await;
        let sql = format!(
            "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS {reachable}",
            self.name
        );
        admin.batch_execute(&sql).await.unwrap();
        if !reachable {
            self.terminate_sessions().await;
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let url = self.url.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            if let Err(err) = rt.block_on(drop_database(&url)) {
                eprintln!("could not drop test database: {err}");
            }
        })
        .join();
    }
}
