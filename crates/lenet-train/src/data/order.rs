//! Step 3 of the data pipeline: which images an epoch sees, in which order, with which
//! distortion: a Burn dataset of [`ImageItem`]s over one part of the in-memory data.
//!
//! Shuffling and augmentation seeds are derived from the run's seed and the epoch, so they do not
//! depend on Burn's loader state: an epoch sees the same order and the same distortions in every
//! run with the same seed, a resumed run continues exactly where the interrupted one stopped, and
//! the order in which loader workers fetch items does not matter. The epoch of a fetch is how many
//! times its position has been fetched before (every position is fetched once per epoch).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use burn::data::dataset::{Dataset as BurnDataset, DatasetError};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::batcher::ImageItem;

/// The items of one part of a dataset (training, validation or test images), epoch by epoch.
pub struct EpochOrder {
    indices: Vec<usize>,
    shuffle: Option<u64>,
    augment: Option<u64>,
    draws: Vec<AtomicU32>,
    orders: Mutex<HashMap<u32, Arc<Vec<usize>>>>,
    /// Items served per epoch: all of them, or fewer (see [`EpochOrder::multiple_of`]).
    len: usize,
}

/// SplitMix64: a fast, well-mixed hash of a 64-bit value.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl EpochOrder {
    /// The items `indices` in this order, undistorted (validation, test).
    pub fn plain(indices: Vec<usize>) -> Self {
        Self::new(indices, None, None, 0)
    }

    /// Training items: reshuffled every epoch with `seed`, and distorted if `augment`, starting
    /// at 0-based epoch `first_epoch` (a resumed run starts later).
    pub fn training(indices: Vec<usize>, seed: u64, augment: bool, first_epoch: u32) -> Self {
        Self::new(indices, Some(seed), augment.then_some(seed), first_epoch)
    }

    fn new(
        indices: Vec<usize>,
        shuffle: Option<u64>,
        augment: Option<u64>,
        first_epoch: u32,
    ) -> Self {
        let draws = indices
            .iter()
            .map(|_| AtomicU32::new(first_epoch))
            .collect();
        EpochOrder {
            len: indices.len(),
            indices,
            shuffle,
            augment,
            draws,
            orders: Mutex::new(HashMap::new()),
        }
    }

    /// Serves only the first positions of each epoch's order, as many as the largest multiple
    /// of `n` (data-parallel training deals the epoch out to `n` devices in equal shards, so that
    /// every device takes the same number of steps; each epoch leaves out other images).
    pub fn multiple_of(mut self, n: usize) -> Self {
        let n = n.max(1);
        self.len = self.indices.len() - self.indices.len() % n;
        self
    }

    /// The order of the items in `epoch`.
    fn order(&self, seed: u64, epoch: u32) -> Arc<Vec<usize>> {
        let mut orders = match self.orders.lock() {
            Ok(o) => o,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(o) = orders.get(&epoch) {
            return o.clone();
        }
        let mut order = self.indices.clone();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(
            mix(seed ^ 0x5eed) ^ u64::from(epoch),
        ));
        let order = Arc::new(order);
        orders.retain(|&e, _| e + 1 >= epoch);
        orders.insert(epoch, order.clone());
        order
    }
}

impl BurnDataset<ImageItem> for EpochOrder {
    fn get(&self, i: usize) -> Result<ImageItem, DatasetError> {
        let draw = self.draws.get(i).ok_or_else(|| {
            DatasetError::new(std::io::Error::other(format!(
                "item {i} of a part of {} images",
                self.indices.len()
            )))
        })?;
        let epoch = if self.shuffle.is_some() || self.augment.is_some() {
            draw.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        let index = match self.shuffle {
            Some(seed) => self.order(seed, epoch)[i],
            None => self.indices[i],
        };
        let augment_seed = self
            .augment
            .map(|seed| mix(mix(seed ^ index as u64) ^ u64::from(epoch)));
        Ok(ImageItem {
            index,
            augment_seed,
        })
    }

    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_order_serves_a_multiple_and_leaves_out_other_images_each_epoch() {
        let order = EpochOrder::training((0..10).collect(), 3, false, 0).multiple_of(4);
        assert_eq!(order.len(), 8);
        let epoch = |o: &EpochOrder| -> Vec<usize> {
            (0..o.len()).map(|i| o.get(i).unwrap().index).collect()
        };
        let first = epoch(&order);
        let second = epoch(&order);
        let left_out = |e: &[usize]| -> Vec<usize> { (0..10).filter(|i| !e.contains(i)).collect() };
        assert_eq!(left_out(&first).len(), 2);
        assert_ne!(left_out(&first), left_out(&second));
        assert_eq!(
            EpochOrder::plain((0..10).collect()).multiple_of(1).len(),
            10
        );
    }

    fn epoch(s: &EpochOrder) -> Vec<ImageItem> {
        (0..s.len()).map(|i| s.get(i).unwrap()).collect()
    }

    #[test]
    fn plain_keeps_order_and_never_augments() {
        let s = EpochOrder::plain(vec![5, 3, 9]);
        assert_eq!(epoch(&s), epoch(&s));
        assert_eq!(
            epoch(&s).iter().map(|i| i.index).collect::<Vec<_>>(),
            vec![5, 3, 9]
        );
        assert!(epoch(&s).iter().all(|i| i.augment_seed.is_none()));
        assert!(s.get(3).is_err());
    }

    #[test]
    fn same_seed_same_epochs_and_each_epoch_a_permutation() {
        let idx: Vec<usize> = (0..100).collect();
        let a = EpochOrder::training(idx.clone(), 7, true, 0);
        let b = EpochOrder::training(idx.clone(), 7, true, 0);
        let (a1, a2) = (epoch(&a), epoch(&a));
        // b fetched backwards: same items per position anyway.
        let mut b1: Vec<ImageItem> = (0..100).rev().map(|i| b.get(i).unwrap()).collect();
        b1.reverse();
        assert_eq!(a1, b1);
        assert_ne!(a1, a2, "a new order every epoch");
        let mut sorted: Vec<usize> = a2.iter().map(|i| i.index).collect();
        sorted.sort();
        assert_eq!(sorted, idx);
        let other = EpochOrder::training(idx.clone(), 8, true, 0);
        assert_ne!(epoch(&other), a1, "another seed, another order");
        // Resuming at epoch 1 gives epoch 1's items.
        let resumed = EpochOrder::training(idx, 7, true, 1);
        assert_eq!(epoch(&resumed), a2);
    }

    #[test]
    fn augmentation_seed_follows_image_and_epoch() {
        let s = EpochOrder::training(vec![4, 4], 1, true, 0);
        let e = epoch(&s);
        assert_eq!(e[0], e[1]);
        assert!(e[0].augment_seed.is_some());
        assert_ne!(epoch(&s)[0].augment_seed, e[0].augment_seed);
        assert!(epoch(&EpochOrder::training(vec![4], 1, false, 0))[0]
            .augment_seed
            .is_none());
    }
}
