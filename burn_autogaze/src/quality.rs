//! Quality metrics: PSNR over RGB, an EMA that ignores non-finite samples, and
//! gaze-ratio statistics (keyframes excluded).

/// PSNR in dB between two RGBA8 buffers over the RGB channels, peak 255.
/// Identical buffers give `f64::INFINITY` (reported as such, never averaged).
/// Buffers of different lengths give `None`.
pub fn psnr_rgb(a: &[u8], b: &[u8]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() || !a.len().is_multiple_of(4) {
        return None;
    }
    Some(psnr_of_sse(sum_squared_rgb(a, b), (a.len() / 4) as u64))
}

/// PSNR in dB (peak 255) of `sse`, the sum of squared RGB differences over
/// `pixels` pixels: what [`psnr_rgb`] reports, and what a device's
/// reduction ([`SSE_WGSL`]) gives back. Infinite for `sse == 0`.
pub fn psnr_of_sse(sse: u64, pixels: u64) -> f64 {
    if sse == 0 {
        return f64::INFINITY;
    }
    let mse = sse as f64 / (pixels.max(1) * 3) as f64;
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

/// Bytes a device's PSNR measurement reads back: [`SSE_WGSL`]'s 64-bit sum.
pub const SSE_READBACK_BYTES: u64 = 8;

/// The sum of squared RGB differences of two same-size textures (bound as
/// `rgba8unorm` views: their bytes) on the device, as a compute shader:
/// each 8 x 8 workgroup sums its pixels (at most 64 x 3 x 255^2, a `u32`)
/// and adds that to a 64-bit total kept as two `u32` atomics (low word,
/// then a carry into the high one). 8 bytes to read back; the same sum as
/// [`psnr_rgb`]'s, so [`psnr_of_sse`] gives the same dB.
pub const SSE_WGSL: &str = r#"
@group(0) @binding(0) var a: texture_2d<f32>;
@group(0) @binding(1) var b: texture_2d<f32>;
@group(0) @binding(2) var<storage, read_write> total: array<atomic<u32>, 2>;

var<workgroup> part: array<u32, 64>;

@compute @workgroup_size(8, 8, 1)
fn main(
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let size = textureDimensions(a);
    var d = 0u;
    if (id.x < size.x && id.y < size.y) {
        let p = vec3<i32>(round(textureLoad(a, vec2<i32>(id.xy), 0).rgb * 255.0));
        let q = vec3<i32>(round(textureLoad(b, vec2<i32>(id.xy), 0).rgb * 255.0));
        let e = p - q;
        d = u32(dot(e, e));
    }
    part[li] = d;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (li < s) {
            part[li] = part[li] + part[li + s];
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        let sum = part[0];
        let old = atomicAdd(&total[0], sum);
        if (old > 0xffffffffu - sum) {
            atomicAdd(&total[1], 1u);
        }
    }
}
"#;

/// Sum of squared RGB differences, on the widest vector unit the CPU has
/// (the same loop, compiled for AVX2 when the CPU offers it at runtime: the
/// baseline x86-64 target has SSE2 only).
fn sum_squared_rgb(a: &[u8], b: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { sum_squared_rgb_avx2(a, b) };
    }
    sum_squared_rgb_plain(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sum_squared_rgb_avx2(a: &[u8], b: &[u8]) -> u64 {
    sum_squared_rgb_plain(a, b)
}

#[inline(always)]
fn sum_squared_rgb_plain(a: &[u8], b: &[u8]) -> u64 {
    let mut sse = 0u64;
    for (pa, pb) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for c in 0..3 {
            let d = pa[c] as i32 - pb[c] as i32;
            sse += (d * d) as u64;
        }
    }
    sse
}

/// Exponential moving average; non-finite samples are skipped (an identical
/// frame's +inf PSNR never turns the average into +inf).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ema {
    alpha: f64,
    value: Option<f64>,
}

impl Ema {
    /// `alpha` in (0, 1]: weight of the newest sample.
    pub fn new(alpha: f64) -> Self {
        Self {
            alpha: alpha.clamp(f64::MIN_POSITIVE, 1.0),
            value: None,
        }
    }

    /// Adds a sample (ignored when not finite).
    pub fn update(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.value = Some(match self.value {
            Some(v) => v + self.alpha * (x - v),
            None => x,
        });
    }

    /// Current average (`None` before the first finite sample).
    pub fn value(&self) -> Option<f64> {
        self.value
    }
}

/// Gaze ratio over a run: per-frame union coverage, keyframes counted apart.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GazeStats {
    /// Frames recorded.
    pub frames: u64,
    /// Keyframes among them (left out of the mean and the EMA).
    pub keyframes: u64,
    /// EMA of the coverage of non-keyframes.
    pub ema: Ema,
    /// Mean coverage of non-keyframes.
    pub mean: f64,
    /// Coverage of the newest frame (keyframe or not).
    pub last: f64,
    sum: f64,
}

impl Default for GazeStats {
    fn default() -> Self {
        Self {
            frames: 0,
            keyframes: 0,
            ema: Ema::new(0.15),
            mean: 0.0,
            last: 0.0,
            sum: 0.0,
        }
    }
}

impl GazeStats {
    /// Records one frame's coverage (union pixels / frame pixels).
    pub fn record(&mut self, coverage: f64, keyframe: bool) {
        self.frames += 1;
        self.last = coverage;
        if keyframe {
            self.keyframes += 1;
            return;
        }
        self.ema.update(coverage);
        self.sum += coverage;
        let n = self.frames - self.keyframes;
        self.mean = self.sum / n as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_handles_identical_different_and_mismatched() {
        let a = vec![10u8, 20, 30, 255, 40, 50, 60, 0];
        assert_eq!(psnr_rgb(&a, &a), Some(f64::INFINITY));
        let mut b = a.clone();
        b[7] = 255; // alpha is ignored
        assert_eq!(psnr_rgb(&a, &b), Some(f64::INFINITY));
        b[0] = 11; // one channel off by one: mse = 1/6
        let p = psnr_rgb(&a, &b).unwrap();
        assert!((p - 10.0 * (255.0f64 * 255.0 * 6.0).log10()).abs() < 1e-9);
        assert_eq!(psnr_rgb(&a, &a[..4]), None);
    }

    #[test]
    fn blocked_psnr_equals_the_plain_sum() {
        // Longer than a block, with a tail that is not a multiple of 16.
        let n = 4 * (16 * 256 + 7);
        let a: Vec<u8> = (0..n).map(|i| (i * 31 % 256) as u8).collect();
        let b: Vec<u8> = (0..n).map(|i| (i * 17 % 253) as u8).collect();
        let mut sse = 0u64;
        for (pa, pb) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
            for c in 0..3 {
                let d = pa[c] as i64 - pb[c] as i64;
                sse += (d * d) as u64;
            }
        }
        let mse = sse as f64 / (n / 4 * 3) as f64;
        let want = 10.0 * (255.0f64 * 255.0 / mse).log10();
        assert!((psnr_rgb(&a, &b).unwrap() - want).abs() < 1e-12);
    }

    #[test]
    fn ema_skips_infinities_and_keyframes_are_excluded() {
        let mut e = Ema::new(0.5);
        e.update(f64::INFINITY);
        assert_eq!(e.value(), None);
        e.update(10.0);
        e.update(f64::NAN);
        e.update(20.0);
        assert_eq!(e.value(), Some(15.0));
        let mut g = GazeStats::default();
        g.record(1.0, true);
        g.record(0.2, false);
        g.record(0.4, false);
        assert_eq!((g.frames, g.keyframes), (3, 1));
        assert!((g.mean - 0.3).abs() < 1e-12);
        assert!(g.ema.value().unwrap() < 0.4);
    }
}
