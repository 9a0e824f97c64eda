//! The async runner of the DKLs23 protocols: drives the sans-IO rounds of `dkls23-core`
//! through the message layer and a [`msg_relay_api::Relay`].
//!
//! Every protocol runs in one loop (publish a round's messages, collect what the round
//! expects, consume the round): each round seals its payloads (signed broadcasts, encrypted
//! p2p), publishes them under their message ids, then asks the relay for every message id it
//! expects and opens them with the receive rules. Unauthenticated or unexpected bytes are
//! dropped (never an abort); if a party's message does not arrive before the round deadline
//! the run ends with [`Error::Timeout`](dkls23_core::Error::Timeout) naming it. A run that fails
//! tells its peers why in a signed abort notice, and every run watches its peers' notices.
//!
//! A run is given a [`RunContext`] (relay, identity, replay guard, ban list or refused parties,
//! [`RunOptions`]),
//! its setup, its inputs and an RNG:
//!
//! * [`run_dkg`] — distributed key generation.
//! * [`run_sign`], [`run_presign`], [`run_finish`] — signing in one go, presigning, and the
//!   online phase of a stored presignature.
//! * [`run_reshare`], [`confirm_staged`] — refresh / recovery / quorum change, and the
//!   confirmation of a share staged by a run that ended undecided.
//! * [`run_import`], [`run_export`], [`run_export_receive`] — key import and export.
//! * [`announce_abort`] — a party that will not take part says so.
//!
//! CPU-heavy rounds run inline on the calling task; a service running many sessions should call
//! these functions from a blocking-capable context (e.g. `spawn_blocking` + a local runtime).

#![cfg_attr(not(test), warn(missing_docs))]

mod context;
mod drive;
mod io;
mod lifecycle;
mod options;
mod sign;

pub use context::RunContext;
pub use lifecycle::{
    announce_abort, confirm_staged, run_dkg, run_export, run_export_receive, run_import,
    run_reshare,
};
#[cfg(feature = "testing")]
pub use options::TamperFn;
pub use options::{Confirmation, RoundEvent, RoundObserver, RunHooks, RunOptions, StageShare};
pub use sign::{run_finish, run_presign, run_sign};

/// The README's library example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExample;
