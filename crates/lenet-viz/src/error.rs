//! The one error type of this crate.

use std::fmt::Display;
use std::path::PathBuf;

/// Everything that can go wrong while drawing or writing a picture.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    /// Writing, syncing or renaming a file failed; `path` is the file that was being written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file at fault (the final destination, not the temporary file).
        path: PathBuf,
        /// The underlying IO error.
        source: std::io::Error,
    },
    /// The directory that should hold `path` does not exist (it is never created implicitly).
    #[error("cannot write {}: directory {} does not exist", path.display(), dir.display())]
    MissingDirectory {
        /// The file that was to be written.
        path: PathBuf,
        /// Its parent directory, which is missing.
        dir: PathBuf,
    },
    /// The picture could not be encoded as PNG.
    #[error("cannot encode PNG: {0}")]
    Encode(#[from] image::ImageError),
    /// The font could not be registered or a drawing operation of plotters failed.
    #[error("drawing failed: {0}")]
    Draw(String),
    /// The input cannot be drawn (wrong shape, bad parameter, ...); the message says what.
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl VizError {
    /// Wraps a plotters (or font) error as [`VizError::Draw`].
    pub(crate) fn draw(e: impl Display) -> Self {
        VizError::Draw(e.to_string())
    }

    /// Builds a [`VizError::Invalid`].
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        VizError::Invalid(msg.into())
    }
}
