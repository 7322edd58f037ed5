//! The admin HTTP listener of the real binary: `/metrics` moves with the statements clients
//! run, the clock API and the SQL clock functions share one durable set of clocks (also across
//! a kill -9), and malformed HTTP gets 4xx answers while the server stays up.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;
use serde_json::Value as Json;

fn start(dir: &std::path::Path) -> (Server, u16) {
    let server = Server::start_with(dir, &["--http", "127.0.0.1:0"]);
    let http = server
        .http_port
        .expect("the admin listener is announced in the log");
    (server, http)
}

/// Sends `raw` bytes as a request and returns (status, body) of the answer.
fn raw_request(port: u16, raw: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to admin listener");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // NB: the server may answer (and close) before reading everything we send.
    let _ = s.write_all(raw);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn request(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw_request(port, raw.as_bytes())
}

fn json_ok(port: u16, method: &str, path: &str, body: &str) -> Json {
    let (status, text) = request(port, method, path, body);
    assert_eq!(status, 200, "{method} {path} {body}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
}

/// The value of the sample `name{labels}` (exact text before the value) in a scrape.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing from /metrics:\n{scrape}"))
}

fn scrape(port: u16) -> String {
    let (status, text) = request(port, "GET", "/metrics", "");
    assert_eq!(status, 200);
    text
}

#[tokio::test]
async fn metrics_count_statements_latencies_errors_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = start(dir.path());
    let client = server.connect().await;
    let before = scrape(http);
    let sel =
        |s: &str, suffix: &str| sample(s, &format!("gnomon_statement_duration_seconds{suffix}"));

    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    for i in 0..5 {
        client
            .execute("INSERT INTO t VALUES ($1, 'x')", &[&i])
            .await
            .unwrap();
    }
    for _ in 0..3 {
        client.simple_query("SELECT * FROM t").await.unwrap();
    }
    client
        .query("SELECT v FROM t WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    let err = client
        .simple_query("SELECT * FROM missing")
        .await
        .unwrap_err();
    assert_eq!(common::sqlstate(&err), "42P01");

    let after = scrape(http);
    // NB: an error class appears once it has been counted: absent before means 0.
    let delta = |series: &str| {
        let was = if before.contains(series) {
            sample(&before, series)
        } else {
            0.0
        };
        sample(&after, series) - was
    };
    assert_eq!(delta("gnomon_statements_total{kind=\"ddl\"}"), 1.0);
    assert_eq!(delta("gnomon_statements_total{kind=\"insert\"}"), 5.0);
    // 3 simple + 1 extended + the failed one.
    assert_eq!(delta("gnomon_statements_total{kind=\"select\"}"), 5.0);
    assert_eq!(delta("gnomon_errors_total{class=\"42\"}"), 1.0);
    assert!(delta("gnomon_transactions_total{outcome=\"commit\"}") >= 6.0);
    assert!(delta("gnomon_wal_fsyncs_total") >= 1.0);
    // Overlapped syncs are a subset of the fsyncs (the series is there, 0 or more).
    assert!(
        sample(&after, "gnomon_wal_overlapped_syncs_total")
            <= sample(&after, "gnomon_wal_fsyncs_total")
    );
    assert!(delta("gnomon_wal_records_total") >= 6.0);
    assert_eq!(sample(&after, "gnomon_connections"), 1.0);

    // The histogram: cumulative buckets, +Inf equal to the count, one observation per
    // statement here, and a positive sum.
    let count = sel(&after, "_count{kind=\"select\"}");
    assert_eq!(count - sel(&before, "_count{kind=\"select\"}"), 5.0);
    assert_eq!(sel(&after, "_bucket{kind=\"select\",le=\"+Inf\"}"), count);
    let mut last = 0.0;
    for le in ["0.0001", "0.001", "0.01", "0.1", "1", "10", "+Inf"] {
        let b = sel(&after, &format!("_bucket{{kind=\"select\",le=\"{le}\"}}"));
        assert!(b >= last, "bucket le={le} below the previous one");
        last = b;
    }
    assert!(sel(&after, "_sum{kind=\"select\"}") > 0.0);
    // Every family announces its type.
    for family in [
        "gnomon_statement_duration_seconds histogram",
        "gnomon_statements_total counter",
        "gnomon_hlc_max_offset_seconds gauge",
        "gnomon_wal_batch_records histogram",
        "gnomon_ssi_rw_conflicts_total counter",
        "gnomon_deadlocks_total counter",
    ] {
        assert!(after.contains(&format!("# TYPE {family}")), "{family}");
    }
}

#[tokio::test]
async fn clock_api_and_sql_functions_share_durable_clocks_across_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = start(dir.path());
    let client = server.connect().await;
    let sql_int = |rows: Vec<tokio_postgres::Row>| -> i64 { rows[0].get(0) };

    let ticked = json_ok(http, "POST", "/api/v1/lamport/tick", "")["lamport"]
        .as_i64()
        .unwrap();
    let current = sql_int(
        client
            .query("SELECT gnomon_lamport_current()", &[])
            .await
            .unwrap(),
    );
    assert_eq!(current, ticked);
    let synced = sql_int(
        client
            .query("SELECT gnomon_lamport_sync($1)", &[&100i64])
            .await
            .unwrap(),
    );
    assert_eq!(synced, 101);
    assert_eq!(
        json_ok(http, "POST", "/api/v1/lamport/sync", r#"{"received": 5}"#)["lamport"],
        102
    );
    assert_eq!(
        json_ok(http, "GET", "/api/v1/lamport/current", "")["lamport"],
        102
    );

    let vc: String = client
        .query_one(r#"SELECT gnomon_vclock_sync('{"node9": 4}')"#, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(vc, r#"{"node1":1,"node9":4}"#);
    let vc_http = json_ok(http, "POST", "/api/v1/vector-clock/tick", "")["vclock"].clone();
    assert_eq!(vc_http.to_string(), r#"{"node1":2,"node9":4}"#);
    let vc_sql: String = client
        .query_one("SELECT gnomon_vclock_current()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(vc_sql, vc_http.to_string());
    assert_eq!(
        json_ok(
            http,
            "POST",
            "/api/v1/vector-clock/sync",
            r#"{"received": {"node2": 1}}"#
        )["vclock"]
            .to_string(),
        r#"{"node1":3,"node2":1,"node9":4}"#
    );

    json_ok(
        http,
        "POST",
        "/api/v1/version/increment",
        r#"{"node": "replica-a"}"#,
    );
    let v: String = client
        .query_one("SELECT gnomon_version_increment()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, r#"{"node1":1,"replica-a":1}"#);
    assert_eq!(
        json_ok(http, "GET", "/api/v1/version/current", "")["version"].to_string(),
        v
    );
    assert_eq!(
        json_ok(
            http,
            "POST",
            "/api/v1/version/merge",
            r#"{"a": {"x": 1, "y": 5}, "b": {"x": 3}}"#
        )["version"]
            .to_string(),
        r#"{"x":3,"y":5}"#
    );

    // compare: query string (GET) and JSON body agree with SQL.
    let a = r#"{"n1":1,"n2":0}"#;
    let b = r#"{"n1":0,"n2":1}"#;
    let enc = |s: &str| s.bytes().map(|c| format!("%{c:02X}")).collect::<String>();
    let path = format!("/api/v1/vector-clock/compare?a={}&b={}", enc(a), enc(b));
    assert_eq!(json_ok(http, "GET", &path, "")["result"], "CONCURRENT");
    let body = format!(r#"{{"a": {a}, "b": {{"n1": 2, "n2": 1}}}}"#);
    assert_eq!(
        json_ok(http, "POST", "/api/v1/vector-clock/compare", &body)["result"],
        "BEFORE"
    );
    let sql_cmp: String = client
        .query_one("SELECT gnomon_vclock_compare($1, $2)", &[&a, &b])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sql_cmp, "CONCURRENT");

    // kill -9: every value returned above was durable before it was returned.
    drop(client);
    server.kill9();
    let (server, http) = start(dir.path());
    assert_eq!(
        json_ok(http, "GET", "/api/v1/lamport/current", "")["lamport"],
        102
    );
    assert_eq!(
        json_ok(http, "GET", "/api/v1/vector-clock/current", "")["vclock"].to_string(),
        r#"{"node1":3,"node2":1,"node9":4}"#
    );
    let client = server.connect().await;
    let v: String = client
        .query_one("SELECT gnomon_version_current()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, r#"{"node1":1,"replica-a":1}"#);
    let next = sql_int(
        client
            .query("SELECT gnomon_lamport_tick()", &[])
            .await
            .unwrap(),
    );
    assert_eq!(next, 103);
}

#[tokio::test]
async fn malformed_http_gets_4xx_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = start(dir.path());
    let huge_header = format!(
        "GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (b"GET /health\r\n\r\n".to_vec(), 400),
        (b"GET health HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"get /health HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"GET /health HTTP/2.0\r\n\r\n".to_vec(), 505),
        (
            b"GET /health HTTP/1.1\r\nno colon here\r\n\r\n".to_vec(),
            400,
        ),
        (b"GET /health HTTP/1.1\r\n\xff\xfe: x\r\n\r\n".to_vec(), 400),
        (
            b"GET /health HTTP/1.1\r\nContent-Length: -1\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"GET /health HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"POST /api/v1/lamport/sync HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"rec".to_vec(),
            400,
        ),
        (
            b"POST /api/v1/lamport/sync HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n".to_vec(),
            413,
        ),
        (
            b"POST /api/v1/lamport/sync HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            501,
        ),
        (b"GET /health HTTP/1.1\r\nHost: x".to_vec(), 400),
        (huge_header.into_bytes(), 413),
    ];
    for (raw, want) in &cases {
        let (status, body) = raw_request(http, raw);
        assert_eq!(
            status,
            *want,
            "{:?} -> {body}",
            String::from_utf8_lossy(&raw[..raw.len().min(80)])
        );
    }
    // Well-formed requests the API refuses.
    for (method, path, body, want) in [
        ("GET", "/nope", "", 404),
        ("DELETE", "/metrics", "", 405),
        ("GET", "/api/v1/lamport/tick", "", 405),
        ("POST", "/api/v1/lamport/sync", "not json", 400),
        ("POST", "/api/v1/lamport/sync", "[1]", 400),
        ("POST", "/api/v1/lamport/sync", r#"{"received": -3}"#, 400),
        (
            "POST",
            "/api/v1/lamport/sync",
            r#"{"received": 9223372036854775807}"#,
            400,
        ),
        (
            "POST",
            "/api/v1/vector-clock/sync",
            r#"{"received": {"a": "x"}}"#,
            400,
        ),
        ("POST", "/api/v1/vector-clock/sync", r#"{}"#, 400),
        (
            "GET",
            "/api/v1/vector-clock/compare?a=%zz&b=%7B%7D",
            "",
            400,
        ),
        ("POST", "/api/v1/version/increment", r#"{"node": ""}"#, 400),
        ("GET", "/api/v1/transaction/status/x1", "", 400),
        ("GET", "/api/v1/transaction/status/1", "", 404),
    ] {
        let (status, text) = request(http, method, path, body);
        assert_eq!(status, want, "{method} {path} {body}: {text}");
        if want == 400 {
            let parsed: Json = serde_json::from_str(&text).expect("errors are JSON");
            assert!(parsed["error"].is_string(), "{text}");
        }
    }
    // A client that connects and says nothing does not hold anything up.
    let _silent = TcpStream::connect(("127.0.0.1", http)).unwrap();
    assert_eq!(json_ok(http, "GET", "/health", "")["status"], "ok");
    // None of the refused requests moved a clock; SQL still works.
    assert_eq!(
        json_ok(http, "GET", "/api/v1/lamport/current", "")["lamport"],
        0
    );
    let client = server.connect().await;
    let row = client.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}
