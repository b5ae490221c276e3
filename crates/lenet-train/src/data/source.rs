//! Step 1 of the data pipeline: the dataset named in `[data]`, loaded (and downloaded if
//! missing), with its class names and normalisation, and the batchers that frame its images for
//! a given network.

use std::path::Path;
use std::sync::Arc;

use lenet_data::{ensure_available, Augmenter, DataError, Dataset, DatasetFile, Split};
use lenet_model::Plan;

use crate::config::{ConfigError, DataConfig, DataSource, InputScaling};
use crate::data::batcher::{FrameError, ImageBatcher, Normalization};

/// Errors while preparing the data of a run.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading, checking or downloading the files failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The `[data]` table is inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The network cannot take these images.
    #[error("model.input: {0}")]
    Frame(#[from] FrameError),
    /// The network is not a single-channel 2D image network.
    #[error("model.input: lenet trains on grey-scale images, so the input must be [1, height, width]; this model's input is {0:?}")]
    NotImages(Vec<usize>),
    /// The split (or a `--limit`) leaves a part of the run without images.
    #[error(
        "data.validation: the split leaves no {0} images (with --limit-* flags: a limit of 0)"
    )]
    Empty(crate::data::Subset),
    /// The dataset has a different number of classes than the network.
    #[error("the dataset {dataset} has {data} classes but the model has {model} outputs (model.num_classes)")]
    Classes {
        /// The dataset.
        dataset: String,
        /// Its classes.
        data: usize,
        /// The network's outputs.
        model: usize,
    },
}

impl SourceError {
    /// Whether the config, the flags or the data files are at fault (exit code 2).
    pub fn is_usage(&self) -> bool {
        match self {
            SourceError::Data(e) => e.is_usage(),
            SourceError::Config(e) => e.is_usage(),
            _ => true,
        }
    }
}

/// What a network needs to know about a dataset to classify its images: class names and the
/// normalisation it was trained with.
#[derive(Debug, Clone, PartialEq)]
pub struct Classes {
    /// Class names, indexed by label.
    pub names: Vec<String>,
    /// Mean and standard deviation of the pixels.
    pub norm: Normalization,
}

impl Classes {
    /// The classes of the dataset described by `cfg`, without loading it (for classifying
    /// pictures that are not in it).
    pub fn of(cfg: &DataConfig) -> Result<Classes, ConfigError> {
        let classes = match cfg.source()? {
            DataSource::Custom(c) => Classes {
                names: c.class_names.clone(),
                norm: Normalization {
                    mean: c.mean,
                    std: c.std,
                },
            },
            DataSource::BuiltIn(kind) => Classes {
                names: kind.class_names().iter().map(|s| s.to_string()).collect(),
                norm: Normalization {
                    mean: kind.mean(),
                    std: kind.std(),
                },
            },
        };
        Ok(match cfg.normalization {
            InputScaling::MeanStd => classes,
            // (0 − mean)/std = −0.1 and (1 − mean)/std = 1.175.
            InputScaling::Lecun1998 => Classes {
                norm: Normalization {
                    mean: 0.1 / 1.275,
                    std: 1.0 / 1.275,
                },
                ..classes
            },
        })
    }

    /// The name of class `c` (its number if the class is unknown).
    pub fn name(&self, c: usize) -> String {
        self.names.get(c).cloned().unwrap_or_else(|| c.to_string())
    }
}

/// A loaded file with how to normalise it.
pub struct Source {
    /// The images and labels.
    pub data: Arc<Dataset>,
    /// Mean and standard deviation used for normalisation.
    pub norm: Normalization,
}

/// Loads `split` of the dataset described by `cfg` from `root`, downloading a missing built-in
/// dataset first unless `offline`; `on_download` is told of each file downloaded.
pub fn load(
    cfg: &DataConfig,
    root: &Path,
    split: Split,
    offline: bool,
    on_download: &mut dyn FnMut(&DatasetFile),
) -> Result<Source, SourceError> {
    let classes = Classes::of(cfg)?;
    let data = match cfg.source()? {
        DataSource::Custom(c) => {
            let (images, labels) = match split {
                Split::Train => (&c.train_images, &c.train_labels),
                Split::Test => (&c.test_images, &c.test_labels),
            };
            let mut data = Dataset::from_files("custom", images, labels, classes.names.len())?;
            data.class_names = classes.names;
            data
        }
        DataSource::BuiltIn(kind) => {
            ensure_available(kind, root, offline, &cfg.mirrors, on_download)?;
            Dataset::load(kind, root, split)?
        }
    };
    Ok(Source {
        data: Arc::new(data),
        norm: classes.norm,
    })
}

impl Source {
    /// A batcher framing these images for the network of `plan`, with optional augmentation.
    pub fn batcher(
        &self,
        plan: &Plan,
        augmenter: Option<Augmenter>,
    ) -> Result<ImageBatcher, SourceError> {
        let shape = plan.input_shape();
        if shape.len() != 3 || shape[0] != 1 {
            return Err(SourceError::NotImages(shape));
        }
        if self.data.num_classes() != plan.num_classes {
            return Err(SourceError::Classes {
                dataset: self.data.name.clone(),
                data: self.data.num_classes(),
                model: plan.num_classes,
            });
        }
        Ok(ImageBatcher::new(
            self.data.clone(),
            self.norm,
            shape[1],
            shape[2],
            augmenter,
        )?)
    }
}
