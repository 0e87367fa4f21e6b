//! Mask planning: gaze tokens (or patch-diff cells, which use the same
//! vocabulary) -> pixel rectangles -> the union as disjoint row bands.
//!
//! One [`MaskPlan`] per frame feeds the mask visualization, the gaze ratio and
//! interframe composition, so all three always agree.

mod fixations;
mod geometry;
mod panel;
mod panel_device;
mod plan;

pub use fixations::fixation_sets;
pub use geometry::{Rect, Span, UnionScratch, cell_rect, union_spans};
pub use panel::{
    SCALE_COLOURS, panel_rect, panel_size, render_panel, render_panel_scaled, sample_scaled,
};
pub use panel_device::{MAX_DEVICE_RECTS, RECT_VALUES, device_rects, panel_shader};
pub use plan::{MaskGeometry, MaskPlan, MaskPlanner, MaskRect, PlanStats, max_spans};
