//! `dkls-party`: a threshold-ECDSA (DKLs23 on secp256k1) party on the command line.
//!
//! The binary is a thin shell over [`run_main`]; every subcommand is a function of this library
//! so it can be tested without spawning processes. User documentation: `docs/dkls-party.md`.
//!
//! Modules depend on each other in one direction only: [`cli`] dispatches to the commands,
//! and the commands use the shared modules below them, never each other or `cli`.
//!
//! Commands:
//! * [`local`] — identity, keygen/sign/presign setups, shares, derive (no network);
//! * [`runs`] — keygen and sign through the relay;
//! * [`presign`] — presign, and `sign --presignature`;
//! * [`lifecycle`] — refresh and reshare, and their setups;
//! * [`transfer`] — import and export, and their setups;
//! * [`demo`] — the one-command tour with an embedded relay;
//! * [`relay`] — the hidden `relay` subcommand.
//!
//! Shared by the commands:
//! * [`args`], [`context`], [`output`] — the commands' arguments, context and output;
//! * [`session`] — joining a setup, the relay connection and the runner's context of a run;
//! * [`passphrase`], [`signature`], [`encoding`] — the passphrase, signature checks and output,
//!   hex and Ethereum addresses;
//! * [`party_dir`], [`sealed`], [`bans`], [`presig_gen`], [`files`] — the data directory,
//!   shares encrypted at rest, authenticated ban lists, the presignature generation,
//!   crash-safe writes;
//! * [`setup_file`], [`identity_file`], [`presig_file`] — the files parties exchange or keep;
//! * [`progress`] — per-round progress lines and byte counts;
//! * [`error`] — exit codes and one-line errors.

#![cfg_attr(not(test), warn(missing_docs))]

pub mod args;
pub mod bans;
pub mod cli;
pub mod context;
pub mod demo;
pub mod encoding;
pub mod error;
pub mod files;
pub mod identity_file;
pub mod lifecycle;
pub mod local;
pub mod output;
pub mod party_dir;
pub mod passphrase;
pub mod presig_file;
pub mod presig_gen;
pub mod presign;
pub mod progress;
pub mod relay;
pub mod runs;
pub mod sealed;
pub mod session;
pub mod setup_file;
pub mod signature;
pub mod transfer;

use clap::Parser;

pub use error::{CliError, ExitCode};

fn init_logging() {
    let filter: tracing_subscriber::filter::Targets =
        std::env::var("RUST_LOG").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::WARN)
        });
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(filter)
        .try_init();
}

/// Parses `args`, runs the command, prints its output (stdout) or a one-line error (stderr; and
/// a JSON error on stdout with `--json`), and returns the exit code.
pub fn run_main<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::BadInput } else { ExitCode::Ok };
        }
    };
    init_logging();
    let json = cli.json;
    match cli::dispatch(cli) {
        Ok(out) => {
            if json {
                println!("{}", out.json);
            } else {
                print!("{}", out.text);
            }
            ExitCode::Ok
        }
        Err(e) => {
            eprintln!("{}", e.one_line());
            if json {
                println!("{}", e.to_json());
            }
            e.code
        }
    }
}
