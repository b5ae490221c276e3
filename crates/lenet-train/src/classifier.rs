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
}

impl Classifier {
    /// `net` trained with a first-order optimizer.
    pub fn new(net: ConvNet) -> Classifier {
        Classifier { net, sdlm: None }
    }
}

impl Classifier {
    /// Scores, loss and targets of a batch: cross-entropy on logits, or the paper's MAP
    /// criterion on an RBF output's scores.
    pub fn forward_classification(&self, batch: ImageBatch) -> ClassificationOutput {
        let output = self.net.forward_2d(batch.images);
        let loss = match self.net.output {
            Output::Rbf(_) => map_loss(output.clone(), batch.targets.clone()),
            Output::Linear(_) => CrossEntropyLossConfig::new()
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
        let item = self.forward_classification(batch);
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
