//! The hidden `relay` subcommand: runs `msg-relay-svc` in this process (tests and demos), with
//! its messages in memory or, given `--redis-url`, in Redis shared with other relays.

use std::net::SocketAddr;
use std::path::PathBuf;

use msg_relay_svc::{AppState, RelayConfig, run_tls};
use serde_json::json;
use tokio::net::TcpListener;

use crate::error::{CliError, CliResult};
use crate::output::Output;

/// Serves a relay on `listen` until SIGINT/SIGTERM, over TLS with `tls` (certificate and key
/// files); prints `relay listening on http(s)://ADDR` on stdout as soon as it accepts
/// connections.
///
/// # Errors
/// A relay error if binding fails; bad input if the certificate or key cannot be used.
pub async fn serve(
    listen: SocketAddr,
    tls: Option<(PathBuf, PathBuf)>,
    redis: Option<(String, String)>,
) -> CliResult<Output> {
    let tls = match tls {
        None => None,
        Some((cert, key)) => Some(
            dkls_tls::ServerTls::load(dkls_tls::ServerTlsFiles::new(cert, key))
                .map_err(|e| CliError::bad_input(e.to_string()))?,
        ),
    };
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        CliError::new(crate::error::ExitCode::Relay, format!("cannot listen on {listen}: {e}"))
            .hint("pick a free address with --listen")
    })?;
    let addr = listener.local_addr().map_err(|e| CliError::internal(e.to_string()))?;
    let state = match redis {
        None => AppState::new(RelayConfig::default()),
        Some((url, prefix)) => {
            let config = RelayConfig::default();
            let store = msg_relay_svc::redis_store::RedisStore::connect(
                msg_relay_svc::redis_store::RedisConfig {
                    url,
                    prefix,
                    quotas: config.limits.quotas(),
                },
            )
            .await
            .map_err(|e| {
                CliError::new(crate::error::ExitCode::Relay, format!("cannot use Redis: {e}"))
            })?;
            AppState::with_store(std::sync::Arc::new(store), config)
        }
    }
    .map_err(|e| CliError::internal(e.to_string()))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("relay listening on {scheme}://{addr}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    run_tls(listener, state, tls, shutdown_signal())
        .await
        .map_err(|e| CliError::internal(format!("relay stopped: {e}")))?;
    Ok(Output { text: String::new(), json: json!({"ok": true}) })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
