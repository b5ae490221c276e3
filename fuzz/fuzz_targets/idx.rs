//! Fuzzes the IDX reader: any bytes, raw or gzip, as an image file and as a label file, must give
//! a value or an error, never a panic, a hang or an out-of-memory.
#![no_main]

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| std::env::temp_dir().join(format!("lenet-fuzz-{}.idx", std::process::id())))
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    let Ok(mut f) = std::fs::File::create(path) else { return };
    if f.write_all(data).is_err() {
        return;
    }
    drop(f);
    if let Ok(images) = lenet_data::read_images(path) {
        assert_eq!(images.pixels.len(), images.count * images.rows * images.cols);
    }
    let _ = lenet_data::read_labels(path);
});
