//! The built-in networks of the LeNet family (LeCun et al. 1989, 1998).

use crate::activation::Activation;
use crate::config::{
    ClassifierConfig, Dims, FeatureBlockConfig, Init, InputConfig, ModelConfig, OutputKind,
    Padding, PoolConfig, PoolKind,
};
use crate::error::ModelError;

/// Names accepted by `preset = "..."` and `lenet summary --preset`.
pub const PRESETS: &[&str] = &[
    "lenet5",
    "lenet5-classic",
    "lenet5-1998",
    "lenet1",
    "lenet4",
];

/// The built-in network called `name`.
pub fn preset(name: &str) -> Result<ModelConfig, ModelError> {
    match name {
        "lenet5" => Ok(lenet5()),
        "lenet5-classic" => Ok(lenet5_classic()),
        "lenet5-1998" => Ok(lenet5_1998()),
        "lenet1" => Ok(lenet1()),
        "lenet4" => Ok(lenet4()),
        _ => Err(ModelError::UnknownPreset {
            name: name.to_string(),
            available: PRESETS.join(", "),
        }),
    }
}

fn conv(
    out: usize,
    kernel: usize,
    padding: usize,
    act: Activation,
    pool: PoolKind,
) -> FeatureBlockConfig {
    FeatureBlockConfig {
        out_channels: out,
        kernel: Dims::All(kernel),
        stride: Dims::All(1),
        padding: Padding::Explicit(Dims::All(padding)),
        dilation: Dims::All(1),
        groups: 1,
        connections: None,
        bias: true,
        batch_norm: false,
        activation: act,
        pool: Some(PoolConfig {
            kind: pool,
            kernel: Dims::All(2),
            stride: None,
            padding: Dims::All(0),
        }),
        dropout: 0.0,
    }
}

fn network(
    name: &str,
    size: usize,
    features: Vec<FeatureBlockConfig>,
    hidden: Vec<usize>,
    activation: Activation,
) -> ModelConfig {
    ModelConfig {
        preset: None,
        name: name.to_string(),
        input: InputConfig {
            channels: 1,
            size: vec![size, size],
        },
        features,
        classifier: ClassifierConfig {
            hidden,
            activation,
            dropout: 0.0,
            output: OutputKind::Linear,
        },
        num_classes: 10,
        init: Init::Default,
    }
}

/// LeNet-5 as it is usually trained today: ReLU and max pooling, 28×28 input padded by 2 in the
/// first convolution, 6 and 16 feature maps, dense 400 → 120 → 84 → 10. 61,706 parameters.
pub fn lenet5() -> ModelConfig {
    let act = Activation::Relu;
    network(
        "lenet5",
        28,
        vec![
            conv(6, 5, 2, act, PoolKind::Max),
            conv(16, 5, 0, act, PoolKind::Max),
        ],
        vec![120, 84],
        act,
    )
}

/// LeNet-5 close to LeCun et al. (1998): a 32×32 input (MNIST's 28×28 digits padded with
/// background), LeCun's scaled tanh, average pooling (subsampling), and C5 as a 5×5 convolution
/// with 120 maps of size 1×1. Unlike the paper, C3 connects every S2 map to every C3 map and the
/// subsampling layers have no trainable coefficients. 61,706 parameters.
pub fn lenet5_classic() -> ModelConfig {
    let act = Activation::LecunTanh;
    let mut c5 = conv(120, 5, 0, act, PoolKind::Avg);
    c5.pool = None;
    network(
        "lenet5-classic",
        32,
        vec![
            conv(6, 5, 0, act, PoolKind::Avg),
            conv(16, 5, 0, act, PoolKind::Avg),
            c5,
        ],
        vec![84],
        act,
    )
}

/// LeNet-5 as published (LeCun et al. 1998, Section II-B and Appendix A): 32×32 input; C1 6@5×5;
/// S2 subsampling with a trainable coefficient and bias per map; C3 16@5×5 with the sparse
/// connection table of Table I; S4 like S2; C5 120@5×5; F6 84; every layer squashed by
/// `1.7159·tanh(2a/3)`; ten Euclidean RBF output units with the fixed 7×12 digit bitmaps;
/// weights uniform in ±2.4/fan-in. 60,000 trainable parameters (156 + 12 + 1,516 + 32 +
/// 48,120 + 10,164) and 840 fixed RBF weights.
pub fn lenet5_1998() -> ModelConfig {
    let act = Activation::LecunTanh;
    let c1 = conv(6, 5, 0, act, PoolKind::Subsample);
    let mut c3 = conv(16, 5, 0, act, PoolKind::Subsample);
    c3.connections = Some(lenet5_c3_table());
    let mut c5 = conv(120, 5, 0, act, PoolKind::Avg);
    c5.pool = None;
    let mut net = network("lenet5-1998", 32, vec![c1, c3, c5], vec![84], act);
    net.classifier.output = OutputKind::Rbf;
    net.init = Init::FanInUniform;
    net
}

/// LeNet-5's C3 connection table (LeCun et al. 1998, Table I): which of S2's six maps each of
/// C3's sixteen filters sees. Maps 0-5 see three contiguous S2 maps, 6-11 four contiguous, 12-14
/// four non-contiguous, 15 all six: 60 kernels of 25 weights, 1,516 parameters with the biases.
pub fn lenet5_c3_table() -> Vec<Vec<usize>> {
    let contiguous = |n: usize, first: usize| (first..first + n).map(|i| i % 6).collect();
    let mut table: Vec<Vec<usize>> = (0..6).map(|o| contiguous(3, o)).collect();
    table.extend((0..6).map(|o| contiguous(4, o)));
    table.extend([vec![0, 1, 3, 4], vec![1, 2, 4, 5], vec![0, 2, 3, 5]]);
    table.push((0..6).collect());
    table
}

/// LeNet-1 (LeCun et al. 1989/1995): 28×28 input, 4 then 12 feature maps of 5×5 kernels with
/// average pooling, straight to 10 outputs. Fully connected C3, so 3,246 parameters.
pub fn lenet1() -> ModelConfig {
    let act = Activation::LecunTanh;
    network(
        "lenet1",
        28,
        vec![
            conv(4, 5, 0, act, PoolKind::Avg),
            conv(12, 5, 0, act, PoolKind::Avg),
        ],
        vec![],
        act,
    )
}

/// LeNet-4 (LeCun et al. 1995): 32×32 input, 4 then 16 feature maps with average pooling, a
/// hidden layer of 120, then 10 outputs. Fully connected C3, so 51,050 parameters.
pub fn lenet4() -> ModelConfig {
    let act = Activation::LecunTanh;
    network(
        "lenet4",
        32,
        vec![
            conv(4, 5, 0, act, PoolKind::Avg),
            conv(16, 5, 0, act, PoolKind::Avg),
        ],
        vec![120],
        act,
    )
}
