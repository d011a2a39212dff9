//! Appends a few records, "crashes" (drops the log without closing it), reopens and
//! prints what recovery found.
//!
//! Run with `cargo run --example basic`.

use mmlog::{Durability, Lsn, Options, Wal};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let opts = Options {
        durability: Durability::None,
        ..Options::default()
    };
    {
        let (wal, report) = Wal::open(dir.path(), opts.clone())?;
        println!("{report}");
        for i in 0..5u32 {
            wal.append(format!("record {i}").as_bytes())?;
        }
        wal.sync()?;
        wal.append(b"appended after the last sync")?;
        // Dropped without close(): a crash as far as the disk is concerned.
    }
    let (wal, report) = Wal::open(dir.path(), opts)?;
    println!("{report}");
    for r in wal.iter_from(Lsn(1))? {
        let r = r?;
        println!("{:>3}  {}", r.lsn(), String::from_utf8_lossy(r.payload()));
    }
    wal.close()?;
    Ok(())
}
