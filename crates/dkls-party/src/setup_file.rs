//! Setup files: what every participant receives out of band before a run (the CLI equivalent
//! of the QR code two phones exchange).
//!
//! A setup file is JSON: `{"format": "dkls-party-setup/v1", "setup": "<hex of the canonical
//! Setup encoding>", "summary": {…}}`. Only `setup` is read back; `summary` is a human-readable
//! decoding of it for review and is recomputed on every read, never trusted.

use std::path::Path;

use dkls23_core::setup::{ProtocolId, Setup};
use dkls23_core::sign::{PresignRequest, SignRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{CliError, CliResult};
use crate::files;
use crate::identity_file::{kind_name, public_hex};
use crate::output::{Output, set_field};

const FORMAT: &str = "dkls-party-setup/v1";
const MAX_SETUP_FILE: u64 = 1024 * 1024;
/// Longest keygen label (UTF-8 bytes).
pub const MAX_LABEL: usize = 64;

#[derive(Debug, Serialize, Deserialize)]
struct SetupJson {
    format: String,
    setup: String,
    #[serde(default)]
    summary: Value,
}

/// The CLI name of a protocol.
pub fn protocol_name(p: ProtocolId) -> &'static str {
    match p {
        ProtocolId::Dkg => "keygen",
        ProtocolId::Sign => "sign",
        ProtocolId::Reshare => "reshare",
        ProtocolId::Import => "import",
        ProtocolId::Export => "export",
        _ => "unknown",
    }
}

/// The keygen label carried in a DKG setup's `extra` (UTF-8, at most [`MAX_LABEL`] bytes).
///
/// # Errors
/// Bad input if `extra` is not such a label.
pub fn keygen_label(setup: &Setup) -> CliResult<String> {
    let extra = setup.extra();
    if extra.len() > MAX_LABEL {
        return Err(CliError::bad_input("the keygen setup's label is too long"));
    }
    String::from_utf8(extra.to_vec())
        .map_err(|_| CliError::bad_input("the keygen setup's label is not UTF-8"))
}

/// The signing request of a sign setup.
///
/// # Errors
/// Bad input if `extra` is not a signing request.
pub fn sign_request(setup: &Setup) -> CliResult<SignRequest> {
    if PresignRequest::from_bytes(setup.extra()).is_ok() {
        return Err(CliError::bad_input("this is a presign setup, not a sign setup")
            .hint("run `dkls-party presign --setup FILE`, then `sign --presignature`"));
    }
    SignRequest::from_bytes(setup.extra())
        .map_err(|e| CliError::bad_input(format!("the setup's signing request is malformed: {e}")))
}

/// The presigning request of a presign setup.
///
/// # Errors
/// Bad input if `extra` is not a presigning request.
pub fn presign_request(setup: &Setup) -> CliResult<PresignRequest> {
    if SignRequest::from_bytes(setup.extra()).is_ok() {
        return Err(CliError::bad_input("this is a sign setup, not a presign setup")
            .hint("run `dkls-party sign --setup FILE`"));
    }
    PresignRequest::from_bytes(setup.extra()).map_err(|e| {
        CliError::bad_input(format!("the setup's presigning request is malformed: {e}"))
    })
}

/// `m/0/1` for `[0, 1]`.
pub fn format_path(path: &[u32]) -> String {
    let mut s = String::from("m");
    for c in path {
        s.push('/');
        s.push_str(&c.to_string());
    }
    s
}

/// Parses a non-hardened BIP32 path `m/0/1` (also `0/1`, `m`, or empty).
///
/// # Errors
/// Bad input for hardened or malformed components.
pub fn parse_path(s: &str) -> CliResult<Vec<u32>> {
    let s = s.trim();
    let rest = s.strip_prefix('m').unwrap_or(s);
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for part in rest.split('/') {
        if part.ends_with('\'') || part.ends_with('h') || part.ends_with('H') {
            return Err(CliError::bad_input(format!("hardened path component {part:?} in {s:?}"))
                .hint("threshold keys support only non-hardened derivation (e.g. m/0/1)"));
        }
        let c: u32 = part.parse().map_err(|_| {
            CliError::bad_input(format!("invalid path component {part:?} in {s:?}"))
                .hint("write paths like m/0/1 with decimal indices below 2^31")
        })?;
        if c >= dkls23_core::bip32::HARDENED {
            return Err(CliError::bad_input(format!("path index {c} is hardened (≥ 2^31)"))
                .hint("threshold keys support only non-hardened derivation (e.g. m/0/1)"));
        }
        out.push(c);
    }
    if out.len() > 255 {
        return Err(CliError::bad_input("a derivation path has at most 255 components"));
    }
    Ok(out)
}

/// A human-readable decoding of `setup`.
pub fn summary(setup: &Setup) -> Value {
    let participants: Vec<Value> = setup
        .participants()
        .iter()
        .map(|(i, k)| json!({"index": i, "identity": public_hex(k), "kind": kind_name(k)}))
        .collect();
    let mut v = json!({
        "protocol": protocol_name(setup.protocol()),
        "instance_id": hex::encode(setup.iid()),
        "setup_hash": hex::encode(setup.hash()),
        "threshold": setup.t(),
        "parties": setup.n(),
        "participants": participants,
        "ttl_secs": setup.ttl_secs(),
    });
    match setup.protocol() {
        ProtocolId::Import => {
            if let Ok(req) = dkls23_core::import_export::ImportRequest::from_setup(setup) {
                set_field(&mut v, "dealer", json!(req.dealer));
                set_field(&mut v, "key_id", json!(hex::encode(req.key_id)));
                set_field(
                    &mut v,
                    "public_key",
                    json!(hex::encode(dkls23_core::encoding::point_to_bytes(&req.public_key))),
                );
            }
        }
        ProtocolId::Export => {
            if let Ok(req) = dkls23_core::import_export::ExportRequest::from_setup(setup) {
                set_field(&mut v, "key_id", json!(hex::encode(req.key_id)));
                let ex: Vec<u16> = req.exporters.iter().map(|(l, _)| *l).collect();
                set_field(&mut v, "exporters", json!(ex));
                set_field(&mut v, "recipient", json!(req.recipient));
                set_field(&mut v, "recipient_key", json!(hex::encode(req.recipient_key)));
            }
        }
        ProtocolId::Dkg => {
            set_field(&mut v, "label", json!(keygen_label(setup).unwrap_or_default()));
        }
        ProtocolId::Sign => {
            if let Ok(req) = PresignRequest::from_bytes(setup.extra()) {
                set_field(&mut v, "protocol", json!("presign"));
                set_field(&mut v, "key_id", json!(hex::encode(req.key_id)));
                set_field(&mut v, "keygen_sid", json!(hex::encode(req.keygen_sid)));
                set_field(&mut v, "path", json!(format_path(&req.path)));
            }
            if let Ok(req) = sign_request(setup) {
                set_field(&mut v, "key_id", json!(hex::encode(req.key_id)));
                set_field(&mut v, "keygen_sid", json!(hex::encode(req.keygen_sid)));
                set_field(&mut v, "path", json!(format_path(&req.path)));
                set_field(&mut v, "message_hash", json!(hex::encode(req.message)));
            }
        }
        _ => {}
    }
    v
}

/// Writes `setup` to `path` (atomically, mode 0644: a setup holds no secret).
///
/// # Errors
/// I/O failures.
pub fn write(path: &Path, setup: &Setup) -> CliResult<()> {
    write_with(path, setup, &[])
}

/// Like [`write`], with extra informational summary fields.
///
/// # Errors
/// I/O failures.
pub fn write_with(path: &Path, setup: &Setup, extra: &[(&str, Value)]) -> CliResult<()> {
    let mut summary = summary(setup);
    for (k, v) in extra {
        set_field(&mut summary, k, v.clone());
    }
    let doc =
        SetupJson { format: FORMAT.to_owned(), setup: hex::encode(setup.to_bytes()), summary };
    let mut bytes = serde_json::to_vec_pretty(&doc)
        .map_err(|e| CliError::internal(format!("encoding the setup: {e}")))?;
    bytes.push(b'\n');
    files::write_atomic(path, &bytes, 0o644)
}

/// A fresh random instance id for a new setup.
///
/// # Errors
/// An internal error if the OS has no randomness.
pub fn random_iid() -> CliResult<[u8; 32]> {
    let mut iid = [0u8; 32];
    getrandom::fill(&mut iid).map_err(|e| CliError::internal(format!("OS randomness: {e}")))?;
    Ok(iid)
}

/// Writes the new `setup` to `out` and describes it: what `setup new` prints.
///
/// # Errors
/// I/O failures.
pub fn write_new(out: &Path, setup: &Setup) -> CliResult<Output> {
    write(out, setup)?;
    let summary = summary(setup);
    Ok(Output {
        text: format!(
            "wrote {} setup {} to {}\n{}\n",
            summary.get("protocol").and_then(|v| v.as_str()).unwrap_or("a"),
            hex::encode(setup.iid()),
            out.display(),
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        ),
        json: json!({"ok": true, "file": out.display().to_string(), "setup": summary}),
    })
}

/// Reads and validates the setup file at `path`; `want` is the protocol the command runs.
///
/// # Errors
/// Bad input for a missing, malformed or invalid setup or one of another protocol.
pub fn read(path: &Path, want: ProtocolId) -> CliResult<Setup> {
    let bytes = files::read_bounded(path, MAX_SETUP_FILE, "setup file")
        .map_err(|e| CliError { code: crate::error::ExitCode::BadInput, ..e })?;
    let hint = "ask the coordinator for the setup file made by `dkls-party setup new`";
    let doc: SetupJson = serde_json::from_slice(&bytes).map_err(|e| {
        CliError::bad_input(format!("setup file {} is not valid JSON: {e}", path.display()))
            .hint(hint)
    })?;
    if doc.format != FORMAT {
        return Err(CliError::bad_input(format!(
            "setup file {} has format {:?}, expected {FORMAT:?}",
            path.display(),
            doc.format
        ))
        .hint(hint));
    }
    let raw = hex::decode(doc.setup.trim()).map_err(|_| {
        CliError::bad_input(format!("setup file {}: \"setup\" is not hex", path.display()))
            .hint(hint)
    })?;
    let setup = Setup::from_bytes(&raw).map_err(|e| {
        CliError::bad_input(format!("setup file {} is invalid: {e}", path.display())).hint(hint)
    })?;
    if setup.protocol() != want {
        return Err(CliError::bad_input(format!(
            "setup file {} is a {} setup, not a {} setup",
            path.display(),
            protocol_name(setup.protocol()),
            protocol_name(want)
        ))
        .hint("run the subcommand that matches the setup"));
    }
    Ok(setup)
}

/// An informational summary field of the setup file at `path` (untrusted: callers must check
/// whatever they derive from it).
///
/// # Errors
/// Bad input if the file does not parse.
pub fn summary_field(path: &Path, field: &str) -> CliResult<Option<Value>> {
    let bytes = files::read_bounded(path, MAX_SETUP_FILE, "setup file")?;
    let doc: SetupJson = serde_json::from_slice(&bytes).map_err(|e| {
        CliError::bad_input(format!("setup file {} is not valid JSON: {e}", path.display()))
    })?;
    Ok(doc.summary.get(field).cloned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse_path("m/0/1").unwrap(), vec![0, 1]);
        assert_eq!(parse_path("0/1").unwrap(), vec![0, 1]);
        assert_eq!(parse_path("m").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_path("").unwrap(), Vec::<u32>::new());
        assert!(parse_path("m/0'/1").is_err());
        assert!(parse_path("m/0h").is_err());
        assert!(parse_path("m/2147483648").is_err());
        assert!(parse_path("m/x").is_err());
        assert!(parse_path("m//1").is_err());
        assert_eq!(format_path(&[0, 1]), "m/0/1");
    }
}
