//! All-but-one OT from the base OTs: GGM punctured PRF with its proof (`ot.md` §3.1).
//!
//! Tree j uses base OTs 4j..4j+3. Bob (who knows both keys of every base OT) builds all 16
//! leaves; Alice (who knows one key per base OT, chosen by her bits c) recovers every leaf but
//! the one at Δ_j = Σ_t (1 − c_{4j+t})·2^{3−t}. Alice's evaluation is constant time: she expands
//! every node (a dummy at the punctured position) and selects with masks, never branching or
//! indexing on her bits.

use subtle::{Choice, ConstantTimeEq};

use super::util::{select, xor_into};
use crate::params::{K, LEAVES, TREES};
use crate::transcript::{Tag, Xof};

/// A GGM node or leaf seed.
pub(crate) type Node = [u8; 32];

/// Bob's message for one tree: corrections C_{t,b} for t = 1..3, T̃ and S̃ (288 bytes).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TreeMsg {
    /// C_{j,t,b} at `corrections[t-1][b]`.
    pub(crate) corrections: [[Node; 2]; K - 1],
    /// T̃_j = ⊕_x L_{j,x}.
    pub(crate) t: [u8; 64],
    /// S̃_j = H_pf(sid, j, L_{j,0..15}).
    pub(crate) s: [u8; 32],
}

/// Bytes of one encoded [`TreeMsg`].
pub(crate) const TREE_MSG_LEN: usize = (K - 1) * 2 * 32 + 64 + 32;

impl TreeMsg {
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        for pair in &self.corrections {
            out.extend_from_slice(&pair[0]);
            out.extend_from_slice(&pair[1]);
        }
        out.extend_from_slice(&self.t);
        out.extend_from_slice(&self.s);
    }
}

/// The hashes of one pair's PPRF, with the session id absorbed once.
pub(crate) struct Hashers {
    expand: Xof,
    leaf: Xof,
    proof: Xof,
}

impl Hashers {
    pub(crate) fn new(sid: &[u8; 32]) -> Self {
        let with_sid = |tag| {
            let mut h = Xof::new(tag);
            h.put(sid);
            h
        };
        Self {
            expand: with_sid(Tag::GgmExpand),
            leaf: with_sid(Tag::PprfLeaf),
            proof: with_sid(Tag::PprfProof),
        }
    }

    /// G_ggm(sid, j, node) → (left, right).
    fn expand(&self, j: usize, node: &Node) -> (Node, Node) {
        let mut h = self.expand.clone();
        h.put_u16(j as u16).put(node);
        let out: [u8; 64] = h.finish();
        let (l, r) = out.split_at(32);
        let mut left = [0u8; 32];
        let mut right = [0u8; 32];
        left.copy_from_slice(l);
        right.copy_from_slice(r);
        (left, right)
    }

    /// H_leaf(sid, j, x, leaf).
    fn leaf(&self, j: usize, x: usize, leaf: &Node) -> [u8; 64] {
        let mut h = self.leaf.clone();
        h.put_u16(j as u16).put_u16(x as u16).put(leaf);
        h.finish()
    }

    /// H_pf(sid, j, L_0..L_15).
    fn proof(&self, j: usize, ls: &[[u8; 64]; LEAVES]) -> [u8; 32] {
        let mut h = self.proof.clone();
        h.put_u16(j as u16);
        for l in ls {
            h.put(l);
        }
        h.finish()
    }

    /// Expands every node of a level (`M2 = 2·M`).
    fn expand_level<const M: usize, const M2: usize>(
        &self,
        j: usize,
        level: &[Node; M],
    ) -> [Node; M2] {
        const { assert!(M2 == 2 * M) };
        let mut out = [[0u8; 32]; M2];
        let (pairs, _) = out.as_chunks_mut::<2>();
        for (node, pair) in level.iter().zip(pairs.iter_mut()) {
            let (l, r) = self.expand(j, node);
            pair[0] = l;
            pair[1] = r;
        }
        out
    }
}

/// XOR of the even (`[0]`) and odd (`[1]`) children of a level.
fn parity_sums<const M2: usize>(level: &[Node; M2]) -> [Node; 2] {
    let mut sums = [[0u8; 32]; 2];
    let (pairs, _) = level.as_chunks::<2>();
    for pair in pairs {
        xor_into(&mut sums[0], &pair[0]);
        xor_into(&mut sums[1], &pair[1]);
    }
    sums
}

/// Bob builds tree j from the key pairs of base OTs 4j..4j+3.
pub(crate) fn build(h: &Hashers, j: usize, keys: &[[Node; 2]; K]) -> ([Node; LEAVES], TreeMsg) {
    let [k0, k1, k2, k3] = keys;
    let l1: [Node; 2] = *k0;
    let l2: [Node; 4] = h.expand_level(j, &l1);
    let l3: [Node; 8] = h.expand_level(j, &l2);
    let l4: [Node; 16] = h.expand_level(j, &l3);
    let mut corrections = [[[0u8; 32]; 2]; K - 1];
    for ((corr, sums), key) in corrections
        .iter_mut()
        .zip([parity_sums(&l2), parity_sums(&l3), parity_sums(&l4)])
        .zip([k1, k2, k3])
    {
        for ((c, s), k) in corr.iter_mut().zip(sums.iter()).zip(key.iter()) {
            *c = *s;
            xor_into(c, k);
        }
    }
    let mut ls = [[0u8; 64]; LEAVES];
    let mut t = [0u8; 64];
    for (x, (l, leaf)) in ls.iter_mut().zip(l4.iter()).enumerate() {
        *l = h.leaf(j, x, leaf);
        xor_into(&mut t, l);
    }
    let s = h.proof(j, &ls);
    (l4, TreeMsg { corrections, t, s })
}

/// Alice's result for one tree: the punctured index and the leaves (zero at Δ).
pub(crate) struct Evaluated {
    pub(crate) delta: u8,
    pub(crate) leaves: [Node; LEAVES],
    /// Whether the proof verified (decided by the caller once for all trees).
    pub(crate) ok: Choice,
}

/// One level step of Alice's evaluation: recover the known child of the punctured node.
fn eval_level<const M: usize, const M2: usize>(
    h: &Hashers,
    j: usize,
    level: &[Node; M],
    punct: u8,
    e: u8,
    corr: &[Node; 2],
    key: &Node,
) -> ([Node; M2], u8) {
    let mut child: [Node; M2] = h.expand_level(j, level);
    // Sums of the children of every node except the punctured one, for both parities.
    let mut sums = [[0u8; 32]; 2];
    {
        let (pairs, _) = child.as_chunks::<2>();
        for (y, pair) in pairs.iter().enumerate() {
            let keep = !(y as u8).ct_eq(&punct);
            let zero = [0u8; 32];
            xor_into(&mut sums[0], &select(&zero, &pair[0], keep));
            xor_into(&mut sums[1], &select(&zero, &pair[1], keep));
        }
    }
    let e_choice = Choice::from(e);
    let mut recovered = select(&corr[0], &corr[1], e_choice);
    xor_into(&mut recovered, key);
    xor_into(&mut recovered, &select(&sums[0], &sums[1], e_choice));
    let known = 2 * punct + e;
    let next_punct = 2 * punct + (1 - e);
    for (z, node) in child.iter_mut().enumerate() {
        let z = z as u8;
        *node = select(node, &recovered, z.ct_eq(&known));
        *node = select(node, &[0u8; 32], z.ct_eq(&next_punct));
    }
    (child, next_punct)
}

/// Alice evaluates tree j from her choice bits (0/1) and keys of base OTs 4j..4j+3.
pub(crate) fn eval(
    h: &Hashers,
    j: usize,
    choices: &[u8; K],
    keys: &[Node; K],
    msg: &TreeMsg,
) -> Evaluated {
    let [c0, c1, c2, c3] = *choices;
    let [k0, k1, k2, k3] = keys;
    let zero = [0u8; 32];
    let c0_choice = Choice::from(c0);
    let l1: [Node; 2] = [select(k0, &zero, c0_choice), select(&zero, k0, c0_choice)];
    let p1 = 1 - c0;
    let [corr1, corr2, corr3] = &msg.corrections;
    let (l2, p2): ([Node; 4], u8) = eval_level(h, j, &l1, p1, c1, corr1, k1);
    let (l3, p3): ([Node; 8], u8) = eval_level(h, j, &l2, p2, c2, corr2, k2);
    let (leaves, delta): ([Node; 16], u8) = eval_level(h, j, &l3, p3, c3, corr3, k3);

    // Proof: L_x for x ≠ Δ, L_Δ = T̃ ⊕ ⊕_{x≠Δ} L_x, then compare H_pf with S̃.
    let mut ls = [[0u8; 64]; LEAVES];
    let mut acc = msg.t;
    for (x, (l, leaf)) in ls.iter_mut().zip(leaves.iter()).enumerate() {
        *l = h.leaf(j, x, leaf);
        let keep = !(x as u8).ct_eq(&delta);
        xor_into(&mut acc, &select(&[0u8; 64], l, keep));
    }
    for (x, l) in ls.iter_mut().enumerate() {
        *l = select(l, &acc, (x as u8).ct_eq(&delta));
    }
    let ok = h.proof(j, &ls).ct_eq(&msg.s);
    Evaluated { delta, leaves, ok }
}

/// Number of trees, re-exported for the setup module.
pub(crate) const N_TREES: usize = TREES;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;

    #[test]
    fn alice_recovers_all_leaves_but_delta() {
        let h = Hashers::new(&[7u8; 32]);
        let mut keys = [[[0u8; 32]; 2]; K];
        for (t, pair) in keys.iter_mut().enumerate() {
            pair[0] = [t as u8 * 2 + 1; 32];
            pair[1] = [t as u8 * 2 + 2; 32];
        }
        let (leaves, msg) = build(&h, 3, &keys);
        for bits in 0u8..16 {
            let choices = [(bits >> 3) & 1, (bits >> 2) & 1, (bits >> 1) & 1, bits & 1];
            let alice_keys = [
                keys[0][choices[0] as usize],
                keys[1][choices[1] as usize],
                keys[2][choices[2] as usize],
                keys[3][choices[3] as usize],
            ];
            let ev = eval(&h, 3, &choices, &alice_keys, &msg);
            assert!(bool::from(ev.ok));
            let want_delta: u8 = (0..4).map(|t| (1 - choices[t]) << (3 - t)).sum();
            assert_eq!(ev.delta, want_delta);
            for x in 0..16 {
                if x as u8 == ev.delta {
                    assert_eq!(ev.leaves[x], [0u8; 32]);
                    assert_ne!(leaves[x], [0u8; 32]);
                } else {
                    assert_eq!(ev.leaves[x], leaves[x], "leaf {x} for bits {bits:04b}");
                }
            }
        }
    }
}
