//! The request channel (port 4506): envelopes in, replies out.
//!
//! A request is `mp({"enc", "load", "version", ["id", "enc_algo", "sig_algo"]})`. Clear loads
//! are dicts (`_auth`, the CLI's `publish`); AES loads are Crypticle blobs sealed with the
//! master's shared key (v2, 3006 minions) or the minion's session key (v3, 3007 and later).
//!
//! Opening is split in two so the caller does the lookups: [`parse`] names the key an AES
//! request needs, the caller fetches it, and [`open`] decrypts and applies Salt's checks.

use crate::crypticle::Crypticle;
use crate::payload::{self, Value, ValueExt};
use crate::rsa::PublicKey;
use crate::{valid_id, ProtoError};

/// Why a request was refused, with the exact string Salt answers in each case.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// Anything Salt answers with `"bad load"`.
    #[error("bad load: {0}")]
    BadLoad(String),
    #[error("payload and load must be a dict")]
    NotADict,
    #[error("bad load: id contains a null byte")]
    NulInId,
}

impl Refusal {
    /// The reply body Salt sends: a bare string, unencrypted.
    pub fn reply_text(&self) -> &'static str {
        match self {
            Refusal::BadLoad(_) => "bad load",
            Refusal::NotADict => "payload and load must be a dict",
            Refusal::NulInId => "bad load: id contains a null byte",
        }
    }

    pub fn reply(&self) -> Vec<u8> {
        payload::encode(&Value::from(self.reply_text()))
    }
}

/// A request after envelope parsing, before any decryption.
#[derive(Debug)]
pub enum Request {
    /// `enc: clear`: `_auth` from minions, `publish` and friends from the CLI.
    Clear { load: Value, version: i64 },
    /// `enc: aes`: needs [`KeyNeeded`] to open.
    Aes(SealedRequest),
}

#[derive(Debug)]
pub struct SealedRequest {
    pub version: i64,
    /// The envelope's `id` (v3 only).
    pub id: Option<String>,
    pub enc_algo: Option<String>,
    pub sig_algo: Option<String>,
    blob: Vec<u8>,
}

/// Which key opens a sealed request.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyNeeded<'a> {
    /// v2: the master's shared AES key.
    SharedAes,
    /// v3: the session key of this minion (already checked with `valid_id`).
    Session(&'a str),
}

impl SealedRequest {
    pub fn key_needed(&self) -> Result<KeyNeeded<'_>, Refusal> {
        if self.version > 2 {
            match self.id.as_deref() {
                Some(id) if valid_id(id) => Ok(KeyNeeded::Session(id)),
                Some(id) => Err(Refusal::BadLoad(format!("invalid minion id {id:?} in envelope"))),
                None => Err(Refusal::BadLoad("v3 envelope without id".into())),
            }
        } else {
            Ok(KeyNeeded::SharedAes)
        }
    }

    /// Whether replies and `_pillar` answers must be signed (Salt's `sign_messages`).
    pub fn signs_replies(&self) -> bool {
        self.version > 1
    }
}

impl Request {
    /// The envelope's protocol `version` (0 when absent), which `minimum_auth_version`
    /// checks before anything is decrypted.
    pub fn version(&self) -> i64 {
        match self {
            Request::Clear { version, .. } => *version,
            Request::Aes(sealed) => sealed.version,
        }
    }
}

/// Parses a request body. Never panics; a refusal carries Salt's reply string.
pub fn parse(body: &[u8]) -> Result<Request, Refusal> {
    // Nothing has authenticated the sender yet: the envelope's own, smaller budget.
    let env = payload::decode_with(body, &payload::Budget::ENVELOPE).map_err(|e| Refusal::BadLoad(e.to_string()))?;
    if !matches!(env, Value::Map(_)) {
        return Err(Refusal::BadLoad("envelope is not a dict".into()));
    }
    let (Some(enc), Some(load)) = (env.get("enc"), env.get("load")) else {
        return Err(Refusal::BadLoad("envelope lacks enc or load".into()));
    };
    let version = env.get("version").map_or(0, envelope_version);
    match enc.as_text() {
        Some("clear") => {
            if !matches!(load, Value::Map(_)) {
                return Err(Refusal::NotADict);
            }
            check_load_id(load)?;
            Ok(Request::Clear { load: load.clone(), version })
        }
        Some("aes") => {
            let blob =
                load.as_bytes_any().ok_or_else(|| Refusal::BadLoad("aes load is not a byte string".into()))?.to_vec();
            let text = |k: &str| env.get_text(k).map(str::to_owned);
            Ok(Request::Aes(SealedRequest {
                version,
                id: text("id"),
                enc_algo: text("enc_algo"),
                sig_algo: text("sig_algo"),
                blob,
            }))
        }
        _ => Err(Refusal::BadLoad("unknown enc".into())),
    }
}

/// Salt's `int(payload.get("version", 0))`: an integer, a float (truncated) or decimal
/// text; anything else counts as 0, the oldest version, which `minimum_auth_version` refuses.
fn envelope_version(v: &Value) -> i64 {
    match v {
        Value::F64(f) if f.is_finite() => *f as i64,
        Value::F32(f) if f.is_finite() => *f as i64,
        other => other.as_i64().or_else(|| other.as_text().and_then(|t| t.trim().parse().ok())).unwrap_or(0),
    }
}

fn check_load_id(load: &Value) -> Result<(), Refusal> {
    match load.get("id") {
        None => Ok(()),
        Some(id) => match id.as_bytes_any() {
            Some(b) if b.contains(&0) => Err(Refusal::NulInId),
            Some(_) => Ok(()),
            None => Err(Refusal::BadLoad("id is not a string".into())),
        },
    }
}

/// A decrypted, checked AES request.
#[derive(Debug)]
pub struct OpenedRequest {
    /// The load with `nonce` and `tok` removed, as Salt hands it to AESFuncs.
    pub load: Value,
    /// The nonce to echo in the reply (v2 and later).
    pub nonce: Option<String>,
    /// The X9.31 `tok`; [`verify_tok`] it against the minion's accepted key before dispatch.
    pub tok: Option<Vec<u8>>,
    pub version: i64,
}

impl OpenedRequest {
    pub fn cmd(&self) -> Option<&str> {
        self.load.get_text("cmd")
    }

    /// The minion id the load claims (for v3, already checked against the envelope).
    pub fn id(&self) -> Option<&str> {
        self.load.get_text("id")
    }

    /// Whether the caller must check `tok` before dispatch: whenever the load names a minion
    /// id, whatever the version. Salt checks a v2 `tok` only "if present", which let any
    /// holder of the shared AES key act as any minion (CVE-2024-38822).
    pub fn tok_required(&self) -> bool {
        self.id().is_some()
    }
}

/// Decrypts a sealed request with the key [`SealedRequest::key_needed`] named, then applies
/// Salt's checks: load is a dict, no NUL in `id`, and for v3 the load's `id` equals the
/// envelope's.
pub fn open(sealed: SealedRequest, key: &Crypticle) -> Result<OpenedRequest, Refusal> {
    let mut load = key.loads(&sealed.blob).map_err(|e| match e {
        ProtoError::Authentication => Refusal::BadLoad("request did not decrypt with the expected key".into()),
        other => Refusal::BadLoad(other.to_string()),
    })?;
    if !matches!(load, Value::Map(_)) {
        return Err(Refusal::NotADict);
    }
    check_load_id(&load)?;
    let nonce = if sealed.version > 1 {
        payload::remove(&mut load, "nonce").and_then(|n| n.as_text().map(str::to_owned))
    } else {
        None
    };
    if sealed.version > 2 {
        let load_id = load.get_text("id");
        if load_id.is_none() || load_id != sealed.id.as_deref() {
            return Err(Refusal::BadLoad(format!("request id mismatch: envelope {:?}, load {:?}", sealed.id, load_id)));
        }
    }
    let tok = payload::remove(&mut load, "tok").and_then(|t| t.as_bytes_any().map(<[u8]>::to_vec));
    let opened = OpenedRequest { load, nonce, tok, version: sealed.version };
    if opened.version > 2 && opened.tok.is_none() {
        return Err(Refusal::BadLoad("v3 request without tok".into()));
    }
    Ok(opened)
}

/// `tok` is X9.31(minion.pem, b"salt"): it proves the sender holds the accepted key.
pub fn verify_tok(minion_key: &PublicKey, tok: &[u8]) -> bool {
    matches!(minion_key.decrypt_x931(tok), Ok(plain) if plain == b"salt")
}

/// The reply to an opened request: `mp(Crypticle.dumps(ret, nonce))`, sealed with the key
/// that opened it.
pub fn seal_reply(key: &Crypticle, ret: &Value, nonce: Option<&str>) -> Result<Vec<u8>, ProtoError> {
    let blob = key.dumps(ret, nonce)?;
    Ok(payload::encode(&payload::blob(blob)))
}

/// A clear reply: `mp(value)`, as Salt sends `send_clear` answers.
pub fn clear_reply(value: &Value) -> Vec<u8> {
    payload::encode(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::map;

    fn clear(version: Value) -> Vec<u8> {
        payload::encode(&map([
            ("enc", Value::from("clear")),
            ("load", map([("cmd", Value::from("_auth"))])),
            ("version", version),
        ]))
    }

    #[test]
    fn versions_read_as_salts_int_reads_them() {
        let version = |v: Value| parse(&clear(v)).expect("parses").version();
        assert_eq!(version(Value::from(3)), 3);
        assert_eq!(version(Value::from("3")), 3);
        assert_eq!(version(Value::F64(3.0)), 3);
        assert_eq!(version(Value::from("three")), 0);
        assert_eq!(version(Value::Nil), 0);
        let none = payload::encode(&map([("enc", Value::from("clear")), ("load", map([("cmd", Value::from("x"))]))]));
        assert_eq!(parse(&none).expect("parses").version(), 0);
    }

    #[test]
    fn a_load_naming_an_id_needs_a_tok_at_every_version() {
        let key = Crypticle::generate().expect("key");
        for (version, load, needs) in [
            (2, map([("cmd", Value::from("_file_list"))]), false),
            (2, map([("cmd", Value::from("_return")), ("id", Value::from("web1"))]), true),
        ] {
            let blob = key.dumps(&load, None).expect("seal");
            let body = payload::encode(&map([
                ("enc", Value::from("aes")),
                ("load", payload::blob(blob)),
                ("version", Value::from(version)),
            ]));
            let Ok(Request::Aes(sealed)) = parse(&body) else { panic!("an aes request") };
            let opened = open(sealed, &key).expect("opens");
            assert_eq!(opened.tok_required(), needs, "{load}");
        }
    }
}
