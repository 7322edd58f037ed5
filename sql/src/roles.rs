//! Roles: CREATE ROLE / USER, ALTER ROLE, DROP ROLE, stored transactionally in the catalog.
//!
//! A role is one key, `Key::Role(name)`, whose value is its [`RoleDef`] (format below). Like
//! tables, roles commit, roll back and recover with the transaction that changed them, and
//! every change bumps the catalog version (cached plans are re-bound and re-checked).
//!
//! Invariants:
//! 1. A password is stored only as a SCRAM-SHA-256 verifier ([`crate::scram`]); a plaintext
//!    password never reaches the key space (and so never the WAL or a checkpoint). A
//!    client-supplied verifier (`PASSWORD 'SCRAM-SHA-256$...'`) is stored as it is, as
//!    PostgreSQL does.
//! 2. The bootstrap superuser [`BOOTSTRAP_SUPERUSER`] always exists, can log in, and stays a
//!    superuser: it cannot be dropped or demoted (the server's access rules are stated in
//!    terms of it).
//! 3. Only superusers create, alter or drop roles; any role may change its own password.
//!
//! Deliberately left out: role membership (IN ROLE, GRANT role TO role), CREATEDB/CREATEROLE
//! (accepted only as their NO... forms), CONNECTION LIMIT, VALID UNTIL, RENAME, md5 hashes.

use bytes::Bytes;
use sqlparser::ast;

use crate::encoding::{put_str, Key, KeyPrefix, Reader};
use crate::error::{Notice, SqlError, SqlResult, SqlState};
use crate::scram::Verifier;
use crate::storage::Transaction;

/// The superuser created at bootstrap (the README's default user).
pub const BOOTSTRAP_SUPERUSER: &str = "gnomon";

/// Version byte of an encoded [`RoleDef`]; readers reject others.
pub const ROLE_DEF_VERSION: u8 = 1; // FROZEN

/// A role as stored in the catalog: what `pg_authid` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDef {
    /// Role name (case-folded unless quoted).
    pub name: String,
    /// May start a session (`rolcanlogin`).
    pub login: bool,
    /// Bypasses every permission check (`rolsuper`).
    pub superuser: bool,
    /// SCRAM-SHA-256 verifier in PostgreSQL's text form (`rolpassword`), None = no password.
    pub password: Option<String>,
}

impl RoleDef {
    /// Encoding of the value under `Key::Role(name)`:
    ///
    /// ```text
    /// (empty)                                   bootstrap form: LOGIN SUPERUSER, no password
    /// version 1B | flags 1B | verifier str      flags: bit0 LOGIN, bit1 SUPERUSER
    /// ```
    /// `str` is varint length + UTF-8; an empty verifier means no password.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![
            ROLE_DEF_VERSION,
            self.login as u8 | (self.superuser as u8) << 1,
        ];
        put_str(&mut out, self.password.as_deref().unwrap_or(""));
        out
    }

    /// Decodes [`RoleDef::encode`]'s output for the role `name`.
    pub fn decode(name: &str, bytes: &[u8]) -> SqlResult<RoleDef> {
        if bytes.is_empty() {
            // Written by catalogs bootstrapped before roles had attributes.
            return Ok(RoleDef {
                name: name.to_string(),
                login: true,
                superuser: true,
                password: None,
            });
        }
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != ROLE_DEF_VERSION {
            return Err(SqlError::corrupt(format!(
                "unknown role definition version {version}"
            )));
        }
        let flags = r.u8()?;
        let password = r.string()?;
        if !r.is_empty() {
            return Err(SqlError::corrupt("trailing bytes after role definition"));
        }
        Ok(RoleDef {
            name: name.to_string(),
            login: flags & 1 != 0,
            superuser: flags & 2 != 0,
            password: (!password.is_empty()).then_some(password),
        })
    }
}

/// The role `name` as `txn` sees it.
pub fn lookup_role(txn: &dyn Transaction, name: &str) -> SqlResult<Option<RoleDef>> {
    match txn.get(&Key::Role(name.to_string()).encode())? {
        Some(bytes) => Ok(Some(RoleDef::decode(name, &bytes)?)),
        None => Ok(None),
    }
}

/// Every role `txn` sees, by name (for `pg_roles`, `pg_user`, `pg_authid`).
pub fn list_roles(txn: &dyn Transaction) -> SqlResult<Vec<RoleDef>> {
    let mut out = Vec::new();
    for (k, v) in txn.scan(KeyPrefix::Role.range(), false, None)? {
        if let Key::Role(name) = Key::decode(&k)? {
            out.push(RoleDef::decode(&name, &v)?);
        }
    }
    Ok(out)
}

fn put_role(txn: &mut dyn Transaction, role: &RoleDef) -> SqlResult<()> {
    txn.put(
        &Key::Role(role.name.clone()).encode(),
        Bytes::from(role.encode()),
    )
}

/// 42501 for a role statement run by a non-superuser.
fn must_be_superuser(what: &str) -> SqlError {
    SqlError::new(
        SqlState::INSUFFICIENT_PRIVILEGE,
        format!("permission denied to {what}"),
    )
    .with_detail("Only roles with the SUPERUSER attribute may do this.")
}

fn no_such_role(name: &str) -> SqlError {
    SqlError::new(
        SqlState::UNDEFINED_OBJECT,
        format!("role \"{name}\" does not exist"),
    )
}

/// What a statement asks to change in a role.
#[derive(Default)]
struct RoleChanges {
    login: Option<bool>,
    superuser: Option<bool>,
    /// Some(None) = PASSWORD NULL; Some(Some(text)) = a password or a verifier.
    password: Option<Option<String>>,
}

impl RoleChanges {
    fn only_password(&self) -> bool {
        self.login.is_none() && self.superuser.is_none()
    }
}

fn password_text(p: &ast::Password) -> SqlResult<Option<String>> {
    match p {
        ast::Password::NullPassword => Ok(None),
        ast::Password::Password(ast::Expr::Value(v)) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::EscapedStringLiteral(s) => {
                Ok(Some(s.clone()))
            }
            ast::Value::Null => Ok(None),
            _ => Err(SqlError::syntax("PASSWORD must be a string literal")),
        },
        _ => Err(SqlError::syntax("PASSWORD must be a string literal")),
    }
}

/// Refuses options that have no effect here when they ask for something.
fn refuse_if(set: Option<bool>, what: &str) -> SqlResult<()> {
    match set {
        Some(true) => Err(SqlError::unsupported(format!("role attribute {what}"))),
        _ => Ok(()),
    }
}

/// The verifier to store for a PASSWORD clause (invariant 1), or None to clear it.
fn verifier_for(password: Option<String>, notices: &mut Vec<Notice>) -> SqlResult<Option<String>> {
    let Some(text) = password else {
        return Ok(None);
    };
    if text.is_empty() {
        notices.push(Notice {
            code: "00000",
            message: "empty string is not a valid password, clearing password".into(),
            severity: "NOTICE",
        });
        return Ok(None);
    }
    if let Some(v) = Verifier::parse(&text) {
        return Ok(Some(v.to_text()));
    }
    if text.starts_with("SCRAM-SHA-256$") {
        return Err(SqlError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            "malformed SCRAM-SHA-256 secret",
        ));
    }
    if text.len() == 35
        && text.starts_with("md5")
        && text[3..].bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(SqlError::unsupported(
            "MD5 password hashes (use a password or a SCRAM-SHA-256 secret)",
        ));
    }
    Ok(Some(Verifier::from_password(&text).to_text()))
}

fn apply(role: &mut RoleDef, changes: RoleChanges, notices: &mut Vec<Notice>) -> SqlResult<()> {
    if let Some(login) = changes.login {
        role.login = login;
    }
    if let Some(superuser) = changes.superuser {
        role.superuser = superuser;
    }
    if let Some(password) = changes.password {
        role.password = verifier_for(password, notices)?;
    }
    Ok(())
}

/// Who runs a role statement.
pub(crate) struct Actor<'a> {
    /// The session's role.
    pub user: &'a str,
}

impl Actor<'_> {
    fn is_superuser(&self, txn: &dyn Transaction) -> SqlResult<bool> {
        Ok(lookup_role(txn, self.user)?.is_some_and(|r| r.superuser))
    }
}

/// CREATE ROLE / CREATE USER (the latter is rewritten to CREATE ROLE ... LOGIN by
/// [`rewrite_create_user`]).
pub(crate) fn create_role(
    txn: &mut dyn Transaction,
    actor: &Actor<'_>,
    cr: &ast::CreateRole,
    notices: &mut Vec<Notice>,
) -> SqlResult<()> {
    if !actor.is_superuser(txn)? {
        return Err(must_be_superuser("create role"));
    }
    refuse_if(cr.create_db, "CREATEDB")?;
    refuse_if(cr.create_role, "CREATEROLE")?;
    refuse_if(cr.replication, "REPLICATION")?;
    refuse_if(cr.bypassrls, "BYPASSRLS")?;
    if cr.connection_limit.is_some() || cr.valid_until.is_some() {
        return Err(SqlError::unsupported("CONNECTION LIMIT and VALID UNTIL"));
    }
    if !(cr.in_role.is_empty()
        && cr.in_group.is_empty()
        && cr.role.is_empty()
        && cr.user.is_empty()
        && cr.admin.is_empty())
    {
        return Err(SqlError::unsupported("role membership"));
    }
    for n in &cr.names {
        let name = crate::query::object_name(n)?;
        if matches!(
            name.as_str(),
            "public" | "none" | "current_user" | "session_user"
        ) || name.starts_with("pg_")
        {
            return Err(SqlError::new(
                SqlState::RESERVED_NAME,
                format!("role name \"{name}\" is reserved"),
            ));
        }
        // NB: the write lock on the name serializes concurrent CREATE ROLE of one name.
        if txn
            .get_for_update(&Key::Role(name.clone()).encode())?
            .is_some()
        {
            if cr.if_not_exists {
                notices.push(Notice {
                    code: "42710",
                    message: format!("role \"{name}\" already exists, skipping"),
                    severity: "NOTICE",
                });
                continue;
            }
            return Err(SqlError::new(
                SqlState::DUPLICATE_OBJECT,
                format!("role \"{name}\" already exists"),
            ));
        }
        let mut role = RoleDef {
            name,
            login: false,
            superuser: false,
            password: None,
        };
        let changes = RoleChanges {
            login: cr.login,
            superuser: cr.superuser,
            password: cr.password.as_ref().map(password_text).transpose()?,
        };
        apply(&mut role, changes, notices)?;
        put_role(txn, &role)?;
    }
    Ok(())
}

/// ALTER ROLE / ALTER USER name [WITH] options.
pub(crate) fn alter_role(
    txn: &mut dyn Transaction,
    actor: &Actor<'_>,
    name: &ast::Ident,
    operation: &ast::AlterRoleOperation,
    notices: &mut Vec<Notice>,
) -> SqlResult<()> {
    let name = crate::query::ident_name(name);
    let ast::AlterRoleOperation::WithOptions { options } = operation else {
        return Err(SqlError::unsupported(format!("ALTER ROLE ... {operation}")));
    };
    let mut changes = RoleChanges::default();
    for o in options {
        match o {
            ast::RoleOption::Login(b) => changes.login = Some(*b),
            ast::RoleOption::SuperUser(b) => changes.superuser = Some(*b),
            ast::RoleOption::Password(p) => changes.password = Some(password_text(p)?),
            ast::RoleOption::Inherit(_) => {}
            ast::RoleOption::CreateDB(b) => refuse_if(Some(*b), "CREATEDB")?,
            ast::RoleOption::CreateRole(b) => refuse_if(Some(*b), "CREATEROLE")?,
            ast::RoleOption::Replication(b) => refuse_if(Some(*b), "REPLICATION")?,
            ast::RoleOption::BypassRLS(b) => refuse_if(Some(*b), "BYPASSRLS")?,
            other => return Err(SqlError::unsupported(format!("role option {other}"))),
        }
    }
    let superuser = actor.is_superuser(txn)?;
    // Invariant 3: anyone may change their own password, nothing else.
    let own_password = actor.user == name && changes.only_password();
    if !(superuser || own_password) {
        return Err(must_be_superuser("alter role"));
    }
    let Some(bytes) = txn.get_for_update(&Key::Role(name.clone()).encode())? else {
        return Err(no_such_role(&name));
    };
    let mut role = RoleDef::decode(&name, &bytes)?;
    if name == BOOTSTRAP_SUPERUSER
        && (changes.superuser == Some(false) || changes.login == Some(false))
    {
        return Err(SqlError::new(
            SqlState::INSUFFICIENT_PRIVILEGE,
            format!("permission denied to alter role \"{name}\""),
        )
        .with_detail("The bootstrap superuser must remain a superuser that can log in."));
    }
    apply(&mut role, changes, notices)?;
    put_role(txn, &role)
}

/// DROP ROLE / DROP USER [IF EXISTS] names. `owns_objects` tells whether a role still owns
/// a table or holds a privilege (2BP01, as in PostgreSQL).
pub(crate) fn drop_roles(
    txn: &mut dyn Transaction,
    actor: &Actor<'_>,
    names: &[ast::ObjectName],
    if_exists: bool,
    notices: &mut Vec<Notice>,
    owns_objects: &dyn Fn(&dyn Transaction, &str) -> SqlResult<bool>,
) -> SqlResult<()> {
    if !actor.is_superuser(txn)? {
        return Err(must_be_superuser("drop role"));
    }
    for n in names {
        let name = crate::query::object_name(n)?;
        let key = Key::Role(name.clone()).encode();
        if txn.get_for_update(&key)?.is_none() {
            if if_exists {
                notices.push(Notice {
                    code: "00000",
                    message: format!("role \"{name}\" does not exist, skipping"),
                    severity: "NOTICE",
                });
                continue;
            }
            return Err(no_such_role(&name));
        }
        if name == actor.user {
            return Err(SqlError::new(
                SqlState::OBJECT_IN_USE,
                "current user cannot be dropped",
            ));
        }
        if name == BOOTSTRAP_SUPERUSER {
            return Err(SqlError::new(
                SqlState::DEPENDENT_OBJECTS,
                format!("cannot drop role {name} because it is required by the database system"),
            ));
        }
        if owns_objects(txn, &name)? {
            return Err(SqlError::new(
                SqlState::DEPENDENT_OBJECTS,
                format!("role \"{name}\" cannot be dropped because some objects depend on it"),
            ));
        }
        txn.delete(&key)?;
    }
    Ok(())
}

/// PostgreSQL's `CREATE USER name ...` is `CREATE ROLE name LOGIN ...` (sqlparser reads
/// `CREATE USER` as Snowflake's statement): returns the rewritten text when a statement of
/// `sql` starts with CREATE USER, None otherwise. LOGIN is added only if neither LOGIN nor
/// NOLOGIN is given.
pub(crate) fn rewrite_create_user(sql: &str) -> Option<String> {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::{Token, Tokenizer};

    // NB: cheap test first: this runs for every query string.
    if !contains_ignore_case(sql, b"user") || !contains_ignore_case(sql, b"create") {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
        .collect();
    let is_kw = |i: usize, k: Keyword| matches!(&tokens[i], Token::Word(w) if w.keyword == k && w.quote_style.is_none());
    // Token index of USER, and of the token to add LOGIN after (if any).
    let mut user_at: Vec<(usize, Option<usize>)> = Vec::new();
    let mut at_start = true;
    for (n, &i) in significant.iter().enumerate() {
        if matches!(tokens[i], Token::SemiColon) {
            at_start = true;
            continue;
        }
        if at_start && is_kw(i, Keyword::CREATE) {
            if let (Some(&u), Some(&name)) = (significant.get(n + 1), significant.get(n + 2)) {
                if is_kw(u, Keyword::USER) && matches!(tokens[name], Token::Word(_)) {
                    let has_login = significant[n + 3..]
                        .iter()
                        .take_while(|&&j| !matches!(tokens[j], Token::SemiColon))
                        .any(|&j| {
                            matches!(&tokens[j], Token::Word(w) if w.quote_style.is_none()
                                && (w.value.eq_ignore_ascii_case("login")
                                    || w.value.eq_ignore_ascii_case("nologin")))
                        });
                    // LOGIN goes after the optional WITH that follows the name.
                    let after = match significant.get(n + 3) {
                        Some(&w) if is_kw(w, Keyword::WITH) => w,
                        _ => name,
                    };
                    user_at.push((u, (!has_login).then_some(after)));
                }
            }
        }
        at_start = false;
    }
    if user_at.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(sql.len() + 8 * user_at.len());
    for (i, t) in tokens.iter().enumerate() {
        if user_at.iter().any(|&(u, _)| u == i) {
            out.push_str("ROLE");
        } else {
            out.push_str(&t.to_string());
        }
        if user_at.iter().any(|&(_, name)| name == Some(i)) {
            out.push_str(" LOGIN");
        }
    }
    Some(out)
}

fn contains_ignore_case(haystack: &str, needle: &[u8]) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_definitions_round_trip() {
        let r = RoleDef {
            name: "alice".into(),
            login: true,
            superuser: false,
            password: Some(Verifier::from_password("x").to_text()),
        };
        assert_eq!(RoleDef::decode("alice", &r.encode()).unwrap(), r);
        let bootstrap = RoleDef::decode("gnomon", &[]).unwrap();
        assert!(bootstrap.superuser && bootstrap.login && bootstrap.password.is_none());
        let mut bad = r.encode();
        bad.push(1);
        assert!(RoleDef::decode("alice", &bad).is_err());
        assert!(RoleDef::decode("alice", &[9]).is_err());
        assert!(RoleDef::decode("alice", &[1]).is_err());
    }

    #[test]
    fn create_user_becomes_create_role_login() {
        assert_eq!(
            rewrite_create_user("CREATE USER alice WITH PASSWORD 'create user'").as_deref(),
            Some("CREATE ROLE alice WITH LOGIN PASSWORD 'create user'")
        );
        assert_eq!(
            rewrite_create_user("create user \"Bob\" nologin").as_deref(),
            Some("create ROLE \"Bob\" nologin")
        );
        assert_eq!(rewrite_create_user("CREATE TABLE user_x (a int)"), None);
        assert_eq!(
            rewrite_create_user("CREATE TABLE t (a int); create user c").as_deref(),
            Some("CREATE TABLE t (a int); create ROLE c LOGIN")
        );
        assert_eq!(rewrite_create_user("SELECT 1"), None);
    }

    #[test]
    fn passwords_become_verifiers() {
        let mut notices = Vec::new();
        let stored = verifier_for(Some("hunter2".into()), &mut notices)
            .unwrap()
            .unwrap();
        assert!(stored.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!stored.contains("hunter2"));
        // A verifier is kept as given.
        assert_eq!(
            verifier_for(Some(stored.clone()), &mut notices).unwrap(),
            Some(stored)
        );
        assert_eq!(
            verifier_for(Some(String::new()), &mut notices).unwrap(),
            None
        );
        assert_eq!(notices.len(), 1);
        assert!(verifier_for(Some("SCRAM-SHA-256$x".into()), &mut notices).is_err());
    }
}
