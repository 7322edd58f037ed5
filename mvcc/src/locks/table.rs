//! One lock table: resources of one kind (rows, or tables and partitions), each with its
//! granted holders and a FIFO queue of waiters. Generic over the key and the mode.

use std::borrow::Borrow;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::graph::{Deadlock, WaitGraph, WaitHandle, DOOMED, GAVE_UP, GRANTED};
use super::modes::Mode;
use super::WaitLimits;
use crate::txn::TxnId;

/// Safety net: a waiter re-reads its blockers at least this often (a holder that upgrades its
/// mode past a waiter adds an edge nobody reports); every other change of blockers is an edge
/// added when the wait starts, so cycles are normally found at once.
const RECHECK: Duration = Duration::from_millis(50);

type KeyHasher = foldhash::fast::RandomState;

pub(crate) fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // NB: lock tables stay consistent under panics (each update is a few map operations).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Waiter<M> {
    txn: TxnId,
    mode: M,
    handle: Arc<WaitHandle>,
    since: SystemTime,
}

struct Entry<M> {
    /// Granted (transaction, mode) pairs; a transaction may hold several modes.
    holders: Vec<(TxnId, M)>,
    /// Waiters in arrival order (an upgrading holder goes first).
    queue: VecDeque<Waiter<M>>,
    /// Grants made on this entry so far (each push to `holders`): see [`LockTable::stamp`].
    grants: u64,
}

impl<M: Mode> Entry<M> {
    fn new() -> Self {
        Entry {
            holders: Vec::new(),
            queue: VecDeque::new(),
            grants: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.holders.is_empty() && self.queue.is_empty()
    }

    fn holder_conflict(&self, txn: TxnId, mode: M) -> bool {
        self.holders
            .iter()
            .any(|&(t, m)| t != txn && m.conflicts_with(mode))
    }

    /// Who `txn` (queued in `mode`) waits for: conflicting holders, and conflicting waiters
    /// ahead of it in the queue.
    fn blockers(&self, txn: TxnId, mode: M) -> Vec<TxnId> {
        let mut out: Vec<TxnId> = self
            .holders
            .iter()
            .filter(|&&(t, m)| t != txn && m.conflicts_with(mode))
            .map(|&(t, _)| t)
            .collect();
        for w in &self.queue {
            if w.txn == txn {
                break;
            }
            if w.handle.get() == super::graph::WAITING && w.mode.conflicts_with(mode) {
                out.push(w.txn);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Grants queued requests in FIFO order: each waiter that conflicts neither with the
    /// holders nor with a still-waiting request ahead of it. Exactly the granted are woken.
    fn grant_waiters(&mut self) {
        let mut ahead: Vec<M> = Vec::new();
        let mut i = 0;
        while i < self.queue.len() {
            let w = &self.queue[i];
            if w.handle.get() != super::graph::WAITING {
                i += 1; // leaving (doomed or gave up): it removes itself
                continue;
            }
            let ok = !self.holder_conflict(w.txn, w.mode)
                && !ahead.iter().any(|m| m.conflicts_with(w.mode));
            if ok && w.handle.decide(GRANTED) {
                let w = self.queue.remove(i).expect("index checked");
                self.holders.push((w.txn, w.mode));
                self.grants += 1;
                w.handle.thread.unpark();
                continue;
            }
            ahead.push(w.mode);
            i += 1;
        }
    }
}

/// What a request may do besides waiting plainly.
pub(crate) struct Request<'a> {
    /// Fail at once instead of waiting.
    pub nowait: bool,
    pub limits: &'a WaitLimits,
    /// Describes the request for deadlock messages (called only when the request waits).
    pub what: &'a dyn Fn() -> Arc<dyn Fn() -> String + Send + Sync>,
    /// Called once when the request starts waiting (statistics, contention tracking).
    pub on_wait: &'a dyn Fn(),
    /// Only raise a mode the transaction already holds on the resource: if it holds none,
    /// answer [`Grant::NotHeld`] and take nothing.
    pub held_only: bool,
    /// A [`LockTable::stamp`] the transaction took earlier: `undisturbed` is set if the
    /// request is granted at once and the resource is still undisturbed since the stamp.
    pub since: Option<u64>,
    /// See `since`.
    pub undisturbed: Cell<bool>,
}

/// What a granted (or declined) request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    /// The transaction held no mode on the resource and now holds `mode`.
    First,
    /// The transaction held a weaker mode and now holds `mode` too.
    Upgrade,
    /// The transaction already held `mode` or one covering it.
    AlreadyHeld,
    /// `held_only` and the transaction holds nothing there: nothing was taken.
    NotHeld,
}

/// Why a request did not get its lock.
#[derive(Debug)]
pub(crate) enum Failure {
    NotAvailable,
    Deadlock(Deadlock),
    LockTimeout,
    StatementTimeout,
    Canceled,
}

/// A lock as the lock view shows it.
pub(crate) struct LockRow<K, M> {
    pub key: K,
    pub txn: TxnId,
    pub mode: M,
    pub granted: bool,
    pub wait_start: Option<SystemTime>,
}

/// One shard: resources hashed to it, each with its entry.
type Shard<K, M> = Mutex<HashMap<K, Entry<M>, KeyHasher>>;

pub(crate) struct LockTable<K, M> {
    shards: Box<[Shard<K, M>]>,
    hasher: KeyHasher,
    /// An entry left empty stays in its shard while the shard holds at most this many
    /// entries (see [`LockTable::new`]).
    keep_empty: usize,
}

impl<K: Hash + Eq + Clone, M: Mode> LockTable<K, M> {
    /// A table of `shards` shards. An entry whose last holder leaves is removed, unless its
    /// shard holds at most `keep_empty` entries: a table lock is taken and released by every
    /// statement, and keeping its entry saves a map insert, a removal and the holder list's
    /// allocation each time (0 for rows, which are many and rarely locked twice). Kept
    /// entries are bounded by `keep_empty` per shard.
    pub(crate) fn new(shards: usize, keep_empty: usize) -> Self {
        LockTable {
            shards: (0..shards)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            hasher: KeyHasher::default(),
            keep_empty,
        }
    }

    /// Entries in all shards, empty ones included (tests of the keep-empty bound).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> usize {
        self.shards.iter().map(|s| relock(s).len()).sum()
    }

    /// Removes `key`'s entry if it is empty and the shard holds more than `keep_empty`.
    fn prune<Q>(&self, map: &mut HashMap<K, Entry<M>, KeyHasher>, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if map.len() > self.keep_empty && map.get(key).is_some_and(Entry::is_empty) {
            map.remove(key);
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &Shard<K, M> {
        &self.shards[(self.hasher.hash_one(key) as usize) % self.shards.len()]
    }

    /// Takes `mode` on `key` for `txn`, waiting in FIFO order behind conflicting holders and
    /// earlier conflicting waiters (an upgrade by a holder goes to the front).
    pub(crate) fn acquire<Q>(
        &self,
        txn: TxnId,
        key: &Q,
        mode: M,
        req: &Request<'_>,
        graph: &Mutex<WaitGraph>,
    ) -> Result<Grant, Failure>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized + ToOwned<Owned = K>,
    {
        let shard = self.shard(key);
        let mut map = relock(shard);
        let entry = match map.get_mut(key) {
            Some(e) => e,
            None if req.held_only => return Ok(Grant::NotHeld),
            None => map.entry(key.to_owned()).or_insert_with(Entry::new),
        };
        // One pass over the holders (a table's entry holds every transaction writing it).
        let mut upgrading = false;
        let mut holder_conflict = false;
        for &(t, m) in &entry.holders {
            if t == txn {
                if m.covers(mode) {
                    return Ok(Grant::AlreadyHeld);
                }
                upgrading = true;
            } else if m.conflicts_with(mode) {
                holder_conflict = true;
            }
        }
        if req.held_only && !upgrading {
            return Ok(Grant::NotHeld);
        }
        let granted = if upgrading {
            Grant::Upgrade
        } else {
            Grant::First
        };
        // Where the request queues if it must wait: an upgrade goes first, except a fair one
        // (`Mode::fair_upgrade`), which goes just ahead of the first waiter that waits for it
        // (conflicts with a mode it holds) and behind the others.
        let place = if !upgrading {
            entry.queue.len()
        } else if mode.fair_upgrade() {
            entry
                .queue
                .iter()
                .position(|w| {
                    entry
                        .holders
                        .iter()
                        .any(|&(t, m)| t == txn && m.conflicts_with(w.mode))
                })
                .unwrap_or(entry.queue.len())
        } else {
            0
        };
        let queue_conflict =
            !entry.queue.is_empty()
                && entry.queue.iter().take(place).any(|w| {
                    w.handle.get() == super::graph::WAITING && w.mode.conflicts_with(mode)
                });
        if !holder_conflict && !queue_conflict {
            if req.since == Some(entry.grants) && entry.holders.iter().all(|&(t, _)| t == txn) {
                req.undisturbed.set(true);
            }
            entry.holders.push((txn, mode));
            entry.grants += 1;
            return Ok(granted);
        }
        if req.nowait {
            return Err(Failure::NotAvailable);
        }
        let handle = WaitHandle::new();
        let waiter = Waiter {
            txn,
            mode,
            handle: handle.clone(),
            since: SystemTime::now(),
        };
        entry.queue.insert(place, waiter);
        let mut blockers = entry.blockers(txn, mode);
        (req.on_wait)();
        let what = (req.what)();
        let started = Instant::now();
        if let Err(d) = relock(graph).wait(txn, blockers.clone(), handle.clone(), what.clone()) {
            // NB: nobody else decides for us while we hold the shard and graph mutexes.
            handle.decide(GAVE_UP);
            self.leave(&mut map, key, &handle);
            return Err(Failure::Deadlock(d));
        }
        loop {
            drop(map);
            let mut nap = RECHECK;
            if let Some(d) = req.limits.next_deadline(started) {
                nap = nap.min(d.saturating_duration_since(Instant::now()));
            }
            std::thread::park_timeout(nap);
            map = relock(shard);
            match handle.get() {
                GRANTED => {
                    drop(map);
                    relock(graph).stop(txn);
                    return Ok(granted);
                }
                DOOMED => {
                    let d = relock(graph).take_doom(txn);
                    self.leave(&mut map, key, &handle);
                    return Err(Failure::Deadlock(d.unwrap_or_else(|| Deadlock {
                        cycle: vec![txn],
                        detail: String::new(),
                    })));
                }
                _ => {}
            }
            if let Some(f) = req.limits.expired(started) {
                if handle.decide(GAVE_UP) {
                    relock(graph).stop(txn);
                    self.leave(&mut map, key, &handle);
                    return Err(f);
                }
                continue; // granted or doomed just now: the next round reports it
            }
            if let Some(entry) = map.get(key) {
                let now = entry.blockers(txn, mode);
                if now != blockers {
                    blockers = now;
                    if let Err(d) =
                        relock(graph).wait(txn, blockers.clone(), handle.clone(), what.clone())
                    {
                        handle.decide(GAVE_UP);
                        self.leave(&mut map, key, &handle);
                        return Err(Failure::Deadlock(d));
                    }
                }
            }
        }
    }

    /// A waiter leaves the queue without the lock; the requests behind it may now be grantable.
    fn leave<Q>(&self, map: &mut HashMap<K, Entry<M>, KeyHasher>, key: &Q, handle: &Arc<WaitHandle>)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(entry) = map.get_mut(key) else {
            return;
        };
        entry.queue.retain(|w| !Arc::ptr_eq(&w.handle, handle));
        entry.grant_waiters();
        self.prune(map, key);
    }

    /// Releases every mode `txn` holds on `key` and grants what can now be granted.
    pub(crate) fn release<Q>(&self, txn: TxnId, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = relock(self.shard(key));
        let Some(entry) = map.get_mut(key) else {
            return;
        };
        entry.holders.retain(|&(t, _)| t != txn);
        if entry.queue.is_empty() {
            self.prune(&mut map, key);
            return;
        }
        entry.grant_waiters();
    }

    /// Gives back one mode `txn` holds on `key` before the transaction ends (a probe that found
    /// nothing to act on) and grants what can now be granted. If `txn` holds nothing there
    /// any more, the waiters still queued stop waiting for it in the wait-for graph: their
    /// edges to it would otherwise outlive the lock (unlike a release at the end, after which
    /// `txn` never waits again, this transaction goes on and may wait).
    pub(crate) fn release_mode<Q>(&self, txn: TxnId, key: &Q, mode: M, graph: &Mutex<WaitGraph>)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = relock(self.shard(key));
        let Some(entry) = map.get_mut(key) else {
            return;
        };
        entry.holders.retain(|&(t, m)| t != txn || m != mode);
        if entry.queue.is_empty() {
            self.prune(&mut map, key);
            return;
        }
        entry.grant_waiters();
        if entry.holders.iter().all(|&(t, _)| t != txn) {
            let mut g = relock(graph);
            for w in &entry.queue {
                if w.handle.get() == super::graph::WAITING {
                    g.forget_blocker(w.txn, txn);
                }
            }
        }
    }

    /// A mark of `key` as `txn` holds it alone: the entry's grant count if `txn` is its only
    /// holder, else `None`. While `txn` holds a mode on `key` the entry stays, so
    /// [`LockTable::undisturbed`] with this mark tells whether any other transaction has held
    /// a lock on `key` since (whoever held one before has released it, hence finished what
    /// it did under it).
    pub(crate) fn stamp<Q>(&self, txn: TxnId, key: &Q) -> Option<u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = relock(self.shard(key));
        let entry = map.get(key)?;
        (!entry.holders.is_empty() && entry.holders.iter().all(|&(t, _)| t == txn))
            .then_some(entry.grants)
    }

    /// True if since [`LockTable::stamp`] returned `since`, no lock on `key` was granted and
    /// nobody but `txn` holds one.
    pub(crate) fn undisturbed<Q>(&self, txn: TxnId, key: &Q, since: u64) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = relock(self.shard(key));
        map.get(key).is_some_and(|e| {
            e.grants == since && !e.holders.is_empty() && e.holders.iter().all(|&(t, _)| t == txn)
        })
    }

    /// The transactions holding `key`, with their modes.
    pub(crate) fn holders<Q>(&self, key: &Q) -> Vec<(TxnId, M)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        relock(self.shard(key))
            .get(key)
            .map(|e| e.holders.clone())
            .unwrap_or_default()
    }

    /// Every held and awaited lock (for the lock view).
    pub(crate) fn rows(&self) -> Vec<LockRow<K, M>> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let map = relock(shard);
            for (k, e) in map.iter() {
                for &(txn, mode) in &e.holders {
                    out.push(LockRow {
                        key: k.clone(),
                        txn,
                        mode,
                        granted: true,
                        wait_start: None,
                    });
                }
                for w in &e.queue {
                    if w.handle.state.load(Ordering::Acquire) == super::graph::WAITING {
                        out.push(LockRow {
                            key: k.clone(),
                            txn: w.txn,
                            mode: w.mode,
                            granted: false,
                            wait_start: Some(w.since),
                        });
                    }
                }
            }
        }
        out
    }
}
