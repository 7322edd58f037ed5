//! The catalog: table definitions stored transactionally in the MVCC key space.
//!
//! Definitions live under [`Key::TableName`] (name -> id) and [`Key::Table`] (id -> def), so
//! CREATE and DROP commit, roll back, and recover exactly like row data. Lookups go through the
//! statement's own transaction (one point read of the name key), so a transaction sees its own
//! uncommitted DDL and a savepoint rollback undoes it. Definitions are immutable per id (ALTER
//! TABLE ADD PRIMARY KEY moves the table to a new id), so decoded definitions are cached by id;
//! the cache carries a version that every committed DDL bumps and dropped ids are evicted then.
//! `Catalog::tagged_snapshot` tells which version a transaction's snapshot sees, which is
//! what prepared statements' cached plans are validated against.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use crate::encoding::{
    decode_row, decode_row_columns, put_str, put_type, put_varint, read_type, row_key, Key,
    KeyPrefix, Reader, TableId,
};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::storage::Transaction;
use crate::types::{DataType, Value};

/// Version byte of an encoded [`TableDef`]; readers reject others.
pub const TABLE_DEF_VERSION: u8 = 1; // FROZEN

/// Version of the catalog layout, stored under [`Key::Meta`] at bootstrap.
pub const CATALOG_FORMAT_VERSION: u32 = 1; // FROZEN

/// First id handed to a user table (PostgreSQL's FirstNormalObjectId).
pub const FIRST_TABLE_ID: u32 = 16384;

/// One column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    /// Column name (already case-folded).
    pub name: String,
    /// Declared type with modifiers.
    pub ty: DataType,
    /// NOT NULL (primary-key columns always are).
    pub not_null: bool,
    /// DEFAULT expression as SQL text, re-parsed when used.
    pub default: Option<String>,
}

/// A table definition.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    /// Id (also the OID clients see).
    pub id: TableId,
    /// Name (case-folded).
    pub name: String,
    /// Columns in declaration order.
    pub columns: Vec<ColumnDef>,
    /// Indexes into `columns` of the primary key; empty = the table uses a hidden rowid.
    pub primary_key: Vec<usize>,
}

impl TableDef {
    /// Index of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// True when rows are keyed by a hidden rowid.
    pub fn has_rowid(&self) -> bool {
        self.primary_key.is_empty()
    }

    /// The storage key of a row of this table with a primary key.
    pub fn row_key(&self, row: &[Value]) -> Vec<u8> {
        row_key(self.id, self.primary_key.iter().map(|&i| &row[i]))
    }

    /// The storage key of a rowid table's row.
    pub fn rowid_key(&self, rowid: i64) -> Vec<u8> {
        row_key(self.id, [&Value::Int8(rowid)])
    }

    /// Name of the primary-key constraint, as PostgreSQL names it.
    pub fn pkey_name(&self) -> String {
        format!("{}_pkey", self.name)
    }

    /// Encoding:
    ///
    /// ```text
    /// version 1B | id u32 BE | name str | ncols varint
    ///   | ncols × (name str | type | flags 1B: bit0 NOT NULL, bit1 has default | [default str])
    ///   | npk varint | npk × column index varint
    /// ```
    /// `str` is varint length + UTF-8; `type` is a tag byte plus varint modifiers.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![TABLE_DEF_VERSION];
        out.extend_from_slice(&self.id.0.to_be_bytes());
        put_str(&mut out, &self.name);
        put_varint(&mut out, self.columns.len() as u64);
        for c in &self.columns {
            put_str(&mut out, &c.name);
            put_type(&mut out, &c.ty);
            out.push(c.not_null as u8 | ((c.default.is_some() as u8) << 1));
            if let Some(d) = &c.default {
                put_str(&mut out, d);
            }
        }
        put_varint(&mut out, self.primary_key.len() as u64);
        for &i in &self.primary_key {
            put_varint(&mut out, i as u64);
        }
        out
    }

    /// Decodes [`TableDef::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> SqlResult<TableDef> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != TABLE_DEF_VERSION {
            return Err(SqlError::corrupt(format!(
                "unknown table definition version {version}"
            )));
        }
        let id = TableId(u32::from_be_bytes(r.array()?));
        let name = r.string()?;
        let ncols = r.varint()? as usize;
        let mut columns = Vec::with_capacity(ncols.min(1600));
        for _ in 0..ncols {
            let cname = r.string()?;
            let ty = read_type(&mut r)?;
            let flags = r.u8()?;
            let default = if flags & 2 != 0 {
                Some(r.string()?)
            } else {
                None
            };
            columns.push(ColumnDef {
                name: cname,
                ty,
                not_null: flags & 1 != 0,
                default,
            });
        }
        let npk = r.varint()? as usize;
        let mut primary_key = Vec::with_capacity(npk.min(32));
        for _ in 0..npk {
            let i = r.varint()? as usize;
            if i >= columns.len() {
                return Err(SqlError::corrupt("primary key column out of range"));
            }
            primary_key.push(i);
        }
        if !r.is_empty() {
            return Err(SqlError::corrupt("trailing bytes after table definition"));
        }
        Ok(TableDef {
            id,
            name,
            columns,
            primary_key,
        })
    }
}

/// In-memory catalog state shared by all sessions of one engine.
pub(crate) struct Catalog {
    /// Decoded definitions by id (immutable per id).
    defs: RwLock<HashMap<TableId, Arc<TableDef>>>,
    /// Bumped by every committed DDL statement.
    version: AtomicU64,
    /// DDL commits under way (between [`Catalog::ddl_commit_begins`] and
    /// [`Catalog::ddl_committed`]/[`Catalog::ddl_commit_failed`]).
    ddl_in_flight: AtomicU64,
    next_table_id: AtomicU32,
    /// Next hidden rowid per table, initialised lazily from the largest stored rowid.
    rowids: Mutex<HashMap<TableId, i64>>,
}

impl Catalog {
    /// Loads ids from storage so new tables never reuse an id.
    pub(crate) fn load(txn: &dyn Transaction) -> SqlResult<Catalog> {
        let mut max_id = FIRST_TABLE_ID - 1;
        let mut defs = HashMap::new();
        for (k, v) in txn.scan(KeyPrefix::Table.range(), false, None)? {
            if let Key::Table(id) = Key::decode(&k)? {
                max_id = max_id.max(id.0);
                defs.insert(id, Arc::new(TableDef::decode(&v)?));
            }
        }
        Ok(Catalog {
            defs: RwLock::new(defs),
            version: AtomicU64::new(1),
            ddl_in_flight: AtomicU64::new(0),
            next_table_id: AtomicU32::new(max_id + 1),
            rowids: Mutex::new(HashMap::new()),
        })
    }

    /// Current catalog version (changes after every committed DDL).
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// Takes a snapshot with `take` and tells which catalog version it sees: `Some(v)` when
    /// the snapshot sees exactly the DDL of the commits counted in version `v` (no DDL commit
    /// overlapped it), `None` when that cannot be told. Cached plans are keyed by this: a plan
    /// bound under a snapshot of version `v` is valid under every other snapshot of version `v`.
    ///
    /// Why it holds: a DDL transaction raises `ddl_in_flight` before its commit starts and
    /// bumps `version` before lowering `ddl_in_flight` after its commit ends. Reading
    /// `version`, `ddl_in_flight` (= 0), snapshot, `ddl_in_flight` (= 0), `version` (unchanged)
    /// leaves no room for a DDL commit to have become visible to the snapshot without being
    /// counted, or to be counted without being visible.
    pub(crate) fn tagged_snapshot<T>(&self, take: impl FnOnce() -> T) -> (T, Option<u64>) {
        let v1 = self.version.load(Ordering::SeqCst);
        let quiet_before = self.ddl_in_flight.load(Ordering::SeqCst) == 0;
        let snapshot = take();
        let quiet_after = self.ddl_in_flight.load(Ordering::SeqCst) == 0;
        let v2 = self.version.load(Ordering::SeqCst);
        let tag = (quiet_before && quiet_after && v1 == v2).then_some(v1);
        (snapshot, tag)
    }

    /// Called before a transaction containing DDL starts to commit; must be followed by
    /// [`Catalog::ddl_committed`] or [`Catalog::ddl_commit_failed`].
    pub(crate) fn ddl_commit_begins(&self) {
        self.ddl_in_flight.fetch_add(1, Ordering::SeqCst);
    }

    /// A DDL commit begun with [`Catalog::ddl_commit_begins`] failed (it may still be found
    /// committed after a restart): the version moves on, so plans are re-bound.
    pub(crate) fn ddl_commit_failed(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
        self.ddl_in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Called after a transaction containing DDL commits (after [`Catalog::ddl_commit_begins`]).
    pub(crate) fn ddl_committed(&self, dropped: &[TableId]) {
        if let Ok(mut defs) = self.defs.write() {
            for id in dropped {
                defs.remove(id);
            }
        }
        if let Ok(mut rowids) = self.rowids.lock() {
            for id in dropped {
                rowids.remove(id);
            }
        }
        self.version.fetch_add(1, Ordering::SeqCst);
        self.ddl_in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// The table named `name` as `txn` sees it.
    pub(crate) fn lookup(
        &self,
        txn: &dyn Transaction,
        name: &str,
    ) -> SqlResult<Option<Arc<TableDef>>> {
        let Some(idb) = txn.get(&Key::TableName(name.to_string()).encode())? else {
            return Ok(None);
        };
        let id = TableId(u32::from_be_bytes(
            idb.as_ref()
                .try_into()
                .map_err(|_| SqlError::corrupt("bad table name entry"))?,
        ));
        if let Ok(defs) = self.defs.read() {
            if let Some(def) = defs.get(&id) {
                return Ok(Some(def.clone()));
            }
        }
        let Some(bytes) = txn.get(&Key::Table(id).encode())? else {
            return Err(SqlError::corrupt(format!(
                "table \"{name}\" has a name but no definition"
            )));
        };
        let def = Arc::new(TableDef::decode(&bytes)?);
        if let Ok(mut defs) = self.defs.write() {
            defs.insert(id, def.clone());
        }
        Ok(Some(def))
    }

    /// Lookup that fails with 42P01 when the table is missing.
    pub(crate) fn require(&self, txn: &dyn Transaction, name: &str) -> SqlResult<Arc<TableDef>> {
        self.lookup(txn, name)?.ok_or_else(|| {
            SqlError::new(
                SqlState::UNDEFINED_TABLE,
                format!("relation \"{name}\" does not exist"),
            )
        })
    }

    /// Writes a new table's catalog entries in `txn`.
    pub(crate) fn create_table(
        &self,
        txn: &mut dyn Transaction,
        name: String,
        columns: Vec<ColumnDef>,
        primary_key: Vec<usize>,
    ) -> SqlResult<Arc<TableDef>> {
        let id = TableId(self.next_table_id.fetch_add(1, Ordering::AcqRel));
        let def = TableDef {
            id,
            name,
            columns,
            primary_key,
        };
        txn.put(
            &Key::TableName(def.name.clone()).encode(),
            Bytes::copy_from_slice(&id.0.to_be_bytes()),
        )?;
        txn.put(&Key::Table(id).encode(), Bytes::from(def.encode()))?;
        Ok(Arc::new(def))
    }

    /// Deletes a table's catalog entries and all of its rows in `txn`.
    pub(crate) fn drop_table(&self, txn: &mut dyn Transaction, def: &TableDef) -> SqlResult<()> {
        self.delete_rows(txn, def)?;
        txn.delete(&Key::TableName(def.name.clone()).encode())?;
        txn.delete(&Key::Table(def.id).encode())?;
        Ok(())
    }

    /// Deletes every row of a table (TRUNCATE); returns how many.
    pub(crate) fn delete_rows(&self, txn: &mut dyn Transaction, def: &TableDef) -> SqlResult<u64> {
        let rows = txn.scan(KeyPrefix::Rows(def.id).range(), false, None)?;
        for (k, _) in &rows {
            txn.delete(k)?;
        }
        Ok(rows.len() as u64)
    }

    /// Allocates the next hidden rowid of a table. The counter lives in memory and starts after
    /// the largest rowid stored when the table is first used in this process, so concurrent
    /// inserters never contend on a shared sequence key.
    pub(crate) fn next_rowid(&self, txn: &dyn Transaction, def: &TableDef) -> SqlResult<i64> {
        let mut rowids = self
            .rowids
            .lock()
            .map_err(|_| SqlError::internal("rowid lock poisoned"))?;
        if let Some(next) = rowids.get_mut(&def.id) {
            *next += 1;
            return Ok(*next);
        }
        let last = txn.scan(KeyPrefix::Rows(def.id).range(), true, Some(1))?;
        let mut start = 0i64;
        if let Some((k, _)) = last.first() {
            // The last key's body is the flipped big-endian rowid after a 0x01 tag.
            let prefix_len = KeyPrefix::Rows(def.id).encode().len();
            if let Some(body) = k.get(prefix_len + 1..prefix_len + 9) {
                let b: [u8; 8] = body
                    .try_into()
                    .map_err(|_| SqlError::corrupt("bad rowid key"))?;
                start = (u64::from_be_bytes(b) ^ (1u64 << 63)) as i64;
            }
        }
        rowids.insert(def.id, start + 1);
        Ok(start + 1)
    }
}

/// Like [`decode_table_row`], but only the columns marked in `needed` are decoded; the
/// others read as NULL.
pub(crate) fn decode_table_columns(
    def: &TableDef,
    bytes: &[u8],
    needed: &[bool],
) -> SqlResult<Vec<Value>> {
    fit_width(def, decode_row_columns(bytes, needed)?)
}

/// Decodes a stored row of `def`, checking its width.
pub(crate) fn decode_table_row(def: &TableDef, bytes: &[u8]) -> SqlResult<Vec<Value>> {
    fit_width(def, decode_row(bytes)?)
}

/// Refuses a row wider than its table; rows written before a column existed read it as NULL.
fn fit_width(def: &TableDef, mut row: Vec<Value>) -> SqlResult<Vec<Value>> {
    if row.len() > def.columns.len() {
        return Err(SqlError::corrupt(format!(
            "row of \"{}\" has too many columns",
            def.name
        )));
    }
    row.resize(def.columns.len(), Value::Null);
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_definitions_round_trip() {
        let def = TableDef {
            id: TableId(16390),
            name: "accounts".into(),
            columns: vec![
                ColumnDef {
                    name: "id".into(),
                    ty: DataType::Int8,
                    not_null: true,
                    default: None,
                },
                ColumnDef {
                    name: "balance".into(),
                    ty: DataType::Numeric {
                        precision: Some(12),
                        scale: Some(2),
                    },
                    not_null: false,
                    default: Some("0".into()),
                },
                ColumnDef {
                    name: "name".into(),
                    ty: DataType::Varchar(Some(20)),
                    not_null: false,
                    default: None,
                },
            ],
            primary_key: vec![0],
        };
        assert_eq!(TableDef::decode(&def.encode()).unwrap(), def);
        let mut bytes = def.encode();
        bytes.push(0);
        assert!(TableDef::decode(&bytes).is_err());
        assert!(TableDef::decode(&bytes[..5]).is_err());
    }
}
