//! Patch-diff: a weights-free mask source.
//!
//! Mean absolute RGB difference between the current frame and the last
//! *output* frame (what the viewer shows), pooled on a grid of the token
//! layout, thresholded. Differencing against the output rather than the
//! previous input means slow changes accumulate until they cross the
//! threshold, so the reconstruction can never drift from the input unseen;
//! input-to-input differencing would miss a change spread over many frames,
//! each below the threshold.
//!
//! Active cells are emitted as tokens of the same multi-scale vocabulary the
//! model uses: a coarser cell replaces its fine cells when every fine cell it
//! touches is active, so every downstream stage runs the same code for both
//! sources.

use crate::error::{AutoGazeError, Result};
use crate::frame::Frame;
use crate::tokens::{GazeTokens, TokenLayout};

/// Patch-diff settings (one default everywhere).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PatchDiffOptions {
    /// Cells per side; one of the layout's grids (2, 4, 7, 14).
    pub grid: u32,
    /// A cell is active when its mean absolute RGB difference (0..255)
    /// exceeds this.
    pub threshold: f32,
}

impl Default for PatchDiffOptions {
    fn default() -> Self {
        Self {
            grid: 14,
            threshold: 4.0,
        }
    }
}

/// The patch-diff source, with its pooling buffers.
#[derive(Debug, Clone)]
pub struct PatchDiff {
    layout: TokenLayout,
    options: PatchDiffOptions,
    scale: usize,
    sums: Vec<u64>,
    counts: Vec<u64>,
    active: Vec<bool>,
    covered: Vec<bool>,
}

impl PatchDiff {
    /// A patch-diff source on `layout`; `options.grid` must be one of its grids.
    pub fn new(layout: TokenLayout, options: PatchDiffOptions) -> Result<Self> {
        let scale = layout.scale_of_grid(options.grid).ok_or_else(|| {
            let grids: Vec<String> = layout.scales().iter().map(|s| s.grid.to_string()).collect();
            AutoGazeError::setting(
                "patch-diff grid",
                options.grid,
                format!("one of {}", grids.join(", ")),
            )
        })?;
        if !(options.threshold.is_finite() && options.threshold >= 0.0) {
            return Err(AutoGazeError::setting(
                "patch-diff threshold",
                options.threshold,
                "a finite value >= 0 (mean absolute difference, 0..255)",
            ));
        }
        let n = (options.grid * options.grid) as usize;
        Ok(Self {
            layout,
            options,
            scale,
            sums: vec![0; n],
            counts: vec![0; n],
            active: vec![false; n],
            covered: vec![false; n],
        })
    }

    /// The settings.
    pub fn options(&self) -> PatchDiffOptions {
        self.options
    }

    /// Pooled mean absolute difference of the last call, row-major per cell.
    pub fn cell_means(&self) -> impl Iterator<Item = f32> + '_ {
        self.sums
            .iter()
            .zip(&self.counts)
            .map(|(s, c)| if *c == 0 { 0.0 } else { *s as f32 / *c as f32 })
    }

    /// Tokens for `frame` against `reference` (the last output, RGBA8 of the
    /// same size). With no usable reference every cell is active.
    pub fn tokens_into(&mut self, frame: &Frame, reference: Option<&[u8]>, out: &mut GazeTokens) {
        out.clear();
        let g = self.options.grid as usize;
        match reference {
            Some(r) if r.len() == frame.rgba().len() => {
                self.pool(frame, r);
                for i in 0..g * g {
                    let mean = if self.counts[i] == 0 {
                        0.0
                    } else {
                        self.sums[i] as f32 / self.counts[i] as f32
                    };
                    self.active[i] = mean > self.options.threshold;
                }
            }
            _ => self.active.fill(true),
        }
        self.emit(out);
    }

    /// Sum of |a - b| over RGB per cell; each pixel belongs to exactly one
    /// cell (`floor(x * g / W)`).
    fn pool(&mut self, frame: &Frame, reference: &[u8]) {
        let g = self.options.grid as usize;
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        self.sums.fill(0);
        self.counts.fill(0);
        let current = frame.rgba();
        for cy in 0..g {
            let (y0, y1) = (cy * h / g, (cy + 1) * h / g);
            for cx in 0..g {
                let (x0, x1) = (cx * w / g, (cx + 1) * w / g);
                let mut sum = 0u64;
                for y in y0..y1 {
                    let a = &current[(y * w + x0) * 4..(y * w + x1) * 4];
                    let b = &reference[(y * w + x0) * 4..(y * w + x1) * 4];
                    sum += sad_rgb(a, b);
                }
                self.sums[cy * g + cx] = sum;
                self.counts[cy * g + cx] = ((y1 - y0) * (x1 - x0) * 3) as u64;
            }
        }
    }

    /// Active cells -> tokens, coarse cells first where all their fine cells
    /// are active.
    fn emit(&mut self, out: &mut GazeTokens) {
        let big = self.options.grid;
        self.covered.fill(false);
        for s in &self.layout.scales()[..self.scale] {
            let g = s.grid;
            for r in 0..g {
                for c in 0..g {
                    // Fine cells (R, C) intersecting coarse cell (r, c).
                    let rows = (r * big / g)..((r + 1) * big).div_ceil(g);
                    let cols = (c * big / g)..((c + 1) * big).div_ceil(g);
                    let all = rows
                        .clone()
                        .all(|fr| cols.clone().all(|fc| self.active[(fr * big + fc) as usize]));
                    // Redundant when every fine cell it touches already lies
                    // inside an emitted coarser cell.
                    let redundant = rows.clone().all(|fr| {
                        cols.clone()
                            .all(|fc| self.covered[(fr * big + fc) as usize])
                    });
                    if !all || redundant {
                        continue;
                    }
                    out.push(s.offset + r * g + c);
                    // Mark fine cells lying wholly inside as covered.
                    for fr in rows
                        .clone()
                        .filter(|fr| fr * g >= r * big && (fr + 1) * g <= (r + 1) * big)
                    {
                        for fc in cols
                            .clone()
                            .filter(|fc| fc * g >= c * big && (fc + 1) * g <= (c + 1) * big)
                        {
                            self.covered[(fr * big + fc) as usize] = true;
                        }
                    }
                }
            }
        }
        let offset = self.layout.scales()[self.scale].offset;
        for i in 0..big * big {
            if self.active[i as usize] && !self.covered[i as usize] {
                out.push(offset + i);
            }
        }
    }
}

/// Sum of absolute differences over the R, G and B bytes of two RGBA8 rows
/// (alpha skipped). Works on 64-byte blocks with a constant channel mask so
/// the compiler can vectorise it; the tail goes pixel by pixel.
fn sad_rgb(a: &[u8], b: &[u8]) -> u64 {
    const BLOCK: usize = 64;
    let mut total = 0u64;
    let blocks = a.len() / BLOCK * BLOCK;
    for (x, y) in a[..blocks]
        .chunks_exact(BLOCK)
        .zip(b[..blocks].chunks_exact(BLOCK))
    {
        let mut acc = 0u32;
        for i in 0..BLOCK {
            let d = x[i].abs_diff(y[i]) as u32;
            acc += if i % 4 == 3 { 0 } else { d };
        }
        total += acc as u64;
    }
    for (pa, pb) in a[blocks..].chunks_exact(4).zip(b[blocks..].chunks_exact(4)) {
        total += (pa[0].abs_diff(pb[0]) as u32
            + pa[1].abs_diff(pb[1]) as u32
            + pa[2].abs_diff(pb[2]) as u32) as u64;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameSize;
    use crate::mask::{MaskGeometry, MaskPlanner, cell_rect};
    use std::time::Duration;

    fn frame(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> Frame {
        let mut px = Vec::with_capacity((w * h * 4) as usize);
        for y in 0..h {
            for x in 0..w {
                px.extend_from_slice(&[f(x, y), 0, 0, 255]);
            }
        }
        Frame::new(0, w, h, px, Duration::ZERO).unwrap()
    }

    #[test]
    fn no_reference_means_everything_as_four_coarse_tokens() {
        let mut pd = PatchDiff::new(TokenLayout::release(), PatchDiffOptions::default()).unwrap();
        let mut tokens = GazeTokens::default();
        pd.tokens_into(&frame(64, 48, |_, _| 0), None, &mut tokens);
        assert_eq!(tokens.ids, vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_local_change_activates_only_its_cells() {
        let (w, h) = (140, 140);
        let base = frame(w, h, |_, _| 100);
        // Change exactly fine cell (row 3, col 5): pixels [50,60) x [30,40).
        let moved = frame(w, h, |x, y| {
            if (50..60).contains(&x) && (30..40).contains(&y) {
                200
            } else {
                100
            }
        });
        let mut pd = PatchDiff::new(TokenLayout::release(), PatchDiffOptions::default()).unwrap();
        let mut tokens = GazeTokens::default();
        pd.tokens_into(&moved, Some(base.rgba()), &mut tokens);
        assert_eq!(tokens.ids, vec![69 + 3 * 14 + 5]);
        pd.tokens_into(&base, Some(base.rgba()), &mut tokens);
        assert!(tokens.ids.is_empty());
    }

    #[test]
    fn emitted_union_equals_the_active_cells_union() {
        let s = FrameSize::new(1280, 720).unwrap();
        let (w, h) = (1280u32, 720u32);
        let base = frame(w, h, |_, _| 0);
        // Left half changes: 7 of 14 columns.
        let changed = frame(w, h, |x, _| if x < 640 { 90 } else { 0 });
        let mut pd = PatchDiff::new(TokenLayout::release(), PatchDiffOptions::default()).unwrap();
        let mut tokens = GazeTokens::default();
        pd.tokens_into(&changed, Some(base.rgba()), &mut tokens);
        // Coarse cells (2x2: the two left ones) replace many fine tokens.
        assert!(tokens.ids.contains(&0) && tokens.ids.contains(&2));
        assert!(tokens.ids.len() < 98);
        let mut planner = MaskPlanner::new(TokenLayout::release());
        let plan = planner.plan(tokens.ids.iter().copied(), s, MaskGeometry::Deduplicated);
        let fine: Vec<u32> = (0..14)
            .flat_map(|r| (0..7).map(move |c| 69 + r * 14 + c))
            .collect();
        let reference = planner.plan(fine, s, MaskGeometry::Native);
        assert_eq!(plan.union_pixels(), reference.union_pixels());
        assert_eq!(plan.union_pixels(), cell_rect(s, 14, 0, 6).x1 as u64 * 720);
    }

    #[test]
    fn block_sad_matches_the_pixel_definition_and_skips_alpha() {
        for len in [0usize, 4, 60, 64, 68, 128, 1000] {
            let a: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let b: Vec<u8> = (0..len).map(|i| (i * 101 % 241) as u8).collect();
            let expect: u64 = a
                .chunks_exact(4)
                .zip(b.chunks_exact(4))
                .map(|(p, q)| (0..3).map(|c| p[c].abs_diff(q[c]) as u64).sum::<u64>())
                .sum();
            assert_eq!(sad_rgb(&a, &b), expect, "len {len}");
        }
    }

    #[test]
    fn bad_options_are_rejected() {
        let err = PatchDiff::new(
            TokenLayout::release(),
            PatchDiffOptions {
                grid: 8,
                threshold: 1.0,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("2, 4, 7, 14"), "{err}");
        assert!(
            PatchDiff::new(
                TokenLayout::release(),
                PatchDiffOptions {
                    grid: 14,
                    threshold: f32::NAN
                }
            )
            .is_err()
        );
    }
}
