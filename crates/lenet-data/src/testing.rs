//! Support for tests that read the real datasets (shared by this workspace's test suites).

use std::path::{Path, PathBuf};

use crate::dataset::DATA_DIR_ENV;

/// The data root for tests: `LENET_DATA_DIR` (a relative path is also tried from the workspace
/// root, since cargo runs tests from each crate's folder), else `<workspace>/../shared/data`.
pub fn real_data_root() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
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
