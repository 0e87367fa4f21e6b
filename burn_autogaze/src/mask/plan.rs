//! The mask plan and its planner (geometry policies native, deduplicated,
//! effective).

use super::geometry::{Rect, Span, UnionScratch, cell_rect, union_spans};
use crate::frame::FrameSize;
use crate::tokens::TokenLayout;

crate::names::named_enum! {
    /// How tokens become rectangles.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum MaskGeometry ("mask geometry") {
        /// One rectangle per token, overlaps kept (a debugging view).
        Native => "native",
        /// Drop cells fully covered by kept coarser cells; the union is native's.
        #[default]
        Deduplicated => "deduplicated",
        /// Each token moves to the finest-grid cell containing its centre (the
        /// union shrinks, by design: compact sparse-token consumers).
        Effective => "effective",
    }
}

/// A rectangle of the plan and the scale (0 = coarsest) it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MaskRect {
    /// The rectangle, in frame pixels.
    pub rect: Rect,
    /// The scale it came from (0 = coarsest).
    pub scale: u8,
}

/// Counts describing a plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanStats {
    /// Valid tokens given (repeats included).
    pub tokens: u32,
    /// Rectangles after the geometry policy.
    pub rects: u32,
    /// Disjoint row bands of the union.
    pub spans: u32,
    /// Row copies a span-wise copy performs (sum of band heights).
    pub row_spans: u64,
    /// Pixels in the union.
    pub updated_pixels: u64,
    /// RGBA bytes a copy of the union moves.
    pub copied_bytes: u64,
}

/// The plan of one frame.
#[derive(Debug, Default, PartialEq)]
pub struct MaskPlan {
    size: Option<FrameSize>,
    geometry: MaskGeometry,
    rects: Vec<MaskRect>,
    spans: Vec<Span>,
    stats: PlanStats,
}

impl Clone for MaskPlan {
    fn clone(&self) -> Self {
        Self {
            size: self.size,
            geometry: self.geometry,
            rects: self.rects.clone(),
            spans: self.spans.clone(),
            stats: self.stats,
        }
    }

    /// Reuses this plan's storage (the viewer keeps the plan it last drew
    /// this way, every frame the mask changes: no allocation once grown).
    fn clone_from(&mut self, source: &Self) {
        self.size = source.size;
        self.geometry = source.geometry;
        self.rects.clone_from(&source.rects);
        self.spans.clone_from(&source.spans);
        self.stats = source.stats;
    }
}

impl MaskPlan {
    /// Frame size the plan was made for.
    pub fn size(&self) -> Option<FrameSize> {
        self.size
    }

    /// Policy used.
    pub fn geometry(&self) -> MaskGeometry {
        self.geometry
    }

    /// Rectangles after the policy, coarse scales first.
    pub fn rects(&self) -> &[MaskRect] {
        &self.rects
    }

    /// The union as disjoint row bands, sorted by `(y0, x0)`.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// Counts.
    pub fn stats(&self) -> PlanStats {
        self.stats
    }

    /// Pixels in the union.
    pub fn union_pixels(&self) -> u64 {
        self.stats.updated_pixels
    }

    /// Union pixels / frame pixels: the gaze ratio of this frame.
    pub fn coverage(&self) -> f64 {
        match self.size {
            Some(s) => self.stats.updated_pixels as f64 / s.pixels() as f64,
            None => 0.0,
        }
    }

    /// True when no pixel is to be updated.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// Upper bound on the spans of any plan: one band per pair of rectangle
/// edges, at most one interval per finest-grid column (plus one) in a band.
pub fn max_spans(layout: &TokenLayout) -> usize {
    2 * layout.tokens() as usize * (layout.finest_grid() as usize + 1)
}

/// Builds plans, reusing its scratch: steady-state planning allocates nothing.
#[derive(Debug, Clone)]
pub struct MaskPlanner {
    layout: TokenLayout,
    present: Vec<bool>,
    fine: Vec<bool>,
    clipped: Vec<Rect>,
    union: UnionScratch,
    cover: Vec<Span>,
}

impl MaskPlanner {
    /// A planner for `layout`. Scratch is sized for the worst case up front,
    /// so planning never allocates after construction.
    pub fn new(layout: TokenLayout) -> Self {
        let g = layout.finest_grid() as usize;
        let tokens = layout.tokens() as usize;
        Self {
            present: vec![false; tokens],
            fine: vec![false; g * g],
            clipped: Vec::with_capacity(tokens),
            union: UnionScratch::with_capacity(tokens),
            cover: Vec::with_capacity(max_spans(&layout)),
            layout,
        }
    }

    /// Reserves `plan`'s buffers for any plan of this layout.
    pub fn reserve(&self, plan: &mut MaskPlan) {
        let tokens = self.layout.tokens() as usize;
        plan.rects.reserve(tokens.saturating_sub(plan.rects.len()));
        let spans = max_spans(&self.layout);
        plan.spans.reserve(spans.saturating_sub(plan.spans.len()));
    }

    /// The token layout.
    pub fn layout(&self) -> &TokenLayout {
        &self.layout
    }

    /// Plans `tokens` (frame-local ids; ids at or above the pad id are
    /// ignored) for a `size` frame into `out`.
    pub fn plan_into(
        &mut self,
        tokens: impl IntoIterator<Item = u32>,
        size: FrameSize,
        geometry: MaskGeometry,
        out: &mut MaskPlan,
    ) {
        if out.spans.capacity() == 0 {
            self.reserve(out);
        }
        self.present.fill(false);
        let mut count = 0u32;
        for id in tokens {
            if let Some(p) = self.present.get_mut(id as usize) {
                *p = true;
                count += 1;
            }
        }
        out.size = Some(size);
        out.geometry = geometry;
        out.rects.clear();
        match geometry {
            MaskGeometry::Native => self.native(size, &mut out.rects),
            MaskGeometry::Deduplicated => self.deduplicated(size, &mut out.rects),
            MaskGeometry::Effective => self.effective(size, &mut out.rects),
        }
        self.finish(out, count);
    }

    /// Plans a frame cut into tiles (AnyRes): each tile's tokens are planned
    /// on the tile with the same policy, moved to the tile's place and clipped
    /// to the frame; the plan is the union over tiles. `scratch` holds one
    /// tile's plan between calls.
    pub fn plan_tiles_into<'a>(
        &mut self,
        tiles: impl IntoIterator<Item = (Rect, &'a [u32])>,
        size: FrameSize,
        geometry: MaskGeometry,
        scratch: &mut MaskPlan,
        out: &mut MaskPlan,
    ) {
        if out.spans.capacity() == 0 {
            self.reserve(out);
        }
        out.size = Some(size);
        out.geometry = geometry;
        out.rects.clear();
        let frame = Rect::full(size);
        let mut count = 0u32;
        for (tile, tokens) in tiles {
            let Ok(tile_size) = FrameSize::new(tile.width(), tile.height()) else {
                continue;
            };
            self.plan_into(tokens.iter().copied(), tile_size, geometry, scratch);
            count += scratch.stats.tokens;
            for r in &scratch.rects {
                let moved = Rect {
                    x0: r.rect.x0 + tile.x0,
                    y0: r.rect.y0 + tile.y0,
                    x1: r.rect.x1 + tile.x0,
                    y1: r.rect.y1 + tile.y0,
                }
                .intersect(&frame);
                if !moved.is_empty() {
                    out.rects.push(MaskRect {
                        rect: moved,
                        scale: r.scale,
                    });
                }
            }
        }
        self.finish(out, count);
    }

    /// Takes the union of `out.rects` and fills the counts.
    fn finish(&mut self, out: &mut MaskPlan, tokens: u32) {
        let area = union_spans(
            out.rects.iter().map(|r| r.rect),
            &mut self.union,
            &mut out.spans,
        );
        out.stats = PlanStats {
            tokens,
            rects: out.rects.len() as u32,
            spans: out.spans.len() as u32,
            row_spans: out.spans.iter().map(|s| (s.y1 - s.y0) as u64).sum(),
            updated_pixels: area,
            copied_bytes: area * 4,
        };
    }

    /// Convenience: a new plan.
    pub fn plan(
        &mut self,
        tokens: impl IntoIterator<Item = u32>,
        size: FrameSize,
        geometry: MaskGeometry,
    ) -> MaskPlan {
        let mut plan = MaskPlan::default();
        self.plan_into(tokens, size, geometry, &mut plan);
        plan
    }

    fn present_cells(&self) -> impl Iterator<Item = (u8, u32, u32, u32)> + '_ {
        self.layout
            .scales()
            .iter()
            .enumerate()
            .flat_map(move |(i, s)| {
                (0..s.grid * s.grid)
                    .filter(move |local| self.present[(s.offset + local) as usize])
                    .map(move |local| (i as u8, s.grid, local / s.grid, local % s.grid))
            })
    }

    fn native(&self, size: FrameSize, rects: &mut Vec<MaskRect>) {
        for (scale, grid, row, col) in self.present_cells() {
            rects.push(MaskRect {
                rect: cell_rect(size, grid, row, col),
                scale,
            });
        }
    }

    fn deduplicated(&mut self, size: FrameSize, rects: &mut Vec<MaskRect>) {
        for i in 0..self.layout.scales().len() {
            let s = self.layout.scales()[i];
            // Kept cells of coarser scales are rects[..coarser].
            let coarser = rects.len();
            for local in 0..s.grid * s.grid {
                if !self.present[(s.offset + local) as usize] {
                    continue;
                }
                let rect = cell_rect(size, s.grid, local / s.grid, local % s.grid);
                if !self.covered(&rect, &rects[..coarser]) {
                    rects.push(MaskRect {
                        rect,
                        scale: i as u8,
                    });
                }
            }
        }
    }

    /// True when the union of `kept` covers `rect`.
    fn covered(&mut self, rect: &Rect, kept: &[MaskRect]) -> bool {
        self.clipped.clear();
        for k in kept {
            if k.rect.contains(rect) {
                return true;
            }
            let c = k.rect.intersect(rect);
            if !c.is_empty() {
                self.clipped.push(c);
            }
        }
        if self.clipped.is_empty() {
            return false;
        }
        let area = union_spans(
            self.clipped.iter().copied(),
            &mut self.union,
            &mut self.cover,
        );
        area == rect.area()
    }

    fn effective(&mut self, size: FrameSize, rects: &mut Vec<MaskRect>) {
        let g = self.layout.finest_grid();
        self.fine.fill(false);
        for s in self.layout.scales() {
            for local in 0..s.grid * s.grid {
                if !self.present[(s.offset + local) as usize] {
                    continue;
                }
                let (r, c) = (local / s.grid, local % s.grid);
                // Centre (c + 0.5) / grid, in finest cells: floor((2c + 1) g / (2 grid)).
                let fr = ((2 * r + 1) * g) / (2 * s.grid);
                let fc = ((2 * c + 1) * g) / (2 * s.grid);
                self.fine[(fr * g + fc) as usize] = true;
            }
        }
        let finest = (self.layout.scales().len() - 1) as u8;
        for idx in 0..g * g {
            if self.fine[idx as usize] {
                rects.push(MaskRect {
                    rect: cell_rect(size, g, idx / g, idx % g),
                    scale: finest,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(w: u32, h: u32) -> FrameSize {
        FrameSize::new(w, h).unwrap()
    }

    /// Reference union by rasterising every rect.
    fn raster(plan_rects: &[MaskRect], s: FrameSize) -> Vec<bool> {
        let mut m = vec![false; s.pixels()];
        for r in plan_rects {
            for y in r.rect.y0..r.rect.y1 {
                for x in r.rect.x0..r.rect.x1 {
                    m[(y * s.width + x) as usize] = true;
                }
            }
        }
        m
    }

    fn raster_spans(plan: &MaskPlan, s: FrameSize) -> Vec<bool> {
        let mut m = vec![false; s.pixels()];
        for sp in plan.spans() {
            for y in sp.y0..sp.y1 {
                for x in sp.x0..sp.x1 {
                    assert!(!m[(y * s.width + x) as usize], "spans overlap");
                    m[(y * s.width + x) as usize] = true;
                }
            }
        }
        m
    }

    /// Deterministic pseudo-random token sets.
    fn token_sets() -> Vec<Vec<u32>> {
        let mut state = 0x1234_5678_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut sets = vec![
            vec![],
            (0..265).collect(),
            vec![264],
            vec![0, 5, 30, 100, 101, 102],
        ];
        for _ in 0..40 {
            let n = next() % 120;
            sets.push((0..n).map(|_| (next() % 265) as u32).collect());
        }
        sets
    }

    #[test]
    fn deduplicated_union_equals_native_union() {
        let mut planner = MaskPlanner::new(TokenLayout::release());
        for s in [
            size(1280, 720),
            size(448, 448),
            size(37, 23),
            size(641, 359),
        ] {
            for tokens in token_sets() {
                let native = planner.plan(tokens.iter().copied(), s, MaskGeometry::Native);
                let dedup = planner.plan(tokens.iter().copied(), s, MaskGeometry::Deduplicated);
                assert_eq!(native.union_pixels(), dedup.union_pixels());
                assert!(dedup.rects().len() <= native.rects().len());
                let reference = raster(native.rects(), s);
                assert_eq!(raster_spans(&dedup, s), reference);
                assert_eq!(raster_spans(&native, s), reference);
                let count = reference.iter().filter(|v| **v).count() as u64;
                assert_eq!(dedup.union_pixels(), count, "gaze ratio is the union");
            }
        }
    }

    /// `clone_from` copies into the storage a plan already has (the
    /// viewer's copy of the plan it drew, every frame the mask changes).
    #[test]
    fn clone_from_reuses_the_storage() {
        let mut planner = MaskPlanner::new(TokenLayout::release());
        let s = size(1280, 720);
        let big = planner.plan(0..265, s, MaskGeometry::Native);
        let small = planner.plan([3, 40, 200], s, MaskGeometry::Native);
        // Grown once to hold either plan (the full vocabulary has more
        // rects, the three tokens more spans)...
        let mut kept = big.clone();
        kept.clone_from(&small);
        kept.clone_from(&big);
        let (rects, spans) = (kept.rects().as_ptr(), kept.spans().as_ptr());
        // ...it copies either into the same storage from then on.
        for plan in [&small, &big, &small] {
            kept.clone_from(plan);
            assert_eq!(&kept, plan);
            assert_eq!(
                (kept.rects().as_ptr(), kept.spans().as_ptr()),
                (rects, spans)
            );
        }
    }

    #[test]
    fn full_vocabulary_is_one_span_and_dedup_keeps_the_four_coarse_cells() {
        let mut planner = MaskPlanner::new(TokenLayout::release());
        let s = size(1920, 1080);
        let plan = planner.plan(0..265, s, MaskGeometry::Deduplicated);
        assert_eq!(plan.rects().len(), 4);
        assert_eq!(
            plan.spans(),
            &[Span {
                y0: 0,
                y1: 1080,
                x0: 0,
                x1: 1920
            }]
        );
        assert_eq!(plan.coverage(), 1.0);
        let empty = planner.plan([], s, MaskGeometry::Deduplicated);
        assert!(empty.is_empty() && empty.coverage() == 0.0);
        // Pads and out-of-range ids are ignored.
        let pads = planner.plan([265, 300], s, MaskGeometry::Native);
        assert!(pads.is_empty());
    }

    #[test]
    fn effective_moves_tokens_to_the_finest_cell_at_their_centre() {
        let mut planner = MaskPlanner::new(TokenLayout::release());
        let s = size(1400, 1400);
        // Coarse cell (0,0) of the 2x2 grid: centre (0.25, 0.25) -> fine cell (3, 3).
        let plan = planner.plan([0], s, MaskGeometry::Effective);
        assert_eq!(plan.rects().len(), 1);
        assert_eq!(plan.rects()[0].rect, cell_rect(s, 14, 3, 3));
        // 7x7 cell (2, 5): centre (5.5/7, 2.5/7) -> fine (5, 11).
        let id = 20 + 2 * 7 + 5;
        let plan = planner.plan([id], s, MaskGeometry::Effective);
        assert_eq!(plan.rects()[0].rect, cell_rect(s, 14, 5, 11));
        // The union shrinks: every effective pixel lies in the native union.
        for s in [s, size(1280, 720), size(37, 23)] {
            for tokens in token_sets() {
                let native = raster(
                    planner
                        .plan(tokens.iter().copied(), s, MaskGeometry::Native)
                        .rects(),
                    s,
                );
                let eff = planner.plan(tokens.iter().copied(), s, MaskGeometry::Effective);
                let eff_px = raster_spans(&eff, s);
                assert!(eff_px.iter().zip(&native).all(|(e, n)| !*e || *n), "{s}");
                assert!(eff.rects().len() <= tokens.len());
            }
        }
        assert!("bogus".parse::<MaskGeometry>().is_err());
    }
}
