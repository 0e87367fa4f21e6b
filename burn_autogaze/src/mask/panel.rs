//! The mask visualization panel: the source frame, dimmed outside the plan,
//! blended with its scale's colour inside each planned rectangle (2x2 orange,
//! 4x4 green, 7x7 blue, 14x14 violet). Computed only when it is displayed.

use super::plan::MaskPlan;
use crate::error::{AutoGazeError, Result};
use crate::frame::{Frame, FrameSize};

/// Colour of each scale, coarse to fine (cycled for longer layouts).
pub const SCALE_COLOURS: [[u8; 3]; 4] =
    [[255, 140, 0], [40, 200, 60], [40, 110, 255], [160, 60, 230]];

/// Size of the panel of a `size` frame drawn at 1/`factor` (each panel
/// pixel samples the source pixel at `factor` times its position).
pub fn panel_size(size: FrameSize, factor: u32) -> FrameSize {
    let f = factor.max(1);
    FrameSize {
        width: size.width.div_ceil(f),
        height: size.height.div_ceil(f),
    }
}

/// Checks that `out` holds the 1/`factor` panel of `frame`, then calls
/// `pixel(out_px, src_px)` for every panel pixel and the source pixel it
/// samples (the one at `factor` times its position). Returns the panel size.
fn for_each_sample(
    frame: &Frame,
    factor: u32,
    out: &mut [u8],
    mut pixel: impl FnMut(&mut [u8], &[u8]),
) -> Result<FrameSize> {
    let f = factor.max(1) as usize;
    let panel = panel_size(frame.size(), factor);
    if out.len() != panel.rgba_len() {
        return Err(AutoGazeError::PixelLength {
            width: panel.width,
            height: panel.height,
            expected: panel.rgba_len(),
            actual: out.len(),
        });
    }
    let src = frame.rgba();
    let stride = frame.width() as usize * 4;
    for (y, row_out) in out.chunks_exact_mut(panel.width as usize * 4).enumerate() {
        let row = &src[y * f * stride..];
        for (x, o) in row_out.chunks_exact_mut(4).enumerate() {
            pixel(o, &row[x * f * 4..x * f * 4 + 4]);
        }
    }
    Ok(panel)
}

/// The panel pixels `[x0, y0, x1, y1)` of frame rectangle `rect` on the
/// 1/`factor` panel of size `panel`: those whose sampled source pixel
/// (`factor` times their position) lies in `rect`.
pub fn panel_rect(rect: &super::geometry::Rect, factor: u32, panel: FrameSize) -> [u32; 4] {
    let f = factor.max(1);
    [
        rect.x0.div_ceil(f).min(panel.width),
        rect.y0.div_ceil(f).min(panel.height),
        rect.x1.div_ceil(f).min(panel.width),
        rect.y1.div_ceil(f).min(panel.height),
    ]
}

/// Writes `frame` at 1/`factor` of its size ([`panel_size`]) into `out`,
/// each pixel the source pixel at `factor` times its position: the input
/// panel of a viewer that shows it smaller than the frame.
pub fn sample_scaled(frame: &Frame, factor: u32, out: &mut [u8]) -> Result<()> {
    for_each_sample(frame, factor, out, |o, s| o.copy_from_slice(s)).map(|_| ())
}

/// Writes the panel for `frame` and `plan` into `out` (RGBA8, frame size).
pub fn render_panel(frame: &Frame, plan: &MaskPlan, out: &mut [u8]) -> Result<()> {
    render_panel_scaled(frame, plan, 1, out)
}

/// Writes the panel at 1/`factor` of the frame's size ([`panel_size`]) into
/// `out`: a viewer showing it smaller than the frame uploads `factor^2`
/// times fewer bytes. A panel pixel is inside a planned rectangle exactly
/// when the source pixel it samples is.
pub fn render_panel_scaled(
    frame: &Frame,
    plan: &MaskPlan,
    factor: u32,
    out: &mut [u8],
) -> Result<()> {
    if let Some(size) = plan.size()
        && size != frame.size()
    {
        return Err(AutoGazeError::MismatchedFrameSize {
            context: "mask panel".into(),
            index: frame.seq as usize,
            expected_w: size.width,
            expected_h: size.height,
            actual_w: frame.width(),
            actual_h: frame.height(),
        });
    }
    // Outside the plan: the source at 40 % brightness.
    let panel = for_each_sample(frame, factor, out, |o, s| {
        o[0] = (s[0] as u16 * 2 / 5) as u8;
        o[1] = (s[1] as u16 * 2 / 5) as u8;
        o[2] = (s[2] as u16 * 2 / 5) as u8;
        o[3] = 255;
    })?;
    let f = factor.max(1) as usize;
    let src = frame.rgba();
    let stride = frame.width() as usize * 4;
    let pw = panel.width as usize;
    // Inside: 55 % source + 45 % scale colour, coarse rectangles first so
    // finer ones show on top.
    for r in plan.rects() {
        let colour = SCALE_COLOURS[r.scale as usize % SCALE_COLOURS.len()];
        let [x0, y0, x1, y1] = panel_rect(&r.rect, factor, panel).map(|v| v as usize);
        for y in y0..y1 {
            let row = &src[y * f * stride..];
            for x in x0..x1 {
                let s = &row[x * f * 4..x * f * 4 + 4];
                let o = &mut out[(y * pw + x) * 4..(y * pw + x) * 4 + 4];
                for c in 0..3 {
                    o[c] = ((s[c] as u16 * 55 + colour[c] as u16 * 45) / 100) as u8;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameSize;
    use crate::mask::{MaskGeometry, MaskPlanner, cell_rect};
    use crate::tokens::TokenLayout;
    use std::time::Duration;

    #[test]
    fn panel_colours_cells_by_scale_and_dims_the_rest() {
        let size = FrameSize::new(140, 70).unwrap();
        let frame = Frame::new(0, 140, 70, vec![100u8; size.rgba_len()], Duration::ZERO).unwrap();
        let mut planner = MaskPlanner::new(TokenLayout::release());
        // One 2x2 cell (orange) and one 14x14 cell elsewhere (violet).
        let fine = 69 + 13 * 14 + 13;
        let plan = planner.plan([0, fine], size, MaskGeometry::Deduplicated);
        let mut out = vec![0u8; size.rgba_len()];
        render_panel(&frame, &plan, &mut out).unwrap();
        let px =
            |x: u32, y: u32| &out[((y * 140 + x) * 4) as usize..((y * 140 + x) * 4 + 3) as usize];
        assert_eq!(px(10, 10), &[169, 118, 55]); // 0.55*100 + 0.45*orange
        let f = cell_rect(size, 14, 13, 13);
        assert_eq!(px(f.x0, f.y0), &[127, 82, 158]);
        assert_eq!(px(100, 10), &[40, 40, 40]);
        let mut short = vec![0u8; 3];
        assert!(render_panel(&frame, &plan, &mut short).is_err());
    }

    #[test]
    fn a_scaled_panel_samples_the_full_panel() {
        // An odd size and a textured frame: every scaled pixel equals the
        // full-size panel at the pixel it samples.
        let size = FrameSize::new(141, 71).unwrap();
        let px: Vec<u8> = (0..size.rgba_len()).map(|i| (i * 13 % 251) as u8).collect();
        let frame = Frame::new(0, 141, 71, px, Duration::ZERO).unwrap();
        let mut planner = MaskPlanner::new(TokenLayout::release());
        let plan = planner.plan([0, 5, 30, 100, 200, 264], size, MaskGeometry::Native);
        let mut full = vec![0u8; size.rgba_len()];
        render_panel(&frame, &plan, &mut full).unwrap();
        for factor in [2u32, 3] {
            let p = panel_size(size, factor);
            assert_eq!(
                (p.width, p.height),
                (141u32.div_ceil(factor), 71u32.div_ceil(factor))
            );
            let mut small = vec![0u8; p.rgba_len()];
            render_panel_scaled(&frame, &plan, factor, &mut small).unwrap();
            for y in 0..p.height {
                for x in 0..p.width {
                    let i = ((y * p.width + x) * 4) as usize;
                    let j = ((y * factor * 141 + x * factor) * 4) as usize;
                    assert_eq!(
                        &small[i..i + 4],
                        &full[j..j + 4],
                        "factor {factor} ({x}, {y})"
                    );
                }
            }
            assert!(render_panel_scaled(&frame, &plan, factor, &mut full).is_err());
            // The plain sampled frame picks the same source pixels.
            sample_scaled(&frame, factor, &mut small).unwrap();
            for y in 0..p.height {
                for x in 0..p.width {
                    let i = ((y * p.width + x) * 4) as usize;
                    let j = ((y * factor * 141 + x * factor) * 4) as usize;
                    assert_eq!(&small[i..i + 4], &frame.rgba()[j..j + 4]);
                }
            }
        }
    }
}
