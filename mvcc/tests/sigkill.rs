//! SIGKILL loses no acknowledged commit: a child process commits in a loop and reports each
//! acknowledged commit; it is killed at several moments and every acknowledged commit must be
//! there after recovery. The second test does the same while background checkpoints run every
//! few KiB of log (so kills land inside checkpoints and segment removals).
//!
//! NB: in a test binary of its own, because spawning a child forks this process: a forked
//! child briefly holds copies of every open descriptor, including another test's data
//! directory lock, which would make that test's quick reopen fail as "locked".

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use gnomon_mvcc::{Db, DbOptions, Isolation, MaintenanceOptions, MvccError, SyncPolicy};

fn open(dir: &Path, segment_size: u64) -> Result<Arc<Db>, MvccError> {
    Db::open(DbOptions {
        dir: dir.to_path_buf(),
        sync: SyncPolicy::Fsync,
        segment_size,
        ..DbOptions::default()
    })
}

const CHILD_ENV: &str = "GNOMON_CRASH_CHILD_DIR";
/// Set (to anything) when the child should run background checkpoints.
const CHILD_CHECKPOINTS_ENV: &str = "GNOMON_CRASH_CHILD_CHECKPOINTS";
/// Small segments and checkpoints every few KiB, so kills land in checkpoints and removals.
const SMALL_SEGMENT: u64 = 16 << 10;

/// Liveness bound for the child's first acknowledgement (and first checkpoint).
const PATIENCE: Duration = Duration::from_secs(60);

/// The child side of `sigkill_loses_no_acknowledged_commit`: commits forever, printing each
/// acknowledged commit (and, with checkpoints, each checkpoint taken). Does nothing when run
/// as an ordinary test.
#[test]
fn crash_child_commit_loop() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let checkpoints = std::env::var(CHILD_CHECKPOINTS_ENV).is_ok();
    let segment_size = if checkpoints {
        SMALL_SEGMENT
    } else {
        DbOptions::default().segment_size
    };
    let db = open(Path::new(&dir), segment_size).unwrap();
    let _maintenance = checkpoints.then(|| {
        db.start_maintenance(MaintenanceOptions {
            checkpoint_wal_size: 4 << 10,
            ..MaintenanceOptions::default()
        })
        .unwrap()
    });
    if checkpoints {
        let db = db.clone();
        std::thread::spawn(move || {
            let mut seen = 0;
            loop {
                let taken = db.maintenance_stats().checkpoints;
                if taken > seen {
                    seen = taken;
                    println!("CHECKPOINT {taken}");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
    }
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
    kill_and_recover(false);
}

#[test]
fn sigkill_during_background_checkpoints_loses_no_acknowledged_commit() {
    kill_and_recover(true);
}

fn kill_and_recover(checkpoints: bool) {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<String> = Vec::new();
    // Three kills at different moments after the child is running, each on top of the previous
    // history.
    for (round, wait_ms) in [(0, 150u64), (1, 400), (2, 50)] {
        let mut command = Command::new(&exe);
        if checkpoints {
            command.env(CHILD_CHECKPOINTS_ENV, "1");
        }
        let mut child = command
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
        let (lines_tx, lines) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait (liveness only) until the child acknowledged a commit and, with checkpoints,
        // took one in this life; then let it run a little and kill it.
        let mut round_acks = Vec::new();
        let mut checkpointed = !checkpoints;
        while round_acks.is_empty() || !checkpointed {
            let line = lines
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("round {round}: the child made no progress"));
            match line.strip_prefix("ACK ") {
                Some(key) => round_acks.push(key.to_string()),
                None => checkpointed |= line.starts_with("CHECKPOINT "),
            }
        }
        std::thread::sleep(Duration::from_millis(wait_ms));
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        let _ = child.wait();
        reader.join().unwrap();
        round_acks.extend(
            lines
                .try_iter()
                .filter_map(|l| l.strip_prefix("ACK ").map(str::to_string)),
        );
        acked.extend(round_acks);
        let db = open(dir.path(), SMALL_SEGMENT).unwrap();
        if checkpoints {
            assert!(db.recovery_stats().checkpoint_lsn > 0);
        }
        let t = db.begin(Isolation::ReadCommitted);
        for key in &acked {
            assert!(
                t.get(key.as_bytes()).unwrap().is_some(),
                "round {round}: acknowledged {key} is lost"
            );
        }
    }
}
