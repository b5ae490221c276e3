//! The training loop's metrics (accuracy, top-k accuracy, loss) computed on the host from one
//! read of each batch's scores.
//!
//! Burn's `AccuracyMetric`, `TopKAccuracyMetric` and `LossMetric` compute with tensor ops
//! (`argmax`, `argsort`, `equal`, `sum`, then a read of the result) on burn-train's metrics
//! thread, every batch: ~110 µs of CPU a step on the 2-core machine (`perf record` of `lenet
//! train`, 2026-12-02), taken from the two threads that run the step (~1.3 ms at batch 64).
//! Here each metric reads the batch's `[batch, classes]` scores (or the loss) once and counts
//! on the host, which is what a batch of 64 × 10 numbers needs. The names, values and running
//! means are Burn's, so `metrics.csv`, checkpoint selection by `"Accuracy"` and early stopping
//! see the same figures. Measured (2026-12-03): the metrics thread's own work fell to ~0.1 % of
//! the samples of `lenet train`; the epoch's time did not move beyond the machine's noise (its
//! wake-ups, not its arithmetic, were the cost: `train::epoch_log`).

use std::sync::Arc;

use burn::tensor::{Int, Tensor, TensorReadError};
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Adaptor, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes,
    NumericEntry, SerializedEntry,
};
use burn::train::ClassificationOutput;

/// What the metrics read of a batch: its scores, targets and loss (shared handles, no copy).
pub struct BatchScores {
    scores: Tensor<2>,
    targets: Tensor<1, Int>,
    loss: Tensor<1>,
}

impl Adaptor<BatchScores> for ClassificationOutput {
    fn adapt(&self) -> BatchScores {
        BatchScores {
            scores: self.output.clone(),
            targets: self.targets.clone(),
            loss: self.loss.clone(),
        }
    }
}

impl BatchScores {
    /// The scores (row-major, `classes` to a row), the targets and the number of classes.
    fn read(&self) -> Result<(Vec<f32>, Vec<i64>, usize), TensorReadError> {
        let [_, classes] = self.scores.dims();
        let scores = self.scores.clone().try_into_vec_as::<f32>()?;
        let targets = self.targets.clone().try_into_vec_as::<i64>()?;
        Ok((scores, targets, classes))
    }
}

/// Whether the target is among the `k` highest scores of its row: its rank is the number of
/// scores above it plus the number of equal scores at lower indices (a stable descending sort's
/// order, which is Burn's `argsort_descending`'s). A NaN target score or a target outside the
/// row is a miss.
pub fn in_top_k(row: &[f32], target: i64, k: usize) -> bool {
    let Some(&own) = usize::try_from(target).ok().and_then(|t| row.get(t)) else {
        return false;
    };
    if own.is_nan() {
        return false;
    }
    let t = target as usize;
    let rank = row
        .iter()
        .enumerate()
        .filter(|&(j, &s)| s > own || (s == own && j < t))
        .count();
    rank < k
}

/// The fraction of rows (as a percentage) whose target is in their top `k`, and the row count.
fn top_k_percent(scores: &[f32], targets: &[i64], classes: usize, k: usize) -> (f64, usize) {
    let rows = targets.len();
    if rows == 0 || classes == 0 {
        return (f64::NAN, 0);
    }
    let hits = scores
        .chunks_exact(classes)
        .zip(targets)
        .filter(|&(row, &t)| in_top_k(row, t, k))
        .count();
    (100.0 * (hits as f64 / rows as f64), rows)
}

/// What a [`ScoreMetric`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    /// The share of images whose target is among their `k` highest scores, in percent.
    TopK(usize),
    /// The batch's loss, each batch's mean counted once (as Burn's `LossMetric` does).
    Loss,
}

/// Accuracy, top-k accuracy or loss, under Burn's names and units (see the module's
/// documentation).
#[derive(Clone)]
pub struct ScoreMetric {
    name: MetricName,
    measure: Measure,
    state: NumericMetricState,
}

impl ScoreMetric {
    fn new(name: String, measure: Measure) -> ScoreMetric {
        ScoreMetric {
            name: Arc::new(name),
            measure,
            state: NumericMetricState::default(),
        }
    }

    /// Top-1 accuracy, named `"Accuracy"`.
    pub fn accuracy() -> ScoreMetric {
        ScoreMetric::new("Accuracy".into(), Measure::TopK(1))
    }

    /// Top-`k` accuracy, named as Burn names it (`"Top-K Accuracy @ TopK(5)"` for 5).
    pub fn top_k(k: usize) -> ScoreMetric {
        ScoreMetric::new(format!("Top-K Accuracy @ TopK({k})"), Measure::TopK(k))
    }

    /// The loss, named `"Loss"`.
    pub fn loss() -> ScoreMetric {
        ScoreMetric::new("Loss".into(), Measure::Loss)
    }

    /// Burn's formatting: accuracies in percent.
    fn format(&self) -> FormatOptions {
        let format = FormatOptions::new(self.name()).precision(2);
        match self.measure {
            Measure::TopK(_) => format.unit("%"),
            Measure::Loss => format,
        }
    }
}

impl Metric for ScoreMetric {
    type Input = BatchScores;

    fn update(
        &mut self,
        input: &BatchScores,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        let (value, count) = match self.measure {
            Measure::TopK(k) => {
                let (scores, targets, classes) = input.read()?;
                top_k_percent(&scores, &targets, classes, k)
            }
            Measure::Loss => {
                // The mean of the loss tensor, counted as many times as it has values (once
                // for the batch's mean loss).
                let values = input.loss.clone().try_into_vec_as::<f64>()?;
                (
                    values.iter().sum::<f64>() / values.len() as f64,
                    values.len(),
                )
            }
        };
        self.state.update(value, count);
        Ok(self.state.compute_update(self.format()))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self.state.compute_final(self.format()))
    }

    fn clear(&mut self) {
        self.state.reset()
    }

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        let accuracy = matches!(self.measure, Measure::TopK(_));
        NumericAttributes {
            unit: accuracy.then(|| "%".to_string()),
            higher_is_better: accuracy,
        }
        .into()
    }
}

impl Numeric for ScoreMetric {
    fn value(&self) -> Option<NumericEntry> {
        Some(self.state.current_value())
    }

    fn running_value(&self) -> Option<NumericEntry> {
        Some(self.state.running_value())
    }

    fn final_value(&self) -> NumericEntry {
        self.state.final_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::data::dataloader::Progress;
    use burn::tensor::TensorData;
    use burn::train::metric::{AccuracyMetric, LossMetric, TopKAccuracyMetric};

    use crate::{select_one, BackendKind};

    /// Burn's `MetricMetadata::fake` is test-only in burn-train.
    fn meta() -> MetricMetadata {
        MetricMetadata {
            progress: Progress {
                items_processed: 1,
                items_total: 1,
                unit: None,
            },
            iteration: Some(0),
            lr: None,
        }
    }

    fn output(
        scores: Vec<f32>,
        classes: usize,
        targets: Vec<i64>,
        loss: f32,
    ) -> ClassificationOutput {
        let device = select_one(BackendKind::Flex, None)
            .unwrap()
            .device()
            .clone();
        let rows = targets.len();
        ClassificationOutput::new(
            Tensor::from_data(TensorData::new(vec![loss], [1]), &device),
            Tensor::from_data(TensorData::new(scores, [rows, classes]), &device),
            Tensor::from_data(TensorData::new(targets, [rows]), &device),
        )
    }

    /// Ranks counted by hand: row [0.1, 0.5, 0.5, 0.2, 0.9]: 4 is first, then 1 and 2 (equal,
    /// the lower index first), then 3, then 0.
    #[test]
    fn top_k_membership_follows_a_stable_descending_order() {
        let row = [0.1, 0.5, 0.5, 0.2, 0.9];
        assert!(in_top_k(&row, 4, 1));
        assert!(!in_top_k(&row, 1, 1));
        assert!(in_top_k(&row, 1, 2));
        assert!(!in_top_k(&row, 2, 2), "the tie goes to the lower index");
        assert!(in_top_k(&row, 2, 3));
        assert!(!in_top_k(&row, 0, 4));
        assert!(in_top_k(&row, 0, 5));
        assert!(!in_top_k(&row, 5, 5), "a target outside the row is a miss");
        assert!(!in_top_k(&row, -1, 5));
        assert!(!in_top_k(&[f32::NAN, 0.0], 0, 2), "a NaN score is a miss");
    }

    /// Burn's accuracy test's batch: 2 of 4 right (50 %), worked by hand in Burn's source.
    #[test]
    fn accuracy_of_burns_example_is_fifty_percent() {
        let out = output(
            vec![0.0, 0.2, 0.8, 1.0, 2.0, 0.5, 0.4, 0.1, 0.2, 0.6, 0.7, 0.2],
            3,
            vec![2, 2, 1, 1],
            0.0,
        );
        let mut m = ScoreMetric::accuracy();
        m.update(&out.adapt(), &meta()).unwrap();
        assert_eq!(m.value().unwrap().current(), 50.0);
        // Top 2 of the same rows: rows 1 and 2 have their target's score last of 3; top 3
        // holds every target.
        for (k, percent) in [(2, 50.0), (3, 100.0)] {
            let mut m = ScoreMetric::top_k(k);
            m.update(&out.adapt(), &meta()).unwrap();
            assert_eq!(m.value().unwrap().current(), percent, "top {k}");
        }
        // A second batch, all wrong: the epoch's figure is over both batches' rows.
        let wrong = output(vec![1.0, 0.0, 0.0, 1.0], 2, vec![1, 0], 0.0);
        let mut m = ScoreMetric::accuracy();
        m.update(&out.adapt(), &meta()).unwrap();
        m.update(&wrong.adapt(), &meta()).unwrap();
        assert_eq!(m.value().unwrap().current(), 0.0);
        assert_eq!(m.running_value().unwrap().current(), 100.0 * 2.0 / 6.0);
    }

    /// The host metrics give Burn's metrics' values, per batch and over batches, on random
    /// scores with a batch size that does not divide evenly.
    #[test]
    fn host_metrics_agree_with_burns() {
        let mut state = 12345u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        let classes = 10;
        let mut burn_acc = AccuracyMetric::new();
        let mut burn_top5 = TopKAccuracyMetric::new(5);
        let mut burn_loss = LossMetric::new();
        let mut acc = ScoreMetric::accuracy();
        let mut top5 = ScoreMetric::top_k(5);
        let mut loss = ScoreMetric::loss();
        for rows in [64, 64, 17] {
            let scores: Vec<f32> = (0..rows * classes)
                .map(|_| (next() % 1000) as f32 / 100.0 - 5.0)
                .collect();
            let targets: Vec<i64> = (0..rows).map(|_| i64::from(next() % 10)).collect();
            let out = output(scores, classes, targets, (next() % 1000) as f32 / 300.0);
            let md = meta();
            burn_acc.update(&out.adapt(), &md).unwrap();
            burn_top5.update(&out.adapt(), &md).unwrap();
            burn_loss.update(&out.adapt(), &md).unwrap();
            acc.update(&out.adapt(), &md).unwrap();
            top5.update(&out.adapt(), &md).unwrap();
            loss.update(&out.adapt(), &md).unwrap();
            let now = |m: &dyn Numeric| m.value().unwrap().current();
            assert_eq!(now(&acc), now(&burn_acc), "accuracy, batch of {rows}");
            assert_eq!(now(&top5), now(&burn_top5), "top 5, batch of {rows}");
            assert_eq!(now(&loss), now(&burn_loss), "loss, batch of {rows}");
        }
        let epoch = |m: &dyn Numeric| m.running_value().unwrap().current();
        assert_eq!(epoch(&acc), epoch(&burn_acc));
        assert_eq!(epoch(&top5), epoch(&burn_top5));
        assert_eq!(epoch(&loss), epoch(&burn_loss));
        assert_eq!(acc.name(), burn_acc.name());
        assert_eq!(top5.name(), burn_top5.name());
        assert_eq!(loss.name(), burn_loss.name());
    }
}
