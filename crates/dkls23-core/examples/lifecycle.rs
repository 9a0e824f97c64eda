//! The key lifecycle in memory, all parties in one process (`dkls23_core::sim`):
//! DKG 2-of-3 → sign → refresh → sign → reshare to 3-of-4 (adding party 4) → derive `m/0/1`
//! (public key and xpub) → sign under the path with the new committee, every signature
//! verified with k256.
//!
//! `cargo run --release -p dkls23-core --example lifecycle`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::collections::BTreeMap;
use std::time::Instant;

use dkls23_core::bip32::{self, Network};
use dkls23_core::encoding::point_to_bytes;
use dkls23_core::reshare::{NewMember, OldSecret, ReshareOutcome, ReshareSpec};
use dkls23_core::sign::Signature;
use dkls23_core::{KeyShare, PartyIndex, sim};
use k256::ProjectivePoint;
use k256::ecdsa::VerifyingKey;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn rngs(seed: u64) -> BTreeMap<PartyIndex, ChaCha20Rng> {
    (1..=8).map(|i| (i, ChaCha20Rng::seed_from_u64(seed * 100 + u64::from(i)))).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sign(shares: &[KeyShare], signers: &[PartyIndex], path: &[u32], seed: u64) -> Signature {
    let m32 = [0x42; 32];
    let refs: Vec<&KeyShare> = shares.iter().collect();
    let started = Instant::now();
    let (res, _) =
        sim::sign(&refs, signers, &m32, path, [seed as u8; 32], &mut rngs(seed), &mut |_, _, _| {});
    let sig = res.into_values().next().unwrap().unwrap();
    let pk = bip32::derive(shares[0].public_key(), shares[0].chain_code(), path).unwrap();
    VerifyingKey::from_affine(pk.public_key.to_affine())
        .unwrap()
        .verify_prehash(&m32, &sig.to_k256().unwrap())
        .expect("the signature verifies");
    println!(
        "  signed by {signers:?} under {}: verified with k256 ({:.1} ms for all signers)",
        bip32::format_path(path),
        started.elapsed().as_secs_f64() * 1e3
    );
    sig
}

fn reshare(spec: &ReshareSpec, old: &[KeyShare], seed: u64) -> Vec<KeyShare> {
    let by_index: BTreeMap<PartyIndex, &KeyShare> = old.iter().map(|s| (s.index(), s)).collect();
    let (res, _) = sim::reshare(
        spec,
        &mut |p| OldSecret::from_share(by_index[&p]),
        [seed as u8; 32],
        &mut rngs(seed),
        &mut |_, _, _| {},
    );
    res.into_values()
        .filter_map(|r| match r.unwrap() {
            ReshareOutcome::NewShare(s) => Some(s),
            ReshareOutcome::Removed => None,
        })
        .collect()
}

fn main() {
    let started = Instant::now();
    let (res, stats) = sim::dkg(3, 2, [1; 32], &mut rngs(1), &mut |_, _, _| {});
    let shares: Vec<KeyShare> = res.into_values().map(|r| r.unwrap()).collect();
    let x: ProjectivePoint = *shares[0].public_key();
    println!(
        "DKG 2-of-3: public key {} ({:.0} ms, {} bytes sent per party)",
        hex(&point_to_bytes(&x)),
        started.elapsed().as_secs_f64() * 1e3,
        stats.max_bytes()
    );
    sign(&shares, &[1, 3], &[], 2);

    let started = Instant::now();
    let refreshed = reshare(&ReshareSpec::refresh(&shares[0]).unwrap(), &shares, 3);
    assert_eq!(refreshed[0].public_key(), &x);
    println!(
        "refresh: epoch {} → {}, same public key, every share replaced ({:.0} ms)",
        shares[0].epoch(),
        refreshed[0].epoch(),
        started.elapsed().as_secs_f64() * 1e3
    );
    sign(&refreshed, &[2, 3], &[], 4);

    // Reshare 2-of-3 → 3-of-4: parties 1..3 deal, a fourth party joins, threshold becomes 3.
    let identities: Vec<NewMember> =
        (1..=4).map(|k| NewMember { index: k, identity: sim::identity(k) }).collect();
    let spec = ReshareSpec::from_share(&refreshed[0], &[1, 2, 3], identities, 3).unwrap();
    let started = Instant::now();
    let grown = reshare(&spec, &refreshed, 5);
    assert_eq!(grown.len(), 4);
    assert_eq!(grown[0].public_key(), &x);
    println!(
        "reshare: 2-of-3 → {}-of-{}, same public key ({:.0} ms)",
        grown[0].threshold(),
        grown[0].parties(),
        started.elapsed().as_secs_f64() * 1e3
    );

    let path = bip32::parse_path("m/0/1").unwrap();
    let started = Instant::now();
    let xpub = bip32::xpub_for_path(&grown[0], &path, Network::Mainnet).unwrap();
    println!(
        "derive m/0/1: {} ({:.0} µs)\n  xpub {xpub}",
        hex(&point_to_bytes(&xpub.public_key)),
        started.elapsed().as_secs_f64() * 1e6
    );
    let sig = sign(&grown, &[2, 3, 4], &path, 6);
    println!("  r‖s‖v {}", hex(&sig.to_rsv()));
}
