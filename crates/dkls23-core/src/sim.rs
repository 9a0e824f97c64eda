//! In-process simulation: every party of a protocol run in one plain loop, with no message
//! layer (payloads are handed over as produced, as an honest relay + authenticated channels
//! would). For tests, benchmarks and examples: it measures CPU time and bytes per party, and a
//! tamper hook may rewrite any party's outgoing payloads of any round.
//!
//! Identity keys are deterministic placeholders ([`identity`]); the message layer is exercised by
//! [`crate::runner`] instead. Nothing here panics: a party whose round fails records its error
//! and stops, and the other parties then see its messages missing ([`Error::Timeout`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand_core::CryptoRng;

use crate::dkg::{self, DkgConfig, Outgoing};
use crate::error::Error;
use crate::keyshare::KeyShare;
use crate::math::PartyIndex;
use crate::sign::{self, PartialSignature, Presignature, SignConfig, Signature};

/// Payloads received by one party in one round, by sender.
pub type Inbox = BTreeMap<PartyIndex, Vec<u8>>;

/// A tamper hook: `(round, sender, outgoing payloads)`. DKG rounds are 1..=4 (K1..K4); signing
/// rounds are 0..=3 (S0..S3).
pub type Tamper<'a> = &'a mut dyn FnMut(u8, PartyIndex, &mut Outgoing);

/// Results by party.
pub type Results<T> = BTreeMap<PartyIndex, Result<T, Error>>;

/// What one party spent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartyStats {
    /// Time spent in this party's own computations (single-threaded, so CPU time).
    pub cpu: Duration,
    /// Payload bytes sent: a broadcast counts once, a p2p message once per recipient.
    pub bytes_sent: usize,
    /// Broadcasts sent.
    pub broadcasts: usize,
    /// Point-to-point messages sent.
    pub p2p_messages: usize,
}

impl PartyStats {
    /// Bytes on the wire through the message layer: every message carries a 36-byte header;
    /// a broadcast a 64-byte identity signature; a p2p message a 28-byte AEAD footer, plus a
    /// 64-byte signature when `signed_p2p` (complaint mode, used by DKG and reshare).
    pub fn wire_bytes(&self, signed_p2p: bool) -> usize {
        let p2p_extra = 36 + 28 + if signed_p2p { 64 } else { 0 };
        self.bytes_sent + self.broadcasts * (36 + 64) + self.p2p_messages * p2p_extra
    }
}

/// Costs of one simulated execution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Per party.
    pub parties: BTreeMap<PartyIndex, PartyStats>,
    /// Communication rounds.
    pub rounds: u8,
}

impl Stats {
    fn record(&mut self, me: PartyIndex, cpu: Duration, out: Option<&Outgoing>) {
        let p = self.parties.entry(me).or_default();
        p.cpu += cpu;
        if let Some(o) = out {
            p.bytes_sent += o.broadcast.as_ref().map_or(0, Vec::len)
                + o.p2p.values().map(Vec::len).sum::<usize>();
            p.broadcasts += usize::from(o.broadcast.is_some());
            p.p2p_messages += o.p2p.len();
        }
    }

    /// The largest CPU time of any party.
    pub fn max_cpu(&self) -> Duration {
        self.parties.values().map(|p| p.cpu).max().unwrap_or_default()
    }

    /// The mean CPU time per party.
    pub fn mean_cpu(&self) -> Duration {
        let n = u32::try_from(self.parties.len()).unwrap_or(u32::MAX).max(1);
        self.parties.values().map(|p| p.cpu).sum::<Duration>() / n
    }

    /// The largest number of bytes sent by any party.
    pub fn max_bytes(&self) -> usize {
        self.parties.values().map(|p| p.bytes_sent).max().unwrap_or_default()
    }

    /// Adds another execution's costs (e.g. presign + finish).
    pub fn add(&mut self, other: &Stats) {
        for (me, p) in &other.parties {
            let q = self.parties.entry(*me).or_default();
            q.cpu += p.cpu;
            q.bytes_sent += p.bytes_sent;
            q.broadcasts += p.broadcasts;
            q.p2p_messages += p.p2p_messages;
        }
        self.rounds += other.rounds;
    }
}

/// The broadcasts of every other party, as `me` receives them.
pub fn bcast_for(out: &BTreeMap<PartyIndex, Outgoing>, me: PartyIndex) -> Inbox {
    out.iter()
        .filter(|(j, _)| **j != me)
        .filter_map(|(j, o)| o.broadcast.clone().map(|b| (*j, b)))
        .collect()
}

/// The point-to-point payloads addressed to `me`.
pub fn p2p_for(out: &BTreeMap<PartyIndex, Outgoing>, me: PartyIndex) -> Inbox {
    out.iter().filter_map(|(j, o)| o.p2p.get(&me).map(|m| (*j, m.clone()))).collect()
}

fn rng_of<R>(rngs: &mut BTreeMap<PartyIndex, R>, me: PartyIndex) -> Result<&mut R, Error> {
    rngs.get_mut(&me).ok_or_else(|| Error::InvalidInput(format!("no RNG for party {me}")))
}

/// Runs one round for every live party: `step` returns the next state and its payloads; the
/// tamper hook sees the payloads; failures are recorded in `results`.
fn round<S, T, U>(
    states: BTreeMap<PartyIndex, S>,
    number: u8,
    stats: &mut Stats,
    results: &mut Results<U>,
    tamper: &mut dyn FnMut(u8, PartyIndex, &mut Outgoing),
    mut step: impl FnMut(PartyIndex, S) -> Result<(T, Outgoing), Error>,
) -> (BTreeMap<PartyIndex, T>, BTreeMap<PartyIndex, Outgoing>) {
    let mut next = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (me, st) in states {
        let started = Instant::now();
        let r = step(me, st);
        let cpu = started.elapsed();
        match r {
            Ok((st, mut o)) => {
                stats.record(me, cpu, Some(&o));
                tamper(number, me, &mut o);
                next.insert(me, st);
                out.insert(me, o);
            }
            Err(e) => {
                stats.record(me, cpu, None);
                results.insert(me, Err(e));
            }
        }
    }
    stats.rounds += 1;
    (next, out)
}

/// A deterministic, valid identity public key for party `j` (Ed25519 from seed `[j; 32]`):
/// a placeholder, since the simulation does not run the message layer.
pub fn identity(j: PartyIndex) -> crate::identity::IdentityPublicKey {
    use crate::identity::IdentitySigner;
    crate::identity::Ed25519Identity::from_seed(&[j.to_be_bytes()[1]; 32]).public_key()
}

/// The DKG configuration of party `me` in a simulated t-of-n DKG.
pub fn dkg_config(n: u16, t: u16, me: PartyIndex, setup_hash: [u8; 32]) -> DkgConfig {
    DkgConfig {
        n,
        t,
        me,
        setup_hash,
        ephemeral_public: [me.to_be_bytes()[1]; 32],
        identities: (1..=n).map(|j| identity(j).to_bytes()).collect(),
    }
}

/// A t-of-n DKG among parties 1..=n (`rngs` must hold one RNG per party).
pub fn dkg<R: CryptoRng>(
    n: u16,
    t: u16,
    setup_hash: [u8; 32],
    rngs: &mut BTreeMap<PartyIndex, R>,
    tamper: Tamper<'_>,
) -> (Results<KeyShare>, Stats) {
    let mut stats = Stats::default();
    let mut results = Results::new();
    let starts: BTreeMap<PartyIndex, ()> = (1..=n).map(|i| (i, ())).collect();
    let (r1, out1) = round(starts, 1, &mut stats, &mut results, tamper, |me, ()| {
        let (st, k1) = dkg::start(rng_of(rngs, me)?, dkg_config(n, t, me, setup_hash))?;
        Ok((st, Outgoing { broadcast: Some(k1), p2p: BTreeMap::new() }))
    });
    let (r2, out2) = round(r1, 2, &mut stats, &mut results, tamper, |me, st| {
        st.next(rng_of(rngs, me)?, &bcast_for(&out1, me))
    });
    let (r3, out3) = round(r2, 3, &mut stats, &mut results, tamper, |me, st| {
        st.next(rng_of(rngs, me)?, &bcast_for(&out2, me), &p2p_for(&out2, me))
    });
    let (r4, out4) = round(r3, 4, &mut stats, &mut results, tamper, |me, st| {
        st.next(&bcast_for(&out3, me), &p2p_for(&out3, me))
    });
    for (me, st) in r4 {
        let started = Instant::now();
        let r = st.finish(&bcast_for(&out4, me));
        stats.record(me, started.elapsed(), None);
        results.insert(me, r);
    }
    (results, stats)
}

/// The signing configuration of party `me` (placeholder ephemeral key, nobody banned).
pub fn sign_config(
    setup_hash: [u8; 32],
    signers: &[PartyIndex],
    me: PartyIndex,
    path: &[u32],
) -> SignConfig {
    SignConfig {
        setup_hash,
        signers: signers.to_vec(),
        path: path.to_vec(),
        ephemeral_public: [me.to_be_bytes()[1]; 32],
        banned: vec![],
    }
}

/// Presigning (S0–S2) by the `signers` holding `shares` (one share per signer, any order).
pub fn presign<R: CryptoRng>(
    shares: &[&KeyShare],
    signers: &[PartyIndex],
    path: &[u32],
    setup_hash: [u8; 32],
    rngs: &mut BTreeMap<PartyIndex, R>,
    tamper: Tamper<'_>,
) -> (Results<Presignature>, Stats) {
    let mut stats = Stats::default();
    let mut results = Results::new();
    let by_index: BTreeMap<PartyIndex, &KeyShare> =
        shares.iter().filter(|s| signers.contains(&s.index())).map(|s| (s.index(), *s)).collect();
    for &me in signers {
        if !by_index.contains_key(&me) {
            results.insert(me, Err(Error::InvalidInput(format!("no key share for party {me}"))));
        }
    }
    let (s1, out0) = round(by_index, 0, &mut stats, &mut results, tamper, |me, share| {
        let cfg = sign_config(setup_hash, signers, me, path);
        let (st, s0) = sign::start(rng_of(rngs, me)?, share, cfg)?;
        Ok((st, Outgoing { broadcast: Some(s0), p2p: BTreeMap::new() }))
    });
    let (s2, out1) = round(s1, 1, &mut stats, &mut results, tamper, |me, st| {
        st.next(rng_of(rngs, me)?, &bcast_for(&out0, me))
    });
    let (s3, out2) = round(s2, 2, &mut stats, &mut results, tamper, |me, st| {
        st.next(rng_of(rngs, me)?, &p2p_for(&out1, me))
    });
    for (me, st) in s3 {
        let started = Instant::now();
        let r = st.finish(&bcast_for(&out2, me), &p2p_for(&out2, me));
        stats.record(me, started.elapsed(), None);
        results.insert(me, r);
    }
    (results, stats)
}

/// The online round (S3) and combination, consuming the presignatures.
pub fn finish(
    presignatures: BTreeMap<PartyIndex, Presignature>,
    m32: &[u8; 32],
    tamper: Tamper<'_>,
) -> (Results<Signature>, Stats) {
    let mut stats = Stats::default();
    let mut results = Results::new();
    let (partials, out3): (BTreeMap<PartyIndex, PartialSignature>, _) =
        round(presignatures, 3, &mut stats, &mut results, tamper, |_, pre| {
            let (partial, s3) = pre.sign(m32);
            Ok((partial, Outgoing { broadcast: Some(s3), p2p: BTreeMap::new() }))
        });
    for (me, partial) in partials {
        let started = Instant::now();
        let r = partial.combine(&bcast_for(&out3, me), m32);
        stats.record(me, started.elapsed(), None);
        results.insert(me, r);
    }
    (results, stats)
}

/// Full signing: [`presign`] then [`finish`]; the stats cover both.
pub fn sign<R: CryptoRng>(
    shares: &[&KeyShare],
    signers: &[PartyIndex],
    m32: &[u8; 32],
    path: &[u32],
    setup_hash: [u8; 32],
    rngs: &mut BTreeMap<PartyIndex, R>,
    tamper: Tamper<'_>,
) -> (Results<Signature>, Stats) {
    let (pre, mut stats) = presign(shares, signers, path, setup_hash, rngs, tamper);
    let mut results = Results::new();
    let mut ok = BTreeMap::new();
    for (me, r) in pre {
        match r {
            Ok(p) => {
                ok.insert(me, p);
            }
            Err(e) => {
                results.insert(me, Err(e));
            }
        }
    }
    let (sigs, more) = finish(ok, m32, tamper);
    stats.add(&more);
    results.extend(sigs);
    (results, stats)
}

/// A reshare (refresh, recovery, quorum or threshold change) among every participant of `spec`
/// (keyed by transport index); `secret_for(p)` gives old member p's dealer input.
pub fn reshare<R: CryptoRng>(
    spec: &crate::reshare::ReshareSpec,
    secret_for: &mut dyn FnMut(PartyIndex) -> crate::reshare::OldSecret,
    setup_hash: [u8; 32],
    rngs: &mut BTreeMap<PartyIndex, R>,
    tamper: Tamper<'_>,
) -> (Results<crate::reshare::ReshareOutcome>, Stats) {
    use crate::reshare::{self as rs, ReshareConfig};
    let mut stats = Stats::default();
    let mut results = Results::new();
    let starts: BTreeMap<PartyIndex, ()> =
        spec.transport_participants().iter().map(|(t, _)| (*t, ())).collect();
    let (r1, out1) = round(starts, 1, &mut stats, &mut results, tamper, |me, ()| {
        let cfg = ReshareConfig {
            spec: spec.clone(),
            setup_hash,
            me,
            ephemeral_public: [me.to_be_bytes()[1]; 32],
        };
        let old = spec.old_member_at(me).map(|m| secret_for(m.index));
        let (st, q1) = rs::start(rng_of(rngs, me)?, cfg, old)?;
        Ok((st, Outgoing { broadcast: Some(q1), p2p: BTreeMap::new() }))
    });
    let (r2, out2) = round(r1, 2, &mut stats, &mut results, tamper, |me, st| {
        st.next(rng_of(rngs, me)?, &bcast_for(&out1, me))
    });
    let (r3, out3) = round(r2, 3, &mut stats, &mut results, tamper, |me, st| {
        st.next(rng_of(rngs, me)?, &bcast_for(&out2, me), &p2p_for(&out2, me))
    });
    let (r4, out4) = round(r3, 4, &mut stats, &mut results, tamper, |me, st| {
        st.next(&bcast_for(&out3, me), &p2p_for(&out3, me))
    });
    for (me, st) in r4 {
        let started = Instant::now();
        let r = st.finish(&bcast_for(&out4, me));
        stats.record(me, started.elapsed(), None);
        results.insert(me, r);
    }
    (results, stats)
}
