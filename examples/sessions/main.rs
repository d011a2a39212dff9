//! A terminal-multiplexer-like server keeping its state in an mmlog `Store`: it
//! creates sessions, windows and panes, changes and closes them, checkpoints,
//! "crashes" (drops the store without closing it), recovers, and prints the state.
//!
//! Run with `cargo run --example sessions`. `tests/sessions.rs` checks the same
//! behaviour under crashes.

mod model;

use mmlog::{Durability, Options, Store, StoreOptions};
use model::{Command, Server, Workload};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let opts = StoreOptions {
        wal: Options {
            segment_size_bytes: 256 * 1024,
            durability: Durability::None,
            ..Options::default()
        },
        checkpoint_every_records: Some(5_000),
        ..StoreOptions::default()
    };
    // The commands the server acknowledged, applied to a plain in-memory copy.
    let mut expected = Server::default();
    {
        let (mut store, report) = Store::<Server>::open(dir.path(), opts.clone())?;
        println!("{report}");
        store.execute(
            &Command::NewSession {
                id: 0,
                name: "main".into(),
            }
            .encode(),
        )?;
        expected.run(&Command::NewSession {
            id: 0,
            name: "main".into(),
        });
        let mut work = Workload::new(7);
        for i in 0..12_000 {
            let cmd = work.next(&expected);
            // Every 100th command waits for the disk; the rest only for the mapping.
            let durability = if i % 100 == 0 {
                Durability::Sync
            } else {
                Durability::None
            };
            store.execute_with(&cmd.encode(), durability)?;
            expected.run(&cmd);
        }
        assert_eq!(store.state(), &expected);
        println!(
            "ran 12001 commands: {} sessions; the log holds {} segment bytes",
            expected.sessions.len(),
            store.wal().segment_bytes()
        );
        // The server "crashes": dropped without close().
    }
    let (store, report) = Store::<Server>::open(dir.path(), opts.clone())?;
    println!("after the crash: {report}");
    assert!(
        !report.clean_shutdown,
        "a crash must not look like a clean shutdown"
    );
    assert_eq!(store.state(), &expected, "recovered state differs");
    println!(
        "recovered state matches; it has {} sessions, for example:",
        expected.sessions.len()
    );
    for line in store.state().describe().lines().take(12) {
        println!("  {line}");
    }
    store.close()?;
    let (store, report) = Store::<Server>::open(dir.path(), opts)?;
    assert!(report.clean_shutdown);
    assert_eq!(store.state(), &expected);
    println!("after a clean close: {report}");
    store.close()?;
    Ok(())
}
