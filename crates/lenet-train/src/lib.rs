//! # lenet-train
//!
//! Training, evaluation and use of the networks of `lenet-model`, one phase per module:
//!
//! * [`config`]: the run configuration (`[model]`, `[data]`, `[training]`, `[backend]`);
//! * [`device`]: the backend and device a config asks for, chosen once;
//! * [`data`]: the data pipeline: dataset → split → epoch order → batcher;
//! * [`train()`]: the training loop on burn-train, writing a run directory;
//! * [`run`]: the run directory (config, metrics, summary, checkpoints) and
//!   [`TrainedModel`], the one loader of a trained model;
//! * [`evaluate()`]: accuracy, loss, per-class metrics and the confusion matrix;
//! * [`predict`]: MNIST-style preprocessing of your own pictures, and their classification;
//! * [`pictures`]: curves, confusion matrices, filters and feature maps as pictures;
//! * [`bench`](mod@bench): throughput measurements.
//!
//! ```no_run
//! use lenet_train::{RunConfig, TrainedModel};
//!
//! // Train as `lenet train --config configs/lenet5.toml` does...
//! let config = RunConfig::load("configs/lenet5.toml".as_ref(), &[])?;
//! let device = lenet_train::select(&config.backend)?;
//! let opts = lenet_train::TrainOptions {
//!     run_dir: "runs/example".into(),
//!     data: lenet_train::DataOptions {
//!         root: "data".into(),
//!         offline: false,
//!         report_downloads: true,
//!     },
//!     display: lenet_train::DisplayMode::Lines,
//!     resume: false,
//!     interrupter: None,
//! };
//! let summary = lenet_train::train(&config, &device, &opts)?;
//! println!("test accuracy {:.2}%", 100.0 * summary.test_accuracy);
//!
//! // ... and use the result.
//! let model = TrainedModel::load("runs/example".as_ref(), None)?;
//! let picture = lenet_train::predict::load_picture("digit.png".as_ref())?;
//! let ranking = model.classify(&[picture])?;
//! println!("{}", model.classes.name(ranking[0][0].0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bench;
pub mod classifier;
pub mod config;
pub mod data;
pub mod device;
pub mod evaluate;
pub mod pictures;
pub mod predict;
pub mod run;
pub mod train;

pub use burn::train::Interrupter;
pub use classifier::Classifier;
pub use config::{BackendKind, ConfigError, RunConfig};
pub use data::{DataOptions, ImageBatch, ImageItem, Normalization, Subset};
pub use device::{compiled_backends, select, select_one, wgpu_adapters, Adapter, Selected};
pub use evaluate::{evaluate, ClassMetrics, Evaluation, Prediction};
pub use run::summary::TrainSummary;
pub use run::trained::TrainedModel;
pub use run::{RunDir, RunError};
pub use train::{train, DisplayMode, TrainError, TrainOptions};
