//! The harness the scenario tests under sql/tests/ share: a real gnomon_mvcc::Db in a
//! temporary directory (no fsync: these tests do not crash the machine), sessions on it, and
//! `run`, which renders what a statement answered as text a test compares whole.
//!
//! Each test file includes this module on its own (`mod common;`) and uses only part of it,
//! hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use gnomon_mvcc::{Db, DbOptions, SyncPolicy};
use gnomon_sql::{Outcome, Session, SqlEngine, Value};

/// Opens (or reopens, after a restart) the database in `dir`.
pub fn open(dir: &Path) -> Arc<SqlEngine> {
    let db = Db::open(DbOptions {
        dir: dir.to_path_buf(),
        sync: SyncPolicy::OffUnsafeNoDurability,
        ..Default::default()
    })
    .expect("open db");
    SqlEngine::open(db).expect("open sql")
}

/// A new session of user `gnomon` on database `gnomon`.
pub fn session(engine: &Arc<SqlEngine>) -> Session {
    Session::new(engine.clone(), "gnomon", "gnomon").expect("session")
}

/// A fresh database in a temporary directory (removed when the `TempDir` is dropped), its
/// engine for more sessions, and one session.
pub fn setup() -> (tempfile::TempDir, Arc<SqlEngine>, Session) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path());
    let s = session(&engine);
    (dir, engine, s)
}

/// A row as `run` renders it: values in their text form separated by `|`, NULL as `NULL`.
pub fn row_text(row: &[Value]) -> String {
    row.iter()
        .map(|v| v.to_text().unwrap_or_else(|| "NULL".into()))
        .collect::<Vec<_>>()
        .join("|")
}

/// How [`run_as`] renders an error.
#[derive(Clone, Copy)]
pub enum Errors {
    /// `ERROR <code> <message>`.
    Message,
    /// `ERROR <code> <message> DETAIL: <detail>` on one line (the DETAIL when there is one).
    InlineDetail,
    /// `ERROR <code> <message>`, then lines `DETAIL <detail>` and `HINT <hint>` when present.
    DetailAndHint,
}

/// Runs `sql` (one or more statements, simple protocol) and renders every result, one per
/// line: rows as `a|b` (NULL as `NULL`) followed by the command tag, tags, `EMPTY`, and
/// errors as `ERROR <code> <message>`.
pub fn run(s: &mut Session, sql: &str) -> String {
    run_as(s, sql, Errors::Message)
}

/// [`run`] with errors rendered as `errors` says.
pub fn run_as(s: &mut Session, sql: &str, errors: Errors) -> String {
    let mut out = Vec::new();
    for r in s.execute_simple(sql) {
        match r {
            Ok(Outcome::Rows { rows, tag, .. }) => {
                out.extend(rows.iter().map(|row| row_text(row)));
                out.push(tag);
            }
            Ok(Outcome::Command { tag }) => out.push(tag),
            Ok(Outcome::Empty) => out.push("EMPTY".into()),
            Err(e) => {
                let head = format!("ERROR {} {}", e.code.code(), e.message);
                match errors {
                    Errors::Message => out.push(head),
                    Errors::InlineDetail => out.push(match &e.detail {
                        Some(d) => format!("{head} DETAIL: {d}"),
                        None => head,
                    }),
                    Errors::DetailAndHint => {
                        out.push(head);
                        if let Some(d) = e.detail {
                            out.push(format!("DETAIL {d}"));
                        }
                        if let Some(h) = e.hint {
                            out.push(format!("HINT {h}"));
                        }
                    }
                }
            }
        }
    }
    out.join("\n")
}

/// The SQLSTATE of the error the last statement of `sql` failed with (`no error: ...` when
/// it did not fail).
pub fn code(s: &mut Session, sql: &str) -> String {
    match s.execute_simple(sql).pop() {
        Some(Err(e)) => e.code.code().to_string(),
        other => format!("no error: {other:?}"),
    }
}
