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

/// Version byte of an encoded [`TableDef`]; readers accept 1 and 2 and reject others.
pub const TABLE_DEF_VERSION: u8 = 2; // FROZEN (1: no definition id, checks or indexes)

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

/// A CHECK constraint.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckDef {
    /// Constraint name (PostgreSQL's `<table>_<column>_check` unless named).
    pub name: String,
    /// The boolean expression as SQL text, bound against the table's columns when used.
    pub expr: String,
}

/// A secondary index (also what a UNIQUE constraint is).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDef {
    /// Id (allocated like table ids; the index's OID): entries live under it.
    pub id: u32,
    /// Index name (unique among indexes).
    pub name: String,
    /// Indexes into the table's columns, in index order.
    pub columns: Vec<usize>,
    /// Two rows may not share the indexed values (unless one of them is NULL).
    pub unique: bool,
    /// Created by a UNIQUE constraint (dropped with ALTER TABLE DROP CONSTRAINT, not DROP INDEX).
    pub constraint: bool,
}

/// A table definition.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    /// Id (also the OID clients see); prefixes the table's row keys.
    pub id: TableId,
    /// Key of this definition under [`Key::Table`]: a fresh id for every ALTER TABLE, so a
    /// definition never changes under its key and decoded definitions can be cached by it.
    pub def_id: TableId,
    /// Name (case-folded).
    pub name: String,
    /// Columns in declaration order.
    pub columns: Vec<ColumnDef>,
    /// Indexes into `columns` of the primary key; empty = the table uses a hidden rowid.
    pub primary_key: Vec<usize>,
    /// CHECK constraints.
    pub checks: Vec<CheckDef>,
    /// Secondary indexes (UNIQUE constraints included).
    pub indexes: Vec<IndexDef>,
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

    /// Encoding (version 2; version 1 lacks `def id` and everything after the key, and its
    /// definition id is its table id):
    ///
    /// ```text
    /// version 1B | id u32 BE | def id u32 BE | name str | ncols varint
    ///   | ncols × (name str | type | flags 1B: bit0 NOT NULL, bit1 has default | [default str])
    ///   | npk varint | npk × column index varint
    ///   | nchecks varint | nchecks × (name str | expr str)
    ///   | nindexes varint | nindexes × (id u32 BE | name str | flags 1B: bit0 unique,
    ///     bit1 constraint | ncols varint | ncols × column index varint)
    /// ```
    /// `str` is varint length + UTF-8; `type` is a tag byte plus varint modifiers.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![TABLE_DEF_VERSION];
        out.extend_from_slice(&self.id.0.to_be_bytes());
        out.extend_from_slice(&self.def_id.0.to_be_bytes());
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
        put_varint(&mut out, self.checks.len() as u64);
        for c in &self.checks {
            put_str(&mut out, &c.name);
            put_str(&mut out, &c.expr);
        }
        put_varint(&mut out, self.indexes.len() as u64);
        for ix in &self.indexes {
            out.extend_from_slice(&ix.id.to_be_bytes());
            put_str(&mut out, &ix.name);
            out.push(ix.unique as u8 | ((ix.constraint as u8) << 1));
            put_varint(&mut out, ix.columns.len() as u64);
            for &c in &ix.columns {
                put_varint(&mut out, c as u64);
            }
        }
        out
    }

    /// Decodes [`TableDef::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> SqlResult<TableDef> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != 1 && version != TABLE_DEF_VERSION {
            return Err(SqlError::corrupt(format!(
                "unknown table definition version {version}"
            )));
        }
        let id = TableId(u32::from_be_bytes(r.array()?));
        let def_id = if version >= 2 {
            TableId(u32::from_be_bytes(r.array()?))
        } else {
            id
        };
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
        let mut checks = Vec::new();
        let mut indexes = Vec::new();
        if version >= 2 {
            let n = r.varint()? as usize;
            for _ in 0..n {
                let name = r.string()?;
                let expr = r.string()?;
                checks.push(CheckDef { name, expr });
            }
            let n = r.varint()? as usize;
            for _ in 0..n {
                let id = u32::from_be_bytes(r.array()?);
                let name = r.string()?;
                let flags = r.u8()?;
                let ncols = r.varint()? as usize;
                let mut cols = Vec::with_capacity(ncols.min(32));
                for _ in 0..ncols {
                    let i = r.varint()? as usize;
                    if i >= columns.len() {
                        return Err(SqlError::corrupt("index column out of range"));
                    }
                    cols.push(i);
                }
                indexes.push(IndexDef {
                    id,
                    name,
                    columns: cols,
                    unique: flags & 1 != 0,
                    constraint: flags & 2 != 0,
                });
            }
        }
        if !r.is_empty() {
            return Err(SqlError::corrupt("trailing bytes after table definition"));
        }
        Ok(TableDef {
            id,
            def_id,
            name,
            columns,
            primary_key,
            checks,
            indexes,
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
    /// Sequence values (non-transactional).
    pub(crate) sequences: Arc<crate::sequence::Sequences>,
    /// CHECK constraints bound against their table, by definition id (immutable per id).
    checks: RwLock<HashMap<TableId, Arc<Vec<crate::expr::Expr>>>>,
}

impl Catalog {
    /// Loads ids from storage so new tables, definitions, indexes and sequences never reuse
    /// an id (they share one counter, like PostgreSQL's OIDs).
    pub(crate) fn load(txn: &dyn Transaction, db: Arc<gnomon_mvcc::Db>) -> SqlResult<Catalog> {
        let mut max_id = FIRST_TABLE_ID - 1;
        let mut defs = HashMap::new();
        for (k, v) in txn.scan(KeyPrefix::Table.range(), false, None)? {
            if let Key::Table(id) = Key::decode(&k)? {
                let def = TableDef::decode(&v)?;
                max_id = max_id.max(id.0).max(def.id.0);
                for ix in &def.indexes {
                    max_id = max_id.max(ix.id);
                }
                defs.insert(id, Arc::new(def));
            }
        }
        for seq in crate::sequence::all(txn)? {
            max_id = max_id.max(seq.id);
        }
        // Sequence values outlive dropped sequences: their ids count too.
        let values = (
            std::ops::Bound::Included(Key::SequenceValue(0).encode()),
            std::ops::Bound::Included(Key::SequenceValue(u32::MAX).encode()),
        );
        for (k, _) in txn.scan(values, true, Some(1))? {
            if let Key::SequenceValue(id) = Key::decode(&k)? {
                max_id = max_id.max(id);
            }
        }
        Ok(Catalog {
            defs: RwLock::new(defs),
            version: AtomicU64::new(1),
            ddl_in_flight: AtomicU64::new(0),
            next_table_id: AtomicU32::new(max_id + 1),
            rowids: Mutex::new(HashMap::new()),
            sequences: Arc::new(crate::sequence::Sequences::new(db)),
            checks: RwLock::new(HashMap::new()),
        })
    }

    /// A fresh object id (table, definition, index or sequence); never reused.
    pub(crate) fn allocate_id(&self) -> u32 {
        self.next_table_id.fetch_add(1, Ordering::AcqRel)
    }

    /// The CHECK constraints of `def` bound against its columns, bound once per definition.
    pub(crate) fn bound_checks(
        &self,
        def: &TableDef,
        bind: impl FnOnce() -> SqlResult<Vec<crate::expr::Expr>>,
    ) -> SqlResult<Arc<Vec<crate::expr::Expr>>> {
        if let Ok(c) = self.checks.read() {
            if let Some(b) = c.get(&def.def_id) {
                return Ok(b.clone());
            }
        }
        let bound = Arc::new(bind()?);
        if let Ok(mut c) = self.checks.write() {
            c.insert(def.def_id, bound.clone());
        }
        Ok(bound)
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
    ///
    /// `dropped` are definition ids no longer current (dropped or replaced by ALTER TABLE);
    /// their cached definitions are evicted. NB: rowid counters are kept (a dropped table's
    /// id is never reused, and an altered table keeps its id and its counter).
    pub(crate) fn ddl_committed(&self, dropped: &[TableId]) {
        if let Ok(mut defs) = self.defs.write() {
            for id in dropped {
                defs.remove(id);
            }
        }
        if let Ok(mut checks) = self.checks.write() {
            for id in dropped {
                checks.remove(id);
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
        if name == "pg_locks" {
            return Ok(Some(crate::locking::pg_locks_def()));
        }
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
        let id = TableId(self.allocate_id());
        // NB: the definition id differs from the table id even for a new table, so evicting
        // a replaced definition never touches state keyed by the table id.
        let def_id = TableId(self.allocate_id());
        let def = TableDef {
            id,
            def_id,
            name,
            columns,
            primary_key,
            checks: vec![],
            indexes: vec![],
        };
        self.write_def(txn, &def)?;
        Ok(Arc::new(def))
    }

    /// Writes `def` under its definition id and points its name at it.
    pub(crate) fn write_def(&self, txn: &mut dyn Transaction, def: &TableDef) -> SqlResult<()> {
        txn.put(
            &Key::TableName(def.name.clone()).encode(),
            Bytes::copy_from_slice(&def.def_id.0.to_be_bytes()),
        )?;
        txn.put(&Key::Table(def.def_id).encode(), Bytes::from(def.encode()))
    }

    /// ALTER TABLE: stores `new` (same table id as `old`, maybe another name) under a fresh
    /// definition id and retires `old`'s. Returns the stored definition; the caller records
    /// `old.def_id` as dropped so caches evict it at commit.
    pub(crate) fn replace_table(
        &self,
        txn: &mut dyn Transaction,
        old: &TableDef,
        mut new: TableDef,
    ) -> SqlResult<Arc<TableDef>> {
        new.def_id = TableId(self.allocate_id());
        if new.name != old.name {
            txn.delete(&Key::TableName(old.name.clone()).encode())?;
        }
        txn.delete(&Key::Table(old.def_id).encode())?;
        self.write_def(txn, &new)?;
        Ok(Arc::new(new))
    }

    /// Deletes a table's catalog entries and all of its rows in `txn`.
    pub(crate) fn drop_table(&self, txn: &mut dyn Transaction, def: &TableDef) -> SqlResult<()> {
        self.delete_rows(txn, def)?;
        for ix in &def.indexes {
            txn.delete(&Key::IndexName(ix.name.clone()).encode())?;
        }
        txn.delete(&Key::TableName(def.name.clone()).encode())?;
        txn.delete(&Key::Table(def.def_id).encode())?;
        Ok(())
    }

    /// Deletes every row of a table (TRUNCATE) and its index entries; returns how many rows.
    pub(crate) fn delete_rows(&self, txn: &mut dyn Transaction, def: &TableDef) -> SqlResult<u64> {
        let rows = txn.scan(KeyPrefix::Rows(def.id).range(), false, None)?;
        for (k, _) in &rows {
            txn.delete(k)?;
        }
        if !def.indexes.is_empty() {
            for (k, _) in txn.scan(KeyPrefix::Indexes(def.id).range(), false, None)? {
                txn.delete(&k)?;
            }
        }
        Ok(rows.len() as u64)
    }

    /// Every table `txn` sees, by name.
    pub(crate) fn all_tables(&self, txn: &dyn Transaction) -> SqlResult<Vec<Arc<TableDef>>> {
        let mut out = Vec::new();
        for (k, _) in txn.scan(KeyPrefix::TableName.range(), false, None)? {
            if let Key::TableName(name) = Key::decode(&k)? {
                if let Some(def) = self.lookup(txn, &name)? {
                    out.push(def);
                }
            }
        }
        Ok(out)
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
            def_id: TableId(16391),
            checks: vec![CheckDef {
                name: "accounts_balance_check".into(),
                expr: "balance >= 0".into(),
            }],
            indexes: vec![IndexDef {
                id: 16392,
                name: "accounts_name_key".into(),
                columns: vec![2, 0],
                unique: true,
                constraint: true,
            }],
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
