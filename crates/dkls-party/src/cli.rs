//! Command-line definition (clap) and dispatch.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::args::{
    DemoArgs, DeriveArgs, ExportArgs, ImportArgs, RunArgs, SetupNewArgs, SetupProtocol, SignArgs,
};
use crate::context::Ctx;
use crate::error::{CliError, CliResult};
use crate::identity_file::IdentityKind;
use crate::output::Output;
use crate::party_dir::PartyDir;
use crate::{demo, lifecycle, local, presign, relay, runs, transfer};

/// A threshold-ECDSA (DKLs23, secp256k1) party on the command line.
///
/// Every participant runs the same subcommand with the same setup file; the parties meet through
/// a message relay (RELAY_URL). Key shares are kept encrypted in DEST under a passphrase
/// (DKLS_PASSPHRASE or a prompt).
#[derive(Debug, Parser)]
#[command(name = "dkls-party", version, about, long_about = None)]
pub struct Cli {
    /// Relay URL; several, separated by spaces or commas, are replicas of one relay: used in
    /// order, the next one taking over when a relay fails during a run.
    #[arg(long, env = "RELAY_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub relay_url: String,
    /// Extra PEM CA certificates trusted for an https:// or wss:// relay (besides the public
    /// web PKI roots), e.g. the CA of `mpc-node dev --tls`.
    #[arg(long, env = "RELAY_CA_FILE", global = true)]
    pub relay_ca_file: Option<PathBuf>,
    /// Accept only a relay whose certificate matches one of these pins: cert-sha256:<hex> or
    /// spki-sha256:<hex> (repeatable; RELAY_PINS holds a space-separated list).
    #[arg(long = "relay-pin", env = "RELAY_PINS", value_delimiter = ' ', global = true)]
    pub relay_pins: Vec<String>,
    /// Data directory.
    #[arg(long, env = "DEST", default_value = "./data", global = true)]
    pub dest: PathBuf,
    /// Party name: its files live in DEST/PARTY_ID (in DEST itself when unset).
    #[arg(long, env = "PARTY_ID", global = true)]
    pub party_id: Option<String>,
    /// Identity key file (default: the party directory's identity.pem).
    #[arg(long, env = "DKLS_IDENTITY", global = true)]
    pub identity: Option<PathBuf>,
    /// How long to wait for the other parties in each round, in seconds.
    #[arg(long, env = "DKLS_TIMEOUT_SECS", default_value_t = 60, global = true)]
    pub timeout_secs: u64,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or show this party's identity key.
    #[command(subcommand)]
    Identity(IdentityCmd),
    /// Create the setup file all participants of a run receive.
    #[command(subcommand)]
    Setup(Box<SetupCmd>),
    /// Run a distributed key generation.
    Keygen(RunArgs),
    /// Sign a message (with a sign setup).
    Sign(SignArgs),
    /// Precompute a presignature (with a presign setup); finish it later with
    /// `sign --presignature`.
    Presign(RunArgs),
    /// Refresh the shares of a key (same public key, new shares).
    Refresh(RunArgs),
    /// Reshare a key to a new committee or threshold.
    Reshare(RunArgs),
    /// Show the public key (and Ethereum address) derived along a path.
    Derive(DeriveArgs),
    /// Import an existing private key as a threshold key (the dealer passes the key).
    Import(ImportArgs),
    /// Export (reconstruct) a key to one recipient: ends threshold custody.
    Export(ExportArgs),
    /// List or show key shares (public data only).
    #[command(subcommand)]
    Shares(SharesCmd),
    /// One-command tour: embedded relay, DKG, sign, verify, refresh, derive, sign under a path.
    Demo(DemoArgs),
    /// Run a message relay (for tests and local demos).
    #[command(hide = true)]
    Relay {
        /// Address to listen on (port 0 picks a free port; the URL is printed on stdout).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Serve TLS with this PEM certificate chain (with --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Keep messages in Redis (redis://[:password@]host:port), shared by every relay
        /// given the same URL and --redis-prefix: replicas of one relay.
        #[arg(long, env = "RELAY_REDIS_URL", hide_env_values = true)]
        redis_url: Option<String>,
        /// Prefix of the relay's Redis keys.
        #[arg(long, env = "RELAY_REDIS_PREFIX", default_value = "msg-relay:")]
        redis_prefix: String,
    },
}

/// `identity` subcommands.
#[derive(Debug, Subcommand)]
pub enum IdentityCmd {
    /// Generate an identity key (PKCS#8 PEM, mode 0600) and print its public key.
    New {
        /// Signature algorithm.
        #[arg(long, value_enum, default_value_t = IdentityKind::Ed25519)]
        kind: IdentityKind,
        /// Overwrite an existing identity file.
        #[arg(long)]
        force: bool,
    },
    /// Print the public key of the identity.
    Show,
}

/// `setup` subcommands.
#[derive(Debug, Subcommand)]
pub enum SetupCmd {
    /// Create a setup file with a fresh random instance id.
    New(SetupNewArgs),
}

/// `shares` subcommands.
#[derive(Debug, Subcommand)]
pub enum SharesCmd {
    /// List this party's key shares.
    List,
    /// Show the public data of one key share.
    Show {
        /// The key (key id, unique key-id prefix, or label).
        key: String,
    },
}

impl Cli {
    /// The context of the command, from the global flags.
    pub fn context(&self) -> Ctx {
        let dir = PartyDir::new(&self.dest, self.party_id.as_deref());
        let identity_path = self.identity.clone().unwrap_or_else(|| dir.identity_path());
        Ctx {
            dir,
            identity_path,
            relay_url: self.relay_url.clone(),
            relay_ca_file: self.relay_ca_file.clone(),
            relay_pins: self.relay_pins.iter().filter(|p| !p.is_empty()).cloned().collect(),
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
            quiet: self.quiet,
        }
    }
}

/// Runs one parsed command.
///
/// # Errors
/// The command's failure, classified by [`crate::error::ExitCode`].
pub fn dispatch(cli: Cli) -> CliResult<Output> {
    let ctx = cli.context();
    match cli.command {
        Command::Identity(IdentityCmd::New { kind, force }) => {
            local::identity_new(&ctx, kind, force)
        }
        Command::Identity(IdentityCmd::Show) => local::identity_show(&ctx),
        Command::Setup(cmd) => match *cmd {
            SetupCmd::New(args) => setup_new(&ctx, &args),
        },
        Command::Shares(SharesCmd::List) => local::shares_list(&ctx),
        Command::Shares(SharesCmd::Show { key }) => local::shares_show(&ctx, &key),
        Command::Derive(args) => local::derive(&ctx, &args),
        Command::Keygen(args) => runtime()?.block_on(runs::keygen(&ctx, &args)),
        Command::Sign(args) => match &args.setup {
            Some(setup) => runtime()?.block_on(runs::sign(&ctx, setup, &args)),
            None => runtime()?.block_on(presign::finish(&ctx, &args)),
        },
        Command::Presign(args) => runtime()?.block_on(presign::presign(&ctx, &args)),
        Command::Refresh(args) => runtime()?.block_on(lifecycle::reshare(&ctx, &args, true)),
        Command::Reshare(args) => runtime()?.block_on(lifecycle::reshare(&ctx, &args, false)),
        Command::Import(args) => runtime()?.block_on(transfer::import(&ctx, &args)),
        Command::Export(args) => runtime()?.block_on(transfer::export(&ctx, &args)),
        Command::Demo(args) => runtime()?.block_on(demo::run(&args, cli.quiet)),
        Command::Relay { listen, tls_cert, tls_key, redis_url, redis_prefix } => {
            let tls = tls_cert.zip(tls_key);
            let redis = redis_url.map(|url| (url, redis_prefix));
            runtime()?.block_on(relay::serve(listen, tls, redis))
        }
    }
}

/// `setup new`: each protocol's setup is made by the module that runs it.
fn setup_new(ctx: &Ctx, args: &SetupNewArgs) -> CliResult<Output> {
    match args.protocol {
        SetupProtocol::Keygen => local::keygen_setup(args),
        SetupProtocol::Sign | SetupProtocol::Presign => local::sign_setup(ctx, args),
        SetupProtocol::Refresh | SetupProtocol::Reshare => lifecycle::reshare_setup(ctx, args),
        SetupProtocol::Import => transfer::import_setup(args),
        SetupProtocol::Export => transfer::export_setup(ctx, args),
    }
}

fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the async runtime: {e}")))
}
