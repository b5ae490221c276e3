//! # lenet-model
//!
//! LeNet-style convolutional networks described by a config: feature blocks of
//! convolution → nonlinearity → pooling, then flatten → fully-connected layers.
//!
//! * [`ModelConfig`] is what a user writes (TOML); [`ModelConfig::plan`] validates it and infers
//!   every shape with `O = floor((I - D·(K-1) - 1 + 2P) / S) + 1`, before any tensor is made.
//! * [`Plan::build`] makes a [`ConvNet`], a Burn module that runs on any Burn device.
//! * [`Plan::summary`] lists layers, output shapes, parameter counts and the evaluated formulas.
//! * [`presets`] holds LeNet-1, LeNet-4 and LeNet-5 (modern and classic).
//!
//! ```
//! let config = lenet_model::preset("lenet5").unwrap();
//! let plan = config.plan().unwrap();
//! assert_eq!(plan.parameters(), 61_706);
//! ```

pub mod activation;
pub mod config;
pub mod curvature;
pub mod error;
mod load;
pub mod model;
pub mod plan;
pub mod presets;
pub mod rbf;
pub mod summary;

pub use activation::Activation;
pub use config::{
    ClassifierConfig, Dims, FeatureBlockConfig, Init, InputConfig, ModelConfig, OutputKind,
    Padding, PoolConfig, PoolKind,
};
pub use error::ModelError;
pub use model::{dense, Conv, ConvNet, FeatureBlock, FeatureMap, Output, Stage, Subsample};
pub use plan::{output_len, BlockPlan, ConvPlan, Plan, PoolPlan};
pub use presets::{lenet5_c3_table, preset, PRESETS};
pub use rbf::Rbf;
pub use summary::{LayerSummary, Summary};
