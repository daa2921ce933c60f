//! Minion keys for a swarm: generated once (RSA 2048, as `salt-minion` makes them), cached
//! as PEM files, so runs after the first start at once and a master sees the same minions.

use std::ops::Range;
use std::path::{Path, PathBuf};

use halite_proto::rsa::PrivateKey;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Key { path: PathBuf, reason: String },
}

/// Bits of a generated minion key (`keysize` default).
pub const BITS: u32 = 2048;

fn key_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("minion-{index:06}.pem"))
}

/// Keys `range` from `dir`, loading and generating (on `threads` threads) and saving the
/// missing ones. A key file is written to a temporary name and renamed, so an interrupted
/// run leaves no half-written key.
pub fn load_or_generate(dir: &Path, range: Range<usize>, threads: usize) -> Result<Vec<PrivateKey>, KeyError> {
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Io { path: dir.to_owned(), source })?;
    let indices: Vec<usize> = range.collect();
    if indices.is_empty() {
        return Ok(Vec::new());
    }
    let chunk = indices.len().div_ceil(threads.max(1));
    std::thread::scope(|s| {
        let workers: Vec<_> = indices
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|&i| load_or_make(dir, i)).collect::<Vec<_>>()))
            .collect();
        let mut keys = Vec::with_capacity(indices.len());
        for worker in workers {
            let loaded = worker.join().map_err(|_| KeyError::Io {
                path: dir.to_owned(),
                source: std::io::Error::other("a key loading thread panicked"),
            })?;
            for key in loaded {
                keys.push(key?);
            }
        }
        Ok(keys)
    })
}

fn load_or_make(dir: &Path, index: usize) -> Result<PrivateKey, KeyError> {
    let path = key_path(dir, index);
    match std::fs::read(&path) {
        Ok(pem) => PrivateKey::from_pem(&pem).map_err(|e| KeyError::Key { path, reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => generate(dir, index),
        Err(source) => Err(KeyError::Io { path, source }),
    }
}

fn generate(dir: &Path, index: usize) -> Result<PrivateKey, KeyError> {
    let path = key_path(dir, index);
    let key_err = |reason: String| KeyError::Key { path: path.clone(), reason };
    let key = PrivateKey::generate(BITS).map_err(|e| key_err(e.to_string()))?;
    let pem = key.to_pkcs1_pem().map_err(|e| key_err(e.to_string()))?;
    // Two test processes may generate the same key at once: each writes its own temp file,
    // and whichever renames last wins with a key as good as the other's.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("pem.{}.{n}.tmp", std::process::id()));
    std::fs::write(&tmp, pem).map_err(|source| KeyError::Io { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, &path).map_err(|source| KeyError::Io { path: path.clone(), source })?;
    Ok(key)
}
