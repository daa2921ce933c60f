//! halite's command-line tools: Salt's syntax, output formats and exit codes.
//!
//! Owns: Salt's outputters for the data the tools print ([`output`]), how a tool finds its
//! configuration ([`config`]), Salt's command-line reading ([`optparse`], [`args`]), the
//! client end of the local channel to the master ([`client`]), the wait for a job's returns
//! ([`returns`]), the runner functions `salt-run` has ([`runners`]) and its live view of the event bus
//! ([`event_stream`]), and each tool's command
//! line (`src/bin/`: `salt-key`, `salt`, `salt-run`).
//!
//! Must not: hold protocol, pki or targeting logic — `salt-key` edits the pki dir only through
//! halite-pki, whose atomic renames and rotation dropfile make it safe beside a running master;
//! `salt` asks the master, which owns targeting and the job cache.

pub mod args;
pub mod batch;
pub mod client;
pub mod config;
pub mod display;
pub mod event_stream;
pub mod optparse;
pub mod output;
pub mod returns;
pub mod runners;
