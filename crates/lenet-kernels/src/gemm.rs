//! One safe entry point to the `gemm` crate's matrix product (the one burn-flex uses), for
//! row-major or transposed views of `f32` slices, run on the calling thread.

/// A matrix view: `rows × cols` elements of a slice, element `(i, j)` at `i * row_stride +
/// j * col_stride`. A transposed view of a row-major matrix swaps the strides.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major `rows × cols` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major `rows × cols` matrix (a `cols × rows` view).
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View {
            data,
            rows: cols,
            cols: rows,
            row_stride: 1,
            col_stride: cols,
        }
    }

    /// Index of the last element plus one; the view must fit in its slice.
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return 0;
        }
        (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
    }
}

/// `dst = a · b` (row-major `dst`), or `dst += a · b` with `accumulate`, on this thread only:
/// callers parallelise over images, which for LeNet-sized matrices beats splitting one product.
///
/// # Panics
/// If the shapes do not chain or a view does not fit in its slice (a bug in the caller).
pub fn matmul(dst: &mut [f32], a: View<'_>, b: View<'_>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "matmul: inner dimensions differ");
    assert!(dst.len() >= m * n, "matmul: destination too small");
    assert!(
        a.extent() <= a.data.len(),
        "matmul: left view out of bounds"
    );
    assert!(
        b.extent() <= b.data.len(),
        "matmul: right view out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: every element `gemm` reads or writes lies inside its slice (checked above:
    // `extent` is the largest offset the strides reach, and `dst` holds m·n row-major
    // elements); `dst` is borrowed mutably, so it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &View<'_>, b: &View<'_>) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for p in 0..a.cols {
                    out[i * b.cols + j] += a.data[i * a.row_stride + p * a.col_stride]
                        * b.data[p * b.row_stride + j * b.col_stride];
                }
            }
        }
        out
    }

    #[test]
    fn products_of_plain_and_transposed_views_match_the_definition() {
        // a: 3×4 row-major, b: 4×5 row-major, c: 5×4 row-major (so c^T is 4×5).
        let a: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..20).map(|i| (i % 7) as f32 - 3.0).collect();
        let c: Vec<f32> = (0..20).map(|i| (i % 5) as f32 * 0.25).collect();
        for (a, b) in [
            (View::rows(&a, 3, 4), View::rows(&b, 4, 5)),
            (View::rows(&a, 3, 4), View::transposed(&c, 5, 4)),
            (View::transposed(&a, 4, 3), View::rows(&a, 4, 3)),
        ] {
            let want = naive(&a, &b);
            let mut got = vec![f32::NAN; a.rows * b.cols];
            matmul(&mut got, a, b, false);
            assert_eq!(got, want);
            // Accumulating adds the product once more.
            matmul(&mut got, a, b, true);
            let twice: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
            assert_eq!(got, twice);
        }
    }

    #[test]
    #[should_panic(expected = "inner dimensions differ")]
    fn mismatched_shapes_are_refused() {
        let a = [0.0f32; 6];
        matmul(
            &mut [0.0; 4],
            View::rows(&a, 2, 3),
            View::rows(&a, 2, 3),
            false,
        );
    }
}
