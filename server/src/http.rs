//! The admin HTTP listener (`--http HOST:PORT`): Prometheus `/metrics`, `/health`, and the
//! REST API of the node's logical clocks. The API is documented in `docs/admin-http.md`.
//!
//! A deliberately small HTTP/1.1 server: one request per connection (`Connection: close`),
//! `Content-Length` bodies only, every answer JSON except `/metrics`. Like the PostgreSQL
//! connections, each accepted socket is served by its own thread with blocking I/O.
//!
//! Invariants:
//! 1. Nothing a client sends can panic the server or hold it: the request head is at most
//!    [`MAX_HEAD`] bytes, a body at most [`MAX_BODY`], reads and writes time out after
//!    [`IO_TIMEOUT`], and at most [`MAX_ACTIVE`] requests are served at once (more get 503).
//! 2. A request that is not well-formed HTTP/1.x gets 400 (413 when too large, 501 for
//!    chunked bodies), an unknown path 404, a wrong method 405 with `Allow`.
//! 3. Clock operations are the same calls as the SQL functions (`gnomon_mvcc::LogicalClocks`
//!    of the one `Db`), so both see and advance the same durable clocks.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gnomon_mvcc::{ClockValueError, Db, LogicalClockError, TxnId, VectorTime};
use serde_json::{json, Value as Json};

use crate::conns::Connections;
use crate::metrics::Metrics;

/// Largest request line plus headers.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Read and write timeout of an admin connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests served at once.
pub const MAX_ACTIVE: usize = 16;

/// What the admin endpoints read.
pub struct AdminState {
    /// The database (clocks, stats).
    pub db: Arc<Db>,
    /// The server's statement and connection counters.
    pub metrics: Arc<Metrics>,
    /// Open sessions.
    pub connections: Arc<Connections>,
    /// `max_connections`.
    pub max_connections: usize,
    /// Admin requests being served.
    pub active: AtomicUsize,
}

/// A parsed request.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    query: String,
    body: Vec<u8>,
}

/// An answer.
#[derive(Debug)]
struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
    allow: Option<&'static str>,
}

impl Response {
    fn json(status: u16, body: Json) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: format!("{body}\n"),
            allow: None,
        }
    }

    fn error(status: u16, message: impl Into<String>) -> Response {
        Response::json(status, json!({ "error": message.into() }))
    }
}

/// Serves one admin connection on the calling thread.
pub fn serve(mut stream: TcpStream, state: Arc<AdminState>) {
    let _guard = ActiveGuard::enter(&state);
    let response = if state.active.load(Ordering::Relaxed) > MAX_ACTIVE {
        Response::error(503, "too many admin requests at once")
    } else {
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        match read_request(&mut stream) {
            Ok(Some(request)) => route(&request, &state),
            Ok(None) => return,
            Err(bad) => bad,
        }
    };
    let reason = reason(response.status);
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    if let Some(allow) = response.allow {
        head.push_str(&format!("Allow: {allow}\r\n"));
    }
    head.push_str("\r\n");
    // NB: the client may be gone; nothing to do about a failed write.
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(response.body.as_bytes()));
    let _ = stream.shutdown(Shutdown::Write);
    // Drain what the client still sends so closing does not reset the connection before it
    // read the answer (bounded by the read timeout and a small budget).
    let mut sink = [0u8; 1024];
    let mut budget = MAX_HEAD + MAX_BODY;
    while budget > 0 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => budget = budget.saturating_sub(n),
        }
    }
}

/// Counts a request in `active` for its lifetime.
struct ActiveGuard<'a>(&'a AdminState);

impl<'a> ActiveGuard<'a> {
    fn enter(state: &'a AdminState) -> Self {
        state.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(state)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Reads one request. `Ok(None)`: the client closed without sending anything.
fn read_request(stream: &mut TcpStream) -> Result<Option<Request>, Response> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD {
            return Err(Response::error(413, "request head too large"));
        }
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) => return Err(Response::error(400, "incomplete request head")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(Response::error(408, "request not received in time")),
        }
    };
    if head_end > MAX_HEAD {
        return Err(Response::error(413, "request head too large"));
    }
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| Response::error(400, "request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Response::error(400, "malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Response::error(400, "malformed method"));
    }
    if !target.starts_with('/') {
        return Err(Response::error(
            400,
            "request target must be an absolute path",
        ));
    }
    match version {
        "HTTP/1.1" | "HTTP/1.0" => {}
        v if v.starts_with("HTTP/") => {
            return Err(Response::error(505, "only HTTP/1.0 and HTTP/1.1"))
        }
        _ => return Err(Response::error(400, "malformed HTTP version")),
    }
    let mut content_length: Option<usize> = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Response::error(400, "malformed header line"));
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(Response::error(400, "malformed header name"));
        }
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| Response::error(400, "invalid Content-Length"))?;
            if content_length.is_some_and(|old| old != n) {
                return Err(Response::error(400, "conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Response::error(
                501,
                "Transfer-Encoding is not supported; send Content-Length",
            ));
        }
    }
    let length = content_length.unwrap_or(0);
    if length > MAX_BODY {
        return Err(Response::error(413, "request body too large"));
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(Response::error(
                    400,
                    "request body shorter than Content-Length",
                ))
            }
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(Response::error(408, "request body not received in time")),
        }
    }
    // NB: bytes past Content-Length (a pipelined request) are ignored: one request per connection.
    body.truncate(length);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        body,
    }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Which handler a path has, and the methods it takes.
fn route(req: &Request, state: &AdminState) -> Response {
    let (allow, handler): (&'static str, fn(&Request, &AdminState) -> Response) =
        match req.path.as_str() {
            "/metrics" => ("GET", metrics),
            "/health" => ("GET", health),
            "/api/v1/lamport/current" => ("GET", lamport_current),
            "/api/v1/lamport/tick" => ("POST", lamport_tick),
            "/api/v1/lamport/sync" => ("POST", lamport_sync),
            "/api/v1/version/increment" => ("POST", version_increment),
            "/api/v1/version/current" => ("GET", version_current),
            "/api/v1/version/merge" => ("POST", version_merge),
            "/api/v1/vector-clock/tick" => ("POST", vclock_tick),
            "/api/v1/vector-clock/current" => ("GET", vclock_current),
            "/api/v1/vector-clock/sync" => ("POST", vclock_sync),
            "/api/v1/vector-clock/compare" => ("GET, POST", vclock_compare),
            p if p.starts_with(TXN_STATUS_PREFIX) => ("GET", transaction_status),
            _ => return Response::error(404, format!("no such endpoint: {}", req.path)),
        };
    if !allow.split(", ").any(|m| m == req.method) {
        let mut r = Response::error(405, format!("{} takes {allow}", req.path));
        r.allow = Some(allow);
        return r;
    }
    handler(req, state)
}

fn metrics(_req: &Request, state: &AdminState) -> Response {
    Response {
        status: 200,
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        body: state.metrics.render(
            &state.db.stats(),
            state.connections.sessions(),
            state.max_connections,
        ) + &crate::metrics::render_maintenance(&state.db.maintenance_stats()),
        allow: None,
    }
}

const TXN_STATUS_PREFIX: &str = "/api/v1/transaction/status/";

/// `GET /api/v1/transaction/status/{xid}`: the phase of a writing transaction that is live or
/// recently finished (`Db::txn_status`), in-doubt (prepared) ones included.
fn transaction_status(req: &Request, state: &AdminState) -> Response {
    let xid = &req.path[TXN_STATUS_PREFIX.len()..];
    let Ok(id) = xid.parse::<u64>() else {
        return Response::error(400, format!("transaction id {xid:?} is not a number"));
    };
    match state.db.txn_status(TxnId(id)) {
        Some(info) => Response::json(
            200,
            json!({
                "xid": info.id.0,
                "gid": info.gid,
                "status": info.status.as_str(),
                "started_us": info.started_us,
                "commit_ts": info.commit_ts.map(|ts| json!({
                    "physical_us": ts.physical_us,
                    "logical": ts.logical,
                    "node": ts.node,
                })),
            }),
        ),
        None => Response::error(
            404,
            format!(
                "transaction {id} is not known: read-only, never issued, or finished too long ago"
            ),
        ),
    }
}

fn health(_req: &Request, state: &AdminState) -> Response {
    Response::json(
        200,
        json!({ "status": "ok", "node": state.db.logical_clocks().own_name() }),
    )
}

/// The request body as a JSON object (an empty body is `{}`).
fn body_object(req: &Request) -> Result<serde_json::Map<String, Json>, Response> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Json>(&req.body) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(_) => Err(Response::error(400, "the body must be a JSON object")),
        Err(e) => Err(Response::error(400, format!("the body is not JSON: {e}"))),
    }
}

/// A vector given as a JSON object (or as its JSON text in a string).
fn vector_field(map: &serde_json::Map<String, Json>, name: &str) -> Result<VectorTime, Response> {
    let text = match map.get(name) {
        Some(Json::String(s)) => s.clone(),
        Some(v @ Json::Object(_)) => v.to_string(),
        Some(_) => {
            return Err(Response::error(
                400,
                format!("\"{name}\" must be a JSON object"),
            ))
        }
        None => return Err(Response::error(400, format!("missing field \"{name}\""))),
    };
    VectorTime::parse(&text).map_err(value_error)
}

fn value_error(e: ClockValueError) -> Response {
    Response::error(400, e.to_string())
}

fn clock_result(r: Result<Json, LogicalClockError>) -> Response {
    match r {
        Ok(body) => Response::json(200, body),
        Err(LogicalClockError::Value(e)) => value_error(e),
        Err(LogicalClockError::Storage(e)) => {
            tracing::error!(error = %e, "logical clock update failed");
            Response::error(500, e.to_string())
        }
    }
}

/// A vector as a JSON value (its text form is always valid JSON).
fn vector_json(v: &VectorTime) -> Json {
    serde_json::from_str(&v.to_json()).unwrap_or(Json::Null)
}

fn lamport_current(_req: &Request, state: &AdminState) -> Response {
    Response::json(
        200,
        json!({ "lamport": state.db.logical_clocks().lamport_current() }),
    )
}

fn lamport_tick(_req: &Request, state: &AdminState) -> Response {
    clock_result(
        state
            .db
            .logical_clocks()
            .lamport_tick()
            .map(|n| json!({ "lamport": n })),
    )
}

fn lamport_sync(req: &Request, state: &AdminState) -> Response {
    let map = match body_object(req) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let received = match map.get("received") {
        Some(v) => match v.as_u64() {
            Some(n) => n,
            None => return value_error(ClockValueError::OutOfRange),
        },
        None => return Response::error(400, "missing field \"received\""),
    };
    clock_result(
        state
            .db
            .logical_clocks()
            .lamport_sync(received)
            .map(|n| json!({ "lamport": n })),
    )
}

fn version_increment(req: &Request, state: &AdminState) -> Response {
    let map = match body_object(req) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let node = match map.get("node") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(s.as_str()),
        Some(_) => return Response::error(400, "\"node\" must be a string"),
    };
    clock_result(
        state
            .db
            .logical_clocks()
            .version_increment(node)
            .map(|v| json!({ "version": vector_json(&v) })),
    )
}

fn version_current(_req: &Request, state: &AdminState) -> Response {
    let v = state.db.logical_clocks().version_current();
    Response::json(200, json!({ "version": vector_json(&v) }))
}

fn version_merge(req: &Request, state: &AdminState) -> Response {
    let map = match body_object(req) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if map.contains_key("vector") {
        // Merge into this node's version vector.
        let v = match vector_field(&map, "vector") {
            Ok(v) => v,
            Err(r) => return r,
        };
        return clock_result(
            state
                .db
                .logical_clocks()
                .version_merge_into(&v)
                .map(|v| json!({ "version": vector_json(&v) })),
        );
    }
    let (a, b) = match (vector_field(&map, "a"), vector_field(&map, "b")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    match a.merge(&b) {
        Ok(v) => Response::json(200, json!({ "version": vector_json(&v) })),
        Err(e) => value_error(e),
    }
}

fn vclock_tick(_req: &Request, state: &AdminState) -> Response {
    clock_result(
        state
            .db
            .logical_clocks()
            .vclock_tick()
            .map(|v| json!({ "vclock": vector_json(&v) })),
    )
}

fn vclock_current(_req: &Request, state: &AdminState) -> Response {
    let v = state.db.logical_clocks().vclock_current();
    Response::json(200, json!({ "vclock": vector_json(&v) }))
}

fn vclock_sync(req: &Request, state: &AdminState) -> Response {
    let map = match body_object(req) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let received = match vector_field(&map, "received") {
        Ok(v) => v,
        Err(r) => return r,
    };
    clock_result(
        state
            .db
            .logical_clocks()
            .vclock_sync(&received)
            .map(|v| json!({ "vclock": vector_json(&v) })),
    )
}

/// `a` and `b` from the query string (`?a=<JSON>&b=<JSON>`, percent-encoded) or, when the query
/// string has neither, from a JSON body.
fn vclock_compare(req: &Request, _state: &AdminState) -> Response {
    let mut map = serde_json::Map::new();
    for pair in req.query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (percent_decode(k), percent_decode(v)) else {
            return Response::error(400, "malformed percent-encoding in the query string");
        };
        map.insert(k, Json::String(v));
    }
    if map.is_empty() {
        map = match body_object(req) {
            Ok(m) => m,
            Err(r) => return r,
        };
    }
    let (a, b) = match (vector_field(&map, "a"), vector_field(&map, "b")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    Response::json(200, json!({ "result": a.compare(&b).as_str() }))
}

/// Decodes `%XX` escapes and `+` (space); None on a bad escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(state: &AdminState, path: &str) -> (u16, Json) {
        let req = Request {
            method: "GET".into(),
            path: path.into(),
            query: String::new(),
            body: Vec::new(),
        };
        let r = route(&req, state);
        (r.status, serde_json::from_str(&r.body).unwrap())
    }

    #[test]
    fn transaction_status_reports_active_committed_and_unknown_ids() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(gnomon_mvcc::DbOptions {
            dir: dir.path().to_path_buf(),
            sync: gnomon_mvcc::SyncPolicy::OffUnsafeNoDurability,
            ..Default::default()
        })
        .unwrap();
        let state = AdminState {
            db: Arc::clone(&db),
            metrics: Arc::default(),
            connections: Connections::new(1, 2),
            max_connections: 1,
            active: AtomicUsize::new(0),
        };
        let mut t = db.begin(gnomon_mvcc::Isolation::ReadCommitted);
        t.put(b"k", bytes::Bytes::from_static(b"v")).unwrap();
        let id = t.id().0;
        let path = format!("{TXN_STATUS_PREFIX}{id}");
        let (status, body) = get(&state, &path);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "active");
        assert_eq!(body["xid"], id);
        let ts = t.commit().unwrap();
        let (_, body) = get(&state, &path);
        assert_eq!(body["status"], "committed");
        assert_eq!(body["commit_ts"]["physical_us"], ts.physical_us);
        assert_eq!(
            get(&state, &format!("{TXN_STATUS_PREFIX}{}", id + 1000)).0,
            404
        );
        assert_eq!(get(&state, &format!("{TXN_STATUS_PREFIX}abc")).0, 400);
        assert_eq!(get(&state, TXN_STATUS_PREFIX).0, 400);
    }

    #[test]
    fn percent_decoding_handles_escapes_and_refuses_bad_ones() {
        assert_eq!(
            percent_decode("%7B%22a%22%3A1%7D").as_deref(),
            Some("{\"a\":1}")
        );
        assert_eq!(percent_decode("a+b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
