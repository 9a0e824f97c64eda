//! What a signing setup carries ([`SignRequest`], [`PresignRequest`]; bound into the setup
//! hash through its `extra` field), and the finishing of a stored presignature: the replay
//! marker a party records first ([`finish_marker`]) and the commitment round every signer
//! passes before it releases S3 ([`FinishCommitRound`]).

use rand_core::CryptoRng;

use super::{PartialSignature, Presignature, Signature};
use crate::error::Error;
use crate::math::PartyIndex;
use crate::round::{Expected, Outgoing, Received, Round, Step, expect_from, payload};
use crate::transcript::{Tag, th};

/// What a signing setup carries in its `extra` field (so it is bound into `setup_hash`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignRequest {
    /// The key to sign with.
    pub key_id: [u8; 32],
    /// The key's current `keygen_sid` (binds the epoch).
    pub keygen_sid: [u8; 32],
    /// Non-hardened derivation path.
    pub path: Vec<u32>,
    /// The 32-byte prehash to sign.
    pub message: [u8; 32],
}

/// What a presigning setup carries in its `extra` field: a [`SignRequest`] without the message
/// (the message is given to the runner's `run_finish` later). The encodings differ in a flag
/// byte, so a presigning setup can never be mistaken for a signing setup or the other way round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignRequest {
    /// The key to presign with.
    pub key_id: [u8; 32],
    /// The key's current `keygen_sid` (binds the epoch).
    pub keygen_sid: [u8; 32],
    /// Non-hardened derivation path (fixed before S0, `protocols.md` §3.6).
    pub path: Vec<u32>,
}

fn encode_request(
    key_id: &[u8; 32],
    keygen_sid: &[u8; 32],
    path: &[u32],
    message: Option<&[u8; 32]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(98 + 4 * path.len());
    out.extend_from_slice(key_id);
    out.extend_from_slice(keygen_sid);
    out.push(path.len().min(255) as u8);
    for c in path.iter().take(255) {
        out.extend_from_slice(&c.to_be_bytes());
    }
    match message {
        Some(m) => {
            out.push(1);
            out.extend_from_slice(m);
        }
        None => out.push(0),
    }
    out
}

type DecodedRequest = ([u8; 32], [u8; 32], Vec<u32>, Option<[u8; 32]>);

fn decode_request(bytes: &[u8]) -> Result<DecodedRequest, crate::encoding::DecodeError> {
    use crate::encoding::DecodeError;
    let mut r = crate::encoding::Reader::new(bytes);
    let key_id = r.array()?;
    let keygen_sid = r.array()?;
    let [depth] = r.array::<1>()?;
    let mut path = Vec::with_capacity(usize::from(depth));
    for _ in 0..depth {
        path.push(r.u32()?);
    }
    let message = match r.array::<1>()? {
        [0] => None,
        [1] => Some(r.array()?),
        _ => return Err(DecodeError::Malformed("unknown request kind")),
    };
    r.finish()?;
    Ok((key_id, keygen_sid, path, message))
}

impl SignRequest {
    /// Canonical encoding: key_id ‖ keygen_sid ‖ u8 depth ‖ depth × u32 ‖ 0x01 ‖ message.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_request(&self.key_id, &self.keygen_sid, &self.path, Some(&self.message))
    }

    /// Strict decoding.
    ///
    /// # Errors
    /// A [`crate::encoding::DecodeError`] for malformed input or a presigning request.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::encoding::DecodeError> {
        match decode_request(bytes)? {
            (key_id, keygen_sid, path, Some(message)) => {
                Ok(Self { key_id, keygen_sid, path, message })
            }
            _ => {
                Err(crate::encoding::DecodeError::Malformed("a presigning request has no message"))
            }
        }
    }
}

impl PresignRequest {
    /// Canonical encoding: key_id ‖ keygen_sid ‖ u8 depth ‖ depth × u32 ‖ 0x00.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_request(&self.key_id, &self.keygen_sid, &self.path, None)
    }

    /// Strict decoding.
    ///
    /// # Errors
    /// A [`crate::encoding::DecodeError`] for malformed input or a signing request.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::encoding::DecodeError> {
        match decode_request(bytes)? {
            (key_id, keygen_sid, path, None) => Ok(Self { key_id, keygen_sid, path }),
            _ => {
                Err(crate::encoding::DecodeError::Malformed("a signing request carries a message"))
            }
        }
    }
}

/// Message-id rounds of a stored presignature's online phase: the finish commitments, then S3.
pub const FINISH_COMMIT_ROUND: u16 = 4;
/// Message-id round of S3 after the finish commitments.
pub const FINISH_S3_ROUND: u16 = 5;

/// What a party records in its replay guard before finishing the stored presignature of the
/// setup with hash `setup_hash`: `TH("dsg/finish", setup_hash)`. A second finish of the same
/// presignature (e.g. restored from a backup) is refused by every party that kept its record.
pub fn finish_marker(setup_hash: &[u8; 32]) -> [u8; 32] {
    th(Tag::DsgFinish, &[setup_hash])
}

/// The finish commitment every signer broadcasts before releasing S3:
/// `TH("dsg/finish-commit", setup_hash, TH("dsg/m", message))`.
fn finish_commitment(setup_hash: &[u8; 32], message: &[u8; 32]) -> [u8; 32] {
    th(Tag::DsgFinishCommit, &[setup_hash, &th(Tag::DsgM, &[message])])
}

/// The first round of finishing a stored presignature: every signer broadcasts a commitment
/// to (setup, message) and releases its S3 only once it holds every other signer's matching
/// commitment. A signer restored from a backup can therefore not be walked into a second S3
/// unless every other signer forgot the presignature too.
pub struct FinishCommitRound {
    presignature: Presignature,
    message: [u8; 32],
    commitment: [u8; 32],
    others: Vec<PartyIndex>,
}

impl FinishCommitRound {
    /// Starts finishing `presignature` on the prehash `message`: the round and this party's
    /// commitment broadcast.
    pub fn start(presignature: Presignature, message: &[u8; 32]) -> (Self, Outgoing) {
        let commitment = finish_commitment(presignature.setup_hash(), message);
        let me = presignature.me;
        let others = presignature.signers().iter().copied().filter(|&j| j != me).collect();
        let out = Outgoing::broadcast(commitment.to_vec());
        (Self { presignature, message: *message, commitment, others }, out)
    }
}

impl<'a> Round<'a> for FinishCommitRound {
    type Output = Signature;

    fn number(&self) -> u16 {
        FINISH_COMMIT_ROUND
    }

    fn expects(&self) -> Expected {
        Expected::broadcasts(self.others.clone())
    }

    /// # Errors
    /// [`Error::ViewMismatch`] naming a signer that committed to another message (or setup);
    /// [`Error::Timeout`] for a missing commitment.
    fn next(
        self: Box<Self>,
        _rng: &mut dyn CryptoRng,
        got: Received,
    ) -> Result<Step<'a, Signature>, Error> {
        let FinishCommitRound { presignature, message, commitment, others } = *self;
        expect_from(FINISH_COMMIT_ROUND, &got.bcast, &others)?;
        for &j in &others {
            if payload(&got.bcast, j) != commitment.as_slice() {
                return Err(Error::ViewMismatch { round: FINISH_COMMIT_ROUND as u8, party: j });
            }
        }
        let (last, s3): (PartialSignature, Outgoing) = presignature.sign(&message, FINISH_S3_ROUND);
        Ok(Step::next(last, s3))
    }
}

redacted!(FinishCommitRound);
