//! `lenet eval`: evaluate a trained model on a split of its dataset.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lenet_data::resolve_data_root;
use lenet_train::data::{self, DataOptions, Subset};
use lenet_train::{evaluate, pictures, BackendKind, TrainedModel};

/// Arguments of `lenet eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A run directory, or a weights file (.bpk) with config.toml beside it.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Which images: test, train (the training file without the held-out images) or valid
    /// (the held-out images).
    #[arg(long, default_value = "test")]
    split: Subset,
    /// Dataset root (default: $LENET_DATA_DIR, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Backend to evaluate on: flex, ndarray, wgpu, cuda, auto (default: the run's).
    #[arg(long)]
    backend: Option<BackendKind>,
    /// Images per batch.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Evaluate only the first N images of the split.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Never download datasets.
    #[arg(long)]
    offline: bool,
    /// Write pictures into this directory (created if needed): `confusion.png` and
    /// `misclassified.png`.
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
    /// How many misclassified images `misclassified.png` shows (the first ones, in order).
    #[arg(long, value_name = "N", default_value_t = 40)]
    misclassified: usize,
}

/// Runs `lenet eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let model = TrainedModel::load(&args.checkpoint, args.backend)?;
    let config = &model.config;
    let opts = DataOptions {
        root: resolve_data_root(args.data_dir.as_deref()),
        offline: args.offline,
        report_downloads: !args.json,
    };
    let source = data::load_file(config, args.split.file(), &opts)?;
    let batcher = source.batcher(&model.plan, None)?;
    let indices = data::indices(args.split, source.data.len(), config, args.limit)?;
    if indices.is_empty() && args.split == Subset::Valid && config.data.validation.is_none() {
        return Err(crate::UsageError(format!(
            "{}: this run held out no validation images (data.validation = 0 in its config); evaluate --split train or test",
            args.checkpoint.display()
        ))
        .into());
    }
    let report = evaluate(
        &model.net,
        &batcher,
        &indices,
        &model.device,
        args.batch_size.max(1),
    )?;
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(out) = &args.output {
        lenet_io::write_atomic(out, format!("{json}\n").as_bytes())?;
    }
    if let Some(dir) = &args.plots {
        let title = format!(
            "{} on {} {}: {} / {} correct ({:.2}%)",
            config.model.name,
            source.data.name,
            args.split,
            report.correct,
            report.num_samples,
            100.0 * report.accuracy
        )
        .to_lowercase();
        let confusion = dir.join("confusion.png");
        pictures::write_confusion(&report, &source.data.class_names, &title, &confusion)?;
        let wrong = dir.join("misclassified.png");
        let caption = "misclassified: true → predicted (probability)";
        let shown =
            match pictures::misclassified(&report, &source.data, args.misclassified, caption) {
                Some(grid) => {
                    lenet_viz::write_grid(&grid, &wrong)?;
                    grid.tiles.len()
                }
                None => {
                    // Not a stale picture from an earlier evaluation.
                    if wrong.exists() {
                        std::fs::remove_file(&wrong).with_context(|| {
                            format!("cannot remove the stale {}", wrong.display())
                        })?;
                    }
                    0
                }
            };
        eprintln!(
            "wrote {}{}",
            confusion.display(),
            if shown > 0 {
                format!(" and {} ({shown} images)", wrong.display())
            } else {
                " (no misclassified images)".to_string()
            }
        );
    }
    if args.json {
        println!("{json}");
    } else {
        println!(
            "{} on {} {} ({}), {}\n",
            config.model.name,
            source.data.name,
            args.split,
            model.weights.display(),
            model.device_description
        );
        print!("{}", report.to_table());
    }
    Ok(())
}
