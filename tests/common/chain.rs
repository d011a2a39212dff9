//! The state of the `Store` tests: a hash chain over every command applied, in order,
//! and the LSN of the last command per key, with a snapshot encoding that checks its
//! own length.

use std::collections::BTreeMap;

/// What the state machine keeps (and snapshots).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Data {
    /// Commands applied.
    pub applied: u64,
    /// LSN of the last one.
    pub last_lsn: u64,
    /// Hash chain over every (LSN, command) applied, in order.
    pub chain: u64,
    /// Key (first command byte, mod 64) → LSN of the last command with that key.
    pub map: BTreeMap<u8, u64>,
}

impl Data {
    pub fn apply(&mut self, lsn: u64, command: &[u8]) {
        let mut h = self.chain ^ 0xcbf2_9ce4_8422_2325;
        for b in lsn.to_le_bytes().iter().chain(command) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.chain = h;
        self.applied += 1;
        self.last_lsn = lsn;
        if let Some(k) = command.first() {
            self.map.insert(k % 64, lsn);
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [
            self.applied,
            self.last_lsn,
            self.chain,
            self.map.len() as u64,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for (k, v) in &self.map {
            out.push(*k);
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    pub fn decode(b: &[u8]) -> Result<Data, String> {
        let word = |at: usize| -> Result<u64, String> {
            let s = b.get(at..at + 8).ok_or("snapshot too short")?;
            Ok(u64::from_le_bytes(s.try_into().map_err(|_| "u64")?))
        };
        let mut d = Data {
            applied: word(0)?,
            last_lsn: word(8)?,
            chain: word(16)?,
            map: BTreeMap::new(),
        };
        let n = word(24)? as usize;
        if b.len() != 32 + 9 * n {
            return Err(format!("snapshot of {} bytes for {n} keys", b.len()));
        }
        for i in 0..n {
            let at = 32 + 9 * i;
            d.map.insert(b[at], word(at + 1)?);
        }
        Ok(d)
    }
}
