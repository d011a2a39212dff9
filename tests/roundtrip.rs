//! Round trip: every record that goes in comes back out, byte for byte, under its LSN.
//!
//! Provoked with tiny (64 KiB) segments so that a few megabytes of records roll over
//! dozens of times, payloads of every size from 0 bytes to
//! `Options::max_payload_bytes()` (and one byte more, which must be refused with
//! `Error::RecordTooLarge` without harming the log), single appends mixed with
//! `append_batch`, and reopening both after a clean `close()` (the report says
//! `clean_shutdown`) and after a drop without close (a crash as far as the disk is
//! concerned). Records are read back with a full scan, `read(lsn)` at random LSNs,
//! `iter_from(lsn)` starting inside a batch, and a tailing reader that waits for new
//! records while another thread appends.

mod common;

use std::time::{Duration, Instant};

use common::model::{Model, append_batch, append_one};
use common::{Rng, read_all, segments, small};
use mmlog::{Durability, Error, Lsn, Wal};

/// Payload length for the next record: mostly small, sometimes empty, sometimes the
/// largest a segment takes or just below it.
fn pick_len(rng: &mut Rng, max: usize) -> usize {
    match rng.below(100) {
        0..10 => 0,
        10..50 => 1 + rng.below(63) as usize,
        50..80 => 64 + rng.below(1984) as usize,
        80..92 => 2048 + rng.below(18_000) as usize,
        92..96 => max,
        _ => max - 1 - rng.below(15) as usize,
    }
}

/// `ops` operations: single appends of any size, and batches of 2 to 12 small records
/// (some of them empty).
fn write_mixed(wal: &Wal, model: &mut Model, rng: &mut Rng, tag: u64, ops: usize) {
    let max = usize::try_from(wal.options().max_payload_bytes()).expect("max");
    for _ in 0..ops {
        if rng.chance(20) {
            let n = 2 + rng.below(11) as usize;
            let lens: Vec<usize> = (0..n)
                .map(|_| {
                    if rng.chance(15) {
                        0
                    } else {
                        rng.below(1500) as usize
                    }
                })
                .collect();
            append_batch(wal, model, tag, &lens);
        } else {
            let len = pick_len(rng, max);
            append_one(wal, model, tag, len, Durability::None);
        }
    }
}

/// The whole log equals the model: same LSNs, dense, same bytes.
fn assert_log_matches(wal: &Wal, model: &Model, when: &str) {
    let got = read_all(wal);
    assert_eq!(
        got.len(),
        model.records.len(),
        "{when}: record count (first LSN read: {:?}, last: {:?})",
        got.first().map(|r| r.0),
        got.last().map(|r| r.0)
    );
    for (i, (lsn, p)) in got.iter().enumerate() {
        let want = model.first + i as u64;
        assert_eq!(*lsn, want, "{when}: LSN at position {i}");
        assert!(
            p.as_slice() == model.get(want),
            "{when}: payload of LSN {want} differs ({} bytes read, {} expected)",
            p.len(),
            model.get(want).len()
        );
    }
    assert_eq!(wal.appended(), Lsn(model.last_lsn()), "{when}: appended()");
    assert_eq!(wal.first_lsn(), Lsn(model.first), "{when}: first_lsn()");
}

/// A record one byte over the limit is refused, as is a batch one byte over; nothing is
/// written, no LSN is used, and the log goes on.
fn assert_too_large_refused(wal: &Wal, model: &mut Model, tag: u64) {
    let max = wal.options().max_payload_bytes();
    let max_len = usize::try_from(max).expect("max");
    let before = wal.appended();

    let e = wal
        .append(&vec![0x5a; max_len + 1])
        .expect_err("max + 1 bytes must be refused");
    assert!(
        matches!(e, Error::RecordTooLarge { max_payload_bytes, .. } if max_payload_bytes == max),
        "{e:?}"
    );
    // A batch body is its directory (count, then one length per record) plus payloads:
    // a one-record batch holds max - 8 bytes of payload, and not one byte more.
    let too_big = vec![0xa5; max_len - 8 + 1];
    let e = wal
        .append_batch(&[too_big.as_slice()])
        .expect_err("batch over the limit must be refused");
    assert!(matches!(e, Error::RecordTooLarge { .. }), "{e:?}");
    let e = wal
        .append_batch(&[&[1u8; 16][..], &vec![2u8; max_len][..]])
        .expect_err("batch holding a max-size record must be refused");
    assert!(matches!(e, Error::RecordTooLarge { .. }), "{e:?}");
    assert_eq!(wal.appended(), before, "a refused record used an LSN");

    // The log is still usable, at the very limit too.
    append_one(wal, model, tag, max_len, Durability::None);
    append_batch(wal, model, tag, &[max_len - 8]);
    append_one(wal, model, tag, 3, Durability::None);
}

#[test]
fn records_of_every_size_survive_close_and_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = small();
    let max_len = usize::try_from(opts.max_payload_bytes()).expect("max");
    assert!(
        (56 * 1024..64 * 1024).contains(&max_len),
        "max payload {max_len} for 64 KiB segments"
    );
    let mut rng = Rng::new(0x0bad_cafe);
    let mut model = Model::new();

    // Session 1: every size, batches, the refused sizes; ends on a record that fills a
    // segment, so the seal of the clean close needs a new one.
    let (wal, report) = Wal::open(dir.path(), opts.clone()).expect("open");
    assert!(report.created, "{report}");
    append_one(&wal, &mut model, 1, 0, Durability::None);
    append_batch(&wal, &mut model, 1, &[0, 0, 0]);
    assert_too_large_refused(&wal, &mut model, 1);
    write_mixed(&wal, &mut model, &mut rng, 1, 160);
    append_one(&wal, &mut model, 1, max_len, Durability::None);
    assert_log_matches(&wal, &model, "session 1, before close");
    assert!(
        segments(dir.path()).len() >= 20,
        "expected many rollovers, got {} segments",
        segments(dir.path()).len()
    );
    wal.close().expect("close");

    // Session 2: a clean reopen gives it all back; append more, then crash (drop).
    let (wal, report) = Wal::open(dir.path(), opts.clone()).expect("reopen after close");
    assert!(report.clean_shutdown, "{report}");
    assert!(report.dropped.is_empty(), "{report}");
    assert_eq!(report.first_lsn, Lsn(1), "{report}");
    assert_eq!(report.next_lsn, Lsn(model.next_lsn()), "{report}");
    assert_log_matches(&wal, &model, "after clean reopen");
    write_mixed(&wal, &mut model, &mut rng, 2, 80);
    assert_too_large_refused(&wal, &mut model, 2);
    assert_log_matches(&wal, &model, "session 2, before drop");
    drop(wal);

    // Session 3: a crash reopen gives it all back too; append, close cleanly.
    let (wal, report) = Wal::open(dir.path(), opts.clone()).expect("reopen after drop");
    assert!(!report.clean_shutdown, "{report}");
    assert!(report.dropped.is_empty(), "{report}");
    assert_eq!(report.next_lsn, Lsn(model.next_lsn()), "{report}");
    assert_log_matches(&wal, &model, "after crash reopen");
    write_mixed(&wal, &mut model, &mut rng, 3, 60);
    wal.close().expect("close");

    let (wal, report) = Wal::open(dir.path(), opts).expect("final reopen");
    assert!(report.clean_shutdown, "{report}");
    assert_log_matches(&wal, &model, "final reopen");
    // A clean close then a crash: the old seal must not pass for a clean close.
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), small()).expect("reopen after close+drop");
    assert!(!report.clean_shutdown, "{report}");
    assert_log_matches(&wal, &model, "after close, open, drop");
    wal.close().expect("close");
}

#[test]
fn read_returns_each_record_by_lsn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(42);
    let mut model = Model::new();
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    write_mixed(&wal, &mut model, &mut rng, 7, 100);
    let last = model.last_lsn();

    let check = |wal: &Wal, rng: &mut Rng, when: &str| {
        let mut lsns: Vec<u64> = (0..300).map(|_| 1 + rng.below(last)).collect();
        lsns.extend([1, last]);
        for &(first, count) in model.batches.iter().take(5) {
            lsns.extend(first..first + count);
        }
        for lsn in lsns {
            let r = wal
                .read(Lsn(lsn))
                .unwrap_or_else(|e| panic!("{when}: read({lsn}): {e:?}"));
            assert_eq!(r.lsn(), Lsn(lsn), "{when}");
            assert_eq!(r.len(), model.get(lsn).len(), "{when}: length of {lsn}");
            assert!(r.payload() == model.get(lsn), "{when}: payload of {lsn}");
        }
        for lsn in [0, last + 1, last + 1000] {
            let e = wal.read(Lsn(lsn)).expect_err("no such record");
            assert!(
                matches!(e, Error::NotFound { lsn: l } if l == Lsn(lsn)),
                "{when}: {e:?}"
            );
        }
    };

    check(&wal, &mut rng, "live");
    wal.close().expect("close");
    let (wal, _) = Wal::open(dir.path(), small()).expect("reopen after close");
    check(&wal, &mut rng, "after close");
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), small()).expect("reopen after drop");
    check(&wal, &mut rng, "after drop");
    wal.close().expect("close");
}

#[test]
fn iter_from_starts_at_any_lsn_including_inside_a_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(7);
    let mut model = Model::new();
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    for _ in 0..120 {
        if rng.chance(50) {
            let n = 2 + rng.below(10) as usize;
            let lens: Vec<usize> = (0..n).map(|_| rng.below(2000) as usize).collect();
            append_batch(&wal, &mut model, 9, &lens);
        } else {
            let len = rng.below(3000) as usize;
            append_one(&wal, &mut model, 9, len, Durability::None);
        }
    }
    assert!(
        segments(dir.path()).len() >= 4,
        "the batches should span segments"
    );
    let last = model.last_lsn();

    let check = |wal: &Wal, when: &str| {
        // Every start position inside every batch: the next few records.
        for &(first, count) in &model.batches {
            for start in first..first + count {
                let got: Vec<(u64, Vec<u8>)> = wal
                    .iter_from(Lsn(start))
                    .expect("iter_from")
                    .take(20)
                    .map(|r| {
                        let r = r.expect("record");
                        (r.lsn().0, r.payload().to_vec())
                    })
                    .collect();
                let want = (last - start + 1).min(20);
                assert_eq!(got.len() as u64, want, "{when}: from {start}");
                for (k, (lsn, p)) in got.iter().enumerate() {
                    assert_eq!(*lsn, start + k as u64, "{when}: from {start}");
                    assert!(p.as_slice() == model.get(*lsn), "{when}: payload of {lsn}");
                }
            }
        }
        // From the middle of a batch to the very end, across segments.
        let (first, count) = model.batches[model.batches.len() / 3];
        let start = first + count / 2;
        let got: Vec<u64> = wal
            .iter_from(Lsn(start))
            .expect("iter_from")
            .map(|r| r.expect("record").lsn().0)
            .collect();
        assert!(
            got == (start..=last).collect::<Vec<u64>>(),
            "{when}: from {start} to the end"
        );
        // Past the end: nothing.
        assert_eq!(
            wal.iter_from(Lsn(last + 1)).expect("iter_from").count(),
            0,
            "{when}"
        );
    };

    check(&wal, "live");
    wal.close().expect("close");
    let (wal, _) = Wal::open(dir.path(), small()).expect("reopen");
    check(&wal, "after reopen");
    drop(wal);
}

#[test]
fn tail_reads_existing_records_then_waits_for_new_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(99);
    let mut model = Model::new();
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    write_mixed(&wal, &mut model, &mut rng, 11, 40);
    append_batch(&wal, &mut model, 11, &[5, 6, 7, 8]);
    let start = model.last_lsn() - 2; // inside the batch

    // What is already there, then nothing more (the short timeout is the expected
    // outcome, not synchronisation).
    let mut tail = wal.tail(Lsn(start));
    for lsn in start..=model.last_lsn() {
        let r = tail
            .next_timeout(Duration::from_secs(10))
            .expect("tail")
            .unwrap_or_else(|| panic!("record {lsn} is in the log"));
        assert_eq!(r.lsn(), Lsn(lsn));
        assert!(r.payload() == model.get(lsn), "payload of {lsn}");
    }
    assert_eq!(tail.next_lsn(), Lsn(model.next_lsn()));
    assert!(
        tail.next_timeout(Duration::from_millis(10))
            .expect("tail")
            .is_none(),
        "no record was appended"
    );

    // A reader blocked in the tail gets what another thread appends, across rollovers.
    let first_new = model.next_lsn();
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut got = Vec::new();
            while got.len() < 300 {
                match tail.next_timeout(Duration::from_secs(30)).expect("tail") {
                    Some(r) => got.push((r.lsn().0, r.payload().to_vec())),
                    None => break,
                }
            }
            got
        });
        let mut rng = Rng::new(3);
        while model.next_lsn() < first_new + 300 {
            if rng.chance(20) {
                append_batch(&wal, &mut model, 12, &[1, 0, 300, 4000]);
            } else {
                let len = rng.below(5000) as usize;
                append_one(&wal, &mut model, 12, len, Durability::None);
            }
        }
        let got = reader.join().expect("reader");
        assert_eq!(got.len(), 300, "the tail stopped early");
        for (k, (lsn, p)) in got.iter().enumerate() {
            assert_eq!(*lsn, first_new + k as u64);
            assert!(p.as_slice() == model.get(*lsn), "payload of {lsn}");
        }
    });
    assert!(
        segments(dir.path()).len() >= 3,
        "the tail should have crossed segments"
    );

    // A reader waiting at the end is released by close, long before its timeout.
    let mut tail = wal.tail(Lsn(model.next_lsn()));
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let started = Instant::now();
            let r = tail.next_timeout(Duration::from_secs(60));
            (r.map(|r| r.map(|r| r.lsn())), started.elapsed())
        });
        wal.close().expect("close");
        let (r, waited) = reader.join().expect("reader");
        assert!(matches!(r, Ok(None)), "{r:?}");
        assert!(
            waited < Duration::from_secs(30),
            "close did not wake the tail ({waited:?})"
        );
    });
}
