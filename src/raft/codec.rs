//! The compact binary encoding of what the Raft store persists: log entries, the vote,
//! log ids, memberships and snapshot metadata.
//!
//! Integers are LEB128 varints (a log id of a small cluster is three bytes), byte strings
//! and collections carry a varint length before their contents, options and enums a tag
//! byte. Decoding trusts nothing: every length is bounded by the bytes that remain
//! before anything is allocated or read, varints longer than ten bytes or overflowing a
//! `u64` are refused, and every refusal is a [`DecodeError`] that says where and why.
//!
//! The application's own types (the log's payload `C::D`, and a custom `NodeId` or
//! `Node`) implement [`Codec`] to be stored; the openraft types and the usual
//! primitives already do.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;

use openraft::entry::RaftPayload;
use openraft::impls::leader_id_adv;
use openraft::vote::{RaftCommittedLeaderId, RaftLeaderId, RaftTerm};
use openraft::{
    BasicNode, EmptyNode, Entry, EntryPayload, LogId, Membership, Node, NodeId, SnapshotMeta,
    StoredMembership, Vote,
};

/// A value that can be written to and read back from the store.
///
/// `decode(encode(x)) == x`, and `decode` consumes exactly the bytes `encode` wrote, so
/// values can follow one another. Every element of a collection must encode to at least
/// one byte (a decoder refuses a count larger than the bytes that remain).
///
/// ```
/// use mmlog::raft::{Codec, DecodeError, Decoder};
///
/// #[derive(Debug, PartialEq)]
/// struct Put {
///     key: String,
///     value: Vec<u8>,
/// }
///
/// impl Codec for Put {
///     fn encode(&self, out: &mut Vec<u8>) {
///         self.key.encode(out);
///         self.value.encode(out);
///     }
///     fn decode(input: &mut Decoder<'_>) -> Result<Put, DecodeError> {
///         Ok(Put { key: String::decode(input)?, value: Vec::decode(input)? })
///     }
/// }
///
/// let put = Put { key: "k".into(), value: b"v".to_vec() };
/// let bytes = mmlog::raft::encode_to_vec(&put);
/// assert_eq!(mmlog::raft::decode_exact::<Put>(&bytes)?, put);
/// # Ok::<(), DecodeError>(())
/// ```
pub trait Codec: Sized {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads one value from `input`, advancing it past the value.
    fn decode(input: &mut Decoder<'_>) -> Result<Self, DecodeError>;
}

/// Encodes `value` into a new vector.
pub fn encode_to_vec<T: Codec>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value.encode(&mut out);
    out
}

/// Decodes one `T` that must span all of `bytes`.
pub fn decode_exact<T: Codec>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut input = Decoder::new(bytes);
    let value = T::decode(&mut input)?;
    input.finish()?;
    Ok(value)
}

/// Bytes that do not decode: where, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeError {
    /// Byte offset in the decoded buffer where the problem was found.
    pub offset: usize,
    /// What was expected and not found.
    pub reason: String,
}

impl DecodeError {
    /// A decoding error at `offset`.
    pub fn new(offset: usize, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            offset,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undecodable at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for DecodeError {}

impl From<DecodeError> for io::Error {
    fn from(e: DecodeError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// A cursor over bytes being decoded.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Decoder<'a> {
        Decoder { bytes, offset: 0 }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Bytes not consumed yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.offset)
    }

    /// An error at the current position.
    pub fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError::new(self.offset, reason)
    }

    /// Refuses trailing bytes.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(format!("{n} trailing bytes"))),
        }
    }

    /// The next `len` bytes.
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .offset
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.error(format!("{len} bytes needed, {} left", self.remaining())))?;
        let out = self
            .bytes
            .get(self.offset..end)
            .ok_or_else(|| self.error("range out of bounds"))?;
        self.offset = end;
        Ok(out)
    }

    /// The next byte.
    pub fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .bytes
            .get(self.offset)
            .ok_or_else(|| self.error("1 byte needed, 0 left"))?;
        self.offset += 1;
        Ok(b)
    }

    /// A LEB128 varint of at most ten bytes that fits a `u64`.
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.offset;
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(DecodeError::new(start, "varint overflows 64 bits"));
            }
            value |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::new(start, "varint longer than 10 bytes"))
    }

    /// A varint length (or count) that the remaining bytes can hold.
    pub fn length(&mut self) -> Result<usize, DecodeError> {
        let at = self.offset;
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.remaining())
            .ok_or_else(|| {
                DecodeError::new(
                    at,
                    format!("length {n} exceeds the {} bytes left", self.remaining()),
                )
            })
    }
}

/// Appends `v` as a LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let [low, ..] = v.to_le_bytes();
        v >>= 7;
        if v == 0 {
            out.push(low & 0x7f);
            return;
        }
        out.push(low | 0x80);
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    put_varint(out, len as u64);
}

// ----- primitives -------------------------------------------------------------------

impl Codec for u64 {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, *self);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<u64, DecodeError> {
        input.varint()
    }
}

macro_rules! narrow_uint {
    ($($t:ty),*) => {$(
        impl Codec for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                put_varint(out, u64::from(*self));
            }
            fn decode(input: &mut Decoder<'_>) -> Result<$t, DecodeError> {
                let at = input.offset();
                let v = input.varint()?;
                <$t>::try_from(v).map_err(|_| {
                    DecodeError::new(at, format!("{v} does not fit {}", stringify!($t)))
                })
            }
        }
    )*};
}
narrow_uint!(u16, u32);

impl Codec for u8 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<u8, DecodeError> {
        input.byte()
    }
}

impl Codec for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn decode(input: &mut Decoder<'_>) -> Result<bool, DecodeError> {
        match input.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError::new(
                input.offset() - 1,
                format!("bool byte {b}"),
            )),
        }
    }
}

impl Codec for () {
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(_input: &mut Decoder<'_>) -> Result<(), DecodeError> {
        Ok(())
    }
}

impl Codec for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        put_len(out, self.len());
        out.extend_from_slice(self);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Vec<u8>, DecodeError> {
        let len = input.length()?;
        Ok(input.take(len)?.to_vec())
    }
}

impl Codec for String {
    fn encode(&self, out: &mut Vec<u8>) {
        put_len(out, self.len());
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(input: &mut Decoder<'_>) -> Result<String, DecodeError> {
        let len = input.length()?;
        let at = input.offset();
        let bytes = input.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::new(at, "string is not UTF-8"))
    }
}

impl<T: Codec> Codec for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Option<T>, DecodeError> {
        match input.byte()? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(input)?)),
            b => Err(DecodeError::new(
                input.offset() - 1,
                format!("option tag {b}"),
            )),
        }
    }
}

impl<A: Codec, B: Codec> Codec for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<(A, B), DecodeError> {
        Ok((A::decode(input)?, B::decode(input)?))
    }
}

impl<T: Codec + Ord> Codec for BTreeSet<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        put_len(out, self.len());
        for v in self {
            v.encode(out);
        }
    }
    fn decode(input: &mut Decoder<'_>) -> Result<BTreeSet<T>, DecodeError> {
        let count = input.length()?;
        let mut set = BTreeSet::new();
        for _ in 0..count {
            let at = input.offset();
            if !set.insert(T::decode(input)?) {
                return Err(DecodeError::new(at, "duplicate set element"));
            }
        }
        Ok(set)
    }
}

impl<K: Codec + Ord, V: Codec> Codec for BTreeMap<K, V> {
    fn encode(&self, out: &mut Vec<u8>) {
        put_len(out, self.len());
        for (k, v) in self {
            k.encode(out);
            v.encode(out);
        }
    }
    fn decode(input: &mut Decoder<'_>) -> Result<BTreeMap<K, V>, DecodeError> {
        let count = input.length()?;
        let mut map = BTreeMap::new();
        for _ in 0..count {
            let at = input.offset();
            let k = K::decode(input)?;
            let v = V::decode(input)?;
            if map.insert(k, v).is_some() {
                return Err(DecodeError::new(at, "duplicate map key"));
            }
        }
        Ok(map)
    }
}

// ----- openraft types ---------------------------------------------------------------

impl Codec for BasicNode {
    fn encode(&self, out: &mut Vec<u8>) {
        self.addr.encode(out);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<BasicNode, DecodeError> {
        Ok(BasicNode {
            addr: String::decode(input)?,
        })
    }
}

impl Codec for EmptyNode {
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(_input: &mut Decoder<'_>) -> Result<EmptyNode, DecodeError> {
        Ok(EmptyNode {})
    }
}

impl<T, N> Codec for leader_id_adv::LeaderId<T, N>
where
    T: RaftTerm + Codec,
    N: NodeId + Codec,
{
    fn encode(&self, out: &mut Vec<u8>) {
        self.term.encode(out);
        self.node_id.encode(out);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(leader_id_adv::LeaderId {
            term: T::decode(input)?,
            node_id: N::decode(input)?,
        })
    }
}

impl<L> Codec for Vote<L>
where
    L: RaftLeaderId + Codec,
{
    fn encode(&self, out: &mut Vec<u8>) {
        self.leader_id.encode(out);
        self.committed.encode(out);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Vote {
            leader_id: L::decode(input)?,
            committed: bool::decode(input)?,
        })
    }
}

impl<L> Codec for LogId<L>
where
    L: RaftCommittedLeaderId + Codec,
{
    fn encode(&self, out: &mut Vec<u8>) {
        self.leader_id.encode(out);
        self.index.encode(out);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let leader_id = L::decode(input)?;
        Ok(LogId::new(leader_id, u64::decode(input)?))
    }
}

impl<NID, N> Codec for Membership<NID, N>
where
    NID: NodeId + Codec,
    N: Node + Codec,
{
    fn encode(&self, out: &mut Vec<u8>) {
        let configs = self.get_joint_config();
        put_len(out, configs.len());
        for c in configs {
            c.encode(out);
        }
        let nodes: Vec<(&NID, &N)> = self.nodes().collect();
        put_len(out, nodes.len());
        for (id, node) in nodes {
            id.encode(out);
            node.encode(out);
        }
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let at = input.offset();
        let count = input.length()?;
        let mut configs = Vec::new();
        for _ in 0..count {
            configs.push(BTreeSet::<NID>::decode(input)?);
        }
        let nodes = BTreeMap::<NID, N>::decode(input)?;
        Membership::new(configs, nodes)
            .map_err(|e| DecodeError::new(at, format!("invalid membership: {e}")))
    }
}

impl<L, NID, N> Codec for StoredMembership<L, NID, N>
where
    L: RaftCommittedLeaderId + Codec,
    NID: NodeId + Codec,
    N: Node + Codec,
{
    fn encode(&self, out: &mut Vec<u8>) {
        self.log_id().encode(out);
        self.membership().encode(out);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let log_id = Option::<LogId<L>>::decode(input)?;
        Ok(StoredMembership::new(log_id, Membership::decode(input)?))
    }
}

impl<L, NID, N> Codec for SnapshotMeta<L, NID, N>
where
    L: RaftCommittedLeaderId + Codec,
    NID: NodeId + Codec,
    N: Node + Codec,
{
    fn encode(&self, out: &mut Vec<u8>) {
        self.last_log_id.encode(out);
        self.last_membership.encode(out);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(SnapshotMeta {
            last_log_id: Option::<LogId<L>>::decode(input)?,
            last_membership: StoredMembership::decode(input)?,
        })
    }
}

const PAYLOAD_BLANK: u8 = 0;
const PAYLOAD_NORMAL: u8 = 1;
const PAYLOAD_MEMBERSHIP: u8 = 2;

impl<D, NID, N> Codec for EntryPayload<D, NID, N>
where
    D: openraft::AppData + Codec,
    NID: NodeId + Codec,
    N: Node + Codec,
{
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            EntryPayload::Blank => out.push(PAYLOAD_BLANK),
            EntryPayload::Normal(d) => {
                out.push(PAYLOAD_NORMAL);
                d.encode(out);
            }
            EntryPayload::Membership(m) => {
                out.push(PAYLOAD_MEMBERSHIP);
                m.encode(out);
            }
        }
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        match input.byte()? {
            PAYLOAD_BLANK => Ok(EntryPayload::Blank),
            PAYLOAD_NORMAL => Ok(EntryPayload::Normal(D::decode(input)?)),
            PAYLOAD_MEMBERSHIP => Ok(EntryPayload::Membership(Membership::decode(input)?)),
            b => Err(DecodeError::new(
                input.offset() - 1,
                format!("entry payload tag {b}"),
            )),
        }
    }
}

impl<L, P> Codec for Entry<L, P>
where
    L: RaftCommittedLeaderId + Codec,
    P: RaftPayload + Codec,
{
    fn encode(&self, out: &mut Vec<u8>) {
        self.log_id.encode(out);
        self.payload.encode(out);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let log_id = LogId::decode(input)?;
        Ok(Entry {
            log_id,
            payload: P::decode(input)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_refuse_overflow() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let bytes = encode_to_vec(&v);
            assert_eq!(decode_exact::<u64>(&bytes), Ok(v));
        }
        // Eleven bytes, and ten whose last carries more than the one bit left.
        let long = [0x80u8; 10];
        assert!(decode_exact::<u64>(&[long.as_slice(), &[0]].concat()).is_err());
        let mut over = vec![0xffu8; 9];
        over.push(0x02);
        assert!(decode_exact::<u64>(&over).is_err());
    }

    #[test]
    fn lengths_are_bounded_by_what_remains() {
        // A string claiming 2^62 bytes, followed by three.
        let mut bytes = Vec::new();
        put_varint(&mut bytes, 1 << 62);
        bytes.extend_from_slice(b"abc");
        let err = decode_exact::<String>(&bytes).expect_err("refused");
        assert!(err.reason.contains("exceeds"), "{err}");
    }
}
