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

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

/// Where a resumed run continues from.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeState {
    /// The last epoch with a complete checkpoint.
    pub epoch: usize,
    /// The `metrics.csv` rows up to that epoch (later rows belong to an interrupted attempt).
    pub rows: Vec<MetricRow>,
}

impl RunDir {
    /// Creates `path` for a new run; fails if it already holds one.
    pub fn create(path: &Path) -> Result<RunDir, RunError> {
        let dir = RunDir {
            path: path.to_path_buf(),
        };
        if dir.config_path().exists() || dir.checkpoint_dir().exists() {
            return Err(RunError::Exists(path.to_path_buf()));
        }
        fs::create_dir_all(path).map_err(|source| lenet_io::WriteError {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(dir)
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

    /// The last epoch with a complete checkpoint (model, optimizer and scheduler).
    pub fn last_checkpoint(&self) -> Option<usize> {
        let dir = self.checkpoint_dir();
        fs::read_dir(&dir)
            .ok()?
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
                    .all(|k| dir.join(format!("{k}-{n}.bpk")).exists())
            })
            .max()
    }

    /// Where a resumed run of `epochs` epochs continues from: an error if there is no
    /// checkpoint or nothing left to do.
    pub fn resume_state(&self, epochs: usize) -> Result<ResumeState, RunError> {
        let epoch = self
            .last_checkpoint()
            .ok_or_else(|| RunError::NothingToResume(self.path.clone()))?;
        if epoch >= epochs {
            return Err(RunError::Completed {
                path: self.path.clone(),
                done: epoch,
                epochs,
            });
        }
        let mut rows = self.read_metrics()?;
        rows.retain(|r| r.epoch <= epoch);
        Ok(ResumeState { epoch, rows })
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
        assert!(matches!(RunDir::create(&dir), Err(RunError::Exists(_))));
        let opened = RunDir::open(&dir).unwrap();
        assert_eq!(opened.read_config(&[]).unwrap(), config);
        assert_eq!(opened.last_checkpoint(), None);
        assert!(matches!(
            opened.resume_state(3),
            Err(RunError::NothingToResume(_))
        ));
        fs::create_dir_all(dir.join("checkpoint")).unwrap();
        for k in ["model", "optim", "scheduler"] {
            fs::write(dir.join(format!("checkpoint/{k}-2.bpk")), b"").unwrap();
        }
        fs::write(dir.join("checkpoint/model-3.bpk"), b"").unwrap();
        assert_eq!(run.last_checkpoint(), Some(2));
        assert_eq!(run.resume_state(3).unwrap().epoch, 2);
        let e = run.resume_state(2).unwrap_err().to_string();
        assert!(
            e.contains("already completed 2 of 2 epochs") && e.contains("--epochs 3"),
            "{e}"
        );
        assert!(matches!(
            RunDir::open(&tmp.path().join("nowhere")),
            Err(RunError::NothingToResume(_))
        ));
    }
}
