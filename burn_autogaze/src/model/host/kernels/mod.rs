//! The few CPU kernels the host decoder is made of: a matrix product over
//! 16-column panels (AVX2 + FMA when the CPU has them at runtime, plain Rust
//! otherwise), an `exp` for 8 lanes, softmax along rows of scores, and
//! SiLU-gated products.
//!
//! Every kernel takes slices and checks the extent it will touch before it
//! runs; the vector code behind it reads and writes only inside that extent.

/// Columns per panel: two 8-lane vectors.
pub const PANEL: usize = 16;
/// Rows per register tile (6 x 2 accumulators + 2 panel rows + 1 broadcast
/// fit the 16 vector registers).
const ROWS: usize = 6;
/// Panels a one-row tile spans (4 x 2 accumulators).
const ROW_PANELS: usize = 4;

/// A right-hand matrix `[k, n]` stored as `ceil(n / 16)` panels of `k`
/// rows of 16 columns (zero beyond `n`): a panel's rows are contiguous, so
/// the product streams each weight once per call.
#[derive(Debug, Clone)]
pub struct Packed {
    pub k: usize,
    pub n: usize,
    data: Vec<f32>,
}

impl Packed {
    /// Packs a row-major `[k, n]` matrix.
    pub fn new(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(
            w.len(),
            k * n,
            "packed matrix: {k} x {n} needs {} values",
            k * n
        );
        let panels = n.div_ceil(PANEL);
        let mut data = vec![0f32; panels * k * PANEL];
        for p in 0..panels {
            let cols = PANEL.min(n - p * PANEL);
            for r in 0..k {
                let src = &w[r * n + p * PANEL..][..cols];
                data[(p * k + r) * PANEL..][..cols].copy_from_slice(src);
            }
        }
        Self { k, n, data }
    }

    /// Columns `cols` (on panel boundaries) as a product operand.
    pub fn columns(&self, cols: std::ops::Range<usize>) -> Panels<'_> {
        assert!(
            cols.start.is_multiple_of(PANEL) && cols.start <= cols.end && cols.end <= self.n,
            "packed matrix: columns {cols:?} of {} off panel boundaries",
            self.n
        );
        let stride = self.k * PANEL;
        Panels {
            data: &self.data[cols.start / PANEL * stride..],
            k: self.k,
            n: cols.len(),
            panel_stride: stride,
            row_stride: PANEL,
        }
    }

    /// The panels as a product operand.
    pub fn panels(&self) -> Panels<'_> {
        Panels {
            data: &self.data,
            k: self.k,
            n: self.n,
            panel_stride: self.k * PANEL,
            row_stride: PANEL,
        }
    }
}

/// A right-hand operand `[k, n]` in 16-column panels: panel `p`'s row `r`
/// is the 16 values at `p * panel_stride + r * row_stride`.
#[derive(Debug, Clone, Copy)]
pub struct Panels<'a> {
    pub data: &'a [f32],
    pub k: usize,
    pub n: usize,
    pub panel_stride: usize,
    pub row_stride: usize,
}

/// A left-hand operand `[m, k]`: element `(r, c)` at `r * row_stride + c * col_stride`.
#[derive(Debug, Clone, Copy)]
pub struct Lhs<'a> {
    pub data: &'a [f32],
    pub m: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Lhs<'a> {
    /// The first `m` rows of a row-major matrix of `k` columns.
    pub fn rows(data: &'a [f32], m: usize, k: usize) -> Self {
        Self {
            data: &data[..m * k],
            m,
            row_stride: k,
            col_stride: 1,
        }
    }
}

/// `out[r * ldc + c] (+)= sum_i a(r, i) * b(i, c)` for `r < a.m`, `c < b.n`:
/// stored, or added to what `out` holds (`add`: `out + a @ b`, the product
/// summed first). Each output sums its `k` terms in order, one fused
/// multiply-add at a time.
pub fn gemm(a: Lhs<'_>, b: Panels<'_>, out: &mut [f32], ldc: usize, add: bool) {
    let (m, k, n) = (a.m, b.k, b.n);
    if m == 0 || n == 0 {
        return;
    }
    let panels = n.div_ceil(PANEL);
    // The extent each operand is read or written at.
    let a_end = (m - 1) * a.row_stride + k.saturating_sub(1) * a.col_stride + 1;
    let b_end = (panels - 1) * b.panel_stride + k.saturating_sub(1) * b.row_stride + PANEL;
    assert!(
        k > 0 && a.data.len() >= a_end,
        "gemm: left operand too short"
    );
    assert!(b.data.len() >= b_end, "gemm: right operand too short");
    assert!(
        ldc >= n && out.len() >= (m - 1) * ldc + n,
        "gemm: output too short"
    );
    #[cfg(target_arch = "x86_64")]
    let fast =
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    if m == 1 {
        // One row: a tile of one row and one panel has a single chain of
        // dependent multiply-adds per vector; up to 4 panels side by side
        // keep 8 chains in flight (the same sums, in the same order).
        for p in (0..panels).step_by(ROW_PANELS) {
            let group = ROW_PANELS.min(panels - p);
            let t = Tile {
                a: a.data,
                ars: a.row_stride,
                acs: a.col_stride,
                b: &b.data[p * b.panel_stride..],
                brs: b.row_stride,
                bps: b.panel_stride,
                panels: group,
                k,
                out: &mut out[p * PANEL..],
                ldc,
                cols: PANEL.min(n - (p + group - 1) * PANEL),
                add,
            };
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: AVX2 and FMA are present (checked above); the tile
                // stays inside the extents asserted above.
                unsafe { avx2::tile(t, 1) };
                continue;
            }
            plain_tile(t, 1);
        }
        return;
    }
    for p in 0..panels {
        let cols = PANEL.min(n - p * PANEL);
        let b_off = p * b.panel_stride;
        let mut r0 = 0;
        while r0 < m {
            let rows = ROWS.min(m - r0);
            let t = Tile {
                a: &a.data[r0 * a.row_stride..],
                ars: a.row_stride,
                acs: a.col_stride,
                b: &b.data[b_off..],
                brs: b.row_stride,
                bps: b.panel_stride,
                panels: 1,
                k,
                out: &mut out[r0 * ldc + p * PANEL..],
                ldc,
                cols,
                add,
            };
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: AVX2 and FMA are present (checked above); the tile
                // stays inside the extents asserted above.
                unsafe { avx2::tile(t, rows) };
                r0 += rows;
                continue;
            }
            plain_tile(t, rows);
            r0 += rows;
        }
    }
}

/// One register tile: up to 6 rows by one 16-column panel, or one row by
/// up to [`ROW_PANELS`] panels (`bps` apart; `cols` is the last one's
/// width).
struct Tile<'a> {
    a: &'a [f32],
    ars: usize,
    acs: usize,
    b: &'a [f32],
    brs: usize,
    bps: usize,
    panels: usize,
    k: usize,
    out: &'a mut [f32],
    ldc: usize,
    cols: usize,
    add: bool,
}

fn plain_tile(t: Tile<'_>, rows: usize) {
    for q in 0..t.panels {
        let mut acc = [[0f32; PANEL]; ROWS];
        for i in 0..t.k {
            let b = &t.b[q * t.bps + i * t.brs..][..PANEL];
            for (r, acc) in acc.iter_mut().enumerate().take(rows) {
                let a = t.a[r * t.ars + i * t.acs];
                for (c, v) in acc.iter_mut().enumerate() {
                    *v += a * b[c];
                }
            }
        }
        let cols = if q + 1 == t.panels { t.cols } else { PANEL };
        for (r, acc) in acc.iter().enumerate().take(rows) {
            let out = &mut t.out[r * t.ldc + q * PANEL..][..cols];
            for (o, v) in out.iter_mut().zip(acc) {
                *o = if t.add { *o + v } else { *v };
            }
        }
    }
}

/// `exp` of each value (`-inf` gives 0).
pub fn exp_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA are present (checked just above).
        unsafe { avx2::exp_slice(x) };
        return;
    }
    for v in x {
        *v = v.exp();
    }
}

/// `x[i] = silu(x[i]) * y[i]` (SiLU: `v / (1 + exp(-v))`).
pub fn silu_mul(x: &mut [f32], y: &[f32]) {
    assert_eq!(x.len(), y.len(), "silu_mul: operands differ in length");
    let mut buf = [0f32; 64];
    for (x, y) in x.chunks_mut(64).zip(y.chunks(64)) {
        let e = &mut buf[..x.len()];
        for (e, v) in e.iter_mut().zip(x.iter()) {
            *e = -v;
        }
        exp_in_place(e);
        for ((v, e), u) in x.iter_mut().zip(e.iter()).zip(y) {
            *v = *v / (1.0 + e) * u;
        }
    }
}

/// Softmax of the rows of `s` (one a query, `ld` apart), less its division:
/// row `i` sees keys `..visible(i)` (at most `bias.len()`), each with its
/// `bias` (0, or -inf for a masked key) added. A seen key's score becomes
/// `exp(score + bias - row max)`, every other key of the row up to
/// `bias.len()` becomes 0; `inv_sum[i]` is 1 / row `i`'s sum (0 for a row
/// that sees nothing), for the caller to apply to the (smaller) product of
/// the weights with the values. Scores are already scaled.
pub fn softmax_rows(
    s: &mut [f32],
    ld: usize,
    bias: &[f32],
    visible: impl Fn(usize) -> usize,
    inv_sum: &mut [f32],
) {
    let (rows, keys) = (inv_sum.len(), bias.len());
    if rows == 0 {
        return;
    }
    assert!(
        ld >= keys && s.len() >= (rows - 1) * ld + keys,
        "softmax_rows: {rows} rows of {keys} keys, {ld} apart, need more than {} values",
        s.len()
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA are present (checked just above).
        unsafe { avx2::softmax_rows(s, ld, bias, visible, inv_sum) };
        return;
    }
    softmax_rows_with(s, ld, bias, visible, inv_sum, softmax_row);
}

/// [`softmax_rows`] with a kernel for one row's seen keys (`row`, `bias`:
/// adds the bias, exponentiates less the row's max, returns the sum).
#[inline(always)]
fn softmax_rows_with(
    s: &mut [f32],
    ld: usize,
    bias: &[f32],
    visible: impl Fn(usize) -> usize,
    inv_sum: &mut [f32],
    row_kernel: impl Fn(&mut [f32], &[f32]) -> f32,
) {
    let keys = bias.len();
    for (i, inv) in inv_sum.iter_mut().enumerate() {
        let seen = visible(i).min(keys);
        let (row, unseen) = s[i * ld..][..keys].split_at_mut(seen);
        unseen.fill(0.0);
        let sum = row_kernel(row, &bias[..seen]);
        *inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
    }
}

/// One row's softmax numerators and their sum, in plain Rust.
fn softmax_row(row: &mut [f32], bias: &[f32]) -> f32 {
    let mut max = f32::NEG_INFINITY;
    for (v, b) in row.iter_mut().zip(bias) {
        *v += b;
        max = max.max(*v);
    }
    // A row that sees nothing stays at -inf (exp gives 0).
    let shift = if max == f32::NEG_INFINITY { 0.0 } else { max };
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - shift).exp();
        sum += *v;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{PANEL, ROWS, Tile};

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn softmax_rows(
        s: &mut [f32],
        ld: usize,
        bias: &[f32],
        visible: impl Fn(usize) -> usize,
        inv_sum: &mut [f32],
    ) {
        // The closure inherits this function's target features.
        super::softmax_rows_with(s, ld, bias, visible, inv_sum, |row, bias| {
            softmax_row(row, bias)
        })
    }

    /// [`super::softmax_row`] 8 lanes at a time (sums lane by lane, then
    /// across the lanes).
    #[target_feature(enable = "avx2,fma")]
    fn softmax_row(row: &mut [f32], bias: &[f32]) -> f32 {
        assert_eq!(row.len(), bias.len(), "softmax_row: a bias per key");
        let (chunks, tail) = row.as_chunks_mut::<8>();
        let (bias8, bias_tail) = bias.as_chunks::<8>();
        let mut max8 = _mm256_set1_ps(f32::NEG_INFINITY);
        for (c, b) in chunks.iter_mut().zip(bias8) {
            // SAFETY: `c` and `b` hold 8 values.
            unsafe {
                let v = _mm256_add_ps(_mm256_loadu_ps(c.as_ptr()), _mm256_loadu_ps(b.as_ptr()));
                _mm256_storeu_ps(c.as_mut_ptr(), v);
                max8 = _mm256_max_ps(max8, v);
            }
        }
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 values.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), max8) };
        let mut max = lanes.into_iter().fold(f32::NEG_INFINITY, f32::max);
        for (v, b) in tail.iter_mut().zip(bias_tail) {
            *v += b;
            max = max.max(*v);
        }
        // A row that sees nothing stays at -inf (exp gives 0).
        let shift = _mm256_set1_ps(if max == f32::NEG_INFINITY { 0.0 } else { max });
        let mut sum8 = _mm256_setzero_ps();
        for c in chunks.iter_mut() {
            // SAFETY: `c` holds 8 values.
            unsafe {
                let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), shift));
                _mm256_storeu_ps(c.as_mut_ptr(), e);
                sum8 = _mm256_add_ps(sum8, e);
            }
        }
        if !tail.is_empty() {
            let mut last = [f32::NEG_INFINITY; 8];
            last[..tail.len()].copy_from_slice(tail);
            // SAFETY: `last` holds 8 values.
            unsafe {
                let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(last.as_ptr()), shift));
                _mm256_storeu_ps(last.as_mut_ptr(), e);
                sum8 = _mm256_add_ps(sum8, e);
            }
            tail.copy_from_slice(&last[..tail.len()]);
        }
        // SAFETY: `lanes` holds 8 values.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum8) };
        lanes.iter().sum()
    }

    /// Dispatches a tile of `rows` (1..=6) rows by one panel, or of one row
    /// by `t.panels` (2..=4) panels, to its unrolled kernel.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn tile(t: Tile<'_>, rows: usize) {
        match (rows, t.panels) {
            (1, 2) => tile_rows::<1, 2>(t),
            (1, 3) => tile_rows::<1, 3>(t),
            (1, 4) => tile_rows::<1, 4>(t),
            (1, _) => tile_rows::<1, 1>(t),
            (2, _) => tile_rows::<2, 1>(t),
            (3, _) => tile_rows::<3, 1>(t),
            (4, _) => tile_rows::<4, 1>(t),
            (5, _) => tile_rows::<5, 1>(t),
            _ => tile_rows::<ROWS, 1>(t),
        }
    }

    /// `R` rows by `P` panels (the last `cols` wide).
    #[target_feature(enable = "avx2,fma")]
    fn tile_rows<const R: usize, const P: usize>(t: Tile<'_>) {
        let mut acc = [[[_mm256_setzero_ps(); 2]; P]; R];
        let (a, b) = (t.a.as_ptr(), t.b.as_ptr());
        for i in 0..t.k {
            // SAFETY: `gemm` asserted that row `R - 1`, column `k - 1` of
            // the left operand and row `k - 1` of every panel (16 values)
            // lie inside their slices.
            unsafe {
                let ap = a.add(i * t.acs);
                for q in 0..P {
                    let bp = b.add(q * t.bps + i * t.brs);
                    if P == 1 {
                        // Fetch the panel 8 rows ahead: a weight panel
                        // streams from the outer caches once per call, and
                        // a strided panel (the value cache's rows) defeats
                        // the hardware prefetcher.
                        _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(8 * t.brs) as *const i8);
                    }
                    let b0 = _mm256_loadu_ps(bp);
                    let b1 = _mm256_loadu_ps(bp.add(8));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let av = _mm256_broadcast_ss(&*ap.add(r * t.ars));
                        acc[q][0] = _mm256_fmadd_ps(av, b0, acc[q][0]);
                        acc[q][1] = _mm256_fmadd_ps(av, b1, acc[q][1]);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (q, acc) in acc.iter().enumerate() {
                let cols = if q + 1 == P { t.cols } else { PANEL };
                store_panel(*acc, &mut t.out[r * t.ldc + q * PANEL..][..cols], t.add);
            }
        }
    }

    /// Stores (or, with `add`, adds) a panel row's two accumulators into
    /// `out` (up to 16 values).
    #[target_feature(enable = "avx2,fma")]
    fn store_panel(acc: [__m256; 2], out: &mut [f32], add: bool) {
        if out.len() == PANEL {
            // SAFETY: `out` holds 16 values.
            unsafe {
                let p = out.as_mut_ptr();
                let (mut lo, mut hi) = (acc[0], acc[1]);
                if add {
                    lo = _mm256_add_ps(_mm256_loadu_ps(p), lo);
                    hi = _mm256_add_ps(_mm256_loadu_ps(p.add(8)), hi);
                }
                _mm256_storeu_ps(p, lo);
                _mm256_storeu_ps(p.add(8), hi);
            }
            return;
        }
        let mut v = [0f32; PANEL];
        // SAFETY: `v` holds 16 values.
        unsafe {
            _mm256_storeu_ps(v.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(v.as_mut_ptr().add(8), acc[1]);
        }
        if add {
            for (o, v) in out.iter_mut().zip(v) {
                *o += v;
            }
        } else {
            out.copy_from_slice(&v[..out.len()]);
        }
    }

    /// `exp` of 8 lanes: `2^n * p(r)` with `x = n ln 2 + r`, a degree-6
    /// polynomial on `|r| <= ln 2 / 2` (about 1 ulp); below -87.3 (the
    /// normal range's end, `-inf` included) the result is 0, above 88.3 it
    /// is clamped.
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> __m256 {
        let lo = _mm256_set1_ps(-87.3);
        let keep = _mm256_cmp_ps::<_CMP_GE_OQ>(x, lo);
        let x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.3));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            0.166_666_65,
            0.5,
        ] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let p = _mm256_add_ps(
            _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r),
            _mm256_set1_ps(1.0),
        );
        let pow2 = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(pow2)), keep)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn exp_slice(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: `c` holds 8 values.
            unsafe {
                let v = exp8(_mm256_loadu_ps(c.as_ptr()));
                _mm256_storeu_ps(c.as_mut_ptr(), v);
            }
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mut v = [f32::NEG_INFINITY; 8];
            v[..rest.len()].copy_from_slice(rest);
            // SAFETY: `v` holds 8 values.
            unsafe {
                let e = exp8(_mm256_loadu_ps(v.as_ptr()));
                _mm256_storeu_ps(v.as_mut_ptr(), e);
            }
            rest.copy_from_slice(&v[..rest.len()]);
        }
    }
}

#[cfg(test)]
mod tests;
