//! Output buffers.

use rayon::prelude::*;

/// `n` zeros, written by all of rayon's threads: the kernels' outputs are megabytes at LeNet
/// batch sizes, and zeroing them on the calling thread alone left the other threads idle
/// (measured: `memset` was the largest item of the calling thread's profile).
pub(crate) fn zeros(n: usize) -> Vec<f32> {
    let mut v = Vec::new();
    (0..n)
        .into_par_iter()
        .map(|_| 0.0f32)
        .collect_into_vec(&mut v);
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn zeros_are_zeros() {
        for n in [0, 1, 1000, 100_003] {
            let v = super::zeros(n);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|&x| x == 0.0));
        }
    }
}
