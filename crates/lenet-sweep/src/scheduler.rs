//! Handing a planned sweep to a cluster scheduler: a SLURM job array (`sbatch`) whose task I
//! runs `lenet sweep run DIR --trial I`, and the same as a Kubernetes Indexed Job
//! (`JOB_COMPLETION_INDEX`). lenet schedules nothing itself: every trial is independent, and a
//! rerun of a task resumes its trial.

use std::path::Path;

/// What the SLURM job asks for.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` (e.g. `00:30:00`).
    pub time: Option<String>,
    /// `--cpus-per-task` (also the trial's thread count).
    pub cpus: usize,
    /// At most this many tasks at once (`--array=0-N%K`).
    pub array_limit: Option<usize>,
    /// `--mem` (e.g. `4G`).
    pub mem: Option<String>,
    /// Extra `#SBATCH` lines, verbatim (`--account=x`, `--qos=y`).
    pub extra: Vec<String>,
}

/// Single-quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The `sbatch` script of a job array over `trials` trials of the sweep in `dir` (absolute),
/// run by the `lenet` binary at `lenet` (absolute), reading data from `data_dir`.
pub fn sbatch_script(
    name: &str,
    dir: &Path,
    trials: usize,
    lenet: &Path,
    data_dir: &Path,
    o: &SlurmOptions,
) -> String {
    let q = |p: &Path| shell_quote(&p.display().to_string());
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!(
        "# lenet sweep {name:?}: {trials} trials, one array task each.\n\
         # Submit: sbatch {script}   (or `lenet sweep slurm DIR --submit`)\n\
         # A task that fails or is preempted can be run again: it resumes its trial.\n",
        script = q(&dir.join("sweep.sbatch"))
    ));
    let job = format!("lenet-{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect::<String>();
    s.push_str(&format!("#SBATCH --job-name={job}\n"));
    let limit = o.array_limit.map(|k| format!("%{k}")).unwrap_or_default();
    s.push_str(&format!(
        "#SBATCH --array=0-{}{limit}\n",
        trials.saturating_sub(1)
    ));
    s.push_str("#SBATCH --ntasks=1\n");
    s.push_str(&format!("#SBATCH --cpus-per-task={}\n", o.cpus.max(1)));
    if let Some(p) = &o.partition {
        s.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    if let Some(t) = &o.time {
        s.push_str(&format!("#SBATCH --time={t}\n"));
    }
    if let Some(m) = &o.mem {
        s.push_str(&format!("#SBATCH --mem={m}\n"));
    }
    for e in &o.extra {
        s.push_str(&format!("#SBATCH {e}\n"));
    }
    s.push_str(&format!(
        "#SBATCH --output={}\n",
        q(&dir.join("slurm").join("%A_%a.out"))
    ));
    s.push_str(&format!(
        "\nset -eu\n\
         # Threads: what SLURM gave the task.\n\
         export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-{cpus}}}\"\n\
         export LENET_DATA_DIR={data}\n\
         exec {lenet} sweep run {dir} --trial \"$SLURM_ARRAY_TASK_ID\" --offline\n",
        cpus = o.cpus.max(1),
        data = q(data_dir),
        lenet = q(lenet),
        dir = q(dir),
    ));
    s
}

/// What the Kubernetes Job asks for.
#[derive(Debug, Clone)]
pub struct KubernetesOptions {
    /// The container image holding the `lenet` binary.
    pub image: String,
    /// The PersistentVolumeClaim holding the sweep directory and the data.
    pub claim: String,
    /// Where the claim is mounted in the container.
    pub mount: String,
    /// The sweep directory and the data root, as seen in the container.
    pub dir: String,
    /// The data root in the container.
    pub data_dir: String,
    /// Pods at once.
    pub parallelism: usize,
    /// CPUs per pod.
    pub cpus: usize,
}

/// A Kubernetes Indexed Job running every trial once (`JOB_COMPLETION_INDEX` is the trial).
pub fn kubernetes_job(name: &str, trials: usize, o: &KubernetesOptions) -> String {
    let job: String = format!("lenet-sweep-{name}")
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(52)
        .collect();
    let job = job.trim_end_matches('-');
    let json = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    format!(
        "# lenet sweep {name:?}: {trials} trials as a Kubernetes Indexed Job.\n\
         # kubectl apply -f this file; each pod runs `lenet sweep run DIR --trial $JOB_COMPLETION_INDEX`.\n\
         apiVersion: batch/v1\n\
         kind: Job\n\
         metadata:\n\
         \x20 name: {job}\n\
         spec:\n\
         \x20 completionMode: Indexed\n\
         \x20 completions: {trials}\n\
         \x20 parallelism: {parallelism}\n\
         \x20 backoffLimitPerIndex: 2\n\
         \x20 template:\n\
         \x20   spec:\n\
         \x20     restartPolicy: Never\n\
         \x20     containers:\n\
         \x20     - name: trial\n\
         \x20       image: {image}\n\
         \x20       command: [\"sh\", \"-c\", {command}]\n\
         \x20       env:\n\
         \x20       - name: RAYON_NUM_THREADS\n\
         \x20         value: \"{cpus}\"\n\
         \x20       - name: LENET_DATA_DIR\n\
         \x20         value: {data}\n\
         \x20       resources:\n\
         \x20         requests:\n\
         \x20           cpu: \"{cpus}\"\n\
         \x20         limits:\n\
         \x20           cpu: \"{cpus}\"\n\
         \x20       volumeMounts:\n\
         \x20       - name: work\n\
         \x20         mountPath: {mount}\n\
         \x20     volumes:\n\
         \x20     - name: work\n\
         \x20       persistentVolumeClaim:\n\
         \x20         claimName: {claim}\n",
        parallelism = o.parallelism.max(1),
        image = json(&o.image),
        command = json(&format!(
            "exec lenet sweep run {} --trial \"$JOB_COMPLETION_INDEX\" --offline",
            shell_quote(&o.dir)
        )),
        cpus = o.cpus.max(1),
        data = json(&o.data_dir),
        mount = json(&o.mount),
        claim = json(&o.claim),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sbatch_script_is_a_job_array_over_the_trials() {
        let s = sbatch_script(
            "lr sweep",
            Path::new("/work/sweeps/it's"),
            12,
            Path::new("/opt/lenet/bin/lenet"),
            Path::new("/data"),
            &SlurmOptions {
                partition: Some("cpu".into()),
                time: Some("00:30:00".into()),
                cpus: 4,
                array_limit: Some(3),
                ..SlurmOptions::default()
            },
        );
        for line in [
            "#!/bin/bash\n",
            "#SBATCH --job-name=lenet-lr_sweep\n",
            "#SBATCH --array=0-11%3\n",
            "#SBATCH --cpus-per-task=4\n",
            "#SBATCH --partition=cpu\n",
            "#SBATCH --time=00:30:00\n",
            "#SBATCH --output='/work/sweeps/it'\\''s/slurm/%A_%a.out'\n",
            "exec /opt/lenet/bin/lenet sweep run '/work/sweeps/it'\\''s' --trial \"$SLURM_ARRAY_TASK_ID\" --offline\n",
        ] {
            assert!(s.contains(line), "{line:?} not in\n{s}");
        }
        // #SBATCH lines must come before the first command.
        let first_command = s.find("\nset -eu").unwrap();
        assert!(s.rfind("#SBATCH").unwrap() < first_command);
    }

    #[test]
    fn the_kubernetes_job_is_indexed_over_the_trials() {
        let y = kubernetes_job(
            "LR_sweep",
            8,
            &KubernetesOptions {
                image: "ghcr.io/me/lenet:1".into(),
                claim: "lenet-work".into(),
                mount: "/work".into(),
                dir: "/work/sweeps/lr".into(),
                data_dir: "/work/data".into(),
                parallelism: 4,
                cpus: 2,
            },
        );
        for line in [
            "  name: lenet-sweep-lr-sweep\n",
            "  completionMode: Indexed\n",
            "  completions: 8\n",
            "  parallelism: 4\n",
            "image: \"ghcr.io/me/lenet:1\"",
            "$JOB_COMPLETION_INDEX",
            "claimName: \"lenet-work\"",
        ] {
            assert!(y.contains(line), "{line:?} not in\n{y}");
        }
    }
}
