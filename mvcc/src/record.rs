//! The mvcc layer's WAL records: the commit record (the one record an ordinary transaction
//! writes), the write-set part and parts-commit records of a bulk transaction, and the two
//! records of a prepared (two-phase commit) transaction.
//!
//! Payload of a WAL record of kind [`COMMIT_RECORD`] (all integers little-endian unless noted;
//! the WAL frames it with length and CRC):
//!
//! ```text
//! +-----------------+-----------+-----------+--------------------------------------------+
//! | commit ts (16B) | txn id 8B | count 4B  | count × write                              |
//! | HLC, big-endian |  u64 LE   |  u32 LE   |                                            |
//! +-----------------+-----------+-----------+--------------------------------------------+
//! write = | key len u32 | key bytes | tag u8 (0 = delete, 1 = put) | [value len u32 | value] |
//!       | | start len u32 | start | tag u8 = 2 (range delete) | end len u32 | end |
//! ```
//!
//! A range delete (tag 2, the table's rows and index entries dropped by TRUNCATE, DROP TABLE
//! or a rewrite) deletes every key in `[start, end)` written before the commit (see the
//! engine's `ranges.rs`); the record's own writes at the same timestamp stay. A commit record
//! lists its range deletes first, then its writes in key order; the count covers both. Only
//! commit and parts-commit records carry range deletes (a part or a prepare record never
//! does: a prepared transaction's range deletes are turned into point deletes). Tag 2 is the
//! one extension of the frozen layout: a build that predates it refuses the record as
//! malformed rather than skipping it.
//!
//! Frozen: a change of this layout needs a new record kind. The commit of a prepared
//! transaction (COMMIT PREPARED) is an ordinary commit record under the prepared transaction's
//! id, repeating its write set: a commit record is self-contained, so replay never needs the
//! prepare record to apply it.
//!
//! ## Write-set part record ([`PART_RECORD`]) and parts-commit record ([`PARTS_COMMIT_RECORD`])
//!
//! A transaction whose buffered write set grows past `write_set_part_size` (see
//! `Db::set_write_set_part_size`) writes it to the log in parts while it runs, without waiting
//! for an fsync; its commit record then carries only the writes made since its last part.
//!
//! ```text
//! part:          | txn id u64 LE | part no u32 LE (1, 2, ...) | count u32 LE | count × write |
//! parts commit:  | commit ts (16B) HLC big-endian | txn id u64 LE | parts u32 LE |
//!                | count u32 LE | count × write (as in the commit record)                  |
//! ```
//!
//! Unlike a commit record's, the writes of parts are in *write order*, not key order, and a key
//! may appear more than once (in one part or across parts): replay applies the parts in order
//! (part 1 first), then the parts commit's own writes, and the last write of a key wins (all of
//! them carry the one commit timestamp). Parts of a transaction that has no parts commit in the
//! log (it rolled back, failed, or the server stopped first) are never applied; there is no abort
//! marker. A parts commit record whose parts are not all found after the replay start names a
//! transaction that a checkpoint already holds (the checkpoint stamp never passes the first part
//! of a transaction that has not published its commit, crate invariant 7): its parts that are
//! found, and its own writes, are applied again harmlessly. Frozen.
//!
//! ## Prepare record ([`PREPARE_RECORD`])
//!
//! Written (and fsynced) by `PREPARE TRANSACTION`: everything needed to rebuild the prepared
//! transaction after a crash, with its locks, and to commit or roll it back later.
//!
//! ```text
//! +-----------+-----------+----------------+-------------------+--------------+
//! | format 1B | txn id 8B | snapshot (16B) | prepared at (16B) | isolation 1B |
//! |  1 or 2   |  u64 LE   | HLC big-endian |  HLC big-endian   | 0 RC 1 RR 2 S|
//! +-----------+-----------+----------------+-------------------+--------------+
//! | gid len u16 LE | gid (UTF-8) | owner len u16 LE | owner | database len u16 LE | database |
//! +----------------+-------------+------------------+-------+---------------------+----------+
//! | write count u32 LE | count × write (as in the commit record)                            |
//! | lock count u32 LE  | count × lock                                                       |
//! | point count u32 LE | count × (key len u32 LE | key)         format 2 only: SIREAD set   |
//! | range count u32 LE | count × (start bound | end bound)      format 2 only               |
//! +--------------------+------------------------------------------------------------------+
//! lock = | 1 | key len u32 LE | key bytes |           exclusive row lock (FOR UPDATE)
//!      | 2 | rel u32 LE | table mode u8 |             table lock       (format 2 only)
//!      | 3 | rel u32 LE | part u32 LE | intent mode u8 |  partition lock (format 2 only)
//!      | 4 | row mode u8 | key len u32 LE | key |      row lock in another mode (format 2 only)
//! bound = | 0 |  unbounded  or  | 1 | len u32 LE | key |  included  or  | 2 | len u32 LE | key |  excluded
//! table mode  = 0 ACCESS SHARE, 1 ROW SHARE, 2 ROW EXCLUSIVE, 3 SHARE UPDATE EXCLUSIVE,
//!               4 SHARE, 5 SHARE ROW EXCLUSIVE, 6 EXCLUSIVE, 7 ACCESS EXCLUSIVE
//! intent mode = 0 IS, 1 IX, 2 S, 3 SIX, 4 X
//! row mode    = 0 FOR KEY SHARE, 1 FOR SHARE, 2 FOR NO KEY UPDATE (FOR UPDATE is kind 1)
//! ```
//!
//! `owner` and `database` are opaque labels to this layer (the SQL layer stores the role and
//! database names, for `pg_prepared_xacts`). The lock set lists every lock the transaction
//! held when it prepared: its row locks with their modes (one entry per mode held; written
//! rows and rows it only locked; rows covered by an escalated lock are not listed, the
//! escalated lock is), and its table and partition locks
//! (the ROW EXCLUSIVE and IX under its row locks, `LOCK TABLE`, DDL's ACCESS EXCLUSIVE, an
//! escalated S/X or SHARE/EXCLUSIVE). Recovery re-takes exactly these. A lock kind this reader
//! does not know is an error (a newer format), never skipped.
//!
//! The SIREAD set (format 2) is what a SERIALIZABLE transaction read: point keys and scanned
//! key ranges, as [`crate::ssi`] tracks them (already collapsed to its bounds); both counts
//! are 0 at other isolation levels. Recovery restores it so writers of those keys still meet
//! the prepared transaction (see [`crate::ssi`], "Prepared transactions").
//!
//! Format 1 (before table locks and SIREAD sets were recorded) ends after the lock set and
//! holds row locks only; it is still read. Records are written in format 2.
//!
//! ## Abort-prepared record ([`ABORT_PREPARED_RECORD`])
//!
//! Written (and fsynced) by `ROLLBACK PREPARED`: `| txn id u64 LE | gid len u16 LE | gid |`.
//!
//! Frozen: the format byte of the prepare record is checked by the reader; a change of either
//! layout bumps it (or takes a new record kind).

use std::ops::Bound;

use bytes::Bytes;
use gnomon_wal::RecordKind;

use crate::clock::Timestamp;
use crate::locks::{IntentMode, ObjectMode, ObjectTag, PartitionId, RelId, RowMode, TableMode};
use crate::txn::{Isolation, TxnId};

/// WAL record kind of a commit record. Frozen.
pub const COMMIT_RECORD: RecordKind = RecordKind(1);
/// WAL record kind of a prepare record (PREPARE TRANSACTION). Frozen.
pub const PREPARE_RECORD: RecordKind = RecordKind(2);
/// WAL record kind of an abort-prepared record (ROLLBACK PREPARED). Frozen.
pub const ABORT_PREPARED_RECORD: RecordKind = RecordKind(3);

/// WAL record kind of a write-set part of a still-running transaction. Frozen.
pub const PART_RECORD: RecordKind = RecordKind(4);
/// WAL record kind of the commit of a transaction that wrote write-set parts. Frozen.
pub const PARTS_COMMIT_RECORD: RecordKind = RecordKind(5);

/// The prepare record's format byte written now. Frozen: format 1 (row locks only) and
/// format 2 (table and partition locks, SIREAD set) are both read.
const PREPARE_FORMAT: u8 = 2;
/// Format 1: no table/partition locks, no SIREAD set.
const PREPARE_FORMAT_1: u8 = 1;
/// Lock kind in a prepare record: an exclusive row (write) lock. Frozen.
const LOCK_ROW_EXCLUSIVE: u8 = 1;
/// Lock kind: a table lock (format 2). Frozen.
const LOCK_TABLE: u8 = 2;
/// Lock kind: a partition lock (format 2). Frozen.
const LOCK_PARTITION: u8 = 3;
/// Lock kind: a row lock in a mode other than FOR UPDATE (format 2). Frozen.
const LOCK_ROW: u8 = 4;
/// Bound tags of a SIREAD range. Frozen.
const BOUND_UNBOUNDED: u8 = 0;
const BOUND_INCLUDED: u8 = 1;
const BOUND_EXCLUDED: u8 = 2;

const TAG_DELETE: u8 = 0;
const TAG_PUT: u8 = 1;
const TAG_RANGE_DELETE: u8 = 2;

/// Range deletes as records carry them: `[start, end)` pairs.
pub type RangeDeletes = Vec<(Vec<u8>, Vec<u8>)>;

/// A decoded commit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRecord {
    /// The transaction's commit timestamp: the version of every write.
    pub commit_ts: Timestamp,
    /// The transaction.
    pub txn: TxnId,
    /// Its writes; `None` deletes the key.
    pub writes: Vec<(Vec<u8>, Option<Bytes>)>,
    /// Its range deletes (applied with the writes, hiding only older versions).
    pub range_deletes: RangeDeletes,
}

/// Encodes a commit record (see the module docs for the layout).
pub fn encode_commit<'a, K: AsRef<[u8]>>(
    commit_ts: Timestamp,
    txn: TxnId,
    writes: impl ExactSizeIterator<Item = (K, &'a Option<Bytes>)>,
    range_deletes: &[(Vec<u8>, Vec<u8>)],
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(28 + writes.len() * 32);
    buf.extend_from_slice(&commit_ts.encode());
    buf.extend_from_slice(&txn.0.to_le_bytes());
    if range_deletes.is_empty() {
        encode_writes(&mut buf, writes);
    } else {
        let count = writes.len() + range_deletes.len();
        buf.extend_from_slice(&(count as u32).to_le_bytes());
        for (start, end) in range_deletes {
            encode_range_delete(&mut buf, start, end);
        }
        for (key, value) in writes {
            encode_write(&mut buf, key.as_ref(), value.as_ref());
        }
    }
    buf
}

/// Appends one range delete to `buf` (a write with tag 2, see the module docs).
pub fn encode_range_delete(buf: &mut Vec<u8>, start: &[u8], end: &[u8]) {
    buf.extend_from_slice(&(start.len() as u32).to_le_bytes());
    buf.extend_from_slice(start);
    buf.push(TAG_RANGE_DELETE);
    buf.extend_from_slice(&(end.len() as u32).to_le_bytes());
    buf.extend_from_slice(end);
}

fn encode_writes<'a, K: AsRef<[u8]>>(
    buf: &mut Vec<u8>,
    writes: impl ExactSizeIterator<Item = (K, &'a Option<Bytes>)>,
) {
    buf.extend_from_slice(&(writes.len() as u32).to_le_bytes());
    for (key, value) in writes {
        encode_write(buf, key.as_ref(), value.as_ref());
    }
}

/// A write set as records carry it: key and value (`None` deletes), in key order.
pub type Writes = Vec<(Vec<u8>, Option<Bytes>)>;

/// Writes without range deletes (part and prepare records never carry them).
fn decode_writes(r: &mut Reader<'_>) -> Result<Writes, &'static str> {
    let (writes, ranges) = decode_writes_and_ranges(r)?;
    if !ranges.is_empty() {
        return Err("range delete outside a commit record");
    }
    Ok(writes)
}

fn decode_writes_and_ranges(r: &mut Reader<'_>) -> Result<(Writes, RangeDeletes), &'static str> {
    let count = r.u32()? as usize;
    let mut writes = Vec::with_capacity(count.min(r.buf.len() / 5));
    let mut ranges = Vec::new();
    for _ in 0..count {
        let klen = r.u32()? as usize;
        let key = r.take(klen)?.to_vec();
        let value = match r.take(1)?[0] {
            TAG_DELETE => None,
            TAG_PUT => {
                let vlen = r.u32()? as usize;
                Some(Bytes::copy_from_slice(r.take(vlen)?))
            }
            TAG_RANGE_DELETE => {
                let end = r.key()?;
                ranges.push((key, end));
                continue;
            }
            _ => return Err("unknown write tag"),
        };
        writes.push((key, value));
    }
    Ok((writes, ranges))
}

/// Decodes a commit record; `Err` names what is malformed.
pub fn decode_commit(payload: &[u8]) -> Result<CommitRecord, &'static str> {
    let mut r = Reader { buf: payload };
    let ts: [u8; 16] = r.take(16)?.try_into().map_err(|_| "short timestamp")?;
    let txn = TxnId(r.u64()?);
    let (writes, range_deletes) = decode_writes_and_ranges(&mut r)?;
    if !r.buf.is_empty() {
        return Err("trailing bytes");
    }
    Ok(CommitRecord {
        commit_ts: Timestamp::decode(ts),
        txn,
        writes,
        range_deletes,
    })
}

/// A decoded write-set part record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRecord {
    /// The transaction that wrote it.
    pub txn: TxnId,
    /// Its number among the transaction's parts, from 1.
    pub part: u32,
    /// The writes, in write order (a key may repeat; the last one wins).
    pub writes: Writes,
}

/// A decoded parts-commit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartsCommitRecord {
    /// The commit timestamp: the version of every write of every part.
    pub commit_ts: Timestamp,
    /// The transaction.
    pub txn: TxnId,
    /// How many part records it wrote before this one.
    pub parts: u32,
    /// The writes made after its last part, applied after the parts.
    pub writes: Writes,
    /// Its range deletes (applied with the writes, hiding only older versions).
    pub range_deletes: RangeDeletes,
}

/// Appends one write to `buf` in the layout every record uses (see the module docs).
pub fn encode_write(buf: &mut Vec<u8>, key: &[u8], value: Option<&Bytes>) {
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(key);
    match value {
        None => buf.push(TAG_DELETE),
        Some(v) => {
            buf.push(TAG_PUT);
            buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
            buf.extend_from_slice(v);
        }
    }
}

/// Encodes a part record around `count` writes already encoded by [`encode_write`].
pub fn encode_part(txn: TxnId, part: u32, count: u32, encoded_writes: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 + encoded_writes.len());
    buf.extend_from_slice(&txn.0.to_le_bytes());
    buf.extend_from_slice(&part.to_le_bytes());
    buf.extend_from_slice(&count.to_le_bytes());
    buf.extend_from_slice(encoded_writes);
    buf
}

/// Decodes a part record; `Err` names what is malformed.
pub fn decode_part(payload: &[u8]) -> Result<PartRecord, &'static str> {
    let mut r = Reader { buf: payload };
    let txn = TxnId(r.u64()?);
    let part = r.u32()?;
    let writes = decode_writes(&mut r)?;
    if !r.buf.is_empty() {
        return Err("trailing bytes");
    }
    Ok(PartRecord { txn, part, writes })
}

/// Encodes a parts-commit record around `count` writes already encoded by [`encode_write`].
pub fn encode_parts_commit(
    commit_ts: Timestamp,
    txn: TxnId,
    parts: u32,
    count: u32,
    encoded_writes: &[u8],
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(36 + encoded_writes.len());
    buf.extend_from_slice(&commit_ts.encode());
    buf.extend_from_slice(&txn.0.to_le_bytes());
    buf.extend_from_slice(&parts.to_le_bytes());
    buf.extend_from_slice(&count.to_le_bytes());
    buf.extend_from_slice(encoded_writes);
    buf
}

/// Decodes a parts-commit record; `Err` names what is malformed.
pub fn decode_parts_commit(payload: &[u8]) -> Result<PartsCommitRecord, &'static str> {
    let mut r = Reader { buf: payload };
    let commit_ts = r.timestamp()?;
    let txn = TxnId(r.u64()?);
    let parts = r.u32()?;
    let (writes, range_deletes) = decode_writes_and_ranges(&mut r)?;
    if !r.buf.is_empty() {
        return Err("trailing bytes");
    }
    Ok(PartsCommitRecord {
        commit_ts,
        txn,
        parts,
        writes,
        range_deletes,
    })
}

/// A decoded prepare record: the prepared transaction as recovery rebuilds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareRecord {
    /// The transaction.
    pub txn: TxnId,
    /// Its snapshot (kept registered while it is prepared, so the GC safe point covers it).
    pub snapshot: Timestamp,
    /// When it prepared (the node's HLC at PREPARE).
    pub prepared_at: Timestamp,
    /// Its isolation level.
    pub isolation: Isolation,
    /// The global transaction identifier the client chose.
    pub gid: String,
    /// Opaque label: who prepared it (the SQL layer's role name).
    pub owner: String,
    /// Opaque label: where (the SQL layer's database name).
    pub database: String,
    /// Its write set, in key order; `None` deletes the key.
    pub writes: Writes,
    /// Every row lock it holds, with its mode (format 1 records hold FOR UPDATE only).
    pub row_locks: Vec<(Vec<u8>, RowMode)>,
    /// Its table and partition locks (empty in format 1 records).
    pub object_locks: Vec<(ObjectTag, ObjectMode)>,
    /// What it read, if SERIALIZABLE (empty otherwise, and in format 1 records).
    pub reads: ReadSetRecord,
}

/// A key range as a scan gives it: `(start, end)`.
pub type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// A SERIALIZABLE transaction's SIREAD set as the prepare record keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadSetRecord {
    /// Keys read one by one (sorted).
    pub points: Vec<Vec<u8>>,
    /// Scanned key ranges.
    pub ranges: Vec<KeyRange>,
}

/// The lock set of a prepare record: row locks and table/partition locks.
#[derive(Debug, Clone, Copy)]
pub struct LockSet<'a> {
    /// Rows held locked, with the mode (a row locked in two modes is listed twice).
    pub rows: &'a [(Vec<u8>, RowMode)],
    /// Table and partition locks held.
    pub objects: &'a [(ObjectTag, ObjectMode)],
}

fn table_mode_byte(m: TableMode) -> u8 {
    match m {
        TableMode::AccessShare => 0,
        TableMode::RowShare => 1,
        TableMode::RowExclusive => 2,
        TableMode::ShareUpdateExclusive => 3,
        TableMode::Share => 4,
        TableMode::ShareRowExclusive => 5,
        TableMode::Exclusive => 6,
        TableMode::AccessExclusive => 7,
    }
}

fn table_mode_of(b: u8) -> Result<TableMode, &'static str> {
    Ok(match b {
        0 => TableMode::AccessShare,
        1 => TableMode::RowShare,
        2 => TableMode::RowExclusive,
        3 => TableMode::ShareUpdateExclusive,
        4 => TableMode::Share,
        5 => TableMode::ShareRowExclusive,
        6 => TableMode::Exclusive,
        7 => TableMode::AccessExclusive,
        _ => return Err("unknown table lock mode"),
    })
}

fn intent_mode_byte(m: IntentMode) -> u8 {
    match m {
        IntentMode::IntentShare => 0,
        IntentMode::IntentExclusive => 1,
        IntentMode::Share => 2,
        IntentMode::ShareIntentExclusive => 3,
        IntentMode::Exclusive => 4,
    }
}

fn intent_mode_of(b: u8) -> Result<IntentMode, &'static str> {
    Ok(match b {
        0 => IntentMode::IntentShare,
        1 => IntentMode::IntentExclusive,
        2 => IntentMode::Share,
        3 => IntentMode::ShareIntentExclusive,
        4 => IntentMode::Exclusive,
        _ => return Err("unknown partition lock mode"),
    })
}

fn row_mode_of(b: u8) -> Result<RowMode, &'static str> {
    Ok(match b {
        0 => RowMode::KeyShare,
        1 => RowMode::Share,
        2 => RowMode::NoKeyUpdate,
        _ => return Err("unknown row lock mode"),
    })
}

fn push_key(buf: &mut Vec<u8>, key: &[u8]) {
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(key);
}

fn push_bound(buf: &mut Vec<u8>, b: &Bound<Vec<u8>>) {
    match b {
        Bound::Unbounded => buf.push(BOUND_UNBOUNDED),
        Bound::Included(k) => {
            buf.push(BOUND_INCLUDED);
            push_key(buf, k);
        }
        Bound::Excluded(k) => {
            buf.push(BOUND_EXCLUDED);
            push_key(buf, k);
        }
    }
}

fn isolation_byte(i: Isolation) -> u8 {
    match i {
        Isolation::ReadCommitted => 0,
        Isolation::RepeatableRead => 1,
        Isolation::Serializable => 2,
    }
}

fn push_str16(buf: &mut Vec<u8>, s: &str) {
    // NB: callers bound every label below u16::MAX (gids by MAX_GID_LEN, names by identifier
    // length); a longer one is cut at a character boundary rather than mis-framed.
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    buf.extend_from_slice(&(end as u16).to_le_bytes());
    buf.extend_from_slice(&s.as_bytes()[..end]);
}

/// Encodes a prepare record (see the module docs for the layout).
#[allow(clippy::too_many_arguments)]
pub fn encode_prepare<'a, K: AsRef<[u8]>>(
    txn: TxnId,
    snapshot: Timestamp,
    prepared_at: Timestamp,
    isolation: Isolation,
    gid: &str,
    owner: &str,
    database: &str,
    writes: impl ExactSizeIterator<Item = (K, &'a Option<Bytes>)>,
    locks: LockSet<'_>,
    reads: &ReadSetRecord,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(
        64 + gid.len() + writes.len() * 32 + locks.rows.len() * 16 + locks.objects.len() * 10,
    );
    buf.push(PREPARE_FORMAT);
    buf.extend_from_slice(&txn.0.to_le_bytes());
    buf.extend_from_slice(&snapshot.encode());
    buf.extend_from_slice(&prepared_at.encode());
    buf.push(isolation_byte(isolation));
    push_str16(&mut buf, gid);
    push_str16(&mut buf, owner);
    push_str16(&mut buf, database);
    encode_writes(&mut buf, writes);
    // A tag has one level, so a mismatched (tag, mode) pair is never held; it is not written.
    let mut objects = Vec::with_capacity(locks.objects.len() * 10);
    let mut count = locks.rows.len();
    for &(tag, mode) in locks.objects {
        match (tag, mode) {
            (ObjectTag::Relation(rel), ObjectMode::Table(m)) => {
                objects.push(LOCK_TABLE);
                objects.extend_from_slice(&rel.0.to_le_bytes());
                objects.push(table_mode_byte(m));
            }
            (ObjectTag::Partition(rel, part), ObjectMode::Partition(m)) => {
                objects.push(LOCK_PARTITION);
                objects.extend_from_slice(&rel.0.to_le_bytes());
                objects.extend_from_slice(&part.0.to_le_bytes());
                objects.push(intent_mode_byte(m));
            }
            _ => continue,
        }
        count += 1;
    }
    buf.extend_from_slice(&(count as u32).to_le_bytes());
    for (key, mode) in locks.rows {
        match mode {
            RowMode::Update => buf.push(LOCK_ROW_EXCLUSIVE),
            RowMode::KeyShare => buf.extend_from_slice(&[LOCK_ROW, 0]),
            RowMode::Share => buf.extend_from_slice(&[LOCK_ROW, 1]),
            // A prepared transaction has observed every row it increments (its final values
            // are in its write set), so it holds those rows as a writer: FOR NO KEY UPDATE.
            RowMode::NoKeyUpdate
            | RowMode::Increment
            | RowMode::IncrementObserve
            | RowMode::IncrementCommit => buf.extend_from_slice(&[LOCK_ROW, 2]),
        }
        push_key(&mut buf, key);
    }
    buf.extend_from_slice(&objects);
    buf.extend_from_slice(&(reads.points.len() as u32).to_le_bytes());
    for key in &reads.points {
        push_key(&mut buf, key);
    }
    buf.extend_from_slice(&(reads.ranges.len() as u32).to_le_bytes());
    for (start, end) in &reads.ranges {
        push_bound(&mut buf, start);
        push_bound(&mut buf, end);
    }
    buf
}

/// Decodes a prepare record; `Err` names what is malformed.
pub fn decode_prepare(payload: &[u8]) -> Result<PrepareRecord, &'static str> {
    let mut r = Reader { buf: payload };
    let format = r.take(1)?[0];
    if format != PREPARE_FORMAT && format != PREPARE_FORMAT_1 {
        return Err("unknown prepare record format");
    }
    let txn = TxnId(r.u64()?);
    let snapshot = r.timestamp()?;
    let prepared_at = r.timestamp()?;
    let isolation = match r.take(1)?[0] {
        0 => Isolation::ReadCommitted,
        1 => Isolation::RepeatableRead,
        2 => Isolation::Serializable,
        _ => return Err("unknown isolation level"),
    };
    let gid = r.str16()?;
    let owner = r.str16()?;
    let database = r.str16()?;
    let writes = decode_writes(&mut r)?;
    let count = r.u32()? as usize;
    let mut row_locks = Vec::with_capacity(count.min(r.buf.len() / 5));
    let mut object_locks = Vec::new();
    for _ in 0..count {
        match r.take(1)?[0] {
            LOCK_ROW_EXCLUSIVE => row_locks.push((r.key()?, RowMode::Update)),
            LOCK_ROW if format >= 2 => {
                let mode = row_mode_of(r.take(1)?[0])?;
                row_locks.push((r.key()?, mode));
            }
            LOCK_TABLE if format >= 2 => {
                let rel = RelId(r.u32()?);
                let mode = table_mode_of(r.take(1)?[0])?;
                object_locks.push((ObjectTag::Relation(rel), ObjectMode::Table(mode)));
            }
            LOCK_PARTITION if format >= 2 => {
                let rel = RelId(r.u32()?);
                let part = PartitionId(r.u32()?);
                let mode = intent_mode_of(r.take(1)?[0])?;
                object_locks.push((ObjectTag::Partition(rel, part), ObjectMode::Partition(mode)));
            }
            _ => return Err("unknown lock kind"),
        }
    }
    let mut reads = ReadSetRecord::default();
    if format >= 2 {
        let points = r.u32()? as usize;
        reads.points = Vec::with_capacity(points.min(r.buf.len() / 4));
        for _ in 0..points {
            reads.points.push(r.key()?);
        }
        let ranges = r.u32()? as usize;
        reads.ranges = Vec::with_capacity(ranges.min(r.buf.len() / 2));
        for _ in 0..ranges {
            let start = r.bound()?;
            let end = r.bound()?;
            reads.ranges.push((start, end));
        }
    }
    if !r.buf.is_empty() {
        return Err("trailing bytes");
    }
    Ok(PrepareRecord {
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
    })
}

/// Encodes an abort-prepared record (see the module docs for the layout).
pub fn encode_abort_prepared(txn: TxnId, gid: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(10 + gid.len());
    buf.extend_from_slice(&txn.0.to_le_bytes());
    push_str16(&mut buf, gid);
    buf
}

/// Decodes an abort-prepared record into the transaction id and gid.
pub fn decode_abort_prepared(payload: &[u8]) -> Result<(TxnId, String), &'static str> {
    let mut r = Reader { buf: payload };
    let txn = TxnId(r.u64()?);
    let gid = r.str16()?;
    if !r.buf.is_empty() {
        return Err("trailing bytes");
    }
    Ok((txn, gid))
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.buf.len() < n {
            return Err("record ends early");
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| "short u32")?,
        ))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| "short u64")?,
        ))
    }
    fn timestamp(&mut self) -> Result<Timestamp, &'static str> {
        let ts: [u8; 16] = self.take(16)?.try_into().map_err(|_| "short timestamp")?;
        Ok(Timestamp::decode(ts))
    }
    fn key(&mut self) -> Result<Vec<u8>, &'static str> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }
    fn bound(&mut self) -> Result<Bound<Vec<u8>>, &'static str> {
        Ok(match self.take(1)?[0] {
            BOUND_UNBOUNDED => Bound::Unbounded,
            BOUND_INCLUDED => Bound::Included(self.key()?),
            BOUND_EXCLUDED => Bound::Excluded(self.key()?),
            _ => return Err("unknown bound tag"),
        })
    }
    fn str16(&mut self) -> Result<String, &'static str> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().map_err(|_| "short u16")?);
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "label is not UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn commit_record_roundtrips_and_rejects_truncation() {
        let mut writes = BTreeMap::new();
        writes.insert(b"a".to_vec(), Some(Bytes::from_static(b"1")));
        writes.insert(b"b".to_vec(), None);
        let ts = Timestamp {
            physical_us: 42,
            logical: 3,
            node: 1,
        };
        let ranges = vec![
            (b"t1".to_vec(), b"t2".to_vec()),
            (b"x".to_vec(), b"y".to_vec()),
        ];
        for ranges in [Vec::new(), ranges] {
            let buf = encode_commit(ts, TxnId(9), writes.iter(), &ranges);
            let rec = decode_commit(&buf).unwrap();
            assert_eq!(rec.commit_ts, ts);
            assert_eq!(rec.txn, TxnId(9));
            assert_eq!(rec.writes, writes.clone().into_iter().collect::<Vec<_>>());
            assert_eq!(rec.range_deletes, ranges);
            for cut in 0..buf.len() {
                assert!(
                    decode_commit(&buf[..cut]).is_err(),
                    "cut at {cut} must not decode"
                );
            }
        }
        // A part record never carries a range delete.
        let mut enc = Vec::new();
        encode_range_delete(&mut enc, b"a", b"b");
        assert!(decode_part(&encode_part(TxnId(1), 1, 1, &enc)).is_err());
    }

    #[test]
    fn part_and_parts_commit_records_roundtrip_and_reject_truncation() {
        let mut enc = Vec::new();
        encode_write(&mut enc, b"k", Some(&Bytes::from_static(b"v1")));
        encode_write(&mut enc, b"a", None);
        encode_write(&mut enc, b"k", Some(&Bytes::from_static(b"v2")));
        let part = encode_part(TxnId(5), 2, 3, &enc);
        let rec = decode_part(&part).unwrap();
        assert_eq!(rec.txn, TxnId(5));
        assert_eq!(rec.part, 2);
        assert_eq!(
            rec.writes,
            vec![
                (b"k".to_vec(), Some(Bytes::from_static(b"v1"))),
                (b"a".to_vec(), None),
                (b"k".to_vec(), Some(Bytes::from_static(b"v2"))),
            ],
            "write order kept, repeats kept"
        );
        for cut in 0..part.len() {
            assert!(decode_part(&part[..cut]).is_err(), "cut at {cut}");
        }
        let ts = Timestamp {
            physical_us: 9,
            logical: 1,
            node: 2,
        };
        let commit = encode_parts_commit(ts, TxnId(5), 7, 3, &enc);
        let rec = decode_parts_commit(&commit).unwrap();
        assert_eq!((rec.commit_ts, rec.txn, rec.parts), (ts, TxnId(5), 7));
        assert_eq!(rec.writes.len(), 3);
        for cut in 0..commit.len() {
            assert!(decode_parts_commit(&commit[..cut]).is_err(), "cut at {cut}");
        }
        // A count larger than the writes present is refused.
        assert!(decode_part(&encode_part(TxnId(5), 1, 4, &enc)).is_err());
    }

    #[test]
    fn prepare_record_roundtrips_and_rejects_truncation_and_unknown_formats() {
        let mut writes = BTreeMap::new();
        writes.insert(b"k1".to_vec(), Some(Bytes::from_static(b"v")));
        writes.insert(b"k2".to_vec(), None);
        let locks = vec![
            (b"k1".to_vec(), RowMode::Update),
            (b"k2".to_vec(), RowMode::NoKeyUpdate),
            (b"shared".to_vec(), RowMode::Share),
            (b"shared".to_vec(), RowMode::KeyShare),
        ];
        let objects = vec![
            (
                ObjectTag::Relation(RelId(16384)),
                ObjectMode::Table(TableMode::RowExclusive),
            ),
            (
                ObjectTag::Relation(RelId(16390)),
                ObjectMode::Table(TableMode::AccessExclusive),
            ),
            (
                ObjectTag::Partition(RelId(16384), PartitionId(7)),
                ObjectMode::Partition(IntentMode::IntentExclusive),
            ),
        ];
        let reads = ReadSetRecord {
            points: vec![b"p1".to_vec(), b"p2".to_vec()],
            ranges: vec![
                (
                    Bound::Included(b"a".to_vec()),
                    Bound::Excluded(b"b".to_vec()),
                ),
                (Bound::Excluded(b"c".to_vec()), Bound::Unbounded),
            ],
        };
        let ts = |p| Timestamp {
            physical_us: p,
            logical: 1,
            node: 7,
        };
        let buf = encode_prepare(
            TxnId(77),
            ts(10),
            ts(20),
            Isolation::Serializable,
            "gid-é",
            "alice",
            "gnomon",
            writes.iter(),
            LockSet {
                rows: &locks,
                objects: &objects,
            },
            &reads,
        );
        let rec = decode_prepare(&buf).unwrap();
        assert_eq!(rec.txn, TxnId(77));
        assert_eq!(rec.snapshot, ts(10));
        assert_eq!(rec.prepared_at, ts(20));
        assert_eq!(rec.isolation, Isolation::Serializable);
        assert_eq!(
            (rec.gid.as_str(), rec.owner.as_str(), rec.database.as_str()),
            ("gid-é", "alice", "gnomon")
        );
        assert_eq!(rec.writes, writes.clone().into_iter().collect::<Vec<_>>());
        assert_eq!(rec.row_locks, locks);
        assert_eq!(rec.object_locks, objects);
        assert_eq!(rec.reads, reads);
        for cut in 0..buf.len() {
            assert!(decode_prepare(&buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut newer = buf.clone();
        newer[0] = 3;
        assert!(
            decode_prepare(&newer).is_err(),
            "an unknown format is refused"
        );
        // An unknown lock kind or mode is refused, never skipped.
        // The partition lock's mode is the last lock byte; after it come the points (count,
        // two 2-byte keys) and the ranges (count, [a, b), (c, ..)).
        let bad_mode = buf.len() - 1 - (4 + 2 * (4 + 2)) - (4 + (6 + 6) + (6 + 1));
        let mut mode = buf.clone();
        assert_eq!(mode[bad_mode], 1, "the partition lock's IX");
        mode[bad_mode] = 9;
        assert!(decode_prepare(&mode).is_err(), "unknown partition mode");

        // Format 1 (written before table locks and SIREAD sets were recorded) is still read:
        // the same fields up to the lock set, row locks only, nothing after.
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&77u64.to_le_bytes());
        v1.extend_from_slice(&ts(10).encode());
        v1.extend_from_slice(&ts(20).encode());
        v1.push(1);
        for label in ["g1", "bob", "gnomon"] {
            v1.extend_from_slice(&(label.len() as u16).to_le_bytes());
            v1.extend_from_slice(label.as_bytes());
        }
        encode_writes(&mut v1, writes.iter());
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.push(LOCK_ROW_EXCLUSIVE);
        v1.extend_from_slice(&2u32.to_le_bytes());
        v1.extend_from_slice(b"k1");
        let old = decode_prepare(&v1).unwrap();
        assert_eq!(old.isolation, Isolation::RepeatableRead);
        assert_eq!(old.gid, "g1");
        assert_eq!(old.row_locks, vec![(b"k1".to_vec(), RowMode::Update)]);
        assert!(old.object_locks.is_empty());
        assert_eq!(old.reads, ReadSetRecord::default());
        // A format 1 record cannot hold a table lock.
        let mut v1_table = v1[..v1.len() - (1 + 4 + 2)].to_vec();
        v1_table.extend_from_slice(&[LOCK_TABLE, 0, 64, 0, 0, 2]);
        assert!(decode_prepare(&v1_table).is_err());

        let abort = encode_abort_prepared(TxnId(77), "gid-é");
        assert_eq!(
            decode_abort_prepared(&abort).unwrap(),
            (TxnId(77), "gid-é".to_string())
        );
        for cut in 0..abort.len() {
            assert!(
                decode_abort_prepared(&abort[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}
