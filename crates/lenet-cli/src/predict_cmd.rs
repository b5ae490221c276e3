//! `lenet predict`: classify your own pictures with a trained model.

use std::path::PathBuf;

use clap::Args;
use lenet_train::predict::load_picture;
use lenet_train::{BackendKind, TrainedModel};
use serde_json::json;

/// Arguments of `lenet predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A run directory, or a weights file (.bpk) with config.toml beside it.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Pictures (PNG or JPEG) of single digits or items, any size, dark-on-light or light-on-dark.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to list per picture.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Backend: flex, ndarray, wgpu, cuda, auto (default: the run's).
    #[arg(long)]
    backend: Option<BackendKind>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `lenet predict`.
pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let model = TrainedModel::load(&args.checkpoint, args.backend)?;
    let pictures = args
        .images
        .iter()
        .map(|p| load_picture(p))
        .collect::<Result<Vec<_>, _>>()?;
    let rankings = model.classify(&pictures)?;
    let names = &model.classes.names;
    let top = args.top.clamp(1, names.len().max(1));
    if args.json {
        let out: Vec<_> = args
            .images
            .iter()
            .zip(&rankings)
            .map(|(p, r)| {
                json!({
                    "image": p.display().to_string(),
                    "class": r[0].0,
                    "name": names[r[0].0],
                    "probability": r[0].1,
                    "top": r.iter().take(top).map(|(c, pr)| json!({"class": c, "name": names[*c], "probability": pr})).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (p, r) in args.images.iter().zip(&rankings) {
            let alts: Vec<String> = r
                .iter()
                .take(top)
                .map(|(c, pr)| format!("{} {:.1}%", names[*c], 100.0 * pr))
                .collect();
            println!("{}: {}  ({})", p.display(), names[r[0].0], alts.join(", "));
        }
    }
    Ok(())
}
