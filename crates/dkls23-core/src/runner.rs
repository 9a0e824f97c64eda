//! A small async runner: drives the sans-IO rounds through the message layer and a [`Relay`].
//!
//! Each round: seal our payloads (signed broadcasts, encrypted p2p), publish them under their
//! message ids, then ask the relay for every message id we expect and open them with the receive
//! rules. Unauthenticated or unexpected bytes are dropped (never an abort); if a party's message
//! does not arrive before the round deadline the run ends with [`Error::Timeout`] naming it.
//!
//! CPU-heavy rounds run inline on the calling task; a service running many sessions should call
//! these functions from a blocking-capable context (e.g. `spawn_blocking` + a local runtime).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use msg_relay_api::{MessageId, Relay, RelayFuture, Release};
use rand_core::CryptoRng;
use tokio::time::Instant;

use crate::dkg::{self, DkgConfig, Outgoing};
use crate::error::{AbortReason, Error};
use crate::identity::IdentitySigner;
use crate::keyshare::KeyShare;
use crate::math::PartyIndex;
use crate::message::{ABORT_ROUND, AbortNotice, Expect, MessageError, P2pMode, Session};
use crate::setup::{ProtocolId, ReplayError, ReplayGuard, Setup};
use crate::sign::{self, Presignature, SignConfig, Signature};
use crate::transcript::{Tag, th};

/// Timeouts, TTLs and the round observer of a run.
#[derive(Clone)]
pub struct RunOptions {
    /// How long to wait for every message of one round.
    pub round_timeout: Duration,
    /// TTL of published messages at the relay: only the backstop for receivers that never
    /// come, since every message is published for its receivers and consumed by them once
    /// read (the relay drops it then). `None` (the default) sizes it per protocol: the round
    /// timeout times (the protocol's rounds + 1), the longest a run of it can last; see
    /// [`RunOptions::ttl_for`].
    pub message_ttl: Option<Duration>,
    /// Told about every completed round (see [`RoundObserver`]); `None` by default.
    pub observer: Option<Arc<dyn RoundObserver>>,
    /// Test-only hooks; inert (and empty) in every build without the `testing` feature.
    pub hooks: RunHooks,
    /// Where a refresh/reshare keeps its new share before its acknowledgement goes out (see
    /// [`StageShare`] and [`confirm_staged`]); `None`: the caller commits the outcome itself.
    pub stage: Option<Arc<dyn StageShare>>,
}

/// A tamper function: `(protocol, message-id round, this party's outgoing payloads)`.
#[cfg(feature = "testing")]
pub type TamperFn = dyn Fn(ProtocolId, u16, &mut Outgoing) + Send + Sync;

/// Test-only hooks of a run. Without the `testing` feature this type is empty and a run sends
/// exactly what its rounds produced; with it, a test can make this party cheat by rewriting its
/// *plaintext* payloads before they are signed and sealed (tampering in transit can only fail
/// authentication, which never blames anybody).
#[derive(Clone, Default)]
pub struct RunHooks {
    #[cfg(feature = "testing")]
    tamper: Option<Arc<TamperFn>>,
}

impl RunHooks {
    /// Hooks that pass every outgoing payload of the run through `f` first.
    #[cfg(feature = "testing")]
    pub fn tamper(f: impl Fn(ProtocolId, u16, &mut Outgoing) + Send + Sync + 'static) -> Self {
        Self { tamper: Some(Arc::new(f)) }
    }

    /// What this party actually sends in `round`.
    #[cfg_attr(not(feature = "testing"), allow(unused_variables))]
    fn apply<'o>(&self, protocol: ProtocolId, round: u16, out: &'o Outgoing) -> Cow<'o, Outgoing> {
        #[cfg(feature = "testing")]
        if let Some(f) = &self.tamper {
            let mut changed = out.clone();
            f(protocol, round, &mut changed);
            return Cow::Owned(changed);
        }
        Cow::Borrowed(out)
    }
}

impl std::fmt::Debug for RunHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[cfg(feature = "testing")]
        if self.tamper.is_some() {
            return f.write_str("RunHooks(tamper)");
        }
        f.write_str("RunHooks(none)")
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            round_timeout: Duration::from_secs(60),
            message_ttl: None,
            observer: None,
            hooks: RunHooks::default(),
            stage: None,
        }
    }
}

impl RunOptions {
    /// The TTL of the messages a run of `protocol` publishes: [`RunOptions::message_ttl`] when
    /// set, else `round_timeout × (rounds + 1)` (a phone-paced keygen with a 2-minute round
    /// timeout keeps its messages up to 10 minutes, a server signing with 10 seconds for
    /// under a minute).
    pub fn ttl_for(&self, protocol: ProtocolId) -> Duration {
        self.message_ttl.unwrap_or_else(|| {
            let rounds: u32 = match protocol {
                ProtocolId::Dkg | ProtocolId::Reshare => 4,
                // Presign (3) and its online finish (2) are separate runs; a full sign has 4.
                ProtocolId::Sign => 4,
                // Import rounds 1–2, then the 4 rounds of its built-in refresh.
                ProtocolId::Import => 6,
                ProtocolId::Export => 2,
            };
            self.round_timeout.saturating_mul(rounds + 1)
        })
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("round_timeout", &self.round_timeout)
            .field("message_ttl", &self.message_ttl)
            .field("observer", &self.observer.as_ref().map(|_| "<observer>"))
            .field("hooks", &self.hooks)
            .field("stage", &self.stage.as_ref().map(|_| "<stage>"))
            .finish()
    }
}

/// What one completed round of a run exchanged, and how long it took.
///
/// Byte counts are of the sealed wire messages (what the relay carries), not of the protocol
/// payloads inside them. A broadcast counts once on the sending side and once at each receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoundEvent {
    /// The protocol of the setup this round belongs to. A key import reports its own rounds 1
    /// and 2 as `Import`, then the rounds 1–4 of its built-in refresh as `Reshare`.
    pub protocol: ProtocolId,
    /// The round number (message-id round, from 1).
    pub round: u16,
    /// Messages this party published in the round.
    pub sent_messages: usize,
    /// Wire bytes of those messages.
    pub sent_bytes: u64,
    /// Messages this party received and accepted in the round.
    pub received_messages: usize,
    /// Wire bytes of those messages.
    pub received_bytes: u64,
    /// From the start of the round's first send (or, in a receive-only round, its first
    /// receive) until its last message was collected. Excludes the protocol computation that
    /// follows the round; includes waiting for slower peers.
    pub elapsed: Duration,
}

/// Receives a [`RoundEvent`] after each round a runner completes (its messages sent and every
/// expected message collected). Rounds that fail are not reported.
///
/// Called inline on the protocol task: keep it cheap and never block (record a metric, push to
/// a channel, write a log line).
pub trait RoundObserver: Send + Sync {
    /// One round is done.
    fn round_done(&self, ev: &RoundEvent);
}

/// Largest payload any round of DKG or signing produces, with headroom (checked before opening).
const MAX_PAYLOAD: usize = 64 * 1024;

fn from_message(e: MessageError) -> Error {
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

struct Io<'a, R: Relay + ?Sized> {
    relay: &'a R,
    session: Session,
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
    keep_round: Option<u16>,
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

type Inbox = BTreeMap<PartyIndex, Vec<u8>>;

fn byte_len(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

impl<'a, R: Relay + ?Sized> Io<'a, R> {
    fn new(
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
    fn end_round(&mut self, round: u16) {
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

    async fn send(&mut self, round: u16, out: &Outgoing) -> Result<(), Error> {
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
    async fn announce_failure(&mut self, e: &Error) {
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

    /// Collects the broadcasts and/or p2p messages of `round` from `from`, then ends the round.
    async fn collect(
        &mut self,
        round: u16,
        from: &[PartyIndex],
        bcast: bool,
        p2p: bool,
    ) -> Result<(Inbox, Inbox), Error> {
        let got = self.collect_part(round, from, bcast, p2p).await?;
        self.end_round(round);
        Ok(got)
    }

    /// Collects the broadcasts and/or p2p messages of `round` from `from` (the round goes on).
    async fn collect_part(
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
async fn announce<R: Relay + ?Sized>(
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

/// Tells the other parties of `setup` that this party will not take part (e.g. it is busy),
/// in a signed abort message, so that their runs fail at once with [`Error::PeerAborted`]
/// instead of at their round timeout. Does not touch the replay guard: nothing ran.
///
/// # Errors
/// [`Error::InvalidInput`] when `signer` is not a participant of `setup`; [`Error::Transport`]
/// or [`Error::RelayFull`] when the notice could not be published.
pub async fn announce_abort<R: Relay + ?Sized>(
    relay: &R,
    setup: &Setup,
    signer: Arc<dyn IdentitySigner + Send + Sync>,
    reason: AbortReason,
    rng: &mut (impl CryptoRng + ?Sized),
    opts: &RunOptions,
) -> Result<(), Error> {
    let session = Session::resume(setup, signer, rng).map_err(from_message)?;
    announce(relay, &session, reason, opts.ttl_for(setup.protocol())).await
}

/// Runs a DKG for `setup` (protocol `Dkg`) as the party whose identity `signer` holds.
///
/// # Errors
/// Any [`Error`]; nothing is returned (and nothing should be stored) unless every party
/// acknowledged the same public data.
pub async fn run_dkg<R: Relay + ?Sized>(
    relay: &R,
    setup: &Setup,
    signer: Arc<dyn IdentitySigner + Send + Sync>,
    guard: &(impl ReplayGuard + ?Sized),
    rng: &mut (impl CryptoRng + ?Sized),
    opts: &RunOptions,
) -> Result<KeyShare, Error> {
    if setup.protocol() != ProtocolId::Dkg {
        return Err(Error::InvalidInput("the setup is not a DKG setup".into()));
    }
    let session = Session::new(setup, signer, guard, rng).map_err(from_message)?;
    let me = session.my_index();
    let cfg = DkgConfig {
        n: setup.n(),
        t: setup.t(),
        me,
        setup_hash: *setup.hash(),
        ephemeral_public: session.ephemeral_public(),
        identities: setup.participants().iter().map(|(_, k)| k.to_bytes()).collect(),
    };
    let others: Vec<PartyIndex> = session.peers().collect();
    let mut io = Io::new(relay, session, opts, P2pMode::Signed, setup.protocol());
    let result = async {
        let (r1, k1) = dkg::start(rng, cfg)?;
        io.send(1, &Outgoing { broadcast: Some(k1), p2p: BTreeMap::new() }).await?;
        let (k1s, _) = io.collect(1, &others, true, false).await?;
        let (r2, out) = r1.next(rng, &k1s)?;
        for (j, e) in r2.peer_ephemeral_keys() {
            io.session.establish(j, &e).map_err(from_message)?;
        }
        io.send(2, &out).await?;
        let (b2, p2) = io.collect(2, &others, true, true).await?;
        let (r3, out) = r2.next(rng, &b2, &p2)?;
        io.send(3, &out).await?;
        let (b3, p3) = io.collect(3, &others, true, true).await?;
        let (r4, out) = r3.next(&b3, &p3)?;
        io.send(4, &out).await?;
        let (acks, _) = io.collect(4, &others, true, false).await?;
        r4.finish(&acks)
    }
    .await;
    if let Err(e) = &result {
        io.announce_failure(e).await;
    }
    result
}

/// What a signing setup carries in its `extra` field (so it is bound into `setup_hash`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignRequest {
    /// The key to sign with.
    pub key_id: [u8; 32],
    /// The key's current `keygen_sid` (binds the epoch).
    pub keygen_sid: [u8; 32],
    /// Non-hardened derivation path.
    pub path: Vec<u32>,
    /// The 32-byte prehash to sign.
    pub message: [u8; 32],
}

/// What a presigning setup carries in its `extra` field: a [`SignRequest`] without the message
/// (the message is given to [`run_finish`] later). The encodings differ in a flag byte, so a
/// presigning setup can never be mistaken for a signing setup or the other way round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignRequest {
    /// The key to presign with.
    pub key_id: [u8; 32],
    /// The key's current `keygen_sid` (binds the epoch).
    pub keygen_sid: [u8; 32],
    /// Non-hardened derivation path (fixed before S0, `protocols.md` §3.6).
    pub path: Vec<u32>,
}

fn encode_request(
    key_id: &[u8; 32],
    keygen_sid: &[u8; 32],
    path: &[u32],
    message: Option<&[u8; 32]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(98 + 4 * path.len());
    out.extend_from_slice(key_id);
    out.extend_from_slice(keygen_sid);
    out.push(path.len().min(255) as u8);
    for c in path.iter().take(255) {
        out.extend_from_slice(&c.to_be_bytes());
    }
    match message {
        Some(m) => {
            out.push(1);
            out.extend_from_slice(m);
        }
        None => out.push(0),
    }
    out
}

type DecodedRequest = ([u8; 32], [u8; 32], Vec<u32>, Option<[u8; 32]>);

fn decode_request(bytes: &[u8]) -> Result<DecodedRequest, crate::encoding::DecodeError> {
    use crate::encoding::DecodeError;
    let mut r = crate::encoding::Reader::new(bytes);
    let key_id = r.array()?;
    let keygen_sid = r.array()?;
    let [depth] = r.array::<1>()?;
    let mut path = Vec::with_capacity(usize::from(depth));
    for _ in 0..depth {
        path.push(r.u32()?);
    }
    let message = match r.array::<1>()? {
        [0] => None,
        [1] => Some(r.array()?),
        _ => return Err(DecodeError::Malformed("unknown request kind")),
    };
    r.finish()?;
    Ok((key_id, keygen_sid, path, message))
}

impl SignRequest {
    /// Canonical encoding: key_id ‖ keygen_sid ‖ u8 depth ‖ depth × u32 ‖ 0x01 ‖ message.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_request(&self.key_id, &self.keygen_sid, &self.path, Some(&self.message))
    }

    /// Strict decoding.
    ///
    /// # Errors
    /// A [`crate::encoding::DecodeError`] for malformed input or a presigning request.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::encoding::DecodeError> {
        match decode_request(bytes)? {
            (key_id, keygen_sid, path, Some(message)) => {
                Ok(Self { key_id, keygen_sid, path, message })
            }
            _ => {
                Err(crate::encoding::DecodeError::Malformed("a presigning request has no message"))
            }
        }
    }
}

impl PresignRequest {
    /// Canonical encoding: key_id ‖ keygen_sid ‖ u8 depth ‖ depth × u32 ‖ 0x00.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_request(&self.key_id, &self.keygen_sid, &self.path, None)
    }

    /// Strict decoding.
    ///
    /// # Errors
    /// A [`crate::encoding::DecodeError`] for malformed input or a signing request.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::encoding::DecodeError> {
        match decode_request(bytes)? {
            (key_id, keygen_sid, path, None) => Ok(Self { key_id, keygen_sid, path }),
            _ => {
                Err(crate::encoding::DecodeError::Malformed("a signing request carries a message"))
            }
        }
    }
}

/// Rounds S0–S2 through `io`: returns the presignature (the message layer stays open).
async fn presign_rounds<R: Relay + ?Sized>(
    io: &mut Io<'_, R>,
    share: &KeyShare,
    setup: &Setup,
    path: &[u32],
    banned: &[PartyIndex],
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<Presignature, Error> {
    let signers: Vec<PartyIndex> = setup.participants().iter().map(|(i, _)| *i).collect();
    let others: Vec<PartyIndex> = io.session.peers().collect();
    let cfg = SignConfig {
        setup_hash: *setup.hash(),
        signers,
        path: path.to_vec(),
        ephemeral_public: io.session.ephemeral_public(),
        banned: banned.to_vec(),
    };
    let (r1, s0) = sign::start(rng, share, cfg)?;
    io.send(1, &Outgoing { broadcast: Some(s0), p2p: BTreeMap::new() }).await?;
    let (s0s, _) = io.collect(1, &others, true, false).await?;
    let (r2, out) = r1.next(rng, &s0s)?;
    for (j, e) in r2.peer_ephemeral_keys().clone() {
        io.session.establish(j, &e).map_err(from_message)?;
    }
    io.send(2, &out).await?;
    let (_, s1) = io.collect(2, &others, false, true).await?;
    let (r3, out) = r2.next(rng, &s1)?;
    io.send(3, &out).await?;
    let (b2, p2) = io.collect(3, &others, true, true).await?;
    r3.finish(&b2, &p2)
}

/// Round S3 (message-id round `round`) through `io`: consumes the presignature and returns the
/// verified signature.
async fn finish_round<R: Relay + ?Sized>(
    io: &mut Io<'_, R>,
    round: u16,
    pre: Presignature,
    message: &[u8; 32],
) -> Result<Signature, Error> {
    let others: Vec<PartyIndex> = io.session.peers().collect();
    let (partial, s3) = pre.sign(message);
    io.send(round, &Outgoing { broadcast: Some(s3), p2p: BTreeMap::new() }).await?;
    let (s3s, _) = io.collect(round, &others, true, false).await?;
    partial.combine(&s3s, message)
}

/// Message-id round of S3 in a run that presigns and signs in one go.
const S3_ROUND: u16 = 4;
/// Message-id rounds of a stored presignature's online phase: the finish commitments, then S3.
const FINISH_COMMIT_ROUND: u16 = 4;
const FINISH_S3_ROUND: u16 = 5;

/// What a party records in its replay guard before finishing the stored presignature of the
/// setup with hash `setup_hash`: `TH("dsg/finish", setup_hash)`. A second finish of the same
/// presignature (e.g. restored from a backup) is refused by every party that kept its record.
pub fn finish_marker(setup_hash: &[u8; 32]) -> [u8; 32] {
    th(Tag::DsgFinish, &[setup_hash])
}

/// The finish commitment every signer broadcasts before releasing S3:
/// `TH("dsg/finish-commit", setup_hash, TH("dsg/m", message))`.
fn finish_commitment(setup_hash: &[u8; 32], message: &[u8; 32]) -> [u8; 32] {
    th(Tag::DsgFinishCommit, &[setup_hash, &th(Tag::DsgM, &[message])])
}

/// Checks that a signing `setup` (its protocol already checked by the caller, which needs it
/// to decode `extra`) and `share` belong together and opens the session.
fn open_sign_session(
    setup: &Setup,
    share: &KeyShare,
    key_id: &[u8; 32],
    keygen_sid: &[u8; 32],
    signer: Arc<dyn IdentitySigner + Send + Sync>,
    guard: &(impl ReplayGuard + ?Sized),
    rng: &mut (impl CryptoRng + ?Sized),
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
    let session = Session::new(setup, signer, guard, rng).map_err(from_message)?;
    if session.my_index() != share.index() {
        return Err(Error::InvalidInput("this identity is not the key share's party".into()));
    }
    Ok(session)
}

/// Runs presigning and signing for `setup` (protocol `Sign`; its participants are the signers
/// and its `extra` is a [`SignRequest`]). Returns the verified signature.
///
/// # Errors
/// Any [`Error`]; [`Error::BanAndAbort`] must be persisted by the caller.
#[allow(clippy::too_many_arguments)] // each argument is a distinct capability the caller owns
pub async fn run_sign<R: Relay + ?Sized>(
    relay: &R,
    setup: &Setup,
    share: &KeyShare,
    signer: Arc<dyn IdentitySigner + Send + Sync>,
    guard: &(impl ReplayGuard + ?Sized),
    banned: &[PartyIndex],
    rng: &mut (impl CryptoRng + ?Sized),
    opts: &RunOptions,
) -> Result<Signature, Error> {
    if setup.protocol() != ProtocolId::Sign {
        return Err(Error::InvalidInput("the setup is not a signing setup".into()));
    }
    let req = SignRequest::from_bytes(setup.extra())
        .map_err(|e| Error::InvalidInput(format!("signing request: {e}")))?;
    let session =
        open_sign_session(setup, share, &req.key_id, &req.keygen_sid, signer, guard, rng)?;
    let mut io = Io::new(relay, session, opts, P2pMode::Plain, setup.protocol());
    let result = async {
        let pre = presign_rounds(&mut io, share, setup, &req.path, banned, rng).await?;
        finish_round(&mut io, S3_ROUND, pre, &req.message).await
    }
    .await;
    if let Err(e) = &result {
        io.announce_failure(e).await;
    }
    result
}

/// Runs presigning (S0–S2) for `setup` (protocol `Sign`; its `extra` is a [`PresignRequest`]).
/// Returns a single-use [`Presignature`] to store (encrypted) and later pass to [`run_finish`]
/// together with the same setup.
///
/// # Errors
/// Any [`Error`]; [`Error::BanAndAbort`] must be persisted by the caller.
#[allow(clippy::too_many_arguments)] // each argument is a distinct capability the caller owns
pub async fn run_presign<R: Relay + ?Sized>(
    relay: &R,
    setup: &Setup,
    share: &KeyShare,
    signer: Arc<dyn IdentitySigner + Send + Sync>,
    guard: &(impl ReplayGuard + ?Sized),
    banned: &[PartyIndex],
    rng: &mut (impl CryptoRng + ?Sized),
    opts: &RunOptions,
) -> Result<Presignature, Error> {
    if setup.protocol() != ProtocolId::Sign {
        return Err(Error::InvalidInput("the setup is not a signing setup".into()));
    }
    let req = PresignRequest::from_bytes(setup.extra())
        .map_err(|e| Error::InvalidInput(format!("presigning request: {e}")))?;
    let session =
        open_sign_session(setup, share, &req.key_id, &req.keygen_sid, signer, guard, rng)?;
    let mut io = Io::new(relay, session, opts, P2pMode::Plain, setup.protocol());
    let result = presign_rounds(&mut io, share, setup, &req.path, banned, rng).await;
    if let Err(e) = &result {
        io.announce_failure(e).await;
    }
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
/// 1. [`finish_marker`] of the setup is recorded in `guard` first; a party that finished this
///    presignature before refuses, before sending anything.
/// 2. Every signer first broadcasts a signed commitment to (setup, message) and releases its S3
///    share only once it holds every other signer's matching commitment. A restored party can
///    therefore not be walked into a second S3 unless *every* other signer agrees, i.e. unless
///    every other signer forgot the presignature too (or is the attacker: a 2-party key whose
///    honest party is the restored one; see the operations notes).
///
/// # Errors
/// [`Error::InvalidInput`] if the setup is not the presignature's or this party finished it
/// before; [`Error::Timeout`] if a signer never commits (e.g. it refused a second finish);
/// [`Error::ViewMismatch`] if a signer committed to a different message; otherwise any
/// [`Error`] of the final round.
#[allow(clippy::too_many_arguments)] // each argument is a distinct capability the caller owns
pub async fn run_finish<R: Relay + ?Sized>(
    relay: &R,
    setup: &Setup,
    presignature: Presignature,
    signer: Arc<dyn IdentitySigner + Send + Sync>,
    guard: &(impl ReplayGuard + ?Sized),
    message: &[u8; 32],
    rng: &mut (impl CryptoRng + ?Sized),
    opts: &RunOptions,
) -> Result<Signature, Error> {
    if setup.protocol() != ProtocolId::Sign || setup.hash() != presignature.setup_hash() {
        return Err(Error::InvalidInput(
            "the setup is not the one this presignature was made with".into(),
        ));
    }
    guard.check_and_record(&finish_marker(setup.hash())).map_err(|e| match e {
        ReplayError::Reused => Error::InvalidInput(
            "this party already finished this presignature: a second finish is refused \
             (two signatures from one presignature reveal the key)"
                .into(),
        ),
        ReplayError::Storage(s) => {
            Error::InvalidInput(format!("the finished-presignature record failed: {s}"))
        }
    })?;
    let session = Session::resume(setup, signer, rng).map_err(from_message)?;
    let others: Vec<PartyIndex> = session.peers().collect();
    let mut io = Io::new(relay, session, opts, P2pMode::Plain, setup.protocol());
    let result = async {
        let commitment = finish_commitment(setup.hash(), message);
        let out = Outgoing { broadcast: Some(commitment.to_vec()), p2p: BTreeMap::new() };
        io.send(FINISH_COMMIT_ROUND, &out).await?;
        let (commits, _) = io.collect(FINISH_COMMIT_ROUND, &others, true, false).await?;
        for j in &others {
            if commits.get(j).map(Vec::as_slice) != Some(&commitment[..]) {
                return Err(Error::ViewMismatch { round: FINISH_COMMIT_ROUND as u8, party: *j });
            }
        }
        finish_round(&mut io, FINISH_S3_ROUND, presignature, message).await
    }
    .await;
    if let Err(e) = &result {
        io.announce_failure(e).await;
    }
    result
}

#[path = "runner_lifecycle.rs"]
mod lifecycle;
pub use lifecycle::*;
