//! Protocol benchmark table: `cargo bench -p dkls23-core --bench protocols`.
//!
//! For (t, n) ∈ {(2,2), (2,3), (3,5)}: DKG, refresh, presign, online finish and full signing with t
//! signers, all parties in one process on one thread (`dkls23_core::sim`). Prints the median
//! over the iterations of: wall time for all parties together, CPU time per party (mean and
//! max over parties), bytes sent per party (payload, and on the wire through the message layer)
//! and communication rounds. `DKLS_BENCH_ITERS` overrides the iteration counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dkls23_core::reshare::{OldSecret, ReshareOutcome, ReshareSpec};
use dkls23_core::sign::Presignature;
use dkls23_core::sim::{self, Stats};
use dkls23_core::{KeyShare, PartyIndex};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn rngs(n: u16, seed: u64) -> BTreeMap<PartyIndex, ChaCha20Rng> {
    (1..=n).map(|i| (i, ChaCha20Rng::seed_from_u64(seed * 1000 + u64::from(i)))).collect()
}

#[derive(Default)]
struct Samples {
    wall: Vec<Duration>,
    cpu_mean: Vec<Duration>,
    cpu_max: Vec<Duration>,
    bytes: usize,
    wire: usize,
    rounds: u8,
}

impl Samples {
    fn push(&mut self, wall: Duration, s: &Stats, signed_p2p: bool) {
        self.wall.push(wall);
        self.cpu_mean.push(s.mean_cpu());
        self.cpu_max.push(s.max_cpu());
        self.bytes = s.max_bytes();
        self.wire = s.parties.values().map(|p| p.wire_bytes(signed_p2p)).max().unwrap_or(0);
        self.rounds = s.rounds;
    }
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn row(what: &str, t: u16, n: u16, s: &Samples, per_cosigner: Option<usize>) {
    let per = per_cosigner
        .map_or(String::from("–"), |k| format!("{:.1} KiB", s.wire as f64 / 1024.0 / k as f64));
    println!(
        "| {what:<12} | {t}-of-{n} | {:>10} | {:>10} | {:>10} | {:>9} | {:>9} | {:>13} | {:>6} |",
        ms(median(&s.wall)),
        ms(median(&s.cpu_mean)),
        ms(median(&s.cpu_max)),
        s.bytes,
        s.wire,
        per,
        s.rounds
    );
}

fn main() {
    let iters: Option<usize> = std::env::var("DKLS_BENCH_ITERS").ok().and_then(|v| v.parse().ok());
    let dkg_iters = iters.unwrap_or(5);
    let sign_iters = iters.unwrap_or(40);
    println!(
        "| protocol     | t-of-n | wall (all) | CPU/party  | max CPU/p  | payload B | wire B    | per co-signer | rounds |"
    );
    println!(
        "|--------------|--------|------------|------------|------------|-----------|-----------|---------------|--------|"
    );
    for (t, n) in [(2u16, 2u16), (2, 3), (3, 5)] {
        let mut dkg = Samples::default();
        let mut shares: Vec<KeyShare> = Vec::new();
        for it in 0..dkg_iters {
            let started = Instant::now();
            let (res, stats) =
                sim::dkg(n, t, [it as u8; 32], &mut rngs(n, it as u64), &mut |_, _, _| {});
            let wall = started.elapsed();
            shares = res.into_values().map(|r| r.unwrap()).collect();
            dkg.push(wall, &stats, true);
        }
        row("DKG", t, n, &dkg, None);

        let mut refresh = Samples::default();
        let spec = ReshareSpec::refresh(&shares[0]).unwrap();
        let by_index: BTreeMap<PartyIndex, &KeyShare> =
            shares.iter().map(|s| (s.index(), s)).collect();
        for it in 0..dkg_iters {
            let started = Instant::now();
            let (res, stats) = sim::reshare(
                &spec,
                &mut |p| OldSecret::from_share(by_index[&p]),
                [it as u8; 32],
                &mut rngs(n, 500 + it as u64),
                &mut |_, _, _| {},
            );
            let wall = started.elapsed();
            assert!(res.values().all(|r| matches!(r, Ok(ReshareOutcome::NewShare(_)))));
            refresh.push(wall, &stats, true);
        }
        row("refresh", t, n, &refresh, None);

        let signers: Vec<PartyIndex> = (1..=t).collect();
        let refs: Vec<&KeyShare> = shares.iter().collect();
        let cosigners = usize::from(t) - 1;
        let (mut pre, mut online, mut full) =
            (Samples::default(), Samples::default(), Samples::default());
        for it in 0..sign_iters {
            let seed = 10_000 + it as u64;
            let m32 = [it as u8; 32];
            let started = Instant::now();
            let (res, stats) =
                sim::presign(&refs, &signers, &[], [1; 32], &mut rngs(n, seed), &mut |_, _, _| {});
            pre.push(started.elapsed(), &stats, false);
            let presigs: BTreeMap<PartyIndex, Presignature> =
                res.into_iter().map(|(i, r)| (i, r.unwrap())).collect();
            let started = Instant::now();
            let (res, stats) = sim::finish(presigs, &m32, &mut rngs(n, seed), &mut |_, _, _| {});
            online.push(started.elapsed(), &stats, false);
            assert!(res.values().all(Result::is_ok));
            let started = Instant::now();
            let (res, stats) = sim::sign(
                &refs,
                &signers,
                &m32,
                &[],
                [2; 32],
                &mut rngs(n, seed + 1),
                &mut |_, _, _| {},
            );
            full.push(started.elapsed(), &stats, false);
            assert!(res.values().all(Result::is_ok));
        }
        row("presign", t, n, &pre, Some(cosigners));
        row("online", t, n, &online, None);
        row("full sign", t, n, &full, Some(cosigners));
    }
    println!(
        "\nwall = all parties in one process on one thread; CPU/party = mean over parties \
         (median over {dkg_iters} DKG / {sign_iters} signing iterations); payload B = protocol \
         bytes sent by the busiest party; wire B adds the message layer (36-byte header, 64-byte \
         signature per broadcast, 28-byte AEAD footer per p2p message, +64 in DKG complaint mode)."
    );
}
