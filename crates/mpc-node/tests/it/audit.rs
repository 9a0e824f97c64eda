//! The audit log of real nodes: every operation that ran is a signed, chained record; the chain
//! continues across a restart; `mpc-node audit verify` accepts the log and names the line of
//! an edit or a removal.

use dkls23_core::identity::IdentitySigner;
use serde_json::Value;

use crate::common::{Cluster, verify};

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn audit_verify(path: &std::path::Path, key: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mpc-node"))
        .args(["audit", "verify", path.to_str().unwrap(), "--public-key", key])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_recorded_signed_and_chained() {
    let mut c = Cluster::three().await;
    for r in c.generate("app-a", "k", 2, &[1, 2, 3]).await {
        r.unwrap();
    }
    for r in c.sign("app-a", "k", &[1, 2], [7; 32], "m/1").await {
        verify(&r.unwrap());
    }
    c.stop_node(1).await;
    c.restart(1).await;
    for r in c.sign("app-a", "k", &[1, 3], [8; 32], "m").await {
        verify(&r.unwrap());
    }
    c.client(1, "app-a").delete_key("k").await.unwrap();

    let log = c.dir.path().join("node1.audit.jsonl");
    let got = records(&log);
    let ops: Vec<&str> = got.iter().map(|r| r["operation"].as_str().unwrap()).collect();
    assert_eq!(ops, ["generate", "sign", "sign", "delete"]);
    assert!(got.iter().all(|r| r["outcome"] == "ok" && r["key_id"] == "k" && r["app"] == "app-a"));
    assert_eq!(got[0]["players"], serde_json::json!([1, 2, 3]));
    assert_eq!(got[1]["players"], serde_json::json!([1, 2]));
    // The signed hash is the one the client asked for (the path changes the key, not it).
    assert_eq!(got[1]["message_hash"], hex::encode([7u8; 32]));
    assert_eq!(got[2]["message_hash"], hex::encode([8u8; 32]));
    assert_eq!(got[3]["session_id"], Value::Null);
    let seqs: Vec<u64> = got.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "the chain goes on after the restart");
    // Node 2 ran only the generation and the first signature.
    assert_eq!(records(&c.dir.path().join("node2.audit.jsonl")).len(), 2);

    let key = c.specs[0].config("http://127.0.0.1:1").identity.public_key().to_string();
    assert_eq!(got[0]["signer"], key.as_str());
    let out = audit_verify(&log, &key);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 records verify"));

    // An edited record (another signed hash) and a removed record are each named by line.
    let original = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let edited = original.replacen(&hex::encode([7u8; 32]), &hex::encode([9u8; 32]), 1);
    std::fs::write(&log, edited).unwrap();
    let out = audit_verify(&log, &key);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 2") && stderr.contains("signature"), "{stderr}");

    let removed = [lines[0], lines[2], lines[3]].join("\n") + "\n";
    std::fs::write(&log, removed).unwrap();
    let out = audit_verify(&log, &key);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 2") && stderr.contains("record 3 where record 2"), "{stderr}");

    // Another node's key is not this node's.
    let other = c.specs[1].config("http://127.0.0.1:1").identity.public_key().to_string();
    std::fs::write(&log, &original).unwrap();
    assert_eq!(audit_verify(&log, &other).status.code(), Some(1));
}
