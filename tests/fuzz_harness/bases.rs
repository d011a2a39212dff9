//! Valid directories built by the engine itself on the simulated disk, for the targets
//! that damage a good log (`checkpoint_decode`, `dir_mutate`): each is built once per
//! process and kept as bytes, together with every payload ever appended under each
//! LSN (a record read back from a damaged directory must be one of them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

use mmlog::testing::SimDisk;
use mmlog::{Durability, Lsn, Wal};

use super::oracle::{self, Files, MODES};
use super::wire;

/// A valid directory and what was written into it.
#[derive(Debug, Clone)]
pub struct Base {
    pub files: Files,
    /// Every payload ever appended under each LSN (truncations reuse LSNs).
    pub history: BTreeMap<u64, BTreeSet<Vec<u8>>>,
    /// The records the log holds.
    pub records: oracle::Records,
}

/// How many bases there are.
pub const BASES: usize = 4;

/// Base `i % BASES`.
pub fn base(i: u8) -> &'static Base {
    static CELLS: [OnceLock<Base>; BASES] = [const { OnceLock::new() }; BASES];
    let i = usize::from(i) % BASES;
    CELLS[i].get_or_init(|| build(i))
}

struct Builder {
    wal: Option<Wal>,
    history: BTreeMap<u64, BTreeSet<Vec<u8>>>,
    tag: u64,
}

impl Builder {
    fn append(&mut self, len: usize) -> u64 {
        let wal = self.wal.as_ref().expect("open");
        let lsn = wal.appended().0 + 1;
        self.tag += 1;
        let p = wire::payload(self.tag, lsn, len);
        let got = wal
            .append_with(&p, Durability::None)
            .expect("append to a base log");
        assert_eq!(got.0, lsn, "base log LSNs");
        self.history.entry(lsn).or_default().insert(p);
        lsn
    }

    fn batch(&mut self, lens: &[usize]) {
        let wal = self.wal.as_ref().expect("open");
        let first = wal.appended().0 + 1;
        self.tag += 1;
        let ps: Vec<Vec<u8>> = (0u64..)
            .zip(lens)
            .map(|(i, &len)| wire::payload(self.tag, first + i, len))
            .collect();
        let refs: Vec<&[u8]> = ps.iter().map(Vec::as_slice).collect();
        wal.append_batch_with(&refs, Durability::None)
            .expect("batch in a base log");
        for (i, p) in (0u64..).zip(ps) {
            self.history.entry(first + i).or_default().insert(p);
        }
    }

    fn wal(&self) -> &Wal {
        self.wal.as_ref().expect("open")
    }
}

fn build(i: usize) -> Base {
    let sim = SimDisk::new();
    let dir = Path::new("d");
    let opts = || {
        let mut o = oracle::sim_options(&sim, MODES[0], false);
        o.create_if_missing = true;
        o
    };
    let (wal, _) = Wal::open(dir, opts()).expect("create a base log");
    let mut b = Builder {
        wal: Some(wal),
        history: BTreeMap::new(),
        tag: i as u64 * 1000,
    };
    match i {
        // Empty, closed cleanly.
        0 => {}
        // A few small records and a checkpoint, closed cleanly.
        1 => {
            for len in [0, 5, 17, 100, 3, 64] {
                b.append(len);
            }
            b.wal()
                .write_checkpoint(Lsn(3), b"state at three")
                .expect("checkpoint");
            b.wal().set_meta("vote", b"term 7").expect("meta");
        }
        // Many records over several segments, batches, two checkpoints (retention
        // purges), metadata; left without a clean close after a sync.
        2 => {
            for k in 0..60usize {
                if k % 9 == 4 {
                    b.batch(&[k * 7 % 300, 0, k * 13 % 500]);
                } else {
                    b.append(k * 97 % 1500);
                }
                if k == 20 {
                    let l = b.wal().appended();
                    b.wal().write_checkpoint(l, b"ckpt twenty").expect("ckpt");
                }
                if k == 45 {
                    let l = b.wal().appended();
                    b.wal()
                        .write_checkpoint(l, &vec![0xab; 5000])
                        .expect("ckpt");
                }
            }
            b.wal().set_meta("commit", &[1, 2, 3, 4]).expect("meta");
            b.wal().sync().expect("sync");
            drop(b.wal.take());
        }
        // Truncations that reuse LSNs (stale frames stay on disk), purges that retire
        // segments into `.free` files and reuse them (recycled segments), closed.
        _ => {
            for k in 0..30usize {
                b.append(k * 131 % 2000);
            }
            b.wal().truncate_after(Lsn(22)).expect("truncate");
            for k in 0..25usize {
                b.append(k * 71 % 2500);
            }
            let l = b.wal().appended().0;
            b.wal().purge_before(Lsn(l - 5)).expect("purge");
            for k in 0..25usize {
                b.append(k * 211 % 1800);
            }
            b.wal().truncate_after(Lsn(l + 10)).expect("truncate");
            b.append(40);
            b.batch(&[1, 2, 3]);
        }
    }
    if let Some(w) = b.wal.take() {
        w.close().expect("close a base log");
    }
    let files = oracle::snapshot(&sim, dir);
    let (wal, _) = Wal::open(dir, oracle::sim_options(&sim, MODES[1], true))
        .expect("a base log opens in AbsoluteConsistency");
    let records = oracle::read_all(&wal, 0, 100_000).expect("read a base log");
    drop(wal);
    Base {
        files,
        history: b.history,
        records,
    }
}
