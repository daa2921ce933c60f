//! halite's command-line tools: Salt's syntax, output formats and exit codes.
//!
//! Owns: Salt's outputters for the data the tools print ([`output`]), how a tool finds its
//! configuration ([`config`]), Salt's command-line reading ([`optparse`], [`args`]), the
//! client end of the local channel to the master ([`client`]), the local channel as the job
//! channel and runner backend of `halite-runner` ([`returns`], [`runners`]: the wait for
//! returns and the runner functions themselves live there, shared with the master), and each
//! tool's command line (`src/bin/`: `salt-key`, `salt`, `salt-run`; `salt-run state.event`, the live
//! view of the event bus, is [`event_stream`]).
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
