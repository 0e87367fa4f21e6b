//! Viewer-feature tests: headless renders on the real renderer (lavapipe
//! here) whose textures must equal the core's output for the same frames,
//! and the web page's URL query.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::prelude::*;
use bevy::render::gpu_readback::{Readback, ReadbackComplete};
use burn_autogaze::FrameSize;
use burn_autogaze::pipeline::FramePipeline;
use burn_autogaze::source::SourceKind;

use crate::headless::{HeadlessOptions, headless_app};
use crate::recording::RecordOptions;
use crate::tests::settings;
use crate::*;

fn size(w: u32, h: u32) -> FrameSize {
    FrameSize::new(w, h).unwrap()
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

/// Headless options: a 256 x 128 target, `frames` recorded after
/// `warmup_frames`.
fn small_headless(frames: usize, warmup_frames: usize) -> HeadlessOptions {
    HeadlessOptions {
        record: RecordOptions {
            frames,
            warmup_frames,
            timeout: Duration::from_secs(300),
            ..RecordOptions::default()
        },
        target: size(256, 128),
        ..HeadlessOptions::default()
    }
}

/// A headless app (256 x 128 target, no warm-up) updated until `frames`
/// frames were recorded.
fn headless_after(s: AutoGazeSettings, frames: u64) -> App {
    let (mut app, _outcome) = headless_app(s, small_headless(1_000, 0));
    app.finish();
    app.cleanup();
    let mut steps = 0;
    while app.world().resource::<AutoGazeMetrics>().frames < frames {
        app.update();
        steps += 1;
        assert!(steps < 200, "no progress");
    }
    app
}

/// Renders `FRAMES` frames headless and reads the image `pick` names back
/// from the GPU (rows as the readback pads them).
fn render_and_read(
    s: AutoGazeSettings,
    pick: fn(&AutoGazeImages) -> Handle<Image>,
) -> (Vec<u8>, UploadTotals, MetricsSnapshot) {
    let (gpu, app) = render_and_read_app(s, pick);
    let metrics = app.world().resource::<AutoGazeMetrics>();
    (gpu, metrics.uploads, metrics.snapshot())
}

/// [`render_and_read`], the app kept.
fn render_and_read_app(
    s: AutoGazeSettings,
    pick: fn(&AutoGazeImages) -> Handle<Image>,
) -> (Vec<u8>, App) {
    let mut app = headless_after(s, FRAMES);
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
    (gpu, app)
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

/// Checks that the app's compositor kept no host output (off, never
/// written); returns its frame and keyframe counts.
fn host_output_untouched(app: &mut App) -> (u64, u64) {
    let mut runtime = app.world_mut().resource_mut::<AutoGazeRuntime>();
    let pipeline = runtime.pipeline().expect("a pipeline");
    assert!(!pipeline.compositor().options().host_output);
    assert!(
        pipeline.output().iter().all(|&v| v == 0),
        "host output written"
    );
    pipeline.compositor().counts()
}

/// With the model as the mask source and the GPU transfer, the device
/// composes alone: the host compositor only decides the regions (its output
/// is never written) and the output texture equals the core compositor's
/// output all the same.
#[test]
fn headless_device_composition_without_the_host_output() {
    let mut s = settings(SourceKind::SyntheticLocal, size(128, 64));
    s.display_transfer = DisplayTransfer::Gpu;
    s.show_input = false;
    s.pipeline.mask_source = burn_autogaze::mask_source::MaskSourceKind::Autogaze;
    s.pipeline.model.gazing_ratio = 0.05;
    // PSNR is measured on the host output (while recording, by default).
    s.psnr = false;
    let (gpu, mut app) = render_and_read_app(s.clone(), |h| h.output.clone());
    assert_same(&gpu, &core_output(&s, FRAMES));
    let uploads = app.world().resource::<AutoGazeMetrics>().uploads;
    assert!(uploads.device_copies > 0, "{uploads:?}");
    let (frames, keyframes) = host_output_untouched(&mut app);
    assert!(frames >= FRAMES && keyframes == 1, "{frames} / {keyframes}");
}

/// Composing alone with PSNR on (the default while recording), the device
/// measures it: every PSNR the viewer reports is one the host compositor
/// reports for a frame of the same run (read back a frame or two late),
/// and the host output is never written.
#[test]
fn headless_device_psnr_equals_the_host_psnr() {
    let mut s = settings(SourceKind::SyntheticLocal, size(128, 64));
    s.display_transfer = DisplayTransfer::Gpu;
    s.pipeline.mask_source = burn_autogaze::mask_source::MaskSourceKind::Autogaze;
    s.pipeline.model.gazing_ratio = 0.05;
    // History outside the mask (a full refresh would make every PSNR inf).
    s.pipeline.compositor.dispatch = burn_autogaze::interframe::Dispatch::Sparse;
    assert!(s.psnr);
    let mut app = headless_after(s.clone(), 2);
    let mut seen = Vec::new();
    let mut last = 0;
    for _ in 0..40 {
        app.update();
        let m = app.world().resource::<AutoGazeMetrics>();
        if m.frames > last {
            last = m.frames;
            seen.extend(m.snapshot().psnr_db);
        }
    }
    let m = app.world().resource::<AutoGazeMetrics>();
    assert_eq!(m.errors, 0, "{:?}", m.last_error);
    assert!(m.uploads.device_psnr > 0, "{:?}", m.uploads);
    let frames = last + 2;
    let mut options = s.pipeline.clone();
    options.compositor.measure_psnr = true;
    let mut core = FramePipeline::new(&options).unwrap();
    let host: Vec<f64> = (0..frames)
        .filter_map(|_| core.step().unwrap().compose.psnr_db)
        .collect();
    assert!(
        seen.iter().any(|db| db.is_finite()),
        "a finite device PSNR arrived: {seen:?}"
    );
    for db in &seen {
        assert!(
            host.iter().any(|h| h == db || (h - db).abs() < 1e-9),
            "{db} not among the host's {host:?}"
        );
    }
    host_output_untouched(&mut app);
}

/// The mask panel drawn on the device (GPU transfer) equals the host's
/// panel of the same frame and plan, byte for byte, and no panel pixels
/// went up: only the rectangles.
#[test]
fn headless_device_mask_panel_matches_the_host_panel() {
    let mut s = settings(SourceKind::SyntheticLocal, size(128, 64));
    s.display_transfer = DisplayTransfer::Gpu;
    s.show_mask = true;
    let (gpu, app) = render_and_read_app(s.clone(), |h| h.mask.clone());
    let scale = app
        .world()
        .resource::<AutoGazeSettings>()
        .mask_panel_scale
        .max(1);
    let metrics = app.world().resource::<AutoGazeMetrics>();
    assert_eq!(metrics.errors, 0, "{:?}", metrics.last_error);
    assert!(metrics.uploads.device_panels > 0, "{:?}", metrics.uploads);
    let mut core = FramePipeline::new(&s.pipeline).unwrap();
    for _ in 0..FRAMES {
        core.step().unwrap();
    }
    let frame = core.current_frame().unwrap();
    let panel = burn_autogaze::mask::panel_size(frame.size(), scale);
    let mut host = vec![0u8; panel.rgba_len()];
    burn_autogaze::mask::render_panel_scaled(frame, core.plan(), scale, &mut host).unwrap();
    assert!(core.plan().rects().len() > 1, "a plan with rectangles");
    // The readback pads rows to 256 bytes.
    let row = panel.width as usize * 4;
    let padded = row.div_ceil(256) * 256;
    let gpu: Vec<u8> = gpu
        .chunks(padded)
        .take(panel.height as usize)
        .flat_map(|r| r[..row].to_vec())
        .collect();
    assert_eq!(gpu.len(), host.len());
    let differing = gpu.iter().zip(&host).filter(|(a, b)| a != b).count();
    assert_eq!(
        differing, 0,
        "{differing} bytes of the {scale}x panel differ"
    );
}

/// A frame wider than the device's textures (2048 on WebGL2; lavapipe's
/// 16384 is the frame limit itself, so the check is driven directly): a
/// typed error naming the limit, reported once a size; a fitting size
/// passes.
#[test]
fn a_frame_beyond_the_texture_limit_is_a_typed_error() {
    let mut refused = None;
    let big = size(3840, 2160);
    let first = crate::driver::texture_check(big, 2048, &mut refused).unwrap_err();
    let message = first.expect("reported the first time");
    assert!(
        message.contains("3840x2160") && message.contains("max_texture_dimension_2d"),
        "{message}"
    );
    assert_eq!(
        crate::driver::texture_check(big, 2048, &mut refused),
        Err(None)
    );
    assert_eq!(
        crate::driver::texture_check(size(1920, 1080), 2048, &mut refused),
        Ok(())
    );
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
    // A flag as a query takes `NAME`, `NAME=true` or `NAME=false`.
    let flag =
        |q: &str| ViewerArgs::from_query(q).map(|a| (a.show_model_input, a.inline_inference));
    assert_eq!(flag("show-model-input&inline-inference"), Ok((true, true)));
    assert_eq!(
        flag("show-model-input=true&inline-inference=false"),
        Ok((true, false))
    );
    assert_eq!(flag("show_model_input=false"), Ok((false, false)));
    let weights = |q: &str| ViewerArgs::from_query(q).map(|a| a.pipeline.random_weights);
    assert_eq!(weights("random-weights=true"), Ok(true));
    assert_eq!(weights("random-weights"), Ok(true));
    assert_eq!(weights("random-weights=false"), Ok(false));
    let bad = flag("inline-inference=maybe").unwrap_err();
    assert!(
        bad.contains("--inline-inference is a flag") && bad.contains("maybe"),
        "{bad}"
    );
    // Unknown flags, bad values and bad escapes are errors naming them.
    let unknown = ViewerArgs::from_query("bogus=1").unwrap_err();
    assert!(unknown.contains("--bogus"), "{unknown}");
    let bad = ViewerArgs::from_query("frames=many").unwrap_err();
    assert!(bad.contains("many") && bad.contains("--frames"), "{bad}");
    let escape = ViewerArgs::from_query("case=%zz").unwrap_err();
    assert!(escape.contains("bad escape"), "{escape}");
    // Values beyond the limits are errors naming the value and the limit
    // (a large size once overflowed a multiplication on wasm32).
    for (query, needles) in [
        ("size=100000x100000", &["100000x100000", "16384"][..]),
        ("size=16384x16384", &["16384x16384", "MAX_FRAME_PIXELS"]),
        ("target-size=99999x2", &["99999x2", "16384"]),
        ("source-fps=1e10", &["1e10", "MAX_FPS"]),
        ("source-fps=1e-20", &["1e-20", "MIN_FPS"]),
        ("frames=1000000000000", &["1000000000000", "--frames"]),
        (
            "warmup-frames=1000000000",
            &["1000000000", "--warmup-frames"],
        ),
        ("anyres-tiles=65", &["65", "--anyres-tiles"]),
        ("prefetch=100000", &["100000", "--prefetch"]),
        ("timeout-s=0", &["0", "--timeout-s"]),
    ] {
        let e = ViewerArgs::from_query(query).unwrap_err();
        assert!(needles.iter().all(|n| e.contains(n)), "{query}: {e}");
    }
    let long = format!(
        "case={}",
        "a".repeat(burn_autogaze::limits::MAX_QUERY_BYTES)
    );
    let e = ViewerArgs::from_query(&long).unwrap_err();
    assert!(e.contains("MAX_QUERY_BYTES"), "{e}");
    // What the browser cannot do is refused by name.
    for (query, needle) in [
        ("headless", "headless"),
        ("source=images&images-dir=x", "images"),
        ("summary=s.json", "summary"),
        ("model-dir=m", "model-dir"),
        // These tests see the WebGL2 bundle (no `web-webgpu` feature).
        ("mask-source=autogaze", "WebGL2 has no compute shaders"),
        ("model-backend=wgpu", "model-backend=wgpu"),
    ] {
        let e = ViewerArgs::from_query(query).unwrap_err();
        assert!(
            e.contains("not available in the browser") && e.contains(needle),
            "{e}"
        );
    }
}

/// The model on wgpu at ratio 0.05 (13 tokens a frame), on a small
/// local-motion source.
fn wgpu_model_settings() -> AutoGazeSettings {
    use burn_autogaze::mask_source::{MaskSourceKind, ModelBackend};
    let mut s = settings(SourceKind::SyntheticLocal, size(96, 54));
    s.pipeline.mask_source = MaskSourceKind::Autogaze;
    s.pipeline.model.backend = ModelBackend::Wgpu;
    s.pipeline.model.gazing_ratio = 0.05;
    s
}

/// `--model-backend wgpu` runs the model on Bevy's own render device and
/// queue (the `BurnDevice` registered with Burn), not on a second device:
/// the pipeline's mask source reports that device, the residency says so,
/// and its masks come from the fused engine's kernels.
#[test]
fn the_wgpu_model_runs_on_bevys_render_device() {
    let mut app = headless_after(wgpu_model_settings(), 2);
    let bevy = app.world().resource::<BurnDevice>().0.clone();
    let mut runtime = app.world_mut().resource_mut::<AutoGazeRuntime>();
    let placement = runtime
        .model_placement()
        .expect("the model is on wgpu")
        .to_string();
    assert!(placement.contains("Bevy's render device"), "{placement}");
    let pipeline = runtime.pipeline().expect("a pipeline");
    assert_eq!(
        pipeline.mask_source_device(),
        Some(format!("{bevy:?}").as_str())
    );
    assert_ne!(
        format!("{bevy:?}"),
        format!("{:?}", burn::backend::wgpu::WgpuDevice::default())
    );
    let metrics = app.world().resource::<AutoGazeMetrics>();
    assert!(
        metrics
            .residency
            .iter()
            .any(|l| l.contains("Bevy's render device"))
    );
    let last = metrics.last.as_ref().expect("a frame");
    let work = last
        .report
        .times
        .model_work()
        .expect("the model ran inline");
    assert_eq!((work.engine, work.readbacks), ("fused-gpu", 1));
    // The overlay's model rows read the same counts.
    assert_eq!(metrics.snapshot().model, Some(work));
    assert_eq!(last.report.plan.tokens, 13);
}

/// Bevy's render device lost under the model (it runs there): the app keeps
/// stepping frames, the model hands over to the host, the fault is named
/// with its kind in the failures, the residency and the pipeline, and
/// nothing panics.
#[test]
fn a_lost_render_device_moves_the_model_to_the_host_and_the_app_goes_on() {
    use burn_autogaze::device_fault::FaultKind;
    let mut app = headless_after(wgpu_model_settings(), 2);
    app.world()
        .resource::<bevy::render::renderer::RenderDevice>()
        .wgpu_device()
        .destroy();
    let frames = app.world().resource::<AutoGazeMetrics>().frames;
    for _ in 0..40 {
        app.update();
    }
    // Bevy's default handler would have quit; the plugin's stops rendering.
    assert_eq!(app.should_exit(), None);
    let metrics = app.world().resource::<AutoGazeMetrics>();
    assert!(
        metrics.frames >= frames + 10,
        "{} -> {}",
        frames,
        metrics.frames
    );
    let last = metrics.last.as_ref().expect("a frame");
    assert_eq!(last.report.plan.tokens, 13);
    assert!(
        metrics
            .residency
            .iter()
            .any(|l| l.contains("device fault (lost)")),
        "{:?}",
        metrics.residency
    );
    let error = metrics.last_error.clone().unwrap_or_default();
    let mut runtime = app.world_mut().resource_mut::<AutoGazeRuntime>();
    let fault = runtime.device_failed().expect("the fault is kept").clone();
    assert_eq!(fault.kind, FaultKind::Lost, "{fault:?} / {error}");
    assert_eq!(fault.fallback.as_deref(), Some("Cpu"));
    let pipeline = runtime.pipeline().expect("a pipeline");
    assert_eq!(pipeline.mask_source_device(), Some("Cpu"));
    assert!(pipeline.compositor_options_mut().host_output);
}

/// GPU stages are timed by timestamp queries where the device has them
/// (lavapipe's Vulkan does): with the GPU transfer the device composition's
/// time arrives a frame or more later, without a wait, and the overlay
/// shows it.
#[test]
fn gpu_stages_are_timed_by_timestamp_queries() {
    let mut s = settings(SourceKind::SyntheticPan, size(96, 54));
    s.display_transfer = DisplayTransfer::Gpu;
    let app = headless_after(s, 12);
    let snap = app.world().resource::<AutoGazeMetrics>().snapshot();
    assert_eq!(snap.gpu_timing.as_deref(), Some("timestamp queries"));
    let (_, ms) = snap
        .gpu_stages
        .iter()
        .find(|(stage, _)| *stage == "device_compose")
        .copied()
        .expect("the device composition is timed");
    assert!(ms > 0.0 && ms < 1000.0, "{ms} ms");
    let rows = crate::overlay::counter_rows(&snap);
    assert!(
        rows.iter()
            .any(|(k, v)| *k == "GPU copies" && v.ends_with(" ms"))
    );
}

/// The model's device preprocessing reads the display's frame: with the
/// GPU transfer the render world fills the model's asked buffer from the
/// frame's texture (`lend_pass`: the lend pass at a width whose rows miss
/// the copy alignment, a texture-to-buffer copy at one that meets it), and
/// the model input made from it equals the one made from an upload of the
/// frame, exactly.
#[test]
fn the_display_lends_its_frame_texture_to_the_model_exactly() {
    lend_exactly(size(96, 54));
    lend_exactly(size(128, 64));
}

fn lend_exactly(frame_size: FrameSize) {
    use burn_autogaze::preprocess::{DevicePreprocessor, FrameShare, Preprocessor};
    let mut s = settings(SourceKind::Static, frame_size);
    s.display_transfer = DisplayTransfer::Gpu;
    let mut app = headless_after(s, 2);
    let device = app.world().resource::<BurnDevice>().0.clone();
    let share = Arc::new(FrameShare::new(Duration::from_secs(60)));
    let mut runtime = app.world_mut().resource_mut::<AutoGazeRuntime>();
    runtime.frame_share = Some(Arc::clone(&share));
    let frame = runtime
        .pipeline()
        .and_then(|p| p.current_frame().cloned())
        .expect("a frame");
    let mut plain = DevicePreprocessor::new(Preprocessor::release(), &device);
    let read = |t: burn::tensor::Tensor<crate::burn_bridge::BurnBackend, 3>| {
        t.into_data().to_vec::<f32>().unwrap()
    };
    let expected = read(plain.frame_input(&frame).unwrap());
    let mut lent = DevicePreprocessor::new(Preprocessor::release(), &device);
    lent.share_frames(Arc::clone(&share));
    let model = std::thread::spawn({
        let frame = frame.clone();
        move || {
            let input = lent.frame_input(&frame).map(|t| t.into_data());
            (input, lent.counts())
        }
    });
    let mut steps = 0;
    while !model.is_finished() {
        app.update();
        steps += 1;
        assert!(steps < 200, "the ask was never served");
    }
    // The render world's totals reach the metrics an update later.
    app.update();
    let (input, counts) = model.join().unwrap();
    let got = input.unwrap().to_vec::<f32>().unwrap();
    assert_eq!(got, expected, "the lent frame's model input");
    assert_eq!(counts.lent_frames, 1);
    let c = share.counts();
    assert_eq!((c.asked, c.lent, c.refused, c.withdrawn), (1, 1, 0, 0));
    let uploads = app.world().resource::<AutoGazeMetrics>().uploads;
    assert_eq!(uploads.device_lends, 1);
}

/// `--model-backend wgpu --model-preprocess device --display-transfer gpu`,
/// decoupled: the model's frames come from the display's upload (lent, not
/// uploaded again), its masks keep coming, and its counts say so.
#[test]
fn the_decoupled_device_model_reads_the_displays_upload() {
    use burn_autogaze::mask_source::InputPlace;
    let mut s = wgpu_model_settings();
    s.pipeline.decoupled = true;
    s.pipeline.model.preprocess = InputPlace::Device;
    s.display_transfer = DisplayTransfer::Gpu;
    let mut app = headless_after(s, 2);
    let mut steps = 0;
    let share = loop {
        let runtime = app.world().resource::<AutoGazeRuntime>();
        let share = runtime.frame_share.clone().expect("the display lends");
        let metrics = app.world().resource::<AutoGazeMetrics>();
        let lent = metrics.model.is_some_and(|m| m.lent_frames == 1);
        if share.counts().lent >= 2 && lent {
            break share;
        }
        app.update();
        steps += 1;
        assert!(steps < 400, "no frame lent: {:?}", share.counts());
    };
    // Paused, the render world's totals catch up.
    app.world_mut().resource_mut::<AutoGazeSettings>().paused = true;
    for _ in 0..3 {
        app.update();
    }
    let metrics = app.world().resource::<AutoGazeMetrics>();
    assert!(metrics.uploads.device_lends >= 2);
    assert_eq!(metrics.worker.map(|w| w.failed), Some(0));
    let last = metrics.last.as_ref().expect("a frame");
    assert_eq!(last.report.plan.tokens, 13);
    println!("lends: {:?}, model: {:?}", share.counts(), metrics.model);
}

/// `input_from_output`: on a pan, whose every output is a whole copy of
/// the frame, the scaled input panel is neither made nor uploaded; the
/// plugin names the output image for the input panel, and the viewer's
/// input panel shows it. Off, the same run uploads the panel each frame.
#[test]
fn a_whole_copy_output_is_the_input_panel() {
    let run = |on: bool| {
        let mut s = settings(SourceKind::SyntheticPan, size(96, 54));
        s.display_transfer = DisplayTransfer::Cpu;
        s.input_panel_scale = 2;
        s.input_from_output = on;
        let mut app = headless_after(s, 8);
        // Paused, the render world's totals catch up with the frames.
        app.world_mut().resource_mut::<AutoGazeSettings>().paused = true;
        for _ in 0..3 {
            app.update();
        }
        let handles = app.world().resource::<AutoGazeImages>().clone();
        let shown = app
            .world_mut()
            .query_filtered::<&ImageNode, With<crate::viewer::InputImage>>()
            .single(app.world())
            .expect("the input panel")
            .image
            .clone();
        let metrics = app.world().resource::<AutoGazeMetrics>();
        let full = metrics
            .snapshot()
            .dispatch_histogram
            .get(&burn_autogaze::interframe::ComposePath::Full)
            .copied();
        (handles, shown, metrics.uploads.bytes, metrics.frames, full)
    };
    let (handles, shown, bytes_on, frames_on, full) = run(true);
    assert!(
        full.unwrap_or(0) >= 6,
        "pan frames are whole copies: {full:?}"
    );
    assert!(handles.input_shows_output);
    assert_eq!(&shown, handles.input_view());
    assert_eq!(shown, handles.output);
    let (handles, shown, bytes_off, frames_off, _) = run(false);
    assert!(!handles.input_shows_output);
    assert_eq!(shown, handles.input);
    // Per frame, the on run saves about the panel's bytes (48 x 27 RGBA).
    let per = |b: u64, f: u64| b as f64 / f as f64;
    let saved = per(bytes_off, frames_off) - per(bytes_on, frames_on);
    let panel = (48 * 27 * 4) as f64;
    assert!(
        saved > 0.5 * panel,
        "saved {saved} bytes a frame: {bytes_on} B / {frames_on} on, {bytes_off} B / {frames_off} off"
    );
}

/// Bevy's render device lost while the mask source is not on it (here
/// patch-diff, on the host): the run still ends with its summary, and the
/// summary names the fault (the runtime's; the pipeline saw none).
#[test]
fn a_lost_render_device_is_in_the_summary_whatever_the_mask_source() {
    use burn_autogaze::device_fault::FaultKind;
    let s = settings(SourceKind::SyntheticPan, size(96, 54));
    let (mut app, outcome) = headless_app(s, small_headless(12, 2));
    app.finish();
    app.cleanup();
    for _ in 0..3 {
        app.update();
    }
    app.world()
        .resource::<bevy::render::renderer::RenderDevice>()
        .wgpu_device()
        .destroy();
    let mut steps = 0;
    while crate::recording::outcome_ref(&outcome).is_none() {
        app.update();
        steps += 1;
        assert!(steps < 300, "no summary");
    }
    let summary = crate::recording::outcome_ref(&outcome)
        .take()
        .expect("an outcome")
        .expect("a summary");
    let fault = summary.device_fault.expect("the fault in the summary");
    assert_eq!(fault.kind, FaultKind::Lost, "{fault:?}");
}
