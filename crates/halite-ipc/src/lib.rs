//! halite's local channel: how the CLIs (`salt`, `salt-run`) talk to the running master over
//! a unix socket in `sock_dir`.
//!
//! Owns: the socket's name, the framing (a 4-byte big-endian length, then one msgpack value
//! in Salt's byte layout), a sans-IO frame decoder with a size limit, and the messages —
//! [`Request`] from a client, [`ServerMsg`] (a reply or a streamed event) from the master.
//!
//! Must not: open sockets or files. The master's listener and the CLI's client are thin
//! shells around this crate, and both sides are tested through it.
//!
//! A connection carries any number of requests, each answered by exactly one reply, in
//! order. A `publish` with `listen` set also subscribes the connection to the events of its
//! job (`salt/job/<jid>/...`), registered before the job is sent so no return can be missed;
//! those events arrive interleaved with later replies until the client hangs up.
//! Every request carries the key of the user it acts for (Salt's `cachedir/.<user>_key`,
//! readable only by that user), as Salt's own local clients prove themselves.

use halite_proto::payload::{self, map, Value, ValueExt};

/// The socket file in `sock_dir`.
pub const SOCKET_NAME: &str = "halite_local.ipc";

/// Largest frame either side accepts: far above any job's return set, far below what would
/// let a confused peer make the other allocate without bound.
pub const MAX_FRAME: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpcError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("undecodable frame: {0}")]
    Decode(String),
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// One value as a frame.
pub fn encode_frame(value: &Value) -> Vec<u8> {
    let body = payload::encode(value);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reassembles frames from a byte stream, whatever the read boundaries.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` until one is complete. After an error the stream
    /// cannot be resynchronised: the connection must be dropped.
    pub fn next_frame(&mut self) -> Result<Option<Value>, IpcError> {
        let Some(header) = self.buf.get(..4) else { return Ok(None) };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > MAX_FRAME {
            return Err(IpcError::TooLarge(len));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let value = payload::decode(&self.buf[4..4 + len]).map_err(|e| IpcError::Decode(e.to_string()));
        self.buf.drain(..4 + len);
        value.map(Some)
    }
}

/// What a client asks of the master.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Publish a job. `load` holds the fields of Salt's clear `publish` load (`tgt`,
    /// `tgt_type`, `fun`, `arg`, `ret`, `kwargs`, and optionally `jid`).
    Publish { user: String, key: String, load: Value, listen: bool },
    /// Which minions a target names, without publishing (`--preview-target`).
    Preview { user: String, key: String, load: Value },
    /// Read the job cache, as Salt's runners read a returner (`salt-run jobs.*`).
    Jobs { user: String, key: String, query: JobQuery },
    /// Which minions hold a connection to the publish port (`salt-run manage.present`).
    Connected { user: String, key: String },
    /// Put an event on the master's bus (`salt-key` announcing `salt/key`, as Salt's does).
    Fire { user: String, key: String, tag: String, data: Value },
    /// Compile a minion's pillar, or read its merged top file, from its cached grains
    /// (`salt-run pillar.show_pillar` / `pillar.show_top`).
    Pillar { user: String, key: String, query: PillarQuery },
    /// Stream every event of the master's bus from now on (`salt-run state.event`); the
    /// client filters by tag, as Salt's does.
    Watch { user: String, key: String },
    /// Read the mine (`salt-run mine.get`): `load` is the `_mine_get` load a minion would
    /// send (`id`, `tgt`, `fun`, `tgt_type`), answered the same way.
    Mine { user: String, key: String, load: Value },
}

/// What `pillar.show_pillar` and `pillar.show_top` ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct PillarQuery {
    pub minion: String,
    pub saltenv: Option<String>,
    pub pillarenv: Option<String>,
    /// Grains set on the command line, over the cached ones.
    pub grains: Value,
    /// The merged top file instead of the pillar.
    pub top: bool,
}

/// The job-cache reads runners need, named after Salt's returner interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobQuery {
    /// `get_load`: the job's publish load plus its expected `Minions`; nil if unknown.
    Load(String),
    /// `get_jid`: every return of the job, by minion id.
    Returns(String),
    /// `get_jids`: every cached job's load, by jid, oldest first.
    List,
}

impl Request {
    pub fn to_value(&self) -> Value {
        match self {
            Request::Publish { user, key, load, listen } => map([
                ("cmd", Value::from("publish")),
                ("user", Value::from(user.as_str())),
                ("key", Value::from(key.as_str())),
                ("load", load.clone()),
                ("listen", Value::Boolean(*listen)),
            ]),
            Request::Preview { user, key, load } => map([
                ("cmd", Value::from("preview")),
                ("user", Value::from(user.as_str())),
                ("key", Value::from(key.as_str())),
                ("load", load.clone()),
            ]),
            Request::Jobs { user, key, query } => {
                let (name, jid) = match query {
                    JobQuery::Load(j) => ("load", Some(j)),
                    JobQuery::Returns(j) => ("returns", Some(j)),
                    JobQuery::List => ("list", None),
                };
                map([
                    ("cmd", Value::from("jobs")),
                    ("user", Value::from(user.as_str())),
                    ("key", Value::from(key.as_str())),
                    ("query", Value::from(name)),
                    ("jid", jid.map_or(Value::Nil, |j| Value::from(j.as_str()))),
                ])
            }
            Request::Watch { user, key } => map([
                ("cmd", Value::from("watch")),
                ("user", Value::from(user.as_str())),
                ("key", Value::from(key.as_str())),
            ]),
            Request::Connected { user, key } => map([
                ("cmd", Value::from("connected")),
                ("user", Value::from(user.as_str())),
                ("key", Value::from(key.as_str())),
            ]),
            Request::Fire { user, key, tag, data } => map([
                ("cmd", Value::from("fire")),
                ("user", Value::from(user.as_str())),
                ("key", Value::from(key.as_str())),
                ("tag", Value::from(tag.as_str())),
                ("data", data.clone()),
            ]),
            Request::Pillar { user, key, query } => {
                let opt = |o: &Option<String>| o.as_deref().map_or(Value::Nil, Value::from);
                map([
                    ("cmd", Value::from("pillar")),
                    ("user", Value::from(user.as_str())),
                    ("key", Value::from(key.as_str())),
                    ("minion", Value::from(query.minion.as_str())),
                    ("saltenv", opt(&query.saltenv)),
                    ("pillarenv", opt(&query.pillarenv)),
                    ("grains", query.grains.clone()),
                    ("top", Value::Boolean(query.top)),
                ])
            }
            Request::Mine { user, key, load } => map([
                ("cmd", Value::from("mine")),
                ("user", Value::from(user.as_str())),
                ("key", Value::from(key.as_str())),
                ("load", load.clone()),
            ]),
        }
    }

    pub fn from_value(v: &Value) -> Result<Request, IpcError> {
        let text = |k: &str| {
            v.get_text(k).map(str::to_owned).ok_or_else(|| IpcError::Malformed(format!("request without text {k:?}")))
        };
        let load = || v.get("load").filter(|l| l.is_map()).cloned().ok_or(IpcError::Malformed("no load map".into()));
        match text("cmd")?.as_str() {
            "publish" => Ok(Request::Publish {
                user: text("user")?,
                key: text("key")?,
                load: load()?,
                listen: v.get("listen").and_then(Value::as_bool).unwrap_or(false),
            }),
            "preview" => Ok(Request::Preview { user: text("user")?, key: text("key")?, load: load()? }),
            "jobs" => {
                let jid = || text("jid");
                let query = match text("query")?.as_str() {
                    "load" => JobQuery::Load(jid()?),
                    "returns" => JobQuery::Returns(jid()?),
                    "list" => JobQuery::List,
                    other => return Err(IpcError::Malformed(format!("unknown job query {other:?}"))),
                };
                Ok(Request::Jobs { user: text("user")?, key: text("key")?, query })
            }
            "connected" => Ok(Request::Connected { user: text("user")?, key: text("key")? }),
            "watch" => Ok(Request::Watch { user: text("user")?, key: text("key")? }),
            "fire" => Ok(Request::Fire {
                user: text("user")?,
                key: text("key")?,
                tag: text("tag")?,
                data: v.get("data").cloned().unwrap_or(Value::Nil),
            }),
            "pillar" => {
                let opt = |k: &str| v.get_text(k).map(str::to_owned);
                let query = PillarQuery {
                    minion: text("minion")?,
                    saltenv: opt("saltenv"),
                    pillarenv: opt("pillarenv"),
                    grains: v.get("grains").filter(|g| g.is_map()).cloned().unwrap_or(Value::Map(Vec::new())),
                    top: v.get("top").and_then(Value::as_bool).unwrap_or(false),
                };
                Ok(Request::Pillar { user: text("user")?, key: text("key")?, query })
            }
            "mine" => Ok(Request::Mine { user: text("user")?, key: text("key")?, load: load()? }),
            other => Err(IpcError::Malformed(format!("unknown cmd {other:?}"))),
        }
    }

    pub fn user(&self) -> &str {
        match self {
            Request::Publish { user, .. }
            | Request::Preview { user, .. }
            | Request::Jobs { user, .. }
            | Request::Connected { user, .. }
            | Request::Fire { user, .. }
            | Request::Pillar { user, .. }
            | Request::Watch { user, .. } => user,
            Request::Mine { user, .. } => user,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Request::Publish { key, .. }
            | Request::Preview { key, .. }
            | Request::Jobs { key, .. }
            | Request::Connected { key, .. }
            | Request::Fire { key, .. }
            | Request::Pillar { key, .. }
            | Request::Watch { key, .. } => key,
            Request::Mine { key, .. } => key,
        }
    }
}

/// Why the master refused or failed a request, in categories a CLI maps to Salt's messages
/// and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Wrong or missing user key.
    Auth,
    /// The target names no accepted minion.
    NoMinions,
    /// The target itself is invalid (bad regex, malformed compound, unknown nodegroup).
    Target,
    /// The request is malformed or names something unknown (a runner function).
    BadRequest,
    /// The master could not do it (storage, publisher).
    Internal,
}

impl ErrorKind {
    const NAMES: [(ErrorKind, &'static str); 5] = [
        (ErrorKind::Auth, "auth"),
        (ErrorKind::NoMinions, "no_minions"),
        (ErrorKind::Target, "target"),
        (ErrorKind::BadRequest, "bad_request"),
        (ErrorKind::Internal, "internal"),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(k, _)| *k == self).map_or("internal", |(_, n)| n)
    }

    pub fn from_name(name: &str) -> ErrorKind {
        Self::NAMES.iter().find(|(_, n)| *n == name).map_or(ErrorKind::Internal, |(k, _)| *k)
    }
}

/// What the master sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMsg {
    /// The answer to the oldest unanswered request.
    Reply(Result<Value, (ErrorKind, String)>),
    /// An event of a job this connection listens to.
    Event { tag: String, data: Value },
}

impl ServerMsg {
    pub fn to_value(&self) -> Value {
        match self {
            ServerMsg::Reply(Ok(data)) => map([("kind", Value::from("reply")), ("data", data.clone())]),
            ServerMsg::Reply(Err((kind, message))) => map([
                ("kind", Value::from("error")),
                ("error", Value::from(kind.name())),
                ("message", Value::from(message.as_str())),
            ]),
            ServerMsg::Event { tag, data } => {
                map([("kind", Value::from("event")), ("tag", Value::from(tag.as_str())), ("data", data.clone())])
            }
        }
    }

    pub fn from_value(v: &Value) -> Result<ServerMsg, IpcError> {
        match v.get_text("kind") {
            Some("reply") => Ok(ServerMsg::Reply(Ok(v.get("data").cloned().unwrap_or(Value::Nil)))),
            Some("error") => Ok(ServerMsg::Reply(Err((
                ErrorKind::from_name(v.get_text("error").unwrap_or("")),
                v.get_text("message").unwrap_or("").to_owned(),
            )))),
            Some("event") => Ok(ServerMsg::Event {
                tag: v.get_text("tag").ok_or(IpcError::Malformed("event without tag".into()))?.to_owned(),
                data: v.get("data").cloned().unwrap_or(Value::Nil),
            }),
            other => Err(IpcError::Malformed(format!("unknown message kind {other:?}"))),
        }
    }
}

/// The tag prefix of every event of job `jid`.
pub fn job_tag_prefix(jid: &str) -> String {
    format!("salt/job/{jid}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_survives_its_encoding() {
        let (user, key) = (|| "root".to_owned(), || "k".to_owned());
        let requests = [
            Request::Publish { user: user(), key: key(), load: map([("fun", Value::from("test.ping"))]), listen: true },
            Request::Preview { user: user(), key: key(), load: map([("tgt", Value::from("*"))]) },
            Request::Jobs { user: user(), key: key(), query: JobQuery::Returns("20261129000000000000".into()) },
            Request::Jobs { user: user(), key: key(), query: JobQuery::List },
            Request::Connected { user: user(), key: key() },
            Request::Fire { user: user(), key: key(), tag: "salt/key".into(), data: map([("id", Value::from("m"))]) },
            Request::Watch { user: user(), key: key() },
        ];
        for r in requests {
            assert_eq!(Request::from_value(&r.to_value()).expect("decodes"), r);
        }
    }

    #[test]
    fn frames_survive_any_split() {
        let msgs = [
            Request::Publish {
                user: "root".into(),
                key: "k".into(),
                load: map([("tgt", Value::from("*")), ("fun", Value::from("test.ping"))]),
                listen: true,
            }
            .to_value(),
            ServerMsg::Event { tag: "salt/job/1/ret/a".into(), data: Value::from(true) }.to_value(),
        ];
        let stream: Vec<u8> = msgs.iter().flat_map(encode_frame).collect();
        for chunk in [1, 3, 7, stream.len()] {
            let mut d = FrameDecoder::default();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                d.push(piece);
                while let Some(v) = d.next_frame().unwrap() {
                    got.push(v);
                }
            }
            assert_eq!(got, msgs);
        }
        assert_eq!(Request::from_value(&msgs[0]).unwrap().user(), "root");
        let q = Request::Jobs { user: "u".into(), key: "k".into(), query: JobQuery::Load("1".into()) };
        assert_eq!(Request::from_value(&q.to_value()).unwrap(), q);
    }

    #[test]
    fn oversized_and_garbage_frames_are_errors() {
        let mut d = FrameDecoder::default();
        d.push(&u32::MAX.to_be_bytes());
        assert!(matches!(d.next_frame(), Err(IpcError::TooLarge(_))));
        let mut d = FrameDecoder::default();
        d.push(&[0, 0, 0, 1, 0xc1]);
        assert!(matches!(d.next_frame(), Err(IpcError::Decode(_))));
        assert!(Request::from_value(&map([("cmd", Value::from("x"))])).is_err());
    }

    #[test]
    fn pillar_queries_round_trip() {
        let r = Request::Pillar {
            user: "root".into(),
            key: "k".into(),
            query: PillarQuery {
                minion: "db1".into(),
                saltenv: Some("base".into()),
                pillarenv: None,
                grains: map([("roles", Value::from("db"))]),
                top: true,
            },
        };
        assert_eq!(Request::from_value(&r.to_value()).unwrap(), r);
        let mine = map([("tgt", Value::from("*")), ("fun", Value::from("network.ip_addrs"))]);
        let r = Request::Mine { user: "root".into(), key: "k".into(), load: mine };
        assert_eq!(Request::from_value(&r.to_value()).unwrap(), r);
    }

    #[test]
    fn errors_round_trip() {
        let m = ServerMsg::Reply(Err((ErrorKind::NoMinions, "none".into())));
        assert_eq!(ServerMsg::from_value(&m.to_value()).unwrap(), m);
    }
}
