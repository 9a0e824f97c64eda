//! What a command prints on success: a text for people and a JSON value for machines.

use serde_json::Value;

/// What a command prints on success.
#[derive(Debug, Clone)]
pub struct Output {
    /// Printed on stdout without `--json`.
    pub text: String,
    /// Printed on stdout with `--json`.
    pub json: Value,
}

/// Sets `key` in a JSON object (no-op on other values).
pub fn set_field(v: &mut Value, key: &str, value: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_owned(), value);
    }
}
