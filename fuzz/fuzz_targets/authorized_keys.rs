//! halite-authkeys on arbitrary `authorized_keys` text: parsing never panics, and every
//! entry's decisions (address, expiry, forward) can be asked without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let keys = halite_authkeys::parse(&text);
    let utc = |t: &halite_authkeys::CivilTime| t.as_utc();
    for entry in &keys.entries {
        for address in ["10.0.0.1", "::ffff:192.0.2.1", "2001:db8::1"] {
            let _ = entry.admits(address.parse().unwrap(), 1_796_000_000, &utc);
        }
        let _ = entry.may_open("app1", 22);
        let _ = halite_authkeys::fingerprint(&entry.blob);
        assert!(keys.lines_for(&entry.blob).next().is_some());
    }
});
