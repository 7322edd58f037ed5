//! Execution of queries: the rows of a [`Source`] tree (table reads, joins, derived tables,
//! set operations, recursive CTEs), filtering, aggregation, window functions, sorting, and
//! the subqueries inside expressions.
//!
//! Everything here only reads: a [`Reader`] holds the transaction by shared reference, so a
//! subquery can run from inside expression evaluation. Results are materialised per node
//! (the v1 executor has no streaming); uncorrelated subqueries run once per statement.
//!
//! ```text
//!   select_rows(plan) ── source_rows(source) ─┬─ Table: read_raw / read_point (access path)
//!        │                                   ├─ Join: nested loop | hash | index lookup
//!        │                                   ├─ Query / SetOp / Recursive / Values / Series
//!        │                                   └─ Filter
//!        └─ filter, aggregate (+FILTER), window functions, project, DISTINCT, ORDER BY, LIMIT
//! ```

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use rust_decimal::Decimal;

use crate::catalog::decode_table_columns;
use crate::encoding::encode_key_value;
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::{
    cast, numeric_div, truth, EvalContext, Expr, OuterRows, StatementTimes, Subquery,
    SubqueryRunner,
};
use crate::plan::{JoinKind, JoinMethod, JoinPlan, RecursivePlan, SetOpKind, SetOpPlan};
use crate::query::{
    read_point, read_raw, AggCall, AggFunc, AggPlan, ExecStats, SelectPlan, SortKey, Source,
};
use crate::session::Interrupt;
use crate::storage::Transaction;
use crate::types::{compare_values, DataType, Value};

/// Rows shared between the places that read them (memoised subqueries, working tables).
type SharedRows = Rc<Vec<Vec<Value>>>;

/// What reading needs: the transaction (shared), parameters, clocks, counters, and the
/// per-statement memo of uncorrelated subqueries and recursive working tables.
pub(crate) struct Reader<'a> {
    pub txn: &'a dyn Transaction,
    pub params: &'a [Value],
    pub interrupt: &'a Interrupt,
    pub times: StatementTimes,
    pub stats: &'a Cell<ExecStats>,
    /// Sequence values and this session's `currval`s.
    pub sequences: Option<&'a crate::sequence::SessionSequences>,
    /// Rows of uncorrelated subqueries, by plan address (a plan outlives its statement).
    memo: RefCell<Vec<(usize, SharedRows)>>,
    /// The current working table of each running recursive CTE.
    work: RefCell<Vec<(usize, SharedRows)>>,
    /// EXPLAIN ANALYZE: (rows, loops) per source node, by node address.
    pub profile: Option<RefCell<HashMap<usize, (u64, u64)>>>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(
        txn: &'a dyn Transaction,
        params: &'a [Value],
        interrupt: &'a Interrupt,
        times: StatementTimes,
        stats: &'a Cell<ExecStats>,
        sequences: Option<&'a crate::sequence::SessionSequences>,
    ) -> Reader<'a> {
        Reader {
            txn,
            params,
            interrupt,
            times,
            stats,
            sequences,
            memo: RefCell::new(Vec::new()),
            work: RefCell::new(Vec::new()),
            profile: None,
        }
    }

    /// Adds to the statement's counters.
    pub(crate) fn count(&self, f: impl FnOnce(&mut ExecStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// Records that source node `node` produced `rows` rows in one more loop (ANALYZE).
    fn record(&self, node: &Source, rows: usize) {
        if let Some(p) = &self.profile {
            let mut p = p.borrow_mut();
            let e = p.entry(node as *const Source as usize).or_default();
            e.0 += rows as u64;
            e.1 += 1;
        }
    }

    /// An environment without enclosing rows (a top-level statement).
    pub(crate) fn env(&self) -> Env<'_> {
        Env {
            rd: self,
            outer: None,
        }
    }
}

/// A reader plus the rows of the enclosing queries (for correlated references).
#[derive(Clone, Copy)]
pub(crate) struct Env<'a> {
    pub rd: &'a Reader<'a>,
    pub outer: Option<&'a OuterRows<'a>>,
}

impl Env<'_> {
    pub(crate) fn eval(&self, e: &Expr, row: &[Value]) -> SqlResult<Value> {
        e.eval(
            row,
            &EvalContext {
                params: self.rd.params,
                interrupt: Some(self.rd.interrupt),
                times: self.rd.times,
                clocks: self.rd.txn.logical_clocks(),
                sequences: self.rd.sequences,
                db: self.rd.txn.db(),
                outer: self.outer,
                runner: Some(self.rd),
            },
        )
    }
}

impl SubqueryRunner for Reader<'_> {
    fn subquery_rows(
        &self,
        sub: &Subquery,
        outer: &OuterRows<'_>,
    ) -> SqlResult<Rc<Vec<Vec<Value>>>> {
        let key = std::sync::Arc::as_ptr(&sub.plan) as usize;
        if !sub.correlated {
            if let Some((_, rows)) = self.memo.borrow().iter().find(|(k, _)| *k == key) {
                return Ok(rows.clone());
            }
        }
        let env = Env {
            rd: self,
            outer: Some(outer),
        };
        let rows = Rc::new(select_rows(env, &sub.plan)?);
        if !sub.correlated {
            self.memo.borrow_mut().push((key, rows.clone()));
        }
        Ok(rows)
    }

    fn transaction(&self) -> Option<&dyn Transaction> {
        Some(self.txn)
    }
}

fn passes(env: Env<'_>, filter: Option<&Expr>, row: &[Value]) -> SqlResult<bool> {
    match filter {
        None => Ok(true),
        Some(f) => Ok(truth(&env.eval(f, row)?) == Some(true)),
    }
}

fn series(
    env: Env<'_>,
    start: &Expr,
    stop: &Expr,
    step: Option<&Expr>,
    ty: &DataType,
) -> SqlResult<Vec<Vec<Value>>> {
    let a = env.eval(start, &[])?;
    let b = env.eval(stop, &[])?;
    let s = match step {
        Some(e) => env.eval(e, &[])?,
        None => cast(Value::Int4(1), ty, false)?,
    };
    if a.is_null() || b.is_null() || s.is_null() {
        return Ok(vec![]);
    }
    let mut out = Vec::new();
    if let (Some(a), Some(b), Some(s)) = (
        crate::types::as_i64(&a),
        crate::types::as_i64(&b),
        crate::types::as_i64(&s),
    ) {
        if s == 0 {
            return Err(SqlError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "step size cannot equal zero",
            ));
        }
        let mut x = a;
        while (s > 0 && x <= b) || (s < 0 && x >= b) {
            env.rd.interrupt.check()?;
            out.push(vec![if *ty == DataType::Int8 {
                Value::Int8(x)
            } else {
                Value::Int4(x as i32)
            }]);
            match x.checked_add(s) {
                Some(n) => x = n,
                None => break,
            }
        }
        return Ok(out);
    }
    let (Some(a), Some(b), Some(s)) = (
        crate::types::as_decimal(&a),
        crate::types::as_decimal(&b),
        crate::types::as_decimal(&s),
    ) else {
        return Err(SqlError::internal("generate_series arguments"));
    };
    if s.is_zero() {
        return Err(SqlError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            "step size cannot equal zero",
        ));
    }
    let mut x = a;
    while (s > Decimal::ZERO && x <= b) || (s < Decimal::ZERO && x >= b) {
        env.rd.interrupt.check()?;
        out.push(vec![Value::Numeric(x)]);
        x = x
            .checked_add(s)
            .ok_or_else(|| SqlError::out_of_range("value overflows numeric format"))?;
    }
    Ok(out)
}

/// Accumulator of one aggregate call in one group.
#[derive(Debug, Clone)]
pub(crate) enum Acc {
    Count(i64),
    SumInt(Option<i128>),
    SumDec(Option<Decimal>),
    SumFloat(Option<f64>),
    AvgInt(i128, i64),
    AvgDec(Decimal, i64),
    AvgFloat(f64, i64),
    MinMax(Option<Value>),
    /// `string_agg`: the text so far (None before the first non-NULL value).
    Str(Option<String>),
    /// `array_agg`: the values so far (NULLs included).
    Array(Vec<Value>),
    /// `bool_and` / `bool_or`: None before the first non-NULL value.
    Bool(Option<bool>),
}

/// Orders two rows' ORDER BY values of an ordered aggregate (NULLS as each key says).
fn compare_agg_order(
    order: &[crate::query::AggOrder],
    a: &[Value],
    b: &[Value],
) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for ((o, x), y) in order.iter().zip(a).zip(b) {
        let c = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if o.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if o.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, false) => {
                let c = crate::types::compare_values(x, y).unwrap_or(Ordering::Equal);
                if o.desc {
                    c.reverse()
                } else {
                    c
                }
            }
        };
        if c != Ordering::Equal {
            return c;
        }
    }
    Ordering::Equal
}

pub(crate) fn new_acc(call: &AggCall) -> Acc {
    let int = call.arg_ty.is_integer();
    let float = matches!(call.arg_ty, DataType::Float4 | DataType::Float8);
    match call.func {
        AggFunc::CountStar | AggFunc::Count => Acc::Count(0),
        AggFunc::Sum if int && call.arg_ty != DataType::Int8 => Acc::SumInt(None),
        AggFunc::Sum if float => Acc::SumFloat(None),
        AggFunc::Sum => Acc::SumDec(None),
        AggFunc::Avg if int => Acc::AvgInt(0, 0),
        AggFunc::Avg if float => Acc::AvgFloat(0.0, 0),
        AggFunc::Avg => Acc::AvgDec(Decimal::ZERO, 0),
        AggFunc::Min | AggFunc::Max => Acc::MinMax(None),
        AggFunc::StringAgg => Acc::Str(None),
        AggFunc::BoolAnd | AggFunc::BoolOr => Acc::Bool(None),
        AggFunc::ArrayAgg => Acc::Array(Vec::new()),
    }
}

pub(crate) fn accumulate(acc: &mut Acc, call: &AggCall, v: Value) -> SqlResult<()> {
    if call.func == AggFunc::CountStar {
        if let Acc::Count(n) = acc {
            *n += 1;
        }
        return Ok(());
    }
    if v.is_null() && !matches!(acc, Acc::Array(_)) {
        return Ok(());
    }
    let overflow = || SqlError::out_of_range("value overflows numeric format");
    match acc {
        Acc::Count(n) => *n += 1,
        Acc::SumInt(s) => *s = Some(s.unwrap_or(0) + crate::types::as_i64(&v).unwrap_or(0) as i128),
        Acc::SumDec(s) => {
            let d = crate::types::as_decimal(&v).ok_or_else(overflow)?;
            *s = Some(
                s.unwrap_or(Decimal::ZERO)
                    .checked_add(d)
                    .ok_or_else(overflow)?,
            );
        }
        Acc::SumFloat(s) => *s = Some(s.unwrap_or(0.0) + crate::types::as_f64(&v).unwrap_or(0.0)),
        Acc::AvgInt(s, n) => {
            *s += crate::types::as_i64(&v).unwrap_or(0) as i128;
            *n += 1;
        }
        Acc::AvgDec(s, n) => {
            *s = s
                .checked_add(crate::types::as_decimal(&v).ok_or_else(overflow)?)
                .ok_or_else(overflow)?;
            *n += 1;
        }
        Acc::AvgFloat(s, n) => {
            *s += crate::types::as_f64(&v).unwrap_or(0.0);
            *n += 1;
        }
        Acc::Bool(b) => {
            let x = matches!(v, Value::Bool(true));
            *b = Some(match (*b, call.func) {
                (None, _) => x,
                (Some(y), AggFunc::BoolAnd) => y && x,
                (Some(y), _) => y || x,
            });
        }
        Acc::MinMax(cur) => {
            let replace = match cur {
                None => true,
                Some(c) => {
                    let o = compare_values(&v, c).unwrap_or(Ordering::Equal);
                    (call.func == AggFunc::Min && o == Ordering::Less)
                        || (call.func == AggFunc::Max && o == Ordering::Greater)
                }
            };
            if replace {
                *cur = Some(v);
            }
        }
        Acc::Array(items) => items.push(v),
        Acc::Str(cur) => {
            let v = v.to_text().unwrap_or_default();
            match cur {
                None => *cur = Some(v),
                Some(s) => {
                    if let Some(sep) = &call.separator {
                        s.push_str(sep);
                    }
                    s.push_str(&v);
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn finish(acc: Acc, call: &AggCall) -> SqlResult<Value> {
    let overflow = || SqlError::out_of_range("value overflows numeric format");
    Ok(match acc {
        Acc::Count(n) => Value::Int8(n),
        Acc::SumInt(s) => match s {
            None => Value::Null,
            Some(s) => Value::Int8(
                i64::try_from(s).map_err(|_| SqlError::out_of_range("bigint out of range"))?,
            ),
        },
        Acc::SumDec(s) => s.map(Value::Numeric).unwrap_or(Value::Null),
        Acc::SumFloat(s) => match s {
            None => Value::Null,
            Some(f) if call.arg_ty == DataType::Float4 => Value::Float4(f as f32),
            Some(f) => Value::Float8(f),
        },
        Acc::AvgInt(_, 0) | Acc::AvgDec(_, 0) | Acc::AvgFloat(_, 0) => Value::Null,
        Acc::AvgInt(s, n) => {
            let sum = Decimal::try_from_i128_with_scale(s, 0).map_err(|_| overflow())?;
            Value::Numeric(numeric_div(sum, Decimal::from(n))?)
        }
        Acc::AvgDec(s, n) => Value::Numeric(numeric_div(s, Decimal::from(n))?),
        Acc::AvgFloat(s, n) => Value::Float8(s / n as f64),
        Acc::MinMax(v) => v.unwrap_or(Value::Null),
        Acc::Str(s) => s.map(Value::Text).unwrap_or(Value::Null),
        Acc::Bool(b) => b.map(Value::Bool).unwrap_or(Value::Null),
        Acc::Array(items) if items.is_empty() => Value::Null,
        Acc::Array(items) => crate::array::construct(call.arg_ty, items)?,
    })
}

pub(crate) fn group_key(values: &[Value]) -> Vec<u8> {
    let mut k = Vec::new();
    for v in values {
        encode_key_value(v, &mut k);
    }
    k
}

fn aggregate(env: Env<'_>, plan: &AggPlan, rows: Vec<Vec<Value>>) -> SqlResult<Vec<Vec<Value>>> {
    struct Group {
        keys: Vec<Value>,
        accs: Vec<Acc>,
        seen: Vec<HashSet<Vec<u8>>>,
        /// Per aggregate with an ORDER BY: (order values, argument) of its rows, fed to the
        /// accumulator sorted when the group is finished.
        ordered: Vec<Vec<(Vec<Value>, Value)>>,
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    for row in rows {
        env.rd.interrupt.check()?;
        let keys = plan
            .group_by
            .iter()
            .map(|g| env.eval(g, &row))
            .collect::<SqlResult<Vec<_>>>()?;
        let gk = group_key(&keys);
        let gi = match index.get(&gk) {
            Some(i) => *i,
            None => {
                groups.push(Group {
                    keys,
                    accs: plan.aggs.iter().map(new_acc).collect(),
                    seen: plan.aggs.iter().map(|_| HashSet::new()).collect(),
                    ordered: plan.aggs.iter().map(|_| Vec::new()).collect(),
                });
                index.insert(gk, groups.len() - 1);
                groups.len() - 1
            }
        };
        let g = &mut groups[gi];
        for (j, call) in plan.aggs.iter().enumerate() {
            if let Some(f) = &call.filter {
                if truth(&env.eval(f, &row)?) != Some(true) {
                    continue;
                }
            }
            let v = match &call.arg {
                Some(a) => env.eval(a, &row)?,
                None => Value::Null,
            };
            if call.distinct
                && !v.is_null()
                && !g.seen[j].insert(group_key(std::slice::from_ref(&v)))
            {
                continue;
            }
            if !call.order_by.is_empty() {
                let keys = call
                    .order_by
                    .iter()
                    .map(|o| env.eval(&o.expr, &row))
                    .collect::<SqlResult<Vec<_>>>()?;
                g.ordered[j].push((keys, v));
                continue;
            }
            accumulate(&mut g.accs[j], call, v)?;
        }
    }
    if groups.is_empty() && plan.group_by.is_empty() {
        groups.push(Group {
            keys: vec![],
            accs: plan.aggs.iter().map(new_acc).collect(),
            seen: vec![],
            ordered: plan.aggs.iter().map(|_| Vec::new()).collect(),
        });
    }
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let mut row = g.keys;
        for ((mut acc, call), mut ordered) in g.accs.into_iter().zip(&plan.aggs).zip(g.ordered) {
            if !call.order_by.is_empty() {
                // A stable sort: rows equal on the keys keep their input order.
                ordered.sort_by(|(a, _), (b, _)| compare_agg_order(&call.order_by, a, b));
                for (_, v) in ordered {
                    accumulate(&mut acc, call, v)?;
                }
            }
            row.push(finish(acc, call)?);
        }
        if passes(env, plan.having.as_ref(), &row)? {
            out.push(row);
        }
    }
    Ok(out)
}

pub(crate) fn count_arg(env: Env<'_>, e: Option<&Expr>, what: &str) -> SqlResult<Option<i64>> {
    let Some(e) = e else { return Ok(None) };
    match env.eval(e, &[])? {
        Value::Null => Ok(None),
        v => {
            let n = crate::types::as_i64(&v).unwrap_or(0);
            if n < 0 {
                let (code, msg) = if what == "LIMIT" {
                    (
                        SqlState::INVALID_ROW_COUNT_IN_LIMIT,
                        "LIMIT must not be negative",
                    )
                } else {
                    (
                        SqlState::INVALID_ROW_COUNT_IN_OFFSET,
                        "OFFSET must not be negative",
                    )
                };
                return Err(SqlError::new(code, msg));
            }
            Ok(Some(n))
        }
    }
}

/// Whether the query names the `gnomon_mvcc_timestamp` system column of its table `def`
/// (the slot after the table's columns: `plan::add_mvcc_timestamp_column`).
fn reads_mvcc_timestamp(plan: &SelectPlan, def: &crate::catalog::TableDef) -> bool {
    plan.needed.get(def.columns.len()) == Some(&true)
}

/// The commit timestamp of the row version under `key` that this statement reads (NULL for
/// the transaction's own writes). NB: one extra engine lookup per row, paid only by queries
/// that name the column.
fn mvcc_timestamp(env: Env<'_>, key: &[u8]) -> Value {
    env.rd
        .txn
        .version_of(key)
        .map(crate::system::hlc_numeric)
        .unwrap_or(Value::Null)
}

/// Runs a SELECT and returns its visible rows.
pub(crate) fn select_rows(env: Env<'_>, plan: &SelectPlan) -> SqlResult<Vec<Vec<Value>>> {
    // Without aggregation or windows each row that passes the filter is projected at once;
    // with them, the passing rows are collected first.
    let mut rows = Vec::new();
    let streaming = plan.agg.is_none() && plan.windows.is_empty();
    let accept = |r: Vec<Value>, rows: &mut Vec<Vec<Value>>| -> SqlResult<()> {
        if !passes(env, plan.filter.as_ref(), &r)? {
            return Ok(());
        }
        rows.push(if streaming {
            project_row(env, plan, &r)?
        } else {
            r
        });
        Ok(())
    };
    let source = &plan.source;
    match source {
        Source::Table {
            def,
            access: crate::query::Access::Point(exprs),
        } => {
            if let Some((key, bytes)) = read_point(env, def, exprs)? {
                // NB: one row at most; sized up front rather than grown from empty.
                rows.reserve_exact(1);
                let mut r = decode_table_columns(def, &bytes, &plan.needed)?;
                if reads_mvcc_timestamp(plan, def) {
                    r.push(mvcc_timestamp(env, &key));
                }
                accept(r, &mut rows)?;
            }
        }
        Source::Table { def, access } => {
            let pairs = read_raw(env, def, access)?;
            rows.reserve(pairs.len());
            let with_ts = reads_mvcc_timestamp(plan, def);
            for (key, bytes) in pairs {
                env.rd.interrupt.check()?;
                let mut r = decode_table_columns(def, &bytes, &plan.needed)?;
                if with_ts {
                    r.push(mvcc_timestamp(env, &key));
                }
                accept(r, &mut rows)?;
            }
        }
        other => {
            for r in source_rows(env, other)? {
                env.rd.interrupt.check()?;
                accept(r, &mut rows)?;
            }
        }
    }
    if matches!(source, Source::Table { .. }) {
        env.rd.record(source, rows.len());
    }
    let mut projected = match &plan.agg {
        None if streaming => rows,
        None => {
            let rows = crate::window::compute_windows(env, &plan.windows, rows)?;
            let mut projected = Vec::with_capacity(rows.len());
            for r in &rows {
                projected.push(project_row(env, plan, r)?);
            }
            projected
        }
        Some(agg) => {
            let groups = aggregate(env, agg, rows)?;
            let groups = crate::window::compute_windows(env, &plan.windows, groups)?;
            let mut projected = Vec::with_capacity(groups.len());
            for r in &groups {
                env.rd.interrupt.check()?;
                projected.push(project_row(env, plan, r)?);
            }
            projected
        }
    };
    if !plan.srf.is_empty() {
        projected = expand_set_columns(projected, &plan.srf)?;
    }
    if plan.distinct {
        let mut seen = HashSet::new();
        projected.retain(|r| seen.insert(group_key(&r[..plan.visible])));
    }
    sort_rows(&mut projected, &plan.order);
    let offset = count_arg(env, plan.offset.as_ref(), "OFFSET")?.unwrap_or(0) as usize;
    let limit = count_arg(env, plan.limit.as_ref(), "LIMIT")?;
    let mut out = projected;
    out.drain(..offset.min(out.len()));
    if let Some(l) = limit {
        out.truncate(l as usize);
    }
    for r in &mut out {
        r.truncate(plan.visible);
    }
    Ok(out)
}

/// Expands set-returning select-list columns: each row becomes as many rows as its longest
/// set, the sets side by side (NULL past the end of a shorter one), elements cast to their
/// column's type; a row whose sets are all empty or NULL goes away (PostgreSQL 10+).
fn expand_set_columns(
    rows: Vec<Vec<Value>>,
    srf: &[(usize, DataType)],
) -> SqlResult<Vec<Vec<Value>>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let sets = srf
            .iter()
            .map(|(i, _)| crate::array::elements(&row[*i]))
            .collect::<SqlResult<Vec<_>>>()?;
        let n = sets.iter().map(Vec::len).max().unwrap_or(0);
        for k in 0..n {
            let mut r = row.clone();
            for ((i, ty), set) in srf.iter().zip(&sets) {
                let v = set.get(k).cloned().unwrap_or(Value::Null);
                r[*i] = crate::expr::cast(v, ty, true)?;
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// Compares two values for ORDER BY under one sort key (NULLs placed as the key says).
pub(crate) fn compare_for_sort(x: &Value, y: &Value, desc: bool, nulls_first: bool) -> Ordering {
    match (x.is_null(), y.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => {
            if nulls_first {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (false, true) => {
            if nulls_first {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        _ => {
            let o = compare_values(x, y).unwrap_or(Ordering::Equal);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    }
}

/// Sorts rows by `order` (stable: equal rows keep their order).
pub(crate) fn sort_rows(rows: &mut [Vec<Value>], order: &[SortKey]) {
    if order.is_empty() {
        return;
    }
    rows.sort_by(|a, b| {
        for k in order {
            let o = compare_for_sort(&a[k.index], &b[k.index], k.desc, k.nulls_first);
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
}

/// The select list of `plan` evaluated over one row (or group).
fn project_row(env: Env<'_>, plan: &SelectPlan, r: &[Value]) -> SqlResult<Vec<Value>> {
    let mut out = Vec::with_capacity(plan.project.len());
    for e in &plan.project {
        out.push(env.eval(e, r)?);
    }
    Ok(out)
}

/// The rows a source produces (before the query's own filter).
pub(crate) fn source_rows(env: Env<'_>, source: &Source) -> SqlResult<Vec<Vec<Value>>> {
    let rows = source_rows_unrecorded(env, source)?;
    env.rd.record(source, rows.len());
    Ok(rows)
}

fn source_rows_unrecorded(env: Env<'_>, source: &Source) -> SqlResult<Vec<Vec<Value>>> {
    Ok(match source {
        Source::Single => vec![vec![]],
        Source::Table { def, access } => {
            let all = vec![true; def.columns.len()];
            let pairs = read_raw(env, def, access)?;
            let mut out = Vec::with_capacity(pairs.len());
            for (_, bytes) in pairs {
                out.push(decode_table_columns(def, &bytes, &all)?);
            }
            out
        }
        Source::Series {
            start,
            stop,
            step,
            ty,
        } => series(env, start, stop, step.as_ref(), ty)?,
        Source::Values(rows) => {
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(
                    r.iter()
                        .map(|e| env.eval(e, &[]))
                        .collect::<SqlResult<Vec<_>>>()?,
                );
            }
            out
        }
        Source::Filter(inner, f) => {
            let mut rows = source_rows(env, inner)?;
            let mut keep = Vec::with_capacity(rows.len());
            for r in rows.drain(..) {
                env.rd.interrupt.check()?;
                if passes(env, Some(f), &r)? {
                    keep.push(r);
                }
            }
            keep
        }
        Source::System(view) => view.rows(env.rd.txn, env.rd.txn.db())?,
        Source::Unnest(e, ty) => crate::catalog_fns::unnest_rows(&env.eval(e, &[])?, ty)?,
        Source::Ordinality(inner) => {
            let mut rows = source_rows(env, inner)?;
            for (n, r) in rows.iter_mut().enumerate() {
                r.push(Value::Int8(n as i64 + 1));
            }
            rows
        }
        Source::Append(a) => {
            let keep = crate::partition::runtime_keep(a, env.rd.params);
            let mut out = Vec::new();
            for (part, k) in a.parts.iter().zip(keep) {
                if k {
                    out.extend(source_rows(env, part)?);
                }
            }
            out
        }
        Source::Query(q) => select_rows(env, q)?,
        Source::Join(j) => join_rows(env, j)?,
        Source::SetOp(s) => set_op_rows(env, s)?,
        Source::Recursive(r) => recursive_rows(env, r)?,
        Source::WorkTable { id, .. } => {
            let work = env.rd.work.borrow();
            match work.iter().rev().find(|(k, _)| k == id) {
                Some((_, rows)) => rows.as_ref().clone(),
                None => return Err(SqlError::internal("recursive working table missing")),
            }
        }
    })
}

/// A hashable key of values compared as `types` (None if some value is NULL: NULL never
/// equals anything).
fn join_key(
    env: Env<'_>,
    exprs: &[Expr],
    types: &[DataType],
    row: &[Value],
) -> SqlResult<Option<Vec<u8>>> {
    let mut key = Vec::new();
    for (e, t) in exprs.iter().zip(types) {
        let v = env.eval(e, row)?;
        if v.is_null() {
            return Ok(None);
        }
        let v = match cast(v, t, false) {
            Ok(Value::Numeric(d)) => Value::Numeric(d.normalize()),
            Ok(v) => v,
            // A value that cannot take the comparison type equals nothing of it.
            Err(_) => return Ok(None),
        };
        encode_key_value(&v, &mut key);
    }
    Ok(Some(key))
}

fn join_rows(env: Env<'_>, j: &JoinPlan) -> SqlResult<Vec<Vec<Value>>> {
    let left = source_rows(env, &j.left)?;
    let concat = |l: &[Value], r: &[Value]| {
        let mut row = Vec::with_capacity(j.left_width + j.right_width);
        row.extend_from_slice(l);
        row.extend_from_slice(r);
        row
    };
    let null_left = vec![Value::Null; j.left_width];
    let null_right = vec![Value::Null; j.right_width];
    let mut out = Vec::new();
    if let JoinMethod::IndexLookup { access } = &j.method {
        // Per left row: seek the right table with the key taken from the left row.
        let (def, filter) = match &j.right {
            Source::Table { def, .. } => (def, None),
            Source::Filter(inner, f) => match inner.as_ref() {
                Source::Table { def, .. } => (def, Some(f)),
                _ => return Err(SqlError::internal("index lookup on a non-table")),
            },
            _ => return Err(SqlError::internal("index lookup on a non-table")),
        };
        let all = vec![true; def.columns.len()];
        for l in &left {
            env.rd.interrupt.check()?;
            let bound = access.with_row(env, l)?;
            let mut matched = false;
            let mut found = 0;
            for (_, bytes) in read_raw(env, def, &bound)? {
                let r = decode_table_columns(def, &bytes, &all)?;
                if !passes(env, filter, &r)? {
                    continue;
                }
                found += 1;
                let row = concat(l, &r);
                if passes(env, j.on.as_ref(), &row)? {
                    matched = true;
                    out.push(row);
                }
            }
            env.rd.record(&j.right, found);
            if !matched && j.kind == JoinKind::Left {
                out.push(concat(l, &null_right));
            }
        }
        return Ok(out);
    }
    let right = source_rows(env, &j.right)?;
    let mut right_matched = vec![false; right.len()];
    // Candidate right rows per left row: all of them, or those with equal hash keys.
    let table: Option<HashMap<Vec<u8>, Vec<usize>>> = match &j.method {
        JoinMethod::Hash {
            right_keys, types, ..
        } => {
            let mut t: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
            for (i, r) in right.iter().enumerate() {
                if let Some(k) = join_key(env, right_keys, types, r)? {
                    t.entry(k).or_default().push(i);
                }
            }
            Some(t)
        }
        _ => None,
    };
    let all_right: Vec<usize> = (0..right.len()).collect();
    let empty: Vec<usize> = Vec::new();
    for l in &left {
        env.rd.interrupt.check()?;
        let candidates: &Vec<usize> = match (&table, &j.method) {
            (
                Some(t),
                JoinMethod::Hash {
                    left_keys, types, ..
                },
            ) => match join_key(env, left_keys, types, l)? {
                Some(k) => t.get(&k).unwrap_or(&empty),
                None => &empty,
            },
            _ => &all_right,
        };
        let mut matched = false;
        for &ri in candidates {
            let row = concat(l, &right[ri]);
            if passes(env, j.on.as_ref(), &row)? {
                matched = true;
                right_matched[ri] = true;
                out.push(row);
            }
        }
        if !matched && matches!(j.kind, JoinKind::Left | JoinKind::Full) {
            out.push(concat(l, &null_right));
        }
    }
    if matches!(j.kind, JoinKind::Right | JoinKind::Full) {
        for (ri, r) in right.iter().enumerate() {
            if !right_matched[ri] {
                out.push(concat(&null_left, r));
            }
        }
    }
    Ok(out)
}

fn set_op_rows(env: Env<'_>, s: &SetOpPlan) -> SqlResult<Vec<Vec<Value>>> {
    let left = select_rows(env, &s.left)?;
    let right = select_rows(env, &s.right)?;
    Ok(set_op(s.op, s.all, left, right))
}

/// UNION / INTERSECT / EXCEPT with PostgreSQL's multiset rules for ALL (NULLs are equal
/// to each other here, as in DISTINCT).
pub(crate) fn set_op(
    op: SetOpKind,
    all: bool,
    left: Vec<Vec<Value>>,
    right: Vec<Vec<Value>>,
) -> Vec<Vec<Value>> {
    match op {
        SetOpKind::Union => {
            let mut out = left;
            out.extend(right);
            if !all {
                let mut seen = HashSet::new();
                out.retain(|r| seen.insert(group_key(r)));
            }
            out
        }
        SetOpKind::Intersect | SetOpKind::Except => {
            let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
            for r in &right {
                *counts.entry(group_key(r)).or_default() += 1;
            }
            let mut out = Vec::new();
            let mut emitted = HashSet::new();
            for r in left {
                let k = group_key(&r);
                let c = counts.get(&k).copied().unwrap_or(0);
                let keep = match (op, all) {
                    (SetOpKind::Intersect, true) => {
                        if c > 0 {
                            counts.insert(k.clone(), c - 1);
                            true
                        } else {
                            false
                        }
                    }
                    (SetOpKind::Intersect, false) => c > 0 && emitted.insert(k.clone()),
                    (_, true) => {
                        if c > 0 {
                            counts.insert(k.clone(), c - 1);
                            false
                        } else {
                            true
                        }
                    }
                    (_, false) => c == 0 && emitted.insert(k.clone()),
                };
                if keep {
                    out.push(r);
                }
            }
            out
        }
    }
}

/// WITH RECURSIVE: iterate the recursive term over the last iteration's new rows.
fn recursive_rows(env: Env<'_>, r: &RecursivePlan) -> SqlResult<Vec<Vec<Value>>> {
    let mut seen = HashSet::new();
    let mut fresh: Vec<Vec<Value>> = select_rows(env, &r.base)?;
    if !r.all {
        fresh.retain(|row| seen.insert(group_key(row)));
    }
    let mut out = fresh.clone();
    while !fresh.is_empty() {
        env.rd.interrupt.check()?;
        env.rd.work.borrow_mut().push((r.id, Rc::new(fresh)));
        let next = select_rows(env, &r.step);
        env.rd.work.borrow_mut().pop();
        let mut next = next?;
        if !r.all {
            next.retain(|row| seen.insert(group_key(row)));
        }
        out.extend(next.iter().cloned());
        fresh = next;
    }
    Ok(out)
}
