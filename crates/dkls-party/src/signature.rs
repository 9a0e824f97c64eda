//! A finished signature: its check with k256 and what `sign` prints for it.

use dkls23_core::encoding::point_to_bytes;
use dkls23_core::sign::Signature;
use k256::ProjectivePoint;
use k256::ecdsa::VerifyingKey;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use serde_json::{Value, json};

use crate::args::SigFormat;
use crate::encoding::eth_address;
use crate::output::{Output, set_field};

/// Verifies `sig` on `m32` under `public_key` with k256.
pub fn verify(public_key: &ProjectivePoint, m32: &[u8; 32], sig: &Signature) -> bool {
    let Ok(vk) = VerifyingKey::from_affine(public_key.to_affine()) else { return false };
    sig.to_k256().is_some_and(|s| vk.verify_prehash(m32, &s).is_ok())
}

/// The JSON form of a signature.
pub fn signature_json(sig: &Signature, m32: &[u8; 32], pk: &ProjectivePoint) -> Value {
    json!({
        "r": hex::encode(sig.r),
        "s": hex::encode(sig.s),
        "recovery_id": sig.recovery_id,
        "der": hex::encode(sig.to_der()),
        "rsv": hex::encode(sig.to_rsv()),
        "message_hash": hex::encode(m32),
        "public_key": hex::encode(point_to_bytes(pk)),
        "eth_address": eth_address(pk),
    })
}

/// What `sign` prints for a signature.
pub fn signature_output(
    sig: &Signature,
    m32: &[u8; 32],
    pk: &ProjectivePoint,
    format: SigFormat,
) -> Output {
    let json = signature_json(sig, m32, pk);
    let text = match format {
        SigFormat::Json => format!("{}\n", serde_json::to_string_pretty(&json).unwrap_or_default()),
        SigFormat::Hex => format!(
            "r            {}\ns            {}\nrecovery id  {}\nder          {}\nrsv          {}\npublic key   {}\n",
            hex::encode(sig.r),
            hex::encode(sig.s),
            sig.recovery_id,
            hex::encode(sig.to_der()),
            hex::encode(sig.to_rsv()),
            hex::encode(point_to_bytes(pk)),
        ),
    };
    let mut out_json = json;
    set_field(&mut out_json, "ok", json!(true));
    Output { text, json: out_json }
}
