//! Any bytes as a manifest or index, served as any of the types capsa
//! reads: parsed into a document or refused with an error, never a panic;
//! an index then yields a platform's descriptor or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

const TYPES: [Option<&str>; 5] = [
    None,
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.docker.distribution.manifest.list.v2+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, doc)) = data.split_first() else {
        return;
    };
    let ct = TYPES[pick as usize % TYPES.len()];
    match capsa_image::manifest::parse(doc, ct, "fuzz") {
        Ok(capsa_image::manifest::Document::Index(idx)) => {
            let _ = capsa_image::manifest::select(
                &idx,
                &capsa_image::manifest::Platform::host(),
                "fuzz",
            );
        }
        Ok(capsa_image::manifest::Document::Image(m)) => {
            let _ = capsa_image::manifest::digest_of(m.config());
        }
        Err(_) => {}
    }
});
