//! Binding (names and types), planning (access paths) and execution of SELECT, INSERT,
//! UPDATE and DELETE. FROM clauses, joins, subqueries, CTEs and set operations are bound in
//! `plan.rs`; SELECT runs in `exec.rs`.
//!
//! A statement is bound against the catalog as the current transaction sees it, producing a
//! [`Plan`] of typed [`Expr`]s. The only optimisation is the access path of a table: a WHERE
//! that fixes every primary-key column with `=` becomes a point read ([`Access::Point`], one
//! `Transaction::get`), equalities on a key prefix plus an optional range on the next key
//! column become a range scan of the primary key or, when it narrows more, of a secondary
//! index ([`Access::Index`]: entries name rows, read at the same snapshot), anything else a
//! full scan of the table's key range. The WHERE
//! clause is re-checked on the rows read, so the access path only narrows the read; the one
//! exception is a SELECT point read whose WHERE is nothing but `integer key column = constant`
//! per key column, where finding the row at the encoded key already is SQL equality
//! (`point_read_implies`).

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use sqlparser::ast;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::catalog::{decode_table_row, Catalog, Identity, TableDef};
use crate::encoding::{
    append_rows_prefix, encode_key_value, encode_row, prefix_range, prefix_successor, KeyPrefix,
};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::exec::{Env, Reader};
use crate::expr::{
    arithmetic_type, assignable, cast, castable, comparison_type, op_symbol, truth, BinOp, Clock,
    Expr, Func, StatementTimes, SubqueryKind,
};
use crate::locking::{lock_error, row_lock_of, RowLockSpec, PG_LOCKS_ID};
use crate::plan::{JoinPlan, Nesting, RecursivePlan, Scope, ScopeColumn, SetOpPlan};
use crate::session::{Column, Interrupt, Outcome};
use crate::storage::Transaction;
use crate::types::{DataType, Value, NUMERIC};
use crate::window::{WindowCall, WindowFunc};
use gnomon_mvcc::{LockWait, RelId, RowLocked, RowMode, TableMode};

mod merge;

/// Case-folds an identifier as PostgreSQL does (unquoted -> lower case).
pub(crate) fn ident_name(id: &ast::Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_lowercase()
    }
}

/// The relation and column name a set-returning function's single column goes by in FROM:
/// `f(...) AS r(c)` names both, `AS r` both `r`, no alias both `function`.
pub(crate) fn function_column_names(
    alias: Option<&ast::TableAlias>,
    function: &str,
) -> (String, String) {
    match alias {
        Some(a) => {
            let relation = ident_name(&a.name);
            let column = a
                .columns
                .first()
                .map(|c| ident_name(&c.name))
                .unwrap_or_else(|| relation.clone());
            (relation, column)
        }
        None => (function.to_string(), function.to_string()),
    }
}

/// The last part of an object name (schema qualifiers `public.` / `pg_catalog.` are ignored).
pub(crate) fn object_name(name: &ast::ObjectName) -> SqlResult<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ast::ObjectNamePart::Identifier(id) => Ok(ident_name(id)),
            _ => Err(SqlError::unsupported("this kind of object name")),
        })
        .collect::<SqlResult<_>>()?;
    match parts.as_slice() {
        [name] => Ok(name.clone()),
        [schema, name] if schema == "public" || schema == "pg_catalog" => Ok(name.clone()),
        [schema, name] if schema == "information_schema" => Ok(format!("{schema}.{name}")),
        [schema, _] => Err(SqlError::new(
            SqlState::INVALID_SCHEMA_NAME,
            format!("schema \"{schema}\" does not exist"),
        )),
        _ => Err(SqlError::unsupported("cross-database references")),
    }
}

/// Maps a parsed SQL type to a Gnomon type.
pub(crate) fn convert_type(t: &ast::DataType) -> SqlResult<DataType> {
    use ast::DataType as A;
    let len = |l: &Option<ast::CharacterLength>| -> Option<u32> {
        match l {
            Some(ast::CharacterLength::IntegerLength { length, .. }) => Some(*length as u32),
            _ => None,
        }
    };
    let numeric = |info: &ast::ExactNumberInfo| match info {
        ast::ExactNumberInfo::None => NUMERIC,
        ast::ExactNumberInfo::Precision(p) => DataType::Numeric {
            precision: Some(*p as u32),
            scale: Some(0),
        },
        ast::ExactNumberInfo::PrecisionAndScale(p, s) => DataType::Numeric {
            precision: Some(*p as u32),
            scale: Some((*s).max(0) as u32),
        },
    };
    Ok(match t {
        A::SmallInt(_) | A::Int2(_) => DataType::Int2,
        A::Int(_) | A::Integer(_) | A::Int4(_) => DataType::Int4,
        A::BigInt(_) | A::Int8(_) => DataType::Int8,
        A::Real | A::Float4 => DataType::Float4,
        A::DoublePrecision | A::Float8 | A::Double(_) => DataType::Float8,
        A::Float(ast::ExactNumberInfo::Precision(p)) if *p <= 24 => DataType::Float4,
        A::Float(_) => DataType::Float8,
        A::Numeric(i) | A::Decimal(i) | A::Dec(i) => numeric(i),
        A::Text | A::String(None) => DataType::Text,
        A::Varchar(l) | A::CharacterVarying(l) | A::CharVarying(l) => DataType::Varchar(len(l)),
        A::Char(l) | A::Character(l) => DataType::Bpchar(Some(len(l).unwrap_or(1))),
        A::Bool | A::Boolean => DataType::Bool,
        A::Date => DataType::Date,
        A::Timestamp(_, tz) => match tz {
            ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz => DataType::Timestamptz,
            _ => DataType::Timestamp,
        },
        A::Bytea => DataType::Bytea,
        A::Interval { .. } => DataType::Interval,
        A::Array(
            ast::ArrayElemTypeDef::SquareBracket(elem, _)
            | ast::ArrayElemTypeDef::Qualified(elem, _)
            | ast::ArrayElemTypeDef::AngleBracket(elem),
        ) => match convert_type(elem)? {
            // int[][] is int[]: PostgreSQL does not count dimensions in the type.
            t @ DataType::Array(_) => t,
            t => DataType::array_of(t),
        },
        A::Custom(name, mods) => {
            let n = object_name(name)?;
            let first_mod = mods.first().and_then(|m| m.to_string().parse::<u32>().ok());
            if let Some(elem) = n.strip_prefix('_') {
                // `_int4`: pg_type's name of the array type.
                let elem =
                    sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
                        .try_with_sql(elem)
                        .and_then(|mut p| p.parse_data_type())
                        .map_err(|_| {
                            SqlError::new(
                                SqlState::UNDEFINED_OBJECT,
                                format!("type \"{n}\" does not exist"),
                            )
                        })?;
                return Ok(DataType::array_of(convert_type(&elem)?));
            }
            match n.as_str() {
                "int2" => DataType::Int2,
                "int4" => DataType::Int4,
                "int8" => DataType::Int8,
                "float4" => DataType::Float4,
                "float8" => DataType::Float8,
                "bpchar" => DataType::Bpchar(first_mod),
                "varchar" => DataType::Varchar(first_mod),
                "timestamptz" => DataType::Timestamptz,
                "bool" => DataType::Bool,
                "text" => DataType::Text,
                "name" => DataType::Text,
                "int2vector" => DataType::Int2Vector,
                "oidvector" => DataType::OidVector,
                _ => {
                    return Err(SqlError::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!("type \"{n}\" does not exist"),
                    ))
                }
            }
        }
        other => return Err(SqlError::unsupported(format!("type {other}"))),
    })
}

/// PostgreSQL's short type name (used for `?column?`-less cast column names).
fn short_type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Bool => "bool",
        DataType::Int2 => "int2",
        DataType::Int4 => "int4",
        DataType::Int8 => "int8",
        DataType::Float4 => "float4",
        DataType::Float8 => "float8",
        DataType::Numeric { .. } => "numeric",
        DataType::Text => "text",
        DataType::Varchar(_) => "varchar",
        DataType::Bpchar(_) => "bpchar",
        DataType::Bytea => "bytea",
        DataType::Date => "date",
        DataType::Timestamp => "timestamp",
        DataType::Timestamptz => "timestamptz",
        DataType::Interval => "interval",
        DataType::Unknown => "unknown",
        DataType::Array(elem) => short_type_name(elem),
        DataType::Int2Vector => "int2vector",
        DataType::OidVector => "oidvector",
    }
}

/// Who is asking, for functions like `current_user`.
#[derive(Debug, Clone)]
pub(crate) struct SessionInfo {
    pub user: String,
    pub database: String,
}

// ---------------------------------------------------------------------------------------
// Plans.

/// How rows of a table are read.
#[derive(Debug, Clone)]
pub(crate) enum Access {
    /// Every row of the table.
    Full,
    /// Exactly one key: one expression per primary-key column, in key order.
    Point(Vec<Expr>),
    /// Equalities on a key prefix plus optional bounds on the next key column.
    Range {
        prefix: Vec<Expr>,
        lower: Option<(Expr, bool)>,
        upper: Option<(Expr, bool)>,
    },
    /// Like `Range`, over secondary index `index` (a position in `TableDef::indexes`): each
    /// entry found names a row, read at the same snapshot (see `index.rs`).
    Index {
        index: usize,
        prefix: Vec<Expr>,
        lower: Option<(Expr, bool)>,
        upper: Option<(Expr, bool)>,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// SELECT without FROM: one empty row.
    Single,
    Table {
        def: Arc<TableDef>,
        access: Access,
    },
    Series {
        start: Expr,
        stop: Expr,
        step: Option<Expr>,
        ty: DataType,
    },
    /// `unnest(array)`: one row per element of the array's text form (`catalog_fns`), cast
    /// to the type (`pg_partition_ancestors` is an unnest of an oid array).
    Unnest(Expr, DataType),
    /// A system view ([`crate::system`]), read at execution.
    System(crate::system::SystemView),
    /// Rows of two sources side by side ([`crate::plan`]).
    Join(Box<JoinPlan>),
    /// A derived table or a non-recursive CTE: the visible rows of a query.
    Query(Box<SelectPlan>),
    /// UNION / INTERSECT / EXCEPT.
    SetOp(Box<SetOpPlan>),
    /// WITH RECURSIVE.
    Recursive(Box<RecursivePlan>),
    /// The working table of the recursive CTE `id` (inside its recursive term).
    WorkTable {
        id: usize,
        width: usize,
    },
    /// VALUES rows.
    Values(Vec<Vec<Expr>>),
    /// The rows of a source that pass a condition (a join input's own conjuncts).
    Filter(Box<Source>, Expr),
    /// A partitioned table: the rows of its (surviving) partitions (`partition.rs`).
    Append(Box<crate::partition::AppendPlan>),
    /// `... WITH ORDINALITY`: the inner source's rows with their 1-based number appended.
    Ordinality(Box<Source>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggFunc {
    /// `bool_and(x)` / `every(x)`.
    BoolAnd,
    /// `bool_or(x)`.
    BoolOr,
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// `string_agg(text, separator)` (the separator is a constant: `AggCall::separator`).
    StringAgg,
    /// `array_agg(x)`: the values as an array (its text form, see `catalog_fns`).
    ArrayAgg,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AggCall {
    pub func: AggFunc,
    /// `string_agg`'s separator.
    pub separator: Option<String>,
    pub arg: Option<Expr>,
    pub arg_ty: DataType,
    pub distinct: bool,
    /// `FILTER (WHERE ...)`: only rows passing it are aggregated.
    pub filter: Option<Expr>,
    /// `agg(x ORDER BY k1 [DESC], ...)`: the order values are fed in (empty: input order).
    pub order_by: Vec<AggOrder>,
}

/// One key of an aggregate's ORDER BY.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AggOrder {
    pub expr: Expr,
    pub desc: bool,
    pub nulls_first: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct AggPlan {
    pub group_by: Vec<Expr>,
    pub aggs: Vec<AggCall>,
    pub having: Option<Expr>,
}

#[derive(Debug, Clone)]
pub(crate) struct SortKey {
    pub index: usize,
    pub desc: bool,
    pub nulls_first: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct SelectPlan {
    pub source: Source,
    pub filter: Option<Expr>,
    pub agg: Option<AggPlan>,
    /// Window calls, each appending one column to the (grouped) rows before projection.
    pub windows: Vec<WindowCall>,
    pub project: Vec<Expr>,
    /// Select-list items that are set-returning functions (`unnest(x)`): the column and
    /// the type of its elements. The column evaluates to the set as an array; each row
    /// becomes one row per element (see `exec::expand_set_columns`).
    pub srf: Vec<(usize, DataType)>,
    pub visible: usize,
    pub distinct: bool,
    pub order: Vec<SortKey>,
    pub limit: Option<Expr>,
    pub offset: Option<Expr>,
    pub(crate) columns: Arc<[Column]>,
    /// Which columns of a table source the query reads (filter, grouping, aggregates,
    /// projection); the others are not decoded (they read as NULL, and nothing looks at them).
    pub needed: Vec<bool>,
    /// `FOR UPDATE` and friends: the returned rows are locked (see `run_select_locked`).
    pub lock: Option<RowLockSpec>,
}

#[derive(Debug, Clone)]
pub(crate) enum InsertSource {
    /// Rows of expressions; None = DEFAULT.
    Values(Vec<Vec<Option<Expr>>>),
    Query(Box<SelectPlan>),
}

#[derive(Debug, Clone)]
pub(crate) struct Returning {
    exprs: Vec<Expr>,
    columns: Arc<[Column]>,
}

#[derive(Debug, Clone)]
pub(crate) enum Plan {
    Select(Box<SelectPlan>),
    Insert {
        table: Arc<TableDef>,
        targets: Vec<usize>,
        source: InsertSource,
        defaults: Vec<Option<Expr>>,
        returning: Option<Returning>,
        /// ON CONFLICT (see `upsert.rs`).
        on_conflict: Option<Box<crate::upsert::OnConflict>>,
    },
    Update {
        table: Arc<TableDef>,
        access: Access,
        filter: Option<Expr>,
        sets: Vec<(usize, Expr)>,
        returning: Option<Returning>,
        /// Runs as increments under the INCREMENT row lock ([`increment_plan`]).
        increment: Option<IncrementPlan>,
    },
    Delete {
        table: Arc<TableDef>,
        access: Access,
        filter: Option<Expr>,
        returning: Option<Returning>,
    },
    /// MERGE (see `query/merge.rs`).
    Merge(Box<merge::MergePlan>),
}

impl Plan {
    /// Result columns (empty for statements without RETURNING).
    pub(crate) fn columns(&self) -> Vec<Column> {
        match self {
            Plan::Select(s) => s.columns.to_vec(),
            Plan::Insert { returning, .. }
            | Plan::Update { returning, .. }
            | Plan::Delete { returning, .. } => returning
                .as_ref()
                .map(|r| r.columns.to_vec())
                .unwrap_or_default(),
            Plan::Merge(_) => vec![],
        }
    }

    /// True when the plan returns columns of the same number and types as `columns`.
    pub(crate) fn columns_match(&self, columns: &[Column]) -> bool {
        let mine: &[Column] = match self {
            Plan::Select(s) => &s.columns,
            Plan::Insert { returning, .. }
            | Plan::Update { returning, .. }
            | Plan::Delete { returning, .. } => returning.as_ref().map_or(&[], |r| &r.columns[..]),
            Plan::Merge(_) => &[],
        };
        mine.len() == columns.len() && mine.iter().zip(columns).all(|(a, b)| a.ty == b.ty)
    }
}

// ---------------------------------------------------------------------------------------
// Binder.

/// Aggregation context while binding the select list, HAVING and ORDER BY of a grouped query.
pub(crate) struct AggState {
    group_exprs: Vec<Expr>,
    group_types: Vec<DataType>,
    aggs: Vec<AggCall>,
}

impl AggState {
    fn output_index(&self, agg: usize) -> usize {
        self.group_exprs.len() + agg
    }
}

/// Binds statements: resolves names against the catalog and assigns types.
pub(crate) struct Binder<'a> {
    pub catalog: &'a Catalog,
    pub txn: &'a dyn Transaction,
    pub info: &'a SessionInfo,
    /// Parameter types: declared by the client or inferred here (None = not yet known).
    pub params: Vec<Option<DataType>>,
    /// Enclosing queries' scopes and CTEs while binding nested queries.
    pub nesting: Nesting,
    /// Window calls of the query being bound (their results are columns numbered from
    /// [`WINDOW_BASE`] until the query's row width is known).
    windows: Vec<WindowCall>,
}

/// Column numbers at and above this stand for window-call results while a query is bound.
const WINDOW_BASE: usize = 1 << 30;

impl<'a> Binder<'a> {
    /// A binder for one statement.
    pub(crate) fn new(
        catalog: &'a Catalog,
        txn: &'a dyn Transaction,
        info: &'a SessionInfo,
        params: Vec<Option<DataType>>,
    ) -> Binder<'a> {
        Binder {
            catalog,
            txn,
            info,
            params,
            nesting: Nesting::default(),
            windows: Vec::new(),
        }
    }
}

fn is_aggregate_name(n: &str) -> bool {
    matches!(
        n,
        "count"
            | "sum"
            | "avg"
            | "min"
            | "max"
            | "string_agg"
            | "array_agg"
            | "bool_and"
            | "bool_or"
            | "every"
    )
}

pub(crate) fn function_name(f: &ast::Function) -> String {
    f.name
        .0
        .last()
        .and_then(|p| match p {
            ast::ObjectNamePart::Identifier(id) => Some(ident_name(id)),
            _ => None,
        })
        .unwrap_or_default()
}

/// Whether an AST expression contains an aggregate call (outside subqueries).
fn contains_aggregate(e: &ast::Expr) -> bool {
    use ast::Expr as E;
    match e {
        E::Function(f) => {
            if is_aggregate_name(&function_name(f))
                && f.over.is_none()
                && !matches!(f.args, ast::FunctionArguments::None)
            {
                return true;
            }
            match &f.args {
                ast::FunctionArguments::List(l) => l.args.iter().any(|a| match a {
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => {
                        contains_aggregate(x)
                    }
                    _ => false,
                }),
                _ => false,
            }
        }
        E::BinaryOp { left, right, .. } => contains_aggregate(left) || contains_aggregate(right),
        E::UnaryOp { expr, .. }
        | E::Nested(expr)
        | E::Cast { expr, .. }
        | E::IsNull(expr)
        | E::IsNotNull(expr)
        | E::IsTrue(expr)
        | E::IsFalse(expr)
        | E::IsNotTrue(expr)
        | E::IsNotFalse(expr) => contains_aggregate(expr),
        E::Between {
            expr, low, high, ..
        } => contains_aggregate(expr) || contains_aggregate(low) || contains_aggregate(high),
        E::In {
            expr,
            target: ast::InTarget::List(list),
            ..
        } => contains_aggregate(expr) || list.iter().any(contains_aggregate),
        E::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.as_deref().is_some_and(contains_aggregate)
                || conditions
                    .iter()
                    .any(|c| contains_aggregate(&c.condition) || contains_aggregate(&c.result))
                || else_result.as_deref().is_some_and(contains_aggregate)
        }
        _ => false,
    }
}

/// The column name PostgreSQL gives an unaliased select-list expression.
fn column_name(e: &ast::Expr) -> String {
    use ast::Expr as E;
    match e {
        E::Identifier(id) => ident_name(id),
        E::CompoundIdentifier(ids) => ids
            .last()
            .map(ident_name)
            .unwrap_or_else(|| "?column?".into()),
        E::Function(f) => function_name(f),
        E::Nested(inner) => column_name(inner),
        E::Cast {
            expr, data_type, ..
        } => {
            let inner = column_name(expr);
            if inner == "?column?" || name_is_a_type(expr) {
                convert_type(data_type)
                    .map(|t| short_type_name(&t).to_string())
                    .unwrap_or(inner)
            } else {
                inner
            }
        }
        E::TypedString(ts) => convert_type(&ts.data_type)
            .map(|t| short_type_name(&t).to_string())
            .unwrap_or_else(|_| "?column?".into()),
        E::Case { .. } => "case".into(),
        // The names PostgreSQL gives the special function syntaxes (their function names).
        E::Floor { .. } => "floor".into(),
        E::Ceil { .. } => "ceil".into(),
        E::Position { .. } => "position".into(),
        E::Substring { shorthand, .. } => if *shorthand { "substr" } else { "substring" }.into(),
        E::Trim { trim_where, .. } => match trim_where {
            Some(ast::TrimWhereField::Leading) => "ltrim",
            Some(ast::TrimWhereField::Trailing) => "rtrim",
            _ => "btrim",
        }
        .into(),
        E::Extract { .. } => "extract".into(),
        E::Interval(_) => "interval".into(),
        // A scalar subquery is named after its one output column.
        E::Subquery(q) => match q.body.as_ref() {
            ast::SetExpr::Select(s) => match s.projection.first() {
                Some(ast::SelectItem::UnnamedExpr(e)) => column_name(e),
                Some(ast::SelectItem::ExprWithAlias { alias, .. }) => ident_name(alias),
                _ => "?column?".into(),
            },
            _ => "?column?".into(),
        },
        E::Array(_) => "array".into(),
        E::Value(v) if matches!(v.value, ast::Value::Boolean(_)) => "bool".into(),
        // `a[1]` is named after the array.
        E::CompoundFieldAccess { root, .. } => column_name(root),
        _ => "?column?".into(),
    }
}

/// Whether an expression's column name is only the name of a type it was cast to (so an
/// outer cast renames it: `'{1}'::int[]::text[]` is `text`, PostgreSQL's weak names).
fn name_is_a_type(e: &ast::Expr) -> bool {
    use ast::Expr as E;
    match e {
        E::Nested(inner) => name_is_a_type(inner),
        E::TypedString(_) => true,
        E::Cast { expr, .. } => column_name(expr) == "?column?" || name_is_a_type(expr),
        _ => false,
    }
}

/// The result type of `+ - * /` on intervals and timestamps (None: not such an operation).
fn datetime_arithmetic_type(op: BinOp, l: DataType, r: DataType) -> Option<DataType> {
    use DataType as T;
    let ts = |t: T| matches!(t, T::Timestamp | T::Timestamptz);
    let num = |t: T| t.is_numeric() || t == T::Unknown;
    Some(match (l, op, r) {
        (T::Interval, BinOp::Add | BinOp::Sub, T::Interval | T::Unknown)
        | (T::Unknown, BinOp::Add | BinOp::Sub, T::Interval) => T::Interval,
        (T::Interval, BinOp::Mul | BinOp::Div, n) if num(n) => T::Interval,
        (n, BinOp::Mul, T::Interval) if num(n) => T::Interval,
        (t, BinOp::Add | BinOp::Sub, T::Interval) if ts(t) => t,
        (t, BinOp::Add, T::Unknown) if ts(t) => t,
        (T::Interval | T::Unknown, BinOp::Add, t) if ts(t) => t,
        (T::Date, BinOp::Add | BinOp::Sub, T::Interval) | (T::Interval, BinOp::Add, T::Date) => {
            T::Timestamp
        }
        (a, BinOp::Sub, b) if ts(a) && (ts(b) || b == T::Date || b == T::Unknown) => T::Interval,
        (T::Date | T::Unknown, BinOp::Sub, b) if ts(b) => T::Interval,
        _ => return None,
    })
}

fn parse_number(s: &str) -> SqlResult<(Value, DataType)> {
    if !s.contains(['.', 'e', 'E']) {
        if let Ok(v) = s.parse::<i32>() {
            return Ok((Value::Int4(v), DataType::Int4));
        }
        if let Ok(v) = s.parse::<i64>() {
            return Ok((Value::Int8(v), DataType::Int8));
        }
    }
    if let Some(d) = crate::types::parse_decimal(s) {
        return Ok((Value::Numeric(d), NUMERIC));
    }
    // NB: beyond numeric's 28 digits (e.g. 1e100 or 3.4028235e38) the literal is typed double
    // precision, where PostgreSQL keeps an exact numeric; assigning it to a float column or
    // computing in floats gives PostgreSQL's answer.
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok((Value::Float8(f), DataType::Float8)),
        _ => Err(SqlError::out_of_range(format!(
            "numeric literal {s} does not fit Gnomon's numeric"
        ))),
    }
}

impl Binder<'_> {
    fn param_type(&self, i: usize) -> DataType {
        self.params
            .get(i)
            .copied()
            .flatten()
            .unwrap_or(DataType::Unknown)
    }

    /// Gives an untyped constant or parameter the type `to`, or inserts an implicit cast.
    pub(crate) fn coerce(&mut self, e: Expr, from: DataType, to: DataType) -> SqlResult<Expr> {
        if from == to || to == DataType::Unknown {
            return Ok(e);
        }
        match e {
            Expr::Const(v) if from == DataType::Unknown => Ok(Expr::Const(cast(v, &to, false)?)),
            Expr::Param(i) if from == DataType::Unknown => {
                if self.params.len() <= i {
                    self.params.resize(i + 1, None);
                }
                self.params[i] = Some(to);
                Ok(Expr::Param(i))
            }
            other => Ok(Expr::Cast {
                expr: Box::new(other),
                ty: to,
                explicit: false,
            }),
        }
    }

    pub(crate) fn bind_bool(
        &mut self,
        ast: &ast::Expr,
        scope: &Scope,
        agg: Option<&mut AggState>,
        clause: &str,
    ) -> SqlResult<Expr> {
        let (e, t) = self.bind_expr(ast, scope, agg)?;
        if t == DataType::Bool {
            return Ok(e);
        }
        if t == DataType::Unknown {
            return self.coerce(e, t, DataType::Bool);
        }
        Err(SqlError::mismatch(format!(
            "argument of {clause} must be type boolean, not type {}",
            t.name()
        )))
    }

    /// Binds an expression in `scope`. With `agg`, the expression is evaluated on grouped rows:
    /// group-by expressions and aggregate calls become columns of the grouped row.
    pub(crate) fn bind_expr(
        &mut self,
        ast: &ast::Expr,
        scope: &Scope,
        mut agg: Option<&mut AggState>,
    ) -> SqlResult<(Expr, DataType)> {
        use ast::Expr as E;
        if let Some(state) = agg.as_deref_mut() {
            if !matches!(ast, E::Value(_) | E::Nested(_)) {
                let saved = self.params.clone();
                let saved_windows = self.windows.len();
                if let Ok((e, _)) = self.bind_expr(ast, scope, None) {
                    if let Some(i) = state.group_exprs.iter().position(|g| *g == e) {
                        return Ok((Expr::Column(i), state.group_types[i]));
                    }
                }
                self.params = saved;
                self.windows.truncate(saved_windows);
            }
        }
        match ast {
            E::Identifier(id) => {
                let name = ident_name(id);
                self.column_ref(None, &name, scope, agg.is_some())
            }
            E::CompoundIdentifier(ids) => {
                let names: Vec<String> = ids.iter().map(ident_name).collect();
                match names.as_slice() {
                    [q, c] => self.column_ref(Some(q), c, scope, agg.is_some()),
                    [_, q, c] | [_, _, q, c] => self.column_ref(Some(q), c, scope, agg.is_some()),
                    _ => Err(SqlError::syntax("improper qualified name")),
                }
            }
            E::Value(v) => self.bind_value(&v.value),
            E::TypedString(ts) => {
                let ty = convert_type(&ts.data_type)?;
                let text = match &ts.value.value {
                    ast::Value::SingleQuotedString(s) | ast::Value::EscapedStringLiteral(s) => {
                        s.clone()
                    }
                    other => other.to_string(),
                };
                Ok((Expr::Const(cast(Value::Text(text), &ty, true)?), ty))
            }
            E::Nested(inner) => self.bind_expr(inner, scope, agg),
            E::Cast {
                expr,
                data_type,
                kind,
                ..
            } => {
                if matches!(kind, ast::CastKind::TryCast | ast::CastKind::SafeCast) {
                    return Err(SqlError::unsupported("TRY_CAST"));
                }
                if let Some(bound) =
                    self.bind_catalog_cast(expr, data_type, scope, agg.as_deref_mut())?
                {
                    return Ok(bound);
                }
                let to = convert_type(data_type)?;
                let (e, from) = self.bind_expr(expr, scope, agg)?;
                if from == DataType::Unknown {
                    return match e {
                        Expr::Const(v) => Ok((Expr::Const(cast(v, &to, true)?), to)),
                        other => Ok((self.coerce(other, from, to)?, to)),
                    };
                }
                if !castable(&from, &to) {
                    return Err(SqlError::new(
                        SqlState::CANNOT_COERCE,
                        format!("cannot cast type {} to {}", from.name(), to.name()),
                    ));
                }
                if let Expr::Const(v) = &e {
                    return Ok((Expr::Const(cast(v.clone(), &to, true)?), to));
                }
                Ok((
                    Expr::Cast {
                        expr: Box::new(e),
                        ty: to,
                        explicit: true,
                    },
                    to,
                ))
            }
            E::UnaryOp { op, expr } => match op {
                ast::UnaryOperator::Minus => {
                    if let E::Value(v) = expr.as_ref() {
                        if let ast::Value::Number(n, _) = &v.value {
                            let (val, ty) = parse_number(&format!("-{n}"))?;
                            return Ok((Expr::Const(val), ty));
                        }
                    }
                    let (e, t) = self.bind_expr(expr, scope, agg)?;
                    let (e, t) = if t == DataType::Unknown {
                        (self.coerce(e, t, NUMERIC)?, NUMERIC)
                    } else {
                        (e, t)
                    };
                    if !t.is_numeric() && t != DataType::Interval {
                        return Err(SqlError::undefined_function(format!(
                            "operator does not exist: - {}",
                            t.name()
                        )));
                    }
                    Ok((Expr::Neg(Box::new(e)), t))
                }
                ast::UnaryOperator::Plus => self.bind_expr(expr, scope, agg),
                ast::UnaryOperator::Not => {
                    let e = self.bind_bool(expr, scope, agg, "NOT")?;
                    Ok((Expr::Not(Box::new(e)), DataType::Bool))
                }
                other => Err(SqlError::unsupported(format!("operator {other}"))),
            },
            E::BinaryOp { left, op, right } => self.bind_binary(left, op, right, scope, agg),
            E::IsNull(e) | E::IsNotNull(e) => {
                let (b, _) = self.bind_expr(e, scope, agg)?;
                Ok((
                    Expr::IsNull(Box::new(b), matches!(ast, E::IsNotNull(_))),
                    DataType::Bool,
                ))
            }
            E::IsTrue(e)
            | E::IsNotTrue(e)
            | E::IsFalse(e)
            | E::IsNotFalse(e)
            | E::IsUnknown(e)
            | E::IsNotUnknown(e) => {
                let b = self.bind_bool(e, scope, agg, "IS")?;
                let out = match ast {
                    E::IsTrue(_) => Expr::IsBool {
                        expr: Box::new(b),
                        value: true,
                        negated: false,
                    },
                    E::IsNotTrue(_) => Expr::IsBool {
                        expr: Box::new(b),
                        value: true,
                        negated: true,
                    },
                    E::IsFalse(_) => Expr::IsBool {
                        expr: Box::new(b),
                        value: false,
                        negated: false,
                    },
                    E::IsNotFalse(_) => Expr::IsBool {
                        expr: Box::new(b),
                        value: false,
                        negated: true,
                    },
                    E::IsUnknown(_) => Expr::IsNull(Box::new(b), false),
                    _ => Expr::IsNull(Box::new(b), true),
                };
                Ok((out, DataType::Bool))
            }
            E::IsDistinctFrom(a, b) | E::IsNotDistinctFrom(a, b) => {
                let (l, r, _) =
                    self.bind_comparison_operands(a, b, scope, agg, "IS DISTINCT FROM")?;
                Ok((
                    Expr::IsDistinct {
                        left: Box::new(l),
                        right: Box::new(r),
                        negated: matches!(ast, E::IsNotDistinctFrom(..)),
                    },
                    DataType::Bool,
                ))
            }
            E::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (l1, r1, t) =
                    self.bind_comparison_operands(expr, low, scope, agg.as_deref_mut(), ">=")?;
                let (l2, r2, _) = self.bind_comparison_operands(expr, high, scope, agg, "<=")?;
                let ge = Expr::Binary {
                    op: BinOp::GtEq,
                    left: Box::new(l1),
                    right: Box::new(r1),
                    ty: t,
                };
                let le = Expr::Binary {
                    op: BinOp::LtEq,
                    left: Box::new(l2),
                    right: Box::new(r2),
                    ty: t,
                };
                let both = Expr::And(Box::new(ge), Box::new(le));
                Ok((
                    if *negated {
                        Expr::Not(Box::new(both))
                    } else {
                        both
                    },
                    DataType::Bool,
                ))
            }
            E::In {
                expr,
                target: ast::InTarget::List(list),
                negated,
                ..
            } => {
                let (mut e, mut et) = self.bind_expr(expr, scope, agg.as_deref_mut())?;
                let mut items = Vec::with_capacity(list.len());
                for item in list {
                    items.push(self.bind_expr(item, scope, agg.as_deref_mut())?);
                }
                let mut target = et;
                for (_, t) in &items {
                    target = comparison_type(&target, t).ok_or_else(|| {
                        SqlError::undefined_function(format!(
                            "operator does not exist: {} = {}",
                            et.name(),
                            t.name()
                        ))
                    })?;
                }
                if et == DataType::Unknown {
                    e = self.coerce(e, et, target)?;
                    et = target;
                }
                let mut bound = Vec::with_capacity(items.len());
                for (x, t) in items {
                    bound.push(if t == DataType::Unknown {
                        self.coerce(x, t, et)?
                    } else {
                        x
                    });
                }
                Ok((
                    Expr::InList {
                        expr: Box::new(e),
                        list: bound,
                        negated: *negated,
                    },
                    DataType::Bool,
                ))
            }
            E::Like {
                negated,
                expr,
                pattern,
                escape_char,
                any,
                ..
            }
            | E::ILike {
                negated,
                expr,
                pattern,
                escape_char,
                any,
                ..
            } => {
                if escape_char.is_some() || *any {
                    return Err(SqlError::unsupported("LIKE ... ESCAPE / ANY"));
                }
                let (e, t) = self.bind_expr(expr, scope, agg.as_deref_mut())?;
                let (p, pt) = self.bind_expr(pattern, scope, agg)?;
                let e = self.text_operand(e, t, "~~")?;
                let p = self.text_operand(p, pt, "~~")?;
                Ok((
                    Expr::Like {
                        expr: Box::new(e),
                        pattern: Box::new(p),
                        negated: *negated,
                        case_insensitive: matches!(ast, E::ILike { .. }),
                    },
                    DataType::Bool,
                ))
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let op = match operand {
                    Some(o) => Some(self.bind_expr(o, scope, agg.as_deref_mut())?),
                    None => None,
                };
                let mut whens = Vec::new();
                let mut results = Vec::new();
                for c in conditions {
                    let cond = match &op {
                        Some((_, ot)) => {
                            let (ce, ct) =
                                self.bind_expr(&c.condition, scope, agg.as_deref_mut())?;
                            let target = comparison_type(ot, &ct).ok_or_else(|| {
                                SqlError::undefined_function(format!(
                                    "operator does not exist: {} = {}",
                                    ot.name(),
                                    ct.name()
                                ))
                            })?;
                            self.coerce(ce, ct, if ct == DataType::Unknown { target } else { ct })?
                        }
                        None => {
                            self.bind_bool(&c.condition, scope, agg.as_deref_mut(), "CASE/WHEN")?
                        }
                    };
                    whens.push(cond);
                    results.push(self.bind_expr(&c.result, scope, agg.as_deref_mut())?);
                }
                let otherwise = match else_result {
                    Some(e) => Some(self.bind_expr(e, scope, agg)?),
                    None => None,
                };
                let mut all: Vec<(Expr, DataType)> = results;
                if let Some(o) = otherwise {
                    all.push(o);
                }
                let (unified, ty) = self.unify(all, "CASE")?;
                let mut unified = unified.into_iter();
                let whens: Vec<(Expr, Expr)> = whens.into_iter().zip(unified.by_ref()).collect();
                let otherwise = unified.next().map(Box::new);
                Ok((
                    Expr::Case {
                        operand: op.map(|(e, _)| Box::new(e)),
                        whens,
                        otherwise,
                    },
                    ty,
                ))
            }
            E::Function(f) => self.bind_function(f, scope, agg),
            E::Floor { expr, field } | E::Ceil { expr, field } => {
                let name = if matches!(ast, E::Floor { .. }) {
                    "floor"
                } else {
                    "ceil"
                };
                match field {
                    ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime) => {
                        self.bind_scalar_call(name, &[expr.as_ref()], scope, agg)
                    }
                    _ => Err(SqlError::unsupported(format!(
                        "{name} with a scale or unit"
                    ))),
                }
            }
            E::Position { expr, r#in } => {
                self.bind_scalar_call("strpos", &[r#in.as_ref(), expr.as_ref()], scope, agg)
            }
            E::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let one = ast::Expr::value(ast::Value::Number("1".into(), false));
                let from = substring_from.as_deref().unwrap_or(&one);
                let mut args = vec![expr.as_ref(), from];
                if let Some(f) = substring_for {
                    args.push(f.as_ref());
                }
                self.bind_scalar_call("substr", &args, scope, agg)
            }
            E::Trim {
                expr,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                let name = match trim_where {
                    Some(ast::TrimWhereField::Leading) => "ltrim",
                    Some(ast::TrimWhereField::Trailing) => "rtrim",
                    _ => "btrim",
                };
                let mut args = vec![expr.as_ref()];
                match (trim_what, trim_characters.as_deref()) {
                    (Some(w), _) => args.push(w.as_ref()),
                    (None, Some([c])) => args.push(c),
                    (None, None) => {}
                    (None, Some(_)) => {
                        return Err(SqlError::undefined_function(
                            "function btrim with more than two arguments does not exist",
                        ))
                    }
                }
                self.bind_scalar_call(name, &args, scope, agg)
            }
            E::Interval(iv) => {
                let text = match iv.value.as_ref() {
                    E::Value(v) => match &v.value {
                        ast::Value::SingleQuotedString(s) => s.clone(),
                        ast::Value::Number(n, _) => n.clone(),
                        _ => return Err(SqlError::unsupported("this INTERVAL literal")),
                    },
                    _ => return Err(SqlError::unsupported("INTERVAL of an expression")),
                };
                if iv.last_field.is_some() {
                    return Err(SqlError::unsupported("INTERVAL ... TO ..."));
                }
                let unit = iv
                    .leading_field
                    .as_ref()
                    .map(|f| f.to_string().to_lowercase());
                let parsed = crate::interval::Interval::parse(&text, unit.as_deref())?;
                Ok((Expr::Const(Value::Interval(parsed)), DataType::Interval))
            }
            E::Extract { field, expr, .. } => {
                let unit = match field {
                    ast::DateTimeField::Custom(id) => id.value.clone(),
                    other => other.to_string(),
                };
                let (e, t) = self.bind_expr(expr, scope, agg)?;
                self.finish_scalar_call(
                    "extract",
                    vec![
                        (
                            Expr::Const(Value::Text(unit.to_lowercase())),
                            DataType::Text,
                        ),
                        (e, t),
                    ],
                )
            }
            E::Subquery(q) => self.bind_subquery(q, scope, SubqueryKind::Scalar),
            E::Exists { subquery, negated } => {
                let (e, t) = self.bind_subquery(subquery, scope, SubqueryKind::Exists)?;
                Ok((if *negated { Expr::Not(Box::new(e)) } else { e }, t))
            }
            E::In {
                expr,
                target: ast::InTarget::Subquery(q),
                negated,
                ..
            } => {
                let (e, t) = self.bind_quantified(expr, q, BinOp::Eq, false, scope, agg)?;
                Ok((if *negated { Expr::Not(Box::new(e)) } else { e }, t))
            }
            E::AnyOp {
                left,
                compare_op,
                right,
                ..
            }
            | E::AllOp {
                left,
                compare_op,
                right,
            } => {
                use ast::BinaryOperator as B;
                let op = match compare_op {
                    B::Eq => BinOp::Eq,
                    B::NotEq => BinOp::NotEq,
                    B::Lt => BinOp::Lt,
                    B::LtEq => BinOp::LtEq,
                    B::Gt => BinOp::Gt,
                    B::GtEq => BinOp::GtEq,
                    other => return Err(SqlError::unsupported(format!("{other} ANY/ALL"))),
                };
                let all = matches!(ast, E::AllOp { .. });
                let mut right = right.as_ref();
                while let E::Nested(inner) = right {
                    right = inner;
                }
                match right {
                    E::Subquery(q) => self.bind_quantified(left, q, op, all, scope, agg),
                    E::Array(array) => {
                        self.bind_quantified_list(left, op, &array.elem, all, scope, agg)
                    }
                    // An array value (a column of a catalog view, a literal '{...}').
                    array => self.bind_array_any(left, op, all, array, scope, agg),
                }
            }
            E::In { .. } => Err(SqlError::unsupported("this IN form")),
            E::Collate { expr, collation } => self.bind_collate(expr, collation, scope, agg),
            E::Array(a) => self.bind_array_literal(&a.elem, scope, agg),
            E::CompoundFieldAccess { root, access_chain } => match access_chain.as_slice() {
                [ast::AccessExpr::Subscript(ast::Subscript::Index { index })] => {
                    self.bind_subscript(root, index, scope, agg)
                }
                _ => Err(SqlError::unsupported("this subscript or field access")),
            },
            other => Err(SqlError::unsupported(format!("expression {other}"))),
        }
    }

    /// `left op ANY (ARRAY[e1, e2, ...])` (`ALL` with `all`): the elements and the left operand
    /// are compared in their common comparison type, as for an IN list.
    fn bind_quantified_list(
        &mut self,
        left: &ast::Expr,
        op: BinOp,
        elems: &[ast::Expr],
        all: bool,
        scope: &Scope,
        mut agg: Option<&mut AggState>,
    ) -> SqlResult<(Expr, DataType)> {
        if elems.is_empty() {
            return Err(SqlError::new(
                SqlState::INDETERMINATE_DATATYPE,
                "cannot determine type of empty array",
            )
            .with_hint("Explicitly cast to the desired type, for example ARRAY[]::integer[]."));
        }
        let (e, et) = self.bind_expr(left, scope, agg.as_deref_mut())?;
        let mut items = Vec::with_capacity(elems.len());
        for item in elems {
            items.push(self.bind_expr(item, scope, agg.as_deref_mut())?);
        }
        // The array's element type: its elements' common type (text[] for all-unknown, so
        // `1 = ANY(ARRAY['1'])` is integer = text, 42883, as in PostgreSQL).
        let mut elem_ty = DataType::Unknown;
        for (_, t) in &items {
            elem_ty = comparison_type(&elem_ty, t).ok_or_else(|| {
                SqlError::mismatch(format!(
                    "ARRAY types {} and {} cannot be matched",
                    elem_ty.name(),
                    t.name()
                ))
            })?;
        }
        if elem_ty == DataType::Unknown {
            elem_ty = DataType::Text;
        }
        let ty = comparison_type(&et, &elem_ty).ok_or_else(|| {
            SqlError::undefined_function(format!(
                "operator does not exist: {} {} {}",
                et.name(),
                op_symbol(op),
                elem_ty.name()
            ))
            .with_hint("No operator matches the given name and argument types. You might need to add explicit type casts.")
        })?;
        let e = if et == DataType::Unknown {
            self.coerce(e, et, ty)?
        } else {
            e
        };
        let mut list = Vec::with_capacity(items.len());
        for (x, t) in items {
            list.push(if t == DataType::Unknown {
                self.coerce(x, t, elem_ty)?
            } else {
                x
            });
        }
        Ok((
            Expr::QuantifiedList {
                expr: Box::new(e),
                op,
                ty,
                list,
                all,
            },
            DataType::Bool,
        ))
    }

    fn column_ref(
        &mut self,
        q: Option<&str>,
        name: &str,
        scope: &Scope,
        in_agg: bool,
    ) -> SqlResult<(Expr, DataType)> {
        let r = match scope.resolve(q, name) {
            Ok(r) => r,
            Err(e) if e.code != SqlState::AMBIGUOUS_COLUMN => match self.resolve_outer(q, name) {
                Some(r) => return Ok((r.expr, r.ty)),
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        if in_agg {
            let qualifier = match &r.expr {
                Expr::Column(i) => scope.cols[*i].qualifier.clone().unwrap_or_default(),
                _ => String::new(),
            };
            let full = match q {
                Some(q) => format!("{q}.{name}"),
                None => format!("{qualifier}.{name}"),
            };
            return Err(SqlError::new(
                SqlState::GROUPING_ERROR,
                format!("column \"{full}\" must appear in the GROUP BY clause or be used in an aggregate function"),
            ));
        }
        Ok((r.expr, r.ty))
    }

    fn text_operand(&mut self, e: Expr, t: DataType, op: &str) -> SqlResult<Expr> {
        if t.is_string() {
            Ok(e)
        } else if t == DataType::Unknown {
            self.coerce(e, t, DataType::Text)
        } else {
            Err(SqlError::undefined_function(format!(
                "operator does not exist: {} {op} unknown",
                t.name()
            )))
        }
    }

    /// Unifies branch types (CASE, COALESCE): the first known type wins; untyped literals
    /// adopt it; numeric branches widen.
    pub(crate) fn unify(
        &mut self,
        items: Vec<(Expr, DataType)>,
        what: &str,
    ) -> SqlResult<(Vec<Expr>, DataType)> {
        let mut ty = DataType::Unknown;
        for (_, t) in &items {
            if *t == DataType::Unknown {
                continue;
            }
            ty = if ty == DataType::Unknown {
                *t
            } else if ty == *t {
                ty
            } else if ty.is_numeric() && t.is_numeric() {
                arithmetic_type(&ty, t).unwrap_or(ty)
            } else if ty.is_string() && t.is_string() {
                DataType::Text
            } else if ty.is_datetime() && t.is_datetime() {
                comparison_type(&ty, t).unwrap_or(ty)
            } else if let (Some(a), Some(b)) = (ty.element(), t.element()) {
                match comparison_type(&a, &b) {
                    Some(e) if a.is_numeric() || a == b || (a.is_string() && b.is_string()) => {
                        DataType::array_of(e)
                    }
                    _ => {
                        return Err(SqlError::mismatch(format!(
                            "{what} types {} and {} cannot be matched",
                            ty.name(),
                            t.name()
                        )))
                    }
                }
            } else {
                return Err(SqlError::mismatch(format!(
                    "{what} types {} and {} cannot be matched",
                    ty.name(),
                    t.name()
                )));
            };
        }
        if ty == DataType::Unknown {
            ty = DataType::Text;
        }
        let mut out = Vec::with_capacity(items.len());
        for (e, t) in items {
            out.push(self.coerce(e, t, ty)?);
        }
        Ok((out, ty))
    }

    fn bind_comparison_operands(
        &mut self,
        a: &ast::Expr,
        b: &ast::Expr,
        scope: &Scope,
        mut agg: Option<&mut AggState>,
        op: &str,
    ) -> SqlResult<(Expr, Expr, DataType)> {
        let (l, lt) = self.bind_expr(a, scope, agg.as_deref_mut())?;
        let (r, rt) = self.bind_expr(b, scope, agg)?;
        let ct = comparison_type(&lt, &rt).ok_or_else(|| {
            SqlError::undefined_function(format!("operator does not exist: {} {op} {}", lt.name(), rt.name()))
                .with_hint("No operator matches the given name and argument types. You might need to add explicit type casts.")
        })?;
        let l = if lt == DataType::Unknown {
            self.coerce(l, lt, ct)?
        } else {
            l
        };
        let r = if rt == DataType::Unknown {
            self.coerce(r, rt, ct)?
        } else {
            r
        };
        Ok((l, r, ct))
    }

    fn bind_binary(
        &mut self,
        left: &ast::Expr,
        op: &ast::BinaryOperator,
        right: &ast::Expr,
        scope: &Scope,
        mut agg: Option<&mut AggState>,
    ) -> SqlResult<(Expr, DataType)> {
        use ast::BinaryOperator as B;
        let cmp = match op {
            B::Eq => Some(BinOp::Eq),
            B::NotEq => Some(BinOp::NotEq),
            B::Lt => Some(BinOp::Lt),
            B::LtEq => Some(BinOp::LtEq),
            B::Gt => Some(BinOp::Gt),
            B::GtEq => Some(BinOp::GtEq),
            _ => None,
        };
        let regex = match op {
            B::PGRegexMatch => Some((false, false)),
            B::PGRegexNotMatch => Some((true, false)),
            B::PGRegexIMatch => Some((false, true)),
            B::PGRegexNotIMatch => Some((true, true)),
            _ => None,
        };
        if let Some((negated, insensitive)) = regex {
            return self.bind_regex(left, right, negated, insensitive, scope, agg);
        }
        if let B::PGCustomBinaryOperator(parts) = op {
            // OPERATOR(pg_catalog.op): the built-in operator.
            let plain = match parts.as_slice() {
                [o] => Some(o),
                [schema, o] if schema == "pg_catalog" => Some(o),
                _ => None,
            };
            let builtin = match plain.map(String::as_str) {
                Some("~") => B::PGRegexMatch,
                Some("!~") => B::PGRegexNotMatch,
                Some("~*") => B::PGRegexIMatch,
                Some("!~*") => B::PGRegexNotIMatch,
                Some("=") => B::Eq,
                Some("<>") | Some("!=") => B::NotEq,
                Some("<") => B::Lt,
                Some("<=") => B::LtEq,
                Some(">") => B::Gt,
                Some(">=") => B::GtEq,
                _ => {
                    return Err(SqlError::undefined_function(format!(
                        "operator does not exist: {}",
                        parts.join(".")
                    )))
                }
            };
            return self.bind_binary(left, &builtin, right, scope, agg);
        }
        if let Some((symbol, contains)) = match op {
            B::AtArrow => Some(("@>", Some(false))),
            B::ArrowAt => Some(("<@", Some(true))),
            B::PGOverlap => Some(("&&", None)),
            _ => None,
        } {
            let (l, lt) = self.bind_expr(left, scope, agg.as_deref_mut())?;
            let (r, rt) = self.bind_expr(right, scope, agg)?;
            return self.bind_array_containment((l, lt), (r, rt), symbol, contains);
        }
        if let Some(c) = cmp {
            let (l, r, t) = self.bind_comparison_operands(left, right, scope, agg, op_symbol(c))?;
            return Ok((
                Expr::Binary {
                    op: c,
                    left: Box::new(l),
                    right: Box::new(r),
                    ty: t,
                },
                DataType::Bool,
            ));
        }
        match op {
            B::And | B::Or => {
                let what = if matches!(op, B::And) { "AND" } else { "OR" };
                let l = self.bind_bool(left, scope, agg.as_deref_mut(), what)?;
                let r = self.bind_bool(right, scope, agg, what)?;
                let e = if matches!(op, B::And) {
                    Expr::And(Box::new(l), Box::new(r))
                } else {
                    Expr::Or(Box::new(l), Box::new(r))
                };
                Ok((e, DataType::Bool))
            }
            B::StringConcat => {
                let (l, lt) = self.bind_expr(left, scope, agg.as_deref_mut())?;
                let (r, rt) = self.bind_expr(right, scope, agg)?;
                if matches!(lt, DataType::Array(_)) || matches!(rt, DataType::Array(_)) {
                    return self.bind_array_concat((l, lt), (r, rt), "||");
                }
                let texty = |t: &DataType| t.is_string() || *t == DataType::Unknown;
                if !texty(&lt) && !texty(&rt) {
                    return Err(SqlError::undefined_function(format!(
                        "operator does not exist: {} || {}",
                        lt.name(),
                        rt.name()
                    ))
                    .with_hint("No operator matches the given name and argument types. You might need to add explicit type casts."));
                }
                let l = self.coerce(
                    l,
                    lt,
                    if lt == DataType::Unknown {
                        DataType::Text
                    } else {
                        lt
                    },
                )?;
                let r = self.coerce(
                    r,
                    rt,
                    if rt == DataType::Unknown {
                        DataType::Text
                    } else {
                        rt
                    },
                )?;
                // char(n) -> text drops the padding, as PostgreSQL's bpchar-to-text cast does.
                let unpad = |e: Expr, t: DataType| match t {
                    DataType::Bpchar(_) => Expr::Func(Func::RtrimSpaces, vec![e]),
                    _ => e,
                };
                let (l, r) = (unpad(l, lt), unpad(r, rt));
                Ok((
                    Expr::Binary {
                        op: BinOp::Concat,
                        left: Box::new(l),
                        right: Box::new(r),
                        ty: DataType::Text,
                    },
                    DataType::Text,
                ))
            }
            B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo => {
                let bop = match op {
                    B::Plus => BinOp::Add,
                    B::Minus => BinOp::Sub,
                    B::Multiply => BinOp::Mul,
                    B::Divide => BinOp::Div,
                    _ => BinOp::Mod,
                };
                let (l, lt) = self.bind_expr(left, scope, agg.as_deref_mut())?;
                let (r, rt) = self.bind_expr(right, scope, agg)?;
                if let Some(ty) = datetime_arithmetic_type(bop, lt, rt) {
                    // Untyped literals take the type the operator needs: an interval next to
                    // a timestamp (`ts + '1 day'`), the other timestamp in `ts - '...'`.
                    let unknown_as = |other: DataType| match (bop, other) {
                        (BinOp::Sub, DataType::Timestamp | DataType::Timestamptz)
                            if ty == DataType::Interval =>
                        {
                            other
                        }
                        (BinOp::Mul | BinOp::Div, DataType::Interval) => DataType::Float8,
                        _ => DataType::Interval,
                    };
                    let l = if lt == DataType::Unknown {
                        self.coerce(l, lt, unknown_as(rt))?
                    } else if lt == DataType::Date && ty == DataType::Interval {
                        self.coerce(l, lt, DataType::Timestamp)?
                    } else {
                        l
                    };
                    let r = if rt == DataType::Unknown {
                        self.coerce(r, rt, unknown_as(lt))?
                    } else if rt == DataType::Date && ty == DataType::Interval {
                        self.coerce(r, rt, DataType::Timestamp)?
                    } else {
                        r
                    };
                    return Ok((
                        Expr::Binary {
                            op: bop,
                            left: Box::new(l),
                            right: Box::new(r),
                            ty,
                        },
                        ty,
                    ));
                }
                // Date arithmetic: date ± integer, date - date.
                if lt == DataType::Date || rt == DataType::Date {
                    let (l, lt2) = if lt == DataType::Unknown {
                        (self.coerce(l, lt, DataType::Int4)?, DataType::Int4)
                    } else {
                        (l, lt)
                    };
                    let (r, rt2) = if rt == DataType::Unknown {
                        let to = DataType::Int4;
                        (self.coerce(r, rt, to)?, to)
                    } else {
                        (r, rt)
                    };
                    let ty = match (lt2, rt2, bop) {
                        (DataType::Date, t, BinOp::Add | BinOp::Sub) if t.is_integer() => {
                            DataType::Date
                        }
                        (t, DataType::Date, BinOp::Add) if t.is_integer() => DataType::Date,
                        (DataType::Date, DataType::Date, BinOp::Sub) => DataType::Int4,
                        _ => {
                            return Err(SqlError::undefined_function(format!(
                                "operator does not exist: {} {} {}",
                                lt2.name(),
                                op_symbol(bop),
                                rt2.name()
                            )))
                        }
                    };
                    return Ok((
                        Expr::Binary {
                            op: bop,
                            left: Box::new(l),
                            right: Box::new(r),
                            ty,
                        },
                        ty,
                    ));
                }
                let ty = arithmetic_type(&lt, &rt).ok_or_else(|| {
                    SqlError::undefined_function(format!(
                        "operator does not exist: {} {} {}",
                        lt.name(),
                        op_symbol(bop),
                        rt.name()
                    ))
                    .with_hint("No operator matches the given name and argument types. You might need to add explicit type casts.")
                })?;
                let ty = if lt == DataType::Unknown && rt == DataType::Unknown {
                    DataType::Int4
                } else {
                    ty
                };
                let l = if lt == DataType::Unknown {
                    self.coerce(l, lt, ty)?
                } else {
                    l
                };
                let r = if rt == DataType::Unknown {
                    self.coerce(r, rt, ty)?
                } else {
                    r
                };
                if ty == DataType::Float4 && bop == BinOp::Mod {
                    return Err(SqlError::undefined_function(
                        "operator does not exist: real % real",
                    ));
                }
                Ok((
                    Expr::Binary {
                        op: bop,
                        left: Box::new(l),
                        right: Box::new(r),
                        ty,
                    },
                    ty,
                ))
            }
            B::PGLikeMatch | B::PGILikeMatch | B::PGNotLikeMatch | B::PGNotILikeMatch => {
                // `~~`, `~~*`, `!~~`, `!~~*`: the operators LIKE and ILIKE stand for.
                let (e, t) = self.bind_expr(left, scope, agg.as_deref_mut())?;
                let (p, pt) = self.bind_expr(right, scope, agg)?;
                let sym = op.to_string();
                let e = self.text_operand(e, t, &sym)?;
                let p = self.text_operand(p, pt, &sym)?;
                Ok((
                    Expr::Like {
                        expr: Box::new(e),
                        pattern: Box::new(p),
                        negated: matches!(op, B::PGNotLikeMatch | B::PGNotILikeMatch),
                        case_insensitive: matches!(op, B::PGILikeMatch | B::PGNotILikeMatch),
                    },
                    DataType::Bool,
                ))
            }
            B::PGExp => {
                let (l, lt) = self.bind_expr(left, scope, agg.as_deref_mut())?;
                let (r, rt) = self.bind_expr(right, scope, agg)?;
                if crate::functions::power_type(&lt, &rt).is_none() {
                    return Err(SqlError::undefined_function(format!(
                        "operator does not exist: {} ^ {}",
                        lt.name(),
                        rt.name()
                    ))
                    .with_hint("No operator matches the given name and argument types. You might need to add explicit type casts."));
                }
                self.finish_scalar_call("power", vec![(l, lt), (r, rt)])
            }
            other => Err(SqlError::unsupported(format!("operator {other}"))),
        }
    }

    fn bind_value(&mut self, v: &ast::Value) -> SqlResult<(Expr, DataType)> {
        use ast::Value as V;
        Ok(match v {
            V::Number(n, _) => {
                let (val, ty) = parse_number(n)?;
                (Expr::Const(val), ty)
            }
            V::SingleQuotedString(s)
            | V::EscapedStringLiteral(s)
            | V::UnicodeStringLiteral(s)
            | V::NationalStringLiteral(s) => {
                (Expr::Const(Value::Text(s.clone())), DataType::Unknown)
            }
            V::DollarQuotedString(d) => {
                (Expr::Const(Value::Text(d.value.clone())), DataType::Unknown)
            }
            V::Boolean(b) => (Expr::Const(Value::Bool(*b)), DataType::Bool),
            V::Null => (Expr::Const(Value::Null), DataType::Unknown),
            V::Placeholder(p) => {
                let n: usize = p
                    .strip_prefix('$')
                    .and_then(|d| d.parse().ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| SqlError::syntax(format!("syntax error at or near \"{p}\"")))?;
                if self.params.len() < n {
                    self.params.resize(n, None);
                }
                (Expr::Param(n - 1), self.param_type(n - 1))
            }
            other => return Err(SqlError::unsupported(format!("literal {other}"))),
        })
    }

    pub(crate) fn function_args<'b>(
        &self,
        f: &'b ast::Function,
    ) -> SqlResult<(Vec<&'b ast::Expr>, bool, bool)> {
        match &f.args {
            ast::FunctionArguments::None => Ok((vec![], false, false)),
            ast::FunctionArguments::Subquery(_) => Err(SqlError::unsupported("subqueries")),
            ast::FunctionArguments::List(l) => {
                let distinct = matches!(
                    l.duplicate_treatment,
                    Some(ast::DuplicateTreatment::Distinct)
                );
                let mut star = false;
                let mut out = Vec::new();
                for a in &l.args {
                    match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => out.push(e),
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard) => star = true,
                        _ => {
                            return Err(SqlError::unsupported(
                                "named or qualified function arguments",
                            ))
                        }
                    }
                }
                Ok((out, distinct, star))
            }
        }
    }

    /// `nextval('seq')`, `currval('seq')`, `setval('seq', v [, is_called])`: the sequence is
    /// resolved here (as PostgreSQL folds a `'name'::regclass` constant).
    fn bind_sequence_call(
        &mut self,
        op: crate::sequence::SeqOp,
        args: &[&ast::Expr],
        scope: &Scope,
    ) -> SqlResult<(Expr, DataType)> {
        use crate::sequence::SeqOp;
        let arity_ok = match op {
            SeqOp::Next | SeqOp::Curr => args.len() == 1,
            SeqOp::Set => args.len() == 2 || args.len() == 3,
        };
        let name = match args.first() {
            Some(ast::Expr::Value(v)) => match &v.value {
                ast::Value::SingleQuotedString(s) => Some(s.clone()),
                _ => None,
            },
            Some(ast::Expr::Cast { expr, .. }) => match expr.as_ref() {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::SingleQuotedString(s) => Some(s.clone()),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        let (Some(name), true) = (name, arity_ok) else {
            return Err(SqlError::undefined_function(
                "sequence functions take a constant sequence name (and for setval a value)",
            ));
        };
        let seq = Arc::new(crate::sequence::require(
            self.txn,
            &crate::sequence::sequence_name_arg(&name),
        )?);
        let mut bound = Vec::new();
        for (a, ty) in args[1..].iter().zip([DataType::Int8, DataType::Bool]) {
            let (e, t) = self.bind_expr(a, scope, None)?;
            bound.push(self.coerce(e, t, ty)?);
        }
        Ok((
            Expr::Sequence {
                op,
                seq,
                args: bound,
            },
            DataType::Int8,
        ))
    }

    /// A call of a [`crate::functions`] function: binds the arguments, resolves the
    /// overload from their types and coerces each argument to its parameter type.
    pub(crate) fn bind_scalar_call(
        &mut self,
        name: &str,
        args: &[&ast::Expr],
        scope: &Scope,
        mut agg: Option<&mut AggState>,
    ) -> SqlResult<(Expr, DataType)> {
        let mut bound = Vec::with_capacity(args.len());
        for a in args {
            bound.push(self.bind_expr(a, scope, agg.as_deref_mut())?);
        }
        self.finish_scalar_call(name, bound)
    }

    /// [`Binder::bind_scalar_call`] for arguments already bound.
    fn finish_scalar_call(
        &mut self,
        name: &str,
        bound: Vec<(Expr, DataType)>,
    ) -> SqlResult<(Expr, DataType)> {
        let types: Vec<DataType> = bound.iter().map(|(_, t)| *t).collect();
        let sig = match crate::functions::resolve(name, &types) {
            Some(r) => r?,
            None => {
                return Err(SqlError::undefined_function(format!(
                    "function {name}() does not exist"
                )))
            }
        };
        let mut exprs = Vec::with_capacity(bound.len());
        for ((e, t), to) in bound.into_iter().zip(sig.args.iter()) {
            // char(n) as text loses its padding, as PostgreSQL's bpchar-to-text cast does.
            let e = match t {
                DataType::Bpchar(_) if to.is_string() => Expr::Func(Func::RtrimSpaces, vec![e]),
                _ => e,
            };
            exprs.push(self.coerce(e, t, *to)?);
        }
        Ok((Expr::Func(Func::Scalar(sig.func), exprs), sig.result))
    }

    fn bind_function(
        &mut self,
        f: &ast::Function,
        scope: &Scope,
        mut agg: Option<&mut AggState>,
    ) -> SqlResult<(Expr, DataType)> {
        if !f.within_group.is_empty() {
            return Err(SqlError::unsupported("WITHIN GROUP"));
        }
        if let Some(over) = &f.over {
            return self.bind_window(f, over, scope, agg);
        }
        let name = function_name(f);
        if let ast::FunctionArguments::Subquery(q) = &f.args {
            if name == "array" {
                return self.bind_subquery(q, scope, SubqueryKind::Array);
            }
        }
        let (args, distinct, star) = self.function_args(f)?;
        let no_parens = matches!(f.args, ast::FunctionArguments::None);
        if f.filter.is_some() && (no_parens || !is_aggregate_name(&name)) {
            return Err(SqlError::new(
                SqlState::WRONG_OBJECT_TYPE,
                format!("FILTER specified, but {name} is not an aggregate function"),
            ));
        }
        if is_aggregate_name(&name) && !no_parens {
            let Some(state) = agg else {
                return Err(SqlError::new(
                    SqlState::GROUPING_ERROR,
                    format!("aggregate functions are not allowed in this context ({name})"),
                ));
            };
            let (func, arg) = match (name.as_str(), star, args.as_slice()) {
                ("count", true, []) => (AggFunc::CountStar, None),
                ("count", false, [a]) => (AggFunc::Count, Some(*a)),
                ("sum", false, [a]) => (AggFunc::Sum, Some(*a)),
                ("avg", false, [a]) => (AggFunc::Avg, Some(*a)),
                ("min", false, [a]) => (AggFunc::Min, Some(*a)),
                ("max", false, [a]) => (AggFunc::Max, Some(*a)),
                ("string_agg", false, [a, _]) => (AggFunc::StringAgg, Some(*a)),
                ("bool_and" | "every", false, [a]) => (AggFunc::BoolAnd, Some(*a)),
                ("bool_or", false, [a]) => (AggFunc::BoolOr, Some(*a)),
                ("array_agg", false, [a]) => (AggFunc::ArrayAgg, Some(*a)),
                _ => {
                    return Err(SqlError::undefined_function(format!(
                        "function {name} with these arguments does not exist"
                    )))
                }
            };
            let (arg, arg_ty) = match arg {
                Some(a) => {
                    if contains_aggregate(a) {
                        return Err(SqlError::new(
                            SqlState::GROUPING_ERROR,
                            "aggregate function calls cannot be nested",
                        ));
                    }
                    let (e, t) = self.bind_expr(a, scope, None)?;
                    let t2 = if t == DataType::Unknown && func != AggFunc::Count {
                        DataType::Text
                    } else {
                        t
                    };
                    (Some(self.coerce(e, t, t2)?), t2)
                }
                None => (None, DataType::Int8),
            };
            let result_ty = agg_result_type(func, &arg_ty).ok_or_else(|| {
                SqlError::undefined_function(format!("function {name}({}) does not exist", arg_ty.name()))
                    .with_hint("No function matches the given name and argument types. You might need to add explicit type casts.")
            })?;
            let filter = match &f.filter {
                Some(w) => Some(self.bind_bool(w, scope, None, "FILTER")?),
                None => None,
            };
            let mut order_by = Vec::new();
            if let ast::FunctionArguments::List(l) = &f.args {
                for clause in &l.clauses {
                    let ast::FunctionArgumentClause::OrderBy(keys) = clause else {
                        continue;
                    };
                    for o in keys {
                        if matches!(o.options.sort, Some(ast::OrderBySort::Using(_))) {
                            return Err(SqlError::unsupported("ORDER BY ... USING"));
                        }
                        let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
                        let (e, t) = self.bind_expr(&o.expr, scope, None)?;
                        let e = if t == DataType::Unknown {
                            self.coerce(e, t, DataType::Text)?
                        } else {
                            e
                        };
                        order_by.push(AggOrder {
                            expr: e,
                            desc,
                            nulls_first: o.options.nulls_first.unwrap_or(desc),
                        });
                    }
                }
            }
            if distinct && !order_by.is_empty() {
                // PostgreSQL requires the ORDER BY keys to be the argument then; not kept here.
                return Err(SqlError::unsupported(format!(
                    "DISTINCT with ORDER BY inside {name}()"
                )));
            }
            let separator = match (func, args.get(1)) {
                (AggFunc::StringAgg, Some(sep)) => match self.bind_expr(sep, scope, None)? {
                    (Expr::Const(v), _) => v.to_text(),
                    _ => {
                        return Err(SqlError::unsupported(
                            "string_agg with a non-constant separator",
                        ))
                    }
                },
                _ => None,
            };
            let call = AggCall {
                func,
                separator,
                arg,
                arg_ty,
                distinct,
                filter,
                order_by,
            };
            let idx = match state.aggs.iter().position(|c| *c == call) {
                Some(i) => i,
                None => {
                    state.aggs.push(call);
                    state.aggs.len() - 1
                }
            };
            return Ok((Expr::Column(state.output_index(idx)), result_ty));
        }
        // Functions of fixed signature: each argument coerced to its parameter's type.
        let fixed = crate::clock_functions::signature(&name, args.len())
            .map(|(f, params, result)| (Func::Logical(f), params, result))
            .or_else(|| {
                crate::system::signature(&name, args.len())
                    .map(|(f, params, result)| (Func::System(f), params, result))
            })
            .or_else(|| {
                crate::catalog_fns::signature(&name, args.len())
                    .map(|(f, params, result)| (Func::Catalog(f), params, result))
            });
        if let Some((func, params, result)) = fixed {
            let mut bound = Vec::with_capacity(args.len());
            for (a, to) in args.iter().zip(params) {
                let (e, t) = self.bind_expr(a, scope, agg.as_deref_mut())?;
                bound.push(self.coerce(e, t, *to)?);
            }
            return Ok((Expr::Func(func, bound), result));
        }
        if let Some(op) = crate::sequence::SeqOp::from_name(&name) {
            return self.bind_sequence_call(op, &args, scope);
        }
        if let ("array_cat" | "array_append" | "array_prepend", [a, b]) =
            (name.as_str(), args.as_slice())
        {
            let l = self.bind_expr(a, scope, agg.as_deref_mut())?;
            let r = self.bind_expr(b, scope, agg)?;
            return self.bind_array_concat(l, r, &name);
        }
        if name == "age" && args.len() == 1 && !no_parens {
            // age(x) is age(current_date, x).
            let (e, t) = self.bind_expr(args[0], scope, agg)?;
            let today = (Expr::Clock(Clock::CurrentDate), DataType::Date);
            return self.finish_scalar_call("age", vec![today, (e, t)]);
        }
        if (crate::functions::is_scalar(&name) || (name == "round" && args.len() == 2))
            && !no_parens
        {
            return self.bind_scalar_call(&name, &args, scope, agg);
        }
        let text = |s: String| Ok((Expr::Const(Value::Text(s)), DataType::Text));
        match (name.as_str(), args.len()) {
            ("version", 0) => text(crate::VERSION_STRING.to_string()),
            ("current_database", 0) | ("current_catalog", 0) => text(self.info.database.clone()),
            ("current_schema", 0) => text("public".into()),
            ("current_user", 0) | ("session_user", 0) | ("user", 0) | ("current_role", 0) => text(self.info.user.clone()),
            ("now", 0) | ("current_timestamp", 0) | ("transaction_timestamp", 0) => {
                Ok((Expr::Clock(Clock::TransactionStart), DataType::Timestamptz))
            }
            ("statement_timestamp", 0) => Ok((Expr::Clock(Clock::StatementStart), DataType::Timestamptz)),
            ("current_date", 0) => Ok((Expr::Clock(Clock::CurrentDate), DataType::Date)),
            ("coalesce", n) if n > 0 => {
                let mut items = Vec::new();
                for a in &args {
                    items.push(self.bind_expr(a, scope, agg.as_deref_mut())?);
                }
                let (items, ty) = self.unify(items, "COALESCE")?;
                Ok((Expr::Coalesce(items), ty))
            }
            ("nullif", 2) => {
                let (l, r, _) = self.bind_comparison_operands(args[0], args[1], scope, agg, "=")?;
                let ty = match &l {
                    Expr::Const(v) => v.data_type(),
                    _ => DataType::Unknown,
                };
                let (_, lt) = self.bind_expr(args[0], scope, None).unwrap_or((Expr::Const(Value::Null), ty));
                Ok((Expr::NullIf(Box::new(l), Box::new(r)), if lt == DataType::Unknown { DataType::Text } else { lt }))
            }
            ("greatest", n) | ("least", n) if n > 0 => {
                let mut items = Vec::new();
                for a in &args {
                    items.push(self.bind_expr(a, scope, agg.as_deref_mut())?);
                }
                let (items, ty) = self.unify(items, &name.to_uppercase())?;
                let func = if name == "greatest" { Func::Greatest } else { Func::Least };
                Ok((Expr::Func(func, items), ty))
            }
            ("lower", 1) | ("upper", 1) | ("length", 1) | ("char_length", 1) | ("character_length", 1) => {
                let (e, t) = self.bind_expr(args[0], scope, agg)?;
                let e = if t == DataType::Bytea && name == "length" { e } else { self.text_operand(e, t, &name)? };
                // char(n) as text loses its padding (length('ab  '::char(4)) is 2).
                let e = if matches!(t, DataType::Bpchar(_)) { Expr::Func(Func::RtrimSpaces, vec![e]) } else { e };
                let (func, ty) = match name.as_str() {
                    "lower" => (Func::Lower, DataType::Text),
                    "upper" => (Func::Upper, DataType::Text),
                    _ => (Func::Length, DataType::Int4),
                };
                Ok((Expr::Func(func, vec![e]), ty))
            }
            ("pg_sleep", 1) => {
                let (e, t) = self.bind_expr(args[0], scope, agg)?;
                if !t.is_numeric() && t != DataType::Unknown {
                    return Err(SqlError::undefined_function(format!("function pg_sleep({}) does not exist", t.name())));
                }
                let e = self.coerce(e, t, DataType::Float8)?;
                Ok((Expr::Func(Func::PgSleep, vec![e]), DataType::Text))
            }
            ("abs", 1) => {
                let (e, t) = self.bind_expr(args[0], scope, agg)?;
                let (e, t) = if t == DataType::Unknown { (self.coerce(e, t, DataType::Float8)?, DataType::Float8) } else { (e, t) };
                if !t.is_numeric() {
                    return Err(SqlError::undefined_function(format!("function abs({}) does not exist", t.name())));
                }
                Ok((Expr::Func(Func::Abs, vec![e]), t))
            }
            ("round", 1) => {
                // round(x, n) is bound by bind_scalar_call (functions.rs) above.
                let (e, t) = self.bind_expr(args[0], scope, agg)?;
                if !t.is_numeric() && t != DataType::Unknown {
                    return Err(SqlError::undefined_function(format!("function round({}) does not exist", t.name())));
                }
                // round(numeric) for numerics; round(double precision) for everything else, as
                // PostgreSQL resolves integers and unknown literals to its numeric category's
                // preferred type.
                let (e, ty) = match t {
                    DataType::Numeric { .. } => (e, NUMERIC),
                    _ => {
                        let e = if t == DataType::Unknown { self.coerce(e, t, DataType::Float8)? } else { e };
                        (Expr::Cast { expr: Box::new(e), ty: DataType::Float8, explicit: false }, DataType::Float8)
                    }
                };
                Ok((Expr::Func(Func::Round, vec![e]), ty))
            }
            _ => Err(SqlError::undefined_function(format!("function {name}() does not exist"))
                .with_hint("No function matches the given name and argument types. You might need to add explicit type casts.")),
        }
    }

    /// `f(...) OVER (PARTITION BY ... ORDER BY ...)`: the result is a column appended to
    /// the query's rows (numbered from [`WINDOW_BASE`] until the row width is known).
    fn bind_window(
        &mut self,
        f: &ast::Function,
        over: &ast::WindowType,
        scope: &Scope,
        mut agg: Option<&mut AggState>,
    ) -> SqlResult<(Expr, DataType)> {
        let ast::WindowType::WindowSpec(spec) = over else {
            return Err(SqlError::unsupported("named windows"));
        };
        if spec.window_frame.is_some() || spec.window_name.is_some() {
            return Err(SqlError::unsupported("window frames"));
        }
        let name = function_name(f);
        let (args, distinct, star) = self.function_args(f)?;
        if distinct {
            return Err(SqlError::unsupported(
                "DISTINCT is not implemented for window functions",
            ));
        }
        let (func, ty) = match (name.as_str(), star, args.as_slice()) {
            ("row_number", false, []) => (WindowFunc::RowNumber, DataType::Int8),
            ("rank", false, []) => (WindowFunc::Rank, DataType::Int8),
            ("dense_rank", false, []) => (WindowFunc::DenseRank, DataType::Int8),
            ("count", true, []) => (
                WindowFunc::Aggregate(AggCall {
                    separator: None,
                    func: AggFunc::CountStar,
                    arg: None,
                    arg_ty: DataType::Int8,
                    distinct: false,
                    filter: None,
                    order_by: vec![],
                }),
                DataType::Int8,
            ),
            (n @ ("count" | "sum" | "avg" | "min" | "max"), false, [a]) => {
                let func = match n {
                    "count" => AggFunc::Count,
                    "sum" => AggFunc::Sum,
                    "avg" => AggFunc::Avg,
                    "min" => AggFunc::Min,
                    _ => AggFunc::Max,
                };
                let (e, t) = self.bind_expr(a, scope, agg.as_deref_mut())?;
                let t2 = if t == DataType::Unknown && func != AggFunc::Count {
                    DataType::Text
                } else {
                    t
                };
                let e = self.coerce(e, t, t2)?;
                let ty = agg_result_type(func, &t2).ok_or_else(|| {
                    SqlError::undefined_function(format!(
                        "function {n}({}) does not exist",
                        t2.name()
                    ))
                })?;
                (
                    WindowFunc::Aggregate(AggCall {
                        separator: None,
                        func,
                        arg: Some(e),
                        arg_ty: t2,
                        distinct: false,
                        filter: None,
                        order_by: vec![],
                    }),
                    ty,
                )
            }
            _ => {
                return Err(SqlError::undefined_function(format!(
                    "window function {name} with these arguments does not exist"
                )))
            }
        };
        let func = match (func, &f.filter) {
            (WindowFunc::Aggregate(mut call), Some(w)) => {
                call.filter = Some(self.bind_bool(w, scope, agg.as_deref_mut(), "FILTER")?);
                WindowFunc::Aggregate(call)
            }
            (_, Some(_)) => {
                return Err(SqlError::new(
                    SqlState::WRONG_OBJECT_TYPE,
                    "FILTER is not implemented for non-aggregate window functions",
                ))
            }
            (func, None) => func,
        };
        let mut partition = Vec::new();
        for p in &spec.partition_by {
            partition.push(self.bind_expr(p, scope, agg.as_deref_mut())?.0);
        }
        let mut order = Vec::new();
        for o in &spec.order_by {
            let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
            let nulls_first = o.options.nulls_first.unwrap_or(desc);
            order.push((
                self.bind_expr(&o.expr, scope, agg.as_deref_mut())?.0,
                desc,
                nulls_first,
            ));
        }
        let call = WindowCall {
            func,
            partition,
            order,
        };
        let k = match self.windows.iter().position(|w| *w == call) {
            Some(k) => k,
            None => {
                self.windows.push(call);
                self.windows.len() - 1
            }
        };
        Ok((Expr::Column(WINDOW_BASE + k), ty))
    }

    // -----------------------------------------------------------------------------------
    // Statements.

    pub(crate) fn bind_query(&mut self, q: &ast::Query) -> SqlResult<SelectPlan> {
        let ctes = self.nesting.ctes.len();
        let outer_windows = std::mem::take(&mut self.windows);
        let plan = match &q.with {
            Some(w) => self.bind_with(w).and_then(|_| self.bind_query_body(q)),
            None => self.bind_query_body(q),
        };
        self.windows = outer_windows;
        self.nesting.ctes.truncate(ctes);
        plan
    }

    fn bind_query_body(&mut self, q: &ast::Query) -> SqlResult<SelectPlan> {
        if q.fetch.is_some() {
            return Err(SqlError::unsupported("FETCH"));
        }
        let lock = match q.locks.as_slice() {
            [] => None,
            [c] => Some(row_lock_of(c)?),
            _ => return Err(SqlError::unsupported("more than one locking clause")),
        };
        let select = match q.body.as_ref() {
            ast::SetExpr::Select(s) => {
                if let Some(rewritten) = crate::catalog_fns::select_list_srf(s)? {
                    let mut q2 = q.clone();
                    *q2.body = ast::SetExpr::Select(Box::new(rewritten));
                    return self.bind_query_body(&q2);
                }
                s
            }
            ast::SetExpr::Query(inner) if q.order_by.is_none() && q.limit_clause.is_none() => {
                return self.bind_query(inner)
            }
            ast::SetExpr::Query(inner) => {
                let plan = self.bind_query(inner)?;
                let columns = plan.columns[..plan.visible].to_vec();
                return self.wrap_rows(Source::Query(Box::new(plan)), columns, q);
            }
            ast::SetExpr::Values(v) => {
                let (source, columns) = self.bind_values(v)?;
                return self.wrap_rows(source, columns, q);
            }
            ast::SetExpr::SetOperation {
                left,
                op,
                set_quantifier,
                right,
            } => {
                let (setop, columns) = self.bind_set_operation(left, op, set_quantifier, right)?;
                return self.wrap_rows(Source::SetOp(Box::new(setop)), columns, q);
            }
            _ => return Err(SqlError::unsupported("this query form")),
        };
        // FROM.
        let (source, scope) = self.bind_from(&select.from)?;
        let filter = match &select.selection {
            Some(w) => Some(self.bind_bool(w, &scope, None, "WHERE")?),
            None => None,
        };
        let group_asts: Vec<&ast::Expr> = match &select.group_by {
            ast::GroupByExpr::Expressions(exprs, mods) if mods.is_empty() => exprs.iter().collect(),
            _ => return Err(SqlError::unsupported("GROUP BY ALL / ROLLUP")),
        };
        let order_asts: Vec<&ast::OrderByExpr> = match &q.order_by {
            Some(ob) => match &ob.kind {
                ast::OrderByKind::Expressions(v) => v.iter().collect(),
                ast::OrderByKind::All(_) => return Err(SqlError::unsupported("ORDER BY ALL")),
            },
            None => vec![],
        };
        let projection_has_agg = select.projection.iter().any(|p| match p {
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                contains_aggregate(e)
            }
            _ => false,
        });
        let grouped = !group_asts.is_empty()
            || projection_has_agg
            || select.having.as_ref().is_some_and(contains_aggregate)
            || select.having.is_some()
            || order_asts.iter().any(|o| contains_aggregate(&o.expr));
        let mut agg_state = if grouped {
            let mut st = AggState {
                group_exprs: vec![],
                group_types: vec![],
                aggs: vec![],
            };
            for g in &group_asts {
                // GROUP BY may name an output column by position.
                let target = match g {
                    ast::Expr::Value(v) => match &v.value {
                        ast::Value::Number(n, _) => {
                            let pos: usize = n.parse().unwrap_or(0);
                            match select.projection.get(pos.wrapping_sub(1)) {
                                Some(ast::SelectItem::UnnamedExpr(e))
                                | Some(ast::SelectItem::ExprWithAlias { expr: e, .. }) => e,
                                _ => {
                                    return Err(SqlError::new(
                                        SqlState::INVALID_COLUMN_REFERENCE,
                                        format!("GROUP BY position {n} is not in select list"),
                                    ))
                                }
                            }
                        }
                        _ => *g,
                    },
                    ast::Expr::Identifier(id) if scope.resolve(None, &ident_name(id)).is_err() => {
                        // An output alias.
                        let name = ident_name(id);
                        match select.projection.iter().find_map(|p| match p {
                            ast::SelectItem::ExprWithAlias { expr, alias }
                                if ident_name(alias) == name =>
                            {
                                Some(expr)
                            }
                            _ => None,
                        }) {
                            Some(e) => e,
                            None => *g,
                        }
                    }
                    _ => *g,
                };
                let (e, t) = self.bind_expr(target, &scope, None)?;
                st.group_exprs.push(e);
                st.group_types.push(t);
            }
            Some(st)
        } else {
            None
        };
        // Select list.
        let mut project = Vec::new();
        let mut columns = Vec::new();
        let mut srf: Vec<(usize, DataType)> = Vec::new();
        for item in &select.projection {
            match item {
                ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(..) => {
                    let qualifier = match item {
                        ast::SelectItem::QualifiedWildcard(
                            ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                            _,
                        ) => Some(object_name(n)?),
                        _ => None,
                    };
                    if scope.cols.is_empty() {
                        return Err(SqlError::syntax(
                            "SELECT * with no tables specified is not valid",
                        ));
                    }
                    for c in scope.expand_star(qualifier.as_deref())? {
                        let e = match agg_state.as_ref() {
                            Some(st) => match st.group_exprs.iter().position(|g| *g == c.expr) {
                                Some(gi) => Expr::Column(gi),
                                None => {
                                    return Err(SqlError::new(
                                        SqlState::GROUPING_ERROR,
                                        format!(
                                            "column \"{}\" must appear in the GROUP BY clause or be used in an aggregate function",
                                            c.name
                                        ),
                                    ))
                                }
                            },
                            None => c.expr,
                        };
                        project.push(e);
                        columns.push(Column {
                            name: c.name,
                            ty: c.ty,
                            table_oid: c.table_oid,
                            column_id: c.column_id,
                        });
                    }
                }
                ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                    let name = match item {
                        ast::SelectItem::ExprWithAlias { alias, .. } => ident_name(alias),
                        _ => column_name(e),
                    };
                    if agg_state.is_none() {
                        if let Some((b, elem)) = self.bind_select_list_srf(e, &scope)? {
                            srf.push((project.len(), elem));
                            project.push(b);
                            columns.push(Column {
                                name,
                                ty: elem,
                                table_oid: 0,
                                column_id: 0,
                            });
                            continue;
                        }
                    }
                    let (b, t) = self.bind_expr(e, &scope, agg_state.as_mut())?;
                    let t = if t == DataType::Unknown {
                        DataType::Text
                    } else {
                        t
                    };
                    let (table_oid, column_id) = match (&b, agg_state.is_none()) {
                        (Expr::Column(i), true) => scope
                            .cols
                            .get(*i)
                            .map_or((0, 0), |c| (c.table_oid, c.column_id)),
                        _ => (0, 0),
                    };
                    project.push(b);
                    columns.push(Column {
                        name,
                        ty: t,
                        table_oid,
                        column_id,
                    });
                }
                _ => return Err(SqlError::unsupported("this select item")),
            }
        }
        let having = match &select.having {
            Some(h) => Some(self.bind_bool(h, &scope, agg_state.as_mut(), "HAVING")?),
            None => None,
        };
        let visible = project.len();
        // ORDER BY.
        let mut order = Vec::new();
        for o in order_asts {
            let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
            if matches!(o.options.sort, Some(ast::OrderBySort::Using(_))) {
                return Err(SqlError::unsupported("ORDER BY USING"));
            }
            let nulls_first = o.options.nulls_first.unwrap_or(desc);
            let index = match &o.expr {
                ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
                    let ast::Value::Number(n, _) = &v.value else { return Err(SqlError::internal("expected a number")) };
                    let pos: usize = n.parse().unwrap_or(0);
                    if pos == 0 || pos > visible {
                        return Err(SqlError::new(
                            SqlState::INVALID_COLUMN_REFERENCE,
                            format!("ORDER BY position {n} is not in select list"),
                        ));
                    }
                    pos - 1
                }
                ast::Expr::Identifier(id)
                    if columns.iter().filter(|c| c.name == ident_name(id)).count() == 1
                        && select.projection.iter().any(|p| matches!(p, ast::SelectItem::ExprWithAlias { alias, .. } if ident_name(alias) == ident_name(id))) =>
                {
                    columns.iter().position(|c| c.name == ident_name(id)).unwrap_or(0)
                }
                e => {
                    let (b, _) = self.bind_expr(e, &scope, agg_state.as_mut())?;
                    match project[..visible].iter().position(|p| *p == b) {
                        Some(i) => i,
                        None => {
                            if select.distinct.is_some() {
                                return Err(SqlError::new(
                                    SqlState::INVALID_COLUMN_REFERENCE,
                                    "for SELECT DISTINCT, ORDER BY expressions must appear in select list",
                                ));
                            }
                            project.push(b);
                            project.len() - 1
                        }
                    }
                }
            };
            order.push(SortKey {
                index,
                desc,
                nulls_first,
            });
        }
        let distinct = match &select.distinct {
            None | Some(ast::Distinct::All) => false,
            Some(ast::Distinct::Distinct) => true,
            Some(ast::Distinct::On(_)) => return Err(SqlError::unsupported("DISTINCT ON")),
        };
        let (limit, offset) = self.bind_limit(q)?;
        if let Some(l) = lock {
            let refused = if agg_state.is_some() {
                Some("aggregate functions")
            } else if distinct {
                Some("DISTINCT clause")
            } else {
                None
            };
            if let Some(what) = refused {
                return Err(SqlError::new(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    format!("{} is not allowed with {what}", l.mode.sql_name()),
                ));
            }
        }
        let agg = agg_state.map(|st| AggPlan {
            group_by: st.group_exprs,
            aggs: st.aggs,
            having,
        });
        let mut filter = filter;
        let source = match source {
            Source::Table { def, .. } => {
                let access = choose_access(&def, filter.as_ref());
                if matches!(access, Access::Point(_))
                    && filter.as_ref().is_some_and(|f| point_read_implies(&def, f))
                {
                    filter = None;
                }
                Source::Table { def, access }
            }
            Source::Append(a) => {
                // The query's filter stays above; it only prunes and picks access paths.
                let conds = crate::plan::conjuncts(filter.clone())
                    .into_iter()
                    .filter(|c| !c.has_subquery())
                    .collect();
                crate::partition::place_in_append(*a, conds, false)
            }
            join @ Source::Join(_) => {
                // Conjuncts with subqueries stay on the joined rows; the others move down.
                let (with_subquery, plain): (Vec<Expr>, Vec<Expr>) =
                    crate::plan::conjuncts(filter.take())
                        .into_iter()
                        .partition(|c| c.has_subquery());
                filter = crate::plan::and_all(with_subquery);
                crate::plan::place_conjuncts(join, plain)
            }
            other => other,
        };
        // Window results are the columns after the (grouped) row's own.
        let windows = std::mem::take(&mut self.windows);
        if !windows.is_empty() {
            let base = match &agg {
                Some(a) => a.group_by.len() + a.aggs.len(),
                None => scope.cols.len(),
            };
            let remap = |i: usize| {
                if i >= WINDOW_BASE {
                    base + i - WINDOW_BASE
                } else {
                    i
                }
            };
            project = project.iter().map(|e| e.map_columns(&remap)).collect();
        }
        let mut needed = Vec::new();
        for w in &windows {
            for e in w.partition.iter().chain(w.order.iter().map(|(e, _, _)| e)) {
                e.mark_columns(&mut needed);
            }
            if let WindowFunc::Aggregate(c) = &w.func {
                for e in c.arg.iter().chain(c.filter.iter()) {
                    e.mark_columns(&mut needed);
                }
            }
        }
        if let Some(f) = &filter {
            f.mark_columns(&mut needed);
        }
        match &agg {
            Some(a) => {
                for e in &a.group_by {
                    e.mark_columns(&mut needed);
                }
                for c in &a.aggs {
                    for e in c.arg.iter().chain(c.filter.iter()) {
                        e.mark_columns(&mut needed);
                    }
                }
                if let Some(h) = &a.having {
                    if h.has_subquery() {
                        needed = vec![true; scope.cols.len()];
                    }
                }
            }
            None => {
                for e in &project {
                    e.mark_columns(&mut needed);
                }
            }
        }
        // A correlated subquery reads columns of this query's rows that the marks above do not
        // see: decode every column then.
        if filter
            .iter()
            .chain(project.iter())
            .any(|e| e.has_subquery())
        {
            needed = vec![true; scope.cols.len()];
        }
        // Window results go after the row's own columns (`base` above counts the scope): a
        // row that can carry the system column must then carry it.
        if !windows.is_empty() && agg.is_none() && crate::plan::has_mvcc_timestamp_column(&scope) {
            needed.resize(scope.cols.len(), false);
            needed[scope.cols.len() - 1] = true;
        }
        Ok(SelectPlan {
            source,
            filter,
            agg,
            windows,
            project,
            srf,
            visible,
            distinct,
            order,
            limit,
            offset,
            columns: columns.into(),
            needed,
            lock,
        })
    }

    fn bind_limit(&mut self, q: &ast::Query) -> SqlResult<(Option<Expr>, Option<Expr>)> {
        let bind_count = |b: &mut Self, e: &ast::Expr| -> SqlResult<Expr> {
            let (x, t) = b.bind_expr(e, &Scope::default(), None)?;
            if t != DataType::Unknown && !t.is_numeric() {
                return Err(SqlError::mismatch(format!(
                    "argument of LIMIT must be type bigint, not type {}",
                    t.name()
                )));
            }
            Ok(Expr::Cast {
                expr: Box::new(b.coerce(x, t, DataType::Int8)?),
                ty: DataType::Int8,
                explicit: false,
            })
        };
        match &q.limit_clause {
            None => Ok((None, None)),
            Some(ast::LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if !limit_by.is_empty() {
                    return Err(SqlError::unsupported("LIMIT BY"));
                }
                let l = match limit {
                    Some(e) => Some(bind_count(self, e)?),
                    None => None,
                };
                let o = match offset {
                    Some(off) => Some(bind_count(self, &off.value)?),
                    None => None,
                };
                Ok((l, o))
            }
            Some(ast::LimitClause::OffsetCommaLimit { .. }) => {
                Err(SqlError::syntax("LIMIT #,# syntax is not supported"))
            }
        }
    }

    /// `VALUES (...), (...)` as a query: columns `column1...`, types unified per column.
    fn bind_values(&mut self, v: &ast::Values) -> SqlResult<(Source, Vec<Column>)> {
        let width = v.rows.first().map_or(0, |r| r.len());
        let mut cols: Vec<Vec<(Expr, DataType)>> = vec![Vec::new(); width];
        for row in &v.rows {
            if row.len() != width {
                return Err(SqlError::syntax("VALUES lists must all be the same length"));
            }
            for (i, e) in row.iter().enumerate() {
                cols[i].push(self.bind_expr(e, &Scope::default(), None)?);
            }
        }
        let mut columns = Vec::with_capacity(width);
        let mut unified = Vec::with_capacity(width);
        for (i, items) in cols.into_iter().enumerate() {
            let (exprs, ty) = self.unify(items, "VALUES")?;
            let ty = if ty == DataType::Unknown {
                DataType::Text
            } else {
                ty
            };
            columns.push(Column {
                name: format!("column{}", i + 1),
                ty,
                table_oid: 0,
                column_id: 0,
            });
            unified.push(exprs);
        }
        let rows = (0..v.rows.len())
            .map(|r| unified.iter().map(|c| c[r].clone()).collect())
            .collect();
        Ok((Source::Values(rows), columns))
    }

    /// A query over rows that already have their output columns (a set operation, VALUES,
    /// a parenthesized query): ORDER BY names or numbers those columns; LIMIT and OFFSET.
    fn wrap_rows(
        &mut self,
        source: Source,
        columns: Vec<Column>,
        q: &ast::Query,
    ) -> SqlResult<SelectPlan> {
        let scope = Scope::of_columns(
            columns
                .iter()
                .map(|c| ScopeColumn {
                    qualifier: None,
                    name: c.name.clone(),
                    ty: c.ty,
                    table_oid: c.table_oid,
                    column_id: c.column_id,
                    unqualified: true,
                })
                .collect(),
        );
        let visible = columns.len();
        let mut project: Vec<Expr> = (0..visible).map(Expr::Column).collect();
        let mut order = Vec::new();
        let order_asts: Vec<&ast::OrderByExpr> = match &q.order_by {
            Some(ob) => match &ob.kind {
                ast::OrderByKind::Expressions(v) => v.iter().collect(),
                ast::OrderByKind::All(_) => return Err(SqlError::unsupported("ORDER BY ALL")),
            },
            None => vec![],
        };
        for o in order_asts {
            let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
            let nulls_first = o.options.nulls_first.unwrap_or(desc);
            let index = match &o.expr {
                ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
                    let pos: usize = v.value.to_string().parse().unwrap_or(0);
                    if pos == 0 || pos > visible {
                        return Err(SqlError::new(
                            SqlState::INVALID_COLUMN_REFERENCE,
                            format!("ORDER BY position {} is not in select list", v.value),
                        ));
                    }
                    pos - 1
                }
                e => {
                    let (b, _) = self.bind_expr(e, &scope, None)?;
                    match project.iter().position(|p| *p == b) {
                        Some(i) => i,
                        None => {
                            project.push(b);
                            project.len() - 1
                        }
                    }
                }
            };
            order.push(SortKey {
                index,
                desc,
                nulls_first,
            });
        }
        let (limit, offset) = self.bind_limit(q)?;
        Ok(SelectPlan {
            source,
            filter: None,
            agg: None,
            windows: vec![],
            project,
            srf: vec![],
            visible,
            distinct: false,
            order,
            limit,
            offset,
            columns: columns.into(),
            needed: vec![],
            lock: None,
        })
    }

    /// Binds one FROM item that is a table or a set-returning function.
    pub(crate) fn bind_table_factor(
        &mut self,
        relation: &ast::TableFactor,
    ) -> SqlResult<(Source, Scope)> {
        {
            match relation {
                ast::TableFactor::Table {
                    alias,
                    args: Some(_),
                    with_ordinality: true,
                    ..
                } => {
                    // `f(...) WITH ORDINALITY [AS] a(c1, ..., n)`: the function's rows
                    // numbered from 1 in a last bigint column (named by the alias's column
                    // after the function's own, else `ordinality`).
                    let mut plain = relation.clone();
                    if let ast::TableFactor::Table {
                        with_ordinality, ..
                    } = &mut plain
                    {
                        *with_ordinality = false;
                    }
                    let (source, mut scope) = self.bind_table_factor(&plain)?;
                    let width = scope.cols.len();
                    let name = alias
                        .as_ref()
                        .and_then(|a| a.columns.get(width))
                        .map_or_else(|| "ordinality".to_string(), |c| ident_name(&c.name));
                    let qualifier = scope.cols.first().and_then(|c| c.qualifier.clone());
                    scope.cols.push(ScopeColumn {
                        qualifier,
                        name,
                        ty: DataType::Int8,
                        table_oid: 0,
                        column_id: 0,
                        unqualified: true,
                    });
                    scope.star.push(crate::plan::StarItem::Column(width));
                    Ok((Source::Ordinality(Box::new(source)), scope))
                }
                ast::TableFactor::Table {
                    name,
                    alias,
                    args: None,
                    ..
                } => {
                    let tname = object_name(name)?;
                    if let Some(view) = crate::system::SystemView::named(&tname) {
                        let qualifier = alias
                            .as_ref()
                            .map(|a| ident_name(&a.name))
                            .unwrap_or_else(|| view.name().to_string());
                        let cols = view
                            .columns()
                            .iter()
                            .map(|(n, ty)| ScopeColumn {
                                qualifier: Some(qualifier.clone()),
                                name: n.to_string(),
                                ty: *ty,
                                table_oid: 0,
                                column_id: 0,
                                unqualified: true,
                            })
                            .collect();
                        return Ok((Source::System(view), Scope::of_columns(cols)));
                    }
                    let def = self.catalog.require(self.txn, &tname)?;
                    if let Some(a) = alias {
                        if !a.columns.is_empty() {
                            return Err(SqlError::unsupported("column aliases on tables"));
                        }
                    }
                    let scope = Scope::of_table(&def, alias.as_ref().map(|a| ident_name(&a.name)));
                    if def.partitioning.key.is_some() {
                        let source = crate::partition::append_source(self.catalog, self.txn, def)?;
                        return Ok((source, scope));
                    }
                    Ok((
                        Source::Table {
                            def,
                            access: Access::Full,
                        },
                        scope,
                    ))
                }
                ast::TableFactor::Table {
                    name,
                    alias,
                    args: Some(args),
                    ..
                } => {
                    let fname = object_name(name)?;
                    if fname == "unnest" || fname == "pg_partition_ancestors" {
                        return self.bind_unnest(&fname, &args.args, alias.as_ref());
                    }
                    if fname != "generate_series" {
                        return Err(SqlError::undefined_function(format!(
                            "function {fname} does not exist"
                        )));
                    }
                    let mut exprs = Vec::new();
                    for a in &args.args {
                        match a {
                            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                                exprs.push(self.bind_expr(e, &Scope::default(), None)?)
                            }
                            _ => return Err(SqlError::unsupported("named arguments")),
                        }
                    }
                    if !(2..=3).contains(&exprs.len()) {
                        return Err(SqlError::undefined_function(
                            "function generate_series with these arguments does not exist",
                        ));
                    }
                    let mut ty = DataType::Int4;
                    for (_, t) in &exprs {
                        match t {
                            DataType::Int8 => ty = DataType::Int8,
                            DataType::Int2 | DataType::Int4 | DataType::Unknown => {}
                            DataType::Numeric { .. } if ty != DataType::Int8 => ty = NUMERIC,
                            other => {
                                return Err(SqlError::undefined_function(format!(
                                    "function generate_series({}) does not exist",
                                    other.name()
                                )))
                            }
                        }
                    }
                    if exprs
                        .iter()
                        .any(|(_, t)| matches!(t, DataType::Numeric { .. }))
                    {
                        ty = NUMERIC;
                    }
                    let mut bound = Vec::new();
                    for (e, t) in exprs {
                        let c = self.coerce(e, t, ty)?;
                        bound.push(Expr::Cast {
                            expr: Box::new(c),
                            ty,
                            explicit: false,
                        });
                    }
                    let step = if bound.len() == 3 { bound.pop() } else { None };
                    let stop = bound.pop().unwrap_or(Expr::Const(Value::Null));
                    let start = bound.pop().unwrap_or(Expr::Const(Value::Null));
                    let (qualifier, col) = function_column_names(alias.as_ref(), "generate_series");
                    let scope = Scope::of_columns(vec![ScopeColumn {
                        qualifier: Some(qualifier),
                        name: col,
                        ty,
                        table_oid: 0,
                        column_id: 0,
                        unqualified: true,
                    }]);
                    Ok((
                        Source::Series {
                            start,
                            stop,
                            step,
                            ty,
                        },
                        scope,
                    ))
                }
                ast::TableFactor::UNNEST {
                    alias,
                    array_exprs,
                    with_offset: false,
                    with_ordinality: false,
                    ..
                } if array_exprs.len() == 1 => {
                    self.bind_unnest_expr(&array_exprs[0], alias.as_ref(), DataType::Text)
                }
                _ => Err(SqlError::unsupported("this FROM item")),
            }
        }
    }

    fn bind_returning(
        &mut self,
        items: &Option<Vec<ast::SelectItem>>,
        scope: &Scope,
    ) -> SqlResult<Option<Returning>> {
        let Some(items) = items else { return Ok(None) };
        let mut exprs = Vec::new();
        let mut columns = Vec::new();
        for item in items {
            match item {
                ast::SelectItem::Wildcard(_) => {
                    for (i, c) in scope.cols.iter().enumerate() {
                        exprs.push(Expr::Column(i));
                        columns.push(Column {
                            name: c.name.clone(),
                            ty: c.ty,
                            table_oid: c.table_oid,
                            column_id: c.column_id,
                        });
                    }
                }
                ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                    let (b, t) = self.bind_expr(e, scope, None)?;
                    let name = match item {
                        ast::SelectItem::ExprWithAlias { alias, .. } => ident_name(alias),
                        _ => column_name(e),
                    };
                    let (table_oid, column_id) = match &b {
                        Expr::Column(i) => (scope.cols[*i].table_oid, scope.cols[*i].column_id),
                        _ => (0, 0),
                    };
                    exprs.push(b);
                    columns.push(Column {
                        name,
                        ty: if t == DataType::Unknown {
                            DataType::Text
                        } else {
                            t
                        },
                        table_oid,
                        column_id,
                    });
                }
                _ => return Err(SqlError::unsupported("this RETURNING item")),
            }
        }
        Ok(Some(Returning {
            exprs,
            columns: columns.into(),
        }))
    }

    /// Binds the DEFAULT expression of a column (stored as SQL text).
    pub(crate) fn bind_default(
        &mut self,
        text: &str,
        ty: DataType,
        column: &str,
    ) -> SqlResult<Expr> {
        let ast = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(text)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| SqlError::syntax(e.to_string()))?;
        let (e, t) = self.bind_expr(&ast, &Scope::default(), None)?;
        self.assign_expr(e, t, ty, column)
    }

    /// Binds a boolean expression over the columns of `table` (a CHECK constraint's text).
    pub(crate) fn bind_table_expr(&mut self, text: &str, table: &TableDef) -> SqlResult<Expr> {
        let ast = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(text)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| SqlError::syntax(e.to_string()))?;
        self.bind_bool(&ast, &Scope::of_table(table, None), None, "CHECK")
    }

    /// Binds the expression of `table`'s generated column `col` (GENERATED ALWAYS AS (expr)
    /// STORED) over the table's columns, coerced to the column's type. As in PostgreSQL it
    /// may not read another generated column (42P17).
    pub(crate) fn bind_generated(
        &mut self,
        text: &str,
        table: &TableDef,
        col: usize,
    ) -> SqlResult<Expr> {
        let ast = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(text)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| SqlError::syntax(e.to_string()))?;
        let (e, t) = self.bind_expr(&ast, &Scope::of_table(table, None), None)?;
        let read = std::cell::RefCell::new(Vec::new());
        e.map_columns(&|i| {
            read.borrow_mut().push(i);
            i
        });
        if let Some(&g) = read
            .borrow()
            .iter()
            .find(|&&i| table.columns.get(i).is_some_and(|c| c.generated.is_some()))
        {
            return Err(SqlError::new(
                SqlState::INVALID_OBJECT_DEFINITION,
                format!(
                    "cannot use generated column \"{}\" in column generation expression",
                    table.columns[g].name
                ),
            )
            .with_detail("A generated column cannot reference another generated column."));
        }
        let c = &table.columns[col];
        self.assign_expr(e, t, c.ty, &c.name)
    }

    /// Coerces an expression for storing into a column of type `to` (42804 if not assignable).
    fn assign_expr(
        &mut self,
        e: Expr,
        from: DataType,
        to: DataType,
        column: &str,
    ) -> SqlResult<Expr> {
        if !assignable(&from, &to) {
            return Err(SqlError::mismatch(format!(
                "column \"{column}\" is of type {} but expression is of type {}",
                to.name(),
                from.name()
            ))
            .with_hint("You will need to rewrite or cast the expression."));
        }
        if from == DataType::Unknown {
            if let Expr::Param(_) = e {
                return self.coerce(e, from, to);
            }
        }
        Ok(e)
    }

    pub(crate) fn bind_insert(&mut self, ins: &ast::Insert) -> SqlResult<Plan> {
        let tname = match &ins.table {
            ast::TableObject::TableName(n) => object_name(n)?,
            _ => return Err(SqlError::unsupported("INSERT into a table function")),
        };
        let table = self.catalog.require(self.txn, &tname)?;
        let on_conflict = match &ins.on {
            None => None,
            Some(ast::OnInsert::OnConflict(oc)) => Some(Box::new(self.bind_on_conflict(
                &table,
                oc,
                ins.table_alias.as_ref().map(|a| ident_name(&a.alias)),
            )?)),
            Some(_) => return Err(SqlError::unsupported("ON DUPLICATE KEY UPDATE")),
        };
        let mut targets = Vec::new();
        if ins.columns.is_empty() {
            targets = (0..table.columns.len()).collect();
        } else {
            for c in &ins.columns {
                let name = object_name(c)?;
                let i = table.column_index(&name).ok_or_else(|| {
                    SqlError::new(
                        SqlState::UNDEFINED_COLUMN,
                        format!(
                            "column \"{name}\" of relation \"{}\" does not exist",
                            table.name
                        ),
                    )
                })?;
                if targets.contains(&i) {
                    return Err(SqlError::new(
                        SqlState::DUPLICATE_COLUMN,
                        format!("column \"{name}\" specified more than once"),
                    ));
                }
                targets.push(i);
            }
        }
        let mut defaults = Vec::with_capacity(table.columns.len());
        for c in &table.columns {
            defaults.push(match &c.default {
                Some(text) => Some(self.bind_default(text, c.ty, &c.name)?),
                None => None,
            });
        }
        let Some(source_q) = ins.source.as_ref() else {
            // INSERT ... DEFAULT VALUES: one row of defaults.
            let scope = Scope::of_table(&table, None);
            let returning = self.bind_returning(&ins.returning, &scope)?;
            return Ok(Plan::Insert {
                table,
                targets: vec![],
                source: InsertSource::Values(vec![vec![]]),
                defaults,
                returning,
                on_conflict,
            });
        };
        let source = match source_q.body.as_ref() {
            ast::SetExpr::Values(values)
                if source_q.order_by.is_none() && source_q.limit_clause.is_none() =>
            {
                let mut rows = Vec::with_capacity(values.rows.len());
                for r in &values.rows {
                    if r.len() > targets.len() {
                        return Err(SqlError::syntax(
                            "INSERT has more expressions than target columns",
                        ));
                    }
                    if r.len() < targets.len() && !ins.columns.is_empty() {
                        return Err(SqlError::syntax(
                            "INSERT has more target columns than expressions",
                        ));
                    }
                    let mut row = Vec::with_capacity(r.len());
                    for (j, e) in r.iter().enumerate() {
                        let col = &table.columns[targets[j]];
                        if let ast::Expr::Identifier(id) = e {
                            if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default")
                            {
                                row.push(None);
                                continue;
                            }
                        }
                        if col.generated.is_some() {
                            return Err(generated_column_insert(&col.name));
                        }
                        match (col.identity, &ins.overriding) {
                            (Identity::None, _) => {}
                            (_, Some(ast::InsertOverriding::User)) => {
                                // OVERRIDING USER VALUE: the given value is ignored.
                                row.push(None);
                                continue;
                            }
                            (Identity::Always, None) => return Err(generated_always(&col.name)),
                            _ => {}
                        }
                        let (b, t) = self.bind_expr(e, &Scope::default(), None)?;
                        row.push(Some(self.assign_expr(b, t, col.ty, &col.name)?));
                    }
                    rows.push(row);
                }
                InsertSource::Values(rows)
            }
            _ => {
                let plan = self.bind_query(source_q)?;
                if plan.columns.len() > targets.len() {
                    return Err(SqlError::syntax(
                        "INSERT has more expressions than target columns",
                    ));
                }
                for (j, c) in plan.columns.iter().enumerate() {
                    let col = &table.columns[targets[j]];
                    if col.generated.is_some() {
                        return Err(generated_column_insert(&col.name));
                    }
                    match (col.identity, &ins.overriding) {
                        (Identity::None, _) => {}
                        (_, Some(ast::InsertOverriding::User)) => {
                            return Err(SqlError::unsupported(
                                "OVERRIDING USER VALUE with a query as the source",
                            ))
                        }
                        (Identity::Always, None) => return Err(generated_always(&col.name)),
                        _ => {}
                    }
                    if !assignable(&c.ty, &col.ty) {
                        return Err(SqlError::mismatch(format!(
                            "column \"{}\" is of type {} but expression is of type {}",
                            col.name,
                            col.ty.name(),
                            c.ty.name()
                        )));
                    }
                }
                InsertSource::Query(Box::new(plan))
            }
        };
        let scope = Scope::of_table(&table, None);
        let returning = self.bind_returning(&ins.returning, &scope)?;
        Ok(Plan::Insert {
            table,
            targets,
            source,
            defaults,
            returning,
            on_conflict,
        })
    }

    /// Binds ON CONFLICT: the arbiter constraints and the DO UPDATE SET / WHERE over the
    /// target row followed by the `excluded` row.
    fn bind_on_conflict(
        &mut self,
        table: &Arc<TableDef>,
        oc: &ast::OnConflict,
        alias: Option<String>,
    ) -> SqlResult<crate::upsert::OnConflict> {
        use crate::upsert::{Arbiters, ConflictAction, OnConflict};
        let mut arbiters = Arbiters::default();
        match &oc.conflict_target {
            None => {
                if matches!(oc.action, ast::OnConflictAction::DoUpdate(_)) {
                    return Err(SqlError::syntax(
                        "ON CONFLICT DO UPDATE requires inference specification or constraint name",
                    )
                    .with_hint("For example, ON CONFLICT (column_name)."));
                }
                arbiters.primary = true;
                arbiters.indexes = (0..table.indexes.len())
                    .filter(|&i| table.indexes[i].unique)
                    .collect();
            }
            Some(ast::ConflictTarget::Columns { columns, predicate }) => {
                if predicate.is_some() {
                    return Err(SqlError::unsupported(
                        "ON CONFLICT ... WHERE index_predicate",
                    ));
                }
                let mut cols = Vec::new();
                for c in columns {
                    let n = ident_name(c);
                    let i = table.column_index(&n).ok_or_else(|| {
                        SqlError::new(
                            SqlState::UNDEFINED_COLUMN,
                            format!("column \"{n}\" does not exist"),
                        )
                    })?;
                    cols.push(i);
                }
                cols.sort_unstable();
                cols.dedup();
                let same = |other: &[usize]| {
                    let mut o = other.to_vec();
                    o.sort_unstable();
                    o == cols
                };
                arbiters.primary = !table.primary_key.is_empty() && same(&table.primary_key);
                arbiters.indexes = (0..table.indexes.len())
                    .filter(|&i| table.indexes[i].unique && same(&table.indexes[i].columns))
                    .collect();
                if !arbiters.primary && arbiters.indexes.is_empty() {
                    return Err(SqlError::new(
                        SqlState::INVALID_COLUMN_REFERENCE,
                        "there is no unique or exclusion constraint matching the ON CONFLICT specification",
                    ));
                }
            }
            Some(ast::ConflictTarget::OnConstraint(name)) => {
                let n = object_name(name)?;
                if !table.primary_key.is_empty() && n == table.pkey_name() {
                    arbiters.primary = true;
                } else if let Some(i) = table
                    .indexes
                    .iter()
                    .position(|ix| ix.unique && ix.name == n)
                {
                    arbiters.indexes.push(i);
                } else {
                    return Err(SqlError::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!(
                            "constraint \"{n}\" for table \"{}\" does not exist",
                            table.name
                        ),
                    ));
                }
            }
        }
        let action = match &oc.action {
            ast::OnConflictAction::DoNothing => ConflictAction::Nothing,
            ast::OnConflictAction::DoUpdate(du) => {
                let mut scope = Scope::of_table(table, alias);
                scope
                    .cols
                    .extend(Scope::of_table(table, Some("excluded".into())).cols);
                let sets = self.bind_set_list(table, &du.assignments, &scope)?;
                let filter = match &du.selection {
                    Some(w) => Some(self.bind_bool(w, &scope, None, "WHERE")?),
                    None => None,
                };
                ConflictAction::Update { sets, filter }
            }
        };
        Ok(OnConflict { arbiters, action })
    }

    /// Binds the `SET col = expr | DEFAULT, ...` list of UPDATE, ON CONFLICT DO UPDATE and
    /// MERGE's UPDATE against `table`: (column index, expression coerced to the column type).
    pub(crate) fn bind_set_list(
        &mut self,
        table: &TableDef,
        assignments: &[ast::Assignment],
        scope: &Scope,
    ) -> SqlResult<Vec<(usize, Expr)>> {
        let mut sets = Vec::with_capacity(assignments.len());
        for a in assignments {
            let name = match &a.target {
                ast::AssignmentTarget::ColumnName(n) => object_name(n)?,
                ast::AssignmentTarget::Tuple(_) => {
                    return Err(SqlError::unsupported("multi-column SET"))
                }
            };
            let i = table.column_index(&name).ok_or_else(|| {
                SqlError::new(
                    SqlState::UNDEFINED_COLUMN,
                    format!(
                        "column \"{name}\" of relation \"{}\" does not exist",
                        table.name
                    ),
                )
            })?;
            let col = &table.columns[i];
            let e = match &a.value {
                ast::Expr::Identifier(id)
                    if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default") =>
                {
                    match &col.default {
                        Some(text) => self.bind_default(text, col.ty, &col.name)?,
                        None => Expr::Const(Value::Null),
                    }
                }
                _ if col.generated.is_some() => {
                    return Err(SqlError::new(
                        SqlState::GENERATED_ALWAYS,
                        format!("column \"{}\" can only be updated to DEFAULT", col.name),
                    )
                    .with_detail(format!("Column \"{}\" is a generated column.", col.name)))
                }
                _ if col.identity == Identity::Always => {
                    return Err(SqlError::new(
                        SqlState::GENERATED_ALWAYS,
                        format!("column \"{}\" can only be updated to DEFAULT", col.name),
                    )
                    .with_detail(format!(
                        "Column \"{}\" is an identity column defined as GENERATED ALWAYS.",
                        col.name
                    )))
                }
                v => {
                    let (b, t) = self.bind_expr(v, scope, None)?;
                    self.assign_expr(b, t, col.ty, &col.name)?
                }
            };
            sets.push((i, e));
        }
        Ok(sets)
    }

    fn single_table(&mut self, t: &ast::TableWithJoins) -> SqlResult<(Arc<TableDef>, Scope)> {
        if !t.joins.is_empty() {
            return Err(SqlError::unsupported("joins"));
        }
        match &t.relation {
            ast::TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                let def = self.catalog.require(self.txn, &object_name(name)?)?;
                let scope = Scope::of_table(&def, alias.as_ref().map(|a| ident_name(&a.name)));
                Ok((def, scope))
            }
            _ => Err(SqlError::unsupported("this target table")),
        }
    }

    pub(crate) fn bind_update(&mut self, u: &ast::Update) -> SqlResult<Plan> {
        if u.from.is_some() {
            return Err(SqlError::unsupported("UPDATE ... FROM"));
        }
        let (table, scope) = self.single_table(&u.table)?;
        let sets = self.bind_set_list(&table, &u.assignments, &scope)?;
        let filter = match &u.selection {
            Some(w) => Some(self.bind_bool(w, &scope, None, "WHERE")?),
            None => None,
        };
        let returning = self.bind_returning(&u.returning, &scope)?;
        let access = choose_access(&table, filter.as_ref());
        let increment = increment_plan(&table, &access, filter.as_ref(), &sets, &returning);
        Ok(Plan::Update {
            table,
            access,
            filter,
            sets,
            returning,
            increment,
        })
    }

    pub(crate) fn bind_merge_plan(&mut self, m: &ast::Merge) -> SqlResult<Plan> {
        Ok(Plan::Merge(Box::new(self.bind_merge(m)?)))
    }

    pub(crate) fn bind_delete(&mut self, d: &ast::Delete) -> SqlResult<Plan> {
        if d.using.is_some() || !d.tables.is_empty() {
            return Err(SqlError::unsupported("DELETE ... USING"));
        }
        let from = match &d.from {
            ast::FromTable::WithFromKeyword(v) | ast::FromTable::WithoutKeyword(v) => v,
        };
        let [t] = from.as_slice() else {
            return Err(SqlError::unsupported("DELETE from several tables"));
        };
        let (table, scope) = self.single_table(t)?;
        let filter = match &d.selection {
            Some(w) => Some(self.bind_bool(w, &scope, None, "WHERE")?),
            None => None,
        };
        let returning = self.bind_returning(&d.returning, &scope)?;
        let access = choose_access(&table, filter.as_ref());
        Ok(Plan::Delete {
            table,
            access,
            filter,
            returning,
        })
    }

    /// Final parameter types: declared or inferred; still-unknown ones default to text.
    pub(crate) fn final_param_types(&self) -> Vec<DataType> {
        self.params
            .iter()
            .map(|p| p.unwrap_or(DataType::Text))
            .collect()
    }
}

/// 428C9: INSERT gives a generated column (GENERATED ALWAYS AS (expr) STORED) a value.
pub(crate) fn generated_column_insert(column: &str) -> SqlError {
    SqlError::new(
        SqlState::GENERATED_ALWAYS,
        format!("cannot insert a non-DEFAULT value into column \"{column}\""),
    )
    .with_detail(format!("Column \"{column}\" is a generated column."))
}

/// 428C9: INSERT gives a GENERATED ALWAYS identity column a value without OVERRIDING SYSTEM
/// VALUE.
pub(crate) fn generated_always(column: &str) -> SqlError {
    SqlError::new(
        SqlState::GENERATED_ALWAYS,
        format!("cannot insert a non-DEFAULT value into column \"{column}\""),
    )
    .with_detail(format!(
        "Column \"{column}\" is an identity column defined as GENERATED ALWAYS."
    ))
    .with_hint("Use OVERRIDING SYSTEM VALUE to override.")
}

fn agg_result_type(func: AggFunc, arg: &DataType) -> Option<DataType> {
    Some(match func {
        AggFunc::CountStar | AggFunc::Count => DataType::Int8,
        AggFunc::Sum => match arg {
            DataType::Int2 | DataType::Int4 => DataType::Int8,
            DataType::Int8 | DataType::Numeric { .. } => NUMERIC,
            DataType::Float4 => DataType::Float4,
            DataType::Float8 => DataType::Float8,
            _ => return None,
        },
        AggFunc::Avg => match arg {
            DataType::Int2 | DataType::Int4 | DataType::Int8 | DataType::Numeric { .. } => NUMERIC,
            DataType::Float4 | DataType::Float8 => DataType::Float8,
            _ => return None,
        },
        AggFunc::ArrayAgg => DataType::array_of(*arg),
        AggFunc::BoolAnd | AggFunc::BoolOr => match arg {
            DataType::Bool => DataType::Bool,
            _ => return None,
        },
        AggFunc::StringAgg => match arg {
            t if t.is_string() => DataType::Text,
            _ => return None,
        },
        AggFunc::Min | AggFunc::Max => match arg {
            DataType::Bytea => return None,
            DataType::Numeric { .. } => NUMERIC,
            DataType::Varchar(_) | DataType::Bpchar(_) => DataType::Text,
            other => *other,
        },
    })
}

/// Whether a constant of type `c` can seek a key column of type `col` without changing
/// which rows compare equal (a cast that rounds would seek the wrong key).
fn seekable(col: &DataType, c: &DataType) -> bool {
    match col {
        DataType::Int2 | DataType::Int4 | DataType::Int8 => c.is_integer(),
        DataType::Numeric { .. } => c.is_integer() || matches!(c, DataType::Numeric { .. }),
        DataType::Float4 | DataType::Float8 => {
            matches!(c, DataType::Float8 | DataType::Float4) || c.is_integer()
        }
        t if t.is_string() => c.is_string(),
        other => other == c,
    }
}

fn const_type(e: &Expr, col: &DataType) -> Option<DataType> {
    match e {
        Expr::Const(v) if !v.is_null() => Some(v.data_type()),
        // Parameters were typed from the column they are compared with.
        Expr::Param(_) => Some(*col),
        Expr::Cast { ty, expr, .. } if expr.is_row_independent() => Some(*ty),
        _ => None,
    }
}

/// The operands of a chain of ANDs.
fn split_conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    if let Expr::And(a, b) = e {
        split_conjuncts(a, out);
        split_conjuncts(b, out);
    } else {
        out.push(e);
    }
}

/// Whether a point read of `def` chosen for `filter` (by [`choose_access`]) already
/// guarantees all of `filter`, so the row it finds need not be filtered again: every conjunct
/// is `key column = constant` on a different integer key column with an integer constant.
/// For those, finding the row at the encoded key is exactly SQL equality (the cast to the
/// column's type is exact or fails, which reads no row; a NULL constant reads no row). Other
/// types keep the filter: strings compare with padding rules, floats have -0 and NaN,
/// numerics have scales.
fn point_read_implies(def: &TableDef, filter: &Expr) -> bool {
    let mut conjuncts = Vec::new();
    split_conjuncts(filter, &mut conjuncts);
    if conjuncts.len() != def.primary_key.len() {
        return false;
    }
    let mut covered = vec![false; def.primary_key.len()];
    for c in conjuncts {
        let Expr::Binary {
            op: BinOp::Eq,
            left,
            right,
            ..
        } = c
        else {
            return false;
        };
        let (col, constant) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(i), r) if r.is_row_independent() => (*i, r),
            (l, Expr::Column(i)) if l.is_row_independent() => (*i, l),
            _ => return false,
        };
        let Some(pos) = def.primary_key.iter().position(|&k| k == col) else {
            return false;
        };
        let ty = &def.columns[col].ty;
        let exact = ty.is_integer() && const_type(constant, ty).is_some_and(|t| t.is_integer());
        if covered[pos] || !exact {
            return false;
        }
        covered[pos] = true;
    }
    true
}

/// An UPDATE that runs as increments: per SET item the column, `Add` or `Sub`, the
/// row-independent operand and the arithmetic type.
#[derive(Debug, Clone)]
pub(crate) struct IncrementPlan {
    items: Vec<(usize, BinOp, Expr, DataType)>,
}

/// The one place that decides whether an UPDATE may take the INCREMENT row lock instead of
/// FOR NO KEY UPDATE (see `mvcc/src/locks/README.md`, "Increments"), once per bound plan:
/// every SET item is `c = c + e` or `c = c - e` with `e` row-independent (a constant or a
/// parameter, no subquery) and `c` numeric (int2/int4/int8/numeric/float4/float8); the WHERE
/// clause is exactly the full primary key by equality (a point read that implies the
/// filter); no RETURNING; a plain table (not partitioned, not a partition); and no `c` is in
/// the primary key, an index or UNIQUE constraint, a foreign key, or named by a CHECK
/// constraint. The isolation level (READ COMMITTED only) and a row the transaction already
/// wrote are checked per row by `Txn::increment`, which otherwise sends the UPDATE down the
/// ordinary path.
fn increment_plan(
    def: &TableDef,
    access: &Access,
    filter: Option<&Expr>,
    sets: &[(usize, Expr)],
    returning: &Option<Returning>,
) -> Option<IncrementPlan> {
    // A generated column may depend on the incremented one and would have to be recomputed
    // from the final row at COMMIT: such tables take the ordinary path.
    if returning.is_some()
        || sets.is_empty()
        || !def.partitioning.is_empty()
        || def.columns.iter().any(|c| c.generated.is_some())
    {
        return None;
    }
    if !matches!(access, Access::Point(_)) || !point_read_implies(def, filter?) {
        return None;
    }
    let mut items = Vec::with_capacity(sets.len());
    for (i, e) in sets {
        let col = &def.columns[*i];
        let numeric = matches!(
            col.ty,
            DataType::Int2
                | DataType::Int4
                | DataType::Int8
                | DataType::Float4
                | DataType::Float8
                | DataType::Numeric { .. }
        );
        let constrained = def.primary_key.contains(i)
            || def.indexes.iter().any(|x| x.columns.contains(i))
            || def.foreign_keys.iter().any(|f| f.columns.contains(i))
            || def
                .checks
                .iter()
                .any(|c| c.expr.to_lowercase().contains(&col.name.to_lowercase()));
        if !numeric || constrained {
            return None;
        }
        let Expr::Binary {
            op: op @ (BinOp::Add | BinOp::Sub),
            left,
            right,
            ty,
        } = e
        else {
            return None;
        };
        if !matches!(left.as_ref(), Expr::Column(c) if c == i)
            || !right.is_row_independent()
            || right.has_subquery()
            || !ty.is_numeric()
        {
            return None;
        }
        items.push((*i, *op, right.as_ref().clone(), *ty));
    }
    Some(IncrementPlan { items })
}

/// The delta of one incremented row: the operands evaluated at the statement, applied to
/// whatever version of the row is newest when it is applied (see `gnomon_mvcc::RowDelta`).
#[derive(Debug)]
struct SqlDelta {
    table: Arc<TableDef>,
    items: Vec<(usize, BinOp, Value, DataType)>,
}

impl gnomon_mvcc::RowDelta for SqlDelta {
    fn apply(&self, row: &Bytes) -> Result<Bytes, String> {
        match self.apply_in_place(row) {
            Ok(Some(patched)) => Ok(patched),
            Ok(None) => self.apply_decoded(row),
            Err(e) => Err(e.message),
        }
    }
}

impl SqlDelta {
    /// The common case without decoding the row: each target column's value is read, changed
    /// and written back in place, when the row has the table's width and the new value
    /// encodes to as many bytes as the old one (same type, fixed width: the counters of hot
    /// rows). The bytes are those `apply_decoded` would write. `None`: not this case.
    /// NB: a delta is applied at its UPDATE (the range check), when observed and at COMMIT,
    /// and a full decode + encode of a pgbench_accounts row was ~1.3K instructions.
    fn apply_in_place(&self, row: &Bytes) -> SqlResult<Option<Bytes>> {
        let width = self.table.columns.len();
        let mut out: Option<Vec<u8>> = None;
        let mut encoded = Vec::with_capacity(17);
        for (col, op, v, ty) in &self.items {
            let current: &[u8] = out.as_deref().unwrap_or(row);
            let Some(span) = crate::encoding::column_span(current, *col, width)? else {
                return Ok(None);
            };
            // An int4 / int8 counter changed by a value of its own type: stepped in its bytes
            // (no Value, no expression evaluation), unless the result would overflow.
            if let Some((delta, wide)) = integer_delta(*op, v, ty, &self.table.columns[*col].ty) {
                let bytes = out.get_or_insert_with(|| row.to_vec());
                if crate::encoding::add_to_integer_in_place(&mut bytes[span.clone()], delta, wide) {
                    continue;
                }
            }
            let current: &[u8] = out.as_deref().unwrap_or(row);
            let old = crate::encoding::decode_tagged_value(&current[span.clone()])?;
            let new = crate::expr::binary(*op, old, v.clone(), ty)
                .and_then(|x| store_value(&self.table, *col, x))?;
            encoded.clear();
            crate::encoding::encode_value(&new, &mut encoded);
            if encoded.len() != span.len() {
                return Ok(None);
            }
            out.get_or_insert_with(|| row.to_vec())[span].copy_from_slice(&encoded);
        }
        Ok(Some(match out {
            Some(bytes) => Bytes::from(bytes),
            None => row.clone(),
        }))
    }

    /// Decodes the whole row, changes the target columns, encodes it again.
    fn apply_decoded(&self, row: &Bytes) -> Result<Bytes, String> {
        let mut values = decode_table_row(&self.table, row).map_err(|e| e.message)?;
        for (col, op, v, ty) in &self.items {
            let Some(old) = values.get(*col) else {
                return Err(format!("row of \"{}\" is too short", self.table.name));
            };
            let new = crate::expr::binary(*op, old.clone(), v.clone(), ty)
                .and_then(|x| store_value(&self.table, *col, x))
                .map_err(|e| e.message)?;
            values[*col] = new;
        }
        Ok(Bytes::from(encode_row(&values)))
    }
}

/// The signed amount `column op v` adds when the operation, the operand and the column all have
/// the same integer type (int4 or int8), and whether it is int8; None otherwise (another type,
/// or a negation that overflows): the general path then evaluates the expression.
fn integer_delta(op: BinOp, v: &Value, ty: &DataType, column: &DataType) -> Option<(i64, bool)> {
    let (amount, wide) = match (v, ty, column) {
        (Value::Int4(d), DataType::Int4, DataType::Int4) => (i64::from(*d), false),
        (Value::Int8(d), DataType::Int8, DataType::Int8) => (*d, true),
        _ => return None,
    };
    match op {
        BinOp::Add => Some((amount, wide)),
        BinOp::Sub => amount.checked_neg().map(|d| (d, wide)),
        _ => None,
    }
}

/// Runs an UPDATE with an [`IncrementPlan`]: evaluates the operands and increments the row
/// at the key (`Txn::increment_by_key` finds it at the statement's snapshot). `None` when the transaction
/// cannot increment here (not READ COMMITTED, a NULL operand, a row it already wrote): the
/// caller runs the ordinary UPDATE, nothing having been done yet.
fn run_increment(
    ctx: &mut ExecContext<'_>,
    table: &Arc<TableDef>,
    access: &Access,
    plan: &IncrementPlan,
) -> SqlResult<Option<Outcome>> {
    let mut items = Vec::with_capacity(plan.items.len());
    for (col, op, e, ty) in &plan.items {
        let v = ctx.eval(e, &[])?;
        if v.is_null() {
            return Ok(None);
        }
        items.push((*col, *op, v, *ty));
    }
    let delta: Arc<dyn gnomon_mvcc::RowDelta> = Arc::new(SqlDelta {
        table: table.clone(),
        items,
    });
    // `increment_plan` admits point access only.
    let Access::Point(exprs) = access else {
        return Ok(None);
    };
    let rd = ctx.reader();
    rd.count(|s| s.point_gets += 1);
    let Some(key) = point_key(rd.env(), table, exprs)? else {
        return Ok(Some(dml_outcome(count_tag("UPDATE ", 0), &None, vec![])));
    };
    ctx.interrupt.check()?;
    // The row is looked up by the increment itself (at the statement's snapshot, and its
    // newest version under the lock: one engine read when nobody changed it since).
    let n = match ctx.txn.increment(&key, delta)? {
        gnomon_mvcc::IncrementOutcome::Recorded => 1,
        gnomon_mvcc::IncrementOutcome::Absent => 0,
        gnomon_mvcc::IncrementOutcome::NotEligible => return Ok(None),
    };
    ctx.reader().count(|s| s.rows_read += n);
    Ok(Some(dml_outcome(count_tag("UPDATE ", n), &None, vec![])))
}

/// True for a plan that reads no row the transaction may have incremented: an UPDATE that
/// increments, an INSERT of VALUES without subqueries, ON CONFLICT or RETURNING. Any other
/// statement first observes the transaction's pending increments (coarse: all of them).
fn reads_no_increment(plan: &Plan) -> bool {
    match plan {
        Plan::Update { increment, .. } => increment.is_some(),
        Plan::Insert {
            source: InsertSource::Values(rows),
            on_conflict: None,
            returning: None,
            ..
        } => rows.iter().flatten().flatten().all(|e| !e.has_subquery()),
        _ => false,
    }
}

/// Equalities on a prefix of `key` plus bounds on the next key column, from `preds`
/// (column, operator, constant) with the column on the left.
type KeyPath = (Vec<Expr>, Option<(Expr, bool)>, Option<(Expr, bool)>);

fn key_path(
    key: &[usize],
    preds: &[(usize, BinOp, Expr)],
    usable: &dyn Fn(usize, &Expr) -> bool,
) -> KeyPath {
    let mut prefix = Vec::new();
    for &col in key {
        match preds
            .iter()
            .find(|(c, op, e)| *c == col && *op == BinOp::Eq && usable(col, e))
        {
            Some((_, _, e)) => prefix.push(e.clone()),
            None => break,
        }
    }
    let mut lower = None;
    let mut upper = None;
    if let Some(&next) = key.get(prefix.len()) {
        for (c, op, e) in preds {
            if *c != next || !usable(next, e) {
                continue;
            }
            match op {
                BinOp::Gt if lower.is_none() => lower = Some((e.clone(), false)),
                BinOp::GtEq if lower.is_none() => lower = Some((e.clone(), true)),
                BinOp::Lt if upper.is_none() => upper = Some((e.clone(), false)),
                BinOp::LtEq if upper.is_none() => upper = Some((e.clone(), true)),
                _ => {}
            }
        }
    }
    (prefix, lower, upper)
}

/// The primary-key access path that `preds` (column, operator, value expression; each
/// already known to seek that column correctly) allow: a point read when every key column
/// has an equality, a range when a key prefix does (plus bounds on the next column), else a
/// full scan. Joins call it with values read from the other side's row; secondary indexes
/// for joins would be chosen here too.
pub(crate) fn pk_access(def: &TableDef, preds: &[(usize, BinOp, Expr)]) -> Access {
    if def.has_rowid() {
        return Access::Full;
    }
    let pk = key_path(&def.primary_key, preds, &|_, _| true);
    if pk.0.len() == def.primary_key.len() {
        return Access::Point(pk.0);
    }
    if key_path_score(&pk) == 0 {
        return Access::Full;
    }
    Access::Range {
        prefix: pk.0,
        lower: pk.1,
        upper: pk.2,
    }
}

/// How selective a key path looks: equalities count most, a bound a little.
fn key_path_score(p: &KeyPath) -> usize {
    p.0.len() * 4 + p.1.is_some() as usize + p.2.is_some() as usize
}

impl Access {
    /// The access path with its key expressions evaluated on `row` (an index lookup's
    /// outer row), so it can be read like a constant one.
    pub(crate) fn with_row(&self, env: Env<'_>, row: &[Value]) -> SqlResult<Access> {
        let fix = |e: &Expr| -> SqlResult<Expr> { Ok(Expr::Const(env.eval(e, row)?)) };
        Ok(match self {
            Access::Full => Access::Full,
            Access::Point(exprs) => Access::Point(exprs.iter().map(fix).collect::<SqlResult<_>>()?),
            Access::Range {
                prefix,
                lower,
                upper,
            } => Access::Range {
                prefix: prefix.iter().map(fix).collect::<SqlResult<_>>()?,
                lower: match lower {
                    Some((e, inc)) => Some((fix(e)?, *inc)),
                    None => None,
                },
                upper: match upper {
                    Some((e, inc)) => Some((fix(e)?, *inc)),
                    None => None,
                },
            },
            Access::Index {
                index,
                prefix,
                lower,
                upper,
            } => Access::Index {
                index: *index,
                prefix: prefix.iter().map(fix).collect::<SqlResult<_>>()?,
                lower: match lower {
                    Some((e, inc)) => Some((fix(e)?, *inc)),
                    None => None,
                },
                upper: match upper {
                    Some((e, inc)) => Some((fix(e)?, *inc)),
                    None => None,
                },
            },
        })
    }
}

/// Picks the access path for a table from the conjuncts of its WHERE clause: a point read
/// when every primary-key column is fixed, else the primary key or secondary index whose
/// key the conjuncts narrow most (ties go to the primary key: no second lookup).
pub(crate) fn choose_access(def: &TableDef, filter: Option<&Expr>) -> Access {
    let Some(filter) = filter else {
        return Access::Full;
    };
    if def.has_rowid() && def.indexes.is_empty() {
        return Access::Full;
    }
    let mut conjuncts = Vec::new();
    split_conjuncts(filter, &mut conjuncts);
    // (column, op, constant) with the column on the left.
    let mut preds: Vec<(usize, BinOp, Expr)> = Vec::new();
    for c in conjuncts {
        if let Expr::Binary {
            op, left, right, ..
        } = c
        {
            let flipped = match op {
                BinOp::Lt => BinOp::Gt,
                BinOp::LtEq => BinOp::GtEq,
                BinOp::Gt => BinOp::Lt,
                BinOp::GtEq => BinOp::LtEq,
                other => *other,
            };
            match (left.as_ref(), right.as_ref()) {
                (Expr::Column(i), r) if r.is_row_independent() => preds.push((*i, *op, r.clone())),
                (l, Expr::Column(i)) if l.is_row_independent() => {
                    preds.push((*i, flipped, l.clone()))
                }
                _ => {}
            }
        }
    }
    let usable = |col: usize, e: &Expr| {
        let ty = &def.columns[col].ty;
        const_type(e, ty).is_some_and(|ct| seekable(ty, &ct))
    };
    let pk = key_path(&def.primary_key, &preds, &usable);
    if !def.primary_key.is_empty() && pk.0.len() == def.primary_key.len() {
        return Access::Point(pk.0);
    }
    let mut best: Option<(usize, KeyPath)> = None;
    for (i, ix) in def.indexes.iter().enumerate() {
        let p = key_path(&ix.columns, &preds, &usable);
        let better = match &best {
            Some((_, b)) => key_path_score(&p) > key_path_score(b),
            None => true,
        };
        if key_path_score(&p) > 0 && better {
            best = Some((i, p));
        }
    }
    match best {
        Some((index, p)) if key_path_score(&p) > key_path_score(&pk) => Access::Index {
            index,
            prefix: p.0,
            lower: p.1,
            upper: p.2,
        },
        _ if key_path_score(&pk) == 0 => Access::Full,
        _ => Access::Range {
            prefix: pk.0,
            lower: pk.1,
            upper: pk.2,
        },
    }
}

// ---------------------------------------------------------------------------------------
// Execution.

/// Counters of what execution read, for tests and EXPLAIN-like checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecStats {
    /// Rows decoded from storage.
    pub rows_read: u64,
    /// Point reads (`Transaction::get`) of rows.
    pub point_gets: u64,
    /// Range scans of part of a table.
    pub range_scans: u64,
    /// Scans of a whole table.
    pub full_scans: u64,
    /// Statements bound for execution (names resolved, types assigned). Executing a prepared
    /// statement whose cached plan is still valid binds nothing.
    pub plans_bound: u64,
}

/// Everything execution needs.
pub(crate) struct ExecContext<'a> {
    pub txn: &'a mut dyn Transaction,
    pub catalog: &'a Catalog,
    pub params: &'a [Value],
    pub interrupt: &'a Interrupt,
    pub stats: &'a mut ExecStats,
    /// What `now()` and friends return.
    pub times: StatementTimes,
    /// Sequence values and this session's `currval`s.
    pub sequences: &'a crate::sequence::SessionSequences,
}

impl ExecContext<'_> {
    /// Evaluates an expression of a write statement (a subquery in it reads through the
    /// same transaction; its read counters are not kept).
    pub(crate) fn eval(&self, e: &Expr, row: &[Value]) -> SqlResult<Value> {
        // A column or a constant needs no evaluation context (MERGE's keys, SET c = s.c).
        match e {
            Expr::Column(i) if *i < row.len() => return Ok(row[*i].clone()),
            Expr::Const(v) => return Ok(v.clone()),
            _ => {}
        }
        let stats = std::cell::Cell::new(ExecStats::default());
        let reader = Reader::new(
            &*self.txn,
            self.params,
            self.interrupt,
            self.times,
            &stats,
            Some(self.sequences),
        );
        reader.env().eval(e, row)
    }

    /// A reader over this statement's transaction that counts into its stats.
    pub(crate) fn reader(&mut self) -> Reader<'_> {
        Reader::new(
            &*self.txn,
            self.params,
            self.interrupt,
            self.times,
            std::cell::Cell::from_mut(&mut *self.stats),
            Some(self.sequences),
        )
    }

    /// Stores a new, complete, checked row of `table` and its index entries; returns its key.
    /// A hidden-rowid table gets a fresh row id (unique in this process and above every stored
    /// one, so no other transaction can write the key: no row lock needed). A primary-key table
    /// locks the key first: a concurrent inserter of the same key is waited for, and its
    /// committed row is seen (23505) instead of being overwritten.
    pub(crate) fn insert_row(&mut self, table: &TableDef, full: &[Value]) -> SqlResult<Vec<u8>> {
        let key = if table.has_rowid() {
            let id = self.catalog.next_rowid(&*self.txn, table)?;
            let key = table.rowid_key(id);
            self.txn.put_new(&key, Bytes::from(encode_row(full)))?;
            key
        } else {
            let key = table.row_key(full);
            if self.txn.get_for_update(&key)?.is_some() {
                return Err(duplicate_key(table, full));
            }
            self.txn.put(&key, Bytes::from(encode_row(full)))?;
            key
        };
        crate::index::insert_entries(self.txn, table, &key, full)?;
        if !table.foreign_keys.is_empty() {
            crate::foreign_key::after_insert(self, table, full)?;
        }
        Ok(key)
    }

    /// Computes the generated columns of `row` (GENERATED ALWAYS AS (expr) STORED) from its
    /// other columns; every path that writes a new or changed row calls it before placing
    /// and checking the row.
    pub(crate) fn fill_generated(&self, table: &TableDef, row: &mut [Value]) -> SqlResult<()> {
        if !table.columns.iter().any(|c| c.generated.is_some()) {
            return Ok(());
        }
        let bound = self
            .catalog
            .bound_checks(table, || bind_checks(self.catalog, &*self.txn, table))?;
        let mut exprs = bound.get(table.checks.len()..).unwrap_or_default().iter();
        for (i, c) in table.columns.iter().enumerate() {
            if c.generated.is_none() {
                continue;
            }
            let e = exprs
                .next()
                .ok_or_else(|| SqlError::internal("generated column expression missing"))?;
            let v = store_value(table, i, self.eval(e, row)?)?;
            if v.is_null() && c.not_null {
                return Err(not_null_violation(table, i));
            }
            row[i] = v;
        }
        Ok(())
    }

    /// Fails with 23514 if `row` violates a CHECK constraint of `table`.
    pub(crate) fn check_row(&self, table: &TableDef, row: &[Value]) -> SqlResult<()> {
        if table.checks.is_empty() {
            return Ok(());
        }
        let checks = self
            .catalog
            .bound_checks(table, || bind_checks(self.catalog, &*self.txn, table))?;
        crate::index::check_row(table, &checks, row, &|e, r| self.eval(e, r))
    }
}

/// Binds the CHECK constraints of `table` against its columns, then its generated columns'
/// expressions. They depend on nothing but the row, so they are bound once per definition
/// and shared by every session.
pub(crate) fn bind_checks(
    catalog: &Catalog,
    txn: &dyn Transaction,
    table: &TableDef,
) -> SqlResult<Vec<Expr>> {
    let info = SessionInfo {
        user: String::new(),
        database: String::new(),
    };
    let mut binder = Binder::new(catalog, txn, &info, vec![]);
    let mut out = table
        .checks
        .iter()
        .map(|c| binder.bind_table_expr(&c.expr, table))
        .collect::<SqlResult<Vec<_>>>()?;
    // After the CHECKs: the generated columns' expressions, in column order.
    for (i, c) in table.columns.iter().enumerate() {
        if let Some(g) = &c.generated {
            out.push(binder.bind_generated(g, table, i)?);
        }
    }
    Ok(out)
}

/// The row key of the primary key `exprs` of `def` (an [`Access::Point`]); `None` if no row
/// can have it (a NULL, or a value that is not one of the column's type).
fn point_key(ctx: Env<'_>, def: &TableDef, exprs: &[Expr]) -> SqlResult<Option<Vec<u8>>> {
    let mut key = Vec::with_capacity(32);
    append_rows_prefix(def.id, &mut key);
    for (e, &col) in exprs.iter().zip(&def.primary_key) {
        let v = ctx.eval(e, &[])?;
        if v.is_null() {
            return Ok(None);
        }
        match cast(v, &def.columns[col].ty, false) {
            Ok(v) => encode_key_value(&v, &mut key),
            // A key value of another type that cannot be one of the column's: no such row.
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(key))
}

/// The stored row at the primary key `exprs` of `def` (an [`Access::Point`]), with its key.
pub(crate) fn read_point(
    ctx: Env<'_>,
    def: &TableDef,
    exprs: &[Expr],
) -> SqlResult<Option<(Vec<u8>, Bytes)>> {
    ctx.rd.count(|s| s.point_gets += 1);
    let Some(key) = point_key(ctx, def, exprs)? else {
        return Ok(None);
    };
    let found = ctx.rd.txn.get(&key)?;
    if found.is_some() {
        ctx.rd.count(|s| s.rows_read += 1);
    }
    Ok(found.map(|v| (key, v)))
}

/// The stored (undecoded) rows selected by `access` (before the residual filter), with their
/// keys. SELECT decodes the columns it needs; UPDATE and DELETE use only the keys: they lock
/// each row and decode its current version.
pub(crate) fn read_raw(
    ctx: Env<'_>,
    def: &TableDef,
    access: &Access,
) -> SqlResult<Vec<(Vec<u8>, Bytes)>> {
    let decode = |ctx: Env<'_>, pairs: Vec<(Vec<u8>, Bytes)>| -> SqlResult<Vec<(Vec<u8>, Bytes)>> {
        ctx.rd.count(|s| s.rows_read += pairs.len() as u64);
        Ok(pairs)
    };
    match access {
        Access::Full if def.id == PG_LOCKS_ID => crate::locking::pg_locks_rows(def, ctx.rd.txn),
        Access::Full => {
            ctx.rd.count(|s| s.full_scans += 1);
            let pairs = ctx
                .rd
                .txn
                .scan(KeyPrefix::Rows(def.id).range(), false, None)?;
            decode(ctx, pairs)
        }
        Access::Point(exprs) => Ok(read_point(ctx, def, exprs)?.into_iter().collect()),
        Access::Range {
            prefix,
            lower,
            upper,
        } => {
            ctx.rd.count(|s| s.range_scans += 1);
            let mut base = Vec::with_capacity(32);
            append_rows_prefix(def.id, &mut base);
            let Some(range) = key_range(ctx, def, base, &def.primary_key, prefix, lower, upper)?
            else {
                return Ok(vec![]);
            };
            let pairs = ctx.rd.txn.scan(range, false, None)?;
            decode(ctx, pairs)
        }
        Access::Index {
            index,
            prefix,
            lower,
            upper,
        } => {
            ctx.rd.count(|s| s.range_scans += 1);
            let ix = &def.indexes[*index];
            let base = KeyPrefix::Index(def.id, ix.id).encode();
            let Some(range) = key_range(ctx, def, base, &ix.columns, prefix, lower, upper)? else {
                return Ok(vec![]);
            };
            let entries = ctx.rd.txn.scan(range, false, None)?;
            let mut pairs = Vec::with_capacity(entries.len());
            for (_, row_key) in entries {
                // The entry and its row are versions of one transaction: the row is there.
                if let Some(row) = ctx.rd.txn.get(&row_key)? {
                    pairs.push((row_key.to_vec(), row));
                }
            }
            decode(ctx, pairs)
        }
    }
}

/// The key range of a [`KeyPath`] over key columns `key` under `base` (the rows prefix or an
/// index prefix); None when a key value is NULL or cannot be of the column's type (no rows).
fn key_range(
    ctx: Env<'_>,
    def: &TableDef,
    mut base: Vec<u8>,
    key: &[usize],
    prefix: &[Expr],
    lower: &Option<(Expr, bool)>,
    upper: &Option<(Expr, bool)>,
) -> SqlResult<Option<crate::storage::KeyRange>> {
    let key_value = |e: &Expr, col: usize| -> SqlResult<Option<Value>> {
        let v = ctx.eval(e, &[])?;
        if v.is_null() {
            return Ok(None);
        }
        Ok(cast(v, &def.columns[col].ty, false).ok())
    };
    for (e, &col) in prefix.iter().zip(key) {
        match key_value(e, col)? {
            Some(v) => encode_key_value(&v, &mut base),
            None => return Ok(None),
        }
    }
    let (mut start, mut end) = prefix_range(&base);
    let Some(&col) = key.get(prefix.len()) else {
        return Ok(Some((start, end)));
    };
    if let Some((e, inclusive)) = lower {
        let Some(v) = key_value(e, col)? else {
            return Ok(None);
        };
        let mut k = base.clone();
        encode_key_value(&v, &mut k);
        start = if *inclusive {
            Bound::Included(k)
        } else {
            match prefix_successor(&k) {
                Some(s) => Bound::Included(s),
                None => return Ok(None),
            }
        };
    }
    if let Some((e, inclusive)) = upper {
        let Some(v) = key_value(e, col)? else {
            return Ok(None);
        };
        let mut k = base.clone();
        encode_key_value(&v, &mut k);
        end = if *inclusive {
            match prefix_successor(&k) {
                Some(s) => Bound::Excluded(s),
                None => end,
            }
        } else {
            Bound::Excluded(k)
        };
    }
    Ok(Some((start, end)))
}

/// Runs a SELECT and returns its (visible) rows.
pub(crate) fn run_select(
    ctx: &mut ExecContext<'_>,
    plan: &SelectPlan,
) -> SqlResult<Vec<Vec<Value>>> {
    if let (Some(spec), Source::Table { def, access }) = (plan.lock, &plan.source) {
        if plan.needed.get(def.columns.len()) == Some(&true) {
            return Err(SqlError::unsupported(
                "gnomon_mvcc_timestamp with FOR UPDATE/FOR SHARE",
            ));
        }
        return run_select_locked(ctx, plan, def, access, spec);
    }
    if plan.lock.is_some() && matches!(plan.source, Source::Append(_)) {
        return Err(SqlError::unsupported(
            "SELECT ... FOR UPDATE/SHARE of a partitioned table",
        ));
    }
    let reader = ctx.reader();
    crate::exec::select_rows(reader.env(), plan)
}

fn passes(ctx: &ExecContext<'_>, filter: Option<&Expr>, row: &[Value]) -> SqlResult<bool> {
    match filter {
        None => Ok(true),
        Some(f) => Ok(truth(&ctx.eval(f, row)?) == Some(true)),
    }
}

/// The ORDER BY comparison of two projected rows.
fn order_rows(order: &[SortKey], a: &[Value], b: &[Value]) -> std::cmp::Ordering {
    for k in order {
        let (x, y) = (&a[k.index], &b[k.index]);
        let o = match (x.is_null(), y.is_null()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => {
                if k.nulls_first {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                }
            }
            (false, true) => {
                if k.nulls_first {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Less
                }
            }
            _ => {
                let o = crate::types::compare_values(x, y).unwrap_or(std::cmp::Ordering::Equal);
                if k.desc {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

/// `SELECT ... FOR <row mode>` over a table, as PostgreSQL's LockRows node: rows that pass the
/// filter are sorted, then locked one by one in output order until LIMIT rows (after OFFSET)
/// are locked. A row that changed while we waited for its lock is judged again in its current
/// version (READ COMMITTED; REPEATABLE READ fails with 40001 instead), a deleted one is
/// dropped, and SKIP LOCKED drops rows another transaction holds.
fn run_select_locked(
    ctx: &mut ExecContext<'_>,
    plan: &SelectPlan,
    def: &TableDef,
    access: &Access,
    spec: RowLockSpec,
) -> SqlResult<Vec<Vec<Value>>> {
    let pairs: Vec<(Vec<u8>, Bytes)> = {
        let reader = ctx.reader();
        let env = reader.env();
        match access {
            Access::Point(exprs) => read_point(env, def, exprs)?.into_iter().collect(),
            other => read_raw(env, def, other)?,
        }
    };
    // Judges a stored row: Some(projected row) if it passes the filter.
    let judge = |ctx: &mut ExecContext<'_>, bytes: &Bytes| -> SqlResult<Option<Vec<Value>>> {
        let r = crate::catalog::decode_table_columns(def, bytes, &plan.needed)?;
        let reader = ctx.reader();
        let env = reader.env();
        if let Some(f) = &plan.filter {
            if truth(&env.eval(f, &r)?) != Some(true) {
                return Ok(None);
            }
        }
        plan.project
            .iter()
            .map(|e| env.eval(e, &r))
            .collect::<SqlResult<Vec<_>>>()
            .map(Some)
    };
    let mut candidates = Vec::with_capacity(pairs.len());
    for (key, bytes) in pairs {
        ctx.interrupt.check()?;
        if let Some(row) = judge(ctx, &bytes)? {
            candidates.push((row, key, bytes));
        }
    }
    if !plan.order.is_empty() {
        candidates.sort_by(|a, b| order_rows(&plan.order, &a.0, &b.0));
    }
    let (offset, limit) = {
        let reader = ctx.reader();
        let env = reader.env();
        (
            crate::exec::count_arg(env, plan.offset.as_ref(), "OFFSET")?.unwrap_or(0) as usize,
            crate::exec::count_arg(env, plan.limit.as_ref(), "LIMIT")?.map(|l| l as usize),
        )
    };
    let mut out = Vec::new();
    let mut locked = 0usize;
    for (mut row, key, bytes) in candidates {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        ctx.interrupt.check()?;
        let got = ctx
            .txn
            .lock_row(&key, spec.mode, spec.wait)
            .map_err(|e| lock_error(e, &def.name))?;
        if got == RowLocked::Skipped {
            continue;
        }
        match ctx.txn.read_locked(&key)? {
            None => continue,
            Some(now) if now != bytes => match judge(ctx, &now)? {
                Some(r) => row = r,
                None => continue,
            },
            Some(_) => {}
        }
        locked += 1;
        if locked > offset {
            row.truncate(plan.visible);
            out.push(row);
        }
    }
    Ok(out)
}

/// Takes the table locks a plan needs before it reads or writes (see `locking`).
fn lock_plan_tables(ctx: &mut ExecContext<'_>, plan: &Plan) -> SqlResult<()> {
    let lock = |ctx: &mut ExecContext<'_>, def: &TableDef, mode: TableMode| {
        if def.id == PG_LOCKS_ID {
            return Ok(());
        }
        ctx.txn
            .lock_table(RelId(def.id.0), mode, LockWait::Block)
            .map(|_| ())
            .map_err(|e| lock_error(e, &def.name))
    };
    let read_source = |s: &SelectPlan| {
        let mode = if s.lock.is_some() {
            TableMode::RowShare
        } else {
            TableMode::AccessShare
        };
        match &s.source {
            Source::Table { def, .. } => vec![(def.clone(), mode)],
            // A partitioned table and the partitions read (as PostgreSQL locks them).
            Source::Append(a) => std::iter::once(a.parent.clone())
                .chain(
                    a.parts
                        .iter()
                        .filter_map(crate::partition::part_def)
                        .cloned(),
                )
                .map(|d| (d, mode))
                .collect(),
            _ => vec![],
        }
    };
    let (target, source) = match plan {
        Plan::Select(s) => (None, read_source(s)),
        Plan::Insert { table, source, .. } => (
            Some(table),
            match source {
                InsertSource::Query(q) => read_source(q),
                InsertSource::Values(_) => vec![],
            },
        ),
        Plan::Update { table, .. } | Plan::Delete { table, .. } => (Some(table), vec![]),
        // NB: MERGE's source table (when it is one) is read without a table lock.
        // A partitioned target's partitions are locked by execute_merge.
        Plan::Merge(m) => (Some(&m.target), vec![]),
    };
    if let Some(t) = target {
        if t.id == PG_LOCKS_ID {
            return Err(SqlError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                "cannot change view \"pg_locks\"",
            ));
        }
        lock(ctx, t, TableMode::RowExclusive)?;
    }
    for (def, mode) in source {
        lock(ctx, &def, mode)?;
    }
    Ok(())
}

/// Converts a value for storing into column `col` of `def` (typmods, NOT NULL).
pub(crate) fn store_value(def: &TableDef, col: usize, v: Value) -> SqlResult<Value> {
    let c = &def.columns[col];
    if v.is_null() {
        // A generated column's value is computed later (`fill_generated`), and checked there.
        if c.not_null && c.generated.is_none() {
            return Err(not_null_violation(def, col));
        }
        return Ok(v);
    }
    // Already of the column's exact type (no typmod to apply). NB: an array's element type
    // may carry the column's modifier without its elements having been checked against it.
    if v.data_type() == c.ty && !matches!(v, Value::Array(_)) {
        return Ok(v);
    }
    cast(v, &c.ty, false)
}

/// For a row routed to partition `dest` of a partitioned table: 23502 naming the partition
/// for a NULL in a NOT NULL column, checked after routing as PostgreSQL does (a NULL
/// partition key with no partition for it is 23514 first).
pub(crate) fn check_routed_not_null(dest: &TableDef, row: &[Value]) -> SqlResult<()> {
    for (i, c) in dest.columns.iter().enumerate() {
        if c.not_null && c.generated.is_none() && row.get(i).is_some_and(Value::is_null) {
            return Err(not_null_violation(dest, i));
        }
    }
    Ok(())
}

/// 23502: NULL in NOT NULL column `col` of `def`.
fn not_null_violation(def: &TableDef, col: usize) -> SqlError {
    SqlError::new(
        SqlState::NOT_NULL_VIOLATION,
        format!(
            "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
            def.columns[col].name, def.name
        ),
    )
}

/// A command tag with a row count, e.g. `UPDATE 1` (without the formatting machinery: this
/// runs once per statement).
fn count_tag(prefix: &str, n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut m = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    let mut tag = String::with_capacity(prefix.len() + digits.len() - i);
    tag.push_str(prefix);
    tag.extend(digits[i..].iter().map(|&d| d as char));
    tag
}

/// Takes the write lock on a row found by a scan and returns its current version if it still
/// satisfies the WHERE clause (PostgreSQL's EvalPlanQual re-check): at READ COMMITTED a row
/// changed by a transaction that committed while we waited is judged as it is now (or skipped
/// if deleted); at REPEATABLE READ such a change is a serialization failure (40001). As in
/// PostgreSQL, the row is first judged as the statement's snapshot saw it (`seen`): a row that
/// did not match then is neither locked nor re-read (so a concurrent change cannot make it
/// match, nor fail a REPEATABLE READ statement that does not touch it).
fn lock_matching_row(
    ctx: &mut ExecContext<'_>,
    table: &TableDef,
    key: &[u8],
    seen: &Bytes,
    filter: Option<&Expr>,
) -> SqlResult<Option<Vec<Value>>> {
    let seen_row = match filter {
        Some(_) => {
            let row = decode_table_row(table, seen)?;
            if !passes(ctx, filter, &row)? {
                return Ok(None);
            }
            Some(row)
        }
        None => None,
    };
    let Some(bytes) = ctx.txn.get_for_update(key)? else {
        return Ok(None);
    };
    if let Some(row) = seen_row {
        if bytes == *seen {
            return Ok(Some(row));
        }
    }
    let row = decode_table_row(table, &bytes)?;
    Ok(passes(ctx, filter, &row)?.then_some(row))
}

fn key_detail(def: &TableDef, row: &[Value]) -> String {
    format!(
        "Key {} already exists.",
        crate::index::key_text(def, &def.primary_key, row)
    )
}

pub(crate) fn duplicate_key(def: &TableDef, row: &[Value]) -> SqlError {
    SqlError::new(
        SqlState::UNIQUE_VIOLATION,
        format!(
            "duplicate key value violates unique constraint \"{}\"",
            def.pkey_name()
        ),
    )
    .with_detail(key_detail(def, row))
}

fn returning_row(
    ctx: &ExecContext<'_>,
    r: &Option<Returning>,
    row: &[Value],
    out: &mut Vec<Vec<Value>>,
) -> SqlResult<()> {
    if let Some(r) = r {
        out.push(
            r.exprs
                .iter()
                .map(|e| ctx.eval(e, row))
                .collect::<SqlResult<Vec<_>>>()?,
        );
    }
    Ok(())
}

fn dml_outcome(tag: String, returning: &Option<Returning>, rows: Vec<Vec<Value>>) -> Outcome {
    match returning {
        Some(r) => Outcome::Rows {
            columns: r.columns.clone(),
            rows,
            tag,
        },
        None => Outcome::Command { tag },
    }
}

/// The tables an UPDATE or DELETE of `table` scans: the table itself, or the partitions of a
/// partitioned table that can hold rows passing `filter` (pruned with the statement's
/// parameters), each locked ROW EXCLUSIVE.
fn dml_targets(
    ctx: &mut ExecContext<'_>,
    table: &Arc<TableDef>,
    placement: &crate::partition::Placement,
    filter: Option<&Expr>,
) -> SqlResult<Vec<Arc<TableDef>>> {
    if !matches!(placement, crate::partition::Placement::Parent { .. }) {
        return Ok(vec![table.clone()]);
    }
    let parts = placement.parts();
    let conds = crate::plan::conjuncts(filter.cloned());
    let params = ctx.params;
    let keep = crate::partition::prune(table, parts, &conds, &|e| {
        crate::partition::runtime_value(e, params)
    });
    let mut out = Vec::new();
    for (p, k) in parts.iter().zip(keep) {
        if k {
            ctx.txn
                .lock_table(RelId(p.id.0), TableMode::RowExclusive, LockWait::Block)
                .map_err(|e| lock_error(e, &p.name))?;
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// The table rows of a parent's placement are placed from (the parent itself), else `table`.
fn table_arc_or<'a>(
    placement: &'a crate::partition::Placement,
    table: &'a Arc<TableDef>,
) -> &'a Arc<TableDef> {
    match placement {
        crate::partition::Placement::Parent { parent, .. } => parent,
        _ => table,
    }
}

/// Executes a plan.
/// One INSERT statement's state across its rows: the partition placement (looked up once),
/// the partitions locked so far, the rows an ON CONFLICT DO UPDATE touched, the RETURNING
/// rows and the count.
struct InsertRun {
    placement: crate::partition::Placement,
    locked_parts: Vec<u32>,
    affected: crate::upsert::Affected,
    out_rows: Vec<Vec<Value>>,
    n: u64,
}

impl InsertRun {
    /// Starts an INSERT of `rows` rows into `table` (bulk work past the escalation threshold
    /// takes the table lock instead of row locks).
    fn start(
        ctx: &mut ExecContext<'_>,
        table: &Arc<TableDef>,
        rows: usize,
    ) -> SqlResult<InsertRun> {
        if !table.has_rowid() {
            ctx.txn.bulk_write_hint(RelId(table.id.0), rows);
        }
        Ok(InsertRun {
            placement: crate::partition::Placement::of(ctx.catalog, &*ctx.txn, table)?,
            locked_parts: Vec::new(),
            affected: crate::upsert::Affected::default(),
            out_rows: Vec::new(),
            n: 0,
        })
    }

    /// Inserts one row placed into the table's columns (`None` = DEFAULT / not given).
    fn row(
        &mut self,
        ctx: &mut ExecContext<'_>,
        table: &Arc<TableDef>,
        defaults: &[Option<Expr>],
        on_conflict: &Option<Box<crate::upsert::OnConflict>>,
        returning: &Option<Returning>,
        row: Vec<Option<Value>>,
    ) -> SqlResult<()> {
        // A partitioned table's rows are routed before NOT NULL is checked (on the partition).
        let routed = matches!(self.placement, crate::partition::Placement::Parent { .. });
        let mut full = row
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let v = match v {
                    Some(v) => v,
                    None => match &defaults[i] {
                        Some(d) => ctx.eval(d, &[])?,
                        None => Value::Null,
                    },
                };
                if routed && v.is_null() {
                    return Ok(v);
                }
                store_value(table, i, v)
            })
            .collect::<SqlResult<Vec<Value>>>()?;
        ctx.fill_generated(table, &mut full)?;
        let placement = &self.placement;
        let table = placement.place(table, &full)?;
        if routed {
            check_routed_not_null(table, &full)?;
        }
        if !matches!(placement, crate::partition::Placement::Plain)
            && !self.locked_parts.contains(&table.id.0)
        {
            // The partition a row is routed to is locked like the table.
            ctx.txn
                .lock_table(RelId(table.id.0), TableMode::RowExclusive, LockWait::Block)
                .map_err(|e| lock_error(e, &table.name))?;
            self.locked_parts.push(table.id.0);
        }
        ctx.check_row(table, &full)?;
        if let Some(oc) = on_conflict {
            if let Some(existing) =
                crate::upsert::find_conflict(ctx.txn, table, &oc.arbiters, &full)?
            {
                if let crate::upsert::ConflictAction::Update { sets, filter } = &oc.action {
                    if let Some(row) = crate::upsert::update_existing(
                        ctx,
                        table,
                        sets,
                        filter.as_ref(),
                        existing,
                        &full,
                        &mut self.affected,
                    )? {
                        returning_row(ctx, returning, &row, &mut self.out_rows)?;
                        self.n += 1;
                    }
                }
                return Ok(());
            }
        }
        let key = ctx.insert_row(table, &full)?;
        if let Some(oc) = on_conflict {
            self.affected.record(oc, &key);
        }
        returning_row(ctx, returning, &full, &mut self.out_rows)?;
        self.n += 1;
        Ok(())
    }
}

/// Runs an INSERT plan whose source is one VALUES row once per row of `rows` (each row is
/// that VALUES row's parameters), as one statement: the tables are locked and the partition
/// placement looked up once for the whole batch, not per row. `COPY ... FROM STDIN` inserts
/// its batches of lines through this. Returns the rows inserted, or the index of the row
/// that failed with its error.
pub(crate) fn execute_insert_rows<'a>(
    ctx: &mut ExecContext<'a>,
    plan: &Plan,
    rows: &'a [Vec<Value>],
) -> Result<u64, (usize, SqlError)> {
    let Plan::Insert {
        table,
        targets,
        source: InsertSource::Values(values),
        defaults,
        returning,
        on_conflict,
    } = plan
    else {
        return Err((
            0,
            SqlError::internal("execute_insert_rows needs INSERT ... VALUES"),
        ));
    };
    let [exprs] = values.as_slice() else {
        return Err((
            0,
            SqlError::internal("execute_insert_rows needs one VALUES row"),
        ));
    };
    lock_plan_tables(ctx, plan).map_err(|e| (0, e))?;
    let mut run = InsertRun::start(ctx, table, rows.len()).map_err(|e| (0, e))?;
    let ncols = table.columns.len();
    for (i, params) in rows.iter().enumerate() {
        ctx.params = params.as_slice();
        let one = |ctx: &mut ExecContext<'a>, run: &mut InsertRun| {
            ctx.interrupt.check()?;
            let mut row: Vec<Option<Value>> = vec![None; ncols];
            for (j, e) in exprs.iter().enumerate() {
                row[targets[j]] = match e {
                    // A bare parameter (COPY's `$n`) needs no evaluation context.
                    Some(Expr::Param(k)) => match params.get(*k) {
                        Some(v) => Some(v.clone()),
                        None => Some(ctx.eval(&Expr::Param(*k), &[])?),
                    },
                    Some(e) => Some(ctx.eval(e, &[])?),
                    None => None,
                };
            }
            run.row(ctx, table, defaults, on_conflict, returning, row)
        };
        one(ctx, &mut run).map_err(|e| (i, e))?;
    }
    Ok(run.n)
}

pub(crate) fn execute(ctx: &mut ExecContext<'_>, plan: &Plan) -> SqlResult<Outcome> {
    if !reads_no_increment(plan) && ctx.txn.has_pending_increments() {
        ctx.txn.observe_increments()?;
    }
    lock_plan_tables(ctx, plan)?;
    match plan {
        Plan::Select(s) => {
            let rows = run_select(ctx, s)?;
            let tag = count_tag("SELECT ", rows.len() as u64);
            Ok(Outcome::Rows {
                columns: s.columns.clone(),
                rows,
                tag,
            })
        }
        Plan::Insert {
            table,
            targets,
            source,
            defaults,
            returning,
            on_conflict,
        } => {
            // Each input row is placed into the table's columns (None = DEFAULT / not given).
            let ncols = table.columns.len();
            let placed = |vals: Vec<Value>| {
                let mut row: Vec<Option<Value>> = vec![None; ncols];
                for (j, v) in vals.into_iter().enumerate() {
                    row[targets[j]] = Some(v);
                }
                row
            };
            let input: Vec<Vec<Option<Value>>> = match source {
                InsertSource::Values(rows) => {
                    let mut out = Vec::with_capacity(rows.len());
                    for r in rows {
                        let mut row: Vec<Option<Value>> = vec![None; ncols];
                        for (j, e) in r.iter().enumerate() {
                            if let Some(e) = e {
                                row[targets[j]] = Some(ctx.eval(e, &[])?);
                            }
                        }
                        out.push(row);
                    }
                    out
                }
                InsertSource::Query(q) => run_select(ctx, q)?.into_iter().map(placed).collect(),
            };
            let mut run = InsertRun::start(ctx, table, input.len())?;
            for row in input {
                ctx.interrupt.check()?;
                run.row(ctx, table, defaults, on_conflict, returning, row)?;
            }
            let InsertRun { n, out_rows, .. } = run;
            Ok(dml_outcome(count_tag("INSERT 0 ", n), returning, out_rows))
        }
        Plan::Update {
            table,
            access,
            filter,
            sets,
            returning,
            increment,
        } => {
            if let Some(inc) = increment {
                if let Some(outcome) = run_increment(ctx, table, access, inc)? {
                    return Ok(outcome);
                }
            }
            let placement = crate::partition::Placement::of(ctx.catalog, &*ctx.txn, table)?;
            // Every partition's rows are read before any is written, so a row moved to a
            // later partition is not updated again.
            let mut scans = Vec::new();
            for part in dml_targets(ctx, table, &placement, filter.as_ref())? {
                let rows = read_raw(ctx.reader().env(), &part, access)?;
                scans.push((part, rows));
            }
            let mut out_rows = Vec::new();
            let mut n = 0u64;
            let moves_key = sets.iter().any(|(i, _)| table.primary_key.contains(i));
            let has_fks = !table.foreign_keys.is_empty() || !table.referenced_by.is_empty();
            let mut pending = crate::foreign_key::Pending::default();
            let mut new_values = Vec::with_capacity(sets.len());
            for (table, rows) in &scans {
                for (key, seen) in rows {
                    let key = key.clone();
                    ctx.interrupt.check()?;
                    let Some(mut new_row) =
                        lock_matching_row(ctx, table, &key, seen, filter.as_ref())?
                    else {
                        continue;
                    };
                    let old_row = (!table.indexes.is_empty() || has_fks).then(|| new_row.clone());
                    // Every SET expression reads the old row.
                    new_values.clear();
                    for (i, e) in sets {
                        new_values.push(store_value(table, *i, ctx.eval(e, &new_row)?)?);
                    }
                    for ((i, _), v) in sets.iter().zip(new_values.drain(..)) {
                        new_row[*i] = v;
                    }
                    ctx.fill_generated(table, &mut new_row)?;
                    ctx.check_row(table, &new_row)?;
                    let dest = if matches!(placement, crate::partition::Placement::Plain) {
                        table
                    } else {
                        let parent = table_arc_or(&placement, table);
                        placement.place(parent, &new_row)?
                    };
                    if dest.id != table.id {
                        // The key moved the row to another partition: delete and insert, as
                        // PostgreSQL does (the old row is locked FOR UPDATE).
                        ctx.txn
                            .lock_row(&key, RowMode::Update, LockWait::Block)
                            .map_err(|e| lock_error(e, &table.name))?;
                        ctx.txn
                            .lock_table(RelId(dest.id.0), TableMode::RowExclusive, LockWait::Block)
                            .map_err(|e| lock_error(e, &dest.name))?;
                        let old = match &old_row {
                            Some(r) => r.clone(),
                            None => decode_table_row(table, seen)?,
                        };
                        ctx.txn.delete(&key)?;
                        crate::index::delete_entries(ctx.txn, table, &key, &old)?;
                        ctx.insert_row(dest, &new_row)?;
                        returning_row(ctx, returning, &new_row, &mut out_rows)?;
                        n += 1;
                        continue;
                    }
                    let new_key = if moves_key {
                        table.row_key(&new_row)
                    } else {
                        key.clone()
                    };
                    if new_key != key {
                        // Changing a key column: the old row is locked FOR UPDATE, as in PostgreSQL.
                        ctx.txn
                            .lock_row(&key, RowMode::Update, LockWait::Block)
                            .map_err(|e| lock_error(e, &table.name))?;
                        if ctx.txn.get_for_update(&new_key)?.is_some() {
                            return Err(duplicate_key(table, &new_row));
                        }
                        ctx.txn.delete(&key)?;
                    }
                    ctx.txn.put(&new_key, Bytes::from(encode_row(&new_row)))?;
                    if let Some(old_row) = &old_row {
                        crate::index::update_entries(
                            ctx.txn, table, &key, old_row, &new_key, &new_row,
                        )?;
                        if has_fks {
                            crate::foreign_key::key_update_lock(
                                ctx, table, &key, old_row, &new_row,
                            )?;
                            crate::foreign_key::after_update(
                                ctx,
                                table,
                                old_row,
                                &new_row,
                                &mut pending,
                            )?;
                        }
                    }
                    returning_row(ctx, returning, &new_row, &mut out_rows)?;
                    n += 1;
                }
            }
            pending.finish(ctx)?;
            Ok(dml_outcome(count_tag("UPDATE ", n), returning, out_rows))
        }
        Plan::Delete {
            table,
            access,
            filter,
            returning,
        } => {
            let placement = crate::partition::Placement::of(ctx.catalog, &*ctx.txn, table)?;
            let mut rows = Vec::new();
            for part in dml_targets(ctx, table, &placement, filter.as_ref())? {
                for (key, seen) in read_raw(ctx.reader().env(), &part, access)? {
                    rows.push((part.clone(), key, seen));
                }
            }
            let mut out_rows = Vec::new();
            let mut n = 0u64;
            let mut pending = crate::foreign_key::Pending::default();
            for (table, key, seen) in rows {
                let table = &table;
                ctx.interrupt.check()?;
                // DELETE locks FOR UPDATE (the write itself would too; first, so the re-read
                // below happens under the strongest lock).
                ctx.txn
                    .lock_row(&key, RowMode::Update, LockWait::Block)
                    .map_err(|e| lock_error(e, &table.name))?;
                let Some(row) = lock_matching_row(ctx, table, &key, &seen, filter.as_ref())? else {
                    continue;
                };
                ctx.txn.delete(&key)?;
                crate::index::delete_entries(ctx.txn, table, &key, &row)?;
                crate::foreign_key::after_delete(ctx, table, &row, &mut pending)?;
                returning_row(ctx, returning, &row, &mut out_rows)?;
                n += 1;
            }
            pending.finish(ctx)?;
            Ok(dml_outcome(count_tag("DELETE ", n), returning, out_rows))
        }
        Plan::Merge(m) => merge::execute_merge(ctx, m),
    }
}
