//! A 2D network described in a config file, validated, summarised and run on a random batch.
//!
//!     cargo run -p lenet-examples --example model_from_config [-- configs/custom-cnn.toml]

use std::path::PathBuf;

use burn::tensor::{Device, Distribution, Tensor};
use lenet_model::ModelConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs/custom-cnn.toml")
        });
    // Reads the `[model]` table (or a model-only file), expands presets, checks every field.
    let config = ModelConfig::from_file(&path)?;
    // Validation and shape inference: every layer's output size, before any tensor exists.
    let plan = config.plan()?;
    print!("{}", plan.summary(&config.name).to_table());

    // Build it on the CPU and run a batch of 4 random images through it.
    let device = Device::flex();
    let net = plan.build(&device);
    let shape = plan.input_shape();
    let x: Tensor<4> = Tensor::random(
        [4, shape[0], shape[1], shape[2]],
        Distribution::Default,
        &device,
    );
    let logits = net.forward_2d(x);
    println!("logits of a random batch: {:?}", logits.dims());
    assert_eq!(logits.dims(), [4, plan.num_classes]);
    Ok(())
}
