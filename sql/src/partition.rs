//! Declarative partitioning: `CREATE TABLE p (...) PARTITION BY RANGE | LIST | HASH (cols)`,
//! `CREATE TABLE c PARTITION OF p FOR VALUES ... | DEFAULT`, routing rows to partitions,
//! partition pruning, and what the lock manager sees as a table's partitions.
//!
//! A partitioned table (the *parent*) stores no rows. Each partition is an ordinary table
//! with its own table id (so its rows are one key range, `SELECT FROM c` works as for any
//! table) whose columns, primary key, CHECKs and UNIQUE constraints are copies of the
//! parent's. The metadata lives in both definitions ([`Partitioning`], stored in the
//! [`TableDef`]): the parent holds the key and its partitions' names, each partition holds
//! its parent's name and its bound. Adding or dropping a partition writes a new parent
//! definition, so cached plans over the parent are re-bound (catalog invariant 4).
//!
//! ```text
//!   p  (key: RANGE (k), partitions: [p1, p2, pd])       no rows
//!   ├─ p1  FOR VALUES FROM (MINVALUE) TO (10)            rows 0x10 <p1 id> <pk>
//!   ├─ p2  FOR VALUES FROM (10) TO (20)                  rows 0x10 <p2 id> <pk>
//!   └─ pd  DEFAULT                                       rows 0x10 <pd id> <pk>
//!
//!   lock hierarchy:  Relation(p) ── Partition(p, p1 id) ── row keys of p1
//!                                └─ Partition(p, p2 id) ── row keys of p2 ...
//! ```
//!
//! ## Semantics (PostgreSQL 15's)
//!
//! 1. A row goes to the partition whose bound contains its key; else to the DEFAULT partition;
//!    else the statement fails with 23514 `no partition of relation "p" found for row`.
//!    RANGE bounds are `[from, to)` compared column by column (MINVALUE / MAXVALUE compare
//!    below / above everything); a NULL in a RANGE key fits only the DEFAULT partition.
//!    LIST partitions name values (NULL allowed). HASH partitions take the rows whose key
//!    hash modulo `modulus` is `remainder`.
//! 2. Writing a partition directly checks its bound (23514 `new row for relation "c"
//!    violates partition constraint`). An UPDATE through the parent that changes the key
//!    moves the row: delete from the old partition, insert into the new one.
//! 3. Bounds of partitions of one parent never overlap (42P17), checked at CREATE and at
//!    ATTACH.
//! 4. A primary key, UNIQUE constraint or unique index of a partitioned table includes every
//!    key column (0A000), so uniqueness per partition is uniqueness of the parent. An index
//!    of a partitioned table is stored in the parent's definition (it holds no entries) and
//!    is one index per partition: CREATE INDEX builds it on every partition (a partition's
//!    index on the same columns with the same uniqueness serves instead), CREATE ... PARTITION
//!    OF and ATTACH give it to the new partition, DROP INDEX of the parent's drops the
//!    partitions' and DROP INDEX of a partition's is refused (2BP01).
//! 5. Pruning only narrows which partitions are read: each partition's rows are filtered
//!    by the whole WHERE clause again (the SQL layer's invariant 5). Constants prune at
//!    plan time (EXPLAIN shows the survivors under `Append`); parameters of prepared
//!    statements prune again at execution.
//! 6. `ALTER TABLE p ATTACH PARTITION t FOR VALUES ...` turns the plain table `t` into a
//!    partition after PostgreSQL's checks (bound, columns 42804, overlap 42P17, CHECKs,
//!    `t`'s rows and the DEFAULT partition's rows 23514), adding the parent's primary key
//!    and indexes; `DETACH PARTITION t` makes it a plain table with its rows. Both lock the
//!    parent and `t` ACCESS EXCLUSIVE and write a new parent definition (cached plans and
//!    prepared statements re-plan); the lock manager learns the new parent of `t`'s rows when
//!    the DDL commits.
//! 7. `ALTER TABLE p ADD PRIMARY KEY (cols)` (cols holding the partition key, else 0A000)
//!    gives every partition the key (re-keyed under a new table id, which the lock manager
//!    learns at commit, as for ATTACH) unless it has it already; another primary key on a
//!    partition is 42P16. MERGE into `p` reads and writes its partitions like UPDATE and
//!    INSERT do (`query/merge.rs`).
//!
//! ## Deliberately left out
//!
//! Sub-partitioning (a partition that is itself partitioned), `SELECT ... FOR UPDATE` of a
//! partitioned table, ATTACH of a table whose columns are in another order than
//! the parent's (rows are stored in the parent's column order), DETACH ... CONCURRENTLY (all
//! 0A000). Which partition index stands for a parent index is not recorded: it is the
//! partition's first index on the same columns with the same uniqueness. A prepared
//! transaction (2PC) that attaches or detaches leaves the lock manager's view of the table
//! as it was until a restart. HASH partitions place integer, boolean, date and timestamp
//! keys exactly as PostgreSQL does (its lookup3-based extended hashes with the partition
//! seed, tested against PostgreSQL 15's placements); other key types (text, numeric, ...)
//! use FNV-1a over the key's memcomparable encoding: the same rows on every Gnomon node and
//! after restarts, but not PostgreSQL's placement.

use std::cmp::Ordering;
use std::sync::Arc;

use sqlparser::ast;

use gnomon_mvcc::TableMode;

use crate::catalog::{decode_table_row, Catalog, IndexDef, TableDef};
use crate::encoding::{
    decode_row, encode_key_value, encode_row, put_str, put_varint, KeyPrefix, Reader,
};
use crate::error::{Notice, SqlError, SqlResult, SqlState};
use crate::expr::{cast, BinOp, Expr};
use crate::query::{choose_access, object_name, Access, Binder, SessionInfo, Source};
use crate::session::{ActiveTxn, SqlEngine};
use crate::storage::Transaction;
use crate::types::{compare_values, DataType, Value};

/// How a partitioned table splits its rows (`pg_partitioned_table.partstrat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `PARTITION BY RANGE`.
    Range,
    /// `PARTITION BY LIST`.
    List,
    /// `PARTITION BY HASH`.
    Hash,
}

impl Strategy {
    /// PostgreSQL's one-letter code (`pg_partitioned_table.partstrat`). FROZEN: stored.
    pub fn code(self) -> u8 {
        match self {
            Strategy::Range => b'r',
            Strategy::List => b'l',
            Strategy::Hash => b'h',
        }
    }

    fn from_code(c: u8) -> SqlResult<Strategy> {
        Ok(match c {
            b'r' => Strategy::Range,
            b'l' => Strategy::List,
            b'h' => Strategy::Hash,
            _ => return Err(SqlError::corrupt("unknown partition strategy")),
        })
    }

    /// The lower-case name PostgreSQL uses in messages and `pg_get_partkeydef`.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Range => "range",
            Strategy::List => "list",
            Strategy::Hash => "hash",
        }
    }
}

/// The partition key of a partitioned table.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionKey {
    /// RANGE, LIST or HASH.
    pub strategy: Strategy,
    /// Key columns (indexes into the table's columns), in key order.
    pub columns: Vec<usize>,
}

/// One value of a RANGE bound.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    /// `MINVALUE`: below every value.
    MinValue,
    /// A value of the key column's type.
    Value(Value),
    /// `MAXVALUE`: above every value.
    MaxValue,
}

/// The rows a partition accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum PartitionBound {
    /// `DEFAULT`: rows no other partition accepts.
    Default,
    /// `FOR VALUES IN (...)` (NULL allowed).
    List(Vec<Value>),
    /// `FOR VALUES FROM (...) TO (...)`: `from` inclusive, `to` exclusive.
    Range {
        /// Lower bound, one datum per key column.
        from: Vec<Datum>,
        /// Upper bound, one datum per key column.
        to: Vec<Datum>,
    },
    /// `FOR VALUES WITH (MODULUS m, REMAINDER r)`.
    Hash {
        /// Modulus (> 0).
        modulus: u32,
        /// Remainder (< modulus).
        remainder: u32,
    },
}

/// Partition metadata of one table definition (empty for a plain table).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Partitioning {
    /// Set on a partitioned table: its key.
    pub key: Option<PartitionKey>,
    /// A partitioned table's partitions, by name, in creation order.
    pub children: Vec<String>,
    /// Set on a partition: its parent's name and its bound.
    pub of: Option<(String, PartitionBound)>,
}

fn invalid_object(msg: String) -> SqlError {
    SqlError::new(SqlState::INVALID_OBJECT_DEFINITION, msg)
}

fn invalid_table(msg: impl Into<String>) -> SqlError {
    SqlError::new(SqlState::INVALID_TABLE_DEFINITION, msg)
}

impl Partitioning {
    /// True when nothing is set (a plain table).
    pub fn is_empty(&self) -> bool {
        self.key.is_none() && self.of.is_none() && self.children.is_empty()
    }

    /// Encoding (the payload of the table definition's partitioning section):
    ///
    /// ```text
    /// flags 1B: bit0 key, bit1 of
    ///   [key]  strategy 1B ('r' | 'l' | 'h') | ncols varint | ncols × column varint
    ///          | nchildren varint | nchildren × name str
    ///   [of]   parent str | bound kind 1B (0 default, 1 list, 2 range, 3 hash)
    ///          list:  values (row bytes, varint length first)
    ///          range: n varint | n × kind 1B (0 MINVALUE, 1 value, 2 MAXVALUE) for from,
    ///                 then for to | from values (row bytes) | to values (row bytes);
    ///                 MINVALUE / MAXVALUE hold NULL in the value rows
    ///          hash:  modulus varint | remainder varint
    /// ```
    /// Row bytes are the row value format of `encoding` (self-describing values).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.key.is_some() as u8 | ((self.of.is_some() as u8) << 1));
        if let Some(k) = &self.key {
            out.push(k.strategy.code());
            put_varint(out, k.columns.len() as u64);
            for &c in &k.columns {
                put_varint(out, c as u64);
            }
            put_varint(out, self.children.len() as u64);
            for c in &self.children {
                put_str(out, c);
            }
        }
        if let Some((parent, bound)) = &self.of {
            put_str(out, parent);
            let put_row = |out: &mut Vec<u8>, vals: &[Value]| {
                let b = encode_row(vals);
                put_varint(out, b.len() as u64);
                out.extend_from_slice(&b);
            };
            match bound {
                PartitionBound::Default => out.push(0),
                PartitionBound::List(vals) => {
                    out.push(1);
                    put_row(out, vals);
                }
                PartitionBound::Range { from, to } => {
                    out.push(2);
                    put_varint(out, from.len() as u64);
                    for d in from.iter().chain(to) {
                        out.push(match d {
                            Datum::MinValue => 0,
                            Datum::Value(_) => 1,
                            Datum::MaxValue => 2,
                        });
                    }
                    let vals = |ds: &[Datum]| -> Vec<Value> {
                        ds.iter()
                            .map(|d| match d {
                                Datum::Value(v) => v.clone(),
                                _ => Value::Null,
                            })
                            .collect()
                    };
                    put_row(out, &vals(from));
                    put_row(out, &vals(to));
                }
                PartitionBound::Hash { modulus, remainder } => {
                    out.push(3);
                    put_varint(out, *modulus as u64);
                    put_varint(out, *remainder as u64);
                }
            }
        }
    }

    /// Decodes [`Partitioning::encode`]'s output; `ncols` is the table's column count.
    pub(crate) fn decode(r: &mut Reader<'_>, ncols: usize) -> SqlResult<Partitioning> {
        let flags = r.u8()?;
        let mut p = Partitioning::default();
        if flags & 1 != 0 {
            let strategy = Strategy::from_code(r.u8()?)?;
            let n = r.varint()? as usize;
            let mut columns = Vec::with_capacity(n.min(32));
            for _ in 0..n {
                let c = r.varint()? as usize;
                if c >= ncols {
                    return Err(SqlError::corrupt("partition key column out of range"));
                }
                columns.push(c);
            }
            p.key = Some(PartitionKey { strategy, columns });
            let n = r.varint()? as usize;
            for _ in 0..n {
                p.children.push(r.string()?);
            }
        }
        if flags & 2 != 0 {
            let parent = r.string()?;
            let row = |r: &mut Reader<'_>| -> SqlResult<Vec<Value>> {
                let len = r.varint()? as usize;
                decode_row(r.bytes(len)?)
            };
            let bound = match r.u8()? {
                0 => PartitionBound::Default,
                1 => PartitionBound::List(row(r)?),
                2 => {
                    let n = r.varint()? as usize;
                    let mut kinds = Vec::with_capacity((2 * n).min(64));
                    for _ in 0..2 * n {
                        kinds.push(r.u8()?);
                    }
                    let fv = row(r)?;
                    let tv = row(r)?;
                    if fv.len() != n || tv.len() != n {
                        return Err(SqlError::corrupt("bad range partition bound"));
                    }
                    let datum = |k: u8, v: &Value| -> SqlResult<Datum> {
                        Ok(match k {
                            0 => Datum::MinValue,
                            1 => Datum::Value(v.clone()),
                            2 => Datum::MaxValue,
                            _ => return Err(SqlError::corrupt("bad range bound datum")),
                        })
                    };
                    let mut from = Vec::with_capacity(n);
                    let mut to = Vec::with_capacity(n);
                    for i in 0..n {
                        from.push(datum(kinds[i], &fv[i])?);
                        to.push(datum(kinds[n + i], &tv[i])?);
                    }
                    PartitionBound::Range { from, to }
                }
                3 => {
                    let modulus = r.varint()? as u32;
                    let remainder = r.varint()? as u32;
                    PartitionBound::Hash { modulus, remainder }
                }
                _ => return Err(SqlError::corrupt("unknown partition bound kind")),
            };
            p.of = Some((parent, bound));
        }
        Ok(p)
    }
}

// ---------------------------------------------------------------------------------------
// DDL helpers.

/// Parses `PARTITION BY RANGE (a, b)` as sqlparser 0.64 leaves it (an expression: a call of
/// a function named like the strategy) into a key over `columns`.
pub(crate) fn key_from_ast(
    e: &ast::Expr,
    columns: &[crate::catalog::ColumnDef],
) -> SqlResult<PartitionKey> {
    let ast::Expr::Function(f) = e else {
        return Err(SqlError::syntax(format!(
            "syntax error at or near \"{e}\" (expected RANGE, LIST or HASH (columns))"
        )));
    };
    let strategy_name = f.name.to_string().to_lowercase();
    let strategy = match strategy_name.as_str() {
        "range" => Strategy::Range,
        "list" => Strategy::List,
        "hash" => Strategy::Hash,
        other => {
            return Err(SqlError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("unrecognized partitioning strategy \"{other}\""),
            ))
        }
    };
    let args = match &f.args {
        ast::FunctionArguments::List(l) => &l.args,
        _ => return Err(SqlError::syntax("partition key needs a column list")),
    };
    let mut cols = Vec::new();
    for a in args {
        let name = match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(ast::Expr::Identifier(id))) => {
                crate::query::ident_name(id)
            }
            _ => {
                return Err(SqlError::unsupported(
                    "partition keys other than plain columns",
                ))
            }
        };
        let Some(i) = columns.iter().position(|c| c.name == name) else {
            return Err(SqlError::new(
                SqlState::UNDEFINED_COLUMN,
                format!("column \"{name}\" named in partition key does not exist"),
            ));
        };
        cols.push(i);
    }
    if cols.is_empty() {
        return Err(SqlError::syntax("partition key needs at least one column"));
    }
    if strategy == Strategy::List && cols.len() > 1 {
        return Err(invalid_object(
            "cannot use \"list\" partition strategy with more than one column".into(),
        ));
    }
    Ok(PartitionKey {
        strategy,
        columns: cols,
    })
}

/// Fails with 0A000 unless the unique constraint over `cols` includes every key column.
pub(crate) fn check_unique_covers_key(
    table: &str,
    columns: &[crate::catalog::ColumnDef],
    key: &PartitionKey,
    cols: &[usize],
    primary: bool,
) -> SqlResult<()> {
    if let Some(&missing) = key.columns.iter().find(|c| !cols.contains(c)) {
        return Err(SqlError::new(
            SqlState::FEATURE_NOT_SUPPORTED,
            "unique constraint on partitioned table must include all partitioning columns",
        )
        .with_detail(format!(
            "{} constraint on table \"{}\" lacks column \"{}\" which is part of the partition key.",
            if primary { "PRIMARY KEY" } else { "UNIQUE" },
            table,
            columns[missing].name
        )));
    }
    Ok(())
}

/// A bound value as written: a constant (maybe signed or cast) turned into the key column's type.
fn bound_value(
    e: &ast::Expr,
    ty: &DataType,
    eval: &dyn Fn(&ast::Expr) -> SqlResult<Value>,
) -> SqlResult<Value> {
    let v = eval(e)?;
    if v.is_null() {
        return Ok(v);
    }
    cast(v, ty, false)
}

/// Turns a parsed `FOR VALUES ...` into a bound of `parent`'s key. `eval` evaluates a
/// constant expression.
pub(crate) fn bound_from_ast(
    parent: &TableDef,
    key: &PartitionKey,
    fv: &ast::ForValues,
    eval: &dyn Fn(&ast::Expr) -> SqlResult<Value>,
) -> SqlResult<PartitionBound> {
    let ty = |i: usize| parent.columns[key.columns[i]].ty;
    let wrong = |what: &str| {
        invalid_table(format!(
            "invalid bound specification for a {} partition",
            what
        ))
    };
    Ok(match fv {
        ast::ForValues::Default => {
            if key.strategy == Strategy::Hash {
                return Err(invalid_table(
                    "a hash-partitioned table may not have a default partition",
                ));
            }
            PartitionBound::Default
        }
        ast::ForValues::In(list) => {
            if key.strategy != Strategy::List {
                return Err(wrong(key.strategy.name()));
            }
            let mut vals: Vec<Value> = Vec::new();
            for e in list {
                let v = bound_value(e, &ty(0), eval)?;
                if !vals
                    .iter()
                    .any(|x| x == &v || compare_values(x, &v) == Some(Ordering::Equal))
                {
                    vals.push(v);
                }
            }
            PartitionBound::List(vals)
        }
        ast::ForValues::From { from, to } => {
            if key.strategy != Strategy::Range {
                return Err(wrong(key.strategy.name()));
            }
            let n = key.columns.len();
            if from.len() != n {
                return Err(invalid_table(
                    "FROM must specify exactly one value per partitioning column",
                ));
            }
            if to.len() != n {
                return Err(invalid_table(
                    "TO must specify exactly one value per partitioning column",
                ));
            }
            let datums = |list: &[ast::PartitionBoundValue]| -> SqlResult<Vec<Datum>> {
                let mut out = Vec::with_capacity(n);
                for (i, b) in list.iter().enumerate() {
                    out.push(match b {
                        ast::PartitionBoundValue::MinValue => Datum::MinValue,
                        ast::PartitionBoundValue::MaxValue => Datum::MaxValue,
                        ast::PartitionBoundValue::Expr(e) => {
                            let v = bound_value(e, &ty(i), eval)?;
                            if v.is_null() {
                                return Err(invalid_table("cannot specify NULL in range bound"));
                            }
                            Datum::Value(v)
                        }
                    });
                }
                // After MINVALUE/MAXVALUE every later datum must be the same (PostgreSQL).
                for w in out.windows(2) {
                    match (&w[0], &w[1]) {
                        (Datum::MinValue, d) if *d != Datum::MinValue => {
                            return Err(invalid_object(
                                "every bound following MINVALUE must also be MINVALUE".into(),
                            ))
                        }
                        (Datum::MaxValue, d) if *d != Datum::MaxValue => {
                            return Err(invalid_object(
                                "every bound following MAXVALUE must also be MAXVALUE".into(),
                            ))
                        }
                        _ => {}
                    }
                }
                Ok(out)
            };
            PartitionBound::Range {
                from: datums(from)?,
                to: datums(to)?,
            }
        }
        ast::ForValues::With { modulus, remainder } => {
            if key.strategy != Strategy::Hash {
                return Err(wrong(key.strategy.name()));
            }
            if *modulus == 0 || *modulus > i32::MAX as u64 {
                return Err(invalid_table(
                    "modulus for hash partition must be an integer value greater than zero",
                ));
            }
            if remainder >= modulus {
                return Err(invalid_table(
                    "remainder for hash partition must be less than modulus",
                ));
            }
            PartitionBound::Hash {
                modulus: *modulus as u32,
                remainder: *remainder as u32,
            }
        }
    })
}

fn datums_text(ds: &[Datum]) -> String {
    ds.iter()
        .map(|d| match d {
            Datum::MinValue => "MINVALUE".to_string(),
            Datum::MaxValue => "MAXVALUE".to_string(),
            Datum::Value(v) => value_literal(v),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn value_literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Text(_) | Value::Date(_) | Value::Timestamp(_) | Value::Timestamptz(_) => {
            format!("'{}'", v.to_text().unwrap_or_default().replace('\'', "''"))
        }
        other => other.to_text().unwrap_or_default(),
    }
}

/// PostgreSQL's text of a partitioned table's key (`pg_get_partkeydef`: `RANGE (k)`).
pub(crate) fn key_text(t: &TableDef) -> Option<String> {
    let key = t.partitioning.key.as_ref()?;
    let cols: Vec<&str> = key
        .columns
        .iter()
        .map(|&c| t.columns[c].name.as_str())
        .collect();
    Some(format!(
        "{} ({})",
        key.strategy.name().to_uppercase(),
        cols.join(", ")
    ))
}

/// PostgreSQL's text of a bound (`pg_get_expr(relpartbound)`, psql's "Partition of").
pub fn bound_text(b: &PartitionBound) -> String {
    match b {
        PartitionBound::Default => "DEFAULT".into(),
        PartitionBound::List(vals) => format!(
            "FOR VALUES IN ({})",
            vals.iter()
                .map(value_literal)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        PartitionBound::Range { from, to } => format!(
            "FOR VALUES FROM ({}) TO ({})",
            datums_text(from),
            datums_text(to)
        ),
        PartitionBound::Hash { modulus, remainder } => {
            format!("FOR VALUES WITH (modulus {modulus}, remainder {remainder})")
        }
    }
}

/// Compares a datum with another (MINVALUE lowest, MAXVALUE highest).
fn cmp_datum(a: &Datum, b: &Datum) -> Ordering {
    match (a, b) {
        (Datum::MinValue, Datum::MinValue) | (Datum::MaxValue, Datum::MaxValue) => Ordering::Equal,
        (Datum::MinValue, _) | (_, Datum::MaxValue) => Ordering::Less,
        (_, Datum::MinValue) | (Datum::MaxValue, _) => Ordering::Greater,
        (Datum::Value(x), Datum::Value(y)) => compare_values(x, y).unwrap_or(Ordering::Equal),
    }
}

/// Compares two bounds column by column; the first MINVALUE/MAXVALUE decides.
fn cmp_bounds(a: &[Datum], b: &[Datum]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = cmp_datum(x, y);
        if o != Ordering::Equal {
            return o;
        }
        if !matches!(x, Datum::Value(_)) {
            return Ordering::Equal;
        }
    }
    Ordering::Equal
}

/// Checks a new partition's bound against the existing ones (`siblings`: name and bound).
pub(crate) fn check_new_bound(
    name: &str,
    bound: &PartitionBound,
    siblings: &[(String, PartitionBound)],
) -> SqlResult<()> {
    let overlap = |other: &str| {
        invalid_object(format!(
            "partition \"{name}\" would overlap partition \"{other}\""
        ))
    };
    match bound {
        PartitionBound::Default => {
            if let Some((d, _)) = siblings.iter().find(|(_, b)| *b == PartitionBound::Default) {
                return Err(invalid_object(format!(
                    "partition \"{name}\" conflicts with existing default partition \"{d}\""
                )));
            }
        }
        PartitionBound::List(vals) => {
            for (other, b) in siblings {
                if let PartitionBound::List(theirs) = b {
                    let clash = vals.iter().any(|v| {
                        theirs.iter().any(|t| {
                            (v.is_null() && t.is_null())
                                || compare_values(v, t) == Some(Ordering::Equal)
                        })
                    });
                    if clash {
                        return Err(overlap(other));
                    }
                }
            }
        }
        PartitionBound::Range { from, to } => {
            if cmp_bounds(from, to) != Ordering::Less {
                return Err(invalid_object(format!(
                    "empty range bound specified for partition \"{name}\""
                ))
                .with_detail(format!(
                    "Specified lower bound ({}) is greater than or equal to upper bound ({}).",
                    datums_text(from),
                    datums_text(to)
                )));
            }
            for (other, b) in siblings {
                if let PartitionBound::Range { from: f2, to: t2 } = b {
                    // [from, to) and [f2, t2) intersect iff from < t2 and f2 < to.
                    if cmp_bounds(from, t2) == Ordering::Less
                        && cmp_bounds(f2, to) == Ordering::Less
                    {
                        return Err(overlap(other));
                    }
                }
            }
        }
        PartitionBound::Hash { modulus, remainder } => {
            for (other, b) in siblings {
                if let PartitionBound::Hash {
                    modulus: m2,
                    remainder: r2,
                } = b
                {
                    let (small, large) = if m2 <= modulus {
                        (m2, modulus)
                    } else {
                        (modulus, m2)
                    };
                    if large % small != 0 {
                        let detail = if m2 > modulus {
                            format!(
                                "The new modulus {modulus} is not a factor of {m2}, the modulus of existing partition \"{other}\"."
                            )
                        } else {
                            format!(
                                "The new modulus {modulus} is not divisible by {m2}, the modulus of existing partition \"{other}\"."
                            )
                        };
                        return Err(invalid_object(
                            "every hash partition modulus must be a factor of the next larger modulus"
                                .into(),
                        )
                        .with_detail(detail));
                    }
                    let (rs, rl) = if m2 <= modulus {
                        (*r2, *remainder)
                    } else {
                        (*remainder, *r2)
                    };
                    if rl % small == rs {
                        return Err(overlap(other));
                    }
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Routing.

/// PostgreSQL's `HASH_PARTITION_SEED`.
const HASH_PARTITION_SEED: u64 = 0x7A5B_2236_7996_DCFD;

/// Bob Jenkins' lookup3 `mix`, as PostgreSQL's `hashfn.c` has it.
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

/// lookup3's `final`.
fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// PostgreSQL's `hash_bytes_uint32_extended(k, seed)`.
fn hash_uint32_extended(k: u32, seed: u64) -> u64 {
    let init = 0x9e37_79b9u32.wrapping_add(4).wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (init, init, init);
    if seed != 0 {
        a = a.wrapping_add((seed >> 32) as u32);
        b = b.wrapping_add(seed as u32);
        mix(&mut a, &mut b, &mut c);
    }
    a = a.wrapping_add(k);
    final_mix(&mut a, &mut b, &mut c);
    ((b as u64) << 32) | c as u64
}

/// One key value's hash as PostgreSQL's extended hash function of its type computes it
/// (`hashint2/4/8extended`, `hashcharextended`, date as int4, timestamps as int8). Other
/// types (text, numeric, floats, bytea) use FNV-1a over the memcomparable encoding: their
/// rows are placed deterministically but not as PostgreSQL places them.
fn value_hash(v: &Value) -> u64 {
    let int8 = |val: i64| {
        let mut lo = val as u32;
        let hi = (val >> 32) as u32;
        lo ^= if val >= 0 { hi } else { !hi };
        hash_uint32_extended(lo, HASH_PARTITION_SEED)
    };
    match v {
        Value::Int2(x) => hash_uint32_extended(*x as i32 as u32, HASH_PARTITION_SEED),
        Value::Int4(x) | Value::Date(x) => hash_uint32_extended(*x as u32, HASH_PARTITION_SEED),
        Value::Int8(x) | Value::Timestamp(x) | Value::Timestamptz(x) => int8(*x),
        Value::Bool(b) => hash_uint32_extended(*b as u32, HASH_PARTITION_SEED),
        other => {
            let mut bytes = Vec::with_capacity(16);
            encode_key_value(other, &mut bytes);
            let mut x: u64 = 0xcbf2_9ce4_8422_2325;
            for b in bytes {
                x ^= b as u64;
                x = x.wrapping_mul(0x0100_0000_01b3);
            }
            x
        }
    }
}

/// The hash of a row's key for HASH partitioning, as PostgreSQL's
/// `compute_partition_hash_value`: each non-NULL key value's hash (see `value_hash`),
/// combined with `hash_combine64`. FROZEN: rows are placed by it.
pub(crate) fn key_hash(key: &PartitionKey, row: &[Value]) -> u64 {
    let mut h: u64 = 0;
    for &c in &key.columns {
        let v = &row[c];
        if v.is_null() {
            continue;
        }
        let x = value_hash(v);
        h ^= x
            .wrapping_add(0x49a0_f4dd_15e5_a8e3)
            .wrapping_add(h << 54)
            .wrapping_add(h >> 7);
    }
    h
}

/// Whether a non-DEFAULT `bound` accepts `row` (a full row of the table).
pub(crate) fn accepts(key: &PartitionKey, bound: &PartitionBound, row: &[Value]) -> bool {
    match bound {
        PartitionBound::Default => false,
        PartitionBound::List(vals) => {
            let v = &row[key.columns[0]];
            vals.iter().any(|x| {
                if v.is_null() {
                    x.is_null()
                } else {
                    !x.is_null() && compare_values(x, v) == Some(Ordering::Equal)
                }
            })
        }
        PartitionBound::Range { from, to } => {
            let vals: Vec<Datum> = key
                .columns
                .iter()
                .map(|&c| Datum::Value(row[c].clone()))
                .collect();
            if key.columns.iter().any(|&c| row[c].is_null()) {
                return false;
            }
            cmp_bounds(&vals, from) != Ordering::Less && cmp_bounds(&vals, to) == Ordering::Less
        }
        PartitionBound::Hash { modulus, remainder } => {
            key_hash(key, row) % (*modulus as u64) == *remainder as u64
        }
    }
}

/// The partition of `parts` (with their bounds) that accepts `row`: a non-DEFAULT one whose
/// bound accepts it, else the DEFAULT partition.
pub(crate) fn route<'a>(
    key: &PartitionKey,
    parts: &'a [Arc<TableDef>],
    row: &[Value],
) -> Option<&'a Arc<TableDef>> {
    let mut default = None;
    for p in parts {
        match p.partitioning.of.as_ref().map(|(_, b)| b) {
            Some(PartitionBound::Default) => default = Some(p),
            Some(b) if accepts(key, b, row) => return Some(p),
            _ => {}
        }
    }
    default
}

/// 23514 for a row no partition of `parent` accepts.
pub(crate) fn no_partition(parent: &TableDef, key: &PartitionKey, row: &[Value]) -> SqlError {
    let names: Vec<&str> = key
        .columns
        .iter()
        .map(|&c| parent.columns[c].name.as_str())
        .collect();
    let vals: Vec<String> = key
        .columns
        .iter()
        .map(|&c| row[c].to_text().unwrap_or_else(|| "null".into()))
        .collect();
    SqlError::new(
        SqlState::CHECK_VIOLATION,
        format!("no partition of relation \"{}\" found for row", parent.name),
    )
    .with_detail(format!(
        "Partition key of the failing row contains ({}) = ({}).",
        names.join(", "),
        vals.join(", ")
    ))
}

/// 23514 for a row written to partition `part` that its bound refuses.
pub(crate) fn violates_bound(part: &TableDef, row: &[Value]) -> SqlError {
    let vals: Vec<String> = row
        .iter()
        .map(|v| v.to_text().unwrap_or_else(|| "null".into()))
        .collect();
    SqlError::new(
        SqlState::CHECK_VIOLATION,
        format!(
            "new row for relation \"{}\" violates partition constraint",
            part.name
        ),
    )
    .with_detail(format!("Failing row contains ({}).", vals.join(", ")))
}

// ---------------------------------------------------------------------------------------
// Pruning.

/// A comparison of a key column with a value known before the scan.
#[derive(Debug, Clone)]
struct Pred {
    /// Position in the key.
    pos: usize,
    op: BinOp,
    value: Value,
}

/// Whether the comparison type `ty` of `column op value` compares like the column's own
/// type (so a value cast to the column's type keeps the comparison's meaning).
fn prunable_type(col: &DataType, ty: &DataType) -> bool {
    (col.is_integer() && ty.is_integer())
        || (col == ty && !matches!(col, DataType::Float4 | DataType::Float8))
        || (matches!(col, DataType::Text | DataType::Varchar(_)) && *ty == DataType::Text)
}

fn flip(op: BinOp) -> BinOp {
    match op {
        BinOp::Lt => BinOp::Gt,
        BinOp::LtEq => BinOp::GtEq,
        BinOp::Gt => BinOp::Lt,
        BinOp::GtEq => BinOp::LtEq,
        other => other,
    }
}

/// The key predicates among `conds` whose values `eval` can compute (None = unknown yet).
fn key_preds(
    parent: &TableDef,
    key: &PartitionKey,
    conds: &[Expr],
    eval: &dyn Fn(&Expr) -> Option<Value>,
) -> (Vec<Pred>, Vec<(usize, Vec<Value>)>) {
    let mut preds = Vec::new();
    let mut ins = Vec::new();
    let key_pos = |e: &Expr| match e {
        Expr::Column(c) => key.columns.iter().position(|k| k == c),
        _ => None,
    };
    let to_col = |pos: usize, v: Value| -> Option<Value> {
        if v.is_null() {
            return Some(v);
        }
        cast(v, &parent.columns[key.columns[pos]].ty, false).ok()
    };
    for c in conds {
        match c {
            Expr::Binary {
                op,
                left,
                right,
                ty,
            } if matches!(
                op,
                BinOp::Eq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq
            ) =>
            {
                let (pos, other, op) = match (key_pos(left), key_pos(right)) {
                    (Some(p), None) => (p, right, *op),
                    (None, Some(p)) => (p, left, flip(*op)),
                    _ => continue,
                };
                if !other.is_row_independent()
                    || !prunable_type(&parent.columns[key.columns[pos]].ty, ty)
                {
                    continue;
                }
                if let Some(v) = eval(other).and_then(|v| to_col(pos, v)) {
                    preds.push(Pred { pos, op, value: v });
                }
            }
            Expr::InList {
                expr,
                list,
                negated: false,
            } => {
                let Some(pos) = key_pos(expr) else { continue };
                let mut vals = Vec::new();
                for e in list {
                    if !e.is_row_independent() {
                        break;
                    }
                    match eval(e).and_then(|v| to_col(pos, v)) {
                        Some(v) => vals.push(v),
                        None => break,
                    }
                }
                if vals.len() == list.len() {
                    ins.push((pos, vals));
                }
            }
            _ => {}
        }
    }
    (preds, ins)
}

/// Whether a value satisfies every predicate on key position `pos`.
fn value_passes(preds: &[Pred], pos: usize, v: &Value) -> bool {
    preds.iter().filter(|p| p.pos == pos).all(|p| {
        if p.value.is_null() || v.is_null() {
            return false; // A comparison with NULL is never true.
        }
        let Some(o) = compare_values(v, &p.value) else {
            return true;
        };
        match p.op {
            BinOp::Eq => o == Ordering::Equal,
            BinOp::Lt => o == Ordering::Less,
            BinOp::LtEq => o != Ordering::Greater,
            BinOp::Gt => o == Ordering::Greater,
            BinOp::GtEq => o != Ordering::Less,
            _ => true,
        }
    })
}

/// Which of `parts` (partitions of `parent`) can hold rows matching all of `conds`. `eval`
/// computes a row-independent expression when it can (constants at plan time, parameters too
/// at execution). Conservative: a partition is dropped only when no matching row can be in it.
pub(crate) fn prune(
    parent: &TableDef,
    parts: &[Arc<TableDef>],
    conds: &[Expr],
    eval: &dyn Fn(&Expr) -> Option<Value>,
) -> Vec<bool> {
    let Some(key) = &parent.partitioning.key else {
        return vec![true; parts.len()];
    };
    let (preds, ins) = key_preds(parent, key, conds, eval);
    if preds.is_empty() && ins.is_empty() {
        return vec![true; parts.len()];
    }
    // Equality candidates per key position: an `=` gives one value, IN a list.
    let mut candidates: Vec<Option<Vec<Value>>> = vec![None; key.columns.len()];
    for p in preds.iter().filter(|p| p.op == BinOp::Eq) {
        candidates[p.pos] = Some(vec![p.value.clone()]);
    }
    for (pos, vals) in &ins {
        if candidates[*pos].is_none() {
            candidates[*pos] = Some(vals.clone());
        }
    }
    // Candidates must also pass the other predicates on their column.
    for (pos, c) in candidates.iter_mut().enumerate() {
        if let Some(vals) = c {
            vals.retain(|v| value_passes(&preds, pos, v));
        }
    }
    // Every full key the equalities allow (when all positions have candidates; bounded).
    let full_keys: Option<Vec<Vec<Value>>> = if candidates.iter().all(|c| c.is_some()) {
        let mut keys: Vec<Vec<Value>> = vec![vec![]];
        for c in candidates.iter().flatten() {
            let mut next = Vec::new();
            for k in &keys {
                for v in c {
                    let mut k2 = k.clone();
                    k2.push(v.clone());
                    next.push(k2);
                }
            }
            keys = next;
            if keys.len() > 1024 {
                break;
            }
        }
        (keys.len() <= 1024).then_some(keys)
    } else {
        None
    };
    let row_of = |k: &[Value]| {
        let mut row = vec![Value::Null; parent.columns.len()];
        for (i, &c) in key.columns.iter().enumerate() {
            row[c] = k[i].clone();
        }
        row
    };
    let non_default: Vec<&PartitionBound> = parts
        .iter()
        .filter_map(|p| p.partitioning.of.as_ref().map(|(_, b)| b))
        .filter(|b| **b != PartitionBound::Default)
        .collect();
    parts
        .iter()
        .map(|p| {
            let Some((_, bound)) = &p.partitioning.of else {
                return true;
            };
            if let Some(keys) = &full_keys {
                // Exactly these keys can match: the partition they route to survives.
                return keys.iter().any(|k| {
                    let row = row_of(k);
                    match bound {
                        PartitionBound::Default => {
                            !non_default.iter().any(|b| accepts(key, b, &row))
                        }
                        b => accepts(key, b, &row),
                    }
                });
            }
            match bound {
                PartitionBound::Default | PartitionBound::Hash { .. } => true,
                PartitionBound::List(vals) => vals.iter().any(|v| value_passes(&preds, 0, v)),
                PartitionBound::Range { from, to } => {
                    // The partition's span of the first key column: [from0, to0) for one
                    // column, [from0, to0] when later columns refine it.
                    let lo = &from[0];
                    let hi = &to[0];
                    let hi_inclusive = key.columns.len() > 1;
                    preds.iter().filter(|p| p.pos == 0).all(|p| {
                        if p.value.is_null() {
                            return false;
                        }
                        let v = Datum::Value(p.value.clone());
                        let above_lo = |strict: bool| {
                            let o = cmp_datum(&v, lo);
                            if strict {
                                o == Ordering::Greater
                            } else {
                                o != Ordering::Less
                            }
                        };
                        let below_hi = |inclusive: bool| {
                            let o = cmp_datum(&v, hi);
                            if inclusive {
                                o != Ordering::Greater
                            } else {
                                o == Ordering::Less
                            }
                        };
                        match p.op {
                            // Some key k with k op v must lie in the span.
                            BinOp::Eq => above_lo(false) && below_hi(hi_inclusive),
                            BinOp::Lt => cmp_datum(lo, &v) == Ordering::Less,
                            BinOp::LtEq => cmp_datum(lo, &v) != Ordering::Greater,
                            BinOp::Gt => {
                                if hi_inclusive {
                                    cmp_datum(hi, &v) == Ordering::Greater
                                } else {
                                    // Some k > v with k < hi exists unless hi <= successor;
                                    // conservative: keep when hi > v.
                                    cmp_datum(hi, &v) == Ordering::Greater
                                }
                            }
                            BinOp::GtEq => {
                                if hi_inclusive {
                                    cmp_datum(hi, &v) != Ordering::Less
                                } else {
                                    cmp_datum(hi, &v) == Ordering::Greater
                                }
                            }
                            _ => true,
                        }
                    })
                }
            }
        })
        .collect()
}

/// Evaluates a plan-time constant: a literal, maybe cast.
pub(crate) fn plan_time_value(e: &Expr) -> Option<Value> {
    match e {
        Expr::Const(v) => Some(v.clone()),
        Expr::Cast { expr, ty, explicit } => cast(plan_time_value(expr)?, ty, *explicit).ok(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// CREATE TABLE ... PARTITION OF and DROP TABLE.

/// Evaluates a partition bound's expression, which must be a constant.
fn const_eval(
    engine: &SqlEngine,
    info: &SessionInfo,
    txn: &gnomon_mvcc::Txn,
    e: &ast::Expr,
) -> SqlResult<Value> {
    let mut binder = Binder::new(&engine.catalog, txn, info, vec![]);
    let (bound, _) = binder.bind_expr(e, &crate::plan::Scope::default(), None)?;
    if !bound.is_row_independent() || bound.has_subquery() {
        return Err(SqlError::new(
            SqlState::INVALID_OBJECT_DEFINITION,
            "partition bound expression must be a constant",
        ));
    }
    bound.eval(
        &[],
        &crate::expr::EvalContext {
            params: &[],
            interrupt: None,
            times: Default::default(),
            sequences: None,
            clocks: None,
            db: None,
            outer: None,
            runner: None,
        },
    )
}

/// Partitions' names and bounds.
type Bounds = Vec<(String, PartitionBound)>;

/// The bounds of `parent`'s partitions, and its DEFAULT partition if it has one.
fn sibling_bounds(
    engine: &SqlEngine,
    txn: &dyn Transaction,
    parent: &TableDef,
) -> SqlResult<(Bounds, Option<Arc<TableDef>>)> {
    let mut siblings = Vec::new();
    let mut default_part = None;
    for c in &parent.partitioning.children {
        if let Some(d) = engine.catalog.lookup(txn, c)? {
            if let Some((_, b)) = &d.partitioning.of {
                siblings.push((d.name.clone(), b.clone()));
                if *b == PartitionBound::Default {
                    default_part = Some(d.clone());
                }
            }
        }
    }
    Ok((siblings, default_part))
}

/// A new partition `name` of `parent` with `bound` (CREATE ... PARTITION OF, ATTACH): its
/// bound overlaps no sibling's (42P17), and no row of the DEFAULT partition belongs in it
/// (23514; the DEFAULT partition is locked ACCESS EXCLUSIVE to look).
fn check_against_siblings(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    parent: &TableDef,
    key: &PartitionKey,
    name: &str,
    bound: &PartitionBound,
) -> SqlResult<()> {
    let (siblings, default_part) = sibling_bounds(engine, &t.txn, parent)?;
    check_new_bound(name, bound, &siblings)?;
    check_default_rows(t, key, bound, default_part.as_ref())
}

/// No row of the DEFAULT partition `default_part` belongs in a new partition with `bound`
/// (23514; the DEFAULT partition is locked ACCESS EXCLUSIVE to look).
fn check_default_rows(
    t: &mut ActiveTxn,
    key: &PartitionKey,
    bound: &PartitionBound,
    default_part: Option<&Arc<TableDef>>,
) -> SqlResult<()> {
    if let (Some(d), false) = (&default_part, *bound == PartitionBound::Default) {
        // Rows the new partition would take must not sit in the default partition.
        crate::locking::lock_for_ddl(&mut t.txn, d, TableMode::AccessExclusive)?;
        for (_, bytes) in Transaction::scan(&t.txn, KeyPrefix::Rows(d.id).range(), false, None)? {
            let row = decode_table_row(d, &bytes)?;
            if accepts(key, bound, &row) {
                return Err(SqlError::new(
                    SqlState::CHECK_VIOLATION,
                    format!(
                        "updated partition constraint for default partition \"{}\" would be violated by some row",
                        d.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// CREATE TABLE c PARTITION OF p FOR VALUES ... | DEFAULT: a table with the parent's
/// columns, primary key, CHECKs and unique constraints, listed in the parent's definition.
pub(crate) fn create_partition(
    engine: &SqlEngine,
    info: &SessionInfo,
    t: &mut ActiveTxn,
    ct: &ast::CreateTable,
    notices: &mut Vec<Notice>,
) -> SqlResult<()> {
    let Some(parent_name) = &ct.partition_of else {
        return Err(SqlError::internal("not a PARTITION OF statement"));
    };
    let name = object_name(&ct.name)?;
    if crate::ddl::relation_taken(engine, &t.txn, &name, ct.if_not_exists, notices)? {
        return Ok(());
    }
    if ct.temporary {
        return Err(SqlError::unsupported("temporary tables"));
    }
    if ct.partition_by.is_some() {
        return Err(SqlError::unsupported(
            "sub-partitioning (a partition that is itself partitioned)",
        ));
    }
    if !ct.columns.is_empty() || !ct.constraints.is_empty() {
        return Err(SqlError::unsupported(
            "column options and constraints in CREATE TABLE ... PARTITION OF",
        ));
    }
    let parent = engine.catalog.require(&t.txn, &object_name(parent_name)?)?;
    let Some(key) = parent.partitioning.key.clone() else {
        return Err(invalid_object(format!(
            "\"{}\" is not partitioned",
            parent.name
        )));
    };
    crate::locking::lock_for_ddl(&mut t.txn, &parent, TableMode::AccessExclusive)?;
    let Some(fv) = &ct.for_values else {
        return Err(SqlError::syntax(
            "syntax error: FOR VALUES or DEFAULT expected",
        ));
    };
    let bound = bound_from_ast(&parent, &key, fv, &|e| const_eval(engine, info, &t.txn, e))?;
    check_against_siblings(engine, t, &parent, &key, &name, &bound)?;
    let def = engine.catalog.create_table(
        &mut t.txn,
        name.clone(),
        parent.columns.clone(),
        parent.primary_key.clone(),
    )?;
    let mut new = (*def).clone();
    new.checks = parent.checks.clone();
    for ix in &parent.indexes {
        let cols: Vec<&str> = ix
            .columns
            .iter()
            .map(|&i| parent.columns[i].name.as_str())
            .collect();
        let suffix = if ix.constraint { "key" } else { "idx" };
        let iname = crate::ddl::free_name(
            engine,
            &t.txn,
            &crate::ddl::default_name(&name, &cols, suffix),
        )?;
        crate::ddl::add_index_name(engine, t, &iname, &new)?;
        new.indexes.push(IndexDef {
            id: engine.catalog.allocate_id(),
            name: iname,
            columns: ix.columns.clone(),
            unique: ix.unique,
            constraint: ix.constraint,
        });
    }
    new.partitioning.of = Some((parent.name.clone(), bound));
    engine.catalog.write_def(&mut t.txn, &new)?;
    let mut p2 = (*parent).clone();
    p2.partitioning.children.push(name);
    engine.catalog.replace_table(&mut t.txn, &parent, p2)?;
    t.dropped.push(parent.def_id);
    engine.catalog.register_partition(new.id, parent.id);
    t.ddl = true;
    Ok(())
}

/// DROP TABLE of `defs`: a partitioned table takes its partitions with it; a partition
/// dropped alone leaves its parent's list. Returns every table to drop (locked).
pub(crate) fn expand_drop(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    defs: Vec<Arc<TableDef>>,
) -> SqlResult<Vec<Arc<TableDef>>> {
    let mut out: Vec<Arc<TableDef>> = Vec::new();
    for def in defs {
        if out.iter().any(|d| d.id == def.id) {
            continue;
        }
        let children = def.partitioning.children.clone();
        out.push(def);
        for c in children {
            if let Some(child) = engine.catalog.lookup(&t.txn, &c)? {
                if !out.iter().any(|d| d.id == child.id) {
                    out.push(child);
                }
            }
        }
    }
    for d in &out {
        crate::locking::lock_for_ddl(&mut t.txn, d, TableMode::AccessExclusive)?;
    }
    // Partitions dropped without their parent leave the parent's list.
    let mut parents: Vec<(String, Vec<String>)> = Vec::new();
    for d in &out {
        if let Some((p, _)) = &d.partitioning.of {
            if out.iter().any(|x| &x.name == p) {
                continue;
            }
            match parents.iter_mut().find(|(n, _)| n == p) {
                Some((_, names)) => names.push(d.name.clone()),
                None => parents.push((p.clone(), vec![d.name.clone()])),
            }
        }
    }
    for (p, gone) in parents {
        if let Some(parent) = engine.catalog.lookup(&t.txn, &p)? {
            crate::locking::lock_for_ddl(&mut t.txn, &parent, TableMode::AccessExclusive)?;
            let mut p2 = (*parent).clone();
            p2.partitioning.children.retain(|c| !gone.contains(c));
            engine.catalog.replace_table(&mut t.txn, &parent, p2)?;
            t.dropped.push(parent.def_id);
            t.ddl = true;
        }
    }
    Ok(out)
}

/// ALTER TABLE parent ATTACH PARTITION name FOR VALUES ... | DEFAULT: the plain table `name`
/// becomes a partition of `parent` (both locked ACCESS EXCLUSIVE). As PostgreSQL 15: its
/// columns must be the parent's (same names and types, NOT NULL where the parent's are,
/// 42804), it must have the parent's CHECK constraints (by name, 42804), its rows must fit
/// the bound (23514) and the DEFAULT partition must hold no row the bound takes (23514).
/// The parent's primary key and indexes are created on it unless it has them (a rewrite
/// when the primary key is new). Gnomon stores a partition's rows in its parent's column
/// order, so a table whose columns are in another order is refused (0A000).
pub(crate) fn attach(
    engine: &SqlEngine,
    info: &SessionInfo,
    t: &mut ActiveTxn,
    parent: &Arc<TableDef>,
    part_name: &ast::ObjectName,
    fv: &ast::ForValues,
    interrupt: &crate::session::Interrupt,
) -> SqlResult<()> {
    let Some(key) = parent.partitioning.key.clone() else {
        return Err(invalid_object(format!(
            "table \"{}\" is not partitioned",
            parent.name
        )));
    };
    crate::locking::lock_for_ddl(&mut t.txn, parent, TableMode::AccessExclusive)?;
    // PostgreSQL's order of checks: the bound (at parse analysis), the table, its columns'
    // names, overlap with the siblings, columns' types and NOT NULL, CHECKs, then rows.
    let bound = bound_from_ast(parent, &key, fv, &|e| const_eval(engine, info, &t.txn, e))?;
    let name = object_name(part_name)?;
    let part = engine.catalog.require(&t.txn, &name)?;
    if part.id == parent.id {
        return Err(SqlError::new(
            SqlState::DUPLICATE_TABLE,
            "circular inheritance not allowed",
        )
        .with_detail(format!(
            "\"{}\" is already a child of \"{}\".",
            part.name, parent.name
        )));
    }
    if part.partitioning.of.is_some() {
        return Err(SqlError::new(
            SqlState::WRONG_OBJECT_TYPE,
            format!("\"{}\" is already a partition", part.name),
        ));
    }
    if part.partitioning.key.is_some() {
        return Err(SqlError::unsupported(
            "sub-partitioning (a partition that is itself partitioned)",
        ));
    }
    if !part.foreign_keys.is_empty() || !part.referenced_by.is_empty() {
        return Err(SqlError::unsupported(
            "foreign keys from or to partitioned tables and partitions",
        ));
    }
    crate::locking::lock_for_ddl(&mut t.txn, &part, TableMode::AccessExclusive)?;
    check_extra_columns(parent, &part)?;
    let (siblings, default_part) = sibling_bounds(engine, &t.txn, parent)?;
    check_new_bound(&part.name, &bound, &siblings)?;
    check_same_columns(parent, &part)?;
    for c in &parent.checks {
        match part.checks.iter().find(|x| x.name == c.name) {
            None => {
                return Err(SqlError::new(
                    SqlState::DATATYPE_MISMATCH,
                    format!("child table is missing constraint \"{}\"", c.name),
                ))
            }
            Some(x) if x.expr != c.expr => {
                return Err(SqlError::new(
                    SqlState::DATATYPE_MISMATCH,
                    format!(
                        "child table \"{}\" has different definition for check constraint \"{}\"",
                        part.name, c.name
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    if !parent.primary_key.is_empty()
        && !part.primary_key.is_empty()
        && part.primary_key != parent.primary_key
    {
        return Err(SqlError::new(
            SqlState::INVALID_TABLE_DEFINITION,
            format!(
                "multiple primary keys for table \"{}\" are not allowed",
                part.name
            ),
        ));
    }
    check_default_rows(t, &key, &bound, default_part.as_ref())?;
    // Every row of the table must fit the bound.
    let others: Vec<PartitionBound> = if bound == PartitionBound::Default {
        siblings.into_iter().map(|(_, b)| b).collect()
    } else {
        vec![]
    };
    for (_, bytes) in Transaction::scan(&t.txn, KeyPrefix::Rows(part.id).range(), false, None)? {
        interrupt.check()?;
        let row = decode_table_row(&part, &bytes)?;
        let fits = match &bound {
            PartitionBound::Default => !others.iter().any(|b| accepts(&key, b, &row)),
            b => accepts(&key, b, &row),
        };
        if !fits {
            return Err(SqlError::new(
                SqlState::CHECK_VIOLATION,
                format!(
                    "partition constraint of relation \"{}\" is violated by some row",
                    part.name
                ),
            ));
        }
    }
    // The parent's primary key (rows re-keyed under a new table id) and indexes.
    let mut cur = part.clone();
    if !parent.primary_key.is_empty() && cur.primary_key.is_empty() {
        let cols: Vec<String> = parent
            .primary_key
            .iter()
            .map(|&i| parent.columns[i].name.clone())
            .collect();
        cur = crate::ddl::add_primary_key(engine, t, &cur, &cols, interrupt)?;
    }
    let mut new = (*cur).clone();
    for ix in &parent.indexes {
        if new
            .indexes
            .iter()
            .any(|x| x.columns == ix.columns && x.unique == ix.unique)
        {
            continue;
        }
        let ix2 = partition_index(engine, t, &new, ix)?;
        crate::index::build(&mut t.txn, &new, &ix2, interrupt)?;
        new.indexes.push(ix2);
    }
    new.partitioning.of = Some((parent.name.clone(), bound));
    engine.catalog.replace_table(&mut t.txn, &cur, new)?;
    t.dropped.push(cur.def_id);
    let mut p2 = (**parent).clone();
    p2.partitioning.children.push(part.name.clone());
    engine.catalog.replace_table(&mut t.txn, parent, p2)?;
    t.dropped.push(parent.def_id);
    t.partition_links.push(part.name.clone());
    t.ddl = true;
    Ok(())
}

/// ALTER TABLE parent ADD PRIMARY KEY (cols) on a partitioned table, as PostgreSQL 15: the
/// key must hold every partition key column (0A000), the parent must have none yet (42P16),
/// and every partition gets it (its rows re-keyed, 23502 / 23505 naming the partition)
/// unless it has that primary key already; a partition with another primary key is 42P16.
/// The key columns become NOT NULL in the parent and the partitions. Everything is locked
/// ACCESS EXCLUSIVE; a re-keyed partition's new table id joins the lock hierarchy at commit.
pub(crate) fn add_primary_key(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    parent: &Arc<TableDef>,
    cols: &[String],
    interrupt: &crate::session::Interrupt,
) -> SqlResult<()> {
    let Some(key) = parent.partitioning.key.clone() else {
        return Err(SqlError::internal("not a partitioned table"));
    };
    crate::locking::lock_for_ddl(&mut t.txn, parent, TableMode::AccessExclusive)?;
    let mut pk = Vec::with_capacity(cols.len());
    for c in cols {
        pk.push(parent.column_index(c).ok_or_else(|| {
            SqlError::new(
                SqlState::UNDEFINED_COLUMN,
                format!(
                    "column \"{c}\" of relation \"{}\" does not exist",
                    parent.name
                ),
            )
        })?);
    }
    check_unique_covers_key(&parent.name, &parent.columns, &key, &pk, true)?;
    if !parent.primary_key.is_empty() {
        return Err(invalid_table(format!(
            "multiple primary keys for table \"{}\" are not allowed",
            parent.name
        )));
    }
    for part in partitions_of(&engine.catalog, &t.txn, parent)? {
        crate::locking::lock_for_ddl(&mut t.txn, &part, TableMode::AccessExclusive)?;
        if part.primary_key == pk {
            continue;
        }
        if !part.primary_key.is_empty() {
            return Err(invalid_table(format!(
                "multiple primary keys for table \"{}\" are not allowed",
                part.name
            )));
        }
        // The rows move to a new table id; the new definition stays a partition.
        let keyed = crate::ddl::add_primary_key(engine, t, &part, cols, interrupt)?;
        let mut new = (*keyed).clone();
        new.partitioning = part.partitioning.clone();
        engine.catalog.replace_table(&mut t.txn, &keyed, new)?;
        t.dropped.push(keyed.def_id);
        t.partition_links.push(part.name.clone());
    }
    let mut p2 = (**parent).clone();
    for &i in &pk {
        p2.columns[i].not_null = true;
    }
    p2.primary_key = pk;
    engine.catalog.replace_table(&mut t.txn, parent, p2)?;
    t.dropped.push(parent.def_id);
    t.ddl = true;
    Ok(())
}

/// CREATE INDEX on a partitioned table: each partition gets its own index for `ix` (locked
/// SHARE, built), unless it already has one on the same columns with the same uniqueness,
/// which then serves as it (as PostgreSQL attaches an equivalent index).
pub(crate) fn index_partitions(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    parent: &TableDef,
    ix: &IndexDef,
    interrupt: &crate::session::Interrupt,
) -> SqlResult<()> {
    for part in partitions_of(&engine.catalog, &t.txn, parent)? {
        crate::locking::lock_for_ddl(&mut t.txn, &part, TableMode::Share)?;
        if part
            .indexes
            .iter()
            .any(|x| x.columns == ix.columns && x.unique == ix.unique)
        {
            continue;
        }
        let ix2 = partition_index(engine, t, &part, ix)?;
        crate::index::build(&mut t.txn, &part, &ix2, interrupt)?;
        let mut new = (*part).clone();
        new.indexes.push(ix2);
        engine.catalog.replace_table(&mut t.txn, &part, new)?;
        t.dropped.push(part.def_id);
        t.ddl = true;
    }
    Ok(())
}

/// The index of `parent` (a partitioned table) that a partition's index `ix` stands for, if
/// any: DROP INDEX of it is refused (2BP01), as PostgreSQL refuses to drop an index attached
/// to a partitioned index.
pub(crate) fn parent_index_of(
    engine: &SqlEngine,
    txn: &dyn Transaction,
    part: &TableDef,
    ix: &IndexDef,
) -> SqlResult<Option<String>> {
    let Some((parent, _)) = &part.partitioning.of else {
        return Ok(None);
    };
    let Some(parent) = engine.catalog.lookup(txn, parent)? else {
        return Ok(None);
    };
    // The partition's first index on those columns is the one standing for the parent's.
    let first = part
        .indexes
        .iter()
        .find(|x| x.columns == ix.columns && x.unique == ix.unique);
    if first.map(|x| x.id) != Some(ix.id) {
        return Ok(None);
    }
    Ok(parent
        .indexes
        .iter()
        .find(|x| x.columns == ix.columns && x.unique == ix.unique)
        .map(|x| x.name.clone()))
}

/// The index a partition `part` gets for its parent's index `ix`, named as PostgreSQL names
/// it (`<partition>_<columns>_key` for a constraint, `_idx` otherwise; `_pkey` is the
/// primary key's), its name reserved. The caller builds it.
pub(crate) fn partition_index(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    part: &TableDef,
    ix: &IndexDef,
) -> SqlResult<IndexDef> {
    let cols: Vec<&str> = ix
        .columns
        .iter()
        .map(|&i| part.columns[i].name.as_str())
        .collect();
    let suffix = if ix.constraint { "key" } else { "idx" };
    let iname = crate::ddl::free_name(
        engine,
        &t.txn,
        &crate::ddl::default_name(&part.name, &cols, suffix),
    )?;
    crate::ddl::add_index_name(engine, t, &iname, part)?;
    Ok(IndexDef {
        id: engine.catalog.allocate_id(),
        name: iname,
        columns: ix.columns.clone(),
        unique: ix.unique,
        constraint: ix.constraint,
    })
}

/// ATTACH's first column check: no column the parent lacks (42804).
fn check_extra_columns(parent: &TableDef, part: &TableDef) -> SqlResult<()> {
    if let Some(c) = part
        .columns
        .iter()
        .find(|c| parent.column_index(&c.name).is_none())
    {
        return Err(SqlError::new(
            SqlState::DATATYPE_MISMATCH,
            format!(
                "table \"{}\" contains column \"{}\" not found in parent \"{}\"",
                part.name, c.name, parent.name
            ),
        )
        .with_detail("The new partition may contain only the columns present in parent."));
    }
    Ok(())
}

/// ATTACH's other column checks, in PostgreSQL's order: for each parent column: present,
/// same type, NOT NULL if the parent's is (all 42804).
fn check_same_columns(parent: &TableDef, part: &TableDef) -> SqlResult<()> {
    let mismatch = |m: String| SqlError::new(SqlState::DATATYPE_MISMATCH, m);
    for pc in &parent.columns {
        let Some(c) = part.columns.iter().find(|c| c.name == pc.name) else {
            return Err(mismatch(format!(
                "child table is missing column \"{}\"",
                pc.name
            )));
        };
        if c.ty != pc.ty {
            return Err(mismatch(format!(
                "child table \"{}\" has different type for column \"{}\"",
                part.name, pc.name
            )));
        }
        if pc.not_null && !c.not_null {
            return Err(mismatch(format!(
                "column \"{}\" in child table must be marked NOT NULL",
                pc.name
            )));
        }
    }
    if part
        .columns
        .iter()
        .zip(&parent.columns)
        .any(|(a, b)| a.name != b.name)
    {
        return Err(SqlError::unsupported(
            "ATTACH PARTITION of a table whose columns are in another order than its parent's",
        ));
    }
    Ok(())
}

/// ALTER TABLE parent DETACH PARTITION name: the partition becomes a plain table with its
/// rows, indexes and constraints (both locked ACCESS EXCLUSIVE). CONCURRENTLY is refused
/// (25001 in a transaction block as PostgreSQL, else 0A000); FINALIZE finds no pending
/// detach (55000), as PostgreSQL says when none was started.
pub(crate) fn detach(
    engine: &SqlEngine,
    t: &mut ActiveTxn,
    parent: &Arc<TableDef>,
    part_name: &ast::ObjectName,
    mode: Option<ast::DetachPartitionMode>,
) -> SqlResult<()> {
    if parent.partitioning.key.is_none() {
        return Err(invalid_object(format!(
            "table \"{}\" is not partitioned",
            parent.name
        )));
    }
    let name = object_name(part_name)?;
    match mode {
        None => {}
        Some(ast::DetachPartitionMode::Concurrently) => {
            if t.in_explicit_block() {
                return Err(SqlError::new(
                    SqlState::ACTIVE_SQL_TRANSACTION,
                    "ALTER TABLE ... DETACH CONCURRENTLY cannot run inside a transaction block",
                ));
            }
            return Err(SqlError::unsupported("DETACH PARTITION ... CONCURRENTLY"));
        }
        Some(ast::DetachPartitionMode::Finalize) => {
            engine.catalog.require(&t.txn, &name)?;
            return Err(SqlError::new(
                SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("cannot complete detaching partition \"{name}\""),
            )
            .with_detail("There's no pending concurrent detach."));
        }
    }
    crate::locking::lock_for_ddl(&mut t.txn, parent, TableMode::AccessExclusive)?;
    let part = engine.catalog.require(&t.txn, &name)?;
    if part.partitioning.of.as_ref().map(|(p, _)| p) != Some(&parent.name) {
        return Err(SqlError::new(
            SqlState::UNDEFINED_TABLE,
            format!(
                "relation \"{}\" is not a partition of relation \"{}\"",
                part.name, parent.name
            ),
        ));
    }
    crate::locking::lock_for_ddl(&mut t.txn, &part, TableMode::AccessExclusive)?;
    let mut new = (*part).clone();
    new.partitioning.of = None;
    engine.catalog.replace_table(&mut t.txn, &part, new)?;
    t.dropped.push(part.def_id);
    let mut p2 = (**parent).clone();
    p2.partitioning.children.retain(|c| *c != part.name);
    engine.catalog.replace_table(&mut t.txn, parent, p2)?;
    t.dropped.push(parent.def_id);
    t.partition_links.push(part.name.clone());
    t.ddl = true;
    Ok(())
}

/// The partitions of a partitioned table as `txn` sees them, in the parent's order.
pub(crate) fn partitions_of(
    catalog: &Catalog,
    txn: &dyn Transaction,
    parent: &TableDef,
) -> SqlResult<Vec<Arc<TableDef>>> {
    let mut out = Vec::with_capacity(parent.partitioning.children.len());
    for c in &parent.partitioning.children {
        match catalog.lookup(txn, c)? {
            Some(d) => out.push(d),
            None => {
                return Err(SqlError::corrupt(format!(
                    "partition \"{c}\" of \"{}\" has no definition",
                    parent.name
                )))
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Reading a partitioned table: Append over the surviving partitions.

/// A partitioned table read in a query: its partitions' rows, one partition after another.
#[derive(Debug, Clone)]
pub(crate) struct AppendPlan {
    /// The partitioned table (its columns are every partition's columns).
    pub parent: Arc<TableDef>,
    /// The partitions that survive plan-time pruning: each a table source, maybe filtered.
    pub parts: Vec<Source>,
    /// Conjuncts with parameters: pruned again at execution, when their values are known.
    pub runtime: Vec<Expr>,
}

/// The partition a part of an [`AppendPlan`] reads.
pub(crate) fn part_def(s: &Source) -> Option<&Arc<TableDef>> {
    match s {
        Source::Table { def, .. } => Some(def),
        Source::Filter(inner, _) => part_def(inner),
        _ => None,
    }
}

/// A partitioned table as a FROM item: an Append of all its partitions (pruned later, when
/// the conjuncts are placed).
pub(crate) fn append_source(
    catalog: &Catalog,
    txn: &dyn Transaction,
    parent: Arc<TableDef>,
) -> SqlResult<Source> {
    let parts = partitions_of(catalog, txn, &parent)?
        .into_iter()
        .map(|def| Source::Table {
            def,
            access: Access::Full,
        })
        .collect();
    Ok(Source::Append(Box::new(AppendPlan {
        parent,
        parts,
        runtime: vec![],
    })))
}

fn mentions_param(e: &Expr) -> bool {
    match e {
        Expr::Param(_) => true,
        Expr::Cast { expr, .. } | Expr::Neg(expr) => mentions_param(expr),
        Expr::Binary { left, right, .. } => mentions_param(left) || mentions_param(right),
        Expr::InList { expr, list, .. } => mentions_param(expr) || list.iter().any(mentions_param),
        _ => false,
    }
}

/// Places `conds` (conjuncts over the parent's rows) on an Append: partitions that cannot
/// match them are dropped, the others choose their access path from them. With `filter_parts`
/// each partition also filters its rows by them (a join input); otherwise the query above
/// filters.
pub(crate) fn place_in_append(mut a: AppendPlan, conds: Vec<Expr>, filter_parts: bool) -> Source {
    let defs: Vec<Arc<TableDef>> = a.parts.iter().filter_map(part_def).cloned().collect();
    let keep = prune(&a.parent, &defs, &conds, &plan_time_value);
    let f = crate::plan::and_all(conds.clone());
    a.runtime = conds.into_iter().filter(mentions_param).collect();
    a.parts = defs
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(def, _)| {
            let access = choose_access(&def, f.as_ref());
            let table = Source::Table { def, access };
            match (&f, filter_parts) {
                (Some(f), true) => Source::Filter(Box::new(table), f.clone()),
                _ => table,
            }
        })
        .collect();
    Source::Append(Box::new(a))
}

/// A value known before the scan at execution: a constant or a parameter, maybe cast.
pub(crate) fn runtime_value(e: &Expr, params: &[Value]) -> Option<Value> {
    match e {
        Expr::Const(v) => Some(v.clone()),
        Expr::Param(i) => params.get(*i).cloned(),
        Expr::Cast { expr, ty, explicit } => cast(runtime_value(expr, params)?, ty, *explicit).ok(),
        _ => None,
    }
}

/// Which parts of `a` to read with these parameter values.
pub(crate) fn runtime_keep(a: &AppendPlan, params: &[Value]) -> Vec<bool> {
    if a.runtime.is_empty() {
        return vec![true; a.parts.len()];
    }
    let defs: Vec<Arc<TableDef>> = a.parts.iter().filter_map(part_def).cloned().collect();
    prune(&a.parent, &defs, &a.runtime, &|e| runtime_value(e, params))
}

// ---------------------------------------------------------------------------------------
// Writing: where a row of a table goes.

/// Where rows written to one table go, looked up once per statement.
pub(crate) enum Placement {
    /// A plain table: rows stay in it.
    Plain,
    /// A partitioned table: rows go to the partition that accepts them.
    Parent {
        parent: Arc<TableDef>,
        key: PartitionKey,
        parts: Vec<Arc<TableDef>>,
    },
    /// A partition written directly: rows must fit its bound.
    Partition {
        key: PartitionKey,
        bound: PartitionBound,
        /// The other partitions' bounds (a DEFAULT partition takes what none of them takes).
        others: Vec<PartitionBound>,
    },
}

impl Placement {
    /// The placement of rows written to `def` (no catalog reads for a plain table).
    pub(crate) fn of(
        catalog: &Catalog,
        txn: &dyn Transaction,
        def: &Arc<TableDef>,
    ) -> SqlResult<Placement> {
        if def.partitioning.is_empty() {
            return Ok(Placement::Plain);
        }
        if let Some(key) = &def.partitioning.key {
            return Ok(Placement::Parent {
                parent: def.clone(),
                key: key.clone(),
                parts: partitions_of(catalog, txn, def)?,
            });
        }
        let Some((parent_name, bound)) = &def.partitioning.of else {
            return Ok(Placement::Plain);
        };
        let parent = catalog.require(txn, parent_name)?;
        let Some(key) = parent.partitioning.key.clone() else {
            return Err(SqlError::corrupt(format!(
                "parent \"{parent_name}\" of \"{}\" is not partitioned",
                def.name
            )));
        };
        let mut others = Vec::new();
        if *bound == PartitionBound::Default {
            for p in partitions_of(catalog, txn, &parent)? {
                if let Some((_, b)) = &p.partitioning.of {
                    if p.id != def.id && *b != PartitionBound::Default {
                        others.push(b.clone());
                    }
                }
            }
        }
        Ok(Placement::Partition {
            key,
            bound: bound.clone(),
            others,
        })
    }

    /// The partitions a parent's rows are in (empty for the other placements).
    pub(crate) fn parts(&self) -> &[Arc<TableDef>] {
        match self {
            Placement::Parent { parts, .. } => parts,
            _ => &[],
        }
    }

    /// The table `row`, written to `table`, belongs in: `table` itself (plain table, or a
    /// partition whose bound fits), or the partition of a parent that accepts it. 23514 when
    /// there is none.
    pub(crate) fn place<'a>(
        &'a self,
        table: &'a Arc<TableDef>,
        row: &[Value],
    ) -> SqlResult<&'a Arc<TableDef>> {
        match self {
            Placement::Plain => Ok(table),
            Placement::Parent { parent, key, parts } => {
                route(key, parts, row).ok_or_else(|| no_partition(parent, key, row))
            }
            Placement::Partition { key, bound, others } => {
                let fits = match bound {
                    PartitionBound::Default => !others.iter().any(|b| accepts(key, b, row)),
                    b => accepts(key, b, row),
                };
                if fits {
                    Ok(table)
                } else {
                    Err(violates_bound(table, row))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ColumnDef;
    use crate::encoding::TableId;

    fn table(name: &str, of: Option<PartitionBound>, key: Option<PartitionKey>) -> TableDef {
        TableDef {
            id: TableId(1),
            def_id: TableId(2),
            name: name.into(),
            columns: vec![
                ColumnDef {
                    name: "k".into(),
                    ty: DataType::Int4,
                    not_null: false,
                    default: None,
                    identity: Default::default(),
                    generated: None,
                },
                ColumnDef {
                    name: "v".into(),
                    ty: DataType::Text,
                    not_null: false,
                    default: None,
                    identity: Default::default(),
                    generated: None,
                },
            ],
            primary_key: vec![],
            checks: vec![],
            indexes: vec![],
            foreign_keys: vec![],
            referenced_by: vec![],
            partitioning: Partitioning {
                key,
                children: vec![],
                of: of.map(|b| ("p".to_string(), b)),
            },
        }
    }

    fn range(a: Datum, b: Datum) -> PartitionBound {
        PartitionBound::Range {
            from: vec![a],
            to: vec![b],
        }
    }

    fn v(i: i32) -> Datum {
        Datum::Value(Value::Int4(i))
    }

    #[test]
    fn partitioning_round_trips() {
        for p in [
            Partitioning {
                key: Some(PartitionKey {
                    strategy: Strategy::Range,
                    columns: vec![1, 0],
                }),
                children: vec!["a".into(), "b".into()],
                of: None,
            },
            Partitioning {
                key: None,
                children: vec![],
                of: Some((
                    "p".into(),
                    PartitionBound::Range {
                        from: vec![Datum::MinValue, Datum::MinValue],
                        to: vec![v(3), Datum::MaxValue],
                    },
                )),
            },
            Partitioning {
                key: None,
                children: vec![],
                of: Some((
                    "p".into(),
                    PartitionBound::List(vec![Value::Null, Value::Text("x".into())]),
                )),
            },
            Partitioning {
                key: None,
                children: vec![],
                of: Some((
                    "p".into(),
                    PartitionBound::Hash {
                        modulus: 4,
                        remainder: 3,
                    },
                )),
            },
            Partitioning {
                key: None,
                children: vec![],
                of: Some(("p".into(), PartitionBound::Default)),
            },
        ] {
            let mut out = Vec::new();
            p.encode(&mut out);
            let mut r = Reader::new(&out);
            assert_eq!(Partitioning::decode(&mut r, 2).unwrap(), p);
            assert!(r.is_empty());
            let mut r = Reader::new(&out[..out.len() - 1]);
            assert!(Partitioning::decode(&mut r, 2).is_err());
        }
    }

    #[test]
    fn overlapping_bounds_are_refused_with_the_partition_named() {
        let existing = vec![
            ("p1".to_string(), range(Datum::MinValue, v(10))),
            ("p2".to_string(), range(v(10), v(20))),
        ];
        assert!(check_new_bound("p3", &range(v(20), v(30)), &existing).is_ok());
        let e = check_new_bound("p3", &range(v(15), v(30)), &existing).unwrap_err();
        assert_eq!(e.message, "partition \"p3\" would overlap partition \"p2\"");
        assert_eq!(e.code, SqlState::INVALID_OBJECT_DEFINITION);
        let e = check_new_bound("p3", &range(v(5), v(5)), &existing).unwrap_err();
        assert_eq!(
            e.message,
            "empty range bound specified for partition \"p3\""
        );
        let hashes = vec![(
            "h0".to_string(),
            PartitionBound::Hash {
                modulus: 4,
                remainder: 1,
            },
        )];
        let h = |m, r| PartitionBound::Hash {
            modulus: m,
            remainder: r,
        };
        assert!(check_new_bound("h1", &h(4, 2), &hashes).is_ok());
        assert!(check_new_bound("h1", &h(8, 5), &hashes).is_err()); // 5 % 4 == 1
        assert!(check_new_bound("h1", &h(8, 6), &hashes).is_ok());
        assert!(check_new_bound("h1", &h(3, 0), &hashes).is_err()); // not a factor
        let lists = vec![("l1".to_string(), PartitionBound::List(vec![Value::Null]))];
        assert!(check_new_bound("l2", &PartitionBound::List(vec![Value::Null]), &lists).is_err());
        assert!(check_new_bound("d", &PartitionBound::Default, &lists).is_ok());
    }

    #[test]
    fn rows_route_to_their_range_then_default() {
        let key = PartitionKey {
            strategy: Strategy::Range,
            columns: vec![0],
        };
        let parts = vec![
            Arc::new(table("p1", Some(range(Datum::MinValue, v(10))), None)),
            Arc::new(table("p2", Some(range(v(10), v(20))), None)),
            Arc::new(table("pd", Some(PartitionBound::Default), None)),
        ];
        let row = |k: Value| vec![k, Value::Null];
        let name = |k| route(&key, &parts, &row(k)).map(|p| p.name.clone());
        assert_eq!(name(Value::Int4(-5)).as_deref(), Some("p1"));
        assert_eq!(name(Value::Int4(10)).as_deref(), Some("p2"));
        assert_eq!(name(Value::Int4(20)).as_deref(), Some("pd"));
        assert_eq!(name(Value::Null).as_deref(), Some("pd"));
        assert!(route(&key, &parts[..2], &row(Value::Int4(25))).is_none());
    }

    /// Placements PostgreSQL 15 chose for the same rows (`INSERT ... SELECT g FROM
    /// generate_series(-20, 40) g` into HASH (id) tables with MODULUS 4 over bigint and
    /// MODULUS 3 over int, then `string_agg(id)` per partition).
    #[test]
    fn integer_keys_hash_to_the_partitions_postgres_chooses() {
        let pg = |list: &str| -> Vec<i64> { list.split(',').map(|x| x.parse().unwrap()).collect() };
        let cases: [(DataType, u64, u64, &str); 5] = [
            (
                DataType::Int8,
                4,
                0,
                "-19,-18,-3,0,1,12,14,16,17,26,28,30,32,34",
            ),
            (
                DataType::Int8,
                4,
                1,
                "-15,-13,-12,-11,-8,-1,3,5,8,9,11,19,20,21,31,35,36,37,38",
            ),
            (DataType::Int8, 4, 2, "-17,-7,-6,-4,-2,2,13,18,23,25,27,39"),
            (
                DataType::Int4,
                3,
                0,
                "-20,-18,-17,-10,-9,-7,2,4,6,8,15,16,18,19,20,27,29,33,34,38",
            ),
            (
                DataType::Int4,
                3,
                1,
                "-16,-15,-12,-6,-5,-3,-2,3,7,10,13,14,21,25,26,36,40",
            ),
        ];
        let key = PartitionKey {
            strategy: Strategy::Hash,
            columns: vec![0],
        };
        for (ty, modulus, remainder, want) in cases {
            let got: Vec<i64> = (-20i64..=40)
                .filter(|&g| {
                    let v = match ty {
                        DataType::Int8 => Value::Int8(g),
                        _ => Value::Int4(g as i32),
                    };
                    key_hash(&key, &[v]) % modulus == remainder
                })
                .collect();
            assert_eq!(
                got,
                pg(want),
                "{ty:?} modulus {modulus} remainder {remainder}"
            );
        }
    }

    #[test]
    fn pruning_keeps_only_partitions_that_can_match() {
        let key = PartitionKey {
            strategy: Strategy::Range,
            columns: vec![0],
        };
        let parent = table("p", None, Some(key));
        let parts = vec![
            Arc::new(table("p1", Some(range(Datum::MinValue, v(10))), None)),
            Arc::new(table("p2", Some(range(v(10), v(20))), None)),
            Arc::new(table("pd", Some(PartitionBound::Default), None)),
        ];
        let cmp = |op, c: i32| Expr::Binary {
            op,
            left: Box::new(Expr::Column(0)),
            right: Box::new(Expr::Const(Value::Int4(c))),
            ty: DataType::Int4,
        };
        let eval = |e: &Expr| plan_time_value(e);
        assert_eq!(
            prune(&parent, &parts, &[cmp(BinOp::Eq, 12)], &eval),
            [false, true, false]
        );
        assert_eq!(
            prune(&parent, &parts, &[cmp(BinOp::Eq, 25)], &eval),
            [false, false, true]
        );
        assert_eq!(
            prune(&parent, &parts, &[cmp(BinOp::GtEq, 10)], &eval),
            [false, true, true]
        );
        assert_eq!(
            prune(&parent, &parts, &[cmp(BinOp::Lt, 10)], &eval),
            [true, false, true]
        );
        let inl = Expr::InList {
            expr: Box::new(Expr::Column(0)),
            list: vec![Expr::Const(Value::Int4(1)), Expr::Const(Value::Int4(2))],
            negated: false,
        };
        assert_eq!(prune(&parent, &parts, &[inl], &eval), [true, false, false]);
        // A parameter is unknown at plan time: nothing is pruned.
        let param = Expr::Binary {
            op: BinOp::Eq,
            left: Box::new(Expr::Column(0)),
            right: Box::new(Expr::Param(0)),
            ty: DataType::Int4,
        };
        assert_eq!(prune(&parent, &parts, &[param], &eval), [true, true, true]);
    }
}
