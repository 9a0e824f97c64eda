//! In-process simulation: every party of a protocol run in one plain loop, with no message
//! layer (payloads are handed over as produced, as an honest relay + authenticated channels
//! would). For tests, benchmarks and examples: it measures CPU time and bytes per party, and a
//! tamper hook may rewrite any party's outgoing payloads of any round.
//!
//! [`drive`] is the one loop: it runs any protocol whose rounds implement [`Round`], handing
//! each party exactly the messages its round [expects](Round::expects), as the async runner
//! does. The protocol functions below ([`dkg`], [`presign`], [`finish`], [`sign`],
//! [`reshare`]) only say how each party starts.
//!
//! Identity keys are deterministic placeholders ([`identity`]); the message layer is exercised
//! by the async runner instead. Nothing here panics: a party whose round fails records its
//! error and stops, and the other parties then see its messages missing ([`Error::Timeout`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand_core::CryptoRng;

use crate::dkg::{self, DkgConfig};
use crate::error::Error;
use crate::keyshare::KeyShare;
use crate::math::PartyIndex;
use crate::round::{BoxedRound, Outgoing, Received, Step};
use crate::sign::{self, ONLINE_ROUND, Presignature, SignConfig, Signature};

/// A tamper hook: `(round, sender, outgoing payloads)`, with the message-id round numbers of
/// [`crate::round`] (DKG K1..K4 and reshare Q1..Q4 are 1..=4; signing S0..S3 are 1..=4).
pub type Tamper<'a> = &'a mut dyn FnMut(u16, PartyIndex, &mut Outgoing);

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

fn rng_of<R>(rngs: &mut BTreeMap<PartyIndex, R>, me: PartyIndex) -> Result<&mut R, Error> {
    rngs.get_mut(&me).ok_or_else(|| Error::InvalidInput(format!("no RNG for party {me}")))
}

/// What party `me` receives of everyone's `sent` messages in a round expecting `round`'s
/// senders.
fn deliver<O>(
    round: &BoxedRound<'_, O>,
    sent: &BTreeMap<PartyIndex, Outgoing>,
    me: PartyIndex,
) -> Received {
    let exp = round.expects();
    let bcast =
        exp.bcast.iter().filter_map(|j| Some((*j, sent.get(j)?.broadcast.clone()?))).collect();
    let p2p =
        exp.p2p.iter().filter_map(|j| Some((*j, sent.get(j)?.p2p.get(&me)?.clone()))).collect();
    Received { bcast, p2p }
}

/// Runs one protocol for every party of `parties`: `start` gives each party's first round and
/// messages, then every round is driven to the end. The tamper hook sees every party's
/// payloads of every round before they are delivered; costs are measured per party.
pub fn drive<'a, O, R: CryptoRng>(
    parties: &[PartyIndex],
    rngs: &mut BTreeMap<PartyIndex, R>,
    tamper: Tamper<'_>,
    mut start: impl FnMut(PartyIndex, &mut R) -> Result<(BoxedRound<'a, O>, Outgoing), Error>,
) -> (Results<O>, Stats) {
    let mut stats = Stats::default();
    let mut results = Results::new();
    let mut live: BTreeMap<PartyIndex, BoxedRound<'a, O>> = BTreeMap::new();
    let mut sent: BTreeMap<PartyIndex, Outgoing> = BTreeMap::new();
    let mut step = |me: PartyIndex,
                    cpu: Duration,
                    r: Result<Step<'a, O>, Error>,
                    stats: &mut Stats,
                    live: &mut BTreeMap<PartyIndex, BoxedRound<'a, O>>,
                    sent: &mut BTreeMap<PartyIndex, Outgoing>| match r {
        Ok(Step::Next(round, mut out)) => {
            stats.record(me, cpu, Some(&out));
            tamper(round.number(), me, &mut out);
            live.insert(me, round);
            sent.insert(me, out);
        }
        Ok(Step::Done(o)) => {
            stats.record(me, cpu, None);
            results.insert(me, Ok(o));
        }
        Err(e) => {
            stats.record(me, cpu, None);
            results.insert(me, Err(e));
        }
    };
    let mut order = parties.to_vec();
    order.sort_unstable();
    order.dedup();
    for me in order {
        let started = Instant::now();
        let r = rng_of(rngs, me).and_then(|rng| start(me, rng)).map(|(r, o)| Step::Next(r, o));
        step(me, started.elapsed(), r, &mut stats, &mut live, &mut sent);
    }
    stats.rounds += 1;
    while !live.is_empty() {
        let this_round = std::mem::take(&mut sent);
        let mut any_next = false;
        for (me, round) in std::mem::take(&mut live) {
            let got = deliver(&round, &this_round, me);
            let started = Instant::now();
            let r = rng_of(rngs, me).and_then(|rng| round.next(rng, got));
            any_next |= matches!(r, Ok(Step::Next(..)));
            step(me, started.elapsed(), r, &mut stats, &mut live, &mut sent);
        }
        if any_next {
            stats.rounds += 1;
        }
    }
    (results, stats)
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
    let parties: Vec<PartyIndex> = (1..=n).collect();
    drive(&parties, rngs, tamper, |me, rng| {
        let (r1, k1) = dkg::start(rng, dkg_config(n, t, me, setup_hash))?;
        Ok((Box::new(r1), k1))
    })
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
    let by_index: BTreeMap<PartyIndex, &KeyShare> =
        shares.iter().filter(|s| signers.contains(&s.index())).map(|s| (s.index(), *s)).collect();
    drive(signers, rngs, tamper, |me, rng| {
        let share = by_index
            .get(&me)
            .ok_or_else(|| Error::InvalidInput(format!("no key share for party {me}")))?;
        let (r1, s0) = sign::start(rng, share, sign_config(setup_hash, signers, me, path))?;
        Ok((Box::new(r1), s0))
    })
}

/// The online round (S3) and combination, consuming the presignatures.
pub fn finish<R: CryptoRng>(
    presignatures: BTreeMap<PartyIndex, Presignature>,
    m32: &[u8; 32],
    rngs: &mut BTreeMap<PartyIndex, R>,
    tamper: Tamper<'_>,
) -> (Results<Signature>, Stats) {
    let parties: Vec<PartyIndex> = presignatures.keys().copied().collect();
    let mut presignatures = presignatures;
    drive(&parties, rngs, tamper, |me, _| {
        let pre = presignatures
            .remove(&me)
            .ok_or_else(|| Error::InvalidInput(format!("no presignature for party {me}")))?;
        let (last, s3) = pre.sign(m32, ONLINE_ROUND);
        Ok((Box::new(last), s3))
    })
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
    let (sigs, more) = finish(ok, m32, rngs, tamper);
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
    let parties: Vec<PartyIndex> = spec.transport_participants().iter().map(|(t, _)| *t).collect();
    drive(&parties, rngs, tamper, |me, rng| {
        let cfg = ReshareConfig {
            spec: spec.clone(),
            setup_hash,
            me,
            ephemeral_public: [me.to_be_bytes()[1]; 32],
        };
        let old = spec.old_member_at(me).map(|m| secret_for(m.index));
        let (r1, q1) = rs::start(rng, cfg, old)?;
        Ok((Box::new(r1), q1))
    })
}

/// Checks what every honest DKG or reshare must give (tests): the same public data at every
/// party, valid shares that survive their encoding, every t-subset of public shares
/// interpolating to the public key in the exponent and no smaller subset doing so.
///
/// # Errors
/// A description of the first violated invariant.
pub fn check_shares(shares: &[KeyShare]) -> Result<(), String> {
    use k256::ProjectivePoint;
    use k256::elliptic_curve::group::Group;
    let first = shares.first().ok_or("no shares")?;
    let (n, t) = (first.parties(), first.threshold());
    for s in shares {
        let same = s.public_key() == first.public_key()
            && s.chain_code() == first.chain_code()
            && s.keygen_sid() == first.keygen_sid()
            && s.key_id() == first.key_id()
            && (1..=n).all(|l| s.public_share(l) == first.public_share(l));
        if !same {
            return Err(format!("party {} holds different public data", s.index()));
        }
        s.validate().map_err(|e| format!("party {}: {e}", s.index()))?;
        let back = KeyShare::from_bytes(&s.to_bytes()).map_err(|e| e.to_string())?;
        if back.public_key() != s.public_key() {
            return Err(format!("party {}: the encoding does not round-trip", s.index()));
        }
    }
    let interpolate = |subset: &[PartyIndex]| -> Option<ProjectivePoint> {
        subset.iter().try_fold(ProjectivePoint::IDENTITY, |acc, &l| {
            Some(acc + *first.public_share(l)? * crate::math::lagrange_at_zero(subset, l)?)
        })
    };
    let all: Vec<PartyIndex> = (1..=n).collect();
    for subset in subsets(&all, usize::from(t)) {
        if interpolate(&subset).as_ref() != Some(first.public_key()) {
            return Err(format!("the subset {subset:?} does not interpolate to X"));
        }
    }
    for subset in subsets(&all, usize::from(t) - 1).into_iter().filter(|s| !s.is_empty()) {
        if interpolate(&subset).as_ref() == Some(first.public_key()) {
            return Err(format!("the subset {subset:?} of fewer than t parties gives X"));
        }
    }
    if bool::from(first.public_key().is_identity()) {
        return Err("the public key is the identity".into());
    }
    Ok(())
}

/// Every `k`-element subset of `items`, in order.
pub fn subsets(items: &[PartyIndex], k: usize) -> Vec<Vec<PartyIndex>> {
    if k == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for (i, &x) in items.iter().enumerate() {
        for mut rest in subsets(items.get(i + 1..).unwrap_or_default(), k - 1) {
            rest.insert(0, x);
            out.push(rest);
        }
    }
    out
}

/// Checks a signature as a verifier would (tests): it verifies under `pk` for the prehash
/// `m32`, its s is low, its recovery id recovers `pk`, and its `v` byte is 27 + recovery id.
///
/// # Errors
/// A description of the first failed check.
pub fn check_signature(
    pk: &k256::ProjectivePoint,
    m32: &[u8; 32],
    sig: &Signature,
) -> Result<(), String> {
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    use k256::ecdsa::{RecoveryId, VerifyingKey};
    let vk = VerifyingKey::from_affine(pk.to_affine()).map_err(|e| e.to_string())?;
    let k = sig.to_k256().ok_or("invalid signature scalars")?;
    vk.verify_prehash(m32, &k).map_err(|e| format!("does not verify: {e}"))?;
    if k.normalize_s() != k {
        return Err("s is not low".into());
    }
    let rid = RecoveryId::from_byte(sig.recovery_id).ok_or("invalid recovery id")?;
    let recovered = VerifyingKey::recover_from_prehash(m32, &k, rid).map_err(|e| e.to_string())?;
    if recovered != vk {
        return Err("the recovery id recovers another key".into());
    }
    if sig.to_rsv().get(64) != Some(&(27 + sig.recovery_id)) {
        return Err("v is not 27 + recovery id".into());
    }
    Ok(())
}
