//! `synthetic-pan`: full-frame motion. A detailed texture larger than the
//! frame, panned by a fixed speed; every pixel changes every frame.

use super::FrameSource;
use super::sequence::FrameSequence;
use super::texture::{Texture, ramp_for_speed};
use crate::error::{AutoGazeError, Result};
use crate::frame::{Frame, FramePool, FrameSize};

/// Pan speed in pixels per frame along x and y (either may be negative).
///
/// Any speed that is not a multiple of 256 on at least one axis changes every
/// pixel of every frame; `(0, 0)` is rejected (use the `static` source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PanSpeed {
    /// Pixels per frame along x (positive: content moves left).
    pub dx: i32,
    /// Pixels per frame along y (positive: content moves up).
    pub dy: i32,
}

impl Default for PanSpeed {
    fn default() -> Self {
        Self { dx: 7, dy: 3 }
    }
}

impl std::str::FromStr for PanSpeed {
    type Err = AutoGazeError;

    /// Parses `DX,DY` (e.g. `7,3` or `-4,0`).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || AutoGazeError::setting("pan speed", s, "DX,DY in px/frame, e.g. 7,3");
        let (x, y) = s.split_once(',').ok_or_else(bad)?;
        Ok(Self {
            dx: x.trim().parse().map_err(|_| bad())?,
            dy: y.trim().parse().map_err(|_| bad())?,
        })
    }
}

/// Deterministic full-frame pan (see the module docs).
#[derive(Debug)]
pub struct SyntheticPan {
    size: FrameSize,
    speed: PanSpeed,
    texture: Texture,
    pool: FramePool,
    seq: FrameSequence,
}

impl SyntheticPan {
    /// A pan of `size` frames at `speed`, frames stamped at `fps`.
    pub fn new(size: FrameSize, speed: PanSpeed, fps: f64) -> Result<Self> {
        if speed.dx == 0 && speed.dy == 0 {
            return Err(AutoGazeError::setting(
                "pan speed",
                "0,0",
                "a non-zero speed on at least one axis (use the static source for no motion)",
            ));
        }
        let ramp = ramp_for_speed(speed.dx, speed.dy);
        // Larger than the frame by at least 256 px on each axis.
        let texture = Texture::generate(
            size.width as usize + 256,
            size.height as usize + 256,
            ramp,
            0x5EED,
        );
        Ok(Self {
            size,
            speed,
            texture,
            pool: FramePool::new(size.rgba_len(), 8),
            seq: FrameSequence::new(fps),
        })
    }

    /// Buffers allocated for frames so far (stops growing in steady state).
    pub fn allocations(&self) -> u64 {
        self.pool.allocations()
    }

    /// Writes frame number `n` into `out` (RGBA8, `size.rgba_len()` bytes).
    /// Costs about one memcpy of the frame.
    pub fn render_into(&self, n: u64, out: &mut [u8]) {
        render(&self.texture, self.size, self.speed, n, out);
    }
}

fn render(texture: &Texture, size: FrameSize, speed: PanSpeed, n: u64, out: &mut [u8]) {
    let tw = texture.width as i128;
    let th = texture.height as i128;
    let ox = (n as i128 * speed.dx as i128).rem_euclid(tw) as usize;
    let oy = (n as i128 * speed.dy as i128).rem_euclid(th) as usize;
    texture.copy_window(ox, oy, size.width as usize, size.height as usize, out);
}

impl FrameSource for SyntheticPan {
    fn name(&self) -> &str {
        "synthetic-pan"
    }

    fn size(&self) -> FrameSize {
        self.size
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        self.seq.skip(n);
        Ok(())
    }

    fn next_frame(&mut self) -> Result<Frame> {
        let n = self.seq.next_seq();
        let Self {
            texture,
            size,
            speed,
            pool,
            ..
        } = self;
        let pixels = pool.fill(|out| render(texture, *size, *speed, n, out));
        self.seq.frame(self.size, pixels)
    }

    fn pooled_bytes(&self) -> usize {
        self.pool.held_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed_pixels(a: &Frame, b: &Frame) -> usize {
        a.rgba()
            .chunks_exact(4)
            .zip(b.rgba().chunks_exact(4))
            .filter(|(p, q)| p != q)
            .count()
    }

    #[test]
    fn every_pixel_changes_every_frame_at_many_sizes() {
        for (w, h, speed) in [
            (64, 36, PanSpeed::default()),
            (33, 17, PanSpeed { dx: 0, dy: -5 }),
            (50, 50, PanSpeed { dx: 256, dy: 1 }),
            (7, 300, PanSpeed { dx: -1, dy: 0 }),
        ] {
            let mut src = SyntheticPan::new(FrameSize::new(w, h).unwrap(), speed, 30.0).unwrap();
            let mut prev = src.next_frame().unwrap();
            for _ in 0..5 {
                let next = src.next_frame().unwrap();
                assert_eq!(
                    changed_pixels(&prev, &next),
                    (w * h) as usize,
                    "{w}x{h} {speed:?}"
                );
                assert_eq!(next.seq, prev.seq + 1);
                prev = next;
            }
        }
    }

    #[test]
    fn pan_is_deterministic_and_shifts_content() {
        let size = FrameSize::new(40, 20).unwrap();
        let speed = PanSpeed { dx: 3, dy: 2 };
        let mut a = SyntheticPan::new(size, speed, 30.0).unwrap();
        let mut b = SyntheticPan::new(size, speed, 30.0).unwrap();
        let f0 = a.next_frame().unwrap();
        let f1 = a.next_frame().unwrap();
        assert_eq!(f0.rgba(), b.next_frame().unwrap().rgba());
        // Pixel (x, y) of frame 1 is pixel (x + 3, y + 2) of frame 0.
        let px = |f: &Frame, x: usize, y: usize| {
            f.rgba()[(y * 40 + x) * 4..(y * 40 + x) * 4 + 4].to_vec()
        };
        assert_eq!(px(&f1, 5, 4), px(&f0, 8, 6));
    }

    #[test]
    fn steady_state_reuses_buffers() {
        let mut src =
            SyntheticPan::new(FrameSize::new(32, 32).unwrap(), PanSpeed::default(), 30.0).unwrap();
        for _ in 0..50 {
            let _frame = src.next_frame().unwrap();
        }
        assert_eq!(src.allocations(), 1);
    }

    #[test]
    fn zero_speed_is_rejected() {
        let err = SyntheticPan::new(
            FrameSize::new(8, 8).unwrap(),
            PanSpeed { dx: 0, dy: 0 },
            30.0,
        );
        assert!(err.unwrap_err().to_string().contains("pan speed"));
    }
}
