//! Batch visibility: the watermark advances in version order and batches appear atomically.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use bytes::Bytes;
use gnomon_engine::{Engine, EngineError, EngineOptions, Version};

fn open(dir: &std::path::Path) -> Engine {
    Engine::open(dir, EngineOptions::default())
        .unwrap_or_else(|e| panic!("open failed: {e}"))
        .0
}

fn value(s: &str) -> Option<Bytes> {
    Some(Bytes::from(s.to_string()))
}

#[test]
fn later_batch_applied_first_waits_for_the_earlier_one() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let first = engine.prepare_batch(Version(1)).unwrap();
    let second = engine.prepare_batch(Version(2)).unwrap();
    assert_eq!(engine.max_prepared(), Version(2));

    engine.apply_batch(second, vec![(b"b".to_vec(), value("2"))]);
    assert!(
        engine.visible() < Version(1),
        "batch 2 must wait for batch 1"
    );

    engine.apply_batch(first, vec![(b"a".to_vec(), value("1"))]);
    assert_eq!(engine.visible(), Version(2));
    let at = engine.visible();
    assert!(engine.get(b"a", at).is_some() && engine.get(b"b", at).is_some());
}

#[test]
fn abandoned_batch_lets_visibility_move_on() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let failed = engine.prepare_batch(Version(5)).unwrap();
    let next = engine.prepare_batch(Version(6)).unwrap();
    engine.apply_batch(next, vec![(b"k".to_vec(), value("6"))]);
    assert!(engine.visible() < Version(5));
    engine.abandon_batch(failed);
    assert_eq!(engine.visible(), Version(6));
}

#[test]
fn dropped_ticket_counts_as_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let lost = engine.prepare_batch(Version(1)).unwrap();
    let next = engine.prepare_batch(Version(2)).unwrap();
    engine.apply_batch(next, vec![]);
    drop(lost);
    assert_eq!(engine.visible(), Version(2));
}

#[test]
fn prepare_rejects_versions_that_do_not_increase() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let t = engine.prepare_batch(Version(10)).unwrap();
    for bad in [10, 9, 0] {
        match engine.prepare_batch(Version(bad)) {
            Err(EngineError::VersionNotIncreasing {
                version,
                max_prepared,
            }) => {
                assert_eq!((version, max_prepared), (Version(bad), Version(10)));
            }
            other => panic!("expected VersionNotIncreasing, got {other:?}"),
        }
    }
    engine.apply_batch(t, vec![]);
    assert!(engine.prepare_batch(Version(11)).is_ok());
}

#[test]
fn recovered_batches_apply_in_any_order_and_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine.apply_recovered(Version(30), vec![(b"k".to_vec(), value("30"))]);
    engine.apply_recovered(Version(10), vec![(b"k".to_vec(), value("10"))]);
    engine.apply_recovered(Version(30), vec![(b"k".to_vec(), value("30"))]);
    engine.apply_recovered(Version(20), vec![(b"k".to_vec(), None)]);
    assert_eq!(engine.visible(), Version(30));
    assert_eq!(engine.max_prepared(), Version(30));
    assert_eq!(engine.get(b"k", Version(15)).as_deref(), Some(&b"10"[..]));
    assert_eq!(engine.get(b"k", Version(25)), None);
    assert_eq!(engine.get(b"k", Version(30)).as_deref(), Some(&b"30"[..]));
    assert_eq!(
        engine.memtable_len(),
        3,
        "replaying version 30 twice stores it once"
    );
    assert!(engine.prepare_batch(Version(30)).is_err());
    assert!(engine.prepare_batch(Version(31)).is_ok());
}

#[test]
fn wait_visible_returns_once_the_batch_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(open(dir.path()));
    let ticket = engine.prepare_batch(Version(7)).unwrap();
    let waiter = {
        let engine = Arc::clone(&engine);
        thread::spawn(move || {
            engine.wait_visible(Version(7));
            engine.get(b"x", engine.visible())
        })
    };
    engine.apply_batch(ticket, vec![(b"x".to_vec(), value("seen"))]);
    let seen = waiter.join().unwrap();
    assert_eq!(seen.as_deref(), Some(&b"seen"[..]));
}

/// Writers apply 200-key batches (out of order across threads) while readers scan at
/// `visible()`: every scan must see each batch entirely or not at all. Each batch writes the
/// same value (its version) to all keys, so a half batch shows up as mixed values.
#[test]
fn readers_at_visible_never_see_half_a_batch() {
    const KEYS: usize = 200;
    const BATCHES: u128 = 60;
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(open(dir.path()));
    let done = Arc::new(AtomicBool::new(false));
    let keys: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..KEYS)
            .map(|i| format!("key{i:04}").into_bytes())
            .collect(),
    );

    let readers: Vec<_> = (0..2)
        .map(|_| {
            let engine = Arc::clone(&engine);
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let mut checks = 0u64;
                while !done.load(Ordering::Acquire) || checks < 10 {
                    let at = engine.visible();
                    let rows: Vec<_> = engine
                        .scan(
                            std::ops::Bound::Unbounded,
                            std::ops::Bound::Unbounded,
                            at,
                            checks % 2 == 1,
                        )
                        .collect();
                    if at > Version(0) {
                        assert_eq!(rows.len(), KEYS, "at {at} some keys missing");
                    }
                    let first = rows.first().map(|r| r.1.clone());
                    for (_, v) in &rows {
                        assert_eq!(Some(v), first.as_ref(), "half a batch visible at {at}");
                    }
                    if let Some(v) = first {
                        let version: u128 = String::from_utf8_lossy(&v).parse().unwrap();
                        assert!(Version(version) <= at);
                    }
                    checks += 1;
                }
                checks
            })
        })
        .collect();

    // Two writer threads each prepare under a shared lock (so versions increase) and apply
    // outside it, so batches finish out of version order.
    let prepare_lock = Arc::new(std::sync::Mutex::new(0u128));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let engine = Arc::clone(&engine);
            let keys = Arc::clone(&keys);
            let prepare_lock = Arc::clone(&prepare_lock);
            thread::spawn(move || loop {
                let ticket = {
                    let mut next = prepare_lock.lock().unwrap();
                    if *next >= BATCHES {
                        break;
                    }
                    *next += 1;
                    engine.prepare_batch(Version(*next)).unwrap()
                };
                let v = Bytes::from(ticket.version().0.to_string());
                let writes = keys.iter().map(|k| (k.clone(), Some(v.clone()))).collect();
                engine.apply_batch(ticket, writes);
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() >= 10);
    }
    assert_eq!(engine.visible(), Version(BATCHES));
}
