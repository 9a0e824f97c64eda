//! DKLs23 random vector OLE (Protocol 5.2 shape, `ot.md` §4): Alice inputs a = (a_0, a_1),
//! Bob obtains a random b; they end with c_i + d_i = a_i·b.

use std::sync::OnceLock;

use k256::Scalar;
use k256::elliptic_curve::Field;
use rand_core::CryptoRng;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::extension::{self, PadHasher, Prg, Row};
use super::messages::{Sg1, Sg2};
use super::state::{AliceState, BobState};
use super::util::{bit, boxed, xor_into};
use super::{CheatKind, OtError, Role};
use crate::encoding::scalar_to_bytes;
use crate::params::{BATCH, ROW_BYTES, SID_LEN, WIDTH, XI};
use crate::transcript::{Hs, Tag, Xof, reduce_wide};

/// The public gadget vector g_col = HS("vole/gadget", col), computed once per process.
///
/// DKLs23's gadget is a fixed public random vector; deriving it once from a fixed tag (rather
/// than per session, as the original design of `ot.md` §4 did) gives the same distribution and
/// saves 512 hashes per RVOLE.
pub fn gadget() -> &'static [Scalar; XI] {
    static GADGET: OnceLock<Box<[Scalar; XI]>> = OnceLock::new();
    GADGET.get_or_init(|| {
        let mut g: Box<[Scalar; XI]> = boxed(Scalar::ZERO);
        for (col, gc) in g.iter_mut().enumerate() {
            let mut h = Hs::new(Tag::VoleGadget);
            h.put_u16(col as u16);
            *gc = h.finish_scalar();
        }
        g
    })
}

fn theta(sid: &[u8; SID_LEN], a_tilde_bytes: &[u8]) -> [Scalar; BATCH] {
    let mut h = Xof::new(Tag::VoleTheta);
    h.put(sid).put(a_tilde_bytes);
    let out: [u8; 64 * BATCH] = h.finish();
    let mut th = [Scalar::ZERO; BATCH];
    for (t, chunk) in th.iter_mut().zip(out.as_chunks::<64>().0) {
        *t = reduce_wide(chunk);
    }
    th
}

fn mu(sid: &[u8; SID_LEN], m: &[Scalar; XI]) -> [u8; 32] {
    let mut h = Xof::new(Tag::VoleMu);
    h.put(sid);
    let bytes: Vec<[u8; 32]> = m.iter().map(scalar_to_bytes).collect();
    h.put_pieces(XI * 32, bytes.iter().map(|b| b.as_slice()));
    h.finish()
}

/// Bob's secret state between SG1 and SG2. Consumed by [`BobVole::finish`].
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct BobVole {
    sid: [u8; SID_LEN],
    /// β: Bob's encoding bits (first ξ bits of x̃).
    beta: [u8; XI / 8],
    /// P_col = H_out(sid, col, v^col).
    pads: Box<[[Scalar; WIDTH]; XI]>,
    /// b = Σ β_col·g_col.
    b: Scalar,
}

/// Bob's output: his random multiplier b and his shares d of a_i·b.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct BobVoleOutput {
    /// The multiplier b (DKLs23's χ).
    pub b: Scalar,
    /// d_i with c_i + d_i = a_i·b.
    pub d: [Scalar; BATCH],
}

/// Alice's output: her shares c of a_i·b.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct AliceVoleOutput {
    /// c_i with c_i + d_i = a_i·b.
    pub c: [Scalar; BATCH],
}

impl BobVole {
    /// SG1: Bob starts one RVOLE under `vsid` (which MUST be fresh for this seed pair).
    pub fn start(
        rng: &mut (impl CryptoRng + ?Sized),
        state: &BobState,
        vsid: [u8; SID_LEN],
    ) -> (Self, Sg1) {
        let mut xtilde: Row = [0u8; ROW_BYTES];
        rng.fill_bytes(&mut xtilde);
        let (bob, sg1) = Self::start_with(state, vsid, &xtilde, |_| xtilde);
        xtilde.zeroize();
        (bob, sg1)
    }

    /// SG1 with an explicit x̃; `per_tree` gives the row actually used for tree j (an honest
    /// Bob uses x̃ for every tree; tests use it to model a cheating Bob).
    pub(crate) fn start_with(
        state: &BobState,
        vsid: [u8; SID_LEN],
        xtilde: &Row,
        per_tree: impl Fn(usize) -> Row,
    ) -> (Self, Sg1) {
        let prg = Prg::new(&vsid);
        let (u, mut v) = extension::bob_extend(&prg, &state.leaves, per_tree);
        let chi = extension::challenge(&vsid, &u);
        let (x, t) = extension::bob_check(&chi, xtilde, &v);
        let mut cols = extension::columns(&v);
        v.zeroize();
        let hasher = PadHasher::new(&vsid);
        let mut pads: Box<[[Scalar; WIDTH]; XI]> = boxed([Scalar::ZERO; WIDTH]);
        for (col, (p, v_col)) in pads.iter_mut().zip(cols.iter()).enumerate() {
            *p = hasher.pad(col, v_col);
        }
        cols.zeroize();
        let mut beta = [0u8; XI / 8];
        for (dst, src) in beta.iter_mut().zip(xtilde.iter()) {
            *dst = *src;
        }
        let mut b = Scalar::ZERO;
        for (col, g) in gadget().iter().enumerate() {
            b += Scalar::conditional_select(&Scalar::ZERO, g, Choice::from(bit(&beta, col)));
        }
        (Self { sid: vsid, beta, pads, b }, Sg1 { sid: vsid, u, x, t })
    }

    /// Bob's random multiplier b (DKLs23's χ_{j,i}); known as soon as SG1 is produced.
    pub fn multiplier(&self) -> &Scalar {
        &self.b
    }

    /// Bob finishes with Alice's SG2: checks μ and outputs (b, d).
    ///
    /// # Errors
    /// [`OtError::SessionMismatch`] for another session id; [`OtError::Misbehaviour`] with
    /// [`CheatKind::VoleCheck`] (culprit Alice, **ban**) when the μ check fails.
    pub fn finish(self, sg2: &Sg2) -> Result<BobVoleOutput, OtError> {
        if sg2.sid != self.sid {
            return Err(OtError::SessionMismatch { message: "SG2" });
        }
        let [theta0, theta1] = theta(&self.sid, sg2.a_tilde_bytes.as_slice());
        let mut m: Box<[Scalar; XI]> = boxed(Scalar::ZERO);
        let mut d = [Scalar::ZERO; BATCH];
        for (col, (((p, at), g), m_col)) in self
            .pads
            .iter()
            .zip(sg2.a_tilde.iter())
            .zip(gadget().iter())
            .zip(m.iter_mut())
            .enumerate()
        {
            let beta = Choice::from(bit(&self.beta, col));
            let mut e = [Scalar::ZERO; WIDTH];
            for ((e_k, p_k), a_k) in e.iter_mut().zip(p).zip(at) {
                *e_k = p_k + Scalar::conditional_select(&Scalar::ZERO, a_k, beta);
            }
            let [e0, e1, e2] = e;
            *m_col = e2 + theta0 * e0 + theta1 * e1
                - Scalar::conditional_select(&Scalar::ZERO, &sg2.eta, beta);
            d[0] += g * &e0;
            d[1] += g * &e1;
        }
        let ok = mu(&self.sid, &m).ct_eq(&sg2.mu);
        m.zeroize();
        if bool::from(ok) {
            Ok(BobVoleOutput { b: self.b, d })
        } else {
            d.zeroize();
            Err(OtError::Misbehaviour { culprit: Role::Alice, kind: CheatKind::VoleCheck })
        }
    }
}

/// SG2: Alice checks Bob's extension and answers with her payload for input `a`.
///
/// # Errors
/// [`OtError::SessionMismatch`] for another session id (nothing is processed);
/// [`OtError::Misbehaviour`] with [`CheatKind::OteCheck`] (culprit Bob, **ban**) when the
/// consistency check fails. Nothing derived from the pads is computed before the check passes.
pub fn alice_respond(
    rng: &mut (impl CryptoRng + ?Sized),
    state: &AliceState,
    vsid: &[u8; SID_LEN],
    a: &[Scalar; BATCH],
    sg1: &Sg1,
) -> Result<(AliceVoleOutput, Sg2), OtError> {
    alice_respond_with(rng, state, vsid, a, sg1, |_, u| u)
}

/// [`alice_respond`] with a hook that may replace the input vector u = (a_0, a_1, â) per column
/// (an honest Alice uses the same u everywhere; tests model a cheating Alice with it).
pub(crate) fn alice_respond_with(
    rng: &mut (impl CryptoRng + ?Sized),
    state: &AliceState,
    vsid: &[u8; SID_LEN],
    a: &[Scalar; BATCH],
    sg1: &Sg1,
    per_column: impl Fn(usize, [Scalar; WIDTH]) -> [Scalar; WIDTH],
) -> Result<(AliceVoleOutput, Sg2), OtError> {
    if sg1.sid != *vsid {
        return Err(OtError::SessionMismatch { message: "SG1" });
    }
    let prg = Prg::new(vsid);
    let mut w = extension::alice_extend(&prg, state, &sg1.u);
    let chi = extension::challenge(vsid, &sg1.u);
    if !bool::from(extension::alice_check(&chi, &w, &state.d, &sg1.x, &sg1.t)) {
        w.zeroize();
        return Err(OtError::Misbehaviour { culprit: Role::Bob, kind: CheatKind::OteCheck });
    }
    let mut cols = extension::columns(&w);
    w.zeroize();
    let hasher = PadHasher::new(vsid);
    let a_hat = Scalar::random(rng);
    let u = [a[0], a[1], a_hat];
    let mut p0: Box<[[Scalar; WIDTH]; XI]> = boxed([Scalar::ZERO; WIDTH]);
    let mut a_tilde: Box<[[Scalar; WIDTH]; XI]> = boxed([Scalar::ZERO; WIDTH]);
    for (col, ((w_col, p0_col), at_col)) in
        cols.iter_mut().zip(p0.iter_mut()).zip(a_tilde.iter_mut()).enumerate()
    {
        *p0_col = hasher.pad(col, w_col);
        // The packed Δ nibbles are exactly D as a 256-bit column (bit r = D_r).
        xor_into(w_col, &state.d);
        let p1_col = hasher.pad(col, w_col);
        let u_col = per_column(col, u);
        for (((at, p0k), p1k), uk) in
            at_col.iter_mut().zip(p0_col.iter()).zip(p1_col.iter()).zip(u_col.iter())
        {
            *at = p0k - p1k + uk;
        }
    }
    cols.zeroize();
    let sg2_tmp = Sg2::new(*vsid, a_tilde, Scalar::ZERO, [0u8; 32]);
    let [theta0, theta1] = theta(vsid, sg2_tmp.a_tilde_bytes.as_slice());
    let eta = a_hat + theta0 * a[0] + theta1 * a[1];
    let mut m: Box<[Scalar; XI]> = boxed(Scalar::ZERO);
    let mut c = [Scalar::ZERO; BATCH];
    for ((p, g), m_col) in p0.iter().zip(gadget().iter()).zip(m.iter_mut()) {
        let [p_0, p_1, p_2] = *p;
        *m_col = p_2 + theta0 * p_0 + theta1 * p_1;
        c[0] -= g * &p_0;
        c[1] -= g * &p_1;
    }
    let mu = mu(vsid, &m);
    m.zeroize();
    p0.zeroize();
    let Sg2 { sid, a_tilde, a_tilde_bytes, .. } = sg2_tmp;
    Ok((AliceVoleOutput { c }, Sg2 { sid, a_tilde, a_tilde_bytes, eta, mu }))
}

redacted!(BobVole, BobVoleOutput, AliceVoleOutput);
