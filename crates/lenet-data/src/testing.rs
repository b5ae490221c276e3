//! Support for tests that read the real datasets (shared by this workspace's test suites).

use std::path::{Path, PathBuf};

use crate::dataset::DATA_DIR_ENV;

/// The data root for tests: `LENET_DATA_DIR` (a relative path is also tried from the workspace
/// root, since cargo runs tests from each crate's folder), else `<workspace>/../shared/data`.
pub fn real_data_root() -> PathBuf {
    // The running test's package (at run time: a target directory shared between checkouts can
    // hold a binary built from another one), up to the workspace root that holds Cargo.lock.
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let workspace = package
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    match std::env::var_os(DATA_DIR_ENV) {
        Some(v) if !v.is_empty() => {
            let p = PathBuf::from(v);
            let from_workspace = workspace.join(&p);
            if p.is_relative() && !p.exists() && from_workspace.exists() {
                from_workspace
            } else {
                p
            }
        }
        _ => workspace.join("../shared/data"),
    }
}

/// What a test does when something it needs (the real data, a wgpu adapter) is missing: fail
/// when `CI` is set (CI installs everything the tests need), otherwise say that the test is
/// skipped and why. Returns so that the caller can skip.
///
/// The line `SKIPPED <test>: <why>` goes straight to the process's standard error, past the
/// test harness's capture (which hides `eprintln!` of a passing test), so that a skipped test
/// never passes for a silent `ok`; `.ci/run` counts these lines.
pub fn unavailable(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but {what}");
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let line = format!("SKIPPED {test}: {what}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
}

/// Writes a small dataset under the four standard file names into `dir`: `train_labels.len()`
/// training images of `rows`×`rows` (gzip), two test images (uncompressed) labelled 1 and 2.
/// Pixel values cycle through 0..251. Panics on failure (tests only).
pub fn write_fake_dataset(dir: &Path, rows: usize, train_labels: &[u8]) {
    use crate::dataset::DatasetKind;
    use crate::idx::{write_images, write_labels, IdxImages};
    let names = DatasetKind::Mnist.files();
    let imgs = |count: usize| IdxImages {
        count,
        rows,
        cols: rows,
        pixels: (0..count * rows * rows).map(|i| (i % 251) as u8).collect(),
    };
    let written = write_images(&dir.join(names[0].name), &imgs(train_labels.len()), true)
        .and_then(|()| write_labels(&dir.join(names[1].name), train_labels, true))
        .and_then(|()| write_images(&dir.join(names[2].raw_name()), &imgs(2), false))
        .and_then(|()| write_labels(&dir.join(names[3].name), &[1, 2], true));
    if let Err(e) = written {
        panic!("cannot write the fake dataset: {e}");
    }
}
