//! The mask panel as a device pass: the same computation as
//! [`render_panel_scaled`](super::render_panel_scaled) (dim outside the
//! plan, each planned rectangle blended with its scale's colour, later
//! rectangles over earlier ones, on the 8-bit values), as a WGSL compute
//! shader reading the frame where it already lies on the device. The core
//! packs the rectangles and writes the shader; a renderer (the Bevy plugin)
//! runs it and checks it equal to the host panel.
//!
//! Each 8 x 8 workgroup first marks, in a bitmask in workgroup memory, the
//! rectangles that touch its tile, then each pixel visits only those, in
//! the plan's order: exact, and a pixel's work bounded by the few
//! rectangles over it rather than the whole plan.

use super::panel::{SCALE_COLOURS, panel_rect};
use super::plan::MaskPlan;
use crate::frame::FrameSize;

/// Rectangles the pass takes at most (its bitmask's bits); a plan with more
/// (many AnyRes tiles) is drawn on the host.
pub const MAX_DEVICE_RECTS: usize = 1024;

/// Values a rectangle takes in the packed list: `x0, y0, x1, y1` in panel
/// pixels (exclusive ends) and its colour's index.
pub const RECT_VALUES: usize = 5;

/// Packs `plan`'s rectangles for the pass on the 1/`factor` panel of size
/// `panel`, in the plan's order, into `out`; false (and `out` empty) when
/// there are more than [`MAX_DEVICE_RECTS`].
pub fn device_rects(plan: &MaskPlan, factor: u32, panel: FrameSize, out: &mut Vec<u32>) -> bool {
    out.clear();
    if plan.rects().len() > MAX_DEVICE_RECTS {
        return false;
    }
    for r in plan.rects() {
        out.extend(panel_rect(&r.rect, factor, panel));
        out.push(r.scale as u32 % SCALE_COLOURS.len() as u32);
    }
    true
}

/// The pass's WGSL: `src` the frame (an `rgba8unorm` view: its bytes),
/// `rects` the packed rectangles, `params` the panel's width and height,
/// the factor and the rectangle count; `dst` the panel (storage,
/// `rgba8unorm`). Workgroups of 8 x 8 panel pixels.
pub fn panel_shader() -> String {
    let colours: Vec<String> = SCALE_COLOURS
        .iter()
        .map(|[r, g, b]| format!("vec3<u32>({r}u, {g}u, {b}u)"))
        .collect();
    format!(
        r#"
struct Params {{
    width: u32,
    height: u32,
    factor: u32,
    count: u32,
}};

@group(0) @binding(0) var src: texture_2d<f32>;
@group(0) @binding(1) var<storage, read> rects: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;
@group(0) @binding(3) var dst: texture_storage_2d<rgba8unorm, write>;

const COLOURS = array<vec3<u32>, {n}>({colours});
const WORDS: u32 = {words}u;

var<workgroup> hits: array<atomic<u32>, {words}>;

@compute @workgroup_size(8, 8, 1)
fn main(
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wg: vec3<u32>,
) {{
    for (var w = li; w < WORDS; w = w + 64u) {{
        atomicStore(&hits[w], 0u);
    }}
    workgroupBarrier();
    let t0 = wg.xy * 8u;
    let t1 = t0 + vec2<u32>(8u, 8u);
    for (var i = li; i < params.count; i = i + 64u) {{
        let a = i * {stride}u;
        if (rects[a] < t1.x && rects[a + 2u] > t0.x && rects[a + 1u] < t1.y && rects[a + 3u] > t0.y) {{
            atomicOr(&hits[i / 32u], 1u << (i % 32u));
        }}
    }}
    workgroupBarrier();
    if (id.x >= params.width || id.y >= params.height) {{
        return;
    }}
    let s = vec3<u32>(round(textureLoad(src, vec2<i32>(id.xy * params.factor), 0).rgb * 255.0));
    var o = s * 2u / 5u;
    let words = (params.count + 31u) / 32u;
    for (var w = 0u; w < words; w = w + 1u) {{
        var m = atomicLoad(&hits[w]);
        while (m != 0u) {{
            let i = w * 32u + firstTrailingBit(m);
            m = m & (m - 1u);
            let a = i * {stride}u;
            if (id.x >= rects[a] && id.x < rects[a + 2u] && id.y >= rects[a + 1u] && id.y < rects[a + 3u]) {{
                o = (s * 55u + COLOURS[rects[a + 4u]] * 45u) / 100u;
            }}
        }}
    }}
    textureStore(dst, vec2<i32>(id.xy), vec4<f32>(vec3<f32>(o) / 255.0, 1.0));
}}
"#,
        n = SCALE_COLOURS.len(),
        colours = colours.join(", "),
        words = MAX_DEVICE_RECTS / 32,
        stride = RECT_VALUES,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{MaskGeometry, MaskPlanner};
    use crate::tokens::TokenLayout;

    #[test]
    fn rectangles_pack_in_plan_order_in_panel_pixels() {
        let size = FrameSize::new(100, 60).unwrap();
        let mut planner = MaskPlanner::new(TokenLayout::release());
        let plan = planner.plan([0u32, 5, 264], size, MaskGeometry::Native);
        let panel = super::super::panel_size(size, 3);
        let mut out = Vec::new();
        assert!(device_rects(&plan, 3, panel, &mut out));
        assert_eq!(out.len(), plan.rects().len() * RECT_VALUES);
        for (r, packed) in plan.rects().iter().zip(out.chunks_exact(RECT_VALUES)) {
            assert_eq!(packed[..4], panel_rect(&r.rect, 3, panel));
            assert_eq!(packed[4], r.scale as u32 % 4);
            assert!(packed[2] <= panel.width && packed[3] <= panel.height);
        }
        let shader = panel_shader();
        assert!(shader.contains("array<atomic<u32>, 32>"), "{shader}");
        assert!(shader.contains("vec3<u32>(255u, 140u, 0u)"));
    }
}
