//! Training a network from a [`RunConfig`], top to bottom ([`train`]):
//!
//! 1. **load the data** and check it against the network (before anything is written);
//! 2. **prepare the run directory**: a new one, or the one being resumed;
//! 3. **build the learner**: the network (seeded), the optimizer, the schedule ([`learner`]);
//! 4. **fit**: burn-train's `SupervisedTraining` loop (metrics, checkpoints, early stopping,
//!    resume), with lenet's renderer ([`progress`]) writing `metrics.csv` and the curves after
//!    every epoch;
//! 5. **keep the model**: the best validation epoch (or the last) becomes `model.bpk`;
//! 6. **evaluate** the kept model, loaded back from `model.bpk` like `lenet eval` does, on the
//!    test set, and write `summary.json`.
//!
//! The device is chosen once by the caller ([`crate::device::select`]) and passed in. Nothing
//! here touches the process: no signal handler, no exit, no environment; a caller that wants
//! Ctrl-C to stop training hands in an [`Interrupter`] and calls `stop` on it.

pub mod learner;
pub mod progress;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::module::Module;
use burn::train::checkpoint::{
    ComposedCheckpointingStrategy, KeepLastNCheckpoints, MetricCheckpointingStrategy,
};
use burn::train::metric::store::{Aggregate, Direction, Split as MetricSplit};
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric, TopKAccuracyMetric};
use burn::train::renderer::default_renderer;
use burn::train::{
    ExecutionStrategy, Interrupter, Learner, LearningResult, MetricEarlyStoppingStrategy,
    MultiDeviceOptim, StoppingCondition, SupervisedTraining,
};
use lenet_model::{ConvNet, Plan};

use crate::classifier::Classifier;
use crate::config::{FinalModel, RunConfig};
use crate::data::{self, DataOptions, EpochOrder, ImageBatch, RunData, SourceError};
use crate::device::Selected;
use crate::evaluate::{evaluate, EvalError, Evaluation};
use crate::pictures;
use crate::run::metrics::{self, MetricRow};
use crate::run::summary::TrainSummary;
use crate::run::trained::TrainedModel;
use crate::run::{ResumeState, RunDir, RunError};
use progress::{Display, History, Progress};

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
#[derive(Clone)]
pub struct TrainOptions {
    /// The run directory (created; must not hold another run unless `resume`).
    pub run_dir: PathBuf,
    /// Where the data is, and how much of it to use.
    pub data: DataOptions,
    /// How progress is shown.
    pub display: DisplayMode,
    /// Continue the run in `run_dir` from its last checkpoint.
    pub resume: bool,
    /// Stops training at the end of the current batch when `stop` is called on it (the `lenet`
    /// binary does so on Ctrl-C); the weights reached are saved as `model.bpk`.
    pub interrupter: Option<Interrupter>,
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The model config is invalid.
    #[error(transparent)]
    Model(#[from] lenet_model::ModelError),
    /// The data could not be prepared, or does not fit the network.
    #[error(transparent)]
    Data(#[from] SourceError),
    /// The run directory cannot be used or written.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A setting that Burn rejects.
    #[error("{0}")]
    Setting(String),
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
    /// The trained model could not be kept or evaluated.
    #[error("after training: {0}")]
    Keep(String),
    /// Stopped through the interrupter; the weights reached are saved as `model.bpk`, the last
    /// epoch checkpoint is kept for `--resume`.
    #[error("interrupted; {0}")]
    Interrupted(String),
}

impl TrainError {
    /// Whether the config, flags or files are at fault (exit code 2), rather than a failure
    /// while training (exit code 1).
    pub fn is_usage(&self) -> bool {
        match self {
            TrainError::Model(_) | TrainError::Setting(_) => true,
            TrainError::Data(e) => e.is_usage(),
            TrainError::Run(e) => e.is_usage(),
            TrainError::NonFinite { .. }
            | TrainError::Loop(_)
            | TrainError::Keep(_)
            | TrainError::Interrupted(_) => false,
        }
    }
}

/// Trains the network of `config` on `device` as described in `opts`, and returns what
/// `summary.json` holds.
pub fn train(
    config: &RunConfig,
    device: &Selected,
    opts: &TrainOptions,
) -> Result<TrainSummary, TrainError> {
    let plan = config.model.plan()?;
    let data = data::load(config, &plan, &opts.data)?;
    let run = prepare_run(config, opts)?;
    let learner = build_learner(config, &plan, device, data.train.indices.len())?;
    let fitted = fit(config, device, &data, &run, learner, opts)?;
    let kept = keep_model(config, device, &run.dir, &fitted)?;
    let test = evaluate_kept(config, device, &run.dir, &data)?;
    let summary = summarize(config, device, &plan, &data, &fitted, &kept, &test);
    run.dir.write_summary(&summary)?;
    Ok(summary)
}

/// The run directory being written, and where a resumed run continues from.
struct Run {
    dir: RunDir,
    resume: Option<ResumeState>,
}

impl Run {
    /// Epochs completed before this session.
    fn done_before(&self) -> usize {
        self.resume.as_ref().map_or(0, |r| r.epoch)
    }
}

/// Step 2: a fresh run directory, or the one being resumed; its `config.toml`.
fn prepare_run(config: &RunConfig, opts: &TrainOptions) -> Result<Run, TrainError> {
    let run = if opts.resume {
        let dir = RunDir::open(&opts.run_dir)?;
        let resume = Some(dir.resume_state(config.training.epochs)?);
        Run { dir, resume }
    } else {
        Run {
            dir: RunDir::create(&opts.run_dir)?,
            resume: None,
        }
    };
    run.dir.write_config(config)?;
    Ok(run)
}

/// Step 3: the network with seeded initial weights, the optimizer and the learning-rate
/// schedule for `train_images` images per epoch.
fn build_learner(
    config: &RunConfig,
    plan: &Plan,
    device: &Selected,
    train_images: usize,
) -> Result<Learner<Classifier>, TrainError> {
    let t = &config.training;
    device.device().seed(t.seed);
    let model = Classifier {
        net: plan.build(&device.device().clone().autodiff()),
    };
    let optim = learner::optimizer(&t.optimizer, t.grad_clip_norm);
    let steps = train_images.div_ceil(t.batch_size);
    let lr = learner::schedule(&t.schedule, t.optimizer.lr, steps, t.epochs)
        .map_err(|e| TrainError::Setting(format!("training.schedule: {e}")))?;
    Ok(Learner::new(model, optim, lr))
}

/// What the loop left: the last weights and the metrics of every epoch so far.
struct Fitted {
    /// The weights at the end of the last epoch (inference mode).
    net: ConvNet,
    /// `metrics.csv`: earlier sessions' rows and this session's.
    rows: Vec<MetricRow>,
    /// This session's records.
    history: History,
    /// Wall time of this session's loop.
    seconds: f64,
}

/// Step 4: burn-train's loop, then what it reported.
fn fit(
    config: &RunConfig,
    device: &Selected,
    data: &RunData,
    run: &Run,
    learner: Learner<Classifier>,
    opts: &TrainOptions,
) -> Result<Fitted, TrainError> {
    let history = Arc::new(Mutex::new(History::default()));
    let interrupter = opts.interrupter.clone().unwrap_or_default();
    let training = supervised_training(config, device, data, run, &interrupter).renderer(Box::new(
        renderer(config, data, run, opts, &history, &interrupter),
    ));
    let started = Instant::now();
    let result = training.launch(learner);
    let seconds = started.elapsed().as_secs_f64();
    let history = match history.lock() {
        Ok(mut h) => std::mem::take(&mut *h),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    };
    let mut rows = run
        .resume
        .as_ref()
        .map_or_else(Vec::new, |r| r.rows.clone());
    rows.extend(history.rows());
    run.dir.write_metrics(&rows)?;
    let net = outcome(&run.dir, &history, result)?;
    Ok(Fitted {
        net,
        rows,
        history,
        seconds,
    })
}

/// burn-train's loop, set up from `[training]`: the loaders, metrics, checkpoints (the last
/// `keep_checkpoints` epochs and the best by validation accuracy), early stopping, the device
/// strategy, and the checkpoint to resume from.
fn supervised_training(
    config: &RunConfig,
    device: &Selected,
    data: &RunData,
    run: &Run,
    interrupter: &Interrupter,
) -> SupervisedTraining<Classifier> {
    let t = &config.training;
    let (train, valid) = loaders(config, device, data, run.done_before());
    let checkpoints = ComposedCheckpointingStrategy::builder()
        .add(KeepLastNCheckpoints::new(t.keep_checkpoints.max(1)))
        .add(MetricCheckpointingStrategy::new(
            &AccuracyMetric::new(),
            Aggregate::Mean,
            Direction::Highest,
            MetricSplit::Valid,
        ))
        .build();
    let mut training = SupervisedTraining::new(run.dir.path(), train, valid)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .metric_train_numeric(LearningRateMetric::new())
        .with_default_checkpointers()
        .with_checkpointing_strategy(checkpoints)
        .with_training_strategy(strategy(device).into())
        .with_application_logger(None)
        .with_interrupter(interrupter.clone())
        .num_epochs(t.epochs);
    if config.model.num_classes > 5 {
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
    if let Some(r) = &run.resume {
        training = training.checkpoint(r.epoch);
    }
    training
}

type Loader = Arc<dyn DataLoader<ImageBatch>>;

/// The training loader (reshuffled and, if configured, distorted every epoch, from the epoch a
/// resumed run starts at) and the validation loader.
fn loaders(
    config: &RunConfig,
    device: &Selected,
    data: &RunData,
    first_epoch: usize,
) -> (Loader, Loader) {
    let t = &config.training;
    let order = EpochOrder::training(
        data.train.indices.clone(),
        t.seed,
        config.data.augment.enabled,
        first_epoch as u32,
    );
    let train = DataLoaderBuilder::new(data.train.batcher.clone())
        .batch_size(t.batch_size)
        .num_workers(t.num_workers)
        .set_device(device.device().clone())
        .build(order);
    let valid = DataLoaderBuilder::new(data.valid.batcher.clone())
        .batch_size(t.batch_size.max(256))
        .num_workers(t.num_workers)
        .set_device(device.device().clone())
        .build(EpochOrder::plain(data.valid.indices.clone()));
    (train, valid)
}

/// One device, or burn-train's data-parallel strategy over several: the batches are dealt out to
/// the devices, and the gradients of one batch per device are added up on the first device,
/// which takes the optimizer step.
fn strategy(device: &Selected) -> ExecutionStrategy {
    match device.devices.as_slice() {
        [one] => ExecutionStrategy::single(one.clone().autodiff()),
        many => ExecutionStrategy::multi(
            many.iter().map(|d| d.clone().autodiff()).collect(),
            MultiDeviceOptim::OptimMainDevice,
        ),
    }
}

/// The renderer: progress as asked, the history recorded, and `metrics.csv` and the curves
/// rewritten at the end of every epoch (so that a run that dies keeps them, and a user can
/// watch `curves.png` while it trains).
fn renderer(
    config: &RunConfig,
    data: &RunData,
    run: &Run,
    opts: &TrainOptions,
    history: &Arc<Mutex<History>>,
    interrupter: &Interrupter,
) -> Progress {
    let display = match opts.display {
        DisplayMode::Quiet => Display::Quiet,
        DisplayMode::Auto if std::io::stdout().is_terminal() => Display::Dashboard(
            default_renderer(interrupter.clone(), run.resume.as_ref().map(|r| r.epoch)),
        ),
        _ => Display::Lines,
    };
    let dir = run.dir.clone();
    let previous = run
        .resume
        .as_ref()
        .map_or_else(Vec::new, |r| r.rows.clone());
    let title = format!("{} on {}", config.model.name, data.name);
    let epoch_end = move |h: &History| {
        let mut rows = previous.clone();
        rows.extend(h.rows());
        if let Err(e) = dir.write_metrics(&rows) {
            eprintln!("warning: {e}");
        }
        if let Err(e) = pictures::write_curves(dir.path(), &rows, &title) {
            eprintln!("warning: cannot draw the training curves: {e}");
        }
    };
    Progress::new(display, history.clone(), interrupter.clone()).on_epoch_end(Box::new(epoch_end))
}

/// What the loop reported: the last weights, or why it stopped. A stop through the interrupter
/// saves the weights reached as `model.bpk`: burn-train checkpoints at epoch ends only (it does
/// not hand out the optimizer state mid-epoch), so `--resume` redoes the interrupted epoch from
/// the last epoch checkpoint, which keeps resumed runs exact.
fn outcome(
    dir: &RunDir,
    history: &History,
    result: LearningResult<Classifier>,
) -> Result<ConvNet, TrainError> {
    let kept = match dir.last_checkpoint() {
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
    let net = result.model.net.valid();
    if result.interrupted.is_some() {
        dir.write_model(net)?;
        let at = match history.last_train_batch {
            Some((epoch, batch)) => format!(" (epoch {epoch}, batch {batch})"),
            None => String::new(),
        };
        return Err(TrainError::Interrupted(format!(
            "the weights at the interruption{at} are saved in {}. {kept} Resume with: lenet train --resume --run-dir {}",
            dir.model_path().display(),
            dir.path().display()
        )));
    }
    Ok(net)
}

/// Which weights became `model.bpk`.
struct Kept {
    final_model: FinalModel,
    /// The best validation epoch and its accuracy.
    best: Option<(usize, f64)>,
    /// Epochs completed over all sessions.
    completed: usize,
}

/// Step 5: the best validation epoch's weights (from its checkpoint), or the last, as
/// `model.bpk`.
fn keep_model(
    config: &RunConfig,
    device: &Selected,
    dir: &RunDir,
    fitted: &Fitted,
) -> Result<Kept, TrainError> {
    let completed = fitted.rows.iter().map(|r| r.epoch).max().unwrap_or(0);
    let best = metrics::best_epoch(&fitted.rows);
    let final_model = config.training.final_model;
    let net = match (final_model, best) {
        (FinalModel::Best, Some((epoch, _))) if epoch != completed => {
            let path = dir.checkpoint_model(epoch);
            let device = device.device().clone();
            TrainedModel::from_weights(config.clone(), &path, device, String::new())
                .map_err(|e| TrainError::Keep(format!("cannot load the best checkpoint: {e}")))?
                .net
        }
        _ => fitted.net.clone(),
    };
    dir.write_model(net)?;
    Ok(Kept {
        final_model,
        best,
        completed,
    })
}

/// Step 6: `model.bpk`, loaded back through the same loader as `lenet eval`, on the test images.
fn evaluate_kept(
    config: &RunConfig,
    device: &Selected,
    dir: &RunDir,
    data: &RunData,
) -> Result<Evaluation, TrainError> {
    let model = TrainedModel::from_weights(
        config.clone(),
        &dir.model_path(),
        device.device().clone(),
        device.description.clone(),
    )
    .map_err(|e| TrainError::Keep(e.to_string()))?;
    let test = &data.test;
    evaluate(
        &model.net,
        &test.batcher,
        &test.indices,
        &model.device,
        1000,
    )
    .map_err(|e: EvalError| TrainError::Keep(e.to_string()))
}

/// `summary.json`.
fn summarize(
    config: &RunConfig,
    device: &Selected,
    plan: &Plan,
    data: &RunData,
    fitted: &Fitted,
    kept: &Kept,
    test: &Evaluation,
) -> TrainSummary {
    let t = &config.training;
    let (images, seconds) = fitted.history.training_throughput();
    let valid_accuracy = match kept.final_model {
        FinalModel::Best => kept.best.map(|b| b.1),
        FinalModel::Last => metrics::last_valid_accuracy(&fitted.rows),
    };
    TrainSummary {
        dataset: data.name.clone(),
        model: config.model.name.clone(),
        backend: device.kind.to_string(),
        device: device.description.clone(),
        epochs_completed: kept.completed,
        best_epoch: kept.best.map_or(kept.completed, |b| b.0),
        valid_accuracy: valid_accuracy.unwrap_or(f64::NAN),
        test_accuracy: test.accuracy,
        test_loss: test.loss,
        test_correct: test.correct,
        test_samples: test.num_samples,
        final_model: kept.final_model,
        train_seconds: fitted.seconds,
        images_per_second: images as f64 / seconds.max(1e-9),
        parameters: plan.parameters(),
        stopped: (kept.completed < t.epochs).then(|| match &t.early_stopping {
            Some(es) => format!(
                "early stopping: no better validation accuracy for {} epochs",
                es.patience
            ),
            None => "stopped before the last epoch".to_string(),
        }),
    }
}
