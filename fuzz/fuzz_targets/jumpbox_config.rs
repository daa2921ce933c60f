//! halite-jumpbox's pure decoders on arbitrary input: jumpbox.yaml, a forward's host as a
//! client names it, and the master's roster.
#![no_main]

use halite_jumpbox::{config::Config, forward, vms};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok((config, _warnings)) = Config::parse(&text) {
        let _ = config.networks_for("alice");
    }
    let port = data.first().map_or(22, |b| u32::from(*b) * 300);
    if let Ok(request) = forward::Request::parse(&text, port, |_, _| true) {
        let resolved: Vec<std::net::IpAddr> = request.literal.into_iter().collect();
        let _ = forward::allowed_addresses(&request.host, &resolved, &["10.0.0.0/8".parse().unwrap()]);
    }
    let listing = vms::parse_roster(&text);
    let _ = vms::table(&listing);
    let _ = vms::json(&listing);
});
