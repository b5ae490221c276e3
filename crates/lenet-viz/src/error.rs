//! The one error type of this crate.

use std::fmt::Display;

/// Everything that can go wrong while drawing or writing a picture.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    /// The picture could not be written (see `lenet_io`).
    #[error(transparent)]
    Write(#[from] lenet_io::WriteError),
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
