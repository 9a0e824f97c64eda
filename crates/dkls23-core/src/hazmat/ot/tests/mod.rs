//! The invariants (`ot.md` §7.1) and tamper cases (§7.2) of the OT layer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![allow(clippy::needless_range_loop, clippy::type_complexity)]

use k256::Scalar;
use k256::elliptic_curve::Field;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::Digest;

use super::extension::{self, PadHasher, Prg};
use super::rvole::{alice_respond_with, gadget};
use super::util::bit;
use super::*;
use crate::params::{ROW_BYTES, TREES, XI};

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

struct Pair {
    alice: AliceState,
    bob: BobState,
    choices: [u8; 256],
}

fn ids(tag: u8) -> SetupIds {
    SetupIds::new([tag; 32])
}

fn setup(seed: u64) -> Pair {
    let mut r = rng(seed);
    let (a, kg1) = alice_start(&mut r, ids(1));
    let choices = *a.choices();
    let (bob, kg2) = bob_respond(&mut r, &ids(1), &kg1).unwrap();
    let alice = a.finish(&kg2).unwrap();
    Pair { alice, bob, choices }
}

fn vsid(tag: u8) -> [u8; 32] {
    [tag; 32]
}

// ---------------------------------------------------------------- §7.1 invariants

#[test]
fn base_ot_keys_match_on_the_chosen_slot_only() {
    let mut r = rng(1);
    let sid = [9u8; 32];
    let (recv, msg) = base::receiver_start(&mut r, &sid);
    let (ys, keys) = base::sender_respond(&mut r, &sid, &msg).unwrap();
    let alice_keys = base::receiver_finish(&recv, &sid, &msg, &ys).unwrap();
    let mut ones = 0;
    for i in 0..base::N {
        let c = recv.choices[i] as usize;
        ones += c;
        assert_eq!(alice_keys[i], keys[i][c], "OT {i}");
        assert_ne!(alice_keys[i], keys[i][1 - c], "OT {i}");
    }
    assert!((64..192).contains(&ones), "choice bits look biased: {ones}");
    // A different sid gives unrelated keys on both sides.
    let (ys2, keys2) = base::sender_respond(&mut rng(1), &[8u8; 32], &msg).unwrap();
    let alice2 = base::receiver_finish(&recv, &[8u8; 32], &msg, &ys2).unwrap();
    for i in 0..base::N {
        assert_ne!(alice2[i], alice_keys[i]);
        assert_ne!(keys2[i][0], keys[i][0]);
        assert_ne!(keys2[i][1], keys[i][1]);
    }
}

#[test]
fn ggm_leaves_and_delta() {
    let p = setup(2);
    for j in 0..TREES {
        let want: u8 = (0..4).map(|t| (1 - p.choices[4 * j + t]) << (3 - t)).sum();
        assert_eq!(p.alice.delta(j), want, "Δ_{j}");
        for x in 0..16 {
            if x as u8 == want {
                assert_eq!(p.alice.leaves[j][x], [0u8; 32]);
            } else {
                assert_eq!(p.alice.leaves[j][x], p.bob.leaves[j][x], "tree {j} leaf {x}");
            }
        }
    }
}

#[test]
fn extension_correlation_check_and_pads() {
    let p = setup(3);
    let sid = vsid(5);
    let prg = Prg::new(&sid);
    let mut xt = [0u8; ROW_BYTES];
    rand_core::Rng::fill_bytes(&mut rng(33), &mut xt);
    let (u, v) = extension::bob_extend(&prg, &p.bob.leaves, |_| xt);
    let w = extension::alice_extend(&prg, &p.alice, &u);
    // W_r = V_r ⊕ D_r·x̃
    for r in 0..4 * TREES {
        let d_r = bit(&p.alice.d, r);
        for (k, (wb, vb)) in w[r].iter().zip(v[r].iter()).enumerate() {
            assert_eq!(*wb, vb ^ (xt[k] & super::util::mask(d_r)), "row {r} byte {k}");
        }
    }
    // Honest check: Q_r = T_r ⊕ D_r·X, and alice_check accepts.
    let chi = extension::challenge(&sid, &u);
    let (x, t) = extension::bob_check(&chi, &xt, &v);
    for r in 0..4 * TREES {
        let q = extension::check_value(&chi, &w[r]);
        let d = bit(&p.alice.d, r) as u128;
        assert_eq!(q, crate::gf128::from_bytes(&t[r]) ^ (crate::gf128::from_bytes(&x) * d));
    }
    assert!(bool::from(extension::alice_check(&chi, &w, &p.alice.d, &x, &t)));
    // Column form and pads: P_col = P^{β_col}_col ≠ P^{1−β_col}_col.
    let wc = extension::columns(&w);
    let vc = extension::columns(&v);
    let hasher = PadHasher::new(&sid);
    for col in 0..XI {
        let beta = bit(&xt, col);
        let mut w_xor_d = wc[col];
        super::util::xor_into(&mut w_xor_d, &p.alice.d);
        let mut expect_w = vc[col];
        if beta == 1 {
            super::util::xor_into(&mut expect_w, &p.alice.d);
        }
        assert_eq!(wc[col], expect_w, "column {col}");
        let p0 = hasher.pad(col, &wc[col]);
        let p1 = hasher.pad(col, &w_xor_d);
        let pb = hasher.pad(col, &vc[col]);
        let (same, other) = if beta == 1 { (p1, p0) } else { (p0, p1) };
        assert_eq!(pb, same);
        assert_ne!(pb, other);
    }
}

fn run_vole(p: &Pair, a: [Scalar; 2], seed: u64) -> (Scalar, [Scalar; 2], [Scalar; 2]) {
    let mut r = rng(seed);
    let sid = vsid(seed as u8);
    let (bob, sg1) = BobVole::start(&mut r, &p.bob, sid);
    let b = *bob.multiplier();
    let (alice_out, sg2) =
        alice_respond(&mut r, &p.alice, &sid, &a, &Sg1::decode(&sg1.encode()).unwrap()).unwrap();
    let out = bob.finish(&Sg2::decode(&sg2.encode()).unwrap()).unwrap();
    assert_eq!(out.b, b);
    (b, alice_out.c, out.d)
}

#[test]
fn rvole_products_random_and_edge_inputs() {
    let p = setup(4);
    let mut r = rng(40);
    let random = [Scalar::random(&mut r), Scalar::random(&mut r)];
    let same = Scalar::random(&mut r);
    let cases = [random, [Scalar::ZERO, Scalar::ZERO], [Scalar::ONE, -Scalar::ONE], [same, same]];
    for (n, a) in cases.into_iter().enumerate() {
        let (b, c, d) = run_vole(&p, a, 100 + n as u64);
        assert_eq!(c[0] + d[0], a[0] * b, "case {n} slot 0");
        assert_eq!(c[1] + d[1], a[1] * b, "case {n} slot 1");
        assert_ne!(b, Scalar::ZERO);
    }
}

#[test]
fn rvole_multiplier_is_the_gadget_encoding_of_beta() {
    let p = setup(5);
    let mut xt = [0u8; ROW_BYTES];
    rand_core::Rng::fill_bytes(&mut rng(50), &mut xt);
    let (bob, _) = BobVole::start_with(&p.bob, vsid(1), &xt, |_| xt);
    let mut want = Scalar::ZERO;
    for col in 0..XI {
        if bit(&xt, col) == 1 {
            want += gadget()[col];
        }
    }
    assert_eq!(*bob.multiplier(), want);
}

#[test]
fn message_and_state_sizes() {
    assert_eq!(Kg1::LEN, 32 + 16_384);
    assert_eq!(Kg2::LEN, 32 + 8_192 + 18_432);
    assert_eq!(Sg1::LEN, 32 + 9_232);
    assert_eq!(Sg2::LEN, 32 + 49_216);
    let p = setup(6);
    assert_eq!(p.alice.to_bytes().len(), AliceState::ENCODED_LEN);
    assert_eq!(AliceState::ENCODED_LEN, 4 + 32 + 32_768);
    assert_eq!(p.bob.to_bytes().len(), BobState::ENCODED_LEN);
    assert_eq!(BobState::ENCODED_LEN, 4 + 32_768);
}

#[test]
fn state_serialisation_round_trips_and_rejects_garbage() {
    let p = setup(7);
    let a2 = AliceState::from_bytes(&p.alice.to_bytes()).unwrap();
    let b2 = BobState::from_bytes(&p.bob.to_bytes()).unwrap();
    let pair2 = Pair { alice: a2, bob: b2, choices: p.choices };
    let a = [Scalar::from(3u64), Scalar::from(5u64)];
    let (b, c, d) = run_vole(&pair2, a, 9);
    assert_eq!(c[0] + d[0], a[0] * b);
    let mut bad = p.alice.to_bytes().to_vec();
    bad[3] = 2;
    assert!(AliceState::from_bytes(&bad).is_err());
    assert!(AliceState::from_bytes(&p.bob.to_bytes()).is_err());
    assert!(BobState::from_bytes(&p.bob.to_bytes()[..100]).is_err());
    assert_eq!(format!("{:?}", p.alice), "AliceState(<redacted>)");
    assert_eq!(format!("{:?}", p.bob), "BobState(<redacted>)");
}

/// Golden transcript: the hash of every message and output of a seeded keygen + RVOLE.
/// A change here means the wire format or a hash input changed: bump `transcript::DOMAIN`.
#[test]
fn golden_transcript() {
    let mut r = rng(2024);
    let (a, kg1) = alice_start(&mut r, ids(3));
    let (bob, kg2) = bob_respond(&mut r, &ids(3), &kg1).unwrap();
    let alice = a.finish(&kg2).unwrap();
    let (bv, sg1) = BobVole::start(&mut r, &bob, vsid(4));
    let input = [Scalar::from(11u64), Scalar::from(13u64)];
    let (ao, sg2) = alice_respond(&mut r, &alice, &vsid(4), &input, &sg1).unwrap();
    let bo = bv.finish(&sg2).unwrap();
    let mut h = sha2::Sha256::new();
    for m in [kg1.encode(), kg2.encode(), sg1.encode(), sg2.encode()] {
        Digest::update(&mut h, &m);
    }
    Digest::update(&mut h, alice.to_bytes().as_slice());
    Digest::update(&mut h, bob.to_bytes().as_slice());
    for s in [ao.c[0], ao.c[1], bo.b, bo.d[0], bo.d[1]] {
        Digest::update(&mut h, s.to_bytes());
    }
    let got = hex::encode(h.finalize());
    assert_eq!(got, GOLDEN, "transcript changed");
}

const GOLDEN: &str = "96e4f43edda8f9b0bbf0a1bdf754777d7baf672718fa8290614206d4faa3a873";

mod tamper;
