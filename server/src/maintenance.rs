//! The server's checkpoint and GC settings (flags and config keys), their units, and the log
//! lines of the database's maintenance events.
//!
//! | flag / config key                          | default | meaning                                  |
//! |--------------------------------------------|---------|------------------------------------------|
//! | `--checkpoint-wal-size` `checkpoint_wal_size` | 64MB | checkpoint once this much WAL was written |
//! | `--checkpoint-timeout` `checkpoint_timeout`   | 5min | ... or this long passed with writes       |
//! | `--gc-window` `gc_window`                     | 5min | Δgc: old versions live at least this long |
//! | `--write-set-part-size` `write_set_part_size` | 16MB | a transaction's buffered writes go to the WAL in parts of this size (bulk loads; 0 = never) |
//!
//! Sizes take PostgreSQL's units (`B`, `kB`, `MB`, `GB`, `TB`; a bare number is bytes),
//! durations `ms`, `s`, `min`, `h`, `d` (a bare number is seconds, as for PostgreSQL's
//! `checkpoint_timeout`). In the TOML file a value may be a string with a unit or an integer.

use std::time::Duration;

use gnomon_mvcc::{
    DbEvent, MaintenanceOptions, DEFAULT_CHECKPOINT_TIMEOUT, DEFAULT_CHECKPOINT_WAL_SIZE,
    DEFAULT_GC_WINDOW, DEFAULT_WRITE_SET_PART_SIZE,
};
use serde::Deserialize;

use crate::error::ServerError;

/// Smallest accepted `checkpoint_wal_size`: below one WAL frame's worth a checkpoint would follow
/// every commit.
const MIN_CHECKPOINT_WAL_SIZE: u64 = 1024;
/// Smallest accepted `checkpoint_timeout` (the maintenance thread polls every 100 ms anyway).
const MIN_CHECKPOINT_TIMEOUT: Duration = Duration::from_millis(10);

/// Checkpoint and GC settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceConfig {
    /// Checkpoint once this many bytes of WAL were written since the last checkpoint.
    pub checkpoint_wal_size: u64,
    /// Checkpoint at least this often while anything is written.
    pub checkpoint_timeout: Duration,
    /// Δgc: a superseded version stays readable at least this long (and while any snapshot or
    /// prepared transaction may read it).
    pub gc_window: Duration,
    /// A transaction's buffered writes past this size go to the WAL as write-set parts while
    /// it runs (0 = never; see the mvcc essay, "Bulk work").
    pub write_set_part_size: u64,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            checkpoint_wal_size: DEFAULT_CHECKPOINT_WAL_SIZE,
            checkpoint_timeout: DEFAULT_CHECKPOINT_TIMEOUT,
            gc_window: DEFAULT_GC_WINDOW,
            write_set_part_size: DEFAULT_WRITE_SET_PART_SIZE,
        }
    }
}

/// The config keys (and, with dashes, the flags) this module owns.
pub const KEYS: [&str; 4] = [
    "checkpoint_wal_size",
    "checkpoint_timeout",
    "gc_window",
    "write_set_part_size",
];

/// A setting's value in the TOML file: `"64MB"` / `"5min"`, or a bare integer.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    /// An integer: bytes for sizes, seconds for durations.
    Integer(u64),
    /// A number with a unit.
    Text(String),
}

impl SettingValue {
    fn as_text(&self) -> String {
        match self {
            SettingValue::Integer(n) => n.to_string(),
            SettingValue::Text(t) => t.clone(),
        }
    }
}

impl MaintenanceConfig {
    /// Sets `key` (one of [`KEYS`]; dashes are accepted for underscores) from its text form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ServerError> {
        let bad = |why: String| ServerError::Usage(format!("{key}: {why}"));
        match key.replace('-', "_").as_str() {
            "checkpoint_wal_size" => {
                let size = parse_size(value).map_err(bad)?;
                if size < MIN_CHECKPOINT_WAL_SIZE {
                    return Err(bad(format!(
                        "{value:?} is below the minimum of {MIN_CHECKPOINT_WAL_SIZE} bytes"
                    )));
                }
                self.checkpoint_wal_size = size;
            }
            "checkpoint_timeout" => {
                let timeout = parse_duration(value).map_err(bad)?;
                if timeout < MIN_CHECKPOINT_TIMEOUT {
                    return Err(bad(format!(
                        "{value:?} is below the minimum of {MIN_CHECKPOINT_TIMEOUT:?}"
                    )));
                }
                self.checkpoint_timeout = timeout;
            }
            "gc_window" => self.gc_window = parse_duration(value).map_err(bad)?,
            "write_set_part_size" => self.write_set_part_size = parse_size(value).map_err(bad)?,
            _ => return Err(bad("not a maintenance setting".into())),
        }
        Ok(())
    }

    /// Sets `key` from a TOML value.
    pub fn set_from_file(&mut self, key: &str, value: &SettingValue) -> Result<(), ServerError> {
        self.set(key, &value.as_text())
    }

    /// What the mvcc layer's maintenance thread runs with.
    pub fn options(&self) -> MaintenanceOptions {
        MaintenanceOptions {
            checkpoint_wal_size: self.checkpoint_wal_size,
            checkpoint_timeout: self.checkpoint_timeout,
            gc_interval: MaintenanceOptions::gc_interval_for(self.gc_window),
        }
    }
}

/// Parses a size: a non-negative integer with an optional unit `B`, `kB`, `MB`, `GB`, `TB`
/// (powers of 1024, as PostgreSQL).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split_unit(text)?;
    let factor: u64 = match unit {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?} (B, kB, MB, GB, TB)"
            ))
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses a duration: a non-negative integer with an optional unit `ms`, `s`, `min`, `h`, `d`
/// (bare: seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_unit(text)?;
    let millis: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown time unit {other:?} in {text:?} (ms, s, min, h, d)"
            ))
        }
    };
    number
        .checked_mul(millis)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// `"64 MB"` -> (64, "MB").
fn split_unit(text: &str) -> Result<(u64, &str), String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number = number
        .parse::<u64>()
        .map_err(|_| format!("{text:?} is not a whole number with an optional unit"))?;
    Ok((number, unit.trim()))
}

/// Writes a maintenance event of the database to the log.
pub fn log_event(event: &DbEvent<'_>) {
    if event.is_warning() {
        tracing::warn!("{event}");
    } else {
        tracing::info!("{event}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_take_postgres_units() {
        assert_eq!(parse_size("64MB"), Ok(64 << 20));
        assert_eq!(parse_size("512 kB"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("1 XB").is_err());
        assert!(parse_size("-1MB").is_err());
        assert!(parse_size("99999999999999TB").is_err());
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("5min"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("1 fortnight").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn settings_are_checked() {
        let mut c = MaintenanceConfig::default();
        c.set("gc-window", "50ms").unwrap();
        c.set("checkpoint_wal_size", "1MB").unwrap();
        c.set("checkpoint_timeout", "30s").unwrap();
        c.set("write-set-part-size", "4kB").unwrap();
        assert_eq!(
            c,
            MaintenanceConfig {
                checkpoint_wal_size: 1 << 20,
                checkpoint_timeout: Duration::from_secs(30),
                gc_window: Duration::from_millis(50),
                write_set_part_size: 4 << 10,
            }
        );
        assert!(c.set("write_set_part_size", "big").is_err());
        assert_eq!(c.options().gc_interval, Duration::from_micros(12_500));
        assert!(c.set("checkpoint_wal_size", "10").is_err());
        assert!(c.set("checkpoint_timeout", "0").is_err());
        assert!(c.set("gc_window", "soon").is_err());
    }
}
