//! Table privileges: owners, GRANT / REVOKE, and the checks that enforce them (42501).
//!
//! Each table has at most one ACL entry, `Key::TableAcl(table id)` (keyed by the stable id
//! that prefixes the rows, so renames and ALTER TABLE keep it):
//!
//! ```text
//! version 1B | owner str | ngrants varint | ngrants × (role str | privileges 1B)
//! privileges: bit0 SELECT, bit1 INSERT, bit2 UPDATE, bit3 DELETE
//! ```
//!
//! Invariants:
//! 1. A table without an ACL entry (created before ACLs existed) is owned by the bootstrap
//!    superuser and grants nothing: missing entries fail closed.
//! 2. Superusers and the table's owner pass every check; anyone else needs the privilege
//!    granted to them by name (no PUBLIC, no role membership).
//! 3. Checks run when a statement is bound (also when a cached plan is re-bound); GRANT and
//!    REVOKE mark their transaction as DDL, so their commit bumps the catalog version and
//!    every cached plan is bound, and so checked, again.
//! 4. DROP TABLE, ALTER TABLE, TRUNCATE and CREATE INDEX need the owner (or a superuser).
//!
//! Privileges needed: SELECT for every table read (FROM, joins, subqueries, the source of
//! INSERT ... SELECT and MERGE, and the target of UPDATE/DELETE/MERGE when the statement has
//! a WHERE, ON or RETURNING clause); INSERT/UPDATE/DELETE on the target of that statement.
//! Column privileges are left out.

use bytes::Bytes;
use sqlparser::ast;

use crate::catalog::Catalog;
use crate::encoding::{put_str, put_varint, Key, KeyPrefix, Reader, TableId};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::roles::{lookup_role, BOOTSTRAP_SUPERUSER};
use crate::storage::Transaction;

/// Version byte of an encoded [`TableAcl`].
pub const TABLE_ACL_VERSION: u8 = 1; // FROZEN

/// SELECT privilege bit.
pub const SELECT: u8 = 1;
/// INSERT privilege bit.
pub const INSERT: u8 = 2;
/// UPDATE privilege bit.
pub const UPDATE: u8 = 4;
/// DELETE privilege bit.
pub const DELETE: u8 = 8;
/// Every privilege this module knows.
pub const ALL: u8 = SELECT | INSERT | UPDATE | DELETE;

/// A table's owner and grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableAcl {
    /// The owning role.
    pub owner: String,
    /// Privileges granted, by role (sorted by name, no zero entries).
    pub grants: Vec<(String, u8)>,
}

impl TableAcl {
    /// Encoding: see the module docs.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![TABLE_ACL_VERSION];
        put_str(&mut out, &self.owner);
        put_varint(&mut out, self.grants.len() as u64);
        for (role, bits) in &self.grants {
            put_str(&mut out, role);
            out.push(*bits);
        }
        out
    }

    /// Decodes [`TableAcl::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> SqlResult<TableAcl> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != TABLE_ACL_VERSION {
            return Err(SqlError::corrupt(format!(
                "unknown table ACL version {version}"
            )));
        }
        let owner = r.string()?;
        let n = r.varint()? as usize;
        let mut grants = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let role = r.string()?;
            grants.push((role, r.u8()?));
        }
        if !r.is_empty() {
            return Err(SqlError::corrupt("trailing bytes after table ACL"));
        }
        Ok(TableAcl { owner, grants })
    }

    fn granted(&self, role: &str) -> u8 {
        self.grants
            .iter()
            .find(|(r, _)| r == role)
            .map_or(0, |(_, b)| *b)
    }

    fn set(&mut self, role: &str, bits: u8) {
        self.grants.retain(|(r, _)| r != role);
        if bits != 0 {
            self.grants.push((role.to_string(), bits));
            self.grants.sort();
        }
    }
}

/// The ACL of table `id` as `txn` sees it (invariant 1 for a missing entry).
pub fn table_acl(txn: &dyn Transaction, id: TableId) -> SqlResult<TableAcl> {
    match txn.get(&Key::TableAcl(id).encode())? {
        Some(bytes) => TableAcl::decode(&bytes),
        None => Ok(TableAcl {
            owner: BOOTSTRAP_SUPERUSER.to_string(),
            grants: Vec::new(),
        }),
    }
}

fn put_acl(txn: &mut dyn Transaction, id: TableId, acl: &TableAcl) -> SqlResult<()> {
    txn.put(&Key::TableAcl(id).encode(), Bytes::from(acl.encode()))
}

/// Records `owner` as the owner of table `name` if this transaction just created it (its
/// name key was written here and it has no ACL yet).
pub(crate) fn record_owner(
    catalog: &Catalog,
    txn: &mut dyn Transaction,
    created_here: bool,
    name: &str,
    owner: &str,
) -> SqlResult<()> {
    if !created_here {
        return Ok(());
    }
    let Some(def) = catalog.lookup(txn, name)? else {
        return Ok(());
    };
    if txn.get(&Key::TableAcl(def.id).encode())?.is_some() {
        return Ok(());
    }
    put_acl(
        txn,
        def.id,
        &TableAcl {
            owner: owner.to_string(),
            grants: Vec::new(),
        },
    )
}

/// True if `user` is a superuser as `txn` sees the roles.
pub(crate) fn is_superuser(txn: &dyn Transaction, user: &str) -> SqlResult<bool> {
    // NB: the bootstrap superuser always is one (roles.rs invariant 2): no read on the hot path.
    if user == BOOTSTRAP_SUPERUSER {
        return Ok(true);
    }
    Ok(lookup_role(txn, user)?.is_some_and(|r| r.superuser))
}

fn denied(table: &str) -> SqlError {
    SqlError::new(
        SqlState::INSUFFICIENT_PRIVILEGE,
        format!("permission denied for table {table}"),
    )
}

fn not_owner(table: &str) -> SqlError {
    SqlError::new(
        SqlState::INSUFFICIENT_PRIVILEGE,
        format!("must be owner of table {table}"),
    )
}

fn last_name(n: &ast::ObjectName) -> SqlResult<String> {
    crate::query::object_name(n)
}

/// Tables `stmt` reads or writes, with the privileges each needs.
fn needed(stmt: &ast::Statement) -> SqlResult<Vec<(String, u8)>> {
    let mut out: Vec<(String, u8)> = Vec::new();
    let mut add = |name: String, bits: u8| match out.iter_mut().find(|(n, _)| *n == name) {
        Some((_, b)) => *b |= bits,
        None => out.push((name, bits)),
    };
    // Every table named anywhere is read. NB: the names are the statement's identifier
    // tokens (sqlparser's AST visitor is not available here); a word that is not a table is
    // skipped by the caller, and one that is (a column named like a table) asks for SELECT on
    // that table too: conservative, never more permissive.
    let names = identifiers(stmt);
    // ...except a DML target, which needs its own privilege (and SELECT only when the
    // statement reads its rows).
    let target: Option<(ast::ObjectName, u8, bool)> = match stmt {
        ast::Statement::Insert(i) => match &i.table {
            ast::TableObject::TableName(n) => Some((n.clone(), INSERT, i.returning.is_some())),
            _ => None,
        },
        ast::Statement::Update(u) => match &u.table.relation {
            ast::TableFactor::Table { name, .. } => Some((
                name.clone(),
                UPDATE,
                u.selection.is_some() || u.returning.is_some() || u.from.is_some(),
            )),
            _ => None,
        },
        ast::Statement::Delete(d) => {
            let tables = match &d.from {
                ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
            };
            match tables.first().map(|t| &t.relation) {
                Some(ast::TableFactor::Table { name, .. }) => Some((
                    name.clone(),
                    DELETE,
                    d.selection.is_some() || d.returning.is_some() || d.using.is_some(),
                )),
                _ => None,
            }
        }
        _ => None,
    };
    let target = match target {
        Some((n, bits, reads)) => Some((last_name(&n)?, bits, reads)),
        None => None,
    };
    if let Some((name, bits, reads)) = &target {
        add(name.clone(), *bits | if *reads { SELECT } else { 0 });
    }
    let mut target_skipped = false;
    for name in names {
        match &target {
            // The target's own mention needs only its own privilege.
            Some((t, _, _)) if !target_skipped && *t == name => target_skipped = true,
            _ => add(name, SELECT),
        }
    }
    if let ast::Statement::Merge(m) = stmt {
        // MERGE: the target needs each action's privilege and SELECT (ON reads it).
        if let ast::TableFactor::Table { name, .. } = &m.table {
            let mut bits = SELECT;
            for clause in &m.clauses {
                bits |= match &clause.action {
                    ast::MergeAction::Insert(_) => INSERT,
                    ast::MergeAction::Update { .. } => UPDATE,
                    ast::MergeAction::Delete { .. } => DELETE,
                    ast::MergeAction::DoNothing { .. } => 0,
                };
            }
            add(last_name(name)?, bits);
        }
    }
    Ok(out)
}

/// The identifiers of `stmt`, case-folded unless quoted, in order of appearance.
fn identifiers(stmt: &ast::Statement) -> Vec<String> {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let text = stmt.to_string();
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, &text).tokenize() else {
        return Vec::new();
    };
    tokens
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) if w.quote_style.is_some() => Some(w.value),
            Token::Word(w) => Some(w.value.to_lowercase()),
            _ => None,
        })
        .collect()
}

/// Checks that `user` may run the query or DML statement `stmt` (invariants 2 and 3): 42501
/// `permission denied for table t` otherwise. Names that are not tables (CTEs, views of the
/// system catalog, missing tables) are left to the binder.
pub(crate) fn check_statement(
    catalog: &Catalog,
    txn: &dyn Transaction,
    user: &str,
    stmt: &ast::Statement,
) -> SqlResult<()> {
    if is_superuser(txn, user)? {
        return Ok(());
    }
    for (name, bits) in needed(stmt)? {
        let Some(def) = catalog.lookup(txn, &name)? else {
            continue;
        };
        let acl = table_acl(txn, def.id)?;
        if acl.owner != user && acl.granted(user) & bits != bits {
            return Err(denied(&def.name));
        }
    }
    Ok(())
}

/// Invariant 4: the owner check of DDL on existing tables; None-returning for other
/// statements (they go on to their normal dispatch).
pub(crate) fn check_ddl(
    catalog: &Catalog,
    txn: &dyn Transaction,
    user: &str,
    stmt: &ast::Statement,
) -> SqlResult<()> {
    let names: Vec<&ast::ObjectName> = match stmt {
        ast::Statement::Drop {
            object_type: ast::ObjectType::Table,
            names,
            ..
        } => names.iter().collect(),
        ast::Statement::AlterTable(at) => vec![&at.name],
        ast::Statement::Truncate(tr) => tr.table_names.iter().map(|t| &t.name).collect(),
        ast::Statement::CreateIndex(ci) => vec![&ci.table_name],
        _ => return Ok(()),
    };
    if is_superuser(txn, user)? {
        return Ok(());
    }
    for n in names {
        let name = last_name(n)?;
        if let Some(def) = catalog.lookup(txn, &name)? {
            if table_acl(txn, def.id)?.owner != user {
                return Err(not_owner(&def.name));
            }
        }
    }
    Ok(())
}

/// The privilege bits of a GRANT/REVOKE list.
fn privilege_bits(p: &ast::Privileges) -> SqlResult<u8> {
    match p {
        ast::Privileges::All { .. } => Ok(ALL),
        ast::Privileges::Actions(actions) => {
            let mut bits = 0;
            for a in actions {
                bits |= match a {
                    ast::Action::Select { columns: None } => SELECT,
                    ast::Action::Insert { columns: None } => INSERT,
                    ast::Action::Update { columns: None } => UPDATE,
                    ast::Action::Delete => DELETE,
                    ast::Action::Select { .. }
                    | ast::Action::Insert { .. }
                    | ast::Action::Update { .. } => {
                        return Err(SqlError::unsupported("column privileges"))
                    }
                    other => return Err(SqlError::unsupported(format!("privilege {other}"))),
                };
            }
            Ok(bits)
        }
    }
}

/// GRANT (`grant` true) or REVOKE privileges ON [TABLE] tables TO/FROM roles. Only the owner
/// of each table (or a superuser) may; unknown tables are 42P01, unknown roles 42704.
pub(crate) fn grant_or_revoke(
    catalog: &Catalog,
    txn: &mut dyn Transaction,
    user: &str,
    grant: bool,
    privileges: &ast::Privileges,
    objects: Option<&ast::GrantObjects>,
    grantees: &[ast::Grantee],
) -> SqlResult<()> {
    let bits = privilege_bits(privileges)?;
    let tables = match objects {
        Some(ast::GrantObjects::Tables(t)) => t,
        _ => {
            return Err(SqlError::unsupported(
                "GRANT/REVOKE on objects other than tables",
            ))
        }
    };
    let mut roles = Vec::with_capacity(grantees.len());
    for g in grantees {
        let name = match &g.name {
            Some(ast::GranteeName::ObjectName(n)) => last_name(n)?,
            _ => return Err(SqlError::unsupported("this grantee (PUBLIC, groups)")),
        };
        if name == "public" {
            return Err(SqlError::unsupported("privileges granted to PUBLIC"));
        }
        if lookup_role(txn, &name)?.is_none() {
            return Err(SqlError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("role \"{name}\" does not exist"),
            ));
        }
        roles.push(name);
    }
    let superuser = is_superuser(txn, user)?;
    for t in tables {
        let def = catalog.require(txn, &last_name(t)?)?;
        // NB: the write lock on the ACL key serializes concurrent GRANTs on one table.
        let mut acl = match txn.get_for_update(&Key::TableAcl(def.id).encode())? {
            Some(bytes) => TableAcl::decode(&bytes)?,
            None => table_acl(txn, def.id)?,
        };
        if !superuser && acl.owner != user {
            return Err(denied(&def.name));
        }
        for role in &roles {
            let now = acl.granted(role);
            acl.set(role, if grant { now | bits } else { now & !bits });
        }
        put_acl(txn, def.id, &acl)?;
    }
    Ok(())
}

/// Whether `role` owns a table or holds a privilege (DROP ROLE refuses then, 2BP01).
pub(crate) fn role_has_objects(txn: &dyn Transaction, role: &str) -> SqlResult<bool> {
    for (_, v) in txn.scan(KeyPrefix::TableAcl.range(), false, None)? {
        let acl = TableAcl::decode(&v)?;
        if acl.owner == role || acl.granted(role) != 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    /// What `sql` needs on the tables a, b, c, s, t, u (the words that are not tables are
    /// skipped by the catalog lookup in `check_statement`).
    fn needs(sql: &str) -> Vec<(String, u8)> {
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        let tables = ["a", "b", "c", "s", "t", "u"];
        let mut v = needed(&stmt).unwrap();
        v.retain(|(n, _)| tables.contains(&n.as_str()));
        v
    }

    #[test]
    fn acl_round_trips() {
        let mut acl = TableAcl {
            owner: "alice".into(),
            grants: vec![],
        };
        acl.set("bob", SELECT | UPDATE);
        acl.set("carol", 0);
        assert_eq!(TableAcl::decode(&acl.encode()).unwrap(), acl);
        assert_eq!(acl.granted("bob"), SELECT | UPDATE);
        assert!(TableAcl::decode(&acl.encode()[..3]).is_err());
    }

    #[test]
    fn statements_need_what_postgres_needs() {
        assert_eq!(
            needs("SELECT * FROM a JOIN b ON a.x = b.x WHERE a.y IN (SELECT y FROM c)"),
            vec![
                ("a".into(), SELECT),
                ("b".into(), SELECT),
                ("c".into(), SELECT)
            ]
        );
        assert_eq!(
            needs("INSERT INTO t VALUES (1)"),
            vec![("t".into(), INSERT)]
        );
        assert_eq!(
            needs("INSERT INTO t SELECT * FROM s"),
            vec![("t".into(), INSERT), ("s".into(), SELECT)]
        );
        assert_eq!(needs("UPDATE t SET x = 1"), vec![("t".into(), UPDATE)]);
        assert_eq!(
            needs("UPDATE t SET x = 1 WHERE y = 2"),
            vec![("t".into(), UPDATE | SELECT)]
        );
        assert_eq!(needs("DELETE FROM t"), vec![("t".into(), DELETE)]);
        assert_eq!(
            needs("DELETE FROM t WHERE x IN (SELECT x FROM u)"),
            vec![("t".into(), DELETE | SELECT), ("u".into(), SELECT)]
        );
    }
}
