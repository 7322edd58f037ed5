//! Deadlock detection latency: from the moment a cycle is formed (the request that closes it
//! is made) to the moment the victim's request returns 40P01. Reports median and P99 over many
//! cycles, for the two shapes:
//!
//! - `victim_waiting`: the younger transaction already waits; the older one closes the cycle,
//!   so the victim is a sleeping thread that must be woken (the slow shape).
//! - `victim_closes`: the younger transaction closes the cycle itself and fails at once.
//!
//! Real transactions through `Txn::put` (row locks with their table and partition intention
//! locks, the wait-for graph, thread parking). Not a criterion bench: criterion reports no
//! percentiles. Run with `cargo bench -p gnomon-mvcc --bench deadlock_latency`.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gnomon_mvcc::{Db, DbOptions, Isolation, LockHierarchy, MvccError, RelId, SyncPolicy};

/// Keys `[0x10, table u32 BE, ...]`, like the SQL layer's row keys.
struct Rows;
impl LockHierarchy for Rows {
    fn relation_of(&self, key: &[u8]) -> Option<RelId> {
        match key {
            [0x10, a, b, c, d, ..] => Some(RelId(u32::from_be_bytes([*a, *b, *c, *d]))),
            _ => None,
        }
    }
}

fn key(i: u32, which: u8) -> Vec<u8> {
    let mut k = vec![0x10, 0, 0, 0x40, 0];
    k.extend_from_slice(&i.to_be_bytes());
    k.push(which);
    k
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "deadlock_latency/{name}: n={} median={:.1} us p99={:.1} us max={:.1} us",
        v.len(),
        percentile(&v, 0.5).as_secs_f64() * 1e6,
        percentile(&v, 0.99).as_secs_f64() * 1e6,
        v.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
    );
}

fn main() {
    let dir = tempfile::tempdir_in(".").unwrap();
    let db = Db::open(DbOptions {
        dir: dir.path().to_path_buf(),
        sync: SyncPolicy::OffUnsafeNoDurability,
        ..DbOptions::default()
    })
    .unwrap();
    db.lock_manager().set_hierarchy(Arc::new(Rows));
    let rounds: u32 = std::env::var("DEADLOCK_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let v = Bytes::from_static(b"v");

    // Shape 1: the younger waits, the older closes the cycle, the younger is woken as victim.
    let mut waiting = Vec::with_capacity(rounds as usize);
    for i in 0..rounds {
        let (a, b) = (key(i, b'a'), key(i, b'b'));
        let mut older = db.begin(Isolation::ReadCommitted);
        let mut younger = db.begin(Isolation::ReadCommitted);
        older.put(&a, v.clone()).unwrap();
        younger.put(&b, v.clone()).unwrap();
        let (tx, rx) = mpsc::channel();
        let a2 = a.clone();
        let v2 = v.clone();
        let victim = std::thread::spawn(move || {
            let r = younger.put(&a2, v2);
            let at = Instant::now();
            tx.send(()).ok();
            (r, at, younger)
        });
        // Wait until the younger is parked in the queue of `a`.
        while db.lock_manager().wait_edges().is_empty() {
            std::thread::yield_now();
        }
        assert!(rx.try_recv().is_err());
        // Closing the cycle, from a thread started beforehand: the older now waits for b (held
        // by the victim until it rolls back). The clock starts right before the request.
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (closed_tx, closed_rx) = mpsc::channel();
        let b2 = b.clone();
        let v3 = v.clone();
        let closer = std::thread::spawn(move || {
            go_rx.recv().ok();
            closed_tx.send(Instant::now()).ok();
            let r = older.put(&b2, v3);
            (r, older)
        });
        go_tx.send(()).unwrap();
        let (r, at, younger) = victim.join().unwrap();
        assert!(matches!(r, Err(MvccError::Deadlock { .. })), "{r:?}");
        let closed = closed_rx.recv().unwrap();
        waiting.push(at.saturating_duration_since(closed));
        younger.rollback();
        let (r, older) = closer.join().unwrap();
        r.unwrap();
        older.rollback();
    }
    report("victim_waiting", waiting);

    // Shape 2: the older waits, the younger closes the cycle and fails at once.
    let mut closing = Vec::with_capacity(rounds as usize);
    for i in 0..rounds {
        let (a, b) = (key(rounds + i, b'a'), key(rounds + i, b'b'));
        let mut older = db.begin(Isolation::ReadCommitted);
        let mut younger = db.begin(Isolation::ReadCommitted);
        older.put(&a, v.clone()).unwrap();
        younger.put(&b, v.clone()).unwrap();
        let b2 = b.clone();
        let v2 = v.clone();
        let waiter = std::thread::spawn(move || {
            let r = older.put(&b2, v2);
            (r, older)
        });
        while db.lock_manager().wait_edges().is_empty() {
            std::thread::yield_now();
        }
        let closed = Instant::now();
        let r = younger.put(&a, v.clone());
        closing.push(closed.elapsed());
        assert!(matches!(r, Err(MvccError::Deadlock { .. })), "{r:?}");
        younger.rollback();
        let (r, older) = waiter.join().unwrap();
        r.unwrap();
        older.rollback();
    }
    report("victim_closes", closing);
    let s = db.lock_manager().stats();
    println!("lock stats: {s:?}");
}
