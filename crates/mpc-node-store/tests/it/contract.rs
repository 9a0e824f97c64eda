//! The Store contract, checked against MemoryStore and SqliteStore alike.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier, Mutex};

use dkls23_core::setup::{ReplayError, ReplayGuard};
use mpc_node_store::{CreateOutcome, KeyStatus, NewShare, Store, StoreError, StoreReplayGuard};

use crate::common::{APP, CC, KID, PK, ready, ready_key, stores};

#[test]
fn lifecycle_pending_ready_and_idempotent_create() {
    for (name, s, _db) in stores() {
        assert!(s.get(APP, "k1").unwrap().is_none(), "{name}");
        assert_eq!(s.create_pending(APP, "k1", 2, 3, 1).unwrap(), CreateOutcome::Created, "{name}");
        // Idempotent: the second call returns the PENDING record, unchanged (even with other
        // parameters).
        let CreateOutcome::Existing(r) = s.create_pending(APP, "k1", 3, 5, 4).unwrap() else {
            panic!("{name}: expected Existing");
        };
        assert_eq!(r.status, KeyStatus::Pending);
        assert_eq!((r.threshold, r.parties, r.player, r.epoch), (2, 3, 1, 0));
        assert_eq!((r.public_key, r.chain_code, r.core_key_id), (None, None, None));
        assert!(r.created_at > 1_700_000_000 && r.updated_at >= r.created_at);
        assert!(matches!(s.load_share(APP, "k1"), Err(StoreError::NotFound)), "{name}");

        s.mark_ready(APP, "k1", &ready(b"share bytes")).unwrap();
        let r = s.get(APP, "k1").unwrap().unwrap();
        assert_eq!(r.status, KeyStatus::Ready, "{name}");
        assert_eq!((r.public_key, r.chain_code, r.core_key_id), (Some(PK), Some(CC), Some(KID)));
        assert_eq!(&**s.load_share(APP, "k1").unwrap(), b"share bytes", "{name}");
        // A READY key cannot become ready twice or turn into an error.
        assert!(matches!(s.mark_ready(APP, "k1", &ready(b"other")), Err(StoreError::Conflict(_))));
        assert!(matches!(s.mark_error(APP, "k1", "late"), Err(StoreError::Conflict(_))));
        let CreateOutcome::Existing(again) = s.create_pending(APP, "k1", 2, 3, 1).unwrap() else {
            panic!("{name}: expected Existing");
        };
        assert_eq!(again, r, "{name}");
        assert_eq!(&**s.load_share(APP, "k1").unwrap(), b"share bytes", "{name}");
    }
}

#[test]
fn error_status_and_unknown_keys() {
    for (name, s, _db) in stores() {
        s.create_pending(APP, "bad", 2, 2, 0).unwrap();
        s.mark_error(APP, "bad", "peer 2 timed out").unwrap();
        let r = s.get(APP, "bad").unwrap().unwrap();
        assert_eq!(r.status, KeyStatus::Error("peer 2 timed out".into()), "{name}");
        assert!(matches!(s.mark_ready(APP, "bad", &ready(b"x")), Err(StoreError::Conflict(_))));
        // Long reasons are truncated, not refused.
        s.mark_error(APP, "bad", &"r".repeat(5000)).unwrap();
        let KeyStatus::Error(reason) = s.get(APP, "bad").unwrap().unwrap().status else {
            panic!("{name}");
        };
        assert_eq!(reason.len(), mpc_node_store::MAX_REASON_LEN);

        for res in [
            s.mark_ready(APP, "nope", &ready(b"x")),
            s.mark_error(APP, "nope", "x"),
            s.delete(APP, "nope"),
            s.record_ban(APP, "nope", 1, "x"),
            s.put_presignature(APP, "nope", "p1", b"x"),
            s.replace_share(
                APP,
                "nope",
                &NewShare { share: b"x", epoch: 1, player: 0, threshold: 2, parties: 3 },
            ),
        ] {
            assert!(matches!(res, Err(StoreError::NotFound)), "{name}: {res:?}");
        }
        assert!(matches!(s.load_share(APP, "nope"), Err(StoreError::NotFound)));
        assert!(s.take_presignature(APP, "nope", "p1").unwrap().is_none());
        assert!(s.bans(APP, "nope").unwrap().is_empty());
        assert!(s.list_presignatures(APP, "nope").unwrap().is_empty());
    }
}

#[test]
fn invalid_input_is_refused() {
    for (name, s, _db) in stores() {
        for key in ["", "a b", "a/b", "ключ", &"x".repeat(129)] {
            assert!(
                matches!(s.create_pending(APP, key, 2, 3, 0), Err(StoreError::Conflict(_))),
                "{name}: {key:?}"
            );
        }
        assert!(matches!(s.create_pending("", "k", 2, 3, 0), Err(StoreError::Conflict(_))));
        assert!(matches!(s.create_pending(APP, "k", 0, 3, 0), Err(StoreError::Conflict(_))));
        assert!(matches!(s.create_pending(APP, "k", 4, 3, 0), Err(StoreError::Conflict(_))));
        s.create_pending(APP, &"x".repeat(128), 1, 1, 0).unwrap();
        ready_key(&*s, "k", b"share");
        assert!(matches!(
            s.put_presignature(APP, "k", "bad id", b"x"),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.replace_share(
                APP,
                "k",
                &NewShare { share: b"x", epoch: 1, player: 0, threshold: 4, parties: 3 }
            ),
            Err(StoreError::Conflict(_))
        ));
    }
}

#[test]
fn list_is_per_application_and_ordered() {
    for (name, s, _db) in stores() {
        for k in ["b", "a", "c"] {
            s.create_pending(APP, k, 1, 1, 0).unwrap();
        }
        s.create_pending("other-app", "a", 1, 1, 0).unwrap();
        let keys: Vec<_> = s.list(APP).unwrap().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["a", "b", "c"], "{name}");
        assert_eq!(s.list("other-app").unwrap().len(), 1);
        assert!(s.list("nobody").unwrap().is_empty());
        // The same key name in another application is another key.
        assert!(s.get("other-app", "b").unwrap().is_none());
    }
}

#[test]
fn replace_share_moves_epoch_forward_and_clears_presignatures_and_bans() {
    for (name, s, _db) in stores() {
        ready_key(&*s, "k", b"epoch 0 share");
        s.put_presignature(APP, "k", "p1", b"presig").unwrap();
        s.record_ban(APP, "k", 3, "bad proof").unwrap();
        // Same or older epoch: refused, nothing changes.
        assert!(matches!(
            s.replace_share(
                APP,
                "k",
                &NewShare { share: b"x", epoch: 0, player: 1, threshold: 2, parties: 3 }
            ),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(s.list_presignatures(APP, "k").unwrap(), ["p1"], "{name}");

        s.replace_share(
            APP,
            "k",
            &NewShare { share: b"epoch 1 share", epoch: 1, player: 4, threshold: 3, parties: 5 },
        )
        .unwrap();
        let r = s.get(APP, "k").unwrap().unwrap();
        assert_eq!((r.epoch, r.player, r.threshold, r.parties), (1, 4, 3, 5), "{name}");
        assert_eq!(r.public_key, Some(PK));
        assert_eq!(&**s.load_share(APP, "k").unwrap(), b"epoch 1 share");
        assert!(s.list_presignatures(APP, "k").unwrap().is_empty(), "{name}");
        assert!(s.take_presignature(APP, "k", "p1").unwrap().is_none());
        assert!(s.bans(APP, "k").unwrap().is_empty(), "{name}");

        // A PENDING key has no share to replace.
        s.create_pending(APP, "pending", 2, 3, 1).unwrap();
        assert!(matches!(
            s.replace_share(
                APP,
                "pending",
                &NewShare { share: b"x", epoch: 1, player: 1, threshold: 2, parties: 3 }
            ),
            Err(StoreError::Conflict(_))
        ));
    }
}

#[test]
fn delete_removes_everything_and_the_name_can_be_reused() {
    for (name, s, _db) in stores() {
        ready_key(&*s, "k", b"share");
        s.put_presignature(APP, "k", "p1", b"presig").unwrap();
        s.record_ban(APP, "k", 2, "x").unwrap();
        s.delete(APP, "k").unwrap();
        assert!(s.get(APP, "k").unwrap().is_none(), "{name}");
        assert!(matches!(s.load_share(APP, "k"), Err(StoreError::NotFound)));
        assert!(s.list_presignatures(APP, "k").unwrap().is_empty());
        assert!(s.bans(APP, "k").unwrap().is_empty());
        assert!(matches!(s.delete(APP, "k"), Err(StoreError::NotFound)));
        // A new key under the same name starts fresh.
        ready_key(&*s, "k", b"new share");
        assert_eq!(&**s.load_share(APP, "k").unwrap(), b"new share", "{name}");
        assert!(s.bans(APP, "k").unwrap().is_empty());
    }
}

#[test]
fn record_iid_detects_replay_and_serves_as_replay_guard() {
    for (name, s, _db) in stores() {
        let iid = [9u8; 32];
        assert!(s.record_iid(&iid).unwrap(), "{name}");
        assert!(!s.record_iid(&iid).unwrap(), "{name}");
        assert!(s.record_iid(&[8u8; 32]).unwrap());

        // Through `&dyn Store` and the owned guard, as the node passes it to the runner.
        let guard: &dyn Store = &*s;
        assert_eq!(guard.check_and_record(&[1u8; 32]), Ok(()));
        assert_eq!(guard.check_and_record(&[1u8; 32]), Err(ReplayError::Reused));
        let owned = StoreReplayGuard(Arc::clone(&s));
        assert_eq!(owned.check_and_record(&[1u8; 32]), Err(ReplayError::Reused));
        assert_eq!(owned.check_and_record(&[2u8; 32]), Ok(()));
        assert!(!s.record_iid(&[2u8; 32]).unwrap(), "{name}");
    }
}

#[test]
fn bans_are_idempotent_and_sorted() {
    for (name, s, _db) in stores() {
        ready_key(&*s, "k", b"share");
        for p in [5, 2, 5, 7] {
            s.record_ban(APP, "k", p, "cheated").unwrap();
        }
        assert_eq!(s.bans(APP, "k").unwrap(), [2, 5, 7], "{name}");
        ready_key(&*s, "k2", b"share");
        assert!(s.bans(APP, "k2").unwrap().is_empty(), "{name}");
    }
}

#[test]
fn presignatures_are_single_use() {
    for (name, s, _db) in stores() {
        s.create_pending(APP, "k", 2, 3, 1).unwrap();
        assert!(matches!(s.put_presignature(APP, "k", "p0", b"x"), Err(StoreError::Conflict(_))));
        s.mark_ready(APP, "k", &ready(b"share")).unwrap();
        s.put_presignature(APP, "k", "p2", b"presig two").unwrap();
        s.put_presignature(APP, "k", "p1", b"presig one").unwrap();
        assert!(matches!(
            s.put_presignature(APP, "k", "p1", b"again"),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(s.list_presignatures(APP, "k").unwrap(), ["p1", "p2"], "{name}");
        assert_eq!(&**s.take_presignature(APP, "k", "p1").unwrap().unwrap(), b"presig one");
        assert!(s.take_presignature(APP, "k", "p1").unwrap().is_none(), "{name}");
        assert!(s.take_presignature(APP, "k", "unknown").unwrap().is_none());
        assert_eq!(s.list_presignatures(APP, "k").unwrap(), ["p2"]);
        // A consumed id can be stored again (the node never does; the store does not forbid).
        s.put_presignature(APP, "k", "p1", b"fresh").unwrap();
        assert_eq!(&**s.take_presignature(APP, "k", "p1").unwrap().unwrap(), b"fresh");
    }
}

#[test]
fn concurrent_takers_get_each_presignature_once() {
    const PRESIGS: usize = 24;
    const THREADS: usize = 6;
    for (name, s, _db) in stores() {
        ready_key(&*s, "k", b"share");
        for i in 0..PRESIGS {
            s.put_presignature(APP, "k", &format!("p{i}"), format!("bytes {i}").as_bytes())
                .unwrap();
        }
        let taken = Arc::new(Mutex::new(Vec::new()));
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (s, taken, barrier) =
                    (Arc::clone(&s), Arc::clone(&taken), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    // Every thread tries every id.
                    for i in 0..PRESIGS {
                        if let Some(b) = s.take_presignature(APP, "k", &format!("p{i}")).unwrap() {
                            taken.lock().unwrap().push((i, b.to_vec()));
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let taken = taken.lock().unwrap();
        assert_eq!(taken.len(), PRESIGS, "{name}: each presignature exactly once");
        let ids: BTreeSet<_> = taken.iter().map(|(i, _)| *i).collect();
        assert_eq!(ids.len(), PRESIGS, "{name}");
        for (i, b) in taken.iter() {
            assert_eq!(b, format!("bytes {i}").as_bytes());
        }
        assert!(s.list_presignatures(APP, "k").unwrap().is_empty());
    }
}

#[test]
fn concurrent_create_pending_creates_once() {
    const THREADS: usize = 6;
    for (name, s, _db) in stores() {
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (s, barrier) = (Arc::clone(&s), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    s.create_pending(APP, "k", 2, 3, 1).unwrap()
                })
            })
            .collect();
        let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let created = outcomes.iter().filter(|o| **o == CreateOutcome::Created).count();
        assert_eq!(created, 1, "{name}");
        assert_eq!(s.list(APP).unwrap().len(), 1);
    }
}

#[test]
fn fail_pending_turns_every_pending_key_into_an_error() {
    for (name, s, _db) in stores() {
        assert_eq!(s.create_pending(APP, "p1", 2, 3, 1).unwrap(), CreateOutcome::Created);
        assert_eq!(s.create_pending("other-app", "p2", 2, 3, 1).unwrap(), CreateOutcome::Created);
        ready_key(&*s, "r", b"share");
        assert_eq!(s.fail_pending("interrupted").unwrap(), 2, "{name}");
        for (app, key) in [(APP, "p1"), ("other-app", "p2")] {
            let r = s.get(app, key).unwrap().unwrap();
            assert_eq!(r.status, KeyStatus::Error("interrupted".into()), "{name}");
        }
        assert_eq!(s.get(APP, "r").unwrap().unwrap().status, KeyStatus::Ready, "{name}");
        assert_eq!(s.fail_pending("again").unwrap(), 0, "{name}");
    }
}

#[test]
fn fail_stale_pending_spares_recent_pending_keys() {
    let all = stores();
    for (name, s, _db) in &all {
        s.create_pending(APP, "p", 2, 3, 1).unwrap();
        ready_key(&**s, "r", b"share");
        // Just created: not stale for an hour's limit.
        assert_eq!(s.fail_stale_pending("stale", 3600).unwrap(), 0, "{name}");
        assert_eq!(s.get(APP, "p").unwrap().unwrap().status, KeyStatus::Pending, "{name}");
    }
    // Timestamps are in seconds: after more than one, a zero limit finds it stale.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for (name, s, _db) in &all {
        assert_eq!(s.fail_stale_pending("stale", 0).unwrap(), 1, "{name}");
        assert_eq!(s.get(APP, "p").unwrap().unwrap().status, KeyStatus::Error("stale".into()));
        assert_eq!(s.get(APP, "r").unwrap().unwrap().status, KeyStatus::Ready, "{name}");
    }
}

#[test]
fn peek_leaves_the_presignature_in_place() {
    for (name, s, _db) in stores() {
        ready_key(&*s, "k", b"share");
        s.put_presignature(APP, "k", "p1", b"presig").unwrap();
        assert_eq!(&**s.peek_presignature(APP, "k", "p1").unwrap().unwrap(), b"presig", "{name}");
        assert_eq!(&**s.peek_presignature(APP, "k", "p1").unwrap().unwrap(), b"presig", "{name}");
        assert!(s.peek_presignature(APP, "k", "p2").unwrap().is_none(), "{name}");
        assert_eq!(&**s.take_presignature(APP, "k", "p1").unwrap().unwrap(), b"presig");
        assert!(s.peek_presignature(APP, "k", "p1").unwrap().is_none(), "{name}");
    }
}

#[test]
fn a_staged_share_is_kept_until_replaced_cleared_or_deleted() {
    for (name, s, _db) in stores() {
        ready_key(&*s, "k", b"epoch 0 share");
        assert_eq!(s.staged_share(APP, "k").unwrap(), None, "{name}");
        // Only a newer epoch of a READY key can be staged.
        assert!(matches!(s.stage_share(APP, "k", 0, b"setup", b"x"), Err(StoreError::Conflict(_))));
        assert!(matches!(s.stage_share(APP, "none", 1, b"s", b"x"), Err(StoreError::NotFound)));
        s.stage_share(APP, "k", 1, b"setup one", b"epoch 1 share").unwrap();
        s.stage_share(APP, "k", 1, b"setup two", b"epoch 1 share, again").unwrap();
        let staged = s.staged_share(APP, "k").unwrap().unwrap();
        assert_eq!((staged.epoch, staged.setup.as_slice()), (1, &b"setup two"[..]), "{name}");
        assert_eq!(&**staged.share, b"epoch 1 share, again");
        assert_eq!(s.list_staged().unwrap(), [(APP.to_owned(), "k".to_owned())], "{name}");
        // Staging changes nothing about the current share.
        assert_eq!(&**s.load_share(APP, "k").unwrap(), b"epoch 0 share");
        assert_eq!(s.get(APP, "k").unwrap().unwrap().epoch, 0);

        // Committing a new epoch drops it.
        s.replace_share(
            APP,
            "k",
            &NewShare { share: b"epoch 1 share", epoch: 1, player: 1, threshold: 2, parties: 3 },
        )
        .unwrap();
        assert_eq!(s.staged_share(APP, "k").unwrap(), None, "{name}");
        assert!(s.list_staged().unwrap().is_empty());

        // So do clearing and deleting.
        s.stage_share(APP, "k", 2, b"s", b"epoch 2 share").unwrap();
        s.clear_staged(APP, "k").unwrap();
        assert_eq!(s.staged_share(APP, "k").unwrap(), None, "{name}");
        s.stage_share(APP, "k", 2, b"s", b"epoch 2 share").unwrap();
        s.delete(APP, "k").unwrap();
        assert!(s.list_staged().unwrap().is_empty(), "{name}");
        s.clear_staged(APP, "k").unwrap();
    }
}

#[test]
fn operations_are_created_once_finished_once_and_failed_at_start_up() {
    use mpc_node_store::{OperationEnd, OperationState};
    for (name, s, _db) in stores() {
        assert!(s.get_operation(APP, "op1").unwrap().is_none(), "{name}");
        assert!(s.create_operation(APP, "op1", "sign").unwrap(), "{name}");
        assert!(!s.create_operation(APP, "op1", "sign").unwrap(), "{name}: created twice");
        // Per application.
        assert!(s.get_operation("other-app", "op1").unwrap().is_none(), "{name}");
        let op = s.get_operation(APP, "op1").unwrap().unwrap();
        assert_eq!(
            (op.state, op.http_status, op.result.as_deref()),
            (OperationState::Running, None, None)
        );
        assert_eq!(op.operation, "sign");
        assert!(op.created_at > 1_700_000_000, "{name}");

        let ok = OperationEnd { succeeded: true, http_status: 200, result: r#"{"r":"01"}"# };
        s.finish_operation(APP, "op1", &ok).unwrap();
        // An ended operation keeps its first outcome.
        let late = OperationEnd { succeeded: false, http_status: 500, result: "{}" };
        s.finish_operation(APP, "op1", &late).unwrap();
        let op = s.get_operation(APP, "op1").unwrap().unwrap();
        assert_eq!(op.state, OperationState::Succeeded, "{name}");
        assert_eq!((op.http_status, op.result.as_deref()), (Some(200), Some(r#"{"r":"01"}"#)));
        assert!(matches!(s.finish_operation(APP, "nope", &ok), Err(StoreError::NotFound)));
        assert!(matches!(s.create_operation(APP, "bad id!", "sign"), Err(StoreError::Conflict(_))));

        // Start-up: a recent running operation survives a sweep of old ones; a sweep of all
        // fails it; ended operations are kept for `keep_secs`.
        assert!(s.create_operation(APP, "op2", "generate").unwrap());
        let gone = OperationEnd { succeeded: false, http_status: 503, result: r#"{"error":1}"# };
        assert_eq!(s.fail_running_operations(&gone, 3600, 86_400).unwrap(), 0, "{name}");
        assert_eq!(s.get_operation(APP, "op2").unwrap().unwrap().state, OperationState::Running);
        assert_eq!(s.fail_running_operations(&gone, 0, 86_400).unwrap(), 1, "{name}");
        let op = s.get_operation(APP, "op2").unwrap().unwrap();
        assert_eq!((op.state, op.http_status), (OperationState::Failed, Some(503)), "{name}");
        assert!(s.get_operation(APP, "op1").unwrap().is_some(), "{name}: forgotten too early");
    }
}
