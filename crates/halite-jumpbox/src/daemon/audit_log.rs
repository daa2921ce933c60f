//! Where audit lines go: the configured file (opened for appending, each line one write so
//! lines of concurrent connections never interleave) and the journal, through tracing.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use halite_jumpbox::audit::{Event, Record};
use halite_ratelog::Limiter;
use tracing::{error, info};

pub struct AuditLog {
    file: Option<Mutex<File>>,
    /// Budgets for the refusals a peer can cause as fast as it can connect.
    limiter: Limiter,
}

impl AuditLog {
    pub fn open(path: Option<&Path>) -> anyhow::Result<AuditLog> {
        let file = match path {
            None => None,
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                Some(Mutex::new(
                    OpenOptions::new()
                        .append(true)
                        .create(true)
                        .mode(0o640)
                        .open(path)
                        .map_err(|e| anyhow::anyhow!("audit_log {}: {e}", path.display()))?,
                ))
            }
        };
        Ok(AuditLog { file, limiter: Limiter::new(20, Duration::from_secs(60), 4096) })
    }

    /// Writes a record a peer can cause again at will (a refusal, a session's listing), at
    /// most 20 a minute per kind and source; the next one admitted says how many were left
    /// out, and [`AuditLog::flush`] writes the count of a budget that ended with some.
    pub fn limited(&self, kind: &'static str, source: IpAddr, record: Record) {
        if let Some(suppressed) = self.limiter.admit(kind, Some(source)) {
            self.write(&Record { suppressed, ..record });
        }
    }

    /// Writes a line for each rate-limit budget that ended with records left out, so a
    /// source that stopped still has its count written. Called every second.
    pub fn flush(&self) {
        for gone in self.limiter.expired(Instant::now()) {
            let source = SocketAddr::new(gone.peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), 0);
            let mut record = Record::new(Event::Suppressed, source, SystemTime::now());
            record.refused = Some(gone.kind.to_owned());
            record.suppressed = gone.count;
            self.write(&record);
        }
    }

    pub fn write(&self, record: &Record) {
        let line = record.line();
        info!(target: "audit", "{}", line.trim_end());
        if let Some(file) = &self.file {
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = file.write_all(line.as_bytes()) {
                // A full disk: the journal still has the line; say so once per failure.
                error!("audit log write failed ({e}); the record is in the journal only");
            }
        }
    }
}
