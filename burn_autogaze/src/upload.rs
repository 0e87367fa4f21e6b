//! Display upload preparation: what of a composed frame goes to a texture.
//!
//! The compositor reports the regions it wrote. Writing each region into a
//! texture costs a fixed amount per write call (a staging allocation and a
//! copy command) plus an amount per byte; one whole-frame write pays the call
//! once but moves every byte. [`StagedUpload::stage`] packs either the dirty
//! regions or the whole frame into one reusable buffer, whichever the
//! [`UploadCost`] model predicts cheaper. [`UploadFit`] learns that model from
//! the timed writes of the running display (least squares over calls and
//! bytes), so the crossover is measured on the machine that uploads, not
//! guessed from a pixel count.

use std::time::Duration;

pub use crate::crossover::UploadCost;
use crate::frame::FrameSize;
use crate::mask::Rect;

/// Online least-squares fit of `time = a * calls + b * bytes` over observed
/// upload batches, with exponential forgetting so it follows the machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UploadFit {
    // Sums of the normal equations: cc, cb, bb, ct, bt.
    cc: f64,
    cb: f64,
    bb: f64,
    ct: f64,
    bt: f64,
    samples: u64,
    prior: UploadCost,
}

impl Default for UploadFit {
    fn default() -> Self {
        Self::new(UploadCost::default())
    }
}

impl UploadFit {
    /// Forgetting factor per sample (about the last 200 batches count).
    const DECAY: f64 = 0.995;
    /// Samples before the fit replaces the prior.
    const MIN_SAMPLES: u64 = 16;

    /// A fit that answers `prior` until it has seen enough batches.
    pub fn new(prior: UploadCost) -> Self {
        Self {
            cc: 0.0,
            cb: 0.0,
            bb: 0.0,
            ct: 0.0,
            bt: 0.0,
            samples: 0,
            prior,
        }
    }

    /// Records one batch: `calls` writes, `bytes` moved, taking `elapsed`.
    pub fn observe(&mut self, calls: u64, bytes: u64, elapsed: Duration) {
        if calls == 0 {
            return;
        }
        let (c, b, t) = (calls as f64, bytes as f64, elapsed.as_nanos() as f64);
        let d = Self::DECAY;
        self.cc = self.cc * d + c * c;
        self.cb = self.cb * d + c * b;
        self.bb = self.bb * d + b * b;
        self.ct = self.ct * d + c * t;
        self.bt = self.bt * d + b * t;
        self.samples += 1;
    }

    /// Batches observed.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The fitted model, or the prior while the data cannot separate the
    /// two terms (too few batches, or calls and bytes always proportional).
    pub fn cost(&self) -> UploadCost {
        if self.samples < Self::MIN_SAMPLES {
            return self.prior;
        }
        let det = self.cc * self.bb - self.cb * self.cb;
        // Nearly collinear data: keep the prior.
        if det <= 1e-9 * self.cc * self.bb {
            return self.prior;
        }
        let a = (self.ct * self.bb - self.cb * self.bt) / det;
        let b = (self.cc * self.bt - self.cb * self.ct) / det;
        if !(a.is_finite() && b.is_finite()) || a < 0.0 || b < 0.0 {
            return self.prior;
        }
        UploadCost {
            per_call_ns: a,
            per_byte_ns: b,
        }
    }
}

/// One region of a staged upload: where it goes and where its rows start in
/// the staging buffer (tightly packed, `width * 4` bytes a row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadRegion {
    /// Where the region goes in the texture.
    pub rect: Rect,
    /// Byte offset of its first row in the staging buffer.
    pub offset: usize,
}

impl UploadRegion {
    /// Bytes a row of this region.
    pub fn bytes_per_row(&self) -> u32 {
        self.rect.width() * 4
    }

    /// Bytes of the region.
    pub fn len(&self) -> usize {
        self.rect.area() as usize * 4
    }

    /// True for an empty region.
    pub fn is_empty(&self) -> bool {
        self.rect.is_empty()
    }
}

/// Regions a staging buffer makes room for at once.
pub const REGIONS_RESERVED: usize = 512;

/// The bytes of one texture update and where they go. Buffers are reused:
/// the first staging of a frame size makes room for a whole frame (and
/// [`REGIONS_RESERVED`] regions), so staging again allocates nothing unless
/// a frame has more regions than that.
#[derive(Debug, Clone, Default)]
pub struct StagedUpload {
    size: Option<FrameSize>,
    bytes: Vec<u8>,
    regions: Vec<UploadRegion>,
    full: bool,
}

impl StagedUpload {
    /// Stages `dirty` regions of `src` (RGBA8 of `size`), or the whole frame
    /// when `cost` predicts one whole write cheaper. Returns false (nothing
    /// staged) when `dirty` is empty.
    pub fn stage(
        &mut self,
        src: &[u8],
        size: FrameSize,
        dirty: &[Rect],
        cost: &UploadCost,
    ) -> bool {
        self.size = Some(size);
        self.regions.clear();
        self.bytes.clear();
        self.full = false;
        let full = Rect::full(size);
        let dirty_bytes: u64 = dirty.iter().map(|r| r.intersect(&full).area() * 4).sum();
        if dirty_bytes == 0 || src.len() != size.rgba_len() {
            return false;
        }
        // Room for the most a frame of this size can need (a whole frame,
        // and up to `REGIONS_RESERVED` regions) is made once, so staging
        // stops allocating after its first frame, not after its largest.
        self.bytes.reserve(size.rgba_len());
        self.regions.reserve(dirty.len().max(REGIONS_RESERVED));
        let frame_bytes = size.rgba_len() as u64;
        let (whole, _) = cost.cheaper(dirty.len() as u64, dirty_bytes, frame_bytes);
        if whole {
            self.full = true;
            self.bytes.extend_from_slice(src);
            self.regions.push(UploadRegion {
                rect: full,
                offset: 0,
            });
            return true;
        }
        let stride = size.width as usize * 4;
        for r in dirty {
            let r = r.intersect(&full);
            if r.is_empty() {
                continue;
            }
            let offset = self.bytes.len();
            let (x0, x1) = (r.x0 as usize * 4, r.x1 as usize * 4);
            for y in r.y0 as usize..r.y1 as usize {
                self.bytes
                    .extend_from_slice(&src[y * stride + x0..y * stride + x1]);
            }
            self.regions.push(UploadRegion { rect: r, offset });
        }
        true
    }

    /// Stages the whole of `src` (a frame that changes everywhere). Returns
    /// false (nothing staged) when `src` is not a frame of `size`.
    pub fn stage_full(&mut self, src: &[u8], size: FrameSize) -> bool {
        if src.len() != size.rgba_len() {
            return false;
        }
        self.stage_full_with(size, |b| b.copy_from_slice(src));
        true
    }

    /// Stages a whole frame written by `fill` (e.g. a panel rendered
    /// straight into the staging buffer, with no intermediate copy).
    pub fn stage_full_with<R>(&mut self, size: FrameSize, fill: impl FnOnce(&mut [u8]) -> R) -> R {
        self.size = Some(size);
        self.full = true;
        self.regions.clear();
        self.regions.push(UploadRegion {
            rect: Rect::full(size),
            offset: 0,
        });
        self.bytes.resize(size.rgba_len(), 0);
        fill(&mut self.bytes)
    }

    /// Size of the target texture.
    pub fn size(&self) -> Option<FrameSize> {
        self.size
    }

    /// The staged bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The regions (one covering the frame when [`StagedUpload::is_full`]).
    pub fn regions(&self) -> &[UploadRegion] {
        &self.regions
    }

    /// The bytes of region `i`.
    pub fn region_bytes(&self, region: &UploadRegion) -> &[u8] {
        &self.bytes[region.offset..region.offset + region.len()]
    }

    /// True when the whole frame was staged.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// Bytes held by the buffers.
    pub fn held_bytes(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(size: FrameSize) -> Vec<u8> {
        (0..size.rgba_len()).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn apply(staged: &StagedUpload, dst: &mut [u8], size: FrameSize) {
        let stride = size.width as usize * 4;
        for r in staged.regions() {
            let bytes = staged.region_bytes(r);
            let row = r.bytes_per_row() as usize;
            for (i, y) in (r.rect.y0 as usize..r.rect.y1 as usize).enumerate() {
                let at = y * stride + r.rect.x0 as usize * 4;
                dst[at..at + row].copy_from_slice(&bytes[i * row..(i + 1) * row]);
            }
        }
    }

    #[test]
    fn regions_reproduce_the_source_inside_and_nothing_else() {
        let size = FrameSize::new(64, 32).unwrap();
        let src = frame(size);
        let dirty = [
            Rect {
                x0: 3,
                y0: 2,
                x1: 10,
                y1: 9,
            },
            Rect {
                x0: 40,
                y0: 20,
                x1: 64,
                y1: 32,
            },
        ];
        let mut staged = StagedUpload::default();
        // Calls are free: regions always win.
        let cheap = UploadCost {
            per_call_ns: 0.0,
            per_byte_ns: 1.0,
        };
        assert!(staged.stage(&src, size, &dirty, &cheap));
        assert!(!staged.is_full());
        assert_eq!(staged.bytes().len(), (7 * 7 + 24 * 12) * 4);
        let mut dst = vec![0u8; src.len()];
        apply(&staged, &mut dst, size);
        for y in 0..32u32 {
            for x in 0..64u32 {
                let inside = dirty
                    .iter()
                    .any(|r| x >= r.x0 && x < r.x1 && y >= r.y0 && y < r.y1);
                let i = ((y * 64 + x) * 4) as usize;
                let want = if inside {
                    &src[i..i + 4]
                } else {
                    &[0u8; 4][..]
                };
                assert_eq!(&dst[i..i + 4], want, "({x}, {y})");
            }
        }
        // Buffers are reused: staging again does not grow them.
        let held = staged.held_bytes();
        assert!(staged.stage(&src, size, &dirty, &cheap));
        assert_eq!(staged.held_bytes(), held);
    }

    #[test]
    fn the_cost_model_switches_to_one_whole_write() {
        let size = FrameSize::new(64, 32).unwrap();
        let src = frame(size);
        let many: Vec<Rect> = (0..16)
            .map(|i| Rect {
                x0: 0,
                y0: 2 * i,
                x1: 60,
                y1: 2 * i + 1,
            })
            .collect();
        let mut staged = StagedUpload::default();
        // Each call costs as much as the whole frame's bytes: one write wins.
        let expensive_calls = UploadCost {
            per_call_ns: 10_000.0,
            per_byte_ns: 1.0,
        };
        assert!(staged.stage(&src, size, &many, &expensive_calls));
        assert!(staged.is_full());
        assert_eq!(staged.bytes(), &src[..]);
        // Nothing dirty: nothing staged.
        assert!(!staged.stage(&src, size, &[], &expensive_calls));
        assert!(staged.regions().is_empty());
        // A wrong source length is refused, not sliced out of bounds.
        assert!(!staged.stage(&src[4..], size, &many, &expensive_calls));
    }

    #[test]
    fn the_fit_recovers_per_call_and_per_byte_costs() {
        let truth = UploadCost {
            per_call_ns: 20_000.0,
            per_byte_ns: 0.25,
        };
        let mut fit = UploadFit::default();
        assert_eq!(fit.cost(), UploadCost::default());
        for i in 0..200u64 {
            let calls = 1 + i % 13;
            let bytes = 4096 * (1 + (i * 37) % 97);
            let t = truth.predict_ns(calls, bytes);
            fit.observe(calls, bytes, Duration::from_nanos(t as u64));
        }
        let c = fit.cost();
        assert!((c.per_call_ns - 20_000.0).abs() < 50.0, "{c:?}");
        assert!((c.per_byte_ns - 0.25).abs() < 1e-3, "{c:?}");
        // Proportional data cannot separate the terms: the prior stays.
        let mut flat = UploadFit::default();
        for _ in 0..50 {
            flat.observe(1, 4096, Duration::from_micros(30));
        }
        assert_eq!(flat.cost(), UploadCost::default());
    }
}
