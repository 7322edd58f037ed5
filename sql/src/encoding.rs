//! Key and value formats of the SQL layer in the MVCC key space.
//!
//! # Keys (order-preserving, FROZEN)
//!
//! Every key starts with one [`KeyPrefix`] tag byte, so each kind of key owns a contiguous
//! range and a catalog scan never touches row data:
//!
//! ```text
//! 0x01                                   Meta          -> catalog format version (u32 BE)
//! 0x02 <str name>                        Database      -> database OID (u32 BE)
//! 0x03 <str name>                        Role          -> RoleDef (roles.rs; empty = bootstrap)
//! 0x04 <u32 BE db> <str name>            TableName     -> table id (u32 BE)
//! 0x05 <u32 BE definition id>            Table         -> encoded TableDef
//! 0x06 <u32 BE db> <str name>            Sequence      -> encoded SequenceDef
//! 0x07 <u32 BE sequence id>              SequenceValue -> last reserved value (i64 BE),
//!                                                         written outside transactions
//! 0x08 <u32 BE db> <str name>            IndexName     -> table id (u32 BE)
//! 0x09 <u32 BE db> <str name>            Schema        -> empty
//! 0x0A <u32 BE table id>                 TableAcl      -> owner and grants (privileges.rs)
//! 0x10 <u32 BE table id> <pk values...>  Row           -> encoded row
//! 0x11 <u32 BE table id> <u32 BE index id> <values...> [<pk values...>]
//!                                        IndexEntry    -> the row's full Row key
//! ```
//!
//! Names are per database (catalog format 2): the name keys (`TableName`, `Sequence`,
//! `IndexName`, `Schema`) carry the OID of their database ([`DatabaseId`]) before the name,
//! so two databases can each have a `t1` and one database's objects are one contiguous range
//! per kind. Everything keyed by an id (definitions, rows, index entries, ACLs, sequence
//! values) needs no database: ids come from one cluster-wide counter and are never reused.
//! Databases and roles are cluster-wide. Catalog format 1 (before namespaces) had the name
//! keys without `<u32 BE db>` and empty `Database` values; `SqlEngine::open` migrates it
//! (see `session.rs`).
//!
//! A table's name entry points at its current definition id; ALTER TABLE writes the altered
//! definition under a fresh definition id (definitions are immutable per id), while the
//! table id that prefixes its rows stays. An index entry's key holds the indexed values in
//! the primary-key encoding below; the row's key suffix follows them unless the index is
//! unique and no indexed value is NULL (so one unique key is one KV key, whose row lock
//! serializes concurrent inserters of that value).
//!
//! `<str>` is the UTF-8 bytes with `0x00` escaped as `0x00 0xFF`, then the terminator
//! `0x00 0x01`: shorter strings sort first and no string's encoding is a prefix of another's.
//!
//! A primary-key value is one tag byte (`0x01` value, `0x02` NULL, so NULLs sort last as in
//! PostgreSQL's ascending order) followed by a memcomparable body:
//!
//! ```text
//! bool                 0x00 / 0x01
//! int2/int4/int8       i64 with the sign bit flipped, big-endian (8 bytes; all widths equal)
//! float4/float8        f64 bits; negative: all bits inverted, else sign bit set (8 bytes)
//! numeric              class byte 0x01 neg / 0x02 zero / 0x03 pos, then for non-zero:
//!                      exponent i16 (flipped BE), decimal digits as bytes b'1'..=b'10'
//!                      ('0'+1), terminator 0x00; for negatives every byte after the class is
//!                      inverted. Equal values (1.0 = 1.00) encode equally.
//! text/varchar/char    <str> as above (byte order = C collation)
//! bytea                <str> as above
//! date                 i32 sign-flipped BE
//! timestamp(tz)        i64 sign-flipped BE
//! interval             i128 (months as 30 days, days as 24 h, in µs) sign-flipped BE, so
//!                      equal intervals ('1 mon' = '30 days') encode equally
//! array                each element's key encoding (with its 0x01 / 0x02 marker), 0x00,
//!                      ndims 1B, ndims × (len, lower bound: sign-flipped u32 BE): elements
//!                      first, as PostgreSQL orders arrays
//! ```
//!
//! Tables without a primary key use a hidden `rowid` (int8 body) as the key.
//!
//! # Row values (format version 1, FROZEN)
//!
//! ```text
//! +-------------+-------------+-----------------------------+
//! | version 1B  | ncols varint| ncols × (tag 1B, payload)   |
//! +-------------+-------------+-----------------------------+
//! ```
//! Tags: 0 NULL, 1 false, 2 true (no payload), 3 int2 (2B BE), 4 int4 (4B BE), 5 int8 (8B BE),
//! 6 float4 (4B BE IEEE), 7 float8 (8B BE IEEE), 8 numeric (16B rust_decimal serialization),
//! 9 text (varint len + UTF-8), 10 bytea (varint len + bytes), 11 date (4B BE days since
//! 2000-01-01), 12 timestamp, 13 timestamptz (8B BE µs since 2000-01-01), 14 interval (8B BE
//! µs, 4B BE days, 4B BE months: PostgreSQL's binary format; added without a version bump,
//! as no earlier row holds the tag), 15 array (element type as in the catalog (`put_type`),
//! ndims varint, ndims × (len 4B BE, lower bound 4B BE), then each element as a tagged value
//! of this same format; added without a version bump, as no earlier row holds the tag).
//! The value is self-describing, so a reader does not need the schema to decode it.

use std::ops::{Bound, Range};

use rust_decimal::Decimal;

use crate::error::{SqlError, SqlResult};
use crate::types::{DataType, Value};

/// Identifier of a table: also its OID as clients see it (RowDescription table_oid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId(pub u32);

/// Identifier of a database: its OID (`pg_database.oid`). Name keys are qualified by it, and
/// a transaction carries the one its session is connected to ([`crate::storage::Transaction::database`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatabaseId(pub u32);

/// Version byte written first in every row value; readers reject other versions.
pub const ROW_FORMAT_VERSION: u8 = 1; // FROZEN

/// Every kind of key the SQL layer writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// Catalog format marker, written at bootstrap.
    Meta,
    /// A database name.
    Database(String),
    /// A role name.
    Role(String),
    /// Table name -> id in a database; its write lock serializes concurrent CREATE/DROP of
    /// one name.
    TableName(DatabaseId, String),
    /// Table definition by id.
    Table(TableId),
    /// A row: table id and the memcomparable encoding of its primary key values.
    Row(TableId, Vec<u8>),
    /// A sequence definition by database and name (transactional).
    Sequence(DatabaseId, String),
    /// A sequence's last reserved value (written by autonomous transactions).
    SequenceValue(u32),
    /// Index name -> table id in a database; its write lock serializes CREATE/DROP INDEX of
    /// one name.
    IndexName(DatabaseId, String),
    /// A schema name in a database.
    Schema(DatabaseId, String),
    /// An index entry: table id, index id, encoded values (and row key suffix).
    IndexEntry(TableId, u32, Vec<u8>),
    /// A table's owner and granted privileges, by table id (`privileges.rs`).
    TableAcl(TableId),
}

/// Prefixes that select one kind of key (and, for rows, one table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPrefix {
    /// [`Key::Meta`].
    Meta,
    /// All [`Key::Database`] keys.
    Database,
    /// All [`Key::Role`] keys.
    Role,
    /// All [`Key::TableName`] keys of one database.
    TableName(DatabaseId),
    /// All [`Key::TableName`] keys of every database (partition links at open).
    AllTableNames,
    /// All [`Key::Table`] keys.
    Table,
    /// All rows of one table.
    Rows(TableId),
    /// All [`Key::Sequence`] keys of one database.
    Sequence(DatabaseId),
    /// All [`Key::Sequence`] keys of every database (id allocation at open).
    AllSequences,
    /// All [`Key::IndexName`] keys of one database.
    IndexName(DatabaseId),
    /// All [`Key::Schema`] keys of one database.
    Schema(DatabaseId),
    /// All [`Key::TableAcl`] keys.
    TableAcl,
    /// All index entries of one table.
    Indexes(TableId),
    /// All entries of one index.
    Index(TableId, u32),
}

// FROZEN tag bytes.
const TAG_META: u8 = 0x01;
const TAG_DATABASE: u8 = 0x02;
const TAG_ROLE: u8 = 0x03;
const TAG_TABLE_NAME: u8 = 0x04;
const TAG_TABLE: u8 = 0x05;
const TAG_SEQUENCE: u8 = 0x06;
const TAG_SEQUENCE_VALUE: u8 = 0x07;
const TAG_INDEX_NAME: u8 = 0x08;
const TAG_SCHEMA: u8 = 0x09;
const TAG_TABLE_ACL: u8 = 0x0A;
const TAG_ROW: u8 = 0x10;
const TAG_INDEX_ENTRY: u8 = 0x11;

/// Tags of the name keys, which catalog format 2 qualifies by database.
pub(crate) const NAME_KEY_TAGS: [u8; 4] =
    [TAG_TABLE_NAME, TAG_SEQUENCE, TAG_INDEX_NAME, TAG_SCHEMA];

/// A name key of catalog format 1 (`tag <str name>`) as format 2 writes it in database `db`
/// (`tag <u32 BE db> <str name>`).
pub(crate) fn qualify_v1_name_key(old: &[u8], db: DatabaseId) -> Vec<u8> {
    let mut out = Vec::with_capacity(old.len() + 4);
    out.extend_from_slice(&old[..1.min(old.len())]);
    out.extend_from_slice(&db.0.to_be_bytes());
    out.extend_from_slice(old.get(1..).unwrap_or_default());
    out
}

impl Key {
    /// The order-preserving byte encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Key::Meta => out.push(TAG_META),
            Key::Database(name) => {
                out.push(TAG_DATABASE);
                encode_str(name.as_bytes(), &mut out);
            }
            Key::Role(name) => {
                out.push(TAG_ROLE);
                encode_str(name.as_bytes(), &mut out);
            }
            Key::TableName(db, name) => {
                out.push(TAG_TABLE_NAME);
                out.extend_from_slice(&db.0.to_be_bytes());
                encode_str(name.as_bytes(), &mut out);
            }
            Key::Table(id) => {
                out.push(TAG_TABLE);
                out.extend_from_slice(&id.0.to_be_bytes());
            }
            Key::TableAcl(id) => {
                out.push(TAG_TABLE_ACL);
                out.extend_from_slice(&id.0.to_be_bytes());
            }
            Key::Row(id, pk) => {
                out.push(TAG_ROW);
                out.extend_from_slice(&id.0.to_be_bytes());
                out.extend_from_slice(pk);
            }
            Key::Sequence(db, name) => {
                out.push(TAG_SEQUENCE);
                out.extend_from_slice(&db.0.to_be_bytes());
                encode_str(name.as_bytes(), &mut out);
            }
            Key::SequenceValue(id) => {
                out.push(TAG_SEQUENCE_VALUE);
                out.extend_from_slice(&id.to_be_bytes());
            }
            Key::IndexName(db, name) => {
                out.push(TAG_INDEX_NAME);
                out.extend_from_slice(&db.0.to_be_bytes());
                encode_str(name.as_bytes(), &mut out);
            }
            Key::Schema(db, name) => {
                out.push(TAG_SCHEMA);
                out.extend_from_slice(&db.0.to_be_bytes());
                encode_str(name.as_bytes(), &mut out);
            }
            Key::IndexEntry(id, index, body) => {
                out.push(TAG_INDEX_ENTRY);
                out.extend_from_slice(&id.0.to_be_bytes());
                out.extend_from_slice(&index.to_be_bytes());
                out.extend_from_slice(body);
            }
        }
        out
    }

    /// Decodes a key written by [`Key::encode`].
    pub fn decode(bytes: &[u8]) -> SqlResult<Key> {
        let bad = || SqlError::corrupt(format!("undecodable key {bytes:02x?}"));
        let (&tag, rest) = bytes.split_first().ok_or_else(bad)?;
        let table_id = |r: &[u8]| -> SqlResult<TableId> {
            let b: [u8; 4] = r.get(..4).and_then(|s| s.try_into().ok()).ok_or_else(bad)?;
            Ok(TableId(u32::from_be_bytes(b)))
        };
        let database_id = |r: &[u8]| -> SqlResult<DatabaseId> { Ok(DatabaseId(table_id(r)?.0)) };
        let name = |r: &[u8]| -> SqlResult<String> {
            let (s, used) = decode_str(r).ok_or_else(bad)?;
            if used != r.len() {
                return Err(bad());
            }
            String::from_utf8(s).map_err(|_| bad())
        };
        Ok(match tag {
            TAG_META if rest.is_empty() => Key::Meta,
            TAG_DATABASE => Key::Database(name(rest)?),
            TAG_ROLE => Key::Role(name(rest)?),
            TAG_TABLE_NAME if rest.len() >= 4 => {
                Key::TableName(database_id(rest)?, name(&rest[4..])?)
            }
            TAG_TABLE if rest.len() == 4 => Key::Table(table_id(rest)?),
            TAG_ROW => Key::Row(table_id(rest)?, rest[4..].to_vec()),
            TAG_SEQUENCE if rest.len() >= 4 => Key::Sequence(database_id(rest)?, name(&rest[4..])?),
            TAG_SEQUENCE_VALUE if rest.len() == 4 => Key::SequenceValue(table_id(rest)?.0),
            TAG_INDEX_NAME if rest.len() >= 4 => {
                Key::IndexName(database_id(rest)?, name(&rest[4..])?)
            }
            TAG_SCHEMA if rest.len() >= 4 => Key::Schema(database_id(rest)?, name(&rest[4..])?),
            TAG_TABLE_ACL if rest.len() == 4 => Key::TableAcl(table_id(rest)?),
            TAG_INDEX_ENTRY if rest.len() >= 8 => {
                Key::IndexEntry(table_id(rest)?, table_id(&rest[4..])?.0, rest[8..].to_vec())
            }
            _ => return Err(bad()),
        })
    }
}

impl KeyPrefix {
    /// The bytes every key of this kind starts with.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            KeyPrefix::Meta => vec![TAG_META],
            KeyPrefix::Database => vec![TAG_DATABASE],
            KeyPrefix::Role => vec![TAG_ROLE],
            KeyPrefix::TableName(db) => {
                let mut v = vec![TAG_TABLE_NAME];
                v.extend_from_slice(&db.0.to_be_bytes());
                v
            }
            KeyPrefix::TableAcl => vec![TAG_TABLE_ACL],
            KeyPrefix::Table => vec![TAG_TABLE],
            KeyPrefix::Rows(id) => {
                let mut v = vec![TAG_ROW];
                v.extend_from_slice(&id.0.to_be_bytes());
                v
            }
            KeyPrefix::AllSequences => vec![TAG_SEQUENCE],
            KeyPrefix::AllTableNames => vec![TAG_TABLE_NAME],
            KeyPrefix::Sequence(db) => {
                let mut v = vec![TAG_SEQUENCE];
                v.extend_from_slice(&db.0.to_be_bytes());
                v
            }
            KeyPrefix::IndexName(db) => {
                let mut v = vec![TAG_INDEX_NAME];
                v.extend_from_slice(&db.0.to_be_bytes());
                v
            }
            KeyPrefix::Schema(db) => {
                let mut v = vec![TAG_SCHEMA];
                v.extend_from_slice(&db.0.to_be_bytes());
                v
            }
            KeyPrefix::Indexes(id) => {
                let mut v = vec![TAG_INDEX_ENTRY];
                v.extend_from_slice(&id.0.to_be_bytes());
                v
            }
            KeyPrefix::Index(id, index) => {
                let mut v = vec![TAG_INDEX_ENTRY];
                v.extend_from_slice(&id.0.to_be_bytes());
                v.extend_from_slice(&index.to_be_bytes());
                v
            }
        }
    }

    /// Scan bounds covering exactly the keys with this prefix.
    pub fn range(&self) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        prefix_range(&self.encode())
    }
}

/// `[prefix, successor(prefix))`: every key starting with `prefix`.
pub fn prefix_range(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let end = match prefix_successor(prefix) {
        Some(s) => Bound::Excluded(s),
        None => Bound::Unbounded,
    };
    (Bound::Included(prefix.to_vec()), end)
}

/// The smallest byte string greater than every string starting with `prefix`.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xFF {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

fn encode_str(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

/// Returns the unescaped bytes and how many input bytes were consumed.
fn decode_str(input: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let b = *input.get(i)?;
        if b == 0 {
            match *input.get(i + 1)? {
                0xFF => out.push(0),
                0x01 => return Some((out, i + 2)),
                _ => return None,
            }
            i += 2;
        } else {
            out.push(b);
            i += 1;
        }
    }
}

/// Appends the memcomparable encoding of one primary-key value.
pub fn encode_key_value(v: &Value, out: &mut Vec<u8>) {
    if v.is_null() {
        out.push(0x02);
        return;
    }
    out.push(0x01);
    let flip64 = |x: i64| (x as u64 ^ (1u64 << 63)).to_be_bytes();
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push(*b as u8),
        Value::Int2(x) => out.extend_from_slice(&flip64(*x as i64)),
        Value::Int4(x) => out.extend_from_slice(&flip64(*x as i64)),
        Value::Int8(x) => out.extend_from_slice(&flip64(*x)),
        Value::Float4(x) => out.extend_from_slice(&float_key(*x as f64)),
        Value::Float8(x) => out.extend_from_slice(&float_key(*x)),
        Value::Numeric(d) => encode_decimal_key(d, out),
        Value::Text(s) => encode_str(s.as_bytes(), out),
        Value::Bytea(b) => encode_str(b, out),
        Value::Date(d) => out.extend_from_slice(&(*d as u32 ^ (1u32 << 31)).to_be_bytes()),
        Value::Timestamp(t) | Value::Timestamptz(t) => out.extend_from_slice(&flip64(*t)),
        Value::Interval(i) => {
            out.extend_from_slice(&((i.cmp_key() as u128) ^ (1u128 << 127)).to_be_bytes())
        }
        Value::Array(a) => {
            // Elements (each prefix-free, NULL after values) then 0x00, so a shorter array
            // with equal leading elements sorts first; then the shape, so arrays with the same
            // elements and other dimensions differ.
            for item in &a.items {
                encode_key_value(item, out);
            }
            out.push(0x00);
            out.push(a.dims.len() as u8);
            for d in &a.dims {
                out.extend_from_slice(&(d.len as u32 ^ (1u32 << 31)).to_be_bytes());
                out.extend_from_slice(&(d.lower as u32 ^ (1u32 << 31)).to_be_bytes());
            }
        }
    }
}

fn float_key(x: f64) -> [u8; 8] {
    // Normalise -0 to 0 and every NaN to one NaN (which sorts above +Infinity).
    let x = if x == 0.0 {
        0.0
    } else if x.is_nan() {
        f64::NAN
    } else {
        x
    };
    let bits = x.to_bits();
    let bits = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1u64 << 63)
    };
    bits.to_be_bytes()
}

fn encode_decimal_key(d: &Decimal, out: &mut Vec<u8>) {
    if d.is_zero() {
        out.push(0x02);
        return;
    }
    let negative = d.is_sign_negative();
    let n = d.normalize();
    let digits = n.mantissa().unsigned_abs().to_string();
    // value = 0.d1d2d3... × 10^exponent
    let exponent = digits.len() as i64 - n.scale() as i64;
    let mut body = Vec::with_capacity(digits.len() + 3);
    body.extend_from_slice(&((exponent as i16) as u16 ^ 0x8000).to_be_bytes());
    body.extend(digits.bytes().map(|c| c - b'0' + 1));
    body.push(0x00);
    if negative {
        out.push(0x01);
        out.extend(body.iter().map(|b| !b));
    } else {
        out.push(0x03);
        out.extend(body);
    }
}

/// `Key::Row(id, encode_primary_key(values)).encode()` built in one buffer (the per-row hot
/// path: no intermediate vectors).
pub fn row_key<'a>(id: TableId, values: impl IntoIterator<Item = &'a Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    append_rows_prefix(id, &mut out);
    for v in values {
        encode_key_value(v, &mut out);
    }
    out
}

/// Appends `KeyPrefix::Rows(id).encode()`.
pub fn append_rows_prefix(id: TableId, out: &mut Vec<u8>) {
    out.push(TAG_ROW);
    out.extend_from_slice(&id.0.to_be_bytes());
}

/// Encodes a whole primary key (several values) for a [`Key::Row`].
pub fn encode_primary_key(values: &[&Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode_key_value(v, &mut out);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Row values.

const T_NULL: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
const T_INT2: u8 = 3;
const T_INT4: u8 = 4;
const T_INT8: u8 = 5;
const T_FLOAT4: u8 = 6;
const T_FLOAT8: u8 = 7;
const T_NUMERIC: u8 = 8;
const T_TEXT: u8 = 9;
const T_BYTEA: u8 = 10;
const T_DATE: u8 = 11;
const T_TIMESTAMP: u8 = 12;
const T_TIMESTAMPTZ: u8 = 13;
const T_INTERVAL: u8 = 14;
const T_ARRAY: u8 = 15;

/// Encodes a row (see the module docs for the format).
pub fn encode_row(values: &[Value]) -> Vec<u8> {
    let size: usize = values
        .iter()
        .map(|v| match v {
            Value::Text(s) => 5 + s.len(),
            Value::Bytea(b) => 5 + b.len(),
            Value::Numeric(_) => 17,
            _ => 9,
        })
        .sum();
    let mut out = Vec::with_capacity(6 + size);
    out.push(ROW_FORMAT_VERSION);
    put_varint(&mut out, values.len() as u64);
    for v in values {
        encode_value(v, &mut out);
    }
    out
}

/// Appends one tagged value of a row.
pub(crate) fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(T_NULL),
        Value::Bool(false) => out.push(T_FALSE),
        Value::Bool(true) => out.push(T_TRUE),
        Value::Int2(x) => {
            out.push(T_INT2);
            out.extend_from_slice(&x.to_be_bytes());
        }
        Value::Int4(x) => {
            out.push(T_INT4);
            out.extend_from_slice(&x.to_be_bytes());
        }
        Value::Int8(x) => {
            out.push(T_INT8);
            out.extend_from_slice(&x.to_be_bytes());
        }
        Value::Float4(x) => {
            out.push(T_FLOAT4);
            out.extend_from_slice(&x.to_be_bytes());
        }
        Value::Float8(x) => {
            out.push(T_FLOAT8);
            out.extend_from_slice(&x.to_be_bytes());
        }
        Value::Numeric(d) => {
            out.push(T_NUMERIC);
            out.extend_from_slice(&d.serialize());
        }
        Value::Text(s) => {
            out.push(T_TEXT);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytea(b) => {
            out.push(T_BYTEA);
            put_varint(out, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::Date(d) => {
            out.push(T_DATE);
            out.extend_from_slice(&d.to_be_bytes());
        }
        Value::Timestamp(t) => {
            out.push(T_TIMESTAMP);
            out.extend_from_slice(&t.to_be_bytes());
        }
        Value::Timestamptz(t) => {
            out.push(T_TIMESTAMPTZ);
            out.extend_from_slice(&t.to_be_bytes());
        }
        Value::Interval(i) => {
            out.push(T_INTERVAL);
            out.extend_from_slice(&i.to_binary());
        }
        Value::Array(a) => {
            out.push(T_ARRAY);
            put_type(out, &a.elem);
            put_varint(out, a.dims.len() as u64);
            for d in &a.dims {
                out.extend_from_slice(&d.len.to_be_bytes());
                out.extend_from_slice(&d.lower.to_be_bytes());
            }
            for item in &a.items {
                encode_value(item, out);
            }
        }
    }
}

/// Decodes a row written by [`encode_row`].
pub fn decode_row(bytes: &[u8]) -> SqlResult<Vec<Value>> {
    decode_values(bytes, None)
}

/// Decodes only the columns marked in `needed` (beyond its end: not needed); the others are
/// skipped without allocating and read as NULL.
pub fn decode_row_columns(bytes: &[u8], needed: &[bool]) -> SqlResult<Vec<Value>> {
    decode_values(bytes, Some(needed))
}

fn decode_values(bytes: &[u8], needed: Option<&[bool]>) -> SqlResult<Vec<Value>> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != ROW_FORMAT_VERSION {
        return Err(SqlError::corrupt(format!(
            "unknown row format version {version}"
        )));
    }
    let n = r.varint()? as usize;
    let mut values = Vec::with_capacity(n.min(4096));
    for i in 0..n {
        let tag = r.u8()?;
        let skip = needed.is_some_and(|m| !m.get(i).copied().unwrap_or(false));
        if skip && (tag == T_TEXT || tag == T_BYTEA) {
            let len = r.varint()? as usize;
            r.bytes(len)?;
            values.push(Value::Null);
            continue;
        }
        values.push(decode_value(&mut r, tag)?);
    }
    Ok(values)
}

/// Decodes one value of a row whose tag byte was `tag`.
fn decode_value(r: &mut Reader<'_>, tag: u8) -> SqlResult<Value> {
    Ok(match tag {
        T_NULL => Value::Null,
        T_FALSE => Value::Bool(false),
        T_TRUE => Value::Bool(true),
        T_INT2 => Value::Int2(i16::from_be_bytes(r.array()?)),
        T_INT4 => Value::Int4(i32::from_be_bytes(r.array()?)),
        T_INT8 => Value::Int8(i64::from_be_bytes(r.array()?)),
        T_FLOAT4 => Value::Float4(f32::from_be_bytes(r.array()?)),
        T_FLOAT8 => Value::Float8(f64::from_be_bytes(r.array()?)),
        T_NUMERIC => Value::Numeric(Decimal::deserialize(r.array()?)),
        T_TEXT => {
            let len = r.varint()? as usize;
            let s = r.bytes(len)?;
            Value::Text(
                String::from_utf8(s.to_vec())
                    .map_err(|_| SqlError::corrupt("row text is not UTF-8"))?,
            )
        }
        T_BYTEA => {
            let len = r.varint()? as usize;
            Value::Bytea(r.bytes(len)?.to_vec())
        }
        T_DATE => Value::Date(i32::from_be_bytes(r.array()?)),
        T_TIMESTAMP => Value::Timestamp(i64::from_be_bytes(r.array()?)),
        T_TIMESTAMPTZ => Value::Timestamptz(i64::from_be_bytes(r.array()?)),
        T_ARRAY => {
            let elem = read_type(r)?;
            let ndims = r.varint()? as usize;
            if ndims > crate::types::MAX_ARRAY_DIMS {
                return Err(SqlError::corrupt("array with too many dimensions in row"));
            }
            let mut dims = Vec::with_capacity(ndims);
            let mut total: usize = 1;
            for _ in 0..ndims {
                let len = i32::from_be_bytes(r.array()?);
                let lower = i32::from_be_bytes(r.array()?);
                total = total.saturating_mul(usize::try_from(len).unwrap_or(usize::MAX));
                dims.push(crate::types::ArrayDim { len, lower });
            }
            if ndims == 0 {
                total = 0;
            }
            let mut items = Vec::with_capacity(total.min(r.remaining()));
            for _ in 0..total {
                let tag = r.u8()?;
                items.push(decode_value(r, tag)?);
            }
            Value::from_array(crate::types::ArrayValue { elem, dims, items })
        }
        T_INTERVAL => {
            let b: [u8; 16] = r.array()?;
            Value::Interval(
                crate::interval::Interval::from_binary(&b)
                    .ok_or_else(|| SqlError::corrupt("bad interval in row"))?,
            )
        }
        other => {
            return Err(SqlError::corrupt(format!(
                "unknown value tag {other} in row"
            )))
        }
    })
}

/// Decodes one value as [`encode_value`] wrote it (tag and payload).
pub(crate) fn decode_tagged_value(bytes: &[u8]) -> SqlResult<Value> {
    let mut r = Reader::new(bytes);
    let tag = r.u8()?;
    decode_value(&mut r, tag)
}

/// Where column `col`'s value (tag and payload) lies in a row written by [`encode_row`], so
/// that one fixed-width value can be replaced without decoding the others. `None` when the row
/// does not hold exactly `width` columns (e.g. written before a column was added) or `col` is
/// not one of them: the caller then decodes the whole row.
pub(crate) fn column_span(
    bytes: &[u8],
    col: usize,
    width: usize,
) -> SqlResult<Option<Range<usize>>> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != ROW_FORMAT_VERSION {
        return Err(SqlError::corrupt(format!(
            "unknown row format version {version}"
        )));
    }
    let n = r.varint()? as usize;
    if n != width || col >= n {
        return Ok(None);
    }
    for _ in 0..col {
        let tag = r.u8()?;
        skip_payload(&mut r, tag)?;
    }
    let start = r.pos;
    let tag = r.u8()?;
    skip_payload(&mut r, tag)?;
    Ok(Some(start..r.pos))
}

/// Adds `delta` to the tagged integer value `slot` (one [`column_span`]) in place: an int4 when
/// `wide` is false, an int8 when it is true. The bytes are those [`encode_value`] writes for
/// the sum. False, with `slot` unchanged, when `slot` holds another kind of value or the sum
/// does not fit the type: the caller then takes the general path (which reports the overflow).
pub(crate) fn add_to_integer_in_place(slot: &mut [u8], delta: i64, wide: bool) -> bool {
    match (slot, wide) {
        ([T_INT4, payload @ ..], false) => {
            let Ok(old) = <[u8; 4]>::try_from(&payload[..]) else {
                return false;
            };
            let sum = i64::from(i32::from_be_bytes(old)).checked_add(delta);
            match sum.and_then(|n| i32::try_from(n).ok()) {
                Some(n) => {
                    payload.copy_from_slice(&n.to_be_bytes());
                    true
                }
                None => false,
            }
        }
        ([T_INT8, payload @ ..], true) => {
            let Ok(old) = <[u8; 8]>::try_from(&payload[..]) else {
                return false;
            };
            match i64::from_be_bytes(old).checked_add(delta) {
                Some(n) => {
                    payload.copy_from_slice(&n.to_be_bytes());
                    true
                }
                None => false,
            }
        }
        _ => false,
    }
}

/// Steps over the payload of a value whose tag was just read (an array is decoded to find
/// its end).
fn skip_payload(r: &mut Reader<'_>, tag: u8) -> SqlResult<()> {
    let len = match tag {
        T_NULL | T_FALSE | T_TRUE => 0,
        T_INT2 => 2,
        T_INT4 | T_FLOAT4 | T_DATE => 4,
        T_INT8 | T_FLOAT8 | T_TIMESTAMP | T_TIMESTAMPTZ => 8,
        T_NUMERIC | T_INTERVAL => 16,
        T_TEXT | T_BYTEA => r.varint()? as usize,
        _ => return decode_value(r, tag).map(|_| ()),
    };
    r.bytes(len).map(|_| ())
}

/// LEB128 unsigned varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A bounds-checked cursor over stored bytes: every read fails with XX001 instead of panicking.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> SqlResult<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or_else(|| SqlError::corrupt("stored value is truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> SqlResult<[u8; N]> {
        let s = self.bytes(N)?;
        s.try_into()
            .map_err(|_| SqlError::corrupt("stored value is truncated"))
    }

    pub(crate) fn u8(&mut self) -> SqlResult<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn varint(&mut self) -> SqlResult<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= ((b & 0x7F) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(SqlError::corrupt("varint too long"))
    }

    pub(crate) fn string(&mut self) -> SqlResult<String> {
        let n = self.varint()? as usize;
        String::from_utf8(self.bytes(n)?.to_vec())
            .map_err(|_| SqlError::corrupt("stored string is not UTF-8"))
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// Encodes a type for the catalog: tag byte plus modifiers as varints (0 = none, n+1 = n).
pub(crate) fn put_type(out: &mut Vec<u8>, ty: &DataType) {
    let opt = |o: &Option<u32>| o.map(|v| v as u64 + 1).unwrap_or(0);
    match ty {
        DataType::Bool => out.push(1),
        DataType::Int2 => out.push(2),
        DataType::Int4 => out.push(3),
        DataType::Int8 => out.push(4),
        DataType::Float4 => out.push(5),
        DataType::Float8 => out.push(6),
        DataType::Numeric { precision, scale } => {
            out.push(7);
            put_varint(out, opt(precision));
            put_varint(out, opt(scale));
        }
        DataType::Text => out.push(8),
        DataType::Varchar(n) => {
            out.push(9);
            put_varint(out, opt(n));
        }
        DataType::Bpchar(n) => {
            out.push(10);
            put_varint(out, opt(n));
        }
        DataType::Bytea => out.push(11),
        DataType::Date => out.push(12),
        DataType::Timestamp => out.push(13),
        DataType::Timestamptz => out.push(14),
        DataType::Unknown => out.push(15),
        DataType::Interval => out.push(16),
        DataType::Array(elem) => {
            out.push(17);
            put_type(out, elem);
        }
        DataType::Int2Vector => out.push(18),
        DataType::OidVector => out.push(19),
    }
}

pub(crate) fn read_type(r: &mut Reader<'_>) -> SqlResult<DataType> {
    fn opt(r: &mut Reader<'_>) -> SqlResult<Option<u32>> {
        let v = r.varint()?;
        Ok(if v == 0 { None } else { Some((v - 1) as u32) })
    }
    Ok(match r.u8()? {
        1 => DataType::Bool,
        2 => DataType::Int2,
        3 => DataType::Int4,
        4 => DataType::Int8,
        5 => DataType::Float4,
        6 => DataType::Float8,
        7 => {
            let precision = opt(r)?;
            let scale = opt(r)?;
            DataType::Numeric { precision, scale }
        }
        8 => DataType::Text,
        9 => DataType::Varchar(opt(r)?),
        10 => DataType::Bpchar(opt(r)?),
        11 => DataType::Bytea,
        12 => DataType::Date,
        13 => DataType::Timestamp,
        14 => DataType::Timestamptz,
        15 => DataType::Unknown,
        16 => DataType::Interval,
        18 => DataType::Int2Vector,
        19 => DataType::OidVector,
        17 => match read_type(r)? {
            DataType::Array(_) => return Err(SqlError::corrupt("array of arrays in catalog")),
            elem => DataType::array_of(elem),
        },
        other => {
            return Err(SqlError::corrupt(format!(
                "unknown type tag {other} in catalog"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn key_of(v: Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key_value(&v, &mut out);
        out
    }

    #[test]
    fn every_prefix_is_a_prefix_of_its_keys() {
        let t = TableId(16384);
        let d = DatabaseId(5);
        let cases = [
            (KeyPrefix::Meta, Key::Meta),
            (KeyPrefix::Database, Key::Database("gnomon".into())),
            (KeyPrefix::Role, Key::Role("gnomon".into())),
            (KeyPrefix::TableName(d), Key::TableName(d, "t\0x".into())),
            (KeyPrefix::Table, Key::Table(t)),
            (KeyPrefix::Rows(t), Key::Row(t, key_of(Value::Int4(-5)))),
            (KeyPrefix::Sequence(d), Key::Sequence(d, "t_id_seq".into())),
            (KeyPrefix::AllSequences, Key::Sequence(d, "t_id_seq".into())),
            (KeyPrefix::AllTableNames, Key::TableName(d, "t".into())),
            (KeyPrefix::IndexName(d), Key::IndexName(d, "t_a_idx".into())),
            (KeyPrefix::Schema(d), Key::Schema(d, "public".into())),
            (KeyPrefix::TableAcl, Key::TableAcl(TableId(16384))),
            (
                KeyPrefix::Indexes(t),
                Key::IndexEntry(t, 16390, key_of(Value::Int4(3))),
            ),
            (
                KeyPrefix::Index(t, 16390),
                Key::IndexEntry(t, 16390, key_of(Value::Text("x".into()))),
            ),
        ];
        for (prefix, key) in cases {
            let k = key.encode();
            assert!(k.starts_with(&prefix.encode()), "{prefix:?} vs {key:?}");
            let range = prefix.range();
            assert!(std::ops::RangeBounds::contains(&range, &k));
            assert_eq!(Key::decode(&k).unwrap(), key);
            // A name of another database is outside a per-database prefix.
            if let (Key::TableName(_, n), KeyPrefix::TableName(_)) = (&key, prefix) {
                let other = Key::TableName(DatabaseId(16384), n.clone()).encode();
                assert!(!std::ops::RangeBounds::contains(&range, &other));
            }
        }
        // Rows of another table fall outside the range.
        let other = Key::Row(TableId(16385), vec![]).encode();
        assert!(!std::ops::RangeBounds::contains(
            &KeyPrefix::Rows(t).range(),
            &other
        ));
    }

    #[test]
    fn key_encoding_preserves_value_order() {
        let ordered = [
            vec![
                Value::Int8(i64::MIN),
                Value::Int8(-1),
                Value::Int8(0),
                Value::Int8(7),
                Value::Int8(i64::MAX),
                Value::Null,
            ],
            vec![
                Value::Text("".into()),
                Value::Text("a".into()),
                Value::Text("a\0".into()),
                Value::Text("ab".into()),
                Value::Text("b".into()),
            ],
            vec![
                Value::Float8(f64::NEG_INFINITY),
                Value::Float8(-2.5),
                Value::Float8(-0.0),
                Value::Float8(1e-300),
                Value::Float8(3.0),
                Value::Float8(f64::INFINITY),
                Value::Float8(f64::NAN),
            ],
            [
                "-100.5", "-100", "-9.99", "-0.001", "0", "0.001", "0.0011", "1", "1.5", "9.99",
                "10", "100.25",
            ]
            .iter()
            .map(|s| Value::Numeric(Decimal::from_str(s).unwrap()))
            .collect(),
            vec![Value::Date(-5), Value::Date(0), Value::Date(3)],
        ];
        for list in ordered {
            for pair in list.windows(2) {
                assert!(
                    key_of(pair[0].clone()) < key_of(pair[1].clone()),
                    "{:?} < {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
        let a = Value::Numeric(Decimal::from_str("1.0").unwrap());
        let b = Value::Numeric(Decimal::from_str("1.00").unwrap());
        assert_eq!(key_of(a), key_of(b));
        // Composite keys: (1, "b") < (1, "ba") < (2, "")
        let k = |i: i32, s: &str| encode_primary_key(&[&Value::Int4(i), &Value::Text(s.into())]);
        assert!(k(1, "b") < k(1, "ba") && k(1, "ba") < k(2, ""));
    }

    #[test]
    fn row_key_matches_the_general_key_encoding() {
        let values = [Value::Int4(7), Value::Text("k".into()), Value::Null];
        let refs: Vec<&Value> = values.iter().collect();
        assert_eq!(
            row_key(TableId(16390), &values),
            Key::Row(TableId(16390), encode_primary_key(&refs)).encode()
        );
        let mut prefix = Vec::new();
        append_rows_prefix(TableId(16390), &mut prefix);
        assert_eq!(prefix, KeyPrefix::Rows(TableId(16390)).encode());
    }

    #[test]
    fn unneeded_columns_read_as_null_and_needed_ones_intact() {
        let row = vec![
            Value::Int4(1),
            Value::Text("filler".into()),
            Value::Bytea(vec![1, 2]),
            Value::Text("kept".into()),
        ];
        let bytes = encode_row(&row);
        let got = decode_row_columns(&bytes, &[true, false, false, true]).unwrap();
        assert_eq!(
            got,
            vec![
                Value::Int4(1),
                Value::Null,
                Value::Null,
                Value::Text("kept".into())
            ]
        );
        // Columns beyond the mask are not needed.
        assert_eq!(decode_row_columns(&bytes, &[true]).unwrap()[3], Value::Null);
        assert_eq!(decode_row(&bytes).unwrap(), row);
    }

    #[test]
    fn rows_round_trip() {
        let row = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int2(-3),
            Value::Int4(42),
            Value::Int8(-9),
            Value::Float4(1.5),
            Value::Float8(-0.25),
            Value::Numeric(Decimal::from_str("12.340").unwrap()),
            Value::Text("héllo".into()),
            Value::Bytea(vec![0, 255]),
            Value::Date(9000),
            Value::Timestamp(123),
            Value::Timestamptz(-456),
        ];
        let bytes = encode_row(&row);
        assert_eq!(decode_row(&bytes).unwrap(), row);
        assert!(decode_row(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_row(&[9, 0]).is_err());
    }

    #[test]
    fn a_column_span_holds_exactly_that_value_and_can_be_replaced_in_place() {
        let row = vec![
            Value::Int4(7),
            Value::Text("x".repeat(200)), // a two-byte varint length
            Value::Null,
            Value::Numeric(Decimal::from_str("-1.5").unwrap()),
            Value::Interval(crate::interval::Interval::from_binary(&[1; 16]).unwrap()),
            Value::Bytea(vec![1, 2, 3]),
            Value::Int8(-1),
        ];
        let bytes = encode_row(&row);
        for (col, value) in row.iter().enumerate() {
            let span = column_span(&bytes, col, row.len()).unwrap().unwrap();
            assert_eq!(&decode_tagged_value(&bytes[span.clone()]).unwrap(), value);
            let mut one = Vec::new();
            encode_value(value, &mut one);
            assert_eq!(&bytes[span], &one[..]);
        }
        // Replacing a fixed-width value in place writes what encoding the changed row writes.
        let span = column_span(&bytes, 6, row.len()).unwrap().unwrap();
        let mut patched = bytes.clone();
        let mut one = Vec::new();
        encode_value(&Value::Int8(1 << 40), &mut one);
        patched[span].copy_from_slice(&one);
        let mut changed = row.clone();
        changed[6] = Value::Int8(1 << 40);
        assert_eq!(patched, encode_row(&changed));
        // Integers stepped in place: the bytes of the sum's encoding, or untouched when the
        // sum overflows or the value is of another kind.
        for (value, delta, wide, sum) in [
            (Value::Int4(7), -10, false, Some(Value::Int4(-3))),
            (Value::Int4(i32::MAX), 1, false, None),
            (Value::Int4(1), i64::from(i32::MIN) - 2, false, None),
            (
                Value::Int4(1),
                i64::from(i32::MIN) - 1,
                false,
                Some(Value::Int4(i32::MIN)),
            ),
            (
                Value::Int8(-1),
                1 << 40,
                true,
                Some(Value::Int8((1 << 40) - 1)),
            ),
            (Value::Int8(i64::MIN), -1, true, None),
            (Value::Int4(7), 1, true, None),
            (Value::Int8(7), 1, false, None),
            (Value::Null, 1, false, None),
        ] {
            let mut slot = Vec::new();
            encode_value(&value, &mut slot);
            let before = slot.clone();
            let stepped = add_to_integer_in_place(&mut slot, delta, wide);
            match sum {
                Some(sum) => {
                    let mut one = Vec::new();
                    encode_value(&sum, &mut one);
                    assert!(stepped, "{value:?} + {delta}");
                    assert_eq!(slot, one, "{value:?} + {delta}");
                }
                None => {
                    assert!(!stepped, "{value:?} + {delta}");
                    assert_eq!(slot, before);
                }
            }
        }
        // Another width (a row from before ADD COLUMN), a column past the end, a cut row.
        assert_eq!(column_span(&bytes, 0, row.len() + 1).unwrap(), None);
        assert_eq!(column_span(&bytes, row.len(), row.len()).unwrap(), None);
        assert!(column_span(&bytes[..bytes.len() - 1], 6, row.len()).is_err());
    }
}
