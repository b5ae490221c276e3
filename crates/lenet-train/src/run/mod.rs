//! The run directory: everything a training run keeps, written atomically (`lenet_io`):
//!
//! ```text
//! runs/<name>/
//!   config.toml       the resolved config (preset expanded, overrides applied, seed recorded)
//!   checkpoint/       Burn's model-N.bpk, optim-N.bpk, scheduler-N.bpk per kept epoch
//!   model.bpk         the kept weights (best or last), Burn's burnpack format
//!   metrics.csv       one row per epoch and split
//!   curves.png/.svg   the metrics as curves
//!   summary.json      what the run achieved
//!   train/, valid/    Burn's per-batch metric logs
//! ```
//!
//! [`RunDir`] writes and reads these files; [`metrics`] is `metrics.csv`, [`summary`] is
//! `summary.json`, and [`trained`] loads a trained model back from a run.

pub mod metrics;
pub mod summary;
pub mod trained;

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::Module;
use lenet_model::ConvNet;

use crate::config::{ConfigError, RunConfig};
use crate::data::Subset;
use metrics::MetricRow;
use summary::TrainSummary;

/// Errors about a run directory and the files in it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] lenet_io::WriteError),
    /// The directory already holds a run.
    #[error("{} already holds a run; continue it with --resume, or choose another --run-dir", .0.display())]
    Exists(PathBuf),
    /// `--resume` on a directory without checkpoints.
    #[error("{} has no checkpoint to resume from", .0.display())]
    NothingToResume(PathBuf),
    /// `--resume` with a config that would change the run, not just extend it.
    #[error("{} cannot be resumed with a different {}: {}; only training.epochs, training.keep_checkpoints, training.final_model and backend.* may change (start a new run for the rest)", path.display(), if changes.len() == 1 { "setting" } else { "settings" }, changes.iter().map(|(k, old, new)| format!("{k} {old} → {new}")).collect::<Vec<_>>().join(", "))]
    Changed {
        /// The run.
        path: PathBuf,
        /// `(key, old value, new value)` for each differing key.
        changes: Vec<(String, String, String)>,
    },
    /// No checkpoint of the run can be loaded.
    #[error("{} has no checkpoint that can be loaded ({}); start a new run", path.display(), problems.join("; "))]
    Unusable {
        /// The run.
        path: PathBuf,
        /// Each damaged checkpoint and why.
        problems: Vec<String>,
    },
    /// `--resume` of a run that has done all its epochs.
    #[error("{} already completed {done} of {epochs} epochs; raise training.epochs (e.g. --epochs {}) to train further", path.display(), done + 1)]
    Completed {
        /// The run.
        path: PathBuf,
        /// Epochs done.
        done: usize,
        /// Epochs asked for.
        epochs: usize,
    },
    /// The weights could not be encoded.
    #[error("cannot save {}: {message}", path.display())]
    Save {
        /// The file.
        path: PathBuf,
        /// Burn's message.
        message: String,
    },
    /// `metrics.csv` is not as written by lenet.
    #[error("{}: line {line}: {message}", path.display())]
    Metrics {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A trained model that cannot be loaded: no weights, no config, or weights that do not fit.
    #[error("{}: {message}", path.display())]
    Checkpoint {
        /// The path given.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The run's config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The run's model is invalid.
    #[error(transparent)]
    Model(#[from] lenet_model::ModelError),
    /// The device of the run (or `--backend`) cannot be used.
    #[error(transparent)]
    Backend(#[from] crate::device::BackendError),
}

impl RunError {
    /// Whether the user's paths, flags or files are at fault (exit code 2), rather than a
    /// failure while reading or writing.
    pub fn is_usage(&self) -> bool {
        match self {
            RunError::Read { .. } | RunError::Write(_) | RunError::Save { .. } => false,
            RunError::Metrics { .. } => false,
            RunError::Config(e) => e.is_usage(),
            _ => true,
        }
    }
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// The files lenet writes at the top of a run directory.
const FILES: [&str; 6] = [
    "config.toml",
    "model.bpk",
    "metrics.csv",
    "summary.json",
    "curves.png",
    "curves.svg",
];

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

/// Where a resumed run continues from.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeState {
    /// The epoch whose checkpoint it continues from (0: from the start, no epoch was kept).
    pub epoch: usize,
    /// The `metrics.csv` rows up to that epoch (later rows belong to an interrupted attempt).
    pub rows: Vec<MetricRow>,
    /// Newer checkpoints that could not be used, and why (said to the user).
    pub skipped: Vec<String>,
}

impl RunDir {
    /// The directory of a new run at `path`, checked but not created: fails if it already
    /// holds a run (kept weights or a complete checkpoint).
    pub fn for_new_run(path: &Path) -> Result<RunDir, RunError> {
        let dir = RunDir {
            path: path.to_path_buf(),
        };
        if dir.holds_run() {
            return Err(RunError::Exists(path.to_path_buf()));
        }
        Ok(dir)
    }

    /// Creates `path` for a new run ([`RunDir::for_new_run`], then [`RunDir::create_dirs`]).
    pub fn create(path: &Path) -> Result<RunDir, RunError> {
        let dir = RunDir::for_new_run(path)?;
        dir.create_dirs()?;
        Ok(dir)
    }

    /// Creates the directory of a new run. A run directory that never completed an epoch (a run
    /// that failed or was stopped in its first epoch) is cleared and reused.
    pub fn create_dirs(&self) -> Result<(), RunError> {
        if self.config_path().is_file() {
            self.clear()?;
        }
        fs::create_dir_all(&self.path).map_err(|source| lenet_io::WriteError {
            path: self.path.clone(),
            source,
        })?;
        Ok(())
    }

    /// Whether the directory holds a run worth keeping: kept weights or a complete checkpoint.
    pub fn holds_run(&self) -> bool {
        self.model_path().exists() || self.last_checkpoint().is_some()
    }

    /// Removes what lenet and burn-train wrote into a run that never completed an epoch.
    fn clear(&self) -> Result<(), RunError> {
        // There is no model.bpk here (a run that has one is kept).
        let dirs = ["checkpoint", "train", "valid"];
        for (name, is_dir) in FILES
            .iter()
            .map(|f| (f, false))
            .chain(dirs.iter().map(|d| (d, true)))
        {
            let p = self.path.join(name);
            let result = if is_dir {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            if let Err(source) = result {
                if source.kind() != std::io::ErrorKind::NotFound {
                    return Err(lenet_io::WriteError { path: p, source }.into());
                }
            }
        }
        Ok(())
    }

    /// Removes the temporary files a killed run left (`lenet_io`'s `.<name>.<random>.tmp`
    /// beside the run's files, Burn's `<name>.<pid>-<n>.tmp` beside the checkpoints): they
    /// never hold a file that was complete.
    pub fn remove_stale_temporaries(&self) {
        for f in FILES {
            lenet_io::remove_stale_temporaries(&self.path.join(f));
        }
        let Ok(entries) = fs::read_dir(self.checkpoint_dir()) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// One sentence on the checkpoint a stopped run keeps, for messages.
    pub fn kept_checkpoint(&self) -> String {
        match self.last_checkpoint() {
            Some(e) => format!(
                "The checkpoint of epoch {e} is kept in {}.",
                self.checkpoint_dir().display()
            ),
            None => "No epoch was completed, so no checkpoint was written.".to_string(),
        }
    }

    /// Opens an existing run (one with a `config.toml`).
    pub fn open(path: &Path) -> Result<RunDir, RunError> {
        let dir = RunDir {
            path: path.to_path_buf(),
        };
        if !dir.config_path().is_file() {
            return Err(RunError::NothingToResume(path.to_path_buf()));
        }
        Ok(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.toml")
    }

    /// `model.bpk`: the kept weights.
    pub fn model_path(&self) -> PathBuf {
        self.path.join("model.bpk")
    }

    /// Where Burn's checkpointer writes.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.path.join("checkpoint")
    }

    /// The model checkpoint of `epoch`.
    pub fn checkpoint_model(&self, epoch: usize) -> PathBuf {
        self.checkpoint_dir().join(format!("model-{epoch}.bpk"))
    }

    /// The epochs with a complete checkpoint (model, optimizer and scheduler files), newest
    /// first.
    pub fn checkpoints(&self) -> Vec<usize> {
        let dir = self.checkpoint_dir();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut epochs: Vec<usize> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix("model-")?
                    .strip_suffix(".bpk")?
                    .parse::<usize>()
                    .ok()
            })
            .filter(|n| {
                ["optim", "scheduler"]
                    .iter()
                    .all(|k| dir.join(format!("{k}-{n}.bpk")).is_file())
            })
            .collect();
        epochs.sort_unstable_by(|a, b| b.cmp(a));
        epochs
    }

    /// The last epoch with a complete checkpoint.
    pub fn last_checkpoint(&self) -> Option<usize> {
        self.checkpoints().first().copied()
    }

    /// The checkpoints a resumed run may continue from, newest first: complete ones whose
    /// epochs are all in `metrics.csv` (a run killed between writing a checkpoint and its
    /// metrics continues from the epoch before), and the metrics rows so far.
    pub fn resume_candidates(&self) -> Result<(Vec<usize>, Vec<MetricRow>), RunError> {
        let rows = self.read_metrics()?;
        let recorded = |e: usize| {
            [Subset::Train, Subset::Valid]
                .iter()
                .all(|s| rows.iter().any(|r| r.epoch == e && r.split == *s))
        };
        let candidates = self
            .checkpoints()
            .into_iter()
            .filter(|&epoch| (1..=epoch).all(recorded))
            .collect();
        Ok((candidates, rows))
    }

    /// Reads `summary.json`, if the run has one that lenet can read.
    pub fn read_summary(&self) -> Option<TrainSummary> {
        let text = fs::read_to_string(self.path.join("summary.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The config a resumed run continues with: the run's own `config.toml`, with what may
    /// change without changing the run taken from `requested` (more epochs, checkpoints kept,
    /// which weights to keep, the backend). Any other difference (model, data, split, limits,
    /// seed, batching, optimizer, schedule) is refused, listing each key with its old and new
    /// value.
    pub fn resume_config(&self, requested: &RunConfig) -> Result<RunConfig, RunError> {
        let stored = self.read_config(&[])?;
        let flat = |c: &RunConfig| -> Result<Vec<(String, String)>, RunError> {
            let text = c.to_toml_string()?;
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| RunError::Save {
                path: self.config_path(),
                message: e.to_string(),
            })?;
            let mut out = Vec::new();
            flatten("", &toml::Value::Table(table), &mut out);
            Ok(out)
        };
        let (old, new) = (flat(&stored)?, flat(requested)?);
        let get = |list: &[(String, String)], key: &str| {
            list.iter()
                .find(|(k, _)| k == key)
                .map_or_else(|| "(unset)".to_string(), |(_, v)| v.clone())
        };
        let mut keys: Vec<&String> = old.iter().chain(&new).map(|(k, _)| k).collect();
        keys.sort();
        keys.dedup();
        let may_change = |k: &str| {
            [
                "training.epochs",
                "training.keep_checkpoints",
                "training.final_model",
            ]
            .contains(&k)
                || k.starts_with("backend.")
        };
        let changes: Vec<(String, String, String)> = keys
            .into_iter()
            .filter(|k| !may_change(k))
            .map(|k| (k.clone(), get(&old, k), get(&new, k)))
            .filter(|(_, a, b)| a != b)
            .collect();
        if !changes.is_empty() {
            return Err(RunError::Changed {
                path: self.path.clone(),
                changes,
            });
        }
        let mut merged = stored;
        merged.training.epochs = requested.training.epochs;
        merged.training.keep_checkpoints = requested.training.keep_checkpoints;
        merged.training.final_model = requested.training.final_model;
        merged.backend = requested.backend.clone();
        Ok(merged)
    }

    /// Writes `config.toml`.
    pub fn write_config(&self, config: &RunConfig) -> Result<(), RunError> {
        let text = config.to_toml_string()?;
        Ok(lenet_io::write_atomic(
            &self.config_path(),
            text.as_bytes(),
        )?)
    }

    /// Reads `config.toml` (with `overrides` applied).
    pub fn read_config(&self, overrides: &[String]) -> Result<RunConfig, RunError> {
        Ok(RunConfig::load(&self.config_path(), overrides)?)
    }

    /// Writes the kept weights as `model.bpk`.
    pub fn write_model(&self, net: ConvNet) -> Result<(), RunError> {
        let path = self.model_path();
        let bytes = net.into_record().into_bytes().map_err(|e| RunError::Save {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(lenet_io::write_atomic(&path, &bytes)?)
    }

    /// Writes `summary.json`.
    pub fn write_summary(&self, s: &TrainSummary) -> Result<(), RunError> {
        let path = self.path.join("summary.json");
        let text = serde_json::to_string_pretty(s).map_err(|e| RunError::Save {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(lenet_io::write_atomic(
            &path,
            format!("{text}\n").as_bytes(),
        )?)
    }

    /// Reads `metrics.csv` (empty if there is none yet).
    pub fn read_metrics(&self) -> Result<Vec<MetricRow>, RunError> {
        let path = self.path.join("metrics.csv");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(read_error(&path)(e)),
        };
        metrics::parse(&text).map_err(|(line, message)| RunError::Metrics {
            path,
            line,
            message,
        })
    }

    /// Writes `metrics.csv`: one row per epoch and split, a column per metric.
    pub fn write_metrics(&self, rows: &[MetricRow]) -> Result<(), RunError> {
        Ok(lenet_io::write_atomic(
            &self.path.join("metrics.csv"),
            metrics::format(rows).as_bytes(),
        )?)
    }
}

/// Every leaf of a TOML value as `(dotted key, value as TOML)`: tables by key, arrays of tables
/// by index (`model.features[1].kernel`), other arrays as one value.
fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Array(a) if a.iter().any(toml::Value::is_table) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        v => out.push((prefix.to_string(), v.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_directory_is_not_overwritten_and_resumes_from_complete_checkpoints() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let run = RunDir::create(&dir).unwrap();
        let config = RunConfig::parse("[model]\npreset = \"lenet5\"\n", "t.toml", &[]).unwrap();
        run.write_config(&config).unwrap();
        // A run that never completed an epoch is reused by a new run.
        assert!(!run.holds_run());
        fs::write(dir.join("metrics.csv"), "epoch,split\n").unwrap();
        let again = RunDir::create(&dir).unwrap();
        assert!(!again.config_path().exists() && !dir.join("metrics.csv").exists());
        run.write_config(&config).unwrap();
        let opened = RunDir::open(&dir).unwrap();
        assert_eq!(opened.read_config(&[]).unwrap(), config);
        assert_eq!(opened.last_checkpoint(), None);
        fs::create_dir_all(dir.join("checkpoint")).unwrap();
        for e in [1, 2] {
            for k in ["model", "optim", "scheduler"] {
                fs::write(dir.join(format!("checkpoint/{k}-{e}.bpk")), b"").unwrap();
            }
        }
        fs::write(dir.join("checkpoint/model-3.bpk"), b"").unwrap();
        fs::write(dir.join("checkpoint/model-3.bpk.77-0.tmp"), b"").unwrap();
        fs::write(dir.join(".metrics.csv.x1y2.tmp"), b"").unwrap();
        assert_eq!(run.checkpoints(), vec![2, 1]);
        assert_eq!(run.last_checkpoint(), Some(2));
        assert!(run.holds_run());
        assert!(matches!(RunDir::create(&dir), Err(RunError::Exists(_))));
        // Only epochs whose metrics were written can be continued from.
        let row = |epoch, split| MetricRow {
            epoch,
            split,
            values: Default::default(),
        };
        let rows = [
            row(1, Subset::Train),
            row(1, Subset::Valid),
            row(2, Subset::Train),
        ];
        run.write_metrics(&rows).unwrap();
        assert_eq!(run.resume_candidates().unwrap().0, vec![1]);
        run.remove_stale_temporaries();
        assert!(!dir.join("checkpoint/model-3.bpk.77-0.tmp").exists());
        assert!(!dir.join(".metrics.csv.x1y2.tmp").exists());
        assert!(dir.join("checkpoint/model-3.bpk").exists());
        assert!(matches!(
            RunDir::open(&tmp.path().join("nowhere")),
            Err(RunError::NothingToResume(_))
        ));
    }

    #[test]
    fn resuming_may_extend_a_run_but_not_change_it() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(&tmp.path().join("run")).unwrap();
        let parse = |extra: &[&str]| {
            let o: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            RunConfig::parse("[model]\npreset = \"lenet5\"\n", "t.toml", &o).unwrap()
        };
        let stored = parse(&["data.limit.train=100"]);
        run.write_config(&stored).unwrap();
        // More epochs and another backend: allowed, and taken.
        let merged = run
            .resume_config(&parse(&[
                "data.limit.train=100",
                "training.epochs=20",
                "backend.kind=ndarray",
            ]))
            .unwrap();
        assert_eq!(merged.training.epochs, 20);
        assert_eq!(merged.backend.kind, crate::config::BackendKind::Ndarray);
        // A different seed, split, limit or model: refused, each key named with old → new.
        let e = run
            .resume_config(&parse(&[
                "training.seed=7",
                "data.validation=0.2",
                "model.num_classes=10",
            ]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("training.seed 42 → 7"), "{e}");
        assert!(e.contains("data.validation 5000 → 0.2"), "{e}");
        assert!(e.contains("data.limit.train 100 → (unset)"), "{e}");
        assert!(
            !e.contains("num_classes"),
            "an unchanged key is not listed: {e}"
        );
        let e = run
            .resume_config(&parse(&["data.limit.train=100", "model.features=[]"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.features"), "{e}");
        // The stored config is not touched by a refused resume.
        assert_eq!(run.read_config(&[]).unwrap(), stored);
    }
}
