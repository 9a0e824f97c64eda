//! `mpc-node`: run a node from a TOML file, or `mpc-node dev` for a local three-node cluster.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use mpc_node::{config, dev, server};

#[derive(Parser, Debug)]
#[command(name = "mpc-node", version, about = "MPC node service (DKLs23 threshold ECDSA)")]
struct Cli {
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text", env = "MPC_NODE_LOG_FORMAT")]
    log_format: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a node.
    Run {
        /// The configuration file.
        #[arg(long, short, env = "MPC_NODE_CONFIG")]
        config: PathBuf,
    },
    /// Start a relay and three nodes in this process (local development) and print curl examples.
    Dev {
        /// Directory for configuration, identities and SQLite files.
        #[arg(long, default_value = "mpc-dev")]
        dir: PathBuf,
        /// Relay port; node i listens on port + i.
        #[arg(long, default_value_t = 8700)]
        port: u16,
        /// Serve the relay and the nodes over TLS, with a local CA and certificate generated in
        /// <dir>/tls (clients trust <dir>/tls/ca.pem).
        #[arg(long)]
        tls: bool,
        /// Announce the dev application's asynchronous operations to this URL (signed with the
        /// secret in <dir>/webhook-secret).
        #[arg(long)]
        webhook: Option<String>,
    },
    /// Print the SHA-256 of an API key, as written in [[api_keys]].sha256.
    HashApiKey {
        /// The API key.
        key: String,
    },
    /// Print a fresh Ed25519 identity key (for node.identity_key) and its public key.
    GenIdentity,
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCmd {
    /// Check an audit log: every record numbered in turn, chained to the one before by hash and
    /// signed by the node's identity key. Exits 0 and prints the count and the last record's
    /// hash (keep it elsewhere to detect records cut off the end), or exits 1 naming the first
    /// bad line.
    Verify {
        /// The audit log file (`audit_log` in the configuration).
        file: PathBuf,
        /// The node's identity public key (`ed25519:<hex>` or `p256:<hex>`, as `gen-identity`
        /// prints it) that must have signed every record; without it each record is checked
        /// against the signer it names.
        #[arg(long)]
        public_key: Option<String>,
    },
}

fn init_logs(format: &str, level: tracing_subscriber::filter::LevelFilter) {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in files or pipes.
        .with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::HashApiKey { key } => {
            println!("{}", config::hash_api_key(&key));
            Ok(())
        }
        Cmd::GenIdentity => {
            use dkls23_core::identity::IdentitySigner;
            let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
            let private = config::NodeIdentity::generate_ed25519_string(&mut rng);
            let public =
                config::NodeIdentity::parse(&private).map_err(|e| anyhow::anyhow!(e))?.public_key();
            println!("identity_key = \"{private}\"\npublic_key   = \"{public}\"");
            Ok(())
        }
        Cmd::Audit { cmd: AuditCmd::Verify { file, public_key } } => {
            let expected = match public_key.as_deref().map(str::parse) {
                None => None,
                Some(Ok(key)) => Some(key),
                Some(Err(e)) => {
                    eprintln!("--public-key: {e}");
                    std::process::exit(2);
                }
            };
            match mpc_node::audit::verify(&file, expected.as_ref()) {
                Ok(v) => {
                    println!(
                        "{}: {} records verify; last hash {}; signed by {}",
                        file.display(),
                        v.records,
                        v.last_hash,
                        if v.signers.is_empty() {
                            "nobody yet".into()
                        } else {
                            v.signers.join(", ")
                        }
                    );
                    Ok(())
                }
                Err(e) => {
                    eprintln!("{}: does not verify: {e}", file.display());
                    std::process::exit(1);
                }
            }
        }
        Cmd::Run { config: path } => {
            init_logs(&cli.log_format, tracing_subscriber::filter::LevelFilter::INFO);
            let cfg = match config::load(&path, &config::process_env) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(2);
                }
            };
            let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
            let node = match mpc_node::Node::open(cfg).await {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(2);
                }
            };
            server::run(listener, node, shutdown_signal()).await?;
            Ok(())
        }
        Cmd::Dev { dir, port, tls, webhook } => {
            // Warnings only, so that the printed examples are not interleaved with request logs.
            init_logs(&cli.log_format, tracing_subscriber::filter::LevelFilter::WARN);
            let options = dev::DevOptions { dir, port, session_timeout_secs: 30, tls, webhook };
            let cluster = dev::start(&options).await?;
            println!("\nmpc-node dev: relay and three nodes are running (Ctrl-C to stop)\n");
            println!("{}", cluster.curl_examples());
            if let Some(url) = &options.webhook {
                let secret = options.dir.join(dev::WEBHOOK_SECRET_FILE);
                println!("webhook: {url} (HMAC secret in {})", secret.display());
            }
            shutdown_signal().await;
            cluster.stop().await;
            Ok(())
        }
    }
}
