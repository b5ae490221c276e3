//! Prediction on one worker thread that owns the networks: requests queue on a channel, and the
//! worker takes what arrives within a short window (2 ms by default) as one batch per run, one
//! forward pass per batch. The HTTP handlers only wait for their answer, so the async threads
//! never run the network.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use burn::tensor::activation::softmax;
use lenet_model::FeatureMap;
use lenet_train::{pictures, BackendKind, TrainedModel};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::error::ServeError;

/// How requests are gathered into batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// How long the worker waits for more requests after the first (zero: no batching).
    pub window: Duration,
    /// The largest batch.
    pub max_batch: usize,
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            window: Duration::from_millis(2),
            max_batch: 256,
        }
    }
}

/// One class and its probability.
#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    /// The class index.
    pub class: usize,
    /// Its name.
    pub name: String,
    /// Its probability (softmax of the network's output).
    pub probability: f32,
}

/// A feature map picture of one layer stage.
#[derive(Debug, Clone, Serialize)]
pub struct Picture {
    /// The stage (`features.0.conv`, `features.0.pool`, …).
    pub layer: String,
    /// A `data:image/png;base64,…` URL.
    pub png: String,
}

/// What the network says about one picture.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The run whose weights answered.
    pub run: String,
    /// The classes, most probable first (`top` of them).
    pub top: Vec<Ranked>,
    /// The input the network saw (normalised, framed), when asked for with the feature maps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Every layer's feature maps, when asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<Picture>,
    /// How many pictures the forward pass that answered held.
    pub batch: usize,
}

/// One request.
struct Job {
    run: String,
    dir: PathBuf,
    picture: Vec<u8>,
    top: usize,
    features: bool,
    reply: oneshot::Sender<Result<Prediction, ServeError>>,
}

/// The handle the HTTP handlers use.
#[derive(Clone)]
pub struct Predictor {
    tx: Sender<Job>,
}

impl Predictor {
    /// Starts the worker thread, running networks on `backend` (the run's own if `None`).
    pub fn start(backend: Option<BackendKind>, batching: Batching) -> Predictor {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("lenet-serve-predict".into())
            .spawn(move || worker(rx, backend, batching))
            .map(|_| ())
            .unwrap_or_else(|e| eprintln!("cannot start the prediction thread: {e}"));
        Predictor { tx }
    }

    /// Classifies a 28×28 MNIST-style picture with the run `run` (in `dir`).
    pub async fn predict(
        &self,
        run: String,
        dir: PathBuf,
        picture: Vec<u8>,
        top: usize,
        features: bool,
    ) -> Result<Prediction, ServeError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            run,
            dir,
            picture,
            top,
            features,
            reply,
        };
        self.tx
            .send(job)
            .map_err(|_| ServeError::Internal("the prediction thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| ServeError::Internal("the prediction thread dropped a request".into()))?
    }
}

/// A loaded network and the weights file's modification time it was loaded at.
struct Loaded {
    model: TrainedModel,
    modified: Option<SystemTime>,
}

fn worker(rx: Receiver<Job>, backend: Option<BackendKind>, batching: Batching) {
    let mut models: HashMap<String, Loaded> = HashMap::new();
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let deadline = Instant::now() + batching.window;
        while jobs.len() < batching.max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(left) {
                Ok(job) => jobs.push(job),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // One forward pass per run.
        let mut by_run: HashMap<String, Vec<Job>> = HashMap::new();
        for job in jobs {
            by_run.entry(job.run.clone()).or_default().push(job);
        }
        for (run, jobs) in by_run {
            let model = match load(&mut models, &run, &jobs[0].dir, backend) {
                Ok(m) => m,
                Err(e) => {
                    for job in jobs {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                    continue;
                }
            };
            answer(model, &run, jobs);
        }
    }
}

/// The run's network, loaded once and again when its weights file changes.
fn load<'a>(
    models: &'a mut HashMap<String, Loaded>,
    run: &str,
    dir: &std::path::Path,
    backend: Option<BackendKind>,
) -> Result<&'a TrainedModel, ServeError> {
    let weights = dir.join("model.bpk");
    let modified = std::fs::metadata(&weights).and_then(|m| m.modified()).ok();
    let fresh = models
        .get(run)
        .is_some_and(|l| l.modified == modified && modified.is_some());
    if !fresh {
        let model = TrainedModel::load(dir, backend)
            .map_err(|e| ServeError::Conflict(format!("run {run:?} cannot predict (yet): {e}")))?;
        models.insert(run.to_string(), Loaded { model, modified });
    }
    models
        .get(run)
        .map(|l| &l.model)
        .ok_or_else(|| ServeError::Internal("model cache".into()))
}

fn answer(model: &TrainedModel, run: &str, jobs: Vec<Job>) {
    let pictures: Vec<Vec<u8>> = jobs.iter().map(|j| j.picture.clone()).collect();
    let result = model
        .picture_batch(&pictures)
        .map_err(|e| ServeError::Conflict(e.to_string()))
        .and_then(|batch| {
            let probs = softmax(model.net.forward_2d(batch.images.clone()), 1)
                .to_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| ServeError::Internal(format!("{e:?}")))?;
            Ok((batch, probs))
        });
    let (batch, probs) = match result {
        Ok(r) => r,
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
            return;
        }
    };
    let names = &model.classes.names;
    let k = names.len().max(1);
    let n = jobs.len();
    for (i, job) in jobs.into_iter().enumerate() {
        let row = &probs[i * k..(i + 1) * k];
        let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top = ranked
            .iter()
            .take(job.top.clamp(1, k))
            .map(|&(class, probability)| Ranked {
                class,
                name: names.get(class).cloned().unwrap_or_default(),
                probability,
            })
            .collect();
        let (input, features) = if job.features {
            let one = batch.images.clone().narrow(0, i, 1);
            match feature_pictures(model, one) {
                Ok(r) => r,
                Err(e) => {
                    let _ = job.reply.send(Err(e));
                    continue;
                }
            }
        } else {
            (None, Vec::new())
        };
        let _ = job.reply.send(Ok(Prediction {
            run: run.to_string(),
            top,
            input,
            features,
            batch: n,
        }));
    }
}

/// The input and every stage's feature maps of one image, as PNG data URLs.
fn feature_pictures(
    model: &TrainedModel,
    image: burn::tensor::Tensor<4>,
) -> Result<(Option<String>, Vec<Picture>), ServeError> {
    let internal = |e: String| ServeError::Internal(e);
    let input = FeatureMap::D2(image);
    let input_grid = pictures::input_grid(&input).map_err(|e| internal(e.to_string()))?;
    let input_png = png_url(&input_grid)?;
    let maps = pictures::feature_maps(&model.net, input).map_err(|e| internal(e.to_string()))?;
    let features = maps
        .iter()
        .map(|(layer, grid)| {
            Ok(Picture {
                layer: layer.clone(),
                png: png_url(grid)?,
            })
        })
        .collect::<Result<Vec<_>, ServeError>>()?;
    Ok((Some(input_png), features))
}

/// A grid as a `data:image/png;base64,…` URL.
pub fn png_url(grid: &lenet_viz::Grid) -> Result<String, ServeError> {
    let image = lenet_viz::grid_png(grid).map_err(|e| ServeError::Internal(e.to_string()))?;
    image_url(&image)
}

/// A picture as a `data:image/png;base64,…` URL.
pub fn image_url<P>(image: &image::ImageBuffer<P, Vec<P::Subpixel>>) -> Result<String, ServeError>
where
    P: image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
{
    let bytes = lenet_io::png_bytes(image).map_err(|e| ServeError::Internal(e.to_string()))?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}
