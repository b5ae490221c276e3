//! # lenet-sweep
//!
//! Many runs of one network: a sweep file (a base run config and the keys to vary, on a grid or
//! drawn at random, times seeds) is expanded into independent trials ([`spec`]), planned into a
//! directory ([`plan`]), run one trial at a time wherever a process can start ([`trial`]: on this
//! machine, or as a task of a SLURM job array or a Kubernetes Indexed Job, [`scheduler`]), and
//! gathered into a report ([`report`]).
//!
//! lenet schedules nothing itself: a trial is one `lenet sweep run DIR --trial I`, resumable, and
//! whatever runs it (a local pool, `sbatch`, Kubernetes) only has to start it again if it stops.

pub mod plan;
pub mod report;
pub mod scheduler;
pub mod spec;
pub mod trial;

pub use plan::{Attempt, Plan, PlanError, Status, SweepDir};
pub use report::{gather, Report};
pub use spec::{Axis, Draw, SpecError, Sweep, Trial};
