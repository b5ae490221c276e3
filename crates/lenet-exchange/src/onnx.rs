//! ONNX export through `burn-onnx`'s graph capture: the network's forward pass is traced twice
//! (batches of 2 and 3) on Burn's capture device, so the batch axis comes out dynamic, and the
//! trace is lowered to ONNX (opset 18) with the weights embedded. lenet then names the graph's
//! input `input` and its output `logits` (or `scores`, minus the squared RBF distances) and
//! writes the model's name, normalisation and class names into the model's metadata.
//!
//! `burn-onnx`'s exporter is experimental and lowers only some of Burn's operations; what lenet
//! can build but it cannot lower is refused up front, naming the layer ([`check_exportable`]).

use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, ExportError, InputSpec, OnnxExporter};
use lenet_model::{Activation, Conv, ConvNet, FeatureMap, Output};
use onnx_ir::{Message, ModelProto};

use crate::error::ExchangeError;

/// The input's name in exported models.
pub const INPUT_NAME: &str = "input";

/// What an exported model is told about itself, written to its metadata (`metadata_props`).
#[derive(Debug, Clone, Default)]
pub struct OnnxMetadata {
    /// Key-value pairs, in order.
    pub entries: Vec<(String, String)>,
}

/// The output's name: `logits`, or `scores` for an RBF output (minus the squared distances
/// to the class prototypes: the largest score is the nearest prototype).
pub fn output_name(net: &ConvNet) -> &'static str {
    match net.output {
        Output::Linear(_) => "logits",
        Output::Rbf(_) => "scores",
    }
}

/// Refuses, naming the layer, what lenet can build but the ONNX exporter cannot lower.
pub fn check_exportable(net: &ConvNet) -> Result<(), ExchangeError> {
    for (i, block) in net.features.iter().enumerate() {
        let layer = |what: &str| format!("features.{i} ({what})");
        if let Conv::D3(_) = block.conv {
            return Err(ExchangeError::Unsupported {
                layer: layer("3D convolution"),
                message: "burn-onnx 0.22's exporter lowers 1D and 2D convolutions only".into(),
            });
        }
        check_activation(block.activation, &layer("activation"))?;
    }
    if !net.hidden.is_empty() {
        check_activation(net.hidden_activation, "hidden (activation)")?;
    }
    Ok(())
}

fn check_activation(a: Activation, layer: &str) -> Result<(), ExchangeError> {
    match a {
        Activation::Gelu | Activation::LeakyRelu => Err(ExchangeError::Unsupported {
            layer: layer.to_string(),
            message: format!(
                "the {} nonlinearity cannot be exported to ONNX yet (burn-onnx 0.22 does not \
                 lower it); relu, tanh, lecun_tanh, sigmoid, silu and none can",
                a.name()
            ),
        }),
        _ => Ok(()),
    }
}

/// The network as an ONNX model (bytes): input `[N, C, size…]` float32 with a dynamic batch
/// axis `N`, output `[N, classes]`.
pub fn to_onnx(net: &ConvNet, metadata: &OnnxMetadata) -> Result<Vec<u8>, ExchangeError> {
    check_exportable(net)?;
    let device = Device::flex();
    let shape = net.input_shape.clone();
    let exporter = OnnxExporter::new();
    let dynamic_batch = |rank: usize| {
        let mut axes = vec![AxisSpec::dynamic("N")];
        axes.extend((1..rank).map(|_| AxisSpec::Static));
        [InputSpec::new(axes)]
    };
    let captured = match shape.len() {
        2 => {
            let sample = Tensor::<3>::zeros([2, shape[0], shape[1]], &device);
            let check = Tensor::<3>::zeros([3, shape[0], shape[1]], &device);
            exporter.export_dynamic(net, sample, check, &dynamic_batch(3), |n, x| {
                n.forward(FeatureMap::D1(x))
            })
        }
        3 => {
            let sample = Tensor::<4>::zeros([2, shape[0], shape[1], shape[2]], &device);
            let check = Tensor::<4>::zeros([3, shape[0], shape[1], shape[2]], &device);
            exporter.export_dynamic(net, sample, check, &dynamic_batch(4), |n, x| {
                n.forward(FeatureMap::D2(x))
            })
        }
        _ => {
            return Err(ExchangeError::Unsupported {
                layer: "input".into(),
                message: format!("{}D inputs cannot be exported to ONNX", shape.len() - 1),
            })
        }
    };
    let model = captured.map_err(|e| match e {
        ExportError::UnsupportedOperation { operation, kind } => ExchangeError::Export(format!(
            "burn-onnx cannot lower operation {operation} of the forward pass: {}",
            kind.chars().take(200).collect::<String>()
        )),
        other => ExchangeError::Export(other.to_string()),
    })?;
    finish(model.as_bytes(), output_name(net), metadata)
}

/// Names the graph's one input and output, and adds the producer and metadata.
fn finish(bytes: &[u8], output: &str, metadata: &OnnxMetadata) -> Result<Vec<u8>, ExchangeError> {
    let bad = |m: String| ExchangeError::Export(format!("the exported graph: {m}"));
    let mut model = ModelProto::parse_from_bytes(bytes).map_err(|e| bad(e.to_string()))?;
    model.producer_name = "lenet".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    let graph = model.graph.as_mut().ok_or_else(|| bad("no graph".into()))?;
    graph.name = "lenet".into();
    if graph.input.len() != 1 || graph.output.len() != 1 {
        return Err(bad(format!(
            "{} inputs and {} outputs, expected one of each",
            graph.input.len(),
            graph.output.len()
        )));
    }
    let renames = [
        (graph.input[0].name.clone(), INPUT_NAME.to_string()),
        (graph.output[0].name.clone(), output.to_string()),
    ];
    for (from, to) in &renames {
        for node in graph.node.iter_mut() {
            for name in node.input.iter_mut().chain(node.output.iter_mut()) {
                if name == from {
                    name.clone_from(to);
                }
            }
        }
    }
    graph.input[0].name = INPUT_NAME.into();
    graph.output[0].name = output.into();
    for (key, value) in &metadata.entries {
        // onnx-ir does not export the entry's type: push a default one and fill it in.
        model.metadata_props.push(Default::default());
        if let Some(entry) = model.metadata_props.last_mut() {
            entry.key.clone_from(key);
            entry.value.clone_from(value);
        }
    }
    model.write_to_bytes().map_err(|e| bad(e.to_string()))
}
