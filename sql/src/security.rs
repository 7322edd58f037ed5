//! Security statements (roles, GRANT/REVOKE), the owner check of DDL, and which statements
//! the audit log records.
//!
//! The session calls [`run`] before its own statement dispatch: it answers the statements
//! this module owns and returns None for the rest. Every statement it runs marks the
//! transaction as DDL, so its commit bumps the catalog version and cached plans are bound
//! (and privilege-checked) again.

use sqlparser::ast;

use crate::audit::AuditEvent;
use crate::catalog::Catalog;
use crate::error::{Notice, SqlResult};
use crate::privileges;
use crate::roles::{self, Actor};
use crate::session::Outcome;
use crate::storage::Transaction;

/// Runs `stmt` if it is a security statement; None if it is not one.
/// DDL on existing tables is checked here for ownership (privileges.rs invariant 4) and
/// then left to the normal dispatch (None), or refused.
pub(crate) fn run(
    catalog: &Catalog,
    txn: &mut dyn Transaction,
    user: &str,
    stmt: &ast::Statement,
    ddl: &mut bool,
    notices: &mut Vec<Notice>,
) -> Option<SqlResult<Outcome>> {
    use ast::Statement as S;
    let actor = Actor { user };
    if let Err(e) = privileges::check_ddl(catalog, txn, user, stmt) {
        return Some(Err(e));
    }
    let (result, tag) = match stmt {
        S::CreateRole(cr) => (roles::create_role(txn, &actor, cr, notices), "CREATE ROLE"),
        S::AlterRole { name, operation } => (
            roles::alter_role(txn, &actor, name, operation, notices),
            "ALTER ROLE",
        ),
        S::Drop {
            object_type: ast::ObjectType::Role | ast::ObjectType::User,
            if_exists,
            names,
            ..
        } => (
            roles::drop_roles(
                txn,
                &actor,
                names,
                *if_exists,
                notices,
                &privileges::role_has_objects,
            ),
            "DROP ROLE",
        ),
        S::Grant(g) => (
            privileges::grant_or_revoke(
                catalog,
                txn,
                user,
                true,
                &g.privileges,
                g.objects.as_ref(),
                &g.grantees,
            ),
            "GRANT",
        ),
        S::Revoke(r) => (
            privileges::grant_or_revoke(
                catalog,
                txn,
                user,
                false,
                &r.privileges,
                r.objects.as_ref(),
                &r.grantees,
            ),
            "REVOKE",
        ),
        _ => return None,
    };
    Some(result.map(|()| {
        *ddl = true;
        Outcome::Command { tag: tag.into() }
    }))
}

/// The audit event a successfully executed statement is logged as, if any.
pub(crate) fn audit_event(stmt: &ast::Statement) -> Option<AuditEvent> {
    use ast::Statement as S;
    match stmt {
        S::CreateRole(_) | S::AlterRole { .. } | S::CreateUser(_) => Some(AuditEvent::Role),
        S::Drop {
            object_type: ast::ObjectType::Role | ast::ObjectType::User,
            ..
        } => Some(AuditEvent::Role),
        S::Grant(_) | S::Revoke(_) | S::GrantRole(_) | S::RevokeRole(_) => Some(AuditEvent::Grant),
        S::CreateTable(_)
        | S::CreateIndex(_)
        | S::CreateView(_)
        | S::CreateSequence { .. }
        | S::CreateSchema { .. }
        | S::CreateDatabase { .. }
        | S::AlterTable(_)
        | S::AlterIndex { .. }
        | S::AlterView { .. }
        | S::Drop { .. }
        | S::Truncate(_) => Some(AuditEvent::Ddl),
        _ => None,
    }
}
