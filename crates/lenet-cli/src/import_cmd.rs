//! `lenet import`: a PyTorch `state_dict` or a safetensors file becomes a lenet run directory.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use lenet_exchange::{import_into, mapping_table, read_weights, Rule};
use lenet_train::{RunConfig, RunDir};

use crate::UsageError;

/// Arguments of `lenet import`.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("network").required(true).args(["config", "preset"]))]
pub struct ImportArgs {
    /// The weights: a PyTorch state_dict (.pt, .pth; also one nested under a key such as
    /// state_dict or model) or a safetensors file.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The run config whose network the weights are for.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Or a built-in network (lenet5, lenet5-classic, lenet1, lenet4, lenet5-1998).
    #[arg(long)]
    preset: Option<String>,
    /// The run directory to create (config.toml + model.bpk).
    #[arg(long)]
    run_dir: PathBuf,
    /// Rename keys before mapping: every match of REGEX is replaced (repeatable, in order;
    /// $1 refers to a group). A key renamed to a lenet parameter's name maps to it.
    #[arg(long = "map", value_name = "REGEX=REPLACEMENT")]
    map: Vec<String>,
    /// The key a checkpoint nests its state_dict under (default: the top level, else
    /// state_dict, model_state_dict, model or net).
    #[arg(long)]
    key: Option<String>,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `lenet import`.
pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let (config, origin) = match (&args.config, &args.preset) {
        (Some(path), _) => (RunConfig::load(path, &[])?, path.display().to_string()),
        (None, Some(name)) => (
            RunConfig::parse(&format!("[model]\npreset = {name:?}\n"), "--preset", &[])?,
            format!("preset {name}"),
        ),
        (None, None) => return Err(UsageError("give --config FILE or --preset NAME".into()).into()),
    };
    let rules = args
        .map
        .iter()
        .map(|m| Rule::parse(m))
        .collect::<Result<Vec<_>, _>>()?;
    let dir = RunDir::for_new_run(&args.run_dir)?;
    let plan = config
        .model
        .plan()
        .with_context(|| format!("invalid model in {origin}"))?;
    let weights = read_weights(&args.from, args.key.as_deref())?;
    if let (Some(key), false) = (&weights.nested_under, args.quiet) {
        let aside = match weights.left_aside.len() {
            0 => String::new(),
            n => format!(
                " (left aside: {}{})",
                weights.left_aside[..n.min(5)].join(", "),
                if n > 5 { ", …" } else { "" }
            ),
        };
        eprintln!("reading the state_dict under {key:?}{aside}");
    }
    let net = plan.build(&Device::flex());
    let (net, rows) = import_into(net, &weights.tensors, &rules).with_context(|| {
        format!(
            "cannot import {} into {} ({origin})",
            args.from.display(),
            config.model.name
        )
    })?;
    dir.create_dirs()?;
    dir.write_config(&config)?;
    dir.write_model(net)?;
    if !args.quiet {
        print!("{}", mapping_table(&rows));
        println!(
            "imported {} tensors ({} parameters) from {} → {}",
            rows.len(),
            lenet_model::summary::thousands(plan.parameters()),
            args.from.display(),
            dir.model_path().display()
        );
    }
    Ok(())
}
