//! The kernels under the math: a bounds-checked, safe entry to
//! `matrixmultiply::sgemm` (the math's only `unsafe`, kept in this file so the
//! rest of the math stays entirely safe) and a vectorisable dot product.

/// A read-only matrix view over a slice with arbitrary element strides:
/// element `(i, j)` is `data[i·row_stride + j·col_stride]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

/// A writable row-major matrix view (unit column stride, `row_stride ≥ cols`, so
/// no two elements share storage, as `sgemm` requires of its output).
#[derive(Debug)]
pub(super) struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

/// Number of slice elements a strided view reaches (its last index + 1).
fn extent(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> usize {
    if rows == 0 || cols == 0 { 0 } else { (rows - 1) * row_stride + (cols - 1) * col_stride + 1 }
}

/// `c = alpha · a · b`; `c` is overwritten (never read).
///
/// # Panics
/// When the shapes disagree, a view reaches past its slice, or `c`'s rows overlap.
pub(super) fn matmul(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, c: MatMut<'_>) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && c.rows == m && c.cols == n,
        "matmul: shapes {m}x{k} · {}x{n} → {}x{}",
        b.rows,
        c.rows,
        c.cols
    );
    assert!(extent(a.rows, a.cols, a.row_stride, a.col_stride) <= a.data.len(), "matmul: A exceeds its slice");
    assert!(extent(b.rows, b.cols, b.row_stride, b.col_stride) <= b.data.len(), "matmul: B exceeds its slice");
    assert!(extent(c.rows, c.cols, c.row_stride, 1) <= c.data.len(), "matmul: C exceeds its slice");
    assert!(m <= 1 || c.row_stride >= n, "matmul: rows of C overlap");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in c.data.chunks_mut(c.row_stride.max(1)).take(m) {
            row[..n].fill(0.0);
        }
        return;
    }
    // Slice lengths never exceed isize::MAX, so strides bounded by them convert losslessly.
    let s = |v: usize| v as isize;
    // SAFETY: every element sgemm reads is (i·rs + j·cs) for i < rows, j < cols of A or B,
    // and every element it writes is i·row_stride + j of C; the asserts above prove those
    // indices lie inside the respective slices. C is a unique borrow, so it cannot alias A
    // or B, and its rows do not overlap each other (unit column stride, row_stride ≥ n).
    // beta = 0, so C's prior contents are not read.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            s(a.row_stride),
            s(a.col_stride),
            b.data.as_ptr(),
            s(b.row_stride),
            s(b.col_stride),
            0.0,
            c.data.as_mut_ptr(),
            s(c.row_stride),
            1,
        );
    }
}

/// Dot product with eight independent accumulators (so it vectorises).
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplies_strided_views() {
        // A = [[1,2],[3,4]], B = Aᵀ read from the same storage with swapped strides.
        let a = [1.0, 2.0, 3.0, 4.0];
        let mut c = [0.0; 4];
        matmul(
            2.0,
            MatRef { data: &a, rows: 2, cols: 2, row_stride: 2, col_stride: 1 },
            MatRef { data: &a, rows: 2, cols: 2, row_stride: 1, col_stride: 2 },
            MatMut { data: &mut c, rows: 2, cols: 2, row_stride: 2 },
        );
        assert_eq!(c, [10.0, 22.0, 22.0, 50.0]);
    }

    #[test]
    #[should_panic(expected = "B exceeds its slice")]
    fn refuses_views_past_the_slice() {
        let mut c = [0.0; 2];
        matmul(
            1.0,
            MatRef { data: &[1.0, 2.0], rows: 1, cols: 2, row_stride: 2, col_stride: 1 },
            MatRef { data: &[1.0, 2.0, 3.0], rows: 2, cols: 2, row_stride: 2, col_stride: 1 },
            MatMut { data: &mut c, rows: 1, cols: 2, row_stride: 2 },
        );
    }
}
