//! DKLs23 threshold ECDSA on secp256k1.
//!
//! This crate is sans-IO: protocol rounds are plain state machines that take inbound messages
//! and produce outbound ones; no sockets, no runtime.
//!
//! * [`round`] — the round vocabulary and the [`round::Round`] trait every round implements.
//! * [`encoding`] — strict scalar / point codecs.
//! * [`identity`] — party identity keys (Ed25519 / P-256) behind the [`identity::IdentitySigner`]
//!   abstraction.
//! * [`setup`] — the validated setup of an execution, its hash, and the instance-id replay guard.
//! * [`message`] — the message layer: ids, headers, signed broadcasts, encrypted p2p channels,
//!   aborts and the receive rules.
//! * `sim` (feature `testing` only) — every party of a protocol in one loop, with costs per
//!   party (tests, benches).
//! * [`dkg`], [`sign`], [`bip32`] — distributed key generation, signing with presigning, and
//!   non-hardened derivation, as sans-IO rounds.
//! * [`reshare`], [`import_export`], [`ban`] — the key lifecycle: refresh / recovery / quorum
//!   change, key import and export, and the ban-list hook.
//! * [`hazmat`] — the low-level layers (transcript hashing, the OT layer, GF(2^128), proofs of
//!   knowledge): public for benches, fuzzing and audits only.
//!
//! The async runner that drives these rounds over a message relay is a separate crate
//! (`dkls23-runner`); this one has no runtime and no network dependency.
//!
//! Section references in comments (`protocols.md` §N, `ot.md` §N) are to the specification
//! in the repository's `docs/spec/`.

#![cfg_attr(not(test), warn(missing_docs))]

/// Implements a `Debug` that prints only the type name and `<redacted>` (for secret state).
macro_rules! redacted {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($t), "(<redacted>)"))
            }
        }
    )*};
}

pub mod ban;
pub mod bip32;
pub mod dkg;
pub mod encoding;
pub mod error;
pub mod hashing;
pub mod hazmat;
pub mod identity;
pub mod import_export;
pub mod keyshare;
pub mod math;
pub mod message;
pub mod params;
pub mod reshare;
pub mod setup;
pub mod sign;
#[cfg(any(test, feature = "testing"))]
pub mod sim;

mod pairwise;
pub mod round;

// The low-level modules live under `hazmat`; the crate uses them by their short paths.
use hazmat::{gf128, ot, pok, transcript};

pub use error::{AbortReason, Error};
pub use keyshare::KeyShare;
pub use math::PartyIndex;

/// Lowercase hex of a byte string, for `Debug` output of public values.
pub(crate) fn ot_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
