//! In-memory demo: a t-of-n DKG, then a signature by t parties, verified with k256.
//!
//! `cargo run --release -p dkls23-core --example keygen_and_sign -- [t] [n]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::collections::BTreeMap;
use std::time::Instant;

use dkls23_core::dkg::{self, DkgConfig, Outgoing};
use dkls23_core::sign::{self, SignConfig};
use dkls23_core::{KeyShare, PartyIndex};
use k256::ecdsa::VerifyingKey;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::Digest;

type Inbox = BTreeMap<PartyIndex, Vec<u8>>;

fn bcast(out: &BTreeMap<PartyIndex, Outgoing>, me: PartyIndex) -> Inbox {
    out.iter()
        .filter(|(j, _)| **j != me)
        .filter_map(|(j, o)| o.broadcast.clone().map(|b| (*j, b)))
        .collect()
}

fn p2p(out: &BTreeMap<PartyIndex, Outgoing>, me: PartyIndex) -> Inbox {
    out.iter().filter_map(|(j, o)| o.p2p.get(&me).map(|m| (*j, m.clone()))).collect()
}

fn bytes(out: &BTreeMap<PartyIndex, Outgoing>) -> usize {
    out.values()
        .map(|o| {
            o.broadcast.as_ref().map_or(0, Vec::len) + o.p2p.values().map(Vec::len).sum::<usize>()
        })
        .sum()
}

fn main() {
    let args: Vec<u16> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (t, n) = (args.first().copied().unwrap_or(2), args.get(1).copied().unwrap_or(3));
    // Seeded per party so the demo is reproducible; real parties seed from the OS.
    let mut rng: BTreeMap<PartyIndex, ChaCha20Rng> =
        (1..=n).map(|i| (i, ChaCha20Rng::seed_from_u64(u64::from(i)))).collect();
    let setup_hash = [1u8; 32];
    let identities: Vec<Vec<u8>> = (1..=n).map(|i| vec![i as u8; 33]).collect();

    eprintln!("DKG {t}-of-{n}: round K1");
    let started = Instant::now();
    let mut total = 0;
    let mut r1 = BTreeMap::new();
    let mut out = BTreeMap::new();
    for me in 1..=n {
        let cfg = DkgConfig {
            n,
            t,
            me,
            setup_hash,
            ephemeral_public: [me as u8; 32],
            identities: identities.clone(),
        };
        let (st, k1) = dkg::start(rng.get_mut(&me).unwrap(), cfg).unwrap();
        r1.insert(me, st);
        out.insert(me, Outgoing { broadcast: Some(k1), p2p: BTreeMap::new() });
    }
    total += bytes(&out);
    eprintln!("DKG: round K2 (commitments, shares, base OT)");
    let (mut r2, mut out2) = (BTreeMap::new(), BTreeMap::new());
    for (me, st) in r1 {
        let (st, o) = st.next(rng.get_mut(&me).unwrap(), &bcast(&out, me)).unwrap();
        r2.insert(me, st);
        out2.insert(me, o);
    }
    total += bytes(&out2);
    eprintln!("DKG: round K3 (checks, GGM trees)");
    let (mut r3, mut out3) = (BTreeMap::new(), BTreeMap::new());
    for (me, st) in r2 {
        let (st, o) =
            st.next(rng.get_mut(&me).unwrap(), &bcast(&out2, me), &p2p(&out2, me)).unwrap();
        r3.insert(me, st);
        out3.insert(me, o);
    }
    total += bytes(&out3);
    eprintln!("DKG: round K4 (acknowledgements)");
    let (mut r4, mut out4) = (BTreeMap::new(), BTreeMap::new());
    for (me, st) in r3 {
        let (st, o) = st.next(&bcast(&out3, me), &p2p(&out3, me)).unwrap();
        r4.insert(me, st);
        out4.insert(me, o);
    }
    total += bytes(&out4);
    let shares: BTreeMap<PartyIndex, KeyShare> =
        r4.into_iter().map(|(me, st)| (me, st.finish(&bcast(&out4, me)).unwrap())).collect();
    let dkg_time = started.elapsed();
    let pk = *shares[&1].public_key();
    println!(
        "DKG {t}-of-{n}: {:?} for all parties in one process, {} bytes sent per party",
        dkg_time,
        total / usize::from(n)
    );
    println!("public key: {}", hex(&dkls23_core::encoding::point_to_bytes(&pk)));

    let signers: Vec<PartyIndex> = (1..=t).collect();
    let m32: [u8; 32] = sha2::Sha256::digest(b"hello threshold world").into();
    let started = Instant::now();
    let mut s1 = BTreeMap::new();
    let mut o0 = BTreeMap::new();
    for &me in &signers {
        let cfg = SignConfig {
            setup_hash: [2u8; 32],
            signers: signers.clone(),
            path: vec![],
            ephemeral_public: [me as u8; 32],
            banned: vec![],
        };
        let (st, s0) = sign::start(rng.get_mut(&me).unwrap(), &shares[&me], cfg).unwrap();
        s1.insert(me, st);
        o0.insert(me, Outgoing { broadcast: Some(s0), p2p: BTreeMap::new() });
    }
    let (mut s2, mut o1) = (BTreeMap::new(), BTreeMap::new());
    for (me, st) in s1 {
        let (st, o) = st.next(rng.get_mut(&me).unwrap(), &bcast(&o0, me)).unwrap();
        s2.insert(me, st);
        o1.insert(me, o);
    }
    let (mut s3, mut o2) = (BTreeMap::new(), BTreeMap::new());
    for (me, st) in s2 {
        let (st, o) = st.next(rng.get_mut(&me).unwrap(), &p2p(&o1, me)).unwrap();
        s3.insert(me, st);
        o2.insert(me, o);
    }
    let presign_time = started.elapsed();
    let (mut partials, mut o3) = (BTreeMap::new(), BTreeMap::new());
    for (me, st) in s3 {
        let pre = st.finish(&bcast(&o2, me), &p2p(&o2, me)).unwrap();
        let (partial, msg) = pre.sign(&m32);
        partials.insert(me, partial);
        o3.insert(me, Outgoing { broadcast: Some(msg), p2p: BTreeMap::new() });
    }
    let sig = partials[&1].combine(&bcast(&o3, 1), &m32).unwrap();
    let sign_time = started.elapsed();
    VerifyingKey::from_affine(pk.to_affine())
        .unwrap()
        .verify_prehash(&m32, &sig.to_k256().unwrap())
        .unwrap();
    println!(
        "signature by parties {signers:?}: presign {presign_time:?}, full {sign_time:?} (all signers in one process)"
    );
    println!("r‖s‖v: {}", hex(&sig.to_rsv()));
    println!("verified with k256: ok");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
