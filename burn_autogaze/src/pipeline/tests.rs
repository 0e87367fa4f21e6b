//! Pipeline tests: every stage, the mask sources inline and decoupled,
//! host-fed frames, pacing.

use super::*;
use crate::frame::FrameSize;
use crate::interframe::ComposePath;
use crate::source::SourceKind;

fn options(kind: SourceKind, preprocess: bool) -> PipelineOptions {
    PipelineOptions {
        source: SourceOptions {
            kind,
            size: FrameSize::new(96, 54).unwrap(),
            ..SourceOptions::default()
        },
        preprocess,
        ..PipelineOptions::default()
    }
}

/// The model as the mask source at ratio 0.05 (13 tokens a frame) on a
/// small local-motion source, inline.
fn model_options() -> PipelineOptions {
    let mut options = options(SourceKind::SyntheticLocal, false);
    options.mask_source = MaskSourceKind::Autogaze;
    options.model.gazing_ratio = 0.05;
    options
}

#[test]
fn steps_run_every_stage_and_reuse_buffers() {
    let mut pipeline = FramePipeline::new(&options(SourceKind::SyntheticPan, true)).unwrap();
    let first = pipeline.step().unwrap();
    assert!(first.compose.keyframe);
    let pooled = pipeline.pooled_bytes();
    let input_ptr = pipeline.model_input().data().as_ptr();
    for i in 1..10 {
        let report = pipeline.step().unwrap();
        assert_eq!(report.seq, i);
        assert_eq!(report.bytes_in, 96 * 54 * 4);
        for stage in [
            Stage::Source,
            Stage::Preprocess,
            Stage::MaskSource,
            Stage::MaskPlan,
            Stage::Interframe,
        ] {
            assert!(report.times.get(stage) > Duration::ZERO, "{stage:?}");
        }
        // Full-frame motion: every cell is active.
        assert_eq!(report.compose.coverage, 1.0);
    }
    assert_eq!(pipeline.output(), pipeline.current_frame().unwrap().rgba());
    assert_eq!(
        pipeline.pooled_bytes(),
        pooled,
        "no pool growth in steady state"
    );
    assert_eq!(pipeline.model_input().data().as_ptr(), input_ptr);
    let c = pipeline.ring_counters();
    assert_eq!((c.admitted, c.dropped, c.stale), (10, 0, 0));
}

#[test]
fn the_model_mask_source_runs_in_the_pipeline() {
    let mut options = model_options();
    let mut pipeline = FramePipeline::new(&options).unwrap();
    for _ in 0..3 {
        let r = pipeline.step().unwrap();
        assert!(r.times.get(Stage::Preprocess) > Duration::ZERO);
        assert!(r.times.get(Stage::MaskSource) > Duration::ZERO);
        // 13 tokens a frame at ratio 0.05.
        assert_eq!(r.plan.tokens, 13);
        // K = 10: the prefill's call and one more; selection on the host
        // reads each call's logits and task losses.
        let work = r.times.model_work().expect("the model's counts");
        assert_eq!(
            (work.engine, work.frames, work.decoder_calls, work.readbacks),
            ("host", 1, 2, 4)
        );
    }
    // AnyRes: a 96x54 frame in 2 square tiles of 54 px; every tile's
    // cells land inside the frame.
    options.model.anyres_tiles = 2;
    let mut pipeline = FramePipeline::new(&options).unwrap();
    let r = pipeline.step().unwrap();
    assert_eq!(r.plan.tokens, 26);
    // Two tiles, each its own stream on the CPU: still one model frame.
    let work = r.times.model_work().unwrap();
    assert_eq!((work.frames, work.decoder_calls), (1, 4));
    // Each token's rectangle lies on its tile, clipped to the frame (a cell
    // of a tile's part beyond the frame is empty).
    let rects: Vec<TokenRect> = pipeline.token_rects().collect();
    assert_eq!(rects.len(), 26);
    assert!(rects.iter().all(|t| t.rect.x1 <= 96 && t.rect.y1 <= 54));
    assert!(rects.iter().any(|t| !t.rect.is_empty()));
    for rect in pipeline.plan().rects() {
        assert!(rect.rect.x1 <= 96 && rect.rect.y1 <= 54 && !rect.rect.is_empty());
    }
    options.model.gazing_ratio = 1.5;
    assert!(FramePipeline::new(&options).is_err());
    // Patch-diff reads the host output: it cannot be switched off.
    let mut diff = self::options(SourceKind::SyntheticLocal, false);
    diff.compositor.host_output = false;
    let err = FramePipeline::new(&diff).err().unwrap().to_string();
    assert!(err.contains("patch-diff compares"), "{err}");
}

/// The model source on wgpu (lavapipe here) plans what it plans on
/// ndarray: the same seeded weights, the same tokens.
#[cfg(feature = "wgpu")]
#[test]
fn the_model_source_on_wgpu_plans_what_ndarray_plans() {
    let mut options = model_options();
    let mut cpu = FramePipeline::new(&options).unwrap();
    options.model.backend = crate::mask_source::ModelBackend::Wgpu;
    let mut gpu = FramePipeline::new(&options).unwrap();
    for _ in 0..2 {
        let (a, b) = (cpu.step().unwrap(), gpu.step().unwrap());
        assert_eq!((a.plan.tokens, b.plan.tokens), (13, 13));
        assert!(b.times.get(Stage::MaskSource) > Duration::ZERO);
        assert_eq!(cpu.plan().rects(), gpu.plan().rects());
        // The same calls; on the device, the fused engine's counted
        // dispatches and the frame's one readback.
        let (a, b) = (a.times.model_work().unwrap(), b.times.model_work().unwrap());
        assert_eq!(
            (b.engine, b.decoder_calls, b.readbacks),
            ("fused-gpu", a.decoder_calls, 1)
        );
        let dispatches = b.dispatches.expect("the fused engine counts");
        assert!((1..=8 * b.decoder_calls).contains(&dispatches), "{b:?}");
        assert_eq!(a.dispatches, None, "the host engine launches no kernels");
    }
}

/// The model input made on the device gives the tokens the host's gives
/// (the input is the same to a rounding), and the model counts the bytes
/// each moves: the frame's bytes instead of the f32 input up, the frame's
/// picks back.
#[cfg(feature = "wgpu")]
#[test]
fn the_model_input_made_on_the_device_plans_the_same_and_counts_bytes() {
    use crate::mask_source::{InputPlace, ModelBackend};
    let mut options = model_options();
    options.model.preprocess = InputPlace::Device;
    let err = FramePipeline::new(&options).err().unwrap().to_string();
    assert!(err.contains("wgpu model backend"), "{err}");
    options.model.backend = ModelBackend::Wgpu;
    options.model.target_scales = vec![32, 64, 112, 224];
    let err = FramePipeline::new(&options).err().unwrap().to_string();
    assert!(
        err.contains("host preprocessing for target scales"),
        "{err}"
    );
    options.model.target_scales.clear();
    let mut device = FramePipeline::new(&options).unwrap();
    options.model.preprocess = InputPlace::Host;
    let mut host = FramePipeline::new(&options).unwrap();
    let frame = 96 * 54 * 4;
    let input = 3 * 224 * 224 * 4;
    for i in 0..3 {
        let (a, b) = (host.step().unwrap(), device.step().unwrap());
        assert!(b.times.get(Stage::Preprocess) > Duration::ZERO);
        assert_eq!(host.plan().rects(), device.plan().rects());
        let (a, b) = (a.times.model_work().unwrap(), b.times.model_work().unwrap());
        // The frame's one readback: 13 picks and their task losses.
        assert_eq!(a.readback_bytes, Some(2 * 13 * 4), "{a:?}");
        assert_eq!(b.readback_bytes, a.readback_bytes);
        let (up_host, up_device) = (a.upload_bytes.unwrap(), b.upload_bytes.unwrap());
        if i > 0 {
            // Past the first frame (the device path's tap tables), the
            // same engine uploads; the inputs differ.
            assert_eq!(up_device + input, up_host + frame, "{a:?} {b:?}");
        }
    }
}

/// AnyRes tiles made on the device (a 96x54 frame in 2 tiles of 54 px, the
/// second overhanging by 12 px): the same tiles' tokens as tiles cut and
/// preprocessed on the host, the frame's bytes uploaded instead of the
/// tiles' f32 inputs.
#[test]
fn anyres_tiles_made_on_the_device_plan_the_same() {
    use crate::mask_source::{InputPlace, ModelBackend};
    let mut options = model_options();
    options.model.backend = ModelBackend::Wgpu;
    options.model.anyres_tiles = 2;
    options.model.preprocess = InputPlace::Device;
    let mut device = FramePipeline::new(&options).unwrap();
    options.model.preprocess = InputPlace::Host;
    let mut host = FramePipeline::new(&options).unwrap();
    let (frame, inputs) = (96 * 54 * 4, 2 * 3 * 224 * 224 * 4);
    for i in 0..3 {
        let (a, b) = (host.step().unwrap(), device.step().unwrap());
        assert_eq!(a.plan.tokens, b.plan.tokens);
        assert_eq!(host.plan().rects(), device.plan().rects(), "frame {i}");
        let (a, b) = (a.times.model_work().unwrap(), b.times.model_work().unwrap());
        let (up_host, up_device) = (a.upload_bytes.unwrap(), b.upload_bytes.unwrap());
        if i > 0 {
            assert_eq!(up_device + inputs, up_host + frame, "{a:?} {b:?}");
        }
    }
}

#[test]
fn decoupled_mode_never_waits_and_applies_the_newest_mask() {
    let mut options = model_options();
    options.decoupled = true;
    let mut pipeline = FramePipeline::new(&options).unwrap();
    let first = pipeline.step().unwrap();
    assert!(first.compose.keyframe);
    let deadline = web_time::Instant::now() + Duration::from_secs(60);
    let mut applied = None;
    while applied.is_none() && web_time::Instant::now() < deadline {
        let r = pipeline.step().unwrap();
        // The display path never runs the model itself.
        assert_eq!(r.times.get(Stage::MaskSource), Duration::ZERO);
        if let Some(t) = r.mask_times {
            applied = r.mask_seq;
            assert_eq!(r.plan.tokens, 13);
            // The model's counts come with the worker's times.
            assert_eq!(t.model_work().map(|w| w.frames), Some(1));
        }
        assert_eq!(r.times.model_work(), None);
        std::thread::sleep(Duration::from_millis(5));
    }
    let seq = applied.expect("a mask arrives");
    assert!(
        seq < pipeline.current_frame().unwrap().seq,
        "the mask is from an earlier frame"
    );
    let c = pipeline.worker_counters().unwrap();
    assert!(c.admitted >= 2 && c.completed >= 1, "{c:?}");
}

#[test]
fn decoupled_patch_diff_compares_with_an_output_snapshot() {
    let mut options = options(SourceKind::SyntheticLocal, false);
    options.decoupled = true;
    let mut pipeline = FramePipeline::new(&options).unwrap();
    let deadline = web_time::Instant::now() + Duration::from_secs(30);
    let mut sparse = 0;
    while sparse < 3 && web_time::Instant::now() < deadline {
        let r = pipeline.step().unwrap();
        assert_eq!(r.times.get(Stage::MaskSource), Duration::ZERO);
        // After the first mask, only the moving part is active.
        if r.mask_times.is_some() && r.compose.coverage > 0.0 && r.compose.coverage < 0.8 {
            sparse += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(sparse, 3, "sparse masks from the worker");
    // Bounded memory whatever the timing: the snapshot pool keeps at most
    // two frames and the source's pool at most eight.
    let held = pipeline.pooled_bytes();
    let frame = 96 * 54 * 4;
    for _ in 0..40 {
        pipeline.step().unwrap();
        let now = pipeline.pooled_bytes();
        assert!(now <= held + 10 * frame, "{now} > {held} + 10 frames");
    }
}

#[test]
fn host_fed_frames_run_every_stage_after_the_source() {
    let options = options(SourceKind::SyntheticPan, false);
    let mut fed = FramePipeline::fed(&options).unwrap();
    let mut pulled = FramePipeline::new(&options).unwrap();
    let mut source = open_source(&options.source).unwrap();
    assert!(fed.step().is_err(), "a fed pipeline has no source");
    for _ in 0..4 {
        let a = fed.push(source.next_frame().unwrap()).unwrap();
        let b = pulled.step().unwrap();
        assert_eq!((a.seq, a.plan.tokens), (b.seq, b.plan.tokens));
        assert_eq!(a.times.get(Stage::Source), Duration::ZERO);
    }
    assert_eq!(fed.output(), pulled.output());
    assert_eq!(fed.source_name(), "host");
    // A repeated sequence number is refused with a clear error.
    let again = fed.current_frame().unwrap().clone();
    let err = fed.push(again).unwrap_err().to_string();
    assert!(err.contains("increasing sequence numbers"), "{err}");
    let mut paced = options.clone();
    paced.source_fps = Some(SourceRate::Fps(30.0));
    assert!(FramePipeline::fed(&paced).is_err());
}

#[test]
fn paced_playback_keeps_real_time() {
    let mut options = options(SourceKind::SyntheticPan, false);
    options.source_fps = Some(SourceRate::Fps(200.0));
    let mut pipeline = FramePipeline::new(&options).unwrap();
    let start = web_time::Instant::now();
    for _ in 0..20 {
        pipeline.step().unwrap();
    }
    // 20 frames at 200 fps take ~95 ms of waiting, not 1 ms.
    assert!(start.elapsed() >= Duration::from_millis(90));
    let s = pipeline.pace_stats().unwrap();
    assert_eq!(s.shown, 20);
    assert!(
        s.realtime_factor > 0.5 && s.realtime_factor <= 1.05,
        "{s:?}"
    );
    // A display loop asks without waiting: at 2 fps the frame after
    // the first is not due for 500 ms, so nothing happens.
    options.source_fps = Some(SourceRate::Fps(2.0));
    let mut display = FramePipeline::new(&options).unwrap();
    assert!(display.is_paced() && pipeline.is_paced());
    assert_eq!(display.step_when_due().unwrap().unwrap().seq, 0);
    assert!(display.step_when_due().unwrap().is_none());
    assert_eq!(display.pace_stats().unwrap().shown, 1);
    assert_eq!(display.current_frame().unwrap().seq, 0);
    options.source_fps = None;
    let mut free = FramePipeline::new(&options).unwrap();
    assert!(!free.is_paced());
    assert!(free.step_when_due().unwrap().is_some() && free.step_when_due().unwrap().is_some());
    options.source_fps = Some(SourceRate::Native);
    let err = FramePipeline::new(&options)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("synthetic-pan has none"), "{err}");
}

#[test]
fn a_still_source_updates_nothing_after_the_keyframe() {
    let mut pipeline = FramePipeline::new(&options(SourceKind::Static, false)).unwrap();
    assert!(pipeline.step().unwrap().compose.keyframe);
    for _ in 0..5 {
        let r = pipeline.step().unwrap();
        assert_eq!(r.compose.path, ComposePath::Skip);
        assert_eq!(r.plan.updated_pixels, 0);
        assert_eq!(r.times.get(Stage::Preprocess), Duration::ZERO);
    }
    assert_eq!(pipeline.gaze().keyframes, 1);
    assert_eq!(pipeline.gaze().mean, 0.0);
}

#[test]
fn local_motion_updates_a_small_part_and_tracks_the_input() {
    let mut pipeline = FramePipeline::new(&options(SourceKind::SyntheticLocal, false)).unwrap();
    pipeline.step().unwrap();
    for _ in 0..10 {
        let r = pipeline.step().unwrap();
        assert!(
            r.compose.coverage > 0.0 && r.compose.coverage < 0.8,
            "{}",
            r.compose.coverage
        );
    }
    // Patch-diff against the output keeps the reconstruction close to the input.
    let psnr =
        crate::quality::psnr_rgb(pipeline.output(), pipeline.current_frame().unwrap().rgba())
            .unwrap();
    assert!(psnr > 30.0, "{psnr}");
}

/// A host's own mask source: the finest cells over a fixed region, or an
/// error on every frame.
struct Region(Option<crate::mask::Rect>);

impl MaskSource for Region {
    fn tokens_into(
        &mut self,
        frame: &Frame,
        _reference: Option<&[u8]>,
        out: &mut GazeTokens,
        _tiles: &mut MaskTiles,
        _times: &mut StageTimes,
    ) -> Result<()> {
        let region = self
            .0
            .ok_or_else(|| crate::error::AutoGazeError::setting("region", "none", "a region"))?;
        crate::mask_source::push_region_tokens(&TokenLayout::release(), frame.size(), region, out);
        Ok(())
    }
}

#[test]
fn a_custom_mask_source_drives_the_plan_inline_and_decoupled() {
    let region = crate::mask::Rect {
        x0: 0,
        y0: 0,
        x1: 20,
        y1: 10,
    };
    for decoupled in [false, true] {
        let mut options = options(SourceKind::SyntheticPan, false);
        options.decoupled = decoupled;
        let source = Box::new(Region(Some(region)));
        let mut pipeline = FramePipeline::new_with_mask(&options, source).unwrap();
        let deadline = web_time::Instant::now() + Duration::from_secs(30);
        let mut report = pipeline.step().unwrap();
        while (report.mask_seq.is_none() || report.compose.keyframe)
            && web_time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
            report = pipeline.step().unwrap();
        }
        assert!(report.mask_seq.is_some(), "decoupled {decoupled}: no mask");
        // The plan is the region's cells, and so are the token rectangles.
        let tokens: Vec<TokenRect> = pipeline.token_rects().collect();
        assert_eq!(tokens.len() as u32, report.plan.tokens);
        assert!(tokens.iter().all(|t| t.cell.scale == 3 && !t.padded));
        assert!(tokens.iter().all(|t| !t.rect.intersect(&region).is_empty()));
        let planned: Vec<_> = pipeline.plan().rects().iter().map(|r| r.rect).collect();
        let from_tokens: Vec<_> = tokens.iter().map(|t| t.rect).collect();
        assert_eq!(planned, from_tokens);
        assert!(report.compose.coverage < 0.2, "{}", report.compose.coverage);
        assert_eq!(pipeline.worker_counters().is_some(), decoupled);
    }
    // A failing source: inline, the step fails; decoupled, the failure is
    // kept for the caller and frames go on.
    let options = options(SourceKind::SyntheticPan, false);
    let mut inline = FramePipeline::new_with_mask(&options, Box::new(Region(None))).unwrap();
    assert!(inline.step().unwrap_err().to_string().contains("region"));
    let mut decoupled = options.clone();
    decoupled.decoupled = true;
    let mut fed = FramePipeline::fed_with_mask(&decoupled, Box::new(Region(None))).unwrap();
    let mut source = open_source(&options.source).unwrap();
    let deadline = web_time::Instant::now() + Duration::from_secs(30);
    let mut error = None;
    while error.is_none() && web_time::Instant::now() < deadline {
        fed.push(source.next_frame().unwrap()).unwrap();
        error = fed.take_mask_error();
        std::thread::sleep(Duration::from_millis(2));
    }
    let (_, message) = error.expect("the worker reports the failure");
    assert!(message.contains("region"), "{message}");
}

/// The model options name the engine: both registered engines plan the
/// same tokens, and a name no engine has is a typed error listing them.
#[test]
fn the_model_options_name_the_engine() {
    let mut options = model_options();
    let mut plans = Vec::new();
    for engine in ["burn-ops", "host"] {
        options.model.engine = Some(engine.into());
        let mut pipeline = FramePipeline::new(&options).unwrap();
        let steps: Vec<_> = (0..2).map(|_| pipeline.step().unwrap().plan).collect();
        plans.push(steps);
    }
    assert_eq!(plans[0], plans[1]);
    options.model.engine = Some("no-such-engine".into());
    let err = FramePipeline::new(&options)
        .err()
        .expect("an unknown engine");
    let message = err.to_string();
    assert!(
        message.contains("no-such-engine") && message.contains("burn-ops"),
        "{message}"
    );
}
