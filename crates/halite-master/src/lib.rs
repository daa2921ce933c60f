//! The halite master: what a Salt master does with each request and publish, behind the thin
//! async shell of `main.rs`.
//!
//! Owns: the request path (`dispatch.rs`: `minimum_auth_version`, opening a request, proving
//! who sent it, the typed outcome of each handler) and the command table (`command.rs`:
//! `_pillar`, `_minion_event`, `_return`, the file server commands of `files.rs`, the peer
//! commands of `peer.rs`, the mine commands of `mine.rs`; clear `_auth` and `publish`), runners in the master (`runner.rs`), the reactor's runtime
//! (`reactor.rs`), the shared AES key and its rotation (`rotation.rs`), publish serials, the
//! in-process event bus, the local-client user keys, jids, and the files sibling daemons
//! read: the address book of the accepted minions for halite-dns (`address_book.rs`, which
//! keeps both files) and the roster for halite-jumpbox's VM list (`roster.rs`).
//!
//! Must not: parse or seal wire formats itself (halite-proto does), read or write key files
//! directly (halite-pki does), own sockets (halite-zmq does) or block a request worker on
//! the network. A handler is a synchronous function from request bytes to reply bytes, so it
//! can be driven by the daemon, a benchmark or a test alike; the exceptions wait on other
//! minions and so answer later from threads of their own: a `_return` (after the group
//! commit) and `minion_publish`/`minion_runner` (after the job's returns). The reactor has
//! its own threads too.

pub mod address_book;
pub mod aes;
pub mod budget;
pub mod clear;
pub mod command;
mod dispatch;
pub mod event_pub;
pub mod events;
pub mod files;
pub mod jid;
pub mod jobs;
pub mod local;
pub mod master;
pub mod mine;
pub mod peer;
pub mod presence;
pub mod reactor;
pub mod roster;
pub mod rotation;
pub mod runner;
pub mod workers;
