//! The PostgreSQL store's handle: the connection pool (TLS when the URL asks for it), opening
//! (migrations, unlocking, the origin check), transactions and engine errors.

use std::time::Duration;

use postgres::{IsolationLevel, Transaction};
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::schema::{OPEN_LOCK, migrate};
use super::secrets::unlock;
use crate::envelope::{KdfParams, SecretKey};
use crate::error::StoreError;

/// Options of [`PgStore::open_with`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Argon2id parameters used when the database is set up (an existing one keeps its own).
    pub kdf: KdfParams,
    /// Most connections this process keeps open.
    pub pool_size: u32,
    /// How long opening a connection, or waiting for a free one, may take.
    pub connect_timeout: Duration,
    /// Trust for TLS to the database (used when the URL's `sslmode` is `prefer`, the default,
    /// or `require`); `None`: the bundled web PKI roots. The server's certificate is always
    /// verified, including its name, when TLS is used.
    pub tls: Option<dkls_tls::ClientTls>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            kdf: KdfParams::RECOMMENDED,
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

impl PgOptions {
    /// Default options with cheap key derivation: for tests only.
    #[cfg(any(test, feature = "testing"))]
    pub fn insecure_for_tests() -> Self {
        Self { kdf: KdfParams::INSECURE_FOR_TESTS, ..Self::default() }
    }
}

type Pool = r2d2::Pool<PostgresConnectionManager<MakeRustlsConnect>>;

/// The PostgreSQL [`Store`](crate::Store): a pool of connections to one database that any
/// number of node processes (replicas of one player) may share. Every method is one
/// transaction; single-use rules hold across processes through row locks and
/// `INSERT … ON CONFLICT` / `DELETE … RETURNING`, never an in-process lock.
pub struct PgStore {
    /// Always `Some` until the store is dropped (see the `Drop` impl).
    pool: Option<Pool>,
    pub(super) kek: SecretKey,
    pub(super) shown: String,
    pub(super) wiped_at_open: u64,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("database", &self.shown).finish_non_exhaustive()
    }
}

/// Maps an engine error to a [`StoreError`] without SQL text or row contents.
pub(super) fn db(e: postgres::Error) -> StoreError {
    if let Some(d) = e.as_db_error() {
        return StoreError::Database(format!("{} (SQLSTATE {})", d.message(), d.code().code()));
    }
    if e.is_closed() {
        return StoreError::Io(CLOSED.into());
    }
    StoreError::Io(format!("database: {}", chain(&e)))
}

/// Checks that `url` is a PostgreSQL connection URL the driver accepts (without connecting).
///
/// # Errors
/// What is wrong with it (never the password).
pub fn check_postgres_url(url: &str) -> Result<(), String> {
    url.parse::<postgres::Config>().map(|_| ()).map_err(|e| e.to_string())
}

/// An error with its causes (`a: b: c`), as the driver nests TLS and I/O failures.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let s = cause.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        next = cause.source();
    }
    text
}

/// `host:port/dbname` of a URL, for messages (never the password).
fn describe(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or("(default)"))
}

impl PgStore {
    /// Opens the database at `url` (`postgres://user:password@host:port/dbname?sslmode=…`),
    /// runs the migrations, derives the KEK from `master_password` (Argon2id; the salt,
    /// parameters and a check value live in the database, so every replica given the same
    /// password derives the same KEK) and checks the database's origin (see
    /// [`PgStore::presignatures_wiped_at_open`]).
    ///
    /// # Errors
    /// [`StoreError::WrongPassword`]; [`StoreError::Io`] when the server cannot be reached or
    /// refuses the login; [`StoreError::Database`] for a bad URL or a failing statement;
    /// [`StoreError::Corrupt`] for a schema newer than this program.
    pub fn open(url: &str, master_password: &[u8]) -> Result<Self, StoreError> {
        Self::open_with(url, master_password, &PgOptions::default())
    }

    /// [`PgStore::open`] with explicit options.
    ///
    /// # Errors
    /// As [`PgStore::open`].
    pub fn open_with(
        url: &str,
        master_password: &[u8],
        options: &PgOptions,
    ) -> Result<Self, StoreError> {
        let mut config: postgres::Config =
            url.parse().map_err(|e| StoreError::Database(format!("invalid database URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("mpc-node");
        }
        let shown = describe(&config);
        let tls = match &options.tls {
            Some(t) => t.clone(),
            None => dkls_tls::ClientTls::public_roots()
                .map_err(|e| StoreError::Io(format!("TLS setup: {e}")))?,
        };
        let mut rustls_config = (*tls.rustls_config()).clone();
        rustls_config.alpn_protocols.clear();
        let connector = MakeRustlsConnect::new(rustls_config);
        let manager = PostgresConnectionManager::new(config.clone(), connector.clone());
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size.max(1))
            // Every connection is opened at start (TLS and the password exchange cost
            // milliseconds each: not on the first busy second).
            .min_idle(None)
            .connection_timeout(options.connect_timeout)
            // A broken connection is noticed by the statement that meets it (and retried on a
            // fresh one), so checking each connection out costs no extra round trip.
            .test_on_check_out(false)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(manager)
            .map_err(|_| {
                // The pool keeps only the last error's summary: connect once more for the
                // whole cause (refused, TLS certificate, password, missing database, …).
                let cause = match config.connect(connector) {
                    Ok(_) => "no connection within the connect timeout".to_owned(),
                    Err(e) => chain(&e),
                };
                StoreError::Io(format!("database {shown} is not reachable: {cause}"))
            })?;
        let (kek, wiped_at_open) = run(&pool, &shown, false, |tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&OPEN_LOCK]).map_err(db)?;
            migrate(tx)?;
            let kek = unlock(tx, master_password, options.kdf)?;
            let wiped = super::secrets::check_origin(tx)?;
            Ok((kek, wiped))
        })?;
        Ok(Self { pool: Some(pool), kek, shown, wiped_at_open })
    }

    /// How many presignatures were deleted at open because the database is not the one they
    /// were stored in: its origin (cluster system identifier, timeline and database oid)
    /// changed, as after a restore from a backup, a point-in-time recovery, a promoted standby
    /// or a dump loaded elsewhere. A presignature that was used can then never come back.
    pub fn presignatures_wiped_at_open(&self) -> u64 {
        self.wiped_at_open
    }

    fn pool(&self) -> Result<&Pool, StoreError> {
        self.pool.as_ref().ok_or_else(|| StoreError::Database("the store is closed".into()))
    }

    /// `host:port/dbname` of the database (no credentials).
    pub fn database(&self) -> &str {
        &self.shown
    }

    /// Runs `f` in one read-write transaction (read committed; rows are locked where a rule
    /// needs it), committed only if `f` succeeds.
    pub(super) fn write<T>(
        &self,
        f: impl Fn(&mut Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        run(self.pool()?, &self.shown, false, f)
    }

    /// Runs `f` in a read-only snapshot (repeatable read).
    pub(super) fn read<T>(
        &self,
        f: impl Fn(&mut Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        run(self.pool()?, &self.shown, true, f)
    }
}

impl PgStore {
    /// Runs the one statement of `f` outside a transaction (PostgreSQL makes a lone statement
    /// atomic, so it needs no BEGIN and COMMIT round trips). A read is run again on a fresh
    /// connection when the first one was dead; a write is not (its outcome is unknown).
    pub(super) fn single<T>(
        &self,
        read_only: bool,
        f: impl Fn(&mut postgres::Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pool = self.pool()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = pool.get().map_err(|e| {
                StoreError::Io(format!("database {} is not reachable: {e}", self.shown))
            })?;
            match f(&mut conn) {
                Err(e) if read_only && lost(&conn, &e) && attempt <= retries(pool) => continue,
                other => return other,
            }
        }
    }
}

/// How often a statement that met a dead connection is tried again: after a server restart
/// every idle connection of the pool is dead, and one may be met twice (the driver reads the
/// server's goodbye on first use and notices the closed socket on the next).
fn retries(pool: &Pool) -> usize {
    usize::try_from(pool.max_size()).unwrap_or(usize::MAX).saturating_mul(2).saturating_add(1)
}

/// Whether `e` means that the connection is gone (closed, or ended by the server: SQLSTATE
/// class 08 connection exception, 57P01..57P03 shutdown / cannot connect now), so nothing of
/// the transaction happened.
fn lost(conn: &postgres::Client, e: &StoreError) -> bool {
    if conn.is_closed() {
        return true;
    }
    match e {
        StoreError::Io(m) => m == CLOSED,
        StoreError::Database(m) => {
            ["(SQLSTATE 08", "(SQLSTATE 57P01)", "(SQLSTATE 57P02)", "(SQLSTATE 57P03)"]
                .iter()
                .any(|code| m.contains(code))
        }
        _ => false,
    }
}

const CLOSED: &str = "the database connection was closed";

/// The driver closes a connection by blocking on its own runtime, which is not allowed on a
/// thread that drives an async runtime (where the node may drop its last handle on the store):
/// the connections are closed on a thread of their own.
impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let closing =
                std::thread::Builder::new().name("pg-store-close".into()).spawn(move || drop(pool));
            if let Ok(t) = closing {
                // Wait, so that the connections are closed when the store is gone.
                let _ = t.join();
            }
        }
    }
}

/// Runs `f` in one transaction on a pooled connection, again on a fresh connection when the
/// first one turned out to be dead before anything was committed.
fn run<T>(
    pool: &Pool,
    shown: &str,
    read_only: bool,
    f: impl Fn(&mut Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut conn = pool
            .get()
            .map_err(|e| StoreError::Io(format!("database {shown} is not reachable: {e}")))?;
        let mut builder = conn.build_transaction();
        if read_only {
            builder = builder.read_only(true).isolation_level(IsolationLevel::RepeatableRead);
        }
        let outcome = match builder.start() {
            Ok(mut tx) => match f(&mut tx) {
                Ok(v) => tx.commit().map(|()| v).map_err(|e| (db(e), true)),
                Err(e) => Err((e, false)),
            },
            Err(e) => Err((db(e), false)),
        };
        match outcome {
            Ok(v) => return Ok(v),
            // The connection died before anything was committed (a server restart, a
            // dropped link): nothing happened, so run again on a fresh connection. A
            // failure during COMMIT is not retried: its outcome is unknown.
            Err((e, at_commit)) => {
                if !at_commit && lost(&conn, &e) && attempt <= retries(pool) {
                    drop(conn);
                    continue;
                }
                return Err(e);
            }
        }
    }
}
