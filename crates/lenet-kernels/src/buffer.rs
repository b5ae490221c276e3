//! Output buffers.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// `n` floats written by rayon's tasks, `chunk` at a time: the task that gets the `i`-th chunk
/// zeroes it and calls `fill(state, i, chunk)` (`state` made by `init`, once per task, as in
/// rayon's `for_each_init`). The kernels' outputs are megabytes at LeNet's batch sizes; zeroing
/// the whole buffer first, even with all threads, was one more pass through memory (measured:
/// 6.9 % of a LeNet-5 training step at batch 256, `perf record` of `lenet train`, 2026-12-01),
/// while a chunk zeroed by its task is still in that core's cache when the kernel writes it.
pub(crate) fn par_chunks_zeroed<S, I, F>(n: usize, chunk: usize, init: I, fill: F) -> Vec<f32>
where
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, usize, &mut [f32]) + Sync + Send,
{
    let mut v: Vec<f32> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each_init(init, |state, (i, part)| {
            part.fill(MaybeUninit::new(0.0));
            // SAFETY: every value of `part` was initialised just above, and `MaybeUninit<f32>`
            // has the layout of `f32`.
            let part = unsafe { &mut *(part as *mut [MaybeUninit<f32>] as *mut [f32]) };
            fill(state, i, part);
        });
    // SAFETY: the loop above visited every chunk of the first `n` values and initialised each
    // (a panic in `fill` propagates out of `for_each_init` before this line).
    unsafe { v.set_len(n) };
    v
}

/// The sum of `values` in 16 interleaved partial sums, added in a fixed order at the end: the
/// compiler vectorises it, where `iter().sum()` is one dependent addition per value (measured:
/// the first convolution's bias gradient, 784 values per map and image, was 7 % of a LeNet-5
/// training step at batch 256, `perf record` of `lenet train`, 2026-12-01). The rounding depends
/// on the values and their number only.
pub(crate) fn sum(values: &[f32]) -> f32 {
    sum_map(values, |v| v)
}

/// The sum of `f(v)` over `values`, in the order of [`sum`].
pub(crate) fn sum_map(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let blocks = values.chunks_exact(LANES);
    let rest = blocks.remainder();
    for block in blocks {
        for (a, v) in acc.iter_mut().zip(block) {
            *a += f(*v);
        }
    }
    // Pairwise, in a fixed order.
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    rest.iter().fold(acc[0], |total, v| total + f(*v))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_chunk_is_zeroed_and_filled_once_with_its_index() {
        for (n, chunk) in [(0, 4), (1, 4), (1000, 7), (100_003, 64), (5, 0)] {
            // Each task writes its chunk index into half of its values and leaves the rest:
            // those must read 0.
            let v = super::par_chunks_zeroed(
                n,
                chunk,
                || (),
                |_, i, part| {
                    let half = part.len() / 2;
                    part[..half].fill(i as f32 + 1.0);
                },
            );
            assert_eq!(v.len(), n);
            for (i, part) in v.chunks(chunk.max(1)).enumerate() {
                let half = part.len() / 2;
                assert!(part[..half].iter().all(|&x| x == i as f32 + 1.0), "n {n}");
                assert!(part[half..].iter().all(|&x| x == 0.0), "n {n}");
            }
        }
    }

    #[test]
    fn sums_match_a_sum_in_f64() {
        for n in [0, 1, 15, 16, 17, 784, 1001] {
            let values: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let exact: f64 = values.iter().map(|&v| f64::from(v)).sum();
            let got = super::sum(&values);
            assert!(
                (f64::from(got) - exact).abs() <= 1e-4 * exact.abs().max(1.0),
                "n {n}"
            );
        }
        // Exactly representable values: exact.
        assert_eq!(super::sum(&[1.0; 100]), 100.0);
        assert_eq!(super::sum(&[0.5, 0.25, 0.125]), 0.875);
    }
}
