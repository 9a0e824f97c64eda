use std::path::{Path, PathBuf};
use std::sync::Arc;

use mpc_node_store::{
    CreateOutcome, OpenOptions, PgOptions, PgStore, ReadyKey, SqliteStore, Store,
};

pub const APP: &str = "app-1";
pub const PK: [u8; 33] = [2; 33];
pub const CC: [u8; 32] = [3; 32];
pub const KID: [u8; 32] = [4; 32];
pub const PASSWORD: &[u8] = b"correct horse battery staple";

/// A temporary directory holding one database file.
pub struct TempDb {
    pub dir: tempfile::TempDir,
}

impl TempDb {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("node.db")
    }

    pub fn open(&self) -> SqliteStore {
        SqliteStore::open_with(&self.path(), PASSWORD, &OpenOptions::insecure_for_tests()).unwrap()
    }

    /// A raw connection for inspecting or tampering with rows.
    pub fn raw(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.path()).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c
    }

    /// Raw bytes of the database file and its WAL / shared-memory files.
    pub fn raw_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.path().into_os_string();
            p.push(suffix);
            if let Ok(b) = std::fs::read(Path::new(&p)) {
                all.extend_from_slice(&b);
            }
        }
        all
    }
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether any `w`-byte window of `needle` occurs in `haystack`.
pub fn shares_window(haystack: &[u8], needle: &[u8], w: usize) -> bool {
    let seen: std::collections::HashSet<&[u8]> = haystack.windows(w).collect();
    needle.windows(w).any(|x| seen.contains(x))
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).unwrap();
    v
}

/// What a key becomes READY with in these tests: `share` at epoch 0 and the constant public
/// fields.
pub fn ready(share: &[u8]) -> ReadyKey<'_> {
    ReadyKey { share, epoch: 0, public_key: PK, chain_code: CC, core_key_id: KID }
}

/// Creates a READY key with `share` (player 1 of a 2-of-3, epoch 0).
pub fn ready_key(store: &dyn Store, key: &str, share: &[u8]) {
    assert!(matches!(store.create_pending(APP, key, 2, 3, 1).unwrap(), CreateOutcome::Created));
    store.mark_ready(APP, key, &ready(share)).unwrap();
}

/// Store options trusting the test server's CA.
pub fn pg_options() -> PgOptions {
    let ca = mpc_node_store::testing::postgres_ca().expect("MPC_TEST_POSTGRES_CA");
    let tls = dkls_tls::ClientTls::builder().public_roots(false).ca_file(ca).unwrap().build();
    PgOptions { tls: Some(tls.unwrap()), ..PgOptions::insecure_for_tests() }
}

/// A PostgreSQL store on a new database of the test server (`None` without a server, outside
/// CI).
pub fn pg_store() -> Option<(String, PgStore)> {
    let url = mpc_node_store::testing::postgres_database()?;
    let store = PgStore::open_with(&url, PASSWORD, &pg_options()).unwrap();
    Some((url, store))
}

/// Every implementation, each with its own backing storage (the temp dir lives as long as the
/// returned guard): memory, SQLite, and PostgreSQL when a test server is there.
pub fn stores() -> Vec<(&'static str, Arc<dyn Store>, Option<TempDb>)> {
    let db = TempDb::new();
    let sqlite: Arc<dyn Store> = Arc::new(db.open());
    let mut all: Vec<(&'static str, Arc<dyn Store>, Option<TempDb>)> = vec![
        ("memory", Arc::new(mpc_node_store::MemoryStore::new()), None),
        ("sqlite", sqlite, Some(db)),
    ];
    if let Some((_, pg)) = pg_store() {
        all.push(("postgres", Arc::new(pg), None));
    }
    all
}
