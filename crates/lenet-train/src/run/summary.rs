//! `summary.json`: what a finished (or stopped) run achieved.

use serde::{Deserialize, Serialize};

use crate::config::FinalModel;

/// Which weights `model.bpk` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kept {
    /// The epoch with the best validation accuracy.
    Best,
    /// The last epoch.
    Last,
    /// The weights reached when training was interrupted (mid-epoch).
    Interrupted,
}

impl From<FinalModel> for Kept {
    fn from(f: FinalModel) -> Kept {
        match f {
            FinalModel::Best => Kept::Best,
            FinalModel::Last => Kept::Last,
        }
    }
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainSummary {
    /// Dataset name.
    pub dataset: String,
    /// Model name.
    pub model: String,
    /// Backend used.
    pub backend: String,
    /// The device(s) trained on, for people.
    #[serde(default)]
    pub device: String,
    /// Epochs completed (over all sessions of a resumed run).
    pub epochs_completed: usize,
    /// Epoch with the best validation accuracy.
    pub best_epoch: usize,
    /// Validation accuracy of the kept model, in [0, 1]; `null` when it was never validated (no
    /// validation split, or weights saved at an interruption).
    #[serde(default)]
    pub valid_accuracy: Option<f64>,
    /// Test accuracy of the kept model, in [0, 1].
    pub test_accuracy: f64,
    /// Test loss of the kept model.
    pub test_loss: f64,
    /// Correct test predictions.
    pub test_correct: usize,
    /// Test images.
    pub test_samples: usize,
    /// Which weights `model.bpk` holds: `best`, `last` or `interrupted`.
    pub final_model: Kept,
    /// Wall time of this session's training loop.
    pub train_seconds: f64,
    /// Training images per second over this session's training epochs.
    pub images_per_second: f64,
    /// Trainable parameters.
    pub parameters: usize,
    /// Why training ended early, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}
