//! The adaptive mode's hot kernels, kept on disk between processes (natively): the specialized
//! WGSL of every kernel the adaptive mode compiled in the background, keyed by a fingerprint of
//! its description. In a new process, the first adaptive evaluation queues the newest
//! [`PREWARM`] of them for compiling in the background (`Compiler::prewarm`), so those kernels
//! run specialized from their first evaluation, without a compile on the caller's path; any
//! other kernel of the index counts as hot the first time it is seen (its specialized compile
//! is queued at once instead of after a second evaluation). The driver's pipeline cache beside
//! it makes those compiles cheap.
//!
//! The file sits in the cache folder (`$TMATH_CACHE_DIR`, …), one per adapter, driver and
//! crate version; `TMATH_HOT_KERNELS=off` disables it (the test suite does, so that each test
//! sees a fresh process), `TMATH_PIPELINE_CACHE=off` disables it with the driver's cache. It
//! holds kernel text only: a stale or foreign entry is at worst a pipeline nobody asks for.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use crate::codegen::{Bindings, KernelDesc};

/// Kernels remembered (the most recently compiled kept).
const MAX_KERNELS: usize = 256;
/// The newest kernels of the index compiled ahead, when the first adaptive evaluation runs.
pub(crate) const PREWARM: usize = 16;
/// The first line of the file: format and crate version (another version's file is ignored).
const HEADER: &str = concat!("tmath hot kernels 1 ", env!("CARGO_PKG_VERSION"));

/// The part of a cache file's name that names the adapter, its driver and backend.
pub(crate) fn adapter_file_name(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{}-{}-{:?}-{}",
        info.name, info.driver, info.backend, info.driver_info
    )
    .chars()
    .map(|c| {
        if c.is_ascii_alphanumeric() || c == '.' {
            c
        } else {
            '_'
        }
    })
    .take(120)
    .collect()
}

/// One specialized kernel as the file keeps it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HotKernel {
    pub fingerprint: u64,
    pub bindings: Bindings,
    pub trusted: bool,
    pub text: String,
}

/// A description's fingerprint: a fixed-key hash of its whole structure and sizes (the same in
/// every process of one build).
pub(crate) fn fingerprint(desc: &KernelDesc) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{desc:?}").hash(&mut h);
    h.finish()
}

pub(crate) struct HotIndex {
    path: PathBuf,
    /// The newest of the file's kernels, not compiled yet (taken by the first adaptive
    /// evaluation).
    pending: Vec<HotKernel>,
    /// The fingerprints of all the file's kernels: hot on first sight.
    pub known_hot: std::collections::HashSet<u64>,
    /// Compiled from the file: fingerprint → pipeline and its estimated bytes, moved into the
    /// cache when its description is first asked for.
    pub prewarmed: HashMap<u64, (Arc<wgpu::ComputePipeline>, u64)>,
    /// What the file will hold: the loaded kernels and this process's compiles, newest last.
    known: Vec<HotKernel>,
    dirty: bool,
}

impl HotIndex {
    /// The index of this adapter in `dir`, loaded when present.
    pub fn open(dir: PathBuf, info: &wgpu::AdapterInfo) -> HotIndex {
        let path = dir.join(format!("hot-kernels-{}", adapter_file_name(info)));
        let known = std::fs::read_to_string(&path)
            .map(|s| parse(&s))
            .unwrap_or_default();
        HotIndex {
            path,
            pending: known[known.len().saturating_sub(PREWARM)..].to_vec(),
            known_hot: known.iter().map(|k| k.fingerprint).collect(),
            prewarmed: HashMap::new(),
            known,
            dirty: false,
        }
    }

    /// The kernels to compile in the background now (once per process).
    pub fn take_pending(&mut self) -> Vec<HotKernel> {
        std::mem::take(&mut self.pending)
    }

    /// Remembers a kernel compiled in the background.
    pub fn record(&mut self, k: HotKernel) {
        self.known.retain(|o| o.fingerprint != k.fingerprint);
        self.known.push(k);
        if self.known.len() > MAX_KERNELS {
            self.known.remove(0);
        }
        self.dirty = true;
    }

    /// Writes the file if kernels were added: merged with what another process wrote since
    /// (this process's kernels last), atomically (a temporary file, then a rename).
    pub fn save(&mut self) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        let mut all = std::fs::read_to_string(&self.path)
            .map(|s| parse(&s))
            .unwrap_or_default();
        all.retain(|o| self.known.iter().all(|k| k.fingerprint != o.fingerprint));
        all.extend(self.known.iter().cloned());
        let skip = all.len().saturating_sub(MAX_KERNELS);
        super::pipelines::write_atomically(&self.path, write(&all[skip..]).as_bytes());
    }
}

/// `HEADER`, then per kernel a line `fingerprint bindings trusted length` and the WGSL.
fn write(kernels: &[HotKernel]) -> String {
    let mut s = format!("{HEADER}\n");
    for k in kernels {
        let b = match k.bindings {
            Bindings::Slots(n) => format!("slots{n}"),
            Bindings::Svd => "svd".into(),
        };
        s += &format!(
            "{:016x} {b} {} {}\n{}\n",
            k.fingerprint,
            k.trusted as u8,
            k.text.len(),
            k.text
        );
    }
    s
}

/// The kernels of a file `write` made (nothing for another format or version, and the entries
/// before the first malformed one).
fn parse(s: &str) -> Vec<HotKernel> {
    let mut out = vec![];
    let Some(mut rest) = s.strip_prefix(HEADER).and_then(|r| r.strip_prefix('\n')) else {
        return out;
    };
    while let Some((line, after)) = rest.split_once('\n') {
        let f: Vec<&str> = line.split(' ').collect();
        let [fp, b, trusted, len] = f.as_slice() else {
            break;
        };
        let (Ok(fingerprint), Ok(len)) = (u64::from_str_radix(fp, 16), len.parse::<usize>()) else {
            break;
        };
        let bindings = match *b {
            "svd" => Bindings::Svd,
            s => match s.strip_prefix("slots").and_then(|n| n.parse().ok()) {
                Some(n) => Bindings::Slots(n),
                None => break,
            },
        };
        let Some(text) = after.get(..len) else { break };
        let Some(next) = after.get(len..).and_then(|r| r.strip_prefix('\n')) else {
            break;
        };
        out.push(HotKernel {
            fingerprint,
            bindings,
            trusted: *trusted == "1",
            text: text.to_string(),
        });
        rest = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_format_round_trips_and_rejects_garbage() {
        let ks = vec![
            HotKernel {
                fingerprint: 7,
                bindings: Bindings::Slots(3),
                trusted: true,
                text: "fn main() {\n}\n".into(),
            },
            HotKernel {
                fingerprint: u64::MAX,
                bindings: Bindings::Svd,
                trusted: false,
                text: String::new(),
            },
        ];
        assert_eq!(parse(&write(&ks)), ks);
        assert!(parse("tmath hot kernels 0 0.0.1\n0 slots1 0 0\n\n").is_empty());
        // A truncated file keeps the entries before the cut.
        let w = write(&ks);
        assert_eq!(parse(&w[..w.len() - 3]), ks[..1]);
    }
}
