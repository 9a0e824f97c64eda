//! The four OT messages with fixed sizes and strict decoders (`ot.md` §2–4, §7.1 item 6).
//!
//! Every message starts with the 32-byte session id it was computed under. Decoders check the
//! exact length first, then every field; they return [`OtError::Malformed`] naming the sender's
//! role and never panic. Sizes (bytes, including the 32-byte sid echo):
//!
//! | message | direction | size |
//! |---|---|---|
//! | KG1 | Alice → Bob (keygen) | 16,416 |
//! | KG2 | Bob → Alice (keygen) | 26,656 |
//! | SG1 | Bob → Alice (signing) | 9,264 |
//! | SG2 | Alice → Bob (signing) | 49,248 |

use k256::Scalar;

use super::base::{N as N_BASE, PointPair};
use super::pprf::{N_TREES, TREE_MSG_LEN, TreeMsg};
use super::util::boxed;
use super::{OtError, Role};
use crate::encoding::{DecodeError, Reader, SCALAR_LEN, scalar_from_bytes, scalar_to_bytes};
use crate::params::{K, ROW_BYTES, SID_LEN, TREES, WIDTH, XI};

/// KG1: Alice's base-OT points (A_{i,0}, A_{i,1}) for i = 0..256.
#[derive(Clone, PartialEq, Eq)]
pub struct Kg1 {
    pub(crate) sid: [u8; SID_LEN],
    pub(crate) points: Box<[PointPair; N_BASE]>,
}

/// KG2: Bob's base-OT points Y_i and the 64 GGM tree messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Kg2 {
    pub(crate) sid: [u8; SID_LEN],
    pub(crate) ys: Box<[[u8; 32]; N_BASE]>,
    pub(crate) trees: Box<[TreeMsg; N_TREES]>,
}

/// SG1: Bob's extension matrix U, check value X and check rows T.
#[derive(Clone, PartialEq, Eq)]
pub struct Sg1 {
    pub(crate) sid: [u8; SID_LEN],
    pub(crate) u: Box<[[u8; ROW_BYTES]; TREES]>,
    pub(crate) x: [u8; 16],
    pub(crate) t: Box<[[u8; 16]; 4 * TREES]>,
}

/// SG2: Alice's RVOLE payload Ã (512 columns × 3 scalars), η and μ.
#[derive(Clone, PartialEq, Eq)]
pub struct Sg2 {
    pub(crate) sid: [u8; SID_LEN],
    /// Ã as decoded scalars.
    pub(crate) a_tilde: Box<[[Scalar; WIDTH]; XI]>,
    /// Ã exactly as on the wire (hashed into θ).
    pub(crate) a_tilde_bytes: Box<[u8; A_TILDE_LEN]>,
    pub(crate) eta: Scalar,
    pub(crate) mu: [u8; 32],
}

pub(crate) const A_TILDE_LEN: usize = XI * WIDTH * SCALAR_LEN;

impl Kg1 {
    /// Encoded size in bytes.
    pub const LEN: usize = SID_LEN + N_BASE * 64;

    /// The session id the message was computed under.
    pub fn sid(&self) -> &[u8; SID_LEN] {
        &self.sid
    }

    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(&self.sid);
        for pair in self.points.iter() {
            out.extend_from_slice(&pair[0]);
            out.extend_from_slice(&pair[1]);
        }
        out
    }

    /// Decodes a message, checking its exact length (points are validated when processed).
    pub fn decode(bytes: &[u8]) -> Result<Self, OtError> {
        let err = |reason| OtError::Malformed { culprit: Role::Alice, message: "KG1", reason };
        check_len(bytes, Self::LEN).map_err(err)?;
        let mut r = Reader::new(bytes);
        let sid = r.array().map_err(err)?;
        let mut points: Box<[PointPair; N_BASE]> = boxed([[0u8; 32]; 2]);
        for pair in points.iter_mut() {
            pair[0] = r.array().map_err(err)?;
            pair[1] = r.array().map_err(err)?;
        }
        r.finish().map_err(err)?;
        Ok(Self { sid, points })
    }
}

impl Kg2 {
    /// Encoded size in bytes.
    pub const LEN: usize = SID_LEN + N_BASE * 32 + N_TREES * TREE_MSG_LEN;

    /// The session id the message was computed under.
    pub fn sid(&self) -> &[u8; SID_LEN] {
        &self.sid
    }

    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(&self.sid);
        for y in self.ys.iter() {
            out.extend_from_slice(y);
        }
        for tree in self.trees.iter() {
            tree.encode_into(&mut out);
        }
        out
    }

    /// Decodes a message, checking its exact length.
    pub fn decode(bytes: &[u8]) -> Result<Self, OtError> {
        let err = |reason| OtError::Malformed { culprit: Role::Bob, message: "KG2", reason };
        check_len(bytes, Self::LEN).map_err(err)?;
        let mut r = Reader::new(bytes);
        let sid = r.array().map_err(err)?;
        let mut ys: Box<[[u8; 32]; N_BASE]> = boxed([0u8; 32]);
        for y in ys.iter_mut() {
            *y = r.array().map_err(err)?;
        }
        let empty = TreeMsg { corrections: [[[0u8; 32]; 2]; K - 1], t: [0u8; 64], s: [0u8; 32] };
        let mut trees: Box<[TreeMsg; N_TREES]> = boxed(empty);
        for tree in trees.iter_mut() {
            for pair in tree.corrections.iter_mut() {
                pair[0] = r.array().map_err(err)?;
                pair[1] = r.array().map_err(err)?;
            }
            tree.t = r.array().map_err(err)?;
            tree.s = r.array().map_err(err)?;
        }
        r.finish().map_err(err)?;
        Ok(Self { sid, ys, trees })
    }
}

impl Sg1 {
    /// Encoded size in bytes.
    pub const LEN: usize = SID_LEN + TREES * ROW_BYTES + 16 + 4 * TREES * 16;

    /// The session id the message was computed under.
    pub fn sid(&self) -> &[u8; SID_LEN] {
        &self.sid
    }

    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(&self.sid);
        for row in self.u.iter() {
            out.extend_from_slice(row);
        }
        out.extend_from_slice(&self.x);
        for t in self.t.iter() {
            out.extend_from_slice(t);
        }
        out
    }

    /// Decodes a message, checking its exact length.
    pub fn decode(bytes: &[u8]) -> Result<Self, OtError> {
        let err = |reason| OtError::Malformed { culprit: Role::Bob, message: "SG1", reason };
        check_len(bytes, Self::LEN).map_err(err)?;
        let mut r = Reader::new(bytes);
        let sid = r.array().map_err(err)?;
        let mut u: Box<[[u8; ROW_BYTES]; TREES]> = boxed([0u8; ROW_BYTES]);
        for row in u.iter_mut() {
            *row = r.array().map_err(err)?;
        }
        let x = r.array().map_err(err)?;
        let mut t: Box<[[u8; 16]; 4 * TREES]> = boxed([0u8; 16]);
        for row in t.iter_mut() {
            *row = r.array().map_err(err)?;
        }
        r.finish().map_err(err)?;
        Ok(Self { sid, u, x, t })
    }
}

impl Sg2 {
    /// Encoded size in bytes.
    pub const LEN: usize = SID_LEN + A_TILDE_LEN + 2 * SCALAR_LEN;

    /// The session id the message was computed under.
    pub fn sid(&self) -> &[u8; SID_LEN] {
        &self.sid
    }

    pub(crate) fn new(
        sid: [u8; SID_LEN],
        a_tilde: Box<[[Scalar; WIDTH]; XI]>,
        eta: Scalar,
        mu: [u8; 32],
    ) -> Self {
        let a_tilde_bytes = encode_a_tilde(&a_tilde);
        Self { sid, a_tilde, a_tilde_bytes, eta, mu }
    }

    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(&self.sid);
        out.extend_from_slice(self.a_tilde_bytes.as_slice());
        out.extend_from_slice(&scalar_to_bytes(&self.eta));
        out.extend_from_slice(&self.mu);
        out
    }

    /// Decodes a message: exact length, then every scalar strictly (values ≥ q are rejected).
    pub fn decode(bytes: &[u8]) -> Result<Self, OtError> {
        let err = |reason| OtError::Malformed { culprit: Role::Alice, message: "SG2", reason };
        check_len(bytes, Self::LEN).map_err(err)?;
        let mut r = Reader::new(bytes);
        let sid = r.array().map_err(err)?;
        let raw = r.take(A_TILDE_LEN).map_err(err)?;
        let mut a_tilde_bytes: Box<[u8; A_TILDE_LEN]> = boxed(0u8);
        a_tilde_bytes.copy_from_slice(raw);
        let mut a_tilde: Box<[[Scalar; WIDTH]; XI]> = boxed([Scalar::ZERO; WIDTH]);
        let (chunks, _) = a_tilde_bytes.as_chunks::<SCALAR_LEN>();
        for (s, chunk) in a_tilde.iter_mut().flat_map(|col| col.iter_mut()).zip(chunks) {
            *s = scalar_from_bytes(chunk).map_err(err)?;
        }
        let eta = r.scalar().map_err(err)?;
        let mu = r.array().map_err(err)?;
        r.finish().map_err(err)?;
        Ok(Self { sid, a_tilde, a_tilde_bytes, eta, mu })
    }
}

pub(crate) fn encode_a_tilde(a_tilde: &[[Scalar; WIDTH]; XI]) -> Box<[u8; A_TILDE_LEN]> {
    let mut out: Box<[u8; A_TILDE_LEN]> = boxed(0u8);
    let (chunks, _) = out.as_chunks_mut::<SCALAR_LEN>();
    for (chunk, s) in chunks.iter_mut().zip(a_tilde.iter().flat_map(|col| col.iter())) {
        *chunk = scalar_to_bytes(s);
    }
    out
}

fn check_len(bytes: &[u8], expected: usize) -> Result<(), DecodeError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(DecodeError::Length { expected, got: bytes.len() })
    }
}

macro_rules! redacted_debug {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("sid", &crate::ot::util::Hex(&self.sid))
                    .field("len", &Self::LEN)
                    .finish_non_exhaustive()
            }
        }
    )*};
}
redacted_debug!(Kg1, Kg2, Sg1, Sg2);
