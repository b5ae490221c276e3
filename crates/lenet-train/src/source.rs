//! The data of a run: the dataset named in `[data]`, loaded (and downloaded if missing), with its
//! normalisation, and the batchers that frame its images for a given network.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use lenet_model::Plan;

use crate::batcher::{FrameError, ImageBatcher, Normalization};
use crate::data::{ensure_available, Augmenter, DataError, Dataset, DatasetKind, Split};
use crate::run_config::DataConfig;

/// Errors while preparing the data of a run.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading, checking or downloading the files failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The network cannot take these images.
    #[error("model.input: {0}")]
    Frame(#[from] FrameError),
    /// The network is not a single-channel 2D image network.
    #[error("model.input: lenet trains on grey-scale images, so the input must be [1, height, width]; this model's input is {0:?}")]
    NotImages(Vec<usize>),
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

/// A loaded split with how to normalise it.
pub struct Source {
    /// The images and labels.
    pub data: Arc<Dataset>,
    /// Mean and standard deviation used for normalisation.
    pub norm: Normalization,
}

/// The class names and normalisation of the dataset described by `cfg`, without loading it
/// (for classifying pictures that are not in it).
pub fn classes_and_norm(cfg: &DataConfig) -> Result<(Vec<String>, Normalization), SourceError> {
    match &cfg.custom {
        Some(c) if cfg.dataset == "custom" => Ok((
            c.class_names.clone(),
            Normalization {
                mean: c.mean,
                std: c.std,
            },
        )),
        _ => {
            let kind = DatasetKind::from_str(&cfg.dataset)?;
            Ok((
                kind.class_names().iter().map(|s| s.to_string()).collect(),
                Normalization {
                    mean: kind.mean(),
                    std: kind.std(),
                },
            ))
        }
    }
}

/// Loads `split` of the dataset described by `cfg` from `root` (downloading the built-in
/// datasets first unless `offline`).
pub fn load(
    cfg: &DataConfig,
    root: &Path,
    split: Split,
    offline: bool,
) -> Result<Source, SourceError> {
    let (class_names, norm) = classes_and_norm(cfg)?;
    let data = match &cfg.custom {
        Some(c) if cfg.dataset == "custom" => {
            let (images, labels) = match split {
                Split::Train => (&c.train_images, &c.train_labels),
                Split::Test => (&c.test_images, &c.test_labels),
            };
            let mut data = Dataset::from_files("custom", images, labels, class_names.len())?;
            data.class_names = class_names;
            data
        }
        _ => {
            let kind = DatasetKind::from_str(&cfg.dataset)?;
            ensure_available(kind, root, offline, &cfg.mirrors)?;
            Dataset::load(kind, root, split)?
        }
    };
    Ok(Source {
        data: Arc::new(data),
        norm,
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
