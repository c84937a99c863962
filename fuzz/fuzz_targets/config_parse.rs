//! Any bytes as config.json: parsing and validation return a plan or an
//! error naming a field, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let file = std::path::Path::new("config.json");
    if let Ok(spec) = capsa_spec::parse(file, data) {
        // The bundle is "/": every relative root.path resolves somewhere.
        let _ = capsa_spec::Plan::new(std::path::Path::new("/"), spec);
    }
});
