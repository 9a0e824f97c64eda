//! Key-lifecycle benchmarks: 5-level public derivation (target ≤ 1 ms) and a full in-memory
//! refresh for (t, n) = (2, 2), (2, 3), (3, 5), next to the DKG of the same (t, n) (target:
//! refresh ≤ DKG). All parties run on one thread; figures are the total CPU time of all parties.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use dkls23_core::bip32::{self, Network, Xpub};
use dkls23_core::dkg::{self, DkgConfig, Outgoing};
use dkls23_core::identity::{Ed25519Identity, IdentitySigner};
use dkls23_core::reshare::{self, OldSecret, ReshareConfig, ReshareOutcome, ReshareSpec};
use dkls23_core::{KeyShare, PartyIndex};
use k256::ProjectivePoint;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

type Inbox = BTreeMap<PartyIndex, Vec<u8>>;

fn bcast_for(out: &BTreeMap<PartyIndex, Outgoing>, me: PartyIndex) -> Inbox {
    out.iter()
        .filter(|(j, _)| **j != me)
        .filter_map(|(j, o)| o.broadcast.clone().map(|b| (*j, b)))
        .collect()
}

fn p2p_for(out: &BTreeMap<PartyIndex, Outgoing>, me: PartyIndex) -> Inbox {
    out.iter().filter_map(|(j, o)| o.p2p.get(&me).map(|m| (*j, m.clone()))).collect()
}

fn dkg_all(n: u16, t: u16, rng: &mut ChaCha20Rng) -> Vec<KeyShare> {
    let ids: Vec<Vec<u8>> = (1..=n)
        .map(|j| Ed25519Identity::from_seed(&[j as u8; 32]).public_key().to_bytes())
        .collect();
    let mut r1 = BTreeMap::new();
    let mut out1 = BTreeMap::new();
    for me in 1..=n {
        let cfg = DkgConfig {
            n,
            t,
            me,
            setup_hash: [7; 32],
            ephemeral_public: [me as u8; 32],
            identities: ids.clone(),
        };
        let (st, k1) = dkg::start(rng, cfg).unwrap();
        r1.insert(me, st);
        out1.insert(me, Outgoing { broadcast: Some(k1), p2p: BTreeMap::new() });
    }
    let (mut r2, mut out2) = (BTreeMap::new(), BTreeMap::new());
    for (me, st) in r1 {
        let (st, o) = st.next(rng, &bcast_for(&out1, me)).unwrap();
        r2.insert(me, st);
        out2.insert(me, o);
    }
    let (mut r3, mut out3) = (BTreeMap::new(), BTreeMap::new());
    for (me, st) in r2 {
        let (st, o) = st.next(rng, &bcast_for(&out2, me), &p2p_for(&out2, me)).unwrap();
        r3.insert(me, st);
        out3.insert(me, o);
    }
    let (mut r4, mut out4) = (BTreeMap::new(), BTreeMap::new());
    for (me, st) in r3 {
        let (st, o) = st.next(&bcast_for(&out3, me), &p2p_for(&out3, me)).unwrap();
        r4.insert(me, st);
        out4.insert(me, o);
    }
    r4.into_iter().map(|(me, st)| st.finish(&bcast_for(&out4, me)).unwrap()).collect()
}

fn refresh_all(old: &[KeyShare], rng: &mut ChaCha20Rng) -> Vec<KeyShare> {
    let spec = ReshareSpec::refresh(&old[0]).unwrap();
    let mut r1 = BTreeMap::new();
    let mut out1 = BTreeMap::new();
    for s in old {
        let me = s.index();
        let cfg = ReshareConfig {
            spec: spec.clone(),
            setup_hash: [5; 32],
            me,
            ephemeral_public: [me as u8; 32],
        };
        let (st, q1) = reshare::start(rng, cfg, Some(OldSecret::from_share(s))).unwrap();
        r1.insert(me, st);
        out1.insert(me, Outgoing { broadcast: Some(q1), p2p: BTreeMap::new() });
    }
    let (mut r2, mut out2) = (BTreeMap::new(), BTreeMap::new());
    for (me, st) in r1 {
        let (st, o) = st.next(rng, &bcast_for(&out1, me)).unwrap();
        r2.insert(me, st);
        out2.insert(me, o);
    }
    let (mut r3, mut out3) = (BTreeMap::new(), BTreeMap::new());
    for (me, st) in r2 {
        let (st, o) = st.next(rng, &bcast_for(&out2, me), &p2p_for(&out2, me)).unwrap();
        r3.insert(me, st);
        out3.insert(me, o);
    }
    let (mut r4, mut out4) = (BTreeMap::new(), BTreeMap::new());
    for (me, st) in r3 {
        let (st, o) = st.next(&bcast_for(&out3, me), &p2p_for(&out3, me)).unwrap();
        r4.insert(me, st);
        out4.insert(me, o);
    }
    r4.into_iter()
        .map(|(me, st)| match st.finish(&bcast_for(&out4, me)).unwrap() {
            ReshareOutcome::NewShare(s) => s,
            ReshareOutcome::Removed => unreachable!("refresh keeps every party"),
        })
        .collect()
}

fn protocols(c: &mut Criterion) {
    let mut g = c.benchmark_group("lifecycle");
    g.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for (t, n) in [(2u16, 2u16), (2, 3), (3, 5)] {
        let mut rng = ChaCha20Rng::seed_from_u64(u64::from(t * 10 + n));
        g.bench_function(format!("dkg/{t}-of-{n} (all parties)"), |b| {
            b.iter(|| dkg_all(n, t, &mut rng))
        });
        let shares = dkg_all(n, t, &mut rng);
        g.bench_function(format!("refresh/{t}-of-{n} (all parties)"), |b| {
            b.iter_batched(
                || {
                    shares
                        .iter()
                        .map(|s| KeyShare::from_bytes(&s.to_bytes()).unwrap())
                        .collect::<Vec<_>>()
                },
                |old| refresh_all(&old, &mut rng),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn derivation(c: &mut Criterion) {
    let x = ProjectivePoint::GENERATOR * k256::Scalar::from(12345u64);
    let root = Xpub::root(x, [7u8; 32], Network::Mainnet);
    let path = bip32::parse_path("m/0/1/2/3/4").unwrap();
    c.bench_function("bip32/derive-5-levels (tweak only)", |b| {
        b.iter(|| bip32::derive(black_box(&x), black_box(&[7u8; 32]), black_box(&path)).unwrap())
    });
    c.bench_function("bip32/xpub-5-levels (with fingerprints + Base58)", |b| {
        b.iter(|| black_box(&root).derive(black_box(&path)).unwrap().to_string())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = derivation, protocols
}
criterion_main!(benches);
