//! A refresh whose last step (the commit) is lost on one node: the node keeps the new share
//! staged and activates it once the other members are proven to hold theirs, or says clearly
//! that it cannot decide.

use std::sync::atomic::Ordering;
use std::time::Duration;

use dkls23_core::identity::{IdentitySigner, SharedSigner};
use dkls23_core::reshare::{ReshareOutcome, ReshareSpec};
use dkls23_core::setup::{MemoryReplayGuard, ProtocolId};
use dkls23_core::{KeyShare, message};
use dkls23_runner::{RunContext, RunHooks, run_reshare};
use mpc_node::error::ApiError;
use mpc_node::node::Node;
use mpc_node_client::api::RefreshRequestBody;
use mpc_node_client::session;
use msg_relay_api::{MessageId, Relay, RelayFuture};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::bans::{APP, KEY, Rig, peer_opts, session_cfg, sign_body};
use crate::common::random_sid;

/// The co-signer's side of the refresh `sid` over `relay`; its new share.
async fn peer_refresh(
    rig: &Rig,
    relay: &dyn Relay,
    sid: &str,
) -> Result<KeyShare, dkls23_core::Error> {
    let iid = session::session_id(&session_cfg(sid)).unwrap();
    let setup =
        ReshareSpec::refresh(&rig.share).unwrap().to_setup(iid, session::SESSION_TTL_SECS).unwrap();
    let signer: SharedSigner = rig.peer_id.clone();
    let mut rng = ChaCha20Rng::seed_from_u64(iid[1].into());
    let guard = MemoryReplayGuard::new();
    let opts = peer_opts(RunHooks::default());
    match run_reshare(
        &RunContext::new(relay, signer, &guard).with_options(opts.clone()),
        &setup,
        Some(&rig.share),
        &mut rng,
    )
    .await?
    {
        ReshareOutcome::NewShare(s) => Ok(s),
        ReshareOutcome::Removed => panic!("a refresh removes nobody"),
    }
}

async fn sign_both(
    rig: &Rig,
) -> (Result<mpc_node_client::api::SignatureResponse, ApiError>, Result<(), dkls23_core::Error>) {
    let sid = random_sid();
    tokio::join!(rig.node.sign(APP, KEY, sign_body(&sid)), rig.peer_sign(&sid, RunHooks::default()))
}

/// The node's commit of the refreshed share fails (as if it crashed right after receiving the
/// co-signer's acknowledgement) while the co-signer commits epoch 1. Restarted, the node finds
/// the acknowledgement at the relay, activates its staged share, and signs at epoch 1.
/// (Before staging, the node stayed at epoch 0 and every signature with the co-signer failed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_commit_activates_the_staged_share_at_restart() {
    let mut rig = Rig::start().await;
    rig.store.fail_replace.store(true, Ordering::SeqCst);
    let sid = random_sid();
    let body = RefreshRequestBody { session: session_cfg(&sid) };
    let peer = rig.peer.clone();
    let (node, peer_new) =
        tokio::join!(rig.node.refresh(APP, KEY, body), peer_refresh(&rig, &*peer, &sid));
    assert!(node.is_err(), "the node's commit was meant to fail: {node:?}");
    let peer_new = peer_new.unwrap();
    assert_eq!(peer_new.epoch(), 1);
    assert_eq!(rig.node.get_key(APP, KEY).await.unwrap().epoch, 0);

    // Restart on the same store: the staged share is confirmed in the background.
    let restarted =
        Node::with_store(rig.spec.config(rig.relay.url()), rig.store.clone()).await.unwrap();
    rig.node = restarted;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let info = rig.node.get_key(APP, KEY).await.unwrap();
        if info.epoch == 1 {
            assert_eq!(info.staged_epoch, None);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "staged share never activated: {info:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rig.share = peer_new;
    let (node, peer) = sign_both(&rig).await;
    node.unwrap();
    peer.unwrap();
}

/// A relay view that silently drops one message id's publish.
struct Dropping<'a> {
    inner: &'a dyn Relay,
    drop: MessageId,
}

impl Relay for Dropping<'_> {
    fn publish(&self, id: MessageId, ttl: Duration, payload: Vec<u8>) -> RelayFuture<'_, ()> {
        if id == self.drop {
            Box::pin(async { Ok(()) })
        } else {
            self.inner.publish(id, ttl, payload)
        }
    }
    fn publish_for(
        &self,
        id: MessageId,
        ttl: Duration,
        readers: u16,
        payload: Vec<u8>,
    ) -> RelayFuture<'_, ()> {
        if id == self.drop {
            Box::pin(async { Ok(()) })
        } else {
            self.inner.publish_for(id, ttl, readers, payload)
        }
    }
    fn ask(&self, id: MessageId) -> RelayFuture<'_, Vec<u8>> {
        self.inner.ask(id)
    }
    fn ask_candidate(&self, id: MessageId, from: u16) -> RelayFuture<'_, (u16, Vec<u8>)> {
        self.inner.ask_candidate(id, from)
    }
    fn consume_candidate(&self, id: MessageId, candidate: u16, reader: u16) -> RelayFuture<'_, ()> {
        self.inner.consume_candidate(id, candidate, reader)
    }
}

/// The co-signer's acknowledgement never reaches the relay, so the co-signer commits epoch 1
/// (it has the node's) while the node times out with its new share staged. The node cannot
/// prove the co-signer holds the new share: it keeps epoch 0, shows the staged epoch, and every
/// failure with the key says that its peers may be at epoch 1 (409 `epoch_undecided`) instead
/// of a bare timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmable_staged_share_is_reported_not_hidden() {
    let mut rig = Rig::start().await;
    let sid = random_sid();
    let iid = session::session_id(&session_cfg(&sid)).unwrap();
    let ack = message::mid(&iid, &rig.peer_id.public_key(), None, ProtocolId::Reshare, 4);
    let dropping = Dropping { inner: &*rig.peer, drop: MessageId(ack) };
    let body = RefreshRequestBody { session: session_cfg(&sid) };
    let (node, peer_new) =
        tokio::join!(rig.node.refresh(APP, KEY, body), peer_refresh(&rig, &dropping, &sid));
    let peer_new = peer_new.unwrap();
    match node {
        Err(ApiError::StagedUnconfirmed { epoch: 1, .. }) => {}
        other => panic!("expected epoch_undecided, got {other:?}"),
    }
    let info = rig.node.get_key(APP, KEY).await.unwrap();
    assert_eq!((info.epoch, info.staged_epoch), (0, Some(1)));

    rig.share = peer_new;
    let (node, _) = sign_both(&rig).await;
    match node {
        Err(e @ ApiError::StagedUnconfirmed { epoch: 1, .. }) => {
            let text = e.to_string();
            assert!(text.contains("epoch 1") && text.contains("peers may"), "{text}");
        }
        other => panic!("expected epoch_undecided, got {other:?}"),
    }
}
