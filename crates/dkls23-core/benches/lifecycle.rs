//! Key-lifecycle benchmarks: 5-level public derivation (target ≤ 1 ms) and a full in-memory
//! refresh for (t, n) = (2, 2), (2, 3), (3, 5) (target: at most the DKG time for the same (t, n)).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dkls23_core::bip32::{self, Network, Xpub};
use k256::ProjectivePoint;

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
    targets = derivation
}
criterion_main!(benches);
