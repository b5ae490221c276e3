//! LeNet-5's output layer (LeCun et al. 1998, Section II-B): Euclidean radial basis function
//! units, `y_i = Σ_j (x_j − w_ij)²`, one per class, whose weights are fixed (not trained): the
//! 7×12 stylised bitmaps of the ten digits, +1 for ink and −1 for background, shipped as
//! `data/digits-7x12.txt`.
//!
//! The layer outputs `−y`: the nearer an input is to a class's prototype, the larger its score,
//! so the usual argmax is the paper's argmin distance and a softmax gives probabilities.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor};

use crate::error::ModelError;

/// The ten digit bitmaps, as shipped.
pub const DIGITS_7X12: &str = include_str!("../data/digits-7x12.txt");
/// Bitmap width.
pub const WIDTH: usize = 7;
/// Bitmap height.
pub const HEIGHT: usize = 12;
/// Inputs of each RBF unit: one per bitmap pixel.
pub const INPUTS: usize = WIDTH * HEIGHT;
/// Classes: the ten digits.
pub const CLASSES: usize = 10;

/// The ten bitmaps of [`DIGITS_7X12`] as ±1 values, digit by digit, row-major
/// (`[10][84]` flattened).
pub fn digit_prototypes() -> Result<Vec<f32>, ModelError> {
    let bad = |m: String| ModelError::Internal(format!("data/digits-7x12.txt: {m}"));
    let rows: Vec<&str> = DIGITS_7X12
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("# "))
        .collect();
    if rows.len() != CLASSES * HEIGHT {
        return Err(bad(format!(
            "{} bitmap rows, expected {CLASSES} × {HEIGHT}",
            rows.len()
        )));
    }
    let mut out = Vec::with_capacity(CLASSES * INPUTS);
    for (i, row) in rows.iter().enumerate() {
        if row.chars().count() != WIDTH {
            return Err(bad(format!("row {i} is not {WIDTH} characters: {row:?}")));
        }
        for c in row.chars() {
            out.push(match c {
                '#' => 1.0,
                '.' => -1.0,
                other => return Err(bad(format!("row {i} has {other:?}, expected # or ."))),
            });
        }
    }
    Ok(out)
}

/// The RBF output layer with fixed prototypes.
#[derive(Module, Debug)]
pub struct Rbf {
    /// `[classes][inputs]`, row-major; constants, so not a parameter (and not saved).
    #[module(skip)]
    prototypes: Vec<f32>,
    #[module(skip)]
    classes: usize,
    /// The prototypes transposed, `[inputs][classes]`, and their squared norms `[classes]`:
    /// worked out once here rather than in every forward pass.
    #[module(skip)]
    transposed: Vec<f32>,
    #[module(skip)]
    norms: Vec<f32>,
}

impl Rbf {
    /// The digits' RBF layer: 84 inputs, 10 units.
    ///
    /// # Panics
    /// If the shipped `data/digits-7x12.txt` is malformed: compiled-in data, not input, and
    /// checked by `the_shipped_bitmaps_are_ten_distinct_digits`.
    pub fn digits() -> Rbf {
        match digit_prototypes() {
            Ok(prototypes) => {
                let mut transposed = vec![0.0; INPUTS * CLASSES];
                let mut norms = vec![0.0; CLASSES];
                for (i, row) in prototypes.chunks_exact(INPUTS).enumerate() {
                    for (j, &w) in row.iter().enumerate() {
                        transposed[j * CLASSES + i] = w;
                        norms[i] += w * w;
                    }
                }
                Rbf {
                    prototypes,
                    classes: CLASSES,
                    transposed,
                    norms,
                }
            }
            Err(e) => panic!("lenet-model was built with broken RBF prototypes: {e}"),
        }
    }

    /// The prototypes, `[classes][inputs]` row-major.
    pub fn prototypes(&self) -> &[f32] {
        &self.prototypes
    }

    /// `−y`, `y_i = Σ_j (x_j − w_ij)²`, for a batch `x` `[batch, inputs]`: `[batch, classes]`.
    /// Computed as `2·x·w_i − |x|² − |w_i|²`: one matrix product instead of a
    /// `[batch, classes, inputs]` difference. The prototypes enter as constants already
    /// transposed, with their squared norms (both from [`Rbf::digits`]), and `|x|²` as a product: operations
    /// that every backend and the ONNX export have (no transpose or power of a tensor).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [_, inputs] = x.dims();
        let device = x.device();
        let k = self.classes;
        let w_t =
            Tensor::<1>::from_floats(self.transposed.as_slice(), &device).reshape([inputs, k]);
        let w_sq = Tensor::<1>::from_floats(self.norms.as_slice(), &device).reshape([1, k]);
        let x_sq = (x.clone() * x.clone()).sum_dim(1);
        x.matmul(w_t).mul_scalar(2.0) - x_sq - w_sq
    }
}

/// The constant `j` of the MAP criterion: `E = y_c + log(e^(−j) + Σ_i e^(−y_i))` (LeCun et al.
/// 1998, Section II-C). The paper calls it a positive constant without a value; with `j = 1`
/// the criterion pulls the correct class's distance towards 0 (like the squared error to its
/// prototype) until it is about `j`, and pushes the other classes' distances up.
pub const MAP_J: f32 = 1.0;

/// The MAP criterion, averaged over the batch, from the RBF layer's scores `−y` `[batch, 10]`
/// and the classes `targets` `[batch]`: cross-entropy over the scores with one more constant
/// score `−j` that no class owns, which is `y_c + log(e^(−j) + Σ_i e^(−y_i))` exactly.
pub fn map_loss(scores: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [batch, _] = scores.dims();
    let device = scores.device();
    let rubbish = Tensor::<2>::full([batch, 1], -MAP_J, &device);
    let logits = Tensor::cat(vec![scores, rubbish], 1);
    CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits, targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// The bitmaps rendered back as text (`#` for +1, `.` for −1), one digit beside the next.
    fn render(prototypes: &[f32]) -> String {
        let mut out = String::new();
        for row in 0..HEIGHT {
            for digit in 0..CLASSES {
                for col in 0..WIDTH {
                    let v = prototypes[digit * INPUTS + row * WIDTH + col];
                    out.push(if v > 0.0 { '#' } else { '.' });
                }
                out.push(' ');
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        }
        out
    }

    #[test]
    fn the_shipped_bitmaps_are_ten_distinct_digits() {
        let p = digit_prototypes().unwrap();
        assert_eq!(p.len(), CLASSES * INPUTS);
        assert!(p.iter().all(|&v| v == 1.0 || v == -1.0));
        let picture = render(&p);
        println!("{picture}");
        assert_eq!(picture.lines().count(), HEIGHT);
        // Rendered back, each digit's block is the file's block.
        let rows: Vec<&str> = DIGITS_7X12
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("# "))
            .collect();
        for (r, line) in picture.lines().enumerate() {
            for (d, cell) in line.split(' ').enumerate() {
                assert_eq!(cell, rows[d * HEIGHT + r], "digit {d}, row {r}");
            }
        }
        // Some ink in every digit, a one and an eight far apart in ink.
        let ink = |d: usize| {
            p[d * INPUTS..(d + 1) * INPUTS]
                .iter()
                .filter(|&&v| v > 0.0)
                .count()
        };
        assert!(
            (0..CLASSES).all(|d| (10..=42).contains(&ink(d))),
            "ink per digit"
        );
        assert!(ink(1) < ink(8));
        // Codes far apart: every pair differs in at least 10 of 84 pixels, so that a distance
        // to the right prototype is clearly smaller than to the others.
        for a in 0..CLASSES {
            for b in a + 1..CLASSES {
                let differ = (0..INPUTS)
                    .filter(|&j| p[a * INPUTS + j] != p[b * INPUTS + j])
                    .count();
                assert!(
                    differ >= 10,
                    "digits {a} and {b} differ in only {differ} pixels"
                );
            }
        }
    }

    /// The layer's scores are minus the squared distances, checked by hand: an input equal to
    /// a prototype scores 0 for its digit, and 4 × (pixels that differ) for the others.
    #[test]
    fn scores_are_minus_the_squared_distances() {
        let device = Device::flex();
        let rbf = Rbf::digits();
        let p = rbf.prototypes().to_vec();
        let x = Tensor::<2>::from_data(
            TensorData::new(p[3 * INPUTS..4 * INPUTS].to_vec(), [1, INPUTS]),
            &device,
        );
        let scores: Vec<f32> = rbf
            .forward(x)
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .unwrap();
        for (digit, &s) in scores.iter().enumerate() {
            let differ = (0..INPUTS)
                .filter(|&j| p[digit * INPUTS + j] != p[3 * INPUTS + j])
                .count();
            assert!(
                (s + 4.0 * differ as f32).abs() < 1e-3,
                "digit {digit}: {s} against {}",
                -4.0 * differ as f32
            );
        }
        // A zero input is at distance 84 from every prototype.
        let zero = Tensor::<2>::zeros([2, INPUTS], &device);
        let scores: Vec<f32> = rbf
            .forward(zero)
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .unwrap();
        assert!(
            scores.iter().all(|&s| (s + 84.0).abs() < 1e-4),
            "{scores:?}"
        );
    }

    /// The MAP loss against the paper's formula evaluated in f64 by hand.
    #[test]
    fn map_loss_is_the_papers_criterion() {
        let device = Device::flex();
        let y = [
            [3.0f64, 0.5, 7.0, 2.0, 9.0, 4.0, 6.0, 8.0, 1.5, 5.0],
            [0.2, 12.0, 3.0, 30.0, 2.5, 6.0, 0.1, 9.0, 4.0, 7.5],
        ];
        let targets = [1usize, 6];
        let expected: f64 = y
            .iter()
            .zip(targets)
            .map(|(y, c)| {
                y[c] + ((-f64::from(MAP_J)).exp() + y.iter().map(|v| (-v).exp()).sum::<f64>()).ln()
            })
            .sum::<f64>()
            / 2.0;
        let scores: Vec<f32> = y.iter().flatten().map(|&v| -v as f32).collect();
        let scores = Tensor::<2>::from_data(TensorData::new(scores, [2, 10]), &device);
        let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 6], [2]), &device);
        let loss = map_loss(scores, targets).into_scalar::<f32>() as f64;
        assert!((loss - expected).abs() < 1e-5, "{loss} against {expected}");
    }
}
