//! The server crate's error type: everything that can stop the server from starting or running.
//!
//! Errors of one client connection never appear here: they become ErrorResponse messages.

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

/// Why the server could not start (or had to stop).
#[derive(Debug, Error)]
pub enum ServerError {
    /// Bad command line.
    #[error("{0}")]
    Usage(String),
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML of the expected shape.
    #[error("invalid config file {path}: {source}")]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// The parse failure.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// `listen` is not a resolvable HOST:PORT.
    #[error("invalid listen address {listen:?}: {source}")]
    BadListen {
        /// What was configured.
        listen: String,
        /// The resolution failure.
        #[source]
        source: std::io::Error,
    },
    /// `listen` names a non-loopback address while the bootstrap superuser has no password.
    #[error(
        "refusing to listen on {addr} ({listen:?}): the superuser \"gnomon\" has no password, \
         so clients could not be authenticated. Start on a loopback address (127.0.0.1:5433), \
         run ALTER ROLE gnomon PASSWORD '...', then listen on {listen:?}"
    )]
    RemoteWithoutPassword {
        /// What was configured.
        listen: String,
        /// The first non-loopback address it resolved to.
        addr: SocketAddr,
    },
    /// The admin HTTP address is not a loopback address.
    #[error(
        "refusing to listen on {addr} ({listen:?}): the admin HTTP API has no authentication, \
         so it only listens on loopback addresses such as 127.0.0.1:9187"
    )]
    NotLoopback {
        /// What was configured.
        listen: String,
        /// The first non-loopback address it resolved to.
        addr: SocketAddr,
    },
    /// A TLS certificate or key file is missing, unreadable or malformed, or the key does not
    /// belong to the certificate.
    #[error("cannot use TLS file {path}: {reason}")]
    Tls {
        /// The certificate or key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An `[[hba]]` access rule is malformed or unsafe (`crate::hba`).
    #[error("access rule {index} ([[hba]] entry {index}): {reason}")]
    Hba {
        /// 1-based position of the rule in the config file.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Binding the listening socket failed (port in use, permission).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// Creating the Unix socket file failed (directory missing, permission, a live server).
    #[error("cannot listen on the Unix socket {path}: {source}")]
    UnixSocket {
        /// The socket file.
        path: std::path::PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime or the signal handlers could not be set up.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The storage layer refused to open the data directory.
    #[error("cannot open the database in {dir}: {source}")]
    OpenDb {
        /// The data directory.
        dir: PathBuf,
        /// The storage failure.
        #[source]
        source: gnomon_mvcc::MvccError,
    },
    /// The audit log file could not be opened.
    #[error("cannot open the audit log {path}: {source}")]
    AuditLog {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The SQL layer could not bootstrap or load its catalog.
    #[error("cannot open the SQL catalog in {dir}: {source}")]
    OpenSql {
        /// The data directory.
        dir: PathBuf,
        /// The SQL failure.
        #[source]
        source: gnomon_sql::SqlError,
    },
}
