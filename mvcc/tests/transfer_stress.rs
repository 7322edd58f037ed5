//! Many threads move money between accounts while others read: the total is the same at every
//! snapshot, whatever the interleaving, through a checkpoint and a reopen.

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use gnomon_mvcc::{Db, DbOptions, Isolation, SyncPolicy};

const ACCOUNTS: u64 = 20;
const INITIAL: i64 = 1_000;

fn key(i: u64) -> Vec<u8> {
    format!("acct{i:03}").into_bytes()
}

fn balance(v: &Bytes) -> i64 {
    i64::from_le_bytes(v.as_ref().try_into().unwrap())
}

fn total(db: &Arc<Db>) -> (i64, usize) {
    let t = db.begin(Isolation::RepeatableRead);
    let rows = t.scan(Bound::Unbounded, Bound::Unbounded, false).unwrap();
    (rows.iter().map(|(_, v)| balance(v)).sum(), rows.len())
}

#[test]
fn total_balance_holds_at_every_snapshot_under_concurrent_transfers() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || DbOptions {
        dir: dir.path().to_path_buf(),
        sync: SyncPolicy::OffUnsafeNoDurability,
        ..DbOptions::default()
    };
    let db = Db::open(opts()).unwrap();
    let mut t = db.begin(Isolation::ReadCommitted);
    for i in 0..ACCOUNTS {
        t.put(&key(i), Bytes::copy_from_slice(&INITIAL.to_le_bytes()))
            .unwrap();
    }
    t.commit().unwrap();
    let expected = INITIAL * ACCOUNTS as i64;

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let retried = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..6u64 {
        let (db, committed, retried) = (db.clone(), committed.clone(), retried.clone());
        let iso = if w % 2 == 0 {
            Isolation::RepeatableRead
        } else {
            Isolation::ReadCommitted
        };
        workers.push(std::thread::spawn(move || {
            let mut seed = w * 7919 + 1;
            for _ in 0..300 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let from = (seed >> 33) % ACCOUNTS;
                let to = (from + 1 + (seed >> 40) % (ACCOUNTS - 1)) % ACCOUNTS;
                let amount = ((seed >> 50) % 50) as i64;
                loop {
                    let mut t = db.begin(iso);
                    let result = (|| {
                        let a = balance(&t.get_for_update(&key(from))?.unwrap());
                        let b = balance(&t.get_for_update(&key(to))?.unwrap());
                        t.put(
                            &key(from),
                            Bytes::copy_from_slice(&(a - amount).to_le_bytes()),
                        )?;
                        t.put(
                            &key(to),
                            Bytes::copy_from_slice(&(b + amount).to_le_bytes()),
                        )?;
                        Ok::<_, gnomon_mvcc::MvccError>(())
                    })();
                    match result.and_then(|_| t.commit().map(|_| ())) {
                        Ok(()) => {
                            committed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Err(e) if e.is_retryable() => {
                            retried.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("transfer failed: {e}"),
                    }
                }
            }
        }));
    }
    let checker = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut checks = 0;
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(total(&db), (expected, ACCOUNTS as usize));
                checks += 1;
                if checks % 50 == 0 {
                    db.checkpoint().unwrap();
                }
            }
            checks
        })
    };
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let checks = checker.join().unwrap();
    assert!(checks > 0);
    assert_eq!(committed.load(Ordering::Relaxed), 6 * 300);
    assert_eq!(total(&db), (expected, ACCOUNTS as usize));
    drop(db);
    let db = Db::open(opts()).unwrap();
    assert_eq!(total(&db), (expected, ACCOUNTS as usize), "after reopen");
}
