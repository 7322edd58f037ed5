//! Serializable snapshot isolation (SSI): what turns snapshot isolation into SERIALIZABLE.
//!
//! The method is Cahill, Röhm and Fekete's, with the refinements of Ports and Grittner that
//! PostgreSQL implements (`src/backend/storage/lmgr/README-SSI`). Snapshot isolation already
//! orders every write-read and write-write dependency by commit time; the only edges of the
//! serialization graph that can run against time are read-write antidependencies
//! `R -rw-> W`: R read a version and W, concurrent with R, wrote the next one. Every cycle of
//! the graph under snapshot isolation contains a *dangerous structure*
//!
//! ```text
//!     T1 --rw--> T2 --rw--> T3        (T1 may be T3)
//! ```
//!
//! in which T3 is the first transaction of the cycle to commit. SSI tracks rw-antidependencies
//! among SERIALIZABLE transactions and aborts one transaction of every dangerous structure
//! before it can commit: a sound (some false positives), not exact, test.
//!
//! ## What is tracked
//!
//! Only SERIALIZABLE transactions appear here; READ COMMITTED and REPEATABLE READ transactions
//! never touch this module (a branch on the isolation level in `Txn`), as in PostgreSQL, where
//! anomalies involving a non-serializable transaction are allowed.
//!
//! ```text
//!  Ssi { xacts: TxnId -> Sxact }                     one mutex; only SERIALIZABLE takes it
//!  Sxact { snapshot, phase: Active | Prepared | Committed{ts, published} | ReadOnlyCommitted,
//!          doomed, summary_in,
//!          reads:  SIREAD "locks"  = point keys + key ranges (the predicate of every scan)
//!          writes: keys written (registered when the commit timestamp is assigned)
//!          ins:  {T : T -rw-> self}   outs: {T : self -rw-> T}
//!          summary_out: earliest commit ts of a forgotten T with self -rw-> T, T first }
//! ```
//!
//! An rw-antidependency `R -rw-> W` on a key is found by whichever side comes second:
//! - **read side**: R records its SIREAD lock, then looks for a transaction W with a commit
//!   timestamp after R's snapshot whose registered write set meets the key or range;
//! - **write side**: W, in its commit step, looks for SIREAD locks of concurrent transactions
//!   that meet its write set.
//!
//! A write also checks the SIREAD locks on its key when it is made (`Ssi::write_key`), so
//! a structure usually fails at the statement that completes it, as in PostgreSQL. The write
//! set itself is registered only at commit (writes are buffered in the transaction until then,
//! so no reader can see them before): a reader that comes after the write but before the
//! commit is found by the commit's write-side check. Either way every edge is known before
//! either end of it commits, because all checks run under the same mutex.
//!
//! ## Invariants
//!
//! 1. A SERIALIZABLE transaction's snapshot is taken under the SSI mutex, and a writer's
//!    commit timestamp is assigned (`commit_order` nested inside the SSI mutex) in the same
//!    critical section as its write-side check and dangerous-structure check. Hence the commit
//!    order of serializable writers is their timestamp order, and it agrees with visibility:
//!    if Ti's commit is in Tj's snapshot then `ts(Ti) <= snapshot(Tj) < ts(Tj)`. "T3 committed
//!    first" is decided on commit timestamps.
//! 2. Every rw-antidependency between two concurrent serializable transactions is recorded
//!    before the later of the two commits (read side and write side are ordered by the mutex;
//!    a key a writer has not yet registered is not yet in the engine either).
//! 3. Whenever an edge is added, and whenever a writer commits, every dangerous structure the
//!    new edge or commit completes is checked (PostgreSQL's `OnConflict_CheckFor...` and
//!    `PreCommit_CheckFor...`). A structure is dangerous when T3 has committed and committed
//!    before T1 and T2 (uncommitted counts as later), except that a transaction known to be
//!    read only (committed without writes) as T1 needs T3 committed before T1's *snapshot*.
//!    The transaction acting (reading, or committing) fails with 40001; a pivot found by
//!    another transaction's commit is *doomed* and fails at its next read or its commit.
//! 4. Bounded memory: a committed transaction is forgotten once it overlaps no active
//!    serializable transaction (every active snapshot includes its commit, and its commit is
//!    published so every later snapshot does too). A forgotten out-neighbour that committed
//!    first leaves its commit timestamp in `summary_out` (PostgreSQL's conflict-out flag), so
//!    `R -rw-> W -rw-> (forgotten)` is still caught. Aborted transactions are forgotten at once.
//!    Per transaction, more than [`MAX_POINT_READS`] point reads collapse into one covering
//!    range, and more than [`MAX_RANGE_READS`] ranges into one (coarser is sound: only more
//!    false positives).
//!
//! ## Prepared transactions (two-phase commit)
//!
//! A prepared transaction can no longer be aborted by SSI: COMMIT PREPARED must succeed. So
//! PREPARE TRANSACTION is its commit point as far as SSI is concerned (PostgreSQL runs its
//! pre-commit check there too):
//!
//! - `Ssi::prepare` runs the commit step's checks (doomed, write side, dangerous structures
//!   with itself as T3 committing first), registers its write set, and moves it to phase
//!   `Prepared`. A pivot it would doom that is itself prepared cannot be doomed: the preparing
//!   transaction fails instead ("commit suicide", as PostgreSQL).
//! - While prepared, it is treated as *committed first* wherever it stands as T3 (it will commit
//!   after everything committed so far, so a structure with an already committed T1 or T2 is
//!   not dangerous; with an uncommitted one it conservatively is), and as *uncommitted* (later)
//!   as T1 or T2. Readers meet its registered writes as those of a concurrent writer. It is
//!   never doomed: whenever it would be the victim, the transaction acting fails with 40001.
//! - COMMIT PREPARED (`Ssi::pre_commit` on a prepared transaction) only takes the commit
//!   timestamp: every edge into or out of it since PREPARE was judged as above, so nothing is
//!   left to check. ROLLBACK PREPARED ends it like an abort.
//! - After a restart (`Ssi::recover_prepared`) its read set (kept in the prepare record, see
//!   [`crate::record`]) and write set are back, but its edges are not. As PostgreSQL does, it is
//!   assumed to have had a rw-conflict out to a transaction that committed first (so a new
//!   serializable transaction that reads a key it wrote fails with 40001), and, when more than
//!   one serializable transaction is recovered prepared, a rw-conflict in from an uncommitted
//!   one (so a writer of a key it read cannot commit first past it). Only a prepared
//!   transaction can be an uncommitted T1 from before the crash: without another one,
//!   PostgreSQL's conflict-in flag changes nothing.
//!
//! ## Deliberately left out (for now)
//!
//! - PostgreSQL's declared READ ONLY optimisations (safe snapshots, DEFERRABLE): a transaction
//!   is known to be read only only when it commits without writes.
//! - SIREAD state is not part of [`crate::TxnState`]: a transaction resumed with
//!   [`crate::Db::resume`] (another node) restarts its SSI tracking without its reads. A
//!   prepared transaction keeps them (in memory, and in its prepare record for a restart).
//! - The victim is always the transaction acting when the structure is found (or the doomed
//!   pivot), not chosen for progress as carefully as PostgreSQL does with prepared transactions.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use crate::clock::Timestamp;
use crate::error::MvccError;
use crate::record::ReadSetRecord;
use crate::txn::TxnId;

/// Point reads of one transaction beyond which they collapse into one covering range.
pub const MAX_POINT_READS: usize = 4096;
/// Range reads of one transaction beyond which they collapse into one covering range.
pub const MAX_RANGE_READS: usize = 256;

/// A key range `[start, end)` as a scan gives it.
type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Where a serializable transaction is, as far as SSI is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading and writing; commits (if ever) after everything committed so far.
    Active,
    /// Prepared (two-phase commit) at `at`: passed the commit check, write set registered,
    /// reads and writes done; it commits (or rolls back) later and can no longer be aborted
    /// by SSI.
    Prepared { at: Timestamp },
    /// Passed the commit check with writes, at this timestamp; `published` once visible.
    Committed { ts: Timestamp, published: bool },
    /// Committed without writes.
    ReadOnlyCommitted,
}

/// SIREAD "locks": what a transaction has read, kept until it overlaps nobody.
#[derive(Debug, Default)]
struct ReadSet {
    points: HashSet<Vec<u8>>,
    ranges: Vec<KeyRange>,
}

impl ReadSet {
    fn add_point(&mut self, key: &[u8]) {
        if self.points.contains(key) {
            return;
        }
        self.points.insert(key.to_vec());
        if self.points.len() > MAX_POINT_READS {
            let lo = self.points.iter().min().cloned();
            let hi = self.points.iter().max().cloned();
            self.points.clear();
            if let (Some(lo), Some(hi)) = (lo, hi) {
                self.add_range((Bound::Included(lo), Bound::Included(hi)));
            }
        }
    }

    fn add_range(&mut self, range: KeyRange) {
        self.ranges.push(range);
        if self.ranges.len() > MAX_RANGE_READS {
            let covering = self
                .ranges
                .drain(..)
                .reduce(|a, b| (lower_min(a.0, b.0), upper_max(a.1, b.1)));
            self.ranges.extend(covering);
        }
    }

    fn is_empty(&self) -> bool {
        self.points.is_empty() && self.ranges.is_empty()
    }

    /// True if this read set covers `key`.
    fn covers_key(&self, key: &[u8]) -> bool {
        self.points.contains(key) || self.ranges.iter().any(|r| in_range(key, r))
    }

    /// True if any key of `writes` was read (as a point or inside a range).
    fn meets(&self, writes: &BTreeSet<Vec<u8>>) -> bool {
        if self.ranges.iter().any(|r| meets_range(writes, r)) {
            return true;
        }
        if self.points.len() < writes.len() {
            self.points.iter().any(|k| writes.contains(k))
        } else {
            writes.iter().any(|k| self.points.contains(k))
        }
    }
}

fn lower_min(a: Bound<Vec<u8>>, b: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    match (a, b) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => Bound::Unbounded,
        (a, b) => {
            let ka = bound_key(&a);
            let kb = bound_key(&b);
            // Included is lower than Excluded at the same key; keep the lower one.
            if ka < kb || (ka == kb && matches!(a, Bound::Included(_))) {
                a
            } else {
                b
            }
        }
    }
}

fn upper_max(a: Bound<Vec<u8>>, b: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    match (a, b) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => Bound::Unbounded,
        (a, b) => {
            let ka = bound_key(&a);
            let kb = bound_key(&b);
            if ka > kb || (ka == kb && matches!(a, Bound::Included(_))) {
                a
            } else {
                b
            }
        }
    }
}

fn bound_key(b: &Bound<Vec<u8>>) -> &[u8] {
    match b {
        Bound::Included(k) | Bound::Excluded(k) => k,
        Bound::Unbounded => &[],
    }
}

fn in_range(key: &[u8], (start, end): &KeyRange) -> bool {
    let above = match start {
        Bound::Included(s) => key >= s.as_slice(),
        Bound::Excluded(s) => key > s.as_slice(),
        Bound::Unbounded => true,
    };
    let below = match end {
        Bound::Included(e) => key <= e.as_slice(),
        Bound::Excluded(e) => key < e.as_slice(),
        Bound::Unbounded => true,
    };
    above && below
}

fn meets_range(writes: &BTreeSet<Vec<u8>>, (start, end): &KeyRange) -> bool {
    // BTreeSet::range panics on an empty or inverted range: test the bounds ourselves.
    if let (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) =
        (start, end)
    {
        if s > e
            || (s == e
                && !(matches!(start, Bound::Included(_)) && matches!(end, Bound::Included(_))))
        {
            return false;
        }
    }
    writes
        .range::<Vec<u8>, _>((start.as_ref(), end.as_ref()))
        .next()
        .is_some()
}

/// One serializable transaction's SSI record.
#[derive(Debug)]
struct Sxact {
    snapshot: Timestamp,
    phase: Phase,
    /// Found to be the pivot of a dangerous structure by another transaction's commit: it
    /// fails at its next read or at commit.
    doomed: bool,
    reads: ReadSet,
    writes: BTreeSet<Vec<u8>>,
    /// Transactions T with `T -rw-> self`.
    ins: HashSet<TxnId>,
    /// Transactions T with `self -rw-> T`.
    outs: HashSet<TxnId>,
    /// Earliest commit timestamp of a forgotten T with `self -rw-> T` that committed first.
    summary_out: Option<Timestamp>,
    /// Recovered prepared transaction: some uncommitted (prepared) T may have `T -rw-> self`.
    summary_in: bool,
}

impl Sxact {
    fn is_active(&self) -> bool {
        self.phase == Phase::Active
    }

    fn commit_ts(&self) -> Option<Timestamp> {
        match self.phase {
            Phase::Committed { ts, .. } => Some(ts),
            _ => None,
        }
    }

    fn is_prepared(&self) -> bool {
        matches!(self.phase, Phase::Prepared { .. })
    }

    /// Not committed yet (active or prepared): it commits after everything committed now.
    fn is_uncommitted(&self) -> bool {
        matches!(self.phase, Phase::Active | Phase::Prepared { .. })
    }

    /// As a T3: the time it counts as committed from, if it has passed its commit check
    /// (committed, or prepared: see "Prepared transactions").
    fn t3_ts(&self) -> Option<Timestamp> {
        match self.phase {
            Phase::Committed { ts, .. } => Some(ts),
            Phase::Prepared { at } => Some(at),
            _ => None,
        }
    }

    /// The point from which a transaction that starts no longer overlaps this one, if it has
    /// finished: its commit timestamp, or for a read-only transaction its snapshot (a later
    /// transaction seeing everything it saw cannot be T2 of a structure with it as T1).
    fn end(&self) -> Option<Timestamp> {
        match self.phase {
            Phase::Active | Phase::Prepared { .. } => None,
            Phase::Committed { ts, .. } => Some(ts),
            Phase::ReadOnlyCommitted => Some(self.snapshot),
        }
    }
}

/// Counters and sizes of the SSI state, for monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SsiStats {
    /// Serializable transactions tracked now (active, and committed ones still overlapping).
    pub tracked: usize,
    /// Of those, committed ones kept because an active transaction overlaps them.
    pub retained_committed: usize,
    /// SIREAD point locks held now.
    pub siread_points: usize,
    /// SIREAD range locks held now.
    pub siread_ranges: usize,
    /// rw-antidependencies recorded since the database opened.
    pub rw_conflicts: u64,
    /// Serialization failures raised by SSI since the database opened (40001).
    pub failures: u64,
}

#[derive(Debug, Default)]
struct SsiState {
    xacts: HashMap<TxnId, Sxact>,
    rw_conflicts: u64,
    failures: u64,
}

/// The SSI bookkeeping of one database (no globals: one per [`crate::Db`]).
#[derive(Debug, Default)]
pub(crate) struct Ssi {
    state: Mutex<SsiState>,
}

fn failure(reason: String) -> MvccError {
    MvccError::SerializationDependencies { reason }
}

impl Ssi {
    fn lock(&self) -> MutexGuard<'_, SsiState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts tracking `id`; its snapshot is taken by `take_snapshot` under the SSI mutex, so
    /// that no committed transaction it overlaps is forgotten in between (invariant 4).
    pub(crate) fn begin(&self, id: TxnId, take_snapshot: impl FnOnce() -> Timestamp) -> Timestamp {
        let mut st = self.lock();
        let snapshot = take_snapshot();
        st.xacts.insert(id, Sxact::new(snapshot));
        snapshot
    }

    /// Moves an unused transaction's snapshot to now (taken under the SSI mutex, as at begin).
    pub(crate) fn retake_snapshot(
        &self,
        id: TxnId,
        take_snapshot: impl FnOnce() -> Timestamp,
    ) -> Timestamp {
        let mut st = self.lock();
        let snapshot = take_snapshot();
        if let Some(me) = st.xacts.get_mut(&id) {
            me.snapshot = snapshot;
        }
        snapshot
    }

    /// Records a SIREAD lock on `key` and the rw-antidependencies it creates towards writers
    /// that committed after the reader's snapshot.
    pub(crate) fn read_key(&self, id: TxnId, key: &[u8]) -> Result<(), MvccError> {
        let mut st = self.lock();
        let Some(me) = st.xacts.get_mut(&id) else {
            return Ok(());
        };
        if me.doomed {
            st.failures += 1;
            return Err(failure(
                "Reason code: Canceled on identification as a pivot, during conflict out checking."
                    .into(),
            ));
        }
        me.reads.add_point(key);
        let snapshot = me.snapshot;
        let writers: Vec<TxnId> = st
            .xacts
            .iter()
            .filter(|(w, x)| {
                **w != id
                    && (x.is_prepared() || x.commit_ts().is_some_and(|ts| ts > snapshot))
                    && x.writes.contains(key)
            })
            .map(|(w, _)| *w)
            .collect();
        st.read_conflicts(id, writers)
    }

    /// Records a SIREAD lock on a scanned range (the predicate: rows inserted into it later by
    /// a concurrent writer conflict too) and the rw-antidependencies it creates.
    pub(crate) fn read_range(
        &self,
        id: TxnId,
        start: &Bound<Vec<u8>>,
        end: &Bound<Vec<u8>>,
    ) -> Result<(), MvccError> {
        let mut st = self.lock();
        let Some(me) = st.xacts.get_mut(&id) else {
            return Ok(());
        };
        if me.doomed {
            st.failures += 1;
            return Err(failure(
                "Reason code: Canceled on identification as a pivot, during conflict out checking."
                    .into(),
            ));
        }
        let range = (start.clone(), end.clone());
        let snapshot = me.snapshot;
        let writers: Vec<TxnId> = st
            .xacts
            .iter()
            .filter(|(w, x)| {
                **w != id
                    && (x.is_prepared() || x.commit_ts().is_some_and(|ts| ts > snapshot))
                    && meets_range(&x.writes, &range)
            })
            .map(|(w, _)| *w)
            .collect();
        if let Some(me) = st.xacts.get_mut(&id) {
            me.reads.add_range(range);
        }
        st.read_conflicts(id, writers)
    }

    /// A write of `key` (before commit): the rw-antidependencies from concurrent readers of it,
    /// found early, as PostgreSQL does at the write. The commit step finds them again (and any
    /// reader that comes between), so this is for prompt failure, not for soundness.
    pub(crate) fn write_key(&self, id: TxnId, key: &[u8]) -> Result<(), MvccError> {
        let mut st = self.lock();
        let Some(me) = st.xacts.get(&id) else {
            return Ok(());
        };
        let snapshot = me.snapshot;
        let readers: Vec<TxnId> = st
            .xacts
            .iter()
            .filter(|(r, x)| {
                **r != id && x.end().is_none_or(|end| end > snapshot) && x.reads.covers_key(key)
            })
            .map(|(r, _)| *r)
            .collect();
        for reader in readers {
            if st.add_edge(reader, id) {
                st.failures += 1;
                return Err(failure(
                    "Reason code: Canceled on identification as a pivot, during write.".into(),
                ));
            }
        }
        Ok(())
    }

    /// The commit step of a serializable transaction with writes: the write-side conflict
    /// check, the dangerous-structure check, then `assign_ts` (the commit timestamp and engine
    /// registration), all under the SSI mutex (invariant 1). On `Err` the transaction must
    /// abort (and call [`Ssi::end`] with `committed = false`).
    pub(crate) fn pre_commit<T>(
        &self,
        id: TxnId,
        writes: impl Iterator<Item = Vec<u8>>,
        assign_ts: impl FnOnce() -> Result<(Timestamp, T), MvccError>,
    ) -> Result<(Timestamp, T), MvccError> {
        let mut st = self.lock();
        let Some(me) = st.xacts.get(&id) else {
            return assign_ts();
        };
        if me.is_prepared() {
            // COMMIT PREPARED: everything was checked at PREPARE and at every edge since.
            let (ts, rest) = assign_ts()?;
            if let Some(me) = st.xacts.get_mut(&id) {
                me.phase = Phase::Committed {
                    ts,
                    published: false,
                };
            }
            return Ok((ts, rest));
        }
        let writes: BTreeSet<Vec<u8>> = writes.collect();
        st.commit_check(id, &writes)?;
        let (ts, rest) = assign_ts()?;
        if let Some(me) = st.xacts.get_mut(&id) {
            me.phase = Phase::Committed {
                ts,
                published: false,
            };
            me.writes = writes;
        }
        Ok((ts, rest))
    }

    /// PREPARE TRANSACTION of a serializable transaction: the commit step's checks, then the
    /// write set is registered and the transaction is `Prepared` at `at` (see "Prepared
    /// transactions"). Returns its read set for the prepare record. On `Err` the transaction
    /// must abort (and call [`Ssi::end`] with `committed = false`).
    pub(crate) fn prepare(
        &self,
        id: TxnId,
        writes: impl Iterator<Item = Vec<u8>>,
        at: Timestamp,
    ) -> Result<ReadSetRecord, MvccError> {
        let mut st = self.lock();
        if !st.xacts.contains_key(&id) {
            return Ok(ReadSetRecord::default());
        }
        let writes: BTreeSet<Vec<u8>> = writes.collect();
        st.commit_check(id, &writes)?;
        let Some(me) = st.xacts.get_mut(&id) else {
            return Ok(ReadSetRecord::default());
        };
        me.phase = Phase::Prepared { at };
        me.writes = writes;
        let mut points: Vec<Vec<u8>> = me.reads.points.iter().cloned().collect();
        points.sort();
        Ok(ReadSetRecord {
            points,
            ranges: me.reads.ranges.clone(),
        })
    }

    /// A COMMIT PREPARED whose log write failed: the transaction is prepared again.
    pub(crate) fn commit_prepared_failed(&self, id: TxnId, at: Timestamp) {
        let mut st = self.lock();
        if let Some(me) = st.xacts.get_mut(&id) {
            me.phase = Phase::Prepared { at };
        }
    }

    /// Recovery: a serializable transaction found prepared in the log, with its snapshot,
    /// write set and read set, and the conservative summary conflicts of "Prepared
    /// transactions" (`conflict_in` when another serializable transaction is recovered too).
    pub(crate) fn recover_prepared(
        &self,
        id: TxnId,
        snapshot: Timestamp,
        at: Timestamp,
        writes: impl Iterator<Item = Vec<u8>>,
        reads: &ReadSetRecord,
        conflict_in: bool,
    ) {
        let mut st = self.lock();
        let mut x = Sxact::new(snapshot);
        x.phase = Phase::Prepared { at };
        x.writes = writes.collect();
        for key in &reads.points {
            x.reads.add_point(key);
        }
        for range in &reads.ranges {
            x.reads.add_range(range.clone());
        }
        // A conflict out to a transaction that committed before the crash: any such commit
        // is older than every transaction that runs after it.
        x.summary_out = Some(at);
        x.summary_in = conflict_in;
        st.xacts.insert(id, x);
    }
    /// The commit step of a serializable transaction without writes.
    pub(crate) fn commit_read_only(&self, id: TxnId) -> Result<(), MvccError> {
        let mut st = self.lock();
        let Some(me) = st.xacts.get_mut(&id) else {
            return Ok(());
        };
        if me.doomed {
            st.failures += 1;
            return Err(failure(
                "Reason code: Canceled on identification as a pivot, during commit attempt.".into(),
            ));
        }
        me.phase = Phase::ReadOnlyCommitted;
        st.forget_old();
        Ok(())
    }

    /// The end of a transaction: published (`committed`), or aborted and forgotten at once.
    pub(crate) fn end(&self, id: TxnId, committed: bool) {
        let mut st = self.lock();
        if committed {
            if let Some(me) = st.xacts.get_mut(&id) {
                if let Phase::Committed { ts, .. } = me.phase {
                    me.phase = Phase::Committed {
                        ts,
                        published: true,
                    };
                }
            }
        } else if let Some(me) = st.xacts.remove(&id) {
            for t in me.ins {
                if let Some(x) = st.xacts.get_mut(&t) {
                    x.outs.remove(&id);
                }
            }
            for t in me.outs {
                if let Some(x) = st.xacts.get_mut(&t) {
                    x.ins.remove(&id);
                }
            }
        }
        st.forget_old();
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> SsiStats {
        let st = self.lock();
        SsiStats {
            tracked: st.xacts.len(),
            retained_committed: st.xacts.values().filter(|x| !x.is_active()).count(),
            siread_points: st.xacts.values().map(|x| x.reads.points.len()).sum(),
            siread_ranges: st.xacts.values().map(|x| x.reads.ranges.len()).sum(),
            rw_conflicts: st.rw_conflicts,
            failures: st.failures,
        }
    }
}

impl Sxact {
    fn new(snapshot: Timestamp) -> Sxact {
        Sxact {
            snapshot,
            phase: Phase::Active,
            doomed: false,
            reads: ReadSet::default(),
            writes: BTreeSet::new(),
            ins: HashSet::new(),
            outs: HashSet::new(),
            summary_out: None,
            summary_in: false,
        }
    }
}

impl SsiState {
    /// The checks of a commit step (also PREPARE's): doomed, the write side (concurrent
    /// readers of `writes` get an edge to `id`), and the pivots `id` completes as T3
    /// committing first.
    fn commit_check(&mut self, id: TxnId, writes: &BTreeSet<Vec<u8>>) -> Result<(), MvccError> {
        let st = self;
        let Some(me) = st.xacts.get(&id) else {
            return Ok(());
        };
        if me.doomed {
            st.failures += 1;
            return Err(failure(
                "Reason code: Canceled on identification as a pivot, during commit attempt.".into(),
            ));
        }
        let snapshot = me.snapshot;
        // Write side: concurrent readers of what we wrote get an edge reader -rw-> us. A
        // reader that finished before our snapshot is not concurrent (and cannot matter).
        let readers: Vec<TxnId> = st
            .xacts
            .iter()
            .filter(|(r, x)| {
                **r != id
                    && x.end().is_none_or(|end| end > snapshot)
                    && !x.reads.is_empty()
                    && x.reads.meets(writes)
            })
            .map(|(r, _)| *r)
            .collect();
        for reader in readers {
            if st.add_edge(reader, id) {
                st.failures += 1;
                return Err(failure(
                    "Reason code: Canceled on identification as a pivot, during write.".into(),
                ));
            }
        }
        // We may be T3 of `T1 -rw-> T2 -rw-> us`, committing first: doom the pivot T2. A
        // prepared pivot cannot be doomed: then we fail instead.
        let pivots: Vec<TxnId> = st.xacts[&id]
            .ins
            .iter()
            .copied()
            .filter(|t2| {
                st.xacts.get(t2).is_some_and(|x2| {
                    x2.is_uncommitted()
                        && !x2.doomed
                        && (x2.summary_in
                            || x2.ins.iter().any(|t1| {
                                *t1 == id
                                    || st
                                        .xacts
                                        .get(t1)
                                        .is_some_and(|x1| x1.is_uncommitted() && !x1.doomed)
                            }))
                })
            })
            .collect();
        if pivots
            .iter()
            .any(|t2| st.xacts.get(t2).is_some_and(Sxact::is_prepared))
        {
            st.failures += 1;
            return Err(failure(
                "Reason code: Canceled on commit attempt with conflict in from prepared pivot."
                    .into(),
            ));
        }
        for t2 in pivots {
            if let Some(x2) = st.xacts.get_mut(&t2) {
                x2.doomed = true;
            }
        }
        Ok(())
    }

    /// Adds the read-side edges `reader -rw-> w` for each of `writers`; fails the reader on a
    /// dangerous structure.
    fn read_conflicts(&mut self, reader: TxnId, writers: Vec<TxnId>) -> Result<(), MvccError> {
        for w in writers {
            // A recovered prepared writer's assumed conflict out (PostgreSQL's wording).
            let old_pivot = self
                .xacts
                .get(&w)
                .is_some_and(|x| x.is_prepared() && x.summary_out.is_some());
            if self.add_edge(reader, w) {
                self.failures += 1;
                return Err(failure(if old_pivot {
                    "Reason code: Canceled on conflict out to old pivot.".to_string()
                } else {
                    format!("Reason code: Canceled on conflict out to pivot {w}, during read.")
                }));
            }
        }
        Ok(())
    }

    /// Records `reader -rw-> writer` and returns true if it completes a dangerous structure
    /// (invariant 3).
    fn add_edge(&mut self, reader: TxnId, writer: TxnId) -> bool {
        let Some(r) = self.xacts.get(&reader) else {
            return false;
        };
        if r.outs.contains(&writer) || !self.xacts.contains_key(&writer) {
            return false;
        }
        self.rw_conflicts += 1;
        if let Some(r) = self.xacts.get_mut(&reader) {
            r.outs.insert(writer);
        }
        if let Some(w) = self.xacts.get_mut(&writer) {
            w.ins.insert(reader);
        }
        let w = &self.xacts[&writer];
        // reader = T1, writer = T2: a T3 the writer has an edge to, committed first.
        let committed_outs = w
            .outs
            .iter()
            .filter_map(|t3| Some((Some(*t3), self.xacts.get(t3)?.t3_ts()?)));
        for (t3, t3_ts) in committed_outs.chain(w.summary_out.map(|ts| (None, ts))) {
            if self.dangerous(reader, writer, t3, t3_ts) {
                return true;
            }
        }
        // reader = T2, writer = T3 (if committed or prepared): a T1 with an edge to the reader.
        if let Some(t3_ts) = w.t3_ts() {
            let r = &self.xacts[&reader];
            for t1 in &r.ins {
                if self.dangerous(*t1, reader, Some(writer), t3_ts) {
                    return true;
                }
            }
        }
        false
    }

    /// Is `t1 -rw-> t2 -rw-> t3` (t3 committed at `t3_ts`, or prepared; None = forgotten, so
    /// committed) dangerous: did (or may) t3 commit before t1 and t2?
    fn dangerous(&self, t1: TxnId, t2: TxnId, t3: Option<TxnId>, t3_ts: Timestamp) -> bool {
        let Some(x2) = self.xacts.get(&t2) else {
            return false;
        };
        if x2.doomed {
            return false;
        }
        // A prepared T3 commits after everything committed now: it counts as committing
        // first only against transactions that have not committed yet.
        let t3_prepared = t3
            .and_then(|t| self.xacts.get(&t))
            .is_some_and(Sxact::is_prepared);
        let t2_later = match x2.phase {
            Phase::Active | Phase::Prepared { .. } => true,
            Phase::Committed { ts, .. } => !t3_prepared && t3_ts < ts,
            Phase::ReadOnlyCommitted => false,
        };
        if !t2_later {
            return false;
        }
        if Some(t1) == t3 {
            return true;
        }
        let Some(x1) = self.xacts.get(&t1) else {
            return false;
        };
        if x1.doomed {
            return false;
        }
        match x1.phase {
            Phase::Active | Phase::Prepared { .. } => true,
            Phase::Committed { ts, .. } => !t3_prepared && t3_ts < ts,
            // A read-only T1 is harmed only if T3 was already in its snapshot.
            Phase::ReadOnlyCommitted => !t3_prepared && t3_ts <= x1.snapshot,
        }
    }

    /// Forgets finished transactions that no active transaction overlaps (invariant 4).
    fn forget_old(&mut self) {
        let oldest_active = self
            .xacts
            .values()
            .filter(|x| x.is_active())
            .map(|x| x.snapshot)
            .min();
        let old: Vec<TxnId> = self
            .xacts
            .iter()
            .filter(|(_, x)| {
                let finished = match x.phase {
                    Phase::Active | Phase::Prepared { .. } => false,
                    Phase::Committed { published, .. } => published,
                    Phase::ReadOnlyCommitted => true,
                };
                finished
                    && match (x.end(), oldest_active) {
                        (Some(end), Some(oldest)) => end <= oldest,
                        (Some(_), None) => true,
                        (None, _) => false,
                    }
            })
            .map(|(t, _)| *t)
            .collect();
        for t in old {
            let Some(gone) = self.xacts.remove(&t) else {
                continue;
            };
            let gone_ts = gone.commit_ts();
            for y in gone.ins {
                if let Some(x) = self.xacts.get_mut(&y) {
                    x.outs.remove(&t);
                    // y -rw-> gone, gone committed first: keep that fact (PostgreSQL's
                    // SXACT_FLAG_CONFLICT_OUT with earliestOutConflictCommit).
                    if let Some(g) = gone_ts {
                        if x.commit_ts().is_none_or(|y_ts| g < y_ts) {
                            x.summary_out = Some(x.summary_out.map_or(g, |s| s.min(g)));
                        }
                    }
                }
            }
            for y in gone.outs {
                if let Some(x) = self.xacts.get_mut(&y) {
                    x.ins.remove(&t);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn a_range_meets_the_writes_inside_it_only() {
        let writes: BTreeSet<Vec<u8>> = [k("b"), k("d")].into_iter().collect();
        let r = |s: Bound<Vec<u8>>, e: Bound<Vec<u8>>| meets_range(&writes, &(s, e));
        assert!(r(Bound::Included(k("a")), Bound::Excluded(k("c"))));
        assert!(!r(Bound::Excluded(k("b")), Bound::Excluded(k("d"))));
        assert!(r(Bound::Excluded(k("b")), Bound::Included(k("d"))));
        assert!(!r(Bound::Included(k("e")), Bound::Unbounded));
        // Empty and inverted ranges meet nothing (and do not panic).
        assert!(!r(Bound::Included(k("d")), Bound::Excluded(k("b"))));
        assert!(!r(Bound::Included(k("b")), Bound::Excluded(k("b"))));
        assert!(r(Bound::Included(k("b")), Bound::Included(k("b"))));
    }

    #[test]
    fn many_point_reads_collapse_into_a_covering_range() {
        let mut reads = ReadSet::default();
        for i in 0..=MAX_POINT_READS {
            reads.add_point(format!("key{i:06}").as_bytes());
        }
        assert!(reads.points.is_empty());
        assert_eq!(reads.ranges.len(), 1);
        assert!(reads.covers_key(b"key000000"));
        assert!(reads.covers_key(format!("key{MAX_POINT_READS:06}").as_bytes()));
        assert!(reads.covers_key(b"key000001x"));
        assert!(!reads.covers_key(b"kez"));
    }

    #[test]
    fn many_ranges_collapse_into_one_covering_them_all() {
        let mut reads = ReadSet::default();
        for i in 0..=MAX_RANGE_READS {
            reads.add_range((
                Bound::Included(format!("r{i:04}").into_bytes()),
                Bound::Excluded(format!("r{i:04}z").into_bytes()),
            ));
        }
        assert_eq!(reads.ranges.len(), 1);
        assert!(reads.covers_key(b"r0000"));
        assert!(reads.covers_key(format!("r{MAX_RANGE_READS:04}y").as_bytes()));
        assert!(!reads.covers_key(format!("r{MAX_RANGE_READS:04}z").as_bytes()));
    }
}
