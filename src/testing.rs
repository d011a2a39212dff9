//! Fault injection for tests: failpoints at every persistence step.
//!
//! ```
//! use std::sync::Arc;
//! use mmlog::testing::{FailAction, Failpoints, Step};
//! use mmlog::{Env, Options, Wal};
//!
//! let dir = tempfile::tempdir()?;
//! let fp = Arc::new(Failpoints::new());
//! let opts = Options { env: Env::with_failpoints(fp.clone()), ..Options::default() };
//! let (wal, _) = Wal::open(dir.path(), opts)?;
//! fp.arm(Step::Flush, 0, FailAction::Errno(5)); // EIO on the next msync
//! assert!(wal.append(b"x").is_err());
//! assert!(matches!(wal.append(b"y"), Err(mmlog::Error::Poisoned { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use crate::sys::{FailAction, Failpoints, PowerCut, Sabotage, SimDisk, Step};

use crate::format;

/// Whether the page holding `addr` is mapped in this process right now: bit 63 of the
/// page's entry in `/proc/self/pagemap`, which needs no privilege. Reading it does not
/// fault the page in. (Linux only, 4 KiB pages.)
pub fn page_resident(addr: usize) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt as _;
    let pagemap = std::fs::File::open("/proc/self/pagemap")?;
    let mut entry = [0u8; 8];
    pagemap.read_exact_at(&mut entry, (addr / 4096 * 8) as u64)?;
    Ok(u64::from_le_bytes(entry) >> 63 == 1)
}

/// First byte of the record area of a segment file.
pub const SEGMENT_DATA_OFFSET: u64 = format::SEGMENT_DATA_OFFSET;
/// Bytes of a record header.
pub const RECORD_HEADER_BYTES: u64 = format::RECORD_HEADER_BYTES;
/// Byte offsets of the two header slots of a segment file.
pub const SEGMENT_HEADER_SLOTS: [u64; 2] = [0, 512];

/// The segment header fields a test may want to read or forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeaderFields {
    /// Incremented on every rewrite.
    pub generation: u32,
    /// Sequence number (matches the file name).
    pub seq: u64,
    /// First LSN, 0 while unassigned.
    pub base_lsn: u64,
    /// File size.
    pub segment_bytes: u64,
    /// Epoch every frame of this use of the file carries.
    pub epoch: u32,
    /// Non-zero when sealed.
    pub seal_epoch: u32,
    /// End of live frames when sealed.
    pub sealed_end: u64,
}

/// Decodes the current header from the first page of a segment file (`None` when no
/// slot is valid).
pub fn read_segment_header(page0: &[u8]) -> Option<SegmentHeaderFields> {
    match format::read_header(page0) {
        format::HeaderRead::Valid(m, _) => Some(SegmentHeaderFields {
            generation: m.generation,
            seq: m.seq,
            base_lsn: m.base_lsn,
            segment_bytes: m.segment_bytes,
            epoch: m.epoch,
            seal_epoch: m.seal_epoch,
            sealed_end: m.sealed_end,
        }),
        _ => None,
    }
}

/// Encodes a header slot with a valid checksum (64 bytes), for forging headers.
pub fn encode_segment_header(h: SegmentHeaderFields) -> [u8; 64] {
    format::SegmentMeta {
        generation: h.generation,
        seq: h.seq,
        base_lsn: h.base_lsn,
        segment_bytes: h.segment_bytes,
        epoch: h.epoch,
        seal_epoch: h.seal_epoch,
        sealed_end: h.sealed_end,
        flags: 0,
    }
    .encode()
}

/// Builds a frame with a valid checksum from raw field values (kind 1 = record,
/// 2 = batch, 3 = seal; anything else is unknown to this version), padded to 8 bytes.
pub fn raw_frame(
    kind: u8,
    flags: u8,
    lsn: u64,
    durable_hint: u64,
    epoch: u32,
    body: &[u8],
) -> Vec<u8> {
    use zerocopy::IntoBytes;
    use zerocopy::little_endian::{U16, U32, U64};
    let mut h = format::RecordHeader {
        crc: U32::new(0),
        len: U32::new(u32::try_from(body.len()).unwrap_or(u32::MAX)),
        lsn: U64::new(lsn),
        durable_hint: U64::new(durable_hint),
        epoch: U32::new(epoch),
        kind,
        flags,
        reserved: U16::new(0),
    };
    let tail = h.as_bytes().get(4..).unwrap_or_default().to_vec();
    h.crc = U32::new(format::checksum(&[&tail, body]));
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(body);
    out.resize(out.len().next_multiple_of(8), 0);
    out
}
