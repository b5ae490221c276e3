//! What can go wrong moving weights in and out.

use std::path::PathBuf;

/// An import or export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// A flag or value the user gave is wrong.
    #[error("{0}")]
    Usage(String),
    /// A weights file cannot be read (missing, not that format, an unsupported dtype).
    #[error("{}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The file's tensors do not fit the network: every missing, unused or mis-shaped tensor.
    #[error("the weights do not fit the network:\n  {0}")]
    Mapping(String),
    /// The network has a layer the format cannot express.
    #[error("{layer}: {message}")]
    Unsupported {
        /// The layer (`features.2 (3D convolution)`).
        layer: String,
        /// What the format lacks.
        message: String,
    },
    /// Writing the file failed.
    #[error(transparent)]
    Write(#[from] lenet_io::WriteError),
    /// The exporter failed on something lenet did not foresee.
    #[error("export failed: {0}")]
    Export(String),
}

impl ExchangeError {
    /// Whether the user's input is at fault (exit code 2) rather than the work (1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ExchangeError::Usage(_)
                | ExchangeError::Read { .. }
                | ExchangeError::Mapping(_)
                | ExchangeError::Unsupported { .. }
        )
    }
}
