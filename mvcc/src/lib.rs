//! # gnomon-mvcc: transactions over the versioned engine and the redo log
//!
//! This layer turns the engine's versioned key-value store and the WAL into transactions with
//! PostgreSQL's isolation behaviour. It owns the hybrid logical clock, snapshots, the lock
//! manager ([`locks`]: table → partition → row with PostgreSQL's modes, escalation, deadlock
//! detection; its protocol is in `src/locks/README.md`), the commit pipeline and recovery.
//!
//! ## Guarantees
//!
//! - **Atomic, durable commits.** A transaction's writes travel in one WAL record
//!   ([`record`]), or, for a bulk transaction, in write-set part records followed by a parts
//!   commit record that replay needs before it applies any of them ("Bulk work" below);
//!   `commit` returns `Ok` only after that record is fsynced by the group-commit writer and
//!   the writes are visible.
//! - **Snapshots.** A transaction reads at a snapshot timestamp: every transaction that committed
//!   at or before it, completely, and nothing else. READ COMMITTED takes a new snapshot per
//!   statement; REPEATABLE READ keeps one for the whole transaction. Readers take no locks and
//!   never wait for writers.
//! - **Write-write conflicts as in PostgreSQL.** A second writer of a row waits for the first.
//!   If the first commits, a REPEATABLE READ writer fails with a retryable serialization error
//!   and a READ COMMITTED writer goes on with the newest version ([`Txn::get_for_update`]); if
//!   the first aborts, the second goes on. Lock cycles are found when the closing edge is added;
//!   the youngest transaction of the cycle fails with a deadlock error. Every lock is held to
//!   the end of the transaction (except a probe that finds no row, given back at once: see
//!   `src/locks/README.md`); waiters queue in FIFO order and are handed the lock.
//! - **SERIALIZABLE is serializable.** SERIALIZABLE transactions run as REPEATABLE READ
//!   plus serializable snapshot isolation ([`ssi`]): read-write antidependencies among them
//!   are tracked through SIREAD locks on the keys and key ranges they read, and a transaction
//!   of every dangerous structure `T1 -rw-> T2 -rw-> T3` (T3 committed first) fails with the
//!   retryable [`MvccError::SerializationDependencies`] (40001). READ COMMITTED and REPEATABLE
//!   READ transactions never touch that bookkeeping.
//! - **Time never goes backwards**, across restarts too: see [`clock`]. The node's Lamport
//!   clock, version vector and vector clock ([`logical`]) are durable before any value is
//!   returned, and resume exactly where they were after a restart.
//! - **Two-phase commit participant** ([`twopc`]): `Db::prepare` makes a transaction durable
//!   as prepared (a fsynced prepare record with its write set and lock set); it survives
//!   crashes with its locks held and its writes invisible until `Db::commit_prepared` (from
//!   any session) or `Db::rollback_prepared`.
//! - **Transaction status** ([`registry`]): every writing transaction, live or among the
//!   recently finished (bounded history), can be looked up by id (`Db::txn_status`), including
//!   in-doubt (prepared) ones with their gid.
//!
//! ## Invariants
//!
//! 1. Commit timestamps are taken and registered with the engine (`prepare_batch`) under one
//!    mutex, so registered versions strictly increase.
//! 2. A batch is registered *before* its commit record is handed to the log, and its writes
//!    are inserted into the engine (unpublished) only after the record has its place in the
//!    log. Hence every WAL record before a position read at time t belongs to a batch
//!    registered before t (what makes checkpoints correct).
//! 3. The engine's `visible()` watermark only passes a version when every batch at or below it
//!    is published (after its record is durable) or abandoned. Snapshots are taken from it, so
//!    no snapshot ever sees part of a transaction, nor a transaction that is not yet durable.
//! 4. `commit` returns only after `visible() >= commit_ts`: a snapshot taken after the client
//!    was told "committed" includes the transaction.
//! 5. Early lock release: row locks are released once the writes are in the engine
//!    (unpublished) and the commit record is queued, before the fsync. The next writer of the
//!    row reads that newest version (`get_for_update`, or the REPEATABLE READ conflict check),
//!    and its own commit record comes later in the same log, so it is durable only if its
//!    predecessor is, and visible only after it (timestamp order). If the log fails, the
//!    unpublished writes are retracted and every later commit fails too (the log is poisoned).
//!    NB: inside the dependent transaction, a statement may already return a value it read from
//!    the not-yet-durable predecessor (`UPDATE ... RETURNING`); what is guaranteed is that no
//!    commit is acknowledged before everything it read is durable, and no snapshot reader ever
//!    sees unpublished data.
//! 6. The GC safe point is min(oldest registered snapshot, now − Δgc) (`gc_window`), computed
//!    with every shard of the snapshot registry held, so no snapshot registers below it
//!    meanwhile. A prepared (2PC) transaction keeps its snapshot registered, so it holds the
//!    safe point back like any reader.
//! 7. A checkpoint's replay position is never past an unresolved prepare record
//!    (`Db::oldest_unresolved_prepare_lsn`), nor past the first write-set part of a
//!    transaction that has not finished (its entry in `Db::open_parts` is dropped only once
//!    its commit is published, so a checkpoint that misses the entry holds the writes), and
//!    WAL segments are only removed before that position: whoever schedules checkpoints or
//!    removes segments must go through `Db::checkpoint` or respect that bound. Replaying commit records that the checkpoint
//!    already holds is harmless (applying a commit record is idempotent, and every later record
//!    is replayed after it).
//! 8. A prepared transaction's writes reach the engine only through its commit record (COMMIT
//!    PREPARED repeats the write set under the same transaction id), so until then no
//!    snapshot can see them, before or after a restart.
//! 9. A SERIALIZABLE writer's SSI commit check and its commit timestamp are one step under the
//!    SSI mutex (`ssi` → `commit_order`, never the reverse), so "committed first" among
//!    serializable transactions is timestamp order and agrees with every snapshot; its SSI
//!    state is forgotten only after its commit is published (see [`ssi`]).
//! 10. **Checkpoint stamp.** A checkpoint stamped at LSN `L` reflects every WAL record below
//!     `L`: recovery loads it and replays from `L`, and WAL segments wholly below `L` are
//!     deleted. [`Db::checkpoint`] reads the log's end `E` (then the oldest unresolved prepare
//!     record, invariant 7), then `P = max_prepared`, waits until `visible() >= P`, and stamps
//!     `L = min(E, durable end, oldest unresolved prepare)`. Why that is safe with early lock
//!     release: every commit record below `E` belongs to a batch prepared before `E` was read
//!     (invariant 2), so at or below `P`; after the wait each such batch is published (record
//!     durable, writes inserted before the engine freezes its memtable) or retracted (record
//!     failed, log poisoned). The engine copies only settled batches into the file (engine
//!     invariant 9), so no unpublished or retracted version reaches a checkpoint, while batches
//!     newer than `P` go to the fresh memtable and are replayed from `L` (idempotently if they
//!     also made it into the file). The stamp never passes the durable end: after a failed
//!     write the records in [durable, `E`) may be missing on restart, and a stamp beyond the
//!     reopened log's end would make recovery skip every record written after the reopen
//!     (`Db::open` refuses a checkpoint ahead of the log: `WalBehindCheckpoint`). Nor does
//!     it start when the log begins after the loaded checkpoint (`WalStartsAfterCheckpoint`):
//!     segments are removed only up to the newest checkpoint, so this means a newer checkpoint
//!     failed to load and the records between the two exist nowhere else.
//! 11. **Increments.** A row held in INCREMENT mode by several transactions gets its final
//!     value only at each one's commit: the newest version (unpublished ones included) plus the
//!     deltas, computed under the commit-order mutex held until the record is queued and the
//!     writes are in the engine (`Db::start_commit_increments`), so the row's versions are a
//!     serial execution in log order and the WAL holds values, not deltas. A transaction that
//!     reads a row it increments first becomes its observer (the others' commits wait for it);
//!     see `src/locks/README.md`, "Increments". NB: "the newest version" may be the one the
//!     increment read, when the row lock shows that nobody else has held the row since
//!     (README, "Undisturbed rows"): every writer of a row holds a lock on it while it writes.
//!
//! ## Data
//!
//! ```text
//!  Txn (live handle) ──────────── TxnState (plain, serde: WAL, 2PC, other nodes)
//!   │ undo log, held locks          { id, isolation, snapshot, writes: key -> Option<value>, status }
//!   ▼
//!  commit:  ┌ commit_order mutex ┐
//!           │ ts = clock.now()   │  WAL record = ts | txn id | writes      (record.rs)
//!           │ engine.prepare(ts) │──► wal.submit_to_wait ──► engine.insert (unpublished) ──► release row locks
//!           └────────────────────┘        └──► group fsync ──► engine.publish(ts) ──► wait visible(ts) ─► Ok(ts)
//!                                               (written by the committer itself if the log is idle,
//!                                                the group-commit leader; the first committer of a
//!                                                batch to wake publishes every batch whose record is
//!                                                at or below its LSN)
//!
//!  maintenance thread (Db::start_maintenance; holds a Weak<Db>):
//!    WAL since last checkpoint >= checkpoint_wal_size, or checkpoint_timeout ──► Db::checkpoint
//!      (by volume only if it frees half of that: not while an open bulk transaction or a
//!       prepare holds the stamp back, until 4 x checkpoint_wal_size more log was written)
//!    every gc_interval ──► Db::gc (safe point, invariant 6); VACUUM calls Db::gc too
//!    figures of both ──► Db::maintenance_stats()
//!
//!  engine keys:  user key bytes ++ version (newest first)   version = HLC ts as u128
//!                ⟨physical µs:64 | logical:32 | node:32⟩
//!  data dir:     LOCK  checkpoint files  clock (HLC ceiling)  logical_clocks  wal/<segments>
//!  WAL kinds:    1 commit   2 prepare (2PC)   3 abort-prepared (2PC)
//!                4 write-set part   5 parts commit                         (record.rs)
//!                (commit and parts commit may carry range deletes: write tag 2)
//!
//!  2PC:  active ──prepare──► prepared ──commit_prepared──► committed
//!                   (fsync)      │ locks + snapshot held
//!                                └──rollback_prepared──► rolled back
//! ```
//!
//! Keys are opaque here: a caller that keeps several namespaces in one key space (the SQL
//! layer's databases) labels each handle with `Txn::set_namespace` so the layer above reads its
//! namespace from the handle it already holds; the label is not logged or checked here.
//!
//! ## Bulk work (COPY, INSERT ... SELECT, MERGE, table rewrites)
//!
//! The rule is: **bulk work stays atomic.** A COPY or INSERT ... SELECT that fails at row
//! 900,000 leaves nothing behind, as in PostgreSQL; clients rely on that (a failed `pgbench -i`
//! or restore is simply run again). What is made cheaper is the bookkeeping, not the unit of
//! commit:
//!
//! - **Locks.** A statement that knows it will write many rows of a table (more than the lock
//!   manager's `table_escalation_rows`) tries the table's EXCLUSIVE lock up front without
//!   waiting ([`Txn::bulk_write_hint`]); if granted, its rows take no row locks. Table rewrites
//!   and TRUNCATE / DROP TABLE hold ACCESS EXCLUSIVE and write with [`Txn::put_unlocked`] /
//!   [`Txn::delete_unlocked`].
//! - **Range deletes.** TRUNCATE, DROP TABLE and a rewrite's old rows go as range deletes
//!   ([`Txn::delete_range`]): the commit record carries `[start, end)` once (a write with tag
//!   2, `record.rs`) and the engine hides every older version in it (engine `ranges.rs`), so
//!   dropping a million rows writes a few bytes. The transaction's own reads skip the range at
//!   once; other snapshots see it at the commit like any write (one taken before keeps the
//!   old rows; the ACCESS EXCLUSIVE lock keeps writers out meanwhile). Not at REPEATABLE READ
//!   and above (each key's serialization check), after a savepoint (no undo of a range) or
//!   with increments: there it is key by key. PREPARE turns range deletes into point deletes
//!   (the prepare record has none).
//! - **Undo.** The per-write undo record exists only from the first savepoint on
//!   ([`Txn::savepoint`]); before it, an error can only roll back the whole transaction.
//! - **The log.** Once a transaction's buffered writes pass `write_set_part_size`
//!   ([`DbOptions::write_set_part_size`], default 16 MiB), they go to the WAL as a "write-set
//!   part" record (txn id, part number), handed to the group-commit writer without waiting:
//!   it writes and syncs parts in the background while the load goes on, and the commit writes
//!   a small "parts commit" record (commit timestamp, txn id, part count, the writes since the
//!   last part) whose one fsync covers them all. Recovery keeps a transaction's parts aside
//!   and applies them only at its parts commit (parts in log order, then the tail; the last
//!   write of a key wins); parts with no commit after them (ROLLBACK, a failed statement, a
//!   crash mid-load) are ignored, so no abort marker is written. The checkpoint stamp never
//!   passes the first part of an unfinished transaction (invariant 7). A prepared transaction
//!   with parts is self-contained as before: its prepare record carries the whole write set,
//!   and COMMIT PREPARED writes an ordinary commit record (replay drops the parts).
//!   Savepoints: a part cannot take a write back, so parts are written only before the
//!   transaction's first savepoint; from then on its writes wait for the commit record, which
//!   repeats the current value of every key written since the savepoint (those rolled back to
//!   a savepoint are gone from the undo log and restored to what a part or the tail already
//!   holds).
//! - **The write set** ([`write_set`]): keys written in ascending order (a COPY's row ids, a
//!   rewrite's new keys) are appended to a sorted run in O(1), their bytes packed in shared
//!   chunks that the commit hands to the engine as slices (no second copy of the keys); keys
//!   out of order go to a B-tree beside it.
//! - NB (not done yet): the write set also stays in memory until commit (reads of the
//!   transaction's own writes and the engine insert at commit use it); what parts save is
//!   the commit record's one big encoding and the commit-time write + fsync of it.
//!   Committing in increments visible to others is deliberately not offered: it would make a
//!   failed load leave a prefix behind.
//!
//! ## Deliberately left out (for now)
//!
//! - Writes are buffered in the transaction until commit; there are no provisional versions in
//!   the engine, so a huge transaction's write set lives in memory.
//! - One WAL stream. With several, each commit record carries its HLC commit timestamp and
//!   recovery merges streams by it; see the `gnomon-wal` essay.

pub mod clock;
mod db;
mod error;
mod events;
pub mod locks;
pub mod logical;
mod maintenance;
pub mod record;
pub mod registry;
pub mod ssi;
pub mod twopc;
mod txn;
pub mod write_set;

pub use clock::{Clock, NodeId, SystemClock, Timestamp, WallClock};
pub use db::{
    Db, DbOptions, DbStats, RecoveryStats, DEFAULT_GC_WINDOW, DEFAULT_MAX_PREPARED_TRANSACTIONS,
    DEFAULT_WRITE_SET_PART_SIZE,
};
pub use error::MvccError;
pub use events::{DbEvent, EventSink, PROGRESS_MIN_BYTES};
pub use gnomon_engine::GcStats;
/// Default [`DbOptions::wal_syncs_in_flight`].
pub use gnomon_wal::DEFAULT_MAX_SYNCS_IN_FLIGHT as DEFAULT_WAL_SYNCS_IN_FLIGHT;
pub use gnomon_wal::{Lsn, SyncPolicy, WalStats, BATCH_SIZE_BOUNDS};
pub use locks::{
    Acquired, LockHierarchy, LockInfo, LockManager, LockSettings, LockStats, LockTarget, LockWait,
    ObjectTag, PartitionId, RelId, RowLocked, RowMode, TableMode, WaitLimits,
};
pub use logical::{Causality, ClockValueError, LogicalClockError, LogicalClocks, VectorTime};
pub use maintenance::{
    Maintenance, MaintenanceOptions, MaintenanceStats, DEFAULT_CHECKPOINT_TIMEOUT,
    DEFAULT_CHECKPOINT_WAL_SIZE,
};
pub use registry::{TxnInfo, TxnPhase};
pub use ssi::SsiStats;
pub use twopc::{PreparedInfo, MAX_GID_LEN};
pub use txn::{
    IncrementOutcome, Isolation, RowDelta, Savepoint, ScanIter, Txn, TxnId, TxnState, TxnStatus,
};
pub use write_set::WriteSet;
