//! The gateway's database: clients, keys and grants, submissions and the hash-chained audit
//! trail. The only SQL in signgate lives here; no domain rules (who may do what is `api`'s job).
//!
//! [`Store`] has two backends over sqlx: embedded SQLite (a file in the data folder, WAL) and
//! PostgreSQL. Both run the same statements (`$N` placeholders work in both); the schemas
//! live in `migrations/sqlite` and `migrations/postgres` and are applied by [`Store::open`].

pub mod accounts;
pub mod audit;
pub mod batches;
pub mod directory;
pub mod idempotency;
pub mod lease;
pub mod routing;
pub mod webhooks;

use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

pub use accounts::{SessionRow, UserRow};
pub use audit::{AuditEntry, AuditRecord, ChainCheck};
pub use batches::{BatchDocument, BatchRecord};
pub use directory::{ChangeRow, OwnerMove, UnitRow};
pub use lease::Lease;

/// A database failure; reaches API clients only as `INTERNAL`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The driver failed (connection, SQL, constraint).
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed at start-up.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A group commit failed (the driver's message, shared by every record of the group).
    #[error("database: {0}")]
    Group(String),
    /// A stored value is not what this version wrote.
    #[error("database holds an unexpected value: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Always [`ErrorCode::Internal`](crate::code::ErrorCode::Internal): the caller did
    /// nothing wrong.
    pub fn code(&self) -> crate::code::ErrorCode {
        crate::code::ErrorCode::Internal
    }
}

/// The database, SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub enum Store {
    /// Embedded SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to the backend's pool (the statements are the same for both).
macro_rules! with_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match $store {
            Store::Sqlite($p) => $body,
            Store::Postgres($p) => $body,
        }
    };
}
pub(crate) use with_pool;

/// A calling system.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Client {
    /// Client id (`cl_…`).
    pub id: String,
    /// The agency it belongs to; it sees only this agency's keys, submissions and audit.
    pub agency: String,
    /// A human name.
    pub name: String,
    /// Revoked clients are refused.
    pub revoked: bool,
    /// When it was added (RFC 3339).
    pub created_at: String,
    /// SHA-256 of its bearer token, hex (never the token itself). A certificate client's
    /// is the hash of a random token that was never shown.
    #[serde(skip)]
    pub token_sha256: String,
    /// SHA-256 of its TLS client certificate (DER), hex, when it authenticates by mutual TLS.
    pub cert_fingerprint: Option<String>,
}

/// A registered signing key: a reference to a PKCS#12 file and its bound seal image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyRecord {
    /// Name used in `?key=`.
    pub name: String,
    /// Owning agency.
    pub agency: String,
    /// PKCS#12 path (the password comes from config or environment, never the database).
    pub p12_path: String,
    /// Seal image (PNG) bound by the administrator.
    pub seal_path: Option<String>,
    /// The seal's real diameter in millimetres.
    pub seal_size_mm: Option<f64>,
}

/// A stored submission.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Id (`sub_…`).
    pub id: String,
    /// Submitting client.
    pub client_id: String,
    /// The client's agency.
    pub agency: String,
    /// `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
    /// RFC 3339 UTC.
    pub received_at: String,
    /// SHA-256 of the document, hex.
    pub sha256: String,
    /// Document size in bytes.
    pub size: i64,
    /// Overall verdict.
    pub indication: String,
    /// The validation report JSON.
    pub report: String,
    /// The document bytes.
    pub document: Vec<u8>,
    /// The JSON response given to the filer (receipt and its signature), replayed for retries.
    pub response: String,
}

/// `INSERT` of a [`Submission`] with the sequence number of its `submit` audit record
/// (`$12`); run by the audit writer in the transaction that appends that record.
pub(crate) const INSERT_SUBMISSION: &str = "INSERT INTO submissions (id, client_id, agency, idempotency_key, received_at, sha256, size, indication, report, document, response, audit_seq) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// Creates the SQLite database file `path` empty and readable by its owner only (0600), so
/// SQLite, which gives its `-wal` and `-shm` files the database's mode, never makes them
/// world-readable. An existing file is left as it is.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str().is_empty() || path == Path::new(":memory:") {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Db(sqlx::Error::Io(e))),
    }
}

/// The columns of a [`Client`], in the order the row mappers read them.
const CLIENT_COLUMNS: &str =
    "id, agency, name, token_sha256, revoked, created_at, cert_fingerprint";

/// Migrations compiled into the binary: (version, description, SQL).
type Embedded = &'static [(i64, &'static str, &'static str)];

const SQLITE_MIGRATIONS: Embedded = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "batches",
        include_str!("../../migrations/sqlite/0002_batches.sql"),
    ),
    (
        100,
        "directory",
        include_str!("../../migrations/sqlite/0100_directory.sql"),
    ),
    (
        200,
        "routing",
        include_str!("../../migrations/sqlite/0200_routing.sql"),
    ),
    (
        300,
        "client certificates",
        include_str!("../../migrations/sqlite/0300_client_certificates.sql"),
    ),
    (
        400,
        "route owner",
        include_str!("../../migrations/sqlite/0400_route_owner.sql"),
    ),
    (
        500,
        "integrity",
        include_str!("../../migrations/sqlite/0500_integrity.sql"),
    ),
    (
        600,
        "route operations",
        include_str!("../../migrations/sqlite/0600_route_operations.sql"),
    ),
    (
        700,
        "console accounts",
        include_str!("../../migrations/sqlite/0700_console_accounts.sql"),
    ),
    (
        800,
        "batch leases",
        include_str!("../../migrations/sqlite/0800_batch_leases.sql"),
    ),
    (
        850,
        "route webhooks",
        include_str!("../../migrations/sqlite/0850_route_webhooks.sql"),
    ),
    (
        860,
        "directory updates",
        include_str!("../../migrations/sqlite/0860_directory_updates.sql"),
    ),
    (
        950,
        "console user certificates",
        include_str!("../../migrations/sqlite/0950_console_user_certificates.sql"),
    ),
    (
        970,
        "route lookup indexes",
        include_str!("../../migrations/sqlite/0970_route_lookup_indexes.sql"),
    ),
];
const POSTGRES_MIGRATIONS: Embedded = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "batches",
        include_str!("../../migrations/postgres/0002_batches.sql"),
    ),
    (
        100,
        "directory",
        include_str!("../../migrations/postgres/0100_directory.sql"),
    ),
    (
        200,
        "routing",
        include_str!("../../migrations/postgres/0200_routing.sql"),
    ),
    (
        300,
        "client certificates",
        include_str!("../../migrations/postgres/0300_client_certificates.sql"),
    ),
    (
        400,
        "route owner",
        include_str!("../../migrations/postgres/0400_route_owner.sql"),
    ),
    (
        500,
        "integrity",
        include_str!("../../migrations/postgres/0500_integrity.sql"),
    ),
    (
        600,
        "route operations",
        include_str!("../../migrations/postgres/0600_route_operations.sql"),
    ),
    (
        700,
        "console accounts",
        include_str!("../../migrations/postgres/0700_console_accounts.sql"),
    ),
    (
        800,
        "batch leases",
        include_str!("../../migrations/postgres/0800_batch_leases.sql"),
    ),
    (
        850,
        "route webhooks",
        include_str!("../../migrations/postgres/0850_route_webhooks.sql"),
    ),
    (
        860,
        "directory updates",
        include_str!("../../migrations/postgres/0860_directory_updates.sql"),
    ),
    (
        950,
        "console user certificates",
        include_str!("../../migrations/postgres/0950_console_user_certificates.sql"),
    ),
    (
        970,
        "route lookup indexes",
        include_str!("../../migrations/postgres/0970_route_lookup_indexes.sql"),
    ),
];

/// A migration source over SQL embedded with `include_str!` (what `sqlx::migrate!` would do,
/// without the proc-macro crate and its compile time).
#[derive(Debug)]
struct EmbeddedMigrations(Embedded);

impl sqlx::migrate::MigrationSource<'static> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>,
                > + Send,
        >,
    > {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, description, sql)| {
                    sqlx::migrate::Migration::new(
                        *version,
                        (*description).into(),
                        sqlx::migrate::MigrationType::Simple,
                        (*sql).into(),
                        false,
                    )
                })
                .collect())
        })
    }
}

async fn migrator(migrations: Embedded) -> Result<sqlx::migrate::Migrator, StoreError> {
    Ok(sqlx::migrate::Migrator::new(EmbeddedMigrations(migrations)).await?)
}

impl Store {
    /// Opens `url` (`sqlite://PATH` or `postgres://…`) and applies the migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new().max_connections(8).connect(url).await?;
            migrator(POSTGRES_MIGRATIONS).await?.run(&pool).await?;
            Store::Postgres(pool)
        } else {
            let options = SqliteConnectOptions::from_str(url)?;
            create_private_file(options.get_filename())?;
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(std::time::Duration::from_secs(10))
                .foreign_keys(true);
            // no ping before each use: an embedded database's connection does not drop, and
            // the ping is one more round trip to the connection's thread per statement
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            migrator(SQLITE_MIGRATIONS).await?.run(&pool).await?;
            Store::Sqlite(pool)
        };
        Ok(store)
    }

    /// The SQLite URL of `signgate.db` in `dir` (created if missing).
    pub fn sqlite_url(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("signgate.db").display())
    }

    /// True for the embedded SQLite database (one gateway process per data folder).
    pub fn is_sqlite(&self) -> bool {
        matches!(self, Store::Sqlite(_))
    }

    /// True once [`Store::close`] ran (background loops stop then).
    pub fn is_closed(&self) -> bool {
        with_pool!(self, p => p.is_closed())
    }

    /// Closes the pool (waits for open connections).
    pub async fn close(&self) {
        with_pool!(self, p => p.close().await)
    }

    // ---------------------------------------------------------------- clients

    /// Adds a client with the hash of its token.
    pub async fn add_client(&self, client: &Client) -> Result<(), StoreError> {
        with_pool!(self, p => {
            sqlx::query("INSERT INTO clients (id, agency, name, token_sha256, revoked, created_at, cert_fingerprint) VALUES ($1, $2, $3, $4, 0, $5, $6)")
                .bind(&client.id).bind(&client.agency).bind(&client.name)
                .bind(&client.token_sha256).bind(&client.created_at).bind(&client.cert_fingerprint)
                .execute(p).await?;
        });
        Ok(())
    }

    /// The client whose token hash is `token_sha256`.
    pub async fn client_by_token_hash(
        &self,
        token_sha256: &str,
    ) -> Result<Option<Client>, StoreError> {
        self.client_where("token_sha256", token_sha256).await
    }

    /// The client whose TLS certificate has SHA-256 `fingerprint` (hex).
    pub async fn client_by_cert_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Client>, StoreError> {
        self.client_where("cert_fingerprint", fingerprint).await
    }

    /// The client whose unique `column` equals `value` (`column` is one of ours, never input).
    async fn client_where(&self, column: &str, value: &str) -> Result<Option<Client>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE {column} = $1");
        Ok(with_pool!(self, p => {
            sqlx::query(&sql).bind(value).fetch_optional(p).await?.map(|r| Client {
                id: r.get(0), agency: r.get(1), name: r.get(2), token_sha256: r.get(3),
                revoked: r.get::<i64, _>(4) != 0, created_at: r.get(5), cert_fingerprint: r.get(6),
            })
        }))
    }

    /// All clients.
    pub async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY created_at, id");
        Ok(with_pool!(self, p => {
            sqlx::query(&sql).fetch_all(p).await?.into_iter().map(|r| Client {
                id: r.get(0), agency: r.get(1), name: r.get(2), token_sha256: r.get(3),
                revoked: r.get::<i64, _>(4) != 0, created_at: r.get(5), cert_fingerprint: r.get(6),
            }).collect()
        }))
    }

    /// Marks a client revoked; false when there is no such client.
    pub async fn revoke_client(&self, id: &str) -> Result<bool, StoreError> {
        let n = with_pool!(self, p => sqlx::query("UPDATE clients SET revoked = 1 WHERE id = $1").bind(id).execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Number of clients (the demo client is created only when there are none).
    pub async fn count_clients(&self) -> Result<i64, StoreError> {
        Ok(
            with_pool!(self, p => sqlx::query("SELECT COUNT(*) FROM clients").fetch_one(p).await?.get::<i64, _>(0)),
        )
    }

    // ---------------------------------------------------------------- keys

    /// Adds or replaces a key reference.
    pub async fn upsert_key(&self, key: &KeyRecord, now: &str) -> Result<(), StoreError> {
        let sql = "INSERT INTO keys (name, agency, p12_path, seal_path, seal_size_mm, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                   ON CONFLICT (name) DO UPDATE SET agency = excluded.agency, p12_path = excluded.p12_path, seal_path = excluded.seal_path, seal_size_mm = excluded.seal_size_mm";
        with_pool!(self, p => {
            sqlx::query(sql).bind(&key.name).bind(&key.agency).bind(&key.p12_path)
                .bind(&key.seal_path).bind(key.seal_size_mm).bind(now).execute(p).await?;
        });
        Ok(())
    }

    /// The key named `name`.
    pub async fn key(&self, name: &str) -> Result<Option<KeyRecord>, StoreError> {
        let sql =
            "SELECT name, agency, p12_path, seal_path, seal_size_mm FROM keys WHERE name = $1";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(name).fetch_optional(p).await?.map(|r| KeyRecord {
                name: r.get(0), agency: r.get(1), p12_path: r.get(2), seal_path: r.get(3), seal_size_mm: r.get(4),
            })),
        )
    }

    /// The key `name` and whether `client_id` may use it, in one query (the signing path asks
    /// both for every request).
    pub async fn key_for_client(
        &self,
        name: &str,
        client_id: &str,
    ) -> Result<Option<(KeyRecord, bool)>, StoreError> {
        let sql = "SELECT k.name, k.agency, k.p12_path, k.seal_path, k.seal_size_mm, \
                   EXISTS (SELECT 1 FROM client_keys g WHERE g.client_id = $2 AND g.key_name = k.name) \
                   FROM keys k WHERE k.name = $1";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(name).bind(client_id).fetch_optional(p).await?.map(|r| (KeyRecord {
                name: r.get(0), agency: r.get(1), p12_path: r.get(2), seal_path: r.get(3), seal_size_mm: r.get(4),
            }, r.get::<bool, _>(5)))),
        )
    }

    /// All keys.
    pub async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let sql = "SELECT name, agency, p12_path, seal_path, seal_size_mm FROM keys ORDER BY name";
        Ok(
            with_pool!(self, p => sqlx::query(sql).fetch_all(p).await?.into_iter().map(|r| KeyRecord {
            name: r.get(0), agency: r.get(1), p12_path: r.get(2), seal_path: r.get(3), seal_size_mm: r.get(4),
        }).collect()),
        )
    }

    /// Grants `client_id` the use of `key_name` (idempotent).
    pub async fn grant(&self, client_id: &str, key_name: &str) -> Result<(), StoreError> {
        let sql =
            "INSERT INTO client_keys (client_id, key_name) VALUES ($1, $2) ON CONFLICT DO NOTHING";
        with_pool!(self, p => { sqlx::query(sql).bind(client_id).bind(key_name).execute(p).await?; });
        Ok(())
    }

    /// True when `client_id` may use `key_name`.
    pub async fn is_granted(&self, client_id: &str, key_name: &str) -> Result<bool, StoreError> {
        let sql = "SELECT COUNT(*) FROM client_keys WHERE client_id = $1 AND key_name = $2";
        let n: i64 = with_pool!(self, p => sqlx::query(sql).bind(client_id).bind(key_name).fetch_one(p).await?.get(0));
        Ok(n > 0)
    }

    // ---------------------------------------------------------------- submissions

    /// Ids of every stored submission (the audit cross-check).
    pub async fn submission_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            with_pool!(self, p => sqlx::query("SELECT id FROM submissions ORDER BY id").fetch_all(p).await?.iter().map(|r| r.get(0)).collect()),
        )
    }

    /// A submission of `agency` (another agency's submission reads as absent).
    pub async fn submission(
        &self,
        agency: &str,
        id: &str,
    ) -> Result<Option<Submission>, StoreError> {
        let sql = "SELECT id, client_id, agency, idempotency_key, received_at, sha256, size, indication, report, document, response \
                   FROM submissions WHERE id = $1 AND agency = $2";
        Ok(
            with_pool!(self, p => sqlx::query(sql).bind(id).bind(agency).fetch_optional(p).await?.map(|r| Submission {
                id: r.get(0), client_id: r.get(1), agency: r.get(2), idempotency_key: r.get(3),
                received_at: r.get(4), sha256: r.get(5), size: r.get(6), indication: r.get(7),
                report: r.get(8), document: r.get(9), response: r.get(10),
            })),
        )
    }

    /// Deletes submissions received before `cutoff` (RFC 3339); returns how many.
    pub async fn purge_submissions_before(&self, cutoff: &str) -> Result<u64, StoreError> {
        Ok(
            with_pool!(self, p => sqlx::query("DELETE FROM submissions WHERE received_at < $1").bind(cutoff).execute(p).await?.rows_affected()),
        )
    }
}
