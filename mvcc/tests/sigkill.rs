//! SIGKILL loses no acknowledged commit: a child process commits in a loop and reports each
//! acknowledged commit; it is killed at several moments and every acknowledged commit must be
//! there after recovery.
//!
//! NB: in a test binary of its own, because spawning a child forks this process: a forked
//! child briefly holds copies of every open descriptor, including another test's data
//! directory lock, which would make that test's quick reopen fail as "locked".

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gnomon_mvcc::{Db, DbOptions, Isolation, MvccError, SyncPolicy};

fn open(dir: &Path, sync: SyncPolicy) -> Result<Arc<Db>, MvccError> {
    Db::open(DbOptions {
        dir: dir.to_path_buf(),
        sync,
        ..DbOptions::default()
    })
}

const CHILD_ENV: &str = "GNOMON_CRASH_CHILD_DIR";

/// The child side of `sigkill_loses_no_acknowledged_commit`: commits forever, printing each
/// acknowledged commit. Does nothing when run as an ordinary test.
#[test]
fn crash_child_commit_loop() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = open(Path::new(&dir), SyncPolicy::Fsync).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0.. {
                    let key = format!("w{w}-{i:08}");
                    let mut t = db.begin(Isolation::ReadCommitted);
                    t.put(key.as_bytes(), Bytes::from(key.clone())).unwrap();
                    t.commit().unwrap();
                    println!("ACK {key}");
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn sigkill_loses_no_acknowledged_commit() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<String> = Vec::new();
    // Three kills at different moments, each on top of the previous history.
    for (round, wait_ms) in [(0, 150u64), (1, 400), (2, 50)] {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_commit_loop",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ACK ").map(str::to_string))
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(wait_ms + 300));
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        let _ = child.wait();
        let round_acks = reader.join().unwrap();
        assert!(
            !round_acks.is_empty(),
            "round {round}: the child acknowledged nothing"
        );
        acked.extend(round_acks);
        let db = open(dir.path(), SyncPolicy::Fsync).unwrap();
        let t = db.begin(Isolation::ReadCommitted);
        for key in &acked {
            assert!(
                t.get(key.as_bytes()).unwrap().is_some(),
                "round {round}: acknowledged {key} is lost"
            );
        }
    }
}
