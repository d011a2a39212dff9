//! Fault injection for tests: failpoints at every persistence step.
//!
//! ```
//! use std::sync::Arc;
//! use mmlog::testing::{FailAction, Failpoints, Step};
//! use mmlog::{Env, Options, Wal};
//!
//! let dir = tempfile::tempdir()?;
//! let fp = Arc::new(Failpoints::new());
//! let opts = Options { env: Env::with_failpoints(fp.clone()), ..Options::default() };
//! let (wal, _) = Wal::open(dir.path(), opts)?;
//! fp.arm(Step::Flush, 0, FailAction::Errno(5)); // EIO on the next msync
//! assert!(wal.append(b"x").is_err());
//! assert!(matches!(wal.append(b"y"), Err(mmlog::Error::Poisoned { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use crate::sys::{FailAction, Failpoints, Step};
