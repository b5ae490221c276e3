//! Training a network from a [`RunConfig`], top to bottom: device, data, model, optimizer,
//! schedule, Burn's supervised-training loop, then the run directory's files and a final test.
//!
//! The loop itself is burn-train's `SupervisedTraining` (metrics, checkpoints, early stopping,
//! resume); lenet adds what it lacks: the plain progress renderer, non-finite-loss and Ctrl-C
//! handling, `metrics.csv`, `summary.json`, the final `model.bpk` and the test-set evaluation.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use burn::data::dataloader::DataLoaderBuilder;
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::lr_scheduler::linear::LinearLrSchedulerConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::lr_scheduler::sequential::SequentialLrSchedulerConfig;
use burn::optim::lr_scheduler::step::StepLrSchedulerConfig;
use burn::optim::lr_scheduler::LrSchedulerConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig};
use burn::train::checkpoint::{
    ComposedCheckpointingStrategy, KeepLastNCheckpoints, MetricCheckpointingStrategy,
};
use burn::train::metric::store::{Aggregate, Direction, Split as MetricSplit};
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric, TopKAccuracyMetric};
use burn::train::renderer::default_renderer;
use burn::train::{
    ExecutionStrategy, Interrupter, Learner, MetricEarlyStoppingStrategy, MultiDeviceOptim,
    StoppingCondition, SupervisedTraining,
};
use serde::Serialize;

use crate::backend::{select, BackendError, Selected};
use crate::classifier::Classifier;
use crate::data::{train_valid_split, Augmenter, DataError, Split};
use crate::evaluate::{evaluate, Evaluation};
use crate::pictures;
use crate::progress::{Display, History, Progress};
use crate::run_config::{OptimizerConfig, OptimizerKind, RunConfig, ScheduleConfig, ScheduleKind};
use crate::run_dir::{self, RunDir};
use crate::source::{self, SourceError};
use crate::subset::Subset;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayMode {
    /// Burn's dashboard on a terminal, plain lines otherwise.
    Auto,
    /// Plain lines.
    Lines,
    /// Nothing but the final result.
    Quiet,
}

/// Everything about a training run that is not in the config.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The run directory (created; must not hold another run unless `resume`).
    pub run_dir: PathBuf,
    /// Where datasets live (`<root>/<dataset>/`).
    pub data_root: PathBuf,
    /// Never download.
    pub offline: bool,
    /// How progress is shown.
    pub display: DisplayMode,
    /// Continue the run in `run_dir` from its last checkpoint.
    pub resume: bool,
    /// Use only the first N training, validation and test images (quick runs and tests).
    pub limit: Option<Limit>,
}

/// Caps on the number of images (after the split).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Training images.
    pub train: usize,
    /// Validation images.
    pub valid: usize,
    /// Test images.
    pub test: usize,
}

/// `summary.json`: what a finished (or stopped) run achieved.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrainSummary {
    /// Dataset name.
    pub dataset: String,
    /// Model name.
    pub model: String,
    /// Backend used.
    pub backend: String,
    /// The device(s) trained on, for people.
    #[serde(default)]
    pub device: String,
    /// Epochs completed (over all sessions of a resumed run).
    pub epochs_completed: usize,
    /// Epoch with the best validation accuracy.
    pub best_epoch: usize,
    /// Validation accuracy of the kept model, in [0, 1].
    pub valid_accuracy: f64,
    /// Test accuracy of the kept model, in [0, 1].
    pub test_accuracy: f64,
    /// Test loss of the kept model.
    pub test_loss: f64,
    /// Correct test predictions.
    pub test_correct: usize,
    /// Test images.
    pub test_samples: usize,
    /// Which weights were kept: `best` or `last`.
    pub final_model: String,
    /// Wall time of this session's training loop.
    pub train_seconds: f64,
    /// Training images per second over this session's training epochs.
    pub images_per_second: f64,
    /// Trainable parameters.
    pub parameters: usize,
    /// Why training ended early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The model config is invalid.
    #[error(transparent)]
    Model(#[from] lenet_model::ModelError),
    /// The backend is not available.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The data could not be prepared.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The split or augmentation settings are invalid.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A setting that Burn rejects.
    #[error("{0}")]
    Setting(String),
    /// The run directory cannot be used or written.
    #[error(transparent)]
    RunDir(#[from] run_dir::RunDirError),
    /// The loss became NaN or infinite.
    #[error("the loss became {value} in epoch {epoch}, batch {batch}; training stopped. Lower the learning rate (training.optimizer.lr) or clip gradients (training.grad_clip_norm). {checkpoint}")]
    NonFinite {
        /// Epoch (1-based).
        epoch: usize,
        /// Batch within the epoch (1-based).
        batch: usize,
        /// The value.
        value: f64,
        /// What was kept.
        checkpoint: String,
    },
    /// Burn's training loop reported an error.
    #[error("training failed: {0}")]
    Loop(String),
    /// Stopped by Ctrl-C; the weights reached are saved as `model.bpk`, the last epoch
    /// checkpoint is kept for `--resume`.
    #[error("interrupted; {0}")]
    Interrupted(String),
}

/// Routes Ctrl-C to the interrupter of the training in progress (a second Ctrl-C exits at once).
fn install_ctrl_c(interrupter: Interrupter) {
    static CURRENT: OnceLock<Mutex<Option<Interrupter>>> = OnceLock::new();
    let slot = CURRENT.get_or_init(|| {
        let _ = ctrlc::set_handler(|| {
            if let Some(Ok(current)) = CURRENT.get().map(|m| m.lock()) {
                if let Some(i) = current.as_ref() {
                    if i.should_stop() {
                        std::process::exit(130);
                    }
                    eprintln!("\nstopping at the end of this batch (Ctrl-C again to quit now)");
                    i.stop(Some("interrupted by Ctrl-C"));
                }
            }
        });
        Mutex::new(None)
    });
    if let Ok(mut s) = slot.lock() {
        *s = Some(interrupter);
    }
}

/// The optimizer of `cfg`.
pub fn optimizer(cfg: &OptimizerConfig, clip: Option<f32>) -> ModuleOptimizer {
    let clip = clip.map(GradientClippingConfig::Norm);
    let decay = (cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay as f32));
    match cfg.kind {
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum((cfg.momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(cfg.momentum)
                    .with_dampening(0.0)
                    .with_nesterov(cfg.nesterov)
            }))
            .with_weight_decay(decay)
            .with_gradient_clipping(clip)
            .init(),
        OptimizerKind::Adam => AdamConfig::new()
            .with_beta_1(cfg.beta1)
            .with_beta_2(cfg.beta2)
            .with_epsilon(cfg.epsilon)
            .with_weight_decay(decay)
            .with_grad_clipping(clip)
            .init(),
        OptimizerKind::Adamw => AdamWConfig::new()
            .with_beta_1(cfg.beta1)
            .with_beta_2(cfg.beta2)
            .with_epsilon(cfg.epsilon)
            .with_weight_decay(cfg.weight_decay as f32)
            .with_grad_clipping(clip)
            .init(),
    }
}

/// The learning-rate schedule of `cfg`, per step, for `epochs` epochs of `steps` steps.
pub fn schedule(
    cfg: &ScheduleConfig,
    lr: f64,
    steps: usize,
    epochs: usize,
) -> Result<ModuleLrScheduler, String> {
    let total = (steps * epochs).max(1);
    let (warm, main) = match cfg.kind {
        ScheduleKind::OneCycle => {
            let warm = (total * 3 / 10).max(1);
            (
                warm,
                LrSchedulerConfig::Cosine(
                    CosineAnnealingLrSchedulerConfig::new(lr, (total - warm).max(1))
                        .with_min_lr(cfg.min_lr),
                ),
            )
        }
        kind => {
            let warm = cfg.warmup_epochs * steps;
            let rest = (total - warm.min(total)).max(1);
            let main = match kind {
                ScheduleKind::Step => LrSchedulerConfig::Step(
                    StepLrSchedulerConfig::new(lr, (cfg.step_epochs.unwrap_or(1) * steps).max(1))
                        .with_gamma(cfg.gamma.unwrap_or(0.1)),
                ),
                ScheduleKind::Cosine => LrSchedulerConfig::Cosine(
                    CosineAnnealingLrSchedulerConfig::new(lr, rest).with_min_lr(cfg.min_lr),
                ),
                _ => LrSchedulerConfig::Constant(lr),
            };
            (warm, main)
        }
    };
    if warm == 0 {
        return SequentialLrSchedulerConfig::new(vec![main], vec![]).init();
    }
    let start = if cfg.kind == ScheduleKind::OneCycle {
        lr / 25.0
    } else {
        lr / warm as f64
    };
    let warmup = LrSchedulerConfig::Linear(LinearLrSchedulerConfig::new(start, lr, warm));
    SequentialLrSchedulerConfig::new(vec![warmup, main], vec![warm]).init()
}

fn cap(mut v: Vec<usize>, n: Option<usize>) -> Vec<usize> {
    if let Some(n) = n {
        v.truncate(n);
    }
    v
}

/// One device, or burn-train's data-parallel strategy over several: the batches are dealt out to
/// the devices, and the gradients of one batch per device are added up on the first device,
/// which takes the optimizer step.
fn strategy_for(selected: &Selected) -> ExecutionStrategy {
    match selected.devices.as_slice() {
        [one] => ExecutionStrategy::single(one.clone().autodiff()),
        many => ExecutionStrategy::multi(
            many.iter().map(|d| d.clone().autodiff()).collect(),
            MultiDeviceOptim::OptimMainDevice,
        ),
    }
}

/// Trains the network of `config` as described in `opts` and returns what `summary.json` holds.
pub fn train(config: &RunConfig, opts: &TrainOptions) -> Result<TrainSummary, TrainError> {
    let t = &config.training;
    let b = &config.backend;
    let selected = select(&b.kind, b.device, &b.devices)?;
    let device = selected.device().clone();
    let plan = config.model.plan()?;

    // The run directory: a fresh one, or the one being resumed.
    let dir = if opts.resume {
        RunDir::open_for_resume(&opts.run_dir)?
    } else {
        RunDir::create(&opts.run_dir)?
    };
    let resume_from = if opts.resume {
        dir.last_checkpoint()
    } else {
        None
    };
    if opts.resume && resume_from.is_none() {
        return Err(run_dir::RunDirError::NothingToResume(opts.run_dir.clone()).into());
    }
    let done_before = resume_from.unwrap_or(0);
    if done_before >= t.epochs {
        return Err(TrainError::Setting(format!(
            "{} already completed {done_before} of {} epochs; raise training.epochs (e.g. --epochs {}) to train further",
            opts.run_dir.display(),
            t.epochs,
            done_before + 1
        )));
    }
    dir.write_config(&config.to_toml_string())?;

    // Data: the training set split into train and validation parts, and the test set.
    let train_src = source::load(&config.data, &opts.data_root, Split::Train, opts.offline)?;
    let test_src = source::load(&config.data, &opts.data_root, Split::Test, opts.offline)?;
    let (train_idx, valid_idx) =
        train_valid_split(train_src.data.len(), config.data.validation, t.seed)?;
    let train_idx = cap(train_idx, opts.limit.map(|l| l.train));
    let valid_idx = cap(valid_idx, opts.limit.map(|l| l.valid));
    let test_idx = cap(
        (0..test_src.data.len()).collect(),
        opts.limit.map(|l| l.test),
    );
    if train_idx.is_empty() || valid_idx.is_empty() {
        return Err(TrainError::Setting(
            "data.validation: the split leaves no training or no validation images".into(),
        ));
    }
    let augment = config.data.augment.enabled;
    let augmenter = if augment {
        Some(Augmenter::new(config.data.augment.clone())?)
    } else {
        None
    };
    let train_batcher = train_src.batcher(&plan, augmenter)?;
    let eval_batcher = train_src.batcher(&plan, None)?;
    let test_batcher = test_src.batcher(&plan, None)?;
    let steps = train_idx.len().div_ceil(t.batch_size);

    let train_loader = DataLoaderBuilder::new(train_batcher)
        .batch_size(t.batch_size)
        .num_workers(t.num_workers)
        .set_device(device.clone())
        .build(Subset::training(
            train_idx.clone(),
            t.seed,
            augment,
            done_before as u32,
        ));
    let valid_loader = DataLoaderBuilder::new(eval_batcher.clone())
        .batch_size(t.batch_size.max(256))
        .num_workers(t.num_workers)
        .set_device(device.clone())
        .build(Subset::plain(valid_idx.clone()));

    // Model, optimizer, schedule.
    device.seed(t.seed);
    let model = Classifier {
        net: plan.build(&device.clone().autodiff()),
    };
    let optim = optimizer(&t.optimizer, t.grad_clip_norm);
    let lr = schedule(&t.schedule, t.optimizer.lr, steps, t.epochs)
        .map_err(|e| TrainError::Setting(format!("training.schedule: {e}")))?;

    // The loop.
    let history = Arc::new(Mutex::new(History::default()));
    let strategy = ComposedCheckpointingStrategy::builder()
        .add(KeepLastNCheckpoints::new(t.keep_checkpoints.max(1)))
        .add(MetricCheckpointingStrategy::new(
            &AccuracyMetric::new(),
            Aggregate::Mean,
            Direction::Highest,
            MetricSplit::Valid,
        ))
        .build();
    let mut training = SupervisedTraining::new(dir.path(), train_loader, valid_loader)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .metric_train_numeric(LearningRateMetric::new())
        .with_default_checkpointers()
        .with_checkpointing_strategy(strategy)
        .with_training_strategy(strategy_for(&selected).into())
        .with_application_logger(None)
        .num_epochs(t.epochs);
    if plan.num_classes > 5 {
        training = training
            .metric_train_numeric(TopKAccuracyMetric::new(5))
            .metric_valid_numeric(TopKAccuracyMetric::new(5));
    }
    if let Some(es) = &t.early_stopping {
        training = training.early_stopping(MetricEarlyStoppingStrategy::new(
            &AccuracyMetric::new(),
            Aggregate::Mean,
            Direction::Highest,
            MetricSplit::Valid,
            StoppingCondition::NoImprovementSince {
                n_epochs: es.patience,
            },
        ));
    }
    if let Some(epoch) = resume_from {
        training = training.checkpoint(epoch);
    }
    let interrupter = training.interrupter();
    let display = match opts.display {
        DisplayMode::Quiet => Display::Quiet,
        DisplayMode::Auto if std::io::stdout().is_terminal() => {
            Display::Dashboard(default_renderer(interrupter.clone(), resume_from))
        }
        _ => Display::Lines,
    };
    // metrics.csv and the curves are rewritten at the end of every epoch, so that a run that
    // dies keeps them and a user can watch `curves.png` while it trains.
    let mut previous = dir.read_metrics()?;
    // Rows of epochs after the checkpoint resumed from belong to an interrupted attempt.
    previous.retain(|r| r.epoch <= done_before);
    let title = format!("{} on {}", config.model.name, train_src.data.name);
    let epoch_end = {
        let (dir, previous, title) = (dir.clone(), previous.clone(), title.clone());
        move |h: &History| {
            let mut rows = previous.clone();
            rows.extend(run_dir::rows_from_history(h));
            if let Err(e) = dir.write_metrics(&rows) {
                eprintln!("warning: {e}");
            }
            if let Err(e) = pictures::write_curves(dir.path(), &rows, &title) {
                eprintln!("warning: cannot draw the training curves: {e}");
            }
        }
    };
    let training = training.renderer(Box::new(
        Progress::new(display, history.clone(), interrupter.clone())
            .on_epoch_end(Box::new(epoch_end)),
    ));
    install_ctrl_c(interrupter.clone());

    let started = Instant::now();
    let result = training.launch(Learner::new(model, optim, lr));
    let train_seconds = started.elapsed().as_secs_f64();

    // What happened.
    let history = match history.lock() {
        Ok(mut h) => std::mem::take(&mut *h),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    };
    let mut epochs = previous;
    epochs.extend(run_dir::rows_from_history(&history));
    dir.write_metrics(&epochs)?;
    let last_checkpoint = dir.last_checkpoint();
    let kept = match last_checkpoint {
        Some(e) => format!(
            "The checkpoint of epoch {e} is kept in {}.",
            dir.checkpoint_dir().display()
        ),
        None => "No epoch was completed, so no checkpoint was written.".to_string(),
    };
    if let Some((epoch, batch, value)) = history.non_finite {
        return Err(TrainError::NonFinite {
            epoch,
            batch,
            value,
            checkpoint: kept,
        });
    }
    if let Some(err) = &result.error {
        return Err(TrainError::Loop(err.to_string()));
    }
    if let Some(i) = &result.interrupted {
        let reason = i.reason.clone().unwrap_or_default();
        if reason.contains("Ctrl-C") {
            // burn-train checkpoints at epoch ends only (it does not hand out the optimizer state
            // mid-epoch), so the weights reached at the interruption are saved as `model.bpk`
            // for `lenet eval` / `lenet predict`, and `--resume` redoes the interrupted epoch
            // from the last epoch checkpoint, which keeps resumed runs exact.
            dir.write_model(result.model.net.valid())?;
            let at = match history.last_train_batch {
                Some((epoch, batch)) => format!(" (epoch {epoch}, batch {batch})"),
                None => String::new(),
            };
            return Err(TrainError::Interrupted(format!(
                "the weights at the interruption{at} are saved in {}. {kept} Resume with: lenet train --resume --run-dir {}",
                dir.path().join("model.bpk").display(),
                dir.path().display()
            )));
        }
    }

    // The kept model: the best validation epoch, or the last.
    let completed = epochs.iter().map(|r| r.epoch).max().unwrap_or(0);
    let best = run_dir::best_epoch(&epochs);
    let eval_device = device.clone();
    let mut net = result.model.net.valid();
    let final_model = match (t.final_model, best) {
        (crate::run_config::FinalModel::Best, Some((epoch, _))) if epoch != completed => {
            let path = dir.checkpoint_dir().join(format!("model-{epoch}.bpk"));
            let fresh = Classifier {
                net: plan.build(&eval_device),
            };
            net = fresh
                .try_load_file(&path)
                .map_err(|e| {
                    TrainError::Setting(format!(
                        "cannot load the best checkpoint {}: {e}",
                        path.display()
                    ))
                })?
                .net;
            "best"
        }
        (crate::run_config::FinalModel::Best, _) => "best",
        (crate::run_config::FinalModel::Last, _) => "last",
    };
    dir.write_model(net.clone())?;

    let test: Evaluation = evaluate(&net, &test_batcher, &test_idx, &eval_device, 1000);
    let images: usize = history
        .epochs
        .iter()
        .filter(|((_, s), _)| s == "train")
        .map(|(_, r)| r.items)
        .sum();
    let train_time: f64 = history
        .epochs
        .iter()
        .filter(|((_, s), _)| s == "train")
        .map(|(_, r)| r.seconds)
        .sum();
    let summary = TrainSummary {
        dataset: train_src.data.name.clone(),
        model: config.model.name.clone(),
        backend: selected.kind.to_string(),
        device: selected.description.clone(),
        epochs_completed: completed,
        best_epoch: best.map(|b| b.0).unwrap_or(completed),
        valid_accuracy: match final_model {
            "best" => best.map(|b| b.1).unwrap_or(f64::NAN),
            _ => epochs
                .iter()
                .rev()
                .find(|r| r.split == "valid")
                .and_then(|r| r.get("accuracy"))
                .unwrap_or(f64::NAN),
        },
        test_accuracy: test.accuracy,
        test_loss: test.loss,
        test_correct: test.correct,
        test_samples: test.num_samples,
        final_model: final_model.to_string(),
        train_seconds,
        images_per_second: images as f64 / train_time.max(1e-9),
        parameters: plan.parameters(),
        stopped: (completed < t.epochs).then(|| match &t.early_stopping {
            Some(es) => format!(
                "early stopping: no better validation accuracy for {} epochs",
                es.patience
            ),
            None => "stopped before the last epoch".to_string(),
        }),
    };
    dir.write_summary(&summary)?;
    Ok(summary)
}
