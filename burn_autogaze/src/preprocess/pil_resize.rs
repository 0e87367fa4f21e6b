//! Pillow's `Image.resize` for 8-bit images, reproduced exactly.
//!
//! Pillow resamples separably: a horizontal pass into an 8-bit intermediate,
//! then a vertical pass. Filter taps are computed in f64, normalised, rounded
//! to 22-bit fixed point, and each output is `clip8((2^21 + sum(px * k)) >> 22)`.
//! When downscaling, the filter is widened by the scale factor, which is the
//! antialiasing HF's processor relies on. Only the three colour channels are
//! resampled (the processor hands Pillow an RGB image).

use crate::error::{AutoGazeError, Result};

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow resampling filters (the `resample` field of a preprocessor config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PilFilter {
    /// Lanczos, 3 lobes (code 1).
    Lanczos,
    /// Triangle (code 2, the release processor's).
    Bilinear,
    /// Cubic convolution, `a = -0.5` (code 3).
    Bicubic,
    /// Box (code 4).
    Box,
    /// Hamming-windowed sinc, 1 lobe (code 5).
    Hamming,
}

impl PilFilter {
    /// From Pillow's integer code (`Image.Resampling`). NEAREST (0) is not
    /// supported: no AutoGaze processor uses it.
    pub fn from_code(code: i64) -> Result<Self> {
        match code {
            1 => Ok(Self::Lanczos),
            2 => Ok(Self::Bilinear),
            3 => Ok(Self::Bicubic),
            4 => Ok(Self::Box),
            5 => Ok(Self::Hamming),
            other => Err(AutoGazeError::setting(
                "resample",
                other,
                "a Pillow filter code: 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming",
            )),
        }
    }

    fn support(self) -> f64 {
        match self {
            Self::Box => 0.5,
            Self::Bilinear | Self::Hamming => 1.0,
            Self::Bicubic => 2.0,
            Self::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        fn sinc(x: f64) -> f64 {
            if x == 0.0 {
                1.0
            } else {
                let px = x * std::f64::consts::PI;
                px.sin() / px
            }
        }
        match self {
            Self::Box => {
                if (-0.5..0.5).contains(&x) {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Self::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let px = x * std::f64::consts::PI;
                    px.sin() / px * (0.54 + 0.46 * px.cos())
                }
            }
            Self::Bicubic => {
                let a = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
            Self::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// Fixed-point taps for one axis: output `i` reads `len[i]` inputs from `start[i]`.
#[derive(Debug, Clone)]
struct AxisTaps {
    ksize: usize,
    start: Vec<usize>,
    len: Vec<usize>,
    coeffs: Vec<i32>,
}

impl AxisTaps {
    fn new(in_size: usize, out_size: usize, filter: PilFilter) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut start = Vec::with_capacity(out_size);
        let mut len = Vec::with_capacity(out_size);
        let mut coeffs = vec![0i32; out_size * ksize];
        let mut k = vec![0f64; ksize];
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // C casts truncate toward zero; then clamp like Pillow.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = xmax.saturating_sub(xmin);
            let mut ww = 0.0;
            for (x, kx) in k.iter_mut().enumerate().take(n) {
                let w = filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
                *kx = w;
                ww += w;
            }
            for (x, kx) in k.iter().enumerate().take(n) {
                let v = if ww != 0.0 { kx / ww } else { *kx };
                let fixed = v * (1u64 << PRECISION_BITS) as f64;
                coeffs[xx * ksize + x] = if v < 0.0 {
                    (fixed - 0.5) as i32
                } else {
                    (fixed + 0.5) as i32
                };
            }
            start.push(xmin);
            len.push(n);
        }
        Self {
            ksize,
            start,
            len,
            coeffs,
        }
    }

    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let k = &self.coeffs[i * self.ksize..i * self.ksize + self.len[i]];
        (self.start[i], k)
    }
}

/// One axis's taps as the device kernels read them: per output its first
/// input, its tap count, then `ksize` fixed-point coefficients (zeros past
/// the count). An axis whose size does not change is the identity (one tap
/// of weight 1), as the host path's skipped pass. Returns `(ksize, table)`.
#[cfg(feature = "wgpu")]
pub(super) fn packed_taps(in_size: usize, out_size: usize, filter: PilFilter) -> (usize, Vec<i32>) {
    if in_size == out_size {
        let table = (0..out_size)
            .flat_map(|i| [i as i32, 1, 1 << PRECISION_BITS])
            .collect();
        return (1, table);
    }
    let taps = AxisTaps::new(in_size, out_size, filter);
    let k = taps.ksize;
    let mut table = Vec::with_capacity(out_size * (k + 2));
    for i in 0..out_size {
        table.push(taps.start[i] as i32);
        table.push(taps.len[i] as i32);
        table.extend_from_slice(&taps.coeffs[i * k..(i + 1) * k]);
    }
    (k, table)
}

#[inline]
fn clip8(v: i64) -> u8 {
    if v >= (1i64 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// One output pixel of either pass: the three channels of the pixels at
/// `data[offset(i)..]`, weighted by the fixed-point taps `k`, rounded
/// (`2^21` added) and clipped to 8 bits.
#[inline(always)]
fn weighted_rgb(k: &[i32], data: &[u8], offset: impl Fn(usize) -> usize, px: &mut [u8]) {
    let half = 1i64 << (PRECISION_BITS - 1);
    let (mut s0, mut s1, mut s2) = (half, half, half);
    for (i, &c) in k.iter().enumerate() {
        let p = &data[offset(i)..];
        let c = c as i64;
        s0 += p[0] as i64 * c;
        s1 += p[1] as i64 * c;
        s2 += p[2] as i64 * c;
    }
    px[0] = clip8(s0);
    px[1] = clip8(s1);
    px[2] = clip8(s2);
}

/// A precomputed Pillow resize from one size to another (RGB, 8-bit), with
/// its own scratch so repeated calls allocate nothing.
#[derive(Debug, Clone)]
pub struct PilResize {
    in_w: usize,
    in_h: usize,
    out_w: usize,
    out_h: usize,
    horiz: Option<AxisTaps>,
    vert: Option<AxisTaps>,
    /// First source row the vertical pass reads.
    row_first: usize,
    /// Horizontal-pass output, rows `row_first..row_last`, RGB interleaved.
    temp: Vec<u8>,
}

impl PilResize {
    /// Plans a resize of `in_w x in_h` to `out_w x out_h` with `filter`.
    pub fn new(in_w: usize, in_h: usize, out_w: usize, out_h: usize, filter: PilFilter) -> Self {
        let horiz = (in_w != out_w).then(|| AxisTaps::new(in_w, out_w, filter));
        let vert = (in_h != out_h).then(|| AxisTaps::new(in_h, out_h, filter));
        let (row_first, row_last) = match &vert {
            Some(v) => {
                let last = out_h - 1;
                (v.start[0], v.start[last] + v.len[last])
            }
            None => (0, in_h),
        };
        let temp = if horiz.is_some() && vert.is_some() {
            vec![0u8; (row_last - row_first) * out_w * 3]
        } else {
            Vec::new()
        };
        Self {
            in_w,
            in_h,
            out_w,
            out_h,
            horiz,
            vert,
            row_first,
            temp,
        }
    }

    /// Input size this plan was made for.
    pub fn input_size(&self) -> (usize, usize) {
        (self.in_w, self.in_h)
    }

    /// Output size.
    pub fn output_size(&self) -> (usize, usize) {
        (self.out_w, self.out_h)
    }

    /// Resizes an RGBA8 (`in_stride` = 4) or RGB8 (3) image into `out`, RGB8
    /// interleaved, `out_w * out_h * 3` bytes. Alpha is ignored.
    pub fn run(&mut self, input: &[u8], in_stride: usize, out: &mut [u8]) {
        debug_assert_eq!(input.len(), self.in_w * self.in_h * in_stride);
        debug_assert_eq!(out.len(), self.out_w * self.out_h * 3);
        match (&self.horiz, &self.vert) {
            (None, None) => {
                for (dst, src) in out.chunks_exact_mut(3).zip(input.chunks_exact(in_stride)) {
                    dst.copy_from_slice(&src[..3]);
                }
            }
            (Some(h), None) => horizontal(h, input, in_stride, self.in_w, 0, self.in_h, out),
            (None, Some(v)) => vertical(v, input, in_stride, self.in_w, 0, out),
            (Some(h), Some(v)) => {
                let rows = self.temp.len() / (self.out_w * 3);
                horizontal(
                    h,
                    input,
                    in_stride,
                    self.in_w,
                    self.row_first,
                    rows,
                    &mut self.temp,
                );
                vertical(v, &self.temp, 3, self.out_w, self.row_first, out);
            }
        }
    }
}

/// Horizontal pass over `rows` source rows starting at `row0`.
fn horizontal(
    taps: &AxisTaps,
    input: &[u8],
    stride: usize,
    in_w: usize,
    row0: usize,
    rows: usize,
    out: &mut [u8],
) {
    let out_w = taps.start.len();
    for r in 0..rows {
        let src = &input[(row0 + r) * in_w * stride..(row0 + r + 1) * in_w * stride];
        let dst = &mut out[r * out_w * 3..(r + 1) * out_w * 3];
        for (xx, px) in dst.chunks_exact_mut(3).enumerate() {
            let (xmin, k) = taps.taps(xx);
            weighted_rgb(k, src, |i| (xmin + i) * stride, px);
        }
    }
}

/// Vertical pass; `input` rows are numbered from `row0` (the first row the
/// taps reference).
fn vertical(
    taps: &AxisTaps,
    input: &[u8],
    stride: usize,
    width: usize,
    row0: usize,
    out: &mut [u8],
) {
    let row_bytes = width * stride;
    for (yy, dst) in out.chunks_exact_mut(width * 3).enumerate() {
        let (ymin, k) = taps.taps(yy);
        let base = ymin - row0;
        for (x, px) in dst.chunks_exact_mut(3).enumerate() {
            weighted_rgb(k, input, |i| (base + i) * row_bytes + x * stride, px);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_constant_images_are_preserved() {
        let rgba: Vec<u8> = (0..6 * 5 * 4).map(|i| (i * 7 % 256) as u8).collect();
        let mut same = PilResize::new(6, 5, 6, 5, PilFilter::Bilinear);
        let mut out = vec![0u8; 6 * 5 * 3];
        same.run(&rgba, 4, &mut out);
        for (o, i) in out.chunks_exact(3).zip(rgba.chunks_exact(4)) {
            assert_eq!(o, &i[..3]);
        }
        for filter in [
            PilFilter::Bilinear,
            PilFilter::Bicubic,
            PilFilter::Lanczos,
            PilFilter::Box,
            PilFilter::Hamming,
        ] {
            let flat = vec![200u8; 37 * 23 * 4];
            let mut plan = PilResize::new(37, 23, 11, 29, filter);
            let mut out = vec![0u8; 11 * 29 * 3];
            plan.run(&flat, 4, &mut out);
            assert!(out.iter().all(|&v| v == 200), "{filter:?}");
        }
    }

    #[test]
    fn halving_with_bilinear_averages_with_the_triangle_filter() {
        // 4x1 -> 2x1: support 2 around centres 1.0 and 3.0; weights (0.25,0.5,0.25)-like.
        let row = [
            0u8, 0, 0, 255, 100, 100, 100, 255, 200, 200, 200, 255, 40, 40, 40, 255,
        ];
        let mut plan = PilResize::new(4, 1, 2, 1, PilFilter::Bilinear);
        let mut out = [0u8; 6];
        plan.run(&row, 4, &mut out);
        // Output 0: taps at x=0,1,2 with weights 3/8,3/8... computed in f64 by Pillow:
        // center 1.0, support 2, weights f((x-1+0.5)/2) = 0.75, 0.75, 0.25 -> /1.75.
        let expect0 = ((0.0 * 0.75 + 100.0 * 0.75 + 200.0 * 0.25) / 1.75_f64).round() as u8;
        assert_eq!(out[0], expect0);
        assert!(PilFilter::from_code(0).is_err());
    }
}
