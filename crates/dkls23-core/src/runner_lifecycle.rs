//! Async runners of the key lifecycle: reshare (refresh / recovery / quorum change), import,
//! export, and the ban-list wrappers.

use std::collections::BTreeMap;
use std::sync::Arc;

use msg_relay_api::Relay;
use rand_core::CryptoRng;

use super::{Inbox, Io, RunOptions, from_message, run_sign};
use crate::ban::{BanList, record_if_banned};
use crate::dkg::Outgoing;
use crate::error::Error;
use crate::identity::IdentitySigner;
use crate::import_export::{
    EXPORT_CONFIRMATION, ExportRequest, ExportedKey, ImportDeal, ImportRequest, ImportSecret,
    ProvisionalShare, export_share, receive_export,
};
use crate::keyshare::KeyShare;
use crate::math::PartyIndex;
use crate::message::{P2pMode, Session};
use crate::reshare::{self, Expected, OldSecret, ReshareConfig, ReshareOutcome, ReshareSpec};
use crate::setup::{ReplayGuard, Setup};
use crate::sign::Signature;
use crate::transcript::{Tag, Th, th};
use zeroize::Zeroize;

impl<R: Relay + ?Sized> Io<'_, R> {
    /// Collects what a round [`Expected`].
    async fn collect_expected(
        &mut self,
        round: u16,
        e: &Expected,
    ) -> Result<(Inbox, Inbox), Error> {
        if e.bcast == e.p2p {
            return self.collect(round, &e.bcast, true, true).await;
        }
        let (b, _) = self.collect_part(round, &e.bcast, true, false).await?;
        let (_, p) = self.collect_part(round, &e.p2p, false, true).await?;
        self.end_round(round);
        Ok((b, p))
    }
}

/// Runs a reshare for `setup` (protocol `Reshare`; its `extra` is a [`ReshareSpec`]).
///
/// `old_share` is required for an old-committee member (a dealer) and must be `None` otherwise.
/// The caller keeps its old share until this returns `Ok`; then it stores the
/// [`ReshareOutcome::NewShare`] in place of the old one, or erases the old share on
/// [`ReshareOutcome::Removed`]. On any error the old epoch stays valid: keep the old share.
///
/// # Errors
/// Any [`Error`]; parties are named by their transport (setup participant) index.
pub async fn run_reshare<R: Relay + ?Sized>(
    relay: &R,
    setup: &Setup,
    old_share: Option<&KeyShare>,
    signer: Arc<dyn IdentitySigner + Send + Sync>,
    guard: &(impl ReplayGuard + ?Sized),
    rng: &mut (impl CryptoRng + ?Sized),
    opts: &RunOptions,
) -> Result<ReshareOutcome, Error> {
    let spec = ReshareSpec::from_setup(setup)?;
    let me = setup
        .my_index(&signer.public_key())
        .ok_or_else(|| Error::InvalidInput("this identity is not a participant".into()))?;
    let old = match (spec.old_member_at(me), old_share) {
        (Some(m), Some(share)) => {
            spec.check_old_share(share)?;
            if share.index() != m.index {
                return Err(Error::InvalidInput(format!(
                    "the key share has index {}, the setup names this identity as old member {}",
                    share.index(),
                    m.index
                )));
            }
            Some(OldSecret::from_share(share))
        }
        (Some(m), None) => {
            return Err(Error::InvalidInput(format!(
                "old member {} must supply its current key share",
                m.index
            )));
        }
        (None, Some(_)) => {
            return Err(Error::InvalidInput(
                "this party is not in the old committee; pass no key share".into(),
            ));
        }
        (None, None) => None,
    };
    run_reshare_inner(relay, setup, spec, old, signer, guard, rng, opts).await
}

#[allow(clippy::too_many_arguments)] // private: the public entry points validate the inputs
async fn run_reshare_inner<R: Relay + ?Sized>(
    relay: &R,
    setup: &Setup,
    spec: ReshareSpec,
    old: Option<OldSecret>,
    signer: Arc<dyn IdentitySigner + Send + Sync>,
    guard: &(impl ReplayGuard + ?Sized),
    rng: &mut (impl CryptoRng + ?Sized),
    opts: &RunOptions,
) -> Result<ReshareOutcome, Error> {
    let session = Session::new(setup, signer, guard, rng).map_err(from_message)?;
    let cfg = ReshareConfig {
        spec,
        setup_hash: *setup.hash(),
        me: session.my_index(),
        ephemeral_public: session.ephemeral_public(),
    };
    let mut io = Io::new(relay, session, opts, P2pMode::Signed, setup.protocol());
    let result = async {
        let (r1, q1) = reshare::start(rng, cfg, old)?;
        io.send(1, &Outgoing { broadcast: Some(q1), p2p: BTreeMap::new() }).await?;
        let (b1, _) = io.collect_expected(1, &r1.expects()).await?;
        let (r2, out) = r1.next(rng, &b1)?;
        for (j, e) in r2.peer_ephemeral_keys() {
            io.session.establish(j, &e).map_err(from_message)?;
        }
        io.send(2, &out).await?;
        let (b2, p2) = io.collect_expected(2, &r2.expects()).await?;
        let (r3, out) = r2.next(rng, &b2, &p2)?;
        io.send(3, &out).await?;
        let (b3, p3) = io.collect_expected(3, &r3.expects()).await?;
        let (r4, out) = r3.next(&b3, &p3)?;
        if let Some(stage) = &opts.stage {
            // Kept before the acknowledgement leaves: a peer that commits on it can count on
            // this party holding the new share too. The acknowledgements stay at the relay
            // (for their TTL) so the staged share can be confirmed later.
            if let Some(share) = r4.pending_share() {
                stage.stage(share).await.map_err(|e| {
                    Error::Unattributable(format!("could not stage the new key share: {e}"))
                })?;
            }
            io.keep_round = Some(4);
        }
        io.send(4, &out).await?;
        let (acks, _) = io.collect_expected(4, &r4.expects()).await?;
        r4.finish(&acks)
    }
    .await;
    if let Err(e) = &result {
        io.announce_failure(e).await;
    }
    result
}

/// Where a refresh or reshare keeps the new share it computed until it knows every member
/// has it (implemented by the caller's storage; see [`RunOptions::stage`]).
///
/// A reshare commits safely across parties only if no party can end at a different epoch
/// than its peers without knowing it: a party that collected every acknowledgement commits,
/// but one whose run failed after sending its own (a lost connection, a crash) does not know
/// whether the others did. So the new share is *staged* before the acknowledgement leaves,
/// and a party that holds a staged share and no confirmed outcome calls [`confirm_staged`]
/// (at start-up, and before using the key): every other new member's acknowledgement proves
/// that all of them hold the new share, so it can be activated.
pub trait StageShare: Send + Sync {
    /// Persists `share` as staged (not yet active). An error fails the run before this
    /// party's acknowledgement is sent (so no peer commits on it).
    fn stage<'a>(
        &'a self,
        share: &'a KeyShare,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}

/// What [`confirm_staged`] found out about a staged share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Every other new member acknowledged this share: activate it.
    Confirmed,
    /// These new members' acknowledgements were not found within the round timeout: nobody
    /// can have committed without them if they never sent them, but they may also have been
    /// sent and dropped since; undecided.
    Missing(Vec<PartyIndex>),
}

/// Looks for the acknowledgements of the reshare `setup` that produced `staged` (this party's
/// new share, kept by [`StageShare`]), waiting at most `opts.round_timeout`. Publishes
/// nothing. The acknowledgements are signed broadcasts, so they prove their senders hold the
/// same new public data.
///
/// # Errors
/// [`Error::InvalidInput`] when `staged` does not belong to `setup` or this identity;
/// [`Error::ViewMismatch`] naming a member whose acknowledgement differs (the staged share
/// must not be activated); relay errors.
pub async fn confirm_staged<R: Relay + ?Sized>(
    relay: &R,
    setup: &Setup,
    staged: &KeyShare,
    signer: Arc<dyn IdentitySigner + Send + Sync>,
    rng: &mut (impl CryptoRng + ?Sized),
    opts: &RunOptions,
) -> Result<Confirmation, Error> {
    let spec = ReshareSpec::from_setup(setup)?;
    let me = setup
        .my_index(&signer.public_key())
        .ok_or_else(|| Error::InvalidInput("this identity is not a participant".into()))?;
    if staged.key_id() != &spec.key_id
        || staged.epoch() != spec.new_epoch
        || staged.index() != me
        || !spec.is_new(me)
    {
        return Err(Error::InvalidInput(
            "the staged share is not this party's share of that reshare".into(),
        ));
    }
    let expected = reshare::acknowledgement(staged);
    // The session's instance id was used by the run; reading its messages again is not a new
    // run, so the replay guard of this look-up is a fresh one.
    let fresh = crate::setup::MemoryReplayGuard::new();
    let session = Session::new(setup, signer, &fresh, rng).map_err(from_message)?;
    let mut io = Io::new(relay, session, opts, P2pMode::Signed, setup.protocol());
    io.keep_round = Some(4);
    let mut missing = Vec::new();
    for j in (1..=spec.new_parties()).filter(|&j| j != me) {
        match io.collect_part(4, &[j], true, false).await {
            Ok((acks, _)) => {
                let ack = acks.get(&j).map_or(&[][..], Vec::as_slice);
                if ack != expected.as_slice() {
                    return Err(Error::ViewMismatch { round: 4, party: j });
                }
            }
            Err(Error::Timeout { .. }) => missing.push(j),
            Err(e) => return Err(e),
        }
    }
    Ok(if missing.is_empty() { Confirmation::Confirmed } else { Confirmation::Missing(missing) })
}

/// [`run_reshare`] with the ban-list hook: a ban-requiring failure is recorded under the dealer's
/// current index (if the culprit is a dealer), and a successful reshare clears the key's bans
/// (all OT material was replaced).
///
/// # Errors
/// As [`run_reshare`].
#[allow(clippy::too_many_arguments)] // each argument is a distinct capability the caller owns
pub async fn run_reshare_with_bans<R: Relay + ?Sized>(
    relay: &R,
    setup: &Setup,
    old_share: Option<&KeyShare>,
    signer: Arc<dyn IdentitySigner + Send + Sync>,
    guard: &(impl ReplayGuard + ?Sized),
    bans: &dyn BanList,
    rng: &mut (impl CryptoRng + ?Sized),
    opts: &RunOptions,
) -> Result<ReshareOutcome, Error> {
    let spec = ReshareSpec::from_setup(setup)?;
    match run_reshare(relay, setup, old_share, signer, guard, rng, opts).await {
        Ok(out) => {
            bans.clear(&spec.key_id);
            Ok(out)
        }
        Err(e) => {
            record_if_banned(bans, &spec.key_id, &e, |t| spec.old_member_at(t).map(|m| m.index));
            Err(e)
        }
    }
}

/// [`run_sign`] with the ban-list hook: refuses to sign with a banned party (before any
/// message is sent) and records a `BanAndAbort` culprit.
///
/// # Errors
/// As [`run_sign`].
#[allow(clippy::too_many_arguments)] // each argument is a distinct capability the caller owns
pub async fn run_sign_with_bans<R: Relay + ?Sized>(
    relay: &R,
    setup: &Setup,
    share: &KeyShare,
    signer: Arc<dyn IdentitySigner + Send + Sync>,
    guard: &(impl ReplayGuard + ?Sized),
    bans: &dyn BanList,
    rng: &mut (impl CryptoRng + ?Sized),
    opts: &RunOptions,
) -> Result<Signature, Error> {
    let banned: Vec<PartyIndex> = bans.banned(share.key_id());
    let res = run_sign(relay, setup, share, signer, guard, &banned, rng, opts).await;
    if let Err(e) = &res {
        record_if_banned(bans, share.key_id(), e, Some);
    }
    res
}

/// Runs a key import for `setup` (protocol `Import`; its `extra` is an [`ImportRequest`]): the
/// dealer (`dealer_secret` is `Some` exactly for it) deals Feldman-checked shares over signed and
/// encrypted p2p messages, then every holder runs the refresh-mode reshare at once, so the
/// returned shares and all OT / zero seeds are fresh and unknown to the dealer (§6.1). The
/// refresh uses a second setup derived from this one (`iid = TH("import", "refresh-iid",
/// setup_hash, sid)`), recorded in the same replay guard.
///
/// # Errors
/// Any [`Error`]; a dealer that deals inconsistent shares is blamed.
pub async fn run_import<R: Relay + ?Sized>(
    relay: &R,
    setup: &Setup,
    dealer_secret: Option<ImportSecret>,
    signer: Arc<dyn IdentitySigner + Send + Sync>,
    guard: &(impl ReplayGuard + ?Sized),
    rng: &mut (impl CryptoRng + ?Sized),
    opts: &RunOptions,
) -> Result<KeyShare, Error> {
    let req = ImportRequest::from_setup(setup)?;
    let session = Session::new(setup, signer.clone(), guard, rng).map_err(from_message)?;
    let me = session.my_index();
    match (me == req.dealer, &dealer_secret) {
        (true, Some(s)) if s.public_key() == req.public_key && s.key_id() == req.key_id => {}
        (true, Some(_)) => {
            return Err(Error::InvalidInput("the dealer's key does not match the request".into()));
        }
        (true, None) => return Err(Error::InvalidInput("the dealer must supply the key".into())),
        (false, Some(_)) => {
            return Err(Error::InvalidInput("only the dealer may supply the key".into()));
        }
        (false, None) => {}
    }
    let (n, t) = (setup.n(), setup.t());
    let others: Vec<PartyIndex> = session.peers().collect();
    let mut io = Io::new(relay, session, opts, P2pMode::Signed, setup.protocol());
    // Round 1: fresh ρ and the ephemeral key; sid over the setup and every contribution.
    let mut q1 = crate::dkg::random_bytes(rng).to_vec();
    q1.extend_from_slice(&io.session.ephemeral_public());
    io.send(1, &Outgoing { broadcast: Some(q1.clone()), p2p: BTreeMap::new() }).await?;
    let (b1, _) = io.collect(1, &others, true, false).await?;
    let mut h = Th::new(Tag::Import);
    h.put(b"sid").put(setup.hash());
    for l in 1..=n {
        let p = match b1.get(&l) {
            _ if l == me => &q1,
            Some(p) => p,
            None => return Err(Error::Timeout { round: 1, missing: vec![l] }),
        };
        if p.len() != 64 {
            return Err(Error::Blame { party: l, reason: "malformed import round 1".into() });
        }
        h.put_u16(l).put(p);
        if l != me {
            let e: [u8; 32] = p.get(32..).and_then(|s| s.try_into().ok()).ok_or_else(|| {
                Error::Blame { party: l, reason: "malformed import round 1".into() }
            })?;
            io.session.establish(l, &e).map_err(from_message)?;
        }
    }
    let sid = h.finish();
    // Round 2: the deal.
    let provisional = match dealer_secret {
        Some(secret) => {
            let deal = ImportDeal::new(rng, &secret, t);
            drop(secret);
            let mut out = Outgoing::default();
            for &l in &others {
                out.p2p.insert(l, deal.message_for(&sid, l).to_vec());
            }
            let sent = io.send(2, &out).await;
            for m in out.p2p.values_mut() {
                m.zeroize();
            }
            sent?;
            io.end_round(2);
            ProvisionalShare::own(&sid, &deal, n, me)
        }
        None => {
            let (_, p2) = io.collect(2, &[req.dealer], false, true).await?;
            let msg = p2.get(&req.dealer).map_or(&[][..], Vec::as_slice);
            ProvisionalShare::accept(&sid, &req, n, t, me, msg)?
        }
    };
    // Refresh at once: fresh shares, OT and zero seeds the dealer never saw.
    let spec = provisional.refresh_spec(setup.participants(), t)?;
    let iid = th(Tag::Import, &[b"refresh-iid", setup.hash(), &sid]);
    let rs_setup = spec.to_setup(iid, setup.ttl_secs())?;
    drop(io);
    let old = Some(provisional.into_old_secret());
    match run_reshare_inner(relay, &rs_setup, spec, old, signer, guard, rng, opts).await? {
        ReshareOutcome::NewShare(share) => Ok(share),
        ReshareOutcome::Removed => {
            Err(Error::Unattributable("an import holder ended without a share".into()))
        }
    }
}

/// Exporter side of a key export (§6.2; `setup` is protocol `Export` with an
/// [`ExportRequest`] in `extra`): sends this party's share, signed and encrypted to the
/// recipient. Requires [`EXPORT_CONFIRMATION`] verbatim; apply your approval policy (e.g. a
/// threshold signature over the export statement) before calling.
///
/// # Errors
/// [`Error::InvalidInput`] without the confirmation or for a request that does not match the
/// share; transport errors.
#[allow(clippy::too_many_arguments)] // each argument is a distinct capability the caller owns
pub async fn run_export<R: Relay + ?Sized>(
    relay: &R,
    setup: &Setup,
    share: &KeyShare,
    signer: Arc<dyn IdentitySigner + Send + Sync>,
    guard: &(impl ReplayGuard + ?Sized),
    rng: &mut (impl CryptoRng + ?Sized),
    opts: &RunOptions,
    confirmation: &str,
) -> Result<(), Error> {
    let req = ExportRequest::from_setup(setup)?;
    req.check_share(share)?;
    if setup.my_index(&signer.public_key()) != Some(share.index()) {
        return Err(Error::InvalidInput("this identity is not the key share's party".into()));
    }
    let payload = export_share(rng, share, &req, setup.hash(), confirmation)?;
    let session = Session::new(setup, signer, guard, rng).map_err(from_message)?;
    let mut io = Io::new(relay, session, opts, P2pMode::Plain, setup.protocol());
    io.send(1, &Outgoing { broadcast: Some(payload), p2p: BTreeMap::new() }).await?;
    io.end_round(1);
    Ok(())
}

/// Recipient side of a key export: collects every exporter's signed payload, checks each share
/// against its public share (a wrong one blames its sender) and reconstructs the key.
/// The result is **no longer threshold-protected** ([`ExportedKey::is_threshold_protected`]).
///
/// # Errors
/// [`Error::InvalidInput`] without the confirmation or with a secret that does not match the
/// request's recipient key; [`Error::Blame`] for a wrong share; [`Error::Timeout`].
#[allow(clippy::too_many_arguments)] // each argument is a distinct capability the caller owns
pub async fn run_export_receive<R: Relay + ?Sized>(
    relay: &R,
    setup: &Setup,
    signer: Arc<dyn IdentitySigner + Send + Sync>,
    guard: &(impl ReplayGuard + ?Sized),
    rng: &mut (impl CryptoRng + ?Sized),
    opts: &RunOptions,
    recipient_secret: &[u8; 32],
    confirmation: &str,
) -> Result<ExportedKey, Error> {
    let req = ExportRequest::from_setup(setup)?;
    if confirmation != EXPORT_CONFIRMATION {
        return Err(Error::InvalidInput("export refused: confirmation missing".into()));
    }
    if setup.my_index(&signer.public_key()) != Some(req.recipient) {
        return Err(Error::InvalidInput("this identity is not the export recipient".into()));
    }
    let session = Session::new(setup, signer, guard, rng).map_err(from_message)?;
    let mut io = Io::new(relay, session, opts, P2pMode::Plain, setup.protocol());
    let exporters: Vec<PartyIndex> = req.exporters.iter().map(|(l, _)| *l).collect();
    let (payloads, _) = io.collect(1, &exporters, true, false).await?;
    receive_export(&req, setup.hash(), recipient_secret, &payloads, confirmation)
}
