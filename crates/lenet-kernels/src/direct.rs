//! Direct convolution (no im2col) on x86-64 with AVX2 and FMA: the three passes of
//! [`crate::conv`] as register-blocked products that read the (padded) image in place.
//!
//! Every pass is a product with one operand gathered out of an image: `A[p][t] = src[pos[p] +
//! tap[t]]`, rows the output positions `p`, columns the kernel taps `t = (c, i, j)`, with
//! `pos`/`tap` the offsets of a position and of a tap in the padded image. The other operand
//! and the result keep their channels in the lanes of 8-float vectors (`[·][o8]`, channels
//! padded with zeros to a multiple of 8):
//!
//! - forward: `out[p][o] = Σ_t A[p][t] · w[t][o]` (then transposed to `[o][p]` with the bias
//!   and the nonlinearity);
//! - weight gradient: `dw[t][o] += Σ_p A[p][t] · dy[p][o]`;
//! - input gradient (stride 1): the forward pass of `dy`, padded by `D·(K-1) - P`, with the
//!   kernel flipped and its channel axes swapped (the "full" correlation).
//!
//! Why our own: im2col wrote every image out `taps` times and the `gemm` crate packed it again
//! before its products, for matrices as small as LeNet's (16 × 150 × 100 in the second
//! convolution); reading the image in place halves the memory traffic and needs no packing.
//! The A/B figures are in `docs/performance.md`.

use rayon::prelude::*;

use crate::buffer::{par_chunks_zeroed, sum};
use crate::conv::{bias_and_activation, split, sum_in_order, Activation, ConvGeometry, OutputGrad};
use crate::pool::{PoolGeometry, PoolKind};

/// Floats per vector (AVX2).
const LANES: usize = 8;

/// Whether the input gradient can be computed as a direct forward pass: stride 1, and padding
/// no wider than the dilated kernel minus one on every side.
pub(crate) fn input_grad_applies(g: &ConvGeometry) -> bool {
    g.stride == [1, 1]
        && (0..2).all(|a| {
            let span = g.dilation[a] * (g.kernel[a] - 1);
            g.padding[a][0] <= span && g.padding[a][1] <= span
        })
}

fn round_up(n: usize) -> usize {
    n.div_ceil(LANES) * LANES
}

/// An image layout for the gathered operand: `channels` planes of `size` (after padding), read
/// by a kernel of `kernel` taps with `dilation`, at output positions `out` spaced by `stride`.
struct Gather {
    size: [usize; 2],
    /// Offset of each tap `(c, i, j)` in the padded image.
    tap: Vec<usize>,
    /// Offset of each output position `(y, x)` in the padded image.
    pos: Vec<usize>,
    /// The largest tap offset and the largest position offset.
    last_tap: usize,
    last_pos: usize,
}

impl Gather {
    fn new(
        channels: usize,
        size: [usize; 2],
        kernel: [usize; 2],
        dilation: [usize; 2],
        out: [usize; 2],
        stride: [usize; 2],
    ) -> Gather {
        let [h, w] = size;
        let mut tap = Vec::with_capacity(channels * kernel[0] * kernel[1]);
        for c in 0..channels {
            for i in 0..kernel[0] {
                for j in 0..kernel[1] {
                    tap.push(c * h * w + i * dilation[0] * w + j * dilation[1]);
                }
            }
        }
        let mut pos = Vec::with_capacity(out[0] * out[1]);
        for y in 0..out[0] {
            for x in 0..out[1] {
                pos.push(y * stride[0] * w + x * stride[1]);
            }
        }
        let last_tap = tap.iter().copied().max().unwrap_or(0);
        let last_pos = pos.iter().copied().max().unwrap_or(0);
        Gather {
            size,
            tap,
            pos,
            last_tap,
            last_pos,
        }
    }

    /// The number of values a padded image holds.
    fn len(&self, channels: usize) -> usize {
        channels * self.size[0] * self.size[1]
    }

    /// How many values the products read: every `pos[p] + tap[t]` is below it.
    fn reach(&self) -> usize {
        self.last_pos + self.last_tap + 1
    }
}

/// Zeros after a padded image: the kernels with positions in the lanes read whole vectors of a
/// row, up to 15 values past its end (into the next row, or here after the last one).
const SLACK: usize = 16;

/// Copies `image` (`channels` planes of `size`) into `padded` with `padding` zeros around, and
/// [`SLACK`] zeros after.
fn pad(
    image: &[f32],
    channels: usize,
    size: [usize; 2],
    padding: [[usize; 2]; 2],
    padded: &mut Vec<f32>,
) {
    let [h, w] = size;
    let (ph, pw) = (
        h + padding[0][0] + padding[0][1],
        w + padding[1][0] + padding[1][1],
    );
    padded.clear();
    padded.resize(channels * ph * pw + SLACK, 0.0);
    for c in 0..channels {
        for y in 0..h {
            let dst = (c * ph + y + padding[0][0]) * pw + padding[1][0];
            padded[dst..dst + w].copy_from_slice(&image[(c * h + y) * w..][..w]);
        }
    }
}

/// Weights `[out][taps]` as `[taps][round_up(out)]` (zeros in the padded lanes).
fn pack_weights(weight: &[f32], out: usize, taps: usize) -> Vec<f32> {
    let o8 = round_up(out);
    let mut packed = vec![0.0; taps * o8];
    for o in 0..out {
        for t in 0..taps {
            packed[t * o8 + o] = weight[o * taps + t];
        }
    }
    packed
}

/// Which operand goes in the vector lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lanes {
    /// Eight output channels per vector: for convolutions with 8 channels or more.
    Channels,
    /// Eight neighbouring output positions of a row per vector: for fewer channels (LeNet-5's
    /// first convolution has 6, whose input gradient would have 1), where channel vectors
    /// would be mostly empty. Needs stride 1 along the width.
    Positions,
}

impl Lanes {
    fn for_conv(out_channels: usize, stride_w: usize) -> Lanes {
        if out_channels < LANES && stride_w == 1 {
            Lanes::Positions
        } else {
            Lanes::Channels
        }
    }
}

/// A correlation of padded images with packed weights, for one image at a time:
/// `out[o][p] = Σ_t src[pos[p] + tap[t]] · w[t][o]`. The forward pass, and the input gradient
/// as the forward pass of the output gradient.
struct Correlation {
    channels: usize,
    out_channels: usize,
    out: [usize; 2],
    stride: [usize; 2],
    gather: Gather,
    /// `[taps][round_up(out_channels)]`.
    packed: Vec<f32>,
    lanes: Lanes,
}

impl Correlation {
    /// `out` (`out_channels × positions`) from one padded image `src`, through `product`.
    fn run(&self, src: &[f32], product: &mut Vec<f32>, out: &mut [f32]) {
        let [oh, ow] = self.out;
        let positions = oh * ow;
        let o8 = round_up(self.out_channels);
        assert!(src.len() >= self.gather.len(self.channels) + SLACK);
        assert!(out.len() == self.out_channels * positions);
        match self.lanes {
            Lanes::Channels => {
                // Every value is written by `gather_times`: no need to clear it.
                product.resize(positions * o8, 0.0);
                gather_times(src, &self.gather, &self.packed, o8, product);
                for (o, row) in out.chunks_mut(positions).enumerate() {
                    for (p, v) in row.iter_mut().enumerate() {
                        *v = product[p * o8 + o];
                    }
                }
            }
            Lanes::Positions => {
                let wide = self.positions_product(src, product);
                for (o, plane) in out.chunks_mut(positions).enumerate() {
                    for (y, row) in plane.chunks_mut(ow).enumerate() {
                        row.copy_from_slice(&product[(o * oh + y) * wide..][..ow]);
                    }
                }
            }
        }
    }

    /// [`Lanes::Positions`]: `product` `[out_channels][oh][wide]` (resized), whose columns past
    /// `ow` are not part of the output; returns `wide`.
    fn positions_product(&self, src: &[f32], product: &mut Vec<f32>) -> usize {
        let [oh, ow] = self.out;
        let wide = ow.next_multiple_of(2 * LANES);
        product.resize(self.out_channels * oh * wide, 0.0);
        self.rows(src, product, wide);
        wide
    }

    /// [`Lanes::Positions`]: `product[o][y][x]` for `x < wide`, the columns past `ow` read
    /// past the row's end (ignored).
    fn rows(&self, src: &[f32], product: &mut [f32], wide: usize) {
        let [oh, _] = self.out;
        let row_stride = self.stride[0] * self.gather.size[1];
        // The farthest read: the last row's last vector at the last tap, plus a vector.
        assert!(
            oh == 0 || (oh - 1) * row_stride + wide + self.gather.last_tap <= src.len(),
            "direct conv: rows past the padded image"
        );
        assert!(product.len() >= self.out_channels * oh * wide && self.stride[1] == 1);
        #[cfg(target_arch = "x86_64")]
        if crate::avx2_fma() {
            // SAFETY: AVX2 and FMA are present; every read `y·row_stride + x + tap[t]` with
            // `x < wide` stays inside `src` (asserted above), the packed weights hold
            // `taps × round_up(out_channels)` values and `product` `out_channels × oh × wide`.
            unsafe {
                avx2::rows(
                    src,
                    &self.gather.tap,
                    oh,
                    row_stride,
                    wide,
                    &self.packed,
                    self.out_channels,
                    product,
                )
            };
            return;
        }
        unreachable!("the direct kernels need AVX2 and FMA (checked by conv::Method)");
    }
}

/// Values per block of [`Scatter`]'s products: two 8-float vectors (measured: 16-float AVX-512
/// vectors, three a block, were no faster on the Ice Lake machine).
const SCATTER_CHUNK: usize = 2 * LANES;

/// The input gradient (stride 1) with positions in the lanes, for few input channels: each
/// output gradient value times each tap's weights, added into the padded input's gradient at
/// the tap's offset. Both images are laid out with the padded input's row width, so that a
/// tap's contribution to every position is one vector operation over the flattened plane; only
/// the columns between the output's width and that width are products with zeros (4 of 14 in
/// LeNet-5's second convolution), where the forward pass of the zero-padded output gradient
/// (`Correlation`) multiplies zeros at about half of its products there (a padded border of 4
/// around 10 × 10) and fills 14 of 16 lanes a row.
struct Scatter {
    channels: usize,
    out_channels: usize,
    /// The output gradient's planes, `[oh, ow]`, and the padded input's row width.
    out: [usize; 2],
    width: usize,
    /// The input's size and its top and left padding.
    size: [usize; 2],
    padding: [usize; 2],
    /// The output gradient's flattened plane (`oh × width`, rounded up to [`SCATTER_CHUNK`]).
    plane: usize,
    /// The padded input gradient's plane: `plane` plus the farthest tap offset.
    reach: usize,
    /// Offset of each tap `(i, j)` in the padded input.
    offsets: Vec<usize>,
    /// `weight[o][c][i][j]` as `[(i, j)][o][c]`.
    packed: Vec<f32>,
}

impl Scatter {
    fn new(g: &ConvGeometry, weight: &[f32]) -> Scatter {
        let [oh, ow] = g.out();
        let [kh, kw] = g.kernel;
        let (o, c) = (g.out_channels, g.in_channels);
        let width = g.in_size[1] + g.padding[1][0] + g.padding[1][1];
        let mut offsets = Vec::with_capacity(kh * kw);
        for i in 0..kh {
            for j in 0..kw {
                offsets.push(i * g.dilation[0] * width + j * g.dilation[1]);
            }
        }
        let mut packed = vec![0.0; kh * kw * o * c];
        for oo in 0..o {
            for cc in 0..c {
                for t in 0..kh * kw {
                    packed[(t * o + oo) * c + cc] = weight[(oo * c + cc) * kh * kw + t];
                }
            }
        }
        let plane = (oh * width).next_multiple_of(SCATTER_CHUNK);
        let reach = plane + offsets.iter().copied().max().unwrap_or(0);
        Scatter {
            channels: c,
            out_channels: o,
            out: [oh, ow],
            width,
            size: g.in_size,
            padding: [g.padding[0][0], g.padding[1][0]],
            plane,
            reach,
            offsets,
            packed,
        }
    }

    /// One image's input gradient `dx` (`channels × h × w`) from its output gradient `dy`
    /// (`out_channels × oh × ow`), through `wide` and `acc`.
    fn run(&self, dy: &[f32], wide: &mut Vec<f32>, acc: &mut Vec<f32>, dx: &mut [f32]) {
        let [oh, ow] = self.out;
        let [h, w] = self.size;
        assert!(dy.len() == self.out_channels * oh * ow && dx.len() == self.channels * h * w);
        if oh * ow == 0 {
            dx.fill(0.0);
            return;
        }
        wide.clear();
        wide.resize(self.out_channels * self.plane, 0.0);
        for (plane, dy) in wide.chunks_mut(self.plane).zip(dy.chunks(oh * ow)) {
            for (row, dy) in plane.chunks_mut(self.width).zip(dy.chunks(ow)) {
                row[..ow].copy_from_slice(dy);
            }
        }
        acc.clear();
        acc.resize(self.channels * self.reach, 0.0);
        self.products(wide, acc);
        let [top, left] = self.padding;
        for (dx, acc) in dx.chunks_mut(h * w).zip(acc.chunks(self.reach)) {
            for (y, row) in dx.chunks_mut(w).enumerate() {
                row.copy_from_slice(&acc[(y + top) * self.width + left..][..w]);
            }
        }
    }

    /// The products of [`Scatter::run`], added into `acc`.
    fn products(&self, wide: &[f32], acc: &mut [f32]) {
        assert!(
            wide.len() == self.out_channels * self.plane
                && self.plane.is_multiple_of(SCATTER_CHUNK)
        );
        assert!(acc.len() == self.channels * self.reach);
        assert!(self.packed.len() == self.offsets.len() * self.out_channels * self.channels);
        assert!(self.offsets.iter().all(|&o| self.plane + o <= self.reach));
        #[cfg(target_arch = "x86_64")]
        if crate::avx2_fma() {
            // SAFETY: AVX2 and FMA are present; the sizes are asserted above: every write, at
            // most at `plane - SCATTER_CHUNK + offset + SCATTER_CHUNK`, stays inside its plane
            // of `acc`.
            unsafe {
                avx2::scatter::<2>(
                    wide,
                    self.plane,
                    self.out_channels,
                    &self.offsets,
                    &self.packed,
                    self.channels,
                    acc,
                    self.reach,
                )
            };
            return;
        }
        unreachable!("the direct kernels need AVX2 and FMA (checked by conv::Method)");
    }
}

fn padded_size(g: &ConvGeometry) -> [usize; 2] {
    [
        g.in_size[0] + g.padding[0][0] + g.padding[0][1],
        g.in_size[1] + g.padding[1][0] + g.padding[1][1],
    ]
}

/// The forward pass (see [`crate::conv::forward`]), pooled per image by `pooled` (the kind and
/// the geometry of one image's planes) where given.
pub(crate) fn forward(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    pooled: Option<(PoolKind, PoolGeometry)>,
) -> Vec<f32> {
    let [oh, ow] = g.out();
    let positions = oh * ow;
    let out_len = g.out_channels * positions;
    let image_len = g.image_len();
    let image_out = pooled.map_or(out_len, |(_, pg)| pg.planes * pg.out_len());
    if image_out == 0 {
        return vec![0.0; g.batch * image_out];
    }
    let size = padded_size(g);
    let correlation = Correlation {
        channels: g.in_channels,
        out_channels: g.out_channels,
        out: [oh, ow],
        stride: g.stride,
        gather: Gather::new(
            g.in_channels,
            size,
            g.kernel,
            g.dilation,
            [oh, ow],
            g.stride,
        ),
        packed: pack_weights(weight, g.out_channels, g.taps()),
        lanes: Lanes::for_conv(g.out_channels, g.stride[1]),
    };
    par_chunks_zeroed(
        g.batch * image_out,
        image_out,
        || (Vec::new(), Vec::new(), Vec::new()),
        |(src, product, unpooled), n, y| {
            let image = &x[n * image_len..(n + 1) * image_len];
            pad(image, g.in_channels, g.in_size, g.padding, src);
            match pooled {
                // Positions in the lanes: pooled straight from the product's rows, without
                // the copy into `[out_channels][positions]` (measured: that copy was 6 % of
                // LeNet-5's inference, `perf record` of `lenet bench --inference`).
                Some((kind, pg)) if correlation.lanes == Lanes::Positions => {
                    let wide = correlation.positions_product(src, product);
                    let planes = product.chunks_mut(oh * wide);
                    for (o, (plane, y)) in planes.zip(y.chunks_mut(pg.out_len())).enumerate() {
                        let b = bias.map(|b| &b[o..=o]);
                        bias_and_activation(plane, oh * wide, b, activation);
                        pg.plane_strided(kind, plane, wide, y);
                    }
                }
                Some((kind, pg)) => {
                    unpooled.resize(out_len, 0.0);
                    correlation.run(src, product, unpooled);
                    bias_and_activation(unpooled, positions, bias, activation);
                    pg.planes_here(kind, unpooled, y);
                }
                None => {
                    correlation.run(src, product, y);
                    bias_and_activation(y, positions, bias, activation);
                }
            }
        },
    )
}

/// The weight and bias gradients (see [`crate::conv::backward_weight`]); summed over the same
/// fixed split of the batch, so that the rounding does not depend on the number of threads.
pub(crate) fn backward_weight(
    g: &ConvGeometry,
    x: &[f32],
    dy: OutputGrad<'_>,
) -> (Vec<f32>, Vec<f32>) {
    let [oh, ow] = g.out();
    let positions = oh * ow;
    let (taps, o8) = (g.taps(), round_up(g.out_channels));
    let out_len = g.out_channels * positions;
    let image_len = g.image_len();
    let size = padded_size(g);
    let gather = Gather::new(
        g.in_channels,
        size,
        g.kernel,
        g.dilation,
        [oh, ow],
        g.stride,
    );
    let lanes = Lanes::for_conv(g.out_channels, g.stride[1]);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = split(g.batch)
        .into_par_iter()
        .map(|images| {
            let mut dw_t = vec![0.0f32; taps * o8];
            let mut db = vec![0.0f32; g.out_channels];
            let (mut src, mut masked, mut arranged) = (Vec::new(), Vec::new(), Vec::new());
            for n in images {
                let grad = dy.image(n, out_len, &mut masked);
                pad(
                    &x[n * image_len..(n + 1) * image_len],
                    g.in_channels,
                    g.in_size,
                    g.padding,
                    &mut src,
                );
                match lanes {
                    Lanes::Channels => {
                        // `grad` as `[p][o8]`.
                        arranged.clear();
                        arranged.resize(positions * o8, 0.0);
                        for (o, row) in grad.chunks(positions.max(1)).enumerate() {
                            for (p, v) in row.iter().enumerate() {
                                arranged[p * o8 + o] = *v;
                            }
                        }
                        gather_t_times(&src, &gather, &arranged, o8, &mut dw_t);
                    }
                    Lanes::Positions => {
                        // `grad` as `[o][y][wide]`, zeros past `ow`.
                        let wide = ow.next_multiple_of(LANES);
                        arranged.clear();
                        arranged.resize(g.out_channels * oh * wide, 0.0);
                        for (r, row) in grad.chunks(ow.max(1)).enumerate() {
                            arranged[r * wide..r * wide + ow].copy_from_slice(row);
                        }
                        rows_t_times(
                            &src,
                            &gather,
                            g.stride[0],
                            [oh, ow],
                            &arranged,
                            g.out_channels,
                            &mut dw_t,
                        );
                    }
                }
                for (b, row) in db.iter_mut().zip(grad.chunks(positions.max(1))) {
                    *b += sum(row);
                }
            }
            let mut dw = vec![0.0f32; g.out_channels * taps];
            for t in 0..taps {
                for o in 0..g.out_channels {
                    dw[o * taps + t] = dw_t[t * o8 + o];
                }
            }
            (dw, db)
        })
        .collect();
    sum_in_order(partials, g.out_channels * taps, g.out_channels)
}

/// The input gradient (see [`crate::conv::backward_input`]) when [`input_grad_applies`]: the
/// forward pass of the padded output gradient with the flipped, channel-swapped kernel.
pub(crate) fn backward_input(g: &ConvGeometry, weight: &[f32], dy: OutputGrad<'_>) -> Vec<f32> {
    assert!(input_grad_applies(g), "direct input gradient: unsupported");
    let [oh, ow] = g.out();
    let [h, w] = g.in_size;
    let [kh, kw] = g.kernel;
    let (o, c) = (g.out_channels, g.in_channels);
    let out_len = o * oh * ow;
    let image_len = c * h * w;
    if image_len == 0 {
        return Vec::new();
    }
    let lanes = Lanes::for_conv(c, 1);
    if lanes == Lanes::Positions {
        let scatter = Scatter::new(g, weight);
        return par_chunks_zeroed(
            g.batch * image_len,
            image_len,
            || (Vec::new(), Vec::new(), Vec::new()),
            |(masked, wide, acc), n, image| {
                let grad = dy.image(n, out_len, masked);
                scatter.run(grad, wide, acc, image);
            },
        );
    }
    // Padding of the output gradient: the dilated kernel's span minus the forward padding.
    let full = |a: usize, side: usize| g.dilation[a] * (g.kernel[a] - 1) - g.padding[a][side];
    let padding = [[full(0, 0), full(0, 1)], [full(1, 0), full(1, 1)]];
    let size = [
        oh + padding[0][0] + padding[0][1],
        ow + padding[1][0] + padding[1][1],
    ];
    // flipped[o][c][i][j] = weight[o][c][kh-1-i][kw-1-j], as weights `[c][(o, i, j)]`.
    let taps = o * kh * kw;
    let mut flipped = vec![0.0f32; c * taps];
    for oo in 0..o {
        for cc in 0..c {
            for i in 0..kh {
                for j in 0..kw {
                    flipped[cc * taps + (oo * kh + i) * kw + j] =
                        weight[((oo * c + cc) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)];
                }
            }
        }
    }
    let correlation = Correlation {
        channels: o,
        out_channels: c,
        out: [h, w],
        stride: [1, 1],
        gather: Gather::new(o, size, g.kernel, g.dilation, [h, w], [1, 1]),
        packed: pack_weights(&flipped, c, taps),
        lanes,
    };
    par_chunks_zeroed(
        g.batch * image_len,
        image_len,
        || (Vec::new(), Vec::new(), Vec::new()),
        |(src, masked, product), n, image| {
            let grad = dy.image(n, out_len, masked);
            pad(grad, o, [oh, ow], padding, src);
            correlation.run(src, product, image);
        },
    )
}

/// `dw[t][o] += Σ_y Σ_x src[y·stride·width + x + tap[t]] · dy[o][y][x]` with positions in the
/// lanes (`dy` is `out_channels × oh × round_up(ow)`, `dw` is `taps × round_up(out_channels)`).
fn rows_t_times(
    src: &[f32],
    gather: &Gather,
    stride_h: usize,
    out: [usize; 2],
    dy: &[f32],
    out_channels: usize,
    dw: &mut [f32],
) {
    let [oh, ow] = out;
    let wide = ow.next_multiple_of(LANES);
    let row_stride = stride_h * gather.size[1];
    assert!(oh == 0 || (oh - 1) * row_stride + wide + gather.last_tap <= src.len());
    assert!(dy.len() >= out_channels * oh * wide);
    assert!(dw.len() >= gather.tap.len() * round_up(out_channels));
    #[cfg(target_arch = "x86_64")]
    if crate::avx2_fma() {
        // SAFETY: AVX2 and FMA are present; every read of `src` stays inside it (asserted
        // above: the last row's last vector at the farthest tap), `dy` and `dw` hold what
        // they must (asserted above).
        unsafe { avx2::rows_t(src, &gather.tap, [oh, ow], row_stride, dy, out_channels, dw) };
        return;
    }
    unreachable!("the direct kernels need AVX2 and FMA (checked by conv::Method)");
}

/// Whether the products with channels in the lanes run in 16-float AVX-512 vectors: on a
/// machine with AVX-512F, for 32 channels or more in multiples of 16 (`mnist-best`'s 48,
/// `fashion-best`'s 48 and 96), unless `LENET_KERNELS=avx2`. With fewer channels (LeNet-5's
/// 16) a 16-float vector per row loads as often as it multiplies, and the AVX2 kernels were
/// measured as fast or faster (docs/performance.md).
#[cfg(target_arch = "x86_64")]
fn wide_vectors(o8: usize) -> bool {
    o8 >= 2 * WIDE && o8.is_multiple_of(WIDE) && avx512_on()
}

#[cfg(target_arch = "x86_64")]
fn avx512_on() -> bool {
    crate::avx512() && !crate::switch_is("avx2")
}

/// Floats per AVX-512 vector.
#[cfg(target_arch = "x86_64")]
const WIDE: usize = 16;

/// `out[p][·] = Σ_t src[pos[p] + tap[t]] · w[t][·]` for every position (`out` is
/// `positions × o8`, `w` is `taps × o8`).
fn gather_times(src: &[f32], gather: &Gather, w: &[f32], o8: usize, out: &mut [f32]) {
    let (taps, positions) = (gather.tap.len(), gather.pos.len());
    assert!(src.len() >= gather.reach(), "direct conv: image size");
    assert!(w.len() >= taps * o8 && out.len() >= positions * o8 && o8.is_multiple_of(LANES));
    #[cfg(target_arch = "x86_64")]
    if wide_vectors(o8) {
        // SAFETY: AVX-512F is present and `o8` a multiple of 16 (checked just above); the
        // offsets and sizes as below.
        unsafe { avx512::gather_times(src, &gather.tap, &gather.pos, w, o8, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::avx2_fma() {
        // SAFETY: AVX2 and FMA are present (checked just above); every offset `pos[p] +
        // tap[t]` is below `reach` and so inside `src` (asserted above), `w` and `out` hold
        // `taps × o8` and `positions × o8` values (asserted above).
        unsafe { avx2::gather_times(src, &gather.tap, &gather.pos, w, o8, out) };
        return;
    }
    unreachable!("the direct kernels need AVX2 and FMA (checked by conv::Method)");
}

/// `dw[t][·] += Σ_p src[pos[p] + tap[t]] · dy[p][·]` (`dy` is `positions × o8`, `dw` is
/// `taps × o8`).
fn gather_t_times(src: &[f32], gather: &Gather, dy: &[f32], o8: usize, dw: &mut [f32]) {
    let (taps, positions) = (gather.tap.len(), gather.pos.len());
    assert!(src.len() >= gather.reach(), "direct conv: image size");
    assert!(dy.len() >= positions * o8 && dw.len() >= taps * o8 && o8.is_multiple_of(LANES));
    #[cfg(target_arch = "x86_64")]
    if wide_vectors(o8) {
        // SAFETY: as in `gather_times`.
        unsafe { avx512::gather_t_times(src, &gather.tap, &gather.pos, dy, o8, dw) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::avx2_fma() {
        // SAFETY: as in `gather_times`.
        unsafe { avx2::gather_t_times(src, &gather.tap, &gather.pos, dy, o8, dw) };
        return;
    }
    unreachable!("the direct kernels need AVX2 and FMA (checked by conv::Method)");
}

/// Calls `$f::<n, $v>` for a runtime `n` in `1..=8` (the rows or taps of a full block, fewer
/// for the tail of a blocked loop): for `avx2` and `avx512`.
#[cfg(target_arch = "x86_64")]
macro_rules! dispatch {
    ($f:ident, $v:literal, $n:expr, $($arg:expr),*) => {
        match $n {
            1 => $f::<1, $v>($($arg),*),
            2 => $f::<2, $v>($($arg),*),
            3 => $f::<3, $v>($($arg),*),
            4 => $f::<4, $v>($($arg),*),
            5 => $f::<5, $v>($($arg),*),
            6 => $f::<6, $v>($($arg),*),
            7 => $f::<7, $v>($($arg),*),
            _ => $f::<8, $v>($($arg),*),
        }
    };
}

/// The register-blocked products of `avx2` and `avx512`, written once: `N` rows of the
/// gathered operand against `V` vectors of channels (`N·V` accumulators), and the transposed
/// product. A macro, not a function generic over the vector type: such a function would call
/// trait methods that Rust compiles, and inlines, only with the target features of their own
/// definition. `$broadcast` takes a `*const f32`.
#[cfg(target_arch = "x86_64")]
macro_rules! register_blocks {
    (
        feature: $feature:literal,
        lanes: $lanes:ident,
        zero: $zero:ident,
        load: $load:ident,
        store: $store:ident,
        add: $add:ident,
        fma: $fma:ident,
        broadcast: $broadcast:ident
    ) => {
        /// `out[q][..V vectors] = Σ_t src[pos[q] + tap[t]] · w[t][..V vectors]` for `q < N`.
        /// (Indexed loops over the const-size accumulator arrays: the form that was measured.)
        #[inline]
        #[allow(clippy::needless_range_loop)]
        #[target_feature(enable = $feature)]
        unsafe fn block<const N: usize, const V: usize>(
            src: *const f32,
            tap: &[usize],
            pos: &[usize],
            w: *const f32,
            o8: usize,
            out: *mut f32,
        ) {
            let mut acc = [[$zero(); V]; N];
            let mut rows = [src; N];
            for q in 0..N {
                rows[q] = src.add(pos[q]);
            }
            for (t, &offset) in tap.iter().enumerate() {
                let wt = w.add(t * o8);
                let mut wv = [$zero(); V];
                for (v, wv) in wv.iter_mut().enumerate() {
                    *wv = $load(wt.add(v * $lanes));
                }
                for q in 0..N {
                    let xv = $broadcast(rows[q].add(offset));
                    for v in 0..V {
                        acc[q][v] = $fma(xv, wv[v], acc[q][v]);
                    }
                }
            }
            for q in 0..N {
                for v in 0..V {
                    $store(out.add(q * o8 + v * $lanes), acc[q][v]);
                }
            }
        }

        /// `dw[k][..V vectors] += Σ_p src[pos[p] + tap[k]] · dy[p][..V vectors]` for `k < T`.
        #[inline]
        #[allow(clippy::needless_range_loop)]
        #[target_feature(enable = $feature)]
        unsafe fn block_t<const T: usize, const V: usize>(
            src: *const f32,
            tap: &[usize],
            pos: &[usize],
            dy: *const f32,
            o8: usize,
            dw: *mut f32,
        ) {
            let mut acc = [[$zero(); V]; T];
            let mut cols = [src; T];
            for k in 0..T {
                cols[k] = src.add(tap[k]);
            }
            for (p, &offset) in pos.iter().enumerate() {
                let d = dy.add(p * o8);
                let mut dv = [$zero(); V];
                for (v, dv) in dv.iter_mut().enumerate() {
                    *dv = $load(d.add(v * $lanes));
                }
                for k in 0..T {
                    let xv = $broadcast(cols[k].add(offset));
                    for v in 0..V {
                        acc[k][v] = $fma(xv, dv[v], acc[k][v]);
                    }
                }
            }
            for k in 0..T {
                for v in 0..V {
                    let at = dw.add(k * o8 + v * $lanes);
                    $store(at, $add($load(at), acc[k][v]));
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The register-blocked products: `N` rows of the gathered operand against `V` vectors of
    //! channels (`N·V` accumulators, at most 12 of the 16 registers).

    use std::arch::x86_64::*;

    use super::LANES;

    /// `_mm256_broadcast_ss` of a value read through a pointer.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn broadcast(p: *const f32) -> __m256 {
        _mm256_broadcast_ss(&*p)
    }

    register_blocks! {
        feature: "avx2,fma",
        lanes: LANES,
        zero: _mm256_setzero_ps,
        load: _mm256_loadu_ps,
        store: _mm256_storeu_ps,
        add: _mm256_add_ps,
        fma: _mm256_fmadd_ps,
        broadcast: broadcast
    }

    /// Output channels per block of the kernels with positions in the lanes (times two vectors
    /// of positions, or two taps: 12 accumulators).
    const CHANNELS_PER_BLOCK: usize = 6;

    /// `out[k][..16] = Σ_t src[tap[t]..][..16] · w[t][k]` for `k < OC` (positions in the lanes;
    /// `src` points at the block's first position, `out` at channel 0's, `plane` apart).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_block<const OC: usize>(
        src: *const f32,
        tap: &[usize],
        w: *const f32,
        o8: usize,
        out: *mut f32,
        plane: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; OC];
        for (t, &offset) in tap.iter().enumerate() {
            let x = src.add(offset);
            let (x0, x1) = (_mm256_loadu_ps(x), _mm256_loadu_ps(x.add(LANES)));
            let wt = w.add(t * o8);
            for (k, acc) in acc.iter_mut().enumerate() {
                let wv = _mm256_broadcast_ss(&*wt.add(k));
                acc[0] = _mm256_fmadd_ps(wv, x0, acc[0]);
                acc[1] = _mm256_fmadd_ps(wv, x1, acc[1]);
            }
        }
        for (k, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add(k * plane), acc[0]);
            _mm256_storeu_ps(out.add(k * plane + LANES), acc[1]);
        }
    }

    /// The sum of a vector's lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum(v: __m256) -> f32 {
        let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        let v = _mm_add_ss(v, _mm_shuffle_ps(v, v, 1));
        _mm_cvtss_f32(v)
    }

    /// `dw[k][c] += Σ_y Σ_x src[y·row_stride + x + tap[k]] · dy[c][y][x]` for `k < NT`,
    /// `c < OC` (positions in the lanes; `dy` points at channel 0's plane, `wide` floats a
    /// row; the last vector of a row is masked with `tail`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn rows_t_block<const OC: usize, const NT: usize>(
        src: *const f32,
        tap: &[usize],
        [oh, vectors]: [usize; 2],
        row_stride: usize,
        dy: *const f32,
        wide: usize,
        tail: __m256,
        o8: usize,
        dw: *mut f32,
    ) {
        let mut acc = [[_mm256_setzero_ps(); NT]; OC];
        let mut cols = [src; NT];
        for k in 0..NT {
            cols[k] = src.add(tap[k]);
        }
        for y in 0..oh {
            for v in 0..vectors {
                let at = y * row_stride + v * LANES;
                let mut xs = [_mm256_setzero_ps(); NT];
                for k in 0..NT {
                    xs[k] = _mm256_loadu_ps(cols[k].add(at));
                    if v + 1 == vectors {
                        xs[k] = _mm256_and_ps(xs[k], tail);
                    }
                }
                let d = dy.add(y * wide + v * LANES);
                for (c, acc) in acc.iter_mut().enumerate() {
                    let dv = _mm256_loadu_ps(d.add(c * oh * wide));
                    for k in 0..NT {
                        acc[k] = _mm256_fmadd_ps(dv, xs[k], acc[k]);
                    }
                }
            }
        }
        for (c, acc) in acc.iter().enumerate() {
            for (k, a) in acc.iter().enumerate() {
                *dw.add(k * o8 + c) += sum(*a);
            }
        }
    }

    /// See `super::Correlation::rows`.
    ///
    /// # Safety
    /// AVX2 and FMA are present; `src` holds every `y·row_stride + x + tap[t]` for `y < oh`,
    /// `x < wide`; `w` holds `tap.len() × round_up(out_channels)` values, `out`
    /// `out_channels × oh × wide`; `wide` is a multiple of 16.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn rows(
        src: &[f32],
        tap: &[usize],
        oh: usize,
        row_stride: usize,
        wide: usize,
        w: &[f32],
        out_channels: usize,
        out: &mut [f32],
    ) {
        let o8 = out_channels.next_multiple_of(LANES);
        let plane = oh * wide;
        let (src, w, out) = (src.as_ptr(), w.as_ptr(), out.as_mut_ptr());
        let mut ob = 0;
        while ob < out_channels {
            let n = CHANNELS_PER_BLOCK.min(out_channels - ob);
            for y in 0..oh {
                for x in (0..wide).step_by(2 * LANES) {
                    let (s, o) = (
                        src.add(y * row_stride + x),
                        out.add(ob * plane + y * wide + x),
                    );
                    let w = w.add(ob);
                    match n {
                        1 => rows_block::<1>(s, tap, w, o8, o, plane),
                        2 => rows_block::<2>(s, tap, w, o8, o, plane),
                        3 => rows_block::<3>(s, tap, w, o8, o, plane),
                        4 => rows_block::<4>(s, tap, w, o8, o, plane),
                        5 => rows_block::<5>(s, tap, w, o8, o, plane),
                        _ => rows_block::<6>(s, tap, w, o8, o, plane),
                    }
                }
            }
            ob += n;
        }
    }

    /// See `super::rows_t_times`.
    ///
    /// # Safety
    /// AVX2 and FMA are present; `src` holds every `y·row_stride + x + tap[t]` for `y < oh`,
    /// `x < round_up(ow, 8)`; `dy` holds `out_channels × oh × round_up(ow, 8)` values, `dw`
    /// `tap.len() × round_up(out_channels, 8)`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows_t(
        src: &[f32],
        tap: &[usize],
        [oh, ow]: [usize; 2],
        row_stride: usize,
        dy: &[f32],
        out_channels: usize,
        dw: &mut [f32],
    ) {
        let wide = ow.next_multiple_of(LANES);
        let vectors = wide / LANES;
        let o8 = out_channels.next_multiple_of(LANES);
        // All ones in the lanes of the last vector that hold positions, zeros past `ow`.
        let valid = ow + LANES - wide;
        let mut bits = [0i32; LANES];
        bits[..valid].fill(-1);
        let tail = _mm256_castsi256_ps(_mm256_loadu_si256(bits.as_ptr().cast()));
        let (src, dy, dw) = (src.as_ptr(), dy.as_ptr(), dw.as_mut_ptr());
        let size = [oh, vectors];
        let mut ob = 0;
        while ob < out_channels {
            let n = CHANNELS_PER_BLOCK.min(out_channels - ob);
            let d = dy.add(ob * oh * wide);
            let mut t = 0;
            while t < tap.len() {
                let pair = tap.len() - t >= 2;
                let at = dw.add(t * o8 + ob);
                let tp = &tap[t..];
                macro_rules! go {
                    ($oc:literal) => {
                        if pair {
                            rows_t_block::<$oc, 2>(src, tp, size, row_stride, d, wide, tail, o8, at)
                        } else {
                            rows_t_block::<$oc, 1>(src, tp, size, row_stride, d, wide, tail, o8, at)
                        }
                    };
                }
                match n {
                    1 => go!(1),
                    2 => go!(2),
                    3 => go!(3),
                    4 => go!(4),
                    5 => go!(5),
                    _ => go!(6),
                }
                t += if pair { 2 } else { 1 };
            }
            ob += n;
        }
    }

    /// See `super::Scatter`: `dx[c][f + offsets[t]..][..V vectors] += Σ_o w[t][o][c] ·
    /// dy[o][f..][..V vectors]` for every tap `t` and every `f` a multiple of `V` vectors
    /// below `plane`, in blocks of at most six channels (`6·V` accumulators).
    ///
    /// # Safety
    /// AVX2 and FMA are present; `dy` holds `out_channels` planes of `plane`
    /// values (a multiple of `V` vectors), `w` `offsets.len() × out_channels × channels`
    /// values, `dx` `channels` planes of `reach ≥ plane + max(offsets)` values.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn scatter<const V: usize>(
        dy: &[f32],
        plane: usize,
        out_channels: usize,
        offsets: &[usize],
        w: &[f32],
        channels: usize,
        dx: &mut [f32],
        reach: usize,
    ) {
        let (dy, w, dx) = (dy.as_ptr(), w.as_ptr(), dx.as_mut_ptr());
        let shape = [plane, out_channels, channels, reach];
        let mut cb = 0;
        while cb < channels {
            let n = 6.min(channels - cb);
            for (t, &offset) in offsets.iter().enumerate() {
                let wt = w.add(t * out_channels * channels + cb);
                for f in (0..plane).step_by(V * LANES) {
                    let (d, x) = (dy.add(f), dx.add(cb * reach + f + offset));
                    match n {
                        1 => scatter_block::<1, V>(d, wt, x, shape),
                        2 => scatter_block::<2, V>(d, wt, x, shape),
                        3 => scatter_block::<3, V>(d, wt, x, shape),
                        4 => scatter_block::<4, V>(d, wt, x, shape),
                        5 => scatter_block::<5, V>(d, wt, x, shape),
                        _ => scatter_block::<6, V>(d, wt, x, shape),
                    }
                }
            }
            cb += n;
        }
    }

    /// `dx[k·reach..][..V vectors] += Σ_o w[o·channels + k] · dy[o·plane..][..V vectors]`
    /// for `k < CB`.
    #[inline]
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn scatter_block<const CB: usize, const V: usize>(
        dy: *const f32,
        w: *const f32,
        dx: *mut f32,
        [plane, out_channels, channels, reach]: [usize; 4],
    ) {
        let mut acc = [[_mm256_setzero_ps(); V]; CB];
        for o in 0..out_channels {
            let d = dy.add(o * plane);
            let mut dv = [_mm256_setzero_ps(); V];
            for v in 0..V {
                dv[v] = _mm256_loadu_ps(d.add(v * LANES));
            }
            let wo = w.add(o * channels);
            for k in 0..CB {
                let wv = broadcast(wo.add(k));
                for v in 0..V {
                    acc[k][v] = _mm256_fmadd_ps(wv, dv[v], acc[k][v]);
                }
            }
        }
        for k in 0..CB {
            for v in 0..V {
                let at = dx.add(k * reach + v * LANES);
                _mm256_storeu_ps(at, _mm256_add_ps(_mm256_loadu_ps(at), acc[k][v]));
            }
        }
    }

    /// Rows per block: 6 with two vectors of channels, 8 with one (measured better than 6 and
    /// than 12, whose row pointers no longer fit in the general registers).
    fn rows_per_block(vectors: usize) -> usize {
        if vectors == 2 {
            6
        } else {
            8
        }
    }

    /// See `super::gather_times`.
    ///
    /// # Safety
    /// AVX2 and FMA are present; every `pos[p] + tap[t]` indexes `src`; `w` holds
    /// `tap.len() × o8` values, `out` `pos.len() × o8`; `o8` is a multiple of 8.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gather_times(
        src: &[f32],
        tap: &[usize],
        pos: &[usize],
        w: &[f32],
        o8: usize,
        out: &mut [f32],
    ) {
        let (src, w, out) = (src.as_ptr(), w.as_ptr(), out.as_mut_ptr());
        let mut ob = 0;
        while ob < o8 {
            let vectors = if o8 - ob >= 2 * LANES { 2 } else { 1 };
            let step = rows_per_block(vectors);
            let mut p = 0;
            while p < pos.len() {
                let n = step.min(pos.len() - p);
                let (w, out) = (w.add(ob), out.add(p * o8 + ob));
                if vectors == 2 {
                    dispatch!(block, 2, n, src, tap, &pos[p..], w, o8, out);
                } else {
                    dispatch!(block, 1, n, src, tap, &pos[p..], w, o8, out);
                }
                p += n;
            }
            ob += vectors * LANES;
        }
    }

    /// See `super::gather_t_times`.
    ///
    /// # Safety
    /// As for [`gather_times`], with `dy` `pos.len() × o8` and `dw` `tap.len() × o8`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gather_t_times(
        src: &[f32],
        tap: &[usize],
        pos: &[usize],
        dy: &[f32],
        o8: usize,
        dw: &mut [f32],
    ) {
        let (src, dy, dw) = (src.as_ptr(), dy.as_ptr(), dw.as_mut_ptr());
        let mut ob = 0;
        while ob < o8 {
            let vectors = if o8 - ob >= 2 * LANES { 2 } else { 1 };
            let step = rows_per_block(vectors);
            let mut t = 0;
            while t < tap.len() {
                let n = step.min(tap.len() - t);
                let (dy, dw) = (dy.add(ob), dw.add(t * o8 + ob));
                if vectors == 2 {
                    dispatch!(block_t, 2, n, src, &tap[t..], pos, dy, o8, dw);
                } else {
                    dispatch!(block_t, 1, n, src, &tap[t..], pos, dy, o8, dw);
                }
                t += n;
            }
            ob += vectors * LANES;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! The products of [`super::avx2`]'s `block` and `block_t` in 16-float vectors, for many
    //! channels: `N` rows against `V` vectors of 16 channels, `N·V` accumulators (24 of the 32
    //! registers), so that each tap's broadcasts and weight loads feed three times as many
    //! multiply-adds as with two 8-float vectors (the blocks: `register_blocks!` with the
    //! 16-float intrinsics).

    use std::arch::x86_64::*;

    use super::WIDE;

    /// `_mm512_set1_ps` of a value read through a pointer.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn broadcast(p: *const f32) -> __m512 {
        _mm512_set1_ps(*p)
    }

    register_blocks! {
        feature: "avx512f",
        lanes: WIDE,
        zero: _mm512_setzero_ps,
        load: _mm512_loadu_ps,
        store: _mm512_storeu_ps,
        add: _mm512_add_ps,
        fma: _mm512_fmadd_ps,
        broadcast: broadcast
    }

    /// Rows per block: 8 (24 accumulators with three vectors of channels; 16 with two, 8 with
    /// one).
    const ROWS: usize = 8;

    /// Vectors of the channel block that starts at `ob` of `o16` channels (a multiple of 16):
    /// blocks of at most three 16-float vectors (48 → 3; 64 → 3 + 1; 96 → 3 + 3).
    fn vectors_at(o16: usize, ob: usize) -> usize {
        ((o16 - ob) / WIDE).min(3)
    }

    /// See `super::gather_times`.
    ///
    /// # Safety
    /// AVX-512F is present; every `pos[p] + tap[t]` indexes `src`; `w` holds `tap.len() × o8`
    /// values, `out` `pos.len() × o8`; `o8` is a multiple of 16.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gather_times(
        src: &[f32],
        tap: &[usize],
        pos: &[usize],
        w: &[f32],
        o8: usize,
        out: &mut [f32],
    ) {
        let (src, w, out) = (src.as_ptr(), w.as_ptr(), out.as_mut_ptr());
        let mut ob = 0;
        while ob < o8 {
            let vectors = vectors_at(o8, ob);
            let mut p = 0;
            while p < pos.len() {
                let n = ROWS.min(pos.len() - p);
                let (w, out) = (w.add(ob), out.add(p * o8 + ob));
                match vectors {
                    3 => dispatch!(block, 3, n, src, tap, &pos[p..], w, o8, out),
                    2 => dispatch!(block, 2, n, src, tap, &pos[p..], w, o8, out),
                    _ => dispatch!(block, 1, n, src, tap, &pos[p..], w, o8, out),
                }
                p += n;
            }
            ob += vectors * WIDE;
        }
    }

    /// See `super::gather_t_times`.
    ///
    /// # Safety
    /// As for [`gather_times`], with `dy` `pos.len() × o8` and `dw` `tap.len() × o8`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gather_t_times(
        src: &[f32],
        tap: &[usize],
        pos: &[usize],
        dy: &[f32],
        o8: usize,
        dw: &mut [f32],
    ) {
        let (src, dy, dw) = (src.as_ptr(), dy.as_ptr(), dw.as_mut_ptr());
        let mut ob = 0;
        while ob < o8 {
            let vectors = vectors_at(o8, ob);
            let mut t = 0;
            while t < tap.len() {
                let n = ROWS.min(tap.len() - t);
                let (dy, dw) = (dy.add(ob), dw.add(t * o8 + ob));
                match vectors {
                    3 => dispatch!(block_t, 3, n, src, &tap[t..], pos, dy, o8, dw),
                    2 => dispatch!(block_t, 2, n, src, &tap[t..], pos, dy, o8, dw),
                    _ => dispatch!(block_t, 1, n, src, &tap[t..], pos, dy, o8, dw),
                }
                t += n;
            }
            ob += vectors * WIDE;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::conv::{self, Method};

    /// Deterministic values in [-1, 1).
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 23) as f32) - 1.0
            })
            .collect()
    }

    /// The 16-float products give the 8-float ones to the bit (the same multiply-adds on each
    /// value, in the same order), for channel blocks of 3, 2 and 1 vectors and row and tap
    /// counts that leave a tail.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx512_products_equal_the_avx2_ones() {
        if !(crate::avx512() && crate::avx2_fma()) {
            // A processor without AVX-512 never runs these kernels, and CI cannot install it:
            // a visible skip (counted by `.ci/run`) even under CI, not a failure.
            let line = "SKIPPED the_avx512_products_equal_the_avx2_ones: no AVX-512F on this \
                        processor, the 16-float products are not tested\n";
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
            return;
        }
        let src = noise(600, 1);
        let tap: Vec<usize> = (0..11).map(|t| t * 17 % 90).collect();
        let pos: Vec<usize> = (0..13).map(|p| p * 29 % 500).collect();
        for o16 in [32, 48, 64, 80, 96, 112] {
            let w = noise(tap.len() * o16, 2);
            let dy = noise(pos.len() * o16, 3);
            let (mut out8, mut out16) = (vec![0.0; pos.len() * o16], vec![1.0; pos.len() * o16]);
            let dw0 = noise(tap.len() * o16, 4);
            let (mut dw8, mut dw16) = (dw0.clone(), dw0.clone());
            // SAFETY: AVX2, FMA and AVX-512F are present (checked above); every
            // `pos[p] + tap[t]` is below 600; `w`, `dw` hold `taps × o16` values, `dy` and
            // the outputs `positions × o16`; `o16` is a multiple of 16.
            unsafe {
                avx2::gather_times(&src, &tap, &pos, &w, o16, &mut out8);
                avx512::gather_times(&src, &tap, &pos, &w, o16, &mut out16);
                avx2::gather_t_times(&src, &tap, &pos, &dy, o16, &mut dw8);
                avx512::gather_t_times(&src, &tap, &pos, &dy, o16, &mut dw16);
            }
            assert_eq!(out8, out16, "{o16} channels: products");
            assert_eq!(dw8, dw16, "{o16} channels: transposed products");
        }
    }

    /// `a` and `b` agree within `1e-5` of the largest magnitude (the sums run in another order).
    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * scale,
                "{what}: value {i}: direct {x}, im2col {y} (scale {scale})"
            );
        }
    }

    /// Runs all three passes by both methods and compares them (im2col is itself checked
    /// against the definition and against Burn's operations).
    fn check(g: &ConvGeometry, activation: Activation, seed: u64) {
        if !crate::avx2_fma() {
            lenet_data::testing::unavailable("this machine has no AVX2 and FMA");
            return;
        }
        let [oh, ow] = g.out_size().unwrap();
        let x = noise(g.batch * g.in_channels * g.in_size[0] * g.in_size[1], seed);
        let w = noise(g.out_channels * g.taps(), seed + 1);
        let b = noise(g.out_channels, seed + 2);
        let y = conv::forward_with(Method::Direct, g, &x, &w, Some(&b), activation, None);
        let want = conv::forward_with(Method::Im2col, g, &x, &w, Some(&b), activation, None);
        assert_close(&y, &want, "forward");
        for method in [Method::Direct, Method::Im2col, Method::Dense] {
            if method != Method::Dense || g.is_dense() {
                check_pooled(method, g, [&x, &w, &b], activation);
            }
        }
        let dy = noise(g.batch * g.out_channels * oh * ow, seed + 3);
        let grad = OutputGrad {
            dy: &dy,
            activated: (activation != Activation::None).then_some((activation, &want[..])),
            pooled: None,
        };
        let (dw, db) = conv::backward_weight_with(Method::Direct, g, &x, grad);
        let (want_dw, want_db) = conv::backward_weight_with(Method::Im2col, g, &x, grad);
        assert_close(&dw, &want_dw, "weight gradient");
        assert_close(&db, &want_db, "bias gradient");
        if input_grad_applies(g) {
            let dx = conv::backward_input_with(Method::Direct, g, &w, grad);
            let want_dx = conv::backward_input_with(Method::Im2col, g, &w, grad);
            assert_close(&dx, &want_dx, "input gradient");
        }
    }

    /// The forward pass with pooling fused in equals the pass without, pooled afterwards by
    /// `pool::forward` (tested against Burn's pooling): bit for bit, since the same values are
    /// pooled by the same function, for max and average tiles of several shapes.
    fn check_pooled(method: Method, g: &ConvGeometry, [x, w, b]: [&[f32]; 3], act: Activation) {
        let [oh, ow] = g.out();
        let unpooled = conv::forward_with(method, g, x, w, Some(b), act, None);
        let mut checked = 0;
        for kind in [PoolKind::Max, PoolKind::Avg] {
            for kernel in [[2, 2], [3, 2], [1, 3], [1, 1]] {
                let p = crate::PoolSpec { kind, kernel };
                if !p.fits([oh, ow]) {
                    continue;
                }
                let fused = conv::forward_with(method, g, x, w, Some(b), act, Some(p));
                let shape = [g.batch, g.out_channels, oh, ow];
                let want = crate::pool::forward(&p.geometry(&shape), kind, &unpooled);
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&fused),
                    bits(&want),
                    "{method:?}, {kind:?} {kernel:?}, {g:?}"
                );
                checked += 1;
            }
        }
        assert!(checked >= 2, "no pooling fits {g:?}");
    }

    fn geometry(batch: usize, channels: [usize; 2], size: usize, kernel: usize) -> ConvGeometry {
        ConvGeometry {
            batch,
            in_channels: channels[0],
            in_size: [size, size],
            out_channels: channels[1],
            kernel: [kernel, kernel],
            stride: [1, 1],
            padding: [[0, 0], [0, 0]],
            dilation: [1, 1],
        }
    }

    #[test]
    fn lenet_convolutions_match_im2col() {
        // LeNet-5's two convolutions, the classic network's C5 (one output position), and
        // channel counts that leave partial vectors (6, 20: one and a half vectors).
        let mut conv1 = geometry(9, [1, 6], 28, 5);
        conv1.padding = [[2, 2], [2, 2]];
        check(&conv1, Activation::Relu, 1);
        check(&geometry(17, [6, 16], 14, 5), Activation::Relu, 2);
        let scaled = Activation::Tanh {
            outer: 1.7159,
            inner: 2.0 / 3.0,
        };
        check(&geometry(3, [16, 120], 5, 5), scaled, 3);
        check(&geometry(5, [7, 20], 9, 3), Activation::Sigmoid, 4);
    }

    #[test]
    fn the_input_gradient_needs_stride_one_and_padding_within_the_kernel() {
        let mut g = geometry(1, [2, 2], 9, 3);
        assert!(input_grad_applies(&g));
        g.padding = [[2, 0], [1, 2]];
        assert!(input_grad_applies(&g));
        g.padding = [[3, 0], [0, 0]];
        assert!(!input_grad_applies(&g));
        g.dilation = [2, 1];
        assert!(input_grad_applies(&g));
        g.stride = [1, 2];
        assert!(!input_grad_applies(&g));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Every geometry: strides, asymmetric paddings, dilations, channel counts on both sides
        /// of the 8- and 16-lane blocks.
        #[test]
        fn random_convolutions_match_im2col(
            batch in 1usize..11,
            ci in 1usize..10,
            co in 1usize..26,
            h in 3usize..13,
            w in 3usize..13,
            kh in 1usize..6,
            kw in 1usize..6,
            stride in proptest::array::uniform2(1usize..3),
            pads in proptest::array::uniform4(0usize..3),
            dilation in proptest::array::uniform2(1usize..3),
            activation in 0usize..3,
            seed in 0u64..1000,
        ) {
            let g = ConvGeometry {
                batch,
                in_channels: ci,
                in_size: [h, w],
                out_channels: co,
                kernel: [kh, kw],
                stride,
                padding: [[pads[0], pads[1]], [pads[2], pads[3]]],
                dilation,
            };
            prop_assume!(g.out_size().is_some());
            let activation = [Activation::None, Activation::Relu, Activation::Sigmoid][activation];
            check(&g, activation, seed);
        }
    }
}
