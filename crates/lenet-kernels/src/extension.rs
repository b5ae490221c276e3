//! The kernels as a Burn backend extension: one trait, implemented for flex (the forward passes)
//! and for autodiff over flex (the forward passes plus hand-written backward steps that call the
//! gradient kernels). Burn routes a call to the implementation of the tensors' device; only flex
//! and autodiff-over-flex are listed, so callers check [`crate::device_applies`] first.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, AutodiffBackend, Backend, Flex, TensorMetadata};
use burn::tensor::TensorData;

use crate::conv::{self, Activation, ConvGeometry};
use crate::linear::{self, LinearGeometry};
use crate::norm::{self, NormGeometry};
use crate::pool::{self, PoolKind, PoolSpec};

/// The hyper-parameters of a convolution; sizes come from the tensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvSpec {
    /// Per axis (height, width).
    pub stride: [usize; 2],
    /// Per axis: (before, after).
    pub padding: [[usize; 2]; 2],
    /// Per axis.
    pub dilation: [usize; 2],
    /// A nonlinearity fused into the convolution (forward and backward): applied to each image
    /// while it is in cache instead of in passes of its own.
    pub activation: Activation,
    /// Pooling fused into the convolution after the nonlinearity: each image's output is pooled
    /// while it is in cache, and only the pooled maps are written. Where gradients are tracked,
    /// the convolution's output is kept for the backward pass, which takes the gradient back
    /// through the pooling and the nonlinearity one image at a time inside the convolution's
    /// gradient kernels.
    pub pool: Option<PoolSpec>,
}

impl ConvSpec {
    pub(crate) fn geometry(&self, x: &[usize], weight: &[usize]) -> ConvGeometry {
        ConvGeometry {
            batch: x[0],
            in_channels: x[1],
            in_size: [x[2], x[3]],
            out_channels: weight[0],
            kernel: [weight[2], weight[3]],
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        }
    }
}

#[backend_extension(Flex, Autodiff)]
pub trait LenetKernels: Backend {
    /// 2D convolution, groups 1, `x` `[n, c, h, w]`, `weight` `[o, c, kh, kw]`, `bias` `[o]`.
    fn lenet_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> FloatTensor<Self>;

    /// [`Self::lenet_conv2d`] without a bias (the macro takes no optional tensor inputs).
    fn lenet_conv2d_no_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> FloatTensor<Self>;

    /// Pooling of `x` `[n, c, h, w]` over non-overlapping tiles.
    fn lenet_pool2d(x: FloatTensor<Self>, spec: PoolSpec) -> FloatTensor<Self>;

    /// A dense layer: `activation(x · weight + bias)` for `x` `[n, inputs]`, `weight` `[inputs,
    /// outputs]` (Burn's `Linear` layout) and `bias` `[outputs]`.
    fn lenet_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        activation: Activation,
    ) -> FloatTensor<Self>;

    /// A nonlinearity applied to every value of `x` (any shape): the dense layers' activation,
    /// one vectorised pass forward and one backward.
    fn lenet_activation(x: FloatTensor<Self>, activation: Activation) -> FloatTensor<Self>;

    /// The per-channel statistics of `x` `[n, c, h, w]` for batch normalisation, `[2, c]`: the
    /// means, then the biased variances. Never tracked: with `spec.batch_stats`,
    /// [`Self::lenet_batch_norm`]'s gradient includes the path through them.
    fn lenet_batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Batch normalisation of `x` `[n, c, h, w]` with the statistics `stats` `[2, c]` (means,
    /// variances), scale `gamma` `[c]` and shift `beta` `[c]`.
    fn lenet_batch_norm(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        spec: NormSpec,
    ) -> FloatTensor<Self>;
}

/// How [`LenetKernels::lenet_batch_norm`] normalises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormSpec {
    /// Added to the variance before its square root.
    pub epsilon: f32,
    /// Whether the statistics are the batch's own (training: the gradient flows through them
    /// too) or given constants (the running statistics of inference).
    pub batch_stats: bool,
}

type FlexTensor = FloatTensor<Flex>;

/// The `f32` values of a flex tensor, in row-major order (a copy).
fn values(t: &FlexTensor) -> Vec<f32> {
    let t = t.to_contiguous();
    match t.as_slice::<f32>() {
        Some(s) => s.to_vec(),
        // A flex float tensor always converts to f32; failing here is a bug, not bad input, and
        // must not turn into zero-filled values.
        None => t
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .unwrap_or_else(|e| {
                panic!("lenet-kernels: a flex float tensor has no f32 values: {e:?}")
            }),
    }
}

/// Runs `f` on the `f32` values of `t`, without a copy when the tensor is contiguous.
fn with_values<R>(t: &FlexTensor, f: impl FnOnce(&[f32]) -> R) -> R {
    if let Some(s) = t.as_slice::<f32>() {
        return f(s);
    }
    f(&values(t))
}

/// The dimensions of a 4D tensor's shape.
fn shape4(shape: &[usize]) -> [usize; 4] {
    [shape[0], shape[1], shape[2], shape[3]]
}

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    Flex::float_from_data(TensorData::new(values, shape), &Default::default())
}

fn conv_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    spec: &ConvSpec,
) -> FlexTensor {
    let g = spec.geometry(&x.shape(), &weight.shape());
    let out = g
        .out_size()
        .expect("lenet_conv2d: kernel larger than the padded input (checked by the caller)");
    let [oh, ow] = match spec.pool {
        Some(p) => p
            .geometry(&[g.batch, g.out_channels, out[0], out[1]])
            .out_size(),
        None => out,
    };
    let bias = bias.map(values);
    let y = with_values(x, |xs| {
        with_values(weight, |ws| {
            conv::forward(&g, xs, ws, bias.as_deref(), spec.activation, spec.pool)
        })
    });
    tensor(y, [g.batch, g.out_channels, oh, ow])
}

fn pool_forward(x: &FlexTensor, spec: &PoolSpec) -> FlexTensor {
    let shape = x.shape();
    let g = spec.geometry(&shape);
    let [oh, ow] = g.out_size();
    let y = with_values(x, |xs| pool::forward(&g, spec.kind, xs));
    tensor(y, [shape[0], shape[1], oh, ow])
}

/// The geometry of a 4D tensor for the normalisation kernels.
fn norm_geometry(shape: &[usize]) -> NormGeometry {
    let [n, c, h, w] = shape4(shape);
    NormGeometry {
        batch: n,
        channels: c,
        plane: h * w,
    }
}

fn batch_stats(x: &FlexTensor) -> FlexTensor {
    let g = norm_geometry(&x.shape());
    let (mut mean, var) = with_values(x, |xs| norm::stats(&g, xs));
    mean.extend(var);
    tensor(mean, [2, g.channels])
}

/// The means and inverse standard deviations of `stats` `[2, c]`.
fn mean_and_inv_std(stats: &FlexTensor, epsilon: f32) -> (Vec<f32>, Vec<f32>) {
    let mut mean = values(stats);
    let var = mean.split_off(mean.len() / 2);
    (mean, norm::inverse_std(&var, epsilon))
}

fn batch_norm_forward(
    x: &FlexTensor,
    mean: &[f32],
    inv_std: &[f32],
    gamma: &FlexTensor,
    beta: &FlexTensor,
) -> FlexTensor {
    let g = norm_geometry(&x.shape());
    let (gamma, beta) = (values(gamma), values(beta));
    let y = with_values(x, |xs| norm::forward(&g, xs, mean, inv_std, &gamma, &beta));
    Flex::float_from_data(TensorData::new(y, x.shape()), &Default::default())
}

/// The geometry of a dense layer from its input's and weights' shapes.
fn linear_geometry(x: &[usize], weight: &[usize]) -> LinearGeometry {
    LinearGeometry {
        batch: x[0],
        inputs: x[1],
        outputs: weight[1],
    }
}

fn linear_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    activation: Activation,
) -> FlexTensor {
    let g = linear_geometry(&x.shape(), &weight.shape());
    let y = with_values(x, |xs| {
        with_values(weight, |ws| {
            with_values(bias, |bs| linear::forward(&g, xs, ws, Some(bs), activation))
        })
    });
    tensor(y, [g.batch, g.outputs])
}

fn activation_forward(x: &FlexTensor, activation: Activation) -> FlexTensor {
    let mut y = values(x);
    activation.apply_all(&mut y);
    Flex::float_from_data(TensorData::new(y, x.shape()), &Default::default())
}

impl LenetKernels for Flex {
    fn lenet_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        spec: ConvSpec,
    ) -> FlexTensor {
        conv_forward(&x, &weight, Some(&bias), &spec)
    }

    fn lenet_conv2d_no_bias(x: FlexTensor, weight: FlexTensor, spec: ConvSpec) -> FlexTensor {
        conv_forward(&x, &weight, None, &spec)
    }

    fn lenet_pool2d(x: FlexTensor, spec: PoolSpec) -> FlexTensor {
        pool_forward(&x, &spec)
    }

    fn lenet_linear(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        activation: Activation,
    ) -> FlexTensor {
        linear_forward(&x, &weight, &bias, activation)
    }

    fn lenet_activation(x: FlexTensor, activation: Activation) -> FlexTensor {
        activation_forward(&x, activation)
    }

    fn lenet_batch_stats(x: FlexTensor) -> FlexTensor {
        batch_stats(&x)
    }

    fn lenet_batch_norm(
        x: FlexTensor,
        stats: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        spec: NormSpec,
    ) -> FlexTensor {
        let (mean, inv_std) = mean_and_inv_std(&stats, spec.epsilon);
        batch_norm_forward(&x, &mean, &inv_std, &gamma, &beta)
    }
}

/// What the backward step of a convolution needs: its input and weights, with a fused
/// nonlinearity its output, with a fused pooling its output and the pooled maps (flex tensors
/// share their buffers, so keeping them costs no copy).
#[derive(Debug, Clone)]
struct ConvState {
    x: FlexTensor,
    weight: FlexTensor,
    output: Option<FlexTensor>,
    pooled: Option<PooledState>,
    spec: ConvSpec,
}

/// A fused pooling's part of [`ConvState`]: its spec, the convolution's (activated) output and
/// the pooled maps.
#[derive(Debug, Clone)]
struct PooledState {
    spec: PoolSpec,
    input: FlexTensor,
    output: FlexTensor,
}

/// Gradients of one convolution: of the input, and of the weights with the bias.
type ConvGrads = (Option<FlexTensor>, Option<(FlexTensor, FlexTensor)>);

impl ConvState {
    /// The convolution's output, pooled where `spec` says so, and what its backward step will
    /// need. The pooling is part of this step, so that its backward pass runs inside the
    /// convolution's, one image at a time, instead of writing the unpooled gradient (megabytes
    /// at LeNet's batch sizes) and reading it back (measured: `lenet train`, LeNet-5 at batch
    /// 256: max pooling's backward pass and the zeroing of its output were 12 % of a step).
    fn forward(
        x: FlexTensor,
        weight: FlexTensor,
        bias: Option<&FlexTensor>,
        spec: ConvSpec,
    ) -> (ConvState, FlexTensor) {
        let y = conv_forward(&x, &weight, bias, &unpooled(spec));
        let output = (spec.activation != Activation::None).then(|| y.clone());
        let (pooled, out) = match spec.pool {
            Some(pool) => {
                let p = pool_forward(&y, &pool);
                let state = PooledState {
                    spec: pool,
                    input: y,
                    output: p.clone(),
                };
                (Some(state), p)
            }
            None => (None, y),
        };
        let state = ConvState {
            x,
            weight,
            output,
            pooled,
            spec,
        };
        (state, out)
    }

    /// The gradients of the input and of the weights and bias, each only when asked for, from
    /// the gradient `dy` of the step's output (the pooled maps where a pooling is fused).
    fn gradients(&self, dy: &FlexTensor, want_x: bool, want_weight: bool) -> ConvGrads {
        let x_shape = self.x.shape();
        let w_shape = self.weight.shape();
        let g = self.spec.geometry(&x_shape, &w_shape);
        let run = |dy: conv::OutputGrad<'_>| -> ConvGrads {
            let dx = want_x.then(|| {
                let dx = with_values(&self.weight, |ws| conv::backward_input(&g, ws, dy));
                tensor(dx, [x_shape[0], x_shape[1], x_shape[2], x_shape[3]])
            });
            let dw = want_weight.then(|| {
                let (dw, db) = with_values(&self.x, |xs| conv::backward_weight(&g, xs, dy));
                let n = db.len();
                (
                    tensor(dw, [w_shape[0], w_shape[1], w_shape[2], w_shape[3]]),
                    tensor(db, [n]),
                )
            });
            (dx, dw)
        };
        let activated = |dy: &[f32], pooled: Option<conv::Pooled<'_>>| match &self.output {
            Some(y) => with_values(y, |ys| {
                run(conv::OutputGrad {
                    dy,
                    activated: Some((self.spec.activation, ys)),
                    pooled,
                })
            }),
            None => run(conv::OutputGrad {
                dy,
                activated: None,
                pooled,
            }),
        };
        with_values(dy, |dy| match &self.pooled {
            Some(p) => {
                let [n, c, h, w] = shape4(&p.input.shape());
                let geometry = p.spec.geometry(&[1, c, h, w]);
                debug_assert_eq!(n, g.batch);
                with_values(&p.input, |input| {
                    with_values(&p.output, |output| {
                        let pooled = conv::Pooled {
                            kind: p.spec.kind,
                            geometry,
                            input,
                            output,
                        };
                        activated(dy, Some(pooled))
                    })
                })
            }
            None => activated(dy, None),
        })
    }
}

#[derive(Debug)]
struct ConvWithBias;

impl Backward<Flex, 3> for ConvWithBias {
    type State = ConvState;

    fn backward(self, ops: Ops<ConvState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let want_weight = node_w.is_some() || node_b.is_some();
        let (dx, dwb) = ops.state.gradients(&dy, node_x.is_some(), want_weight);
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, dx);
        }
        if let Some((dw, db)) = dwb {
            if let Some(node) = node_w {
                grads.register::<Flex>(node.id, dw);
            }
            if let Some(node) = node_b {
                grads.register::<Flex>(node.id, db);
            }
        }
    }
}

#[derive(Debug)]
struct ConvNoBias;

impl Backward<Flex, 2> for ConvNoBias {
    type State = ConvState;

    fn backward(self, ops: Ops<ConvState, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (dx, dwb) = ops.state.gradients(&dy, node_x.is_some(), node_w.is_some());
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, dx);
        }
        if let (Some(node), Some((dw, _))) = (node_w, dwb) {
            grads.register::<Flex>(node.id, dw);
        }
    }
}

/// What the backward step of a pooling needs: for max pooling its input and output (shared
/// buffers, no copy), for average pooling the input shape.
#[derive(Debug, Clone)]
struct PoolState {
    spec: PoolSpec,
    x_shape: [usize; 4],
    max: Option<(FlexTensor, FlexTensor)>,
}

#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = PoolState;

    fn backward(self, ops: Ops<PoolState, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let Some(node) = node_x else { return };
        let PoolState { spec, x_shape, max } = ops.state;
        let g = spec.geometry(&x_shape);
        let dx = with_values(&dy, |dy| match &max {
            Some((x, y)) => with_values(x, |xs| {
                with_values(y, |ys| pool::max_backward(&g, xs, ys, dy))
            }),
            None => pool::avg_backward(&g, dy),
        });
        grads.register::<Flex>(node.id, tensor(dx, x_shape));
    }
}

/// What the backward step of a dense layer needs: its input and weights, and with a
/// nonlinearity its output (shared buffers, no copies).
#[derive(Debug, Clone)]
struct LinearState {
    x: FlexTensor,
    weight: FlexTensor,
    output: Option<FlexTensor>,
    activation: Activation,
}

#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    type State = LinearState;

    fn backward(self, ops: Ops<LinearState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let s = ops.state;
        let (x_shape, w_shape) = (s.x.shape(), s.weight.shape());
        let g = linear_geometry(&x_shape, &w_shape);
        let want_weight = node_w.is_some() || node_b.is_some();
        let run = |output: Option<&[f32]>| {
            with_values(&dy, |dy| {
                with_values(&s.x, |xs| {
                    with_values(&s.weight, |ws| {
                        linear::backward(
                            &g,
                            xs,
                            ws,
                            output,
                            s.activation,
                            dy,
                            node_x.is_some(),
                            want_weight,
                        )
                    })
                })
            })
        };
        let (dx, dwb) = match &s.output {
            Some(y) => with_values(y, |ys| run(Some(ys))),
            None => run(None),
        };
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, tensor(dx, [g.batch, g.inputs]));
        }
        if let Some((dw, db)) = dwb {
            if let Some(node) = node_w {
                grads.register::<Flex>(node.id, tensor(dw, [g.inputs, g.outputs]));
            }
            if let Some(node) = node_b {
                grads.register::<Flex>(node.id, tensor(db, [g.outputs]));
            }
        }
    }
}

/// What the backward step of a nonlinearity needs: its output (a shared buffer, no copy).
#[derive(Debug, Clone)]
struct ActivationState {
    activation: Activation,
    output: FlexTensor,
}

#[derive(Debug)]
struct ActivationBackward;

impl Backward<Flex, 1> for ActivationBackward {
    type State = ActivationState;

    fn backward(self, ops: Ops<ActivationState, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let Some(node) = node_x else { return };
        let ActivationState { activation, output } = ops.state;
        let mut dx = Vec::new();
        with_values(&dy, |dy| {
            with_values(&output, |ys| activation.backward_all(ys, dy, &mut dx))
        });
        let dx = Flex::float_from_data(TensorData::new(dx, output.shape()), &Default::default());
        grads.register::<Flex>(node.id, dx);
    }
}

/// What the backward step of a batch normalisation needs: its input (a shared buffer, no copy),
/// the statistics it normalised with and its scale.
#[derive(Debug, Clone)]
struct NormState {
    x: FlexTensor,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    gamma: Vec<f32>,
    batch_stats: bool,
}

#[derive(Debug)]
struct NormBackward;

impl Backward<Flex, 3> for NormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<NormState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let s = ops.state;
        let shape = s.x.shape();
        let g = norm_geometry(&shape);
        let (dx, dgamma, dbeta) = with_values(&dy, |dy| {
            with_values(&s.x, |xs| {
                norm::backward(&g, xs, dy, &s.mean, &s.inv_std, &s.gamma, s.batch_stats)
            })
        });
        if let Some(node) = node_x {
            let dx = Flex::float_from_data(TensorData::new(dx, shape), &Default::default());
            grads.register::<Flex>(node.id, dx);
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, tensor(dgamma, [g.channels]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, tensor(dbeta, [g.channels]));
        }
    }
}

/// `spec` without its pooling: the convolution's own step where gradients are tracked.
fn unpooled(spec: ConvSpec) -> ConvSpec {
    ConvSpec { pool: None, ..spec }
}

impl<C: CheckpointStrategy> LenetKernels for Autodiff<Flex, C> {
    fn lenet_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, w_node) = weight.into_parts();
        let (bias, b_node) = bias.into_parts();
        match ConvWithBias
            .prepare::<C>([x_node, w_node, b_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (state, y) = ConvState::forward(x, weight, Some(&bias), spec);
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(conv_forward(&x, &weight, Some(&bias), &spec)),
        }
    }

    fn lenet_conv2d_no_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, w_node) = weight.into_parts();
        match ConvNoBias
            .prepare::<C>([x_node, w_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (state, y) = ConvState::forward(x, weight, None, spec);
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(conv_forward(&x, &weight, None, &spec)),
        }
    }

    fn lenet_pool2d(x: FloatTensor<Self>, spec: PoolSpec) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let y = pool_forward(&x, &spec);
        match PoolBackward
            .prepare::<C>([x_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let shape = x.shape();
                let x_shape = [shape[0], shape[1], shape[2], shape[3]];
                let max = (spec.kind == PoolKind::Max).then(|| (x, y.clone()));
                prep.finish(PoolState { spec, x_shape, max }, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn lenet_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        activation: Activation,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, w_node) = weight.into_parts();
        let (bias, b_node) = bias.into_parts();
        let y = linear_forward(&x, &weight, &bias, activation);
        match LinearBackward
            .prepare::<C>([x_node, w_node, b_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = LinearState {
                    x,
                    weight,
                    output: (activation != Activation::None).then(|| y.clone()),
                    activation,
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn lenet_activation(x: FloatTensor<Self>, activation: Activation) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let y = activation_forward(&x, activation);
        match ActivationBackward
            .prepare::<C>([x_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = ActivationState {
                    activation,
                    output: y.clone(),
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn lenet_batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as AutodiffBackend>::from_inner(batch_stats(x.primitive()))
    }

    fn lenet_batch_norm(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        spec: NormSpec,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (gamma, gamma_node) = gamma.into_parts();
        let (beta, beta_node) = beta.into_parts();
        let (mean, inv_std) = mean_and_inv_std(stats.primitive(), spec.epsilon);
        let y = batch_norm_forward(&x, &mean, &inv_std, &gamma, &beta);
        match NormBackward
            .prepare::<C>([x_node, gamma_node, beta_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = NormState {
                    x,
                    mean,
                    inv_std,
                    gamma: values(&gamma),
                    batch_stats: spec.batch_stats,
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}
