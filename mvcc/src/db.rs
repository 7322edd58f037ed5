//! The database handle: recovery, the commit pipeline, checkpoints and GC.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gnomon_engine::{Engine, EngineOptions, GcStats};
use gnomon_wal::{FileSystem, Lsn, RealFs, SyncPolicy, Wal, WalOptions};

use crate::clock::{Clock, NodeId, SystemClock, Timestamp, WallClock};
use crate::error::MvccError;
use crate::events::{default_sink, percent, DbEvent, EventSink, PROGRESS_MIN_BYTES};
use crate::locks::{LockManager, LockStats, LockWait, RowMode, TxnLocks};
use crate::logical::LogicalClocks;
use crate::maintenance::{Counters, MaintenanceStats};
use crate::record::{
    decode_abort_prepared, decode_commit, decode_part, decode_parts_commit, decode_prepare,
    encode_commit, encode_parts_commit, Writes, ABORT_PREPARED_RECORD, COMMIT_RECORD,
    PARTS_COMMIT_RECORD, PART_RECORD, PREPARE_RECORD,
};
use crate::registry::{Registry, TxnInfo, TxnPhase};
use crate::ssi::{Ssi, SsiStats};
use crate::twopc::PreparedSet;
use crate::txn::{Isolation, Txn, TxnId, TxnState, TxnStatus};

/// How to open a database.
pub struct DbOptions {
    /// The data directory (created if missing). Holds `LOCK`, checkpoints, `clock`,
    /// `logical_clocks`, `wal/`.
    pub dir: PathBuf,
    /// This node's id, stamped into every timestamp.
    pub node: NodeId,
    /// Whether commits wait for fdatasync (the default) or not at all (tests and benchmarks).
    pub sync: SyncPolicy,
    /// WAL segment size in bytes.
    pub segment_size: u64,
    /// Most WAL commit fdatasyncs running at once (`gnomon_wal::WalOptions::max_syncs_in_flight`;
    /// 1 = one at a time). Default [`gnomon_wal::DEFAULT_MAX_SYNCS_IN_FLIGHT`].
    pub wal_syncs_in_flight: usize,
    /// A timestamp received from another node further ahead than this is refused.
    pub max_clock_offset: Duration,
    /// Δgc (`gc_window`): a version superseded at commit time T is collectable from T + Δgc
    /// on, and only once no snapshot (nor prepared transaction) can see it. Default 5 minutes.
    pub gc_window: Duration,
    /// The wall clock (a trait object so tests can move time).
    pub wall_clock: Box<dyn WallClock>,
    /// The file system the WAL writes through (tests inject `gnomon_wal::FaultyFs` to hold or
    /// fail fsyncs).
    pub wal_fs: Arc<dyn FileSystem>,
    /// Most transactions prepared (two-phase commit) at once; 0 disables PREPARE TRANSACTION.
    /// Default [`DEFAULT_MAX_PREPARED_TRANSACTIONS`].
    pub max_prepared_transactions: usize,
    /// Where recovery progress, checkpoints and background failures are reported. `None`:
    /// progress, long recoveries and failures go to stderr.
    pub events: Option<EventSink>,
    /// A transaction whose buffered writes pass this many bytes writes them to the log as
    /// write-set parts while it runs (crate docs, "Bulk work"); 0 = never. Default
    /// [`DEFAULT_WRITE_SET_PART_SIZE`]; changeable with [`Db::set_write_set_part_size`].
    pub write_set_part_size: u64,
}

/// Default [`DbOptions::write_set_part_size`]: 16 MiB.
pub const DEFAULT_WRITE_SET_PART_SIZE: u64 = 16 << 20;

/// Default limit on prepared transactions. NB: PostgreSQL ships 0 (disabled) because a
/// forgotten prepared transaction holds locks and blocks vacuum forever. Gnomon is built to be
/// a two-phase-commit participant of its own cluster, so 2PC is on by default; the limit is
/// PostgreSQL's advice for servers that use 2PC (at least `max_connections`, default 100) and
/// bounds what forgotten prepared transactions can pin: their write sets in memory, their row
/// locks and the GC safe point. Set 0 to refuse PREPARE TRANSACTION as PostgreSQL does by default.
pub const DEFAULT_MAX_PREPARED_TRANSACTIONS: usize = 100;

/// Where checkpoints stand against the log (log positions), for the maintenance thread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CheckpointProgress {
    /// The log's end.
    pub(crate) end: u64,
    /// The newest checkpoint's position: a restart replays from here.
    pub(crate) stamp: u64,
    /// How far a checkpoint started now could stamp: the durable end, held back by an open
    /// bulk transaction's first part or an unresolved prepare.
    pub(crate) reachable: u64,
}

/// Default Δgc ([`DbOptions::gc_window`]): 5 minutes.
pub const DEFAULT_GC_WINDOW: Duration = Duration::from_secs(300);

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            dir: PathBuf::from("gnomon-data"),
            node: NodeId(1),
            sync: SyncPolicy::Fsync,
            segment_size: 64 << 20,
            wal_syncs_in_flight: gnomon_wal::DEFAULT_MAX_SYNCS_IN_FLIGHT,
            max_clock_offset: Duration::from_millis(500),
            gc_window: DEFAULT_GC_WINDOW,
            wall_clock: Box::new(SystemClock),
            wal_fs: Arc::new(RealFs),
            max_prepared_transactions: DEFAULT_MAX_PREPARED_TRANSACTIONS,
            events: None,
            write_set_part_size: DEFAULT_WRITE_SET_PART_SIZE,
        }
    }
}

/// A commit between [`Db::start_commit`] and [`Db::finish_commit`]: its record is queued in the
/// log and its writes are in the engine, unpublished.
pub(crate) struct InFlightCommit {
    commit_ts: Timestamp,
    /// The engine ticket, unless it waits in [`Db::unpublished`] under the record's LSN.
    ticket: Option<gnomon_engine::BatchTicket>,
    pending: gnomon_wal::Pending,
}

/// What [`Db::open`] found and did during recovery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryStats {
    /// WAL position of the checkpoint recovery started from (0 = none).
    pub checkpoint_lsn: u64,
    /// Commit records (parts commits included) replayed from the WAL.
    pub replayed_commits: u64,
    /// Write-set parts replayed as part of a committed transaction.
    pub replayed_parts: u64,
    /// Write-set parts ignored: their transaction has no commit in the log (it rolled back,
    /// failed, prepared, or the server stopped before its commit).
    pub ignored_parts: u64,
    /// Prepared transactions found unresolved and rebuilt (locks held, writes invisible).
    pub prepared_restored: u64,
}

/// An open database: one per data directory and process. Share it as `Arc<Db>`.
pub struct Db {
    wal: Wal,
    engine: Engine,
    clock: Clock,
    locks: LockManager,
    /// rw-antidependency tracking of SERIALIZABLE transactions (see [`crate::ssi`]).
    ssi: Ssi,
    /// Serialises "take a commit timestamp + register the batch with the engine", so that
    /// batches are registered in timestamp order (engine invariant: prepared versions increase).
    commit_order: Mutex<()>,
    /// Engine tickets of commits whose record is in the log but not yet known durable, by the
    /// record's LSN. The first committer that learns its record durable publishes every
    /// ticket at or below its LSN (durability is a prefix of the log), so a group-commit batch
    /// is published by one thread in LSN order instead of by each committer after its own
    /// wake-up (where a committer woken before its predecessor had to sleep in
    /// `wait_visible` until that one ran).
    unpublished: Mutex<BTreeMap<u64, gnomon_engine::BatchTicket>>,
    next_txn: AtomicU64,
    /// Snapshots in use (the GC safe point stays below the oldest) and writing transactions
    /// (live and recently finished), sharded by transaction id ([`crate::registry`]).
    registry: Registry,
    /// Prepared (two-phase commit) transactions by gid ([`crate::twopc`]).
    prepared: Mutex<PreparedSet>,
    max_prepared: usize,
    gc_window: Duration,
    recovery: RecoveryStats,
    /// Lamport clock, version vector and vector clock of this node (durable).
    logical: LogicalClocks,
    /// Transactions committed, failed at commit, rolled back since open ([`Db::stats`]).
    commits: AtomicU64,
    commit_failures: AtomicU64,
    rollbacks: AtomicU64,
    /// One checkpoint at a time (the engine serialises too; this keeps the stamp and the
    /// segment removal of one checkpoint together).
    checkpointing: Mutex<()>,
    /// GC and checkpoint figures ([`Db::maintenance_stats`]).
    counters: Counters,
    events: EventSink,
    /// [`DbOptions::write_set_part_size`].
    write_set_part_size: AtomicU64,
    /// Transactions that wrote write-set parts and have not finished, with a position at or
    /// before their first part: the checkpoint stamp stays at or below the oldest (invariant 7).
    open_parts: Mutex<BTreeMap<TxnId, Lsn>>,
}

/// Counters of a running database since it was opened, for monitoring (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Transactions whose commit succeeded (read-only ones included).
    pub commits: u64,
    /// Transactions whose commit failed (log failure; the outcome may be in doubt).
    pub commit_failures: u64,
    /// Transactions rolled back or dropped unfinished (by the client, or after an error such as
    /// a serialization failure or a deadlock).
    pub rollbacks: u64,
    /// The largest amount (µs) a timestamp received from another node was ahead of the local
    /// wall clock: the clock skew seen so far.
    pub max_clock_offset_us: u64,
    /// Row-lock waits and deadlocks.
    pub locks: LockStats,
    /// Group-commit writer figures.
    pub wal: gnomon_wal::WalStats,
    /// SERIALIZABLE bookkeeping (NB: read under the SSI mutex, briefly).
    pub ssi: SsiStats,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("recovery", &self.recovery)
            .finish_non_exhaustive()
    }
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Db {
    /// Opens (creating) the database in `opts.dir` and recovers it: the newest valid checkpoint,
    /// then every commit record after it from the WAL (a torn tail is truncated; corruption in
    /// the middle of the log is an error).
    pub fn open(opts: DbOptions) -> Result<Arc<Db>, MvccError> {
        std::fs::create_dir_all(&opts.dir).map_err(|source| MvccError::Io {
            path: opts.dir.clone(),
            source,
        })?;
        let started = Instant::now();
        let events: EventSink = opts.events.unwrap_or_else(|| Arc::new(default_sink));
        // The engine takes the directory lock: nothing else is touched before it succeeds.
        let (engine, checkpoint_lsn) = Engine::open(&opts.dir, EngineOptions::default())?;
        let clock = Clock::open(
            opts.node,
            opts.wall_clock,
            opts.max_clock_offset,
            Some(opts.dir.join("clock")),
        )?;
        let logical = LogicalClocks::open(opts.node, Some(&opts.dir))?;
        let wal = Wal::open(
            opts.wal_fs,
            &opts.dir.join("wal"),
            WalOptions {
                segment_size: opts.segment_size,
                sync: opts.sync,
                max_syncs_in_flight: opts.wal_syncs_in_flight,
                ..WalOptions::default()
            },
        )?;
        let wal_end = wal.end_lsn().0;
        if wal_end < checkpoint_lsn {
            return Err(MvccError::WalBehindCheckpoint {
                wal_end,
                checkpoint_lsn,
            });
        }
        let wal_start = wal.start_lsn().0;
        if wal_start > checkpoint_lsn {
            let skipped = &engine.recovery_report().skipped;
            let passed_over = if skipped.is_empty() {
                "none".to_string()
            } else {
                skipped
                    .iter()
                    .map(|s| s.error.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return Err(MvccError::WalStartsAfterCheckpoint {
                wal_start,
                checkpoint_lsn,
                passed_over,
            });
        }
        let mut recovery = RecoveryStats {
            checkpoint_lsn,
            ..RecoveryStats::default()
        };
        let mut max_txn = 0u64;
        // Prepare records not (yet) resolved by a later commit or abort-prepared record.
        let mut in_doubt = BTreeMap::new();
        // Write-set parts of transactions whose commit has not been seen (yet), in log order.
        let mut parts: BTreeMap<TxnId, (u32, Writes)> = BTreeMap::new();
        let total_bytes = wal_end - checkpoint_lsn;
        let mut replayed_bytes = 0;
        let mut next_report = 10; // percent
        for record in wal.replay(Lsn(checkpoint_lsn))? {
            let record = record?;
            replayed_bytes = (record.lsn.0
                + gnomon_wal::format::RECORD_HEADER_LEN as u64
                + record.payload.len() as u64)
                .saturating_sub(checkpoint_lsn);
            if total_bytes >= PROGRESS_MIN_BYTES
                && percent(replayed_bytes, total_bytes) >= next_report
            {
                events(&DbEvent::RecoveryProgress {
                    replayed_bytes,
                    total_bytes,
                    commits: recovery.replayed_commits,
                });
                next_report = percent(replayed_bytes, total_bytes) / 10 * 10 + 10;
            }
            let malformed = |reason| MvccError::MalformedRecord {
                lsn: record.lsn.0,
                reason,
            };
            match record.kind {
                COMMIT_RECORD => {
                    let commit = decode_commit(&record.payload).map_err(malformed)?;
                    clock.observe_recovered(commit.commit_ts)?;
                    max_txn = max_txn.max(commit.txn.0);
                    in_doubt.remove(&commit.txn);
                    // A commit record is self-contained (COMMIT PREPARED of a transaction
                    // that wrote parts repeats the whole write set).
                    if let Some((n, _)) = parts.remove(&commit.txn) {
                        recovery.ignored_parts += u64::from(n);
                    }
                    let version = commit.commit_ts.to_version();
                    engine.apply_recovered_range_deletes(version, commit.range_deletes);
                    engine.apply_recovered(version, commit.writes);
                    recovery.replayed_commits += 1;
                }
                PART_RECORD => {
                    let part = decode_part(&record.payload).map_err(malformed)?;
                    max_txn = max_txn.max(part.txn.0);
                    let (n, writes) = parts.entry(part.txn).or_default();
                    *n += 1;
                    writes.extend(part.writes);
                }
                PARTS_COMMIT_RECORD => {
                    let commit = decode_parts_commit(&record.payload).map_err(malformed)?;
                    clock.observe_recovered(commit.commit_ts)?;
                    max_txn = max_txn.max(commit.txn.0);
                    // Parts in log order, then the tail: the last write of a key wins. Fewer
                    // parts than named: the first ones are before the replay start, and the
                    // checkpoint holds the whole transaction (see record.rs).
                    let (n, mut writes) = parts.remove(&commit.txn).unwrap_or_default();
                    recovery.replayed_parts += u64::from(n);
                    writes.extend(commit.writes);
                    let version = commit.commit_ts.to_version();
                    engine.apply_recovered_range_deletes(version, commit.range_deletes);
                    engine.apply_recovered(version, writes);
                    recovery.replayed_commits += 1;
                }
                PREPARE_RECORD => {
                    let prepare = decode_prepare(&record.payload).map_err(malformed)?;
                    clock.observe_recovered(prepare.prepared_at)?;
                    max_txn = max_txn.max(prepare.txn.0);
                    in_doubt.insert(prepare.txn, (record.lsn, prepare));
                }
                ABORT_PREPARED_RECORD => {
                    let (txn, _gid) = decode_abort_prepared(&record.payload).map_err(malformed)?;
                    in_doubt.remove(&txn);
                    if let Some((n, _)) = parts.remove(&txn) {
                        recovery.ignored_parts += u64::from(n);
                    }
                }
                // NB: kinds of other layers or newer versions are not ours to interpret.
                _ => {}
            }
        }
        recovery.ignored_parts += parts.values().map(|(n, _)| u64::from(*n)).sum::<u64>();
        drop(parts);
        let mut prepared = PreparedSet::default();
        for (_, (lsn, rec)) in in_doubt {
            prepared.insert_recovered(lsn, rec);
        }
        events(&DbEvent::RecoveryDone {
            checkpoint_lsn,
            commits: recovery.replayed_commits,
            replayed_bytes,
            took: started.elapsed(),
        });
        // Ids grow from the clock so they stay unique (and "younger = larger") across restarts.
        let first_txn = clock.now()?.physical_us.max(max_txn + 1);
        let mut db = Arc::new(Db {
            wal,
            engine,
            clock,
            locks: LockManager::default(),
            ssi: Ssi::default(),
            commit_order: Mutex::new(()),
            unpublished: Mutex::new(BTreeMap::new()),
            next_txn: AtomicU64::new(first_txn),
            registry: Registry::default(),
            prepared: Mutex::new(prepared),
            max_prepared: opts.max_prepared_transactions,
            gc_window: opts.gc_window,
            recovery,
            logical,
            commits: AtomicU64::new(0),
            commit_failures: AtomicU64::new(0),
            rollbacks: AtomicU64::new(0),
            checkpointing: Mutex::new(()),
            counters: Counters::default(),
            events,
            write_set_part_size: AtomicU64::new(opts.write_set_part_size),
            open_parts: Mutex::new(BTreeMap::new()),
        });
        let restored = db.restore_prepared()? as u64;
        if let Some(db) = Arc::get_mut(&mut db) {
            db.recovery.prepared_restored = restored;
        }
        Ok(db)
    }

    /// What recovery found when this database was opened.
    pub fn recovery_stats(&self) -> RecoveryStats {
        self.recovery
    }

    /// Starts a transaction at `isolation`, reading the newest fully committed state.
    pub fn begin(self: &Arc<Self>, isolation: Isolation) -> Txn {
        let id = TxnId(self.next_txn.fetch_add(1, Ordering::Relaxed));
        let started_us = self.clock.wall_now_us();
        let snapshot = if isolation == Isolation::Serializable {
            self.ssi.begin(id, || self.register_snapshot(id))
        } else {
            self.register_snapshot(id)
        };
        let state = TxnState {
            id,
            isolation,
            snapshot,
            writes: crate::write_set::WriteSet::new(),
            range_deletes: Vec::new(),
            status: TxnStatus::Active,
        };
        Txn::new(self.clone(), state, TxnLocks::default(), started_us)
    }

    /// Turns a transaction's plain state (from another node or a persisted 2PC record) back into
    /// a live handle: re-takes the row locks of its write set (waiting if needed). NB: a
    /// SERIALIZABLE transaction's SIREAD locks are not part of its state; it is tracked again
    /// from here on, without its earlier reads (see [`crate::ssi`]).
    pub fn resume(self: &Arc<Self>, state: TxnState) -> Result<Txn, MvccError> {
        let mut locks = TxnLocks::default();
        for key in state.writes.keys() {
            let mode = match state.writes.get(key) {
                Some(None) => RowMode::Update,
                _ => RowMode::NoKeyUpdate,
            };
            if let Err(e) = self
                .locks
                .lock_row(&mut locks, state.id, key, mode, LockWait::Block)
            {
                self.locks.release_all(&mut locks, state.id);
                return Err(e);
            }
        }
        if state.isolation == Isolation::Serializable {
            self.ssi.begin(state.id, || {
                self.registry.shard(state.id).add_snapshot(state.snapshot);
                state.snapshot
            });
        } else {
            self.registry.shard(state.id).add_snapshot(state.snapshot);
        }
        Ok(Txn::new(
            self.clone(),
            state,
            locks,
            self.clock.wall_now_us(),
        ))
    }

    /// The hybrid logical clock of this node.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The Lamport clock, version vector and vector clock of this node.
    pub fn logical_clocks(&self) -> &LogicalClocks {
        &self.logical
    }

    /// Counters since open (cheap: a handful of relaxed loads).
    pub fn stats(&self) -> DbStats {
        DbStats {
            commits: self.commits.load(Ordering::Relaxed),
            commit_failures: self.commit_failures.load(Ordering::Relaxed),
            rollbacks: self.rollbacks.load(Ordering::Relaxed),
            max_clock_offset_us: self.clock.max_observed_offset_us(),
            locks: self.locks.stats(),
            wal: self.wal.stats(),
            ssi: self.ssi.stats(),
        }
    }

    /// Counts a commit attempt for [`Db::stats`].
    pub(crate) fn count_commit(&self, ok: bool) {
        let counter = if ok {
            &self.commits
        } else {
            &self.commit_failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a rollback for [`Db::stats`].
    pub(crate) fn count_rollback(&self) {
        self.rollbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// First half of the commit pipeline (see the crate docs): timestamp + engine registration
    /// in order, the commit record handed to the group-commit writer (its place in the log is
    /// fixed from here on), and the writes inserted into the engine unpublished. After this
    /// returns, the transaction's row locks may be released (early lock release): the next
    /// writer of a row reads this version, and its own commit record comes later in the log, so
    /// it cannot become durable without this one.
    /// `parts`: a transaction that wrote write-set parts writes a parts-commit record naming
    /// how many, with the writes made since its last part (`(parts, count, encoded writes)`,
    /// [`crate::record`]); otherwise a commit record carries the whole write set.
    pub(crate) fn start_commit(
        &self,
        state: &TxnState,
        parts: Option<(u32, u32, Vec<u8>)>,
    ) -> Result<InFlightCommit, MvccError> {
        self.registry
            .set_phase(state.id, TxnPhase::Committing, None);
        let (commit_ts, ticket) = if state.isolation == Isolation::Serializable {
            // SSI's commit check and the timestamp in one step (crate::ssi invariant 1).
            self.ssi
                .pre_commit(state.id, state.writes.keys().map(<[u8]>::to_vec), || {
                    self.order_commit()
                })?
        } else {
            self.order_commit()?
        };
        Ok(self.enqueue_commit(state, commit_ts, ticket, parts))
    }

    /// The commit record to the log (a parts-commit record if the transaction wrote parts),
    /// the writes into the engine (unpublished).
    fn enqueue_commit(
        &self,
        state: &TxnState,
        commit_ts: Timestamp,
        ticket: gnomon_engine::BatchTicket,
        parts: Option<(u32, u32, Vec<u8>)>,
    ) -> InFlightCommit {
        let pending = match parts {
            None => self.wal.submit_to_wait(
                COMMIT_RECORD,
                encode_commit(
                    commit_ts,
                    state.id,
                    state.writes.iter(),
                    &state.range_deletes,
                ),
            ),
            Some((parts, count, writes)) => self.wal.submit_to_wait(
                PARTS_COMMIT_RECORD,
                encode_parts_commit(commit_ts, state.id, parts, count, &writes),
            ),
        };
        let writes = state.writes.engine_batch();
        self.engine
            .insert_range_deletes(&ticket, state.range_deletes.clone());
        self.engine.insert_batch(&ticket, writes);
        let ticket = match pending.lsn() {
            Some(lsn) => {
                relock(&self.unpublished).insert(lsn.0, ticket);
                None
            }
            None => Some(ticket),
        };
        InFlightCommit {
            commit_ts,
            ticket,
            pending,
        }
    }

    /// [`Db::start_commit`] of a READ COMMITTED transaction with increments (the caller holds
    /// INCREMENT COMMIT on each row). Under the commit-order mutex, held until the record is
    /// queued and the writes are in the engine: each row's newest version (unpublished ones of
    /// earlier committers included) plus the deltas becomes a write of the record, then the
    /// timestamp, the log and the engine as for any commit. Every incrementer of a row does
    /// this under the same mutex, so the row's versions are a serial execution in commit (=
    /// log) order. A delta out of range fails the commit before anything is registered.
    pub(crate) fn start_commit_increments(
        &self,
        state: &mut TxnState,
        increments: &crate::txn::RowDeltas,
        mut parts: Option<(u32, u32, Vec<u8>)>,
    ) -> Result<InFlightCommit, MvccError> {
        self.registry
            .set_phase(state.id, TxnPhase::Committing, None);
        let _order = relock(&self.commit_order);
        for crate::txn::RowDeltaSet {
            key,
            deltas,
            newest,
        } in increments
        {
            // The row's newest version: the one the increment read, if nobody else has held
            // the row since (checked here, where no other incrementer can be committing it:
            // see `LockManager::row_stamp`); else read again.
            let newest = match newest {
                Some((stamp, row)) if self.locks.row_undisturbed(state.id, key, *stamp) => {
                    Some(row.clone())
                }
                _ => self.engine.get(key, gnomon_engine::Version::MAX),
            };
            let Some(mut row) = newest else {
                continue; // NB: cannot happen, a delete waits for INCREMENT holders
            };
            for d in deltas {
                row = d
                    .apply(&row)
                    .map_err(|message| MvccError::IncrementFailed { message })?;
            }
            // A transaction that wrote parts: the final value joins the parts-commit tail, where
            // replay lets it win over any earlier write of the key.
            if let Some((_, count, buf)) = parts.as_mut() {
                crate::record::encode_write(buf, key, Some(&row));
                *count += 1;
            }
            state.writes.insert(key, Some(row));
        }
        let ts = self.clock.now()?;
        let ticket = self.engine.prepare_batch(ts.to_version())?;
        Ok(self.enqueue_commit(state, ts, ticket, parts))
    }

    /// Takes the commit timestamp and registers the batch with the engine, in timestamp order.
    fn order_commit(&self) -> Result<(Timestamp, gnomon_engine::BatchTicket), MvccError> {
        let _order = relock(&self.commit_order);
        let ts = self.clock.now()?;
        let ticket = self.engine.prepare_batch(ts.to_version())?;
        Ok((ts, ticket))
    }

    /// Second half: waits for the group fsync, then publishes visibility in timestamp order and
    /// waits until every snapshot taken from now on includes the transaction. If the log
    /// failed, the unpublished writes are taken back out of the engine (and the error is "in
    /// doubt": see [`MvccError::is_commit_in_doubt`]).
    pub(crate) fn finish_commit(
        &self,
        commit: InFlightCommit,
        state: &TxnState,
    ) -> Result<Timestamp, MvccError> {
        let InFlightCommit {
            commit_ts,
            ticket,
            pending,
        } = commit;
        let lsn = pending.lsn();
        match pending.wait() {
            Ok(durable) => {
                // Every record up to ours is durable: publish all their batches, in log order.
                let ready = {
                    let mut unpublished = relock(&self.unpublished);
                    let later = unpublished.split_off(&(durable.0 + 1));
                    std::mem::replace(&mut *unpublished, later)
                };
                for (_, t) in ready {
                    self.engine.publish_batch(t);
                }
                if let Some(t) = ticket {
                    self.engine.publish_batch(t);
                }
            }
            Err(e) => {
                // NB: no committer publishes a record that is not durable, so the ticket is
                // still there.
                let ticket =
                    ticket.or_else(|| lsn.and_then(|lsn| relock(&self.unpublished).remove(&lsn.0)));
                if let Some(t) = ticket {
                    self.engine
                        .retract_batch(t, state.writes.keys().map(bytes::Bytes::copy_from_slice));
                }
                return Err(e.into());
            }
        }
        self.engine.wait_visible(commit_ts.to_version());
        Ok(commit_ts)
    }

    /// Writes a checkpoint without stopping readers or writers, then deletes the WAL segments
    /// wholly before its position. Returns that position: recovery replays from there. The
    /// stamp is chosen by the crate essay's checkpoint invariant (10).
    pub fn checkpoint(&self) -> Result<u64, MvccError> {
        let _one = relock(&self.checkpointing);
        let started = Instant::now();
        let result = self.checkpoint_locked();
        match &result {
            Ok((lsn, info, removed)) => {
                let took = started.elapsed();
                self.counters
                    .checkpoint_done(took, info.versions_dropped, *removed as u64);
                (self.events)(&DbEvent::CheckpointDone {
                    lsn: *lsn,
                    took,
                    versions: info.entries,
                    bytes: info.bytes,
                    segments_removed: *removed as u64,
                });
            }
            Err(_) => self.counters.checkpoint_failed(),
        }
        result.map(|(lsn, _, _)| lsn)
    }

    fn checkpoint_locked(&self) -> Result<(u64, gnomon_engine::CheckpointInfo, usize), MvccError> {
        // Every record before `end` belongs to a batch prepared before we read `end` (batches
        // are prepared before their record is submitted), so its version is <= `prepared`;
        // once visibility passes `prepared`, each such batch is published (its record durable,
        // its writes inserted before the engine freezes its memtable) or retracted (its record
        // failed and the log is poisoned).
        let (mut end, mut unresolved) = self.settle_for_checkpoint();
        if unresolved.is_some_and(|bound| bound < end) {
            // Held back, perhaps by a bulk transaction whose commit was being applied while
            // we waited (its data would be in this checkpoint, its stamp before it, and the
            // next checkpoint due at once to rewrite it all again): settle once more, now.
            (end, unresolved) = self.settle_for_checkpoint();
        }
        // NB: never stamp past the durable end. If the log failed, records in [durable, end)
        // may be missing after a restart, and a stamp beyond the reopened log's end would make
        // recovery skip the records written after it.
        let mut lsn = end.min(self.wal.durable_lsn());
        if let Some(oldest) = unresolved {
            lsn = lsn.min(oldest);
        }
        let info = self.engine.checkpoint(lsn.0)?;
        let removed = self.wal.remove_segments_before(lsn)?;
        Ok((lsn.0, info, removed))
    }

    /// The log's end and the stamp bound, read in that order, then waits until every batch
    /// prepared so far is published or retracted (so every commit record before the end is
    /// applied, see `checkpoint_locked`).
    fn settle_for_checkpoint(&self) -> (Lsn, Option<Lsn>) {
        let end = self.wal.end_lsn();
        let unresolved = self.stamp_bound();
        let prepared = self.engine.max_prepared();
        self.engine.wait_visible(prepared);
        (end, unresolved)
    }

    /// The oldest log position a checkpoint must not stamp past, if any. Replay must still
    /// see every unresolved prepare record (twopc invariant 6); read after the end of the
    /// log, a prepare begun since is at or after that end anyway. Nor past the first part of
    /// a transaction that has not finished: its commit may come after the end and need its
    /// parts (record.rs).
    fn stamp_bound(&self) -> Option<Lsn> {
        match (
            self.oldest_unresolved_prepare_lsn(),
            self.oldest_open_part(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Where checkpoints stand against the log, for the maintenance thread's trigger.
    pub(crate) fn checkpoint_progress(&self) -> CheckpointProgress {
        let end = self.wal.end_lsn();
        let mut reachable = end.min(self.wal.durable_lsn());
        if let Some(bound) = self.stamp_bound() {
            reachable = reachable.min(bound);
        }
        CheckpointProgress {
            end: end.0,
            stamp: self.engine.stats().checkpoint_wal_lsn,
            reachable: reachable.0,
        }
    }

    /// The part size of bulk transactions ([`DbOptions::write_set_part_size`]; 0 = never).
    pub fn write_set_part_size(&self) -> u64 {
        self.write_set_part_size.load(Ordering::Relaxed)
    }

    /// Changes the part size for writes from now on (running transactions included).
    pub fn set_write_set_part_size(&self, bytes: u64) {
        self.write_set_part_size.store(bytes, Ordering::Relaxed);
    }

    /// Hands a write-set part of `txn` to the log without waiting for it to be durable (the
    /// group-commit writer writes and syncs it in the background; the commit's fsync covers
    /// it). The first part of a transaction bounds the checkpoint stamp until
    /// [`Db::parts_closed`].
    pub(crate) fn submit_part(&self, txn: TxnId, payload: Vec<u8>) -> Result<(), MvccError> {
        {
            // A lower bound of the part's position, read before it is submitted (as for
            // prepare records): a checkpoint that misses the entry read the log's end first.
            relock(&self.open_parts)
                .entry(txn)
                .or_insert_with(|| self.wal.end_lsn());
        }
        let pending = self.wal.submit(PART_RECORD, payload);
        if pending.lsn().is_none() {
            // Refused at submission: `wait` returns the reason at once.
            pending.wait()?;
        }
        Ok(())
    }

    /// `txn`, which wrote parts, finished: committed and published, rolled back, or prepared
    /// (whose record repeats the write set).
    pub(crate) fn parts_closed(&self, txn: TxnId) {
        relock(&self.open_parts).remove(&txn);
    }

    /// Position at or before the first part of the oldest transaction with parts still open.
    pub(crate) fn oldest_open_part(&self) -> Option<Lsn> {
        relock(&self.open_parts).values().min().copied()
    }

    /// Drops versions that no snapshot can see any more and that are older than Δgc.
    pub fn gc(&self) -> Result<GcStats, MvccError> {
        let now = self.clock.now()?;
        let safe_point = self.safe_point_at(now);
        let stats = self.engine.gc(safe_point.to_version());
        self.counters
            .gc_pass(safe_point, now, stats.versions_removed);
        Ok(stats)
    }

    /// GC and checkpoint figures for metrics (see [`MaintenanceStats`]); cheap, no scan.
    pub fn maintenance_stats(&self) -> MaintenanceStats {
        let engine = self.engine.stats();
        let end = self.wal.end_lsn().0;
        MaintenanceStats {
            versions_in_memtables: engine.memtable_versions,
            versions_in_checkpoint: engine.checkpoint_versions,
            last_checkpoint_lsn: engine.checkpoint_wal_lsn,
            checkpoint_bytes: engine.checkpoint_bytes,
            wal_segments: self.wal.segment_count() as u64,
            wal_bytes_since_checkpoint: end.saturating_sub(engine.checkpoint_wal_lsn),
            ..self.counters.snapshot()
        }
    }

    /// Reports an event to the configured sink.
    pub(crate) fn emit(&self, event: &DbEvent<'_>) {
        (self.events)(event)
    }

    /// The data directory.
    pub fn dir(&self) -> &std::path::Path {
        self.engine.dir()
    }

    /// The GC safe point: below every snapshot in use and at least Δgc in the past.
    pub fn safe_point(&self) -> Result<Timestamp, MvccError> {
        Ok(self.safe_point_at(self.clock.now()?))
    }

    /// min(oldest registered snapshot, `now` − Δgc). Prepared transactions keep their
    /// snapshots registered, so they hold it back without a case of their own.
    fn safe_point_at(&self, now: Timestamp) -> Timestamp {
        let delayed = Timestamp {
            physical_us: now
                .physical_us
                .saturating_sub(self.gc_window.as_micros() as u64),
            logical: 0,
            node: 0,
        };
        let oldest = self.registry.oldest_snapshot();
        match oldest {
            Some(s) if s < delayed => s,
            _ => delayed,
        }
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn locks(&self) -> &LockManager {
        &self.locks
    }

    pub(crate) fn ssi(&self) -> &Ssi {
        &self.ssi
    }

    /// Counters of the SERIALIZABLE (SSI) bookkeeping: tracked transactions, SIREAD locks,
    /// rw-antidependencies found and serialization failures raised.
    pub fn ssi_stats(&self) -> SsiStats {
        self.ssi.stats()
    }

    pub(crate) fn wal(&self) -> &Wal {
        &self.wal
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn prepared_set(&self) -> MutexGuard<'_, PreparedSet> {
        relock(&self.prepared)
    }

    pub(crate) fn max_prepared(&self) -> usize {
        self.max_prepared
    }

    /// The lock manager: statistics ([`LockManager::stats`]), the lock view, settings, and the
    /// key → table/partition mapping the SQL layer installs.
    pub fn lock_manager(&self) -> &LockManager {
        &self.locks
    }

    pub(crate) fn register_snapshot(&self, txn: TxnId) -> Timestamp {
        let mut shard = self.registry.shard(txn);
        // Read `visible` under the registry lock so the GC cannot pass it in between.
        let ts = Timestamp::from_version(self.engine.visible());
        shard.add_snapshot(ts);
        ts
    }

    /// A READ COMMITTED statement's fresh snapshot in place of `old`: one registry step (the
    /// old snapshot stays registered until the new one is, so the GC safe point never passes
    /// either), and nothing to change if `visible` has not moved.
    pub(crate) fn replace_snapshot(&self, txn: TxnId, old: Timestamp) -> Timestamp {
        let mut shard = self.registry.shard(txn);
        let ts = Timestamp::from_version(self.engine.visible());
        if ts != old {
            shard.add_snapshot(ts);
            shard.remove_snapshot(old);
        }
        ts
    }

    pub(crate) fn unregister_snapshot(&self, txn: TxnId, ts: Timestamp) {
        self.registry.shard(txn).remove_snapshot(ts);
    }

    /// The life of transaction `id`, if it wrote something (or prepared) and is live or among
    /// the recently finished ones ([`crate::registry::HISTORY_PER_SHARD`] per shard); `None`
    /// for read-only transactions, ids never issued and ids too old to be remembered. In-doubt
    /// (prepared) transactions are reported as [`TxnPhase::Prepared`] with their gid.
    pub fn txn_status(&self, id: TxnId) -> Option<TxnInfo> {
        self.registry.status(id)
    }

    /// Every writing transaction that is live or recently finished, by id
    /// (`gnomon_transactions`).
    pub fn transactions(&self) -> Vec<TxnInfo> {
        self.registry.list()
    }
}
