//! SQLite persistence: restart and sign with the stored share, no share bytes in clear in the
//! database files, a wrong master password refuses to start.

use std::path::Path;

use mpc_node_store::{SqliteStore, Store};

use crate::common::*;

fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with(prefix) {
            all.extend(std::fs::read(e.path()).unwrap());
        }
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_sign_and_encryption_at_rest() {
    let mut cluster = Cluster::three().await;
    let infos = cluster.generate("app-a", "persisted", 2, &[1, 2, 3]).await;
    let pk = infos[0].as_ref().unwrap().public_key.clone().unwrap();

    // Restart node 2 (graceful stop, same file and port) and sign with the persisted share.
    cluster.stop_node(2).await;
    let wrong = cluster.try_restart(2, Some("not the password")).await.unwrap_err();
    assert!(wrong.to_string().contains("wrong master password"), "{wrong}");
    assert_eq!(wrong.0.len(), 1);
    cluster.restart(2).await;
    let sigs = cluster.sign("app-a", "persisted", &[1, 2], [3; 32], "m").await;
    let sig = sigs.into_iter().nth(1).unwrap().unwrap();
    assert_eq!(sig.public_key, pk);
    verify(&sig);

    // The database files hold no share bytes in clear: read the share through the store and
    // look for pieces of it in the raw files (database, WAL).
    let path = cluster.dir.path().join("node1.sqlite");
    let store = SqliteStore::open(&path, b"correct horse").unwrap();
    let share = store.load_share("app-a", "persisted").unwrap();
    assert!(share.len() > 1000);
    let raw = files_with_prefix(cluster.dir.path(), "node1.sqlite");
    assert!(!raw.is_empty());
    assert!(!contains(&raw, b"DKLSKEY"), "share magic found in clear");
    // Skip the header (magic, sizes, epoch, session id, key id, public key, chain code: public
    // values the store keeps in clear on purpose); everything after it must not appear.
    // Runs of zeros and other low-entropy padding are skipped (they are everywhere).
    let mut checked = 0;
    for offset in (160..share.len().saturating_sub(24)).step_by(97) {
        let w = &share[offset..offset + 24];
        if w.iter().collect::<std::collections::BTreeSet<_>>().len() < 12 {
            continue;
        }
        checked += 1;
        assert!(
            !contains(&raw, &share[offset..offset + 24]),
            "share bytes at {offset} of {} in clear: {}",
            share.len(),
            hex::encode(&share[offset..offset + 24])
        );
    }
    assert!(checked > 500, "{checked}");
    // The public key is stored in clear (it is public), so the search above can find things.
    assert!(contains(&raw, &hex::decode(&pk).unwrap()));
}
