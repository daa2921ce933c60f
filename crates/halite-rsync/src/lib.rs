//! The rsync protocol (versions 29 to 32), without sockets or files.
//!
//! This crate owns what the bytes an rsync client sends mean and the bytes a daemon answers
//! with: the `@RSYNCD:` handshake and its challenge–response, the multiplexed frames, the
//! server's argument list parsed into typed options, the file list, block checksums, the
//! rolling-checksum delta and the client's filter rules. It must not open sockets or
//! files, read clocks or spawn threads: `halite-rsyncd` does that and hands this crate bytes.
//! Every length and count read from the wire is bounded here, before memory is spent on it.

pub mod checksum;
pub mod compress;
pub mod delta;
pub mod filter;
pub mod flist;
pub mod handshake;
pub mod hlink;
pub mod inclists;
pub mod links;
pub mod logformat;
pub mod mux;
pub mod negotiate;
pub mod options;
pub mod token;
pub mod wildmatch;
pub mod wire;
