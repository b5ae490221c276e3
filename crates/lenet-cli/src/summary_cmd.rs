//! `lenet summary`: the layer table of a config file or a preset.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lenet_model::{preset, ModelConfig};

/// Arguments of `lenet summary`.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["config", "preset"]))]
pub struct SummaryArgs {
    /// A model or run config file (TOML); a run config's `[model]` table is used.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// A built-in network: lenet5, lenet5-classic, lenet1, lenet4.
    #[arg(long)]
    preset: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `lenet summary`.
pub fn run(args: SummaryArgs) -> anyhow::Result<()> {
    let config = match (&args.config, &args.preset) {
        (Some(path), _) => ModelConfig::from_file(path)?,
        (None, Some(name)) => preset(name)?,
        (None, None) => {
            return Err(crate::UsageError("give --config FILE or --preset NAME".into()).into())
        }
    };
    let plan = config.plan().with_context(|| match &args.config {
        Some(path) => format!("invalid model in {}", path.display()),
        None => format!("invalid preset {}", config.name),
    })?;
    let summary = plan.summary(&config.name);
    if args.json {
        println!("{}", summary.to_json()?);
    } else {
        print!("{}", summary.to_table());
    }
    Ok(())
}
