//! `lenet`: define a LeNet-style network in a config file, inspect it, train it, evaluate it.
//!
//! A thin binary: each subcommand maps its flags to calls into the library crates and prints
//! what they return. Everything that touches the whole process lives here and nowhere else:
//! the environment it pins before any thread starts ([`process`]), the Ctrl-C handler, and the
//! exit code, which follows one rule ([`exit_code`]): 0 success, 2 the user's input, 1 a failure
//! at run time, 130 interrupted, 70 a bug (a panic).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench_cmd;
mod data_cmd;
mod devices_cmd;
mod eval_cmd;
mod export_cmd;
mod import_cmd;
mod predict_cmd;
mod process;
mod serve_cmd;
mod summary_cmd;
mod sweep_cmd;
mod train_cmd;
mod viz_cmd;

/// LeNet-style convolutional networks on MNIST, from the command line.
#[derive(Parser, Debug)]
#[command(name = "lenet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a network's layers, output shapes, parameter counts and size formulas.
    Summary(summary_cmd::SummaryArgs),
    /// Train a network from a run config into a run directory.
    Train(train_cmd::TrainArgs),
    /// Evaluate a trained model: accuracy, loss, per-class metrics, confusion matrix.
    Eval(eval_cmd::EvalArgs),
    /// Classify your own pictures with a trained model.
    Predict(predict_cmd::PredictArgs),
    /// Draw a trained network's filters and the feature maps of one image.
    Viz(viz_cmd::VizArgs),
    /// Measure training, inference and batcher throughput.
    Bench(bench_cmd::BenchArgs),
    /// Turn a PyTorch state_dict or a safetensors file into a lenet run directory.
    Import(import_cmd::ImportArgs),
    /// Write a trained model as ONNX, safetensors or a PyTorch state_dict file.
    Export(export_cmd::ExportArgs),
    /// Serve the runs, a drawing playground and a prediction API over HTTP.
    Serve(serve_cmd::ServeArgs),
    /// Many runs: plan a sweep (grid, random, seeds), run it here or on SLURM/Kubernetes, report.
    Sweep(sweep_cmd::SweepArgs),
    /// Download, verify and look at datasets.
    Data(data_cmd::DataArgs),
    /// List the backends and devices (CPU, GPUs) this binary can use.
    Devices(devices_cmd::DevicesArgs),
}

/// An error in the flags the user gave: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code of a failed command, by one rule: **2** when what the user asked for or
/// pointed at is wrong (flags, config files, paths, data files that do not fit), **1** when
/// something failed while doing the work (reading or writing files, the network, a diverging
/// loss), **130** when training was interrupted. The first cause that is one of the library
/// errors decides, through its `is_usage()`.
fn exit_code(err: &anyhow::Error) -> u8 {
    use lenet_train::TrainError;
    for cause in err.chain() {
        if let Some(TrainError::Interrupted(_)) = cause.downcast_ref::<TrainError>() {
            return 130;
        }
        if let Some(usage) = is_usage(cause) {
            return if usage { 2 } else { 1 };
        }
    }
    1
}

/// Whether `cause` (one of the library errors, or ours) is the user's mistake; `None` for other
/// errors, whose causes decide.
fn is_usage(cause: &(dyn std::error::Error + 'static)) -> Option<bool> {
    use lenet_train::{bench, data, device, predict, ConfigError, RunError, TrainError};
    if cause.is::<UsageError>()
        || cause.is::<lenet_model::ModelError>()
        || cause.is::<bench::NotImages>()
    {
        return Some(true);
    }
    if let Some(e) = cause.downcast_ref::<lenet_exchange::ExchangeError>() {
        return Some(e.is_usage());
    }
    if let Some(e) = cause.downcast_ref::<lenet_serve::ServeError>() {
        return Some(e.is_usage());
    }
    if cause.is::<lenet_sweep::SpecError>() {
        return Some(true);
    }
    if let Some(e) = cause.downcast_ref::<lenet_sweep::PlanError>() {
        return Some(e.is_usage());
    }
    if let Some(e) = cause.downcast_ref::<lenet_sweep::trial::TrialError>() {
        // A training failure decides through its own cause.
        if !matches!(e, lenet_sweep::trial::TrialError::Train { .. }) {
            return Some(e.is_usage());
        }
    }
    None.or_else(|| cause.downcast_ref::<TrainError>().map(TrainError::is_usage))
        .or_else(|| cause.downcast_ref::<RunError>().map(RunError::is_usage))
        .or_else(|| {
            cause
                .downcast_ref::<ConfigError>()
                .map(ConfigError::is_usage)
        })
        .or_else(|| {
            cause
                .downcast_ref::<data::SourceError>()
                .map(data::SourceError::is_usage)
        })
        .or_else(|| {
            cause
                .downcast_ref::<device::BackendError>()
                .map(device::BackendError::is_usage)
        })
        .or_else(|| {
            cause
                .downcast_ref::<predict::PredictError>()
                .map(predict::PredictError::is_usage)
        })
        .or_else(|| {
            cause
                .downcast_ref::<lenet_data::DataError>()
                .map(lenet_data::DataError::is_usage)
        })
}

fn main() -> ExitCode {
    process::setup();
    let cli = Cli::parse();
    // A panic is a bug, reported in one line with its own exit code (see `process`).
    // The command runs on one of rayon's threads (`scope` called from outside the pool runs its
    // closure on a worker): the kernels' parallel loops, hundreds per training step, then start
    // on a worker that takes part in them, instead of waking the pool and sleeping on a lock
    // each time. Measured 2026-11-30: `lenet train --config configs/lenet5.toml --epochs 1`
    // 13,077-13,187 against 8,799-11,845 images/s, `lenet bench --train` at batch 16 7,242-8,972
    // against 5,871-6,791 (no change at batch 256).
    std::panic::catch_unwind(|| rayon::scope(|_| run(cli)))
        .unwrap_or_else(|_| process::internal_error())
}

fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Summary(args) => summary_cmd::run(args),
        Command::Train(args) => train_cmd::run(args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Predict(args) => predict_cmd::run(args),
        Command::Viz(args) => viz_cmd::run(args),
        Command::Import(args) => import_cmd::run(args),
        Command::Export(args) => export_cmd::run(args),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Sweep(args) => sweep_cmd::run(args),
        Command::Data(args) => data_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Devices(args) => devices_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // An interruption is not a failure: say where the weights are and how to go on.
            let interrupted = err.chain().find_map(|c| match c.downcast_ref() {
                Some(e @ lenet_train::TrainError::Interrupted(_)) => Some(e),
                _ => None,
            });
            if let Some(e) = interrupted {
                eprintln!("{e}");
                return ExitCode::from(130);
            }
            // Each cause once: a library message often already holds the one below it.
            let mut shown = err.to_string();
            eprintln!("error: {shown}");
            for cause in err.chain().skip(1) {
                let text = cause.to_string();
                if !shown.contains(&text) {
                    eprintln!("  caused by: {text}");
                    shown = text;
                }
            }
            ExitCode::from(exit_code(&err))
        }
    }
}
