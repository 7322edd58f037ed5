//! Relational planning: name scopes, FROM clauses (joins, derived tables, CTEs), subquery
//! expressions, set operations, and where the conjuncts of WHERE and ON are evaluated in a
//! join tree.
//!
//! A FROM clause becomes a tree of [`Source`]s whose rows are the concatenation of their
//! inputs' columns, left to right; a [`Scope`] names those columns. After WHERE is bound,
//! [`place_conjuncts`] moves each conjunct as far down the tree as SQL allows (never below
//! the nullable side of an outer join), so single-table conjuncts choose that table's access
//! path and two-sided equalities become join keys. Each join then picks its method
//! ([`choose_join_method`]):
//!
//! ```text
//!   IndexLookup  right side is a table whose primary-key prefix is fixed by `right.k = f(left)`
//!                (seek per left row; INNER and LEFT joins)
//!   Hash         some `f(left) = g(right)` equality: build on the right rows, probe per left row
//!   NestedLoop   anything else (every pair is tested)
//! ```
//!
//! Whatever the method, the whole join condition is re-checked on each candidate pair, so
//! the method only narrows the pairs tried (the join form of invariant 5).
//!
//! Subqueries are bound with the scopes of the enclosing queries on a stack: a name not
//! found locally resolves outward into an [`Expr::Outer`] reference (depth = how many
//! query levels out), and the subquery is marked correlated.

use sqlparser::ast;

use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::{comparison_type, BinOp, Expr, Subquery, SubqueryKind};
use crate::query::{
    choose_access, ident_name, object_name, pk_access, Access, Binder, SelectPlan, Source,
};
use crate::session::Column;
use crate::types::DataType;

// ---------------------------------------------------------------------------------------
// Scopes.

/// One column of the rows a FROM clause produces.
#[derive(Debug, Clone)]
pub(crate) struct ScopeColumn {
    pub qualifier: Option<String>,
    pub name: String,
    pub ty: DataType,
    pub table_oid: u32,
    pub column_id: i16,
    /// Reachable by its unqualified name; false for a column replaced by the merged column
    /// of a USING or NATURAL join (which the unqualified name then means).
    pub unqualified: bool,
}

/// A USING/NATURAL join column: one name for the equal columns of both sides.
#[derive(Debug, Clone)]
pub(crate) struct MergedColumn {
    pub name: String,
    pub expr: Expr,
    pub ty: DataType,
}

/// What `*` expands to, in order.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StarItem {
    Column(usize),
    Merged(usize),
}

/// The names visible in a query: the columns of its FROM rows, in row order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    pub cols: Vec<ScopeColumn>,
    pub merged: Vec<MergedColumn>,
    pub star: Vec<StarItem>,
}

/// A name resolved in a scope.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub expr: Expr,
    pub ty: DataType,
    pub name: String,
    pub table_oid: u32,
    pub column_id: i16,
}

impl Scope {
    /// A scope of plain columns (all reachable unqualified, all in `*`).
    pub(crate) fn of_columns(cols: Vec<ScopeColumn>) -> Scope {
        let star = (0..cols.len()).map(StarItem::Column).collect();
        Scope {
            cols,
            merged: vec![],
            star,
        }
    }

    /// The columns of a table under its name or alias.
    pub(crate) fn of_table(def: &crate::catalog::TableDef, alias: Option<String>) -> Scope {
        let q = alias.unwrap_or_else(|| def.name.clone());
        Scope::of_columns(
            def.columns
                .iter()
                .enumerate()
                .map(|(i, c)| ScopeColumn {
                    qualifier: Some(q.clone()),
                    name: c.name.clone(),
                    ty: c.ty,
                    table_oid: def.id.0,
                    column_id: i as i16 + 1,
                    unqualified: true,
                })
                .collect(),
        )
    }

    /// The output columns of a query (derived table, CTE) under `qualifier`, renamed by
    /// `names` where given.
    fn of_query(
        columns: &[Column],
        qualifier: &str,
        names: &[ast::TableAliasColumnDef],
    ) -> SqlResult<Scope> {
        if names.len() > columns.len() {
            return Err(SqlError::new(
                SqlState::INVALID_COLUMN_REFERENCE,
                format!(
                    "table \"{qualifier}\" has {} columns available but {} columns specified",
                    columns.len(),
                    names.len()
                ),
            ));
        }
        Ok(Scope::of_columns(
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| ScopeColumn {
                    qualifier: Some(qualifier.to_string()),
                    name: names
                        .get(i)
                        .map(|n| ident_name(&n.name))
                        .unwrap_or_else(|| c.name.clone()),
                    ty: c.ty,
                    table_oid: c.table_oid,
                    column_id: c.column_id,
                    unqualified: true,
                })
                .collect(),
        ))
    }

    fn resolved_column(&self, i: usize) -> Resolved {
        let c = &self.cols[i];
        Resolved {
            expr: Expr::Column(i),
            ty: c.ty,
            name: c.name.clone(),
            table_oid: c.table_oid,
            column_id: c.column_id,
        }
    }

    /// Resolves a possibly qualified column name.
    pub(crate) fn resolve(&self, qualifier: Option<&str>, name: &str) -> SqlResult<Resolved> {
        let mut hits: Vec<Resolved> = Vec::new();
        if qualifier.is_none() {
            for m in self.merged.iter().filter(|m| m.name == name) {
                hits.push(Resolved {
                    expr: m.expr.clone(),
                    ty: m.ty,
                    name: m.name.clone(),
                    table_oid: 0,
                    column_id: 0,
                });
            }
        }
        for (i, c) in self.cols.iter().enumerate() {
            let matches = c.name == name
                && match qualifier {
                    Some(q) => c.qualifier.as_deref() == Some(q),
                    None => c.unqualified,
                };
            if matches {
                hits.push(self.resolved_column(i));
            }
        }
        match hits.len() {
            1 => Ok(hits.remove(0)),
            0 => {
                if let Some(q) = qualifier {
                    if !self.cols.iter().any(|c| c.qualifier.as_deref() == Some(q)) {
                        return Err(SqlError::new(
                            SqlState::UNDEFINED_TABLE,
                            format!("missing FROM-clause entry for table \"{q}\""),
                        ));
                    }
                    Err(SqlError::new(
                        SqlState::UNDEFINED_COLUMN,
                        format!("column {q}.{name} does not exist"),
                    ))
                } else {
                    Err(SqlError::new(
                        SqlState::UNDEFINED_COLUMN,
                        format!("column \"{name}\" does not exist"),
                    ))
                }
            }
            _ => Err(SqlError::new(
                SqlState::AMBIGUOUS_COLUMN,
                format!("column reference \"{name}\" is ambiguous"),
            )),
        }
    }

    /// What `*` (or `qualifier.*`) expands to.
    pub(crate) fn expand_star(&self, qualifier: Option<&str>) -> SqlResult<Vec<Resolved>> {
        match qualifier {
            None => Ok(self
                .star
                .iter()
                .map(|s| match s {
                    StarItem::Column(i) => self.resolved_column(*i),
                    StarItem::Merged(m) => {
                        let m = &self.merged[*m];
                        Resolved {
                            expr: m.expr.clone(),
                            ty: m.ty,
                            name: m.name.clone(),
                            table_oid: 0,
                            column_id: 0,
                        }
                    }
                })
                .collect()),
            Some(q) => {
                let out: Vec<Resolved> = (0..self.cols.len())
                    .filter(|&i| self.cols[i].qualifier.as_deref() == Some(q))
                    .filter(|&i| !is_mvcc_timestamp_column(&self.cols[i]))
                    .map(|i| self.resolved_column(i))
                    .collect();
                if out.is_empty() {
                    return Err(SqlError::new(
                        SqlState::UNDEFINED_TABLE,
                        format!("missing FROM-clause entry for table \"{q}\""),
                    ));
                }
                Ok(out)
            }
        }
    }

    /// The scope of `left JOIN right` (right's columns follow left's).
    fn join(left: Scope, right: Scope) -> Scope {
        let offset = left.cols.len();
        let shift = |e: &Expr| e.map_columns(&|i| i + offset);
        let mut cols = left.cols;
        cols.extend(right.cols);
        let mut merged = left.merged;
        let moff = merged.len();
        merged.extend(right.merged.iter().map(|m| MergedColumn {
            name: m.name.clone(),
            expr: shift(&m.expr),
            ty: m.ty,
        }));
        let mut star = left.star;
        star.extend(right.star.iter().map(|s| match s {
            StarItem::Column(i) => StarItem::Column(i + offset),
            StarItem::Merged(m) => StarItem::Merged(m + moff),
        }));
        Scope { cols, merged, star }
    }
}

// ---------------------------------------------------------------------------------------
// Plan nodes.

/// The SQL join types (CROSS and comma joins are inner joins without a condition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

/// How a join finds the right rows matching a left row.
#[derive(Debug, Clone)]
pub(crate) enum JoinMethod {
    NestedLoop,
    /// Equal keys: `left_keys` over the left row, `right_keys` over the right row, compared
    /// as `types`.
    Hash {
        left_keys: Vec<Expr>,
        right_keys: Vec<Expr>,
        types: Vec<DataType>,
    },
    /// The right side is a table read per left row through this access path, whose
    /// expressions read the left row.
    IndexLookup {
        access: Access,
    },
}

/// A join of two sources; its rows are left columns then right columns.
#[derive(Debug, Clone)]
pub(crate) struct JoinPlan {
    pub left: Source,
    pub right: Source,
    pub kind: JoinKind,
    pub left_width: usize,
    pub right_width: usize,
    /// The join condition over the concatenated row (None: every pair matches).
    pub on: Option<Expr>,
    pub method: JoinMethod,
}

/// UNION / INTERSECT / EXCEPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetOpKind {
    Union,
    Intersect,
    Except,
}

/// A set operation over two queries with the same number of columns of the same types.
#[derive(Debug, Clone)]
pub(crate) struct SetOpPlan {
    pub op: SetOpKind,
    pub all: bool,
    pub left: SelectPlan,
    pub right: SelectPlan,
}

/// WITH RECURSIVE: the non-recursive term, then the recursive term over the previous
/// iteration's rows until it yields none (UNION without ALL drops rows seen before).
#[derive(Debug, Clone)]
pub(crate) struct RecursivePlan {
    pub base: SelectPlan,
    pub step: SelectPlan,
    pub all: bool,
    /// Identifies the working table that `Source::WorkTable` in `step` reads.
    pub id: usize,
}

/// The number of columns a source's rows have.
pub(crate) fn source_width(s: &Source) -> usize {
    match s {
        Source::Single => 0,
        Source::Table { def, .. } => def.columns.len(),
        Source::Series { .. } | Source::Unnest(..) => 1,
        Source::System(v) => v.columns().len(),
        Source::Join(j) => j.left_width + j.right_width,
        Source::Query(q) => q.visible,
        Source::SetOp(s) => s.left.visible,
        Source::Recursive(r) => r.base.visible,
        Source::WorkTable { width, .. } => *width,
        Source::Values(rows) => rows.first().map_or(0, |r| r.len()),
        Source::Filter(s, _) => source_width(s),
        Source::Ordinality(s) => source_width(s) + 1,
        Source::Append(a) => a.parent.columns.len(),
    }
}

// ---------------------------------------------------------------------------------------
// Binding.

/// A common table expression in scope.
#[derive(Debug, Clone)]
pub(crate) struct CteBinding {
    pub name: String,
    pub columns: Vec<Column>,
    pub body: CteBody,
}

#[derive(Debug, Clone)]
pub(crate) enum CteBody {
    Plan(Box<SelectPlan>),
    /// A recursive CTE referenced from inside its own recursive term.
    WorkTable {
        id: usize,
    },
    Recursive(Box<RecursivePlan>),
}

/// Binder state for nested queries.
#[derive(Debug, Default)]
pub(crate) struct Nesting {
    /// Scopes of the enclosing queries, innermost last.
    pub outer_scopes: Vec<Scope>,
    /// Counts outer references bound (a subquery that adds to it is correlated).
    pub outer_refs: usize,
    pub ctes: Vec<CteBinding>,
    next_work_table: usize,
}

fn split_ast_conjuncts(e: &Expr, out: &mut Vec<Expr>) {
    if let Expr::And(a, b) = e {
        split_ast_conjuncts(a, out);
        split_ast_conjuncts(b, out);
    } else {
        out.push(e.clone());
    }
}

/// The conjuncts of an AND chain.
pub(crate) fn conjuncts(e: Option<Expr>) -> Vec<Expr> {
    let mut out = Vec::new();
    if let Some(e) = &e {
        split_ast_conjuncts(e, &mut out);
    }
    out
}

/// The AND of `list` (None if empty).
pub(crate) fn and_all(list: Vec<Expr>) -> Option<Expr> {
    list.into_iter()
        .reduce(|a, b| Expr::And(Box::new(a), Box::new(b)))
}

impl Binder<'_> {
    /// Binds a FROM clause: comma-separated items are cross joins, left to right.
    pub(crate) fn bind_from(&mut self, from: &[ast::TableWithJoins]) -> SqlResult<(Source, Scope)> {
        let mut acc: Option<(Source, Scope)> = None;
        for twj in from {
            let mut item = self.bind_relation(&twj.relation)?;
            for j in &twj.joins {
                item = self.bind_join(item, j)?;
            }
            acc = Some(match acc {
                None => item,
                Some(left) => self.join_sources(left, item, JoinKind::Inner, None)?,
            });
        }
        if let (Some((Source::Table { def, .. }, scope)), [_]) = (&mut acc, from) {
            add_mvcc_timestamp_column(def, scope);
        }
        Ok(acc.unwrap_or((Source::Single, Scope::default())))
    }

    fn bind_relation(&mut self, tf: &ast::TableFactor) -> SqlResult<(Source, Scope)> {
        match tf {
            ast::TableFactor::Derived {
                lateral,
                subquery,
                alias,
                ..
            } => {
                if *lateral {
                    return Err(SqlError::unsupported("LATERAL"));
                }
                let Some(alias) = alias else {
                    return Err(SqlError::syntax("subquery in FROM must have an alias"));
                };
                let plan = self.bind_query(subquery)?;
                let q = ident_name(&alias.name);
                let scope = Scope::of_query(&plan.columns[..plan.visible], &q, &alias.columns)?;
                Ok((Source::Query(Box::new(plan)), scope))
            }
            ast::TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                if alias.is_some() {
                    return Err(SqlError::unsupported("aliases on parenthesized joins"));
                }
                self.bind_from(std::slice::from_ref(table_with_joins))
            }
            ast::TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } if name.0.len() == 1 => {
                let tname = object_name(name)?;
                let Some(cte) = self
                    .nesting
                    .ctes
                    .iter()
                    .rev()
                    .find(|c| c.name == tname)
                    .cloned()
                else {
                    return self.bind_table_factor(tf);
                };
                let (q, names) = match alias {
                    Some(a) => (ident_name(&a.name), a.columns.as_slice()),
                    None => (tname.clone(), &[][..]),
                };
                let scope = Scope::of_query(&cte.columns, &q, names)?;
                let source = match cte.body {
                    CteBody::Plan(p) => Source::Query(p),
                    CteBody::WorkTable { id } => Source::WorkTable {
                        id,
                        width: cte.columns.len(),
                    },
                    CteBody::Recursive(r) => Source::Recursive(r),
                };
                Ok((source, scope))
            }
            _ => self.bind_table_factor(tf),
        }
    }

    fn bind_join(&mut self, left: (Source, Scope), j: &ast::Join) -> SqlResult<(Source, Scope)> {
        use ast::JoinOperator as J;
        let (kind, constraint) = match &j.join_operator {
            J::Join(c) | J::Inner(c) => (JoinKind::Inner, c),
            J::Left(c) | J::LeftOuter(c) => (JoinKind::Left, c),
            J::Right(c) | J::RightOuter(c) => (JoinKind::Right, c),
            J::FullOuter(c) => (JoinKind::Full, c),
            J::CrossJoin(c) => (JoinKind::Inner, c),
            _ => return Err(SqlError::unsupported("this join type")),
        };
        let right = self.bind_relation(&j.relation)?;
        match constraint {
            ast::JoinConstraint::None => {
                if !matches!(j.join_operator, J::CrossJoin(_)) {
                    return Err(SqlError::syntax(
                        "syntax error at end of input (JOIN needs ON or USING)",
                    ));
                }
                self.join_sources(left, right, kind, None)
            }
            ast::JoinConstraint::On(on) => {
                let (ls, lsc) = left;
                let (rs, rsc) = right;
                let scope = Scope::join(lsc, rsc);
                let cond = self.bind_bool(on, &scope, None, "JOIN/ON")?;
                let lw = source_width(&ls);
                let rw = source_width(&rs);
                Ok((
                    Source::Join(Box::new(JoinPlan {
                        left: ls,
                        right: rs,
                        kind,
                        left_width: lw,
                        right_width: rw,
                        on: Some(cond),
                        method: JoinMethod::NestedLoop,
                    })),
                    scope,
                ))
            }
            ast::JoinConstraint::Using(names) => {
                let mut cols = Vec::new();
                for n in names {
                    cols.push(object_name(n)?);
                }
                self.join_using(left, right, kind, cols)
            }
            ast::JoinConstraint::Natural => {
                let lnames: Vec<String> = left
                    .1
                    .expand_star(None)?
                    .into_iter()
                    .map(|r| r.name)
                    .collect();
                let rnames: Vec<String> = right
                    .1
                    .expand_star(None)?
                    .into_iter()
                    .map(|r| r.name)
                    .collect();
                let common: Vec<String> = lnames
                    .iter()
                    .filter(|n| rnames.contains(n))
                    .cloned()
                    .collect();
                self.join_using(left, right, kind, common)
            }
            ast::JoinConstraint::UsingAlias(..) => Err(SqlError::unsupported("USING ... AS alias")),
        }
    }

    fn join_sources(
        &mut self,
        (ls, lsc): (Source, Scope),
        (rs, rsc): (Source, Scope),
        kind: JoinKind,
        on: Option<Expr>,
    ) -> SqlResult<(Source, Scope)> {
        let lw = source_width(&ls);
        let rw = source_width(&rs);
        Ok((
            Source::Join(Box::new(JoinPlan {
                left: ls,
                right: rs,
                kind,
                left_width: lw,
                right_width: rw,
                on,
                method: JoinMethod::NestedLoop,
            })),
            Scope::join(lsc, rsc),
        ))
    }

    /// `JOIN ... USING (cols)` (and NATURAL): equality of the named columns, which merge
    /// into one column each (`*` lists them first, once).
    fn join_using(
        &mut self,
        (ls, lsc): (Source, Scope),
        (rs, rsc): (Source, Scope),
        kind: JoinKind,
        names: Vec<String>,
    ) -> SqlResult<(Source, Scope)> {
        let lw = lsc.cols.len();
        let mut conds = Vec::new();
        let mut merged = Vec::new();
        let mut hidden_left = Vec::new();
        let mut hidden_right = Vec::new();
        for name in &names {
            let not_found = |side: &str| {
                SqlError::new(
                    SqlState::UNDEFINED_COLUMN,
                    format!("column \"{name}\" specified in USING clause does not exist in {side} table"),
                )
            };
            let l = lsc.resolve(None, name).map_err(|_| not_found("left"))?;
            let r = rsc.resolve(None, name).map_err(|_| not_found("right"))?;
            let r_expr = r.expr.map_columns(&|i| i + lw);
            let ty = comparison_type(&l.ty, &r.ty).ok_or_else(|| {
                SqlError::undefined_function(format!(
                    "operator does not exist: {} = {}",
                    l.ty.name(),
                    r.ty.name()
                ))
            })?;
            conds.push(Expr::Binary {
                op: BinOp::Eq,
                left: Box::new(l.expr.clone()),
                right: Box::new(r_expr.clone()),
                ty,
            });
            let out_ty = if l.ty == r.ty { l.ty } else { ty };
            let expr = match kind {
                JoinKind::Inner | JoinKind::Left => l.expr.clone(),
                JoinKind::Right => r_expr.clone(),
                JoinKind::Full => Expr::Coalesce(vec![l.expr.clone(), r_expr.clone()]),
            };
            merged.push(MergedColumn {
                name: name.clone(),
                expr,
                ty: out_ty,
            });
            hidden_left.push(l.expr);
            hidden_right.push(r.expr);
        }
        let (src, mut scope) = self.join_sources((ls, lsc), (rs, rsc), kind, and_all(conds))?;
        // The merged names replace the sides' own unqualified names and star entries.
        let hide = |e: &Expr| -> Option<usize> {
            match e {
                Expr::Column(i) => Some(*i),
                _ => None,
            }
        };
        let mut hidden_cols: Vec<usize> = hidden_left.iter().filter_map(hide).collect();
        hidden_cols.extend(hidden_right.iter().filter_map(hide).map(|i| i + lw));
        for &i in &hidden_cols {
            scope.cols[i].unqualified = false;
        }
        // Merged names of the sides that are now merged again are dropped from both lookup
        // and star (the new merged column stands for them).
        let old_merged: Vec<usize> = scope
            .merged
            .iter()
            .enumerate()
            .filter(|(_, m)| names.contains(&m.name))
            .map(|(i, _)| i)
            .collect();
        let base = scope.merged.len();
        scope.star.retain(|s| match s {
            StarItem::Column(i) => !hidden_cols.contains(i),
            StarItem::Merged(m) => !old_merged.contains(m),
        });
        for m in old_merged.iter().rev() {
            scope.merged[*m].name = String::new();
        }
        let mut star: Vec<StarItem> = (0..merged.len())
            .map(|k| StarItem::Merged(base + k))
            .collect();
        star.extend(scope.star);
        scope.star = star;
        scope.merged.extend(merged);
        Ok((src, scope))
    }

    /// Binds a query nested in `scope`'s query (a subquery expression): names it does not
    /// define resolve in `scope` and further out. Returns the plan and whether it is
    /// correlated.
    pub(crate) fn bind_nested(
        &mut self,
        q: &ast::Query,
        scope: &Scope,
    ) -> SqlResult<(SelectPlan, bool)> {
        let before = self.nesting.outer_refs;
        self.nesting.outer_scopes.push(scope.clone());
        let plan = self.bind_query(q);
        self.nesting.outer_scopes.pop();
        let plan = plan?;
        Ok((plan, self.nesting.outer_refs != before))
    }

    /// Resolves a name in the enclosing queries' scopes (a correlated reference).
    pub(crate) fn resolve_outer(&mut self, q: Option<&str>, name: &str) -> Option<Resolved> {
        let n = self.nesting.outer_scopes.len();
        for depth in 1..=n {
            let scope = &self.nesting.outer_scopes[n - depth];
            match scope.resolve(q, name) {
                Ok(mut r) => {
                    r.expr = outer_expr(&r.expr, depth);
                    self.nesting.outer_refs += 1;
                    return Some(r);
                }
                Err(e) if e.code == SqlState::AMBIGUOUS_COLUMN => return None,
                Err(_) => {}
            }
        }
        None
    }

    /// Binds a subquery expression: scalar, EXISTS, IN, or `op ANY/ALL`.
    pub(crate) fn bind_subquery(
        &mut self,
        q: &ast::Query,
        scope: &Scope,
        kind: SubqueryKind,
    ) -> SqlResult<(Expr, DataType)> {
        let (plan, correlated) = self.bind_nested(q, scope)?;
        let ty = match &kind {
            SubqueryKind::Exists => DataType::Bool,
            _ => {
                if plan.visible != 1 {
                    return Err(SqlError::syntax(if plan.visible > 1 {
                        "subquery has too many columns"
                    } else {
                        "subquery must return only one column"
                    }));
                }
                match &kind {
                    SubqueryKind::Scalar => plan.columns[0].ty,
                    SubqueryKind::Array => DataType::array_of(plan.columns[0].ty),
                    _ => DataType::Bool,
                }
            }
        };
        Ok((
            Expr::Subquery(Box::new(Subquery {
                plan: std::sync::Arc::new(plan),
                kind,
                correlated,
            })),
            ty,
        ))
    }

    /// `expr [NOT] IN (subquery)` and `expr op ANY/ALL (subquery)`.
    pub(crate) fn bind_quantified(
        &mut self,
        expr: &ast::Expr,
        q: &ast::Query,
        op: BinOp,
        all: bool,
        scope: &Scope,
        agg: Option<&mut crate::query::AggState>,
    ) -> SqlResult<(Expr, DataType)> {
        let (e, et) = self.bind_expr(expr, scope, agg)?;
        let (plan, correlated) = self.bind_nested(q, scope)?;
        if plan.visible != 1 {
            return Err(SqlError::syntax("subquery has too many columns"));
        }
        let st = plan.columns[0].ty;
        let ty = comparison_type(&et, &st).ok_or_else(|| {
            SqlError::undefined_function(format!(
                "operator does not exist: {} {} {}",
                et.name(),
                crate::expr::op_symbol(op),
                st.name()
            ))
        })?;
        let e = if et == DataType::Unknown {
            self.coerce(e, et, st)?
        } else {
            e
        };
        Ok((
            Expr::Subquery(Box::new(Subquery {
                plan: std::sync::Arc::new(plan),
                kind: SubqueryKind::Quantified {
                    expr: Box::new(e),
                    op,
                    ty,
                    all,
                },
                correlated,
            })),
            DataType::Bool,
        ))
    }

    /// Binds `WITH` and pushes its CTEs; returns how many to pop after the query.
    pub(crate) fn bind_with(&mut self, with: &ast::With) -> SqlResult<usize> {
        let mut pushed = 0;
        for cte in &with.cte_tables {
            let name = ident_name(&cte.alias.name);
            let names = &cte.alias.columns;
            let binding = if with.recursive && query_references(&cte.query, &name) {
                self.bind_recursive_cte(&name, cte)?
            } else {
                let plan = self.bind_query(&cte.query)?;
                let columns = rename_columns(&plan.columns[..plan.visible], names)?;
                CteBinding {
                    name,
                    columns,
                    body: CteBody::Plan(Box::new(plan)),
                }
            };
            self.nesting.ctes.push(binding);
            pushed += 1;
        }
        Ok(pushed)
    }

    fn bind_recursive_cte(&mut self, name: &str, cte: &ast::Cte) -> SqlResult<CteBinding> {
        let ast::SetExpr::SetOperation {
            left,
            op: ast::SetOperator::Union,
            set_quantifier,
            right,
        } = cte.query.body.as_ref()
        else {
            return Err(SqlError::new(
                SqlState::INVALID_RECURSION,
                format!("recursive query \"{name}\" does not have the form non-recursive-term UNION [ALL] recursive-term"),
            ));
        };
        let all = matches!(set_quantifier, ast::SetQuantifier::All);
        let base = self.bind_set_expr(left)?;
        let columns = rename_columns(&base.columns[..base.visible], &cte.alias.columns)?;
        let id = self.nesting.next_work_table;
        self.nesting.next_work_table += 1;
        self.nesting.ctes.push(CteBinding {
            name: name.to_string(),
            columns: columns.clone(),
            body: CteBody::WorkTable { id },
        });
        let step = self.bind_set_expr(right);
        self.nesting.ctes.pop();
        let mut step = step?;
        if step.visible != base.visible {
            return Err(SqlError::syntax(
                "each UNION query must have the same number of columns",
            ));
        }
        // The recursive term's columns take the non-recursive term's types.
        for i in 0..base.visible {
            let (want, got) = (base.columns[i].ty, step.columns[i].ty);
            if want != got {
                step.project[i] = Expr::Cast {
                    expr: Box::new(step.project[i].clone()),
                    ty: want,
                    explicit: false,
                };
                let mut columns = step.columns.to_vec();
                columns[i].ty = want;
                step.columns = columns.into();
            }
        }
        Ok(CteBinding {
            name: name.to_string(),
            columns,
            body: CteBody::Recursive(Box::new(RecursivePlan {
                base,
                step,
                all,
                id,
            })),
        })
    }

    /// Binds one operand of a set operation (a SELECT, a VALUES, a parenthesized query, or a
    /// nested set operation).
    pub(crate) fn bind_set_expr(&mut self, body: &ast::SetExpr) -> SqlResult<SelectPlan> {
        match body {
            ast::SetExpr::Query(q) => self.bind_query(q),
            other => {
                let q = ast::Query {
                    with: None,
                    body: Box::new(other.clone()),
                    order_by: None,
                    limit_clause: None,
                    fetch: None,
                    locks: vec![],
                    for_clause: None,
                    settings: None,
                    format_clause: None,
                    pipe_operators: vec![],
                };
                self.bind_query(&q)
            }
        }
    }

    /// `left op [ALL] right`: the operands are unified column by column; returns the set
    /// operation and its output columns.
    pub(crate) fn bind_set_operation(
        &mut self,
        left: &ast::SetExpr,
        op: &ast::SetOperator,
        quantifier: &ast::SetQuantifier,
        right: &ast::SetExpr,
    ) -> SqlResult<(SetOpPlan, Vec<Column>)> {
        let kind = match op {
            ast::SetOperator::Union => SetOpKind::Union,
            ast::SetOperator::Intersect => SetOpKind::Intersect,
            ast::SetOperator::Except | ast::SetOperator::Minus => SetOpKind::Except,
        };
        let all = match quantifier {
            ast::SetQuantifier::All => true,
            ast::SetQuantifier::Distinct | ast::SetQuantifier::None => false,
            _ => return Err(SqlError::unsupported("BY NAME")),
        };
        let mut l = self.bind_set_expr(left)?;
        let mut r = self.bind_set_expr(right)?;
        let opname = match kind {
            SetOpKind::Union => "UNION",
            SetOpKind::Intersect => "INTERSECT",
            SetOpKind::Except => "EXCEPT",
        };
        if l.visible != r.visible {
            return Err(SqlError::syntax(format!(
                "each {opname} query must have the same number of columns"
            )));
        }
        let mut columns = Vec::new();
        for i in 0..l.visible {
            let (lt, rt) = (l.columns[i].ty, r.columns[i].ty);
            let lc = is_untyped_literal(&l.project[i]);
            let rc = is_untyped_literal(&r.project[i]);
            let ty = if lt == rt {
                lt
            } else if lc && !rc {
                rt
            } else if rc && !lc {
                lt
            } else if lt.is_numeric() && rt.is_numeric() {
                crate::expr::arithmetic_type(&lt, &rt).unwrap_or(lt)
            } else if lt.is_string() && rt.is_string() {
                DataType::Text
            } else if let Some(t) =
                comparison_type(&lt, &rt).filter(|_| lt.is_datetime() && rt.is_datetime())
            {
                t
            } else {
                return Err(SqlError::mismatch(format!(
                    "{opname} types {} and {} cannot be matched",
                    lt.name(),
                    rt.name()
                )));
            };
            for (p, t) in [(&mut l, lt), (&mut r, rt)] {
                if t != ty {
                    p.project[i] = match &p.project[i] {
                        Expr::Const(v) if is_untyped_literal(&p.project[i]) => {
                            Expr::Const(crate::expr::cast(v.clone(), &ty, false)?)
                        }
                        other => Expr::Cast {
                            expr: Box::new(other.clone()),
                            ty,
                            explicit: false,
                        },
                    };
                    let mut columns = p.columns.to_vec();
                    columns[i].ty = ty;
                    p.columns = columns.into();
                }
            }
            columns.push(Column {
                name: l.columns[i].name.clone(),
                ty,
                table_oid: 0,
                column_id: 0,
            });
        }
        Ok((
            SetOpPlan {
                op: kind,
                all,
                left: l,
                right: r,
            },
            columns,
        ))
    }
}

/// A string or NULL literal that took the type text only because nothing else typed it.
fn is_untyped_literal(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Const(crate::types::Value::Null) | Expr::Const(crate::types::Value::Text(_))
    )
}

fn rename_columns(
    columns: &[Column],
    names: &[ast::TableAliasColumnDef],
) -> SqlResult<Vec<Column>> {
    if names.len() > columns.len() {
        return Err(SqlError::new(
            SqlState::INVALID_COLUMN_REFERENCE,
            format!(
                "WITH query has {} columns available but {} columns specified",
                columns.len(),
                names.len()
            ),
        ));
    }
    Ok(columns
        .iter()
        .enumerate()
        .map(|(i, c)| Column {
            name: names
                .get(i)
                .map(|n| ident_name(&n.name))
                .unwrap_or_else(|| c.name.clone()),
            ..c.clone()
        })
        .collect())
}

/// Whether a query mentions the table name `name` anywhere (a recursive CTE's self
/// reference). A textual check over the parsed query: good enough to tell a recursive CTE
/// from a plain one.
fn query_references(q: &ast::Query, name: &str) -> bool {
    let text = q.to_string().to_lowercase();
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| w == name)
}

/// A resolved expression of an enclosing scope as seen from `depth` levels in.
fn outer_expr(e: &Expr, depth: usize) -> Expr {
    match e {
        Expr::Column(i) => Expr::Outer { depth, index: *i },
        Expr::Coalesce(list) => Expr::Coalesce(list.iter().map(|x| outer_expr(x, depth)).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------
// Conjunct placement and join methods.

/// Which side of a join an expression's columns come from.
#[derive(Debug, PartialEq, Eq)]
enum Side {
    None,
    Left,
    Right,
    Both,
}

fn side_of(e: &Expr, left_width: usize) -> Side {
    let mut used = Vec::new();
    e.mark_columns(&mut used);
    let l = used.iter().take(left_width).any(|u| *u);
    let r = used.iter().skip(left_width).any(|u| *u);
    match (l, r) {
        (false, false) => Side::None,
        (true, false) => Side::Left,
        (false, true) => Side::Right,
        _ => Side::Both,
    }
}

/// Places `conds` (over `source`'s rows, none with subqueries) as deep in `source` as SQL
/// allows, choosing access paths and join methods on the way. Conjuncts that cannot go
/// further filter `source`'s rows.
pub(crate) fn place_conjuncts(source: Source, conds: Vec<Expr>) -> Source {
    match source {
        Source::Join(j) => place_in_join(*j, conds),
        Source::Table { def, .. } if !conds.is_empty() => {
            let f = and_all(conds).unwrap_or(Expr::Const(crate::types::Value::Bool(true)));
            let access = choose_access(&def, Some(&f));
            Source::Filter(Box::new(Source::Table { def, access }), f)
        }
        Source::Filter(inner, f) => {
            let mut all = conjuncts(Some(f));
            all.extend(conds);
            place_conjuncts(*inner, all)
        }
        Source::Append(a) if !conds.is_empty() => {
            crate::partition::place_in_append(*a, conds, true)
        }
        other => match and_all(conds) {
            Some(f) => Source::Filter(Box::new(other), f),
            None => other,
        },
    }
}

fn place_in_join(mut j: JoinPlan, where_conds: Vec<Expr>) -> Source {
    let lw = j.left_width;
    let shift_right = |e: &Expr| e.map_columns(&|i| i - lw);
    let mut to_left = Vec::new();
    let mut to_right = Vec::new();
    let mut keep_on = Vec::new();
    let mut above = Vec::new();
    for c in conjuncts(j.on.take()) {
        if c.has_subquery() {
            keep_on.push(c);
            continue;
        }
        match (j.kind, side_of(&c, lw)) {
            (JoinKind::Inner, Side::Left) | (JoinKind::Right, Side::Left) => to_left.push(c),
            (JoinKind::Inner, Side::Right) | (JoinKind::Left, Side::Right) => {
                to_right.push(shift_right(&c))
            }
            _ => keep_on.push(c),
        }
    }
    for c in where_conds {
        match (j.kind, side_of(&c, lw)) {
            (JoinKind::Inner | JoinKind::Left, Side::Left) => to_left.push(c),
            (JoinKind::Inner | JoinKind::Right, Side::Right) => to_right.push(shift_right(&c)),
            (JoinKind::Inner, _) => keep_on.push(c),
            _ => above.push(c),
        }
    }
    j.left = place_conjuncts(j.left, to_left);
    j.right = place_conjuncts(j.right, to_right);
    j.on = and_all(keep_on);
    j.method = choose_join_method(&mut j);
    let joined = Source::Join(Box::new(j));
    match and_all(above) {
        Some(f) => Source::Filter(Box::new(joined), f),
        None => joined,
    }
}

/// Whether a value compared as `ty` can seek a key column of type `col` (the key is found
/// by the value cast to the column's type, which must not change which rows are equal).
fn join_seekable(col: &DataType, ty: &DataType) -> bool {
    (col.is_integer() && ty.is_integer())
        || (matches!(col, DataType::Numeric { .. }) && matches!(ty, DataType::Numeric { .. }))
        || (col == ty
            && !matches!(
                col,
                DataType::Bpchar(_) | DataType::Float4 | DataType::Float8
            ))
        || (matches!(col, DataType::Text | DataType::Varchar(_)) && *ty == DataType::Text)
}

/// Picks how `j` finds matching pairs (see the module notes).
pub(crate) fn choose_join_method(j: &mut JoinPlan) -> JoinMethod {
    let lw = j.left_width;
    let mut equi: Vec<(Expr, Expr, DataType)> = Vec::new();
    for c in conjuncts(j.on.clone()) {
        if c.has_subquery() {
            continue;
        }
        if let Expr::Binary {
            op: BinOp::Eq,
            left,
            right,
            ty,
        } = &c
        {
            match (side_of(left, lw), side_of(right, lw)) {
                (Side::Left, Side::Right) => {
                    equi.push(((**left).clone(), right.map_columns(&|i| i - lw), *ty))
                }
                (Side::Right, Side::Left) => {
                    equi.push(((**right).clone(), left.map_columns(&|i| i - lw), *ty))
                }
                _ => {}
            }
        }
    }
    if equi.is_empty() {
        return JoinMethod::NestedLoop;
    }
    // Index lookup: the right side is a table (maybe filtered) and equalities fix a prefix
    // of its primary key.
    if matches!(j.kind, JoinKind::Inner | JoinKind::Left) {
        if let Some(def) = right_table(&j.right) {
            let preds: Vec<(usize, BinOp, Expr)> = equi
                .iter()
                .filter_map(|(l, r, ty)| match r {
                    Expr::Column(c) if join_seekable(&def.columns[*c].ty, ty) => {
                        Some((*c, BinOp::Eq, l.clone()))
                    }
                    _ => None,
                })
                .collect();
            let access = pk_access(&def, &preds);
            if matches!(access, Access::Point(_)) {
                return JoinMethod::IndexLookup { access };
            }
        }
    }
    let (left_keys, (right_keys, types)) = equi.into_iter().map(|(l, r, t)| (l, (r, t))).unzip();
    JoinMethod::Hash {
        left_keys,
        right_keys,
        types,
    }
}

/// The table a join's right side reads, when it is a (possibly filtered) table.
fn right_table(s: &Source) -> Option<std::sync::Arc<crate::catalog::TableDef>> {
    match s {
        Source::Table { def, .. } => Some(def.clone()),
        Source::Filter(inner, _) => match inner.as_ref() {
            Source::Table { def, .. } => Some(def.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// The system column holding each row version's commit HLC timestamp (as `numeric`, see
/// [`crate::system::hlc_numeric`]), like CockroachDB's `crdb_internal_mvcc_timestamp`.
pub(crate) const MVCC_TIMESTAMP_COLUMN: &str = "gnomon_mvcc_timestamp";

/// Whether `c` is the system column [`add_mvcc_timestamp_column`] adds.
fn is_mvcc_timestamp_column(c: &ScopeColumn) -> bool {
    c.name == MVCC_TIMESTAMP_COLUMN && c.table_oid == 0 && c.column_id == 0
}

/// Whether `scope` ends with the system column (a single-table SELECT).
pub(crate) fn has_mvcc_timestamp_column(scope: &Scope) -> bool {
    scope.cols.last().is_some_and(is_mvcc_timestamp_column)
}

/// A SELECT from one table can name [`MVCC_TIMESTAMP_COLUMN`]: it is the slot after the
/// table's columns (index `def.columns.len()`), outside `*`, filled by the executor only when
/// the query reads it (see `exec.rs`). Not offered when the table has a column of that name.
fn add_mvcc_timestamp_column(def: &crate::catalog::TableDef, scope: &mut Scope) {
    if scope.cols.len() != def.columns.len()
        || def.columns.iter().any(|c| c.name == MVCC_TIMESTAMP_COLUMN)
    {
        return;
    }
    let qualifier = scope.cols.first().and_then(|c| c.qualifier.clone());
    scope.cols.push(ScopeColumn {
        qualifier,
        name: MVCC_TIMESTAMP_COLUMN.to_string(),
        ty: crate::types::NUMERIC,
        table_oid: 0,
        column_id: 0,
        unqualified: true,
    });
}
