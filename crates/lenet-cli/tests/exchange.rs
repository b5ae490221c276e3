//! `lenet import` and `lenet export` against PyTorch's own numbers and ONNX Runtime.
//!
//! The PyTorch fixtures (`tests/fixtures/pytorch/`) were made by `scripts/pytorch-fixtures.py`:
//! a LeNet-5 trained in PyTorch, saved three ways, with PyTorch's test-set correct count and its
//! logits for the first 100 test images. ONNX Runtime runs from the Python given by
//! `LENET_PYTHON` (`.ci/run` makes a virtual environment with `onnxruntime` and `onnx`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{data_root, largest_difference, lenet, run, scratch};
use lenet_train::TrainedModel;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch")
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The first `n` MNIST test images, as bytes.
fn test_images(root: &Path, n: usize) -> Vec<Vec<u8>> {
    let images =
        lenet_data::idx::read_images(&root.join("mnist/t10k-images-idx3-ubyte.gz")).unwrap();
    (0..n).map(|i| images.image(i).to_vec()).collect()
}

/// `lenet import` of a fixture into a LeNet-5 run directory; returns its stdout and stderr.
fn import(file: &str, run_dir: &Path, extra: &[&str]) -> (String, String) {
    let (code, out, err) = run(lenet()
        .args(["import", "--preset", "lenet5", "--from"])
        .arg(fixtures().join(file))
        .arg("--run-dir")
        .arg(run_dir)
        .args(extra));
    assert_eq!(code, 0, "import {file}: {out}{err}");
    (out, err)
}

/// The network's inputs and outputs for `pictures`, flattened.
fn inputs_and_outputs(
    model: &TrainedModel,
    pictures: &[Vec<u8>],
) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
    let batch = model.picture_batch(pictures).unwrap();
    let shape = batch.images.dims().to_vec();
    let inputs = batch.images.to_data().try_to_vec::<f32>().unwrap();
    let outputs = model
        .net
        .forward_2d(batch.images)
        .to_data()
        .try_to_vec::<f32>()
        .unwrap();
    (shape, inputs, outputs)
}

#[test]
fn imports_reproduce_pytorchs_logits_and_test_accuracy() {
    let Some(root) = data_root() else { return };
    let expected = expected();
    let pictures = test_images(&root, 100);
    for (file, mapped) in [
        ("lenet5-sequential.pt", "0.weight"),
        ("lenet5-checkpoint-bf16.pt", "0.weight"),
        ("lenet5-named-f16.safetensors", "conv1.weight"),
    ] {
        let dir = scratch(&format!("import-{file}"));
        let run_dir = dir.join("run");
        let (table, notes) = import(file, &run_dir, &[]);
        if file.contains("checkpoint") {
            assert!(
                notes.contains("reading the state_dict under \"model\" (left aside: ema_decay)"),
                "{notes}"
            );
        }
        // The mapping table: source key, shape and type → lenet parameter.
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("{mapped} ")))
            .unwrap_or_else(|| panic!("{mapped} not in the table:\n{table}"));
        assert!(line.contains("features.0.conv.weight (by order)"), "{line}");
        assert!(line.contains("[6, 1, 5, 5]"), "{line}");

        let model = TrainedModel::load(&run_dir, None).unwrap();
        let (_, _, logits) = inputs_and_outputs(&model, &pictures);
        let want: Vec<f32> = expected["files"][file]["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
            })
            .collect();
        let diff = largest_difference(&logits, &want);
        assert!(
            diff <= 1e-4,
            "{file}: logits differ from PyTorch's by {diff}"
        );

        let (code, out, err) = run(lenet()
            .args(["eval", "--json", "--offline", "--checkpoint"])
            .arg(&run_dir)
            .arg("--data-dir")
            .arg(&root));
        assert_eq!(code, 0, "{out}{err}");
        let eval: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            eval["correct"], expected["files"][file]["test_correct"],
            "{file}: test correct count"
        );
        println!(
            "{file}: logits within {diff:e} of PyTorch's, {} correct as PyTorch",
            eval["correct"]
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn import_errors_name_the_keys_and_leave_nothing_behind() {
    let dir = scratch("import-errors");
    let run_dir = dir.join("run");
    let fixture = fixtures().join("lenet5-sequential.pt");
    let import = |args: &[&str]| {
        let mut c = lenet();
        c.args(["import", "--run-dir"]).arg(&run_dir).args(args);
        run(&mut c)
    };
    let from = fixture.to_str().unwrap();

    // lenet5-classic has other shapes (32×32 input, C5 as a convolution).
    let (code, _, err) = import(&["--from", from, "--preset", "lenet5-classic"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the weights do not fit the network"), "{err}");
    assert!(err.contains("expected ["), "{err}");
    assert!(
        !run_dir.exists(),
        "a failed import left {}",
        run_dir.display()
    );

    // A key renamed out of every layer is unused, and the lenet parameter is then missing.
    let (code, _, err) = import(&[
        "--from",
        from,
        "--preset",
        "lenet5",
        "--map",
        r"^11\.weight$=w",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("output.weight: missing"), "{err}");
    assert!(err.contains("11.weight [10, 84]: unused"), "{err}");

    for (args, needle) in [
        (
            vec!["--from", "nowhere.pt", "--preset", "lenet5"],
            "nowhere.pt: no such file",
        ),
        (
            vec!["--from", "weights.h5", "--preset", "lenet5"],
            "weights.h5",
        ),
        (
            vec!["--from", from, "--preset", "lenet5", "--map", "(=x"],
            "--map",
        ),
        (
            vec!["--from", from, "--preset", "lenet5", "--key", "nothing"],
            "nothing",
        ),
        (
            vec!["--from", from, "--preset", "no-such-net"],
            "no-such-net",
        ),
    ] {
        let (code, out, err) = import(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!run_dir.exists());

    // An existing run is not overwritten.
    import(&["--from", from, "--preset", "lenet5", "--quiet"]);
    let (code, _, err) = import(&["--from", from, "--preset", "lenet5"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn safetensors_and_pytorch_exports_import_back_to_the_same_weights() {
    let dir = scratch("export-round-trip");
    let run_dir = dir.join("run");
    import("lenet5-sequential.pt", &run_dir, &["--quiet"]);
    let original = common::weights(&run_dir.join("model.bpk"), &run_dir.join("config.toml"));
    for (format, file) in [("safetensors", "m.safetensors"), ("pytorch", "m.pt")] {
        let out = dir.join(file);
        let (code, stdout, err) = run(lenet()
            .args(["export", "--format", format, "--checkpoint"])
            .arg(&run_dir)
            .arg("--out")
            .arg(&out));
        assert_eq!(code, 0, "{stdout}{err}");
        let back = dir.join(format!("back-{format}"));
        let (code, table, err) = run(lenet()
            .args(["import", "--preset", "lenet5", "--from"])
            .arg(&out)
            .arg("--run-dir")
            .arg(&back));
        assert_eq!(code, 0, "{table}{err}");
        // lenet's own names map by name, not by order.
        assert!(
            table.contains(
                "features.1.conv.weight  [16, 6, 5, 5] F32  features.1.conv.weight (by name)"
            ),
            "{table}"
        );
        let again = common::weights(&back.join("model.bpk"), &back.join("config.toml"));
        assert_eq!(original, again, "{format}: the weights changed on the way");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn train_init_from_fine_tunes_an_imported_model() {
    let Some(root) = data_root() else { return };
    let dir = scratch("init-from");
    let imported = dir.join("imported");
    import("lenet5-sequential.pt", &imported, &["--quiet"]);
    let tuned = dir.join("tuned");
    let (code, out, err) = run(lenet()
        .args([
            "train",
            "--quiet",
            "--offline",
            "--epochs",
            "1",
            "--lr",
            "1e-7",
            "--config",
        ])
        .arg(common::configs().join("lenet5.toml"))
        .args(common::SMALL)
        .arg("--init-from")
        .arg(&imported)
        .arg("--run-dir")
        .arg(&tuned)
        .arg("--data-dir")
        .arg(&root));
    assert_eq!(code, 0, "{out}{err}");
    // PyTorch's weights (97.9 % on the whole test set) barely moved: a fresh network after
    // 2,048 images at this rate would be near chance.
    let s = common::summary(&tuned);
    let acc = s["test_accuracy"].as_f64().unwrap();
    assert!(
        acc > 0.95,
        "test accuracy {acc} after fine-tuning the imported model"
    );
    let config = std::fs::read_to_string(tuned.join("config.toml")).unwrap();
    assert!(config.contains("init_from = "), "{config}");

    let (code, _, err) = run(lenet()
        .args(["train", "--quiet", "--offline", "--epochs", "1", "--config"])
        .arg(common::configs().join("lenet5.toml"))
        .args(["--set", "model.preset=\"lenet5-classic\""])
        .arg("--init-from")
        .arg(&imported)
        .arg("--run-dir")
        .arg(dir.join("mismatch"))
        .arg("--data-dir")
        .arg(&root));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("training.init_from"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The Python with `onnxruntime` and `onnx` (`LENET_PYTHON`, else `python3`), if there is one.
fn python_with_onnxruntime() -> Option<PathBuf> {
    let python = std::env::var_os("LENET_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import onnxruntime, onnx, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    lenet_data::testing::unavailable(&format!(
        "{} cannot import onnxruntime, onnx and numpy; set LENET_PYTHON to a Python that can \
         (.ci/run makes one)",
        python.display()
    ));
    None
}

/// Writes `values` as raw little-endian f32.
fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

/// Runs `python/check_onnx.py` on `model` for these inputs and lenet's outputs; returns its
/// report.
fn check_onnx(
    python: &Path,
    model: &Path,
    shape: &[usize],
    inputs: &[f32],
    outputs: &[f32],
) -> serde_json::Value {
    let dir = model.parent().unwrap();
    let (x, y) = (dir.join("inputs.f32"), dir.join("outputs.f32"));
    write_f32(&x, inputs);
    write_f32(&y, outputs);
    let shape: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../python/check_onnx.py");
    let out = Command::new(python)
        .arg(script)
        .arg(model)
        .arg(&x)
        .arg(&y)
        .arg("--shape")
        .arg(shape.join(","))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check_onnx.py on {}: {stdout}{}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

#[test]
fn onnx_export_agrees_with_onnx_runtime_on_1000_test_images() {
    let Some(root) = data_root() else { return };
    let Some(python) = python_with_onnxruntime() else {
        return;
    };
    let dir = scratch("onnx-mnist");
    let run_dir = dir.join("run");
    import("lenet5-sequential.pt", &run_dir, &["--quiet"]);
    let onnx = dir.join("lenet5.onnx");
    let (code, out, err) = run(lenet()
        .args(["export", "--format", "onnx", "--checkpoint"])
        .arg(&run_dir)
        .arg("--out")
        .arg(&onnx));
    assert_eq!(code, 0, "{out}{err}");
    let model = TrainedModel::load(&run_dir, None).unwrap();
    let (shape, inputs, logits) = inputs_and_outputs(&model, &test_images(&root, 1000));
    let report = check_onnx(&python, &onnx, &shape, &inputs, &logits);
    println!("{report}");
    assert_eq!(report["equal_predictions"], 1000);
    assert_eq!(report["input"]["name"], "input");
    assert_eq!(report["output"], "logits");
    assert_eq!(report["metadata"]["lenet.normalization.mean"], "0.1307");
    assert!(report["metadata"]["lenet.class_names"]
        .as_str()
        .unwrap()
        .contains("\"7\""));
    // The batch axis is symbolic.
    assert_eq!(report["input"]["shape"][0], "N");
    let _ = std::fs::remove_dir_all(dir);
}

/// Networks with every kind of layer lenet builds, as model configs.
const NETWORKS: &[(&str, &str)] = &[
    (
        "batch norm, overlapping padded average pooling, dilation, groups, dropout, sigmoid",
        r#"
[model]
name = "mixed"
num_classes = 4
[model.input]
channels = 2
size = [20, 18]
[[model.features]]
out_channels = 4
kernel = 3
dilation = 2
padding = 1
batch_norm = true
activation = "tanh"
pool = { kind = "avg", kernel = 3, stride = 1, padding = 1 }
[[model.features]]
out_channels = 6
kernel = [2, 3]
groups = 2
padding = "same"
activation = "silu"
pool = { kind = "max", kernel = 2, stride = 2 }
dropout = 0.2
[model.classifier]
hidden = [16]
activation = "sigmoid"
dropout = 0.5
"#,
    ),
    (
        "1D convolutions and pooling",
        r#"
[model]
name = "signal"
num_classes = 3
[model.input]
channels = 1
size = [40]
[[model.features]]
out_channels = 4
kernel = 5
stride = 2
pool = { kind = "max", kernel = 2 }
[[model.features]]
out_channels = 3
kernel = 3
activation = "lecun_tanh"
pool = { kind = "avg", kernel = 2 }
"#,
    ),
    (
        "LeNet-5 as published (subsampling, connection table, RBF)",
        "preset:lenet5-1998",
    ),
    ("lenet5-classic", "preset:lenet5-classic"),
    ("lenet1", "preset:lenet1"),
];

fn model_config(text: &str) -> lenet_model::ModelConfig {
    match text.strip_prefix("preset:") {
        Some(name) => lenet_model::preset(name).unwrap(),
        None => {
            let mut table: toml::Table = toml::from_str(text).unwrap();
            let Some(toml::Value::Table(model)) = table.remove("model") else {
                panic!("no [model] in {text}")
            };
            lenet_model::ModelConfig::from_table(model, "test", "model.").unwrap()
        }
    }
}

#[test]
fn every_kind_of_layer_exports_to_onnx_and_agrees_with_onnx_runtime() {
    use burn::tensor::{Device, Distribution, Tensor};
    use lenet_model::FeatureMap;
    let Some(python) = python_with_onnxruntime() else {
        return;
    };
    let dir = scratch("onnx-layers");
    for (i, (what, text)) in NETWORKS.iter().enumerate() {
        let device = Device::flex();
        device.seed(7);
        let net = model_config(text).init(&device).unwrap();
        let mut shape = vec![5];
        shape.extend(&net.input_shape);
        let (inputs, outputs) = match shape.len() {
            3 => {
                let x = Tensor::<3>::random(
                    [shape[0], shape[1], shape[2]],
                    Distribution::Normal(0.0, 1.0),
                    &device,
                );
                (
                    x.to_data().try_to_vec::<f32>().unwrap(),
                    net.forward(FeatureMap::D1(x)),
                )
            }
            _ => {
                let x = Tensor::<4>::random(
                    [shape[0], shape[1], shape[2], shape[3]],
                    Distribution::Normal(0.0, 1.0),
                    &device,
                );
                (x.to_data().try_to_vec::<f32>().unwrap(), net.forward_2d(x))
            }
        };
        let outputs = outputs.to_data().try_to_vec::<f32>().unwrap();
        let bytes = lenet_exchange::to_onnx(&net, &Default::default())
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let case = dir.join(format!("net{i}"));
        std::fs::create_dir_all(&case).unwrap();
        let model = case.join("model.onnx");
        std::fs::write(&model, bytes).unwrap();
        let report = check_onnx(&python, &model, &shape, &inputs, &outputs);
        println!("{what}: {report}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn onnx_export_refuses_what_it_cannot_express_naming_the_layer() {
    use burn::tensor::Device;
    for (text, layer) in [
        (
            "[model]\nnum_classes = 2\n[model.input]\nchannels = 1\nsize = [4, 8, 8]\n\
             [[model.features]]\nout_channels = 2\nkernel = 3\n",
            "features.0 (3D convolution)",
        ),
        (
            "[model]\nnum_classes = 2\n[model.input]\nchannels = 1\nsize = [8, 8]\n\
             [[model.features]]\nout_channels = 2\nkernel = 3\n[[model.features]]\n\
             out_channels = 2\nkernel = 3\nactivation = \"gelu\"\n",
            "features.1 (activation)",
        ),
    ] {
        let net = model_config(text).init(&Device::flex()).unwrap();
        let err = lenet_exchange::to_onnx(&net, &Default::default()).unwrap_err();
        assert!(err.is_usage());
        assert!(err.to_string().starts_with(layer), "{err}");
    }
}
