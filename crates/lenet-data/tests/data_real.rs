//! Checks on the real MNIST and Fashion-MNIST files.
//!
//! The data root is `LENET_DATA_DIR` (a relative path is also tried from the workspace root),
//! else `<workspace>/../shared/data`. When the files are missing the tests print a notice and
//! pass, except when `CI` is set: then they fail.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lenet_data::{read_images, read_labels, sha256_file, Dataset, DatasetKind, FileRole, Split};

/// The data root if every file of both datasets is there; `None` (after a notice) if not.
fn data_root() -> Option<PathBuf> {
    let root = lenet_data::testing::real_data_root();
    let dir_of = |k: DatasetKind| k.dir(&root);
    let missing: Vec<PathBuf> = DatasetKind::ALL
        .iter()
        .flat_map(|&k| k.files().iter().map(move |f| dir_of(k).join(f.name)))
        .filter(|p| !p.is_file())
        .collect();
    if missing.is_empty() {
        return Some(root);
    }
    let msg = format!(
        "real data missing under {} ({} files, first {}); set LENET_DATA_DIR to the directory \
         holding mnist/ and fashion-mnist/",
        root.display(),
        missing.len(),
        missing[0].display()
    );
    lenet_data::testing::unavailable(&msg);
    None
}

#[test]
fn all_files_load_with_the_right_counts_and_shapes() {
    let Some(root) = data_root() else { return };
    for kind in DatasetKind::ALL {
        for (split, n) in [(Split::Train, 60_000), (Split::Test, 10_000)] {
            let ds = Dataset::load(kind, &root, split).unwrap();
            assert_eq!(ds.len(), n, "{kind} {split}");
            assert_eq!(ds.images.count, n);
            assert_eq!((ds.images.rows, ds.images.cols), (28, 28));
            assert_eq!(ds.images.pixels.len(), n * 784);
            assert_eq!(ds.class_names, kind.class_names());
            // Every class occurs.
            let mut seen = [false; 10];
            for &l in &ds.labels {
                seen[usize::from(l)] = true;
            }
            assert!(
                seen.iter().all(|&s| s),
                "{kind} {split}: a class is missing"
            );
        }
    }
}

#[test]
fn first_mnist_labels() {
    let Some(root) = data_root() else { return };
    let train = read_labels(
        &DatasetKind::Mnist
            .dir(&root)
            .join(DatasetKind::Mnist.file(Split::Train, FileRole::Labels).name),
    )
    .unwrap();
    let test = read_labels(
        &DatasetKind::Mnist
            .dir(&root)
            .join(DatasetKind::Mnist.file(Split::Test, FileRole::Labels).name),
    )
    .unwrap();
    assert_eq!(train[0], 5);
    assert_eq!(test[0], 7);
    assert_eq!(&train[..5], &[5, 0, 4, 1, 9]);
}

/// `(dataset, file name) -> sha256` from the data README's tables of `.gz` files.
fn readme_checksums(root: &Path) -> HashMap<(String, String), String> {
    let text = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
    let mut section = String::new();
    let mut out = HashMap::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            section = h.split('/').next().unwrap_or("").trim().to_string();
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | name.gz | bytes | md5 | sha256 |
        if cells.len() == 6 && cells[1].ends_with(".gz") && cells[4].len() == 64 {
            out.insert(
                (section.clone(), cells[1].to_string()),
                cells[4].to_string(),
            );
        }
    }
    out
}

#[test]
fn checksums_match_the_readme() {
    let Some(root) = data_root() else { return };
    let readme = readme_checksums(&root);
    if root.join("README.md").is_file() {
        assert_eq!(readme.len(), 8, "README tables not understood: {readme:?}");
    }
    for kind in DatasetKind::ALL {
        for f in kind.files() {
            let actual = sha256_file(&kind.dir(&root).join(f.name)).unwrap();
            assert_eq!(actual, f.sha256, "{kind}/{}", f.name);
            if let Some(r) = readme.get(&(kind.name().to_string(), f.name.to_string())) {
                assert_eq!(&actual, r, "{kind}/{} differs from the README", f.name);
            }
        }
    }
}

/// Mean and standard deviation of all training pixels on the 0..1 scale.
fn pixel_stats(kind: DatasetKind, root: &Path) -> (f64, f64) {
    let f = kind.file(Split::Train, FileRole::Images);
    let images = read_images(&kind.dir(root).join(f.name)).unwrap();
    let mut hist = [0u64; 256];
    for &p in &images.pixels {
        hist[usize::from(p)] += 1;
    }
    let n = images.pixels.len() as f64;
    let mean = hist
        .iter()
        .enumerate()
        .map(|(v, &c)| v as f64 / 255.0 * c as f64)
        .sum::<f64>()
        / n;
    let var = hist
        .iter()
        .enumerate()
        .map(|(v, &c)| (v as f64 / 255.0 - mean).powi(2) * c as f64)
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

#[test]
fn normalisation_statistics() {
    let Some(root) = data_root() else { return };
    let (mean, std) = pixel_stats(DatasetKind::FashionMnist, &root);
    let k = DatasetKind::FashionMnist;
    assert!(
        (f64::from(k.mean()) - mean).abs() < 1e-6,
        "{} vs {mean}",
        k.mean()
    );
    assert!(
        (f64::from(k.std()) - std).abs() < 1e-6,
        "{} vs {std}",
        k.std()
    );
    // MNIST uses the customary rounded values.
    let (mean, std) = pixel_stats(DatasetKind::Mnist, &root);
    let k = DatasetKind::Mnist;
    assert!(
        (f64::from(k.mean()) - mean).abs() < 1e-4,
        "{} vs {mean}",
        k.mean()
    );
    assert!(
        (f64::from(k.std()) - std).abs() < 1e-4,
        "{} vs {std}",
        k.std()
    );
}
