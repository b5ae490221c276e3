//! Element-wise nonlinearities, applied between the layers of a network.

use burn::tensor::{activation, Tensor};
use serde::{Deserialize, Serialize};

/// LeCun's scaled tanh is `LECUN_TANH_OUTER · tanh(LECUN_TANH_INNER · x)`.
pub const LECUN_TANH_OUTER: f32 = 1.7159;
/// See [`LECUN_TANH_OUTER`].
pub const LECUN_TANH_INNER: f32 = 2.0 / 3.0;

/// The nonlinearity after a convolution or a hidden dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(0, x)`.
    #[default]
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// LeCun's scaled hyperbolic tangent, `1.7159 · tanh(2x/3)` (LeCun et al. 1998, appendix A).
    LecunTanh,
    /// Gaussian error linear unit.
    Gelu,
    /// `x` for `x > 0`, else `0.01 x`.
    LeakyRelu,
    /// `x · sigmoid(x)` (a.k.a. swish).
    Silu,
    /// The identity: no nonlinearity.
    None,
}

impl Activation {
    /// The name used in config files.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::LecunTanh => "lecun_tanh",
            Activation::Gelu => "gelu",
            Activation::LeakyRelu => "leaky_relu",
            Activation::Silu => "silu",
            Activation::None => "none",
        }
    }

    /// The same nonlinearity as [`lenet_kernels`] fuses it into a convolution, where it can.
    pub fn fusable(self) -> Option<lenet_kernels::Activation> {
        match self {
            Activation::Relu => Some(lenet_kernels::Activation::Relu),
            Activation::Tanh => Some(lenet_kernels::Activation::Tanh {
                outer: 1.0,
                inner: 1.0,
            }),
            Activation::LecunTanh => Some(lenet_kernels::Activation::Tanh {
                outer: LECUN_TANH_OUTER,
                inner: LECUN_TANH_INNER,
            }),
            Activation::Sigmoid => Some(lenet_kernels::Activation::Sigmoid),
            Activation::Gelu | Activation::LeakyRelu | Activation::Silu | Activation::None => None,
        }
    }

    /// Applies the nonlinearity to a tensor of any rank: in one pass of [`lenet_kernels`] where
    /// they apply (flex), else with Burn's operations.
    pub fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        if let Some(fused) = self.fusable() {
            if lenet_kernels::activation_applies(&x) {
                return lenet_kernels::activation(x, fused);
            }
        }
        self.on_burn(x)
    }

    /// [`Self::forward`] with Burn's operations.
    pub fn on_burn<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Relu => activation::relu(x),
            Activation::Tanh => activation::tanh(x),
            Activation::Sigmoid => activation::sigmoid(x),
            Activation::LecunTanh => {
                activation::tanh(x.mul_scalar(LECUN_TANH_INNER)).mul_scalar(LECUN_TANH_OUTER)
            }
            Activation::Gelu => activation::gelu(x),
            Activation::LeakyRelu => activation::leaky_relu(x, 0.01),
            Activation::Silu => activation::silu(x),
            Activation::None => x,
        }
    }
}
