//! The audit trail: one JSON object per line, per connection and per forward, for the log
//! file and the journal.
//!
//! ```json
//! {"time":"2026-12-06T23:40:01Z","event":"forward","source":"192.0.2.7:51234","user":"alice",
//!  "key":"SHA256:7Sgn…","destination":"app1:22","address":"10.0.0.4:22",
//!  "bytes_in":4120,"bytes_out":3321,"duration_ms":5012,"refused":null}
//! ```
//!
//! `bytes_in` went from the client to the destination, `bytes_out` back. A refusal names
//! its reason; a record with `refused: null` is a connection that signed in or a forward
//! that was opened. Every string a peer chose (user, destination) is JSON-escaped by
//! serde_json, so no client can forge a line; the user name is cut to 64 characters.
//!
//! Pure: the caller passes the time and writes the line.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Connection,
    Forward,
    Session,
    /// How many records of a kind (in `refused`) from a source were left out by the rate
    /// limit, once its window has ended (`suppressed`).
    Suppressed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub time: String,
    pub event: Event,
    pub source: SocketAddr,
    pub user: Option<String>,
    pub key: Option<String>,
    pub destination: Option<String>,
    pub address: Option<SocketAddr>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_ms: u64,
    pub refused: Option<String>,
    /// Records like this one (same kind, same source) left out before it: refusals a peer
    /// can cause at will are rate-limited.
    #[serde(skip_serializing_if = "is_zero")]
    pub suppressed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Record {
    pub fn new(event: Event, source: SocketAddr, at: SystemTime) -> Record {
        Record {
            time: rfc3339(at),
            event,
            source,
            user: None,
            key: None,
            destination: None,
            address: None,
            bytes_in: 0,
            bytes_out: 0,
            duration_ms: 0,
            refused: None,
            suppressed: 0,
        }
    }

    pub fn user(mut self, user: Option<&str>) -> Record {
        self.user = user.map(|u| u.chars().take(64).collect());
        self
    }

    pub fn lasted(mut self, duration: Duration) -> Record {
        self.duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// The record as one line, newline included.
    pub fn line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("a record of strings and numbers serialises");
        line.push('\n');
        line
    }
}

/// `2026-12-06T23:40:01Z`, to the second.
pub fn rfc3339(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::UNIX_EPOCH).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_to_the_second() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1_796_083_200)), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_399)), "2000-02-28T23:59:59Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_868_800)), "2000-03-01T00:00:00Z");
    }

    #[test]
    fn a_hostile_user_name_stays_on_one_line() {
        let record = Record::new(Event::Connection, "192.0.2.7:5".parse().unwrap(), UNIX_EPOCH)
            .user(Some("x\n{\"forged\":1}"))
            .lasted(Duration::from_millis(1500));
        let line = record.line();
        assert_eq!(line.matches('\n').count(), 1);
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["user"], "x\n{\"forged\":1}");
        assert_eq!(back["duration_ms"], 1500);
        assert_eq!(back["event"], "connection");
    }
}
