//! 2D convolution (cross-correlation, groups 1) on `f32` NCHW slices: forward, and the gradients
//! of the input, the weights and the bias. Each image is unfolded into a matrix of patches
//! (im2col: one row per kernel tap `(c, kh, kw)`, one column per output position), so that the
//! three passes are three matrix products per image:
//!
//! - forward: `y[n] = W · col[n] + bias`, with `W` the `[out, in·kh·kw]` weights;
//! - weights: `dW = Σ_n dy[n] · col[n]ᵀ`, bias: `db = Σ_n Σ_p dy[n, :, p]`;
//! - input: `dcol[n] = Wᵀ · dy[n]`, folded back onto the image (col2im, adding overlaps).
//!
//! Images are spread over rayon's threads; each product runs on one thread. The weight gradient
//! is summed over a fixed split of the batch (ranges of [`IMAGES_PER_RANGE`] images), then across
//! the ranges in order, so its rounding depends neither on scheduling nor on the number of
//! threads.

use rayon::prelude::*;

use crate::buffer::{par_chunks_zeroed, sum};
use crate::direct;
use crate::gemm::{matmul, View};
use crate::linear::{self, LinearGeometry};
use crate::pool::{PoolGeometry, PoolKind, PoolSpec};

/// How a pass is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// im2col and a matrix product per image: every geometry, every machine (and everywhere
    /// with `LENET_KERNELS=im2col`).
    Im2col,
    /// The direct kernels (`src/direct.rs`): x86-64 with AVX2 and FMA.
    Direct,
    /// A kernel that covers the whole input (one output position, no padding, no dilation: the
    /// classic network's C5) is a dense layer: one matrix product for a range of images instead
    /// of a matrix-vector product per image.
    Dense,
}

impl Method {
    /// The method [`forward`] and [`backward_weight`] use for `g` on this machine: [`Dense`]
    /// where it applies, else the direct kernels where the machine has AVX2 and FMA (measured
    /// faster than im2col on every LeNet convolution: `examples/kernel_timing.rs`, figures in
    /// `docs/performance.md`).
    ///
    /// [`Dense`]: Method::Dense
    pub fn chosen(g: &ConvGeometry) -> Method {
        if g.is_dense() {
            Method::Dense
        } else if crate::avx2_fma() && crate::direct_enabled() {
            Method::Direct
        } else {
            Method::Im2col
        }
    }

    /// The method [`backward_input`] uses for `g`: the direct one needs stride 1, and is only
    /// used where the output is at least as large as the kernel (otherwise the padded output
    /// gradient it reads is mostly zeros).
    pub fn chosen_for_input_grad(g: &ConvGeometry) -> Method {
        let large = g
            .out_size()
            .is_some_and(|[oh, ow]| oh >= g.kernel[0] && ow >= g.kernel[1]);
        match Method::chosen(g) {
            Method::Direct if !(large && direct::input_grad_applies(g)) => Method::Im2col,
            method => method,
        }
    }
}

/// The geometry of one convolution: input `[batch, in_channels, height, width]`, weights
/// `[out_channels, in_channels, kernel[0], kernel[1]]`. `padding[a]` is (before, after) along
/// axis `a` (0 = height, 1 = width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub in_size: [usize; 2],
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [[usize; 2]; 2],
    pub dilation: [usize; 2],
}

impl ConvGeometry {
    /// `floor((I + before + after - D·(K-1) - 1) / S) + 1` per axis; `None` when the dilated
    /// kernel does not fit in the padded input or a stride or dilation is zero.
    pub fn out_size(&self) -> Option<[usize; 2]> {
        let axis = |a: usize| {
            let padded = self.in_size[a] + self.padding[a][0] + self.padding[a][1];
            let span = self.dilation[a].checked_mul(self.kernel[a].checked_sub(1)?)? + 1;
            if self.stride[a] == 0 || self.dilation[a] == 0 || padded < span {
                return None;
            }
            Some((padded - span) / self.stride[a] + 1)
        };
        Some([axis(0)?, axis(1)?])
    }

    /// Kernel taps per output value: `in_channels · kh · kw`.
    pub fn taps(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    /// Whether the kernel covers the whole input, unpadded and undilated: one output position
    /// whose taps are the image itself, so that the convolution is a dense layer.
    pub fn is_dense(&self) -> bool {
        self.kernel == self.in_size && self.padding == [[0, 0], [0, 0]] && self.dilation == [1, 1]
    }

    pub(crate) fn image_len(&self) -> usize {
        self.in_channels * self.in_size[0] * self.in_size[1]
    }

    fn out_positions(&self) -> usize {
        let [oh, ow] = self.out();
        oh * ow
    }

    pub(crate) fn out(&self) -> [usize; 2] {
        self.out_size()
            .expect("ConvGeometry: kernel larger than the padded input (checked by the caller)")
    }

    /// The output columns `ow` whose input column `ow·stride + offset` lies inside `0..size`.
    fn valid_range(size: usize, out: usize, stride: usize, offset: isize) -> (usize, usize) {
        let lo = if offset >= 0 {
            0
        } else {
            ((-offset) as usize).div_ceil(stride)
        };
        let last = size as isize - 1 - offset;
        let hi = if last < 0 {
            0
        } else {
            (last as usize / stride + 1).min(out)
        };
        (lo.min(hi), hi)
    }

    /// Visits every output row of every kernel tap: `f(row)` with where the row's `ow` values
    /// sit in the unfolded matrix (`taps × out_positions`, row-major) and where they come from
    /// in the image. The one traversal behind [`Self::im2col`] and its adjoint [`Self::col2im`].
    #[inline(always)]
    fn tap_rows(&self, mut f: impl FnMut(TapRow)) {
        let [h, w] = self.in_size;
        let [oh, ow] = self.out();
        let positions = oh * ow;
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.stride;
        let [dh, dw] = self.dilation;
        let (top, left) = (self.padding[0][0] as isize, self.padding[1][0] as isize);
        for c in 0..self.in_channels {
            for i in 0..kh {
                for j in 0..kw {
                    let tap = (c * kh + i) * kw + j;
                    let col_offset = (j * dw) as isize - left;
                    let (lo, hi) = Self::valid_range(w, ow, sw, col_offset);
                    for y in 0..oh {
                        let ih = (y * sh + i * dh) as isize - top;
                        let inside = ih >= 0 && ih < h as isize && lo < hi;
                        f(TapRow {
                            col: tap * positions + y * ow,
                            input: inside.then(|| (c * h + ih as usize) * w),
                            lo,
                            hi,
                            start: ((lo * sw) as isize + col_offset).max(0) as usize,
                        });
                    }
                }
            }
        }
    }

    /// Unfolds one image `[c, h, w]` into `col` (`taps × out_positions`, row-major).
    fn im2col(&self, image: &[f32], col: &mut [f32]) {
        let [_, ow] = self.out();
        let sw = self.stride[1];
        self.tap_rows(|r| {
            let dst = &mut col[r.col..r.col + ow];
            let Some(input) = r.input else {
                dst.fill(0.0);
                return;
            };
            let n = r.hi - r.lo;
            if sw == 1 && n == ow {
                // The common case (no padding on this tap's columns): one copy.
                copy_short(dst, &image[input + r.start..][..ow]);
                return;
            }
            dst[..r.lo].fill(0.0);
            dst[r.hi..].fill(0.0);
            let src = &image[input + r.start..];
            if sw == 1 {
                copy_short(&mut dst[r.lo..r.hi], &src[..n]);
            } else {
                for (k, d) in dst[r.lo..r.hi].iter_mut().enumerate() {
                    *d = src[k * sw];
                }
            }
        });
    }

    /// Adds the columns of `col` back onto one image `[c, h, w]` (the adjoint of [`Self::im2col`]).
    fn col2im(&self, col: &[f32], image: &mut [f32]) {
        let sw = self.stride[1];
        self.tap_rows(|r| {
            let Some(input) = r.input else { return };
            let src = &col[r.col + r.lo..r.col + r.hi];
            let dst = &mut image[input + r.start..];
            if sw == 1 {
                for (d, s) in dst[..src.len()].iter_mut().zip(src) {
                    *d += s;
                }
            } else {
                for (k, s) in src.iter().enumerate() {
                    dst[k * sw] += s;
                }
            }
        });
    }
}

/// One output row of one kernel tap (see [`ConvGeometry::tap_rows`]).
struct TapRow {
    /// Where the row's values start in the unfolded matrix.
    col: usize,
    /// Where the input row starts in the image, or `None` when the whole row is padding.
    input: Option<usize>,
    /// The output columns `lo..hi` that read the input; the rest read padding.
    lo: usize,
    hi: usize,
    /// The input column read by output column `lo`.
    start: usize,
}

/// `dst.copy_from_slice(src)` for the short rows of im2col (5 to 30 values in LeNets) without a
/// call to `memcpy`, whose fixed cost dominated such copies.
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let n = dst.len().min(src.len());
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            let chunk: [f32; 8] = src[i..i + 8].try_into().unwrap_or([0.0; 8]);
            dst[i..i + 8].copy_from_slice(&chunk);
            i += 8;
        }
        // The last 8 values, overlapping the previous chunk when n is not a multiple of 8.
        let chunk: [f32; 8] = src[n - 8..n].try_into().unwrap_or([0.0; 8]);
        dst[n - 8..n].copy_from_slice(&chunk);
    } else if n >= 4 {
        let head: [f32; 4] = src[..4].try_into().unwrap_or([0.0; 4]);
        let tail: [f32; 4] = src[n - 4..n].try_into().unwrap_or([0.0; 4]);
        dst[..4].copy_from_slice(&head);
        dst[n - 4..n].copy_from_slice(&tail);
    } else {
        for (d, s) in dst[..n].iter_mut().zip(&src[..n]) {
            *d = *s;
        }
    }
}

/// A nonlinearity fused into the convolution: applied to each image while it is in cache, and
/// its gradient (computed from its output) applied per image inside the backward products.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// No nonlinearity.
    None,
    /// `max(0, x)`, NaN kept (Burn's and PyTorch's).
    Relu,
    /// `outer · tanh(inner · x)`: `tanh` is (1, 1), LeCun's scaled tanh (1.7159, 2/3).
    Tanh { outer: f32, inner: f32 },
    /// `1 / (1 + e^-x)`.
    Sigmoid,
}

impl Activation {
    /// Applies the nonlinearity to `values` in place (one loop per kind, so that each is a
    /// plain loop the compiler can vectorise), with 8-lane AVX2 vectors where the machine has
    /// them (measured: the SSE loop a plain build gets was 30 % of the classic network's
    /// inference, `perf record` of `lenet bench --inference --preset lenet5-classic`). The same
    /// operations on each value either way, so the same results.
    pub(crate) fn apply_all(self, values: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::avx2_fma() {
            // SAFETY: AVX2 and FMA are present (checked).
            unsafe { self.apply_all_avx2(values) };
            return;
        }
        self.apply_all_here(values);
    }

    /// [`Self::apply_all`] compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn apply_all_avx2(self, values: &mut [f32]) {
        use std::arch::x86_64::*;
        if self != Activation::Relu {
            self.apply_all_here(values);
            return;
        }
        // ReLU as a blend: left to itself the compiler stores the zeros with masked stores
        // (`vmaskmovps`), which are slow on AMD's cores (measured: 17 % of LeNet-5's inference).
        // Kept where `v > 0` or NaN (an unordered "not less or equal"), as `Activation::apply`.
        let mut chunks = values.chunks_exact_mut(8);
        for chunk in &mut chunks {
            // SAFETY: AVX2 is present (the caller's promise); `chunk` holds 8 values.
            unsafe {
                let v = _mm256_loadu_ps(chunk.as_ptr());
                let keep = _mm256_cmp_ps::<_CMP_NLE_UQ>(v, _mm256_setzero_ps());
                _mm256_storeu_ps(chunk.as_mut_ptr(), _mm256_and_ps(v, keep));
            }
        }
        self.apply_all_here(chunks.into_remainder());
    }

    #[inline(always)]
    fn apply_all_here(self, values: &mut [f32]) {
        match self {
            Activation::None => {}
            Activation::Relu => values
                .iter_mut()
                .for_each(|v| *v = Activation::Relu.apply(*v)),
            Activation::Tanh { outer, inner } => values
                .iter_mut()
                .for_each(|v| *v = Activation::Tanh { outer, inner }.apply(*v)),
            Activation::Sigmoid => values
                .iter_mut()
                .for_each(|v| *v = Activation::Sigmoid.apply(*v)),
        }
    }

    /// The gradients before the nonlinearity, from `dy` after it and its `output`, into `out`
    /// (with AVX2 vectors where the machine has them, as [`Self::apply_all`]).
    pub(crate) fn backward_all(self, output: &[f32], dy: &[f32], out: &mut Vec<f32>) {
        #[cfg(target_arch = "x86_64")]
        if crate::avx2_fma() {
            // SAFETY: AVX2 and FMA are present (checked).
            unsafe { self.backward_all_avx2(output, dy, out) };
            return;
        }
        self.backward_all_here(output, dy, out);
    }

    /// [`Self::backward_all`] in place: `d` holds the gradients after the nonlinearity and gets
    /// those before it (the same operations on each value).
    pub(crate) fn backward_in_place(self, output: &[f32], d: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::avx2_fma() {
            // SAFETY: AVX2 and FMA are present (checked).
            unsafe { self.backward_in_place_avx2(output, d) };
            return;
        }
        self.backward_in_place_here(output, d);
    }

    /// [`Self::backward_in_place`] compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn backward_in_place_avx2(self, output: &[f32], d: &mut [f32]) {
        self.backward_in_place_here(output, d);
    }

    #[inline(always)]
    fn backward_in_place_here(self, output: &[f32], d: &mut [f32]) {
        assert_eq!(output.len(), d.len());
        let pairs = d.iter_mut().zip(output);
        match self {
            Activation::None => {}
            Activation::Relu => pairs.for_each(|(d, &y)| *d = Activation::Relu.backward(y, *d)),
            Activation::Tanh { outer, inner } => {
                pairs.for_each(|(d, &y)| *d = Activation::Tanh { outer, inner }.backward(y, *d))
            }
            Activation::Sigmoid => {
                pairs.for_each(|(d, &y)| *d = Activation::Sigmoid.backward(y, *d))
            }
        }
    }

    /// [`Self::backward_all`] compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn backward_all_avx2(self, output: &[f32], dy: &[f32], out: &mut Vec<f32>) {
        self.backward_all_here(output, dy, out);
    }

    #[inline(always)]
    fn backward_all_here(self, output: &[f32], dy: &[f32], out: &mut Vec<f32>) {
        out.clear();
        let pairs = output.iter().zip(dy);
        match self {
            Activation::None => out.extend_from_slice(dy),
            Activation::Relu => out.extend(pairs.map(|(&y, &d)| Activation::Relu.backward(y, d))),
            Activation::Tanh { outer, inner } => {
                out.extend(pairs.map(|(&y, &d)| Activation::Tanh { outer, inner }.backward(y, d)))
            }
            Activation::Sigmoid => {
                out.extend(pairs.map(|(&y, &d)| Activation::Sigmoid.backward(y, d)))
            }
        }
    }

    #[inline(always)]
    fn apply(self, v: f32) -> f32 {
        match self {
            Activation::None => v,
            Activation::Relu => {
                if v.is_nan() || v > 0.0 {
                    v
                } else {
                    0.0
                }
            }
            // The same operations in the same order as Burn's `tanh(x · inner) · outer`.
            Activation::Tanh { outer, inner } => tanh(v * inner) * outer,
            Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
        }
    }

    /// The gradient before the nonlinearity from `d` after it and its output `y`.
    #[inline(always)]
    fn backward(self, y: f32, d: f32) -> f32 {
        match self {
            Activation::None => d,
            Activation::Relu => {
                if y.is_nan() || y > 0.0 {
                    d
                } else {
                    0.0
                }
            }
            // `d · outer · (1 - (y/outer)²) · inner`, without a division.
            Activation::Tanh { outer, inner } => d * (inner / outer) * (outer * outer - y * y),
            Activation::Sigmoid => d * y * (1.0 - y),
        }
    }
}

/// `tanh(x)` as a rational function, vectorised by the compiler (the C library's `tanhf` is
/// one call per value, and was most of the time the fused nonlinearity took in the classic
/// network). Eigen's `generic_fast_tanh_float`: a [13/6] rational approximation on
/// [-7.9053, 7.9053], clamped outside (where `tanh` is 1 to within f32 precision). Its error
/// against `f64::tanh`, checked by `the_fast_tanh_is_within_its_error_bound` on every 1/4096 of
/// [-10, 10]: below 5e-7 absolute (4.2e-7 measured, a few float steps near ±1, against about
/// one for `tanhf`; near ±1 it can step back by as much between neighbouring floats); odd,
/// within [-1, 1], exactly ±1 far out; NaN stays NaN.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const ALPHA: [f32; 7] = [
        4.893_524_6e-3,
        6.372_619_3e-4,
        1.485_722_4e-5,
        5.122_297e-8,
        -8.604_672e-11,
        2.000_188e-13,
        -2.760_768_5e-16,
    ];
    const BETA: [f32; 4] = [4.893_525e-3, 2.268_434_6e-3, 1.185_347_1e-4, 1.198_258_4e-6];
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let mut p = ALPHA[6];
    for a in ALPHA[..6].iter().rev() {
        p = p * x2 + a;
    }
    let mut q = BETA[3];
    for b in BETA[..3].iter().rev() {
        q = q * x2 + b;
    }
    // The approximation overshoots 1 by a float step or two just below the clamp; ±1 bounds
    // it, as the nonlinearity's gradient `1 - t²` needs.
    (x * p / q).clamp(-1.0, 1.0)
}

/// The forward pass: `[batch, out_channels, oh, ow]` from `x` and `weight` (and `bias`),
/// followed by `activation`, and pooled by `pool` where given (`[batch, out_channels, ph, pw]`
/// then: each image's output pooled while it is in cache, the same values as
/// [`crate::pool::forward`] on the whole output).
pub fn forward(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    pool: Option<PoolSpec>,
) -> Vec<f32> {
    forward_with(Method::chosen(g), g, x, weight, bias, activation, pool)
}

/// [`forward`] by the given method.
///
/// # Panics
/// With [`Method::Dense`] where [`ConvGeometry::is_dense`] is false, or with pooling tiles that
/// do not fit the output.
pub fn forward_with(
    method: Method,
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    pool: Option<PoolSpec>,
) -> Vec<f32> {
    let (taps, positions) = (g.taps(), g.out_positions());
    let out_len = g.out_channels * positions;
    assert_eq!(x.len(), g.batch * g.image_len(), "conv forward: input size");
    assert_eq!(
        weight.len(),
        g.out_channels * taps,
        "conv forward: weight size"
    );
    let pooled = pool.map(|p| {
        assert!(
            p.fits(g.out()),
            "conv forward: pooling tiles larger than the output"
        );
        (
            p.kind,
            p.geometry(&[g.out_channels, 1, g.out()[0], g.out()[1]]),
        )
    });
    match method {
        Method::Direct => return direct::forward(g, x, weight, bias, activation, pooled),
        Method::Dense => {
            let y = dense_forward(g, x, weight, bias, activation);
            return match pool {
                Some(p) => {
                    let shape = [g.batch, g.out_channels, g.out()[0], g.out()[1]];
                    crate::pool::forward(&p.geometry(&shape), p.kind, &y)
                }
                None => y,
            };
        }
        Method::Im2col => {}
    }
    let image_out = pooled.map_or(out_len, |(_, pg)| pg.planes * pg.out_len());
    if image_out == 0 || taps == 0 {
        return vec![0.0; g.batch * image_out];
    }
    let w = View::rows(weight, g.out_channels, taps);
    let image_len = g.image_len();
    par_chunks_zeroed(
        g.batch * image_out,
        image_out,
        || (vec![0.0f32; taps * positions], Vec::new()),
        |(col, unpooled), n, y| {
            g.im2col(&x[n * image_len..(n + 1) * image_len], col);
            let out = match pooled {
                Some(_) => {
                    unpooled.resize(out_len, 0.0);
                    unpooled.as_mut_slice()
                }
                None => &mut *y,
            };
            matmul(out, w, View::rows(col, taps, positions), false);
            bias_and_activation(out, positions, bias, activation);
            if let Some((kind, pg)) = pooled {
                pg.planes_here(kind, unpooled, y);
            }
        },
    )
}

/// Adds each output channel's bias to its plane of `positions` values in `y`, then applies the
/// nonlinearity: a convolution's epilogue, one image at a time.
pub(crate) fn bias_and_activation(
    y: &mut [f32],
    positions: usize,
    bias: Option<&[f32]>,
    activation: Activation,
) {
    if let Some(bias) = bias {
        for (plane, b) in y.chunks_mut(positions.max(1)).zip(bias) {
            plane.iter_mut().for_each(|v| *v += b);
        }
    }
    activation.apply_all(y);
}

/// The gradient of a convolution's output, `[batch, out, oh, ow]`: `dy` as given, or taken back
/// through what the convolution fused after it, one image at a time while it is in cache: the
/// pooling (`dy` is then the pooled maps' gradient), then the nonlinearity (using its `output`).
#[derive(Debug, Clone, Copy)]
pub struct OutputGrad<'a> {
    pub dy: &'a [f32],
    pub activated: Option<(Activation, &'a [f32])>,
    pub pooled: Option<Pooled<'a>>,
}

/// The pooling fused after a convolution where gradients are tracked: `geometry` is one image's
/// planes (`planes` = the output channels), `input` the convolution's (activated) output and
/// `output` the pooled maps, both for every image (max pooling reads them to find each tile's
/// winner; average pooling reads neither).
#[derive(Debug, Clone, Copy)]
pub struct Pooled<'a> {
    pub kind: PoolKind,
    pub geometry: PoolGeometry,
    pub input: &'a [f32],
    pub output: &'a [f32],
}

impl OutputGrad<'_> {
    /// Checks the sizes against `batch` images of `len` output values each.
    fn check(&self, batch: usize, len: usize) {
        let dy_len = match self.pooled {
            Some(p) => {
                let pooled = p.geometry.planes * p.geometry.out_len();
                assert_eq!(
                    p.geometry.planes * p.geometry.plane_len(),
                    len,
                    "conv backward: pooling size"
                );
                assert_eq!(
                    p.output.len(),
                    batch * pooled,
                    "conv backward: pooled output size"
                );
                if p.kind == PoolKind::Max {
                    assert_eq!(
                        p.input.len(),
                        batch * len,
                        "conv backward: pooled input size"
                    );
                }
                batch * pooled
            }
            None => batch * len,
        };
        assert_eq!(self.dy.len(), dy_len, "conv backward: gradient size");
        if let Some((_, output)) = self.activated {
            assert_eq!(output.len(), batch * len, "conv backward: output size");
        }
    }

    /// The gradient of image `n`'s output (`len` values), computed into `scratch` where the
    /// convolution fused a pooling or a nonlinearity.
    pub(crate) fn image<'s>(
        &'s self,
        n: usize,
        len: usize,
        scratch: &'s mut Vec<f32>,
    ) -> &'s [f32] {
        let Some(p) = self.pooled else {
            let dy = &self.dy[n * len..(n + 1) * len];
            let Some((activation, output)) = self.activated else {
                return dy;
            };
            activation.backward_all(&output[n * len..(n + 1) * len], dy, scratch);
            return scratch;
        };
        let pooled = p.geometry.planes * p.geometry.out_len();
        let (dy, y) = (
            &self.dy[n * pooled..][..pooled],
            &p.output[n * pooled..][..pooled],
        );
        let x = match p.kind {
            PoolKind::Max => &p.input[n * len..][..len],
            PoolKind::Avg => &[],
        };
        scratch.clear();
        scratch.resize(len, 0.0);
        p.geometry.backward_planes_here(p.kind, x, y, dy, scratch);
        if let Some((activation, output)) = self.activated {
            activation.backward_in_place(&output[n * len..(n + 1) * len], scratch);
        }
        scratch
    }
}

/// Images per range of the weight gradient's split of the batch.
pub const IMAGES_PER_RANGE: usize = 8;

/// Splits `0..n` into contiguous ranges of [`IMAGES_PER_RANGE`] images (the last one shorter).
/// The split depends on `n` only, never on the number of threads, so that the sum's rounding is
/// the same on every machine; there are several ranges per thread at the usual batch sizes (8
/// at batch 64), so that a thread slowed down by the machine hands work to the others.
pub(crate) fn split(n: usize) -> Vec<std::ops::Range<usize>> {
    (0..n.div_ceil(IMAGES_PER_RANGE).max(1))
        .map(|p| (p * IMAGES_PER_RANGE).min(n)..((p + 1) * IMAGES_PER_RANGE).min(n))
        .collect()
}

/// The weight gradient `[out, in, kh, kw]` and the bias gradient `[out]`, from the input `x` and
/// the output gradient `dy`. The images are unfolded again rather than kept from the forward
/// pass: keeping them was measured slower (fresh memory every step, read back from outside the
/// cache), 5,100-6,800 against 7,100-7,800 images/s for LeNet-5 at batch 64.
pub fn backward_weight(g: &ConvGeometry, x: &[f32], dy: OutputGrad<'_>) -> (Vec<f32>, Vec<f32>) {
    backward_weight_with(Method::chosen(g), g, x, dy)
}

/// [`backward_weight`] by the given method.
///
/// # Panics
/// With [`Method::Dense`] where [`ConvGeometry::is_dense`] is false.
pub fn backward_weight_with(
    method: Method,
    g: &ConvGeometry,
    x: &[f32],
    dy: OutputGrad<'_>,
) -> (Vec<f32>, Vec<f32>) {
    let (taps, positions) = (g.taps(), g.out_positions());
    let out_len = g.out_channels * positions;
    assert_eq!(
        x.len(),
        g.batch * g.image_len(),
        "conv backward: input size"
    );
    dy.check(g.batch, out_len);
    match method {
        Method::Direct => return direct::backward_weight(g, x, dy),
        Method::Dense => return dense_backward_weight(g, x, dy),
        Method::Im2col => {}
    }
    let partials: Vec<(Vec<f32>, Vec<f32>)> = split(g.batch)
        .into_par_iter()
        .map(|images| {
            let mut dw_t = vec![0.0f32; taps * g.out_channels];
            let mut db = vec![0.0f32; g.out_channels];
            let mut col = vec![0.0f32; taps * positions];
            let mut masked = Vec::new();
            for n in images {
                let grad = dy.image(n, out_len, &mut masked);
                g.im2col(&x[n * g.image_len()..(n + 1) * g.image_len()], &mut col);
                // dWᵀ += col · dyᵀ, accumulated transposed: in this orientation the matrix
                // product copies the small `dy` into its blocks rather than gathering the large
                // `col` one value at a time (measured: the weight gradient of LeNet-5's second
                // convolution at batch 64 went from 1.14 to 0.67 ms).
                matmul(
                    &mut dw_t,
                    View::rows(&col, taps, positions),
                    View::transposed(grad, g.out_channels, positions),
                    true,
                );
                for (b, row) in db.iter_mut().zip(grad.chunks(positions.max(1))) {
                    *b += sum(row);
                }
            }
            let mut dw = vec![0.0f32; g.out_channels * taps];
            for (t, row) in dw_t.chunks(g.out_channels.max(1)).enumerate() {
                for (o, v) in row.iter().enumerate() {
                    dw[o * taps + t] = *v;
                }
            }
            (dw, db)
        })
        .collect();
    sum_in_order(partials, g.out_channels * taps, g.out_channels)
}

/// The weight and bias gradients of the ranges of a batch, summed in the ranges' order (the
/// rounding then depends on the split alone); zeros of `weights` and `biases` values for none.
pub(crate) fn sum_in_order(
    partials: Vec<(Vec<f32>, Vec<f32>)>,
    weights: usize,
    biases: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut parts = partials.into_iter();
    let (mut dw, mut db) = parts
        .next()
        .unwrap_or_else(|| (vec![0.0; weights], vec![0.0; biases]));
    for (pw, pb) in parts {
        dw.iter_mut().zip(&pw).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(&pb).for_each(|(a, b)| *a += b);
    }
    (dw, db)
}

/// The input gradient `[batch, in, h, w]` from the weights and the output gradient `dy`.
pub fn backward_input(g: &ConvGeometry, weight: &[f32], dy: OutputGrad<'_>) -> Vec<f32> {
    backward_input_with(Method::chosen_for_input_grad(g), g, weight, dy)
}

/// [`backward_input`] by the given method.
///
/// # Panics
/// With [`Method::Direct`] for a stride other than 1, or a padding wider than the dilated
/// kernel's span; with [`Method::Dense`] where [`ConvGeometry::is_dense`] is false.
pub fn backward_input_with(
    method: Method,
    g: &ConvGeometry,
    weight: &[f32],
    dy: OutputGrad<'_>,
) -> Vec<f32> {
    let (taps, positions) = (g.taps(), g.out_positions());
    let out_len = g.out_channels * positions;
    assert_eq!(
        weight.len(),
        g.out_channels * taps,
        "conv backward: weight size"
    );
    dy.check(g.batch, out_len);
    match method {
        Method::Direct => return direct::backward_input(g, weight, dy),
        Method::Dense => return dense_backward_input(g, weight, dy),
        Method::Im2col => {}
    }
    if g.image_len() == 0 {
        return Vec::new();
    }
    let wt = View::transposed(weight, g.out_channels, taps);
    par_chunks_zeroed(
        g.batch * g.image_len(),
        g.image_len(),
        || (vec![0.0f32; taps * positions], Vec::new()),
        |(col, masked), n, image| {
            let grad = dy.image(n, out_len, masked);
            matmul(col, wt, View::rows(grad, g.out_channels, positions), false);
            g.col2im(col, image);
        },
    )
}

/// [`Method::Dense`]'s forward pass: `y[n] = W · x[n] + b`, the dense layers' product with the
/// `[out, taps]` kernels transposed.
fn dense_forward(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
) -> Vec<f32> {
    assert!(g.is_dense(), "conv: not a dense geometry");
    let (taps, out) = (g.taps(), g.out_channels);
    let dense = LinearGeometry {
        batch: g.batch,
        inputs: taps,
        outputs: out,
    };
    let wt = View::transposed(weight, out, taps);
    linear::forward_with(&dense, x, wt, bias, activation)
}

/// [`Method::Dense`]'s weight and bias gradients: `dW = dyᵀ · x` and `db = Σ dy` over the whole
/// batch, in blocks of [`DENSE_ROWS`] output channels.
fn dense_backward_weight(g: &ConvGeometry, x: &[f32], dy: OutputGrad<'_>) -> (Vec<f32>, Vec<f32>) {
    assert!(g.is_dense(), "conv: not a dense geometry");
    let (taps, out, batch) = (g.taps(), g.out_channels, g.batch);
    // Every image's output gradient (through what the convolution fused), then one product
    // over the whole batch per block of output channels: each weight's and bias's gradient is
    // summed by one task over the images in order, so its rounding depends on neither the
    // threads nor the scheduling. Measured against one product per range of 8 images (products
    // with 8 terms, and 32 partial gradients of 48,000 values summed on the calling thread at
    // batch 256): the classic network's C5 weight gradient 1.14 → 0.37 ms (docs/performance.md).
    let grad = par_chunks_zeroed(batch * out, out.max(1), Vec::new, |masked, n, part| {
        part.copy_from_slice(dy.image(n, out, masked))
    });
    let mut dw = vec![0.0f32; out * taps];
    let mut db = vec![0.0f32; out];
    if taps == 0 || out == 0 {
        return (dw, db);
    }
    dw.par_chunks_mut(DENSE_ROWS * taps)
        .zip(db.par_chunks_mut(DENSE_ROWS))
        .enumerate()
        .for_each(|(block, (dw, db))| {
            let (first, rows) = (block * DENSE_ROWS, db.len());
            let dy_t = View {
                data: &grad[first..],
                rows,
                cols: batch,
                row_stride: 1,
                col_stride: out,
            };
            matmul(dw, dy_t, View::rows(x, batch, taps), false);
            for (k, b) in db.iter_mut().enumerate() {
                *b = grad[first + k..].iter().step_by(out).sum();
            }
        });
    (dw, db)
}

/// Output channels per task of the dense method's weight gradient (the `gemm` crate's f32
/// kernels take 16 rows at a time).
const DENSE_ROWS: usize = 16;

/// [`Method::Dense`]'s input gradient: `dx = dy · W` for ranges of images at a time.
fn dense_backward_input(g: &ConvGeometry, weight: &[f32], dy: OutputGrad<'_>) -> Vec<f32> {
    assert!(g.is_dense(), "conv: not a dense geometry");
    let (taps, out) = (g.taps(), g.out_channels);
    if taps == 0 {
        return Vec::new();
    }
    let w = View::rows(weight, out, taps);
    par_chunks_zeroed(
        g.batch * taps,
        linear::IMAGES * taps,
        || (),
        |_, r, dx| {
            let first = r * linear::IMAGES;
            let count = dx.len() / taps;
            let mut grad = Vec::with_capacity(count * out);
            let mut masked = Vec::new();
            for n in first..first + count {
                grad.extend_from_slice(dy.image(n, out, &mut masked));
            }
            matmul(dx, View::rows(&grad, count, out), w, false);
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PoolKind;

    /// Direct definition of the cross-correlation, for comparison.
    fn naive_forward(g: &ConvGeometry, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
        let [oh, ow] = g.out_size().unwrap();
        let [h, wd] = g.in_size;
        let mut y = vec![0.0; g.batch * g.out_channels * oh * ow];
        for n in 0..g.batch {
            for o in 0..g.out_channels {
                for i in 0..oh {
                    for j in 0..ow {
                        let mut acc = b.map_or(0.0, |b| b[o]);
                        for c in 0..g.in_channels {
                            for p in 0..g.kernel[0] {
                                for q in 0..g.kernel[1] {
                                    let r = (i * g.stride[0] + p * g.dilation[0]) as isize
                                        - g.padding[0][0] as isize;
                                    let s = (j * g.stride[1] + q * g.dilation[1]) as isize
                                        - g.padding[1][0] as isize;
                                    if r < 0 || s < 0 || r >= h as isize || s >= wd as isize {
                                        continue;
                                    }
                                    acc += x[((n * g.in_channels + c) * h + r as usize) * wd
                                        + s as usize]
                                        * w[((o * g.in_channels + c) * g.kernel[0] + p)
                                            * g.kernel[1]
                                            + q];
                                }
                            }
                        }
                        y[((n * g.out_channels + o) * oh + i) * ow + j] = acc;
                    }
                }
            }
        }
        y
    }

    /// One image, one channel in and out, stride 1, no padding or dilation.
    fn one_channel(in_size: [usize; 2], kernel: [usize; 2]) -> ConvGeometry {
        ConvGeometry {
            batch: 1,
            in_channels: 1,
            in_size,
            out_channels: 1,
            kernel,
            stride: [1, 1],
            padding: [[0, 0], [0, 0]],
            dilation: [1, 1],
        }
    }

    /// The founding document's example: the X pattern against the kernel W/9 (products sum to
    /// 7, mean 0.77...), with no kernel flip.
    #[test]
    fn the_x_pattern_gives_seven_ninths() {
        let g = one_channel([3, 3], [3, 3]);
        let w: Vec<f32> = [1., -1., -1., -1., 1., -1., -1., -1., 1.]
            .iter()
            .map(|v| v / 9.0)
            .collect();
        let x = [-1., -1., -1., -1., 1., -1., -1., -1., 1.];
        let y = forward(&g, &x, &w, None, Activation::None, None);
        assert!((y[0] - 7.0 / 9.0).abs() < 1e-6, "{y:?}");
        // No flip: a kernel with one tap in its top-left corner picks the top-left value.
        let x = [0.5, 1.0, 0.3, 0.9, 0.8, 0.7, 0.6, 0.88, 1.25];
        let mut k = [0.0; 9];
        k[0] = 1.0;
        assert_eq!(forward(&g, &x, &k, None, Activation::None, None), vec![0.5]);
    }

    /// The founding document's 4×4 pooling example through a 1×1 identity convolution with
    /// the pooling fused in: (max, mean) per 2×2 region (32, 15), (19, 14), (20, 11), (27, 16),
    /// by im2col and by the direct kernels (positions in the lanes, pooled from their rows).
    #[test]
    fn the_fused_pooling_gives_the_documented_four_regions() {
        let x = crate::pool::tests::DOCUMENT_4X4;
        let g = one_channel([4, 4], [1, 1]);
        let mut methods = vec![Method::Im2col];
        if crate::avx2_fma() {
            methods.push(Method::Direct);
        } else {
            lenet_data::testing::unavailable("no AVX2 and FMA: the direct kernels are not tested");
        }
        for method in methods {
            let pooled = |kind| {
                let pool = Some(PoolSpec {
                    kind,
                    kernel: [2, 2],
                });
                forward_with(method, &g, &x, &[1.0], None, Activation::None, pool)
            };
            assert_eq!(
                pooled(PoolKind::Max),
                vec![32., 19., 20., 27.],
                "{method:?}"
            );
            assert_eq!(
                pooled(PoolKind::Avg),
                vec![15., 14., 11., 16.],
                "{method:?}"
            );
        }
    }

    #[test]
    fn output_sizes_follow_the_formula() {
        let mut g = one_channel([7, 7], [3, 3]);
        assert_eq!(g.out_size(), Some([5, 5]));
        g.stride = [2, 2];
        assert_eq!(g.out_size(), Some([3, 3]));
        g.dilation = [3, 3];
        assert_eq!(g.out_size(), Some([1, 1]));
        g.dilation = [4, 4];
        assert_eq!(g.out_size(), None);
        g.padding = [[1, 0], [0, 1]];
        assert_eq!(g.out_size(), None);
        g.padding = [[1, 1], [2, 0]];
        assert_eq!(g.out_size(), Some([1, 1]));
    }

    #[test]
    fn forward_matches_the_definition_with_stride_padding_and_dilation() {
        let g = ConvGeometry {
            batch: 2,
            in_channels: 3,
            in_size: [9, 8],
            out_channels: 4,
            kernel: [3, 2],
            stride: [2, 1],
            padding: [[1, 2], [0, 1]],
            dilation: [1, 2],
        };
        let x: Vec<f32> = (0..2 * 3 * 9 * 8)
            .map(|i| ((i * 37) % 11) as f32 - 5.0)
            .collect();
        let w: Vec<f32> = (0..4 * 3 * 3 * 2)
            .map(|i| ((i * 13) % 7) as f32 * 0.5)
            .collect();
        let b = [0.5, -1.0, 2.0, 0.0];
        assert_eq!(
            forward(&g, &x, &w, Some(&b), Activation::None, None),
            naive_forward(&g, &x, &w, Some(&b))
        );
    }

    #[test]
    fn the_fused_relu_zeroes_negatives_keeps_nan_and_masks_the_gradient() {
        let g = one_channel([2, 2], [1, 1]);
        let x = [-1.0, 2.0, f32::NAN, 0.0];
        let y = forward(&g, &x, &[1.0], None, Activation::Relu, None);
        assert_eq!((y[0], y[1], y[3]), (0.0, 2.0, 0.0));
        assert!(y[2].is_nan());
        let dy = OutputGrad {
            dy: &[5.0, 6.0, 7.0, 8.0],
            activated: Some((Activation::Relu, &y)),
            pooled: None,
        };
        assert_eq!(dy.image(0, 4, &mut Vec::new()), &[0.0, 6.0, 7.0, 0.0]);
    }

    #[test]
    fn the_fast_tanh_is_within_its_error_bound() {
        let mut worst = 0.0f64;
        for i in -40_960..=40_960 {
            let x = i as f32 / 4096.0;
            let want = (x as f64).tanh();
            let got = tanh(x) as f64;
            worst = worst.max((got - want).abs());
        }
        assert!(worst < 5e-7, "largest error {worst:e}");
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(100.0), 1.0);
        assert_eq!(tanh(-100.0), -1.0);
        assert!(tanh(f32::NAN).is_nan());
        // Odd and within [-1, 1] on a fine grid.
        for i in -20_000..=20_000 {
            let x = i as f32 / 2000.0;
            let t = tanh(x);
            assert_eq!(tanh(-x), -t);
            assert!((-1.0..=1.0).contains(&t), "tanh({x}) = {t}");
        }
    }

    /// A kernel as large as its input is computed as a dense layer, with the same values as
    /// im2col (which `forward_matches_the_definition…` and the tests against Burn check).
    #[test]
    fn a_kernel_covering_the_input_is_a_dense_layer() {
        // 7 output channels: one block of the weight gradient; 40: blocks of 16, 16 and 8.
        for out in [7, 40] {
            let g = ConvGeometry {
                batch: 45,
                in_channels: 3,
                in_size: [5, 4],
                out_channels: out,
                kernel: [5, 4],
                stride: [2, 3],
                padding: [[0, 0], [0, 0]],
                dilation: [1, 1],
            };
            assert!(g.is_dense() && Method::chosen(&g) == Method::Dense);
            assert_eq!(Method::chosen_for_input_grad(&g), Method::Dense);
            for not_dense in [
                ConvGeometry {
                    padding: [[1, 0], [0, 0]],
                    ..g
                },
                ConvGeometry {
                    kernel: [4, 4],
                    ..g
                },
            ] {
                assert!(!not_dense.is_dense());
            }
            let x: Vec<f32> = (0..45 * 60)
                .map(|i| ((i * 37) % 23) as f32 / 7.0 - 1.5)
                .collect();
            let w: Vec<f32> = (0..out * 60)
                .map(|i| ((i * 11) % 13) as f32 / 9.0 - 0.7)
                .collect();
            let b: Vec<f32> = (0..out).map(|i| i as f32 * 0.1 - 0.3).collect();
            let dy: Vec<f32> = (0..45 * out)
                .map(|i| ((i * 5) % 17) as f32 / 8.0 - 1.0)
                .collect();
            let close = |a: &[f32], b: &[f32], what: &str| {
                assert_eq!(a.len(), b.len());
                for (i, (p, q)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (p - q).abs() <= 1e-4 * q.abs().max(1.0),
                        "{what} {i}: {p} vs {q}"
                    );
                }
            };
            let act = Activation::Sigmoid;
            let y = forward_with(Method::Dense, &g, &x, &w, Some(&b), act, None);
            let want = forward_with(Method::Im2col, &g, &x, &w, Some(&b), act, None);
            close(&y, &want, "forward");
            let grad = OutputGrad {
                dy: &dy,
                activated: Some((act, &want)),
                pooled: None,
            };
            let (dw, db) = backward_weight_with(Method::Dense, &g, &x, grad);
            let (want_dw, want_db) = backward_weight_with(Method::Im2col, &g, &x, grad);
            close(&dw, &want_dw, "weight gradient");
            close(&db, &want_db, "bias gradient");
            let dx = backward_input_with(Method::Dense, &g, &w, grad);
            close(
                &dx,
                &backward_input_with(Method::Im2col, &g, &w, grad),
                "input gradient",
            );
        }
    }

    /// A pooling fused into the backward pass gives, to the bit, the gradients of the two steps
    /// run one after the other (the pooling's backward pass over the whole batch, then the
    /// convolution's with its nonlinearity): the same operations on each value.
    #[test]
    fn a_fused_pooling_gives_the_gradients_of_the_separate_steps() {
        // LeNet-5's second convolution (8×8 output), and a 7×7 output whose last row and
        // column no tile covers.
        let lenet = ConvGeometry {
            batch: 10,
            in_channels: 6,
            in_size: [12, 12],
            out_channels: 16,
            kernel: [5, 5],
            stride: [1, 1],
            padding: [[0, 0], [0, 0]],
            dilation: [1, 1],
        };
        let odd = ConvGeometry {
            batch: 9,
            in_channels: 2,
            in_size: [7, 7],
            out_channels: 5,
            kernel: [3, 3],
            padding: [[1, 1], [1, 1]],
            ..lenet
        };
        for g in [lenet, odd] {
            let [oh, ow] = g.out();
            let x: Vec<f32> = (0..g.batch * g.image_len())
                .map(|i| ((i * 37) % 23) as f32 / 7.0 - 1.5)
                .collect();
            let w: Vec<f32> = (0..g.out_channels * g.taps())
                .map(|i| ((i * 11) % 13) as f32 / 9.0 - 0.7)
                .collect();
            let b: Vec<f32> = (0..g.out_channels).map(|i| i as f32 * 0.1 - 0.3).collect();
            for kind in [PoolKind::Max, PoolKind::Avg] {
                for act in [
                    Activation::Relu,
                    Activation::Tanh {
                        outer: 1.7159,
                        inner: 2.0 / 3.0,
                    },
                ] {
                    let y = forward(&g, &x, &w, Some(&b), act, None);
                    let all = PoolGeometry {
                        planes: g.batch * g.out_channels,
                        size: [oh, ow],
                        kernel: [2, 2],
                    };
                    let p = crate::pool::forward(&all, kind, &y);
                    let dp: Vec<f32> = (0..p.len())
                        .map(|i| ((i * 5) % 17) as f32 / 8.0 - 1.0)
                        .collect();
                    let dy = match kind {
                        PoolKind::Max => crate::pool::max_backward(&all, &y, &p, &dp),
                        PoolKind::Avg => crate::pool::avg_backward(&all, &dp),
                    };
                    let separate = OutputGrad {
                        dy: &dy,
                        activated: Some((act, &y)),
                        pooled: None,
                    };
                    let fused = OutputGrad {
                        dy: &dp,
                        activated: Some((act, &y)),
                        pooled: Some(Pooled {
                            kind,
                            geometry: PoolGeometry {
                                planes: g.out_channels,
                                ..all
                            },
                            input: &y,
                            output: &p,
                        }),
                    };
                    let what = format!("{kind:?} {act:?} {:?}", g.in_size);
                    for method in [Method::chosen(&g), Method::Im2col] {
                        assert_eq!(
                            backward_weight_with(method, &g, &x, fused),
                            backward_weight_with(method, &g, &x, separate),
                            "weight gradient, {method:?}, {what}"
                        );
                    }
                    for method in [Method::chosen_for_input_grad(&g), Method::Im2col] {
                        assert_eq!(
                            backward_input_with(method, &g, &w, fused),
                            backward_input_with(method, &g, &w, separate),
                            "input gradient, {method:?}, {what}"
                        );
                    }
                }
            }
        }
    }

    /// The weight gradient is the same to the bit whatever the number of threads: the batch is
    /// split by image count, never by thread count.
    #[test]
    fn the_weight_gradient_does_not_depend_on_the_thread_count() {
        assert_eq!(split(20), vec![0..8, 8..16, 16..20]);
        assert_eq!(split(0), vec![0..0]);
        let g = ConvGeometry {
            batch: 37,
            in_channels: 3,
            in_size: [10, 9],
            out_channels: 5,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [[1, 1], [1, 1]],
            dilation: [1, 1],
        };
        let x: Vec<f32> = (0..37 * 3 * 10 * 9)
            .map(|i| ((i * 7919) % 1013) as f32 / 101.3 - 5.0)
            .collect();
        let dy_values: Vec<f32> = (0..37 * 5 * 10 * 9)
            .map(|i| ((i * 104_729) % 997) as f32 / 99.7 - 5.0)
            .collect();
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let dy = OutputGrad {
                    dy: &dy_values,
                    activated: None,
                    pooled: None,
                };
                backward_weight(&g, &x, dy)
            })
        };
        let one = on(1);
        for threads in [2, 3, 8] {
            assert!(on(threads) == one, "{threads} threads differ from 1");
        }
    }

    /// The vector loops of `apply_all` / `backward_all` (AVX2 where present, ReLU as a blend)
    /// give each value what the scalar definition gives it, bit for bit: NaN, signed zeros,
    /// infinities, the clamp of the fast tanh, and lengths that leave a remainder.
    #[test]
    fn the_vector_nonlinearities_equal_the_scalar_definition() {
        let mut values = vec![
            f32::NAN,
            -0.0,
            0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-40,
            -1e-40,
        ];
        values.extend((0..60).map(|i| (i as f32 - 30.0) * 0.37));
        let kinds = [
            Activation::Relu,
            Activation::Sigmoid,
            Activation::Tanh {
                outer: 1.0,
                inner: 1.0,
            },
            Activation::Tanh {
                outer: 1.7159,
                inner: 2.0 / 3.0,
            },
        ];
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for kind in kinds {
            for len in [0, 1, 7, 8, 9, 31, values.len()] {
                let mut got = values[..len].to_vec();
                kind.apply_all(&mut got);
                let want: Vec<f32> = values[..len].iter().map(|&v| kind.apply(v)).collect();
                assert_eq!(bits(&got), bits(&want), "{kind:?}, {len} values");
                let dy: Vec<f32> = (0..len).map(|i| i as f32 * 0.25 - 3.0).collect();
                let mut grads = Vec::new();
                kind.backward_all(&want, &dy, &mut grads);
                let want_grads: Vec<f32> = want
                    .iter()
                    .zip(&dy)
                    .map(|(&y, &d)| kind.backward(y, d))
                    .collect();
                assert_eq!(
                    bits(&grads),
                    bits(&want_grads),
                    "{kind:?} gradient, {len} values"
                );
            }
        }
        assert_eq!(bits(&[Activation::Relu.apply(-0.0)]), bits(&[0.0]));
        assert!(Activation::Relu.apply(f32::NAN).is_nan());
    }
}
