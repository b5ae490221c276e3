//! The network as a Burn module, built from a validated [`Plan`].
//!
//! Burn 0.22 has no backend type parameter: tensors are `Tensor<D>` and the backend is the
//! run-time [`Device`] the module is built on, so this one type runs on every backend
//! (flex, ndarray, wgpu, cuda) and saves to and loads from Burn's burnpack records.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, Conv3d, Conv3dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig1d,
    PaddingConfig2d, PaddingConfig3d,
};
use burn::tensor::module::{avg_pool2d, conv1d, conv2d, conv3d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Distribution, Tensor};
use lenet_kernels::ConvSpec;

use crate::activation::Activation;
use crate::config::{Init, ModelConfig, OutputKind, PoolKind};
use crate::error::ModelError;
use crate::plan::{BlockPlan, ConvPlan, Plan, PoolPlan};
use crate::rbf::Rbf;

/// A batch of inputs or feature maps: `[batch, channels, size...]` with 1, 2 or 3 spatial
/// dimensions. The number of spatial dimensions decides which convolution is applied.
#[derive(Debug, Clone)]
pub enum FeatureMap {
    /// `[batch, channels, length]`.
    D1(Tensor<3>),
    /// `[batch, channels, height, width]`.
    D2(Tensor<4>),
    /// `[batch, channels, depth, height, width]`.
    D3(Tensor<5>),
}

impl FeatureMap {
    /// The shape, batch first.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            FeatureMap::D1(t) => t.dims().to_vec(),
            FeatureMap::D2(t) => t.dims().to_vec(),
            FeatureMap::D3(t) => t.dims().to_vec(),
        }
    }

    /// `[batch, everything else]`, the input of the classifier.
    pub fn flatten(self) -> Tensor<2> {
        match self {
            FeatureMap::D1(t) => t.flatten(1, 2),
            FeatureMap::D2(t) => t.flatten(1, 3),
            FeatureMap::D3(t) => t.flatten(1, 4),
        }
    }

    /// The values, row-major, as `f32` (for pictures and inspection).
    pub fn to_vec(&self) -> Result<Vec<f32>, ModelError> {
        let data = match self {
            FeatureMap::D1(t) => t.to_data(),
            FeatureMap::D2(t) => t.to_data(),
            FeatureMap::D3(t) => t.to_data(),
        };
        values(data)
    }

    fn map_act(self, act: Activation) -> Self {
        match self {
            FeatureMap::D1(t) => FeatureMap::D1(act.forward(t)),
            FeatureMap::D2(t) => FeatureMap::D2(act.forward(t)),
            FeatureMap::D3(t) => FeatureMap::D3(act.forward(t)),
        }
    }
}

/// A convolution of the dimensionality of the input.
#[derive(Module, Debug)]
pub enum Conv {
    /// Slides along one direction.
    D1(Conv1d),
    /// Slides along two directions.
    D2(Conv2d),
    /// Slides along three directions.
    D3(Conv3d),
}

impl Conv {
    fn new(p: &ConvPlan, device: &Device) -> Conv {
        let ch = [p.in_channels, p.out_channels];
        match p.kernel.len() {
            1 => Conv::D1(
                Conv1dConfig::new(p.in_channels, p.out_channels, p.kernel[0])
                    .with_stride(p.stride[0])
                    .with_dilation(p.dilation[0])
                    .with_groups(p.groups)
                    .with_bias(p.bias)
                    .with_padding(PaddingConfig1d::Explicit(p.padding[0].0, p.padding[0].1))
                    .init(device),
            ),
            2 => Conv::D2(
                Conv2dConfig::new(ch, [p.kernel[0], p.kernel[1]])
                    .with_stride([p.stride[0], p.stride[1]])
                    .with_dilation([p.dilation[0], p.dilation[1]])
                    .with_groups(p.groups)
                    .with_bias(p.bias)
                    .with_padding(PaddingConfig2d::Explicit(
                        p.padding[0].0,
                        p.padding[1].0,
                        p.padding[0].1,
                        p.padding[1].1,
                    ))
                    .init(device),
            ),
            // The plan guarantees symmetric padding for 3D (Burn's conv3d pads symmetrically).
            _ => Conv::D3(
                Conv3dConfig::new(ch, [p.kernel[0], p.kernel[1], p.kernel[2]])
                    .with_stride([p.stride[0], p.stride[1], p.stride[2]])
                    .with_dilation([p.dilation[0], p.dilation[1], p.dilation[2]])
                    .with_groups(p.groups)
                    .with_bias(p.bias)
                    .with_padding(PaddingConfig3d::Explicit(
                        p.padding[0].0,
                        p.padding[1].0,
                        p.padding[2].0,
                    ))
                    .init(device),
            ),
        }
    }

    /// Applies the convolution (a cross-correlation: the kernel is not flipped).
    pub fn forward(&self, x: FeatureMap) -> FeatureMap {
        self.forward_connected(x, None)
    }

    /// Applies the convolution with a connection table: filter `o` sees only the input
    /// channels `table[o]` (the other kernels are multiplied by zero, so they get no gradient).
    pub fn forward_connected(&self, x: FeatureMap, table: Option<&Table>) -> FeatureMap {
        if let Some(y) = self.on_kernels(&x, lenet_kernels::Activation::None, None, table) {
            return y;
        }
        match (self, x) {
            (Conv::D1(c), FeatureMap::D1(t)) if table.is_none() => FeatureMap::D1(c.forward(t)),
            (Conv::D2(c), FeatureMap::D2(t)) if table.is_none() => FeatureMap::D2(c.forward(t)),
            (Conv::D3(c), FeatureMap::D3(t)) if table.is_none() => FeatureMap::D3(c.forward(t)),
            // Burn's modules' own forward passes, with the weights masked. `Conv::new` builds
            // every convolution with explicit padding (the plan resolves "same").
            (Conv::D1(c), FeatureMap::D1(t)) => {
                let pad = match c.padding {
                    PaddingConfig1d::Explicit(left, right) => (left, right),
                    _ => (0, 0),
                };
                let options =
                    ConvOptions::new_with_padding([c.stride], [pad], [c.dilation], c.groups);
                let w = connected(c.weight.val(), table);
                FeatureMap::D1(conv1d(t, w, bias(&c.bias), options))
            }
            (Conv::D2(c), FeatureMap::D2(t)) => {
                let pads = match c.padding {
                    PaddingConfig2d::Explicit(top, left, bottom, right) => {
                        [(top, bottom), (left, right)]
                    }
                    _ => [(0, 0); 2],
                };
                let options = ConvOptions::new_with_padding(c.stride, pads, c.dilation, c.groups);
                let w = connected(c.weight.val(), table);
                FeatureMap::D2(conv2d(t, w, bias(&c.bias), options))
            }
            (Conv::D3(c), FeatureMap::D3(t)) => {
                let padding = match c.padding {
                    PaddingConfig3d::Explicit(d, h, w) => [d, h, w],
                    _ => [0; 3],
                };
                let options = ConvOptions::new(c.stride, padding, c.dilation, c.groups);
                let w = connected(c.weight.val(), table);
                FeatureMap::D3(conv3d(t, w, bias(&c.bias), options))
            }
            (_, x) => panic!(
                "a {}D convolution cannot take an input of shape {:?}; check ConvNet::check_input",
                self.spatial_dims(),
                x.dims()
            ),
        }
    }

    /// The convolution followed by `activation` (and in 2D by `pool`) on [`lenet_kernels`]
    /// (flex, with or without autodiff: training, evaluation, prediction), or `None` where they
    /// do not apply (other backends, 3D, groups, `same` padding) and Burn's ops are used.
    /// Measured gains are in docs/performance.md.
    fn on_kernels(
        &self,
        x: &FeatureMap,
        activation: lenet_kernels::Activation,
        pool: Option<lenet_kernels::PoolSpec>,
        table: Option<&Table>,
    ) -> Option<FeatureMap> {
        match (self, x) {
            (Conv::D1(c), FeatureMap::D1(t)) if pool.is_none() => {
                conv1d_on_kernels(c, t, activation, table).map(FeatureMap::D1)
            }
            (Conv::D2(c), FeatureMap::D2(t)) => {
                conv2d_on_kernels(c, t, activation, pool, table).map(FeatureMap::D2)
            }
            _ => None,
        }
    }

    /// 1, 2 or 3.
    pub fn spatial_dims(&self) -> usize {
        match self {
            Conv::D1(_) => 1,
            Conv::D2(_) => 2,
            Conv::D3(_) => 3,
        }
    }

    /// The kernel weights, `[out, in/groups, size...]`, flattened row-major, with their shape.
    pub fn weights(&self) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
        let data = match self {
            Conv::D1(c) => c.weight.val().to_data(),
            Conv::D2(c) => c.weight.val().to_data(),
            Conv::D3(c) => c.weight.val().to_data(),
        };
        let shape = data.shape().to_vec();
        Ok((shape, values(data)?))
    }
}

/// A connection table: for each filter, the input channels it sees.
pub type Table = [Vec<usize>];

/// `weight` `[out, in, size...]` with the kernels `table` leaves out multiplied by zero (as it
/// is without a table). The mask is a constant: the product's gradient is the weights' gradient
/// times the mask, so the kernels left out get a zero gradient and, initialised at zero, stay
/// at zero under every optimizer (a zero gradient moves neither SGD, momentum, Adam nor weight
/// decay off zero).
fn connected<const D: usize>(weight: Tensor<D>, table: Option<&Table>) -> Tensor<D> {
    match table {
        None => weight,
        Some(table) => {
            let dims = weight.dims();
            let mask = connection_mask(table, dims[1]);
            let mut shape = [1; D];
            shape[0] = dims[0];
            shape[1] = dims[1];
            let mask = Tensor::<1>::from_floats(mask.as_slice(), &weight.device()).reshape(shape);
            weight * mask
        }
    }
}

/// The table as a row-major `[out, in]` matrix of ones (connected) and zeros.
pub fn connection_mask(table: &Table, in_channels: usize) -> Vec<f32> {
    let mut mask = vec![0.0; table.len() * in_channels];
    for (o, inputs) in table.iter().enumerate() {
        for &i in inputs {
            mask[o * in_channels + i] = 1.0;
        }
    }
    mask
}

fn bias(b: &Option<Param<Tensor<1>>>) -> Option<Tensor<1>> {
    b.as_ref().map(|b| b.val())
}

/// A 2D convolution (followed by `activation`) on [`lenet_kernels`], or `None` where the
/// kernels do not apply.
fn conv2d_on_kernels(
    c: &Conv2d,
    x: &Tensor<4>,
    activation: lenet_kernels::Activation,
    pool: Option<lenet_kernels::PoolSpec>,
    table: Option<&Table>,
) -> Option<Tensor<4>> {
    let padding = match c.padding {
        PaddingConfig2d::Valid => [[0, 0], [0, 0]],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [[top, bottom], [left, right]],
        _ => return None,
    };
    let spec = ConvSpec {
        stride: c.stride,
        padding,
        dilation: c.dilation,
        activation,
        pool,
    };
    let weight = c.weight.val();
    if c.groups != 1 || !lenet_kernels::conv2d_applies(x, &weight, &spec) {
        return None;
    }
    let weight = connected(weight, table);
    Some(lenet_kernels::conv2d(
        x.clone(),
        weight,
        bias(&c.bias),
        spec,
    ))
}

/// A 1D convolution (followed by `activation`) on [`lenet_kernels`] as a 2D one of height 1, or
/// `None` where the kernels do not apply.
fn conv1d_on_kernels(
    c: &Conv1d,
    x: &Tensor<3>,
    activation: lenet_kernels::Activation,
    table: Option<&Table>,
) -> Option<Tensor<3>> {
    let padding = match c.padding {
        PaddingConfig1d::Valid => [0, 0],
        PaddingConfig1d::Explicit(left, right) => [left, right],
        _ => return None,
    };
    let spec = ConvSpec {
        stride: [1, c.stride],
        padding: [[0, 0], padding],
        dilation: [1, c.dilation],
        activation,
        pool: None,
    };
    let [b, ci, l] = x.dims();
    let weight = connected(c.weight.val(), table);
    let [co, wc, k] = weight.dims();
    let x = x.clone().reshape([b, ci, 1, l]);
    let weight = weight.reshape([co, wc, 1, k]);
    if c.groups != 1 || !lenet_kernels::conv2d_applies(&x, &weight, &spec) {
        return None;
    }
    let y = lenet_kernels::conv2d(x, weight, bias(&c.bias), spec);
    let [_, _, _, out] = y.dims();
    Some(y.reshape([b, co, out]))
}

/// Applies a pooling layer described by a [`PoolPlan`] (for subsampling, the window's mean:
/// [`Subsample`] scales it): over non-overlapping tiles on flex with
/// [`lenet_kernels::pool2d`], otherwise with Burn's pooling operations.
/// Burn has no 3D pooling, so 3D pools as a 2D pool over (height, width) followed by a 1D pool
/// over depth: max of maxes is the max, and a mean of means over equal-sized (zero-padded)
/// windows is the mean, so the result is exact.
pub(crate) fn pool(p: &PoolPlan, x: FeatureMap) -> FeatureMap {
    let (k, s, pad) = (&p.kernel, &p.stride, &p.padding);
    // 1D pooling as a 2D pooling of height 1: the same values, and an operation every backend
    // and the ONNX export have (burn-onnx 0.22 lowers no 1D pooling).
    let p1_burn = |t: Tensor<3>, d: usize| {
        let [b, c, l] = t.dims();
        let t4 = t.reshape([b, c, 1, l]);
        let y = match p.kind {
            PoolKind::Max => max_pool2d(
                t4,
                MaxPoolOptions::new([1, k[d]])
                    .with_stride([1, s[d]])
                    .with_padding([0, pad[d]]),
            ),
            PoolKind::Avg | PoolKind::Subsample => avg_pool2d(
                t4,
                AvgPoolOptions::new([1, k[d]])
                    .with_stride([1, s[d]])
                    .with_padding([0, pad[d]]),
            ),
        };
        let [_, _, _, out] = y.dims();
        y.reshape([b, c, out])
    };
    let kernel_kind = match p.kind {
        PoolKind::Max => lenet_kernels::PoolKind::Max,
        PoolKind::Avg | PoolKind::Subsample => lenet_kernels::PoolKind::Avg,
    };
    // 1D tiles as 2D tiles of height 1.
    let p1 = |t: Tensor<3>, d: usize| {
        let [b, c, l] = t.dims();
        let t4 = t.clone().reshape([b, c, 1, l]);
        if k[d] == s[d] && pad[d] == 0 && lenet_kernels::pool2d_applies(&t4, [1, k[d]]) {
            let y = lenet_kernels::pool2d(t4, kernel_kind, [1, k[d]]);
            let [_, _, _, out] = y.dims();
            return y.reshape([b, c, out]);
        }
        p1_burn(t, d)
    };
    let p2_burn = |t: Tensor<4>, a: usize, b: usize| match p.kind {
        PoolKind::Max => max_pool2d(
            t,
            MaxPoolOptions::new([k[a], k[b]])
                .with_stride([s[a], s[b]])
                .with_padding([pad[a], pad[b]]),
        ),
        PoolKind::Avg | PoolKind::Subsample => avg_pool2d(
            t,
            AvgPoolOptions::new([k[a], k[b]])
                .with_stride([s[a], s[b]])
                .with_padding([pad[a], pad[b]]),
        ),
    };
    let p2 = |t: Tensor<4>, a: usize, b: usize| {
        let tiles = k[a] == s[a] && k[b] == s[b] && pad[a] == 0 && pad[b] == 0;
        if tiles && lenet_kernels::pool2d_applies(&t, [k[a], k[b]]) {
            return lenet_kernels::pool2d(t, kernel_kind, [k[a], k[b]]);
        }
        p2_burn(t, a, b)
    };
    match x {
        FeatureMap::D1(t) => FeatureMap::D1(p1(t, 0)),
        FeatureMap::D2(t) => FeatureMap::D2(p2(t, 0, 1)),
        FeatureMap::D3(t) => {
            let [b, c, d, h, w] = t.dims();
            let planes = p2(t.reshape([b, c * d, h, w]), 1, 2);
            let [_, _, h2, w2] = planes.dims();
            // [b, c, d, h2, w2] -> [b, c, h2, w2, d] -> [b·c·h2·w2, 1, d]: pool along depth.
            let along_depth = planes
                .reshape([b, c, d, h2, w2])
                .permute([0, 1, 3, 4, 2])
                .reshape([b * c * h2 * w2, 1, d]);
            let pooled = p1(along_depth, 0);
            let d2 = pooled.dims()[2];
            FeatureMap::D3(pooled.reshape([b, c, h2, w2, d2]).permute([0, 1, 4, 2, 3]))
        }
    }
}

/// conv → (batch norm) → activation → (pool) → (dropout).
#[derive(Module, Debug)]
pub struct FeatureBlock {
    /// The convolution.
    pub conv: Conv,
    /// Its connection table (none: every filter sees every input channel).
    #[module(skip)]
    pub connections: Option<Vec<Vec<usize>>>,
    /// Optional batch normalisation.
    pub norm: Option<BatchNorm>,
    /// The nonlinearity.
    #[module(skip)]
    pub activation: Activation,
    /// Optional pooling.
    #[module(skip)]
    pub pool: Option<PoolPlan>,
    /// The trainable coefficient and bias of a subsampling pool.
    pub subsample: Option<Subsample>,
    /// Optional dropout.
    pub dropout: Option<Dropout>,
}

/// The stages of a feature block, for inspection of what each layer computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// After the convolution (and batch norm).
    Conv,
    /// After the nonlinearity.
    Activation,
    /// After the pooling (for subsampling: after its coefficient, bias and nonlinearity).
    Pool,
}

/// The trainable part of LeNet-5's subsampling (LeCun et al. 1998): per map, a coefficient
/// times the window's sum, plus a bias.
#[derive(Module, Debug)]
pub struct Subsample {
    /// One coefficient per map, `[channels]`.
    pub coefficient: Param<Tensor<1>>,
    /// One bias per map, `[channels]`.
    pub bias: Param<Tensor<1>>,
}

impl Subsample {
    /// Coefficients 1/window (the sum starts as the mean), biases 0.
    fn new(channels: usize, window: usize, device: &Device) -> Subsample {
        Subsample {
            coefficient: Param::from_tensor(Tensor::full([channels], 1.0 / window as f32, device)),
            bias: Param::from_tensor(Tensor::zeros([channels], device)),
        }
    }

    /// `coefficient · sum + bias` per map, from the windows' means `mean` (sum = mean · window).
    pub fn forward(&self, mean: FeatureMap, window: usize) -> FeatureMap {
        let scale = self.coefficient.val().mul_scalar(window as f32);
        let bias = self.bias.val();
        match mean {
            FeatureMap::D1(t) => FeatureMap::D1(t * per_map(scale) + per_map(bias)),
            FeatureMap::D2(t) => FeatureMap::D2(t * per_map(scale) + per_map(bias)),
            FeatureMap::D3(t) => FeatureMap::D3(t * per_map(scale) + per_map(bias)),
        }
    }
}

/// `[channels]` as `[1, channels, 1, ...]`, to broadcast over a batch of maps.
pub(crate) fn per_map<const D: usize>(v: Tensor<1>) -> Tensor<D> {
    let mut shape = [1; D];
    shape[1] = v.dims()[0];
    v.reshape(shape)
}

impl FeatureBlock {
    fn new(p: &BlockPlan, device: &Device) -> Self {
        let mut conv = Conv::new(&p.conv, device);
        if let Some(table) = &p.conv.connections {
            // The kernels left out start (and so stay) at zero.
            match &mut conv {
                Conv::D1(c) => c.weight = masked_param(&c.weight, table),
                Conv::D2(c) => c.weight = masked_param(&c.weight, table),
                Conv::D3(c) => c.weight = masked_param(&c.weight, table),
            }
        }
        FeatureBlock {
            conv,
            connections: p.conv.connections.clone(),
            norm: p
                .batch_norm
                .then(|| BatchNormConfig::new(p.conv.out_channels).init(device)),
            activation: p.activation,
            pool: p.pool.clone(),
            subsample: p
                .pool
                .as_ref()
                .filter(|pool| pool.kind == PoolKind::Subsample)
                .map(|pool| Subsample::new(p.conv.out_channels, pool.window(), device)),
            dropout: (p.dropout > 0.0).then(|| DropoutConfig::new(p.dropout).init()),
        }
    }

    /// Runs the block as training and inference do: where [`lenet_kernels`] applies and the
    /// block is convolution → ReLU, tanh, LeCun's tanh or sigmoid without batch norm, the two
    /// run as one fused kernel, with a 2D pooling over non-overlapping tiles fused in too (the
    /// same values as stage by stage, tested); otherwise stage by stage.
    pub fn forward(&self, x: FeatureMap) -> FeatureMap {
        if let Some(pool) = self.kernel_pool() {
            if let Some(y) = self.conv_activation_fused(&x, Some(pool)) {
                return self.dropout(y);
            }
        }
        let x = match self.conv_activation_fused(&x, None) {
            Some(y) => y,
            None => self.stage(Stage::Activation, self.stage(Stage::Conv, x)),
        };
        self.pool_and_dropout(x, &mut |_, _| {})
    }

    /// The convolution and its nonlinearity (and `pool`) as one kernel, or `None` when that
    /// does not apply.
    fn conv_activation_fused(
        &self,
        x: &FeatureMap,
        pool: Option<lenet_kernels::PoolSpec>,
    ) -> Option<FeatureMap> {
        if self.norm.is_some() {
            return None;
        }
        self.conv.on_kernels(
            x,
            self.activation.fusable()?,
            pool,
            self.connections.as_deref(),
        )
    }

    /// The block's pooling as the kernels' fused 2D pooling: non-overlapping tiles (stride =
    /// kernel), no padding.
    fn kernel_pool(&self) -> Option<lenet_kernels::PoolSpec> {
        let p = self.pool.as_ref()?;
        let tiles =
            p.kernel.len() == 2 && p.stride == p.kernel && p.padding.iter().all(|&v| v == 0);
        let kind = match p.kind {
            PoolKind::Max => lenet_kernels::PoolKind::Max,
            PoolKind::Avg => lenet_kernels::PoolKind::Avg,
            // Scaled, shifted and activated after the pooling: a stage of its own.
            PoolKind::Subsample => return None,
        };
        tiles.then(|| lenet_kernels::PoolSpec {
            kind,
            kernel: [p.kernel[0], p.kernel[1]],
        })
    }

    /// Runs the block stage by stage; `observe` sees the feature maps after each stage.
    pub fn forward_observed(
        &self,
        x: FeatureMap,
        observe: &mut dyn FnMut(Stage, &FeatureMap),
    ) -> FeatureMap {
        let mut x = self.stage(Stage::Conv, x);
        observe(Stage::Conv, &x);
        x = self.stage(Stage::Activation, x);
        observe(Stage::Activation, &x);
        self.pool_and_dropout(x, observe)
    }

    fn pool_and_dropout(
        &self,
        x: FeatureMap,
        observe: &mut dyn FnMut(Stage, &FeatureMap),
    ) -> FeatureMap {
        let mut x = x;
        if self.pool.is_some() {
            x = self.stage(Stage::Pool, x);
            observe(Stage::Pool, &x);
        }
        self.dropout(x)
    }

    fn dropout(&self, x: FeatureMap) -> FeatureMap {
        match &self.dropout {
            None => x,
            Some(dropout) => match x {
                FeatureMap::D1(t) => FeatureMap::D1(dropout.forward(t)),
                FeatureMap::D2(t) => FeatureMap::D2(dropout.forward(t)),
                FeatureMap::D3(t) => FeatureMap::D3(dropout.forward(t)),
            },
        }
    }

    /// One stage of the block on its own: the convolution (with batch norm), the nonlinearity,
    /// or the pooling (the identity when the block has none). For inspection and profiling.
    pub fn stage(&self, stage: Stage, x: FeatureMap) -> FeatureMap {
        match stage {
            Stage::Conv => {
                let x = self.conv.forward_connected(x, self.connections.as_deref());
                match &self.norm {
                    None => x,
                    Some(norm) => match x {
                        FeatureMap::D1(t) => FeatureMap::D1(norm.forward(t)),
                        FeatureMap::D2(t) => FeatureMap::D2(batch_norm_2d(norm, t)),
                        FeatureMap::D3(t) => FeatureMap::D3(norm.forward(t)),
                    },
                }
            }
            Stage::Activation => x.map_act(self.activation),
            Stage::Pool => match (&self.pool, &self.subsample) {
                (Some(p), Some(sub)) => {
                    sub.forward(pool(p, x), p.window()).map_act(self.activation)
                }
                (Some(p), None) => pool(p, x),
                (None, _) => x,
            },
        }
    }
}

/// Burn's `BatchNorm::forward` of 2D maps, on [`lenet_kernels`] where they apply: the same
/// choice between the batch's statistics (an autodiff device and a layer in training) and the
/// running ones, the same values, and the same update of the running statistics (burn-nn 0.22's
/// `forward_train`; tested against it).
fn batch_norm_2d(norm: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    if !lenet_kernels::batch_norm_applies(&x) {
        return norm.forward(x);
    }
    let spec = |batch_stats| lenet_kernels::NormSpec {
        epsilon: norm.epsilon as f32,
        batch_stats,
    };
    let (gamma, beta) = (norm.gamma.val(), norm.beta.val());
    let device = x.device();
    if !(device.is_autodiff() && norm.training.is_enabled()) {
        // On x's device, as Burn's `forward_inference` (a clone shares the running statistics,
        // which may live on another device).
        let stats = lenet_kernels::BatchStats::new(
            norm.running_mean.value().to_device(&device),
            norm.running_var.value().to_device(&device),
        );
        return lenet_kernels::batch_norm(x, &stats, gamma, beta, spec(false));
    }
    let stats = lenet_kernels::BatchStats::of(&x);
    let y = lenet_kernels::batch_norm(x, &stats, gamma, beta, spec(true));
    let m = norm.momentum;
    let running = |state: Tensor<1>, batch: Tensor<1>| {
        state
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(batch.detach().mul_scalar(m))
            .detach()
    };
    norm.running_mean
        .update(running(norm.running_mean.value_sync(), stats.mean()));
    norm.running_var
        .update(running(norm.running_var.value_sync(), stats.var()));
    y
}

/// The layer that makes the class scores.
#[derive(Module, Debug)]
pub enum Output {
    /// A dense layer: logits.
    Linear(Linear),
    /// LeNet-5's RBF units with fixed prototypes: minus the squared distances.
    Rbf(Rbf),
}

impl Output {
    /// The class scores of a batch of feature vectors.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Output::Linear(l) => dense(l, x, Activation::None),
            Output::Rbf(r) => r.forward(x),
        }
    }

    /// The dense layer, unless the output is the RBF layer.
    pub fn linear(&self) -> Option<&Linear> {
        match self {
            Output::Linear(l) => Some(l),
            Output::Rbf(_) => None,
        }
    }
}

/// A LeNet-style convolutional network: feature blocks, flatten, dense layers, logits.
#[derive(Module, Debug)]
pub struct ConvNet {
    /// Convolution blocks, in order.
    pub features: Vec<FeatureBlock>,
    /// Hidden dense layers.
    pub hidden: Vec<Linear>,
    /// The output layer (class scores).
    pub output: Output,
    /// Nonlinearity after each hidden layer.
    #[module(skip)]
    pub hidden_activation: Activation,
    /// Dropout after each hidden layer.
    pub hidden_dropout: Option<Dropout>,
    /// Expected input shape of one example, `[channels, size...]`.
    #[module(skip)]
    pub input_shape: Vec<usize>,
}

impl Plan {
    /// Builds the network on `device`, with freshly initialised weights (Burn's defaults, which
    /// follow PyTorch's: Kaiming-uniform). Use `device.seed(..)` first for reproducible weights.
    pub fn build(&self, device: &Device) -> ConvNet {
        let hidden = self
            .hidden
            .iter()
            .map(|&(i, o)| LinearConfig::new(i, o).init(device))
            .collect();
        let last = self
            .hidden
            .last()
            .map(|h| h.1)
            .unwrap_or(self.flat_features);
        let net = ConvNet {
            features: self
                .blocks
                .iter()
                .map(|b| FeatureBlock::new(b, device))
                .collect(),
            hidden,
            output: match self.output {
                OutputKind::Linear => {
                    Output::Linear(LinearConfig::new(last, self.num_classes).init(device))
                }
                OutputKind::Rbf => Output::Rbf(Rbf::digits()),
            },
            hidden_activation: self.hidden_activation,
            hidden_dropout: (self.hidden_dropout > 0.0)
                .then(|| DropoutConfig::new(self.hidden_dropout).init()),
            input_shape: self.input_shape(),
        };
        match self.init {
            Init::Default => net,
            Init::FanInUniform => by_fan_in(net, |f| 2.4 / f as f32),
            Init::LecunUniform => by_fan_in(net, |f| (3.0 / f as f32).sqrt()),
        }
    }
}

/// Each unit's weights and bias uniform in ±`limit_for(F)`, F its fan-in (±2.4/F for LeCun et
/// al. 1998, Appendix A; ±√(3/F) for Efficient BackProp). Kernels outside a connection table
/// stay at zero.
fn by_fan_in(mut net: ConvNet, limit_for: fn(usize) -> f32) -> ConvNet {
    for block in &mut net.features {
        let table = block.connections.clone();
        let table = table.as_deref();
        // Per filter: its connected input channels times the kernel's taps.
        let limits = |dims: &[usize]| -> Vec<f32> {
            let taps: usize = dims[2..].iter().product();
            (0..dims[0])
                .map(|o| {
                    let inputs = table.map_or(dims[1], |t| t[o].len());
                    limit_for(inputs * taps)
                })
                .collect()
        };
        match &mut block.conv {
            Conv::D1(c) => {
                let l = limits(&c.weight.dims());
                reinit_conv(&mut c.weight, &mut c.bias, &l, table);
            }
            Conv::D2(c) => {
                let l = limits(&c.weight.dims());
                reinit_conv(&mut c.weight, &mut c.bias, &l, table);
            }
            Conv::D3(c) => {
                let l = limits(&c.weight.dims());
                reinit_conv(&mut c.weight, &mut c.bias, &l, table);
            }
        }
        if let (Some(sub), Some(pool)) = (&mut block.subsample, &block.pool) {
            let limit = vec![limit_for(pool.window()); sub.bias.dims()[0]];
            sub.coefficient = uniform_rows(&sub.coefficient, &limit);
            sub.bias = uniform_rows(&sub.bias, &limit);
        }
    }
    let output = match &mut net.output {
        Output::Linear(l) => Some(l),
        Output::Rbf(_) => None,
    };
    for layer in net.hidden.iter_mut().chain(output) {
        // Burn stores a linear layer's weights as [inputs, outputs].
        let [inputs, outputs] = layer.weight.dims();
        let limit = limit_for(inputs);
        layer.weight = uniform_rows(&layer.weight, &vec![limit; inputs]);
        if let Some(b) = &layer.bias {
            layer.bias = Some(uniform_rows(b, &vec![limit; outputs]));
        }
    }
    net
}

/// A new trainable parameter holding `p`'s values with the kernels `table` leaves out at zero.
/// (`Param::from_tensor` makes it a leaf that requires gradients, on any device: `Param::map`
/// would keep the product as a non-leaf that a training step does not update.)
fn masked_param<const D: usize>(p: &Param<Tensor<D>>, table: &Table) -> Param<Tensor<D>> {
    Param::from_tensor(connected(p.val(), Some(table)).detach())
}

fn reinit_conv<const D: usize>(
    weight: &mut Param<Tensor<D>>,
    bias: &mut Option<Param<Tensor<1>>>,
    limits: &[f32],
    table: Option<&Table>,
) {
    *weight = uniform_rows(weight, limits);
    if let Some(table) = table {
        *weight = masked_param(weight, table);
    }
    if let Some(b) = bias {
        *b = uniform_rows(b, limits);
    }
}

/// A new trainable parameter of `p`'s shape and device, uniform in ±`limits[i]` along its first
/// axis.
fn uniform_rows<const D: usize>(p: &Param<Tensor<D>>, limits: &[f32]) -> Param<Tensor<D>> {
    let w = p.val();
    let device = w.device();
    let mut shape = [1; D];
    shape[0] = limits.len();
    let limits = Tensor::<1>::from_floats(limits, &device).reshape(shape);
    let values = Tensor::random(w.dims(), Distribution::Uniform(-1.0, 1.0), &device) * limits;
    Param::from_tensor(values.detach())
}

impl ModelConfig {
    /// Validates the config and builds the network on `device`.
    pub fn init(&self, device: &Device) -> Result<ConvNet, ModelError> {
        Ok(self.plan()?.build(device))
    }
}

impl ConvNet {
    /// Checks that `dims` (batch first) is what the network was built for.
    pub fn check_input(&self, dims: &[usize]) -> Result<(), ModelError> {
        if dims.len() != self.input_shape.len() + 1 || dims[1..] != self.input_shape[..] {
            return Err(ModelError::invalid(
                "input",
                format!(
                    "the network expects [batch, {}] but got {:?}",
                    self.input_shape
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    dims
                ),
            ));
        }
        Ok(())
    }

    /// Logits `[batch, num_classes]` for a batch of inputs.
    pub fn forward(&self, x: FeatureMap) -> Tensor<2> {
        let mut x = x;
        for block in &self.features {
            x = block.forward(x);
        }
        self.classify(x)
    }

    /// [`ConvNet::forward`] for images `[batch, channels, height, width]`.
    pub fn forward_2d(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(FeatureMap::D2(x))
    }

    /// Like [`ConvNet::forward`], stage by stage (no fused kernels); `observe(block, stage, maps)`
    /// sees every intermediate feature map.
    pub fn forward_observed(
        &self,
        x: FeatureMap,
        observe: &mut dyn FnMut(usize, Stage, &FeatureMap),
    ) -> Tensor<2> {
        let mut x = x;
        for (i, block) in self.features.iter().enumerate() {
            x = block.forward_observed(x, &mut |stage, maps| observe(i, stage, maps));
        }
        self.classify(x)
    }

    /// Flatten, then the dense layers.
    fn classify(&self, x: FeatureMap) -> Tensor<2> {
        let mut x = x.flatten();
        for layer in &self.hidden {
            x = dense(layer, x, self.hidden_activation);
            if let Some(d) = &self.hidden_dropout {
                x = d.forward(x);
            }
        }
        self.output.forward(x)
    }
}

/// A dense layer followed by `activation`: one step of [`lenet_kernels::linear()`] (products on
/// both cores, bias and nonlinearity fused) where the kernels apply, else Burn's `Linear` and
/// the nonlinearity's own pass.
pub fn dense(layer: &Linear, x: Tensor<2>, activation: Activation) -> Tensor<2> {
    let fused = match activation {
        Activation::None => Some(lenet_kernels::Activation::None),
        a => a.fusable(),
    };
    if let (Some(fused), Some(bias)) = (fused, &layer.bias) {
        let weight = layer.weight.val();
        if lenet_kernels::linear_applies(&x, &weight) {
            return lenet_kernels::linear(x, weight, bias.val(), fused);
        }
    }
    activation.forward(layer.forward(x))
}

/// The values of `data` as `f32`, or an error saying they could not be read back.
fn values(data: burn::tensor::TensorData) -> Result<Vec<f32>, ModelError> {
    data.convert::<f32>()
        .try_to_vec()
        .map_err(|e| ModelError::Internal(format!("cannot read a tensor's values: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    /// With C3's connection table (LeCun et al. 1998, Table I) the kernels left out start at
    /// zero and get a zero gradient, on the kernels (flex) and on Burn's ops (ndarray); every
    /// connected kernel gets a gradient.
    #[test]
    fn kernels_outside_the_connection_table_get_no_gradient() {
        let table = crate::presets::lenet5_c3_table();
        let mut config = crate::preset("lenet5-1998").unwrap();
        #[allow(deprecated)]
        let devices = [Device::flex(), Device::ndarray()];
        // Built on the autodiff device as `lenet train` builds it (no `.train()` afterwards),
        // with every initialisation: every parameter must be a leaf that requires gradients.
        let inits = [Init::Default, Init::FanInUniform, Init::LecunUniform];
        let runs = devices
            .into_iter()
            .flat_map(|d| inits.map(|init| (d.clone(), init)));
        for (device, init) in runs {
            device.seed(11);
            config.init = init;
            let device = device.autodiff();
            let net = config.init(&device).unwrap();
            let Conv::D2(c3) = &net.features[1].conv else {
                panic!("C3 is 2D")
            };
            let x: Tensor<4> =
                Tensor::random([4, 1, 32, 32], Distribution::Normal(0.0, 1.0), &device);
            let grads = net.forward_2d(x).powi_scalar(2).sum().backward();
            let weight = values(c3.weight.val().into_data()).unwrap();
            let grad = values(c3.weight.grad(&grads).unwrap().into_data()).unwrap();
            for (o, inputs) in table.iter().enumerate() {
                for i in 0..6 {
                    let at = (o * 6 + i) * 25;
                    let (w, g) = (&weight[at..at + 25], &grad[at..at + 25]);
                    if inputs.contains(&i) {
                        assert!(
                            w.iter().any(|&v| v != 0.0),
                            "{device:?}: kernel ({o}, {i}) initialised"
                        );
                        assert!(
                            g.iter().any(|&v| v != 0.0),
                            "{device:?}: kernel ({o}, {i}) learns"
                        );
                    } else {
                        assert!(
                            w.iter().all(|&v| v == 0.0),
                            "{device:?}: kernel ({o}, {i}) starts at zero"
                        );
                        assert!(
                            g.iter().all(|&v| v == 0.0),
                            "{device:?}: kernel ({o}, {i}) gets no gradient"
                        );
                    }
                }
            }
            for (i, block) in net.features.iter().enumerate() {
                if let Some(sub) = &block.subsample {
                    assert!(
                        sub.coefficient.grad(&grads).is_some(),
                        "{device:?} {init:?}: S{} coefficients",
                        2 * i + 2
                    );
                    assert!(
                        sub.bias.grad(&grads).is_some(),
                        "{device:?} {init:?}: S{} biases",
                        2 * i + 2
                    );
                }
            }
            assert!(
                net.hidden[0].weight.grad(&grads).is_some(),
                "{device:?} {init:?}: F6"
            );
        }
    }

    /// The subsampling's coefficient and bias gradients (autodiff) against central finite
    /// differences of the loss, on the kernels (flex) and on Burn's ops (ndarray); and its
    /// output against the definition: coefficient · (sum of the window) + bias, then the
    /// activation.
    #[test]
    fn subsampling_matches_its_definition_and_finite_differences() {
        let toml = r#"
            num_classes = 3
            input = { channels = 2, size = [6, 6] }
            [[features]]
            out_channels = 3
            kernel = 3
            activation = "lecun_tanh"
            pool = { kind = "subsample", kernel = 2 }
        "#;
        let config = ModelConfig::from_toml_str(toml, "<subsample>").unwrap();
        assert_eq!(
            config.plan().unwrap().parameters(),
            3 * 2 * 9 + 3 + 2 * 3 + 12 * 3 + 3
        );
        #[allow(deprecated)]
        let devices = [Device::flex(), Device::ndarray()];
        for device in devices {
            device.seed(21);
            let mut net = config.init(&device).unwrap();
            let set = |net: &mut ConvNet, coefficient: Vec<f32>, bias: Vec<f32>| {
                let sub = net.features[0].subsample.as_mut().expect("a subsampling");
                sub.coefficient =
                    Param::from_tensor(Tensor::from_floats(coefficient.as_slice(), &device));
                sub.bias = Param::from_tensor(Tensor::from_floats(bias.as_slice(), &device));
            };
            let (coefficient, bias) = (vec![0.3f32, -0.7, 1.1], vec![0.2f32, -0.1, 0.05]);
            set(&mut net, coefficient.clone(), bias.clone());
            let x: Tensor<4> =
                Tensor::random([2, 2, 6, 6], Distribution::Normal(0.0, 1.0), &device);

            // The definition, from the block's own convolution and activation stages.
            let block = &net.features[0];
            let activated = block.stage(
                Stage::Activation,
                block.stage(Stage::Conv, FeatureMap::D2(x.clone())),
            );
            let a = activated.to_vec().unwrap(); // [2, 3, 4, 4]
            let pooled = block.stage(Stage::Pool, activated).to_vec().unwrap(); // [2, 3, 2, 2]
            for (n, c, i, j) in (0..2).flat_map(|n| {
                (0..3)
                    .flat_map(move |c| (0..2).flat_map(move |i| (0..2).map(move |j| (n, c, i, j))))
            }) {
                let at = |r: usize, q: usize| a[((n * 3 + c) * 4 + r) * 4 + q];
                let sum = at(2 * i, 2 * j)
                    + at(2 * i, 2 * j + 1)
                    + at(2 * i + 1, 2 * j)
                    + at(2 * i + 1, 2 * j + 1);
                let expected = 1.7159 * ((coefficient[c] * sum + bias[c]) * 2.0 / 3.0).tanh();
                let got = pooled[((n * 3 + c) * 2 + i) * 2 + j];
                assert!(
                    (got - expected).abs() < 1e-5,
                    "{device:?}: ({n}, {c}, {i}, {j}): {got} against {expected}"
                );
            }

            let loss = |net: &ConvNet| -> f64 {
                net.forward_2d(x.clone())
                    .powi_scalar(2)
                    .sum()
                    .into_scalar::<f32>() as f64
            };
            let trained = net.clone().train();
            let grads = trained
                .forward_2d(x.clone())
                .powi_scalar(2)
                .sum()
                .backward();
            let sub = trained.features[0].subsample.as_ref().unwrap();
            let autodiff = [
                values(sub.coefficient.grad(&grads).unwrap().into_data()).unwrap(),
                values(sub.bias.grad(&grads).unwrap().into_data()).unwrap(),
            ];
            let eps = 1e-2f32;
            for (which, base) in [coefficient.clone(), bias.clone()].into_iter().enumerate() {
                for c in 0..3 {
                    let at = |delta: f32| {
                        let mut v = base.clone();
                        v[c] += delta;
                        let (k, b) = match which {
                            0 => (v, bias.clone()),
                            _ => (coefficient.clone(), v),
                        };
                        let mut moved = net.clone();
                        set(&mut moved, k, b);
                        loss(&moved)
                    };
                    let numeric = (at(eps) - at(-eps)) / (2.0 * eps as f64);
                    let ours = autodiff[which][c] as f64;
                    assert!(
                        (numeric - ours).abs() <= 2e-3 * numeric.abs().max(1.0),
                        "{device:?}: {} of map {c}: autodiff {ours}, finite differences {numeric}",
                        ["coefficient", "bias"][which]
                    );
                }
            }
        }
    }

    /// `init = "fan_in_uniform"` and `init = "lecun_uniform"`: each unit's weights and bias
    /// within ±2.4/F (resp. ±√(3/F)) and spread over it (F: C3's filters see 3, 4 or 6 maps of
    /// 25 taps; S2 and S4 a window of 4; F6 120 inputs), the kernels outside the table at zero.
    #[test]
    fn fan_in_inits_follow_each_units_fan_in() {
        fan_in_init_follows_each_units_fan_in(Init::FanInUniform, |f| 2.4 / f as f32);
        fan_in_init_follows_each_units_fan_in(Init::LecunUniform, |f| (3.0 / f as f32).sqrt());
    }

    fn fan_in_init_follows_each_units_fan_in(init: Init, bound: fn(usize) -> f32) {
        let table = crate::presets::lenet5_c3_table();
        let mut config = crate::preset("lenet5-classic").unwrap();
        config.init = init;
        config.features[1].connections = Some(table.clone());
        for block in &mut config.features[..2] {
            if let Some(pool) = block.pool.as_mut() {
                pool.kind = PoolKind::Subsample;
            }
        }
        let device = Device::flex();
        device.seed(4);
        let net = config.init(&device).unwrap();
        let within = |v: &[f32], limit: f32, what: &str| {
            let largest = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            assert!(largest <= limit, "{init:?} {what}: {largest} above {limit}");
            if v.len() >= 20 {
                assert!(
                    largest > 0.5 * limit,
                    "{init:?} {what}: {largest} does not spread over ±{limit}"
                );
            }
        };
        let Conv::D2(c3) = &net.features[1].conv else {
            panic!("2D")
        };
        let w = values(c3.weight.val().into_data()).unwrap();
        let b = values(c3.bias.as_ref().unwrap().val().into_data()).unwrap();
        for (o, inputs) in table.iter().enumerate() {
            let limit = bound(inputs.len() * 25);
            let filter = &w[o * 150..(o + 1) * 150];
            let connected: Vec<f32> = (0..6)
                .filter(|i| inputs.contains(i))
                .flat_map(|i| filter[i * 25..(i + 1) * 25].to_vec())
                .collect();
            within(&connected, limit, &format!("C3 filter {o}"));
            assert!(b[o].abs() <= limit, "{init:?} C3 bias {o}");
            for i in (0..6).filter(|i| !inputs.contains(i)) {
                assert!(
                    filter[i * 25..(i + 1) * 25].iter().all(|&v| v == 0.0),
                    "{init:?} C3 kernel ({o}, {i})"
                );
            }
        }
        let sub = net.features[0].subsample.as_ref().unwrap();
        let coefficients = values(sub.coefficient.val().into_data()).unwrap();
        assert_eq!(coefficients.len(), 6);
        within(&coefficients, bound(4), "S2 coefficients");
        let f6 = values(net.hidden[0].weight.val().into_data()).unwrap();
        within(&f6, bound(120), "F6 weights");
        let out = values(net.output.linear().unwrap().weight.val().into_data()).unwrap();
        within(&out, bound(84), "output weights");
    }

    /// Whole networks on flex (where the convolutions, poolings and dense layers run on
    /// `lenet_kernels`) give the outputs and gradients of the same networks on ndarray (Burn's
    /// own operations): the presets (ReLU + max pooling, LeCun's tanh + average pooling), a 1D
    /// network (the kernels as height-1 2D ones) with sigmoid and tanh, and a 3D one (the
    /// kernels pool its planes).
    #[test]
    fn networks_on_the_kernels_match_burns_operations() {
        let flex = Device::flex();
        #[allow(deprecated)]
        let ndarray = Device::ndarray();
        flex.seed(5);
        let one_d = r#"
            num_classes = 3
            input = { channels = 2, size = [40] }
            [[features]]
            out_channels = 4
            kernel = 5
            padding = 2
            activation = "sigmoid"
            pool = { kind = "subsample", kernel = 2 }
            [[features]]
            out_channels = 6
            kernel = 3
            stride = 2
            dilation = 2
            activation = "tanh"
            pool = { kind = "avg", kernel = 2 }
            connections = [[0], [1, 2], [3, 0], [1], [2, 3, 0], [0, 1, 2, 3]]
        "#;
        let three_d = r#"
            num_classes = 2
            input = { channels = 2, size = [6, 8, 8] }
            [[features]]
            out_channels = 3
            kernel = 3
            padding = 1
            pool = { kind = "max", kernel = 2 }
            connections = [[1], [0], [1, 0]]
        "#;
        let mut configs: Vec<ModelConfig> = ["lenet5", "lenet5-classic"]
            .iter()
            .map(|p| crate::preset(p).unwrap())
            .collect();
        configs.push(ModelConfig::from_toml_str(one_d, "<1d>").unwrap());
        configs.push(ModelConfig::from_toml_str(three_d, "<3d>").unwrap());
        let mut sparse = crate::preset("lenet5-classic").unwrap();
        sparse.features[1].connections = Some(crate::presets::lenet5_c3_table());
        for block in &mut sparse.features[..2] {
            if let Some(pool) = block.pool.as_mut() {
                pool.kind = PoolKind::Subsample;
            }
        }
        configs.push(sparse);
        // Batch norm after both convolutions (mnist-best's blocks, narrower): the kernels'
        // normalisation with the batch's statistics in training, the running ones otherwise.
        let normed = r#"
            num_classes = 10
            input = { channels = 1, size = [28, 28] }
            [[features]]
            out_channels = 4
            kernel = 5
            padding = 2
            batch_norm = true
            pool = { kind = "max", kernel = 2 }
            [[features]]
            out_channels = 6
            kernel = 5
            padding = 2
            batch_norm = true
            pool = { kind = "max", kernel = 2 }
        "#;
        configs.push(ModelConfig::from_toml_str(normed, "<batch norm>").unwrap());
        for config in configs {
            let plan = config.plan().unwrap();
            let net = plan.build(&flex);
            let mut dims = vec![3];
            dims.extend(plan.input_shape());
            let x = match dims.len() {
                3 => FeatureMap::D1(Tensor::random(
                    [dims[0], dims[1], dims[2]],
                    Distribution::Normal(0.0, 1.0),
                    &flex,
                )),
                4 => FeatureMap::D2(Tensor::random(
                    [dims[0], dims[1], dims[2], dims[3]],
                    Distribution::Normal(0.0, 1.0),
                    &flex,
                )),
                _ => FeatureMap::D3(Tensor::random(
                    [dims[0], dims[1], dims[2], dims[3], dims[4]],
                    Distribution::Normal(0.0, 1.0),
                    &flex,
                )),
            };
            let to = |x: &FeatureMap, device: &Device| match x.clone() {
                FeatureMap::D1(t) => FeatureMap::D1(t.to_device(device)),
                FeatureMap::D2(t) => FeatureMap::D2(t.to_device(device)),
                FeatureMap::D3(t) => FeatureMap::D3(t.to_device(device)),
            };
            let reference = net.clone().fork(&ndarray).forward(to(&x, &ndarray));
            let plain = net.forward(x.clone());
            plain
                .into_data()
                .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(1e-5));

            // Gradients of every convolution and of the output layer.
            let grads_of = |device: &Device| {
                let net = net.clone().fork(device).train();
                let y = net.forward(to(&x, device));
                let grads = y.powi_scalar(2).sum().backward();
                let mut flat = Vec::new();
                for block in &net.features {
                    let (weight, bias) = match &block.conv {
                        Conv::D1(c) => (
                            c.weight.grad(&grads).map(|g| g.into_data()),
                            c.bias.as_ref().map(|b| b.grad(&grads).unwrap().into_data()),
                        ),
                        Conv::D2(c) => (
                            c.weight.grad(&grads).map(|g| g.into_data()),
                            c.bias.as_ref().map(|b| b.grad(&grads).unwrap().into_data()),
                        ),
                        Conv::D3(c) => (
                            c.weight.grad(&grads).map(|g| g.into_data()),
                            c.bias.as_ref().map(|b| b.grad(&grads).unwrap().into_data()),
                        ),
                    };
                    flat.push(weight.unwrap());
                    flat.extend(bias);
                    // Batch norm: the scale's and shift's gradients, and the running
                    // statistics after this training step's update.
                    if let Some(norm) = &block.norm {
                        flat.push(norm.gamma.grad(&grads).unwrap().into_data());
                        flat.push(norm.beta.grad(&grads).unwrap().into_data());
                        flat.push(norm.running_mean.value().into_data());
                        flat.push(norm.running_var.value().into_data());
                    }
                }
                flat.push(
                    net.output
                        .linear()
                        .unwrap()
                        .weight
                        .grad(&grads)
                        .unwrap()
                        .into_data(),
                );
                flat
            };
            for (ours, reference) in grads_of(&flex).into_iter().zip(grads_of(&ndarray)) {
                let scale = reference.iter::<f32>().fold(1.0f32, |m, v| m.max(v.abs()));
                ours.assert_approx_eq::<f32>(&reference, Tolerance::rel_abs(1e-5, 1e-5 * scale));
            }
        }
    }
}
