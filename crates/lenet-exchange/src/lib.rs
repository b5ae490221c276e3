//! # lenet-exchange
//!
//! Weights in and out of lenet: a PyTorch `state_dict` or a safetensors file becomes a lenet
//! network ([`import`]); a network becomes an ONNX model ([`onnx`]), a safetensors file or a
//! PyTorch `state_dict` file ([`export()`]), under the names and in the layouts of the PyTorch
//! module in `python/lenet_torch.py` ([`layout`]).

pub mod error;
pub mod export;
pub mod import;
pub mod layout;
pub mod onnx;
mod pytorch;

pub use error::ExchangeError;
pub use export::{export, ExportFormat};
pub use import::{map_keys, mapping_table, read_weights, MappingRow, Rule, SourceTensor, Weights};
pub use layout::{load_state_dict, parameters, state_dict, LayerKind, NamedTensor, Parameter};
pub use onnx::{to_onnx, OnnxMetadata};

use lenet_model::ConvNet;

/// `net` with the weights of `sources` mapped onto it (see [`import`]), and the mapping.
pub fn import_into(
    net: ConvNet,
    sources: &[SourceTensor],
    rules: &[Rule],
) -> Result<(ConvNet, Vec<MappingRow>), ExchangeError> {
    let rows = map_keys(&parameters(&net), sources, rules)?;
    let by_source: std::collections::BTreeMap<&str, &SourceTensor> =
        sources.iter().map(|s| (s.key.as_str(), s)).collect();
    let tensors = rows
        .iter()
        .filter_map(|r| {
            by_source
                .get(r.source.as_str())
                .map(|s| (r.target.clone(), (s.shape.clone(), s.values.clone())))
        })
        .collect();
    Ok((load_state_dict(net, &tensors)?, rows))
}
