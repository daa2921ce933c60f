//! Crypticle blobs under a fixed key: HMAC and padding checks must refuse forgeries, and a
//! blob that does authenticate (the fuzzer cannot forge one, so this also exercises the
//! sealed path by sealing the input) must decode without panicking.
#![no_main]

use halite_proto::crypticle::Crypticle;
use halite_proto::request;
use libfuzzer_sys::fuzz_target;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXQEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=";

fuzz_target!(|data: &[u8]| {
    let Ok(key) = Crypticle::from_key_string(KEY) else { return };
    let _ = key.loads(data);
    let _ = key.loads_with_nonce(data, "0123456789abcdef0123456789abcdef");
    // The input as a sealed plaintext: what an authenticated but hostile peer could send.
    let mut plain = b"pickle::".to_vec();
    plain.extend_from_slice(data);
    if let Ok(blob) = key.encrypt(&plain) {
        let _ = key.loads(&blob);
        let env = halite_proto::payload::map([
            ("enc", halite_proto::Value::from("aes")),
            ("load", halite_proto::Value::Binary(blob)),
            ("version", halite_proto::Value::from(2)),
        ]);
        if let Ok(request::Request::Aes(sealed)) = request::parse(&halite_proto::payload::encode(&env)) {
            let _ = request::open(sealed, &key);
        }
    }
    let _ = Crypticle::from_key_string(&String::from_utf8_lossy(data));
});
