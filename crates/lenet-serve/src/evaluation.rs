//! A run's test-set evaluation for its page: the confusion matrix, per-class metrics and the
//! misclassified images, computed on demand (like `lenet eval`) and cached as JSON in the cache
//! directory the server names, one file per run, valid while the run's `model.bpk` is unchanged
//! (same size and modification time).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use lenet_train::data::{self, DataOptions, Subset};
use lenet_train::{evaluate, BackendKind, TrainedModel};
use serde_json::{json, Value};

use crate::error::ServeError;
use crate::predictor::image_url;

/// How many misclassified images a run's page shows.
pub const MISCLASSIFIED_SHOWN: usize = 48;

/// The evaluations of the served runs, and where they are cached.
#[derive(Debug)]
pub struct Evaluations {
    /// The cache directory (created when the first evaluation is written).
    cache: PathBuf,
    /// Where datasets are read from (never downloaded).
    data_root: PathBuf,
    /// The backend networks run on (the run's own if `None`).
    backend: Option<BackendKind>,
    /// One evaluation at a time: they are CPU-bound, and a second request for the same run
    /// finds the first one's result in the cache.
    busy: Mutex<()>,
}

/// The weights file's size and modification time, which a cached evaluation must match.
fn stamp(weights: &Path) -> Option<Value> {
    let meta = std::fs::metadata(weights).ok()?;
    let nanos = meta
        .modified()
        .ok()?
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(json!({ "bytes": meta.len(), "modified_ns": nanos.to_string() }))
}

impl Evaluations {
    /// Evaluations cached under `cache`, on the datasets under `data_root`.
    pub fn new(cache: PathBuf, data_root: PathBuf, backend: Option<BackendKind>) -> Evaluations {
        Evaluations {
            cache,
            data_root,
            backend,
            busy: Mutex::new(()),
        }
    }

    /// The cache directory.
    pub fn cache(&self) -> &Path {
        &self.cache
    }

    fn cache_file(&self, id: &str) -> PathBuf {
        self.cache.join(id).join("evaluation-test.json")
    }

    /// The cached evaluation of run `id`, if it was made with the current weights.
    fn cached(&self, id: &str, weights_stamp: &Value) -> Option<Value> {
        let text = std::fs::read_to_string(self.cache_file(id)).ok()?;
        let mut cached: Value = serde_json::from_str(&text).ok()?;
        if cached.get("weights") != Some(weights_stamp) {
            return None;
        }
        cached["cached"] = json!(true);
        Some(cached)
    }

    /// The test-set evaluation of run `id` (in `dir`), from the cache or computed now (blocking:
    /// call it off the async threads).
    pub fn get(&self, id: &str, dir: &Path) -> Result<Value, ServeError> {
        let weights = dir.join("model.bpk");
        let conflict = |why: String| ServeError::Conflict(format!("run {id:?}: {why}"));
        let before =
            stamp(&weights).ok_or_else(|| conflict("no weights (model.bpk) yet".into()))?;
        if let Some(v) = self.cached(id, &before) {
            return Ok(v);
        }
        let _one_at_a_time = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = self.cached(id, &before) {
            return Ok(v);
        }
        let start = Instant::now();
        let mut value = self.compute(id, dir)?;
        // Weights rewritten while evaluating (a run still training): answer, but do not cache
        // an evaluation that may mix the two.
        if stamp(&weights).as_ref() != Some(&before) {
            value["cached"] = json!(false);
            return Ok(value);
        }
        value["weights"] = before;
        value["seconds"] = json!(start.elapsed().as_secs_f64());
        let file = self.cache_file(id);
        let written = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                lenet_io::write_atomic(&file, value.to_string().as_bytes())
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            // A read-only cache costs time, not the answer.
            eprintln!("lenet serve: cannot cache {}: {e}", file.display());
        }
        value["cached"] = json!(false);
        Ok(value)
    }

    fn compute(&self, id: &str, dir: &Path) -> Result<Value, ServeError> {
        let conflict = |why: String| ServeError::Conflict(format!("run {id:?}: {why}"));
        let model = TrainedModel::load(dir, self.backend).map_err(|e| conflict(e.to_string()))?;
        let opts = DataOptions {
            root: self.data_root.clone(),
            offline: true,
            report_downloads: false,
        };
        let source = data::load_file(&model.config, Subset::Test.file(), &opts).map_err(|e| {
            conflict(format!(
                "cannot evaluate: {e} (start lenet serve with --data-dir DIR, or set LENET_DATA_DIR)"
            ))
        })?;
        let batcher = source
            .batcher(&model.plan, None)
            .map_err(|e| conflict(e.to_string()))?;
        // The run's own test images: its `[data.limit] test`, like its summary.
        let limit = data::limit_of(&model.config, Subset::Test);
        let indices = data::indices(Subset::Test, source.data.len(), &model.config, limit)
            .map_err(|e| conflict(e.to_string()))?;
        let report = evaluate(&model.net, &batcher, &indices, &model.device, 500)
            .map_err(|e| ServeError::Internal(e.to_string()))?;
        let images = &source.data.images;
        let wrong: Vec<_> = report
            .predictions
            .iter()
            .filter(|p| p.predicted != p.label)
            .collect();
        let shown = wrong
            .iter()
            .take(MISCLASSIFIED_SHOWN)
            .map(|p| {
                let picture = image::GrayImage::from_raw(
                    images.cols as u32,
                    images.rows as u32,
                    images.image(p.index).to_vec(),
                )
                .ok_or_else(|| ServeError::Internal("image size".into()))?;
                Ok(json!({
                    "index": p.index,
                    "label": p.label,
                    "predicted": p.predicted,
                    "probability": p.probability,
                    "png": image_url(&picture)?,
                }))
            })
            .collect::<Result<Vec<_>, ServeError>>()?;
        Ok(json!({
            "run": id,
            "split": "test",
            "dataset": source.data.name,
            "class_names": source.data.class_names,
            "accuracy": report.accuracy,
            "correct": report.correct,
            "num_samples": report.num_samples,
            "loss": report.loss,
            "per_class": report.per_class,
            "confusion_matrix": report.confusion_matrix,
            "misclassified_total": wrong.len(),
            "misclassified": shown,
        }))
    }
}
