//! `lenet export`: a trained model as ONNX, safetensors or a PyTorch state_dict file.

use std::path::PathBuf;

use clap::Args;
use lenet_exchange::onnx::{output_name, INPUT_NAME};
use lenet_exchange::{export, ExportFormat, OnnxMetadata};
use lenet_train::{BackendKind, TrainedModel};

/// Arguments of `lenet export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A run directory, or a weights file (.bpk) with config.toml beside it.
    #[arg(long)]
    checkpoint: PathBuf,
    /// onnx, safetensors or pytorch.
    #[arg(long)]
    format: ExportFormat,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `lenet export`.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    // Exporting reads the weights; the CPU is enough and starts no GPU runtime.
    let model = TrainedModel::load(&args.checkpoint, Some(BackendKind::Flex))?;
    let shape: Vec<String> = model
        .net
        .input_shape
        .iter()
        .map(|d| d.to_string())
        .collect();
    let norm = model.classes.norm;
    let output = output_name(&model.net);
    let metadata = OnnxMetadata {
        entries: vec![
            ("lenet.model".into(), model.config.model.name.clone()),
            ("lenet.dataset".into(), model.config.data.name().to_string()),
            (
                "lenet.input".into(),
                format!(
                    "{INPUT_NAME}: float32 [N, {}], pixels p in 0-255 as (p / 255 - mean) / std, \
                     28x28 images centred in the frame with background 0",
                    shape.join(", ")
                ),
            ),
            ("lenet.normalization.mean".into(), norm.mean.to_string()),
            ("lenet.normalization.std".into(), norm.std.to_string()),
            (
                "lenet.output".into(),
                match output {
                    "scores" => "scores: float32 [N, classes], minus the squared distance to each \
                                 class's RBF prototype (argmax: the class)"
                        .to_string(),
                    _ => "logits: float32 [N, classes] (softmax: the probabilities)".to_string(),
                },
            ),
            (
                "lenet.class_names".into(),
                serde_json::to_string(&model.classes.names)?,
            ),
        ],
    };
    export(&model.net, args.format, &metadata, &args.out)?;
    if !args.quiet {
        println!(
            "exported {} ({:?}) → {}",
            model.config.model.name,
            args.format,
            args.out.display()
        );
    }
    Ok(())
}
