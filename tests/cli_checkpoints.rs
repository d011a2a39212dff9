//! Checkpoints through the command: `mmlog checkpoints` lists each file with its LSN,
//! size and status (exit 1 when one does not verify), and `mmlog verify` counts a bad
//! checkpoint as damage, warns when the log was purged and no checkpoint covers its
//! head (missing checkpoints), and names the checkpoint when none is usable. Provoked by
//! writing a log of 64 KiB segments with three checkpoints (retention keeps two and
//! purges the head of the log), closing it, then flipping a bit in a checkpoint's
//! payload or deleting checkpoint files.
mod cli_support;
mod common;

use std::path::{Path, PathBuf};

use cli_support::*;
use mmlog::{Lsn, Wal};

const CKPT_KEYS: &[&str] = &[
    "file",
    "lsn",
    "file_bytes",
    "valid",
    "used_by_recovery",
    "problem",
];
/// The two checkpoints retention keeps.
const OLDER: u64 = 260;
const NEWER: u64 = 390;

fn ckpt(dir: &Path, lsn: u64) -> PathBuf {
    dir.join(format!("checkpoint-{lsn:020}.ckpt"))
}

fn name(lsn: u64) -> String {
    format!("checkpoint-{lsn:020}.ckpt")
}

/// A log with checkpoints at 130, 260 and 390 (the first removed by retention) and
/// records up to 400; returns the first LSN still in the log.
fn checkpointed_log(dir: &Path) -> u64 {
    let (wal, _) = Wal::open(dir, common::small()).expect("open");
    for k in 1..=3u64 {
        append_records(&wal, (k - 1) * 130 + 1, k * 130);
        wal.write_checkpoint(Lsn(k * 130), &[k as u8; 3000])
            .expect("checkpoint");
    }
    append_records(&wal, 391, 400);
    let first = wal.first_lsn().0;
    wal.close().expect("close");
    assert!(first > 1, "retention purged the head");
    assert!(ckpt(dir, OLDER).exists() && ckpt(dir, NEWER).exists());
    first
}

#[test]
fn valid_checkpoints_are_listed_newest_first_and_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    checkpointed_log(&dir);
    let run = mmlog("checkpoints").arg(&dir).run();
    run.expect_code(0, "checkpoints");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "header and two rows:\n{}", run.stdout);
    assert!(lines[0].starts_with("checkpoint") && lines[0].contains("status"));
    assert!(lines[1].starts_with(&name(NEWER)) && lines[1].ends_with("ok (recovery starts here)"));
    assert!(lines[2].starts_with(&name(OLDER)) && lines[2].ends_with("ok"));

    let run = mmlog("checkpoints").arg(&dir).arg("--json").run();
    run.expect_code(0, "checkpoints --json");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert_json_object(l, CKPT_KEYS, "checkpoints --json");
        assert_eq!(json_value(l, "valid"), "true");
        assert_eq!(json_value(l, "problem"), "\"\"");
    }
    assert_eq!(json_value(lines[0], "lsn"), NEWER.to_string());
    assert_eq!(json_value(lines[0], "used_by_recovery"), "true");
    assert_eq!(
        json_value(lines[0], "file_bytes"),
        std::fs::metadata(ckpt(&dir, NEWER))
            .unwrap()
            .len()
            .to_string()
    );
    assert_eq!(json_value(lines[1], "used_by_recovery"), "false");

    mmlog("verify")
        .arg(&dir)
        .run()
        .expect_code(0, "verify")
        .expect_stdout(&["intact", "2 checkpoint(s) checked"], "verify");
}

#[test]
fn a_damaged_checkpoint_is_damage_even_when_recovery_falls_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    checkpointed_log(&dir);
    common::flip_bit(&ckpt(&dir, NEWER), 4096 + 1000, 5);
    let before = snapshot(&dir);

    let run = mmlog("checkpoints").arg(&dir).run();
    run.expect_code(1, "checkpoints");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[1].starts_with(&name(NEWER)) && lines[1].contains("BAD: payload checksum"));
    assert!(lines[2].starts_with(&name(OLDER)) && lines[2].ends_with("ok (recovery starts here)"));
    let run = mmlog("checkpoints").arg(&dir).arg("--json").run();
    run.expect_code(1, "checkpoints --json");
    let first = run.stdout.lines().next().expect("a line");
    assert_json_object(first, CKPT_KEYS, "checkpoints --json");
    assert_eq!(json_value(first, "valid"), "false");
    assert_eq!(
        json_value(first, "problem"),
        "\"payload checksum mismatch\""
    );

    let run = mmlog("verify").arg(&dir).run();
    run.expect_code(1, "verify").expect_stdout(
        &[
            "DAMAGED: 1 problem(s)",
            &name(NEWER),
            "bad checkpoint: payload checksum mismatch",
            "recovery falls back",
        ],
        "verify",
    );
    let run = mmlog("verify").arg(&dir).arg("--json").run();
    run.expect_code(1, "verify --json");
    let line = run.stdout.trim_end();
    assert_eq!(json_value(line, "object"), "\"checkpoint\"");
    assert_eq!(json_value(line, "kind"), "\"checkpoint_checksum\"");
    assert_eq!(json_value(line, "lsn"), NEWER.to_string());
    assert_eq!(json_value(line, "offset"), "null");
    assert_eq!(json_value(line, "opens"), "true");

    mmlog("stat")
        .arg(&dir)
        .run()
        .expect_code(1, "stat")
        .expect_stdout(&["BAD: payload checksum mismatch"], "stat");
    assert!(snapshot(&dir) == before, "nothing wrote to the log");
}

#[test]
fn missing_checkpoints_of_a_purged_log_are_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let first = checkpointed_log(&dir);

    // The newest one gone: recovery starts from the older one; nothing is wrong.
    std::fs::remove_file(ckpt(&dir, NEWER)).expect("remove");
    let run = mmlog("checkpoints").arg(&dir).run();
    run.expect_code(0, "checkpoints");
    assert_eq!(run.stdout.lines().count(), 2);
    assert!(run.stdout.contains(&name(OLDER)) && run.stdout.contains("recovery starts here"));
    let run = mmlog("verify").arg(&dir).run();
    run.expect_code(0, "verify")
        .expect_stdout(&["intact", "1 checkpoint(s) checked"], "verify");
    assert!(!run.stdout.contains("note:"), "{}", run.stdout);

    // Both gone: the log alone no longer holds what a state machine would need.
    std::fs::remove_file(ckpt(&dir, OLDER)).expect("remove");
    mmlog("checkpoints")
        .arg(&dir)
        .run()
        .expect_code(0, "checkpoints")
        .expect_stdout(&["no checkpoints"], "checkpoints");
    let run = mmlog("checkpoints").arg(&dir).arg("--json").run();
    run.expect_code(0, "checkpoints --json");
    assert_eq!(run.stdout, "", "no checkpoint, no line");
    let note = format!(
        "the log starts at LSN {first} and no checkpoint covers LSN {}",
        first - 1
    );
    mmlog("verify")
        .arg(&dir)
        .run()
        .expect_code(0, "verify")
        .expect_stdout(&["intact", "0 checkpoint(s) checked", &note], "verify");
    let run = mmlog("verify").arg(&dir).arg("--json").run();
    run.expect_code(0, "verify --json");
    assert!(json_value(run.stdout.trim_end(), "warnings").contains(&note));
    mmlog("stat")
        .arg(&dir)
        .run()
        .expect_code(0, "stat")
        .expect_stdout(&["no checkpoint covers the records before it"], "stat");
}

#[test]
fn no_usable_checkpoint_for_a_purged_log_names_the_checkpoint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    checkpointed_log(&dir);
    std::fs::remove_file(ckpt(&dir, NEWER)).expect("remove");
    common::flip_bit(&ckpt(&dir, OLDER), 4096 + 10, 0);

    let run = mmlog("verify").arg(&dir).arg("--json").run();
    run.expect_code(1, "verify --json");
    let line = run.stdout.trim_end();
    assert_eq!(json_value(line, "opens"), "false");
    assert_eq!(json_value(line, "kind"), "\"no_usable_checkpoint\"");
    assert_eq!(json_value(line, "object"), "\"checkpoint\"");
    assert!(json_value(line, "file").contains(&name(OLDER)), "{line}");
    mmlog("verify")
        .arg(&dir)
        .run()
        .expect_code(1, "verify")
        .expect_stdout(&[&name(OLDER), "no valid checkpoint"], "verify");
    mmlog("checkpoints")
        .arg(&dir)
        .run()
        .expect_code(1, "checkpoints")
        .expect_error_line(&[&name(OLDER), "no valid checkpoint"], "checkpoints");
}
