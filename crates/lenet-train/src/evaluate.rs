//! Evaluating a network on a set of images: accuracy, loss, top-k, per-class precision, recall
//! and F1, and the confusion matrix (burn-train has no confusion-matrix metric, so the counts are
//! made here, from the logits of every image; the numbers are exact counts, not batch averages).

use burn::tensor::Device;
use lenet_model::ConvNet;
use serde::Serialize;

use crate::data::{ImageBatcher, ImageItem};

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// Class index.
    pub class: usize,
    /// Class name.
    pub name: String,
    /// Of the images predicted as this class, the fraction that are.
    pub precision: f64,
    /// Of the images of this class, the fraction predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Images of this class.
    pub support: usize,
}

/// One image's outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Index in the dataset.
    pub index: usize,
    /// True class.
    pub label: usize,
    /// Predicted class.
    pub predicted: usize,
    /// Probability of the predicted class.
    pub probability: f32,
}

/// The evaluation of a network on a set of images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Correct predictions / images, in [0, 1].
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Images evaluated.
    pub num_samples: usize,
    /// Correct predictions.
    pub correct: usize,
    /// Fraction whose true class is among the 5 most probable (when there are more than 5 classes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top5_accuracy: Option<f64>,
    /// Per-class metrics.
    pub per_class: Vec<ClassMetrics>,
    /// Mean of the per-class precisions.
    pub macro_precision: f64,
    /// Mean of the per-class recalls.
    pub macro_recall: f64,
    /// Mean of the per-class F1 scores.
    pub macro_f1: f64,
    /// `confusion_matrix[true][predicted]` counts.
    pub confusion_matrix: Vec<Vec<usize>>,
    /// Every image's outcome, in evaluation order.
    #[serde(skip)]
    pub predictions: Vec<Prediction>,
}

/// The network's output could not be read back from the device.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the network's output from the device: {0}")]
pub struct EvalError(pub String);

/// Log-softmax of one row of logits, in f64.
fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let sum: f64 = row.iter().map(|&v| (f64::from(v) - max).exp()).sum();
    let log_sum = max + sum.ln();
    row.iter().map(|&v| f64::from(v) - log_sum).collect()
}

/// An RBF output's MAP criterion for one row of scores `z = −y` and class `label`:
/// `−z_c + log(e^(−j) + Σ_i e^(z_i))`, the cross-entropy over the scores and one more, `−j`.
fn map_loss_of_row(row: &[f32], label: usize) -> f64 {
    let mut extended = row.to_vec();
    extended.push(-lenet_model::rbf::MAP_J);
    -log_softmax(&extended)
        .get(label)
        .copied()
        .unwrap_or(f64::NEG_INFINITY)
}

/// Evaluates `net` on the images `indices` of the batcher's dataset, in batches of `batch_size`.
pub fn evaluate(
    net: &ConvNet,
    batcher: &ImageBatcher,
    indices: &[usize],
    device: &Device,
    batch_size: usize,
) -> Result<Evaluation, EvalError> {
    let data = batcher.dataset();
    let classes = data.num_classes();
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut loss_sum = 0.0;
    let mut top5 = 0usize;
    let mut predictions = Vec::with_capacity(indices.len());
    let rbf = matches!(net.output, lenet_model::Output::Rbf(_));
    for chunk in indices.chunks(batch_size.max(1)) {
        let items: Vec<ImageItem> = chunk.iter().map(|&index| ImageItem::plain(index)).collect();
        let batch = batcher.make_batch(&items, device);
        let logits: Vec<f32> = net
            .forward_2d(batch.images)
            .to_data()
            .convert::<f32>()
            .try_to_vec()
            .map_err(|e| EvalError(format!("{e:?}")))?;
        let width = logits.len() / chunk.len().max(1);
        for (row, &index) in logits.chunks_exact(width.max(1)).zip(chunk) {
            let label = usize::from(data.labels[index]);
            let lp = log_softmax(row);
            // The loss training minimises: cross-entropy, or an RBF output's MAP criterion.
            loss_sum += match rbf {
                true => map_loss_of_row(row, label),
                false => -lp.get(label).copied().unwrap_or(f64::NEG_INFINITY),
            };
            // The first maximum wins ties, like argmax.
            let predicted = lp
                .iter()
                .enumerate()
                .fold(0, |best, (c, &v)| if v > lp[best] { c } else { best });
            let better = lp.iter().filter(|&&v| v > lp[label]).count();
            if better < 5 {
                top5 += 1;
            }
            if label < classes && predicted < classes {
                confusion[label][predicted] += 1;
            }
            predictions.push(Prediction {
                index,
                label,
                predicted,
                probability: lp[predicted].exp() as f32,
            });
        }
    }
    Ok(summarize(
        confusion,
        &data.class_names,
        loss_sum,
        top5,
        predictions,
    ))
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn summarize(
    confusion: Vec<Vec<usize>>,
    names: &[String],
    loss_sum: f64,
    top5: usize,
    predictions: Vec<Prediction>,
) -> Evaluation {
    let classes = confusion.len();
    let n: usize = confusion.iter().flatten().sum();
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    let per_class: Vec<ClassMetrics> = (0..classes)
        .map(|c| {
            let tp = confusion[c][c];
            let support: usize = confusion[c].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[c]).sum();
            let precision = ratio(tp, predicted);
            let recall = ratio(tp, support);
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassMetrics {
                class: c,
                name: names.get(c).cloned().unwrap_or_else(|| c.to_string()),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let mean =
        |f: fn(&ClassMetrics) -> f64| per_class.iter().map(f).sum::<f64>() / classes.max(1) as f64;
    Evaluation {
        accuracy: ratio(correct, n),
        loss: if n == 0 { 0.0 } else { loss_sum / n as f64 },
        num_samples: n,
        correct,
        top5_accuracy: (classes > 5).then(|| ratio(top5, n)),
        macro_precision: mean(|m| m.precision),
        macro_recall: mean(|m| m.recall),
        macro_f1: mean(|m| m.f1),
        per_class,
        confusion_matrix: confusion,
        predictions,
    }
}

impl Evaluation {
    /// An aligned text report: totals, the per-class table and the confusion matrix.
    pub fn to_table(&self) -> String {
        let mut s = format!(
            "accuracy {:.2}% ({} / {})   loss {:.4}",
            100.0 * self.accuracy,
            self.correct,
            self.num_samples,
            self.loss
        );
        if let Some(t) = self.top5_accuracy {
            s.push_str(&format!("   top-5 {:.2}%", 100.0 * t));
        }
        s.push_str("\n\n");
        let w = self
            .per_class
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        s.push_str(&format!(
            "{:<w$}  precision  recall     f1  support\n",
            "class"
        ));
        for c in &self.per_class {
            s.push_str(&format!(
                "{:<w$}  {:>9.4}  {:>6.4}  {:>5.4}  {:>7}\n",
                c.name, c.precision, c.recall, c.f1, c.support
            ));
        }
        s.push_str(&format!(
            "{:<w$}  {:>9.4}  {:>6.4}  {:>5.4}  {:>7}\n\n",
            "macro", self.macro_precision, self.macro_recall, self.macro_f1, self.num_samples
        ));
        s.push_str("confusion matrix (rows = true class, columns = predicted)\n");
        let cw = self
            .confusion_matrix
            .iter()
            .flatten()
            .map(|v| v.to_string().len())
            .max()
            .unwrap_or(1)
            .max(self.per_class.len().to_string().len());
        s.push_str(&format!("{:>w$} ", ""));
        for c in 0..self.confusion_matrix.len() {
            s.push_str(&format!(" {c:>cw$}"));
        }
        s.push('\n');
        for (c, row) in self.confusion_matrix.iter().enumerate() {
            let name = self.per_class.get(c).map(|m| m.name.as_str()).unwrap_or("");
            s.push_str(&format!("{name:>w$} "));
            for v in row {
                s.push_str(&format!(" {v:>cw$}"));
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_a_confusion_matrix() {
        // 3 classes; rows = true, columns = predicted.
        let m = vec![vec![5, 1, 0], vec![0, 3, 1], vec![2, 0, 0]];
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let e = summarize(m, &names, 12.0, 10, Vec::new());
        assert_eq!(e.num_samples, 12);
        assert_eq!(e.correct, 8);
        assert!((e.accuracy - 8.0 / 12.0).abs() < 1e-12);
        assert!((e.loss - 1.0).abs() < 1e-12);
        assert_eq!(e.top5_accuracy, None);
        let a = &e.per_class[0];
        assert!((a.precision - 5.0 / 7.0).abs() < 1e-12);
        assert!((a.recall - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(e.per_class[2].support, 2);
        assert_eq!(e.per_class[2].f1, 0.0);
        let table = e.to_table();
        assert!(table.contains("accuracy 66.67% (8 / 12)"), "{table}");
        let json: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(json["confusion_matrix"][2][0], 2);
        assert_eq!(json["per_class"][1]["name"], "b");
    }

    #[test]
    fn log_softmax_is_stable() {
        let lp = log_softmax(&[1000.0, 0.0]);
        assert!(lp[0].abs() < 1e-12);
        assert!((lp[1] + 1000.0).abs() < 1e-9);
    }
}
