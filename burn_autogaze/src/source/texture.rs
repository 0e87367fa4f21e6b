//! A deterministic, seamlessly tiling procedural texture for the synthetic
//! sources.
//!
//! Red and blue carry periodic value noise at several scales (detail from
//! 4 px to 64 px); green is a sawtooth ramp `(a*x + b*y) mod 256` along the
//! pan direction. Because the texture's width and height are multiples of 256,
//! the ramp tiles seamlessly and any shift `(dx, dy)` with `a*dx + b*dy` not a
//! multiple of 256 changes the green value of *every* pixel: that is what
//! makes the pan a true full-frame-motion case.

/// RGBA8 texture, row-major, `width * height * 4` bytes.
#[derive(Debug, Clone)]
pub(crate) struct Texture {
    pub width: usize,
    pub height: usize,
    pub rgba: Vec<u8>,
}

/// Ramp direction `(a, b)` so that a shift by `(dx, dy)` changes the ramp.
pub(crate) fn ramp_for_speed(dx: i32, dy: i32) -> (i64, i64) {
    if dx.rem_euclid(256) != 0 {
        (1, 0)
    } else if dy.rem_euclid(256) != 0 {
        (0, 1)
    } else {
        // A speed that is a multiple of 256 on both axes cannot change a
        // 256-periodic ramp; the pan then repeats frames. Documented on
        // `PanSpeed`.
        (1, 1)
    }
}

fn round_up_256(v: usize) -> usize {
    v.div_ceil(256) * 256
}

/// SplitMix64-style integer hash, returning a value in [0, 1).
fn hash01(x: u64, y: u64, seed: u64) -> f32 {
    let mut z = x
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(y.wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .wrapping_add(seed.wrapping_mul(0x1656_67B1_9E37_79F9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}

/// Value noise with a lattice of `cell` pixels, periodic over `w x h` (both
/// multiples of `cell`), smoothstep-interpolated.
fn value_noise(x: usize, y: usize, cell: usize, w: usize, h: usize, seed: u64) -> f32 {
    let (cw, ch) = (w / cell, h / cell);
    let (ix, iy) = (x / cell, y / cell);
    let fx = (x % cell) as f32 / cell as f32;
    let fy = (y % cell) as f32 / cell as f32;
    let sx = fx * fx * (3.0 - 2.0 * fx);
    let sy = fy * fy * (3.0 - 2.0 * fy);
    let (x0, x1) = (ix % cw, (ix + 1) % cw);
    let (y0, y1) = (iy % ch, (iy + 1) % ch);
    let v00 = hash01(x0 as u64, y0 as u64, seed);
    let v10 = hash01(x1 as u64, y0 as u64, seed);
    let v01 = hash01(x0 as u64, y1 as u64, seed);
    let v11 = hash01(x1 as u64, y1 as u64, seed);
    let top = v00 + (v10 - v00) * sx;
    let bottom = v01 + (v11 - v01) * sx;
    top + (bottom - top) * sy
}

impl Texture {
    /// A texture at least `min_w x min_h` (rounded up to multiples of 256),
    /// with the green ramp along `ramp`.
    pub fn generate(min_w: usize, min_h: usize, ramp: (i64, i64), seed: u64) -> Self {
        let width = round_up_256(min_w.max(1));
        let height = round_up_256(min_h.max(1));
        let mut rgba = vec![0u8; width * height * 4];
        for (y, row) in rgba.chunks_exact_mut(width * 4).enumerate() {
            for (x, px) in row.chunks_exact_mut(4).enumerate() {
                let r = 0.55 * value_noise(x, y, 64, width, height, seed)
                    + 0.30 * value_noise(x, y, 16, width, height, seed + 1)
                    + 0.15 * value_noise(x, y, 4, width, height, seed + 2);
                let b = 0.5 * value_noise(x, y, 32, width, height, seed + 3)
                    + 0.5 * value_noise(x, y, 8, width, height, seed + 4);
                let g = (ramp.0 * x as i64 + ramp.1 * y as i64).rem_euclid(256);
                px[0] = (r * 255.0) as u8;
                px[1] = g as u8;
                px[2] = (b * 255.0) as u8;
                px[3] = 255;
            }
        }
        Self {
            width,
            height,
            rgba,
        }
    }

    /// Copies the `out_w x out_h` window whose top-left corner is at
    /// `(ox, oy)` (wrapping around the texture) into `out` (RGBA8). Costs one
    /// or two `memcpy`s per row: about one memcpy of the frame.
    pub fn copy_window(&self, ox: usize, oy: usize, out_w: usize, out_h: usize, out: &mut [u8]) {
        debug_assert!(out_w <= self.width && out_h <= self.height);
        let row_bytes = out_w * 4;
        let first = (self.width - ox).min(out_w) * 4;
        for (y, dst) in out.chunks_exact_mut(row_bytes).take(out_h).enumerate() {
            let ty = (y + oy) % self.height;
            let src = &self.rgba[ty * self.width * 4..(ty + 1) * self.width * 4];
            dst[..first].copy_from_slice(&src[ox * 4..ox * 4 + first]);
            if first < row_bytes {
                dst[first..].copy_from_slice(&src[..row_bytes - first]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texture_tiles_to_multiples_of_256_and_is_opaque() {
        let t = Texture::generate(300, 10, (1, 0), 7);
        assert_eq!((t.width, t.height), (512, 256));
        assert!(t.rgba.chunks_exact(4).all(|p| p[3] == 255));
        // Detail: many distinct red values.
        let mut seen = [false; 256];
        t.rgba
            .chunks_exact(4)
            .for_each(|p| seen[p[0] as usize] = true);
        assert!(seen.iter().filter(|s| **s).count() > 100);
    }

    #[test]
    fn window_wraps_around() {
        let t = Texture::generate(256, 256, (1, 0), 1);
        let mut out = vec![0u8; 4 * 4 * 4];
        t.copy_window(254, 255, 4, 4, &mut out);
        // Pixel (2, 1) of the window is texel (0, 0).
        assert_eq!(&out[(4 + 2) * 4..(4 + 2) * 4 + 4], &t.rgba[..4]);
    }
}
