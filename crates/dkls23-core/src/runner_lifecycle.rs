//! Async runners of the key lifecycle: reshare (refresh / recovery / quorum change), import,
//! export, and the ban-list wrappers. Same message layer and [`Relay`] as `run_dkg`.

use std::collections::BTreeMap;
use std::sync::Arc;

use msg_relay_api::Relay;
use rand_core::CryptoRng;

use super::{Inbox, Io, RunOptions, from_message, run_sign};
use crate::ban::{BanList, record_if_banned};
use crate::dkg::Outgoing;
use crate::error::Error;
use crate::identity::IdentitySigner;
use crate::keyshare::KeyShare;
use crate::math::PartyIndex;
use crate::message::{P2pMode, Session};
use crate::reshare::{self, Expected, OldSecret, ReshareConfig, ReshareOutcome, ReshareSpec};
use crate::setup::{ReplayGuard, Setup};
use crate::sign::Signature;

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
        let (b, _) = self.collect(round, &e.bcast, true, false).await?;
        let (_, p) = self.collect(round, &e.p2p, false, true).await?;
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
    let mut io = Io { relay, session, opts: opts.clone(), p2p_mode: P2pMode::Signed };
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
    io.send(4, &out).await?;
    let (acks, _) = io.collect_expected(4, &r4.expects()).await?;
    r4.finish(&acks)
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
