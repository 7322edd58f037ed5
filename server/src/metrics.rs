//! Server-side counters and the Prometheus text exposition of `/metrics`.
//!
//! The statement path records into [`Metrics`] with relaxed atomic adds only (three per
//! statement: count, histogram bucket, latency sum); the exporter reads them, plus the lower
//! layers' snapshots ([`gnomon_mvcc::Db::stats`]), when scraped. One `Metrics` per server (no
//! global), shared by the connection threads and the admin listener.
//!
//! ## Exported families (names are stable: alert rules use them)
//!
//! ```text
//!  gnomon_statements_total{kind}                        counter  statements run (ok or failed)
//!  gnomon_statement_duration_seconds_bucket{kind,le}    histogram (and _sum, _count) of the
//!                                                       time a Session call took
//!  gnomon_errors_total{class}                           counter  ErrorResponses by SQLSTATE class
//!  gnomon_transactions_total{outcome}                   counter  commit | commit_failed | rollback
//!  gnomon_wal_fsyncs_total                              counter
//!  gnomon_wal_overlapped_syncs_total                    counter  commit syncs started while
//!                                                       another was in flight
//!  gnomon_wal_batches_total / _records_total / _bytes_total   counters
//!  gnomon_wal_batch_records_bucket{le}                  histogram of records per group commit
//!  gnomon_lock_waits_total, gnomon_deadlocks_total      counters
//!  gnomon_ssi_rw_conflicts_total                        counter  rw-antidependencies (SSI)
//!  gnomon_ssi_failures_total                            counter  40001 raised by SSI
//!  gnomon_ssi_tracked_transactions                      gauge    serializable txns tracked
//!  gnomon_ssi_siread_locks                              gauge    SIREAD point + range locks
//!  gnomon_lock_{escalations,de_escalations,timeouts,not_available}_total   counters
//!  gnomon_hlc_max_offset_seconds                        gauge    largest clock skew observed
//!  gnomon_connections                                   gauge    sessions open
//!  gnomon_connections_accepted_total                    counter
//!  gnomon_max_connections                               gauge
//!  gnomon_gc_versions{layer}                            gauge    versions stored: memtable |
//!                                                                checkpoint (live, not yet collected)
//!  gnomon_gc_versions_collected_total                   counter  versions removed by GC
//!  gnomon_gc_passes_total                               counter
//!  gnomon_gc_safe_point_seconds                         gauge    last safe point (Unix time)
//!  gnomon_gc_safe_point_lag_seconds                     gauge    how far it was behind the clock
//!  gnomon_checkpoints_total / _failures_total           counters
//!  gnomon_checkpoint_last_lsn                           gauge    WAL position recovery starts at
//!  gnomon_checkpoint_last_duration_seconds              gauge
//!  gnomon_checkpoint_bytes                              gauge    size of the checkpoint file
//!  gnomon_wal_segments / gnomon_wal_segments_removed_total   gauge / counter
//!  gnomon_wal_bytes_since_checkpoint                    gauge    what a restart would replay
//! ```
//!
//! `kind` is select, insert, update, delete, ddl or other: from the command tag of a
//! successful statement, from the first keyword of the SQL text of a failed one.
//!
//! NB: a simple-query message with several statements counts each statement, but its latency
//! is one observation (the whole message), under the first statement's kind; the extended
//! protocol observes each Execute.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use gnomon_mvcc::{DbStats, MaintenanceStats};

/// What a statement does, for the per-kind counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// SELECT, VALUES, SHOW-like queries returning rows from tables.
    Select,
    /// INSERT (and COPY FROM).
    Insert,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// CREATE, DROP, ALTER, TRUNCATE ...
    Ddl,
    /// Transaction control, SET, SHOW and everything else.
    Other,
}

impl StatementKind {
    /// Every kind, in exposition order.
    pub const ALL: [StatementKind; 6] = [
        StatementKind::Select,
        StatementKind::Insert,
        StatementKind::Update,
        StatementKind::Delete,
        StatementKind::Ddl,
        StatementKind::Other,
    ];

    /// The `kind` label value.
    pub fn label(self) -> &'static str {
        match self {
            StatementKind::Select => "select",
            StatementKind::Insert => "insert",
            StatementKind::Update => "update",
            StatementKind::Delete => "delete",
            StatementKind::Ddl => "ddl",
            StatementKind::Other => "other",
        }
    }

    /// The kind a command tag (`SELECT 3`, `INSERT 0 1`, `CREATE TABLE`) reports.
    ///
    /// NB: on every statement's path: tags are upper case, so this is one exact match of the
    /// first word (a length check and a short compare), no case folding.
    pub fn of_tag(tag: &str) -> StatementKind {
        let word = match tag.bytes().position(|b| b == b' ') {
            Some(end) => &tag[..end],
            None => tag,
        };
        Self::of_upper_keyword(word)
    }

    /// The kind of a statement from its SQL text's first keyword (leading blanks, `(` and
    /// `--` comments skipped). Used for failed statements only.
    pub fn of_sql(sql: &str) -> StatementKind {
        let mut rest = sql;
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
            match rest.strip_prefix("--") {
                Some(comment) => rest = comment.split_once('\n').map_or("", |(_, r)| r),
                None => break,
            }
        }
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .take(10)
            .map(|c| c.to_ascii_uppercase())
            .collect();
        Self::of_upper_keyword(&word)
    }

    fn of_upper_keyword(word: &str) -> StatementKind {
        match word {
            "SELECT" | "WITH" | "VALUES" | "TABLE" => StatementKind::Select,
            "INSERT" | "COPY" => StatementKind::Insert,
            "UPDATE" => StatementKind::Update,
            "DELETE" => StatementKind::Delete,
            "CREATE" | "DROP" | "ALTER" | "TRUNCATE" | "COMMENT" => StatementKind::Ddl,
            _ => StatementKind::Other,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds (seconds) of the latency histogram buckets; `+Inf` follows.
pub const LATENCY_BOUNDS_SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
const LATENCY_BOUNDS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];
const BUCKETS: usize = LATENCY_BOUNDS_NS.len() + 1;
const KINDS: usize = StatementKind::ALL.len();

/// Counters of one server. Share as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    statements: [AtomicU64; KINDS],
    /// Per kind, per bucket, not cumulative (the exporter sums them up).
    latency: [[AtomicU64; BUCKETS]; KINDS],
    latency_sum_ns: [AtomicU64; KINDS],
    /// ErrorResponses by SQLSTATE class (first two characters); errors are off the hot path.
    errors: Mutex<BTreeMap<String, u64>>,
    accepted: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            statements: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency_sum_ns: std::array::from_fn(|_| AtomicU64::new(0)),
            errors: Mutex::new(BTreeMap::new()),
            accepted: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts `count` statements of `kind`.
    pub fn count_statements(&self, kind: StatementKind, count: u64) {
        self.statements[kind.index()].fetch_add(count, Ordering::Relaxed);
    }

    /// Records one latency observation for `kind`.
    pub fn observe_latency(&self, kind: StatementKind, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BUCKETS - 1);
        let k = kind.index();
        self.latency[k][bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ns[k].fetch_add(ns, Ordering::Relaxed);
    }

    /// Counts an ErrorResponse with SQLSTATE `code`.
    pub fn count_error(&self, code: &str) {
        let class: String = code.chars().take(2).collect();
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        *errors.entry(class).or_insert(0) += 1;
    }

    /// Counts an accepted client connection.
    pub fn count_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Statements counted so far of `kind`.
    pub fn statements(&self, kind: StatementKind) -> u64 {
        self.statements[kind.index()].load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition (format 0.0.4) of these counters and `db`'s.
    pub fn render(&self, db: &DbStats, sessions: usize, max_sessions: usize) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let w = &mut out;
        family(
            w,
            "gnomon_statements_total",
            "counter",
            "Statements run, by kind (ok or failed).",
        );
        for kind in StatementKind::ALL {
            sample(
                w,
                "gnomon_statements_total",
                &[("kind", kind.label())],
                self.statements(kind),
            );
        }
        family(
            w,
            "gnomon_statement_duration_seconds",
            "histogram",
            "Time the sql layer took per statement (per simple-query message), by kind.",
        );
        for kind in StatementKind::ALL {
            let k = kind.index();
            let mut cumulative = 0u64;
            for (i, bucket) in self.latency[k].iter().enumerate() {
                cumulative += bucket.load(Ordering::Relaxed);
                let le = match LATENCY_BOUNDS_SECONDS.get(i) {
                    Some(b) => b.to_string(),
                    None => "+Inf".to_string(),
                };
                sample(
                    w,
                    "gnomon_statement_duration_seconds_bucket",
                    &[("kind", kind.label()), ("le", &le)],
                    cumulative,
                );
            }
            let sum = self.latency_sum_ns[k].load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(
                w,
                "gnomon_statement_duration_seconds_sum{{kind=\"{}\"}} {sum}",
                kind.label()
            );
            sample(
                w,
                "gnomon_statement_duration_seconds_count",
                &[("kind", kind.label())],
                cumulative,
            );
        }
        family(
            w,
            "gnomon_errors_total",
            "counter",
            "Errors sent to clients, by SQLSTATE class.",
        );
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (class, n) in &errors {
            sample(w, "gnomon_errors_total", &[("class", class)], *n);
        }
        family(
            w,
            "gnomon_transactions_total",
            "counter",
            "Finished transactions: commit, commit_failed (log failure), rollback.",
        );
        for (outcome, n) in [
            ("commit", db.commits),
            ("commit_failed", db.commit_failures),
            ("rollback", db.rollbacks),
        ] {
            sample(w, "gnomon_transactions_total", &[("outcome", outcome)], n);
        }
        let simple = [
            (
                "gnomon_wal_fsyncs_total",
                "counter",
                "fdatasync calls of the WAL writer.",
                db.wal.fsyncs,
            ),
            (
                "gnomon_wal_overlapped_syncs_total",
                "counter",
                "WAL commit fdatasyncs started while another was in flight (wal_syncs_in_flight).",
                db.wal.overlapped_syncs,
            ),
            (
                "gnomon_wal_batches_total",
                "counter",
                "Group-commit batches written.",
                db.wal.batches,
            ),
            (
                "gnomon_wal_records_total",
                "counter",
                "WAL records written.",
                db.wal.records,
            ),
            (
                "gnomon_wal_bytes_total",
                "counter",
                "WAL bytes written.",
                db.wal.bytes,
            ),
            (
                "gnomon_lock_waits_total",
                "counter",
                "Lock requests (table, partition or row) that waited.",
                db.locks.waits,
            ),
            (
                "gnomon_deadlocks_total",
                "counter",
                "Deadlock victims.",
                db.locks.deadlocks,
            ),
            (
                "gnomon_ssi_rw_conflicts_total",
                "counter",
                "Read-write antidependencies found among SERIALIZABLE transactions.",
                db.ssi.rw_conflicts,
            ),
            (
                "gnomon_ssi_failures_total",
                "counter",
                "Serialization failures (40001) raised by serializable snapshot isolation.",
                db.ssi.failures,
            ),
            (
                "gnomon_ssi_tracked_transactions",
                "gauge",
                "SERIALIZABLE transactions tracked (active, and committed ones still overlapping).",
                db.ssi.tracked as u64,
            ),
            (
                "gnomon_ssi_siread_locks",
                "gauge",
                "SIREAD locks held (point keys plus key ranges).",
                (db.ssi.siread_points + db.ssi.siread_ranges) as u64,
            ),
            (
                "gnomon_lock_escalations_total",
                "counter",
                "Row locks replaced by a partition or table lock, and partitions switched to partition-level locking by contention.",
                db.locks.escalations,
            ),
            (
                "gnomon_lock_de_escalations_total",
                "counter",
                "Hot partitions switched back to row locking.",
                db.locks.de_escalations,
            ),
            (
                "gnomon_lock_timeouts_total",
                "counter",
                "Lock waits ended by lock_timeout or statement_timeout.",
                db.locks.timeouts,
            ),
            (
                "gnomon_lock_not_available_total",
                "counter",
                "NOWAIT lock requests refused (55P03).",
                db.locks.not_available,
            ),
            (
                "gnomon_connections",
                "gauge",
                "Sessions open.",
                sessions as u64,
            ),
            (
                "gnomon_max_connections",
                "gauge",
                "Most sessions allowed.",
                max_sessions as u64,
            ),
            (
                "gnomon_connections_accepted_total",
                "counter",
                "Client connections accepted.",
                self.accepted.load(Ordering::Relaxed),
            ),
        ];
        for (name, ty, help, value) in simple {
            family(w, name, ty, help);
            sample(w, name, &[], value);
        }
        family(
            w,
            "gnomon_wal_batch_records",
            "histogram",
            "Records per group-commit batch.",
        );
        let mut cumulative = 0u64;
        for (i, n) in db.wal.batch_size_buckets.iter().enumerate() {
            cumulative += n;
            let le = match gnomon_mvcc::BATCH_SIZE_BOUNDS.get(i) {
                Some(b) => b.to_string(),
                None => "+Inf".to_string(),
            };
            sample(
                w,
                "gnomon_wal_batch_records_bucket",
                &[("le", &le)],
                cumulative,
            );
        }
        sample(w, "gnomon_wal_batch_records_sum", &[], db.wal.records);
        sample(w, "gnomon_wal_batch_records_count", &[], cumulative);
        family(
            w,
            "gnomon_hlc_max_offset_seconds",
            "gauge",
            "Largest amount a timestamp from another node was ahead of the local clock.",
        );
        let _ = writeln!(
            w,
            "gnomon_hlc_max_offset_seconds {}",
            db.max_clock_offset_us as f64 / 1e6
        );
        out
    }
}

/// The Prometheus text of the GC and checkpoint figures ([`gnomon_mvcc::Db::maintenance_stats`]).
pub fn render_maintenance(m: &MaintenanceStats) -> String {
    let mut out = String::with_capacity(2 * 1024);
    let w = &mut out;
    family(
        w,
        "gnomon_gc_versions",
        "gauge",
        "Row versions stored (values and tombstones), by layer; a version may be in both.",
    );
    sample(
        w,
        "gnomon_gc_versions",
        &[("layer", "memtable")],
        m.versions_in_memtables,
    );
    sample(
        w,
        "gnomon_gc_versions",
        &[("layer", "checkpoint")],
        m.versions_in_checkpoint,
    );
    let counters = [
        (
            "gnomon_gc_versions_collected_total",
            "counter",
            "Row versions removed by garbage collection.",
            m.versions_collected,
        ),
        (
            "gnomon_gc_passes_total",
            "counter",
            "Garbage-collection passes (background and VACUUM).",
            m.gc_passes,
        ),
        (
            "gnomon_checkpoints_total",
            "counter",
            "Checkpoints written.",
            m.checkpoints,
        ),
        (
            "gnomon_checkpoint_failures_total",
            "counter",
            "Checkpoints that failed.",
            m.checkpoint_failures,
        ),
        (
            "gnomon_checkpoint_last_lsn",
            "gauge",
            "WAL position of the newest checkpoint: recovery replays from here.",
            m.last_checkpoint_lsn,
        ),
        (
            "gnomon_checkpoint_bytes",
            "gauge",
            "Size of the newest checkpoint file.",
            m.checkpoint_bytes,
        ),
        (
            "gnomon_wal_segments",
            "gauge",
            "WAL segment files on disk.",
            m.wal_segments,
        ),
        (
            "gnomon_wal_segments_removed_total",
            "counter",
            "WAL segment files deleted after checkpoints.",
            m.wal_segments_removed,
        ),
        (
            "gnomon_wal_bytes_since_checkpoint",
            "gauge",
            "WAL bytes after the newest checkpoint: what a restart would replay.",
            m.wal_bytes_since_checkpoint,
        ),
    ];
    for (name, ty, help, value) in counters {
        family(w, name, ty, help);
        sample(w, name, &[], value);
    }
    let seconds = [
        (
            "gnomon_gc_safe_point_seconds",
            "The last GC safe point, as Unix time (0 before the first pass).",
            m.gc_safe_point.physical_us as f64 / 1e6,
        ),
        (
            "gnomon_gc_safe_point_lag_seconds",
            "How far the last GC safe point was behind the clock (Δgc, or more while an old snapshot holds it).",
            m.safe_point_lag.as_secs_f64(),
        ),
        (
            "gnomon_checkpoint_last_duration_seconds",
            "How long the last checkpoint took.",
            m.last_checkpoint_duration.as_secs_f64(),
        ),
    ];
    for (name, help, value) in seconds {
        family(w, name, "gauge", help);
        let _ = writeln!(w, "{name} {value}");
    }
    out
}

fn family(w: &mut String, name: &str, ty: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {help}\n# TYPE {name} {ty}");
}

fn sample(w: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    w.push_str(name);
    if !labels.is_empty() {
        w.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                w.push(',');
            }
            // NB: label values here are our own words and SQLSTATE classes: no escaping needed.
            let _ = write!(w, "{k}=\"{v}\"");
        }
        w.push('}');
    }
    let _ = writeln!(w, " {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_tags_and_sql_text() {
        assert_eq!(StatementKind::of_tag("SELECT 3"), StatementKind::Select);
        assert_eq!(StatementKind::of_tag("INSERT 0 1"), StatementKind::Insert);
        assert_eq!(StatementKind::of_tag("CREATE TABLE"), StatementKind::Ddl);
        assert_eq!(StatementKind::of_tag("COMMIT"), StatementKind::Other);
        assert_eq!(
            StatementKind::of_sql("  -- note\n ( select 1)"),
            StatementKind::Select
        );
        assert_eq!(
            StatementKind::of_sql("update t set a=1"),
            StatementKind::Update
        );
        assert_eq!(
            StatementKind::of_sql("DeLeTe from t"),
            StatementKind::Delete
        );
        assert_eq!(
            StatementKind::of_sql("-- only a comment"),
            StatementKind::Other
        );
        assert_eq!(StatementKind::of_sql(""), StatementKind::Other);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_count_matches() {
        let m = Metrics::default();
        m.observe_latency(StatementKind::Select, Duration::from_micros(50));
        m.observe_latency(StatementKind::Select, Duration::from_millis(3));
        m.observe_latency(StatementKind::Select, Duration::from_secs(60));
        m.count_statements(StatementKind::Select, 3);
        m.count_error("40001");
        m.count_error("40P01");
        let text = m.render(&DbStats::default(), 2, 100);
        let line = |prefix: &str| -> String {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix} missing:\n{text}"))
                .to_string()
        };
        let sel = "gnomon_statement_duration_seconds_bucket{kind=\"select\"";
        assert_eq!(
            line(&format!("{sel},le=\"0.0001\"}}")),
            format!("{sel},le=\"0.0001\"}} 1")
        );
        assert!(line(&format!("{sel},le=\"0.005\"}}")).ends_with(" 2"));
        assert!(line(&format!("{sel},le=\"10\"}}")).ends_with(" 2"));
        assert!(line(&format!("{sel},le=\"+Inf\"}}")).ends_with(" 3"));
        assert!(line("gnomon_statement_duration_seconds_count{kind=\"select\"}").ends_with(" 3"));
        assert!(line("gnomon_statements_total{kind=\"select\"}").ends_with(" 3"));
        assert!(line("gnomon_errors_total{class=\"40\"}").ends_with(" 2"));
        assert!(line("gnomon_connections ").ends_with(" 2"));
    }
}
