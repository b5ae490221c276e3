//! The run directory and its files, all written atomically (temporary file, then rename):
//!
//! ```text
//! runs/<name>/
//!   config.toml       the resolved config (preset expanded, overrides applied, seed recorded)
//!   checkpoint/       Burn's model-N.bpk, optim-N.bpk, scheduler-N.bpk per kept epoch
//!   model.bpk         the kept weights (best or last), Burn's burnpack format
//!   metrics.csv       one row per epoch and split
//!   summary.json      what the run achieved
//!   train/, valid/    Burn's per-batch metric logs
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use lenet_model::ConvNet;

use crate::progress::History;
use crate::train::TrainSummary;

/// Errors about the run directory.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// A file could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory already holds a run.
    #[error("{} already holds a run; continue it with --resume, or choose another --run-dir", .0.display())]
    Exists(PathBuf),
    /// `--resume` on a directory without checkpoints.
    #[error("{} has no checkpoint to resume from", .0.display())]
    NothingToResume(PathBuf),
    /// The weights could not be saved.
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
    /// A checkpoint path that is neither a run directory nor a weights file with a config.
    #[error("{}: {message}", path.display())]
    Checkpoint {
        /// The path given.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError + '_ {
    move |source| RunDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunDirError> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io(path))
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// One row of `metrics.csv`: an epoch's values on one split.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// 1-based epoch.
    pub epoch: usize,
    /// `train` or `valid`.
    pub split: String,
    /// Column → value (`loss`, `accuracy`, `top_5_accuracy`, `learning_rate`, `images_per_second`, `seconds`).
    pub values: BTreeMap<String, f64>,
}

impl MetricRow {
    /// A value, if present and finite-or-not.
    pub fn get(&self, column: &str) -> Option<f64> {
        self.values.get(column).copied()
    }
}

/// Burn's metric name as a CSV column: `Learning Rate` → `learning_rate`, and its top-k accuracy
/// (`Top-K Accuracy @ TopK(5)`) → `top_5_accuracy`.
fn column(name: &str) -> String {
    if let Some(k) = name
        .strip_prefix("Top-K Accuracy @ TopK(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return format!("top_{k}_accuracy");
    }
    let mut out = String::new();
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// The rows recorded by the progress renderer during a training session.
pub fn rows_from_history(h: &History) -> Vec<MetricRow> {
    h.epochs
        .iter()
        .filter(|(_, r)| !r.metrics.is_empty())
        .map(|((epoch, split), r)| {
            let mut values: BTreeMap<String, f64> =
                r.metrics.iter().map(|(k, v)| (column(k), *v)).collect();
            values.insert(
                "images_per_second".into(),
                r.items as f64 / r.seconds.max(1e-9),
            );
            values.insert("seconds".into(), r.seconds);
            MetricRow {
                epoch: *epoch,
                split: split.clone(),
                values,
            }
        })
        .collect()
}

/// The epoch with the highest validation accuracy (the earliest on ties) and that accuracy.
pub fn best_epoch(rows: &[MetricRow]) -> Option<(usize, f64)> {
    rows.iter()
        .filter(|r| r.split == "valid")
        .filter_map(|r| r.get("accuracy").map(|a| (r.epoch, a)))
        .fold(None, |best: Option<(usize, f64)>, (e, a)| match best {
            Some((_, b)) if b >= a => best,
            _ => Some((e, a)),
        })
}

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates `path` for a new run; fails if it already holds one.
    pub fn create(path: &Path) -> Result<RunDir, RunDirError> {
        if path.join("config.toml").exists() || path.join("checkpoint").exists() {
            return Err(RunDirError::Exists(path.to_path_buf()));
        }
        fs::create_dir_all(path).map_err(io(path))?;
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing run to continue it.
    pub fn open_for_resume(path: &Path) -> Result<RunDir, RunDirError> {
        if !path.join("config.toml").exists() {
            return Err(RunDirError::NothingToResume(path.to_path_buf()));
        }
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where Burn's checkpointer writes.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.path.join("checkpoint")
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

    /// Writes `config.toml`.
    pub fn write_config(&self, text: &str) -> Result<(), RunDirError> {
        write_atomic(&self.path.join("config.toml"), text.as_bytes())
    }

    /// Writes the kept weights as `model.bpk`.
    pub fn write_model(&self, net: ConvNet) -> Result<(), RunDirError> {
        let path = self.path.join("model.bpk");
        let tmp = temp_path(&path);
        net.save_file(&tmp).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            RunDirError::Save {
                path: path.clone(),
                message: e.to_string(),
            }
        })?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Writes `summary.json`.
    pub fn write_summary(&self, s: &TrainSummary) -> Result<(), RunDirError> {
        let text = serde_json::to_string_pretty(s).unwrap_or_default();
        write_atomic(
            &self.path.join("summary.json"),
            format!("{text}\n").as_bytes(),
        )
    }

    /// Reads `metrics.csv` (empty if there is none yet).
    pub fn read_metrics(&self) -> Result<Vec<MetricRow>, RunDirError> {
        let path = self.path.join("metrics.csv");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path)(e)),
        };
        parse_metrics(&text).map_err(|(line, message)| RunDirError::Metrics {
            path,
            line,
            message,
        })
    }

    /// Writes `metrics.csv`: one row per epoch and split, a column per metric.
    pub fn write_metrics(&self, rows: &[MetricRow]) -> Result<(), RunDirError> {
        write_atomic(
            &self.path.join("metrics.csv"),
            format_metrics(rows).as_bytes(),
        )
    }
}

fn format_metrics(rows: &[MetricRow]) -> String {
    let mut columns: Vec<String> = rows.iter().flat_map(|r| r.values.keys().cloned()).collect();
    columns.sort();
    columns.dedup();
    let mut out = format!("epoch,split,{}\n", columns.join(","));
    let mut rows: Vec<&MetricRow> = rows.iter().collect();
    rows.sort_by(|a, b| (a.epoch, &a.split).cmp(&(b.epoch, &b.split)));
    for r in rows {
        out.push_str(&format!("{},{}", r.epoch, r.split));
        for c in &columns {
            match r.get(c) {
                Some(v) => out.push_str(&format!(",{v}")),
                None => out.push(','),
            }
        }
        out.push('\n');
    }
    out
}

fn parse_metrics(text: &str) -> Result<Vec<MetricRow>, (usize, String)> {
    let mut lines = text.lines();
    let header: Vec<&str> = match lines.next() {
        Some(h) => h.split(',').collect(),
        None => return Ok(Vec::new()),
    };
    if header.len() < 2 || header[0] != "epoch" || header[1] != "split" {
        return Err((1, "expected a header starting with `epoch,split`".into()));
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != header.len() {
            return Err((
                i + 2,
                format!("{} cells, expected {}", cells.len(), header.len()),
            ));
        }
        let epoch = cells[0]
            .parse()
            .map_err(|_| (i + 2, format!("bad epoch `{}`", cells[0])))?;
        let mut values = BTreeMap::new();
        for (name, cell) in header[2..].iter().zip(&cells[2..]) {
            if !cell.is_empty() {
                let v = cell
                    .parse()
                    .map_err(|_| (i + 2, format!("bad number `{cell}` in {name}")))?;
                values.insert(name.to_string(), v);
            }
        }
        rows.push(MetricRow {
            epoch,
            split: cells[1].to_string(),
            values,
        });
    }
    Ok(rows)
}

/// A trained model's files from what the user gave: a run directory (its `model.bpk` and
/// `config.toml`) or a weights file with `config.toml` beside it.
pub fn resolve_checkpoint(path: &Path) -> Result<(PathBuf, PathBuf), RunDirError> {
    let (weights, dir) = if path.is_dir() {
        (path.join("model.bpk"), path.to_path_buf())
    } else {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // A checkpoint inside <run>/checkpoint/ has its config one level up.
        let dir = if dir.file_name().is_some_and(|n| n == "checkpoint")
            && !dir.join("config.toml").exists()
        {
            dir.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            dir
        };
        (path.to_path_buf(), dir)
    };
    if !weights.is_file() {
        return Err(RunDirError::Checkpoint {
            path: path.to_path_buf(),
            message: format!(
                "no weights file {} (train a model with `lenet train` first)",
                weights.display()
            ),
        });
    }
    let config = dir.join("config.toml");
    if !config.is_file() {
        return Err(RunDirError::Checkpoint {
            path: path.to_path_buf(),
            message: format!(
                "no config.toml beside the weights (looked for {})",
                config.display()
            ),
        });
    }
    Ok((weights, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_csv_round_trip_and_best_epoch() {
        let row = |epoch, split: &str, acc| MetricRow {
            epoch,
            split: split.into(),
            values: [("accuracy".to_string(), acc), ("loss".to_string(), 0.5)]
                .into_iter()
                .collect(),
        };
        let rows = vec![
            row(1, "train", 0.9),
            row(1, "valid", 0.95),
            row(2, "valid", 0.97),
            row(3, "valid", 0.97),
        ];
        let text = format_metrics(&rows);
        assert!(
            text.starts_with("epoch,split,accuracy,loss\n1,train,0.9,0.5\n"),
            "{text}"
        );
        assert_eq!(parse_metrics(&text).unwrap(), rows);
        assert_eq!(best_epoch(&rows), Some((2, 0.97)));
        assert!(parse_metrics("epoch,split,loss\n1,train\n").is_err());
        assert_eq!(column("Top-K Accuracy @ TopK(5)"), "top_5_accuracy");
        assert_eq!(column("Learning Rate"), "learning_rate");
    }

    #[test]
    fn atomic_write_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("lenet-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        // A directory that does not exist: an error naming the file, nothing written.
        let e = write_atomic(&dir.join("missing/x.json"), b"x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing/x.json"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_run_directory_is_not_overwritten() {
        let dir = std::env::temp_dir().join(format!("lenet-rundir-{}", std::process::id()));
        let run = RunDir::create(&dir).unwrap();
        run.write_config("x = 1").unwrap();
        assert!(matches!(RunDir::create(&dir), Err(RunDirError::Exists(_))));
        assert_eq!(
            RunDir::open_for_resume(&dir).unwrap().last_checkpoint(),
            None
        );
        fs::create_dir_all(dir.join("checkpoint")).unwrap();
        for k in ["model", "optim", "scheduler"] {
            fs::write(dir.join(format!("checkpoint/{k}-2.bpk")), b"").unwrap();
        }
        fs::write(dir.join("checkpoint/model-3.bpk"), b"").unwrap();
        assert_eq!(run.last_checkpoint(), Some(2));
        fs::remove_dir_all(&dir).unwrap();
    }
}
