//! The node's audit log: one JSON line per key operation that ran (generate, import, sign,
//! presign, refresh, reshare, export, delete) with its time, application, key id, session,
//! players, the signed message hash and the outcome.
//!
//! Every line carries the SHA-256 of the line before it (`prev`) and a signature by the node's
//! identity key over all its other fields (`sig`, over the line as written with `sig` empty),
//! so a record that is edited, removed, inserted or moved is detected by [`verify`]
//! (`mpc-node audit verify`). Cutting records off the *end* leaves a valid shorter chain: keep
//! the last sequence number and hash [`verify`] reports somewhere else (monitoring) to detect
//! that too.
//!
//! Lines are appended and flushed to the operating system one by one; a line cut short by a
//! crash is removed when the log is opened again (its operation's outcome is still in the
//! store). Each process writes its own file: replicas of a node sharing a database keep one log
//! each.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dkls23_core::identity::{IdentityPublicKey, IdentitySigner, Signature};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{error, warn};

use crate::config::NodeIdentity;

/// What the identity signature covers besides the record (so it can never be mistaken for a
/// protocol message signature).
const DOMAIN: &[u8] = b"mpc-node audit record v1\0";

/// One line of the log.
///
/// (Unknown fields are not refused when parsing, but [`verify`] rewrites every record and
/// compares it with its line, so a line with anything added or changed does not verify.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// 1, 2, 3, … in the order written.
    pub seq: u64,
    /// Milliseconds since the Unix epoch when the operation ended.
    pub time_ms: u64,
    /// The node's player index.
    pub node: u16,
    /// The identity key that signed this record (`ed25519:<hex>` / `p256:<hex>`).
    pub signer: String,
    /// What the operation was (written in place, between `signer` and `prev`).
    #[serde(flatten)]
    pub entry: Entry,
    /// SHA-256 of the previous line (hex); 64 zeros for the first record.
    pub prev: String,
    /// The signer's signature over [`DOMAIN`] ‖ this line written with `sig` empty (hex).
    pub sig: String,
}

/// What a caller knows about an operation that ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The application that asked.
    pub app: String,
    /// `generate`, `import`, `sign`, `presign`, `refresh`, `reshare`, `export`, `delete`.
    pub operation: String,
    /// The key, when known.
    pub key_id: Option<String>,
    /// The session id of the run (none for a delete).
    pub session_id: Option<String>,
    /// The players of the run.
    pub players: Vec<u16>,
    /// The 32-byte hash that was signed (hex), for signatures.
    pub message_hash: Option<String>,
    /// `ok`, or the error code the API answered with.
    pub outcome: String,
}

/// Why the log cannot be opened or written.
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {reason}")]
pub struct AuditError {
    path: String,
    reason: String,
}

struct Tail {
    file: File,
    seq: u64,
    prev: [u8; 32],
}

/// An open audit log, appended to by every operation of this process.
pub struct AuditLog {
    path: PathBuf,
    node: u16,
    identity: Arc<NodeIdentity>,
    tail: Mutex<Tail>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("path", &self.path).finish_non_exhaustive()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The bytes the signature covers: the record as written with `sig` empty.
fn signed_bytes(record: &Record) -> Result<Vec<u8>, serde_json::Error> {
    let unsigned = Record { sig: String::new(), ..record.clone() };
    let mut bytes = DOMAIN.to_vec();
    bytes.extend_from_slice(&serde_json::to_vec(&unsigned)?);
    Ok(bytes)
}

impl AuditLog {
    /// Opens (or creates) the log at `path` for node `node`, continuing its chain. A last line
    /// cut short by a crash is removed.
    ///
    /// # Errors
    /// [`AuditError`] when the file cannot be read or written, or its last complete line is
    /// not a record (the log is not this node's, or was damaged: run `mpc-node audit verify`).
    pub fn open(path: &Path, node: u16, identity: Arc<NodeIdentity>) -> Result<Self, AuditError> {
        let fail = |reason: String| AuditError { path: path.display().to_string(), reason };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| fail(format!("cannot open: {e}")))?;
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(|e| fail(format!("cannot read: {e}")))?;
        // Only whole lines count; a torn last line is cut off.
        let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if whole < text.len() {
            warn!(path = %path.display(), bytes = text.len() - whole, "audit log: an incomplete last line (a crash while writing) is removed");
            file.set_len(whole as u64)
                .map_err(|e| fail(format!("cannot cut the torn line: {e}")))?;
            file.seek(SeekFrom::End(0)).map_err(|e| fail(format!("cannot seek: {e}")))?;
        }
        let complete = text.get(..whole).unwrap_or_default();
        let last = complete.strip_suffix(b"\n").and_then(|t| t.split(|b| *b == b'\n').next_back());
        let (seq, prev) = match last {
            None | Some([]) => (0, [0u8; 32]),
            Some(line) => {
                let record: Record = serde_json::from_slice(line).map_err(|e| {
                    fail(format!(
                        "the last line is not an audit record ({e}); run `mpc-node audit verify`"
                    ))
                })?;
                (record.seq, sha256(line))
            }
        };
        Ok(Self {
            path: path.to_owned(),
            node,
            identity,
            tail: Mutex::new(Tail { file, seq, prev }),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record of `entry`.
    ///
    /// # Errors
    /// [`AuditError`] when the identity cannot sign or the file cannot be written.
    pub fn record(&self, entry: Entry) -> Result<(), AuditError> {
        let fail = |reason: String| AuditError { path: self.path.display().to_string(), reason };
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        // Nothing panics while holding the lock; a poisoned one still holds a consistent tail.
        let mut tail = self.tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut record = Record {
            seq: tail.seq.saturating_add(1),
            time_ms,
            node: self.node,
            signer: self.identity.public_key().to_string(),
            entry,
            prev: hex::encode(tail.prev),
            sig: String::new(),
        };
        let to_sign = signed_bytes(&record).map_err(|e| fail(format!("cannot encode: {e}")))?;
        let sig = self.identity.sign(&to_sign).map_err(|e| fail(format!("cannot sign: {e}")))?;
        record.sig = hex::encode(sig.to_bytes());
        let mut line =
            serde_json::to_vec(&record).map_err(|e| fail(format!("cannot encode: {e}")))?;
        let hash = sha256(&line);
        line.push(b'\n');
        tail.file.write_all(&line).map_err(|e| fail(format!("cannot write: {e}")))?;
        tail.seq = record.seq;
        tail.prev = hash;
        Ok(())
    }

    /// Appends a record, logging (not failing) when that is impossible: the operation already
    /// happened and its outcome must still reach the caller.
    pub fn record_or_log(&self, entry: Entry) {
        if let Err(e) = self.record(entry) {
            error!(error = %e, "audit record not written");
        }
    }
}

/// A log that verified: how many records, and the last one's number and hash (keep them
/// elsewhere to detect records cut off the end later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Records in the file.
    pub records: u64,
    /// SHA-256 of the last line (hex), or 64 zeros for an empty log.
    pub last_hash: String,
    /// The identity keys that signed records, in order of first appearance.
    pub signers: Vec<String>,
}

/// Why a log does not verify: the line (1-based) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct VerifyError {
    /// The first line that is wrong.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// Checks every record of the log at `path`: its number follows the previous one, its `prev`
/// is the previous line's hash, and its signature verifies under its signer — which must be
/// `expected` when given (the node's identity public key).
///
/// # Errors
/// [`VerifyError`] naming the first bad line (line 0: the file cannot be read).
pub fn verify(path: &Path, expected: Option<&IdentityPublicKey>) -> Result<Verified, VerifyError> {
    let text = std::fs::read(path).map_err(|e| VerifyError {
        line: 0,
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    let mut prev = [0u8; 32];
    let mut records = 0u64;
    let mut signers: Vec<String> = Vec::new();
    let body = text.strip_suffix(b"\n").unwrap_or(&text);
    if !text.is_empty() && !text.ends_with(b"\n") {
        // Reported below on its line if it is not a record either.
        warn!("audit log does not end with a newline");
    }
    for (n, line) in body.split(|b| *b == b'\n').enumerate().filter(|_| !text.is_empty()) {
        let line_no = n as u64 + 1;
        let bad = |reason: String| VerifyError { line: line_no, reason };
        let record: Record =
            serde_json::from_slice(line).map_err(|e| bad(format!("not an audit record ({e})")))?;
        if record.seq != records + 1 {
            return Err(bad(format!(
                "record {} where record {} was due (records missing, repeated or moved)",
                record.seq,
                records + 1
            )));
        }
        if record.prev != hex::encode(prev) {
            return Err(bad(format!(
                "its prev hash does not match line {} (that line was edited, or lines were \
                 removed or inserted before it)",
                line_no - 1
            )));
        }
        let signer: IdentityPublicKey = record
            .signer
            .parse()
            .map_err(|e| bad(format!("signer {:?} is not an identity key: {e}", record.signer)))?;
        if let Some(expected) = expected
            && *expected != signer
        {
            return Err(bad(format!("signed by {signer}, not by {expected}")));
        }
        let sig = hex::decode(&record.sig)
            .ok()
            .and_then(|raw| Signature::from_slice(&raw).ok())
            .ok_or_else(|| bad("the signature is not 64 bytes of hex".into()))?;
        let signed = signed_bytes(&record).map_err(|e| bad(format!("cannot encode: {e}")))?;
        // The line must be exactly what the writer produced from these fields.
        let rewritten =
            serde_json::to_vec(&record).map_err(|e| bad(format!("cannot encode: {e}")))?;
        if rewritten != line || !signer.verify(&signed, &sig) {
            return Err(bad("the signature does not verify (the record was edited)".into()));
        }
        if !signers.contains(&record.signer) {
            signers.push(record.signer.clone());
        }
        prev = sha256(line);
        records += 1;
    }
    Ok(Verified { records, last_hash: hex::encode(prev), signers })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn identity(seed: u8) -> Arc<NodeIdentity> {
        Arc::new(NodeIdentity::parse(&format!("ed25519:{}", hex::encode([seed; 32]))).unwrap())
    }

    fn entry(n: u16) -> Entry {
        Entry {
            app: "app-a".into(),
            operation: "sign".into(),
            key_id: Some("k".into()),
            session_id: Some(format!("{n:064x}")),
            players: vec![1, n],
            message_hash: Some(hex::encode([n as u8; 32])),
            outcome: "ok".into(),
        }
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_chain_verifies_and_continues_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let id = identity(1);
        let log = AuditLog::open(&path, 1, Arc::clone(&id)).unwrap();
        for n in 2..5 {
            log.record(entry(n)).unwrap();
        }
        drop(log);
        let log = AuditLog::open(&path, 1, Arc::clone(&id)).unwrap();
        log.record(entry(9)).unwrap();
        let ok = verify(&path, Some(&id.public_key())).unwrap();
        assert_eq!(ok.records, 4);
        assert_eq!(ok.signers, vec![id.public_key().to_string()]);
        assert_eq!(ok.last_hash, hex::encode(sha256(lines(&path)[3].as_bytes())));
        // Another node's key does not pass as this node's.
        let err = verify(&path, Some(&identity(2).public_key())).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(
            verify(&dir.path().join("missing"), None).unwrap_err().reason.contains("cannot read")
        );
    }

    #[test]
    fn edits_removals_insertions_and_reordering_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, 1, identity(1)).unwrap();
        for n in 2..6 {
            log.record(entry(n)).unwrap();
        }
        let original = lines(&path);
        assert_eq!(original.len(), 4);

        // An edited field (a different application) breaks that line's signature.
        let mut edited = original.clone();
        edited[1] = edited[1].replace("\"app\":\"app-a\"", "\"app\":\"app-b\"");
        assert_ne!(edited[1], original[1]);
        write_lines(&path, &edited);
        let err = verify(&path, None).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.reason.contains("signature"), "{err}");

        // A removed line: the next one's number and hash no longer follow.
        let mut removed = original.clone();
        removed.remove(1);
        write_lines(&path, &removed);
        let err = verify(&path, None).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.reason.contains("record 3 where record 2 was due"), "{err}");

        // Two lines swapped.
        let mut swapped = original.clone();
        swapped.swap(1, 2);
        write_lines(&path, &swapped);
        assert_eq!(verify(&path, None).unwrap_err().line, 2);

        // A record re-signed by another key, inserted with the right number and hash: the
        // expected signer catches it.
        let mut forged: Record = serde_json::from_str(&original[1]).unwrap();
        let other = identity(3);
        forged.signer = other.public_key().to_string();
        forged.entry.app = "app-evil".into();
        forged.sig = hex::encode(other.sign(&signed_bytes(&forged).unwrap()).unwrap().to_bytes());
        let mut inserted = original.clone();
        inserted[1] = serde_json::to_string(&forged).unwrap();
        write_lines(&path, &inserted);
        let err = verify(&path, Some(&identity(1).public_key())).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.reason.contains("signed by"), "{err}");
        // (and the next line's prev hash no longer matches either)
        assert!(verify(&path, None).is_err());

        // Garbage in the middle.
        let mut garbage = original.clone();
        garbage.insert(2, "not json".into());
        write_lines(&path, &garbage);
        let err = verify(&path, None).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.reason.contains("not an audit record"), "{err}");

        write_lines(&path, &original);
        assert_eq!(verify(&path, None).unwrap().records, 4);
    }

    #[test]
    fn a_torn_last_line_is_cut_and_the_chain_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, 1, identity(1)).unwrap();
        log.record(entry(2)).unwrap();
        log.record(entry(3)).unwrap();
        drop(log);
        let mut text = std::fs::read(&path).unwrap();
        text.extend_from_slice(b"{\"seq\":3,\"time_ms\":12");
        std::fs::write(&path, &text).unwrap();
        let log = AuditLog::open(&path, 1, identity(1)).unwrap();
        log.record(entry(4)).unwrap();
        let ok = verify(&path, None).unwrap();
        assert_eq!(ok.records, 3);
        // A complete last line that is not a record is refused, not overwritten.
        std::fs::write(&path, b"hello\n").unwrap();
        let err = AuditLog::open(&path, 1, identity(1)).unwrap_err();
        assert!(err.to_string().contains("not an audit record"), "{err}");
    }
}
