//! halite-rsyncd: the salt VM's rsync daemon around the sans-IO `halite-rsync` crate.
//!
//! This crate owns rsyncd.conf(5), the listening socket, each connection's process and
//! the module trees on disk: what a client may read, and where a push may write.

pub mod config;
pub mod daemon;
pub mod delta_io;
pub mod destination;
pub mod filters;
pub mod hosts;
pub mod ids;
pub mod io;
pub mod log;
pub mod module;
pub mod receiver;
pub mod secrets;
pub mod sender;
pub mod session;
pub mod tree;
