//! `lenet`: define a LeNet-style network in a config file, inspect it, train it, evaluate it.
//!
//! A thin binary: each subcommand parses its flags and calls into `lenet-model` and
//! `lenet-train`. Errors print as one message plus its causes; the exit code is 2 for a usage or
//! config error and 1 for a failure at run time.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench_cmd;
mod bench_layers;
mod checkpoint;
mod data_cmd;
mod devices_cmd;
mod eval_cmd;
mod predict_cmd;
mod summary_cmd;
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
    /// Download, verify and look at datasets.
    Data(data_cmd::DataArgs),
    /// List the backends and devices (CPU, GPUs) this binary can use.
    Devices(devices_cmd::DevicesArgs),
}

/// An error in what the user asked for (flags, config files): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn exit_code(err: &anyhow::Error) -> u8 {
    let usage = err
        .chain()
        .any(|cause| cause.is::<UsageError>() || cause.is::<lenet_model::ModelError>());
    if usage {
        2
    } else {
        1
    }
}

/// Rust ignores SIGPIPE, so printing into a closed pipe (`lenet eval | head`) would panic; the
/// default action ends the process quietly, like other command-line tools.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to its default before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Keeps freed memory in the process instead of handing it back to the system after every
/// training step. glibc returns large blocks (a batch's activations: megabytes each) to the
/// kernel when they are freed, so each step faults them in again: measured on LeNet-5 at batch
/// 256, 679,000 page faults and 2.0 s of system time in a 7 s `lenet bench --train`, against
/// about 8,300 and 0.46 s with these settings (and more images/s; figures in the README's
/// performance section). Blocks up to 32 MiB
/// (glibc's largest mmap threshold) come from the heap, and the heap is never trimmed. The
/// `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` environment variables, when set, are
/// left to decide.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |name: &str| std::env::var_os(name).is_some();
        // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
        unsafe {
            if !set("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            }
            if !set("MALLOC_TRIM_THRESHOLD_") {
                libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            }
        }
    }
}

fn main() -> ExitCode {
    restore_sigpipe();
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Summary(args) => summary_cmd::run(args),
        Command::Train(args) => train_cmd::run(args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Predict(args) => predict_cmd::run(args),
        Command::Viz(args) => viz_cmd::run(args),
        Command::Data(args) => data_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Devices(args) => devices_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(exit_code(&err))
        }
    }
}
