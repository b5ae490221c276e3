//! `lenet devices`: the backends compiled into this binary, the devices each one sees, and
//! which one a config (or `kind = "auto"`) would pick.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lenet_train::config::BackendKind;
use lenet_train::device::{auto_choice, cpu_model, cpu_threads};
use lenet_train::{compiled_backends, select, wgpu_adapters, RunConfig};
use serde_json::json;

/// Arguments of `lenet devices`.
#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// Also say which device this run config would use.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `lenet devices`.
pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    let compiled = compiled_backends();
    let adapters = wgpu_adapters();
    let cpu = format!("CPU, {} threads ({})", cpu_threads(), cpu_model());
    let (auto_kind, auto_why) = auto_choice();
    let picked = match &args.config {
        Some(path) => {
            let config = RunConfig::load(path, &[])?;
            let selected = select(&config.backend)
                .with_context(|| format!("the backend of {}", path.display()))?;
            Some((path.display().to_string(), selected.description))
        }
        None => None,
    };
    let names: Vec<&str> = compiled.iter().map(|k| k.name()).collect();
    if args.json {
        let report = json!({
            "compiled": names,
            "cpu": { "model": cpu_model(), "threads": cpu_threads() },
            "wgpu_adapters": adapters,
            "auto": { "kind": auto_kind.name(), "reason": auto_why },
            "config": picked.as_ref().map(|(path, device)| json!({ "path": path, "device": device })),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("backends compiled into this binary: {}\n", names.join(", "));
    println!("  flex     {cpu}; the default");
    println!("  ndarray  {cpu}; deprecated by Burn 0.22, kept as a reference");
    if compiled.contains(&BackendKind::Wgpu) {
        if adapters.is_empty() {
            println!("  wgpu     no adapter found (Vulkan, DirectX 12, Metal)");
        }
        for a in &adapters {
            let slow = if a.software { "; software, slow" } else { "" };
            println!(
                "  wgpu     device = {}: {} ({}, {}{slow}) driver {}",
                a.index, a.name, a.kind, a.api, a.driver
            );
        }
    } else {
        println!("  wgpu     not compiled in (build with --features wgpu, on by default)");
    }
    if compiled.contains(&BackendKind::Cuda) {
        println!(
            "  cuda     compiled in; devices are numbered by the CUDA driver (device = 0, 1, ...)"
        );
    } else {
        println!("  cuda     not compiled in (build with --features lenet-cli/cuda, or offline scripts/build-cuda.sh)");
    }
    println!("\nkind = \"auto\" picks {auto_kind}: {auto_why}");
    if let Some((path, device)) = picked {
        println!("{path} uses {device}");
    }
    Ok(())
}
