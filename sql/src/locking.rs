//! Locking in SQL: the key → table/partition mapping the lock manager uses, which table lock
//! each statement takes, `SELECT ... FOR <row mode> [NOWAIT | SKIP LOCKED]`, `LOCK TABLE`, the
//! `pg_locks` view, and the lock errors' SQLSTATEs and messages.
//!
//! Statement → table lock (as PostgreSQL; held to the end of the transaction):
//!
//! ```text
//!   SELECT                          ACCESS SHARE on every table read
//!   SELECT ... FOR <row mode>       ROW SHARE on the locked table, row locks on returned rows
//!   INSERT / UPDATE / DELETE        ROW EXCLUSIVE on the target (ACCESS SHARE on a source)
//!   CREATE/DROP/ALTER/TRUNCATE      ACCESS EXCLUSIVE
//!   LOCK TABLE t IN <mode> MODE     <mode> (default ACCESS EXCLUSIVE), only inside a block
//! ```
//!
//! NB: sqlparser 0.64 knows only `FOR UPDATE` and `FOR SHARE`. [`parse_sql`] rewrites
//! `FOR KEY SHARE` and `FOR NO KEY UPDATE` (found with the tokenizer, so text inside strings or
//! comments is never touched) into `FOR SHARE` / `FOR UPDATE` with a marker object name in the
//! `OF` clause, which [`row_lock_of`] decodes. It also rewrites MERGE's `INSERT DEFAULT VALUES`
//! (which sqlparser does not parse) into `INSERT VALUES (<marker>)`, which the MERGE binder
//! reads as a row of defaults ([`MERGE_DEFAULT_VALUES_MARK`]).

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use gnomon_mvcc::{
    LockHierarchy, LockTarget, LockWait, MvccError, PartitionId, RelId, RowMode, TableMode,
};
use sqlparser::ast;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::catalog::{ColumnDef, TableDef};
use crate::encoding::{encode_row, DatabaseId, Key, KeyPrefix, TableId};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::types::{DataType, Value};

/// Row keys of tables are `0x10 | table id u32 BE | primary key` (see `encoding`). A row of
/// a partition of a partitioned table belongs to the parent, in the partition whose
/// [`PartitionId`] is the partition's table id: `(parent, partition c, row)`. Rows of a plain
/// table get the lock manager's hash partitions.
#[derive(Default)]
pub(crate) struct SqlHierarchy {
    /// Partition table id -> parent table id. Entries are added when a partition is created
    /// or attached (or found at start) and removed when one is detached (both once the DDL
    /// has committed; until then the DDL holds ACCESS EXCLUSIVE on both tables).
    parents: std::sync::RwLock<std::collections::HashMap<u32, u32>>,
    /// Whether `parents` has entries (lets plain tables skip the map).
    any: std::sync::atomic::AtomicBool,
}

impl SqlHierarchy {
    /// Records that rows of table `child` belong to partition `child` of table `parent`.
    pub(crate) fn register(&self, child: TableId, parent: TableId) {
        if let Ok(mut m) = self.parents.write() {
            m.insert(child.0, parent.0);
            self.any.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Rows of table `child` lock as its own table's again (DETACH PARTITION).
    pub(crate) fn unregister(&self, child: TableId) {
        if let Ok(mut m) = self.parents.write() {
            m.remove(&child.0);
        }
    }

    fn parent_of(&self, table: u32) -> Option<u32> {
        if !self.any.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.parents.read().ok()?.get(&table).copied()
    }
}

fn table_of_key(key: &[u8]) -> Option<u32> {
    match key {
        [0x10, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

impl LockHierarchy for SqlHierarchy {
    fn relation_of(&self, key: &[u8]) -> Option<RelId> {
        let table = table_of_key(key)?;
        Some(RelId(self.parent_of(table).unwrap_or(table)))
    }

    fn partition_of(&self, rel: RelId, key: &[u8], hash_partitions: u32) -> PartitionId {
        match table_of_key(key) {
            Some(table) if table != rel.0 => PartitionId(table),
            _ => {
                let mut h: u32 = 0x811c_9dc5;
                for &b in key {
                    h ^= b as u32;
                    h = h.wrapping_mul(0x0100_0193);
                }
                PartitionId(h % hash_partitions.max(1))
            }
        }
    }
}

/// Installs a [`SqlHierarchy`] in the database's lock manager and returns it (the first
/// engine opened on a database installs it; the lock manager keeps the first one).
pub(crate) fn install(db: &gnomon_mvcc::Db) -> Arc<SqlHierarchy> {
    let h = Arc::new(SqlHierarchy::default());
    db.lock_manager().set_hierarchy(h.clone());
    h
}

const KEY_SHARE_MARK: &str = "__gnomon_for_key_share";
const NO_KEY_UPDATE_MARK: &str = "__gnomon_for_no_key_update";
/// The one identifier of the VALUES row that MERGE's `INSERT DEFAULT VALUES` is parsed as.
pub(crate) const MERGE_DEFAULT_VALUES_MARK: &str = "__gnomon_merge_default_values";

/// Parses PostgreSQL-dialect SQL, accepting `FOR KEY SHARE`, `FOR NO KEY UPDATE` and MERGE's
/// `INSERT DEFAULT VALUES`.
pub(crate) fn parse_sql(sql: &str) -> Result<Vec<ast::Statement>, ParserError> {
    let b = sql.as_bytes();
    let rewritten = if b.windows(3).any(|w| w.eq_ignore_ascii_case(b"key"))
        || b.windows(7).any(|w| w.eq_ignore_ascii_case(b"default"))
    {
        rewrite_for_parser(sql)
    } else {
        None
    };
    Parser::parse_sql(&PostgreSqlDialect {}, rewritten.as_deref().unwrap_or(sql))
}

/// Byte offset of a tokenizer location (1-based line and character column).
fn byte_offset(sql: &str, line: u64, column: u64) -> Option<usize> {
    let mut offset = 0usize;
    for (i, l) in sql.split_inclusive('\n').enumerate() {
        if i as u64 + 1 == line {
            let mut chars = l.char_indices();
            let mut at = l.len();
            for _ in 1..column {
                chars.next()?;
            }
            if let Some((b, _)) = chars.next() {
                at = b;
            }
            return Some(offset + at);
        }
        offset += l.len();
    }
    None
}

fn rewrite_for_parser(sql: &str) -> Option<String> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .ok()?;
    let words: Vec<(usize, String)> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_)))
        .map(|(i, t)| {
            let w = match &t.token {
                Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
                _ => String::new(),
            };
            (i, w)
        })
        .collect();
    // (start byte, end byte, replacement)
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let span = |i: usize| -> Option<(usize, usize)> {
        let s = &tokens[i].span;
        Some((
            byte_offset(sql, s.start.line, s.start.column)?,
            byte_offset(sql, s.end.line, s.end.column)?,
        ))
    };
    let mut k = 0;
    while k < words.len() {
        let w = |j: usize| words.get(j).map(|x| x.1.as_str()).unwrap_or("");
        if w(k) == "INSERT" && w(k + 1) == "DEFAULT" && w(k + 2) == "VALUES" {
            // Only MERGE has INSERT directly followed by DEFAULT VALUES.
            let (start, _) = span(words[k + 1].0)?;
            let (_, end) = span(words[k + 2].0)?;
            edits.push((start, end, format!("VALUES ({MERGE_DEFAULT_VALUES_MARK})")));
            k += 3;
            continue;
        }
        if w(k) == "FOR" {
            let (first, last, mark, len) = if w(k + 1) == "KEY" && w(k + 2) == "SHARE" {
                (k + 1, k + 2, KEY_SHARE_MARK, "SHARE")
            } else if w(k + 1) == "NO" && w(k + 2) == "KEY" && w(k + 3) == "UPDATE" {
                (k + 1, k + 3, NO_KEY_UPDATE_MARK, "UPDATE")
            } else {
                k += 1;
                continue;
            };
            let (start, _) = span(words[first].0)?;
            let has_of = w(last + 1) == "OF";
            let (end_tok, suffix) = if has_of {
                (words[last + 1].0, format!(" OF {mark}."))
            } else {
                (words[last].0, format!(" OF {mark}"))
            };
            let (_, end) = span(end_tok)?;
            edits.push((start, end, format!("{len}{suffix}")));
            k = last + 1;
            continue;
        }
        k += 1;
    }
    if edits.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(sql.len() + 64);
    let mut at = 0;
    for (s, e, r) in edits {
        out.push_str(sql.get(at..s)?);
        out.push_str(&r);
        at = e;
    }
    out.push_str(sql.get(at..)?);
    Some(out)
}

/// The row lock a `FOR ...` clause asks for, and what to do when a row is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowLockSpec {
    pub mode: RowMode,
    pub wait: LockWait,
}

/// Decodes one locking clause (see the module docs for the marker).
pub(crate) fn row_lock_of(c: &ast::LockClause) -> SqlResult<RowLockSpec> {
    let marker =
        c.of.as_ref()
            .and_then(|n| n.0.first())
            .and_then(|p| p.as_ident())
            .map(|i| i.value.as_str());
    let mode = match (c.lock_type, marker) {
        (ast::LockType::Share, Some(KEY_SHARE_MARK)) => RowMode::KeyShare,
        (ast::LockType::Update, Some(NO_KEY_UPDATE_MARK)) => RowMode::NoKeyUpdate,
        (ast::LockType::Share, _) => RowMode::Share,
        (ast::LockType::Update, _) => RowMode::Update,
    };
    let wait = match c.nonblock {
        None => LockWait::Block,
        Some(ast::NonBlock::Nowait) => LockWait::NoWait,
        Some(ast::NonBlock::SkipLocked) => LockWait::SkipLocked,
    };
    Ok(RowLockSpec { mode, wait })
}

/// The table mode of `LOCK TABLE ... IN <mode> MODE` (default ACCESS EXCLUSIVE).
pub(crate) fn table_mode_of(m: Option<&ast::LockTableMode>) -> TableMode {
    use ast::LockTableMode as L;
    match m {
        Some(L::AccessShare) => TableMode::AccessShare,
        Some(L::RowShare) => TableMode::RowShare,
        Some(L::RowExclusive) => TableMode::RowExclusive,
        Some(L::ShareUpdateExclusive) => TableMode::ShareUpdateExclusive,
        Some(L::Share) => TableMode::Share,
        Some(L::ShareRowExclusive) => TableMode::ShareRowExclusive,
        Some(L::Exclusive) => TableMode::Exclusive,
        Some(L::AccessExclusive) | None => TableMode::AccessExclusive,
    }
}

/// Maps a lock failure to PostgreSQL's error, naming the relation `name`.
pub(crate) fn lock_error(e: MvccError, name: &str) -> SqlError {
    match e {
        MvccError::LockNotAvailable { target } => SqlError::new(
            SqlState::LOCK_NOT_AVAILABLE,
            match target {
                // A partition lock is only ever taken for rows (intention or escalated):
                // what the client asked for is a row.
                LockTarget::Row { .. }
                | LockTarget::Object(gnomon_mvcc::ObjectTag::Partition(..)) => {
                    format!("could not obtain lock on row in relation \"{name}\"")
                }
                LockTarget::Object(_) => format!("could not obtain lock on relation \"{name}\""),
            },
        ),
        other => other.into(),
    }
}

/// DDL takes its table lock (ACCESS EXCLUSIVE; SHARE for CREATE INDEX), held to the end of the
/// transaction. `pg_locks` cannot be changed.
pub(crate) fn lock_for_ddl(
    txn: &mut gnomon_mvcc::Txn,
    def: &TableDef,
    mode: TableMode,
) -> SqlResult<()> {
    if def.id == PG_LOCKS_ID {
        return Err(SqlError::new(
            SqlState::FEATURE_NOT_SUPPORTED,
            "cannot change view \"pg_locks\"",
        ));
    }
    txn.lock_table(RelId(def.id.0), mode, LockWait::Block)
        .map(|_| ())
        .map_err(|e| lock_error(e, &def.name))
}

/// The id of the `pg_locks` view (never a real table: ids of tables grow from 16384).
pub(crate) const PG_LOCKS_ID: TableId = TableId(12000);

/// The `pg_locks` view's columns: PostgreSQL 15's, plus `escalated` (Gnomon: a partition or
/// table lock that replaced row locks).
pub(crate) fn pg_locks_def() -> Arc<TableDef> {
    let col = |name: &str, ty: DataType| ColumnDef {
        name: name.into(),
        ty,
        not_null: false,
        default: None,
        identity: Default::default(),
        generated: None,
    };
    Arc::new(TableDef {
        id: PG_LOCKS_ID,
        def_id: PG_LOCKS_ID,
        name: "pg_locks".into(),
        checks: vec![],
        indexes: vec![],
        foreign_keys: vec![],
        referenced_by: vec![],
        partitioning: Default::default(),
        columns: vec![
            col("locktype", DataType::Text),
            col("database", DataType::Int8),
            col("relation", DataType::Int8),
            col("page", DataType::Int4),
            col("tuple", DataType::Int2),
            col("virtualxid", DataType::Text),
            col("transactionid", DataType::Int8),
            col("classid", DataType::Int8),
            col("objid", DataType::Int8),
            col("objsubid", DataType::Int2),
            col("virtualtransaction", DataType::Text),
            col("pid", DataType::Int4),
            col("mode", DataType::Text),
            col("granted", DataType::Bool),
            col("fastpath", DataType::Bool),
            col("waitstart", DataType::Timestamptz),
            col("escalated", DataType::Bool),
        ],
        primary_key: vec![],
    })
}

/// Microseconds since 2000-01-01 (PostgreSQL's epoch).
fn pg_micros(t: std::time::SystemTime) -> i64 {
    const UNIX_TO_PG_US: i64 = 946_684_800_000_000;
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
        - UNIX_TO_PG_US
}

/// The database of every table `txn` sees, in any database (the lock manager knows tables
/// by id only): read from the name keys of all databases and the first bytes of each
/// definition (`version 1B | table id u32 BE | ...`, see [`TableDef::encode`]).
fn table_databases(
    txn: &dyn crate::storage::Transaction,
) -> SqlResult<std::collections::HashMap<u32, DatabaseId>> {
    let mut out = std::collections::HashMap::new();
    for (k, v) in txn.scan(KeyPrefix::AllTableNames.range(), false, None)? {
        let (Key::TableName(db, _), Ok(def_id)) =
            (Key::decode(&k)?, <[u8; 4]>::try_from(v.as_ref()))
        else {
            continue;
        };
        let def_key = Key::Table(TableId(u32::from_be_bytes(def_id))).encode();
        if let Some(id) = txn
            .get(&def_key)?
            .and_then(|d| d.get(1..5).and_then(|b| <[u8; 4]>::try_from(b).ok()))
        {
            out.insert(u32::from_be_bytes(id), db);
        }
    }
    Ok(out)
}

/// The rows of `pg_locks` as stored rows (hidden row ids as keys), ready for the scan path.
/// `database` is the OID of the locked table's database (NULL when `txn` cannot see the
/// table: one created by a transaction not committed for it).
/// NB: `pid` is NULL (sessions are not registered with the lock manager); the transaction id
/// is in `virtualtransaction` (`1/<id>`).
pub(crate) fn pg_locks_rows(
    def: &TableDef,
    txn: &dyn crate::storage::Transaction,
) -> SqlResult<Vec<(Vec<u8>, Bytes)>> {
    let databases = table_databases(txn)?;
    let mut view = txn.lock_view();
    view.sort_by_key(|l| (!l.granted, l.relation, l.locktype, l.txn));
    Ok(view
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let row = vec![
                Value::Text(l.locktype.into()),
                l.relation
                    .and_then(|r| databases.get(&r.0))
                    .map(|d| Value::Int8(d.0 as i64))
                    .unwrap_or(Value::Null),
                l.relation
                    .map(|r| Value::Int8(r.0 as i64))
                    .unwrap_or(Value::Null),
                l.partition
                    .map(|p| Value::Int4(p.0 as i32))
                    .unwrap_or(Value::Null),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Text(format!("1/{}", l.txn.0)),
                Value::Null,
                Value::Text(l.mode.into()),
                Value::Bool(l.granted),
                Value::Bool(false),
                l.wait_start
                    .map(|t| Value::Timestamptz(pg_micros(t)))
                    .unwrap_or(Value::Null),
                Value::Bool(l.escalated),
            ];
            (def.rowid_key(i as i64 + 1), Bytes::from(encode_row(&row)))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_of(sql: &str) -> RowLockSpec {
        let stmts = parse_sql(sql).unwrap();
        let ast::Statement::Query(q) = &stmts[0] else {
            panic!("not a query")
        };
        row_lock_of(&q.locks[0]).unwrap()
    }

    #[test]
    fn all_four_row_modes_and_both_wait_policies_parse() {
        use LockWait::*;
        use RowMode::*;
        let cases = [
            ("SELECT * FROM t FOR UPDATE", Update, Block),
            (
                "SELECT * FROM t for no  key\nupdate NOWAIT",
                NoKeyUpdate,
                NoWait,
            ),
            ("SELECT * FROM t FOR SHARE SKIP LOCKED", Share, SkipLocked),
            ("SELECT * FROM t FOR KEY SHARE", KeyShare, Block),
            (
                "SELECT * FROM t FOR KEY SHARE OF t SKIP LOCKED",
                KeyShare,
                SkipLocked,
            ),
        ];
        for (sql, mode, wait) in cases {
            assert_eq!(lock_of(sql), RowLockSpec { mode, wait }, "{sql}");
        }
    }

    #[test]
    fn the_rewrite_leaves_strings_comments_and_identifiers_alone() {
        let sql = "SELECT 'for key share', \"key\" FROM t -- for no key update\n";
        assert_eq!(rewrite_for_parser(sql), None);
        let sql = "SELECT 'é' FROM t WHERE k = 'x' FOR KEY SHARE";
        assert_eq!(
            rewrite_for_parser(sql).unwrap(),
            format!("SELECT 'é' FROM t WHERE k = 'x' FOR SHARE OF {KEY_SHARE_MARK}")
        );
    }

    #[test]
    fn merge_insert_default_values_becomes_the_marker_row() {
        let sql =
            "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN insert default  values";
        assert_eq!(
            rewrite_for_parser(sql).unwrap(),
            format!(
                "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN insert VALUES ({MERGE_DEFAULT_VALUES_MARK})"
            )
        );
        assert_eq!(rewrite_for_parser("INSERT INTO t DEFAULT VALUES"), None);
        assert_eq!(rewrite_for_parser("SELECT 'insert default values'"), None);
    }

    #[test]
    fn row_keys_map_to_their_table() {
        let h = SqlHierarchy::default();
        assert_eq!(
            h.relation_of(&[0x10, 0, 0, 0x40, 0, 1, 2]),
            Some(RelId(16384))
        );
        assert_eq!(h.relation_of(&[0x05, 0, 0, 0x40, 0]), None);
        assert_eq!(h.relation_of(&[0x10, 0]), None);
    }
}
