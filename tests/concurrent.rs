//! Concurrent appends and reads: LSNs stay dense and unique, each thread's records keep
//! their order, durability calls cover what they promise, and readers running beside
//! the writers see only whole records in LSN order.
//!
//! Provoked with 8 scoped threads appending to one log with tiny (64 KiB) segments, so
//! that they race through many rollovers: single records without sync, durable appends
//! (group commit), batches, and explicit `sync`/`wait_durable` calls. Each payload
//! encodes its thread id and per-thread sequence number, followed by bytes derived
//! from both, so every record read back can be checked on its own. The log is checked
//! live, after a clean close and after a drop without close. `sync()` must cover every
//! append that returned before it was called, even while other threads still fill
//! lower LSNs, and durable appends must not issue more flushes than there were durable
//! calls (`Stats::syncs`). Tailing readers (`tail`) and a snapshot reader (`iter_from`,
//! `read`) run while writers append, some of them waiting right at the end of the log
//! where records are being published.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{page_resident, payload, read_all, segments, small, wait_until};
use mmlog::{Durability, Lsn, Options, Wal};

/// How one writer thread appends.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Operations (a single append or a batch).
    ops: u32,
    /// Every `sync_every`-th operation is durable.
    sync_every: Option<u32>,
    /// Every `batch_every`-th operation is a batch of 2 to 5 records.
    batch_every: Option<u32>,
    /// Every `explicit_sync_every`-th operation is followed by `sync()` or
    /// `wait_durable()`.
    explicit_sync_every: Option<u32>,
}

impl Plan {
    const fn singles(ops: u32) -> Plan {
        Plan {
            ops,
            sync_every: None,
            batch_every: None,
            explicit_sync_every: None,
        }
    }

    fn is_batch(&self, op: u32) -> bool {
        self.batch_every.is_some_and(|b| op % b == b - 1)
    }

    fn batch_len(op: u32) -> u32 {
        2 + op % 4
    }

    /// Records this plan appends in total.
    fn records(&self) -> u64 {
        (0..self.ops)
            .map(|op| {
                if self.is_batch(op) {
                    u64::from(Plan::batch_len(op))
                } else {
                    1
                }
            })
            .sum()
    }
}

/// Payload of record `seq` of thread `tid`: thread id and sequence number (little
/// endian), then bytes that depend on both.
fn record_bytes(tid: u32, seq: u32) -> Vec<u8> {
    let len = ((u64::from(tid) * 7919 + u64::from(seq) * 104_729) % 700) as usize;
    let mut p = Vec::with_capacity(8 + len);
    p.extend_from_slice(&tid.to_le_bytes());
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&payload(u64::from(tid), u64::from(seq), len));
    p
}

/// Decodes a payload and checks it is whole: `(tid, seq)`.
fn decode(lsn: u64, p: &[u8]) -> (u32, u32) {
    assert!(p.len() >= 8, "LSN {lsn}: payload of {} bytes", p.len());
    let tid = u32::from_le_bytes(p[..4].try_into().expect("4 bytes"));
    let seq = u32::from_le_bytes(p[4..8].try_into().expect("4 bytes"));
    assert!(
        p == record_bytes(tid, seq).as_slice(),
        "LSN {lsn}: payload of thread {tid} record {seq} is not whole or not its own"
    );
    (tid, seq)
}

/// Runs one writer thread: returns `(seq, lsn)` of each of its records.
fn write(wal: &Wal, tid: u32, plan: Plan) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut seq = 0u32;
    let mut last = 0u64;
    for op in 0..plan.ops {
        let durability = match plan.sync_every {
            Some(n) if op % n == n - 1 => Durability::Sync,
            _ => Durability::None,
        };
        if plan.is_batch(op) {
            let n = Plan::batch_len(op);
            let payloads: Vec<Vec<u8>> = (seq..seq + n).map(|s| record_bytes(tid, s)).collect();
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            let first = wal
                .append_batch_with(&refs, durability)
                .expect("append_batch")
                .0;
            assert!(first > last, "thread {tid}: LSN {first} after {last}");
            for k in 0..n {
                out.push((seq + k, first + u64::from(k)));
            }
            seq += n;
            last = first + u64::from(n) - 1;
        } else {
            let lsn = wal
                .append_with(&record_bytes(tid, seq), durability)
                .expect("append")
                .0;
            assert!(lsn > last, "thread {tid}: LSN {lsn} after {last}");
            out.push((seq, lsn));
            seq += 1;
            last = lsn;
        }
        if durability == Durability::Sync {
            assert!(
                wal.durable().0 >= last,
                "thread {tid}: durable append of {last}"
            );
        }
        if let Some(n) = plan.explicit_sync_every
            && op % n == n - 1
        {
            if op % 2 == 0 {
                let durable = wal.sync().expect("sync");
                assert!(
                    durable.0 >= last,
                    "thread {tid}: sync returned {durable} < {last}"
                );
            } else {
                wal.wait_durable(Lsn(last)).expect("wait_durable");
            }
            assert!(wal.durable().0 >= last, "thread {tid}: {last} not durable");
        }
    }
    out
}

/// Runs every plan in its own thread; returns each thread's `(seq, lsn)` list.
fn run_writers(wal: &Wal, plans: &[Plan]) -> Vec<Vec<(u32, u64)>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .enumerate()
            .map(|(tid, plan)| {
                let tid = u32::try_from(tid).expect("tid");
                let plan = *plan;
                s.spawn(move || write(wal, tid, plan))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    })
}

/// The log holds exactly what the writers were told, under the LSNs they were told:
/// LSNs dense from `first` and each used once, every record whole, every thread's
/// records in its own order.
fn check(wal: &Wal, first: u64, assigned: &[Vec<(u32, u64)>], when: &str) {
    let total: usize = assigned.iter().map(Vec::len).sum();
    let mut lsns: Vec<u64> = assigned.iter().flatten().map(|&(_, lsn)| lsn).collect();
    lsns.sort_unstable();
    let dense: Vec<u64> = (first..first + total as u64).collect();
    assert!(
        lsns == dense,
        "{when}: returned LSNs are not dense and unique"
    );

    let mut by_lsn: HashMap<u64, (u32, u32)> = HashMap::new();
    for (tid, list) in assigned.iter().enumerate() {
        for &(seq, lsn) in list {
            by_lsn.insert(lsn, (u32::try_from(tid).expect("tid"), seq));
        }
    }
    let all = read_all(wal);
    assert_eq!(all.len(), total, "{when}: record count");
    let mut next_seq = vec![0u32; assigned.len()];
    for (i, (lsn, p)) in all.iter().enumerate() {
        assert_eq!(*lsn, first + i as u64, "{when}: LSN at position {i}");
        let (tid, seq) = decode(*lsn, p);
        assert_eq!(by_lsn.get(lsn), Some(&(tid, seq)), "{when}: LSN {lsn}");
        let want = &mut next_seq[tid as usize];
        assert_eq!(seq, *want, "{when}: thread {tid} out of order at LSN {lsn}");
        *want += 1;
    }
    assert_eq!(wal.appended(), Lsn(first + total as u64 - 1), "{when}");
}

/// Writes with `plans`, then checks live, after close and after a crash.
fn scenario(plans: &[Plan]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    let assigned = run_writers(&wal, plans);
    for (list, plan) in assigned.iter().zip(plans) {
        assert_eq!(list.len() as u64, plan.records());
    }
    assert!(
        segments(dir.path()).len() >= 4,
        "the writers should race through rollovers"
    );
    check(&wal, 1, &assigned, "live");
    wal.close().expect("close");

    let (wal, report) = Wal::open(dir.path(), small()).expect("reopen after close");
    assert!(report.clean_shutdown, "{report}");
    assert!(report.dropped.is_empty(), "{report}");
    check(&wal, 1, &assigned, "after close");
    // A second round on the recovered log continues the sequence.
    let first = wal.appended().0 + 1;
    let more = run_writers(&wal, &[Plan::singles(50); 8]);
    check_tail(&wal, first, &more, "second round");
    drop(wal);

    let (wal, report) = Wal::open(dir.path(), small()).expect("reopen after drop");
    assert!(!report.clean_shutdown, "{report}");
    assert!(report.dropped.is_empty(), "{report}");
    // Thread ids and sequence numbers restart in the second round: check each round on
    // its own range of LSNs.
    check_range(&wal, 1, first - 1, &assigned, "after crash, first round");
    check_range(
        &wal,
        first,
        wal.appended().0,
        &more,
        "after crash, second round",
    );
    wal.close().expect("close");
}

/// [`check`] for the records from `first` on.
fn check_tail(wal: &Wal, first: u64, assigned: &[Vec<(u32, u64)>], when: &str) {
    check_range(wal, first, wal.appended().0, assigned, when);
}

/// [`check`] restricted to LSNs `first..=last`.
fn check_range(wal: &Wal, first: u64, last: u64, assigned: &[Vec<(u32, u64)>], when: &str) {
    let total: u64 = assigned.iter().map(|l| l.len() as u64).sum();
    assert_eq!(
        last + 1 - first,
        total,
        "{when}: LSN range {first}..={last}"
    );
    let mut next_seq = vec![0u32; assigned.len()];
    let mut expect_lsn = first;
    for r in wal
        .iter_from(Lsn(first))
        .expect("iter")
        .take(total as usize)
    {
        let r = r.expect("record");
        assert_eq!(r.lsn(), Lsn(expect_lsn), "{when}: dense LSNs");
        let (tid, seq) = decode(expect_lsn, r.payload());
        let want = &mut next_seq[tid as usize];
        assert_eq!(
            seq, *want,
            "{when}: thread {tid} out of order at {expect_lsn}"
        );
        assert_eq!(
            assigned[tid as usize][seq as usize].1, expect_lsn,
            "{when}: thread {tid} record {seq} was told another LSN"
        );
        *want += 1;
        expect_lsn += 1;
    }
    assert_eq!(expect_lsn, last + 1, "{when}: records missing");
}

#[test]
fn eight_threads_of_single_appends() {
    scenario(&[Plan::singles(300); 8]);
}

#[test]
fn eight_threads_mixing_durable_appends_batches_and_syncs() {
    let durable = Plan {
        sync_every: Some(1),
        ..Plan::singles(40)
    };
    let batches = Plan {
        batch_every: Some(2),
        ..Plan::singles(150)
    };
    let durable_batches = Plan {
        sync_every: Some(4),
        batch_every: Some(3),
        ..Plan::singles(120)
    };
    let explicit = Plan {
        explicit_sync_every: Some(25),
        ..Plan::singles(200)
    };
    scenario(&[
        durable,
        durable,
        batches,
        batches,
        durable_batches,
        durable_batches,
        explicit,
        explicit,
    ]);
}

#[test]
fn readers_beside_writers_see_whole_records_in_lsn_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    let plans = [
        Plan::singles(300),
        Plan {
            batch_every: Some(3),
            ..Plan::singles(200)
        },
        Plan {
            sync_every: Some(10),
            ..Plan::singles(200)
        },
        Plan {
            batch_every: Some(2),
            sync_every: Some(7),
            ..Plan::singles(150)
        },
    ];
    let total: u64 = plans.iter().map(Plan::records).sum();
    let wait = Duration::from_secs(30);

    let assigned = std::thread::scope(|s| {
        // Tailing readers: each blocks for its next record.
        let tail_readers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let mut tail = wal.tail(Lsn(1));
                    let mut next_seq = vec![0u32; plans.len()];
                    for lsn in 1..=total {
                        let r = tail
                            .next_timeout(wait)
                            .unwrap_or_else(|e| panic!("tail, at LSN {lsn}: {e:?}"))
                            .unwrap_or_else(|| panic!("tail: record {lsn} never came"));
                        assert_eq!(r.lsn(), Lsn(lsn), "tail: LSN order");
                        let (tid, seq) = decode(lsn, r.payload());
                        assert_eq!(seq, next_seq[tid as usize], "tail: thread {tid} order");
                        next_seq[tid as usize] += 1;
                    }
                })
            })
            .collect();
        // A snapshot reader: reads everything appended so far with `iter_from` and a few
        // `read`s, then blocks in a tail until the next record exists.
        let snapshot_reader = s.spawn(|| {
            let mut next = 1u64;
            let mut rounds = 0u64;
            while next <= total {
                rounds += 1;
                let seen = wal.appended().0;
                for r in wal.iter_from(Lsn(next)).expect("iter_from") {
                    let r = r.unwrap_or_else(|e| panic!("iter_from, at LSN {next}: {e:?}"));
                    assert_eq!(r.lsn(), Lsn(next), "iter_from: LSN order");
                    decode(next, r.payload());
                    next += 1;
                }
                assert!(
                    next > seen,
                    "iter_from stopped at {next} below appended {seen}"
                );
                if seen > 0 {
                    let lsn = 1 + (rounds * 7919) % seen;
                    let r = wal.read(Lsn(lsn)).expect("read");
                    assert_eq!(r.lsn(), Lsn(lsn));
                    decode(lsn, r.payload());
                }
                if next <= total {
                    let r = wal
                        .tail(Lsn(next))
                        .next_timeout(wait)
                        .unwrap_or_else(|e| panic!("tail, at LSN {next}: {e:?}"))
                        .unwrap_or_else(|| panic!("record {next} never came"));
                    assert_eq!(r.lsn(), Lsn(next));
                }
            }
        });
        let assigned = run_writers(&wal, &plans);
        for r in tail_readers {
            r.join().expect("tail reader");
        }
        snapshot_reader.join().expect("snapshot reader");
        assigned
    });
    check(&wal, 1, &assigned, "after the readers");
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), small()).expect("reopen");
    check(&wal, 1, &assigned, "after reopen");
    wal.close().expect("close");
}

#[test]
fn sync_covers_every_append_that_returned_before_it() {
    // Each thread appends without sync, then calls `sync()`: its own record returned
    // before the sync started, so the sync must make it durable, even while other
    // threads still fill records with lower LSNs.
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    std::thread::scope(|s| {
        for tid in 0..8u32 {
            let wal = &wal;
            s.spawn(move || {
                for seq in 0..60u32 {
                    // Now and then a large record, slow to fill, holds back `appended`.
                    let p = if (seq + tid) % 5 == 0 {
                        let mut p = record_bytes(tid, seq);
                        p.resize(40_000, 0xee);
                        p
                    } else {
                        record_bytes(tid, seq)
                    };
                    let lsn = wal.append_with(&p, Durability::None).expect("append");
                    let durable = wal.sync().expect("sync");
                    assert!(
                        durable >= lsn && wal.durable() >= lsn,
                        "thread {tid}: sync() returned {durable} (durable() = {:?}) after \
                         the append of {lsn} had returned",
                        wal.durable()
                    );
                }
            });
        }
    });
    wal.close().expect("close");
}

#[test]
fn durable_appends_share_flushes_and_never_spin() {
    // Every durable append needs at most one flush of its own (group commit shares
    // them). Four threads append large records without sync, which are slow to fill
    // and so hold back the published watermark; four threads append small durable
    // records, whose LSNs often run ahead of it. A durable append that re-flushes in a
    // loop until the slower records are published issues more flushes than there were
    // durable calls.
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    let durable_calls_per_thread = 60u32;
    std::thread::scope(|s| {
        for tid in 0..8u32 {
            let wal = &wal;
            s.spawn(move || {
                for seq in 0..durable_calls_per_thread {
                    let mut p = record_bytes(tid, seq);
                    let durability = if tid % 2 == 0 {
                        p.resize(30_000, 0xdd);
                        Durability::None
                    } else {
                        Durability::Sync
                    };
                    let lsn = wal.append_with(&p, durability).expect("append");
                    if durability == Durability::Sync {
                        assert!(
                            wal.durable() >= lsn,
                            "thread {tid}: durable append of {lsn}"
                        );
                    }
                }
            });
        }
    });
    let stats = wal.stats();
    let durable_calls = 4 * u64::from(durable_calls_per_thread);
    assert!(
        stats.syncs <= durable_calls,
        "{} flushes for {durable_calls} durable appends: {stats:?}",
        stats.syncs,
    );
    wal.close().expect("close");
}

#[test]
fn tailing_readers_at_the_frontier_never_see_damage() {
    // Readers that have caught up wait at the end of the log and read each record as
    // soon as it is published, while writers keep publishing small records right
    // behind it: the bytes a reader looks at are being published under its eyes.
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(dir.path(), small()).expect("open");
    let plans = [Plan::singles(1500); 4];
    let total: u64 = plans.iter().map(Plan::records).sum();
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let mut tail = wal.tail(Lsn(1));
                    for lsn in 1..=total {
                        let r = tail
                            .next_timeout(Duration::from_secs(30))
                            .unwrap_or_else(|e| panic!("tail, at LSN {lsn}: {e:?}"))
                            .unwrap_or_else(|| panic!("tail: record {lsn} never came"));
                        assert_eq!(r.lsn(), Lsn(lsn), "tail: LSN order");
                        decode(lsn, r.payload());
                    }
                })
            })
            .collect();
        run_writers(&wal, &plans);
        for r in readers {
            r.join().expect("tail reader");
        }
    });
    wal.close().expect("close");
}

/// Writers racing through 6 MiB segments with the background threads on: behind them,
/// published pages are unmapped from the process and handed to write-back (every
/// 4 MiB of the active segment, and the rest of a segment at rollover) while they
/// append and while a reader holds a record of the first round. The held record must
/// read back the same once its page is gone from the process, and every record must
/// read back whole, live, after a close and after a crash.
#[test]
fn write_behind_beside_concurrent_writers_changes_no_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        segment_size_bytes: 6 << 20,
        durability: Durability::None,
        ..Options::default()
    };
    let (wal, _) = Wal::open(dir.path(), opts.clone()).expect("open");
    let first = run_writers(&wal, &[Plan::singles(20); 2]);
    let held = wal.read(Lsn(1)).expect("read LSN 1");
    let held_copy = held.payload().to_vec();
    let page = held.payload().as_ptr() as usize;
    assert!(
        page_resident(page),
        "the held record's page is mapped after its append"
    );
    // About 14 MiB: two rollovers and a write-behind inside each segment.
    let second_first = wal.appended().0 + 1;
    let second = run_writers(&wal, &[Plan::singles(9_000); 4]);
    assert!(
        segments(dir.path()).len() >= 3,
        "the writers should roll over twice"
    );
    wait_until("write-behind unmaps the first segment's pages", || {
        !page_resident(page)
    });
    assert_eq!(
        held.payload(),
        held_copy.as_slice(),
        "the held record after release"
    );
    check_range(&wal, 1, second_first - 1, &first, "live, first round");
    check_tail(&wal, second_first, &second, "live, second round");
    drop(held);
    wal.close().expect("close");
    let (wal, report) = Wal::open(dir.path(), opts.clone()).expect("reopen after close");
    assert!(
        report.clean_shutdown && report.dropped.is_empty(),
        "{report}"
    );
    check_tail(&wal, second_first, &second, "after close");
    let third_first = wal.appended().0 + 1;
    let third = run_writers(&wal, &[Plan::singles(4_000); 4]);
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), opts).expect("reopen after drop");
    assert!(report.dropped.is_empty(), "{report}");
    check_range(&wal, second_first, third_first - 1, &second, "after crash");
    check_tail(&wal, third_first, &third, "after crash, third round");
    wal.close().expect("close");
}
