//! pgbench, unmodified, against the real server: initialisation in both data-generation modes,
//! the built-in scripts in every query mode, and TPC-B's balance invariant afterwards.

mod common;

use common::{pgbench, Server};

#[tokio::test(flavor = "multi_thread")]
async fn pgbench_initialises_and_runs_every_builtin_script_in_every_mode() {
    let Some(bin) = common::find_pg_tool("pgbench") else {
        if std::env::var_os("GNOMON_REQUIRE_DRIVERS").is_some() {
            panic!("pgbench is required in CI but was not found");
        }
        eprintln!("SKIPPED: pgbench not found on PATH nor in /usr/lib/postgresql/15/bin");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    // Server-side generation (INSERT ... SELECT generate_series), then the default client-side
    // COPY path with VACUUM and ALTER TABLE ... ADD PRIMARY KEY.
    pgbench(&bin, &server, &["-i", "-I", "dtGvp", "-s", "1", "-q"]);
    pgbench(&bin, &server, &["-i", "-s", "1", "-q"]);
    for mode in ["simple", "extended", "prepared"] {
        for script in [&[][..], &["-N"][..], &["-S"][..]] {
            let mut args = vec![
                "-M",
                mode,
                "-c",
                "4",
                "-j",
                "2",
                "-t",
                "50",
                "--max-tries=5",
            ];
            args.extend_from_slice(script);
            let out = pgbench(&bin, &server, &args);
            assert!(
                out.contains("number of transactions actually processed: 200/200"),
                "{mode} {script:?}:\n{out}"
            );
        }
    }
    // TPC-B's invariant: one final run without the pre-run vacuum (which truncates the
    // history); every table's total must move by the same amount as the history's.
    let client = server.connect().await;
    let totals = || tpcb_totals(&client);
    let before = totals().await;
    pgbench(
        &bin,
        &server,
        &["-M", "prepared", "-n", "-c", "4", "-j", "2", "-t", "50"],
    );
    let after = totals().await;
    let moved: Vec<i64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(moved[4], 200, "one history row per transaction");
    assert_eq!(
        (moved[0], moved[1], moved[2]),
        (moved[3], moved[3], moved[3]),
        "accounts, branches and tellers move with the history: {before:?} -> {after:?}"
    );
}

/// The counts of the four pgbench tables, as text.
async fn pgbench_counts(client: &tokio_postgres::Client) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["accounts", "branches", "tellers", "history"] {
        out.extend(common::col(client, &format!("select count(*) from pgbench_{table}")).await);
    }
    out
}

/// Checkpoints every MB of WAL, so range deletes meet checkpoints and GC mid-load.
const CHECKPOINT_OFTEN: &[&str] = &["--checkpoint-wal-size", "1MB"];

/// `pgbench -i` drops old rows with range deletes (TRUNCATE, and ADD PRIMARY KEY's move of
/// the rows to a new table id): after kill -9 right after it, after a second initialisation
/// over the first, and with an ADD PRIMARY KEY or a TRUNCATE cut off by kill -9, a restart
/// finds exactly the committed rows.
#[tokio::test(flavor = "multi_thread")]
async fn pgbench_init_survives_kill9_after_and_during_its_bulk_deletes() {
    let Some(bin) = common::find_pg_tool("pgbench") else {
        eprintln!("SKIPPED: pgbench not found on PATH nor in /usr/lib/postgresql/15/bin");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = ["100000", "1", "10", "0"];
    let server = Server::start_with(dir.path(), CHECKPOINT_OFTEN);
    pgbench(&bin, &server, &["-i", "-s", "1", "-q"]);
    // A second run over the first: its TRUNCATE drops the loaded rows before the new COPY.
    pgbench(&bin, &server, &["-i", "-I", "g", "-s", "1", "-q"]);
    server.kill9();

    let server = Server::start_with(dir.path(), CHECKPOINT_OFTEN);
    let client = server.connect().await;
    assert_eq!(pgbench_counts(&client).await, expected);
    let dup = client
        .simple_query("insert into pgbench_accounts values (7, 1, 0, '')")
        .await
        .expect_err("the primary key survived");
    assert_eq!(common::sqlstate(&dup), "23505");
    // Committed TRUNCATE of a loaded table, an uncommitted one of another, then an ADD
    // PRIMARY KEY that kill -9 cuts off wherever it is (committed or not, all or nothing).
    client
        .simple_query("truncate pgbench_tellers")
        .await
        .unwrap();
    client
        .simple_query("begin; truncate pgbench_branches")
        .await
        .unwrap();
    let other = server.connect().await;
    other
        .simple_query(
            "create table copy_of_accounts (aid int not null, abalance int); \
             insert into copy_of_accounts select aid, abalance from pgbench_accounts",
        )
        .await
        .unwrap();
    let alter = tokio::spawn(async move {
        let _ = other
            .simple_query("alter table copy_of_accounts add primary key (aid)")
            .await;
    });
    // Somewhere inside the ALTER (or before or after it: every outcome is checked the same).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.kill9();
    let _ = alter.await;

    let server = Server::start_with(dir.path(), CHECKPOINT_OFTEN);
    let client = server.connect().await;
    assert_eq!(
        pgbench_counts(&client).await,
        ["100000", "1", "0", "0"],
        "the committed TRUNCATE stays, the open one is gone"
    );
    assert_eq!(
        common::col(&client, "select count(*) from copy_of_accounts").await,
        ["100000"]
    );
    // Whether or not the ALTER committed, the table holds each row once.
    let sums = client
        .simple_query("select sum(aid)::text from copy_of_accounts")
        .await
        .unwrap();
    let sum = sums.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(sum.as_deref(), Some("5000050000"));
    // GC and the checkpoints after it (one per MB of WAL) and another restart keep them.
    client.simple_query("vacuum").await.unwrap();
    client
        .simple_query(
            "create table filler (aid int, filler text); \
             insert into filler select aid, filler from pgbench_accounts",
        )
        .await
        .unwrap();
    server.kill9();
    let server = Server::start_with(dir.path(), CHECKPOINT_OFTEN);
    let client = server.connect().await;
    assert_eq!(pgbench_counts(&client).await, ["100000", "1", "0", "0"]);
    assert_eq!(
        common::col(&client, "select count(*) from copy_of_accounts").await,
        ["100000"]
    );
}

/// The TPC-B balances of the four tables and the history's delta sum and row count.
async fn tpcb_totals(client: &tokio_postgres::Client) -> Vec<i64> {
    let mut out = Vec::new();
    for sql in [
        "select sum(abalance) from pgbench_accounts",
        "select sum(bbalance) from pgbench_branches",
        "select sum(tbalance) from pgbench_tellers",
        "select sum(delta) from pgbench_history",
        "select count(*) from pgbench_history",
    ] {
        let row = client.query_one(sql, &[]).await.expect(sql);
        out.push(row.get::<_, Option<i64>>(0).unwrap_or(0));
    }
    out
}

/// pgbench TPC-B running (fsync on) when the server is killed with -9, twice: the restart
/// finds every transaction another session saw committed, and TPC-B's invariant holds (each
/// transaction all or nothing). The second round writes into the log's preallocated zeros as
/// the first restart kept them, and crashes inside them again.
#[tokio::test(flavor = "multi_thread")]
async fn tpcb_killed_mid_run_keeps_every_seen_commit_and_the_balance_invariant() {
    let Some(bin) = common::find_pg_tool("pgbench") else {
        eprintln!("SKIPPED: pgbench not found on PATH nor in /usr/lib/postgresql/15/bin");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    pgbench(&bin, &server, &["-i", "-s", "1", "-q"]);
    let mut server = Some(server);
    for round in 0..2 {
        let running = server.take().expect("a running server");
        let client = running.connect().await;
        let seen_before = tpcb_totals(&client).await[4];
        let mut load = std::process::Command::new(&bin)
            .args(["-h", "127.0.0.1", "-p", &running.port.to_string()])
            .args(["-U", "gnomon", "-n", "-M", "prepared", "-c", "4", "-j", "2"])
            .args(["-T", "600", "gnomon"])
            .env_remove("PGPASSWORD")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start pgbench");
        // Until another session sees 300 more committed transactions (no time limit asserted).
        let mut seen = seen_before;
        while seen < seen_before + 300 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            seen = tpcb_totals(&client).await[4];
        }
        running.kill9();
        let _ = load.wait();

        let restarted = Server::start(dir.path());
        let client = restarted.connect().await;
        let totals = tpcb_totals(&client).await;
        assert!(
            totals[4] >= seen,
            "round {round}: {seen} transactions were seen committed, {} survived",
            totals[4]
        );
        assert_eq!(
            (totals[0], totals[1], totals[2]),
            (totals[3], totals[3], totals[3]),
            "round {round}: accounts, branches and tellers move with the history"
        );
        server = Some(restarted);
    }
}
