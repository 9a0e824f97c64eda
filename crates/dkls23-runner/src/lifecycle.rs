//! Key generation and the key lifecycle: DKG, reshare (refresh / recovery / quorum change)
//! with the confirmation of a staged share, import, export, and the abort notice of a party
//! that never started.

use dkls23_core::KeyShare;
use dkls23_core::dkg::{self, DkgConfig};
use dkls23_core::error::{AbortReason, Error};
use dkls23_core::import_export::{
    EXPORT_CONFIRMATION, ExportRequest, ExportedKey, ImportSecret, start_export,
    start_export_receive, start_import,
};
use dkls23_core::message::{P2pMode, Session};
use dkls23_core::reshare::{self, OldSecret, ReshareConfig, ReshareOutcome, ReshareSpec};
use dkls23_core::setup::{MemoryReplayGuard, ProtocolId, Setup};
use msg_relay_api::Relay;
use rand_core::CryptoRng;

use crate::context::RunContext;
use crate::drive::{announcing, drive};
use crate::io::{Io, announce, from_message};
use crate::options::Confirmation;

/// Runs a DKG for `setup` (protocol `Dkg`) as the party whose identity `ctx.signer` holds.
///
/// # Errors
/// Any [`Error`]; nothing is returned (and nothing should be stored) unless every party
/// acknowledged the same public data.
pub async fn run_dkg<R: Relay + ?Sized>(
    ctx: &RunContext<'_, R>,
    setup: &Setup,
    rng: &mut (dyn CryptoRng + Send),
) -> Result<KeyShare, Error> {
    if setup.protocol() != ProtocolId::Dkg {
        return Err(Error::InvalidInput("the setup is not a DKG setup".into()));
    }
    let session = Session::new(setup, ctx.signer.clone(), ctx.guard, rng).map_err(from_message)?;
    let cfg = DkgConfig {
        n: setup.n(),
        t: setup.t(),
        me: session.my_index(),
        setup_hash: *setup.hash(),
        ephemeral_public: session.ephemeral_public(),
        identities: setup.participants().iter().map(|(_, k)| k.to_bytes()).collect(),
    };
    let mut io = Io::new(ctx.relay, session, &ctx.options, P2pMode::Signed, setup.protocol());
    let result = match dkg::start(rng, cfg) {
        Ok((r1, k1)) => drive(&mut io, Box::new(r1), k1, rng).await,
        Err(e) => Err(e),
    };
    announcing(&mut io, result).await
}

/// This party's dealer input for the reshare `spec`: its old share's secret if it is an old
/// member (which must then supply that share), nothing otherwise.
fn dealer_input(
    spec: &ReshareSpec,
    me: u16,
    old_share: Option<&KeyShare>,
) -> Result<Option<OldSecret>, Error> {
    match (spec.old_member_at(me), old_share) {
        (Some(m), Some(share)) => {
            spec.check_old_share(share)?;
            if share.index() != m.index {
                return Err(Error::InvalidInput(format!(
                    "the key share has index {}, the setup names this identity as old member {}",
                    share.index(),
                    m.index
                )));
            }
            Ok(Some(OldSecret::from_share(share)))
        }
        (Some(m), None) => Err(Error::InvalidInput(format!(
            "old member {} must supply its current key share",
            m.index
        ))),
        (None, Some(_)) => Err(Error::InvalidInput(
            "this party is not in the old committee; pass no key share".into(),
        )),
        (None, None) => Ok(None),
    }
}

/// Runs a reshare for `setup` (protocol `Reshare`; its `extra` is a [`ReshareSpec`]).
///
/// `old_share` is required for an old-committee member (a dealer) and must be `None` otherwise.
/// The caller keeps its old share until this returns `Ok`; then it stores the
/// [`ReshareOutcome::NewShare`] in place of the old one, or erases the old share on
/// [`ReshareOutcome::Removed`]. On any error the old epoch stays valid: keep the old share.
/// With staging in the options, the new share is staged before this party's acknowledgement
/// leaves (see [`StageShare`](crate::StageShare)).
///
/// With a ban list in `ctx`, a ban-requiring failure is recorded under the dealer's current
/// index (if the culprit is a dealer), and a successful reshare clears the key's bans (all OT
/// material was replaced).
///
/// # Errors
/// Any [`Error`]; parties are named by their transport (setup participant) index.
pub async fn run_reshare<R: Relay + ?Sized>(
    ctx: &RunContext<'_, R>,
    setup: &Setup,
    old_share: Option<&KeyShare>,
    rng: &mut (dyn CryptoRng + Send),
) -> Result<ReshareOutcome, Error> {
    let spec = ReshareSpec::from_setup(setup)?;
    let me = setup
        .my_index(&ctx.signer.public_key())
        .ok_or_else(|| Error::InvalidInput("this identity is not a participant".into()))?;
    let old = dealer_input(&spec, me, old_share)?;
    let key_id = spec.key_id;
    let result = reshare_rounds(ctx, setup, spec.clone(), old, rng).await;
    match (&result, ctx.bans) {
        (Ok(_), Some(bans)) => bans.clear(&key_id),
        _ => ctx.record_ban(&key_id, &result, |t| spec.old_member_at(t).map(|m| m.index)),
    }
    result
}

/// The reshare rounds of `setup` with validated inputs (also the refresh of an import).
async fn reshare_rounds<R: Relay + ?Sized>(
    ctx: &RunContext<'_, R>,
    setup: &Setup,
    spec: ReshareSpec,
    old: Option<OldSecret>,
    rng: &mut (dyn CryptoRng + Send),
) -> Result<ReshareOutcome, Error> {
    let session = Session::new(setup, ctx.signer.clone(), ctx.guard, rng).map_err(from_message)?;
    let cfg = ReshareConfig {
        spec,
        setup_hash: *setup.hash(),
        me: session.my_index(),
        ephemeral_public: session.ephemeral_public(),
    };
    let mut io = Io::new(ctx.relay, session, &ctx.options, P2pMode::Signed, setup.protocol());
    let result = match reshare::start(rng, cfg, old) {
        Ok((r1, q1)) => drive(&mut io, Box::new(r1), q1, rng).await,
        Err(e) => Err(e),
    };
    announcing(&mut io, result).await
}

/// Looks for the acknowledgements of the reshare `setup` that produced `staged` (this party's
/// new share, kept by [`StageShare`](crate::StageShare)), waiting at most the round timeout.
/// Publishes nothing. The acknowledgements are signed broadcasts, so they prove their senders
/// hold the same new public data. The context's replay guard is not used: reading a finished
/// run's messages again is not a new run.
///
/// # Errors
/// [`Error::InvalidInput`] when `staged` does not belong to `setup` or this identity;
/// [`Error::ViewMismatch`] naming a member whose acknowledgement differs (the staged share
/// must not be activated); relay errors.
pub async fn confirm_staged<R: Relay + ?Sized>(
    ctx: &RunContext<'_, R>,
    setup: &Setup,
    staged: &KeyShare,
    rng: &mut (dyn CryptoRng + Send),
) -> Result<Confirmation, Error> {
    let spec = ReshareSpec::from_setup(setup)?;
    let me = setup
        .my_index(&ctx.signer.public_key())
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
    let fresh = MemoryReplayGuard::new();
    let session = Session::new(setup, ctx.signer.clone(), &fresh, rng).map_err(from_message)?;
    let mut io = Io::new(ctx.relay, session, &ctx.options, P2pMode::Signed, setup.protocol());
    io.keep_round = Some(reshare::COMMIT_ROUND);
    let mut missing = Vec::new();
    for j in (1..=spec.new_parties()).filter(|&j| j != me) {
        match io.collect_part(reshare::COMMIT_ROUND, &[j], true, false).await {
            Ok((acks, _)) => {
                let ack = acks.get(&j).map_or(&[][..], Vec::as_slice);
                if ack != expected.as_slice() {
                    return Err(Error::ViewMismatch {
                        round: reshare::COMMIT_ROUND as u8,
                        party: j,
                    });
                }
            }
            Err(Error::Timeout { .. }) => missing.push(j),
            Err(e) => return Err(e),
        }
    }
    Ok(if missing.is_empty() { Confirmation::Confirmed } else { Confirmation::Missing(missing) })
}

/// Runs a key import for `setup` (protocol `Import`; its `extra` is an
/// [`ImportRequest`](dkls23_core::import_export::ImportRequest)): the dealer (`dealer_secret`
/// is `Some` exactly for it) deals Feldman-checked shares over signed and encrypted p2p
/// messages, then every holder runs the refresh-mode reshare at once, so the returned shares
/// and all OT / zero seeds are fresh and unknown to the dealer (§6.1). The refresh uses a
/// second setup derived from this one (`iid = TH("import", "refresh-iid", setup_hash, sid)`),
/// recorded in the same replay guard.
///
/// # Errors
/// Any [`Error`]; a dealer that deals inconsistent shares is blamed.
pub async fn run_import<R: Relay + ?Sized>(
    ctx: &RunContext<'_, R>,
    setup: &Setup,
    dealer_secret: Option<ImportSecret>,
    rng: &mut (dyn CryptoRng + Send),
) -> Result<KeyShare, Error> {
    let session = Session::new(setup, ctx.signer.clone(), ctx.guard, rng).map_err(from_message)?;
    let (me, ephemeral) = (session.my_index(), session.ephemeral_public());
    let (r1, q1) = start_import(rng, setup, me, ephemeral, dealer_secret)?;
    let provisional = {
        let mut io = Io::new(ctx.relay, session, &ctx.options, P2pMode::Signed, setup.protocol());
        let result = drive(&mut io, Box::new(r1), q1, rng).await;
        announcing(&mut io, result).await?
    };
    // Refresh at once: fresh shares, OT and zero seeds the dealer never saw.
    let (spec, rs_setup) = provisional.refresh_setup(setup)?;
    let old = Some(provisional.into_old_secret());
    match reshare_rounds(ctx, &rs_setup, spec, old, rng).await? {
        ReshareOutcome::NewShare(share) => Ok(share),
        ReshareOutcome::Removed => {
            Err(Error::Unattributable("an import holder ended without a share".into()))
        }
    }
}

/// Exporter side of a key export (§6.2; `setup` is protocol `Export` with an
/// [`ExportRequest`] in `extra`): sends this party's share, signed and encrypted to the
/// recipient. Requires
/// [`EXPORT_CONFIRMATION`](dkls23_core::import_export::EXPORT_CONFIRMATION) verbatim; apply
/// your approval policy (e.g. a threshold signature over the export statement) before calling.
///
/// # Errors
/// [`Error::InvalidInput`] without the confirmation or for a request that does not match the
/// share; transport errors.
pub async fn run_export<R: Relay + ?Sized>(
    ctx: &RunContext<'_, R>,
    setup: &Setup,
    share: &KeyShare,
    confirmation: &str,
    rng: &mut (dyn CryptoRng + Send),
) -> Result<(), Error> {
    let req = ExportRequest::from_setup(setup)?;
    req.check_share(share)?;
    if setup.my_index(&ctx.signer.public_key()) != Some(share.index()) {
        return Err(Error::InvalidInput("this identity is not the key share's party".into()));
    }
    let (round, payload) = start_export(rng, share, &req, setup.hash(), confirmation)?;
    let session = Session::new(setup, ctx.signer.clone(), ctx.guard, rng).map_err(from_message)?;
    let mut io = Io::new(ctx.relay, session, &ctx.options, P2pMode::Plain, setup.protocol());
    drive(&mut io, Box::new(round), payload, rng).await
}

/// Recipient side of a key export: collects every exporter's signed payload, checks each share
/// against its public share (a wrong one blames its sender) and reconstructs the key.
/// The result is **no longer threshold-protected** ([`ExportedKey::is_threshold_protected`]).
///
/// # Errors
/// [`Error::InvalidInput`] without the confirmation or with a secret that does not match the
/// request's recipient key; [`Error::Blame`] for a wrong share; [`Error::Timeout`].
pub async fn run_export_receive<R: Relay + ?Sized>(
    ctx: &RunContext<'_, R>,
    setup: &Setup,
    recipient_secret: &[u8; 32],
    confirmation: &str,
    rng: &mut (dyn CryptoRng + Send),
) -> Result<ExportedKey, Error> {
    let req = ExportRequest::from_setup(setup)?;
    if confirmation != EXPORT_CONFIRMATION {
        return Err(Error::InvalidInput("export refused: confirmation missing".into()));
    }
    let recipient = req.recipient;
    let (round, nothing) = start_export_receive(req, setup.hash(), recipient_secret, confirmation)?;
    if setup.my_index(&ctx.signer.public_key()) != Some(recipient) {
        return Err(Error::InvalidInput("this identity is not the export recipient".into()));
    }
    let session = Session::new(setup, ctx.signer.clone(), ctx.guard, rng).map_err(from_message)?;
    let mut io = Io::new(ctx.relay, session, &ctx.options, P2pMode::Plain, setup.protocol());
    drive(&mut io, Box::new(round), nothing, rng).await
}

/// Tells the other parties of `setup` that this party will not take part (e.g. it is busy),
/// in a signed abort message, so that their runs fail at once with [`Error::PeerAborted`]
/// instead of at their round timeout. Does not touch the replay guard: nothing ran.
///
/// # Errors
/// [`Error::InvalidInput`] when this identity is not a participant of `setup`;
/// [`Error::Transport`] or [`Error::RelayFull`] when the notice could not be published.
pub async fn announce_abort<R: Relay + ?Sized>(
    ctx: &RunContext<'_, R>,
    setup: &Setup,
    reason: AbortReason,
    rng: &mut (dyn CryptoRng + Send),
) -> Result<(), Error> {
    let session = Session::resume(setup, ctx.signer.clone(), rng).map_err(from_message)?;
    announce(ctx.relay, &session, reason, ctx.options.ttl_for(setup.protocol())).await
}
