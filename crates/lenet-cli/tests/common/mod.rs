//! Helpers shared by the CLI's integration tests.
#![allow(dead_code)]

use burn::module::Module;
use burn::tensor::Device;

use std::path::{Path, PathBuf};
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

/// A slice of MNIST for quick runs: 2,048 training, 256 validation and 256 test images.
pub const SMALL: [&str; 6] = [
    "--limit-train",
    "2048",
    "--limit-valid",
    "256",
    "--limit-test",
    "256",
];

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

/// A run's `summary.json`.
pub fn summary(run_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run_dir.join("summary.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every parameter of a saved network, flattened.
pub fn weights(path: &Path, config: &Path) -> Vec<f32> {
    let cfg = lenet_train::RunConfig::load(config, &[]).unwrap();
    let net: lenet_model::ConvNet = cfg
        .model
        .init(&Device::flex())
        .unwrap()
        .try_load_file(path)
        .unwrap();
    let mut all = Vec::new();
    for b in &net.features {
        all.extend(b.conv.weights().unwrap().1);
        if let lenet_model::Conv::D2(c) = &b.conv {
            all.extend(
                c.bias
                    .as_ref()
                    .unwrap()
                    .val()
                    .to_data()
                    .try_to_vec::<f32>()
                    .unwrap(),
            );
        }
    }
    for l in net.hidden.iter().chain(net.output.linear()) {
        all.extend(l.weight.val().to_data().try_to_vec::<f32>().unwrap());
        all.extend(
            l.bias
                .as_ref()
                .unwrap()
                .val()
                .to_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
    }
    all
}

/// `metrics.csv` of a run without its timing columns (`images_per_second`, `seconds`): what must
/// be the same for the same config and seed.
pub fn metrics_without_timing(run_dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| !matches!(header[i], "images_per_second" | "seconds"))
        .collect();
    text.lines()
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            keep.iter().map(|&i| c[i]).collect::<Vec<_>>().join(",")
        })
        .collect()
}

/// The largest difference between two runs' weights.
pub fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "different numbers of weights");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// `lenet train --resume` of `run_dir`, quietly, on the data under `root` (more flags may follow).
pub fn resume(root: &Path, run_dir: &Path) -> Command {
    let mut c = lenet();
    c.args(["train", "--resume", "--quiet", "--offline", "--run-dir"])
        .arg(run_dir)
        .arg("--data-dir")
        .arg(root);
    c
}
