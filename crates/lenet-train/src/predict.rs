//! Classifying the user's own pictures: the same preprocessing MNIST itself used (grey-scale,
//! white ink on black, the digit's bounding box scaled to fit 20×20, centred by its centre of
//! mass in a 28×28 frame), then the network and a softmax.

use std::path::Path;
use std::sync::Arc;

use image::imageops::FilterType;
use image::GrayImage;
use lenet_data::{Dataset, IdxImages};

use crate::data::{ImageBatch, ImageBatcher, ImageItem};
use crate::run::trained::TrainedModel;

/// Why a picture cannot be classified.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// Not readable as an image.
    #[error("{}: cannot read the image: {message}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        message: String,
    },
    /// Nothing that looks like a digit.
    #[error("{}: the picture is blank (no strokes found)", .0.display())]
    Blank(std::path::PathBuf),
    /// The network's input cannot take 28×28 digits.
    #[error("{0}")]
    Frame(String),
    /// The network's output could not be read back from the device.
    #[error("cannot read the network's output from the device: {0}")]
    Output(String),
}

impl PredictError {
    /// Whether the user's picture or model is at fault (exit code 2).
    pub fn is_usage(&self) -> bool {
        !matches!(self, PredictError::Output(_))
    }
}

/// The 28×28 MNIST-style version of the grey-scale picture `img`.
pub fn mnist_style(img: &GrayImage) -> Option<Vec<u8>> {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return None;
    }
    // White ink on black: invert when the border (the background) is light.
    let mut border = Vec::new();
    for x in 0..w {
        border.push(img.get_pixel(x, 0)[0]);
        border.push(img.get_pixel(x, h - 1)[0]);
    }
    for y in 0..h {
        border.push(img.get_pixel(0, y)[0]);
        border.push(img.get_pixel(w - 1, y)[0]);
    }
    // u64: a border of millions of pixels must not overflow the sum.
    let background = border.iter().map(|&v| u64::from(v)).sum::<u64>() / border.len() as u64;
    let invert = background > 127;
    let ink = |v: u8| if invert { 255 - v } else { v };
    // Stretch so that the background is 0 and the strongest stroke 255.
    let bg = ink(background as u8);
    let max = img.pixels().map(|p| ink(p[0])).max().unwrap_or(0);
    if max <= bg.saturating_add(30) {
        return None;
    }
    let level = |v: u8| -> u8 {
        let v = ink(v).saturating_sub(bg);
        ((u32::from(v) * 255) / u32::from(max - bg)).min(255) as u8
    };
    // Bounding box of the strokes.
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if level(p[0]) > 64 {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        return None;
    }
    let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);
    let crop = GrayImage::from_fn(cw, ch, |x, y| {
        image::Luma([level(img.get_pixel(x0 + x, y0 + y)[0])])
    });
    // Fit into 20×20, keeping the aspect ratio.
    let scale = 20.0 / cw.max(ch) as f32;
    let (sw, sh) = (
        ((cw as f32 * scale).round() as u32).clamp(1, 20),
        ((ch as f32 * scale).round() as u32).clamp(1, 20),
    );
    let small = image::imageops::resize(&crop, sw, sh, FilterType::Triangle);
    // Centre of mass to the centre of the 28×28 frame.
    let (mut m, mut mx, mut my) = (0f64, 0f64, 0f64);
    for (x, y, p) in small.enumerate_pixels() {
        let v = f64::from(p[0]);
        m += v;
        mx += v * f64::from(x);
        my += v * f64::from(y);
    }
    if m == 0.0 {
        return None;
    }
    let dx = (14.0 - mx / m - 0.5).round() as i64;
    let dy = (14.0 - my / m - 0.5).round() as i64;
    let mut out = vec![0u8; 28 * 28];
    for (x, y, p) in small.enumerate_pixels() {
        let (tx, ty) = (i64::from(x) + dx, i64::from(y) + dy);
        if (0..28).contains(&tx) && (0..28).contains(&ty) {
            out[(ty * 28 + tx) as usize] = p[0];
        }
    }
    Some(out)
}

/// Reads and preprocesses a picture file.
pub fn load_picture(path: &Path) -> Result<Vec<u8>, PredictError> {
    let img = image::open(path).map_err(|e| PredictError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    mnist_style(&img.to_luma8()).ok_or_else(|| PredictError::Blank(path.to_path_buf()))
}

/// The largest picture [`picture_from_bytes`] decodes: 4096×4096 pixels, checked from the header
/// before any pixel is decoded, and 64 MiB of decoder memory.
pub const MAX_PICTURE_SIDE: u32 = 4096;

/// Preprocesses a PNG or JPEG picture held in memory (`name` says where it came from, in
/// errors), refusing one larger than [`MAX_PICTURE_SIDE`] before decoding it.
pub fn picture_from_bytes(bytes: &[u8], name: &str) -> Result<Vec<u8>, PredictError> {
    let read = |message: String| PredictError::Read {
        path: name.into(),
        message,
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| read(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_PICTURE_SIDE);
    limits.max_image_height = Some(MAX_PICTURE_SIDE);
    limits.max_alloc = Some(64 << 20);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| read(e.to_string()))?;
    mnist_style(&img.to_luma8()).ok_or_else(|| PredictError::Blank(name.into()))
}

/// The classes of one picture, most probable first: `(class, probability)`.
pub type Ranking = Vec<(usize, f32)>;

impl TrainedModel {
    /// The batch the network sees for 28×28 pictures: normalised and framed to the network's
    /// input size, as in training.
    pub fn picture_batch(&self, pictures: &[Vec<u8>]) -> Result<ImageBatch, PredictError> {
        let data = Dataset {
            name: "pictures".into(),
            class_names: self.classes.names.clone(),
            images: IdxImages {
                count: pictures.len(),
                rows: 28,
                cols: 28,
                pixels: pictures.concat(),
            },
            labels: vec![0; pictures.len()],
        };
        let shape = self.net.input_shape.clone();
        if shape.len() != 3 || shape[0] != 1 {
            return Err(PredictError::Frame(format!(
                "the model's input {shape:?} is not a grey-scale image"
            )));
        }
        let batcher =
            ImageBatcher::new(Arc::new(data), self.classes.norm, shape[1], shape[2], None)
                .map_err(|e| PredictError::Frame(e.to_string()))?;
        let items: Vec<ImageItem> = (0..pictures.len()).map(ImageItem::plain).collect();
        Ok(batcher.make_batch(&items, &self.device))
    }

    /// Classifies 28×28 pictures (from [`load_picture`]): for each, every class with its
    /// probability, most probable first.
    pub fn classify(&self, pictures: &[Vec<u8>]) -> Result<Vec<Ranking>, PredictError> {
        let batch = self.picture_batch(pictures)?;
        let probs: Vec<f32> =
            burn::tensor::activation::softmax(self.net.forward_2d(batch.images), 1)
                .to_data()
                .convert::<f32>()
                .try_to_vec()
                .map_err(|e| PredictError::Output(format!("{e:?}")))?;
        let k = self.classes.names.len().max(1);
        Ok(probs
            .chunks_exact(k)
            .map(|row| {
                let mut r: Ranking = row.iter().copied().enumerate().collect();
                r.sort_by(|a, b| b.1.total_cmp(&a.1));
                r
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digit_like(w: u32, h: u32, light: bool, at: (u32, u32)) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| {
            let stroke = x >= at.0 && x < at.0 + 6 && y >= at.1 && y < at.1 + 30;
            let v = if stroke { 250 } else { 5 };
            image::Luma([if light { 255 - v } else { v }])
        })
    }

    #[test]
    fn strokes_are_scaled_to_20_pixels_and_centred() {
        for light in [false, true] {
            let out = mnist_style(&digit_like(100, 80, light, (10, 5))).unwrap();
            let rows: Vec<usize> = (0..28)
                .filter(|r| out[r * 28..(r + 1) * 28].iter().any(|&v| v > 64))
                .collect();
            assert_eq!(rows.len(), 20, "light={light}");
            let cols: Vec<usize> = (0..28)
                .filter(|c| (0..28).any(|r| out[r * 28 + c] > 64))
                .collect();
            let mid = (cols[0] + cols[cols.len() - 1]) as f32 / 2.0;
            assert!((mid - 13.5).abs() <= 1.0, "centred horizontally: {cols:?}");
            assert!(out.iter().filter(|&&v| v == 0).count() > 600);
        }
    }

    #[test]
    fn a_blank_picture_is_refused() {
        assert!(mnist_style(&GrayImage::from_pixel(30, 30, image::Luma([200]))).is_none());
    }
}
