//! Batch normalisation over the channels of `[batch, channels, plane]` values (a plane is one
//! map: `h × w` values): the batch's per-channel statistics, the normalisation with given
//! statistics, and its gradients, each one or two passes over the maps.
//!
//! Why our own: Burn 0.22's batch norm on flex is a composition of generic operations, each a
//! pass of its own, and its statistics and gradients swap the batch and channel axes and copy
//! the maps to make them contiguous. In `mnist-best` (batch norm after both convolutions) it was
//! over a fifth of a training step (`perf record` of `lenet train`, 2026-12-01: its forward
//! 9.4 %, its backward 12.8 %, plus the copies on the worker threads), more than the second
//! convolution's forward pass.

use rayon::prelude::*;

use crate::buffer::{par_chunks_zeroed, sum, sum_map};

/// The shape of the values: `batch` images of `channels` maps of `plane` values each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormGeometry {
    pub batch: usize,
    pub channels: usize,
    pub plane: usize,
}

impl NormGeometry {
    /// Values per channel over the batch.
    pub fn count(&self) -> usize {
        self.batch * self.plane
    }

    /// The maps of channel `c`, one per image.
    fn maps<'a>(&self, values: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (channels, plane) = (self.channels, self.plane);
        (0..self.batch).map(move |b| &values[(b * channels + c) * plane..][..plane])
    }
}

/// The sums of `dy` and of `dy · (x - shift)` over two maps, in 16 interleaved partial sums.
fn sum_grads(dy: &[f32], x: &[f32], shift: f32) -> (f32, f32) {
    const LANES: usize = 16;
    let (mut s1, mut s2) = ([0.0f32; LANES], [0.0f32; LANES]);
    let (dys, xs) = (dy.chunks_exact(LANES), x.chunks_exact(LANES));
    let (dy_rest, x_rest) = (dys.remainder(), xs.remainder());
    for (d, v) in dys.zip(xs) {
        for i in 0..LANES {
            s1[i] += d[i];
            s2[i] += d[i] * (v[i] - shift);
        }
    }
    let (mut t1, mut t2) = (s1.iter().sum::<f32>(), s2.iter().sum::<f32>());
    for (d, v) in dy_rest.iter().zip(x_rest) {
        t1 += d;
        t2 += d * (v - shift);
    }
    (t1, t2)
}

/// Per channel: the mean and the biased variance (divided by the count, as Burn's and PyTorch's
/// training-mode batch norm normalise with) of `x`, in two passes (the mean, then the squared
/// deviations from it: no cancellation), each map's sum in `f32` and the maps' sums in `f64`.
pub fn stats(g: &NormGeometry, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let n = g.count().max(1) as f64;
    let per_channel: Vec<(f32, f32)> = (0..g.channels)
        .into_par_iter()
        .map(|c| {
            let mean = g.maps(x, c).map(|m| f64::from(sum(m))).sum::<f64>() / n;
            let mean = mean as f32;
            let var = g
                .maps(x, c)
                .map(|m| f64::from(sum_map(m, |v| (v - mean) * (v - mean))))
                .sum::<f64>()
                / n;
            (mean, var as f32)
        })
        .collect();
    per_channel.into_iter().unzip()
}

/// `1 / sqrt(var + epsilon)` per channel.
pub fn inverse_std(var: &[f32], epsilon: f32) -> Vec<f32> {
    var.iter().map(|v| 1.0 / (v + epsilon).sqrt()).collect()
}

/// `y = (x - mean) · inv_std · gamma + beta` per channel, in one pass. (Not as `x · scale +
/// shift`: with a tiny variance `scale` is large and the two terms cancel.)
pub fn forward(
    g: &NormGeometry,
    x: &[f32],
    mean: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    beta: &[f32],
) -> Vec<f32> {
    let scale: Vec<f32> = (0..g.channels).map(|c| gamma[c] * inv_std[c]).collect();
    let plane = g.plane.max(1);
    par_chunks_zeroed(
        x.len(),
        plane,
        || (),
        |_, i, ys| {
            let c = i % g.channels;
            let (m, a, b) = (mean[c], scale[c], beta[c]);
            for (y, x) in ys.iter_mut().zip(&x[i * plane..]) {
                *y = (x - m) * a + b;
            }
        },
    )
}

/// The gradients of [`forward`]: `(dx, dgamma, dbeta)` from the output's gradient `dy`.
///
/// With `batch_stats` the mean and variance are the batch's own (training), so they depend on
/// `x` and `dx = gamma · inv_std · (dy - mean(dy) - x̂ · mean(dy · x̂))` with `x̂ = (x - mean) ·
/// inv_std`; otherwise (running statistics) they are constants and `dx = gamma · inv_std · dy`.
/// Either way `dgamma = Σ dy · x̂` and `dbeta = Σ dy` per channel. Two passes: the sums, then
/// `dx = a · (dy - m - (x - mean) · q)` with per-channel `a = gamma · inv_std`, `m = mean(dy)`
/// and `q = inv_std² · mean(dy · (x - mean))` (0 for both without `batch_stats`), the
/// differences first so that the terms that cancel do so before the large factor `a`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    g: &NormGeometry,
    x: &[f32],
    dy: &[f32],
    mean: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    batch_stats: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    // Per channel: Σ dy and Σ dy · (x - mean).
    let sums: Vec<(f64, f64)> = (0..g.channels)
        .into_par_iter()
        .map(|c| {
            g.maps(dy, c)
                .zip(g.maps(x, c))
                .fold((0.0f64, 0.0f64), |(t1, t2), (d, v)| {
                    let (s1, s2) = sum_grads(d, v, mean[c]);
                    (t1 + f64::from(s1), t2 + f64::from(s2))
                })
        })
        .collect();
    let n = g.count().max(1) as f64;
    let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let dgamma: Vec<f32> = sums
        .iter()
        .zip(inv_std)
        .map(|(s, &k)| (s.1 * f64::from(k)) as f32)
        .collect();
    // dx = a · (dy - m - (x - mean) · q) per channel.
    let coefficients: Vec<[f32; 3]> = (0..g.channels)
        .map(|c| {
            let k = f64::from(inv_std[c]);
            let a = (f64::from(gamma[c]) * k) as f32;
            if !batch_stats {
                return [a, 0.0, 0.0];
            }
            let (s1, s2) = sums[c];
            [a, (s1 / n) as f32, (k * k * s2 / n) as f32]
        })
        .collect();
    let plane = g.plane.max(1);
    let dx = par_chunks_zeroed(
        x.len(),
        plane,
        || (),
        |_, i, out| {
            let c = i % g.channels;
            let [a, m, q] = coefficients[c];
            let mu = mean[c];
            let (d, v) = (&dy[i * plane..], &x[i * plane..]);
            for ((o, d), v) in out.iter_mut().zip(d).zip(v) {
                *o = a * (d - m - (v - mu) * q);
            }
        },
    );
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward `f64` versions of the formulas, value by value.
    fn reference_stats(g: &NormGeometry, x: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let n = g.count() as f64;
        (0..g.channels)
            .map(|c| {
                let values: Vec<f64> = g.maps(x, c).flatten().map(|&v| f64::from(v)).collect();
                let mean = values.iter().sum::<f64>() / n;
                let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                (mean, var)
            })
            .unzip()
    }

    fn noise(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = (i as u32 ^ seed)
                    .wrapping_mul(2_654_435_761)
                    .rotate_left(13);
                (h % 2001) as f32 / 1000.0 - 1.0 + 0.3
            })
            .collect()
    }

    #[test]
    fn statistics_match_a_direct_computation() {
        let g = NormGeometry {
            batch: 3,
            channels: 5,
            plane: 37,
        };
        let x = noise(3 * 5 * 37, 7);
        let (mean, var) = stats(&g, &x);
        let (m, v) = reference_stats(&g, &x);
        for c in 0..5 {
            assert!((f64::from(mean[c]) - m[c]).abs() < 1e-6, "mean {c}");
            assert!((f64::from(var[c]) - v[c]).abs() < 1e-6, "var {c}");
        }
    }

    #[test]
    fn a_hand_worked_channel() {
        // One channel, two images of two values: 1, 3 and 5, 7: mean 4, variance (9+1+1+9)/4 = 5.
        let g = NormGeometry {
            batch: 2,
            channels: 1,
            plane: 2,
        };
        let x = [1.0, 3.0, 5.0, 7.0];
        let (mean, var) = stats(&g, &x);
        assert_eq!((mean[0], var[0]), (4.0, 5.0));
        let k = inverse_std(&var, 0.0);
        let y = forward(&g, &x, &mean, &k, &[2.0], &[1.0]);
        let s = 1.0 / 5.0f32.sqrt();
        let expected = [
            -3.0 * s * 2.0 + 1.0,
            -s * 2.0 + 1.0,
            s * 2.0 + 1.0,
            3.0 * s * 2.0 + 1.0,
        ];
        for (a, b) in y.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
        // The output's gradient 1 everywhere: dβ = 4, dγ = Σ x̂ = 0, and dx = 0 (a constant
        // shift of the output cannot be reached by moving x: the mean absorbs it).
        let (dx, dgamma, dbeta) = backward(&g, &x, &[1.0; 4], &mean, &k, &[2.0], true);
        assert_eq!(dbeta, [4.0]);
        assert!(dgamma[0].abs() < 1e-6);
        assert!(dx.iter().all(|v| v.abs() < 1e-6), "{dx:?}");
        // With the statistics held fixed, dx = γ · k · dy.
        let (dx, _, _) = backward(&g, &x, &[1.0; 4], &mean, &k, &[2.0], false);
        assert!(dx.iter().all(|v| (v - 2.0 * s).abs() < 1e-6), "{dx:?}");
    }

    /// The loss `Σ y · r` for random `r`, as a function of `x` in `f64`: the gradient by
    /// central differences against [`backward`].
    #[test]
    fn gradients_match_finite_differences() {
        let g = NormGeometry {
            batch: 2,
            channels: 3,
            plane: 5,
        };
        let x = noise(30, 3);
        let r = noise(30, 11);
        let gamma = [0.5f32, -1.5, 2.0];
        let beta = [0.1f32, 0.2, -0.3];
        let eps = 1e-5;
        // Σ y · r with the batch statistics recomputed from x, all in f64.
        let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| -> f64 {
            let n = g.count() as f64;
            let index = |b: usize, c: usize, p: usize| (b * g.channels + c) * g.plane + p;
            let mut total = 0.0;
            for c in 0..g.channels {
                let values: Vec<f64> = (0..g.batch)
                    .flat_map(|b| (0..g.plane).map(move |p| (b, p)))
                    .map(|(b, p)| x[index(b, c, p)])
                    .collect();
                let mean = values.iter().sum::<f64>() / n;
                let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                for b in 0..g.batch {
                    for p in 0..g.plane {
                        let i = index(b, c, p);
                        let y = (x[i] - mean) / (var + eps).sqrt() * gamma[c] + beta[c];
                        total += y * f64::from(r[i]);
                    }
                }
            }
            total
        };
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let g64: Vec<f64> = gamma.iter().map(|&v| f64::from(v)).collect();
        let b64: Vec<f64> = beta.iter().map(|&v| f64::from(v)).collect();
        let (mean, var) = stats(&g, &x);
        let k = inverse_std(&var, eps as f32);
        let (dx, dgamma, dbeta) = backward(&g, &x, &r, &mean, &k, &gamma, true);
        let h = 1e-4;
        for i in 0..x.len() {
            let (mut up, mut down) = (x64.clone(), x64.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (loss(&up, &g64, &b64) - loss(&down, &g64, &b64)) / (2.0 * h);
            assert!(
                (f64::from(dx[i]) - fd).abs() < 1e-3,
                "dx[{i}] {} vs {fd}",
                dx[i]
            );
        }
        for c in 0..3 {
            let (mut up, mut down) = (g64.clone(), g64.clone());
            up[c] += h;
            down[c] -= h;
            let fd = (loss(&x64, &up, &b64) - loss(&x64, &down, &b64)) / (2.0 * h);
            assert!((f64::from(dgamma[c]) - fd).abs() < 1e-3, "dgamma[{c}]");
            let (mut up, mut down) = (b64.clone(), b64.clone());
            up[c] += h;
            down[c] -= h;
            let fd = (loss(&x64, &g64, &up) - loss(&x64, &g64, &down)) / (2.0 * h);
            assert!((f64::from(dbeta[c]) - fd).abs() < 1e-3, "dbeta[{c}]");
        }
    }
}
