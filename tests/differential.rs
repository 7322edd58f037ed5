//! Differential test: the corpus in `tests/differential/*.sql` runs on a throwaway
//! PostgreSQL 15 and on Gnomon, and every statement's outcome must be the same on both:
//! column names, column type OIDs (from a Describe of the statement), every row as text
//! (simple protocol, so values are PostgreSQL's text output), the row count of the command
//! tag, or the SQLSTATE of the error.
//!
//! Corpus format: statements end with `;` at the end of a line; `--` lines are comments.
//! Queries whose row order is unspecified carry an ORDER BY. Known differences are kept out
//! of the corpus, listed in a comment at the top of the file they would belong to.
//!
//! PostgreSQL comes from `/usr/lib/postgresql/15/bin` (or `GNOMON_PG_BIN`); it runs as the
//! `postgres` user when the test runs as root (initdb refuses root). Without it the test is
//! skipped with a message, or fails when `GNOMON_REQUIRE_DRIVERS` is set (CI).

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Server;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// A throwaway PostgreSQL cluster, stopped (immediate mode) when dropped.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    run_as: Option<String>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Postgres {
    fn cmd(&self, tool: &str) -> Command {
        command(&self.bin, self.run_as.as_deref(), tool)
    }

    fn start(bin: &Path) -> Result<Postgres, String> {
        // SAFETY: geteuid has no preconditions and no side effects.
        let root = unsafe { libc::geteuid() } == 0;
        let run_as = root.then(|| "postgres".to_string());
        let dir = tempfile::Builder::new()
            .prefix("gnomon-differential-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        if let Some(user) = &run_as {
            let id = |flag: &str| -> Result<u32, String> {
                let out = Command::new("id")
                    .args([flag, user])
                    .output()
                    .map_err(|e| format!("id: {e}"))?;
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .map_err(|_| format!("no user {user} to run PostgreSQL as (we are root)"))
            };
            std::os::unix::fs::chown(dir.path(), Some(id("-u")?), Some(id("-g")?))
                .map_err(|e| format!("chown temp dir: {e}"))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("free port: {e}"))?
            .port();
        let pg = Postgres {
            bin: bin.to_path_buf(),
            data: dir.path().join("data"),
            run_as,
            port,
            _dir: dir,
        };
        let out = pg
            .cmd("initdb")
            .arg("-D")
            .arg(&pg.data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "-N",
            ])
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let sock = pg
            .data
            .parent()
            .unwrap_or(Path::new("/tmp"))
            .display()
            .to_string();
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{sock}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             shared_buffers = 16MB\nmax_connections = 10\ntimezone = 'UTC'\n"
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(pg.data.join("postgresql.conf"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, conf.as_bytes()))
            .map_err(|e| format!("postgresql.conf: {e}"))?;
        let out = pg
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&pg.data)
            .arg("-l")
            .arg(pg.data.join("postgres.log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pg_ctl start failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(pg)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn command(bin: &Path, run_as: Option<&str>, tool: &str) -> Command {
    match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(bin.join(tool));
            c
        }
        None => Command::new(bin.join(tool)),
    }
}

fn pg_bin() -> Option<PathBuf> {
    let bin = std::env::var_os("GNOMON_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    bin.join("initdb").is_file().then_some(bin)
}

async fn connect(conn: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(conn, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {conn}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// One statement of a corpus file.
struct Statement {
    file: String,
    line: usize,
    sql: String,
}

fn load_corpus() -> Vec<Statement> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read tests/differential")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read corpus file");
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let mut sql = String::new();
        let mut start = 0;
        for (i, line) in text.lines().enumerate() {
            if sql.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with("--")) {
                continue;
            }
            if sql.is_empty() {
                start = i + 1;
            }
            sql.push_str(line);
            sql.push('\n');
            if line.trim_end().ends_with(';') {
                out.push(Statement {
                    file: file.clone(),
                    line: start,
                    sql: std::mem::take(&mut sql),
                });
            }
        }
        assert!(
            sql.trim().is_empty(),
            "{file}: statement without a final ';'"
        );
    }
    out
}

/// Everything a client sees of one statement, rendered as text.
async fn outcome(client: &Client, sql: &str) -> String {
    let mut out = String::new();
    match client.simple_query(sql).await {
        Err(e) => {
            let _ = write!(out, "ERROR {}", common::sqlstate(&e));
            return out;
        }
        Ok(messages) => {
            for m in messages {
                match m {
                    SimpleQueryMessage::RowDescription(cols) => {
                        let names: Vec<&str> = cols.iter().map(|c| c.name()).collect();
                        let _ = writeln!(out, "columns: {}", names.join(", "));
                    }
                    SimpleQueryMessage::Row(row) => {
                        let values: Vec<String> = (0..row.len())
                            .map(|i| match row.get(i) {
                                Some(v) => format!("{v:?}"),
                                None => "NULL".to_string(),
                            })
                            .collect();
                        let _ = writeln!(out, "{}", values.join(" | "));
                    }
                    SimpleQueryMessage::CommandComplete(n) => {
                        let _ = writeln!(out, "({n} rows)");
                    }
                    _ => {}
                }
            }
        }
    }
    let first = sql.split_whitespace().next().unwrap_or("");
    if ["select", "with", "values"].contains(&first.to_ascii_lowercase().as_str()) {
        // The result types as a Describe reports them (what drivers decode by).
        match client.prepare(sql).await {
            Ok(stmt) => {
                let oids: Vec<String> = stmt
                    .columns()
                    .iter()
                    .map(|c| c.type_().oid().to_string())
                    .collect();
                let _ = writeln!(out, "types: {}", oids.join(", "));
            }
            Err(e) => {
                let _ = writeln!(out, "describe: ERROR {}", common::sqlstate(&e));
            }
        }
    }
    out
}

#[tokio::test]
async fn corpus_gives_the_same_results_as_postgres() {
    let Some(bin) = pg_bin() else {
        if std::env::var_os("GNOMON_REQUIRE_DRIVERS").is_some() {
            panic!("PostgreSQL 15 (initdb) is required (GNOMON_REQUIRE_DRIVERS is set)");
        }
        eprintln!("SKIPPED: no PostgreSQL 15 at /usr/lib/postgresql/15/bin (set GNOMON_PG_BIN)");
        return;
    };
    let pg = match Postgres::start(&bin) {
        Ok(pg) => pg,
        Err(e) if std::env::var_os("GNOMON_REQUIRE_DRIVERS").is_none() => {
            eprintln!("SKIPPED: cannot start PostgreSQL: {e}");
            return;
        }
        Err(e) => panic!("cannot start PostgreSQL: {e}"),
    };
    let pg_client = connect(&format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        pg.port
    ))
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let gn_client = server.connect().await;

    let corpus = load_corpus();
    let mut differences = Vec::new();
    for st in &corpus {
        let want = outcome(&pg_client, &st.sql).await;
        let got = outcome(&gn_client, &st.sql).await;
        if want != got {
            differences.push(format!(
                "{}:{}: {}--- PostgreSQL\n{want}--- Gnomon\n{got}",
                st.file, st.line, st.sql
            ));
        }
    }
    assert!(
        corpus.len() > 100,
        "the corpus is too small: {}",
        corpus.len()
    );
    assert!(
        differences.is_empty(),
        "{} of {} statements differ from PostgreSQL 15:\n\n{}",
        differences.len(),
        corpus.len(),
        differences.join("\n")
    );
    eprintln!("{} statements: same results as PostgreSQL 15", corpus.len());
}
