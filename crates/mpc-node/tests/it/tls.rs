//! The SDK API over TLS with client certificates (mTLS) that stand for an application, like an
//! API key; the node reaching a TLS relay through `[relay_tls]`; and the configuration errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dkls_tls::generate::{Issued, LocalCa, Usage, Validity};
use mpc_node::server::RunningNode;
use mpc_node_client::api::{GenerateKeyRequest, SessionConfig};
use mpc_node_client::{Client, ClientError};
use msg_relay_client::ClientTls;
use msg_relay_svc::testing::spawn_relay_tls;

use crate::common::*;

struct Pki {
    dir: tempfile::TempDir,
    server_ca: LocalCa,
    client_ca: LocalCa,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = Self {
            dir,
            server_ca: LocalCa::new("server CA").unwrap(),
            client_ca: LocalCa::new("client CA").unwrap(),
        };
        pki.server_ca.write_cert(&pki.path("server-ca.pem")).unwrap();
        pki.client_ca.write_cert(&pki.path("client-ca.pem")).unwrap();
        let server = pki.server_ca.issue(&["127.0.0.1"], Usage::Server, Validity::Current).unwrap();
        server.write(pki.dir.path(), "server").unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn app_certificate(&self, name: &str) -> Issued {
        self.client_ca.issue(&[name], Usage::Client, Validity::Current).unwrap()
    }

    /// Trusts the server CA, presents `identity` when given.
    fn client_tls(&self, identity: Option<&Issued>) -> ClientTls {
        let mut builder =
            ClientTls::builder().public_roots(false).ca_file(self.path("server-ca.pem")).unwrap();
        if let Some(id) = identity {
            builder =
                builder.client_identity_pem(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap();
        }
        builder.build().unwrap()
    }

    fn node_toml(
        &self,
        spec: &NodeSpec,
        relay_url: &str,
        auth: &str,
        certs: &[(&str, &Issued)],
    ) -> String {
        let mut t = spec.toml(relay_url);
        let p = |n: &str| self.path(n).display().to_string();
        t.push_str(&format!(
            "\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\n\
             client_auth = \"{auth}\"\n",
            p("server.pem"),
            p("server.key"),
            p("client-ca.pem")
        ));
        t.push_str(&format!(
            "\n[relay_tls]\nca_file = \"{}\"\npublic_roots = false\n",
            p("server-ca.pem")
        ));
        for (app, cert) in certs {
            t.push_str(&format!(
                "\n[[client_certs]]\napp = \"{app}\"\nsha256 = \"{}\"\n",
                cert.fingerprint
            ));
        }
        t
    }
}

async fn start(toml: &str) -> RunningNode {
    let cfg = mpc_node::config::parse(toml, Path::new("."), &|_| None).unwrap();
    RunningNode::start(cfg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_acts_for_its_application_on_every_node() {
    let pki = Pki::new();
    let relay_tls = dkls_tls::ServerTls::load(dkls_tls::ServerTlsFiles::new(
        pki.path("server.pem"),
        pki.path("server.key"),
    ))
    .unwrap();
    let relay = spawn_relay_tls(Default::default(), relay_tls).await.unwrap();
    let wallet = pki.app_certificate("wallet");
    let unlisted = pki.app_certificate("stranger");
    let mut nodes = Vec::new();
    for i in 1..=2 {
        let toml =
            pki.node_toml(&NodeSpec::new(i, 2), relay.url(), "optional", &[("app-a", &wallet)]);
        nodes.push(start(&toml).await);
    }
    // No API key: the certificate authenticates as app-a on both nodes.
    let by_cert: Vec<Client> = nodes
        .iter()
        .map(|n| {
            assert!(n.url().starts_with("https://"));
            Client::new(&n.url(), "").unwrap().with_tls(pki.client_tls(Some(&wallet))).unwrap()
        })
        .collect();
    let req = GenerateKeyRequest {
        key_id: Some("cert-key".into()),
        threshold: 2,
        curve: "secp256k1".into(),
        session: SessionConfig {
            session_id: random_sid(),
            players: vec![1, 2],
            public_keys: BTreeMap::new(),
        },
    };
    let infos = futures_join_all(by_cert.iter().map(|c| c.generate_key(&req))).await;
    for info in infos {
        info.unwrap();
    }
    // The key belongs to app-a: app-a's API key sees it, app-b's does not.
    let with_key = |app: &str| {
        Client::new(&nodes[0].url(), &api_key(app, 1))
            .unwrap()
            .with_tls(pki.client_tls(None))
            .unwrap()
    };
    assert_eq!(with_key("app-a").get_key("cert-key").await.unwrap().key_id, "cert-key");
    assert_eq!(with_key("app-b").get_key("cert-key").await.unwrap_err().status(), Some(404));
    // A certificate of the client CA that no [[client_certs]] lists, and no credential at all.
    let unlisted_client = Client::new(&nodes[0].url(), "")
        .unwrap()
        .with_tls(pki.client_tls(Some(&unlisted)))
        .unwrap();
    assert_eq!(unlisted_client.list_keys().await.unwrap_err().status(), Some(401));
    let anonymous =
        Client::new(&nodes[0].url(), "").unwrap().with_tls(pki.client_tls(None)).unwrap();
    assert_eq!(anonymous.list_keys().await.unwrap_err().status(), Some(401));
    for n in nodes {
        n.stop().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_required_client_certificate_is_asked_for_by_name() {
    let pki = Pki::new();
    let wallet = pki.app_certificate("wallet");
    let toml = pki.node_toml(
        &NodeSpec::new(1, 1),
        "http://127.0.0.1:9",
        "required",
        &[("app-a", &wallet)],
    );
    let node = start(&toml).await;
    let without = Client::new(&node.url(), &api_key("app-a", 1))
        .unwrap()
        .with_tls(pki.client_tls(None))
        .unwrap()
        .with_timeout(Duration::from_secs(10));
    match without.list_keys().await {
        Err(ClientError::Tls(m)) => assert!(m.contains("requires a client certificate"), "{m}"),
        other => panic!("{other:?}"),
    }
    let with =
        Client::new(&node.url(), "").unwrap().with_tls(pki.client_tls(Some(&wallet))).unwrap();
    assert!(with.list_keys().await.unwrap().keys.is_empty());
    node.stop().await;
}

#[test]
fn tls_configuration_errors_name_the_file_or_setting() {
    let pki = Pki::new();
    let base = NodeSpec::new(1, 1).toml("http://127.0.0.1:9");
    let parse = |extra: &str| {
        mpc_node::config::parse(&format!("{base}{extra}"), Path::new("."), &|_| None)
            .unwrap_err()
            .to_string()
    };
    let err = parse(
        "\n[tls]\ncert_file = \"/nonexistent/node.pem\"\nkey_file = \"/nonexistent/node.key\"\n",
    );
    assert!(err.contains("/nonexistent/node.pem"), "{err}");
    let wallet = pki.app_certificate("wallet");
    let err = parse(&format!(
        "\n[[client_certs]]\napp = \"app-a\"\nsha256 = \"{}\"\n",
        wallet.fingerprint
    ));
    assert!(err.contains("client_certs need [tls] with client_ca_file"), "{err}");
    let err = parse("\n[[client_certs]]\napp = \"app-a\"\nsha256 = \"12\"\n");
    assert!(err.contains("client_certs[0].sha256"), "{err}");
    let err = parse(&format!(
        "\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_auth = \"required\"\n",
        pki.path("server.pem").display(),
        pki.path("server.key").display()
    ));
    assert!(err.contains("no client CA file"), "{err}");
    let err = parse("\n[relay_tls]\npins = [\"md5:00\"]\n");
    assert!(err.contains("relay_tls.pins[0]"), "{err}");
}

#[test]
fn plain_http_to_the_network_needs_allow_plaintext() {
    let spec = NodeSpec::new(1, 1);
    let exposed = spec
        .toml("http://127.0.0.1:9")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:8701\"");
    assert!(exposed.contains("0.0.0.0:8701"));
    let parse = |text: &str| mpc_node::config::parse(text, Path::new("."), &|_| None);
    let err = parse(&exposed).unwrap_err().to_string();
    assert!(
        err.contains("listen 0.0.0.0:8701 is reachable from the network but the API has no [tls]"),
        "{err}"
    );
    let allowed = exposed.replacen("listen =", "allow_plaintext = true\nlisten =", 1);
    assert_eq!(parse(&allowed).unwrap().listen.port(), 8701);
}
