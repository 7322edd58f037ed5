//! The narrow interface through which the SQL layer reads and writes the MVCC key space.
//!
//! Executors see storage only through [`Transaction`]: point reads, ordered range scans and
//! buffered writes, all inside one transaction. Transaction control (begin, commit, savepoints)
//! stays in the session, which owns the concrete `gnomon_mvcc::Txn`. Keeping the trait this
//! small lets the executor be tested against anything that orders keys, and keeps SQL from
//! reaching around the MVCC layer into the engine.

use std::ops::Bound;

use bytes::Bytes;
use gnomon_mvcc::{Acquired, LockInfo, LockWait, MvccError, RelId, RowLocked, RowMode, TableMode};

use crate::error::SqlResult;

/// Bounds of a key range scan.
pub type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Reads and writes of one transaction. Reads see the transaction's own writes.
pub trait Transaction {
    /// The value under `key`, or None.
    fn get(&self, key: &[u8]) -> SqlResult<Option<Bytes>>;
    /// Up to `limit` pairs in `range`, in key order (descending when `reverse`).
    fn scan(
        &self,
        range: KeyRange,
        reverse: bool,
        limit: Option<usize>,
    ) -> SqlResult<Vec<(Vec<u8>, Bytes)>>;
    /// The pairs in `range` as a foreign-key check reads them: the newest committed versions
    /// at READ COMMITTED, the snapshot's (40001 if one changed since) at higher levels.
    fn scan_latest(&self, range: KeyRange) -> SqlResult<Vec<(Vec<u8>, Bytes)>> {
        self.scan(range, false, None)
    }
    /// Locks `key` for writing (may wait for another writer; may fail with 40001/40P01) and
    /// returns the row a write would replace: the newest committed version at READ COMMITTED
    /// (PostgreSQL's re-check of a concurrently updated row), the snapshot's at REPEATABLE READ.
    fn get_for_update(&mut self, key: &[u8]) -> SqlResult<Option<Bytes>>;
    /// Writes `value` under `key` (taking the row's write lock; may wait or fail with 40001/40P01).
    fn put(&mut self, key: &[u8], value: Bytes) -> SqlResult<()>;
    /// Writes a key no other transaction can be writing (a fresh hidden row id, a table created
    /// in this transaction): like `put` without the row lock.
    fn put_new(&mut self, key: &[u8], value: Bytes) -> SqlResult<()>;
    /// Deletes `key`.
    fn delete(&mut self, key: &[u8]) -> SqlResult<()>;
    /// Deletes a row of a table this transaction holds ACCESS EXCLUSIVE (TRUNCATE, DROP
    /// TABLE, a rewrite): like `delete` without the row lock, which that lock makes redundant.
    fn delete_unlocked(&mut self, key: &[u8]) -> SqlResult<()>;
    /// Deletes every row in `range` of a table this transaction holds ACCESS EXCLUSIVE
    /// (TRUNCATE, DROP TABLE, the old rows of a rewrite). Storage that can drops the range as
    /// a whole (one range delete, whatever the number of rows); this default deletes key by
    /// key.
    fn delete_range(&mut self, range: KeyRange) -> SqlResult<()> {
        for (k, _) in self.scan(range, false, None)? {
            self.delete_unlocked(&k)?;
        }
        Ok(())
    }
    /// The node's durable logical clocks (Lamport, version vector, vector clock), if this
    /// storage has them.
    fn logical_clocks(&self) -> Option<&gnomon_mvcc::LogicalClocks> {
        None
    }
    /// The commit timestamp of the version of `key` this transaction reads (None for its own
    /// writes, a missing row, or storage without versions): `gnomon_mvcc_timestamp`.
    fn version_of(&self, _key: &[u8]) -> Option<gnomon_mvcc::Timestamp> {
        None
    }
    /// The SQL database (namespace) this transaction's session is connected to: name keys
    /// (tables, indexes, sequences, schemas) are read and written under it.
    fn database(&self) -> crate::encoding::DatabaseId;
    /// The database, for system views and functions (prepared transactions, transaction
    /// status, the HLC), if this storage is one.
    fn db(&self) -> Option<&gnomon_mvcc::Db> {
        None
    }
    /// Takes a table lock held to the end of the transaction. The raw error lets the caller
    /// name the table (55P03 messages).
    fn lock_table(
        &mut self,
        rel: RelId,
        mode: TableMode,
        wait: LockWait,
    ) -> Result<Acquired, MvccError>;
    /// Locks a row (`SELECT ... FOR ...`, DELETE's FOR UPDATE).
    fn lock_row(
        &mut self,
        key: &[u8],
        mode: RowMode,
        wait: LockWait,
    ) -> Result<RowLocked, MvccError>;
    /// The current value of a row this transaction has locked (newest at READ COMMITTED).
    fn read_locked(&self, key: &[u8]) -> SqlResult<Option<Bytes>>;
    /// Every held and awaited lock of the database (`pg_locks`).
    fn lock_view(&self) -> Vec<LockInfo>;
    /// About to write `rows` rows of `rel` in one statement: past the lock manager's table
    /// escalation threshold the table lock is taken now (if free) instead of row locks.
    fn bulk_write_hint(&mut self, rel: RelId, rows: usize);
    /// Increments the row `key` under the INCREMENT row lock if the statement's snapshot sees
    /// it (`gnomon_mvcc::Txn::increment_by_key`: the UPDATE's look-up of the row is part of
    /// it; the UPDATE decides eligibility, see `query::increment_plan`). Storage without it
    /// answers `NotEligible` and the UPDATE runs as usual.
    fn increment(
        &mut self,
        _key: &[u8],
        _delta: std::sync::Arc<dyn gnomon_mvcc::RowDelta>,
    ) -> SqlResult<gnomon_mvcc::IncrementOutcome> {
        Ok(gnomon_mvcc::IncrementOutcome::NotEligible)
    }
    /// True if rows incremented by this transaction have not been observed yet.
    fn has_pending_increments(&self) -> bool {
        false
    }
    /// Observes every row this transaction increments (fixes their values as the newest
    /// version plus its deltas; see the mvcc locks README): before a statement that may read
    /// them.
    fn observe_increments(&mut self) -> SqlResult<()> {
        Ok(())
    }
}

impl Transaction for gnomon_mvcc::Txn {
    fn database(&self) -> crate::encoding::DatabaseId {
        crate::encoding::DatabaseId(self.namespace())
    }

    fn delete_range(&mut self, range: KeyRange) -> SqlResult<()> {
        match range {
            (Bound::Included(start), Bound::Excluded(end)) => {
                Ok(gnomon_mvcc::Txn::delete_range(self, &start, &end)?)
            }
            range => {
                for (k, _) in Transaction::scan(self, range, false, None)? {
                    gnomon_mvcc::Txn::delete_unlocked(self, &k)?;
                }
                Ok(())
            }
        }
    }

    fn increment(
        &mut self,
        key: &[u8],
        delta: std::sync::Arc<dyn gnomon_mvcc::RowDelta>,
    ) -> SqlResult<gnomon_mvcc::IncrementOutcome> {
        Ok(gnomon_mvcc::Txn::increment_by_key(self, key, delta)?)
    }

    fn has_pending_increments(&self) -> bool {
        gnomon_mvcc::Txn::has_pending_increments(self)
    }

    fn observe_increments(&mut self) -> SqlResult<()> {
        Ok(gnomon_mvcc::Txn::observe_increments(self)?)
    }

    fn get(&self, key: &[u8]) -> SqlResult<Option<Bytes>> {
        Ok(gnomon_mvcc::Txn::get(self, key)?)
    }

    fn scan(
        &self,
        range: KeyRange,
        reverse: bool,
        limit: Option<usize>,
    ) -> SqlResult<Vec<(Vec<u8>, Bytes)>> {
        let iter = self.scan_iter(range.0, range.1, reverse)?;
        Ok(match limit {
            Some(n) => iter.take(n).collect(),
            None => iter.collect(),
        })
    }

    fn scan_latest(&self, range: KeyRange) -> SqlResult<Vec<(Vec<u8>, Bytes)>> {
        Ok(gnomon_mvcc::Txn::scan_latest(self, range.0, range.1)?)
    }

    fn get_for_update(&mut self, key: &[u8]) -> SqlResult<Option<Bytes>> {
        Ok(gnomon_mvcc::Txn::get_for_update(self, key)?)
    }

    fn put(&mut self, key: &[u8], value: Bytes) -> SqlResult<()> {
        Ok(gnomon_mvcc::Txn::put(self, key, value)?)
    }

    fn put_new(&mut self, key: &[u8], value: Bytes) -> SqlResult<()> {
        gnomon_mvcc::Txn::put_unlocked(self, key, value);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> SqlResult<()> {
        Ok(gnomon_mvcc::Txn::delete(self, key)?)
    }

    fn delete_unlocked(&mut self, key: &[u8]) -> SqlResult<()> {
        Ok(gnomon_mvcc::Txn::delete_unlocked(self, key)?)
    }

    fn logical_clocks(&self) -> Option<&gnomon_mvcc::LogicalClocks> {
        Some(gnomon_mvcc::Txn::logical_clocks(self))
    }

    fn db(&self) -> Option<&gnomon_mvcc::Db> {
        Some(gnomon_mvcc::Txn::db(self))
    }

    fn lock_table(
        &mut self,
        rel: RelId,
        mode: TableMode,
        wait: LockWait,
    ) -> Result<Acquired, MvccError> {
        gnomon_mvcc::Txn::lock_table(self, rel, mode, wait)
    }

    fn lock_row(
        &mut self,
        key: &[u8],
        mode: RowMode,
        wait: LockWait,
    ) -> Result<RowLocked, MvccError> {
        gnomon_mvcc::Txn::lock_row(self, key, mode, wait)
    }

    fn read_locked(&self, key: &[u8]) -> SqlResult<Option<Bytes>> {
        Ok(gnomon_mvcc::Txn::read_locked(self, key)?)
    }

    fn lock_view(&self) -> Vec<LockInfo> {
        self.lock_manager().view()
    }

    fn bulk_write_hint(&mut self, rel: RelId, rows: usize) {
        gnomon_mvcc::Txn::bulk_write_hint(self, rel, rows)
    }

    fn version_of(&self, key: &[u8]) -> Option<gnomon_mvcc::Timestamp> {
        gnomon_mvcc::Txn::version_of(self, key)
    }
}
