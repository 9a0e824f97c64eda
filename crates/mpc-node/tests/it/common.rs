//! A relay and n nodes on loopback sockets, each with its own configuration text.

use std::collections::BTreeMap;
use std::time::Duration;

use dkls23_core::identity::{Ed25519Identity, IdentityPublicKey, IdentitySigner};
use k256::ecdsa::VerifyingKey;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use mpc_node::config::{self, Config, hash_api_key};
use mpc_node::server::RunningNode;
use mpc_node_client::Client;
use mpc_node_client::api::{
    GenerateKeyRequest, KeyInfo, SessionConfig, SignRequestBody, SignatureResponse,
};
use msg_relay_svc::testing::{TestRelay, spawn_relay};

pub fn seed(i: u16) -> [u8; 32] {
    [i as u8; 32]
}

pub fn identity(i: u16) -> Ed25519Identity {
    Ed25519Identity::from_seed(&seed(i))
}

pub fn public(i: u16) -> IdentityPublicKey {
    identity(i).public_key()
}

pub fn api_key(app: &str, i: u16) -> String {
    format!("key-{app}-{i}")
}

pub fn random_sid() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

/// How a node is configured.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub index: u16,
    /// Players written into `[[players]]` (the node's own index is added automatically).
    pub static_players: Vec<u16>,
    /// `memory:` or a sqlite path.
    pub database_url: String,
    pub master_password: String,
    pub session_timeout_secs: u64,
    pub max_request_bytes: usize,
    pub max_concurrent_sessions: usize,
    pub header_read_timeout_secs: u64,
    pub port: u16,
    /// Top-level TOML lines written before everything else (e.g. `database_ca_file = …`).
    pub extra: String,
    /// TOML tables written after everything else (e.g. `[[app_limits]]`).
    pub tables: String,
}

impl NodeSpec {
    pub fn new(index: u16, n: u16) -> Self {
        Self {
            index,
            static_players: (1..=n).collect(),
            // Empty: a SQLite file in the cluster's temporary directory.
            database_url: String::new(),
            master_password: "correct horse".into(),
            session_timeout_secs: 20,
            max_request_bytes: 64 * 1024,
            max_concurrent_sessions: 64,
            header_read_timeout_secs: 10,
            port: 0,
            extra: String::new(),
            tables: String::new(),
        }
    }

    pub fn toml(&self, relay_url: &str) -> String {
        let mut t = self.extra.clone();
        t += &format!(
            "listen = \"127.0.0.1:{}\"\nrelay_urls = [\"{relay_url}\"]\ndatabase_url = \"{}\"\n\
             master_password = \"{}\"\n\n[node]\nindex = {}\nidentity_key = \"ed25519:{}\"\n",
            self.port,
            if self.database_url.is_empty() { "memory:" } else { &self.database_url },
            self.master_password,
            self.index,
            hex::encode(seed(self.index))
        );
        for p in &self.static_players {
            t.push_str(&format!("\n[[players]]\nindex = {p}\npublic_key = \"{}\"\n", public(*p)));
        }
        for app in ["app-a", "app-b"] {
            t.push_str(&format!(
                "\n[[api_keys]]\napp = \"{app}\"\nsha256 = \"{}\"\n",
                hash_api_key(&api_key(app, self.index))
            ));
        }
        t.push_str(&format!(
            "\n[limits]\nsession_timeout_secs = {}\nmax_request_bytes = {}\n\
             max_concurrent_sessions = {}\nheader_read_timeout_secs = {}\n",
            self.session_timeout_secs,
            self.max_request_bytes,
            self.max_concurrent_sessions,
            self.header_read_timeout_secs
        ));
        t.push_str(&self.tables);
        t
    }

    pub fn config(&self, relay_url: &str) -> Config {
        config::parse(&self.toml(relay_url), std::path::Path::new("."), &|_| None).unwrap()
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub relay: TestRelay,
    /// Further relays the nodes list after `relay` (replicas on one Redis).
    pub other_relays: Vec<TestRelay>,
    /// What goes between the brackets of `relay_urls` (one or more quoted URLs).
    relay_urls: String,
    pub specs: Vec<NodeSpec>,
    pub nodes: Vec<Option<RunningNode>>,
}

impl Cluster {
    pub async fn start(specs: Vec<NodeSpec>) -> Self {
        Self::start_with_relay(specs, Default::default()).await
    }

    /// Like [`Cluster::start`], with a relay of this configuration.
    pub async fn start_with_relay(specs: Vec<NodeSpec>, relay: msg_relay_svc::RelayConfig) -> Self {
        let relay = spawn_relay(relay).await.unwrap();
        Self::start_with_relays(specs, vec![relay]).await
    }

    /// Nodes whose `relay_urls` list every relay of `relays`, in order.
    pub async fn start_with_relays(specs: Vec<NodeSpec>, relays: Vec<TestRelay>) -> Self {
        let mut relays = relays.into_iter();
        let relay = relays.next().unwrap();
        let other_relays: Vec<TestRelay> = relays.collect();
        let relay_urls = std::iter::once(&relay)
            .chain(&other_relays)
            .map(|r| r.url().to_owned())
            .collect::<Vec<_>>()
            .join("\", \"");
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        let mut specs = specs;
        for s in &mut specs {
            if s.database_url.is_empty() {
                s.database_url =
                    format!("sqlite://{}/node{}.sqlite", dir.path().display(), s.index);
            }
            let node = RunningNode::start(s.config(&relay_urls)).await.unwrap();
            // Keep the port so a restart comes back at the same address.
            s.port = node.addr().port();
            nodes.push(Some(node));
        }
        Self { dir, relay, other_relays, relay_urls, specs, nodes }
    }

    pub async fn three() -> Self {
        Self::start((1..=3).map(|i| NodeSpec::new(i, 3)).collect()).await
    }

    /// Client of player `i` (1-based) for `app`.
    pub fn client(&self, i: u16, app: &str) -> Client {
        let url = format!("http://127.0.0.1:{}", self.specs[usize::from(i) - 1].port);
        Client::new(&url, &api_key(app, i)).unwrap().with_timeout(Duration::from_secs(90))
    }

    pub fn url(&self, i: u16) -> String {
        format!("http://127.0.0.1:{}", self.specs[usize::from(i) - 1].port)
    }

    pub async fn kill(&mut self, i: u16) {
        if let Some(n) = self.nodes[usize::from(i) - 1].take() {
            n.kill().await;
        }
    }

    pub async fn stop_node(&mut self, i: u16) {
        if let Some(n) = self.nodes[usize::from(i) - 1].take() {
            n.stop().await;
        }
    }

    pub async fn restart(&mut self, i: u16) {
        let node = self.try_restart(i, None).await.unwrap();
        self.nodes[usize::from(i) - 1] = Some(node);
    }

    /// Starts node `i` again from its configuration (optionally with another master password).
    pub async fn try_restart(
        &self,
        i: u16,
        password: Option<&str>,
    ) -> Result<RunningNode, mpc_node::ConfigError> {
        let mut spec = self.specs[usize::from(i) - 1].clone();
        if let Some(p) = password {
            spec.master_password = p.into();
        }
        RunningNode::start(spec.config(&self.relay_urls)).await
    }

    /// Generates `key_id` (t-of-players) by calling every player's node at once.
    pub async fn generate(
        &self,
        app: &str,
        key_id: &str,
        t: u16,
        players: &[u16],
    ) -> Vec<Result<KeyInfo, mpc_node_client::ClientError>> {
        self.generate_partial(app, key_id, t, players, players, &random_sid()).await
    }

    /// Generates `key_id` by calling only the nodes of `call`, with session id `sid`.
    pub async fn generate_partial(
        &self,
        app: &str,
        key_id: &str,
        t: u16,
        players: &[u16],
        call: &[u16],
        sid: &str,
    ) -> Vec<Result<KeyInfo, mpc_node_client::ClientError>> {
        let session = SessionConfig {
            session_id: sid.to_owned(),
            players: players.to_vec(),
            public_keys: BTreeMap::new(),
        };
        let req = GenerateKeyRequest {
            key_id: Some(key_id.into()),
            threshold: t,
            curve: "secp256k1".into(),
            session,
        };
        let clients: Vec<Client> = call.iter().map(|i| self.client(*i, app)).collect();
        let futs = clients.iter().map(|c| c.generate_key(&req));
        futures_join_all(futs).await
    }

    pub async fn sign(
        &self,
        app: &str,
        key_id: &str,
        signers: &[u16],
        message_hash: [u8; 32],
        path: &str,
    ) -> Vec<Result<SignatureResponse, mpc_node_client::ClientError>> {
        let req = SignRequestBody {
            session: SessionConfig {
                session_id: random_sid(),
                players: signers.to_vec(),
                public_keys: BTreeMap::new(),
            },
            message_hash: Some(hex::encode(message_hash)),
            message: None,
            hash_algorithm: None,
            path: Some(path.into()),
            presignature_id: None,
        };
        let clients: Vec<Client> = signers.iter().map(|i| self.client(*i, app)).collect();
        futures_join_all(clients.iter().map(|c| c.sign(key_id, &req))).await
    }
}

/// Polls every future concurrently (spawn-free join_all on the current task).
pub async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    let mut futs: Vec<Option<_>> = futs.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, fut) in out.iter_mut().zip(futs.iter_mut()) {
            if let Some(f) = fut {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *slot = Some(v);
                        *fut = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

/// Verifies a signature response with k256 against its public key and message hash.
pub fn verify(sig: &SignatureResponse) {
    let pk = hex::decode(&sig.public_key).unwrap();
    let vk = VerifyingKey::from_sec1_bytes(&pk).unwrap();
    let der = hex::decode(&sig.der).unwrap();
    let s = k256::ecdsa::Signature::from_der(&der).unwrap();
    let m = hex::decode(&sig.message_hash).unwrap();
    vk.verify_prehash(&m, &s).unwrap();
    let rsv = hex::decode(&sig.rsv).unwrap();
    assert_eq!(hex::encode(&rsv[..32]), sig.r);
    assert_eq!(hex::encode(&rsv[32..64]), sig.s);
    assert_eq!(rsv[64], 27 + sig.recovery_id);
}
