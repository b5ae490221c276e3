//! `lenet eval`: evaluate a trained model on a split of its dataset.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use lenet_train::data::{resolve_data_root, train_valid_split, Split};
use lenet_train::run_dir::write_atomic;
use lenet_train::{evaluate, pictures};

use crate::UsageError;

/// Which images to evaluate on.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EvalSplit {
    /// The test set.
    Test,
    /// The training images (without the held-out validation part).
    Train,
    /// The held-out validation part of the training set.
    Valid,
}

impl EvalSplit {
    /// The file the images come from (`train` and `valid` share the training file).
    pub fn file(self) -> Split {
        match self {
            EvalSplit::Test => Split::Test,
            EvalSplit::Train | EvalSplit::Valid => Split::Train,
        }
    }
}

/// Arguments of `lenet eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A run directory, or a weights file (.bpk) with config.toml beside it.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Which images.
    #[arg(long, value_enum, default_value = "test")]
    split: EvalSplit,
    /// Dataset root (default: $LENET_DATA_DIR, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Backend to evaluate on (default: the run's).
    #[arg(long)]
    backend: Option<String>,
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
    let trained = crate::checkpoint::load(&args.checkpoint, args.backend.as_deref())?;
    let (config, plan, net, device, weights) = (
        &trained.config,
        &trained.plan,
        &trained.net,
        &trained.device,
        &trained.weights,
    );
    let root = resolve_data_root(args.data_dir.as_deref());
    let source = lenet_train::source::load(&config.data, &root, args.split.file(), args.offline)?;
    let batcher = source
        .batcher(plan, None)
        .map_err(|e| UsageError(e.to_string()))?;
    let mut indices: Vec<usize> = match args.split {
        EvalSplit::Test => (0..source.data.len()).collect(),
        EvalSplit::Train | EvalSplit::Valid => {
            let (train, valid) = train_valid_split(
                source.data.len(),
                config.data.validation,
                config.training.seed,
            )?;
            if matches!(args.split, EvalSplit::Train) {
                train
            } else {
                valid
            }
        }
    };
    if let Some(n) = args.limit {
        indices.truncate(n);
    }
    let report = evaluate(net, &batcher, &indices, device, args.batch_size.max(1));
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(out) = &args.output {
        write_atomic(out, format!("{json}\n").as_bytes()).with_context(|| "writing the report")?;
    }
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the plots directory {}", dir.display()))?;
        let title = format!(
            "{} on {} {:?}: {} / {} correct ({:.2}%)",
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
        let shown = match pictures::misclassified(
            &report,
            &source.data,
            args.misclassified,
            "misclassified: true → predicted (probability)",
        ) {
            Some(grid) => {
                lenet_viz::write_grid(&grid, &wrong)?;
                grid.tiles.len()
            }
            None => {
                // Not a stale picture from an earlier evaluation.
                let _ = std::fs::remove_file(&wrong);
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
            "{} on {} {:?} ({}), {}\n",
            config.model.name,
            source.data.name,
            args.split,
            weights.display(),
            trained.device_description
        );
        print!("{}", report.to_table());
    }
    Ok(())
}
