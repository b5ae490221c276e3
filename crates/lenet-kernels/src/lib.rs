//! CPU kernels for the layers LeNet-style networks spend their time in, for Burn's flex backend:
//! 2D convolution (groups 1, any stride, padding and dilation, optionally followed by a fused
//! ReLU, tanh or sigmoid), dense layers, pooling over non-overlapping tiles (max and average),
//! nonlinearities and batch normalisation, each with its backward pass, so that training uses
//! them too.
//!
//! Why our own: Burn 0.22's flex computes a convolution's gradients as further convolutions (the
//! weight gradient as a convolution with batch and channels swapped, the input gradient as a
//! transposed convolution), which is slow for LeNet's few channels and large spatial kernels of
//! the gradient. Here each pass is computed by one of three methods ([`conv::Method`]): direct
//! register-blocked products that read the padded image in place (x86-64 with AVX2 and FMA; their
//! channel products in AVX-512 for layers of 32 channels or more where the machine has it), a
//! dense layer's matrix products (a kernel covering its whole input), or im2col plus one matrix
//! product per image (everywhere). Measured figures and the commands that give them are in
//! `docs/performance.md`.
//!
//! The kernels are a Burn backend extension ([`LenetKernels`]) implemented for flex and for
//! autodiff over flex. [`conv2d`] and [`pool2d`] take and return ordinary `Tensor`s; call them
//! only where [`conv2d_applies`] / [`pool2d_applies`] say so, and use Burn's ops elsewhere.
//! Results equal Burn's ops up to float rounding (tests compare values and gradients).

mod buffer;
pub mod conv;
mod direct;
mod extension;
mod gemm;
pub mod linear;
pub mod norm;
pub mod pool;

use burn::backend::Dispatch;
use burn::tensor::{DType, Device, Tensor};

pub use conv::Activation;
pub use extension::{ConvSpec, LenetKernels, NormSpec};
pub use pool::{PoolKind, PoolSpec};

/// The environment variable that turns the kernels off (`LENET_KERNELS=off`), so that Burn's own
/// operations run everywhere, keeps them on without the direct convolution
/// (`LENET_KERNELS=im2col`), or without its AVX-512 products (`LENET_KERNELS=avx2`): for
/// before/after measurements, or to rule the kernels out.
pub const SWITCH: &str = "LENET_KERNELS";

/// Whether [`SWITCH`] is set to `value` (read once per process).
fn switch_is(value: &str) -> bool {
    static VALUE: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();
    VALUE.get_or_init(|| std::env::var_os(SWITCH)).as_deref() == Some(value.as_ref())
}

/// Whether this machine has AVX2 and FMA (x86-64; checked once): what the direct convolution
/// kernels and the vectorised pooling loops need.
pub(crate) fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this machine has AVX-512F (x86-64; checked once): what the direct kernels' 16-float
/// products with channels in the lanes need.
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the kernels are on: unless [`SWITCH`] is `off`.
pub fn enabled() -> bool {
    !switch_is("off")
}

/// Whether the convolutions may use the direct kernels: unless [`SWITCH`] is `im2col` (the
/// machine must also have AVX2 and FMA: [`conv::Method::chosen`]).
pub fn direct_enabled() -> bool {
    !switch_is("im2col")
}

/// Whether `device` runs these kernels: flex, with or without autodiff (an autodiff device
/// compares equal to the device it wraps), while [`enabled`].
pub fn device_applies(device: &Device) -> bool {
    enabled() && *device == Device::flex()
}

/// Whether [`conv2d`] can compute this convolution: `f32` tensors on flex, weights
/// `[out, in, kh, kw]` matching the input's channels, a kernel that fits the padded input, and
/// pooling tiles (if any) that fit its output.
pub fn conv2d_applies(x: &Tensor<4>, weight: &Tensor<4>, spec: &ConvSpec) -> bool {
    let (xd, wd) = (x.dims(), weight.dims());
    let out = spec.geometry(&xd, &wd).out_size();
    device_applies(&x.device())
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && xd[1] == wd[1]
        && out.is_some_and(|out| spec.pool.is_none_or(|p| p.fits(out)))
}

/// Whether [`pool2d`] can compute this pooling: an `f32` tensor on flex and a tile that fits.
pub fn pool2d_applies(x: &Tensor<4>, kernel: [usize; 2]) -> bool {
    let d = x.dims();
    device_applies(&x.device()) && x.dtype() == DType::F32 && pool::tiles_fit(kernel, [d[2], d[3]])
}

/// Whether [`activation`] can compute this nonlinearity: an `f32` tensor on flex.
pub fn activation_applies<const D: usize>(x: &Tensor<D>) -> bool {
    device_applies(&x.device()) && x.dtype() == DType::F32
}

/// `activation` applied to every value of `x` (any shape) in one vectorised pass; differentiable
/// when `x` is on an autodiff device (the gradient from the output, in one pass too). Burn's own
/// `tanh` is one call of the C library's `tanhf` per value, and the scaled tanh three passes
/// forward and more backward (measured: 3-4 % of `lenet5-classic`'s training, F6's tanh).
///
/// # Panics
/// When [`activation_applies`] is false.
pub fn activation<const D: usize>(x: Tensor<D>, activation: Activation) -> Tensor<D> {
    assert!(
        activation_applies(&x),
        "lenet_kernels::activation called on a tensor it does not support"
    );
    Tensor::from_dispatch(<Dispatch as LenetKernels>::lenet_activation(
        x.into_dispatch(),
        activation,
    ))
}

/// Whether [`linear()`] can compute this dense layer: `f32` tensors on flex, `weight` `[inputs,
/// outputs]` matching `x` `[n, inputs]`.
pub fn linear_applies(x: &Tensor<2>, weight: &Tensor<2>) -> bool {
    device_applies(&x.device())
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && x.dims()[1] == weight.dims()[0]
}

/// A dense layer, `activation(x · weight + bias)` for `x` `[n, inputs]`, `weight` `[inputs,
/// outputs]` (Burn's `Linear` layout) and `bias` `[outputs]`, its products split over the
/// threads and the bias and nonlinearity fused; differentiable when the tensors are on an
/// autodiff device.
///
/// # Panics
/// When [`linear_applies`] is false.
pub fn linear(
    x: Tensor<2>,
    weight: Tensor<2>,
    bias: Tensor<1>,
    activation: Activation,
) -> Tensor<2> {
    assert!(
        linear_applies(&x, &weight) && bias.dims()[0] == weight.dims()[1],
        "lenet_kernels::linear called on a layer it does not support"
    );
    Tensor::from_dispatch(<Dispatch as LenetKernels>::lenet_linear(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        activation,
    ))
}

/// 2D convolution (cross-correlation) of `x` `[n, c, h, w]` with `weight` `[o, c, kh, kw]` and
/// an optional `bias` `[o]`, followed by `spec`'s nonlinearity and pooling; differentiable when
/// the tensors are on an autodiff device.
///
/// # Panics
/// When [`conv2d_applies`] is false.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    spec: ConvSpec,
) -> Tensor<4> {
    assert!(
        conv2d_applies(&x, &weight, &spec),
        "lenet_kernels::conv2d called on a convolution it does not support"
    );
    let (x, weight) = (x.into_dispatch(), weight.into_dispatch());
    Tensor::from_dispatch(match bias {
        Some(bias) => {
            <Dispatch as LenetKernels>::lenet_conv2d(x, weight, bias.into_dispatch(), spec)
        }
        None => <Dispatch as LenetKernels>::lenet_conv2d_no_bias(x, weight, spec),
    })
}

/// Pooling of `x` `[n, c, h, w]` over non-overlapping `kernel` tiles (stride = kernel, no
/// padding); differentiable when `x` is on an autodiff device.
///
/// # Panics
/// When [`pool2d_applies`] is false.
pub fn pool2d(x: Tensor<4>, kind: PoolKind, kernel: [usize; 2]) -> Tensor<4> {
    assert!(
        pool2d_applies(&x, kernel),
        "lenet_kernels::pool2d called on a pooling it does not support"
    );
    Tensor::from_dispatch(<Dispatch as LenetKernels>::lenet_pool2d(
        x.into_dispatch(),
        PoolSpec { kind, kernel },
    ))
}

/// Whether [`batch_norm`] and [`BatchStats::of`] can compute on `x`: an `f32` tensor on flex.
pub fn batch_norm_applies(x: &Tensor<4>) -> bool {
    device_applies(&x.device()) && x.dtype() == DType::F32
}

/// Per-channel statistics for [`batch_norm`]: means and variances, `[2, c]`.
#[derive(Debug, Clone)]
pub struct BatchStats(Tensor<2>);

impl BatchStats {
    /// The batch's own statistics of `x` `[n, c, h, w]` (biased variances, as Burn's and
    /// PyTorch's training-mode batch norm); never tracked.
    ///
    /// # Panics
    /// When [`batch_norm_applies`] is false.
    pub fn of(x: &Tensor<4>) -> BatchStats {
        assert!(
            batch_norm_applies(x),
            "lenet_kernels::BatchStats::of called on a tensor it does not support"
        );
        BatchStats(Tensor::from_dispatch(
            <Dispatch as LenetKernels>::lenet_batch_stats(x.clone().into_dispatch()),
        ))
    }

    /// Given statistics (a layer's running mean and variance), `[c]` each.
    pub fn new(mean: Tensor<1>, var: Tensor<1>) -> BatchStats {
        let c = mean.dims()[0];
        BatchStats(Tensor::cat(
            vec![mean.reshape([1, c]), var.reshape([1, c])],
            0,
        ))
    }

    /// The means, `[c]`.
    pub fn mean(&self) -> Tensor<1> {
        self.row(0)
    }

    /// The variances, `[c]`.
    pub fn var(&self) -> Tensor<1> {
        self.row(1)
    }

    fn row(&self, i: usize) -> Tensor<1> {
        let [_, c] = self.0.dims();
        self.0.clone().slice([i..i + 1, 0..c]).reshape([c])
    }
}

/// Batch normalisation of `x` `[n, c, h, w]` with `stats`, scale `gamma` and shift `beta`
/// (`[c]` each), in one pass forward and two backward; differentiable when the tensors are on an
/// autodiff device, through the statistics too when `spec.batch_stats` says they are `x`'s own.
///
/// # Panics
/// When [`batch_norm_applies`] is false.
pub fn batch_norm(
    x: Tensor<4>,
    stats: &BatchStats,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    spec: NormSpec,
) -> Tensor<4> {
    assert!(
        batch_norm_applies(&x),
        "lenet_kernels::batch_norm called on a tensor it does not support"
    );
    Tensor::from_dispatch(<Dispatch as LenetKernels>::lenet_batch_norm(
        x.into_dispatch(),
        stats.0.clone().into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        spec,
    ))
}
