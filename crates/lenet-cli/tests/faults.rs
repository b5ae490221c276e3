//! Faults survived: `kill -9` of `lenet train` at random moments followed by `--resume` ends with
//! the same weights and metrics as an uninterrupted run (constant and cosine schedules); a full
//! disk is a clean error and leaves a directory a rerun can use; a download killed mid-file
//! leaves no partial file in place.

mod common;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    configs, data_root, largest_difference, lenet, metrics_without_timing, resume, run, scratch,
    summary, weights, SMALL,
};

/// A quick run: 3 epochs of 2,048 images (about a second each here), validation and test on 256.
fn train(root: &Path, run_dir: &Path, schedule: &str) -> Command {
    let mut c = lenet();
    c.args(["train", "--quiet", "--offline", "--epochs", "3", "--config"])
        .arg(configs().join("lenet5.toml"))
        .args(SMALL)
        .args(["--set", &format!("training.schedule.kind={schedule}")])
        .arg("--data-dir")
        .arg(root)
        .arg("--run-dir")
        .arg(run_dir);
    c
}

/// A small deterministic generator for the kill times (xorshift).
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What a finished run is judged by: its weights, its metrics and its test result.
struct Outcome {
    weights: Vec<f32>,
    metrics: Vec<String>,
    test_correct: serde_json::Value,
}

fn outcome(run_dir: &Path) -> Outcome {
    Outcome {
        weights: weights(&run_dir.join("model.bpk"), &run_dir.join("config.toml")),
        metrics: metrics_without_timing(run_dir),
        test_correct: summary(run_dir)["test_correct"].clone(),
    }
}

/// Kills a run after `delay`, then resumes it (or, when it was killed before it kept anything,
/// runs it again, as a user would) until it completes.
fn kill_and_finish(root: &Path, run_dir: &Path, schedule: &str, delay: Duration) -> &'static str {
    let mut child = train(root, run_dir, schedule)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let finished_first = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let status = child.wait().unwrap();
    if finished_first && status.success() {
        return "finished before the kill";
    }
    let (code, out, err) = run(&mut resume(root, run_dir));
    match code {
        0 => "resumed",
        2 if err.contains("already completed") => "killed after completing",
        2 if err.contains("no checkpoint to resume") => {
            // Killed before config.toml was written: nothing to resume, the same command again.
            let (code, _, err) = run(&mut train(root, run_dir, schedule));
            assert_eq!(code, 0, "rerun after an early kill: {err}");
            "killed before starting; rerun"
        }
        _ => panic!("resume after a kill at {delay:?}: exit {code}\n{out}\n{err}"),
    }
}

#[test]
fn kill_9_at_random_moments_then_resume_gives_the_uninterrupted_run() {
    let Some(root) = data_root() else { return };
    let dir = scratch("kill9");
    let mut draws = Draws(0x5EED_1E7E_u64);
    let mut survived = 0;
    for schedule in ["constant", "cosine"] {
        let reference = dir.join(format!("{schedule}-reference"));
        let started = Instant::now();
        let (code, _, err) = run(&mut train(&root, &reference, schedule));
        assert_eq!(code, 0, "{err}");
        let span = started.elapsed().as_secs_f64();
        let expected = outcome(&reference);
        for k in 0..11 {
            let delay = Duration::from_secs_f64(0.05 + draws.next() * span);
            let run_dir = dir.join(format!("{schedule}-{k}"));
            let how = kill_and_finish(&root, &run_dir, schedule, delay);
            let got = outcome(&run_dir);
            let diff = largest_difference(&got.weights, &expected.weights);
            assert!(
                diff <= 1e-6,
                "{schedule}, kill at {delay:?} ({how}): weights differ by {diff}"
            );
            assert_eq!(
                got.metrics, expected.metrics,
                "{schedule}, kill at {delay:?} ({how})"
            );
            assert_eq!(
                got.test_correct, expected.test_correct,
                "{schedule}, kill at {delay:?}"
            );
            // No temporary file is left behind.
            for d in [run_dir.clone(), run_dir.join("checkpoint")] {
                for e in std::fs::read_dir(&d).unwrap() {
                    let name = e.unwrap().file_name().to_string_lossy().into_owned();
                    assert!(!name.ends_with(".tmp"), "{name} left in {}", d.display());
                }
            }
            println!(
                "{schedule}: kill at {:.2} s of {span:.2} s: {how}; same weights and metrics",
                delay.as_secs_f64()
            );
            survived += 1;
        }
    }
    println!("{survived} kill points survived, 0 runs lost");
    assert!(survived >= 20);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_full_disk_is_a_clean_error_and_the_directory_can_be_used_again() {
    let Some(root) = data_root() else { return };
    let dir = scratch("full-disk");
    let run_dir = dir.join("run");
    // Files of at most 150 kB: the first model checkpoint (about 250 kB) cannot be written.
    let mut limited = train(&root, &run_dir, "constant");
    unsafe {
        use std::os::unix::process::CommandExt;
        limited.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 150_000,
                rlim_max: 150_000,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (code, _, err) = run(&mut limited);
    assert_eq!(code, 1, "{err}");
    // The model and optimizer checkpoints are written in parallel: either may be the first
    // file too large, and the message names it.
    let named = ["model-1.bpk", "optim-1.bpk"]
        .iter()
        .any(|f| err.contains(f));
    assert!(err.contains("File too large") && named, "{err}");
    assert!(
        !err.contains("internal error") && !err.contains("panicked"),
        "{err}"
    );
    // Nothing was kept, so the same command reuses the directory.
    let (code, _, err) = run(&mut train(&root, &run_dir, "constant"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(summary(&run_dir)["epochs_completed"], 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Serves `body` for every request, slowly (16 kB every 20 ms) when `slow`.
fn serve(body: Vec<u8>, slow: bool, connections: usize) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if stream.write_all(head.as_bytes()).is_err() {
                continue;
            }
            for chunk in body.chunks(16 * 1024) {
                if stream.write_all(chunk).is_err() {
                    break;
                }
                if slow {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    });
    (url, handle)
}

#[test]
fn a_download_killed_midway_leaves_no_file_and_the_next_fetch_completes() {
    let Some(root) = data_root() else { return };
    let dir = scratch("killed-download");
    let data_dir = dir.join("data");
    let file = |name: &str| -> PathBuf { data_dir.join("mnist").join(name) };
    let real = std::fs::read(root.join("mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
    // fetch takes the files in the standard order: the first one (the training images) comes
    // slowly, and lenet is killed while it arrives.
    let (url, _server) = serve(vec![0u8; 4 << 20], true, 1);
    let mut child = lenet()
        .args(["data", "fetch", "mnist", "--mirror", &url, "--data-dir"])
        .arg(&data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = loop {
        let found = std::fs::read_dir(data_dir.join("mnist"))
            .ok()
            .and_then(|entries| {
                entries
                    .flatten()
                    .find(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            })
            .map(|e| e.path());
        if let Some(p) = found.filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0)) {
            break p;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "fetch ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !file("train-images-idx3-ubyte.gz").exists(),
        "a partial file is in place"
    );
    assert!(
        partial.exists(),
        "the temporary file of the killed download"
    );
    // The next fetch removes the leftover and downloads what it needs (here: only the test
    // labels are served right, the rest are copied in beforehand).
    for name in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
    ] {
        std::fs::copy(root.join("mnist").join(name), file(name)).unwrap();
    }
    let (url, _server) = serve(real.clone(), false, 1);
    let (code, out, err) = run(lenet()
        .args(["data", "fetch", "mnist", "--mirror", &url, "--data-dir"])
        .arg(&data_dir));
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        std::fs::read(file("t10k-labels-idx1-ubyte.gz")).unwrap(),
        real
    );
    assert!(!partial.exists(), "the stale temporary file is removed");
    std::fs::remove_dir_all(&dir).unwrap();
}
