//! The main-world systems that drive the core pipeline: apply settings, pull
//! (or take a pushed) frame through the pipeline, stage the display uploads.
//! Every computation is the core's; this file only schedules it.

use std::sync::Arc;
use std::time::Duration;

use web_time::Instant;

use bevy::prelude::*;
use burn_autogaze::mask::{panel_size, render_panel_scaled, sample_scaled};
use burn_autogaze::mask_source::{InputPlace, MaskSource, MaskSourceKind, ModelBackend};
use burn_autogaze::pipeline::{FramePipeline, PipelineOptions};
use burn_autogaze::preprocess::FrameShare;
use burn_autogaze::timing::Stage;

use crate::alloc_count::{AllocPath, Region};
use crate::display::{AutoGazeImages, UploadQueue, display_image, readable_display_image};
use crate::feed::HostFrames;
use crate::messages::AutoGazeFailureKind as Failure;
use crate::metrics::AutoGazeMetrics;
use crate::runtime::AutoGazeRuntime;
use crate::settings::{AutoGazeSettings, DisplayTransfer, FrameFeed};
use burn_autogaze::FrameSize;
use burn_autogaze::mask::Rect;
use burn_autogaze::upload::UploadCost;

/// Builds the pipeline on the first frame and after a change that needs it;
/// applies live settings otherwise.
pub(crate) fn apply_settings(
    settings: Res<AutoGazeSettings>,
    mut runtime: ResMut<AutoGazeRuntime>,
    mut metrics: ResMut<AutoGazeMetrics>,
    device: Option<Res<crate::BurnDevice>>,
    queue: Res<UploadQueue>,
) {
    let rebuild = match &runtime.applied {
        None => true,
        Some(applied) => applied.needs_rebuild(&settings),
    };
    if !rebuild && !runtime.refresh && runtime.applied.as_ref() == Some(&*settings) {
        return;
    }
    runtime.refresh = false;
    // After a device fault nothing goes back to the device: the model is
    // built on the host and the host composes.
    let device = device.filter(|_| runtime.device_failed.is_none());
    if rebuild {
        let on_host;
        let options = match runtime.device_failed {
            None => &settings.pipeline,
            Some(_) => {
                on_host = PipelineOptions {
                    model: burn_autogaze::device_fault::on_the_host(&settings.pipeline.model),
                    ..settings.pipeline.clone()
                };
                &on_host
            }
        };
        runtime.frame_share = frame_share(&settings, options, device.as_deref());
        let mask = match settings.custom_mask_source.as_ref() {
            Some(custom) => Ok(Some(custom.build())),
            None => model_on_bevy_device(options, device.as_deref(), runtime.frame_share.clone())
                .transpose(),
        };
        if runtime.device_failed.is_none() {
            runtime.model_placement = model_placement(options, device.as_deref());
        }
        let built = mask.and_then(|mask| match (settings.feed, mask) {
            (FrameFeed::Source, None) => FramePipeline::new(options),
            (FrameFeed::Source, Some(mask)) => FramePipeline::new_with_mask(options, mask),
            (FrameFeed::Host, None) => FramePipeline::fed(options),
            (FrameFeed::Host, Some(mask)) => FramePipeline::fed_with_mask(options, mask),
        });
        match built {
            Ok(p) => {
                *runtime.slot() = Some(p);
                runtime.setup_error = None;
            }
            Err(e) => {
                let message = format!("pipeline setup: {e}");
                eprintln!("bevy_burn_autogaze: {message}");
                metrics.record_failure(Failure::Setup, None, message.clone());
                *runtime.slot() = None;
                runtime.setup_error = Some(message);
            }
        }
    }
    let measure_psnr = settings.psnr && (settings.overlay || metrics.recording());
    if let Some(p) = runtime.pipeline() {
        p.set_geometry(settings.pipeline.geometry);
        let mut compositor = settings.pipeline.compositor;
        compositor.measure_psnr |= measure_psnr;
        let alone = device.is_some() && settings.device_composes(&compositor, true);
        compositor.host_output = !alone;
        // Composing alone, PSNR is the device's (read back a frame or two
        // later): the host has no output to measure.
        queue.set_device_psnr(alone && compositor.measure_psnr);
        compositor.measure_psnr &= !alone;
        *p.compositor_options_mut() = compositor;
    }
    runtime.applied = Some(settings.clone());
}

/// Whether the settings run the model on Burn's wgpu backend.
fn model_on_wgpu(options: &PipelineOptions) -> bool {
    options.mask_source == MaskSourceKind::Autogaze && options.model.backend == ModelBackend::Wgpu
}

/// The model mask source on Bevy's own render device and queue, when the
/// settings put the model on wgpu and the renderer runs compute (None: the
/// core builds the source the settings name).
fn model_on_bevy_device(
    options: &PipelineOptions,
    device: Option<&crate::BurnDevice>,
    share: Option<Arc<FrameShare>>,
) -> Option<burn_autogaze::Result<Box<dyn MaskSource>>> {
    let device = device.filter(|_| model_on_wgpu(options))?;
    Some(burn_autogaze::mask_source::wgpu_model_source(
        &options.model,
        &device.0,
        share,
    ))
}

/// How long the model's ask for a frame waits for the render world before
/// it uploads the frame itself (the render world serves it within a frame
/// or two).
const LEND_WAIT: Duration = Duration::from_secs(1);

/// The display's frames lent to the model (one upload of a frame for
/// both), where the model's input is made on Bevy's device, the GPU
/// transfer keeps the frame there and the model runs on the worker (its
/// ask waits for the render world, which an inline model would block).
fn frame_share(
    settings: &AutoGazeSettings,
    options: &PipelineOptions,
    device: Option<&crate::BurnDevice>,
) -> Option<Arc<FrameShare>> {
    // The model's ask waits for the render world: never on the page's only
    // thread (the browser's model uploads its frames).
    let lends = device.is_some()
        && cfg!(not(target_arch = "wasm32"))
        && settings.custom_mask_source.is_none()
        && model_on_wgpu(options)
        && options.model.preprocess == InputPlace::Device
        && options.decoupled
        && settings.display_transfer == DisplayTransfer::Gpu;
    lends.then(|| Arc::new(FrameShare::new(LEND_WAIT)))
}

/// Where the model runs, in words, for the residency lines (None: no model,
/// or on the host).
fn model_placement(
    options: &PipelineOptions,
    device: Option<&crate::BurnDevice>,
) -> Option<String> {
    if !model_on_wgpu(options) {
        return None;
    }
    Some(match device {
        Some(device) => format!(
            "Burn's wgpu runtime on Bevy's render device and queue ({:?}): one device",
            device.0
        ),
        None => "Burn's wgpu runtime on a second device of the default adapter \
                 (Bevy's renderer runs no compute shaders)"
            .into(),
    })
}

/// Pulls a frame from the source (or takes the newest pushed one) through
/// the pipeline. A failure is reported and counted; the app keeps running.
pub(crate) fn step_pipeline(
    settings: Res<AutoGazeSettings>,
    host: Res<HostFrames>,
    mut runtime: ResMut<AutoGazeRuntime>,
    mut metrics: ResMut<AutoGazeMetrics>,
) {
    runtime.report = None;
    if settings.paused {
        return;
    }
    let seen = runtime.fault_generation;
    let Some(pipeline) = runtime.pipeline() else {
        return;
    };
    // Paced sources step only when their next frame is due: the display
    // loop never sleeps.
    let counted = Region::new(AllocPath::FrameStep);
    let result = match settings.feed {
        FrameFeed::Source => pipeline.step_when_due().transpose(),
        FrameFeed::Host => host.take().map(|frame| pipeline.push(frame)),
    };
    drop(counted);
    if let Some((seq, message)) = pipeline.take_mask_error() {
        let message = format!("mask inference on frame {seq}: {message}");
        eprintln!("bevy_burn_autogaze: {message}");
        metrics.record_failure(Failure::MaskInference, Some(seq), message);
    }
    let generation = pipeline.fault_watch().generation();
    if generation != seen {
        if let Some(fault) = pipeline.device_fault().cloned() {
            note_device_fault(&mut runtime, &mut metrics, fault);
        }
        runtime.fault_generation = generation;
    }
    match result {
        None => {}
        Some(Ok(report)) => runtime.report = Some(report),
        Some(Err(e)) => {
            let message = format!("frame: {e}");
            eprintln!("bevy_burn_autogaze: {message}");
            metrics.record_failure(Failure::Frame, None, message);
        }
    }
}

/// A device fault: reported (once; a later call refines its kind), and the
/// settings applied again so the host composes (the model already runs on
/// the host).
pub(crate) fn note_device_fault(
    runtime: &mut AutoGazeRuntime,
    metrics: &mut AutoGazeMetrics,
    fault: burn_autogaze::device_fault::DeviceFault,
) {
    let fallback = fault.fallback.as_deref().unwrap_or("nothing");
    if runtime.device_failed.is_none() {
        let message = format!(
            "device fault ({}) on frame {}: {}; the model runs on {fallback}, the host composes",
            fault.kind, fault.seq, fault.message
        );
        eprintln!("bevy_burn_autogaze: {message}");
        metrics.record_failure(Failure::Device, Some(fault.seq), message);
    }
    runtime.model_placement = Some(format!(
        "on the host ({fallback}) since frame {}: its device failed ({})",
        fault.seq, fault.kind
    ));
    runtime.device_failed = Some(fault);
    runtime.refresh = true;
    // The residency lines are made again.
    metrics.residency.clear();
}

/// What the display already holds, to skip redundant uploads.
#[derive(Resource, Default)]
pub(crate) struct DisplayState {
    /// The input frame last uploaded (a frame sharing its pixels, as a
    /// still source's frames do, is not uploaded again).
    input: Option<burn_autogaze::Frame>,
    /// The plan of the mask panel last uploaded.
    mask_plan: burn_autogaze::mask::MaskPlan,
    mask_frame: Option<burn_autogaze::Frame>,
    /// Downscale factors of the mask and input images as created.
    mask_scale: u32,
    input_scale: u32,
    /// The frame last written into the GPU transfer's copy source.
    source: Option<burn_autogaze::Frame>,
    /// The images were made for the mask panel drawn on the device.
    panel_device: bool,
    /// The last frame size refused for the textures (reported once).
    refused: Option<FrameSize>,
}

impl DisplayState {
    /// Queues `frame` into the device's copy source (`source`, the input
    /// image itself unless the input panel is `separate`) unless it holds
    /// it already: the device passes read the frame there.
    fn put_source(
        &mut self,
        queue: &UploadQueue,
        source: AssetId<Image>,
        frame: &burn_autogaze::Frame,
        separate: bool,
    ) {
        if self
            .source
            .as_ref()
            .is_some_and(|f| f.shares_pixels_with(frame))
        {
            return;
        }
        queue.push_frame(source, frame.clone());
        self.source = Some(frame.clone());
        if !separate {
            self.input = Some(frame.clone());
        }
    }
}

/// Stages this frame's display work. The output goes up as its dirty regions
/// (CPU transfer) or is composed on the device by copying the same regions
/// from the device-resident frame (GPU transfer); `auto` picks per
/// frame by the learned upload cost. The input and mask panels go up when
/// shown and changed; with the GPU transfer, where the renderer runs
/// compute, the mask panel is drawn on the device from the frame already
/// there instead (`panel_pass`). A new frame size replaces the images'
/// assets (same handles) with their full content instead.
// A Bevy system: each parameter is a resource it reads or writes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stage_display(
    settings: Res<AutoGazeSettings>,
    mut runtime: ResMut<AutoGazeRuntime>,
    mut handles: ResMut<AutoGazeImages>,
    mut images: ResMut<Assets<Image>>,
    mut state: ResMut<DisplayState>,
    queue: Res<UploadQueue>,
    mut metrics: ResMut<AutoGazeMetrics>,
    device: Option<Res<crate::BurnDevice>>,
    render_device: Option<Res<bevy::render::renderer::RenderDevice>>,
) {
    if let Some(e) = queue.take_panel_error() {
        metrics.record_failure(Failure::Display, None, format!("device mask panel: {e}"));
    }
    if runtime.report.is_none() {
        return;
    }
    // The output is the frame (a keyframe, a full copy): its PSNR is inf,
    // on the device as on the host, with nothing to measure.
    let copies_the_frame = match runtime.report.as_mut() {
        Some(report) if report.compose.path.copies_the_frame() => {
            if queue.device_psnr() {
                report.compose.psnr_db = Some(f64::INFINITY);
            }
            true
        }
        _ => false,
    };
    let share = runtime.frame_share.clone();
    let Some(pipeline) = runtime.pipeline() else {
        return;
    };
    let Some(frame) = pipeline.current_frame().cloned() else {
        return;
    };
    let t = Instant::now();
    let _counted = Region::new(AllocPath::Upload);
    if crate::alloc_count::test_allocation() {
        std::hint::black_box(vec![0u8; 64]);
    }
    let size = frame.size();
    // A frame the device's textures cannot hold: a typed error (once per
    // size), no texture; the pipeline goes on.
    if let Some(max) = render_device.map(|d| d.limits().max_texture_dimension_2d)
        && let Err(report) = texture_check(size, max, &mut state.refused)
    {
        if let Some(message) = report {
            metrics.record_failure(Failure::Display, None, message);
        }
        return;
    }
    let scale = settings.mask_panel_scale.max(1);
    let mask_size = panel_size(size, scale);
    // A scaled input panel cannot be the device copy source: a hidden
    // full-size image is, written only when the GPU transfer runs.
    let input_scale = settings.input_panel_scale.max(1);
    let separate = input_scale > 1;
    let input_size = panel_size(size, input_scale);
    let source_id = if separate {
        handles.source.id()
    } else {
        handles.input.id()
    };
    // With the GPU transfer, where the renderer runs compute (Burn's device
    // is registered), the mask panel is drawn on the device from the frame
    // that goes up anyway.
    let panel_device = settings.display_transfer == DisplayTransfer::Gpu && device.is_some();
    if handles.size != Some(size)
        || state.mask_scale != scale
        || state.input_scale != input_scale
        || state.panel_device != panel_device
    {
        let mut panel = vec![0u8; mask_size.rgba_len()];
        if let Err(e) = render_panel_scaled(&frame, pipeline.plan(), scale, &mut panel) {
            metrics.record_failure(Failure::Display, None, format!("mask panel: {e}"));
        }
        let mut input = vec![0u8; input_size.rgba_len()];
        if let Err(e) = sample_scaled(&frame, input_scale, &mut input) {
            metrics.record_failure(Failure::Display, None, format!("input panel: {e}"));
        }
        // Without the host output (the device composes), the frame: a new
        // size is a keyframe.
        let output = if pipeline.compositor().options().host_output {
            pipeline.output().to_vec()
        } else {
            frame.rgba().to_vec()
        };
        let mut new = vec![
            (handles.input.id(), input_size, input),
            (handles.mask.id(), mask_size, panel),
            (handles.output.id(), size, output),
        ];
        if separate {
            new.push((handles.source.id(), size, frame.rgba().to_vec()));
        }
        for (id, size, data) in new {
            // The device passes read the frame and the output as bytes.
            let image = if panel_device && (id == source_id || id == handles.output.id()) {
                readable_display_image(size, data)
            } else if panel_device && id == handles.mask.id() {
                // Storage-writable for the device pass; the first panel is
                // the host's.
                let mut image = crate::tensor_image(size);
                image.data = Some(data);
                image
            } else {
                display_image(size, data)
            };
            if let Err(e) = images.insert(id, image) {
                metrics.record_failure(Failure::Display, None, format!("display image: {e}"));
            }
        }
        handles.size = Some(size);
        handles.input_shows_output = false;
        state.mask_scale = scale;
        state.input_scale = input_scale;
        state.panel_device = panel_device;
        state.input = Some(frame.clone());
        state.source = Some(frame.clone());
        state.mask_plan.clone_from(pipeline.plan());
        state.mask_frame = Some(frame);
    } else if queue.enabled() {
        let dirty = pipeline.compositor().dirty_regions();
        let holds = |f: &Option<burn_autogaze::Frame>| {
            f.as_ref().is_some_and(|f| f.shares_pixels_with(&frame))
        };
        let panel_stale = !holds(&state.input);
        // The copy source is free when it is current, or when the full-size
        // input panel goes up anyway.
        let source_free = holds(&state.source) || (!separate && settings.show_input);
        let transfer = choose_transfer(
            settings.display_transfer,
            &queue.cost(),
            queue.copy_cost_ns(),
            size,
            dirty,
            source_free,
        );
        let gpu = transfer == DisplayTransfer::Gpu && !dirty.is_empty();
        // The output goes up as this frame, whole: a scaled input panel
        // would repeat its bytes, so the output is shown there instead.
        let from_output = settings.input_from_output && separate && copies_the_frame && !gpu;
        if handles.input_shows_output != from_output {
            handles.input_shows_output = from_output;
        }
        if settings.show_input && panel_stale && !from_output {
            if separate {
                let mut staged = queue.spare();
                match staged
                    .stage_full_with(input_size, |buf| sample_scaled(&frame, input_scale, buf))
                {
                    Ok(()) => queue.push_staged(handles.input.id(), staged, false),
                    Err(e) => {
                        queue.give_back(staged);
                        metrics.record_failure(Failure::Display, None, format!("input panel: {e}"));
                    }
                }
            } else {
                queue.push_frame(handles.input.id(), frame.clone());
                state.source = Some(frame.clone());
            }
            state.input = Some(frame.clone());
        }
        if let Some(share) = share.as_ref() {
            if panel_device {
                // The model's device preprocessing reads this frame from
                // the display's texture: one upload for both. Its ask comes
                // from the worker after this frame's step, usually before
                // the render world writes this frame: the render world
                // serves it then (an ask it finds for an older frame is
                // refused, and the model uploads that one).
                state.put_source(&queue, source_id, &frame, separate);
                queue.push_lend(source_id, &frame, Arc::clone(share));
            } else {
                // The transfer went to the CPU since: the model uploads.
                share.refuse_waiting();
            }
        }
        if gpu {
            state.put_source(&queue, source_id, &frame, separate);
            // PSNR on the device, where the host does not compose: measured
            // after the copies, unless the output is the frame (then inf).
            let measure = queue.device_psnr() && !copies_the_frame;
            queue.push_copies(source_id, handles.output.id(), size, dirty, measure);
        } else {
            let mut staged = queue.spare();
            if staged.stage(pipeline.output(), size, dirty, &queue.cost()) {
                queue.push_staged(handles.output.id(), staged, true);
            } else {
                queue.give_back(staged);
            }
        }
        metrics.count_transfer(transfer);
        let plan = pipeline.plan();
        let mask_changed = state.mask_plan != *plan
            || !state
                .mask_frame
                .as_ref()
                .is_some_and(|f| f.shares_pixels_with(&frame));
        let wanted = settings.show_mask && mask_changed;
        // The device draws the panel unless the plan has too many rectangles.
        let device_rects = (wanted && panel_device)
            .then(|| {
                let mut rects = queue.spare_panel();
                if burn_autogaze::mask::device_rects(plan, scale, mask_size, &mut rects) {
                    Some(rects)
                } else {
                    queue.give_back_panel(rects);
                    None
                }
            })
            .flatten();
        if let Some(rects) = device_rects {
            // The pass reads this frame on the device.
            state.put_source(&queue, source_id, &frame, separate);
            queue.push_panel(source_id, handles.mask.id(), mask_size, scale, rects);
            state.mask_plan.clone_from(plan);
            state.mask_frame = Some(frame);
        } else if wanted {
            let mut staged = queue.spare();
            match staged.stage_full_with(mask_size, |buf| {
                render_panel_scaled(&frame, plan, scale, buf)
            }) {
                Ok(()) => {
                    queue.push_staged(handles.mask.id(), staged, false);
                    state.mask_plan.clone_from(plan);
                    state.mask_frame = Some(frame);
                }
                Err(e) => {
                    queue.give_back(staged);
                    metrics.record_failure(Failure::Display, None, format!("mask panel: {e}"));
                }
            }
        }
    }
    metrics.add_stage(Stage::DisplayTransfer, t.elapsed());
}

/// Whether frames of `size` fit the device's textures (`max` a side): Err
/// with the typed error's message the first time a size is refused
/// (`refused` remembers it), Err(None) for its later frames.
pub(crate) fn texture_check(
    size: FrameSize,
    max: u32,
    refused: &mut Option<FrameSize>,
) -> Result<(), Option<String>> {
    match burn_autogaze::limits::texture_size(size.width, size.height, max) {
        Ok(()) => Ok(()),
        Err(_) if *refused == Some(size) => Err(None),
        Err(e) => {
            *refused = Some(size);
            Err(Some(format!("display: {e}")))
        }
    }
}

/// Shows what the model sees: the frame's model input becomes a Burn tensor
/// on Bevy's device and the tensor-to-texture pass packs it into the
/// `model_input` image (no host readback; one host-to-device upload of the
/// f32 input, which a model running on this device would need anyway).
// A Bevy system: each parameter is a resource it reads or writes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stage_model_input(
    settings: Res<AutoGazeSettings>,
    mut runtime: ResMut<AutoGazeRuntime>,
    handles: Res<AutoGazeImages>,
    device: Option<Res<crate::BurnDevice>>,
    copies: Res<crate::TensorCopies>,
    mut images: ResMut<Assets<Image>>,
    mut metrics: ResMut<AutoGazeMetrics>,
    mut made_size: Local<Option<(usize, usize)>>,
) {
    if !settings.show_model_input || runtime.report.is_none() {
        return;
    }
    let Some(device) = device else {
        if metrics.last_error.as_deref() != Some(MODEL_INPUT_NO_COMPUTE) {
            metrics.record_failure(Failure::Display, None, MODEL_INPUT_NO_COMPUTE.into());
        }
        return;
    };
    let Some(pipeline) = runtime.pipeline() else {
        return;
    };
    if !pipeline.preprocesses() {
        if metrics.last_error.as_deref() != Some(MODEL_INPUT_OFF) {
            metrics.record_failure(Failure::Display, None, MODEL_INPUT_OFF.into());
        }
        return;
    }
    let t = Instant::now();
    let [_, _, c, h, w] = pipeline.model_input().shape();
    if *made_size != Some((w, h)) {
        // The storage texture is made when first needed (its asset is
        // render-world only: the main world cannot inspect it).
        let size = FrameSize::new(w as u32, h as u32).expect("the model input size is valid");
        let image = crate::burn_bridge::tensor_image(size);
        if let Err(e) = images.insert(handles.model_input.id(), image) {
            metrics.record_failure(Failure::Display, None, format!("model input panel: {e}"));
            return;
        }
        *made_size = Some((w, h));
    }
    let tensor = pipeline
        .model_input()
        .to_tensor::<crate::burn_bridge::BurnBackend>(&device.0)
        .narrow(1, 0, 1)
        .reshape([c, h, w]);
    copies.push(crate::TensorCopy {
        image: handles.model_input.id(),
        tensor,
        layout: crate::TensorLayout::Planar,
        map: crate::TexelMap::rgb(pipeline.preprocessor().display_affine()),
    });
    metrics.add_stage(Stage::DisplayTransfer, t.elapsed());
}

const MODEL_INPUT_NO_COMPUTE: &str =
    "model input panel: the renderer has no compute shaders (WebGL2), so no Burn device";

const MODEL_INPUT_OFF: &str =
    "model input panel: the pipeline does not preprocess (set pipeline.preprocess)";

/// The transfer for this frame. `auto` compares the predicted host cost of
/// writing the output's dirty regions with that of the GPU path, which needs
/// the current frame on the device (free when it is there already or goes
/// up anyway, `source_free`) and records one device copy per region.
pub(crate) fn choose_transfer(
    setting: DisplayTransfer,
    cost: &UploadCost,
    copy_ns: f64,
    size: FrameSize,
    dirty: &[Rect],
    source_free: bool,
) -> DisplayTransfer {
    match setting {
        DisplayTransfer::Cpu | DisplayTransfer::Gpu => setting,
        DisplayTransfer::Auto => {
            let frame = size.rgba_len() as u64;
            let bytes: u64 = dirty.iter().map(|r| r.area() * 4).sum();
            let n = dirty.len() as u64;
            let (_, cpu) = cost.cheaper(n, bytes, frame);
            let gpu = if source_free {
                0.0
            } else {
                cost.predict_ns(1, frame)
            } + copy_ns * n as f64;
            if gpu < cpu {
                DisplayTransfer::Gpu
            } else {
                DisplayTransfer::Cpu
            }
        }
    }
}
