//! The network as a Burn module, built from a validated [`Plan`].
//!
//! Burn 0.22 has no backend type parameter: tensors are `Tensor<D>` and the backend is the
//! run-time [`Device`] the module is built on, so this one type runs on every backend
//! (flex, ndarray, wgpu, cuda) and saves to and loads from Burn's burnpack records.

use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, Conv3d, Conv3dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig1d,
    PaddingConfig2d, PaddingConfig3d,
};
use burn::tensor::module::{avg_pool1d, avg_pool2d, max_pool1d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor};
use lenet_kernels::ConvSpec;

use crate::activation::Activation;
use crate::config::{ModelConfig, PoolKind};
use crate::error::ModelError;
use crate::plan::{BlockPlan, ConvPlan, Plan, PoolPlan};

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
        if let Some(y) = self.on_kernels(&x, lenet_kernels::Activation::None, None) {
            return y;
        }
        match (self, x) {
            (Conv::D1(c), FeatureMap::D1(t)) => FeatureMap::D1(c.forward(t)),
            (Conv::D2(c), FeatureMap::D2(t)) => FeatureMap::D2(c.forward(t)),
            (Conv::D3(c), FeatureMap::D3(t)) => FeatureMap::D3(c.forward(t)),
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
    ) -> Option<FeatureMap> {
        match (self, x) {
            (Conv::D1(c), FeatureMap::D1(t)) if pool.is_none() => {
                conv1d_on_kernels(c, t, activation).map(FeatureMap::D1)
            }
            (Conv::D2(c), FeatureMap::D2(t)) => {
                conv2d_on_kernels(c, t, activation, pool).map(FeatureMap::D2)
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

/// A 2D convolution (followed by `activation`) on [`lenet_kernels`], or `None` where the
/// kernels do not apply.
fn conv2d_on_kernels(
    c: &Conv2d,
    x: &Tensor<4>,
    activation: lenet_kernels::Activation,
    pool: Option<lenet_kernels::PoolSpec>,
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
    let bias = c.bias.as_ref().map(|b| b.val());
    Some(lenet_kernels::conv2d(x.clone(), weight, bias, spec))
}

/// A 1D convolution (followed by `activation`) on [`lenet_kernels`] as a 2D one of height 1, or
/// `None` where the kernels do not apply.
fn conv1d_on_kernels(
    c: &Conv1d,
    x: &Tensor<3>,
    activation: lenet_kernels::Activation,
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
    let weight = c.weight.val();
    let [co, wc, k] = weight.dims();
    let x = x.clone().reshape([b, ci, 1, l]);
    let weight = weight.reshape([co, wc, 1, k]);
    if c.groups != 1 || !lenet_kernels::conv2d_applies(&x, &weight, &spec) {
        return None;
    }
    let y = lenet_kernels::conv2d(x, weight, c.bias.as_ref().map(|b| b.val()), spec);
    let [_, _, _, out] = y.dims();
    Some(y.reshape([b, co, out]))
}

/// Applies a pooling layer described by a [`PoolPlan`]: over non-overlapping tiles on flex with
/// [`lenet_kernels::pool2d`], otherwise with Burn's pooling operations.
/// Burn has no 3D pooling, so 3D pools as a 2D pool over (height, width) followed by a 1D pool
/// over depth: max of maxes is the max, and a mean of means over equal-sized (zero-padded)
/// windows is the mean, so the result is exact.
fn pool(p: &PoolPlan, x: FeatureMap) -> FeatureMap {
    let (k, s, pad) = (&p.kernel, &p.stride, &p.padding);
    let p1_burn = |t: Tensor<3>, d: usize| match p.kind {
        PoolKind::Max => max_pool1d(
            t,
            MaxPoolOptions::new([k[d]])
                .with_stride([s[d]])
                .with_padding([pad[d]]),
        ),
        PoolKind::Avg => avg_pool1d(
            t,
            AvgPoolOptions::new([k[d]])
                .with_stride([s[d]])
                .with_padding([pad[d]]),
        ),
    };
    let kernel_kind = match p.kind {
        PoolKind::Max => lenet_kernels::PoolKind::Max,
        PoolKind::Avg => lenet_kernels::PoolKind::Avg,
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
        PoolKind::Avg => avg_pool2d(
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
    /// Optional batch normalisation.
    pub norm: Option<BatchNorm>,
    /// The nonlinearity.
    #[module(skip)]
    pub activation: Activation,
    /// Optional pooling (no parameters).
    #[module(skip)]
    pub pool: Option<PoolPlan>,
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
    /// After the pooling.
    Pool,
}

impl FeatureBlock {
    fn new(p: &BlockPlan, device: &Device) -> Self {
        FeatureBlock {
            conv: Conv::new(&p.conv, device),
            norm: p
                .batch_norm
                .then(|| BatchNormConfig::new(p.conv.out_channels).init(device)),
            activation: p.activation,
            pool: p.pool.clone(),
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
        self.conv.on_kernels(x, self.activation.fusable()?, pool)
    }

    /// The block's pooling as the kernels' fused 2D pooling: non-overlapping tiles (stride =
    /// kernel), no padding.
    fn kernel_pool(&self) -> Option<lenet_kernels::PoolSpec> {
        let p = self.pool.as_ref()?;
        let tiles =
            p.kernel.len() == 2 && p.stride == p.kernel && p.padding.iter().all(|&v| v == 0);
        tiles.then(|| lenet_kernels::PoolSpec {
            kind: match p.kind {
                PoolKind::Max => lenet_kernels::PoolKind::Max,
                PoolKind::Avg => lenet_kernels::PoolKind::Avg,
            },
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
                let x = self.conv.forward(x);
                match &self.norm {
                    None => x,
                    Some(norm) => match x {
                        FeatureMap::D1(t) => FeatureMap::D1(norm.forward(t)),
                        FeatureMap::D2(t) => FeatureMap::D2(norm.forward(t)),
                        FeatureMap::D3(t) => FeatureMap::D3(norm.forward(t)),
                    },
                }
            }
            Stage::Activation => x.map_act(self.activation),
            Stage::Pool => match &self.pool {
                Some(p) => pool(p, x),
                None => x,
            },
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
    /// The output layer (logits).
    pub output: Linear,
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
        ConvNet {
            features: self
                .blocks
                .iter()
                .map(|b| FeatureBlock::new(b, device))
                .collect(),
            hidden,
            output: LinearConfig::new(last, self.num_classes).init(device),
            hidden_activation: self.hidden_activation,
            hidden_dropout: (self.hidden_dropout > 0.0)
                .then(|| DropoutConfig::new(self.hidden_dropout).init()),
            input_shape: self.input_shape(),
        }
    }
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
            x = self.hidden_activation.forward(layer.forward(x));
            if let Some(d) = &self.hidden_dropout {
                x = d.forward(x);
            }
        }
        self.output.forward(x)
    }
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

    /// Whole networks on flex (where the convolutions and poolings run on `lenet_kernels`) give
    /// the outputs and gradients of the same networks on ndarray (Burn's own operations): the
    /// presets (ReLU + max pooling, LeCun's tanh + average pooling), a 1D network (the kernels
    /// as height-1 2D ones) with sigmoid and tanh, and a 3D one (the kernels pool its planes).
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
            pool = { kind = "max", kernel = 2 }
            [[features]]
            out_channels = 6
            kernel = 3
            stride = 2
            dilation = 2
            activation = "tanh"
            pool = { kind = "avg", kernel = 2 }
        "#;
        let three_d = r#"
            num_classes = 2
            input = { channels = 1, size = [6, 8, 8] }
            [[features]]
            out_channels = 3
            kernel = 3
            padding = 1
            pool = { kind = "max", kernel = 2 }
        "#;
        let mut configs: Vec<ModelConfig> = ["lenet5", "lenet5-classic"]
            .iter()
            .map(|p| crate::preset(p).unwrap())
            .collect();
        configs.push(ModelConfig::from_toml_str(one_d, "<1d>").unwrap());
        configs.push(ModelConfig::from_toml_str(three_d, "<3d>").unwrap());
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
                }
                flat.push(net.output.weight.grad(&grads).unwrap().into_data());
                flat
            };
            for (ours, reference) in grads_of(&flex).into_iter().zip(grads_of(&ndarray)) {
                let scale = reference.iter::<f32>().fold(1.0f32, |m, v| m.max(v.abs()));
                ours.assert_approx_eq::<f32>(&reference, Tolerance::rel_abs(1e-5, 1e-5 * scale));
            }
        }
    }
}
