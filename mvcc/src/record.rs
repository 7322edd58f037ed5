//! The mvcc layer's WAL records: the commit record (the one record an ordinary transaction
//! writes) and the two records of a prepared (two-phase commit) transaction.
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
//! ```
//!
//! Frozen: a change of this layout needs a new record kind. The commit of a prepared
//! transaction (COMMIT PREPARED) is an ordinary commit record under the prepared transaction's
//! id, repeating its write set: a commit record is self-contained, so replay never needs the
//! prepare record to apply it.
//!
//! ## Prepare record ([`PREPARE_RECORD`])
//!
//! Written (and fsynced) by `PREPARE TRANSACTION`: everything needed to rebuild the prepared
//! transaction after a crash, with its locks, and to commit or roll it back later.
//!
//! ```text
//! +-----------+-----------+----------------+-------------------+--------------+
//! | format 1B | txn id 8B | snapshot (16B) | prepared at (16B) | isolation 1B |
//! |   = 1     |  u64 LE   | HLC big-endian |  HLC big-endian   | 0 RC 1 RR 2 S|
//! +-----------+-----------+----------------+-------------------+--------------+
//! | gid len u16 LE | gid (UTF-8) | owner len u16 LE | owner | database len u16 LE | database |
//! +----------------+-------------+------------------+-------+---------------------+----------+
//! | write count u32 LE | count × write (as in the commit record)                            |
//! | lock count u32 LE  | count × lock                                                       |
//! +--------------------+------------------------------------------------------------------+
//! lock = | kind u8 (1 = exclusive row lock) | key len u32 LE | key bytes |
//! ```
//!
//! `owner` and `database` are opaque labels to this layer (the SQL layer stores the role and
//! database names, for `pg_prepared_xacts`). The lock set lists every lock the transaction
//! held when it prepared (its written rows and rows it only locked); recovery re-takes exactly
//! these. A lock kind this reader does not know is an error (a newer format), never skipped.
//!
//! ## Abort-prepared record ([`ABORT_PREPARED_RECORD`])
//!
//! Written (and fsynced) by `ROLLBACK PREPARED`: `| txn id u64 LE | gid len u16 LE | gid |`.
//!
//! Frozen: the format byte of the prepare record is checked by the reader; a change of either
//! layout bumps it (or takes a new record kind).

use bytes::Bytes;
use gnomon_wal::RecordKind;

use crate::clock::Timestamp;
use crate::txn::{Isolation, TxnId};

/// WAL record kind of a commit record. Frozen.
pub const COMMIT_RECORD: RecordKind = RecordKind(1);
/// WAL record kind of a prepare record (PREPARE TRANSACTION). Frozen.
pub const PREPARE_RECORD: RecordKind = RecordKind(2);
/// WAL record kind of an abort-prepared record (ROLLBACK PREPARED). Frozen.
pub const ABORT_PREPARED_RECORD: RecordKind = RecordKind(3);

/// The prepare record's format byte. Frozen for format 1.
const PREPARE_FORMAT: u8 = 1;
/// Lock kind in a prepare record: an exclusive row (write) lock. Frozen.
const LOCK_ROW_EXCLUSIVE: u8 = 1;

const TAG_DELETE: u8 = 0;
const TAG_PUT: u8 = 1;

/// A decoded commit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRecord {
    /// The transaction's commit timestamp: the version of every write.
    pub commit_ts: Timestamp,
    /// The transaction.
    pub txn: TxnId,
    /// Its writes; `None` deletes the key.
    pub writes: Vec<(Vec<u8>, Option<Bytes>)>,
}

/// Encodes a commit record (see the module docs for the layout).
pub fn encode_commit<'a>(
    commit_ts: Timestamp,
    txn: TxnId,
    writes: impl ExactSizeIterator<Item = (&'a Vec<u8>, &'a Option<Bytes>)>,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(28 + writes.len() * 32);
    buf.extend_from_slice(&commit_ts.encode());
    buf.extend_from_slice(&txn.0.to_le_bytes());
    encode_writes(&mut buf, writes);
    buf
}

fn encode_writes<'a>(
    buf: &mut Vec<u8>,
    writes: impl ExactSizeIterator<Item = (&'a Vec<u8>, &'a Option<Bytes>)>,
) {
    buf.extend_from_slice(&(writes.len() as u32).to_le_bytes());
    for (key, value) in writes {
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
}

/// A write set as records carry it: key and value (`None` deletes), in key order.
pub type Writes = Vec<(Vec<u8>, Option<Bytes>)>;

fn decode_writes(r: &mut Reader<'_>) -> Result<Writes, &'static str> {
    let count = r.u32()? as usize;
    let mut writes = Vec::with_capacity(count.min(r.buf.len() / 5));
    for _ in 0..count {
        let klen = r.u32()? as usize;
        let key = r.take(klen)?.to_vec();
        let value = match r.take(1)?[0] {
            TAG_DELETE => None,
            TAG_PUT => {
                let vlen = r.u32()? as usize;
                Some(Bytes::copy_from_slice(r.take(vlen)?))
            }
            _ => return Err("unknown write tag"),
        };
        writes.push((key, value));
    }
    Ok(writes)
}

/// Decodes a commit record; `Err` names what is malformed.
pub fn decode_commit(payload: &[u8]) -> Result<CommitRecord, &'static str> {
    let mut r = Reader { buf: payload };
    let ts: [u8; 16] = r.take(16)?.try_into().map_err(|_| "short timestamp")?;
    let txn = TxnId(r.u64()?);
    let writes = decode_writes(&mut r)?;
    if !r.buf.is_empty() {
        return Err("trailing bytes");
    }
    Ok(CommitRecord {
        commit_ts: Timestamp::decode(ts),
        txn,
        writes,
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
    /// Every row it holds an exclusive lock on.
    pub row_locks: Vec<Vec<u8>>,
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
pub fn encode_prepare<'a>(
    txn: TxnId,
    snapshot: Timestamp,
    prepared_at: Timestamp,
    isolation: Isolation,
    gid: &str,
    owner: &str,
    database: &str,
    writes: impl ExactSizeIterator<Item = (&'a Vec<u8>, &'a Option<Bytes>)>,
    row_locks: &[Vec<u8>],
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64 + gid.len() + writes.len() * 32 + row_locks.len() * 16);
    buf.push(PREPARE_FORMAT);
    buf.extend_from_slice(&txn.0.to_le_bytes());
    buf.extend_from_slice(&snapshot.encode());
    buf.extend_from_slice(&prepared_at.encode());
    buf.push(isolation_byte(isolation));
    push_str16(&mut buf, gid);
    push_str16(&mut buf, owner);
    push_str16(&mut buf, database);
    encode_writes(&mut buf, writes);
    buf.extend_from_slice(&(row_locks.len() as u32).to_le_bytes());
    for key in row_locks {
        buf.push(LOCK_ROW_EXCLUSIVE);
        buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
        buf.extend_from_slice(key);
    }
    buf
}

/// Decodes a prepare record; `Err` names what is malformed.
pub fn decode_prepare(payload: &[u8]) -> Result<PrepareRecord, &'static str> {
    let mut r = Reader { buf: payload };
    if r.take(1)?[0] != PREPARE_FORMAT {
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
    for _ in 0..count {
        if r.take(1)?[0] != LOCK_ROW_EXCLUSIVE {
            return Err("unknown lock kind");
        }
        let klen = r.u32()? as usize;
        row_locks.push(r.take(klen)?.to_vec());
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
        let buf = encode_commit(ts, TxnId(9), writes.iter());
        let rec = decode_commit(&buf).unwrap();
        assert_eq!(rec.commit_ts, ts);
        assert_eq!(rec.txn, TxnId(9));
        assert_eq!(rec.writes, writes.into_iter().collect::<Vec<_>>());
        for cut in 0..buf.len() {
            assert!(
                decode_commit(&buf[..cut]).is_err(),
                "cut at {cut} must not decode"
            );
        }
    }

    #[test]
    fn prepare_record_roundtrips_and_rejects_truncation_and_unknown_formats() {
        let mut writes = BTreeMap::new();
        writes.insert(b"k1".to_vec(), Some(Bytes::from_static(b"v")));
        writes.insert(b"k2".to_vec(), None);
        let locks = vec![b"k1".to_vec(), b"k2".to_vec(), b"only-locked".to_vec()];
        let ts = |p| Timestamp {
            physical_us: p,
            logical: 1,
            node: 7,
        };
        let buf = encode_prepare(
            TxnId(77),
            ts(10),
            ts(20),
            Isolation::RepeatableRead,
            "gid-é",
            "alice",
            "gnomon",
            writes.iter(),
            &locks,
        );
        let rec = decode_prepare(&buf).unwrap();
        assert_eq!(rec.txn, TxnId(77));
        assert_eq!(rec.snapshot, ts(10));
        assert_eq!(rec.prepared_at, ts(20));
        assert_eq!(rec.isolation, Isolation::RepeatableRead);
        assert_eq!(
            (rec.gid.as_str(), rec.owner.as_str(), rec.database.as_str()),
            ("gid-é", "alice", "gnomon")
        );
        assert_eq!(rec.writes, writes.into_iter().collect::<Vec<_>>());
        assert_eq!(rec.row_locks, locks);
        for cut in 0..buf.len() {
            assert!(decode_prepare(&buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut newer = buf.clone();
        newer[0] = 2;
        assert!(
            decode_prepare(&newer).is_err(),
            "an unknown format is refused"
        );

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
