//! PSNR measured on the device when the device alone composes the output:
//! the core's reduction ([`burn_autogaze::quality::SSE_WGSL`], the host
//! PSNR's sum) over the output texture against the frame's, recorded after
//! the frame's region copies, its 8 bytes read back asynchronously (mapped
//! a frame or more later, never waited for). One measurement in flight at
//! a time; frames composed meanwhile are not measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use bevy::render::renderer::RenderQueue;
use bevy::render::texture::GpuImage;

use crate::compute_pass::{ComputePass, buffer_binding, byte_view};

const PENDING: u8 = 0;
const MAPPED: u8 = 1;
const FAILED: u8 = 2;

/// The reduction's pipeline and buffers (render world).
pub(crate) struct PsnrPass {
    pass: ComputePass,
    total: wgpu::Buffer,
    staging: wgpu::Buffer,
    /// The readback in flight, and the pixels it measured.
    reading: Option<(Arc<AtomicU8>, u64)>,
}

impl PsnrPass {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let texture = crate::compute_pass::LOADED_TEXTURE;
        let pass = ComputePass::new(
            device,
            "autogaze-psnr",
            burn_autogaze::quality::SSE_WGSL,
            &[
                texture,
                texture,
                buffer_binding(wgpu::BufferBindingType::Storage { read_only: false }),
            ],
        );
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 8,
                usage,
                mapped_at_creation: false,
            })
        };
        Self {
            pass,
            total: buffer(
                "autogaze-psnr-total",
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            ),
            staging: buffer(
                "autogaze-psnr-readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            reading: None,
        }
    }

    /// The PSNR of the measurement whose readback finished, once (None:
    /// none finished, or it failed).
    pub(crate) fn finished(&mut self, device: &wgpu::Device) -> Option<f64> {
        let (state, pixels) = self.reading.as_ref()?;
        let _ = device.poll(wgpu::PollType::Poll);
        let got = match state.load(Ordering::Acquire) {
            PENDING => return None,
            MAPPED => {
                let bytes = self.staging.slice(..).get_mapped_range();
                let word = |i: usize| {
                    u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as u64
                };
                let sse = word(0) | (word(4) << 32);
                drop(bytes);
                self.staging.unmap();
                Some(burn_autogaze::quality::psnr_of_sse(sse, *pixels))
            }
            _ => None,
        };
        self.reading = None;
        got
    }

    /// Records the measurement of `output` against `frame` into `encoder`
    /// (false: one is still being read back, or a texture has no byte view).
    pub(crate) fn record(
        &mut self,
        device: &wgpu::Device,
        queue: &RenderQueue,
        encoder: &mut wgpu::CommandEncoder,
        output: &GpuImage,
        frame: &GpuImage,
    ) -> bool {
        if self.reading.is_some() {
            return false;
        }
        let (Some(a), Some(b)) = (byte_view(output), byte_view(frame)) else {
            return false;
        };
        queue.write_buffer(&self.total, 0, &[0; 8]);
        let size = output.texture_descriptor.size;
        self.pass.record(
            device,
            encoder,
            "autogaze-psnr",
            &[
                wgpu::BindingResource::TextureView(&a),
                wgpu::BindingResource::TextureView(&b),
                self.total.as_entire_binding(),
            ],
            [size.width.div_ceil(8), size.height.div_ceil(8)],
        );
        encoder.copy_buffer_to_buffer(&self.total, 0, &self.staging, 0, Some(8));
        let state = Arc::new(AtomicU8::new(PENDING));
        self.reading = Some((state, size.width as u64 * size.height as u64));
        true
    }

    /// After the submit that carries [`PsnrPass::record`]'s work: starts
    /// the readback (the mapping completes on a later poll).
    pub(crate) fn start_read(&self) {
        if let Some((state, _)) = &self.reading {
            let state = state.clone();
            self.staging
                .slice(..)
                .map_async(wgpu::MapMode::Read, move |r| {
                    state.store(if r.is_ok() { MAPPED } else { FAILED }, Ordering::Release);
                });
        }
    }
}
