//! Real Salt processes for end-to-end tests: salt-minion 3006, 3007 and 3008 and the Python
//! salt-master, from the venvs `tests/install-minions.sh` installs.
//!
//! Owns: where those venvs are, how a test minion or master is configured (short root dirs,
//! fast acceptance retries, roles grains), starting each in its own process group and stopping
//! the whole group (on drop too, so a failing test leaves no orphans that keep reconnecting),
//! and waiting on the facts a test needs (a minion's `minion_master.pub`, log lines).
//!
//! Must not: speak Salt's protocol or know halite's internals — what it launches is the real
//! thing — and must never be a dependency of a production crate.

mod process;
mod salt;

pub use process::{free_port, wait_until, Group};
pub use salt::{salt_bin, venv, Endpoints, Minion, MinionSpec, PythonMaster, SaltVersion};
