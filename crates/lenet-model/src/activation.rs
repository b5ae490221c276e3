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

    /// The derivative `f'(a)` of the nonlinearity at each of `a`'s values, with Burn's
    /// operations (for the second-order back-propagation of [`crate::curvature`]). ReLU's and
    /// leaky ReLU's at 0 are taken from the left.
    pub fn derivative<const D: usize>(self, a: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Relu => a.greater_elem(0.0).float(),
            Activation::LeakyRelu => a
                .greater_elem(0.0)
                .float()
                .mul_scalar(0.99)
                .add_scalar(0.01),
            Activation::Tanh => activation::tanh(a).powi_scalar(2).neg().add_scalar(1.0),
            Activation::LecunTanh => activation::tanh(a.mul_scalar(LECUN_TANH_INNER))
                .powi_scalar(2)
                .neg()
                .add_scalar(1.0)
                .mul_scalar(LECUN_TANH_OUTER * LECUN_TANH_INNER),
            Activation::Sigmoid => {
                let s = activation::sigmoid(a);
                s.clone() * s.neg().add_scalar(1.0)
            }
            Activation::Silu => {
                // (x·s)' = s + x·s·(1 − s)
                let s = activation::sigmoid(a.clone());
                s.clone() + a * s.clone() * s.neg().add_scalar(1.0)
            }
            Activation::Gelu => {
                // Burn's GELU is the exact x·Φ(x): its derivative is Φ(x) + x·φ(x).
                let cdf = a
                    .clone()
                    .mul_scalar(std::f32::consts::FRAC_1_SQRT_2)
                    .erf()
                    .add_scalar(1.0)
                    .mul_scalar(0.5);
                let pdf = a.clone().powi_scalar(2).mul_scalar(-0.5).exp().mul_scalar(
                    0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2,
                );
                cdf + a * pdf
            }
            Activation::None => a.ones_like(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// Each derivative against a central difference of the nonlinearity itself, at points
    /// away from ReLU's kink.
    #[test]
    fn derivatives_match_central_differences() {
        let device = Device::flex();
        let points = [-3.1f32, -1.7, -0.6, -0.2, 0.15, 0.5, 1.3, 2.9];
        let x = Tensor::<1>::from_floats(points, &device);
        let h = 1e-2f32;
        for act in [
            Activation::Relu,
            Activation::LeakyRelu,
            Activation::Tanh,
            Activation::LecunTanh,
            Activation::Sigmoid,
            Activation::Silu,
            Activation::Gelu,
            Activation::None,
        ] {
            let up = act.on_burn(x.clone().add_scalar(h));
            let down = act.on_burn(x.clone().sub_scalar(h));
            let numeric: Vec<f32> = ((up - down) / (2.0 * h))
                .to_data()
                .try_to_vec::<f32>()
                .unwrap();
            let exact: Vec<f32> = act
                .derivative(x.clone())
                .to_data()
                .try_to_vec::<f32>()
                .unwrap();
            for ((n, e), p) in numeric.iter().zip(&exact).zip(points) {
                assert!(
                    (n - e).abs() < 1e-3,
                    "{}: f'({p}) = {e}, central difference {n}",
                    act.name()
                );
            }
        }
    }
}
