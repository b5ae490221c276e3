//! The run configuration: one TOML file with `[model]`, `[data]`, `[training]` and `[backend]`.
//!
//! Plain serde structs with defaults and `deny_unknown_fields` (Burn's `Config` derive would make
//! every field required); every closed set (dataset, backend, optimizer, schedule, final model)
//! is an enum. Command-line overrides (`--set training.optimizer.lr=0.01`) are applied to the
//! TOML table before it is read, so they are checked exactly like the file. The full format is
//! in `docs/configs.md`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use lenet_data::{AugmentConfig, DatasetKind, Holdout};
use lenet_model::{ModelConfig, OutputKind};
use serde::{Deserialize, Serialize};

/// Errors in a run configuration; each names the file and the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, a wrong type or an impossible value.
    #[error("{origin}: {message}")]
    Invalid {
        /// The file the config came from.
        origin: String,
        /// What is wrong, starting with the key path.
        message: String,
    },
    /// The `[model]` table is invalid.
    #[error(transparent)]
    Model(#[from] lenet_model::ModelError),
    /// An override given on the command line is malformed.
    #[error("bad override `{0}`: expected KEY=VALUE, e.g. training.optimizer.lr=0.01")]
    Override(String),
    /// The config could not be written as TOML.
    #[error("cannot write the config as TOML: {0}")]
    Serialize(String),
}

impl ConfigError {
    /// Whether the user's config or flags are at fault (exit code 2), rather than a failure.
    pub fn is_usage(&self) -> bool {
        !matches!(self, ConfigError::Serialize(_))
    }
}

/// A whole run: what to train, on what, how, and where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunConfig {
    /// The network (presets expanded).
    pub model: ModelConfig,
    /// The dataset and its preparation.
    pub data: DataConfig,
    /// The optimisation.
    pub training: TrainingConfig,
    /// The device.
    pub backend: BackendConfig,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `mnist`, `fashion-mnist` or `custom` (then `[data.custom]` gives the files).
    #[serde(default)]
    pub dataset: DatasetName,
    /// Training images held out for validation: a count (`5000`) or a fraction (`0.1`); `0`
    /// trains on every image, without a validation split (then `training.final_model` must be
    /// `last`).
    #[serde(default)]
    pub validation: Holdout,
    /// Extra download mirrors (base URLs), tried before the built-in ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
    /// Random distortions of the training images.
    #[serde(default)]
    pub augment: AugmentConfig,
    /// Any pair of IDX files as a dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomData>,
    /// Use only the first N images of each part (quick runs and tests; `--limit-*`).
    #[serde(default, skip_serializing_if = "LimitConfig::is_none")]
    pub limit: LimitConfig,
    /// How pixels become inputs: `mean_std` (the default) or `lecun_1998`.
    #[serde(default, skip_serializing_if = "InputScaling::is_default")]
    pub normalization: InputScaling,
}

/// How pixel values (0-255) become the network's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InputScaling {
    /// `(pixel/255 − mean) / std` with the dataset's mean and standard deviation (a custom
    /// dataset's `mean` and `std`): inputs of mean 0 and variance 1.
    #[default]
    MeanStd,
    /// LeCun et al. (1998, Section II-B): background (0) → −0.1, full ink (255) → 1.175, linear
    /// in between (mean about 0 and variance about 1 on MNIST); padding is background.
    #[serde(rename = "lecun_1998")]
    Lecun1998,
}

impl InputScaling {
    fn is_default(&self) -> bool {
        *self == InputScaling::MeanStd
    }
}

/// `[data.limit]`: caps on the number of images of each part, after the split. Part of the run's
/// config, so that a resumed run uses the same images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Training images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<usize>,
    /// Validation images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<usize>,
    /// Test images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<usize>,
}

impl LimitConfig {
    /// No cap at all.
    pub fn is_none(&self) -> bool {
        *self == LimitConfig::default()
    }
}

/// `data.dataset`: a built-in dataset, or `custom`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// MNIST handwritten digits.
    #[default]
    Mnist,
    /// Fashion-MNIST clothing images.
    FashionMnist,
    /// The IDX files of `[data.custom]`.
    Custom,
}

const NO_VALIDATION_BEST: &str = "training.final_model: \"best\" (the default) keeps the epoch with the best validation accuracy, but data.validation = 0 holds out no images; set final_model = \"last\" to train on every image, or hold some images out";

const NO_CUSTOM_TABLE: &str = "data.custom: dataset = \"custom\" needs a [data.custom] table with the four IDX files and class_names";

/// Where the images of a validated `[data]` table come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DataSource<'a> {
    /// A built-in dataset under the data root.
    BuiltIn(DatasetKind),
    /// The user's own IDX files.
    Custom(&'a CustomData),
}

impl DataConfig {
    /// The dataset this table names (a config read by [`RunConfig::parse`] has `[data.custom]`
    /// exactly when `dataset = "custom"`).
    pub fn source(&self) -> Result<DataSource<'_>, ConfigError> {
        match (self.dataset, &self.custom) {
            (DatasetName::Mnist, _) => Ok(DataSource::BuiltIn(DatasetKind::Mnist)),
            (DatasetName::FashionMnist, _) => Ok(DataSource::BuiltIn(DatasetKind::FashionMnist)),
            (DatasetName::Custom, Some(c)) => Ok(DataSource::Custom(c)),
            (DatasetName::Custom, None) => Err(ConfigError::Invalid {
                origin: "[data]".into(),
                message: NO_CUSTOM_TABLE.into(),
            }),
        }
    }

    /// The dataset's name: `mnist`, `fashion-mnist` or `custom`.
    pub fn name(&self) -> &'static str {
        match self.dataset {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Custom => "custom",
        }
    }
}

/// `[data.custom]`: IDX files of your own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomData {
    /// Training images (IDX3, raw or gzip).
    pub train_images: PathBuf,
    /// Training labels (IDX1).
    pub train_labels: PathBuf,
    /// Test images.
    pub test_images: PathBuf,
    /// Test labels.
    pub test_labels: PathBuf,
    /// Class names; their number is the number of classes.
    pub class_names: Vec<String>,
    /// Pixel mean (0-1 scale) for normalisation; default 0.5.
    #[serde(default = "half")]
    pub mean: f32,
    /// Pixel standard deviation for normalisation; default 0.5.
    #[serde(default = "half")]
    pub std: f32,
}

fn half() -> f32 {
    0.5
}

/// `[training]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Passes over the training set.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Images per step.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Seed of weights, split, shuffling and augmentation.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Threads preparing batches (0 = in the training thread). Unset: 0 on a CPU backend, 1 on
    /// a GPU ([`TrainingConfig::workers`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_workers: Option<usize>,
    /// The optimizer.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Label smoothing ε of the cross-entropy (as PyTorch's `label_smoothing`): the target puts
    /// `1 - ε + ε/K` on the true class and `ε/K` on each of the `K` others. Training only: the
    /// validation and test losses are the plain cross-entropy. None (0) by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_smoothing: Option<f32>,
    /// Start from the weights of a trained model (its run directory, or a `.bpk` file with the
    /// run's `config.toml` beside it) instead of fresh ones: fine-tuning, e.g. of an imported
    /// PyTorch model. Its network must be this config's. None by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// Clip the gradient norm to this value (none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_clip_norm: Option<f32>,
    /// Stop when the validation accuracy has not improved for `patience` epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStopping>,
    /// Checkpoints to keep besides the best one.
    #[serde(default = "default_keep")]
    pub keep_checkpoints: usize,
    /// Which weights become `model.bpk`: `best` (by validation accuracy) or `last`.
    #[serde(default)]
    pub final_model: FinalModel,
}

fn default_epochs() -> usize {
    10
}
fn default_batch_size() -> usize {
    64
}
fn default_seed() -> u64 {
    42
}
fn default_keep() -> usize {
    2
}

impl TrainingConfig {
    /// Threads preparing batches: `num_workers`, or where it is unset 0 on a CPU (the training
    /// thread makes each batch: the step's kernels already run on every core, and a batching
    /// thread beside them only takes turns with them) and 1 on a GPU (the CPU is free while the
    /// device computes). On the 2-core machine an epoch of `configs/lenet5.toml` took 1.16× its
    /// raw steps with a batching thread and 1.11× without (medians of 13 alternating rounds of
    /// `lenet bench --train --epoch`, 2026-12-03; docs/performance.md).
    pub fn workers(&self, on_gpu: bool) -> usize {
        self.num_workers.unwrap_or(usize::from(on_gpu))
    }
}

/// `[training.optimizer]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// `sgd`, `adam`, `adamw` or `sdlm`.
    #[serde(default)]
    pub kind: OptimizerKind,
    /// Learning rate (the peak rate for `one_cycle`).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// L2 penalty (`sgd`, `adam`) or decoupled weight decay (`adamw`).
    #[serde(default)]
    pub weight_decay: f64,
    /// SGD momentum.
    #[serde(default)]
    pub momentum: f64,
    /// Nesterov momentum (SGD).
    #[serde(default)]
    pub nesterov: bool,
    /// Adam β1.
    #[serde(default = "default_beta1")]
    pub beta1: f32,
    /// Adam β2.
    #[serde(default = "default_beta2")]
    pub beta2: f32,
    /// Adam ε.
    #[serde(default = "default_eps")]
    pub epsilon: f32,
    /// SDLM: the damping μ of each parameter's step `lr / (μ + h)`, `h` its estimated second
    /// derivative (LeCun et al. 1998 used 0.02).
    #[serde(default = "default_mu")]
    pub mu: f64,
    /// SDLM: how many training images the second derivatives are estimated on before each
    /// epoch (the paper: 500).
    #[serde(default = "default_curvature_samples")]
    pub curvature_samples: usize,
}

fn default_lr() -> f64 {
    1e-3
}
fn default_beta1() -> f32 {
    0.9
}
fn default_beta2() -> f32 {
    0.999
}
fn default_eps() -> f32 {
    1e-8
}
fn default_mu() -> f64 {
    0.02
}
fn default_curvature_samples() -> usize {
    500
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: default_lr(),
            weight_decay: 0.0,
            momentum: 0.0,
            nesterov: false,
            beta1: default_beta1(),
            beta2: default_beta2(),
            epsilon: default_eps(),
            mu: default_mu(),
            curvature_samples: default_curvature_samples(),
        }
    }
}

/// The optimizer algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Stochastic gradient descent, optionally with (Nesterov) momentum.
    Sgd,
    /// Adam.
    #[default]
    Adam,
    /// Adam with decoupled weight decay.
    Adamw,
    /// Stochastic diagonal Levenberg-Marquardt (LeCun et al. 1998): each parameter steps by
    /// `lr / (μ + h)` times its gradient, `h` its Gauss-Newton second derivative estimated on
    /// `curvature_samples` training images before each epoch.
    Sdlm,
}

/// `[training.schedule]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// `constant`, `step`, `cosine`, `one_cycle` or `table`.
    #[serde(default)]
    pub kind: ScheduleKind,
    /// Epochs of linear warm-up from 0 (cosine, step, constant).
    #[serde(default)]
    pub warmup_epochs: usize,
    /// `step`: multiply the rate by `gamma` every `step_epochs` epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_epochs: Option<usize>,
    /// `step`: the factor (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// `cosine`, `one_cycle`: the final rate (default 0).
    #[serde(default)]
    pub min_lr: f64,
    /// `table`: the learning rate of each epoch, the last one kept for the epochs after
    /// (e.g. LeCun et al. 1998: `[5e-4, 5e-4, 2e-4, 2e-4, 2e-4, 1e-4, 1e-4, 1e-4, 5e-5, 5e-5,
    /// 5e-5, 5e-5, 1e-5]`). The optimizer's `lr` is not used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rates: Vec<f64>,
}

/// The shape of the learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// The same rate throughout.
    #[default]
    Constant,
    /// Divided by a factor at fixed intervals.
    Step,
    /// Cosine annealing to `min_lr`.
    Cosine,
    /// Linear warm-up to `lr` for 30 % of the steps, then cosine down to `min_lr`.
    OneCycle,
    /// One rate per epoch from `rates`.
    Table,
}

/// `[training.early_stopping]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// Epochs without improvement of the validation accuracy before stopping.
    pub patience: usize,
}

/// Which weights the run keeps as its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FinalModel {
    /// The epoch with the best validation accuracy.
    #[default]
    Best,
    /// The last epoch.
    Last,
}

/// `[backend]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// `flex` (CPU, default), `ndarray` (CPU), `wgpu` (GPU), `cuda` (NVIDIA) or `auto` (the
    /// best present: a GPU through wgpu, else flex).
    #[serde(default)]
    pub kind: BackendKind,
    /// GPU index as listed by `lenet devices` (unset: the best GPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<usize>,
    /// Several GPU indices: data-parallel training, one batch per device per optimizer step
    /// (burn-train's multi-device strategy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<usize>,
    /// How several devices share the work: `multi` (the default) or `ddp`.
    #[serde(default, skip_serializing_if = "Strategy::is_default")]
    pub strategy: Strategy,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            kind: BackendKind::Flex,
            device: None,
            devices: Vec::new(),
            strategy: Strategy::default(),
        }
    }
}

/// `backend.strategy`: how the devices of `backend.devices` train together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// burn-train's multi-device strategy: each device computes the gradients of its batch, the
    /// first device adds them up and takes the optimizer step.
    #[default]
    Multi,
    /// Distributed data parallel (burn-train's `ExecutionStrategy::ddp`): one replica per device,
    /// each on its own shard of the epoch, the gradients averaged across devices (all-reduce)
    /// inside the backward pass; the same step as one device with `devices × batch_size` images.
    /// Burn 0.22 has the all-reduce on CUDA only (NCCL).
    Ddp,
}

impl Strategy {
    fn is_default(&self) -> bool {
        *self == Strategy::Multi
    }
}

/// `backend.kind`: which Burn backend runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum BackendKind {
    /// Burn's pure-Rust CPU backend (with lenet's kernels): the default.
    #[default]
    Flex,
    /// Burn's older CPU backend (deprecated by Burn 0.22), kept as a reference.
    Ndarray,
    /// GPUs through Vulkan, Metal or DirectX 12.
    Wgpu,
    /// NVIDIA GPUs through CUDA (a build with `--features cuda`).
    Cuda,
    /// A real GPU through wgpu when there is one, else flex.
    Auto,
}

impl BackendKind {
    /// Every kind, in the order `lenet devices` lists them.
    pub const ALL: [BackendKind; 5] = [
        BackendKind::Flex,
        BackendKind::Ndarray,
        BackendKind::Wgpu,
        BackendKind::Cuda,
        BackendKind::Auto,
    ];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
            BackendKind::Auto => "auto",
        }
    }

    /// Whether it runs on the CPU (deterministic, no GPU runtime to start).
    pub fn is_cpu(self) -> bool {
        matches!(self, BackendKind::Flex | BackendKind::Ndarray)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        BackendKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown backend `{s}`; expected \"flex\", \"ndarray\", \"wgpu\", \"cuda\" or \"auto\""
                )
            })
    }
}

impl TryFrom<String> for BackendKind {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// The non-model part of the file, read with serde.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rest {
    #[serde(default = "default_data")]
    data: DataConfig,
    #[serde(default = "default_training")]
    training: TrainingConfig,
    #[serde(default)]
    backend: BackendConfig,
}

fn default_data() -> DataConfig {
    DataConfig {
        dataset: DatasetName::default(),
        validation: Holdout::default(),
        mirrors: Vec::new(),
        augment: AugmentConfig::default(),
        custom: None,
        limit: LimitConfig::default(),
        normalization: InputScaling::default(),
    }
}

fn default_training() -> TrainingConfig {
    TrainingConfig {
        epochs: default_epochs(),
        batch_size: default_batch_size(),
        seed: default_seed(),
        num_workers: None,
        optimizer: OptimizerConfig::default(),
        schedule: ScheduleConfig::default(),
        grad_clip_norm: None,
        early_stopping: None,
        keep_checkpoints: default_keep(),
        label_smoothing: None,
        init_from: None,
        final_model: FinalModel::Best,
    }
}

impl RunConfig {
    /// Reads a run config file and applies `overrides` (`KEY=VALUE`, KEY a dotted path).
    pub fn load(path: &Path, overrides: &[String]) -> Result<RunConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string(), overrides)
    }

    /// Parses run config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<RunConfig, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let model = match table.remove("model") {
            Some(toml::Value::Table(t)) => ModelConfig::from_table(t, origin, "model.")?,
            Some(_) => return Err(invalid("model: expected a table".into())),
            None => {
                return Err(invalid(
                    "missing [model] table (e.g. `[model]\\npreset = \"lenet5\"`)".into(),
                ))
            }
        };
        let rest: Rest =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let path = e.path().to_string();
                invalid(format!("{path}: {}", e.into_inner().message()))
            })?;
        let config = RunConfig {
            model,
            data: rest.data,
            training: rest.training,
            backend: rest.backend,
        };
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    /// Checks values that serde cannot: ranges and combinations.
    fn validate(&self) -> Result<(), String> {
        let t = &self.training;
        if t.epochs == 0 {
            return Err("training.epochs: must be at least 1".into());
        }
        if t.batch_size == 0 {
            return Err("training.batch_size: must be at least 1".into());
        }
        let lr = t.optimizer.lr;
        if !(lr.is_finite() && lr > 0.0) {
            return Err(format!(
                "training.optimizer.lr: must be a positive number, found {lr}"
            ));
        }
        if t.optimizer.weight_decay < 0.0 {
            return Err("training.optimizer.weight_decay: must not be negative".into());
        }
        if !(0.0..1.0).contains(&t.optimizer.momentum) {
            return Err(format!(
                "training.optimizer.momentum: must be in [0, 1), found {}",
                t.optimizer.momentum
            ));
        }
        if t.optimizer.kind != OptimizerKind::Sgd
            && (t.optimizer.momentum != 0.0 || t.optimizer.nesterov)
        {
            return Err("training.optimizer.momentum/nesterov: only for kind = \"sgd\"".into());
        }
        let o = &t.optimizer;
        if o.kind == OptimizerKind::Sdlm {
            if !(o.mu.is_finite() && o.mu > 0.0) {
                return Err(format!(
                    "training.optimizer.mu: must be positive, found {}",
                    o.mu
                ));
            }
            if o.curvature_samples == 0 {
                return Err("training.optimizer.curvature_samples: must be at least 1".into());
            }
            if let Some(i) = self.model.features.iter().position(|b| b.batch_norm) {
                return Err(format!(
                    "training.optimizer.kind = \"sdlm\": model.features[{i}] has batch_norm, \
                     which the Gauss-Newton second derivatives do not describe"
                ));
            }
        } else if o.mu != default_mu() || o.curvature_samples != default_curvature_samples() {
            return Err("training.optimizer.mu/curvature_samples: only for kind = \"sdlm\"".into());
        }
        if t.optimizer.nesterov && t.optimizer.momentum == 0.0 {
            return Err("training.optimizer.nesterov: needs a momentum > 0".into());
        }
        if let Some(e) = t.label_smoothing {
            if !(0.0..1.0).contains(&e) {
                return Err(format!(
                    "training.label_smoothing: must be in [0, 1), found {e}"
                ));
            }
            if self.model.classifier.output == OutputKind::Rbf {
                return Err(
                    "training.label_smoothing: not for model.classifier.output = \"rbf\" (trained with the MAP criterion, not cross-entropy)"
                        .into(),
                );
            }
        }
        if let Some(c) = t.grad_clip_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(format!(
                    "training.grad_clip_norm: must be positive, found {c}"
                ));
            }
        }
        let s = &t.schedule;
        if s.kind != ScheduleKind::Step && (s.step_epochs.is_some() || s.gamma.is_some()) {
            return Err("training.schedule.step_epochs/gamma: only for kind = \"step\"".into());
        }
        if s.step_epochs == Some(0) {
            return Err("training.schedule.step_epochs: must be at least 1".into());
        }
        match (s.kind, s.rates.is_empty()) {
            (ScheduleKind::Table, true) => {
                return Err(
                    "training.schedule.rates: kind = \"table\" needs a list of learning rates, one per epoch"
                        .into(),
                )
            }
            (ScheduleKind::Table, false) => {
                if let Some((i, r)) = s
                    .rates
                    .iter()
                    .enumerate()
                    .find(|(_, r)| !(r.is_finite() && **r > 0.0))
                {
                    return Err(format!(
                        "training.schedule.rates[{i}]: a learning rate must be positive, found {r}"
                    ));
                }
                if s.warmup_epochs > 0 {
                    return Err(
                        "training.schedule.warmup_epochs: not for kind = \"table\" (put the warm-up in the rates)"
                            .into(),
                    );
                }
            }
            (_, false) => {
                return Err("training.schedule.rates: only for kind = \"table\"".into())
            }
            (_, true) => {}
        }
        if s.min_lr < 0.0 || s.min_lr > lr {
            return Err(format!(
                "training.schedule.min_lr: must be in [0, lr = {lr}], found {}",
                s.min_lr
            ));
        }
        if s.warmup_epochs >= t.epochs && s.warmup_epochs > 0 {
            return Err(format!(
                "training.schedule.warmup_epochs: {} warm-up epochs leave none of the {} epochs",
                s.warmup_epochs, t.epochs
            ));
        }
        if let Holdout::Fraction(f) = self.data.validation {
            if !(0.0..1.0).contains(&f) {
                return Err(format!(
                    "data.validation: a fraction must be in [0, 1), found {f} (or give a count of images)"
                ));
            }
        }
        if self.data.validation.is_none() {
            // Without held-out images there is no validation accuracy to pick or stop by.
            if t.final_model == FinalModel::Best {
                return Err(NO_VALIDATION_BEST.into());
            }
            if t.early_stopping.is_some() {
                return Err(
                    "training.early_stopping: stops by the validation accuracy, but data.validation = 0 holds out no images; remove [training.early_stopping] or hold some images out"
                        .into(),
                );
            }
        }
        self.data
            .augment
            .validate()
            .map_err(|e| format!("data.augment: {e}"))?;
        let b = &self.backend;
        if b.device.is_some() && !b.devices.is_empty() {
            return Err(
                "backend.device/devices: give one device or a list of devices, not both".into(),
            );
        }
        if b.devices.len() == 1 {
            return Err(format!(
                "backend.devices: a list of one device; write device = {} instead",
                b.devices[0]
            ));
        }
        let mut distinct = b.devices.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if b.strategy == Strategy::Ddp && distinct.len() != b.devices.len() {
            return Err(format!(
                "backend.devices: {:?} names a device twice; with strategy = \"ddp\" each device \
                 holds one replica",
                b.devices
            ));
        }
        if b.strategy == Strategy::Ddp && b.kind != BackendKind::Cuda {
            return Err(format!(
                "backend.strategy = \"ddp\": Burn 0.22 has the gradient all-reduce only on CUDA \
                 (NCCL), not on {}; use kind = \"cuda\", or the default strategy (\"multi\") with \
                 backend.devices",
                b.kind
            ));
        }
        match (self.data.dataset, &self.data.custom) {
            (DatasetName::Custom, None) => return Err(NO_CUSTOM_TABLE.into()),
            (DatasetName::Custom, Some(c)) if c.class_names.len() != self.model.num_classes => {
                return Err(format!(
                    "data.custom.class_names: {} names but model.num_classes = {}",
                    c.class_names.len(),
                    self.model.num_classes
                ))
            }
            (DatasetName::Custom, Some(c)) if c.std.is_nan() || c.std <= 0.0 => {
                return Err("data.custom.std: must be positive".into())
            }
            (DatasetName::Custom, Some(_)) => {}
            (_, Some(_)) => return Err("data.custom: only with dataset = \"custom\"".into()),
            (_, None) if self.model.num_classes != 10 => {
                return Err(format!(
                    "model.num_classes: {} has 10 classes but the model has {}",
                    self.data.name(),
                    self.model.num_classes
                ))
            }
            (_, None) => {}
        }
        Ok(())
    }

    /// The resolved config as TOML (presets expanded, overrides applied), for the run directory.
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::Serialize(e.to_string()))
    }
}

/// Applies `a.b.c=value` to a TOML table. The value is read as TOML (`0.01`, `true`, `[1, 2]`,
/// `"text"`), or taken as a string if it is not valid TOML (`--set data.dataset=fashion-mnist`).
pub fn apply_override(table: &mut toml::Table, spec: &str) -> Result<(), ConfigError> {
    let (key, raw) = spec
        .split_once('=')
        .ok_or_else(|| ConfigError::Override(spec.to_string()))?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::Override(spec.to_string()));
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {}", raw.trim()))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
    let mut node = table;
    for part in &parts[..parts.len() - 1] {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::Override(format!(
                    "{spec} ({part} is not a table)"
                )))
            }
        };
    }
    node.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[model]\npreset = \"lenet5\"\n";

    fn err(text: &str, overrides: &[&str]) -> String {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        match RunConfig::parse(text, "run.toml", &o) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// `training.num_workers` unset: batches made on the training thread on a CPU, by one
    /// thread on a GPU; a value given (in the file or by `--set`) is kept either way, and an
    /// unset value stays out of the saved config.
    #[test]
    fn batching_threads_default_by_device_and_follow_the_config() {
        let c = RunConfig::parse(BASE, "run.toml", &[]).unwrap();
        assert_eq!(c.training.num_workers, None);
        assert_eq!(
            (c.training.workers(false), c.training.workers(true)),
            (0, 1)
        );
        assert!(!toml::to_string(&c).unwrap().contains("num_workers"));
        let c = RunConfig::parse(BASE, "run.toml", &["training.num_workers=2".into()]).unwrap();
        assert_eq!(
            (c.training.workers(false), c.training.workers(true)),
            (2, 2)
        );
        let text = format!("{BASE}[training]\nnum_workers = 0\n");
        let c = RunConfig::parse(&text, "run.toml", &[]).unwrap();
        assert_eq!(
            (c.training.workers(false), c.training.workers(true)),
            (0, 0)
        );
    }

    #[test]
    fn ddp_needs_cuda_and_distinct_devices() {
        let e = err(
            BASE,
            &["backend.strategy=\"ddp\"", "backend.devices=[0, 1]"],
        );
        assert!(e.contains("backend.strategy = \"ddp\""), "{e}");
        assert!(
            e.contains("only on CUDA") && e.contains("not on flex"),
            "{e}"
        );
        for kind in ["ndarray", "wgpu", "auto"] {
            let e = err(
                BASE,
                &[
                    "backend.strategy=\"ddp\"",
                    &format!("backend.kind=\"{kind}\""),
                    "backend.devices=[0, 1]",
                ],
            );
            assert!(e.contains(&format!("not on {kind}")), "{e}");
        }
        let e = err(
            BASE,
            &[
                "backend.kind=\"cuda\"",
                "backend.strategy=\"ddp\"",
                "backend.devices=[0, 0]",
            ],
        );
        assert!(e.contains("names a device twice"), "{e}");
        // The multi-device strategy may share one device between workers (tested on the CPU).
        RunConfig::parse(BASE, "run.toml", &["backend.devices=[0, 0]".into()]).unwrap();
        let e = err(BASE, &["backend.strategy=\"ring\""]);
        assert!(e.contains("backend.strategy"), "{e}");
        let c = RunConfig::parse(
            BASE,
            "run.toml",
            &[
                "backend.kind=\"cuda\"".into(),
                "backend.strategy=\"ddp\"".into(),
                "backend.devices=[0, 1]".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.backend.strategy, Strategy::Ddp);
        // Written back and read again; the default is not written (older runs stay the same).
        let again = RunConfig::parse(&c.to_toml_string().unwrap(), "again", &[]).unwrap();
        assert_eq!(again.backend, c.backend);
        let plain = RunConfig::parse(BASE, "run.toml", &[]).unwrap();
        assert!(!plain.to_toml_string().unwrap().contains("strategy"));
    }

    #[test]
    fn defaults_and_overrides() {
        let c = RunConfig::parse(BASE, "run.toml", &[]).unwrap();
        assert_eq!(c.training.epochs, 10);
        assert_eq!(c.training.optimizer.kind, OptimizerKind::Adam);
        assert_eq!(c.backend.kind, BackendKind::Flex);
        assert_eq!(c.data.dataset, DatasetName::Mnist);
        assert_eq!(c.data.validation, Holdout::Count(5000));
        let o = [
            "training.optimizer.lr=0.01".to_string(),
            "backend.kind=ndarray".into(),
            "training.epochs=3".into(),
        ];
        let c = RunConfig::parse(BASE, "run.toml", &o).unwrap();
        assert_eq!(c.training.optimizer.lr, 0.01);
        assert_eq!(c.backend.kind, BackendKind::Ndarray);
        assert_eq!(c.training.epochs, 3);
        // The resolved config reads back to the same thing.
        let text = c.to_toml_string().unwrap();
        assert!(text.contains("kind = \"ndarray\""), "{text}");
        let back = RunConfig::parse(&text, "resolved.toml", &[]).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn no_validation_needs_the_last_model_and_no_early_stopping() {
        let m = err(BASE, &["data.validation=0"]);
        assert!(
            m.contains("training.final_model") && m.contains("final_model = \"last\""),
            "{m}"
        );
        let m = err(BASE, &["data.validation=0.0"]);
        assert!(m.contains("training.final_model"), "{m}");
        let m = err(
            BASE,
            &[
                "data.validation=0",
                "training.final_model=\"last\"",
                "training.early_stopping.patience=3",
            ],
        );
        assert!(m.contains("training.early_stopping"), "{m}");
        let o = ["data.validation=0", "training.final_model=\"last\""].map(String::from);
        let c = RunConfig::parse(BASE, "run.toml", &o).unwrap();
        assert!(c.data.validation.is_none());
        assert_eq!(c.training.final_model, FinalModel::Last);
    }

    #[test]
    fn unknown_keys_wrong_types_and_bad_values_name_file_and_key() {
        let m = err(&format!("{BASE}[training]\nepochz = 3\n"), &[]);
        assert!(
            m.starts_with("run.toml: training") && m.contains("epochz"),
            "{m}"
        );
        let m = err(&format!("{BASE}[training]\nepochs = \"three\"\n"), &[]);
        assert!(m.starts_with("run.toml: training.epochs"), "{m}");
        let m = err(&format!("{BASE}[training]\nepochs = 0\n"), &[]);
        assert!(m.contains("training.epochs"), "{m}");
        let m = err(BASE, &["training.optimizer.lr=-1"]);
        assert!(m.contains("training.optimizer.lr"), "{m}");
        let m = err(BASE, &["training.optimizer.kind=rmsprop"]);
        assert!(
            m.contains("training.optimizer.kind") && m.contains("rmsprop"),
            "{m}"
        );
        let m = err(BASE, &["training.optimizer.momentum=0.9"]);
        assert!(m.contains("only for kind = \"sgd\""), "{m}");
        let m = err(BASE, &["training.schedule.kind=\"table\""]);
        assert!(
            m.contains("training.schedule.rates") && m.contains("one per epoch"),
            "{m}"
        );
        let m = err(
            BASE,
            &[
                "training.schedule.kind=\"table\"",
                "training.schedule.rates=[1e-3, 0.0]",
            ],
        );
        assert!(
            m.contains("training.schedule.rates[1]") && m.contains("positive"),
            "{m}"
        );
        let m = err(BASE, &["training.schedule.rates=[1e-3]"]);
        assert!(m.contains("only for kind = \"table\""), "{m}");
        let m = err(BASE, &["data.dataset=cifar"]);
        assert!(m.contains("data.dataset") && m.contains("cifar"), "{m}");
        // One spelling per name: what the docs show.
        let m = err(BASE, &["data.dataset=fashion"]);
        assert!(
            m.contains("data.dataset") && m.contains("fashion-mnist"),
            "{m}"
        );
        let m = err(BASE, &["backend.kind=tpu"]);
        assert!(m.contains("backend.kind: unknown backend `tpu`"), "{m}");
        let m = err(BASE, &["model.num_classes=3"]);
        assert!(
            m.contains("model.num_classes") && m.contains("mnist"),
            "{m}"
        );
        let m = err("[training]\nepochs = 1\n", &[]);
        assert!(m.contains("[model]"), "{m}");
        let m = err(
            &format!("{BASE}[model.input]\nchannels = 1\nsize = [28, 28]\nextra = 1\n"),
            &[],
        );
        assert!(
            m.starts_with("run.toml: model.input") && m.contains("extra"),
            "{m}"
        );
        let m = err(BASE, &["trainingepochs"]);
        assert!(m.contains("KEY=VALUE"), "{m}");
        // SDLM: its own keys only with it, a positive damping, no batch norm.
        let m = err(BASE, &["training.optimizer.mu=0.1"]);
        assert!(m.contains("only for kind = \"sdlm\""), "{m}");
        let sdlm = "training.optimizer.kind=\"sdlm\"";
        let m = err(BASE, &[sdlm, "training.optimizer.mu=0"]);
        assert!(m.contains("training.optimizer.mu"), "{m}");
        let m = err(BASE, &[sdlm, "training.optimizer.curvature_samples=0"]);
        assert!(m.contains("training.optimizer.curvature_samples"), "{m}");
        let bn =
            format!("{BASE}[[model.features]]\nout_channels = 4\nkernel = 3\nbatch_norm = true\n");
        let m = err(&bn, &[sdlm]);
        assert!(m.contains("model.features[0] has batch_norm"), "{m}");
        let c = RunConfig::parse(BASE, "run.toml", &[sdlm.to_string()]).unwrap();
        assert_eq!(
            (
                c.training.optimizer.mu,
                c.training.optimizer.curvature_samples
            ),
            (0.02, 500)
        );
        // Label smoothing: in [0, 1), not with the RBF output's MAP loss; saved with the run.
        let m = err(BASE, &["training.label_smoothing=1.0"]);
        assert!(
            m.contains("training.label_smoothing: must be in [0, 1)"),
            "{m}"
        );
        let m = err(
            "[model]\npreset = \"lenet5-1998\"\n",
            &["training.label_smoothing=0.1"],
        );
        assert!(m.contains("training.label_smoothing: not for"), "{m}");
        let c =
            RunConfig::parse(BASE, "run.toml", &["training.label_smoothing=0.1".into()]).unwrap();
        assert_eq!(c.training.label_smoothing, Some(0.1));
        let again = RunConfig::parse(&c.to_toml_string().unwrap(), "config.toml", &[]).unwrap();
        assert_eq!(again.training.label_smoothing, Some(0.1));
    }

    #[test]
    fn shipped_configs_load() {
        let dir = // At run time: a target directory shared between checkouts can hold a test binary
        // built from another one.
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into())).join("../../configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                RunConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 4);
    }
}
