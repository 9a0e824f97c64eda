//! The one transcript module of the crate: framing, domain prefix, tag registry and every hash.
//!
//! * Framing: every input (including the tag) is written as `u64_be(len) || bytes`, so no two
//!   input sequences encode alike.
//! * Domain prefix: the first frame is always `DOMAIN || "/" || tag`, where [`DOMAIN`] carries the
//!   version; mismatched builds fail early and visibly.
//! * Tags: every tag of both specs lives in [`Tag`]; a unit test checks that they are distinct.
//!
//! Hash functions:
//! * [`th`] — tagged SHA-256 (`TH` in `protocols.md`), 32-byte output.
//! * [`hs`] — tagged SHA-512 reduced mod q (`HS`), a 64-byte wide reduction.
//! * [`Xof`] — the OT layer's extendable-output function (`H_L` in `ot.md`). We use
//!   TurboSHAKE128 (RFC 9861: Keccak-p[1600, 12 rounds], 128-bit security) instead of SHAKE256:
//!   the OT layer's achieved level is 128 bits anyway (`ot.md` P11), and TurboSHAKE128 absorbs
//!   168-byte blocks at twice the speed, so every per-column hash of the extension costs one
//!   permutation. See `docs/ot-choices.md`.
//! * [`hash_to_ristretto`] — RFC 9496 element derivation on Ristretto255 (base OT group).

use curve25519_dalek::ristretto::RistrettoPoint;
use k256::elliptic_curve::array::Array;
use k256::elliptic_curve::consts::U48;
use k256::elliptic_curve::ops::Reduce;
use k256::{Scalar, WideBytes};
use sha2::Digest;
use turboshake::TurboShake128;
use turboshake::digest::{ExtendableOutput, Update, XofReader};

/// The versioned domain prefix shared by every hash in the crate.
pub const DOMAIN: &str = "DKLS23-v1";

macro_rules! tags {
    ($( $(#[$m:meta])* $name:ident = $label:literal, )*) => {
        /// Every hash tag used anywhere in the crate (`protocols.md` Appendix A + `ot.md` §1.4).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Tag { $( $(#[$m])* $name, )* }

        impl Tag {
            /// All tags, for the uniqueness test and documentation.
            pub const ALL: &'static [Tag] = &[ $( Tag::$name, )* ];

            /// The tag's label (without the domain prefix).
            pub const fn label(self) -> &'static str {
                match self { $( Tag::$name => $label, )* }
            }
        }
    };
}

tags! {
    // --- setup and transport
    /// Canonical setup hash.
    Setup = "setup",
    /// Message id.
    Mid = "mid",
    /// Broadcast signature context.
    Bcast = "bcast",
    /// Point-to-point key derivation and complaint signatures.
    P2p = "p2p",
    /// Key export encryption.
    Export = "export",
    /// Key id of a public key and chain code.
    KeyId = "key-id",
    /// Import transcript.
    Import = "import",
    /// Digest of an accepted message's content (equivocation / duplicate detection).
    MsgDigest = "msg/digest",
    // --- DKG
    /// DKG polynomial commitment.
    DkgComPoly = "dkg/com-poly",
    /// DKG chain-code commitment.
    DkgComCc = "dkg/com-cc",
    /// DKG session id.
    DkgSid = "dkg/sid",
    /// DKG coefficient proof of knowledge.
    DkgPokCoef = "dkg/pok-coef",
    /// DKG round-2 view digest.
    DkgR2 = "dkg/r2",
    /// DKG chain code.
    DkgChainCode = "dkg/chaincode",
    /// DKG zero-share seed.
    DkgZeroSeed = "dkg/zero-seed",
    /// DKG final-share proof of knowledge.
    DkgPokShare = "dkg/pok-share",
    /// DKG acknowledgement.
    DkgAck = "dkg/ack",
    // --- zero sharing
    /// Zero-share derivation.
    Zero = "zero",
    // --- signing
    /// Commitment to the instance point R_i.
    DsgComR = "dsg/com-R",
    /// Signing session id.
    DsgSid = "dsg/sid",
    /// Per-pair RVOLE session id.
    DsgRvole = "dsg/rvole",
    /// Message digest echo.
    DsgM = "dsg/m",
    /// Marker a party records (in its replay guard) before finishing a stored presignature.
    DsgFinish = "dsg/finish",
    /// Finish commitment: every signer's promise to release S3 for one message, sent first.
    DsgFinishCommit = "dsg/finish-commit",
    // --- reshare
    /// Reshare polynomial commitment.
    RsComPoly = "rs/com-poly",
    /// Reshare session id.
    RsSid = "rs/sid",
    /// Reshare coefficient proof of knowledge.
    RsPokCoef = "rs/pok-coef",
    /// Reshare round-2 view digest.
    RsR2 = "rs/r2",
    /// Reshare final-share proof of knowledge.
    RsPokShare = "rs/pok-share",
    /// Reshare acknowledgement.
    RsAck = "rs/ack",
    // --- OT layer (ot.md §1.4)
    /// Per-pair OT setup id (protocols.md §1.8).
    OtSetup = "ot/setup",
    /// Base-OT session id.
    SidBot = "sid/bot",
    /// PPRF session id.
    SidPprf = "sid/pprf",
    /// Base-OT hash to group.
    BotH2g = "bot/h2c",
    /// Base-OT key derivation.
    BotKdf = "bot/kdf",
    /// GGM tree expansion.
    GgmExpand = "ggm/expand",
    /// PPRF leaf hash.
    PprfLeaf = "pprf/leaf",
    /// PPRF proof.
    PprfProof = "pprf/proof",
    /// Extension PRG nonce.
    OtePrg = "ote/prg",
    /// Extension check challenge.
    OteChi = "ote/chi",
    /// Extension output pads.
    OteOut = "ote/out",
    /// RVOLE gadget vector.
    VoleGadget = "vole/gadget",
    /// RVOLE check challenge.
    VoleTheta = "vole/theta",
    /// RVOLE check digest.
    VoleMu = "vole/mu",
    // --- test-only
    /// Used by tests of the hash functions themselves.
    Test = "test",
}

/// A hasher that frames every input as `u64_be(len) || bytes`.
#[derive(Clone, Debug)]
pub struct Framed<H> {
    inner: H,
}

/// Anything that absorbs bytes (SHA-2, TurboSHAKE).
pub trait Absorb {
    /// Absorbs raw bytes.
    fn absorb_raw(&mut self, bytes: &[u8]);
}

impl Absorb for sha2::Sha256 {
    fn absorb_raw(&mut self, bytes: &[u8]) {
        Digest::update(self, bytes);
    }
}

impl Absorb for sha2::Sha512 {
    fn absorb_raw(&mut self, bytes: &[u8]) {
        Digest::update(self, bytes);
    }
}

impl Absorb for TurboShake128 {
    fn absorb_raw(&mut self, bytes: &[u8]) {
        Update::update(self, bytes);
    }
}

impl<H: Absorb + Default> Framed<H> {
    /// Starts a hash under `tag` (absorbs the domain-prefixed tag frame).
    pub fn new(tag: Tag) -> Self {
        let mut inner = H::default();
        let label = tag.label();
        let len = (DOMAIN.len() + 1 + label.len()) as u64;
        inner.absorb_raw(&len.to_be_bytes());
        inner.absorb_raw(DOMAIN.as_bytes());
        inner.absorb_raw(b"/");
        inner.absorb_raw(label.as_bytes());
        Self { inner }
    }
}

impl<H: Absorb> Framed<H> {
    /// Absorbs one framed input.
    pub fn put(&mut self, bytes: &[u8]) -> &mut Self {
        self.inner.absorb_raw(&(bytes.len() as u64).to_be_bytes());
        self.inner.absorb_raw(bytes);
        self
    }

    /// Absorbs a u16 as a 2-byte big-endian frame (party indices, positions).
    pub fn put_u16(&mut self, v: u16) -> &mut Self {
        self.put(&v.to_be_bytes())
    }

    /// Absorbs a u32 as a 4-byte big-endian frame.
    pub fn put_u32(&mut self, v: u32) -> &mut Self {
        self.put(&v.to_be_bytes())
    }

    /// Absorbs one frame whose bytes arrive in pieces (`total` must equal their summed length).
    pub fn put_pieces<'a>(
        &mut self,
        total: usize,
        pieces: impl IntoIterator<Item = &'a [u8]>,
    ) -> &mut Self {
        self.inner.absorb_raw(&(total as u64).to_be_bytes());
        for p in pieces {
            self.inner.absorb_raw(p);
        }
        self
    }
}

/// Tagged SHA-256 builder (`TH`).
pub type Th = Framed<sha2::Sha256>;
/// Tagged SHA-512 builder (`HS` before reduction).
pub type Hs = Framed<sha2::Sha512>;
/// The OT layer's XOF builder (`H_L`).
pub type Xof = Framed<TurboShake128>;

impl Framed<sha2::Sha256> {
    /// Finishes a `TH` hash.
    pub fn finish(self) -> [u8; 32] {
        self.inner.finalize().into()
    }
}

impl Framed<sha2::Sha512> {
    /// Finishes an `HS` hash: SHA-512 output reduced mod q (wide reduction).
    pub fn finish_scalar(self) -> Scalar {
        let wide: [u8; 64] = self.inner.finalize().into();
        reduce_wide(&wide)
    }
}

impl Framed<TurboShake128> {
    /// Finishes the XOF into `out`.
    pub fn finish_into(self, out: &mut [u8]) {
        self.inner.finalize_xof().read(out);
    }

    /// Finishes the XOF with an `N`-byte output.
    pub fn finish<const N: usize>(self) -> [u8; N] {
        let mut out = [0u8; N];
        self.finish_into(&mut out);
        out
    }
}

/// `TH(tag, parts…)` in one call.
pub fn th(tag: Tag, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Th::new(tag);
    for p in parts {
        h.put(p);
    }
    h.finish()
}

/// `HS(tag, parts…)` in one call.
pub fn hs(tag: Tag, parts: &[&[u8]]) -> Scalar {
    let mut h = Hs::new(tag);
    for p in parts {
        h.put(p);
    }
    h.finish_scalar()
}

/// `H_N(tag; parts…)`: the OT layer's XOF in one call.
pub fn xof<const N: usize>(tag: Tag, parts: &[&[u8]]) -> [u8; N] {
    let mut h = Xof::new(tag);
    for p in parts {
        h.put(p);
    }
    h.finish()
}

/// Reduces 64 big-endian bytes mod q (bias ≈ 2^-256).
pub fn reduce_wide(bytes: &[u8; 64]) -> Scalar {
    <Scalar as Reduce<WideBytes>>::reduce(&WideBytes::from(*bytes))
}

/// Reduces 48 big-endian bytes mod q (bias ≤ q / 2^384 < 2^-128 for any 256-bit q).
pub fn reduce_48(bytes: &[u8; 48]) -> Scalar {
    <Scalar as Reduce<Array<u8, U48>>>::reduce(&Array::from(*bytes))
}

/// Hash to the Ristretto255 group (RFC 9496 §4.3.4 element derivation over 64 XOF bytes).
pub fn hash_to_ristretto(h: Xof) -> RistrettoPoint {
    let bytes: [u8; 64] = h.finish();
    RistrettoPoint::from_uniform_bytes(&bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tags_are_unique() {
        let labels: HashSet<&str> = Tag::ALL.iter().map(|t| t.label()).collect();
        assert_eq!(labels.len(), Tag::ALL.len(), "duplicate tag label");
        let names: HashSet<String> = Tag::ALL.iter().map(|t| format!("{t:?}")).collect();
        assert_eq!(names.len(), Tag::ALL.len());
    }

    #[test]
    fn framing_is_injective() {
        assert_ne!(th(Tag::Test, &[b"ab", b"c"]), th(Tag::Test, &[b"a", b"bc"]));
        assert_ne!(xof::<32>(Tag::Test, &[b"ab", b"c"]), xof::<32>(Tag::Test, &[b"a", b"bc"]));
        assert_ne!(hs(Tag::Test, &[b"ab", b"c"]), hs(Tag::Test, &[b"a", b"bc"]));
        assert_ne!(th(Tag::Test, &[b""]), th(Tag::Test, &[]));
        assert_ne!(th(Tag::Test, &[b"x"]), th(Tag::Mid, &[b"x"]));
    }

    #[test]
    fn put_pieces_equals_put() {
        let mut a = Th::new(Tag::Test);
        a.put(b"hello world");
        let mut b = Th::new(Tag::Test);
        b.put_pieces(11, [&b"hello"[..], b" ", b"world"]);
        assert_eq!(a.finish(), b.finish());
    }

    #[test]
    fn th_matches_manual_encoding() {
        let mut manual = sha2::Sha256::new();
        let t = b"DKLS23-v1/test";
        Digest::update(&mut manual, (t.len() as u64).to_be_bytes());
        Digest::update(&mut manual, t);
        Digest::update(&mut manual, 3u64.to_be_bytes());
        Digest::update(&mut manual, b"abc");
        let want: [u8; 32] = manual.finalize().into();
        assert_eq!(th(Tag::Test, &[b"abc"]), want);
    }

    #[test]
    fn wide_reductions_are_below_q_and_spread() {
        // q - 1 encoded, then all-ones inputs: results must be canonical scalars.
        let all_ones = [0xffu8; 64];
        let s = reduce_wide(&all_ones);
        assert!(crate::encoding::scalar_from_bytes(&crate::encoding::scalar_to_bytes(&s)).is_ok());
        let s48 = reduce_48(&[0xffu8; 48]);
        assert!(
            crate::encoding::scalar_from_bytes(&crate::encoding::scalar_to_bytes(&s48)).is_ok()
        );
        // Distribution sanity: top bit of HS outputs is set about half the time … but q < 2^256
        // only barely, so check the top byte's mean instead.
        let mut sum = 0u64;
        for i in 0..2000u32 {
            let v = hs(Tag::Test, &[&i.to_be_bytes()]).to_bytes();
            sum += u64::from(v[0]);
        }
        let mean = sum as f64 / 2000.0;
        assert!((115.0..140.0).contains(&mean), "mean of top byte {mean}");
    }
}
