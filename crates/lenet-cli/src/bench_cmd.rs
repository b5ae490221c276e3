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
use lenet_model::preset;
use lenet_model::ConvNet;
use lenet_train::data::{resolve_data_root, Split};
use lenet_train::run_config::DataConfig;
use lenet_train::run_config::OptimizerConfig;
use lenet_train::{device_for, ImageItem};

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
    /// The network to measure (`--train`, `--inference`).
    #[arg(long, default_value = "lenet5")]
    preset: String,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [64usize, 256])]
    batch_sizes: Vec<usize>,
    /// Backend whose tensors are made.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Seconds per measurement window (the batcher) / steps per window (training, inference).
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Steps per window for --train and --inference.
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
fn train_windows(args: &BenchArgs, device: &Device, bs: usize) -> anyhow::Result<Measurement> {
    let plan = preset(&args.preset)?.plan()?;
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
fn inference_windows(args: &BenchArgs, device: &Device) -> anyhow::Result<Measurement> {
    let plan = preset(&args.preset)?.plan()?;
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
    if !(args.train || args.inference || args.batcher) {
        return Err(UsageError(
            "say what to measure: --train, --inference and/or --batcher".into(),
        )
        .into());
    }
    let device = device_for(&args.backend, None).map_err(|e| UsageError(e.to_string()))?;
    let mut results = Vec::new();
    if args.train {
        for &bs in &args.batch_sizes {
            results.push(train_windows(&args, &device, bs.max(1))?);
        }
    }
    if args.inference {
        results.push(inference_windows(&args, &device)?);
    }
    if args.batcher {
        results.extend(batcher_windows(&args, &device)?);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "backend": args.backend,
                "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                "preset": args.preset,
                "results": results,
            }))?
        );
    } else {
        println!(
            "{} on {} ({} threads available), median of 5 windows [min, max]:",
            args.preset,
            args.backend,
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        );
        for m in results {
            println!(
                "  {:<9} batch {:>4}: {:>10.0} images/s  [{:.0}, {:.0}]",
                m.what, m.batch_size, m.images_per_second, m.min, m.max
            );
        }
    }
    Ok(())
}

/// Batches per second of the data pipeline, reported as images per second.
fn batcher_windows(args: &BenchArgs, device: &Device) -> anyhow::Result<Vec<Measurement>> {
    let data_cfg: DataConfig = toml::from_str("").map_err(|e| UsageError(e.to_string()))?;
    let root = resolve_data_root(args.data_dir.as_deref());
    let source = lenet_train::source::load(&data_cfg, &root, Split::Train, true)?;
    let plan = preset("lenet5")?.plan()?;
    let batcher = source.batcher(&plan, None)?;
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
