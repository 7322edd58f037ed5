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
//! 2. One OS thread per connection, like PostgreSQL's process per connection: it reads the
//!    client's messages with blocking reads, runs the blocking Session calls (commits wait for
//!    fsync) directly, and buffers every answer until the client will wait for it
//!    (ReadyForQuery, Flush, CopyInResponse, FATAL, or 64 KiB of results): one `read` and one
//!    `write` syscall per round trip, no hand-off between threads on the hot path.
//! 3. At most `max_connections` sessions (default 100) are open; one more gets FATAL 53300.
//!    At most twice that many connection threads exist (the rest are clients still in their
//!    startup phase or sending a CancelRequest); beyond, the acceptor refuses with 53300 itself.
//! 4. On SIGTERM/SIGINT the listener closes first; every socket is shut down for reading, which
//!    wakes idle sessions to send FATAL 57P01; running statements finish (10 s at most), then
//!    the maintenance thread stops, a shutdown checkpoint is written (if anything was logged
//!    since the last one, so the next start replays nothing) and the database is closed (all
//!    `Arc<Db>` holders dropped).
//! 5. Trust authentication is reachable only from loopback addresses and the Unix socket
//!    ([`socket`], `--unix-socket-dir`), and only while the
//!    bootstrap superuser `gnomon` has no password; a non-loopback listen address is refused
//!    at start until it has one. Every other login is a SCRAM-SHA-256 exchange (`auth.rs`).
//!    Access rules (`[[hba]]` entries, [`hba`]) can reject or demand SCRAM per address, TLS,
//!    database and user, but a `trust` rule for a non-loopback address is refused at start.
//!    The admin HTTP listener has no authentication and only listens on loopback addresses.
//! 6. Monitoring costs the statement path two clock reads and three relaxed atomic adds per
//!    statement ([`metrics`]); everything else is computed when `/metrics` is scraped.
//! 7. With `tls_cert`/`tls_key` an SSLRequest is answered `S` and the connection continues
//!    inside TLS ([`tls`]); bytes the client sent after SSLRequest but before our answer are
//!    refused (FATAL 08P01); `tls_required_for_remote` refuses plain clients on non-loopback
//!    addresses (FATAL 28000). A bad certificate or key file stops the server from starting.
//!
//! # Shape
//!
//! ```text
//!   main.rs ── Command::from_args ──> Config ──> run()
//!                                                 │ Db::open(dir) ─> SqlEngine::open(db)
//!                                                 │ db.start_maintenance: checkpoints by WAL
//!                                                 │   volume/time, GC every gc_window/4
//!                                                 │   ([`maintenance`]: flags, log lines)
//!                                                 ▼
//!   TcpListener [+ UnixListener DIR/.s.PGSQL.PORT] (tokio, current-thread runtime: accept +
//!        │                                     SIGTERM/SIGINT only)
//!        │ accept ─> Connections::admit (socket registry, thread/session limits)
//!        ▼
//!   std::thread "gnomon-conn" per client ──> connection::serve (blocking [`socket::ClientSocket`])
//!        │                      │ startup: SSLRequest→'S'+TLS handshake | 'N', hba rules,
//!        │                      │          auth (trust | SCRAM | reject), database check,
//!        │                      │          ParameterStatus*, BackendKeyData, ReadyForQuery
//!        │                      │ loop:    Query | Parse/Bind/Describe/Execute/Close/Sync
//!        │                      ▼
//!        │                  gnomon_sql::Session (per connection)
//!        └─ CancelRequest ──> CancelRegistry[(pid, secret)] ──> Session's cancel flag (57014)
//!
//!   --http HOST:PORT (same tokio loop) ──> std::thread "gnomon-http" per request ──> http::serve
//!        /metrics: metrics::Metrics (statements, latency histograms, errors) + Db::stats()
//!        /health, /api/v1/{lamport,version,vector-clock}/...: Db::logical_clocks()
//!        /api/v1/transaction/status/{xid}: Db::txn_status()
//! ```
//!
//! Logs are `tracing` events; the binary installs a plain-text subscriber on stderr at
//! `--log-level` (`<UTC time> <LEVEL> gnomon_server: <message> key=value ...`).
//!
//! # Why threads and not async tasks
//!
//! Every message a client sends needs a Session call, and Session calls block (disk reads,
//! fsync waits). On an async runtime each such call cost a `block_in_place` hand-off of the
//! worker's reactor duties plus task wakeups: a `perf` profile of `pgbench -S -M prepared -c 8`
//! showed ~20% of the server's time in futex wake/wait. A blocking thread per connection pays
//! one read and one write syscall per round trip and nothing else; the price, a stack per
//! connection (4 MiB reserved, touched lazily), is why connections are bounded.
//!
//! # Deliberately left out
//!
//! TLS client certificates (`cert` method, `clientcert`), md5/password/GSS authentication (an
//! hba `password` or `md5` method means SCRAM), channel binding (SCRAM-SHA-256-PLUS),
//! `pg_stat_ssl`, reloading certificates or rules without a restart,
//! COPY other than text/CSV COPY FROM STDIN and TO STDOUT (binary format, files), LISTEN/NOTIFY, replication connections, protocol 3.2 (negotiated down to 3.0).
//! Notices are sent before the results of the query string that raised them, not interleaved
//! per statement.

pub(crate) mod auth;
pub mod cancel;
pub mod codec;
pub mod config;
pub mod connection;
pub mod conns;
pub mod copy;
pub mod error;
pub mod hba;
pub mod http;
pub mod lock_settings;
pub mod maintenance;
pub mod metrics;
pub mod socket;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use gnomon_mvcc::{Db, DbOptions, SyncPolicy};
use gnomon_sql::{Audit, SqlEngine, BOOTSTRAP_SUPERUSER};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

pub use config::{Command, Config, USAGE};
pub use error::ServerError;

use crate::cancel::CancelRegistry;
use crate::connection::Shared;
use crate::conns::{Connections, Refused};
use crate::http::AdminState;
use crate::metrics::Metrics;
use crate::socket::ClientSocket;

/// How long shutdown waits for running statements before dropping their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Stack of a connection thread (the sql layer's parser and planner recurse).
const CONNECTION_STACK: usize = 4 * 1024 * 1024;

/// Opens the database in `config.data_dir`, serves clients on `config.listen`, and returns after
/// a clean shutdown on SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), ServerError> {
    let addr = config.validate()?;
    // NB: certificate, key and access rules are checked before the database is opened.
    let tls = tls::acceptor_for(&config.tls_cert, &config.tls_key)?;
    let access = hba::AccessRules::new(&config.hba, config.tls_required_for_remote, tls.is_some())?;
    let db = Db::open(DbOptions {
        dir: config.data_dir.clone(),
        sync: if config.fsync {
            SyncPolicy::Fsync
        } else {
            SyncPolicy::OffUnsafeNoDurability
        },
        max_prepared_transactions: config.max_prepared_transactions,
        wal_syncs_in_flight: config.wal_syncs_in_flight,
        gc_window: config.maintenance.gc_window,
        events: Some(Arc::new(maintenance::log_event)),
        write_set_part_size: config.maintenance.write_set_part_size,
        ..DbOptions::default()
    })
    .map_err(|source| ServerError::OpenDb {
        dir: config.data_dir.clone(),
        source,
    })?;
    // Escalation and hot-spot thresholds (crate::lock_settings), and a plain table's
    // lock-manager partitions (a partitioned table's are its partitions).
    let mut locks = config.locks.lock_settings(db.lock_manager().settings());
    locks.hash_partitions = config.lock_hash_partitions;
    db.lock_manager().configure(locks);
    // Checkpoints by WAL volume and time, GC passes; stopped before the database is closed.
    let background = db
        .start_maintenance(config.maintenance.options())
        .map_err(|source| ServerError::OpenDb {
            dir: config.data_dir.clone(),
            source,
        })?;
    let engine = SqlEngine::open(Arc::clone(&db)).map_err(|source| ServerError::OpenSql {
        dir: config.data_dir.clone(),
        source,
    })?;
    for (name, value) in config.locks.session_defaults() {
        engine
            .set_session_default(name, &value)
            .map_err(|e| ServerError::Usage(format!("{name}: {e}")))?;
    }
    check_remote_access(&config, addr, &engine)?;
    engine.set_ssl(tls.is_some());
    let audit_path = config.audit_log_path();
    let audit = Audit::open(&audit_path).map_err(|source| ServerError::AuditLog {
        path: audit_path,
        source,
    })?;
    engine.set_audit(audit);
    // NB: tokio only waits for connections and signals here; clients are served by threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    let metrics = Arc::new(Metrics::default());
    let shared = Arc::new(Shared {
        engine,
        cancels: CancelRegistry::new(),
        metrics: Arc::clone(&metrics),
        mock_secret: gnomon_sql::scram::mock_secret(),
        tls,
        access,
    });
    // Like PostgreSQL, twice max_connections threads may exist: the extra ones are clients in
    // their startup phase, cancel requests, and clients being told there is no room.
    let connections = Connections::new(
        config.max_connections,
        config.max_connections.saturating_mul(2),
    );
    let admin = Arc::new(AdminState {
        db: Arc::clone(&db),
        metrics,
        connections: Arc::clone(&connections),
        max_connections: config.max_connections,
        active: Default::default(),
    });
    runtime.block_on(accept_loop(&config, addr, &shared, &connections, &admin))?;
    drop(runtime);

    tracing::info!("shutting down");
    connections.begin_shutdown();
    // Admin requests are short (bounded by their I/O timeouts); give them a moment.
    let admin_deadline = std::time::Instant::now() + Duration::from_secs(1);
    while admin.active.load(std::sync::atomic::Ordering::Relaxed) > 0
        && std::time::Instant::now() < admin_deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(admin);
    if !connections.wait_drained(SHUTDOWN_GRACE) {
        tracing::warn!("sessions still busy after {SHUTDOWN_GRACE:?}; dropping them");
        connections.abort_all();
        // NB: a statement stuck in the sql layer cannot be aborted; do not wait for it forever.
        if !connections.wait_drained(Duration::from_secs(1)) {
            return Ok(());
        }
    }
    // Invariant 4: every connection thread is gone, so these are the last handles on the
    // database. A shutdown checkpoint (after the background thread stopped) means the next
    // start replays nothing.
    drop(shared);
    drop(background);
    if db.maintenance_stats().wal_bytes_since_checkpoint > 0 {
        if let Err(e) = db.checkpoint() {
            tracing::warn!(error = %e, "shutdown checkpoint failed; the next start replays the WAL");
        }
    }
    drop(db);
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Invariant 5: a non-loopback listener needs a password on the bootstrap superuser, so trust
/// authentication (loopback only, and only while that password is unset) cannot be reached
/// from the network and every remote login is a SCRAM exchange.
fn check_remote_access(
    config: &Config,
    addr: std::net::SocketAddr,
    engine: &SqlEngine,
) -> Result<(), ServerError> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    let superuser = engine
        .role(BOOTSTRAP_SUPERUSER)
        .map_err(|source| ServerError::OpenSql {
            dir: config.data_dir.clone(),
            source,
        })?;
    if superuser.is_some_and(|r| r.password.is_some()) {
        return Ok(());
    }
    Err(ServerError::RemoteWithoutPassword {
        listen: config.listen.clone(),
        addr,
    })
}

/// Accepts clients (and admin HTTP requests) until SIGTERM or SIGINT, handing each socket to
/// its own thread.
async fn accept_loop(
    config: &Config,
    addr: std::net::SocketAddr,
    shared: &Arc<Shared>,
    connections: &Arc<Connections>,
    admin: &Arc<AdminState>,
) -> Result<(), ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Listen { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let http = match config.http_addr()? {
        Some(http_addr) => {
            Some(
                TcpListener::bind(http_addr)
                    .await
                    .map_err(|source| ServerError::Listen {
                        addr: http_addr,
                        source,
                    })?,
            )
        }
        None => None,
    };
    // NB: dropped (the file removed) when the loop ends, before shutdown drains connections.
    let unix = match &config.unix_socket_dir {
        Some(dir) => Some(socket::bind_unix(dir, local.port())?),
        None => None,
    };
    let mut sigterm = signal(SignalKind::terminate()).map_err(ServerError::Runtime)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServerError::Runtime)?;
    tracing::info!(
        fsync = config.fsync,
        max_connections = config.max_connections,
        "data directory {}",
        config.data_dir.display()
    );
    if !config.fsync {
        tracing::warn!("fsync is OFF: acknowledged commits are not durable");
    }
    if let Some(h) = &http {
        let http_local = h
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "?".into());
        tracing::info!("admin HTTP listening on {http_local}");
    }
    tracing::info!("audit log {}", config.audit_log_path().display());
    // NB: tests/common/mod.rs waits for this line ("listening on ADDR").
    tracing::info!("listening on {local}");
    if let Some((_, file)) = &unix {
        tracing::info!("also listening on Unix socket {}", file.path().display());
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    shared.metrics.count_accepted();
                    match stream.into_std() {
                        Ok(s) => spawn_connection(ClientSocket::Tcp(s), shared, connections),
                        Err(e) => tracing::warn!(error = %e, "cannot set up an accepted socket"),
                    }
                }
                // NB: accept errors (EMFILE, aborted handshakes) are transient: log and go on.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            accepted = accept_unix(unix.as_ref().map(|(l, _)| l)) => match accepted {
                Ok(stream) => {
                    shared.metrics.count_accepted();
                    match stream.into_std() {
                        Ok(s) => spawn_connection(ClientSocket::Unix(s), shared, connections),
                        Err(e) => tracing::warn!(error = %e, "cannot set up an accepted socket"),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed on the Unix socket");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            accepted = accept_admin(http.as_ref()) => match accepted {
                Ok(stream) => spawn_admin(stream, admin),
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    Ok(())
}

/// The next admin connection; never resolves when there is no admin listener.
async fn accept_admin(listener: Option<&TcpListener>) -> std::io::Result<tokio::net::TcpStream> {
    match listener {
        Some(l) => l.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// The next Unix socket client; never resolves when there is no Unix socket.
async fn accept_unix(
    listener: Option<&tokio::net::UnixListener>,
) -> std::io::Result<tokio::net::UnixStream> {
    match listener {
        Some(l) => l.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// Serves one admin HTTP connection on its own thread.
fn spawn_admin(stream: tokio::net::TcpStream, admin: &Arc<AdminState>) {
    let stream = match stream.into_std().and_then(|s| {
        s.set_nonblocking(false)?;
        Ok(s)
    }) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot set up an admin socket");
            return;
        }
    };
    let admin = Arc::clone(admin);
    let spawned = std::thread::Builder::new()
        .name("gnomon-http".to_string())
        .spawn(move || http::serve(stream, admin));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start an admin thread");
    }
}

/// Starts the thread that serves one accepted client (or refuses it if there is no room).
fn spawn_connection(stream: ClientSocket, shared: &Arc<Shared>, connections: &Arc<Connections>) {
    let blocking = match &stream {
        ClientSocket::Tcp(s) => s.set_nonblocking(false),
        ClientSocket::Unix(s) => s.set_nonblocking(false),
    };
    if let Err(e) = blocking {
        tracing::warn!(error = %e, "cannot set up an accepted socket");
        return;
    }
    let stream = Arc::new(stream);
    let ticket = match connections.admit(Arc::clone(&stream)) {
        Ok(ticket) => ticket,
        Err(Refused::TooMany) => {
            connection::refuse(&stream, connection::too_many_clients());
            return;
        }
        Err(Refused::Closing) => return,
    };
    let shared = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("gnomon-conn".to_string())
        .stack_size(CONNECTION_STACK)
        .spawn(move || {
            // NB: the ticket is dropped last, after the thread's handles on the database.
            let ticket = ticket;
            connection::serve(stream, shared, ticket.connections());
        });
    // NB: on failure the closure (and with it the ticket and socket) is dropped: the client
    // sees the connection close.
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start a connection thread");
    }
}
