//! Display residency and upload: the three images (input, mask, output) and
//! how composed bytes reach their textures.
//!
//! The images are created render-world-only and never mutated through
//! `Assets<Image>` after creation (that would clone and re-upload the whole
//! image). Each frame the main world stages what changed (the compositor's
//! dirty regions, or one whole frame when the learned upload cost says so:
//! [`burn_autogaze::upload`]) and a render-world system writes it into the
//! GPU texture with `queue.write_texture`, one call per region. The input
//! frame goes up straight from its shared buffer (no staging copy).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use web_time::Instant;

use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat, TextureUsages};
use bevy::render::renderer::{RenderDevice, RenderQueue};
use bevy::render::texture::GpuImage;
use burn_autogaze::upload::{StagedUpload, UploadCost, UploadFit};

use crate::alloc_count::{AllocPath, Region};
use crate::gpu_timing::{DEVICE_COMPOSE, PSNR, timed};
use burn_autogaze::{Frame, FrameSize};

/// The plugin's display images. The handles never change (a new frame size
/// replaces the asset behind them), so a host can place them once.
#[derive(Resource, Debug, Clone)]
pub struct AutoGazeImages {
    /// The frame as it came from the source.
    pub input: Handle<Image>,
    /// The mask panel: the frame dimmed outside the plan, each kept cell in
    /// its scale's colour.
    pub mask: Handle<Image>,
    /// The composed (sparse-updated) output.
    pub output: Handle<Image>,
    /// A full-size copy of the frame on the device: the GPU transfer's copy
    /// source when the input panel is scaled (not meant for display).
    pub source: Handle<Image>,
    /// What the model sees (the preprocessed frame), written on the device
    /// from a Burn tensor (`show_model_input`; see [`crate::burn_bridge`]).
    pub model_input: Handle<Image>,
    /// Size of the frames in the images (none before the first frame).
    pub size: Option<FrameSize>,
    /// This frame's input panel is the output image (it holds the frame
    /// whole: see `AutoGazeSettings::input_from_output`).
    pub input_shows_output: bool,
}

impl AutoGazeImages {
    pub(crate) fn new(images: &mut Assets<Image>) -> Self {
        let size = FrameSize::new(2, 2).expect("a 2x2 placeholder is a valid size");
        let mut placeholder = || images.add(display_image(size, vec![0; size.rgba_len()]));
        Self {
            input: placeholder(),
            mask: placeholder(),
            output: placeholder(),
            source: placeholder(),
            // Becomes a tensor image when first shown (a storage texture,
            // which WebGL2 cannot create).
            model_input: placeholder(),
            size: None,
            input_shows_output: false,
        }
    }

    /// The image to show as the input panel this frame: `input`, or
    /// `output` when it holds the frame whole and the settings say so
    /// (`AutoGazeSettings::input_from_output`).
    pub fn input_view(&self) -> &Handle<Image> {
        if self.input_shows_output {
            &self.output
        } else {
            &self.input
        }
    }
}

/// An RGBA8 (sRGB) image that lives in the render world only, readable back
/// (`COPY_SRC`) for screenshots and tests.
pub(crate) fn display_image(size: FrameSize, data: Vec<u8>) -> Image {
    let mut image = Image::new(
        Extent3d {
            width: size.width,
            height: size.height,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        data,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::RENDER_WORLD,
    );
    image.texture_descriptor.usage |= TextureUsages::COPY_SRC;
    image
}

/// A [`display_image`] whose bytes a compute pass can read (an `rgba8unorm`
/// view besides the sRGB one): the frame the device's mask panel samples.
/// Needs an adapter with compute shaders (WebGL2 has neither).
pub(crate) fn readable_display_image(size: FrameSize, data: Vec<u8>) -> Image {
    let mut image = display_image(size, data);
    image.texture_descriptor.view_formats = &[TextureFormat::Rgba8Unorm];
    image
}

/// Texture-write totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct UploadTotals {
    /// Bytes handed to `write_texture`.
    pub bytes: u64,
    /// `write_texture` calls.
    pub calls: u64,
    /// Output uploads that went up as one whole-frame write.
    pub full: u64,
    /// Uploads dropped because their texture changed size meanwhile.
    pub stale: u64,
    /// Device-side texture-to-texture copies (GPU transfer) and the bytes
    /// they moved on the device (no host bytes).
    pub device_copies: u64,
    /// Bytes those device copies moved.
    pub device_copy_bytes: u64,
    /// Mask panels drawn on the device (their rectangles' bytes are in
    /// `bytes`, not the panel's pixels).
    #[serde(default)]
    pub device_panels: u64,
    /// PSNR measurements on the device (8 bytes read back each).
    #[serde(default)]
    pub device_psnr: u64,
    /// Frames lent to the model from the display's texture on the device
    /// (its asks served: one upload for the display and the model).
    #[serde(default)]
    pub device_lends: u64,
    /// CPU time of the writes (staging allocation and copy).
    #[serde(skip)]
    pub time: Duration,
    /// Wall time of the render world's `Render` schedule, the writes
    /// excluded.
    #[serde(skip)]
    pub render: Duration,
}

impl UploadTotals {
    pub(crate) fn add(&mut self, other: &UploadTotals) {
        self.bytes += other.bytes;
        self.calls += other.calls;
        self.full += other.full;
        self.stale += other.stale;
        self.device_copies += other.device_copies;
        self.device_copy_bytes += other.device_copy_bytes;
        self.device_panels += other.device_panels;
        self.device_psnr += other.device_psnr;
        self.device_lends += other.device_lends;
        self.time += other.time;
        self.render += other.render;
    }
}

enum Payload {
    Staged(StagedUpload),
    /// A whole source frame, written from its shared buffer.
    Frame(Frame),
    /// Regions copied on the device from another image of the same size.
    Copies {
        from: AssetId<Image>,
        rects: Vec<burn_autogaze::mask::Rect>,
        /// Measure PSNR on the device after the copies.
        psnr: bool,
    },
    /// The mask panel drawn on the device from the frame's image `from` at
    /// 1/`factor` (`rects` packed by `burn_autogaze::mask::device_rects`).
    Panel {
        from: AssetId<Image>,
        factor: u32,
        rects: Vec<u32>,
    },
    /// The model's asks for `frame`, which the upload's image holds, served
    /// from it on the device (`lend_pass`).
    Lend {
        frame: Frame,
        share: Arc<burn_autogaze::preprocess::FrameShare>,
    },
}

struct Upload {
    image: AssetId<Image>,
    size: FrameSize,
    payload: Payload,
    /// Render frames this upload waited for its texture.
    waited: u8,
    /// The composed output (counted in `full` when written whole).
    output: bool,
}

#[derive(Default)]
struct Shared {
    enabled: bool,
    pending: Vec<Upload>,
    spare: Vec<StagedUpload>,
    done: UploadTotals,
    fit: UploadFit,
    /// Write time inside the current render frame.
    frame_writes: Duration,
    /// Measured host cost of recording one device copy (EMA, ns).
    copy_ns: Option<f64>,
    spare_rects: Vec<Vec<burn_autogaze::mask::Rect>>,
    /// Why the last device mask panel could not be drawn.
    panel_error: Option<String>,
    /// Recycled rectangle lists of device panels.
    spare_panels: Vec<Vec<u32>>,
    /// Measure PSNR on the device after each device composition.
    device_psnr: bool,
    /// The newest PSNR the device measured, not yet taken.
    psnr: Option<f64>,
    /// GPU stage times (stage, ms) arrived since the last take.
    gpu_times: Vec<(&'static str, f64)>,
    /// How GPU stages are timed ("timestamp queries"), or why they are not.
    gpu_timing: Option<String>,
}

/// The queue between the main world, which stages uploads, and the render
/// world, which writes them. Staging buffers cycle back to the main world.
#[derive(Resource, Clone, Default)]
pub struct UploadQueue(Arc<Mutex<Shared>>);

impl UploadQueue {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        // Critical sections only move values in and out: a poisoned lock
        // holds nothing half-written.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once a render world writes the uploads (false under
    /// `MinimalPlugins` or without a GPU).
    pub fn enabled(&self) -> bool {
        self.shared().enabled
    }

    pub(crate) fn enable(&self) {
        let mut shared = self.shared();
        shared.enabled = true;
        // Room for the lists' steady state, made once (a frame queues up to
        // four uploads; the render world may drain two frames at once).
        shared.pending.reserve(LIST_RESERVED);
        shared.spare.reserve(LIST_RESERVED);
        shared.spare_rects.reserve(LIST_RESERVED);
        shared.spare_panels.reserve(LIST_RESERVED);
    }

    /// The upload cost model learned from the writes so far.
    pub fn cost(&self) -> UploadCost {
        self.shared().fit.cost()
    }

    /// Batches the cost model has learned from.
    pub fn fit_samples(&self) -> u64 {
        self.shared().fit.samples()
    }

    /// A staging buffer (recycled when one is free).
    pub(crate) fn spare(&self) -> StagedUpload {
        self.shared().spare.pop().unwrap_or_default()
    }

    /// Host cost of recording one device copy: measured, or a prior of 2 us
    /// until the first copies ran.
    pub fn copy_cost_ns(&self) -> f64 {
        self.shared().copy_ns.unwrap_or(2_000.0)
    }

    /// Queues device copies of `rects` from image `from` into `to`.
    pub(crate) fn push_copies(
        &self,
        from: AssetId<Image>,
        to: AssetId<Image>,
        size: FrameSize,
        rects: &[burn_autogaze::mask::Rect],
        psnr: bool,
    ) {
        let mut shared = self.shared();
        let mut list = shared.spare_rects.pop().unwrap_or_default();
        list.clear();
        list.extend_from_slice(rects);
        shared.pending.push(Upload {
            image: to,
            size,
            payload: Payload::Copies {
                from,
                rects: list,
                psnr,
            },
            waited: 0,
            output: true,
        });
    }

    /// Queues the mask panel of `rects` (packed for the device pass) drawn
    /// on the device from image `from` (the full-size frame) into `to`.
    pub(crate) fn push_panel(
        &self,
        from: AssetId<Image>,
        to: AssetId<Image>,
        size: FrameSize,
        factor: u32,
        rects: Vec<u32>,
    ) {
        self.shared().pending.push(Upload {
            image: to,
            size,
            payload: Payload::Panel {
                from,
                factor,
                rects,
            },
            waited: 0,
            output: false,
        });
    }

    /// Returns an unused staging buffer.
    pub(crate) fn give_back(&self, staged: StagedUpload) {
        self.shared().spare.push(staged);
    }

    /// Queues a staged upload; `output` marks the composed output.
    pub(crate) fn push_staged(&self, image: AssetId<Image>, staged: StagedUpload, output: bool) {
        let Some(size) = staged.size() else { return };
        self.shared().pending.push(Upload {
            image,
            size,
            payload: Payload::Staged(staged),
            waited: 0,
            output,
        });
    }

    /// Queues the lend of `frame` (which `image` holds by then) to the
    /// model's asks in `share`.
    pub(crate) fn push_lend(
        &self,
        image: AssetId<Image>,
        frame: &Frame,
        share: Arc<burn_autogaze::preprocess::FrameShare>,
    ) {
        self.shared().pending.push(Upload {
            image,
            size: frame.size(),
            payload: Payload::Lend {
                frame: frame.clone(),
                share,
            },
            waited: 0,
            output: false,
        });
    }

    pub(crate) fn push_frame(&self, image: AssetId<Image>, frame: Frame) {
        let size = frame.size();
        self.shared().pending.push(Upload {
            image,
            size,
            payload: Payload::Frame(frame),
            waited: 0,
            output: false,
        });
    }

    /// Whether the device measures PSNR after composing (the host output
    /// is off).
    pub(crate) fn set_device_psnr(&self, on: bool) {
        self.shared().device_psnr = on;
    }

    /// True when PSNR is measured on the device.
    pub(crate) fn device_psnr(&self) -> bool {
        self.shared().device_psnr
    }

    /// The newest PSNR measured on the device since the last call.
    pub(crate) fn take_device_psnr(&self) -> Option<f64> {
        self.shared().psnr.take()
    }

    /// A rectangle list for [`UploadQueue::push_panel`] (recycled).
    pub(crate) fn spare_panel(&self) -> Vec<u32> {
        self.shared().spare_panels.pop().unwrap_or_default()
    }

    /// Returns an unused rectangle list.
    pub(crate) fn give_back_panel(&self, rects: Vec<u32>) {
        self.shared().spare_panels.push(rects);
    }

    /// GPU stage times (stage, ms) arrived since the last call, into `out`.
    pub(crate) fn take_gpu_times(&self, out: &mut Vec<(&'static str, f64)>) {
        out.append(&mut self.shared().gpu_times);
    }

    /// How GPU stages are timed, or why they are not (None: no render
    /// world has written yet).
    pub(crate) fn gpu_timing(&self) -> Option<String> {
        self.shared().gpu_timing.clone()
    }

    /// Why the last device mask panel failed, once (None: none failed).
    pub(crate) fn take_panel_error(&self) -> Option<String> {
        self.shared().panel_error.take()
    }

    /// Totals written since the last call.
    pub(crate) fn take_done(&self) -> UploadTotals {
        std::mem::take(&mut self.shared().done)
    }

    /// Bytes held by staging buffers: free ones and those waiting.
    pub fn staging_bytes(&self) -> usize {
        let shared = self.shared();
        let waiting = shared.pending.iter().map(|u| match &u.payload {
            Payload::Staged(s) => s.held_bytes(),
            Payload::Frame(_)
            | Payload::Copies { .. }
            | Payload::Panel { .. }
            | Payload::Lend { .. } => 0,
        });
        shared
            .spare
            .iter()
            .map(StagedUpload::held_bytes)
            .sum::<usize>()
            + waiting.sum::<usize>()
    }

    /// Uploads waiting for the render world.
    pub fn pending(&self) -> usize {
        self.shared().pending.len()
    }
}

/// When the render world's current `Render` schedule began.
#[derive(Resource, Default)]
pub(crate) struct RenderClock(Option<Instant>);

/// Render world, before everything in `Render`.
pub(crate) fn render_begin(mut clock: ResMut<RenderClock>) {
    clock.0 = Some(Instant::now());
}

/// Render world, after the frame was submitted.
pub(crate) fn render_end(mut clock: ResMut<RenderClock>, queue: Res<UploadQueue>) {
    if let Some(t) = clock.0.take() {
        let mut shared = queue.shared();
        let writes = shared.frame_writes;
        shared.done.render += t.elapsed().saturating_sub(writes);
        shared.frame_writes = Duration::ZERO;
    }
}

/// Entries the upload lists make room for at once.
const LIST_RESERVED: usize = 32;

/// The render world's reused lists: writing the uploads allocates nothing
/// once they have grown to the steady state.
#[derive(Default)]
pub(crate) struct WriteScratch {
    pending: Vec<Upload>,
    waiting: Vec<Upload>,
    spare: Vec<StagedUpload>,
    samples: Vec<(u64, u64, Duration)>,
    spare_rects: Vec<Vec<burn_autogaze::mask::Rect>>,
    spare_panels: Vec<Vec<u32>>,
}

/// Render world: writes every pending upload into its texture.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_uploads(
    queue: Res<UploadQueue>,
    render_queue: Res<RenderQueue>,
    render_device: Res<RenderDevice>,
    gpu_images: Res<RenderAssets<GpuImage>>,
    mut scratch: Local<WriteScratch>,
    mut panels: Local<Option<crate::panel_pass::PanelPipeline>>,
    mut psnr: Local<Option<crate::psnr_pass::PsnrPass>>,
    mut lender: Local<crate::lend_pass::Lender>,
    mut timer: Local<Option<Result<crate::gpu_timing::GpuTimer, String>>>,
) {
    let timer = timer.get_or_insert_with(|| {
        let made = crate::gpu_timing::GpuTimer::new(render_device.wgpu_device(), &render_queue);
        queue.shared().gpu_timing = Some(match &made {
            Ok(_) => "timestamp queries".into(),
            Err(why) => why.clone(),
        });
        made
    });
    let mut timer = timer.as_mut().ok();
    if let Some(t) = timer.as_deref_mut() {
        t.begin_frame(render_device.wgpu_device(), &mut queue.shared().gpu_times);
    }
    if let Some(db) = psnr
        .as_mut()
        .and_then(|p| p.finished(render_device.wgpu_device()))
    {
        queue.shared().psnr = Some(db);
    }
    let _counted = Region::new(AllocPath::Upload);
    let s = &mut *scratch;
    if s.waiting.capacity() == 0 {
        s.pending.reserve(LIST_RESERVED);
        s.waiting.reserve(LIST_RESERVED);
        s.spare.reserve(LIST_RESERVED);
        s.samples.reserve(LIST_RESERVED);
        s.spare_rects.reserve(LIST_RESERVED);
        s.spare_panels.reserve(LIST_RESERVED);
    }
    // Asks for the frame the texture still holds, before this frame's
    // writes replace it.
    let held = lender.lend_held(
        &render_device,
        &render_queue,
        &gpu_images,
        timer.as_deref_mut(),
    );
    // Swapped, not taken: both lists keep their capacity.
    let mut shared = queue.shared();
    shared.done.device_lends += held.served;
    shared.done.bytes += held.bytes;
    std::mem::swap(&mut s.pending, &mut shared.pending);
    drop(shared);
    if s.pending.is_empty() {
        // The held lend's stage, if it ran, is resolved.
        if let Some(t) = timer {
            t.end_frame(render_device.wgpu_device(), &render_queue);
        }
        return;
    }
    let mut done = UploadTotals::default();
    let mut copy_time = Duration::ZERO;
    for mut upload in s.pending.drain(..) {
        let Some(gpu) = gpu_images.get(upload.image) else {
            // Not prepared yet (a new image): keep it a few frames.
            upload.waited += 1;
            if upload.waited <= 3 {
                s.waiting.push(upload);
            } else {
                done.stale += 1;
            }
            continue;
        };
        let extent = gpu.texture_descriptor.size;
        if (extent.width, extent.height) != (upload.size.width, upload.size.height) {
            done.stale += 1;
            if let Payload::Staged(staged) = upload.payload {
                s.spare.push(staged);
            }
            continue;
        }
        let t = Instant::now();
        let (calls, bytes) = match &upload.payload {
            Payload::Staged(staged) => {
                for region in staged.regions() {
                    write_rect(
                        &render_queue,
                        &gpu.texture,
                        region.rect,
                        staged.region_bytes(region),
                    );
                }
                done.full += (upload.output && staged.is_full()) as u64;
                (staged.regions().len() as u64, staged.bytes().len() as u64)
            }
            Payload::Frame(frame) => {
                write_rect(
                    &render_queue,
                    &gpu.texture,
                    burn_autogaze::mask::Rect::full(frame.size()),
                    frame.rgba(),
                );
                (1, frame.rgba().len() as u64)
            }
            Payload::Copies {
                from,
                rects,
                psnr: measure,
            } => 'copies: {
                // A source not ready: stale, its list recycled below.
                let Some(src) = gpu_images.get(*from) else {
                    done.stale += 1;
                    break 'copies (0, 0);
                };
                let _wgpu = Region::new(AllocPath::Wgpu);
                let mut encoder =
                    render_device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("autogaze-device-compose"),
                    });
                timed(timer.as_deref_mut(), &mut encoder, DEVICE_COMPOSE, |e| {
                    for r in rects {
                        copy_rect(e, &src.texture, &gpu.texture, *r);
                        done.device_copy_bytes += r.area() * 4;
                    }
                });
                let measured = *measure && {
                    let pass = psnr.get_or_insert_with(|| {
                        crate::psnr_pass::PsnrPass::new(render_device.wgpu_device())
                    });
                    timed(timer.as_deref_mut(), &mut encoder, PSNR, |e| {
                        pass.record(render_device.wgpu_device(), &render_queue, e, gpu, src)
                    })
                };
                // Submit now: wgpu runs queued texture writes before the
                // command buffers of the next submit, so these copies read
                // this frame's input, and a later frame's writes (queued
                // below, when the render world drains two frames at once)
                // cannot overtake them.
                render_queue.submit([encoder.finish()]);
                if measured && let Some(pass) = psnr.as_ref() {
                    pass.start_read();
                    done.device_psnr += 1;
                }
                done.device_copies += rects.len() as u64;
                copy_time += t.elapsed();
                (0, 0)
            }
            Payload::Panel {
                from,
                factor,
                rects,
            } => 'panel: {
                let Some(src) = gpu_images.get(*from) else {
                    done.stale += 1;
                    break 'panel (0, 0);
                };
                let _wgpu = Region::new(AllocPath::Wgpu);
                let pipeline = panels.get_or_insert_with(|| {
                    crate::panel_pass::PanelPipeline::new(render_device.wgpu_device())
                });
                match crate::panel_pass::draw_panel(
                    &render_device,
                    &render_queue,
                    pipeline,
                    src,
                    gpu,
                    *factor,
                    rects,
                    timer.as_deref_mut(),
                ) {
                    Ok(bytes) => {
                        done.device_panels += 1;
                        done.bytes += bytes;
                    }
                    Err(e) => {
                        done.stale += 1;
                        queue.shared().panel_error = Some(e);
                    }
                }
                (0, 0)
            }
            Payload::Lend { frame, share } => {
                let _wgpu = Region::new(AllocPath::Wgpu);
                let lent = lender.lend(
                    &render_device,
                    &render_queue,
                    upload.image,
                    gpu,
                    frame,
                    share,
                    timer.as_deref_mut(),
                );
                done.device_lends += lent.served;
                done.bytes += lent.bytes;
                (0, 0)
            }
        };
        let elapsed = t.elapsed();
        done.time += elapsed;
        done.calls += calls;
        done.bytes += bytes;
        if calls > 0 {
            s.samples.push((calls, bytes, elapsed));
        }
        match upload.payload {
            Payload::Staged(staged) => s.spare.push(staged),
            Payload::Copies { rects, .. } => s.spare_rects.push(rects),
            Payload::Panel { rects, .. } => s.spare_panels.push(rects),
            Payload::Frame(_) | Payload::Lend { .. } => {}
        }
    }
    if let Some(t) = timer {
        let _wgpu = Region::new(AllocPath::Wgpu);
        t.end_frame(render_device.wgpu_device(), &render_queue);
    }
    let mut shared = queue.shared();
    if done.device_copies > 0 {
        let per_copy = copy_time.as_nanos() as f64 / done.device_copies as f64;
        shared.copy_ns = Some(match shared.copy_ns {
            Some(old) => 0.9 * old + 0.1 * per_copy,
            None => per_copy,
        });
    }
    shared.spare_rects.append(&mut s.spare_rects);
    shared.spare_panels.append(&mut s.spare_panels);
    // Uploads staged meanwhile go after the ones still waiting.
    s.waiting.append(&mut shared.pending);
    std::mem::swap(&mut shared.pending, &mut s.waiting);
    shared.spare.append(&mut s.spare);
    shared.done.add(&done);
    shared.frame_writes += done.time;
    for (calls, bytes, elapsed) in s.samples.drain(..) {
        shared.fit.observe(calls, bytes, elapsed);
    }
}

/// The copy target at `rect`'s origin in `texture`.
fn at(texture: &wgpu::Texture, rect: burn_autogaze::mask::Rect) -> wgpu::TexelCopyTextureInfo<'_> {
    wgpu::TexelCopyTextureInfo {
        texture,
        mip_level: 0,
        origin: wgpu::Origin3d {
            x: rect.x0,
            y: rect.y0,
            z: 0,
        },
        aspect: wgpu::TextureAspect::All,
    }
}

fn extent(rect: burn_autogaze::mask::Rect) -> wgpu::Extent3d {
    wgpu::Extent3d {
        width: rect.width(),
        height: rect.height(),
        depth_or_array_layers: 1,
    }
}

fn copy_rect(
    encoder: &mut wgpu::CommandEncoder,
    src: &wgpu::Texture,
    dst: &wgpu::Texture,
    rect: burn_autogaze::mask::Rect,
) {
    encoder.copy_texture_to_texture(at(src, rect), at(dst, rect), extent(rect));
}

fn write_rect(
    queue: &RenderQueue,
    texture: &wgpu::Texture,
    rect: burn_autogaze::mask::Rect,
    bytes: &[u8],
) {
    let _wgpu = Region::new(AllocPath::Wgpu);
    queue.write_texture(
        at(texture, rect),
        bytes,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(rect.width() * 4),
            rows_per_image: Some(rect.height()),
        },
        extent(rect),
    );
}
