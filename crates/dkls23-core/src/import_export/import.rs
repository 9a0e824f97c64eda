//! Key import (`protocols.md` §6.1): the dealer deals Feldman-checked shares of an existing
//! key over signed and encrypted p2p messages (rounds 1–2); the provisional shares are then
//! refreshed at once (a reshare in refresh mode) so that the final shares and every OT and
//! zero seed are unknown to the dealer.

use k256::elliptic_curve::PrimeField;
use k256::{FieldBytes, ProjectivePoint, Scalar};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::invalid;
use crate::encoding::{POINT_LEN, Reader, point_to_bytes, scalar_to_bytes};
use crate::error::Error;
use crate::identity::IdentityPublicKey;
use crate::keyshare::{key_id, public_shares_from};
use crate::math::{PartyIndex, Polynomial, feldman_check};
use crate::reshare::{NewMember, OldMember, OldSecret, ReshareSpec};
use crate::round::{Expected, Outgoing, Received, Round, Step, payload, random_bytes};
use crate::setup::{ProtocolId, Setup};
use crate::transcript::{Tag, Th};

/// The importer's secret: a private key and its chain code. Zeroized on drop.
pub struct ImportSecret {
    x: Scalar,
    chain_code: [u8; 32],
}

impl ImportSecret {
    /// A private key (32 bytes big-endian, in `1..q`) and its chain code; without one (a plain
    /// key, not a BIP32 node) a fresh random chain code is drawn.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the key is zero or not below the group order.
    pub fn new(
        private_key: &[u8; 32],
        chain_code: Option<[u8; 32]>,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<Self, Error> {
        let x: Option<Scalar> = Scalar::from_repr(FieldBytes::from(*private_key)).into();
        let x = x.filter(|x| !bool::from(x.is_zero())).ok_or_else(|| {
            invalid("the private key must be a non-zero scalar below the group order")
        })?;
        let chain_code = chain_code.unwrap_or_else(|| random_bytes(rng));
        Ok(Self { x, chain_code })
    }

    /// The private key and chain code of a BIP32 extended private key (`xprv…` / `tprv…`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad encoding or checksum, a public or unknown version, a
    /// depth-0 node with a parent fingerprint or child number, a key byte other than `0x00`, or
    /// a key outside `1..q` (BIP-32 test vector 5).
    pub fn from_xprv(s: &str) -> Result<Self, Error> {
        let bad = |what: &str| invalid(format!("extended private key: {what}"));
        let data = crate::bip32::decode_extended_key(s).map_err(|e| bad(&e.to_string()))?;
        let mut r = Reader::new(&data);
        let version = r.u32().map_err(|_| bad("truncated"))?;
        if version != 0x0488_ADE4 && version != 0x0435_8394 {
            return Err(bad("not an xprv / tprv version"));
        }
        let [depth] = r.array::<1>().map_err(|_| bad("truncated"))?;
        let fingerprint = r.array::<4>().map_err(|_| bad("truncated"))?;
        let child = r.u32().map_err(|_| bad("truncated"))?;
        let chain_code = Zeroizing::new(r.array::<32>().map_err(|_| bad("truncated"))?);
        let [prefix] = r.array::<1>().map_err(|_| bad("truncated"))?;
        let key = Zeroizing::new(r.array::<32>().map_err(|_| bad("truncated"))?);
        if depth == 0 && (fingerprint != [0; 4] || child != 0) {
            return Err(bad("depth 0 with a parent fingerprint or child number"));
        }
        if prefix != 0 {
            return Err(bad("private key must be prefixed by 0x00"));
        }
        let x: Option<Scalar> = Scalar::from_repr(FieldBytes::from(*key)).into();
        let x =
            x.filter(|x| !bool::from(x.is_zero())).ok_or_else(|| bad("private key not in 1..q"))?;
        Ok(Self { x, chain_code: *chain_code })
    }

    /// X = x·G.
    pub fn public_key(&self) -> ProjectivePoint {
        ProjectivePoint::mul_by_generator(&self.x)
    }

    /// The key id the imported key will have.
    pub fn key_id(&self) -> [u8; 32] {
        key_id(&self.public_key(), &self.chain_code)
    }

    /// The public import request for this key, dealt by `dealer`.
    pub fn request(&self, dealer: PartyIndex) -> ImportRequest {
        ImportRequest { dealer, public_key: self.public_key(), key_id: self.key_id() }
    }
}

impl Zeroize for ImportSecret {
    fn zeroize(&mut self) {
        self.x.zeroize();
        self.chain_code.zeroize();
    }
}
impl Drop for ImportSecret {
    fn drop(&mut self) {
        self.zeroize();
    }
}
impl ZeroizeOnDrop for ImportSecret {}

/// What an import setup carries in `extra`: who deals, and the key every party expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRequest {
    /// The dealer's index (one of the holders 1..=n).
    pub dealer: PartyIndex,
    /// The public key being imported.
    pub public_key: ProjectivePoint,
    /// Its key id `TH("key-id", X, cc)`.
    pub key_id: [u8; 32],
}

impl ImportRequest {
    /// Canonical encoding: `dealer u16 ‖ X ‖ key_id`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + POINT_LEN + 32);
        out.extend_from_slice(&self.dealer.to_be_bytes());
        out.extend_from_slice(&point_to_bytes(&self.public_key));
        out.extend_from_slice(&self.key_id);
        out
    }

    /// Strict decoding.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for malformed input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |e| invalid(format!("import request: {e}"));
        let mut r = Reader::new(bytes);
        let req = Self {
            dealer: r.u16().map_err(bad)?,
            public_key: r.point().map_err(bad)?,
            key_id: r.array().map_err(bad)?,
        };
        r.finish().map_err(bad)?;
        Ok(req)
    }

    /// The import `Setup`: holders `1..=n` (their identities in index order), threshold `t`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the setup is invalid or the dealer is not a holder.
    pub fn to_setup(
        &self,
        iid: [u8; 32],
        holders: Vec<IdentityPublicKey>,
        t: u16,
        ttl_secs: u32,
    ) -> Result<Setup, Error> {
        let n = u16::try_from(holders.len()).map_err(|_| invalid("too many holders"))?;
        let participants =
            holders.into_iter().enumerate().map(|(i, k)| (i as u16 + 1, k)).collect();
        let setup =
            Setup::new(ProtocolId::Import, iid, n, t, participants, self.to_bytes(), ttl_secs)
                .map_err(|e| invalid(format!("import setup: {e}")))?;
        Self::from_setup(&setup)?;
        Ok(setup)
    }

    /// Parses the request of an import setup and checks the setup's shape (holders exactly
    /// `1..=n`, the dealer among them).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on any mismatch.
    pub fn from_setup(setup: &Setup) -> Result<Self, Error> {
        if setup.protocol() != ProtocolId::Import {
            return Err(invalid("the setup is not an import setup"));
        }
        let req = Self::from_bytes(setup.extra())?;
        let indices: Vec<PartyIndex> = setup.participants().iter().map(|(i, _)| *i).collect();
        if indices != (1..=setup.n()).collect::<Vec<_>>() {
            return Err(invalid("import participants must be exactly the holders 1..=n"));
        }
        if req.dealer == 0 || req.dealer > setup.n() {
            return Err(invalid("the import dealer must be one of the holders"));
        }
        Ok(req)
    }
}

/// The dealer's polynomial f with f(0) = x (secret, zeroized on drop).
pub struct ImportDeal {
    poly: Polynomial,
    chain_code: [u8; 32],
    commitments: Vec<ProjectivePoint>,
}

/// A holder's provisional share after the deal: no OT material, never usable for signing; only
/// input to the refresh that follows (§6.1 step 3).
pub struct ProvisionalShare {
    /// The import's session id (from round 1).
    sid: [u8; 32],
    index: PartyIndex,
    share: Scalar,
    chain_code: [u8; 32],
    public_key: ProjectivePoint,
    public_shares: Vec<ProjectivePoint>,
    keygen_sid: [u8; 32],
}

fn import_sid(
    sid: &[u8; 32],
    x: &ProjectivePoint,
    cc: &[u8; 32],
    f: &[ProjectivePoint],
) -> [u8; 32] {
    let mut h = Th::new(Tag::Import);
    h.put(b"keygen-sid").put(sid).put(&point_to_bytes(x)).put(cc);
    for a in f {
        h.put(&point_to_bytes(a));
    }
    h.finish()
}

impl ImportDeal {
    /// Samples f of degree t − 1 with f(0) = x.
    pub fn new(rng: &mut (impl CryptoRng + ?Sized), secret: &ImportSecret, t: u16) -> Self {
        let poly = Polynomial::random(rng, usize::from(t), Some(secret.x));
        let commitments = poly.commitments();
        Self { poly, chain_code: secret.chain_code, commitments }
    }

    /// The message to holder ℓ: `sid ‖ X ‖ cc ‖ F_0..F_{t−1} ‖ f(ℓ)` (send it encrypted).
    pub fn message_for(&self, sid: &[u8; 32], l: PartyIndex) -> Zeroizing<Vec<u8>> {
        let mut m =
            Zeroizing::new(Vec::with_capacity(32 * 3 + POINT_LEN * (1 + self.commitments.len())));
        m.extend_from_slice(sid);
        let x = self.commitments.first().copied().unwrap_or(ProjectivePoint::IDENTITY);
        m.extend_from_slice(&point_to_bytes(&x));
        m.extend_from_slice(&self.chain_code);
        for a in &self.commitments {
            m.extend_from_slice(&point_to_bytes(a));
        }
        m.extend_from_slice(&scalar_to_bytes(&self.poly.eval(l)));
        m
    }
}

impl Drop for ImportDeal {
    fn drop(&mut self) {
        self.chain_code.zeroize();
    }
}

impl ProvisionalShare {
    /// Checks the dealer's message to `me` (§6.1 step 2): sid echo, `F_0 == X` of the request,
    /// Feldman, key id. Failures blame the dealer.
    ///
    /// # Errors
    /// [`Error::Blame`] naming the dealer; [`Error::ViewMismatch`] for another sid.
    pub fn accept(
        sid: &[u8; 32],
        req: &ImportRequest,
        n: u16,
        t: u16,
        me: PartyIndex,
        msg: &[u8],
    ) -> Result<Self, Error> {
        let d = req.dealer;
        let len = 32 + POINT_LEN + 32 + usize::from(t) * POINT_LEN + 32;
        if msg.len() != len {
            return Err(Error::blame(
                d,
                format!("import message has {} bytes, expected {len}", msg.len()),
            ));
        }
        let mut r = Reader::new(msg);
        let bad = |e| Error::blame(d, format!("malformed import message: {e}"));
        let echo: [u8; 32] = r.array().map_err(bad)?;
        if echo != *sid {
            return Err(Error::ViewMismatch { round: 2, party: d });
        }
        let x = r.point().map_err(bad)?;
        let chain_code: [u8; 32] = r.array().map_err(bad)?;
        let mut f = Vec::with_capacity(usize::from(t));
        for _ in 0..t {
            f.push(r.point().map_err(bad)?);
        }
        let share = r.scalar().map_err(bad)?;
        r.finish().map_err(bad)?;
        if x != req.public_key || f.first() != Some(&x) {
            return Err(Error::blame(d, "dealt a different public key than the import request"));
        }
        if !bool::from(key_id(&x, &chain_code).ct_eq(&req.key_id)) {
            return Err(Error::blame(d, "sent a chain code that does not match the key id"));
        }
        if !feldman_check(&share, me, &f) {
            return Err(Error::blame(d, "share fails the Feldman check against its commitments"));
        }
        Ok(Self {
            sid: *sid,
            index: me,
            share,
            chain_code,
            public_key: x,
            public_shares: public_shares_from(&f, n),
            keygen_sid: import_sid(sid, &x, &chain_code, &f),
        })
    }

    /// The dealer's own provisional share.
    pub fn own(sid: &[u8; 32], deal: &ImportDeal, n: u16, me: PartyIndex) -> Self {
        let x = deal.commitments.first().copied().unwrap_or(ProjectivePoint::IDENTITY);
        Self {
            sid: *sid,
            index: me,
            share: deal.poly.eval(me),
            chain_code: deal.chain_code,
            public_key: x,
            public_shares: public_shares_from(&deal.commitments, n),
            keygen_sid: import_sid(sid, &x, &deal.chain_code, &deal.commitments),
        }
    }

    /// The refresh-mode reshare that turns the provisional shares into real ones: old = new =
    /// all holders with the setup's identities, same t, epoch 0 → 1.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the result is not a valid spec.
    pub fn refresh_spec(
        &self,
        holders: &[(PartyIndex, IdentityPublicKey)],
        t: u16,
    ) -> Result<ReshareSpec, Error> {
        let old_committee = holders
            .iter()
            .map(|(l, id)| {
                Ok(OldMember {
                    index: *l,
                    identity: *id,
                    public_share: *self
                        .public_shares
                        .get(usize::from(*l).wrapping_sub(1))
                        .ok_or_else(|| invalid("holder index out of range"))?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let spec = ReshareSpec {
            key_id: key_id(&self.public_key, &self.chain_code),
            old_keygen_sid: self.keygen_sid,
            public_key: self.public_key,
            old_threshold: t,
            old_committee,
            new_committee: holders
                .iter()
                .map(|(l, id)| NewMember { index: *l, identity: *id })
                .collect(),
            new_threshold: t,
            new_epoch: 1,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The refresh that follows the import of `setup`: its spec ([`Self::refresh_spec`] over
    /// the setup's holders) and its own setup, whose instance id is derived from the import's
    /// (`TH("import", "refresh-iid", setup_hash, sid)`), so every holder derives the same one.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the result is not a valid spec or setup.
    pub fn refresh_setup(&self, setup: &Setup) -> Result<(ReshareSpec, Setup), Error> {
        let spec = self.refresh_spec(setup.participants(), setup.t())?;
        let iid = crate::transcript::th(Tag::Import, &[b"refresh-iid", setup.hash(), &self.sid]);
        let rs_setup = spec.to_setup(iid, setup.ttl_secs())?;
        Ok((spec, rs_setup))
    }

    /// The dealer input for the refresh.
    pub fn into_old_secret(self) -> OldSecret {
        OldSecret::from_parts(self.index, self.share, self.chain_code)
    }
}

impl Drop for ProvisionalShare {
    fn drop(&mut self) {
        self.share.zeroize();
        self.chain_code.zeroize();
    }
}

redacted!(ImportSecret, ImportDeal, ProvisionalShare);

/// Round 1 of a key import: every holder sends fresh ρ and its ephemeral key; the session id
/// is taken over the setup and every contribution.
pub struct ImportRound1 {
    setup_hash: [u8; 32],
    req: ImportRequest,
    n: u16,
    t: u16,
    me: PartyIndex,
    dealer_secret: Option<ImportSecret>,
    own_q1: Vec<u8>,
}

/// Round 2 of a key import: the dealer's deal (p2p). The dealer has its provisional share
/// already and waits for nothing; every other holder waits for the dealer's message.
pub struct ImportRound2 {
    sid: [u8; 32],
    req: ImportRequest,
    n: u16,
    t: u16,
    me: PartyIndex,
    ephemerals: std::collections::BTreeMap<PartyIndex, [u8; 32]>,
    own: Option<ProvisionalShare>,
}

/// Starts a key import for `setup` (protocol `Import`, an [`ImportRequest`] in `extra`) as
/// party `me` with the session's ephemeral key; `dealer_secret` is `Some` exactly for the
/// dealer. The output of the last round is this party's [`ProvisionalShare`], the input of
/// the refresh ([`ProvisionalShare::refresh_setup`]).
///
/// # Errors
/// [`Error::InvalidInput`] for a dealer key that does not match the request, a missing dealer
/// key, or a key offered by a non-dealer.
pub fn start_import(
    rng: &mut (impl CryptoRng + ?Sized),
    setup: &Setup,
    me: PartyIndex,
    ephemeral_public: [u8; 32],
    dealer_secret: Option<ImportSecret>,
) -> Result<(ImportRound1, Outgoing), Error> {
    let req = ImportRequest::from_setup(setup)?;
    match (me == req.dealer, &dealer_secret) {
        (true, Some(s)) if s.public_key() == req.public_key && s.key_id() == req.key_id => {}
        (true, Some(_)) => return Err(invalid("the dealer's key does not match the request")),
        (true, None) => return Err(invalid("the dealer must supply the key")),
        (false, Some(_)) => return Err(invalid("only the dealer may supply the key")),
        (false, None) => {}
    }
    let mut q1 = random_bytes(rng).to_vec();
    q1.extend_from_slice(&ephemeral_public);
    let round = ImportRound1 {
        setup_hash: *setup.hash(),
        req,
        n: setup.n(),
        t: setup.t(),
        me,
        dealer_secret,
        own_q1: q1.clone(),
    };
    Ok((round, Outgoing::broadcast(q1)))
}

impl ImportRound1 {
    fn others(&self) -> Vec<PartyIndex> {
        (1..=self.n).filter(|&l| l != self.me).collect()
    }
}

impl<'a> Round<'a> for ImportRound1 {
    type Output = ProvisionalShare;

    fn number(&self) -> u16 {
        1
    }

    fn expects(&self) -> Expected {
        Expected::broadcasts(self.others())
    }

    /// # Errors
    /// [`Error::Timeout`] for a missing contribution, [`Error::Blame`] for a malformed one.
    fn next(
        self: Box<Self>,
        rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, ProvisionalShare>, Error> {
        let ImportRound1 { setup_hash, req, n, t, me, dealer_secret, own_q1 } = *self;
        let mut h = Th::new(Tag::Import);
        h.put(b"sid").put(&setup_hash);
        let mut ephemerals = std::collections::BTreeMap::new();
        for l in 1..=n {
            let p = match got.bcast.get(&l) {
                _ if l == me => &own_q1,
                Some(p) => p,
                None => return Err(Error::Timeout { round: 1, missing: vec![l] }),
            };
            if p.len() != 64 {
                return Err(Error::blame(l, "malformed import round 1"));
            }
            h.put_u16(l).put(p);
            if l != me {
                let e: [u8; 32] = p
                    .get(32..)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| Error::blame(l, "malformed import round 1"))?;
                ephemerals.insert(l, e);
            }
        }
        let sid = h.finish();
        let mut out = Outgoing::none();
        let own = match dealer_secret {
            Some(secret) => {
                let deal = ImportDeal::new(rng, &secret, t);
                drop(secret);
                for l in (1..=n).filter(|&l| l != me) {
                    out.p2p.insert(l, deal.message_for(&sid, l).to_vec());
                }
                Some(ProvisionalShare::own(&sid, &deal, n, me))
            }
            None => None,
        };
        let next = ImportRound2 { sid, req, n, t, me, ephemerals, own };
        Ok(Step::next(next, out))
    }
}

impl<'a> Round<'a> for ImportRound2 {
    type Output = ProvisionalShare;

    fn number(&self) -> u16 {
        2
    }

    fn expects(&self) -> Expected {
        match self.own {
            Some(_) => Expected::nothing(),
            None => Expected::p2p(vec![self.req.dealer]),
        }
    }

    /// The other holders' ephemeral X25519 keys from round 1 (the deal is encrypted).
    fn peer_ephemeral_keys(&self) -> std::collections::BTreeMap<PartyIndex, [u8; 32]> {
        self.ephemerals.clone()
    }

    /// # Errors
    /// [`Error::Blame`] naming the dealer for a deal that fails its checks.
    fn next(
        self: Box<Self>,
        _rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, ProvisionalShare>, Error> {
        let ImportRound2 { sid, req, n, t, me, own, .. } = *self;
        match own {
            Some(share) => Ok(Step::Done(share)),
            None => {
                let msg = payload(&got.p2p, req.dealer);
                ProvisionalShare::accept(&sid, &req, n, t, me, msg).map(Step::Done)
            }
        }
    }
}

redacted!(ImportRound1, ImportRound2);
