//! `lenet data`: download, verify and look at datasets.
//!
//! - `lenet data fetch <mnist|fashion-mnist> [--data-dir DIR] [--mirror URL]...`
//! - `lenet data verify [<dataset> | --path DIR] [--data-dir DIR]`
//! - `lenet data show <dataset> --index N [--split train|test] [--png FILE] [--augment]
//!   [--config FILE] [--seed S] [--data-dir DIR]`
//!
//! The data root is `--data-dir`, else `$LENET_DATA_DIR`, else `./data`; a dataset lives in
//! `<root>/<name>/`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use lenet_train::data::{
    download_verified, file_urls, read_images, read_labels, resolve_data_root, sha256_file,
    text_art, verify_sha256, write_png, AugmentConfig, Augmenter, DataError, Dataset, DatasetFile,
    DatasetKind, FileRole, Split,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

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
    let dir = kind.dir(&root);
    say!("fetching {kind} into {}", dir.display());
    for f in kind.files() {
        let gz = dir.join(f.name);
        let raw = dir.join(f.raw_name());
        if gz.is_file() {
            match verify_sha256(&gz, f.sha256) {
                Ok(()) => {
                    say!("  {}: already present, checksum ok", f.name);
                    continue;
                }
                Err(DataError::ChecksumMismatch { .. }) => {
                    say!(
                        "  {}: present but its checksum is wrong; downloading again",
                        f.name
                    );
                }
                Err(e) => return Err(e.into()),
            }
        } else if raw.is_file() && verify_sha256(&raw, f.sha256_raw).is_ok() {
            say!(
                "  {}: already present uncompressed, checksum ok",
                f.raw_name()
            );
            continue;
        }
        say!("  {}: downloading ...", f.name);
        download_verified(&file_urls(kind, f, &args.mirrors), &gz, f.sha256)?;
        say!("  {}: downloaded, checksum ok", f.name);
    }
    say!();
    let report = check_dir(&dir, Some(kind), &format!("{kind}/"));
    report.finish()
}

fn verify(args: &VerifyArgs) -> Result<()> {
    let report = if let Some(dir) = &args.path {
        let kind = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<DatasetKind>().ok());
        check_dir(dir, kind, "")
    } else {
        let root = resolve_data_root(args.data_dir.as_deref());
        let kinds: Vec<DatasetKind> = match args.dataset {
            Some(k) => vec![k],
            None => DatasetKind::ALL
                .into_iter()
                .filter(|k| k.dir(&root).is_dir())
                .collect(),
        };
        if kinds.is_empty() {
            bail!(
                "no dataset found under {}: expected {} or {} (run `lenet data fetch mnist`, or \
                 pass --data-dir)",
                root.display(),
                DatasetKind::Mnist.dir(&root).display(),
                DatasetKind::FashionMnist.dir(&root).display()
            );
        }
        let mut all = Report::default();
        for k in kinds {
            let r = check_dir(&k.dir(&root), Some(k), &format!("{k}/"));
            all.rows.extend(r.rows);
            all.problems.extend(r.problems);
        }
        all
    };
    report.finish()
}

fn show(args: &ShowArgs) -> Result<()> {
    let root = resolve_data_root(args.data_dir.as_deref());
    let kind = args.dataset;
    let ds = Dataset::load(kind, &root, args.split)?;
    let (rows, cols) = (ds.images.rows, ds.images.cols);
    let img = ds.images.get(args.index).ok_or_else(|| {
        anyhow!(
            "--index {} is out of range: {kind} {} has {} images (0..={})",
            args.index,
            args.split,
            ds.len(),
            ds.len().saturating_sub(1)
        )
    })?;
    let mut shown = img.to_vec();
    let mut note = String::new();
    if args.augment {
        let cfg = match &args.config {
            Some(p) => AugmentConfig::from_config_file(p)?
                .ok_or_else(|| anyhow!("{}: has no [data.augment] table", p.display()))?,
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

/// One line of the verification table.
#[derive(Debug)]
struct Row {
    file: String,
    items: String,
    shape: String,
    sha: String,
}

/// The outcome of checking one or more directories.
#[derive(Debug, Default)]
struct Report {
    rows: Vec<Row>,
    problems: Vec<String>,
}

impl Report {
    /// The aligned table: file, items, shape, sha256.
    fn table(&self) -> String {
        let header = Row {
            file: "file".into(),
            items: "items".into(),
            shape: "shape".into(),
            sha: "sha256".into(),
        };
        let all: Vec<&Row> = std::iter::once(&header).chain(&self.rows).collect();
        let w_file = all.iter().map(|r| r.file.len()).max().unwrap_or(0);
        let w_items = all.iter().map(|r| r.items.len()).max().unwrap_or(0);
        let w_shape = all.iter().map(|r| r.shape.len()).max().unwrap_or(0);
        all.iter()
            .map(|r| {
                format!(
                    "{:<w_file$}  {:>w_items$}  {:<w_shape$}  {}\n",
                    r.file, r.items, r.shape, r.sha
                )
            })
            .collect()
    }

    /// Prints the table; an error listing the problems if there are any.
    fn finish(self) -> Result<()> {
        emit(format_args!("{}", self.table()));
        if self.problems.is_empty() {
            return Ok(());
        }
        let mut msg = format!("{} problem(s) found:", self.problems.len());
        for p in &self.problems {
            msg.push_str("\n  - ");
            msg.push_str(p);
        }
        Err(anyhow!(msg))
    }
}

/// What was read from one file, for the cross-file checks.
enum Parsed {
    Images(usize),
    Labels(Vec<u8>),
}

/// Checks the four standard files in `dir`. With `kind`, checksums and counts are compared to
/// that dataset's; without, checksums are matched against every built-in dataset.
fn check_dir(dir: &Path, kind: Option<DatasetKind>, prefix: &str) -> Report {
    let mut report = Report::default();
    // Both built-in datasets use the same four names, in the same order.
    let names = DatasetKind::Mnist.files();
    let mut parsed: Vec<Option<Parsed>> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let spec = kind.map(|k| &k.files()[i]);
        let (row, p) = check_file(dir, name, spec, prefix, &mut report.problems);
        report.rows.push(row);
        parsed.push(p);
    }
    for split in [Split::Train, Split::Test] {
        let (ii, li) = match split {
            Split::Train => (0, 1),
            Split::Test => (2, 3),
        };
        if let (Some(Parsed::Images(n)), Some(Parsed::Labels(labels))) = (&parsed[ii], &parsed[li])
        {
            if *n != labels.len() {
                report.problems.push(format!(
                    "{split}: {} holds {n} images but {} holds {} labels",
                    names[ii].name,
                    names[li].name,
                    labels.len()
                ));
            }
        }
        if let (Some(k), Some(Parsed::Labels(labels))) = (kind, &parsed[li]) {
            if let Some((idx, &l)) = labels
                .iter()
                .enumerate()
                .find(|(_, &l)| usize::from(l) >= k.num_classes())
            {
                report.problems.push(format!(
                    "{}: label {l} at index {idx} is outside 0..{}",
                    dir.join(names[li].name).display(),
                    k.num_classes()
                ));
            }
        }
    }
    report
}

/// Checks one file (the `.gz` name, else the uncompressed one).
fn check_file(
    dir: &Path,
    name: &DatasetFile,
    spec: Option<&DatasetFile>,
    prefix: &str,
    problems: &mut Vec<String>,
) -> (Row, Option<Parsed>) {
    let gz = dir.join(name.name);
    let raw = dir.join(name.raw_name());
    let (path, compressed) = if gz.is_file() {
        (gz, true)
    } else if raw.is_file() {
        (raw, false)
    } else {
        problems.push(format!(
            "{}: missing (nor {})",
            gz.display(),
            name.raw_name()
        ));
        let row = Row {
            file: format!("{prefix}{}", name.name),
            items: "-".into(),
            shape: "-".into(),
            sha: "MISSING".into(),
        };
        return (row, None);
    };
    let shown_name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let expected = |f: &DatasetFile| if compressed { f.sha256 } else { f.sha256_raw };
    let sha = match sha256_file(&path) {
        Err(e) => {
            problems.push(e.to_string());
            "FAILED (unreadable)".to_string()
        }
        Ok(actual) => match spec {
            Some(f) if actual == expected(f) => "ok".to_string(),
            Some(f) => {
                problems.push(
                    DataError::ChecksumMismatch {
                        path: path.clone(),
                        expected: expected(f).to_string(),
                        actual,
                    }
                    .to_string(),
                );
                "FAILED".to_string()
            }
            None => DatasetKind::ALL
                .into_iter()
                .find(|k| k.files().iter().any(|f| expected(f) == actual))
                .map_or_else(|| "unknown".to_string(), |k| format!("ok ({k})")),
        },
    };
    let (items, shape, parsed) = match name.role {
        FileRole::Images => match read_images(&path) {
            Ok(img) => (
                img.count,
                format!("{}x{}", img.rows, img.cols),
                Some(Parsed::Images(img.count)),
            ),
            Err(e) => {
                problems.push(e.to_string());
                (0, "ERROR".to_string(), None)
            }
        },
        FileRole::Labels => match read_labels(&path) {
            Ok(labels) => (labels.len(), "-".to_string(), Some(Parsed::Labels(labels))),
            Err(e) => {
                problems.push(e.to_string());
                (0, "ERROR".to_string(), None)
            }
        },
    };
    if let (Some(f), Some(_)) = (spec, &parsed) {
        if items != f.items {
            problems.push(format!(
                "{}: holds {items} items, expected {}",
                path.display(),
                f.items
            ));
        }
    }
    let row = Row {
        file: format!("{prefix}{shown_name}"),
        items: if parsed.is_some() {
            items.to_string()
        } else {
            "-".to_string()
        },
        shape,
        sha,
    };
    (row, parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use lenet_train::data::{write_images, write_labels, IdxImages};

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: DataCommand,
    }

    fn parse(args: &[&str]) -> Result<DataCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("data").chain(args.iter().copied())).map(|c| c.command)
    }

    fn real_root() -> PathBuf {
        lenet_train::data::testing::real_data_root()
    }

    /// A small fake dataset with the standard names under `dir`.
    fn fake(dir: &Path, rows: usize, train_labels: &[u8]) {
        let names = DatasetKind::Mnist.files();
        let imgs = |count: usize| IdxImages {
            count,
            rows,
            cols: rows,
            pixels: (0..count * rows * rows).map(|i| (i % 251) as u8).collect(),
        };
        write_images(&dir.join(names[0].name), &imgs(train_labels.len()), true).unwrap();
        write_labels(&dir.join(names[1].name), train_labels, true).unwrap();
        write_images(&dir.join(names[2].raw_name()), &imgs(2), false).unwrap();
        write_labels(&dir.join(names[3].name), &[1, 2], true).unwrap();
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
    fn verify_custom_dir() {
        let dir = tempfile::tempdir().unwrap();
        fake(dir.path(), 5, &[0, 1, 2]);
        let report = check_dir(dir.path(), None, "");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let table = report.table();
        assert!(table.contains("train-images-idx3-ubyte.gz"), "{table}");
        assert!(table.contains("t10k-images-idx3-ubyte "), "{table}");
        assert!(table.contains("5x5"), "{table}");
        assert!(table.contains("unknown"), "{table}");
        // The columns line up: the sha256 column starts at the same place on every line.
        let col = table.find("sha256").unwrap();
        for line in table.lines() {
            let (before, after) = line.split_at(col);
            assert!(before.ends_with("  ") && !after.starts_with(' '), "{table}");
        }
        report.finish().unwrap();
    }

    #[test]
    fn verify_reports_every_problem() {
        let dir = tempfile::tempdir().unwrap();
        // A label 12 that MNIST does not have, a garbage file and a missing one.
        fake(dir.path(), 28, &[0, 1, 2, 12]);
        let names = DatasetKind::Mnist.files();
        std::fs::write(dir.path().join(names[0].name), b"garbage").unwrap();
        std::fs::remove_file(dir.path().join(names[3].name)).unwrap();
        let report = check_dir(dir.path(), Some(DatasetKind::Mnist), "mnist/");
        let all = report.problems.join("\n");
        assert!(
            all.contains("train-images-idx3-ubyte.gz: bad IDX magic"),
            "{all}"
        );
        assert!(all.contains("t10k-labels-idx1-ubyte.gz: missing"), "{all}");
        assert!(all.contains("label 12 at index 3"), "{all}");
        assert!(all.contains("checksum mismatch"), "{all}");
        let table = report.table();
        assert!(
            table.contains("MISSING") && table.contains("FAILED"),
            "{table}"
        );
        let err = report.finish().unwrap_err().to_string();
        assert!(err.contains("problem(s) found"), "{err}");
    }

    #[test]
    fn count_mismatch_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fake(dir.path(), 4, &[0, 1, 2]);
        let names = DatasetKind::Mnist.files();
        write_labels(&dir.path().join(names[1].name), &[0, 1], true).unwrap();
        let report = check_dir(dir.path(), None, "");
        let all = report.problems.join("\n");
        assert!(all.contains("holds 3 images but"), "{all}");
    }

    #[test]
    fn show_and_png() {
        let root = tempfile::tempdir().unwrap();
        let d = DatasetKind::Mnist.dir(root.path());
        std::fs::create_dir_all(&d).unwrap();
        fake(&d, 28, &[5, 0, 4]);
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
            eprintln!("real data not found under {}; skipping", root.display());
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
        let report = check_dir(&DatasetKind::Mnist.dir(&root), None, "x/");
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
