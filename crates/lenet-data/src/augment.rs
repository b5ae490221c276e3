//! Seeded data augmentation for training images: a random affine distortion (translation,
//! rotation, scale, shear, bilinear resampling about the image centre) and the elastic
//! distortion of Simard, Steinkraus & Platt (2003): per-pixel displacement fields drawn from
//! uniform(-1, 1), smoothed with a Gaussian of standard deviation σ and scaled by α.
//!
//! Both distortions are combined into one resampling pass. Pixels that come from outside the
//! image are black (0).

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::error::DataError;

/// Augmentation settings: the `[data.augment]` table of a configuration file.
///
/// Every strength is the maximum of a uniform random draw in `[-value, value]`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Turns augmentation on (default `false`).
    pub enabled: bool,
    /// Maximum shift in pixels, drawn separately for x and y.
    pub translate: f32,
    /// Maximum rotation in degrees (at most 180).
    pub rotate: f32,
    /// Maximum relative scale change: 0.1 means a zoom factor in [0.9, 1.1] (below 1).
    pub scale: f32,
    /// Maximum horizontal shear angle in degrees (below 90).
    pub shear: f32,
    /// Elastic distortion strength α in pixels (0 turns it off; Simard et al. used 34).
    pub elastic_alpha: f32,
    /// Smoothness σ of the elastic displacement field in pixels (default 4, as Simard et al.).
    pub elastic_sigma: f32,
    /// Mirrors half of the images left to right (for pictures whose classes are symmetric,
    /// like Fashion-MNIST's clothes; never for digits). Default `false`.
    pub horizontal_flip: bool,
}

impl Default for AugmentConfig {
    /// Off, with every strength zero (and `elastic_sigma = 4`).
    fn default() -> Self {
        AugmentConfig {
            enabled: false,
            translate: 0.0,
            rotate: 0.0,
            scale: 0.0,
            shear: 0.0,
            elastic_alpha: 0.0,
            elastic_sigma: 4.0,
            horizontal_flip: false,
        }
    }
}

impl AugmentConfig {
    /// Moderate settings for previews (`lenet data show --augment` without a config file):
    /// ±2 px shift, ±10° rotation, ±10 % scale, ±10° shear, elastic α = 20, σ = 4.
    pub fn preview() -> Self {
        AugmentConfig {
            enabled: true,
            translate: 2.0,
            rotate: 10.0,
            scale: 0.1,
            shear: 10.0,
            elastic_alpha: 20.0,
            elastic_sigma: 4.0,
            horizontal_flip: false,
        }
    }

    /// Whether this configuration leaves every image unchanged.
    pub fn is_identity(&self) -> bool {
        !self.enabled
            || (self.translate == 0.0
                && self.rotate == 0.0
                && self.scale == 0.0
                && self.shear == 0.0
                && self.elastic_alpha == 0.0
                && !self.horizontal_flip)
    }

    /// Checks every strength is in range; the error names the setting.
    pub fn validate(&self) -> Result<(), DataError> {
        let fields = [
            ("translate", self.translate),
            ("rotate", self.rotate),
            ("scale", self.scale),
            ("shear", self.shear),
            ("elastic_alpha", self.elastic_alpha),
            ("elastic_sigma", self.elastic_sigma),
        ];
        for (name, v) in fields {
            if !v.is_finite() || v < 0.0 {
                return Err(DataError::InvalidAugment(format!(
                    "{name} = {v}: must be a finite number >= 0"
                )));
            }
        }
        if self.scale >= 1.0 {
            return Err(DataError::InvalidAugment(format!(
                "scale = {}: must be below 1 (it is a relative change)",
                self.scale
            )));
        }
        if self.rotate > 180.0 {
            return Err(DataError::InvalidAugment(format!(
                "rotate = {}: must be at most 180 degrees",
                self.rotate
            )));
        }
        if self.shear >= 90.0 {
            return Err(DataError::InvalidAugment(format!(
                "shear = {}: must be below 90 degrees",
                self.shear
            )));
        }
        if self.elastic_alpha > 0.0 && self.elastic_sigma <= 0.0 {
            return Err(DataError::InvalidAugment(
                "elastic_sigma must be > 0 when elastic_alpha > 0".to_string(),
            ));
        }
        Ok(())
    }
}

/// A 2-D affine map about the image centre: a pixel at `p` (relative to the centre) moves to
/// `m · p + t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    /// The linear part, row-major: `[[a, b], [c, d]]`.
    pub m: [[f32; 2]; 2],
    /// The translation in pixels, `[x, y]`.
    pub t: [f32; 2],
}

impl Affine {
    /// The map that changes nothing.
    pub fn identity() -> Self {
        Affine {
            m: [[1.0, 0.0], [0.0, 1.0]],
            t: [0.0, 0.0],
        }
    }

    /// A shift by `dx` pixels right and `dy` pixels down.
    pub fn translation(dx: f32, dy: f32) -> Self {
        Affine {
            t: [dx, dy],
            ..Affine::identity()
        }
    }

    /// Rotation by `rotate_deg` (clockwise on screen, as y points down) after a horizontal shear
    /// by `shear_deg` after scaling by `scale`, then a shift by `(dx, dy)`.
    pub fn from_params(rotate_deg: f32, scale: f32, shear_deg: f32, dx: f32, dy: f32) -> Self {
        let (sin, cos) = rotate_deg.to_radians().sin_cos();
        let k = shear_deg.to_radians().tan();
        // R · Sh · S with R = [[cos, -sin], [sin, cos]], Sh = [[1, k], [0, 1]], S = scale · I.
        let m = [
            [cos * scale, (cos * k - sin) * scale],
            [sin * scale, (sin * k + cos) * scale],
        ];
        Affine { m, t: [dx, dy] }
    }

    /// This map applied after mirroring left to right about the centre (`x → -x`): the
    /// first column of the linear part negated. Column `x` of a `cols`-wide image lands on
    /// `cols - 1 - x` exactly.
    pub fn after_mirror(self) -> Affine {
        let [[a, b], [c, d]] = self.m;
        Affine {
            m: [[-a, b], [-c, d]],
            t: self.t,
        }
    }

    /// The inverse map, or `None` if this one is singular.
    pub fn inverse(&self) -> Option<Affine> {
        let [[a, b], [c, d]] = self.m;
        let det = a * d - b * c;
        if !det.is_finite() || det.abs() < 1e-12 {
            return None;
        }
        let m = [[d / det, -b / det], [-c / det, a / det]];
        let t = [
            -(m[0][0] * self.t[0] + m[0][1] * self.t[1]),
            -(m[1][0] * self.t[0] + m[1][1] * self.t[1]),
        ];
        Some(Affine { m, t })
    }

    fn apply(&self, x: f32, y: f32) -> (f32, f32) {
        (
            self.m[0][0] * x + self.m[0][1] * y + self.t[0],
            self.m[1][0] * x + self.m[1][1] * y + self.t[1],
        )
    }
}

/// Validated augmentation settings, ready to distort images.
#[derive(Clone, Debug)]
pub struct Augmenter {
    cfg: AugmentConfig,
    /// Normalised 1-D Gaussian of σ = `elastic_sigma` (empty when elastic distortion is off).
    kernel: Vec<f32>,
}

/// Largest Gaussian kernel radius used for the elastic field (the field of a 28x28 image gains
/// nothing from more).
const MAX_KERNEL_RADIUS: usize = 64;

impl Augmenter {
    /// Checks `cfg` (all strengths finite and non-negative, scale below 1, rotation at most
    /// 180°, shear below 90°, σ > 0 when α > 0) and precomputes the Gaussian kernel.
    pub fn new(cfg: AugmentConfig) -> Result<Self, DataError> {
        cfg.validate()?;
        let kernel = if cfg.enabled && cfg.elastic_alpha > 0.0 {
            gaussian_kernel(cfg.elastic_sigma)
        } else {
            Vec::new()
        };
        Ok(Augmenter { cfg, kernel })
    }

    /// The settings in use.
    pub fn config(&self) -> &AugmentConfig {
        &self.cfg
    }

    /// Writes a randomly distorted copy of the `rows x cols` image `src` into `out`.
    ///
    /// The result depends only on `src`, the settings and the state of `rng`: the same seed gives
    /// the same images. When augmentation is disabled or every strength is zero, `out` is an
    /// exact copy of `src` and `rng` is not used.
    ///
    /// # Panics
    /// If `src` or `out` is not `rows * cols` long (a programming error).
    pub fn apply<R: Rng + ?Sized>(
        &self,
        src: &[u8],
        rows: usize,
        cols: usize,
        rng: &mut R,
        out: &mut [u8],
    ) {
        let n = rows * cols;
        assert_eq!(src.len(), n, "augment: source is not {rows}x{cols}");
        assert_eq!(out.len(), n, "augment: output is not {rows}x{cols}");
        if self.cfg.is_identity() {
            out.copy_from_slice(src);
            return;
        }
        let c = &self.cfg;
        let dx = symmetric(rng, c.translate);
        let dy = symmetric(rng, c.translate);
        let rotate = symmetric(rng, c.rotate);
        let scale = 1.0 + symmetric(rng, c.scale);
        let shear = symmetric(rng, c.shear);
        let mut affine = Affine::from_params(rotate, scale, shear, dx, dy);
        // Drawn last, and only when asked for, so the other settings draw what they always drew.
        if c.horizontal_flip && rng.random::<bool>() {
            affine = affine.after_mirror();
        }

        let field = if self.kernel.is_empty() {
            None
        } else {
            Some(self.displacement(rng, rows, cols))
        };
        if field.is_none() && affine == Affine::identity() {
            out.copy_from_slice(src);
            return;
        }
        // Validation keeps the scale above 0 and the shear below 90°, so this always exists.
        let inverse = affine.inverse().unwrap_or_else(Affine::identity);
        let field_ref = field.as_ref().map(|(x, y)| (x.as_slice(), y.as_slice()));
        warp(src, rows, cols, &inverse, field_ref, out);
    }

    /// An elastic displacement field (x and y components), smoothed and scaled by α.
    fn displacement<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        rows: usize,
        cols: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let n = rows * cols;
        let mut fx: Vec<f32> = (0..n).map(|_| symmetric(rng, 1.0)).collect();
        let mut fy: Vec<f32> = (0..n).map(|_| symmetric(rng, 1.0)).collect();
        let mut scratch = Vec::new();
        for f in [&mut fx, &mut fy] {
            smooth(f, rows, cols, &self.kernel, &mut scratch);
            for v in f.iter_mut() {
                *v *= self.cfg.elastic_alpha;
            }
        }
        (fx, fy)
    }
}

/// Applies `affine` (about the image centre) to the `rows x cols` image `src`, writing the
/// result into `out` with bilinear resampling; pixels from outside the image are 0.
///
/// # Panics
/// If `src` or `out` is not `rows * cols` long.
pub fn warp_affine(src: &[u8], rows: usize, cols: usize, affine: &Affine, out: &mut [u8]) {
    assert_eq!(src.len(), rows * cols, "warp: source is not {rows}x{cols}");
    assert_eq!(out.len(), rows * cols, "warp: output is not {rows}x{cols}");
    match affine.inverse() {
        Some(inv) => warp(src, rows, cols, &inv, None, out),
        None => out.fill(0),
    }
}

/// A uniform draw in `[-a, a]`.
fn symmetric<R: Rng + ?Sized>(rng: &mut R, a: f32) -> f32 {
    (rng.random::<f32>() * 2.0 - 1.0) * a
}

fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let radius = ((3.0 * sigma).ceil() as usize).clamp(1, MAX_KERNEL_RADIUS);
    let two_s2 = 2.0 * sigma * sigma;
    let mut k: Vec<f32> = (0..=2 * radius)
        .map(|i| {
            let d = i as f32 - radius as f32;
            (-d * d / two_s2).exp()
        })
        .collect();
    let sum: f32 = k.iter().sum();
    for v in &mut k {
        *v /= sum;
    }
    k
}

/// Separable Gaussian smoothing of a `rows x cols` field in place (zero outside the image).
///
/// Written as one multiply-add of a whole row per kernel tap, which the compiler vectorises.
fn smooth(field: &mut [f32], rows: usize, cols: usize, kernel: &[f32], scratch: &mut Vec<f32>) {
    let r = kernel.len() / 2;
    let padded_width = cols + 2 * r;
    scratch.clear();
    scratch.resize(padded_width + (rows + 2 * r) * cols, 0.0);
    // `padded_row`: one input row with r zeros on each side; `tmp`: the horizontally smoothed
    // rows, with r zero rows above and below.
    let (padded_row, tmp) = scratch.split_at_mut(padded_width);
    for y in 0..rows {
        padded_row[r..r + cols].copy_from_slice(&field[y * cols..(y + 1) * cols]);
        let out = &mut tmp[(y + r) * cols..(y + r + 1) * cols];
        for (t, &k) in kernel.iter().enumerate() {
            for (o, &v) in out.iter_mut().zip(&padded_row[t..t + cols]) {
                *o += k * v;
            }
        }
    }
    for y in 0..rows {
        let out = &mut field[y * cols..(y + 1) * cols];
        out.fill(0.0);
        for (t, &k) in kernel.iter().enumerate() {
            for (o, &v) in out.iter_mut().zip(&tmp[(y + t) * cols..(y + t + 1) * cols]) {
                *o += k * v;
            }
        }
    }
}

/// Resamples `src` at `inverse(p + field(p))` for every output pixel `p` (centre-relative).
fn warp(
    src: &[u8],
    rows: usize,
    cols: usize,
    inverse: &Affine,
    field: Option<(&[f32], &[f32])>,
    out: &mut [u8],
) {
    let cx = (cols as f32 - 1.0) / 2.0;
    let cy = (rows as f32 - 1.0) / 2.0;
    for y in 0..rows {
        for x in 0..cols {
            let i = y * cols + x;
            let (mut px, mut py) = (x as f32, y as f32);
            if let Some((fx, fy)) = field {
                px += fx[i];
                py += fy[i];
            }
            let (sx, sy) = inverse.apply(px - cx, py - cy);
            let v = bilinear(src, rows, cols, sx + cx, sy + cy);
            // v >= 0; `as` saturates at 255.
            out[i] = (v + 0.5) as u8;
        }
    }
}

fn bilinear(src: &[u8], rows: usize, cols: usize, x: f32, y: f32) -> f32 {
    // Also rejects NaN.
    if !(x > -1.0 && y > -1.0 && x < cols as f32 && y < rows as f32) {
        return 0.0;
    }
    // x, y > -1, so truncation of x + 1 is floor(x) + 1 (and avoids a libm call for floor).
    let (x1, y1) = ((x + 1.0) as usize, (y + 1.0) as usize);
    let (fx, fy) = (x + 1.0 - x1 as f32, y + 1.0 - y1 as f32);
    // Fast path: all four neighbours inside the image.
    if x1 >= 1 && y1 >= 1 && x1 < cols && y1 < rows {
        let i = (y1 - 1) * cols + (x1 - 1);
        let (p00, p01) = (f32::from(src[i]), f32::from(src[i + 1]));
        let (p10, p11) = (f32::from(src[i + cols]), f32::from(src[i + cols + 1]));
        let top = p00 + (p01 - p00) * fx;
        let bottom = p10 + (p11 - p10) * fx;
        return top + (bottom - top) * fy;
    }
    // Border: neighbours outside the image are 0. `xx`, `yy` are coordinates plus one.
    let at = |xx: usize, yy: usize| -> f32 {
        if xx >= 1 && yy >= 1 && xx <= cols && yy <= rows {
            f32::from(src[(yy - 1) * cols + (xx - 1)])
        } else {
            0.0
        }
    };
    at(x1, y1) * (1.0 - fx) * (1.0 - fy)
        + at(x1 + 1, y1) * fx * (1.0 - fy)
        + at(x1, y1 + 1) * (1.0 - fx) * fy
        + at(x1 + 1, y1 + 1) * fx * fy
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const R: usize = 28;
    const C: usize = 28;

    /// A blocky test image with a distinct value at every pixel of a central square.
    fn image() -> Vec<u8> {
        let mut v = vec![0u8; R * C];
        for y in 6..22 {
            for x in 8..20 {
                v[y * C + x] = (40 + (x * 7 + y * 3) % 200) as u8;
            }
        }
        v
    }

    fn run(cfg: AugmentConfig, seed: u64) -> Vec<u8> {
        let aug = Augmenter::new(cfg).unwrap();
        let mut out = vec![0u8; R * C];
        aug.apply(
            &image(),
            R,
            C,
            &mut ChaCha8Rng::seed_from_u64(seed),
            &mut out,
        );
        out
    }

    #[test]
    fn same_seed_same_output() {
        let cfg = AugmentConfig::preview();
        let a = run(cfg.clone(), 42);
        assert_eq!(a, run(cfg.clone(), 42));
        assert_ne!(a, image(), "augmentation did nothing");
        assert_ne!(a, run(cfg, 43), "different seeds gave the same image");

        let elastic_only = AugmentConfig {
            enabled: true,
            elastic_alpha: 34.0,
            ..AugmentConfig::default()
        };
        let e = run(elastic_only.clone(), 1);
        assert_eq!(e, run(elastic_only, 1));
        assert_ne!(e, image());
    }

    #[test]
    fn zero_strength_is_identity() {
        let zero = AugmentConfig {
            enabled: true,
            ..AugmentConfig::default()
        };
        assert!(zero.is_identity());
        assert_eq!(run(zero, 5), image());

        // Disabled: unchanged whatever the strengths.
        let off = AugmentConfig {
            enabled: false,
            ..AugmentConfig::preview()
        };
        assert_eq!(run(off, 5), image());
    }

    #[test]
    fn integer_translation_moves_pixels() {
        let src = image();
        let mut out = vec![0u8; R * C];
        warp_affine(&src, R, C, &Affine::translation(3.0, -2.0), &mut out);
        for y in 0..R {
            for x in 0..C {
                let from = (x as isize - 3, y as isize + 2);
                let expect = if from.0 >= 0 && (from.1 as usize) < R {
                    src[from.1 as usize * C + from.0 as usize]
                } else {
                    0
                };
                assert_eq!(out[y * C + x], expect, "pixel ({x}, {y})");
            }
        }
        assert_ne!(out, src);
    }

    #[test]
    fn horizontal_flip_mirrors_half_the_images_exactly() {
        let src = image();
        let mirrored: Vec<u8> = (0..R * C)
            .map(|i| src[(i / C) * C + (C - 1 - i % C)])
            .collect();
        assert_ne!(mirrored, src, "the test image is symmetric");
        let flip = AugmentConfig {
            enabled: true,
            horizontal_flip: true,
            ..AugmentConfig::default()
        };
        assert!(!flip.is_identity());
        let (mut kept, mut flipped) = (0, 0);
        for seed in 0..200 {
            let out = run(flip.clone(), seed);
            if out == src {
                kept += 1;
            } else {
                assert_eq!(
                    out, mirrored,
                    "seed {seed}: neither the image nor its mirror"
                );
                flipped += 1;
            }
        }
        // Binomial(200, 1/2): outside 70..=130 has probability below 1e-5.
        assert!(
            (70..=130).contains(&flipped),
            "{flipped} of 200 flipped ({kept} kept)"
        );
    }

    #[test]
    fn half_turn_is_about_the_centre() {
        let mut src = vec![0u8; R * C];
        src[0] = 200; // top-left corner
        src[5 * C + 9] = 100;
        let mut out = vec![0u8; R * C];
        warp_affine(
            &src,
            R,
            C,
            &Affine::from_params(180.0, 1.0, 0.0, 0.0, 0.0),
            &mut out,
        );
        assert_eq!(out[R * C - 1], 200);
        assert_eq!(out[(R - 1 - 5) * C + (C - 1 - 9)], 100);
        assert_eq!(out.iter().map(|&v| u32::from(v)).sum::<u32>(), 300);
    }

    #[test]
    fn affine_inverse() {
        let a = Affine::from_params(17.0, 1.1, 8.0, 1.5, -2.0);
        let inv = a.inverse().unwrap();
        let (x, y) = a.apply(3.0, -4.0);
        let (bx, by) = inv.apply(x, y);
        assert!(
            (bx - 3.0).abs() < 1e-4 && (by + 4.0).abs() < 1e-4,
            "{bx} {by}"
        );
        let singular = Affine {
            m: [[0.0; 2]; 2],
            t: [0.0; 2],
        };
        assert!(singular.inverse().is_none());
        let mut out = vec![9u8; R * C];
        warp_affine(&image(), R, C, &singular, &mut out);
        assert!(out.iter().all(|&v| v == 0));
    }

    #[test]
    fn kernel_is_normalised() {
        let k = gaussian_kernel(4.0);
        assert_eq!(k.len(), 25);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(k[12] > k[11] && (k[11] - k[13]).abs() < 1e-9);
        assert_eq!(gaussian_kernel(1e6).len(), 2 * MAX_KERNEL_RADIUS + 1);
    }

    #[test]
    fn smoothing_matches_direct_convolution() {
        let (rows, cols) = (9, 7);
        let k = gaussian_kernel(1.3);
        let r = (k.len() / 2) as isize;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let field: Vec<f32> = (0..rows * cols).map(|_| symmetric(&mut rng, 1.0)).collect();
        let mut fast = field.clone();
        smooth(&mut fast, rows, cols, &k, &mut Vec::new());
        for y in 0..rows as isize {
            for x in 0..cols as isize {
                let mut direct = 0.0;
                for (i, ky) in k.iter().enumerate() {
                    for (j, kx) in k.iter().enumerate() {
                        let (yy, xx) = (y + i as isize - r, x + j as isize - r);
                        if (0..rows as isize).contains(&yy) && (0..cols as isize).contains(&xx) {
                            direct += ky * kx * field[yy as usize * cols + xx as usize];
                        }
                    }
                }
                let got = fast[y as usize * cols + x as usize];
                assert!((got - direct).abs() < 1e-5, "({x}, {y}): {got} vs {direct}");
            }
        }
    }

    #[test]
    fn validation() {
        let bad = [
            AugmentConfig {
                rotate: -1.0,
                ..AugmentConfig::default()
            },
            AugmentConfig {
                translate: f32::NAN,
                ..AugmentConfig::default()
            },
            AugmentConfig {
                scale: 1.0,
                ..AugmentConfig::default()
            },
            AugmentConfig {
                shear: 90.0,
                ..AugmentConfig::default()
            },
            AugmentConfig {
                rotate: 181.0,
                ..AugmentConfig::default()
            },
            AugmentConfig {
                elastic_alpha: 10.0,
                elastic_sigma: 0.0,
                ..AugmentConfig::default()
            },
        ];
        for cfg in bad {
            let err = Augmenter::new(cfg.clone()).unwrap_err();
            assert!(matches!(err, DataError::InvalidAugment(_)), "{cfg:?}");
        }
        assert!(Augmenter::new(AugmentConfig::preview()).is_ok());
    }

    #[test]
    fn toml_table() {
        let cfg: AugmentConfig = toml::from_str("enabled = true\nrotate = 12.5").unwrap();
        assert!(cfg.enabled);
        assert_eq!(cfg.rotate, 12.5);
        assert_eq!(cfg.translate, 0.0);
        assert_eq!(cfg.elastic_sigma, 4.0);
        assert!(toml::from_str::<AugmentConfig>("rotation = 3.0").is_err());
    }
}
