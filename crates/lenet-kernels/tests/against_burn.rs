//! The kernels against Burn's own operations on flex: forward values and the gradients of the
//! input, weights and bias, on random inputs of many shapes, within 1e-5 relative to the largest
//! value of the tensor (sums of thousands of terms that cancel to near zero differ in their last
//! bits between summation orders, so a purely element-wise relative bound would test rounding).

use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions, PadMode};
use burn::tensor::{Device, Distribution, Tensor, TensorData, Tolerance};
use lenet_kernels::{Activation, ConvSpec, PoolKind};
use proptest::prelude::*;

/// 1e-5 relative, and 1e-5 of the largest magnitude in `reference` absolute.
fn assert_close(ours: TensorData, reference: TensorData, what: &str) {
    assert_eq!(ours.shape(), reference.shape(), "{what}: shapes");
    let scale = reference.iter::<f32>().fold(1.0f32, |m, v| m.max(v.abs()));
    let tolerance = Tolerance::rel_abs(1e-5, 1e-5 * scale);
    ours.assert_approx_eq::<f32>(&reference, tolerance);
}

fn close<const D: usize>(ours: Tensor<D>, burn: Tensor<D>, what: &str) {
    assert_close(ours.into_data(), burn.into_data(), what);
}

/// One convolution case, and the nonlinearity that follows it (fused in our kernel, Burn's
/// activation in the reference).
#[derive(Debug, Clone)]
struct Case {
    batch: usize,
    channels: [usize; 2],
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [[usize; 2]; 2],
    dilation: [usize; 2],
    bias: bool,
    activation: Activation,
}

impl Case {
    fn spec(&self) -> ConvSpec {
        ConvSpec {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            activation: self.activation,
            pool: None,
        }
    }

    /// Burn's convolution of the same thing: symmetric padding through the options, the
    /// asymmetric part by padding the input with zeros first.
    fn burn(&self, x: Tensor<4>, w: Tensor<4>, b: Option<Tensor<1>>) -> Tensor<4> {
        let [[top, bottom], [left, right]] = self.padding;
        let options = ConvOptions::new(self.stride, [0, 0], self.dilation, 1);
        let x = x.pad([(top, bottom), (left, right)], PadMode::Constant(0.0));
        burn_activation(conv2d(x, w, b, options), self.activation)
    }
}

/// The nonlinearity with Burn's operations.
fn burn_activation<const D: usize>(y: Tensor<D>, activation: Activation) -> Tensor<D> {
    match activation {
        Activation::None => y,
        Activation::Relu => burn::tensor::activation::relu(y),
        Activation::Tanh { outer, inner } => {
            burn::tensor::activation::tanh(y.mul_scalar(inner)).mul_scalar(outer)
        }
        Activation::Sigmoid => burn::tensor::activation::sigmoid(y),
    }
}

/// Checks forward values on plain flex and on autodiff flex, and the three gradients.
fn check_conv(case: &Case, seed: u64) {
    let device = Device::flex();
    device.seed(seed);
    let [ci, co] = case.channels;
    let [h, w] = case.size;
    let [kh, kw] = case.kernel;
    let u = Distribution::Uniform(-1.0, 1.0);
    let x: Tensor<4> = Tensor::random([case.batch, ci, h, w], u, &device);
    let wt: Tensor<4> = Tensor::random([co, ci, kh, kw], u, &device);
    let b: Option<Tensor<1>> = case.bias.then(|| Tensor::random([co], u, &device));
    assert!(lenet_kernels::conv2d_applies(&x, &wt, &case.spec()));

    let ours = lenet_kernels::conv2d(x.clone(), wt.clone(), b.clone(), case.spec());
    let burn = case.burn(x.clone(), wt.clone(), b.clone());
    close(ours, burn.clone(), &format!("forward {case:?}"));

    // Gradients of sum(y · r) for a random r, through our op and through Burn's.
    let r: Tensor<4> = Tensor::random(burn.dims(), u, &device).autodiff();
    let grads = |ours: bool| {
        let x = x.clone().autodiff().require_grad();
        let wt = wt.clone().autodiff().require_grad();
        let b = b.clone().map(|b| b.autodiff().require_grad());
        let y = if ours {
            lenet_kernels::conv2d(x.clone(), wt.clone(), b.clone(), case.spec())
        } else {
            case.burn(x.clone(), wt.clone(), b.clone())
        };
        let g = (y * r.clone()).sum().backward();
        let gx = x.grad(&g).expect("input gradient");
        let gw = wt.grad(&g).expect("weight gradient");
        let gb = b.map(|b| b.grad(&g).expect("bias gradient"));
        (gx, gw, gb)
    };
    let (ox, ow, ob) = grads(true);
    let (bx, bw, bb) = grads(false);
    close(ox, bx, &format!("input gradient {case:?}"));
    close(ow, bw, &format!("weight gradient {case:?}"));
    if let (Some(ob), Some(bb)) = (ob, bb) {
        close(ob, bb, &format!("bias gradient {case:?}"));
    }
}

fn lenet_case(batch: usize, channels: [usize; 2], size: usize, pad: usize) -> Case {
    Case {
        batch,
        channels,
        size: [size, size],
        kernel: [5, 5],
        stride: [1, 1],
        padding: [[pad, pad], [pad, pad]],
        dilation: [1, 1],
        bias: true,
        activation: Activation::Relu,
    }
}

/// Every kind of fused nonlinearity, LeCun's scaled tanh for `Tanh`.
const ACTIVATIONS: [Activation; 4] = [
    Activation::None,
    Activation::Relu,
    Activation::Tanh {
        outer: 1.7159,
        inner: 2.0 / 3.0,
    },
    Activation::Sigmoid,
];

#[test]
fn lenet5_convolutions_match_burn() {
    for activation in ACTIVATIONS {
        let cases = [
            lenet_case(8, [1, 6], 28, 2),
            lenet_case(8, [6, 16], 14, 0),
            lenet_case(3, [16, 120], 5, 0),
        ];
        for (i, case) in cases.into_iter().enumerate() {
            check_conv(&Case { activation, ..case }, 1 + i as u64);
        }
    }
}

#[test]
fn strides_paddings_dilations_and_no_bias_match_burn() {
    let cases = [
        Case {
            batch: 2,
            channels: [3, 4],
            size: [9, 8],
            kernel: [3, 2],
            stride: [2, 1],
            padding: [[1, 2], [0, 1]],
            dilation: [1, 2],
            bias: true,
            activation: Activation::None,
        },
        Case {
            batch: 3,
            channels: [2, 5],
            size: [11, 11],
            kernel: [3, 3],
            stride: [2, 2],
            padding: [[1, 1], [1, 1]],
            dilation: [1, 1],
            bias: false,
            activation: Activation::Sigmoid,
        },
        Case {
            batch: 1,
            channels: [4, 3],
            size: [7, 10],
            kernel: [3, 3],
            stride: [1, 3],
            padding: [[0, 0], [2, 2]],
            dilation: [2, 1],
            bias: true,
            activation: Activation::None,
        },
        // A 1×1 convolution and a kernel as large as the input.
        Case {
            batch: 2,
            channels: [6, 2],
            size: [5, 5],
            kernel: [1, 1],
            stride: [1, 1],
            padding: [[0, 0], [0, 0]],
            dilation: [1, 1],
            bias: true,
            activation: Activation::None,
        },
        Case {
            batch: 2,
            channels: [3, 2],
            size: [4, 6],
            kernel: [4, 6],
            stride: [1, 1],
            padding: [[0, 0], [0, 0]],
            dilation: [1, 1],
            bias: false,
            activation: Activation::Sigmoid,
        },
        // Enough taps for the direct kernels (on machines with AVX2 and FMA), with stride 1
        // (every pass direct) and with a stride (the input gradient by im2col).
        Case {
            batch: 3,
            channels: [12, 20],
            size: [9, 10],
            kernel: [3, 3],
            stride: [1, 1],
            padding: [[1, 0], [2, 1]],
            dilation: [2, 1],
            bias: true,
            activation: Activation::Relu,
        },
        Case {
            batch: 2,
            channels: [9, 17],
            size: [11, 9],
            kernel: [3, 3],
            stride: [2, 1],
            padding: [[1, 1], [0, 2]],
            dilation: [1, 1],
            bias: false,
            activation: Activation::Tanh {
                outer: 1.7159,
                inner: 2.0 / 3.0,
            },
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        check_conv(case, 10 + i as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_convolutions_match_burn(
        batch in 1usize..4,
        ci in 1usize..5,
        co in 1usize..5,
        h in 3usize..12,
        w in 3usize..12,
        kh in 1usize..4,
        kw in 1usize..4,
        sh in 1usize..3,
        sw in 1usize..3,
        pads in proptest::array::uniform4(0usize..3),
        dh in 1usize..3,
        dw in 1usize..3,
        bias in any::<bool>(),
        activation in 0usize..4,
        seed in 0u64..1000,
    ) {
        let case = Case {
            batch,
            channels: [ci, co],
            size: [h, w],
            kernel: [kh, kw],
            stride: [sh, sw],
            padding: [[pads[0], pads[1]], [pads[2], pads[3]]],
            dilation: [dh, dw],
            bias,
            activation: ACTIVATIONS[activation],
        };
        // The dilated kernel must fit in the padded input.
        let fits = |a: usize| {
            case.size[a] + case.padding[a][0] + case.padding[a][1]
                > case.dilation[a] * (case.kernel[a] - 1)
        };
        prop_assume!(fits(0) && fits(1));
        check_conv(&case, seed);
    }
}

/// Pooling over tiles against Burn's pooling with stride = kernel: values and input gradients.
fn check_pool(dims: [usize; 4], kernel: [usize; 2], kind: PoolKind, seed: u64) {
    let device = Device::flex();
    device.seed(seed);
    let x: Tensor<4> = Tensor::random(dims, Distribution::Uniform(-1.0, 1.0), &device);
    let burn = |x: Tensor<4>| match kind {
        PoolKind::Max => max_pool2d(x, MaxPoolOptions::new(kernel).with_stride(kernel)),
        PoolKind::Avg => avg_pool2d(x, AvgPoolOptions::new(kernel).with_stride(kernel)),
    };
    let what = format!("{kind:?} pooling {dims:?} by {kernel:?}");
    close(
        lenet_kernels::pool2d(x.clone(), kind, kernel),
        burn(x.clone()),
        &what,
    );
    let expected = burn(x.clone()).dims();
    let r: Tensor<4> =
        Tensor::random(expected, Distribution::Uniform(-1.0, 1.0), &device).autodiff();
    let grad = |ours: bool| {
        let x = x.clone().autodiff().require_grad();
        let y = if ours {
            lenet_kernels::pool2d(x.clone(), kind, kernel)
        } else {
            burn(x.clone())
        };
        let g = (y * r.clone()).sum().backward();
        x.grad(&g).expect("input gradient")
    };
    close(grad(true), grad(false), &format!("gradient of {what}"));
}

#[test]
fn tile_pooling_matches_burn() {
    for (i, &(dims, kernel)) in [
        ([8, 6, 28, 28], [2, 2]),
        ([8, 16, 10, 10], [2, 2]),
        ([2, 3, 7, 7], [2, 2]),
        ([3, 4, 9, 12], [3, 3]),
        ([2, 2, 8, 6], [2, 3]),
        ([4, 6, 5, 5], [5, 5]),
        ([1, 1, 6, 6], [1, 1]),
    ]
    .iter()
    .enumerate()
    {
        check_pool(dims, kernel, PoolKind::Max, 100 + i as u64);
        check_pool(dims, kernel, PoolKind::Avg, 200 + i as u64);
    }
}

/// The element-wise nonlinearity (the dense layers' activation) against Burn's: values and input
/// gradients, on a 2D and a 4D tensor with a remainder after the 8-value vectors, inputs reaching
/// tanh's clamp (±7.9).
#[test]
fn elementwise_activations_match_burn() {
    let device = Device::flex();
    for (i, activation) in ACTIVATIONS.into_iter().enumerate() {
        device.seed(300 + i as u64);
        let u = Distribution::Uniform(-12.0, 12.0);
        let x2: Tensor<2> = Tensor::random([37, 84], u, &device);
        let x4: Tensor<4> = Tensor::random([3, 5, 7, 9], u, &device);
        check_activation(x2, activation);
        check_activation(x4, activation);
    }
}

fn check_activation<const D: usize>(x: Tensor<D>, activation: Activation) {
    assert!(lenet_kernels::activation_applies(&x));
    let what = format!("{activation:?} on {:?}", x.dims());
    let ours = lenet_kernels::activation(x.clone(), activation);
    close(ours, burn_activation(x.clone(), activation), &what);
    let r: Tensor<D> =
        Tensor::random(x.dims(), Distribution::Uniform(-1.0, 1.0), &x.device()).autodiff();
    let grad = |ours: bool| {
        let x = x.clone().autodiff().require_grad();
        let y = match ours {
            true => lenet_kernels::activation(x.clone(), activation),
            false => burn_activation(x.clone(), activation),
        };
        let g = (y * r.clone()).sum().backward();
        x.grad(&g).expect("input gradient")
    };
    close(grad(true), grad(false), &format!("gradient of {what}"));
}

/// Dense layers (LeNet-5's three, odd sizes) with each nonlinearity fused: values, and the
/// gradients of the input, weights and bias, against Burn's `x · W + b` and its activation.
#[test]
fn dense_layers_match_burn() {
    let device = Device::flex();
    let shapes = [(64, 400, 120), (37, 120, 84), (5, 84, 10), (1, 17, 3)];
    let u = Distribution::Uniform(-1.0, 1.0);
    for (k, (batch, inputs, outputs)) in shapes.into_iter().enumerate() {
        for (i, activation) in ACTIVATIONS.into_iter().enumerate() {
            device.seed(500 + 10 * k as u64 + i as u64);
            let x: Tensor<2> = Tensor::random([batch, inputs], u, &device);
            let w: Tensor<2> = Tensor::random([inputs, outputs], u, &device);
            let b: Tensor<1> = Tensor::random([outputs], u, &device);
            assert!(lenet_kernels::linear_applies(&x, &w));
            let burn = |x: Tensor<2>, w: Tensor<2>, b: Tensor<1>| {
                burn_activation(x.matmul(w) + b.unsqueeze(), activation)
            };
            let what = format!("{batch}x{inputs} -> {outputs}, {activation:?}");
            let ours = lenet_kernels::linear(x.clone(), w.clone(), b.clone(), activation);
            close(ours, burn(x.clone(), w.clone(), b.clone()), &what);
            let r: Tensor<2> = Tensor::random([batch, outputs], u, &device).autodiff();
            let grads = |ours: bool| {
                let x = x.clone().autodiff().require_grad();
                let w = w.clone().autodiff().require_grad();
                let b = b.clone().autodiff().require_grad();
                let y = match ours {
                    true => lenet_kernels::linear(x.clone(), w.clone(), b.clone(), activation),
                    false => burn(x.clone(), w.clone(), b.clone()),
                };
                let g = (y * r.clone()).sum().backward();
                (
                    x.grad(&g).expect("input gradient"),
                    w.grad(&g).expect("weight gradient"),
                    b.grad(&g).expect("bias gradient"),
                )
            };
            let ((ox, ow, ob), (bx, bw, bb)) = (grads(true), grads(false));
            close(ox, bx, &format!("input gradient {what}"));
            close(ow, bw, &format!("weight gradient {what}"));
            close(ob, bb, &format!("bias gradient {what}"));
        }
    }
}

/// Batch normalisation with the batch's statistics (training) and with given ones (inference):
/// values, the statistics, and the gradients of the input, scale and shift, against Burn's
/// `batch_norm_train` and `batch_norm`.
#[test]
fn batch_norm_matches_burn() {
    use burn::tensor::module::{batch_norm, batch_norm_train};
    use lenet_kernels::{BatchStats, NormSpec};
    let device = Device::flex();
    for (i, dims) in [[2, 3, 4, 5], [8, 16, 28, 28], [5, 48, 14, 14], [1, 2, 1, 1]]
        .into_iter()
        .enumerate()
    {
        device.seed(40 + i as u64);
        let u = Distribution::Uniform(-1.0, 1.0);
        // Not centred, not of unit variance.
        let x: Tensor<4> = Tensor::random(dims, u, &device)
            .mul_scalar(3.0)
            .add_scalar(0.7);
        let gamma: Tensor<1> = Tensor::random([dims[1]], u, &device).add_scalar(1.0);
        let beta: Tensor<1> = Tensor::random([dims[1]], u, &device);
        let r: Tensor<4> = Tensor::random(dims, u, &device).autodiff();
        let eps = 1e-5;
        let what = format!("{dims:?}");
        assert!(lenet_kernels::batch_norm_applies(&x));

        let stats = BatchStats::of(&x);
        let reference = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), eps);
        close(
            stats.mean(),
            reference.mean.clone(),
            &format!("means {what}"),
        );
        close(
            stats.var(),
            reference.variance.clone(),
            &format!("variances {what}"),
        );

        for batch_stats in [true, false] {
            let spec = NormSpec {
                epsilon: eps as f32,
                batch_stats,
            };
            // Given statistics: made-up running ones.
            let running = BatchStats::new(
                Tensor::random([dims[1]], u, &device),
                Tensor::random([dims[1]], Distribution::Uniform(0.5, 2.0), &device),
            );
            let run = |ours: bool| {
                let x = x.clone().autodiff().require_grad();
                let gamma = gamma.clone().autodiff().require_grad();
                let beta = beta.clone().autodiff().require_grad();
                let y = match (ours, batch_stats) {
                    (true, _) => {
                        let stats = match batch_stats {
                            true => BatchStats::of(&x),
                            false => {
                                BatchStats::new(running.mean().autodiff(), running.var().autodiff())
                            }
                        };
                        lenet_kernels::batch_norm(
                            x.clone(),
                            &stats,
                            gamma.clone(),
                            beta.clone(),
                            spec,
                        )
                    }
                    (false, true) => {
                        batch_norm_train(x.clone(), gamma.clone(), beta.clone(), eps).output
                    }
                    (false, false) => batch_norm(
                        x.clone(),
                        gamma.clone(),
                        beta.clone(),
                        running.mean().autodiff(),
                        running.var().autodiff(),
                        eps,
                    ),
                };
                let g = (y.clone() * r.clone()).sum().backward();
                (
                    y.inner(),
                    x.grad(&g).expect("input gradient"),
                    gamma.grad(&g).expect("scale gradient"),
                    beta.grad(&g).expect("shift gradient"),
                )
            };
            let (oy, ox, og, ob) = run(true);
            let (by, bx, bg, bb) = run(false);
            let what = format!("{what}, batch statistics {batch_stats}");
            close(oy, by, &format!("output {what}"));
            close(ox, bx, &format!("input gradient {what}"));
            close(og, bg, &format!("scale gradient {what}"));
            close(ob, bb, &format!("shift gradient {what}"));
        }
    }
}

#[test]
fn other_devices_and_dtypes_are_not_taken() {
    #[allow(deprecated)]
    let ndarray = Device::ndarray();
    let x: Tensor<4> = Tensor::zeros([1, 1, 4, 4], &ndarray);
    let w: Tensor<4> = Tensor::zeros([1, 1, 3, 3], &ndarray);
    let spec = ConvSpec {
        stride: [1, 1],
        padding: [[0, 0], [0, 0]],
        dilation: [1, 1],
        activation: Activation::None,
        pool: None,
    };
    assert!(!lenet_kernels::conv2d_applies(&x, &w, &spec));
    assert!(!lenet_kernels::pool2d_applies(&x, [2, 2]));
    assert!(!lenet_kernels::activation_applies(&x));
    assert!(!lenet_kernels::batch_norm_applies(&x));
    let (x2, w2): (Tensor<2>, Tensor<2>) = (
        Tensor::zeros([2, 3], &ndarray),
        Tensor::zeros([3, 4], &ndarray),
    );
    assert!(!lenet_kernels::linear_applies(&x2, &w2));
    let flex = Device::flex();
    assert!(lenet_kernels::device_applies(&flex));
    assert!(lenet_kernels::device_applies(&flex.clone().autodiff()));
    // A kernel that does not fit, or channels that do not match, are refused.
    let x: Tensor<4> = Tensor::zeros([1, 2, 4, 4], &flex);
    let big: Tensor<4> = Tensor::zeros([1, 2, 5, 5], &flex);
    assert!(!lenet_kernels::conv2d_applies(&x, &big, &spec));
    let wrong: Tensor<4> = Tensor::zeros([1, 3, 3, 3], &flex);
    assert!(!lenet_kernels::conv2d_applies(&x, &wrong, &spec));
    assert!(!lenet_kernels::pool2d_applies(&x, [5, 2]));
    // Weights whose rows do not match the input's width.
    let (x2, w2): (Tensor<2>, Tensor<2>) =
        (Tensor::zeros([2, 3], &flex), Tensor::zeros([4, 3], &flex));
    assert!(!lenet_kernels::linear_applies(&x2, &w2));
}
