//! SoftSpokenOT (k = 4) extension with the per-row consistency check (`ot.md` §3.2).
//!
//! Bob (extension receiver) expands all 16 leaves of each of the 64 trees with the PRG, sends
//! U_j = x̃ ⊕ ⊕_x R_{j,x} and keeps V_{4j+b} = ⊕_{x: bit_b(x)=1} R_{j,x}. Alice (extension sender,
//! holding Δ) computes W_{4j+b} = ⊕_{x≠Δ_j} bit_b(x⊕Δ_j)·R_{j,x} ⊕ bit_b(Δ_j)·U_j, which equals
//! V_r ⊕ D_r·x̃. The check compares Σ_h χ_h⊗W_r[h] ⊕ W_r[4] with T_r ⊕ D_r·X for all 256 rows,
//! in constant time, before any pad is derived.
//!
//! PRG: AES-256 in counter mode keyed by the leaf, with a 128-bit initial counter block derived
//! from the session id and the leaf position. The spec only needs a PRG keyed by the (secret,
//! long-term) leaf and separated per session; AES-NI makes it ~2× cheaper than an XOF call.

use aes::Aes256;
use aes::cipher::{KeyIvInit, StreamCipher};
use k256::Scalar;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::pprf::Node;
use super::state::{AliceState, Leaves};
use super::util::{bit, boxed, mask, xor_into, xor_masked};
use crate::gf128::{self, Gf};
use crate::params::{CHECK_BLOCKS, LEAVES, ROW_BYTES, SID_LEN, TREES, WIDTH, XI};
use crate::transcript::{Tag, Xof, xof};
use k256::FieldBytes;
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::ops::Reduce;

type Ctr = ctr::Ctr128BE<Aes256>;

/// Rows of the extension matrices (U has [`TREES`] rows, V and W have 4·[`TREES`]).
pub(crate) type Row = [u8; ROW_BYTES];
/// The 256 secret rows V (Bob) or W (Alice).
pub(crate) type Rows = [Row; 4 * TREES];
/// One column of V or W: 256 bits.
pub(crate) type Column = [u8; 32];

/// The per-session PRG: R_{j,x} = PRG(sid, j, x, s_{j,x}).
pub(crate) struct Prg {
    iv: [u8; 16],
}

impl Prg {
    pub(crate) fn new(sid: &[u8; SID_LEN]) -> Self {
        Self { iv: xof(Tag::OtePrg, &[sid]) }
    }

    fn expand(&self, j: usize, x: usize, leaf: &Node) -> Row {
        let mut iv = self.iv;
        let pos = ((j * LEAVES + x) as u16).to_be_bytes();
        iv[0] ^= pos[0];
        iv[1] ^= pos[1];
        let mut out = [0u8; ROW_BYTES];
        Ctr::new(leaf.into(), &iv.into()).apply_keystream(&mut out);
        out
    }
}

/// Bob's extension: U (sent) and V (kept) for per-tree inputs x̃ (all equal for an honest Bob;
/// tests pass a different one for a single tree).
pub(crate) fn bob_extend(
    prg: &Prg,
    leaves: &Leaves,
    xtilde: impl Fn(usize) -> Row,
) -> (Box<[Row; TREES]>, Box<Rows>) {
    let mut u: Box<[Row; TREES]> = boxed([0u8; ROW_BYTES]);
    let mut v: Box<Rows> = boxed([0u8; ROW_BYTES]);
    let (v_groups, _) = v.as_chunks_mut::<4>();
    for (j, ((u_row, v_rows), tree)) in
        u.iter_mut().zip(v_groups.iter_mut()).zip(leaves.iter()).enumerate()
    {
        *u_row = xtilde(j);
        for (x, leaf) in tree.iter().enumerate() {
            let r = prg.expand(j, x, leaf);
            xor_into(u_row, &r);
            for (b, v_row) in v_rows.iter_mut().enumerate() {
                xor_masked(v_row, &r, mask((x >> b) as u8));
            }
        }
    }
    (u, v)
}

/// Alice's W rows from her punctured leaves and Bob's U.
pub(crate) fn alice_extend(prg: &Prg, state: &AliceState, u: &[Row; TREES]) -> Box<Rows> {
    let mut w: Box<Rows> = boxed([0u8; ROW_BYTES]);
    let (w_groups, _) = w.as_chunks_mut::<4>();
    for (j, ((w_rows, tree), u_row)) in
        w_groups.iter_mut().zip(state.leaves.iter()).zip(u.iter()).enumerate()
    {
        let delta = state.delta(j);
        for (x, leaf) in tree.iter().enumerate() {
            // At x = Δ_j the leaf is zero and every coefficient bit_b(x ⊕ Δ_j) is 0, so the
            // dummy expansion is masked out without a branch.
            let r = prg.expand(j, x, leaf);
            let xd = (x as u8) ^ delta;
            for (b, w_row) in w_rows.iter_mut().enumerate() {
                xor_masked(w_row, &r, mask(xd >> b));
            }
        }
        for (b, w_row) in w_rows.iter_mut().enumerate() {
            xor_masked(w_row, u_row, mask(delta >> b));
        }
    }
    w
}

/// χ_0..χ_3 = H_chi(sid, U).
pub(crate) fn challenge(sid: &[u8; SID_LEN], u: &[Row; TREES]) -> [Gf; CHECK_BLOCKS] {
    let mut h = Xof::new(Tag::OteChi);
    h.put(sid).put_pieces(TREES * ROW_BYTES, u.iter().map(|r| r.as_slice()));
    let out: [u8; 16 * CHECK_BLOCKS] = h.finish();
    let mut chi = [0u128; CHECK_BLOCKS];
    for (c, block) in chi.iter_mut().zip(out.as_chunks::<16>().0) {
        *c = gf128::from_bytes(block);
    }
    chi
}

/// Σ_h χ_h ⊗ z[h] ⊕ z[4] for one 640-bit row.
pub(crate) fn check_value(chi: &[Gf; CHECK_BLOCKS], row: &Row) -> Gf {
    let mut blocks = [0u128; CHECK_BLOCKS + 1];
    for (b, chunk) in blocks.iter_mut().zip(row.as_chunks::<16>().0) {
        *b = gf128::from_bytes(chunk);
    }
    gf128::combine_row(chi, blocks)
}

/// Bob's check values X (for x̃) and T_r (for every V_r).
pub(crate) fn bob_check(
    chi: &[Gf; CHECK_BLOCKS],
    xtilde: &Row,
    v: &Rows,
) -> ([u8; 16], Box<[[u8; 16]; 4 * TREES]>) {
    let x = gf128::to_bytes(check_value(chi, xtilde));
    let mut t: Box<[[u8; 16]; 4 * TREES]> = boxed([0u8; 16]);
    for (t_r, v_r) in t.iter_mut().zip(v.iter()) {
        *t_r = gf128::to_bytes(check_value(chi, v_r));
    }
    (x, t)
}

/// Alice's check: Q_r == T_r ⊕ D_r·X for all rows, accumulated in constant time.
pub(crate) fn alice_check(
    chi: &[Gf; CHECK_BLOCKS],
    w: &Rows,
    d: &[u8; TREES / 2],
    x: &[u8; 16],
    t: &[[u8; 16]; 4 * TREES],
) -> Choice {
    let x = gf128::from_bytes(x);
    let mut ok = Choice::from(1);
    for (r, (w_r, t_r)) in w.iter().zip(t.iter()).enumerate() {
        let q = check_value(chi, w_r);
        let d_mask = 0u128.wrapping_sub(u128::from(bit(d, r)));
        let expected = gf128::from_bytes(t_r) ^ (x & d_mask);
        ok &= q.ct_eq(&expected);
    }
    ok
}

/// The first ξ columns of a 256-row matrix (the pad columns are dropped).
pub(crate) fn columns(rows: &Rows) -> Box<[Column; XI]> {
    let mut cols: Box<[Column; XI]> = boxed([0u8; 32]);
    let (col_groups, _) = cols.as_chunks_mut::<8>();
    for (r8, group) in rows.as_chunks::<8>().0.iter().enumerate() {
        for (cb, cols8) in col_groups.iter_mut().enumerate() {
            // 8×8 bit block: byte k = bits 8cb..8cb+7 of row 8·r8+k.
            let mut block = 0u64;
            for (k, row) in group.iter().enumerate() {
                block |= u64::from(row.get(cb).copied().unwrap_or(0)) << (8 * k);
            }
            let t = transpose8(block);
            for (c, col) in cols8.iter_mut().enumerate() {
                if let Some(byte) = col.get_mut(r8) {
                    *byte = (t >> (8 * c)) as u8;
                }
            }
        }
    }
    cols
}

/// Transposes an 8×8 bit matrix stored as 8 bytes (byte k = row k, bit c = column c).
fn transpose8(mut x: u64) -> u64 {
    let mut t = (x ^ (x >> 7)) & 0x00aa_00aa_00aa_00aa;
    x ^= t ^ (t << 7);
    t = (x ^ (x >> 14)) & 0x0000_cccc_0000_cccc;
    x ^= t ^ (t << 14);
    t = (x ^ (x >> 28)) & 0x0000_0000_f0f0_f0f0;
    x ^= t ^ (t << 28);
    x
}

/// H_out(sid, col, ·) with the session id absorbed once.
pub(crate) struct PadHasher {
    prefix: Xof,
}

impl PadHasher {
    pub(crate) fn new(sid: &[u8; SID_LEN]) -> Self {
        let mut prefix = Xof::new(Tag::OteOut);
        prefix.put(sid);
        Self { prefix }
    }

    /// Three scalars from one column value, sampled by rejection: each pad is its 32-byte
    /// candidate when that is below q, else a shared spare candidate (reduced; reaching that
    /// needs two ≥ q draws, probability ≈ 2^-256). The pads are therefore uniform up to ~2^-256
    /// per column, the selection is constant time, and the 128 output bytes fit in one
    /// TurboSHAKE128 block (`ot.md` P10 asks for a ≤ 2^-128 bias; this is far below it).
    pub(crate) fn pad(&self, col: usize, value: &Column) -> [Scalar; WIDTH] {
        let mut h = self.prefix.clone();
        h.put_u16(col as u16).put(value);
        let out: [u8; 32 * (WIDTH + 1)] = h.finish();
        let (chunks, _) = out.as_chunks::<32>();
        let spare = chunks.get(WIDTH).copied().unwrap_or([0u8; 32]);
        let spare = <Scalar as Reduce<FieldBytes>>::reduce(&spare.into());
        let mut pads = [Scalar::ZERO; WIDTH];
        for (p, cand) in pads.iter_mut().zip(chunks) {
            let bytes = FieldBytes::from(*cand);
            let valid: Choice = Scalar::from_repr(bytes).is_some();
            let reduced = <Scalar as Reduce<FieldBytes>>::reduce(&bytes);
            *p = Scalar::conditional_select(&spare, &reduced, valid);
        }
        pads
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn transpose_matches_naive() {
        let mut rows: Box<Rows> = boxed([0u8; ROW_BYTES]);
        let mut s = 0x1234_5678u32;
        for row in rows.iter_mut() {
            for b in row.iter_mut() {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *b = (s >> 24) as u8;
            }
        }
        let cols = columns(&rows);
        for c in 0..XI {
            for r in 0..4 * TREES {
                assert_eq!(bit(&cols[c], r), bit(&rows[r], c), "col {c} row {r}");
            }
        }
    }
}
