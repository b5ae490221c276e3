//! The diagonal second derivatives of the loss with respect to every parameter, back-propagated
//! as in LeCun et al. (1998), Appendix C: the Gauss-Newton approximation, which keeps only the
//! diagonal and drops the terms in `f''`, so that with `a = W·x` and `x' = f(a)`
//!
//! ```text
//! ∂²E/∂a_i²  = f'(a_i)² · ∂²E/∂x'_i²
//! ∂²E/∂x_j²  = Σ_i w_ij² · ∂²E/∂a_i²
//! ∂²E/∂w_ij² = Σ_(samples, shared positions) x_j² · ∂²E/∂a_i²
//! ```
//!
//! These recurrences are the first-order back-propagation of a *surrogate* network: the same
//! layers with the weights squared and each layer's input squared, and the nonlinearities
//! replaced by a multiplication by `f'(a)²`. So Burn's own autodiff computes them, on every
//! backend and through the same convolution kernels as training: [`ConvNet::curvature`] runs the
//! network forward once for the values, builds the surrogate from them, seeds it with the
//! diagonal second derivative of the loss with respect to the network's output, and takes one
//! backward pass. Each surrogate parameter's gradient is the sum over the batch of its
//! parameter's diagonal second derivative.
//!
//! In the surrogate a layer's input carries two things: the value `x²` (which its weights'
//! second derivatives read) and, through a zero-valued term `v − detach(v)`, the path back to the
//! previous layer. Max pooling routes the second derivatives like the first ones, to each
//! window's maximum; an average pool multiplies them by `1/k²` (its weights `1/k`, squared);
//! LeNet-5's subsampling `y = c·Σx + b` gives `∂²E/∂c² = Σ (Σx)² ∂²E/∂y²`,
//! `∂²E/∂b² = Σ ∂²E/∂y²` and `∂²E/∂x² = c² ∂²E/∂y²`. Dropout is left out (the estimate is of
//! the network as evaluated); batch normalisation is not supported (its statistics couple the
//! samples, which the recurrences above do not describe).
//!
//! The seed, the second derivative of the loss with respect to the output:
//! * logits under softmax cross-entropy: `p_k (1 − p_k)`, the Hessian's diagonal;
//! * an RBF output under the MAP criterion, with respect to its input `x` (the last hidden
//!   layer): `E = y_c + log(e^(−j) + Σ_i e^(−y_i))`, `y_i = Σ_j (x_j − w_ij)²`, whose exact
//!   diagonal is `∂²E/∂x_j² = 2 q_J + Var_q(d_·j)`, `d_ij = 2 (x_j − w_ij)` (and 0 for the
//!   constant `j`), `q` the softmax over `(−y, −j)`, `q_J` its share for `−j` (derived in the
//!   test that checks it against finite differences). Both are never negative and do not
//!   depend on the target.

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::activation::softmax;
use burn::tensor::Tensor;

use crate::error::ModelError;
use crate::model::{per_map, pool, ConvNet, FeatureMap, Output};
use crate::rbf::{Rbf, MAP_J};
use crate::PoolKind;

/// Per parameter, `Σ_samples ∂²E/∂w²` (Gauss-Newton, diagonal) over the batch it was computed
/// on, keyed by the network's own parameter ids; and that batch's size.
#[derive(Debug)]
pub struct Curvature {
    /// The sums, one tensor of each parameter's shape.
    pub sums: GradientsParams,
    /// How many samples were summed.
    pub samples: usize,
}

/// Applies one expression to whichever rank a [`FeatureMap`] has.
macro_rules! each {
    ($map:expr, |$t:ident| $body:expr) => {
        match $map {
            FeatureMap::D1($t) => FeatureMap::D1($body),
            FeatureMap::D2($t) => FeatureMap::D2($body),
            FeatureMap::D3($t) => FeatureMap::D3($body),
        }
    };
}

/// Applies one expression to two [`FeatureMap`]s of the same rank.
macro_rules! both {
    ($a:expr, $b:expr, |$x:ident, $y:ident| $body:expr) => {
        match ($a, $b) {
            (FeatureMap::D1($x), FeatureMap::D1($y)) => Ok(FeatureMap::D1($body)),
            (FeatureMap::D2($x), FeatureMap::D2($y)) => Ok(FeatureMap::D2($body)),
            (FeatureMap::D3($x), FeatureMap::D3($y)) => Ok(FeatureMap::D3($body)),
            _ => Err(ModelError::Internal(
                "curvature: the surrogate and the network disagree on a layer's rank".into(),
            )),
        }
    };
}

/// The surrogate's weights: every parameter a fresh leaf on the autodiff device, with its id
/// kept; the weights (rank ≥ 2: convolution kernels, dense matrices) squared. Biases and the
/// subsampling coefficients keep their values (the surrogate reads only their gradients).
struct Squared;

impl ModuleMapper for Squared {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let value = tensor.inner();
        let value = if D >= 2 { value.powi_scalar(2) } else { value };
        Param::from_mapped_value(id, value.autodiff().require_grad(), mapper)
    }
}

/// A value's square as a surrogate input that back-propagates into `path` (whose value it
/// replaces: `path − detach(path)` is zero).
fn carry(value: &FeatureMap, path: FeatureMap) -> Result<FeatureMap, ModelError> {
    both!(value.clone(), path, |x, v| x.powi_scalar(2).autodiff()
        + v.clone()
        - v.detach())
}

/// `path · f'(a)²`: the second derivatives through a nonlinearity.
fn through_activation(
    act: crate::Activation,
    a: &FeatureMap,
    path: FeatureMap,
) -> Result<FeatureMap, ModelError> {
    both!(a.clone(), path, |a, v| v * act
        .derivative(a)
        .powi_scalar(2)
        .autodiff())
}

impl ConvNet {
    /// The diagonal Gauss-Newton second derivatives of the training loss (cross-entropy, or
    /// the MAP criterion for an RBF output) with respect to every parameter, summed over the
    /// samples of `images` (see the [module documentation](self)). Works on any device, with or
    /// without autodiff; the network is not changed.
    ///
    /// # Errors
    /// A block with batch normalisation, which the recurrences do not describe.
    pub fn curvature(&self, images: FeatureMap) -> Result<Curvature, ModelError> {
        if let Some(i) = self.features.iter().position(|b| b.norm.is_some()) {
            return Err(ModelError::invalid(
                format!("model.features[{i}].batch_norm"),
                "the Gauss-Newton curvature (SDLM) does not support batch normalisation",
            ));
        }
        let samples = images.dims()[0];
        let real = self.valid();
        let surrogate = real.clone().map(&mut Squared);
        let mut x = each!(images, |t| t.inner());
        let mut path = each!(x.clone(), |t| t.powi_scalar(2).autodiff());
        for (block, q) in real.features.iter().zip(&surrogate.features) {
            let table = block.connections.as_deref();
            // Convolution: the real pre-activations, and the surrogate's conv(x², W²) + b.
            let a = block.conv.forward_connected(x, table);
            let v = q.conv.forward_connected(path, table);
            let v = through_activation(block.activation, &a, v)?;
            x = each!(a, |t| block.activation.forward(t));
            path = carry(&x, v)?;
            let Some(p) = &block.pool else { continue };
            let pooled = pool(p, x.clone());
            let v = match (p.kind, &block.subsample, &q.subsample) {
                // Routed to each window's maximum: pool the real values, carrying the path.
                (PoolKind::Max, _, _) => pool(
                    p,
                    both!(x.clone(), path.clone(), |x, c| x.autodiff() + c.clone()
                        - c.detach())?,
                ),
                // The mean's weights 1/k, squared.
                (PoolKind::Avg, _, _) => {
                    each!(pool(p, path), |t| t.mul_scalar(1.0 / p.window() as f32))
                }
                (PoolKind::Subsample, Some(sub), Some(qs)) => {
                    let k = p.window() as f32;
                    let coef = sub.coefficient.val();
                    // ∂y/∂x = c: the mean's 1/k times c²·k.
                    let back = coef.clone().powi_scalar(2).mul_scalar(k).autodiff();
                    let (qc, qb) = (qs.coefficient.val(), qs.bias.val());
                    let pre = sub.forward(pooled.clone(), p.window());
                    let v = both!(pool(p, path), pooled.clone(), |c, mean| {
                        per_map(qc.clone()) * mean.mul_scalar(k).powi_scalar(2).autodiff()
                            + per_map(qb.clone())
                            + c * per_map(back.clone())
                    })?;
                    let v = through_activation(block.activation, &pre, v)?;
                    x = each!(pre, |t| block.activation.forward(t));
                    path = carry(&x, v)?;
                    continue;
                }
                (PoolKind::Subsample, _, _) => {
                    return Err(ModelError::Internal(
                        "curvature: a subsampling pool without its coefficients".into(),
                    ))
                }
            };
            x = pooled;
            path = carry(&x, v)?;
        }
        let mut x = x.flatten();
        let mut path = path.flatten();
        for (layer, q) in real.hidden.iter().zip(&surrogate.hidden) {
            let a = layer.forward(x);
            let v = q.forward(path)
                * self
                    .hidden_activation
                    .derivative(a.clone())
                    .powi_scalar(2)
                    .autodiff();
            x = self.hidden_activation.forward(a);
            path = x.clone().powi_scalar(2).autodiff() + v.clone() - v.detach();
        }
        let total = match (&real.output, &surrogate.output) {
            (Output::Linear(layer), Output::Linear(q)) => {
                let p = softmax(layer.forward(x), 1);
                let seed = p.clone() * p.neg().add_scalar(1.0);
                (q.forward(path) * seed.autodiff()).sum()
            }
            (Output::Rbf(rbf), Output::Rbf(_)) => (path * rbf_seed(rbf, x).autodiff()).sum(),
            _ => {
                return Err(ModelError::Internal(
                    "curvature: the surrogate's output layer differs".into(),
                ))
            }
        };
        let sums = GradientsParams::from_grads(total.backward(), &surrogate);
        Ok(Curvature { sums, samples })
    }
}

/// `∂²E/∂x_j²` of the MAP criterion through an RBF layer, per sample: `2 q_J + Var_q(d_·j)`
/// (see the [module documentation](self)).
pub fn rbf_seed(rbf: &Rbf, x: Tensor<2>) -> Tensor<2> {
    let [batch, inputs] = x.dims();
    let classes = rbf.prototypes().len() / inputs;
    let device = x.device();
    let w = Tensor::<1>::from_floats(rbf.prototypes(), &device).reshape([1, classes, inputs]);
    // d_ij = 2 (x_j − w_ij), [batch, classes, inputs]
    let d = (x.clone().reshape([batch, 1, inputs]) - w).mul_scalar(2.0);
    let scores = rbf.forward(x);
    let rubbish = Tensor::<2>::full([batch, 1], -MAP_J, &device);
    let q = softmax(Tensor::cat(vec![scores, rubbish], 1), 1);
    let q_classes = q
        .clone()
        .slice([0..batch, 0..classes])
        .reshape([batch, classes, 1]);
    let q_rubbish = q.slice([0..batch, classes..classes + 1]);
    let mean = (d.clone() * q_classes.clone())
        .sum_dim(1)
        .reshape([batch, inputs]);
    let square = (d.powi_scalar(2) * q_classes)
        .sum_dim(1)
        .reshape([batch, inputs]);
    q_rubbish.mul_scalar(2.0) + square - mean.powi_scalar(2)
}

#[cfg(test)]
#[allow(deprecated)] // ndarray: the reference backend of the comparisons
#[allow(clippy::needless_range_loop)] // the loops index like the formulas they write out
mod tests {
    //! The surrogate against an explicit, independent implementation of the recurrences (plain
    //! loops in `f64` over a small network's weights), and both against finite differences of
    //! that implementation's loss where the Gauss-Newton diagonal is the Hessian's diagonal
    //! exactly: the output layer's weights, and with an RBF output a linear last hidden layer.
    use super::*;
    use crate::{Activation, ModelConfig};
    use burn::tensor::{Device, Distribution};

    /// `f` and `f'` in `f64`, written out independently of [`Activation`].
    fn f(act: Activation, a: f64) -> f64 {
        match act {
            Activation::LecunTanh => 1.7159 * (2.0 * a / 3.0).tanh(),
            Activation::Tanh => a.tanh(),
            Activation::Sigmoid => 1.0 / (1.0 + (-a).exp()),
            Activation::None => a,
            other => unimplemented!("{other:?}"),
        }
    }

    fn df(act: Activation, a: f64) -> f64 {
        match act {
            Activation::LecunTanh => 1.7159 * 2.0 / 3.0 * (1.0 - (2.0 * a / 3.0).tanh().powi(2)),
            Activation::Tanh => 1.0 - a.tanh().powi(2),
            Activation::Sigmoid => f(act, a) * (1.0 - f(act, a)),
            Activation::None => 1.0,
            other => unimplemented!("{other:?}"),
        }
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
        let v: Vec<f32> = t.to_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        v.into_iter().map(f64::from).collect()
    }

    const TABLE: [&[usize]; 3] = [&[0], &[1], &[0, 1]];

    /// The network of the tests: 1×6×6 → conv 2@3×3 (LeCun's tanh) → 2×2 pool of `pool` →
    /// conv 3@2×2 with a connection table (tanh) → dense `hidden` (`hidden_act`) → `output`.
    fn config(
        pool: &str,
        hidden: usize,
        hidden_act: &str,
        output: &str,
        classes: usize,
    ) -> ModelConfig {
        let text = format!(
            r#"
            name = "tiny"
            num_classes = {classes}
            input = {{ channels = 1, size = [6, 6] }}
            [[features]]
            out_channels = 2
            kernel = 3
            activation = "lecun_tanh"
            pool = {{ kind = "{pool}", kernel = 2 }}
            [[features]]
            out_channels = 3
            kernel = 2
            activation = "tanh"
            connections = [[0], [1], [0, 1]]
            [classifier]
            hidden = [{hidden}]
            activation = "{hidden_act}"
            output = "{output}"
            "#
        );
        toml::from_str(&text).unwrap()
    }

    /// The network's parameters in `f64`, as the loops below index them.
    #[derive(Clone)]
    struct Weights {
        w1: Vec<f64>, // [2][1][3][3]
        b1: Vec<f64>,
        coef: Vec<f64>, // subsampling, [2]
        bias: Vec<f64>,
        w2: Vec<f64>, // [3][2][2][2]
        b2: Vec<f64>,
        wh: Vec<f64>, // [3][hidden]
        bh: Vec<f64>,
        wo: Vec<f64>, // [hidden][classes], empty with an RBF output
        bo: Vec<f64>,
    }

    struct Tiny {
        pool: PoolKind,
        hidden_act: Activation,
        hidden: usize,
        classes: usize,
        /// The RBF prototypes, `[classes][hidden]`, if the output is RBF.
        rbf: Option<Vec<f64>>,
    }

    /// What the forward pass of one sample keeps for the backward one.
    struct Pass {
        a1: Vec<f64>,       // [2][4][4]
        y1: Vec<f64>,       // [2][4][4]
        sums: Vec<f64>,     // subsampling: each window's sum, [2][2][2]
        pre: Vec<f64>,      // subsampling: c·sum + b, [2][2][2]
        argmax: Vec<usize>, // max pooling: the index into y1 of each window's maximum
        p1: Vec<f64>,       // [2][2][2]
        a2: Vec<f64>,       // [3]
        y2: Vec<f64>,
        ah: Vec<f64>, // [hidden]
        yh: Vec<f64>,
        out: Vec<f64>, // logits, or the RBF scores −y
    }

    impl Tiny {
        fn forward(&self, w: &Weights, x: &[f64]) -> Pass {
            let (mut a1, mut y1) = (vec![0.0; 32], vec![0.0; 32]);
            for o in 0..2 {
                for i in 0..4 {
                    for j in 0..4 {
                        let mut a = w.b1[o];
                        for u in 0..3 {
                            for v in 0..3 {
                                a += w.w1[o * 9 + u * 3 + v] * x[(i + u) * 6 + j + v];
                            }
                        }
                        a1[o * 16 + i * 4 + j] = a;
                        y1[o * 16 + i * 4 + j] = f(Activation::LecunTanh, a);
                    }
                }
            }
            let (mut sums, mut pre, mut argmax, mut p1) =
                (vec![0.0; 8], vec![0.0; 8], vec![0; 8], vec![0.0; 8]);
            for o in 0..2 {
                for i in 0..2 {
                    for j in 0..2 {
                        let at = o * 4 + i * 2 + j;
                        let window: Vec<usize> = [(0, 0), (0, 1), (1, 0), (1, 1)]
                            .iter()
                            .map(|(di, dj)| o * 16 + (2 * i + di) * 4 + 2 * j + dj)
                            .collect();
                        sums[at] = window.iter().map(|&k| y1[k]).sum();
                        argmax[at] = *window
                            .iter()
                            .max_by(|&&p, &&q| y1[p].total_cmp(&y1[q]))
                            .unwrap();
                        p1[at] = match self.pool {
                            PoolKind::Max => y1[argmax[at]],
                            PoolKind::Avg => sums[at] / 4.0,
                            PoolKind::Subsample => {
                                pre[at] = w.coef[o] * sums[at] + w.bias[o];
                                f(Activation::LecunTanh, pre[at])
                            }
                        };
                    }
                }
            }
            let (mut a2, mut y2) = (vec![0.0; 3], vec![0.0; 3]);
            for o in 0..3 {
                let mut a = w.b2[o];
                for &c in TABLE[o] {
                    for k in 0..4 {
                        a += w.w2[o * 8 + c * 4 + k] * p1[c * 4 + k];
                    }
                }
                a2[o] = a;
                y2[o] = f(Activation::Tanh, a);
            }
            let (mut ah, mut yh) = (vec![0.0; self.hidden], vec![0.0; self.hidden]);
            for k in 0..self.hidden {
                ah[k] = w.bh[k]
                    + (0..3)
                        .map(|j| w.wh[j * self.hidden + k] * y2[j])
                        .sum::<f64>();
                yh[k] = f(self.hidden_act, ah[k]);
            }
            let out = (0..self.classes)
                .map(|m| match &self.rbf {
                    Some(p) => -(0..self.hidden)
                        .map(|k| (yh[k] - p[m * self.hidden + k]).powi(2))
                        .sum::<f64>(),
                    None => {
                        w.bo[m]
                            + (0..self.hidden)
                                .map(|k| w.wo[k * self.classes + m] * yh[k])
                                .sum::<f64>()
                    }
                })
                .collect();
            Pass {
                a1,
                y1,
                sums,
                pre,
                argmax,
                p1,
                a2,
                y2,
                ah,
                yh,
                out,
            }
        }

        /// Cross-entropy of the logits, or the MAP criterion (cross-entropy with one more
        /// score, −j).
        fn loss_of(&self, out: &[f64], target: usize) -> f64 {
            let mut scores = out.to_vec();
            if self.rbf.is_some() {
                scores.push(-f64::from(MAP_J));
            }
            let max = scores.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
            max + z.ln() - scores[target]
        }

        fn loss(&self, w: &Weights, xs: &[Vec<f64>], targets: &[usize]) -> f64 {
            xs.iter()
                .zip(targets)
                .map(|(x, &t)| self.loss_of(&self.forward(w, x).out, t))
                .sum()
        }

        /// LeCun et al. (1998), Appendix C, written out: the diagonal second derivatives,
        /// summed over the samples, in the layout of [`Weights`].
        fn second_derivatives(&self, w: &Weights, xs: &[Vec<f64>], targets: &[usize]) -> Weights {
            let (hd, cl) = (self.hidden, self.classes);
            let mut h = Weights {
                w1: vec![0.0; 18],
                b1: vec![0.0; 2],
                coef: vec![0.0; 2],
                bias: vec![0.0; 2],
                w2: vec![0.0; 24],
                b2: vec![0.0; 3],
                wh: vec![0.0; 3 * hd],
                bh: vec![0.0; hd],
                wo: vec![0.0; w.wo.len()],
                bo: vec![0.0; w.bo.len()],
            };
            for (x, &t) in xs.iter().zip(targets) {
                let p = self.forward(w, x);
                // ∂²E/∂yh: through the output layer, or (RBF) by finite differences of the
                // MAP criterion itself.
                let hyh: Vec<f64> = match &self.rbf {
                    None => {
                        let max = p.out.iter().cloned().fold(f64::MIN, f64::max);
                        let z: f64 = p.out.iter().map(|s| (s - max).exp()).sum();
                        let hz: Vec<f64> = p
                            .out
                            .iter()
                            .map(|s| {
                                let q = (s - max).exp() / z;
                                q * (1.0 - q)
                            })
                            .collect();
                        for m in 0..cl {
                            h.bo[m] += hz[m];
                            for k in 0..hd {
                                h.wo[k * cl + m] += p.yh[k].powi(2) * hz[m];
                            }
                        }
                        (0..hd)
                            .map(|k| (0..cl).map(|m| w.wo[k * cl + m].powi(2) * hz[m]).sum())
                            .collect()
                    }
                    Some(protos) => (0..hd)
                        .map(|k| {
                            let e = |d: f64| {
                                let mut yh = p.yh.clone();
                                yh[k] += d;
                                let out: Vec<f64> = (0..cl)
                                    .map(|m| {
                                        -(0..hd)
                                            .map(|j| (yh[j] - protos[m * hd + j]).powi(2))
                                            .sum::<f64>()
                                    })
                                    .collect();
                                self.loss_of(&out, t)
                            };
                            let step = 1e-4;
                            (e(step) - 2.0 * e(0.0) + e(-step)) / (step * step)
                        })
                        .collect(),
                };
                let hah: Vec<f64> = (0..hd)
                    .map(|k| df(self.hidden_act, p.ah[k]).powi(2) * hyh[k])
                    .collect();
                let mut hy2 = [0.0; 3];
                for k in 0..hd {
                    h.bh[k] += hah[k];
                    for j in 0..3 {
                        h.wh[j * hd + k] += p.y2[j].powi(2) * hah[k];
                        hy2[j] += w.wh[j * hd + k].powi(2) * hah[k];
                    }
                }
                let mut hp1 = [0.0; 8];
                for o in 0..3 {
                    let ha2 = df(Activation::Tanh, p.a2[o]).powi(2) * hy2[o];
                    h.b2[o] += ha2;
                    for &c in TABLE[o] {
                        for k in 0..4 {
                            h.w2[o * 8 + c * 4 + k] += p.p1[c * 4 + k].powi(2) * ha2;
                            hp1[c * 4 + k] += w.w2[o * 8 + c * 4 + k].powi(2) * ha2;
                        }
                    }
                }
                let mut hy1 = [0.0; 32];
                for o in 0..2 {
                    for i in 0..2 {
                        for j in 0..2 {
                            let at = o * 4 + i * 2 + j;
                            let window = [(0, 0), (0, 1), (1, 0), (1, 1)]
                                .map(|(di, dj)| o * 16 + (2 * i + di) * 4 + 2 * j + dj);
                            match self.pool {
                                PoolKind::Max => hy1[p.argmax[at]] += hp1[at],
                                PoolKind::Avg => {
                                    window.iter().for_each(|&k| hy1[k] += hp1[at] / 16.0)
                                }
                                PoolKind::Subsample => {
                                    let hpre =
                                        df(Activation::LecunTanh, p.pre[at]).powi(2) * hp1[at];
                                    h.coef[o] += p.sums[at].powi(2) * hpre;
                                    h.bias[o] += hpre;
                                    window
                                        .iter()
                                        .for_each(|&k| hy1[k] += w.coef[o].powi(2) * hpre);
                                }
                            }
                        }
                    }
                }
                for o in 0..2 {
                    for i in 0..4 {
                        for j in 0..4 {
                            let ha1 = df(Activation::LecunTanh, p.a1[o * 16 + i * 4 + j]).powi(2)
                                * hy1[o * 16 + i * 4 + j];
                            h.b1[o] += ha1;
                            for u in 0..3 {
                                for v in 0..3 {
                                    h.w1[o * 9 + u * 3 + v] += x[(i + u) * 6 + j + v].powi(2) * ha1;
                                }
                            }
                        }
                    }
                }
                let _ = &p.y1;
            }
            h
        }
    }

    /// Builds the test network on ndarray with random weights (and subsampling coefficients
    /// away from their 1/4 start), a batch of 3 random images and targets.
    fn setup(
        pool: PoolKind,
        hidden: usize,
        act: Activation,
        rbf: bool,
    ) -> (ConvNet, Tiny, Weights, Tensor<4>, Vec<Vec<f64>>, Vec<usize>) {
        let device = Device::ndarray();
        device.seed(7);
        let pool_name = match pool {
            PoolKind::Max => "max",
            PoolKind::Avg => "avg",
            PoolKind::Subsample => "subsample",
        };
        let classes = if rbf { 10 } else { 4 };
        let config = config(
            pool_name,
            hidden,
            act.name(),
            if rbf { "rbf" } else { "linear" },
            classes,
        );
        let mut net = config.init(&device).unwrap();
        if let Some(sub) = &mut net.features[0].subsample {
            sub.coefficient = Param::from_tensor(Tensor::from_floats([0.7, -0.45], &device));
            sub.bias = Param::from_tensor(Tensor::from_floats([0.1, -0.2], &device));
        }
        let images = Tensor::<4>::random([3, 1, 6, 6], Distribution::Uniform(-1.0, 1.2), &device);
        let xs: Vec<Vec<f64>> = values(images.clone())
            .chunks(36)
            .map(|c| c.to_vec())
            .collect();
        let targets = vec![1, 3, 0];
        let conv = |i: usize| match &net.features[i].conv {
            crate::Conv::D2(c) => (
                values(c.weight.val()),
                values(c.bias.as_ref().unwrap().val()),
            ),
            _ => unreachable!(),
        };
        let ((w1, b1), (w2, b2)) = (conv(0), conv(1));
        let (coef, bias) = match &net.features[0].subsample {
            Some(s) => (values(s.coefficient.val()), values(s.bias.val())),
            None => (vec![0.0; 2], vec![0.0; 2]),
        };
        let (wo, bo) = match &net.output {
            Output::Linear(l) => (
                values(l.weight.val()),
                values(l.bias.as_ref().unwrap().val()),
            ),
            Output::Rbf(_) => (vec![], vec![]),
        };
        let weights = Weights {
            w1,
            b1,
            coef,
            bias,
            w2,
            b2,
            wh: values(net.hidden[0].weight.val()),
            bh: values(net.hidden[0].bias.as_ref().unwrap().val()),
            wo,
            bo,
        };
        let tiny = Tiny {
            pool,
            hidden_act: act,
            hidden,
            classes,
            rbf: match &net.output {
                Output::Rbf(r) => Some(r.prototypes().iter().map(|&v| f64::from(v)).collect()),
                Output::Linear(_) => None,
            },
        };
        // The loops read the weights as the network uses them.
        let scores = values(net.forward_2d(images.clone()));
        for (n, x) in xs.iter().enumerate() {
            let out = tiny.forward(&weights, x).out;
            for m in 0..classes {
                assert!(
                    (out[m] - scores[n * classes + m]).abs() < 1e-4,
                    "sample {n} class {m}"
                );
            }
        }
        (net, tiny, weights, images, xs, targets)
    }

    /// The network's curvature in the layout of [`Weights`].
    fn surrogate(net: &ConvNet, images: Tensor<4>) -> Weights {
        let c = net.curvature(FeatureMap::D2(images)).unwrap();
        assert_eq!(c.samples, 3);
        let get4 = |p: &Param<Tensor<4>>| values(c.sums.get::<4>(p.id).unwrap());
        let get2 = |p: &Param<Tensor<2>>| values(c.sums.get::<2>(p.id).unwrap());
        let get1 =
            |p: &Option<Param<Tensor<1>>>| values(c.sums.get::<1>(p.as_ref().unwrap().id).unwrap());
        let conv = |i: usize| match &net.features[i].conv {
            crate::Conv::D2(conv) => (get4(&conv.weight), get1(&conv.bias)),
            _ => unreachable!(),
        };
        let ((w1, b1), (w2, b2)) = (conv(0), conv(1));
        let (coef, bias) = match &net.features[0].subsample {
            Some(s) => (
                values(c.sums.get::<1>(s.coefficient.id).unwrap()),
                values(c.sums.get::<1>(s.bias.id).unwrap()),
            ),
            None => (vec![0.0; 2], vec![0.0; 2]),
        };
        let (wo, bo) = match &net.output {
            Output::Linear(l) => (get2(&l.weight), get1(&l.bias)),
            Output::Rbf(_) => (vec![], vec![]),
        };
        Weights {
            w1,
            b1,
            coef,
            bias,
            w2,
            b2,
            wh: get2(&net.hidden[0].weight),
            bh: get1(&net.hidden[0].bias),
            wo,
            bo,
        }
    }

    fn fields(w: &Weights) -> Vec<(&'static str, &Vec<f64>)> {
        vec![
            ("conv1.weight", &w.w1),
            ("conv1.bias", &w.b1),
            ("subsample.coefficient", &w.coef),
            ("subsample.bias", &w.bias),
            ("conv2.weight", &w.w2),
            ("conv2.bias", &w.b2),
            ("hidden.weight", &w.wh),
            ("hidden.bias", &w.bh),
            ("output.weight", &w.wo),
            ("output.bias", &w.bo),
        ]
    }

    fn assert_close(name: &str, got: &[f64], want: &[f64], rel: f64) {
        assert_eq!(got.len(), want.len(), "{name}");
        let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= rel * scale,
                "{name}[{i}]: surrogate {g}, expected {w}"
            );
        }
    }

    /// Every layer (weight sharing, max/average/subsampling pools, the connection table, the
    /// dense layers, both outputs) against the recurrences written out.
    #[test]
    fn the_surrogate_back_propagates_appendix_c() {
        for (pool, rbf) in [
            (PoolKind::Max, false),
            (PoolKind::Avg, false),
            (PoolKind::Subsample, false),
            (PoolKind::Subsample, true),
        ] {
            let hidden = if rbf { 84 } else { 5 };
            let (net, tiny, weights, images, xs, targets) =
                setup(pool, hidden, Activation::Sigmoid, rbf);
            let want = tiny.second_derivatives(&weights, &xs, &targets);
            let got = surrogate(&net, images);
            for ((name, g), (_, w)) in fields(&got).into_iter().zip(fields(&want)) {
                assert_close(&format!("{pool:?}, rbf {rbf}: {name}"), g, w, 2e-3);
            }
            // The connection table: kernels left out have no entry that matters, but the
            // connected ones all got a positive second derivative.
            assert!(got.w1.iter().chain(&got.wh).all(|&v| v > 0.0));
        }
    }

    /// Finite differences of the loss where the Gauss-Newton diagonal is exact: the output
    /// layer under cross-entropy, and the last hidden layer (linear) under the MAP criterion.
    #[test]
    fn exact_where_gauss_newton_is_exact() {
        let fd = |tiny: &Tiny,
                  w: &Weights,
                  xs: &[Vec<f64>],
                  t: &[usize],
                  pick: &dyn Fn(&mut Weights) -> &mut Vec<f64>| {
            let n = pick(&mut w.clone()).len();
            (0..n)
                .map(|i| {
                    let e = |d: f64| {
                        let mut v = w.clone();
                        pick(&mut v)[i] += d;
                        tiny.loss(&v, xs, t)
                    };
                    let step = 1e-3;
                    (e(step) - 2.0 * e(0.0) + e(-step)) / (step * step)
                })
                .collect::<Vec<f64>>()
        };
        type Pick = fn(&mut Weights) -> &mut Vec<f64>;
        /// Pooling, hidden units, hidden nonlinearity, RBF output, the parameters checked.
        type Case = (PoolKind, usize, Activation, bool, [(&'static str, Pick); 2]);
        let cases: [Case; 2] = [
            (
                PoolKind::Max,
                5,
                Activation::Sigmoid,
                false,
                [
                    ("output.weight", |w| &mut w.wo),
                    ("output.bias", |w| &mut w.bo),
                ],
            ),
            (
                PoolKind::Subsample,
                84,
                Activation::None,
                true,
                [
                    ("hidden.weight", |w| &mut w.wh),
                    ("hidden.bias", |w| &mut w.bh),
                ],
            ),
        ];
        for (pool, hidden, act, rbf, checks) in cases {
            let (net, tiny, w, images, xs, t) = setup(pool, hidden, act, rbf);
            let mut got = surrogate(&net, images);
            for (name, pick) in checks {
                let want = fd(&tiny, &w, &xs, &t, &pick);
                assert_close(name, pick(&mut got), &want, 1e-3);
            }
        }
    }

    /// The same numbers on flex's kernels (with autodiff, as in training) as on ndarray.
    #[test]
    fn flex_and_ndarray_agree() {
        let config = crate::preset("lenet5-1998").unwrap();
        let ndarray = Device::ndarray();
        ndarray.seed(3);
        let built = config.init(&ndarray).unwrap();
        let images =
            Tensor::<4>::random([4, 1, 32, 32], Distribution::Uniform(-0.1, 1.175), &ndarray);
        let mut sums = vec![];
        for device in [Device::flex().autodiff(), ndarray] {
            let net = built.clone().to_device(&device);
            let x = images.clone().to_device(&device);
            let c = net.curvature(FeatureMap::D2(x)).unwrap();
            let crate::Conv::D2(c1) = &net.features[0].conv else {
                unreachable!()
            };
            let crate::Conv::D2(c3) = &net.features[1].conv else {
                unreachable!()
            };
            sums.push((
                values(c.sums.get::<4>(c1.weight.id).unwrap()),
                values(c.sums.get::<4>(c3.weight.id).unwrap()),
                values(c.sums.get::<2>(net.hidden[0].weight.id).unwrap()),
            ));
        }
        let (a, b) = (&sums[0], &sums[1]);
        assert_close("C1", &a.0, &b.0, 1e-3);
        assert_close("C3", &a.1, &b.1, 1e-3);
        assert_close("F6", &a.2, &b.2, 1e-3);
    }
}
