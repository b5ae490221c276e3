//! Dense (fully connected) layers, `y = f(x · W + b)` with Burn's weight layout `[inputs,
//! outputs]`, and their gradients.
//!
//! Why our own: Burn 0.22's `Linear` on flex is a matrix product that uses one thread below ~7
//! million multiply-adds (all of LeNet-5's dense layers at batch 64, two of three at 256), a
//! broadcast bias addition and the nonlinearity as passes of their own, and backward two more
//! products, a sum for the bias and the nonlinearity's gradient as further passes. Here the
//! products are split over both cores (images for the output and the input gradient, input rows
//! for the weight gradient: fixed splits, so that the rounding does not depend on the thread
//! count) and the bias and nonlinearity are applied to each block while it is in cache.
//! Measured in docs/performance.md.

use rayon::prelude::*;

use crate::buffer::par_chunks_zeroed;
use crate::conv::Activation;
use crate::gemm::{matmul, View};

/// The sizes of a dense layer's product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearGeometry {
    /// Rows of `x` (images).
    pub batch: usize,
    /// Values per image in.
    pub inputs: usize,
    /// Values per image out.
    pub outputs: usize,
}

/// Images per product of the forward pass and the input gradient: a fixed split, so that the
/// rounding does not depend on the number of threads.
pub(crate) const IMAGES: usize = 32;

/// Input rows of the weight gradient per task (the `gemm` crate's f32 kernels take 16 rows at a
/// time).
pub(crate) const WEIGHT_ROWS: usize = 16;

/// `f(x · W + b)` for `x` `[batch, inputs]` and `weight` `[inputs, outputs]` (Burn's layout),
/// row-major `[batch, outputs]`.
///
/// # Panics
/// If a slice is shorter than the geometry says.
pub fn forward(
    g: &LinearGeometry,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
) -> Vec<f32> {
    let w = View::rows(weight, g.inputs, g.outputs);
    forward_with(g, x, w, bias, activation)
}

/// [`forward`] with the weights as any `inputs × outputs` view (the convolutions' dense method
/// passes its `[outputs, inputs]` kernels transposed).
pub(crate) fn forward_with(
    g: &LinearGeometry,
    x: &[f32],
    w: View<'_>,
    bias: Option<&[f32]>,
    activation: Activation,
) -> Vec<f32> {
    let (inputs, out) = (g.inputs, g.outputs);
    assert!(x.len() >= g.batch * inputs, "linear: input too short");
    if out == 0 || inputs == 0 {
        let mut y = vec![0.0; g.batch * out];
        if let Some(bias) = bias {
            for row in y.chunks_mut(out.max(1)) {
                row.copy_from_slice(&bias[..row.len()]);
            }
        }
        activation.apply_all(&mut y);
        return y;
    }
    // Larger batches in larger products (at least 32 images, an eighth of the batch: still a
    // split that does not depend on the number of threads), so that the weights are packed
    // fewer times (measured: packing was 10 % of the classic network's inference at batch
    // 1000 with products of 32 images).
    let images = IMAGES.max(g.batch / 8);
    par_chunks_zeroed(
        g.batch * out,
        images * out,
        || (),
        |_, r, y| {
            let count = y.len() / out;
            let x = &x[r * images * inputs..(r * images + count) * inputs];
            matmul(y, View::rows(x, count, inputs), w, false);
            if let Some(bias) = bias {
                for row in y.chunks_mut(out) {
                    row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
                }
            }
            activation.apply_all(y);
        },
    )
}

/// The gradient before the nonlinearity: `dy` through `activation` given the layer's
/// (activated) `output`; `dy` itself without a nonlinearity.
fn through_activation<'a>(
    activation: Activation,
    output: Option<&[f32]>,
    dy: &'a [f32],
    buffer: &'a mut Vec<f32>,
) -> &'a [f32] {
    match (activation, output) {
        (Activation::None, _) | (_, None) => dy,
        (a, Some(y)) => {
            a.backward_all(y, dy, buffer);
            buffer
        }
    }
}

/// The gradients of a dense layer from the gradient `dy` `[batch, outputs]` of its output: of
/// the input `[batch, inputs]` (when `want_x`) and of the weights `[inputs, outputs]` and bias
/// `[outputs]` (when `want_weight`). `output` is the layer's activated output, needed when
/// `activation` is not `None`.
///
/// # Panics
/// If a slice is shorter than the geometry says, or `output` is missing for a nonlinearity.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn backward(
    g: &LinearGeometry,
    x: &[f32],
    weight: &[f32],
    output: Option<&[f32]>,
    activation: Activation,
    dy: &[f32],
    want_x: bool,
    want_weight: bool,
) -> (Option<Vec<f32>>, Option<(Vec<f32>, Vec<f32>)>) {
    let (batch, inputs, out) = (g.batch, g.inputs, g.outputs);
    assert!(
        activation == Activation::None || output.is_some(),
        "linear: the output is needed for the nonlinearity's gradient"
    );
    assert!(dy.len() >= batch * out, "linear: output gradient too short");
    let mut buffer = Vec::new();
    let d = through_activation(activation, output, &dy[..batch * out], &mut buffer);
    let dx = want_x.then(|| input_grad(g, weight, d));
    let dw = want_weight.then(|| weight_grad(g, x, d));
    debug_assert!(dx.as_ref().is_none_or(|dx| dx.len() == batch * inputs));
    (dx, dw)
}

/// `dx = d · Wᵀ` for ranges of [`IMAGES`] images at a time.
fn input_grad(g: &LinearGeometry, weight: &[f32], d: &[f32]) -> Vec<f32> {
    let (inputs, out) = (g.inputs, g.outputs);
    if inputs == 0 {
        return Vec::new();
    }
    let wt = View::transposed(weight, inputs, out);
    par_chunks_zeroed(
        g.batch * inputs,
        IMAGES * inputs,
        || (),
        |_, r, dx| {
            let count = dx.len() / inputs;
            let first = r * IMAGES;
            let d = &d[first * out..(first + count) * out];
            matmul(dx, View::rows(d, count, out), wt, false);
        },
    )
}

/// `dW = xᵀ · d` over the whole batch, [`WEIGHT_ROWS`] input rows per task, and `db = Σ d`:
/// each value summed by one task over the images in order, so that its rounding depends on
/// neither the threads nor the scheduling.
fn weight_grad(g: &LinearGeometry, x: &[f32], d: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (batch, inputs, out) = (g.batch, g.inputs, g.outputs);
    assert!(x.len() >= batch * inputs, "linear: input too short");
    let mut dw = vec![0.0f32; inputs * out];
    let mut db = vec![0.0f32; out];
    if out == 0 {
        return (dw, db);
    }
    if inputs > 0 {
        dw.par_chunks_mut(WEIGHT_ROWS * out)
            .enumerate()
            .for_each(|(block, dw)| {
                let (first, rows) = (block * WEIGHT_ROWS, dw.len() / out);
                let xt = View {
                    data: &x[first..],
                    rows,
                    cols: batch,
                    row_stride: 1,
                    col_stride: inputs,
                };
                matmul(dw, xt, View::rows(d, batch, out), false);
            });
    }
    for row in d.chunks_exact(out) {
        db.iter_mut().zip(row).for_each(|(b, v)| *b += v);
    }
    (dw, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values in [-1, 1) from a fixed sequence.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                let h = (i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) % 2001;
                h as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// The layer written out as sums over indices, in f64.
    fn naive(g: &LinearGeometry, x: &[f32], w: &[f32], b: &[f32], a: Activation) -> Vec<f32> {
        let mut y = vec![0.0; g.batch * g.outputs];
        for n in 0..g.batch {
            for o in 0..g.outputs {
                let mut s = f64::from(b[o]);
                for i in 0..g.inputs {
                    s += f64::from(x[n * g.inputs + i]) * f64::from(w[i * g.outputs + o]);
                }
                y[n * g.outputs + o] = s as f32;
            }
        }
        a.apply_all(&mut y);
        y
    }

    fn close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "{what}[{k}]: {g} vs {w}"
            );
        }
    }

    /// LeNet-5's dense layers and odd sizes (a batch that is not a multiple of the split, input
    /// rows that are not a multiple of 16), with each nonlinearity.
    const SHAPES: [(usize, usize, usize); 5] = [
        (70, 400, 120),
        (33, 120, 84),
        (5, 84, 10),
        (1, 17, 3),
        (40, 1, 1),
    ];
    const ACTIVATIONS: [Activation; 4] = [
        Activation::None,
        Activation::Relu,
        Activation::Tanh {
            outer: 1.7159,
            inner: 2.0 / 3.0,
        },
        Activation::Sigmoid,
    ];

    #[test]
    fn forward_matches_the_definition() {
        for (batch, inputs, outputs) in SHAPES {
            let g = LinearGeometry {
                batch,
                inputs,
                outputs,
            };
            let x = values(batch * inputs, 1);
            let w = values(inputs * outputs, 2);
            let b = values(outputs, 3);
            for a in ACTIVATIONS {
                let got = forward(&g, &x, &w, Some(&b), a);
                close(&got, &naive(&g, &x, &w, &b, a), &format!("{g:?} {a:?}"));
            }
            let zero = vec![0.0; outputs];
            let got = forward(&g, &x, &w, None, Activation::None);
            close(&got, &naive(&g, &x, &w, &zero, Activation::None), "no bias");
        }
    }

    /// The gradients against the loss `Σ c · y` written out: `dy = c`, through the nonlinearity
    /// by its derivative at the output, then the sums of the chain rule, in f64.
    #[test]
    fn gradients_match_the_chain_rule() {
        for (batch, inputs, outputs) in SHAPES {
            let g = LinearGeometry {
                batch,
                inputs,
                outputs,
            };
            let x = values(batch * inputs, 4);
            let w = values(inputs * outputs, 5);
            let b = values(outputs, 6);
            let dy = values(batch * outputs, 7);
            for a in ACTIVATIONS {
                let y = forward(&g, &x, &w, Some(&b), a);
                // d = f'(pre) · dy, f' from the output as each kind defines it.
                let d: Vec<f64> = y
                    .iter()
                    .zip(&dy)
                    .map(|(&y, &dy)| {
                        let dy = f64::from(dy);
                        let y = f64::from(y);
                        match a {
                            Activation::None => dy,
                            Activation::Relu => {
                                if y > 0.0 {
                                    dy
                                } else {
                                    0.0
                                }
                            }
                            Activation::Tanh { outer, inner } => {
                                let (o, i) = (f64::from(outer), f64::from(inner));
                                dy * i * (o - y * y / o)
                            }
                            Activation::Sigmoid => dy * y * (1.0 - y),
                        }
                    })
                    .collect();
                let mut want_dx = vec![0.0f64; batch * inputs];
                let mut want_dw = vec![0.0f64; inputs * outputs];
                let mut want_db = vec![0.0f64; outputs];
                for n in 0..batch {
                    for o in 0..outputs {
                        let d = d[n * outputs + o];
                        want_db[o] += d;
                        for i in 0..inputs {
                            want_dx[n * inputs + i] += d * f64::from(w[i * outputs + o]);
                            want_dw[i * outputs + o] += d * f64::from(x[n * inputs + i]);
                        }
                    }
                }
                let f32s = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<_>>();
                let (dx, dwb) = backward(&g, &x, &w, Some(&y), a, &dy, true, true);
                let (dw, db) = dwb.expect("asked for the weight gradient");
                let what = format!("{g:?} {a:?}");
                close(
                    &dx.expect("asked for dx"),
                    &f32s(want_dx),
                    &format!("dx {what}"),
                );
                close(&dw, &f32s(want_dw), &format!("dw {what}"));
                close(&db, &f32s(want_db), &format!("db {what}"));
                // Only what is asked for.
                let (dx, dwb) = backward(&g, &x, &w, Some(&y), a, &dy, false, true);
                assert!(dx.is_none() && dwb.is_some());
                let (dx, dwb) = backward(&g, &x, &w, Some(&y), a, &dy, true, false);
                assert!(dx.is_some() && dwb.is_none());
            }
        }
    }

    /// The same values to the bit whatever the number of threads.
    #[test]
    fn the_results_do_not_depend_on_the_thread_count() {
        let g = LinearGeometry {
            batch: 256,
            inputs: 400,
            outputs: 120,
        };
        let (x, w, b, dy) = (
            values(256 * 400, 8),
            values(400 * 120, 9),
            values(120, 10),
            values(256 * 120, 11),
        );
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool");
            pool.install(|| {
                let y = forward(&g, &x, &w, Some(&b), Activation::Relu);
                let grads = backward(&g, &x, &w, Some(&y), Activation::Relu, &dy, true, true);
                (y, grads)
            })
        };
        assert_eq!(run(1), run(3));
    }
}
