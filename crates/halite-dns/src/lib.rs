//! The salt VM's DNS server, without sockets: zone files read into zones, the lookup of
//! RFC 1034 4.3.2 (with wildcards, RFC 4592, and negative answers, RFC 2308), and the
//! reply bytes built for a query's bytes.
//!
//! This crate owns what a DNS message means and what the answer to one is. It must not
//! open sockets, read files, look at clocks or spawn tasks: the `halite-dnsd` daemon does
//! that, hands this crate bytes and `now`, and sends what it gets back. Messages are read
//! and written with NLnet Labs' `domain` (why: docs/decisions.md, "The DNS wire library").

pub mod cache;
pub mod config;
pub mod forward;
pub mod lookup;
pub mod memo;
pub mod minions;
pub mod respond;
pub mod rrl;
pub mod transfer;
pub mod zone;

pub use zone::{Zone, ZoneError};
