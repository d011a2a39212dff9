//! `mmlog dump`: every record in LSN order, one line each (LSN, length, hex), the whole
//! payload with `--hex`, the payloads themselves with `--raw`, one JSON object each with
//! `--json`, bounded by `--from`/`--to`; streaming, so that a reader closing the pipe
//! after one line (`| head -1`) ends it with exit 0 and nothing on stderr; exit 1 on a
//! damaged log unless `--mode skip` reads around the damage. Provoked by running the
//! built binary on logs the library wrote in each test's own directory, and by reading
//! one line of its output through a pipe and closing the pipe.
mod cli_support;
mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use cli_support::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn records_print_in_every_format_within_the_bounds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    write_log(&dir, 250, true);
    let before = snapshot(&dir);

    let run = mmlog("dump").arg(&dir).run();
    run.expect_code(0, "dump");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 250);
    for (i, line) in lines.iter().enumerate() {
        let lsn = i as u64 + 1;
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[0], lsn.to_string(), "{line}");
        assert_eq!(cells[1], len_for(lsn).to_string(), "{line}");
        assert_eq!(cells[2], format!("{}…", hex(&record(lsn)[..16])), "{line}");
    }

    let run = mmlog("dump")
        .arg(&dir)
        .args(&["--from", "100", "--to", "120", "--hex"])
        .run();
    run.expect_code(0, "dump --hex");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 21);
    for (i, line) in lines.iter().enumerate() {
        let lsn = 100 + i as u64;
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cells,
            [lsn.to_string(), len_for(lsn).to_string(), hex(&record(lsn))]
        );
    }

    let out = mmlog("dump")
        .arg(&dir)
        .args(&["--from", "7", "--to", "9", "--raw"])
        .command()
        .output()
        .expect("run");
    assert!(out.status.success());
    let want: Vec<u8> = (7..=9).flat_map(record).collect();
    assert!(out.stdout == want, "--raw prints the payloads back to back");

    let run = mmlog("dump")
        .arg(&dir)
        .args(&["--from", "240", "--json"])
        .run();
    run.expect_code(0, "dump --json");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 11);
    for (i, line) in lines.iter().enumerate() {
        let lsn = 240 + i as u64;
        assert_json_object(line, &["lsn", "len", "hex"], "dump --json");
        assert_eq!(json_value(line, "lsn"), lsn.to_string());
        assert_eq!(json_value(line, "len"), len_for(lsn).to_string());
        assert_eq!(
            json_value(line, "hex"),
            format!("\"{}\"", hex(&record(lsn)))
        );
    }

    // Past the end: nothing, and no error.
    let run = mmlog("dump").arg(&dir).args(&["--from", "1000"]).run();
    run.expect_code(0, "dump past the end");
    assert_eq!(run.stdout, "");
    // Bounds the wrong way round are a usage error.
    mmlog("dump")
        .arg(&dir)
        .args(&["--from", "9", "--to", "3"])
        .run()
        .expect_code(2, "--from > --to")
        .expect_error_line(&["--from 9 is after --to 3"], "--from > --to");
    assert!(snapshot(&dir) == before, "dump wrote to the log");
}

#[test]
fn a_pipe_closed_after_one_line_ends_the_dump_quietly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    // About 1.2 MB of hex: far more than a pipe buffers, so the dump is still writing
    // when the pipe closes.
    write_log(&dir, 1000, true);
    let mut child = Reaped(
        mmlog("dump")
            .arg(&dir)
            .arg("--hex")
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("one line");
    assert!(first.trim_start().starts_with("1 "), "{first}");
    drop(stdout);
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    let status = child.0.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "exit status; stderr: {stderr}");
    assert_eq!(stderr, "", "nothing on stderr");
}

#[test]
fn a_damaged_log_fails_with_exit_1_unless_read_around() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    write_log(&dir, 250, true);
    let (seg, at) = damage_record(&dir, 40);
    let seg_name = seg.file_name().unwrap().to_string_lossy().into_owned();
    let run = mmlog("dump").arg(&dir).run();
    run.expect_code(1, "dump of a damaged log")
        .expect_error_line(
            &[&seg_name, &format!("at byte {at}"), "mmlog verify"],
            "dump of a damaged log",
        );
    assert_eq!(run.stdout, "");

    let run = mmlog("dump").arg(&dir).args(&["--mode", "skip"]).run();
    run.expect_code(0, "dump --mode skip");
    let lsns: Vec<u64> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    let want: Vec<u64> = (1..=250).filter(|&l| l != 40).collect();
    assert_eq!(lsns, want, "every record but the damaged one");
}
