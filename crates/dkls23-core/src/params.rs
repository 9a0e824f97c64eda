//! Protocol parameters, in one place (`ot.md` §1.3).
//!
//! Changing any of these changes the wire format; the transcript version in
//! [`crate::transcript::DOMAIN`] must be bumped with it.

/// Bit length of the group order q (κ).
pub const KAPPA: usize = 256;
/// Computational OT parameter λ_c: base OTs per ordered pair, = bits of Δ.
pub const LAMBDA_C: usize = 256;
/// Statistical parameter λ_s.
pub const LAMBDA_S: usize = 128;
/// SoftSpokenOT parameter k: base OTs per GGM tree.
pub const K: usize = 4;
/// Leaves per GGM tree, 2^k.
pub const LEAVES: usize = 1 << K;
/// GGM trees per ordered pair, λ_c / k (= rows of U).
pub const TREES: usize = LAMBDA_C / K;
/// Extended OTs per RVOLE, ξ = κ + 2λ_s (= bits of Bob's encoding β).
pub const XI: usize = KAPPA + 2 * LAMBDA_S;
/// Bits of the consistency-check field GF(2^s).
pub const S: usize = 128;
/// Check blocks per row, ξ / s.
pub const CHECK_BLOCKS: usize = XI / S;
/// Extended columns including the random pad block, ξ + s.
pub const ROW_BITS: usize = XI + S;
/// Bytes of one extended row.
pub const ROW_BYTES: usize = ROW_BITS / 8;
/// RVOLE batch: products per RVOLE sharing Bob's multiplier (ℓ_b).
pub const BATCH: usize = 2;
/// RVOLE check columns ρ = ⌈λ_s/κ⌉.
pub const RHO: usize = 1;
/// Scalars carried by each extended OT, w = ℓ_b + ρ.
pub const WIDTH: usize = BATCH + RHO;
/// Bytes of a session id.
pub const SID_LEN: usize = 32;

const _: () = assert!(XI.is_multiple_of(S), "ξ must be a multiple of s");
const _: () = assert!(LAMBDA_C.is_multiple_of(K));
const _: () = assert!(ROW_BITS.is_multiple_of(8));
const _: () = assert!(RHO * KAPPA >= LAMBDA_S);
