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
    /// A msgpack value nested deeper than [`payload::MAX_DEPTH`] containers.
    #[error("msgpack nested deeper than the {limit}-level limit")]
    TooDeep { limit: usize },
    /// A msgpack value with more items than [`payload::Budget`] allows for its size.
    #[error("a {len}-byte msgpack value holds more than the {limit} items its decode budget allows")]
    TooManyNodes { len: usize, limit: u64 },
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

/// The longest minion id accepted: a file name in the pki dir (NAME_MAX is 255 bytes).
pub const MAX_ID_BYTES: usize = 255;

/// Salt's `valid_id`, stricter: an id names a file in the pki dir and appears in events,
/// logs and job returns, so it may not be empty, contain a path separator, NUL or any other
/// control character, start with `.` (hidden files, `.` and `..`), or exceed
/// [`MAX_ID_BYTES`]. Salt refuses only separators and NUL and what escapes the pki dir.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && !id.starts_with('.')
        && !id.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

#[cfg(test)]
mod id_tests {
    use super::{valid_id, MAX_ID_BYTES};

    #[test]
    fn ids_that_name_no_file_or_hide_one_are_refused() {
        for good in ["web1", "db1.production.wpdn", "a-b_c", "ünïcode", &"x".repeat(MAX_ID_BYTES)] {
            assert!(valid_id(good), "{good:?}");
        }
        let long = "x".repeat(MAX_ID_BYTES + 1);
        for bad in ["", ".", "..", ".hidden", "a/b", "a\\b", "a\0b", "a\nb", "a\x1b[31m", "a\u{7f}", &long] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }
}
