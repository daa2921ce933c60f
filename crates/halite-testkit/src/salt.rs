//! Which Salt releases the tests run, and where their venvs are.

use std::path::PathBuf;

/// The Salt releases halite must serve at once, as `tests/install-minions.sh` installs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SaltVersion {
    V3006,
    #[default]
    V3007,
    V3008,
}

impl SaltVersion {
    pub const ALL: [SaltVersion; 3] = [SaltVersion::V3006, SaltVersion::V3007, SaltVersion::V3008];

    /// The exact PyPI release installed for this line.
    pub fn as_str(self) -> &'static str {
        match self {
            SaltVersion::V3006 => "3006.30",
            SaltVersion::V3007 => "3007.8",
            SaltVersion::V3008 => "3008.5",
        }
    }
}

impl std::fmt::Display for SaltVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The venv of `version`: `$HALITE_MINION_CACHE/salt-<version>`, the cache defaulting to
/// `~/.cache/halite/minions` as in `tests/install-minions.sh`.
pub fn venv(version: SaltVersion) -> PathBuf {
    let cache = std::env::var_os("HALITE_MINION_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").expect("HOME is unset; set HALITE_MINION_CACHE to the Salt venv cache");
        PathBuf::from(home).join(".cache/halite/minions")
    });
    cache.join(format!("salt-{version}"))
}

/// An executable (`salt-minion`, `salt-master`, `salt-key`, `salt`, `salt-call`) of
/// `version`'s venv. Panics, saying how to install it, when the venv is missing.
pub fn salt_bin(version: SaltVersion, name: &str) -> PathBuf {
    let bin = venv(version).join("bin").join(name);
    assert!(
        bin.is_file(),
        "{} is missing: run tests/install-minions.sh to install the Salt {version} venv \
         (it honours HALITE_MINION_CACHE)",
        bin.display()
    );
    bin
}

/// Where a master listens, as its minions are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub host: String,
    /// Salt's `ret_port` (the request server minions authenticate to; `master_port` in a
    /// minion's config).
    pub ret_port: u16,
    pub publish_port: u16,
}
