//! `lenet data`: download, verify and look at datasets.
//!
//! - `lenet data fetch <mnist|fashion-mnist> [--data-dir DIR] [--mirror URL]...`
//! - `lenet data verify [<dataset> | --path DIR] [--data-dir DIR]`
//! - `lenet data show <dataset> --index N [--split train|test] [--png FILE] [--augment]
//!   [--config FILE] [--seed S] [--data-dir DIR]`
//!
//! The data root is `--data-dir`, else `$LENET_DATA_DIR`, else `./data`; a dataset lives in
//! `<root>/<name>/`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lenet_data::{
    fetch as fetch_dataset, resolve_data_root, text_art, verify_dir, verify_root, write_png,
    AugmentConfig, Augmenter, DataError, Dataset, DatasetKind, FetchEvent, Split, VerifyReport,
};
use lenet_train::RunConfig;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::UsageError;

/// Writes to standard output, ignoring write errors: a closed pipe (`lenet data verify | head`)
/// must not turn into a panic or a failure.
fn emit(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_fmt(text);
}

/// `println!` through [`emit`].
macro_rules! say {
    () => {
        emit(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        emit(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Arguments of `lenet data`.
#[derive(Args, Debug)]
pub struct DataArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// The `lenet data` subcommands.
#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Download a dataset from its mirrors (skipping files already present and intact) and
    /// verify every file.
    Fetch(FetchArgs),
    /// Check a dataset's files: presence, SHA-256, IDX headers, item counts and labels.
    Verify(VerifyArgs),
    /// Print one image's label and the image as text art; optionally write it as a PNG.
    Show(ShowArgs),
}

/// Arguments of `lenet data fetch`.
#[derive(Args, Debug)]
pub struct FetchArgs {
    /// The dataset: mnist or fashion-mnist.
    #[arg(value_name = "DATASET", value_parser = parse_kind)]
    pub dataset: DatasetKind,
    /// Data root [default: $LENET_DATA_DIR, else ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A mirror base URL to try before the official ones (may be repeated).
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<String>,
}

/// Arguments of `lenet data verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The dataset to check [default: every built-in dataset found under the data root].
    #[arg(value_name = "DATASET", value_parser = parse_kind, conflicts_with = "path")]
    pub dataset: Option<DatasetKind>,
    /// Check the four standard files in this directory instead (checksums are matched
    /// against the built-in datasets).
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// Data root [default: $LENET_DATA_DIR, else ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Arguments of `lenet data show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The dataset: mnist or fashion-mnist.
    #[arg(value_name = "DATASET", value_parser = parse_kind)]
    pub dataset: DatasetKind,
    /// Which image (0-based).
    #[arg(long)]
    pub index: usize,
    /// Which split: train or test.
    #[arg(long, default_value = "train", value_parser = parse_split)]
    pub split: Split,
    /// Also write the image to this PNG file.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Show the image after random augmentation.
    #[arg(long)]
    pub augment: bool,
    /// Take the augmentation settings from this config file's [data.augment] table
    /// [default: a moderate preview preset].
    #[arg(long, value_name = "FILE", requires = "augment")]
    pub config: Option<PathBuf>,
    /// Seed of the augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Data root [default: $LENET_DATA_DIR, else ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

fn parse_kind(s: &str) -> Result<DatasetKind, String> {
    s.parse().map_err(|e: DataError| e.to_string())
}

fn parse_split(s: &str) -> Result<Split, String> {
    s.parse().map_err(|e: DataError| e.to_string())
}

/// Runs `lenet data`.
pub fn run(args: DataArgs) -> Result<()> {
    match args.command {
        DataCommand::Fetch(a) => fetch(&a),
        DataCommand::Verify(a) => verify(&a),
        DataCommand::Show(a) => show(&a),
    }
}

fn fetch(args: &FetchArgs) -> Result<()> {
    let root = resolve_data_root(args.data_dir.as_deref());
    let kind = args.dataset;
    say!("fetching {kind} into {}", kind.dir(&root).display());
    let report = fetch_dataset(kind, &root, &args.mirrors, &mut |event| match event {
        FetchEvent::Present(f) => say!("  {f}: already present, checksum ok"),
        FetchEvent::PresentUncompressed(f) => {
            say!("  {f}: already present uncompressed, checksum ok")
        }
        FetchEvent::Damaged(f) => {
            say!("  {f}: present but its checksum is wrong; downloading again")
        }
        FetchEvent::Downloading(f) => say!("  {f}: downloading ..."),
        FetchEvent::Downloaded(f) => say!("  {f}: downloaded, checksum ok"),
    })?;
    say!();
    finish(report)
}

fn verify(args: &VerifyArgs) -> Result<()> {
    let report = match &args.path {
        Some(dir) => {
            let kind = dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<DatasetKind>().ok());
            verify_dir(dir, kind, "")
        }
        None => verify_root(&resolve_data_root(args.data_dir.as_deref()), args.dataset)?,
    };
    finish(report)
}

/// Prints the table; an error listing the problems if there are any.
fn finish(report: VerifyReport) -> Result<()> {
    emit(format_args!("{}", report.table()));
    Ok(report.into_result()?)
}

fn show(args: &ShowArgs) -> Result<()> {
    let root = resolve_data_root(args.data_dir.as_deref());
    let kind = args.dataset;
    let ds = Dataset::load(kind, &root, args.split)?;
    let (rows, cols) = (ds.images.rows, ds.images.cols);
    let img = ds.images.get(args.index).ok_or_else(|| {
        UsageError(format!(
            "--index {} is out of range: {kind} {} has {} images (0..={})",
            args.index,
            args.split,
            ds.len(),
            ds.len().saturating_sub(1)
        ))
    })?;
    let mut shown = img.to_vec();
    let mut note = String::new();
    if args.augment {
        // The [data.augment] table as training reads it: through the run config.
        let cfg = match &args.config {
            Some(p) => {
                RunConfig::load(p, &[])
                    .with_context(|| {
                        format!("taking the augmentation settings of {}", p.display())
                    })?
                    .data
                    .augment
            }
            None => AugmentConfig::preview(),
        };
        let augmenter = Augmenter::new(AugmentConfig {
            enabled: true,
            ..cfg
        })?;
        let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
        augmenter.apply(img, rows, cols, &mut rng, &mut shown);
        note = format!(", augmented with seed {}", args.seed);
    }
    let label = ds.labels[args.index];
    let class = ds
        .class_names
        .get(usize::from(label))
        .map_or("?", String::as_str);
    say!(
        "{kind} {} #{}: label {label} ({class}){note}",
        args.split,
        args.index
    );
    emit(format_args!("{}", text_art(&shown, rows, cols)));
    if let Some(p) = &args.png {
        write_png(p, &shown, rows, cols)?;
        say!("wrote {}", p.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use lenet_data::testing::write_fake_dataset;
    use std::path::Path;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: DataCommand,
    }

    fn parse(args: &[&str]) -> Result<DataCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("data").chain(args.iter().copied())).map(|c| c.command)
    }

    fn real_root() -> PathBuf {
        lenet_data::testing::real_data_root()
    }

    #[test]
    fn parses_subcommands() {
        match parse(&[
            "fetch",
            "fashion-mnist",
            "--mirror",
            "http://a",
            "--mirror",
            "http://b",
        ])
        .unwrap()
        {
            DataCommand::Fetch(a) => {
                assert_eq!(a.dataset, DatasetKind::FashionMnist);
                assert_eq!(a.mirrors, ["http://a", "http://b"]);
            }
            other => panic!("{other:?}"),
        }
        match parse(&[
            "show",
            "mnist",
            "--index",
            "7",
            "--split",
            "test",
            "--augment",
        ])
        .unwrap()
        {
            DataCommand::Show(a) => {
                assert_eq!(
                    (a.index, a.split, a.augment, a.seed),
                    (7, Split::Test, true, 0)
                );
            }
            other => panic!("{other:?}"),
        }
        match parse(&["verify", "--path", "/x"]).unwrap() {
            DataCommand::Verify(a) => assert_eq!(a.path.as_deref(), Some(Path::new("/x"))),
            other => panic!("{other:?}"),
        }
        let err = parse(&["fetch", "cifar"]).unwrap_err();
        assert!(err.to_string().contains("cifar"), "{err}");
        assert!(parse(&["verify", "mnist", "--path", "/x"]).is_err());
        assert!(parse(&["show", "mnist"]).is_err(), "--index is required");
        assert!(parse(&["show", "mnist", "--index", "1", "--split", "valid"]).is_err());
        assert!(parse(&["show", "mnist", "--index", "1", "--config", "c.toml"]).is_err());
    }

    #[test]
    fn show_and_png() {
        let root = tempfile::tempdir().unwrap();
        let d = DatasetKind::Mnist.dir(root.path());
        std::fs::create_dir_all(&d).unwrap();
        write_fake_dataset(&d, 28, &[5, 0, 4]);
        let png = root.path().join("out.png");
        let args = |index, augment| ShowArgs {
            dataset: DatasetKind::Mnist,
            index,
            split: Split::Train,
            png: Some(png.clone()),
            augment,
            config: None,
            seed: 3,
            data_dir: Some(root.path().to_path_buf()),
        };
        show(&args(2, false)).unwrap();
        let plain = std::fs::read(&png).unwrap();
        show(&args(2, true)).unwrap();
        assert_ne!(std::fs::read(&png).unwrap(), plain);
        let err = show(&args(3, false)).unwrap_err().to_string();
        assert!(
            err.contains("out of range") && err.contains("0..=2"),
            "{err}"
        );

        let missing = ShowArgs {
            dataset: DatasetKind::FashionMnist,
            ..args(0, false)
        };
        let err = show(&missing).unwrap_err().to_string();
        assert!(err.contains("lenet data fetch fashion-mnist"), "{err}");

        // --augment --config: the [data.augment] table of a run config, read as training reads
        // it (an unknown key is an error naming the file and the key).
        let config = root.path().join("run.toml");
        std::fs::write(
            &config,
            "[model]\npreset = \"lenet5\"\n[data.augment]\nenabled = true\nrotate = 30.0\n",
        )
        .unwrap();
        let with_config = ShowArgs {
            config: Some(config.clone()),
            ..args(2, true)
        };
        show(&with_config).unwrap();
        let rotated = std::fs::read(&png).unwrap();
        assert_ne!(rotated, plain);
        std::fs::write(
            &config,
            "[model]\npreset = \"lenet5\"\n[data.augment]\nspin = 1.0\n",
        )
        .unwrap();
        let err = format!("{:#}", show(&with_config).unwrap_err());
        assert!(err.contains("run.toml") && err.contains("spin"), "{err}");
    }

    /// On the real data (if present) everything verifies, and `fetch` finds nothing to
    /// download (so this never touches the network).
    #[test]
    fn real_data_verifies() {
        let root = real_root();
        let present = DatasetKind::ALL.into_iter().all(|k| {
            k.files()
                .iter()
                .all(|f| k.dir(&root).join(f.name).is_file())
        });
        if !present {
            lenet_data::testing::unavailable(&format!(
                "the real datasets are not under {}; set LENET_DATA_DIR",
                root.display()
            ));
            return;
        }
        verify(&VerifyArgs {
            dataset: None,
            path: None,
            data_dir: Some(root.clone()),
        })
        .unwrap();
        verify(&VerifyArgs {
            dataset: None,
            path: Some(DatasetKind::FashionMnist.dir(&root)),
            data_dir: None,
        })
        .unwrap();
        let report = verify_dir(&DatasetKind::Mnist.dir(&root), None, "x/");
        assert!(
            report.rows.iter().all(|r| r.sha == "ok (mnist)"),
            "{}",
            report.table()
        );
        fetch(&FetchArgs {
            dataset: DatasetKind::Mnist,
            data_dir: Some(root),
            mirrors: vec!["http://127.0.0.1:1/never-used".into()],
        })
        .unwrap();
    }
}
