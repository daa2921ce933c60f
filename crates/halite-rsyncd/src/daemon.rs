//! The daemon's settings once rsyncd.conf is read: what to listen on, the modules
//! resolved, the motd, and what the config asks that halite-rsyncd does not do (named
//! at start-up, never silently ignored).

use crate::config::{Config, Warning};
use crate::module::ModuleView;
use std::net::IpAddr;
use std::path::PathBuf;

pub struct Daemon {
    pub address: Option<IpAddr>,
    pub port: u16,
    pub pid_file: Option<PathBuf>,
    pub motd: Option<Vec<u8>>,
    pub reverse_lookup: bool,
    pub modules: Vec<ModuleView>,
}

impl Daemon {
    /// Builds the daemon from a loaded config, logging each warning and each setting not
    /// acted on once.
    pub fn from_config(loaded: &(Config, Vec<Warning>)) -> Result<Daemon, String> {
        let (config, warnings) = loaded;
        for w in warnings {
            tracing::warn!("{w}");
        }
        for u in config.unsupported_in_use() {
            tracing::warn!("{u}");
        }
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let modules = config.modules.iter().map(|m| ModuleView::new(m.clone(), root)).collect::<Result<Vec<_>, _>>()?;
        let motd = match &config.global.motd_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| format!("motd file {}: {e}", path.display()))?),
            None => None,
        };
        Ok(Daemon {
            address: config.global.address,
            port: config.global.port,
            pid_file: config.global.pid_file.clone(),
            motd,
            reverse_lookup: config.global.reverse_lookup,
            modules,
        })
    }
}
