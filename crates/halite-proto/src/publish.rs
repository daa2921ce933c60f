//! Publish frames (port 4505): one ZeroMQ frame per job, `mp({"enc": "aes", "load": blob})`,
//! signed when `sign_pub_messages` is on. Two-frame (zmq_filtering) publishes are never built:
//! 3007 and later minions cannot read them.

use crate::crypticle::Crypticle;
use crate::payload::{self, map, Value};
use crate::rsa::{PrivateKey, SigAlgo};
use crate::ProtoError;

/// Seals a publish load, which must already carry its `serial`.
pub fn frame(aes: &Crypticle, load: &Value, signer: Option<(&PrivateKey, SigAlgo)>) -> Result<Vec<u8>, ProtoError> {
    frame_from_blob(aes.dumps(load, None)?, signer)
}

/// Builds the envelope around an already sealed load (the test vectors fix the IV).
pub fn frame_from_blob(blob: Vec<u8>, signer: Option<(&PrivateKey, SigAlgo)>) -> Result<Vec<u8>, ProtoError> {
    let mut env = vec![("enc", Value::from("aes"))];
    if let Some((key, algo)) = signer {
        let sig = key.sign(&blob, algo)?;
        env.push(("load", payload::blob(blob)));
        env.push(("sig", payload::blob(sig)));
        env.push(("sig_algo", Value::from(algo.name())));
    } else {
        env.push(("load", payload::blob(blob)));
    }
    Ok(payload::encode(&map(env)))
}
