//! `lenet bench`: throughput measurements, each the median (and spread) of 5 timed windows after a
//! warm-up:
//!
//! * `--train`: steady-state training steps (forward, cross-entropy, backward, Adam step) of a
//!   network on random images, at each batch size;
//! * `--inference`: forward passes without autodiff at batch 1000;
//! * `--batcher`: how many batches per second the data pipeline turns into tensors, which must
//!   never limit training.

use std::path::PathBuf;
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor};
use clap::Args;
use lenet_model::ConvNet;
use lenet_model::Plan;
use lenet_train::backend::{cpu_model, cpu_threads};
use lenet_train::data::{resolve_data_root, Split};
use lenet_train::run_config::OptimizerConfig;
use lenet_train::{select, ImageItem, RunConfig};

use crate::UsageError;

/// Arguments of `lenet bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Measure training steps on random data.
    #[arg(long)]
    train: bool,
    /// Measure inference (batch 1000, no autodiff).
    #[arg(long)]
    inference: bool,
    /// Measure the batcher (MNIST images → normalised tensors on the device).
    #[arg(long)]
    batcher: bool,
    /// Time every layer on its own, forward and backward, at each batch size (where the time
    /// of a training step goes).
    #[arg(long)]
    layers: bool,
    /// The network to measure: a built-in one.
    #[arg(long, default_value = "lenet5", conflicts_with = "config")]
    preset: String,
    /// The network (and, for `--epoch`, the whole run) of a run config instead of a preset.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// One epoch of real training through `lenet train`'s pipeline (data, batcher, metrics,
    /// validation, checkpoint): its time against 60,000 images at the raw training speed.
    #[arg(long)]
    epoch: bool,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [64usize, 256])]
    batch_sizes: Vec<usize>,
    /// Backend (default: the config's, else flex).
    #[arg(long)]
    backend: Option<String>,
    /// Seconds per measurement window (the batcher).
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Steps per window for --train, --inference and --layers.
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Dataset root (default: $LENET_DATA_DIR, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// One measurement: median and spread of the windows.
#[derive(Debug, Clone, serde::Serialize)]
struct Measurement {
    what: String,
    batch_size: usize,
    images_per_second: f64,
    min: f64,
    max: f64,
}

fn measure(
    what: &str,
    batch_size: usize,
    windows: usize,
    mut window: impl FnMut() -> f64,
) -> Measurement {
    let mut rates: Vec<f64> = (0..windows).map(|_| window()).collect();
    rates.sort_by(f64::total_cmp);
    Measurement {
        what: what.to_string(),
        batch_size,
        images_per_second: rates[rates.len() / 2],
        min: rates[0],
        max: rates[rates.len() - 1],
    }
}

/// Training steps of `net` on random data: images per second per window.
fn train_windows(
    args: &BenchArgs,
    plan: &Plan,
    device: &Device,
    bs: usize,
) -> anyhow::Result<Measurement> {
    let shape = plan.input_shape();
    let ad = device.clone().autodiff();
    device.seed(0);
    let mut net = plan.build(&ad);
    let mut optim = lenet_train::train::optimizer(&OptimizerConfig::default(), None);
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let batches: Vec<(Tensor<4>, Tensor<1, Int>)> = (0..4)
        .map(|_| {
            (
                Tensor::random(
                    [bs, shape[0], shape[1], shape[2]],
                    Distribution::Normal(0.0, 1.0),
                    &ad,
                ),
                Tensor::<1, Int>::random(
                    [bs],
                    Distribution::Uniform(0.0, plan.num_classes as f64),
                    &ad,
                ),
            )
        })
        .collect();
    let mut step = |i: usize, net: ConvNet| -> ConvNet {
        let (x, y) = &batches[i % batches.len()];
        let loss = loss_fn.forward(net.forward_2d(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        optim.step(1e-3, net, grads)
    };
    for i in 0..10 {
        net = step(i, net);
    }
    let _ = device.flush();
    let mut slot = Some(net);
    let steps = args.steps.max(1);
    Ok(measure("train", bs, 5, || {
        let start = Instant::now();
        let mut n = slot.take().unwrap_or_else(|| plan.build(&ad));
        for i in 0..steps {
            n = step(i, n);
        }
        // Wait for the device (GPU backends queue work).
        let _ = n.output.weight.val().into_data();
        slot = Some(n);
        (steps * bs) as f64 / start.elapsed().as_secs_f64()
    }))
}

/// Forward passes at batch 1000 without autodiff.
fn inference_windows(
    args: &BenchArgs,
    plan: &Plan,
    device: &Device,
) -> anyhow::Result<Measurement> {
    let shape = plan.input_shape();
    let net = plan.build(device);
    let bs = 1000;
    let x: Tensor<4> = Tensor::random(
        [bs, shape[0], shape[1], shape[2]],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    for _ in 0..3 {
        let _ = net.forward_2d(x.clone()).into_data();
    }
    let steps = (args.steps / 3).max(1);
    Ok(measure("inference", bs, 5, || {
        let start = Instant::now();
        for _ in 0..steps {
            let _ = net.forward_2d(x.clone()).into_data();
        }
        (steps * bs) as f64 / start.elapsed().as_secs_f64()
    }))
}

/// Runs `lenet bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if !(args.train || args.inference || args.batcher || args.layers || args.epoch) {
        return Err(UsageError(
            "say what to measure: --train, --inference, --batcher, --layers and/or --epoch".into(),
        )
        .into());
    }
    let config = match &args.config {
        Some(path) => RunConfig::load(path, &[]).map_err(|e| UsageError(e.to_string()))?,
        None => {
            let text = format!("[model]\npreset = \"{}\"\n", args.preset);
            RunConfig::parse(&text, "--preset", &[]).map_err(|e| UsageError(e.to_string()))?
        }
    };
    let backend = args.backend.clone().unwrap_or(config.backend.kind.clone());
    let selected =
        select(&backend, config.backend.device, &[]).map_err(|e| UsageError(e.to_string()))?;
    let device = selected.device().clone();
    let plan = config.model.plan()?;
    let mut results = Vec::new();
    let mut layer_tables = Vec::new();
    if args.train {
        for &bs in &args.batch_sizes {
            results.push(train_windows(&args, &plan, &device, bs.max(1))?);
        }
    }
    if args.inference {
        results.push(inference_windows(&args, &plan, &device)?);
    }
    if args.batcher {
        results.extend(batcher_windows(&args, &config, &plan, &device)?);
    }
    if args.layers {
        for &bs in &args.batch_sizes {
            let table = crate::bench_layers::profile(&plan, &device, bs.max(1), args.steps)?;
            if !args.json {
                print!("{}", crate::bench_layers::table(&table, bs));
            }
            layer_tables.push(serde_json::json!({ "batch_size": bs, "layers": table }));
        }
    }
    let epoch = if args.epoch {
        Some(epoch_run(&args, &config, &backend, &results)?)
    } else {
        None
    };
    let model = config.model.name.clone();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "model": model,
                "backend": selected.kind,
                "device": selected.description,
                "threads": cpu_threads(),
                "cpu": cpu_model(),
                "results": results,
                "layers": layer_tables,
                "epoch": epoch,
            }))?
        );
    } else {
        println!(
            "{model} on {} — {}; median of 5 windows [min, max]:",
            selected.description,
            cpu_model()
        );
        for m in &results {
            println!(
                "  {:<9} batch {:>4}: {:>10.0} images/s  [{:.0}, {:.0}]",
                m.what, m.batch_size, m.images_per_second, m.min, m.max
            );
        }
        if let Some(e) = &epoch {
            println!(
                "  epoch     batch {:>4}: {:>10.1} s for {} training + {} validation images ({:.0} images/s training){}",
                e.batch_size,
                e.seconds,
                e.train_images,
                e.valid_images,
                e.train_images_per_second,
                match e.ratio_to_raw {
                    Some(r) => format!("; {r:.2}× the time of 60,000 images at the raw speed"),
                    None => String::new(),
                }
            );
        }
    }
    Ok(())
}

/// One real epoch through `lenet train`.
#[derive(Debug, serde::Serialize)]
struct EpochMeasurement {
    batch_size: usize,
    seconds: f64,
    train_images: usize,
    valid_images: usize,
    train_images_per_second: f64,
    /// Epoch time / (60,000 / raw training images per second at this batch size), when
    /// `--train` measured that batch size.
    ratio_to_raw: Option<f64>,
}

/// Trains one epoch of `config` on the real data into a temporary run directory.
fn epoch_run(
    args: &BenchArgs,
    config: &RunConfig,
    backend: &str,
    raw: &[Measurement],
) -> anyhow::Result<EpochMeasurement> {
    let mut config = config.clone();
    config.training.epochs = 1;
    config.backend.kind = backend.to_string();
    let dir = std::env::temp_dir().join(format!("lenet-bench-epoch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = lenet_train::TrainOptions {
        run_dir: dir.clone(),
        data_root: resolve_data_root(args.data_dir.as_deref()),
        offline: true,
        display: lenet_train::DisplayMode::Quiet,
        resume: false,
        limit: None,
    };
    let result = lenet_train::train(&config, &opts);
    let rows = lenet_train::run_dir::RunDir::open_for_resume(&dir)
        .ok()
        .and_then(|d| d.read_metrics().ok())
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let summary = result?;
    let seconds: f64 = rows.iter().filter_map(|r| r.get("seconds")).sum();
    let images = |split: &str| {
        rows.iter()
            .filter(|r| r.split == split)
            .filter_map(|r| Some(r.get("images_per_second")? * r.get("seconds")?))
            .sum::<f64>()
            .round() as usize
    };
    let bs = config.training.batch_size;
    Ok(EpochMeasurement {
        batch_size: bs,
        seconds,
        train_images: images("train"),
        valid_images: images("valid"),
        train_images_per_second: summary.images_per_second,
        ratio_to_raw: raw
            .iter()
            .find(|m| m.what == "train" && m.batch_size == bs)
            .map(|m| seconds / (60_000.0 / m.images_per_second)),
    })
}

/// Batches per second of the data pipeline, reported as images per second.
fn batcher_windows(
    args: &BenchArgs,
    config: &RunConfig,
    plan: &Plan,
    device: &Device,
) -> anyhow::Result<Vec<Measurement>> {
    let root = resolve_data_root(args.data_dir.as_deref());
    let source = lenet_train::source::load(&config.data, &root, Split::Train, true)?;
    let batcher = source.batcher(plan, None)?;
    let n = source.data.len();
    let mut out = Vec::new();
    for &bs in &args.batch_sizes {
        let bs = bs.max(1);
        let mut next = 0usize;
        out.push(measure("batcher", bs, 5, || {
            let start = Instant::now();
            let mut batches = 0usize;
            while start.elapsed().as_secs_f64() < args.seconds {
                let items: Vec<ImageItem> = (0..bs)
                    .map(|i| ImageItem {
                        index: (next + i) % n,
                        augment_seed: None,
                    })
                    .collect();
                next = (next + bs) % n;
                std::hint::black_box(batcher.make_batch(&items, device));
                batches += 1;
            }
            (batches * bs) as f64 / start.elapsed().as_secs_f64()
        }));
    }
    Ok(out)
}
