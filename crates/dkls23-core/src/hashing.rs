//! What apps sign: turning a message into the 32-byte prehash the protocol signs.

use sha2::Digest;

/// How to obtain the 32-byte prehash of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// The message already is a 32-byte prehash.
    None,
    /// `KECCAK256(message)` (Ethereum; the original Keccak padding, not SHA3-256).
    Keccak256,
    /// `SHA256(message)`.
    Sha256,
}

/// Why a message could not be turned into a prehash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// With [`HashAlgorithm::None`] the message must be exactly 32 bytes.
    #[error("a raw prehash must be exactly 32 bytes, got {0}")]
    PrehashLength(usize),
}

impl std::str::FromStr for HashAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "prehash" => Ok(Self::None),
            "keccak256" | "keccak-256" => Ok(Self::Keccak256),
            "sha256" | "sha-256" => Ok(Self::Sha256),
            other => Err(format!(
                "unknown hash algorithm {other:?} (expected keccak256, sha256 or none)"
            )),
        }
    }
}

/// The 32-byte prehash of `message` under `alg`.
///
/// # Errors
/// [`HashError::PrehashLength`] for a raw prehash that is not 32 bytes.
pub fn prehash(alg: HashAlgorithm, message: &[u8]) -> Result<[u8; 32], HashError> {
    match alg {
        HashAlgorithm::None => {
            <[u8; 32]>::try_from(message).map_err(|_| HashError::PrehashLength(message.len()))
        }
        HashAlgorithm::Keccak256 => Ok(sha3::Keccak256::digest(message).into()),
        HashAlgorithm::Sha256 => Ok(sha2::Sha256::digest(message).into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // Well-known digests of the empty string.
        assert_eq!(
            hex::encode(prehash(HashAlgorithm::Keccak256, b"").unwrap()),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        assert_eq!(
            hex::encode(prehash(HashAlgorithm::Sha256, b"").unwrap()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(prehash(HashAlgorithm::None, &[7; 32]).unwrap(), [7; 32]);
        assert_eq!(prehash(HashAlgorithm::None, &[7; 31]), Err(HashError::PrehashLength(31)));
        assert_eq!("KECCAK256".parse::<HashAlgorithm>().unwrap(), HashAlgorithm::Keccak256);
        assert!("md5".parse::<HashAlgorithm>().is_err());
    }
}
