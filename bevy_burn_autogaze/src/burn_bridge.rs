//! Burn on Bevy's own wgpu device, and the pass that turns a Burn tensor into
//! a Bevy texture without a host round trip.
//!
//! [`BurnDevice`] is Burn's handle on the device and queue Bevy renders with
//! (`init_device` from the render world's adapter, device and queue; no
//! second device, so no cross-device copies). A [`TensorCopy`] queued with
//! [`TensorCopies::push`] names a `[C, H, W]` (planar) or `[H, W, C]` f32
//! tensor on that device, a per-channel affine map to [0, 1] and a target
//! image made by [`tensor_image`]. In the render world, before the camera
//! passes of the frame, one compute dispatch reads the tensor's own buffer
//! and packs it into the RGBA8 texture (4 bytes a texel, not 16). The texture
//! is `Rgba8Unorm` (storage-writable) and is sampled through an
//! `Rgba8UnormSrgb` view, so the bytes written are the display bytes.
//!
//! Ordering: Burn's pending work is flushed onto the shared queue, then the
//! copy is submitted in `PrepareResources`, before the render graph records
//! and submits the cameras: the copy lands in the same frame.

use std::sync::{Arc, Mutex};

use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat, TextureUsages};
use bevy::render::renderer::{
    RenderAdapter, RenderAdapterInfo, RenderDevice, RenderInstance, RenderQueue,
};
use bevy::render::texture::GpuImage;
use burn::backend::wgpu::{RuntimeOptions, WgpuDevice, WgpuSetup, init_device};
use burn::tensor::Tensor;
use burn_autogaze::FrameSize;

/// The Burn backend that runs on Bevy's device (wgpu, f32).
pub type BurnBackend = burn::backend::Wgpu;

/// Burn's handle on Bevy's render device (in the main and render worlds).
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct BurnDevice(pub WgpuDevice);

impl BurnDevice {
    /// Registers Bevy's adapter, device and queue with Burn. Call from a
    /// plugin's `finish` (the renderer is built by then); None without one,
    /// or when the adapter has no compute shaders (WebGL2): Burn's kernels
    /// and the copy pass are compute work.
    pub fn from_render_world(world: &World) -> Option<Self> {
        let compute = world
            .get_resource::<RenderAdapter>()?
            .get_downlevel_capabilities()
            .flags
            .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS);
        if !compute {
            return None;
        }
        let setup = WgpuSetup {
            instance: (**world.get_resource::<RenderInstance>()?.0).clone(),
            adapter: (**world.get_resource::<RenderAdapter>()?.0).clone(),
            device: world.get_resource::<RenderDevice>()?.wgpu_device().clone(),
            queue: (**world.get_resource::<RenderQueue>()?.0).clone(),
            backend: world.get_resource::<RenderAdapterInfo>()?.backend,
        };
        Some(Self(init_device(setup, RuntimeOptions::default())))
    }
}

/// How the tensor's elements are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorLayout {
    /// `[C, H, W]`: one plane per channel (the model input).
    Planar,
    /// `[H, W, C]`: channels interleaved per texel.
    Interleaved,
}

/// Per-channel map of tensor values to display intensity:
/// `clamp(v * scale + offset, 0, 1)`. A tensor with one channel is shown as
/// grey; missing channels read 0, and alpha 1 unless mapped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TexelMap {
    /// Multiplier of each channel (R, G, B, A).
    pub scale: [f32; 4],
    /// Offset added to each channel after scaling.
    pub offset: [f32; 4],
}

impl TexelMap {
    /// Values already in [0, 1]; alpha opaque.
    pub const UNIT: TexelMap = TexelMap {
        scale: [1.0, 1.0, 1.0, 0.0],
        offset: [0.0, 0.0, 0.0, 1.0],
    };

    /// RGB channels mapped by `(scale, offset)` each; alpha opaque.
    pub fn rgb(affine: [(f32, f32); 3]) -> Self {
        let [(s0, o0), (s1, o1), (s2, o2)] = affine;
        TexelMap {
            scale: [s0, s1, s2, 0.0],
            offset: [o0, o1, o2, 1.0],
        }
    }

    /// The display byte of value `v` in channel `c`, as the pass computes it
    /// (for checks on the host).
    pub fn byte(&self, c: usize, v: f32) -> u8 {
        ((v * self.scale[c] + self.offset[c]).clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// One tensor to copy into one image this frame.
#[derive(Debug, Clone)]
pub struct TensorCopy {
    /// The target image (made by [`tensor_image`](crate::tensor_image)).
    pub image: AssetId<Image>,
    /// The f32 tensor on Bevy's device (`[C, H, W]` or `[H, W, C]`).
    pub tensor: Tensor<BurnBackend, 3>,
    /// How the tensor's dimensions are ordered.
    pub layout: TensorLayout,
    /// Tensor values to display intensity.
    pub map: TexelMap,
}

impl TensorCopy {
    /// `(width, height, channels)` of the tensor.
    pub fn dims(&self) -> (u32, u32, u32) {
        let [a, b, c] = self.tensor.dims();
        match self.layout {
            TensorLayout::Planar => (c as u32, b as u32, a as u32),
            TensorLayout::Interleaved => (b as u32, a as u32, c as u32),
        }
    }
}

/// Copies queued by the main world, run by the render world.
#[derive(Resource, Clone, Default)]
pub struct TensorCopies(Arc<Mutex<TensorCopyState>>);

#[derive(Default)]
struct TensorCopyState {
    pending: Vec<TensorCopy>,
    done: u64,
    failed: u64,
    last_error: Option<String>,
}

impl TensorCopies {
    fn state(&self) -> std::sync::MutexGuard<'_, TensorCopyState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a copy; a newer copy into the same image replaces an older
    /// one still waiting (latest wins).
    pub fn push(&self, copy: TensorCopy) {
        let mut s = self.state();
        s.pending.retain(|c| c.image != copy.image);
        s.pending.push(copy);
    }

    /// Copies run and copies refused.
    pub fn counters(&self) -> (u64, u64) {
        let s = self.state();
        (s.done, s.failed)
    }

    /// Why the last refused copy was refused.
    pub fn last_error(&self) -> Option<String> {
        self.state().last_error.clone()
    }

    /// Copies waiting for the render world.
    pub fn pending(&self) -> usize {
        self.state().pending.len()
    }
}

/// An image a [`TensorCopy`] can target: RGBA8, storage-writable, sampled
/// through an sRGB view, render-world only, readable back.
pub fn tensor_image(size: FrameSize) -> Image {
    let mut image = Image::new_fill(
        Extent3d {
            width: size.width,
            height: size.height,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        &[0, 0, 0, 255],
        TextureFormat::Rgba8Unorm,
        RenderAssetUsages::RENDER_WORLD,
    );
    image.texture_descriptor.usage |= TextureUsages::STORAGE_BINDING | TextureUsages::COPY_SRC;
    image.texture_descriptor.view_formats = &[TextureFormat::Rgba8UnormSrgb];
    // The sampled view is sRGB; it must not inherit the storage usage,
    // which sRGB formats do not support.
    image.texture_view_descriptor = Some(wgpu::TextureViewDescriptor {
        format: Some(TextureFormat::Rgba8UnormSrgb),
        usage: Some(TextureUsages::TEXTURE_BINDING),
        ..Default::default()
    });
    image
}

const SHADER: &str = r#"
struct Params {
    width: u32,
    height: u32,
    channels: u32,
    planar: u32,
    base: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
    scale: vec4<f32>,
    offset: vec4<f32>,
};

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var dst: texture_storage_2d<rgba8unorm, write>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= params.width || id.y >= params.height) {
        return;
    }
    let px = id.y * params.width + id.x;
    var v = vec4<f32>(0.0, 0.0, 0.0, 1.0);
    let n = min(params.channels, 4u);
    for (var c = 0u; c < n; c = c + 1u) {
        var i = px * params.channels + c;
        if (params.planar == 1u) {
            i = c * params.width * params.height + px;
        }
        v[c] = src[params.base + i];
    }
    if (params.channels == 1u) {
        v = vec4<f32>(v.x, v.x, v.x, 1.0);
    }
    let out = clamp(v * params.scale + params.offset, vec4<f32>(0.0), vec4<f32>(1.0));
    textureStore(dst, vec2<i32>(i32(id.x), i32(id.y)), out);
}
"#;

/// The compute pipeline (render world), built on first use.
#[derive(Resource)]
pub(crate) struct CopyPipeline {
    pass: crate::compute_pass::ComputePass,
}

impl CopyPipeline {
    fn new(device: &wgpu::Device) -> Self {
        let pass = crate::compute_pass::ComputePass::new(
            device,
            "autogaze-tensor-to-rgba8",
            SHADER,
            &[
                crate::compute_pass::buffer_binding(wgpu::BufferBindingType::Storage {
                    read_only: true,
                }),
                crate::compute_pass::buffer_binding(wgpu::BufferBindingType::Uniform),
                crate::compute_pass::RGBA8_STORAGE,
            ],
        );
        Self { pass }
    }
}

/// Why a copy could not run.
fn check(copy: &TensorCopy, gpu: &GpuImage) -> Result<(), String> {
    let (w, h, c) = copy.dims();
    let size = gpu.texture_descriptor.size;
    if !(1..=4).contains(&c) {
        return Err(format!("tensor has {c} channels, expected 1 to 4"));
    }
    if (size.width, size.height) != (w, h) {
        return Err(format!(
            "tensor is {w}x{h}, the image {}x{}",
            size.width, size.height
        ));
    }
    let d = &gpu.texture_descriptor;
    if d.format != TextureFormat::Rgba8Unorm || !d.usage.contains(TextureUsages::STORAGE_BINDING) {
        return Err(format!(
            "image is {:?} with {:?}; make it with tensor_image",
            d.format, d.usage
        ));
    }
    Ok(())
}

/// Render world, `PrepareResources`: runs the queued copies.
pub(crate) fn copy_tensors(
    copies: Res<TensorCopies>,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
    gpu_images: Res<RenderAssets<GpuImage>>,
    pipeline: Option<Res<CopyPipeline>>,
    mut commands: Commands,
) {
    let pending = std::mem::take(&mut copies.state().pending);
    if pending.is_empty() {
        return;
    }
    let Some(pipeline) = pipeline else {
        // Built here the first time (the copies wait one frame).
        commands.insert_resource(CopyPipeline::new(device.wgpu_device()));
        copies.state().pending.extend(pending);
        return;
    };
    let wgpu_device = device.wgpu_device();
    let align = wgpu_device.limits().min_storage_buffer_offset_alignment as u64;
    let mut encoder = wgpu_device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("autogaze-tensor-copies"),
    });
    // Hold Burn's buffers until the copies are submitted.
    let mut held = Vec::new();
    let (mut done, mut failed, mut last_error) = (0, 0, None);
    let mut waiting = Vec::new();
    for copy in pending {
        let Some(gpu) = gpu_images.get(copy.image) else {
            waiting.push(copy);
            continue;
        };
        if let Err(e) = check(&copy, gpu) {
            failed += 1;
            last_error = Some(e);
            continue;
        }
        let (w, h, c) = copy.dims();
        let cube = copy.tensor.clone().into_primitive().tensor();
        if !cube.is_contiguous() {
            failed += 1;
            last_error = Some("tensor is not contiguous".into());
            continue;
        }
        let resource = match cube.client.get_resource(cube.handle.clone()) {
            Ok(r) => r,
            Err(e) => {
                failed += 1;
                last_error = Some(format!("tensor buffer: {e:?}"));
                continue;
            }
        };
        // Burn's pending work goes onto the shared queue before the copy.
        if let Err(e) = cube.client.flush() {
            failed += 1;
            last_error = Some(format!("burn flush: {e:?}"));
            continue;
        }
        let r = resource.resource();
        let bind_offset = r.offset / align * align;
        let base = ((r.offset - bind_offset) / 4) as u32;
        let bytes = (r.offset - bind_offset) + r.size;
        let mut params = [0u8; 64];
        for (i, v) in [w, h, c, (copy.layout == TensorLayout::Planar) as u32, base]
            .into_iter()
            .enumerate()
        {
            params[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        for (i, v) in copy.map.scale.iter().chain(&copy.map.offset).enumerate() {
            params[32 + 4 * i..36 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        let uniform = crate::compute_pass::filled_buffer(
            wgpu_device,
            &queue,
            "autogaze-tensor-copy-params",
            wgpu::BufferUsages::UNIFORM,
            &params,
        );
        let view = gpu.texture.create_view(&wgpu::TextureViewDescriptor {
            label: Some("autogaze-tensor-copy-target"),
            format: Some(TextureFormat::Rgba8Unorm),
            ..Default::default()
        });
        pipeline.pass.record(
            wgpu_device,
            &mut encoder,
            "autogaze-tensor-copy",
            &[
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &r.buffer,
                    offset: bind_offset,
                    size: std::num::NonZeroU64::new(bytes.div_ceil(4) * 4),
                }),
                uniform.as_entire_binding(),
                wgpu::BindingResource::TextureView(&view),
            ],
            [w.div_ceil(8), h.div_ceil(8)],
        );
        held.push((copy, resource));
        done += 1;
    }
    if done > 0 {
        queue.submit([encoder.finish()]);
    }
    drop(held);
    let mut s = copies.state();
    s.done += done;
    s.failed += failed;
    if last_error.is_some() {
        s.last_error = last_error;
    }
    // Copies queued meanwhile are newer: keep a waiting one only if no newer
    // copy targets its image.
    for copy in waiting {
        if !s.pending.iter().any(|c| c.image == copy.image) {
            s.pending.push(copy);
        }
    }
}

/// The render-world part of the bridge: the copy system, in
/// `PrepareResources` (after the images are prepared, before the render
/// graph runs the cameras).
pub(crate) fn add_render_systems(render_app: &mut SubApp, copies: TensorCopies) {
    use bevy::render::{Render, RenderSystems};
    render_app
        .insert_resource(copies)
        .add_systems(Render, copy_tensors.in_set(RenderSystems::PrepareResources));
}
