//! TLS and access rules with the real binary: psql with `sslmode=require` and `verify-full`,
//! a raw rustls client for the protocol corners (a second SSLRequest, bytes stuffed before the
//! handshake, garbage instead of a ClientHello, CancelRequest beside a TLS session),
//! `tls_required_for_remote` over the machine's real non-loopback address, `[[hba]]` rules
//! (reject, trust, scram-sha-256, hostssl/hostnossl, no match), the start-up refusals, and
//! tokio-postgres over tokio-postgres-rustls (SCRAM inside TLS, results larger than a flush).
//! Certificates are made at test time with rcgen (a CA and a server certificate it signed).

mod common;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{find_pg_tool, sqlstate, Server};
use rustls::pki_types::ServerName;
use tokio_postgres::NoTls;

/// A CA and a server certificate for `localhost` and 127.0.0.1 signed by it, as PEM files.
struct Certs {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    ca_der: rustls::pki_types::CertificateDer<'static>,
}

fn make_certs(dir: &Path) -> Certs {
    make_certs_of(dir, "gnomon test CA")
}

/// Like [`make_certs`] with a CA named `ca_name`.
fn make_certs_of(dir: &Path, ca_name: &str) -> Certs {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let key = rcgen::KeyPair::generate().expect("server key");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("server params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write pem");
        path
    };
    Certs {
        ca: write("ca.crt", ca.pem()),
        cert: write("server.crt", cert.pem()),
        key: write("server.key", key.serialize_pem()),
        ca_der: ca.der().clone(),
    }
}

fn tls_args(certs: &Certs) -> Vec<String> {
    vec![
        "--tls-cert".into(),
        certs.cert.display().to_string(),
        "--tls-key".into(),
        certs.key.display().to_string(),
    ]
}

fn start(dir: &Path, extra: &[String]) -> Server {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    Server::start_with(dir, &extra)
}

/// Runs psql with connection string `conn` and `-c` commands; PGPASSWORD from `password`.
fn psql(conn: &str, password: Option<&str>, commands: &[&str]) -> Option<Output> {
    let psql = find_pg_tool("psql")?;
    let mut cmd = Command::new(psql);
    cmd.arg("-X").arg("-At").arg("-d").arg(conn);
    for c in commands {
        cmd.arg("-c").arg(c);
    }
    // NB: no ~/.postgresql client certificate or root store may interfere.
    cmd.env("PGSSLCERT", "/nonexistent")
        .env("PGSSLKEY", "/nonexistent")
        .env_remove("PGSSLMODE")
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null());
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    Some(cmd.output().expect("run psql"))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// psql's output when it must succeed.
fn psql_ok(conn: &str, password: Option<&str>, commands: &[&str]) -> Option<String> {
    let out = psql(conn, password, commands)?;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "psql {conn:?} failed: {stderr}");
    Some(stdout)
}

/// psql's stderr when it must fail.
fn psql_err(conn: &str, password: Option<&str>, commands: &[&str]) -> Option<String> {
    let out = psql(conn, password, commands)?;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "psql {conn:?} got in: {stdout}");
    Some(stderr)
}

#[test]
fn psql_connects_with_sslmode_require_and_verify_full() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = make_certs(dir.path());
    let server = start(&dir.path().join("data"), &tls_args(&certs));
    let base = format!(
        "host=127.0.0.1 port={} user=gnomon dbname=gnomon",
        server.port
    );
    let Some(out) = psql_ok(
        &format!("{base} sslmode=require"),
        None,
        &["SHOW ssl", "SELECT 40 + 2", "\\conninfo"],
    ) else {
        eprintln!("psql not found; skipping");
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "on", "{out}");
    assert_eq!(lines[1], "42", "{out}");
    assert!(out.contains("\nSSL connection (protocol: TLSv1.3"), "{out}");

    // verify-full checks the chain against our CA and the host name against the certificate.
    let verified = format!(
        "host=localhost port={} user=gnomon dbname=gnomon sslmode=verify-full sslrootcert={}",
        server.port,
        certs.ca.display()
    );
    let out = psql_ok(&verified, None, &["SELECT current_user"]).expect("psql");
    assert_eq!(out.trim(), "gnomon");
    // ... so a certificate from another CA is refused by the client.
    let elsewhere = dir.path().join("other");
    std::fs::create_dir(&elsewhere).expect("dir");
    let other = make_certs_of(&elsewhere, "some other CA");
    let wrong = format!(
        "host=localhost port={} user=gnomon dbname=gnomon sslmode=verify-full sslrootcert={}",
        server.port,
        other.ca.display()
    );
    let err = psql_err(&wrong, None, &["SELECT 1"]).expect("psql");
    assert!(err.contains("certificate verify failed"), "{err}");

    // Plain connections still work while TLS is optional.
    let out = psql_ok(
        &format!("{base} sslmode=disable"),
        None,
        &["SHOW ssl", "\\conninfo"],
    )
    .expect("psql");
    assert!(out.starts_with("on\n"), "{out}");
    assert!(!out.contains("SSL connection"), "{out}");
}

#[test]
fn without_a_certificate_ssl_is_off_and_require_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let base = format!(
        "host=127.0.0.1 port={} user=gnomon dbname=gnomon",
        server.port
    );
    let Some(out) = psql_ok(&base, None, &["SHOW ssl"]) else {
        return;
    };
    assert_eq!(out.trim(), "off");
    let err = psql_err(&format!("{base} sslmode=require"), None, &["SELECT 1"]).expect("psql");
    assert!(err.contains("server does not support SSL"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Raw protocol over a rustls client.

/// A backend message: type byte and body.
struct Msg {
    kind: u8,
    body: Vec<u8>,
}

impl Msg {
    fn field(&self, code: u8) -> Option<String> {
        self.body
            .split(|&b| b == 0)
            .find(|f| f.first() == Some(&code))
            .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

fn ssl_request() -> Vec<u8> {
    frame(&80_877_103i32.to_be_bytes())
}

fn startup_packet(user: &str) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for s in ["user", user, "database", "gnomon", ""] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    frame(&body)
}

fn query(sql: &str) -> Vec<u8> {
    let mut m = vec![b'Q'];
    m.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
    m.extend_from_slice(sql.as_bytes());
    m.push(0);
    m
}

fn recv(stream: &mut impl Read) -> Option<Msg> {
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).ok()?;
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len.checked_sub(4)?];
    stream.read_exact(&mut body).ok()?;
    Some(Msg {
        kind: head[0],
        body,
    })
}

fn until_ready(stream: &mut impl Read) -> Vec<Msg> {
    let mut out = Vec::new();
    while let Some(m) = recv(stream) {
        let done = m.kind == b'Z';
        out.push(m);
        if done {
            break;
        }
    }
    out
}

fn plain(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // Guards against a hung test only.
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// SSLRequest, 'S', and a handshake verified against `ca`.
fn tls_connect(port: u16, ca: &rustls::pki_types::CertificateDer<'static>) -> TlsStream {
    let mut sock = plain(port);
    sock.write_all(&ssl_request()).expect("ssl request");
    let mut answer = [0u8; 1];
    sock.read_exact(&mut answer).expect("ssl answer");
    assert_eq!(&answer, b"S");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("handshake");
    }
    tls
}

#[test]
fn raw_tls_session_second_ssl_request_and_cancel() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = make_certs(dir.path());
    let server = start(&dir.path().join("data"), &tls_args(&certs));

    let mut tls = tls_connect(server.port, &certs.ca_der);
    tls.write_all(&startup_packet("gnomon")).expect("startup");
    let greeting = until_ready(&mut tls);
    assert_eq!(greeting.first().map(|m| m.kind), Some(b'R'));
    let key = greeting
        .iter()
        .find(|m| m.kind == b'K')
        .expect("BackendKeyData");
    let (pid, secret) = (key.body[0..4].to_vec(), key.body[4..8].to_vec());
    tls.write_all(&query("SHOW ssl")).expect("query");
    let rows = until_ready(&mut tls);
    let row = rows.iter().find(|m| m.kind == b'D').expect("a row");
    assert_eq!(&row.body[row.body.len() - 2..], b"on");

    // CancelRequest arrives on a plain connection and interrupts the TLS session's statement.
    tls.write_all(&query("SELECT pg_sleep(30)")).expect("query");
    tls.flush().expect("flush");
    let mut canceled = false;
    for _ in 0..600 {
        let mut cancel = 80_877_102i32.to_be_bytes().to_vec();
        cancel.extend_from_slice(&pid);
        cancel.extend_from_slice(&secret);
        let mut c = plain(server.port);
        c.write_all(&frame(&cancel)).expect("cancel");
        // The server closes a cancel connection without answering.
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
        assert!(sink.is_empty());
        // NB: a cancel that arrives before the statement starts is lost; retry until one
        // lands (the statement takes 30 s, so the loop ends by the first cancel after start).
        tls.sock
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let mut head = [0u8; 1];
        match tls.read(&mut head) {
            Ok(1) => {
                tls.sock
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .expect("timeout");
                let mut rest = [0u8; 4];
                tls.read_exact(&mut rest).expect("length");
                let len = i32::from_be_bytes(rest) as usize;
                let mut body = vec![0u8; len - 4];
                tls.read_exact(&mut body).expect("body");
                let first = Msg {
                    kind: head[0],
                    body,
                };
                let mut msgs = vec![first];
                if msgs[0].kind != b'Z' {
                    msgs.extend(until_ready(&mut tls));
                }
                let error = msgs.iter().find(|m| m.kind == b'E').expect("error");
                assert_eq!(error.field(b'C').as_deref(), Some("57014"));
                canceled = true;
                break;
            }
            Ok(_) => panic!("server closed the TLS session"),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading the TLS session: {e}"),
        }
    }
    assert!(canceled, "the statement was never canceled");

    // A second SSLRequest inside TLS is an unknown protocol version, as in PostgreSQL 15.
    let mut tls = tls_connect(server.port, &certs.ca_der);
    tls.write_all(&ssl_request()).expect("second ssl request");
    let error = recv(&mut tls).expect("error response");
    assert_eq!(error.kind, b'E');
    assert_eq!(error.field(b'S').as_deref(), Some("FATAL"));
    assert_eq!(error.field(b'C').as_deref(), Some("0A000"));
    assert_eq!(
        error.field(b'M').as_deref(),
        Some("unsupported frontend protocol 1234.5679: server supports 3.0 to 3.0")
    );
}

#[test]
fn no_tls_over_the_unix_socket_even_when_configured() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = make_certs(dir.path());
    let mut args = tls_args(&certs);
    args.extend([
        "--unix-socket-dir".to_string(),
        dir.path().display().to_string(),
    ]);
    let server = start(&dir.path().join("data"), &args);
    let socket = dir.path().join(format!(".s.PGSQL.{}", server.port));

    // Like PostgreSQL: 'N' on the Unix socket, then the session goes on in clear.
    let mut local = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    local.write_all(&ssl_request()).expect("SSLRequest");
    let mut answer = [0u8; 1];
    local.read_exact(&mut answer).expect("answer");
    assert_eq!(&answer, b"N");
    local.write_all(&startup_packet("gnomon")).expect("startup");
    until_ready(&mut local);
    local.write_all(&query("SELECT 'clear'")).expect("query");
    let rows = until_ready(&mut local);
    let row = rows.iter().find(|m| m.kind == b'D').expect("a row");
    assert!(row.body.ends_with(b"clear"));

    // The same server still answers 'S' over TCP.
    let mut tcp = plain(server.port);
    tcp.write_all(&ssl_request()).expect("SSLRequest");
    tcp.read_exact(&mut answer).expect("answer");
    assert_eq!(&answer, b"S");
}

#[test]
fn bytes_before_the_handshake_and_garbage_handshakes_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = make_certs(dir.path());
    let server = start(&dir.path().join("data"), &tls_args(&certs));

    // CVE-2021-23214: a startup packet stuffed behind the SSLRequest is refused in clear.
    let mut sock = plain(server.port);
    let mut stuffed = ssl_request();
    stuffed.extend_from_slice(&startup_packet("gnomon"));
    sock.write_all(&stuffed).expect("write");
    let error = recv(&mut sock).expect("error response");
    assert_eq!(error.kind, b'E');
    assert_eq!(error.field(b'C').as_deref(), Some("08P01"));
    assert_eq!(
        error.field(b'M').as_deref(),
        Some("received unencrypted data after SSL request")
    );
    assert!(recv(&mut sock).is_none(), "connection closed");

    // Garbage instead of a ClientHello: an alert (or nothing), then the connection closes.
    let mut sock = plain(server.port);
    sock.write_all(&ssl_request()).expect("write");
    let mut answer = [0u8; 1];
    sock.read_exact(&mut answer).expect("answer");
    assert_eq!(&answer, b"S");
    sock.write_all(&[0x42; 300]).expect("garbage");
    let mut rest = Vec::new();
    let _ = sock.read_to_end(&mut rest);
    assert!(
        rest.is_empty() || rest[0] == 0x15,
        "expected a TLS alert, got {rest:?}"
    );

    // A client that leaves right after 'S', and one that sends half a ClientHello and leaves.
    for cut in [0usize, 3] {
        let mut sock = plain(server.port);
        sock.write_all(&ssl_request()).expect("write");
        sock.read_exact(&mut answer).expect("answer");
        sock.write_all(&[0x16, 0x03, 0x01][..cut]).expect("partial");
        drop(sock);
    }

    // The server is still serving, TLS and plain.
    let mut tls = tls_connect(server.port, &certs.ca_der);
    tls.write_all(&startup_packet("gnomon")).expect("startup");
    let greeting = until_ready(&mut tls);
    assert_eq!(greeting.last().map(|m| m.kind), Some(b'Z'));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = server.connect().await;
        let row = client
            .query_one("SELECT 1::int4", &[])
            .await
            .expect("query");
        assert_eq!(row.get::<_, i32>(0), 1);
    });
}

#[test]
fn shutdown_says_goodbye_inside_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = make_certs(dir.path());
    let server = start(&dir.path().join("data"), &tls_args(&certs));
    let mut tls = tls_connect(server.port, &certs.ca_der);
    tls.write_all(&startup_packet("gnomon")).expect("startup");
    assert_eq!(until_ready(&mut tls).last().map(|m| m.kind), Some(b'Z'));
    // SIGTERM: the idle session's socket is shut down for reading; the TLS reader sees the end
    // of the stream like a plain one and the FATAL still goes out encrypted.
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let goodbye = recv(&mut tls).expect("FATAL before the close");
    assert_eq!(goodbye.kind, b'E');
    assert_eq!(goodbye.field(b'C').as_deref(), Some("57P01"));
    assert_eq!(
        goodbye.field(b'M').as_deref(),
        Some("terminating connection due to administrator command")
    );
}

// ---------------------------------------------------------------------------------------
// tls_required_for_remote and [[hba]] rules.

/// A non-loopback IPv4 address of this machine, if it has one.
fn non_loopback_ipv4() -> Option<IpAddr> {
    let mut found = None;
    // SAFETY: getifaddrs fills a list we only read and then free with freeifaddrs; every
    // pointer is checked for null before use.
    unsafe {
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut list) != 0 {
            return None;
        }
        let mut at = list;
        while !at.is_null() {
            let addr = (*at).ifa_addr;
            if !addr.is_null() && i32::from((*addr).sa_family) == libc::AF_INET {
                let sin = &*(addr as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() && !ip.is_unspecified() {
                    found = Some(IpAddr::V4(ip));
                    break;
                }
            }
            at = (*at).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found
}

async fn set_superuser_password(server: &Server, password: &str) {
    let client = server.connect().await;
    client
        .batch_execute(&format!("ALTER ROLE gnomon PASSWORD '{password}'"))
        .await
        .expect("set password");
}

#[tokio::test]
async fn tls_required_for_remote_refuses_plain_clients_on_the_network() {
    let Some(ip) = non_loopback_ipv4() else {
        panic!("this test needs a non-loopback IPv4 address on the machine");
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = make_certs(dir.path());
    let data = dir.path().join("data");
    // Listening beyond loopback needs a password on the superuser first.
    let server = Server::start(&data);
    set_superuser_password(&server, "s3cret").await;
    server.terminate();

    let mut args: Vec<OsString> = vec![
        "--data-dir".into(),
        data.clone().into(),
        "--listen".into(),
        "0.0.0.0:0".into(),
        "--tls-required-for-remote".into(),
    ];
    args.extend(tls_args(&certs).into_iter().map(OsString::from));
    let server = Server::spawn(&data, &args);

    // tokio-postgres without TLS from the network address: refused in PostgreSQL's words.
    let remote = format!("host={ip} port={} user=gnomon dbname=gnomon", server.port);
    let e = match tokio_postgres::connect(&format!("{remote} password=s3cret"), NoTls).await {
        Ok(_) => panic!("a plain remote client got in"),
        Err(e) => e,
    };
    assert_eq!(sqlstate(&e), "28000");
    assert_eq!(
        e.as_db_error().map(|d| d.message().to_string()),
        Some(format!(
            "no pg_hba.conf entry for host \"{ip}\", user \"gnomon\", database \"gnomon\", no encryption"
        ))
    );
    // Over TLS from the same address it logs in with the password.
    let out = psql(
        &format!("{remote} sslmode=require"),
        Some("s3cret"),
        &["SHOW ssl", "\\conninfo"],
    );
    if let Some(out) = out {
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.starts_with("on\n"), "{stdout}");
        assert!(stdout.contains("SSL connection"), "{stdout}");
        // psql with sslmode=disable from the network is refused too.
        let err = psql_err(
            &format!("{remote} sslmode=disable"),
            Some("s3cret"),
            &["SELECT 1"],
        )
        .expect("psql");
        assert!(err.contains("no pg_hba.conf entry"), "{err}");
    }
    // Loopback clients may still connect without TLS (with the password).
    let local = format!(
        "host=127.0.0.1 port={} user=gnomon dbname=gnomon password=s3cret",
        server.port
    );
    let (client, connection) = tokio_postgres::connect(&local, NoTls)
        .await
        .expect("plain loopback client");
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT 1::int4", &[])
        .await
        .expect("query");
    assert_eq!(row.get::<_, i32>(0), 1);
}

async fn try_connect(
    port: u16,
    user: &str,
    database: &str,
    password: Option<&str>,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut conn = format!("host=127.0.0.1 port={port} user={user} dbname={database}");
    if let Some(p) = password {
        conn.push_str(&format!(" password={p}"));
    }
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The SQLSTATE and message a login was refused with.
async fn refusal(
    port: u16,
    user: &str,
    database: &str,
    password: Option<&str>,
) -> (String, String) {
    match try_connect(port, user, database, password).await {
        Ok(_) => panic!("{user} on {database} with {password:?} got in"),
        Err(e) => (
            sqlstate(&e),
            e.as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string()),
        ),
    }
}

async fn login_user(port: u16, user: &str, database: &str, password: Option<&str>) -> String {
    let client = try_connect(port, user, database, password)
        .await
        .unwrap_or_else(|e| panic!("{user} on {database} refused: {e}"));
    client
        .query_one("SELECT current_user", &[])
        .await
        .expect("current_user")
        .get(0)
}

#[tokio::test]
async fn hba_rules_reject_trust_and_ask_for_passwords_first_match_wins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = make_certs(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let admin = server.connect().await;
    admin
        .batch_execute(
            "CREATE ROLE mallory LOGIN; CREATE ROLE alice LOGIN PASSWORD 'a-pw'; \
             CREATE ROLE bob LOGIN PASSWORD 'b-pw'; CREATE ROLE nopass LOGIN; \
             CREATE ROLE carol LOGIN",
        )
        .await
        .expect("roles");
    // CREATE DATABASE cannot share a message with other statements (25001, as PostgreSQL).
    admin
        .batch_execute("CREATE DATABASE other")
        .await
        .expect("database");
    drop(admin);
    server.terminate();

    let rule = |kind: &str, database: &str, user: &str, address: &str, method: &str| {
        format!(
            "[[hba]]\ntype = \"{kind}\"\ndatabase = \"{database}\"\nuser = \"{user}\"\n\
             address = \"{address}\"\nmethod = \"{method}\"\n"
        )
    };
    let config = dir.path().join("gnomon.toml");
    let mut toml = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        certs.cert.display(),
        certs.key.display()
    );
    for r in [
        rule("host", "all", "mallory", "127.0.0.1", "reject"),
        rule("hostnossl", "all", "alice", "127.0.0.0/8", "reject"),
        rule("hostssl", "all", "alice", "127.0.0.1/32", "scram-sha-256"),
        rule("host", "gnomon", "bob", "127.0.0.1", "scram-sha-256"),
        rule("host", "all", "gnomon, nopass", "127.0.0.1", "trust"),
    ] {
        toml.push_str(&r);
    }
    std::fs::write(&config, toml).expect("config");
    let server = Server::start_with(&data, &["--config", config.to_str().expect("utf-8")]);
    let port = server.port;

    // reject: refused before any password exchange, even while trust would apply by default.
    assert_eq!(
        refusal(port, "mallory", "gnomon", None).await,
        (
            "28000".to_string(),
            "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"mallory\", \
             database \"gnomon\", no encryption"
                .to_string()
        )
    );
    // hostnossl reject, then hostssl scram: alice gets in over TLS only.
    let (code, message) = refusal(port, "alice", "gnomon", Some("a-pw")).await;
    assert_eq!(code, "28000");
    assert!(
        message.starts_with("pg_hba.conf rejects connection"),
        "{message}"
    );
    // scram-sha-256: bob needs his password, and only for database gnomon.
    assert_eq!(login_user(port, "bob", "gnomon", Some("b-pw")).await, "bob");
    assert_eq!(
        refusal(port, "bob", "gnomon", Some("wrong")).await.0,
        "28P01"
    );
    assert_eq!(
        refusal(port, "bob", "other", Some("b-pw")).await,
        (
            "28000".to_string(),
            "no pg_hba.conf entry for host \"127.0.0.1\", user \"bob\", database \"other\", \
             no encryption"
                .to_string()
        )
    );
    // trust: no password asked (the superuser has none yet).
    assert_eq!(login_user(port, "nopass", "gnomon", None).await, "nopass");
    assert_eq!(login_user(port, "gnomon", "other", None).await, "gnomon");
    // No rule for carol at all.
    let (code, message) = refusal(port, "carol", "gnomon", None).await;
    assert_eq!(code, "28000");
    assert!(
        message.starts_with("no pg_hba.conf entry for host"),
        "{message}"
    );

    if let Some(out) = psql(
        &format!("host=localhost port={port} user=alice dbname=gnomon sslmode=require"),
        Some("a-pw"),
        &["SELECT current_user"],
    ) {
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(stdout.trim(), "alice");
        let err = psql_err(
            &format!("host=localhost port={port} user=alice dbname=gnomon sslmode=require"),
            Some("nope"),
            &["SELECT 1"],
        )
        .expect("psql");
        assert!(err.contains("password authentication failed"), "{err}");
        let err = psql_err(
            &format!("host=127.0.0.1 port={port} user=mallory dbname=gnomon sslmode=require"),
            None,
            &["SELECT 1"],
        )
        .expect("psql");
        assert!(
            err.contains("pg_hba.conf rejects connection for host \"127.0.0.1\", user \"mallory\", database \"gnomon\", SSL encryption"),
            "{err}"
        );
    }

    // trust never skips a password that exists: once the superuser has one, nopass (no
    // password) cannot get in any more, and gnomon must give its password.
    let admin = try_connect(port, "gnomon", "gnomon", None)
        .await
        .expect("admin");
    admin
        .batch_execute("ALTER ROLE gnomon PASSWORD 'g-pw'")
        .await
        .expect("password");
    assert_eq!(
        refusal(port, "nopass", "gnomon", Some("x")).await.0,
        "28P01"
    );
    assert_eq!(
        refusal(port, "gnomon", "gnomon", Some("x")).await.0,
        "28P01"
    );
    assert_eq!(
        login_user(port, "gnomon", "gnomon", Some("g-pw")).await,
        "gnomon"
    );

    // Refused logins are in the audit log.
    let audit = std::fs::read_to_string(data.join("audit.log")).expect("audit log");
    assert!(audit.contains("pg_hba.conf rejects connection"), "{audit}");
    assert!(audit.contains("no pg_hba.conf entry"), "{audit}");
}

/// Runs the binary with `args`, expecting it to refuse to start; its stderr.
fn refused_start(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gnomon"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run gnomon");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "gnomon started with {args:?}: {stderr}"
    );
    stderr
}

#[test]
fn bad_tls_files_and_unsafe_rules_stop_the_server_from_starting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = make_certs(dir.path());
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8");
    let cert = certs.cert.to_str().expect("utf-8");
    let key = certs.key.to_str().expect("utf-8");
    let listen = ["--data-dir", data, "--listen", "127.0.0.1:0"];
    let with = |extra: &[&str]| -> String {
        let args: Vec<&str> = listen.iter().chain(extra).copied().collect();
        refused_start(&args)
    };

    let missing = dir.path().join("missing.crt");
    let e = with(&[
        "--tls-cert",
        missing.to_str().expect("utf-8"),
        "--tls-key",
        key,
    ]);
    assert!(
        e.contains("cannot use TLS file") && e.contains("missing.crt"),
        "{e}"
    );
    let e = with(&["--tls-cert", key, "--tls-key", key]);
    assert!(e.contains("no PEM certificate"), "{e}");
    let e = with(&["--tls-cert", cert, "--tls-key", cert]);
    assert!(e.contains("no PEM private key"), "{e}");
    let e = with(&["--tls-cert", cert]);
    assert!(e.contains("give both"), "{e}");
    let e = with(&["--tls-required-for-remote"]);
    assert!(e.contains("tls_required_for_remote needs TLS"), "{e}");

    let config = dir.path().join("g.toml");
    let config_arg = config.to_str().expect("utf-8");
    std::fs::write(
        &config,
        "[[hba]]\ntype = \"host\"\ndatabase = \"all\"\nuser = \"all\"\n\
         address = \"0.0.0.0/0\"\nmethod = \"trust\"\n",
    )
    .expect("config");
    let e = with(&["--config", config_arg]);
    assert!(
        e.contains("entry 1") && e.contains("trust is only allowed for loopback"),
        "{e}"
    );
    std::fs::write(
        &config,
        "[[hba]]\ntype = \"hostssl\"\ndatabase = \"all\"\nuser = \"all\"\n\
         address = \"all\"\nmethod = \"scram-sha-256\"\n",
    )
    .expect("config");
    let e = with(&["--config", config_arg]);
    assert!(e.contains("TLS is not configured"), "{e}");
    // Nothing was created: the checks run before the data directory is opened.
    assert!(!Path::new(data).exists());
}

#[tokio::test]
async fn tokio_postgres_over_rustls_runs_queries_and_logs_in_with_scram() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = make_certs(dir.path());
    let server = start(&dir.path().join("data"), &tls_args(&certs));
    server
        .connect()
        .await
        .batch_execute("CREATE ROLE dora LOGIN PASSWORD 'd-pw'")
        .await
        .expect("role");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs.ca_der.clone()).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config);
    // SCRAM inside TLS (the client offers channel binding, the server declines it: 'y').
    let conn = format!(
        "host=localhost port={} user=dora password=d-pw dbname=gnomon sslmode=require",
        server.port
    );
    let (client, connection) = tokio_postgres::connect(&conn, tls)
        .await
        .expect("TLS login");
    tokio::spawn(connection);
    let ssl: String = client
        .query_one("SHOW ssl", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(ssl, "on");
    // The extended protocol, and a result larger than a TLS record and the 64 KiB flush.
    client
        .batch_execute("CREATE TABLE big (id int4 PRIMARY KEY, pad text)")
        .await
        .expect("create");
    let insert = client
        .prepare("INSERT INTO big VALUES ($1, $2)")
        .await
        .expect("prepare");
    let pad = "x".repeat(300);
    // NB: one transaction, so the test does not wait for 500 fsyncs.
    client.batch_execute("BEGIN").await.expect("begin");
    for id in 0..500i32 {
        client.execute(&insert, &[&id, &pad]).await.expect("insert");
    }
    client.batch_execute("COMMIT").await.expect("commit");
    let rows = client
        .query(
            "SELECT id, pad FROM big WHERE id >= $1 ORDER BY id",
            &[&0i32],
        )
        .await
        .expect("select");
    // ~160 KB of DataRows: several 16 KiB records and more than one 64 KiB flush.
    assert_eq!(rows.len(), 500);
    let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, (0..500).collect::<Vec<_>>());
    assert!(rows.iter().all(|r| r.get::<_, String>(1) == pad));
}
