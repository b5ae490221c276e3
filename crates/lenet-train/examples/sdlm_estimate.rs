//! The second derivatives SDLM divides by: for each parameter tensor of a network, in the
//! network's order, its mean magnitude and the mean, smallest and largest of its estimated
//! second derivative `h` (Gauss-Newton, diagonal, per image: `lenet_model::curvature`) on the
//! first `curvature_samples` training images of the config, at the network's initialisation
//! (the config's seed) or at a run's weights. Compare `h` with `training.optimizer.mu`: where
//! `h` is far below it, a parameter steps by `lr / mu` times its gradient. docs/configs.md
//! ("LeNet-5 as published") quotes its output.
//!
//! ```text
//! cargo run --example sdlm_estimate -- configs/lenet5-1998.toml          # at initialisation
//! cargo run --example sdlm_estimate -- configs/lenet5-1998.toml RUN_DIR  # at RUN_DIR/model.bpk
//! ```
//!
//! The data is read from `LENET_DATA_DIR` (default `data`, as for `lenet`), never downloaded.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use lenet_model::curvature::Curvature;
use lenet_model::FeatureMap;
use lenet_train::data::{self, ImageItem};
use lenet_train::{DataOptions, RunConfig, TrainedModel};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config_path, run) = match args.as_slice() {
        [c] => (PathBuf::from(c), None),
        [c, r] => (PathBuf::from(c), Some(PathBuf::from(r))),
        _ => bail!("usage: sdlm_estimate CONFIG [RUN_DIR]"),
    };
    let config = RunConfig::load(&config_path, &[])
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let plan = config.model.plan()?;
    let options = DataOptions {
        root: lenet_data::resolve_data_root(None),
        offline: true,
        report_downloads: false,
    };
    let data = data::load(&config, &plan, &options).context("cannot load the config's data")?;
    let device = Device::flex().autodiff();
    device.seed(config.training.seed);
    let net = match &run {
        None => plan.build(&device),
        Some(dir) => {
            let weights = dir.join("model.bpk");
            TrainedModel::from_weights(config.clone(), &weights, device.clone(), String::new())
                .with_context(|| format!("cannot load {}", weights.display()))?
                .net
        }
    };
    let samples = config
        .training
        .optimizer
        .curvature_samples
        .min(data.train.indices.len());
    let items: Vec<ImageItem> = data.train.indices[..samples]
        .iter()
        .map(|&i| ImageItem::plain(i))
        .collect();
    let images = data.train.batcher.make_batch(&items, &device).images;
    let curvature = net.curvature(FeatureMap::D2(images))?;
    println!(
        "{} at {}; h per image over {samples} training images; mu = {}",
        config_path.display(),
        run.as_ref().map_or("its initialisation".to_string(), |d| d
            .display()
            .to_string()),
        config.training.optimizer.mu
    );
    println!(
        "{:<18}{:>12}{:>12}{:>12}{:>12}",
        "shape", "mean |w|", "mean h", "min h", "max h"
    );
    net.visit(&mut Report {
        curvature: &curvature,
    });
    Ok(())
}

/// Prints one line per parameter tensor.
struct Report<'a> {
    curvature: &'a Curvature,
}

impl ModuleVisitor for Report<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let w = param.val();
        let shape = format!("{:?}", w.dims());
        let magnitude = w.abs().mean().into_scalar::<f32>();
        let Some(h) = self.curvature.sums.get::<D>(param.id) else {
            println!("{shape:<18}{magnitude:>12.3e}  (no estimate: not trained)");
            return;
        };
        let h = h.div_scalar(self.curvature.samples as f64);
        println!(
            "{shape:<18}{magnitude:>12.3e}{:>12.3e}{:>12.3e}{:>12.3e}",
            h.clone().mean().into_scalar::<f32>(),
            h.clone().min().into_scalar::<f32>(),
            h.max().into_scalar::<f32>()
        );
    }
}
