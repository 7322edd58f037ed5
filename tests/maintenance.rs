//! Checkpoints and lazy GC of the real binary: with `--gc-window 50ms` a long update loop over
//! the wire keeps the stored versions flat (read from `/metrics`), background checkpoints run,
//! and the data survives a kill -9 and a clean restart (which replays nothing after its
//! shutdown checkpoint).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;

/// Liveness bound for waiting on the background GC: only a hung server reaches it.
const PATIENCE: Duration = Duration::from_secs(60);

fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to admin listener");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
}

/// The value of the sample `series` (exact text before the value) in a scrape.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing from /metrics:\n{scrape}"))
}

fn versions(scrape: &str) -> f64 {
    sample(scrape, "gnomon_gc_versions{layer=\"memtable\"}")
        + sample(scrape, "gnomon_gc_versions{layer=\"checkpoint\"}")
}

fn start(dir: &std::path::Path) -> (Server, u16) {
    let server = Server::start_with(
        dir,
        &[
            "--http",
            "127.0.0.1:0",
            "--gc-window",
            "50ms",
            "--checkpoint-wal-size",
            "32kB",
        ],
    );
    let http = server.http_port.expect("admin listener announced");
    (server, http)
}

#[tokio::test]
async fn versions_stay_flat_under_an_update_loop_and_survive_restarts() {
    const ROWS: i32 = 20;
    const ROUNDS: i32 = 40;
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = start(dir.path());
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)")
        .await
        .unwrap();
    for id in 0..ROWS {
        client
            .execute("INSERT INTO counters VALUES ($1, 0)", &[&id])
            .await
            .unwrap();
    }
    let baseline = versions(&scrape(http));
    let update = client
        .prepare("UPDATE counters SET n = n + 1 WHERE id = $1")
        .await
        .unwrap();
    let mut previous_round_end: Option<f64> = None;
    let mut samples = Vec::new();
    for _ in 0..ROUNDS {
        for id in 0..ROWS {
            client.execute(&update, &[&id]).await.unwrap();
        }
        // HLC physical time (µs) after this round's commits.
        let now: String = client
            .query_one("SELECT gnomon_hlc_now()::text", &[])
            .await
            .unwrap()
            .get(0);
        let now_s = now.split('.').next().unwrap().parse::<f64>().unwrap() / 1e6;
        // Wait (liveness only) for a GC pass whose safe point passed the previous round: then
        // every version older than it is collectable, whatever the scheduling was.
        if let Some(end) = previous_round_end {
            let deadline = Instant::now() + PATIENCE;
            while sample(&scrape(http), "gnomon_gc_safe_point_seconds") < end {
                assert!(Instant::now() < deadline, "no GC pass passed {end}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        previous_round_end = Some(now_s);
        samples.push(versions(&scrape(http)));
    }
    let last = scrape(http);
    // Per row at most a handful of versions (current round, the newest below the safe point,
    // and the same in the checkpoint file), however many rounds ran.
    let bound = 2.0 * baseline + 8.0 * f64::from(ROWS);
    assert!(
        samples.iter().all(|&n| n <= bound),
        "stored versions grew past {bound}: {samples:?}"
    );
    assert!(
        sample(&last, "gnomon_gc_versions_collected_total") >= f64::from(ROWS * ROUNDS) - bound
    );
    assert!(sample(&last, "gnomon_checkpoints_total") >= 1.0, "{last}");

    // kill -9: everything acknowledged is there after recovery from checkpoint + WAL.
    drop(client);
    server.kill9();
    let (server, http) = start(dir.path());
    let client = server.connect().await;
    let total: i64 = client
        .query_one("SELECT sum(n)::int8 FROM counters", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, i64::from(ROWS * ROUNDS));
    assert!(sample(&scrape(http), "gnomon_checkpoint_last_lsn") > 0.0);

    // A clean shutdown checkpoints: the next start has nothing to replay.
    drop(client);
    assert!(server.terminate().success());
    let (server, http) = start(dir.path());
    assert_eq!(
        sample(&scrape(http), "gnomon_wal_bytes_since_checkpoint"),
        0.0
    );
    let client = server.connect().await;
    let total: i64 = client
        .query_one("SELECT sum(n)::int8 FROM counters", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, i64::from(ROWS * ROUNDS));
}
