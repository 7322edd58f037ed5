//! System views and functions over the transaction machinery of `gnomon_mvcc`: two-phase
//! commit, transaction status and the hybrid logical clock.
//!
//! | name                                 | kind     | what it shows                                  |
//! |--------------------------------------|----------|------------------------------------------------|
//! | `pg_prepared_xacts`                  | view     | transaction, gid, prepared, owner, database    |
//! | `gnomon_transactions`                | view     | xid, gid, status, start_time, commit_timestamp |
//! | `gnomon_transaction_status(xid int8)`| function | status text of a recent writing xid, or NULL   |
//! | `gnomon_hlc_now()`                   | function | a fresh HLC reading of this node               |
//!
//! HLC timestamps are shown as `numeric`: the physical part in microseconds since the Unix
//! epoch, then the logical counter as a 10-digit fraction (`1732412345678901.0000000003`), as
//! CockroachDB shows `crdb_internal_mvcc_timestamp` (nanoseconds there). They order as the
//! HLC does on one node. NB: the node id (the HLC's tie-breaker between nodes) is not part
//! of the value.
//!
//! The views are read at execution (never folded into a cached plan). `gnomon_transactions`
//! lists writing transactions only (read-only ones have no status worth keeping, as
//! PostgreSQL assigns an xid only at the first write): live ones and the recently finished
//! ones the registry remembers (`gnomon_mvcc::registry`, bounded).

use gnomon_mvcc::{Db, Timestamp, TxnId};
use rust_decimal::Decimal;

use crate::error::{SqlError, SqlResult, SqlState};
use crate::types::{DataType, Value, NUMERIC};

/// µs from 1970-01-01 to 2000-01-01 (PostgreSQL's timestamp epoch).
const PG_EPOCH_UNIX_US: i64 = 946_684_800_000_000;

/// A built-in view, materialised when a query reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SystemView {
    /// `pg_prepared_xacts`.
    PreparedXacts,
    /// `gnomon_transactions`.
    Transactions,
    /// `information_schema.tables` (see `pg_catalog.rs`).
    InfoTables,
    /// `information_schema.columns`.
    InfoColumns,
    /// `pg_class`.
    PgClass,
    /// `pg_namespace`.
    PgNamespace,
    /// `pg_type`.
    PgType,
    /// The other pg_catalog tables (`pg_attribute`, `pg_index`, ..., see `pg_catalog.rs`).
    Catalog(crate::pg_catalog::CatalogView),
}

impl SystemView {
    /// The view called `name` (unqualified, lower case), if any. System views take precedence
    /// over tables of the same name, as `pg_catalog` comes first in PostgreSQL's search path.
    pub(crate) fn named(name: &str) -> Option<SystemView> {
        match name {
            "pg_prepared_xacts" => Some(SystemView::PreparedXacts),
            "gnomon_transactions" => Some(SystemView::Transactions),
            "information_schema.tables" => Some(SystemView::InfoTables),
            "information_schema.columns" => Some(SystemView::InfoColumns),
            "pg_class" => Some(SystemView::PgClass),
            "pg_namespace" => Some(SystemView::PgNamespace),
            "pg_type" => Some(SystemView::PgType),
            other => crate::pg_catalog::CatalogView::named(other).map(SystemView::Catalog),
        }
    }

    /// The view's name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            SystemView::PreparedXacts => "pg_prepared_xacts",
            SystemView::Transactions => "gnomon_transactions",
            SystemView::InfoTables => "tables",
            SystemView::InfoColumns => "columns",
            SystemView::PgClass => "pg_class",
            SystemView::PgNamespace => "pg_namespace",
            SystemView::PgType => "pg_type",
            SystemView::Catalog(v) => v.name(),
        }
    }

    /// Column names and types.
    pub(crate) fn columns(&self) -> &'static [(&'static str, DataType)] {
        match self {
            SystemView::PreparedXacts => &[
                ("transaction", DataType::Int8),
                ("gid", DataType::Text),
                ("prepared", DataType::Timestamptz),
                ("owner", DataType::Text),
                ("database", DataType::Text),
            ],
            SystemView::Transactions => &[
                ("xid", DataType::Int8),
                ("gid", DataType::Text),
                ("status", DataType::Text),
                ("start_time", DataType::Timestamptz),
                ("commit_timestamp", NUMERIC),
            ],
            SystemView::InfoTables => crate::pg_catalog::TABLES_COLUMNS,
            SystemView::InfoColumns => crate::pg_catalog::COLUMNS_COLUMNS,
            SystemView::PgClass => crate::pg_catalog::PG_CLASS_COLUMNS,
            SystemView::PgNamespace => crate::pg_catalog::PG_NAMESPACE_COLUMNS,
            SystemView::PgType => crate::pg_catalog::PG_TYPE_COLUMNS,
            SystemView::Catalog(v) => v.columns(),
        }
    }

    /// The view's rows now.
    pub(crate) fn rows(
        &self,
        txn: &dyn crate::storage::Transaction,
        db: Option<&Db>,
    ) -> SqlResult<Vec<Vec<Value>>> {
        match self {
            SystemView::InfoTables => return crate::pg_catalog::tables_rows(txn),
            SystemView::InfoColumns => return crate::pg_catalog::columns_rows(txn),
            SystemView::PgClass => return crate::pg_catalog::pg_class_rows(txn),
            SystemView::PgNamespace => return crate::pg_catalog::pg_namespace_rows(txn),
            SystemView::PgType => return Ok(crate::pg_catalog::pg_type_rows()),
            SystemView::Catalog(v) => return v.rows(txn),
            SystemView::PreparedXacts | SystemView::Transactions => {}
        }
        let db = db.ok_or_else(unavailable)?;
        Ok(match self {
            SystemView::PreparedXacts => db
                .prepared_transactions()
                .into_iter()
                .map(|p| {
                    vec![
                        xid(p.txn),
                        Value::Text(p.gid),
                        unix_us_to_timestamptz(p.prepared_at.physical_us),
                        Value::Text(p.owner),
                        Value::Text(p.database),
                    ]
                })
                .collect(),
            SystemView::Transactions => db
                .transactions()
                .into_iter()
                .map(|t| {
                    vec![
                        xid(t.id),
                        t.gid.map(Value::Text).unwrap_or(Value::Null),
                        Value::Text(t.status.as_str().to_string()),
                        unix_us_to_timestamptz(t.started_us),
                        t.commit_ts.map(hlc_numeric).unwrap_or(Value::Null),
                    ]
                })
                .collect(),
            _ => vec![],
        })
    }
}

/// One of the system functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SystemFn {
    /// `gnomon_hlc_now()`.
    HlcNow,
    /// `gnomon_transaction_status(xid)`.
    TransactionStatus,
}

/// The system function `name` with `nargs` arguments: the function, its argument types (the
/// arguments are coerced to them) and its result type.
pub(crate) fn signature(
    name: &str,
    nargs: usize,
) -> Option<(SystemFn, &'static [DataType], DataType)> {
    match (name, nargs) {
        ("gnomon_hlc_now", 0) => Some((SystemFn::HlcNow, &[], NUMERIC)),
        ("gnomon_transaction_status", 1) => Some((
            SystemFn::TransactionStatus,
            &[DataType::Int8],
            DataType::Text,
        )),
        _ => None,
    }
}

/// Runs `f` on evaluated arguments.
pub(crate) fn call(f: SystemFn, args: &[Value], db: Option<&Db>) -> SqlResult<Value> {
    let db = db.ok_or_else(unavailable)?;
    match (f, args) {
        (SystemFn::HlcNow, []) => Ok(hlc_numeric(db.clock().now()?)),
        (SystemFn::TransactionStatus, [Value::Null]) => Ok(Value::Null),
        (SystemFn::TransactionStatus, [Value::Int8(x)]) => {
            let Ok(id) = u64::try_from(*x) else {
                return Ok(Value::Null);
            };
            Ok(db
                .txn_status(TxnId(id))
                .map(|i| Value::Text(i.status.as_str().to_string()))
                .unwrap_or(Value::Null))
        }
        _ => Err(SqlError::internal(format!(
            "system function {f:?} called with {args:?}"
        ))),
    }
}

/// An HLC timestamp as SQL shows it: `physical_us.logical` (logical as 10 fraction digits).
pub(crate) fn hlc_numeric(ts: Timestamp) -> Value {
    let scaled = ts.physical_us as i128 * 10_000_000_000 + ts.logical as i128;
    Value::Numeric(Decimal::from_i128_with_scale(scaled, 10))
}

fn xid(id: TxnId) -> Value {
    // NB: ids come from the clock's microseconds (below 2^63 for 292 000 years).
    Value::Int8(id.0 as i64)
}

fn unix_us_to_timestamptz(us: u64) -> Value {
    Value::Timestamptz(us as i64 - PG_EPOCH_UNIX_US)
}

fn unavailable() -> SqlError {
    SqlError::new(
        SqlState::FEATURE_NOT_SUPPORTED,
        "transaction information is not available in this context",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hlc_values_order_as_the_clock_does() {
        let a = hlc_numeric(Timestamp {
            physical_us: 1_732_412_345_678_901,
            logical: 3,
            node: 1,
        });
        let b = hlc_numeric(Timestamp {
            physical_us: 1_732_412_345_678_902,
            logical: 0,
            node: 1,
        });
        assert_eq!(a.to_text().unwrap(), "1732412345678901.0000000003");
        assert!(matches!((&a, &b), (Value::Numeric(x), Value::Numeric(y)) if x < y));
    }
}
