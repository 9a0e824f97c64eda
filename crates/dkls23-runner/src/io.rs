//! The message plumbing of one run: sealing and publishing a round's payloads under their
//! message ids, collecting what a round expects (the first candidate that authenticates),
//! watching the peers' abort notices meanwhile, releasing what every peer provably read, and
//! the per-round counters the observer is told about.

use std::time::Duration;

use dkls23_core::error::{AbortReason, Error};
use dkls23_core::math::PartyIndex;
use dkls23_core::message::{ABORT_ROUND, AbortNotice, Expect, MessageError, P2pMode, Session};
use dkls23_core::round::{Expected, Inbox, Outgoing, Received};
use dkls23_core::setup::ProtocolId;
use msg_relay_api::{MessageId, Relay, RelayFuture, Release};
use tokio::time::Instant;

use crate::options::{RoundEvent, RunOptions};

/// Largest payload any round of DKG or signing produces, with headroom (checked before opening).
const MAX_PAYLOAD: usize = 64 * 1024;

pub(crate) fn from_message(e: MessageError) -> Error {
    match e.culprit() {
        Some(party) => Error::Blame { party, reason: e.to_string() },
        None => Error::InvalidInput(e.to_string()),
    }
}

fn relay_err(e: msg_relay_api::RelayError) -> Error {
    match e {
        msg_relay_api::RelayError::StoreFull { held, limit } => Error::RelayFull { held, limit },
        other => Error::Transport(other.to_string()),
    }
}

/// The counters of the round in progress (the one place where round timing is kept).
struct RoundAcc {
    round: u16,
    start: Instant,
    sent_messages: usize,
    sent_bytes: u64,
    received_messages: usize,
    received_bytes: u64,
}

pub(crate) struct Io<'a, R: Relay + ?Sized> {
    relay: &'a R,
    pub(crate) session: Session,
    opts: RunOptions,
    p2p_mode: P2pMode,
    protocol: ProtocolId,
    acc: Option<RoundAcc>,
    /// TTL of this run's messages.
    ttl: Duration,
    /// What this run published and the relay client may still keep for re-publishing:
    /// (round, id), released as soon as every receiver provably has them.
    published: Vec<(u16, MessageId)>,
    /// Outstanding asks for every peer's abort message, watched while collecting.
    aborts: AbortWatch<'a>,
    /// The last round whose messages were collected from every peer.
    last_collected: u16,
    /// A round whose messages are left at the relay after reading (not consumed), so that
    /// they can be read again to confirm a staged share.
    pub(crate) keep_round: Option<u16>,
}

/// Asks for the peers' abort messages: (peer, message id, the ask).
struct AbortWatch<'a> {
    asks: Vec<(PartyIndex, MessageId, CandidateAsk<'a>)>,
}

/// An outstanding ask for a candidate.
type CandidateAsk<'a> = RelayFuture<'a, (u16, Vec<u8>)>;

/// A relay's answer for one candidate: (its number, payload).
type CandidateAnswer = Result<(u16, Vec<u8>), msg_relay_api::RelayError>;

impl AbortWatch<'_> {
    /// The next answered ask: (peer, id, answer). Pends forever when none is left.
    async fn next(&mut self) -> (PartyIndex, MessageId, CandidateAnswer) {
        std::future::poll_fn(|cx| {
            let ready = self.asks.iter_mut().enumerate().find_map(|(k, (_, _, ask))| {
                match ask.as_mut().poll(cx) {
                    std::task::Poll::Ready(answer) => Some((k, answer)),
                    std::task::Poll::Pending => None,
                }
            });
            match ready {
                Some((k, answer)) => {
                    let (from, id, _) = self.asks.swap_remove(k);
                    std::task::Poll::Ready((from, id, answer))
                }
                None => std::task::Poll::Pending,
            }
        })
        .await
    }
}

/// What ended the wait for one message.
enum Waited {
    Message(Result<CandidateAnswer, tokio::time::error::Elapsed>),
    Abort(PartyIndex, MessageId, CandidateAnswer),
}

impl<R: Relay + ?Sized> Drop for Io<'_, R> {
    fn drop(&mut self) {
        // The session is over here (done, failed or cancelled). Every peer that sent us its
        // messages of the last collected round had read ours of the round before; a peer may
        // still be collecting our later messages: the client keeps those for its grace period.
        let last = self.last_collected;
        let (read, rest): (Vec<_>, Vec<_>) =
            self.published.drain(..).partition(|(r, _)| last > 0 && *r < last);
        let ids = |v: Vec<(u16, MessageId)>| v.into_iter().map(|(_, id)| id).collect::<Vec<_>>();
        self.relay.release(&ids(read), Release::Now);
        self.relay.release(&ids(rest), Release::AfterGrace);
    }
}

fn byte_len(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

impl<'a, R: Relay + ?Sized> Io<'a, R> {
    pub(crate) fn new(
        relay: &'a R,
        session: Session,
        opts: &RunOptions,
        p2p_mode: P2pMode,
        protocol: ProtocolId,
    ) -> Self {
        let asks = session
            .peers()
            .filter_map(|j| {
                let id = MessageId(session.mid(j, None, ABORT_ROUND).ok()?);
                Some((j, id, relay.ask_candidate(id, 0)))
            })
            .collect();
        Self {
            aborts: AbortWatch { asks },
            last_collected: 0,
            keep_round: None,
            relay,
            session,
            opts: opts.clone(),
            p2p_mode,
            protocol,
            acc: None,
            ttl: opts.ttl_for(protocol),
            published: Vec::new(),
        }
    }

    /// Where this run stages a new share, if anywhere.
    pub(crate) fn stage(&self) -> Option<std::sync::Arc<dyn crate::options::StageShare>> {
        self.opts.stage.clone()
    }

    fn me(&self) -> PartyIndex {
        self.session.my_index()
    }

    /// The counters of `round`, started now if `round` is not the round in progress.
    fn track(&mut self, round: u16) -> &mut RoundAcc {
        let acc = self.acc.take().filter(|a| a.round == round).unwrap_or_else(|| RoundAcc {
            round,
            start: Instant::now(),
            sent_messages: 0,
            sent_bytes: 0,
            received_messages: 0,
            received_bytes: 0,
        });
        self.acc.insert(acc)
    }

    /// Ends `round`: releases what every peer provably has, reports the round to the observer
    /// (if any) and resets the counters.
    pub(crate) fn end_round(&mut self, round: u16) {
        self.last_collected = self.last_collected.max(round);
        // Every peer published its `round` message, so it was past collecting `round - 2` (a
        // party publishes a round at most one round before it finished collecting the one
        // before): our messages up to `round - 2` have been read by everyone.
        if round > 2 && self.published.iter().any(|(r, _)| *r <= round - 2) {
            let (read, kept): (Vec<_>, Vec<_>) =
                self.published.drain(..).partition(|(r, _)| *r <= round - 2);
            self.published = kept;
            let ids: Vec<MessageId> = read.into_iter().map(|(_, id)| id).collect();
            self.relay.release(&ids, Release::Now);
        }
        let Some(acc) = self.acc.take().filter(|a| a.round == round) else {
            return;
        };
        if let Some(obs) = &self.opts.observer {
            obs.round_done(&RoundEvent {
                protocol: self.protocol,
                round,
                sent_messages: acc.sent_messages,
                sent_bytes: acc.sent_bytes,
                received_messages: acc.received_messages,
                received_bytes: acc.received_bytes,
                elapsed: acc.start.elapsed(),
            });
        }
    }

    pub(crate) async fn send(&mut self, round: u16, out: &Outgoing) -> Result<(), Error> {
        let me = self.me();
        self.track(round);
        let hooks = self.opts.hooks.clone();
        let out = hooks.apply(self.protocol, round, out);
        if let Some(b) = &out.broadcast {
            let bytes = self.session.broadcast(round, b).map_err(from_message)?;
            let id = self.session.mid(me, None, round).map_err(from_message)?;
            // Every peer may read a broadcast (an upper bound: a peer that does not read it
            // leaves it to the TTL).
            let readers = u16::try_from(self.session.peers().count()).unwrap_or(u16::MAX);
            self.publish(round, id, readers, bytes).await?;
        }
        for (to, payload) in &out.p2p {
            let bytes =
                self.session.send_p2p(*to, round, payload, self.p2p_mode).map_err(from_message)?;
            let id = self.session.mid(me, Some(*to), round).map_err(from_message)?;
            self.publish(round, id, 1, bytes).await?;
        }
        Ok(())
    }

    async fn publish(
        &mut self,
        round: u16,
        id: [u8; msg_relay_api::MESSAGE_ID_LEN],
        readers: u16,
        bytes: Vec<u8>,
    ) -> Result<(), Error> {
        let len = byte_len(&bytes);
        let id = MessageId(id);
        self.published.push((round, id));
        self.relay.publish_for(id, self.ttl, readers, bytes).await.map_err(relay_err)?;
        let acc = self.track(round);
        acc.sent_messages += 1;
        acc.sent_bytes += len;
        Ok(())
    }

    /// The reason of an authenticated abort message from `from`; `None` for bytes that do not
    /// authenticate (dropped, like any unauthenticated message).
    async fn check_abort(
        &mut self,
        from: PartyIndex,
        id: MessageId,
        (n, raw): (u16, Vec<u8>),
    ) -> Option<AbortReason> {
        let notice = self.session.receive(&raw, &Expect::abort(from)).ok().flatten();
        let Some(notice) = notice.and_then(|m| m.abort()) else {
            // Not from that peer (anyone can publish under its abort id): watch the next
            // candidate instead.
            if let Some(next) = n.checked_add(1) {
                self.aborts.asks.push((from, id, self.relay.ask_candidate(id, next)));
            }
            return None;
        };
        let _ = self.relay.consume_candidate(id, n, self.me()).await;
        Some(AbortReason::from_u16(notice.reason))
    }

    /// Tells every peer that this run failed with `e` (a signed abort message), so that they
    /// fail at once instead of at their round timeout. Best effort and bounded in time.
    pub(crate) async fn announce_failure(&mut self, e: &Error) {
        let Some(reason) = AbortReason::for_error(e) else { return };
        let _ = announce(self.relay, &self.session, reason, self.ttl).await;
    }

    /// Waits until `deadline` for a candidate of `id` numbered `from` or later, watching the
    /// peers' abort notices meanwhile. `None` when the deadline passed.
    async fn wait_candidate(
        &mut self,
        round: u16,
        id: MessageId,
        from: u16,
        deadline: Instant,
    ) -> Result<Option<(u16, Vec<u8>)>, Error> {
        // After the deadline, still give already-published messages a moment to arrive.
        let until = deadline.max(Instant::now() + Duration::from_millis(20));
        let relay = self.relay;
        let mut ask = std::pin::pin!(tokio::time::timeout_at(until, relay.ask_candidate(id, from)));
        // A peer's abort notice ends the wait (and the run) at once.
        let answer = loop {
            let waited = {
                let mut abort = std::pin::pin!(self.aborts.next());
                std::future::poll_fn(|cx| {
                    if let std::task::Poll::Ready(r) = ask.as_mut().poll(cx) {
                        return std::task::Poll::Ready(Waited::Message(r));
                    }
                    abort.as_mut().poll(cx).map(|(from, aid, r)| Waited::Abort(from, aid, r))
                })
                .await
            };
            match waited {
                Waited::Message(r) => break r,
                Waited::Abort(from, aid, Ok(answer)) => {
                    if let Some(reason) = self.check_abort(from, aid, answer).await {
                        return Err(Error::PeerAborted { party: from, round: round as u8, reason });
                    }
                }
                // That peer's abort ask failed: stop watching it.
                Waited::Abort(..) => {}
            }
        };
        match answer {
            Ok(Ok(found)) => Ok(Some(found)),
            Ok(Err(e)) => Err(relay_err(e)),
            Err(_) => Ok(None),
        }
    }

    /// Collects what a round expects, then ends the round.
    pub(crate) async fn collect_expected(
        &mut self,
        round: u16,
        e: &Expected,
    ) -> Result<Received, Error> {
        let (bcast, p2p) = if e.bcast == e.p2p {
            self.collect_part(round, &e.bcast, true, true).await?
        } else {
            let (b, _) = self.collect_part(round, &e.bcast, true, false).await?;
            let (_, p) = self.collect_part(round, &e.p2p, false, true).await?;
            (b, p)
        };
        self.end_round(round);
        Ok(Received { bcast, p2p })
    }

    /// Collects the broadcasts and/or p2p messages of `round` from `from` (the round goes on).
    pub(crate) async fn collect_part(
        &mut self,
        round: u16,
        from: &[PartyIndex],
        bcast: bool,
        p2p: bool,
    ) -> Result<(Inbox, Inbox), Error> {
        let me = self.me();
        self.track(round);
        let deadline = Instant::now() + self.opts.round_timeout;
        let mut got_b = Inbox::new();
        let mut got_p = Inbox::new();
        let mut missing = Vec::new();
        for &j in from {
            for is_p2p in [false, true] {
                if (is_p2p && !p2p) || (!is_p2p && !bcast) {
                    continue;
                }
                let to = if is_p2p { Some(me) } else { None };
                let id = MessageId(self.session.mid(j, to, round).map_err(from_message)?);
                let expect = if is_p2p {
                    Expect::p2p(j, round, MAX_PAYLOAD, self.p2p_mode)
                } else {
                    Expect::broadcast(j, round, MAX_PAYLOAD)
                };
                // Anyone can publish under `id`; the relay keeps every publisher's payload as
                // a numbered candidate. Take the first that authenticates as `j`'s.
                let mut from_candidate = 0u16;
                let taken = loop {
                    let Some((n, raw)) =
                        self.wait_candidate(round, id, from_candidate, deadline).await?
                    else {
                        break None;
                    };
                    if let Some(msg) = self.session.receive(&raw, &expect).map_err(from_message)? {
                        break Some((n, raw, msg));
                    }
                    match n.checked_add(1) {
                        Some(next) => from_candidate = next,
                        None => break None,
                    }
                };
                let Some((n, raw, msg)) = taken else {
                    missing.push(j);
                    continue;
                };
                // Authenticated and taken: the relay may drop it once every receiver has it.
                // Best effort; a lost consume leaves it to the TTL.
                if self.keep_round != Some(round) {
                    let _ = self.relay.consume_candidate(id, n, me).await;
                }
                let acc = self.track(round);
                acc.received_messages += 1;
                acc.received_bytes += byte_len(&raw);
                let payload = msg.into_payload().to_vec();
                if is_p2p {
                    got_p.insert(j, payload);
                } else {
                    got_b.insert(j, payload);
                }
            }
        }
        if !missing.is_empty() {
            missing.dedup();
            return Err(Error::Timeout { round: round as u8, missing });
        }
        Ok((got_b, got_p))
    }
}

/// Publishes this party's signed abort notice for `session`, for every peer.
pub(crate) async fn announce<R: Relay + ?Sized>(
    relay: &R,
    session: &Session,
    reason: AbortReason,
    ttl: Duration,
) -> Result<(), Error> {
    let notice = AbortNotice { reason: reason.to_u16(), accused: None };
    let bytes = session.abort(notice).map_err(from_message)?;
    let id = MessageId(session.mid(session.my_index(), None, ABORT_ROUND).map_err(from_message)?);
    let readers = u16::try_from(session.peers().count()).unwrap_or(u16::MAX);
    match tokio::time::timeout(Duration::from_secs(2), relay.publish_for(id, ttl, readers, bytes))
        .await
    {
        Ok(r) => r.map_err(relay_err),
        Err(_) => Err(Error::Transport("abort notice not acknowledged in time".into())),
    }
}
