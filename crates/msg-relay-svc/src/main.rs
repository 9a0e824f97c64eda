//! `msg-relay-svc`: the relay binary (a thin shell over the library).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use msg_relay_client::ClientTls;
use msg_relay_client::PeerToken;
use msg_relay_svc::{AppState, Limits, RelayConfig, run_tls};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How often the TLS files are checked for a change.
const TLS_POLL: Duration = Duration::from_secs(10);

/// Message relay for threshold-ECDSA parties: stores and forwards opaque messages by id.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Addresses to listen on (repeatable; LISTEN holds a space-separated list).
    #[arg(
        long = "listen",
        env = "LISTEN",
        value_delimiter = ' ',
        default_value = "127.0.0.1:8080"
    )]
    listen: Vec<SocketAddr>,

    /// Peer relay URL, e.g. http://10.0.0.2:8080 (repeatable; RELAY_PEERS holds a
    /// space-separated list). Asks this relay cannot answer are forwarded there.
    #[arg(long = "peer", env = "RELAY_PEERS", value_delimiter = ' ')]
    peers: Vec<String>,

    /// File holding the secret peer relays share (one line of visible ASCII). Required with
    /// --peer; forwarded asks are accepted only from clients presenting it. RELAY_PEER_TOKEN
    /// may hold the secret itself instead.
    #[arg(long, env = "RELAY_PEER_TOKEN_FILE")]
    peer_token_file: Option<std::path::PathBuf>,

    /// Largest message payload in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_message_bytes: usize,

    /// Longest message TTL in seconds (also the longest time an unanswered ask is held).
    #[arg(long, default_value_t = 3600)]
    max_ttl_secs: u64,

    /// Bytes the relay may hold in total (payloads plus 64 bytes per message).
    #[arg(long, default_value_t = 1024 * 1024 * 1024)]
    max_total_bytes: u64,

    /// Bytes the messages of one WebSocket connection may hold.
    #[arg(long, default_value_t = 128 * 1024 * 1024)]
    max_bytes_per_conn: u64,

    /// Bytes the messages of one client address may hold (all its connections and HTTP
    /// requests); keeps one client from filling the relay.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    max_bytes_per_address: u64,

    /// Open connections from one client address.
    #[arg(long, default_value_t = 256)]
    max_connections_per_address: usize,

    /// Outstanding asks per WebSocket connection.
    #[arg(long, default_value_t = 1024)]
    max_asks_per_conn: usize,

    /// Outstanding forwarded asks per connection (peer relays funnel many asks through one).
    #[arg(long, default_value_t = 16 * 1024)]
    max_forwarded_asks_per_conn: usize,

    /// Longest HTTP long-poll in seconds.
    #[arg(long, default_value_t = 30)]
    max_poll_secs: u64,

    /// HTTP long-polls waiting at once.
    #[arg(long, default_value_t = 10_000)]
    max_http_waiters: usize,

    /// Origin allowed by CORS (repeatable); none allows any origin.
    #[arg(long = "cors-origin")]
    cors_origins: Vec<String>,
    /// Open HTTP/WebSocket connections being served at once (more wait in the backlog).
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Seconds to receive a request's headers before the connection is closed.
    #[arg(long, default_value_t = 10)]
    header_read_timeout_secs: u64,

    /// PEM certificate chain to serve TLS with (with --tls-key). Without both, the relay
    /// speaks plain HTTP/WebSocket. The files are reloaded on SIGHUP and when they change.
    #[arg(long, env = "TLS_CERT_FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "TLS_KEY_FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Serve plain HTTP/WebSocket on addresses other than loopback (behind a TLS-terminating
    /// proxy). Without TLS and without this flag, only loopback listen addresses are accepted.
    #[arg(long, env = "RELAY_ALLOW_PLAINTEXT")]
    allow_plaintext: bool,
    /// Extra PEM CA certificates trusted for https:// peer relays (besides the public roots).
    #[arg(long, env = "RELAY_PEER_CA_FILE")]
    peer_ca_file: Option<std::path::PathBuf>,
    /// Keep messages in Redis, shared by every relay process given the same URL and prefix
    /// (replicas behind one load balancer), instead of this process's memory:
    /// redis://[:password@]host:port[/db]. Prefer the environment variable (a password on the
    /// command line is visible to other users). Limits then count what all replicas hold.
    #[arg(long, env = "RELAY_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Prefix of the relay's Redis keys (replicas of one relay share it).
    #[arg(long, env = "RELAY_REDIS_PREFIX", default_value = "msg-relay:")]
    redis_prefix: String,
    /// Log output format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat) -> anyhow::Result<()> {
    let filter: Targets = std::env::var("RUST_LOG")
        .unwrap_or_else(|_| "info".to_owned())
        .parse()
        .context("RUST_LOG is not a valid target filter")?;
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => {
            use std::io::IsTerminal;
            let ansi = std::io::stderr().is_terminal();
            registry.with(tracing_subscriber::fmt::layer().with_ansi(ansi)).try_init()?
        }
        LogFormat::Json => registry.with(tracing_subscriber::fmt::layer().json()).try_init()?,
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("SIGINT received"),
        () = term => info!("SIGTERM received"),
    }
}

/// The peer token from `file`, else from `RELAY_PEER_TOKEN`; `None` when neither is set.
fn peer_token(file: Option<&std::path::Path>) -> anyhow::Result<Option<PeerToken>> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the peer token file {}", path.display()))?,
        None => match std::env::var("RELAY_PEER_TOKEN") {
            Ok(text) => text,
            Err(_) => return Ok(None),
        },
    };
    let token = PeerToken::new(text.trim())
        .context("the peer token must be a non-empty line of visible ASCII characters")?;
    Ok(Some(token))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format)?;

    let max_ttl = Duration::from_secs(args.max_ttl_secs);
    let config = RelayConfig {
        limits: Limits {
            max_message_bytes: args.max_message_bytes,
            max_ttl,
            max_total_bytes: args.max_total_bytes,
            max_bytes_per_connection: args.max_bytes_per_conn,
            max_bytes_per_address: args.max_bytes_per_address,
            max_asks_per_connection: args.max_asks_per_conn,
            max_forwarded_asks_per_connection: args.max_forwarded_asks_per_conn,
            max_wait: max_ttl,
            max_poll: Duration::from_secs(args.max_poll_secs),
            max_http_waiters: args.max_http_waiters,
        },
        peers: args.peers.into_iter().filter(|p| !p.is_empty()).collect(),
        peer_token: peer_token(args.peer_token_file.as_deref())?,
        cors_origins: args.cors_origins,
        serve: msg_relay_svc::serve::ServeLimits {
            max_connections: args.max_connections,
            header_read_timeout: Duration::from_secs(args.header_read_timeout_secs),
            max_connections_per_address: args.max_connections_per_address,
        },
        peer_tls: match &args.peer_ca_file {
            Some(path) => Some(ClientTls::builder().ca_file(path)?.build()?),
            None => None,
        },
        ..RelayConfig::default()
    };
    if args.tls_cert.is_none()
        && !args.allow_plaintext
        && let Some(open) = args.listen.iter().find(|a| !a.ip().is_loopback())
    {
        anyhow::bail!(
            "--listen {open} is reachable from the network but no TLS is configured: give \
             --tls-cert and --tls-key, or --allow-plaintext when a TLS proxy terminates in front"
        );
    }
    let state = match &args.redis_url {
        Some(url) => {
            let store = msg_relay_svc::redis_store::RedisStore::connect(
                msg_relay_svc::redis_store::RedisConfig {
                    url: url.clone(),
                    prefix: args.redis_prefix.clone(),
                    quotas: config.limits.quotas(),
                },
            )
            .await
            .context("cannot use the Redis message store")?;
            AppState::with_store(std::sync::Arc::new(store), config)
        }
        None => AppState::new(config),
    }
    .context("invalid relay configuration")?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            Some(dkls_tls::ServerTls::load(dkls_tls::ServerTlsFiles::new(cert, key))?)
        }
        _ => None,
    };
    // Renewed certificates are picked up without a restart.
    let _watch = tls.as_ref().map(|tls| tls.watch(TLS_POLL));

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for addr in &args.listen {
        let listener =
            TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let mut stop = stop_rx.clone();
        servers.spawn(run_tls(listener, state.clone(), tls.clone(), async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
    }

    tokio::select! {
        () = shutdown_signal() => {}
        Some(ended) = servers.join_next() => {
            // A listener failed on its own: stop the others too and report it.
            stop_tx.send_replace(true);
            ended.context("server task failed")?.context("server failed")?;
        }
    }
    stop_tx.send_replace(true);
    while let Some(ended) = servers.join_next().await {
        ended.context("server task failed")?.context("server failed")?;
    }
    info!("relay stopped");
    Ok(())
}
