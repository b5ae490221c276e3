//! Step 2 of the data pipeline: which images of the two files a run trains, validates and tests
//! on. One function, [`indices`], used by training and by `lenet eval --split`: the validation
//! images are `data.validation` images of the training file held out by a shuffle seeded with
//! `training.seed`, so the test file is never used for model selection.

use std::fmt;
use std::str::FromStr;

use lenet_data::{train_valid_split, DataError, Split};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;

/// The three parts of a run's images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subset {
    /// The training file without the held-out images.
    Train,
    /// The held-out images of the training file.
    Valid,
    /// The test file.
    Test,
}

impl Subset {
    /// All three, in order.
    pub const ALL: [Subset; 3] = [Subset::Train, Subset::Valid, Subset::Test];

    /// `train`, `valid` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Subset::Train => "train",
            Subset::Valid => "valid",
            Subset::Test => "test",
        }
    }

    /// The file its images come from (`train` and `valid` share the training file).
    pub fn file(self) -> Split {
        match self {
            Subset::Test => Split::Test,
            Subset::Train | Subset::Valid => Split::Train,
        }
    }
}

impl fmt::Display for Subset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Subset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Subset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown split `{s}`; expected train, valid or test"))
    }
}

/// The indices (into its file, [`Subset::file`]) of the images of `subset`, for a file of
/// `file_len` images, in the order they are evaluated; at most `limit` of them (the first ones).
pub fn indices(
    subset: Subset,
    file_len: usize,
    config: &RunConfig,
    limit: Option<usize>,
) -> Result<Vec<usize>, DataError> {
    let mut v = match subset {
        Subset::Test => (0..file_len).collect(),
        Subset::Train | Subset::Valid => {
            let (train, valid) =
                train_valid_split(file_len, config.data.validation, config.training.seed)?;
            if subset == Subset::Train {
                train
            } else {
                valid
            }
        }
    };
    if let Some(n) = limit {
        v.truncate(n);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(validation: &str, seed: u64) -> RunConfig {
        let text = format!(
            "[model]\npreset = \"lenet5\"\n[data]\nvalidation = {validation}\n[training]\nseed = {seed}\n"
        );
        RunConfig::parse(&text, "t.toml", &[]).unwrap()
    }

    #[test]
    fn train_and_valid_partition_the_training_file_by_seed() {
        let c = config("10", 3);
        let train = indices(Subset::Train, 100, &c, None).unwrap();
        let valid = indices(Subset::Valid, 100, &c, None).unwrap();
        assert_eq!((train.len(), valid.len()), (90, 10));
        let mut all: Vec<usize> = train.iter().chain(&valid).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_ne!(
            indices(Subset::Valid, 100, &config("10", 4), None).unwrap(),
            valid
        );
        assert_eq!(
            indices(Subset::Test, 5, &c, None).unwrap(),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(
            indices(Subset::Valid, 100, &c, Some(3)).unwrap(),
            valid[..3]
        );
        assert!(
            indices(Subset::Train, 10, &c, None).is_err(),
            "10 of 10 held out"
        );
    }

    #[test]
    fn no_validation_trains_on_every_image() {
        let text = "[model]\npreset = \"lenet5\"\n[data]\nvalidation = 0\n[training]\nfinal_model = \"last\"\n";
        let c = RunConfig::parse(text, "t.toml", &[]).unwrap();
        assert_eq!(
            indices(Subset::Train, 100, &c, None).unwrap(),
            (0..100).collect::<Vec<_>>()
        );
        assert!(indices(Subset::Valid, 100, &c, None).unwrap().is_empty());
    }

    #[test]
    fn names_round_trip() {
        for s in Subset::ALL {
            assert_eq!(s.name().parse::<Subset>().unwrap(), s);
        }
        assert!("validation".parse::<Subset>().is_err());
        assert_eq!(Subset::Valid.file(), Split::Train);
    }
}
