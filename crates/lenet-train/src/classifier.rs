//! The network as a Burn-train learner model: forward pass with cross-entropy loss.

use std::sync::Arc;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};
use lenet_model::rbf::map_loss;
use lenet_model::{ConvNet, Output};

use crate::data::ImageBatch;
use crate::train::sdlm::Sdlm;

/// A [`ConvNet`] trained as a classifier: cross-entropy on its logits, or with an RBF output
/// the MAP criterion of LeCun et al. (1998).
///
/// A wrapper because `TrainStep` (burn-train) and `ConvNet` (lenet-model) are both foreign here.
#[derive(Module, Debug)]
pub struct Classifier {
    /// The network.
    pub net: ConvNet,
    /// With `optimizer.kind = "sdlm"`: the second derivatives that scale each gradient.
    #[module(skip)]
    pub sdlm: Option<Arc<Sdlm>>,
    /// `training.label_smoothing`: the smoothing of the training loss (validation and test
    /// losses stay the plain cross-entropy).
    #[module(skip)]
    pub label_smoothing: Option<f32>,
}

impl Classifier {
    /// `net` trained with a first-order optimizer.
    pub fn new(net: ConvNet) -> Classifier {
        Classifier {
            net,
            sdlm: None,
            label_smoothing: None,
        }
    }
}

impl Classifier {
    /// Scores, loss and targets of a batch: cross-entropy on logits, or the paper's MAP
    /// criterion on an RBF output's scores.
    pub fn forward_classification(&self, batch: ImageBatch) -> ClassificationOutput {
        self.forward_with(batch, None)
    }

    /// [`Self::forward_classification`] with the cross-entropy's targets smoothed by
    /// `smoothing` (the training loss).
    fn forward_with(&self, batch: ImageBatch, smoothing: Option<f32>) -> ClassificationOutput {
        let output = self.net.forward_2d(batch.images);
        let loss = match self.net.output {
            Output::Rbf(_) => map_loss(output.clone(), batch.targets.clone()),
            Output::Linear(_) => CrossEntropyLossConfig::new()
                .with_smoothing(smoothing.filter(|&e| e > 0.0))
                .init(&output.device())
                .forward(output.clone(), batch.targets.clone()),
        };
        ClassificationOutput::new(loss, output, batch.targets)
    }
}

impl TrainStep for Classifier {
    type Input = ImageBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ImageBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.forward_with(batch, self.label_smoothing);
        let mut out = TrainOutput::new(self, item.loss.backward(), item);
        if let Some(sdlm) = &self.sdlm {
            out.grads = sdlm.precondition(&self.net, out.grads);
        }
        out
    }
}

impl InferenceStep for Classifier {
    type Input = ImageBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ImageBatch) -> ClassificationOutput {
        self.forward_classification(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Int, Tensor, TensorData};
    use lenet_model::preset;

    use crate::{select_one, BackendKind};

    /// The training loss with label smoothing ε is `(1 - ε)·CE + ε·mean_k(-log p_k)` (the
    /// smoothed target `(1 - ε)·onehot + ε/K`), computed here in f64 from the logits; the
    /// inference loss stays the plain cross-entropy.
    #[test]
    fn label_smoothing_changes_the_training_loss_only() {
        let device = select_one(BackendKind::Flex, None)
            .unwrap()
            .device()
            .clone();
        device.seed(3);
        let net = preset("lenet1").unwrap().plan().unwrap().build(&device);
        let eps = 0.1f32;
        let model = Classifier {
            label_smoothing: Some(eps),
            ..Classifier::new(net)
        };
        let n = 4;
        let pixels: Vec<f32> = (0..n * 28 * 28)
            .map(|i| ((i * 37) % 101) as f32 / 40.0 - 1.0)
            .collect();
        let labels: Vec<i64> = vec![3, 0, 9, 3];
        let batch = || ImageBatch {
            images: Tensor::from_data(TensorData::new(pixels.clone(), [n, 1, 28, 28]), &device),
            targets: Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [n]), &device),
        };
        let scalar = |t: Tensor<1>| f64::from(t.into_data().try_to_vec::<f32>().unwrap()[0]);

        let plain = model.forward_classification(batch());
        let logits: Vec<f64> = plain
            .output
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect();
        let (mut ce, mut uniform) = (0.0, 0.0);
        for (row, &label) in logits.chunks(10).zip(&labels) {
            let max = row.iter().cloned().fold(f64::MIN, f64::max);
            let log_z = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            ce += log_z - row[label as usize];
            uniform += row.iter().map(|v| log_z - v).sum::<f64>() / 10.0;
        }
        let (ce, uniform) = (ce / n as f64, uniform / n as f64);
        let eps = f64::from(eps);
        assert!((scalar(plain.loss) - ce).abs() < 1e-5 * (1.0 + ce));

        let smoothed = scalar(model.forward_with(batch(), model.label_smoothing).loss);
        let expected = (1.0 - eps) * ce + eps * uniform;
        assert!(
            (smoothed - expected).abs() < 1e-5 * (1.0 + expected),
            "smoothed loss {smoothed}, expected {expected} (plain {ce})"
        );
        assert!((smoothed - ce).abs() > 1e-3, "smoothing changed nothing");
    }
}
