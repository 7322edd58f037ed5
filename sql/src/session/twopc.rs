//! `PREPARE TRANSACTION 'gid'`, `COMMIT PREPARED 'gid'`, `ROLLBACK PREPARED 'gid'`, with
//! PostgreSQL 15's session semantics (checked against the real server):
//!
//! - PREPARE ends the session's transaction block whatever happens: the transaction is then
//!   prepared (tag `PREPARE TRANSACTION`), or rolled back on an error (42710 gid in use, 55000
//!   disabled, 53200 too many, 22023 gid too long). Outside a block it warns 25P01 "there is
//!   no transaction in progress" and answers `ROLLBACK`; in a failed block it answers
//!   `ROLLBACK`; in the implicit block of a multi-statement message it warns 25P01 and prepares.
//! - COMMIT/ROLLBACK PREPARED run outside any block (25001 "... cannot run inside a transaction
//!   block", also inside a multi-statement message), from any session of the gid's database,
//!   by the role that prepared it or a superuser. Errors in PostgreSQL's order: 42704 unknown
//!   gid, 55000 busy (another session is resolving it), 42501 "permission denied to finish
//!   prepared transaction" (another role), 0A000 "prepared transaction belongs to another
//!   database"; 25P02 in a failed block.
//!
//! sqlparser does not know these statements: a message is looked at here only when sqlparser
//! has refused it, so ordinary statements pay nothing. The message is then cut into statements
//! with sqlparser's tokenizer (quotes, comments and dollar quotes respected); the 2PC ones are
//! recognised by their tokens and the others parsed one by one.

use sqlparser::ast;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::{Block, Outcome, Session};
use crate::encoding::{Key, TableId};
use crate::error::{SqlError, SqlResult, SqlState};

/// A two-phase commit command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TwoPc {
    /// `PREPARE TRANSACTION 'gid'`.
    Prepare(String),
    /// `COMMIT PREPARED 'gid'`.
    CommitPrepared(String),
    /// `ROLLBACK PREPARED 'gid'`.
    RollbackPrepared(String),
}

/// One statement of a message that holds 2PC commands.
pub(super) enum Piece {
    TwoPc(TwoPc),
    Statement(Box<ast::Statement>),
}

/// Statement texts of `sql` as token lists, split at top-level semicolons (whitespace and
/// comments dropped), or None if the tokenizer refuses the text.
fn statements(sql: &str) -> Option<Vec<Vec<Token>>> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut out = vec![Vec::new()];
    for t in tokens {
        match t {
            Token::SemiColon => out.push(Vec::new()),
            Token::Whitespace(_) => {}
            other => {
                if let Some(last) = out.last_mut() {
                    last.push(other);
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    Some(out)
}

fn keyword(t: &Token, word: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// The 2PC command these tokens spell, None if they are not one, or a syntax error when they
/// start like one and go wrong.
fn classify(tokens: &[Token]) -> Option<SqlResult<TwoPc>> {
    let (first, second) = (tokens.first()?, tokens.get(1)?);
    let make: fn(String) -> TwoPc = if keyword(first, "prepare") && keyword(second, "transaction") {
        TwoPc::Prepare
    } else if keyword(first, "commit") && keyword(second, "prepared") {
        TwoPc::CommitPrepared
    } else if keyword(first, "rollback") && keyword(second, "prepared") {
        TwoPc::RollbackPrepared
    } else {
        return None;
    };
    let near = |t: Option<&Token>| match t {
        Some(t) => SqlError::syntax(format!("syntax error at or near \"{t}\"")),
        None => SqlError::syntax("syntax error at end of input"),
    };
    let gid = match tokens.get(2) {
        Some(Token::SingleQuotedString(s)) | Some(Token::EscapedStringLiteral(s)) => s.clone(),
        other => return Some(Err(near(other))),
    };
    if tokens.len() > 3 {
        return Some(Err(near(tokens.get(3))));
    }
    Some(Ok(make(gid)))
}

/// A single statement (extended protocol) that is a 2PC command.
pub(super) fn single(sql: &str) -> Option<SqlResult<TwoPc>> {
    let stmts = statements(sql)?;
    match stmts.as_slice() {
        [one] => classify(one),
        _ => None,
    }
}

/// The statements of a message sqlparser refused, if at least one is a 2PC command: the
/// others parsed one by one (a syntax error anywhere fails the whole message before anything
/// runs, as in PostgreSQL). None when no statement is a 2PC command.
pub(super) fn split_message(sql: &str) -> Option<SqlResult<Vec<Piece>>> {
    let stmts = statements(sql)?;
    if !stmts.iter().any(|s| classify(s).is_some()) {
        return None;
    }
    let mut pieces = Vec::with_capacity(stmts.len());
    for tokens in stmts {
        match classify(&tokens) {
            Some(Ok(cmd)) => pieces.push(Piece::TwoPc(cmd)),
            Some(Err(e)) => return Some(Err(e)),
            None => {
                let text: String = tokens.iter().map(|t| format!("{t} ")).collect();
                match Parser::parse_sql(&PostgreSqlDialect {}, &text) {
                    Ok(parsed) => {
                        pieces.extend(parsed.into_iter().map(|s| Piece::Statement(Box::new(s))))
                    }
                    Err(e) => return Some(Err(SqlError::syntax(e.to_string()))),
                }
            }
        }
    }
    Some(Ok(pieces))
}

impl Session {
    /// Runs the statements of a message that holds 2PC commands, with the implicit-transaction
    /// rules of [`Session::execute_simple`].
    pub(super) fn execute_pieces(&mut self, pieces: Vec<Piece>) -> Vec<Result<Outcome, SqlError>> {
        let n = pieces.len();
        let mut results = Vec::with_capacity(n);
        for (i, piece) in pieces.iter().enumerate() {
            let r = match piece {
                Piece::TwoPc(cmd) => self.run_twopc(cmd, n > 1),
                Piece::Statement(stmt) => self.run_statement(stmt, &[]),
            };
            let failed = r.is_err();
            results.push(r);
            if failed {
                self.fail_current();
                break;
            }
            if i + 1 == n {
                if let Err(e) = self.finish_implicit() {
                    results.push(Err(e));
                }
            }
        }
        results
    }

    /// Runs one 2PC command; `in_message` is true when other statements share its message.
    /// Each decision taken (prepared, committed, rolled back) goes to the audit log.
    pub(super) fn run_twopc(&mut self, cmd: &TwoPc, in_message: bool) -> SqlResult<Outcome> {
        let result = self.run_twopc_unaudited(cmd, in_message);
        if let Ok(Outcome::Command { tag }) = &result {
            let gid = match cmd {
                TwoPc::Prepare(g) | TwoPc::CommitPrepared(g) | TwoPc::RollbackPrepared(g) => g,
            };
            if matches!(
                tag.as_str(),
                "PREPARE TRANSACTION" | "COMMIT PREPARED" | "ROLLBACK PREPARED"
            ) {
                self.engine.audit().record(
                    &self.info.user,
                    crate::audit::AuditEvent::TwoPhase,
                    &format!("{tag} '{}'", gid.replace('\'', "''")),
                );
            }
        }
        result
    }

    fn run_twopc_unaudited(&mut self, cmd: &TwoPc, in_message: bool) -> SqlResult<Outcome> {
        let tag = |t: &str| Outcome::Command { tag: t.into() };
        match cmd {
            TwoPc::Prepare(gid) => match self.txn.take() {
                None => {
                    self.notice("WARNING", "25P01", "there is no transaction in progress");
                    Ok(tag("ROLLBACK"))
                }
                Some(t) if t.failed => {
                    t.txn.rollback();
                    Ok(tag("ROLLBACK"))
                }
                Some(t) => {
                    if t.block == Block::Implicit {
                        self.notice("WARNING", "25P01", "there is no transaction in progress");
                    }
                    self.engine
                        .db
                        .prepare(t.txn, gid, &self.info.user, &self.info.database)
                        .map_err(prepare_error)?;
                    Ok(tag("PREPARE TRANSACTION"))
                }
            },
            TwoPc::CommitPrepared(gid) | TwoPc::RollbackPrepared(gid) => {
                let commit = matches!(cmd, TwoPc::CommitPrepared(_));
                let what = if commit {
                    "COMMIT PREPARED"
                } else {
                    "ROLLBACK PREPARED"
                };
                if self.txn.as_ref().is_some_and(|t| t.failed) {
                    return Err(SqlError::new(
                        SqlState::IN_FAILED_SQL_TRANSACTION,
                        "current transaction is aborted, commands ignored until end of transaction block",
                    ));
                }
                if self.txn.is_some() || in_message {
                    return Err(SqlError::new(
                        SqlState::ACTIVE_SQL_TRANSACTION,
                        format!("{what} cannot run inside a transaction block"),
                    ));
                }
                let db = &self.engine.db;
                if let Some(p) = db
                    .prepared_transactions()
                    .into_iter()
                    .find(|p| &p.gid == gid)
                {
                    // PostgreSQL's order (LockGXact): busy (a slot being resolved is not
                    // listed, so db.commit_prepared reports it), then the owner, then the
                    // database.
                    if p.owner != self.info.user && !self.is_superuser()? {
                        return Err(SqlError::new(
                            SqlState::INSUFFICIENT_PRIVILEGE,
                            "permission denied to finish prepared transaction",
                        )
                        .with_hint(
                            "Must be superuser or the user that prepared the transaction.",
                        ));
                    }
                    if p.database != self.info.database {
                        return Err(SqlError::new(
                            SqlState::FEATURE_NOT_SUPPORTED,
                            "prepared transaction belongs to another database",
                        )
                        .with_hint(
                            "Connect to the database where the transaction was prepared to finish it.",
                        ));
                    }
                }
                if commit {
                    self.commit_prepared(gid)?;
                } else {
                    db.rollback_prepared(gid).map_err(prepare_error)?;
                }
                Ok(tag(what))
            }
        }
    }

    /// True if the session's role is a superuser (read in a transaction of its own: COMMIT
    /// and ROLLBACK PREPARED run outside any block).
    fn is_superuser(&self) -> SqlResult<bool> {
        let txn = self.engine.db.begin(gnomon_mvcc::Isolation::ReadCommitted);
        let superuser = crate::privileges::is_superuser(&txn, &self.info.user);
        txn.rollback();
        superuser
    }

    /// COMMIT PREPARED, keeping the catalog cache right when the prepared transaction holds DDL
    /// (any write but rows, index entries and sequence values counts; dropped table
    /// definitions leave the cache).
    fn commit_prepared(&mut self, gid: &str) -> SqlResult<()> {
        let db = &self.engine.db;
        let catalog = &self.engine.catalog;
        let ddl = db.with_prepared(gid, |state| {
            let mut ddl = false;
            let mut dropped: Vec<TableId> = Vec::new();
            for (key, value) in &state.writes {
                match Key::decode(key) {
                    Ok(Key::Row(..) | Key::IndexEntry(..) | Key::SequenceValue(_)) => {}
                    Ok(Key::Table(id)) => {
                        ddl = true;
                        if value.is_none() {
                            dropped.push(id);
                        }
                    }
                    _ => ddl = true,
                }
            }
            ddl.then_some(dropped)
        });
        let Some(dropped) = ddl.flatten() else {
            db.commit_prepared(gid).map_err(prepare_error)?;
            return Ok(());
        };
        catalog.ddl_commit_begins();
        match db.commit_prepared(gid) {
            Ok(_) => {
                catalog.ddl_committed(&dropped);
                Ok(())
            }
            Err(e) => {
                catalog.ddl_commit_failed();
                Err(prepare_error(e))
            }
        }
    }
}

/// 2PC errors with PostgreSQL's SQLSTATEs and hints.
fn prepare_error(e: gnomon_mvcc::MvccError) -> SqlError {
    use gnomon_mvcc::MvccError as E;
    let message = e.to_string();
    match e {
        E::PreparedTransactionsDisabled => {
            SqlError::new(SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, message)
                .with_hint("Set max_prepared_transactions to a nonzero value.")
        }
        E::TooManyPrepared { max } => {
            SqlError::new(SqlState::CONFIGURATION_LIMIT_EXCEEDED, message).with_hint(format!(
                "Increase max_prepared_transactions (currently {max})."
            ))
        }
        E::DuplicateGid { .. } => SqlError::new(SqlState::DUPLICATE_OBJECT, message),
        E::GidTooLong { .. } => SqlError::new(SqlState::INVALID_PARAMETER_VALUE, message),
        E::UnknownGid { .. } => SqlError::new(SqlState::UNDEFINED_OBJECT, message),
        E::PreparedBusy { .. } => {
            SqlError::new(SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, message)
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_2pc_commands_by_tokens() {
        assert_eq!(
            single("prepare  TRANSACTION 'a''b' ;").unwrap().unwrap(),
            TwoPc::Prepare("a'b".into())
        );
        assert_eq!(
            single("COMMIT /* c */ PREPARED E'x'").unwrap().unwrap(),
            TwoPc::CommitPrepared("x".into())
        );
        assert_eq!(
            single("rollback prepared 'g'").unwrap().unwrap(),
            TwoPc::RollbackPrepared("g".into())
        );
        assert!(single("commit").is_none());
        assert!(single("prepare foo as select 1").is_none());
        let junk = single("commit prepared 'g' junk").unwrap().unwrap_err();
        assert_eq!(junk.code, SqlState::SYNTAX_ERROR);
        assert!(junk.message.contains("junk"), "{}", junk.message);
        assert!(single("commit prepared x").unwrap().is_err());
        assert!(single("commit prepared").unwrap().is_err());
    }

    #[test]
    fn splits_messages_only_when_they_hold_2pc_commands() {
        assert!(split_message("select 1; select 'prepare transaction'").is_none());
        let pieces = split_message("begin; insert into t values (';'); prepare transaction 'g'")
            .unwrap()
            .unwrap();
        assert_eq!(pieces.len(), 3);
        assert!(matches!(&pieces[2], Piece::TwoPc(TwoPc::Prepare(g)) if g == "g"));
        let bad = split_message("selec 1; commit prepared 'g'").unwrap();
        assert!(
            bad.is_err(),
            "a syntax error anywhere fails the whole message"
        );
    }
}
