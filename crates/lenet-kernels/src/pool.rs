//! Pooling over non-overlapping tiles (stride = kernel, no padding) on `f32` planes: forward and
//! backward for max and average. Rows and columns past the last whole tile are ignored (their
//! gradient is zero), as `floor` in the output size says.
//!
//! Max pooling's backward pass finds each tile's winner again by comparing the tile with the
//! pooled value (the first equal input wins, as the forward pass's first maximum does; NaN
//! matches NaN). Recording winners in the forward pass instead was measured slower: an index
//! per output keeps the forward loop from being vectorised (1.7-1.9 ms against 0.2-0.3 ms for
//! the first pooling of LeNet-5 at batch 256, `examples/kernel_timing.rs`).

use crate::buffer::par_chunks_zeroed;

/// Max or average.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

/// `planes` planes of `size` (batch × channels), pooled by `kernel`-sized tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    pub planes: usize,
    pub size: [usize; 2],
    pub kernel: [usize; 2],
}

/// Pooling over non-overlapping `kernel` tiles: what [`crate::pool2d`] computes, and what a
/// convolution may pool its output by before writing it ([`crate::ConvSpec::pool`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSpec {
    pub kind: PoolKind,
    pub kernel: [usize; 2],
}

impl PoolSpec {
    /// The geometry of pooling `x` `[n, c, h, w]`.
    pub(crate) fn geometry(&self, x: &[usize]) -> PoolGeometry {
        PoolGeometry {
            planes: x[0] * x[1],
            size: [x[2], x[3]],
            kernel: self.kernel,
        }
    }

    /// Whether the tiles fit in a `size` plane.
    pub(crate) fn fits(&self, size: [usize; 2]) -> bool {
        tiles_fit(self.kernel, size)
    }
}

/// Whether `kernel`-sized tiles (at least 1×1) fit in a `size` plane.
pub(crate) fn tiles_fit(kernel: [usize; 2], size: [usize; 2]) -> bool {
    (0..2).all(|a| kernel[a] >= 1 && kernel[a] <= size[a])
}

/// Planes handed to one rayon task at a time.
const PLANES_PER_TASK: usize = 16;

impl PoolGeometry {
    /// `floor(size / kernel)` per axis.
    pub fn out_size(&self) -> [usize; 2] {
        [
            self.size[0] / self.kernel[0].max(1),
            self.size[1] / self.kernel[1].max(1),
        ]
    }

    pub(crate) fn plane_len(&self) -> usize {
        self.size[0] * self.size[1]
    }

    pub(crate) fn out_len(&self) -> usize {
        let [oh, ow] = self.out_size();
        oh * ow
    }

    /// Pools one plane.
    fn plane(&self, kind: PoolKind, x: &[f32], y: &mut [f32]) {
        self.plane_strided(kind, x, self.size[1], y);
    }

    /// Pools `planes` consecutive planes, `x` `[planes][size]` into `y` `[planes][out_size]`, on
    /// the calling thread: a convolution's epilogue, one image at a time while it is in cache.
    pub(crate) fn planes_here(&self, kind: PoolKind, x: &[f32], y: &mut [f32]) {
        assert!(
            x.len() >= self.planes * self.plane_len() && y.len() == self.planes * self.out_len()
        );
        for (y, x) in y
            .chunks_mut(self.out_len().max(1))
            .zip(x.chunks(self.plane_len().max(1)))
        {
            self.plane(kind, x, y);
        }
    }

    /// Pools one plane whose rows lie `w` values apart (`w ≥ size[1]`; the values between a
    /// row's end and the next row are not read): a convolution's output straight from its
    /// padded rows, without a copy.
    pub(crate) fn plane_strided(&self, kind: PoolKind, x: &[f32], w: usize, y: &mut [f32]) {
        assert!(w >= self.size[1]);
        #[cfg(target_arch = "x86_64")]
        if crate::avx2_fma() {
            // SAFETY: AVX2 and FMA are present (checked).
            unsafe { self.plane_strided_avx2(kind, x, w, y) };
            return;
        }
        self.plane_strided_here(kind, x, w, y);
    }

    /// [`Self::plane_strided`] compiled for AVX2 (the same operations on each value): the
    /// average's loop gets 8-lane vectors (measured: 6 % of the classic network's inference
    /// with the SSE loop of a plain build).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn plane_strided_avx2(&self, kind: PoolKind, x: &[f32], w: usize, y: &mut [f32]) {
        self.plane_strided_here(kind, x, w, y);
    }

    #[inline(always)]
    fn plane_strided_here(&self, kind: PoolKind, x: &[f32], w: usize, y: &mut [f32]) {
        let [kh, kw] = self.kernel;
        let [oh, ow] = self.out_size();
        if self.kernel == [2, 2] {
            // LeNet's tiles: two input rows at a time, no index arithmetic in the inner loop.
            for i in 0..oh {
                let top = &x[2 * i * w..2 * i * w + 2 * ow];
                let bottom = &x[(2 * i + 1) * w..(2 * i + 1) * w + 2 * ow];
                let out = &mut y[i * ow..(i + 1) * ow];
                let done = match kind {
                    PoolKind::Max => max_2x2_row(top, bottom, out),
                    PoolKind::Avg => 0,
                };
                let pairs = top.chunks_exact(2).zip(bottom.chunks_exact(2)).skip(done);
                for (o, (a, b)) in out.iter_mut().skip(done).zip(pairs) {
                    *o = match kind {
                        PoolKind::Avg => (a[0] + a[1] + b[0] + b[1]) * 0.25,
                        PoolKind::Max => max(max(a[0], a[1]), max(b[0], b[1])),
                    };
                }
            }
            return;
        }
        let scale = 1.0 / (kh * kw) as f32;
        for i in 0..oh {
            for j in 0..ow {
                let first = i * kh * w + j * kw;
                let rows = (0..kh).map(|r| &x[first + r * w..first + r * w + kw]);
                y[i * ow + j] = match kind {
                    PoolKind::Avg => rows.map(|r| r.iter().sum::<f32>()).sum::<f32>() * scale,
                    PoolKind::Max => rows.flatten().fold(x[first], |m, &v| max(m, v)),
                };
            }
        }
    }

    /// The input gradient of `planes` consecutive planes, into `dx`, which the caller has
    /// zeroed (values outside every tile, and the losers of max pooling's tiles, stay 0): `x` the
    /// pooling's input and `y` its output (read by max pooling only), `dy` the gradient of `y`.
    pub(crate) fn backward_planes_here(
        &self,
        kind: PoolKind,
        x: &[f32],
        y: &[f32],
        dy: &[f32],
        dx: &mut [f32],
    ) {
        let (plane, out) = (self.plane_len(), self.out_len());
        assert!(dy.len() == self.planes * out && dx.len() == self.planes * plane);
        if plane == 0 || out == 0 {
            return;
        }
        match kind {
            PoolKind::Max => {
                assert!(x.len() == dx.len() && y.len() == dy.len());
                let planes = dx.chunks_mut(plane).zip(x.chunks(plane));
                for ((dx, x), (y, dy)) in planes.zip(y.chunks(out).zip(dy.chunks(out))) {
                    self.max_backward_plane(x, y, dy, dx);
                }
            }
            PoolKind::Avg => {
                for (dx, dy) in dx.chunks_mut(plane).zip(dy.chunks(out)) {
                    self.avg_backward_plane(dy, dx);
                }
            }
        }
    }

    /// Average pooling's input gradient for one plane: each output gradient spread evenly over
    /// its tile (the values outside every tile are left alone).
    fn avg_backward_plane(&self, dy: &[f32], dx: &mut [f32]) {
        let [_, w] = self.size;
        let [kh, kw] = self.kernel;
        let [oh, ow] = self.out_size();
        let scale = 1.0 / (kh * kw) as f32;
        for i in 0..oh {
            let grads = &dy[i * ow..(i + 1) * ow];
            for r in i * kh..(i + 1) * kh {
                let row = &mut dx[r * w..r * w + ow * kw];
                if kw == 2 {
                    // LeNet's tiles: pairs, without a call per tile (measured: the general loop
                    // below was a tenth of the classic network's step).
                    for (pair, d) in row.chunks_exact_mut(2).zip(grads) {
                        pair[0] = d * scale;
                        pair[1] = d * scale;
                    }
                } else {
                    for (tile, d) in row.chunks_exact_mut(kw).zip(grads) {
                        tile.fill(d * scale);
                    }
                }
            }
        }
    }

    /// Max pooling's input gradient for one plane: each tile's gradient goes to its first input
    /// equal to the pooled value.
    fn max_backward_plane(&self, x: &[f32], y: &[f32], dy: &[f32], dx: &mut [f32]) {
        let [_, w] = self.size;
        let [kh, kw] = self.kernel;
        let [oh, ow] = self.out_size();
        // (A fold, not `any`: without the early exit the check is vectorised.)
        if self.kernel == [2, 2] && !y.iter().fold(false, |nan, v| nan | v.is_nan()) {
            // LeNet's tiles without NaN: the winner's position as arithmetic on comparisons and
            // one store per tile (measured at batch 256 on random values: 0.6-0.8 ms, against
            // 2.2 ms with a masked store to each of the four positions).
            let offsets = [0, 1, w, w + 1];
            for i in 0..oh {
                let (t, b) = (2 * i * w, (2 * i + 1) * w);
                let (top, bottom) = (&x[t..t + 2 * ow], &x[b..b + 2 * ow]);
                let (out, grad) = (&y[i * ow..(i + 1) * ow], &dy[i * ow..(i + 1) * ow]);
                let done = max_backward_2x2_row(top, bottom, out, grad, dx, [t, b]);
                let tiles = top.chunks_exact(2).zip(bottom.chunks_exact(2));
                let rest = tiles.zip(out.iter().zip(grad)).enumerate().skip(done);
                for (j, ((a, b), (&m, &d))) in rest {
                    let past_b0 = (b[0] != m) as usize;
                    let past_a1 = (a[1] != m) as usize * (1 + past_b0);
                    let k = (a[0] != m) as usize * (1 + past_a1);
                    dx[t + 2 * j + offsets[k]] = d;
                }
            }
            return;
        }
        for i in 0..oh {
            for j in 0..ow {
                let first = i * kh * w + j * kw;
                let m = y[i * ow + j];
                let winner = (0..kh)
                    .flat_map(|r| (0..kw).map(move |c| first + r * w + c))
                    .find(|&at| same(x[at], m))
                    .unwrap_or(first);
                dx[winner] = dy[i * ow + j];
            }
        }
    }
}

/// One row of 2×2 max pooling, eight (or four) tiles at a time with AVX2 where the machine has it
/// (NaN propagates, as in [`max`]); a row whose length is not a multiple of the block ends with a
/// block that overlaps the one before (its tiles written twice, with the same values) instead of
/// a scalar tail. Returns how many tiles it did (all of them, or none for fewer than four); the
/// caller does the rest.
/// Measured: the scalar loop was 13 % of LeNet-5's inference (`perf record` of `lenet bench
/// --inference`).
fn max_2x2_row(top: &[f32], bottom: &[f32], out: &mut [f32]) -> usize {
    let tiles = out.len();
    assert!(top.len() >= 2 * tiles && bottom.len() >= 2 * tiles);
    #[cfg(target_arch = "x86_64")]
    if tiles >= 4 && crate::avx2_fma() {
        // SAFETY: AVX2 is present (checked); the loads read `2·tiles` values of `top` and
        // `bottom`, the stores write `tiles` values of `out` (asserted above).
        unsafe {
            use std::arch::x86_64::*;
            #[target_feature(enable = "avx2")]
            unsafe fn run(top: *const f32, bottom: *const f32, out: *mut f32, tiles: usize) {
                // max(a, b), NaN if either is (`_mm256_max_ps` alone returns b when a is NaN).
                let max = |a: __m256, b: __m256| {
                    _mm256_blendv_ps(_mm256_max_ps(a, b), a, _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a))
                };
                // Eight tiles from `j`.
                let eight = |j: usize| {
                    let at = |p: *const f32, k: usize| _mm256_loadu_ps(p.add(2 * j + k));
                    // Down the columns, then across the pairs of columns.
                    let v0 = max(at(top, 0), at(bottom, 0));
                    let v1 = max(at(top, 8), at(bottom, 8));
                    let even = _mm256_shuffle_ps::<0b10_00_10_00>(v0, v1);
                    let odd = _mm256_shuffle_ps::<0b11_01_11_01>(v0, v1);
                    // Tiles in the order 0 1 4 5 | 2 3 6 7: put them back in order.
                    let maxima = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(
                        _mm256_castps_pd(max(even, odd)),
                    ));
                    _mm256_storeu_ps(out.add(j), maxima);
                };
                // Four tiles from `j`: [T0 T0 T1 T1 | T2 T2 T3 T3] by pairs, then the low half.
                let four = |j: usize| {
                    let v = max(
                        _mm256_loadu_ps(top.add(2 * j)),
                        _mm256_loadu_ps(bottom.add(2 * j)),
                    );
                    let pairs = max(
                        _mm256_shuffle_ps::<0b10_00_10_00>(v, v),
                        _mm256_shuffle_ps::<0b11_01_11_01>(v, v),
                    );
                    let four = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b00_00_10_00>(
                        _mm256_castps_pd(pairs),
                    ));
                    _mm_storeu_ps(out.add(j), _mm256_castps256_ps128(four));
                };
                if tiles >= 8 {
                    let mut j = 0;
                    loop {
                        eight(j);
                        if j + 8 == tiles {
                            break;
                        }
                        j = (j + 8).min(tiles - 8);
                    }
                } else {
                    four(0);
                    four(tiles - 4);
                }
            }
            run(top.as_ptr(), bottom.as_ptr(), out.as_mut_ptr(), tiles);
        }
        return tiles;
    }
    0
}

/// The gradient of one row of 2×2 tiles without NaN, four tiles at a time with AVX2 where the
/// machine has it (the last block overlapping the one before where the row's length is not a
/// multiple of four): the two input rows at `at[0]`, `at[1]` of `dx` are written whole (the
/// winner gets the gradient, the other three zero). Returns how many tiles it did (all, or none
/// for fewer than four); the caller does the rest. Measured: max pooling's backward pass was the largest item after the convolutions in
/// `lenet train`'s profile (7.6 %) with one scalar store per tile.
fn max_backward_2x2_row(
    top: &[f32],
    bottom: &[f32],
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    at: [usize; 2],
) -> usize {
    let tiles = y.len();
    assert!(top.len() >= 2 * tiles && bottom.len() >= 2 * tiles && dy.len() >= tiles);
    assert!(at[0] + 2 * tiles <= dx.len() && at[1] + 2 * tiles <= dx.len());
    #[cfg(target_arch = "x86_64")]
    if tiles >= 4 && crate::avx2_fma() {
        let (t, b) = (at[0], at[1]);
        // SAFETY: AVX2 is present (checked); every load and store below reads `2·tiles` values
        // of `top`, `bottom`, `dx[t..]`, `dx[b..]` or `tiles` of `y`, `dy` (asserted above).
        unsafe {
            use std::arch::x86_64::*;
            #[target_feature(enable = "avx2")]
            unsafe fn run(
                top: *const f32,
                bottom: *const f32,
                y: *const f32,
                dy: *const f32,
                dx_top: *mut f32,
                dx_bottom: *mut f32,
                tiles: usize,
            ) {
                // Each tile's pooled value and gradient twice, for its two columns.
                let pairs = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
                let odd = _mm256_castsi256_ps(_mm256_setr_epi32(0, -1, 0, -1, 0, -1, 0, -1));
                let ones = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
                let mut j = 0;
                loop {
                    let twice = |p: *const f32| {
                        _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(p)), pairs)
                    };
                    let (m, d) = (twice(y.add(j)), twice(dy.add(j)));
                    let e = _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_loadu_ps(top.add(2 * j)), m);
                    let f = _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_loadu_ps(bottom.add(2 * j)), m);
                    // Per tile: a0 wins if equal; a1 if equal and a0 is not; b0 if equal and
                    // neither top one is; b1 otherwise (the scalar loop's order).
                    let (e0, e1, f0) = (
                        _mm256_moveldup_ps(e),
                        _mm256_movehdup_ps(e),
                        _mm256_moveldup_ps(f),
                    );
                    let top_mask = _mm256_andnot_ps(_mm256_and_ps(e0, odd), e);
                    let any_top = _mm256_or_ps(e0, e1);
                    let bottom_even = _mm256_andnot_ps(any_top, f);
                    let bottom_odd = _mm256_xor_ps(_mm256_or_ps(any_top, f0), ones);
                    let bottom_mask = _mm256_blendv_ps(bottom_even, bottom_odd, odd);
                    _mm256_storeu_ps(dx_top.add(2 * j), _mm256_and_ps(top_mask, d));
                    _mm256_storeu_ps(dx_bottom.add(2 * j), _mm256_and_ps(bottom_mask, d));
                    if j + 4 == tiles {
                        break;
                    }
                    j = (j + 4).min(tiles - 4);
                }
            }
            let base = dx.as_mut_ptr();
            run(
                top.as_ptr(),
                bottom.as_ptr(),
                y.as_ptr(),
                dy.as_ptr(),
                base.add(t),
                base.add(b),
                tiles,
            );
        }
        return tiles;
    }
    0
}

/// The larger of two values, NaN if either is NaN (as Burn's and PyTorch's max pooling);
/// `a` when equal, so the first maximum is the one kept.
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if (b > a) | b.is_nan() {
        b
    } else {
        a
    }
}

/// Equal, or both NaN.
#[inline(always)]
fn same(v: f32, m: f32) -> bool {
    (v == m) | (v.is_nan() & m.is_nan())
}

/// The pooled planes, `[planes, oh, ow]`.
pub fn forward(g: &PoolGeometry, kind: PoolKind, x: &[f32]) -> Vec<f32> {
    assert_eq!(
        x.len(),
        g.planes * g.plane_len(),
        "pool forward: input size"
    );
    if g.out_len() == 0 {
        return Vec::new();
    }
    let (plane, out) = (g.plane_len(), g.out_len());
    par_chunks_zeroed(
        g.planes * out,
        out * PLANES_PER_TASK,
        || (),
        |_, i, y| {
            let x = &x[i * PLANES_PER_TASK * plane..][..y.len() / out * plane];
            for (y, x) in y.chunks_mut(out).zip(x.chunks(plane.max(1))) {
                g.plane(kind, x, y);
            }
        },
    )
}

/// The input gradient of max pooling, from the input `x`, the pooled `y` and its gradient `dy`.
pub fn max_backward(g: &PoolGeometry, x: &[f32], y: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(
        x.len(),
        g.planes * g.plane_len(),
        "pool backward: input size"
    );
    assert_eq!(
        y.len(),
        g.planes * g.out_len(),
        "pool backward: output size"
    );
    assert_eq!(dy.len(), y.len(), "pool backward: gradient size");
    let (plane, out) = (g.plane_len(), g.out_len());
    if out == 0 || plane == 0 {
        return vec![0.0; g.planes * plane];
    }
    par_chunks_zeroed(
        g.planes * plane,
        plane * PLANES_PER_TASK,
        || (),
        |_, i, dx| {
            let (first, count) = (i * PLANES_PER_TASK, dx.len() / plane);
            let x = &x[first * plane..][..count * plane];
            let (y, dy) = (
                &y[first * out..][..count * out],
                &dy[first * out..][..count * out],
            );
            let part = PoolGeometry {
                planes: count,
                ..*g
            };
            part.backward_planes_here(PoolKind::Max, x, y, dy, dx);
        },
    )
}

/// The input gradient of average pooling: each output gradient spread evenly over its tile.
pub fn avg_backward(g: &PoolGeometry, dy: &[f32]) -> Vec<f32> {
    assert_eq!(
        dy.len(),
        g.planes * g.out_len(),
        "pool backward: gradient size"
    );
    if g.out_len() == 0 || g.plane_len() == 0 {
        return vec![0.0; g.planes * g.plane_len()];
    }
    let (plane, out) = (g.plane_len(), g.out_len());
    par_chunks_zeroed(
        g.planes * plane,
        plane * PLANES_PER_TASK,
        || (),
        |_, i, dx| {
            let count = dx.len() / plane;
            let dy = &dy[i * PLANES_PER_TASK * out..][..count * out];
            let part = PoolGeometry {
                planes: count,
                ..*g
            };
            part.backward_planes_here(PoolKind::Avg, &[], &[], dy, dx);
        },
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The founding document's 4×4 example (also pooled by the convolution's fused pooling in
    /// `conv`'s tests).
    pub(crate) const DOCUMENT_4X4: [f32; 16] = [
        32., 10., 11., 17., //
        4., 14., 9., 19., //
        20., 4., 16., 27., //
        8., 12., 7., 14.,
    ];

    /// The founding document's 4×4 example, pooled by 2×2 tiles: (max, mean) per region
    /// (32, 15), (19, 14), (20, 11), (27, 16).
    #[test]
    fn the_documented_four_regions() {
        let x = DOCUMENT_4X4;
        let g = PoolGeometry {
            planes: 1,
            size: [4, 4],
            kernel: [2, 2],
        };
        assert_eq!(forward(&g, PoolKind::Max, &x), vec![32., 19., 20., 27.]);
        assert_eq!(forward(&g, PoolKind::Avg, &x), vec![15., 14., 11., 16.]);
    }

    #[test]
    fn max_gradient_goes_to_the_winner_and_leftover_rows_get_none() {
        // 3×5 plane, 2×2 tiles: one row and one column are left over.
        let x: Vec<f32> = vec![
            1., 5., 2., 0., 9., //
            3., 4., 8., 1., 9., //
            9., 9., 9., 9., 9.,
        ];
        let g = PoolGeometry {
            planes: 1,
            size: [3, 5],
            kernel: [2, 2],
        };
        let y = forward(&g, PoolKind::Max, &x);
        assert_eq!(y, vec![5., 8.]);
        let dx = max_backward(&g, &x, &y, &[10., 20.]);
        let mut want = vec![0.0; 15];
        want[1] = 10.;
        want[7] = 20.;
        assert_eq!(dx, want);
        let dx = avg_backward(&g, &[4., 8.]);
        assert_eq!(
            dx,
            vec![1., 1., 2., 2., 0., 1., 1., 2., 2., 0., 0., 0., 0., 0., 0.]
        );
    }

    /// Ties everywhere (values from {0, 1, 2}), rows of 4-tile blocks and leftovers, odd sizes:
    /// every tile's gradient goes to its first maximum in the order (top left, top right,
    /// bottom left, bottom right), as a direct reading of the definition says.
    #[test]
    fn max_gradient_goes_to_the_first_maximum_with_many_ties() {
        for (h, w) in [(2, 8), (4, 10), (6, 19), (28, 28), (10, 9)] {
            let g = PoolGeometry {
                planes: 3,
                size: [h, w],
                kernel: [2, 2],
            };
            let x: Vec<f32> = (0..(3 * h * w) as u64)
                .map(|i| ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) % 3) as f32)
                .collect();
            let y = forward(&g, PoolKind::Max, &x);
            let dy: Vec<f32> = (0..y.len()).map(|i| 1.0 + i as f32).collect();
            let dx = max_backward(&g, &x, &y, &dy);
            let [oh, ow] = g.out_size();
            let mut want = vec![0.0; x.len()];
            for p in 0..3 {
                for i in 0..oh {
                    for j in 0..ow {
                        let at = |r: usize, c: usize| p * h * w + (2 * i + r) * w + 2 * j + c;
                        let tile = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                        let m = tile.iter().map(|&k| x[k]).fold(f32::MIN, f32::max);
                        let first = tile.into_iter().find(|&k| x[k] == m).unwrap();
                        want[first] = dy[(p * oh + i) * ow + j];
                    }
                }
            }
            assert_eq!(dx, want, "{h}x{w}");
        }
    }

    /// Rows of 8-tile blocks and leftovers: every tile's maximum, and NaN anywhere in a tile
    /// (either row, either column) makes the tile NaN.
    #[test]
    fn max_pooling_rows_match_the_definition_and_keep_nan() {
        for (h, w) in [(2, 16), (4, 34), (28, 28), (6, 41), (10, 10), (4, 9)] {
            let g = PoolGeometry {
                planes: 2,
                size: [h, w],
                kernel: [2, 2],
            };
            let mut x: Vec<f32> = (0..(2 * h * w) as u64)
                .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / 1e6 - 8.0)
                .collect();
            for (k, at) in [0, w + 3, 2 * w + 12, 3 * w + 9].into_iter().enumerate() {
                if at < x.len() && k < h {
                    x[at] = f32::NAN;
                }
            }
            let y = forward(&g, PoolKind::Max, &x);
            let [oh, ow] = g.out_size();
            for p in 0..2 {
                for i in 0..oh {
                    for j in 0..ow {
                        let at = |r: usize, c: usize| x[p * h * w + (2 * i + r) * w + 2 * j + c];
                        let tile = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                        let got = y[(p * oh + i) * ow + j];
                        if tile.iter().any(|v| v.is_nan()) {
                            assert!(got.is_nan(), "{h}x{w} tile {p},{i},{j}: {got}");
                        } else {
                            let want = tile.iter().copied().fold(f32::MIN, f32::max);
                            assert_eq!(got, want, "{h}x{w} tile {p},{i},{j}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn nan_and_the_first_of_equal_values_win_the_max() {
        for kernel in [[2, 2], [1, 4]] {
            let g = PoolGeometry {
                planes: 1,
                size: [2, 4],
                kernel,
            };
            // Tiles (2×2): [1 NaN; 3 2] and [7 7; 7 1]; (1×4): the two rows.
            let x = [1., f32::NAN, 7., 7., 3., 2., 7., 1.];
            let y = forward(&g, PoolKind::Max, &x);
            assert!(y[0].is_nan(), "{kernel:?}: {y:?}");
            assert_eq!(y[1], 7.0, "{kernel:?}");
            let dx = max_backward(&g, &x, &y, &[10., 20.]);
            let want = if kernel == [2, 2] {
                [0., 10., 20., 0., 0., 0., 0., 0.]
            } else {
                [0., 10., 0., 0., 0., 0., 20., 0.]
            };
            assert_eq!(dx, want, "{kernel:?}");
        }
    }
}
