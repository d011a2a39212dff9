//! Every subcommand against a log another process holds open for writing: `stat` names
//! the holder's pid and falls back to the segment headers (exit 0, saying so); `verify`,
//! `dump` and `checkpoints` exit 2 with one line naming the pid; `repair` refuses with
//! exit 2 and makes no backup. Once the holder closes the log, `verify` passes again.
//! Provoked by re-executing this test binary as a child (`MMLOG_TEST_CHILD=<dir>`, set
//! on the child command only) that opens the log as a writer, prints `ready <pid>` and
//! blocks reading its stdin; the parent synchronises on that line only and ends the
//! child by closing its stdin (or kills it, if the test fails first).
mod cli_support;
mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use cli_support::*;
use mmlog::Wal;

const CHILD_ENV: &str = "MMLOG_TEST_CHILD";
/// Prefix of the child's report (libtest writes on the same stdout, even on the same
/// line).
const MARK: &str = "mmlog-cli-child: ready ";
const TEST: &str = "every_subcommand_handles_a_log_another_process_holds";

#[test]
fn every_subcommand_handles_a_log_another_process_holds() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let (wal, _) = Wal::open(PathBuf::from(dir), common::small()).expect("child open");
        println!("{MARK}{}", std::process::id());
        let mut sink = Vec::new();
        std::io::stdin().read_to_end(&mut sink).expect("stdin");
        wal.close().expect("child close");
        return;
    }

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    write_log(&dir, 40, true);
    let mut holder = Reaped(
        Command::new(std::env::current_exe().expect("current_exe"))
            .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the holder"),
    );
    let mut lines = BufReader::new(holder.0.stdout.take().expect("child stdout")).lines();
    let pid = lines
        .by_ref()
        .map(|l| l.expect("child stdout"))
        .find_map(|l| {
            l.find(MARK)
                .map(|at| l[at + MARK.len()..].trim().to_owned())
        })
        .expect("the child reports ready");
    assert_eq!(pid, holder.0.id().to_string());

    // stat: the pid, then what the headers say.
    let run = mmlog("stat").arg(&dir).run();
    run.expect_code(0, "stat").expect_stdout(
        &[
            &format!("held by process {pid}"),
            &format!("locked by process {pid}"),
            "segment headers only",
            "00000000000000000001.seg",
            "base LSN",
        ],
        "stat",
    );
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("00000000000000000001.seg"))
        .expect("segment 1");
    assert_eq!(
        row.split_whitespace().nth(2),
        Some("1"),
        "base LSN 1: {row}"
    );
    let run = mmlog("stat").arg(&dir).arg("--json").run();
    run.expect_code(0, "stat --json");
    let line = run.stdout.trim_end();
    assert_json_object(
        line,
        &["source", "locked", "lock_pid", "segments"],
        "stat --json",
    );
    assert_eq!(json_value(line, "source"), "\"headers\"");
    assert_eq!(json_value(line, "locked"), "true");
    assert_eq!(json_value(line, "lock_pid"), pid);
    assert_eq!(json_value(line, "last_lsn"), "null");

    for sub in ["verify", "dump", "checkpoints"] {
        let run = mmlog(sub).arg(&dir).run();
        run.expect_code(2, sub)
            .expect_error_line(&[&format!("locked by process {pid}"), "mmlog stat"], sub);
        assert_eq!(run.stdout, "", "{sub}");
    }
    let run = mmlog("repair")
        .arg(&dir)
        .args(&["--mode", "point-in-time"])
        .run();
    run.expect_code(2, "repair").expect_error_line(
        &[&format!("locked by process {pid}"), "nothing was changed"],
        "repair",
    );
    let beside: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(beside, ["log"], "repair made no backup directory");

    // The holder closes the log: everything works again.
    drop(holder.0.stdin.take());
    let rest: Vec<String> = lines.map(|l| l.expect("child stdout")).collect();
    let status = holder.0.wait().expect("wait");
    assert!(status.success(), "the holder failed: {status}: {rest:?}");
    mmlog("verify")
        .arg(&dir)
        .run()
        .expect_code(0, "verify after the holder closed");
    mmlog("stat")
        .arg(&dir)
        .run()
        .expect_code(0, "stat after")
        .expect_stdout(
            &["lock      free", "records   40 (LSN 1..=40)"],
            "stat after",
        );
}
