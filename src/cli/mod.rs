//! Subcommands of the `mmlog` binary.

pub(crate) mod bench;
pub(crate) mod inspect;
pub(crate) mod out;

use std::fmt;

/// An error the command reports as one line, with a hint when there is one.
#[derive(Debug)]
pub(crate) struct CliError {
    message: String,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl CliError {
    pub(crate) fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
        }
    }
}

impl From<mmlog::Error> for CliError {
    fn from(e: mmlog::Error) -> CliError {
        let hint = match &e {
            mmlog::Error::Locked { .. } => {
                " (another process has the log open; stop it or wait for it to close)"
            }
            mmlog::Error::NoSpace { .. } => " (free some space and retry)",
            mmlog::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                " (check the path)"
            }
            mmlog::Error::Io { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                " (check the permissions)"
            }
            _ => "",
        };
        CliError::new(format!("{e}{hint}"))
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::new(e.to_string())
    }
}

pub(crate) type CliResult<T> = Result<T, CliError>;
