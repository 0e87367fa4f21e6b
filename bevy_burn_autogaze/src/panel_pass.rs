//! The mask panel drawn on the device (GPU transfer): the core's panel pass
//! ([`burn_autogaze::mask::panel_shader`], the host panel's computation) run
//! in the render world on the frame's texture, which is on the device
//! already, into the storage-writable mask image. Only the plan's packed
//! rectangles go up (a few KiB), never the panel's pixels.

use bevy::render::render_resource::TextureFormat;
use bevy::render::renderer::{RenderDevice, RenderQueue};
use bevy::render::texture::GpuImage;

use crate::compute_pass::{ComputePass, RGBA8_STORAGE, buffer_binding, filled_buffer};

/// The compute pipeline (render world), built on first use.
pub(crate) struct PanelPipeline(ComputePass);

impl PanelPipeline {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        Self(ComputePass::new(
            device,
            "autogaze-mask-panel",
            &burn_autogaze::mask::panel_shader(),
            &[
                wgpu::BindingType::Texture {
                    sample_type: wgpu::TextureSampleType::Float { filterable: false },
                    view_dimension: wgpu::TextureViewDimension::D2,
                    multisampled: false,
                },
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
pub(crate) fn draw_panel(
    device: &RenderDevice,
    queue: &RenderQueue,
    pipeline: &PanelPipeline,
    src: &GpuImage,
    dst: &GpuImage,
    factor: u32,
    rects: &[u32],
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
    if !src
        .texture_descriptor
        .view_formats
        .contains(&TextureFormat::Rgba8Unorm)
        && src.texture_descriptor.format != TextureFormat::Rgba8Unorm
    {
        return Err("the frame's texture has no rgba8unorm view".into());
    }
    let (w, h) = (d.size.width, d.size.height);
    let count = (rects.len() / burn_autogaze::mask::RECT_VALUES) as u32;
    let device = device.wgpu_device();
    let rect_bytes: Vec<u8> = if rects.is_empty() {
        vec![0; 4]
    } else {
        rects.iter().flat_map(|v| v.to_le_bytes()).collect()
    };
    let params: Vec<u8> = [w, h, factor.max(1), count]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let storage = filled_buffer(
        device,
        queue,
        "autogaze-mask-panel-rects",
        wgpu::BufferUsages::STORAGE,
        &rect_bytes,
    );
    let uniform = filled_buffer(
        device,
        queue,
        "autogaze-mask-panel-params",
        wgpu::BufferUsages::UNIFORM,
        &params,
    );
    let src_view = src.texture.create_view(&wgpu::TextureViewDescriptor {
        label: Some("autogaze-mask-panel-frame"),
        format: Some(TextureFormat::Rgba8Unorm),
        usage: Some(wgpu::TextureUsages::TEXTURE_BINDING),
        ..Default::default()
    });
    let dst_view = dst.texture.create_view(&wgpu::TextureViewDescriptor {
        label: Some("autogaze-mask-panel-target"),
        format: Some(TextureFormat::Rgba8Unorm),
        usage: Some(wgpu::TextureUsages::STORAGE_BINDING),
        ..Default::default()
    });
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("autogaze-mask-panel"),
        layout: &pipeline.0.layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::TextureView(&src_view),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: storage.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: uniform.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: wgpu::BindingResource::TextureView(&dst_view),
            },
        ],
    });
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("autogaze-mask-panel"),
    });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("autogaze-mask-panel"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline.0.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(w.div_ceil(8), h.div_ceil(8), 1);
    }
    queue.submit([encoder.finish()]);
    Ok((rect_bytes.len() + params.len()) as u64)
}
