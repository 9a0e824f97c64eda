//! Text encodings the commands share: 32-byte values in hex, and Ethereum addresses.

use k256::ProjectivePoint;

/// 32 bytes from hex.
pub fn hex_array(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok().and_then(|b| <[u8; 32]>::try_from(b).ok())
}

/// The EIP-55 checksummed Ethereum address of a secp256k1 public key.
pub fn eth_address(point: &ProjectivePoint) -> String {
    use k256::elliptic_curve::sec1::ToSec1Point;
    use sha3::Digest;
    let uncompressed = point.to_affine().to_sec1_point(false);
    let bytes = uncompressed.as_bytes();
    let hash = sha3::Keccak256::digest(bytes.get(1..).unwrap_or_default());
    let addr = hex::encode(hash.get(12..).unwrap_or_default());
    let check = sha3::Keccak256::digest(addr.as_bytes());
    let mut out = String::from("0x");
    for (i, c) in addr.chars().enumerate() {
        let nibble = check.get(i / 2).map_or(0, |b| if i % 2 == 0 { b >> 4 } else { b & 0x0f });
        if c.is_ascii_alphabetic() && nibble >= 8 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip55_addresses() {
        // Private key 1: the generator's well-known address.
        assert_eq!(
            eth_address(&ProjectivePoint::GENERATOR),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
    }
}
