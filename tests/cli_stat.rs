//! `mmlog stat`: the segments (sequence, LSN range, bytes used, epoch, state), the
//! checkpoints, first/last/durable LSN, size on disk and lock holder of a log, in text
//! and in JSON, without writing; exit 1 when it notices damage. Provoked by running the
//! built binary on logs of 64 KiB segments written with the library in each test's own
//! directory: an intact multi-segment log, one with checkpoints and a purged head, a
//! crashed log with a torn tail, and a cleanly closed log with a bit flipped in the
//! middle (which stat can only show through a salvage read). The locked case is in
//! `cli_locked.rs`.
mod cli_support;
mod common;

use cli_support::*;
use mmlog::{Lsn, Wal};

const STAT_KEYS: &[&str] = &[
    "dir",
    "source",
    "mode",
    "locked",
    "lock_pid",
    "clean_shutdown",
    "first_lsn",
    "last_lsn",
    "durable_lsn",
    "records",
    "files",
    "total_bytes",
    "segments",
    "checkpoints",
    "damage",
    "notes",
];
const SEGMENT_KEYS: &[&str] = &[
    "file",
    "seq",
    "epoch",
    "first_lsn",
    "last_lsn",
    "bytes_used",
    "size_bytes",
    "sealed",
    "recycled",
    "problem",
];

#[test]
fn an_intact_log_shows_every_segment_and_its_lsn_range() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    write_log(&dir, 250, true);
    let before = snapshot(&dir);
    let (wal, _) = Wal::open(
        &dir,
        mmlog::Options {
            read_only: true,
            ..common::small()
        },
    )
    .expect("open");
    let segs = wal.segments();
    drop(wal);
    assert!(segs.len() >= 3);
    let total: u64 = before.values().map(|b| b.len() as u64).sum();

    let run = mmlog("stat").arg(&dir).run();
    run.expect_code(0, "stat").expect_stdout(
        &[
            "lock      free",
            "records   250 (LSN 1..=250), durable through 250",
            "shutdown  clean",
            &format!("in {} file(s)", before.len()),
        ],
        "stat",
    );
    for s in &segs {
        let name = s.path.file_name().unwrap().to_string_lossy().into_owned();
        let row = run
            .stdout
            .lines()
            .find(|l| l.starts_with(&name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{}", run.stdout));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1], s.seq.to_string(), "{row}");
        assert_eq!(cells[2], s.first_lsn.0.to_string(), "{row}");
        if s.last_lsn >= s.first_lsn {
            assert_eq!(cells[3], s.last_lsn.0.to_string(), "{row}");
        }
    }

    let run = mmlog("stat").arg(&dir).arg("--json").run();
    run.expect_code(0, "stat --json");
    let line = run.stdout.trim_end();
    assert_eq!(run.stdout.lines().count(), 1);
    assert_json_object(line, STAT_KEYS, "stat --json");
    assert_eq!(json_value(line, "source"), "\"open\"");
    assert_eq!(json_value(line, "locked"), "false");
    assert_eq!(json_value(line, "lock_pid"), "null");
    assert_eq!(json_value(line, "first_lsn"), "1");
    assert_eq!(json_value(line, "last_lsn"), "250");
    assert_eq!(json_value(line, "durable_lsn"), "250");
    assert_eq!(json_value(line, "records"), "250");
    assert_eq!(json_value(line, "total_bytes"), total.to_string());
    let segments = json_value(line, "segments");
    let first = segments
        .trim_start_matches('[')
        .split("},{")
        .next()
        .unwrap()
        .trim_start_matches('{');
    assert_json_object(&format!("{{{first}}}"), SEGMENT_KEYS, "a segment");
    assert_eq!(segments.matches("\"seq\":").count(), segs.len());
    assert_eq!(json_value(line, "damage"), "[]");
    assert!(snapshot(&dir) == before, "stat wrote to the log");
}

#[test]
fn checkpoints_and_a_purged_head_are_shown() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let (wal, _) = Wal::open(&dir, common::small()).expect("open");
    for k in 1..=3u64 {
        append_records(&wal, (k - 1) * 130 + 1, k * 130);
        wal.write_checkpoint(Lsn(k * 130), &[7u8; 3000])
            .expect("checkpoint");
    }
    let first = wal.first_lsn().0;
    assert!(first > 1, "retention purged the head");
    wal.close().expect("close");

    mmlog("stat")
        .arg(&dir)
        .run()
        .expect_code(0, "stat")
        .expect_stdout(
            &[
                &format!("LSN {first}..=390"),
                "checkpoint-00000000000000000390.ckpt  390",
                "ok (recovery starts here)",
                "checkpoint-00000000000000000260.ckpt  260",
            ],
            "stat",
        );
    let run = mmlog("stat").arg(&dir).arg("--json").run();
    run.expect_code(0, "stat --json");
    let line = run.stdout.trim_end();
    assert_json_object(line, STAT_KEYS, "stat --json");
    assert_eq!(json_value(line, "first_lsn"), first.to_string());
    let ckpts = json_value(line, "checkpoints");
    assert_eq!(ckpts.matches("\"valid\":true").count(), 2, "{ckpts}");
    assert_eq!(ckpts.matches("\"used_by_recovery\":true").count(), 1);
}

#[test]
fn a_torn_tail_is_shown_as_damage_with_exit_1() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    write_log(&dir, 20, false);
    let (_, at) = damage_record(&dir, 20);
    let before = snapshot(&dir);
    mmlog("stat")
        .arg(&dir)
        .run()
        .expect_code(1, "stat")
        .expect_stdout(
            &[
                "records   19 (LSN 1..=19)",
                "shutdown  not clean",
                &format!("damage: 00000000000000000001.seg at byte {at} (LSN 20): "),
                "torn tail",
                "mmlog verify",
            ],
            "stat",
        );
    let run = mmlog("stat").arg(&dir).arg("--json").run();
    run.expect_code(1, "stat --json");
    assert_json_object(run.stdout.trim_end(), STAT_KEYS, "stat --json");
    assert!(json_value(run.stdout.trim_end(), "damage").contains("torn tail"));
    assert!(snapshot(&dir) == before, "stat wrote to the log");
}

#[test]
fn mid_log_corruption_is_shown_through_a_salvage_read_with_exit_1() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    write_log(&dir, 250, true);
    let (_, at) = damage_record(&dir, 40);
    let before = snapshot(&dir);
    mmlog("stat")
        .arg(&dir)
        .run()
        .expect_code(1, "stat")
        .expect_stdout(
            &[
                "read in   mode skip (salvage)",
                "an open in mode tolerate fails",
                &format!("at byte {at} (LSN 40)"),
                "checksum mismatch",
            ],
            "stat",
        );
    let run = mmlog("stat").arg(&dir).arg("--json").run();
    run.expect_code(1, "stat --json");
    let line = run.stdout.trim_end();
    assert_json_object(line, STAT_KEYS, "stat --json");
    assert_eq!(json_value(line, "mode"), "\"skip\"");
    assert_eq!(json_value(line, "last_lsn"), "250");
    assert!(snapshot(&dir) == before, "stat wrote to the log");
}
