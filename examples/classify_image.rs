//! Load a model trained by `lenet train` and classify a picture with it.
//!
//!     lenet train --config configs/lenet5.toml --epochs 1 --run-dir runs/quick
//!     cargo run -p lenet-examples --example classify_image -- runs/quick digit.png
//!
//! Works for any run, custom datasets included: the run's `config.toml` says which network,
//! which classes and which normalisation; `model.bpk` holds the weights.

use std::path::PathBuf;

use lenet_train::predict::load_picture;
use lenet_train::{BackendKind, TrainedModel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(run), Some(image)) = (
        args.next().map(PathBuf::from),
        args.next().map(PathBuf::from),
    ) else {
        return Err("usage: classify_image RUN_DIR IMAGE".into());
    };
    // The one loader `lenet eval`, `predict` and `viz` use; here on the CPU whatever the run
    // was trained on.
    let model = TrainedModel::load(&run, Some(BackendKind::Flex))?;
    // MNIST-style preprocessing: grey-scale, white on black, fitted to 20×20, centred in 28×28.
    let picture = load_picture(&image)?;
    let ranking = model.classify(&[picture])?;
    for (class, p) in ranking[0].iter().take(3) {
        println!("{:>12}  {:5.1}%", model.classes.name(*class), 100.0 * p);
    }
    Ok(())
}
