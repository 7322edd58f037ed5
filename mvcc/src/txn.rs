//! Transactions: the serializable [`TxnState`] and the live [`Txn`] handle around it.

use std::collections::HashSet;
use std::fmt;
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::db::Db;
use crate::error::MvccError;
use crate::locks::{
    Acquired, LockWait, RelId, RowGrant, RowLocked, RowMode, TableMode, TxnLocks, WaitLimits,
};
use crate::write_set::WriteSet;

/// Identifies a transaction. Larger ids are younger: the deadlock detector aborts the largest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnId(pub u64);

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Isolation levels, as PostgreSQL names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Isolation {
    /// Each statement sees what was committed before it started ([`Txn::new_statement`]).
    ReadCommitted,
    /// Snapshot isolation: the whole transaction sees one snapshot; writing a row that changed
    /// after the snapshot fails with a serialization error.
    RepeatableRead,
    /// Repeatable read plus serializable snapshot isolation ([`crate::ssi`]): a transaction
    /// that could make the outcome differ from every serial order of the SERIALIZABLE
    /// transactions fails with [`MvccError::SerializationDependencies`].
    Serializable,
}

/// Where a transaction is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnStatus {
    /// Reading and writing.
    Active,
    /// Durable and visible at this timestamp.
    Committed(Timestamp),
    /// Rolled back; none of its writes are visible.
    Aborted,
    /// Prepared (two-phase commit): durable, invisible, locks held, waiting for the decision.
    Prepared,
}

/// Everything that defines a transaction, as plain data: what 2PC persists and sends between
/// nodes, and what [`Db::resume`] turns back into a live [`Txn`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnState {
    /// The transaction's id.
    pub id: TxnId,
    /// Its isolation level.
    pub isolation: Isolation,
    /// What it reads: versions committed at or before this timestamp.
    pub snapshot: Timestamp,
    /// Buffered writes, applied at commit; `None` deletes the key.
    pub writes: WriteSet,
    /// Key ranges `[start, end)` deleted as a whole ([`Txn::delete_range`]): at commit they
    /// hide every older version in them; `writes` holds nothing inside them from before the
    /// delete. Empty in a prepared transaction (its range deletes become point deletes).
    #[serde(default)]
    pub range_deletes: Vec<(Vec<u8>, Vec<u8>)>,
    /// Where it is in its life.
    pub status: TxnStatus,
}

/// A position in a transaction's writes (and increments) to return to ([`Txn::rollback_to`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Savepoint {
    undo: usize,
    increments: usize,
}

/// An increment of one row, applied to the row's stored bytes: the SQL layer decodes the row,
/// adds its constants to the columns, checks their ranges and encodes it again. Applied once at
/// the statement (to check the range), when the transaction observes the row, and at commit
/// to the newest version, including unpublished versions of earlier committers.
pub trait RowDelta: Send + Sync + fmt::Debug {
    /// The row after the increment; `Err(message)` if a result is out of its column's range
    /// (or the row does not decode).
    fn apply(&self, row: &Bytes) -> Result<Bytes, String>;
}

/// What [`Txn::increment`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncrementOutcome {
    /// The row exists and holds INCREMENT; the delta is recorded (applied at commit).
    Recorded,
    /// The row has no newest version (deleted): nothing recorded (`UPDATE 0`).
    Absent,
    /// Not eligible here (not READ COMMITTED, or the transaction already wrote the row): the
    /// caller runs the ordinary UPDATE.
    NotEligible,
}

/// Each incremented row's key with its deltas, in order (what a commit applies).
pub(crate) type RowDeltas = Vec<RowDeltaSet>;

/// One incremented row at commit: its deltas in order, and (stamp, row) of the newest version
/// the transaction read while holding the row alone, if it may still be the newest (the
/// commit checks the stamp under the commit-order mutex).
pub(crate) struct RowDeltaSet {
    pub key: Vec<u8>,
    pub deltas: Vec<Arc<dyn RowDelta>>,
    pub newest: Option<(u64, Bytes)>,
}

/// A recorded increment: the row and its delta (in statement order; deltas of one row add).
#[derive(Clone, Debug)]
struct PendingIncrement {
    key: Vec<u8>,
    delta: Arc<dyn RowDelta>,
    /// The row's newest version as read under the INCREMENT lock, with the lock's stamp
    /// (`LockManager::row_stamp`), when the transaction held the row alone then: while the
    /// row stays undisturbed it is still the newest, and neither the observation nor the
    /// commit needs to read it again.
    seen: Option<Seen>,
}

#[derive(Clone, Debug)]
struct Seen {
    stamp: u64,
    version: gnomon_engine::Version,
    row: Bytes,
}

/// A live transaction. Reads see the snapshot plus the transaction's own writes; writes take a
/// row lock and are buffered until commit. Dropping an unfinished `Txn` rolls it back.
pub struct Txn {
    db: Arc<Db>,
    state: TxnState,
    /// For each write since the first savepoint, the key and the write-set entry it replaced
    /// (None = there was none). Writes before the first savepoint need no undo: nothing rolls
    /// back to a point before it, short of the whole transaction.
    undo: Vec<(Vec<u8>, Option<Option<Bytes>>)>,
    /// Whether [`Txn::savepoint`] was called (from then on every write is recorded in `undo`).
    savepoints: bool,
    /// Increments recorded by [`Txn::increment`], in order. A row whose key is also in the
    /// write set has been observed: its write holds the final value and its increments are
    /// done; the others are applied at commit.
    increments: Vec<PendingIncrement>,
    /// Table, partition and row locks held, released at commit or rollback.
    locks: TxnLocks,
    /// When it began (wall clock, µs since the Unix epoch).
    started_us: u64,
    /// Whether the registry knows it as a writer (from its first write on).
    registered: bool,
    finished: bool,
    /// Approximate size of the write set (key + value + 16 bytes a write) until it first
    /// passes the part size and `spill` starts.
    write_bytes: usize,
    /// The write set is being written to the log in parts (crate docs, "Bulk work").
    spill: Option<Spill>,
    /// The caller's namespace ([`Txn::set_namespace`]); 0 until set.
    namespace: u32,
    /// Hashes of the keys in the write set, so that a read of a key this transaction never
    /// wrote skips the write set's B-tree search (~1.7K instructions per read once the write
    /// set holds 20K keys: a MERGE or UPDATE of many rows reads each before writing it). A
    /// superset (a key taken back keeps its hash); `None` (always search) once it would pass
    /// [`WRITTEN_FILTER_MAX`] keys, which bounds its memory.
    written: Option<HashSet<u64, foldhash::fast::FixedState>>,
}

/// Keys [`Txn`]'s written-key filter holds at most (8 bytes each, plus the table's slack).
const WRITTEN_FILTER_MAX: usize = 1 << 20;

fn key_hash(key: &[u8]) -> u64 {
    foldhash::fast::FixedState::default().hash_one(key)
}

/// A transaction writing its write set to the log in parts: the writes since its last part,
/// encoded as the records carry them, in write order.
struct Spill {
    /// Parts written so far.
    parts: u32,
    /// Writes since the last part.
    count: u32,
    buf: Vec<u8>,
    /// A part the log refused (it is poisoned or the part too large): the commit fails.
    refused: Option<MvccError>,
}

impl fmt::Debug for Txn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Txn")
            .field("id", &self.state.id)
            .field("isolation", &self.state.isolation)
            .field("snapshot", &self.state.snapshot)
            .field("writes", &self.state.writes.len())
            .finish()
    }
}

/// The written-key filter of a state's write set.
fn state_keys(state: &TxnState) -> HashSet<u64, foldhash::fast::FixedState> {
    state.writes.keys().map(key_hash).collect()
}

impl Txn {
    pub(crate) fn new(db: Arc<Db>, state: TxnState, locks: TxnLocks, started_us: u64) -> Txn {
        Txn {
            db,
            undo: Vec::new(),
            savepoints: false,
            increments: Vec::new(),
            locks,
            started_us,
            registered: false,
            finished: false,
            write_bytes: 0,
            spill: None,
            namespace: 0,
            written: Some(state_keys(&state)),
            state,
        }
    }

    /// Records that `key` is (now) in the write set; every insert into it calls this.
    fn note_key(&mut self, key: &[u8]) {
        if let Some(set) = &mut self.written {
            if set.len() >= WRITTEN_FILTER_MAX {
                self.written = None;
            } else {
                set.insert(key_hash(key));
            }
        }
    }

    /// False only if `key` is surely not in the write set.
    fn may_have_written(&self, key: &[u8]) -> bool {
        let may = self
            .written
            .as_ref()
            .is_none_or(|set| set.contains(&key_hash(key)));
        debug_assert!(may || !self.state.writes.contains_key(key));
        may
    }

    /// Labels the transaction with the caller's namespace: an opaque number to this layer
    /// (the SQL layer's database OID, which qualifies the names it reads and writes). It
    /// travels with the handle so the layer above never needs a global to know it.
    pub fn set_namespace(&mut self, namespace: u32) {
        self.namespace = namespace;
    }

    /// The namespace set by [`Txn::set_namespace`] (0 if none).
    pub fn namespace(&self) -> u32 {
        self.namespace
    }

    /// When the transaction began: wall clock, µs since the Unix epoch (what `now()` shows).
    pub fn started_us(&self) -> u64 {
        self.started_us
    }

    /// PREPARE: hands over the state, the row locks and the start time without releasing
    /// anything; the snapshot stays registered. The handle is finished.
    pub(crate) fn into_prepared(mut self) -> (TxnState, TxnLocks, u64) {
        self.finished = true;
        // The prepare record carries the whole write set, and the commit of a prepared
        // transaction repeats it: its parts are not needed by replay any more. (The prepared
        // set already bounds the checkpoint stamp below the prepare record.)
        if self.spill.take().is_some() {
            self.db.parts_closed(self.state.id);
        }
        // The prepare record has no range deletes: they become point deletes of the keys
        // they cover (the table's ACCESS EXCLUSIVE lock keeps anyone else from writing them).
        for (start, end) in std::mem::take(&mut self.state.range_deletes) {
            let committed = self.db.engine().scan(
                Bound::Included(start),
                Bound::Excluded(end),
                gnomon_engine::Version::MAX,
                false,
            );
            for (key, _) in committed {
                if !self.state.writes.contains_key(&key) {
                    self.note_key(&key);
                    self.state.writes.insert(&key, None);
                }
            }
        }
        let state = TxnState {
            id: self.state.id,
            isolation: self.state.isolation,
            snapshot: self.state.snapshot,
            writes: std::mem::take(&mut self.state.writes),
            range_deletes: Vec::new(),
            status: self.state.status,
        };
        (state, std::mem::take(&mut self.locks), self.started_us)
    }

    /// The first write makes the transaction known to status look-ups (as PostgreSQL assigns
    /// an xid at the first write).
    fn note_write(&mut self) {
        if !self.registered {
            self.registered = true;
            self.db
                .registry()
                .writer_started(self.state.id, self.started_us);
        }
    }

    /// The transaction's id.
    pub fn id(&self) -> TxnId {
        self.state.id
    }

    /// The transaction's state as plain serializable data.
    pub fn state(&self) -> &TxnState {
        &self.state
    }

    /// The snapshot reads currently use.
    pub fn snapshot(&self) -> Timestamp {
        self.state.snapshot
    }

    /// The database this transaction runs in.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// The node's logical clocks (the same for every transaction of the database).
    pub fn logical_clocks(&self) -> &crate::logical::LogicalClocks {
        self.db.logical_clocks()
    }

    /// True if the transaction has buffered writes (or recorded increments).
    pub fn has_writes(&self) -> bool {
        !self.state.writes.is_empty()
            || !self.state.range_deletes.is_empty()
            || !self.increments.is_empty()
    }

    /// True if some increment is recorded whose row the transaction has not observed yet
    /// ([`Txn::observe_increments`]).
    pub fn has_pending_increments(&self) -> bool {
        self.increments
            .iter()
            .any(|p| !self.state.writes.contains_key(&p.key))
    }

    /// The rows with increments not yet observed (an observed row's value is in the write
    /// set), each once, in key order.
    fn pending_increment_keys(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self
            .increments
            .iter()
            .filter(|p| !self.state.writes.contains_key(&p.key))
            .map(|p| p.key.clone())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Increments a row (`UPDATE t SET c = c + e WHERE <full primary key>`, the SQL layer
    /// decides eligibility): takes the row's INCREMENT lock, which other incrementers share,
    /// checks that the row's newest version exists and that the delta applies to it (with
    /// this transaction's earlier deltas of the row), and records the delta. The row's final
    /// value is computed at commit from the newest version then, inside the commit order (see
    /// the locks README, "Increments"). Not eligible at REPEATABLE READ and above, nor for a
    /// row the transaction already wrote (or observed) or deleted with a range delete.
    pub fn increment(
        &mut self,
        key: &[u8],
        delta: Arc<dyn RowDelta>,
    ) -> Result<IncrementOutcome, MvccError> {
        if self.state.isolation != Isolation::ReadCommitted
            || self.state.writes.contains_key(key)
            || self.range_deleted(key)
        {
            return Ok(IncrementOutcome::NotEligible);
        }
        self.lock_row(key, RowMode::Increment, LockWait::Block)?;
        let Some(row) = self.db.engine().get(key, gnomon_engine::Version::MAX) else {
            return Ok(IncrementOutcome::Absent);
        };
        self.record_increment(key, row, delta, None)
    }

    /// `UPDATE t SET c = c + e WHERE <full primary key>` of the row at `key`: the UPDATE's own
    /// look-up of the row and [`Txn::increment`] in one. As there, the row must be visible to
    /// the statement's snapshot (else [`IncrementOutcome::Absent`], the UPDATE finds nothing)
    /// and its newest version must exist. NB: the INCREMENT lock is tried first; when it is
    /// free and the row has no version newer than the snapshot, one engine read answers both
    /// (the newest version is then the snapshot's). A lock that would wait sends it the old
    /// way (the snapshot read first, so no transaction waits for a row its UPDATE does not
    /// find), and a probe that finds no row gives its locks back, so the transaction holds
    /// exactly the locks it would have held.
    pub fn increment_by_key(
        &mut self,
        key: &[u8],
        delta: Arc<dyn RowDelta>,
    ) -> Result<IncrementOutcome, MvccError> {
        if self.state.isolation != Isolation::ReadCommitted
            || self.state.writes.contains_key(key)
            || self.range_deleted(key)
        {
            return Ok(IncrementOutcome::NotEligible);
        }
        let snapshot = self.state.snapshot.to_version();
        let probe =
            self.db
                .locks()
                .try_row(&mut self.locks, self.state.id, key, RowMode::Increment)?;
        let engine = self.db.engine();
        let Some(probe) = probe else {
            // The lock would wait: first the row as the UPDATE's scan would find it.
            if engine.get(key, snapshot).is_none() {
                return Ok(IncrementOutcome::Absent);
            }
            return self.increment(key, delta);
        };
        // Stamped before the read: if the row stays undisturbed from here, what is read next
        // stays its newest version.
        let stamp = self.db.locks().row_stamp(self.state.id, key);
        let found = match engine.get_versioned(key, gnomon_engine::Version::MAX) {
            // Newest at or below the snapshot: the snapshot reads this very version.
            Some((version, row)) if version <= snapshot => Some((version, row)),
            Some((version, row)) => engine.get(key, snapshot).map(|_| (version, row)),
            None => None,
        };
        let Some((version, row)) = found else {
            self.db
                .locks()
                .undo_probe(&mut self.locks, self.state.id, key, probe);
            return Ok(IncrementOutcome::Absent);
        };
        let seen = stamp.map(|stamp| Seen {
            stamp,
            version,
            row: row.clone(),
        });
        self.record_increment(key, row, delta, seen)
    }

    /// Checks `delta` (after the transaction's earlier deltas of the row) against `row`, the
    /// newest version read under the INCREMENT lock, and records it.
    fn record_increment(
        &mut self,
        key: &[u8],
        newest: Bytes,
        delta: Arc<dyn RowDelta>,
        seen: Option<Seen>,
    ) -> Result<IncrementOutcome, MvccError> {
        let mut row = newest;
        for p in self.increments.iter().filter(|p| p.key == key) {
            row = p.delta.apply(&row).map_err(increment_failed)?;
        }
        delta.apply(&row).map_err(increment_failed)?;
        self.note_write();
        self.increments.push(PendingIncrement {
            key: key.to_vec(),
            delta,
            seen,
        });
        Ok(IncrementOutcome::Recorded)
    }

    /// What the transaction's latest increment of `key` saw (see [`PendingIncrement::seen`]).
    fn seen(&self, key: &[u8]) -> Option<Seen> {
        self.increments
            .iter()
            .rev()
            .find(|p| p.key == key)
            .and_then(|p| p.seen.clone())
    }

    /// Observes every row with pending increments (see `Txn::observe`), in key order. The
    /// SQL layer calls it before a statement that may read those rows.
    pub fn observe_increments(&mut self) -> Result<(), MvccError> {
        if self.increments.is_empty() {
            return Ok(());
        }
        let keys = self.pending_increment_keys();
        for key in keys {
            self.observe(&key)?;
        }
        Ok(())
    }

    /// The transaction reads (or writes otherwise) a row it increments: it becomes the row's
    /// observer. Takes INCREMENT OBSERVE (waits for an earlier observer of the row to end, and
    /// for a committing incrementer to finish its commit), waits until the newest version is
    /// visible (durable), and fixes the row's value as that version plus its own deltas, in
    /// the write set. From then on the other incrementers' commits wait for this transaction.
    fn observe(&mut self, key: &[u8]) -> Result<(), MvccError> {
        if self.state.writes.contains_key(key) || !self.increments.iter().any(|p| p.key == key) {
            return Ok(());
        }
        let seen = self.seen(key);
        let undisturbed = self.raise_increment_lock(
            key,
            RowMode::IncrementObserve,
            seen.as_ref().map(|s| s.stamp),
        )?;
        // One lookup for the newest version and its value (no newer one can come while we
        // hold INCREMENT OBSERVE: committing incrementers wait for us); none if nobody else
        // has held the row since the increment read it.
        let engine = self.db.engine();
        let newest = match seen {
            Some(seen) if undisturbed => Some((seen.version, seen.row)),
            _ => engine.get_versioned(key, gnomon_engine::Version::MAX),
        };
        let Some((version, mut row)) = newest else {
            // NB: cannot happen while INCREMENT is held (a delete waits for it); the
            // increments of a missing row have nothing to apply to.
            if let Some(v) = engine.latest_version(key) {
                engine.wait_visible(v);
            }
            self.increments.retain(|p| p.key != key);
            return Ok(());
        };
        engine.wait_visible(version);
        for p in self.increments.iter().filter(|p| p.key == key) {
            row = p.delta.apply(&row).map_err(increment_failed)?;
        }
        let previous = self.state.writes.insert(key, Some(row));
        self.note_key(key);
        self.record_undo(key, previous);
        Ok(())
    }

    /// The value of `key` in this transaction's view: its own write if any, else the newest
    /// version at its snapshot. Never blocks on writers.
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, MvccError> {
        if self.may_have_written(key) {
            if let Some(own) = self.state.writes.get(key) {
                return Ok(own.clone());
            }
        }
        if self.range_deleted(key) {
            return Ok(None);
        }
        if self.state.isolation == Isolation::Serializable {
            self.db.ssi().read_key(self.state.id, key)?;
        }
        Ok(self.db.engine().get(key, self.state.snapshot.to_version()))
    }

    /// The commit timestamp of the version of `key` this transaction reads: `None` if it reads
    /// its own (uncommitted) write or no row. For the `gnomon_mvcc_timestamp` system column;
    /// the row itself is read with [`Txn::get`] or a scan (which record SSI reads).
    pub fn version_of(&self, key: &[u8]) -> Option<Timestamp> {
        if self.state.writes.contains_key(key) || self.range_deleted(key) {
            return None;
        }
        self.db
            .engine()
            .get_versioned(key, self.state.snapshot.to_version())
            .map(|(v, _)| Timestamp::from_version(v))
    }

    /// Locks `key` for writing and returns the value a write would replace: the transaction's
    /// own write if any; else, at READ COMMITTED, the newest committed version (which may be
    /// newer than the statement's snapshot: PostgreSQL's re-check of an updated row); at
    /// REPEATABLE READ the snapshot's version, or [`MvccError::Serialization`] if the row changed
    /// after the snapshot.
    pub fn get_for_update(&mut self, key: &[u8]) -> Result<Option<Bytes>, MvccError> {
        self.lock_for_write(key, RowMode::NoKeyUpdate)?;
        self.read_locked(key)
    }

    /// The value of a row this transaction has locked: its own write; else at READ COMMITTED
    /// the newest version, published or not (with the lock held, an unpublished version can
    /// only be the previous holder's, whose commit record precedes ours in the log); else the
    /// snapshot's.
    pub fn read_locked(&self, key: &[u8]) -> Result<Option<Bytes>, MvccError> {
        if self.may_have_written(key) {
            if let Some(own) = self.state.writes.get(key) {
                return Ok(own.clone());
            }
        }
        if self.range_deleted(key) {
            return Ok(None);
        }
        if self.state.isolation == Isolation::Serializable {
            // A read too (SELECT ... FOR UPDATE may not write the row).
            self.db.ssi().read_key(self.state.id, key)?;
        }
        let at = match self.state.isolation {
            Isolation::ReadCommitted => gnomon_engine::Version::MAX,
            _ => self.state.snapshot.to_version(),
        };
        Ok(self.db.engine().get(key, at))
    }

    /// The database's lock manager (for the lock view).
    pub fn lock_manager(&self) -> &crate::locks::LockManager {
        self.db.locks()
    }

    /// Key-ordered scan of `[start, end)` bounds in this transaction's view (own writes merged
    /// over the snapshot), forward or reverse.
    pub fn scan(
        &self,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
    ) -> Result<Vec<(Vec<u8>, Bytes)>, MvccError> {
        Ok(self.scan_iter(start, end, reverse)?.collect())
    }

    /// Streaming form of [`Txn::scan`].
    pub fn scan_iter(
        &self,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
    ) -> Result<ScanIter<'_>, MvccError> {
        if self.state.isolation == Isolation::Serializable {
            // The whole range is the predicate read, even if the caller stops early.
            self.db.ssi().read_range(self.state.id, &start, &end)?;
        }
        let own = self
            .state
            .writes
            .range((as_slice(&start), as_slice(&end)), reverse);
        let committed =
            self.db
                .engine()
                .scan(start, end, self.state.snapshot.to_version(), reverse);
        Ok(ScanIter {
            committed: committed.peekable(),
            own: own.peekable(),
            reverse,
            range_deletes: &self.state.range_deletes,
        })
    }

    /// Key-ordered scan of `[start, end)` as a referential-integrity check must read it (the
    /// SQL layer's foreign keys, like PostgreSQL's RI queries): own writes merged over, at READ
    /// COMMITTED, the newest committed versions rather than the statement's snapshot (a row
    /// committed by a transaction this one just waited for is seen); at REPEATABLE READ and
    /// above over the snapshot, failing with [`MvccError::Serialization`] when a key of the
    /// range has a committed version the snapshot does not see (PostgreSQL's crosscheck).
    pub fn scan_latest(
        &self,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
    ) -> Result<Vec<(Vec<u8>, Bytes)>, MvccError> {
        if self.state.isolation == Isolation::ReadCommitted {
            let own = self
                .state
                .writes
                .range((as_slice(&start), as_slice(&end)), false);
            let committed = self
                .db
                .engine()
                .scan(start, end, gnomon_engine::Version::MAX, false);
            return Ok(ScanIter {
                committed: committed.peekable(),
                own: own.peekable(),
                reverse: false,
                range_deletes: &self.state.range_deletes,
            }
            .collect());
        }
        let snapshot = self.state.snapshot.to_version();
        for (key, _) in self.db.engine().scan(
            start.clone(),
            end.clone(),
            gnomon_engine::Version::MAX,
            false,
        ) {
            if !self.state.writes.contains_key(&key)
                && self
                    .db
                    .engine()
                    .latest_version(&key)
                    .is_some_and(|v| v > snapshot)
            {
                return Err(MvccError::Serialization { key });
            }
        }
        self.scan(start, end, false)
    }

    /// Writes `value` under `key`, taking the row's write lock (waiting for another writer).
    pub fn put(&mut self, key: &[u8], value: Bytes) -> Result<(), MvccError> {
        self.write(key, Some(value))
    }

    /// Writes a key that no other transaction can be writing, without a row lock: the caller
    /// guarantees the key lies in a range only this transaction can reach (a table created by
    /// this transaction and not yet committed, or a freshly allocated unique row id). For bulk
    /// rewrites, where a lock per row is pure cost. Returns true if the transaction had
    /// already written `key` (now overwritten).
    pub fn put_unlocked(&mut self, key: &[u8], value: Bytes) -> bool {
        self.note_write();
        let previous = self.state.writes.insert(key, Some(value.clone()));
        self.note_key(key);
        let replaced = previous.is_some();
        self.record_undo(key, previous);
        self.after_write(key, Some(&value));
        replaced
    }

    /// Bulk work: once the write set passes the database's `write_set_part_size`, it goes to
    /// the log in parts (crate docs, "Bulk work"). Before the first savepoint only: a write
    /// after it may be rolled back, and a part cannot take a write back, so from the first
    /// savepoint on writes wait for the commit record (which also repeats every key written
    /// since, see [`Txn::parts_tail`]).
    /// `value` is what the write set now holds for `key` (passed in, not looked up again: a
    /// write-set search per write is a bulk load's second B-tree walk per row).
    fn after_write(&mut self, key: &[u8], value: Option<&Bytes>) {
        if self.savepoints {
            return;
        }
        let limit = self.db.write_set_part_size();
        match &mut self.spill {
            Some(spill) => {
                crate::record::encode_write(&mut spill.buf, key, value);
                spill.count += 1;
                if limit > 0 && spill.buf.len() as u64 >= limit {
                    self.write_part();
                }
            }
            None => {
                if limit == 0 {
                    return;
                }
                self.write_bytes += key.len() + value.map_or(0, |v| v.len()) + 16;
                if self.write_bytes as u64 >= limit {
                    // The first part is the whole write set so far.
                    let mut buf = Vec::with_capacity(self.write_bytes);
                    for (k, v) in &self.state.writes {
                        crate::record::encode_write(&mut buf, k, v.as_ref());
                    }
                    self.spill = Some(Spill {
                        parts: 0,
                        count: self.state.writes.len() as u32,
                        buf,
                        refused: None,
                    });
                    self.write_part();
                }
            }
        }
    }

    /// Hands the writes since the last part to the log as the next part record (no wait).
    fn write_part(&mut self) {
        let Some(spill) = self.spill.as_mut() else {
            return;
        };
        spill.parts += 1;
        let payload =
            crate::record::encode_part(self.state.id, spill.parts, spill.count, &spill.buf);
        spill.buf.clear();
        spill.count = 0;
        if let Err(e) = self.db.submit_part(self.state.id, payload) {
            spill.refused.get_or_insert(e);
        }
    }

    /// The writes a parts-commit record carries: those since the last part, then the current
    /// value of every key written since the first savepoint (writes rolled back to a savepoint
    /// are gone from `undo`; what they overwrote is in a part or earlier in the tail).
    /// `Some((parts, count, encoded))` if the transaction wrote parts.
    fn parts_tail(&self) -> Option<(u32, u32, Vec<u8>)> {
        let spill = self.spill.as_ref()?;
        let mut buf = spill.buf.clone();
        let mut count = spill.count;
        // Range deletes ride in the tail: replay applies them with the parts at the one commit
        // timestamp, where they hide only older versions, so their place does not matter.
        for (start, end) in &self.state.range_deletes {
            crate::record::encode_range_delete(&mut buf, start, end);
            count += 1;
        }
        for (key, _) in &self.undo {
            if let Some(value) = self.state.writes.get(key) {
                crate::record::encode_write(&mut buf, key, value.as_ref());
                count += 1;
            }
        }
        Some((spill.parts, count, buf))
    }

    /// Remembers what a write replaced, if a savepoint may roll it back.
    fn record_undo(&mut self, key: &[u8], previous: Option<Option<Bytes>>) {
        if self.savepoints {
            self.undo.push((key.to_vec(), previous));
        }
    }

    /// Deletes a key without a row lock: the caller holds the table's ACCESS EXCLUSIVE lock
    /// (TRUNCATE, DROP TABLE, a rewrite by ALTER TABLE), which conflicts with every row lock
    /// of other transactions. At REPEATABLE READ and above a row changed after the snapshot
    /// still fails with [`MvccError::Serialization`], and SERIALIZABLE records the write.
    pub fn delete_unlocked(&mut self, key: &[u8]) -> Result<(), MvccError> {
        if self.state.isolation != Isolation::ReadCommitted {
            if let Some(latest) = self.db.engine().latest_version(key) {
                if latest > self.state.snapshot.to_version() {
                    return Err(MvccError::Serialization { key: key.to_vec() });
                }
            }
            if self.state.isolation == Isolation::Serializable {
                self.db.ssi().write_key(self.state.id, key)?;
            }
        }
        self.note_write();
        let previous = self.state.writes.insert(key, None);
        self.note_key(key);
        self.record_undo(key, previous);
        self.after_write(key, None);
        Ok(())
    }

    /// Deletes every key in `[start, end)` of a table this transaction holds ACCESS
    /// EXCLUSIVE (TRUNCATE, DROP TABLE, the old rows of a rewrite): at READ COMMITTED, before
    /// any savepoint or increment, as one range delete (a WAL entry of a few bytes, whatever
    /// the number of rows: see the engine's range deletes); the transaction's own earlier
    /// writes in the range are dropped from its write set, or, once it writes parts (which
    /// may hold them), become point deletes that the commit's tail carries after the parts.
    /// Otherwise key by key with [`Txn::delete_unlocked`] (its serialization checks, SSI
    /// records, savepoint undo).
    pub fn delete_range(&mut self, start: &[u8], end: &[u8]) -> Result<(), MvccError> {
        if start >= end {
            return Ok(());
        }
        let whole = self.state.isolation == Isolation::ReadCommitted
            && !self.savepoints
            && self.increments.is_empty();
        if !whole {
            let keys: Vec<Vec<u8>> = self
                .scan_iter(
                    Bound::Included(start.to_vec()),
                    Bound::Excluded(end.to_vec()),
                    false,
                )?
                .map(|(k, _)| k)
                .collect();
            for key in keys {
                self.delete_unlocked(&key)?;
            }
            return Ok(());
        }
        self.note_write();
        let own: Vec<Vec<u8>> = self
            .state
            .writes
            .range((Bound::Included(start), Bound::Excluded(end)), false)
            .map(|(k, _)| k.to_vec())
            .collect();
        for key in own {
            if self.spill.is_some() {
                // A part may hold the key: a later tombstone wins over it at replay.
                self.state.writes.insert(&key, None);
                self.note_key(&key);
                self.after_write(&key, None);
            } else {
                self.state.writes.remove(&key);
            }
        }
        let range = (start.to_vec(), end.to_vec());
        if !self.state.range_deletes.contains(&range) {
            self.state.range_deletes.push(range);
        }
        Ok(())
    }

    /// Whether `key` lies in one of this transaction's range deletes (and was not written
    /// since: callers look at the write set first).
    fn range_deleted(&self, key: &[u8]) -> bool {
        in_ranges(&self.state.range_deletes, key)
    }

    /// True if this transaction itself has written `key` (put or delete).
    pub fn wrote(&self, key: &[u8]) -> bool {
        self.state.writes.contains_key(key)
    }

    /// Deletes `key` (a tombstone at commit), taking the row's write lock.
    pub fn delete(&mut self, key: &[u8]) -> Result<(), MvccError> {
        self.write(key, None)
    }

    fn write(&mut self, key: &[u8], value: Option<Bytes>) -> Result<(), MvccError> {
        let mode = match value {
            Some(_) => RowMode::NoKeyUpdate,
            None => RowMode::Update,
        };
        self.lock_for_write(key, mode)?;
        if self.state.isolation == Isolation::Serializable {
            self.db.ssi().write_key(self.state.id, key)?;
        }
        self.note_write();
        let previous = self.state.writes.insert(key, value.clone());
        self.note_key(key);
        self.record_undo(key, previous);
        self.after_write(key, value.as_ref());
        Ok(())
    }

    fn lock_for_write(&mut self, key: &[u8], mode: RowMode) -> Result<(), MvccError> {
        self.lock_row(key, mode, LockWait::Block).map(|_| ())
    }

    /// Locks a row in `mode` (`SELECT ... FOR UPDATE` and friends; writes take theirs
    /// themselves), with its table and partition intention locks. At REPEATABLE READ and above
    /// a row changed after the snapshot fails with [`MvccError::Serialization`], as in
    /// PostgreSQL. `SkipLocked` returns [`RowLocked::Skipped`] instead of waiting.
    pub fn lock_row(
        &mut self,
        key: &[u8],
        mode: RowMode,
        wait: LockWait,
    ) -> Result<RowLocked, MvccError> {
        if !mode.is_increment()
            && mode != RowMode::KeyShare
            && !self.increments.is_empty()
            && !self.state.writes.contains_key(key)
            && self.increments.iter().any(|p| p.key == key)
        {
            // An UPDATE, DELETE, SELECT ... FOR ... of a row this transaction increments
            // observes it first (the observer's lock covers the non-key modes), so what it
            // reads and writes is its final value. FOR KEY SHARE (a foreign-key check) only
            // needs the row to exist, which increments do not change.
            self.observe(key)?;
        }
        let r = self
            .db
            .locks()
            .lock_row(&mut self.locks, self.state.id, key, mode, wait)?;
        if r == RowLocked::New && self.state.isolation != Isolation::ReadCommitted {
            if let Some(latest) = self.db.engine().latest_version(key) {
                if latest > self.state.snapshot.to_version() {
                    return Err(MvccError::Serialization { key: key.to_vec() });
                }
            }
        }
        Ok(r)
    }

    /// Raises the INCREMENT lock of a row this transaction increments to OBSERVE or COMMIT: in
    /// the row lock table only (the intention locks came with INCREMENT), or through the whole
    /// hierarchy if escalation has replaced the row lock meanwhile.
    /// With `since` (the row's stamp from the increment's read), true if the row stayed
    /// undisturbed (`LockManager::upgrade_row`): its stamp is now `since + 1`.
    fn raise_increment_lock(
        &mut self,
        key: &[u8],
        mode: RowMode,
        since: Option<u64>,
    ) -> Result<bool, MvccError> {
        let locks = self.db.locks();
        let raised = locks.upgrade_row(
            &mut self.locks,
            self.state.id,
            key,
            mode,
            LockWait::Block,
            since,
        )?;
        match raised {
            RowGrant::NotHeld => {
                locks.lock_row(&mut self.locks, self.state.id, key, mode, LockWait::Block)?;
                Ok(false)
            }
            RowGrant::UndisturbedUpgrade => Ok(true),
            _ => Ok(false),
        }
    }

    /// Takes a table lock in `mode`, held to the end of the transaction (SELECT: ACCESS SHARE,
    /// DML: ROW EXCLUSIVE, DDL: ACCESS EXCLUSIVE, `LOCK TABLE`).
    pub fn lock_table(
        &mut self,
        rel: RelId,
        mode: TableMode,
        wait: LockWait,
    ) -> Result<Acquired, MvccError> {
        self.db.locks().lock_object(
            &mut self.locks,
            self.state.id,
            crate::locks::ObjectTag::Relation(rel),
            crate::locks::ObjectMode::Table(mode),
            wait,
        )
    }

    /// Bulk work: about to write `rows` rows of `rel`. Past the table escalation threshold the
    /// table lock (EXCLUSIVE) is tried now, without waiting; if granted, the rows take no row
    /// locks (counted as an escalation).
    pub fn bulk_write_hint(&mut self, rel: RelId, rows: usize) {
        self.db
            .locks()
            .bulk_write_hint(&mut self.locks, self.state.id, rel, rows);
    }

    /// Bounds this transaction's lock waits from now on (`lock_timeout`, the statement's
    /// deadline, the cancel flag).
    pub fn set_wait_limits(&mut self, limits: WaitLimits) {
        self.locks.limits = limits;
    }

    /// READ COMMITTED: the next statement reads a fresh snapshot. No effect at higher levels.
    pub fn new_statement(&mut self) {
        if self.state.isolation == Isolation::ReadCommitted {
            self.state.snapshot = self.db.replace_snapshot(self.state.id, self.state.snapshot);
        }
    }

    /// Takes the snapshot again, now: for the first statement of an explicit transaction
    /// block, since PostgreSQL fixes a transaction's snapshot at its first statement, not at
    /// BEGIN. NB: only before the transaction has read or written anything.
    pub fn retake_snapshot(&mut self) {
        let id = self.state.id;
        let db = self.db.clone();
        let fresh = if self.state.isolation == Isolation::Serializable {
            db.ssi().retake_snapshot(id, || db.register_snapshot(id))
        } else {
            db.register_snapshot(id)
        };
        db.unregister_snapshot(id, self.state.snapshot);
        self.state.snapshot = fresh;
    }

    /// Marks the current position of the write set.
    pub fn savepoint(&mut self) -> Savepoint {
        self.savepoints = true;
        Savepoint {
            undo: self.undo.len(),
            increments: self.increments.len(),
        }
    }

    /// Undoes every write made after `sp`. Row locks taken since are kept until the end of the
    /// transaction (NB: PostgreSQL releases them; keeping them is safe, only less concurrent).
    /// Increments recorded since are dropped too; a row observed since is no longer observed
    /// (its remaining increments are applied at commit, or observed again).
    pub fn rollback_to(&mut self, sp: Savepoint) {
        self.increments.truncate(sp.increments);
        while self.undo.len() > sp.undo {
            let Some((key, previous)) = self.undo.pop() else {
                break;
            };
            match previous {
                Some(v) => {
                    self.note_key(&key);
                    self.state.writes.insert(&key, v);
                }
                None => {
                    self.state.writes.remove(&key);
                }
            }
        }
    }

    /// Commits: one WAL record, group fsync, then visibility. When this returns `Ok`, the
    /// transaction is durable and every snapshot taken afterwards sees it. A read-only
    /// transaction writes nothing and returns its snapshot. NB: an error for which
    /// [`MvccError::is_commit_in_doubt`] holds does not mean "rolled back": the log failed with
    /// the record in flight, and it may be found committed after a restart.
    pub fn commit(mut self) -> Result<Timestamp, MvccError> {
        self.finished = true;
        let pending = if self.increments.is_empty() {
            Vec::new()
        } else {
            self.pending_increment_keys()
        };
        let result = if let Some(e) = self.spill.as_mut().and_then(|s| s.refused.take()) {
            Err(e)
        } else if !pending.is_empty() {
            self.commit_increments(pending)
        } else if self.state.writes.is_empty() && self.state.range_deletes.is_empty() {
            if self.state.isolation == Isolation::Serializable {
                self.db
                    .ssi()
                    .commit_read_only(self.state.id)
                    .map(|()| self.state.snapshot)
            } else {
                Ok(self.state.snapshot)
            }
        } else {
            let db = self.db.clone();
            let tail = self.parts_tail();
            match db.start_commit(&self.state, tail) {
                Ok(in_flight) => {
                    // Early lock release: the writes are in the engine (unpublished) and the
                    // commit record is ordered in the log; the next writer may go on.
                    self.release_locks();
                    db.finish_commit(in_flight, &self.state)
                }
                Err(e) => Err(e),
            }
        };
        self.state.status = match result {
            Ok(ts) => TxnStatus::Committed(ts),
            Err(_) => TxnStatus::Aborted,
        };
        self.db.count_commit(result.is_ok());
        self.release();
        result
    }

    /// Commit of a transaction with increments of rows it has not observed: takes INCREMENT
    /// COMMIT on each (waits for another transaction observing the row), then commits with the
    /// final values computed inside the commit order (`Db::start_commit_increments`).
    fn commit_increments(&mut self, keys: Vec<Vec<u8>>) -> Result<Timestamp, MvccError> {
        let mut deltas: RowDeltas = Vec::with_capacity(keys.len());
        for key in keys {
            let seen = self.seen(&key);
            let undisturbed = self.raise_increment_lock(
                &key,
                RowMode::IncrementCommit,
                seen.as_ref().map(|s| s.stamp),
            )?;
            // The newest version read by the increment, for the commit to use if the row is
            // still undisturbed under the commit-order mutex (stamp + 1: our COMMIT grant).
            let newest = seen.filter(|_| undisturbed).map(|s| (s.stamp + 1, s.row));
            let d = self
                .increments
                .iter()
                .filter(|p| p.key == key)
                .map(|p| p.delta.clone())
                .collect();
            deltas.push(RowDeltaSet {
                key,
                deltas: d,
                newest,
            });
        }
        let db = self.db.clone();
        let tail = self.parts_tail();
        let in_flight = db.start_commit_increments(&mut self.state, &deltas, tail)?;
        self.release_locks();
        db.finish_commit(in_flight, &self.state)
    }

    /// Rolls back: nothing the transaction wrote becomes visible.
    pub fn rollback(mut self) {
        self.finished = true;
        self.state.status = TxnStatus::Aborted;
        self.db.count_rollback();
        self.release();
    }

    fn release_locks(&mut self) {
        if !self.locks.is_empty() {
            self.db.locks().release_all(&mut self.locks, self.state.id);
        }
    }

    fn release(&mut self) {
        self.release_locks();
        // After a commit this runs once it is published: from here on a checkpoint holds the
        // writes and its stamp may pass the parts (crate invariant 7).
        if self.spill.take().is_some() {
            self.db.parts_closed(self.state.id);
        }
        if self.state.isolation == Isolation::Serializable {
            let committed = matches!(self.state.status, TxnStatus::Committed(_));
            self.db.ssi().end(self.state.id, committed);
        }
        let commit_ts = match self.state.status {
            TxnStatus::Committed(ts) => Some(ts),
            _ => None,
        };
        if self.registered {
            self.db
                .registry()
                .finished(self.state.id, Some(self.state.snapshot), commit_ts);
        } else {
            self.db
                .unregister_snapshot(self.state.id, self.state.snapshot);
        }
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        if !self.finished {
            self.state.status = TxnStatus::Aborted;
            self.db.count_rollback();
            self.release();
        }
    }
}

/// Whether `key` lies in one of `ranges` (`[start, end)` each).
fn in_ranges(ranges: &[(Vec<u8>, Vec<u8>)], key: &[u8]) -> bool {
    ranges
        .iter()
        .any(|(start, end)| key >= start.as_slice() && key < end.as_slice())
}

fn increment_failed(message: String) -> MvccError {
    MvccError::IncrementFailed { message }
}

/// A scan bound as the write set takes it.
fn as_slice(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Merges the committed snapshot with the transaction's own writes, in key order.
pub struct ScanIter<'a> {
    committed: std::iter::Peekable<gnomon_engine::Scan>,
    own: std::iter::Peekable<crate::write_set::Range<'a>>,
    reverse: bool,
    /// The transaction's own range deletes: committed keys inside them are skipped.
    range_deletes: &'a [(Vec<u8>, Vec<u8>)],
}

impl Iterator for ScanIter<'_> {
    type Item = (Vec<u8>, Bytes);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_own = match (self.committed.peek(), self.own.peek()) {
                (None, None) => return None,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((ck, _)), Some((ok, _))) => {
                    let ord = ck.as_slice().cmp(ok);
                    if ord == std::cmp::Ordering::Equal {
                        self.committed.next(); // shadowed by the transaction's own write
                        true
                    } else {
                        (ord == std::cmp::Ordering::Greater) != self.reverse
                    }
                }
            };
            if take_own {
                let (k, v) = self.own.next()?;
                if let Some(v) = v {
                    return Some((k.to_vec(), v.clone()));
                }
                // own delete: skip
            } else {
                let (key, value) = self.committed.next()?;
                if !in_ranges(self.range_deletes, &key) {
                    return Some((key, value));
                }
            }
        }
    }
}
