//! Which run directory a training session writes, and where it starts: a new run, or a resumed
//! one continuing from its newest checkpoint that loads. Everything here is checked before the
//! data is loaded, and nothing is written until [`Session::start`].

use burn::module::Module;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::optim::OptimizerRecord;
use burn::train::checkpoint::Checkpoint;
use lenet_model::Plan;

use crate::classifier::Classifier;
use crate::config::RunConfig;
use crate::device::Selected;
use crate::run::summary::Kept;
use crate::run::{ResumeState, RunDir, RunError};
use crate::train::TrainOptions;

/// The run directory of this session, and where a resumed run continues from.
pub struct Session {
    /// The run directory (not yet created for a new run).
    pub dir: RunDir,
    /// `None` for a new run.
    pub resume: Option<ResumeState>,
}

impl Session {
    /// Checks that the run directory can take this session: a new run must not overwrite a
    /// run; a resumed run must keep its config (only extending it, see
    /// [`RunDir::resume_config`]) and have a checkpoint that loads, else it starts from the first
    /// epoch when none was ever kept.
    pub fn check(
        config: &RunConfig,
        plan: &Plan,
        device: &Selected,
        opts: &TrainOptions,
    ) -> Result<Session, RunError> {
        if !opts.resume {
            return Ok(Session {
                dir: RunDir::for_new_run(&opts.run_dir)?,
                resume: None,
            });
        }
        let dir = RunDir::open(&opts.run_dir)?;
        dir.resume_config(config)?;
        let (candidates, rows) = dir.resume_candidates()?;
        let mut skipped = Vec::new();
        for epoch in candidates {
            match loads(&dir, epoch, plan, device) {
                Ok(()) => {
                    let epochs = config.training.epochs;
                    if epoch >= epochs
                        && dir
                            .read_summary()
                            .is_some_and(|s| s.final_model != Kept::Interrupted)
                    {
                        return Err(RunError::Completed {
                            path: dir.path().to_path_buf(),
                            done: epoch,
                            epochs,
                        });
                    }
                    let rows = rows.into_iter().filter(|r| r.epoch <= epoch).collect();
                    let resume = Some(ResumeState {
                        epoch,
                        rows,
                        skipped,
                    });
                    return Ok(Session { dir, resume });
                }
                Err(why) => skipped.push(format!("checkpoint of epoch {epoch}: {why}")),
            }
        }
        if !skipped.is_empty() {
            return Err(RunError::Unusable {
                path: dir.path().to_path_buf(),
                problems: skipped,
            });
        }
        // No epoch was ever kept: nothing is lost by starting over.
        let resume = Some(ResumeState {
            epoch: 0,
            rows: Vec::new(),
            skipped,
        });
        Ok(Session { dir, resume })
    }

    /// Epochs completed before this session.
    pub fn done_before(&self) -> usize {
        self.resume.as_ref().map_or(0, |r| r.epoch)
    }

    /// Whether every epoch was done before this session (a run killed after its last
    /// checkpoint): only keeping and evaluating the model are left.
    pub fn fitted_before(&self, config: &RunConfig) -> bool {
        self.done_before() >= config.training.epochs
    }

    /// Creates the run directory (clearing a run that never completed an epoch), removes the
    /// temporary files a killed run left, and writes `config.toml`.
    pub fn start(&self, config: &RunConfig) -> Result<(), RunError> {
        if self.resume.is_none() {
            self.dir.create_dirs()?;
        }
        self.dir.remove_stale_temporaries();
        self.dir.write_config(config)
    }
}

/// Whether the checkpoint of `epoch` loads: the network's weights into this network, the
/// optimizer's and the scheduler's state as records (burn-train panics on one that does not).
fn loads(dir: &RunDir, epoch: usize, plan: &Plan, device: &Selected) -> Result<(), String> {
    let model = dir.checkpoint_model(epoch);
    Classifier::new(plan.build(device.device()))
        .try_load_file(&model)
        .map_err(|e| format!("{}: {e}", model.display()))?;
    let file = |kind: &str| dir.checkpoint_dir().join(format!("{kind}-{epoch}.bpk"));
    <OptimizerRecord as Checkpoint>::load(file("optim"))
        .map_err(|e| format!("{}: {e}", file("optim").display()))?;
    <LrSchedulerRecord as Checkpoint>::load(file("scheduler"))
        .map_err(|e| format!("{}: {e}", file("scheduler").display()))?;
    Ok(())
}
