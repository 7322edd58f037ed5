//! EXPLAIN [ANALYZE]: the plan tree in PostgreSQL's text layout, one output row per line.
//!
//! ```text
//!  Sort
//!    ->  Hash Join (Left)
//!          Hash Keys: 1
//!          ->  Seq Scan on a
//!          ->  Index Scan using b_pkey on b
//!                Index Cond: point (id)
//! ```
//!
//! Nodes name the access path (Seq Scan, Index Scan using the primary key as a point read or
//! a key range), the join method (Nested Loop, Hash Join, Index Nested Loop) and the query
//! steps around them (Aggregate, WindowAgg, Unique, Sort, Limit, set operations, subquery
//! and CTE scans). With ANALYZE the statement runs (its writes too, as in PostgreSQL) and
//! each source node shows `(actual rows=N loops=L)`: the rows it produced summed over its
//! loops. There are no cost estimates: Gnomon keeps no table statistics yet.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::error::SqlResult;
use crate::plan::{JoinKind, JoinMethod, SetOpKind};
use crate::query::{execute, Access, ExecContext, Plan, SelectPlan, Source};
use crate::session::{Column, Outcome};
use crate::types::{DataType, Value};

/// Runs EXPLAIN for a bound statement.
pub(crate) fn explain(ctx: &mut ExecContext<'_>, plan: &Plan, analyze: bool) -> SqlResult<Outcome> {
    let profile = if analyze {
        match plan {
            Plan::Select(s) => {
                let mut reader = ctx.reader();
                reader.profile = Some(RefCell::new(HashMap::new()));
                crate::exec::select_rows(reader.env(), s)?;
                reader.profile.map(|p| p.into_inner())
            }
            other => {
                execute(ctx, other)?;
                Some(HashMap::new())
            }
        }
    } else {
        None
    };
    let mut out = Lines {
        lines: Vec::new(),
        profile,
    };
    match plan {
        Plan::Select(s) => out.select(s, 0, None),
        Plan::Insert { table, .. } => out.node(0, format!("Insert on {}", table.name), None),
        Plan::Merge(m) => out.node(0, m.explain(), None),
        Plan::Update {
            table,
            access,
            filter,
            ..
        } => {
            out.node(0, format!("Update on {}", table.name), None);
            out.dml_scan(ctx, table, access, filter.as_ref())?;
        }
        Plan::Delete {
            table,
            access,
            filter,
            ..
        } => {
            out.node(0, format!("Delete on {}", table.name), None);
            out.dml_scan(ctx, table, access, filter.as_ref())?;
        }
    }
    Ok(Outcome::Rows {
        columns: vec![Column {
            name: "QUERY PLAN".into(),
            ty: DataType::Text,
            table_oid: 0,
            column_id: 0,
        }]
        .into(),
        rows: out
            .lines
            .into_iter()
            .map(|l| vec![Value::Text(l)])
            .collect(),
        tag: "EXPLAIN".into(),
    })
}

struct Lines {
    lines: Vec<String>,
    profile: Option<HashMap<usize, (u64, u64)>>,
}

fn indent(depth: usize) -> String {
    if depth == 0 {
        String::new()
    } else {
        format!("{}->  ", " ".repeat(6 * depth - 4))
    }
}

fn detail_indent(depth: usize) -> String {
    " ".repeat(if depth == 0 { 2 } else { 6 * depth + 2 })
}

impl Lines {
    /// One node line; `key` identifies the node in the ANALYZE profile.
    fn node(&mut self, depth: usize, text: String, key: Option<usize>) {
        let actual = match (&self.profile, key) {
            (Some(p), Some(k)) => {
                let (rows, loops) = p.get(&k).copied().unwrap_or((0, 0));
                format!("  (actual rows={rows} loops={loops})")
            }
            _ => String::new(),
        };
        self.lines.push(format!("{}{text}{actual}", indent(depth)));
    }

    fn detail(&mut self, depth: usize, text: String) {
        self.lines.push(format!("{}{text}", detail_indent(depth)));
    }

    fn select(&mut self, s: &SelectPlan, mut depth: usize, key: Option<usize>) {
        let mut key = key;
        if s.limit.is_some() || s.offset.is_some() {
            self.node(depth, "Limit".into(), key.take());
            depth += 1;
        }
        if !s.order.is_empty() {
            self.node(depth, "Sort".into(), key.take());
            depth += 1;
        }
        if s.distinct {
            self.node(depth, "Unique".into(), key.take());
            depth += 1;
        }
        if !s.windows.is_empty() {
            self.node(depth, "WindowAgg".into(), key.take());
            depth += 1;
        }
        if let Some(a) = &s.agg {
            let name = if a.group_by.is_empty() {
                "Aggregate"
            } else {
                "HashAggregate"
            };
            self.node(depth, name.into(), key.take());
            if a.having.is_some() {
                self.detail(depth, "Filter: HAVING".into());
            }
            depth += 1;
        }
        if let Some(k) = key {
            // A subquery or derived table whose plan is just its source.
            if matches!(s.source, Source::Single) {
                self.node(depth, "Result".into(), Some(k));
                return;
            }
            self.node(depth, "Subquery Scan".into(), Some(k));
            depth += 1;
        }
        let filter = s.filter.is_some();
        self.source(&s.source, depth, filter, None);
    }

    /// The scan under an UPDATE or DELETE: the table, or an Append over the partitions of a
    /// partitioned table that survive plan-time pruning.
    fn dml_scan(
        &mut self,
        ctx: &ExecContext<'_>,
        table: &crate::catalog::TableDef,
        access: &Access,
        filter: Option<&crate::expr::Expr>,
    ) -> SqlResult<()> {
        if table.partitioning.key.is_none() {
            self.table(table, access, 1, None);
            return Ok(());
        }
        let parts = crate::partition::partitions_of(ctx.catalog, &*ctx.txn, table)?;
        let conds = crate::plan::conjuncts(filter.cloned());
        let keep =
            crate::partition::prune(table, &parts, &conds, &crate::partition::plan_time_value);
        let surviving: Vec<_> = parts.iter().zip(keep).filter(|(_, k)| *k).collect();
        if surviving.is_empty() {
            self.node(1, "Result".into(), None);
            self.detail(1, "One-Time Filter: false".into());
            return Ok(());
        }
        self.node(1, "Append".into(), None);
        for (p, _) in surviving {
            self.table(p, access, 2, None);
        }
        Ok(())
    }

    fn table(
        &mut self,
        def: &crate::catalog::TableDef,
        access: &Access,
        depth: usize,
        key: Option<usize>,
    ) {
        let pk: Vec<&str> = def
            .primary_key
            .iter()
            .map(|&i| def.columns[i].name.as_str())
            .collect();
        match access {
            Access::Full => self.node(depth, format!("Seq Scan on {}", def.name), key),
            Access::Point(_) => {
                self.node(
                    depth,
                    format!("Index Scan using {} on {}", def.pkey_name(), def.name),
                    key,
                );
                self.detail(depth, format!("Index Cond: point ({})", pk.join(", ")));
            }
            Access::Index { index, prefix, .. } => {
                let ix = &def.indexes[*index];
                let cols: Vec<&str> = ix
                    .columns
                    .iter()
                    .map(|&i| def.columns[i].name.as_str())
                    .collect();
                self.node(
                    depth,
                    format!("Index Scan using {} on {}", ix.name, def.name),
                    key,
                );
                self.detail(
                    depth,
                    format!(
                        "Index Cond: range ({}), {} leading column(s) fixed",
                        cols.join(", "),
                        prefix.len()
                    ),
                );
            }
            Access::Range { prefix, .. } => {
                self.node(
                    depth,
                    format!("Index Scan using {} on {}", def.pkey_name(), def.name),
                    key,
                );
                self.detail(
                    depth,
                    format!(
                        "Index Cond: range ({}), {} leading column(s) fixed",
                        pk.join(", "),
                        prefix.len()
                    ),
                );
            }
        }
    }

    /// A source node; `key` overrides the node's own profile key (a filter's rows are
    /// counted on the filter, shown on the node it filters).
    fn source(&mut self, s: &Source, depth: usize, filtered: bool, key: Option<usize>) {
        let key = key.or(Some(s as *const Source as usize));
        match s {
            Source::Single => self.node(depth, "Result".into(), key),
            Source::Table { def, access } => {
                self.table(def, access, depth, key);
                if filtered {
                    self.detail(depth, "Filter: WHERE".into());
                }
            }
            Source::System(v) => self.node(depth, format!("Function Scan on {}", v.name()), key),
            Source::Series { .. } => {
                self.node(depth, "Function Scan on generate_series".into(), key)
            }
            Source::Unnest(..) => self.node(depth, "Function Scan on unnest".into(), key),
            Source::Values(rows) => {
                self.node(depth, format!("Values Scan ({} rows)", rows.len()), key)
            }
            Source::Filter(inner, _) => self.source(inner, depth, true, key),
            Source::Ordinality(inner) => self.source(inner, depth, filtered, key),
            Source::Append(a) => {
                if a.parts.is_empty() {
                    // PostgreSQL: every partition pruned.
                    self.node(depth, "Result".into(), key);
                    self.detail(depth, "One-Time Filter: false".into());
                    return;
                }
                self.node(depth, "Append".into(), key);
                for p in &a.parts {
                    self.source(p, depth + 1, filtered, None);
                }
            }
            Source::Query(q) => {
                self.node(depth, "Subquery Scan".into(), key);
                self.select(q, depth + 1, None);
            }
            Source::SetOp(op) => {
                let name = match (op.op, op.all) {
                    (SetOpKind::Union, true) => "Append",
                    (SetOpKind::Union, false) => "HashAggregate (UNION)",
                    (SetOpKind::Intersect, true) => "HashSetOp Intersect All",
                    (SetOpKind::Intersect, false) => "HashSetOp Intersect",
                    (SetOpKind::Except, true) => "HashSetOp Except All",
                    (SetOpKind::Except, false) => "HashSetOp Except",
                };
                self.node(depth, name.into(), key);
                self.select(&op.left, depth + 1, None);
                self.select(&op.right, depth + 1, None);
            }
            Source::Recursive(r) => {
                self.node(depth, "Recursive Union".into(), key);
                self.select(&r.base, depth + 1, None);
                self.select(&r.step, depth + 1, None);
            }
            Source::WorkTable { .. } => self.node(depth, "WorkTable Scan".into(), key),
            Source::Join(j) => {
                let kind = match j.kind {
                    JoinKind::Inner => "",
                    JoinKind::Left => " Left Join",
                    JoinKind::Right => " Right Join",
                    JoinKind::Full => " Full Join",
                };
                let name = match &j.method {
                    JoinMethod::NestedLoop => format!("Nested Loop{kind}"),
                    JoinMethod::Hash { .. } => {
                        if kind.is_empty() {
                            "Hash Join".to_string()
                        } else {
                            format!("Hash{kind}")
                        }
                    }
                    JoinMethod::IndexLookup { .. } => format!("Index Nested Loop{kind}"),
                };
                self.node(depth, name, key);
                if let JoinMethod::Hash { left_keys, .. } = &j.method {
                    self.detail(depth, format!("Hash Keys: {}", left_keys.len()));
                }
                if filtered {
                    self.detail(depth, "Filter: WHERE".into());
                }
                self.source(&j.left, depth + 1, false, None);
                match &j.method {
                    JoinMethod::Hash { .. } => {
                        self.node(depth + 1, "Hash".into(), None);
                        self.source(&j.right, depth + 2, false, None);
                    }
                    JoinMethod::IndexLookup { access } => {
                        let rkey = Some(&j.right as *const Source as usize);
                        let (def, filtered) = match &j.right {
                            Source::Filter(inner, _) => (inner.as_ref(), true),
                            other => (other, false),
                        };
                        if let Source::Table { def, .. } = def {
                            self.table(def, access, depth + 1, rkey);
                            if filtered {
                                self.detail(depth + 1, "Filter: WHERE".into());
                            }
                        }
                    }
                    JoinMethod::NestedLoop => self.source(&j.right, depth + 1, false, None),
                }
            }
        }
    }
}
