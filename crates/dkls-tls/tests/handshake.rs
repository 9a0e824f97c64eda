//! Real handshakes on loopback with certificates issued at test time: what works, and the error
//! each misconfiguration produces.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dkls_tls::generate::{Issued, LocalCa, Usage, Validity};
use dkls_tls::{
    Accepted, ClientAuth, ClientTls, Failure, Fingerprint, Pin, ServerTls, ServerTlsFiles, TlsError,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const LOOPBACK: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
const TIMEOUT: Duration = Duration::from_secs(10);

struct Pki {
    dir: tempfile::TempDir,
    ca: LocalCa,
    ca_file: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::new(name).unwrap();
        let ca_file = dir.path().join("ca.pem");
        ca.write_cert(&ca_file).unwrap();
        Self { dir, ca, ca_file }
    }

    fn server(&self, stem: &str, validity: Validity) -> (Issued, ServerTlsFiles) {
        let issued = self.ca.issue(&LOOPBACK, Usage::Server, validity).unwrap();
        let (cert, key) = issued.write(self.dir.path(), stem).unwrap();
        (issued, ServerTlsFiles::new(cert, key))
    }
}

/// A TLS echo server; every accept result goes to the channel.
async fn serve(
    tls: ServerTls,
) -> (SocketAddr, mpsc::UnboundedReceiver<Result<Option<Fingerprint>, TlsError>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else { return };
            let tls = tls.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tls.accept(tcp, peer, TIMEOUT).await {
                    Ok(Accepted { mut stream, client_certificate }) => {
                        let _ = tx.send(Ok(client_certificate));
                        let mut buf = [0u8; 64];
                        while let Ok(n) = stream.read(&mut buf).await {
                            if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn connect(client: &ClientTls, addr: SocketAddr, host: &str) -> Result<(), TlsError> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut stream = client.connect(tcp, host, &addr.to_string()).await?;
    stream.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).await.map_err(|e| TlsError::Handshake {
        peer: addr.to_string(),
        failure: Failure::from_stream_error(&e, host).unwrap_or(Failure::Io(e.to_string())),
    })?;
    assert_eq!(&buf, b"ping");
    Ok(())
}

fn trusting(pki: &Pki) -> ClientTls {
    ClientTls::builder().public_roots(false).ca_file(&pki.ca_file).unwrap().build().unwrap()
}

#[tokio::test]
async fn a_client_trusting_the_ca_talks_to_the_server() {
    let pki = Pki::new("test CA");
    let (issued, files) = pki.server("server", Validity::Current);
    let tls = ServerTls::load(files).unwrap();
    assert_eq!(tls.certificate(), issued.fingerprint);
    let (addr, mut accepted) = serve(tls).await;
    for host in ["localhost", "127.0.0.1"] {
        connect(&trusting(&pki), addr, host).await.unwrap();
        assert_eq!(accepted.recv().await.unwrap().unwrap(), None);
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_an_untrusted_issuer() {
    let pki = Pki::new("test CA");
    let (_, files) = pki.server("server", Validity::Current);
    let (addr, _) = serve(ServerTls::load(files).unwrap()).await;
    // Another CA, by name and key; and an impostor with the same name as the trusted one.
    for other in [Pki::new("other CA"), Pki::new("test CA")] {
        let err = connect(&trusting(&other), addr, "localhost").await.unwrap_err();
        assert_eq!(err.failure(), Some(&Failure::UntrustedIssuer), "{err}");
        assert!(err.is_permanent());
        assert!(err.to_string().contains("not signed by a trusted CA"), "{err}");
    }
    // The bundled public roots do not know a private CA either.
    let err = connect(&ClientTls::public_roots().unwrap(), addr, "localhost").await.unwrap_err();
    assert_eq!(err.failure(), Some(&Failure::UntrustedIssuer), "{err}");
}

#[tokio::test]
async fn an_expired_certificate_is_reported_as_expired() {
    let pki = Pki::new("test CA");
    let (_, files) = pki.server("old", Validity::Expired);
    let (addr, _) = serve(ServerTls::load(files).unwrap()).await;
    let err = connect(&trusting(&pki), addr, "localhost").await.unwrap_err();
    assert!(matches!(err.failure(), Some(Failure::Expired(_))), "{err}");
    assert!(err.to_string().contains("has expired"), "{err}");

    let (_, files) = pki.server("future", Validity::NotYetValid);
    let (addr, _) = serve(ServerTls::load(files).unwrap()).await;
    let err = connect(&trusting(&pki), addr, "localhost").await.unwrap_err();
    assert!(matches!(err.failure(), Some(Failure::NotValidYet(_))), "{err}");
}

#[tokio::test]
async fn a_certificate_for_other_names_is_a_wrong_host_name() {
    let pki = Pki::new("test CA");
    let (_, files) = pki.server("server", Validity::Current);
    let (addr, _) = serve(ServerTls::load(files).unwrap()).await;
    let err = connect(&trusting(&pki), addr, "relay.example.org").await.unwrap_err();
    match err.failure() {
        Some(Failure::WrongName { expected, .. }) => assert_eq!(expected, "relay.example.org"),
        other => panic!("{other:?}: {err}"),
    }
    assert!(err.to_string().contains("not valid for the host name \"relay.example.org\""), "{err}");
}

#[tokio::test]
async fn plaintext_http_to_the_tls_port_gets_a_json_400() {
    let pki = Pki::new("test CA");
    let (_, files) = pki.server("server", Validity::Current);
    let (addr, mut accepted) = serve(ServerTls::load(files).unwrap()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /v1/health HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"code\":\"tls_required\""), "{answer}");
    let err = accepted.recv().await.unwrap().unwrap_err();
    assert_eq!(err.failure(), Some(&Failure::PlaintextClient), "{err}");
}

#[tokio::test]
async fn a_tls_client_on_a_plaintext_port_is_told_so() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // What an HTTP server answers to bytes it cannot parse.
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 512];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
    });
    let pki = Pki::new("test CA");
    let err = connect(&trusting(&pki), addr, "localhost").await.unwrap_err();
    assert_eq!(err.failure(), Some(&Failure::NotTls), "{err}");
    assert!(err.to_string().contains("does not speak TLS"), "{err}");
}

#[tokio::test]
async fn pins_accept_the_pinned_server_and_reject_another() {
    let pki = Pki::new("test CA");
    let (issued, files) = pki.server("server", Validity::Current);
    let (addr, _) = serve(ServerTls::load(files).unwrap()).await;

    let by_cert = ClientTls::builder()
        .public_roots(false)
        .ca_file(&pki.ca_file)
        .unwrap()
        .pin(Pin::Certificate(issued.fingerprint))
        .build()
        .unwrap();
    connect(&by_cert, addr, "localhost").await.unwrap();

    let wrong = ClientTls::builder()
        .public_roots(false)
        .ca_file(&pki.ca_file)
        .unwrap()
        .pin(Pin::PublicKey(Fingerprint::of(b"another key")))
        .build()
        .unwrap();
    let err = connect(&wrong, addr, "localhost").await.unwrap_err();
    match err.failure() {
        Some(Failure::PinMismatch { cert, .. }) => assert_eq!(*cert, issued.fingerprint),
        other => panic!("{other:?}: {err}"),
    }
    assert!(err.to_string().contains("does not match the configured pin"), "{err}");
    // The key pin printed in the error is the one to configure.
    let Some(Failure::PinMismatch { key, .. }) = err.failure() else { unreachable!() };
    let by_key = ClientTls::builder()
        .public_roots(false)
        .ca_file(&pki.ca_file)
        .unwrap()
        .pin(Pin::PublicKey(*key))
        .build()
        .unwrap();
    connect(&by_key, addr, "localhost").await.unwrap();
}

#[tokio::test]
async fn client_certificates_are_required_verified_and_reported() {
    let pki = Pki::new("test CA");
    let (_, mut files) = pki.server("server", Validity::Current);
    let client_ca = Pki::new("client CA");
    files.client_ca = Some(client_ca.ca_file.clone());
    files.client_auth = ClientAuth::Required;
    let (addr, mut accepted) = serve(ServerTls::load(files.clone()).unwrap()).await;

    // No certificate.
    let err = connect(&trusting(&pki), addr, "localhost").await.unwrap_err();
    assert_eq!(err.failure(), Some(&Failure::ClientCertificateRequired), "{err}");
    assert!(accepted.recv().await.unwrap().is_err());

    // A certificate from the client CA: accepted, and the server sees which one.
    let app = client_ca.ca.issue(&["app-1"], Usage::Client, Validity::Current).unwrap();
    let with_cert = ClientTls::builder()
        .public_roots(false)
        .ca_file(&pki.ca_file)
        .unwrap()
        .client_identity_pem(app.cert_pem.as_bytes(), app.key_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    connect(&with_cert, addr, "localhost").await.unwrap();
    assert_eq!(accepted.recv().await.unwrap().unwrap(), Some(app.fingerprint));

    // A certificate from another CA is rejected.
    let stranger = pki.ca.issue(&["app-2"], Usage::Client, Validity::Current).unwrap();
    let with_other = ClientTls::builder()
        .public_roots(false)
        .ca_file(&pki.ca_file)
        .unwrap()
        .client_identity_pem(stranger.cert_pem.as_bytes(), stranger.key_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let err = connect(&with_other, addr, "localhost").await.unwrap_err();
    assert!(matches!(err.failure(), Some(Failure::ClientCertificateRejected(_))), "{err}");

    // Optional: a client without a certificate is let in, one with a certificate is identified.
    files.client_auth = ClientAuth::Optional;
    let (addr, mut accepted) = serve(ServerTls::load(files).unwrap()).await;
    connect(&trusting(&pki), addr, "localhost").await.unwrap();
    assert_eq!(accepted.recv().await.unwrap().unwrap(), None);
    connect(&with_cert, addr, "localhost").await.unwrap();
    assert_eq!(accepted.recv().await.unwrap().unwrap(), Some(app.fingerprint));
}

#[tokio::test]
async fn asking_for_client_certificates_without_a_client_ca_is_a_configuration_error() {
    let pki = Pki::new("test CA");
    let (_, mut files) = pki.server("server", Validity::Current);
    files.client_auth = ClientAuth::Required;
    let err = ServerTls::load(files).unwrap_err();
    assert!(err.to_string().contains("no client CA file"), "{err}");
}

#[tokio::test]
async fn a_replaced_certificate_is_served_after_a_reload_and_a_broken_one_is_not() {
    let pki = Pki::new("test CA");
    let (first, files) = pki.server("server", Validity::Current);
    let tls = ServerTls::load(files.clone()).unwrap();
    let (addr, _) = serve(tls.clone()).await;
    let pinned = |f: Fingerprint| {
        ClientTls::builder()
            .public_roots(false)
            .ca_file(&pki.ca_file)
            .unwrap()
            .pin(Pin::Certificate(f))
            .build()
            .unwrap()
    };
    connect(&pinned(first.fingerprint), addr, "localhost").await.unwrap();

    // A broken key file: the reload fails, naming the file, and the old certificate stays.
    std::fs::write(&files.key, "not a key").unwrap();
    let err = tls.reload().unwrap_err();
    assert!(err.to_string().contains(&files.key.display().to_string()), "{err}");
    assert_eq!(tls.certificate(), first.fingerprint);
    connect(&pinned(first.fingerprint), addr, "localhost").await.unwrap();

    // The renewed pair, picked up by the watcher without a signal.
    let watcher = tls.watch(Duration::from_millis(50));
    // Modification times have a coarse granularity on some file systems.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (second, _) = pki.server("server", Validity::Current);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while tls.certificate() != second.fingerprint {
        assert!(tokio::time::Instant::now() < deadline, "the watcher did not reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    connect(&pinned(second.fingerprint), addr, "localhost").await.unwrap();
    let err = connect(&pinned(first.fingerprint), addr, "localhost").await.unwrap_err();
    assert!(matches!(err.failure(), Some(Failure::PinMismatch { .. })), "{err}");
    drop(watcher);
}
