//! PostgreSQL for the tests: a fresh database per test on the server of `DATABASE_URL`
//! (`./tests/run` sets it), dropped afterwards, so tests never share state.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::require_database;

/// Runs `f` to completion on a new current-thread tokio runtime (for sqlx calls in sync tests).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// A database `PREFIX_<pid>_<n>` created on the PostgreSQL server of `DATABASE_URL` and
/// dropped (`WITH (FORCE)`) when this value is dropped.
#[derive(Debug)]
pub struct PgDatabase {
    /// The URL of the new database (same server and credentials as `DATABASE_URL`).
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// A fresh database; `None` (the test then returns) when `DATABASE_URL` is not set outside
    /// CI, a panic under `CI=true` ([`require_database`]).
    pub fn create(prefix: &str) -> Option<PgDatabase> {
        let admin_url = require_database()?;
        Some(PgDatabase::create_on(&admin_url, prefix))
    }

    /// A fresh database on the server of `admin_url` (a URL of any database there).
    pub fn create_on(admin_url: &str, prefix: &str) -> PgDatabase {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        admin_sql(admin_url, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("create test database {name}: {e}"));
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url, |(base, _)| base);
        PgDatabase {
            url: format!("{base}/{name}"),
            admin_url: admin_url.to_string(),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // On a thread of its own: the value may be dropped inside another tokio runtime.
        let (admin, sql) = (
            self.admin_url.clone(),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        let dropped = std::thread::spawn(move || admin_sql(&admin, &sql)).join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// Runs one statement on the database of `admin_url` over a connection of its own.
fn admin_sql(admin_url: &str, sql: &str) -> Result<(), sqlx::Error> {
    block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(admin_url)
            .await?;
        let done = sqlx::query(sql).execute(&pool).await.map(|_| ());
        pool.close().await;
        done
    })
}
