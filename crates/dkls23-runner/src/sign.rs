//! Signing runs: presigning and signing in one go ([`run_sign`]), presigning alone
//! ([`run_presign`]) and the online phase of a stored presignature ([`run_finish`]).

use dkls23_core::KeyShare;
use dkls23_core::error::Error;
use dkls23_core::math::PartyIndex;
use dkls23_core::message::{P2pMode, Session};
use dkls23_core::setup::{ProtocolId, ReplayError, Setup};
use dkls23_core::sign::{
    self, FinishCommitRound, ONLINE_ROUND, PresignRequest, Presignature, SignConfig, SignRequest,
    Signature, finish_marker,
};
use msg_relay_api::Relay;
use rand_core::CryptoRng;

use crate::context::RunContext;
use crate::drive::{announcing, drive};
use crate::io::{Io, from_message};

/// Rounds S0–S2 through `io`: returns the presignature (the message layer stays open).
async fn presign<R: Relay + ?Sized>(
    io: &mut Io<'_, R>,
    share: &KeyShare,
    setup: &Setup,
    path: &[u32],
    banned: Vec<PartyIndex>,
    rng: &mut (dyn CryptoRng + Send),
) -> Result<Presignature, Error> {
    let cfg = SignConfig {
        setup_hash: *setup.hash(),
        signers: setup.participants().iter().map(|(i, _)| *i).collect(),
        path: path.to_vec(),
        ephemeral_public: io.session.ephemeral_public(),
        banned,
    };
    let (r1, s0) = sign::start(rng, share, cfg)?;
    drive(io, Box::new(r1), s0, rng).await
}

/// Checks that a signing `setup` (its protocol already checked by the caller, which needs it
/// to decode `extra`) and `share` belong together and opens the session.
fn open_sign_session<R: Relay + ?Sized>(
    ctx: &RunContext<'_, R>,
    setup: &Setup,
    share: &KeyShare,
    (key_id, keygen_sid): (&[u8; 32], &[u8; 32]),
    rng: &mut (dyn CryptoRng + Send),
) -> Result<Session, Error> {
    if key_id != share.key_id() || keygen_sid != share.keygen_sid() {
        return Err(Error::InvalidInput(
            "the setup names another key or another epoch of this key".into(),
        ));
    }
    for (i, key) in setup.participants() {
        if share.identity(*i) != Some(key.to_bytes().as_slice()) {
            return Err(Error::InvalidInput(format!(
                "participant {i}'s identity key does not match the key share"
            )));
        }
    }
    let session = Session::new(setup, ctx.signer.clone(), ctx.guard, rng).map_err(from_message)?;
    if session.my_index() != share.index() {
        return Err(Error::InvalidInput("this identity is not the key share's party".into()));
    }
    Ok(session)
}

/// Runs presigning and signing for `setup` (protocol `Sign`; its participants are the signers
/// and its `extra` is a [`SignRequest`]). Returns the verified signature.
///
/// Signing with a party of the context's ban list or refused parties fails with
/// [`Error::InvalidInput`] before any protocol message is sent (the other signers are told in an
/// abort notice); with a ban list, a `BanAndAbort` culprit is recorded in it.
///
/// # Errors
/// Any [`Error`]; without a ban list in `ctx`, [`Error::BanAndAbort`] must be persisted by the
/// caller.
pub async fn run_sign<R: Relay + ?Sized>(
    ctx: &RunContext<'_, R>,
    setup: &Setup,
    share: &KeyShare,
    rng: &mut (dyn CryptoRng + Send),
) -> Result<Signature, Error> {
    if setup.protocol() != ProtocolId::Sign {
        return Err(Error::InvalidInput("the setup is not a signing setup".into()));
    }
    let req = SignRequest::from_bytes(setup.extra())
        .map_err(|e| Error::InvalidInput(format!("signing request: {e}")))?;
    let banned = ctx.banned(share.key_id());
    let result = async {
        let session = open_sign_session(ctx, setup, share, (&req.key_id, &req.keygen_sid), rng)?;
        let mut io = Io::new(ctx.relay, session, &ctx.options, P2pMode::Plain, setup.protocol());
        let result = async {
            let pre = presign(&mut io, share, setup, &req.path, banned, rng).await?;
            let (last, s3) = pre.sign(&req.message, ONLINE_ROUND);
            drive(&mut io, Box::new(last), s3, rng).await
        }
        .await;
        announcing(&mut io, result).await
    }
    .await;
    ctx.record_ban(share.key_id(), &result, Some);
    result
}

/// Runs presigning (S0–S2) for `setup` (protocol `Sign`; its `extra` is a [`PresignRequest`]).
/// Returns a single-use [`Presignature`] to store (encrypted) and later pass to [`run_finish`]
/// together with the same setup. Bans are handled as in [`run_sign`].
///
/// # Errors
/// Any [`Error`]; without a ban list in `ctx`, [`Error::BanAndAbort`] must be persisted by the
/// caller.
pub async fn run_presign<R: Relay + ?Sized>(
    ctx: &RunContext<'_, R>,
    setup: &Setup,
    share: &KeyShare,
    rng: &mut (dyn CryptoRng + Send),
) -> Result<Presignature, Error> {
    if setup.protocol() != ProtocolId::Sign {
        return Err(Error::InvalidInput("the setup is not a signing setup".into()));
    }
    let req = PresignRequest::from_bytes(setup.extra())
        .map_err(|e| Error::InvalidInput(format!("presigning request: {e}")))?;
    let banned = ctx.banned(share.key_id());
    let result = async {
        let session = open_sign_session(ctx, setup, share, (&req.key_id, &req.keygen_sid), rng)?;
        let mut io = Io::new(ctx.relay, session, &ctx.options, P2pMode::Plain, setup.protocol());
        let result = presign(&mut io, share, setup, &req.path, banned, rng).await;
        announcing(&mut io, result).await
    }
    .await;
    ctx.record_ban(share.key_id(), &result, Some);
    result
}

/// The online phase for a stored presignature: consumes it, signs the 32-byte prehash `message`
/// and returns the verified signature. Every signer must call it with the same `setup` (the one
/// the presignature was made with) and the same message.
///
/// The caller must have deleted the stored presignature durably **before** calling this (the
/// `Fresh → Consumed` transition of `protocols.md` §3.6), so a crash can never lead to a
/// second use. On top of that, two rules keep a presignature that came back (a restored backup,
/// a copied directory) from being finished twice while any honest signer remembers it:
/// 1. [`finish_marker`] of the setup is recorded in the context's replay guard first; a party
///    that finished this presignature before refuses, before sending anything.
/// 2. Every signer first broadcasts a signed commitment to (setup, message) and releases its S3
///    share only once it holds every other signer's matching commitment
///    ([`FinishCommitRound`]). A restored party can therefore not be walked into a second S3
///    unless *every* other signer agrees, i.e. unless every other signer forgot the
///    presignature too (or is the attacker: a 2-party key whose honest party is the restored
///    one; see the operations notes).
///
/// A signer banned (in the context's ban list or refused parties) since the presignature was
/// made is refused before anything is sent or recorded.
///
/// # Errors
/// [`Error::InvalidInput`] if the setup is not the presignature's, a signer is banned, or this
/// party finished it before; [`Error::Timeout`] if a signer never commits (e.g. it refused a second finish);
/// [`Error::ViewMismatch`] if a signer committed to a different message; otherwise any
/// [`Error`] of the final round.
pub async fn run_finish<R: Relay + ?Sized>(
    ctx: &RunContext<'_, R>,
    setup: &Setup,
    presignature: Presignature,
    message: &[u8; 32],
    rng: &mut (dyn CryptoRng + Send),
) -> Result<Signature, Error> {
    if setup.protocol() != ProtocolId::Sign || setup.hash() != presignature.setup_hash() {
        return Err(Error::InvalidInput(
            "the setup is not the one this presignature was made with".into(),
        ));
    }
    // A co-signer banned since the presignature was made is refused before anything is sent.
    let banned = ctx.banned(presignature.key_id());
    if let Some(b) = presignature.signers().iter().find(|s| banned.contains(s)) {
        return Err(Error::InvalidInput(format!(
            "signer {b} is banned for this key: finishing this presignature with it is refused"
        )));
    }
    ctx.guard.check_and_record(&finish_marker(setup.hash())).map_err(|e| match e {
        ReplayError::Reused => Error::InvalidInput(
            "this party already finished this presignature: a second finish is refused \
             (two signatures from one presignature reveal the key)"
                .into(),
        ),
        ReplayError::Storage(s) => {
            Error::InvalidInput(format!("the finished-presignature record failed: {s}"))
        }
        other => Error::InvalidInput(format!("the finished-presignature record failed: {other}")),
    })?;
    let session = Session::resume(setup, ctx.signer.clone(), rng).map_err(from_message)?;
    let mut io = Io::new(ctx.relay, session, &ctx.options, P2pMode::Plain, setup.protocol());
    let (commit, out) = FinishCommitRound::start(presignature, message);
    let result = drive(&mut io, Box::new(commit), out, rng).await;
    announcing(&mut io, result).await
}
