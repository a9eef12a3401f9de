//! Persistence: one SQL dialect for SQLite (embedded default) and PostgreSQL, through sqlx's `Any` driver.
//!
//! Queries use `$N` placeholders, which both drivers accept, and only BIGINT/TEXT columns, so one set of
//! statements and one migration serve both. Where the dialects must differ (row locking) the [`Backend`]
//! chooses the statement.
//!
//! Layout: [`jobs`] (fax jobs and the queue), [`inbound`] (received faxes), [`keys`]
//! (API keys), [`simline`] (the simulated line's state), [`tokens`] (download tokens),
//! [`writer`] (group commit of hot-path writes).

mod columns;
pub mod inbound;
pub mod jobs;
pub mod keys;
pub mod sessions;
pub mod simline;
pub mod sipcalls;
pub mod tokens;
pub mod writer;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, SqlSafeStr};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Database failures, typed so the HTTP edge can map them once.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The configured URL is not usable.
    #[error("invalid DATABASE_URL: {0}")]
    Url(String),
    /// The group-commit writer is gone (shutdown).
    #[error("the database writer has stopped")]
    WriterStopped,
    /// A unique constraint refused the write (for example a reused idempotency key).
    #[error("conflicting row already exists")]
    Conflict,
    /// A row held a value this version cannot interpret.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl DbError {
    /// Maps unique-constraint violations to [`DbError::Conflict`], everything else to `Database`.
    pub fn from_sqlx(e: sqlx::Error) -> DbError {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => DbError::Conflict,
            _ => DbError::Database(e),
        }
    }
}

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (WAL, synchronous=FULL).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// Name for logs and the readiness body.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The connection pool and its dialect.
#[derive(Clone, Debug)]
pub struct Db {
    /// The pool.
    pub pool: AnyPool,
    /// The dialect.
    pub backend: Backend,
}

/// Turns a DATABASE_URL into a dialect and a URL sqlx accepts. SQLAlchemy-style URLs from the reference
/// (`sqlite:///./faxbot.db`) are accepted, and the SQLite file's directory is created.
pub fn normalise_url(url: &str) -> Result<(Backend, String, Option<PathBuf>), DbError> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path_part, _query) = rest.split_once('?').unwrap_or((rest, ""));
        // `sqlite:///./x.db` (SQLAlchemy, relative) and `sqlite:////abs/x.db` (SQLAlchemy, absolute).
        let path = if let Some(p) = path_part.strip_prefix("/./").or_else(|| path_part.strip_prefix("//")) {
            if path_part.starts_with("//") { format!("/{p}") } else { format!("./{p}") }
        } else {
            path_part.to_string()
        };
        if path.is_empty() || path == ":memory:" {
            return Err(DbError::Url("SQLite needs a file path; in-memory databases are not durable".into()));
        }
        let path = PathBuf::from(path);
        Ok((Backend::Sqlite, format!("sqlite://{}?mode=rwc", path.display()), Some(path)))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok((Backend::Postgres, url.to_string(), None))
    } else {
        Err(DbError::Url("expected a sqlite: or postgres:// URL".into()))
    }
}

impl Db {
    /// Connects and runs migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let (backend, url, file) = normalise_url(url)?;
        if let Some(parent) = file.as_deref().and_then(Path::parent)
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| DbError::Url(format!("cannot create {}: {e}", parent.display())))?;
        }
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the single writer; synchronous=FULL makes every commit
                        // durable across power loss (the group-commit writer keeps that affordable).
                        conn.execute("PRAGMA journal_mode=WAL").await?;
                        conn.execute("PRAGMA synchronous=FULL").await?;
                        conn.execute("PRAGMA busy_timeout=10000").await?;
                        conn.execute("PRAGMA foreign_keys=ON").await?;
                        // Checkpoints run from a background task (see `checkpoint_loop`), not inside
                        // whichever commit happens to cross the threshold, so they never stall a group commit.
                        conn.execute("PRAGMA wal_autocheckpoint=0").await?;
                        // 1 MiB of page cache per connection (the default is 2 MiB): lookups are by key and
                        // the OS page cache holds the file, so a larger pool need not cost more memory.
                        conn.execute("PRAGMA cache_size=-1024").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let db = Db { pool, backend };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), DbError> {
        let migrations = vec![
            Migration::new(
                1,
                Cow::Borrowed("initial"),
                MigrationType::Simple,
                include_str!("../../migrations/0001_initial.sql").into_sql_str(),
                false,
            ),
            Migration::new(
                2,
                Cow::Borrowed("inbound and failover"),
                MigrationType::Simple,
                include_str!("../../migrations/0002_inbound_and_failover.sql").into_sql_str(),
                false,
            ),
            Migration::new(
                3,
                Cow::Borrowed("sip calls"),
                MigrationType::Simple,
                include_str!("../../migrations/0003_sip_calls.sql").into_sql_str(),
                false,
            ),
            Migration::new(
                4,
                Cow::Borrowed("token issuer"),
                MigrationType::Simple,
                include_str!("../../migrations/0004_token_issuer.sql").into_sql_str(),
                false,
            ),
            Migration::new(
                5,
                Cow::Borrowed("console sessions"),
                MigrationType::Simple,
                include_str!("../../migrations/0005_console_sessions.sql").into_sql_str(),
                false,
            ),
        ];
        let migrator = Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Copies the SQLite WAL back into the database file every `every` until `stop` flips. PASSIVE mode
    /// never blocks readers or the writer; a no-op on PostgreSQL.
    pub async fn checkpoint_loop(self, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        if self.backend != Backend::Sqlite {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&self.pool).await {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
        // Leave a compact database behind at shutdown.
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await {
            tracing::debug!(error = %e, "final WAL checkpoint failed");
        }
    }

    /// `SELECT 1`, for readiness.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_are_normalised() {
        let (b, u, p) = normalise_url("sqlite://./data/faxbot.db").unwrap();
        assert_eq!((b, u.as_str()), (Backend::Sqlite, "sqlite://./data/faxbot.db?mode=rwc"));
        assert_eq!(p.unwrap(), PathBuf::from("./data/faxbot.db"));
        let (_, u, _) = normalise_url("sqlite:///./faxbot.db").unwrap();
        assert_eq!(u, "sqlite://./faxbot.db?mode=rwc");
        let (_, u, _) = normalise_url("sqlite:////var/lib/faxbot.db").unwrap();
        assert_eq!(u, "sqlite:///var/lib/faxbot.db?mode=rwc");
        let (_, u, _) = normalise_url("sqlite:/tmp/x.db").unwrap();
        assert_eq!(u, "sqlite:///tmp/x.db?mode=rwc");
        assert!(normalise_url("sqlite::memory:").is_err());
        assert!(normalise_url("mysql://x").is_err());
        assert_eq!(normalise_url("postgres://u@h/db").unwrap().0, Backend::Postgres);
    }
}
