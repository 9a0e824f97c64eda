//! What a node needs before it can start: its store opened (the SQLite file in a private
//! directory, Argon2id off the async threads) and its relay connection.

use std::sync::Arc;
use std::time::Duration;

use mpc_node_store::{MemoryStore, PgOptions, PgStore, SqliteStore, Store, StoreError};
use msg_relay_client::{ClientConfig, WsRelay};
use tracing::{info, warn};

use crate::config::{Config, ConfigError, Database, PostgresDatabase};

/// Opens the configured store (Argon2id key derivation runs off the async threads).
///
/// # Errors
/// One line naming the problem (wrong master password, unreachable database, …).
pub async fn open_store(cfg: &Config) -> Result<Arc<dyn Store>, ConfigError> {
    match &cfg.database {
        Database::Memory => Ok(Arc::new(MemoryStore::new())),
        Database::Sqlite(path) => open_sqlite(path.clone(), cfg.master_password.clone()).await,
        Database::Postgres(pg) => open_postgres(pg.clone(), cfg.master_password.clone()).await,
    }
}

async fn open_postgres(
    pg: PostgresDatabase,
    password: zeroize::Zeroizing<Vec<u8>>,
) -> Result<Arc<dyn Store>, ConfigError> {
    let tls = match &pg.ca_file {
        None => None,
        Some(path) => Some(
            dkls_tls::ClientTls::builder()
                .public_roots(false)
                .ca_file(path)
                .and_then(dkls_tls::ClientTlsBuilder::build)
                .map_err(|e| ConfigError(vec![format!("database_ca_file: {e}")]))?,
        ),
    };
    let options = PgOptions { pool_size: pg.pool_size, tls, ..PgOptions::default() };
    let opened =
        tokio::task::spawn_blocking(move || PgStore::open_with(&pg.url, &password, &options))
            .await
            .map_err(|e| ConfigError(vec![format!("database: {e}")]))?;
    match opened {
        Ok(s) => {
            let wiped = s.presignatures_wiped_at_open();
            if wiped > 0 {
                warn!(
                    deleted = wiped,
                    database = s.database(),
                    "the database is not where its presignatures were stored (restored, \
                     recovered or promoted): every stored presignature was deleted so none can \
                     be used twice"
                );
            }
            info!(database = s.database(), "PostgreSQL store open");
            Ok(Arc::new(s))
        }
        Err(StoreError::WrongPassword) => Err(ConfigError(vec![
            "database: wrong master password (the database was created with another one)".into(),
        ])),
        Err(e) => Err(ConfigError(vec![format!("database cannot be opened: {e}")])),
    }
}

/// Creates `dir` and its missing parents with mode 0700 (the database holds sealed shares).
fn create_private_dir_all(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

async fn open_sqlite(
    path: std::path::PathBuf,
    password: zeroize::Zeroizing<Vec<u8>>,
) -> Result<Arc<dyn Store>, ConfigError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Err(e) = create_private_dir_all(dir)
    {
        return Err(ConfigError(vec![format!(
            "database {}: cannot create the directory: {e}",
            path.display()
        )]));
    }
    let shown = path.display().to_string();
    let opened = tokio::task::spawn_blocking(move || SqliteStore::open(&path, &password))
        .await
        .map_err(|e| ConfigError(vec![format!("database {shown}: {e}")]))?;
    match opened {
        Ok(s) => {
            let wiped = s.presignatures_wiped_at_open();
            if wiped > 0 {
                warn!(
                    deleted = wiped,
                    counter = %s.generation_counter_path().display(),
                    "the database is not at its presignature generation (restored or copied): \
                     every stored presignature was deleted so none can be used twice"
                );
            }
            Ok(Arc::new(s))
        }
        Err(StoreError::WrongPassword) => Err(ConfigError(vec![format!(
            "database {shown}: wrong master password (the database was created with another one)"
        )])),
        Err(e) => Err(ConfigError(vec![format!("database {shown} cannot be opened: {e}")])),
    }
}

/// A relay client over every configured URL, connected to the first that answers (or, if none
/// does yet, still trying them in the background), failing over among them while it runs.
pub(crate) async fn connect_relay(
    urls: &[String],
    tls: Option<&dkls_tls::ClientTls>,
) -> Result<Arc<WsRelay>, ConfigError> {
    let config = ClientConfig { tls: tls.cloned(), ..ClientConfig::default() };
    // One client over every URL: it connects to the first that answers and fails over to the
    // next when that relay goes away during a run.
    let relay = WsRelay::new_any(urls, config)
        .map_err(|e| ConfigError(vec![format!("relay_urls: {e}")]))?;
    let patience = Duration::from_secs(2).saturating_mul(u32::try_from(urls.len()).unwrap_or(1));
    if relay.wait_connected(patience).await {
        info!(relay = %relay.current_url().ws_url(), "connected to relay");
    } else {
        let cause = relay.last_error().unwrap_or_else(|| format!("no answer within {patience:?}"));
        warn!(%cause, "no relay reachable yet; reconnecting in the background");
    }
    Ok(Arc::new(relay))
}
