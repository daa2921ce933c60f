//! Any text in a pillar or state file: both of Salt's YAML loaders must answer with a value
//! or an error, never panic, recurse without bound or expand aliases past their limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = halite_yaml::load(text);
        let _ = halite_yaml::load_sls(text);
    }
});
