//! Paths that hold no log: an empty directory, a directory of other files, a path that
//! does not exist, and a file. Every subcommand that takes a log exits 2 with one line
//! `mmlog: <what>: <hint>` saying which case it is, prints nothing on stdout, and
//! creates nothing (no log, no lock file, no backup). Provoked by running the built
//! binary on such paths inside each test's own temporary directory.
mod cli_support;
mod common;

use std::path::Path;

use cli_support::*;

const SUBCOMMANDS: &[&[&str]] = &[
    &["stat"],
    &["stat", "--json"],
    &["verify"],
    &["verify", "--json"],
    &["dump"],
    &["checkpoints"],
    &["repair"],
    &["repair", "--dry-run"],
];

/// Runs every subcommand on `path` and checks the exit code and the error line.
fn assert_refused(path: &Path, needle: &str) {
    for args in SUBCOMMANDS {
        let what = format!("mmlog {} on {}", args.join(" "), path.display());
        let run = mmlog(args[0]).arg(path).args(&args[1..]).run();
        run.expect_code(2, &what)
            .expect_error_line(&[&path.display().to_string(), needle], &what);
        assert_eq!(run.stdout, "", "{what}");
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn an_empty_directory_is_not_a_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("empty");
    std::fs::create_dir(&dir).unwrap();
    assert_refused(&dir, "is empty");
    assert!(names(&dir).is_empty(), "something was created in it");
    assert_eq!(
        names(tmp.path()),
        ["empty"],
        "something was created beside it"
    );
}

#[test]
fn a_directory_of_other_files_is_not_a_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("photos");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"not a log").unwrap();
    std::fs::write(dir.join("00000001.seg.bak"), b"nor this").unwrap();
    assert_refused(&dir, "is not an mmlog log");
    assert_eq!(names(&dir), ["00000001.seg.bak", "notes.txt"]);
    assert_eq!(names(tmp.path()), ["photos"]);
}

#[test]
fn a_path_that_does_not_exist_is_not_created() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("nowhere");
    assert_refused(&dir, "does not exist");
    assert!(!dir.exists(), "the path was created");
    assert!(names(tmp.path()).is_empty());
}

#[test]
fn a_file_is_not_a_log_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("log");
    write_log(&log, 5, true);
    let seg = common::segments(&log)[0].clone();
    assert_refused(&seg, "is a file, not a log directory");
}
