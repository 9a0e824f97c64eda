//! `mpc-node dev`: one command that starts a relay and three nodes in this process, with SQLite
//! files, identities, configuration files and API keys in a local directory, and prints working
//! `curl` examples. Running it again on the same directory reuses everything (keys survive).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use dkls23_core::identity::IdentitySigner;
use getrandom::SysRng;
use msg_relay_svc::testing::{TestRelay, spawn_relay_on, spawn_relay_tls_on};
use rand_core::{Rng as _, UnwrapErr};

use crate::config::{self, NodeIdentity, hash_api_key};
use crate::server::RunningNode;

/// Number of nodes `dev` starts.
pub const DEV_NODES: u16 = 3;
/// The application id of the dev API keys.
pub const DEV_APP: &str = "dev-app";
/// Where `dev --tls` keeps its CA and certificate, under the dev directory.
pub const TLS_DIR: &str = "tls";

/// Where and on which ports to run.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Directory for configuration, identities and databases.
    pub dir: PathBuf,
    /// Relay port; node i listens on `port + i`. 0 picks free ports (tests).
    pub port: u16,
    /// Session timeout of the nodes.
    pub session_timeout_secs: u64,
    /// Serve the relay and the nodes over TLS with certificates from a local CA generated in
    /// `<dir>/tls` (reused on the next run).
    pub tls: bool,
    /// A webhook URL for the dev application's asynchronous operations (its secret is made in
    /// `<dir>/webhook-secret` and reused).
    pub webhook: Option<String>,
}

/// Where `dev --webhook` keeps the webhook secret, under the dev directory.
pub const WEBHOOK_SECRET_FILE: &str = "webhook-secret";

/// The running dev cluster.
#[derive(Debug)]
pub struct DevCluster {
    /// The relay.
    pub relay: TestRelay,
    /// The nodes, player 1..=3.
    pub nodes: Vec<RunningNode>,
    /// Each node's API key (plaintext, dev only), in player order.
    pub api_keys: Vec<String>,
    /// The directory.
    pub dir: PathBuf,
    /// The local CA's certificate when running over TLS (what clients trust).
    pub ca_file: Option<PathBuf>,
}

fn random_hex(n: usize) -> String {
    let mut rng = UnwrapErr(SysRng);
    let mut b = vec![0u8; n];
    rng.fill_bytes(&mut b);
    hex::encode(b)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Creates the directory's files unless they exist: per node an identity, a master password
/// file, an API key (its hash in the config, the key itself in `api-keys.txt`) and
/// `node<i>.toml`. Returns the API keys.
///
/// # Errors
/// I/O errors.
pub fn prepare(
    dir: &Path,
    relay_url: &str,
    node_addrs: &[SocketAddr],
    tls: bool,
) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let keys_file = dir.join("api-keys.txt");
    let ids_file = dir.join("identities.txt");
    if keys_file.exists() && ids_file.exists() {
        let text = std::fs::read_to_string(&keys_file)?;
        let keys: Vec<String> =
            text.lines().filter_map(|l| l.split_whitespace().nth(1)).map(str::to_owned).collect();
        let ids = std::fs::read_to_string(&ids_file)?;
        let ids: Vec<String> = ids.lines().map(str::to_owned).collect();
        if keys.len() == usize::from(DEV_NODES) && ids.len() == usize::from(DEV_NODES) {
            write_configs(dir, relay_url, node_addrs, &keys, &ids, tls)?;
            return Ok(keys);
        }
    }
    let mut rng = UnwrapErr(SysRng);
    let mut keys = Vec::new();
    let mut ids = Vec::new();
    for i in 1..=DEV_NODES {
        ids.push(NodeIdentity::generate_ed25519_string(&mut rng));
        keys.push(format!("mpck_{}", random_hex(24)));
        write_private(&dir.join(format!("node{i}.password")), &random_hex(16))?;
    }
    let mut list = String::new();
    for (k, key) in keys.iter().enumerate() {
        let _ = writeln!(list, "node{} {key}", k + 1);
    }
    write_private(&keys_file, &list)?;
    write_private(&ids_file, &(ids.join("\n") + "\n"))?;
    write_configs(dir, relay_url, node_addrs, &keys, &ids, tls)?;
    Ok(keys)
}

fn write_configs(
    dir: &Path,
    relay_url: &str,
    node_addrs: &[SocketAddr],
    keys: &[String],
    ids: &[String],
    tls: bool,
) -> anyhow::Result<()> {
    let mut publics = Vec::new();
    for id in ids {
        let parsed = NodeIdentity::parse(id).map_err(|e| anyhow::anyhow!("identities.txt: {e}"))?;
        publics.push(parsed.public_key().to_string());
    }
    for (k, ((id, key), addr)) in ids.iter().zip(keys).zip(node_addrs).enumerate() {
        let i = k + 1;
        let mut t = String::new();
        let _ =
            writeln!(t, "# mpc-node dev: player {i} (generated; secrets are for local use only)");
        let _ = writeln!(t, "data_dir = \"node{i}\"");
        let _ = writeln!(t, "listen = \"{addr}\"");
        let _ = writeln!(t, "relay_urls = [\"{relay_url}\"]");
        let _ = writeln!(t, "master_password_file = \"node{i}.password\"");
        let _ = writeln!(t, "\n[node]\nindex = {i}\nidentity_key = \"{id}\"");
        for (j, p) in publics.iter().enumerate() {
            let _ = writeln!(t, "\n[[players]]\nindex = {}\npublic_key = \"{p}\"", j + 1);
        }
        let _ =
            writeln!(t, "\n[[api_keys]]\napp = \"{DEV_APP}\"\nsha256 = \"{}\"", hash_api_key(key));
        let _ = writeln!(t, "\n[limits]\nmax_concurrent_sessions = 128\nsession_timeout_secs = 30");
        if tls {
            let _ = writeln!(
                t,
                "\n[tls]\ncert_file = \"{TLS_DIR}/server.pem\"\nkey_file = \"{TLS_DIR}/server.key\""
            );
            let _ =
                writeln!(t, "\n[relay_tls]\nca_file = \"{TLS_DIR}/ca.pem\"\npublic_roots = false");
        }
        std::fs::create_dir_all(dir.join(format!("node{i}")))?;
        write_private(&dir.join(format!("node{i}.toml")), &t)?;
    }
    Ok(())
}

/// The local CA and the loopback server certificate under `dir/tls`: made on the first run
/// (or when a file is missing), reused afterwards.
fn dev_pki(dir: &Path) -> anyhow::Result<dkls_tls::generate::DevPki> {
    let tls_dir = dir.join(TLS_DIR);
    let existing = dkls_tls::generate::DevPki {
        ca: tls_dir.join("ca.pem"),
        server_cert: tls_dir.join("server.pem"),
        server_key: tls_dir.join("server.key"),
    };
    if existing.ca.exists() && existing.server_cert.exists() && existing.server_key.exists() {
        return Ok(existing);
    }
    Ok(dkls_tls::generate::write_dev_pki(&tls_dir)?)
}

/// The dev application's webhook to `url`, with the secret of `dir` (made on first use).
fn dev_webhook(dir: &Path, url: &str) -> anyhow::Result<config::Webhook> {
    let (base_url, path) = config::split_url(url)
        .ok_or_else(|| anyhow::anyhow!("--webhook {url}: expected http(s)://host:port/path"))?;
    let file = dir.join(WEBHOOK_SECRET_FILE);
    if !file.exists() {
        write_private(&file, &format!("{}\n", random_hex(32)))?;
    }
    let secret =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    Ok(config::Webhook {
        app: DEV_APP.to_owned(),
        base_url,
        path,
        secret: zeroize::Zeroizing::new(secret.trim().as_bytes().to_vec()),
    })
}

/// Starts the relay and the three nodes.
///
/// # Errors
/// Binding, configuration or store errors.
pub async fn start(opts: &DevOptions) -> anyhow::Result<DevCluster> {
    let host = [127, 0, 0, 1];
    let relay_addr = SocketAddr::from((host, opts.port));
    let pki = if opts.tls { Some(dev_pki(&opts.dir)?) } else { None };
    let relay = match &pki {
        None => spawn_relay_on(relay_addr, Default::default()).await,
        Some(pki) => {
            let files = dkls_tls::ServerTlsFiles::new(&pki.server_cert, &pki.server_key);
            let tls = dkls_tls::ServerTls::load(files)?;
            spawn_relay_tls_on(relay_addr, Default::default(), tls).await
        }
    }
    .context("starting the relay")?;
    let mut addrs = Vec::new();
    for i in 1..=DEV_NODES {
        let port = if opts.port == 0 { 0 } else { opts.port.saturating_add(i) };
        addrs.push(SocketAddr::from((host, port)));
    }
    let api_keys = prepare(&opts.dir, relay.url(), &addrs, opts.tls)?;
    let mut nodes = Vec::new();
    for i in 1..=DEV_NODES {
        let path = opts.dir.join(format!("node{i}.toml"));
        let mut cfg = config::load(&path, &|_| None).map_err(|e| anyhow::anyhow!("{e}"))?;
        cfg.limits.session_timeout_secs = opts.session_timeout_secs;
        if let Some(url) = &opts.webhook {
            cfg.webhooks.push(dev_webhook(&opts.dir, url)?);
        }
        let node = RunningNode::start(cfg).await.map_err(|e| anyhow::anyhow!("node {i}: {e}"))?;
        nodes.push(node);
    }
    Ok(DevCluster { relay, nodes, api_keys, dir: opts.dir.clone(), ca_file: pki.map(|p| p.ca) })
}

impl DevCluster {
    /// Working `curl` examples for this cluster.
    pub fn curl_examples(&self) -> String {
        let sid = random_hex(32);
        let sid2 = random_hex(32);
        let url = |k: usize| self.nodes.get(k).map(RunningNode::url).unwrap_or_default();
        let key = |k: usize| self.api_keys.get(k).cloned().unwrap_or_default();
        // Over TLS, curl trusts the local CA: `curl --cacert <ca>`.
        let curl = match &self.ca_file {
            Some(ca) => format!("curl --cacert {}", ca.display()),
            None => "curl".to_owned(),
        };
        let mut s = String::new();
        let _ = writeln!(s, "relay:  {}", self.relay.url());
        for k in 0..self.nodes.len() {
            let _ = writeln!(s, "node {}: {}   API key: {}", k + 1, url(k), key(k));
        }
        let _ = writeln!(s, "files:  {}", self.dir.display());
        if let Some(ca) = &self.ca_file {
            let _ =
                writeln!(s, "CA:     {} (trust it: curl --cacert, RELAY_CA_FILE)", ca.display());
        }
        let _ = writeln!(
            s,
            "\n# 1. Generate a 2-of-3 key: every node is called with the same session."
        );
        for k in 0..self.nodes.len() {
            let _ = writeln!(
                s,
                "({curl} -s -X POST {}/v1/keys -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' \\\n  -d '{{\"key_id\":\"demo-key\",\"threshold\":2,\"session\":{{\"session_id\":\"{sid}\",\"players\":[1,2,3]}}}}' ; echo) &",
                url(k),
                key(k)
            );
        }
        let _ = writeln!(s, "wait");
        let _ = writeln!(
            s,
            "\n# 2. Sign a message (its KECCAK256) with players 1 and 2 (fresh session id); for a 32-byte\n#    prehash send \"message_hash\": \"<64 hex digits>\" without hash_algorithm."
        );
        for k in 0..2 {
            let _ = writeln!(
                s,
                "({curl} -s -X POST {}/v1/keys/demo-key/sign -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' \\\n  -d '{{\"session\":{{\"session_id\":\"{sid2}\",\"players\":[1,2]}},\"message\":\"68656c6c6f\",\"hash_algorithm\":\"KECCAK256\",\"path\":\"m/44/60/0/0/0\"}}' ; echo) &",
                url(k),
                key(k)
            );
        }
        let _ = writeln!(s, "wait");
        let _ = writeln!(
            s,
            "\n# 3. Public key and Ethereum address at a path; list keys; API document."
        );
        let _ = writeln!(
            s,
            "{curl} -s '{}/v1/keys/demo-key/public-key?path=m/44/60/0/0/0' -H 'Authorization: Bearer {}'; echo",
            url(0),
            key(0)
        );
        let _ =
            writeln!(s, "{curl} -s {}/v1/keys -H 'Authorization: Bearer {}'; echo", url(0), key(0));
        let _ = writeln!(s, "{curl} -s {}/openapi.json | head -c 300; echo", url(0));
        let _ = writeln!(s, "{curl} -s {}/metrics | grep mpc_node_sessions_total", url(0));
        s
    }

    /// Stops the nodes and the relay.
    pub async fn stop(self) {
        for n in self.nodes {
            n.stop().await;
        }
        self.relay.stop().await;
    }
}
