//! What a run can be told: timeouts and TTLs ([`RunOptions`]), a round observer
//! ([`RoundObserver`]), where a refresh stages its new share ([`StageShare`]) and, in tests
//! only, a tamper hook ([`RunHooks`]).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use dkls23_core::KeyShare;
use dkls23_core::math::PartyIndex;
use dkls23_core::round::Outgoing;
use dkls23_core::setup::ProtocolId;

/// Timeouts, TTLs, the round observer, staging and (tests only) hooks of a run.
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
    /// [`StageShare`] and [`confirm_staged`](crate::confirm_staged)); `None`: the caller commits the outcome itself.
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
    pub(crate) fn apply<'o>(
        &self,
        protocol: ProtocolId,
        round: u16,
        out: &'o Outgoing,
    ) -> Cow<'o, Outgoing> {
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
            let rounds = protocol.max_rounds();
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

/// Where a refresh or reshare keeps the new share it computed until it knows every member
/// has it (implemented by the caller's storage; see [`RunOptions::stage`]).
///
/// A reshare commits safely across parties only if no party can end at a different epoch
/// than its peers without knowing it: a party that collected every acknowledgement commits,
/// but one whose run failed after sending its own (a lost connection, a crash) does not know
/// whether the others did. So the new share is *staged* before the acknowledgement leaves,
/// and a party that holds a staged share and no confirmed outcome calls [`confirm_staged`](crate::confirm_staged)
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

/// What [`confirm_staged`](crate::confirm_staged) found out about a staged share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Every other new member acknowledged this share: activate it.
    Confirmed,
    /// These new members' acknowledgements were not found within the round timeout: nobody
    /// can have committed without them if they never sent them, but they may also have been
    /// sent and dropped since; undecided.
    Missing(Vec<PartyIndex>),
}
