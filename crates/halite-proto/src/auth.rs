//! The `_auth` exchange: the minion's clear sign-in request and the master's signed replies.
//!
//! Whether a key is accepted is decided elsewhere (the pki store's policy); this module reads
//! the request and builds the reply for each outcome, byte-compatible with Salt's
//! `ReqServerChannel._auth`.

use sha2_hex::sha256_hex;

use crate::crypticle::Crypticle;
use crate::payload::{self, map, Value, ValueExt};
use crate::rsa::{clean_key, EncAlgo, PrivateKey, PublicKey, SigAlgo};
use crate::ProtoError;

/// A minion's `_auth` load.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub id: String,
    /// Echoed in every signed reply; Salt's nonces are 32 hex chars but any value is echoed.
    pub nonce: Value,
    /// The minion's public key as sent (already clean_key'd by the minion).
    pub pub_pem: String,
    /// OAEP(master.pub, random token): present once the minion trusts a master key.
    pub token: Option<Vec<u8>>,
    pub enc_algo_name: String,
    pub sig_algo_name: String,
    pub autosign_grains: Option<Value>,
}

impl AuthRequest {
    /// Reads an `_auth` load. An id that is not a string is an error: Salt raises on it.
    pub fn from_load(load: &Value) -> Result<Self, ProtoError> {
        let id =
            load.get_text("id").ok_or_else(|| ProtoError::Malformed("_auth load has no string id".into()))?.to_owned();
        let pub_pem = load.get_text("pub").unwrap_or_default().to_owned();
        Ok(Self {
            id,
            nonce: load.get("nonce").cloned().unwrap_or(Value::Nil),
            pub_pem,
            token: load.get("token").and_then(Value::as_bytes_any).map(<[u8]>::to_vec),
            enc_algo_name: load.get_text("enc_algo").unwrap_or("OAEP-SHA1").to_owned(),
            sig_algo_name: load.get_text("sig_algo").unwrap_or("PKCS1v15-SHA1").to_owned(),
            autosign_grains: load.get("autosign_grains").cloned(),
        })
    }

    pub fn enc_algo(&self) -> Option<EncAlgo> {
        EncAlgo::from_name(&self.enc_algo_name)
    }

    pub fn sig_algo(&self) -> Option<SigAlgo> {
        SigAlgo::from_name(&self.sig_algo_name)
    }
}

/// What the key policy decided for a sign-in, as the minion sees it in `ret`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStatus {
    /// Rejected, denied, invalid id, corrupt key: the minion exits unless `rejected_retry`.
    Refused,
    /// Pending acceptance: the minion retries after `acceptance_wait_time`.
    Pending,
    /// `max_minions` reached.
    Full,
}

impl AuthStatus {
    fn ret(self) -> Value {
        match self {
            AuthStatus::Refused => Value::Boolean(false),
            AuthStatus::Pending => Value::Boolean(true),
            AuthStatus::Full => Value::from("full"),
        }
    }
}

/// The unsigned answer Salt gives when it cannot sign or decrypt with the minion's choice:
/// `{"enc": "clear", "load": {"ret": "bad sig algo" | "bad enc algo"}}`.
pub fn bad_algo_reply(what: &'static str) -> Vec<u8> {
    payload::encode(&map([("enc", Value::from("clear")), ("load", map([("ret", Value::from(what))]))]))
}

/// `_clear_signed`: `{"enc": "clear", "load": mp(load), "sig": sign(mp(load))}`. Unsigned
/// (version < 2) requests get `{"enc": "clear", "load": load}` instead.
pub fn signed_reply(
    master_key: &PrivateKey,
    load: &Value,
    sig_algo: SigAlgo,
    sign: bool,
) -> Result<Vec<u8>, ProtoError> {
    let reply = if sign {
        let inner = payload::encode(load);
        let sig = master_key.sign(&inner, sig_algo)?;
        map([("enc", Value::from("clear")), ("load", payload::blob(inner)), ("sig", payload::blob(sig))])
    } else {
        let mut load = load.clone();
        payload::remove(&mut load, "nonce");
        map([("enc", Value::from("clear")), ("load", load)])
    };
    Ok(payload::encode(&reply))
}

/// A signed refusal, pending or full answer: `{"ret": ..., "nonce": ...}`.
pub fn status_reply(
    master_key: &PrivateKey,
    req: &AuthRequest,
    status: AuthStatus,
    sign: bool,
) -> Result<Vec<u8>, ProtoError> {
    let sig_algo = req.sig_algo().unwrap_or(SigAlgo::Pkcs1v15Sha1);
    signed_reply(master_key, &map([("ret", status.ret()), ("nonce", req.nonce.clone())]), sig_algo, sign)
}

/// What an accepted sign-in is answered with.
pub struct Acceptance<'a> {
    pub master_key: &'a PrivateKey,
    /// `master.pub` as text; sent in clean_key form whatever its file looks like.
    pub master_pub_pem: &'a str,
    pub publish_port: u16,
    pub aes: &'a Crypticle,
    pub session: &'a Crypticle,
    /// [`aes_signature`] of `aes`: the same for every minion until the key rotates, so the
    /// master computes it once rather than once per sign-in.
    pub aes_sig: &'a [u8],
    /// The accepted key on file for this minion.
    pub minion_key: &'a PublicKey,
}

/// The accept reply's `sig`: X9.31 over the hex SHA-256 of the AES key string, which the
/// minion checks against `master.pub` before trusting the key.
pub fn aes_signature(master_key: &PrivateKey, aes: &Crypticle) -> Result<Vec<u8>, ProtoError> {
    master_key.encrypt_x931(sha256_hex(aes.key_string().as_bytes()).as_bytes())
}

/// Outcome of building an accept reply.
#[derive(Debug)]
pub enum AcceptReply {
    /// The signed reply body.
    Reply(Vec<u8>),
    /// The minion asked for an algorithm Salt does not know: send this unsigned body.
    BadAlgo(Vec<u8>),
}

/// The success reply of §3.3: `aes`, `session` and `token` OAEP-encrypted to the minion, the
/// X9.31 `sig` over the AES key's sha256 hex, `pub_key` in clean_key form, the nonce echoed.
/// A token that does not decrypt is left out, as Salt does ("support older minions").
pub fn accept_reply(req: &AuthRequest, acc: &Acceptance<'_>, sign: bool) -> Result<AcceptReply, ProtoError> {
    let Some(sig_algo) = req.sig_algo() else {
        return Ok(AcceptReply::BadAlgo(bad_algo_reply("bad sig algo")));
    };
    let Some(enc_algo) = req.enc_algo() else {
        return Ok(AcceptReply::BadAlgo(bad_algo_reply("bad enc algo")));
    };
    let mut reply = vec![
        ("enc", Value::from("pub")),
        ("pub_key", Value::from(clean_key(acc.master_pub_pem))),
        ("publish_port", Value::from(acc.publish_port)),
    ];
    if let Some(token) = &req.token {
        if let Ok(plain) = acc.master_key.decrypt_oaep(token, enc_algo) {
            reply.push(("token", payload::blob(acc.minion_key.encrypt_oaep(&plain, enc_algo)?)));
        }
    }
    let aes = acc.aes.key_string().as_bytes();
    reply.push(("aes", payload::blob(acc.minion_key.encrypt_oaep(aes, enc_algo)?)));
    reply.push(("session", payload::blob(acc.minion_key.encrypt_oaep(acc.session.key_string().as_bytes(), enc_algo)?)));
    reply.push(("sig", payload::blob(acc.aes_sig.to_vec())));
    if sign {
        reply.push(("nonce", req.nonce.clone()));
    }
    let body =
        if sign { signed_reply(acc.master_key, &map(reply), sig_algo, true)? } else { payload::encode(&map(reply)) };
    Ok(AcceptReply::Reply(body))
}

mod sha2_hex {
    use openssl::sha::sha256;

    pub fn sha256_hex(data: &[u8]) -> String {
        hex::encode(sha256(data))
    }
}
pub use sha2_hex::sha256_hex as aes_digest_hex;
