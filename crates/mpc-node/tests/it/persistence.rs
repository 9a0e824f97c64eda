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

fn copy_db(from: &Path, from_prefix: &str, to: &Path, to_prefix: &str) {
    for suffix in ["", "-wal", "-shm"] {
        let src = from.join(format!("{from_prefix}{suffix}"));
        let dst = to.join(format!("{to_prefix}{suffix}"));
        if src.exists() {
            std::fs::copy(&src, &dst).unwrap();
        } else if dst.exists() {
            std::fs::remove_file(&dst).unwrap();
        }
    }
}

fn finish_body(id: &str, m: [u8; 32], path: &str) -> mpc_node_client::api::SignRequestBody {
    mpc_node_client::api::SignRequestBody {
        session: mpc_node_client::api::SessionConfig {
            session_id: id.to_owned(),
            players: vec![1, 2],
            public_keys: Default::default(),
        },
        message_hash: Some(hex::encode(m)),
        message: None,
        hash_algorithm: None,
        path: Some(path.into()),
        presignature_id: Some(id.to_owned()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_database_gives_back_no_used_presignature() {
    let mut cluster = Cluster::start(vec![NodeSpec::new(1, 2), NodeSpec::new(2, 2)]).await;
    let infos = cluster.generate("app-a", "pk", 2, &[1, 2]).await;
    assert!(infos.iter().all(Result::is_ok), "{infos:?}");
    let c = [cluster.client(1, "app-a"), cluster.client(2, "app-a")];
    let pre = mpc_node_client::api::PresignRequestBody {
        session: mpc_node_client::api::SessionConfig {
            session_id: random_sid(),
            players: vec![1, 2],
            public_keys: Default::default(),
        },
        count: 2,
        path: None,
    };
    let made = futures_join_all(c.iter().map(|cl| cl.presign("pk", &pre))).await;
    let ids = made[0].as_ref().unwrap().presignature_ids.clone();

    // A request that does not match the presignature (wrong path) is refused and burns nothing.
    let typo = c[0].sign("pk", &finish_body(&ids[0], [1; 32], "m/5")).await.unwrap_err();
    assert_eq!(typo.status(), Some(400), "{typo}");
    assert!(typo.to_string().contains("kept"), "{typo}");

    // Back up node 1's database (the presignature generation counter beside it is not part of
    // the database backup), then use presignature 0.
    cluster.stop_node(1).await;
    let backup = tempfile::tempdir().unwrap();
    copy_db(cluster.dir.path(), "node1.sqlite", backup.path(), "node1.sqlite");
    cluster.restart(1).await;
    let body = finish_body(&ids[0], [1; 32], "m");
    let sigs = futures_join_all(c.iter().map(|cl| cl.sign("pk", &body))).await;
    verify(sigs[0].as_ref().unwrap());

    // Restore the backup: presignature 0 is in it again, but the database is now behind its
    // counter, so the node deletes every presignature when it opens it.
    cluster.stop_node(1).await;
    copy_db(backup.path(), "node1.sqlite", cluster.dir.path(), "node1.sqlite");
    let restored =
        SqliteStore::open(&cluster.dir.path().join("node1.sqlite"), b"correct horse").unwrap();
    assert_eq!(restored.presignatures_wiped_at_open(), 2);
    assert!(restored.list_presignatures("app-a", "pk").unwrap().is_empty());
    drop(restored);
    cluster.restart(1).await;
    for id in &ids {
        let again = c[0].sign("pk", &finish_body(id, [2; 32], "m")).await.unwrap_err();
        assert_eq!(again.status(), Some(404), "{again}");
    }
    // Signing without presignatures still works.
    let sigs = cluster.sign("app-a", "pk", &[1, 2], [3; 32], "m").await;
    verify(sigs[0].as_ref().unwrap());
}
