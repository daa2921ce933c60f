//! Real Salt processes for halite's end-to-end tests: salt-minion 3006, 3007 and 3008 and the
//! Python salt-master (the oracle halite is compared against), run on loopback from the venvs
//! `tests/install-minions.sh` installs.
//!
//! Owns: where those venvs are, how a test minion or master is configured (short root dirs,
//! fast acceptance retries, roles grains), launching each daemon as the leader of its own
//! process group and supervising it — stopping the whole group, on drop too, so a panicking
//! test leaves no orphan that keeps reconnecting — and waiting for the facts tests assert on
//! (a minion's `minion_master.pub`, its key pair, log lines); small filesystems a test
//! fills up ([`Tmpfs`]); and what a daemon's processes cost, read from /proc, with a soak's
//! samples of it ([`procstat`]).
//!
//! Must not: contain any Salt protocol code or know halite's internals — what it launches is
//! the real thing, and that is the point — and must never be a dependency of a production
//! crate (dev-dependencies only; it is `publish = false`).

mod config;
mod master;
mod minion;
mod process;
pub mod procstat;
mod salt;
mod tmpfs;

pub use master::PythonMaster;
pub use minion::{Minion, MinionSpec};
pub use process::{free_port, temp_root, wait_until, Group};
pub use salt::{salt_bin, venv, Endpoints, SaltVersion};
pub use tmpfs::Tmpfs;
