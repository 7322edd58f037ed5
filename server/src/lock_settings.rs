//! The lock manager's thresholds and the session timeout defaults (flags and config keys).
//!
//! | flag / config key                                            | default | meaning                                                    |
//! |--------------------------------------------------------------|---------|------------------------------------------------------------|
//! | `--lock-escalation-partition-rows` `lock_escalation_partition_rows` | 1000 | row locks of one transaction in one partition that escalate to a partition lock (0 = never) |
//! | `--lock-escalation-table-rows` `lock_escalation_table_rows`  | 5000    | row locks in one table that escalate to a table lock; also the row count from which bulk statements (INSERT ... SELECT, COPY, MERGE) try the table lock up front (0 = never) |
//! | `--lock-hotspot-waits` `lock_hotspot_waits`                  | 200     | lock waits in one partition within the window that make it a hot spot, locked at partition level (0 = never) |
//! | `--lock-hotspot-window` `lock_hotspot_window`                | 1s      | that window                                                |
//! | `--lock-timeout` `lock_timeout`                              | 0       | default of the session setting `lock_timeout` (0 = none)   |
//! | `--statement-timeout` `statement_timeout`                    | 0       | default of the session setting `statement_timeout`         |
//!
//! Durations take `ms`, `s`, `min`, `h`, `d`; a bare number is milliseconds (as PostgreSQL
//! reads `lock_timeout`). Every value is shown by `SHOW name` (and `SHOW ALL`); the lock
//! thresholds are fixed while the server runs (`SET` answers 55P02), the timeouts are only
//! defaults that each session may `SET` and `RESET` back to.
//!
//! NB: there is no `deadlock_timeout`: a deadlock is found when the wait that closes the cycle
//! starts (mvcc/src/locks/README.md), not after a delay.

use std::time::Duration;

use gnomon_mvcc::LockSettings;

use crate::error::ServerError;
use crate::maintenance::{parse_duration, SettingValue};

/// The config keys (and, with dashes, the flags) this module owns.
pub const KEYS: [&str; 6] = [
    "lock_escalation_partition_rows",
    "lock_escalation_table_rows",
    "lock_hotspot_waits",
    "lock_hotspot_window",
    "lock_timeout",
    "statement_timeout",
];

/// Lock thresholds and timeout defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockConfig {
    /// Row locks in one partition before escalation to a partition lock (0 = never).
    pub escalation_partition_rows: u32,
    /// Row locks in one table before escalation to a table lock (0 = never).
    pub escalation_table_rows: u32,
    /// Lock waits in one partition within `hotspot_window` that make it a hot spot (0 = never).
    pub hotspot_waits: u32,
    /// The hot-spot window (at least 1 ms).
    pub hotspot_window: Duration,
    /// Default `lock_timeout` of new sessions (zero = none).
    pub lock_timeout: Duration,
    /// Default `statement_timeout` of new sessions (zero = none).
    pub statement_timeout: Duration,
}

impl Default for LockConfig {
    fn default() -> Self {
        let s = LockSettings::default();
        LockConfig {
            escalation_partition_rows: s.partition_escalation_rows,
            escalation_table_rows: s.table_escalation_rows,
            hotspot_waits: s.contention_threshold,
            hotspot_window: Duration::from_millis(s.contention_window_ms.into()),
            lock_timeout: Duration::ZERO,
            statement_timeout: Duration::ZERO,
        }
    }
}

impl LockConfig {
    /// Sets `key` (one of [`KEYS`]; dashes are accepted for underscores) from its text form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ServerError> {
        let bad = |why: String| ServerError::Usage(format!("{key}: {why}"));
        let count = |value: &str| -> Result<u32, ServerError> {
            value.trim().parse::<u32>().map_err(|_| {
                bad(format!(
                    "{value:?} is not a whole number between 0 and {}",
                    u32::MAX
                ))
            })
        };
        match key.replace('-', "_").as_str() {
            "lock_escalation_partition_rows" => self.escalation_partition_rows = count(value)?,
            "lock_escalation_table_rows" => self.escalation_table_rows = count(value)?,
            "lock_hotspot_waits" => self.hotspot_waits = count(value)?,
            "lock_hotspot_window" => {
                let window = parse_millis(value).map_err(bad)?;
                if window < Duration::from_millis(1) || window.as_millis() > u32::MAX as u128 {
                    return Err(bad(format!("{value:?} is outside 1ms .. {}ms", u32::MAX)));
                }
                self.hotspot_window = window;
            }
            "lock_timeout" => self.lock_timeout = timeout(value).map_err(bad)?,
            "statement_timeout" => self.statement_timeout = timeout(value).map_err(bad)?,
            _ => return Err(bad("not a lock setting".into())),
        }
        Ok(())
    }

    /// Sets `key` from a TOML value (an integer is milliseconds for the durations).
    pub fn set_from_file(&mut self, key: &str, value: &SettingValue) -> Result<(), ServerError> {
        let text = match value {
            SettingValue::Integer(n) => n.to_string(),
            SettingValue::Text(t) => t.clone(),
        };
        self.set(key, &text)
    }

    /// The lock manager's tunables: these thresholds over `base` (which keeps the rest).
    pub fn lock_settings(&self, base: LockSettings) -> LockSettings {
        LockSettings {
            partition_escalation_rows: self.escalation_partition_rows,
            table_escalation_rows: self.escalation_table_rows,
            contention_threshold: self.hotspot_waits,
            // NB: `set` keeps the window within u32 milliseconds.
            contention_window_ms: u32::try_from(self.hotspot_window.as_millis())
                .unwrap_or(u32::MAX),
            ..base
        }
    }

    /// The session settings' defaults, as `(name, value)` in PostgreSQL's text form.
    pub fn session_defaults(&self) -> [(&'static str, String); 2] {
        [
            (
                "lock_timeout",
                format!("{}ms", self.lock_timeout.as_millis()),
            ),
            (
                "statement_timeout",
                format!("{}ms", self.statement_timeout.as_millis()),
            ),
        ]
    }
}

/// A duration whose bare number means milliseconds.
fn parse_millis(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        parse_duration(&format!("{t}ms"))
    } else {
        parse_duration(t)
    }
}

/// A timeout: a duration (bare = ms) below 2^31 ms, as PostgreSQL's integer settings.
fn timeout(text: &str) -> Result<Duration, String> {
    let d = parse_millis(text)?;
    if d.as_millis() > i32::MAX as u128 {
        return Err(format!("{text:?} is above the maximum of {}ms", i32::MAX));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_with_units_and_are_checked() {
        let mut c = LockConfig::default();
        c.set("lock-escalation-partition-rows", "10").unwrap();
        c.set("lock_escalation_table_rows", "0").unwrap();
        c.set("lock_hotspot_waits", "7").unwrap();
        c.set("lock_hotspot_window", "250").unwrap();
        c.set("lock_timeout", "2s").unwrap();
        c.set("statement_timeout", "1min").unwrap();
        assert_eq!(
            c,
            LockConfig {
                escalation_partition_rows: 10,
                escalation_table_rows: 0,
                hotspot_waits: 7,
                hotspot_window: Duration::from_millis(250),
                lock_timeout: Duration::from_secs(2),
                statement_timeout: Duration::from_secs(60),
            }
        );
        let s = c.lock_settings(LockSettings::default());
        assert_eq!(s.partition_escalation_rows, 10);
        assert_eq!(s.table_escalation_rows, 0);
        assert_eq!(s.contention_threshold, 7);
        assert_eq!(s.contention_window_ms, 250);
        assert_eq!(s.hash_partitions, LockSettings::default().hash_partitions);
        assert_eq!(c.session_defaults()[0].1, "2000ms");
        assert!(c.set("lock_escalation_table_rows", "-1").is_err());
        assert!(c.set("lock_hotspot_waits", "many").is_err());
        assert!(c.set("lock_hotspot_window", "0").is_err());
        assert!(c.set("lock_timeout", "3 weeks").is_err());
        assert!(c.set("statement_timeout", "30d").is_err());
        assert!(c.set("deadlock_timeout", "1s").is_err());
    }
}
