//! What burn-train's metric store reads back: each metric's figure per split and epoch, kept in
//! memory, with the epochs of earlier sessions of a resumed run taken from `metrics.csv`.
//!
//! burn-train reads the store to keep the best epoch's checkpoint (validation accuracy, every
//! epoch) and for early stopping. Its default, `FileMetricLogger`, writes every batch's value of
//! every metric to a file of its own (`train/epoch-N/Loss.log`, ...) through a thread per file:
//! on the 2-core machine that was ~14 thread switches a training step (55,500 in three epochs of
//! `configs/lenet5.toml`, 19,000 with the store in memory) and an epoch 1.14× its raw steps
//! against 1.09× (medians of ten alternating rounds of `lenet bench --train --epoch`,
//! 2026-12-03). lenet keeps its metrics in `metrics.csv`; nothing reads those files.

use std::collections::HashMap;

use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};

use crate::data::Subset;
use crate::run::metrics::MetricRow;
use crate::train::progress::{column, in_csv_units};

/// A metric's figure for one epoch of one split, in `metrics.csv`'s units (accuracies as
/// fractions): the epoch's final value once logged, else the mean of its batches so far.
#[derive(Debug, Default, Clone, Copy)]
struct Figure {
    sum: f64,
    count: usize,
    last: Option<f64>,
}

/// The store's metric logger (see the module's documentation).
#[derive(Debug, Default)]
pub struct EpochLog {
    /// Burn's metric id → its name.
    names: HashMap<MetricId, String>,
    /// `(metrics.csv column, split, epoch)` → figure.
    figures: HashMap<(String, Subset, usize), Figure>,
}

impl EpochLog {
    /// A log that already holds `earlier`, the rows of the epochs done in earlier sessions.
    pub fn new(earlier: &[MetricRow]) -> EpochLog {
        let figures = earlier
            .iter()
            .flat_map(|row| {
                row.values.iter().map(|(col, &v)| {
                    let figure = Figure {
                        last: Some(v),
                        ..Figure::default()
                    };
                    ((col.clone(), row.split, row.epoch), figure)
                })
            })
            .collect();
        EpochLog {
            names: HashMap::new(),
            figures,
        }
    }
}

/// lenet's name for Burn's training and validation splits (other splits are not kept).
fn subset(split: &Split) -> Option<Subset> {
    match split {
        Split::Train => Some(Subset::Train),
        Split::Valid => Some(Subset::Valid),
        Split::Test(_) => None,
    }
}

impl MetricLogger for EpochLog {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let Some(subset) = subset(split) else { return };
        for u in &update.entries_numeric {
            let Some(name) = self.names.get(&u.entry.metric_id) else {
                continue;
            };
            // The serialized entry is what Burn's file logger writes and reads back.
            let Ok(entry) = NumericEntry::deserialize(&u.entry.serialized_entry.serialized) else {
                continue;
            };
            let key = (column(name), subset, epoch);
            let figure = self.figures.entry(key).or_default();
            match entry {
                NumericEntry::Value(v) => {
                    figure.sum += in_csv_units(name, v);
                    figure.count += 1;
                }
                NumericEntry::Aggregated {
                    aggregated_value,
                    count,
                } => {
                    figure.sum += in_csv_units(name, aggregated_value) * count as f64;
                    figure.count += count;
                }
                NumericEntry::Final(v) => figure.last = Some(in_csv_units(name, v)),
            }
        }
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        let figure = subset(split).and_then(|s| self.figures.get(&(column(name), s, epoch)));
        Ok(match figure {
            Some(Figure { last: Some(v), .. }) => vec![NumericEntry::Final(*v)],
            Some(f) if f.count > 0 => vec![NumericEntry::Aggregated {
                aggregated_value: f.sum / f.count as f64,
                count: f.count,
            }],
            _ => Vec::new(),
        })
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id, definition.name.to_string());
    }

    fn log_epoch_summary(&mut self, _summary: EpochSummary) {}
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use burn::train::metric::store::NumericMetricUpdate;
    use burn::train::metric::{MetricEntry, SerializedEntry};

    use super::*;

    fn define(log: &mut EpochLog, name: &str) -> MetricId {
        let id = MetricId::new(Arc::new(name.to_string()));
        log.names.insert(id.clone(), name.to_string());
        id
    }

    fn update(id: &MetricId, entry: NumericEntry) -> MetricsUpdate {
        let serialized = SerializedEntry::new(String::new(), entry.serialize());
        MetricsUpdate::new(
            Vec::new(),
            vec![NumericMetricUpdate {
                entry: MetricEntry::new(id.clone(), serialized),
                numeric_entry: None,
                running_entry: None,
            }],
        )
    }

    fn read(log: &mut EpochLog, name: &str, epoch: usize, split: Split) -> Vec<f64> {
        log.read_numeric(name, epoch, &split)
            .unwrap()
            .iter()
            .map(|e| match e {
                NumericEntry::Final(v) => *v,
                other => -other.current(),
            })
            .collect()
    }

    /// Batches are averaged by their counts until the epoch's final value comes; accuracies
    /// are kept as fractions, like `metrics.csv`; splits and epochs are apart.
    #[test]
    fn an_epoch_reads_back_its_batches_mean_then_its_final_value() {
        let mut log = EpochLog::new(&[]);
        let acc = define(&mut log, "Accuracy");
        let loss = define(&mut log, "Loss");
        let batch = |value, count| NumericEntry::Aggregated {
            aggregated_value: value,
            count,
        };
        log.log(update(&acc, batch(50.0, 64)), 1, &Split::Train);
        log.log(update(&acc, batch(100.0, 32)), 1, &Split::Train);
        log.log(update(&loss, batch(2.5, 1)), 1, &Split::Train);
        // (0.5·64 + 1.0·32) / 96 = 2/3, read as an aggregate (negated by `read`).
        assert_eq!(read(&mut log, "Accuracy", 1, Split::Train), [-(2.0 / 3.0)]);
        assert_eq!(read(&mut log, "Loss", 1, Split::Train), [-2.5]);
        log.log(update(&acc, NumericEntry::Final(62.5)), 1, &Split::Train);
        assert_eq!(read(&mut log, "Accuracy", 1, Split::Train), [0.625]);
        assert!(read(&mut log, "Accuracy", 1, Split::Valid).is_empty());
        assert!(read(&mut log, "Accuracy", 2, Split::Train).is_empty());
        assert!(read(&mut log, "Accuracy", 1, Split::Test(None)).is_empty());
        // An entry of a metric never defined is not kept.
        let unknown = MetricId::new(Arc::new("Unknown".to_string()));
        log.log(update(&unknown, NumericEntry::Final(1.0)), 1, &Split::Train);
        assert!(read(&mut log, "Unknown", 1, Split::Train).is_empty());
    }

    /// A resumed run's earlier epochs come from its `metrics.csv` rows, under Burn's names.
    #[test]
    fn earlier_sessions_epochs_come_from_the_metrics_rows() {
        let row = |epoch, split, acc| MetricRow {
            epoch,
            split,
            values: BTreeMap::from([
                ("accuracy".to_string(), acc),
                ("top_5_accuracy".to_string(), 0.99),
            ]),
        };
        let mut log = EpochLog::new(&[
            row(1, Subset::Train, 0.9),
            row(1, Subset::Valid, 0.95),
            row(2, Subset::Valid, 0.97),
        ]);
        assert_eq!(read(&mut log, "Accuracy", 1, Split::Valid), [0.95]);
        assert_eq!(read(&mut log, "Accuracy", 2, Split::Valid), [0.97]);
        assert_eq!(read(&mut log, "Accuracy", 1, Split::Train), [0.9]);
        assert_eq!(
            read(&mut log, "Top-K Accuracy @ TopK(5)", 1, Split::Valid),
            [0.99]
        );
        assert!(read(&mut log, "Accuracy", 3, Split::Valid).is_empty());
        // This session's epoch 3 goes beside them, in the same units.
        let acc = define(&mut log, "Accuracy");
        log.log(update(&acc, NumericEntry::Final(96.0)), 3, &Split::Valid);
        let got = read(&mut log, "Accuracy", 3, Split::Valid);
        assert!(got.len() == 1 && (got[0] - 0.96).abs() < 1e-12, "{got:?}");
    }
}
