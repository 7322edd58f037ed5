//! The audit log: one JSON line per security-relevant event, appended to a file.
//!
//! ```text
//! {"time":"2026-11-24 03:16:29.123456+00","user":"gnomon","event":"role","statement":"ALTER ROLE alice WITH PASSWORD '********'"}
//! ```
//!
//! Events ([`AuditEvent`]): DDL, role changes, GRANT/REVOKE, two-phase-commit decisions and
//! refused logins. A line is written when the statement has executed successfully in its
//! transaction (it may still roll back later: the log records what was asked and allowed, like
//! pgaudit), with one `write` of the whole line, so concurrent sessions never interleave within
//! a line, and handed to the operating system at once (a crash of the server alone loses
//! nothing written).
//!
//! Durability rule: a line of a role change, a GRANT/REVOKE or a 2PC decision
//! ([`AuditEvent::is_fsynced`]) is on disk (`fdatasync`) before [`Audit::record`] returns,
//! hence before the statement's reply. The fsync is grouped: one covers every line written
//! before it, and a session that finds its line already covered by another session's fsync
//! does not issue one of its own. DDL and refused-login lines are not fsynced by themselves
//! (no fsync on the path of `pgbench -i`, nor one a stranger can trigger by failing logins):
//! they reach the disk with the next fsynced line or the operating system's write-back, so a
//! power failure may lose the latest of them, never a line before an fsynced one.
//!
//! Invariant: passwords never reach the file: statement text goes through
//! [`redact_passwords`] first.
//!
//! The handle is owned by [`crate::SqlEngine`] (no global): `engine.audit().record(...)`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// True for the events whose line is fsynced before the statement's reply (see the
    /// module docs): role changes, GRANT/REVOKE, 2PC decisions.
    pub fn is_fsynced(self) -> bool {
        matches!(
            self,
            AuditEvent::Role | AuditEvent::Grant | AuditEvent::TwoPhase
        )
    }

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
    file: Option<AuditFile>,
}

struct AuditFile {
    path: PathBuf,
    /// The file and the number of lines written to it (in order).
    writer: Mutex<(File, u64)>,
    /// Lines known to be on disk. Held across an fsync, so concurrent syncers queue here and
    /// most find their line covered when their turn comes (group fsync).
    synced: Mutex<u64>,
    /// A second handle to the file, for fsync without holding `writer`.
    sync_handle: File,
    /// fsync calls made.
    fsyncs: AtomicU64,
}

/// Line counts of an audit log since it was opened (for tests and diagnostics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Lines written.
    pub written: u64,
    /// Lines known to be on disk (fsynced, or written before an fsync).
    pub synced: u64,
    /// fsync calls made.
    pub fsyncs: u64,
}

impl Audit {
    /// An audit log appending to `path` (created if missing).
    pub fn open(path: &Path) -> std::io::Result<Audit> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let sync_handle = file.try_clone()?;
        Ok(Audit {
            file: Some(AuditFile {
                path: path.to_path_buf(),
                writer: Mutex::new((file, 0)),
                synced: Mutex::new(0),
                sync_handle,
                fsyncs: AtomicU64::new(0),
            }),
        })
    }

    /// A log that records nothing.
    pub fn disabled() -> Audit {
        Audit::default()
    }

    /// The file written to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }

    /// Appends one event, and for [`AuditEvent::is_fsynced`] events waits until it is on
    /// disk. `statement` is redacted here; a write or fsync failure is reported on stderr and
    /// does not fail the statement (the data change is already done).
    pub fn record(&self, user: &str, event: AuditEvent, statement: &str) {
        let Some(f) = &self.file else {
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
        let written = match f.writer.lock() {
            Ok(mut w) => w.0.write_all(line.as_bytes()).map(|()| {
                w.1 += 1;
                w.1
            }),
            Err(_) => Err(std::io::Error::other("audit log lock poisoned")),
        };
        let result = match written {
            Ok(seq) if event.is_fsynced() => f.sync_to(seq),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            eprintln!(
                "gnomon: cannot write the audit log {}: {e}",
                f.path.display()
            );
        }
    }

    /// Line counts since open (zero for a disabled log).
    pub fn stats(&self) -> AuditStats {
        let Some(f) = &self.file else {
            return AuditStats::default();
        };
        let written = f.writer.lock().map(|w| w.1).unwrap_or_default();
        let synced = f.synced.lock().map(|s| *s).unwrap_or_default();
        AuditStats {
            written,
            synced,
            fsyncs: f.fsyncs.load(Ordering::Relaxed),
        }
    }
}

impl AuditFile {
    /// Returns once line `seq` (and every line before it) is on disk.
    fn sync_to(&self, seq: u64) -> std::io::Result<()> {
        let mut synced = self
            .synced
            .lock()
            .map_err(|_| std::io::Error::other("audit log lock poisoned"))?;
        if *synced >= seq {
            return Ok(());
        }
        // Everything written so far is covered by this fsync (appends reach the page cache
        // before the write lock is released).
        let upto = self.writer.lock().map(|w| w.1).unwrap_or(seq);
        self.sync_handle.sync_data()?;
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        *synced = upto.max(seq);
        Ok(())
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
    use std::sync::Arc;

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
    fn role_grant_and_2pc_lines_are_fsynced_ddl_lines_ride_along() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(&dir.path().join("audit.log")).unwrap();
        audit.record("u", AuditEvent::Ddl, "CREATE TABLE t (a int)");
        audit.record("u", AuditEvent::AuthFailure, "login");
        assert_eq!(
            audit.stats(),
            AuditStats {
                written: 2,
                synced: 0,
                fsyncs: 0
            },
            "DDL and refused logins are not fsynced by themselves"
        );
        audit.record("u", AuditEvent::Grant, "GRANT SELECT ON t TO v");
        assert_eq!(
            audit.stats(),
            AuditStats {
                written: 3,
                synced: 3,
                fsyncs: 1
            },
            "the GRANT's fsync covers the lines before it"
        );
        audit.record("u", AuditEvent::Role, "CREATE ROLE v");
        audit.record("u", AuditEvent::TwoPhase, "COMMIT PREPARED 'g'");
        assert_eq!(audit.stats().synced, 5);
        assert_eq!(audit.stats().fsyncs, 3);
        assert_eq!(Audit::disabled().stats(), AuditStats::default());
    }

    #[test]
    fn concurrent_fsynced_lines_are_whole_and_on_disk_when_record_returns() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Arc::new(Audit::open(&dir.path().join("audit.log")).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let audit = audit.clone();
                std::thread::spawn(move || {
                    for j in 0..25 {
                        audit.record("u", AuditEvent::Role, &format!("ALTER ROLE r{i}_{j}"));
                        // Each record returns only once its own line (this thread's j+1-th,
                        // so at least the j+1-th of the file) is on disk.
                        assert!(audit.stats().synced > j);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = audit.stats();
        assert_eq!((stats.written, stats.synced), (200, 200));
        let text = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
        assert_eq!(text.lines().count(), 200);
        assert!(text.lines().all(|l| l.starts_with('{') && l.ends_with('}')));
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
