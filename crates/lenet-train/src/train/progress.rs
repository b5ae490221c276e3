//! What the user sees while training, and what the run keeps of it.
//!
//! [`Progress`] is a Burn [`MetricsRenderer`]. It records the per-epoch value of every metric
//! (for `metrics.csv` and `summary.json`), watches the loss of every batch (a non-finite loss
//! stops the run), and either forwards everything to Burn's terminal dashboard or, when stdout is
//! not a terminal, prints one plain line per interval. Burn's own `CliMetricsRenderer` prints a
//! debug dump per batch, which is unreadable in CI logs, hence this renderer.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use burn::train::{Interrupter, LearnerSummary};

use crate::data::Subset;
use crate::run::metrics::MetricRow;

/// The values of one split in one epoch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplitRecord {
    /// Metric name → epoch value (Burn's final value for the epoch).
    pub metrics: BTreeMap<String, f64>,
    /// Items processed.
    pub items: usize,
    /// Wall time of the split.
    pub seconds: f64,
}

/// Per-epoch records, shared between the renderer (inside Burn's training loop) and the caller.
#[derive(Debug, Default)]
pub struct History {
    /// `(epoch, train | valid)` → values.
    pub epochs: BTreeMap<(usize, Subset), SplitRecord>,
    /// Set when a batch's loss was NaN or infinite: `(epoch, batch, value)`.
    pub non_finite: Option<(usize, usize, f64)>,
    /// The last training batch processed: `(epoch, batch)`.
    pub last_train_batch: Option<(usize, usize)>,
    /// The last epoch that ended (trained and, where there is a validation split, validated);
    /// 0 before the first.
    pub completed: usize,
}

impl History {
    /// The `metrics.csv` rows of the epochs recorded: Burn's metrics under lenet's column names,
    /// with each split's throughput and time.
    pub fn rows(&self) -> Vec<MetricRow> {
        self.epochs
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
                    split: *split,
                    values,
                }
            })
            .collect()
    }

    /// Training images and seconds over the recorded epochs.
    pub fn training_throughput(&self) -> (usize, f64) {
        self.epochs
            .iter()
            .filter(|((_, s), _)| *s == Subset::Train)
            .fold((0, 0.0), |(n, t), (_, r)| (n + r.items, t + r.seconds))
    }
}

/// Burn's metric name as a CSV column: `Learning Rate` → `learning_rate`, and its top-k accuracy
/// (`Top-K Accuracy @ TopK(5)`) → `top_5_accuracy`.
pub(crate) fn column(name: &str) -> String {
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

/// Burn's value of metric `name` in `metrics.csv`'s units: Burn reports accuracies in percent,
/// lenet keeps fractions in [0, 1].
pub(crate) fn in_csv_units(name: &str, value: f64) -> f64 {
    if name.contains("Accuracy") {
        value * 0.01
    } else {
        value
    }
}

/// How progress is shown.
pub enum Display {
    /// Nothing (`--quiet`).
    Quiet,
    /// One line per interval on stdout.
    Lines,
    /// Burn's terminal dashboard.
    Dashboard(Box<dyn MetricsRenderer>),
}

/// The renderer given to Burn's training loop.
pub struct Progress {
    display: Display,
    history: Arc<Mutex<History>>,
    interrupter: Interrupter,
    names: HashMap<MetricId, String>,
    total_epochs: usize,
    epoch: usize,
    split: Subset,
    split_items: usize,
    split_start: Instant,
    processed: usize,
    batches: usize,
    last_line: Instant,
    running_loss: (f64, usize),
    running_acc: (f64, usize),
    interval: Duration,
    on_epoch_end: Option<EpochHook>,
}

/// Called at the end of every epoch with the history so far (writes metrics and curves).
pub type EpochHook = Box<dyn FnMut(&History) + Send + Sync>;

impl Progress {
    /// A renderer recording into `history`, stopping through `interrupter` on a non-finite loss.
    pub fn new(display: Display, history: Arc<Mutex<History>>, interrupter: Interrupter) -> Self {
        Progress {
            display,
            history,
            interrupter,
            names: HashMap::new(),
            total_epochs: 0,
            epoch: 1,
            split: Subset::Train,
            split_items: 0,
            split_start: Instant::now(),
            processed: 0,
            batches: 0,
            last_line: Instant::now(),
            running_loss: (0.0, 0),
            running_acc: (0.0, 0),
            interval: Duration::from_secs(5),
            on_epoch_end: None,
        }
    }

    /// Calls `hook` at the end of every epoch, after its metrics are recorded.
    pub fn on_epoch_end(mut self, hook: EpochHook) -> Self {
        self.on_epoch_end = Some(hook);
        self
    }

    fn record(&mut self, state: &MetricState) {
        let MetricState::Numeric(entry, Some(value)) = state else {
            return;
        };
        let Some(name) = self.names.get(&entry.metric_id).cloned() else {
            return;
        };
        match value {
            NumericEntry::Final(v) => {
                let v = in_csv_units(&name, *v);
                if let Ok(mut h) = self.history.lock() {
                    h.epochs
                        .entry((self.epoch, self.split))
                        .or_default()
                        .metrics
                        .insert(name, v);
                }
            }
            NumericEntry::Value(v)
            | NumericEntry::Aggregated {
                aggregated_value: v,
                ..
            } => {
                let v = &in_csv_units(&name, *v);
                if name == "Loss" {
                    if !v.is_finite() {
                        if let Ok(mut h) = self.history.lock() {
                            if h.non_finite.is_none() {
                                h.non_finite = Some((self.epoch, self.batches + 1, *v));
                            }
                        }
                        self.interrupter.stop(Some("non-finite loss"));
                    }
                    self.running_loss.0 += v;
                    self.running_loss.1 += 1;
                } else if name == "Accuracy" {
                    self.running_acc.0 += v;
                    self.running_acc.1 += 1;
                }
            }
        }
    }

    fn line(&mut self, force: bool) {
        if !matches!(self.display, Display::Lines) {
            return;
        }
        if !force && self.last_line.elapsed() < self.interval {
            return;
        }
        self.last_line = Instant::now();
        let elapsed = self.split_start.elapsed().as_secs_f64();
        let rate = self.processed as f64 / elapsed.max(1e-9);
        let left = self.split_items.saturating_sub(self.processed) as f64 / rate.max(1e-9);
        let mean = |(s, n): (f64, usize)| if n == 0 { f64::NAN } else { s / n as f64 };
        println!(
            "epoch {}/{} {:<5} {:>6}/{} images  loss {:.4}  acc {:.2}%  {:.0} img/s  ETA {}",
            self.epoch,
            self.total_epochs,
            self.split.name(),
            self.processed,
            self.split_items,
            mean(self.running_loss),
            100.0 * mean(self.running_acc),
            rate,
            clock(left)
        );
    }

    fn dashboard(&mut self) -> Option<&mut Box<dyn MetricsRenderer>> {
        match &mut self.display {
            Display::Dashboard(r) => Some(r),
            _ => None,
        }
    }
}

/// `75.4` → `1:15`.
pub fn clock(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "?".into();
    }
    let s = seconds.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

impl MetricsRendererTraining for Progress {
    fn update_train(&mut self, state: MetricState) {
        self.record(&state);
        if let Some(r) = self.dashboard() {
            r.update_train(state);
        }
    }

    fn update_valid(&mut self, state: MetricState) {
        self.record(&state);
        if let Some(r) = self.dashboard() {
            r.update_valid(state);
        }
    }

    fn on_train_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        match self.dashboard() {
            Some(r) => r.on_train_end(summary),
            None => Ok(()),
        }
    }
}

impl TrainingProgressLogger for Progress {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        total_items: Option<usize>,
        label: Option<&str>,
    ) {
        self.total_epochs = total_epochs;
        self.epoch = starting_epoch.max(1);
        if let Some(r) = self.dashboard() {
            r.start(total_epochs, starting_epoch, total_items, label);
        }
    }

    fn update_epoch(&mut self, epoch: usize) {
        if matches!(self.display, Display::Lines) {
            let h = self.history.lock().ok();
            if let Some(h) = h {
                let get = |split: Subset, m: &str| {
                    h.epochs
                        .get(&(self.epoch, split))
                        .and_then(|r| r.metrics.get(m).copied())
                        .unwrap_or(f64::NAN)
                };
                let train = h.epochs.get(&(self.epoch, Subset::Train));
                let rate = train
                    .map(|t| t.items as f64 / t.seconds.max(1e-9))
                    .unwrap_or(f64::NAN);
                let valid = match h.epochs.get(&(self.epoch, Subset::Valid)) {
                    Some(v) if !v.metrics.is_empty() => format!(
                        "valid loss {:.4} acc {:.2}%",
                        get(Subset::Valid, "Loss"),
                        100.0 * get(Subset::Valid, "Accuracy")
                    ),
                    _ => "no validation split".to_string(),
                };
                println!(
                    "epoch {}/{} done: train loss {:.4} acc {:.2}% | {valid} | {:.0} img/s, {:.1} s",
                    self.epoch,
                    self.total_epochs,
                    get(Subset::Train, "Loss"),
                    100.0 * get(Subset::Train, "Accuracy"),
                    rate,
                    train.map(|t| t.seconds).unwrap_or(f64::NAN)
                );
            }
        }
        if let Ok(mut h) = self.history.lock() {
            h.completed = h.completed.max(self.epoch);
        }
        if let Some(hook) = &mut self.on_epoch_end {
            if let Ok(h) = self.history.lock() {
                hook(&h);
            }
        }
        self.epoch = epoch + 1;
        if let Some(r) = self.dashboard() {
            r.update_epoch(epoch);
        }
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        // Burn names its splits `Train` and `Valid`.
        self.split = if split.eq_ignore_ascii_case("train") {
            Subset::Train
        } else {
            Subset::Valid
        };
        self.split_items = total_items;
        self.split_start = Instant::now();
        self.last_line = Instant::now();
        self.processed = 0;
        self.batches = 0;
        self.running_loss = (0.0, 0);
        self.running_acc = (0.0, 0);
        if let Some(r) = self.dashboard() {
            r.start_split(split, total_items);
        }
    }

    fn update_split(&mut self, items_processed: usize) {
        self.processed = items_processed;
        self.batches += 1;
        if self.split == Subset::Train {
            if let Ok(mut h) = self.history.lock() {
                h.last_train_batch = Some((self.epoch, self.batches));
            }
        }
        self.line(false);
        if let Some(r) = self.dashboard() {
            r.update_split(items_processed);
        }
    }

    fn end_split(&mut self) {
        let seconds = self.split_start.elapsed().as_secs_f64();
        if let Ok(mut h) = self.history.lock() {
            let rec = h.epochs.entry((self.epoch, self.split)).or_default();
            rec.items = self.processed;
            rec.seconds = seconds;
        }
        if let Some(r) = self.dashboard() {
            r.end_split();
        }
    }

    fn end(&mut self) {
        if let Some(r) = self.dashboard() {
            r.end();
        }
    }

    fn log_event_training(&mut self, event: String) {
        if let Some(r) = self.dashboard() {
            r.log_event_training(event);
        }
    }
}

impl EvaluationProgressLogger for Progress {
    fn start_global_progress(&mut self, total_tests: usize) {
        if let Some(r) = self.dashboard() {
            r.start_global_progress(total_tests);
        }
    }

    fn start_test(&mut self, name: &str, total_items: usize) {
        if let Some(r) = self.dashboard() {
            r.start_test(name, total_items);
        }
    }

    fn update_test_progress(&mut self, items_processed: usize) {
        if let Some(r) = self.dashboard() {
            r.update_test_progress(items_processed);
        }
    }

    fn end_test(&mut self) {
        if let Some(r) = self.dashboard() {
            r.end_test();
        }
    }

    fn end_global_progress(&mut self) {
        if let Some(r) = self.dashboard() {
            r.end_global_progress();
        }
    }

    fn log_event_evaluation(&mut self, event: String) {
        if let Some(r) = self.dashboard() {
            r.log_event_evaluation(event);
        }
    }
}

impl MetricsRendererEvaluation for Progress {
    fn update_test(&mut self, name: EvaluationName, state: MetricState) {
        if let Some(r) = self.dashboard() {
            r.update_test(name, state);
        }
    }
}

impl MetricsRenderer for Progress {
    fn manual_close(&mut self) {
        if let Some(r) = self.dashboard() {
            r.manual_close();
        }
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.to_string());
        if let Some(r) = self.dashboard() {
            r.register_metric(definition);
        }
    }
}
