//! Running one trial: `lenet train` on the trial's config into its run directory, resumed when an
//! earlier attempt left it unfinished, and `trial.json` saying how it ended.

use std::time::Instant;

use lenet_train::{DataOptions, DisplayMode, Interrupter, RunConfig, TrainError, TrainOptions};

use crate::plan::{Attempt, PlanError, Status, SweepDir};

/// How a trial ended.
#[derive(Debug)]
pub enum Outcome {
    /// It had finished before: nothing was done.
    AlreadyFinished,
    /// Trained (or resumed) to the end now.
    Finished(Box<lenet_train::TrainSummary>),
}

/// Why a trial did not finish.
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// The plan cannot be read or the trial does not exist.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The trial's config is invalid (the plan was edited by hand).
    #[error("trial {id}: {source}")]
    Config {
        /// The trial.
        id: String,
        /// Why.
        source: lenet_train::ConfigError,
    },
    /// The backend cannot be used.
    #[error("trial {id}: {message}")]
    Backend {
        /// The trial.
        id: String,
        /// Why.
        message: String,
    },
    /// Training failed or was interrupted.
    #[error("trial {id}: {source}")]
    Train {
        /// The trial.
        id: String,
        /// Why.
        source: TrainError,
    },
}

impl TrialError {
    /// Whether the user's input is at fault (exit code 2).
    pub fn is_usage(&self) -> bool {
        match self {
            TrialError::Plan(e) => e.is_usage(),
            TrialError::Config { .. } | TrialError::Backend { .. } => true,
            TrialError::Train { source, .. } => source.is_usage(),
        }
    }

    /// Whether training was interrupted (the trial resumes on the next run).
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            TrialError::Train {
                source: TrainError::Interrupted(_),
                ..
            }
        )
    }
}

/// This machine's name, for `trial.json`.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

/// Runs trial `index` of the sweep in `dir`: trains it (resuming an unfinished attempt), then
/// records the attempt. A finished trial is left alone.
pub fn run_trial(
    dir: &SweepDir,
    index: usize,
    data: DataOptions,
    display: DisplayMode,
    interrupter: Option<Interrupter>,
) -> Result<Outcome, TrialError> {
    let trial = dir.trial(index)?.clone();
    if dir.status(&trial) == Status::Finished {
        return Ok(Outcome::AlreadyFinished);
    }
    let id = trial.id.clone();
    let config =
        RunConfig::load(&dir.trial_dir(&trial).join("config.toml"), &[]).map_err(|source| {
            TrialError::Config {
                id: id.clone(),
                source,
            }
        })?;
    let device = lenet_train::select(&config.backend).map_err(|e| TrialError::Backend {
        id: id.clone(),
        message: e.to_string(),
    })?;
    let run_dir = dir.run_dir(&trial);
    let resumed = run_dir.join("config.toml").is_file();
    let started = Instant::now();
    let attempt = |status: Status, error: Option<String>| Attempt {
        status,
        error,
        seconds: started.elapsed().as_secs_f64(),
        host: host(),
        resumed,
    };
    dir.record(&trial, &attempt(Status::Started, None))?;
    let opts = TrainOptions {
        run_dir,
        data,
        display,
        resume: resumed,
        interrupter,
    };
    match lenet_train::train(&config, &device, &opts) {
        Ok(summary) => {
            dir.record(&trial, &attempt(Status::Finished, None))?;
            Ok(Outcome::Finished(Box::new(summary)))
        }
        Err(source) => {
            let status = match source {
                TrainError::Interrupted(_) => Status::Started,
                _ => Status::Failed,
            };
            dir.record(&trial, &attempt(status, Some(source.to_string())))?;
            Err(TrialError::Train { id, source })
        }
    }
}
