//! Errors of the model crate: every one names the file, field or layer at fault.

use std::path::PathBuf;

/// What can go wrong while reading, validating or building a network.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A layer or field of an otherwise well-formed config has a value that cannot work,
    /// e.g. a kernel larger than its (padded) input. `at` is a path such as `features[2].pool`.
    #[error("{at}: {message}")]
    Invalid {
        /// Where in the config, e.g. `features[1].kernel`.
        at: String,
        /// What is wrong, with the numbers involved.
        message: String,
    },
    /// The config text is not valid TOML, or does not have the expected fields and types.
    #[error("{origin}: {message}")]
    Parse {
        /// The file (or `<string>`) the text came from.
        origin: String,
        /// The parser's message, with the path of the offending key.
        message: String,
    },
    /// `preset = "..."` names no known preset.
    #[error("unknown preset `{name}`; available presets: {available}")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// The known names, comma-separated.
        available: String,
    },
    /// A tensor's values could not be read back from its device, or the config could not be
    /// written out.
    #[error("{0}")]
    Internal(String),
    /// A config file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl ModelError {
    pub(crate) fn invalid(at: impl Into<String>, message: impl Into<String>) -> Self {
        ModelError::Invalid {
            at: at.into(),
            message: message.into(),
        }
    }
}
