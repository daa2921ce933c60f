//! The minion's side of the protocol, as salt-minion 3006.0–3006.11 and 3007.0–3007.3 (request
//! version 2) and every later release
//! (version 3) speak it: the `_auth` request and the reading of its reply, sealing requests
//! and opening their replies, and opening publishes. For load generators (`halite-swarm`) and
//! tests that must behave on the wire like real minions; the master never uses it.

use crate::crypticle::Crypticle;
use crate::payload::{self, map, Value, ValueExt};
use crate::rsa::{EncAlgo, PrivateKey, PublicKey, SigAlgo};
use crate::ProtoError;

/// The request envelope version a minion release sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReqVersion {
    /// salt-minion 3006.0–3006.11 and 3007.0–3007.3: loads sealed with the shared AES key.
    V2,
    /// salt-minion 3007/3008: loads sealed with the minion's session key, with `tok`, `ts`, `id`.
    V3,
}

impl ReqVersion {
    pub fn number(self) -> i64 {
        match self {
            ReqVersion::V2 => 2,
            ReqVersion::V3 => 3,
        }
    }
}

/// A fresh request nonce: 32 hex digits, as `uuid4().hex`.
pub fn nonce() -> Result<String, ProtoError> {
    let mut b = [0u8; 16];
    openssl::rand::rand_bytes(&mut b).map_err(|e| ProtoError::Crypto(e.to_string()))?;
    Ok(hex::encode(b))
}

/// The clear `_auth` request body. Every release sends auth version 3 with OAEP-SHA1 and
/// PKCS1v15-SHA1.
pub fn auth_request(id: &str, pub_pem: &str, nonce: &str) -> Vec<u8> {
    let load = map([
        ("cmd", Value::from("_auth")),
        ("id", Value::from(id)),
        ("nonce", Value::from(nonce)),
        ("enc_algo", Value::from(EncAlgo::OaepSha1.name())),
        ("sig_algo", Value::from(SigAlgo::Pkcs1v15Sha1.name())),
        ("pub", Value::from(pub_pem)),
    ]);
    payload::encode(&map([("enc", Value::from("clear")), ("load", load), ("version", Value::from(3))]))
}

/// What the master answered to `_auth`.
#[derive(Debug, Clone)]
pub enum AuthAnswer {
    Accepted {
        aes: Crypticle,
        session: Crypticle,
        publish_port: Option<u16>,
        master_pub: String,
    },
    /// `ret: True`: the key waits in `minions_pre`.
    Pending,
    /// `ret: False`: rejected, denied or refused.
    Refused,
    /// `ret: "full"`: `max_minions` reached.
    Full,
    /// Anything else, as text.
    Other(String),
}

/// Reads an `_auth` reply with the minion's private key (signed or not; the signature is
/// not checked here, as a load generator trusts its master).
pub fn read_auth_reply(reply: &[u8], key: &PrivateKey) -> AuthAnswer {
    let Ok(env) = payload::decode(reply) else { return AuthAnswer::Other("an undecodable reply".into()) };
    let inner = match env.get("load") {
        Some(Value::Map(_)) => env.get("load").cloned(),
        Some(other) => other.as_bytes_any().and_then(|b| payload::decode(b).ok()),
        None => None,
    };
    let Some(inner) = inner else { return AuthAnswer::Other(format!("{env}")) };
    match inner.get("ret") {
        Some(Value::Boolean(false)) => return AuthAnswer::Refused,
        Some(Value::Boolean(true)) => return AuthAnswer::Pending,
        Some(v) if v.as_text() == Some("full") => return AuthAnswer::Full,
        Some(v) => return AuthAnswer::Other(format!("{v}")),
        None => {}
    }
    let open = |field: &str| -> Result<Crypticle, String> {
        let ct = inner.get(field).and_then(Value::as_bytes_any).ok_or_else(|| format!("no {field} in the reply"))?;
        let plain = key.decrypt_oaep(ct, EncAlgo::OaepSha1).map_err(|e| format!("{field}: {e}"))?;
        let text = std::str::from_utf8(&plain).map_err(|e| format!("{field}: {e}"))?;
        Crypticle::from_key_string(text).map_err(|e| format!("{field}: {e}"))
    };
    match (open("aes"), open("session")) {
        (Ok(aes), Ok(session)) => AuthAnswer::Accepted {
            aes,
            session,
            publish_port: inner.get("publish_port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok()),
            master_pub: inner.get_text("pub_key").unwrap_or_default().to_owned(),
        },
        (Err(e), _) | (_, Err(e)) => AuthAnswer::Other(e),
    }
}

/// An authenticated minion's request channel: how it seals loads and opens replies.
#[derive(Clone)]
pub struct Channel {
    pub id: String,
    pub version: ReqVersion,
    /// The shared AES key (v2) or the session key (v3).
    key: Crypticle,
    /// `tok`: the X9.31 signature of `b"salt"` with the minion's key (v3, and v2 loads that
    /// name an id).
    tok: Vec<u8>,
}

impl Channel {
    pub fn new(
        id: &str,
        version: ReqVersion,
        aes: &Crypticle,
        session: &Crypticle,
        private: &PrivateKey,
    ) -> Result<Channel, ProtoError> {
        let key = match version {
            ReqVersion::V2 => aes.clone(),
            ReqVersion::V3 => session.clone(),
        };
        Ok(Channel { id: id.to_owned(), version, key, tok: private.encrypt_x931(b"salt")? })
    }

    /// The request body for `load` (which holds `cmd`), with `nonce` (and for v3 `ts`, `tok`,
    /// `id`) added as the minion adds them. A v2 load that names an `id` carries `tok` too,
    /// which a master with `minimum_auth_version: 2` requires (CVE-2024-38822).
    pub fn seal(&self, mut load: Value, nonce: &str, now_secs: i64) -> Result<Vec<u8>, ProtoError> {
        payload::insert(&mut load, "nonce", Value::from(nonce));
        let mut env = vec![("enc", Value::from("aes"))];
        if self.version == ReqVersion::V3 {
            payload::insert(&mut load, "ts", Value::from(now_secs));
            payload::insert(&mut load, "tok", Value::Binary(self.tok.clone()));
            payload::insert(&mut load, "id", Value::from(self.id.as_str()));
        } else if load.get("id").is_some() {
            payload::insert(&mut load, "tok", Value::Binary(self.tok.clone()));
        }
        env.push(("load", Value::Binary(self.key.dumps(&load, None)?)));
        env.push(("version", Value::from(self.version.number())));
        if self.version == ReqVersion::V3 {
            env.push(("id", Value::from(self.id.as_str())));
        }
        env.push(("enc_algo", Value::from(EncAlgo::OaepSha1.name())));
        env.push(("sig_algo", Value::from(SigAlgo::Pkcs1v15Sha1.name())));
        Ok(payload::encode(&map(env)))
    }

    /// The decrypted reply to a request sealed with `nonce`. A reply that is not ciphertext
    /// (`"bad load"`) is an error, on which a real minion re-authenticates.
    pub fn open(&self, reply: &[u8], nonce: &str) -> Result<Value, ProtoError> {
        let v = payload::decode(reply)?;
        let blob = v.as_bytes_any().ok_or_else(|| ProtoError::Malformed(format!("a clear reply: {v}")))?;
        self.key.loads_with_nonce(blob, nonce)
    }

    /// Opens a `_pillar` reply in the `send_private` form: the one-off AES key is unwrapped
    /// with the minion's key; a signed reply (3007+) must verify with the master's key and
    /// echo `nonce`. Returns the pillar.
    pub fn open_private(
        reply: &[u8],
        private: &PrivateKey,
        nonce: &str,
        master_pub: Option<&PublicKey>,
    ) -> Result<Value, ProtoError> {
        let v = payload::decode(reply)?;
        let field = |name: &str| {
            v.get(name)
                .and_then(Value::as_bytes_any)
                .ok_or_else(|| ProtoError::Malformed(format!("a _pillar reply without `{name}`: {v}")))
        };
        let key = private.decrypt_oaep(field("key")?, EncAlgo::OaepSha1)?;
        let key = std::str::from_utf8(&key).map_err(|_| ProtoError::Malformed("the pillar key is not text".into()))?;
        let sealed = Crypticle::from_key_string(key)?.loads(field("pillar")?)?;
        let (Some(data), Some(sig)) =
            (sealed.get("data").and_then(Value::as_bytes_any), sealed.get("sig").and_then(Value::as_bytes_any))
        else {
            return Ok(sealed);
        };
        if let Some(master) = master_pub {
            if !master.verify(data, sig, SigAlgo::Pkcs1v15Sha1)? {
                return Err(ProtoError::Malformed("the pillar signature does not verify".into()));
            }
        }
        let data = payload::decode(data)?;
        if data.get_text("nonce") != Some(nonce) {
            return Err(ProtoError::Malformed("the pillar reply echoes another nonce".into()));
        }
        data.get("pillar")
            .cloned()
            .ok_or_else(|| ProtoError::Malformed("a signed pillar reply without `pillar`".into()))
    }
}

/// Opens a publish frame: checks its signature with the master's key when given, then
/// decrypts the load with the shared AES key. Fails when the key no longer fits (after an
/// AES rotation), on which a real minion re-authenticates.
pub fn open_publish(frame: &[u8], aes: &Crypticle, master_pub: Option<&PublicKey>) -> Result<Value, ProtoError> {
    let env = payload::decode(frame)?;
    let blob = env.get("load").and_then(Value::as_bytes_any).ok_or_else(|| ProtoError::Malformed("no load".into()))?;
    if let Some(key) = master_pub {
        let sig =
            env.get("sig").and_then(Value::as_bytes_any).ok_or_else(|| ProtoError::Malformed("unsigned".into()))?;
        let algo = env.get_text("sig_algo").and_then(SigAlgo::from_name).unwrap_or(SigAlgo::Pkcs1v15Sha1);
        if !key.verify(blob, sig, algo)? {
            return Err(ProtoError::Malformed("publish signature does not verify".into()));
        }
    }
    aes.loads(blob)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_requests_open_on_the_master_side() {
        let key = PrivateKey::generate(2048).unwrap();
        let (aes, session) = (Crypticle::generate().unwrap(), Crypticle::generate().unwrap());
        for version in [ReqVersion::V2, ReqVersion::V3] {
            let ch = Channel::new("m1", version, &aes, &session, &key).unwrap();
            let n = nonce().unwrap();
            let body = ch.seal(map([("cmd", Value::from("_return")), ("jid", Value::from("1"))]), &n, 7).unwrap();
            let crate::request::Request::Aes(sealed) = crate::request::parse(&body).unwrap() else { panic!("aes") };
            let k = if version == ReqVersion::V2 { &aes } else { &session };
            let opened = crate::request::open(sealed, k).unwrap();
            assert_eq!(opened.cmd(), Some("_return"));
            assert_eq!(opened.nonce.as_deref(), Some(n.as_str()));
            let reply = crate::request::seal_reply(k, &Value::from(true), Some(&n)).unwrap();
            assert_eq!(ch.open(&reply, &n).unwrap(), Value::from(true));
        }
    }

    #[test]
    fn publishes_open_with_the_shared_key_and_signature() {
        let master = PrivateKey::generate(2048).unwrap();
        let aes = Crypticle::generate().unwrap();
        let load = map([("fun", Value::from("test.ping"))]);
        let frame = crate::publish::frame(&aes, &load, Some((&master, SigAlgo::Pkcs1v15Sha1))).unwrap();
        let public = master.public_key().unwrap();
        assert_eq!(open_publish(&frame, &aes, Some(&public)).unwrap(), load);
        let other = Crypticle::generate().unwrap();
        assert!(open_publish(&frame, &other, Some(&public)).is_err(), "a rotated key does not open it");
    }
}
