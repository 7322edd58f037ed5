//! The sqllogictest conformance files `tests/slt/select1-3.test` (from `shared/conformance/slt`) against the real
//! server, through both PostgreSQL protocols, the way the `sqllogictest-bin` runner's
//! `--engine postgres` (simple query protocol, values as the server's text) and
//! `--engine postgres-extended` (prepared statements, values decoded by type and printed
//! like that runner prints them) drive a server. The `sqllogictest` library (the runner's
//! own crate) parses the files, hashes large results and compares; each file runs on a fresh
//! server. Every record must pass; the test prints the pass counts.

mod common;

use std::path::PathBuf;

use common::Server;
use sqllogictest::{DBOutput, DefaultColumnType, Record};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Where the conformance files are: `tests/slt/`, copied from `shared/conformance/slt/` so
/// that a clean clone runs them with nothing beside the repository.
fn slt_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Simple,
    Extended,
}

struct Gnomon {
    client: Client,
    protocol: Protocol,
}

#[derive(Debug)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> DbError {
        DbError(match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        })
    }
}

/// A numeric value in its text form, decoded from the binary format (base-10000 digits).
struct NumericText(String);

impl<'a> FromSql<'a> for NumericText {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> Result<NumericText, Box<dyn std::error::Error + Sync + Send>> {
        let word = |i: usize| -> Result<i16, Box<dyn std::error::Error + Sync + Send>> {
            let b = raw.get(2 * i..2 * i + 2).ok_or("short numeric")?;
            Ok(i16::from_be_bytes([b[0], b[1]]))
        };
        let ndigits = word(0)? as i64;
        let weight = word(1)? as i64;
        let sign = word(2)? as u16;
        let dscale = word(3)? as u16 as usize;
        if sign == 0xC000 {
            return Ok(NumericText("NaN".into()));
        }
        let digit = |i: i64| -> Result<i16, Box<dyn std::error::Error + Sync + Send>> {
            if i < 0 || i >= ndigits {
                Ok(0)
            } else {
                word(4 + i as usize)
            }
        };
        let mut s = String::new();
        if sign == 0x4000 {
            s.push('-');
        }
        if weight < 0 {
            s.push('0');
        } else {
            for i in 0..=weight {
                if i == 0 {
                    s.push_str(&digit(i)?.to_string());
                } else {
                    s.push_str(&format!("{:04}", digit(i)?));
                }
            }
        }
        if dscale > 0 {
            let mut frac = String::new();
            let mut i = weight + 1;
            while frac.len() < dscale {
                frac.push_str(&format!("{:04}", digit(i)?));
                i += 1;
            }
            frac.truncate(dscale);
            s.push('.');
            s.push_str(&frac);
        }
        Ok(NumericText(s))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

fn non_empty(s: String) -> String {
    if s.is_empty() {
        "(empty)".into()
    } else {
        s
    }
}

/// One value of an extended-protocol row as the sqllogictest runner prints it.
fn cell(row: &tokio_postgres::Row, i: usize) -> Result<String, DbError> {
    fn opt<T>(
        v: Result<Option<T>, tokio_postgres::Error>,
        f: impl Fn(T) -> String,
    ) -> Result<String, DbError> {
        Ok(v?.map(f).unwrap_or_else(|| "NULL".into()))
    }
    let ty = row.columns()[i].type_().clone();
    match ty {
        Type::INT2 => opt(row.try_get::<_, Option<i16>>(i), |v| v.to_string()),
        Type::INT4 => opt(row.try_get::<_, Option<i32>>(i), |v| v.to_string()),
        Type::INT8 => opt(row.try_get::<_, Option<i64>>(i), |v| v.to_string()),
        Type::FLOAT4 => opt(row.try_get::<_, Option<f32>>(i), |v| v.to_string()),
        Type::FLOAT8 => opt(row.try_get::<_, Option<f64>>(i), |v| v.to_string()),
        Type::NUMERIC => opt(row.try_get::<_, Option<NumericText>>(i), |v| v.0),
        Type::BOOL => opt(row.try_get::<_, Option<bool>>(i), |v| {
            if v { "t" } else { "f" }.to_string()
        }),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => {
            opt(row.try_get::<_, Option<String>>(i), non_empty)
        }
        other => Err(DbError(format!(
            "type {other} is not handled by this runner"
        ))),
    }
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Gnomon {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let mut rows: Vec<Vec<String>> = Vec::new();
        let (count, width) = match self.protocol {
            Protocol::Simple => {
                let mut count = 0;
                let mut width = None;
                for m in self.client.simple_query(sql).await? {
                    match m {
                        SimpleQueryMessage::Row(r) => {
                            rows.push(
                                (0..r.len())
                                    .map(|i| match r.get(i) {
                                        Some(v) => non_empty(v.to_string()),
                                        None => "NULL".into(),
                                    })
                                    .collect(),
                            );
                        }
                        SimpleQueryMessage::RowDescription(d) => width = Some(d.len()),
                        SimpleQueryMessage::CommandComplete(n) => {
                            count = n;
                            break;
                        }
                        _ => {}
                    }
                }
                (count, width)
            }
            Protocol::Extended => {
                let stmt = self.client.prepare(sql).await?;
                let width = (!stmt.columns().is_empty()).then(|| stmt.columns().len());
                let result = self.client.query(&stmt, &[]).await?;
                for r in &result {
                    rows.push((0..r.len()).map(|i| cell(r, i)).collect::<Result<_, _>>()?);
                }
                (result.len() as u64, width)
            }
        };
        Ok(match width {
            Some(w) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; w],
                rows,
            },
            None => DBOutput::StatementComplete(count),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        match self.protocol {
            Protocol::Simple => "postgres",
            Protocol::Extended => "postgres-extended",
        }
    }
}

/// Runs `records` through one protocol on a fresh server; returns (passed, failed) records
/// and the first failures.
async fn run_records(
    records: Vec<Record<DefaultColumnType>>,
    protocol: Protocol,
) -> (usize, usize, Vec<String>) {
    let data = tempfile::tempdir().expect("temp dir");
    let server = Server::start(data.path());
    let client = server.connect().await;
    let mut db = Some(Gnomon { client, protocol });
    let mut runner = sqllogictest::Runner::new(move || {
        let db = db.take();
        async move { db.ok_or(DbError("one connection only".into())) }
    });
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut failures = Vec::new();
    for record in records {
        let counted = matches!(record, Record::Statement { .. } | Record::Query { .. });
        match runner.run_async(record).await {
            Ok(_) => passed += counted as usize,
            Err(e) => {
                failed += 1;
                if failures.len() < 10 {
                    failures.push(e.to_string());
                }
            }
        }
    }
    (passed, failed, failures)
}

/// Runs one conformance file through one protocol; every record must pass.
async fn run_file(file: &str, protocol: Protocol) {
    let dir = slt_dir();
    let records =
        sqllogictest::parse_file::<DefaultColumnType>(dir.join(file)).expect("parse slt file");
    let (passed, failed, failures) = run_records(records, protocol).await;
    let engine = match protocol {
        Protocol::Simple => "postgres",
        Protocol::Extended => "postgres-extended",
    };
    println!("sqllogictest {file} --engine {engine}: {passed} passed, {failed} failed");
    assert!(
        failed == 0,
        "{file} ({engine}): {failed} records failed, {passed} passed; first failures:\n{}",
        failures.join("\n---\n")
    );
}

/// The harness notices wrong results, wrong hashes and unexpected errors (so the
/// conformance runs below can fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_expectations_are_reported() {
    let script = "hash-threshold 2\n\n\
statement ok\nCREATE TABLE t(a INTEGER, b INTEGER)\n\n\
statement ok\nINSERT INTO t VALUES (1, 2), (3, 4)\n\n\
query I rowsort\nSELECT a FROM t\n----\n1\n3\n\n\
query I nosort\nSELECT a FROM t ORDER BY a DESC\n----\n1\n3\n\n\
query II rowsort\nSELECT a, b FROM t\n----\n4 values hashing to 00000000000000000000000000000000\n\n\
statement ok\nSELECT * FROM missing\n";
    for protocol in [Protocol::Simple, Protocol::Extended] {
        let records = sqllogictest::parse::<DefaultColumnType>(script).expect("parse script");
        let (passed, failed, _) = run_records(records, protocol).await;
        assert_eq!((passed, failed), (3, 3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select1_simple_protocol() {
    run_file("select1.test", Protocol::Simple).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select1_extended_protocol() {
    run_file("select1.test", Protocol::Extended).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select2_simple_protocol() {
    run_file("select2.test", Protocol::Simple).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select2_extended_protocol() {
    run_file("select2.test", Protocol::Extended).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select3_simple_protocol() {
    run_file("select3.test", Protocol::Simple).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select3_extended_protocol() {
    run_file("select3.test", Protocol::Extended).await;
}
