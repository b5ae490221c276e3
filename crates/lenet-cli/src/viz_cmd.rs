//! `lenet viz`: what a trained network computes, as pictures: its learned filters, and the
//! feature maps of one image after every convolution, nonlinearity and pooling layer.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::activation::softmax;
use clap::Args;
use lenet_model::FeatureMap;
use lenet_train::data::resolve_data_root;
use lenet_train::pictures;
use lenet_train::predict::{load_picture, picture_batch};
use lenet_train::ImageItem;

use crate::eval_cmd::EvalSplit;
use crate::UsageError;

/// Arguments of `lenet viz`.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("what").args(["image", "index"]))]
pub struct VizArgs {
    /// A run directory, or a weights file (.bpk) with config.toml beside it.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Your own picture (PNG or JPEG), preprocessed like `lenet predict` does.
    #[arg(long)]
    image: Option<PathBuf>,
    /// An image of the run's dataset, by index (default: 0).
    #[arg(long, value_name = "N")]
    index: Option<usize>,
    /// The split `--index` refers to (`valid` counts as `train`: the index is the file's).
    #[arg(long, value_enum, default_value = "test")]
    split: EvalSplit,
    /// Where to write the pictures (created if needed).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Dataset root (default: $LENET_DATA_DIR, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Backend (default: the run's).
    #[arg(long)]
    backend: Option<String>,
    /// Never download datasets.
    #[arg(long)]
    offline: bool,
}

/// Runs `lenet viz`.
pub fn run(args: VizArgs) -> anyhow::Result<()> {
    let trained = crate::checkpoint::load(&args.checkpoint, args.backend.as_deref())?;
    let (net, device) = (&trained.net, &trained.device);
    let (names, norm) = lenet_train::source::classes_and_norm(&trained.config.data)
        .map_err(|e| UsageError(e.to_string()))?;

    // The input, framed and normalised exactly as in training.
    let (batch, what, label) = match &args.image {
        Some(path) => {
            let picture = load_picture(path).map_err(|e| UsageError(e.to_string()))?;
            let batch = picture_batch(net, &[picture], norm, &names, device)
                .map_err(|e| UsageError(e.to_string()))?;
            (batch, path.display().to_string(), None)
        }
        None => {
            let root = resolve_data_root(args.data_dir.as_deref());
            let source = lenet_train::source::load(
                &trained.config.data,
                &root,
                args.split.file(),
                args.offline,
            )?;
            let index = args.index.unwrap_or(0);
            if index >= source.data.len() {
                return Err(UsageError(format!(
                    "--index {index}: the {} {:?} split has {} images (0 to {})",
                    source.data.name,
                    args.split,
                    source.data.len(),
                    source.data.len().saturating_sub(1)
                ))
                .into());
            }
            let batcher = source
                .batcher(&trained.plan, None)
                .map_err(|e| UsageError(e.to_string()))?;
            let item = ImageItem {
                index,
                augment_seed: None,
            };
            let label = usize::from(source.data.labels[index]);
            (
                batcher.make_batch(&[item], device),
                format!("{} {:?} image {index}", source.data.name, args.split).to_lowercase(),
                Some(label),
            )
        }
    };

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let input = FeatureMap::D2(batch.images);
    let mut written = Vec::new();
    let mut write = |file: String, grid: &lenet_viz::Grid| -> anyhow::Result<()> {
        let path = args.out.join(file);
        lenet_viz::write_grid(grid, &path)?;
        written.push(path);
        Ok(())
    };
    write("input.png".into(), &pictures::input_grid(&input))?;
    for (layer, grid) in pictures::filters(net) {
        write(format!("filters-{layer}.png"), &grid)?;
    }
    for (layer, grid) in pictures::feature_maps(net, input.clone()) {
        write(format!("maps-{layer}.png"), &grid)?;
    }

    // What the network makes of it.
    let probs: Vec<f32> = softmax(net.forward(input), 1)
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .unwrap_or_default();
    let (best, p) = probs
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::MIN), |b, (c, v)| if v > b.1 { (c, v) } else { b });
    let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
    let truth = label
        .map(|l| format!(" (true class {})", name(l)))
        .unwrap_or_default();
    println!(
        "{what}: predicted {} ({:.1}%){truth}",
        name(best),
        100.0 * p
    );
    for path in &written {
        println!("wrote {}", path.display());
    }
    Ok(())
}
