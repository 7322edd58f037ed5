//! Row write locks: the first form of Gnomon's lock manager.
//!
//! A row lock is exclusive and held by one transaction until it commits (early lock release:
//! until its commit record is queued in the log) or rolls back. A second writer of the row
//! waits (PostgreSQL's behaviour); every wait adds an edge `waiter → holder` to a wait-for
//! graph, and the edge that closes a cycle is detected the moment it is added. The youngest
//! transaction of the cycle (the largest [`TxnId`]) is the victim: it fails with
//! [`MvccError::Deadlock`] naming the cycle, the others go on.
//!
//! ```text
//!   shards[hash(key) % N]: Mutex<HashMap<key, RowLock { holder, waiters, cv }>>
//!   graph: Mutex<{ waits_for: waiter -> holder, waiting_on: waiter -> row cv, doomed: victim -> cycle }>
//!   lock order: shard mutex, then graph mutex (never the reverse)
//! ```
//!
//! Waking: each contended row has its own condition variable; a release wakes exactly one
//! waiter of that row (no thundering herd on hot rows). A waiter that leaves without the lock
//! (deadlock victim) passes the wake-up on if the row is free. A waiter's edge follows the row's
//! current holder each time it wakes (at the latest every `RECHECK`), so a cycle formed behind
//! a hand-off is found within milliseconds.
//!
//! Deliberately left out (the locking issue adds them): shared and intention modes, the
//! table → partition → row hierarchy, escalation, strict FIFO order among waiters (the woken
//! waiter may lose the row to a newcomer, which then wakes the next one), edges exported for
//! cross-node detection.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::MvccError;
use crate::txn::TxnId;

const SHARDS: usize = 64;
/// Safety net: a waiter re-checks its row and its wait-for edge at least this often.
const RECHECK: Duration = Duration::from_millis(5);

/// Whether [`LockManager::lock_row`] took a new lock or found it already held by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The caller now holds a lock it did not hold before (and must release it).
    New,
    /// The caller already held it.
    AlreadyHeld,
}

/// Row keys are client data: the hash is keyed per process (foldhash's random seed) and fast.
type KeyHasher = foldhash::fast::RandomState;

/// One locked (or waited-for) row. Kept while it has a holder or waiters.
struct RowLock {
    holder: Option<TxnId>,
    waiters: u32,
    /// Created by the first waiter; woken once per release.
    cv: Option<Arc<Condvar>>,
}

#[derive(Default)]
struct Shard {
    rows: Mutex<HashMap<Vec<u8>, RowLock, KeyHasher>>,
}

#[derive(Default)]
struct WaitGraph {
    waits_for: HashMap<TxnId, TxnId>,
    waiting_on: HashMap<TxnId, Arc<Condvar>>,
    /// Victims chosen while they wait, with the cycle that doomed them.
    doomed: HashMap<TxnId, Vec<TxnId>>,
}

/// Exclusive row locks with immediate deadlock detection. One per database; shared by all
/// transactions.
pub struct LockManager {
    shards: Vec<Shard>,
    graph: Mutex<WaitGraph>,
    hasher: KeyHasher,
    /// Lock requests that had to wait, and deadlock victims ([`LockManager::stats`]).
    waits: AtomicU64,
    deadlocks: AtomicU64,
}

/// What the lock manager has counted since the database was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockStats {
    /// Lock requests that found the row held by another transaction and waited.
    pub waits: u64,
    /// Transactions failed as the victim of a lock cycle.
    pub deadlocks: u64,
}

impl Default for LockManager {
    fn default() -> Self {
        LockManager {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            graph: Mutex::new(WaitGraph::default()),
            hasher: Default::default(),
            waits: AtomicU64::new(0),
            deadlocks: AtomicU64::new(0),
        }
    }
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // NB: lock tables stay consistent under panics (each update is a single map operation).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LockManager {
    /// Counters since the manager was created (relaxed reads).
    pub fn stats(&self) -> LockStats {
        LockStats {
            waits: self.waits.load(Ordering::Relaxed),
            deadlocks: self.deadlocks.load(Ordering::Relaxed),
        }
    }

    fn shard_of(&self, key: &[u8]) -> &Shard {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Takes the write lock on `key` for `txn`, waiting while another transaction holds it.
    /// Fails with [`MvccError::Deadlock`] if waiting would close a cycle and `txn` is the
    /// youngest in it, or if `txn` is chosen as the victim of a cycle while it waits.
    pub fn lock_row(&self, txn: TxnId, key: &[u8]) -> Result<Acquired, MvccError> {
        let shard = self.shard_of(key);
        let mut rows = relock(&shard.rows);
        let mut waited = false;
        loop {
            let row = rows.entry_ref_or_insert(key);
            match row.holder {
                None => {
                    row.holder = Some(txn);
                    if waited {
                        row.waiters -= 1;
                        drop(rows);
                        // NB: only a transaction that waited has graph entries (edges are added,
                        // and victims chosen, only among waiters), so the uncontended path never
                        // takes the graph mutex.
                        self.stop_waiting(txn);
                    }
                    return Ok(Acquired::New);
                }
                Some(h) if h == txn => {
                    if waited {
                        row.waiters -= 1;
                        drop(rows);
                        self.stop_waiting(txn);
                    }
                    return Ok(Acquired::AlreadyHeld);
                }
                Some(holder) => {
                    if !waited {
                        row.waiters += 1;
                        waited = true;
                        self.waits.fetch_add(1, Ordering::Relaxed);
                    }
                    let cv = row
                        .cv
                        .get_or_insert_with(|| Arc::new(Condvar::new()))
                        .clone();
                    if let Err(e) = self.wait_edge(txn, holder, &cv) {
                        self.deadlocks.fetch_add(1, Ordering::Relaxed);
                        Self::leave_queue(&mut rows, key);
                        return Err(e);
                    }
                    rows = cv
                        .wait_timeout(rows, RECHECK)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    let mut g = relock(&self.graph);
                    if let Some(cycle) = g.doomed.remove(&txn) {
                        g.waits_for.remove(&txn);
                        g.waiting_on.remove(&txn);
                        drop(g);
                        self.deadlocks.fetch_add(1, Ordering::Relaxed);
                        Self::leave_queue(&mut rows, key);
                        return Err(MvccError::Deadlock { cycle });
                    }
                }
            }
        }
    }

    /// A waiter gives up without the lock: it is no longer counted, and if the row is free its
    /// wake-up goes to the next waiter (or the entry goes away).
    fn leave_queue(rows: &mut HashMap<Vec<u8>, RowLock, KeyHasher>, key: &[u8]) {
        let Some(row) = rows.get_mut(key) else { return };
        row.waiters = row.waiters.saturating_sub(1);
        if row.holder.is_none() {
            if row.waiters == 0 {
                rows.remove(key);
            } else if let Some(cv) = &row.cv {
                cv.notify_one();
            }
        }
    }

    /// Releases every lock in `keys` held by `txn`, waking one waiter of each.
    pub fn release_all<'a>(&self, txn: TxnId, keys: impl IntoIterator<Item = &'a Vec<u8>>) {
        for key in keys {
            let mut rows = relock(&self.shard_of(key).rows);
            let Some(row) = rows.get_mut(key.as_slice()) else {
                continue;
            };
            if row.holder != Some(txn) {
                continue;
            }
            row.holder = None;
            if row.waiters == 0 {
                rows.remove(key.as_slice());
            } else if let Some(cv) = &row.cv {
                cv.notify_one();
            }
        }
    }

    /// The current holder of `key`'s lock, if any (for diagnostics and tests).
    pub fn holder(&self, key: &[u8]) -> Option<TxnId> {
        relock(&self.shard_of(key).rows)
            .get(key)
            .and_then(|r| r.holder)
    }

    fn stop_waiting(&self, txn: TxnId) {
        let mut g = relock(&self.graph);
        g.waits_for.remove(&txn);
        g.waiting_on.remove(&txn);
        g.doomed.remove(&txn);
    }

    /// Records `waiter → holder` and looks for the cycle this edge closes.
    fn wait_edge(&self, waiter: TxnId, holder: TxnId, cv: &Arc<Condvar>) -> Result<(), MvccError> {
        let mut g = relock(&self.graph);
        if g.waits_for.get(&waiter) == Some(&holder) {
            return Ok(()); // already recorded on an earlier wake-up; nothing new to detect
        }
        g.waits_for.insert(waiter, holder);
        g.waiting_on.insert(waiter, cv.clone());
        let mut cycle = vec![waiter];
        let mut cur = holder;
        while let Some(&next) = g.waits_for.get(&cur) {
            cycle.push(cur);
            if next == waiter {
                let victim = cycle.iter().copied().max().unwrap_or(waiter);
                let pos = cycle.iter().position(|&t| t == victim).unwrap_or(0);
                cycle.rotate_left(pos);
                if victim == waiter {
                    g.waits_for.remove(&waiter);
                    g.waiting_on.remove(&waiter);
                    return Err(MvccError::Deadlock { cycle });
                }
                let victim_cv = g.waiting_on.get(&victim).cloned();
                g.doomed.insert(victim, cycle);
                drop(g);
                if let Some(cv) = victim_cv {
                    // Wakes every waiter of the victim's row; the others re-check and sleep.
                    cv.notify_all();
                }
                return Ok(());
            }
            if cycle.len() > g.waits_for.len() {
                break; // a cycle not through `waiter` (already being resolved): not ours to judge
            }
            cur = next;
        }
        Ok(())
    }
}

/// `HashMap::entry` needs an owned key; the common case (row already present) should not
/// allocate one.
trait EntryRefOrInsert {
    fn entry_ref_or_insert(&mut self, key: &[u8]) -> &mut RowLock;
}

impl EntryRefOrInsert for HashMap<Vec<u8>, RowLock, KeyHasher> {
    fn entry_ref_or_insert(&mut self, key: &[u8]) -> &mut RowLock {
        // NB: two probes either way; only a missing row pays for an owned key.
        let owned = if self.contains_key(key) {
            None
        } else {
            Some(key.to_vec())
        };
        match owned {
            Some(k) => self.entry(k).or_insert(RowLock {
                holder: None,
                waiters: 0,
                cv: None,
            }),
            None => self
                .get_mut(key)
                .expect("present: checked above under the same shard mutex"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{mpsc, Arc};

    #[test]
    fn second_writer_waits_until_the_first_releases() {
        let lm = Arc::new(LockManager::default());
        let key = b"k".to_vec();
        assert_eq!(lm.lock_row(TxnId(1), &key).unwrap(), Acquired::New);
        assert_eq!(lm.lock_row(TxnId(1), &key).unwrap(), Acquired::AlreadyHeld);
        let (tx, rx) = mpsc::channel();
        let lm2 = lm.clone();
        let k2 = key.clone();
        let t = std::thread::spawn(move || {
            let r = lm2.lock_row(TxnId(2), &k2);
            tx.send(()).unwrap();
            r
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(50)).is_err(),
            "must wait"
        );
        lm.release_all(TxnId(1), [&key]);
        rx.recv().unwrap();
        assert_eq!(t.join().unwrap().unwrap(), Acquired::New);
        assert_eq!(lm.holder(&key), Some(TxnId(2)));
    }

    #[test]
    fn deadlock_aborts_the_youngest_and_the_other_goes_on() {
        let lm = Arc::new(LockManager::default());
        let (a, b) = (b"a".to_vec(), b"b".to_vec());
        lm.lock_row(TxnId(10), &a).unwrap();
        lm.lock_row(TxnId(20), &b).unwrap();
        let lm2 = lm.clone();
        let a2 = a.clone();
        // Older transaction 10 waits for b (held by 20).
        let older = std::thread::spawn(move || lm2.lock_row(TxnId(10), b"b"));
        std::thread::sleep(Duration::from_millis(20));
        // Younger 20 closes the cycle by waiting for a: it is the victim.
        let err = lm.lock_row(TxnId(20), &a2).unwrap_err();
        match err {
            MvccError::Deadlock { cycle } => {
                assert_eq!(cycle[0], TxnId(20));
                assert!(cycle.contains(&TxnId(10)));
            }
            other => panic!("expected deadlock, got {other:?}"),
        }
        lm.release_all(TxnId(20), [&b]);
        assert_eq!(older.join().unwrap().unwrap(), Acquired::New);
    }

    #[test]
    fn a_waiting_victim_is_woken_with_the_deadlock_error() {
        let lm = Arc::new(LockManager::default());
        let (a, b) = (b"a".to_vec(), b"b".to_vec());
        lm.lock_row(TxnId(10), &a).unwrap();
        lm.lock_row(TxnId(20), &b).unwrap();
        let lm2 = lm.clone();
        // Younger 20 waits first; older 10 closes the cycle, so the waiting 20 is the victim.
        let younger = std::thread::spawn(move || lm2.lock_row(TxnId(20), b"a"));
        std::thread::sleep(Duration::from_millis(20));
        let lm3 = lm.clone();
        let older = std::thread::spawn(move || lm3.lock_row(TxnId(10), b"b"));
        assert!(matches!(
            younger.join().unwrap(),
            Err(MvccError::Deadlock { .. })
        ));
        lm.release_all(TxnId(20), [&b]);
        assert_eq!(older.join().unwrap().unwrap(), Acquired::New);
    }
}
