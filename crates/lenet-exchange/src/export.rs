//! Writing a network's weights: ONNX, safetensors or a PyTorch `state_dict` file, each written
//! atomically.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use lenet_model::ConvNet;

use crate::error::ExchangeError;
use crate::layout::{state_dict, NamedTensor, Values};
use crate::onnx::{to_onnx, OnnxMetadata};

/// The formats a network is exported to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// An ONNX model: the graph and its weights.
    Onnx,
    /// A safetensors file of the weights, PyTorch's names and layouts.
    Safetensors,
    /// A `torch.save(state_dict)` file, PyTorch's names and layouts.
    Pytorch,
}

impl FromStr for ExportFormat {
    type Err = ExchangeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "onnx" => Ok(ExportFormat::Onnx),
            "safetensors" => Ok(ExportFormat::Safetensors),
            "pytorch" | "pt" => Ok(ExportFormat::Pytorch),
            other => Err(ExchangeError::Usage(format!(
                "unknown format {other:?} (expected onnx, safetensors or pytorch)"
            ))),
        }
    }
}

/// Writes `net` to `out` in `format`; `metadata` goes into the ONNX model's metadata and the
/// safetensors header.
pub fn export(
    net: &ConvNet,
    format: ExportFormat,
    metadata: &OnnxMetadata,
    out: &Path,
) -> Result<(), ExchangeError> {
    let bytes = match format {
        ExportFormat::Onnx => to_onnx(net, metadata)?,
        ExportFormat::Safetensors => safetensors_bytes(&tensors(net), metadata)?,
        ExportFormat::Pytorch => crate::pytorch::state_dict_bytes(&tensors(net))?,
    };
    lenet_io::write_atomic(out, &bytes)?;
    Ok(())
}

fn tensors(net: &ConvNet) -> Vec<NamedTensor> {
    state_dict(net).into_iter().map(|(_, t)| t).collect()
}

/// A safetensors file of `tensors` with `metadata` in its header.
pub fn safetensors_bytes(
    tensors: &[NamedTensor],
    metadata: &OnnxMetadata,
) -> Result<Vec<u8>, ExchangeError> {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let bytes: Vec<(Dtype, Vec<u8>)> = tensors
        .iter()
        .map(|t| match &t.values {
            Values::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Values::I64(v) => (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        })
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, (dtype, b))| {
            TensorView::new(*dtype, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| ExchangeError::Export(format!("{}: {e}", t.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut info: HashMap<String, String> = metadata.entries.iter().cloned().collect();
    // What `safetensors.torch.save_file` writes: readers use it to pick the framework.
    info.insert("format".into(), "pt".into());
    safetensors::serialize(views, Some(info))
        .map_err(|e| ExchangeError::Export(format!("safetensors: {e}")))
}
