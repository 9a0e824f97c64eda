//! The arguments of the subcommands (clap), which the commands take.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use dkls23_core::hashing::{HashAlgorithm, prehash};

use crate::error::{CliError, CliResult, ExitCode};
use crate::files;

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

const MAX_MESSAGE_FILE: u64 = 64 * 1024 * 1024;

impl MessageArgs {
    /// The 32-byte prehash of the message, if one was given.
    ///
    /// # Errors
    /// Bad input for malformed hex, an unreadable file or a raw prehash that is not 32 bytes.
    pub fn prehash(&self) -> CliResult<Option<[u8; 32]>> {
        let message = match (&self.message_hex, &self.message_file) {
            (Some(h), _) => {
                let h = h.trim();
                hex::decode(h.strip_prefix("0x").unwrap_or(h)).map_err(|_| {
                    CliError::bad_input("--message-hex is not hex")
                        .hint("pass the message as hex digits")
                })?
            }
            (None, Some(path)) => files::read_bounded(path, MAX_MESSAGE_FILE, "message file")
                .map_err(|e| CliError { code: ExitCode::BadInput, ..e })?,
            (None, None) => return Ok(None),
        };
        prehash(self.hash, &message).map(Some).map_err(|e| {
            CliError::bad_input(e.to_string()).hint("with --hash none pass exactly 32 bytes")
        })
    }
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
