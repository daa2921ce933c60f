//! The `_pillar` reply (`send_private`): pillar data sealed with a one-off key that only the
//! requesting minion can unwrap, signed by the master so the minion can tell it is genuine.

use crate::crypticle::Crypticle;
use crate::payload::{self, map, Value};
use crate::rsa::{EncAlgo, PrivateKey, PublicKey, SigAlgo};
use crate::ProtoError;

/// Builds `{"key": OAEP(k), "pillar": Crypticle(k).dumps(...)}`. With `signed` (request
/// version > 1) the sealed object is `{"data": mp({key, pillar, nonce}), "sig": sign(data)}`,
/// and the nonce is required. The reply goes out as a plain dict: it is not sealed again.
pub fn send_private(
    master_key: &PrivateKey,
    minion_key: &PublicKey,
    pillar: &Value,
    nonce: Option<&str>,
    enc_algo: EncAlgo,
    sig_algo: SigAlgo,
    signed: bool,
) -> Result<Value, ProtoError> {
    let one_off = Crypticle::generate()?;
    let wrapped_key = minion_key.encrypt_oaep(one_off.key_string().as_bytes(), enc_algo)?;
    let sealed = if signed {
        let nonce = nonce.ok_or_else(|| ProtoError::Malformed("signed _pillar request without nonce".into()))?;
        let data = payload::encode(&map([
            ("key", payload::blob(wrapped_key.clone())),
            ("pillar", pillar.clone()),
            ("nonce", Value::from(nonce)),
        ]));
        let sig = master_key.sign(&data, sig_algo)?;
        one_off.dumps(&map([("data", payload::blob(data)), ("sig", payload::blob(sig))]), None)?
    } else {
        one_off.dumps(pillar, None)?
    };
    Ok(map([("key", payload::blob(wrapped_key)), ("pillar", payload::blob(sealed))]))
}
