//! `lenet summary` and the CLI's handling of bad config files.

mod common;
use common::{configs, data_root, lenet, run, scratch};

#[test]
fn summary_of_lenet5_prints_the_table_with_61706_parameters() {
    let (code, out, err) = run(lenet().args(["summary", "--preset", "lenet5"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Total parameters: 61,706"), "{out}");
    assert!(out.contains("(28 - 5 + 2·2)/1 + 1 = 28"), "{out}");
    let (code, out, _) = run(lenet()
        .args(["summary", "--config"])
        .arg(configs().join("custom-cnn.toml"))
        .arg("--json"));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["model"], "custom-cnn");
}

#[test]
fn bad_configs_exit_2_with_the_file_and_field() {
    let dir = scratch("badcfg");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[model]\npreset = \"lenet5\"\n[[model.features]]\nout_channels = 6\nkernel = 40\n",
    )
    .unwrap();
    let (code, _, err) = run(lenet().args(["summary", "--config"]).arg(&path));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad.toml") && err.contains("features[0].kernel"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let (code, _, err) = run(lenet().args(["summary", "--preset", "lenet7"]));
    assert_eq!(code, 2);
    assert!(err.contains("lenet7") && err.contains("lenet5"), "{err}");

    let (code, _, err) = run(lenet()
        .args(["summary", "--config"])
        .arg(dir.join("missing.toml")));
    assert_eq!(code, 2);
    assert!(err.contains("missing.toml"), "{err}");

    // Unknown key, wrong type and bad value in a run config, before any data is touched.
    for (text, needle) in [
        (
            "[model]\npreset = \"lenet5\"\n[training]\nepohcs = 3\n",
            "epohcs",
        ),
        (
            "[model]\npreset = \"lenet5\"\n[training]\nepochs = \"3\"\n",
            "training.epochs",
        ),
        (
            "[model]\npreset = \"lenet5\"\n[training.optimizer]\nlr = -1.0\n",
            "training.optimizer.lr",
        ),
        (
            "[model]\npreset = \"lenet5\"\n[backend]\nkind = \"tpu\"\n",
            "tpu",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let (code, _, err) = run(lenet()
            .args(["train", "--quiet", "--offline", "--data-dir"])
            .arg(&dir)
            .arg("--run-dir")
            .arg(dir.join("run"))
            .arg("--config")
            .arg(&path));
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains("bad.toml") || needle == "tpu", "{err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_reports_throughput_as_json_and_needs_a_mode() {
    let (code, out, err) = run(lenet().args([
        "bench",
        "--train",
        "--inference",
        "--steps",
        "3",
        "--batch-sizes",
        "8",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["backend"], "flex");
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["what"], "train");
    assert_eq!(r[0]["batch_size"], 8);
    assert!(r[0]["images_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(r[1]["batch_size"], 1000);
    assert!(v["threads"].as_u64().unwrap() >= 1);
    assert!(v["cpu"].as_str().is_some());

    // The per-layer profile: every layer of LeNet-5, forward and backward times.
    let (code, out, err) = run(lenet().args([
        "bench",
        "--layers",
        "--steps",
        "1",
        "--batch-sizes",
        "4",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let layers = v["layers"][0]["layers"].as_array().unwrap();
    let names: Vec<&str> = layers
        .iter()
        .map(|l| l["layer"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "features.0.conv",
            "features.0.relu",
            "features.0.pool",
            "features.1.conv",
            "features.1.relu",
            "features.1.pool",
            "hidden.0 + relu",
            "hidden.1 + relu",
            "output"
        ]
    );
    assert_eq!(layers[2]["output"], serde_json::json!([6, 14, 14]));
    assert!(layers
        .iter()
        .all(|l| l["forward_ms"].as_f64().unwrap() > 0.0));
    // A run config's network and backend.
    let (code, out, err) = run(lenet()
        .args(["bench", "--inference", "--steps", "3", "--config"])
        .arg(common::configs().join("lenet5-classic.toml")));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("lenet5-classic on flex (CPU"), "{out}");

    let (code, _, err) = run(lenet().args(["bench"]));
    assert_eq!(code, 2);
    assert!(err.contains("--train"), "{err}");
}

/// `lenet bench --epoch`: five real epochs through `lenet train`, each between two raw runs of
/// as many training steps on random images; each ratio is an epoch's time over the mean of its
/// two neighbours, and the reported one their median.
#[test]
fn bench_epoch_times_real_epochs_between_raw_runs_of_their_steps() {
    let Some(root) = data_root() else { return };
    let dir = scratch("bench-epoch");
    let config = dir.join("small.toml");
    std::fs::write(
        &config,
        "[model]\npreset = \"lenet5\"\n\
         [data]\ndataset = \"mnist\"\nvalidation = 256\n\
         [data.limit]\ntrain = 640\nvalid = 128\ntest = 128\n\
         [training]\nepochs = 1\nbatch_size = 64\nseed = 1\n\
         [training.optimizer]\nkind = \"adam\"\nlr = 2e-3\n",
    )
    .unwrap();
    let (code, out, err) = run(lenet()
        .args([
            "bench",
            "--train",
            "--epoch",
            "--steps",
            "2",
            "--batch-sizes",
            "64",
            "--json",
        ])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&root));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let e = &v["epoch"];
    assert_eq!(e["batch_size"], 64);
    assert_eq!(e["train_images"], 640);
    assert_eq!(e["valid_images"], 128);
    let list = |key: &str| -> Vec<f64> {
        e[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_f64().unwrap())
            .collect()
    };
    let (epochs, raw, ratios) = (list("epoch_seconds"), list("raw_seconds"), list("ratios"));
    assert_eq!((epochs.len(), raw.len(), ratios.len()), (5, 6, 5), "{e}");
    assert!(epochs.iter().chain(&raw).all(|&s| s > 0.0), "{e}");
    // Each epoch against the raw runs on both sides of it; the median of the five.
    for i in 0..5 {
        let want = epochs[i] / ((raw[i] + raw[i + 1]) / 2.0);
        assert!((ratios[i] - want).abs() < 1e-9, "{e}");
    }
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(e["ratio_to_raw"].as_f64().unwrap(), sorted[2], "{e}");
    assert!(e["ratio_to_windows"].as_f64().unwrap() > 0.0, "{e}");
}
