//! Validation and shape inference: from a [`ModelConfig`] to a [`Plan`] whose every layer has
//! concrete sizes, computed with `O = floor((I + P_before + P_after - D·(K-1) - 1) / S) + 1`.
//!
//! Nothing here touches a tensor, so a bad config is rejected before anything is allocated,
//! with an error naming the block (e.g. `features[2].pool`) and the numbers involved.

use crate::activation::Activation;
use crate::config::{Init, ModelConfig, OutputKind, Padding, PoolKind};
use crate::error::ModelError;

/// A validated network with every shape resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Input channels.
    pub in_channels: usize,
    /// Input spatial size (1, 2 or 3 entries).
    pub input_size: Vec<usize>,
    /// The feature blocks.
    pub blocks: Vec<BlockPlan>,
    /// Size of the flattened feature vector fed to the classifier.
    pub flat_features: usize,
    /// Hidden dense layers (`in`, `out`).
    pub hidden: Vec<(usize, usize)>,
    /// Nonlinearity of the hidden layers.
    pub hidden_activation: Activation,
    /// Dropout after each hidden layer.
    pub hidden_dropout: f64,
    /// Number of logits.
    pub num_classes: usize,
    /// How the weights start.
    pub init: Init,
    /// The output layer.
    pub output: OutputKind,
}

/// One resolved feature block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockPlan {
    /// The convolution.
    pub conv: ConvPlan,
    /// Batch norm after the convolution.
    pub batch_norm: bool,
    /// Nonlinearity.
    pub activation: Activation,
    /// Optional pooling.
    pub pool: Option<PoolPlan>,
    /// Dropout probability (0 = none).
    pub dropout: f64,
}

/// A resolved convolution: one entry per spatial dimension in every list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvPlan {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels (filters).
    pub out_channels: usize,
    /// Kernel size.
    pub kernel: Vec<usize>,
    /// Stride.
    pub stride: Vec<usize>,
    /// Padding before and after, per dimension.
    pub padding: Vec<(usize, usize)>,
    /// Dilation.
    pub dilation: Vec<usize>,
    /// Channel groups.
    pub groups: usize,
    /// For each filter, the input channels it sees (validated: in range, no duplicates, none
    /// empty); `None`: all of them.
    pub connections: Option<Vec<Vec<usize>>>,
    /// Whether there is a bias per filter.
    pub bias: bool,
    /// Spatial input size.
    pub input: Vec<usize>,
    /// Spatial output size.
    pub output: Vec<usize>,
}

/// A resolved pooling layer.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolPlan {
    /// Max or average.
    pub kind: PoolKind,
    /// Window size.
    pub kernel: Vec<usize>,
    /// Step between windows.
    pub stride: Vec<usize>,
    /// Symmetric padding.
    pub padding: Vec<usize>,
    /// Spatial input size.
    pub input: Vec<usize>,
    /// Spatial output size.
    pub output: Vec<usize>,
}

impl ConvPlan {
    /// Trainable parameters: `out · in/groups · ∏K` weights (with a connection table, `∏K` per
    /// connection) plus `out` biases.
    pub fn parameters(&self) -> usize {
        self.kernels() * self.kernel.iter().product::<usize>()
            + if self.bias { self.out_channels } else { 0 }
    }

    /// The number of kernels (filter × input channel pairs) that carry weights.
    pub fn kernels(&self) -> usize {
        match &self.connections {
            Some(table) => table.iter().map(Vec::len).sum(),
            None => self.out_channels * (self.in_channels / self.groups),
        }
    }
}

/// Checks a connection table against the block: one non-empty list per filter, input channels
/// in range, none twice, groups 1.
fn check_connections(
    at: &str,
    table: &[Vec<usize>],
    in_channels: usize,
    out_channels: usize,
    groups: usize,
) -> Result<(), ModelError> {
    let at = format!("{at}.connections");
    if groups != 1 {
        return Err(ModelError::invalid(
            at,
            format!("a connection table needs groups = 1, found {groups}"),
        ));
    }
    if table.len() != out_channels {
        return Err(ModelError::invalid(
            at,
            format!(
                "has {} lists but the block has {out_channels} filters (out_channels): one list of input channels per filter",
                table.len()
            ),
        ));
    }
    for (o, inputs) in table.iter().enumerate() {
        if inputs.is_empty() {
            return Err(ModelError::invalid(
                format!("{at}[{o}]"),
                "is empty: every filter must see at least one input channel",
            ));
        }
        if let Some(c) = inputs.iter().find(|&&c| c >= in_channels) {
            return Err(ModelError::invalid(
                format!("{at}[{o}]"),
                format!("input channel {c} is out of range: the block has {in_channels} input channels (0 to {})", in_channels - 1),
            ));
        }
        let mut seen = inputs.clone();
        seen.sort_unstable();
        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
            return Err(ModelError::invalid(
                format!("{at}[{o}]"),
                format!("lists input channel {} twice", w[0]),
            ));
        }
    }
    Ok(())
}

impl PoolPlan {
    /// Trainable parameters over `channels` maps: a coefficient and a bias per map for
    /// subsampling, none for max and average pooling.
    pub fn parameters(&self, channels: usize) -> usize {
        match self.kind {
            PoolKind::Subsample => 2 * channels,
            PoolKind::Max | PoolKind::Avg => 0,
        }
    }

    /// Inputs per window.
    pub fn window(&self) -> usize {
        self.kernel.iter().product()
    }
}

impl BlockPlan {
    /// Output shape of the block, `[channels, size...]`.
    pub fn output_shape(&self) -> Vec<usize> {
        let spatial = match &self.pool {
            Some(p) => &p.output,
            None => &self.conv.output,
        };
        std::iter::once(self.conv.out_channels)
            .chain(spatial.iter().copied())
            .collect()
    }
}

impl Plan {
    /// Number of spatial dimensions (1, 2 or 3).
    pub fn spatial_dims(&self) -> usize {
        self.input_size.len()
    }

    /// Input shape of one example, `[channels, size...]`.
    pub fn input_shape(&self) -> Vec<usize> {
        std::iter::once(self.in_channels)
            .chain(self.input_size.iter().copied())
            .collect()
    }

    /// Total trainable parameters.
    pub fn parameters(&self) -> usize {
        let conv: usize = self
            .blocks
            .iter()
            .map(|b| {
                b.conv.parameters()
                    + if b.batch_norm {
                        2 * b.conv.out_channels
                    } else {
                        0
                    }
                    + b.pool
                        .as_ref()
                        .map_or(0, |p| p.parameters(b.conv.out_channels))
            })
            .sum();
        let mut layers = self.dense_layers();
        if self.output == OutputKind::Rbf {
            // Fixed prototypes: no trainable parameters.
            layers.pop();
        }
        let dense: usize = layers.iter().map(|(i, o)| i * o + o).sum();
        conv + dense
    }

    /// Every dense layer as (`in`, `out`), the output layer last.
    pub fn dense_layers(&self) -> Vec<(usize, usize)> {
        let last = self
            .hidden
            .last()
            .map(|h| h.1)
            .unwrap_or(self.flat_features);
        let mut layers = self.hidden.clone();
        layers.push((last, self.num_classes));
        layers
    }
}

/// The largest value lenet takes for any single size of a config (channels, kernel, stride,
/// padding, dilation, groups, input size, hidden units, classes): larger ones cannot make a
/// network that fits in memory, and refusing them keeps every shape computation from
/// overflowing.
pub const MAX_SIZE: usize = 1 << 24;

/// The most values one example's feature maps may hold at any layer (1 GiB in `f32`).
pub const MAX_ELEMENTS: usize = 1 << 28;

/// The most trainable parameters a network may have (4 GiB in `f32`).
pub const MAX_PARAMETERS: usize = 1 << 30;

fn at_most(at: &str, what: &str, values: &[usize]) -> Result<(), ModelError> {
    match values.iter().find(|&&v| v > MAX_SIZE) {
        Some(v) => Err(ModelError::invalid(
            format!("{at}{what}"),
            format!(
                "{v} is larger than lenet's limit of {MAX_SIZE} for a single size; no such network fits in memory"
            ),
        )),
        None => Ok(()),
    }
}

/// `channels · ∏size`, if it is within [`MAX_ELEMENTS`].
fn elements(at: &str, channels: usize, size: &[usize]) -> Result<usize, ModelError> {
    size.iter()
        .try_fold(channels, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            ModelError::invalid(
                at,
                format!(
                    "the feature maps would be {channels} × {size:?} values per example, more than lenet's limit of {MAX_ELEMENTS}"
                ),
            )
        })
}

/// Adds a layer's `count` parameters (None: overflowed) to `total`, within [`MAX_PARAMETERS`].
fn add_parameters(at: &str, total: usize, count: Option<usize>) -> Result<usize, ModelError> {
    count
        .and_then(|c| c.checked_add(total))
        .filter(|&n| n <= MAX_PARAMETERS)
        .ok_or_else(|| {
            ModelError::invalid(
                at,
                format!(
                    "the network would have more than lenet's limit of {MAX_PARAMETERS} trainable parameters"
                ),
            )
        })
}

/// One output length: `floor((I + pb + pa - D·(K-1) - 1) / S) + 1`, or `None` when the
/// (dilated) kernel does not fit in the padded input (or a size overflows).
pub fn output_len(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: (usize, usize),
    dilation: usize,
) -> Option<usize> {
    let padded = input.checked_add(pad.0)?.checked_add(pad.1)?;
    let effective = kernel
        .checked_sub(1)?
        .checked_mul(dilation)?
        .checked_add(1)?;
    if padded < effective || stride == 0 {
        return None;
    }
    Some((padded - effective) / stride + 1)
}

fn positive(at: &str, what: &str, values: &[usize]) -> Result<(), ModelError> {
    if values.contains(&0) {
        return Err(ModelError::invalid(
            format!("{at}.{what}"),
            format!("must be at least 1 in every dimension, found {values:?}"),
        ));
    }
    Ok(())
}

fn probability(at: String, p: f64) -> Result<(), ModelError> {
    if !(0.0..1.0).contains(&p) {
        return Err(ModelError::invalid(
            at,
            format!("dropout must be in [0, 1), found {p}"),
        ));
    }
    Ok(())
}

impl ModelConfig {
    /// Validates the config and resolves every shape. This is the only way to a [`Plan`], and
    /// building a model needs a plan, so an invalid network is never built.
    pub fn plan(&self) -> Result<Plan, ModelError> {
        let n = self.input.size.len();
        if !(1..=3).contains(&n) {
            return Err(ModelError::invalid(
                "input.size",
                format!(
                    "needs 1 (length), 2 (height, width) or 3 (depth, height, width) values, found {}",
                    n
                ),
            ));
        }
        if self.input.channels == 0 {
            return Err(ModelError::invalid(
                "input.channels",
                "must be at least 1, found 0",
            ));
        }
        positive("input", "size", &self.input.size)?;
        at_most("input.", "channels", &[self.input.channels])?;
        at_most("input.", "size", &self.input.size)?;
        at_most("", "num_classes", &[self.num_classes])?;
        elements("input", self.input.channels, &self.input.size)?;

        let mut parameters = 0usize;
        let mut channels = self.input.channels;
        let mut size = self.input.size.clone();
        let mut blocks = Vec::with_capacity(self.features.len());
        for (i, block) in self.features.iter().enumerate() {
            let at = format!("features[{i}]");
            let dims = |field: &str, d: &crate::config::Dims| {
                d.resolve(n)
                    .map_err(|m| ModelError::invalid(format!("{at}.{field}"), m))
            };
            if block.out_channels == 0 {
                return Err(ModelError::invalid(
                    format!("{at}.out_channels"),
                    "must be at least 1, found 0",
                ));
            }
            let kernel = dims("kernel", &block.kernel)?;
            let stride = dims("stride", &block.stride)?;
            let dilation = dims("dilation", &block.dilation)?;
            let prefix = format!("{at}.");
            at_most(&prefix, "out_channels", &[block.out_channels])?;
            at_most(&prefix, "kernel", &kernel)?;
            at_most(&prefix, "stride", &stride)?;
            at_most(&prefix, "dilation", &dilation)?;
            at_most(&prefix, "groups", &[block.groups])?;
            positive(&at, "kernel", &kernel)?;
            positive(&at, "stride", &stride)?;
            positive(&at, "dilation", &dilation)?;
            if block.groups == 0 {
                return Err(ModelError::invalid(
                    format!("{at}.groups"),
                    "must be at least 1, found 0",
                ));
            }
            if !channels.is_multiple_of(block.groups)
                || !block.out_channels.is_multiple_of(block.groups)
            {
                return Err(ModelError::invalid(
                    format!("{at}.groups"),
                    format!(
                        "{} groups must divide both the input channels ({}) and out_channels ({})",
                        block.groups, channels, block.out_channels
                    ),
                ));
            }
            let padding: Vec<(usize, usize)> = match &block.padding {
                Padding::Valid => vec![(0, 0); n],
                Padding::Explicit(d) => {
                    let p = dims("padding", d)?;
                    at_most(&prefix, "padding", &p)?;
                    p.into_iter().map(|p| (p, p)).collect()
                }
                Padding::Same => {
                    if stride.iter().any(|&s| s != 1) {
                        return Err(ModelError::invalid(
                            format!("{at}.padding"),
                            format!("\"same\" padding needs stride 1, found stride {stride:?}"),
                        ));
                    }
                    let pads: Vec<(usize, usize)> = kernel
                        .iter()
                        .zip(&dilation)
                        .map(|(&k, &d)| {
                            let total = d * (k - 1);
                            (total / 2, total - total / 2)
                        })
                        .collect();
                    if n == 3 && pads.iter().any(|(b, a)| b != a) {
                        return Err(ModelError::invalid(
                            format!("{at}.padding"),
                            format!(
                                "\"same\" padding of a 3D convolution needs an odd effective kernel \
                                 (Burn's conv3d pads symmetrically), found kernel {kernel:?} with dilation {dilation:?}"
                            ),
                        ));
                    }
                    pads
                }
            };
            let mut output = Vec::with_capacity(n);
            for d in 0..n {
                match output_len(size[d], kernel[d], stride[d], padding[d], dilation[d]) {
                    Some(o) => output.push(o),
                    None => {
                        return Err(ModelError::invalid(
                            format!("{at}.kernel"),
                            format!(
                                "in dimension {d} the kernel ({} with dilation {}, effective {}) is larger than the padded input ({} + {} + {} = {}); the feature maps are already {:?} here",
                                kernel[d],
                                dilation[d],
                                dilation[d] * (kernel[d] - 1) + 1,
                                size[d],
                                padding[d].0,
                                padding[d].1,
                                size[d] + padding[d].0 + padding[d].1,
                                size
                            ),
                        ))
                    }
                }
            }
            elements(&at, block.out_channels, &output)?;
            if let Some(table) = &block.connections {
                check_connections(&at, table, channels, block.out_channels, block.groups)?;
            }
            let kernels = match &block.connections {
                Some(table) => Some(table.iter().map(Vec::len).sum()),
                None => block.out_channels.checked_mul(channels / block.groups),
            };
            let weights = kernels.and_then(|k| kernel.iter().try_fold(k, |n, &d| n.checked_mul(d)));
            let biases = if block.bias { block.out_channels } else { 0 };
            let norm = if block.batch_norm {
                2 * block.out_channels
            } else {
                0
            };
            let count = weights.and_then(|w| w.checked_add(biases + norm));
            parameters = add_parameters(&at, parameters, count)?;
            let conv = ConvPlan {
                in_channels: channels,
                out_channels: block.out_channels,
                kernel,
                stride,
                padding,
                dilation,
                groups: block.groups,
                connections: block.connections.clone(),
                bias: block.bias,
                input: size.clone(),
                output: output.clone(),
            };
            size = output;
            let pool = match &block.pool {
                None => None,
                Some(p) => {
                    let pat = format!("{at}.pool");
                    let pdims = |field: &str, d: &crate::config::Dims| {
                        d.resolve(n)
                            .map_err(|m| ModelError::invalid(format!("{pat}.{field}"), m))
                    };
                    let kernel = pdims("kernel", &p.kernel)?;
                    let stride = match &p.stride {
                        Some(s) => pdims("stride", s)?,
                        None => kernel.clone(),
                    };
                    let padding = pdims("padding", &p.padding)?;
                    let pprefix = format!("{pat}.");
                    at_most(&pprefix, "kernel", &kernel)?;
                    at_most(&pprefix, "stride", &stride)?;
                    at_most(&pprefix, "padding", &padding)?;
                    positive(&pat, "kernel", &kernel)?;
                    positive(&pat, "stride", &stride)?;
                    if let Some(d) = (0..n).find(|&d| 2 * padding[d] > kernel[d]) {
                        return Err(ModelError::invalid(
                            format!("{pat}.padding"),
                            format!(
                                "must be at most half the kernel, found padding {} for kernel {} in dimension {d}",
                                padding[d], kernel[d]
                            ),
                        ));
                    }
                    let mut output = Vec::with_capacity(n);
                    for d in 0..n {
                        match output_len(size[d], kernel[d], stride[d], (padding[d], padding[d]), 1) {
                            Some(o) => output.push(o),
                            None => {
                                return Err(ModelError::invalid(
                                    pat.clone(),
                                    format!(
                                        "the {:?} window {} does not fit in the feature maps of size {:?} (dimension {d}: {} + 2·{} < {}); remove this pooling or reduce the kernel",
                                        p.kind, kernel[d], size, size[d], padding[d], kernel[d]
                                    ),
                                ))
                            }
                        }
                    }
                    let plan = PoolPlan {
                        kind: p.kind,
                        kernel,
                        stride,
                        padding,
                        input: size.clone(),
                        output: output.clone(),
                    };
                    let count = Some(plan.parameters(block.out_channels));
                    parameters = add_parameters(&pat, parameters, count)?;
                    size = output;
                    Some(plan)
                }
            };
            probability(format!("{at}.dropout"), block.dropout)?;
            channels = block.out_channels;
            blocks.push(BlockPlan {
                conv,
                batch_norm: block.batch_norm,
                activation: block.activation,
                pool,
                dropout: block.dropout,
            });
        }

        // Bounded by MAX_ELEMENTS, checked after every layer above.
        let flat_features = channels * size.iter().product::<usize>();
        let mut hidden = Vec::with_capacity(self.classifier.hidden.len());
        let mut width = flat_features;
        for (i, &h) in self.classifier.hidden.iter().enumerate() {
            let at = format!("classifier.hidden[{i}]");
            if h == 0 {
                return Err(ModelError::invalid(
                    at,
                    "a layer needs at least 1 unit, found 0",
                ));
            }
            at_most(&at, "", &[h])?;
            let count = width.checked_mul(h).and_then(|w| w.checked_add(h));
            parameters = add_parameters(&at, parameters, count)?;
            hidden.push((width, h));
            width = h;
        }
        let count = width
            .checked_mul(self.num_classes)
            .and_then(|w| w.checked_add(self.num_classes));
        add_parameters("num_classes", parameters, count)?;
        probability("classifier.dropout".into(), self.classifier.dropout)?;
        if self.num_classes < 2 {
            return Err(ModelError::invalid(
                "num_classes",
                format!(
                    "a classifier needs at least 2 classes, found {}",
                    self.num_classes
                ),
            ));
        }
        if self.classifier.output == OutputKind::Rbf {
            let inputs = width;
            if self.num_classes != crate::rbf::CLASSES || inputs != crate::rbf::INPUTS {
                return Err(ModelError::invalid(
                    "classifier.output",
                    format!(
                        "the RBF output's prototypes are the {}×{} digit bitmaps: it needs {} classes and {} inputs (the last hidden layer), found {} classes and {} inputs",
                        crate::rbf::WIDTH,
                        crate::rbf::HEIGHT,
                        crate::rbf::CLASSES,
                        crate::rbf::INPUTS,
                        self.num_classes,
                        inputs
                    ),
                ));
            }
        }
        Ok(Plan {
            in_channels: self.input.channels,
            input_size: self.input.size.clone(),
            blocks,
            flat_features,
            hidden,
            hidden_activation: self.classifier.activation,
            hidden_dropout: self.classifier.dropout,
            num_classes: self.num_classes,
            init: self.init,
            output: self.classifier.output,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dims;
    use crate::presets::lenet5;

    #[test]
    fn output_size_of_the_worked_example() {
        // A 7×7 input with a 3×3 kernel: 5×5 at stride 1, 3×3 at stride 2.
        assert_eq!(output_len(7, 3, 1, (0, 0), 1), Some(5));
        assert_eq!(output_len(7, 3, 2, (0, 0), 1), Some(3));
        // Padding 2 keeps LeNet-5's 28×28 at 28×28 with a 5×5 kernel.
        assert_eq!(output_len(28, 5, 1, (2, 2), 1), Some(28));
        // Dilation 2 makes a 3-tap kernel span 5 inputs.
        assert_eq!(output_len(7, 3, 1, (0, 0), 2), Some(3));
        assert_eq!(output_len(4, 5, 1, (0, 0), 1), None);
    }

    fn invalid(cfg: &ModelConfig) -> (String, String) {
        match cfg.plan() {
            Err(ModelError::Invalid { at, message }) => (at, message),
            other => panic!("expected an invalid-config error, got {other:?}"),
        }
    }

    /// The classic network with LeNet-5's sparse C3 (LeCun et al. 1998, Table I).
    fn sparse_c3() -> ModelConfig {
        let mut cfg = crate::presets::lenet5_classic();
        cfg.features[1].connections = Some(crate::presets::lenet5_c3_table());
        cfg
    }

    #[test]
    fn the_papers_c3_table_has_1516_parameters() {
        let table = crate::presets::lenet5_c3_table();
        // Table I of the paper, a row per S2 map, a column per C3 map.
        let rows = [
            "X...XXX..XXXX.XX",
            "XX...XXX..XXXX.X",
            "XXX...XXX..X.XXX",
            ".XXX..XXXX..X.XX",
            "..XXX..XXXX.XX.X",
            "...XXX..XXXX.XXX",
        ];
        for (i, row) in rows.iter().enumerate() {
            for (o, mark) in row.chars().enumerate() {
                assert_eq!(table[o].contains(&i), mark == 'X', "S2 map {i}, C3 map {o}");
            }
        }
        let plan = sparse_c3().plan().unwrap();
        assert_eq!(plan.blocks[1].conv.kernels(), 60);
        assert_eq!(plan.blocks[1].conv.parameters(), 1_516);
        // The full C3 had 6·16·25 + 16 = 2,416: the table removes 900 weights.
        assert_eq!(plan.parameters(), 61_706 - 900);
        let summary = plan.summary("sparse");
        assert_eq!(summary.total_parameters, plan.parameters());
        let text = summary.to_table();
        assert!(text.contains("table 60/96"), "{text}");
        assert!(text.contains("features.1.conv connections"), "{text}");
        // The grid's rows are the paper's rows (cells two wide, a space apart).
        for (i, row) in rows.iter().enumerate() {
            let cells: Vec<&str> = row
                .chars()
                .map(|c| if c == 'X' { " X" } else { " ·" })
                .collect();
            let line = format!("\n {i} {}\n", cells.join(" "));
            assert!(text.contains(&line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn bad_connection_tables_name_the_filter_and_say_why() {
        let with = |table: Vec<Vec<usize>>| {
            let mut cfg = sparse_c3();
            cfg.features[1].connections = Some(table);
            invalid(&cfg)
        };
        let mut table = crate::presets::lenet5_c3_table();
        table.pop();
        let (at, message) = with(table);
        assert_eq!(at, "features[1].connections");
        assert!(
            message.contains("15 lists") && message.contains("16 filters"),
            "{message}"
        );

        let mut table = crate::presets::lenet5_c3_table();
        table[3] = vec![0, 6];
        let (at, message) = with(table);
        assert_eq!(at, "features[1].connections[3]");
        assert!(
            message.contains("input channel 6 is out of range")
                && message.contains("6 input channels"),
            "{message}"
        );

        let mut table = crate::presets::lenet5_c3_table();
        table[4] = vec![2, 5, 2];
        let (at, message) = with(table);
        assert_eq!(at, "features[1].connections[4]");
        assert!(message.contains("twice"), "{message}");

        let mut table = crate::presets::lenet5_c3_table();
        table[0] = vec![];
        let (at, message) = with(table);
        assert_eq!(at, "features[1].connections[0]");
        assert!(message.contains("empty"), "{message}");

        let mut cfg = sparse_c3();
        cfg.features[1].groups = 2;
        let (at, message) = invalid(&cfg);
        assert_eq!(at, "features[1].connections");
        assert!(message.contains("groups = 1"), "{message}");
    }

    #[test]
    fn spatial_size_below_one_names_the_block_and_numbers() {
        let mut cfg = lenet5();
        cfg.features.push(cfg.features[1].clone());
        cfg.features[2].kernel = Dims::All(6);
        let (at, message) = invalid(&cfg);
        assert_eq!(at, "features[2].kernel");
        assert!(
            message.contains("effective 6") && message.contains("= 5)"),
            "{message}"
        );
        // A pool window larger than what is left is named as the pool.
        let mut cfg = lenet5();
        cfg.features[1].pool.as_mut().unwrap().kernel = Dims::All(20);
        let (at, message) = invalid(&cfg);
        assert_eq!(at, "features[1].pool");
        assert!(message.contains("[10, 10]"), "{message}");
    }

    #[test]
    fn huge_sizes_are_refused_not_overflowed() {
        let mut cfg = lenet5();
        cfg.features[0].padding = Padding::Explicit(Dims::All(9_223_372_036_854_775_807));
        let (at, message) = invalid(&cfg);
        assert_eq!(at, "features[0].padding");
        assert!(
            message.contains("9223372036854775807") && message.contains("16777216"),
            "{message}"
        );
        let mut cfg = lenet5();
        cfg.features[1].kernel = Dims::All(usize::MAX);
        assert_eq!(invalid(&cfg).0, "features[1].kernel");
        let mut cfg = lenet5();
        cfg.features[0].stride = Dims::All(usize::MAX);
        assert_eq!(invalid(&cfg).0, "features[0].stride");
        let mut cfg = lenet5();
        cfg.features[0].dilation = Dims::Each(vec![1, 1 << 40]);
        assert_eq!(invalid(&cfg).0, "features[0].dilation");
        let mut cfg = lenet5();
        cfg.input.size = vec![usize::MAX, 28];
        assert_eq!(invalid(&cfg).0, "input.size");
        let mut cfg = lenet5();
        cfg.num_classes = usize::MAX;
        assert_eq!(invalid(&cfg).0, "num_classes");
        let mut cfg = lenet5();
        cfg.classifier.hidden = vec![120, 1 << 30];
        assert_eq!(invalid(&cfg).0, "classifier.hidden[1]");
    }

    #[test]
    fn networks_too_large_for_memory_name_the_layer() {
        // Each size within the limit, but 16M channels of 28×28 maps: too many values.
        let mut cfg = lenet5();
        cfg.features[0].out_channels = 1 << 24;
        let (at, message) = invalid(&cfg);
        assert_eq!(at, "features[0]");
        assert!(message.contains("values per example"), "{message}");
        // 1M × 1M weights in one dense layer: too many parameters.
        let mut cfg = lenet5();
        cfg.classifier.hidden = vec![1 << 20, 1 << 20];
        let (at, message) = invalid(&cfg);
        assert_eq!(at, "classifier.hidden[1]");
        assert!(message.contains("trainable parameters"), "{message}");
        // Just under the limits is fine, and counted exactly.
        let mut cfg = lenet5();
        cfg.classifier.hidden = vec![1000];
        assert_eq!(
            cfg.plan().unwrap().parameters(),
            156 + 2_416 + 400_000 + 1_000 + 10_010
        );
    }

    #[test]
    fn channels_must_divide_by_groups() {
        let mut cfg = lenet5();
        cfg.features[1].groups = 4;
        let (at, message) = invalid(&cfg);
        assert_eq!(at, "features[1].groups");
        assert!(
            message.contains("(6)") && message.contains("(16)"),
            "{message}"
        );
    }

    #[test]
    fn zero_kernel_stride_dilation_and_channels_are_rejected() {
        let mut cfg = lenet5();
        cfg.features[0].kernel = Dims::Each(vec![5, 0]);
        assert_eq!(invalid(&cfg).0, "features[0].kernel");
        let mut cfg = lenet5();
        cfg.features[1].stride = Dims::All(0);
        assert_eq!(invalid(&cfg).0, "features[1].stride");
        let mut cfg = lenet5();
        cfg.features[0].dilation = Dims::All(0);
        assert_eq!(invalid(&cfg).0, "features[0].dilation");
        let mut cfg = lenet5();
        cfg.features[0].out_channels = 0;
        assert_eq!(invalid(&cfg).0, "features[0].out_channels");
        let mut cfg = lenet5();
        cfg.input.channels = 0;
        assert_eq!(invalid(&cfg).0, "input.channels");
    }

    #[test]
    fn a_2d_kernel_list_on_a_1d_input_is_rejected() {
        let mut cfg = lenet5();
        cfg.input.size = vec![28];
        cfg.features[0].kernel = Dims::Each(vec![5, 5]);
        let (at, message) = invalid(&cfg);
        assert_eq!(at, "features[0].kernel");
        assert!(
            message.contains("2 values") && message.contains("1 spatial dimension"),
            "{message}"
        );
    }

    #[test]
    fn input_rank_must_be_1_to_3() {
        let mut cfg = lenet5();
        cfg.input.size = vec![2, 2, 2, 2];
        assert_eq!(invalid(&cfg).0, "input.size");
        cfg.input.size = vec![];
        assert_eq!(invalid(&cfg).0, "input.size");
    }

    #[test]
    fn same_padding_needs_stride_one_and_keeps_the_size() {
        let mut cfg = lenet5();
        cfg.features[0].padding = Padding::Same;
        cfg.features[0].kernel = Dims::All(4); // even kernel: asymmetric 1 + 2
        let plan = cfg.plan().unwrap();
        assert_eq!(plan.blocks[0].conv.padding, vec![(1, 2), (1, 2)]);
        assert_eq!(plan.blocks[0].conv.output, vec![28, 28]);
        cfg.features[0].stride = Dims::All(2);
        let (at, message) = invalid(&cfg);
        assert_eq!(at, "features[0].padding");
        assert!(message.contains("stride 1"), "{message}");
    }

    #[test]
    fn bad_pool_padding_dropout_hidden_and_classes() {
        let mut cfg = lenet5();
        cfg.features[0].pool.as_mut().unwrap().padding = Dims::All(2);
        assert_eq!(invalid(&cfg).0, "features[0].pool.padding");
        let mut cfg = lenet5();
        cfg.features[0].dropout = 1.0;
        assert_eq!(invalid(&cfg).0, "features[0].dropout");
        let mut cfg = lenet5();
        cfg.classifier.hidden[1] = 0;
        assert_eq!(invalid(&cfg).0, "classifier.hidden[1]");
        let mut cfg = lenet5();
        cfg.num_classes = 1;
        assert_eq!(invalid(&cfg).0, "num_classes");
    }

    #[test]
    fn lenet5_shapes() {
        let plan = lenet5().plan().unwrap();
        assert_eq!(plan.blocks[0].output_shape(), vec![6, 14, 14]);
        assert_eq!(plan.blocks[1].conv.output, vec![10, 10]);
        assert_eq!(plan.blocks[1].output_shape(), vec![16, 5, 5]);
        assert_eq!(plan.flat_features, 400);
        assert_eq!(plan.dense_layers(), vec![(400, 120), (120, 84), (84, 10)]);
    }
}
