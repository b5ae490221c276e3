//! # lenet-train
//!
//! Data, training and evaluation for the networks of `lenet-model`:
//!
//! * [`data`] (the `lenet-data` crate): IDX files, MNIST and Fashion-MNIST (download and verification), the
//!   train/validation split, augmentation;
//! * [`batcher`] and [`subset`]: items to tensors, epoch order and augmentation seeds;
//! * [`run_config`]: the run configuration (`[model]`, `[data]`, `[training]`, `[backend]`);
//! * [`train()`]: the training loop on burn-train, writing a run directory;
//! * [`evaluate()`]: accuracy, loss, per-class metrics and the confusion matrix;
//! * [`predict`]: MNIST-style preprocessing of your own pictures, and their classification.

/// The data layer (the `lenet-data` crate), re-exported.
pub use lenet_data as data;

pub mod backend;
pub mod batcher;
pub mod classifier;
pub mod evaluate;
pub mod pictures;
pub mod predict;
pub mod progress;
pub mod run_config;
pub mod run_dir;
pub mod source;
pub mod subset;
pub mod train;

pub use backend::{compiled_backends, device_for, select, wgpu_adapters, Adapter, Selected};
pub use batcher::{ImageBatch, ImageBatcher, ImageItem, Normalization};
pub use classifier::Classifier;
pub use evaluate::{evaluate, ClassMetrics, Evaluation, Prediction};
pub use run_config::RunConfig;
pub use train::{train, DisplayMode, Limit, TrainError, TrainOptions, TrainSummary};
