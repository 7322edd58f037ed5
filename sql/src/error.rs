//! Errors a client can see: every one carries a PostgreSQL SQLSTATE.

use std::fmt;

/// A five-character SQLSTATE code (PostgreSQL Appendix A). `.code()` gives the string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SqlState(&'static str);

impl SqlState {
    /// 42601 syntax_error.
    pub const SYNTAX_ERROR: SqlState = SqlState("42601");
    /// invalid_regular_expression.
    pub const INVALID_REGULAR_EXPRESSION: SqlState = SqlState("2201B");
    /// 42P01 undefined_table.
    pub const UNDEFINED_TABLE: SqlState = SqlState("42P01");
    /// 42703 undefined_column.
    pub const UNDEFINED_COLUMN: SqlState = SqlState("42703");
    /// 42701 duplicate_column.
    pub const DUPLICATE_COLUMN: SqlState = SqlState("42701");
    /// 42702 ambiguous_column.
    pub const AMBIGUOUS_COLUMN: SqlState = SqlState("42702");
    /// 42P07 duplicate_table.
    pub const DUPLICATE_TABLE: SqlState = SqlState("42P07");
    /// 42P16 invalid_table_definition.
    pub const INVALID_TABLE_DEFINITION: SqlState = SqlState("42P16");
    /// 42804 datatype_mismatch.
    pub const DATATYPE_MISMATCH: SqlState = SqlState("42804");
    /// 42846 cannot_coerce.
    pub const CANNOT_COERCE: SqlState = SqlState("42846");
    /// 3F000 invalid_schema_name.
    pub const INVALID_SCHEMA_NAME: SqlState = SqlState("3F000");
    /// 55P02 cant_change_runtime_param.
    pub const CANT_CHANGE_RUNTIME_PARAM: SqlState = SqlState("55P02");
    /// 42883 undefined_function.
    pub const UNDEFINED_FUNCTION: SqlState = SqlState("42883");
    /// 42501 insufficient_privilege.
    pub const INSUFFICIENT_PRIVILEGE: SqlState = SqlState("42501");
    /// 42939 reserved_name.
    pub const RESERVED_NAME: SqlState = SqlState("42939");
    /// 42704 undefined_object.
    pub const UNDEFINED_OBJECT: SqlState = SqlState("42704");
    /// 42803 grouping_error.
    pub const GROUPING_ERROR: SqlState = SqlState("42803");
    /// 42P19
    pub const INVALID_RECURSION: SqlState = SqlState("42P19");
    /// 42P10 invalid_column_reference.
    pub const INVALID_COLUMN_REFERENCE: SqlState = SqlState("42P10");
    /// 42P18 indeterminate_datatype.
    pub const INDETERMINATE_DATATYPE: SqlState = SqlState("42P18");
    /// 42601-adjacent: 42611 invalid_column_definition.
    pub const INVALID_COLUMN_DEFINITION: SqlState = SqlState("42611");
    /// 22P02 invalid_text_representation.
    pub const INVALID_TEXT_REPRESENTATION: SqlState = SqlState("22P02");
    /// 22003 numeric_value_out_of_range.
    pub const NUMERIC_VALUE_OUT_OF_RANGE: SqlState = SqlState("22003");
    /// 22012 division_by_zero.
    pub const DIVISION_BY_ZERO: SqlState = SqlState("22012");
    /// 22001 string_data_right_truncation.
    pub const STRING_DATA_RIGHT_TRUNCATION: SqlState = SqlState("22001");
    /// 22007 invalid_datetime_format.
    pub const INVALID_DATETIME_FORMAT: SqlState = SqlState("22007");
    /// 22008 datetime_field_overflow.
    pub const DATETIME_FIELD_OVERFLOW: SqlState = SqlState("22008");
    /// 2201F invalid_argument_for_power_function.
    pub const INVALID_ARGUMENT_FOR_POWER: SqlState = SqlState("2201F");
    /// 2201E invalid_argument_for_logarithm.
    pub const INVALID_ARGUMENT_FOR_LOG: SqlState = SqlState("2201E");
    /// 22011 substring_error.
    pub const SUBSTRING_ERROR: SqlState = SqlState("22011");
    /// 42725 ambiguous_function.
    pub const AMBIGUOUS_FUNCTION: SqlState = SqlState("42725");
    /// 54000 program_limit_exceeded.
    pub const PROGRAM_LIMIT_EXCEEDED: SqlState = SqlState("54000");
    /// 22023 invalid_parameter_value.
    pub const INVALID_PARAMETER_VALUE: SqlState = SqlState("22023");
    /// 22P03 invalid_binary_representation.
    pub const INVALID_BINARY_REPRESENTATION: SqlState = SqlState("22P03");
    /// 2201W invalid_row_count_in_limit_clause.
    pub const INVALID_ROW_COUNT_IN_LIMIT: SqlState = SqlState("2201W");
    /// 2201X invalid_row_count_in_result_offset_clause.
    pub const INVALID_ROW_COUNT_IN_OFFSET: SqlState = SqlState("2201X");
    /// 22025 invalid_escape_sequence.
    pub const INVALID_ESCAPE_SEQUENCE: SqlState = SqlState("22025");
    /// 21000 cardinality_violation.
    pub const CARDINALITY_VIOLATION: SqlState = SqlState("21000");
    /// 23505 unique_violation.
    pub const UNIQUE_VIOLATION: SqlState = SqlState("23505");
    /// 23502 not_null_violation.
    pub const NOT_NULL_VIOLATION: SqlState = SqlState("23502");
    /// 25P02 in_failed_sql_transaction.
    pub const IN_FAILED_SQL_TRANSACTION: SqlState = SqlState("25P02");
    /// 25P01 no_active_sql_transaction.
    pub const NO_ACTIVE_SQL_TRANSACTION: SqlState = SqlState("25P01");
    /// 25001 active_sql_transaction.
    pub const ACTIVE_SQL_TRANSACTION: SqlState = SqlState("25001");
    /// 3B001 invalid_savepoint_specification.
    pub const INVALID_SAVEPOINT: SqlState = SqlState("3B001");
    /// 26000 invalid_sql_statement_name (unknown prepared statement).
    pub const INVALID_SQL_STATEMENT_NAME: SqlState = SqlState("26000");
    /// 40001 serialization_failure.
    pub const SERIALIZATION_FAILURE: SqlState = SqlState("40001");
    /// 40P01 deadlock_detected.
    pub const DEADLOCK_DETECTED: SqlState = SqlState("40P01");
    /// 57014 query_canceled.
    pub const QUERY_CANCELED: SqlState = SqlState("57014");
    /// lock_not_available (NOWAIT, lock_timeout)
    pub const LOCK_NOT_AVAILABLE: SqlState = SqlState("55P03");
    /// 0A000 feature_not_supported.
    pub const FEATURE_NOT_SUPPORTED: SqlState = SqlState("0A000");
    /// 08P01 protocol_violation.
    pub const PROTOCOL_VIOLATION: SqlState = SqlState("08P01");
    /// 3D000 invalid_catalog_name (unknown database).
    pub const INVALID_CATALOG_NAME: SqlState = SqlState("3D000");
    /// 28000 invalid_authorization_specification (unknown role).
    pub const INVALID_AUTHORIZATION: SqlState = SqlState("28000");
    /// 58030 io_error.
    pub const IO_ERROR: SqlState = SqlState("58030");
    /// XX001 data_corrupted.
    pub const DATA_CORRUPTED: SqlState = SqlState("XX001");
    /// 55000 object_not_in_prerequisite_state (prepared transactions disabled, gid busy).
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: SqlState = SqlState("55000");
    /// 53200 configuration_limit_exceeded (max_prepared_transactions reached).
    pub const CONFIGURATION_LIMIT_EXCEEDED: SqlState = SqlState("53200");
    /// XX000 internal_error.
    pub const INTERNAL_ERROR: SqlState = SqlState("XX000");
    /// check_violation
    pub const CHECK_VIOLATION: SqlState = SqlState("23514");
    /// sequence_generator_limit_exceeded
    pub const SEQUENCE_LIMIT: SqlState = SqlState("2200H");
    /// object_not_in_prerequisite_state (currval before nextval)
    pub const NOT_IN_PREREQUISITE_STATE: SqlState = SqlState("55000");
    /// duplicate_object (an index or constraint name in use)
    pub const DUPLICATE_OBJECT: SqlState = SqlState("42710");
    /// duplicate_database
    pub const DUPLICATE_DATABASE: SqlState = SqlState("42P04");
    /// duplicate_schema
    pub const DUPLICATE_SCHEMA: SqlState = SqlState("42P06");
    /// object_in_use (DROP DATABASE with connections)
    pub const OBJECT_IN_USE: SqlState = SqlState("55006");
    /// dependent_objects_still_exist
    pub const DEPENDENT_OBJECTS: SqlState = SqlState("2BP01");
    /// wrong_object_type
    pub const WRONG_OBJECT_TYPE: SqlState = SqlState("42809");
    /// generated_always (a value for a GENERATED ALWAYS column)
    pub const GENERATED_ALWAYS: SqlState = SqlState("428C9");
    /// statement_too_complex (foreign key actions nested too deeply)
    pub const STATEMENT_TOO_COMPLEX: SqlState = SqlState("54001");
    /// foreign_key_violation
    pub const FOREIGN_KEY_VIOLATION: SqlState = SqlState("23503");
    /// invalid_foreign_key (no unique constraint matches the referenced columns)
    pub const INVALID_FOREIGN_KEY: SqlState = SqlState("42830");
    /// invalid_object_definition (overlapping partition bounds)
    pub const INVALID_OBJECT_DEFINITION: SqlState = SqlState("42P17");
    /// array_subscript_error (ARRAY[...] of sub-arrays with different dimensions)
    pub const ARRAY_SUBSCRIPT_ERROR: SqlState = SqlState("2202E");

    /// The five-character code, e.g. `"42P01"`.
    pub fn code(&self) -> &'static str {
        self.0
    }
}

impl fmt::Debug for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SqlState({})", self.0)
    }
}

impl fmt::Display for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// An error reported to the client as an ErrorResponse (severity ERROR).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    /// The SQLSTATE.
    pub code: SqlState,
    /// Primary human-readable message (PostgreSQL's wording where it exists).
    pub message: String,
    /// Optional DETAIL line.
    pub detail: Option<String>,
    /// Optional HINT line.
    pub hint: Option<String>,
}

impl SqlError {
    /// An error with a code and message and no detail or hint.
    pub fn new(code: SqlState, message: impl Into<String>) -> SqlError {
        SqlError {
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// Adds a DETAIL line.
    pub fn with_detail(mut self, detail: impl Into<String>) -> SqlError {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a HINT line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> SqlError {
        self.hint = Some(hint.into());
        self
    }

    /// True when running the transaction again may succeed (40001, 40P01).
    pub fn is_retryable(&self) -> bool {
        self.code == SqlState::SERIALIZATION_FAILURE || self.code == SqlState::DEADLOCK_DETECTED
    }

    pub(crate) fn syntax(message: impl Into<String>) -> SqlError {
        SqlError::new(SqlState::SYNTAX_ERROR, message)
    }

    pub(crate) fn unsupported(what: impl fmt::Display) -> SqlError {
        SqlError::new(
            SqlState::FEATURE_NOT_SUPPORTED,
            format!("{what} is not supported"),
        )
    }

    pub(crate) fn internal(message: impl Into<String>) -> SqlError {
        SqlError::new(SqlState::INTERNAL_ERROR, message)
    }

    pub(crate) fn corrupt(message: impl Into<String>) -> SqlError {
        SqlError::new(SqlState::DATA_CORRUPTED, message)
    }

    pub(crate) fn out_of_range(message: impl Into<String>) -> SqlError {
        SqlError::new(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, message)
    }

    pub(crate) fn division_by_zero() -> SqlError {
        SqlError::new(SqlState::DIVISION_BY_ZERO, "division by zero")
    }

    pub(crate) fn mismatch(message: impl Into<String>) -> SqlError {
        SqlError::new(SqlState::DATATYPE_MISMATCH, message)
    }

    pub(crate) fn undefined_function(message: impl Into<String>) -> SqlError {
        SqlError::new(SqlState::UNDEFINED_FUNCTION, message)
    }
}

impl From<gnomon_mvcc::MvccError> for SqlError {
    fn from(e: gnomon_mvcc::MvccError) -> SqlError {
        use gnomon_mvcc::MvccError;
        let code = match &e {
            MvccError::Serialization { .. } => SqlState::SERIALIZATION_FAILURE,
            MvccError::SerializationDependencies { reason } => {
                return SqlError::new(SqlState::SERIALIZATION_FAILURE, e.to_string())
                    .with_detail(reason.clone())
                    .with_hint("The transaction might succeed if retried.");
            }
            MvccError::Deadlock { detail, .. } => {
                return SqlError::new(SqlState::DEADLOCK_DETECTED, e.to_string())
                    .with_detail(detail.clone());
            }
            MvccError::LockNotAvailable { .. } | MvccError::LockTimeout => {
                SqlState::LOCK_NOT_AVAILABLE
            }
            MvccError::StatementTimeout | MvccError::Canceled => SqlState::QUERY_CANCELED,
            MvccError::IncrementFailed { .. } => SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            MvccError::Io { .. } | MvccError::Wal(_) => SqlState::IO_ERROR,
            MvccError::MalformedRecord { .. }
            | MvccError::CorruptClockFile { .. }
            | MvccError::WalStartsAfterCheckpoint { .. } => SqlState::DATA_CORRUPTED,
            _ => SqlState::INTERNAL_ERROR,
        };
        SqlError::new(code, e.to_string())
    }
}

/// Shorthand for results of this crate.
pub type SqlResult<T> = Result<T, SqlError>;

/// A NOTICE or WARNING sent to the client without failing the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// SQLSTATE of the notice (`00000` for plain notices, `25001`/`25P01` for transaction warnings).
    pub code: &'static str,
    /// The message, e.g. `table "x" does not exist, skipping`.
    pub message: String,
    /// `"NOTICE"` or `"WARNING"`.
    pub severity: &'static str,
}
