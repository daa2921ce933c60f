//! Any bytes a peer can send to 4506: the envelope parser and the msgpack decoder under it
//! must answer with a refusal, never panic or allocate past the input's size.
#![no_main]

use halite_proto::request::{self, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Request::Aes(sealed)) = request::parse(data) {
        let _ = sealed.key_needed();
        let _ = sealed.signs_replies();
    }
    let _ = halite_proto::payload::decode(data);
});
