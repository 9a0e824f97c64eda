//! The one loop every protocol runs in: publish a round's messages, collect what the round
//! expects, consume the round, until a round returns the protocol's output.

use dkls23_core::error::Error;
use dkls23_core::round::{BoxedRound, Outgoing, Step};
use msg_relay_api::Relay;
use rand_core::CryptoRng;
use zeroize::Zeroize;

use crate::io::{Io, from_message};

/// Drives `round` (with its first messages `out`) to the end through `io`.
///
/// Before a round's messages leave, the channel keys it needs are established and, for the
/// commit round of a refresh or reshare with staging enabled, the new share is staged and the
/// acknowledgements are left at the relay for a later confirmation. Sent payloads are wiped.
pub(crate) async fn drive<'a, O, R: Relay + ?Sized>(
    io: &mut Io<'_, R>,
    mut round: BoxedRound<'a, O>,
    mut out: Outgoing,
    rng: &mut (dyn CryptoRng + Send),
) -> Result<O, Error> {
    loop {
        for (j, e) in round.peer_ephemeral_keys() {
            io.session.establish(j, &e).map_err(from_message)?;
        }
        let number = round.number();
        if round.is_commit_round() {
            stage(io, &*round, number).await?;
        }
        let sent = io.send(number, &out).await;
        out.zeroize();
        sent?;
        let received = io.collect_expected(number, &round.expects()).await?;
        match round.next(rng, received)? {
            Step::Next(next, next_out) => {
                round = next;
                out = next_out;
            }
            Step::Done(output) => return Ok(output),
        }
    }
}

/// Keeps the pending share of a commit round before its acknowledgement leaves: a peer that
/// commits on it can count on this party holding the new share too. The acknowledgements stay
/// at the relay (for their TTL) so that the staged share can be confirmed later.
async fn stage<O, R: Relay + ?Sized>(
    io: &mut Io<'_, R>,
    round: &(dyn dkls23_core::round::Round<'_, Output = O> + Send + Sync),
    number: u16,
) -> Result<(), Error> {
    let Some(stage) = io.stage() else { return Ok(()) };
    if let Some(share) = round.pending_share() {
        stage.stage(share).await.map_err(|e| {
            Error::Unattributable(format!("could not stage the new key share: {e}"))
        })?;
    }
    io.keep_round = Some(number);
    Ok(())
}

/// Passes `result` through; if it is an error, first tells every peer why (a signed abort
/// notice), so that they fail at once instead of at their round timeout.
pub(crate) async fn announcing<T, R: Relay + ?Sized>(
    io: &mut Io<'_, R>,
    result: Result<T, Error>,
) -> Result<T, Error> {
    if let Err(e) = &result {
        io.announce_failure(e).await;
    }
    result
}
