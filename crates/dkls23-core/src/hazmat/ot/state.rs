//! Long-term OT state stored in key shares (`ot.md` §3.1): as sensitive as the key share.
//!
//! Both types are zeroized on drop, are not `Clone`/`Copy`, print nothing secret in `Debug`, and
//! serialise to a versioned format for storage inside key shares.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::pprf::Node;
use super::util::boxed;
use crate::encoding::{DecodeError, Reader};
use crate::params::{LEAVES, TREES};

const ALICE_MAGIC: &[u8; 3] = b"OTA";
const BOB_MAGIC: &[u8; 3] = b"OTB";
/// Serialisation format version of [`AliceState`] and [`BobState`].
pub const STATE_VERSION: u8 = 1;

pub(crate) type Leaves = [[Node; LEAVES]; TREES];

/// Alice's (RVOLE sender's) state for one counterparty: Δ and the punctured leaves.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct AliceState {
    /// D = the packed Δ_j nibbles: byte m holds Δ_{2m} (low nibble) and Δ_{2m+1} (high
    /// nibble), so bit r of `d` is D_r of `ot.md` §3.1.
    pub(crate) d: [u8; TREES / 2],
    /// s_{j,x} for x ≠ Δ_j; the slot at Δ_j is zero.
    pub(crate) leaves: Box<Leaves>,
}

/// Bob's (RVOLE receiver's) state for one counterparty: all leaves of all trees.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct BobState {
    pub(crate) leaves: Box<Leaves>,
}

impl AliceState {
    /// Serialised size in bytes.
    pub const ENCODED_LEN: usize = 4 + TREES / 2 + TREES * LEAVES * 32;

    /// Δ_j for tree j (crate-internal; secret).
    pub(crate) fn delta(&self, j: usize) -> u8 {
        self.d.get(j / 2).map_or(0, |b| (b >> (4 * (j % 2))) & 0x0f)
    }

    /// Serialises with a magic and version prefix.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        encode(ALICE_MAGIC, &self.d, &self.leaves, Self::ENCODED_LEN)
    }

    /// Parses a serialised state, checking magic, version and length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        check_prefix(&mut r, ALICE_MAGIC, "not an AliceState", "unsupported AliceState version")?;
        let d = r.array()?;
        let leaves = read_leaves(&mut r)?;
        r.finish()?;
        Ok(Self { d, leaves })
    }
}

impl BobState {
    /// Serialised size in bytes.
    pub const ENCODED_LEN: usize = 4 + TREES * LEAVES * 32;

    /// Serialises with a magic and version prefix.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        encode(BOB_MAGIC, &[], &self.leaves, Self::ENCODED_LEN)
    }

    /// Parses a serialised state, checking magic, version and length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        check_prefix(&mut r, BOB_MAGIC, "not a BobState", "unsupported BobState version")?;
        let leaves = read_leaves(&mut r)?;
        r.finish()?;
        Ok(Self { leaves })
    }
}

/// magic ‖ version ‖ `head` ‖ every leaf, tree by tree.
fn encode(magic: &[u8; 3], head: &[u8], leaves: &Leaves, len: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    out.extend_from_slice(magic);
    out.push(STATE_VERSION);
    out.extend_from_slice(head);
    for leaf in leaves.iter().flatten() {
        out.extend_from_slice(leaf);
    }
    out
}

fn check_prefix(
    r: &mut Reader<'_>,
    magic: &[u8; 3],
    wrong_kind: &'static str,
    wrong_version: &'static str,
) -> Result<(), DecodeError> {
    if r.array::<3>()? != *magic {
        return Err(DecodeError::Malformed(wrong_kind));
    }
    if r.array::<1>()? != [STATE_VERSION] {
        return Err(DecodeError::Malformed(wrong_version));
    }
    Ok(())
}

fn read_leaves(r: &mut Reader<'_>) -> Result<Box<Leaves>, DecodeError> {
    let mut leaves: Box<Leaves> = boxed([[0u8; 32]; LEAVES]);
    for tree in leaves.iter_mut() {
        for leaf in tree.iter_mut() {
            *leaf = r.array()?;
        }
    }
    Ok(leaves)
}

impl std::fmt::Debug for AliceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AliceState(<redacted>)")
    }
}

impl std::fmt::Debug for BobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BobState(<redacted>)")
    }
}
