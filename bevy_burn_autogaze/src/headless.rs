//! Headless runs: no window (the camera renders into an offscreen image),
//! an unthrottled loop, N measured frames after a warm-up, then the perf
//! summary (the core's schema with its display section) and exit.

use std::path::PathBuf;
use std::time::Duration;

use bevy::app::{AppExit, ScheduleRunnerPlugin};
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::window::ExitCondition;
use bevy::winit::WinitPlugin;
use burn_autogaze::FrameSize;
use burn_autogaze::perf::PerfSummary;

use crate::recording::{
    RecordOptions, RecordingDone, SummaryOutcome, SummaryRecordingPlugin, outcome_ref,
};
use crate::viewer::{PanelFit, ViewerPlugin};
use crate::{AutoGazePlugin, AutoGazeSettings};

/// What a headless run measures and where it goes.
#[derive(Debug, Clone)]
pub struct HeadlessOptions {
    /// Frames measured, warm-up, case name, timeout.
    pub record: RecordOptions,
    /// Where to write the summary JSON.
    pub summary: Option<PathBuf>,
    /// Size of the offscreen render target (the "window").
    pub target: FrameSize,
    /// The panel scales fitted to their displayed width.
    pub fit: PanelFit,
    /// Where to write a PNG of the render target once the run is measured
    /// (input | mask | output with the overlay, as a window would show).
    pub screenshot: Option<PathBuf>,
}

impl Default for HeadlessOptions {
    fn default() -> Self {
        Self {
            record: RecordOptions::default(),
            summary: None,
            target: FrameSize {
                width: 1920,
                height: 1080,
            },
            fit: PanelFit::default(),
            screenshot: None,
        }
    }
}

/// The outcome a headless app leaves behind.
pub type HeadlessOutcome = SummaryOutcome;

/// Where the summary goes once recorded.
#[derive(Resource)]
struct SummaryFile {
    path: Option<PathBuf>,
    outcome: SummaryOutcome,
    exiting: bool,
    /// The screenshot asked for, and the readback bringing it.
    screenshot: Option<PathBuf>,
    shot: Option<Shot>,
    /// The render target's size.
    target: FrameSize,
}

/// A readback of the render target under way.
struct Shot {
    data: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    updates: u32,
}

/// Frames a screenshot's readback may take before the run gives up on it.
const SHOT_UPDATES: u32 = 240;

/// Whether no Wayland session can exist here: `XDG_RUNTIME_DIR` unset (or
/// not an absolute path) and `WAYLAND_DISPLAY` not an absolute socket path.
/// Mesa's Vulkan device-select layer then still asks libwayland for a
/// display, which prints `error: XDG_RUNTIME_DIR is invalid or not set in
/// the environment.` on every instance; [`QUIET_DEVICE_SELECT`] turns that
/// layer off (wgpu chooses the adapter itself either way).
pub fn no_wayland_session() -> bool {
    let absolute =
        |name: &str| std::env::var_os(name).is_some_and(|v| v.to_string_lossy().starts_with('/'));
    !absolute("XDG_RUNTIME_DIR") && !absolute("WAYLAND_DISPLAY")
}

/// The environment variable (and value) that turns Mesa's Vulkan
/// device-select layer off; set before the first wgpu instance where
/// [`no_wayland_session`].
pub const QUIET_DEVICE_SELECT: (&str, &str) = ("NODEVICE_SELECT", "1");

/// The headless app: Bevy without winit, rendering the viewer layout into
/// an offscreen image, recording the measured frames.
pub fn headless_app(
    settings: AutoGazeSettings,
    options: HeadlessOptions,
) -> (App, HeadlessOutcome) {
    let outcome: HeadlessOutcome = SummaryOutcome::default();
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
    .add_plugins(SummaryRecordingPlugin {
        options: options.record,
        outcome: outcome.clone(),
    })
    .insert_resource(SummaryFile {
        path: options.summary,
        outcome: outcome.clone(),
        exiting: false,
        screenshot: options.screenshot,
        shot: None,
        target: options.target,
    })
    .add_systems(Last, write_and_exit.after(RecordingDone));
    if let Some(delay) = test_slowdown() {
        app.add_systems(Update, move || std::thread::sleep(delay));
    }
    (app, outcome)
}

/// The environment variable of [`test_slowdown`].
pub const TEST_SLOWDOWN_ENV: &str = "AUTOGAZE_TEST_SLOWDOWN_MS";

/// Test only: `AUTOGAZE_TEST_SLOWDOWN_MS=N` (1 to 1000) makes every frame
/// of a headless run sleep N ms, simulating a slower build for the
/// regression gate's own tests (`cargo xtask bevy-perf-matrix
/// --against-bin`). Never set it for a measurement.
pub fn test_slowdown() -> Option<Duration> {
    let ms: u64 = std::env::var(TEST_SLOWDOWN_ENV).ok()?.trim().parse().ok()?;
    (1..=1000).contains(&ms).then(|| Duration::from_millis(ms))
}

/// Runs a headless app to completion: the summary, or why there is none.
pub fn run_headless(
    settings: AutoGazeSettings,
    options: HeadlessOptions,
) -> Result<PerfSummary, String> {
    let (mut app, outcome) = headless_app(settings, options);
    let exit = app.run();
    let result = outcome_ref(&outcome).take();
    match (result, exit) {
        (Some(r), _) => r,
        (None, AppExit::Success) => Err("the app exited without a summary".into()),
        (None, AppExit::Error(code)) => Err(format!("the app exited with code {code}")),
    }
}

/// Once the summary is recorded: write it, take the screenshot when one is
/// asked for, then exit (non-zero on error).
fn write_and_exit(
    mut commands: Commands,
    mut file: ResMut<SummaryFile>,
    target: Option<Res<crate::viewer::ViewerTarget>>,
    mut exit: MessageWriter<AppExit>,
) {
    if file.exiting {
        return;
    }
    let file = &mut *file;
    let mut outcome = outcome_ref(&file.outcome);
    let Some(result) = outcome.as_mut() else {
        return;
    };
    if result.is_ok()
        && let Some(path) = file.screenshot.clone()
    {
        match screenshot_step(
            &mut commands,
            &mut file.shot,
            target.as_deref(),
            &path,
            file.target,
        ) {
            Ok(false) => return, // the readback is under way
            Ok(true) => {}
            Err(e) => *result = Err(e),
        }
    }
    if let (Ok(s), Some(path)) = (&*result, &file.path) {
        let written = serde_json::to_string_pretty(s)
            .map_err(|e| e.to_string())
            .and_then(|text| std::fs::write(path, text).map_err(|e| e.to_string()));
        if let Err(e) = written {
            *result = Err(format!("cannot write {}: {e}", path.display()));
        }
    }
    let code = if result.is_ok() {
        AppExit::Success
    } else {
        AppExit::error()
    };
    drop(outcome);
    file.exiting = true;
    exit.write(code);
}

/// One update of a screenshot: starts the readback of the render target,
/// then, once its bytes are here, writes the PNG. `Ok(true)` when written.
fn screenshot_step(
    commands: &mut Commands,
    shot: &mut Option<Shot>,
    target: Option<&crate::viewer::ViewerTarget>,
    path: &std::path::Path,
    size: FrameSize,
) -> Result<bool, String> {
    use bevy::render::gpu_readback::{Readback, ReadbackComplete};
    let Some(target) = target else {
        return Err("screenshot: the viewer has no offscreen target".into());
    };
    let shot = shot.get_or_insert_with(|| {
        let data: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>> = std::sync::Arc::default();
        let sink = std::sync::Arc::clone(&data);
        commands.spawn(Readback::texture(target.0.clone())).observe(
            move |event: On<ReadbackComplete>, mut commands: Commands| {
                *sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(event.data.clone());
                commands.entity(event.entity).despawn();
            },
        );
        Shot { data, updates: 0 }
    });
    shot.updates += 1;
    let Some(bytes) = shot.data.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return if shot.updates > SHOT_UPDATES {
            Err(format!(
                "screenshot: no readback after {SHOT_UPDATES} frames"
            ))
        } else {
            Ok(false)
        };
    };
    write_png(path, &bytes, size).map(|()| true)
}

/// Writes a readback of an RGBA8 texture of `size` (rows padded to 256
/// bytes, as wgpu copies them) as a PNG.
pub fn write_png(path: &std::path::Path, bytes: &[u8], size: FrameSize) -> Result<(), String> {
    let (w, h) = (size.width as usize, size.height as usize);
    let row = w * 4;
    let stride = row.div_ceil(256) * 256;
    if bytes.len() < stride * (h - 1) + row {
        return Err(format!(
            "screenshot: {} bytes read back for a {size} target",
            bytes.len()
        ));
    }
    let mut rgba = Vec::with_capacity(row * h);
    for y in 0..h {
        rgba.extend_from_slice(&bytes[y * stride..y * stride + row]);
    }
    ::image::save_buffer(
        path,
        &rgba,
        size.width,
        size.height,
        ::image::ExtendedColorType::Rgba8,
    )
    .map_err(|e| format!("screenshot: cannot write {}: {e}", path.display()))
}
