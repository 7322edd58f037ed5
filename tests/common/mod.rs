//! Shared helpers for the end-to-end tests: start the real `gnomon` binary on a free port with
//! its own data directory, connect clients to it, and kill it when the test ends.

#![allow(dead_code)] // each test binary uses a different subset

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Upper bound for the server to come up (opening the data dir, recovery); only guards
/// against a hung test, it is not a performance assertion.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `gnomon` process, killed (SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    /// Port it listens on (127.0.0.1).
    pub port: u16,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Port of the admin HTTP listener, when started with `--http`.
    pub http_port: Option<u16>,
}

impl Server {
    /// Starts the server on `data_dir` listening on a free loopback port.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    /// Like [`Server::start`] with extra command-line arguments.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec![
            "--data-dir".into(),
            data_dir.as_os_str().to_owned(),
            // Port 0: the kernel picks a free port; the server logs the one it got.
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        Self::spawn(data_dir, &args)
    }

    /// Starts `gnomon` with exactly `args`; `data_dir` is where the caller expects its data.
    pub fn spawn(data_dir: &Path, args: &[OsString]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gnomon"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gnomon");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[gnomon] {line}");
                // Structured log lines `<time>  INFO gnomon_server: [admin HTTP ]listening on ADDR`;
                // the admin line, if any, comes first.
                for (marker, admin) in [
                    (" gnomon_server: admin HTTP listening on ", true),
                    (" gnomon_server: listening on ", false),
                ] {
                    if let Some((_, rest)) = line.split_once(marker) {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        if let Some(sender) = &tx {
                            let _ = sender.send((admin, addr.to_string()));
                        }
                        if !admin {
                            tx = None;
                        }
                    }
                }
            }
        });
        let port_of = |addr: &str| -> u16 {
            addr.rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("cannot parse listen address {addr:?}"))
        };
        let mut http_port = None;
        let port = loop {
            match rx.recv_timeout(START_TIMEOUT) {
                Ok((true, addr)) => http_port = Some(port_of(&addr)),
                Ok((false, addr)) => break port_of(&addr),
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!("gnomon did not start listening (exit: {status:?})");
                }
            }
        };
        Server {
            child: Some(child),
            port,
            data_dir: data_dir.to_path_buf(),
            http_port,
        }
    }

    /// OS process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// libpq-style connection string for user/database `gnomon`.
    pub fn conn_str(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=gnomon dbname=gnomon",
            self.port
        )
    }

    /// Connects a tokio-postgres client (its connection task runs in the background).
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.conn_str(), tokio_postgres::NoTls)
            .await
            .expect("connect to gnomon");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// SIGKILL: the process dies without any chance to clean up.
    pub fn kill9(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn terminate(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server is running");
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        child.wait().expect("wait for gnomon")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The SQLSTATE of a tokio-postgres error ("" if it carries none).
pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

/// A PostgreSQL client tool (`psql`, `pgbench`): on PATH, else Debian's PostgreSQL 15 location;
/// None if neither exists.
pub fn find_pg_tool(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let debian = Path::new("/usr/lib/postgresql/15/bin").join(name);
        debian.is_file().then_some(debian)
    })
}

/// A program on PATH, if any.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The first column of every row of a simple query, as text (`NULL` for a null).
pub async fn col(c: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    c.simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some(r.get(0).unwrap_or("NULL").to_string())
            }
            _ => None,
        })
        .collect()
}

/// Runs the pgbench at `bin` against `server`'s database `gnomon` as user `gnomon`, asserts
/// it succeeded, and returns its stdout and stderr.
pub fn pgbench(bin: &Path, server: &Server, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &server.port.to_string(),
            "-U",
            "gnomon",
        ])
        .args(args)
        .arg("gnomon")
        .env_remove("PGPASSWORD")
        .output()
        .expect("run pgbench");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    text
}

/// Runs `psql -X -v ON_ERROR_STOP=1 -f script` as `gnomon` against `server`, from the
/// repository root (scripts name their data files relative to it).
pub fn psql_script(psql: &Path, server: &Server, script: &Path) -> std::process::Output {
    Command::new(psql)
        // Scripts name their data files relative to the repository root.
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
        .arg(server.port.to_string())
        .args(["-U", "gnomon", "gnomon", "-f"])
        .arg(script)
        .env_remove("PGPASSWORD")
        .env("PGCONNECT_TIMEOUT", "30")
        .output()
        .expect("run psql")
}
