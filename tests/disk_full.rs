//! A full disk (FAULTS D22; SPEC I1, I6): when the next segment cannot be preallocated
//! the append fails with `Error::NoSpace` carrying `ENOSPC`, nothing dies of SIGBUS,
//! every record appended before stays readable and durable, and appends resume once
//! space is freed.
//!
//! Provoked on a real, small file system: the test re-executes this binary as a child
//! under `unshare -r -m` with a 1 MiB tmpfs mounted on a temporary directory
//! (`MMLOG_TEST_CHILD` on the child command only). The child first fills most of it
//! with a file of its own, then appends to a log of 64 KiB segments (background thread
//! on, as in production) until an append fails, and reports on stdout what it saw:
//! the error and its `errno`, later appends and a sync while full, the records it can
//! read, then — after deleting its filler file — the appends that follow, a clean
//! close and a reopen. The parent asserts on those lines. Where user namespaces or
//! tmpfs mounts are unavailable the test prints why and returns.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use mmlog::{Durability, Error, Lsn, Options, Wal};

/// Names the child's scenario and the mount point, `<scenario>:<dir>`.
const CHILD_ENV: &str = "MMLOG_TEST_CHILD";
/// Prefix of the lines the child reports on stdout (libtest writes there too).
const MARK: &str = "mmlog-child: ";
const SEGMENT_BYTES: u64 = 64 * 1024;
/// Size of the tmpfs.
const DISK_BYTES: u64 = 1024 * 1024;
/// The child's filler file: what is left holds six 64 KiB segments and some, not seven.
const FILLER_BYTES: usize = 600 * 1024;
const ENOSPC: i32 = 28;

// Linux signal numbers (x86 and Arm).
const SIGBUS: i32 = 7;
const SIGSEGV: i32 = 11;

/// The payload of `lsn`: 0 to 2999 bytes, a pure function of the LSN.
fn expected(lsn: u64) -> Vec<u8> {
    let len = (lsn.wrapping_mul(2_654_435_761) % 3000) as usize;
    common::payload(0xD22, lsn, len)
}

fn opts() -> Options {
    Options {
        segment_size_bytes: SEGMENT_BYTES,
        durability: Durability::None,
        ..Options::default()
    }
}

/// `<variant> <errno>` of an error (errno -1 when it has none): `NoSpace` only when the
/// OS error is the error's direct source, as `Error::NoSpace` promises.
fn describe(e: &Error) -> String {
    let errno = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .and_then(std::io::Error::raw_os_error)
        .unwrap_or(-1);
    let variant = match e {
        Error::NoSpace { .. } => "NoSpace",
        Error::Io { .. } => "Io",
        Error::Poisoned { .. } => "Poisoned",
        _ => "Other",
    };
    format!("{variant} {errno}")
}

fn say(line: &str) {
    println!("{MARK}{line}");
}

/// The number of records that are dense from 1 with the expected payloads, and the
/// number of records.
fn verify(wal: &Wal) -> (usize, usize) {
    let mut good = 0;
    let mut total = 0;
    let mut in_order = true;
    for r in wal.iter_from(Lsn(0)).expect("iter") {
        let r = r.expect("record");
        total += 1;
        in_order &= r.lsn().0 == total as u64 && r.payload() == expected(r.lsn().0);
        if in_order {
            good += 1;
        }
    }
    (good, total)
}

/// Appends the next record, durably every fifth; reports `acked` or `kept`.
fn append_next(wal: &Wal) -> Result<u64, Error> {
    let lsn = wal.appended().0 + 1;
    let durable = lsn.is_multiple_of(5);
    let durability = if durable {
        Durability::Sync
    } else {
        Durability::None
    };
    let got = wal.append_with(&expected(lsn), durability)?;
    assert_eq!(got, Lsn(lsn), "LSNs are dense");
    say(&format!("{} {lsn}", if durable { "acked" } else { "kept" }));
    Ok(lsn)
}

/// The child, inside the namespace, on the 1 MiB tmpfs mounted at `mnt`.
fn child(mnt: &Path) {
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0x5a; FILLER_BYTES]).expect("filler");
    std::fs::File::open(&filler)
        .expect("filler")
        .sync_all()
        .expect("sync filler");
    let dir = mnt.join("log");
    let (wal, _) = match Wal::open(&dir, opts()) {
        Ok(x) => x,
        Err(e) => {
            say(&format!("open_error {}", describe(&e)));
            return;
        }
    };
    let mut last = 0;
    for _ in 0..5000 {
        match append_next(&wal) {
            Ok(lsn) => last = lsn,
            Err(e) => {
                say(&format!("error {}", describe(&e)));
                break;
            }
        }
    }
    say(&format!("last {last}"));
    say(&format!("segments {}", wal.segments().len()));
    // Still full: the same error, not a poisoned log; a sync works.
    for _ in 0..2 {
        match wal.append_with(&expected(last + 1), Durability::Sync) {
            Ok(lsn) => say(&format!("again Ok {}", lsn.0)),
            Err(e) => say(&format!("again {}", describe(&e))),
        }
    }
    match wal.sync() {
        Ok(lsn) => say(&format!("sync Ok {}", lsn.0)),
        Err(e) => say(&format!("sync {}", describe(&e))),
    }
    let (good, total) = verify(&wal);
    say(&format!("verified {good}"));
    say(&format!("records {total}"));

    // Space again.
    std::fs::remove_file(&filler).expect("remove filler");
    let target = wal.segments().len() + 3;
    let mut resumed = None;
    while wal.segments().len() < target {
        match append_next(&wal) {
            Ok(lsn) => {
                if resumed.is_none() {
                    say(&format!("resumed {lsn}"));
                    resumed = Some(lsn);
                }
                last = lsn;
            }
            Err(e) => {
                say(&format!("resume_error {}", describe(&e)));
                return;
            }
        }
    }
    say(&format!("resumed_last {last}"));
    match wal.close() {
        Ok(()) => say("closed 1"),
        Err(e) => say(&format!("close_error {}", describe(&e))),
    }
    drop(wal);
    match Wal::open(&dir, opts()) {
        Ok((wal, report)) => {
            let (good, total) = verify(&wal);
            say(&format!("reopened_verified {good}"));
            say(&format!("reopened_records {total}"));
            say(&format!(
                "reopened_clean {}",
                u8::from(report.clean_shutdown)
            ));
            wal.close().expect("close");
        }
        Err(e) => say(&format!("reopen_error {}", describe(&e))),
    }
}

/// Runs `cmd` to completion with stderr to `stderr`; its status and `(word, rest)`
/// reports. The child is reaped before this returns.
fn run_child(mut cmd: Command, stderr: &Path) -> (ExitStatus, Vec<(String, String)>) {
    let err = std::fs::File::create(stderr).expect("stderr file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("stdout");
    let mut reports = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(at) = line.find(MARK) {
            let rest = &line[at + MARK.len()..];
            let (w, r) = rest.split_once(' ').unwrap_or((rest, ""));
            reports.push((w.to_owned(), r.to_owned()));
        }
    }
    let status = child.wait().expect("wait");
    (status, reports)
}

#[test]
fn a_full_disk_gives_no_space_and_appends_resume_once_space_is_freed() {
    const TEST: &str = "a_full_disk_gives_no_space_and_appends_resume_once_space_is_freed";
    if let Ok(role) = std::env::var(CHILD_ENV) {
        let (scenario, mnt) = role.split_once(':').expect("<scenario>:<dir>");
        assert_eq!(scenario, "full");
        child(Path::new(mnt));
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mount point");
    let script = format!(
        r#"mount -t tmpfs -o size={DISK_BYTES} tmpfs "$D" || exit 0
echo "{MARK}mounted 1"
exec "$0" "$@""#
    );
    let exe: PathBuf = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new("unshare");
    cmd.args(["-r", "-m", "sh", "-c", &script])
        .arg(exe)
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env("D", &mnt)
        .env(CHILD_ENV, format!("full:{}", mnt.display()));
    let stderr = tmp.path().join("child-stderr");
    if let Err(e) = Command::new("unshare").arg("--help").output() {
        eprintln!("SKIPPED: no unshare command ({e}); D22 not tested");
        return;
    }
    let (status, reports) = run_child(cmd, &stderr);
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    let get = |word: &str| -> Option<&str> {
        reports
            .iter()
            .find(|(w, _)| w == word)
            .map(|(_, r)| r.as_str())
    };
    if get("mounted").is_none() {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs in a user namespace ({status}): {}",
            err.trim()
        );
        return;
    }
    assert!(
        !matches!(status.signal(), Some(SIGBUS | SIGSEGV)),
        "the child died of {status}; its stderr:\n{err}"
    );
    assert!(
        status.success(),
        "the child ended with {status}; its stderr:\n{err}"
    );
    let num = |word: &str| -> u64 {
        get(word)
            .unwrap_or_else(|| panic!("no {word:?} report: {reports:?}"))
            .parse()
            .unwrap_or_else(|_| panic!("{word:?} is not a number: {reports:?}"))
    };
    let max_of = |word: &str| -> u64 {
        reports
            .iter()
            .filter(|(w, _)| w == word)
            .map(|(_, r)| r.parse::<u64>().expect("number"))
            .max()
            .unwrap_or(0)
    };

    let no_space = format!("NoSpace {ENOSPC}");
    assert_eq!(get("open_error"), None, "{reports:?}");
    assert_eq!(
        get("error"),
        Some(no_space.as_str()),
        "the append that needs a new segment on a full disk: {reports:?}"
    );
    let last = num("last");
    let segments = num("segments");
    assert!(
        (2..=7).contains(&segments),
        "{segments} segments on a 1 MiB disk with a 600 KiB file: {reports:?}"
    );
    let agains: Vec<&str> = reports
        .iter()
        .filter(|(w, _)| w == "again")
        .map(|(_, r)| r.as_str())
        .collect();
    assert_eq!(
        agains,
        vec![no_space.as_str(); 2],
        "appends while full: {reports:?}"
    );
    assert_eq!(
        get("sync"),
        Some(format!("Ok {last}").as_str()),
        "a full disk does not poison the log: {reports:?}"
    );
    // Everything appended before (acknowledged or not) is readable.
    let acked_before = reports
        .iter()
        .take_while(|(w, _)| w != "error")
        .filter(|(w, _)| w == "acked" || w == "kept")
        .map(|(_, r)| r.parse::<u64>().expect("number"))
        .max()
        .unwrap_or(0);
    assert_eq!(acked_before, last, "{reports:?}");
    assert!(last > 100, "only {last} records fit: {reports:?}");
    assert_eq!(num("verified"), last, "{reports:?}");
    assert_eq!(num("records"), last, "{reports:?}");

    // Space freed: the log continues with the next LSN, across new segments.
    assert_eq!(get("resume_error"), None, "{reports:?}");
    assert_eq!(num("resumed"), last + 1, "{reports:?}");
    let end = num("resumed_last");
    assert_eq!(end, max_of("kept").max(max_of("acked")), "{reports:?}");
    assert!(end > last + 50, "{reports:?}");
    assert_eq!(get("closed"), Some("1"), "{reports:?}");
    assert_eq!(get("reopen_error"), None, "{reports:?}");
    assert_eq!(num("reopened_verified"), end, "{reports:?}");
    assert_eq!(num("reopened_records"), end, "{reports:?}");
    assert_eq!(num("reopened_clean"), 1, "{reports:?}");
}
