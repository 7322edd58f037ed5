//! Secondary indexes and row constraints on the write path.
//!
//! An index entry is an ordinary MVCC key written in the same transaction as its row, so a
//! snapshot sees exactly the entries of the row versions it sees: a reader never re-checks
//! an entry's visibility against the base row, and an aborted writer's entries vanish with
//! its rows. (The WHERE clause is still re-evaluated on the row read: invariant 5.)
//!
//! ```text
//!  0x11 | table id | index id | v1 v2 ...            -> row key     unique, no NULL value
//!  0x11 | table id | index id | v1 v2 ... | pk ...   -> row key     otherwise
//! ```
//!
//! Invariants:
//! 1. Every row of a table has exactly one entry per index, whose values are the row's.
//! 2. A unique index's entry for non-NULL values is one key per value tuple: an inserter
//!    takes its row lock ([`Transaction::get_for_update`]) before writing it, so two
//!    concurrent inserters of one value serialize on that lock and the second sees the
//!    first's committed entry (23505) or its absence after a rollback.
//! 3. An entry that ends with the row's key suffix can only be written by a transaction
//!    holding that row's lock, so it is written without a lock of its own.

use bytes::Bytes;

use crate::catalog::{IndexDef, TableDef};
use crate::encoding::{encode_key_value, KeyPrefix};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::{truth, Expr};
use crate::storage::Transaction;
use crate::types::Value;

/// Bytes of the table prefix (`0x10` + table id) at the start of every row key.
const ROW_PREFIX_LEN: usize = 5;

/// The entry key of `row` (stored under `row_key`) in index `ix`, and whether it is a
/// unique key (no row suffix).
pub(crate) fn entry_key(
    table: &TableDef,
    ix: &IndexDef,
    row: &[Value],
    row_key: &[u8],
) -> (Vec<u8>, bool) {
    let mut key = KeyPrefix::Index(table.id, ix.id).encode();
    let mut has_null = false;
    for &c in &ix.columns {
        has_null |= row[c].is_null();
        encode_key_value(&row[c], &mut key);
    }
    let unique = ix.unique && !has_null;
    if !unique {
        key.extend_from_slice(row_key.get(ROW_PREFIX_LEN..).unwrap_or_default());
    }
    (key, unique)
}

/// `(a, b)=(1, 2)`: the names of `columns` of `table` and their values in `row`, as
/// PostgreSQL prints a key in a DETAIL (NULL as `null`).
pub(crate) fn key_text(table: &TableDef, columns: &[usize], row: &[Value]) -> String {
    let names: Vec<&str> = columns
        .iter()
        .map(|&i| table.columns[i].name.as_str())
        .collect();
    let vals: Vec<String> = columns
        .iter()
        .map(|&i| row[i].to_text().unwrap_or_else(|| "null".into()))
        .collect();
    format!("({})=({})", names.join(", "), vals.join(", "))
}

/// 23505 for a duplicate in unique index `ix`.
pub(crate) fn unique_violation(table: &TableDef, ix: &IndexDef, row: &[Value]) -> SqlError {
    SqlError::new(
        SqlState::UNIQUE_VIOLATION,
        format!(
            "duplicate key value violates unique constraint \"{}\"",
            ix.name
        ),
    )
    .with_detail(format!(
        "Key {} already exists.",
        key_text(table, &ix.columns, row)
    ))
}

fn put_entry(
    txn: &mut dyn Transaction,
    table: &TableDef,
    ix: &IndexDef,
    row: &[Value],
    row_key: &[u8],
) -> SqlResult<()> {
    let (key, unique) = entry_key(table, ix, row, row_key);
    if unique {
        if let Some(holder) = txn.get_for_update(&key)? {
            if holder.as_ref() != row_key {
                return Err(unique_violation(table, ix, row));
            }
        }
        txn.put(&key, Bytes::copy_from_slice(row_key))
    } else {
        txn.put_new(&key, Bytes::copy_from_slice(row_key))
    }
}

/// Writes the index entries of a new row (23505 on a unique duplicate).
pub(crate) fn insert_entries(
    txn: &mut dyn Transaction,
    table: &TableDef,
    row_key: &[u8],
    row: &[Value],
) -> SqlResult<()> {
    for ix in &table.indexes {
        put_entry(txn, table, ix, row, row_key)?;
    }
    Ok(())
}

/// Deletes the index entries of a deleted row.
pub(crate) fn delete_entries(
    txn: &mut dyn Transaction,
    table: &TableDef,
    row_key: &[u8],
    row: &[Value],
) -> SqlResult<()> {
    for ix in &table.indexes {
        let (key, _) = entry_key(table, ix, row, row_key);
        txn.delete(&key)?;
    }
    Ok(())
}

/// Moves the index entries of an updated row (only those whose key or target changed).
pub(crate) fn update_entries(
    txn: &mut dyn Transaction,
    table: &TableDef,
    old_key: &[u8],
    old: &[Value],
    new_key: &[u8],
    new: &[Value],
) -> SqlResult<()> {
    for ix in &table.indexes {
        let (ok, _) = entry_key(table, ix, old, old_key);
        let (nk, _) = entry_key(table, ix, new, new_key);
        if ok == nk {
            if old_key != new_key {
                // The same unique entry, for a row that moved to a new primary key.
                txn.put(&nk, Bytes::copy_from_slice(new_key))?;
            }
            continue;
        }
        txn.delete(&ok)?;
        put_entry(txn, table, ix, new, new_key)?;
    }
    Ok(())
}

/// Writes the entries of every stored row into a new index `ix` of `table` (CREATE INDEX,
/// ADD CONSTRAINT UNIQUE). A duplicate fails as PostgreSQL's index build does.
pub(crate) fn build(
    txn: &mut dyn Transaction,
    table: &TableDef,
    ix: &IndexDef,
    interrupt: &crate::session::Interrupt,
) -> SqlResult<()> {
    let rows = txn.scan(KeyPrefix::Rows(table.id).range(), false, None)?;
    for (row_key, bytes) in rows {
        interrupt.check()?;
        let row = crate::catalog::decode_table_row(table, &bytes)?;
        let (key, unique) = entry_key(table, ix, &row, &row_key);
        if unique && txn.get(&key)?.is_some() {
            return Err(SqlError::new(
                SqlState::UNIQUE_VIOLATION,
                format!("could not create unique index \"{}\"", ix.name),
            )
            .with_detail(format!(
                "Key {} is duplicated.",
                key_text(table, &ix.columns, &row)
            )));
        }
        if unique {
            txn.put(&key, Bytes::copy_from_slice(&row_key))?;
        } else {
            txn.put_new(&key, Bytes::copy_from_slice(&row_key))?;
        }
    }
    Ok(())
}

/// Deletes every entry of index `ix` (DROP INDEX).
pub(crate) fn clear(txn: &mut dyn Transaction, table: &TableDef, ix: &IndexDef) -> SqlResult<()> {
    for (k, _) in txn.scan(KeyPrefix::Index(table.id, ix.id).range(), false, None)? {
        txn.delete(&k)?;
    }
    Ok(())
}

/// Fails with 23514 when `row` violates one of `checks` (bound against `table`'s columns):
/// a CHECK passes when it is true or NULL, as in PostgreSQL.
pub(crate) fn check_row(
    table: &TableDef,
    checks: &[Expr],
    row: &[Value],
    eval: &dyn Fn(&Expr, &[Value]) -> SqlResult<Value>,
) -> SqlResult<()> {
    for (c, e) in table.checks.iter().zip(checks) {
        let v = eval(e, row)?;
        if truth(&v) == Some(false) {
            let vals: Vec<String> = row
                .iter()
                .map(|v| v.to_text().unwrap_or_else(|| "null".into()))
                .collect();
            return Err(SqlError::new(
                SqlState::CHECK_VIOLATION,
                format!(
                    "new row for relation \"{}\" violates check constraint \"{}\"",
                    table.name, c.name
                ),
            )
            .with_detail(format!("Failing row contains ({}).", vals.join(", "))));
        }
    }
    Ok(())
}
