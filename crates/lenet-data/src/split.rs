//! Splitting the training set into training and validation parts by a seeded shuffle, so the
//! test set is never used for model selection.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::error::DataError;

/// How much of the training set to hold out for validation.
///
/// In TOML an integer is a count (`holdout = 5000`) and a float a fraction (`holdout = 0.1`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Holdout {
    /// This many items.
    Count(usize),
    /// This fraction of the items, in `[0, 1)`, rounded to the nearest count.
    Fraction(f64),
}

impl Default for Holdout {
    /// 5,000 items (of MNIST's 60,000).
    fn default() -> Self {
        Holdout::Count(5000)
    }
}

impl Holdout {
    /// Whether nothing is held out (`0` or `0.0`): the run trains on every training image and
    /// has no validation split.
    pub fn is_none(self) -> bool {
        matches!(self, Holdout::Count(0)) || matches!(self, Holdout::Fraction(f) if f == 0.0)
    }

    /// The number of items held out of `n`, or an error if that leaves nothing to train on.
    pub fn count_of(self, n: usize) -> Result<usize, DataError> {
        let k = match self {
            Holdout::Count(k) => k,
            Holdout::Fraction(f) => {
                if !(0.0..1.0).contains(&f) {
                    return Err(DataError::InvalidHoldout(format!(
                        "the fraction {f} is outside [0, 1)"
                    )));
                }
                (n as f64 * f).round() as usize
            }
        };
        if k >= n && !(k == 0 && n == 0) {
            return Err(DataError::InvalidHoldout(format!(
                "holding out {k} of {n} items leaves nothing to train on"
            )));
        }
        Ok(k)
    }
}

/// Splits the indices `0..n` into `(train, valid)` by a shuffle seeded with `seed`.
///
/// The two parts are disjoint, together cover `0..n`, and are each sorted ascending; the same
/// `n`, `holdout` and `seed` always give the same split.
pub fn train_valid_split(
    n: usize,
    holdout: Holdout,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    let k = holdout.count_of(n)?;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut train = idx.split_off(k);
    let mut valid = idx;
    train.sort_unstable();
    valid.sort_unstable();
    Ok((train, valid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_covering_and_deterministic() {
        let (train, valid) = train_valid_split(1000, Holdout::Count(100), 7).unwrap();
        assert_eq!((train.len(), valid.len()), (900, 100));
        let mut all: Vec<usize> = train.iter().chain(&valid).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_eq!(
            train_valid_split(1000, Holdout::Count(100), 7).unwrap(),
            (train.clone(), valid.clone())
        );
        let (_, other) = train_valid_split(1000, Holdout::Count(100), 8).unwrap();
        assert_ne!(other, valid);
        // Not simply the first or last items.
        assert_ne!(valid, (0..100).collect::<Vec<_>>());
        assert_ne!(valid, (900..1000).collect::<Vec<_>>());
    }

    #[test]
    fn fractions_round() {
        let (train, valid) = train_valid_split(60_000, Holdout::Fraction(0.1), 0).unwrap();
        assert_eq!((train.len(), valid.len()), (54_000, 6_000));
        let (train, valid) = train_valid_split(10, Holdout::Fraction(0.0), 0).unwrap();
        assert_eq!((train.len(), valid.len()), (10, 0));
    }

    #[test]
    fn bad_holdouts() {
        for h in [
            Holdout::Count(10),
            Holdout::Count(11),
            Holdout::Fraction(1.0),
            Holdout::Fraction(-0.1),
            Holdout::Fraction(f64::NAN),
            Holdout::Fraction(0.96), // rounds to 10 of 10
        ] {
            let err = train_valid_split(10, h, 0).unwrap_err();
            assert!(
                matches!(err, DataError::InvalidHoldout(_)),
                "{h:?}: {err:?}"
            );
        }
    }

    #[test]
    fn default_and_toml() {
        assert_eq!(Holdout::default(), Holdout::Count(5000));
        #[derive(Deserialize)]
        struct T {
            holdout: Holdout,
        }
        let t: T = toml::from_str("holdout = 5000").unwrap();
        assert_eq!(t.holdout, Holdout::Count(5000));
        let t: T = toml::from_str("holdout = 0.25").unwrap();
        assert_eq!(t.holdout, Holdout::Fraction(0.25));
        assert!(toml::from_str::<T>("holdout = \"lots\"").is_err());
        // A negative integer is not a count; it is read as a fraction, which is then refused.
        let t: T = toml::from_str("holdout = -3").unwrap();
        assert!(t.holdout.count_of(10).is_err());
    }
}
