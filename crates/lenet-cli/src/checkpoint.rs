//! Loading a trained model (`lenet eval`, `lenet predict`): the run's config, the device, and the
//! weights, with clear errors when they do not fit together.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use lenet_model::{ConvNet, Plan};
use lenet_train::run_dir::resolve_checkpoint;
use lenet_train::{select, RunConfig};

use crate::UsageError;

/// A trained network with the config it was trained with.
pub struct Trained {
    /// The run config (with `--backend` applied).
    pub config: RunConfig,
    /// Its validated network.
    pub plan: Plan,
    /// The network with the trained weights.
    pub net: ConvNet,
    /// Where it runs.
    pub device: Device,
    /// What that device is, for people.
    pub device_description: String,
    /// The weights file.
    pub weights: PathBuf,
}

/// Loads `path` (a run directory or a weights file with config.toml beside it), on `backend`
/// if given, else on the run's backend.
pub fn load(path: &Path, backend: Option<&str>) -> anyhow::Result<Trained> {
    let (weights, config_path) = resolve_checkpoint(path).map_err(|e| UsageError(e.to_string()))?;
    let overrides: Vec<String> = backend
        .map(|b| format!("backend.kind=\"{b}\""))
        .into_iter()
        .collect();
    let config =
        RunConfig::load(&config_path, &overrides).map_err(|e| UsageError(e.to_string()))?;
    // Evaluation runs on one device: the run's first one.
    let b = &config.backend;
    let index = b.device.or(b.devices.first().copied());
    let selected = select(&b.kind, index, &[]).map_err(|e| UsageError(e.to_string()))?;
    let device = selected.device().clone();
    let plan = config.model.plan()?;
    let net = plan.build(&device).try_load_file(&weights).map_err(|e| {
        UsageError(format!(
            "{} does not fit the model in {}: {e}",
            weights.display(),
            config_path.display()
        ))
    })?;
    Ok(Trained {
        config,
        plan,
        net,
        device,
        device_description: selected.description,
        weights,
    })
}
