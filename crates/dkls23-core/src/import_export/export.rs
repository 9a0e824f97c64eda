//! Key export (`protocols.md` §6.2): every exporter sends its share, encrypted to the
//! recipient's static X25519 key and signed (so a wrong share is attributable); the recipient
//! checks each against its public share and reconstructs the key. **Export ends threshold
//! custody.**

use std::collections::BTreeMap;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag as AeadTag};
use k256::elliptic_curve::group::Group;
use k256::{ProjectivePoint, Scalar};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::invalid;
use crate::encoding::{POINT_LEN, Reader, point_to_bytes, scalar_to_bytes};
use crate::error::Error;
use crate::identity::IdentityPublicKey;
use crate::keyshare::{KeyShare, key_id};
use crate::math::{PartyIndex, lagrange_at_zero};
use crate::round::{Expected, Outgoing, Received, Round, Step, expect_from, payload, random_bytes};
use crate::setup::{ProtocolId, Setup};
use crate::transcript::{DOMAIN, Tag};

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
    expect_from(1, payloads, &set)?;
    let mut x = Scalar::ZERO;
    let mut chain_code = Zeroizing::new([0u8; 32]);
    for &l in &set {
        let p = payload(payloads, l);
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

/// The exporter's only round: its payload is published in round 1 and nothing comes back.
#[derive(Debug)]
pub struct ExportSentRound;

/// Starts the exporter side of an export: the round and the payload to broadcast (see
/// [`export_share`]).
///
/// # Errors
/// As [`export_share`].
pub fn start_export(
    rng: &mut (impl CryptoRng + ?Sized),
    share: &KeyShare,
    req: &ExportRequest,
    setup_hash: &[u8; 32],
    confirmation: &str,
) -> Result<(ExportSentRound, Outgoing), Error> {
    let out = export_share(rng, share, req, setup_hash, confirmation)?;
    Ok((ExportSentRound, Outgoing::broadcast(out)))
}

impl<'a> Round<'a> for ExportSentRound {
    type Output = ();

    fn number(&self) -> u16 {
        1
    }

    fn expects(&self) -> Expected {
        Expected::nothing()
    }

    fn next(
        self: Box<Self>,
        _rng: &mut dyn CryptoRng,
        _got: Received,
    ) -> Result<Step<'a, ()>, Error> {
        Ok(Step::Done(()))
    }
}

/// The recipient's only round: every exporter's payload, opened and combined.
pub struct ExportReceiveRound {
    req: ExportRequest,
    setup_hash: [u8; 32],
    recipient_secret: Zeroizing<[u8; 32]>,
}

/// Starts the recipient side of an export for the request `req` of the setup with hash
/// `setup_hash`; it sends nothing.
///
/// # Errors
/// [`Error::InvalidInput`] without the confirmation.
pub fn start_export_receive(
    req: ExportRequest,
    setup_hash: &[u8; 32],
    recipient_secret: &[u8; 32],
    confirmation: &str,
) -> Result<(ExportReceiveRound, Outgoing), Error> {
    confirm(confirmation)?;
    let round = ExportReceiveRound {
        req,
        setup_hash: *setup_hash,
        recipient_secret: Zeroizing::new(*recipient_secret),
    };
    Ok((round, Outgoing::none()))
}

impl<'a> Round<'a> for ExportReceiveRound {
    type Output = ExportedKey;

    fn number(&self) -> u16 {
        1
    }

    fn expects(&self) -> Expected {
        Expected::broadcasts(self.req.exporters.iter().map(|(l, _)| *l).collect())
    }

    /// # Errors
    /// [`Error::Blame`] naming an exporter whose payload is wrong; [`Error::Timeout`].
    fn next(
        self: Box<Self>,
        _rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, ExportedKey>, Error> {
        receive_export(
            &self.req,
            &self.setup_hash,
            &self.recipient_secret,
            &got.bcast,
            EXPORT_CONFIRMATION,
        )
        .map(Step::Done)
    }
}

redacted!(ExportReceiveRound);
