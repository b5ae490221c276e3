//! `lenet viz`: what a trained network computes, as pictures: its learned filters, and the
//! feature maps of one image after every convolution, nonlinearity and pooling layer.

use std::path::PathBuf;

use burn::tensor::activation::softmax;
use clap::Args;
use lenet_data::resolve_data_root;
use lenet_model::FeatureMap;
use lenet_train::data::{self, DataOptions, Subset};
use lenet_train::predict::load_picture;
use lenet_train::{pictures, BackendKind, ImageItem, TrainedModel};

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
    /// The file `--index` refers to: test, or train (`valid` counts as `train`: the index is
    /// the file's).
    #[arg(long, default_value = "test")]
    split: Subset,
    /// Where to write the pictures (created if needed).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Dataset root (default: $LENET_DATA_DIR, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Backend: flex, ndarray, wgpu, cuda, auto (default: the run's).
    #[arg(long)]
    backend: Option<BackendKind>,
    /// Never download datasets.
    #[arg(long)]
    offline: bool,
}

/// Runs `lenet viz`.
pub fn run(args: VizArgs) -> anyhow::Result<()> {
    let model = TrainedModel::load(&args.checkpoint, args.backend)?;
    let net = &model.net;

    // The input, framed and normalised exactly as in training.
    let (batch, what, label) = match &args.image {
        Some(path) => {
            let picture = load_picture(path)?;
            let batch = model.picture_batch(&[picture])?;
            (batch, path.display().to_string(), None)
        }
        None => {
            let opts = DataOptions {
                root: resolve_data_root(args.data_dir.as_deref()),
                offline: args.offline,
                report_downloads: true,
            };
            let source = data::load_file(&model.config, args.split.file(), &opts)?;
            let index = args.index.unwrap_or(0);
            if index >= source.data.len() {
                return Err(UsageError(format!(
                    "--index {index}: the {} {} file has {} images (0 to {})",
                    source.data.name,
                    args.split.file(),
                    source.data.len(),
                    source.data.len().saturating_sub(1)
                ))
                .into());
            }
            let batcher = source.batcher(&model.plan, None)?;
            let item = ImageItem::plain(index);
            let label = usize::from(source.data.labels[index]);
            (
                batcher.make_batch(&[item], &model.device),
                format!("{} {} image {index}", source.data.name, args.split.file()),
                Some(label),
            )
        }
    };

    let input = FeatureMap::D2(batch.images);
    let mut written = Vec::new();
    let mut write = |file: String, grid: &lenet_viz::Grid| -> anyhow::Result<()> {
        let path = args.out.join(file);
        lenet_viz::write_grid(grid, &path)?;
        written.push(path);
        Ok(())
    };
    write("input.png".into(), &pictures::input_grid(&input)?)?;
    for (layer, grid) in pictures::filters(net)? {
        write(format!("filters-{layer}.png"), &grid)?;
    }
    for (layer, grid) in pictures::feature_maps(net, input.clone())? {
        write(format!("maps-{layer}.png"), &grid)?;
    }

    // What the network makes of it.
    let probs: Vec<f32> = softmax(net.forward(input), 1)
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .map_err(|e| anyhow::anyhow!("cannot read the network's output: {e:?}"))?;
    let (best, p) = probs
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::MIN), |b, (c, v)| if v > b.1 { (c, v) } else { b });
    let name = |c: usize| model.classes.name(c);
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
