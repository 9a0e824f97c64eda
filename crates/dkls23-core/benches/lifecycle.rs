//! Key-lifecycle benchmarks: 5-level public derivation (target ≤ 1 ms) and a full in-memory
//! refresh for (t, n) = (2, 2), (2, 3), (3, 5), next to the DKG of the same (t, n) (target:
//! refresh ≤ DKG). All parties run on one thread; figures are the total CPU time of all parties.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use dkls23_core::bip32::{self, Network, Xpub};
use dkls23_core::reshare::{OldSecret, ReshareOutcome, ReshareSpec};
use dkls23_core::{KeyShare, PartyIndex, sim};
use k256::ProjectivePoint;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn rngs(n: u16, rng: &mut ChaCha20Rng) -> BTreeMap<PartyIndex, ChaCha20Rng> {
    (1..=n).map(|i| (i, ChaCha20Rng::from_rng(rng))).collect()
}

fn dkg_all(n: u16, t: u16, rng: &mut ChaCha20Rng) -> Vec<KeyShare> {
    let (res, _) = sim::dkg(n, t, [7; 32], &mut rngs(n, rng), &mut |_, _, _| {});
    res.into_values().map(|r| r.unwrap()).collect()
}

fn refresh_all(old: &[KeyShare], rng: &mut ChaCha20Rng) -> Vec<KeyShare> {
    let spec = ReshareSpec::refresh(&old[0]).unwrap();
    let by_index: BTreeMap<PartyIndex, &KeyShare> = old.iter().map(|s| (s.index(), s)).collect();
    let n = old[0].parties();
    let (res, _) = sim::reshare(
        &spec,
        &mut |p| OldSecret::from_share(by_index[&p]),
        [5; 32],
        &mut rngs(n, rng),
        &mut |_, _, _| {},
    );
    res.into_values()
        .map(|r| match r.unwrap() {
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
