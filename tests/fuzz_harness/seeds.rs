//! The seed corpora, generated: a few hand-described cases per target (valid logs,
//! each kind of damage the format knows, every recovery mode) and, for `ops_model`,
//! operation sequences drawn from a fixed-seed generator. `fuzz/src/bin/gen_corpus.rs`
//! writes them to `fuzz/corpus/<target>/`; `tests/fuzz_regressions.rs` runs them all,
//! so the corpus a fuzzer starts from is always known to pass.

use super::checkpoint_decode::{CheckpointCase, CkptSpec};
use super::dir_mutate::{DirCase, Mutation};
use super::ops_model::{self, Op};
use super::record_roundtrip::{Item, RoundtripCase};
use super::segment_decode::{FrameSpec, SegSpec, SegmentCase, SlotSpec};

/// The seeds of `target`, as `(name, bytes)`.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "segment_decode" => segment_decode(),
        "checkpoint_decode" => checkpoint_decode(),
        "record_roundtrip" => record_roundtrip(),
        "ops_model" => ops_model(),
        "dir_mutate" => dir_mutate(),
        other => panic!("no fuzz target named {other}"),
    }
}

fn built(slots: [SlotSpec; 2], frames: Vec<FrameSpec>) -> SegSpec {
    SegSpec::Built {
        pages: 0,
        slots,
        raw_slot: Vec::new(),
        frames,
        cut: 0,
        flips: Vec::new(),
    }
}

fn one_valid(epoch: u8, frames: Vec<FrameSpec>) -> SegSpec {
    built([SlotSpec::valid(1, epoch), SlotSpec::default()], frames)
}

fn records(lens: &[u16]) -> Vec<FrameSpec> {
    lens.iter().map(|&l| FrameSpec::record(l)).collect()
}

fn segment_decode() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, SegmentCase)> = Vec::new();
    let case = |mode: u8, segs: Vec<SegSpec>| SegmentCase {
        mode,
        paranoid: false,
        extra: 0,
        segs,
    };
    let mut typical = records(&[0, 5, 100, 1000, 7]);
    typical.push(FrameSpec {
        sel: 4,
        len: 40,
        count: 2,
        hint: 1,
        ..FrameSpec::default()
    });
    typical.push(FrameSpec {
        sel: 5,
        lsn_delta: 0xff,
        hint: 1,
        ..FrameSpec::default()
    });
    for mode in 0..4 {
        out.push((
            format!("valid-mode{mode}"),
            case(mode, vec![one_valid(1, typical.clone())]),
        ));
    }
    // A chain of three segments: the first two full enough to roll over.
    let full = records(&[2000, 2000, 2000, 2000, 2000, 1900]);
    out.push((
        "chain-of-three".into(),
        case(
            0,
            vec![
                one_valid(1, full.clone()),
                one_valid(2, full),
                one_valid(3, records(&[1, 2, 3])),
            ],
        ),
    ));
    // A torn tail: the last frame damaged.
    let mut torn = records(&[10, 20, 30]);
    torn[2].damage = 40;
    for mode in 0..4 {
        out.push((
            format!("torn-tail-mode{mode}"),
            case(mode, vec![one_valid(1, torn.clone())]),
        ));
    }
    // Damage in the middle, proven durable by a later frame's hint.
    let mut proven = records(&[10, 20, 30, 40]);
    proven[1].damage = 3;
    proven[3].hint = 2;
    proven[2].lsn_delta = 1;
    for mode in 0..4 {
        out.push((
            format!("proven-damage-mode{mode}"),
            case(mode, vec![one_valid(1, proven.clone())]),
        ));
    }
    // A stale frame (older epoch) after live ones, in a recycled segment.
    let mut stale = records(&[10, 20]);
    stale.push(FrameSpec {
        epoch_delta: 0xff,
        ..FrameSpec::record(30)
    });
    let mut recycled = SlotSpec::valid(1, 2);
    recycled.flags = 1;
    out.push((
        "stale-in-recycled".into(),
        case(0, vec![built([recycled, SlotSpec::default()], stale)]),
    ));
    // The newer slot wins; a torn newer slot falls back.
    let mut newer = SlotSpec::valid(2, 1);
    newer.base = 1;
    out.push((
        "two-slots".into(),
        case(
            0,
            vec![built([SlotSpec::valid(1, 1), newer], records(&[1, 2, 3]))],
        ),
    ));
    let mut torn_slot = newer;
    torn_slot.form = 2;
    out.push((
        "torn-newer-slot".into(),
        case(
            0,
            vec![built([SlotSpec::valid(1, 1), torn_slot], records(&[1, 2]))],
        ),
    ));
    // Sealed in the middle.
    let mut sealed = SlotSpec::valid(1, 1);
    sealed.seal = 1;
    sealed.sealed_end = 10;
    out.push((
        "sealed".into(),
        case(
            0,
            vec![built([sealed, SlotSpec::default()], records(&[8, 8, 8, 8]))],
        ),
    ));
    // A cut file, unknown kinds, a zero gap before more frames, a reset segment.
    let mut cut_case = out[0].1.clone();
    if let SegSpec::Built { cut, .. } = &mut cut_case.segs[0] {
        *cut = 4096 + 100;
    }
    out.push(("cut-file".into(), cut_case));
    let mut odd = records(&[1, 2]);
    odd.push(FrameSpec {
        kind: 9,
        ..FrameSpec::record(3)
    });
    odd.push(FrameSpec {
        sel: 7,
        len: 3,
        ..FrameSpec::default()
    });
    odd.extend(records(&[4, 5]));
    out.push((
        "unknown-kind-and-gap".into(),
        case(3, vec![one_valid(1, odd)]),
    ));
    let mut reset = SlotSpec::valid(1, 2);
    reset.flags = 2;
    reset.base = 0x10;
    out.push((
        "reset-segment".into(),
        case(
            0,
            vec![
                one_valid(1, records(&[5, 5])),
                built([reset, SlotSpec::default()], records(&[6, 6])),
            ],
        ),
    ));
    out.push((
        "extra-files".into(),
        SegmentCase {
            extra: 3,
            ..case(0, vec![one_valid(1, records(&[1, 2, 3]))])
        },
    ));
    out.push((
        "paranoid".into(),
        SegmentCase {
            paranoid: true,
            ..case(0, vec![one_valid(1, typical)])
        },
    ));
    // Raw bytes: empty, short, a page and a half of a pattern.
    for (name, len) in [
        ("raw-empty", 0usize),
        ("raw-short", 100),
        ("raw-6000", 6000),
    ] {
        let bytes = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        out.push((name.into(), case(0, vec![SegSpec::Raw(bytes)])));
    }
    out.into_iter().map(|(n, c)| (n, c.encode())).collect()
}

fn checkpoint_decode() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for base in 0..4u8 {
        let case = |ckpts: Vec<CkptSpec>, writable: bool| CheckpointCase {
            mode: base,
            base,
            writable,
            ckpts,
        };
        out.push((format!("base{base}-as-is"), case(Vec::new(), true)));
        let forged = CkptSpec {
            form: 1,
            len: 300,
            ..CkptSpec::default()
        };
        out.push((
            format!("base{base}-forged-valid"),
            case(vec![forged.clone()], true),
        ));
        out.push((
            format!("base{base}-forged-bad"),
            case(
                vec![
                    CkptSpec {
                        bad: 1,
                        ..forged.clone()
                    },
                    CkptSpec {
                        lsn: 2,
                        bad: 2,
                        ..forged.clone()
                    },
                    CkptSpec {
                        lsn: 1,
                        len_delta: 1,
                        ..forged.clone()
                    },
                ],
                false,
            ),
        ));
        out.push((
            format!("base{base}-flipped"),
            case(
                vec![CkptSpec {
                    form: 2,
                    flips: vec![(4200, 1)],
                    ..CkptSpec::default()
                }],
                true,
            ),
        ));
        out.push((
            format!("base{base}-odd-names-and-bytes"),
            case(
                vec![
                    CkptSpec {
                        name: 2,
                        ..forged.clone()
                    },
                    CkptSpec {
                        name: 3,
                        ..forged.clone()
                    },
                    CkptSpec {
                        lsn: 0xff,
                        raw_lsn: u64::MAX,
                        ..forged.clone()
                    },
                    CkptSpec {
                        lsn: 0x80,
                        form: 0,
                        bytes: vec![0x4d; 200],
                        ..CkptSpec::default()
                    },
                ],
                true,
            ),
        ));
    }
    out.into_iter().map(|(n, c)| (n, c.encode())).collect()
}

fn record_roundtrip() -> Vec<(String, Vec<u8>)> {
    let item = |sel: u8, len: u16, count: u8, durable: bool| Item {
        sel,
        len,
        count,
        durable,
    };
    let cases = [
        (
            "small",
            RoundtripCase {
                pages: 0,
                items: vec![
                    item(0, 0, 0, false),
                    item(0, 1, 0, true),
                    item(0, 500, 0, false),
                ],
            },
        ),
        (
            "largest-and-too-large",
            RoundtripCase {
                pages: 0,
                items: vec![
                    item(0, 0xe000 + 64, 0, false),
                    item(0, 0xe000, 0, false),
                    item(0, 0xe07f, 0, true),
                ],
            },
        ),
        (
            "batches",
            RoundtripCase {
                pages: 3,
                items: vec![
                    item(5, 1000, 3, false),
                    item(5, 0, 15, true),
                    item(6, 0xe000, 1, false),
                ],
            },
        ),
        (
            "reopens",
            RoundtripCase {
                pages: 12,
                items: vec![
                    item(0, 3000, 0, false),
                    item(7, 0, 0, true),
                    item(0, 4000, 0, false),
                    item(7, 0, 0, false),
                    item(5, 9000, 2, false),
                    item(7, 0, 0, true),
                ],
            },
        ),
        (
            "many-rollovers",
            RoundtripCase {
                pages: 0,
                items: (0..40u16)
                    .map(|i| item((i % 7) as u8, i * 331, i as u8, i % 5 == 0))
                    .collect(),
            },
        ),
    ];
    cases
        .into_iter()
        .map(|(n, c)| (n.to_string(), c.encode()))
        .collect()
}

/// splitmix64, for the generated operation sequences.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An operation drawn with the weights of `tests/sim_power_cut.rs`.
fn random_op(rng: &mut Rng) -> Op {
    let durable = rng.below(4) == 0;
    match rng.below(100) {
        0..=44 => Op::Append {
            len: match rng.below(10) {
                0 => 0,
                1..=6 => rng.below(200) as u16,
                7 | 8 => rng.below(2000) as u16,
                _ => rng.below(6000) as u16,
            },
            durable,
        },
        45..=59 => Op::Batch {
            lens: [0; 4].map(|_| rng.below(700) as u16),
            count: rng.below(4) as u8,
            durable,
        },
        60..=67 => Op::Sync,
        68..=72 => Op::Checkpoint,
        73..=77 => Op::Truncate {
            back: rng.below(50) as u16,
        },
        78..=80 => Op::Purge {
            fwd: rng.below(100) as u16,
        },
        81 => Op::Reset {
            delta: rng.below(256) as u8,
        },
        82..=83 => Op::SetMeta {
            key: rng.below(4) as u8,
            len: rng.below(256) as u8,
        },
        84..=89 => Op::Reopen {
            clean: rng.below(2) == 0,
        },
        _ => Op::Crash { seed: rng.next() },
    }
}

fn ops_model() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        (
            "append-crash".to_string(),
            vec![
                Op::Append {
                    len: 10,
                    durable: true,
                },
                Op::Append {
                    len: 20,
                    durable: false,
                },
                Op::Crash { seed: 1 },
                Op::Append {
                    len: 30,
                    durable: false,
                },
            ],
        ),
        (
            "checkpoint-truncate-purge".to_string(),
            vec![
                Op::Append {
                    len: 3000,
                    durable: false,
                },
                Op::Append {
                    len: 3000,
                    durable: false,
                },
                Op::Batch {
                    lens: [100, 200, 300, 400],
                    count: 3,
                    durable: false,
                },
                Op::Checkpoint,
                Op::Append {
                    len: 5000,
                    durable: false,
                },
                Op::Append {
                    len: 5000,
                    durable: false,
                },
                Op::Truncate { back: 0 },
                Op::Purge { fwd: 100 },
                Op::Crash { seed: 2 },
                Op::Reopen { clean: true },
            ],
        ),
        (
            "reset-and-meta".to_string(),
            vec![
                Op::Append {
                    len: 10,
                    durable: false,
                },
                Op::SetMeta { key: 1, len: 20 },
                Op::Reset { delta: 10 },
                Op::Append {
                    len: 10,
                    durable: true,
                },
                Op::Crash { seed: 3 },
                Op::SetMeta { key: 1, len: 255 },
                Op::Reopen { clean: false },
            ],
        ),
        (
            "largest-records".to_string(),
            vec![
                Op::Append {
                    len: 0xf000,
                    durable: false,
                },
                Op::Append {
                    len: 0xf010,
                    durable: true,
                },
                Op::Append {
                    len: 0xf03f,
                    durable: false,
                },
                Op::Crash { seed: 4 },
            ],
        ),
    ];
    for seed in 0..12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let n = 20 + rng.below(50) as usize;
        out.push((
            format!("random-{seed}"),
            (0..n).map(|_| random_op(&mut rng)).collect(),
        ));
    }
    out.into_iter()
        .map(|(n, ops)| (n, ops_model::encode(&ops)))
        .collect()
}

fn dir_mutate() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for base in 0..4u8 {
        out.push((
            format!("base{base}-intact"),
            DirCase {
                base,
                muts: Vec::new(),
            },
        ));
        for op in 0..7u8 {
            for file in [0u8, 1, 3] {
                let m = Mutation {
                    file,
                    op,
                    offset: 512 + 37 * u16::from(op) + u16::from(file),
                    val: 0x41,
                    len: 16,
                    other: file + 1,
                    from: 513,
                };
                out.push((
                    format!("base{base}-op{op}-file{file}"),
                    DirCase {
                        base,
                        muts: vec![m],
                    },
                ));
            }
        }
    }
    out.into_iter().map(|(n, c)| (n, c.encode())).collect()
}
