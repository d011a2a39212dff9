//! `segment_decode`: one to three segment files, each either the fuzz input's bytes
//! verbatim or built from a compact description (two header slots with any field
//! values, frames of every kind with chosen LSNs, epochs, durable hints and damage,
//! raw byte runs, zero gaps, byte flips, a cut), are written into an empty directory
//! of the simulated disk and opened read-only in a chosen recovery mode. The result
//! must be a typed error or a log that passes `oracle::check_log`.

use std::path::Path;

use super::oracle::{self, Files, MODES};
use super::wire::{self, FrameFields, Reader, SlotFields, Writer};

/// One header slot, described.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotSpec {
    /// 0: all zero; 1: valid checksum; 2: wrong checksum; 3: the next bytes verbatim.
    pub form: u8,
    pub generation: u8,
    /// 0: the expected base LSN; 1: 0 (unassigned); else expected + (b as i8).
    pub base: u8,
    pub epoch: u8,
    /// 0: not sealed; else seal epoch = epoch + seal % 4, sealed at `sealed_end`.
    pub seal: u8,
    /// Sealed end = 4096 + 8 * this.
    pub sealed_end: u16,
    pub flags: u8,
    /// Sequence number = the name's + (b as i8).
    pub seq_delta: u8,
    /// Declared size = the file's + 4096 * (b as i8).
    pub size_delta: u8,
    /// 0: version 1; else this.
    pub version: u8,
}

/// One frame (or run of bytes) of the data area, described.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrameSpec {
    /// % 8: 0–3 record, 4 batch, 5 seal, 6 `raw` bytes verbatim, 7 a zero gap of
    /// 8 * (len % 64) bytes.
    pub sel: u8,
    /// Payload length (batch: of each payload); values from 0xF000 up mean
    /// `len & 0x3fff` (large records).
    pub len: u16,
    /// Batch count - 1 (% 4).
    pub count: u8,
    /// LSN = the expected one + (b as i8).
    pub lsn_delta: u8,
    /// 0: 0; 1: LSN - 1; 2: LSN + 5 (claims more is durable); else b.
    pub hint: u8,
    /// Epoch = the segment's + (b as i8).
    pub epoch_delta: u8,
    /// 0: the kind `sel` says; else this kind byte (unknown kinds, flags).
    pub kind: u8,
    /// 0: intact; else one byte at `damage % frame length` is flipped.
    pub damage: u16,
    pub raw: Vec<u8>,
}

/// One segment file, described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegSpec {
    Raw(Vec<u8>),
    Built {
        /// 4 + pages % 5 pages (16 to 32 KiB).
        pages: u8,
        slots: [SlotSpec; 2],
        /// Verbatim slot bytes when a slot's form is 3.
        raw_slot: Vec<u8>,
        frames: Vec<FrameSpec>,
        /// 0: whole; else the file is cut to this many bytes.
        cut: u16,
        /// (offset, xor) byte flips after building.
        flips: Vec<(u16, u8)>,
    },
}

/// A whole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentCase {
    /// Recovery mode: `MODES[mode % 4]`.
    pub mode: u8,
    pub paranoid: bool,
    /// Bit 0: also a `.seg.tmp` copy of the last segment; bit 1: a `.free` copy of the
    /// first.
    pub extra: u8,
    pub segs: Vec<SegSpec>,
}

impl SlotSpec {
    fn decode(r: &mut Reader) -> SlotSpec {
        SlotSpec {
            form: r.u8(),
            generation: r.u8(),
            base: r.u8(),
            epoch: r.u8(),
            seal: r.u8(),
            sealed_end: r.u16(),
            flags: r.u8(),
            seq_delta: r.u8(),
            size_delta: r.u8(),
            version: r.u8(),
        }
    }

    fn encode(&self, w: &mut Writer) {
        w.u8(self.form)
            .u8(self.generation)
            .u8(self.base)
            .u8(self.epoch)
            .u8(self.seal)
            .u16(self.sealed_end)
            .u8(self.flags)
            .u8(self.seq_delta)
            .u8(self.size_delta)
            .u8(self.version);
    }

    /// A valid slot of `epoch`.
    pub fn valid(generation: u8, epoch: u8) -> SlotSpec {
        SlotSpec {
            form: 1,
            generation,
            epoch,
            ..SlotSpec::default()
        }
    }
}

impl FrameSpec {
    fn decode(r: &mut Reader) -> FrameSpec {
        let mut f = FrameSpec {
            sel: r.u8(),
            len: r.u16(),
            count: r.u8(),
            lsn_delta: r.u8(),
            hint: r.u8(),
            epoch_delta: r.u8(),
            kind: r.u8(),
            damage: r.u16(),
            raw: Vec::new(),
        };
        if f.sel % 8 == 6 {
            f.raw = r.bytes().to_vec();
        }
        f
    }

    fn encode(&self, w: &mut Writer) {
        w.u8(self.sel)
            .u16(self.len)
            .u8(self.count)
            .u8(self.lsn_delta)
            .u8(self.hint)
            .u8(self.epoch_delta)
            .u8(self.kind)
            .u16(self.damage);
        if self.sel % 8 == 6 {
            w.bytes(&self.raw);
        }
    }

    /// An intact record of `len` bytes with the expected LSN.
    pub fn record(len: u16) -> FrameSpec {
        FrameSpec {
            sel: 0,
            len,
            hint: 1,
            ..FrameSpec::default()
        }
    }
}

impl SegSpec {
    fn decode(r: &mut Reader) -> SegSpec {
        if r.u8().is_multiple_of(4) {
            return SegSpec::Raw(r.bytes().to_vec());
        }
        let pages = r.u8();
        let slots = [SlotSpec::decode(r), SlotSpec::decode(r)];
        let raw_slot = if slots.iter().any(|s| s.form % 4 == 3) {
            r.bytes().to_vec()
        } else {
            Vec::new()
        };
        let n = r.u8() % 32;
        let frames = (0..n).map(|_| FrameSpec::decode(r)).collect();
        let cut = r.u16();
        let n = r.u8() % 8;
        let flips = (0..n).map(|_| (r.u16(), r.u8())).collect();
        SegSpec::Built {
            pages,
            slots,
            raw_slot,
            frames,
            cut,
            flips,
        }
    }

    fn encode(&self, w: &mut Writer) {
        match self {
            SegSpec::Raw(b) => {
                w.u8(0).bytes(b);
            }
            SegSpec::Built {
                pages,
                slots,
                raw_slot,
                frames,
                cut,
                flips,
            } => {
                w.u8(1).u8(*pages);
                slots[0].encode(w);
                slots[1].encode(w);
                if slots.iter().any(|s| s.form % 4 == 3) {
                    w.bytes(raw_slot);
                }
                w.u8(u8::try_from(frames.len()).expect("fewer than 32 frames"));
                for f in frames {
                    f.encode(w);
                }
                w.u16(*cut);
                w.u8(u8::try_from(flips.len()).expect("fewer than 8 flips"));
                for (at, x) in flips {
                    w.u16(*at).u8(*x);
                }
            }
        }
    }
}

impl SegmentCase {
    pub fn decode(data: &[u8]) -> SegmentCase {
        let mut r = Reader::new(data);
        let mode = r.u8();
        let paranoid = r.bool();
        let extra = r.u8();
        let n = 1 + r.u8() % 3;
        let segs = (0..n).map(|_| SegSpec::decode(&mut r)).collect();
        SegmentCase {
            mode,
            paranoid,
            extra,
            segs,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(self.mode).bool(self.paranoid).u8(self.extra);
        w.u8(u8::try_from(self.segs.len() - 1).expect("one to three segments"));
        for s in &self.segs {
            s.encode(&mut w);
        }
        w.out
    }

    /// The directory this case describes.
    pub fn files(&self) -> Files {
        let mut files = Files::new();
        let mut next_lsn = 1u64;
        for (i, spec) in self.segs.iter().enumerate() {
            let seq = i as u64 + 1;
            let bytes = match spec {
                SegSpec::Raw(b) => b.clone(),
                SegSpec::Built { .. } => build(spec, seq, &mut next_lsn),
            };
            files.insert(format!("{seq:020}.seg"), bytes);
        }
        let last = files.values().last().cloned().unwrap_or_default();
        let first = files.values().next().cloned().unwrap_or_default();
        if self.extra & 1 != 0 {
            files.insert(format!("{:020}.seg.tmp", self.segs.len() + 1), last);
        }
        if self.extra & 2 != 0 {
            files.insert(format!("{:020}.free", 0), first);
        }
        files
    }
}

fn delta(b: u8) -> i64 {
    i64::from(b as i8)
}

fn add(v: u64, d: i64) -> u64 {
    v.wrapping_add_signed(d)
}

/// Builds a described segment file; `next_lsn` is the LSN the chain expects next.
fn build(spec: &SegSpec, seq: u64, next_lsn: &mut u64) -> Vec<u8> {
    let SegSpec::Built {
        pages,
        slots,
        raw_slot,
        frames,
        cut,
        flips,
    } = spec
    else {
        unreachable!("build is only called on built segments")
    };
    let size = (4 + usize::from(pages % 5)) * 4096;
    let mut file = vec![0u8; size];
    let base = *next_lsn;
    let mut epoch = 0u32;
    for (s, at) in slots.iter().zip([0usize, 512]) {
        let fields = SlotFields {
            version: if s.version == 0 {
                1
            } else {
                u16::from(s.version)
            },
            kind: 1,
            generation: u32::from(s.generation),
            seq: add(seq, delta(s.seq_delta)),
            base_lsn: match s.base {
                0 => base,
                1 => 0,
                b => add(base, delta(b)),
            },
            segment_bytes: add(size as u64, delta(s.size_delta) * 4096),
            epoch: u32::from(s.epoch),
            seal_epoch: if s.seal == 0 {
                0
            } else {
                u32::from(s.epoch) + u32::from(s.seal % 4)
            },
            sealed_end: if s.seal == 0 {
                0
            } else {
                4096 + 8 * u64::from(s.sealed_end)
            },
            flags: u32::from(s.flags),
        };
        let bytes: Vec<u8> = match s.form % 4 {
            0 => vec![0; 64],
            1 => fields.encode(false).to_vec(),
            2 => fields.encode(true).to_vec(),
            _ => raw_slot.iter().copied().take(64).collect(),
        };
        file[at..at + bytes.len()].copy_from_slice(&bytes);
        if s.form % 4 == 1 && epoch == 0 {
            epoch = fields.epoch;
        }
    }
    let mut at = wire::DATA_OFFSET;
    for f in frames {
        let lsn = add(*next_lsn, delta(f.lsn_delta));
        let len = if f.len >= 0xf000 {
            usize::from(f.len & 0x3fff)
        } else {
            usize::from(f.len % 2048)
        };
        let hint = match f.hint {
            0 => 0,
            1 => lsn.saturating_sub(1),
            2 => lsn.saturating_add(5),
            b => u64::from(b),
        };
        let fields = |kind: u8| FrameFields {
            lsn,
            durable_hint: hint,
            epoch: epoch.wrapping_add_signed(delta(f.epoch_delta) as i32),
            kind: if f.kind == 0 { kind } else { f.kind },
            flags: 0,
        };
        let (mut bytes, count) = match f.sel % 8 {
            0..=3 => (
                wire::encode_frame(fields(1), &wire::payload(seq, lsn, len)),
                1,
            ),
            4 => {
                let n = 1 + u64::from(f.count % 4);
                let ps: Vec<Vec<u8>> = (0..n)
                    .map(|i| wire::payload(seq, lsn.wrapping_add(i), len / 2 + i as usize))
                    .collect();
                (wire::encode_frame(fields(2), &wire::batch_body(&ps)), n)
            }
            5 => (wire::encode_frame(fields(3), &[]), 0),
            6 => (f.raw.clone(), 0),
            _ => (vec![0; 8 * (len % 64)], 0),
        };
        if f.damage != 0 && !bytes.is_empty() {
            let i = usize::from(f.damage) % bytes.len();
            bytes[i] ^= 0x5a;
        }
        let Some(end) = at.checked_add(bytes.len()).filter(|&e| e <= size) else {
            break;
        };
        file[at..end].copy_from_slice(&bytes);
        at = end.next_multiple_of(8);
        if count > 0 {
            *next_lsn = lsn.wrapping_add(count);
        }
    }
    for (off, x) in flips {
        let i = usize::from(*off);
        if let Some(b) = file.get_mut(i) {
            *b ^= x;
        }
    }
    if *cut != 0 && usize::from(*cut) < file.len() {
        file.truncate(usize::from(*cut));
    }
    file
}

/// Runs one input: builds the directory, opens it read-only, checks the outcome.
pub fn run(data: &[u8]) -> Result<(), String> {
    run_case(&SegmentCase::decode(data))
}

/// [`run`] on a decoded case.
pub fn run_case(case: &SegmentCase) -> Result<(), String> {
    let dir = Path::new("d");
    let files = case.files();
    let sim = oracle::disk_with(dir, &files);
    let mode = MODES[usize::from(case.mode % 4)];
    let mut opts = oracle::sim_options(&sim, mode, true);
    opts.paranoid_reads = case.paranoid;
    oracle::open_and_check(dir, opts, &files)?;
    if oracle::snapshot(&sim, dir) != files {
        return Err("a read-only open changed the directory".into());
    }
    Ok(())
}
