//! The lock manager: table → partition → row locks with PostgreSQL's modes, FIFO wait queues,
//! count- and contention-based escalation, and a wait-for graph searched when a wait starts.
//!
//! The protocol (hierarchy, modes, compatibility matrices, escalation, deadlock detection,
//! what the lock view shows) is described in `README.md` beside this file; read it first.
//!
//! ```text
//!   LockManager
//!    ├─ objects: LockTable<ObjectTag, ObjectMode>   Relation(rel) | Partition(rel, part)
//!    ├─ rows:    LockTable<Vec<u8>, RowMode>        row key bytes
//!    │     each: shards[hash % N]: Mutex<HashMap<key, Entry { holders, FIFO queue }>>
//!    ├─ graph:   Mutex<WaitGraph>                   waiter -> blockers, doomed victims
//!    ├─ hot:     Mutex<HashMap<(rel, part), Window>> contention per partition
//!    └─ stats:   atomics                            waits, deadlocks, escalations, ...
//!   lock order: one shard mutex, then the graph mutex (never the reverse, never two shards)
//! ```

mod graph;
pub mod modes;
mod table;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

pub use graph::{victims_of, Deadlock, WaitEdge};
pub use modes::{IntentMode, Mode, ObjectMode, RowMode, TableMode};

use crate::error::MvccError;
use crate::txn::TxnId;
use graph::WaitGraph;
use table::{relock, Failure, Grant, LockTable, Request};

const SHARDS: usize = 64;

/// Empty table and partition lock entries a shard keeps for reuse ([`LockTable::new`]).
const KEPT_OBJECT_ENTRIES: usize = 64;

/// Whether a lock request took a new lock or found it already held by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The caller now holds a lock it did not hold before.
    New,
    /// The caller already held it (or a stronger mode, or a table/partition lock covering it).
    AlreadyHeld,
}

/// What a row-lock request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLocked {
    /// The row is locked now and was not before (its own row lock or a covering escalated lock).
    New,
    /// The caller already held it.
    AlreadyHeld,
    /// `SKIP LOCKED`: another transaction holds a conflicting lock; the row was not locked.
    Skipped,
}

/// What a row-lock request did, in more detail than [`RowLocked`] (inside the crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowGrant {
    /// The transaction's first lock on the row.
    First,
    /// A stronger mode over one the transaction held.
    Upgrade,
    /// [`RowGrant::Upgrade`], granted at once with the row undisturbed since the stamp given
    /// to [`LockManager::upgrade_row`].
    UndisturbedUpgrade,
    /// An escalated table or partition lock of the transaction covers the row.
    Covered,
    /// The transaction already held the mode (or a covering one).
    AlreadyHeld,
    /// [`LockManager::upgrade_row`]: the transaction held no lock on the row; nothing taken.
    NotHeld,
    /// `SKIP LOCKED`: another transaction holds a conflicting lock.
    Skipped,
}

impl RowGrant {
    /// The public summary.
    pub(crate) fn locked(self) -> RowLocked {
        match self {
            RowGrant::First
            | RowGrant::Upgrade
            | RowGrant::UndisturbedUpgrade
            | RowGrant::Covered => RowLocked::New,
            RowGrant::AlreadyHeld | RowGrant::NotHeld => RowLocked::AlreadyHeld,
            RowGrant::Skipped => RowLocked::Skipped,
        }
    }
}

/// What a [`LockManager::try_row`] took (to give back with [`LockManager::undo_probe`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    /// What the row lock request did.
    pub grant: RowGrant,
    mode: RowMode,
    /// The lengths of the transaction's lock lists before the probe.
    rows: usize,
    objects: usize,
    /// The escalation counts of the row's partition and table before the probe (`None`: no
    /// entry yet), restored when it is given back.
    counts: Option<(RelId, PartitionId, Option<Counts>, Option<Counts>)>,
}

/// What to do when a lock is not free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Wait (bounded by [`WaitLimits`]).
    Block,
    /// Fail at once with [`MvccError::LockNotAvailable`].
    NoWait,
    /// Rows only: report [`RowLocked::Skipped`] at once.
    SkipLocked,
}

/// Bounds on how long a transaction's lock waits may last: PostgreSQL's `lock_timeout` (per
/// wait), the statement's `statement_timeout` deadline, and the session's cancel flag.
#[derive(Debug, Clone, Default)]
pub struct WaitLimits {
    /// A single wait longer than this fails with [`MvccError::LockTimeout`].
    pub lock_timeout: Option<Duration>,
    /// Past this instant a wait fails with [`MvccError::StatementTimeout`].
    pub statement_deadline: Option<Instant>,
    /// When set, a wait fails with [`MvccError::Canceled`] (the flag is left as it is).
    pub cancel: Option<Arc<AtomicBool>>,
}

impl WaitLimits {
    fn next_deadline(&self, started: Instant) -> Option<Instant> {
        let lock = self.lock_timeout.map(|t| started + t);
        match (lock, self.statement_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn expired(&self, started: Instant) -> Option<Failure> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Acquire))
        {
            return Some(Failure::Canceled);
        }
        let now = Instant::now();
        if self.statement_deadline.is_some_and(|d| now >= d) {
            return Some(Failure::StatementTimeout);
        }
        if self.lock_timeout.is_some_and(|t| now >= started + t) {
            return Some(Failure::LockTimeout);
        }
        None
    }
}

/// A table's id as the lock manager knows it (the SQL layer's table OID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelId(pub u32);

/// A partition of a table: for a plain table, a hash bucket of its keys (see
/// [`LockHierarchy::partition_of`]); a declaratively partitioned table maps its partitions here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId(pub u32);

/// A lockable object above the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectTag {
    /// A whole table (modes: [`TableMode`]).
    Relation(RelId),
    /// One partition of a table (modes: [`IntentMode`]).
    Partition(RelId, PartitionId),
}

/// Maps row keys to their place in the hierarchy. The SQL layer installs one
/// ([`LockManager::set_hierarchy`]); keys it does not claim (catalog keys) get row locks only.
pub trait LockHierarchy: Send + Sync {
    /// The table a row key belongs to.
    fn relation_of(&self, key: &[u8]) -> Option<RelId>;
    /// The partition of a row of `rel`. Default: FNV-1a of the key modulo `hash_partitions`
    /// (deterministic, so every node of a later cluster computes the same partition).
    fn partition_of(&self, rel: RelId, key: &[u8], hash_partitions: u32) -> PartitionId {
        let _ = rel;
        let mut h: u32 = 0x811c_9dc5;
        for &b in key {
            h ^= b as u32;
            h = h.wrapping_mul(0x0100_0193);
        }
        PartitionId(h % hash_partitions.max(1))
    }
}

/// Tunables of the lock manager (all changeable at run time with [`LockManager::configure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockSettings {
    /// Hash partitions of a plain table.
    pub hash_partitions: u32,
    /// A transaction holding more row locks than this in one partition escalates to a partition
    /// lock (S or X). 0 = never.
    pub partition_escalation_rows: u32,
    /// ... and past this many row locks in one table, to a table lock (SHARE or EXCLUSIVE).
    /// 0 = never.
    pub table_escalation_rows: u32,
    /// Lock waits in one partition within one window that make it a hot spot, where writers
    /// switch to partition-level locking. 0 = never.
    pub contention_threshold: u32,
    /// The contention window in milliseconds.
    pub contention_window_ms: u32,
}

impl Default for LockSettings {
    fn default() -> Self {
        LockSettings {
            hash_partitions: 16,
            partition_escalation_rows: 1000,
            table_escalation_rows: 5000,
            contention_threshold: 200,
            contention_window_ms: 1000,
        }
    }
}

/// Counters since the database opened (a snapshot; for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockStats {
    /// Lock requests that had to wait.
    pub waits: u64,
    /// Deadlocks detected (one per victim).
    pub deadlocks: u64,
    /// Escalations: row locks replaced by a partition or table lock (count-based), and
    /// partitions switched to partition-level locking (contention-based).
    pub escalations: u64,
    /// Hot partitions switched back to row locking.
    pub de_escalations: u64,
    /// Waits ended by `lock_timeout` or `statement_timeout`.
    pub timeouts: u64,
    /// NOWAIT requests refused.
    pub not_available: u64,
}

#[derive(Default)]
struct Counters {
    waits: AtomicU64,
    deadlocks: AtomicU64,
    escalations: AtomicU64,
    de_escalations: AtomicU64,
    timeouts: AtomicU64,
    not_available: AtomicU64,
}

/// One row of the lock view (`pg_locks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// `relation`, `partition` or `tuple`.
    pub locktype: &'static str,
    /// The table, when known.
    pub relation: Option<RelId>,
    /// The partition (partition and row locks of a table).
    pub partition: Option<PartitionId>,
    /// The row key (row locks).
    pub key: Option<Vec<u8>>,
    /// The holding or waiting transaction.
    pub txn: TxnId,
    /// PostgreSQL's mode name (`RowExclusiveLock`); see the README for row and partition modes.
    pub mode: &'static str,
    /// Held (true) or awaited (false).
    pub granted: bool,
    /// When the wait started (awaited locks).
    pub wait_start: Option<SystemTime>,
    /// True for a partition lock taken by escalation or for a hot partition.
    pub escalated: bool,
}

/// Per partition: waits in the current and the previous window.
struct Window {
    start: Instant,
    count: u32,
    previous: u32,
    hot: bool,
}

/// Hashing of a transaction's own relation and partition ids: NB: a fixed-seed foldhash, not
/// SipHash (the ids are the catalog's and the lock manager's, not a client's choice, and
/// SipHash plus a fresh random seed per transaction were ~5% of a TPC-B transaction's
/// instructions: four hashes per row lock).
type IdHasher = foldhash::fast::FixedState;

/// The locks of one transaction, kept in its [`crate::Txn`]: what to release at the end, and
/// the counts escalation is decided on.
#[derive(Debug, Default)]
pub struct TxnLocks {
    rows: Vec<Vec<u8>>,
    objects: Vec<(ObjectTag, ObjectMode)>,
    partitions: HashMap<(RelId, PartitionId), Counts, IdHasher>,
    tables: HashMap<RelId, Counts, IdHasher>,
    /// How long this transaction's waits may last.
    pub limits: WaitLimits,
    /// Set for the duration of a probe ([`LockManager::try_row`]): a refusal is no NOWAIT
    /// failure for the statistics.
    probing: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    rows: u32,
    any_update: bool,
    /// The next row count at which escalation is tried (after a refused try it doubles).
    next_try: u32,
    /// Set once escalated: the covering mode's strength (true = exclusive).
    escalated: Option<bool>,
}

impl TxnLocks {
    /// True if the transaction holds no lock at all.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.objects.is_empty()
    }

    /// The row keys held locked (a prepared transaction's lock set; a key may repeat).
    pub(crate) fn row_keys(&self) -> Vec<Vec<u8>> {
        self.rows.clone()
    }

    /// The table and partition locks held (a prepared transaction's lock set).
    pub(crate) fn object_locks(&self) -> Vec<(ObjectTag, ObjectMode)> {
        self.objects.clone()
    }

    fn holds(&self, tag: ObjectTag, mode: ObjectMode) -> bool {
        self.objects
            .iter()
            .any(|&(t, m)| t == tag && m.covers(mode))
    }

    fn holds_any(&self, tag: ObjectTag) -> bool {
        self.objects.iter().any(|&(t, _)| t == tag)
    }
}

/// Table, partition and row locks with immediate deadlock detection. One per database, shared
/// by all transactions.
pub struct LockManager {
    objects: LockTable<ObjectTag, ObjectMode>,
    rows: LockTable<Vec<u8>, RowMode>,
    graph: Mutex<WaitGraph>,
    hierarchy: OnceLock<Arc<dyn LockHierarchy>>,
    hash_partitions: AtomicU32,
    partition_escalation_rows: AtomicU32,
    table_escalation_rows: AtomicU32,
    contention_threshold: AtomicU32,
    contention_window_ms: AtomicU32,
    hot: Mutex<HashMap<(RelId, PartitionId), Window>>,
    /// Partitions currently hot (lets the common case skip the `hot` map).
    hot_count: AtomicUsize,
    counters: Counters,
}

impl Default for LockManager {
    fn default() -> Self {
        let s = LockSettings::default();
        let lm = LockManager {
            objects: LockTable::new(SHARDS, KEPT_OBJECT_ENTRIES),
            rows: LockTable::new(SHARDS, 0),
            graph: Mutex::new(WaitGraph::default()),
            hierarchy: OnceLock::new(),
            hash_partitions: AtomicU32::new(0),
            partition_escalation_rows: AtomicU32::new(0),
            table_escalation_rows: AtomicU32::new(0),
            contention_threshold: AtomicU32::new(0),
            contention_window_ms: AtomicU32::new(0),
            hot: Mutex::new(HashMap::new()),
            hot_count: AtomicUsize::new(0),
            counters: Counters::default(),
        };
        lm.configure(s);
        lm
    }
}

fn object_what(tag: ObjectTag, mode: ObjectMode) -> Arc<dyn Fn() -> String + Send + Sync> {
    Arc::new(move || match tag {
        ObjectTag::Relation(r) => format!("{} on relation {}", mode.view_name(), r.0),
        ObjectTag::Partition(r, p) => {
            format!(
                "{} on partition {} of relation {}",
                mode.view_name(),
                p.0,
                r.0
            )
        }
    })
}

impl LockManager {
    /// Installs the key → table/partition mapping (once; later calls are ignored).
    pub fn set_hierarchy(&self, h: Arc<dyn LockHierarchy>) {
        let _ = self.hierarchy.set(h);
    }

    /// Changes the tunables (takes effect for requests made from now on).
    pub fn configure(&self, s: LockSettings) {
        self.hash_partitions
            .store(s.hash_partitions.max(1), Ordering::Relaxed);
        self.partition_escalation_rows
            .store(s.partition_escalation_rows, Ordering::Relaxed);
        self.table_escalation_rows
            .store(s.table_escalation_rows, Ordering::Relaxed);
        self.contention_threshold
            .store(s.contention_threshold, Ordering::Relaxed);
        self.contention_window_ms
            .store(s.contention_window_ms.max(1), Ordering::Relaxed);
    }

    /// The current tunables.
    pub fn settings(&self) -> LockSettings {
        LockSettings {
            hash_partitions: self.hash_partitions.load(Ordering::Relaxed),
            partition_escalation_rows: self.partition_escalation_rows.load(Ordering::Relaxed),
            table_escalation_rows: self.table_escalation_rows.load(Ordering::Relaxed),
            contention_threshold: self.contention_threshold.load(Ordering::Relaxed),
            contention_window_ms: self.contention_window_ms.load(Ordering::Relaxed),
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> LockStats {
        let c = &self.counters;
        LockStats {
            waits: c.waits.load(Ordering::Relaxed),
            deadlocks: c.deadlocks.load(Ordering::Relaxed),
            escalations: c.escalations.load(Ordering::Relaxed),
            de_escalations: c.de_escalations.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            not_available: c.not_available.load(Ordering::Relaxed),
        }
    }

    /// The wait-for graph's edges in their mergeable form (see [`WaitEdge`]).
    pub fn wait_edges(&self) -> Vec<WaitEdge> {
        relock(&self.graph).edges()
    }

    fn failure(&self, f: Failure, txn: TxnId, target: LockTarget, probing: bool) -> MvccError {
        let c = &self.counters;
        match f {
            Failure::NotAvailable => {
                if !probing {
                    c.not_available.fetch_add(1, Ordering::Relaxed);
                }
                MvccError::LockNotAvailable { target }
            }
            Failure::Deadlock(d) => {
                c.deadlocks.fetch_add(1, Ordering::Relaxed);
                MvccError::Deadlock {
                    cycle: if d.cycle.is_empty() {
                        vec![txn]
                    } else {
                        d.cycle
                    },
                    detail: d.detail,
                }
            }
            Failure::LockTimeout => {
                c.timeouts.fetch_add(1, Ordering::Relaxed);
                MvccError::LockTimeout
            }
            Failure::StatementTimeout => {
                c.timeouts.fetch_add(1, Ordering::Relaxed);
                MvccError::StatementTimeout
            }
            Failure::Canceled => MvccError::Canceled,
        }
    }

    /// Takes a table or partition lock for `txn` (held to the end of the transaction).
    pub(crate) fn lock_object(
        &self,
        locks: &mut TxnLocks,
        txn: TxnId,
        tag: ObjectTag,
        mode: ObjectMode,
        wait: LockWait,
    ) -> Result<Acquired, MvccError> {
        if locks.holds(tag, mode) {
            return Ok(Acquired::AlreadyHeld);
        }
        let what = || object_what(tag, mode);
        let on_wait = || {
            self.counters.waits.fetch_add(1, Ordering::Relaxed);
            if let ObjectTag::Partition(r, p) = tag {
                self.note_contention(r, p);
            }
        };
        let req = Request {
            nowait: wait != LockWait::Block,
            limits: &locks.limits,
            what: &what,
            on_wait: &on_wait,
            held_only: false,
            since: None,
            undisturbed: Default::default(),
        };
        match self.objects.acquire(txn, &tag, mode, &req, &self.graph) {
            Ok(Grant::AlreadyHeld | Grant::NotHeld) => Ok(Acquired::AlreadyHeld),
            Ok(Grant::First | Grant::Upgrade) => {
                locks.objects.push((tag, mode));
                Ok(Acquired::New)
            }
            Err(f) => Err(self.failure(f, txn, LockTarget::Object(tag), locks.probing)),
        }
    }

    /// An escalation's try: the lock if it is free now, else nothing (not counted as a NOWAIT
    /// refusal).
    fn try_object(
        &self,
        locks: &mut TxnLocks,
        txn: TxnId,
        tag: ObjectTag,
        mode: ObjectMode,
    ) -> bool {
        if locks.holds(tag, mode) {
            return true;
        }
        let what = || object_what(tag, mode);
        let req = Request {
            nowait: true,
            limits: &locks.limits,
            what: &what,
            on_wait: &|| {},
            held_only: false,
            since: None,
            undisturbed: Default::default(),
        };
        match self.objects.acquire(txn, &tag, mode, &req, &self.graph) {
            Ok(g) => {
                if matches!(g, Grant::First | Grant::Upgrade) {
                    locks.objects.push((tag, mode));
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Locks one row in `mode`: first the table (ROW SHARE or ROW EXCLUSIVE) and the partition
    /// (IS or IX) unless the transaction holds them, then the row, unless an escalated table or
    /// partition lock covers it. May escalate afterwards (see the README).
    pub(crate) fn lock_row(
        &self,
        locks: &mut TxnLocks,
        txn: TxnId,
        key: &[u8],
        mode: RowMode,
        wait: LockWait,
    ) -> Result<RowLocked, MvccError> {
        self.lock_row_grant(locks, txn, key, mode, wait)
            .map(RowGrant::locked)
    }

    /// [`LockManager::lock_row`], saying whether the row lock is the transaction's first on
    /// the row, an upgrade, or covered.
    pub(crate) fn lock_row_grant(
        &self,
        locks: &mut TxnLocks,
        txn: TxnId,
        key: &[u8],
        mode: RowMode,
        wait: LockWait,
    ) -> Result<RowGrant, MvccError> {
        // NB: the hierarchy is borrowed, not cloned: an `Arc` clone per row lock would be two
        // atomic read-modify-writes on a counter every session shares.
        let place = self.place_of(key);
        let Some((rel, part)) = place else {
            return self.lock_plain_row(locks, txn, key, mode, wait, &|| None, false, None);
        };
        let exclusive = mode.is_update();
        if let Some(c) = locks.tables.get(&rel) {
            if c.escalated.is_some_and(|x| x || !exclusive) {
                return Ok(RowGrant::Covered);
            }
        }
        let tmode = if exclusive {
            TableMode::RowExclusive
        } else {
            TableMode::RowShare
        };
        let twait = if wait == LockWait::SkipLocked {
            LockWait::NoWait
        } else {
            wait
        };
        let obj = |e: MvccError| match (e, wait) {
            (MvccError::LockNotAvailable { .. }, LockWait::SkipLocked) => Ok(RowGrant::Skipped),
            (e, _) => Err(e),
        };
        if let Err(e) = self.lock_object(
            locks,
            txn,
            ObjectTag::Relation(rel),
            ObjectMode::Table(tmode),
            twait,
        ) {
            return obj(e);
        }
        if let Some(c) = locks.partitions.get(&(rel, part)) {
            if c.escalated.is_some_and(|x| x || !exclusive) {
                // Covered rows still count towards the table's threshold.
                self.count_and_escalate(locks, txn, rel, part, exclusive);
                return Ok(RowGrant::Covered);
            }
        }
        let ptag = ObjectTag::Partition(rel, part);
        // A hot partition: a writer without locks there yet takes the whole partition (one
        // lock instead of many contended row locks). One that already holds row locks there
        // keeps to rows (upgrading its IX would deadlock with its peers).
        // NB: not for the increment modes, whose holders share the row by design (a partition
        // X lock would serialise them again).
        if exclusive && !mode.is_increment() && !locks.holds_any(ptag) && self.is_hot(rel, part) {
            if let Err(e) = self.lock_object(
                locks,
                txn,
                ptag,
                ObjectMode::Partition(IntentMode::Exclusive),
                twait,
            ) {
                return obj(e);
            }
            locks.partitions.entry((rel, part)).or_default().escalated = Some(true);
            return Ok(RowGrant::Covered);
        }
        let imode = if exclusive {
            IntentMode::IntentExclusive
        } else {
            IntentMode::IntentShare
        };
        if let Err(e) = self.lock_object(locks, txn, ptag, ObjectMode::Partition(imode), twait) {
            return obj(e);
        }
        let r = self.lock_plain_row(locks, txn, key, mode, wait, &|| place, false, None)?;
        if matches!(
            r,
            RowGrant::First | RowGrant::Upgrade | RowGrant::UndisturbedUpgrade
        ) {
            self.count_and_escalate(locks, txn, rel, part, exclusive);
        }
        Ok(r)
    }

    /// A row lock if it is free now, with its table and partition intention locks (as
    /// [`LockManager::lock_row_grant`]): `None` instead of waiting, with whatever the attempt
    /// took given back and no NOWAIT refusal counted. For a caller whose fallback waits.
    /// What it took can be given back with [`LockManager::undo_probe`].
    pub(crate) fn try_row(
        &self,
        locks: &mut TxnLocks,
        txn: TxnId,
        key: &[u8],
        mode: RowMode,
    ) -> Result<Option<Probe>, MvccError> {
        let counts = self.place_of(key).map(|(rel, part)| {
            (
                rel,
                part,
                locks.partitions.get(&(rel, part)).copied(),
                locks.tables.get(&rel).copied(),
            )
        });
        let mark = Probe {
            grant: RowGrant::NotHeld,
            mode,
            rows: locks.rows.len(),
            objects: locks.objects.len(),
            counts,
        };
        locks.probing = true;
        let r = self.lock_row_grant(locks, txn, key, mode, LockWait::NoWait);
        locks.probing = false;
        match r {
            Ok(grant) => Ok(Some(Probe { grant, ..mark })),
            Err(MvccError::LockNotAvailable { .. }) => {
                // The row refused after a new partition intention lock: give that back too.
                self.undo_probe(locks, txn, key, mark);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Gives back what a probe ([`LockManager::try_row`]) took, when it found no row to act
    /// on: the row's mode and any table or partition intention lock it added, so the
    /// transaction holds exactly what it held before, and its escalation counts are what they
    /// were (a given-back probe is no row towards escalation). Nothing is given back if the
    /// probe's row lock made the transaction escalate (the escalated lock now stands for rows
    /// it held before).
    pub(crate) fn undo_probe(&self, locks: &mut TxnLocks, txn: TxnId, key: &[u8], probe: Probe) {
        let added = locks.objects.get(probe.objects..).unwrap_or_default();
        let escalated = added.iter().any(|&(_, m)| {
            !matches!(
                m,
                ObjectMode::Table(TableMode::RowShare | TableMode::RowExclusive)
                    | ObjectMode::Partition(IntentMode::IntentShare | IntentMode::IntentExclusive)
            )
        });
        if escalated {
            return;
        }
        match probe.grant {
            RowGrant::First => {
                if locks.rows.len() != probe.rows + 1
                    || locks.rows.last().is_none_or(|k| k.as_slice() != key)
                {
                    return;
                }
                locks.rows.pop();
                self.rows.release_mode(txn, key, probe.mode, &self.graph);
            }
            RowGrant::Upgrade | RowGrant::UndisturbedUpgrade => {
                self.rows.release_mode(txn, key, probe.mode, &self.graph);
            }
            // Covered, already held, refused: no row mode was added (a covered row was still
            // counted).
            _ => {}
        }
        if let Some((rel, part, partition, table)) = probe.counts {
            match partition {
                Some(c) => {
                    locks.partitions.insert((rel, part), c);
                }
                None => {
                    locks.partitions.remove(&(rel, part));
                }
            }
            match table {
                Some(c) => {
                    locks.tables.insert(rel, c);
                }
                None => {
                    locks.tables.remove(&rel);
                }
            }
        }
        self.release_objects_since(locks, txn, probe.objects);
    }

    fn release_objects_since(&self, locks: &mut TxnLocks, txn: TxnId, mark: usize) {
        while locks.objects.len() > mark {
            if let Some((tag, mode)) = locks.objects.pop() {
                self.objects.release_mode(txn, &tag, mode, &self.graph);
            }
        }
    }

    /// Raises the mode of a row lock the transaction already holds (an incrementer's OBSERVE
    /// or COMMIT over its INCREMENT): in the row table only. The table and partition intention
    /// locks came with the first lock of the row, and an upgrade is no new row for
    /// escalation's counts. `None` if the transaction holds no lock on the row (escalation
    /// released it for a covering lock; or it never had one): then use
    /// [`LockManager::lock_row`].
    ///
    /// With `since` (a [`LockManager::row_stamp`] of the row), the answer is
    /// [`RowGrant::UndisturbedUpgrade`] if the upgrade was granted at once and no other
    /// transaction has held a lock on the row since the stamp (then nobody else can have
    /// written it meanwhile: see [`LockManager::row_stamp`]); the stamp of the row is then
    /// `since + 1`.
    pub(crate) fn upgrade_row(
        &self,
        locks: &mut TxnLocks,
        txn: TxnId,
        key: &[u8],
        mode: RowMode,
        wait: LockWait,
        since: Option<u64>,
    ) -> Result<RowGrant, MvccError> {
        let place = || self.place_of(key);
        self.lock_plain_row(locks, txn, key, mode, wait, &place, true, since)
    }

    /// A stamp of a row `txn` holds locked and nobody else does (`None` if another holds a
    /// lock on it too). NB: what it is for: every writer of a row holds a lock on it while it
    /// writes (early lock release comes after the engine insert), or a table or partition
    /// lock that conflicts with a row locker's intention locks. So if `txn` keeps its lock
    /// and [`LockManager::row_undisturbed`] holds later for the stamp, nobody else has written
    /// the row since the stamp was taken, and a newest version `txn` read after it is still
    /// the newest.
    pub(crate) fn row_stamp(&self, txn: TxnId, key: &[u8]) -> Option<u64> {
        self.rows.stamp(txn, key)
    }

    /// True if no lock on `key` was granted since [`LockManager::row_stamp`] returned `since`
    /// and `txn` is still its only holder.
    pub(crate) fn row_undisturbed(&self, txn: TxnId, key: &[u8], since: u64) -> bool {
        self.rows.undisturbed(txn, key, since)
    }

    /// The table and partition of a row key, if a table claims it.
    fn place_of(&self, key: &[u8]) -> Option<(RelId, PartitionId)> {
        self.hierarchy.get().and_then(|h| {
            h.relation_of(key).map(|rel| {
                let n = self.hash_partitions.load(Ordering::Relaxed);
                (rel, h.partition_of(rel, key, n))
            })
        })
    }

    /// The row table's part of a row lock. `place` (the row's table and partition) is asked
    /// only when the request waits or fails. With `held_only`, only a mode the transaction
    /// already holds on the row is raised ([`RowGrant::NotHeld`] otherwise).
    #[allow(clippy::too_many_arguments)]
    fn lock_plain_row(
        &self,
        locks: &mut TxnLocks,
        txn: TxnId,
        key: &[u8],
        mode: RowMode,
        wait: LockWait,
        place: &dyn Fn() -> Option<(RelId, PartitionId)>,
        held_only: bool,
        since: Option<u64>,
    ) -> Result<RowGrant, MvccError> {
        let what = || -> Arc<dyn Fn() -> String + Send + Sync> {
            let place = place();
            Arc::new(move || match place {
                Some((r, _)) => format!("{} on row of relation {}", mode.view_name(), r.0),
                None => format!("{} on a row", mode.view_name()),
            })
        };
        let on_wait = || {
            self.counters.waits.fetch_add(1, Ordering::Relaxed);
            if let Some((r, p)) = place() {
                self.note_contention(r, p);
            }
        };
        let req = Request {
            nowait: wait != LockWait::Block,
            limits: &locks.limits,
            what: &what,
            on_wait: &on_wait,
            held_only,
            since,
            undisturbed: Default::default(),
        };
        match self.rows.acquire(txn, key, mode, &req, &self.graph) {
            Ok(Grant::Upgrade) if req.undisturbed.get() => Ok(RowGrant::UndisturbedUpgrade),
            Ok(Grant::First) => {
                locks.rows.push(key.to_vec());
                Ok(RowGrant::First)
            }
            // NB: an upgrade adds no entry to `locks.rows`: the release at the end drops
            // every mode the transaction holds on the row.
            Ok(Grant::Upgrade) => Ok(RowGrant::Upgrade),
            Ok(Grant::AlreadyHeld) => Ok(RowGrant::AlreadyHeld),
            Ok(Grant::NotHeld) => Ok(RowGrant::NotHeld),
            Err(Failure::NotAvailable) if wait == LockWait::SkipLocked => Ok(RowGrant::Skipped),
            Err(f) => Err(self.failure(
                f,
                txn,
                LockTarget::Row {
                    relation: place().map(|p| p.0),
                },
                locks.probing,
            )),
        }
    }

    /// Count-based escalation: past the partition threshold, try (without waiting) to take the
    /// partition in S or X and drop the row locks it covers; past the table threshold, the
    /// table in SHARE or EXCLUSIVE. A refused try is repeated at twice the count.
    fn count_and_escalate(
        &self,
        locks: &mut TxnLocks,
        txn: TxnId,
        rel: RelId,
        part: PartitionId,
        exclusive: bool,
    ) {
        let plimit = self.partition_escalation_rows.load(Ordering::Relaxed);
        let tlimit = self.table_escalation_rows.load(Ordering::Relaxed);
        let p = locks.partitions.entry((rel, part)).or_default();
        p.rows += 1;
        p.any_update |= exclusive;
        let (prows, pupd, pnext) = (p.rows, p.any_update, p.next_try);
        let t = locks.tables.entry(rel).or_default();
        t.rows += 1;
        t.any_update |= exclusive;
        let (trows, tupd, tnext) = (t.rows, t.any_update, t.next_try);
        if tlimit > 0 && trows > tlimit && trows >= tnext {
            let mode = if tupd {
                TableMode::Exclusive
            } else {
                TableMode::Share
            };
            let got = self.try_object(
                locks,
                txn,
                ObjectTag::Relation(rel),
                ObjectMode::Table(mode),
            );
            let t = locks.tables.entry(rel).or_default();
            if got {
                t.escalated = Some(tupd);
                self.counters.escalations.fetch_add(1, Ordering::Relaxed);
                self.release_rows_where(locks, txn, |r, _| r == rel);
            } else {
                t.next_try = trows.saturating_mul(2);
            }
            return;
        }
        let pescalated = locks
            .partitions
            .get(&(rel, part))
            .is_some_and(|p| p.escalated.is_some());
        if plimit > 0 && !pescalated && prows > plimit && prows >= pnext {
            let mode = if pupd {
                IntentMode::Exclusive
            } else {
                IntentMode::Share
            };
            let got = self.try_object(
                locks,
                txn,
                ObjectTag::Partition(rel, part),
                ObjectMode::Partition(mode),
            );
            let p = locks.partitions.entry((rel, part)).or_default();
            if got {
                p.escalated = Some(pupd);
                self.counters.escalations.fetch_add(1, Ordering::Relaxed);
                self.release_rows_where(locks, txn, |r, q| r == rel && q == part);
            } else {
                p.next_try = prows.saturating_mul(2);
            }
        }
    }

    /// Bulk work announced by the SQL layer (see [`crate::Txn::bulk_write_hint`]).
    pub(crate) fn bulk_write_hint(
        &self,
        locks: &mut TxnLocks,
        txn: TxnId,
        rel: RelId,
        rows: usize,
    ) {
        let limit = self.table_escalation_rows.load(Ordering::Relaxed);
        if limit == 0 || rows <= limit as usize {
            return;
        }
        if locks
            .tables
            .get(&rel)
            .is_some_and(|t| t.escalated == Some(true))
        {
            return;
        }
        let got = self.try_object(
            locks,
            txn,
            ObjectTag::Relation(rel),
            ObjectMode::Table(TableMode::Exclusive),
        );
        if got {
            let t = locks.tables.entry(rel).or_default();
            t.escalated = Some(true);
            t.any_update = true;
            self.counters.escalations.fetch_add(1, Ordering::Relaxed);
            self.release_rows_where(locks, txn, |r, _| r == rel);
        }
    }

    /// Releases the row locks of `txn` that `covered` says an escalated lock now covers.
    /// NB: safe because the escalated lock conflicts with every intention lock of others, so
    /// nobody else holds or awaits a row lock there.
    fn release_rows_where(
        &self,
        locks: &mut TxnLocks,
        txn: TxnId,
        covered: impl Fn(RelId, PartitionId) -> bool,
    ) {
        let Some(h) = self.hierarchy.get() else {
            return;
        };
        let n = self.hash_partitions.load(Ordering::Relaxed);
        locks.rows.retain(|key| {
            let Some(rel) = h.relation_of(key) else {
                return true;
            };
            if covered(rel, h.partition_of(rel, key, n)) {
                self.rows.release(txn, key.as_slice());
                false
            } else {
                true
            }
        });
    }

    /// Releases every lock of `txn` (commit or rollback), waking the waiters now granted.
    pub(crate) fn release_all(&self, locks: &mut TxnLocks, txn: TxnId) {
        for key in locks.rows.drain(..) {
            self.rows.release(txn, key.as_slice());
        }
        for (tag, _) in locks.objects.drain(..) {
            self.objects.release(txn, &tag);
        }
        locks.partitions.clear();
        locks.tables.clear();
    }

    /// Row locks taken directly by key, outside any transaction handle (resume of a
    /// transaction's plain state, tests): exclusive (FOR UPDATE) and without the hierarchy.
    pub fn lock_row_key(&self, txn: TxnId, key: &[u8]) -> Result<Acquired, MvccError> {
        let mut locks = TxnLocks::default();
        let r = self.lock_plain_row(
            &mut locks,
            txn,
            key,
            RowMode::Update,
            LockWait::Block,
            &|| None,
            false,
            None,
        )?;
        Ok(if r.locked() == RowLocked::New {
            Acquired::New
        } else {
            Acquired::AlreadyHeld
        })
    }

    /// Releases locks taken with [`LockManager::lock_row_key`].
    pub fn release_row_keys<'a>(&self, txn: TxnId, keys: impl IntoIterator<Item = &'a Vec<u8>>) {
        for k in keys {
            self.rows.release(txn, k.as_slice());
        }
    }

    /// The holders of `key`'s row lock (for diagnostics and tests).
    pub fn row_holders(&self, key: &[u8]) -> Vec<(TxnId, RowMode)> {
        self.rows.holders(key)
    }

    /// The holders of a table or partition lock.
    pub fn object_holders(&self, tag: ObjectTag) -> Vec<(TxnId, ObjectMode)> {
        self.objects.holders(&tag)
    }

    /// Every held and awaited lock: tables, partitions and rows.
    pub fn view(&self) -> Vec<LockInfo> {
        let hot: Vec<(RelId, PartitionId)> = relock(&self.hot)
            .iter()
            .filter(|(_, w)| w.hot)
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::new();
        for r in self.objects.rows() {
            let (locktype, relation, partition) = match r.key {
                ObjectTag::Relation(rel) => ("relation", Some(rel), None),
                ObjectTag::Partition(rel, p) => ("partition", Some(rel), Some(p)),
            };
            let escalated = match (r.key, r.mode) {
                (ObjectTag::Partition(rel, p), ObjectMode::Partition(m)) => {
                    matches!(m, IntentMode::Share | IntentMode::Exclusive)
                        || hot.contains(&(rel, p))
                }
                (_, ObjectMode::Table(m)) => matches!(m, TableMode::Exclusive | TableMode::Share),
                _ => false,
            };
            out.push(LockInfo {
                locktype,
                relation,
                partition,
                key: None,
                txn: r.txn,
                mode: r.mode.view_name(),
                granted: r.granted,
                wait_start: r.wait_start,
                escalated,
            });
        }
        let h = self.hierarchy.get();
        let n = self.hash_partitions.load(Ordering::Relaxed);
        for r in self.rows.rows() {
            let relation = h.and_then(|h| h.relation_of(&r.key));
            let partition = match (h, relation) {
                (Some(h), Some(rel)) => Some(h.partition_of(rel, &r.key, n)),
                _ => None,
            };
            out.push(LockInfo {
                locktype: "tuple",
                relation,
                partition,
                key: Some(r.key),
                txn: r.txn,
                mode: r.mode.view_name(),
                granted: r.granted,
                wait_start: r.wait_start,
                escalated: false,
            });
        }
        out
    }

    /// Partitions currently switched to partition-level locking by contention.
    pub fn hot_partitions(&self) -> Vec<(RelId, PartitionId)> {
        let mut v: Vec<_> = relock(&self.hot)
            .iter()
            .filter(|(_, w)| w.hot)
            .map(|(k, _)| *k)
            .collect();
        v.sort();
        v
    }

    fn roll(w: &mut Window, now: Instant, window: Duration) {
        let age = now.saturating_duration_since(w.start);
        if age >= window {
            w.previous = if age >= window * 2 { 0 } else { w.count };
            w.count = 0;
            w.start = now;
        }
    }

    /// A lock wait happened in partition `(rel, part)`: counts it in the sliding window and
    /// switches the partition to partition-level locking past the threshold.
    fn note_contention(&self, rel: RelId, part: PartitionId) {
        let threshold = self.contention_threshold.load(Ordering::Relaxed);
        if threshold == 0 {
            return;
        }
        let window =
            Duration::from_millis(self.contention_window_ms.load(Ordering::Relaxed) as u64);
        let now = Instant::now();
        let mut hot = relock(&self.hot);
        let w = hot.entry((rel, part)).or_insert(Window {
            start: now,
            count: 0,
            previous: 0,
            hot: false,
        });
        Self::roll(w, now, window);
        w.count += 1;
        if !w.hot && w.count >= threshold {
            w.hot = true;
            self.hot_count.fetch_add(1, Ordering::Relaxed);
            self.counters.escalations.fetch_add(1, Ordering::Relaxed);
        }
        if hot.len() > 4096 {
            // Forget partitions that have been quiet for two windows.
            hot.retain(|_, w| {
                w.hot || w.count > 0 || now.saturating_duration_since(w.start) < window * 2
            });
        }
    }

    /// True while `(rel, part)` is hot; switches it back once a whole window and the current one
    /// stay under half the threshold.
    fn is_hot(&self, rel: RelId, part: PartitionId) -> bool {
        if self.hot_count.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let threshold = self.contention_threshold.load(Ordering::Relaxed);
        let window =
            Duration::from_millis(self.contention_window_ms.load(Ordering::Relaxed) as u64);
        let now = Instant::now();
        let mut hot = relock(&self.hot);
        let Some(w) = hot.get_mut(&(rel, part)) else {
            return false;
        };
        if !w.hot {
            return false;
        }
        Self::roll(w, now, window);
        if threshold == 0 || (w.previous < threshold / 2 && w.count < threshold / 2) {
            w.hot = false;
            self.hot_count.fetch_sub(1, Ordering::Relaxed);
            self.counters.de_escalations.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// What a refused lock request was for (the SQL layer names the relation in its message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockTarget {
    /// A row (of this table, when known).
    Row {
        /// The row's table.
        relation: Option<RelId>,
    },
    /// A table or partition.
    Object(ObjectTag),
}

impl LockTarget {
    /// The table the lock belongs to, when known.
    pub fn relation(&self) -> Option<RelId> {
        match *self {
            LockTarget::Row { relation } => relation,
            LockTarget::Object(ObjectTag::Relation(r) | ObjectTag::Partition(r, _)) => Some(r),
        }
    }
}

#[cfg(test)]
mod tests;
