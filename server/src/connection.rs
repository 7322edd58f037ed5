//! One client connection: startup handshake, then the simple and extended query protocols.
//!
//! ```text
//!  socket ──read──> InBuf (64 KiB) ──decode──> FrontendMessage ──> Backend (Session, statements,
//!                                                                    │        portals)
//!                                                                    │ Session calls run on
//!                                                                    │ this connection's thread
//!  socket <──one write── flush (ReadyForQuery, Flush, COPY, FATAL, 64 KiB) <── Output
//! ```
//!
//! Invariants:
//! 1. Every client mistake becomes an ErrorResponse; only a broken frame (bad length, unknown
//!    message type) ends the connection, with a FATAL first, as PostgreSQL does.
//! 2. After an error in the extended protocol every message but Sync and Terminate is
//!    discarded; Sync always answers ReadyForQuery with the session's transaction status.
//! 3. A portal's result is computed once, on its first Execute; later Executes with a row
//!    limit page through the kept rows (PortalSuspended until the last page).
//! 4. ParameterStatus is sent before ReadyForQuery for every reported setting whose value
//!    changed since it was last reported (SET, RESET: the session's settings generation).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gnomon_sql::{
    Column, DataType, Outcome, Prepared, Session, SqlEngine, SqlError, TxnStatus, Value,
};

use crate::auth::{self, Verdict};
use crate::cancel::{CancelKey, CancelRegistry, CancelTarget};
use crate::codec::{
    self, Bind, ErrorFields, FieldDescription, FrontendMessage, Output, ProtocolError, ReadyStatus,
    StartupPacket, Target,
};
use crate::conns::{Connections, SessionSlot};
use crate::copy::{self, BadLine, CopySource, CopySpec, CopyStatement, LineSplitter};
use crate::hba::AccessRules;
use crate::metrics::{Metrics, StatementKind};
use crate::socket::ClientSocket;
use crate::tls::{Stream, TlsAcceptor};

/// Reported in ParameterStatus `server_version`: must start with the PostgreSQL major version
/// clients should assume (SQLAlchemy and drivers parse it).
pub const SERVER_VERSION: &str = concat!("15.0 (Gnomon ", env!("CARGO_PKG_VERSION"), ")");

/// Output is written to the socket once this much is buffered, even mid-result.
const FLUSH_THRESHOLD: usize = 64 * 1024;

/// Size of the input buffer: one read usually takes a whole pipelined batch of messages.
const READ_BUFFER: usize = 64 * 1024;

/// How long a client may take to send its startup packet (PostgreSQL's
/// `authentication_timeout` default).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings PostgreSQL 15 reports with ParameterStatus (GUC_REPORT), in its order, with the
/// value used when the session does not know the setting.
const REPORTED: [(&str, &str); 13] = [
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, MDY"),
    ("default_transaction_read_only", "off"),
    ("in_hot_standby", "off"),
    ("integer_datetimes", "on"),
    ("IntervalStyle", "postgres"),
    ("is_superuser", "on"),
    ("server_encoding", "UTF8"),
    ("server_version", SERVER_VERSION),
    ("session_authorization", ""),
    ("standard_conforming_strings", "on"),
    ("TimeZone", "UTC"),
];

/// What every connection shares.
pub struct Shared {
    /// The SQL engine sessions are opened on.
    pub engine: Arc<SqlEngine>,
    /// Cancel keys of live sessions.
    pub cancels: CancelRegistry,
    /// Statement, error and connection counters (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// Secret of this process for the mock SCRAM salts of unknown roles (`auth.rs`).
    pub mock_secret: [u8; 32],
    /// TLS certificate and key; None = SSLRequest is answered `N`.
    pub tls: Option<TlsAcceptor>,
    /// Who may log in how (`hba.rs`).
    pub access: AccessRules,
}

/// Why a connection ended abnormally (logged, never sent: the socket may be gone).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(#[from] ProtocolError),
}

/// Bytes read from the socket and not yet decoded: `buf[start..end]`.
struct InBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl InBuf {
    fn new() -> Self {
        InBuf {
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
        }
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Drops the first `n` available bytes (a decoded frame). Their bytes stay in place until
    /// the next `fill`, so a message decoded from them may borrow them until then.
    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// The next regular message, borrowing its strings and bytes from this buffer, or None if
    /// the peer closed first.
    fn read_message(
        &mut self,
        stream: &mut impl Read,
    ) -> Result<Option<FrontendMessage<'_>>, ConnError> {
        let Some((kind, body)) = self.next_frame(stream)? else {
            return Ok(None);
        };
        Ok(Some(codec::decode_message(kind, &self.buf[body])?))
    }

    /// The type byte and body position of the next frame, read from `stream` as far as it is
    /// not buffered yet, and consumed; None if the peer closed first.
    fn next_frame(
        &mut self,
        stream: &mut impl Read,
    ) -> Result<Option<(u8, Range<usize>)>, ConnError> {
        let head = match self.available().first_chunk::<5>() {
            // NB: the usual case once a round trip's messages have arrived in one read.
            Some(head) => *head,
            None => {
                if !self.fill(stream, 5)? {
                    return Ok(None);
                }
                let Some(head) = self.available().first_chunk::<5>() else {
                    return Ok(None);
                };
                *head
            }
        };
        let declared = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        let body = codec::body_len(declared, codec::MAX_MESSAGE)?;
        if self.end - self.start < 5 + body && !self.fill(stream, 5 + body)? {
            return Ok(None);
        }
        let at = self.start + 5;
        self.consume(5 + body);
        Ok(Some((head[0], at..at + body)))
    }

    /// Reads until `n` bytes are available; false if the peer closed first.
    ///
    /// NB: the buffer grows at most by doubling, so a client declaring a huge message must
    /// actually send the bytes before the server holds that much memory.
    fn fill(&mut self, stream: &mut impl Read, n: usize) -> io::Result<bool> {
        if self.start >= self.end {
            self.start = 0;
            self.end = 0;
            // NB: give back the memory of a huge message once it is decoded.
            if self.buf.len() > 16 * READ_BUFFER {
                self.buf = vec![0; READ_BUFFER];
            }
        }
        while self.end - self.start < n {
            if self.buf.len() - self.start < n {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if self.buf.len() < n {
                    let grown = n.min(self.buf.len().saturating_mul(2));
                    self.buf.resize(grown, 0);
                }
            }
            match stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(got) => self.end += got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// The connection with its input and output buffers.
pub(crate) struct Wire {
    /// The socket, for timeouts, the peer address and shutdown; I/O goes through `stream`.
    socket: Arc<ClientSocket>,
    /// The socket itself, or the TLS session over it after SSLRequest.
    stream: Stream,
    inbuf: InBuf,
    pub(crate) out: Output,
}

impl Wire {
    /// Whether the client negotiated TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// Next startup-phase packet, or None at end of stream.
    fn read_startup(&mut self) -> Result<Option<StartupPacket>, ConnError> {
        if !self.inbuf.fill(&mut self.stream, 4)? {
            return Ok(None);
        }
        let head = self.inbuf.available();
        let declared = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let body = codec::body_len(declared, codec::MAX_STARTUP_PACKET)?;
        if !self.inbuf.fill(&mut self.stream, 4 + body)? {
            return Ok(None);
        }
        let packet = codec::decode_startup(&self.inbuf.available()[4..4 + body]);
        self.inbuf.consume(4 + body);
        Ok(Some(packet?))
    }

    /// Next regular message (borrowing from the input buffer), or None at end of stream.
    pub(crate) fn read_message(&mut self) -> Result<Option<FrontendMessage<'_>>, ConnError> {
        self.inbuf.read_message(&mut self.stream)
    }

    /// Writes everything buffered: one write syscall per client round trip.
    pub(crate) fn flush(&mut self) -> Result<(), ConnError> {
        if self.out.pending() > 0 {
            let result = self.stream.write_all(self.out.bytes());
            self.out.clear();
            result?;
        }
        Ok(())
    }

    fn flush_if_full(&mut self) -> Result<(), ConnError> {
        if self.out.pending() >= FLUSH_THRESHOLD {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends a FATAL error and flushes; the caller then closes the connection.
    pub(crate) fn fatal(&mut self, e: ErrorFields) -> Result<(), ConnError> {
        self.out.error_response(&e);
        self.flush()
    }
}

/// Serves one client on the calling thread until it leaves, breaks the protocol, or the
/// server shuts down. `connections` is the registry the socket was admitted to.
pub fn serve(stream: Arc<ClientSocket>, shared: Arc<Shared>, connections: &Arc<Connections>) {
    // NB: small result messages must not wait for Nagle; errors here only cost latency.
    let _ = stream.set_nodelay();
    let peer = stream.origin();
    let mut wire = Wire {
        stream: Stream::Plain(Arc::clone(&stream)),
        socket: stream,
        inbuf: InBuf::new(),
        out: Output::default(),
    };
    if let Err(e) = run_connection(&mut wire, &shared, connections) {
        match e {
            ConnError::Io(_) => {}
            ConnError::Protocol(p) => {
                let _ = wire.fatal(ErrorFields::fatal("08P01", p.to_string()));
                tracing::info!(peer = ?peer, "connection closed: {p}");
            }
        }
    }
    wire.stream.close();
    let _ = wire.socket.shutdown(Shutdown::Write);
}

/// Refuses a client without serving it (too many connection threads): FATAL 53300.
pub fn refuse(mut stream: &ClientSocket, e: ErrorFields) {
    let mut out = Output::default();
    out.error_response(&e);
    // NB: best effort: a fresh socket's send buffer takes this small message at once.
    let _ = stream.write_all(out.bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

/// The FATAL 53300 PostgreSQL sends when `max_connections` sessions are open.
pub fn too_many_clients() -> ErrorFields {
    ErrorFields::fatal("53300", "sorry, too many clients already")
}

fn run_connection(
    wire: &mut Wire,
    shared: &Arc<Shared>,
    connections: &Arc<Connections>,
) -> Result<(), ConnError> {
    wire.socket.set_read_timeout(Some(STARTUP_TIMEOUT))?;
    // Like PostgreSQL: one SSLRequest, and a GSSENCRequest only before it (libpq may try GSS
    // first, then TLS); a repeated request is an unknown protocol version (FATAL 0A000).
    let (mut ssl_done, mut gss_done) = (false, false);
    let (version, params) = loop {
        let packet = wire.read_startup()?;
        let request = match packet {
            Some(StartupPacket::SslRequest) if !ssl_done => Some("SSL"),
            Some(StartupPacket::GssEncRequest) if !gss_done => Some("GSSAPI encryption"),
            _ => None,
        };
        if let Some(kind) = request {
            // CVE-2021-23214: bytes sent before our answer were not encrypted; a
            // man-in-the-middle could have injected them. Refuse before answering.
            if !wire.inbuf.available().is_empty() {
                let mut e = ErrorFields::fatal(
                    "08P01",
                    format!("received unencrypted data after {kind} request"),
                );
                e.detail = Some(
                    "This could be either a client-software bug or evidence of an attempted \
                     man-in-the-middle attack."
                        .into(),
                );
                wire.fatal(e)?;
                return Ok(());
            }
        }
        match packet {
            None => return Ok(()),
            Some(StartupPacket::SslRequest) if !ssl_done => {
                ssl_done = true;
                // NB: like PostgreSQL, no TLS over a Unix socket (it never leaves the machine).
                match shared.tls.as_ref().filter(|_| !wire.socket.is_unix()) {
                    Some(acceptor) => {
                        gss_done = true;
                        wire.out.raw_byte(b'S');
                        wire.flush()?;
                        match acceptor.accept(Arc::clone(&wire.socket)) {
                            Ok(stream) => wire.stream = stream,
                            Err(e) => {
                                tracing::info!(
                                    peer = ?wire.socket.origin(),
                                    "could not accept TLS connection: {e}"
                                );
                                return Ok(());
                            }
                        }
                    }
                    None => {
                        wire.out.raw_byte(b'N');
                        wire.flush()?;
                    }
                }
            }
            Some(StartupPacket::GssEncRequest) if !gss_done => {
                gss_done = true;
                wire.out.raw_byte(b'N');
                wire.flush()?;
            }
            Some(StartupPacket::SslRequest) | Some(StartupPacket::GssEncRequest) => {
                let code = if matches!(packet, Some(StartupPacket::SslRequest)) {
                    codec::SSL_REQUEST_CODE
                } else {
                    codec::GSSENC_REQUEST_CODE
                };
                let e = ErrorFields::fatal(
                    "0A000",
                    format!(
                        "unsupported frontend protocol {}.{}: server supports 3.0 to 3.0",
                        code >> 16,
                        code & 0xffff
                    ),
                );
                wire.fatal(e)?;
                return Ok(());
            }
            Some(StartupPacket::Cancel { pid, secret }) => {
                shared.cancels.cancel(CancelKey { pid, secret });
                return Ok(());
            }
            Some(StartupPacket::Startup { version, params }) => break (version, params),
        }
    };
    let Some(slot) = connections.open_session() else {
        wire.fatal(too_many_clients())?;
        return Ok(());
    };
    let Some(mut backend) = startup(wire, shared, version, params, slot)? else {
        return Ok(());
    };
    backend.message_loop(wire, connections)
}

/// Checks the startup packet, opens the session and sends the greeting; None = refused.
fn startup(
    wire: &mut Wire,
    shared: &Arc<Shared>,
    version: i32,
    params: Vec<(String, String)>,
    slot: SessionSlot,
) -> Result<Option<Backend>, ConnError> {
    let major = version >> 16;
    let minor = version & 0xffff;
    if major != 3 {
        let e = ErrorFields::fatal(
            "0A000",
            format!("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0"),
        );
        wire.fatal(e)?;
        return Ok(None);
    }
    let unsupported: Vec<String> = params
        .iter()
        .filter(|(k, _)| k.starts_with("_pq_."))
        .map(|(k, _)| k.clone())
        .collect();
    if minor > 0 || !unsupported.is_empty() {
        wire.out.negotiate_protocol_version(0, &unsupported);
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let Some(user) = get("user").filter(|u| !u.is_empty()) else {
        let e = ErrorFields::fatal(
            "28000",
            "no PostgreSQL user name specified in startup packet",
        );
        wire.fatal(e)?;
        return Ok(None);
    };
    let database = get("database")
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| user.clone());
    let peer = wire.socket.origin();
    if let Verdict::Refused = auth::authenticate(wire, shared, &user, &database, peer)? {
        return Ok(None);
    }
    // NB: the startup timeout covers authentication too (PostgreSQL's authentication_timeout).
    wire.socket.set_read_timeout(None)?;
    if !shared.engine.database_exists(&database) {
        let e = ErrorFields::fatal("3D000", format!("database \"{database}\" does not exist"));
        wire.fatal(e)?;
        return Ok(None);
    }
    let engine = Arc::clone(&shared.engine);
    let opened = catch_unwind(AssertUnwindSafe(|| Session::new(engine, &user, &database)));
    let session = match opened {
        Err(_) => {
            fatal_internal(wire)?;
            return Ok(None);
        }
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let mut fields = sql_error_fields(&e);
            fields.severity = "FATAL";
            wire.fatal(fields)?;
            return Ok(None);
        }
    };
    let (cancel_key, cancel_target) = shared.cancels.register(session.cancel_handle());
    let mut backend = Backend {
        metrics: Arc::clone(&shared.metrics),
        _slot: slot,
        session,
        _registration: Registration {
            shared: Arc::clone(shared),
            key: cancel_key,
        },
        cancel_target,
        user,
        startup_settings: HashMap::new(),
        reported: HashMap::new(),
        statements: NameMap::default(),
        portals: NameMap::default(),
        skip_until_sync: false,
        reported_generation: 0,
    };
    backend.apply_startup_settings(&params);
    wire.out.authentication_ok();
    for (name, _) in REPORTED {
        let value = backend.current_setting(name);
        wire.out.parameter_status(name, &value);
        backend.reported.insert(name, value);
    }
    backend.reported_generation = backend.session.settings_generation();
    wire.out.backend_key_data(cancel_key.pid, cancel_key.secret);
    wire.out.ready_for_query(ReadyStatus::Idle);
    wire.flush()?;
    Ok(Some(backend))
}

/// A session's entry in the cancel registry, removed when dropped (even by a panic).
struct Registration {
    shared: Arc<Shared>,
    key: CancelKey,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.cancels.remove(self.key);
    }
}

/// How a COPY ended (its CommandComplete or ErrorResponse is sent; ReadyForQuery is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyEnd {
    Done,
    Failed,
    /// The SQL layer panicked: the connection ends with a FATAL.
    Panicked,
}

/// A statement created by Parse. `None` is the empty query (answered by EmptyQueryResponse),
/// unless it is a COPY.
struct Statement {
    prepared: Option<Arc<Prepared>>,
    /// A COPY FROM STDIN / TO STDOUT: run by Execute as in a simple query, with the copy
    /// sub-protocol in between (no parameters, no result columns).
    copy: Option<Arc<CopyStatement>>,
}

/// Where a portal is in its life (invariant 3).
enum PortalState {
    /// Bound, not executed yet.
    Ready,
    /// Executed; these rows are still to be sent; `tag` completes the last page.
    Streaming {
        rows: VecDeque<Vec<Value>>,
        tag: String,
    },
    /// Everything was sent; a further Execute answers with this tag (None: empty query).
    Done { tag: Option<String> },
    /// Its execution failed; it cannot be run again.
    Failed,
}

/// A statement bound to parameter values by Bind.
struct Portal {
    prepared: Option<Arc<Prepared>>,
    copy: Option<Arc<CopyStatement>>,
    params: Vec<Value>,
    result_formats: Vec<i16>,
    state: PortalState,
}

/// The protocol state of one session.
struct Backend {
    /// Server-wide counters this session records into.
    metrics: Arc<Metrics>,
    /// Held for the session's life: counts against `max_connections`.
    _slot: SessionSlot,
    session: Session,
    /// Keeps the session cancellable; unregisters its key however the connection ends.
    _registration: Registration,
    cancel_target: Arc<CancelTarget>,
    user: String,
    /// Values from the startup packet, shown when the session does not know the setting.
    startup_settings: HashMap<String, String>,
    /// Last value sent in ParameterStatus per reported setting.
    reported: HashMap<&'static str, String>,
    statements: NameMap<Statement>,
    portals: NameMap<Portal>,
    skip_until_sync: bool,
    /// The session's settings generation when `reported` was last brought up to date
    /// (invariant 4).
    reported_generation: u64,
}

impl Backend {
    /// Runs a Session call, cancellable by CancelRequest.
    ///
    /// NB: a panic inside the sql layer is contained here and becomes an internal error; the
    /// caller closes the connection because the session's state is then unknown.
    fn run<T>(&mut self, call: impl FnOnce(&mut Session) -> T) -> Result<T, Panicked> {
        self.cancel_target.begin_statement();
        let session = &mut self.session;
        let result = catch_unwind(AssertUnwindSafe(|| call(session)));
        self.cancel_target.end_statement();
        result.map_err(|_| Panicked)
    }

    fn apply_startup_settings(&mut self, params: &[(String, String)]) {
        let mut settings: Vec<(String, String)> = Vec::new();
        for (name, value) in params {
            match name.as_str() {
                "user" | "database" | "replication" => {}
                "options" => settings.extend(parse_options(value)),
                _ if name.starts_with("_pq_.") => {}
                _ => settings.push((name.clone(), value.clone())),
            }
        }
        for (name, value) in settings {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                continue;
            }
            let sql = format!("SET {name} = '{}'", value.replace('\'', "''"));
            // NB: settings the sql layer does not know are ignored rather than refused.
            let _ = self.run(|s| {
                let _ = s.execute_simple(&sql);
                s.take_notices()
            });
            self.startup_settings
                .insert(name.to_ascii_lowercase(), value);
        }
    }

    /// The value to report for `name` (one of [`REPORTED`]).
    fn current_setting(&self, name: &str) -> String {
        match name {
            "server_version" => return SERVER_VERSION.to_string(),
            "server_encoding" => return "UTF8".to_string(),
            "integer_datetimes" => return "on".to_string(),
            "in_hot_standby" => return "off".to_string(),
            "is_superuser" => return "on".to_string(),
            "session_authorization" => return self.user.clone(),
            _ => {}
        }
        let lower = name.to_ascii_lowercase();
        self.session
            .setting(name)
            .or_else(|| self.session.setting(&lower))
            .or_else(|| self.startup_settings.get(&lower).cloned())
            .or_else(|| {
                REPORTED
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, d)| d.to_string())
            })
            .unwrap_or_default()
    }

    /// Sends the notices the session raised since the last call.
    fn send_notices(&mut self, out: &mut Output) {
        for n in self.session.take_notices() {
            out.notice_response(&notice_fields(&n));
        }
    }

    /// Sends ParameterStatus for every reported setting that changed (invariant 4).
    ///
    /// NB: the comparison runs only when the session's settings generation moved (a SET or
    /// RESET ran), so a round trip of queries, DML or transaction control skips it.
    fn report_changed_settings(&mut self, out: &mut Output) {
        let generation = self.session.settings_generation();
        if generation == self.reported_generation {
            return;
        }
        self.reported_generation = generation;
        for (name, _) in REPORTED {
            let value = self.current_setting(name);
            if self.reported.get(name) != Some(&value) {
                out.parameter_status(name, &value);
                self.reported.insert(name, value);
            }
        }
    }

    fn ready_status(&self) -> ReadyStatus {
        match self.session.transaction_status() {
            TxnStatus::Idle => ReadyStatus::Idle,
            TxnStatus::InBlock => ReadyStatus::InBlock,
            TxnStatus::Failed => ReadyStatus::Failed,
        }
    }

    /// Ends a request cycle: settings, ReadyForQuery, flush. Portals die with their transaction.
    fn ready(&mut self, wire: &mut Wire) -> Result<(), ConnError> {
        let status = self.ready_status();
        if status == ReadyStatus::Idle {
            self.portals.clear();
        }
        self.send_notices(&mut wire.out);
        self.report_changed_settings(&mut wire.out);
        wire.out.ready_for_query(status);
        wire.flush()
    }

    fn message_loop(
        &mut self,
        wire: &mut Wire,
        connections: &Connections,
    ) -> Result<(), ConnError> {
        loop {
            // NB: the message borrows the input buffer only, so the handlers below may write
            // to `wire.out`; those that need the whole wire copy what they keep first.
            let Some(message) = wire.inbuf.read_message(&mut wire.stream)? else {
                // NB: shutdown cuts the socket's read side to wake this thread (conns.rs).
                if connections.is_closing() {
                    let e = ErrorFields::fatal(
                        "57P01",
                        "terminating connection due to administrator command",
                    );
                    wire.fatal(e)?;
                }
                return Ok(());
            };
            if self.skip_until_sync
                && !matches!(message, FrontendMessage::Sync | FrontendMessage::Terminate)
            {
                continue;
            }
            let step = match message {
                FrontendMessage::Terminate => return Ok(()),
                FrontendMessage::Query(sql) => {
                    let sql = sql.to_owned();
                    self.simple_query(wire, &sql)?;
                    Ok(())
                }
                FrontendMessage::Parse {
                    name,
                    sql,
                    param_oids,
                } => self.parse(&mut wire.out, name, sql, &param_oids),
                FrontendMessage::Bind(bind) => self.bind(&mut wire.out, bind),
                FrontendMessage::Describe { target, name } => {
                    self.describe(&mut wire.out, target, name)
                }
                FrontendMessage::Execute { portal, max_rows } => {
                    // NB: the unnamed portal (the common case) costs no allocation here.
                    let portal = portal.to_owned();
                    self.execute(wire, &portal, max_rows)?
                }
                FrontendMessage::Close { target, name } => {
                    match target {
                        Target::Statement => self.statements.remove(name).map(|_| ()),
                        Target::Portal => self.portals.remove(name).map(|_| ()),
                    };
                    wire.out.close_complete();
                    Ok(())
                }
                FrontendMessage::Sync => {
                    self.skip_until_sync = false;
                    match self.run(|s| s.sync_result()) {
                        Err(Panicked) => return fatal_internal(wire),
                        // The implicit transaction's commit failed (e.g. 40001).
                        Ok(Err(e)) => {
                            self.metrics.count_error(e.code.code());
                            wire.out.error_response(&sql_error_fields(&e))
                        }
                        Ok(Ok(())) => {}
                    }
                    self.ready(wire)?;
                    Ok(())
                }
                FrontendMessage::Flush => {
                    wire.flush()?;
                    Ok(())
                }
                // NB: COPY messages outside a COPY are ignored, as PostgreSQL does.
                FrontendMessage::CopyData(_)
                | FrontendMessage::CopyDone
                | FrontendMessage::CopyFail(_) => Ok(()),
                FrontendMessage::Password(_) => Err(ErrorFields::error(
                    "08P01",
                    "unexpected password message: authentication is not in progress",
                )
                .into()),
            };
            match step {
                Ok(()) => {}
                Err(StepError::Client(e)) => {
                    self.metrics.count_error(&e.code);
                    wire.out.error_response(&e);
                    self.skip_until_sync = true;
                }
                Err(StepError::Panicked) => return fatal_internal(wire),
            }
            wire.flush_if_full()?;
        }
    }

    /// Simple query protocol: every statement's result, then ReadyForQuery.
    fn simple_query(&mut self, wire: &mut Wire, sql: &str) -> Result<(), ConnError> {
        // NB: PostgreSQL drops the unnamed statement and portal when a Query arrives.
        self.statements.remove("");
        self.portals.remove("");
        match copy::parse_copy(sql) {
            CopyStatement::NotCopy => {}
            CopyStatement::From(target) => {
                return match self.copy_from_stdin(wire, &target)? {
                    CopyEnd::Panicked => fatal_internal(wire),
                    _ => self.ready(wire),
                };
            }
            CopyStatement::To(spec) => {
                return match self.copy_to_stdout(wire, &spec)? {
                    CopyEnd::Panicked => fatal_internal(wire),
                    _ => self.ready(wire),
                };
            }
            CopyStatement::Unsupported(message) => {
                wire.out
                    .error_response(&ErrorFields::error("0A000", message));
                return self.ready(wire);
            }
        }
        let started = Instant::now();
        let Ok((results, notices)) = self.run(|s| {
            let results = s.execute_simple(sql);
            (results, s.take_notices())
        }) else {
            return fatal_internal(wire);
        };
        self.record_simple(started.elapsed(), sql, &results);
        // NB: notices come before the results they belong to; the sql layer reports them per
        // call, not per statement, so a multi-statement query gets them all up front.
        for n in &notices {
            wire.out.notice_response(&notice_fields(n));
        }
        if results.is_empty() {
            wire.out.empty_query();
        }
        for result in results {
            match result {
                Ok(Outcome::Rows { columns, rows, tag }) => {
                    wire.out.row_description(field_descriptions(&columns, &[]));
                    for row in &rows {
                        send_row(&mut wire.out, row, &[]);
                        wire.flush_if_full()?;
                    }
                    wire.out.command_complete(&tag);
                }
                Ok(Outcome::Command { tag }) => {
                    self.forget_deallocated(&tag, sql);
                    wire.out.command_complete(&tag);
                }
                Ok(Outcome::Empty) => wire.out.empty_query(),
                Err(e) => wire.out.error_response(&sql_error_fields(&e)),
            }
        }
        self.ready(wire)
    }

    /// COPY ... FROM STDIN: CopyInResponse, then CopyData until CopyDone or CopyFail, then
    /// CommandComplete or ErrorResponse (the caller sends ReadyForQuery, or waits for Sync in
    /// the extended protocol).
    ///
    /// Outside a transaction block the whole COPY is one transaction, as in PostgreSQL.
    fn copy_from_stdin(
        &mut self,
        wire: &mut Wire,
        target: &CopySpec,
    ) -> Result<CopyEnd, ConnError> {
        let implicit = self.session.transaction_status() == TxnStatus::Idle;
        let Ok(setup) = self.run(|s| {
            if implicit {
                first_error(s.execute_simple("BEGIN"))?;
            }
            prepare_copy_insert(s, target)
        }) else {
            return Ok(CopyEnd::Panicked);
        };
        let insert = match setup {
            Ok(insert) => insert,
            Err(e) => {
                if implicit {
                    let _ = self.run(|s| s.execute_simple("ROLLBACK"));
                }
                wire.out.error_response(&sql_error_fields(&e));
                return Ok(CopyEnd::Failed);
            }
        };
        wire.out.copy_in_response(insert.param_types().len());
        wire.flush()?;

        let mut lines = LineSplitter::new(&target.options);
        let columns = insert_column_names(insert.sql());
        // Lines waiting to be inserted: one statement per COPY_BATCH_LINES (clients such as
        // pgbench send one CopyData per line).
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut rows = 0u64;
        let mut line_no = 0u64;
        let mut failure: Option<ErrorFields> = None;
        let mut ended = false;
        loop {
            let Some(message) = wire.read_message()? else {
                return Ok(CopyEnd::Failed);
            };
            match message {
                FrontendMessage::CopyData(data) => pending.extend(lines.push(data)),
                FrontendMessage::CopyDone => {
                    ended = true;
                    pending.extend(lines.finish());
                }
                FrontendMessage::CopyFail(reason) => {
                    failure.get_or_insert_with(|| {
                        ErrorFields::error("57014", format!("COPY from stdin failed: {reason}"))
                    });
                    break;
                }
                // NB: Flush and Sync are ignored during COPY (protocol rule).
                FrontendMessage::Flush | FrontendMessage::Sync => {}
                _ => {
                    failure.get_or_insert_with(|| {
                        ErrorFields::error(
                            "08P01",
                            "unexpected message type during COPY from stdin",
                        )
                    });
                    break;
                }
            };
            if failure.is_some() {
                pending.clear();
            }
            if !pending.is_empty() && (ended || pending.len() >= COPY_BATCH_LINES) {
                let batch = std::mem::take(&mut pending);
                let inserted = self.run(|s| {
                    insert_copy_lines(
                        s,
                        &insert,
                        target,
                        &columns,
                        &batch,
                        &mut line_no,
                        &mut rows,
                    )
                });
                match inserted {
                    Err(Panicked) => return Ok(CopyEnd::Panicked),
                    Ok(Err(e)) => failure = Some(e),
                    Ok(Ok(())) => {}
                }
            }
            if ended {
                break;
            }
        }
        if !implicit && failure.is_some() {
            // A bad line the server found itself fails the surrounding block, as any error would.
            if self.run(|s| s.fail_transaction()).is_err() {
                return Ok(CopyEnd::Panicked);
            }
        }
        if implicit {
            let end = if failure.is_some() {
                "ROLLBACK"
            } else {
                "COMMIT"
            };
            match self.run(|s| first_error(s.execute_simple(end))) {
                Err(Panicked) => return Ok(CopyEnd::Panicked),
                Ok(Err(e)) => {
                    failure.get_or_insert_with(|| sql_error_fields(&e));
                }
                Ok(Ok(())) => {}
            }
        }
        self.metrics.count_statements(StatementKind::Insert, 1);
        let end = match failure {
            Some(_) => CopyEnd::Failed,
            None => CopyEnd::Done,
        };
        match failure {
            Some(e) => {
                self.metrics.count_error(&e.code);
                wire.out.error_response(&e)
            }
            None => wire.out.command_complete(&format!("COPY {rows}")),
        }
        Ok(end)
    }

    /// COPY ... TO STDOUT: runs the SELECT, then CopyOutResponse, a CopyData per row, CopyDone,
    /// CommandComplete (or an ErrorResponse; the caller sends ReadyForQuery).
    fn copy_to_stdout(&mut self, wire: &mut Wire, spec: &CopySpec) -> Result<CopyEnd, ConnError> {
        let select = match &spec.source {
            CopySource::Query(q) => q.clone(),
            CopySource::Table { table, columns } => format!(
                "SELECT {} FROM {table}",
                columns.as_ref().map_or("*".to_string(), |c| c.join(", "))
            ),
        };
        let Ok(results) = self.run(|s| s.execute_simple(&select)) else {
            return Ok(CopyEnd::Panicked);
        };
        let mut end = CopyEnd::Failed;
        match results.into_iter().last() {
            Some(Ok(Outcome::Rows { columns, rows, .. })) => {
                wire.out.copy_out_response(columns.len());
                if spec.options.header {
                    let names: Vec<Option<String>> =
                        columns.iter().map(|c| Some(c.name.clone())).collect();
                    wire.out
                        .copy_data(&copy::encode_record(&names, &spec.options));
                }
                for row in &rows {
                    let fields: Vec<Option<String>> = row.iter().map(|v| v.to_text()).collect();
                    wire.out
                        .copy_data(&copy::encode_record(&fields, &spec.options));
                    wire.flush_if_full()?;
                }
                wire.out.copy_done();
                wire.out.command_complete(&format!("COPY {}", rows.len()));
                end = CopyEnd::Done;
            }
            Some(Err(e)) => {
                self.metrics.count_error(e.code.code());
                wire.out.error_response(&sql_error_fields(&e));
            }
            _ => wire.out.error_response(&ErrorFields::error(
                "42601",
                "COPY query must have a RETURNING clause or return rows",
            )),
        }
        Ok(end)
    }

    /// Counts the statements of a simple-query message and its latency (one observation for
    /// the message, under the first statement's kind) and its error, if any.
    fn record_simple(&self, took: Duration, sql: &str, results: &[Result<Outcome, SqlError>]) {
        let mut first = None;
        for result in results {
            let kind = match result {
                Ok(Outcome::Rows { tag, .. }) | Ok(Outcome::Command { tag }) => {
                    StatementKind::of_tag(tag)
                }
                Ok(Outcome::Empty) => continue,
                Err(e) => {
                    self.metrics.count_error(e.code.code());
                    StatementKind::of_sql(sql)
                }
            };
            first.get_or_insert(kind);
            self.metrics.count_statements(kind, 1);
        }
        if let Some(kind) = first {
            self.metrics.observe_latency(kind, took);
        }
    }

    /// DEALLOCATE / DISCARD ALL also drop protocol-level prepared statements.
    fn forget_deallocated(&mut self, tag: &str, sql: &str) {
        match tag {
            "DEALLOCATE ALL" => self.statements.clear(),
            "DISCARD ALL" => {
                self.statements.clear();
                self.portals.clear();
            }
            // NB: the sql layer may tag `DEALLOCATE ALL` as plain `DEALLOCATE`: look at the text.
            "DEALLOCATE" => {
                for d in deallocated(sql) {
                    match d {
                        Deallocated::All => self.statements.clear(),
                        Deallocated::Named(name) => {
                            self.statements.remove(&name);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn parse(
        &mut self,
        out: &mut Output,
        name: &str,
        sql: &str,
        param_oids: &[u32],
    ) -> Result<(), StepError> {
        if !name.is_empty() && self.statements.contains_key(name) {
            return Err(ErrorFields::error(
                "42P05",
                format!("prepared statement \"{name}\" already exists"),
            )
            .into());
        }
        let copy = match copy::parse_copy(sql) {
            CopyStatement::NotCopy => None,
            CopyStatement::Unsupported(message) => {
                return Err(ErrorFields::error("0A000", message).into())
            }
            c => Some(Arc::new(c)),
        };
        let prepared = if copy.is_some() || is_empty_query(sql) {
            None
        } else {
            // NB: an OID we do not know is treated as "unspecified": the type is inferred.
            let declared: Vec<Option<DataType>> = param_oids
                .iter()
                .map(|&oid| {
                    if oid == 0 {
                        None
                    } else {
                        DataType::from_oid(oid)
                    }
                })
                .collect();
            let prepared = self
                .run(|s| s.prepare(sql, &declared))?
                .map_err(StepError::from)?;
            Some(Arc::new(prepared))
        };
        self.statements.insert(name, Statement { prepared, copy });
        out.parse_complete();
        Ok(())
    }

    fn bind(&mut self, out: &mut Output, bind: Bind<'_>) -> Result<(), StepError> {
        let Bind {
            portal,
            statement,
            param_formats,
            params,
            result_formats,
        } = bind;
        let Some(stmt) = self.statements.get(statement) else {
            return Err(ErrorFields::error("26000", missing_statement(statement)).into());
        };
        if !portal.is_empty() && self.portals.contains_key(portal) {
            return Err(
                ErrorFields::error("42P03", format!("portal \"{portal}\" already exists")).into(),
            );
        }
        let prepared = stmt.prepared.clone();
        let copy = stmt.copy.clone();
        let param_types: &[DataType] = prepared.as_ref().map_or(&[], |p| p.param_types());
        if params.len() != param_types.len() {
            return Err(ErrorFields::error(
                "08P01",
                format!(
                    "bind message supplies {} parameters, but prepared statement \"{}\" requires {}",
                    params.len(),
                    statement,
                    param_types.len()
                ),
            )
            .into());
        }
        if param_formats.len() > 1 && param_formats.len() != params.len() {
            return Err(ErrorFields::error(
                "08P01",
                format!(
                    "bind message has {} parameter formats but {} parameters",
                    param_formats.len(),
                    params.len()
                ),
            )
            .into());
        }
        check_format_codes(param_formats.iter())?;
        check_format_codes(result_formats.iter())?;
        let mut values = Vec::with_capacity(params.len());
        for (i, (raw, ty)) in params.iter().zip(param_types).enumerate() {
            let value = match raw {
                None => Value::Null,
                Some(bytes) if param_formats.format_of(i) == 1 => Value::from_binary(bytes, ty)?,
                Some(bytes) => {
                    let text = std::str::from_utf8(bytes).map_err(|_| {
                        ErrorFields::error("22021", "invalid byte sequence for encoding \"UTF8\"")
                    })?;
                    Value::from_text(text, ty)?
                }
            };
            values.push(value);
        }
        self.portals.insert(
            portal,
            Portal {
                prepared,
                copy,
                params: values,
                result_formats: result_formats.to_vec(),
                state: PortalState::Ready,
            },
        );
        out.bind_complete();
        Ok(())
    }

    fn describe(&mut self, out: &mut Output, target: Target, name: &str) -> Result<(), StepError> {
        match target {
            Target::Statement => {
                let Some(stmt) = self.statements.get(name) else {
                    return Err(ErrorFields::error("26000", missing_statement(name)).into());
                };
                match &stmt.prepared {
                    // The empty query and COPY: no parameters, no result columns.
                    None => {
                        out.parameter_description(&[]);
                        out.no_data();
                    }
                    Some(p) => {
                        let oids: Vec<u32> = p.param_types().iter().map(|t| t.oid()).collect();
                        out.parameter_description(&oids);
                        describe_columns(out, p.columns(), &[]);
                    }
                }
            }
            Target::Portal => {
                let Some(portal) = self.portals.get(name) else {
                    return Err(ErrorFields::error("34000", missing_portal(name)).into());
                };
                match &portal.prepared {
                    None => out.no_data(),
                    Some(p) => describe_columns(out, p.columns(), &portal.result_formats),
                }
            }
        }
        Ok(())
    }

    /// Execute of a COPY portal: the copy sub-protocol as in a simple query, but no
    /// ReadyForQuery (that waits for Sync); after a failure, messages up to Sync are skipped,
    /// as after any error in the extended protocol.
    fn execute_copy(
        &mut self,
        wire: &mut Wire,
        name: &str,
        copy: &CopyStatement,
    ) -> Result<Result<(), StepError>, ConnError> {
        let end = match copy {
            CopyStatement::From(target) => self.copy_from_stdin(wire, target)?,
            CopyStatement::To(spec) => self.copy_to_stdout(wire, spec)?,
            CopyStatement::NotCopy | CopyStatement::Unsupported(_) => {
                return Ok(Err(ErrorFields::error("XX000", "not a COPY portal").into()))
            }
        };
        if end == CopyEnd::Panicked {
            return Ok(Err(StepError::Panicked));
        }
        if end == CopyEnd::Failed {
            self.skip_until_sync = true;
            if let Some(p) = self.portals.get_mut(name) {
                p.state = PortalState::Failed;
            }
        }
        Ok(Ok(()))
    }

    fn execute(
        &mut self,
        wire: &mut Wire,
        name: &str,
        max_rows: i32,
    ) -> Result<Result<(), StepError>, ConnError> {
        let Some(portal) = self.portals.get_mut(name) else {
            return Ok(Err(ErrorFields::error("34000", missing_portal(name)).into()));
        };
        if let (PortalState::Ready, Some(copy)) = (&portal.state, portal.copy.clone()) {
            portal.state = PortalState::Done { tag: None };
            return self.execute_copy(wire, name, &copy);
        }
        if matches!(portal.state, PortalState::Ready) {
            let Some(prepared) = portal.prepared.clone() else {
                portal.state = PortalState::Done { tag: None };
                wire.out.empty_query();
                return Ok(Ok(()));
            };
            let params = std::mem::take(&mut portal.params);
            let started = Instant::now();
            let result = self.run(|s| s.execute_prepared(&prepared, params));
            let kind = match &result {
                Ok(Ok(Outcome::Rows { tag, .. })) | Ok(Ok(Outcome::Command { tag })) => {
                    StatementKind::of_tag(tag)
                }
                _ => StatementKind::of_sql(prepared.sql()),
            };
            self.metrics.count_statements(kind, 1);
            self.metrics.observe_latency(kind, started.elapsed());
            self.send_notices(&mut wire.out);
            let outcome = match result {
                Err(Panicked) => return Ok(Err(StepError::Panicked)),
                Ok(Err(e)) => {
                    if let Some(p) = self.portals.get_mut(name) {
                        p.state = PortalState::Failed;
                    }
                    return Ok(Err(e.into()));
                }
                Ok(Ok(outcome)) => outcome,
            };
            let state = match outcome {
                Outcome::Rows { rows, tag, .. } => PortalState::Streaming {
                    rows: rows.into(),
                    tag,
                },
                Outcome::Command { tag } => {
                    self.forget_deallocated(&tag, prepared.sql());
                    wire.out.command_complete(&tag);
                    PortalState::Done { tag: Some(tag) }
                }
                Outcome::Empty => {
                    wire.out.empty_query();
                    PortalState::Done { tag: None }
                }
            };
            let streaming = matches!(state, PortalState::Streaming { .. });
            if let Some(p) = self.portals.get_mut(name) {
                p.state = state;
            }
            // Commands and empty queries are answered above; only rows remain to be sent.
            // (If DISCARD ALL dropped the portal itself, there is nothing more either.)
            if !streaming {
                return Ok(Ok(()));
            }
        }
        let Some(portal) = self.portals.get_mut(name) else {
            return Ok(Ok(()));
        };
        match &mut portal.state {
            PortalState::Ready => {}
            // NB: as in PostgreSQL, a finished portal is not run again: a query reports zero
            // more rows, a command repeats its tag.
            PortalState::Done { tag } => match tag {
                Some(tag) if tag.starts_with("SELECT") => wire.out.command_complete("SELECT 0"),
                Some(tag) => wire.out.command_complete(tag),
                None => wire.out.empty_query(),
            },
            PortalState::Failed => {
                return Ok(Err(ErrorFields::error(
                    "55000",
                    format!("portal \"{name}\" cannot be run"),
                )
                .into()));
            }
            PortalState::Streaming { rows, tag } => {
                let limit = if max_rows > 0 {
                    max_rows as usize
                } else {
                    usize::MAX
                };
                let mut sent = 0usize;
                while sent < limit {
                    let Some(row) = rows.pop_front() else { break };
                    send_row(&mut wire.out, &row, &portal.result_formats);
                    sent += 1;
                    wire.flush_if_full()?;
                }
                if rows.is_empty() {
                    // NB: PostgreSQL's SELECT tag counts the rows of this Execute only; the sql
                    // layer's tag already does when the portal was not paged (the usual case).
                    let counted = |n: &str| n.strip_prefix(' ').map(str::parse::<usize>);
                    let tag = match tag.strip_prefix("SELECT") {
                        Some(n) if counted(n) != Some(Ok(sent)) => format!("SELECT {sent}"),
                        _ => std::mem::take(tag),
                    };
                    wire.out.command_complete(&tag);
                    portal.state = PortalState::Done { tag: Some(tag) };
                } else {
                    wire.out.portal_suspended();
                }
            }
        }
        Ok(Ok(()))
    }
}

/// Statements or portals by name. The unnamed one ("") has a slot of its own: drivers run most
/// statements through the unnamed portal (pgbench, pgjdbc, psycopg) and often the unnamed
/// statement, so the usual Bind / Describe / Execute neither hashes nor replaces a map entry.
/// Named ones are in a map with FNV-1a hashing (names are short and only hurt their own
/// session if crafted).
struct NameMap<V> {
    unnamed: Option<V>,
    named: HashMap<String, V, BuildHasherDefault<NameHasher>>,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap {
            unnamed: None,
            named: HashMap::default(),
        }
    }
}

impl<V> NameMap<V> {
    fn get(&self, name: &str) -> Option<&V> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name)
        }
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        if name.is_empty() {
            self.unnamed.as_mut()
        } else {
            self.named.get_mut(name)
        }
    }

    fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`, dropping what it held.
    fn insert(&mut self, name: &str, value: V) {
        if name.is_empty() {
            self.unnamed = Some(value);
        } else {
            self.named.insert(name.to_owned(), value);
        }
    }

    fn remove(&mut self, name: &str) -> Option<V> {
        if name.is_empty() {
            self.unnamed.take()
        } else {
            self.named.remove(name)
        }
    }

    fn clear(&mut self) {
        self.unnamed = None;
        self.named.clear();
    }
}

/// FNV-1a, 64 bit.
struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The first error among a simple query's results.
fn first_error(results: Vec<Result<Outcome, SqlError>>) -> Result<(), SqlError> {
    results.into_iter().try_for_each(|r| r.map(|_| ()))
}

/// Prepares `INSERT INTO table (columns) VALUES ($1, ...)` for a COPY target; without a column
/// list, the table's columns come from describing `SELECT * FROM table`.
fn prepare_copy_insert(session: &mut Session, spec: &CopySpec) -> Result<Prepared, SqlError> {
    let CopySource::Table { table, columns } = &spec.source else {
        return Err(SqlError::new(
            gnomon_sql::SqlState::FEATURE_NOT_SUPPORTED,
            "COPY (query) FROM is not possible",
        ));
    };
    let target = CopyTarget { table, columns };
    let columns = match &target.columns {
        Some(columns) => columns.clone(),
        None => {
            let select = session.prepare(&format!("SELECT * FROM {}", target.table), &[])?;
            select
                .columns()
                .iter()
                .map(|c| format!("\"{}\"", c.name.replace('"', "\"\"")))
                .collect()
        }
    };
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        target.table,
        columns.join(", "),
        placeholders.join(", ")
    );
    session.prepare(&sql, &vec![None; columns.len()])
}

/// A COPY FROM target table and its column list as written.
struct CopyTarget<'a> {
    table: &'a String,
    columns: &'a Option<Vec<String>>,
}

/// Lines of a COPY FROM inserted by one statement.
const COPY_BATCH_LINES: usize = 1024;

/// Inserts decoded COPY records, as one statement; `line_no` counts the records read (the
/// header too, as PostgreSQL counts lines), `rows` the inserted ones. A bad record fails with
/// PostgreSQL's error and the context `COPY t, line N`; the records before it are inserted
/// first, so the error reported is the first line's, as in PostgreSQL.
fn insert_copy_lines(
    session: &mut Session,
    insert: &Prepared,
    spec: &CopySpec,
    columns: &[String],
    lines: &[Vec<u8>],
    line_no: &mut u64,
    rows: &mut u64,
) -> Result<(), ErrorFields> {
    let mut batch: Vec<Vec<Value>> = Vec::with_capacity(lines.len());
    let mut batch_lines: Vec<u64> = Vec::with_capacity(lines.len());
    let decoded = decode_copy_lines(insert, spec, columns, lines, line_no, &mut |n, values| {
        batch.push(values);
        batch_lines.push(n);
    });
    if !batch.is_empty() {
        match session.execute_prepared_rows(insert, &batch) {
            Ok(n) => *rows += n,
            Err((i, e)) => {
                let mut f = sql_error_fields(&e);
                let n = batch_lines.get(i).copied().unwrap_or(*line_no);
                f.context = Some(format!("COPY {}, line {n}", spec.table_name()).into());
                return Err(f);
            }
        }
    }
    decoded
}

/// Decodes COPY records into parameter rows for `insert`, handing each to `row` with its line
/// number; stops at the first bad record with its error.
fn decode_copy_lines(
    insert: &Prepared,
    spec: &CopySpec,
    columns: &[String],
    lines: &[Vec<u8>],
    line_no: &mut u64,
    row: &mut dyn FnMut(u64, Vec<Value>),
) -> Result<(), ErrorFields> {
    let types = insert.param_types();
    for line in lines {
        *line_no += 1;
        let context = |extra: &str| format!("COPY {}, line {line_no}{extra}", spec.table_name());
        if *line_no == 1 && spec.options.header {
            continue;
        }
        let fields = match copy::decode_record_borrowed(line, &spec.options) {
            Ok(Some(fields)) => fields,
            Ok(None) => continue, // `\.` end marker
            Err(BadLine(why)) => {
                let mut e = ErrorFields::error("22P04", why);
                e.context = Some(context("").into());
                return Err(e);
            }
        };
        if fields.len() != types.len() {
            let message = if fields.len() < types.len() {
                format!(
                    "missing data for column \"{}\"",
                    columns.get(fields.len()).map_or("?", |c| c.as_str())
                )
            } else {
                "extra data after last expected column".to_string()
            };
            let mut e = ErrorFields::error("22P04", message);
            e.context = Some(context("").into());
            return Err(e);
        }
        let mut values = Vec::with_capacity(fields.len());
        for (j, (field, ty)) in fields.iter().zip(types).enumerate() {
            values.push(match field {
                None => Value::Null,
                Some(text) => Value::from_text(text, ty).map_err(|e| {
                    let mut f = sql_error_fields(&e);
                    f.context = Some(
                        context(&format!(
                            ", column {}: \"{}\"",
                            columns.get(j).map_or("?", |c| c.as_str()),
                            text
                        ))
                        .into(),
                    );
                    f
                })?,
            });
        }
        row(*line_no, values);
    }
    Ok(())
}

/// The column names of the `INSERT INTO t (a, b) VALUES ...` built for a COPY (unquoted).
fn insert_column_names(sql: &str) -> Vec<String> {
    let Some(open) = sql.find('(') else {
        return vec![];
    };
    let Some(close) = sql[open..].find(')') else {
        return vec![];
    };
    sql[open + 1..open + close]
        .split(',')
        .map(|c| c.trim().trim_matches('"').replace("\"\"", "\""))
        .collect()
}

/// The sql layer panicked: the session's state is unknown.
#[derive(Debug)]
struct Panicked;

/// How one extended-protocol message failed.
enum StepError {
    /// The client's request was refused: ErrorResponse, then skip until Sync.
    Client(ErrorFields),
    /// The sql layer panicked: FATAL and close.
    Panicked,
}

impl From<ErrorFields> for StepError {
    fn from(e: ErrorFields) -> Self {
        StepError::Client(e)
    }
}

impl From<SqlError> for StepError {
    fn from(e: SqlError) -> Self {
        StepError::Client(sql_error_fields(&e))
    }
}

impl From<Panicked> for StepError {
    fn from(_: Panicked) -> Self {
        StepError::Panicked
    }
}

fn fatal_internal(wire: &mut Wire) -> Result<(), ConnError> {
    let e = ErrorFields::fatal(
        "XX000",
        "internal error in the SQL layer; closing the connection",
    );
    wire.fatal(e)
}

fn sql_error_fields(e: &SqlError) -> ErrorFields {
    ErrorFields {
        severity: "ERROR",
        code: e.code.code().to_string(),
        message: e.message.clone(),
        detail: e.detail.as_deref().map(Into::into),
        hint: e.hint.as_deref().map(Into::into),
        context: None,
    }
}

fn notice_fields(n: &gnomon_sql::Notice) -> ErrorFields {
    ErrorFields {
        severity: n.severity,
        code: n.code.to_string(),
        message: n.message.clone(),
        detail: None,
        hint: None,
        context: None,
    }
}

fn missing_statement(name: &str) -> String {
    if name.is_empty() {
        "unnamed prepared statement does not exist".to_string()
    } else {
        format!("prepared statement \"{name}\" does not exist")
    }
}

fn missing_portal(name: &str) -> String {
    format!("portal \"{name}\" does not exist")
}

/// Format code of column or parameter `i`: none = text, one = for all, else one each.
fn format_for(codes: &[i16], i: usize) -> i16 {
    match codes {
        [] => 0,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(0),
    }
}

fn check_format_codes(mut codes: impl Iterator<Item = i16>) -> Result<(), ErrorFields> {
    match codes.find(|&c| c != 0 && c != 1) {
        Some(bad) => Err(ErrorFields::error(
            "22023",
            format!("unsupported format code: {bad}"),
        )),
        None => Ok(()),
    }
}

fn field_descriptions<'a>(
    columns: &'a [Column],
    formats: &'a [i16],
) -> impl ExactSizeIterator<Item = FieldDescription<'a>> + 'a {
    columns.iter().enumerate().map(|(i, c)| FieldDescription {
        name: &c.name,
        table_oid: c.table_oid,
        column_id: c.column_id,
        type_oid: c.ty.oid(),
        type_len: c.ty.typlen(),
        type_modifier: c.ty.typmod(),
        format: format_for(formats, i),
    })
}

fn describe_columns(out: &mut Output, columns: &[Column], formats: &[i16]) {
    if columns.is_empty() {
        out.no_data();
    } else {
        out.row_description(field_descriptions(columns, formats));
    }
}

/// Encodes one result row in the requested formats, straight into the output buffer.
fn send_row(out: &mut Output, row: &[Value], formats: &[i16]) {
    out.data_row_with(row.len(), |w| {
        for (i, v) in row.iter().enumerate() {
            let binary = format_for(formats, i) == 1;
            // NB: the common types are written in place; the rest go through the sql layer's
            // own encoders (same bytes, one allocation each).
            match v {
                Value::Null => w.null(),
                Value::Text(s) => w.bytes(s.as_bytes()),
                Value::Int4(n) if binary => w.bytes(&n.to_be_bytes()),
                Value::Int8(n) if binary => w.bytes(&n.to_be_bytes()),
                Value::Int2(n) if binary => w.bytes(&n.to_be_bytes()),
                Value::Int4(n) => w.with(|b| put_decimal(b, i64::from(*n))),
                Value::Int8(n) => w.with(|b| put_decimal(b, *n)),
                Value::Int2(n) => w.with(|b| put_decimal(b, i64::from(*n))),
                Value::Bool(t) if binary => w.bytes(&[u8::from(*t)]),
                Value::Bool(t) => w.bytes(if *t { b"t" } else { b"f" }),
                other if binary => match other.to_binary() {
                    Some(bytes) => w.bytes(&bytes),
                    None => w.null(),
                },
                other => match other.to_text() {
                    Some(text) => w.bytes(text.as_bytes()),
                    None => w.null(),
                },
            }
        }
    });
}

/// Appends `n` in decimal, as `i64::to_string` would, without allocating.
fn put_decimal(buf: &mut bytes::BytesMut, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        // NB: `rest % 10` is below 10, so the cast is exact.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        buf.extend_from_slice(b"-");
    }
    buf.extend_from_slice(&digits[at..]);
}

/// True for a query string with no statement in it (only blanks and semicolons).
fn is_empty_query(sql: &str) -> bool {
    sql.chars().all(|c| c.is_whitespace() || c == ';')
}

/// `-c name=value` and `--name=value` pairs of the startup `options` parameter.
fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        let assignment = if word == "-c" {
            words.next()
        } else if let Some(rest) = word.strip_prefix("--") {
            Some(rest)
        } else {
            word.strip_prefix("-c")
        };
        if let Some((name, value)) = assignment.and_then(|a| a.split_once('=')) {
            out.push((name.replace('-', "_"), value.to_string()));
        }
    }
    out
}

/// What a `DEALLOCATE [PREPARE] name | ALL` statement drops.
#[derive(Debug, PartialEq, Eq)]
enum Deallocated {
    /// Every prepared statement.
    All,
    /// One statement (lower-cased unless it was quoted).
    Named(String),
}

/// The DEALLOCATE statements of a query string.
fn deallocated(sql: &str) -> Vec<Deallocated> {
    let mut found = Vec::new();
    for statement in sql.split(';') {
        let mut words = statement.split_whitespace();
        if !words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("deallocate"))
        {
            continue;
        }
        let mut name = words.next();
        if name.is_some_and(|w| w.eq_ignore_ascii_case("prepare")) {
            name = words.next();
        }
        match name {
            None => {}
            Some(n) if n.eq_ignore_ascii_case("all") => found.push(Deallocated::All),
            Some(n) => match n.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
                Some(quoted) => found.push(Deallocated::Named(quoted.to_string())),
                None => found.push(Deallocated::Named(n.to_ascii_lowercase())),
            },
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parameter_yields_settings() {
        assert_eq!(
            parse_options("-c search_path=x --statement-timeout=5 -cDateStyle=ISO"),
            vec![
                ("search_path".to_string(), "x".to_string()),
                ("statement_timeout".to_string(), "5".to_string()),
                ("DateStyle".to_string(), "ISO".to_string()),
            ]
        );
    }

    #[test]
    fn deallocate_statements_are_recognised() {
        assert_eq!(
            deallocated("DEALLOCATE s1; deallocate prepare \"S2\"; DEALLOCATE ALL"),
            vec![
                Deallocated::Named("s1".to_string()),
                Deallocated::Named("S2".to_string()),
                Deallocated::All,
            ]
        );
        assert!(deallocated("SELECT 1").is_empty());
    }

    #[test]
    fn the_unnamed_entry_lives_beside_the_named_ones() {
        let mut map: NameMap<u32> = NameMap::default();
        map.insert("", 1);
        map.insert("s1", 2);
        map.insert("", 3);
        assert_eq!(
            (map.get(""), map.get("s1"), map.get("s2")),
            (Some(&3), Some(&2), None)
        );
        if let Some(v) = map.get_mut("s1") {
            *v = 4;
        }
        assert_eq!(map.remove("s1"), Some(4));
        assert!(!map.contains_key("s1") && map.contains_key(""));
        map.insert("s1", 5);
        map.clear();
        assert!(!map.contains_key("") && !map.contains_key("s1"));
        assert_eq!(map.remove(""), None);
    }

    #[test]
    fn format_codes_apply_to_all_or_each() {
        assert_eq!(format_for(&[], 3), 0);
        assert_eq!(format_for(&[1], 3), 1);
        assert_eq!(format_for(&[0, 1], 1), 1);
        assert_eq!(format_for(&[0, 1], 5), 0);
        assert!(check_format_codes([0, 1].into_iter()).is_ok());
        assert!(check_format_codes([2].into_iter()).is_err());
    }

    #[test]
    fn rows_encode_as_the_sql_layers_text_and_binary_formats() {
        let row = vec![
            Value::Int4(-2_147_483_648),
            Value::Int8(i64::MIN),
            Value::Int8(0),
            Value::Int2(-7),
            Value::Bool(true),
            Value::Text("h\u{e9}".to_string()),
            Value::Null,
            Value::Float8(1.5),
        ];
        for formats in [vec![0i16], vec![1i16]] {
            let mut fast = Output::default();
            send_row(&mut fast, &row, &formats);
            let encoded: Vec<Option<Vec<u8>>> = row
                .iter()
                .map(|v| {
                    if formats[0] == 1 {
                        v.to_binary()
                    } else {
                        v.to_text().map(String::into_bytes)
                    }
                })
                .collect();
            let mut reference = Output::default();
            reference.data_row(encoded.iter().map(|v| v.as_deref()));
            assert_eq!(fast.take(), reference.take(), "formats {formats:?}");
        }
    }

    #[test]
    fn server_version_starts_with_the_postgres_major() {
        assert!(SERVER_VERSION.starts_with("15."));
    }
}
