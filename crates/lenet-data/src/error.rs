//! The error type of the data layer.
//!
//! Every variant that concerns a file carries its path and shows it in its message, so a user can
//! always tell which file is at fault.

use std::fmt;
use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// One mirror that [`download_verified`](super::download::download_verified) tried, and why it
/// failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorFailure {
    /// The full URL that was requested.
    pub url: String,
    /// What went wrong (HTTP status, connection error, checksum mismatch, ...).
    pub reason: String,
}

impl fmt::Display for MirrorFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.url, self.reason)
    }
}

/// Everything that can go wrong while reading, writing, downloading or preparing data.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file that should exist does not.
    #[error("{}: file not found{hint}", .path.display())]
    NotFound {
        /// The missing file.
        path: PathBuf,
        /// Extra advice appended to the message (may be empty).
        hint: String,
    },

    /// A file exists but could not be read.
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        /// The unreadable file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },

    /// A file (or its temporary file) could not be written or renamed into place.
    #[error("{}: cannot write: {source}", .path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },

    /// The file does not start with the IDX magic number that was expected.
    #[error("{}: bad IDX magic number {found}, expected {expected}{hint}", .path.display())]
    BadMagic {
        /// The offending file.
        path: PathBuf,
        /// The first bytes found, in hex.
        found: String,
        /// The magic number that was expected.
        expected: String,
        /// A guess at what the file really is (may be empty).
        hint: String,
    },

    /// The IDX header declares the wrong number of dimensions, or an empty image size.
    #[error("{}: bad IDX dimensions: {detail}", .path.display())]
    BadDimensions {
        /// The offending file.
        path: PathBuf,
        /// What was expected and what was found.
        detail: String,
    },

    /// The file holds less data than its header promises.
    #[error("{}: truncated: {detail}", .path.display())]
    Truncated {
        /// The offending file.
        path: PathBuf,
        /// What the header promises and what the file holds.
        detail: String,
    },

    /// The file holds more data than its header describes.
    #[error("{}: trailing garbage: {detail}", .path.display())]
    TrailingData {
        /// The offending file.
        path: PathBuf,
        /// How much extra data there is.
        detail: String,
    },

    /// The header claims a size that cannot be real (overflow, over the size limit, or more
    /// than the file could possibly hold); nothing was allocated for it.
    #[error("{}: IDX header claims an impossible size: {detail}", .path.display())]
    TooLarge {
        /// The offending file.
        path: PathBuf,
        /// The claimed size and the limit it breaks.
        detail: String,
    },

    /// The file starts like gzip but its compressed stream is damaged or incomplete.
    #[error("{}: corrupt gzip stream: {source}", .path.display())]
    CorruptGzip {
        /// The offending file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },

    /// An image file and its label file hold different numbers of items.
    #[error(
        "{} holds {images} images but {} holds {labels} labels",
        .images_path.display(),
        .labels_path.display()
    )]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Number of images in it.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Number of labels in it.
        labels: usize,
    },

    /// A label is not a valid class index.
    #[error(
        "{}: label {label} at index {index} is outside 0..{num_classes}",
        .path.display()
    )]
    LabelOutOfRange {
        /// The label file.
        path: PathBuf,
        /// Position of the bad label.
        index: usize,
        /// The bad label.
        label: u8,
        /// Number of classes the dataset has.
        num_classes: usize,
    },

    /// A built-in dataset's images do not have the size that dataset must have.
    #[error("{}: expected {expected} images, found {found}", .path.display())]
    UnexpectedShape {
        /// The image file.
        path: PathBuf,
        /// The expected shape, e.g. `28x28`.
        expected: String,
        /// The shape found.
        found: String,
    },

    /// A file's SHA-256 is not the one it should have.
    #[error(
        "{}: checksum mismatch: expected sha256 {expected}, got {actual}",
        .path.display()
    )]
    ChecksumMismatch {
        /// The file that was hashed.
        path: PathBuf,
        /// The expected digest (lower-case hex).
        expected: String,
        /// The actual digest (lower-case hex).
        actual: String,
    },

    /// Every mirror failed; nothing was written to `dest`.
    #[error(
        "could not download {}: {}",
        .dest.display(),
        format_attempts(.attempts)
    )]
    Download {
        /// Where the file should have been written.
        dest: PathBuf,
        /// Each URL that was tried, in order, and why it failed.
        attempts: Vec<MirrorFailure>,
    },

    /// A dataset file is missing and downloading is turned off.
    #[error(
        "{}: file not found, and downloading is off (--offline); run `lenet data fetch {dataset} \
         --data-dir {}` first, or pass --data-dir (or set LENET_DATA_DIR) to where the data is",
        .path.display(),
        .root.display()
    )]
    Offline {
        /// The missing file.
        path: PathBuf,
        /// The dataset it belongs to.
        dataset: String,
        /// The data root that was searched.
        root: PathBuf,
    },

    /// `lenet data verify` / `fetch` found problems; each names its file.
    #[error("{} problem(s) found:{}", .0.len(), .0.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
    Verification(Vec<String>),

    /// A dataset name that is not built in.
    #[error("unknown dataset {0:?}: expected `mnist` or `fashion-mnist`")]
    UnknownDataset(String),

    /// A split name that is neither `train` nor `test`.
    #[error("unknown split {0:?}: expected `train` or `test`")]
    UnknownSplit(String),

    /// A train/validation hold-out that cannot be honoured.
    #[error("data.validation: {0}")]
    InvalidHoldout(String),

    /// An augmentation setting that is out of range.
    #[error("invalid augmentation setting: {0}")]
    InvalidAugment(String),

    /// Data handed to a writer is inconsistent with its declared shape.
    #[error("{}: {detail}", .path.display())]
    InvalidInput {
        /// The file that was to be written.
        path: PathBuf,
        /// What is inconsistent.
        detail: String,
    },
}

impl From<lenet_io::WriteError> for DataError {
    fn from(e: lenet_io::WriteError) -> Self {
        DataError::Write {
            path: e.path,
            source: e.source,
        }
    }
}

impl DataError {
    /// Whether the error is in what the user asked for or pointed at (a name, a setting, a
    /// missing or malformed file) rather than a failure while doing the work (reading or writing
    /// a file, the network): the command line exits with 2 for the first kind, 1 for the second.
    pub fn is_usage(&self) -> bool {
        !matches!(
            self,
            DataError::Read { .. }
                | DataError::Write { .. }
                | DataError::Download { .. }
                | DataError::ChecksumMismatch { .. }
                | DataError::Verification(_)
        )
    }
}

fn format_attempts(attempts: &[MirrorFailure]) -> String {
    if attempts.is_empty() {
        return "no mirror URL was given".to_string();
    }
    let mut s = format!("all {} mirror(s) failed:", attempts.len());
    for a in attempts {
        s.push_str("\n  - ");
        s.push_str(&a.to_string());
    }
    s
}
