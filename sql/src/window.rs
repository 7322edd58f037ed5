//! Window functions: `row_number()`, `rank()`, `dense_rank()` and the aggregates
//! `count/sum/avg/min/max(...) OVER (PARTITION BY ... ORDER BY ...)`.
//!
//! They run after WHERE, grouping and HAVING, on the rows the select list is evaluated on;
//! each window call appends one column to every row (the binder refers to it by that
//! position). Frames are PostgreSQL's default: with ORDER BY, from the partition start to
//! the current row's last peer (RANGE UNBOUNDED PRECEDING); without, the whole partition.
//! Explicit frame clauses are not supported.

use std::cmp::Ordering;

use crate::error::SqlResult;
use crate::exec::{compare_for_sort, group_key, Env};
use crate::expr::Expr;
use crate::query::AggCall;
use crate::types::Value;

/// Which function a window call computes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WindowFunc {
    RowNumber,
    Rank,
    DenseRank,
    Aggregate(AggCall),
}

/// One `f(...) OVER (...)` of a query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WindowCall {
    pub func: WindowFunc,
    pub partition: Vec<Expr>,
    /// (expression, descending, nulls first)
    pub order: Vec<(Expr, bool, bool)>,
}

/// Appends one column per window call to every row (row order is kept).
pub(crate) fn compute_windows(
    env: Env<'_>,
    windows: &[WindowCall],
    mut rows: Vec<Vec<Value>>,
) -> SqlResult<Vec<Vec<Value>>> {
    for w in windows {
        let values = compute_one(env, w, &rows)?;
        for (r, v) in rows.iter_mut().zip(values) {
            r.push(v);
        }
    }
    Ok(rows)
}

fn compute_one(env: Env<'_>, w: &WindowCall, rows: &[Vec<Value>]) -> SqlResult<Vec<Value>> {
    // Evaluate partition and order keys once per row.
    let mut keyed = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        env.rd.interrupt.check()?;
        let part = w
            .partition
            .iter()
            .map(|e| env.eval(e, r))
            .collect::<SqlResult<Vec<_>>>()?;
        let ord = w
            .order
            .iter()
            .map(|(e, _, _)| env.eval(e, r))
            .collect::<SqlResult<Vec<_>>>()?;
        keyed.push((group_key(&part), ord, i));
    }
    let cmp_order = |a: &[Value], b: &[Value]| -> Ordering {
        for (k, (_, desc, nulls_first)) in w.order.iter().enumerate() {
            let o = compare_for_sort(&a[k], &b[k], *desc, *nulls_first);
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    };
    keyed.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| cmp_order(&a.1, &b.1))
            .then(a.2.cmp(&b.2))
    });
    let mut out = vec![Value::Null; rows.len()];
    let mut start = 0;
    while start < keyed.len() {
        let mut end = start + 1;
        while end < keyed.len() && keyed[end].0 == keyed[start].0 {
            end += 1;
        }
        let part = &keyed[start..end];
        // Peer groups: rows equal under ORDER BY (all rows are peers without ORDER BY).
        let mut peer_start = 0;
        let mut rank = 1i64;
        let mut dense = 0i64;
        let mut acc = match &w.func {
            WindowFunc::Aggregate(call) => Some(crate::exec::new_acc(call)),
            _ => None,
        };
        while peer_start < part.len() {
            let mut peer_end = peer_start + 1;
            while peer_end < part.len()
                && (w.order.is_empty()
                    || cmp_order(&part[peer_end].1, &part[peer_start].1) == Ordering::Equal)
            {
                peer_end += 1;
            }
            dense += 1;
            if let (WindowFunc::Aggregate(call), Some(a)) = (&w.func, acc.as_mut()) {
                for (_, _, i) in &part[peer_start..peer_end] {
                    let r = &rows[*i];
                    if let Some(f) = &call.filter {
                        if crate::expr::truth(&env.eval(f, r)?) != Some(true) {
                            continue;
                        }
                    }
                    let v = match &call.arg {
                        Some(e) => env.eval(e, r)?,
                        None => Value::Null,
                    };
                    crate::exec::accumulate(a, call, v)?;
                }
            }
            for (k, (_, _, i)) in part[peer_start..peer_end].iter().enumerate() {
                out[*i] = match &w.func {
                    WindowFunc::RowNumber => Value::Int8((peer_start + k + 1) as i64),
                    WindowFunc::Rank => Value::Int8(rank),
                    WindowFunc::DenseRank => Value::Int8(dense),
                    WindowFunc::Aggregate(call) => match &acc {
                        Some(a) => crate::exec::finish(a.clone(), call)?,
                        None => Value::Null,
                    },
                };
            }
            rank += (peer_end - peer_start) as i64;
            peer_start = peer_end;
        }
        start = end;
    }
    Ok(out)
}
