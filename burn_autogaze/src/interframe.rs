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

/// How the compositor picks its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dispatch {
    #[default]
    Adaptive,
    Sparse,
    Dense,
    Full,
}

impl Dispatch {
    /// Every mode.
    pub const ALL: [Dispatch; 4] = [Self::Adaptive, Self::Sparse, Self::Dense, Self::Full];

    /// Command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adaptive => "adaptive",
            Self::Sparse => "sparse",
            Self::Dense => "dense",
            Self::Full => "full",
        }
    }
}

impl std::fmt::Display for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Dispatch {
    type Err = AutoGazeError;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| AutoGazeError::setting("dispatch", s, "adaptive, sparse, dense or full"))
    }
}

/// The path a frame took.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ComposePath {
    Keyframe,
    /// Empty plan: nothing to copy.
    Skip,
    Sparse,
    Dense,
    Full,
}

impl ComposePath {
    /// Every path, in report order.
    pub const ALL: [ComposePath; 5] = [
        Self::Keyframe,
        Self::Skip,
        Self::Sparse,
        Self::Dense,
        Self::Full,
    ];

    /// Name used in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keyframe => "keyframe",
            Self::Skip => "skip",
            Self::Sparse => "sparse",
            Self::Dense => "dense",
            Self::Full => "full",
        }
    }
}

/// Compositor settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CompositorOptions {
    pub dispatch: Dispatch,
    /// A keyframe every `period` frames (0: never).
    pub keyframe_period: u64,
    /// Refresh fully when output-vs-input PSNR (dB) drops below this.
    pub psnr_floor: Option<f64>,
    /// Compute output-vs-input PSNR every frame (costs a pass over the frame).
    pub measure_psnr: bool,
    /// Let `adaptive` pick a full-frame copy when it is predicted cheapest.
    pub full_refresh: bool,
}

impl Default for CompositorOptions {
    fn default() -> Self {
        Self {
            dispatch: Dispatch::Adaptive,
            keyframe_period: 0,
            psnr_floor: None,
            measure_psnr: false,
            full_refresh: true,
        }
    }
}

/// What one compose did.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ComposeReport {
    pub seq: u64,
    pub path: ComposePath,
    pub keyframe: bool,
    /// The plan's union / frame pixels (the gaze ratio of the frame).
    pub coverage: f64,
    /// Output pixels written.
    pub updated_pixels: u64,
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

    /// The output frame (RGBA8; empty before the first frame).
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
        let mut out = [(ComposePath::Keyframe, 0); 5];
        for (i, p) in ComposePath::ALL.into_iter().enumerate() {
            out[i] = (p, self.path_counts[i]);
        }
        out
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
        let keyframe = self.size != Some(size)
            || self.refresh_pending
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
        match path {
            ComposePath::Keyframe | ComposePath::Full => {
                self.output.copy_from_slice(frame.rgba());
                self.dirty.push(Rect::full(size));
            }
            ComposePath::Skip => {}
            ComposePath::Sparse => {
                self.sparse(frame, plan.spans());
                self.dirty.extend(plan.spans().iter().map(Span::rect));
            }
            ComposePath::Dense => {
                self.dense(frame, plan.spans());
                self.dirty.extend(plan.spans().iter().map(Span::rect));
            }
        }
        let mut psnr_db = None;
        if self.options.measure_psnr || self.options.psnr_floor.is_some() {
            psnr_db = psnr_rgb(&self.output, frame.rgba());
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
        self.path_counts[ComposePath::ALL
            .iter()
            .position(|p| *p == path)
            .unwrap_or(0)] += 1;
        Ok(ComposeReport {
            seq: frame.seq,
            path,
            keyframe,
            coverage: plan.coverage(),
            updated_pixels: updated,
            copied_bytes: updated * 4,
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
mod tests {
    use super::*;
    use crate::crossover::CROSSOVER_SCHEMA;
    use crate::mask::{MaskGeometry, MaskPlanner};
    use crate::source::{FrameSource, PanSpeed, SyntheticPan};
    use crate::tokens::TokenLayout;

    fn table(c: CostCoefficients) -> CrossoverTable {
        CrossoverTable {
            schema: CROSSOVER_SCHEMA.into(),
            revision: "test".into(),
            date: "test".into(),
            machine: "test".into(),
            sizes: vec![c],
            points: vec![],
        }
    }

    fn coefficients(sparse_byte: f64, dense_px: f64, full_byte: f64) -> CostCoefficients {
        CostCoefficients {
            width: 64,
            height: 48,
            sparse_ns_per_row: 1.0,
            sparse_ns_per_byte: sparse_byte,
            dense_ns_per_pixel: dense_px,
            dense_ns_per_union_pixel: 0.0,
            full_ns_per_byte: full_byte,
        }
    }

    fn token_set(seed: u64) -> Vec<u32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let n = (s % 40) as usize;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 265) as u32
            })
            .collect()
    }

    fn inside(plan: &MaskPlan, x: u32, y: u32) -> bool {
        plan.spans()
            .iter()
            .any(|s| x >= s.x0 && x < s.x1 && y >= s.y0 && y < s.y1)
    }

    #[test]
    fn pixels_outside_the_plan_are_kept_bit_exactly() {
        for (w, h) in [(64u32, 48u32), (37, 23)] {
            let size = FrameSize::new(w, h).unwrap();
            for dispatch in [Dispatch::Sparse, Dispatch::Dense, Dispatch::Adaptive] {
                let mut src = SyntheticPan::new(size, PanSpeed::default(), 30.0).unwrap();
                let options = CompositorOptions {
                    dispatch,
                    full_refresh: false,
                    ..Default::default()
                };
                let mut comp = Compositor::new(options);
                let mut planner = MaskPlanner::new(TokenLayout::release());
                let mut plan = MaskPlan::default();
                for n in 0..30u64 {
                    let frame = src.next_frame().unwrap();
                    planner.plan_into(token_set(n), size, MaskGeometry::Deduplicated, &mut plan);
                    let before = comp.output().to_vec();
                    let report = comp.compose(&frame, &plan).unwrap();
                    if n == 0 {
                        assert!(report.keyframe);
                        assert_eq!(comp.output(), frame.rgba());
                        continue;
                    }
                    assert_ne!(report.path, ComposePath::Full);
                    for y in 0..h {
                        for x in 0..w {
                            let i = ((y * w + x) * 4) as usize;
                            let want = if inside(&plan, x, y) {
                                &frame.rgba()[i..i + 4]
                            } else {
                                &before[i..i + 4]
                            };
                            assert_eq!(
                                &comp.output()[i..i + 4],
                                want,
                                "{dispatch:?} frame {n} ({x},{y})"
                            );
                        }
                    }
                    assert_eq!(report.updated_pixels, plan.union_pixels());
                    let dirty: u64 = comp.dirty_regions().iter().map(Rect::area).sum();
                    assert_eq!(dirty, plan.union_pixels());
                }
            }
        }
    }

    #[test]
    fn keyframe_rules() {
        let size = FrameSize::new(32, 16).unwrap();
        let mut src = SyntheticPan::new(size, PanSpeed::default(), 30.0).unwrap();
        let plan =
            MaskPlanner::new(TokenLayout::release()).plan([], size, MaskGeometry::Deduplicated);
        let mut comp = Compositor::new(CompositorOptions {
            keyframe_period: 3,
            ..Default::default()
        });
        let paths: Vec<ComposePath> = (0..7)
            .map(|_| {
                comp.compose(&src.next_frame().unwrap(), &plan)
                    .unwrap()
                    .path
            })
            .collect();
        use ComposePath::{Keyframe as K, Skip as S};
        assert_eq!(paths, vec![K, S, S, K, S, S, K]);
        assert_eq!(comp.counts(), (7, 3));
        // Size change.
        let other = FrameSize::new(16, 16).unwrap();
        let mut small = SyntheticPan::new(other, PanSpeed::default(), 30.0).unwrap();
        let plan_small =
            MaskPlanner::new(TokenLayout::release()).plan([], other, MaskGeometry::Deduplicated);
        assert!(
            comp.compose(&small.next_frame().unwrap(), &plan_small)
                .unwrap()
                .keyframe
        );
        // A plan for another size is an error naming both sizes.
        let err = comp
            .compose(&src.next_frame().unwrap(), &plan_small)
            .unwrap_err()
            .to_string();
        assert!(err.contains("16x16") && err.contains("32x16"), "{err}");
        // Quality floor: with no updates the pan drifts and triggers a refresh.
        let mut comp = Compositor::new(CompositorOptions {
            psnr_floor: Some(40.0),
            ..Default::default()
        });
        let first = comp.compose(&src.next_frame().unwrap(), &plan).unwrap();
        assert_eq!(first.psnr_db, Some(f64::INFINITY));
        let second = comp.compose(&src.next_frame().unwrap(), &plan).unwrap();
        assert!(second.keyframe && second.psnr_db.unwrap() < 40.0);
        assert_eq!(comp.counts(), (2, 2));
    }

    #[test]
    fn dispatch_follows_the_cost_model() {
        let size = FrameSize::new(64, 48).unwrap();
        let mut src = SyntheticPan::new(size, PanSpeed::default(), 30.0).unwrap();
        let mut planner = MaskPlanner::new(TokenLayout::release());
        let half = planner.plan(0..2, size, MaskGeometry::Deduplicated);
        let full = planner.plan(0..4, size, MaskGeometry::Deduplicated);
        let empty = planner.plan([], size, MaskGeometry::Deduplicated);
        let run =
            |c: CostCoefficients, plan: &MaskPlan, full_refresh: bool, src: &mut SyntheticPan| {
                let mut comp = Compositor::with_table(
                    CompositorOptions {
                        full_refresh,
                        ..Default::default()
                    },
                    table(c),
                );
                comp.compose(&src.next_frame().unwrap(), plan).unwrap();
                let r = comp.compose(&src.next_frame().unwrap(), plan).unwrap();
                let [s, d, f] = r.predicted_ns;
                (r.path, s, d, f)
            };
        // Sparse cheapest.
        let (p, s, d, f) = run(coefficients(0.01, 10.0, 10.0), &half, true, &mut src);
        assert!(s < d && s < f);
        assert_eq!(p, ComposePath::Sparse);
        // Dense cheapest.
        assert_eq!(
            run(coefficients(10.0, 0.01, 10.0), &half, true, &mut src).0,
            ComposePath::Dense
        );
        // Full cheapest: taken when allowed, or when the plan covers the frame.
        assert_eq!(
            run(coefficients(10.0, 10.0, 0.01), &half, true, &mut src).0,
            ComposePath::Full
        );
        assert_eq!(
            run(coefficients(10.0, 10.0, 0.01), &half, false, &mut src).0,
            ComposePath::Dense
        );
        assert_eq!(
            run(coefficients(10.0, 10.0, 0.01), &full, false, &mut src).0,
            ComposePath::Full
        );
        assert_eq!(
            run(coefficients(10.0, 10.0, 0.01), &empty, true, &mut src).0,
            ComposePath::Skip
        );
        // Forced paths ignore the model.
        let mut comp = Compositor::new(CompositorOptions {
            dispatch: Dispatch::Dense,
            ..Default::default()
        });
        comp.compose(&src.next_frame().unwrap(), &half).unwrap();
        assert_eq!(
            comp.compose(&src.next_frame().unwrap(), &half)
                .unwrap()
                .path,
            ComposePath::Dense
        );
        assert_eq!("dense".parse::<Dispatch>().unwrap(), Dispatch::Dense);
        assert!("fast".parse::<Dispatch>().is_err());
    }
}

#[cfg(test)]
mod fixation_sets {
    use super::*;
    use crate::mask::{MaskGeometry, MaskPlanner};
    use crate::source::{FrameSource, PanSpeed, SyntheticPan};
    use crate::tokens::TokenLayout;

    /// The benchmark's fixation sets at the benchmark's sizes plus square and
    /// odd ones: the union is what the plan says, the output is the frame
    /// inside it and history outside, on every forced path.
    #[test]
    fn fixation_sets_compose_exactly_at_every_size() {
        let fine = |r: u32, c: u32| 69 + r * 14 + c;
        let sets: Vec<(&str, Vec<u32>)> = vec![
            ("empty", vec![]),
            ("tiny-sparse", vec![fine(7, 7)]),
            (
                "multiscale",
                vec![1, 6, 25, 33, fine(2, 3), fine(9, 11), fine(12, 1)],
            ),
            (
                "dense-grid-64",
                (0..14)
                    .flat_map(|r| (0..14).map(move |c| (r, c)))
                    .filter(|(r, c)| (r + c) % 2 == 0)
                    .take(64)
                    .map(|(r, c)| fine(r, c))
                    .collect(),
            ),
            ("full", (0..265).collect()),
        ];
        let mut planner = MaskPlanner::new(TokenLayout::release());
        for (w, h) in [(1280, 720), (1920, 1080), (448, 448), (641, 359)] {
            let size = FrameSize::new(w, h).unwrap();
            let mut src = SyntheticPan::new(size, PanSpeed::default(), 30.0).unwrap();
            let first = src.next_frame().unwrap();
            let next = src.next_frame().unwrap();
            for (name, tokens) in &sets {
                let plan = planner.plan(tokens.iter().copied(), size, MaskGeometry::Deduplicated);
                // Row-wise inside test from the spans.
                let mut inside = vec![false; size.pixels()];
                for s in plan.spans() {
                    for y in s.y0..s.y1 {
                        inside[(y * w + s.x0) as usize..(y * w + s.x1) as usize].fill(true);
                    }
                }
                assert_eq!(
                    inside.iter().filter(|v| **v).count() as u64,
                    plan.union_pixels(),
                    "{name} {size}"
                );
                for dispatch in [Dispatch::Sparse, Dispatch::Dense] {
                    let mut comp = Compositor::new(CompositorOptions {
                        dispatch,
                        ..Default::default()
                    });
                    comp.compose(&first, &plan).unwrap();
                    comp.compose(&next, &plan).unwrap();
                    let ok = comp
                        .output()
                        .chunks_exact(4)
                        .zip(
                            first
                                .rgba()
                                .chunks_exact(4)
                                .zip(next.rgba().chunks_exact(4)),
                        )
                        .zip(&inside)
                        .all(|((o, (a, b)), &i)| o == if i { b } else { a });
                    assert!(ok, "{name} {size} {dispatch}");
                }
            }
            let full = planner.plan(0..265, size, MaskGeometry::Deduplicated);
            assert_eq!(full.coverage(), 1.0);
        }
    }
}
