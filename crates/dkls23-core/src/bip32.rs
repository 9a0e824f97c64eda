//! BIP32 non-hardened public derivation on a threshold key (`protocols.md` §5.1–5.2).
//!
//! Signing under a path uses the additive tweak τ = Σ τ_ι: every party uses the Shamir share
//! `s_i + τ`, so the derived key share is a normal share of `x + τ` with the same indices.

use hmac::{Hmac, KeyInit, Mac};
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::group::Group;
use k256::{FieldBytes, ProjectivePoint, Scalar};
use sha2::Sha512;

use crate::encoding::point_to_bytes;

/// First hardened child index.
pub const HARDENED: u32 = 1 << 31;

/// Why a derivation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeriveError {
    /// Hardened indices need the private key inside the HMAC and cannot be derived jointly.
    #[error(
        "hardened index {0} cannot be derived from a threshold key (use non-hardened indices < 2^31)"
    )]
    Hardened(u32),
    /// The HMAC output was ≥ q or gave the identity (probability ≈ 2^-127); BIP32 says use the
    /// next index.
    #[error("index {0} yields an invalid child key; use the next index")]
    InvalidChild(u32),
    /// The path string is not of the form `m/0/1/2`.
    #[error("invalid derivation path: {0}")]
    BadPath(String),
}

/// The result of deriving along a path: total tweak, child public key and chain code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// τ = Σ τ_ι mod q (zero for the empty path).
    pub tweak: Scalar,
    /// X' = X + τ·G.
    pub public_key: ProjectivePoint,
    /// The child chain code.
    pub chain_code: [u8; 32],
}

/// CKDpub for one non-hardened step: returns (τ_ι, P_child, c_child).
pub fn ckd_pub(
    parent: &ProjectivePoint,
    chain_code: &[u8; 32],
    index: u32,
) -> Result<(Scalar, ProjectivePoint, [u8; 32]), DeriveError> {
    if index >= HARDENED {
        return Err(DeriveError::Hardened(index));
    }
    let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(chain_code)
        .map_err(|_| DeriveError::InvalidChild(index))?;
    mac.update(&point_to_bytes(parent));
    mac.update(&index.to_be_bytes());
    let out = mac.finalize().into_bytes();
    let (il, ir) = out.split_at(32);
    let il: [u8; 32] = il.try_into().map_err(|_| DeriveError::InvalidChild(index))?;
    let tau: Scalar = Option::from(Scalar::from_repr(FieldBytes::from(il)))
        .ok_or(DeriveError::InvalidChild(index))?;
    let child = *parent + ProjectivePoint::mul_by_generator(&tau);
    if bool::from(child.is_identity()) {
        return Err(DeriveError::InvalidChild(index));
    }
    let mut cc = [0u8; 32];
    cc.copy_from_slice(ir);
    Ok((tau, child, cc))
}

/// Derives along `path` from `(public_key, chain_code)`.
pub fn derive(
    public_key: &ProjectivePoint,
    chain_code: &[u8; 32],
    path: &[u32],
) -> Result<Derived, DeriveError> {
    let mut d = Derived { tweak: Scalar::ZERO, public_key: *public_key, chain_code: *chain_code };
    for &index in path {
        let (tau, child, cc) = ckd_pub(&d.public_key, &d.chain_code, index)?;
        d.tweak += tau;
        d.public_key = child;
        d.chain_code = cc;
    }
    Ok(d)
}

/// Parses a non-hardened derivation path: `m/0/1/2`, `0/1/2`, `m` or the empty string.
///
/// # Errors
/// [`DeriveError::Hardened`] for a hardened component (`0'`, `0h`, `0H` or a value ≥ 2^31),
/// [`DeriveError::BadPath`] for anything else that is not a decimal `u32` component.
pub fn parse_path(s: &str) -> Result<Vec<u32>, DeriveError> {
    let s = s.trim();
    let rest = match s.strip_prefix('m') {
        Some("") => return Ok(Vec::new()),
        Some(r) => r
            .strip_prefix('/')
            .ok_or_else(|| DeriveError::BadPath(format!("expected '/' after 'm' in {s:?}")))?,
        None if s.is_empty() => return Ok(Vec::new()),
        None => s,
    };
    let mut path = Vec::new();
    for comp in rest.split('/') {
        if let Some(digits) = comp.strip_suffix(['\'', 'h', 'H']) {
            let v = digits.parse::<u32>().unwrap_or(0);
            return Err(DeriveError::Hardened(v.saturating_add(HARDENED)));
        }
        if comp.is_empty() || !comp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DeriveError::BadPath(format!("invalid path component {comp:?}")));
        }
        if comp.len() > 1 && comp.starts_with('0') {
            return Err(DeriveError::BadPath(format!(
                "path component {comp:?} has a leading zero (write it without)"
            )));
        }
        let v: u32 = comp
            .parse()
            .map_err(|_| DeriveError::BadPath(format!("path component {comp:?} is too large")))?;
        if v >= HARDENED {
            return Err(DeriveError::Hardened(v));
        }
        if path.len() == 255 {
            return Err(DeriveError::BadPath("a path has at most 255 components".into()));
        }
        path.push(v);
    }
    Ok(path)
}

/// Formats a non-hardened path as `m/0/1/2`.
pub fn format_path(path: &[u32]) -> String {
    let mut s = String::from("m");
    for c in path {
        s.push('/');
        s.push_str(&c.to_string());
    }
    s
}

/// Which version bytes an extended public key uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    /// `xpub`, version `0x0488B21E`.
    Mainnet,
    /// `tpub`, version `0x043587CF`.
    Testnet,
}

impl Network {
    /// The 4 version bytes of an extended public key.
    pub fn version(self) -> u32 {
        match self {
            Network::Mainnet => 0x0488_B21E,
            Network::Testnet => 0x0435_87CF,
        }
    }

    fn from_version(v: u32) -> Option<Self> {
        match v {
            0x0488_B21E => Some(Network::Mainnet),
            0x0435_87CF => Some(Network::Testnet),
            _ => None,
        }
    }
}

/// Why an extended public key string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XpubError {
    /// Not Base58, or the decoded length is not 78 + 4 bytes.
    #[error("not a Base58Check extended key of 82 bytes")]
    Encoding,
    /// The double-SHA-256 checksum does not match.
    #[error("bad checksum")]
    Checksum,
    /// The version bytes are not `xpub` / `tpub` (private keys are rejected too).
    #[error("unsupported version bytes {0:#010x}")]
    Version(u32),
    /// Depth 0 with a non-zero parent fingerprint or child number.
    #[error("depth 0 with non-zero parent fingerprint or child number")]
    ZeroDepth,
    /// The key is not a valid compressed secp256k1 point.
    #[error("invalid public key")]
    PublicKey,
}

/// A BIP32 extended public key (`protocols.md` §5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xpub {
    /// Version bytes.
    pub network: Network,
    /// Depth (0 at the root).
    pub depth: u8,
    /// First 4 bytes of HASH160 of the parent key (zero at the root).
    pub parent_fingerprint: [u8; 4],
    /// Child number of this node (zero at the root).
    pub child_number: u32,
    /// Chain code.
    pub chain_code: [u8; 32],
    /// Public key.
    pub public_key: ProjectivePoint,
}

/// Length of a serialised extended key before Base58Check.
pub const XPUB_LEN: usize = 78;

/// `RIPEMD160(SHA256(ser_p(P)))[0..4]`.
pub fn fingerprint(public_key: &ProjectivePoint) -> [u8; 4] {
    use ripemd::Digest as _;
    let sha = sha2::Sha256::digest(point_to_bytes(public_key));
    let h = ripemd::Ripemd160::digest(sha);
    let mut fp = [0u8; 4];
    fp.copy_from_slice(h.get(..4).unwrap_or(&[0; 4]));
    fp
}

fn checksum(data: &[u8]) -> [u8; 4] {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(sha2::Sha256::digest(data));
    let mut c = [0u8; 4];
    c.copy_from_slice(h.get(..4).unwrap_or(&[0; 4]));
    c
}

impl Xpub {
    /// The root node of a key: depth 0, zero fingerprint and child number.
    pub fn root(public_key: ProjectivePoint, chain_code: [u8; 32], network: Network) -> Self {
        Self {
            network,
            depth: 0,
            parent_fingerprint: [0; 4],
            child_number: 0,
            chain_code,
            public_key,
        }
    }

    /// Derives the node at `path` below this one (non-hardened only).
    ///
    /// # Errors
    /// [`DeriveError`] for a hardened index, an invalid child, or a depth above 255.
    pub fn derive(&self, path: &[u32]) -> Result<Xpub, DeriveError> {
        let mut node = self.clone();
        for &index in path {
            let (_, child, cc) = ckd_pub(&node.public_key, &node.chain_code, index)?;
            node = Xpub {
                network: node.network,
                depth: node
                    .depth
                    .checked_add(1)
                    .ok_or_else(|| DeriveError::BadPath("depth above 255".into()))?,
                parent_fingerprint: fingerprint(&node.public_key),
                child_number: index,
                chain_code: cc,
                public_key: child,
            };
        }
        Ok(node)
    }

    /// The 78-byte serialisation (before Base58Check).
    pub fn to_bytes(&self) -> [u8; XPUB_LEN] {
        let mut out = [0u8; XPUB_LEN];
        let parts: [&[u8]; 6] = [
            &self.network.version().to_be_bytes(),
            &[self.depth],
            &self.parent_fingerprint,
            &self.child_number.to_be_bytes(),
            &self.chain_code,
            &point_to_bytes(&self.public_key),
        ];
        let mut pos = 0;
        for p in parts {
            if let Some(dst) = out.get_mut(pos..pos + p.len()) {
                dst.copy_from_slice(p);
            }
            pos += p.len();
        }
        out
    }

    /// Parses the 78-byte serialisation.
    ///
    /// # Errors
    /// [`XpubError`] for wrong length, version, depth-0 inconsistencies or an invalid key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, XpubError> {
        let mut r = crate::encoding::Reader::new(bytes);
        let version = r.u32().map_err(|_| XpubError::Encoding)?;
        let network = Network::from_version(version).ok_or(XpubError::Version(version))?;
        let [depth] = r.array::<1>().map_err(|_| XpubError::Encoding)?;
        let parent_fingerprint = r.array::<4>().map_err(|_| XpubError::Encoding)?;
        let child_number = r.u32().map_err(|_| XpubError::Encoding)?;
        let chain_code = r.array::<32>().map_err(|_| XpubError::Encoding)?;
        let key = r.array::<33>().map_err(|_| XpubError::Encoding)?;
        r.finish().map_err(|_| XpubError::Encoding)?;
        if depth == 0 && (parent_fingerprint != [0; 4] || child_number != 0) {
            return Err(XpubError::ZeroDepth);
        }
        let public_key =
            crate::encoding::point_from_bytes(&key).map_err(|_| XpubError::PublicKey)?;
        Ok(Self { network, depth, parent_fingerprint, child_number, chain_code, public_key })
    }
}

impl std::fmt::Display for Xpub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut data = self.to_bytes().to_vec();
        let c = checksum(&data);
        data.extend_from_slice(&c);
        f.write_str(&bs58::encode(data).into_string())
    }
}

/// Base58Check-decodes a 78-byte extended key (public or private); the caller checks the
/// version. Secret material is zeroized when the result drops.
pub(crate) fn decode_extended_key(s: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, XpubError> {
    // 82 bytes encode to at most 112 Base58 characters; refuse longer input before decoding.
    if s.len() > 120 {
        return Err(XpubError::Encoding);
    }
    let raw = zeroize::Zeroizing::new(bs58::decode(s).into_vec().map_err(|_| XpubError::Encoding)?);
    if raw.len() != XPUB_LEN + 4 {
        return Err(XpubError::Encoding);
    }
    let (data, sum) = raw.split_at(XPUB_LEN);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&checksum(data)[..], sum)) {
        return Err(XpubError::Checksum);
    }
    Ok(zeroize::Zeroizing::new(data.to_vec()))
}

impl std::str::FromStr for Xpub {
    type Err = XpubError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_bytes(&decode_extended_key(s)?)
    }
}

/// The extended public key of `share`'s key at `path` (root when `path` is empty).
///
/// # Errors
/// [`DeriveError`] for a hardened index or an invalid child.
pub fn xpub_for_path(
    share: &crate::keyshare::KeyShare,
    path: &[u32],
    network: Network,
) -> Result<Xpub, DeriveError> {
    Xpub::root(*share.public_key(), *share.chain_code(), network).derive(path)
}
