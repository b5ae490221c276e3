//! Backends from the command line: `lenet devices`, clear errors for a backend that cannot run,
//! the multi-device code path, and checkpoints that evaluate the same on every backend this
//! machine can run (wgpu through Mesa's software Vulkan device where there is no GPU).

mod common;
use std::path::{Path, PathBuf};

use common::{configs, data_root, lenet, run, scratch};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The wgpu adapters `lenet devices --json` reports.
fn wgpu_adapters() -> Vec<serde_json::Value> {
    let (code, out, err) = run(lenet().args(["devices", "--json"]));
    assert_eq!(code, 0, "{err}");
    json(&out)["wgpu_adapters"].as_array().unwrap().clone()
}

/// Whether wgpu can run here; under CI (which installs lavapipe) a missing adapter is a failure.
fn wgpu_ready() -> bool {
    if !wgpu_adapters().is_empty() {
        return true;
    }
    lenet_data::testing::unavailable(
        "wgpu finds no adapter; install mesa-vulkan-drivers libvulkan1",
    );
    false
}

/// A `lenet` that finds no Vulkan driver, as on a machine without GPU or Mesa.
fn lenet_without_vulkan() -> std::process::Command {
    let mut c = lenet();
    c.env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json");
    c
}

#[test]
fn devices_lists_the_backends_and_what_auto_picks() {
    let (code, out, err) = run(lenet().arg("devices"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("backends compiled into this binary: flex, ndarray, wgpu"),
        "{out}"
    );
    assert!(out.contains("kind = \"auto\" picks "), "{out}");
    let (code, out, err) = run(lenet()
        .args(["devices", "--json", "--config"])
        .arg(configs().join("lenet5.toml")));
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert_eq!(v["compiled"][0], "flex");
    assert!(v["cpu"]["threads"].as_u64().unwrap() >= 1);
    assert!(
        v["config"]["device"]
            .as_str()
            .unwrap()
            .starts_with("flex (CPU"),
        "{v}"
    );
    // What `auto` picks, known independently of lenet's own adapter list: with Mesa's
    // software Vulkan driver as the only one (lavapipe, which CI installs), flex.
    let lavapipe = std::path::Path::new("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json");
    if !lavapipe.exists() {
        lenet_data::testing::unavailable("Mesa's lavapipe (mesa-vulkan-drivers) is not installed");
        return;
    }
    let (code, out, err) = run(lenet()
        .env("VK_ICD_FILENAMES", lavapipe)
        .env("VK_DRIVER_FILES", lavapipe)
        .args(["devices", "--json"]));
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert_eq!(v["auto"]["kind"], "flex", "{v}");
    assert!(
        v["auto"]["reason"]
            .as_str()
            .unwrap()
            .contains("only software devices"),
        "{v}"
    );
    assert_eq!(v["wgpu_adapters"][0]["software"], true, "{v}");
}

#[test]
fn a_gpu_backend_without_a_gpu_is_a_clear_error_not_a_panic() {
    let dir = scratch("nogpu");
    let (code, out, _) = run(lenet_without_vulkan().arg("devices"));
    assert_eq!(code, 0);
    assert!(out.contains("wgpu     no adapter found"), "{out}");
    assert!(
        out.contains("kind = \"auto\" picks flex: no GPU adapter found"),
        "{out}"
    );

    let (code, _, err) = run(lenet_without_vulkan()
        .args(["train", "--offline", "--config"])
        .arg(configs().join("lenet5-wgpu.toml"))
        .arg("--run-dir")
        .arg(dir.join("run")));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("lenet5-wgpu.toml"), "{err}");
    assert!(err.contains("no GPU adapter found"), "{err}");
    assert!(
        err.contains("Available without a GPU: flex, ndarray"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !dir.join("run").exists(),
        "no run directory for a run that cannot start"
    );

    // A device index past the adapters present names what there is.
    if !wgpu_adapters().is_empty() {
        let (code, _, err) = run(lenet()
            .args(["train", "--offline", "--config"])
            .arg(configs().join("lenet5-wgpu.toml"))
            .args(["--set", "backend.device=7", "--run-dir"])
            .arg(dir.join("run")));
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("backend.device = 7, but `wgpu` has"), "{err}");
    }
    // Unknown and uncompiled backends.
    let (code, _, err) = run(lenet()
        .args(["train", "--config"])
        .arg(configs().join("lenet5.toml"))
        .args(["--backend", "tpu", "--run-dir"])
        .arg(dir.join("run")));
    assert_eq!(code, 2);
    assert!(err.contains("backend.kind: unknown backend `tpu`"), "{err}");
    let (code, _, err) = run(lenet()
        .args(["train", "--config"])
        .arg(configs().join("lenet5.toml"))
        .args(["--backend", "cuda", "--run-dir"])
        .arg(dir.join("run")));
    assert_eq!(code, 2);
    assert!(
        err.contains("backend `cuda` is not compiled into this binary"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Trains a small LeNet-5 run on `backend` into `dir/<backend>`.
fn small_run(root: &Path, dir: &Path, backend: &str, extra: &[&str]) -> PathBuf {
    let run_dir = dir.join(backend);
    let (code, out, err) = run(lenet()
        .args(["train", "--quiet", "--offline", "--epochs", "1", "--config"])
        .arg(configs().join("lenet5.toml"))
        .args(["--backend", backend, "--batch-size", "64"])
        .args([
            "--limit-train",
            "640",
            "--limit-valid",
            "64",
            "--limit-test",
            "64",
        ])
        .args(extra)
        .arg("--data-dir")
        .arg(root)
        .arg("--run-dir")
        .arg(&run_dir));
    assert_eq!(code, 0, "{backend}: {out}\n{err}");
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
    run_dir
}

/// `lenet eval --json` of `run_dir` on `backend`, over the first 300 test images.
fn eval_on(root: &Path, run_dir: &Path, backend: &str) -> serde_json::Value {
    let (code, out, err) = run(lenet()
        .args([
            "eval",
            "--json",
            "--offline",
            "--limit",
            "300",
            "--backend",
            backend,
        ])
        .arg("--checkpoint")
        .arg(run_dir)
        .arg("--data-dir")
        .arg(root));
    assert_eq!(code, 0, "{backend}: {err}");
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
    json(&out)
}

#[test]
fn checkpoints_evaluate_the_same_on_every_backend() {
    let Some(root) = data_root() else { return };
    let dir = scratch("portable");
    let mut backends = vec!["flex", "ndarray"];
    if wgpu_ready() {
        backends.push("wgpu");
    }
    for trained_on in &backends {
        let run_dir = small_run(&root, &dir, trained_on, &[]);
        let summary = json(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap());
        assert_eq!(summary["backend"], *trained_on);
        let reference = eval_on(&root, &run_dir, "flex");
        assert_eq!(reference["num_samples"], 300);
        for eval_on_backend in &backends[1..] {
            let e = eval_on(&root, &run_dir, eval_on_backend);
            let what = format!("trained on {trained_on}, evaluated on {eval_on_backend}");
            assert_eq!(e["correct"], reference["correct"], "{what}");
            assert_eq!(
                e["confusion_matrix"], reference["confusion_matrix"],
                "{what}"
            );
            let (a, b) = (
                e["loss"].as_f64().unwrap(),
                reference["loss"].as_f64().unwrap(),
            );
            assert!((a - b).abs() < 1e-4, "{what}: loss {a} vs {b}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn several_devices_run_burns_multi_device_strategy() {
    let Some(root) = data_root() else { return };
    let dir = scratch("multi");
    // On the CPU the "devices" are the same one twice: the data-parallel code path (split
    // batches, gradients summed on the first device) runs, without being faster.
    let run_dir = small_run(&root, &dir, "flex", &["--set", "backend.devices=[0, 0]"]);
    let summary = json(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap());
    assert!(
        summary["device"]
            .as_str()
            .unwrap()
            .starts_with("2 devices: flex"),
        "{summary}"
    );
    assert_eq!(summary["epochs_completed"], 1);
    // Two batches (one per device) make each optimizer step: 640 images in batches of 64 are 10
    // batches but 5 steps, so the cosine schedule of configs/lenet5.toml (2e-3 down to 0) runs
    // over 5 steps, each rate shared by a pair of batches. The epoch's learning rate in
    // metrics.csv is the mean over its batches: of the 5 rates 1e-3·(1 + cos(π·t/5)), t = 0..4,
    // whose cosines add up to 1, so 1e-3·6/5 = 1.2e-3 (a step per batch would give 1.1e-3 over
    // 10 steps, or 1e-3 along the 5-step curve continued).
    let csv = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|c| *c == "learning_rate").unwrap();
    let train = lines.find(|l| l.starts_with("1,train,")).unwrap();
    let rate: f64 = train.split(',').nth(col).unwrap().parse().unwrap();
    assert!(
        (rate - 1.2e-3).abs() < 1e-12,
        "epoch learning rate {rate}: {csv}"
    );
    let config = std::fs::read_to_string(run_dir.join("config.toml")).unwrap();
    let resolved: toml::Table = config.parse().unwrap();
    assert_eq!(
        resolved["backend"]["devices"].as_array().unwrap().len(),
        2,
        "{config}"
    );
    // Evaluation of such a run uses one device.
    let e = eval_on(&root, &run_dir, "flex");
    assert_eq!(e["num_samples"], 300);
    // Several CPU devices that are not all 0 make no sense.
    let (code, _, err) = run(lenet()
        .args(["train", "--config"])
        .arg(configs().join("lenet5.toml"))
        .args(["--set", "backend.devices=[0, 1]", "--run-dir"])
        .arg(dir.join("bad")));
    assert_eq!(code, 2);
    assert!(err.contains("`flex` has a single device"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
