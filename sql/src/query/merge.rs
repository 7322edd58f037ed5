//! MERGE INTO target USING source ON cond WHEN [NOT] MATCHED [AND cond] THEN ... with
//! PostgreSQL 15 semantics.
//!
//! The join is an index nested loop driven by the source: the ON clause's equalities
//! `target.col = <expression of the source>` that fix the target's primary key make each
//! source row one point read, those that fix a secondary index's columns one index probe;
//! without either, the target is read once and every source row is tested against every
//! target row. The whole ON clause is re-evaluated on every candidate (invariant 5).
//!
//! ```text
//!  source row ──► key of target from ON ──► candidate rows ──ON──► matched ─┐
//!      │                                                    (none)         │ lock, re-read,
//!      └──────────────────────────► WHEN NOT MATCHED [AND] ◄── ON false ───┤ ON again
//!                                        INSERT / DO NOTHING               ▼
//!                                                           WHEN MATCHED [AND]
//!                                                   UPDATE / DELETE / DO NOTHING
//! ```
//!
//! A matched row is locked and re-read before its action (the lock's read is the newest
//! committed version at READ COMMITTED, PostgreSQL's EvalPlanQual; a change after the
//! snapshot fails with 40001 at REPEATABLE READ). If the re-read row is gone or no longer
//! satisfies ON, the source row goes to the NOT MATCHED clauses, as in PostgreSQL 15.
//!
//! The join sees the target as the statement's snapshot saw it, never this MERGE's own
//! writes (PostgreSQL's command-id visibility; `Written` keeps what is needed): a row this
//! MERGE updated or deleted still joins with its old values, and an UPDATE or DELETE of it
//! fails with 21000; a row it inserted (or moved, or re-keyed) is not there, so a second
//! source row with that key is NOT MATCHED (and its INSERT is 23505).
//!
//! A partitioned target reads its rows from its partitions (a point lookup goes to the one
//! partition its key routes to, an index probe and a scan to each) and all of them are
//! locked ROW EXCLUSIVE; an INSERT is routed (23514 without a partition), an UPDATE that
//! changes the partition key moves the row (delete, then insert into the new partition).
//! MERGE into a partition itself checks its bound (23514).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use sqlparser::ast;

use super::{
    duplicate_key, ident_name, object_name, split_conjuncts, store_value, BinOp, Binder,
    ExecContext, Expr, Outcome, Scope, ScopeColumn, SelectPlan,
};
use gnomon_mvcc::{LockWait, RelId, RowMode, TableMode};

use crate::catalog::{decode_table_row, TableDef};
use crate::encoding::{append_rows_prefix, encode_key_value, encode_row, prefix_range, KeyPrefix};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::{cast, truth};
use crate::locking::lock_error;
use crate::partition::Placement;
use crate::types::Value;

/// Where the source rows come from.
#[derive(Debug, Clone)]
pub(crate) enum MergeSource {
    Table(Arc<TableDef>),
    Query(Box<SelectPlan>),
    /// `(VALUES ...)`: rows of row-independent expressions.
    Values(Vec<Vec<Expr>>),
}

/// How a source row finds its candidate target rows.
#[derive(Debug, Clone)]
pub(crate) enum MergeLookup {
    /// One expression (over target ++ source) per primary-key column.
    Point(Vec<Expr>),
    /// One expression per column of secondary index `index`.
    Index(usize, Vec<Expr>),
    /// Every target row.
    Scan,
}

#[derive(Debug, Clone)]
pub(crate) enum MatchedAction {
    Update(Vec<(usize, Expr)>),
    Delete,
    Nothing,
}

#[derive(Debug, Clone)]
pub(crate) enum NotMatchedAction {
    /// Target columns and one expression over the source row for each (None: DEFAULT);
    /// the other columns take their defaults.
    Insert(Vec<usize>, Vec<Option<Expr>>),
    Nothing,
}

/// A bound MERGE.
#[derive(Debug, Clone)]
pub(crate) struct MergePlan {
    pub(crate) target: Arc<TableDef>,
    source: MergeSource,
    /// Over target ++ source.
    on: Expr,
    lookup: MergeLookup,
    /// Conditions over target ++ source.
    matched: Vec<(Option<Expr>, MatchedAction)>,
    /// Conditions and values over the source row.
    not_matched: Vec<(Option<Expr>, NotMatchedAction)>,
    /// Column defaults of the target (for INSERT).
    defaults: Vec<Option<Expr>>,
}

impl MergePlan {
    /// EXPLAIN line.
    pub(crate) fn explain(&self) -> String {
        let how = match &self.lookup {
            MergeLookup::Point(_) => {
                format!("Nested Loop with Point Get on {}", self.target.pkey_name())
            }
            MergeLookup::Index(i, _) => format!(
                "Nested Loop with Index Scan using {}",
                self.target.indexes[*i].name
            ),
            MergeLookup::Scan => "Nested Loop with Seq Scan".to_string(),
        };
        format!("Merge on {}: {how}", self.target.name)
    }
}

fn scope_of_columns(alias: &str, cols: &[(String, crate::types::DataType)]) -> Scope {
    Scope::of_columns(
        cols.iter()
            .map(|(n, t)| ScopeColumn {
                qualifier: Some(alias.to_string()),
                name: n.clone(),
                ty: *t,
                table_oid: 0,
                column_id: 0,
                unqualified: true,
            })
            .collect(),
    )
}

impl Binder<'_> {
    pub(crate) fn bind_merge(&mut self, m: &ast::Merge) -> SqlResult<MergePlan> {
        let (target, target_scope) = match &m.table {
            ast::TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                let def = self.catalog.require(self.txn, &object_name(name)?)?;
                let scope = Scope::of_table(&def, alias.as_ref().map(|a| ident_name(&a.name)));
                (def, scope)
            }
            _ => return Err(SqlError::unsupported("this MERGE target")),
        };
        let (source, source_scope) = match &m.source {
            ast::TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                let def = self.catalog.require(self.txn, &object_name(name)?)?;
                let scope = Scope::of_table(&def, alias.as_ref().map(|a| ident_name(&a.name)));
                (MergeSource::Table(def), scope)
            }
            ast::TableFactor::Derived {
                subquery, alias, ..
            } => {
                let Some(alias) = alias else {
                    return Err(SqlError::syntax(
                        "subquery in MERGE USING must have an alias",
                    ));
                };
                let (source, mut cols) = match subquery.body.as_ref() {
                    ast::SetExpr::Values(v) => self.bind_values_rows(v)?,
                    _ => {
                        let plan = self.bind_query(subquery)?;
                        let cols: Vec<(String, crate::types::DataType)> = plan
                            .columns
                            .iter()
                            .map(|c| (c.name.clone(), c.ty))
                            .collect();
                        (MergeSource::Query(Box::new(plan)), cols)
                    }
                };
                if alias.columns.len() > cols.len() {
                    return Err(SqlError::syntax(format!(
                        "table \"{}\" has {} columns available but {} columns specified",
                        ident_name(&alias.name),
                        cols.len(),
                        alias.columns.len()
                    )));
                }
                for (c, a) in cols.iter_mut().zip(&alias.columns) {
                    c.0 = ident_name(&a.name);
                }
                let scope = scope_of_columns(&ident_name(&alias.name), &cols);
                (source, scope)
            }
            _ => return Err(SqlError::unsupported("this MERGE source")),
        };
        let nt = target.columns.len();
        let mut both = target_scope.clone();
        both.cols.extend(source_scope.cols.iter().cloned());
        let on = self.bind_bool(&m.on, &both, None, "JOIN/ON")?;
        let lookup = choose_lookup(&target, &on, nt);
        let mut matched = Vec::new();
        let mut not_matched = Vec::new();
        for c in &m.clauses {
            match c.clause_kind {
                ast::MergeClauseKind::Matched => {
                    let cond = match &c.predicate {
                        Some(p) => Some(self.bind_bool(p, &both, None, "WHEN")?),
                        None => None,
                    };
                    let action = match &c.action {
                        ast::MergeAction::Update(u) => {
                            let ast::MergeUpdateKind::Set(assignments) = &u.kind else {
                                return Err(SqlError::unsupported("this MERGE UPDATE form"));
                            };
                            let sets = self.bind_set_list(&target, assignments, &both)?;
                            MatchedAction::Update(sets)
                        }
                        ast::MergeAction::Delete { .. } => MatchedAction::Delete,
                        ast::MergeAction::DoNothing { .. } => MatchedAction::Nothing,
                        ast::MergeAction::Insert(_) => {
                            return Err(SqlError::syntax(
                                "syntax error: INSERT is not allowed in WHEN MATCHED",
                            ))
                        }
                    };
                    matched.push((cond, action));
                }
                ast::MergeClauseKind::NotMatched | ast::MergeClauseKind::NotMatchedByTarget => {
                    let cond = match &c.predicate {
                        Some(p) => Some(self.bind_bool(p, &source_scope, None, "WHEN")?),
                        None => None,
                    };
                    let action = match &c.action {
                        ast::MergeAction::Insert(ins) => {
                            self.bind_merge_insert(&target, ins, &source_scope)?
                        }
                        ast::MergeAction::DoNothing { .. } => NotMatchedAction::Nothing,
                        _ => {
                            return Err(SqlError::syntax(
                                "syntax error: only INSERT or DO NOTHING is allowed in WHEN NOT MATCHED",
                            ))
                        }
                    };
                    not_matched.push((cond, action));
                }
                ast::MergeClauseKind::NotMatchedBySource => {
                    return Err(SqlError::unsupported("WHEN NOT MATCHED BY SOURCE"))
                }
            }
        }
        let mut defaults = Vec::with_capacity(nt);
        for c in &target.columns {
            defaults.push(match &c.default {
                Some(text) => Some(self.bind_default(text, c.ty, &c.name)?),
                None => None,
            });
        }
        Ok(MergePlan {
            target,
            source,
            on,
            lookup,
            matched,
            not_matched,
            defaults,
        })
    }
}

impl Binder<'_> {
    /// `INSERT [(cols)] VALUES (...)` or `INSERT DEFAULT VALUES` of WHEN NOT MATCHED, as
    /// PostgreSQL 15: without a column list the values fill the first columns; `DEFAULT` is a
    /// column's default; a value for a generated column or a GENERATED ALWAYS identity is
    /// 428C9.
    fn bind_merge_insert(
        &mut self,
        target: &TableDef,
        ins: &ast::MergeInsertExpr,
        source_scope: &Scope,
    ) -> SqlResult<NotMatchedAction> {
        let ast::MergeInsertKind::Values(values) = &ins.kind else {
            return Err(SqlError::unsupported("this MERGE INSERT form"));
        };
        let [row] = values.rows.as_slice() else {
            return Err(SqlError::syntax(
                "MERGE INSERT takes exactly one VALUES row",
            ));
        };
        let is_default = |e: &ast::Expr, word: &str| {
            matches!(e, ast::Expr::Identifier(id)
                if id.quote_style.is_none() && id.value.eq_ignore_ascii_case(word))
        };
        if ins.columns.is_empty()
            && matches!(row.as_slice(), [e] if is_default(e, crate::locking::MERGE_DEFAULT_VALUES_MARK))
        {
            return Ok(NotMatchedAction::Insert(vec![], vec![]));
        }
        let mut cols = Vec::new();
        if ins.columns.is_empty() {
            cols = (0..target.columns.len()).collect();
        } else {
            for n in &ins.columns {
                let name = object_name(n)?;
                cols.push(target.column_index(&name).ok_or_else(|| {
                    SqlError::new(
                        SqlState::UNDEFINED_COLUMN,
                        format!(
                            "column \"{name}\" of relation \"{}\" does not exist",
                            target.name
                        ),
                    )
                })?);
            }
        }
        if row.len() > cols.len() {
            return Err(SqlError::syntax(
                "INSERT has more expressions than target columns",
            ));
        }
        if row.len() < cols.len() {
            if !ins.columns.is_empty() {
                return Err(SqlError::syntax(
                    "INSERT has more target columns than expressions",
                ));
            }
            cols.truncate(row.len());
        }
        let mut exprs = Vec::with_capacity(row.len());
        for (e, &i) in row.iter().zip(&cols) {
            let col = &target.columns[i];
            if is_default(e, "default") {
                exprs.push(None);
                continue;
            }
            if col.generated.is_some() {
                return Err(crate::query::generated_column_insert(&col.name));
            }
            if col.identity == crate::catalog::Identity::Always {
                return Err(crate::query::generated_always(&col.name));
            }
            let (b, t) = self.bind_expr(e, source_scope, None)?;
            exprs.push(Some(self.assign_expr(b, t, col.ty, &col.name)?));
        }
        Ok(NotMatchedAction::Insert(cols, exprs))
    }

    /// `VALUES (...), (...)` as a source: each column's type unified across the rows
    /// (untyped literals become text), named `column1`, `column2`, ... as in PostgreSQL.
    fn bind_values_rows(
        &mut self,
        v: &ast::Values,
    ) -> SqlResult<(MergeSource, Vec<(String, crate::types::DataType)>)> {
        let width = v.rows.first().map_or(0, |r| r.len());
        if v.rows.iter().any(|r| r.len() != width) {
            return Err(SqlError::syntax("VALUES lists must all be the same length"));
        }
        let mut columns: Vec<Vec<Expr>> = Vec::with_capacity(width);
        let mut cols = Vec::with_capacity(width);
        for j in 0..width {
            let mut items = Vec::with_capacity(v.rows.len());
            for r in &v.rows {
                items.push(self.bind_expr(&r[j], &Scope::default(), None)?);
            }
            let (mut exprs, mut ty) = self.unify(items, "VALUES")?;
            if ty == crate::types::DataType::Unknown {
                ty = crate::types::DataType::Text;
                exprs = exprs
                    .into_iter()
                    .map(|e| self.coerce(e, crate::types::DataType::Unknown, ty))
                    .collect::<SqlResult<_>>()?;
            }
            columns.push(exprs);
            cols.push((format!("column{}", j + 1), ty));
        }
        let rows = (0..v.rows.len())
            .map(|i| columns.iter().map(|c| c[i].clone()).collect())
            .collect();
        Ok((MergeSource::Values(rows), cols))
    }
}

/// True when `e` reads only source columns (index >= `nt`).
fn source_only(e: &Expr, nt: usize) -> bool {
    let mut used = Vec::new();
    e.mark_columns(&mut used);
    used.iter().take(nt).all(|u| !u)
}

/// The join method: target key columns fixed by ON equalities with source expressions.
fn choose_lookup(target: &TableDef, on: &Expr, nt: usize) -> MergeLookup {
    let mut conjuncts = Vec::new();
    split_conjuncts(on, &mut conjuncts);
    let mut eqs: Vec<(usize, Expr)> = Vec::new();
    for c in conjuncts {
        if let Expr::Binary {
            op: BinOp::Eq,
            left,
            right,
            ..
        } = c
        {
            match (left.as_ref(), right.as_ref()) {
                (Expr::Column(i), r) if *i < nt && source_only(r, nt) => eqs.push((*i, r.clone())),
                (l, Expr::Column(i)) if *i < nt && source_only(l, nt) => eqs.push((*i, l.clone())),
                _ => {}
            }
        }
    }
    let fixed = |cols: &[usize]| -> Option<Vec<Expr>> {
        cols.iter()
            .map(|c| eqs.iter().find(|(i, _)| i == c).map(|(_, e)| e.clone()))
            .collect()
    };
    if !target.primary_key.is_empty() {
        if let Some(exprs) = fixed(&target.primary_key) {
            return MergeLookup::Point(exprs);
        }
    }
    for (i, ix) in target.indexes.iter().enumerate() {
        if let Some(exprs) = fixed(&ix.columns) {
            return MergeLookup::Index(i, exprs);
        }
    }
    MergeLookup::Scan
}

fn passes(ctx: &ExecContext<'_>, cond: Option<&Expr>, row: &[Value]) -> SqlResult<bool> {
    match cond {
        None => Ok(true),
        Some(c) => Ok(truth(&ctx.eval(c, row)?) == Some(true)),
    }
}

/// The values of `exprs` for key columns `cols`, cast to the columns' types, pushed onto
/// `out`; false when one is NULL or not of the column's type (nothing can match).
fn key_values(
    ctx: &ExecContext<'_>,
    target: &TableDef,
    cols: &[usize],
    exprs: &[Expr],
    row: &[Value],
    out: &mut Vec<Value>,
) -> SqlResult<bool> {
    for (e, &c) in exprs.iter().zip(cols) {
        let v = ctx.eval(e, row)?;
        if v.is_null() {
            return Ok(false);
        }
        let ty = &target.columns[c].ty;
        if v.data_type() == *ty {
            out.push(v);
            continue;
        }
        match cast(v, ty, false) {
            Ok(v) => out.push(v),
            Err(_) => return Ok(false),
        }
    }
    Ok(true)
}

/// The tables the target's rows live in ("homes"): the partitions of a partitioned target,
/// else the target itself; and for an index join, each home's index standing for the
/// target's (a partition's first index on the same columns with the same uniqueness).
struct Homes {
    tables: Vec<Arc<TableDef>>,
    index: Vec<Option<u32>>,
}

impl Homes {
    fn of(ctx: &mut ExecContext<'_>, plan: &MergePlan, placement: &Placement) -> SqlResult<Homes> {
        let tables = match placement {
            Placement::Parent { parts, .. } => {
                // Every partition may hold a matched row or take an inserted one: each is
                // locked like its parent, as PostgreSQL locks the partitions it opens.
                for p in parts {
                    ctx.txn
                        .lock_table(RelId(p.id.0), TableMode::RowExclusive, LockWait::Block)
                        .map_err(|e| lock_error(e, &p.name))?;
                }
                parts.clone()
            }
            _ => vec![plan.target.clone()],
        };
        let index = match &plan.lookup {
            MergeLookup::Index(i, _) => {
                let ix = &plan.target.indexes[*i];
                tables
                    .iter()
                    .map(|t| {
                        t.indexes
                            .iter()
                            .find(|x| x.columns == ix.columns && x.unique == ix.unique)
                            .map(|x| x.id)
                    })
                    .collect()
            }
            _ => vec![],
        };
        Ok(Homes { tables, index })
    }
}

/// A target row a source row may match: its home (index into [`Homes::tables`]), key, the
/// stored bytes it was decoded from (None for a scan join's copy) and its values.
type Candidate = (usize, Vec<u8>, Option<Bytes>, Vec<Value>);

/// The hash of MERGE's own-writes sets: foldhash (as the lock manager's key tables), a
/// few instructions per 8 bytes of key; SipHash was 1.2K instructions per action row.
type KeyHash = foldhash::fast::RandomState;
type KeyMap<V> = HashMap<Vec<u8>, V, KeyHash>;
type KeySet = HashSet<Vec<u8>, KeyHash>;

/// What this MERGE has written so far, to join each source row with the target as the
/// statement's snapshot saw it (PostgreSQL's MERGE never sees its own writes in the join).
#[derive(Default)]
struct Written {
    /// Rows of the snapshot this MERGE updated or deleted, by key, as the snapshot saw them:
    /// matched again, they still join (ON and WHEN read these values), and an UPDATE or
    /// DELETE of one fails with 21000.
    changed: KeyMap<Vec<Value>>,
    /// Keys of rows this MERGE created (inserted, moved to another partition, re-keyed):
    /// invisible to the join, as in PostgreSQL (a second insert of the key is 23505).
    created: KeySet,
    /// For an index join: the changed rows under the index prefix their old values had.
    changed_by_index: KeyMap<Vec<(usize, Vec<u8>)>>,
}

impl Written {
    /// Records that the snapshot's row `old` under `key` (in home `h`) was updated or deleted.
    fn change(&mut self, plan: &MergePlan, homes: &Homes, h: usize, key: Vec<u8>, old: Vec<Value>) {
        if let MergeLookup::Index(i, _) = &plan.lookup {
            if let Some(ix) = homes.index[h] {
                let mut prefix = KeyPrefix::Index(homes.tables[h].id, ix).encode();
                for &c in &plan.target.indexes[*i].columns {
                    encode_key_value(&old[c], &mut prefix);
                }
                self.changed_by_index
                    .entry(prefix)
                    .or_default()
                    .push((h, key.clone()));
            }
        }
        self.changed.insert(key, old);
    }
}

fn affected_twice() -> SqlError {
    SqlError::new(
        SqlState::CARDINALITY_VIOLATION,
        "MERGE command cannot affect row a second time",
    )
    .with_hint("Ensure that not more than one source row matches any one target row.")
}

/// Executes a MERGE; the tag is `MERGE <rows inserted, updated or deleted>`.
pub(crate) fn execute_merge(ctx: &mut ExecContext<'_>, plan: &MergePlan) -> SqlResult<Outcome> {
    let target = &plan.target;
    let nt = target.columns.len();
    let placement = Placement::of(ctx.catalog, &*ctx.txn, target)?;
    let homes = Homes::of(ctx, plan, &placement)?;
    let partition_key = match &placement {
        Placement::Parent { key, .. } => Some(key),
        _ => None,
    };
    let source_rows: Vec<Vec<Value>> = match &plan.source {
        MergeSource::Table(def) => {
            ctx.stats.full_scans += 1;
            let pairs = ctx.txn.scan(KeyPrefix::Rows(def.id).range(), false, None)?;
            ctx.stats.rows_read += pairs.len() as u64;
            pairs
                .iter()
                .map(|(_, v)| decode_table_row(def, v))
                .collect::<SqlResult<_>>()?
        }
        MergeSource::Query(q) => super::run_select(ctx, q)?,
        MergeSource::Values(rows) => rows
            .iter()
            .map(|r| r.iter().map(|e| ctx.eval(e, &[])).collect())
            .collect::<SqlResult<_>>()?,
    };
    // For a scan join, the target rows are read once.
    let mut scanned: Vec<Candidate> = Vec::new();
    if matches!(plan.lookup, MergeLookup::Scan) {
        for (h, home) in homes.tables.iter().enumerate() {
            ctx.stats.full_scans += 1;
            for (k, v) in ctx
                .txn
                .scan(KeyPrefix::Rows(home.id).range(), false, None)?
            {
                scanned.push((h, k, None, decode_table_row(home, &v)?));
            }
        }
    }
    let writes = !plan.matched.is_empty() || !plan.not_matched.is_empty();
    if writes {
        // Bulk work: past the table escalation threshold the table lock replaces row locks
        // (a partition's rows belong to its parent's relation).
        ctx.txn
            .bulk_write_hint(RelId(target.id.0), source_rows.len());
    }
    let mut written = Written::default();
    if !plan.matched.is_empty() {
        written.changed.reserve(source_rows.len());
    }
    let mut count = 0u64;
    let mut both: Vec<Value> = Vec::with_capacity(nt + 8);
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut key_vals: Vec<Value> = Vec::new();
    // A row of the target with only the primary key set, to route a point lookup.
    let mut probe: Vec<Value> = if partition_key.is_some() {
        vec![Value::Null; nt]
    } else {
        vec![]
    };
    for src in &source_rows {
        ctx.interrupt.check()?;
        // Candidate target rows as this statement's snapshot sees them.
        both.clear();
        both.resize(nt, Value::Null);
        both.extend_from_slice(src);
        candidates.clear();
        match &plan.lookup {
            MergeLookup::Point(exprs) => {
                key_vals.clear();
                if key_values(
                    ctx,
                    target,
                    &target.primary_key,
                    exprs,
                    &both,
                    &mut key_vals,
                )? {
                    // The primary key holds the partition key: one partition can have it.
                    let home = match partition_key {
                        None => Some(0),
                        Some(pk) => {
                            for (&c, v) in target.primary_key.iter().zip(&key_vals) {
                                probe[c] = v.clone();
                            }
                            let part = crate::partition::route(pk, &homes.tables, &probe);
                            part.and_then(|p| homes.tables.iter().position(|h| h.id == p.id))
                        }
                    };
                    if let Some(h) = home {
                        let home = &homes.tables[h];
                        let mut key = Vec::with_capacity(32);
                        append_rows_prefix(home.id, &mut key);
                        for v in &key_vals {
                            encode_key_value(v, &mut key);
                        }
                        if written.changed.contains_key(&key) || written.created.contains(&key) {
                            // Resolved from `written` below.
                            candidates.push((h, key, None, Vec::new()));
                        } else {
                            ctx.stats.point_gets += 1;
                            if let Some(b) = ctx.txn.get(&key)? {
                                ctx.stats.rows_read += 1;
                                let row = decode_table_row(home, &b)?;
                                candidates.push((h, key, Some(b), row));
                            }
                        }
                    }
                }
            }
            MergeLookup::Index(i, exprs) => {
                key_vals.clear();
                let cols = &target.indexes[*i].columns;
                if key_values(ctx, target, cols, exprs, &both, &mut key_vals)? {
                    for (h, home) in homes.tables.iter().enumerate() {
                        let Some(ix) = homes.index[h] else {
                            return Err(SqlError::internal(format!(
                                "partition \"{}\" lacks its parent's index",
                                home.name
                            )));
                        };
                        let mut prefix = KeyPrefix::Index(home.id, ix).encode();
                        for v in &key_vals {
                            encode_key_value(v, &mut prefix);
                        }
                        ctx.stats.range_scans += 1;
                        for (_, row_key) in ctx.txn.scan(prefix_range(&prefix), false, None)? {
                            if written.changed.contains_key(row_key.as_ref())
                                || written.created.contains(row_key.as_ref())
                            {
                                continue; // Not as the snapshot saw it: see below.
                            }
                            if let Some(b) = ctx.txn.get(&row_key)? {
                                ctx.stats.rows_read += 1;
                                let row = decode_table_row(home, &b)?;
                                candidates.push((h, row_key.to_vec(), Some(b), row));
                            }
                        }
                        // Rows this MERGE changed whose snapshot values fit the probe.
                        if let Some(old) = written.changed_by_index.get(&prefix) {
                            candidates
                                .extend(old.iter().map(|(h, k)| (*h, k.clone(), None, vec![])));
                        }
                    }
                }
            }
            MergeLookup::Scan => candidates.extend(scanned.iter().cloned()),
        }
        let mut any_matched = false;
        for (h, key, read, row) in candidates.drain(..) {
            let home = &homes.tables[h];
            // The snapshot's version of a row this MERGE changed joins with its old values.
            let changed = written.changed.get(&key);
            if changed.is_none() && written.created.contains(&key) {
                continue;
            }
            both.clear();
            both.extend_from_slice(changed.unwrap_or(&row));
            both.extend_from_slice(src);
            if !passes(ctx, Some(&plan.on), &both)? {
                continue;
            }
            if changed.is_some() {
                any_matched = true;
                for (cond, action) in &plan.matched {
                    if passes(ctx, cond.as_ref(), &both)? {
                        if matches!(action, MatchedAction::Nothing) {
                            break;
                        }
                        return Err(affected_twice());
                    }
                }
                continue;
            }
            // Lock and re-read; the row may have changed (READ COMMITTED) or gone.
            let Some(current_bytes) = ctx.txn.get_for_update(&key)? else {
                continue;
            };
            let current = if read.as_ref() == Some(&current_bytes) {
                // The version already decoded and tested (the common case).
                row
            } else {
                let current = decode_table_row(home, &current_bytes)?;
                both.clear();
                both.extend_from_slice(&current);
                both.extend_from_slice(src);
                if !passes(ctx, Some(&plan.on), &both)? {
                    continue;
                }
                current
            };
            any_matched = true;
            for (cond, action) in &plan.matched {
                if !passes(ctx, cond.as_ref(), &both)? {
                    continue;
                }
                match action {
                    MatchedAction::Nothing => {}
                    MatchedAction::Delete => {
                        ctx.txn.delete(&key)?;
                        crate::index::delete_entries(ctx.txn, home, &key, &current)?;
                        crate::foreign_key::after_delete_now(ctx, home, &current)?;
                        written.change(plan, &homes, h, key, current);
                        count += 1;
                    }
                    MatchedAction::Update(sets) => {
                        let mut new_row = current.clone();
                        for (i, e) in sets {
                            new_row[*i] = store_value(home, *i, ctx.eval(e, &both)?)?;
                        }
                        ctx.fill_generated(home, &mut new_row)?;
                        let dest = placement.place(target, &new_row)?;
                        if partition_key.is_some() && dest.id != home.id {
                            // The key moved the row to another partition: delete and insert,
                            // as PostgreSQL 15 does (the old row locked FOR UPDATE).
                            ctx.check_row(dest, &new_row)?;
                            ctx.txn
                                .lock_row(&key, RowMode::Update, LockWait::Block)
                                .map_err(|e| lock_error(e, &home.name))?;
                            ctx.txn.delete(&key)?;
                            crate::index::delete_entries(ctx.txn, home, &key, &current)?;
                            let new_key = ctx.insert_row(dest, &new_row)?;
                            written.created.insert(new_key);
                            written.change(plan, &homes, h, key, current);
                            count += 1;
                            break;
                        }
                        ctx.check_row(home, &new_row)?;
                        // The key is computed again only if a key column can have changed.
                        let rekeyed = home.primary_key.iter().any(|&i| {
                            home.columns[i].generated.is_some() || sets.iter().any(|(c, _)| *c == i)
                        });
                        let new_key = if rekeyed {
                            home.row_key(&new_row)
                        } else {
                            key.clone()
                        };
                        if new_key != key {
                            if ctx.txn.get_for_update(&new_key)?.is_some() {
                                return Err(duplicate_key(home, &new_row));
                            }
                            ctx.txn.delete(&key)?;
                        }
                        ctx.txn.put(&new_key, Bytes::from(encode_row(&new_row)))?;
                        crate::index::update_entries(
                            ctx.txn, home, &key, &current, &new_key, &new_row,
                        )?;
                        crate::foreign_key::after_update_now(ctx, home, &current, &new_row)?;
                        if new_key != key {
                            written.created.insert(new_key);
                        }
                        written.change(plan, &homes, h, key, current);
                        count += 1;
                    }
                }
                break;
            }
        }
        if any_matched {
            continue;
        }
        for (cond, action) in &plan.not_matched {
            if !passes(ctx, cond.as_ref(), src)? {
                continue;
            }
            if let NotMatchedAction::Insert(cols, exprs) = action {
                let mut placed: Vec<Option<Value>> = vec![None; nt];
                for (&c, e) in cols.iter().zip(exprs) {
                    if let Some(e) = e {
                        placed[c] = Some(ctx.eval(e, src)?);
                    }
                }
                let mut full = Vec::with_capacity(nt);
                for (i, v) in placed.into_iter().enumerate() {
                    let v = match v {
                        Some(v) => v,
                        None => match &plan.defaults[i] {
                            Some(d) => ctx.eval(d, &[])?,
                            None => Value::Null,
                        },
                    };
                    if partition_key.is_some() && v.is_null() {
                        full.push(v); // NOT NULL is checked on the partition, after routing.
                    } else {
                        full.push(store_value(target, i, v)?);
                    }
                }
                ctx.fill_generated(target, &mut full)?;
                let dest = placement.place(target, &full)?;
                if partition_key.is_some() {
                    crate::query::check_routed_not_null(dest, &full)?;
                }
                ctx.check_row(dest, &full)?;
                let key = ctx.insert_row(dest, &full)?;
                written.created.insert(key);
                count += 1;
            }
            break;
        }
    }
    Ok(Outcome::Command {
        tag: format!("MERGE {count}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn row_keys_that_differ_in_their_last_bytes_spread_over_the_low_hash_bits() {
        // Hash tables pick the bucket from the low bits: keys of consecutive integers (which
        // differ only in their last bytes) must not share them.
        let build = KeyHash::default();
        let mut low: Vec<u64> = (0..1000i64)
            .map(|i| {
                let mut key = Vec::new();
                append_rows_prefix(crate::encoding::TableId(16384), &mut key);
                encode_key_value(&Value::Int8(i), &mut key);
                build.hash_one(&key) & 0xffff
            })
            .collect();
        low.sort_unstable();
        low.dedup();
        assert!(low.len() > 950, "{} distinct low halves of 1000", low.len());
    }
}
