//! `lenet sweep`: plan a sweep into a directory, run its trials (here, N at a time, or one as a
//! scheduler's task), hand it to SLURM or Kubernetes, and report.
//!
//! Here, each trial runs as a child process (`lenet sweep run DIR --trial I`, in a process group
//! of its own, output in `trials/ID/train.log`) with the cores divided between them
//! (`RAYON_NUM_THREADS`); Ctrl-C stops every child at the end of its batch (its weights kept for
//! the next run to resume) and the pool with exit code 130.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use lenet_data::resolve_data_root;
use lenet_sweep::scheduler::{self, KubernetesOptions, SlurmOptions};
use lenet_sweep::trial::{run_trial, Outcome};
use lenet_sweep::{Status, Sweep, SweepDir};
use lenet_train::{DataOptions, DisplayMode};

use crate::UsageError;

/// Arguments of `lenet sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(subcommand)]
    command: SweepCommand,
}

#[derive(Subcommand, Debug)]
enum SweepCommand {
    /// Expand a sweep file into trials: DIR/trials/ID/config.toml and a table of trials.
    Plan(PlanArgs),
    /// Run the sweep's unfinished trials here, N at a time, or one trial (--trial).
    Run(RunArgs),
    /// Write a SLURM job array (sbatch script) whose task I runs trial I; --submit submits it.
    Slurm(SlurmArgs),
    /// Write a Kubernetes Indexed Job whose pod I runs trial I.
    K8s(K8sArgs),
    /// The trials' results: a table sorted by validation accuracy, means over seeds, pictures.
    Report(ReportArgs),
}

#[derive(Args, Debug)]
struct PlanArgs {
    /// The sweep file (TOML).
    sweep: PathBuf,
    /// The sweep directory to create.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The sweep directory (from `lenet sweep plan`).
    dir: PathBuf,
    /// Trials at once; the threads are divided between them.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Run only this trial, in this process (what a scheduler's task calls).
    #[arg(long, value_name = "I")]
    trial: Option<usize>,
    /// Threads in all (default: every core; with --trial: RAYON_NUM_THREADS, else every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Dataset root (default: $LENET_DATA_DIR, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Never download datasets.
    #[arg(long)]
    offline: bool,
}

#[derive(Args, Debug)]
struct SlurmArgs {
    /// The sweep directory.
    dir: PathBuf,
    /// The partition (`--partition`).
    #[arg(long)]
    partition: Option<String>,
    /// The time limit of each task (`--time`, e.g. 00:30:00).
    #[arg(long)]
    time: Option<String>,
    /// CPUs per task (`--cpus-per-task`; also the trial's threads).
    #[arg(long, default_value_t = 1)]
    cpus: usize,
    /// Memory per task (`--mem`, e.g. 4G).
    #[arg(long)]
    mem: Option<String>,
    /// At most K tasks at once (`--array=0-N%K`).
    #[arg(long, value_name = "K")]
    array_limit: Option<usize>,
    /// An extra `#SBATCH` option, verbatim (repeatable), e.g. --sbatch=--account=me.
    #[arg(long = "sbatch", value_name = "OPTION")]
    extra: Vec<String>,
    /// The dataset root the tasks read (default: $LENET_DATA_DIR, else ./data; made absolute).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Submit the script with `sbatch` (which must be on PATH) and print the job id.
    #[arg(long)]
    submit: bool,
}

#[derive(Args, Debug)]
struct K8sArgs {
    /// The sweep directory.
    dir: PathBuf,
    /// The container image with `lenet` on its PATH.
    #[arg(long)]
    image: String,
    /// The PersistentVolumeClaim holding the sweep directory and the data.
    #[arg(long)]
    claim: String,
    /// Where the claim is mounted in the container.
    #[arg(long, default_value = "/work")]
    mount: String,
    /// The sweep directory as the pods see it (default: MOUNT/NAME, NAME the directory name).
    #[arg(long)]
    pod_dir: Option<String>,
    /// The data root as the pods see it (default: MOUNT/data).
    #[arg(long)]
    pod_data_dir: Option<String>,
    /// Pods at once.
    #[arg(long, default_value_t = 4)]
    parallelism: usize,
    /// CPUs per pod.
    #[arg(long, default_value_t = 1)]
    cpus: usize,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// The sweep directory.
    dir: PathBuf,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// Runs `lenet sweep`.
pub fn run(args: SweepArgs) -> anyhow::Result<()> {
    match args.command {
        SweepCommand::Plan(a) => plan(a),
        SweepCommand::Run(a) => match a.trial {
            Some(i) => one_trial(&a, i),
            None => pool(&a),
        },
        SweepCommand::Slurm(a) => slurm(a),
        SweepCommand::K8s(a) => k8s(a),
        SweepCommand::Report(a) => report(a),
    }
}

fn plan(a: PlanArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.sweep)
        .map_err(|e| UsageError(format!("{}: {e}", a.sweep.display())))?;
    let sweep = Sweep::parse(&text, &a.sweep)?;
    let dir = SweepDir::plan(&sweep, &text, &a.out)?;
    let p = &dir.plan;
    println!(
        "planned {} trials of sweep {:?} in {} ({} point{} × {} seed{}; swept: {})",
        p.trials.len(),
        p.name,
        a.out.display(),
        p.trials.len() / p.seeds.max(1),
        if p.trials.len() / p.seeds.max(1) == 1 {
            ""
        } else {
            "s"
        },
        p.seeds,
        if p.seeds == 1 { "" } else { "s" },
        if p.keys.is_empty() {
            "nothing".to_string()
        } else {
            p.keys.join(", ")
        }
    );
    print!(
        "{}",
        std::fs::read_to_string(a.out.join("trials.csv"))
            .context("reading the table of trials back")?
            .replace(',', "\t")
    );
    println!(
        "next: lenet sweep run {} --jobs N   (or: lenet sweep slurm {} --submit)",
        a.out.display(),
        a.out.display()
    );
    Ok(())
}

fn data_options(data_dir: Option<&Path>, offline: bool) -> DataOptions {
    DataOptions {
        root: resolve_data_root(data_dir),
        offline,
        report_downloads: true,
    }
}

/// `--trial I`: one trial in this process.
fn one_trial(a: &RunArgs, index: usize) -> anyhow::Result<()> {
    let dir = SweepDir::open(&a.dir)?;
    let trial = dir.trial(index)?.clone();
    println!(
        "trial {} of sweep {:?}{}",
        trial.id,
        dir.plan.name,
        trial
            .values
            .iter()
            .map(|(k, v)| format!(", {k} = {v}"))
            .collect::<String>()
    );
    let interrupter = crate::process::ctrl_c_interrupter();
    let outcome = run_trial(
        &dir,
        index,
        data_options(a.data_dir.as_deref(), a.offline),
        DisplayMode::Lines,
        Some(interrupter),
    )?;
    match outcome {
        Outcome::AlreadyFinished => println!("trial {} had finished: nothing to do", trial.id),
        Outcome::Finished(s) => println!(
            "trial {} finished: best validation {}, test {:.2} %, {:.1} s",
            trial.id,
            percent(s.valid_accuracy),
            100.0 * s.test_accuracy,
            s.train_seconds
        ),
    }
    Ok(())
}

/// A child process running one trial.
struct Running {
    index: usize,
    child: Child,
    started: Instant,
}

/// The unfinished trials here, `--jobs` at a time, each in a child process.
fn pool(a: &RunArgs) -> anyhow::Result<()> {
    if a.jobs == 0 {
        return Err(UsageError("--jobs: at least 1".into()).into());
    }
    let dir = SweepDir::open(&a.dir)?;
    let todo: Vec<usize> = dir
        .plan
        .trials
        .iter()
        .filter(|t| dir.status(t) != Status::Finished)
        .map(|t| t.index)
        .collect();
    let total = dir.plan.trials.len();
    if todo.is_empty() {
        println!(
            "all {total} trials have finished: nothing to do (lenet sweep report {})",
            a.dir.display()
        );
        return Ok(());
    }
    let cores = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let jobs = a.jobs.min(todo.len());
    let threads = (cores / jobs).max(1);
    println!(
        "{} of {total} trials to run, {jobs} at a time, {threads} thread{} each",
        todo.len(),
        if threads == 1 { "" } else { "s" }
    );
    let exe = std::env::current_exe().context("cannot find the lenet binary to run the trials")?;
    let data_root = resolve_data_root(a.data_dir.as_deref());
    let interrupter = crate::process::ctrl_c_interrupter();
    let started = Instant::now();
    let mut queue = todo.into_iter();
    let mut running: Vec<Running> = Vec::new();
    let (mut finished, mut failed) = (Vec::new(), Vec::new());
    let mut stopping = false;
    loop {
        while !stopping && running.len() < jobs {
            let Some(index) = queue.next() else { break };
            let trial = dir.trial(index)?;
            let log_path = dir.trial_dir(trial).join("train.log");
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("cannot write {}", log_path.display()))?;
            let mut cmd = Process::new(&exe);
            cmd.arg("sweep")
                .arg("run")
                .arg(&a.dir)
                .arg("--trial")
                .arg(index.to_string())
                .arg("--data-dir")
                .arg(&data_root)
                .env("RAYON_NUM_THREADS", threads.to_string())
                .stdin(Stdio::null())
                .stdout(log.try_clone().context("log file")?)
                .stderr(log);
            if a.offline {
                cmd.arg("--offline");
            }
            // Its own process group: Ctrl-C reaches the pool only, which stops each child once.
            #[cfg(unix)]
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            let child = cmd
                .spawn()
                .with_context(|| format!("cannot start {}", exe.display()))?;
            println!("started {} (log: {})", trial.id, log_path.display());
            running.push(Running {
                index,
                child,
                started: Instant::now(),
            });
        }
        if running.is_empty() {
            break;
        }
        if interrupter.should_stop() && !stopping {
            stopping = true;
            for r in &running {
                #[cfg(unix)]
                // SAFETY: sending a signal to our own child.
                unsafe {
                    libc::kill(r.child.id() as libc::pid_t, libc::SIGINT);
                }
            }
        }
        let mut still = Vec::new();
        for mut r in running {
            match r.child.try_wait().context("waiting for a trial")? {
                None => still.push(r),
                Some(status) => {
                    let trial = dir.trial(r.index)?;
                    let seconds = r.started.elapsed().as_secs_f64();
                    let done = finished.len() + failed.len() + 1;
                    match (dir.summary(trial), status.code()) {
                        (Some(s), _) => {
                            println!(
                                "[{done}] {} finished in {seconds:.1} s: best validation {}, test {:.2} %",
                                trial.id,
                                percent(s.valid_accuracy),
                                100.0 * s.test_accuracy
                            );
                            finished.push(r.index);
                        }
                        (None, Some(130)) => {
                            println!("{} interrupted (resumes on the next run)", trial.id)
                        }
                        (None, code) => {
                            let log = dir.trial_dir(trial).join("train.log");
                            let why = dir
                                .attempt(trial)
                                .and_then(|a| a.error)
                                .unwrap_or_else(|| format!("exit status {code:?}"));
                            println!(
                                "[{done}] {} failed: {why} (see {})",
                                trial.id,
                                log.display()
                            );
                            failed.push(r.index);
                        }
                    }
                }
            }
        }
        running = still;
        std::thread::sleep(Duration::from_millis(50));
    }
    let wall = started.elapsed().as_secs_f64();
    if stopping {
        return Err(lenet_train::TrainError::Interrupted(format!(
            "the sweep stopped after {wall:.1} s with {} more trials finished; run `lenet sweep run {}` again to go on (interrupted trials resume)",
            finished.len(),
            a.dir.display()
        ))
        .into());
    }
    println!(
        "{} trials finished, {} failed, in {wall:.1} s (wall); lenet sweep report {}",
        finished.len(),
        failed.len(),
        a.dir.display()
    );
    if !failed.is_empty() {
        anyhow::bail!(
            "{} trial{} failed: {}",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            failed
                .iter()
                .filter_map(|&i| dir.trial(i).ok().map(|t| t.id.clone()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot make {} absolute", p.display()))
}

fn slurm(a: SlurmArgs) -> anyhow::Result<()> {
    let dir = SweepDir::open(&a.dir)?;
    if a.cpus == 0 {
        return Err(UsageError("--cpus: at least 1".into()).into());
    }
    let root = absolute(&a.dir)?;
    let exe = std::env::current_exe().context("cannot find the lenet binary")?;
    let data = absolute(&resolve_data_root(a.data_dir.as_deref()))?;
    let script = scheduler::sbatch_script(
        &dir.plan.name,
        &root,
        dir.plan.trials.len(),
        &exe,
        &data,
        &SlurmOptions {
            partition: a.partition,
            time: a.time,
            cpus: a.cpus,
            array_limit: a.array_limit,
            mem: a.mem,
            extra: a.extra,
        },
    );
    let path = root.join("sweep.sbatch");
    lenet_io::write_atomic(&path, script.as_bytes())?;
    std::fs::create_dir_all(root.join("slurm"))
        .with_context(|| format!("cannot create {}", root.join("slurm").display()))?;
    println!("wrote {}", path.display());
    if !a.submit {
        println!("submit it with: sbatch {}", path.display());
        return Ok(());
    }
    let out = Process::new("sbatch")
        .arg("--parsable")
        .arg(&path)
        .output()
        .map_err(|e| UsageError(format!("cannot run sbatch (is SLURM installed here?): {e}")))?;
    if !out.status.success() {
        anyhow::bail!(
            "sbatch refused {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let job = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let job = job.split(';').next().unwrap_or("").to_string();
    lenet_io::write_atomic(
        &root.join("slurm").join("job-id"),
        format!("{job}\n").as_bytes(),
    )?;
    println!(
        "submitted job array {job} ({} tasks); follow it with: squeue -j {job}",
        dir.plan.trials.len()
    );
    Ok(())
}

fn k8s(a: K8sArgs) -> anyhow::Result<()> {
    let dir = SweepDir::open(&a.dir)?;
    let name = a
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sweep".into());
    let mount = a.mount.trim_end_matches('/').to_string();
    let yaml = scheduler::kubernetes_job(
        &dir.plan.name,
        dir.plan.trials.len(),
        &KubernetesOptions {
            image: a.image,
            claim: a.claim,
            dir: a.pod_dir.unwrap_or_else(|| format!("{mount}/{name}")),
            data_dir: a.pod_data_dir.unwrap_or_else(|| format!("{mount}/data")),
            mount,
            parallelism: a.parallelism,
            cpus: a.cpus,
        },
    );
    let path = a.dir.join("sweep-job.yaml");
    lenet_io::write_atomic(&path, yaml.as_bytes())?;
    println!(
        "wrote {} (kubectl apply -f {})",
        path.display(),
        path.display()
    );
    Ok(())
}

fn report(a: ReportArgs) -> anyhow::Result<()> {
    let dir = SweepDir::open(&a.dir)?;
    let report = lenet_sweep::gather(&dir);
    let text = report.to_text();
    let json = serde_json::to_string_pretty(&report)?;
    lenet_io::write_atomic(&a.dir.join("report.txt"), text.as_bytes())?;
    lenet_io::write_atomic(&a.dir.join("report.csv"), report.to_csv().as_bytes())?;
    lenet_io::write_atomic(&a.dir.join("report.json"), format!("{json}\n").as_bytes())?;
    let pictures = lenet_sweep::report::pictures(&dir, &report)?;
    if a.json {
        println!("{json}");
    } else {
        print!("{text}");
        println!(
            "\nwrote report.txt, report.csv, report.json and {} in {}",
            pictures
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", "),
            a.dir.display()
        );
    }
    Ok(())
}

/// An accuracy in [0, 1] as `99.12 %`, or `none` for a run without a validation split.
fn percent(accuracy: Option<f64>) -> String {
    accuracy.map_or_else(|| "none".to_string(), |a| format!("{:.2} %", 100.0 * a))
}
