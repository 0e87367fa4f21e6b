//! Plugin tests: logic under `MinimalPlugins` (no GPU), and one headless
//! render on the real renderer (lavapipe here) whose output texture must
//! equal the core compositor's output for the same frames.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::asset::AssetPlugin;
use bevy::prelude::*;
use bevy::render::gpu_readback::{Readback, ReadbackComplete};
use burn_autogaze::mask::MaskGeometry;
use burn_autogaze::mask_source::MaskSourceKind;
use burn_autogaze::pipeline::FramePipeline;
use burn_autogaze::source::{SourceKind, SourceOptions, open_source};
use burn_autogaze::{Frame, FrameSize};

use crate::headless::{HeadlessOptions, headless_app};
use crate::recording::RecordOptions;
use crate::*;

fn settings(kind: SourceKind, size: FrameSize) -> AutoGazeSettings {
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

/// Renders `FRAMES` frames headless with `transfer` and reads the output
/// texture back from the GPU.
fn render_output(
    transfer: DisplayTransfer,
    show_input: bool,
) -> (Vec<u8>, AutoGazeSettings, UploadTotals) {
    // 128 px rows are 512 bytes: the readback has no row padding.
    let mut s = settings(SourceKind::SyntheticLocal, size(128, 64));
    s.display_transfer = transfer;
    s.show_input = show_input;
    let (gpu, uploads, _) = render_and_read(s.clone(), |h| h.output.clone());
    (gpu, s, uploads)
}

const FRAMES: u64 = 6;

/// Renders `FRAMES` frames headless and reads the image `pick` names back
/// from the GPU (rows as the readback pads them).
fn render_and_read(
    s: AutoGazeSettings,
    pick: fn(&AutoGazeImages) -> Handle<Image>,
) -> (Vec<u8>, UploadTotals, MetricsSnapshot) {
    let options = HeadlessOptions {
        record: RecordOptions {
            frames: 1_000,
            warmup_frames: 0,
            timeout: Duration::from_secs(300),
            ..RecordOptions::default()
        },
        target: size(256, 128),
        ..HeadlessOptions::default()
    };
    let (mut app, _outcome) = headless_app(s, options);
    app.finish();
    app.cleanup();
    let mut steps = 0;
    while app.world().resource::<AutoGazeMetrics>().frames < FRAMES {
        app.update();
        steps += 1;
        assert!(steps < 200, "no progress");
    }
    app.world_mut().resource_mut::<AutoGazeSettings>().paused = true;
    let output = pick(app.world().resource::<AutoGazeImages>());
    let data: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let sink = data.clone();
    app.world_mut()
        .spawn(Readback::texture(output))
        .observe(move |event: On<ReadbackComplete>| {
            *sink.lock().unwrap() = Some(event.data.clone());
        });
    for _ in 0..60 {
        app.update();
        if data.lock().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let gpu = data
        .lock()
        .unwrap()
        .take()
        .expect("a readback of the output texture");
    assert!(!app.world().resource::<AdapterSummary>().name.is_empty());
    let metrics = app.world().resource::<AutoGazeMetrics>();
    (gpu, metrics.uploads, metrics.snapshot())
}

fn core_output(s: &AutoGazeSettings, frames: u64) -> Vec<u8> {
    let mut core = FramePipeline::new(&s.pipeline).unwrap();
    for _ in 0..frames {
        core.step().unwrap();
    }
    core.output().to_vec()
}

fn assert_same(gpu: &[u8], core: &[u8]) {
    assert_eq!(gpu.len(), core.len());
    let differing: Vec<usize> = (0..gpu.len()).filter(|&i| gpu[i] != core[i]).collect();
    let show: Vec<String> = differing
        .iter()
        .take(8)
        .map(|&i| {
            format!(
                "px ({}, {}) ch {}: {} vs {}",
                i / 4 % 128,
                i / 4 / 128,
                i % 4,
                gpu[i],
                core[i]
            )
        })
        .collect();
    assert!(
        differing.is_empty(),
        "{} bytes differ: {show:?}",
        differing.len()
    );
}

/// The Bevy path and the core path agree: after N frames the output texture
/// (read back from the GPU) equals the core compositor's output for the same
/// frames and plans, whether the output went up as host dirty regions or was
/// composed on the device.
#[test]
fn headless_render_matches_the_core_compositor() {
    let (gpu, s, uploads) = render_output(DisplayTransfer::Cpu, true);
    assert_same(&gpu, &core_output(&s, 6));
    // Something actually went up as partial writes, and nothing was copied
    // on the device.
    assert!(uploads.calls > 0 && uploads.bytes > 0, "{uploads:?}");
    assert_eq!(uploads.device_copies, 0);
}

/// Device composition, input panel hidden: the input still goes up (the
/// copies read it), the output's regions are device copies.
#[test]
fn headless_device_composition_matches_the_core_compositor() {
    let (gpu, s, uploads) = render_output(DisplayTransfer::Gpu, false);
    assert_same(&gpu, &core_output(&s, 6));
    assert!(uploads.device_copies > 0, "{uploads:?}");
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

/// The Burn bridge: the model input becomes a Burn tensor on Bevy's own
/// device and the tensor-to-texture pass packs it into the RGBA8 image; read
/// back, it equals the host's mapping of the core's model input (up to the
/// device's float-to-unorm rounding).
#[test]
fn headless_model_input_goes_from_a_burn_tensor_to_the_texture() {
    let mut s = settings(SourceKind::SyntheticLocal, size(128, 64));
    s.pipeline.preprocess = true;
    s.show_model_input = true;
    let (gpu, _, snap) = render_and_read(s.clone(), |h| h.model_input.clone());
    assert_eq!(snap.errors, 0, "{:?}", snap.last_error);
    assert!(
        snap.tensor_copies.0 >= 1 && snap.tensor_copies.1 == 0,
        "{:?}",
        snap.tensor_copies
    );
    assert!(snap.residency.iter().any(|r| r.contains("Burn tensor")));
    let mut core = FramePipeline::new(&s.pipeline).unwrap();
    for _ in 0..FRAMES {
        core.step().unwrap();
    }
    let side = core.preprocessor().model_size();
    let plane = side * side;
    let input = core.model_input().frame(0);
    let map = TexelMap::rgb(core.preprocessor().display_affine());
    // Readback rows are padded to 256 bytes.
    let row = (side * 4).div_ceil(256) * 256;
    assert_eq!(gpu.len(), row * side);
    let mut worst = 0i32;
    for y in 0..side {
        for x in 0..side {
            let px = y * side + x;
            for c in 0..4 {
                let want = if c == 3 {
                    255
                } else {
                    map.byte(c, input[c * plane + px])
                };
                let got = gpu[y * row + x * 4 + c];
                worst = worst.max((got as i32 - want as i32).abs());
            }
        }
    }
    assert!(worst <= 1, "max byte difference {worst}");
}

/// The web page's URL query goes through the command line's own parser.
#[test]
fn url_queries_parse_as_the_command_line_does() {
    use crate::cli::ViewerArgs;
    use clap::Parser;
    let query = "?source=static&frames=30&overlay=false&pan_speed=7%2C3&show-model-input";
    let from_url = ViewerArgs::from_query(query).unwrap();
    let from_cli = ViewerArgs::parse_from([
        "bevy_burn_autogaze",
        "--source",
        "static",
        "--frames",
        "30",
        "--overlay",
        "false",
        "--pan-speed",
        "7,3",
        "--show-model-input",
    ]);
    assert_eq!(from_url.settings(), from_cli.settings());
    assert_eq!(from_url.frames, 30);
    assert!(from_url.show_model_input && !from_url.overlay);
    assert_eq!(
        ViewerArgs::from_query("").unwrap().settings(),
        ViewerArgs::parse_from(["bevy_burn_autogaze"]).settings()
    );
    // Unknown flags, bad values and bad escapes are errors naming them.
    let unknown = ViewerArgs::from_query("bogus=1").unwrap_err();
    assert!(unknown.contains("--bogus"), "{unknown}");
    let bad = ViewerArgs::from_query("frames=many").unwrap_err();
    assert!(bad.contains("many") && bad.contains("--frames"), "{bad}");
    let escape = ViewerArgs::from_query("case=%zz").unwrap_err();
    assert!(escape.contains("bad escape"), "{escape}");
    // What the browser cannot do is refused by name.
    for (query, needle) in [
        ("headless", "headless"),
        ("source=images&images-dir=x", "images"),
        ("summary=s.json", "summary"),
        ("model-dir=m", "model-dir"),
        (
            "mask-source=autogaze&model-backend=wgpu",
            "model-backend=wgpu",
        ),
    ] {
        let e = ViewerArgs::from_query(query).unwrap_err();
        assert!(
            e.contains("not available in the browser") && e.contains(needle),
            "{e}"
        );
    }
}
