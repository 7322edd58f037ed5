//! The transaction registry: snapshots in use (for the GC safe point) and the life of every
//! writing transaction (for `gnomon_transactions` and status look-ups by id).
//!
//! ```text
//!  shards[txn id % 16]: Mutex<Shard {
//!      snapshots: sorted Vec<(Timestamp, refcount)> first = this shard's GC bound
//!      writers:   HashMap<TxnId, Live>              active .. prepared .. committing
//!      history:   VecDeque<TxnInfo>  (≤ HISTORY_PER_SHARD, oldest dropped first)
//!  }>
//! ```
//!
//! A transaction enters `writers` at its first write (PostgreSQL assigns an xid then too): a
//! read-only transaction costs the registry nothing beyond its snapshot. When a writer ends,
//! its entry moves to `history` in the same critical section that unregisters its snapshot,
//! so a look-up never misses a transaction between the two maps.
//!
//! Bounded memory: the history keeps the newest [`HISTORY_PER_SHARD`] finished writers of
//! each shard (16 384 in all, about 1 MiB); older ids are "unknown". Live writers (active and
//! prepared) are bounded by the sessions and by `max_prepared_transactions`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use crate::clock::Timestamp;
use crate::txn::TxnId;

/// Shards of the registry (transactions are spread by id).
const SHARDS: usize = 16;
/// Finished writing transactions remembered per shard.
pub const HISTORY_PER_SHARD: usize = 1024;

/// Where a transaction is in its life, as `gnomon_transactions` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnPhase {
    /// Reading and writing.
    Active,
    /// Its prepare record is being made durable (PREPARE TRANSACTION in progress).
    Preparing,
    /// Prepared (in doubt): durable, invisible, locks held, waiting for COMMIT/ROLLBACK PREPARED.
    Prepared,
    /// Its commit record is in the log, waiting to be durable and visible.
    Committing,
    /// Durable and visible.
    Committed,
    /// Its rollback is being made durable (ROLLBACK PREPARED in progress).
    RollingBack,
    /// Rolled back: none of its writes are visible.
    RolledBack,
}

impl TxnPhase {
    /// The name shown in SQL: `active`, `preparing`, `prepared`, `committing`, `committed`,
    /// `rolling back`, `rolled back`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TxnPhase::Active => "active",
            TxnPhase::Preparing => "preparing",
            TxnPhase::Prepared => "prepared",
            TxnPhase::Committing => "committing",
            TxnPhase::Committed => "committed",
            TxnPhase::RollingBack => "rolling back",
            TxnPhase::RolledBack => "rolled back",
        }
    }
}

/// One writing transaction as the registry knows it (a row of `gnomon_transactions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnInfo {
    /// The transaction.
    pub id: TxnId,
    /// Its global identifier once PREPARE TRANSACTION named it.
    pub gid: Option<String>,
    /// Where it is.
    pub status: TxnPhase,
    /// When it began (wall clock, µs since the Unix epoch).
    pub started_us: u64,
    /// Its commit timestamp, once committed.
    pub commit_ts: Option<Timestamp>,
}

#[derive(Debug)]
struct Live {
    started_us: u64,
    status: TxnPhase,
    gid: Option<String>,
}

#[derive(Default)]
pub(crate) struct Shard {
    /// Registered snapshots and how many transactions use each, sorted by timestamp. A sorted
    /// vector, not a map: a shard holds a few snapshots at a time, and a vector keeps its
    /// capacity where a B-tree allocates a node for its first entry and frees it with its last
    /// (an allocation and a free per transaction: register + unregister took 510 instructions
    /// per point SELECT with the B-tree, 214 with the vector).
    snapshots: Vec<(Timestamp, usize)>,
    writers: HashMap<TxnId, Live>,
    history: VecDeque<TxnInfo>,
}

impl Shard {
    pub(crate) fn add_snapshot(&mut self, ts: Timestamp) {
        match self.snapshots.binary_search_by_key(&ts, |&(t, _)| t) {
            Ok(i) => self.snapshots[i].1 += 1,
            Err(i) => self.snapshots.insert(i, (ts, 1)),
        }
    }

    pub(crate) fn remove_snapshot(&mut self, ts: Timestamp) {
        if let Ok(i) = self.snapshots.binary_search_by_key(&ts, |&(t, _)| t) {
            self.snapshots[i].1 -= 1;
            if self.snapshots[i].1 == 0 {
                self.snapshots.remove(i);
            }
        }
    }

    fn oldest_snapshot(&self) -> Option<Timestamp> {
        self.snapshots.first().map(|&(ts, _)| ts)
    }
}

/// Snapshots and writers, sharded by transaction id.
pub(crate) struct Registry {
    shards: Vec<Mutex<Shard>>,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // NB: every update of a shard is a few map operations that cannot panic half-way.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }
}

impl Registry {
    /// The shard of `txn`, locked.
    pub(crate) fn shard(&self, txn: TxnId) -> MutexGuard<'_, Shard> {
        relock(&self.shards[(txn.0 % SHARDS as u64) as usize])
    }

    /// The oldest snapshot in use. NB: all shards are held together, so no snapshot can
    /// register below the result while it is computed (registration reads the engine's
    /// `visible` under its shard's lock).
    pub(crate) fn oldest_snapshot(&self) -> Option<Timestamp> {
        let shards: Vec<_> = self.shards.iter().map(relock).collect();
        shards.iter().filter_map(|s| s.oldest_snapshot()).min()
    }

    /// `txn` wrote for the first time: it becomes visible to look-ups as active.
    pub(crate) fn writer_started(&self, txn: TxnId, started_us: u64) {
        self.shard(txn).writers.entry(txn).or_insert(Live {
            started_us,
            status: TxnPhase::Active,
            gid: None,
        });
    }

    /// A live writer moves to `status` (naming its gid once it has one).
    pub(crate) fn set_phase(&self, txn: TxnId, status: TxnPhase, gid: Option<&str>) {
        if let Some(live) = self.shard(txn).writers.get_mut(&txn) {
            live.status = status;
            if let Some(g) = gid {
                live.gid = Some(g.to_string());
            }
        }
    }

    /// A recovered prepared transaction: live again, as prepared, under its gid.
    pub(crate) fn recovered_prepared(&self, txn: TxnId, gid: &str, started_us: u64) {
        self.shard(txn).writers.insert(
            txn,
            Live {
                started_us,
                status: TxnPhase::Prepared,
                gid: Some(gid.to_string()),
            },
        );
    }

    /// `txn` ended: its snapshot (if it still had one) is unregistered and, if it was a writer,
    /// it moves to the history as committed (with `commit_ts`) or rolled back.
    pub(crate) fn finished(
        &self,
        txn: TxnId,
        snapshot: Option<Timestamp>,
        commit_ts: Option<Timestamp>,
    ) {
        let mut shard = self.shard(txn);
        if let Some(ts) = snapshot {
            shard.remove_snapshot(ts);
        }
        if let Some(live) = shard.writers.remove(&txn) {
            if shard.history.len() >= HISTORY_PER_SHARD {
                shard.history.pop_front();
            }
            shard.history.push_back(TxnInfo {
                id: txn,
                gid: live.gid,
                status: if commit_ts.is_some() {
                    TxnPhase::Committed
                } else {
                    TxnPhase::RolledBack
                },
                started_us: live.started_us,
                commit_ts,
            });
        }
    }

    /// What is known about `txn`: live, or finished recently enough to be in the history.
    pub(crate) fn status(&self, txn: TxnId) -> Option<TxnInfo> {
        let shard = self.shard(txn);
        if let Some(live) = shard.writers.get(&txn) {
            return Some(TxnInfo {
                id: txn,
                gid: live.gid.clone(),
                status: live.status,
                started_us: live.started_us,
                commit_ts: None,
            });
        }
        shard.history.iter().rev().find(|i| i.id == txn).cloned()
    }

    /// Every live writer and every remembered finished one, by id.
    pub(crate) fn list(&self) -> Vec<TxnInfo> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let shard = relock(shard);
            out.extend(shard.writers.iter().map(|(id, live)| TxnInfo {
                id: *id,
                gid: live.gid.clone(),
                status: live.status,
                started_us: live.started_us,
                commit_ts: None,
            }));
            out.extend(shard.history.iter().cloned());
        }
        out.sort_by_key(|i| i.id);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_bounded_per_shard_and_keeps_the_newest() {
        let r = Registry::default();
        let n = (HISTORY_PER_SHARD as u64 + 10) * SHARDS as u64;
        for id in 0..n {
            r.writer_started(TxnId(id), id);
            r.finished(TxnId(id), None, None);
        }
        assert_eq!(r.list().len(), HISTORY_PER_SHARD * SHARDS);
        assert!(r.status(TxnId(0)).is_none(), "the oldest are forgotten");
        let newest = r.status(TxnId(n - 1)).unwrap();
        assert_eq!(newest.status, TxnPhase::RolledBack);
    }

    #[test]
    fn readers_never_enter_the_writer_maps() {
        let r = Registry::default();
        r.finished(TxnId(5), None, None);
        assert!(r.status(TxnId(5)).is_none());
        assert!(r.list().is_empty());
    }

    #[test]
    fn the_oldest_snapshot_holds_until_its_last_user_leaves() {
        let ts = |us| Timestamp {
            physical_us: us,
            ..Timestamp::ZERO
        };
        let r = Registry::default();
        assert_eq!(r.oldest_snapshot(), None);
        // Two transactions in one shard share snapshot 10; others use 30 and 20.
        r.shard(TxnId(1)).add_snapshot(ts(30));
        r.shard(TxnId(1)).add_snapshot(ts(10));
        r.shard(TxnId(17)).add_snapshot(ts(10));
        r.shard(TxnId(2)).add_snapshot(ts(20));
        assert_eq!(r.oldest_snapshot(), Some(ts(10)));
        r.shard(TxnId(1)).remove_snapshot(ts(10));
        assert_eq!(r.oldest_snapshot(), Some(ts(10)), "one user of 10 is left");
        r.shard(TxnId(17)).remove_snapshot(ts(10));
        assert_eq!(r.oldest_snapshot(), Some(ts(20)));
        // Removing a snapshot nobody registered changes nothing.
        r.shard(TxnId(1)).remove_snapshot(ts(5));
        r.shard(TxnId(2)).remove_snapshot(ts(20));
        assert_eq!(r.oldest_snapshot(), Some(ts(30)));
        r.shard(TxnId(1)).remove_snapshot(ts(30));
        assert_eq!(r.oldest_snapshot(), None);
    }
}
