//! Ban enforcement at the node under concurrency: a node (in process, on a store the test can
//! pause) and a co-signer run by the test through the real runner and relay, which cheats in
//! its OT-extension message when told to.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use dkls23_core::KeyShare;
use dkls23_core::identity::{Ed25519Identity, SharedSigner};
use dkls23_core::setup::{MemoryReplayGuard, ProtocolId};
use dkls23_runner::{RunContext, RunHooks, RunOptions, run_dkg, run_presign, run_sign};
use mpc_node::error::ApiError;
use mpc_node::node::Node;
use mpc_node_client::api::{
    GenerateKeyRequest, PresignRequestBody, SessionConfig, SignRequestBody,
};
use mpc_node_client::session;
use mpc_node_store::{
    CreateOutcome, KeyRecord, MemoryStore, NewShare, OperationEnd, OperationRecord, ReadyKey,
    Store, StoreError,
};
use msg_relay_client::{ClientConfig, WsRelay};
use msg_relay_svc::testing::spawn_relay;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

use crate::common::{NodeSpec, identity, public, random_sid};

pub(crate) const APP: &str = "app-a";
pub(crate) const KEY: &str = "k";

/// A [`MemoryStore`] whose next `bans` read, once armed, returns what it read only after the
/// test releases it (a request that read the ban list just before a ban was written).
pub(crate) struct PausingStore {
    pub(crate) inner: MemoryStore,
    armed: AtomicBool,
    /// The next `replace_share` fails without writing (a crash before the commit).
    pub(crate) fail_replace: AtomicBool,
    entered: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl Store for PausingStore {
    fn create_pending(
        &self,
        app: &str,
        key: &str,
        t: u16,
        n: u16,
        p: u16,
    ) -> Result<CreateOutcome, StoreError> {
        self.inner.create_pending(app, key, t, n, p)
    }
    fn mark_ready(&self, app: &str, key: &str, ready: &ReadyKey<'_>) -> Result<(), StoreError> {
        self.inner.mark_ready(app, key, ready)
    }
    fn mark_error(&self, app: &str, key: &str, reason: &str) -> Result<(), StoreError> {
        self.inner.mark_error(app, key, reason)
    }
    fn fail_pending(&self, reason: &str) -> Result<u64, StoreError> {
        self.inner.fail_pending(reason)
    }
    fn fail_stale_pending(&self, reason: &str, max_age_secs: u64) -> Result<u64, StoreError> {
        self.inner.fail_stale_pending(reason, max_age_secs)
    }
    fn get(&self, app: &str, key: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.get(app, key)
    }
    fn list(&self, app: &str) -> Result<Vec<KeyRecord>, StoreError> {
        self.inner.list(app)
    }
    fn load_share(&self, app: &str, key: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        self.inner.load_share(app, key)
    }
    fn replace_share(&self, app: &str, key: &str, new: &NewShare<'_>) -> Result<(), StoreError> {
        if self.fail_replace.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Io("simulated crash before the commit".into()));
        }
        self.inner.replace_share(app, key, new)
    }
    fn stage_share(
        &self,
        app: &str,
        key: &str,
        epoch: u32,
        setup: &[u8],
        share: &[u8],
    ) -> Result<(), StoreError> {
        self.inner.stage_share(app, key, epoch, setup, share)
    }
    fn staged_share(
        &self,
        app: &str,
        key: &str,
    ) -> Result<Option<mpc_node_store::StagedShare>, StoreError> {
        self.inner.staged_share(app, key)
    }
    fn clear_staged(&self, app: &str, key: &str) -> Result<(), StoreError> {
        self.inner.clear_staged(app, key)
    }
    fn list_staged(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.inner.list_staged()
    }
    fn delete(&self, app: &str, key: &str) -> Result<(), StoreError> {
        self.inner.delete(app, key)
    }
    fn record_iid(&self, iid: &[u8; 32]) -> Result<bool, StoreError> {
        self.inner.record_iid(iid)
    }
    fn record_ban(&self, app: &str, key: &str, party: u16, reason: &str) -> Result<(), StoreError> {
        self.inner.record_ban(app, key, party, reason)
    }
    fn bans(&self, app: &str, key: &str) -> Result<Vec<u16>, StoreError> {
        let read = self.inner.bans(app, key);
        if self.armed.swap(false, Ordering::SeqCst) {
            let _ = self.entered.lock().unwrap().send(());
            let _ = self.release.lock().unwrap().recv_timeout(Duration::from_secs(30));
        }
        read
    }
    fn put_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.inner.put_presignature(app, key, id, bytes)
    }
    fn take_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        self.inner.take_presignature(app, key, id)
    }
    fn peek_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        self.inner.peek_presignature(app, key, id)
    }
    fn list_presignatures(&self, app: &str, key: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list_presignatures(app, key)
    }
    fn create_operation(&self, app: &str, id: &str, operation: &str) -> Result<bool, StoreError> {
        self.inner.create_operation(app, id, operation)
    }
    fn finish_operation(
        &self,
        app: &str,
        id: &str,
        end: &OperationEnd<'_>,
    ) -> Result<(), StoreError> {
        self.inner.finish_operation(app, id, end)
    }
    fn get_operation(&self, app: &str, id: &str) -> Result<Option<OperationRecord>, StoreError> {
        self.inner.get_operation(app, id)
    }
    fn fail_running_operations(
        &self,
        end: &OperationEnd<'_>,
        max_age_secs: u64,
        keep_secs: u64,
    ) -> Result<u64, StoreError> {
        self.inner.fail_running_operations(end, max_age_secs, keep_secs)
    }
}

pub(crate) struct Rig {
    pub(crate) node: Arc<Node>,
    pub(crate) store: Arc<PausingStore>,
    entered: Mutex<mpsc::Receiver<()>>,
    release: mpsc::Sender<()>,
    pub(crate) peer: Arc<WsRelay>,
    pub(crate) peer_id: Arc<Ed25519Identity>,
    pub(crate) share: KeyShare,
    pub(crate) relay: msg_relay_svc::testing::TestRelay,
    pub(crate) spec: NodeSpec,
}

pub(crate) fn session_cfg(sid: &str) -> SessionConfig {
    SessionConfig { session_id: sid.to_owned(), players: vec![1, 2], public_keys: BTreeMap::new() }
}

pub(crate) fn peer_opts(hooks: RunHooks) -> RunOptions {
    RunOptions { round_timeout: Duration::from_secs(3), hooks, ..RunOptions::default() }
}

/// The co-signer flips one bit of U in its S1 message to the node (a selective-abort probe).
fn cheating() -> RunHooks {
    RunHooks::tamper(|protocol, round, out| {
        if protocol == ProtocolId::Sign
            && round == 2
            && let Some(m) = out.p2p.get_mut(&1)
        {
            m[32 + 100] ^= 4;
        }
    })
}

pub(crate) fn sign_body(sid: &str) -> SignRequestBody {
    SignRequestBody {
        session: session_cfg(sid),
        message_hash: Some(hex::encode([0x42; 32])),
        message: None,
        hash_algorithm: None,
        path: None,
        presignature_id: None,
    }
}

impl Rig {
    /// Node 1 (on a pausing store) and co-signer 2 share a 2-of-2 key.
    pub(crate) async fn start() -> Self {
        let relay = spawn_relay(Default::default()).await.unwrap();
        let mut spec = NodeSpec::new(1, 2);
        spec.session_timeout_secs = 5;
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let store = Arc::new(PausingStore {
            inner: MemoryStore::new(),
            armed: AtomicBool::new(false),
            fail_replace: AtomicBool::new(false),
            entered: Mutex::new(entered_tx),
            release: Mutex::new(release_rx),
        });
        let node = Node::with_store(spec.config(relay.url()), store.clone()).await.unwrap();
        let kept_spec = spec.clone();
        let peer = Arc::new(WsRelay::connect(relay.url(), ClientConfig::default()).await.unwrap());
        let peer_id = Arc::new(identity(2));
        let sid = random_sid();
        let iid = session::session_id(&session_cfg(&sid)).unwrap();
        let setup =
            session::dkg_setup(iid, 2, vec![(1, public(1)), (2, public(2))], KEY, APP).unwrap();
        let req = GenerateKeyRequest {
            key_id: Some(KEY.into()),
            threshold: 2,
            curve: "secp256k1".into(),
            session: session_cfg(&sid),
        };
        let signer: SharedSigner = peer_id.clone();
        let peer_dkg = async {
            let mut rng = ChaCha20Rng::seed_from_u64(2);
            let guard = MemoryReplayGuard::new();
            run_dkg(
                &RunContext::new(&*peer, signer, &guard)
                    .with_options(peer_opts(RunHooks::default())),
                &setup,
                &mut rng,
            )
            .await
        };
        let (info, share) = tokio::join!(node.generate(APP, req), peer_dkg);
        info.unwrap();
        Self {
            node,
            store,
            entered: Mutex::new(entered_rx),
            release: release_tx,
            peer,
            peer_id,
            share: share.unwrap(),
            relay,
            spec: kept_spec,
        }
    }

    /// The co-signer's side of a signing session `sid` (message 0x42…, path m).
    pub(crate) async fn peer_sign(
        &self,
        sid: &str,
        hooks: RunHooks,
    ) -> Result<(), dkls23_core::Error> {
        let iid = session::session_id(&session_cfg(sid)).unwrap();
        let setup = session::sign_setup(iid, &self.share, &[1, 2], &[], [0x42; 32]).unwrap();
        let signer: SharedSigner = self.peer_id.clone();
        let mut rng = ChaCha20Rng::seed_from_u64(iid[0].into());
        let guard = MemoryReplayGuard::new();
        run_sign(
            &RunContext::new(&*self.peer, signer, &guard).with_options(peer_opts(hooks)),
            &setup,
            &self.share,
            &mut rng,
        )
        .await
        .map(|_| ())
    }

    /// A signing session in which the co-signer cheats: the node must ban it.
    async fn cheat_once(&self) {
        let sid = random_sid();
        let (r, _) = tokio::join!(
            self.node.sign(APP, KEY, sign_body(&sid)),
            self.peer_sign(&sid, cheating())
        );
        match r {
            Err(ApiError::Protocol(dkls23_core::Error::BanAndAbort { party: 2, .. })) => {}
            other => panic!("expected the node to ban party 2, got {other:?}"),
        }
        assert_eq!(self.store.bans(APP, KEY).unwrap(), vec![2]);
    }
}

fn assert_banned_conflict(r: &Result<impl std::fmt::Debug, ApiError>) {
    match r {
        Err(ApiError::Conflict(m)) => assert!(m.contains("banned"), "{m}"),
        other => panic!("expected 409 'banned', got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_that_starts_after_a_ban_was_recorded_is_refused() {
    let rig = Arc::new(Rig::start().await);
    // An honest signature first (the share is cached from here on).
    let sid = random_sid();
    let (r, p) = tokio::join!(
        rig.node.sign(APP, KEY, sign_body(&sid)),
        rig.peer_sign(&sid, RunHooks::default())
    );
    r.unwrap();
    p.unwrap();

    // Request A reads the (empty) ban list and is held there by the store...
    rig.store.armed.store(true, Ordering::SeqCst);
    let a = {
        let rig = rig.clone();
        tokio::spawn(async move { rig.node.sign(APP, KEY, sign_body(&random_sid())).await })
    };
    let r2 = rig.clone();
    tokio::task::spawn_blocking(move || r2.entered.lock().unwrap().recv().unwrap()).await.unwrap();
    // ...while another session with the co-signer ends in a ban, which is recorded.
    rig.cheat_once().await;
    rig.release.send(()).unwrap();

    // A request that starts after the ban was recorded is refused at once.
    let started = Instant::now();
    let c = rig.node.sign(APP, KEY, sign_body(&random_sid())).await;
    assert_banned_conflict(&c);
    assert!(started.elapsed() < Duration::from_secs(2), "refused before any session ran");
    // And A, which read the list before the ban, is aborted instead of signing with party 2.
    let a = a.await.unwrap();
    assert_banned_conflict(&a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_during_a_presign_batch_stops_the_batch() {
    let rig = Arc::new(Rig::start().await);
    let sid = random_sid();
    let sid_bytes = session::session_id(&session_cfg(&sid)).unwrap();
    let (go_on_tx, go_on_rx) = tokio::sync::oneshot::channel::<()>();
    let (three_done_tx, three_done_rx) = tokio::sync::oneshot::channel::<()>();
    // The co-signer's side of the batch: three presignatures, then it stalls until told.
    let peer = {
        let rig = rig.clone();
        tokio::spawn(async move {
            let signer: SharedSigner = rig.peer_id.clone();
            let guard = MemoryReplayGuard::new();
            let mut rng = ChaCha20Rng::seed_from_u64(9);
            for k in 0..3u16 {
                let iid = session::presign_iid(&sid_bytes, k);
                let setup = session::presign_setup(iid, &rig.share, &[1, 2], &[]).unwrap();
                let o = peer_opts(RunHooks::default());
                run_presign(
                    &RunContext::new(&*rig.peer, signer.clone(), &guard).with_options(o.clone()),
                    &setup,
                    &rig.share,
                    &mut rng,
                )
                .await
                .unwrap();
            }
            let _ = three_done_tx.send(());
            let _ = go_on_rx.await;
        })
    };
    let batch = {
        let rig = rig.clone();
        let body = PresignRequestBody { session: session_cfg(&sid), count: 20, path: None };
        tokio::spawn(async move { rig.node.presign(APP, KEY, body).await })
    };
    three_done_rx.await.unwrap();
    rig.cheat_once().await;
    let banned_at = Instant::now();
    let r = batch.await.unwrap();
    assert_banned_conflict(&r);
    assert!(
        banned_at.elapsed() < Duration::from_secs(3),
        "the batch stops when the ban is recorded, not at its round timeout"
    );
    assert!(rig.store.list_presignatures(APP, KEY).unwrap().is_empty());
    let _ = go_on_tx.send(());
    peer.await.unwrap();
}
