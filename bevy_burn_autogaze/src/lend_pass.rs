//! The display's frame lent to the model: one upload of a frame serves the
//! display and the model's device preprocessing. The model asks for its
//! frame ([`burn_autogaze::preprocess::FrameShare`]); the render world,
//! once the frame is in the display's full-size texture, copies it from
//! that texture into the buffer the model made (a texture-to-buffer copy,
//! or the core's lend pass, [`burn_autogaze::preprocess::LEND_WGSL`], where
//! the copy's row alignment does not hold), submits, and reports the ask
//! filled.
//! Asks for older frames are refused (the model uploads those itself).

use std::num::NonZeroU64;
use std::sync::Arc;

use bevy::asset::AssetId;
use bevy::image::Image;
use bevy::render::render_asset::RenderAssets;
use bevy::render::renderer::{RenderDevice, RenderQueue};
use bevy::render::texture::GpuImage;
use burn_autogaze::Frame;
use burn_autogaze::preprocess::{FrameAsk, FrameShare, LEND_WGSL};

use crate::compute_pass::{ComputePass, LOADED_TEXTURE, buffer_binding, byte_view, uniform_u32s};
use crate::gpu_timing::{FRAME_LEND, GpuTimer, timed};

/// The compute pipeline (render world), built on first use.
pub(crate) struct LendPass(ComputePass);

/// The render world's lending: the pass, and the frame the display's
/// texture holds since the last lend (asks for it that came while it was
/// rendering are served before the next frame's writes replace it).
#[derive(Default)]
pub(crate) struct Lender {
    pass: Option<LendPass>,
    held: Option<(AssetId<Image>, Frame, Arc<FrameShare>)>,
}

impl Lender {
    /// Serves the asks for the frame `image` holds (`frame`, written there
    /// by this frame's uploads) and remembers it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn lend(
        &mut self,
        device: &RenderDevice,
        queue: &RenderQueue,
        image: AssetId<Image>,
        src: &GpuImage,
        frame: &Frame,
        share: &Arc<FrameShare>,
        timer: Option<&mut GpuTimer>,
    ) -> Served {
        let pass = self
            .pass
            .get_or_insert_with(|| LendPass::new(device.wgpu_device()));
        let served = pass.serve(device, queue, src, frame, share, timer);
        self.held = Some((image, frame.clone(), Arc::clone(share)));
        served
    }

    /// Before this frame's writes: serves the asks that came, while the
    /// last frame rendered, for the frame the texture still holds (the
    /// model took it as the newest frame after its lend had run).
    pub(crate) fn lend_held(
        &mut self,
        device: &RenderDevice,
        queue: &RenderQueue,
        images: &RenderAssets<GpuImage>,
        timer: Option<&mut GpuTimer>,
    ) -> Served {
        let (Some((image, frame, share)), Some(pass)) = (&self.held, &self.pass) else {
            return Served::default();
        };
        match images.get(*image) {
            Some(src) if share.asked() => pass.serve(device, queue, src, frame, share, timer),
            _ => Served::default(),
        }
    }
}

/// What one serve did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Served {
    /// Asks filled.
    pub(crate) served: u64,
    /// Bytes written from the host (the passes' parameters).
    pub(crate) bytes: u64,
}

impl LendPass {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        Self(ComputePass::new(
            device,
            "autogaze-frame-lend",
            LEND_WGSL,
            &[
                LOADED_TEXTURE,
                buffer_binding(wgpu::BufferBindingType::Storage { read_only: false }),
                buffer_binding(wgpu::BufferBindingType::Uniform),
            ],
        ))
    }

    /// Serves `share`'s asks for `frame` from `src` (the texture holding
    /// it) and submits; asks for older frames are refused. Every ask taken
    /// is finished, filled or not.
    pub(crate) fn serve(
        &self,
        device: &RenderDevice,
        queue: &RenderQueue,
        src: &GpuImage,
        frame: &Frame,
        share: &FrameShare,
        timer: Option<&mut GpuTimer>,
    ) -> Served {
        let asks = share.take(frame);
        if asks.is_empty() {
            return Served::default();
        }
        let device = device.wgpu_device();
        let Some(view) = byte_view(src) else {
            for ask in asks {
                share.finish(ask, false);
            }
            return Served::default();
        };
        let align = device.limits().min_storage_buffer_offset_alignment as u64;
        let extent = src.texture_descriptor.size;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("autogaze-frame-lend"),
        });
        let mut out = Served::default();
        let mut filled = Vec::with_capacity(asks.len());
        let mut refused = Vec::new();
        timed(timer, &mut encoder, FRAME_LEND, |encoder| {
            for ask in asks {
                let fits = (ask.size().width, ask.size().height) == (extent.width, extent.height);
                let recorded = fits
                    .then(|| self.record(device, queue, encoder, src, &view, &ask, align))
                    .flatten();
                if let Some(bytes) = recorded {
                    out.bytes += bytes;
                    filled.push(ask);
                } else {
                    refused.push(ask);
                }
            }
        });
        // Submitted before the asks are reported: the model's kernels reach
        // the queue after this pass.
        queue.submit([encoder.finish()]);
        out.served = filled.len() as u64;
        for ask in filled {
            share.finish(ask, true);
        }
        for ask in refused {
            share.finish(ask, false);
        }
        out
    }

    /// Records what fills `ask`'s buffer: a texture-to-buffer copy where
    /// its rows meet the copy's alignment (a width a multiple of 64: 720p,
    /// 1080p), else the lend pass. The bytes it wrote from the host, or
    /// None when the buffer is not on this device or too small.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        device: &wgpu::Device,
        queue: &RenderQueue,
        encoder: &mut wgpu::CommandEncoder,
        src: &GpuImage,
        view: &wgpu::TextureView,
        ask: &FrameAsk,
        align: u64,
    ) -> Option<u64> {
        let size = ask.size();
        let (w, h) = (size.width, size.height);
        let pixels = w as u64 * h as u64;
        ask.with_target(|r| {
            if r.size < 4 * pixels || r.offset % 4 != 0 {
                return None;
            }
            if (4 * w) % wgpu::COPY_BYTES_PER_ROW_ALIGNMENT == 0 {
                // The texture's bytes as they are: the frame's own.
                encoder.copy_texture_to_buffer(
                    wgpu::TexelCopyTextureInfo {
                        texture: &src.texture,
                        mip_level: 0,
                        origin: wgpu::Origin3d::ZERO,
                        aspect: wgpu::TextureAspect::All,
                    },
                    wgpu::TexelCopyBufferInfo {
                        buffer: &r.buffer,
                        layout: wgpu::TexelCopyBufferLayout {
                            offset: r.offset,
                            bytes_per_row: Some(4 * w),
                            rows_per_image: Some(h),
                        },
                    },
                    wgpu::Extent3d {
                        width: w,
                        height: h,
                        depth_or_array_layers: 1,
                    },
                );
                return Some(0);
            }
            // Bound from an aligned offset; the first pixel's element goes
            // to the shader.
            let bind_offset = r.offset / align * align;
            let first = ((r.offset - bind_offset) / 4) as u32;
            let bytes = r.offset - bind_offset + 4 * pixels;
            let uniform = uniform_u32s(
                device,
                queue,
                "autogaze-frame-lend-params",
                &[w, h, first, 0],
            );
            self.0.record(
                device,
                encoder,
                "autogaze-frame-lend",
                &[
                    wgpu::BindingResource::TextureView(view),
                    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &r.buffer,
                        offset: bind_offset,
                        size: NonZeroU64::new(bytes),
                    }),
                    uniform.as_entire_binding(),
                ],
                [w.div_ceil(8), h.div_ceil(8)],
            );
            Some(PARAM_BYTES)
        })
        .ok()
        .flatten()
    }
}

/// Bytes of one pass's parameters.
const PARAM_BYTES: u64 = 16;
