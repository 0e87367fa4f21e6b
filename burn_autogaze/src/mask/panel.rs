//! The mask visualization panel: the source frame, dimmed outside the plan,
//! blended with its scale's colour inside each planned rectangle (2x2 orange,
//! 4x4 green, 7x7 blue, 14x14 violet). Computed only when it is displayed.

use super::plan::MaskPlan;
use crate::error::{AutoGazeError, Result};
use crate::frame::Frame;

/// Colour of each scale, coarse to fine (cycled for longer layouts).
pub const SCALE_COLOURS: [[u8; 3]; 4] =
    [[255, 140, 0], [40, 200, 60], [40, 110, 255], [160, 60, 230]];

/// Writes the panel for `frame` and `plan` into `out` (RGBA8, frame size).
pub fn render_panel(frame: &Frame, plan: &MaskPlan, out: &mut [u8]) -> Result<()> {
    if out.len() != frame.rgba().len() {
        return Err(AutoGazeError::PixelLength {
            width: frame.width(),
            height: frame.height(),
            expected: frame.rgba().len(),
            actual: out.len(),
        });
    }
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
    for (o, s) in out.chunks_exact_mut(4).zip(frame.rgba().chunks_exact(4)) {
        o[0] = (s[0] as u16 * 2 / 5) as u8;
        o[1] = (s[1] as u16 * 2 / 5) as u8;
        o[2] = (s[2] as u16 * 2 / 5) as u8;
        o[3] = 255;
    }
    // Inside: 55 % source + 45 % scale colour, coarse rectangles first so
    // finer ones show on top.
    let stride = frame.width() as usize * 4;
    let src = frame.rgba();
    for r in plan.rects() {
        let colour = SCALE_COLOURS[r.scale as usize % SCALE_COLOURS.len()];
        for y in r.rect.y0 as usize..r.rect.y1 as usize {
            let row = y * stride;
            let range = row + r.rect.x0 as usize * 4..row + r.rect.x1 as usize * 4;
            for (o, s) in out[range.clone()]
                .chunks_exact_mut(4)
                .zip(src[range].chunks_exact(4))
            {
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
}
