//! Golden transcript: a seeded DKG, presign + sign and refresh in the simulator, hashed
//! payload by payload together with the stored encodings (key shares, presignature) and the
//! signature. A change of any round's wire payload, of the RNG use of a round or of a stored
//! format changes the digest; refactoring the rounds must not.

use std::collections::BTreeMap;

use dkls23_core::reshare::{OldSecret, ReshareOutcome, ReshareSpec};
use dkls23_core::{KeyShare, PartyIndex, sim};
use sha2::{Digest, Sha256};

use crate::common::rngs;

fn put(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// Records every payload a tamper hook sees (sender, broadcast, p2p by recipient), in order.
fn recorder(h: &mut Sha256) -> impl FnMut(PartyIndex, &dkls23_core::round::Outgoing) + '_ {
    move |from, out| {
        h.update(from.to_be_bytes());
        put(h, out.broadcast.as_deref().unwrap_or_default());
        for (to, m) in &out.p2p {
            h.update(to.to_be_bytes());
            put(h, m);
        }
    }
}

fn transcript_digest() -> String {
    let mut h = Sha256::new();
    let shares: Vec<KeyShare> = {
        let mut rec = recorder(&mut h);
        sim::dkg(3, 2, [7u8; 32], &mut rngs(3, 4242), &mut |_, from, out| rec(from, out))
            .0
            .into_values()
            .map(|r| r.unwrap())
            .collect()
    };
    for s in &shares {
        put(&mut h, &s.to_bytes());
    }
    let refs: Vec<&KeyShare> = shares.iter().collect();
    let presigs = {
        let mut rec = recorder(&mut h);
        sim::presign(&refs, &[1, 3], &[7, 9], [9u8; 32], &mut rngs(3, 4343), &mut |_, from, out| {
            rec(from, out)
        })
        .0
    };
    let mut pres = BTreeMap::new();
    for (i, p) in presigs {
        let p = p.unwrap();
        put(&mut h, &p.to_bytes());
        pres.insert(i, p);
    }
    let sigs = {
        let mut rec = recorder(&mut h);
        sim::finish(pres, &[5u8; 32], &mut rngs(3, 4545), &mut |_, from, out| rec(from, out)).0
    };
    for s in sigs.into_values() {
        put(&mut h, &s.unwrap().to_rsv());
    }
    let spec = ReshareSpec::refresh(&shares[0]).unwrap();
    let by_index: BTreeMap<PartyIndex, &KeyShare> = shares.iter().map(|s| (s.index(), s)).collect();
    let outcomes = {
        let mut rec = recorder(&mut h);
        sim::reshare(
            &spec,
            &mut |p| OldSecret::from_share(by_index[&p]),
            [5u8; 32],
            &mut rngs(3, 4444),
            &mut |_, from, out| rec(from, out),
        )
        .0
    };
    for o in outcomes.into_values() {
        match o.unwrap() {
            ReshareOutcome::NewShare(s) => put(&mut h, &s.to_bytes()),
            ReshareOutcome::Removed => put(&mut h, b"removed"),
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_seeded_transcript_and_stored_formats_are_unchanged() {
    assert_eq!(transcript_digest(), GOLDEN);
}

const GOLDEN: &str = "1a1e94629bf0bafbc67017d42723e09745794b76f8872d8c01aa0ba6fa26457b";
