//! The hidden `relay` subcommand: runs `msg-relay-svc` in this process (tests and demos).

use std::net::SocketAddr;

use msg_relay_svc::{AppState, RelayConfig, run};
use serde_json::json;
use tokio::net::TcpListener;

use crate::error::{CliError, CliResult};
use crate::output::Output;

/// Serves a relay on `listen` until SIGINT/SIGTERM; prints `relay listening on http://ADDR`
/// on stdout as soon as it accepts connections.
///
/// # Errors
/// A relay error if binding fails.
pub async fn serve(listen: SocketAddr) -> CliResult<Output> {
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        CliError::new(crate::error::ExitCode::Relay, format!("cannot listen on {listen}: {e}"))
            .hint("pick a free address with --listen")
    })?;
    let addr = listener.local_addr().map_err(|e| CliError::internal(e.to_string()))?;
    let state =
        AppState::new(RelayConfig::default()).map_err(|e| CliError::internal(e.to_string()))?;
    println!("relay listening on http://{addr}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    run(listener, state, shutdown_signal())
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
