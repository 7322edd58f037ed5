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
    /// `listen` names a non-loopback address.
    #[error(
        "refusing to listen on {addr} ({listen:?}): gnomon has no authentication yet, \
         so it only listens on loopback addresses such as 127.0.0.1:5433 or [::1]:5433"
    )]
    NotLoopback {
        /// What was configured.
        listen: String,
        /// The first non-loopback address it resolved to.
        addr: SocketAddr,
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
