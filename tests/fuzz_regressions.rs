//! SPEC §5 and FAULTS G: the fuzz targets' checks, run by `cargo test`.
//!
//! The harness in `tests/fuzz_harness/` is the code the cargo-fuzz targets in `fuzz/`
//! run on every input. Here it replays the generated seed corpus of each target (the
//! inputs `fuzz/src/bin/gen_corpus.rs` writes, byte for byte), checks that every seed
//! decodes back to the bytes it was written from, and keeps each input that ever made
//! a target fail as a named test with its input embedded, asserting the correct
//! behaviour.
//!
//! Findings:
//! - `dir_mutate`, input `[3, 128, 138, 0, 65, 16, 1, 37, 2]` (base 3 with its last
//!   segment file removed): when the newest segment of a log is sealed (a truncation
//!   sealed it and did not get as far as preparing the next segment, or the last file
//!   was lost), a writer open continues appending *in place*, past `sealed_end`, where
//!   every frame is dead by definition (I-seal). Appends are acknowledged, even as
//!   durable, and a clean close seals nothing visible: the next open has lost them all
//!   (I1). The failpoint test below provokes the same state through the API.
//! - `segment_decode`, a 127-byte input (below, as found): in `SkipCorrupted`, when
//!   the damaged range recovery drops runs from the end of one segment into the start
//!   of the next, the report is right (the LSNs are dropped) but readers do not know
//!   about the part of the hole in the next segment: they walk it from its first
//!   frame, and either fail the iteration with `Corrupt` (the fuzzer's input) or —
//!   worse — hand out the damaged frame's bytes, unverified, as the record under a
//!   dropped LSN (the hand-written case).
//! - `ops_model`, found by CI's 60 s run (the ten operations below, decoded): a batch of
//!   three empty records ended 8 bytes into a page that held only zeroes. Recovery cut
//!   every frame at the end of the file's last data extent, and the simulated disk,
//!   as the file-system contract allows, puts that end after the last page with a
//!   non-zero byte: a reopen without any power cut dropped the batch as a torn tail.
//!   The same bound dropped a *durable* record whose payload ended in zero pages
//!   after a power cut (the hand-written case). That end only bounds the scans for
//!   zeroes and stray headers now, never a frame.
//! - `ops_model`, found by a 15-minute local run (48 bytes after `cargo fuzz tmin`):
//!   records rolled over into segment 2, and a power cut took the header update that
//!   gives segment 2 its base LSN. Recovery found the base from the first frame, but
//!   sealed the segment (bytes of its epoch lay past the end) with a header that still
//!   had no base. A purge then made segment 2 the first, and a truncation to the
//!   LSN before its first record emptied it: after the next power cut the first
//!   segment had neither a base nor a record, and every open failed with `Corrupt`.
//!   Recovery now writes the base it found into every segment header that lacks one.

mod fuzz_harness;

use std::path::Path;
use std::sync::Arc;

use fuzz_harness::dir_mutate::{self, DirCase, Mutation};
use fuzz_harness::segment_decode::{self, FrameSpec, SegSpec, SegmentCase, SlotSpec};
use fuzz_harness::{TARGETS, ops_model, seeds};
use mmlog::testing::{FailAction, Failpoints, SimDisk, Step};
use mmlog::{Durability, Lsn, Options, Wal};

fn replay(target: &str) {
    let run = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, run)| *run)
        .expect("a known target");
    let seeds = seeds::seeds(target);
    assert!(!seeds.is_empty(), "{target} has no seeds");
    for (name, bytes) in seeds {
        if let Err(e) = run(&bytes) {
            panic!("{target} seed {name}: {e}");
        }
    }
}

#[test]
fn segment_decode_seeds_pass() {
    replay("segment_decode");
}

#[test]
fn checkpoint_decode_seeds_pass() {
    replay("checkpoint_decode");
}

#[test]
fn record_roundtrip_seeds_pass() {
    replay("record_roundtrip");
}

#[test]
fn ops_model_seeds_pass() {
    replay("ops_model");
}

#[test]
fn dir_mutate_seeds_pass() {
    replay("dir_mutate");
}

#[test]
fn seeds_decode_to_the_cases_they_were_written_from() {
    use fuzz_harness::{
        checkpoint_decode::CheckpointCase, dir_mutate::DirCase, record_roundtrip::RoundtripCase,
        segment_decode::SegmentCase,
    };
    for (name, b) in seeds::seeds("segment_decode") {
        assert_eq!(
            SegmentCase::decode(&b).encode(),
            b,
            "segment_decode seed {name}"
        );
    }
    for (name, b) in seeds::seeds("checkpoint_decode") {
        assert_eq!(
            CheckpointCase::decode(&b).encode(),
            b,
            "checkpoint_decode seed {name}"
        );
    }
    for (name, b) in seeds::seeds("record_roundtrip") {
        assert_eq!(
            RoundtripCase::decode(&b).encode(),
            b,
            "record_roundtrip seed {name}"
        );
    }
    for (name, b) in seeds::seeds("ops_model") {
        assert_eq!(
            ops_model::encode(&ops_model::decode(&b)),
            b,
            "ops_model seed {name}"
        );
    }
    for (name, b) in seeds::seeds("dir_mutate") {
        assert_eq!(DirCase::decode(&b).encode(), b, "dir_mutate seed {name}");
    }
}

#[test]
fn any_bytes_are_an_input() {
    // Truncated and garbage inputs decode to some case and run to a verdict.
    for (target, run) in TARGETS {
        for len in [0usize, 1, 2, 7, 33, 300] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 97 + 13) as u8).collect();
            if let Err(e) = run(&bytes) {
                panic!("{target} on {len} pattern bytes: {e}");
            }
        }
    }
}

#[test]
fn dir_mutate_appends_after_a_sealed_last_segment_survive_a_clean_close() {
    // Base 3 (truncations, recycled segments) without its newest segment file: the
    // segment before it, sealed by the second truncation, is now the last one.
    let case = DirCase {
        base: 3,
        muts: vec![Mutation {
            file: 2,
            op: 5,
            ..Mutation::default()
        }],
    };
    assert_eq!(
        DirCase::decode(&[3, 128, 138, 0, 65, 16, 1, 37, 2]).files(),
        case.files(),
        "the fuzzer's input and this case build the same directory"
    );
    if let Err(e) = dir_mutate::run_case(&case) {
        panic!("{e}");
    }
}

#[test]
fn a_truncation_cut_short_before_the_next_segment_loses_no_later_append() {
    let sim = SimDisk::new();
    let dir = Path::new("log");
    let opts = |fp: Option<Arc<Failpoints>>| {
        let mut env = sim.env().without_background();
        if let Some(fp) = fp {
            env = env.failpoints(fp);
        }
        Options {
            segment_size_bytes: 16 * 1024,
            durability: Durability::None,
            prefault: false,
            env,
            ..Options::default()
        }
    };
    let fp = Arc::new(Failpoints::new());
    let (wal, _) = Wal::open(dir, opts(Some(Arc::clone(&fp)))).expect("create");
    for i in 0..5u8 {
        wal.append(&[i; 10]).expect("append");
    }
    wal.sync().expect("sync");
    // The seal of segment 1 is durable; creating segment 2 fails (as a crash there
    // would leave it).
    fp.arm_once(Step::SegmentCreate, 0, FailAction::Errno(5));
    assert!(wal.truncate_after(Lsn(3)).is_err());
    drop(wal);

    let (wal, report) = Wal::open(dir, opts(None)).expect("reopen");
    assert_eq!(report.next_lsn, Lsn(4), "{report}");
    let lsn = wal
        .append_with(b"acknowledged", Durability::Sync)
        .expect("durable append");
    assert_eq!(lsn, Lsn(4));
    wal.close().expect("clean close");
    drop(wal);

    let (wal, report) = Wal::open(dir, opts(None)).expect("open after the clean close");
    assert!(report.clean_shutdown, "{report}");
    assert_eq!(report.last_lsn, Lsn(4), "{report}");
    assert_eq!(
        wal.read(lsn).expect("the acknowledged record").payload(),
        b"acknowledged"
    );
}

/// A segment of `epoch` with records of 10 bytes; `damaged` ones have a payload byte
/// flipped (their checksum fails).
fn segment_with(epoch: u8, damaged: &[bool]) -> SegSpec {
    SegSpec::Built {
        pages: 0,
        slots: [SlotSpec::valid(1, epoch), SlotSpec::default()],
        raw_slot: Vec::new(),
        frames: damaged
            .iter()
            .map(|&d| FrameSpec {
                damage: if d { 40 } else { 0 },
                ..FrameSpec::record(10)
            })
            .collect(),
        cut: 0,
        flips: Vec::new(),
    }
}

#[test]
fn skip_corrupted_never_serves_a_damaged_frame_at_the_start_of_the_next_segment() {
    // LSNs 1 and 2 intact, 3 (last of segment 1) and 4 (first of segment 2) damaged,
    // 5 and 6 intact: the log is 1, 2, 5, 6.
    let case = SegmentCase {
        mode: 3,
        paranoid: false,
        extra: 0,
        segs: vec![
            segment_with(1, &[false, false, true]),
            segment_with(2, &[true, false, false]),
        ],
    };
    if let Err(e) = segment_decode::run_case(&case) {
        panic!("{e}");
    }
}

#[test]
fn segment_decode_skip_corrupted_reads_past_a_hole_that_spans_two_segments() {
    // As the fuzzer found it: segment 1 holds LSNs 1 and 2, then a frame of a foreign
    // epoch; segment 2 (base 3) starts with a damaged frame, then LSNs 4 to 13.
    let input: [u8; 127] = [
        0xff, 0x00, 0x00, 0x02, 0x01, 0x00, 0x01, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00,
        0xd0, 0x07, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd0, 0x07, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0xd0, 0x07, 0xf5, 0xff, 0x54, 0xfb, 0xef, 0x00, 0x00, 0x01,
        0xab, 0x00, 0xff, 0xfc, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x26, 0x01, 0x01,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x06, 0x00, 0x01, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0xd0, 0x07, 0x00, 0xcb, 0xcb, 0xcb, 0xcb,
        0x00, 0x00, 0xfd, 0xfe, 0xff, 0xfe, 0xcb,
    ];
    if let Err(e) = segment_decode::run(&input) {
        panic!("{e}");
    }
}

#[test]
fn segment_decode_skip_corrupted_reads_a_record_after_a_hole_in_a_later_segment() {
    // As the fuzzer found it (237 bytes): three segments with several damaged ranges;
    // LSN 53 survives between two holes of segment 1 and must be readable by LSN.
    let input: [u8; 237] = [
        0x47, 0xdc, 0x6f, 0x83, 0x01, 0x00, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00,
        0xd0, 0x07, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0xd0, 0x07, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0xd0, 0x07, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0xd0, 0x07, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x80, 0x00, 0x6c, 0x07, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0xff, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0xd0, 0x07,
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd0, 0x07, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0xd0, 0x07, 0x00, 0x00, 0x01, 0x00, 0x7a, 0x00, 0x00, 0x00, 0xd0, 0x07,
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x00, 0x01, 0x00, 0x00, 0x07,
        0x00, 0x00, 0x00, 0x6c, 0x07, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x01, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    if let Err(e) = segment_decode::run(&input) {
        panic!("{e}");
    }
}

#[test]
fn segment_decode_skip_corrupted_finds_records_before_a_segment_the_hole_took_whole() {
    // As the fuzzer found it (237 bytes): segment 1 holds LSNs 30 and 31, then
    // damage; the chain resumes at 33 in segment 3. Segment 2 (header base 25) holds
    // nothing of the log, so lookups of 30 and 31 must not be routed to it.
    let input: [u8; 237] = [
        0x47, 0xdc, 0x6f, 0x83, 0x01, 0x00, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00,
        0xd0, 0x07, 0x00, 0xeb, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd0, 0x07, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x3b, 0x00, 0x00, 0xd0, 0x07, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0xd0, 0x07, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd0, 0x07, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x6c, 0x06, 0xff, 0xf8, 0x01, 0xe5, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0xd0, 0x07,
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd0, 0x07, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0xd0, 0x07, 0x00, 0x00, 0x01, 0x00, 0x7a, 0x00, 0x00, 0x00, 0xd0, 0x07,
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd0, 0x07, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x6c, 0x07, 0x00, 0x00, 0x01, 0xfb, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x01, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    if let Err(e) = segment_decode::run(&input) {
        panic!("{e}");
    }
}

/// The `ops_model` input the fuzzer found (decoded): the batch of three empty records
/// at step 6 ends 8 bytes into a page it fills with zeroes only.
fn batch_ending_in_a_zero_page() -> Vec<ops_model::Op> {
    use ops_model::Op;
    let append = |len: u16, durable: bool| Op::Append { len, durable };
    vec![
        append(5120, true),
        append(264, false),
        append(0, false),
        append(2, false),
        append(2560, false),
        append(1, false),
        Op::Batch {
            lens: [0, 0, 0, 2],
            count: 30,
            durable: false,
        },
        Op::Reopen { clean: false },
        Op::Checkpoint,
        append(0, false),
    ]
}

#[test]
fn ops_model_a_frame_ending_in_a_page_of_zeroes_survives_a_reopen() {
    let ops = batch_ending_in_a_zero_page();
    assert_eq!(
        ops_model::decode(&ops_model::encode(&ops)),
        ops,
        "the case survives its own encoding (it can be written out as a seed)"
    );
    if let Err(e) = ops_model::run_ops(&ops) {
        panic!("{e}");
    }
}

#[test]
fn a_durable_record_whose_last_page_holds_only_zeroes_survives_a_power_cut() {
    // The simulated disk reports data up to the last page holding a non-zero byte, as
    // the file system contract allows (past it, every byte reads as zero). The record's
    // payload ends with two pages of zeroes: its frame runs past that point.
    let sim = SimDisk::new();
    let dir = Path::new("log");
    let opts = || Options {
        segment_size_bytes: 64 * 1024,
        durability: Durability::None,
        prefault: false,
        create_if_missing: true,
        env: sim.env().without_background(),
        ..Options::default()
    };
    let mut payload = vec![0xa5u8; 100];
    payload.resize(100 + 8192, 0);
    let (wal, _) = Wal::open(dir, opts()).expect("create");
    let lsn = wal
        .append_with(&payload, Durability::Sync)
        .expect("durable append");
    drop(wal);
    for seed in 0..8 {
        sim.power_cut(seed);
        let (wal, report) = Wal::open(dir, opts()).expect("recover");
        assert!(report.dropped.is_empty(), "seed {seed}: {report}");
        assert_eq!(report.last_lsn, lsn, "seed {seed}: {report}");
        assert_eq!(
            wal.read(lsn).expect("the acknowledged record").payload(),
            payload.as_slice(),
            "seed {seed}"
        );
        drop(wal);
    }
}

/// The `ops_model` input of the second finding, as `cargo fuzz tmin` left it.
const BASE_LOST_IN_A_SEAL: [u8; 48] = [
    0, 0, 198, 0, 1, 4, 43, 0, 8, 191, 66, 188, 17, 99, 213, 231, 8, 194, 82, 96, 92, 1, 146, 223,
    34, 0, 0, 223, 5, 0, 8, 31, 91, 195, 139, 150, 44, 158, 0, 130, 4, 0, 0, 65, 124, 37, 164, 223,
];

#[test]
fn ops_model_a_segment_whose_base_was_lost_keeps_the_log_start_through_seal_purge_and_truncation() {
    let ops = ops_model::decode(&BASE_LOST_IN_A_SEAL);
    assert_eq!(ops.len(), 8, "{ops:?}");
    assert!(
        matches!(ops.get(4), Some(ops_model::Op::Crash { .. }))
            && matches!(ops.get(6), Some(ops_model::Op::Purge { .. }))
            && matches!(ops.get(7), Some(ops_model::Op::Truncate { .. })),
        "the input still decodes to the case described: {ops:?}"
    );
    if let Err(e) = ops_model::run_ops(&ops) {
        panic!("{e}");
    }
}
