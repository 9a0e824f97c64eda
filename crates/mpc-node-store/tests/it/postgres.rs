//! The PostgreSQL store on a real server (`.ci/services`): encryption at rest, passwords, the
//! single-use rules across replicas (several stores on one database), the origin rule for
//! presignatures, lost connections, and readable connection errors. Each test makes its own
//! database; without a server (and outside CI) they skip with a message.

use std::sync::{Arc, Barrier, Mutex};

use mpc_node_store::{CreateOutcome, KeyStatus, PgOptions, PgStore, Store, StoreError};

use crate::common::{APP, PASSWORD, contains, pg_options, random_bytes, ready_key};

/// A new database and `n` stores on it (replicas of one player).
fn replicas(n: usize) -> Option<(String, Vec<Arc<PgStore>>)> {
    let url = mpc_node_store::testing::postgres_database()?;
    let stores =
        (0..n).map(|_| Arc::new(PgStore::open_with(&url, PASSWORD, &pg_options()).unwrap()));
    Some((url.clone(), stores.collect()))
}

fn raw(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

#[test]
fn the_database_holds_no_share_or_presignature_in_clear() {
    let Some((url, s)) = replicas(1) else { return };
    let secret = random_bytes(32);
    let mut share = random_bytes(500);
    share.extend_from_slice(&secret);
    ready_key(&*s[0], "k", &share);
    let presig_secret = random_bytes(32);
    s[0].put_presignature(APP, "k", "p1", &presig_secret).unwrap();
    s[0].stage_share(APP, "k", 1, b"setup", &share).unwrap();
    let mut c = raw(&url);
    let mut all = Vec::new();
    for (table, column) in [
        ("mpc_shares", "ciphertext"),
        ("mpc_data_keys", "wrapped"),
        ("mpc_presignatures", "ciphertext"),
        ("mpc_staged_shares", "ciphertext"),
    ] {
        let rows = c.query(&format!("SELECT {column} FROM {table}"), &[]).unwrap();
        assert_eq!(rows.len(), 1, "{table}");
        all.extend(rows[0].get::<_, Vec<u8>>(0));
    }
    assert!(!contains(&all, &secret) && !contains(&all, &presig_secret));
    assert_eq!(&**s[0].load_share(APP, "k").unwrap(), share.as_slice());
}

#[test]
fn a_wrong_master_password_is_refused_and_replicas_share_the_key() {
    let Some((url, s)) = replicas(2) else { return };
    ready_key(&*s[0], "k", b"the share");
    // The second replica derived the same KEK from the salt in the database.
    assert_eq!(&**s[1].load_share(APP, "k").unwrap(), b"the share");
    let wrong = PgStore::open_with(&url, b"not the password", &pg_options());
    assert!(matches!(wrong, Err(StoreError::WrongPassword)), "{wrong:?}");
}

#[test]
fn one_presignature_taken_by_100_concurrent_finishes_on_two_replicas_goes_once() {
    let Some((_, s)) = replicas(2) else { return };
    ready_key(&*s[0], "k", b"share");
    s[0].put_presignature(APP, "k", "the-one", b"presignature").unwrap();
    let got = Arc::new(Mutex::new(0usize));
    let barrier = Arc::new(Barrier::new(100));
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let (s, got, barrier) = (Arc::clone(&s[i % 2]), Arc::clone(&got), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                if s.take_presignature(APP, "k", "the-one").unwrap().is_some() {
                    *got.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*got.lock().unwrap(), 1, "exactly one taker gets the presignature");
    assert!(s[1].list_presignatures(APP, "k").unwrap().is_empty());
}

#[test]
fn replicas_racing_on_one_key_create_it_once_and_claim_an_instance_id_once() {
    let Some((_, s)) = replicas(2) else { return };
    let created = Arc::new(Mutex::new(Vec::new()));
    let claimed = Arc::new(Mutex::new(0usize));
    let barrier = Arc::new(Barrier::new(20));
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let s = Arc::clone(&s[i % 2]);
            let (created, claimed, barrier) =
                (Arc::clone(&created), Arc::clone(&claimed), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                if s.create_pending(APP, "k", 2, 3, 1).unwrap() == CreateOutcome::Created {
                    created.lock().unwrap().push(i);
                }
                if s.record_iid(&[9; 32]).unwrap() {
                    *claimed.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(created.lock().unwrap().len(), 1);
    assert_eq!(*claimed.lock().unwrap(), 1);
    assert_eq!(s[1].get(APP, "k").unwrap().unwrap().status, KeyStatus::Pending);
}

#[test]
fn a_ban_or_a_refresh_by_one_replica_is_seen_by_the_other_at_once() {
    let Some((_, s)) = replicas(2) else { return };
    ready_key(&*s[0], "k", b"share 0");
    s[0].record_ban(APP, "k", 3, "bad proof").unwrap();
    assert_eq!(s[1].bans(APP, "k").unwrap(), vec![3]);
    s[1].put_presignature(APP, "k", "p", b"x").unwrap();
    let new = mpc_node_store::NewShare {
        share: b"share 1",
        epoch: 1,
        player: 1,
        threshold: 2,
        parties: 3,
    };
    s[0].replace_share(APP, "k", &new).unwrap();
    assert_eq!(&**s[1].load_share(APP, "k").unwrap(), b"share 1");
    assert_eq!(s[1].get(APP, "k").unwrap().unwrap().epoch, 1);
    assert!(s[1].bans(APP, "k").unwrap().is_empty());
    assert!(s[1].take_presignature(APP, "k", "p").unwrap().is_none());
}

#[test]
fn stale_pending_keys_fail_but_a_replicas_running_keygen_does_not() {
    let Some((url, s)) = replicas(1) else { return };
    s[0].create_pending(APP, "old", 2, 3, 1).unwrap();
    s[0].create_pending(APP, "running", 2, 3, 1).unwrap();
    raw(&url)
        .execute("UPDATE mpc_keys SET updated_at = updated_at - 3600 WHERE key_name = 'old'", &[])
        .unwrap();
    assert_eq!(s[0].fail_stale_pending("interrupted", 600).unwrap(), 1);
    assert!(matches!(s[0].get(APP, "old").unwrap().unwrap().status, KeyStatus::Error(_)));
    assert_eq!(s[0].get(APP, "running").unwrap().unwrap().status, KeyStatus::Pending);
    assert!(s[0].is_shared());
}

#[test]
fn a_database_from_elsewhere_loses_its_presignatures_at_open() {
    let Some((url, s)) = replicas(1) else { return };
    ready_key(&*s[0], "k", b"share");
    s[0].put_presignature(APP, "k", "p1", b"one").unwrap();
    s[0].put_presignature(APP, "k", "p2", b"two").unwrap();
    // Reopening the same database keeps them.
    let again = PgStore::open_with(&url, PASSWORD, &pg_options()).unwrap();
    assert_eq!(again.presignatures_wiped_at_open(), 0);
    assert_eq!(again.list_presignatures(APP, "k").unwrap().len(), 2);
    // As if restored into another cluster: the recorded origin is not this one.
    raw(&url)
        .execute(
            "UPDATE mpc_meta SET value = 'oid=1 system=2 timeline=1' WHERE name = 'origin'",
            &[],
        )
        .unwrap();
    let restored = PgStore::open_with(&url, PASSWORD, &pg_options()).unwrap();
    assert_eq!(restored.presignatures_wiped_at_open(), 2);
    assert!(restored.list_presignatures(APP, "k").unwrap().is_empty());
    assert_eq!(&**restored.load_share(APP, "k").unwrap(), b"share");
}

#[test]
fn a_dropped_connection_is_replaced_without_an_error() {
    let Some((url, s)) = replicas(1) else { return };
    ready_key(&*s[0], "k", b"share");
    // The server ends every session of this database (as a restart or a proxy would).
    let db = url.rsplit('/').next().unwrap().to_owned();
    let ended: bool = raw(&url)
        .query_one(
            "SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .unwrap()
        .get(0);
    assert!(ended, "the store's connections were terminated");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(&**s[0].load_share(APP, "k").unwrap(), b"share");
    s[0].put_presignature(APP, "k", "p", b"x").unwrap();
}

#[test]
fn connection_failures_name_their_cause() {
    let Some(url) = mpc_node_store::testing::postgres_server() else { return };
    let quick = PgOptions { connect_timeout: std::time::Duration::from_secs(2), ..pg_options() };
    // Nobody listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let closed = format!("postgres://mpc:x@127.0.0.1:{port}/postgres");
    let e = PgStore::open_with(&closed, PASSWORD, &quick).unwrap_err().to_string();
    assert!(e.contains("not reachable") && e.to_lowercase().contains("refused"), "{e}");
    // TLS required, but the server's CA is not trusted.
    let public = PgOptions { tls: None, ..quick.clone() };
    let e = PgStore::open_with(&format!("{url}?sslmode=require"), PASSWORD, &public)
        .unwrap_err()
        .to_string();
    assert!(e.contains("TLS") && e.to_lowercase().contains("certificate"), "{e}");
    // A wrong login password.
    let (prefix, rest) = url.split_once("://").unwrap();
    let (_, host) = rest.split_once('@').unwrap();
    let bad_login = format!("{prefix}://mpc:wrong@{host}");
    let e = PgStore::open_with(&bad_login, PASSWORD, &quick).unwrap_err().to_string();
    assert!(e.contains("password authentication failed"), "{e}");
    let e = PgStore::open_with("postgres://[::1", PASSWORD, &quick).unwrap_err().to_string();
    assert!(e.contains("invalid database URL"), "{e}");
}

#[test]
fn tls_to_the_database_when_the_url_requires_it() {
    let Some(url) = mpc_node_store::testing::postgres_database() else { return };
    let s = PgStore::open_with(&format!("{url}?sslmode=require"), PASSWORD, &pg_options()).unwrap();
    ready_key(&s, "k", b"share");
    // The store's sessions are encrypted.
    let db = url.rsplit('/').next().unwrap().to_owned();
    let plain: i64 = raw(&url)
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE datname = $1 AND NOT ssl AND pid <> pg_backend_pid()",
            &[&db],
        )
        .unwrap()
        .get(0);
    let encrypted: i64 = raw(&url)
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE datname = $1 AND ssl",
            &[&db],
        )
        .unwrap()
        .get(0);
    assert_eq!(plain, 0);
    assert!(encrypted >= 1);
    assert!(matches!(s.get(APP, "k").unwrap(), Some(r) if r.status == KeyStatus::Ready));
}
