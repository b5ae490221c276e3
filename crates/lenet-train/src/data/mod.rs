//! The data pipeline of a run, in the order the images flow:
//!
//! 1. **dataset** ([`source`]): the files named in `[data]` (MNIST, Fashion-MNIST or your own
//!    IDX files, read by `lenet-data`), with class names and normalisation;
//! 2. **split** ([`split`]): which images train, validate and test;
//! 3. **epoch order** ([`order`]): the order and the augmentation of every epoch, derived from
//!    the seed and the epoch;
//! 4. **batcher** ([`batcher`]): items → normalised, framed tensors on the device.
//!
//! [`load`] runs steps 1, 2 and prepares 4 for a training run; `lenet eval` and `lenet viz` call
//! the steps they need.

pub mod batcher;
pub mod order;
pub mod source;
pub mod split;

use std::path::PathBuf;

use lenet_data::{Augmenter, DatasetFile};
use lenet_model::Plan;

pub use batcher::{ImageBatch, ImageBatcher, ImageItem, Normalization};
pub use order::EpochOrder;
pub use source::{Classes, Source, SourceError};
pub use split::{indices, Subset};

use crate::config::RunConfig;

/// Where the data comes from, beyond the config.
#[derive(Debug, Clone, PartialEq)]
pub struct DataOptions {
    /// Where datasets live (`<root>/<dataset>/`).
    pub root: PathBuf,
    /// Never download.
    pub offline: bool,
    /// Say on standard error when a file is downloaded.
    pub report_downloads: bool,
}

/// The cap `[data.limit]` puts on one part.
pub fn limit_of(config: &RunConfig, subset: Subset) -> Option<usize> {
    let l = &config.data.limit;
    match subset {
        Subset::Train => l.train,
        Subset::Valid => l.valid,
        Subset::Test => l.test,
    }
}

/// One part of a run's images: which ones, and the batcher that makes their tensors.
pub struct Part {
    /// Indices into the part's file.
    pub indices: Vec<usize>,
    /// Frames and normalises them for the network (and distorts them, for augmented training).
    pub batcher: ImageBatcher,
}

/// The data of a training run, checked against the network before anything is written.
pub struct RunData {
    /// The dataset's name (`mnist`, `fashion-mnist`, `custom`).
    pub name: String,
    /// The training images (with the configured augmentation).
    pub train: Part,
    /// The held-out validation images (none with `data.validation = 0`).
    pub valid: Part,
    /// The test images.
    pub test: Part,
}

impl RunData {
    /// The part `subset`.
    pub fn part(&self, subset: Subset) -> &Part {
        match subset {
            Subset::Train => &self.train,
            Subset::Valid => &self.valid,
            Subset::Test => &self.test,
        }
    }
}

/// Loads one file of the run's dataset (downloading it unless `opts.offline`).
pub fn load_file(
    config: &RunConfig,
    file: lenet_data::Split,
    opts: &DataOptions,
) -> Result<Source, SourceError> {
    let mut notice = |f: &DatasetFile| {
        if opts.report_downloads {
            eprintln!("downloading {}/{} ...", config.data.name(), f.name);
        }
    };
    source::load(&config.data, &opts.root, file, opts.offline, &mut notice)
}

/// Loads the dataset of `config`, splits it, and makes the batchers for the network of `plan`.
pub fn load(config: &RunConfig, plan: &Plan, opts: &DataOptions) -> Result<RunData, SourceError> {
    let train_file = load_file(config, lenet_data::Split::Train, opts)?;
    let test_file = load_file(config, lenet_data::Split::Test, opts)?;
    let part = |subset: Subset, source: &Source, augment: Option<Augmenter>| {
        let indices = indices(subset, source.data.len(), config, limit_of(config, subset))?;
        // The test set may be limited away; the validation split is empty only when asked
        // for (`data.validation = 0`: train on every image).
        let may_be_empty = match subset {
            Subset::Train => false,
            Subset::Valid => config.data.validation.is_none(),
            Subset::Test => true,
        };
        if indices.is_empty() && !may_be_empty {
            return Err(SourceError::Empty(subset));
        }
        Ok(Part {
            indices,
            batcher: source.batcher(plan, augment)?,
        })
    };
    let augment = &config.data.augment;
    let augmenter = match augment.enabled {
        true => Some(Augmenter::new(augment.clone())?),
        false => None,
    };
    Ok(RunData {
        name: train_file.data.name.clone(),
        train: part(Subset::Train, &train_file, augmenter)?,
        valid: part(Subset::Valid, &train_file, None)?,
        test: part(Subset::Test, &test_file, None)?,
    })
}
