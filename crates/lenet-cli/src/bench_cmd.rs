//! `lenet bench`: throughput measurements (`lenet_train::bench`), each the median (and spread)
//! of 5 timed windows after a warm-up:
//!
//! * `--train`: steady-state training steps (forward, cross-entropy, backward, optimizer step) of
//!   a network on random images, at each batch size, through `lenet train`'s step;
//! * `--inference`: forward passes without autodiff at batch 1000;
//! * `--batcher`: how many images per second the data pipeline turns into tensors, which must
//!   never limit training;
//! * `--layers`: a per-layer profile; `--epoch`: one real epoch through `lenet train`.

use std::path::PathBuf;

use clap::Args;
use lenet_data::resolve_data_root;
use lenet_train::bench::{self, layers};
use lenet_train::device::{cpu_model, cpu_threads};
use lenet_train::{select_one, BackendKind, DataOptions, RunConfig};

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
    /// Real epochs through `lenet train`'s pipeline (data, batcher, metrics, validation,
    /// checkpoint), five, each timed against the same number of training steps on random
    /// images run just before and just after it.
    #[arg(long)]
    epoch: bool,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [64usize, 256])]
    batch_sizes: Vec<usize>,
    /// Backend: flex, ndarray, wgpu, cuda, auto (default: the config's, else flex).
    #[arg(long)]
    backend: Option<BackendKind>,
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

/// Runs `lenet bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if !(args.train || args.inference || args.batcher || args.layers || args.epoch) {
        return Err(UsageError(
            "say what to measure: --train, --inference, --batcher, --layers and/or --epoch".into(),
        )
        .into());
    }
    let mut config = match &args.config {
        Some(path) => RunConfig::load(path, &[])?,
        None => {
            let text = format!("[model]\npreset = \"{}\"\n", args.preset);
            RunConfig::parse(&text, "--preset", &[])?
        }
    };
    if let Some(kind) = args.backend {
        config.backend.kind = kind;
    }
    let selected = select_one(config.backend.kind, config.backend.device)?;
    let device = selected.device().clone();
    let plan = config.model.plan()?;
    let data = DataOptions {
        root: resolve_data_root(args.data_dir.as_deref()),
        offline: true,
        report_downloads: false,
    };
    let mut results = Vec::new();
    let mut layer_tables = Vec::new();
    if args.train {
        for &bs in &args.batch_sizes {
            results.push(bench::train_throughput(
                &config,
                &plan,
                &device,
                bs.max(1),
                args.steps,
            )?);
        }
    }
    if args.inference {
        results.push(bench::inference_throughput(&plan, &device, args.steps)?);
    }
    if args.batcher {
        let sizes = &args.batch_sizes;
        results.extend(bench::batcher_throughput(
            &config,
            &plan,
            &device,
            &data,
            sizes,
            args.seconds,
        )?);
    }
    if args.layers {
        for &bs in &args.batch_sizes {
            let table = layers::profile(&plan, &device, bs.max(1), args.steps);
            if !args.json {
                print!("{}", layers::table(&table, bs));
            }
            layer_tables.push(serde_json::json!({ "batch_size": bs, "layers": table }));
        }
    }
    let epoch = match args.epoch {
        true => Some(bench::epoch(&config, &plan, &selected, data, &results)?),
        false => None,
    };
    let model = config.model.name.clone();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "model": model,
                "backend": selected.kind.name(),
                "device": selected.description,
                "threads": cpu_threads(),
                "cpu": cpu_model(),
                "results": results,
                "layers": layer_tables,
                "epoch": epoch,
            }))?
        );
        return Ok(());
    }
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
            "  epoch     batch {:>4}: {} training + {} validation images in {} s ({:.0} images/s training, median){}",
            e.batch_size,
            e.train_images,
            e.valid_images,
            seconds_list(&e.epoch_seconds),
            e.train_images_per_second,
            match e.ratio_to_windows {
                Some(r) => format!("; {r:.2}× at the windows' median raw speed"),
                None => String::new(),
            }
        );
        println!(
            "  raw       batch {:>4}: the same steps on random images in {} s, before, between and after the epochs: each epoch takes {}× the mean of its neighbours, median {:.2}×",
            e.batch_size,
            seconds_list(&e.raw_seconds),
            e.ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(" / "),
            e.ratio_to_raw
        );
    }
    Ok(())
}

/// `2.51 / 2.63 / 2.48`.
fn seconds_list(seconds: &[f64]) -> String {
    seconds
        .iter()
        .map(|s| format!("{s:.2}"))
        .collect::<Vec<_>>()
        .join(" / ")
}
