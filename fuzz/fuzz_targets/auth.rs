//! `_auth` loads: whatever the dict holds, reading it and building a refusal must not panic.
#![no_main]

use halite_proto::auth::AuthRequest;
use halite_proto::request::{self, Request};
use halite_proto::rsa::PublicKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Request::Clear { load, .. }) = request::parse(data) {
        if let Ok(req) = AuthRequest::from_load(&load) {
            let _ = req.enc_algo();
            let _ = req.sig_algo();
            let _ = halite_proto::valid_id(&req.id);
            let _ = PublicKey::from_pem(req.pub_pem.as_bytes());
        }
    }
});
