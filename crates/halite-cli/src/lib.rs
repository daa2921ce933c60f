//! halite's command-line tools: Salt's syntax, output formats and exit codes.
//!
//! Owns: Salt's outputters for the data the tools print ([`output`]), how a tool finds its
//! configuration ([`config`]), and each tool's command line (`src/bin/`). Today that is
//! `salt-key`; `salt` and `salt-run` join it with the jobs work and reuse the outputters.
//!
//! Must not: hold protocol, pki or targeting logic — `salt-key` edits the pki dir only through
//! halite-pki, whose atomic renames and rotation dropfile make it safe beside a running master.

pub mod config;
pub mod output;
