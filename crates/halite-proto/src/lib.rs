//! Salt's master/minion wire protocol, as a sans-IO library.
//!
//! Owns: Salt's msgpack rules ([`payload`]), the Crypticle symmetric envelope ([`crypticle`]),
//! RSA as Salt uses it ([`rsa`]), the request/reply envelopes of the request channel
//! ([`request`]), the `_auth` exchange ([`auth`]), the pillar `send_private` reply ([`pillar`])
//! and publish frames ([`publish`]).
//!
//! Must not: open sockets, touch the filesystem, read clocks it is not handed, or know about
//! tokio. Keys, AES secrets and policy decisions come in as arguments; bytes come out. Every
//! decoder here takes untrusted input and must answer with a [`ProtoError`], never a panic.

pub mod auth;
pub mod crypticle;
pub mod minion;
pub mod payload;
pub mod pillar;
pub mod publish;
pub mod request;
pub mod rsa;

pub use payload::Value;

/// Everything that can go wrong decoding or sealing a Salt message.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("malformed msgpack: {0}")]
    Msgpack(String),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("message authentication failed (HMAC mismatch or bad padding)")]
    Authentication,
    #[error("crypto error: {0}")]
    Crypto(String),
    #[error("key error: {0}")]
    Key(String),
    #[error("unsupported {kind} {name:?}")]
    UnsupportedAlgo { kind: &'static str, name: String },
}

/// Salt's `valid_id`: an id names a file in the pki dir, so it may not contain a path
/// separator or NUL, and may not be empty, `.` or `..`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && !id.contains(['/', '\\', '\0'])
}
