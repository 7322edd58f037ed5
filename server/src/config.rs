//! Server configuration: embedded defaults, an optional TOML file, then command-line flags.
//!
//! Precedence (later wins): defaults < `--config FILE` < flags.
//!
//! ```toml
//! data_dir = "./gnomon-data"   # where the database lives
//! listen = "127.0.0.1:5433"    # HOST:PORT; non-loopback needs a password on "gnomon"
//! unix_socket_dir = "/tmp"     # also accept clients on DIR/.s.PGSQL.PORT; off if absent
//! fsync = true                 # false = acknowledged commits may be lost on power failure
//! max_connections = 100        # sessions at once; more are refused with FATAL 53300
//! http = "127.0.0.1:9187"      # admin HTTP listener (/metrics, /health, clock API); off if absent
//! log_level = "info"           # error, warn, info, debug or trace
//! max_prepared_transactions = 100  # 2PC transactions prepared at once; 0 disables PREPARE TRANSACTION
//! checkpoint_wal_size = "64MB" # checkpoint once this much WAL was written (crate::maintenance)
//! checkpoint_timeout = "5min"  # ... or this long passed with writes
//! gc_window = "5min"           # Δgc: superseded row versions are kept at least this long
//! lock_hash_partitions = 16    # lock-manager partitions of a plain table (hash buckets of keys)
//! wal_syncs_in_flight = 1      # WAL commit fdatasyncs running at once (1..=64; 1 = one at a time)
//! audit_log = "/var/log/gnomon-audit.log"  # default: audit.log in the data directory
//! lock_escalation_partition_rows = 1000  # lock thresholds and timeout defaults
//! lock_escalation_table_rows = 5000      # (crate::lock_settings)
//! lock_hotspot_waits = 200
//! lock_hotspot_window = "1s"
//! lock_timeout = "0"
//! statement_timeout = "0"
//! tls_cert = "/etc/gnomon/server.crt"      # PEM certificate chain; with tls_key enables TLS
//! tls_key = "/etc/gnomon/server.key"       # PEM private key (PKCS#8, PKCS#1 or SEC1)
//! tls_required_for_remote = true           # refuse non-TLS clients on non-loopback addresses
//!
//! [[hba]]                      # access rules, first match wins (crate::hba); none = built-in
//! type = "hostssl"             # host | hostssl | hostnossl | local (Unix socket; no address)
//! database = "all"             # all | sameuser | name,name
//! user = "all"                 # all | name,name
//! address = "0.0.0.0/0"        # all | IP | CIDR
//! method = "scram-sha-256"     # trust (local, loopback only) | scram-sha-256 | reject
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ServerError;
use crate::hba::HbaEntry;
use crate::lock_settings::LockConfig;
use crate::maintenance::{MaintenanceConfig, SettingValue};

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./gnomon-data";
/// Default listen address (PostgreSQL's port + 1, so both can run side by side).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5433";
/// Default limit on concurrent sessions (PostgreSQL's `max_connections` default).
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;
/// Default log level.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Default lock-manager partitions of a plain table.
pub const DEFAULT_LOCK_HASH_PARTITIONS: u32 = 16;
/// Most lock-manager partitions of a plain table.
pub const MAX_LOCK_HASH_PARTITIONS: u32 = 65536;

/// Largest `wal_syncs_in_flight` accepted (each sync slot holds an open file of the active WAL
/// segment).
pub const MAX_WAL_SYNCS_IN_FLIGHT: usize = 64;
/// Log levels `--log-level` accepts, least verbose first.
pub const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Usage text printed by `--help`.
pub const USAGE: &str = "\
gnomon: a PostgreSQL-compatible database server

USAGE:
    gnomon [--data-dir DIR] [--listen HOST:PORT] [--config FILE] [--audit-log FILE]

OPTIONS:
    --data-dir DIR        where the database files live (default ./gnomon-data)
    --listen HOST:PORT    address to accept connections on (default 127.0.0.1:5433);
                          a non-loopback address needs a password on the superuser
                          gnomon (ALTER ROLE gnomon PASSWORD '...')
    --unix-socket-dir DIR also accept clients on the Unix socket DIR/.s.PGSQL.PORT
                          (PORT of --listen; psql -h DIR -p PORT); off unless given
    --max-connections N   sessions served at once (default 100); each session is
                          one thread; further clients get FATAL 53300
    --http HOST:PORT      admin HTTP listener: /metrics (Prometheus), /health and the
                          clock API (docs/admin-http.md); off unless given; loopback only
    --log-level LEVEL     error, warn, info (default), debug or trace
    --max-prepared-transactions N
                          transactions prepared (two-phase commit) at once
                          (default 100; 0 refuses PREPARE TRANSACTION)
    --checkpoint-wal-size SIZE
                          checkpoint once this much WAL was written since the
                          last one (default 64MB; units B, kB, MB, GB)
    --checkpoint-timeout TIME
                          checkpoint at least this often while anything is
                          written (default 5min; units ms, s, min, h, d)
    --gc-window TIME      keep superseded row versions at least this long
                          (default 5min); a background task then collects them
    --write-set-part-size SIZE
                          a transaction's buffered writes go to the WAL in
                          parts of this size (default 16MB; 0 = never)
    --wal-syncs-in-flight N
                          WAL commit fdatasyncs that may run at once: a batch
                          is written while the previous one syncs (default 1,
                          1..=64; 1 = one at a time)
    --lock-hash-partitions N
                          the lock manager's partitions of a plain (not
                          partitioned) table: hash buckets of row keys where
                          row locks escalate first (default 16, 1..=65536)
    --lock-escalation-partition-rows N
                          row locks of a transaction in one partition that
                          escalate to a partition lock (default 1000; 0 = never)
    --lock-escalation-table-rows N
                          row locks in one table that escalate to a table lock,
                          and the size from which bulk statements take it up
                          front (default 5000; 0 = never)
    --lock-hotspot-waits N
                          lock waits in one partition within the window that
                          make it a hot spot (default 200; 0 = never)
    --lock-hotspot-window TIME
                          that window (default 1s; bare numbers are ms)
    --lock-timeout TIME   default lock_timeout of sessions (default 0 = none)
    --statement-timeout TIME
                          default statement_timeout of sessions (default 0)
    --audit-log FILE      where DDL, role, GRANT and 2PC events are logged as JSON
                          lines (default DIR/audit.log)
    --tls-cert FILE       PEM certificate chain; with --tls-key, clients may use TLS
                          (psql sslmode=require); SHOW ssl then reports on
    --tls-key FILE        PEM private key of --tls-cert
    --tls-required-for-remote
                          refuse clients on non-loopback addresses that do not use
                          TLS (FATAL 28000); needs --tls-cert and --tls-key
    --config FILE         TOML file with keys data_dir, listen, unix_socket_dir, fsync,
                          max_connections, http, log_level, audit_log,
                          max_prepared_transactions, checkpoint_wal_size,
                          checkpoint_timeout, gc_window, write_set_part_size,
                          lock_hash_partitions, wal_syncs_in_flight,
                          lock_escalation_partition_rows,
                          lock_escalation_table_rows, lock_hotspot_waits,
                          lock_hotspot_window, lock_timeout, statement_timeout,
                          tls_cert, tls_key,
                          tls_required_for_remote, and [[hba]] access rules
                          (flags override the file)
    -h, --help            print this help

Connect with: psql -h 127.0.0.1 -p 5433 -U gnomon gnomon
";

/// Everything the server needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Directory of the database (created if missing).
    pub data_dir: PathBuf,
    /// Address to listen on; a non-loopback one needs a password on the bootstrap superuser
    /// (checked by [`crate::run`] once the catalog is open).
    pub listen: String,
    /// Directory of the Unix-domain socket `.s.PGSQL.PORT` (`crate::socket`); None = TCP only.
    pub unix_socket_dir: Option<PathBuf>,
    /// Whether commits are fsynced before they are acknowledged.
    pub fsync: bool,
    /// Most sessions served at once (at least 1); one more is refused with FATAL 53300.
    pub max_connections: usize,
    /// Address of the admin HTTP listener; None = no listener.
    pub http: Option<String>,
    /// One of [`LOG_LEVELS`].
    pub log_level: String,
    /// Most transactions prepared at once (`max_prepared_transactions`; 0 disables 2PC).
    pub max_prepared_transactions: usize,
    /// Checkpoint and GC settings.
    pub maintenance: MaintenanceConfig,
    /// The audit log file; None = `audit.log` in the data directory.
    pub audit_log: Option<PathBuf>,
    /// PEM certificate chain for TLS (with `tls_key`); None = SSLRequest is answered `N`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS (with `tls_cert`).
    pub tls_key: Option<PathBuf>,
    /// Refuse clients on non-loopback addresses that did not negotiate TLS.
    pub tls_required_for_remote: bool,
    /// Access rules in order ([`crate::hba`]); empty = the built-in rules.
    pub hba: Vec<HbaEntry>,
    /// Lock-manager partitions of a plain table (`lock_hash_partitions`; a partitioned
    /// table's partitions are its own).
    pub lock_hash_partitions: u32,
    /// WAL commit fdatasyncs running at once (`wal_syncs_in_flight`, 1..=64).
    pub wal_syncs_in_flight: usize,
    /// Lock thresholds and session timeout defaults.
    pub locks: LockConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            listen: DEFAULT_LISTEN.to_string(),
            unix_socket_dir: None,
            fsync: true,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            http: None,
            log_level: DEFAULT_LOG_LEVEL.to_string(),
            max_prepared_transactions: gnomon_mvcc::DEFAULT_MAX_PREPARED_TRANSACTIONS,
            maintenance: MaintenanceConfig::default(),
            audit_log: None,
            tls_cert: None,
            tls_key: None,
            tls_required_for_remote: false,
            hba: Vec::new(),
            lock_hash_partitions: DEFAULT_LOCK_HASH_PARTITIONS,
            wal_syncs_in_flight: gnomon_mvcc::DEFAULT_WAL_SYNCS_IN_FLIGHT,
            locks: LockConfig::default(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
// NB: one value per process, moved once; boxing the Config would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Start the server with this configuration.
    Run(Config),
    /// Print [`USAGE`] and exit.
    Help,
}

/// The TOML file's shape; every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    unix_socket_dir: Option<PathBuf>,
    fsync: Option<bool>,
    max_connections: Option<usize>,
    http: Option<String>,
    log_level: Option<String>,
    max_prepared_transactions: Option<usize>,
    checkpoint_wal_size: Option<SettingValue>,
    checkpoint_timeout: Option<SettingValue>,
    gc_window: Option<SettingValue>,
    write_set_part_size: Option<SettingValue>,
    audit_log: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_required_for_remote: Option<bool>,
    #[serde(default)]
    hba: Vec<HbaEntry>,
    lock_hash_partitions: Option<u32>,
    wal_syncs_in_flight: Option<usize>,
    lock_escalation_partition_rows: Option<SettingValue>,
    lock_escalation_table_rows: Option<SettingValue>,
    lock_hotspot_waits: Option<SettingValue>,
    lock_hotspot_window: Option<SettingValue>,
    lock_timeout: Option<SettingValue>,
    statement_timeout: Option<SettingValue>,
}

/// `text` as the number `flag` takes; a usage error saying it needs `what` otherwise.
fn number<T: std::str::FromStr>(flag: &str, text: &str, what: &str) -> Result<T, ServerError> {
    text.parse()
        .map_err(|_| ServerError::Usage(format!("{flag} needs {what}, not {text:?}")))
}

impl Command {
    /// Parses the arguments after the program name.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Command, ServerError> {
        let mut data_dir = None;
        let mut listen = None;
        let mut unix_socket_dir = None;
        let mut max_connections = None;
        let mut max_prepared = None;
        let mut config_file = None;
        let mut http = None;
        let mut log_level = None;
        let mut maintenance = Vec::new();
        let mut locks = Vec::new();
        let mut audit_log = None;
        let mut tls_cert = None;
        let mut tls_key = None;
        let mut tls_required = None;
        let mut lock_hash_partitions = None;
        let mut wal_syncs_in_flight = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| -> Result<String, ServerError> {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| ServerError::Usage(format!("{name} needs a value")))
            };
            match flag.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "--data-dir" | "-D" => data_dir = Some(PathBuf::from(value("--data-dir")?)),
                "--listen" => listen = Some(value("--listen")?),
                "--unix-socket-dir" => {
                    unix_socket_dir = Some(PathBuf::from(value("--unix-socket-dir")?))
                }
                "--max-connections" => {
                    let text = value("--max-connections")?;
                    max_connections = Some(number(&flag, &text, "a positive number")?);
                }
                "--max-prepared-transactions" => {
                    let text = value("--max-prepared-transactions")?;
                    max_prepared = Some(number(&flag, &text, "a number")?);
                }
                "--lock-hash-partitions" => {
                    let text = value("--lock-hash-partitions")?;
                    lock_hash_partitions = Some(number(&flag, &text, "a number")?);
                }
                "--wal-syncs-in-flight" => {
                    let text = value("--wal-syncs-in-flight")?;
                    wal_syncs_in_flight = Some(number(&flag, &text, "a number")?);
                }
                "--audit-log" => audit_log = Some(PathBuf::from(value("--audit-log")?)),
                "--tls-cert" => tls_cert = Some(PathBuf::from(value("--tls-cert")?)),
                "--tls-key" => tls_key = Some(PathBuf::from(value("--tls-key")?)),
                // NB: a switch; `--tls-required-for-remote=false` turns off the file's setting.
                "--tls-required-for-remote" => {
                    tls_required = Some(match inline.as_deref() {
                        None | Some("true" | "on" | "yes" | "1") => true,
                        Some("false" | "off" | "no" | "0") => false,
                        Some(other) => {
                            return Err(ServerError::Usage(format!(
                            "--tls-required-for-remote takes no value or true/false, not {other:?}"
                        )))
                        }
                    });
                }
                "--config" => config_file = Some(PathBuf::from(value("--config")?)),
                "--http" => http = Some(value("--http")?),
                "--log-level" => log_level = Some(value("--log-level")?),
                "--checkpoint-wal-size"
                | "--checkpoint-timeout"
                | "--gc-window"
                | "--write-set-part-size" => {
                    maintenance.push((flag.clone(), value(&flag)?));
                }
                f if f.strip_prefix("--").is_some_and(|k| {
                    crate::lock_settings::KEYS.contains(&k.replace('-', "_").as_str())
                }) =>
                {
                    locks.push((flag.clone(), value(&flag)?));
                }
                other => {
                    return Err(ServerError::Usage(format!(
                        "unknown argument {other:?} (try --help)"
                    )))
                }
            }
        }
        let mut config = match &config_file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(dir) = data_dir {
            config.data_dir = dir;
        }
        if let Some(addr) = listen {
            config.listen = addr;
        }
        if unix_socket_dir.is_some() {
            config.unix_socket_dir = unix_socket_dir;
        }
        if let Some(n) = max_prepared {
            config.max_prepared_transactions = n;
        }
        if let Some(n) = max_connections {
            config.max_connections = n;
        }
        if let Some(n) = lock_hash_partitions {
            config.lock_hash_partitions = n;
        }
        if let Some(n) = wal_syncs_in_flight {
            config.wal_syncs_in_flight = n;
        }
        if http.is_some() {
            config.http = http;
        }
        if let Some(level) = log_level {
            config.log_level = level;
        }
        for (flag, value) in maintenance {
            config
                .maintenance
                .set(flag.trim_start_matches('-'), &value)?;
        }
        for (flag, value) in locks {
            config.locks.set(flag.trim_start_matches('-'), &value)?;
        }
        if audit_log.is_some() {
            config.audit_log = audit_log;
        }
        if tls_cert.is_some() {
            config.tls_cert = tls_cert;
        }
        if tls_key.is_some() {
            config.tls_key = tls_key;
        }
        if let Some(required) = tls_required {
            config.tls_required_for_remote = required;
        }
        Ok(Command::Run(config))
    }
}

impl Config {
    /// Defaults overridden by the keys present in the TOML file at `path`.
    pub fn from_file(path: &Path) -> Result<Config, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServerError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|source| ServerError::ConfigParse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        let file: FileConfig = toml::from_str(text)?;
        let defaults = Config::default();
        let mut maintenance = defaults.maintenance.clone();
        for (key, value) in [
            ("checkpoint_wal_size", &file.checkpoint_wal_size),
            ("checkpoint_timeout", &file.checkpoint_timeout),
            ("gc_window", &file.gc_window),
            ("write_set_part_size", &file.write_set_part_size),
        ] {
            if let Some(value) = value {
                maintenance
                    .set_from_file(key, value)
                    .map_err(<toml::de::Error as serde::de::Error>::custom)?;
            }
        }
        let mut locks = defaults.locks.clone();
        for (key, value) in [
            (
                "lock_escalation_partition_rows",
                &file.lock_escalation_partition_rows,
            ),
            (
                "lock_escalation_table_rows",
                &file.lock_escalation_table_rows,
            ),
            ("lock_hotspot_waits", &file.lock_hotspot_waits),
            ("lock_hotspot_window", &file.lock_hotspot_window),
            ("lock_timeout", &file.lock_timeout),
            ("statement_timeout", &file.statement_timeout),
        ] {
            if let Some(value) = value {
                locks
                    .set_from_file(key, value)
                    .map_err(<toml::de::Error as serde::de::Error>::custom)?;
            }
        }
        Ok(Config {
            data_dir: file.data_dir.unwrap_or(defaults.data_dir),
            listen: file.listen.unwrap_or(defaults.listen),
            unix_socket_dir: file.unix_socket_dir.or(defaults.unix_socket_dir),
            fsync: file.fsync.unwrap_or(defaults.fsync),
            max_connections: file.max_connections.unwrap_or(defaults.max_connections),
            http: file.http,
            log_level: file.log_level.unwrap_or(defaults.log_level),
            max_prepared_transactions: file
                .max_prepared_transactions
                .unwrap_or(defaults.max_prepared_transactions),
            maintenance,
            audit_log: file.audit_log.or(defaults.audit_log),
            tls_cert: file.tls_cert,
            tls_key: file.tls_key,
            tls_required_for_remote: file
                .tls_required_for_remote
                .unwrap_or(defaults.tls_required_for_remote),
            lock_hash_partitions: file
                .lock_hash_partitions
                .unwrap_or(defaults.lock_hash_partitions),
            wal_syncs_in_flight: file
                .wal_syncs_in_flight
                .unwrap_or(defaults.wal_syncs_in_flight),
            hba: file.hba,
            locks,
        })
    }

    /// The audit log's path: `audit_log`, or `audit.log` in the data directory.
    pub fn audit_log_path(&self) -> PathBuf {
        self.audit_log
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.log"))
    }

    /// Checks the settings and resolves `listen` to the address to bind; `http` must be a
    /// loopback address (the admin API has no authentication). Whether a non-loopback `listen`
    /// may be used depends on the catalog (the superuser's password) and is checked by
    /// [`crate::run`].
    pub fn validate(&self) -> Result<SocketAddr, ServerError> {
        if self.max_connections == 0 {
            return Err(ServerError::Usage(
                "max_connections must be at least 1".to_string(),
            ));
        }
        if !LOG_LEVELS.contains(&self.log_level.as_str()) {
            return Err(ServerError::Usage(format!(
                "log level {:?} is not one of {}",
                self.log_level,
                LOG_LEVELS.join(", ")
            )));
        }
        if !(1..=MAX_LOCK_HASH_PARTITIONS).contains(&self.lock_hash_partitions) {
            return Err(ServerError::Usage(format!(
                "lock_hash_partitions must be between 1 and {MAX_LOCK_HASH_PARTITIONS}, not {}",
                self.lock_hash_partitions
            )));
        }
        if !(1..=MAX_WAL_SYNCS_IN_FLIGHT).contains(&self.wal_syncs_in_flight) {
            return Err(ServerError::Usage(format!(
                "wal_syncs_in_flight must be between 1 and {MAX_WAL_SYNCS_IN_FLIGHT}, not {}",
                self.wal_syncs_in_flight
            )));
        }
        if let Some(http) = &self.http {
            loopback_addr(http)?;
        }
        resolve_addr(&self.listen)
    }

    /// The admin HTTP address, resolved and checked like `listen` (None: no listener).
    pub fn http_addr(&self) -> Result<Option<SocketAddr>, ServerError> {
        self.http.as_deref().map(loopback_addr).transpose()
    }
}

/// The first address `listen` resolves to.
fn resolve_addr(listen: &str) -> Result<SocketAddr, ServerError> {
    Ok(resolve_all(listen)?.0)
}

/// The first address `listen` resolves to, and all of them.
fn resolve_all(listen: &str) -> Result<(SocketAddr, Vec<SocketAddr>), ServerError> {
    let addrs: Vec<SocketAddr> = listen
        .to_socket_addrs()
        .map_err(|source| ServerError::BadListen {
            listen: listen.to_string(),
            source,
        })?
        .collect();
    let Some(first) = addrs.first().copied() else {
        return Err(ServerError::Usage(format!(
            "listen address {listen:?} resolves to nothing"
        )));
    };
    Ok((first, addrs))
}

/// Resolves `listen` and refuses anything but loopback addresses.
fn loopback_addr(listen: &str) -> Result<SocketAddr, ServerError> {
    let (first, addrs) = resolve_all(listen)?;
    if let Some(public) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        return Err(ServerError::NotLoopback {
            listen: listen.to_string(),
            addr: *public,
        });
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_arguments_give_the_embedded_defaults() {
        let cmd = Command::from_args(args(&[])).unwrap();
        assert_eq!(cmd, Command::Run(Config::default()));
        let Command::Run(c) = cmd else { unreachable!() };
        assert_eq!(c.data_dir, PathBuf::from("./gnomon-data"));
        assert_eq!(c.listen, "127.0.0.1:5433");
        assert!(c.fsync);
    }

    #[test]
    fn number_flags_take_numbers_and_say_what_they_need() {
        let usage = |list: &[&str]| match Command::from_args(args(list)) {
            Err(ServerError::Usage(m)) => m,
            other => panic!("{list:?}: {other:?}"),
        };
        assert_eq!(
            usage(&["--max-connections", "many"]),
            "--max-connections needs a positive number, not \"many\""
        );
        assert_eq!(
            usage(&["--max-prepared-transactions=-1"]),
            "--max-prepared-transactions needs a number, not \"-1\""
        );
        assert_eq!(
            usage(&["--lock-hash-partitions", "x"]),
            "--lock-hash-partitions needs a number, not \"x\""
        );
        let Ok(Command::Run(c)) = Command::from_args(args(&[
            "--max-connections=7",
            "--max-prepared-transactions",
            "0",
        ])) else {
            panic!("numbers are accepted")
        };
        assert_eq!((c.max_connections, c.max_prepared_transactions), (7, 0));
    }

    #[test]
    fn flags_override_the_config_file() {
        let dir = std::env::temp_dir().join(format!("gnomon-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("g.toml");
        std::fs::write(
            &file,
            "data_dir = \"/tmp/from-file\"\nlisten = \"127.0.0.1:7000\"\nfsync = false\n",
        )
        .unwrap();
        let cmd = Command::from_args(args(&[
            "--config",
            file.to_str().unwrap(),
            "--listen=127.0.0.1:7001",
        ]))
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            cmd,
            Command::Run(Config {
                data_dir: PathBuf::from("/tmp/from-file"),
                listen: "127.0.0.1:7001".into(),
                unix_socket_dir: None,
                fsync: false,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                http: None,
                log_level: DEFAULT_LOG_LEVEL.to_string(),
                max_prepared_transactions: gnomon_mvcc::DEFAULT_MAX_PREPARED_TRANSACTIONS,
                maintenance: MaintenanceConfig::default(),
                audit_log: None,
                tls_cert: None,
                tls_key: None,
                tls_required_for_remote: false,
                hba: Vec::new(),
                lock_hash_partitions: DEFAULT_LOCK_HASH_PARTITIONS,
                wal_syncs_in_flight: gnomon_mvcc::DEFAULT_WAL_SYNCS_IN_FLIGHT,
                locks: LockConfig::default(),
            })
        );
    }

    #[test]
    fn lock_hash_partitions_come_from_file_or_flag_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(&file, "lock_hash_partitions = 64\n").unwrap();
        let run = |list: &[&str]| match Command::from_args(args(list)).unwrap() {
            Command::Run(c) => c,
            Command::Help => unreachable!(),
        };
        assert_eq!(
            run(&["--config", file.to_str().unwrap()]).lock_hash_partitions,
            64
        );
        let c = run(&[
            "--config",
            file.to_str().unwrap(),
            "--lock-hash-partitions=4",
        ]);
        assert_eq!(c.lock_hash_partitions, 4);
        assert!(c.validate().is_ok());
        assert!(run(&["--lock-hash-partitions", "0"]).validate().is_err());
        assert!(run(&["--lock-hash-partitions", "65537"])
            .validate()
            .is_err());
        assert!(Command::from_args(args(&["--lock-hash-partitions", "many"])).is_err());
    }

    #[test]
    fn wal_syncs_in_flight_come_from_file_or_flag_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(&file, "wal_syncs_in_flight = 4\n").unwrap();
        let run = |list: &[&str]| match Command::from_args(args(list)).unwrap() {
            Command::Run(c) => c,
            Command::Help => unreachable!(),
        };
        assert_eq!(run(&[]).wal_syncs_in_flight, 1);
        assert_eq!(
            run(&["--config", file.to_str().unwrap()]).wal_syncs_in_flight,
            4
        );
        let c = run(&[
            "--config",
            file.to_str().unwrap(),
            "--wal-syncs-in-flight=1",
        ]);
        assert_eq!(c.wal_syncs_in_flight, 1);
        assert!(c.validate().is_ok());
        assert!(run(&["--wal-syncs-in-flight", "0"]).validate().is_err());
        assert!(run(&["--wal-syncs-in-flight", "65"]).validate().is_err());
        assert!(Command::from_args(args(&["--wal-syncs-in-flight", "two"])).is_err());
    }

    #[test]
    fn maintenance_settings_come_from_file_or_flag() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(
            &file,
            "checkpoint_wal_size = \"16MB\"\ncheckpoint_timeout = 60\ngc_window = \"1min\"\n",
        )
        .unwrap();
        let cmd = Command::from_args(args(&[
            "--config",
            file.to_str().unwrap(),
            "--gc-window=50ms",
        ]))
        .unwrap();
        let Command::Run(c) = cmd else { unreachable!() };
        assert_eq!(
            c.maintenance,
            MaintenanceConfig {
                checkpoint_wal_size: 16 << 20,
                checkpoint_timeout: std::time::Duration::from_secs(60),
                gc_window: std::time::Duration::from_millis(50),
                write_set_part_size: 16 << 20,
            }
        );
        assert!(Command::from_args(args(&["--checkpoint-wal-size", "lots"])).is_err());
        std::fs::write(&file, "gc_window = \"later\"\n").unwrap();
        assert!(Config::from_file(&file).is_err());
    }

    #[test]
    fn http_and_log_level_come_from_file_or_flag_and_are_checked() {
        let c = Config::from_toml("http = \"127.0.0.1:9187\"\nlog_level = \"debug\"\n").unwrap();
        assert_eq!(c.http.as_deref(), Some("127.0.0.1:9187"));
        assert_eq!(c.log_level, "debug");
        assert!(c.validate().is_ok());
        let cmd = Command::from_args(args(&["--http=127.0.0.1:0", "--log-level", "warn"])).unwrap();
        let Command::Run(c) = cmd else { unreachable!() };
        assert_eq!(c.http.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(c.log_level, "warn");
        let loud = Config {
            log_level: "loud".into(),
            ..Config::default()
        };
        assert!(loud.validate().is_err());
        let public = Config {
            http: Some("0.0.0.0:9187".into()),
            ..Config::default()
        };
        assert!(matches!(
            public.validate(),
            Err(ServerError::NotLoopback { .. })
        ));
        assert_eq!(Config::default().http_addr().unwrap(), None);
    }

    #[test]
    fn max_connections_comes_from_file_or_flag_and_zero_is_refused() {
        let c = Config::from_toml("max_connections = 7\n").unwrap();
        assert_eq!(c.max_connections, 7);
        let cmd = Command::from_args(args(&["--max-connections", "3"])).unwrap();
        let Command::Run(c) = cmd else { unreachable!() };
        assert_eq!(c.max_connections, 3);
        assert!(Command::from_args(args(&["--max-connections=x"])).is_err());
        let zero = Config {
            max_connections: 0,
            ..Config::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn lock_settings_come_from_file_or_flag() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(
            &file,
            "lock_escalation_partition_rows = 50\nlock_hotspot_window = 20\nlock_timeout = \"3s\"\n",
        )
        .unwrap();
        let cmd = Command::from_args(args(&[
            "--config",
            file.to_str().unwrap(),
            "--lock-escalation-partition-rows=60",
            "--statement-timeout",
            "5s",
        ]))
        .unwrap();
        let Command::Run(c) = cmd else { unreachable!() };
        assert_eq!(c.locks.escalation_partition_rows, 60);
        assert_eq!(c.locks.hotspot_window, std::time::Duration::from_millis(20));
        assert_eq!(c.locks.lock_timeout, std::time::Duration::from_secs(3));
        assert_eq!(c.locks.statement_timeout, std::time::Duration::from_secs(5));
        assert!(Command::from_args(args(&["--lock-hotspot-waits", "lots"])).is_err());
        std::fs::write(&file, "lock_escalation_table_rows = \"x\"\n").unwrap();
        assert!(Config::from_file(&file).is_err());
    }

    #[test]
    fn unknown_config_keys_are_rejected() {
        assert!(Config::from_toml("port = 5\n").is_err());
    }

    #[test]
    fn audit_log_defaults_to_the_data_directory() {
        let c = Config::from_toml("data_dir = \"/d\"\n").unwrap();
        assert_eq!(c.audit_log_path(), PathBuf::from("/d/audit.log"));
        let cmd = Command::from_args(args(&["--audit-log", "/x/a.log"])).unwrap();
        let Command::Run(c) = cmd else { unreachable!() };
        assert_eq!(c.audit_log_path(), PathBuf::from("/x/a.log"));
        let c = Config {
            listen: "[::1]:5433".into(),
            ..Config::default()
        };
        assert!(c.validate().is_ok());
    }

    #[test]
    fn tls_and_access_rules_come_from_file_or_flag() {
        let c = Config::from_toml(
            "tls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\ntls_required_for_remote = true\n\
             [[hba]]\ntype = \"hostssl\"\ndatabase = \"all\"\nuser = \"all\"\n\
             address = \"0.0.0.0/0\"\nmethod = \"scram-sha-256\"\n\
             [[hba]]\ntype = \"host\"\ndatabase = \"all\"\nuser = \"all\"\n\
             address = \"all\"\nmethod = \"reject\"\n",
        )
        .unwrap();
        assert_eq!(c.tls_cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(c.tls_key, Some(PathBuf::from("/k.pem")));
        assert!(c.tls_required_for_remote);
        assert_eq!(c.hba.len(), 2);
        assert_eq!(c.hba[0].kind, "hostssl");
        assert_eq!(c.hba[1].method, "reject");
        // An entry with a missing or unknown key is a config error.
        assert!(Config::from_toml("[[hba]]\ntype = \"host\"\nmethod = \"trust\"\n").is_err());
        let cmd = Command::from_args(args(&[
            "--tls-cert",
            "/a.crt",
            "--tls-key=/a.key",
            "--tls-required-for-remote",
        ]))
        .unwrap();
        let Command::Run(c) = cmd else { unreachable!() };
        assert_eq!(c.tls_cert, Some(PathBuf::from("/a.crt")));
        assert_eq!(c.tls_key, Some(PathBuf::from("/a.key")));
        assert!(c.tls_required_for_remote);
        let cmd = Command::from_args(args(&["--tls-required-for-remote=off"])).unwrap();
        let Command::Run(c) = cmd else { unreachable!() };
        assert!(!c.tls_required_for_remote);
        assert!(Command::from_args(args(&["--tls-required-for-remote=maybe"])).is_err());
    }

    #[test]
    fn help_and_bad_flags_are_recognised() {
        assert_eq!(
            Command::from_args(args(&["--help"])).unwrap(),
            Command::Help
        );
        assert!(Command::from_args(args(&["--bogus"])).is_err());
        assert!(Command::from_args(args(&["--listen"])).is_err());
    }
}
