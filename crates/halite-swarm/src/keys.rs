//! Minion keys for a swarm: generated once (RSA 2048, as `salt-minion` makes them), cached
//! as PEM files, so runs after the first start at once and a master sees the same minions.

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

/// Keys `0..count` from `dir`, generating (on `threads` threads) and saving the missing ones.
/// A key file is written to a temporary name and renamed, so an interrupted run leaves no
/// half-written key.
pub fn load_or_generate(dir: &Path, count: usize, threads: usize) -> Result<Vec<PrivateKey>, KeyError> {
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Io { path: dir.to_owned(), source })?;
    let mut keys: Vec<Option<PrivateKey>> = Vec::with_capacity(count);
    for i in 0..count {
        let path = key_path(dir, i);
        keys.push(match std::fs::read(&path) {
            Ok(pem) => Some(PrivateKey::from_pem(&pem).map_err(|e| KeyError::Key { path, reason: e.to_string() })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(KeyError::Io { path, source }),
        });
    }
    let missing: Vec<usize> = (0..count).filter(|i| keys[*i].is_none()).collect();
    if !missing.is_empty() {
        let threads = threads.max(1);
        let generated: Vec<Result<Vec<(usize, PrivateKey)>, KeyError>> = std::thread::scope(|s| {
            missing
                .chunks(missing.len().div_ceil(threads))
                .map(|chunk| s.spawn(move || chunk.iter().map(|&i| generate(dir, i).map(|k| (i, k))).collect()))
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().expect("a key generation thread"))
                .collect()
        });
        for batch in generated {
            for (i, key) in batch? {
                keys[i] = Some(key);
            }
        }
    }
    Ok(keys.into_iter().map(|k| k.expect("every key loaded or generated")).collect())
}

fn generate(dir: &Path, index: usize) -> Result<PrivateKey, KeyError> {
    let path = key_path(dir, index);
    let key_err = |reason: String| KeyError::Key { path: path.clone(), reason };
    let key = PrivateKey::generate(BITS).map_err(|e| key_err(e.to_string()))?;
    let pem = key.to_pkcs1_pem().map_err(|e| key_err(e.to_string()))?;
    let tmp = path.with_extension("pem.tmp");
    std::fs::write(&tmp, pem).map_err(|source| KeyError::Io { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, &path).map_err(|source| KeyError::Io { path: path.clone(), source })?;
    Ok(key)
}
