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
mod tests {
    use super::*;

    fn seeded(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for r in 0..m {
            for c in 0..n {
                out[r * n + c] = (0..k).map(|i| a[r * k + i] * b[i * n + c]).sum();
            }
        }
        out
    }

    #[test]
    fn gemm_over_panels_equals_the_plain_product_at_ragged_sizes() {
        // One row spans up to 4 panels a tile: 1, 4, 5 and 10 panels here,
        // the last ragged or whole.
        for (m, k, n) in [
            (1, 1, 1),
            (1, 37, 64),
            (1, 9, 70),
            (1, 192, 150),
            (1, 3, 160),
            (7, 5, 17),
            (13, 192, 40),
            (6, 33, 16),
            (20, 3, 2),
        ] {
            let (a, b) = (seeded(m * k, 1), seeded(k * n, 2));
            let want = naive(&a, &b, m, k, n);
            let packed = Packed::new(&b, k, n);
            let lhs = Lhs {
                data: &a,
                m,
                row_stride: k,
                col_stride: 1,
            };
            let mut out = vec![7f32; m * (n + 3)];
            gemm(lhs, packed.panels(), &mut out, n + 3, false);
            for r in 0..m {
                for c in 0..n {
                    let (g, w) = (out[r * (n + 3) + c], want[r * n + c]);
                    assert!(
                        (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{m}x{k}x{n} ({r},{c}): {g} vs {w}"
                    );
                }
                // Columns past n are left alone.
                assert_eq!(&out[r * (n + 3) + n..r * (n + 3) + n + 3], &[7.0; 3]);
            }
            // `add` sums onto what is there; the plain kernel agrees.
            let mut twice = out.clone();
            gemm(lhs, packed.panels(), &mut twice, n + 3, true);
            let mut plain = vec![0f32; m * (n + 3)];
            let p = packed.panels();
            let mut r0 = 0;
            while r0 < m {
                let rows = ROWS.min(m - r0);
                for q in 0..n.div_ceil(PANEL) {
                    plain_tile(
                        Tile {
                            a: &a[r0 * k..],
                            ars: k,
                            acs: 1,
                            b: &p.data[q * p.panel_stride..],
                            brs: PANEL,
                            bps: p.panel_stride,
                            panels: 1,
                            k,
                            out: &mut plain[r0 * (n + 3) + q * PANEL..],
                            ldc: n + 3,
                            cols: PANEL.min(n - q * PANEL),
                            add: false,
                        },
                        rows,
                    );
                }
                r0 += rows;
            }
            for r in 0..m {
                for c in 0..n {
                    let i = r * (n + 3) + c;
                    assert!((twice[i] - 2.0 * out[i]).abs() <= 1e-5 * (1.0 + out[i].abs()));
                    assert!((plain[i] - out[i]).abs() <= 1e-5 * (1.0 + out[i].abs()));
                }
            }
        }
    }

    #[test]
    fn gemm_reads_transposed_operands_through_strides() {
        // a^T @ b with a stored [k, m]: row stride 1, column stride m.
        let (m, k, n) = (9, 11, 16);
        let at = seeded(k * m, 3);
        let a: Vec<f32> = (0..m * k).map(|i| at[(i % k) * m + i / k]).collect();
        let b = seeded(k * n, 4);
        let want = naive(&a, &b, m, k, n);
        let lhs = Lhs {
            data: &at,
            m,
            row_stride: 1,
            col_stride: m,
        };
        let panels = Panels {
            data: &b,
            k,
            n,
            panel_stride: 0,
            row_stride: n,
        };
        let mut out = vec![0f32; m * n];
        gemm(lhs, panels, &mut out, n, false);
        for (g, w) in out.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()));
        }
    }

    #[test]
    fn a_column_range_of_packed_panels_is_that_slice_of_the_product() {
        let (m, k, n) = (7, 9, 40);
        let (a, b) = (seeded(m * k, 8), seeded(k * n, 9));
        let want = naive(&a, &b, m, k, n);
        let packed = Packed::new(&b, k, n);
        let lhs = Lhs {
            data: &a,
            m,
            row_stride: k,
            col_stride: 1,
        };
        // Columns 16..40 written from column 16 of each output row.
        let mut out = vec![0f32; m * n];
        gemm(lhs, packed.columns(16..n), &mut out[16..], n, false);
        for r in 0..m {
            assert_eq!(
                &out[r * n..r * n + 16],
                &[0.0; 16],
                "row {r} left of the range"
            );
            for c in 16..n {
                let (g, w) = (out[r * n + c], want[r * n + c]);
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "({r},{c}): {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn a_plain_one_row_tile_spans_panels() {
        // The fallback kernel's one-row tile over 3 panels, the last ragged.
        let (k, n) = (11, 40);
        let (a, b) = (seeded(k, 10), seeded(k * n, 11));
        let want = naive(&a, &b, 1, k, n);
        let packed = Packed::new(&b, k, n);
        let p = packed.panels();
        let mut out = vec![0f32; n];
        plain_tile(
            Tile {
                a: &a,
                ars: k,
                acs: 1,
                b: p.data,
                brs: PANEL,
                bps: p.panel_stride,
                panels: 3,
                k,
                out: &mut out,
                ldc: n,
                cols: n - 2 * PANEL,
                add: false,
            },
            1,
        );
        for (c, (g, w)) in out.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "column {c}: {g} vs {w}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "off panel boundaries")]
    fn a_column_range_off_panel_boundaries_is_refused() {
        Packed::new(&[1.0; 64], 2, 32).columns(8..32);
    }

    #[test]
    #[should_panic(expected = "left operand too short")]
    fn gemm_refuses_a_short_operand() {
        let b = Packed::new(&[1.0; 4], 2, 2);
        let mut out = [0f32; 4];
        gemm(
            Lhs {
                data: &[1.0; 3],
                m: 2,
                row_stride: 2,
                col_stride: 1,
            },
            b.panels(),
            &mut out,
            2,
            false,
        );
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_library_and_zero_at_minus_infinity() {
        let mut x: Vec<f32> = (-8700..=8800).map(|i| i as f32 / 100.0).collect();
        x.extend([f32::NEG_INFINITY, -1e30, -87.4, 0.0, -0.0, 1e-8]);
        let want: Vec<f32> = x.iter().map(|v| v.exp()).collect();
        let mut got = x.clone();
        exp_in_place(&mut got);
        for ((g, w), v) in got.iter().zip(&want).zip(&x) {
            if *v < -87.3 {
                assert_eq!(*g, 0.0, "exp({v})");
            } else {
                assert!((g - w).abs() <= 2.5e-7 * w, "exp({v}) = {g}, library {w}");
            }
        }
    }

    #[test]
    fn softmax_rows_masks_limits_and_normalises() {
        let (rows, keys, ld) = (4, 21, 24);
        let mut s = seeded(rows * ld, 5);
        let orig = s.clone();
        let mut bias = vec![0f32; keys];
        bias[1] = f32::NEG_INFINITY;
        bias[12] = f32::NEG_INFINITY;
        // Row i sees keys ..(5 * i + 2) (row 3 sees all, past the end
        // clamped); row 0 sees keys 0 and 1, key 1 masked.
        let visible = |i: usize| 5 * i + 2 + usize::from(i == 3) * 10;
        let mut inv = vec![9f32; rows];
        softmax_rows(&mut s, ld, &bias, visible, &mut inv);
        for i in 0..rows {
            let seen: Vec<usize> = (0..visible(i).min(keys))
                .filter(|&j| bias[j] == 0.0)
                .collect();
            let row = |j: usize| orig[i * ld + j];
            let m = seen.iter().map(|&j| row(j)).fold(f32::MIN, f32::max);
            let z: f32 = seen.iter().map(|&j| (row(j) - m).exp()).sum();
            assert!((inv[i] - 1.0 / z).abs() < 1e-6 / z, "row {i}: 1 / sum");
            for j in 0..keys {
                let want = if seen.contains(&j) {
                    (row(j) - m).exp() / z
                } else {
                    0.0
                };
                let got = s[i * ld + j] * inv[i];
                assert!(
                    (got - want).abs() < 1e-6,
                    "row {i} key {j}: {got} vs {want}"
                );
            }
            // Past the keys, the row is left alone.
            assert_eq!(
                &s[i * ld + keys..(i + 1) * ld],
                &orig[i * ld + keys..(i + 1) * ld]
            );
        }
        // A row that sees only masked keys sums to nothing.
        let mut s = vec![1f32; 8];
        let mut inv = [9f32];
        softmax_rows(&mut s, 8, &[f32::NEG_INFINITY; 3], |_| 2, &mut inv);
        assert_eq!(inv, [0.0]);
        assert_eq!(&s[..3], &[0.0; 3]);
    }

    #[test]
    fn silu_mul_matches_its_definition() {
        let mut x = seeded(37, 6).iter().map(|v| v * 20.0).collect::<Vec<_>>();
        let y = seeded(37, 7);
        let want: Vec<f32> = x
            .iter()
            .zip(&y)
            .map(|(v, u)| v / (1.0 + (-v).exp()) * u)
            .collect();
        silu_mul(&mut x, &y);
        for (g, w) in x.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-6 * (1.0 + w.abs()));
        }
    }
}
