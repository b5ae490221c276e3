//! A planned sweep on disk:
//!
//! ```text
//! DIR/sweep.toml                 the sweep file, as planned
//! DIR/plan.json                  the trials: index, id, swept values, seed
//! DIR/trials.csv                 the same as a table
//! DIR/trials/<id>/config.toml    each trial's complete run config
//! DIR/trials/<id>/run/           its run directory (made by `lenet sweep run`)
//! DIR/trials/<id>/trial.json     how its last attempt ended
//! DIR/trials/<id>/train.log      its output, when run by `lenet sweep run --jobs`
//! ```

use std::path::{Path, PathBuf};

use lenet_train::run::summary::Kept;
use lenet_train::{RunDir, TrainSummary};
use serde::{Deserialize, Serialize};

use crate::spec::{Sweep, Trial};

/// Why a plan cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The sweep file is invalid.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// A file cannot be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The directory holds another sweep's plan.
    #[error("{path} holds another sweep's plan (its trials differ); plan into a new directory")]
    Different {
        /// The directory.
        path: PathBuf,
    },
    /// No plan in the directory.
    #[error("{path}: no sweep planned here (plan.json is missing); run `lenet sweep plan SWEEP --out {path}` first")]
    NotPlanned {
        /// The directory.
        path: PathBuf,
    },
    /// No such trial.
    #[error("trial {index}: the sweep in {path} has {count} trials (0 to {last})", last = count.saturating_sub(1))]
    NoTrial {
        /// The directory.
        path: PathBuf,
        /// The index asked for.
        index: usize,
        /// How many there are.
        count: usize,
    },
}

impl PlanError {
    /// Whether the user's input is at fault (exit code 2).
    pub fn is_usage(&self) -> bool {
        !matches!(self, PlanError::Io { .. })
    }
}

fn io(path: &Path, e: impl std::fmt::Display) -> PlanError {
    PlanError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// `plan.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The sweep's name.
    pub name: String,
    /// The swept keys, in order.
    pub keys: Vec<String>,
    /// Keys drawn on a log scale in the report.
    pub log_keys: Vec<String>,
    /// Seeds per point.
    pub seeds: usize,
    /// The trials.
    pub trials: Vec<Trial>,
}

/// A planned sweep directory.
#[derive(Debug, Clone)]
pub struct SweepDir {
    root: PathBuf,
    /// Its plan.
    pub plan: Plan,
}

/// Where a trial stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not started.
    Pending,
    /// Started, not finished: interrupted, killed, or running now.
    Started,
    /// Its last attempt failed.
    Failed,
    /// Trained and evaluated.
    Finished,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pending => "pending",
            Status::Started => "started",
            Status::Failed => "failed",
            Status::Finished => "finished",
        })
    }
}

/// `trial.json`: how a trial's last attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// `finished`, `failed` or `started`.
    pub status: Status,
    /// The error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall time of the attempt, seconds.
    pub seconds: f64,
    /// The machine it ran on.
    pub host: String,
    /// Whether it continued an earlier attempt.
    pub resumed: bool,
}

impl SweepDir {
    /// Expands `sweep` into `dir` (created): every trial's config is checked before anything is
    /// written. Planning the same sweep into the same directory again changes nothing; a
    /// different one is refused.
    pub fn plan(sweep: &Sweep, sweep_text: &str, dir: &Path) -> Result<SweepDir, PlanError> {
        let trials = sweep.trials()?;
        let plan = Plan {
            name: sweep.name.clone(),
            keys: sweep.keys(),
            log_keys: sweep
                .axes
                .iter()
                .filter(|a| a.log_scale())
                .map(|a| a.key().to_string())
                .collect(),
            seeds: sweep.seeds,
            trials: trials.iter().map(|(t, _, _)| t.clone()).collect(),
        };
        if let Ok(existing) = SweepDir::open(dir) {
            if existing.plan.trials != plan.trials {
                return Err(PlanError::Different {
                    path: dir.to_path_buf(),
                });
            }
        }
        let write = |path: &Path, text: &str| -> Result<(), PlanError> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            lenet_io::write_atomic(path, text.as_bytes()).map_err(|e| io(path, e))
        };
        for (trial, _, text) in &trials {
            let header = format!(
                "# Trial {} of sweep {:?}{}\n",
                trial.id,
                sweep.name,
                trial
                    .values
                    .iter()
                    .map(|(k, v)| format!(", {k} = {v}"))
                    .collect::<String>()
            );
            write(
                &dir.join("trials").join(&trial.id).join("config.toml"),
                &format!("{header}{text}"),
            )?;
        }
        write(&dir.join("sweep.toml"), sweep_text)?;
        write(&dir.join("trials.csv"), &trials_csv(&plan))?;
        let json = serde_json::to_string_pretty(&plan).map_err(|e| io(dir, e))?;
        // plan.json last: a directory with it is completely planned.
        write(&dir.join("plan.json"), &format!("{json}\n"))?;
        Ok(SweepDir {
            root: dir.to_path_buf(),
            plan,
        })
    }

    /// A planned sweep directory.
    pub fn open(dir: &Path) -> Result<SweepDir, PlanError> {
        let file = dir.join("plan.json");
        let text = std::fs::read_to_string(&file).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => PlanError::NotPlanned {
                path: dir.to_path_buf(),
            },
            _ => io(&file, e),
        })?;
        let plan: Plan = serde_json::from_str(&text).map_err(|e| io(&file, e))?;
        Ok(SweepDir {
            root: dir.to_path_buf(),
            plan,
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Trial `index`.
    pub fn trial(&self, index: usize) -> Result<&Trial, PlanError> {
        self.plan.trials.get(index).ok_or(PlanError::NoTrial {
            path: self.root.clone(),
            index,
            count: self.plan.trials.len(),
        })
    }

    /// A trial's directory.
    pub fn trial_dir(&self, trial: &Trial) -> PathBuf {
        self.root.join("trials").join(&trial.id)
    }

    /// A trial's run directory.
    pub fn run_dir(&self, trial: &Trial) -> PathBuf {
        self.trial_dir(trial).join("run")
    }

    /// A trial's summary, when it finished.
    pub fn summary(&self, trial: &Trial) -> Option<TrainSummary> {
        let run = RunDir::open(&self.run_dir(trial)).ok()?;
        run.read_summary()
            .filter(|s| s.final_model != Kept::Interrupted)
    }

    /// How a trial's last attempt ended, if it was recorded.
    pub fn attempt(&self, trial: &Trial) -> Option<Attempt> {
        let text = std::fs::read_to_string(self.trial_dir(trial).join("trial.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Records how a trial's attempt ended.
    pub fn record(&self, trial: &Trial, attempt: &Attempt) -> Result<(), PlanError> {
        let path = self.trial_dir(trial).join("trial.json");
        let json = serde_json::to_string_pretty(attempt).map_err(|e| io(&path, e))?;
        lenet_io::write_atomic(&path, format!("{json}\n").as_bytes()).map_err(|e| io(&path, e))
    }

    /// Where a trial stands.
    pub fn status(&self, trial: &Trial) -> Status {
        if self.summary(trial).is_some() {
            return Status::Finished;
        }
        match self.attempt(trial).map(|a| a.status) {
            Some(Status::Failed) => Status::Failed,
            _ if self.run_dir(trial).join("config.toml").is_file() => Status::Started,
            Some(Status::Started) => Status::Started,
            _ => Status::Pending,
        }
    }
}

/// CSV field quoting (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn trials_csv(plan: &Plan) -> String {
    let mut out = String::from("trial,id");
    for k in &plan.keys {
        out.push(',');
        out.push_str(&csv_field(k));
    }
    out.push_str(",seed\n");
    for t in &plan.trials {
        out.push_str(&format!("{},{}", t.index, t.id));
        for (_, v) in &t.values {
            out.push(',');
            out.push_str(&csv_field(v));
        }
        out.push_str(&format!(",{}\n", t.seed));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planning_writes_every_trial_once_and_refuses_another_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let text =
            "[set]\nmodel.preset = \"lenet5\"\n[grid]\n\"training.batch_size\" = [32, 64, 128]\n";
        let sweep = Sweep::parse(text, Path::new("s.toml")).unwrap();
        let planned = SweepDir::plan(&sweep, text, dir.path()).unwrap();
        assert_eq!(planned.plan.trials.len(), 3);
        let config = std::fs::read_to_string(dir.path().join("trials/t002/config.toml")).unwrap();
        assert!(config.contains("batch_size = 128"), "{config}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("trials.csv")).unwrap(),
            "trial,id,training.batch_size,seed\n0,t000,32,42\n1,t001,64,42\n2,t002,128,42\n"
        );
        let opened = SweepDir::open(dir.path()).unwrap();
        assert_eq!(opened.plan, planned.plan);
        assert_eq!(opened.status(&opened.plan.trials[0]), Status::Pending);
        // The same plan again: fine. Another: refused, nothing changed.
        SweepDir::plan(&sweep, text, dir.path()).unwrap();
        let other = text.replace("128", "256");
        let sweep2 = Sweep::parse(&other, Path::new("s.toml")).unwrap();
        let err = SweepDir::plan(&sweep2, &other, dir.path()).unwrap_err();
        assert!(err.to_string().contains("another sweep"), "{err}");
        assert!(
            std::fs::read_to_string(dir.path().join("trials/t002/config.toml"))
                .unwrap()
                .contains("128")
        );
        let err = opened.trial(3).unwrap_err().to_string();
        assert!(err.contains("has 3 trials (0 to 2)"), "{err}");
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("[1, 2]"), "\"[1, 2]\"");
        assert_eq!(csv_field("\"x\""), "\"\"\"x\"\"\"");
    }
}
