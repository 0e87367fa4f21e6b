//! Plugin tests: logic under `MinimalPlugins` (no GPU): stepping, metrics,
//! host frames, settings, the result messages and a custom mask source.
//! Headless renders on the real renderer are in `viewer_tests`.

use std::time::Duration;

use bevy::asset::AssetPlugin;
use bevy::prelude::*;
use burn_autogaze::mask::MaskGeometry;
use burn_autogaze::mask_source::MaskSourceKind;
use burn_autogaze::source::{SourceKind, SourceOptions, open_source};
use burn_autogaze::{Frame, FrameSize};

use crate::*;

/// Settings of a deterministic test app (inline mask, no overlay).
pub(crate) fn settings(kind: SourceKind, size: FrameSize) -> AutoGazeSettings {
    let mut s = AutoGazeSettings::default();
    s.pipeline.source = SourceOptions {
        kind,
        size,
        ..SourceOptions::default()
    };
    // Deterministic for comparisons: the mask of a frame is applied to it.
    s.pipeline.decoupled = false;
    s.overlay = false;
    s
}

fn minimal_app(settings: AutoGazeSettings) -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, AssetPlugin::default()))
        .init_asset::<Image>()
        .add_plugins(AutoGazePlugin::new(settings).without_overlay());
    app.finish();
    app.cleanup();
    app
}

fn size(w: u32, h: u32) -> FrameSize {
    FrameSize::new(w, h).unwrap()
}

#[test]
fn minimal_plugins_step_the_pipeline_and_record_metrics() {
    let mut app = minimal_app(settings(SourceKind::SyntheticLocal, size(96, 54)));
    for _ in 0..8 {
        app.update();
    }
    let metrics = app.world().resource::<AutoGazeMetrics>();
    assert_eq!(metrics.frames, 8);
    assert_eq!(metrics.errors, 0, "{:?}", metrics.last_error);
    let last = metrics.last.unwrap();
    assert_eq!(last.report.seq, 7);
    assert!(last.interval.is_some());
    assert!(
        !last
            .report
            .times
            .get(burn_autogaze::timing::Stage::Interframe)
            .is_zero()
    );
    assert!(
        !last
            .report
            .times
            .get(burn_autogaze::timing::Stage::DisplayTransfer)
            .is_zero()
    );
    // Sparse: local motion updates part of the frame.
    assert!(
        metrics.gaze.last > 0.0 && metrics.gaze.last < 0.8,
        "{}",
        metrics.gaze.last
    );
    let snap = metrics.snapshot();
    assert_eq!(snap.frame_short.count, 7);
    assert!(!snap.residency.is_empty());
    // The images were sized to the frames behind the same handles; without a
    // renderer nothing is queued for upload.
    let handles = app.world().resource::<AutoGazeImages>().clone();
    assert_eq!(handles.size, Some(size(96, 54)));
    let images = app.world().resource::<Assets<Image>>();
    let out = images.get(&handles.output).unwrap();
    assert_eq!((out.width(), out.height()), (96, 54));
    // The mask panel is drawn at half size by default.
    let mask = images.get(&handles.mask).unwrap();
    assert_eq!((mask.width(), mask.height()), (48, 27));
    let input = images.get(&handles.input).unwrap();
    assert_eq!((input.width(), input.height()), (48, 27));
    let source = images.get(&handles.source).unwrap();
    assert_eq!((source.width(), source.height()), (96, 54));
    let queue = app.world().resource::<UploadQueue>();
    assert!(!queue.enabled());
    assert_eq!(queue.pending(), 0);
}

#[test]
fn a_paced_source_never_blocks_the_display_loop() {
    // 2 fps: after the first frame nothing is due for 500 ms; the updates
    // in between return at once and show nothing new.
    let mut s = settings(SourceKind::SyntheticLocal, size(64, 32));
    s.pipeline.source_fps = Some(burn_autogaze::pacing::SourceRate::Fps(2.0));
    let mut app = minimal_app(s);
    let t = web_time::Instant::now();
    for _ in 0..5 {
        app.update();
    }
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    let metrics = app.world().resource::<AutoGazeMetrics>();
    assert_eq!(metrics.frames, 1);
    let snap = metrics.snapshot();
    let pace = snap.pace.expect("paced");
    assert_eq!((pace.shown, pace.dropped), (1, 0));
    // Memory was sampled with the first frame: the pipeline's pools and,
    // on Linux, the process RSS.
    assert_eq!(snap.memory.samples, 1);
    assert!(snap.memory.latest.pooled_bytes >= 64 * 32 * 4);
    assert_eq!(
        snap.memory.latest.rss_bytes.is_some(),
        cfg!(target_os = "linux")
    );
    assert!(snap.decode.is_none(), "not a file source");
}

fn frame(seq: u64, source: &mut Box<dyn burn_autogaze::FrameSource>) -> Frame {
    let f = source.next_frame().unwrap();
    Frame::new(
        seq,
        f.width(),
        f.height(),
        f.shared_pixels().clone(),
        f.timestamp,
    )
    .unwrap()
}

#[test]
fn host_frames_are_latest_wins_and_stale_ones_are_refused_without_stopping() {
    let mut s = settings(SourceKind::SyntheticPan, size(64, 32));
    s.feed = FrameFeed::Host;
    let mut app = minimal_app(s.clone());
    let host = app.world().resource::<HostFrames>().clone();
    let mut source = open_source(&s.pipeline.source).unwrap();
    // Nothing pushed: nothing displayed.
    app.update();
    assert_eq!(app.world().resource::<AutoGazeMetrics>().frames, 0);
    host.push(frame(1, &mut source));
    app.update();
    // Two pushes before the next update: the newer wins.
    host.push(frame(3, &mut source));
    host.push(frame(4, &mut source));
    app.update();
    let m = app.world().resource::<AutoGazeMetrics>();
    assert_eq!(m.frames, 2);
    assert_eq!(m.last.unwrap().report.seq, 4);
    assert_eq!(
        m.host,
        HostFeedCounters {
            pushed: 3,
            replaced: 1
        }
    );
    // An older frame is refused, counted, and the app keeps going.
    host.push(frame(2, &mut source));
    app.update();
    host.push(frame(5, &mut source));
    app.update();
    let m = app.world().resource::<AutoGazeMetrics>();
    assert_eq!(m.errors, 1);
    assert!(
        m.last_error.as_deref().unwrap().contains("sequence"),
        "{:?}",
        m.last_error
    );
    assert_eq!((m.frames, m.last.unwrap().report.seq), (3, 5));
    assert_eq!(m.ring.stale, 1);
    // The refusal is also a failure message.
    let latest = app.world().resource::<AutoGazeLatest>();
    let failure = latest.failure().unwrap();
    assert_eq!(latest.failures(), 1);
    assert_eq!(failure.kind, AutoGazeFailureKind::Frame);
    assert!(failure.message.contains("sequence"), "{failure:?}");
    assert_eq!(latest.frame().map(|f| f.seq), Some(5));
}

#[test]
fn settings_apply_live_or_rebuild_and_bad_ones_are_reported() {
    let mut app = minimal_app(settings(SourceKind::SyntheticLocal, size(96, 54)));
    for _ in 0..3 {
        app.update();
    }
    // Live: geometry and dispatch continue the same stream.
    {
        let mut s = app.world_mut().resource_mut::<AutoGazeSettings>();
        s.pipeline.geometry = MaskGeometry::Native;
        s.pipeline.compositor.dispatch = burn_autogaze::interframe::Dispatch::Full;
    }
    app.update();
    let m = app.world().resource::<AutoGazeMetrics>();
    assert_eq!(m.last.unwrap().report.seq, 3);
    // A model directory that does not exist: a clear error, no crash.
    {
        let mut s = app.world_mut().resource_mut::<AutoGazeSettings>();
        s.pipeline.mask_source = MaskSourceKind::Autogaze;
        s.pipeline.model.dir = Some("/nonexistent/autogaze".into());
    }
    app.update();
    app.update();
    let runtime = app.world().resource::<AutoGazeRuntime>();
    let err = runtime.setup_error().unwrap().to_string();
    assert!(err.contains("/nonexistent/autogaze"), "{err}");
    let latest = app.world().resource::<AutoGazeLatest>();
    assert_eq!(latest.failures(), 1, "reported once, not every frame");
    assert_eq!(latest.failure().unwrap().kind, AutoGazeFailureKind::Setup);
    assert_eq!(app.world().resource::<AutoGazeMetrics>().frames, 4);
    // Fixing the settings rebuilds the pipeline: a new stream from frame 0.
    {
        let mut s = app.world_mut().resource_mut::<AutoGazeSettings>();
        s.pipeline.mask_source = MaskSourceKind::PatchDiff;
        s.pipeline.model.dir = None;
    }
    app.update();
    let m = app.world().resource::<AutoGazeMetrics>();
    assert_eq!((m.frames, m.last.unwrap().report.seq), (5, 0));
    // Paused: nothing is pulled.
    app.world_mut().resource_mut::<AutoGazeSettings>().paused = true;
    app.update();
    assert_eq!(app.world().resource::<AutoGazeMetrics>().frames, 5);
}

#[test]
fn auto_transfer_follows_the_cost_model() {
    use burn_autogaze::mask::Rect;
    use burn_autogaze::upload::UploadCost;
    let size = size(1280, 720);
    let cost = UploadCost::default();
    let small = [Rect {
        x0: 0,
        y0: 0,
        x1: 64,
        y1: 64,
    }];
    let full = [Rect::full(size)];
    let choose = |dirty: &[Rect], input_uploaded| {
        crate::driver::choose_transfer(
            DisplayTransfer::Auto,
            &cost,
            2_000.0,
            size,
            dirty,
            input_uploaded,
        )
    };
    // The input goes up anyway: device copies are nearly free.
    assert_eq!(choose(&small, true), DisplayTransfer::Gpu);
    assert_eq!(choose(&full, true), DisplayTransfer::Gpu);
    // Hidden input: a small region costs less than uploading a whole frame.
    assert_eq!(choose(&small, false), DisplayTransfer::Cpu);
    // Forced settings are kept.
    for t in [DisplayTransfer::Cpu, DisplayTransfer::Gpu] {
        assert_eq!(
            crate::driver::choose_transfer(t, &cost, 2_000.0, size, &small, false),
            t
        );
    }
}

/// What a host system saw, reading the plugin's messages and resource with
/// `MessageReader` and `Res` only.
#[derive(Resource, Default)]
struct Seen {
    frames: Vec<AutoGazeFrame>,
    failures: Vec<AutoGazeFailure>,
    latest_seq: Option<u64>,
}

fn watch(
    mut frames: MessageReader<AutoGazeFrame>,
    mut failures: MessageReader<AutoGazeFailure>,
    latest: Res<AutoGazeLatest>,
    mut seen: ResMut<Seen>,
) {
    seen.frames.extend(frames.read().cloned());
    seen.failures.extend(failures.read().cloned());
    seen.latest_seq = latest.frame().map(|f| f.seq);
}

fn watched_app(settings: AutoGazeSettings) -> App {
    let mut app = minimal_app(settings);
    app.init_resource::<Seen>()
        .add_systems(Last, watch.after(AutoGazeSystems::Publish));
    app
}

#[test]
fn every_frame_is_a_message_built_from_the_frames_own_plan_and_times() {
    let mut app = watched_app(settings(SourceKind::SyntheticLocal, size(96, 54)));
    for _ in 0..8 {
        app.update();
        // The message carries what the metrics recorded for the same frame.
        let last = app.world().resource::<AutoGazeMetrics>().last.unwrap();
        let seen = app.world().resource::<Seen>();
        let frame = seen.frames.last().unwrap();
        assert_eq!(frame.seq, last.report.seq);
        assert_eq!(frame.times, last.report.times);
        assert_eq!(frame.path, last.report.compose.path);
        assert_eq!(frame.gaze_ratio, last.report.compose.coverage);
        assert_eq!(frame.keyframe, last.report.compose.keyframe);
        assert_eq!(frame.transfer, last.transfer);
        assert_eq!(frame.tokens.len() as u32, last.report.plan.tokens);
        // The cells' union is the plan's: the rectangles are the core's.
        let mut spans = Vec::new();
        let union = burn_autogaze::mask::union_spans(
            frame.tokens.iter().map(|t| t.rect),
            &mut Default::default(),
            &mut spans,
        );
        assert_eq!(
            union, last.report.plan.updated_pixels,
            "frame {}",
            frame.seq
        );
        assert_eq!(seen.latest_seq, Some(frame.seq));
    }
    let seen = app.world().resource::<Seen>();
    let seqs: Vec<u64> = seen.frames.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (0..8).collect::<Vec<_>>());
    assert!(seen.failures.is_empty());
    let last = seen.frames.last().unwrap();
    assert_eq!(last.size, size(96, 54));
    assert!(!last.keyframe && last.gaze_ratio > 0.0 && last.gaze_ratio < 0.8);
    assert!(!last.tokens.is_empty());
    assert!(
        last.tokens
            .iter()
            .all(|t| t.rect.x1 <= 96 && t.rect.y1 <= 54)
    );
    assert!(
        !last
            .times
            .get(burn_autogaze::timing::Stage::DisplayTransfer)
            .is_zero()
    );
    let everything = burn_autogaze::mask::Rect::full(last.size);
    assert_eq!(last.tokens_in(everything).count(), last.tokens.len());
    let latest = app.world().resource::<AutoGazeLatest>();
    assert_eq!(latest.frames(), 8);
    assert_eq!(latest.frame(), Some(last));
}

/// A host's own mask: the finest cells over a fixed region.
struct Region(burn_autogaze::mask::Rect);

impl burn_autogaze::mask_source::MaskSource for Region {
    fn tokens_into(
        &mut self,
        frame: &Frame,
        _reference: Option<&[u8]>,
        out: &mut burn_autogaze::tokens::GazeTokens,
        _tiles: &mut burn_autogaze::mask_source::MaskTiles,
        _times: &mut burn_autogaze::timing::StageTimes,
    ) -> burn_autogaze::Result<()> {
        let layout = burn_autogaze::tokens::TokenLayout::release();
        burn_autogaze::mask_source::push_region_tokens(&layout, frame.size(), self.0, out);
        Ok(())
    }
}

#[test]
fn a_custom_mask_source_runs_on_the_worker_and_shapes_the_messages() {
    let region = burn_autogaze::mask::Rect {
        x0: 48,
        y0: 27,
        x1: 70,
        y1: 40,
    };
    let mut s = settings(SourceKind::SyntheticPan, size(96, 54));
    s.pipeline.decoupled = true;
    s.custom_mask_source = Some(CustomMaskSource::new("region", move || Region(region)));
    let mut app = watched_app(s);
    let deadline = web_time::Instant::now() + Duration::from_secs(30);
    let applied = loop {
        app.update();
        let seen = app.world().resource::<Seen>();
        if let Some(f) = seen
            .frames
            .last()
            .filter(|f| f.mask_seq.is_some() && !f.keyframe)
        {
            break f.clone();
        }
        assert!(
            web_time::Instant::now() < deadline,
            "no mask from the worker"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    // The worker's mask is of this frame or an earlier one (a source this
    // cheap may finish before the step takes the newest result).
    assert!(applied.mask_seq.unwrap() <= applied.seq);
    assert!(!applied.tokens.is_empty());
    assert_eq!(applied.tokens_in(region).count(), applied.tokens.len());
    assert!(applied.gaze_ratio < 0.2, "{}", applied.gaze_ratio);
    let metrics = app.world().resource::<AutoGazeMetrics>();
    assert!(metrics.worker.is_some_and(|w| w.completed >= 1));
    assert!(
        metrics
            .residency
            .iter()
            .any(|r| r.contains("mask source (region)"))
    );
    // Back to the built-in source: a rebuild, a new stream from frame 0.
    app.world_mut()
        .resource_mut::<AutoGazeSettings>()
        .custom_mask_source = None;
    app.update();
    assert_eq!(app.world().resource::<Seen>().frames.last().unwrap().seq, 0);
}

/// The model is on the page only where it cannot block it: on WebGPU,
/// awaited (a task on the page's event loop), never on the host engine or
/// inline; the WebGL2 page refuses it, saying why.
#[cfg(feature = "viewer")]
#[test]
fn each_web_bundle_refuses_the_models_it_cannot_run_without_blocking() {
    use crate::cli::{ViewerArgs, WebBundle};
    use clap::Parser;
    let args = |flags: &[&str]| {
        let mut argv = vec!["bevy_burn_autogaze"];
        argv.extend_from_slice(flags);
        ViewerArgs::parse_from(argv)
    };
    let model = ["--mask-source", "autogaze"];
    let on_gpu = ["--mask-source", "autogaze", "--model-backend", "wgpu"];
    assert_eq!(args(&on_gpu).model_refusal(WebBundle::WebGpu), None);
    assert_eq!(args(&[]).model_refusal(WebBundle::WebGpu), None);
    assert_eq!(args(&[]).model_refusal(WebBundle::WebGl2), None);
    for (flags, bundle, needle) in [
        (
            &model[..],
            WebBundle::WebGl2,
            "WebGL2 has no compute shaders",
        ),
        (
            &on_gpu[..],
            WebBundle::WebGl2,
            "WebGL2 has no compute shaders",
        ),
        (
            &["--model-backend", "wgpu"][..],
            WebBundle::WebGl2,
            "model-backend=wgpu",
        ),
        (&model[..], WebBundle::WebGpu, "would block the page"),
    ] {
        let why = args(flags).model_refusal(bundle).unwrap_or_default();
        assert!(why.contains(needle), "{flags:?} on {bundle:?}: {why}");
    }
    let mut inline = on_gpu.to_vec();
    inline.push("--inline-inference");
    let why = args(&inline)
        .model_refusal(WebBundle::WebGpu)
        .unwrap_or_default();
    assert!(why.contains("inline-inference"), "{why}");
    // In the browser the model runs decoupled (a task on the page's event
    // loop); natively too, unless told otherwise.
    assert!(args(&on_gpu).settings().pipeline.decoupled);
}
