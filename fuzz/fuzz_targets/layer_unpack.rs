//! Any bytes as a layer tar, unpacked into a directory of its own: it may
//! be refused, but nothing it says (`..`, absolute names, links out,
//! whiteouts of `.` or `..`) lands outside that directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

fn scratch() -> (PathBuf, PathBuf, PathBuf) {
    let top = std::env::temp_dir().join(format!("capsa-fuzz-unpack-{}", std::process::id()));
    (top.clone(), top.join("layer"), top.join("outside"))
}

fuzz_target!(|data: &[u8]| {
    let (top, layer, outside) = scratch();
    let _ = std::fs::remove_dir_all(&layer);
    std::fs::create_dir_all(&layer).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let _ = capsa_image::unpack::unpack_tar(data, &layer);
    let beside: Vec<_> = std::fs::read_dir(&top)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(beside.len() == 2, "something landed beside the layer: {beside:?}");
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "something landed outside the layer"
    );
});
