//! Step 4 of training: burn-train's `SupervisedTraining` loop, set up from `[training]` (the
//! loaders, metrics, checkpoints, early stopping, the device strategy, the checkpoint to resume
//! from) with lenet's renderer, and what the loop reported.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::module::Module;
use burn::tensor::distributed::{DistributedConfig, ReduceOperation};
use burn::train::checkpoint::{
    ComposedCheckpointingStrategy, KeepLastNCheckpoints, MetricCheckpointingStrategy,
};
use burn::train::metric::store::{Aggregate, Direction, Split as MetricSplit};
use burn::train::metric::LearningRateMetric;
use burn::train::renderer::default_renderer;
use burn::train::{
    ExecutionStrategy, Interrupter, Learner, LearningResult, MetricEarlyStoppingStrategy,
    MultiDeviceOptim, StoppingCondition, SupervisedTraining,
};
use lenet_model::ConvNet;

use crate::classifier::Classifier;
use crate::config::{BackendKind, RunConfig, Strategy};
use crate::data::{EpochOrder, ImageBatch, Part, RunData};
use crate::device::Selected;
use crate::pictures;
use crate::run::metrics::MetricRow;
use crate::run::RunDir;
use crate::train::epoch_log::EpochLog;
use crate::train::progress::{Display, History, Progress};
use crate::train::scores::ScoreMetric;
use crate::train::session::Session;
use crate::train::{DisplayMode, TrainError, TrainOptions};

/// What the loop left: the last weights and the metrics of every epoch so far.
pub struct Fitted {
    /// How it ended, with the weights reached (inference mode).
    pub end: End,
    /// `metrics.csv`: earlier sessions' rows and this session's.
    pub rows: Vec<MetricRow>,
    /// This session's records.
    pub history: History,
    /// Wall time of this session's loop.
    pub seconds: f64,
}

/// How the loop ended.
pub enum End {
    /// After its last epoch (or early stopping), with the last epoch's weights.
    Done(ConvNet),
    /// Stopped through the interrupter mid-epoch, with the weights reached there.
    Interrupted {
        /// The weights reached.
        net: ConvNet,
        /// `(epoch, batch)` of the last training batch.
        at: Option<(usize, usize)>,
    },
}

impl Fitted {
    /// A run whose every epoch was done in earlier sessions: the weights of its last checkpoint.
    pub fn before(net: ConvNet, rows: Vec<MetricRow>) -> Fitted {
        Fitted {
            end: End::Done(net),
            rows,
            history: History::default(),
            seconds: 0.0,
        }
    }
}

/// burn-train's loop, then what it reported.
pub fn fit(
    config: &RunConfig,
    device: &Selected,
    data: &RunData,
    run: &Session,
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
    // An epoch counts once it ended (validated, where there is a validation split): an
    // interrupted epoch's partial training row is dropped.
    let completed = history.completed.max(run.done_before());
    rows.retain(|r| r.epoch <= completed);
    run.dir.write_metrics(&rows)?;
    let end = outcome(&run.dir, &history, result)?;
    Ok(Fitted {
        end,
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
    run: &Session,
    interrupter: &Interrupter,
) -> SupervisedTraining<Classifier> {
    let t = &config.training;
    let (train, valid) = loaders(config, device, data, run.done_before());
    // Without a validation split (`data.validation = 0`) there are no validation metrics to
    // compute and no best epoch to keep.
    let validating = !data.valid.indices.is_empty();
    let mut checkpoints = ComposedCheckpointingStrategy::builder()
        .add(KeepLastNCheckpoints::new(t.keep_checkpoints.max(1)));
    if validating {
        checkpoints = checkpoints.add(MetricCheckpointingStrategy::new(
            &ScoreMetric::accuracy(),
            Aggregate::Mean,
            Direction::Highest,
            MetricSplit::Valid,
        ));
    }
    let mut training = SupervisedTraining::new(run.dir.path(), train, valid)
        .metric_train_numeric(ScoreMetric::accuracy())
        .metric_train_numeric(ScoreMetric::loss())
        .metric_train_numeric(LearningRateMetric::new())
        .with_default_checkpointers()
        .with_checkpointing_strategy(checkpoints.build())
        .with_training_strategy(strategy(device, config.backend.strategy).into())
        .with_application_logger(None)
        .with_metric_logger(EpochLog::new(
            run.resume.as_ref().map_or(&[][..], |r| &r.rows),
        ))
        .with_interrupter(interrupter.clone())
        .num_epochs(t.epochs);
    if validating {
        training = training
            .metric_valid_numeric(ScoreMetric::accuracy())
            .metric_valid_numeric(ScoreMetric::loss());
    }
    if config.model.num_classes > 5 {
        training = training.metric_train_numeric(ScoreMetric::top_k(5));
        if validating {
            training = training.metric_valid_numeric(ScoreMetric::top_k(5));
        }
    }
    if let Some(es) = &t.early_stopping {
        training = training.early_stopping(MetricEarlyStoppingStrategy::new(
            &ScoreMetric::accuracy(),
            Aggregate::Mean,
            Direction::Highest,
            MetricSplit::Valid,
            StoppingCondition::NoImprovementSince {
                n_epochs: es.patience,
            },
        ));
    }
    // Epoch 0: a resumed run that never kept an epoch starts from the beginning.
    if run.done_before() > 0 {
        training = training.checkpoint(run.done_before());
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
    // On a GPU each part's images are uploaded once and batches are gathered there.
    let on_gpu = matches!(device.kind, BackendKind::Wgpu | BackendKind::Cuda);
    let batcher = |part: &Part| match on_gpu {
        true => part
            .batcher
            .clone()
            .resident(&part.indices, device.device()),
        false => part.batcher.clone(),
    };
    let mut order = EpochOrder::training(
        data.train.indices.clone(),
        t.seed,
        config.data.augment.enabled,
        first_epoch as u32,
    );
    // DDP deals the epoch out in contiguous shards; equal shards keep the devices in step (a
    // device with one batch more would wait for the others' gradients forever).
    if config.backend.strategy == Strategy::Ddp {
        order = order.multiple_of(device.devices.len());
    }
    let train = DataLoaderBuilder::new(batcher(&data.train))
        .batch_size(t.batch_size)
        .num_workers(t.workers(on_gpu))
        .set_device(device.device().clone())
        .build(order);
    let valid = DataLoaderBuilder::new(batcher(&data.valid))
        .batch_size(t.batch_size.max(256))
        .num_workers(t.workers(on_gpu))
        .set_device(device.device().clone())
        .build(EpochOrder::plain(data.valid.indices.clone()));
    (train, valid)
}

/// One device, or a data-parallel strategy over several: burn-train's multi-device strategy
/// (the batches dealt out to the devices, the gradients of one batch per device added up on the
/// first device, which takes the optimizer step), or DDP (a replica per device on its own shard
/// of the epoch, gradients averaged by an all-reduce inside the backward pass; CUDA only, which
/// the config checks).
fn strategy(device: &Selected, kind: Strategy) -> ExecutionStrategy {
    let autodiff = || {
        device
            .devices
            .iter()
            .map(|d| d.clone().autodiff())
            .collect()
    };
    match (kind, device.devices.as_slice()) {
        (Strategy::Ddp, _) => ExecutionStrategy::ddp(
            autodiff(),
            DistributedConfig {
                all_reduce_op: ReduceOperation::Mean,
            },
        ),
        (Strategy::Multi, [one]) => ExecutionStrategy::single(one.clone().autodiff()),
        (Strategy::Multi, _) => {
            ExecutionStrategy::multi(autodiff(), MultiDeviceOptim::OptimMainDevice)
        }
    }
}

/// The renderer: progress as asked, the history recorded, and `metrics.csv` and the curves
/// rewritten at the end of every epoch (so that a run that dies keeps them, and a user can
/// watch `curves.png` while it trains).
fn renderer(
    config: &RunConfig,
    data: &RunData,
    run: &Session,
    opts: &TrainOptions,
    history: &Arc<Mutex<History>>,
    interrupter: &Interrupter,
) -> Progress {
    let display = match opts.display {
        DisplayMode::Quiet => Display::Quiet,
        DisplayMode::Auto if std::io::stdout().is_terminal() => {
            Display::Dashboard(default_renderer(
                interrupter.clone(),
                Some(run.done_before()).filter(|&e| e > 0),
            ))
        }
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

/// What the loop reported: how it ended, or why it failed (a non-finite loss, an error).
fn outcome(
    dir: &RunDir,
    history: &History,
    result: LearningResult<Classifier>,
) -> Result<End, TrainError> {
    if let Some((epoch, batch, value)) = history.non_finite {
        let checkpoint = dir.kept_checkpoint();
        return Err(TrainError::NonFinite {
            epoch,
            batch,
            value,
            checkpoint,
        });
    }
    if let Some(err) = &result.error {
        return Err(TrainError::Loop(err.to_string()));
    }
    let net = result.model.net.valid();
    Ok(match result.interrupted {
        Some(_) => End::Interrupted {
            net,
            at: history.last_train_batch,
        },
        None => End::Done(net),
    })
}
