//! The pairwise material DKG and reshare set up between every two parties: the OT setup ids
//! and the finishing of a pair's base OT, the pairwise zero-sharing seeds, and the checks of
//! the final-share broadcast and acknowledgement both protocols end with (`protocols.md` §2.3,
//! §2.5, §2.6, §4.1).

use k256::ProjectivePoint;

use crate::encoding::{POINT_LEN, Reader, point_to_bytes};
use crate::error::Error;
use crate::math::PartyIndex;
use crate::ot::{AliceSetup, AliceState, Kg2, SetupIds};
use crate::pok::{POK_LEN, Pok};
use crate::transcript::{Tag, Th, th};

/// osid(A, B) = TH("ot/setup", sid, u16(A), u16(B)): the OT setup ids of the pair where A is
/// Alice and B is Bob.
pub(crate) fn osid(sid: &[u8; 32], alice: PartyIndex, bob: PartyIndex) -> SetupIds {
    SetupIds::new(th(Tag::OtSetup, &[sid, &alice.to_be_bytes(), &bob.to_be_bytes()]))
}

/// The public data a final-share broadcast (DKG K3, reshare Q3) is checked against (§2.5).
pub(crate) struct FinalView<'a> {
    /// Round name for error messages ("K3", "Q3").
    pub(crate) label: &'static str,
    /// Tag of the final proof of knowledge.
    pub(crate) tag: Tag,
    pub(crate) sid: &'a [u8; 32],
    pub(crate) d2: &'a [u8; 32],
    pub(crate) x: &'a ProjectivePoint,
    pub(crate) chain_code: &'a [u8; 32],
    /// X_1..X_n as computed from the commitments.
    pub(crate) public_shares: &'a [ProjectivePoint],
}

impl FinalView<'_> {
    /// §2.5 checks 1–3 on party j's broadcast `sid ‖ D2 ‖ X ‖ X_j ‖ π*_j`.
    pub(crate) fn check(&self, j: PartyIndex, b: &[u8]) -> Result<(), Error> {
        let label = self.label;
        let len = 64 + 2 * POINT_LEN + POK_LEN;
        if b.len() != len {
            return Err(Error::blame(
                j,
                format!("{label} broadcast has {} bytes, expected {len}", b.len()),
            ));
        }
        let mut r = Reader::new(b);
        let bad = |_| Error::blame(j, format!("malformed {label}"));
        let echo: [u8; 32] = r.array().map_err(bad)?;
        let d2: [u8; 32] = r.array().map_err(bad)?;
        if echo != *self.sid || d2 != *self.d2 {
            return Err(Error::ViewMismatch { round: 3, party: j });
        }
        let x_j = r.point().map_err(|e| Error::blame(j, format!("{label} public key: {e}")))?;
        let share_j =
            r.point().map_err(|e| Error::blame(j, format!("{label} public share: {e}")))?;
        let pok = Pok::read(&mut r).map_err(|e| Error::blame(j, format!("{label} proof: {e}")))?;
        if x_j != *self.x {
            return Err(Error::blame(j, "announced a different public key"));
        }
        let expected = usize::from(j)
            .checked_sub(1)
            .and_then(|k| self.public_shares.get(k))
            .copied()
            .unwrap_or_default();
        if share_j != expected {
            return Err(Error::blame(
                j,
                "announced a public share that differs from the commitments",
            ));
        }
        let x_bytes = point_to_bytes(self.x);
        if !pok.verify(
            self.tag,
            &[self.sid, &j.to_be_bytes(), &x_bytes, self.chain_code, self.d2],
            &expected,
        ) {
            return Err(Error::blame(
                j,
                "final proof of knowledge is invalid (different chain code or view?)",
            ));
        }
        Ok(())
    }
}

/// §2.5 check 4: finishes this party's OT pair setup as Alice with j from j's `sid ‖ M2`.
pub(crate) fn finish_pair_setup(
    j: PartyIndex,
    sid: &[u8; 32],
    m: &[u8],
    setup: Option<AliceSetup>,
) -> Result<AliceState, Error> {
    if m.len() != 32 + Kg2::LEN {
        return Err(Error::blame(j, format!("round-3 p2p message has {} bytes", m.len())));
    }
    if m.get(..32) != Some(&sid[..]) {
        return Err(Error::ViewMismatch { round: 3, party: j });
    }
    let kg2 = Kg2::decode(m.get(32..).unwrap_or_default()).map_err(|e| Error::from_ot(j, 3, e))?;
    let setup = setup.ok_or_else(|| Error::InvalidInput("missing OT setup".into()))?;
    setup.finish(&kg2).map_err(|e| Error::from_ot(j, 3, e))
}

/// seed_ij = TH("dkg/zero-seed", sid, u16(min), u16(max), σ_{min→max}, σ_{max→min}) (§2.3; the
/// reshare uses it with its own sid).
pub(crate) fn zero_seed(
    sid: &[u8; 32],
    me: PartyIndex,
    j: PartyIndex,
    sent: &[u8; 32],
    received: &[u8; 32],
) -> [u8; 32] {
    let (lo, hi) = if me < j { (sent, received) } else { (received, sent) };
    th(Tag::DkgZeroSeed, &[sid, &me.min(j).to_be_bytes(), &me.max(j).to_be_bytes(), lo, hi])
}

/// `TH(tag, sid, ser_p(X), cc, ser_p(X_1..X_n))`: the acknowledgement of DKG (K4) and reshare (Q4).
pub(crate) fn public_ack(
    tag: Tag,
    sid: &[u8; 32],
    x: &ProjectivePoint,
    cc: &[u8; 32],
    shares: &[ProjectivePoint],
) -> [u8; 32] {
    let mut h = Th::new(tag);
    h.put(sid).put(&point_to_bytes(x)).put(cc);
    for s in shares {
        h.put(&point_to_bytes(s));
    }
    h.finish()
}
