//! The daemon handshake, before any file moves: the `@RSYNCD:` greetings and the protocol
//! version both sides settle on, the module line, the challenge–response against the
//! secrets file, and the argument list the client sends once the module says OK.
//!
//! Lines are read with rsync's limits (a line longer than the reference's buffer is an
//! error, not a reallocation) and every answer is the reference's text, so a stock client
//! prints what it would print talking to `rsync --daemon`.

use crate::wire::WireError;
use base64::Engine;
use md5::Digest;

/// The newest protocol this crate speaks (rsync 3.2 to 3.5 speak 32 too).
pub const PROTOCOL_VERSION: i32 = 32;
/// The oldest client protocol accepted: rsync 3.0 speaks 30.
pub const MIN_PROTOCOL_VERSION: i32 = 30;

/// Longest handshake line the reference reads into its buffer (clientserver.c `line`).
pub const MAX_LINE: usize = 1024;
/// Cap on daemon arguments (the reference's "too many daemon arguments"): a client
/// cannot grow the argument list without bound.
pub const MAX_ARGS: usize = 1024;
/// Longest single argument: the line buffer of the reference.
pub const MAX_ARG: usize = 4096 + 1024;

/// The digests a daemon offers for its challenge–response, strongest first: the order
/// rsync 3.2.7+ sends and negotiates by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDigest {
    Sha512,
    Sha256,
    Sha1,
    Md5,
    Md4,
}

impl AuthDigest {
    pub const ALL: [AuthDigest; 5] =
        [AuthDigest::Sha512, AuthDigest::Sha256, AuthDigest::Sha1, AuthDigest::Md5, AuthDigest::Md4];

    /// Strength rank: 0 is the strongest.
    pub fn rank(self) -> usize {
        AuthDigest::ALL.iter().position(|d| *d == self).unwrap_or(usize::MAX)
    }

    pub fn name(self) -> &'static str {
        match self {
            AuthDigest::Sha512 => "sha512",
            AuthDigest::Sha256 => "sha256",
            AuthDigest::Sha1 => "sha1",
            AuthDigest::Md5 => "md5",
            AuthDigest::Md4 => "md4",
        }
    }

    pub fn by_name(name: &str) -> Option<AuthDigest> {
        AuthDigest::ALL.into_iter().find(|d| d.name().eq_ignore_ascii_case(name))
    }

    /// The digest of the concatenation of `parts`, base64 without padding (the form the
    /// reference's `base64_encode(..., 0)` gives).
    pub fn digest_b64(self, parts: &[&[u8]]) -> String {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        let raw = match self {
            AuthDigest::Sha512 => run::<sha2::Sha512>(parts),
            AuthDigest::Sha256 => run::<sha2::Sha256>(parts),
            AuthDigest::Sha1 => run::<sha1::Sha1>(parts),
            AuthDigest::Md5 => run::<md5::Md5>(parts),
            AuthDigest::Md4 => run::<md4::Md4>(parts),
        };
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw)
    }
}

/// The daemon's greeting line, newline included.
pub fn server_greeting() -> String {
    let names: Vec<&str> = AuthDigest::ALL.iter().map(|d| d.name()).collect();
    format!("@RSYNCD: {}.0 {}\n", PROTOCOL_VERSION, names.join(" "))
}

/// What the client's greeting said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientGreeting {
    /// The protocol both sides will speak.
    pub protocol: i32,
    /// The client's own protocol, for the log.
    pub remote_protocol: i32,
    /// The digest the challenge–response will use.
    pub auth: AuthDigest,
}

/// Why a handshake stopped; `reply()` is the line the reference sends the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("protocol startup error")]
    Startup,
    #[error("client omitted the subprotocol value: {0}")]
    NoSubprotocol(String),
    #[error("client omitted the digest name list: {0}")]
    NoDigestList(String),
    #[error("client does not support one of our daemon-auth checksums")]
    NoCommonDigest,
    #[error("client protocol {0} is older than {MIN_PROTOCOL_VERSION}")]
    TooOld(i32),
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("too many daemon arguments")]
    TooManyArgs,
}

impl HandshakeError {
    /// The `@ERROR` line (newline included) the client is sent, worded as the reference.
    pub fn reply(&self) -> String {
        match self {
            HandshakeError::Startup | HandshakeError::LineTooLong => "@ERROR: protocol startup error\n".into(),
            HandshakeError::NoSubprotocol(l) => {
                format!("@ERROR: your client omitted the subprotocol value: {l}\n")
            }
            HandshakeError::NoDigestList(l) => {
                format!("@ERROR: your client omitted the digest name list: {l}\n")
            }
            HandshakeError::NoCommonDigest => {
                let names: Vec<&str> = AuthDigest::ALL.iter().map(|d| d.name()).collect();
                format!("@ERROR: your client does not support one of our daemon-auth checksums: {}\n", names.join(" "))
            }
            HandshakeError::TooOld(p) => format!(
                "@ERROR: protocol version mismatch: client {p}, this daemon needs {MIN_PROTOCOL_VERSION} or newer\n"
            ),
            HandshakeError::TooManyArgs => "@ERROR: too many daemon arguments\n".into(),
        }
    }
}

/// Reads the client's `@RSYNCD: <proto>.<sub> [digests]` line (without its newline) and
/// settles the protocol and the auth digest as exchange_protocols() and
/// negotiate_daemon_auth() do.
pub fn parse_client_greeting(line: &str) -> Result<ClientGreeting, HandshakeError> {
    let rest = line.strip_prefix("@RSYNCD: ").ok_or(HandshakeError::Startup)?;
    let (version, digests) = match rest.split_once(' ') {
        Some((v, d)) => (v, Some(d)),
        None => (rest, None),
    };
    let (major, sub) = match version.split_once('.') {
        Some((m, s)) => (m, Some(s)),
        None => (version, None),
    };
    let remote: i32 = leading_int(major).ok_or(HandshakeError::Startup)?;
    let remote_sub: i32 = match sub.and_then(leading_int) {
        Some(s) => s,
        None if remote >= 30 => return Err(HandshakeError::NoSubprotocol(line.into())),
        None => 0,
    };
    if digests.is_none() && remote > 31 {
        return Err(HandshakeError::NoDigestList(line.into()));
    }
    // Our subprotocol is 0 (a release): a newer client, or the same one in
    // pre-release, steps down one.
    let mut protocol = PROTOCOL_VERSION;
    if protocol > remote {
        protocol = remote;
        if remote_sub != 0 {
            protocol -= 1;
        }
    } else if protocol == remote && remote_sub != 0 {
        protocol -= 1;
    }
    if protocol < MIN_PROTOCOL_VERSION {
        return Err(HandshakeError::TooOld(remote));
    }
    let auth = match digests {
        Some(list) => choose_auth(list).ok_or(HandshakeError::NoCommonDigest)?,
        None => AuthDigest::Md5,
    };
    Ok(ClientGreeting { protocol, remote_protocol: remote, auth })
}

/// Like C's atoi on a prefix: digits up to the first non-digit.
fn leading_int(s: &str) -> Option<i32> {
    let digits: &str = &s[..s.bytes().take_while(u8::is_ascii_digit).count()];
    digits.parse().ok()
}

/// Our most preferred digest among the client's names (each side picks by its own order,
/// and both orders are the reference's, so both sides agree).
fn choose_auth(client_list: &str) -> Option<AuthDigest> {
    client_list.split(' ').filter_map(AuthDigest::by_name).min_by_key(|d| AuthDigest::ALL.iter().position(|a| a == d))
}

/// The challenge sent with `@RSYNCD: AUTHREQD`: the digest of 32 random bytes the daemon
/// supplies, so it is as unpredictable as the caller's randomness.
pub fn challenge(digest: AuthDigest, random: &[u8; 32]) -> String {
    digest.digest_b64(&[random])
}

/// Checks the client's `user response` line against each password the secrets file
/// allows for `user` (the reference accepts any of them), in constant time per password.
/// Returns the user name when one verifies.
pub fn check_response(
    digest: AuthDigest,
    challenge: &str,
    response: &str,
    passwords_for: impl Fn(&str) -> Vec<Vec<u8>>,
) -> Option<String> {
    let (user, answer) = response.split_once(' ')?;
    if user.is_empty() {
        return None;
    }
    let b = answer.trim_end().as_bytes();
    let mut ok = false;
    for password in passwords_for(user) {
        let expected = digest.digest_b64(&[&password, challenge.as_bytes()]);
        let a = expected.as_bytes();
        if a.len() == b.len() {
            ok |= a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        }
    }
    ok.then(|| user.to_string())
}

/// The client's argument list, each argument as sent (not necessarily UTF-8).
pub type Args = Vec<Vec<u8>>;

/// Collects the arguments the client sends after `@RSYNCD: OK`: NUL-terminated from
/// protocol 30 on (newline before), ending with an empty argument.
#[derive(Debug, Default)]
pub struct ArgsReader {
    args: Vec<Vec<u8>>,
    current: Vec<u8>,
    nul_terminated: bool,
}

impl ArgsReader {
    pub fn new(protocol: i32) -> Self {
        ArgsReader { nul_terminated: protocol >= 30, ..Default::default() }
    }

    /// Feeds received bytes; returns how many were consumed and, once the empty
    /// argument arrived, the list. Bytes after the list are left for the caller.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(usize, Option<Args>), HandshakeError> {
        let end = if self.nul_terminated { 0u8 } else { b'\n' };
        for (i, &b) in bytes.iter().enumerate() {
            if b == end {
                let mut arg = std::mem::take(&mut self.current);
                if !self.nul_terminated && arg.last() == Some(&b'\r') {
                    arg.pop();
                }
                if arg.is_empty() {
                    return Ok((i + 1, Some(std::mem::take(&mut self.args))));
                }
                if self.args.len() >= MAX_ARGS {
                    return Err(HandshakeError::TooManyArgs);
                }
                self.args.push(arg);
            } else {
                if self.current.len() >= MAX_ARG {
                    return Err(HandshakeError::LineTooLong);
                }
                self.current.push(b);
            }
        }
        Ok((bytes.len(), None))
    }
}

/// A handshake line (module name, auth response) without its newline and carriage
/// returns, or `None` when the newline has not arrived; errors past [`MAX_LINE`].
pub fn take_line(buf: &[u8]) -> Result<Option<(String, usize)>, WireError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(n) if n < MAX_LINE => {
            let text: Vec<u8> = buf[..n].iter().copied().filter(|&b| b != b'\r').collect();
            Ok(Some((String::from_utf8_lossy(&text).into_owned(), n + 1)))
        }
        Some(_) => Err(WireError::Invalid("handshake line too long".into())),
        None if buf.len() >= MAX_LINE => Err(WireError::Invalid("handshake line too long".into())),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_settle_the_protocol_and_digest_like_the_reference() {
        assert_eq!(server_greeting(), "@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4\n");
        let g = parse_client_greeting("@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4").unwrap();
        assert_eq!((g.protocol, g.auth), (32, AuthDigest::Sha512));
        // rsync 3.1: protocol 31, no digest list, md5.
        let g = parse_client_greeting("@RSYNCD: 31.0").unwrap();
        assert_eq!((g.protocol, g.auth), (31, AuthDigest::Md5));
        // A newer client speaks our protocol.
        assert_eq!(parse_client_greeting("@RSYNCD: 33.0 md5").unwrap().protocol, 32);
        // A client that only knows md4 gets md4.
        assert_eq!(parse_client_greeting("@RSYNCD: 32.0 md4").unwrap().auth, AuthDigest::Md4);
        assert_eq!(parse_client_greeting("@RSYNCD: 31"), Err(HandshakeError::NoSubprotocol("@RSYNCD: 31".into())));
        assert!(matches!(parse_client_greeting("@RSYNCD: 32.0"), Err(HandshakeError::NoDigestList(_))));
        assert_eq!(parse_client_greeting("@RSYNCD: 32.0 blake9"), Err(HandshakeError::NoCommonDigest));
        assert_eq!(parse_client_greeting("HELLO"), Err(HandshakeError::Startup));
        assert_eq!(parse_client_greeting("@RSYNCD: 29.0"), Err(HandshakeError::TooOld(29)));
    }

    #[test]
    fn responses_verify_only_with_the_right_password() {
        let challenge = challenge(AuthDigest::Md5, &[7u8; 32]);
        let answer = AuthDigest::Md5.digest_b64(&[b"secret", challenge.as_bytes()]);
        let lookup = |u: &str| if u == "deploy" { vec![b"other".to_vec(), b"secret".to_vec()] } else { vec![] };
        assert_eq!(
            check_response(AuthDigest::Md5, &challenge, &format!("deploy {answer}"), lookup),
            Some("deploy".into())
        );
        assert_eq!(check_response(AuthDigest::Md5, &challenge, &format!("other {answer}"), lookup), None);
        let wrong = AuthDigest::Md5.digest_b64(&[b"guess", challenge.as_bytes()]);
        assert_eq!(check_response(AuthDigest::Md5, &challenge, &format!("deploy {wrong}"), lookup), None);
    }

    #[test]
    fn arguments_end_at_the_empty_one_and_are_bounded() {
        let mut r = ArgsReader::new(32);
        let wire = b"--server\0--sender\0-vlogDtpre.iLsfxCIvu\0.\0code/\0\0rest";
        let (used, args) = r.feed(&wire[..10]).unwrap();
        assert_eq!((used, args), (10, None));
        let (used, args) = r.feed(&wire[10..]).unwrap();
        let args = args.unwrap();
        assert_eq!(args.len(), 5);
        assert_eq!(&wire[10 + used..], b"rest");
        let mut r = ArgsReader::new(32);
        let flood = vec![b'a'; MAX_ARG + 1];
        assert_eq!(r.feed(&flood), Err(HandshakeError::LineTooLong));
        let mut r = ArgsReader::new(32);
        let many = b"x\0".repeat(MAX_ARGS + 1);
        assert_eq!(r.feed(&many), Err(HandshakeError::TooManyArgs));
    }
}
