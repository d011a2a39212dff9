//! Helpers shared by the `cli_*` tests: run the built `mmlog` binary and capture its
//! exit code and output, build small logs with the library (64 KiB segments, payloads
//! that depend on the LSN), find the byte offset of a record to damage it, snapshot a
//! directory byte for byte, and check JSON lines by their documented keys (no serde).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mmlog::{Durability, Lsn, Wal};

use crate::common::{DATA_OFFSET, HEADER, frame_offsets, payload, small};

/// Payload tag of every record the CLI tests write.
pub const TAG: u64 = 0xC11;

/// Payload length of the record with LSN `lsn`: 200..1000 bytes, about 90 records a
/// 64 KiB segment.
pub fn len_for(lsn: u64) -> usize {
    200 + (lsn.wrapping_mul(37) % 800) as usize
}

/// The payload of the record with LSN `lsn`.
pub fn record(lsn: u64) -> Vec<u8> {
    payload(TAG, lsn, len_for(lsn))
}

/// What one run of `mmlog` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing the output when it differs.
    pub fn expect_code(&self, code: i32, what: &str) -> &Run {
        assert_eq!(
            self.code, code,
            "{what}: exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts that stdout contains every needle.
    pub fn expect_stdout(&self, needles: &[&str], what: &str) -> &Run {
        for n in needles {
            assert!(
                self.stdout.contains(n),
                "{what}: stdout lacks {n:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout,
                self.stderr
            );
        }
        self
    }

    /// Asserts that stderr is one line, `mmlog: <what>: <hint>`, containing every needle.
    pub fn expect_error_line(&self, needles: &[&str], what: &str) -> &Run {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{what}: stderr must be one line:\n{}",
            self.stderr
        );
        assert!(
            lines[0].starts_with("mmlog: ") && lines[0].matches(": ").count() >= 2,
            "{what}: not `mmlog: <what>: <hint>`: {}",
            lines[0]
        );
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "{what}: stderr lacks {n:?}: {}",
                self.stderr
            );
        }
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "{what}: a panic: {}",
            self.stderr
        );
        self
    }
}

/// A command line for the `mmlog` binary under test.
pub struct Cmd {
    args: Vec<OsString>,
}

/// `mmlog <subcommand>`.
pub fn mmlog(subcommand: &str) -> Cmd {
    Cmd {
        args: vec![subcommand.into()],
    }
}

impl Cmd {
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Cmd {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Cmd {
        self.args.extend(args.iter().map(OsString::from));
        self
    }

    /// The command, not yet run.
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mmlog"));
        c.args(&self.args).stdin(Stdio::null());
        c
    }

    /// Runs it to the end.
    pub fn run(&self) -> Run {
        self.finish(self.command())
    }

    /// Runs it to the end in directory `cwd`.
    pub fn run_in(&self, cwd: &Path) -> Run {
        let mut c = self.command();
        c.current_dir(cwd);
        self.finish(c)
    }

    fn finish(&self, mut command: Command) -> Run {
        let out = command.output().expect("run mmlog");
        Run {
            code: out.status.code().unwrap_or_else(|| {
                panic!("mmlog {:?} died of a signal: {}", self.args, out.status)
            }),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A child process that is killed and reaped when this is dropped (a failed assertion
/// included), so that no child outlives its test.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Writes records 1..=`records` with [`record`], then closes the log cleanly (`close`)
/// or drops it (a crash).
pub fn write_log(dir: &Path, records: u64, close: bool) {
    let (wal, _) = Wal::open(dir, small()).expect("open");
    append_records(&wal, 1, records);
    if close {
        wal.close().expect("close");
    } else {
        drop(wal);
    }
}

/// Appends records `from..=to`, which must be the next LSNs.
pub fn append_records(wal: &Wal, from: u64, to: u64) {
    for lsn in from..=to {
        assert_eq!(
            wal.append_with(&record(lsn), Durability::None)
                .expect("append"),
            Lsn(lsn)
        );
    }
}

/// The first segment file of `dir`.
pub fn first_segment(dir: &Path) -> PathBuf {
    crate::common::segments(dir)
        .first()
        .cloned()
        .expect("a segment")
}

/// Offset of the frame of record `lsn` in the first segment (written by [`write_log`],
/// one record per frame; `lsn` must lie in the first segment).
pub fn offset_of(lsn: u64) -> u64 {
    let lens: Vec<u64> = (1..=lsn).map(|l| len_for(l) as u64).collect();
    let at = *frame_offsets(&lens).last().expect("lsn >= 1");
    assert!(
        at + HEADER + len_for(lsn) as u64 <= 64 * 1024,
        "LSN {lsn} is not in the first segment"
    );
    at
}

/// Flips a bit in the middle of the payload of record `lsn` (in the first segment).
pub fn damage_record(dir: &Path, lsn: u64) -> (PathBuf, u64) {
    let seg = first_segment(dir);
    let at = offset_of(lsn);
    assert!(at >= DATA_OFFSET);
    crate::common::flip_bit(&seg, at + HEADER + len_for(lsn) as u64 / 2, 3);
    (seg, at)
}

/// Every file of `dir` (not recursive) with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect()
}

/// [`snapshot`] without the `LOCK` file, whose content (the pid of the last process
/// that took the write lock) a repair rewrites even when it changes nothing else.
pub fn snapshot_data(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut s = snapshot(dir);
    s.remove("LOCK");
    s
}

/// Asserts `line` is one JSON object holding each key (`"key":`).
pub fn assert_json_object(line: &str, keys: &[&str], what: &str) {
    let line = line.trim_end();
    assert!(
        line.starts_with('{') && line.ends_with('}'),
        "{what}: not a JSON object: {line}"
    );
    assert!(!line.contains('\n'), "{what}: one line");
    for k in keys {
        assert!(
            line.contains(&format!("\"{k}\":")),
            "{what}: key {k:?} missing in {line}"
        );
    }
    // Balanced braces and brackets outside strings: the cheapest check that it parses.
    let (mut depth, mut in_str, mut escaped) = (0i32, false, false);
    for c in line.chars() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ => {}
        }
        assert!(depth >= 0, "{what}: unbalanced: {line}");
    }
    assert!(depth == 0 && !in_str, "{what}: unbalanced: {line}");
}

/// The raw value of `key` in a flat JSON line: the text after `"key":` up to the next
/// `,` or `}` outside a string (strings keep their quotes). The first occurrence.
pub fn json_value<'a>(line: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\":");
    let at = line
        .find(&pat)
        .unwrap_or_else(|| panic!("no key {key:?} in {line}"))
        + pat.len();
    let rest = &line[at..];
    let mut in_str = false;
    let mut escaped = false;
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => depth += 1,
            '}' | ']' if depth > 0 => depth -= 1,
            ',' | '}' | ']' if depth == 0 => return &rest[..i],
            _ => {}
        }
    }
    rest
}
