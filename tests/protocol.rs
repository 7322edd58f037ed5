//! Raw wire-protocol checks against the real server, for what client libraries hide: the
//! startup greeting, ParameterStatus after SET, skip-until-Sync, malformed frames.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;

/// A backend message: type byte and body.
#[derive(Debug)]
struct Msg {
    kind: u8,
    body: Vec<u8>,
}

impl Msg {
    /// NUL-separated strings of the body (for S, C, E, N).
    fn strings(&self) -> Vec<String> {
        self.body
            .split(|&b| b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    /// Field `code` of an ErrorResponse/NoticeResponse.
    fn field(&self, code: char) -> Option<String> {
        self.strings()
            .into_iter()
            .find_map(|s| s.strip_prefix(code).map(str::to_string))
    }
}

struct Raw {
    stream: TcpStream,
}

impl Raw {
    fn connect(server: &Server) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Raw { stream }
    }

    /// A session of `gnomon` on database `database`, past its first ReadyForQuery.
    fn session_on(server: &Server, database: &str) -> Raw {
        let mut raw = Raw::connect(server);
        raw.startup("gnomon", database, &[]);
        let greeting = raw.until_ready();
        assert_eq!(
            greeting.last().map(|m| m.kind),
            Some(b'Z'),
            "startup: {greeting:?}"
        );
        raw
    }

    /// A session of `gnomon` on database `gnomon`, past its first ReadyForQuery.
    fn session(server: &Server) -> Raw {
        Raw::session_on(server, "gnomon")
    }

    fn send_untyped(&mut self, body: &[u8]) {
        let mut frame = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        self.stream.write_all(&frame).expect("write");
    }

    fn send(&mut self, kind: u8, body: &[u8]) {
        let mut frame = vec![kind];
        frame.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        frame.extend_from_slice(body);
        self.stream.write_all(&frame).expect("write");
    }

    fn startup(&mut self, user: &str, database: &str, extra: &[(&str, &str)]) {
        let mut body = 196_608i32.to_be_bytes().to_vec();
        for (k, v) in [("user", user), ("database", database)].iter().chain(extra) {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        self.send_untyped(&body);
    }

    fn recv(&mut self) -> Option<Msg> {
        let mut head = [0u8; 5];
        self.stream.read_exact(&mut head).ok()?;
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        self.stream.read_exact(&mut body).ok()?;
        Some(Msg {
            kind: head[0],
            body,
        })
    }

    /// Messages up to and including ReadyForQuery (or until the server closes).
    fn until_ready(&mut self) -> Vec<Msg> {
        let mut out = Vec::new();
        while let Some(m) = self.recv() {
            let done = m.kind == b'Z';
            out.push(m);
            if done {
                break;
            }
        }
        out
    }

    fn query(&mut self, sql: &str) -> Vec<Msg> {
        self.send(b'Q', &cstr(sql));
        self.until_ready()
    }

    /// Parse: `sql` as statement `name` (`""`: the unnamed one), parameter type OIDs `oids`
    /// (0: let the server infer).
    fn parse(&mut self, name: &str, sql: &str, oids: &[u32]) {
        let mut body = cstr(name);
        body.extend(cstr(sql));
        body.extend((oids.len() as i16).to_be_bytes());
        for oid in oids {
            body.extend(oid.to_be_bytes());
        }
        self.send(b'P', &body);
    }

    /// Bind: statement `stmt` to portal `portal`, `params` as (format code, bytes), all
    /// results in text.
    fn bind(&mut self, portal: &str, stmt: &str, params: &[(i16, &[u8])]) {
        let mut body = cstr(portal);
        body.extend(cstr(stmt));
        body.extend((params.len() as i16).to_be_bytes());
        for (format, _) in params {
            body.extend(format.to_be_bytes());
        }
        body.extend((params.len() as i16).to_be_bytes());
        for (_, value) in params {
            body.extend((value.len() as i32).to_be_bytes());
            body.extend(*value);
        }
        body.extend([0, 0]);
        self.send(b'B', &body);
    }

    /// Describe of portal `portal`.
    fn describe_portal(&mut self, portal: &str) {
        let mut body = vec![b'P'];
        body.extend(cstr(portal));
        self.send(b'D', &body);
    }

    /// Execute: portal `portal`, at most `max_rows` rows (0: all).
    fn execute(&mut self, portal: &str, max_rows: i32) {
        let mut body = cstr(portal);
        body.extend(max_rows.to_be_bytes());
        self.send(b'E', &body);
    }

    fn sync(&mut self) {
        self.send(b'S', &[]);
    }
}

fn kinds(msgs: &[Msg]) -> String {
    msgs.iter().map(|m| m.kind as char).collect()
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

#[test]
fn ssl_is_refused_and_the_greeting_matches_postgres_15() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut raw = Raw::connect(&server);
    raw.send_untyped(&80_877_103i32.to_be_bytes());
    let mut answer = [0u8; 1];
    raw.stream.read_exact(&mut answer).expect("ssl answer");
    assert_eq!(&answer, b"N");

    raw.startup("gnomon", "gnomon", &[("application_name", "rawtest")]);
    let greeting = raw.until_ready();
    assert_eq!(greeting[0].kind, b'R');
    assert_eq!(greeting[0].body, vec![0, 0, 0, 0], "AuthenticationOk");
    let params: Vec<(String, String)> = greeting
        .iter()
        .filter(|m| m.kind == b'S')
        .map(|m| {
            let s = m.strings();
            (s[0].clone(), s[1].clone())
        })
        .collect();
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "application_name",
            "client_encoding",
            "DateStyle",
            "default_transaction_read_only",
            "in_hot_standby",
            "integer_datetimes",
            "IntervalStyle",
            "is_superuser",
            "server_encoding",
            "server_version",
            "session_authorization",
            "standard_conforming_strings",
            "TimeZone",
        ]
    );
    let value = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(value("application_name"), Some("rawtest"));
    assert_eq!(value("client_encoding"), Some("UTF8"));
    assert_eq!(value("DateStyle"), Some("ISO, MDY"));
    assert_eq!(value("integer_datetimes"), Some("on"));
    assert_eq!(value("session_authorization"), Some("gnomon"));
    assert_eq!(value("standard_conforming_strings"), Some("on"));
    assert!(value("server_version").is_some_and(|v| v.starts_with("15.")));
    let tail = kinds(&greeting[greeting.len() - 2..]);
    assert_eq!(tail, "KZ", "BackendKeyData then ReadyForQuery");
    assert_eq!(greeting.last().map(|m| m.body.clone()), Some(b"I".to_vec()));
}

#[test]
fn set_of_a_reported_setting_sends_parameter_status() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut raw = Raw::session(&server);
    let reply = raw.query("SET application_name = 'renamed'");
    assert_eq!(kinds(&reply), "CSZ");
    assert_eq!(reply[1].strings()[..2], ["application_name", "renamed"]);
    let reply = raw.query("SET application_name = 'renamed'");
    assert_eq!(
        kinds(&reply),
        "CZ",
        "no ParameterStatus when nothing changed"
    );
}

/// Runs `sql` through the extended protocol (unnamed statement and portal) and returns the
/// reply up to ReadyForQuery.
fn extended(raw: &mut Raw, sql: &str) -> Vec<Msg> {
    execute_unnamed(raw, sql, false, b'S');
    raw.until_ready()
}

#[test]
fn set_in_the_extended_protocol_and_in_a_transaction_reports_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut raw = Raw::session(&server);
    raw.query("CREATE TABLE r (id int PRIMARY KEY, n int)");
    raw.query("INSERT INTO r VALUES (1, 0)");

    // As a prepared-statement client sends it: the change is reported before ReadyForQuery.
    let reply = extended(&mut raw, "SET application_name = 'extended'");
    assert_eq!(kinds(&reply), "12CSZ");
    assert_eq!(reply[3].strings()[..2], ["application_name", "extended"]);

    // Inside a transaction: reported at the SET's own ReadyForQuery, not again at COMMIT,
    // and statements that change no setting report nothing.
    assert_eq!(kinds(&extended(&mut raw, "BEGIN")), "12CZ");
    let reply = extended(&mut raw, "SET application_name = 'in-txn'");
    assert_eq!(kinds(&reply), "12CSZ");
    assert_eq!(reply[3].strings()[..2], ["application_name", "in-txn"]);
    assert_eq!(
        kinds(&extended(&mut raw, "UPDATE r SET n = n + 1 WHERE id = 1")),
        "12CZ"
    );
    assert_eq!(kinds(&extended(&mut raw, "COMMIT")), "12CZ");

    // RESET brings the default back, reported once.
    let reply = raw.query("RESET application_name");
    assert_eq!(kinds(&reply), "CSZ");
    assert_eq!(reply[1].strings()[..2], ["application_name", ""]);
    assert_eq!(kinds(&raw.query("RESET application_name")), "CZ");
}

#[test]
fn simple_query_answers_each_statement_and_empty_queries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut raw = Raw::session(&server);
    let reply = raw.query("SELECT 1; SELECT 2");
    assert_eq!(kinds(&reply), "TDCTDCZ");
    assert_eq!(reply[2].strings()[0], "SELECT 1");
    assert_eq!(kinds(&raw.query("")), "IZ");
    let reply = raw.query("BEGIN; SELECT 1/0; SELECT 1");
    assert_eq!(kinds(&reply), "CEZ");
    assert_eq!(reply[1].field('C').as_deref(), Some("22012"));
    assert_eq!(reply.last().map(|m| m.body.clone()), Some(b"E".to_vec()));
    let reply = raw.query("COMMIT");
    assert_eq!(reply[0].strings()[0], "ROLLBACK");
    assert_eq!(reply.last().map(|m| m.body.clone()), Some(b"I".to_vec()));
}

#[test]
fn extended_protocol_error_skips_to_sync_and_portals_suspend() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut raw = Raw::session(&server);

    // Bind to a statement that does not exist: error, then everything until Sync is skipped.
    raw.bind("", "nosuch", &[]);
    raw.execute("", 0);
    raw.sync();
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "EZ");
    assert_eq!(reply[0].field('C').as_deref(), Some("26000"));

    // A three-row result fetched two rows at a time.
    raw.query("CREATE TABLE s (id int PRIMARY KEY); INSERT INTO s VALUES (1), (2), (3)");
    raw.query("BEGIN");
    raw.parse("st", "SELECT id FROM s ORDER BY id", &[]);
    raw.bind("pt", "st", &[]);
    raw.describe_portal("pt");
    raw.execute("pt", 2);
    raw.execute("pt", 2);
    raw.sync();
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "12TDDsDCZ");
    assert_eq!(reply[7].strings()[0], "SELECT 1");
    raw.query("COMMIT");
}

#[test]
fn malformed_frame_is_fatal_for_its_connection_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut raw = Raw::session(&server);
    // A Bind whose parameter claims 2 GiB of data.
    let mut bind = cstr("");
    bind.extend(cstr(""));
    bind.extend([0, 0, 0, 1]);
    bind.extend(i32::MAX.to_be_bytes());
    raw.send(b'B', &bind);
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "E");
    assert_eq!(reply[0].field('S').as_deref(), Some("FATAL"));
    assert_eq!(reply[0].field('C').as_deref(), Some("08P01"));

    let mut other = Raw::session(&server);
    assert_eq!(kinds(&other.query("SELECT 1")), "TDCZ");
}

#[test]
fn deallocate_all_forgets_protocol_prepared_statements() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut raw = Raw::session(&server);
    raw.parse("st", "SELECT 1", &[]);
    raw.sync();
    assert_eq!(kinds(&raw.until_ready()), "1Z");
    raw.parse("st", "SELECT 1", &[]);
    raw.sync();
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "EZ");
    assert_eq!(reply[0].field('C').as_deref(), Some("42P05"));
    assert_eq!(kinds(&raw.query("DEALLOCATE ALL")), "CZ");
    raw.parse("st", "SELECT 1", &[]);
    raw.sync();
    assert_eq!(kinds(&raw.until_ready()), "1Z", "the name is free again");
}

#[test]
fn copy_from_stdin_loads_text_format_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut raw = Raw::session(&server);
    raw.query("CREATE TABLE cp (id int PRIMARY KEY, note text)");

    let mut copy = cstr("COPY cp FROM STDIN");
    raw.send(b'Q', &copy);
    let response = raw.recv().expect("CopyInResponse");
    assert_eq!(response.kind, b'G');
    assert_eq!(
        response.body,
        vec![0, 0, 2, 0, 0, 0, 0],
        "text, 2 text columns"
    );
    // Lines split across CopyData messages, a NULL, and escapes.
    raw.send(b'd', b"1\tone\n2\t\\N\n3\ttab\\there");
    raw.send(b'd', b"\n");
    raw.send(b'c', &[]);
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "CZ");
    assert_eq!(reply[0].strings()[0], "COPY 3");

    // A bad line fails the whole COPY: nothing of it is kept.
    copy = cstr("COPY cp (id, note) FROM STDIN");
    raw.send(b'Q', &copy);
    assert_eq!(raw.recv().map(|m| m.kind), Some(b'G'));
    raw.send(b'd', b"4\tfour\nnot-a-number\tx\n");
    raw.send(b'c', &[]);
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "EZ");
    assert_eq!(reply[0].field('C').as_deref(), Some("22P02"));

    let rows = raw.query("SELECT id, note FROM cp ORDER BY id");
    assert_eq!(kinds(&rows), "TDDDCZ");
    assert_eq!(rows[4].strings()[0], "SELECT 3");
    let third = &rows[3].body;
    assert!(
        third.windows(8).any(|w| w == b"tab\there"),
        "escape decoded: {third:?}"
    );
}

#[test]
fn copy_in_many_messages_is_all_or_nothing_and_names_the_first_bad_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut raw = Raw::session(&server);
    raw.query("CREATE TABLE cp2 (id int PRIMARY KEY, v int)");
    let copy = cstr("COPY cp2 FROM STDIN");
    // One CopyData per line, as pgbench sends them; 3000 lines span several batches. Line
    // 2500 repeats id 10 and line 2800 is not a number: the first error is the one reported.
    raw.send(b'Q', &copy);
    assert_eq!(raw.recv().map(|m| m.kind), Some(b'G'));
    for i in 1..=3000 {
        let line = match i {
            2500 => "10\t0\n".to_string(),
            2800 => "x\t0\n".to_string(),
            _ => format!("{i}\t{i}\n"),
        };
        raw.send(b'd', line.as_bytes());
    }
    raw.send(b'c', &[]);
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "EZ");
    assert_eq!(reply[0].field('C').as_deref(), Some("23505"));
    assert_eq!(reply[0].field('W').as_deref(), Some("COPY cp2, line 2500"));
    let tag = |reply: &[Msg]| {
        reply
            .iter()
            .find(|m| m.kind == b'C')
            .map(|m| m.strings()[0].clone())
    };
    let rows = raw.query("SELECT * FROM cp2");
    assert_eq!(
        tag(&rows).as_deref(),
        Some("SELECT 0"),
        "a failed COPY leaves nothing"
    );

    // Inside a block, a good COPY of 3000 lines is visible to the block and then committed.
    raw.query("BEGIN");
    raw.send(b'Q', &copy);
    assert_eq!(raw.recv().map(|m| m.kind), Some(b'G'));
    for i in 1..=3000 {
        raw.send(b'd', format!("{i}\t{i}\n").as_bytes());
    }
    raw.send(b'c', &[]);
    let reply = raw.until_ready();
    assert_eq!(tag(&reply).as_deref(), Some("COPY 3000"));
    let rows = raw.query("SELECT sum(v) FROM cp2 HAVING count(*) = 3000 AND sum(v) = 4501500");
    assert_eq!(tag(&rows).as_deref(), Some("SELECT 1"));
    raw.query("COMMIT");
    let mut other = Raw::session(&server);
    let rows = other.query("SELECT 1 FROM cp2 WHERE id = v");
    assert_eq!(tag(&rows).as_deref(), Some("SELECT 3000"));
}

#[test]
fn copy_batches_fill_defaults_check_constraints_and_route_partitions_per_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut raw = Raw::session(&server);
    raw.query("CREATE TABLE cd (id int, v int CHECK (v >= 0), tag text DEFAULT 'dflt')");
    let tag = |reply: &[Msg]| {
        reply
            .iter()
            .find(|m| m.kind == b'C')
            .map(|m| m.strings()[0].clone())
    };
    // The CHECK fails on line 1500, in the second batch of lines: 23514 at that line.
    let copy = cstr("COPY cd (id, v) FROM STDIN");
    raw.send(b'Q', &copy);
    assert_eq!(raw.recv().map(|m| m.kind), Some(b'G'));
    for i in 1..=2000 {
        let v = if i == 1500 { -1 } else { i };
        raw.send(b'd', format!("{i}\t{v}\n").as_bytes());
    }
    raw.send(b'c', &[]);
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "EZ");
    assert_eq!(reply[0].field('C').as_deref(), Some("23514"));
    let context = reply[0].field('W').unwrap_or_default();
    assert!(context.starts_with("COPY cd, line 1500"), "{context}");
    let rows = raw.query("SELECT * FROM cd");
    assert_eq!(tag(&rows).as_deref(), Some("SELECT 0"), "nothing kept");
    // A good COPY fills the omitted column's DEFAULT on every line of every batch.
    raw.send(b'Q', &copy);
    assert_eq!(raw.recv().map(|m| m.kind), Some(b'G'));
    for i in 1..=2000 {
        raw.send(b'd', format!("{i}\t{i}\n").as_bytes());
    }
    raw.send(b'c', &[]);
    assert_eq!(tag(&raw.until_ready()).as_deref(), Some("COPY 2000"));
    let rows = raw.query("SELECT 1 FROM cd WHERE tag = 'dflt' AND v = id");
    assert_eq!(tag(&rows).as_deref(), Some("SELECT 2000"));

    // Into a partitioned table each line goes to its own partition, within one batch.
    raw.query("CREATE TABLE pr (id int, v int) PARTITION BY RANGE (id)");
    raw.query("CREATE TABLE pr_lo PARTITION OF pr FOR VALUES FROM (0) TO (1000)");
    raw.query("CREATE TABLE pr_hi PARTITION OF pr FOR VALUES FROM (1000) TO (3000)");
    raw.send(b'Q', &cstr("COPY pr FROM STDIN"));
    assert_eq!(raw.recv().map(|m| m.kind), Some(b'G'));
    for i in 0..3000 {
        raw.send(b'd', format!("{i}\t{i}\n").as_bytes());
    }
    raw.send(b'c', &[]);
    assert_eq!(tag(&raw.until_ready()).as_deref(), Some("COPY 3000"));
    let rows = raw.query("SELECT 1 FROM pr_lo");
    assert_eq!(tag(&rows).as_deref(), Some("SELECT 1000"));
    let rows = raw.query("SELECT 1 FROM pr_hi");
    assert_eq!(tag(&rows).as_deref(), Some("SELECT 2000"));
    // A line no partition accepts fails at its line.
    raw.send(b'Q', &cstr("COPY pr FROM STDIN"));
    assert_eq!(raw.recv().map(|m| m.kind), Some(b'G'));
    raw.send(b'd', b"5\t5\n7\t7\n5000\t1\n");
    raw.send(b'c', &[]);
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "EZ");
    assert_eq!(reply[0].field('C').as_deref(), Some("23514"));
    let context = reply[0].field('W').unwrap_or_default();
    assert!(context.starts_with("COPY pr, line 3"), "{context}");
}

#[test]
fn notices_reach_the_client_in_both_protocols() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut raw = Raw::session(&server);
    let reply = raw.query("DROP TABLE IF EXISTS nothere");
    assert_eq!(kinds(&reply), "NCZ");
    assert_eq!(
        reply[0].field('M').as_deref(),
        Some("table \"nothere\" does not exist, skipping")
    );

    let reply = extended(&mut raw, "DROP TABLE IF EXISTS nothere");
    assert_eq!(kinds(&reply), "12NCZ");
    assert_eq!(reply[2].field('C').as_deref(), Some("00000"));
}

/// Parse + Bind + Describe portal + Execute + Sync as psycopg 3 and pgjdbc send them.
fn run_extended(raw: &mut Raw, sql: &str, oids: &[u32], params: &[(i16, &[u8])]) -> Vec<Msg> {
    raw.parse("", sql, oids);
    raw.bind("", "", params);
    raw.describe_portal("");
    raw.execute("", 0);
    raw.sync();
    raw.until_ready()
}

/// Text values of a DataRow.
fn data_row_texts(row: &Msg) -> Vec<String> {
    let body = &row.body;
    let n = i16::from_be_bytes([body[0], body[1]]) as usize;
    let mut at = 2;
    let mut out = Vec::new();
    for _ in 0..n {
        let len = i32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
        at += 4;
        let len = len as usize;
        out.push(String::from_utf8_lossy(&body[at..at + len]).into_owned());
        at += len;
    }
    out
}

#[test]
fn parameters_are_decoded_by_the_type_the_driver_declared() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut raw = Raw::session(&server);
    // psycopg 3: binary int2 and an untyped text parameter.
    let reply = run_extended(
        &mut raw,
        "SELECT $1::int + 1, $2",
        &[21, 0],
        &[(1, &[0, 41]), (0, b"x")],
    );
    assert_eq!(kinds(&reply), "12TDCZ");
    assert_eq!(data_row_texts(&reply[3]), ["42", "x"]);
    // pgjdbc: binary int4 and varchar as text.
    let reply = run_extended(
        &mut raw,
        "SELECT $1::int + 1, $2",
        &[23, 1043],
        &[(1, &[0, 0, 0, 41]), (0, b"x")],
    );
    assert_eq!(kinds(&reply), "12TDCZ");
    assert_eq!(data_row_texts(&reply[3]), ["42", "x"]);
}

/// Bind with explicit lists: parameter `formats` (none, one for all, or one each), `params`
/// (None = NULL), result `results` formats.
fn bind_raw(raw: &mut Raw, stmt: &str, formats: &[i16], params: &[Option<&[u8]>], results: &[i16]) {
    let mut body = cstr("");
    body.extend(cstr(stmt));
    body.extend((formats.len() as i16).to_be_bytes());
    for format in formats {
        body.extend(format.to_be_bytes());
    }
    body.extend((params.len() as i16).to_be_bytes());
    for value in params {
        match value {
            Some(value) => {
                body.extend((value.len() as i32).to_be_bytes());
                body.extend(*value);
            }
            None => body.extend((-1i32).to_be_bytes()),
        }
    }
    body.extend((results.len() as i16).to_be_bytes());
    for format in results {
        body.extend(format.to_be_bytes());
    }
    raw.send(b'B', &body);
}

/// Parameter formats, parameters, result formats; the SQLSTATE and message PostgreSQL answers.
type RefusedBind<'a> = (
    &'a [i16],
    &'a [Option<&'a [u8]>],
    &'a [i16],
    &'a str,
    &'a str,
);

#[test]
fn bind_format_lists_nulls_and_counts_are_honoured() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut raw = Raw::session(&server);
    raw.parse("two", "SELECT $1::int IS NULL, $2::int + 1", &[23, 23]);
    raw.sync();
    assert_eq!(kinds(&raw.until_ready()), "1Z");

    // One format for all parameters (binary), a NULL, the second result column in binary; a
    // second Execute of the finished portal reports no more rows.
    let forty_one = 41i32.to_be_bytes();
    bind_raw(&mut raw, "two", &[1], &[None, Some(&forty_one)], &[0, 1]);
    raw.execute("", 0);
    raw.execute("", 0);
    raw.sync();
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "2DCCZ");
    let mut row = vec![0, 2, 0, 0, 0, 1, b't', 0, 0, 0, 4];
    row.extend(42i32.to_be_bytes());
    assert_eq!(reply[1].body, row);
    assert_eq!(reply[2].strings()[0], "SELECT 1");
    assert_eq!(reply[3].strings()[0], "SELECT 0");

    // One format each: text then binary.
    bind_raw(
        &mut raw,
        "two",
        &[0, 1],
        &[Some(b"7"), Some(&forty_one)],
        &[],
    );
    raw.execute("", 0);
    raw.sync();
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "2DCZ");
    assert_eq!(data_row_texts(&reply[1]), ["f", "42"]);

    // What PostgreSQL refuses, each followed by skipping to Sync.
    let refused: [RefusedBind; 5] = [
        (
            &[],
            &[Some(b"1")],
            &[],
            "08P01",
            "bind message supplies 1 parameters, but prepared statement \"two\" requires 2",
        ),
        (
            &[0, 0, 0],
            &[Some(b"1"), Some(b"2")],
            &[],
            "08P01",
            "bind message has 3 parameter formats but 2 parameters",
        ),
        (
            &[2],
            &[Some(b"1"), Some(b"2")],
            &[],
            "22023",
            "unsupported format code: 2",
        ),
        (
            &[],
            &[Some(b"1"), Some(b"2")],
            &[0, 3],
            "22023",
            "unsupported format code: 3",
        ),
        (
            &[],
            &[Some(b"1"), Some(&[0xff, 0xfe])],
            &[],
            "22021",
            "invalid byte sequence for encoding \"UTF8\"",
        ),
    ];
    for (formats, params, results, code, message) in refused {
        bind_raw(&mut raw, "two", formats, params, results);
        raw.execute("", 0);
        raw.sync();
        let reply = raw.until_ready();
        assert_eq!(kinds(&reply), "EZ", "{message}");
        assert_eq!(reply[0].field('C').as_deref(), Some(code), "{message}");
        // NB: PostgreSQL's 22021 message goes on with the bad bytes; ours stops before them.
        let said = reply[0].field('M').unwrap_or_default();
        assert!(said.starts_with(message), "{said}");
    }
    // The session is still usable.
    let reply = raw.query("SELECT 1");
    assert_eq!(kinds(&reply), "TDCZ");
}

#[test]
fn sessions_beyond_max_connections_are_refused_with_53300() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_with(dir.path(), &["--max-connections", "1"]);
    let mut first = Raw::session(&server);

    let mut second = Raw::connect(&server);
    second.startup("gnomon", "gnomon", &[]);
    let refusal = second.recv().expect("an answer before the close");
    assert_eq!(refusal.kind, b'E');
    assert_eq!(refusal.field('S').as_deref(), Some("FATAL"));
    assert_eq!(refusal.field('C').as_deref(), Some("53300"));
    assert_eq!(
        refusal.field('M').as_deref(),
        Some("sorry, too many clients already")
    );
    assert!(second.recv().is_none(), "the refused connection is closed");

    let answer = first.query("SELECT 1");
    assert_eq!(kinds(&answer), "TDCZ", "the admitted session still works");
}

#[test]
fn idle_session_is_told_57p01_when_the_server_shuts_down() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut idle = Raw::session(&server);
    let mut other_idle = Raw::session(&server);

    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let goodbye = idle.recv().expect("a goodbye before the close");
    assert_eq!(goodbye.kind, b'E');
    assert_eq!(goodbye.field('S').as_deref(), Some("FATAL"));
    assert_eq!(goodbye.field('C').as_deref(), Some("57P01"));
    assert!(idle.recv().is_none(), "then the connection is closed");
    let goodbye = other_idle.recv().expect("every idle session is told");
    assert_eq!(goodbye.field('C').as_deref(), Some("57P01"));
}

#[test]
fn a_running_statement_finishes_before_the_shutdown_goodbye() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut busy = Raw::session(&server);
    busy.send(b'Q', &cstr("SELECT pg_sleep(0.3), 7"));
    // NB: whether SIGTERM lands during or after the statement, the client must get its whole
    // result and then the goodbye.
    std::thread::sleep(Duration::from_millis(50));
    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let answer = busy.until_ready();
    assert_eq!(kinds(&answer), "TDCZ", "the statement's result arrives");
    assert!(answer[1].body.ends_with(b"7"), "with its values");
    let goodbye = busy.recv().expect("then the goodbye");
    assert_eq!(goodbye.field('C').as_deref(), Some("57P01"));
}

/// Parse / Bind / (Describe portal) / Execute of `sql` with no parameters, then `tail`
/// (Flush or Sync).
fn execute_unnamed(raw: &mut Raw, sql: &str, describe: bool, tail: u8) {
    raw.parse("", sql, &[]);
    raw.bind("", "", &[]);
    if describe {
        raw.describe_portal("");
    }
    raw.execute("", 0);
    raw.send(tail, &[]);
}

/// Messages up to and including the first of `kinds`.
fn until_kind(raw: &mut Raw, kinds: &[u8]) -> Vec<Msg> {
    let mut out = Vec::new();
    while let Some(m) = raw.recv() {
        let done = kinds.contains(&m.kind);
        out.push(m);
        if done {
            break;
        }
    }
    out
}

/// COPY through Parse/Bind/Execute (pgjdbc's CopyManager, node pg-copy-streams): the message
/// sequences are PostgreSQL 15's, captured from a live server with the same requests.
#[test]
fn copy_runs_through_the_extended_protocol() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut raw = Raw::session(&server);
    raw.query("CREATE TABLE cp (id int PRIMARY KEY, note text)");

    execute_unnamed(&mut raw, "COPY cp FROM STDIN", true, b'H');
    let reply = until_kind(&mut raw, b"GZE");
    assert_eq!(kinds(&reply), "12nG");
    raw.send(b'd', b"1\tone\n2\ttwo\n");
    raw.send(b'c', &[]);
    raw.send(b'S', &[]);
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "CZ");
    assert_eq!(reply[0].strings()[0], "COPY 2");

    // A bad line: the error after CopyDone, then ReadyForQuery at Sync; nothing kept.
    execute_unnamed(&mut raw, "COPY cp FROM STDIN", true, b'H');
    assert_eq!(kinds(&until_kind(&mut raw, b"GZE")), "12nG");
    raw.send(b'd', b"3\tthree\nx\ty\n");
    raw.send(b'c', &[]);
    raw.send(b'S', &[]);
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "EZ");
    assert_eq!(reply[0].field('C').as_deref(), Some("22P02"));

    // A Sync sent right after Execute is ignored in copy-in mode (libpq-style clients).
    execute_unnamed(&mut raw, "COPY cp FROM STDIN", true, b'S');
    assert_eq!(kinds(&until_kind(&mut raw, b"GZE")), "12nG");
    raw.send(b'd', b"5\tfive\n");
    raw.send(b'c', &[]);
    raw.send(b'S', &[]);
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "CZ");
    assert_eq!(reply[0].strings()[0], "COPY 1");

    // CopyFail.
    execute_unnamed(&mut raw, "COPY cp FROM STDIN", true, b'H');
    assert_eq!(kinds(&until_kind(&mut raw, b"GZE")), "12nG");
    raw.send(b'd', b"6\tsix\n");
    raw.send(b'f', &cstr("client gave up"));
    raw.send(b'S', &[]);
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "EZ");
    assert_eq!(reply[0].field('C').as_deref(), Some("57014"));
    assert_eq!(
        reply[0].field('M').as_deref(),
        Some("COPY from stdin failed: client gave up")
    );

    // COPY TO STDOUT.
    execute_unnamed(&mut raw, "COPY cp TO STDOUT", true, b'S');
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "12nHdddcCZ");
    assert_eq!(reply[8].strings()[0], "COPY 3");
    execute_unnamed(
        &mut raw,
        "COPY (SELECT id FROM cp ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)",
        false,
        b'S',
    );
    let reply = raw.until_ready();
    assert_eq!(kinds(&reply), "12HddddcCZ");
    let data: Vec<&[u8]> = reply
        .iter()
        .filter(|m| m.kind == b'd')
        .map(|m| m.body.as_slice())
        .collect();
    assert_eq!(data, vec![&b"id\n"[..], b"1\n", b"2\n", b"5\n"]);

    let rows = raw.query("SELECT count(*) FROM cp");
    assert_eq!(data_row_texts(&rows[1]), vec!["3"]);
}

#[test]
fn drop_database_is_refused_while_another_session_uses_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let mut admin = Raw::session(&server);
    assert_eq!(kinds(&admin.query("CREATE DATABASE db1")), "CZ");
    let mut user = Raw::session_on(&server, "db1");
    let reply = admin.query("DROP DATABASE db1");
    assert_eq!(kinds(&reply), "EZ");
    assert_eq!(reply[0].field('C').as_deref(), Some("55006"));
    assert_eq!(
        reply[0].field('M').as_deref(),
        Some("database \"db1\" is being accessed by other users")
    );
    assert_eq!(
        reply[0].field('D').as_deref(),
        Some("There is 1 other session using the database.")
    );
    // Once the other session is leaving (Terminate sent, its server thread may still be
    // finishing), DROP waits for it, as PostgreSQL does for up to 5 s, and succeeds.
    user.send(b'X', &[]);
    drop(user);
    assert_eq!(kinds(&admin.query("DROP DATABASE db1")), "CZ");
}
