//! Two-phase commit, participant side: `PREPARE TRANSACTION`, `COMMIT PREPARED`,
//! `ROLLBACK PREPARED` with PostgreSQL's semantics.
//!
//! ## Protocol
//!
//! ```text
//!            prepare(txn, gid)                 commit_prepared(gid)
//!  active ───────────────────► preparing ──► prepared ───────────────► committing ──► committed
//!    │      slot reserved,          │  PREPARE record   │  COMMIT record (same txn id,
//!    │      lower-bound LSN         │  fsynced          │  write set repeated), fsynced,
//!    │                              ▼                   │  published; then locks released
//!    │                        (append fails:            │
//!    │                         slot freed, rolled back) │ rollback_prepared(gid)
//!    ▼                                                  └──────────────► rolling back ──► rolled back
//!  rolled back                                             ABORT_PREPARED record fsynced,
//!                                                          then locks released
//! ```
//!
//! ## Invariants
//!
//! 1. `prepare` returns `Ok` only once the prepare record (write set, lock set, snapshot,
//!    gid, owner, database, SIREAD set: [`crate::record`]) is durable. From then on the
//!    transaction survives crashes: recovery rebuilds it from that record, re-takes its
//!    table, partition and row locks, re-registers its snapshot and (SERIALIZABLE) its SSI
//!    state before the database accepts any transaction.
//! 2. A prepared transaction's writes are in no engine batch until COMMIT PREPARED: they are
//!    invisible to every snapshot, exactly as an active transaction's.
//! 3. A prepared transaction holds every lock it held at PREPARE (table, partition and row
//!    locks: a concurrent DROP/ALTER/TRUNCATE/LOCK TABLE waits for it, before and after a
//!    restart) and keeps its snapshot registered, so the GC safe point stays below its
//!    snapshot with no special case.
//! 4. Resolution is durable before it is acknowledged and before the locks are released:
//!    COMMIT PREPARED goes through the ordinary commit pipeline (one commit record under the
//!    same transaction id, repeating the write set, so replay never needs the prepare record
//!    to apply it); ROLLBACK PREPARED appends an abort-prepared record and waits for its fsync.
//! 5. Replay: a prepare record makes its transaction prepared; a later commit record or
//!    abort-prepared record of the same id resolves it. What remains at the end of the log is
//!    in doubt and is rebuilt.
//! 6. A checkpoint never moves the replay start past an unresolved prepare record:
//!    [`Db::oldest_unresolved_prepare_lsn`] bounds it (see [`Db::checkpoint`]). Replaying the
//!    commit records between that record and the checkpoint again is harmless: applying a
//!    commit record is idempotent, and every later record is replayed after it.
//! 7. At most one session works on a prepared transaction at a time (the slot is busy while
//!    it is being committed or rolled back); a second one gets "is busy", as in PostgreSQL.
//!
//! The slot of a transaction being prepared carries a WAL position read *before* its record
//! was appended (a lower bound of the record's position), so a checkpoint that reads the end
//! of the log first and the oldest unresolved position second can never skip it.
//!
//! SERIALIZABLE: PREPARE is the transaction's SSI commit point (its checks run there, and from
//! then on it is never the victim of a dangerous structure; see [`crate::ssi`], "Prepared
//! transactions"), so COMMIT PREPARED cannot fail a serialization check.
//!
use std::collections::HashMap;

use gnomon_wal::Lsn;

use crate::clock::Timestamp;
use crate::db::Db;
use crate::error::MvccError;
use crate::locks::{LockWait, ObjectMode, ObjectTag, RowMode, TxnLocks};
use crate::record::{
    encode_abort_prepared, encode_prepare, LockSet, PrepareRecord, ReadSetRecord,
    ABORT_PREPARED_RECORD, PREPARE_RECORD,
};
use crate::registry::TxnPhase;
use crate::txn::{Isolation, Txn, TxnId, TxnState, TxnStatus};

/// Longest global transaction identifier, in bytes (PostgreSQL's GIDSIZE minus its NUL).
pub const MAX_GID_LEN: usize = 199;

/// A prepared transaction as `pg_prepared_xacts` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedInfo {
    /// The transaction id.
    pub txn: TxnId,
    /// The global identifier the client chose.
    pub gid: String,
    /// When it was prepared (HLC; the physical part is wall-clock µs).
    pub prepared_at: Timestamp,
    /// Who prepared it (opaque label from the caller; the SQL layer's role).
    pub owner: String,
    /// Where (opaque label from the caller; the SQL layer's database).
    pub database: String,
}

/// A durable prepared transaction.
pub(crate) struct Prepared {
    state: TxnState,
    /// The row locks it holds, with their modes (what the prepare record keeps).
    row_locks: Vec<(Vec<u8>, RowMode)>,
    /// Its table and partition locks (what the prepare record keeps).
    object_locks: Vec<(ObjectTag, ObjectMode)>,
    /// Its SIREAD set as recovery read it, until restored into SSI (empty otherwise: SSI
    /// keeps the live one).
    reads: ReadSetRecord,
    /// The live locks.
    locks: TxnLocks,
    prepared_at: Timestamp,
    started_us: u64,
    owner: String,
    database: String,
}

/// One gid in use.
pub(crate) struct Slot {
    /// Position of the prepare record; while it is being written, a position at or before it.
    lsn: Lsn,
    /// `None` while the transaction is being prepared, committed or rolled back (busy).
    prepared: Option<Prepared>,
}

/// Prepared transactions by gid.
#[derive(Default)]
pub(crate) struct PreparedSet {
    by_gid: HashMap<String, Slot>,
}

impl PreparedSet {
    /// Recovery: the transactions whose prepare record was not resolved, to be rebuilt.
    pub(crate) fn insert_recovered(&mut self, lsn: Lsn, rec: PrepareRecord) {
        let PrepareRecord {
            txn,
            snapshot,
            prepared_at,
            isolation,
            gid,
            owner,
            database,
            writes,
            row_locks,
            object_locks,
            reads,
        } = rec;
        let state = TxnState {
            id: txn,
            isolation,
            snapshot,
            writes: writes.into_iter().collect(),
            range_deletes: Vec::new(),
            status: TxnStatus::Prepared,
        };
        self.by_gid.insert(
            gid,
            Slot {
                lsn,
                prepared: Some(Prepared {
                    state,
                    row_locks,
                    object_locks,
                    reads,
                    locks: TxnLocks::default(),
                    prepared_at,
                    // NB: the begin time is not logged; the prepare time stands in for it.
                    started_us: prepared_at.physical_us,
                    owner,
                    database,
                }),
            },
        );
    }
}

impl Db {
    /// PREPARE TRANSACTION: makes `txn` durable as prepared under `gid` and ends it for the
    /// caller. Its writes stay invisible and its locks held until [`Db::commit_prepared`] or
    /// [`Db::rollback_prepared`], from any session, also after a crash. `owner` and `database`
    /// are labels shown by [`Db::prepared_transactions`].
    ///
    /// On any error the transaction is rolled back (as PostgreSQL does): gid too long,
    /// prepared transactions disabled (`max_prepared_transactions` = 0), too many, gid in use,
    /// or the log failed (then the outcome is in doubt, as for a commit).
    pub fn prepare(
        &self,
        mut txn: Txn,
        gid: &str,
        owner: &str,
        database: &str,
    ) -> Result<(), MvccError> {
        // Increments are observed first: the prepare record carries final values.
        txn.observe_increments()?;
        if gid.len() > MAX_GID_LEN {
            return Err(MvccError::GidTooLong {
                gid: gid.to_string(),
            });
        }
        {
            let mut set = self.prepared_set();
            if self.max_prepared() == 0 {
                return Err(MvccError::PreparedTransactionsDisabled);
            }
            if set.by_gid.contains_key(gid) {
                return Err(MvccError::DuplicateGid {
                    gid: gid.to_string(),
                });
            }
            if set.by_gid.len() >= self.max_prepared() {
                return Err(MvccError::TooManyPrepared {
                    max: self.max_prepared(),
                });
            }
            // Read under the set's mutex, before the record is appended: a lower bound of
            // its position (invariant 6).
            let lsn = self.wal().end_lsn();
            set.by_gid.insert(
                gid.to_string(),
                Slot {
                    lsn,
                    prepared: None,
                },
            );
        }
        let serializable = txn.state().isolation == Isolation::Serializable;
        let checked = self.clock().now().and_then(|prepared_at| {
            let reads = if serializable {
                // SSI's commit point (crate::ssi, "Prepared transactions").
                let keys = txn.state().writes.keys().map(<[u8]>::to_vec);
                self.ssi().prepare(txn.state().id, keys, prepared_at)?
            } else {
                ReadSetRecord::default()
            };
            Ok((prepared_at, reads))
        });
        let (prepared_at, reads) = match checked {
            Ok(c) => c,
            Err(e) => {
                self.prepared_set().by_gid.remove(gid);
                // Dropping `txn` rolls it back (and ends its SSI tracking).
                return Err(e);
            }
        };
        let (mut state, mut locks, started_us) = txn.into_prepared();
        let id = state.id;
        let row_locks = self.row_locks_of(&locks, id);
        let object_locks = locks.object_locks();
        let registry = self.registry();
        registry.writer_started(id, started_us);
        registry.set_phase(id, TxnPhase::Preparing, Some(gid));
        let payload = encode_prepare(
            id,
            state.snapshot,
            prepared_at,
            state.isolation,
            gid,
            owner,
            database,
            state.writes.iter(),
            LockSet {
                rows: &row_locks,
                objects: &object_locks,
            },
            &reads,
        );
        let appended = self
            .wal()
            .append(PREPARE_RECORD, &payload)
            .map(|lsn| (lsn, prepared_at))
            .map_err(MvccError::from);
        let mut set = self.prepared_set();
        match appended {
            Ok((lsn, prepared_at)) => {
                state.status = TxnStatus::Prepared;
                set.by_gid.insert(
                    gid.to_string(),
                    Slot {
                        lsn,
                        prepared: Some(Prepared {
                            state,
                            row_locks,
                            object_locks,
                            // Live in SSI already; only recovery needs them here.
                            reads: ReadSetRecord::default(),
                            locks,
                            prepared_at,
                            started_us,
                            owner: owner.to_string(),
                            database: database.to_string(),
                        }),
                    },
                );
                drop(set);
                registry.set_phase(id, TxnPhase::Prepared, None);
                Ok(())
            }
            Err(e) => {
                set.by_gid.remove(gid);
                drop(set);
                self.locks().release_all(&mut locks, id);
                if serializable {
                    self.ssi().end(id, false);
                }
                registry.finished(id, Some(state.snapshot), None);
                self.count_commit(false);
                Err(e)
            }
        }
    }

    /// COMMIT PREPARED: commits the transaction prepared as `gid` (durable and visible when
    /// this returns `Ok`), then releases its locks. Returns its final state (status
    /// `Committed(ts)`, with the write set). Errors: unknown gid, busy (another session is
    /// resolving it), or the commit failed (it stays prepared; a log failure leaves the
    /// outcome in doubt).
    pub fn commit_prepared(&self, gid: &str) -> Result<TxnState, MvccError> {
        let p = self.take_prepared(gid)?;
        let id = p.state.id;
        self.registry().set_phase(id, TxnPhase::Committing, None);
        // NB: no early lock release here: if the commit fails, the transaction stays prepared
        // with its locks.
        let committed = self
            .start_commit(&p.state, None)
            .and_then(|c| self.finish_commit(c, &p.state));
        let serializable = p.state.isolation == Isolation::Serializable;
        match committed {
            Ok(ts) => {
                let Prepared {
                    mut state,
                    mut locks,
                    ..
                } = p;
                self.prepared_set().by_gid.remove(gid);
                self.locks().release_all(&mut locks, id);
                if serializable {
                    self.ssi().end(id, true);
                }
                self.registry().finished(id, Some(state.snapshot), Some(ts));
                self.count_commit(true);
                state.status = TxnStatus::Committed(ts);
                Ok(state)
            }
            Err(e) => {
                if serializable {
                    self.ssi().commit_prepared_failed(id, p.prepared_at);
                }
                self.put_back(gid, p);
                Err(e)
            }
        }
    }

    /// ROLLBACK PREPARED: discards the transaction prepared as `gid` once its abort record is
    /// durable, then releases its locks. Errors as [`Db::commit_prepared`].
    pub fn rollback_prepared(&self, gid: &str) -> Result<TxnState, MvccError> {
        let p = self.take_prepared(gid)?;
        let id = p.state.id;
        self.registry().set_phase(id, TxnPhase::RollingBack, None);
        match self
            .wal()
            .append(ABORT_PREPARED_RECORD, &encode_abort_prepared(id, gid))
        {
            Ok(_) => {
                let Prepared {
                    mut state,
                    mut locks,
                    ..
                } = p;
                self.prepared_set().by_gid.remove(gid);
                self.locks().release_all(&mut locks, id);
                if state.isolation == Isolation::Serializable {
                    self.ssi().end(id, false);
                }
                self.registry().finished(id, Some(state.snapshot), None);
                self.count_rollback();
                state.status = TxnStatus::Aborted;
                Ok(state)
            }
            Err(e) => {
                self.put_back(gid, p);
                Err(e.into())
            }
        }
    }

    /// The configured `max_prepared_transactions` (0 = PREPARE TRANSACTION is refused).
    pub fn max_prepared_transactions(&self) -> usize {
        self.max_prepared()
    }

    /// Every prepared transaction (not those being prepared or resolved right now), by gid.
    pub fn prepared_transactions(&self) -> Vec<PreparedInfo> {
        let set = self.prepared_set();
        let mut out: Vec<PreparedInfo> = set
            .by_gid
            .iter()
            .filter_map(|(gid, slot)| {
                let p = slot.prepared.as_ref()?;
                Some(PreparedInfo {
                    txn: p.state.id,
                    gid: gid.clone(),
                    prepared_at: p.prepared_at,
                    owner: p.owner.clone(),
                    database: p.database.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.gid.cmp(&b.gid));
        out
    }

    /// Runs `f` on the state of the transaction prepared as `gid` (its write set, snapshot,
    /// isolation), if it exists and no session is resolving it.
    pub fn with_prepared<R>(&self, gid: &str, f: impl FnOnce(&TxnState) -> R) -> Option<R> {
        let set = self.prepared_set();
        let p = set.by_gid.get(gid)?.prepared.as_ref()?;
        Some(f(&p.state))
    }

    /// WAL position of the oldest prepare record not yet resolved (including one being
    /// written: then a position at or before it). Recovery must replay from at or before it,
    /// so no checkpoint may move the replay start (or remove log segments) past it.
    pub fn oldest_unresolved_prepare_lsn(&self) -> Option<Lsn> {
        self.prepared_set().by_gid.values().map(|s| s.lsn).min()
    }

    /// Recovery, after replay: re-takes the locks, snapshot and SSI state of every
    /// transaction still prepared and makes it visible to look-ups. Nothing else runs yet, so
    /// no lock waits (prepared transactions held these locks together before the crash).
    pub(crate) fn restore_prepared(&self) -> Result<usize, MvccError> {
        let mut set = self.prepared_set();
        let serializable = set
            .by_gid
            .values()
            .filter_map(|s| s.prepared.as_ref())
            .filter(|p| p.state.isolation == Isolation::Serializable)
            .count();
        for (gid, slot) in set.by_gid.iter_mut() {
            let Some(p) = slot.prepared.as_mut() else {
                continue;
            };
            let id = p.state.id;
            for &(tag, mode) in &p.object_locks {
                self.locks()
                    .lock_object(&mut p.locks, id, tag, mode, LockWait::Block)?;
            }
            for (key, mode) in &p.row_locks {
                self.locks()
                    .lock_row(&mut p.locks, id, key, *mode, LockWait::Block)?;
            }
            if p.state.isolation == Isolation::Serializable {
                self.ssi().recover_prepared(
                    id,
                    p.state.snapshot,
                    p.prepared_at,
                    p.state.writes.keys().map(<[u8]>::to_vec),
                    &std::mem::take(&mut p.reads),
                    serializable > 1,
                );
            }
            self.registry().shard(id).add_snapshot(p.state.snapshot);
            self.registry().recovered_prepared(id, gid, p.started_us);
        }
        Ok(set.by_gid.len())
    }

    /// The row locks `locks` holds for `id`, with every mode held on each row.
    fn row_locks_of(&self, locks: &TxnLocks, id: TxnId) -> Vec<(Vec<u8>, RowMode)> {
        let mut keys = locks.row_keys();
        keys.sort();
        keys.dedup();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let mut modes: Vec<RowMode> = self
                .locks()
                .row_holders(&key)
                .into_iter()
                .filter(|(t, _)| *t == id)
                .map(|(_, m)| m)
                .collect();
            modes.sort();
            modes.dedup();
            out.extend(modes.into_iter().map(|m| (key.clone(), m)));
        }
        out
    }

    /// Marks `gid` busy and takes its transaction out for resolution.
    fn take_prepared(&self, gid: &str) -> Result<Prepared, MvccError> {
        let mut set = self.prepared_set();
        let Some(slot) = set.by_gid.get_mut(gid) else {
            return Err(MvccError::UnknownGid {
                gid: gid.to_string(),
            });
        };
        slot.prepared.take().ok_or_else(|| MvccError::PreparedBusy {
            gid: gid.to_string(),
        })
    }

    /// A resolution failed: the transaction is prepared again, with its locks.
    fn put_back(&self, gid: &str, p: Prepared) {
        let id = p.state.id;
        if let Some(slot) = self.prepared_set().by_gid.get_mut(gid) {
            slot.prepared = Some(p);
        }
        self.registry().set_phase(id, TxnPhase::Prepared, None);
    }
}
