//! `lenet bench`: throughput measurements. So far: the data pipeline (`--batcher`), i.e. how many
//! batches per second the batcher turns into tensors, which must never limit training on the CPU.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use lenet_model::preset;
use lenet_train::data::{resolve_data_root, Split};
use lenet_train::run_config::DataConfig;
use lenet_train::{device_for, ImageItem};

use crate::UsageError;

/// Arguments of `lenet bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Measure the batcher (MNIST images → normalised tensors on the device).
    #[arg(long, required = true)]
    batcher: bool,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [64usize, 256])]
    batch_sizes: Vec<usize>,
    /// Backend whose tensors are made.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Seconds per measurement window.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Dataset root (default: $LENET_DATA_DIR, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `lenet bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let device = device_for(&args.backend, 0).map_err(|e| UsageError(e.to_string()))?;
    let data_cfg: DataConfig = toml::from_str("").map_err(|e| UsageError(e.to_string()))?;
    let root = resolve_data_root(args.data_dir.as_deref());
    let source = lenet_train::source::load(&data_cfg, &root, Split::Train, true)?;
    let plan = preset("lenet5")?.plan()?;
    let batcher = source.batcher(&plan, None)?;
    let n = source.data.len();
    let mut results = Vec::new();
    for &bs in &args.batch_sizes {
        let bs = bs.max(1);
        let mut windows = Vec::new();
        let mut next = 0usize;
        for _ in 0..5 {
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
                let batch = batcher.make_batch(&items, &device);
                std::hint::black_box(batch);
                batches += 1;
            }
            windows.push(batches as f64 / start.elapsed().as_secs_f64());
        }
        windows.sort_by(f64::total_cmp);
        let median = windows[windows.len() / 2];
        results.push((bs, median, windows[0], windows[windows.len() - 1]));
    }
    if args.json {
        let v: Vec<_> = results
            .iter()
            .map(|(bs, med, lo, hi)| serde_json::json!({"batch_size": bs, "batches_per_second": med, "images_per_second": med * *bs as f64, "min": lo, "max": hi}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "batcher on {} (MNIST, 28×28 → [B, 1, 28, 28]), median of 5 windows of {} s:",
            args.backend, args.seconds
        );
        for (bs, med, lo, hi) in results {
            println!("  batch {bs:>4}: {med:>9.0} batches/s  ({:>10.0} images/s; min {lo:.0}, max {hi:.0})", med * bs as f64);
        }
    }
    Ok(())
}
