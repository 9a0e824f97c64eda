//! Input rules shared by every store implementation, so they behave the same.

use crate::error::StoreError;
use crate::record::KeyStatus;

/// Longest key name, presignature id and application id, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Longest stored error / ban reason, in bytes (longer ones are truncated).
pub const MAX_REASON_LEN: usize = 1024;

/// A key name or presignature id: 1..=128 characters of `[A-Za-z0-9._-]`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// An application id: 1..=128 bytes without control characters.
pub fn is_valid_app(app: &str) -> bool {
    !app.is_empty() && app.len() <= MAX_NAME_LEN && !app.chars().any(char::is_control)
}

pub(crate) fn check_app_key(app: &str, key: &str) -> Result<(), StoreError> {
    if !is_valid_app(app) {
        return Err(StoreError::Conflict("invalid application id".into()));
    }
    if !is_valid_name(key) {
        return Err(StoreError::Conflict("invalid key name".into()));
    }
    Ok(())
}

pub(crate) fn check_presig_id(id: &str) -> Result<(), StoreError> {
    if is_valid_name(id) {
        Ok(())
    } else {
        Err(StoreError::Conflict("invalid presignature id".into()))
    }
}

pub(crate) fn check_params(threshold: u16, parties: u16) -> Result<(), StoreError> {
    if threshold == 0 || threshold > parties {
        return Err(StoreError::Conflict("threshold must be in 1..=parties".into()));
    }
    Ok(())
}

/// `reason` cut to at most [`MAX_REASON_LEN`] bytes on a character boundary.
pub(crate) fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.get(..end).unwrap_or_default().to_owned()
}

/// mark_ready is allowed only from PENDING.
pub(crate) fn check_can_mark_ready(status: &KeyStatus) -> Result<(), StoreError> {
    match status {
        KeyStatus::Pending => Ok(()),
        KeyStatus::Ready => Err(StoreError::Conflict("key is already ready".into())),
        KeyStatus::Error(_) => Err(StoreError::Conflict("key generation failed".into())),
    }
}

/// mark_error is refused for a READY key (its share stays usable).
pub(crate) fn check_can_mark_error(status: &KeyStatus) -> Result<(), StoreError> {
    if *status == KeyStatus::Ready {
        Err(StoreError::Conflict("key is ready".into()))
    } else {
        Ok(())
    }
}

/// Operations on the share (replace, presignatures) need a READY key.
pub(crate) fn check_ready(status: &KeyStatus) -> Result<(), StoreError> {
    if *status == KeyStatus::Ready {
        Ok(())
    } else {
        Err(StoreError::Conflict("key is not ready".into()))
    }
}

/// A new epoch must move forward (no rollback to an older share).
pub(crate) fn check_new_epoch(current: u32, new: u32) -> Result<(), StoreError> {
    if new > current { Ok(()) } else { Err(StoreError::Conflict("epoch must increase".into())) }
}

/// An operation's application, id and name.
pub(crate) fn check_operation(app: &str, id: &str, operation: &str) -> Result<(), StoreError> {
    if !is_valid_app(app) {
        return Err(StoreError::Conflict("invalid application id".into()));
    }
    if !is_valid_name(id) || !is_valid_name(operation) {
        return Err(StoreError::Conflict("invalid operation id or name".into()));
    }
    Ok(())
}

/// The `updated_at` bounds of [`crate::Store::fail_running_operations`]: running operations
/// older than the first are failed (0 seconds: all of them), ended ones older than the second
/// are forgotten.
pub(crate) fn operation_cutoffs(max_age_secs: u64, keep_secs: u64) -> (i64, i64) {
    let now = crate::clock::now_secs();
    let ago = |secs: u64| now.saturating_sub(i64::try_from(secs).unwrap_or(i64::MAX));
    let before = if max_age_secs == 0 { i64::MAX } else { ago(max_age_secs) };
    (before, ago(keep_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_name("a"));
        assert!(is_valid_name("Key_1.v-2"));
        assert!(is_valid_name(&"x".repeat(128)));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(&"x".repeat(129)));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_name("é"));
        assert!(is_valid_app("tenant one"));
        assert!(!is_valid_app(""));
        assert!(!is_valid_app("a\nb"));
    }

    #[test]
    fn reason_truncation_keeps_char_boundary() {
        let long = "é".repeat(MAX_REASON_LEN);
        let t = truncate_reason(&long);
        assert!(t.len() <= MAX_REASON_LEN);
        assert!(t.len() >= MAX_REASON_LEN - 1);
        assert_eq!(truncate_reason("short"), "short");
    }
}
