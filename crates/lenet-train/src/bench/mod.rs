//! Throughput measurements for `lenet bench`, each the median (and spread) of 5 timed windows
//! after a warm-up. Training steps go through the same classifier, optimizer and step as
//! `lenet train` ([`crate::train::learner`]); only the data is random.
//!
//! * [`train_throughput`]: steady-state training steps on random images;
//! * [`inference_throughput`]: forward passes without autodiff at batch 1000;
//! * [`batcher_throughput`]: how many images per second the data pipeline turns into tensors;
//! * [`epoch`]: one real epoch through [`crate::train()`], against the raw speed;
//! * [`layers`]: a per-layer profile.

pub mod layers;

use std::time::Instant;

use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Distribution, Int, Tensor};
use lenet_model::Plan;
use serde::Serialize;

use crate::classifier::Classifier;
use crate::config::RunConfig;
use crate::data::{self, DataOptions, ImageBatch, ImageItem, SourceError};
use crate::device::Selected;
use crate::train::{learner, train, DisplayMode, TrainError, TrainOptions};

/// One measurement: median and spread of the windows.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// `train`, `inference` or `batcher`.
    pub what: String,
    /// Images per step.
    pub batch_size: usize,
    /// Median over the windows.
    pub images_per_second: f64,
    /// Slowest window.
    pub min: f64,
    /// Fastest window.
    pub max: f64,
}

/// The network cannot be measured on random images.
#[derive(Debug, thiserror::Error)]
#[error("lenet bench measures 2D image networks ([channels, height, width]); this model's input is {0:?}")]
pub struct NotImages(pub Vec<usize>);

fn measure(
    what: &str,
    batch_size: usize,
    windows: usize,
    mut window: impl FnMut() -> f64,
) -> Measurement {
    let mut rates: Vec<f64> = (0..windows).map(|_| window()).collect();
    rates.sort_by(f64::total_cmp);
    Measurement {
        what: what.to_string(),
        batch_size,
        images_per_second: rates[rates.len() / 2],
        min: rates[0],
        max: rates[rates.len() - 1],
    }
}

/// `[channels, height, width]` of a 2D network.
fn image_shape(plan: &Plan) -> Result<[usize; 3], NotImages> {
    match plan.input_shape()[..] {
        [c, h, w] => Ok([c, h, w]),
        _ => Err(NotImages(plan.input_shape())),
    }
}

/// Random images in roughly the normalised range, and random labels.
fn random_batch(plan: &Plan, shape: [usize; 3], bs: usize, device: &Device) -> ImageBatch {
    let [c, h, w] = shape;
    ImageBatch {
        images: Tensor::random([bs, c, h, w], Distribution::Normal(0.0, 1.0), device),
        targets: Tensor::<1, Int>::random(
            [bs],
            Distribution::Uniform(0.0, plan.num_classes as f64),
            device,
        ),
    }
}

/// The network of a config training on random data: the model, the config's optimizer at its
/// learning rate, and four random batches, after 10 warm-up steps.
struct RawSteps {
    model: Option<Classifier>,
    optim: ModuleOptimizer,
    lr: f64,
    batches: Vec<ImageBatch>,
}

impl RawSteps {
    fn new(config: &RunConfig, plan: &Plan, device: &Device, bs: usize) -> Result<Self, NotImages> {
        let shape = image_shape(plan)?;
        let ad = device.clone().autodiff();
        device.seed(0);
        let t = &config.training;
        let batches = (0..4).map(|_| random_batch(plan, shape, bs, &ad)).collect();
        let mut raw = RawSteps {
            model: Some(Classifier::new(plan.build(&ad))),
            optim: learner::optimizer(&t.optimizer, t.grad_clip_norm),
            lr: t.optimizer.lr,
            batches,
        };
        raw.run(10);
        Ok(raw)
    }

    /// Runs `steps` training steps and returns their wall time in seconds.
    fn run(&mut self, steps: usize) -> f64 {
        let start = Instant::now();
        let Some(mut m) = self.model.take() else {
            unreachable!("RawSteps keeps its model between runs")
        };
        for batch in self.batches.iter().cycle().take(steps) {
            m = learner::step(m, &mut self.optim, self.lr, batch.clone()).0;
        }
        // Wait for the device (GPU backends queue work).
        if let Some(l) = m.net.output.linear().or(m.net.hidden.last()) {
            let _ = l.weight.val().into_data();
        }
        self.model = Some(m);
        start.elapsed().as_secs_f64()
    }
}

/// Training steps of the network of `config` on random data at batch `bs`, `steps` per window,
/// with the config's optimizer at its learning rate.
pub fn train_throughput(
    config: &RunConfig,
    plan: &Plan,
    device: &Device,
    bs: usize,
    steps: usize,
) -> Result<Measurement, NotImages> {
    let mut raw = RawSteps::new(config, plan, device, bs)?;
    let steps = steps.max(1);
    Ok(measure("train", bs, 5, || {
        (steps * bs) as f64 / raw.run(steps)
    }))
}

/// Forward passes at batch 1000 without autodiff, `steps / 3` per window.
pub fn inference_throughput(
    plan: &Plan,
    device: &Device,
    steps: usize,
) -> Result<Measurement, NotImages> {
    let [c, h, w] = image_shape(plan)?;
    let net = plan.build(device);
    let bs = 1000;
    let x: Tensor<4> = Tensor::random([bs, c, h, w], Distribution::Normal(0.0, 1.0), device);
    for _ in 0..3 {
        let _ = net.forward_2d(x.clone()).into_data();
    }
    let steps = (steps / 3).max(1);
    Ok(measure("inference", bs, 5, || {
        let start = Instant::now();
        for _ in 0..steps {
            let _ = net.forward_2d(x.clone()).into_data();
        }
        (steps * bs) as f64 / start.elapsed().as_secs_f64()
    }))
}

/// Images per second the batcher makes from the training file of `config`'s dataset, in
/// windows of `seconds`.
pub fn batcher_throughput(
    config: &RunConfig,
    plan: &Plan,
    device: &Device,
    data: &DataOptions,
    batch_sizes: &[usize],
    seconds: f64,
) -> Result<Vec<Measurement>, SourceError> {
    let source = data::load_file(config, lenet_data::Split::Train, data)?;
    let batcher = source.batcher(plan, None)?;
    let n = source.data.len();
    let mut out = Vec::new();
    for &bs in batch_sizes {
        let bs = bs.max(1);
        let mut next = 0usize;
        out.push(measure("batcher", bs, 5, || {
            let start = Instant::now();
            let mut batches = 0usize;
            while start.elapsed().as_secs_f64() < seconds {
                let items: Vec<ImageItem> =
                    (0..bs).map(|i| ImageItem::plain((next + i) % n)).collect();
                next = (next + bs) % n;
                std::hint::black_box(batcher.make_batch(&items, device));
                batches += 1;
            }
            (batches * bs) as f64 / start.elapsed().as_secs_f64()
        }));
    }
    Ok(out)
}

/// Epochs that [`epoch`] trains, each between two raw runs. Single epochs' ratios on the 2-core
/// machine spread from 0.83 to 1.35 around a median near 1.07 (the machine's speed moves by a
/// quarter within seconds, 2026-12-03); five (three until then) keep one slow spell from
/// deciding the median.
pub const EPOCH_REPEATS: usize = 5;

/// Real epochs through `lenet train` against the raw training time of their steps.
#[derive(Debug, Serialize)]
pub struct EpochMeasurement {
    /// Images per step.
    pub batch_size: usize,
    /// Training images of an epoch.
    pub train_images: usize,
    /// Validation images of an epoch.
    pub valid_images: usize,
    /// Each epoch's training and validation time, in the order they ran.
    pub epoch_seconds: Vec<f64>,
    /// The raw training time of as many steps on random images (the config's network and
    /// optimizer), before the first epoch, between each two and after the last.
    pub raw_seconds: Vec<f64>,
    /// Each epoch's time / the mean of the raw runs just before and just after it: the cost of
    /// everything around the training steps (data, batcher, metrics, validation, checkpoints).
    pub ratios: Vec<f64>,
    /// The median of `ratios`.
    pub ratio_to_raw: f64,
    /// The median epoch's training images per second.
    pub train_images_per_second: f64,
    /// The median epoch time / (its training images / the median raw speed of `lenet bench
    /// --train`'s short windows at this batch size), where those were measured: the earlier
    /// form of the ratio, against the best stretches of a noisy machine rather than runs as
    /// long as the epoch beside it.
    pub ratio_to_windows: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Trains [`EPOCH_REPEATS`] single epochs of `config` on the real data (each into a temporary
/// run directory, removed after), each between two raw runs of as many training steps on random
/// data: the machine's speed drifts over seconds, so the raw time is measured as long as the
/// epoch and on both sides of it, and the median of the epochs' ratios is reported.
pub fn epoch(
    config: &RunConfig,
    plan: &Plan,
    device: &Selected,
    data: DataOptions,
    raw: &[Measurement],
) -> Result<EpochMeasurement, TrainError> {
    let mut config = config.clone();
    config.training.epochs = 1;
    let bs = config.training.batch_size.max(1);
    let first = device
        .devices
        .first()
        .ok_or_else(|| TrainError::Setting("no device to train on".into()))?;
    let mut raw_steps =
        RawSteps::new(&config, plan, first, bs).map_err(|e| TrainError::Setting(e.to_string()))?;
    // As many steps as an epoch has: its training images at this batch size.
    let file = data::load_file(&config, lenet_data::Split::Train, &data)?;
    let subset = data::Subset::Train;
    let limit = data::limit_of(&config, subset);
    let expected = data::indices(subset, file.data.len(), &config, limit)
        .map_err(|e| TrainError::Setting(e.to_string()))?
        .len();
    let steps = expected.div_ceil(bs);
    let mut raw_seconds = vec![raw_steps.run(steps)];
    let (mut epoch_seconds, mut rates) = (Vec::new(), Vec::new());
    let (mut train_images, mut valid_images) = (0, 0);
    for _ in 0..EPOCH_REPEATS {
        let dir = tempfile::tempdir()
            .map_err(|e| TrainError::Setting(format!("temporary run directory: {e}")))?;
        let opts = TrainOptions {
            run_dir: dir.path().join("run"),
            data: data.clone(),
            display: DisplayMode::Quiet,
            resume: false,
            interrupter: None,
        };
        let summary = train(&config, device, &opts)?;
        let rows = crate::run::RunDir::open(&opts.run_dir)?.read_metrics()?;
        epoch_seconds.push(rows.iter().filter_map(|r| r.get("seconds")).sum::<f64>());
        rates.push(summary.images_per_second);
        let images = |split: crate::data::Subset| {
            rows.iter()
                .filter(|r| r.split == split)
                .filter_map(|r| Some(r.get("images_per_second")? * r.get("seconds")?))
                .sum::<f64>()
                .round() as usize
        };
        train_images = images(crate::data::Subset::Train);
        valid_images = images(crate::data::Subset::Valid);
        raw_seconds.push(raw_steps.run(steps));
    }
    let ratios: Vec<f64> = epoch_seconds
        .iter()
        .zip(raw_seconds.windows(2))
        .map(|(e, r)| e / ((r[0] + r[1]) / 2.0))
        .collect();
    let seconds = median(epoch_seconds.clone());
    Ok(EpochMeasurement {
        batch_size: bs,
        train_images,
        valid_images,
        epoch_seconds,
        raw_seconds,
        ratio_to_raw: median(ratios.clone()),
        ratios,
        train_images_per_second: median(rates),
        ratio_to_windows: raw
            .iter()
            .find(|m| m.what == "train" && m.batch_size == bs)
            .map(|m| seconds / (train_images as f64 / m.images_per_second)),
    })
}
