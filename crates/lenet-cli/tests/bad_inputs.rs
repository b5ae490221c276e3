//! Every subcommand over a matrix of bad inputs: each case gives the input, the exit code the one
//! rule asks for (2: the user's input is wrong; 1: a failure while working) and a fragment of the
//! message, and no case may panic (a panic would print `internal error` and exit with 70).
//! Cases that need the real MNIST files are skipped (visibly) without them; under `CI` they run.

mod common;
use std::path::{Path, PathBuf};

use common::{configs, data_root, lenet, run, scratch};

/// One bad input.
struct Case {
    /// What is wrong.
    what: &'static str,
    /// The arguments after `lenet`.
    args: Vec<String>,
    /// The exit code the rule asks for.
    code: i32,
    /// A fragment the error message must hold.
    fragment: String,
    /// A path that must not exist afterwards (nothing written for a run that cannot start).
    absent: Option<PathBuf>,
}

fn case(what: &'static str, args: &[&str], code: i32, fragment: &str) -> Case {
    Case {
        what,
        args: args.iter().map(|s| s.to_string()).collect(),
        code,
        fragment: fragment.to_string(),
        absent: None,
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Writes `text` to `dir/name` and returns the path as a string.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    s(&p)
}

/// A run directory with LeNet-5's config and freshly initialised weights, as `lenet train`
/// leaves it (no data needed to make it).
fn fake_run(dir: &Path) -> PathBuf {
    let run_dir = dir.join("run");
    let config = lenet_train::RunConfig::load(&configs().join("lenet5.toml"), &[]).unwrap();
    let run = lenet_train::RunDir::create(&run_dir).unwrap();
    run.write_config(&config).unwrap();
    let net = config
        .model
        .plan()
        .unwrap()
        .build(&burn::tensor::Device::flex());
    run.write_model(net).unwrap();
    run_dir
}

const MODEL: &str = "[model]\n";

/// The cases that need no dataset.
fn without_data(dir: &Path) -> Vec<Case> {
    let lenet5 = s(&configs().join("lenet5.toml"));
    let run_dir = fake_run(dir);
    let run = s(&run_dir);
    let corrupt_run = dir.join("corrupt");
    std::fs::create_dir_all(&corrupt_run).unwrap();
    std::fs::copy(run_dir.join("config.toml"), corrupt_run.join("config.toml")).unwrap();
    std::fs::write(corrupt_run.join("model.bpk"), b"not a burnpack file").unwrap();
    let model = |body: &str| format!("{MODEL}preset = \"lenet5\"\n{body}");
    let features = |block: &str| {
        format!(
            "{MODEL}num_classes = 10\ninput = {{ channels = 1, size = [28, 28] }}\n[[model.features]]\nout_channels = 6\n{block}\n"
        )
    };
    let one_d = file(
        dir,
        "1d.toml",
        "[model]\nnum_classes = 10\ninput = { channels = 1, size = [784] }\n[[model.features]]\nout_channels = 4\nkernel = 5\n",
    );
    let three_d = file(
        dir,
        "3d.toml",
        "[model]\nnum_classes = 10\ninput = { channels = 1, size = [4, 28, 28] }\n[[model.features]]\nout_channels = 4\nkernel = 3\n",
    );
    let text = file(dir, "not-a-picture.png", "hello");
    let blank = dir.join("blank.png");
    image::GrayImage::from_pixel(40, 40, image::Luma([200]))
        .save(&blank)
        .unwrap();
    let blank = s(&blank);
    let empty = dir.join("empty-data");
    std::fs::create_dir_all(&empty).unwrap();
    let empty = s(&empty);
    let new_run = dir.join("never-made");
    let mut cases = vec![
        // summary
        case("no network given", &["summary"], 2, "required"),
        case(
            "unknown preset",
            &["summary", "--preset", "lenet9"],
            2,
            "unknown preset `lenet9`",
        ),
        case(
            "missing config file",
            &["summary", "--config", "missing.toml"],
            2,
            "missing.toml",
        ),
        case(
            "not TOML",
            &["summary", "--config", &file(dir, "garbage.toml", "[[[")],
            2,
            "garbage.toml",
        ),
        case(
            "padding 2^63-1",
            &[
                "summary",
                "--config",
                &file(
                    dir,
                    "pad.toml",
                    &features("kernel = 5\npadding = 9223372036854775807"),
                ),
            ],
            2,
            "features[0].padding",
        ),
        case(
            "kernel 2^63-1",
            &[
                "summary",
                "--config",
                &file(
                    dir,
                    "kernel.toml",
                    &features("kernel = 9223372036854775807"),
                ),
            ],
            2,
            "features[0].kernel",
        ),
        case(
            "kernel beyond TOML's integers",
            &[
                "summary",
                "--config",
                &file(
                    dir,
                    "kernel64.toml",
                    &features("kernel = 18446744073709551615"),
                ),
            ],
            2,
            "kernel64.toml",
        ),
        case(
            "stride 2^40",
            &[
                "summary",
                "--config",
                &file(
                    dir,
                    "stride.toml",
                    &features("kernel = 5\nstride = 1099511627776"),
                ),
            ],
            2,
            "features[0].stride",
        ),
        case(
            "channels beyond memory",
            &[
                "summary",
                "--config",
                &file(
                    dir,
                    "wide.toml",
                    &model("[[model.features]]\nout_channels = 16777216\nkernel = 5\n"),
                ),
            ],
            2,
            "values per example",
        ),
        case(
            "parameters beyond memory",
            &[
                "summary",
                "--config",
                &file(
                    dir,
                    "dense.toml",
                    &model("[model.classifier]\nhidden = [1048576, 1048576]\n"),
                ),
            ],
            2,
            "trainable parameters",
        ),
        case(
            "zero input channels",
            &[
                "summary",
                "--config",
                &file(
                    dir,
                    "c0.toml",
                    "[model]\nnum_classes = 10\ninput = { channels = 0, size = [28, 28] }\n",
                ),
            ],
            2,
            "input.channels",
        ),
        case(
            "four spatial sizes",
            &[
                "summary",
                "--config",
                &file(
                    dir,
                    "4d.toml",
                    "[model]\nnum_classes = 10\ninput = { channels = 1, size = [2, 2, 2, 2] }\n",
                ),
            ],
            2,
            "input.size",
        ),
        case(
            "misspelt key",
            &[
                "summary",
                "--config",
                &file(dir, "typo.toml", &features("kernel = 5\ndropuot = 0.1")),
            ],
            2,
            "dropuot",
        ),
        case(
            "unknown activation",
            &[
                "summary",
                "--config",
                &file(
                    dir,
                    "act.toml",
                    &features("kernel = 5\nactivation = \"swish\""),
                ),
            ],
            2,
            "activation",
        ),
        case(
            "one class",
            &[
                "summary",
                "--config",
                &file(dir, "one.toml", &model("num_classes = 1\n")),
            ],
            2,
            "num_classes",
        ),
        case(
            "dropout 1.5",
            &[
                "summary",
                "--config",
                &file(dir, "drop.toml", &features("kernel = 5\ndropout = 1.5")),
            ],
            2,
            "features[0].dropout",
        ),
        case(
            "kernel larger than the maps",
            &[
                "summary",
                "--config",
                &file(dir, "big.toml", &features("kernel = 29")),
            ],
            2,
            "features[0].kernel",
        ),
        // train: config and flags
        case("no config", &["train"], 2, "give --config"),
        case(
            "zero epochs",
            &["train", "--config", &lenet5, "--epochs", "0"],
            2,
            "training.epochs",
        ),
        case(
            "negative learning rate",
            &["train", "--config", &lenet5, "--lr=-1"],
            2,
            "training.optimizer.lr",
        ),
        case(
            "zero batch size",
            &["train", "--config", &lenet5, "--batch-size", "0"],
            2,
            "training.batch_size",
        ),
        case(
            "unknown dataset",
            &["train", "--config", &lenet5, "--set", "data.dataset=cifar"],
            2,
            "data.dataset",
        ),
        case(
            "validation fraction 1.5",
            &["train", "--config", &lenet5, "--set", "data.validation=1.5"],
            2,
            "data.validation",
        ),
        case(
            "augment scale 2",
            &[
                "train",
                "--config",
                &lenet5,
                "--set",
                "data.augment.scale=2.0",
            ],
            2,
            "data.augment",
        ),
        case(
            "unknown backend",
            &["train", "--config", &lenet5, "--backend", "tpu"],
            2,
            "unknown backend `tpu`",
        ),
        case(
            "CUDA not compiled in",
            &["train", "--config", &lenet5, "--backend", "cuda"],
            2,
            "not compiled into this binary",
        ),
        case(
            "two CPU devices",
            &[
                "train",
                "--config",
                &lenet5,
                "--set",
                "backend.devices=[0, 1]",
            ],
            2,
            "single device",
        ),
        case(
            "ten classes expected",
            &["train", "--config", &lenet5, "--set", "model.num_classes=3"],
            2,
            "model.num_classes",
        ),
        case(
            "malformed override",
            &["train", "--config", &lenet5, "--set", "training.epochs"],
            2,
            "KEY=VALUE",
        ),
        case(
            "run directory holds a run",
            &["train", "--config", &lenet5, "--run-dir", &run],
            2,
            "already holds a run",
        ),
        case(
            "resume without a run",
            &["train", "--resume", "--run-dir", &s(&dir.join("nowhere"))],
            2,
            "no checkpoint to resume",
        ),
        case(
            "resume with another seed",
            &["train", "--resume", "--run-dir", &run, "--seed", "7"],
            2,
            "training.seed 42 → 7",
        ),
        // eval, predict, viz
        case(
            "no such checkpoint",
            &["eval", "--checkpoint", &s(&dir.join("nowhere"))],
            2,
            "nowhere",
        ),
        case(
            "corrupt weights",
            &["eval", "--checkpoint", &s(&corrupt_run)],
            2,
            "does not fit",
        ),
        case(
            "unknown split",
            &["eval", "--checkpoint", &run, "--split", "validation"],
            2,
            "validation",
        ),
        case(
            "unknown backend for eval",
            &["eval", "--checkpoint", &run, "--backend", "tpu"],
            2,
            "tpu",
        ),
        case(
            "eval offline without data",
            &[
                "eval",
                "--checkpoint",
                &run,
                "--offline",
                "--data-dir",
                &empty,
            ],
            2,
            "--offline",
        ),
        case(
            "a text file as a picture",
            &["predict", "--checkpoint", &run, &text],
            2,
            "not-a-picture.png",
        ),
        case(
            "a blank picture",
            &["predict", "--checkpoint", &run, &blank],
            2,
            "blank",
        ),
        case(
            "predict without pictures",
            &["predict", "--checkpoint", &run],
            2,
            "required",
        ),
        case(
            "viz of a missing picture",
            &[
                "viz",
                "--checkpoint",
                &run,
                "--image",
                "missing.png",
                "--out",
                &s(&dir.join("viz")),
            ],
            2,
            "missing.png",
        ),
        // data
        case(
            "unknown dataset to show",
            &["data", "show", "cifar", "--index", "0"],
            2,
            "cifar",
        ),
        case(
            "show without data",
            &[
                "data",
                "show",
                "mnist",
                "--index",
                "0",
                "--data-dir",
                &empty,
            ],
            2,
            "lenet data fetch mnist",
        ),
        case(
            "verify an empty directory",
            &["data", "verify", "--path", &empty],
            1,
            "problem(s) found",
        ),
        case(
            "verify a root without datasets",
            &["data", "verify", "--data-dir", &empty],
            2,
            "no dataset here",
        ),
        case(
            "fetch from a dead mirror",
            &[
                "data",
                "fetch",
                "mnist",
                "--data-dir",
                &s(&dir.join("fetched")),
                "--mirror",
                "http://127.0.0.1:1/",
            ],
            1,
            "could not download",
        ),
        // bench, devices
        case("bench without a mode", &["bench"], 2, "say what to measure"),
        case(
            "bench of a 1D network",
            &["bench", "--train", "--config", &one_d, "--steps", "1"],
            2,
            "2D image networks",
        ),
        case(
            "bench of a 3D network",
            &["bench", "--inference", "--config", &three_d, "--steps", "1"],
            2,
            "2D image networks",
        ),
        case(
            "bench of an unknown preset",
            &["bench", "--train", "--preset", "lenet9"],
            2,
            "unknown preset",
        ),
        case(
            "devices of a bad config",
            &[
                "devices",
                "--config",
                &file(
                    dir,
                    "dev.toml",
                    "[model]\npreset = \"lenet5\"\n[backend]\nkind = \"tpu\"\n",
                ),
            ],
            2,
            "unknown backend",
        ),
    ];
    // The network does not fit the data: nothing may be written for it.
    cases.push(Case {
        absent: Some(new_run.clone()),
        ..case(
            "train offline without data",
            &[
                "train",
                "--config",
                &lenet5,
                "--offline",
                "--data-dir",
                &empty,
                "--run-dir",
                &s(&new_run),
            ],
            2,
            "--offline",
        )
    });
    cases
}

/// The cases that need the MNIST files under `root`.
fn with_data(dir: &Path, root: &Path) -> Vec<Case> {
    let lenet5 = s(&configs().join("lenet5.toml"));
    let root = s(root);
    let run = s(&dir.join("run"));
    let no_run = |name: &str| dir.join(name);
    let mut cases = Vec::new();
    for (what, set, fragment, name) in [
        (
            "three-channel network on MNIST",
            "model.input.channels=3",
            "grey-scale",
            "rgb",
        ),
        (
            "input smaller than the digits",
            "model.input.size=[20, 20]",
            "28×28",
            "small",
        ),
        (
            "1D network on images",
            "model.input.size=[784]",
            "grey-scale",
            "flat",
        ),
        (
            "validation count larger than the data",
            "data.validation=60000",
            "data.validation",
            "holdout",
        ),
    ] {
        let target = no_run(name);
        cases.push(Case {
            absent: Some(target.clone()),
            ..case(
                what,
                &[
                    "train",
                    "--config",
                    &lenet5,
                    "--offline",
                    "--data-dir",
                    &root,
                    "--set",
                    set,
                    "--run-dir",
                    &s(&target),
                ],
                2,
                fragment,
            )
        });
    }
    cases.push(case(
        "limit of 0 training images",
        &[
            "train",
            "--config",
            &lenet5,
            "--offline",
            "--data-dir",
            &root,
            "--limit-train",
            "0",
            "--run-dir",
            &s(&no_run("zero")),
        ],
        2,
        "no train images",
    ));
    cases.push(case(
        "index past the test file (viz)",
        &[
            "viz",
            "--checkpoint",
            &run,
            "--index",
            "10000",
            "--offline",
            "--data-dir",
            &root,
            "--out",
            &s(&dir.join("viz")),
        ],
        2,
        "--index 10000",
    ));
    cases.push(case(
        "index past the test file (show)",
        &[
            "data",
            "show",
            "mnist",
            "--split",
            "test",
            "--index",
            "10000",
            "--data-dir",
            &root,
        ],
        2,
        "out of range",
    ));
    cases
}

#[test]
fn every_bad_input_is_a_clear_error_with_the_right_exit_code() {
    let dir = scratch("bad-inputs");
    let mut cases = without_data(&dir);
    match data_root() {
        Some(root) => cases.extend(with_data(&dir, &root)),
        None => eprintln!("(the cases that need MNIST were not run)"),
    }
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let (code, out, err) = run(lenet().args(&c.args));
        let all = format!("{out}{err}");
        let mut wrong = Vec::new();
        if code != c.code {
            wrong.push(format!("exit code {code}, expected {}", c.code));
        }
        if !all.contains(&c.fragment) {
            wrong.push(format!("no `{}` in the message", c.fragment));
        }
        if all.contains("panicked") || all.contains("internal error") || code == 70 || code == 101 {
            wrong.push("a panic".to_string());
        }
        if let Some(p) = &c.absent {
            if p.exists() {
                wrong.push(format!("{} was written", p.display()));
            }
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {} (lenet {})\n{}",
                c.what,
                wrong.join("; "),
                c.args.join(" "),
                all.trim()
            ));
        }
    }
    println!("{} bad inputs tried", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A picture of 20,000,000 × 1 pixels (its border sum overflowed a `u32` once) is classified
/// like any other.
#[test]
fn a_twenty_million_pixel_wide_picture_does_not_overflow() {
    let dir = scratch("wide-picture");
    let run_dir = fake_run(&dir);
    let width = 20_000_000u32;
    let picture = image::GrayImage::from_fn(width, 1, |x, _| {
        image::Luma([if x > width / 3 && x < width / 2 {
            255
        } else {
            250
        }])
    });
    let path = dir.join("wide.png");
    picture.save(&path).unwrap();
    let (code, out, err) = run(lenet()
        .args(["predict", "--checkpoint"])
        .arg(&run_dir)
        .arg(&path));
    assert!(code == 0 || code == 2, "exit {code}: {out}{err}");
    assert!(
        !err.contains("internal error") && !err.contains("panicked"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
