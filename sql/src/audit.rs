//! The audit log: one JSON line per security-relevant event, appended to a file.
//!
//! ```text
//! {"time":"2026-11-24 03:16:29.123456+00","user":"gnomon","event":"role","statement":"ALTER ROLE alice WITH PASSWORD '********'"}
//! ```
//!
//! Events ([`AuditEvent`]): DDL, role changes, GRANT/REVOKE, and two-phase-commit decisions.
//! A line is written when the statement has executed successfully in its transaction (it may
//! still roll back later: the log records what was asked and allowed, like pgaudit), with one
//! `write` of the whole line, so concurrent sessions never interleave within a line. It is
//! flushed to the operating system at once; it is not fsynced (an audit line may be lost by a
//! power failure, never half-written by a crash of the server alone).
//!
//! Invariant: passwords never reach the file: statement text goes through
//! [`redact_passwords`] first.
//!
//! The handle is owned by [`crate::SqlEngine`] (no global): `engine.audit().record(...)`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::types::{now_timestamp, Value};

/// The kind of an audited event (the `event` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    /// CREATE / ALTER / DROP / TRUNCATE of tables and other schema objects.
    Ddl,
    /// CREATE / ALTER / DROP ROLE or USER.
    Role,
    /// GRANT / REVOKE.
    Grant,
    /// PREPARE TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED.
    TwoPhase,
    /// A refused login (wrong password, NOLOGIN role, unknown role).
    AuthFailure,
}

impl AuditEvent {
    /// The `event` field's value.
    pub fn name(self) -> &'static str {
        match self {
            AuditEvent::Ddl => "ddl",
            AuditEvent::Role => "role",
            AuditEvent::Grant => "grant",
            AuditEvent::TwoPhase => "two_phase",
            AuditEvent::AuthFailure => "auth_failure",
        }
    }
}

/// Where audit lines go; a disabled log drops them.
#[derive(Default)]
pub struct Audit {
    file: Option<(PathBuf, Mutex<File>)>,
}

impl Audit {
    /// An audit log appending to `path` (created if missing).
    pub fn open(path: &Path) -> std::io::Result<Audit> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Audit {
            file: Some((path.to_path_buf(), Mutex::new(file))),
        })
    }

    /// A log that records nothing.
    pub fn disabled() -> Audit {
        Audit::default()
    }

    /// The file written to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|(p, _)| p.as_path())
    }

    /// Appends one event. `statement` is redacted here; a write failure is reported on
    /// stderr and does not fail the statement (the data change is already done).
    pub fn record(&self, user: &str, event: AuditEvent, statement: &str) {
        let Some((path, file)) = &self.file else {
            return;
        };
        let time = Value::Timestamptz(now_timestamp())
            .to_text()
            .unwrap_or_default();
        let mut line = String::with_capacity(96 + statement.len());
        line.push_str("{\"time\":");
        json_string(&mut line, &time);
        line.push_str(",\"user\":");
        json_string(&mut line, user);
        line.push_str(",\"event\":");
        json_string(&mut line, event.name());
        line.push_str(",\"statement\":");
        json_string(&mut line, &redact_passwords(statement));
        line.push_str("}\n");
        let written = match file.lock() {
            Ok(mut f) => f.write_all(line.as_bytes()),
            Err(_) => Err(std::io::Error::other("audit log lock poisoned")),
        };
        if let Err(e) = written {
            eprintln!("gnomon: cannot write the audit log {}: {e}", path.display());
        }
    }
}

/// Appends `s` as a JSON string literal.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Replaces the string literal after every `PASSWORD` keyword with `'********'`; the rest of
/// the text is kept. Works on the raw text (quotes doubled inside literals are handled), so
/// it is safe on statements that do not parse.
pub fn redact_passwords(sql: &str) -> String {
    let lower = sql.to_ascii_lowercase();
    let mut out = String::with_capacity(sql.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find("password") {
        let kw_end = at + found + "password".len();
        out.push_str(&sql[at..kw_end]);
        at = kw_end;
        let rest = &sql[at..];
        let blank = rest.len() - rest.trim_start().len();
        let mut literal = rest[blank..].char_indices();
        // An optional E prefix, then a quoted literal.
        let mut start = blank;
        if let Some((_, 'e' | 'E')) = literal.clone().next() {
            literal.next();
            start += 1;
        }
        if !matches!(literal.next(), Some((_, '\''))) {
            continue;
        }
        // Find the closing quote ('' is an escaped quote).
        let body = &rest[start + 1..];
        let mut end = None;
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\\' && start > blank {
                chars.next();
            } else if c == '\'' {
                if matches!(chars.peek(), Some((_, '\''))) {
                    chars.next();
                } else {
                    end = Some(i);
                    break;
                }
            }
        }
        out.push_str(&rest[..blank]);
        out.push_str("'********'");
        match end {
            Some(i) => at += start + 1 + i + 1,
            // An unterminated literal: drop the rest rather than risk showing it.
            None => return out,
        }
    }
    out.push_str(&sql[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_passwords("CREATE ROLE a LOGIN PASSWORD 'it''s secret' SUPERUSER"),
            "CREATE ROLE a LOGIN PASSWORD '********' SUPERUSER"
        );
        assert_eq!(
            redact_passwords("alter user b with password E'x\\'y'; select 1"),
            "alter user b with password '********'; select 1"
        );
        assert_eq!(
            redact_passwords("ALTER ROLE c PASSWORD NULL"),
            "ALTER ROLE c PASSWORD NULL"
        );
        assert_eq!(
            redact_passwords("ALTER ROLE d PASSWORD 'open"),
            "ALTER ROLE d PASSWORD '********'"
        );
        assert_eq!(redact_passwords("SELECT 'Passwords'"), "SELECT 'Passwords'");
    }

    #[test]
    fn lines_are_json_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let audit = Audit::open(&path).unwrap();
        audit.record(
            "gnomon",
            AuditEvent::Role,
            "CREATE ROLE \"x\" PASSWORD 'pw'\n",
        );
        audit.record("gnomon", AuditEvent::Ddl, "DROP TABLE t");
        drop(audit);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0]
            .contains(r#""event":"role","statement":"CREATE ROLE \"x\" PASSWORD '********'\n""#));
        assert!(!text.contains("pw'"));
        assert!(lines[1].starts_with("{\"time\":\"") && lines[1].ends_with("\"DROP TABLE t\"}"));
    }
}
