//! Log sequence numbers.

use std::fmt;

/// A log sequence number: the position of a record in the log.
///
/// LSNs are dense (every record gets the next one), start at 1 in a new log, keep
/// increasing across restarts, purges and segment recycling, and are never reused for
/// a record that recovery could still return. `Lsn(0)` means "no record" (for example
/// [`Wal::durable`](crate::Wal::durable) before anything was synced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// "No record": below every real LSN.
    pub const ZERO: Lsn = Lsn(0);

    /// The numeric value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The following LSN, saturating at `u64::MAX`.
    pub const fn next(self) -> Lsn {
        Lsn(self.0.saturating_add(1))
    }

    /// The preceding LSN, saturating at zero.
    pub const fn prev(self) -> Lsn {
        Lsn(self.0.saturating_sub(1))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u64> for Lsn {
    fn from(v: u64) -> Lsn {
        Lsn(v)
    }
}

impl From<Lsn> for u64 {
    fn from(v: Lsn) -> u64 {
        v.0
    }
}
