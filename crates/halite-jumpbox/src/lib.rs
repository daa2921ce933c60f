//! halite-jumpbox: the salt VM as the site's SSH jump host, for the stock OpenSSH client.
//!
//! Owns the decisions of the daemon, as pure code: its config ([`config`]), which forwards
//! a signed-in key may open and to which addresses ([`forward`]), the per-source throttle of
//! failed sign-ins ([`throttle`]), which user certificates sign in ([`certs`]), the audit
//! trail's lines ([`audit`]) and what a session channel prints ([`vms`]). The `authorized_keys` format is halite-authkeys'.
//!
//! Must not: open sockets or files, look at the clock, or resolve names. The binary
//! (`src/main.rs` and `src/daemon/`) does that around these modules, on russh.
//!
//! It forwards and never opens a shell: `direct-tcpip` channels (`ssh -J`, `-W`, `-L`, `-D`)
//! to the networks in `forward_to`; a session channel prints the banner and the VM list and
//! closes; everything else (`-R`, agent and X11 forwarding, subsystems, ptys) is refused.

pub mod audit;
pub mod certs;
pub mod config;
pub mod forward;
pub mod throttle;
pub mod vms;
