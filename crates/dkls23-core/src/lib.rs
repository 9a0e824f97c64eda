//! DKLs23 threshold ECDSA on secp256k1.
//!
//! This crate is sans-IO: protocol rounds are plain state machines that take inbound messages
//! and produce outbound ones; no sockets, no runtime.
//!
//! * [`transcript`] — framing, the tag registry and every hash function.
//! * [`encoding`] — strict scalar / point codecs.
//! * [`gf128`] — the consistency-check field.
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
//! * [`ot`] — the oblivious-transfer layer: endemic base OT, all-but-one OT (GGM punctured PRF),
//!   SoftSpokenOT extension and the DKLs23 random vector OLE.

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
pub mod gf128;
pub mod hashing;
pub mod identity;
pub mod import_export;
pub mod keyshare;
pub mod math;
pub mod message;
pub mod ot;
pub mod params;
pub mod pok;
pub mod reshare;
pub mod runner;
pub mod setup;
pub mod sign;
#[cfg(any(test, feature = "testing"))]
pub mod sim;
pub mod transcript;

pub use error::{AbortReason, Error};
pub use keyshare::KeyShare;
pub use math::PartyIndex;

/// Lowercase hex of a byte string, for `Debug` output of public values.
pub(crate) fn ot_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
