//! INSERT ... ON CONFLICT (cols | ON CONSTRAINT name) DO NOTHING / DO UPDATE SET ... [WHERE].
//!
//! PostgreSQL inserts speculatively and backs out on a conflict; here a conflict is found by
//! locking the arbiter keys first: the row key of the primary key and the entry key of each
//! arbiter unique index ([`Transaction::get_for_update`]). The lock makes two concurrent
//! upserts of one key serialize, and the second sees the first's committed row, so an upsert
//! never fails with 23505 on its arbiter (it may on another unique index, as in PostgreSQL).
//!
//! ```text
//!  proposed row ── defaults, CHECK ── lock arbiter keys ──none held──► insert
//!                                          │ held by row R
//!                                          ▼
//!               DO NOTHING: skip    DO UPDATE: R ++ EXCLUDED ── WHERE ── SET ── update R
//! ```
//!
//! A row inserted or updated by the same command and hit again fails with 21000, as in
//! PostgreSQL. At REPEATABLE READ, a conflicting row committed after the snapshot fails with
//! 40001 (the lock's re-read refuses it).

use std::collections::HashSet;

use bytes::Bytes;

use crate::catalog::{decode_table_row, TableDef};
use crate::encoding::encode_row;
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::{truth, Expr};
use crate::query::{duplicate_key, store_value, ExecContext};
use crate::storage::Transaction;
use crate::types::Value;

/// Which constraints decide that a proposed row conflicts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Arbiters {
    /// The primary key.
    pub primary: bool,
    /// Positions in `TableDef::indexes` of unique indexes.
    pub indexes: Vec<usize>,
}

/// What to do with a conflicting row.
#[derive(Debug, Clone)]
pub(crate) enum ConflictAction {
    Nothing,
    /// SET expressions and WHERE over `existing row ++ EXCLUDED row`.
    Update {
        sets: Vec<(usize, Expr)>,
        filter: Option<Expr>,
    },
}

/// A bound ON CONFLICT clause.
#[derive(Debug, Clone)]
pub(crate) struct OnConflict {
    pub arbiters: Arbiters,
    pub action: ConflictAction,
}

/// Rows this command inserted or updated (an ON CONFLICT DO UPDATE may not touch one twice).
#[derive(Default)]
pub(crate) struct Affected(HashSet<Vec<u8>>);

impl Affected {
    pub(crate) fn record(&mut self, oc: &OnConflict, key: &[u8]) {
        if matches!(oc.action, ConflictAction::Update { .. }) {
            self.0.insert(key.to_vec());
        }
    }
}

/// The key of the stored row that `row` conflicts with on an arbiter, locking every arbiter
/// key it looks at.
pub(crate) fn find_conflict(
    txn: &mut dyn Transaction,
    table: &TableDef,
    arbiters: &Arbiters,
    row: &[Value],
) -> SqlResult<Option<Vec<u8>>> {
    if arbiters.primary && !table.has_rowid() {
        let key = table.row_key(row);
        if txn.get_for_update(&key)?.is_some() {
            return Ok(Some(key));
        }
    }
    for &i in &arbiters.indexes {
        let ix = &table.indexes[i];
        let (key, unique) = crate::index::entry_key(table, ix, row, &[]);
        if !unique {
            continue; // A NULL never conflicts.
        }
        if let Some(holder) = txn.get_for_update(&key)? {
            return Ok(Some(holder.to_vec()));
        }
    }
    Ok(None)
}

/// DO UPDATE of the row stored under `existing` with the proposed row `proposed`: returns
/// the new row, or None when the WHERE clause skips it.
pub(crate) fn update_existing(
    ctx: &mut ExecContext<'_>,
    table: &TableDef,
    sets: &[(usize, Expr)],
    filter: Option<&Expr>,
    existing: Vec<u8>,
    proposed: &[Value],
    affected: &mut Affected,
) -> SqlResult<Option<Vec<Value>>> {
    if affected.0.contains(&existing) {
        return Err(SqlError::new(
            SqlState::CARDINALITY_VIOLATION,
            "ON CONFLICT DO UPDATE command cannot affect row a second time",
        )
        .with_hint(
            "Ensure that no rows proposed for insertion within the same command have duplicate constrained values.",
        ));
    }
    let Some(bytes) = ctx.txn.get_for_update(&existing)? else {
        return Err(SqlError::internal(
            "conflicting row vanished under its lock",
        ));
    };
    let old = decode_table_row(table, &bytes)?;
    let mut both = old.clone();
    both.extend_from_slice(proposed);
    if let Some(f) = filter {
        if truth(&ctx.eval(f, &both)?) != Some(true) {
            return Ok(None);
        }
    }
    let mut new_values = Vec::with_capacity(sets.len());
    for (i, e) in sets {
        new_values.push(store_value(table, *i, ctx.eval(e, &both)?)?);
    }
    let mut new_row = old.clone();
    for ((i, _), v) in sets.iter().zip(new_values) {
        new_row[*i] = v;
    }
    ctx.fill_generated(table, &mut new_row)?;
    ctx.check_row(table, &new_row)?;
    let new_key = if table.has_rowid() {
        existing.clone()
    } else {
        table.row_key(&new_row)
    };
    if new_key != existing {
        if ctx.txn.get_for_update(&new_key)?.is_some() {
            return Err(duplicate_key(table, &new_row));
        }
        ctx.txn.delete(&existing)?;
    }
    ctx.txn.put(&new_key, Bytes::from(encode_row(&new_row)))?;
    crate::index::update_entries(ctx.txn, table, &existing, &old, &new_key, &new_row)?;
    crate::foreign_key::after_update_now(ctx, table, &old, &new_row)?;
    affected.0.insert(new_key);
    Ok(Some(new_row))
}
