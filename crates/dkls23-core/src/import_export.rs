//! Key import (split an existing private key, `protocols.md` §6.1) and key export (reconstruct
//! it to one recipient, §6.2), as sans-IO building blocks; the async runners are
//! [`crate::runner::run_import`], [`crate::runner::run_export`] and
//! [`crate::runner::run_export_receive`].
//!
//! **Import** is trusted-dealer: the key is only as safe as the dealer's history. The dealt
//! shares are provisional (no OT material); the import runner immediately runs a refresh-mode
//! reshare, so the final shares and all OT / zero seeds are fresh and unknown to the dealer.
//!
//! **Export ends threshold custody.** After an export the key must be treated as single-custody
//! forever; a refresh does not undo it. Every API here requires the caller to pass
//! [`EXPORT_CONFIRMATION`] verbatim.

use std::collections::BTreeMap;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag as AeadTag};
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::group::Group;
use k256::{FieldBytes, ProjectivePoint, Scalar};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::dkg::random_bytes;
use crate::encoding::{POINT_LEN, Reader, point_to_bytes, scalar_to_bytes};
use crate::error::Error;
use crate::identity::IdentityPublicKey;
use crate::keyshare::{KeyShare, key_id, public_shares_from};
use crate::math::{PartyIndex, Polynomial, feldman_check, lagrange_at_zero};
use crate::reshare::{NewMember, OldMember, OldSecret, ReshareSpec};
use crate::setup::{ProtocolId, Setup};
use crate::transcript::{DOMAIN, Tag, Th};

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidInput(msg.into())
}

// ---------------------------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

/// The value every export API requires verbatim: exporting ends threshold custody.
pub const EXPORT_CONFIRMATION: &str =
    "I understand the exported key is no longer threshold-protected";

fn confirm(confirmation: &str) -> Result<(), Error> {
    if confirmation != EXPORT_CONFIRMATION {
        return Err(invalid(
            "export refused: pass EXPORT_CONFIRMATION to acknowledge that the key leaves threshold custody",
        ));
    }
    Ok(())
}

/// What an export setup carries in `extra`: the key, the exporters' public shares and the
/// recipient's static X25519 key (authenticate it out of band).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    /// The key being exported.
    pub key_id: [u8; 32],
    /// Its public key X.
    pub public_key: ProjectivePoint,
    /// The key's threshold t.
    pub threshold: u16,
    /// Exporters (key indices, ascending) and their public shares X_ℓ; at least t.
    pub exporters: Vec<(PartyIndex, ProjectivePoint)>,
    /// The recipient's setup index (not an exporter's).
    pub recipient: PartyIndex,
    /// The recipient's static X25519 public key P_R.
    pub recipient_key: [u8; 32],
}

impl ExportRequest {
    /// The request to export `share`'s key through `exporters` to `recipient`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for fewer than t exporters, unknown indices, or a recipient index
    /// that collides with an exporter.
    pub fn new(
        share: &KeyShare,
        exporters: &[PartyIndex],
        recipient: PartyIndex,
        recipient_key: [u8; 32],
    ) -> Result<Self, Error> {
        let mut idx = exporters.to_vec();
        idx.sort_unstable();
        idx.dedup();
        let exporters = idx
            .iter()
            .map(|&l| {
                share
                    .public_share(l)
                    .map(|x| (l, *x))
                    .ok_or_else(|| invalid(format!("party {l} is not a holder")))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let req = Self {
            key_id: *share.key_id(),
            public_key: *share.public_key(),
            threshold: share.threshold(),
            exporters,
            recipient,
            recipient_key,
        };
        req.validate()?;
        Ok(req)
    }

    fn validate(&self) -> Result<(), Error> {
        if self.exporters.len() < usize::from(self.threshold) || self.threshold < 2 {
            return Err(invalid("an export needs at least t exporters"));
        }
        if self.exporters.windows(2).any(|w| matches!(w, [a, b] if a.0 >= b.0))
            || self.exporters.iter().any(|(l, _)| *l == 0 || *l == self.recipient)
            || self.recipient == 0
        {
            return Err(invalid(
                "exporter indices must be distinct, ascending and not the recipient's",
            ));
        }
        Ok(())
    }

    /// Canonical encoding: `key_id ‖ X ‖ t u16 ‖ count u16 ‖ (ℓ u16 ‖ X_ℓ)* ‖ recipient u16 ‖ P_R`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + POINT_LEN + 4 + self.exporters.len() * 35 + 34);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&point_to_bytes(&self.public_key));
        out.extend_from_slice(&self.threshold.to_be_bytes());
        out.extend_from_slice(&(self.exporters.len() as u16).to_be_bytes());
        for (l, x) in &self.exporters {
            out.extend_from_slice(&l.to_be_bytes());
            out.extend_from_slice(&point_to_bytes(x));
        }
        out.extend_from_slice(&self.recipient.to_be_bytes());
        out.extend_from_slice(&self.recipient_key);
        out
    }

    /// Strict decoding and validation.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for malformed input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |e| invalid(format!("export request: {e}"));
        let mut r = Reader::new(bytes);
        let key_id = r.array().map_err(bad)?;
        let public_key = r.point().map_err(bad)?;
        let threshold = r.u16().map_err(bad)?;
        let count = r.u16().map_err(bad)?;
        if count > 255 {
            return Err(invalid("export request: too many exporters"));
        }
        let mut exporters = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            exporters.push((r.u16().map_err(bad)?, r.point().map_err(bad)?));
        }
        let recipient = r.u16().map_err(bad)?;
        let recipient_key = r.array().map_err(bad)?;
        r.finish().map_err(bad)?;
        let req = Self { key_id, public_key, threshold, exporters, recipient, recipient_key };
        req.validate()?;
        Ok(req)
    }

    /// The export `Setup`: exporters under their key index (identities from `share`) plus the
    /// recipient under [`Self::recipient`] with `recipient_identity`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the setup is invalid.
    pub fn to_setup(
        &self,
        share: &KeyShare,
        recipient_identity: IdentityPublicKey,
        iid: [u8; 32],
        ttl_secs: u32,
    ) -> Result<Setup, Error> {
        let mut participants = vec![(self.recipient, recipient_identity)];
        for (l, _) in &self.exporters {
            let id = share.identity(*l).ok_or_else(|| invalid("unknown exporter"))?;
            let id = IdentityPublicKey::from_bytes(id)
                .map_err(|e| invalid(format!("identity of party {l}: {e}")))?;
            participants.push((*l, id));
        }
        let setup = Setup::new(
            ProtocolId::Export,
            iid,
            share.parties(),
            share.threshold(),
            participants,
            self.to_bytes(),
            ttl_secs,
        )
        .map_err(|e| invalid(format!("export setup: {e}")))?;
        Self::from_setup(&setup)?;
        Ok(setup)
    }

    /// Parses the request of an export setup and checks its participants (the exporters and
    /// the recipient, nobody else).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on any mismatch.
    pub fn from_setup(setup: &Setup) -> Result<Self, Error> {
        if setup.protocol() != ProtocolId::Export {
            return Err(invalid("the setup is not an export setup"));
        }
        let req = Self::from_bytes(setup.extra())?;
        let mut expected: Vec<PartyIndex> = req.exporters.iter().map(|(l, _)| *l).collect();
        expected.push(req.recipient);
        expected.sort_unstable();
        let got: Vec<PartyIndex> = setup.participants().iter().map(|(i, _)| *i).collect();
        if got != expected || setup.t() != req.threshold {
            return Err(invalid("the setup's participants do not match its export request"));
        }
        Ok(req)
    }

    /// Checks the request against an exporter's stored share.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on any mismatch.
    pub fn check_share(&self, share: &KeyShare) -> Result<(), Error> {
        if self.key_id != *share.key_id()
            || self.public_key != *share.public_key()
            || self.threshold != share.threshold()
            || self.exporters.iter().any(|(l, x)| share.public_share(*l) != Some(x))
        {
            return Err(invalid("the export request does not match the key share"));
        }
        Ok(())
    }
}

const EXPORT_PT_LEN: usize = 64;
/// Length of one exporter's payload: `E_eph ‖ ct ‖ tag16`.
pub const EXPORT_PAYLOAD_LEN: usize = 32 + EXPORT_PT_LEN + 16;

fn export_key(
    setup_hash: &[u8; 32],
    dh: &[u8; 32],
    eph: &[u8; 32],
    req: &ExportRequest,
    l: PartyIndex,
) -> Zeroizing<[u8; 32]> {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(setup_hash), dh);
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes from SHA-256 HKDF never exceed the output limit.
    let _ = hk.expand_multi_info(
        &[
            DOMAIN.as_bytes(),
            b"/",
            Tag::Export.label().as_bytes(),
            eph,
            &req.recipient_key,
            &req.key_id,
            &l.to_be_bytes(),
        ],
        &mut *okm,
    );
    okm
}

fn export_aad(
    setup_hash: &[u8; 32],
    eph: &[u8; 32],
    req: &ExportRequest,
    l: PartyIndex,
) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 * 4 + 2);
    aad.extend_from_slice(setup_hash);
    aad.extend_from_slice(eph);
    aad.extend_from_slice(&req.recipient_key);
    aad.extend_from_slice(&req.key_id);
    aad.extend_from_slice(&l.to_be_bytes());
    aad
}

/// An exporter's payload for the recipient: `E_eph ‖ AEAD(k, aad, s_ℓ ‖ cc)` (the runner sends
/// it as a signed broadcast, so a wrong share is attributable).
///
/// # Errors
/// [`Error::InvalidInput`] without the confirmation, for a request that does not match the
/// share, or a recipient key that gives a non-contributory X25519 result.
pub fn export_share(
    rng: &mut (impl CryptoRng + ?Sized),
    share: &KeyShare,
    req: &ExportRequest,
    setup_hash: &[u8; 32],
    confirmation: &str,
) -> Result<Vec<u8>, Error> {
    confirm(confirmation)?;
    req.check_share(share)?;
    let l = share.index();
    if !req.exporters.iter().any(|(j, _)| *j == l) {
        return Err(invalid("this party is not an exporter in the request"));
    }
    let e = Zeroizing::new(random_bytes(rng));
    let eph = x25519_dalek::x25519(*e, x25519_dalek::X25519_BASEPOINT_BYTES);
    let dh = Zeroizing::new(x25519_dalek::x25519(*e, req.recipient_key));
    if dh.iter().all(|&b| b == 0) {
        return Err(invalid("the recipient key gives a non-contributory X25519 result"));
    }
    let key = export_key(setup_hash, &dh, &eph, req, l);
    let mut pt = Zeroizing::new(Vec::with_capacity(EXPORT_PT_LEN));
    pt.extend_from_slice(&scalar_to_bytes(&share.secret_share));
    pt.extend_from_slice(share.chain_code());
    let tag = ChaCha20Poly1305::new(&(*key).into())
        .encrypt_inout_detached(
            &Nonce::default(),
            &export_aad(setup_hash, &eph, req, l),
            pt.as_mut_slice().into(),
        )
        .map_err(|_| invalid("encryption failed"))?;
    let mut out = Vec::with_capacity(EXPORT_PAYLOAD_LEN);
    out.extend_from_slice(&eph);
    out.extend_from_slice(&pt);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// The reconstructed private key. **No longer threshold-protected**: whoever holds it controls
/// the key alone, forever (a refresh does not undo an export). Zeroized on drop.
pub struct ExportedKey {
    secret: Zeroizing<[u8; 32]>,
    chain_code: Zeroizing<[u8; 32]>,
    public_key: ProjectivePoint,
}

impl ExportedKey {
    /// The private key x (32 bytes big-endian).
    pub fn secret_key(&self) -> &[u8; 32] {
        &self.secret
    }
    /// The root chain code (with x it forms an xprv node).
    pub fn chain_code(&self) -> &[u8; 32] {
        &self.chain_code
    }
    /// X = x·G.
    pub fn public_key(&self) -> &ProjectivePoint {
        &self.public_key
    }
    /// Always `false`: the marker that this key left threshold custody.
    pub fn is_threshold_protected(&self) -> bool {
        false
    }
}

redacted!(ExportedKey);

/// Opens exporter ℓ's payload and checks `s_ℓ·G == X_ℓ` (else `Blame{ℓ}`).
///
/// # Errors
/// [`Error::Blame`] naming ℓ for a malformed payload, a failed decryption or a wrong share.
pub fn open_export_share(
    req: &ExportRequest,
    setup_hash: &[u8; 32],
    recipient_secret: &[u8; 32],
    l: PartyIndex,
    payload: &[u8],
) -> Result<(Scalar, Zeroizing<[u8; 32]>), Error> {
    let x_l = req
        .exporters
        .iter()
        .find(|(j, _)| *j == l)
        .map(|(_, x)| *x)
        .ok_or_else(|| invalid(format!("party {l} is not an exporter")))?;
    if payload.len() != EXPORT_PAYLOAD_LEN {
        return Err(Error::blame(l, format!("export payload has {} bytes", payload.len())));
    }
    let (eph, rest) = payload.split_at(32);
    let (ct, tag) = rest.split_at(EXPORT_PT_LEN);
    let eph: [u8; 32] = eph.try_into().map_err(|_| Error::blame(l, "malformed export payload"))?;
    let dh = Zeroizing::new(x25519_dalek::x25519(*recipient_secret, eph));
    if dh.iter().all(|&b| b == 0) {
        return Err(Error::blame(l, "non-contributory ephemeral key"));
    }
    let key = export_key(setup_hash, &dh, &eph, req, l);
    let tag = AeadTag::try_from(tag).map_err(|_| Error::blame(l, "malformed export payload"))?;
    let mut pt = Zeroizing::new(ct.to_vec());
    ChaCha20Poly1305::new(&(*key).into())
        .decrypt_inout_detached(
            &Nonce::default(),
            &export_aad(setup_hash, &eph, req, l),
            pt.as_mut_slice().into(),
            &tag,
        )
        .map_err(|_| Error::blame(l, "export share does not decrypt"))?;
    let mut r = Reader::new(&pt);
    let s = r.scalar().map_err(|e| Error::blame(l, format!("export share: {e}")))?;
    let cc: [u8; 32] = r.array().map_err(|_| Error::blame(l, "malformed export share"))?;
    if ProjectivePoint::mul_by_generator(&s) != x_l {
        return Err(Error::blame(l, "exported share does not match its public share"));
    }
    if !bool::from(key_id(&req.public_key, &cc).ct_eq(&req.key_id)) {
        return Err(Error::blame(l, "exported chain code does not match the key id"));
    }
    Ok((s, Zeroizing::new(cc)))
}

/// Opens every exporter's payload and reconstructs x (checks `x·G == X`).
///
/// # Errors
/// [`Error::InvalidInput`] without the confirmation; [`Error::Blame`] naming an exporter whose
/// payload is wrong; [`Error::Timeout`] if one is missing.
pub fn receive_export(
    req: &ExportRequest,
    setup_hash: &[u8; 32],
    recipient_secret: &[u8; 32],
    payloads: &BTreeMap<PartyIndex, Vec<u8>>,
    confirmation: &str,
) -> Result<ExportedKey, Error> {
    confirm(confirmation)?;
    let pk = x25519_dalek::x25519(*recipient_secret, x25519_dalek::X25519_BASEPOINT_BYTES);
    if !bool::from(pk.ct_eq(&req.recipient_key)) {
        return Err(invalid("the recipient secret does not match the request's recipient key"));
    }
    let set: Vec<PartyIndex> = req.exporters.iter().map(|(l, _)| *l).collect();
    crate::dkg::expect_from(1, payloads, &set)?;
    let mut x = Scalar::ZERO;
    let mut chain_code = Zeroizing::new([0u8; 32]);
    for &l in &set {
        let p = payloads.get(&l).map_or(&[][..], Vec::as_slice);
        let (mut s, cc) = open_export_share(req, setup_hash, recipient_secret, l, p)?;
        let lambda = lagrange_at_zero(&set, l).ok_or_else(|| invalid("bad exporter set"))?;
        x += lambda * s;
        s.zeroize();
        *chain_code = *cc;
    }
    if ProjectivePoint::mul_by_generator(&x) != req.public_key
        || bool::from(req.public_key.is_identity())
    {
        x.zeroize();
        return Err(Error::Unattributable("the reconstructed key does not match X".into()));
    }
    let secret = Zeroizing::new(scalar_to_bytes(&x));
    x.zeroize();
    Ok(ExportedKey { secret, chain_code, public_key: req.public_key })
}
