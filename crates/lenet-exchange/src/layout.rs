//! A network's parameters under PyTorch's names and in PyTorch's layouts: the one table that
//! import, the safetensors and PyTorch exports and `python/lenet_torch.py` share.
//!
//! The names follow lenet's module tree, as PyTorch would name the same modules:
//!
//! | lenet | name | PyTorch layout |
//! |---|---|---|
//! | block `i`'s convolution | `features.{i}.conv.weight`, `.bias` | `[out, in / groups, k…]` (as Burn) |
//! | its batch norm | `features.{i}.norm.weight`, `.bias`, `.running_mean`, `.running_var`, `.num_batches_tracked` | `[channels]`, `[]` (int64) |
//! | its subsampling | `features.{i}.subsample.coefficient`, `.bias` | `[channels]` |
//! | hidden layer `j` | `hidden.{j}.weight`, `.bias` | `[out, in]` (Burn stores `[in, out]`) |
//! | the output layer | `output.weight`, `.bias` | `[classes, in]` |
//! | an RBF output | `output.prototypes` (fixed, not trained) | `[classes, 84]` |

use std::collections::BTreeMap;

use burn::module::{Param, RunningState};
use burn::nn::{BatchNorm, Linear};
use burn::tensor::{Device, Tensor, TensorData};
use lenet_model::{Conv, ConvNet, Output};

use crate::error::ExchangeError;

/// The kind of layer a parameter belongs to; keys are mapped between layers of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LayerKind {
    /// A convolution: `weight` (rank 3 to 5) and `bias`.
    Conv,
    /// A batch normalisation: `weight`, `bias`, `running_mean`, `running_var`
    /// (and PyTorch's `num_batches_tracked`).
    BatchNorm,
    /// LeNet-5's trainable subsampling: `coefficient` and `bias`.
    Subsample,
    /// A dense layer: `weight` (rank 2) and `bias`.
    Linear,
    /// LeNet-5's RBF output: fixed `prototypes`.
    Rbf,
}

impl LayerKind {
    /// For people: "convolution", "batch norm", ….
    pub fn describe(self) -> &'static str {
        match self {
            LayerKind::Conv => "convolution",
            LayerKind::BatchNorm => "batch norm",
            LayerKind::Subsample => "subsampling",
            LayerKind::Linear => "dense layer",
            LayerKind::Rbf => "RBF output",
        }
    }
}

/// Values of a tensor in PyTorch's layout.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// 32-bit floats: every weight.
    F32(Vec<f32>),
    /// 64-bit integers: batch norm's `num_batches_tracked`.
    I64(Vec<i64>),
}

/// One named tensor in PyTorch's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Its name (`features.0.conv.weight`).
    pub name: String,
    /// Its shape (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Values,
}

/// One parameter of a network, as a PyTorch `state_dict` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// The name (`features.0.conv.weight`).
    pub name: String,
    /// The layer's name (`features.0.conv`): the name without its last part.
    pub layer: String,
    /// The part after the layer's name (`weight`).
    pub role: String,
    /// The kind of layer.
    pub kind: LayerKind,
    /// The shape in PyTorch's layout.
    pub shape: Vec<usize>,
    /// Must a weights file hold it? (`num_batches_tracked` and RBF prototypes need not.)
    pub required: bool,
}

/// The parameters of `net` in layer order, under their PyTorch names.
pub fn parameters(net: &ConvNet) -> Vec<Parameter> {
    state_dict(net)
        .into_iter()
        .map(|(p, _)| p)
        .collect::<Vec<_>>()
}

/// Every parameter of `net` with its values, in layer order, in PyTorch's layouts.
pub fn state_dict(net: &ConvNet) -> Vec<(Parameter, NamedTensor)> {
    let mut out = Entries::default();
    for (i, block) in net.features.iter().enumerate() {
        let layer = format!("features.{i}.conv");
        let (weight, bias) = match &block.conv {
            Conv::D1(c) => (
                float_values(c.weight.val()),
                c.bias.as_ref().map(|b| b.val()),
            ),
            Conv::D2(c) => (
                float_values(c.weight.val()),
                c.bias.as_ref().map(|b| b.val()),
            ),
            Conv::D3(c) => (
                float_values(c.weight.val()),
                c.bias.as_ref().map(|b| b.val()),
            ),
        };
        out.push(&layer, "weight", LayerKind::Conv, weight);
        if let Some(b) = bias {
            out.push(&layer, "bias", LayerKind::Conv, float_values(b));
        }
        if let Some(norm) = &block.norm {
            let layer = format!("features.{i}.norm");
            let kind = LayerKind::BatchNorm;
            out.push(&layer, "weight", kind, float_values(norm.gamma.val()));
            out.push(&layer, "bias", kind, float_values(norm.beta.val()));
            out.push(
                &layer,
                "running_mean",
                kind,
                float_values(norm.running_mean.value()),
            );
            out.push(
                &layer,
                "running_var",
                kind,
                float_values(norm.running_var.value()),
            );
            out.push_optional(
                &layer,
                "num_batches_tracked",
                kind,
                (vec![], Values::I64(vec![0])),
            );
        }
        if let Some(sub) = &block.subsample {
            let layer = format!("features.{i}.subsample");
            let kind = LayerKind::Subsample;
            out.push(
                &layer,
                "coefficient",
                kind,
                float_values(sub.coefficient.val()),
            );
            out.push(&layer, "bias", kind, float_values(sub.bias.val()));
        }
    }
    for (j, linear) in net.hidden.iter().enumerate() {
        out.push_linear(&format!("hidden.{j}"), linear);
    }
    match &net.output {
        Output::Linear(linear) => out.push_linear("output", linear),
        Output::Rbf(rbf) => {
            let p = rbf.prototypes();
            let classes = net_classes(net);
            let shape = vec![classes, p.len() / classes.max(1)];
            out.push_optional(
                "output",
                "prototypes",
                LayerKind::Rbf,
                (shape, Values::F32(p.to_vec())),
            );
        }
    }
    out.0
}

fn net_classes(net: &ConvNet) -> usize {
    match &net.output {
        Output::Linear(l) => l.weight.dims()[1],
        Output::Rbf(_) => lenet_model::rbf::CLASSES,
    }
}

#[derive(Default)]
struct Entries(Vec<(Parameter, NamedTensor)>);

impl Entries {
    fn add(
        &mut self,
        layer: &str,
        role: &str,
        kind: LayerKind,
        t: (Vec<usize>, Values),
        required: bool,
    ) {
        let name = format!("{layer}.{role}");
        self.0.push((
            Parameter {
                name: name.clone(),
                layer: layer.to_string(),
                role: role.to_string(),
                kind,
                shape: t.0.clone(),
                required,
            },
            NamedTensor {
                name,
                shape: t.0,
                values: t.1,
            },
        ));
    }

    fn push(&mut self, layer: &str, role: &str, kind: LayerKind, t: (Vec<usize>, Values)) {
        self.add(layer, role, kind, t, true);
    }

    fn push_optional(&mut self, layer: &str, role: &str, kind: LayerKind, t: (Vec<usize>, Values)) {
        self.add(layer, role, kind, t, false);
    }

    /// Burn's `[in, out]` weight as PyTorch's `[out, in]`.
    fn push_linear(&mut self, layer: &str, linear: &Linear) {
        let (shape, values) = float_values(linear.weight.val().transpose());
        self.push(layer, "weight", LayerKind::Linear, (shape, values));
        if let Some(b) = &linear.bias {
            self.push(layer, "bias", LayerKind::Linear, float_values(b.val()));
        }
    }
}

fn float_values<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Values) {
    let shape = t.dims().to_vec();
    let values = t
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        // A network's parameters are f32 tensors once converted: no user input reaches here.
        .unwrap_or_default();
    (shape, Values::F32(values))
}

/// `net` with the values of `tensors` (PyTorch names and layouts, f32), which must hold every
/// required parameter of [`parameters`] in its shape. RBF prototypes, if given, must equal the
/// network's fixed ones; weights a connection table leaves out must be zero.
pub fn load_state_dict(
    mut net: ConvNet,
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
) -> Result<ConvNet, ExchangeError> {
    let expected = parameters(&net);
    let mut problems = Vec::new();
    for p in &expected {
        match tensors.get(&p.name) {
            None if p.required => problems.push(format!("{}: missing", p.name)),
            Some((shape, _)) if *shape != p.shape && p.role != "num_batches_tracked" => problems
                .push(format!(
                    "{}: shape {:?}, expected {:?}",
                    p.name, shape, p.shape
                )),
            _ => {}
        }
    }
    if !problems.is_empty() {
        return Err(ExchangeError::Mapping(problems.join("; ")));
    }
    let get = |name: &str| tensors.get(name).map(|(s, v)| (s.as_slice(), v.as_slice()));
    let device = net_device(&net);
    for (i, block) in net.features.iter_mut().enumerate() {
        let conv = format!("features.{i}.conv");
        let table = block.connections.clone();
        let (w_shape, w) = get(&format!("{conv}.weight")).unwrap_or((&[], &[]));
        if let Some(table) = &table {
            check_table(&conv, w_shape, w, table)?;
        }
        let bias = get(&format!("{conv}.bias")).map(|(_, b)| param1(b, &device));
        match &mut block.conv {
            Conv::D1(c) => {
                c.weight = param(w, w_shape, &device);
                c.bias = bias;
            }
            Conv::D2(c) => {
                c.weight = param(w, w_shape, &device);
                c.bias = bias;
            }
            Conv::D3(c) => {
                c.weight = param(w, w_shape, &device);
                c.bias = bias;
            }
        }
        if let Some(norm) = &mut block.norm {
            let n = format!("features.{i}.norm");
            let v = |role: &str| get(&format!("{n}.{role}")).map(|(_, v)| v).unwrap_or(&[]);
            set_norm(
                norm,
                v("weight"),
                v("bias"),
                v("running_mean"),
                v("running_var"),
                &device,
            );
        }
        if let Some(sub) = &mut block.subsample {
            let n = format!("features.{i}.subsample");
            if let Some((_, c)) = get(&format!("{n}.coefficient")) {
                sub.coefficient = param1(c, &device);
            }
            if let Some((_, b)) = get(&format!("{n}.bias")) {
                sub.bias = param1(b, &device);
            }
        }
    }
    for (j, linear) in net.hidden.iter_mut().enumerate() {
        set_linear(linear, &format!("hidden.{j}"), &get, &device);
    }
    match &mut net.output {
        Output::Linear(linear) => set_linear(linear, "output", &get, &device),
        Output::Rbf(rbf) => {
            if let Some((_, given)) = get("output.prototypes") {
                if given != rbf.prototypes() {
                    return Err(ExchangeError::Mapping(
                        "output.prototypes: differ from LeNet-5's fixed digit bitmaps (lenet's RBF \
                         output is not trainable)"
                            .into(),
                    ));
                }
            }
        }
    }
    Ok(net)
}

fn net_device(net: &ConvNet) -> Device {
    match net.features.first().map(|b| &b.conv) {
        Some(Conv::D1(c)) => c.weight.val().device(),
        Some(Conv::D2(c)) => c.weight.val().device(),
        Some(Conv::D3(c)) => c.weight.val().device(),
        None => match (net.hidden.first(), &net.output) {
            (Some(l), _) | (None, Output::Linear(l)) => l.weight.val().device(),
            (None, Output::Rbf(_)) => Device::flex(),
        },
    }
}

/// A weight outside the connection table would be ignored by lenet's forward pass: refuse it
/// rather than import a network that computes something else than the file's.
fn check_table(
    layer: &str,
    shape: &[usize],
    w: &[f32],
    table: &[Vec<usize>],
) -> Result<(), ExchangeError> {
    let (outs, ins) = (shape[0], shape[1]);
    let taps: usize = shape[2..].iter().product();
    for (o, inputs) in table.iter().enumerate().take(outs) {
        for i in 0..ins {
            if inputs.contains(&i) {
                continue;
            }
            let start = (o * ins + i) * taps;
            if w[start..start + taps].iter().any(|v| *v != 0.0) {
                return Err(ExchangeError::Mapping(format!(
                    "{layer}.weight: the kernel of output channel {o} on input channel {i} is not \
                     zero, but the connection table leaves that pair out"
                )));
            }
        }
    }
    Ok(())
}

fn param<const D: usize>(values: &[f32], shape: &[usize], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(values.to_vec(), shape.to_vec()),
        device,
    ))
}

fn param1(values: &[f32], device: &Device) -> Param<Tensor<1>> {
    param(values, &[values.len()], device)
}

fn set_norm(
    norm: &mut BatchNorm,
    weight: &[f32],
    bias: &[f32],
    mean: &[f32],
    var: &[f32],
    device: &Device,
) {
    norm.gamma = param1(weight, device);
    norm.beta = param1(bias, device);
    norm.running_mean = RunningState::new(Tensor::from_floats(mean, device));
    norm.running_var = RunningState::new(Tensor::from_floats(var, device));
}

/// PyTorch's `[out, in]` weight into Burn's `[in, out]`.
fn set_linear<'a>(
    linear: &mut Linear,
    layer: &str,
    get: &impl Fn(&str) -> Option<(&'a [usize], &'a [f32])>,
    device: &Device,
) {
    if let Some((shape, w)) = get(&format!("{layer}.weight")) {
        let t: Tensor<2> = Tensor::from_data(TensorData::new(w.to_vec(), shape.to_vec()), device);
        linear.weight = Param::from_tensor(t.transpose());
    }
    linear.bias = get(&format!("{layer}.bias")).map(|(_, b)| param1(b, device));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(t: &NamedTensor) -> &[f32] {
        match &t.values {
            Values::F32(v) => v,
            Values::I64(_) => &[],
        }
    }

    fn as_map(entries: &[(Parameter, NamedTensor)]) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
        entries
            .iter()
            .map(|(p, t)| (p.name.clone(), (t.shape.clone(), floats(t).to_vec())))
            .collect()
    }

    fn net(preset: &str) -> ConvNet {
        let device = Device::flex();
        device.seed(3);
        lenet_model::preset(preset).unwrap().init(&device).unwrap()
    }

    #[test]
    fn lenet5_has_pytorchs_names_shapes_and_parameter_count() {
        let n = net("lenet5");
        let params = parameters(&n);
        let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "features.0.conv.weight",
                "features.0.conv.bias",
                "features.1.conv.weight",
                "features.1.conv.bias",
                "hidden.0.weight",
                "hidden.0.bias",
                "hidden.1.weight",
                "hidden.1.bias",
                "output.weight",
                "output.bias"
            ]
        );
        // PyTorch's nn.Linear(400, 120) weight is [120, 400].
        assert_eq!(params[4].shape, [120, 400]);
        let count: usize = params
            .iter()
            .map(|p| p.shape.iter().product::<usize>())
            .sum();
        assert_eq!(count, 61_706);
    }

    #[test]
    fn dense_weights_are_transposed_both_ways() {
        let n = net("lenet5");
        let burn_w = n.hidden[0].weight.val(); // [in = 400, out = 120]
        let burn_vals = burn_w.to_data().try_to_vec::<f32>().unwrap();
        let entries = state_dict(&n);
        let (_, t) = &entries[4];
        // PyTorch's [out][in] element (o, i) is Burn's [in][out] element (i, o).
        for (o, i) in [(0, 0), (5, 17), (119, 399)] {
            assert_eq!(floats(t)[o * 400 + i], burn_vals[i * 120 + o]);
        }
        let back = load_state_dict(net("lenet5"), &as_map(&entries)).unwrap();
        assert_eq!(as_map(&state_dict(&back)), as_map(&entries));
    }

    #[test]
    fn lenet5_1998_round_trips_with_its_table_subsampling_and_rbf() {
        let n = net("lenet5-1998");
        let entries = state_dict(&n);
        let trainable: usize = entries
            .iter()
            .filter(|(p, _)| p.required)
            .map(|(p, _)| p.shape.iter().product::<usize>())
            .sum();
        // 60,000 trainable parameters, counted as PyTorch stores them: C3's kernels outside the
        // table are stored (as zeros) in the dense [16, 6, 5, 5] weight.
        let c3_unconnected = (16 * 6 - 60) * 25;
        assert_eq!(trainable, 60_000 + c3_unconnected);
        assert!(entries
            .iter()
            .any(|(p, _)| p.name == "features.1.subsample.coefficient"));
        assert!(entries
            .iter()
            .any(|(p, _)| p.name == "output.prototypes" && !p.required));
        let map = as_map(&entries);
        let back = load_state_dict(net("lenet5-1998"), &map).unwrap();
        assert_eq!(as_map(&state_dict(&back)), map);

        // A weight outside C3's table is refused, naming the pair.
        let mut bad = map.clone();
        let w = &mut bad.get_mut("features.1.conv.weight").unwrap().1;
        // Output map 0 sees input maps 0, 1, 2 (Table I): input 5 is outside. Its kernel
        // starts at (o · 6 + i) · 25 = 125.
        w[125] = 0.5;
        let err = load_state_dict(net("lenet5-1998"), &bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "features.1.conv.weight: the kernel of output channel 0 on input channel 5"
            ),
            "{err}"
        );

        // Other prototypes are refused: the RBF layer is not trainable.
        let mut bad = map;
        bad.get_mut("output.prototypes").unwrap().1[0] *= -1.0;
        assert!(load_state_dict(net("lenet5-1998"), &bad).is_err());
    }

    #[test]
    fn missing_and_misshaped_parameters_are_named() {
        let mut map = as_map(&state_dict(&net("lenet5")));
        map.remove("hidden.1.bias");
        map.get_mut("output.weight").unwrap().0 = vec![84, 10];
        let err = load_state_dict(net("lenet5"), &map)
            .unwrap_err()
            .to_string();
        assert!(err.contains("hidden.1.bias: missing"), "{err}");
        assert!(
            err.contains("output.weight: shape [84, 10], expected [10, 84]"),
            "{err}"
        );
    }
}
