//! Interframe composition: a persistent output frame updated only inside each
//! frame's mask plan, with history kept outside.
//!
//! Paths, chosen per frame by the measured cost model ([`crate::crossover`])
//! or forced for measurement:
//! - **sparse**: one copy per row of each span of the plan (work proportional
//!   to the change);
//! - **dense**: one masked pass over the whole frame (the shape of a GPU
//!   kernel; on a CPU it rarely wins, and the cost model knows it);
//! - **full**: one memcpy of the frame. Under `adaptive` it is taken when it
//!   is predicted cheaper than both and `full_refresh` allows it; it then
//!   refreshes pixels outside the plan too (the output only gets closer to the
//!   input), and reports every pixel as updated.
//!
//! Keyframes (a full copy, counted apart): the first frame, a size change,
//! every `period` frames, and when output-vs-input PSNR falls below
//! `psnr_floor`. Each compose emits dirty regions: what changed in the output.

use crate::crossover::{CostCoefficients, CrossoverTable};
use crate::error::{AutoGazeError, Result};
use crate::frame::{Frame, FrameSize};
use crate::mask::{MaskPlan, Rect, Span};
use crate::quality::psnr_rgb;

crate::names::named_enum! {
    /// How the compositor picks its path.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum Dispatch ("dispatch") {
        /// Per frame, the path the cost table predicts cheapest.
        #[default]
        Adaptive => "adaptive",
        /// Always copy the plan's row spans.
        Sparse => "sparse",
        /// Always run the masked pass over the whole frame.
        Dense => "dense",
        /// Always copy the whole frame.
        Full => "full",
    }
}

crate::names::named_enum! {
    /// The path a frame took.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum ComposePath ("compose path") {
        /// A keyframe: the whole frame, whatever the plan.
        Keyframe => "keyframe",
        /// Empty plan: nothing to copy.
        Skip => "skip",
        /// The plan's row spans, copied.
        Sparse => "sparse",
        /// The masked pass over the whole frame.
        Dense => "dense",
        /// The whole frame, copied.
        Full => "full",
    }
}

impl ComposePath {
    /// True when the output is the frame after composing (a keyframe or a
    /// full copy): its PSNR against the frame is infinite, unmeasured.
    pub fn copies_the_frame(self) -> bool {
        matches!(self, Self::Keyframe | Self::Full)
    }
}

/// Compositor settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CompositorOptions {
    /// How the path is picked.
    pub dispatch: Dispatch,
    /// A keyframe every `period` frames (0: never).
    pub keyframe_period: u64,
    /// Refresh fully when output-vs-input PSNR (dB) drops below this.
    pub psnr_floor: Option<f64>,
    /// Compute output-vs-input PSNR every frame (costs a pass over the frame).
    pub measure_psnr: bool,
    /// Let `adaptive` pick a full-frame copy when it is predicted cheapest.
    pub full_refresh: bool,
    /// Keep the composed output on the host (the default). Off, the
    /// compositor only decides each frame's path and dirty regions (the same
    /// keyframes and history) for a device that composes from them (the
    /// viewer's GPU transfer): the host output is not written and PSNR is
    /// not measured; turned back on, the next frame is a keyframe.
    #[serde(default = "host_output_default")]
    pub host_output: bool,
}

fn host_output_default() -> bool {
    true
}

impl Default for CompositorOptions {
    fn default() -> Self {
        Self {
            dispatch: Dispatch::Adaptive,
            keyframe_period: 0,
            psnr_floor: None,
            measure_psnr: false,
            full_refresh: true,
            host_output: true,
        }
    }
}

/// What one compose did.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ComposeReport {
    /// Sequence number of the composed frame.
    pub seq: u64,
    /// The path the frame took.
    pub path: ComposePath,
    /// True when the frame was a keyframe.
    pub keyframe: bool,
    /// The plan's union / frame pixels (the gaze ratio of the frame).
    pub coverage: f64,
    /// Output pixels written.
    pub updated_pixels: u64,
    /// Bytes the host copied into the output (0 with `host_output` off).
    pub copied_bytes: u64,
    /// Predicted costs (ns) of sparse, dense, full.
    pub predicted_ns: [f64; 3],
    /// Output-vs-input PSNR after composing, when measured.
    pub psnr_db: Option<f64>,
}

/// The persistent output and its bookkeeping. Steady state allocates nothing.
#[derive(Debug, Clone)]
pub struct Compositor {
    options: CompositorOptions,
    table: CrossoverTable,
    cost: Option<CostCoefficients>,
    size: Option<FrameSize>,
    output: Vec<u8>,
    mask: Vec<u8>,
    mask_spans: Vec<Span>,
    dirty: Vec<Rect>,
    since_keyframe: u64,
    refresh_pending: bool,
    /// The host output missed a frame (composed with `host_output` off).
    host_stale: bool,
    frames: u64,
    keyframes: u64,
    path_counts: [u64; 5],
}

impl Compositor {
    /// A compositor using the embedded crossover table.
    pub fn new(options: CompositorOptions) -> Self {
        Self::with_table(options, CrossoverTable::embedded())
    }

    /// A compositor with a given cost table.
    pub fn with_table(options: CompositorOptions, table: CrossoverTable) -> Self {
        Self {
            options,
            table,
            cost: None,
            size: None,
            output: Vec::new(),
            mask: Vec::new(),
            // Sized for any plan of the release layout: no growth per frame.
            mask_spans: Vec::with_capacity(crate::mask::max_spans(
                &crate::tokens::TokenLayout::release(),
            )),
            dirty: Vec::with_capacity(crate::mask::max_spans(
                &crate::tokens::TokenLayout::release(),
            )),
            since_keyframe: 0,
            refresh_pending: false,
            host_stale: false,
            frames: 0,
            keyframes: 0,
            path_counts: [0; 5],
        }
    }

    /// Settings (changeable between frames).
    pub fn options_mut(&mut self) -> &mut CompositorOptions {
        &mut self.options
    }

    /// Current settings.
    pub fn options(&self) -> CompositorOptions {
        self.options
    }

    /// The output frame (RGBA8; empty before the first frame; not written
    /// while [`CompositorOptions::host_output`] is off).
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// Output size.
    pub fn size(&self) -> Option<FrameSize> {
        self.size
    }

    /// Regions written by the last compose (merged rectangles).
    pub fn dirty_regions(&self) -> &[Rect] {
        &self.dirty
    }

    /// Frames composed and keyframes among them.
    pub fn counts(&self) -> (u64, u64) {
        (self.frames, self.keyframes)
    }

    /// How often each path was taken, in [`ComposePath::ALL`] order.
    pub fn path_counts(&self) -> [(ComposePath, u64); 5] {
        ComposePath::ALL.map(|p| (p, self.path_counts[p as usize]))
    }

    /// Bytes held by the compositor's buffers.
    pub fn held_bytes(&self) -> usize {
        self.output.capacity() + self.mask.capacity()
    }

    /// Asks for a keyframe on the next compose.
    pub fn request_keyframe(&mut self) {
        self.refresh_pending = true;
    }

    /// Predicted costs (ns) of sparse, dense and full for `plan`.
    pub fn predict(&self, plan: &MaskPlan) -> [f64; 3] {
        let Some((cost, size)) = self.cost.zip(self.size) else {
            return [0.0; 3];
        };
        let stats = plan.stats();
        let px = size.pixels() as u64;
        [
            cost.sparse_ns(&stats),
            cost.dense_ns(&stats, px),
            cost.full_ns(px),
        ]
    }

    /// Composes `frame` through `plan` (made for the frame's size).
    pub fn compose(&mut self, frame: &Frame, plan: &MaskPlan) -> Result<ComposeReport> {
        let size = frame.size();
        if let Some(ps) = plan.size()
            && ps != size
        {
            return Err(AutoGazeError::MismatchedFrameSize {
                context: "mask plan".into(),
                index: frame.seq as usize,
                expected_w: ps.width,
                expected_h: ps.height,
                actual_w: size.width,
                actual_h: size.height,
            });
        }
        let pixels = size.pixels() as u64;
        let host = self.options.host_output;
        let keyframe = self.size != Some(size)
            || self.refresh_pending
            || (host && self.host_stale)
            || (self.options.keyframe_period > 0
                && self.since_keyframe + 1 >= self.options.keyframe_period);
        if self.size != Some(size) {
            self.size = Some(size);
            self.cost = Some(self.table.for_size(size));
            self.output.clear();
            self.output.resize(size.rgba_len(), 0);
            self.mask.clear();
            self.mask.resize(size.pixels(), 0);
            self.mask_spans.clear();
        }
        let predicted = self.predict(plan);
        self.dirty.clear();
        let (mut path, mut updated) = if keyframe {
            (ComposePath::Keyframe, pixels)
        } else {
            let path = self.choose(plan, predicted);
            (
                path,
                if path == ComposePath::Full {
                    pixels
                } else {
                    plan.union_pixels()
                },
            )
        };
        // The dirty regions always; the host's bytes when it keeps the output.
        match path {
            ComposePath::Keyframe | ComposePath::Full => {
                if host {
                    self.output.copy_from_slice(frame.rgba());
                }
                self.dirty.push(Rect::full(size));
            }
            ComposePath::Skip => {}
            ComposePath::Sparse => {
                if host {
                    self.sparse(frame, plan.spans());
                }
                self.dirty.extend(plan.spans().iter().map(Span::rect));
            }
            ComposePath::Dense => {
                if host {
                    self.dense(frame, plan.spans());
                }
                self.dirty.extend(plan.spans().iter().map(Span::rect));
            }
        }
        self.host_stale = !host;
        let mut psnr_db = None;
        if host && (self.options.measure_psnr || self.options.psnr_floor.is_some()) {
            // A whole-frame copy is the frame: nothing to measure.
            psnr_db = if path.copies_the_frame() {
                Some(f64::INFINITY)
            } else {
                psnr_rgb(&self.output, frame.rgba())
            };
            if let (Some(floor), Some(p)) = (self.options.psnr_floor, psnr_db)
                && p < floor
                && path != ComposePath::Keyframe
            {
                // Quality floor: refresh now.
                self.output.copy_from_slice(frame.rgba());
                self.dirty.clear();
                self.dirty.push(Rect::full(size));
                path = ComposePath::Keyframe;
                updated = pixels;
            }
        }
        let keyframe = path == ComposePath::Keyframe;
        if keyframe {
            self.keyframes += 1;
            self.since_keyframe = 0;
            self.refresh_pending = false;
        } else {
            self.since_keyframe += 1;
        }
        self.frames += 1;
        self.path_counts[path as usize] += 1;
        Ok(ComposeReport {
            seq: frame.seq,
            path,
            keyframe,
            coverage: plan.coverage(),
            updated_pixels: updated,
            copied_bytes: if host { updated * 4 } else { 0 },
            predicted_ns: predicted,
            psnr_db,
        })
    }

    fn choose(&self, plan: &MaskPlan, predicted: [f64; 3]) -> ComposePath {
        match self.options.dispatch {
            Dispatch::Sparse => ComposePath::Sparse,
            Dispatch::Dense => ComposePath::Dense,
            Dispatch::Full => ComposePath::Full,
            Dispatch::Adaptive => {
                if plan.is_empty() {
                    return ComposePath::Skip;
                }
                let [sparse, dense, full] = predicted;
                let covers_all = self
                    .size
                    .is_some_and(|s| plan.union_pixels() == s.pixels() as u64);
                if (self.options.full_refresh || covers_all) && full < sparse && full < dense {
                    ComposePath::Full
                } else if dense < sparse {
                    ComposePath::Dense
                } else {
                    ComposePath::Sparse
                }
            }
        }
    }

    fn sparse(&mut self, frame: &Frame, spans: &[Span]) {
        let stride = frame.width() as usize * 4;
        let src = frame.rgba();
        for s in spans {
            let (a, b) = (s.x0 as usize * 4, s.x1 as usize * 4);
            for y in s.y0 as usize..s.y1 as usize {
                let row = y * stride;
                self.output[row + a..row + b].copy_from_slice(&src[row + a..row + b]);
            }
        }
    }

    fn dense(&mut self, frame: &Frame, spans: &[Span]) {
        let width = frame.width() as usize;
        // Re-raster the mask: clear the previous spans, set the new ones.
        for s in &self.mask_spans {
            for y in s.y0 as usize..s.y1 as usize {
                self.mask[y * width + s.x0 as usize..y * width + s.x1 as usize].fill(0);
            }
        }
        for s in spans {
            for y in s.y0 as usize..s.y1 as usize {
                self.mask[y * width + s.x0 as usize..y * width + s.x1 as usize].fill(0xFF);
            }
        }
        self.mask_spans.clear();
        self.mask_spans.extend_from_slice(spans);
        // One branch-free masked pass over every pixel.
        for ((out, src), &m) in self
            .output
            .chunks_exact_mut(4)
            .zip(frame.rgba().chunks_exact(4))
            .zip(&self.mask)
        {
            let m = 0u32.wrapping_sub((m & 1) as u32);
            let o = u32::from_ne_bytes([out[0], out[1], out[2], out[3]]);
            let s = u32::from_ne_bytes([src[0], src[1], src[2], src[3]]);
            out.copy_from_slice(&((s & m) | (o & !m)).to_ne_bytes());
        }
    }
}

#[cfg(test)]
mod tests;
