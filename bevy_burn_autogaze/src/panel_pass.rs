//! The mask panel drawn on the device (GPU transfer): the core's panel pass
//! ([`burn_autogaze::mask::panel_shader`], the host panel's computation) run
//! in the render world on the frame's texture, which is on the device
//! already, into the storage-writable mask image. Only the plan's packed
//! rectangles go up (a few KiB), never the panel's pixels.

use bevy::render::render_resource::TextureFormat;
use bevy::render::renderer::{RenderDevice, RenderQueue};
use bevy::render::texture::GpuImage;

use crate::compute_pass::{
    ComputePass, LOADED_TEXTURE, RGBA8_STORAGE, buffer_binding, byte_view, filled_buffer,
    uniform_u32s,
};

/// The compute pipeline (render world), built on first use.
pub(crate) struct PanelPipeline(ComputePass);

impl PanelPipeline {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        Self(ComputePass::new(
            device,
            "autogaze-mask-panel",
            &burn_autogaze::mask::panel_shader(),
            &[
                LOADED_TEXTURE,
                buffer_binding(wgpu::BufferBindingType::Storage { read_only: true }),
                buffer_binding(wgpu::BufferBindingType::Uniform),
                RGBA8_STORAGE,
            ],
        ))
    }
}

/// Draws the panel of `rects` (packed by `burn_autogaze::mask::device_rects`)
/// at 1/`factor` from `src` (the full-size frame) into `dst`, and submits
/// it; returns the bytes written from the host (the rectangles and the
/// parameters).
#[allow(clippy::too_many_arguments)]
pub(crate) fn draw_panel(
    device: &RenderDevice,
    queue: &RenderQueue,
    pipeline: &PanelPipeline,
    src: &GpuImage,
    dst: &GpuImage,
    factor: u32,
    rects: &[u32],
    timer: Option<&mut crate::gpu_timing::GpuTimer>,
) -> Result<u64, String> {
    let d = &dst.texture_descriptor;
    if d.format != TextureFormat::Rgba8Unorm
        || !d.usage.contains(wgpu::TextureUsages::STORAGE_BINDING)
    {
        return Err(format!(
            "mask panel image is {:?} with {:?}",
            d.format, d.usage
        ));
    }
    let src_view = byte_view(src).ok_or("the frame's texture has no rgba8unorm view")?;
    let (w, h) = (d.size.width, d.size.height);
    let count = (rects.len() / burn_autogaze::mask::RECT_VALUES) as u32;
    let device = device.wgpu_device();
    let rect_bytes: Vec<u8> = if rects.is_empty() {
        vec![0; 4]
    } else {
        rects.iter().flat_map(|v| v.to_le_bytes()).collect()
    };
    let params = [w, h, factor.max(1), count];
    let storage = filled_buffer(
        device,
        queue,
        "autogaze-mask-panel-rects",
        wgpu::BufferUsages::STORAGE,
        &rect_bytes,
    );
    let uniform = uniform_u32s(device, queue, "autogaze-mask-panel-params", &params);
    let dst_view = dst.texture.create_view(&wgpu::TextureViewDescriptor {
        label: Some("autogaze-mask-panel-target"),
        format: Some(TextureFormat::Rgba8Unorm),
        usage: Some(wgpu::TextureUsages::STORAGE_BINDING),
        ..Default::default()
    });
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("autogaze-mask-panel"),
    });
    crate::gpu_timing::timed(timer, &mut encoder, crate::gpu_timing::MASK_PANEL, |e| {
        pipeline.0.record(
            device,
            e,
            "autogaze-mask-panel",
            &[
                wgpu::BindingResource::TextureView(&src_view),
                storage.as_entire_binding(),
                uniform.as_entire_binding(),
                wgpu::BindingResource::TextureView(&dst_view),
            ],
            [w.div_ceil(8), h.div_ceil(8)],
        )
    });
    queue.submit([encoder.finish()]);
    Ok((rect_bytes.len() + 4 * params.len()) as u64)
}
