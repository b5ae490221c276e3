//! `lenet train`: train a network described by a run config, into a run directory.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use lenet_data::resolve_data_root;
use lenet_train::{select, train, DataOptions, DisplayMode, RunConfig, RunDir, TrainOptions};

use crate::UsageError;

/// Arguments of `lenet train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The run config (TOML). With --resume it defaults to the run directory's config.toml.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Where the run's files go (default: runs/CONFIG-DATE-TIME).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Continue the run in --run-dir from its last checkpoint.
    #[arg(long, requires = "run_dir")]
    resume: bool,
    /// Override training.epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Override training.batch_size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Override training.optimizer.lr.
    #[arg(long)]
    lr: Option<f64>,
    /// Override training.seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override backend.kind (flex, ndarray, wgpu, cuda).
    #[arg(long)]
    backend: Option<String>,
    /// Start from the weights of a trained or imported model (its run directory or a .bpk
    /// file) instead of fresh ones: fine-tuning (training.init_from).
    #[arg(long, value_name = "RUN")]
    init_from: Option<PathBuf>,
    /// Override any config value, e.g. --set training.optimizer.kind=sgd (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Dataset root (default: $LENET_DATA_DIR, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Never download datasets.
    #[arg(long)]
    offline: bool,
    /// Print nothing but the result.
    #[arg(long, short)]
    quiet: bool,
    /// Plain progress lines even on a terminal (no dashboard).
    #[arg(long)]
    plain: bool,
    /// Train on only the first N training images (quick runs; data.limit.train).
    #[arg(long, value_name = "N")]
    limit_train: Option<usize>,
    /// Validate on only the first N held-out images (data.limit.valid).
    #[arg(long, value_name = "N")]
    limit_valid: Option<usize>,
    /// Test on only the first N test images (data.limit.test).
    #[arg(long, value_name = "N")]
    limit_test: Option<usize>,
    /// Also print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// `YYYYMMDD-HHMMSS` (UTC) for default run names.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn default_run_dir(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    PathBuf::from("runs").join(format!("{stem}-{}", timestamp()))
}

/// The overrides the flags ask for, as `KEY=VALUE` (checked like the config file).
fn overrides(args: &TrainArgs) -> Vec<String> {
    let mut o = Vec::new();
    if let Some(v) = args.epochs {
        o.push(format!("training.epochs={v}"));
    }
    if let Some(v) = args.batch_size {
        o.push(format!("training.batch_size={v}"));
    }
    if let Some(v) = args.lr {
        o.push(format!("training.optimizer.lr={v:e}"));
    }
    if let Some(v) = args.seed {
        o.push(format!("training.seed={v}"));
    }
    if let Some(v) = &args.backend {
        o.push(format!("backend.kind=\"{v}\""));
    }
    for (part, v) in [
        ("train", args.limit_train),
        ("valid", args.limit_valid),
        ("test", args.limit_test),
    ] {
        if let Some(n) = v {
            o.push(format!("data.limit.{part}={n}"));
        }
    }
    if let Some(from) = &args.init_from {
        // Absolute, so that the run's config.toml names the same weights from anywhere.
        let from = std::path::absolute(from).unwrap_or_else(|_| from.clone());
        // A JSON string is a valid TOML basic string.
        let quoted = serde_json::Value::String(from.display().to_string()).to_string();
        o.push(format!("training.init_from={quoted}"));
    }
    o.extend(args.set.iter().cloned());
    o
}

fn display(args: &TrainArgs) -> DisplayMode {
    if args.quiet {
        DisplayMode::Quiet
    } else if args.plain {
        DisplayMode::Lines
    } else {
        DisplayMode::Auto
    }
}

/// Runs `lenet train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let config_path = match (&args.config, args.resume, &args.run_dir) {
        (Some(c), _, _) => c.clone(),
        (None, true, Some(dir)) => RunDir::open(dir)?.config_path(),
        _ => {
            return Err(UsageError("give --config FILE (or --resume --run-dir DIR)".into()).into())
        }
    };
    let mut config = RunConfig::load(&config_path, &overrides(&args))?;
    if let (true, Some(dir)) = (args.resume, &args.run_dir) {
        // The run's own config, extended by what may change on resume; anything else is
        // refused, before anything is written.
        config = RunDir::open(dir)?.resume_config(&config)?;
    }
    let device = select(&config.backend).with_context(|| format!("{}", config_path.display()))?;
    let run_dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| default_run_dir(&config_path));
    let opts = TrainOptions {
        run_dir: run_dir.clone(),
        data: DataOptions {
            root: resolve_data_root(args.data_dir.as_deref()),
            offline: args.offline,
            report_downloads: !args.quiet,
        },
        display: display(&args),
        resume: args.resume,
        interrupter: Some(crate::process::ctrl_c_interrupter()),
    };
    if !args.quiet {
        println!(
            "training {} ({} parameters) on {} with {} for {} epochs → {}",
            config.model.name,
            lenet_model::summary::thousands(config.model.plan()?.parameters()),
            config.data.name(),
            device.description,
            config.training.epochs,
            run_dir.display()
        );
    }
    let summary = train(&config, &device, &opts)
        .with_context(|| format!("cannot train {}", config_path.display()))?;
    let valid = match summary.valid_accuracy {
        Some(a) => format!(
            "best validation accuracy {:.2}% at epoch {} of {}",
            100.0 * a,
            summary.best_epoch,
            summary.epochs_completed
        ),
        None => format!(
            "no validation accuracy; {} epoch{}",
            summary.epochs_completed,
            if summary.epochs_completed == 1 {
                ""
            } else {
                "s"
            }
        ),
    };
    println!(
        "test accuracy {:.2}% ({} / {}), loss {:.4}; {valid}; {:.0} images/s, {:.1} s",
        100.0 * summary.test_accuracy,
        summary.test_correct,
        summary.test_samples,
        summary.test_loss,
        summary.images_per_second,
        summary.train_seconds
    );
    if let Some(why) = &summary.stopped {
        println!("stopped early: {why}");
    }
    println!("model: {}", run_dir.join("model.bpk").display());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}
