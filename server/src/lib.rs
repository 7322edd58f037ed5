//! gnomon-server: the PostgreSQL wire-protocol front end of Gnomon.
//!
//! # What it guarantees
//!
//! Clients written for PostgreSQL 15 (libpq/psql, pgbench, tokio-postgres, psycopg, pgjdbc,
//! node-pg) connect and talk to Gnomon as if it were PostgreSQL: the same startup greeting
//! (ParameterStatus list, BackendKeyData), the same command tags, SQLSTATE codes and
//! ReadyForQuery transaction states, in the simple and the extended query protocol. The
//! reference is the trace set in `/work/shared/reference/pg15-wire/`.
//!
//! A commit is acknowledged (CommandComplete) only after the sql/mvcc layers return, and they
//! return only once the commit is durable: a `kill -9` loses nothing a client was told about.
//!
//! # Invariants
//!
//! 1. No client input can panic the server: frames are bounds-checked ([`codec`]), every
//!    refused request is an ErrorResponse, and a panic inside the sql layer is contained to its
//!    connection (FATAL XX000).
//! 2. Session calls are blocking CPU/IO work (commits wait for fsync): they run inside
//!    `tokio::task::block_in_place`, so the reactor keeps serving other connections.
//! 3. The server only listens on loopback addresses (there is no authentication yet).
//! 4. On SIGTERM/SIGINT the listener closes first, idle sessions get FATAL 57P01, running
//!    statements finish, then the database is closed (all `Arc<Db>` holders dropped).
//!
//! # Shape
//!
//! ```text
//!   main.rs ── Command::from_args ──> Config ──> run()
//!                                                 │ Db::open(dir) ─> SqlEngine::open(db)
//!                                                 ▼
//!   TcpListener ──accept──> connection::serve (one tokio task per client)
//!        │                      │ startup: SSLRequest→'N', trust auth, role/database check,
//!        │                      │          ParameterStatus*, BackendKeyData, ReadyForQuery
//!        │                      │ loop:    Query | Parse/Bind/Describe/Execute/Close/Sync
//!        │                      ▼
//!        │                  gnomon_sql::Session (per connection)
//!        └─ CancelRequest ──> CancelRegistry[(pid, secret)] ──> Session's cancel flag (57014)
//! ```
//!
//! # Deliberately left out
//!
//! TLS (SSLRequest is answered `N`), password authentication (every known role is trusted),
//! COPY, LISTEN/NOTIFY, replication connections, protocol 3.2 (negotiated down to 3.0).
//! Notices are sent before the results of the query string that raised them, not interleaved
//! per statement.

pub mod cancel;
pub mod codec;
pub mod config;
pub mod connection;
pub mod copy;
pub mod error;

use std::sync::Arc;
use std::time::Duration;

use gnomon_mvcc::{Db, DbOptions, SyncPolicy};
use gnomon_sql::SqlEngine;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use config::{Command, Config, USAGE};
pub use error::ServerError;

use crate::cancel::CancelRegistry;
use crate::connection::Shared;

/// How long shutdown waits for running statements before dropping their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Opens the database in `config.data_dir`, serves clients on `config.listen`, and returns after
/// a clean shutdown on SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), ServerError> {
    let addr = config.validate()?;
    let db = Db::open(DbOptions {
        dir: config.data_dir.clone(),
        sync: if config.fsync {
            SyncPolicy::Fsync
        } else {
            SyncPolicy::OffUnsafeNoDurability
        },
        ..DbOptions::default()
    })
    .map_err(|source| ServerError::OpenDb {
        dir: config.data_dir.clone(),
        source,
    })?;
    let engine = SqlEngine::open(Arc::clone(&db)).map_err(|source| ServerError::OpenSql {
        dir: config.data_dir.clone(),
        source,
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gnomon-net")
        .build()
        .map_err(ServerError::Runtime)?;
    let shared = Arc::new(Shared {
        engine,
        cancels: CancelRegistry::new(),
    });
    runtime.block_on(accept_loop(&config, addr, Arc::clone(&shared)))?;
    // NB: a statement stuck in the sql layer cannot be aborted; do not wait for it forever.
    runtime.shutdown_timeout(Duration::from_secs(1));
    // Invariant 4: every session is gone, so these are the last handles on the database.
    drop(shared);
    drop(db);
    eprintln!("gnomon: shut down cleanly");
    Ok(())
}

async fn accept_loop(
    config: &Config,
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
) -> Result<(), ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Listen { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let mut sigterm = signal(SignalKind::terminate()).map_err(ServerError::Runtime)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServerError::Runtime)?;
    eprintln!(
        "gnomon: data directory {} (fsync {})",
        config.data_dir.display(),
        if config.fsync {
            "on"
        } else {
            "OFF: commits are not durable"
        }
    );
    eprintln!("gnomon: listening on {local}");

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(connection::serve(stream, Arc::clone(&shared), shutdown_rx.clone()));
                }
                // NB: accept errors (EMFILE, aborted handshakes) are transient: log and go on.
                Err(e) => {
                    eprintln!("gnomon: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    eprintln!("gnomon: shutting down");
    drop(listener);
    let _ = shutdown_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        eprintln!("gnomon: sessions still busy after {SHUTDOWN_GRACE:?}; dropping them");
        connections.abort_all();
    }
    Ok(())
}
