//! Reading a [`ModelConfig`] from TOML, with `preset = "..."` expanded and overridden.

use std::path::Path;

use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::presets::preset;

impl ModelConfig {
    /// Reads a model config file (TOML). The file may hold the model at its top level or in a
    /// `[model]` table (as run configs do).
    pub fn from_file(path: &Path) -> Result<ModelConfig, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        let value: toml::Table = toml::from_str(&text).map_err(|e| ModelError::Parse {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        match value.get("model") {
            Some(toml::Value::Table(model)) => Self::from_table(model.clone(), &origin, "model."),
            _ => Self::from_table(value, &origin, ""),
        }
    }

    /// Parses a model config from TOML text.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<ModelConfig, ModelError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ModelError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        Self::from_table(table, origin, "")
    }

    /// Builds a model config from a TOML table: if it names a `preset`, the preset is the base and
    /// the table's fields override it (tables are merged key by key, other values replaced).
    /// Errors name `origin` and the key path, prefixed with `prefix` (e.g. `"model."`).
    pub fn from_table(
        table: toml::Table,
        origin: &str,
        prefix: &str,
    ) -> Result<ModelConfig, ModelError> {
        let merged = match table.get("preset") {
            None => table,
            Some(toml::Value::String(name)) => {
                let base = preset(name).map_err(|e| ModelError::Parse {
                    origin: origin.to_string(),
                    message: format!("{prefix}preset: {e}"),
                })?;
                let mut base = toml::Table::try_from(&base).map_err(|e| ModelError::Parse {
                    origin: origin.to_string(),
                    message: e.to_string(),
                })?;
                merge(&mut base, table);
                base
            }
            Some(other) => {
                return Err(ModelError::Parse {
                    origin: origin.to_string(),
                    message: format!(
                        "{prefix}preset: expected a preset name (a string), found {}",
                        other.type_str()
                    ),
                })
            }
        };
        let de = toml::Value::Table(merged);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().message().to_string();
            let at = if path == "." {
                prefix.trim_end_matches('.').to_string()
            } else {
                format!("{prefix}{path}")
            };
            ModelError::Parse {
                origin: origin.to_string(),
                message: if at.is_empty() {
                    message
                } else {
                    format!("{at}: {message}")
                },
            }
        })
    }

    /// The config as TOML text (presets expanded), as written into a run directory.
    pub fn to_toml_string(&self) -> Result<String, ModelError> {
        toml::to_string_pretty(self).map_err(|e| {
            ModelError::Internal(format!("cannot write the model config as TOML: {e}"))
        })
    }
}

/// Deep merge: keys of `over` replace those of `base`, except tables, which merge recursively.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}
