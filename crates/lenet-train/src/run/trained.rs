//! The one loader of a trained model: `model.bpk` (or a checkpoint) and its run's `config.toml`
//! become a network on a device, with its class names and normalisation. `lenet eval`,
//! `predict`, `viz`, the training loop's final evaluation and the library examples all load
//! through here.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use lenet_model::{ConvNet, Plan};

use crate::classifier::Classifier;
use crate::config::{BackendKind, RunConfig};
use crate::data::Classes;
use crate::device::select_one;
use crate::run::RunError;

/// A trained network, ready to classify.
pub struct TrainedModel {
    /// The run's config (with `--backend` applied, if given).
    pub config: RunConfig,
    /// Its validated network.
    pub plan: Plan,
    /// The network with the trained weights.
    pub net: ConvNet,
    /// Class names and the normalisation the network was trained with.
    pub classes: Classes,
    /// Where it runs.
    pub device: Device,
    /// What that device is, for people.
    pub device_description: String,
    /// The weights file.
    pub weights: PathBuf,
}

impl TrainedModel {
    /// Loads a trained model from `path`: a run directory (its `model.bpk`), or a weights file
    /// with the run's `config.toml` beside it (or one level up, for `<run>/checkpoint/*.bpk`).
    /// It runs on `backend` if given, else on the run's backend (its first device).
    pub fn load(path: &Path, backend: Option<BackendKind>) -> Result<TrainedModel, RunError> {
        let (weights, config_path) = resolve(path)?;
        let overrides: Vec<String> = backend
            .map(|b| format!("backend.kind=\"{b}\""))
            .into_iter()
            .collect();
        let config = RunConfig::load(&config_path, &overrides)?;
        let b = &config.backend;
        let selected = select_one(b.kind, b.device.or(b.devices.first().copied()))?;
        Self::from_weights(
            config,
            &weights,
            selected.device().clone(),
            selected.description,
        )
    }

    /// Loads `weights` into the network of `config` on `device`. The file may hold the network
    /// (`model.bpk`) or a training checkpoint of it (`checkpoint/model-N.bpk`).
    pub fn from_weights(
        config: RunConfig,
        weights: &Path,
        device: Device,
        device_description: String,
    ) -> Result<TrainedModel, RunError> {
        let plan = config.model.plan()?;
        let classes = Classes::of(&config.data)?;
        let net = match plan.build(&device).try_load_file(weights) {
            Ok(net) => net,
            Err(as_network) => Classifier::new(plan.build(&device))
                .try_load_file(weights)
                .map(|c| c.net)
                .map_err(|_| RunError::Checkpoint {
                    path: weights.to_path_buf(),
                    message: format!(
                        "does not fit the model {} of its config: {as_network}",
                        config.model.name
                    ),
                })?,
        };
        Ok(TrainedModel {
            config,
            plan,
            net,
            classes,
            device,
            device_description,
            weights: weights.to_path_buf(),
        })
    }
}

/// A trained model's files from what the user gave: `(weights, config.toml)`.
fn resolve(path: &Path) -> Result<(PathBuf, PathBuf), RunError> {
    let (weights, dir) = if path.is_dir() {
        (path.join("model.bpk"), path.to_path_buf())
    } else {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // A checkpoint inside <run>/checkpoint/ has its config one level up.
        let dir = if dir.file_name().is_some_and(|n| n == "checkpoint")
            && !dir.join("config.toml").exists()
        {
            dir.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            dir
        };
        (path.to_path_buf(), dir)
    };
    if !weights.is_file() {
        return Err(RunError::Checkpoint {
            path: path.to_path_buf(),
            message: format!(
                "no weights file {} (train a model with `lenet train` first)",
                weights.display()
            ),
        });
    }
    let config = dir.join("config.toml");
    if !config.is_file() {
        return Err(RunError::Checkpoint {
            path: path.to_path_buf(),
            message: format!(
                "no config.toml beside the weights (looked for {})",
                config.display()
            ),
        });
    }
    Ok((weights, config))
}
