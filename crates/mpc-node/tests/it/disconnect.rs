//! An API client that disconnects mid-operation changes nothing about the operation's outcome
//! at its node, and the same request sent again returns that outcome.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mpc_node_client::Client;
use mpc_node_client::api::{
    GenerateKeyRequest, PresignRequestBody, RefreshRequestBody, SessionConfig,
};

use crate::common::*;

fn session(players: &[u16]) -> SessionConfig {
    SessionConfig {
        session_id: random_sid(),
        players: players.to_vec(),
        public_keys: BTreeMap::new(),
    }
}

/// A client of node `i` that gives up (drops the connection) after a few milliseconds.
fn impatient(cluster: &Cluster, i: u16) -> Client {
    Client::new(&cluster.url(i), &api_key("app-a", i))
        .unwrap()
        .with_timeout(Duration::from_millis(5))
}

async fn wait_for_epoch(c: &Client, key: &str, epoch: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(k) = c.get_key(key).await
            && k.status == "READY"
            && k.epoch == epoch
        {
            return;
        }
        assert!(Instant::now() < deadline, "node never reached epoch {epoch} of {key}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnects_during_keygen_presign_and_refresh_change_no_outcome() {
    let cluster = Cluster::three().await;
    let c: Vec<Client> = (1..=3).map(|i| cluster.client(i, "app-a")).collect();

    // Keygen: node 1's client hangs up at once; the key still becomes READY there.
    let req = GenerateKeyRequest {
        key_id: Some("dc".into()),
        threshold: 2,
        curve: "secp256k1".into(),
        session: session(&[1, 2, 3]),
    };
    let gone = impatient(&cluster, 1);
    let (r1, r2, r3) =
        tokio::join!(gone.generate_key(&req), c[1].generate_key(&req), c[2].generate_key(&req));
    assert!(r1.is_err(), "the impatient client should have given up");
    let pk = r2.unwrap().public_key;
    assert_eq!(r3.unwrap().public_key, pk);
    wait_for_epoch(&c[0], "dc", 0).await;
    // The same request again: the outcome, not a 409 for the used session id.
    let again = c[0].generate_key(&req).await.unwrap();
    assert_eq!(again.public_key, pk);

    // Presign: the presignatures are stored on node 1 although its client left.
    let pre = PresignRequestBody { session: session(&[1, 2]), count: 2, path: None };
    let gone = impatient(&cluster, 1);
    let (r1, r2) = tokio::join!(gone.presign("dc", &pre), c[1].presign("dc", &pre));
    assert!(r1.is_err());
    let ids = r2.unwrap().presignature_ids;
    let retried = c[0].presign("dc", &pre).await.unwrap();
    assert_eq!(retried.presignature_ids, ids);

    // Refresh: node 1 commits epoch 1 like its peers.
    let refresh = RefreshRequestBody { session: session(&[1, 2, 3]) };
    let gone = impatient(&cluster, 1);
    let (r1, r2, r3) = tokio::join!(
        gone.refresh("dc", &refresh),
        c[1].refresh("dc", &refresh),
        c[2].refresh("dc", &refresh)
    );
    assert!(r1.is_err());
    assert_eq!(r2.unwrap().epoch, 1);
    assert_eq!(r3.unwrap().epoch, 1);
    wait_for_epoch(&c[0], "dc", 1).await;
    assert_eq!(c[0].refresh("dc", &refresh).await.unwrap().epoch, 1);

    // Every signer pair still signs.
    for pair in [[1, 2], [1, 3], [2, 3]] {
        let sigs = cluster.sign("app-a", "dc", &pair, [pair[0] as u8; 32], "m").await;
        for s in sigs {
            let s = s.unwrap();
            assert_eq!(Some(&s.public_key), pk.as_ref());
            verify(&s);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keygen_cut_off_by_a_restart_is_error_not_pending_forever() {
    let mut cluster = Cluster::three().await;
    // A crash while a keygen runs leaves its PENDING record in the database (in-process the
    // session would still end cleanly, so write the record as a crashed process left it).
    cluster.stop_node(1).await;
    {
        use mpc_node_store::Store as _;
        let path = cluster.dir.path().join("node1.sqlite");
        let store = mpc_node_store::SqliteStore::open(&path, b"correct horse").unwrap();
        store.create_pending("app-a", "cut", 2, 3, 1).unwrap();
    }
    cluster.restart(1).await;
    let k = cluster.client(1, "app-a").get_key("cut").await.unwrap();
    assert_eq!(k.status, "ERROR");
    assert!(k.error.unwrap_or_default().contains("interrupted by a restart"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_node_refuses_a_keygen_before_creating_any_state() {
    let mut specs: Vec<NodeSpec> = (1..=3).map(|i| NodeSpec::new(i, 3)).collect();
    specs[0].max_concurrent_sessions = 1;
    specs[0].session_timeout_secs = 3;
    let cluster = Cluster::start(specs).await;
    let c1 = cluster.client(1, "app-a");
    // The only slot of node 1 is taken by a keygen whose peers never come.
    let first = GenerateKeyRequest {
        key_id: Some("slot".into()),
        threshold: 2,
        curve: "secp256k1".into(),
        session: session(&[1, 2, 3]),
    };
    let holder = {
        let c = cluster.client(1, "app-a");
        tokio::spawn(async move { c.generate_key(&first).await })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while c1.get_key("slot").await.map(|k| k.status).ok().as_deref() != Some("PENDING") {
        assert!(Instant::now() < deadline, "the first key never became PENDING");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = GenerateKeyRequest {
        key_id: Some("later".into()),
        threshold: 2,
        curve: "secp256k1".into(),
        session: session(&[1, 2, 3]),
    };
    let busy = c1.generate_key(&second).await.unwrap_err();
    assert_eq!(busy.status(), Some(503), "{busy}");
    // No key record was created: the key id is still free. The session id is spent (the
    // peers were told node 1 is busy): the same request again is refused at once.
    assert_eq!(c1.get_key("later").await.unwrap_err().status(), Some(404));
    let _ = holder.await;
    let again = c1.generate_key(&second).await.unwrap_err();
    assert_eq!(again.status(), Some(409), "{again}");
    let second = GenerateKeyRequest { session: session(&[1, 2, 3]), ..second };
    let c: Vec<Client> = (1..=3).map(|i| cluster.client(i, "app-a")).collect();
    let (a, b, d) = tokio::join!(
        c[0].generate_key(&second),
        c[1].generate_key(&second),
        c[2].generate_key(&second)
    );
    assert_eq!(a.unwrap().status, "READY");
    assert_eq!(b.unwrap().status, "READY");
    assert_eq!(d.unwrap().status, "READY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnects_during_import_and_reshare_change_no_outcome() {
    use mpc_node_client::api::{ImportKeyRequest, ReshareRequestBody};
    let cluster = Cluster::three().await;
    let c: Vec<Client> = (1..=3).map(|i| cluster.client(i, "app-a")).collect();

    // Import: the dealer's client hangs up at once; the key still becomes READY there.
    let sk = k256::SecretKey::from_slice(&[0x31; 32]).unwrap();
    let pk = hex::encode(mpc_node_client::session::compressed(&sk.public_key().to_projective()));
    let base = ImportKeyRequest {
        key_id: "dc-import".into(),
        threshold: 2,
        session: session(&[1, 2, 3]),
        dealer: 1,
        public_key: pk.clone(),
        chain_code: hex::encode([0x32; 32]),
        private_key: None,
    };
    let to_dealer = ImportKeyRequest { private_key: Some(hex::encode([0x31; 32])), ..base.clone() };
    let gone = impatient(&cluster, 1);
    let (r1, r2, r3) =
        tokio::join!(gone.import_key(&to_dealer), c[1].import_key(&base), c[2].import_key(&base));
    assert!(r1.is_err(), "the impatient client should have given up");
    let epoch = r2.unwrap().epoch;
    assert_eq!(r3.unwrap().epoch, epoch);
    wait_for_epoch(&c[0], "dc-import", epoch).await;
    let again = c[0].import_key(&to_dealer).await.unwrap();
    assert_eq!(again.public_key.as_deref(), Some(pk.as_str()));

    // Reshare (same committee, threshold kept): node 2's client hangs up; node 2 still ends at
    // the new epoch with its peers, and the same request again returns that outcome.
    let rs = ReshareRequestBody {
        session: session(&[1, 2, 3]),
        old_players: vec![1, 2, 3],
        new_threshold: 2,
        spec: None,
    };
    let gone = impatient(&cluster, 2);
    let (r1, r2, r3) = tokio::join!(
        c[0].reshare("dc-import", &rs),
        gone.reshare("dc-import", &rs),
        c[2].reshare("dc-import", &rs)
    );
    assert!(r2.is_err(), "the impatient client should have given up");
    let new_epoch = r1.unwrap().key.unwrap().epoch;
    assert_eq!(new_epoch, epoch + 1);
    assert_eq!(r3.unwrap().key.unwrap().epoch, new_epoch);
    wait_for_epoch(&c[1], "dc-import", new_epoch).await;
    assert_eq!(c[1].reshare("dc-import", &rs).await.unwrap().key.unwrap().epoch, new_epoch);

    // Every signer pair signs under the imported key.
    for pair in [[1, 2], [1, 3], [2, 3]] {
        let sigs = cluster.sign("app-a", "dc-import", &pair, [pair[1] as u8; 32], "m").await;
        for s in sigs {
            let s = s.unwrap();
            assert_eq!(s.public_key, pk);
            verify(&s);
        }
    }
}
