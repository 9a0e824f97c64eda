//! The CLI's error type: one line for humans, a JSON object for machines, and an exit code per
//! class of failure (see [`ExitCode`]).

use std::fmt;

use dkls23_core::PartyIndex;

/// Exit codes of `dkls-party` (documented in `docs/dkls-party.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// An internal error (a bug or an unexpected local failure such as a full disk).
    Internal = 1,
    /// Bad input: wrong flags, a malformed or foreign setup, a setup that does not include this
    /// party, an unknown key, a reused instance id. Nothing was sent.
    BadInput = 2,
    /// A round timed out: some party never showed up (no blame).
    Timeout = 3,
    /// A peer misbehaved (the blamed party is named) or the parties' views differ.
    PeerMisbehaviour = 4,
    /// The relay could not be reached or failed.
    Relay = 5,
    /// The passphrase does not open the key share.
    WrongPassphrase = 6,
    /// A local file (key share, identity, presignature) is corrupted or unreadable.
    CorruptedData = 7,
}

impl ExitCode {
    /// A stable lowercase name used in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            ExitCode::Ok => "ok",
            ExitCode::Internal => "internal",
            ExitCode::BadInput => "bad_input",
            ExitCode::Timeout => "timeout",
            ExitCode::PeerMisbehaviour => "peer_misbehaviour",
            ExitCode::Relay => "relay",
            ExitCode::WrongPassphrase => "wrong_passphrase",
            ExitCode::CorruptedData => "corrupted_data",
        }
    }
}

/// A failure of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// The class of failure, which fixes the exit code.
    pub code: ExitCode,
    /// What went wrong.
    pub message: String,
    /// What the user should do about it.
    pub hint: Option<String>,
    /// The party to blame, if one can be blamed.
    pub blamed: Option<PartyIndex>,
    /// Whether the blamed party must be banned (it was recorded in the ban list).
    pub banned: bool,
}

impl CliError {
    /// An error of class `code`.
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), hint: None, blamed: None, banned: false }
    }

    /// Bad input.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ExitCode::BadInput, message)
    }

    /// An internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ExitCode::Internal, message)
    }

    /// A corrupted or unreadable local file.
    pub fn corrupted(message: impl Into<String>) -> Self {
        Self::new(ExitCode::CorruptedData, message)
    }

    /// Adds what to do about it.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The one-line human form: `error: <message> (<hint>)`.
    pub fn one_line(&self) -> String {
        let mut s = format!("error: {}", self.message);
        if let Some(h) = &self.hint {
            s.push_str(" — ");
            s.push_str(h);
        }
        s.replace('\n', " ")
    }

    /// The JSON form printed on stdout with `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": false,
            "error": {
                "kind": self.code.name(),
                "exit_code": self.code as u8,
                "message": self.message,
                "hint": self.hint,
                "blamed_party": self.blamed,
                "banned": self.banned,
            }
        })
    }

    /// Maps a protocol error of a run (keygen, sign, …).
    pub fn from_protocol(e: &dkls23_core::Error) -> Self {
        use dkls23_core::Error as E;
        match e {
            E::InvalidInput(m) => CliError::bad_input(format!("invalid input: {m}"))
                .hint("check the setup file and the key share it names"),
            E::Blame { party, reason } => CliError {
                code: ExitCode::PeerMisbehaviour,
                message: format!("party {party} misbehaved: {reason}"),
                hint: Some(format!("do not run further sessions with party {party}")),
                blamed: Some(*party),
                banned: false,
            },
            E::BanAndAbort { party, reason } => CliError {
                code: ExitCode::PeerMisbehaviour,
                message: format!("party {party} failed an OT check and is banned: {reason}"),
                hint: Some(format!(
                    "party {party} is banned for this key (recorded in its ban list); replace it with a reshare"
                )),
                blamed: Some(*party),
                banned: true,
            },
            E::ViewMismatch { round, party } => CliError::new(
                ExitCode::PeerMisbehaviour,
                format!("view mismatch in round {round} with party {party} (nobody is blamed)"),
            )
            .hint("make sure every party uses exactly the same setup file, then retry with a new one"),
            E::Unattributable(m) => CliError::new(
                ExitCode::PeerMisbehaviour,
                format!("the protocol failed without an identifiable culprit: {m}"),
            )
            .hint("retry with a new setup; if it repeats, exclude parties one at a time"),
            E::Transport(m) => CliError::new(ExitCode::Relay, format!("relay failure: {m}"))
                .hint("check that the relay at RELAY_URL is running and reachable"),
            E::RelayFull { .. } => CliError::new(ExitCode::Relay, e.to_string())
                .hint("the relay is up but at its byte limit; retry with a new setup later, or raise the relay's --max-total-bytes"),
            E::Timeout { round, missing } => CliError::new(
                ExitCode::Timeout,
                format!("timed out in round {round} waiting for parties {missing:?}"),
            )
            .hint("make sure every listed party runs the same setup against the same relay, or raise --timeout-secs"),
            E::PeerAborted { party, .. } => CliError::new(ExitCode::Timeout, e.to_string())
                .hint(format!("party {party} stopped this session and said why; fix that there, then retry with a new setup")),
            other => CliError::internal(other.to_string()),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.one_line())
    }
}

impl std::error::Error for CliError {}

/// Shorthand for command results.
pub type CliResult<T> = Result<T, CliError>;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use dkls23_core::Error as E;

    #[test]
    fn protocol_errors_map_to_exit_codes_and_name_the_culprit() {
        let cases = [
            (E::InvalidInput("x".into()), ExitCode::BadInput, None, false),
            (
                E::Blame { party: 2, reason: "bad proof".into() },
                ExitCode::PeerMisbehaviour,
                Some(2),
                false,
            ),
            (
                E::BanAndAbort { party: 3, reason: "OT".into() },
                ExitCode::PeerMisbehaviour,
                Some(3),
                true,
            ),
            (E::ViewMismatch { round: 2, party: 1 }, ExitCode::PeerMisbehaviour, None, false),
            (E::Unattributable("sum".into()), ExitCode::PeerMisbehaviour, None, false),
            (E::Transport("closed".into()), ExitCode::Relay, None, false),
            (E::RelayFull { held: 9, limit: 9 }, ExitCode::Relay, None, false),
            (
                E::PeerAborted { party: 2, round: 1, reason: dkls23_core::AbortReason::Busy },
                ExitCode::Timeout,
                None,
                false,
            ),
            (E::Timeout { round: 1, missing: vec![2] }, ExitCode::Timeout, None, false),
        ];
        for (e, code, blamed, banned) in cases {
            let c = CliError::from_protocol(&e);
            assert_eq!((c.code, c.blamed, c.banned), (code, blamed, banned), "{e}");
            let line = c.one_line();
            assert!(line.starts_with("error: ") && !line.contains('\n') && line.contains(" — "));
            let j = c.to_json();
            assert_eq!(j["error"]["exit_code"], code as u8);
            assert_eq!(j["error"]["blamed_party"], serde_json::json!(blamed));
        }
        let codes = [
            ExitCode::Ok,
            ExitCode::Internal,
            ExitCode::BadInput,
            ExitCode::Timeout,
            ExitCode::PeerMisbehaviour,
            ExitCode::Relay,
            ExitCode::WrongPassphrase,
            ExitCode::CorruptedData,
        ];
        let mut seen: Vec<u8> = codes.iter().map(|c| *c as u8).collect();
        seen.dedup();
        assert_eq!(seen, vec![0, 1, 2, 3, 4, 5, 6, 7]);
    }
}
