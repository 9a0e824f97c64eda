//! What every command that runs a protocol through the relay does the same way: find this
//! party in the setup, refuse a setup it already ran, connect to the relay, and hand the
//! runner one [`RunContext`] built with this program's options and progress lines.

use std::sync::Arc;
use std::time::Duration;

use dkls23_core::PartyIndex;
use dkls23_core::identity::IdentitySigner;
use dkls23_core::setup::Setup;
use dkls23_runner::{RunContext, RunOptions};
use msg_relay_client::{ClientConfig, ClientError, WsRelay};

use crate::context::Ctx;
use crate::error::{CliError, CliResult, ExitCode};
use crate::identity_file::{Signer, public_hex};
use crate::party_dir::FileReplayGuard;
use crate::progress::{Progress, Traffic, party_label};

/// Connects to the relay at RELAY_URL (one URL, or several replicas separated by spaces or
/// commas: the client fails over among them), waiting at most the round timeout (capped at
/// 10 s).
///
/// # Errors
/// Bad input for a malformed URL, a relay error if it cannot be reached.
pub async fn connect(ctx: &Ctx) -> CliResult<WsRelay> {
    let url = &ctx.relay_url;
    let cfg = ClientConfig {
        connect_timeout: ctx.timeout.min(Duration::from_secs(10)),
        give_up_after: ctx.timeout.max(Duration::from_secs(5)),
        tls: ctx.relay_tls()?,
        ..ClientConfig::default()
    };
    WsRelay::connect_any(&[url], cfg).await.map_err(|e| match e {
        ClientError::InvalidUrl { .. } => CliError::bad_input(e.to_string())
            .hint("set RELAY_URL like http://127.0.0.1:8080 or https://relay.example.org"),
        ClientError::Connect { ref cause, .. } if cause.contains("TLS") => {
            CliError::new(ExitCode::Relay, format!("cannot reach the relay at {url}: {e}")).hint(
                "trust the relay's CA with RELAY_CA_FILE, check RELAY_PINS, and use https:// \
                 only for a TLS relay",
            )
        }
        other => {
            CliError::new(ExitCode::Relay, format!("cannot reach the relay at {url}: {other}"))
                .hint("start the relay (`msg-relay-svc --listen 127.0.0.1:8080`) or set RELAY_URL")
        }
    })
}

/// This party's replay guard, refusing `setup` if this party already took part in it.
///
/// # Errors
/// Corrupted data if the guard's file cannot be read; bad input for a used setup.
pub fn fresh_guard(ctx: &Ctx, setup: &Setup) -> CliResult<FileReplayGuard> {
    let guard = ctx.dir.replay_guard()?;
    if guard.was_used(setup.iid()) {
        return Err(CliError::bad_input(format!(
            "this party already took part in run {} (instance ids are single-use)",
            hex::encode(setup.iid())
        ))
        .hint("ask the coordinator for a new setup file (`dkls-party setup new`)"));
    }
    Ok(guard)
}

/// Refuses `setup` if one of its participants is in `banned`; `command` names what to redo
/// with other parties in the hint (`sign`, `presign`).
///
/// # Errors
/// Bad input naming the first banned participant.
pub fn refuse_banned(setup: &Setup, banned: &[PartyIndex], command: &str) -> CliResult<()> {
    match setup.participants().iter().find(|(i, _)| banned.contains(i)) {
        Some((party, _)) => Err(CliError::bad_input(format!(
            "party {party} is banned for this key"
        ))
        .hint(format!("{command} with other parties, or replace the banned party with a reshare"))),
        None => Ok(()),
    }
}

/// This party's index in `setup`, with a clear error if it is not a participant.
fn index_in(setup: &Setup, signer: &dyn IdentitySigner) -> CliResult<PartyIndex> {
    let pk = signer.public_key();
    setup.require_member(&pk).map_err(|_| {
        CliError::bad_input(format!(
            "this setup does not include this party (identity {})",
            public_hex(&pk)
        ))
        .hint("check PARTY_ID/DEST/--identity, or ask the coordinator to add this public key")
    })
}

/// This party's run of one setup: its identity and index, the tag of its progress lines
/// (`keygen p1`), and the runner options, built once for the run.
pub struct Session {
    /// This party's index in the setup.
    pub me: PartyIndex,
    /// The session in log lines: the first 8 bytes of the instance id, in hex.
    pub id: String,
    tag: String,
    quiet: bool,
    signer: Signer,
    progress: Arc<Progress>,
    options: RunOptions,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("me", &self.me)
            .field("id", &self.id)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// This party's run of `setup` as `command` (e.g. `keygen`), whose progress lines count
    /// `rounds` rounds: loads the identity and finds this party among the participants.
    ///
    /// # Errors
    /// As [`Ctx::load_identity`]; bad input if the setup does not include this party.
    pub fn join(ctx: &Ctx, setup: &Setup, command: &str, rounds: u16) -> CliResult<Self> {
        let signer = ctx.load_identity()?;
        let me = index_in(setup, signer.as_ref())?;
        let tag = format!("{command} {}", party_label(me));
        let progress = Progress::new(setup, tag.clone(), rounds, ctx.quiet);
        let options = progress.options(RunOptions {
            round_timeout: ctx.timeout,
            message_ttl: Some(Duration::from_secs(u64::from(setup.ttl_secs()))),
            ..RunOptions::default()
        });
        let id = hex::encode(setup.iid().get(..8).unwrap_or_default());
        Ok(Self { me, id, tag, quiet: ctx.quiet, signer, progress, options })
    }

    /// Prints `line` on stderr after the run's tag (`[keygen p1] …`), unless quiet.
    pub fn announce(&self, line: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("[{}] {line}", self.tag);
        }
    }

    /// The runner's context for this run over `relay`, recording instance ids in `guard`.
    pub fn context<'a>(
        &self,
        relay: &'a WsRelay,
        guard: &'a FileReplayGuard,
    ) -> RunContext<'a, WsRelay> {
        RunContext::new(relay, self.signer.clone(), guard).with_options(self.options.clone())
    }

    /// The traffic of the rounds completed so far.
    pub fn finish(&self) -> Traffic {
        self.progress.finish()
    }
}
