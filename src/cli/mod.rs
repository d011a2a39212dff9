//! Subcommands of the `mmlog` binary, and the one error type they report.
//!
//! Exit codes are the same for every subcommand: [`EXIT_OK`] when all is well,
//! [`EXIT_DAMAGE`] when the log (or a checkpoint) is damaged, [`EXIT_ERROR`] for usage
//! errors, I/O errors, a log another process holds, or a path that holds no log. Clap's
//! own usage errors exit with 2 as well.

pub(crate) mod bench;
pub(crate) mod checkpoints;
pub(crate) mod dump;
pub(crate) mod open;
pub(crate) mod out;
pub(crate) mod repair;
pub(crate) mod stat;
pub(crate) mod verify;

use std::fmt;
use std::io;
use std::path::Path;

/// Everything is fine.
pub(crate) const EXIT_OK: u8 = 0;
/// Damage was found.
pub(crate) const EXIT_DAMAGE: u8 = 1;
/// Usage, I/O or lock errors, or no log at the path.
pub(crate) const EXIT_ERROR: u8 = 2;

/// An error the command reports as one line, `mmlog: <what>: <hint>`, and the exit
/// code that goes with it.
#[derive(Debug)]
pub(crate) struct CliError {
    what: String,
    hint: Option<String>,
    code: u8,
    /// Nothing to print: the reader of our output went away (`| head`).
    quiet: bool,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        if let Some(h) = &self.hint {
            write!(f, ": {h}")?;
        }
        Ok(())
    }
}

impl CliError {
    /// A usage or environment error (exit 2) with a hint saying what to do.
    pub(crate) fn usage(what: impl Into<String>, hint: impl Into<String>) -> CliError {
        CliError {
            what: what.into(),
            hint: Some(hint.into()),
            code: EXIT_ERROR,
            quiet: false,
        }
    }

    /// Damage in the log (exit 1) with a hint saying what to do.
    pub(crate) fn damage(what: impl Into<String>, hint: impl Into<String>) -> CliError {
        CliError {
            what: what.into(),
            hint: Some(hint.into()),
            code: EXIT_DAMAGE,
            quiet: false,
        }
    }

    /// Something that cannot happen did (exit 2).
    pub(crate) fn bug(what: impl Into<String>) -> CliError {
        CliError::usage(what, "this is a bug in mmlog; please report it")
    }

    /// An I/O error while doing `what` to `path`.
    pub(crate) fn io(what: &str, path: &Path, e: &io::Error) -> CliError {
        let hint = match e.kind() {
            io::ErrorKind::NotFound => "check the path",
            io::ErrorKind::PermissionDenied => "check the permissions (or run as the log's owner)",
            _ => "check the disk and the path",
        };
        CliError::usage(format!("{what} {}: {e}", path.display()), hint)
    }

    /// Replaces the hint.
    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    /// The process exit code for this error.
    pub(crate) fn code(&self) -> u8 {
        self.code
    }

    /// True when nothing should be printed (the output pipe was closed).
    pub(crate) fn is_quiet(&self) -> bool {
        self.quiet
    }
}

impl From<mmlog::Error> for CliError {
    fn from(e: mmlog::Error) -> CliError {
        let (hint, code): (String, u8) = match &e {
            mmlog::Error::Locked { .. } => (
                "another process has the log open for writing; stop it or wait for it to close the log (`mmlog stat` works meanwhile)".into(),
                EXIT_ERROR,
            ),
            mmlog::Error::NoSpace { .. } => ("free some space and retry".into(), EXIT_ERROR),
            mmlog::Error::Io { source, .. } => (
                match source.kind() {
                    io::ErrorKind::NotFound => "check the path",
                    io::ErrorKind::PermissionDenied => {
                        "check the permissions (or run as the log's owner)"
                    }
                    _ => "check the disk and the path",
                }
                .into(),
                EXIT_ERROR,
            ),
            mmlog::Error::UnsupportedVersion { .. } => (
                "a newer mmlog wrote this file; use that version".into(),
                EXIT_DAMAGE,
            ),
            e if e.is_corruption() => (
                "run `mmlog verify DIR` to list every damage and how to repair it".into(),
                EXIT_DAMAGE,
            ),
            mmlog::Error::InvalidOptions(_) | mmlog::Error::InvalidArgument(_) => {
                ("check the arguments (see --help)".into(), EXIT_ERROR)
            }
            _ => ("this is unexpected; please report it".into(), EXIT_ERROR),
        };
        CliError {
            what: e.to_string(),
            hint: Some(hint),
            code,
            quiet: false,
        }
    }
}

/// Errors writing our own output. A closed pipe is the normal end of `mmlog ... | head`:
/// exit 0 quietly.
impl From<io::Error> for CliError {
    fn from(e: io::Error) -> CliError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return CliError {
                what: String::new(),
                hint: None,
                code: EXIT_OK,
                quiet: true,
            };
        }
        CliError::usage(
            format!("writing the output: {e}"),
            "check where the output goes (disk full?)",
        )
    }
}

pub(crate) type CliResult<T> = Result<T, CliError>;
