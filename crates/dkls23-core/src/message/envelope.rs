//! Message ids, the 36-byte header, signing inputs, abort payloads and transferable evidence.

use zeroize::Zeroizing;

use crate::encoding::{DecodeError, Reader};
use crate::identity::{IdentityPublicKey, SIGNATURE_LEN, Signature};
use crate::setup::{PartyIndex, ProtocolId, Setup};
use crate::transcript::{DOMAIN, Tag, Th};

use super::MAX_MESSAGE_LEN;

/// Bytes of the message header.
pub const HEADER_LEN: usize = 36;
/// The header's version byte.
pub const WIRE_VERSION: u8 = 1;
/// The round number under which abort messages are addressed.
pub const ABORT_ROUND: u16 = u16::MAX;
/// Bytes of an abort payload (`reason u16 ‖ accused u16`).
pub const ABORT_PAYLOAD_LEN: usize = 4;

/// The kind byte of a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Signed broadcast.
    Broadcast = 0,
    /// Encrypted point-to-point message.
    P2p = 1,
    /// Signed abort broadcast.
    Abort = 2,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Broadcast),
            1 => Some(Self::P2p),
            2 => Some(Self::Abort),
            _ => None,
        }
    }

    /// The signing context: `"DKLS23-v1/bcast"` for broadcasts and aborts, `"DKLS23-v1/p2p"` for
    /// complaint-mode p2p signatures.
    fn context_tag(self) -> Tag {
        match self {
            Self::Broadcast | Self::Abort => Tag::Bcast,
            Self::P2p => Tag::P2p,
        }
    }
}

/// `mid = TH("mid", iid, ivk_sender, ivk_receiver or ε, u16(proto), u16(round))`.
///
/// Identity keys enter in their canonical encoding (kind byte ‖ key); a broadcast uses an empty
/// frame for the receiver. Abort messages use `round = ABORT_ROUND`.
pub fn mid(
    iid: &[u8; 32],
    sender: &IdentityPublicKey,
    receiver: Option<&IdentityPublicKey>,
    proto: ProtocolId,
    round: u16,
) -> [u8; 32] {
    let mut h = Th::new(Tag::Mid);
    h.put(iid);
    h.put(&sender.to_bytes());
    h.put(&receiver.map(IdentityPublicKey::to_bytes).unwrap_or_default());
    h.put_u16(proto.to_u16());
    h.put_u16(round);
    h.finish()
}

/// The message header: `mid (32) ‖ version u8 ‖ kind u8 ‖ reserved u16 (zero)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Message id.
    pub mid: [u8; 32],
    /// Message kind.
    pub kind: Kind,
}

impl Header {
    /// Encodes the 36 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let (m, rest) = out.split_at_mut(32);
        m.copy_from_slice(&self.mid);
        if let [v, k, ..] = rest {
            *v = WIRE_VERSION;
            *k = self.kind as u8;
        }
        out
    }

    /// Strictly decodes a header: version must be [`WIRE_VERSION`], kind known, reserved zero.
    ///
    /// # Errors
    /// [`DecodeError::Malformed`] otherwise.
    pub fn from_bytes(bytes: &[u8; HEADER_LEN]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let mid = r.array::<32>()?;
        let [version, kind, r0, r1] = r.array::<4>()?;
        if version != WIRE_VERSION {
            return Err(DecodeError::Malformed("unknown wire version"));
        }
        if r0 != 0 || r1 != 0 {
            return Err(DecodeError::Malformed("reserved header bits set"));
        }
        let kind = Kind::from_u8(kind).ok_or(DecodeError::Malformed("unknown message kind"))?;
        Ok(Self { mid, kind })
    }
}

/// What an identity key signs: `"DKLS23-v1/bcast" ‖ hdr ‖ payload` (broadcast, abort) or
/// `"DKLS23-v1/p2p" ‖ hdr ‖ payload` (complaint mode). The context is written **literally** (no
/// length framing), as in the spec; the header has a fixed length, so the split is unambiguous.
pub fn signing_input(hdr: &[u8; HEADER_LEN], kind: Kind, payload: &[u8]) -> Vec<u8> {
    let label = kind.context_tag().label();
    let mut out = Vec::with_capacity(DOMAIN.len() + 1 + label.len() + HEADER_LEN + payload.len());
    out.extend_from_slice(DOMAIN.as_bytes());
    out.push(b'/');
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(hdr);
    out.extend_from_slice(payload);
    out
}

/// Digest of a message's content (`TH("msg/digest", hdr, payload)`), used to tell a duplicate
/// delivery from equivocation.
pub(crate) fn content_digest(hdr: &[u8; HEADER_LEN], payload: &[u8]) -> [u8; 32] {
    let mut h = Th::new(Tag::MsgDigest);
    h.put(hdr);
    h.put(payload);
    h.finish()
}

/// The payload of an abort message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortNotice {
    /// Application / protocol reason code.
    pub reason: u16,
    /// The party accused, if any (`0` on the wire for none).
    pub accused: Option<PartyIndex>,
}

impl AbortNotice {
    /// `reason u16 ‖ accused u16`.
    pub fn to_bytes(&self) -> [u8; ABORT_PAYLOAD_LEN] {
        let [a, b] = self.reason.to_be_bytes();
        let [c, d] = self.accused.unwrap_or(0).to_be_bytes();
        [a, b, c, d]
    }

    /// Decodes exactly four bytes.
    ///
    /// # Errors
    /// [`DecodeError::Length`] for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let [a, b, c, d] = crate::encoding::fixed::<ABORT_PAYLOAD_LEN>(bytes)?;
        let accused = u16::from_be_bytes([c, d]);
        Ok(Self { reason: u16::from_be_bytes([a, b]), accused: (accused != 0).then_some(accused) })
    }
}

/// A signed message that anyone can check: a broadcast / abort, or a complaint-mode p2p
/// plaintext revealed by its receiver. Wire form:
/// `sender key (kind ‖ key) ‖ hdr (36) ‖ u32 len ‖ payload ‖ σ (64)`.
///
/// The payload of p2p evidence is secret until published, so it is zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Evidence {
    sender: IdentityPublicKey,
    header: Header,
    payload: Zeroizing<Vec<u8>>,
    signature: Signature,
}

impl std::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evidence")
            .field("sender", &self.sender)
            .field("header", &self.header)
            .field("payload_len", &self.payload.len())
            .field("signature", &self.signature)
            .finish()
    }
}

impl Evidence {
    pub(crate) fn new(
        sender: IdentityPublicKey,
        header: Header,
        payload: &[u8],
        signature: Signature,
    ) -> Self {
        Self { sender, header, payload: Zeroizing::new(payload.to_vec()), signature }
    }

    /// The claimed signer.
    pub fn sender(&self) -> &IdentityPublicKey {
        &self.sender
    }

    /// The signed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The signed payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Checks the signature alone (context chosen by the header kind).
    pub fn verify(&self) -> bool {
        let hdr = self.header.to_bytes();
        let input = signing_input(&hdr, self.header.kind, &self.payload);
        self.sender.verify(&input, &self.signature)
    }

    /// Full third-party check: the sender is participant `from` of `setup`, the header's `mid` is
    /// the one `from` uses towards `to` (None = broadcast) in `round`, and the signature verifies.
    pub fn verify_for(
        &self,
        setup: &Setup,
        from: PartyIndex,
        to: Option<PartyIndex>,
        round: u16,
    ) -> bool {
        let Some(sender) = setup.identity_of(from) else { return false };
        let receiver = match to {
            Some(j) => match setup.identity_of(j) {
                Some(k) => Some(k),
                None => return false,
            },
            None => None,
        };
        let kind_ok = match (to, self.header.kind) {
            (Some(_), Kind::P2p) => true,
            (None, Kind::Broadcast) => round != ABORT_ROUND,
            (None, Kind::Abort) => round == ABORT_ROUND,
            _ => false,
        };
        let want = mid(setup.iid(), sender, receiver, setup.protocol(), round);
        kind_ok && *sender == self.sender && want == self.header.mid && self.verify()
    }

    /// Canonical encoding (see the type docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.sender.encoded_len() + HEADER_LEN + 4 + self.payload.len() + SIGNATURE_LEN,
        );
        out.extend_from_slice(&self.sender.to_bytes());
        out.extend_from_slice(&self.header.to_bytes());
        // Payloads are bounded by MAX_MESSAGE_LEN, far below 4 GiB.
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
        out.extend_from_slice(&self.signature.0);
        out
    }

    /// Strict decoding (does not verify the signature; call [`Self::verify_for`]).
    ///
    /// # Errors
    /// [`DecodeError`] on any structural defect or a payload above [`MAX_MESSAGE_LEN`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let sender = IdentityPublicKey::read(&mut r)
            .map_err(|_| DecodeError::Malformed("invalid sender key"))?;
        let header = Header::from_bytes(&r.array()?)?;
        let len = r.u32()? as usize;
        if len > MAX_MESSAGE_LEN {
            return Err(DecodeError::Malformed("evidence payload too long"));
        }
        let payload = Zeroizing::new(r.take(len)?.to_vec());
        let signature = Signature(r.array()?);
        r.finish()?;
        Ok(Self { sender, header, payload, signature })
    }
}

/// Two signed messages under one `mid` with different content: transferable proof of
/// equivocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EquivocationEvidence {
    /// The message accepted first.
    pub first: Evidence,
    /// The conflicting message.
    pub second: Evidence,
}

impl EquivocationEvidence {
    /// True if both messages verify, come from the same sender, share a `mid` and differ.
    pub fn verify(&self) -> bool {
        self.first.sender == self.second.sender
            && self.first.header == self.second.header
            && self.first.payload != self.second.payload
            && self.first.verify()
            && self.second.verify()
    }
}
