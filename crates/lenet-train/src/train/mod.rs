//! Training a network from a [`RunConfig`], top to bottom ([`train`]):
//!
//! 1. **check the run**: the run directory can take it, or the run being resumed keeps its
//!    config and has a checkpoint that loads ([`session`]); nothing is written yet;
//! 2. **load the data** and check it against the network;
//! 3. **start the run**: the run directory and its `config.toml`;
//! 4. **build the learner**: the network (seeded), the optimizer, the schedule ([`learner`]);
//! 5. **fit**: burn-train's `SupervisedTraining` loop ([`fit`]), with lenet's renderer
//!    ([`progress`]) writing `metrics.csv` and the curves after every epoch;
//! 6. **keep the model**: the best validation epoch (or the last) becomes `model.bpk`;
//! 7. **evaluate** the kept model, loaded back from `model.bpk` like `lenet eval` does, on the
//!    test set, and write `summary.json`.
//!
//! An interrupted session (through the interrupter) keeps the weights it reached as
//! `model.bpk`, evaluated like the others, so that `model.bpk`, `summary.json` and
//! `metrics.csv` always describe the same model.
//!
//! The device is chosen once by the caller ([`crate::device::select`]) and passed in. Nothing
//! here touches the process: no signal handler, no exit, no environment; a caller that wants
//! Ctrl-C to stop training hands in an [`Interrupter`] and calls `stop` on it.

pub mod epoch_log;
pub mod fit;
pub mod learner;
pub mod progress;
pub mod scores;
pub mod sdlm;
pub mod session;

use std::path::PathBuf;
use std::sync::Arc;

use burn::train::{Interrupter, Learner};
use lenet_model::Plan;

use crate::classifier::Classifier;
use crate::config::{FinalModel, OptimizerKind, RunConfig};
use crate::data::{self, DataOptions, RunData, SourceError};
use crate::device::Selected;
use crate::evaluate::{evaluate, EvalError, Evaluation};
use crate::run::metrics;
use crate::run::summary::{Kept, TrainSummary};
use crate::run::trained::TrainedModel;
use crate::run::{RunDir, RunError};
use fit::{End, Fitted};
use session::Session;

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
    let session = Session::check(config, &plan, device, opts)?;
    for skipped in session.resume.iter().flat_map(|r| &r.skipped) {
        eprintln!("warning: {skipped}; continuing from an earlier checkpoint");
    }
    let data = data::load(config, &plan, &opts.data)?;
    session.start(config)?;
    let fitted = if session.fitted_before(config) {
        fitted_before(config, device, &session)?
    } else {
        let learner = build_learner(config, &plan, device, &data, session.done_before())?;
        fit::fit(config, device, &data, &session, learner, opts)?
    };
    let kept = keep_model(config, device, &session.dir, &fitted)?;
    let test = evaluate_kept(config, device, &session.dir, &data)?;
    let summary = summarize(config, device, &plan, &data, &fitted, &kept, &test);
    session.dir.write_summary(&summary)?;
    match kept.interrupted {
        Some(at) => Err(TrainError::Interrupted(interrupted(&session.dir, at))),
        None => Ok(summary),
    }
}

/// Step 4: the network with seeded initial weights, the optimizer and the learning-rate
/// schedule for the epochs of `data`'s training images, the first of this session after
/// `done_before` (SDLM's second derivatives are estimated before each).
fn build_learner(
    config: &RunConfig,
    plan: &Plan,
    device: &Selected,
    data: &RunData,
    done_before: usize,
) -> Result<Learner<Classifier>, TrainError> {
    let t = &config.training;
    device.device().seed(t.seed);
    // One optimizer step takes one batch per device.
    let steps = data
        .train
        .indices
        .len()
        .div_ceil(t.batch_size)
        .div_ceil(device.devices.len().max(1));
    let o = &t.optimizer;
    let sdlm = (o.kind == OptimizerKind::Sdlm).then(|| {
        Arc::new(sdlm::Sdlm::new(
            o.mu,
            steps * device.devices.len().max(1),
            done_before + 1,
            &data.train,
            o.curvature_samples,
            t.seed,
            device.device().clone().autodiff(),
        ))
    });
    let autodiff = device.device().clone().autodiff();
    let net = match &t.init_from {
        // A resumed run continues from its checkpoint instead.
        Some(from) if done_before == 0 => {
            let weights = if from.is_dir() {
                from.join("model.bpk")
            } else {
                from.clone()
            };
            TrainedModel::from_weights(config.clone(), &weights, autodiff, String::new())
                .map_err(|e| TrainError::Setting(format!("training.init_from: {e}")))?
                .net
        }
        _ => plan.build(&autodiff),
    };
    let model = Classifier {
        net,
        sdlm,
        label_smoothing: t.label_smoothing,
    };
    let optim = learner::optimizer(&t.optimizer, t.grad_clip_norm);
    let lr = learner::schedule(&t.schedule, t.optimizer.lr, steps, t.epochs)
        .map_err(|e| TrainError::Setting(format!("training.schedule: {e}")))?;
    Ok(Learner::new(model, optim, lr))
}

/// Step 5 for a run whose every epoch was done before this session (killed after its last
/// checkpoint): the weights of that checkpoint.
fn fitted_before(
    config: &RunConfig,
    device: &Selected,
    session: &Session,
) -> Result<Fitted, TrainError> {
    let epoch = session.done_before();
    let path = session.dir.checkpoint_model(epoch);
    let net = TrainedModel::from_weights(
        config.clone(),
        &path,
        device.device().clone(),
        String::new(),
    )
    .map_err(|e| TrainError::Keep(format!("cannot load the last checkpoint: {e}")))?
    .net;
    let rows = session
        .resume
        .as_ref()
        .map_or_else(Vec::new, |r| r.rows.clone());
    Ok(Fitted::before(net, rows))
}

/// What an interrupted session kept, and how to go on.
fn interrupted(dir: &RunDir, at: Option<(usize, usize)>) -> String {
    let at = match at {
        Some((epoch, batch)) => format!(" (epoch {epoch}, batch {batch})"),
        None => String::new(),
    };
    let kept = dir.kept_checkpoint();
    format!(
        "the weights at the interruption{at} are saved in {} (evaluated in summary.json). {kept} Resume with: lenet train --resume --run-dir {}",
        dir.model_path().display(),
        dir.path().display()
    )
}

/// Which weights became `model.bpk`.
struct KeptModel {
    kept: Kept,
    /// The best validation epoch and its accuracy.
    best: Option<(usize, f64)>,
    /// Epochs completed over all sessions.
    completed: usize,
    /// Where training was interrupted, for an interrupted session.
    interrupted: Option<Option<(usize, usize)>>,
}

/// Step 6: the best validation epoch's weights (from its checkpoint), or the last, or those of
/// an interruption, as `model.bpk`.
fn keep_model(
    config: &RunConfig,
    device: &Selected,
    dir: &RunDir,
    fitted: &Fitted,
) -> Result<KeptModel, TrainError> {
    let completed = fitted.rows.iter().map(|r| r.epoch).max().unwrap_or(0);
    let best = metrics::best_epoch(&fitted.rows);
    let final_model = config.training.final_model;
    let (last, interrupted) = match &fitted.end {
        End::Done(net) => (net, None),
        End::Interrupted { net, at } => {
            dir.write_model(net.clone())?;
            return Ok(KeptModel {
                kept: Kept::Interrupted,
                best,
                completed,
                interrupted: Some(*at),
            });
        }
    };
    let net = match (final_model, best) {
        (FinalModel::Best, Some((epoch, _))) if epoch != completed => {
            let path = dir.checkpoint_model(epoch);
            let device = device.device().clone();
            TrainedModel::from_weights(config.clone(), &path, device, String::new())
                .map_err(|e| TrainError::Keep(format!("cannot load the best checkpoint: {e}")))?
                .net
        }
        _ => last.clone(),
    };
    dir.write_model(net)?;
    Ok(KeptModel {
        kept: final_model.into(),
        best,
        completed,
        interrupted,
    })
}

/// Step 7: `model.bpk`, loaded back through the same loader as `lenet eval`, on the test images.
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
    kept: &KeptModel,
    test: &Evaluation,
) -> TrainSummary {
    let t = &config.training;
    let (images, seconds) = fitted.history.training_throughput();
    let valid_accuracy = match kept.kept {
        Kept::Best => kept.best.map(|b| b.1),
        Kept::Last => metrics::last_valid_accuracy(&fitted.rows),
        // Mid-epoch weights were never validated.
        Kept::Interrupted => None,
    };
    TrainSummary {
        dataset: data.name.clone(),
        model: config.model.name.clone(),
        backend: device.kind.to_string(),
        device: device.description.clone(),
        epochs_completed: kept.completed,
        best_epoch: kept.best.map_or(kept.completed, |b| b.0),
        valid_accuracy,
        test_accuracy: test.accuracy,
        test_loss: test.loss,
        test_correct: test.correct,
        test_samples: test.num_samples,
        final_model: kept.kept,
        train_seconds: fitted.seconds,
        images_per_second: images as f64 / seconds.max(1e-9),
        parameters: plan.parameters(),
        stopped: match (kept.interrupted, &t.early_stopping) {
            (Some(Some((epoch, batch))), _) => {
                Some(format!("interrupted in epoch {epoch}, at batch {batch}"))
            }
            (Some(None), _) => Some("interrupted".to_string()),
            _ if kept.completed >= t.epochs => None,
            (None, Some(es)) => Some(format!(
                "early stopping: no better validation accuracy for {} epochs",
                es.patience
            )),
            (None, None) => Some("stopped before the last epoch".to_string()),
        },
    }
}
