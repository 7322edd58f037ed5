//! The wait-for graph: who waits for whom, kept as plain edges, searched for a cycle each time a
//! transaction starts waiting (or its blockers change).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::Thread;

use crate::txn::TxnId;

/// A waiter's state, changed only by compare-and-swap from `WAITING` (so a grant and a deadlock
/// verdict cannot both win).
pub(crate) const WAITING: u8 = 0;
pub(crate) const GRANTED: u8 = 1;
pub(crate) const DOOMED: u8 = 2;
pub(crate) const GAVE_UP: u8 = 3;

/// How to wake one waiting thread and tell it why.
pub(crate) struct WaitHandle {
    pub state: AtomicU8,
    pub thread: Thread,
}

impl WaitHandle {
    pub(crate) fn new() -> Arc<WaitHandle> {
        Arc::new(WaitHandle {
            state: AtomicU8::new(WAITING),
            thread: std::thread::current(),
        })
    }

    /// Moves from `WAITING` to `to`; false if something else decided first.
    pub(crate) fn decide(&self, to: u8) -> bool {
        self.state
            .compare_exchange(WAITING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn get(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }
}

/// One edge of the wait-for graph: `waiter` cannot go on until `blocker` releases a lock (or is
/// granted one ahead of it in a FIFO queue). This is the mergeable form: edges of several nodes
/// are unioned as they are (transaction ids are qualified by `node`), a cycle in the union is a
/// global deadlock, and its youngest transaction is the victim, exactly as locally.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaitEdge {
    /// The node that began the waiting transaction (qualifies its id; 0 = this node until the
    /// cluster phase assigns node ids to transactions).
    pub waiter_node: u32,
    /// The waiting transaction.
    pub waiter: TxnId,
    /// The node that began the blocking transaction.
    pub blocker_node: u32,
    /// A transaction it waits for.
    pub blocker: TxnId,
    /// What is waited for, for messages (`ExclusiveLock on row of relation 16384`).
    pub resource: String,
}

struct WaitRecord {
    blockers: Vec<TxnId>,
    handle: Arc<WaitHandle>,
    /// Mode and resource, formatted only when a deadlock is reported.
    what: Arc<dyn Fn() -> String + Send + Sync>,
}

/// The graph: one record per waiting transaction (a transaction waits for one lock at a time).
#[derive(Default)]
pub(crate) struct WaitGraph {
    waits: HashMap<TxnId, WaitRecord>,
    /// Victims chosen while they wait, with the message of the cycle that doomed them.
    doomed: HashMap<TxnId, Deadlock>,
}

/// A detected cycle, starting with the victim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deadlock {
    /// The transactions of the cycle, victim first.
    pub cycle: Vec<TxnId>,
    /// One line per transaction: what it waits for and who blocks it.
    pub detail: String,
}

impl WaitGraph {
    /// Records (or replaces) `waiter`'s wait and looks for a cycle through it. Returns the
    /// deadlock if `waiter` is the victim (its record is then gone); if another member is
    /// younger, that one is doomed and woken, and `Ok` is returned.
    pub(crate) fn wait(
        &mut self,
        waiter: TxnId,
        blockers: Vec<TxnId>,
        handle: Arc<WaitHandle>,
        what: Arc<dyn Fn() -> String + Send + Sync>,
    ) -> Result<(), Deadlock> {
        if let Some(r) = self.waits.get(&waiter) {
            if r.blockers == blockers {
                return Ok(()); // nothing new to detect
            }
        }
        self.waits.insert(
            waiter,
            WaitRecord {
                blockers,
                handle,
                what,
            },
        );
        let Some(cycle) = self.find_cycle(waiter) else {
            return Ok(());
        };
        let victim = cycle.iter().copied().max().unwrap_or(waiter);
        let mut cycle = cycle;
        let pos = cycle.iter().position(|&t| t == victim).unwrap_or(0);
        cycle.rotate_left(pos);
        let deadlock = self.describe(cycle);
        if victim == waiter {
            self.waits.remove(&waiter);
            return Err(deadlock);
        }
        if let Some(r) = self.waits.get(&victim) {
            if r.handle.decide(DOOMED) {
                r.handle.thread.unpark();
                self.doomed.insert(victim, deadlock);
            }
        }
        Ok(())
    }

    /// The verdict for a doomed waiter (removing its record).
    pub(crate) fn take_doom(&mut self, waiter: TxnId) -> Option<Deadlock> {
        self.waits.remove(&waiter);
        self.doomed.remove(&waiter)
    }

    /// `blocker` no longer blocks `waiter` (it gave back the lock `waiter` waits for, without
    /// ending). Removing an edge closes no cycle, so nothing is searched.
    pub(crate) fn forget_blocker(&mut self, waiter: TxnId, blocker: TxnId) {
        if let Some(r) = self.waits.get_mut(&waiter) {
            r.blockers.retain(|&b| b != blocker);
        }
    }

    /// `waiter` stopped waiting (granted, timed out, cancelled).
    pub(crate) fn stop(&mut self, waiter: TxnId) {
        self.waits.remove(&waiter);
        self.doomed.remove(&waiter);
    }

    /// A path `waiter -> ... -> waiter` over the edges, if one exists (depth first; doomed
    /// waiters are already being resolved and do not count).
    fn find_cycle(&self, waiter: TxnId) -> Option<Vec<TxnId>> {
        let mut path = vec![waiter];
        let mut next_index = vec![0usize];
        let mut seen: HashSet<TxnId> = HashSet::new();
        seen.insert(waiter);
        while let Some(&top) = path.last() {
            let depth = path.len() - 1;
            let blockers: &[TxnId] = match self.waits.get(&top) {
                Some(r) if !self.doomed.contains_key(&top) => &r.blockers,
                _ => &[],
            };
            let i = next_index[depth];
            if i >= blockers.len() {
                path.pop();
                next_index.pop();
                continue;
            }
            next_index[depth] += 1;
            let b = blockers[i];
            if b == waiter {
                return Some(path);
            }
            if seen.insert(b) {
                path.push(b);
                next_index.push(0);
            }
        }
        None
    }

    fn describe(&self, cycle: Vec<TxnId>) -> Deadlock {
        let mut detail = String::new();
        for (i, t) in cycle.iter().enumerate() {
            let next = cycle[(i + 1) % cycle.len()];
            let what = self
                .waits
                .get(t)
                .map(|r| (r.what)())
                .unwrap_or_else(|| "a lock".into());
            if !detail.is_empty() {
                detail.push('\n');
            }
            detail.push_str(&format!(
                "Transaction {t} waits for {what}; blocked by transaction {next}."
            ));
        }
        Deadlock { cycle, detail }
    }

    /// Every edge, in the mergeable form.
    pub(crate) fn edges(&self) -> Vec<WaitEdge> {
        let mut out = Vec::new();
        for (w, r) in &self.waits {
            let resource = (r.what)();
            for b in &r.blockers {
                out.push(WaitEdge {
                    waiter_node: 0,
                    waiter: *w,
                    blocker_node: 0,
                    blocker: *b,
                    resource: resource.clone(),
                });
            }
        }
        out.sort();
        out
    }
}

/// Finds the deadlock victims of a merged edge set (edges of several nodes): for every cycle,
/// its youngest transaction, as (node, id). The distributed detector of a later phase runs this over the union
/// of each node's [`super::LockManager::wait_edges`].
pub fn victims_of(edges: &[WaitEdge]) -> Vec<(u32, TxnId)> {
    let mut g = WaitGraph::default();
    // Qualify ids by node: encode (node, txn) pairs into a local graph keyed by position.
    let mut ids: Vec<(u32, TxnId)> = Vec::new();
    let id_of = |n: u32, t: TxnId, ids: &mut Vec<(u32, TxnId)>| -> TxnId {
        match ids.iter().position(|&x| x == (n, t)) {
            Some(p) => TxnId(p as u64),
            None => {
                ids.push((n, t));
                TxnId(ids.len() as u64 - 1)
            }
        }
    };
    let mut adjacency: HashMap<TxnId, Vec<TxnId>> = HashMap::new();
    for e in edges {
        let w = id_of(e.waiter_node, e.waiter, &mut ids);
        let b = id_of(e.blocker_node, e.blocker, &mut ids);
        adjacency.entry(w).or_default().push(b);
    }
    let mut victims = Vec::new();
    let mut ordered: Vec<TxnId> = adjacency.keys().copied().collect();
    ordered.sort();
    for w in ordered {
        let handle = WaitHandle::new();
        g.waits.insert(
            w,
            WaitRecord {
                blockers: adjacency.get(&w).cloned().unwrap_or_default(),
                handle,
                what: Arc::new(String::new),
            },
        );
    }
    loop {
        let mut found = None;
        let mut keys: Vec<TxnId> = g.waits.keys().copied().collect();
        keys.sort();
        for w in keys {
            if let Some(c) = g.find_cycle(w) {
                found = Some(c);
                break;
            }
        }
        let Some(cycle) = found else { break };
        // Youngest: the largest transaction id (ties across nodes broken by node id).
        let Some(&victim) = cycle.iter().max_by_key(|t| {
            let (n, id) = ids[t.0 as usize];
            (id, n)
        }) else {
            break;
        };
        g.waits.remove(&victim);
        victims.push(ids[victim.0 as usize]);
    }
    victims
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(wn: u32, w: u64, bn: u32, b: u64) -> WaitEdge {
        WaitEdge {
            waiter_node: wn,
            waiter: TxnId(w),
            blocker_node: bn,
            blocker: TxnId(b),
            resource: String::new(),
        }
    }

    #[test]
    fn merged_edges_of_two_nodes_find_the_global_cycle_and_its_youngest() {
        // Lock manager A: (1,5) waits for (2,9). Lock manager B: (2,9) waits for (1,5); and an
        // unrelated (1,9) that waits for nobody in a cycle. Neither manager alone has a cycle.
        let a = vec![edge(1, 5, 2, 9)];
        let b = vec![edge(2, 9, 1, 5), edge(1, 9, 1, 5)];
        assert!(victims_of(&a).is_empty());
        assert!(victims_of(&b).is_empty());
        let merged: Vec<WaitEdge> = a.into_iter().chain(b).collect();
        assert_eq!(victims_of(&merged), vec![(2, TxnId(9))]);
    }

    #[test]
    fn a_cycle_through_a_shared_lock_with_two_blockers_is_found() {
        let mut g = WaitGraph::default();
        let what: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(|| "x".to_string());
        g.wait(
            TxnId(1),
            vec![TxnId(2), TxnId(3)],
            WaitHandle::new(),
            what.clone(),
        )
        .unwrap();
        g.wait(TxnId(2), vec![TxnId(4)], WaitHandle::new(), what.clone())
            .unwrap();
        let d = g
            .wait(TxnId(3), vec![TxnId(1)], WaitHandle::new(), what)
            .unwrap_err();
        assert_eq!(d.cycle, vec![TxnId(3), TxnId(1)]);
        assert!(d
            .detail
            .contains("Transaction 3 waits for x; blocked by transaction 1."));
    }
}
