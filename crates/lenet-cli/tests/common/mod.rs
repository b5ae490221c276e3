//! Helpers shared by the CLI's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The real datasets (`LENET_DATA_DIR`, else `../shared/data` beside the project). When they are
/// missing, tests fail under CI and are skipped (with a notice) elsewhere.
pub fn data_root() -> Option<PathBuf> {
    let root = lenet_data::testing::real_data_root();
    if root.join("mnist/train-images-idx3-ubyte.gz").exists() {
        return Some(root);
    }
    lenet_data::testing::unavailable(&format!(
        "the MNIST files are not under {}; set LENET_DATA_DIR",
        root.display()
    ));
    None
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lenet-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `lenet` binary, with a clean environment for the backend choice (and no
/// `XDG_RUNTIME_DIR`, as in CI containers: lenet itself keeps Mesa quiet about it).
pub fn lenet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lenet"));
    c.env_remove("BURN_DEVICE").env_remove("XDG_RUNTIME_DIR");
    c
}

/// Runs and returns (exit code, stdout, stderr).
pub fn run(c: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The project's configs directory.
pub fn configs() -> PathBuf {
    // At run time: a target directory shared between checkouts can hold a test binary
    // built from another one.
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../configs")
}
