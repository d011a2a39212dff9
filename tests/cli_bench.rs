//! `mmlog bench` with its options: `--threads` spreads the append workloads over threads
//! (and says so in each row), `--durability` and `--segment-size` are taken, `--json`
//! prints one object per workload with the documented keys, the table ends with a
//! one-line summary, and bad values exit 2 with one line. Provoked by running the built
//! binary with tiny workloads in each test's own directory (`--dir`).
mod cli_support;
mod common;

use cli_support::*;

const ROW_KEYS: &[&str] = &[
    "workload",
    "records",
    "record_bytes",
    "threads",
    "durability",
    "seconds",
    "records_per_sec",
    "mb_per_sec",
    "p50_us",
    "p99_us",
    "limit",
    "limit_seconds",
    "limit_ratio",
];

#[test]
fn json_rows_carry_the_threads_and_durability_of_each_workload() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = mmlog("bench")
        .args(&[
            "--records",
            "3000",
            "--size",
            "64",
            "--large-mib",
            "1",
            "--checkpoint-mib",
            "1",
            "--durable-records",
            "8",
            "--threads",
            "3",
            "--segment-size",
            "64KiB",
            "--json",
            "--dir",
        ])
        .arg(tmp.path())
        .run();
    run.expect_code(0, "bench --json");
    let lines: Vec<&str> = run.stdout.lines().collect();
    let workloads: Vec<&str> = lines.iter().map(|l| json_value(l, "workload")).collect();
    assert_eq!(
        workloads,
        [
            "\"append\"",
            "\"append_4k\"",
            "\"durable_append\"",
            "\"recover_scan\"",
            "\"checkpoint_write\"",
            "\"checkpoint_load\""
        ]
    );
    for l in &lines {
        assert_json_object(l, ROW_KEYS, "bench --json");
    }
    for l in &lines[..3] {
        assert_eq!(json_value(l, "threads"), "3", "{l}");
    }
    assert_eq!(json_value(lines[0], "records"), "3000");
    assert_eq!(json_value(lines[0], "durability"), "\"none\"");
    assert_eq!(
        json_value(lines[1], "records"),
        "256",
        "1 MiB of 4 KiB records"
    );
    assert_eq!(json_value(lines[2], "durability"), "\"sync\"");
    assert_ne!(json_value(lines[2], "p99_us"), "null");
    assert_eq!(
        json_value(lines[3], "records"),
        "3000",
        "recovery reads them all"
    );
    assert_eq!(json_value(lines[3], "threads"), "1");
    assert!(
        run.stderr.is_empty(),
        "no progress bar off a terminal: {}",
        run.stderr
    );
}

#[test]
fn the_table_ends_with_a_summary_and_durable_appends_can_be_chosen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = mmlog("bench")
        .args(&[
            "--records",
            "20",
            "--large-mib",
            "0",
            "--checkpoint-mib",
            "0",
            "--durable-records",
            "2",
            "--durability",
            "sync",
            "--dir",
        ])
        .arg(tmp.path())
        .run();
    run.expect_code(0, "bench");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("workload") && lines[0].contains("ratio"),
        "{}",
        run.stdout
    );
    // Without --threads, the durable workload runs with 1, 4 and 16 threads.
    let rows: Vec<(&str, &str)> = lines[1..6]
        .iter()
        .map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next().unwrap();
            let threads = f.nth(2).unwrap();
            (name, threads)
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("append", "1"),
            ("durable_append", "1"),
            ("durable_append", "4"),
            ("durable_append", "16"),
            ("recover_scan", "1")
        ],
        "skipped workloads are absent:\n{}",
        run.stdout
    );
    let summary = lines.last().unwrap();
    assert!(summary.starts_with("summary: "), "{summary}");
    assert!(
        summary.contains("durability sync") && summary.contains("durable"),
        "{summary}"
    );
    assert_eq!(lines.iter().filter(|l| l.starts_with("summary")).count(), 1);
}

#[test]
fn bad_values_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cases: &[(&[&str], &str)] = &[
        (&["--threads", "0"], "--threads must be at least 1"),
        (&["--segment-size", "1000"], "--segment-size 1000"),
        (
            &["--size", "100000", "--segment-size", "64KiB"],
            "does not fit in a segment",
        ),
    ];
    for (args, needle) in cases {
        let what = format!("bench {}", args.join(" "));
        let run = mmlog("bench").args(args).arg("--dir").arg(tmp.path()).run();
        run.expect_code(2, &what)
            .expect_error_line(&[needle], &what);
    }
    // Values clap itself rejects.
    for args in [&["--durability", "maybe"][..], &["--segment-size", "12X"]] {
        let run = mmlog("bench").args(args).run();
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("invalid value"), "{}", run.stderr);
    }
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "nothing ran"
    );
}
