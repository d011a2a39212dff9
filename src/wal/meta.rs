//! Durable metadata: a few small named values kept beside the log (a Raft node's vote
//! and commit index, a server's configuration epoch). `set_meta` is durable when it
//! returns.
//!
//! The `META` file holds two 4 KiB slots, each a complete copy of the map with a
//! generation and a checksum; a write goes to the slot that does not hold the current
//! copy, then is synced, so a torn write leaves the previous copy. The file is created
//! under a temporary name, synced, renamed and the directory synced before first use.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::{CorruptionKind, Error, IoOp, Result};
use crate::format::{
    META_MAX_PAYLOAD, META_SLOT_BYTES, decode_meta_map, decode_meta_slot, encode_meta_map,
    encode_meta_slot,
};
use crate::sys::{Env, Step, StorageFile};

/// Name of the metadata file.
pub(crate) const META_FILE: &str = "META";
/// Temporary name while it is created.
pub(crate) const META_TMP: &str = "META.tmp";

#[derive(Default)]
struct State {
    map: BTreeMap<String, Vec<u8>>,
    /// Generation and slot of the current copy; `None` before the file exists.
    current: Option<(u32, usize)>,
    file: Option<Box<dyn StorageFile>>,
}

/// The metadata of one log.
pub(crate) struct Meta {
    dir: PathBuf,
    state: Mutex<State>,
}

impl Meta {
    /// Reads `META` (if any) from `dir`, removing a leftover temporary file when
    /// `writable`.
    pub(crate) fn load(env: &Env, dir: &std::path::Path, writable: bool) -> Result<Meta> {
        let path = dir.join(META_FILE);
        if writable {
            let _ = env.storage.remove_file(&dir.join(META_TMP));
        }
        let mut state = State::default();
        match env.storage.open_file(&path, writable) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(IoOp::Open, &path, e)),
            Ok(file) => {
                let mut best: Option<(u32, usize, BTreeMap<String, Vec<u8>>)> = None;
                for slot in 0..2usize {
                    let mut buf = vec![0u8; META_SLOT_BYTES];
                    let at = (slot * META_SLOT_BYTES) as u64;
                    match env.op(Step::SegmentRead, &path, |_| file.read_at(at, &mut buf)) {
                        Ok(()) => {}
                        // The file is created at its full size, so a short one is
                        // damage no crash leaves; taking the other slot could hand out
                        // an older vote.
                        Err(Error::Io { source, .. })
                            if source.kind() == std::io::ErrorKind::UnexpectedEof =>
                        {
                            return Err(Error::corrupt(
                                &path,
                                at,
                                CorruptionKind::BadHeader(
                                    "the metadata file is shorter than its two slots".into(),
                                ),
                            ));
                        }
                        // A read error is not an invalid slot: falling back to the
                        // other slot could hand out an older value.
                        Err(e) => return Err(e),
                    }
                    if let Some((generation, payload)) = decode_meta_slot(&buf)
                        && let Some(map) = decode_meta_map(payload)
                        && best.as_ref().is_none_or(|(g, _, _)| generation > *g)
                    {
                        best = Some((generation, slot, map));
                    }
                }
                let Some((generation, slot, map)) = best else {
                    return Err(Error::corrupt(
                        &path,
                        0,
                        CorruptionKind::BadHeader("neither metadata slot is valid".into()),
                    ));
                };
                state.map = map;
                state.current = Some((generation, slot));
                state.file = Some(file);
            }
        }
        Ok(Meta {
            dir: dir.to_path_buf(),
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().map.get(key).cloned()
    }

    pub(crate) fn all(&self) -> BTreeMap<String, Vec<u8>> {
        self.lock().map.clone()
    }

    /// Sets (or, with `None`, removes) `key`, durably.
    pub(crate) fn set(&self, env: &Env, key: &str, value: Option<&[u8]>) -> Result<()> {
        let mut st = self.lock();
        let mut map = st.map.clone();
        match value {
            Some(v) => {
                map.insert(key.to_string(), v.to_vec());
            }
            None => {
                map.remove(key);
            }
        }
        let payload = encode_meta_map(&map)
            .filter(|p| p.len() <= META_MAX_PAYLOAD)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("metadata would exceed {META_MAX_PAYLOAD} bytes"))
            })?;
        let path = self.dir.join(META_FILE);
        let (generation, slot) = match st.current {
            Some((g, s)) => (g.wrapping_add(1), 1 - s.min(1)),
            None => (1, 0),
        };
        let bytes = encode_meta_slot(generation, &payload)
            .ok_or_else(|| Error::InvalidArgument("metadata too large".into()))?;
        if st.file.is_none() {
            // First write: build the file under a temporary name, then publish it.
            let tmp = self.dir.join(META_TMP);
            let _ = env.storage.remove_file(&tmp);
            env.check(Step::SegmentCreate, &tmp)?;
            let file = env.op(Step::SegmentAllocate, &tmp, |s| {
                s.create_file(&tmp, (2 * META_SLOT_BYTES) as u64)
            })?;
            env.check(Step::SegmentHeaderWrite, &tmp)?;
            file.write_at(0, &bytes)
                .map_err(|e| Error::io(IoOp::Write, &tmp, e))?;
            env.op(Step::SegmentSync, &tmp, |_| file.sync_data())?;
            env.op(Step::SegmentRename, &tmp, |s| s.rename(&tmp, &path))?;
            env.op(Step::DirSync, &self.dir, |s| s.sync_dir(&self.dir))?;
            st.file = Some(file);
        } else if let Some(file) = &st.file {
            env.check(Step::SegmentHeaderWrite, &path)?;
            file.write_at((slot * META_SLOT_BYTES) as u64, &bytes)
                .map_err(|e| Error::io(IoOp::Write, &path, e))?;
            env.op(Step::SegmentSync, &path, |_| file.sync_data())?;
        }
        st.map = map;
        st.current = Some((generation, slot));
        Ok(())
    }
}
