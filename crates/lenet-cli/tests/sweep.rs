//! `lenet sweep` end to end on real MNIST: plan, run here (two at a time, then one), interrupt
//! and resume, report; and the same plan through a one-node SLURM cluster started by the test
//! (`scripts/slurm/start-cluster.sh`: munged, slurmctld and slurmd on this machine), whose trials
//! must give the same test accuracies. `.ci/run` installs `slurm-wlm` and `munge`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{configs, data_root, lenet, run, scratch};

/// A sweep of 8 short trials: 2 learning rates × 2 batch sizes × 2 seeds, one epoch on a slice.
fn sweep_file(dir: &Path) -> PathBuf {
    let path = dir.join("sweep.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"lr-batch\"\nbase = {:?}\nseeds = 2\n\
             [set]\ntraining.epochs = 1\ndata.limit.train = 1000\ndata.limit.valid = 500\n\
             data.limit.test = 500\n\
             [grid]\n\"training.optimizer.lr\" = [1e-3, 3e-3]\n\"training.batch_size\" = [32, 64]\n",
            configs().join("lenet5.toml").display().to_string()
        ),
    )
    .unwrap();
    path
}

fn plan(sweep: &Path, out: &Path) {
    let (code, stdout, stderr) = run(lenet()
        .args(["sweep", "plan"])
        .arg(sweep)
        .arg("--out")
        .arg(out));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("planned 8 trials"), "{stdout}");
}

/// Test accuracy by trial id, from `report.json`.
fn report(dir: &Path) -> (BTreeMap<String, f64>, serde_json::Value) {
    let (code, stdout, stderr) = run(lenet().args(["sweep", "report"]).arg(dir));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let by_id = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| Some((r["id"].as_str()?.to_string(), r["test_accuracy"].as_f64()?)))
        .collect();
    (by_id, json)
}

#[test]
fn a_sweep_runs_here_two_at_a_time_and_reports() {
    let Some(data) = data_root() else { return };
    let dir = scratch("sweep-local");
    let out = dir.join("lr-batch");
    plan(&sweep_file(&dir), &out);

    let started = Instant::now();
    let (code, stdout, stderr) = run(lenet()
        .args(["sweep", "run"])
        .arg(&out)
        .args(["--jobs", "2", "--offline", "--data-dir"])
        .arg(&data));
    assert_eq!(code, 0, "{stdout}{stderr}");
    println!(
        "8 trials, --jobs 2: {:.1} s wall\n{stdout}",
        started.elapsed().as_secs_f64()
    );
    assert!(stdout.contains("8 trials finished, 0 failed"), "{stdout}");
    for i in 0..8 {
        assert!(out
            .join(format!("trials/t00{i}/run/summary.json"))
            .is_file());
    }
    // Nothing left: a rerun does nothing.
    let (code, stdout, _) = run(lenet().args(["sweep", "run"]).arg(&out).arg("--offline"));
    assert_eq!(code, 0);
    assert!(stdout.contains("nothing to do"), "{stdout}");

    let (accuracies, json) = report(&out);
    assert_eq!(accuracies.len(), 8);
    // Sorted by validation accuracy, best first.
    let valid: Vec<f64> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["valid_accuracy"].as_f64().unwrap())
        .collect();
    assert!(valid.windows(2).all(|w| w[0] >= w[1]), "{valid:?}");
    // Four points, each the mean of its two seeds.
    let groups = json["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 4);
    for g in groups {
        let point = g["point"].as_u64().unwrap();
        let of: Vec<f64> = json["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["point"].as_u64() == Some(point))
            .map(|r| r["test_accuracy"].as_f64().unwrap())
            .collect();
        assert_eq!(of.len(), 2);
        let mean = (of[0] + of[1]) / 2.0;
        assert!((g["test_mean"].as_f64().unwrap() - mean).abs() < 1e-12);
        let std = ((of[0] - mean).powi(2) + (of[1] - mean).powi(2)).sqrt();
        assert!((g["test_std"].as_f64().unwrap() - std).abs() < 1e-12);
    }
    let csv = std::fs::read_to_string(out.join("report.csv")).unwrap();
    assert_eq!(csv.lines().count(), 9, "{csv}");
    assert!(csv.starts_with(
        "trial,id,training.batch_size,training.optimizer.lr,seed,valid_accuracy,test_accuracy"
    ));
    for picture in [
        "report-training.optimizer.lr.png",
        "report-training.batch_size.png",
        "report-curves.png",
    ] {
        let p = image::open(out.join(picture)).unwrap();
        assert!(p.width() > 300, "{picture}");
    }
    let text = std::fs::read_to_string(out.join("report.txt")).unwrap();
    assert!(text.contains("8 of 8 trials finished"), "{text}");
    assert!(text.contains("over seeds"), "{text}");

    // The same trials one at a time: the same accuracies (same seed, same config).
    let again = dir.join("again");
    plan(&sweep_file(&dir), &again);
    let started = Instant::now();
    let (code, stdout, stderr) = run(lenet()
        .args(["sweep", "run"])
        .arg(&again)
        .args(["--jobs", "1", "--offline", "--data-dir"])
        .arg(&data));
    assert_eq!(code, 0, "{stdout}{stderr}");
    println!(
        "8 trials, --jobs 1: {:.1} s wall",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(report(&again).0, accuracies);

    // The same plan as a SLURM job array on a one-node cluster started here.
    if let Some(cluster) = Cluster::start(&dir.join("slurm-state")) {
        let on_slurm = dir.join("on-slurm");
        plan(&sweep_file(&dir), &on_slurm);
        let started = Instant::now();
        let (code, stdout, stderr) = run(lenet()
            .args(["sweep", "slurm"])
            .arg(&on_slurm)
            .args([
                "--cpus",
                "1",
                "--time",
                "00:10:00",
                "--submit",
                "--data-dir",
            ])
            .arg(&data)
            .env("SLURM_CONF", cluster.conf()));
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("submitted job array"), "{stdout}");
        let script = std::fs::read_to_string(on_slurm.join("sweep.sbatch")).unwrap();
        assert!(script.contains("#SBATCH --array=0-7\n"), "{script}");
        let deadline = Instant::now() + Duration::from_secs(600);
        let finished = |d: &Path| {
            (0..8)
                .filter(|i| d.join(format!("trials/t00{i}/run/summary.json")).is_file())
                .count()
        };
        while finished(&on_slurm) < 8 || cluster.busy() {
            assert!(
                Instant::now() < deadline,
                "the job array did not finish in 10 minutes: {} of 8 trials; logs in {}",
                finished(&on_slurm),
                on_slurm.join("slurm").display()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        println!(
            "8 trials through SLURM (2 CPUs, 1 per task): {:.1} s wall from submission",
            started.elapsed().as_secs_f64()
        );
        let outputs = std::fs::read_dir(on_slurm.join("slurm"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".out"))
            .count();
        assert_eq!(outputs, 8, "one output file per array task");
        let hosts: Vec<String> = (0..8)
            .map(|i| {
                let a: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(on_slurm.join(format!("trials/t00{i}/trial.json")))
                        .unwrap(),
                )
                .unwrap();
                assert_eq!(a["status"], "finished", "{a}");
                a["host"].as_str().unwrap_or_default().to_string()
            })
            .collect();
        assert!(hosts.iter().all(|h| !h.is_empty()), "{hosts:?}");
        assert_eq!(
            report(&on_slurm).0,
            accuracies,
            "same seed, same config: the same test accuracy through SLURM"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A one-node SLURM cluster (munged, slurmctld, slurmd on this machine, everything under one
/// state directory) started by `scripts/slurm/start-cluster.sh`; stopped when dropped.
struct Cluster {
    state: PathBuf,
}

impl Cluster {
    fn scripts() -> PathBuf {
        configs().join("../scripts/slurm")
    }

    /// Starts the cluster, or says why it cannot (`None`; under CI a failure).
    fn start(state: &Path) -> Option<Cluster> {
        let missing: Vec<&str> = ["sbatch", "squeue", "slurmctld", "slurmd", "munged"]
            .into_iter()
            .filter(|p| {
                !std::process::Command::new("sh")
                    .args(["-c", &format!("command -v {p}")])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .collect();
        if !missing.is_empty() {
            lenet_data::testing::unavailable(&format!(
                "no SLURM here ({} missing): apt-get install slurm-wlm munge",
                missing.join(", ")
            ));
            return None;
        }
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } != 0 {
            lenet_data::testing::unavailable("the SLURM daemons of the test cluster need root");
            return None;
        }
        let (code, stdout, stderr) =
            run(std::process::Command::new(Self::scripts().join("start-cluster.sh")).arg(state));
        let cluster = Cluster {
            state: state.to_path_buf(),
        };
        assert_eq!(code, 0, "the SLURM cluster did not start: {stdout}{stderr}");
        Some(cluster)
    }

    fn conf(&self) -> PathBuf {
        self.state.join("etc/slurm.conf")
    }

    /// Whether jobs are still queued or running.
    fn busy(&self) -> bool {
        let out = std::process::Command::new("squeue")
            .args(["-h", "-t", "PD,R,CG,CF"])
            .env("SLURM_CONF", self.conf())
            .output()
            .unwrap();
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(Self::scripts().join("stop-cluster.sh"))
            .arg(&self.state)
            .output();
    }
}

#[test]
fn an_interrupted_sweep_resumes_where_it_stopped() {
    let Some(data) = data_root() else { return };
    let dir = scratch("sweep-resume");
    // Two identical trials of three epochs: one is interrupted and resumed, the other not.
    let sweep = dir.join("twins.toml");
    std::fs::write(
        &sweep,
        format!(
            "base = {:?}\n[set]\ntraining.epochs = 3\ndata.limit.train = 3000\n\
             data.limit.valid = 500\ndata.limit.test = 500\n\
             [grid]\n\"training.num_workers\" = [1, 1]\n",
            configs().join("lenet5.toml").display().to_string()
        ),
    )
    .unwrap();
    let out = dir.join("twins");
    let (code, stdout, stderr) = run(lenet()
        .args(["sweep", "plan"])
        .arg(&sweep)
        .arg("--out")
        .arg(&out));
    assert_eq!(code, 0, "{stdout}{stderr}");

    let mut pool = lenet()
        .args(["sweep", "run"])
        .arg(&out)
        .args(["--jobs", "1", "--offline", "--data-dir"])
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Stop it once the first trial has finished an epoch.
    let metrics = out.join("trials/t000/run/metrics.csv");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !std::fs::read_to_string(&metrics).is_ok_and(|m| m.lines().count() >= 3) {
        assert!(Instant::now() < deadline, "the first epoch did not finish");
        assert!(pool.try_wait().unwrap().is_none(), "the pool ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(pool.id() as libc::pid_t, libc::SIGINT);
    }
    let output = pool.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("run `lenet sweep run"), "{stderr}");
    let status = |id: &str| {
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("trials/{id}/trial.json"))).unwrap(),
        )
        .unwrap();
        json["status"].as_str().unwrap().to_string()
    };
    assert_eq!(status("t000"), "started");
    assert!(!out.join("trials/t001/run").exists());

    let (code, stdout, stderr) = run(lenet()
        .args(["sweep", "run"])
        .arg(&out)
        .args(["--offline", "--data-dir"])
        .arg(&data));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("2 of 2 trials to run"), "{stdout}");
    let attempt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("trials/t000/trial.json")).unwrap())
            .unwrap();
    assert_eq!(attempt["resumed"], true);
    let (accuracies, _) = report(&out);
    assert_eq!(accuracies.len(), 2);
    assert_eq!(
        accuracies["t000"], accuracies["t001"],
        "interrupted and resumed must equal uninterrupted"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_sweeps_are_refused_before_anything_is_written() {
    let dir = scratch("sweep-bad");
    let sweep = dir.join("bad.toml");
    std::fs::write(
        &sweep,
        format!(
            "base = {:?}\n[grid]\n\"training.optimizer.lr\" = [1e-3, -1.0]\n",
            configs().join("lenet5.toml").display().to_string()
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let (code, stdout, stderr) = run(lenet()
        .args(["sweep", "plan"])
        .arg(&sweep)
        .arg("--out")
        .arg(&out));
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(stderr.contains("trial t001"), "{stderr}");
    assert!(stderr.contains("training.optimizer.lr"), "{stderr}");
    assert!(!out.exists(), "nothing may be written");
    // Running a directory that was never planned.
    let (code, _, stderr) = run(lenet().args(["sweep", "run"]).arg(&out));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("lenet sweep plan"), "{stderr}");
    let (code, _, stderr) = run(lenet()
        .args(["sweep", "run"])
        .arg(&dir)
        .args(["--trial", "0"]));
    assert_eq!(code, 2, "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
