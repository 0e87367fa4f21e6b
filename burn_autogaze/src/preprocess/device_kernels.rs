//! The device preprocessing's CubeCL kernels, a unit an output value each:
//! the same computation as the host path (`pil_resize`, the value table,
//! `bicubic`), step for step, so the 8-bit stage is bit-exact (Pillow's
//! 32-bit fixed point is integer arithmetic here too) and the model input
//! differs only where the device contracts a multiply and an add into one
//! rounding.
//!
//! Tap tables (`packed_taps`, `packed_cubic`): per output, Pillow's first
//! input and tap count then `ksize` 22-bit coefficients; the bicubic's four
//! clamped indices and four weights.

use cubecl::prelude::*;

/// Pillow's `clip8`: the 22-bit fixed-point sum (rounding half already
/// added) to a byte.
#[cube]
fn clip8(v: i32) -> u32 {
    let mut out = 0u32;
    if v >= 1_073_741_824i32 {
        out = 255u32;
    } else if v > 0i32 {
        out = (v / 4_194_304i32) as u32;
    }
    out
}

/// One output pixel of either Pillow pass: the `n` pixels of `pixels` from
/// `base`, `step` apart, weighted by the 22-bit taps at `taps[at + 2..]`,
/// rounded and clipped per channel; RGB packed as the frame packs it.
#[cube]
fn taps_rgb(pixels: &Array<u32>, taps: &Array<i32>, at: usize, base: usize, step: usize) -> u32 {
    let n = taps[at + 1] as usize;
    let mut s0 = 2_097_152i32;
    let mut s1 = 2_097_152i32;
    let mut s2 = 2_097_152i32;
    let mut i = 0usize;
    while i < n {
        let p = pixels[base + i * step];
        let c = taps[at + 2 + i];
        s0 += (p & 255u32) as i32 * c;
        s1 += ((p >> 8u32) & 255u32) as i32 * c;
        s2 += ((p >> 16u32) & 255u32) as i32 * c;
        i += 1;
    }
    clip8(s0) | (clip8(s1) << 8u32) | (clip8(s2) << 16u32)
}

/// Pillow's horizontal pass over source rows `row0..row0 + rows` of the
/// RGBA8 frame (`frame`, a pixel a `u32`, red in the low byte) into `temp`
/// (`[rows, out_w]`, RGB packed the same way).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn pil_horizontal(
    frame: &Array<u32>,
    taps: &Array<i32>,
    temp: &mut Array<u32>,
    in_w: u32,
    row0: u32,
    out_w: u32,
    rows: u32,
    ksize: u32,
) {
    let t = ABSOLUTE_POS;
    let out_w = out_w as usize;
    if t < rows as usize * out_w {
        let at = (t % out_w) * (ksize as usize + 2);
        let src = (row0 as usize + t / out_w) * in_w as usize + taps[at] as usize;
        temp[t] = taps_rgb(frame, taps, at, src, 1);
    }
}

/// Pillow's vertical pass for the crop's pixels (`[ph, pw]` from `(left,
/// top)` of the resized image; `temp` holds resized rows from `row_first`,
/// `rw` wide), each byte through the value table (`lut`, `[3, 256]`) into
/// the processor's CHW output `out` (`[3, ph, pw]`).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn pil_vertical_values(
    temp: &Array<u32>,
    taps: &Array<i32>,
    lut: &Array<f32>,
    out: &mut Array<f32>,
    rw: u32,
    row_first: u32,
    left: u32,
    top: u32,
    pw: u32,
    ph: u32,
    ksize: u32,
) {
    let t = ABSOLUTE_POS;
    let pw = pw as usize;
    let plane = pw * ph as usize;
    if t < plane {
        let x = t % pw + left as usize;
        let at = (t / pw + top as usize) * (ksize as usize + 2);
        let first = taps[at] as usize - row_first as usize;
        let rw = rw as usize;
        let p = taps_rgb(temp, taps, at, first * rw + x, rw);
        out[t] = lut[(p & 255u32) as usize];
        out[plane + t] = lut[256 + ((p >> 8u32) & 255u32) as usize];
        out[2 * plane + t] = lut[512 + ((p >> 16u32) & 255u32) as usize];
    }
}

/// The bicubic's horizontal step: every row of the `[lines, in_w]` planes
/// at every output column (`xi`, `xw`: four indices and weights a column),
/// summed in tap order, into `rows` (`[lines, out_w]`).
#[cube(launch_unchecked)]
pub fn bicubic_rows(
    input: &Array<f32>,
    xi: &Array<u32>,
    xw: &Array<f32>,
    rows: &mut Array<f32>,
    lines: u32,
    in_w: u32,
    out_w: u32,
) {
    let t = ABSOLUTE_POS;
    let out_w = out_w as usize;
    if t < lines as usize * out_w {
        let src = (t / out_w) * in_w as usize;
        let q = 4 * (t % out_w);
        let mut v = input[src + xi[q] as usize] * xw[q];
        v += input[src + xi[q + 1] as usize] * xw[q + 1];
        v += input[src + xi[q + 2] as usize] * xw[q + 2];
        v += input[src + xi[q + 3] as usize] * xw[q + 3];
        rows[t] = v;
    }
}

/// The bicubic's vertical step: four of `rows` (`[3, in_h, out_w]`) a
/// value (`yi`, `yw` a row's), in tap order, into `out` (`[3, out_h,
/// out_w]`).
#[cube(launch_unchecked)]
pub fn bicubic_cols(
    rows: &Array<f32>,
    yi: &Array<u32>,
    yw: &Array<f32>,
    out: &mut Array<f32>,
    in_h: u32,
    out_h: u32,
    out_w: u32,
) {
    let t = ABSOLUTE_POS;
    let out_w = out_w as usize;
    let out_h = out_h as usize;
    if t < 3 * out_h * out_w {
        let x = t % out_w;
        let q = 4 * ((t / out_w) % out_h);
        let base = (t / (out_w * out_h)) * in_h as usize;
        let mut v = rows[(base + yi[q] as usize) * out_w + x] * yw[q];
        v += rows[(base + yi[q + 1] as usize) * out_w + x] * yw[q + 1];
        v += rows[(base + yi[q + 2] as usize) * out_w + x] * yw[q + 2];
        v += rows[(base + yi[q + 3] as usize) * out_w + x] * yw[q + 3];
        out[t] = v;
    }
}

/// A square tile (`side` pixels) of the RGBA8 frame (`in_w` x `in_h`) from
/// its corner `(x0, y0)` into `tile`; the part past the frame is opaque
/// black, as the host's AnyRes crop makes it.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn crop_tile(
    frame: &Array<u32>,
    tile: &mut Array<u32>,
    in_w: u32,
    in_h: u32,
    x0: u32,
    y0: u32,
    side: u32,
) {
    let t = ABSOLUTE_POS;
    let side = side as usize;
    if t < side * side {
        let x = x0 as usize + t % side;
        let y = y0 as usize + t / side;
        let mut p = 0xFF00_0000u32;
        if x < in_w as usize && y < in_h as usize {
            p = frame[y * in_w as usize + x];
        }
        tile[t] = p;
    }
}
