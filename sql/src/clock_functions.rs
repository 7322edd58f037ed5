//! SQL functions over the node's durable logical clocks (`gnomon_mvcc::logical`): Lamport
//! clock, version vector and vector clock.
//!
//! | function                              | returns | what it does                              |
//! |---------------------------------------|---------|-------------------------------------------|
//! | `gnomon_lamport_tick()`               | bigint  | local event: time + 1                     |
//! | `gnomon_lamport_current()`            | bigint  | time of the last event                    |
//! | `gnomon_lamport_sync(received bigint)`| bigint  | max(local, received) + 1                  |
//! | `gnomon_version_increment([node text])` | text  | version vector with `node` (default: this node) + 1 |
//! | `gnomon_version_current()`            | text    | the version vector                        |
//! | `gnomon_version_merge(a text, b text)`| text    | pointwise max of a and b (pure)           |
//! | `gnomon_version_merge(v text)`        | text    | merges v into this node's version vector  |
//! | `gnomon_vclock_tick()`                | text    | vector clock with this node's entry + 1   |
//! | `gnomon_vclock_current()`             | text    | the vector clock                          |
//! | `gnomon_vclock_sync(received text)`   | text    | pointwise max with received, then tick    |
//! | `gnomon_vclock_compare(a text, b text)` | text  | `BEFORE`, `AFTER`, `EQUAL` or `CONCURRENT` (pure) |
//!
//! Vectors are JSON text, e.g. `{"node1":3,"node2":5}` (format in `gnomon_mvcc::logical`).
//! Errors: text that is not such a JSON object is 22P02, a bad node name 22023, a value below 0
//! or past 2^63-1 22003; a NULL argument gives NULL without touching a clock. The functions
//! are volatile and not transactional (like `nextval`): a tick is durable when the function
//! returns, whatever the transaction does next, and a query calls them once per row.

use gnomon_mvcc::{ClockValueError, LogicalClockError, LogicalClocks, VectorTime};

use crate::error::{SqlError, SqlResult, SqlState};
use crate::types::{DataType, Value};

/// One of the clock functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogicalFn {
    LamportTick,
    LamportCurrent,
    LamportSync,
    VersionIncrement,
    VersionCurrent,
    VersionMerge,
    VersionMergeInto,
    VclockTick,
    VclockCurrent,
    VclockSync,
    VclockCompare,
}

/// The function `name` with `nargs` arguments, if it is a clock function: the function, the
/// types its arguments are coerced to, and its result type.
pub(crate) fn signature(
    name: &str,
    nargs: usize,
) -> Option<(LogicalFn, &'static [DataType], DataType)> {
    use DataType::{Int8, Text};
    use LogicalFn as F;
    const NONE: &[DataType] = &[];
    Some(match (name, nargs) {
        ("gnomon_lamport_tick", 0) => (F::LamportTick, NONE, Int8),
        ("gnomon_lamport_current", 0) => (F::LamportCurrent, NONE, Int8),
        ("gnomon_lamport_sync", 1) => (F::LamportSync, &[Int8], Int8),
        ("gnomon_version_increment", 0) => (F::VersionIncrement, NONE, Text),
        ("gnomon_version_increment", 1) => (F::VersionIncrement, &[Text], Text),
        ("gnomon_version_current", 0) => (F::VersionCurrent, NONE, Text),
        ("gnomon_version_merge", 1) => (F::VersionMergeInto, &[Text], Text),
        ("gnomon_version_merge", 2) => (F::VersionMerge, &[Text, Text], Text),
        ("gnomon_vclock_tick", 0) => (F::VclockTick, NONE, Text),
        ("gnomon_vclock_current", 0) => (F::VclockCurrent, NONE, Text),
        ("gnomon_vclock_sync", 1) => (F::VclockSync, &[Text], Text),
        ("gnomon_vclock_compare", 2) => (F::VclockCompare, &[Text, Text], Text),
        _ => return None,
    })
}

/// Maps a clock error to its SQLSTATE.
pub(crate) fn clock_error(e: LogicalClockError) -> SqlError {
    match e {
        LogicalClockError::Value(v) => value_error(v),
        LogicalClockError::Storage(s) => s.into(),
    }
}

fn value_error(e: ClockValueError) -> SqlError {
    let code = match &e {
        ClockValueError::BadVector { .. } | ClockValueError::TooManyEntries => {
            SqlState::INVALID_TEXT_REPRESENTATION
        }
        ClockValueError::BadNodeName(_) => SqlState::INVALID_PARAMETER_VALUE,
        ClockValueError::OutOfRange => SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
    };
    SqlError::new(code, e.to_string())
}

fn vector(v: &Value) -> SqlResult<VectorTime> {
    match v {
        Value::Text(s) => VectorTime::parse(s).map_err(value_error),
        other => Err(SqlError::internal(format!(
            "clock function got {other:?} for a vector"
        ))),
    }
}

/// Runs `f` on already evaluated arguments (coerced to [`signature`]'s types).
pub(crate) fn call(
    f: LogicalFn,
    args: &[Value],
    clocks: Option<&LogicalClocks>,
) -> SqlResult<Value> {
    use LogicalFn as F;
    if args.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    let text = |v: VectorTime| Value::Text(v.to_json());
    let lamport = |n: u64| Value::Int8(n as i64);
    // The pure functions need no clocks.
    match (f, args) {
        (F::VersionMerge, [a, b]) => {
            return Ok(text(vector(a)?.merge(&vector(b)?).map_err(value_error)?))
        }
        (F::VclockCompare, [a, b]) => {
            return Ok(Value::Text(
                vector(a)?.compare(&vector(b)?).as_str().to_string(),
            ))
        }
        _ => {}
    }
    let clocks = clocks.ok_or_else(|| {
        SqlError::new(
            SqlState::FEATURE_NOT_SUPPORTED,
            "logical clocks are not available in this context",
        )
    })?;
    let r = match (f, args) {
        (F::LamportTick, []) => clocks.lamport_tick().map(lamport),
        (F::LamportCurrent, []) => Ok(lamport(clocks.lamport_current())),
        (F::LamportSync, [Value::Int8(n)]) => {
            let received =
                u64::try_from(*n).map_err(|_| value_error(ClockValueError::OutOfRange))?;
            clocks.lamport_sync(received).map(lamport)
        }
        (F::VersionIncrement, []) => clocks.version_increment(None).map(text),
        (F::VersionIncrement, [Value::Text(node)]) => {
            clocks.version_increment(Some(node)).map(text)
        }
        (F::VersionCurrent, []) => Ok(text(clocks.version_current())),
        (F::VersionMergeInto, [v]) => clocks.version_merge_into(&vector(v)?).map(text),
        (F::VclockTick, []) => clocks.vclock_tick().map(text),
        (F::VclockCurrent, []) => Ok(text(clocks.vclock_current())),
        (F::VclockSync, [v]) => clocks.vclock_sync(&vector(v)?).map(text),
        _ => {
            return Err(SqlError::internal(format!(
                "clock function {f:?} called with {args:?}"
            )))
        }
    };
    r.map_err(clock_error)
}
