//! Failpoints: make any persistence step fail, or end the process there.
//!
//! A test builds a [`Failpoints`], arms the steps it wants, and passes it in
//! [`Options::env`](crate::Options::env). Nothing is global: two logs in one process
//! have their own failpoints, and a log without any pays one branch per step.

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;

/// A persistence step that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Creating a segment file (`*.seg.tmp`).
    SegmentCreate,
    /// Reserving the segment's blocks (`fallocate`).
    SegmentAllocate,
    /// Mapping a segment.
    SegmentMap,
    /// Writing a segment header slot.
    SegmentHeaderWrite,
    /// `fsync` of a new segment before it is renamed into place.
    SegmentSync,
    /// Renaming a prepared segment into place.
    SegmentRename,
    /// Sealing a segment (truncation, trimmed tail): header write and sync.
    SegmentSeal,
    /// Removing (retiring) a segment.
    SegmentRemove,
    /// `msync` of appended records (every sync and durable append).
    Flush,
    /// After each such `msync`: the check for write-back errors through the flush
    /// slot's own handle of the segment file (`sync_file_range`).
    WritebackCheck,
    /// `fsync` of the log directory.
    DirSync,
    /// Creating a temporary checkpoint file.
    CheckpointCreate,
    /// Mapping a checkpoint.
    CheckpointMap,
    /// Syncing a checkpoint before it is renamed into place.
    CheckpointSync,
    /// Renaming a checkpoint into place.
    CheckpointRename,
    /// Removing an old checkpoint.
    CheckpointRemove,
    /// Reading a segment header during recovery or inspection.
    SegmentRead,
}

/// What an armed failpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailAction {
    /// Return the I/O error with this `errno` (e.g. 5 for `EIO`, 28 for `ENOSPC`).
    Errno(i32),
    /// End the process at once with this exit code, as a crash would: no destructor
    /// runs, no background thread is joined, nothing more is synced.
    Exit(i32),
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    action: FailAction,
    /// Hits to let through before firing.
    skip: u64,
    /// How many times to fire; `None` = for ever.
    times: Option<u64>,
}

/// A set of armed failpoints. Share it with `Arc`.
#[derive(Debug, Default)]
pub struct Failpoints {
    rules: Mutex<HashMap<Step, Rule>>,
    hits: Mutex<HashMap<Step, u64>>,
}

impl Failpoints {
    /// No failpoint armed.
    pub fn new() -> Failpoints {
        Failpoints::default()
    }

    /// Arms `step`: let `skip` hits through, then do `action` on every later hit.
    pub fn arm(&self, step: Step, skip: u64, action: FailAction) {
        self.insert(
            step,
            Rule {
                action,
                skip,
                times: None,
            },
        );
    }

    /// Arms `step` to do `action` once, after `skip` hits.
    pub fn arm_once(&self, step: Step, skip: u64, action: FailAction) {
        self.insert(
            step,
            Rule {
                action,
                skip,
                times: Some(1),
            },
        );
    }

    /// Disarms `step`.
    pub fn disarm(&self, step: Step) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.remove(&step);
        }
    }

    /// How many times `step` was reached (fired or not).
    pub fn hits(&self, step: Step) -> u64 {
        self.hits
            .lock()
            .map(|h| h.get(&step).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn insert(&self, step: Step, rule: Rule) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.insert(step, rule);
        }
    }

    /// Called by the engine at `step`.
    pub(crate) fn hit(&self, step: Step) -> io::Result<()> {
        if let Ok(mut hits) = self.hits.lock() {
            *hits.entry(step).or_insert(0) += 1;
        }
        let Ok(mut rules) = self.rules.lock() else {
            return Ok(());
        };
        let Some(rule) = rules.get_mut(&step) else {
            return Ok(());
        };
        if rule.skip > 0 {
            rule.skip -= 1;
            return Ok(());
        }
        let action = rule.action;
        match &mut rule.times {
            Some(0) => return Ok(()),
            Some(n) => *n -= 1,
            None => {}
        }
        drop(rules);
        match action {
            FailAction::Errno(code) => Err(io::Error::from_raw_os_error(code)),
            FailAction::Exit(code) => std::process::exit(code),
        }
    }
}
