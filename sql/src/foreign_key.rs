//! FOREIGN KEY constraints: definition (CREATE TABLE, ALTER TABLE ADD CONSTRAINT), the
//! checks and actions on the write path, and what DROP / TRUNCATE / RENAME do to them.
//!
//! A foreign key lives in the referencing ("child") table's definition
//! ([`ForeignKeyDef`]: own column positions, referenced table and column *names*); the
//! referenced ("parent") table lists its children by name in [`TableDef::referenced_by`].
//! Both sides are resolved at execution through the statement's transaction, so the checks
//! always run against the definitions the transaction sees, and a table without foreign keys
//! pays one `is_empty` test per written row.
//!
//! ```text
//!  child INSERT / UPDATE of key columns          parent DELETE / UPDATE of referenced columns
//!  ─────────────────────────────────────         ────────────────────────────────────────────
//!  values all non-NULL? (MATCH SIMPLE)           for each child fk naming this table:
//!  parent row key: PK point key, or the            referencing rows: child PK prefix range,
//!    unique index entry -> row key                   or an index prefix, or a full scan
//!  lock it FOR KEY SHARE, read newest              (read like PostgreSQL's RI queries:
//!  absent -> 23503 "is not present"                 newest committed at READ COMMITTED)
//!                                                  RESTRICT / NO ACTION: 23503 at the end of
//!                                                  the statement if still referenced (NO
//!                                                  ACTION: unless the key is back); CASCADE /
//!                                                  SET NULL / SET DEFAULT: rewrite those rows
//!                                                  at once (recursively)
//! ```
//!
//! Concurrency is PostgreSQL's: the child's FOR KEY SHARE lock on the parent row conflicts
//! with the parent DELETE's (and key UPDATE's) FOR UPDATE lock but not with an UPDATE of
//! other columns (FOR NO KEY UPDATE). Whichever comes second waits; a parent DELETE that
//! waited then sees the committed child (the referencing-row scan reads the newest committed
//! versions, [`Transaction::scan_latest`]), and a child INSERT that waited sees the parent
//! gone. At REPEATABLE READ both cases fail with 40001 instead, as in PostgreSQL.
//!
//! A dropped referencing column drops its foreign key; a referenced column, or the unique
//! index a foreign key needs, cannot be dropped while referenced (2BP01: there is no DROP ...
//! CASCADE for them yet). NB: not done: MATCH FULL, DEFERRABLE constraints, `ON DELETE SET
//! NULL (columns)`, NOT VALID, the REFERENCES privilege, foreign keys from or to partitioned
//! tables (0A000).

use std::sync::Arc;

use bytes::Bytes;
use gnomon_mvcc::{LockWait, RowMode};
use sqlparser::ast;

use crate::catalog::{decode_table_row, FkAction, ForeignKeyDef, TableDef};
use crate::encoding::{encode_key_value, encode_row, prefix_range, KeyPrefix};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::cast;
use crate::locking::lock_error;
use crate::query::{ident_name, object_name, store_value, Binder, ExecContext, SessionInfo};
use crate::storage::Transaction;
use crate::types::{compare_values, Value};

/// How deep CASCADE / SET NULL / SET DEFAULT may recurse through chains of foreign keys.
const MAX_DEPTH: usize = 64;

fn action(a: &Option<ast::ReferentialAction>) -> FkAction {
    match a {
        None | Some(ast::ReferentialAction::NoAction) => FkAction::NoAction,
        Some(ast::ReferentialAction::Restrict) => FkAction::Restrict,
        Some(ast::ReferentialAction::Cascade) => FkAction::Cascade,
        Some(ast::ReferentialAction::SetNull) => FkAction::SetNull,
        Some(ast::ReferentialAction::SetDefault) => FkAction::SetDefault,
    }
}

fn fk_error(message: impl Into<String>) -> SqlError {
    SqlError::new(SqlState::INVALID_FOREIGN_KEY, message)
}

/// PostgreSQL's default name `<table>_<col>..._fkey`, made unique among `taken`.
pub(crate) fn default_name(table: &str, cols: &[&str], taken: &dyn Fn(&str) -> bool) -> String {
    let mut base = table.to_string();
    for c in cols {
        base.push('_');
        base.push_str(c);
    }
    base.push_str("_fkey");
    let mut n = base.clone();
    let mut k = 1;
    while taken(&n) {
        n = format!("{base}{k}");
        k += 1;
    }
    n
}

/// Binds a FOREIGN KEY clause of `child` (whose columns are `child.columns`) against
/// `parent` (which is `child` itself for a self reference). `columns` are the referencing
/// column names (the column itself for a column constraint).
pub(crate) fn define(
    child: &TableDef,
    parent: &TableDef,
    fk: &ast::ForeignKeyConstraint,
    columns: &[String],
    name: Option<String>,
) -> SqlResult<ForeignKeyDef> {
    if fk.characteristics.as_ref().is_some_and(|c| {
        c.deferrable == Some(true) || c.initially == Some(ast::DeferrableInitial::Deferred)
    }) {
        return Err(SqlError::unsupported("DEFERRABLE foreign keys"));
    }
    if !child.partitioning.is_empty() || !parent.partitioning.is_empty() {
        return Err(SqlError::unsupported(
            "foreign keys from or to partitioned tables and partitions",
        ));
    }
    if matches!(
        fk.match_kind,
        Some(ast::ConstraintReferenceMatchKind::Full | ast::ConstraintReferenceMatchKind::Partial)
    ) {
        return Err(SqlError::unsupported("MATCH FULL / MATCH PARTIAL"));
    }
    let mut cols = Vec::with_capacity(columns.len());
    for c in columns {
        cols.push(child.column_index(c).ok_or_else(|| {
            SqlError::new(
                SqlState::UNDEFINED_COLUMN,
                format!("column \"{c}\" referenced in foreign key constraint does not exist"),
            )
        })?);
    }
    let ref_cols: Vec<usize> = if fk.referred_columns.is_empty() {
        if parent.primary_key.is_empty() {
            return Err(fk_error(format!(
                "there is no primary key for referenced table \"{}\"",
                parent.name
            )));
        }
        parent.primary_key.clone()
    } else {
        let mut v = Vec::new();
        for c in &fk.referred_columns {
            let n = ident_name(c);
            v.push(parent.column_index(&n).ok_or_else(|| {
                SqlError::new(
                    SqlState::UNDEFINED_COLUMN,
                    format!("column \"{n}\" referenced in foreign key constraint does not exist"),
                )
            })?);
        }
        v
    };
    if ref_cols.len() != cols.len() {
        return Err(fk_error(
            "number of referencing and referenced columns for foreign key disagree",
        ));
    }
    if !is_unique_key(parent, &ref_cols) {
        return Err(fk_error(format!(
            "there is no unique constraint matching given keys for referenced table \"{}\"",
            parent.name
        )));
    }
    let name = match name {
        Some(n) => n,
        None => {
            let names: Vec<&str> = cols
                .iter()
                .map(|&i| child.columns[i].name.as_str())
                .collect();
            default_name(&child.name, &names, &|n| {
                child.foreign_keys.iter().any(|f| f.name == n)
                    || child.checks.iter().any(|c| c.name == n)
            })
        }
    };
    for (&c, &p) in cols.iter().zip(&ref_cols) {
        let (ct, pt) = (&child.columns[c].ty, &parent.columns[p].ty);
        let compatible =
            ct == pt || (ct.is_numeric() && pt.is_numeric()) || (ct.is_string() && pt.is_string());
        if !compatible {
            return Err(SqlError::mismatch(format!(
                "foreign key constraint \"{name}\" cannot be implemented"
            ))
            .with_detail(format!(
                "Key columns \"{}\" and \"{}\" are of incompatible types: {} and {}.",
                child.columns[c].name,
                parent.columns[p].name,
                ct.name(),
                pt.name()
            )));
        }
    }
    let on_delete = action(&fk.on_delete);
    let on_update = action(&fk.on_update);
    Ok(ForeignKeyDef {
        name,
        columns: cols,
        ref_table: parent.name.clone(),
        ref_columns: ref_cols
            .iter()
            .map(|&i| parent.columns[i].name.clone())
            .collect(),
        on_delete,
        on_update,
    })
}

/// The referencing column names of a table-level FOREIGN KEY clause.
pub(crate) fn clause_columns(fk: &ast::ForeignKeyConstraint) -> Vec<String> {
    fk.columns.iter().map(ident_name).collect()
}

/// The name of a FOREIGN KEY clause's referenced table.
pub(crate) fn clause_table(fk: &ast::ForeignKeyConstraint) -> SqlResult<String> {
    object_name(&fk.foreign_table)
}

/// True when `cols` (in any order) are exactly the primary key or a unique index.
fn is_unique_key(t: &TableDef, cols: &[usize]) -> bool {
    let mut want = cols.to_vec();
    want.sort_unstable();
    let same = |other: &[usize]| {
        let mut o = other.to_vec();
        o.sort_unstable();
        o == want
    };
    (!t.primary_key.is_empty() && same(&t.primary_key))
        || t.indexes.iter().any(|ix| ix.unique && same(&ix.columns))
}

/// Positions in `parent` of a foreign key's referenced columns.
fn ref_positions(parent: &TableDef, fk: &ForeignKeyDef) -> SqlResult<Vec<usize>> {
    fk.ref_columns
        .iter()
        .map(|n| {
            parent.column_index(n).ok_or_else(|| {
                SqlError::corrupt(format!(
                    "foreign key \"{}\" names a missing column \"{n}\"",
                    fk.name
                ))
            })
        })
        .collect()
}

fn lookup(ctx: &ExecContext<'_>, name: &str) -> SqlResult<Arc<TableDef>> {
    ctx.catalog
        .lookup(&*ctx.txn, name)?
        .ok_or_else(|| SqlError::corrupt(format!("foreign key names a missing table \"{name}\"")))
}

fn key_text(names: &[&str], values: &[Value]) -> String {
    let vals: Vec<String> = values
        .iter()
        .map(|v| v.to_text().unwrap_or_else(|| "null".into()))
        .collect();
    format!("({})=({})", names.join(", "), vals.join(", "))
}

/// 23503 for a child row whose key is not in the parent.
fn not_present(child: &TableDef, fk: &ForeignKeyDef, values: &[Value]) -> SqlError {
    let names: Vec<&str> = fk
        .columns
        .iter()
        .map(|&i| child.columns[i].name.as_str())
        .collect();
    SqlError::new(
        SqlState::FOREIGN_KEY_VIOLATION,
        format!(
            "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
            child.name, fk.name
        ),
    )
    .with_detail(format!(
        "Key {} is not present in table \"{}\".",
        key_text(&names, values),
        fk.ref_table
    ))
}

/// 23503 for a parent key still referenced by a child row.
fn still_referenced(parent: &str, child: &str, fk: &ForeignKeyDef, values: &[Value]) -> SqlError {
    let names: Vec<&str> = fk.ref_columns.iter().map(String::as_str).collect();
    SqlError::new(
        SqlState::FOREIGN_KEY_VIOLATION,
        format!(
            "update or delete on table \"{parent}\" violates foreign key constraint \"{}\" on table \"{child}\"",
            fk.name
        ),
    )
    .with_detail(format!(
        "Key {} is still referenced from table \"{child}\".",
        key_text(&names, values)
    ))
}

/// The key of the parent row with `values` in columns `ref_cols` (a primary key or unique
/// index of `parent`), without locking: `None` when no row can have them.
fn parent_key(
    txn: &dyn Transaction,
    parent: &TableDef,
    ref_cols: &[usize],
    values: &[Value],
) -> SqlResult<Option<Vec<u8>>> {
    let value_of = |col: usize| -> Option<Value> {
        let j = ref_cols.iter().position(|&c| c == col)?;
        cast(values[j].clone(), &parent.columns[col].ty, false).ok()
    };
    let mut want = ref_cols.to_vec();
    want.sort_unstable();
    let mut pk = parent.primary_key.clone();
    pk.sort_unstable();
    if !parent.primary_key.is_empty() && pk == want {
        let mut key = KeyPrefix::Rows(parent.id).encode();
        for &c in &parent.primary_key {
            let Some(v) = value_of(c) else {
                return Ok(None);
            };
            encode_key_value(&v, &mut key);
        }
        return Ok(Some(key));
    }
    for ix in &parent.indexes {
        let mut cols = ix.columns.clone();
        cols.sort_unstable();
        if !ix.unique || cols != want {
            continue;
        }
        let mut entry = KeyPrefix::Index(parent.id, ix.id).encode();
        for &c in &ix.columns {
            let Some(v) = value_of(c) else {
                return Ok(None);
            };
            encode_key_value(&v, &mut entry);
        }
        // The entry as the check must see it: newest committed at READ COMMITTED.
        return Ok(txn.read_locked(&entry)?.map(|k| k.to_vec()));
    }
    Err(SqlError::corrupt(format!(
        "no unique key of \"{}\" matches a foreign key",
        parent.name
    )))
}

/// True when `row`'s `cols` equal `values`.
fn matches(row: &[Value], cols: &[usize], values: &[Value]) -> bool {
    cols.iter().zip(values).all(|(&c, v)| {
        !row[c].is_null() && compare_values(&row[c], v) == Some(std::cmp::Ordering::Equal)
    })
}

/// Checks that the parent row `child`'s foreign key `fk` names in `row` exists, locking it
/// FOR KEY SHARE (so it cannot be deleted or re-keyed before this transaction ends).
fn check_parent(
    ctx: &mut ExecContext<'_>,
    child: &TableDef,
    fk: &ForeignKeyDef,
    row: &[Value],
) -> SqlResult<()> {
    let values: Vec<Value> = fk.columns.iter().map(|&c| row[c].clone()).collect();
    if values.iter().any(Value::is_null) {
        return Ok(()); // MATCH SIMPLE
    }
    let parent = lookup(ctx, &fk.ref_table)?;
    let ref_cols = ref_positions(&parent, fk)?;
    let Some(key) = parent_key(&*ctx.txn, &parent, &ref_cols, &values)? else {
        return Err(not_present(child, fk, &values));
    };
    ctx.txn
        .lock_row(&key, RowMode::KeyShare, LockWait::Block)
        .map_err(|e| lock_error(e, &parent.name))?;
    let found = match ctx.txn.read_locked(&key)? {
        Some(bytes) => matches(&decode_table_row(&parent, &bytes)?, &ref_cols, &values),
        None => false,
    };
    if !found {
        return Err(not_present(child, fk, &values));
    }
    Ok(())
}

/// After a new row of `table` is written: every foreign key's parent must exist.
pub(crate) fn after_insert(
    ctx: &mut ExecContext<'_>,
    table: &TableDef,
    row: &[Value],
) -> SqlResult<()> {
    for fk in &table.foreign_keys {
        check_parent(ctx, table, fk, row)?;
    }
    Ok(())
}

/// The rows of `child` whose `fk` columns equal `values` (the parent's referenced values),
/// read as [`Transaction::scan_latest`] does: by the child's primary-key prefix or an index
/// when one starts with the foreign key's columns, else by a scan of the table.
fn referencing_rows(
    ctx: &ExecContext<'_>,
    child: &TableDef,
    fk: &ForeignKeyDef,
    values: &[Value],
) -> SqlResult<Vec<(Vec<u8>, Vec<Value>)>> {
    let mut child_values = Vec::with_capacity(values.len());
    for (&c, v) in fk.columns.iter().zip(values) {
        match cast(v.clone(), &child.columns[c].ty, false) {
            Ok(v) => child_values.push(v),
            Err(_) => return Ok(vec![]), // no child value can equal it
        }
    }
    let mut want = fk.columns.clone();
    want.sort_unstable();
    let n = want.len();
    let leading = |cols: &[usize]| {
        let mut l = cols.get(..n).map(<[usize]>::to_vec).unwrap_or_default();
        l.sort_unstable();
        l == want
    };
    let encode_prefix = |mut prefix: Vec<u8>, cols: &[usize]| {
        for &c in &cols[..n] {
            if let Some(j) = fk.columns.iter().position(|&f| f == c) {
                encode_key_value(&child_values[j], &mut prefix);
            }
        }
        prefix
    };
    let mut pairs: Vec<(Vec<u8>, Bytes)> = Vec::new();
    if !child.primary_key.is_empty() && leading(&child.primary_key) {
        let prefix = encode_prefix(KeyPrefix::Rows(child.id).encode(), &child.primary_key);
        pairs = ctx.txn.scan_latest(prefix_range(&prefix))?;
    } else if let Some(ix) = child.indexes.iter().find(|ix| leading(&ix.columns)) {
        let prefix = encode_prefix(KeyPrefix::Index(child.id, ix.id).encode(), &ix.columns);
        for (_, row_key) in ctx.txn.scan_latest(prefix_range(&prefix))? {
            if let Some(bytes) = ctx.txn.read_locked(&row_key)? {
                pairs.push((row_key.to_vec(), bytes));
            }
        }
    } else {
        pairs = ctx.txn.scan_latest(KeyPrefix::Rows(child.id).range())?;
    }
    let mut out = Vec::new();
    for (key, bytes) in pairs {
        ctx.interrupt.check()?;
        let row = decode_table_row(child, &bytes)?;
        if matches(&row, &fk.columns, &child_values) {
            out.push((key, row));
        }
    }
    Ok(out)
}

/// NO ACTION and RESTRICT checks deferred to the end of the statement (PostgreSQL checks them
/// after the whole statement, so a statement that removes a key and its references passes;
/// NO ACTION also passes when the key is back in the referenced table by then).
#[derive(Default)]
pub(crate) struct Pending {
    checks: Vec<PendingCheck>,
}

struct PendingCheck {
    /// RESTRICT: no second chance for a key that is back.
    restrict: bool,
    parent: String,
    child: String,
    fk: String,
    values: Vec<Value>,
}

impl Pending {
    /// Runs the deferred checks: a key that is back in the parent, or no longer referenced,
    /// passes; else 23503.
    pub(crate) fn finish(self, ctx: &mut ExecContext<'_>) -> SqlResult<()> {
        for p in self.checks {
            let Some(child) = ctx.catalog.lookup(&*ctx.txn, &p.child)? else {
                continue;
            };
            let Some(fk) = child.foreign_keys.iter().find(|f| f.name == p.fk) else {
                continue;
            };
            let parent = match p.restrict {
                true => None,
                false => ctx.catalog.lookup(&*ctx.txn, &p.parent)?,
            };
            if let Some(parent) = parent {
                let ref_cols = ref_positions(&parent, fk)?;
                if let Some(key) = parent_key(&*ctx.txn, &parent, &ref_cols, &p.values)? {
                    if let Some(bytes) = ctx.txn.read_locked(&key)? {
                        if matches(&decode_table_row(&parent, &bytes)?, &ref_cols, &p.values) {
                            continue;
                        }
                    }
                }
            }
            if !referencing_rows(ctx, &child, fk, &p.values)?.is_empty() {
                return Err(still_referenced(&p.parent, &child.name, fk, &p.values));
            }
        }
        Ok(())
    }
}

/// What happened to a referenced row.
#[derive(Clone, Copy, PartialEq)]
enum Event {
    Delete,
    Update,
}

/// After a row of `table` was deleted: the ON DELETE action of every foreign key referencing it.
pub(crate) fn after_delete(
    ctx: &mut ExecContext<'_>,
    table: &TableDef,
    old: &[Value],
    pending: &mut Pending,
) -> SqlResult<()> {
    if table.referenced_by.is_empty() {
        return Ok(());
    }
    referenced_row_changed(ctx, table, old, None, pending, 0)
}

/// After a row of `table` was updated from `old` to `new`: checks of its own changed
/// foreign keys, and the ON UPDATE action of every foreign key referencing changed columns.
pub(crate) fn after_update(
    ctx: &mut ExecContext<'_>,
    table: &TableDef,
    old: &[Value],
    new: &[Value],
    pending: &mut Pending,
) -> SqlResult<()> {
    after_update_at(ctx, table, old, new, pending, 0)
}

/// [`after_update`] for one row of MERGE or ON CONFLICT DO UPDATE: NO ACTION is checked at
/// once.
pub(crate) fn after_update_now(
    ctx: &mut ExecContext<'_>,
    table: &TableDef,
    old: &[Value],
    new: &[Value],
) -> SqlResult<()> {
    if table.foreign_keys.is_empty() && table.referenced_by.is_empty() {
        return Ok(());
    }
    let mut pending = Pending::default();
    after_update(ctx, table, old, new, &mut pending)?;
    pending.finish(ctx)
}

/// [`after_delete`] for one row of MERGE: NO ACTION is checked at once.
pub(crate) fn after_delete_now(
    ctx: &mut ExecContext<'_>,
    table: &TableDef,
    old: &[Value],
) -> SqlResult<()> {
    if table.referenced_by.is_empty() {
        return Ok(());
    }
    let mut pending = Pending::default();
    after_delete(ctx, table, old, &mut pending)?;
    pending.finish(ctx)
}

/// An UPDATE of a referenced table that changes a primary-key or unique column locks the row
/// FOR UPDATE (not FOR NO KEY UPDATE), so it waits for referencing inserts, as in PostgreSQL.
pub(crate) fn key_update_lock(
    ctx: &mut ExecContext<'_>,
    table: &TableDef,
    key: &[u8],
    old: &[Value],
    new: &[Value],
) -> SqlResult<()> {
    if table.referenced_by.is_empty() {
        return Ok(());
    }
    let changed = |c: &usize| old[*c] != new[*c];
    let key_changed = table.primary_key.iter().any(changed)
        || table
            .indexes
            .iter()
            .any(|ix| ix.unique && ix.columns.iter().any(changed));
    if key_changed {
        ctx.txn
            .lock_row(key, RowMode::Update, LockWait::Block)
            .map_err(|e| lock_error(e, &table.name))?;
    }
    Ok(())
}

fn after_update_at(
    ctx: &mut ExecContext<'_>,
    table: &TableDef,
    old: &[Value],
    new: &[Value],
    pending: &mut Pending,
    depth: usize,
) -> SqlResult<()> {
    for fk in &table.foreign_keys {
        if fk.columns.iter().any(|&c| old[c] != new[c]) {
            check_parent(ctx, table, fk, new)?;
        }
    }
    if table.referenced_by.is_empty() {
        return Ok(());
    }
    referenced_row_changed(ctx, table, old, Some(new), pending, depth)
}

/// The actions of the foreign keys referencing `parent`'s row `old`, deleted (`new` None)
/// or updated to `new`.
fn referenced_row_changed(
    ctx: &mut ExecContext<'_>,
    parent: &TableDef,
    old: &[Value],
    new: Option<&[Value]>,
    pending: &mut Pending,
    depth: usize,
) -> SqlResult<()> {
    if depth > MAX_DEPTH {
        return Err(SqlError::new(
            SqlState::STATEMENT_TOO_COMPLEX,
            "foreign key actions nest too deeply",
        ));
    }
    let event = if new.is_some() {
        Event::Update
    } else {
        Event::Delete
    };
    for child_name in &parent.referenced_by {
        let child = lookup(ctx, child_name)?;
        for fk in child
            .foreign_keys
            .iter()
            .filter(|f| f.ref_table == parent.name)
        {
            let ref_cols = ref_positions(parent, fk)?;
            let values: Vec<Value> = ref_cols.iter().map(|&c| old[c].clone()).collect();
            if values.iter().any(Value::is_null) {
                continue;
            }
            if let Some(new) = new {
                if ref_cols.iter().all(|&c| old[c] == new[c]) {
                    continue; // the referenced key did not change
                }
            }
            let action = match event {
                Event::Delete => fk.on_delete,
                Event::Update => fk.on_update,
            };
            match action {
                FkAction::NoAction | FkAction::Restrict => pending.checks.push(PendingCheck {
                    restrict: action == FkAction::Restrict,
                    parent: parent.name.clone(),
                    child: child.name.clone(),
                    fk: fk.name.clone(),
                    values,
                }),
                FkAction::Cascade if event == Event::Delete => {
                    for (key, row) in referencing_rows(ctx, &child, fk, &values)? {
                        ctx.interrupt.check()?;
                        ctx.txn
                            .lock_row(&key, RowMode::Update, LockWait::Block)
                            .map_err(|e| lock_error(e, &child.name))?;
                        let Some(bytes) = ctx.txn.read_locked(&key)? else {
                            continue;
                        };
                        let row_now = decode_table_row(&child, &bytes)?;
                        if !matches(&row_now, &fk.columns, &row_values(&fk.columns, &row)) {
                            continue;
                        }
                        ctx.txn.delete(&key)?;
                        crate::index::delete_entries(ctx.txn, &child, &key, &row_now)?;
                        if !child.referenced_by.is_empty() {
                            referenced_row_changed(
                                ctx,
                                &child,
                                &row_now,
                                None,
                                pending,
                                depth + 1,
                            )?;
                        }
                    }
                }
                FkAction::Cascade | FkAction::SetNull | FkAction::SetDefault => {
                    let replacement: Vec<Value> = match (action, new) {
                        (FkAction::Cascade, Some(new)) => {
                            ref_cols.iter().map(|&c| new[c].clone()).collect()
                        }
                        (FkAction::SetNull, _) => vec![Value::Null; fk.columns.len()],
                        _ => column_defaults(ctx, &child, &fk.columns)?,
                    };
                    for (key, row) in referencing_rows(ctx, &child, fk, &values)? {
                        ctx.interrupt.check()?;
                        let Some(bytes) = ctx.txn.get_for_update(&key)? else {
                            continue;
                        };
                        let old_child = decode_table_row(&child, &bytes)?;
                        if !matches(&old_child, &fk.columns, &row_values(&fk.columns, &row)) {
                            continue;
                        }
                        let mut new_child = old_child.clone();
                        for (&c, v) in fk.columns.iter().zip(&replacement) {
                            new_child[c] = store_value(&child, c, v.clone())?;
                        }
                        ctx.fill_generated(&child, &mut new_child)?;
                        rewrite(ctx, &child, &key, &old_child, &new_child)?;
                        // The new values must be referenced keys too (SET DEFAULT), and the
                        // child's own children follow.
                        after_update_at(ctx, &child, &old_child, &new_child, pending, depth + 1)?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn row_values(cols: &[usize], row: &[Value]) -> Vec<Value> {
    cols.iter().map(|&c| row[c].clone()).collect()
}

/// The DEFAULT values of `cols` of `table` (NULL without a default).
fn column_defaults(
    ctx: &ExecContext<'_>,
    table: &TableDef,
    cols: &[usize],
) -> SqlResult<Vec<Value>> {
    let info = SessionInfo {
        user: String::new(),
        database: String::new(),
    };
    let mut binder = Binder::new(ctx.catalog, &*ctx.txn, &info, vec![]);
    let mut out = Vec::with_capacity(cols.len());
    for &c in cols {
        let col = &table.columns[c];
        out.push(match &col.default {
            Some(text) => {
                let e = binder.bind_default(text, col.ty, &col.name)?;
                ctx.eval(&e, &[])?
            }
            None => Value::Null,
        });
    }
    Ok(out)
}

/// Writes `new` over a locked row `old` of `table` stored under `key` (CHECKs, a moved
/// primary key, index entries).
fn rewrite(
    ctx: &mut ExecContext<'_>,
    table: &TableDef,
    key: &[u8],
    old: &[Value],
    new: &[Value],
) -> SqlResult<()> {
    ctx.check_row(table, new)?;
    let new_key = if table.has_rowid() {
        key.to_vec()
    } else {
        table.row_key(new)
    };
    if new_key != key {
        ctx.txn
            .lock_row(key, RowMode::Update, LockWait::Block)
            .map_err(|e| lock_error(e, &table.name))?;
        if ctx.txn.get_for_update(&new_key)?.is_some() {
            return Err(crate::query::duplicate_key(table, new));
        }
        ctx.txn.delete(key)?;
    }
    ctx.txn.put(&new_key, Bytes::from(encode_row(new)))?;
    crate::index::update_entries(ctx.txn, table, key, old, &new_key, new)
}

/// ALTER TABLE ADD CONSTRAINT ... FOREIGN KEY: every existing row of `child` must reference
/// an existing parent row (23503 as for an INSERT).
pub(crate) fn validate(
    ctx: &mut ExecContext<'_>,
    child: &TableDef,
    fk: &ForeignKeyDef,
) -> SqlResult<()> {
    let rows = ctx
        .txn
        .scan(KeyPrefix::Rows(child.id).range(), false, None)?;
    for (_, bytes) in rows {
        ctx.interrupt.check()?;
        let row = decode_table_row(child, &bytes)?;
        check_parent(ctx, child, fk, &row)?;
    }
    Ok(())
}

/// The foreign keys (with their tables) that reference `table` from a table not in
/// `dropping`: what DROP TABLE without CASCADE refuses (2BP01).
pub(crate) fn dependents(
    catalog: &crate::catalog::Catalog,
    txn: &dyn Transaction,
    table: &TableDef,
    dropping: &[String],
) -> SqlResult<Vec<(Arc<TableDef>, String)>> {
    let mut out = Vec::new();
    for c in &table.referenced_by {
        if dropping.contains(c) {
            continue;
        }
        if let Some(child) = catalog.lookup(txn, c)? {
            for fk in child
                .foreign_keys
                .iter()
                .filter(|f| f.ref_table == table.name)
            {
                out.push((child.clone(), fk.name.clone()));
            }
        }
    }
    Ok(out)
}

/// A foreign key (child table, constraint name) that needs `table`'s unique index at `pos`:
/// one whose referenced columns are the index's and that no other unique key of `table`
/// could serve.
pub(crate) fn index_in_use(
    catalog: &crate::catalog::Catalog,
    txn: &dyn Transaction,
    table: &TableDef,
    pos: usize,
) -> SqlResult<Option<(String, String)>> {
    let ix = &table.indexes[pos];
    if !ix.unique || table.referenced_by.is_empty() {
        return Ok(None);
    }
    let mut without = table.clone();
    without.indexes.remove(pos);
    for c in &table.referenced_by {
        let child = match catalog.lookup(txn, c)? {
            Some(child) => child,
            None => continue,
        };
        for fk in child
            .foreign_keys
            .iter()
            .filter(|f| f.ref_table == table.name)
        {
            let cols = ref_positions(table, fk)?;
            if is_unique_key(table, &cols) && !is_unique_key(&without, &cols) {
                return Ok(Some((child.name.clone(), fk.name.clone())));
            }
        }
    }
    Ok(None)
}
