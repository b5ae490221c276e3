//! The runs a server shows: the run directories directly under `--runs` (and the `--checkpoint`
//! run), each by an id that is its directory name. An id is checked before it touches the file
//! system: one path component of letters, digits, `.`, `_` and `-`, not `.` or `..`, whose
//! directory (symlinks resolved) lies inside the runs directory.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use lenet_train::run::metrics::MetricRow;
use lenet_train::{RunConfig, RunDir, TrainSummary};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::ServeError;

/// Where runs are found.
#[derive(Debug, Clone)]
pub struct Runs {
    /// The runs directory (canonical).
    root: PathBuf,
    /// The run named by `--checkpoint`, by id, when it lies outside `root`.
    extra: Option<(String, PathBuf)>,
}

/// One run in the list.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// Its id (directory name).
    pub id: String,
    /// The model's name.
    pub model: String,
    /// The dataset.
    pub dataset: String,
    /// Trainable parameters.
    pub parameters: usize,
    /// Epochs with metrics so far.
    pub epochs: usize,
    /// Epochs asked for.
    pub epochs_planned: usize,
    /// Best validation accuracy so far.
    pub best_valid_accuracy: Option<f64>,
    /// Test accuracy (when training has finished).
    pub test_accuracy: Option<f64>,
    /// The backend it trained on.
    pub backend: String,
    /// Training time in seconds (when finished).
    pub seconds: Option<f64>,
    /// `finished`, `training` (metrics, no summary yet) or `empty`.
    pub status: &'static str,
    /// Whether it has weights to predict with.
    pub has_model: bool,
    /// Last change, seconds since the Unix epoch.
    pub modified: u64,
}

impl Runs {
    /// The runs under `root`, plus the run `checkpoint` (a run directory) if given.
    pub fn new(root: &Path, checkpoint: Option<&Path>) -> Result<Runs, ServeError> {
        let root = root
            .canonicalize()
            .map_err(|e| ServeError::Setup(format!("--runs {}: {e}", root.display())))?;
        let extra = match checkpoint {
            None => None,
            Some(c) => {
                let dir = c
                    .canonicalize()
                    .map_err(|e| ServeError::Setup(format!("--checkpoint {}: {e}", c.display())))?;
                if !dir.join("config.toml").is_file() || !dir.join("model.bpk").is_file() {
                    return Err(ServeError::Setup(format!(
                        "--checkpoint {}: not a run directory with config.toml and model.bpk",
                        c.display()
                    )));
                }
                let id = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .filter(|n| valid_id(n))
                    .unwrap_or_else(|| "checkpoint".into());
                (dir.parent() != Some(root.as_path())).then_some((id, dir))
            }
        };
        Ok(Runs { root, extra })
    }

    /// The runs directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of run `id`, or an error a client can be shown (404 or 400).
    pub fn dir(&self, id: &str) -> Result<PathBuf, ServeError> {
        if !valid_id(id) {
            return Err(ServeError::BadRequest(format!("invalid run id {id:?}")));
        }
        if let Some((extra, dir)) = &self.extra {
            if extra == id {
                return Ok(dir.clone());
            }
        }
        let dir = self.root.join(id);
        let real = dir
            .canonicalize()
            .map_err(|_| ServeError::NotFound(format!("no run {id:?}")))?;
        if !real.starts_with(&self.root) || !real.join("config.toml").is_file() {
            return Err(ServeError::NotFound(format!("no run {id:?}")));
        }
        Ok(real)
    }

    /// Every run, newest first.
    pub fn list(&self) -> Vec<RunInfo> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.root)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        if let Some((id, _)) = &self.extra {
            ids.push(id.clone());
        }
        let mut runs: Vec<RunInfo> = ids
            .iter()
            .filter_map(|id| self.dir(id).ok().and_then(|d| info(id, &d)))
            .collect();
        runs.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.id.cmp(&b.id)));
        runs
    }

    /// The run the API predicts with when none is named: the newest with weights.
    pub fn default_run(&self) -> Option<String> {
        if let Some((id, _)) = &self.extra {
            return Some(id.clone());
        }
        self.list().into_iter().find(|r| r.has_model).map(|r| r.id)
    }
}

/// One path component of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A run's summary for the list; `None` for a directory that is not (or no longer) a run.
pub fn info(id: &str, dir: &Path) -> Option<RunInfo> {
    let run = RunDir::open(dir).ok()?;
    let config = RunConfig::load(&run.config_path(), &[]).ok()?;
    let rows = run.read_metrics().unwrap_or_default();
    let summary: Option<TrainSummary> = run.read_summary();
    let best = lenet_train::run::metrics::best_epoch(&rows).map(|(_, a)| a);
    let epochs = rows.iter().map(|r| r.epoch).max().unwrap_or(0);
    let parameters = config.model.plan().map(|p| p.parameters()).unwrap_or(0);
    let newest = [
        dir.join("metrics.csv"),
        dir.join("summary.json"),
        dir.join("model.bpk"),
        dir.join("config.toml"),
    ]
    .iter()
    .filter_map(|p| modified(p))
    .max()
    .map(seconds)
    .unwrap_or(0);
    Some(RunInfo {
        id: id.to_string(),
        model: config.model.name.clone(),
        dataset: config.data.name().to_string(),
        parameters,
        epochs,
        epochs_planned: config.training.epochs,
        best_valid_accuracy: summary.as_ref().and_then(|s| s.valid_accuracy).or(best),
        test_accuracy: summary.as_ref().map(|s| s.test_accuracy),
        backend: summary
            .as_ref()
            .map(|s| s.backend.clone())
            .unwrap_or_else(|| config.backend.kind.to_string()),
        seconds: summary.as_ref().map(|s| s.train_seconds),
        status: match (&summary, rows.is_empty()) {
            (Some(_), _) => "finished",
            (None, false) => "training",
            (None, true) => "empty",
        },
        has_model: run.model_path().is_file(),
        modified: newest,
    })
}

/// The metrics rows as JSON: `[{epoch, split, values: {loss, accuracy, …}}]`.
pub fn metrics_json(rows: &[MetricRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| json!({"epoch": r.epoch, "split": r.split.name(), "values": r.values}))
            .collect(),
    )
}

/// Everything the run page shows about run `id`.
pub fn detail(id: &str, dir: &Path) -> Result<Value, ServeError> {
    let info = info(id, dir).ok_or_else(|| ServeError::NotFound(format!("no run {id:?}")))?;
    let run = RunDir::open(dir).map_err(|e| ServeError::NotFound(e.to_string()))?;
    let config = std::fs::read_to_string(run.config_path()).unwrap_or_default();
    let rows = run.read_metrics().unwrap_or_default();
    Ok(json!({
        "run": info,
        "summary": run.read_summary(),
        "config": config,
        "metrics": metrics_json(&rows),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_plain_path_component() {
        for ok in ["lenet5-20261201-050000", "a.b_c-1", "x"] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in [
            "", ".", "..", "../x", "a/b", "/etc", "a\\b", "%2e%2e", "a b", "é",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
