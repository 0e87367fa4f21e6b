//! Headless runs: no window (the camera renders into an offscreen image),
//! an unthrottled loop, N measured frames after a warm-up, then the perf
//! summary (the core's schema with its display section) and exit.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::app::{AppExit, ScheduleRunnerPlugin};
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::window::ExitCondition;
use bevy::winit::WinitPlugin;
use burn_autogaze::FrameSize;
use burn_autogaze::perf::{DisplaySummary, PerfRecorder, PerfSummary, RunMeta};
use burn_autogaze::timing::LatencySummary;

use crate::display::UploadTotals;
use crate::viewer::{PanelFit, ViewerPlugin};
use crate::{
    AdapterSummary, AutoGazeMetrics, AutoGazePlugin, AutoGazeRuntime, AutoGazeSettings,
    AutoGazeSystems,
};

/// What a headless run measures.
#[derive(Debug, Clone)]
pub struct HeadlessOptions {
    pub frames: usize,
    pub warmup_frames: usize,
    /// Where to write the summary JSON.
    pub summary: Option<PathBuf>,
    /// Case name written into the summary.
    pub case: String,
    /// Size of the offscreen render target (the "window").
    pub target: FrameSize,
    /// Give up (exit non-zero) after this long.
    pub timeout: Duration,
    /// Build profile of this binary (`release` for figures that count).
    pub profile: String,
    /// The panel scales fitted to their displayed width.
    pub fit: PanelFit,
}

impl Default for HeadlessOptions {
    fn default() -> Self {
        Self {
            frames: 120,
            warmup_frames: 10,
            summary: None,
            case: "viewer".into(),
            target: FrameSize {
                width: 1920,
                height: 1080,
            },
            timeout: Duration::from_secs(600),
            profile: if cfg!(debug_assertions) {
                "debug".into()
            } else {
                "release".into()
            },
            fit: PanelFit::default(),
        }
    }
}

/// The outcome a headless app leaves behind.
pub type HeadlessOutcome = Arc<Mutex<Option<Result<PerfSummary, String>>>>;

#[derive(Resource)]
struct Recording {
    options: HeadlessOptions,
    recorder: Option<PerfRecorder>,
    intervals: Vec<f64>,
    uploads: UploadTotals,
    transfers: std::collections::BTreeMap<String, u64>,
    seen: u64,
    measured: usize,
    started: Instant,
    outcome: HeadlessOutcome,
}

/// The headless app: Bevy without winit, rendering the viewer layout into
/// an offscreen image, recording the measured frames.
pub fn headless_app(
    settings: AutoGazeSettings,
    options: HeadlessOptions,
) -> (App, HeadlessOutcome) {
    let outcome: HeadlessOutcome = Arc::default();
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: None,
                exit_condition: ExitCondition::DontExit,
                ..default()
            })
            .set(RenderPlugin {
                synchronous_pipeline_compilation: true,
                ..default()
            })
            .disable::<WinitPlugin>(),
    )
    .add_plugins(ScheduleRunnerPlugin::run_loop(Duration::ZERO))
    .add_plugins(AutoGazePlugin::new(settings))
    .add_plugins(ViewerPlugin {
        target: Some(options.target),
        fit: options.fit,
    })
    .insert_resource(Recording {
        recorder: None,
        intervals: Vec::with_capacity(options.frames),
        uploads: UploadTotals::default(),
        transfers: Default::default(),
        seen: 0,
        measured: 0,
        started: Instant::now(),
        outcome: outcome.clone(),
        options,
    })
    .add_systems(Startup, |mut m: ResMut<AutoGazeMetrics>| {
        m.set_recording(true)
    })
    .add_systems(Last, record.after(AutoGazeSystems::Record));
    (app, outcome)
}

/// Runs a headless app to completion: the summary, or why there is none.
pub fn run_headless(
    settings: AutoGazeSettings,
    options: HeadlessOptions,
) -> Result<PerfSummary, String> {
    let (mut app, outcome) = headless_app(settings, options);
    let exit = app.run();
    let result = outcome.lock().unwrap_or_else(|p| p.into_inner()).take();
    match (result, exit) {
        (Some(r), _) => r,
        (None, AppExit::Success) => Err("the app exited without a summary".into()),
        (None, AppExit::Error(code)) => Err(format!("the app exited with code {code}")),
    }
}

fn finish(
    rec: &mut Recording,
    result: Result<PerfSummary, String>,
    exit: &mut MessageWriter<AppExit>,
) {
    let code = if result.is_ok() {
        AppExit::Success
    } else {
        AppExit::error()
    };
    *rec.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
    exit.write(code);
}

fn record(
    mut rec: ResMut<Recording>,
    metrics: Res<AutoGazeMetrics>,
    mut runtime: ResMut<AutoGazeRuntime>,
    settings: Res<AutoGazeSettings>,
    adapter: Res<AdapterSummary>,
    queue: Res<crate::display::UploadQueue>,
    mut exit: MessageWriter<AppExit>,
) {
    let rec = &mut *rec;
    if rec.outcome.lock().map(|o| o.is_some()).unwrap_or(true) {
        return;
    }
    if let Some(e) = runtime.setup_error() {
        let e = e.to_string();
        return finish(rec, Err(e), &mut exit);
    }
    if rec.started.elapsed() > rec.options.timeout {
        let e = format!(
            "timed out after {:?} with {} of {} measured frames",
            rec.options.timeout, rec.measured, rec.options.frames
        );
        return finish(rec, Err(e), &mut exit);
    }
    let Some(last) = metrics.last.filter(|l| l.index >= rec.seen) else {
        return;
    };
    rec.seen = last.index + 1;
    let frames = rec.options.frames;
    let recorder = rec
        .recorder
        .get_or_insert_with(|| PerfRecorder::new(frames, &settings.pipeline));
    if (last.index as usize) < rec.options.warmup_frames {
        // The measured window opens when the last warm-up frame is shown.
        if last.index as usize + 1 == rec.options.warmup_frames {
            recorder.start();
        }
        return;
    }
    let Some(pipeline) = runtime.pipeline() else {
        return;
    };
    recorder.record(&last.report, pipeline.current_frame());
    recorder.sample_memory(pipeline, || queue.staging_bytes());
    // The first measured frame after no warm-up has no predecessor: its
    // interval is its own stage time.
    let interval = last.interval.unwrap_or_else(|| last.report.times.total());
    rec.intervals.push(interval.as_secs_f64() * 1e3);
    rec.uploads.add(&last.uploads);
    if let Some(t) = last.transfer {
        *rec.transfers.entry(t.to_string()).or_default() += 1;
    }
    rec.measured += 1;
    if rec.measured < rec.options.frames {
        return;
    }
    let result = summary(rec, &mut runtime, &settings, &adapter);
    if let (Ok(s), Some(path)) = (&result, &rec.options.summary) {
        let written = serde_json::to_string_pretty(s)
            .map_err(|e| e.to_string())
            .and_then(|text| std::fs::write(path, text).map_err(|e| e.to_string()));
        if let Err(e) = written {
            let e = format!("cannot write {}: {e}", path.display());
            return finish(rec, Err(e), &mut exit);
        }
    }
    finish(rec, result, &mut exit);
}

fn summary(
    rec: &mut Recording,
    runtime: &mut AutoGazeRuntime,
    settings: &AutoGazeSettings,
    adapter: &AdapterSummary,
) -> Result<PerfSummary, String> {
    let pipeline = runtime
        .pipeline()
        .ok_or("no pipeline at the end of the run")?;
    let recorder = rec.recorder.as_ref().ok_or("no frames recorded")?;
    let meta = RunMeta {
        case: rec.options.case.clone(),
        warmup_frames: rec.options.warmup_frames,
        profile: rec.options.profile.clone(),
        revision: burn_autogaze::perf::revision(),
        date: burn_autogaze::perf::utc_now(),
        machine: burn_autogaze::perf::machine(),
        adapter: adapter.name.clone(),
    };
    let mut s = recorder.summary(pipeline, &settings.pipeline, &meta)?;
    let n = rec.measured as f64;
    s.display = Some(DisplaySummary {
        transfer: settings.display_transfer.to_string(),
        frame_interval_ms: LatencySummary::from_ms(&mut rec.intervals),
        bytes_uploaded_per_frame: rec.uploads.bytes as f64 / n,
        upload_calls_per_frame: rec.uploads.calls as f64 / n,
        full_uploads: rec.uploads.full,
        device_copies_per_frame: rec.uploads.device_copies as f64 / n,
        device_copy_bytes_per_frame: rec.uploads.device_copy_bytes as f64 / n,
        transfer_histogram: rec.transfers.clone(),
        readbacks: 0,
        residency: crate::residency(settings),
        adapter_backend: adapter.backend.clone(),
        adapter_type: adapter.device_type.clone(),
        config: serde_json::to_value(settings).map_err(|e| e.to_string())?,
    });
    // Wall-clock throughput of the displayed frames.
    s.validate()
        .map_err(|p| format!("{}: invalid summary: {}", s.case, p.join("; ")))?;
    Ok(s)
}
