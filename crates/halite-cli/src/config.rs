//! Which master configuration a command-line tool reads.

use std::path::{Path, PathBuf};

use halite_config::MasterConfig;

/// Salt's default configuration directory.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/salt";

/// Loads the master configuration a tool run with `-c dir` (or without) should use: the named
/// directory; else `/etc/salt` when it holds a `master` file, as Salt's tools default to; else
/// halite's embedded defaults, the same ones `halite-master` runs on without `-c`, so the tools
/// and a master started from this checkout agree on the pki dir. Warnings go to stderr in
/// Salt's log format.
pub fn load(dir: Option<&Path>) -> anyhow::Result<MasterConfig> {
    let chosen: Option<PathBuf> = match dir {
        Some(dir) => Some(dir.to_owned()),
        None if Path::new(DEFAULT_CONFIG_DIR).join("master").is_file() => Some(PathBuf::from(DEFAULT_CONFIG_DIR)),
        None => None,
    };
    let (config, warnings) = MasterConfig::load(chosen.as_deref())?;
    for warning in warnings {
        eprintln!("[WARNING ] {warning}");
    }
    Ok(config)
}

/// The master's id as Salt derives it when the config sets none: `<hostname>_master`.
pub fn master_id(config: &MasterConfig) -> String {
    if let Some(id) = config.extra("id").and_then(|v| v.as_str()) {
        return id.to_owned();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}_master")
}
