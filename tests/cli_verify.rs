//! `mmlog verify`: exit 0 for an intact log, 1 for a damaged one with each damage named
//! by file, offset, LSN and kind, in text and in JSON, in every recovery mode; and it
//! never writes. Provoked by running the built binary on logs of 64 KiB segments the
//! library wrote in each test's own directory: closed cleanly (intact), dropped without
//! `close()` with a bit flipped in the last record (a torn tail), and closed cleanly
//! with a bit flipped in a record in the middle of the first segment (mid-log
//! corruption, which a clean close's seal proves was durable).
mod cli_support;
mod common;

use cli_support::*;

const VERIFY_KEYS: &[&str] = &[
    "dir",
    "mode",
    "intact",
    "opens",
    "segments",
    "records",
    "first_lsn",
    "last_lsn",
    "clean_shutdown",
    "checkpoints",
    "damage",
    "warnings",
];
const DAMAGE_KEYS: &[&str] = &[
    "file",
    "object",
    "offset",
    "lsn",
    "kind",
    "detail",
    "torn_tail",
    "records",
    "bytes",
];

#[test]
fn an_intact_log_verifies_in_every_mode() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    write_log(&dir, 250, true);
    assert!(common::segments(&dir).len() >= 3, "several segments");
    let before = snapshot(&dir);

    for mode in ["skip", "tolerate", "absolute", "point-in-time"] {
        let what = format!("verify --mode {mode}");
        mmlog("verify")
            .arg(&dir)
            .args(&["--mode", mode])
            .run()
            .expect_code(0, &what)
            .expect_stdout(
                &[": intact: 250 records (LSN 1..=250)", "last shutdown clean"],
                &what,
            );
        let run = mmlog("verify")
            .arg(&dir)
            .args(&["--mode", mode, "--json"])
            .run();
        run.expect_code(0, &what);
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: one JSON line");
        assert_json_object(lines[0], VERIFY_KEYS, &what);
        assert_eq!(json_value(lines[0], "intact"), "true", "{what}");
        assert_eq!(json_value(lines[0], "records"), "250", "{what}");
        assert_eq!(json_value(lines[0], "last_lsn"), "250", "{what}");
        assert_eq!(
            json_value(lines[0], "mode"),
            format!("\"{mode}\""),
            "{what}"
        );
        assert_eq!(json_value(lines[0], "damage"), "[]", "{what}");
    }
    assert!(snapshot(&dir) == before, "verify wrote to the log");
}

#[test]
fn a_torn_tail_is_damage_named_with_file_offset_lsn_and_kind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    write_log(&dir, 20, false);
    let (seg, at) = damage_record(&dir, 20);
    let before = snapshot(&dir);
    let seg_name = seg.file_name().unwrap().to_string_lossy().into_owned();

    let run = mmlog("verify").arg(&dir).run();
    run.expect_code(1, "verify").expect_stdout(
        &[
            ": DAMAGED: 1 problem(s) found in mode skip",
            &seg_name,
            &at.to_string(),
            "torn tail",
            "mmlog repair",
        ],
        "verify",
    );
    let row = run
        .stdout
        .lines()
        .find(|l| l.contains(&seg_name))
        .expect("a damage row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..3],
        &[&seg_name[..], &at.to_string(), "20"],
        "{row}"
    );

    let run = mmlog("verify").arg(&dir).arg("--json").run();
    run.expect_code(1, "verify --json");
    let line = run.stdout.trim_end();
    assert_json_object(line, VERIFY_KEYS, "verify --json");
    assert_json_object(
        json_value(line, "damage")
            .trim_start_matches('[')
            .trim_end_matches(']'),
        DAMAGE_KEYS,
        "damage entry",
    );
    assert_eq!(json_value(line, "intact"), "false");
    assert_eq!(json_value(line, "opens"), "true");
    assert_eq!(json_value(line, "offset"), at.to_string());
    assert_eq!(json_value(line, "lsn"), "20");
    assert_eq!(json_value(line, "kind"), "\"torn_tail\"");
    assert_eq!(json_value(line, "torn_tail"), "true");
    assert_eq!(
        json_value(line, "records"),
        "19",
        "the first records read back"
    );
    assert_eq!(json_value(line, "last_lsn"), "19");

    // An open in tolerate mode trims it, and verify still reports it; absolute refuses.
    mmlog("verify")
        .arg(&dir)
        .args(&["--mode", "tolerate"])
        .run()
        .expect_code(1, "verify --mode tolerate")
        .expect_stdout(
            &["torn tail", "an open in mode tolerate succeeds: 19 records"],
            "verify --mode tolerate",
        );
    mmlog("verify")
        .arg(&dir)
        .args(&["--mode", "absolute"])
        .run()
        .expect_code(1, "verify --mode absolute")
        .expect_stdout(
            &[&seg_name, "an open in mode absolute fails"],
            "verify --mode absolute",
        );
    assert!(snapshot(&dir) == before, "verify wrote to the log");
}

#[test]
fn mid_log_corruption_is_damage_in_every_mode_and_never_a_torn_tail() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    write_log(&dir, 250, true);
    let (seg, at) = damage_record(&dir, 40);
    let before = snapshot(&dir);
    let seg_name = seg.file_name().unwrap().to_string_lossy().into_owned();

    // Salvage (the default) lists it and keeps every other record.
    let run = mmlog("verify").arg(&dir).arg("--json").run();
    run.expect_code(1, "verify");
    let line = run.stdout.trim_end();
    assert_json_object(line, VERIFY_KEYS, "verify --json");
    assert!(json_value(line, "file").ends_with(&format!("{seg_name}\"")));
    assert_eq!(json_value(line, "offset"), at.to_string());
    assert_eq!(json_value(line, "lsn"), "40");
    assert_eq!(json_value(line, "kind"), "\"checksum_mismatch\"");
    assert_eq!(json_value(line, "torn_tail"), "false");
    assert_eq!(
        json_value(line, "records"),
        "249",
        "all but the damaged one"
    );

    // The other modes refuse the open; verify still names the file, offset and LSN.
    for mode in ["tolerate", "absolute", "point-in-time"] {
        let what = format!("verify --mode {mode}");
        let run = mmlog("verify")
            .arg(&dir)
            .args(&["--mode", mode, "--json"])
            .run();
        run.expect_code(1, &what);
        let line = run.stdout.trim_end();
        assert_json_object(line, VERIFY_KEYS, &what);
        assert!(
            json_value(line, "file").contains(&seg_name),
            "{what}: {line}"
        );
        assert_eq!(json_value(line, "offset"), at.to_string(), "{what}");
        assert_eq!(json_value(line, "lsn"), "40", "{what}");
        assert_eq!(json_value(line, "torn_tail"), "false", "{what}");
        let text = mmlog("verify").arg(&dir).args(&["--mode", mode]).run();
        text.expect_code(1, &what)
            .expect_stdout(&[&seg_name, &at.to_string(), "--mode point-in-time"], &what);
    }
    assert!(snapshot(&dir) == before, "verify wrote to the log");
}
