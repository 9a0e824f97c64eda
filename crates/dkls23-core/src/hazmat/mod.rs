//! Low-level building blocks, public for benchmarks, fuzzing and audits: **not** for building
//! protocols on. Nothing here is needed to run DKG, signing or the key lifecycle, and these
//! interfaces carry no stability promise; misuse (reusing an OT setup, feeding unchecked input
//! to an extension) silently breaks security.
//!
//! * [`transcript`] — framing, the tag registry and every hash function.
//! * [`gf128`] — the consistency-check field.
//! * [`pok`] — Schnorr proofs of knowledge of discrete logarithms.
//! * [`ot`] — the oblivious-transfer layer: endemic base OT, all-but-one OT (GGM punctured
//!   PRF), SoftSpokenOT extension and the DKLs23 random vector OLE.

pub mod gf128;
pub mod ot;
pub mod pok;
pub mod transcript;
