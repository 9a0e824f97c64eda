//! Command-line definition (clap) and dispatch.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use dkls23_core::hashing::HashAlgorithm;
use serde_json::Value;

use crate::error::{CliError, CliResult};
use crate::identity_file::IdentityKind;
use crate::party_dir::PartyDir;

/// A threshold-ECDSA (DKLs23, secp256k1) party on the command line.
///
/// Every participant runs the same subcommand with the same setup file; the parties meet through
/// a message relay (RELAY_URL). Key shares are kept encrypted in DEST under a passphrase
/// (DKLS_PASSPHRASE or a prompt).
#[derive(Debug, Parser)]
#[command(name = "dkls-party", version, about, long_about = None)]
pub struct Cli {
    /// Relay URL.
    #[arg(long, env = "RELAY_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub relay_url: String,
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

/// Protocols a setup can be made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SetupProtocol {
    /// Distributed key generation.
    Keygen,
    /// Signing.
    Sign,
    /// Presigning: a signing setup without the message (given later to `sign --presignature`).
    Presign,
    /// Refresh (reshare to the same committee).
    Refresh,
    /// Reshare to a new committee.
    Reshare,
    /// Import a private key (run by the dealer, who holds it).
    Import,
    /// Export a key to a recipient.
    Export,
}

/// `setup` subcommands.
#[derive(Debug, Subcommand)]
pub enum SetupCmd {
    /// Create a setup file with a fresh random instance id.
    New(SetupNewArgs),
}

/// A message to sign and how to hash it.
#[derive(Debug, Clone, Args)]
pub struct MessageArgs {
    /// The message, hex-encoded.
    #[arg(long, conflicts_with = "message_file")]
    pub message_hex: Option<String>,
    /// A file holding the message.
    #[arg(long)]
    pub message_file: Option<PathBuf>,
    /// How to hash the message into the signed 32-byte prehash: keccak256, sha256 or none (the
    /// message already is the 32-byte hash).
    #[arg(long, default_value = "keccak256", value_parser = parse_hash)]
    pub hash: HashAlgorithm,
}

fn parse_hash(s: &str) -> Result<HashAlgorithm, String> {
    s.parse()
}

/// `setup new` arguments.
#[derive(Debug, Args)]
pub struct SetupNewArgs {
    /// Which protocol the setup is for.
    #[arg(long, value_enum)]
    pub protocol: SetupProtocol,
    /// Where to write the setup file.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// keygen: a participant's identity public key (hex, from `identity show`), repeated in
    /// index order: the first is party 1.
    #[arg(long = "party", value_name = "PUBKEY")]
    pub parties: Vec<String>,
    /// keygen: threshold t (signers needed).
    #[arg(long, short = 't')]
    pub threshold: Option<u16>,
    /// keygen: a label for the key (at most 64 bytes).
    #[arg(long, default_value = "")]
    pub label: String,
    /// sign/presign/refresh: the key (key id, unique key-id prefix, or label) as held by this
    /// party.
    #[arg(long)]
    pub key: Option<String>,
    /// sign/presign: the signing parties' indices, e.g. 1,3 (default: 1..=t).
    #[arg(long, value_delimiter = ',')]
    pub signers: Vec<u16>,
    /// sign: the message.
    #[command(flatten)]
    pub message: MessageArgs,
    /// reshare: dealers, the old indices of current holders that take part (default: all).
    #[arg(long, value_delimiter = ',')]
    pub dealers: Vec<u16>,
    /// reshare: a new committee member's identity public key, repeated in new index order.
    #[arg(long = "new-party", value_name = "PUBKEY")]
    pub new_parties: Vec<String>,
    /// reshare: the new threshold (default: the current one).
    #[arg(long)]
    pub new_threshold: Option<u16>,
    /// import: the dealer's index among the holders (default 1).
    #[arg(long, default_value_t = 1)]
    pub dealer: u16,
    /// import: file with the private key (64 hex digits) or an extended private key (xprv…).
    #[arg(long)]
    pub private_key_file: Option<PathBuf>,
    /// import: chain code (hex) of a plain private key (default: a fresh random one, recorded
    /// in the setup file for the dealer).
    #[arg(long)]
    pub chain_code: Option<String>,
    /// export: the exporting holders' indices (at least t).
    #[arg(long, value_delimiter = ',')]
    pub exporters: Vec<u16>,
    /// export: the recipient's identity public key.
    #[arg(long)]
    pub recipient_identity: Option<String>,
    /// export: the recipient's X25519 public key (from `export --new-recipient-key`).
    #[arg(long)]
    pub recipient_key: Option<String>,
    /// export: the recipient's index in the export setup (default n + 1).
    #[arg(long)]
    pub recipient_index: Option<u16>,
    /// sign/presign: non-hardened derivation path, e.g. m/0/1.
    #[arg(long, default_value = "m")]
    pub path: String,
    /// Lifetime of the run's messages at the relay, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl_secs: u32,
}

/// Arguments of a protocol run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The setup file (from `setup new`).
    #[arg(long)]
    pub setup: PathBuf,
}

/// `import` arguments.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The import setup file (from `setup new --protocol import`).
    #[arg(long)]
    pub setup: PathBuf,
    /// Dealer only: the private key file (64 hex digits, or an xprv).
    #[arg(long)]
    pub private_key_file: Option<PathBuf>,
    /// Dealer only: the chain code of a plain private key (default: the one in the setup file).
    #[arg(long)]
    pub chain_code: Option<String>,
}

/// `export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The export setup file (from `setup new --protocol export`).
    #[arg(long, required_unless_present = "new_recipient_key")]
    pub setup: Option<PathBuf>,
    /// Create this party's X25519 recipient key and print its public half.
    #[arg(long)]
    pub new_recipient_key: bool,
    /// The exact sentence "I understand the exported key is no longer threshold-protected".
    #[arg(long)]
    pub confirm: Option<String>,
    /// Recipient only: where to write the exported private key (JSON, mode 0600).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Output formats of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SigFormat {
    /// Hex lines: r, s, v, DER and r‖s‖v.
    Hex,
    /// A JSON object.
    Json,
}

/// `sign` arguments.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The sign setup file (from `setup new --protocol sign`); not used with --presignature.
    #[arg(long, required_unless_present = "presignature", conflicts_with = "presignature")]
    pub setup: Option<PathBuf>,
    /// Check the setup signs exactly this message (hashed with --hash) before taking part.
    #[command(flatten)]
    pub message: MessageArgs,
    /// Check the setup signs under exactly this path before taking part.
    #[arg(long)]
    pub path: Option<String>,
    /// Finish a presignature made by `presign` (its file, or its id): runs only the online
    /// round. The presignature is deleted before the final round is sent, so it is never used
    /// twice. Needs --message-hex or --message-file.
    #[arg(long)]
    pub presignature: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SigFormat::Hex)]
    pub format: SigFormat,
}

/// Output formats of `derive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeriveFormat {
    /// Human-readable lines.
    Text,
    /// A JSON object.
    Json,
    /// Only the Ethereum address.
    EthAddress,
    /// Only the extended public key (BIP32 xpub, mainnet).
    Xpub,
}

/// `derive` arguments.
#[derive(Debug, Args)]
pub struct DeriveArgs {
    /// The key (key id, unique key-id prefix, or label).
    #[arg(long)]
    pub key: String,
    /// Non-hardened derivation path, e.g. m/0/1.
    #[arg(long, default_value = "m")]
    pub path: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DeriveFormat::Text)]
    pub format: DeriveFormat,
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

/// `demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Threshold t.
    #[arg(long, short = 't', default_value_t = 2)]
    pub threshold: u16,
    /// Number of parties n.
    #[arg(long, short = 'n', default_value_t = 3)]
    pub parties: u16,
}

/// What a command prints on success.
#[derive(Debug, Clone)]
pub struct Output {
    /// Printed on stdout without `--json`.
    pub text: String,
    /// Printed on stdout with `--json`.
    pub json: Value,
}

/// Shared context of a command.
#[derive(Debug)]
pub struct Ctx {
    /// The party's data directory.
    pub dir: PartyDir,
    /// Identity file.
    pub identity_path: PathBuf,
    /// Relay URL.
    pub relay_url: String,
    /// Round timeout.
    pub timeout: Duration,
    /// No progress lines.
    pub quiet: bool,
}

impl Ctx {
    /// Builds the context from the global flags.
    pub fn from_cli(cli: &Cli) -> Self {
        let dir = PartyDir::new(&cli.dest, cli.party_id.as_deref());
        let identity_path = cli.identity.clone().unwrap_or_else(|| dir.identity_path());
        Self {
            dir,
            identity_path,
            relay_url: cli.relay_url.clone(),
            timeout: Duration::from_secs(cli.timeout_secs.max(1)),
            quiet: cli.quiet,
        }
    }
}

/// Runs one parsed command.
///
/// # Errors
/// The command's failure, classified by [`crate::error::ExitCode`].
pub fn dispatch(cli: Cli) -> CliResult<Output> {
    let ctx = Ctx::from_cli(&cli);
    match cli.command {
        Command::Identity(IdentityCmd::New { kind, force }) => {
            crate::local::identity_new(&ctx, kind, force)
        }
        Command::Identity(IdentityCmd::Show) => crate::local::identity_show(&ctx),
        Command::Setup(cmd) => match *cmd {
            SetupCmd::New(args) => crate::local::setup_new(&ctx, &args),
        },
        Command::Shares(SharesCmd::List) => crate::local::shares_list(&ctx),
        Command::Shares(SharesCmd::Show { key }) => crate::local::shares_show(&ctx, &key),
        Command::Derive(args) => crate::local::derive(&ctx, &args),
        Command::Keygen(args) => runtime()?.block_on(crate::runs::keygen(&ctx, &args)),
        Command::Sign(args) => runtime()?.block_on(crate::runs::sign(&ctx, &args)),
        Command::Presign(args) => runtime()?.block_on(crate::presign::presign(&ctx, &args)),
        Command::Refresh(args) => runtime()?.block_on(crate::lifecycle::reshare(&ctx, &args, true)),
        Command::Reshare(args) => {
            runtime()?.block_on(crate::lifecycle::reshare(&ctx, &args, false))
        }
        Command::Import(args) => runtime()?.block_on(crate::transfer::import(&ctx, &args)),
        Command::Export(args) => runtime()?.block_on(crate::transfer::export(&ctx, &args)),
        Command::Demo(args) => runtime()?.block_on(crate::demo::run(&args, cli.quiet)),
        Command::Relay { listen } => runtime()?.block_on(crate::relay::serve(listen)),
    }
}

fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the async runtime: {e}")))
}

/// Sets `key` in a JSON object (no-op on other values).
pub fn set_field(v: &mut Value, key: &str, value: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_owned(), value);
    }
}
