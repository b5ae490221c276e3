//! Load a model trained by `lenet train` and classify a picture with it.
//!
//!     lenet train --config configs/lenet5.toml --epochs 1 --run-dir runs/quick
//!     cargo run -p lenet-examples --example classify_image -- runs/quick digit.png

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::Device;
use lenet_train::data::DatasetKind;
use lenet_train::predict::{classify, load_picture};
use lenet_train::{Normalization, RunConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(run), Some(image)) = (
        args.next().map(PathBuf::from),
        args.next().map(PathBuf::from),
    ) else {
        return Err("usage: classify_image RUN_DIR IMAGE".into());
    };
    // The run directory holds the resolved config and the kept weights.
    let config = RunConfig::load(&run.join("config.toml"), &[])?;
    let device = Device::flex();
    let net = config
        .model
        .init(&device)?
        .try_load_file(run.join("model.bpk"))?;

    let kind: DatasetKind = config.data.dataset.parse()?;
    let names: Vec<String> = kind.class_names().iter().map(|s| s.to_string()).collect();
    let norm = Normalization {
        mean: kind.mean(),
        std: kind.std(),
    };
    // MNIST-style preprocessing: grey-scale, white on black, fitted to 20×20, centred in 28×28.
    let picture = load_picture(&image)?;
    let ranking = classify(&net, &[picture], norm, &names, &device)?;
    for (class, p) in ranking[0].iter().take(3) {
        println!("{:>12}  {:5.1}%", names[*class], 100.0 * p);
    }
    Ok(())
}
