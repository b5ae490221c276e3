//! The user-facing description of a network, as read from TOML.
//!
//! These are plain serde structs (not Burn `Config`s, whose defaults are still required when
//! deserialising): every optional field has a default, and unknown keys are errors.
//! [`crate::plan`] validates them and resolves every shape before any tensor is made.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::activation::Activation;

/// A whole network: input, feature blocks, classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Start from a built-in network and override some of its fields
    /// (`lenet5`, `lenet5-classic`, `lenet5-1998`, `lenet1`, `lenet4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// A display name, e.g. `lenet5`.
    #[serde(default = "default_name")]
    pub name: String,
    /// What the network sees.
    pub input: InputConfig,
    /// Convolution blocks, applied in order.
    #[serde(default)]
    pub features: Vec<FeatureBlockConfig>,
    /// Flatten, then fully-connected layers.
    #[serde(default)]
    pub classifier: ClassifierConfig,
    /// Number of output logits.
    pub num_classes: usize,
    /// How the weights start (`default`, `fan_in_uniform` or `lecun_uniform`).
    #[serde(default, skip_serializing_if = "Init::is_default")]
    pub init: Init,
}

/// How a network's weights start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// Burn's defaults, which follow PyTorch's: Kaiming-uniform weights, biases uniform in
    /// ±1/√fan-in; subsampling coefficients 1/window, biases 0.
    #[default]
    Default,
    /// LeCun et al. (1998, Appendix A): every weight and bias of a unit uniform in ±2.4/F, F
    /// the unit's number of inputs (its fan-in: with a connection table, each filter's own;
    /// for subsampling, the window).
    FanInUniform,
    /// LeCun, Bottou, Orr, Müller, "Efficient BackProp" (1998, §4.6), Keras's `lecun_uniform`:
    /// every weight and bias of a unit uniform in ±√(3/F), a standard deviation of 1/√F, with
    /// F as for [`Init::FanInUniform`].
    LecunUniform,
}

impl Init {
    fn is_default(&self) -> bool {
        *self == Init::Default
    }
}

fn default_name() -> String {
    "custom".to_string()
}

/// The input tensor of one example: `[channels, size...]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Input channels (1 for grey-scale images).
    pub channels: usize,
    /// Spatial size: `[length]` (1D), `[height, width]` (2D) or `[depth, height, width]` (3D).
    /// The number of entries decides which convolution is used.
    pub size: Vec<usize>,
}

/// One feature block: convolution → (batch norm) → activation → (pooling) → (dropout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureBlockConfig {
    /// Number of filters, i.e. of output channels (feature maps).
    pub out_channels: usize,
    /// Kernel size: one number for every dimension, or one per dimension.
    pub kernel: Dims,
    /// Step between two kernel positions.
    #[serde(default = "Dims::one")]
    pub stride: Dims,
    /// Zero padding: a number, one per dimension, `"valid"` (0) or `"same"` (output = input).
    #[serde(default)]
    pub padding: Padding,
    /// Spacing between kernel taps; the effective kernel is `D*(K-1)+1`.
    #[serde(default = "Dims::one")]
    pub dilation: Dims,
    /// Channel groups: each filter sees `in_channels / groups` input channels.
    #[serde(default = "one")]
    pub groups: usize,
    /// A connection table: for each filter (output channel), the input channels it sees, e.g.
    /// LeNet-5's C3 (`[[0, 1, 2], [1, 2, 3], …]`). Without one every filter sees every input
    /// channel. The other kernels are held at zero and get no gradient; only the connected
    /// ones count as parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<Vec<Vec<usize>>>,
    /// Whether each filter has a bias.
    #[serde(default = "yes")]
    pub bias: bool,
    /// Batch normalisation after the convolution.
    #[serde(default)]
    pub batch_norm: bool,
    /// Nonlinearity after the convolution (and batch norm).
    #[serde(default)]
    pub activation: Activation,
    /// Optional pooling after the activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolConfig>,
    /// Dropout probability at the end of the block (0 = none).
    #[serde(default)]
    pub dropout: f64,
}

/// Max or average pooling over windows of the feature maps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// `max`, `avg` or `subsample`.
    pub kind: PoolKind,
    /// Window size.
    pub kernel: Dims,
    /// Step between windows (default: the kernel size, i.e. no overlap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<Dims>,
    /// Zero padding (at most half the kernel).
    #[serde(default = "Dims::zero")]
    pub padding: Dims,
}

/// The reduction a pooling layer applies to each window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// The largest value of the window.
    Max,
    /// The mean of the window (padding counts as zeros, as in PyTorch's default).
    Avg,
    /// LeNet-5's subsampling (LeCun et al. 1998, S2 and S4): the window's sum times a trainable
    /// coefficient per map, plus a trainable bias per map, then the block's activation again.
    /// Two parameters per map; the coefficient starts at 1/window (an average) and the bias
    /// at 0.
    Subsample,
}

/// The fully-connected part: flatten, hidden layers, then `num_classes` logits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Sizes of the hidden layers, e.g. `[120, 84]`.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Nonlinearity after each hidden layer.
    #[serde(default)]
    pub activation: Activation,
    /// Dropout probability after each hidden layer (0 = none).
    #[serde(default)]
    pub dropout: f64,
    /// The output layer: `linear` (logits; the default) or `rbf`.
    #[serde(default, skip_serializing_if = "OutputKind::is_linear")]
    pub output: OutputKind,
}

/// The layer that makes the class scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// A dense layer to `num_classes` logits, trained with cross-entropy.
    #[default]
    Linear,
    /// LeNet-5's Euclidean RBF units (LeCun et al. 1998) with fixed prototypes, the 7×12
    /// digit bitmaps: 10 classes from 84 inputs; scores are minus the squared distances, and
    /// training uses the paper's MAP loss.
    Rbf,
}

impl OutputKind {
    fn is_linear(&self) -> bool {
        *self == OutputKind::Linear
    }
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

/// A size per spatial dimension, written as one number (the same for all) or as a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dims {
    /// The same value in every dimension.
    All(usize),
    /// One value per dimension.
    Each(Vec<usize>),
}

impl Dims {
    fn one() -> Self {
        Dims::All(1)
    }

    fn zero() -> Self {
        Dims::All(0)
    }

    /// The value per dimension for an input with `n` spatial dimensions.
    pub fn resolve(&self, n: usize) -> Result<Vec<usize>, String> {
        match self {
            Dims::All(v) => Ok(vec![*v; n]),
            Dims::Each(v) if v.len() == n => Ok(v.clone()),
            Dims::Each(v) => Err(format!(
                "has {} values {:?} but the input has {} spatial dimension{}",
                v.len(),
                v,
                n,
                if n == 1 { "" } else { "s" }
            )),
        }
    }
}

impl Serialize for Dims {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Dims::All(v) => s.serialize_u64(*v as u64),
            Dims::Each(v) => v.serialize(s),
        }
    }
}

struct DimsVisitor;

impl<'de> Visitor<'de> for DimsVisitor {
    type Value = Dims;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative integer or a list of them")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dims, E> {
        Ok(Dims::All(v as usize))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dims, E> {
        usize::try_from(v)
            .map(Dims::All)
            .map_err(|_| E::custom(format!("expected a non-negative integer, found {v}")))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dims, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<usize>()? {
            out.push(v);
        }
        Ok(Dims::Each(out))
    }
}

impl<'de> Deserialize<'de> for Dims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DimsVisitor)
    }
}

/// Zero padding of a convolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Padding {
    /// Explicit padding on both sides of each dimension.
    Explicit(Dims),
    /// No padding (`"valid"`), the same as 0.
    Valid,
    /// Just enough padding for the output to have the input's size (`"same"`; stride 1 only).
    Same,
}

impl Default for Padding {
    fn default() -> Self {
        Padding::Explicit(Dims::All(0))
    }
}

impl Serialize for Padding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Padding::Explicit(d) => d.serialize(s),
            Padding::Valid => s.serialize_str("valid"),
            Padding::Same => s.serialize_str("same"),
        }
    }
}

struct PaddingVisitor;

impl<'de> Visitor<'de> for PaddingVisitor {
    type Value = Padding;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative integer, a list of them, \"valid\" or \"same\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Padding, E> {
        DimsVisitor.visit_u64(v).map(Padding::Explicit)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Padding, E> {
        DimsVisitor.visit_i64(v).map(Padding::Explicit)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Padding, A::Error> {
        DimsVisitor.visit_seq(seq).map(Padding::Explicit)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Padding, E> {
        match v {
            "valid" => Ok(Padding::Valid),
            "same" => Ok(Padding::Same),
            other => Err(E::custom(format!(
                "unknown padding `{other}`, expected a number, a list, \"valid\" or \"same\""
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Padding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PaddingVisitor)
    }
}
