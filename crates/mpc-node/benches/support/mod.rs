//! What the node benchmarks share: session ids and the configuration of one of three nodes.

use mpc_node::config;

/// A fresh random session id (hex).
pub fn sid() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

/// The TOML of node `i` of three (SQLite in `dir`, API key `bench-{i}` for application
/// `bench`, 256 session slots), listening on `listen`.
#[allow(dead_code)]
pub fn node_toml(i: u16, listen: &str, relay: &str, dir: &std::path::Path) -> String {
    let db = format!("database_url = \"sqlite://{}/node{i}.sqlite\"\n", dir.display());
    node_toml_with(i, listen, relay, &db)
}

/// [`node_toml`] with the top-level database lines `db` (`database_url = …` and its options).
#[allow(dead_code)]
pub fn node_toml_with(i: u16, listen: &str, relay: &str, db: &str) -> String {
    use dkls23_core::identity::{Ed25519Identity, IdentitySigner};
    let mut t = format!(
        "listen = \"{listen}\"\nrelay_urls = [\"{relay}\"]\n{db}master_password = \"bench\"\n\
         [node]\nindex = {i}\nidentity_key = \"ed25519:{}\"\n",
        hex::encode([i as u8; 32])
    );
    for j in 1..=3u8 {
        let pk = Ed25519Identity::from_seed(&[j; 32]).public_key();
        t.push_str(&format!("[[players]]\nindex = {j}\npublic_key = \"{pk}\"\n"));
    }
    t.push_str(&format!(
        "[[api_keys]]\napp = \"bench\"\nsha256 = \"{}\"\n[limits]\nmax_concurrent_sessions = 256\n",
        config::hash_api_key(&format!("bench-{i}"))
    ));
    t
}
