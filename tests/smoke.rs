//! Smoke: append, read back, reopen.
mod common;
use common::*;
use mmlog::{Lsn, Wal};

#[test]
fn append_read_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    assert!(report.created);
    for i in 1..=2000u64 {
        let lsn = wal.append(&payload(1, i, (i % 300) as usize)).unwrap();
        assert_eq!(lsn, Lsn(i));
    }
    let all = read_all(&wal);
    assert_eq!(all.len(), 2000);
    for (lsn, p) in &all {
        assert_eq!(p, &payload(1, *lsn, (*lsn % 300) as usize));
    }
    wal.close().unwrap();
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    println!("{report}");
    let got = read_all(&wal);
    assert_eq!(got.len(), all.len(), "{report}");
    assert!(got == all);
    assert!(report.clean_shutdown);
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    println!("{report}");
    assert!(!report.clean_shutdown);
    assert!(read_all(&wal) == all);
}
