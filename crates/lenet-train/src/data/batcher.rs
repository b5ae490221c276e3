//! Step 4 of the data pipeline: turning items into tensors, the Burn [`Batcher`] of images and
//! labels.
//!
//! Items are light (an index into the in-memory dataset and, for augmented training, a seed);
//! the batcher writes all images of a batch into one buffer, padding them to the network's input
//! size and normalising each pixel through a 256-entry lookup table, then makes one tensor.
//!
//! On a GPU the images of a part can instead be uploaded once ([`ImageBatcher::resident`]):
//! each batch is then gathered on the device from its indices, and only the indices travel.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use lenet_data::{Augmenter, Dataset};

/// A batch: images `[batch, 1, height, width]`, normalised, and class indices `[batch]`.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// The images.
    pub images: Tensor<4>,
    /// The labels.
    pub targets: Tensor<1, Int>,
}

/// One example: which image, and the seed of its augmentation (if augmented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageItem {
    /// Index into the dataset.
    pub index: usize,
    /// Seed of this draw's random distortion; `None` for the image as it is.
    pub augment_seed: Option<u64>,
}

impl ImageItem {
    /// Image `index` as it is, without augmentation.
    pub fn plain(index: usize) -> Self {
        ImageItem {
            index,
            augment_seed: None,
        }
    }
}

/// How images become network inputs: normalisation and placement in the input frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    /// Mean pixel value on the 0-1 scale.
    pub mean: f32,
    /// Standard deviation on the 0-1 scale.
    pub std: f32,
}

/// How many images ahead of the one it converts the batcher asks for the next ones
/// ([`lenet_data::IdxImages::prefetch`]). Measured in a stand-alone copy of the batcher's loop
/// (64 random MNIST images a batch, the caches flushed between batches as a training step
/// does, AMD EPYC, 2026-12-03): no prefetch 47-61 µs a batch, 2 ahead 30-37, 4 ahead 24-37,
/// the whole batch ahead 21-28 (not clearly better than 4 in that noise), the same images hot
/// 16-19. In `lenet train` (`perf record`): 79 → 54 µs a batch of 64.
const PREFETCH_AHEAD: usize = 4;

/// The batcher.
#[derive(Clone)]
pub struct ImageBatcher {
    data: Arc<Dataset>,
    /// `(pixel / 255 - mean) / std` for every byte value: no arithmetic per pixel.
    lut: [f32; 256],
    height: usize,
    width: usize,
    top: usize,
    left: usize,
    augmenter: Option<Arc<Augmenter>>,
    resident: Option<Resident>,
}

/// Images and labels uploaded to one device once, framed and normalised as a batch would be.
#[derive(Clone)]
struct Resident {
    device: Device,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    /// The row of each dataset index in `images` (`u32::MAX`: not uploaded).
    rows: Arc<Vec<u32>>,
}

/// The input frame is smaller than the images, or not centred on them.
#[derive(Debug, thiserror::Error)]
#[error(
    "the model's input is {want_h}×{want_w} but the images are {rows}×{cols}; the input must be \
     at least as large, with an even margin (e.g. 32×32 for 28×28 digits)"
)]
pub struct FrameError {
    rows: usize,
    cols: usize,
    want_h: usize,
    want_w: usize,
}

impl ImageBatcher {
    /// A batcher for `data` producing `height × width` inputs (images are centred and padded with
    /// background, i.e. pixel value 0, before normalisation).
    pub fn new(
        data: Arc<Dataset>,
        norm: Normalization,
        height: usize,
        width: usize,
        augmenter: Option<Augmenter>,
    ) -> Result<Self, FrameError> {
        let (rows, cols) = (data.images.rows, data.images.cols);
        if height < rows
            || width < cols
            || !(height - rows).is_multiple_of(2)
            || !(width - cols).is_multiple_of(2)
        {
            return Err(FrameError {
                rows,
                cols,
                want_h: height,
                want_w: width,
            });
        }
        let mut lut = [0f32; 256];
        for (v, out) in lut.iter_mut().enumerate() {
            *out = (v as f32 / 255.0 - norm.mean) / norm.std;
        }
        Ok(ImageBatcher {
            data,
            lut,
            height,
            width,
            top: (height - rows) / 2,
            left: (width - cols) / 2,
            augmenter: augmenter.map(Arc::new),
            resident: None,
        })
    }

    /// This batcher with the images of `indices` kept on `device`: one upload now (through
    /// [`Self::make_batch`], so the same values), after which a batch of those images without
    /// augmentation is gathered on the device from its indices. For GPUs, where a batch's
    /// pixels crossing from the host each step cost more than the step; other batches (augmented
    /// images, other indices or devices) are still made on the host.
    pub fn resident(mut self, indices: &[usize], device: &Device) -> Self {
        let items: Vec<ImageItem> = indices
            .iter()
            .map(|&index| ImageItem::plain(index))
            .collect();
        let all = self.host_batch(&items, device);
        let mut rows = vec![u32::MAX; self.data.len()];
        for (row, &index) in indices.iter().enumerate() {
            rows[index] = row as u32;
        }
        self.resident = Some(Resident {
            device: device.clone(),
            images: all.images,
            labels: all.targets,
            rows: Arc::new(rows),
        });
        self
    }

    /// The dataset the batcher reads.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.data
    }

    /// Appends item `item` to `out`: `height × width` values, each written once (the margins
    /// as background, the image through the lookup table).
    fn push_image(&self, item: &ImageItem, scratch: &mut Vec<u8>, out: &mut Vec<f32>) {
        let (rows, cols) = (self.data.images.rows, self.data.images.cols);
        let mut src = self.data.images.image(item.index);
        if let (Some(aug), Some(seed)) = (&self.augmenter, item.augment_seed) {
            scratch.resize(rows * cols, 0);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            aug.apply(src, rows, cols, &mut rng, scratch);
            src = scratch;
        }
        let background = self.lut[0];
        let right = self.width - cols - self.left;
        let bottom = self.height - rows - self.top;
        out.extend(std::iter::repeat_n(background, self.top * self.width));
        for row in src.chunks_exact(cols) {
            out.extend(std::iter::repeat_n(background, self.left));
            out.extend(row.iter().map(|&p| self.lut[p as usize]));
            out.extend(std::iter::repeat_n(background, right));
        }
        out.extend(std::iter::repeat_n(background, bottom * self.width));
    }

    /// Builds the batch for `items` on `device`: gathered there when its images are resident
    /// ([`Self::resident`]), otherwise from the host.
    pub fn make_batch(&self, items: &[ImageItem], device: &Device) -> ImageBatch {
        if let Some(r) = &self.resident {
            let row = |item: &ImageItem| match item.augment_seed {
                None => r
                    .rows
                    .get(item.index)
                    .copied()
                    .filter(|&row| row != u32::MAX),
                Some(_) => None,
            };
            let rows: Option<Vec<i64>> = items.iter().map(|i| row(i).map(i64::from)).collect();
            if let (Some(rows), true) = (rows, r.device == *device) {
                let n = rows.len();
                let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), device);
                return ImageBatch {
                    images: r.images.clone().select(0, rows.clone()),
                    targets: r.labels.clone().select(0, rows),
                };
            }
        }
        self.host_batch(items, device)
    }

    /// Builds the batch for `items` on the host, then moves it to `device`.
    fn host_batch(&self, items: &[ImageItem], device: &Device) -> ImageBatch {
        // Every value is written once, into a buffer that is not zeroed first: at LeNet-5's speed
        // (a training step in ~1.3 ms on 2 cores) the batcher's thread takes its time from the
        // kernels' threads; zeroing the batch first made it 28 µs a batch of 64 instead of 20
        // (`lenet bench --batcher`, 2026-12-03).
        let frame = self.height * self.width;
        let mut pixels = Vec::with_capacity(items.len() * frame);
        let mut scratch = Vec::new();
        // The images are scattered over the dataset (tens of megabytes): each is asked for
        // `PREFETCH_AHEAD` images before it is read, so that its cache lines arrive while the
        // ones before it are converted (a batch of 64 in the real loop: see `PREFETCH_AHEAD`).
        for item in items.iter().take(PREFETCH_AHEAD) {
            self.data.images.prefetch(item.index);
        }
        for (k, item) in items.iter().enumerate() {
            if let Some(ahead) = items.get(k + PREFETCH_AHEAD) {
                self.data.images.prefetch(ahead.index);
            }
            self.push_image(item, &mut scratch, &mut pixels);
        }
        debug_assert_eq!(pixels.len(), items.len() * frame);
        let labels: Vec<i64> = items
            .iter()
            .map(|i| i64::from(self.data.labels[i.index]))
            .collect();
        let n = items.len();
        ImageBatch {
            images: Tensor::from_data(
                TensorData::new(pixels, [n, 1, self.height, self.width]),
                device,
            ),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

impl Batcher<ImageItem, ImageBatch> for ImageBatcher {
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> ImageBatch {
        self.make_batch(&items, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lenet_data::{AugmentConfig, IdxImages};

    fn tiny() -> Arc<Dataset> {
        // Two 2×3 images: 0..6 and 255s.
        let mut pixels: Vec<u8> = (0..6).collect();
        pixels.extend([255u8; 6]);
        Arc::new(Dataset {
            name: "tiny".into(),
            class_names: vec!["a".into(), "b".into()],
            images: IdxImages {
                count: 2,
                rows: 2,
                cols: 3,
                pixels,
            },
            labels: vec![1, 0],
        })
    }

    /// `[data] normalization = "lecun_1998"`: background and padding −0.1, full ink 1.175
    /// (LeCun et al. 1998), whatever the dataset's own mean and deviation.
    #[test]
    fn the_1998_scaling_maps_background_to_minus_0_1_and_ink_to_1_175() {
        let text = "[model]\npreset = \"lenet5\"\n[data]\nnormalization = \"lecun_1998\"\n";
        let cfg = crate::config::RunConfig::parse(text, "<test>", &[]).unwrap();
        let norm = crate::data::source::Classes::of(&cfg.data).unwrap().norm;
        let b = ImageBatcher::new(tiny(), norm, 4, 5, None).unwrap();
        let batch = b.make_batch(&[ImageItem::plain(1)], &Device::flex());
        let v: Vec<f32> = batch.images.to_data().try_to_vec().unwrap();
        // Image 1 (all 255) in rows 1-2, columns 1-3 of a 4×5 frame of padding.
        assert!((v[0] + 0.1).abs() < 1e-6, "padding {}", v[0]);
        assert!((v[6] - 1.175).abs() < 1e-6, "ink {}", v[6]);
        assert!((v[19] + 0.1).abs() < 1e-6, "padding {}", v[19]);
    }

    #[test]
    fn normalises_pads_and_keeps_labels() {
        let norm = Normalization {
            mean: 0.5,
            std: 0.25,
        };
        let b = ImageBatcher::new(tiny(), norm, 4, 5, None).unwrap();
        let items = [1, 0].map(|index| ImageItem {
            index,
            augment_seed: None,
        });
        let batch = b.make_batch(&items, &Device::flex());
        assert_eq!(batch.images.dims(), [2, 1, 4, 5]);
        assert_eq!(
            batch
                .targets
                .to_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap(),
            vec![0, 1]
        );
        let v: Vec<f32> = batch.images.to_data().try_to_vec().unwrap();
        let bg = -2.0; // (0 - 0.5) / 0.25
                       // Image 1 (all 255 → 2.0) sits in rows 1-2, columns 1-3 of the first frame.
        let first = &v[..20];
        assert_eq!(first[0], bg);
        assert_eq!(first[6], 2.0);
        assert_eq!(first[8], 2.0);
        assert_eq!(first[9], bg);
        assert_eq!(first[16], bg);
        // Image 0: pixel value 4 at row 1, col 1 → frame (2, 2).
        let second = &v[20..];
        assert!((second[2 * 5 + 2] - ((4.0 / 255.0 - 0.5) / 0.25)).abs() < 1e-6);
    }

    /// A batch longer than the prefetch distance keeps its items' order: each frame holds its
    /// own image (0..6 or all 255, unframed: pixel / 255 with mean 0 and deviation 1).
    #[test]
    fn a_batch_longer_than_the_prefetch_distance_keeps_its_order() {
        let norm = Normalization {
            mean: 0.0,
            std: 1.0,
        };
        let b = ImageBatcher::new(tiny(), norm, 2, 3, None).unwrap();
        let order = [1, 0, 0, 1, 1, 0, 1, 0, 0];
        assert!(order.len() > PREFETCH_AHEAD + 1);
        let items = order.map(ImageItem::plain);
        let batch = b.make_batch(&items, &Device::flex());
        let v: Vec<f32> = batch.images.to_data().try_to_vec().unwrap();
        for (frame, &index) in v.chunks(6).zip(&order) {
            let want: Vec<f32> = match index {
                0 => (0..6).map(|p| p as f32 / 255.0).collect(),
                _ => vec![1.0; 6],
            };
            assert_eq!(frame, want.as_slice(), "image {index}");
        }
        let labels: Vec<i64> = batch
            .targets
            .to_data()
            .convert::<i64>()
            .try_to_vec()
            .unwrap();
        assert_eq!(labels, order.map(|i| [1i64, 0][i]).to_vec());
    }

    #[test]
    fn rejects_a_frame_smaller_or_off_centre() {
        let norm = Normalization {
            mean: 0.0,
            std: 1.0,
        };
        assert!(ImageBatcher::new(tiny(), norm, 1, 3, None).is_err());
        let e = ImageBatcher::new(tiny(), norm, 3, 3, None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("3×3") && e.contains("2×3"), "{e}");
    }

    #[test]
    fn augmented_batches_are_reproducible() {
        let cfg = AugmentConfig {
            enabled: true,
            translate: 1.0,
            ..AugmentConfig::default()
        };
        let norm = Normalization {
            mean: 0.0,
            std: 1.0,
        };
        let b = ImageBatcher::new(tiny(), norm, 2, 3, Some(Augmenter::new(cfg).unwrap())).unwrap();
        let items = [ImageItem {
            index: 0,
            augment_seed: Some(3),
        }];
        let x: Vec<f32> = b
            .make_batch(&items, &Device::flex())
            .images
            .to_data()
            .try_to_vec()
            .unwrap();
        let y: Vec<f32> = b
            .make_batch(&items, &Device::flex())
            .images
            .to_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(x, y);
    }

    /// A batcher with resident images gives the host path's batches, values and labels alike,
    /// for resident items (gathered on the device) and for the others (augmented, or not
    /// uploaded: made on the host).
    #[test]
    fn resident_images_give_the_host_batches() {
        let pixels: Vec<u8> = (0..4 * 6).map(|v| (v * 11 % 256) as u8).collect();
        let data = Arc::new(Dataset {
            name: "four".into(),
            class_names: vec!["a".into(), "b".into(), "c".into()],
            images: IdxImages {
                count: 4,
                rows: 2,
                cols: 3,
                pixels,
            },
            labels: vec![2, 0, 1, 2],
        });
        let norm = Normalization {
            mean: 0.1,
            std: 0.3,
        };
        let cfg = AugmentConfig {
            enabled: true,
            translate: 1.0,
            ..AugmentConfig::default()
        };
        let aug = || Some(Augmenter::new(cfg.clone()).unwrap());
        let host = ImageBatcher::new(data.clone(), norm, 4, 5, aug()).unwrap();
        let device = Device::flex();
        let resident = ImageBatcher::new(data, norm, 4, 5, aug())
            .unwrap()
            .resident(&[3, 1, 0], &device);
        let item = |index, augment_seed| ImageItem {
            index,
            augment_seed,
        };
        let batches = [
            vec![item(0, None), item(3, None), item(0, None), item(1, None)],
            vec![item(1, None), item(2, None)],
            vec![item(3, Some(7)), item(0, None)],
        ];
        for items in batches {
            let (a, b) = (
                resident.make_batch(&items, &device),
                host.make_batch(&items, &device),
            );
            let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
            let labels =
                |t: Tensor<1, Int>| t.into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
            assert_eq!(a.images.dims(), [items.len(), 1, 4, 5]);
            assert_eq!(values(a.images), values(b.images), "{items:?}");
            assert_eq!(labels(a.targets), labels(b.targets), "{items:?}");
        }
    }
}
