//! The relay over TLS: both clients exchange messages through it with certificates issued at
//! test time, and every misconfiguration fails fast with its cause instead of retrying until
//! the client gives up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dkls_tls::generate::{Issued, LocalCa, Usage, Validity};
use dkls_tls::{Pin, ServerTls, ServerTlsFiles};
use msg_relay_api::{Relay, RelayError};
use msg_relay_client::{ClientConfig, ClientTls, HttpRelay, WsRelay};
use msg_relay_svc::testing::{TestRelay, spawn_relay, spawn_relay_tls};

use crate::common::{TTL, round_id, small_config};
use crate::exchange::{PARTIES, ROUNDS, party};

/// Longer than any fast failure, far shorter than the clients' 60 s give-up.
const FAST: Duration = Duration::from_secs(5);

struct Pki {
    dir: tempfile::TempDir,
    ca: LocalCa,
}

impl Pki {
    fn new(name: &str) -> Self {
        Self { dir: tempfile::tempdir().unwrap(), ca: LocalCa::new(name).unwrap() }
    }

    fn issue(&self, names: &[&str], validity: Validity) -> (Issued, ServerTls) {
        let issued = self.ca.issue(names, Usage::Server, validity).unwrap();
        let stem = format!("server-{}", issued.fingerprint);
        let (cert, key) = issued.write(self.dir.path(), &stem).unwrap();
        (issued, ServerTls::load(ServerTlsFiles::new(cert, key)).unwrap())
    }

    fn client(&self) -> ClientConfig {
        let tls = ClientTls::builder()
            .public_roots(false)
            .ca_pem(self.ca.cert_pem().as_bytes())
            .unwrap()
            .build()
            .unwrap();
        ClientConfig { tls: Some(tls), ..ClientConfig::default() }
    }
}

async fn tls_relay(pki: &Pki, names: &[&str], validity: Validity) -> (Issued, TestRelay) {
    let (issued, tls) = pki.issue(names, validity);
    (issued, spawn_relay_tls(small_config(), tls).await.unwrap())
}

#[tokio::test]
async fn three_parties_exchange_over_wss_and_https() {
    let pki = Pki::new("relay CA");
    let (_, relay) = tls_relay(&pki, &["127.0.0.1"], Validity::Current).await;
    assert!(relay.url().starts_with("https://"), "{}", relay.url());
    let mut parties = Vec::new();
    for me in 0..PARTIES {
        let client: Arc<dyn Relay> = if me == 2 {
            Arc::new(HttpRelay::new(relay.url(), pki.client()).unwrap())
        } else {
            let url = relay.url().replace("https://", "wss://");
            Arc::new(WsRelay::connect(&url, pki.client()).await.unwrap())
        };
        parties.push(tokio::spawn(party(client, 1, me, 0..ROUNDS)));
    }
    for p in parties {
        tokio::time::timeout(Duration::from_secs(30), p).await.unwrap().unwrap();
    }
    relay.stop().await;
}

/// Connecting with `config` fails within [`FAST`] with a cause containing `expected`, for the
/// WebSocket client (connect, and a publish on a client made without waiting) and for HTTP.
async fn refused(url: &str, config: ClientConfig, expected: &str) {
    let started = Instant::now();
    let err = WsRelay::connect(url, config.clone()).await.unwrap_err();
    assert!(err.to_string().contains(expected), "ws connect: {err}");

    let ws = WsRelay::new(url, config.clone()).unwrap();
    let err = ws.publish(round_id(9, 0, 1, 0), TTL, b"x".to_vec()).await.unwrap_err();
    match &err {
        RelayError::Unavailable(why) => assert!(why.contains(expected), "ws publish: {why}"),
        other => panic!("ws publish: {other:?}"),
    }
    let err = ws.ask(round_id(9, 1, 0, 0)).await.unwrap_err();
    assert!(err.to_string().contains(expected), "ws ask: {err}");

    let http = HttpRelay::new(url, config).unwrap();
    let err = http.publish(round_id(9, 0, 1, 0), TTL, b"x".to_vec()).await.unwrap_err();
    assert!(err.to_string().contains(expected), "http publish: {err}");
    let err = http.ask(round_id(9, 1, 0, 0)).await.unwrap_err();
    assert!(err.to_string().contains(expected), "http ask: {err}");
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn an_untrusted_ca_is_refused_at_once_with_the_cause() {
    let pki = Pki::new("relay CA");
    let (_, relay) = tls_relay(&pki, &["127.0.0.1"], Validity::Current).await;
    let stranger = Pki::new("another CA");
    refused(relay.url(), stranger.client(), "not signed by a trusted CA").await;
    // The default configuration trusts only the public web PKI.
    refused(relay.url(), ClientConfig::default(), "not signed by a trusted CA").await;
    relay.stop().await;
}

#[tokio::test]
async fn an_expired_certificate_is_refused_at_once_with_the_cause() {
    let pki = Pki::new("relay CA");
    let (_, relay) = tls_relay(&pki, &["127.0.0.1"], Validity::Expired).await;
    refused(relay.url(), pki.client(), "has expired").await;
    relay.stop().await;
}

#[tokio::test]
async fn a_certificate_for_another_host_name_is_refused_at_once_with_the_cause() {
    let pki = Pki::new("relay CA");
    let (_, relay) = tls_relay(&pki, &["relay.example.org"], Validity::Current).await;
    refused(relay.url(), pki.client(), "not valid for the host name \"127.0.0.1\"").await;
    relay.stop().await;
}

#[tokio::test]
async fn a_pin_mismatch_is_refused_and_the_right_pin_connects() {
    let pki = Pki::new("relay CA");
    let (issued, relay) = tls_relay(&pki, &["127.0.0.1"], Validity::Current).await;
    let pinned = |pin: Pin| {
        let tls = ClientTls::builder()
            .public_roots(false)
            .ca_pem(pki.ca.cert_pem().as_bytes())
            .unwrap()
            .pin(pin)
            .build()
            .unwrap();
        ClientConfig { tls: Some(tls), ..ClientConfig::default() }
    };
    let wrong = pinned(Pin::Certificate(dkls_tls::Fingerprint::of(b"not this one")));
    refused(relay.url(), wrong, "does not match the configured pin").await;
    let ws = WsRelay::connect(relay.url(), pinned(Pin::Certificate(issued.fingerprint))).await;
    ws.unwrap().publish(round_id(8, 0, 1, 0), TTL, b"pinned".to_vec()).await.unwrap();
    relay.stop().await;
}

#[tokio::test]
async fn plaintext_to_the_tls_port_and_tls_to_the_plain_port_are_named() {
    let pki = Pki::new("relay CA");
    let (_, relay) = tls_relay(&pki, &["127.0.0.1"], Validity::Current).await;
    let plain_url = relay.url().replace("https://", "http://");
    // The HTTP client reads the relay's JSON answer; the WebSocket client its failed upgrade.
    let started = Instant::now();
    let err = WsRelay::connect(&plain_url, ClientConfig::default()).await.unwrap_err();
    assert!(err.to_string().contains("speaks TLS on this port"), "{err}");
    let http = HttpRelay::new(&plain_url, ClientConfig::default()).unwrap();
    let err = http.publish(round_id(9, 0, 1, 0), TTL, b"x".to_vec()).await.unwrap_err();
    assert!(err.to_string().contains("this port speaks TLS"), "{err}");
    assert!(started.elapsed() < FAST);
    relay.stop().await;

    let plain = spawn_relay(small_config()).await.unwrap();
    let tls_url = plain.url().replace("http://", "https://");
    refused(&tls_url, pki.client(), "does not speak TLS on this port").await;
    plain.stop().await;
}

/// The `msg-relay-svc` binary: serves TLS from the files given on the command line, reloads a
/// renewed certificate on SIGHUP, and refuses to serve plaintext to the network by accident.
#[cfg(unix)]
#[tokio::test]
async fn the_binary_serves_tls_reloads_on_sighup_and_refuses_exposed_plaintext() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};

    let bin = env!("CARGO_BIN_EXE_msg-relay-svc");
    let refused = Command::new(bin).args(["--listen", "0.0.0.0:0"]).output().unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("reachable from the network but no TLS is configured"), "{stderr}");

    let pki = Pki::new("relay CA");
    let first = pki.ca.issue(&["127.0.0.1"], Usage::Server, Validity::Current).unwrap();
    let (cert, key) = first.write(pki.dir.path(), "relay").unwrap();
    let child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    // The relay logs to standard output.
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let next_line_with = async |lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
                                s: &str| {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let line = lines.recv().await.expect("the relay exited");
                if line.contains(s) {
                    return line;
                }
            }
        })
        .await
        .unwrap()
    };
    let listening = next_line_with(&mut lines, "relay listening (TLS)").await;
    let addr =
        listening.split_whitespace().find_map(|w| w.strip_prefix("addr=")).unwrap().to_owned();
    assert!(listening.contains(&first.fingerprint.to_string()), "{listening}");
    let url = format!("https://{addr}");
    let pinned = |f: dkls_tls::Fingerprint| {
        let tls = ClientTls::builder()
            .public_roots(false)
            .ca_pem(pki.ca.cert_pem().as_bytes())
            .unwrap()
            .pin(Pin::Certificate(f))
            .build()
            .unwrap();
        ClientConfig { tls: Some(tls), ..ClientConfig::default() }
    };
    let ws = WsRelay::connect(&url, pinned(first.fingerprint)).await.unwrap();
    ws.publish(round_id(7, 0, 1, 0), TTL, b"before".to_vec()).await.unwrap();

    // Renew the certificate in place and tell the relay.
    let second = pki.ca.issue(&["127.0.0.1"], Usage::Server, Validity::Current).unwrap();
    second.write(pki.dir.path(), "relay").unwrap();
    let pid = i32::try_from(child.0.id()).unwrap();
    assert_eq!(unsafe_free_kill(pid, "HUP"), 0);
    let reloaded = next_line_with(&mut lines, "TLS certificate reloaded").await;
    assert!(reloaded.contains(&second.fingerprint.to_string()), "{reloaded}");
    // New connections get the new certificate; the open one keeps working.
    let renewed = WsRelay::connect(&url, pinned(second.fingerprint)).await.unwrap();
    assert_eq!(renewed.ask(round_id(7, 0, 1, 0)).await.unwrap(), b"before");
    ws.publish(round_id(7, 0, 1, 1), TTL, b"after".to_vec()).await.unwrap();
    let err = WsRelay::connect(&url, pinned(first.fingerprint)).await.unwrap_err();
    assert!(err.to_string().contains("does not match the configured pin"), "{err}");

    drop(child);
}

/// A child process killed when the test ends, also when it fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `kill -<signal> <pid>` (the tests use no `unsafe` and no libc binding).
#[cfg(unix)]
fn unsafe_free_kill(pid: i32, signal: &str) -> i32 {
    let status =
        std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
    status.map_or(-1, |s| s.code().unwrap_or(-1))
}
