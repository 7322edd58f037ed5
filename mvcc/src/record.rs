//! The commit record: the one WAL record a transaction writes.
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
//! Frozen: a change of this layout needs a new record kind.

use bytes::Bytes;
use gnomon_wal::RecordKind;

use crate::clock::Timestamp;
use crate::txn::TxnId;

/// WAL record kind of a commit record. Frozen.
pub const COMMIT_RECORD: RecordKind = RecordKind(1);

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
    buf
}

/// Decodes a commit record; `Err` names what is malformed.
pub fn decode_commit(payload: &[u8]) -> Result<CommitRecord, &'static str> {
    let mut r = Reader { buf: payload };
    let ts: [u8; 16] = r.take(16)?.try_into().map_err(|_| "short timestamp")?;
    let txn = TxnId(r.u64()?);
    let count = r.u32()? as usize;
    let mut writes = Vec::with_capacity(count.min(payload.len() / 5));
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
    if !r.buf.is_empty() {
        return Err("trailing bytes");
    }
    Ok(CommitRecord {
        commit_ts: Timestamp::decode(ts),
        txn,
        writes,
    })
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
}
