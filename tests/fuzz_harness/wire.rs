//! Bytes in and out of the fuzz harness: `Reader` turns a fuzz input into values (every
//! read succeeds; missing bytes read as zero, so any input is a valid case), `Writer`
//! is its exact inverse (the seed corpora and the regression tests are written with
//! it), and a second, independent implementation of the on-disk format (DESIGN.md §2)
//! that forges segment headers, frames and checkpoint headers — valid or deliberately
//! not — and checks frames and checkpoints for the oracle. It shares no code with
//! `src/format.rs`, so a decoder bug there is not mirrored here.

/// Magic bytes that open every mmlog file.
pub const MAGIC: [u8; 8] = *b"MMLOG\0\x01\x00";
/// First byte of the record area of a segment, and of a checkpoint's payload.
pub const DATA_OFFSET: usize = 4096;
/// Bytes of a frame header.
pub const FRAME_HEADER: usize = 32;
/// Segment header flag: recycled file.
pub const FLAG_RECYCLED: u32 = 1;
/// Segment header flag: the log starts here.
pub const FLAG_RESET: u32 = 2;

/// Reads values from a fuzz input, front to back. Never fails: past the end every
/// byte is zero.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn fill<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        out
    }

    pub fn u8(&mut self) -> u8 {
        self.fill::<1>()[0]
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.fill())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.fill())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.fill())
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A length-prefixed (u16) byte string; shorter if the input ends first.
    pub fn bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16()).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// The inverse of [`Reader`].
#[derive(Debug, Clone, Default)]
pub struct Writer {
    pub out: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) -> &mut Writer {
        self.out.push(v);
        self
    }

    pub fn u16(&mut self, v: u16) -> &mut Writer {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Writer {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Writer {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Writer {
        self.u8(u8::from(v))
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Writer {
        let n = u16::try_from(b.len()).expect("byte strings in seeds are below 64 KiB");
        self.u16(n);
        self.out.extend_from_slice(b);
        self
    }
}

/// Seeded, masked CRC32C of the concatenation of `parts` (DESIGN.md §2.2).
pub fn checksum(parts: &[&[u8]]) -> u32 {
    let mut crc = 0x6d6d_6c67u32;
    for p in parts {
        crc = crc32c::crc32c_append(crc, p);
    }
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Every field of a segment header slot, raw: nothing is checked, so invalid headers
/// can be forged too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotFields {
    pub version: u16,
    pub kind: u16,
    pub generation: u32,
    pub seq: u64,
    pub base_lsn: u64,
    pub segment_bytes: u64,
    pub epoch: u32,
    pub seal_epoch: u32,
    pub sealed_end: u64,
    pub flags: u32,
}

impl SlotFields {
    /// A valid slot for segment `seq` of `segment_bytes` with `epoch`.
    pub fn new(seq: u64, base_lsn: u64, segment_bytes: u64, epoch: u32) -> SlotFields {
        SlotFields {
            version: 1,
            kind: 1,
            generation: 1,
            seq,
            base_lsn,
            segment_bytes,
            epoch,
            seal_epoch: 0,
            sealed_end: 0,
            flags: 0,
        }
    }

    /// The 64 bytes of the slot, with a checksum that matches (`bad_crc`: one that
    /// does not).
    pub fn encode(&self, bad_crc: bool) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10..12].copy_from_slice(&self.kind.to_le_bytes());
        b[12..16].copy_from_slice(&self.generation.to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.base_lsn.to_le_bytes());
        b[32..40].copy_from_slice(&self.segment_bytes.to_le_bytes());
        b[40..44].copy_from_slice(&self.epoch.to_le_bytes());
        b[44..48].copy_from_slice(&self.seal_epoch.to_le_bytes());
        b[48..56].copy_from_slice(&self.sealed_end.to_le_bytes());
        b[56..60].copy_from_slice(&self.flags.to_le_bytes());
        let crc = checksum(&[&b[..60]]) ^ u32::from(bad_crc);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a slot whose magic, version 1, kind and checksum are right (fields are
    /// not checked further).
    pub fn decode(b: &[u8]) -> Option<SlotFields> {
        let b = b.get(..64)?;
        let u16_at = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        if b[..8] != MAGIC || checksum(&[&b[..60]]) != u32_at(60) {
            return None;
        }
        let f = SlotFields {
            version: u16_at(8),
            kind: u16_at(10),
            generation: u32_at(12),
            seq: u64_at(16),
            base_lsn: u64_at(24),
            segment_bytes: u64_at(32),
            epoch: u32_at(40),
            seal_epoch: u32_at(44),
            sealed_end: u64_at(48),
            flags: u32_at(56),
        };
        (f.version == 1 && f.kind == 1).then_some(f)
    }
}

/// The epochs of the checksum-valid header slots of a segment file (either may be the
/// one the engine uses).
pub fn slot_epochs(file: &[u8]) -> Vec<u32> {
    [0usize, 512]
        .iter()
        .filter_map(|&at| file.get(at..).and_then(SlotFields::decode))
        .map(|f| f.epoch)
        .collect()
}

/// A frame's header fields, raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameFields {
    pub lsn: u64,
    pub durable_hint: u64,
    pub epoch: u32,
    pub kind: u8,
    pub flags: u8,
}

/// A whole frame, padded to 8 bytes, with a matching checksum.
pub fn encode_frame(f: FrameFields, body: &[u8]) -> Vec<u8> {
    let mut h = [0u8; FRAME_HEADER];
    let len = u32::try_from(body.len()).expect("bodies in the harness are small");
    h[4..8].copy_from_slice(&len.to_le_bytes());
    h[8..16].copy_from_slice(&f.lsn.to_le_bytes());
    h[16..24].copy_from_slice(&f.durable_hint.to_le_bytes());
    h[24..28].copy_from_slice(&f.epoch.to_le_bytes());
    h[28] = f.kind;
    h[29] = f.flags;
    let crc = checksum(&[&h[4..], body]);
    h[0..4].copy_from_slice(&crc.to_le_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(body);
    out.resize(out.len().next_multiple_of(8), 0);
    out
}

/// The body of a batch frame holding `payloads`.
pub fn batch_body(payloads: &[Vec<u8>]) -> Vec<u8> {
    let count = u32::try_from(payloads.len()).expect("small batch");
    let mut out = count.to_le_bytes().to_vec();
    for p in payloads {
        out.extend_from_slice(&u32::try_from(p.len()).expect("small payload").to_le_bytes());
    }
    for p in payloads {
        out.extend_from_slice(p);
    }
    out
}

/// The payloads of a batch body, when its directory adds up exactly.
pub fn parse_batch(body: &[u8]) -> Option<Vec<&[u8]>> {
    let count = usize::try_from(u32::from_le_bytes(body.get(..4)?.try_into().ok()?)).ok()?;
    let dir_end = count.checked_mul(4)?.checked_add(4)?;
    let dir = body.get(4..dir_end)?;
    if count == 0 {
        return None;
    }
    let mut at = dir_end;
    let mut out = Vec::new();
    for len in dir.chunks_exact(4) {
        let len = usize::try_from(u32::from_le_bytes(len.try_into().ok()?)).ok()?;
        let end = at.checked_add(len)?;
        out.push(body.get(at..end)?);
        at = end;
    }
    (at == body.len()).then_some(out)
}

/// Every record (LSN, payload) that some checksum-valid record or batch frame of
/// epoch `epoch` proves, anywhere in `file`'s data area (every 8-byte position).
pub fn provable_records(file: &[u8], epochs: &[u32]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = DATA_OFFSET;
    while at + FRAME_HEADER <= file.len() {
        let h = &file[at..at + FRAME_HEADER];
        at += 8;
        let epoch = u32::from_le_bytes(h[24..28].try_into().expect("4 bytes"));
        let (kind, flags, reserved) = (h[28], h[29], [h[30], h[31]]);
        if !epochs.contains(&epoch) || !(1..=2).contains(&kind) || flags != 0 || reserved != [0, 0]
        {
            continue;
        }
        let len = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
        let start = at - 8 + FRAME_HEADER;
        let Some(body) = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .and_then(|end| file.get(start..end))
        else {
            continue;
        };
        let crc = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes"));
        if checksum(&[&h[4..], body]) != crc {
            continue;
        }
        let lsn = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
        if kind == 1 {
            out.push((lsn, body.to_vec()));
        } else if let Some(payloads) = parse_batch(body) {
            for (i, p) in (0u64..).zip(payloads) {
                out.push((lsn.wrapping_add(i), p.to_vec()));
            }
        }
    }
    out
}

/// Checkpoint header fields, raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointFields {
    pub version: u16,
    pub kind: u16,
    pub flags: u32,
    pub lsn: u64,
    pub payload_bytes: u64,
    pub payload_crc: u32,
    pub reserved: u32,
}

impl CheckpointFields {
    /// A valid header for `payload` at `lsn`.
    pub fn new(lsn: u64, payload: &[u8]) -> CheckpointFields {
        CheckpointFields {
            version: 1,
            kind: 2,
            flags: 0,
            lsn,
            payload_bytes: payload.len() as u64,
            payload_crc: checksum(&[payload]),
            reserved: 0,
        }
    }

    pub fn encode(&self, bad_crc: bool) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10..12].copy_from_slice(&self.kind.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.lsn.to_le_bytes());
        b[24..32].copy_from_slice(&self.payload_bytes.to_le_bytes());
        b[32..36].copy_from_slice(&self.payload_crc.to_le_bytes());
        b[36..40].copy_from_slice(&self.reserved.to_le_bytes());
        let crc = checksum(&[&b[..60]]) ^ u32::from(bad_crc);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// A whole checkpoint file: header page, then the payload.
    pub fn file(&self, bad_crc: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; DATA_OFFSET];
        out[..64].copy_from_slice(&self.encode(bad_crc));
        out.extend_from_slice(payload);
        out
    }
}

/// Whether `file` is a checkpoint a correct loader may accept at `lsn` with `data` as
/// its payload: header checksum, version, kind, reserved fields, LSN, exact size and
/// payload checksum all check out, and the payload is `data`.
pub fn checkpoint_file_proves(file: &[u8], lsn: u64, data: &[u8]) -> Result<(), String> {
    let b = file
        .get(..64)
        .ok_or("checkpoint file shorter than its header")?;
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    if b[..8] != MAGIC {
        return Err("accepted a checkpoint without magic".into());
    }
    if checksum(&[&b[..60]]) != u32_at(60) {
        return Err("accepted a checkpoint whose header checksum fails".into());
    }
    if b[8..12] != [1, 0, 2, 0] || u32_at(12) != 0 || u32_at(36) != 0 || b[48..60] != [0; 12] {
        return Err("accepted a checkpoint with a wrong version, kind or reserved field".into());
    }
    if u64_at(16) != lsn {
        return Err(format!("checkpoint {lsn} has header LSN {}", u64_at(16)));
    }
    if u64_at(24) != data.len() as u64 || file.len() != DATA_OFFSET + data.len() {
        return Err(format!(
            "checkpoint {lsn}: payload of {} bytes, header says {}, file is {} bytes",
            data.len(),
            u64_at(24),
            file.len()
        ));
    }
    if checksum(&[data]) != u32_at(32) {
        return Err(format!("checkpoint {lsn}: payload checksum fails"));
    }
    if file[DATA_OFFSET..] != *data {
        return Err(format!("checkpoint {lsn}: payload differs from the file"));
    }
    Ok(())
}

/// A deterministic payload of `len` bytes for `lsn` and `tag`: a record read back
/// under the wrong LSN or from another write never matches.
pub fn payload(tag: u64, lsn: u64, len: usize) -> Vec<u8> {
    let mut x = tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ lsn.rotate_left(29) ^ 0x5851_f42d;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}
