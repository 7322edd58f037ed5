//! Bound (typed) expressions and their evaluation: PostgreSQL arithmetic, comparisons with
//! three-valued logic, casts, LIKE.

use std::cmp::Ordering;

use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::error::{SqlError, SqlResult, SqlState};
use crate::types::{
    as_decimal, as_f64, as_i64, compare_values, date_to_timestamp, parse_decimal,
    timestamp_to_date, DataType, Value, NUMERIC,
};

/// Binary operators after binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Concat,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// A bound expression. Column indexes refer to the row the expression is evaluated on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Const(Value),
    Column(usize),
    Param(usize),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    /// Arithmetic/comparison carried out in `ty` (operands are cast to it first).
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
        ty: DataType,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    IsNull(Box<Expr>, bool),
    IsBool {
        expr: Box<Expr>,
        value: bool,
        negated: bool,
    },
    IsDistinct {
        left: Box<Expr>,
        right: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    /// `expr op ANY (ARRAY[...])` or, with `all`, `expr op ALL (ARRAY[...])`: each
    /// comparison is carried out in `ty`; the result is three-valued as for a subquery.
    QuantifiedList {
        expr: Box<Expr>,
        op: BinOp,
        ty: DataType,
        list: Vec<Expr>,
        all: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
        case_insensitive: bool,
    },
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Coalesce(Vec<Expr>),
    NullIf(Box<Expr>, Box<Expr>),
    Cast {
        expr: Box<Expr>,
        ty: DataType,
        explicit: bool,
    },
    Func(Func, Vec<Expr>),
    /// `now()` and friends, read from the [`EvalContext`] at execution (never folded into a
    /// constant at bind time, so a cached plan sees each transaction's own clock).
    Clock(Clock),
    /// `nextval` / `currval` / `setval` of a sequence resolved at bind time.
    Sequence {
        op: crate::sequence::SeqOp,
        seq: std::sync::Arc<crate::sequence::SequenceDef>,
        args: Vec<Expr>,
    },
    /// A column of an enclosing query's current row (a correlated reference): `depth` 1 is
    /// the query directly around the subquery this expression belongs to.
    Outer {
        depth: usize,
        index: usize,
    },
    /// A subquery used as an expression (scalar, EXISTS, IN, ANY/ALL), run by the
    /// [`SubqueryRunner`] of the [`EvalContext`].
    Subquery(Box<Subquery>),
}

/// A subquery inside an expression.
#[derive(Debug, Clone)]
pub(crate) struct Subquery {
    pub plan: std::sync::Arc<crate::query::SelectPlan>,
    pub kind: SubqueryKind,
    /// Whether the subquery reads columns of enclosing queries (then it runs once per outer
    /// row; otherwise once per statement).
    pub correlated: bool,
}

/// Two subquery expressions are equal only when they are the same bound subquery.
impl PartialEq for Subquery {
    fn eq(&self, other: &Subquery) -> bool {
        std::sync::Arc::ptr_eq(&self.plan, &other.plan) && self.kind == other.kind
    }
}

/// What a subquery expression computes from the subquery's rows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SubqueryKind {
    /// `(SELECT x ...)`: NULL for no row, 21000 for more than one.
    Scalar,
    /// `EXISTS (SELECT ...)`.
    Exists,
    /// `expr op ANY (SELECT ...)` (IN is `= ANY`) or, with `all`, `expr op ALL (...)`;
    /// comparisons are carried out in `ty`.
    Quantified {
        expr: Box<Expr>,
        op: BinOp,
        ty: DataType,
        all: bool,
    },
    /// `ARRAY(SELECT x ...)`: the rows' values as an array (its text form, see
    /// `catalog_fns`).
    Array,
}

/// The current rows of the queries enclosing a subquery, innermost first.
pub(crate) struct OuterRows<'a> {
    pub row: &'a [Value],
    pub parent: Option<&'a OuterRows<'a>>,
}

impl<'a> OuterRows<'a> {
    fn at(&self, depth: usize, index: usize) -> SqlResult<Value> {
        let mut cur = self;
        for _ in 1..depth {
            cur = cur
                .parent
                .ok_or_else(|| SqlError::internal("outer reference beyond the outermost query"))?;
        }
        cur.row
            .get(index)
            .cloned()
            .ok_or_else(|| SqlError::internal("outer column index out of range"))
    }
}

/// Runs subqueries for expression evaluation (implemented by the executor).
pub(crate) trait SubqueryRunner {
    /// The rows of `sub`'s query, evaluated with `outer` as the enclosing rows.
    fn subquery_rows(
        &self,
        sub: &Subquery,
        outer: &OuterRows<'_>,
    ) -> SqlResult<std::rc::Rc<Vec<Vec<Value>>>>;

    /// The statement's transaction, for the catalog functions.
    fn transaction(&self) -> Option<&dyn crate::storage::Transaction> {
        None
    }
}

/// Which moment a time function reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    /// `now()`, `CURRENT_TIMESTAMP`, `transaction_timestamp()`: the transaction's start.
    TransactionStart,
    /// `statement_timestamp()`: the current statement's start.
    StatementStart,
    /// `CURRENT_DATE`: the date of the transaction's start (UTC).
    CurrentDate,
}

/// The clock readings of the running statement (microseconds since 2000-01-01 UTC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StatementTimes {
    /// When the transaction started (PostgreSQL's `now()`).
    pub transaction: i64,
    /// When the statement started.
    pub statement: i64,
}

/// Scalar functions evaluated per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Lower,
    Upper,
    Length,
    Abs,
    Round,
    Greatest,
    Least,
    /// Drops trailing spaces (char(n) converted to text).
    RtrimSpaces,
    /// `pg_sleep(seconds)`: waits, checking for cancellation and statement_timeout.
    PgSleep,
    /// A function of the node's logical clocks (`gnomon_lamport_tick()` ...).
    Logical(crate::clock_functions::LogicalFn),
    /// A function of the transaction machinery (`gnomon_hlc_now()` ...).
    System(crate::system::SystemFn),
    /// A catalog function, operator or cast (`format_type`, `~`, `::regclass` ...).
    Catalog(crate::catalog_fns::CatalogFn),
    /// A math, string or date/time function of [`crate::functions`].
    Scalar(crate::functions::ScalarFn),
}

/// What evaluation needs besides the row.
pub(crate) struct EvalContext<'a> {
    pub params: &'a [Value],
    /// Cancellation and statement_timeout, for functions that run long (pg_sleep).
    pub interrupt: Option<&'a crate::session::Interrupt>,
    /// What `now()` and friends return.
    pub times: StatementTimes,
    /// The node's logical clocks, for the `gnomon_lamport_*`/`version_*`/`vclock_*` functions.
    pub clocks: Option<&'a gnomon_mvcc::LogicalClocks>,
    /// Sequence values and this session's `currval`s (None where sequences cannot be used).
    pub sequences: Option<&'a crate::sequence::SessionSequences>,
    /// The database, for the system functions ([`crate::system`]).
    pub db: Option<&'a gnomon_mvcc::Db>,
    /// The rows of the enclosing queries (for correlated subqueries).
    pub outer: Option<&'a OuterRows<'a>>,
    /// Runs subqueries; None where none can appear.
    pub runner: Option<&'a dyn SubqueryRunner>,
}

impl Expr {
    pub(crate) fn eval(&self, row: &[Value], ctx: &EvalContext<'_>) -> SqlResult<Value> {
        Ok(match self {
            Expr::Const(v) => v.clone(),
            Expr::Column(i) => row
                .get(*i)
                .cloned()
                .ok_or_else(|| SqlError::internal("column index out of range"))?,
            Expr::Param(i) => ctx.params.get(*i).cloned().ok_or_else(|| {
                SqlError::new(
                    SqlState::PROTOCOL_VIOLATION,
                    format!("no value bound for parameter ${}", i + 1),
                )
            })?,
            Expr::Neg(e) => negate(e.eval(row, ctx)?)?,
            Expr::Not(e) => match e.eval(row, ctx)? {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Null,
            },
            Expr::Binary {
                op,
                left,
                right,
                ty,
            } => {
                let l = left.eval(row, ctx)?;
                let r = right.eval(row, ctx)?;
                binary(*op, l, r, ty)?
            }
            Expr::And(a, b) => {
                let l = truth(&a.eval(row, ctx)?);
                if l == Some(false) {
                    return Ok(Value::Bool(false));
                }
                match (l, truth(&b.eval(row, ctx)?)) {
                    (_, Some(false)) => Value::Bool(false),
                    (Some(true), Some(true)) => Value::Bool(true),
                    _ => Value::Null,
                }
            }
            Expr::Or(a, b) => {
                let l = truth(&a.eval(row, ctx)?);
                if l == Some(true) {
                    return Ok(Value::Bool(true));
                }
                match (l, truth(&b.eval(row, ctx)?)) {
                    (_, Some(true)) => Value::Bool(true),
                    (Some(false), Some(false)) => Value::Bool(false),
                    _ => Value::Null,
                }
            }
            Expr::IsNull(e, negated) => Value::Bool(e.eval(row, ctx)?.is_null() != *negated),
            Expr::IsBool {
                expr,
                value,
                negated,
            } => {
                let t = truth(&expr.eval(row, ctx)?);
                Value::Bool((t == Some(*value)) != *negated)
            }
            Expr::IsDistinct {
                left,
                right,
                negated,
            } => {
                let l = left.eval(row, ctx)?;
                let r = right.eval(row, ctx)?;
                let distinct = match (l.is_null(), r.is_null()) {
                    (true, true) => false,
                    (true, false) | (false, true) => true,
                    _ => compare_values(&l, &r) != Some(Ordering::Equal),
                };
                Value::Bool(distinct != *negated)
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let v = expr.eval(row, ctx)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for item in list {
                    let x = item.eval(row, ctx)?;
                    if x.is_null() {
                        saw_null = true;
                    } else if compare_values(&v, &x) == Some(Ordering::Equal) {
                        return Ok(Value::Bool(!negated));
                    }
                }
                if saw_null {
                    Value::Null
                } else {
                    Value::Bool(*negated)
                }
            }
            Expr::QuantifiedList {
                expr,
                op,
                ty,
                list,
                all,
            } => {
                let v = expr.eval(row, ctx)?;
                let mut items = Vec::with_capacity(list.len());
                for item in list {
                    items.push(item.eval(row, ctx)?);
                }
                quantified(*op, ty, *all, &v, items)?
            }
            Expr::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => {
                let v = expr.eval(row, ctx)?;
                let p = pattern.eval(row, ctx)?;
                match (v, p) {
                    (Value::Text(s), Value::Text(p)) => {
                        let m = if *case_insensitive {
                            like(&s.to_lowercase(), &p.to_lowercase())?
                        } else {
                            like(&s, &p)?
                        };
                        Value::Bool(m != *negated)
                    }
                    _ => Value::Null,
                }
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                let op = match operand {
                    Some(o) => Some(o.eval(row, ctx)?),
                    None => None,
                };
                for (cond, result) in whens {
                    let c = cond.eval(row, ctx)?;
                    let hit = match &op {
                        Some(o) => {
                            !o.is_null()
                                && !c.is_null()
                                && compare_values(o, &c) == Some(Ordering::Equal)
                        }
                        None => truth(&c) == Some(true),
                    };
                    if hit {
                        return result.eval(row, ctx);
                    }
                }
                match otherwise {
                    Some(e) => e.eval(row, ctx)?,
                    None => Value::Null,
                }
            }
            Expr::Coalesce(list) => {
                for e in list {
                    let v = e.eval(row, ctx)?;
                    if !v.is_null() {
                        return Ok(v);
                    }
                }
                Value::Null
            }
            Expr::NullIf(a, b) => {
                let l = a.eval(row, ctx)?;
                let r = b.eval(row, ctx)?;
                if !l.is_null() && !r.is_null() && compare_values(&l, &r) == Some(Ordering::Equal) {
                    Value::Null
                } else {
                    l
                }
            }
            Expr::Cast { expr, ty, explicit } => cast(expr.eval(row, ctx)?, ty, *explicit)?,
            Expr::Clock(Clock::TransactionStart) => Value::Timestamptz(ctx.times.transaction),
            Expr::Clock(Clock::StatementStart) => Value::Timestamptz(ctx.times.statement),
            Expr::Clock(Clock::CurrentDate) => {
                Value::Date(timestamp_to_date(ctx.times.transaction))
            }
            Expr::Func(f, args) => {
                let vals = args
                    .iter()
                    .map(|a| a.eval(row, ctx))
                    .collect::<SqlResult<Vec<_>>>()?;
                if *f == Func::PgSleep {
                    sleep(vals.first(), ctx)?
                } else if let Func::Logical(lf) = f {
                    crate::clock_functions::call(*lf, &vals, ctx.clocks)?
                } else if let Func::System(sf) = f {
                    crate::system::call(*sf, &vals, ctx.db)?
                } else if let Func::Catalog(cf) = f {
                    crate::catalog_fns::call(*cf, &vals, ctx.runner.and_then(|r| r.transaction()))?
                } else if let Func::Scalar(sf) = f {
                    crate::functions::call(*sf, vals)?
                } else {
                    call(*f, vals)?
                }
            }
            Expr::Sequence { op, seq, args } => {
                let vals = args
                    .iter()
                    .map(|a| a.eval(row, ctx))
                    .collect::<SqlResult<Vec<_>>>()?;
                let Some(seqs) = ctx.sequences else {
                    return Err(SqlError::unsupported("sequence functions here"));
                };
                seqs.call(*op, seq, &vals)?
            }
            Expr::Outer { depth, index } => match ctx.outer {
                Some(o) => o.at(*depth, *index)?,
                None => return Err(SqlError::internal("outer reference without outer rows")),
            },
            Expr::Subquery(sub) => eval_subquery(sub, row, ctx)?,
        })
    }

    /// True when the expression contains a subquery or a correlated reference (such
    /// expressions are never moved between plan nodes, as their column numbers are not all
    /// visible here).
    pub(crate) fn has_subquery(&self) -> bool {
        let mut found = false;
        self.visit(&mut |e| found |= matches!(e, Expr::Subquery(_) | Expr::Outer { .. }));
        found
    }

    /// Calls `f` on this expression and every expression inside it (not inside subqueries).
    pub(crate) fn visit(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Const(_)
            | Expr::Column(_)
            | Expr::Param(_)
            | Expr::Clock(_)
            | Expr::Outer { .. } => {}
            Expr::Neg(e)
            | Expr::Not(e)
            | Expr::IsNull(e, _)
            | Expr::IsBool { expr: e, .. }
            | Expr::Cast { expr: e, .. } => e.visit(f),
            Expr::Binary { left, right, .. } | Expr::IsDistinct { left, right, .. } => {
                left.visit(f);
                right.visit(f);
            }
            Expr::And(a, b) | Expr::Or(a, b) | Expr::NullIf(a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Expr::Like { expr, pattern, .. } => {
                expr.visit(f);
                pattern.visit(f);
            }
            Expr::InList { expr, list, .. } | Expr::QuantifiedList { expr, list, .. } => {
                expr.visit(f);
                for e in list {
                    e.visit(f);
                }
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                for e in operand.iter().chain(otherwise.iter()) {
                    e.visit(f);
                }
                for (w, t) in whens {
                    w.visit(f);
                    t.visit(f);
                }
            }
            Expr::Coalesce(list) | Expr::Func(_, list) | Expr::Sequence { args: list, .. } => {
                for e in list {
                    e.visit(f);
                }
            }
            Expr::Subquery(s) => {
                if let SubqueryKind::Quantified { expr, .. } = &s.kind {
                    expr.visit(f);
                }
            }
        }
    }

    /// The expression with every column index `i` replaced by `map(i)` (used when an
    /// expression moves to a plan node whose rows are laid out differently). Must not be
    /// called on expressions with subqueries ([`Expr::has_subquery`]).
    pub(crate) fn map_columns(&self, map: &dyn Fn(usize) -> usize) -> Expr {
        let m = |e: &Expr| Box::new(e.map_columns(map));
        let all = |l: &[Expr]| l.iter().map(|e| e.map_columns(map)).collect::<Vec<_>>();
        match self {
            Expr::Column(i) => Expr::Column(map(*i)),
            Expr::Const(_)
            | Expr::Param(_)
            | Expr::Clock(_)
            | Expr::Outer { .. }
            | Expr::Subquery(_) => self.clone(),
            Expr::Neg(e) => Expr::Neg(m(e)),
            Expr::Not(e) => Expr::Not(m(e)),
            Expr::IsNull(e, n) => Expr::IsNull(m(e), *n),
            Expr::IsBool {
                expr,
                value,
                negated,
            } => Expr::IsBool {
                expr: m(expr),
                value: *value,
                negated: *negated,
            },
            Expr::Cast { expr, ty, explicit } => Expr::Cast {
                expr: m(expr),
                ty: *ty,
                explicit: *explicit,
            },
            Expr::Binary {
                op,
                left,
                right,
                ty,
            } => Expr::Binary {
                op: *op,
                left: m(left),
                right: m(right),
                ty: *ty,
            },
            Expr::IsDistinct {
                left,
                right,
                negated,
            } => Expr::IsDistinct {
                left: m(left),
                right: m(right),
                negated: *negated,
            },
            Expr::And(a, b) => Expr::And(m(a), m(b)),
            Expr::Or(a, b) => Expr::Or(m(a), m(b)),
            Expr::NullIf(a, b) => Expr::NullIf(m(a), m(b)),
            Expr::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => Expr::Like {
                expr: m(expr),
                pattern: m(pattern),
                negated: *negated,
                case_insensitive: *case_insensitive,
            },
            Expr::InList {
                expr,
                list,
                negated,
            } => Expr::InList {
                expr: m(expr),
                list: all(list),
                negated: *negated,
            },
            Expr::QuantifiedList {
                expr,
                op,
                ty,
                list,
                all: every,
            } => Expr::QuantifiedList {
                expr: m(expr),
                op: *op,
                ty: *ty,
                list: all(list),
                all: *every,
            },
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => Expr::Case {
                operand: operand.as_ref().map(|e| m(e)),
                whens: whens
                    .iter()
                    .map(|(w, t)| (w.map_columns(map), t.map_columns(map)))
                    .collect(),
                otherwise: otherwise.as_ref().map(|e| m(e)),
            },
            Expr::Coalesce(l) => Expr::Coalesce(all(l)),
            Expr::Func(f, l) => Expr::Func(*f, all(l)),
            Expr::Sequence { op, seq, args } => Expr::Sequence {
                op: *op,
                seq: seq.clone(),
                args: all(args),
            },
        }
    }

    /// Marks in `used` (grown as needed) every column the expression reads.
    pub(crate) fn mark_columns(&self, used: &mut Vec<bool>) {
        self.visit(&mut |e| {
            if let Expr::Column(i) = e {
                if used.len() <= *i {
                    used.resize(i + 1, false);
                }
                used[*i] = true;
            }
        });
    }

    /// True when the expression reads no column (constants, parameters and operators on them).
    pub(crate) fn is_row_independent(&self) -> bool {
        match self {
            // An outer reference is fixed while the subquery around it runs.
            Expr::Const(_) | Expr::Param(_) | Expr::Clock(_) | Expr::Outer { .. } => true,
            Expr::Column(_) => false,
            Expr::Neg(e) | Expr::Not(e) | Expr::IsNull(e, _) => e.is_row_independent(),
            Expr::Cast { expr, .. } => expr.is_row_independent(),
            Expr::Binary { left, right, .. } => {
                left.is_row_independent() && right.is_row_independent()
            }
            _ => false,
        }
    }
}

/// Evaluates a subquery expression over the current row.
fn eval_subquery(sub: &Subquery, row: &[Value], ctx: &EvalContext<'_>) -> SqlResult<Value> {
    let runner = ctx
        .runner
        .ok_or_else(|| SqlError::unsupported("subqueries in this context"))?;
    let outer = OuterRows {
        row,
        parent: ctx.outer,
    };
    // The quantified operand is evaluated first (and on the current row).
    let probe = match &sub.kind {
        SubqueryKind::Quantified { expr, .. } => Some(expr.eval(row, ctx)?),
        _ => None,
    };
    let rows = runner.subquery_rows(sub, &outer)?;
    Ok(match &sub.kind {
        SubqueryKind::Scalar => match rows.len() {
            0 => Value::Null,
            1 => rows[0].first().cloned().unwrap_or(Value::Null),
            _ => {
                return Err(SqlError::new(
                    SqlState::CARDINALITY_VIOLATION,
                    "more than one row returned by a subquery used as an expression",
                ))
            }
        },
        SubqueryKind::Exists => Value::Bool(!rows.is_empty()),
        SubqueryKind::Array => {
            let elem = sub.plan.columns.first().map_or(DataType::Text, |c| c.ty);
            let items: Vec<Value> = rows
                .iter()
                .map(|r| r.first().cloned().unwrap_or(Value::Null))
                .collect();
            crate::array::construct(elem, items)?
        }
        SubqueryKind::Quantified { op, ty, all, .. } => {
            let v = probe.unwrap_or(Value::Null);
            let items = rows
                .iter()
                .map(|r| r.first().cloned().unwrap_or(Value::Null));
            quantified(*op, ty, *all, &v, items)?
        }
    })
}

/// `v op ANY (items)` / `v op ALL (items)`. ANY: true if some comparison is true, else NULL
/// if some is NULL, else false. ALL: false if some comparison is false, else NULL if some is
/// NULL, else true (so over no items ANY is false and ALL true, even for a NULL `v`).
fn quantified(
    op: BinOp,
    ty: &DataType,
    all: bool,
    v: &Value,
    items: impl IntoIterator<Item = Value>,
) -> SqlResult<Value> {
    let mut saw_null = false;
    for x in items {
        match truth(&binary(op, v.clone(), x, ty)?) {
            Some(b) if b != all => return Ok(Value::Bool(b)),
            Some(_) => {}
            None => saw_null = true,
        }
    }
    Ok(if saw_null {
        Value::Null
    } else {
        Value::Bool(all)
    })
}

/// SQL truth value: Some(bool), or None for NULL.
pub(crate) fn truth(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

fn negate(v: Value) -> SqlResult<Value> {
    Ok(match v {
        Value::Null => Value::Null,
        Value::Int2(x) => Value::Int2(
            x.checked_neg()
                .ok_or_else(|| SqlError::out_of_range("smallint out of range"))?,
        ),
        Value::Int4(x) => Value::Int4(
            x.checked_neg()
                .ok_or_else(|| SqlError::out_of_range("integer out of range"))?,
        ),
        Value::Int8(x) => Value::Int8(
            x.checked_neg()
                .ok_or_else(|| SqlError::out_of_range("bigint out of range"))?,
        ),
        Value::Float4(x) => Value::Float4(-x),
        Value::Float8(x) => Value::Float8(-x),
        Value::Numeric(d) => Value::Numeric(-d),
        Value::Interval(i) => Value::Interval(i.checked_neg()?),
        other => {
            return Err(SqlError::undefined_function(format!(
                "operator does not exist: - {}",
                other.data_type().name()
            )))
        }
    })
}

pub(crate) fn int_range_error(ty: &DataType) -> SqlError {
    SqlError::out_of_range(match ty {
        DataType::Int2 => "smallint out of range",
        DataType::Int4 => "integer out of range",
        _ => "bigint out of range",
    })
}

fn float_check(x: f64, a: f64, b: f64) -> SqlResult<f64> {
    if x.is_infinite() && a.is_finite() && b.is_finite() {
        return Err(SqlError::out_of_range("value out of range: overflow"));
    }
    Ok(x)
}

/// Arithmetic with intervals and timestamp differences; None for other operands.
fn interval_arithmetic(op: BinOp, l: &Value, r: &Value) -> SqlResult<Option<Value>> {
    use crate::interval::{timestamp_add, timestamp_diff};
    use Value as V;
    let sub = |i: &crate::interval::Interval| i.checked_neg();
    Ok(Some(match (l, r, op) {
        (V::Interval(a), V::Interval(b), BinOp::Add) => V::Interval(a.checked_add(b)?),
        (V::Interval(a), V::Interval(b), BinOp::Sub) => V::Interval(a.checked_add(&sub(b)?)?),
        (V::Timestamp(t), V::Interval(i), BinOp::Add)
        | (V::Interval(i), V::Timestamp(t), BinOp::Add) => V::Timestamp(timestamp_add(*t, i)?),
        (V::Timestamptz(t), V::Interval(i), BinOp::Add)
        | (V::Interval(i), V::Timestamptz(t), BinOp::Add) => V::Timestamptz(timestamp_add(*t, i)?),
        (V::Date(d), V::Interval(i), BinOp::Add) | (V::Interval(i), V::Date(d), BinOp::Add) => {
            V::Timestamp(timestamp_add(date_to_timestamp(*d), i)?)
        }
        (V::Timestamp(t), V::Interval(i), BinOp::Sub) => V::Timestamp(timestamp_add(*t, &sub(i)?)?),
        (V::Timestamptz(t), V::Interval(i), BinOp::Sub) => {
            V::Timestamptz(timestamp_add(*t, &sub(i)?)?)
        }
        (V::Date(d), V::Interval(i), BinOp::Sub) => {
            V::Timestamp(timestamp_add(date_to_timestamp(*d), &sub(i)?)?)
        }
        (V::Timestamp(a) | V::Timestamptz(a), V::Timestamp(b) | V::Timestamptz(b), BinOp::Sub) => {
            V::Interval(timestamp_diff(*a, *b)?)
        }
        (V::Interval(i), n, BinOp::Mul) | (n, V::Interval(i), BinOp::Mul)
            if as_f64(n).is_some() =>
        {
            V::Interval(i.mul(as_f64(n).unwrap_or(1.0))?)
        }
        (V::Interval(i), n, BinOp::Div) if as_f64(n).is_some() => {
            V::Interval(i.div(as_f64(n).unwrap_or(1.0))?)
        }
        _ => return Ok(None),
    }))
}

/// Evaluates a binary operator whose operands were cast to `ty` by the binder (comparisons
/// compare across numeric widths directly).
pub(crate) fn binary(op: BinOp, l: Value, r: Value, ty: &DataType) -> SqlResult<Value> {
    if l.is_null() || r.is_null() {
        return Ok(Value::Null);
    }
    let cmp = |o: Ordering| -> bool {
        match op {
            BinOp::Eq => o == Ordering::Equal,
            BinOp::NotEq => o != Ordering::Equal,
            BinOp::Lt => o == Ordering::Less,
            BinOp::LtEq => o != Ordering::Greater,
            BinOp::Gt => o == Ordering::Greater,
            _ => o != Ordering::Less,
        }
    };
    match op {
        BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq => {
            let o = compare_values(&l, &r).ok_or_else(|| {
                SqlError::undefined_function(format!(
                    "operator does not exist: {} = {}",
                    l.data_type().name(),
                    r.data_type().name()
                ))
            })?;
            return Ok(Value::Bool(cmp(o)));
        }
        BinOp::Concat => {
            let a = cast(l, &DataType::Text, true)?;
            let b = cast(r, &DataType::Text, true)?;
            if let (Value::Text(a), Value::Text(b)) = (a, b) {
                return Ok(Value::Text(a + &b));
            }
            return Err(SqlError::internal("concat of non-text"));
        }
        _ => {}
    }
    if let Some(v) = interval_arithmetic(op, &l, &r)? {
        return Ok(v);
    }
    // Date arithmetic.
    match (&l, &r, op) {
        (Value::Date(d), _, BinOp::Add | BinOp::Sub) if as_i64(&r).is_some() => {
            let n = as_i64(&r).unwrap_or(0);
            let n = if op == BinOp::Sub { -n } else { n };
            let days = i32::try_from(*d as i64 + n)
                .map_err(|_| SqlError::out_of_range("date out of range"))?;
            return Ok(Value::Date(days));
        }
        (_, Value::Date(d), BinOp::Add) if as_i64(&l).is_some() => {
            let n = as_i64(&l).unwrap_or(0);
            let days = i32::try_from(*d as i64 + n)
                .map_err(|_| SqlError::out_of_range("date out of range"))?;
            return Ok(Value::Date(days));
        }
        (Value::Date(a), Value::Date(b), BinOp::Sub) => return Ok(Value::Int4(a - b)),
        _ => {}
    }
    match ty {
        DataType::Int2 | DataType::Int4 | DataType::Int8 => {
            let a = as_i64(&l).ok_or_else(|| SqlError::internal("integer operand expected"))?;
            let b = as_i64(&r).ok_or_else(|| SqlError::internal("integer operand expected"))?;
            let res = match op {
                BinOp::Add => a.checked_add(b),
                BinOp::Sub => a.checked_sub(b),
                BinOp::Mul => a.checked_mul(b),
                BinOp::Div => {
                    if b == 0 {
                        return Err(SqlError::division_by_zero());
                    }
                    a.checked_div(b)
                }
                BinOp::Mod => {
                    if b == 0 {
                        return Err(SqlError::division_by_zero());
                    }
                    Some(a.checked_rem(b).unwrap_or(0))
                }
                _ => None,
            }
            .ok_or_else(|| int_range_error(ty))?;
            int_value(res, ty)
        }
        DataType::Float4 | DataType::Float8 => {
            let a = as_f64(&l).ok_or_else(|| SqlError::internal("float operand expected"))?;
            let b = as_f64(&r).ok_or_else(|| SqlError::internal("float operand expected"))?;
            let res = match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => {
                    if b == 0.0 {
                        return Err(SqlError::division_by_zero());
                    }
                    a / b
                }
                BinOp::Mod => {
                    return Err(SqlError::undefined_function(
                        "operator does not exist: double precision % double precision",
                    ))
                }
                _ => unreachable_op()?,
            };
            let res = float_check(res, a, b)?;
            Ok(if *ty == DataType::Float4 {
                let f = res as f32;
                if f.is_infinite() && res.is_finite() {
                    return Err(SqlError::out_of_range("value out of range: overflow"));
                }
                Value::Float4(f)
            } else {
                Value::Float8(res)
            })
        }
        DataType::Numeric { .. } => {
            let a = as_decimal(&l).ok_or_else(|| SqlError::internal("numeric operand expected"))?;
            let b = as_decimal(&r).ok_or_else(|| SqlError::internal("numeric operand expected"))?;
            let overflow = || SqlError::out_of_range("value overflows numeric format");
            let res = match op {
                BinOp::Add => a.checked_add(b).ok_or_else(overflow)?,
                BinOp::Sub => a.checked_sub(b).ok_or_else(overflow)?,
                BinOp::Mul => a.checked_mul(b).ok_or_else(overflow)?,
                BinOp::Div => numeric_div(a, b)?,
                BinOp::Mod => {
                    if b.is_zero() {
                        return Err(SqlError::division_by_zero());
                    }
                    a.checked_rem(b).ok_or_else(overflow)?
                }
                _ => return Err(SqlError::internal("unexpected operator")),
            };
            Ok(Value::Numeric(res))
        }
        other => Err(SqlError::undefined_function(format!(
            "operator does not exist: {} {} {}",
            other.name(),
            op_symbol(op),
            other.name()
        ))),
    }
}

fn unreachable_op() -> SqlResult<f64> {
    Err(SqlError::internal("unexpected operator"))
}

pub(crate) fn op_symbol(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Mod => "%",
        BinOp::Concat => "||",
        BinOp::Eq => "=",
        BinOp::NotEq => "<>",
        BinOp::Lt => "<",
        BinOp::LtEq => "<=",
        BinOp::Gt => ">",
        BinOp::GtEq => ">=",
    }
}

fn int_value(v: i64, ty: &DataType) -> SqlResult<Value> {
    Ok(match ty {
        DataType::Int2 => Value::Int2(i16::try_from(v).map_err(|_| int_range_error(ty))?),
        DataType::Int4 => Value::Int4(i32::try_from(v).map_err(|_| int_range_error(ty))?),
        _ => Value::Int8(v),
    })
}

/// Base-10000 weight and first digit of a non-zero decimal, as PostgreSQL's NumericVar has them.
fn weight_and_first_digit(d: Decimal) -> (i64, u32) {
    let d = d.abs().normalize();
    let digits = d.mantissa().to_string();
    let exp10 = digits.len() as i64 - d.scale() as i64 - 1; // position of the leading digit
    let weight = exp10.div_euclid(4);
    // First base-10000 digit = leading digits within that group.
    let lead_len = (exp10.rem_euclid(4) + 1) as usize;
    let first: String = digits.chars().take(lead_len).collect();
    let mut first: u32 = first.parse().unwrap_or(0);
    for _ in digits.len()..lead_len {
        first *= 10;
    }
    (weight, first)
}

/// numeric division with PostgreSQL's result scale (select_div_scale): at least 16 significant
/// digits, at least the operands' scales.
pub(crate) fn numeric_div(a: Decimal, b: Decimal) -> SqlResult<Decimal> {
    if b.is_zero() {
        return Err(SqlError::division_by_zero());
    }
    let (w1, f1) = if a.is_zero() {
        (0, 0)
    } else {
        weight_and_first_digit(a)
    };
    let (w2, f2) = weight_and_first_digit(b);
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    let rscale = (16 - qweight * 4)
        .max(a.scale() as i64)
        .max(b.scale() as i64)
        .clamp(0, 28) as u32;
    let q = a
        .checked_div(b)
        .ok_or_else(|| SqlError::out_of_range("value overflows numeric format"))?;
    let mut q = q.round_dp_with_strategy(rscale, RoundingStrategy::MidpointAwayFromZero);
    q.rescale(rscale);
    Ok(q)
}

/// Applies numeric(p,s): rounds to s digits and checks the integer digits fit p - s.
pub(crate) fn apply_numeric_typmod(
    d: Decimal,
    precision: Option<u32>,
    scale: Option<u32>,
) -> SqlResult<Decimal> {
    let Some(p) = precision else { return Ok(d) };
    let s = scale.unwrap_or(0);
    let mut r = d.round_dp_with_strategy(s, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(s);
    let int_part = r.abs().trunc().to_string();
    let int_digits = int_part
        .split('.')
        .next()
        .unwrap_or("")
        .trim_start_matches('0')
        .len() as i64;
    if int_digits > p as i64 - s as i64 {
        return Err(SqlError::out_of_range("numeric field overflow").with_detail(format!(
            "A field with precision {p}, scale {s} must round to an absolute value less than 10^{}.",
            p as i64 - s as i64
        )));
    }
    Ok(r)
}

/// Converts `v` to `ty`. `explicit` casts truncate varchar(n); assignment and implicit ones
/// fail with 22001 instead.
pub(crate) fn cast(v: Value, ty: &DataType, explicit: bool) -> SqlResult<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let cannot = |v: &Value| {
        SqlError::new(
            SqlState::CANNOT_COERCE,
            format!("cannot cast type {} to {}", v.data_type().name(), ty.name()),
        )
    };
    Ok(match ty {
        DataType::Unknown => v,
        DataType::Int2Vector | DataType::OidVector => match v {
            Value::Text(s) => Value::Text(s),
            v @ Value::Array(_) if v.data_type() == *ty => v,
            other => return Err(cannot(&other)),
        },
        DataType::Array(elem) => {
            let a = match v {
                Value::Array(a) => *a,
                Value::Text(s) => crate::array::from_text(&s, elem)?,
                other => return Err(cannot(&other)),
            };
            // Each element through the element cast: modifiers (varchar(n), numeric(p,s))
            // and conversions between element types.
            let items = a
                .items
                .into_iter()
                .map(|i| cast(i, elem, explicit))
                .collect::<SqlResult<Vec<Value>>>()?;
            Value::from_array(crate::types::ArrayValue {
                elem: **elem,
                dims: a.dims,
                items,
            })
        }
        DataType::Text | DataType::Varchar(_) | DataType::Bpchar(_) => {
            let s = match v {
                Value::Text(s) => s,
                Value::Bool(b) => if b { "true" } else { "false" }.to_string(),
                other => other.to_text().unwrap_or_default(),
            };
            Value::Text(apply_length(s, ty, explicit)?)
        }
        _ if matches!(v, Value::Text(_)) => {
            let Value::Text(s) = &v else {
                return Err(cannot(&v));
            };
            let parsed = Value::from_text(s, ty)?;
            match ty {
                DataType::Numeric { precision, scale } => match parsed {
                    Value::Numeric(d) => {
                        Value::Numeric(apply_numeric_typmod(d, *precision, *scale)?)
                    }
                    other => other,
                },
                _ => parsed,
            }
        }
        DataType::Bool => match v {
            Value::Bool(b) => Value::Bool(b),
            Value::Int4(x) => Value::Bool(x != 0),
            other => return Err(cannot(&other)),
        },
        DataType::Int2 | DataType::Int4 | DataType::Int8 => {
            let i: i64 = match &v {
                Value::Int2(_) | Value::Int4(_) | Value::Int8(_) => as_i64(&v).unwrap_or(0),
                Value::Bool(b) if *ty == DataType::Int4 => *b as i64,
                Value::Float4(_) | Value::Float8(_) => {
                    let f = as_f64(&v).unwrap_or(0.0).round_ties_even();
                    if !f.is_finite() || f < i64::MIN as f64 || f >= i64::MAX as f64 {
                        return Err(int_range_error(ty));
                    }
                    f as i64
                }
                Value::Numeric(d) => d
                    .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
                    .to_i64()
                    .ok_or_else(|| int_range_error(ty))?,
                other => return Err(cannot(other)),
            };
            int_value(i, ty)?
        }
        DataType::Float4 | DataType::Float8 => {
            let f = match &v {
                Value::Int2(_)
                | Value::Int4(_)
                | Value::Int8(_)
                | Value::Float4(_)
                | Value::Float8(_) => as_f64(&v).unwrap_or(0.0),
                Value::Numeric(d) => d.to_string().parse::<f64>().unwrap_or(0.0),
                other => return Err(cannot(other)),
            };
            if *ty == DataType::Float4 {
                let g = f as f32;
                if g.is_infinite() && f.is_finite() {
                    return Err(SqlError::out_of_range("value out of range: overflow"));
                }
                Value::Float4(g)
            } else {
                Value::Float8(f)
            }
        }
        DataType::Numeric { precision, scale } => {
            let d = match &v {
                Value::Int2(_) | Value::Int4(_) | Value::Int8(_) => {
                    as_decimal(&v).unwrap_or_default()
                }
                Value::Numeric(d) => *d,
                Value::Float4(_) | Value::Float8(_) => {
                    let f = as_f64(&v).unwrap_or(0.0);
                    if !f.is_finite() {
                        return Err(SqlError::unsupported("numeric NaN or Infinity"));
                    }
                    let text = v.to_text().unwrap_or_default();
                    parse_decimal(&text)
                        .or_else(|| Decimal::from_f64(f))
                        .ok_or_else(|| SqlError::out_of_range("value overflows numeric format"))?
                }
                other => return Err(cannot(other)),
            };
            Value::Numeric(apply_numeric_typmod(d, *precision, *scale)?)
        }
        DataType::Bytea => match v {
            Value::Bytea(b) => Value::Bytea(b),
            other => return Err(cannot(&other)),
        },
        DataType::Date => match v {
            Value::Date(d) => Value::Date(d),
            Value::Timestamp(t) | Value::Timestamptz(t) => Value::Date(timestamp_to_date(t)),
            other => return Err(cannot(&other)),
        },
        DataType::Timestamp => match v {
            Value::Date(d) => Value::Timestamp(date_to_timestamp(d)),
            Value::Timestamp(t) | Value::Timestamptz(t) => Value::Timestamp(t),
            other => return Err(cannot(&other)),
        },
        DataType::Timestamptz => match v {
            Value::Date(d) => Value::Timestamptz(date_to_timestamp(d)),
            Value::Timestamp(t) | Value::Timestamptz(t) => Value::Timestamptz(t),
            other => return Err(cannot(&other)),
        },
        DataType::Interval => match v {
            Value::Interval(i) => Value::Interval(i),
            other => return Err(cannot(&other)),
        },
    })
}

/// varchar(n)/char(n) length rules.
fn apply_length(s: String, ty: &DataType, explicit: bool) -> SqlResult<String> {
    match ty {
        DataType::Varchar(Some(n)) | DataType::Bpchar(Some(n)) => {
            let n = *n as usize;
            if s.len() == n && (matches!(ty, DataType::Varchar(_)) || s.is_ascii()) {
                return Ok(s); // Already exactly n characters (a stored char(n) value).
            }
            let len = s.chars().count();
            let mut s = s;
            if len > n {
                let kept: String = s.chars().take(n).collect();
                let rest_blank = s.chars().skip(n).all(|c| c == ' ');
                if !explicit && !rest_blank {
                    let tyname = if matches!(ty, DataType::Varchar(_)) {
                        "character varying"
                    } else {
                        "character"
                    };
                    return Err(SqlError::new(
                        SqlState::STRING_DATA_RIGHT_TRUNCATION,
                        format!("value too long for type {tyname}({n})"),
                    ));
                }
                s = kept;
            }
            if matches!(ty, DataType::Bpchar(_)) {
                const SPACES: &str =
                    "                                                                ";
                let mut pad = n.saturating_sub(s.chars().count());
                s.reserve(pad);
                while pad > 0 {
                    let k = pad.min(SPACES.len());
                    s.push_str(&SPACES[..k]);
                    pad -= k;
                }
            }
            Ok(s)
        }
        _ => Ok(s),
    }
}

/// SQL LIKE with `%`, `_` and backslash escapes.
pub(crate) fn like(s: &str, pattern: &str) -> SqlResult<bool> {
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Tokenise the pattern.
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Any,
        One,
        Lit(char),
    }
    let mut toks = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '%' => toks.push(Tok::Any),
            '_' => toks.push(Tok::One),
            '\\' => {
                i += 1;
                let c = *p.get(i).ok_or_else(|| {
                    SqlError::new(
                        SqlState::INVALID_ESCAPE_SEQUENCE,
                        "LIKE pattern must not end with escape character",
                    )
                })?;
                toks.push(Tok::Lit(c));
            }
            c => toks.push(Tok::Lit(c)),
        }
        i += 1;
    }
    // Iterative matcher with backtracking to the last '%'.
    let (mut si, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if ti < toks.len() && (toks[ti] == Tok::One || toks[ti] == Tok::Lit(s[si])) {
            si += 1;
            ti += 1;
        } else if ti < toks.len() && toks[ti] == Tok::Any {
            star = Some((ti, si));
            ti += 1;
        } else if let Some((st, ss)) = star {
            ti = st + 1;
            si = ss + 1;
            star = Some((st, ss + 1));
        } else {
            return Ok(false);
        }
    }
    while ti < toks.len() && toks[ti] == Tok::Any {
        ti += 1;
    }
    Ok(ti == toks.len())
}

/// `pg_sleep`: sleeps in short slices so a cancel or statement_timeout ends it promptly.
fn sleep(seconds: Option<&Value>, ctx: &EvalContext<'_>) -> SqlResult<Value> {
    let secs = match seconds {
        Some(Value::Float8(s)) => *s,
        Some(Value::Null) | None => return Ok(Value::Null),
        Some(other) => return Err(SqlError::internal(format!("pg_sleep({other:?})"))),
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Ok(Value::Null);
    }
    let end = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs.min(1e7));
    loop {
        if let Some(i) = ctx.interrupt {
            i.check()?;
        }
        let now = std::time::Instant::now();
        if now >= end {
            return Ok(Value::Null);
        }
        std::thread::sleep((end - now).min(std::time::Duration::from_millis(10)));
    }
}

fn call(f: Func, args: Vec<Value>) -> SqlResult<Value> {
    if matches!(f, Func::Greatest | Func::Least) {
        let mut best: Option<Value> = None;
        for v in args.into_iter().filter(|v| !v.is_null()) {
            best = Some(match best {
                None => v,
                Some(b) => {
                    let o = compare_values(&v, &b).unwrap_or(Ordering::Equal);
                    if (f == Func::Greatest && o == Ordering::Greater)
                        || (f == Func::Least && o == Ordering::Less)
                    {
                        v
                    } else {
                        b
                    }
                }
            });
        }
        return Ok(best.unwrap_or(Value::Null));
    }
    let Some(a) = args.first() else {
        return Ok(Value::Null);
    };
    if a.is_null() {
        return Ok(Value::Null);
    }
    Ok(match (f, a) {
        (Func::Lower, Value::Text(s)) => Value::Text(s.to_lowercase()),
        (Func::RtrimSpaces, Value::Text(s)) => Value::Text(s.trim_end_matches(' ').to_string()),
        (Func::Upper, Value::Text(s)) => Value::Text(s.to_uppercase()),
        (Func::Length, Value::Text(s)) => Value::Int4(s.chars().count() as i32),
        (Func::Length, Value::Bytea(b)) => Value::Int4(b.len() as i32),
        (Func::Abs, v) => match v {
            Value::Int2(x) => Value::Int2(
                x.checked_abs()
                    .ok_or_else(|| int_range_error(&DataType::Int2))?,
            ),
            Value::Int4(x) => Value::Int4(
                x.checked_abs()
                    .ok_or_else(|| int_range_error(&DataType::Int4))?,
            ),
            Value::Int8(x) => Value::Int8(
                x.checked_abs()
                    .ok_or_else(|| int_range_error(&DataType::Int8))?,
            ),
            Value::Float4(x) => Value::Float4(x.abs()),
            Value::Float8(x) => Value::Float8(x.abs()),
            Value::Numeric(d) => Value::Numeric(d.abs()),
            _ => return Err(SqlError::undefined_function("function abs does not exist")),
        },
        // round(x) only: round(x, n) is functions.rs's RoundPlaces.
        (Func::Round, v) => match v {
            Value::Float8(x) => Value::Float8(x.round_ties_even()),
            other => {
                let d = as_decimal(other).unwrap_or_default();
                let mut r = d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
                r.rescale(0);
                Value::Numeric(r)
            }
        },
        _ => {
            return Err(SqlError::undefined_function(format!(
                "function {f:?} does not exist for this argument type"
            )))
        }
    })
}

/// The type binary arithmetic between `a` and `b` is carried out in.
pub(crate) fn arithmetic_type(a: &DataType, b: &DataType) -> Option<DataType> {
    let a = if *a == DataType::Unknown { *b } else { *a };
    let b = if *b == DataType::Unknown { a } else { *b };
    if !a.is_numeric() || !b.is_numeric() {
        return None;
    }
    Some(match (a, b) {
        (DataType::Float4, DataType::Float4) => DataType::Float4,
        _ if a == DataType::Float4 || b == DataType::Float4 => DataType::Float8,
        _ if a.numeric_rank() >= b.numeric_rank() => widen(a),
        _ => widen(b),
    })
}

fn widen(t: DataType) -> DataType {
    match t {
        DataType::Numeric { .. } => NUMERIC,
        other => other,
    }
}

/// The type two operands of a comparison are compared as; None if they are not comparable.
pub(crate) fn comparison_type(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    Some(match (a, b) {
        (Unknown, Unknown) => Text,
        (Unknown, x) | (x, Unknown) => *x,
        _ if a.is_numeric() && b.is_numeric() => arithmetic_type(a, b)?,
        _ if a.is_string() && b.is_string() => Text,
        (Date, Date) => Date,
        _ if a.is_datetime() && b.is_datetime() => {
            if *a == Timestamptz || *b == Timestamptz {
                Timestamptz
            } else {
                Timestamp
            }
        }
        (Bool, Bool) => Bool,
        (Bytea, Bytea) => Bytea,
        (Interval, Interval) => Interval,
        (Array(x), Array(y)) => DataType::array_of(comparison_type(x, y)?),
        _ => return None,
    })
}

/// Whether a value of type `from` may be stored into a column of type `to` (assignment cast).
pub(crate) fn assignable(from: &DataType, to: &DataType) -> bool {
    if let (DataType::Array(f), DataType::Array(t)) = (from, to) {
        return assignable(f, t);
    }
    from == to
        || *from == DataType::Unknown
        || (from.is_numeric() && to.is_numeric())
        || to.is_string()
        || (from.is_datetime() && to.is_datetime())
}

/// Whether `from` may be cast to `to` with CAST / `::`.
pub(crate) fn castable(from: &DataType, to: &DataType) -> bool {
    if let (DataType::Array(f), DataType::Array(t)) = (from, to) {
        return castable(f, t);
    }
    assignable(from, to)
        || (matches!(from, DataType::Array(_)) && to.is_string())
        || from.is_string()
        || (*from == DataType::Bool && *to == DataType::Int4)
        || (*from == DataType::Int4 && *to == DataType::Bool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn char_n_pads_with_blanks_to_its_length() {
        let padded = cast(
            Value::Text("ab".into()),
            &DataType::Bpchar(Some(130)),
            false,
        );
        let expected = format!("ab{}", " ".repeat(128));
        assert_eq!(padded.unwrap(), Value::Text(expected.clone()));
        // A value already of the right length is kept as is.
        let again = cast(
            Value::Text(expected.clone()),
            &DataType::Bpchar(Some(130)),
            false,
        );
        assert_eq!(again.unwrap(), Value::Text(expected));
        let e = cast(Value::Text("é".into()), &DataType::Bpchar(Some(2)), false).unwrap();
        assert_eq!(e, Value::Text("é ".into()));
    }

    #[test]
    fn like_matches_postgres_semantics() {
        assert!(like("hello", "h%o").unwrap());
        assert!(like("hello", "h_llo").unwrap());
        assert!(!like("hello", "h_lo").unwrap());
        assert!(like("50%", "50\\%").unwrap());
        assert!(like("", "%").unwrap());
        assert!(like("abcabc", "%abc").unwrap());
    }

    #[test]
    fn numeric_division_uses_postgres_scale() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(
            numeric_div(d("3"), d("2")).unwrap().to_string(),
            "1.5000000000000000"
        );
        assert_eq!(
            numeric_div(d("1"), d("3")).unwrap().to_string(),
            "0.33333333333333333333"
        );
        assert_eq!(
            numeric_div(d("100000"), d("3")).unwrap().to_string(),
            "33333.333333333333"
        );
    }

    #[test]
    fn numeric_typmod_rounds_and_checks_precision() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(
            apply_numeric_typmod(d("1.005"), Some(5), Some(2))
                .unwrap()
                .to_string(),
            "1.01"
        );
        assert_eq!(
            apply_numeric_typmod(d("7"), Some(5), Some(2))
                .unwrap()
                .to_string(),
            "7.00"
        );
        assert!(apply_numeric_typmod(d("1000"), Some(5), Some(2)).is_err());
    }
}
