//! A sweep's results: one row per trial (swept values, best validation and test accuracy, time,
//! status) sorted by validation accuracy, the mean ± standard deviation over the seeds of each
//! point, and pictures (accuracy against each swept value; every trial's validation curve).

use std::path::PathBuf;

use lenet_train::run::metrics::MetricRow;
use lenet_train::{RunDir, Subset};
use lenet_viz::{Curves, Scatter, Series, XAxis};
use serde::Serialize;

use crate::plan::{csv_field, PlanError, Status, SweepDir};
use crate::spec::number;

/// One trial's row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Index.
    pub trial: usize,
    /// Directory name.
    pub id: String,
    /// Swept values (TOML text), in key order.
    pub values: Vec<String>,
    /// `training.seed`.
    pub seed: u64,
    /// The point (trials differing only by seed share it).
    pub point: usize,
    /// Best validation accuracy.
    pub valid_accuracy: Option<f64>,
    /// Test accuracy of the kept model.
    pub test_accuracy: Option<f64>,
    /// Training time, seconds.
    pub seconds: Option<f64>,
    /// Where it stands.
    pub status: Status,
}

/// Mean and sample standard deviation over a point's finished seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The point.
    pub point: usize,
    /// Its swept values (without the seed).
    pub values: Vec<String>,
    /// Finished trials.
    pub finished: usize,
    /// Mean validation accuracy.
    pub valid_mean: Option<f64>,
    /// Its standard deviation (n − 1; 0 for one trial).
    pub valid_std: Option<f64>,
    /// Mean test accuracy.
    pub test_mean: Option<f64>,
    /// Its standard deviation.
    pub test_std: Option<f64>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The sweep's name.
    pub name: String,
    /// The swept keys.
    pub keys: Vec<String>,
    /// The trials, best validation accuracy first.
    pub rows: Vec<Row>,
    /// Per point, when the sweep has several seeds per point.
    pub groups: Vec<Group>,
    /// Trials by status.
    pub finished: usize,
    /// Trials not finished.
    pub unfinished: usize,
    /// Sum of the trials' training times, seconds.
    pub train_seconds: f64,
}

fn mean_std(v: &[f64]) -> (Option<f64>, Option<f64>) {
    if v.is_empty() {
        return (None, None);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (Some(mean), Some(var.sqrt()))
}

/// Gathers the report of the sweep in `dir`.
pub fn gather(dir: &SweepDir) -> Report {
    let plan = &dir.plan;
    let mut rows: Vec<Row> = plan
        .trials
        .iter()
        .map(|t| {
            let summary = dir.summary(t);
            Row {
                trial: t.index,
                id: t.id.clone(),
                values: t.values.iter().map(|(_, v)| v.clone()).collect(),
                seed: t.seed,
                point: t.point,
                valid_accuracy: summary.as_ref().and_then(|s| s.valid_accuracy),
                test_accuracy: summary.as_ref().map(|s| s.test_accuracy),
                seconds: summary.as_ref().map(|s| s.train_seconds),
                status: dir.status(t),
            }
        })
        .collect();
    let mut groups = Vec::new();
    if plan.seeds > 1 {
        let points = rows.iter().map(|r| r.point).max().map_or(0, |p| p + 1);
        for point in 0..points {
            let of: Vec<&Row> = rows.iter().filter(|r| r.point == point).collect();
            let Some(first) = of.first() else { continue };
            let valid: Vec<f64> = of.iter().filter_map(|r| r.valid_accuracy).collect();
            let test: Vec<f64> = of.iter().filter_map(|r| r.test_accuracy).collect();
            let (valid_mean, valid_std) = mean_std(&valid);
            let (test_mean, test_std) = mean_std(&test);
            groups.push(Group {
                point,
                values: first.values.clone(),
                finished: test.len(),
                valid_mean,
                valid_std,
                test_mean,
                test_std,
            });
        }
        groups.sort_by(|a, b| {
            b.valid_mean
                .unwrap_or(-1.0)
                .total_cmp(&a.valid_mean.unwrap_or(-1.0))
                .then(a.point.cmp(&b.point))
        });
    }
    rows.sort_by(|a, b| {
        b.valid_accuracy
            .unwrap_or(-1.0)
            .total_cmp(&a.valid_accuracy.unwrap_or(-1.0))
            .then(a.trial.cmp(&b.trial))
    });
    let finished = rows.iter().filter(|r| r.status == Status::Finished).count();
    Report {
        name: plan.name.clone(),
        keys: plan.keys.clone(),
        train_seconds: rows.iter().filter_map(|r| r.seconds).sum(),
        unfinished: rows.len() - finished,
        finished,
        rows,
        groups,
    }
}

fn pct(v: Option<f64>) -> String {
    v.map(|a| format!("{:.2}", 100.0 * a)).unwrap_or_default()
}

fn pm(mean: Option<f64>, std: Option<f64>) -> String {
    match (mean, std) {
        (Some(m), Some(s)) => format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * s),
        _ => String::new(),
    }
}

/// An aligned text table of `header` and `rows`.
fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(header);
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

impl Report {
    /// The report as text: the trials, then the points' means over seeds.
    pub fn to_text(&self) -> String {
        let mut header = vec!["trial".to_string()];
        header.extend(self.keys.iter().cloned());
        header.extend(
            ["seed", "valid %", "test %", "time s", "status"]
                .iter()
                .map(|s| s.to_string()),
        );
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let mut cells = vec![r.id.clone()];
                cells.extend(r.values.iter().cloned());
                cells.push(r.seed.to_string());
                cells.push(pct(r.valid_accuracy));
                cells.push(pct(r.test_accuracy));
                cells.push(r.seconds.map(|s| format!("{s:.1}")).unwrap_or_default());
                cells.push(r.status.to_string());
                cells
            })
            .collect();
        let mut out = format!(
            "sweep {:?}: {} of {} trials finished, {:.1} s of training\n\n",
            self.name,
            self.finished,
            self.rows.len(),
            self.train_seconds
        );
        out.push_str(&table(&header, &rows));
        if !self.groups.is_empty() {
            let mut header: Vec<String> = self.keys.clone();
            header.extend(
                ["seeds", "valid % (mean ± std)", "test % (mean ± std)"]
                    .iter()
                    .map(|s| s.to_string()),
            );
            let rows: Vec<Vec<String>> = self
                .groups
                .iter()
                .map(|g| {
                    let mut cells = g.values.clone();
                    cells.push(g.finished.to_string());
                    cells.push(pm(g.valid_mean, g.valid_std));
                    cells.push(pm(g.test_mean, g.test_std));
                    cells
                })
                .collect();
            out.push_str("\nover seeds\n");
            out.push_str(&table(&header, &rows));
        }
        out
    }

    /// The trials as CSV (accuracies as fractions).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("trial,id");
        for k in &self.keys {
            out.push(',');
            out.push_str(&csv_field(k));
        }
        out.push_str(",seed,valid_accuracy,test_accuracy,seconds,status\n");
        let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        for r in &self.rows {
            out.push_str(&format!("{},{}", r.trial, r.id));
            for v in &r.values {
                out.push(',');
                out.push_str(&csv_field(v));
            }
            out.push_str(&format!(
                ",{},{},{},{},{}\n",
                r.seed,
                opt(r.valid_accuracy),
                opt(r.test_accuracy),
                opt(r.seconds),
                r.status
            ));
        }
        out
    }
}

/// The pictures of a report: `report-<key>.png` per swept key, `report-curves.png`.
pub fn pictures(dir: &SweepDir, report: &Report) -> Result<Vec<PathBuf>, PlanError> {
    let io = |path: &std::path::Path, e: lenet_viz::VizError| PlanError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut written = Vec::new();
    let finished: Vec<&Row> = report
        .rows
        .iter()
        .filter(|r| r.test_accuracy.is_some())
        .collect();
    for (k, key) in report.keys.iter().enumerate() {
        let numbers: Option<Vec<f64>> = finished
            .iter()
            .map(|r| {
                toml::from_str::<toml::Table>(&format!("v = {}", r.values[k]))
                    .ok()
                    .and_then(|t| t.get("v").and_then(number))
            })
            .collect();
        let (x_axis, xs): (XAxis, Vec<f64>) = match numbers {
            Some(xs) if !xs.is_empty() => {
                let log = dir.plan.log_keys.contains(key) && xs.iter().all(|&x| x > 0.0);
                (if log { XAxis::Log } else { XAxis::Linear }, xs)
            }
            _ => {
                let mut names: Vec<String> = finished.iter().map(|r| r.values[k].clone()).collect();
                names.sort();
                names.dedup();
                let xs = finished
                    .iter()
                    .map(|r| names.iter().position(|n| n == &r.values[k]).unwrap_or(0) as f64)
                    .collect();
                (XAxis::Categories(names), xs)
            }
        };
        let series = |name: &str, f: fn(&Row) -> Option<f64>| {
            Series::new(
                name,
                finished
                    .iter()
                    .zip(&xs)
                    .filter_map(|(r, &x)| f(r).map(|a| (x, 100.0 * a)))
                    .collect(),
            )
        };
        // The mean of the test accuracy at each value of this key.
        let mut means: Vec<(f64, f64)> = Vec::new();
        let mut seen: Vec<f64> = xs.clone();
        seen.sort_by(f64::total_cmp);
        seen.dedup();
        for x in seen {
            let at: Vec<f64> = finished
                .iter()
                .zip(&xs)
                .filter(|(_, &v)| v == x)
                .filter_map(|(r, _)| r.test_accuracy)
                .collect();
            if let (Some(m), _) = mean_std(&at) {
                means.push((x, 100.0 * m));
            }
        }
        let scatter = Scatter {
            title: format!("sweep {}: accuracy against {key}", report.name),
            x_desc: key.clone(),
            y_desc: "accuracy (%)".into(),
            x_axis,
            points: vec![
                series("test", |r| r.test_accuracy),
                series("best valid", |r| r.valid_accuracy),
            ],
            lines: vec![Series::new("test mean", means)],
        };
        let safe: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.root().join(format!("report-{safe}.png"));
        lenet_viz::write_scatter(&scatter, &path).map_err(|e| io(&path, e))?;
        written.push(path);
    }
    // Every trial's validation curves.
    let mut loss = Vec::new();
    let mut accuracy = Vec::new();
    for t in &dir.plan.trials {
        let rows: Vec<MetricRow> = RunDir::open(&dir.run_dir(t))
            .ok()
            .and_then(|r| r.read_metrics().ok())
            .unwrap_or_default();
        let curve = |key: &str| -> Vec<(f64, f64)> {
            rows.iter()
                .filter(|r| r.split == Subset::Valid)
                .filter_map(|r| r.values.get(key).map(|v| (r.epoch as f64, *v)))
                .collect()
        };
        if rows.is_empty() {
            continue;
        }
        loss.push(Series::new(t.id.clone(), curve("loss")));
        accuracy.push(Series::new(t.id.clone(), curve("accuracy")));
    }
    let curves = Curves {
        title: format!(
            "sweep {}: validation curves of {} trials",
            report.name,
            accuracy.len()
        ),
        loss,
        accuracy,
        learning_rate: None,
    };
    let png = dir.root().join("report-curves.png");
    let svg = dir.root().join("report-curves.svg");
    lenet_viz::write_curves(&curves, &png, &svg).map_err(|e| io(&png, e))?;
    written.push(png);
    Ok(written)
}
