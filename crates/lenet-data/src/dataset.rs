//! The built-in datasets (MNIST, Fashion-MNIST), custom IDX pairs, and where data lives on disk.
//!
//! A dataset lives in `<root>/<dataset-name>/` under the standard file names; the data root is
//! chosen by [`resolve_data_root`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::download::download_verified;
use super::error::DataError;
use super::idx::{read_images, read_labels, IdxImages};

/// Environment variable that sets the data root when no `--data-dir` flag is given.
pub const DATA_DIR_ENV: &str = "LENET_DATA_DIR";
/// Data root used when neither the flag nor the environment variable is set.
pub const DEFAULT_DATA_DIR: &str = "data";

/// A built-in dataset; in config files and on the command line `mnist` or `fashion-mnist`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// MNIST handwritten digits (LeCun, Cortes, Burges).
    Mnist,
    /// Fashion-MNIST clothing images (Zalando Research).
    FashionMnist,
}

/// Which half of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// The 60,000 training images (`train-*`).
    Train,
    /// The 10,000 test images (`t10k-*`).
    Test,
}

/// Whether a file holds images or labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileRole {
    /// An IDX image file.
    Images,
    /// An IDX label file.
    Labels,
}

/// One of the four files of a built-in dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatasetFile {
    /// Standard file name, e.g. `train-images-idx3-ubyte.gz`.
    pub name: &'static str,
    /// The split it belongs to.
    pub split: Split,
    /// Images or labels.
    pub role: FileRole,
    /// Number of items it holds.
    pub items: usize,
    /// SHA-256 of the `.gz` file (lower-case hex).
    pub sha256: &'static str,
    /// SHA-256 of the decompressed file (lower-case hex).
    pub sha256_raw: &'static str,
}

impl DatasetFile {
    /// The file name without `.gz`, as the file is called once decompressed.
    pub fn raw_name(&self) -> &'static str {
        self.name.strip_suffix(".gz").unwrap_or(self.name)
    }
}

const fn file(
    name: &'static str,
    split: Split,
    role: FileRole,
    items: usize,
    sha256: &'static str,
    sha256_raw: &'static str,
) -> DatasetFile {
    DatasetFile {
        name,
        split,
        role,
        items,
        sha256,
        sha256_raw,
    }
}

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte.gz";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte.gz";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte.gz";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte.gz";

static MNIST_FILES: [DatasetFile; 4] = [
    file(
        TRAIN_IMAGES,
        Split::Train,
        FileRole::Images,
        60_000,
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    file(
        TRAIN_LABELS,
        Split::Train,
        FileRole::Labels,
        60_000,
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    file(
        TEST_IMAGES,
        Split::Test,
        FileRole::Images,
        10_000,
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    file(
        TEST_LABELS,
        Split::Test,
        FileRole::Labels,
        10_000,
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

static FASHION_FILES: [DatasetFile; 4] = [
    file(
        TRAIN_IMAGES,
        Split::Train,
        FileRole::Images,
        60_000,
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    file(
        TRAIN_LABELS,
        Split::Train,
        FileRole::Labels,
        60_000,
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    file(
        TEST_IMAGES,
        Split::Test,
        FileRole::Images,
        10_000,
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    file(
        TEST_LABELS,
        Split::Test,
        FileRole::Labels,
        10_000,
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
];

impl DatasetKind {
    /// Both built-in datasets.
    pub const ALL: [DatasetKind; 2] = [DatasetKind::Mnist, DatasetKind::FashionMnist];

    /// The dataset's name, which is also its directory under the data root.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
        }
    }

    /// Class names, indexed by label.
    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetKind::FashionMnist => &[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }

    /// Number of classes (10 for both).
    pub fn num_classes(self) -> usize {
        self.class_names().len()
    }

    /// Image height and width (28 x 28 for both).
    pub fn image_shape(self) -> (usize, usize) {
        (28, 28)
    }

    /// Base URLs of the official mirrors, tried in order; a file's URL is the base followed by
    /// its standard name.
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
                "http://yann.lecun.com/exdb/mnist/",
            ],
            DatasetKind::FashionMnist => &[
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            ],
        }
    }

    /// The four files: train images, train labels, test images, test labels.
    pub fn files(self) -> &'static [DatasetFile; 4] {
        match self {
            DatasetKind::Mnist => &MNIST_FILES,
            DatasetKind::FashionMnist => &FASHION_FILES,
        }
    }

    /// The file holding `role` for `split`.
    pub fn file(self, split: Split, role: FileRole) -> &'static DatasetFile {
        let i = match (split, role) {
            (Split::Train, FileRole::Images) => 0,
            (Split::Train, FileRole::Labels) => 1,
            (Split::Test, FileRole::Images) => 2,
            (Split::Test, FileRole::Labels) => 3,
        };
        &self.files()[i]
    }

    /// Mean pixel value of the training set, on the 0..1 scale (for normalisation).
    pub fn mean(self) -> f32 {
        match self {
            DatasetKind::Mnist => 0.1307,
            // Computed from the training set; the test `fashion_mnist_statistics` recomputes it.
            DatasetKind::FashionMnist => 0.286_040_6,
        }
    }

    /// Standard deviation of the training set's pixels, on the 0..1 scale.
    pub fn std(self) -> f32 {
        match self {
            DatasetKind::Mnist => 0.3081,
            DatasetKind::FashionMnist => 0.353_024_2,
        }
    }

    /// The directory of this dataset under `root`.
    pub fn dir(self, root: &Path) -> PathBuf {
        root.join(self.name())
    }

    /// Where `file` is on disk under `root`: the `.gz` name if it exists, else the uncompressed
    /// name if that exists, else `None`.
    pub fn locate(self, root: &Path, file: &DatasetFile) -> Option<PathBuf> {
        let dir = self.dir(root);
        [file.name, file.raw_name()]
            .into_iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = DataError;

    /// `mnist` or `fashion-mnist`: the names config files use, and no others.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatasetKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| DataError::UnknownDataset(s.to_string()))
    }
}

impl Split {
    /// `"train"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = DataError;

    /// `train` or `test`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            _ => Err(DataError::UnknownSplit(s.to_string())),
        }
    }
}

/// Images with their labels and class names, fully in memory.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Dataset name (`mnist`, `fashion-mnist`, or a custom name).
    pub name: String,
    /// Class names indexed by label; its length is the number of classes.
    pub class_names: Vec<String>,
    /// The images.
    pub images: IdxImages,
    /// One label per image, each `< class_names.len()`.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the dataset holds no items.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Loads one split of a built-in dataset from `<root>/<name>/` (the `.gz` files, or the
    /// uncompressed ones if only those exist). Nothing is downloaded; see [`ensure_available`].
    pub fn load(kind: DatasetKind, root: &Path, split: Split) -> Result<Dataset, DataError> {
        let find = |role| {
            let f = kind.file(split, role);
            kind.locate(root, f).ok_or_else(|| DataError::NotFound {
                path: kind.dir(root).join(f.name),
                hint: format!(
                    " (nor {}); run `lenet data fetch {kind} --data-dir {}`, or pass --data-dir \
                     (or set {DATA_DIR_ENV}) to where the data is",
                    f.raw_name(),
                    root.display()
                ),
            })
        };
        let images_path = find(FileRole::Images)?;
        let labels_path = find(FileRole::Labels)?;
        let mut ds =
            Dataset::from_files(kind.name(), &images_path, &labels_path, kind.num_classes())?;
        let (rows, cols) = kind.image_shape();
        if (ds.images.rows, ds.images.cols) != (rows, cols) {
            return Err(DataError::UnexpectedShape {
                path: images_path,
                expected: format!("{rows}x{cols}"),
                found: format!("{}x{}", ds.images.rows, ds.images.cols),
            });
        }
        ds.class_names = kind.class_names().iter().map(|s| s.to_string()).collect();
        Ok(ds)
    }

    /// Loads a custom dataset from an IDX image file and an IDX label file. Classes are named
    /// `"0"`, `"1"`, ... Checks that both files hold the same number of items and that every
    /// label is below `num_classes`.
    pub fn from_files(
        name: &str,
        images_path: &Path,
        labels_path: &Path,
        num_classes: usize,
    ) -> Result<Dataset, DataError> {
        let images = read_images(images_path)?;
        let labels = read_labels(labels_path)?;
        if images.count != labels.len() {
            return Err(DataError::CountMismatch {
                images_path: images_path.to_path_buf(),
                images: images.count,
                labels_path: labels_path.to_path_buf(),
                labels: labels.len(),
            });
        }
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| usize::from(l) >= num_classes)
        {
            return Err(DataError::LabelOutOfRange {
                path: labels_path.to_path_buf(),
                index,
                label,
                num_classes,
            });
        }
        Ok(Dataset {
            name: name.to_string(),
            class_names: (0..num_classes).map(|c| c.to_string()).collect(),
            images,
            labels,
        })
    }
}

/// The data root: the `--data-dir` flag if given, else the `LENET_DATA_DIR` environment variable
/// if set and non-empty, else `./data`.
pub fn resolve_data_root(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(DATA_DIR_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_DATA_DIR),
    }
}

/// The download URLs for `file`: `extra_mirrors` first (in order), then the official mirrors.
pub fn file_urls(kind: DatasetKind, file: &DatasetFile, extra_mirrors: &[String]) -> Vec<String> {
    extra_mirrors
        .iter()
        .map(String::as_str)
        .chain(kind.mirrors().iter().copied())
        .map(|base| format!("{}/{}", base.trim_end_matches('/'), file.name))
        .collect()
}

/// Makes sure all four files of `kind` are under `<root>/<name>/`, downloading (and verifying)
/// the missing ones from `extra_mirrors` and then the official mirrors, unless `offline`.
///
/// Files already present are not re-checked here (`lenet data verify` does that).
/// `on_download` is called before each download (to tell the user).
pub fn ensure_available(
    kind: DatasetKind,
    root: &Path,
    offline: bool,
    extra_mirrors: &[String],
    on_download: &mut dyn FnMut(&DatasetFile),
) -> Result<(), DataError> {
    for f in kind.files() {
        if kind.locate(root, f).is_some() {
            continue;
        }
        let dest = kind.dir(root).join(f.name);
        if offline {
            return Err(DataError::Offline {
                path: dest,
                dataset: kind.name().to_string(),
                root: root.to_path_buf(),
            });
        }
        on_download(f);
        download_verified(&file_urls(kind, f, extra_mirrors), &dest, f.sha256)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::{write_images, write_labels};

    fn write_pair(dir: &Path, count: usize, labels: &[u8]) -> (PathBuf, PathBuf) {
        let ip = dir.join("imgs.gz");
        let lp = dir.join("lbls.gz");
        let images = IdxImages {
            count,
            rows: 2,
            cols: 2,
            pixels: vec![7; count * 4],
        };
        write_images(&ip, &images, true).unwrap();
        write_labels(&lp, labels, true).unwrap();
        (ip, lp)
    }

    #[test]
    fn names_parse_and_print() {
        for k in DatasetKind::ALL {
            assert_eq!(k.name().parse::<DatasetKind>().unwrap(), k);
            assert_eq!(k.to_string(), k.name());
            assert_eq!(k.num_classes(), 10);
        }
        // One spelling, the one config files use.
        for other in ["Fashion_MNIST", "fashion", "MNIST", " mnist"] {
            assert!(other.parse::<DatasetKind>().is_err(), "{other}");
        }
        #[derive(Deserialize, Serialize)]
        struct T {
            d: DatasetKind,
        }
        let t: T = toml::from_str("d = \"fashion-mnist\"").unwrap();
        assert_eq!(t.d, DatasetKind::FashionMnist);
        assert_eq!(toml::to_string(&t).unwrap().trim(), "d = \"fashion-mnist\"");
        assert!(toml::from_str::<T>("d = \"fashion\"").is_err());
        let err = "cifar".parse::<DatasetKind>().unwrap_err();
        assert!(matches!(err, DataError::UnknownDataset(_)));
        assert!(err.to_string().contains("cifar"));
        assert_eq!("test".parse::<Split>().unwrap(), Split::Test);
        assert_eq!("train".parse::<Split>().unwrap(), Split::Train);
        assert!("TRAIN".parse::<Split>().is_err());
        assert!(matches!(
            "valid".parse::<Split>(),
            Err(DataError::UnknownSplit(_))
        ));
    }

    #[test]
    fn class_names_and_files() {
        let f = DatasetKind::FashionMnist.class_names();
        assert_eq!(f[0], "T-shirt/top");
        assert_eq!(f[9], "Ankle boot");
        assert_eq!(DatasetKind::Mnist.class_names()[7], "7");
        let t = DatasetKind::Mnist.file(Split::Test, FileRole::Labels);
        assert_eq!(t.name, "t10k-labels-idx1-ubyte.gz");
        assert_eq!(t.raw_name(), "t10k-labels-idx1-ubyte");
        assert_eq!(t.items, 10_000);
        for k in DatasetKind::ALL {
            for (i, f) in k.files().iter().enumerate() {
                assert_eq!(k.file(f.split, f.role), &k.files()[i]);
                assert_eq!(f.sha256.len(), 64);
                assert_eq!(f.sha256_raw.len(), 64);
            }
        }
    }

    #[test]
    fn urls_put_extra_mirrors_first() {
        let f = DatasetKind::Mnist.file(Split::Train, FileRole::Labels);
        let urls = file_urls(DatasetKind::Mnist, f, &["http://localhost:1/m".to_string()]);
        assert_eq!(urls[0], "http://localhost:1/m/train-labels-idx1-ubyte.gz");
        assert_eq!(
            urls[1],
            "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz"
        );
        assert_eq!(urls.len(), 1 + DatasetKind::Mnist.mirrors().len());
    }

    #[test]
    fn data_root_flag_wins() {
        // Only the flag case is tested: the environment is shared by parallel tests.
        assert_eq!(
            resolve_data_root(Some(Path::new("/x/y"))),
            PathBuf::from("/x/y")
        );
    }

    #[test]
    fn from_files_checks_counts_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let (ip, lp) = write_pair(dir.path(), 3, &[0, 1, 2]);
        let ds = Dataset::from_files("custom", &ip, &lp, 3).unwrap();
        assert_eq!(ds.len(), 3);
        assert!(!ds.is_empty());
        assert_eq!(ds.class_names, ["0", "1", "2"]);
        assert_eq!(ds.images.image(2), &[7, 7, 7, 7]);

        let err = Dataset::from_files("custom", &ip, &lp, 2).unwrap_err();
        match &err {
            DataError::LabelOutOfRange { index, label, .. } => {
                assert_eq!((*index, *label), (2, 2));
            }
            other => panic!("wrong error {other:?}"),
        }
        assert!(err.to_string().contains("lbls.gz"), "{err}");
        assert!(err.to_string().contains("index 2"), "{err}");

        let (ip, lp) = write_pair(dir.path(), 4, &[0, 1, 2]);
        let err = Dataset::from_files("custom", &ip, &lp, 10).unwrap_err();
        assert!(matches!(err, DataError::CountMismatch { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("imgs.gz") && msg.contains("lbls.gz"), "{msg}");
    }

    #[test]
    fn load_prefers_gz_and_falls_back_to_raw_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let kind = DatasetKind::Mnist;
        let d = kind.dir(root);
        let images = IdxImages {
            count: 2,
            rows: 28,
            cols: 28,
            pixels: vec![1; 2 * 784],
        };
        let f = kind.file(Split::Test, FileRole::Images);
        write_images(&d.join(f.raw_name()), &images, false).unwrap();
        let l = kind.file(Split::Test, FileRole::Labels);
        write_labels(&d.join(l.name), &[3, 4], true).unwrap();
        let ds = Dataset::load(kind, root, Split::Test).unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds.labels, [3, 4]);
        assert_eq!(ds.name, "mnist");

        let err = Dataset::load(kind, root, Split::Train).unwrap_err();
        assert!(matches!(err, DataError::NotFound { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
        assert!(msg.contains("lenet data fetch mnist"), "{msg}");
    }

    #[test]
    fn load_rejects_wrong_shape() {
        let dir = tempfile::tempdir().unwrap();
        let kind = DatasetKind::FashionMnist;
        let d = kind.dir(dir.path());
        let f = kind.file(Split::Test, FileRole::Images);
        let images = IdxImages {
            count: 1,
            rows: 32,
            cols: 32,
            pixels: vec![0; 1024],
        };
        write_images(&d.join(f.name), &images, true).unwrap();
        let l = kind.file(Split::Test, FileRole::Labels);
        write_labels(&d.join(l.name), &[9], true).unwrap();
        let err = Dataset::load(kind, dir.path(), Split::Test).unwrap_err();
        assert!(matches!(err, DataError::UnexpectedShape { .. }), "{err:?}");
        assert!(
            err.to_string().contains("t10k-images-idx3-ubyte.gz"),
            "{err}"
        );
    }

    #[test]
    fn offline_and_missing_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            ensure_available(DatasetKind::Mnist, dir.path(), true, &[], &mut |_| {}).unwrap_err();
        assert!(matches!(err, DataError::Offline { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
        assert!(msg.contains("lenet data fetch mnist"), "{msg}");
        assert!(msg.contains("--data-dir"), "{msg}");
        // Nothing was created.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
