//! `synthetic-local`: a static textured background with a few moving objects
//! (sparse, local motion). Deterministic: frame `n` depends on `n` alone.

use super::FrameSource;
use super::sequence::FrameSequence;
use super::texture::Texture;
use crate::error::{AutoGazeError, Result};
use crate::frame::{Frame, FramePool, FrameSize};

/// One moving square: start position, velocity (px/frame) and side.
#[derive(Debug, Clone, Copy)]
struct Mover {
    x0: f64,
    y0: f64,
    vx: f64,
    vy: f64,
    side: usize,
    color: [u8; 3],
}

/// Position along one axis of an object bouncing inside `[0, span]`.
fn bounce(start: f64, velocity: f64, n: u64, span: f64) -> f64 {
    if span <= 0.0 {
        return 0.0;
    }
    let p = (start + velocity * n as f64).rem_euclid(2.0 * span);
    if p > span { 2.0 * span - p } else { p }
}

/// Static background plus `objects` bouncing squares.
#[derive(Debug)]
pub struct SyntheticLocal {
    size: FrameSize,
    background: Vec<u8>,
    movers: Vec<Mover>,
    pool: FramePool,
    seq: FrameSequence,
}

impl SyntheticLocal {
    /// `objects` squares (1..=64) moving over a still background of `size`.
    pub fn new(size: FrameSize, objects: u32, fps: f64) -> Result<Self> {
        if !(1..=64).contains(&objects) {
            return Err(AutoGazeError::setting("object count", objects, "1..=64"));
        }
        let (w, h) = (size.width as usize, size.height as usize);
        let texture = Texture::generate(w, h, (1, 1), 0xBAC6);
        let mut background = vec![0u8; size.rgba_len()];
        texture.copy_window(0, 0, w, h, &mut background);
        let side = (w.min(h) / 8).max(1);
        let movers = (0..objects as usize)
            .map(|i| {
                let k = i as f64 + 1.0;
                Mover {
                    x0: (w as f64 * 0.13 * k) % w as f64,
                    y0: (h as f64 * 0.29 * k) % h as f64,
                    vx: 2.0 + 1.5 * k,
                    vy: 1.0 + 0.75 * k * if i % 2 == 0 { 1.0 } else { -1.0 },
                    side,
                    color: [(60 * i % 256) as u8, 220, (255 - 40 * i % 256) as u8],
                }
            })
            .collect();
        Ok(Self {
            size,
            background,
            movers,
            pool: FramePool::new(size.rgba_len(), 8),
            seq: FrameSequence::new(fps),
        })
    }

    /// Pixel rectangles `(x, y, w, h)` covered by the objects in frame `n`.
    pub fn object_rects(&self, n: u64) -> Vec<(usize, usize, usize, usize)> {
        let (w, h) = (self.size.width as usize, self.size.height as usize);
        self.movers
            .iter()
            .map(|m| object_rect(m, n, w, h))
            .collect()
    }
}

fn object_rect(m: &Mover, n: u64, w: usize, h: usize) -> (usize, usize, usize, usize) {
    let side_w = m.side.min(w);
    let side_h = m.side.min(h);
    let x = bounce(m.x0, m.vx, n, (w - side_w) as f64) as usize;
    let y = bounce(m.y0, m.vy, n, (h - side_h) as f64) as usize;
    (x, y, side_w, side_h)
}

fn render(background: &[u8], movers: &[Mover], size: FrameSize, n: u64, out: &mut [u8]) {
    out.copy_from_slice(background);
    let (w, h) = (size.width as usize, size.height as usize);
    for m in movers {
        let (x, y, sw, sh) = object_rect(m, n, w, h);
        for row in y..y + sh {
            let line = &mut out[(row * w + x) * 4..(row * w + x + sw) * 4];
            for (i, px) in line.chunks_exact_mut(4).enumerate() {
                // Diagonal stripes that travel with the object.
                let stripe = ((i + row - y) / 4) % 2 == 0;
                let shade = if stripe { 255 } else { 150 };
                px[0] = (m.color[0] as u16 * shade / 255) as u8;
                px[1] = (m.color[1] as u16 * shade / 255) as u8;
                px[2] = (m.color[2] as u16 * shade / 255) as u8;
                px[3] = 255;
            }
        }
    }
}

impl FrameSource for SyntheticLocal {
    fn name(&self) -> &str {
        "synthetic-local"
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
            background,
            movers,
            size,
            pool,
            ..
        } = self;
        let pixels = pool.fill(|out| render(background, movers, *size, n, out));
        self.seq.frame(self.size, pixels)
    }

    fn pooled_bytes(&self) -> usize {
        self.pool.held_bytes() + self.background.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn motion_is_local_to_the_objects() {
        let size = FrameSize::new(160, 90).unwrap();
        let mut src = SyntheticLocal::new(size, 2, 30.0).unwrap();
        let a = src.next_frame().unwrap();
        let b = src.next_frame().unwrap();
        let changed = a
            .rgba()
            .chunks_exact(4)
            .zip(b.rgba().chunks_exact(4))
            .filter(|(p, q)| p != q)
            .count();
        let union_bound: usize = src
            .object_rects(0)
            .iter()
            .chain(src.object_rects(1).iter())
            .map(|r| r.2 * r.3)
            .sum();
        assert!(changed > 0, "objects must move");
        assert!(changed <= union_bound, "{changed} > {union_bound}");
        assert!(changed < size.pixels() / 5, "motion must stay sparse");
    }

    #[test]
    fn objects_stay_inside_odd_frames() {
        let size = FrameSize::new(37, 23).unwrap();
        let mut src = SyntheticLocal::new(size, 5, 30.0).unwrap();
        for n in 0..200 {
            let _ = src.next_frame().unwrap();
            for (x, y, w, h) in src.object_rects(n) {
                assert!(x + w <= 37 && y + h <= 23);
            }
        }
        assert!(SyntheticLocal::new(size, 0, 30.0).is_err());
    }
}
