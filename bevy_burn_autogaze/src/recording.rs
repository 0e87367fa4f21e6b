//! Recording a perf summary from a running viewer: N measured frames after
//! a warm-up, then the core's summary schema with its display section. The
//! headless viewer writes it and exits; the web viewer publishes it on the
//! page. One recorder serves both.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::prelude::*;
use burn_autogaze::perf::{DisplaySummary, PerfRecorder, PerfSummary, RunMeta};
use burn_autogaze::timing::LatencySummary;
use web_time::Instant;

use crate::alloc_count;
use crate::display::UploadTotals;
use crate::{AdapterSummary, AutoGazeMetrics, AutoGazeRuntime, AutoGazeSettings, AutoGazeSystems};

/// What a recording measures.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// Measured frames.
    pub frames: usize,
    /// Frames shown before the measurement starts.
    pub warmup_frames: usize,
    /// Warm up until the first mask is applied too (at least
    /// `warmup_frames`): a model lane's first inference compiles its
    /// kernels, which would otherwise fill the window with maskless frames.
    pub warmup_until_mask: bool,
    /// Case name written into the summary.
    pub case: String,
    /// Build profile of this binary (`release` for figures that count).
    pub profile: String,
    /// Give up (an error outcome) after this long.
    pub timeout: Duration,
}

impl Default for RecordOptions {
    fn default() -> Self {
        Self {
            frames: 120,
            warmup_frames: 10,
            warmup_until_mask: false,
            case: "viewer".into(),
            profile: if cfg!(debug_assertions) {
                "debug".into()
            } else {
                "release".into()
            },
            timeout: Duration::from_secs(600),
        }
    }
}

/// The summary a recording leaves behind (or why there is none), once done.
pub type SummaryOutcome = Arc<Mutex<Option<Result<PerfSummary, String>>>>;

/// Reads an outcome (a poisoned lock still holds the value).
pub(crate) fn outcome_ref(
    outcome: &SummaryOutcome,
) -> std::sync::MutexGuard<'_, Option<Result<PerfSummary, String>>> {
    outcome.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records `options.frames` frames after the warm-up into `outcome`.
pub struct SummaryRecordingPlugin {
    /// What to measure.
    pub options: RecordOptions,
    /// Where the summary (or the error) goes.
    pub outcome: SummaryOutcome,
}

impl Plugin for SummaryRecordingPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Recording {
            recorder: None,
            intervals: Vec::with_capacity(
                self.options
                    .frames
                    .min(burn_autogaze::limits::MAX_PREALLOCATED_FRAMES),
            ),
            uploads: UploadTotals::default(),
            transfers: Default::default(),
            gpu: Default::default(),
            seen: 0,
            measured: 0,
            warmed: None,
            allocations_at_start: None,
            started: Instant::now(),
            outcome: self.outcome.clone(),
            options: self.options.clone(),
        })
        .add_systems(Startup, |mut m: ResMut<AutoGazeMetrics>| {
            m.set_recording(true)
        })
        .add_systems(
            Last,
            record.in_set(RecordingDone).after(AutoGazeSystems::Record),
        );
    }
}

/// The system set that completes the outcome: a host reacting to it (exit,
/// publish) runs after it.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordingDone;

#[derive(Resource)]
struct Recording {
    options: RecordOptions,
    recorder: Option<PerfRecorder>,
    intervals: Vec<f64>,
    uploads: UploadTotals,
    transfers: std::collections::BTreeMap<String, u64>,
    /// GPU stage times (ms) that arrived in the measured window.
    gpu: std::collections::BTreeMap<&'static str, Vec<f64>>,
    seen: u64,
    measured: usize,
    /// Frames the warm-up took, once the measured window opened.
    warmed: Option<usize>,
    /// The allocation tallies when the measured window opened.
    allocations_at_start: Option<burn_autogaze::perf::AllocationCounts>,
    started: Instant,
    outcome: SummaryOutcome,
}

fn record(
    mut rec: ResMut<Recording>,
    metrics: Res<AutoGazeMetrics>,
    mut runtime: ResMut<AutoGazeRuntime>,
    settings: Res<AutoGazeSettings>,
    adapter: Res<AdapterSummary>,
    queue: Res<crate::display::UploadQueue>,
) {
    let rec = &mut *rec;
    if outcome_ref(&rec.outcome).is_some() {
        return;
    }
    let done = |rec: &Recording, result| *outcome_ref(&rec.outcome) = Some(result);
    if let Some(e) = runtime.setup_error() {
        return done(rec, Err(e.to_string()));
    }
    if rec.started.elapsed() > rec.options.timeout {
        let waiting = if rec.warmed.is_none() && rec.options.warmup_until_mask {
            " (still warming up: no mask applied yet)"
        } else {
            ""
        };
        let e = format!(
            "timed out after {:?} with {} of {} measured frames{waiting}",
            rec.options.timeout, rec.measured, rec.options.frames
        );
        return done(rec, Err(e));
    }
    let Some(last) = metrics.last.filter(|l| l.index >= rec.seen) else {
        return;
    };
    rec.seen = last.index + 1;
    let frames = rec.options.frames;
    let recorder = rec
        .recorder
        .get_or_insert_with(|| PerfRecorder::new(frames, &settings.pipeline));
    if rec.warmed.is_none() {
        let masked = last.report.mask_seq.is_some();
        let Some(warmed) = window_opens(last.index as usize + 1, &rec.options, masked) else {
            return;
        };
        rec.warmed = Some(warmed);
        rec.allocations_at_start = Some(alloc_count::totals());
        if warmed > 0 {
            // The window opens when the last warm-up frame is shown.
            recorder.start();
            return;
        }
        // No warm-up: the window opens with this, the first measured frame.
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
    for &(stage, ms) in &metrics.gpu.arrived {
        rec.gpu.entry(stage).or_default().push(ms);
    }
    if let Some(t) = last.transfer {
        *rec.transfers.entry(t.to_string()).or_default() += 1;
    }
    rec.measured += 1;
    if rec.measured < rec.options.frames {
        return;
    }
    let timing = metrics.gpu.timing.clone();
    let result = summary(
        rec,
        &mut runtime,
        &settings,
        &adapter,
        metrics.errors,
        timing,
    );
    done(rec, result);
}

/// Whether the measured window opens at the `shown`-th frame (`masked`:
/// a mask was applied to it): the warm-up's length when it does (0: no
/// warm-up, this frame is the first measured one; else the window opens
/// after this frame).
fn window_opens(shown: usize, options: &RecordOptions, masked: bool) -> Option<usize> {
    let masked = masked || !options.warmup_until_mask;
    match (shown, options.warmup_frames) {
        (1, 0) if masked => Some(0),
        (shown, warmup) if shown >= warmup && masked => Some(shown),
        _ => None,
    }
}

fn summary(
    rec: &mut Recording,
    runtime: &mut AutoGazeRuntime,
    settings: &AutoGazeSettings,
    adapter: &AdapterSummary,
    errors: u64,
    gpu_timing: Option<String>,
) -> Result<PerfSummary, String> {
    let pipeline = runtime
        .pipeline()
        .ok_or("no pipeline at the end of the run")?;
    let recorder = rec.recorder.as_ref().ok_or("no frames recorded")?;
    let meta = RunMeta {
        case: rec.options.case.clone(),
        warmup_frames: rec.warmed.unwrap_or(rec.options.warmup_frames),
        profile: rec.options.profile.clone(),
        revision: burn_autogaze::perf::revision(),
        date: burn_autogaze::perf::utc_now(),
        machine: burn_autogaze::perf::machine(),
        adapter: adapter.name.clone(),
    };
    let mut s = recorder.summary(pipeline, &settings.pipeline, &meta)?;
    // A render device lost under a model elsewhere (the host, a second
    // device) is the runtime's, not the pipeline's: reported all the same.
    if s.device_fault.is_none() {
        s.device_fault = runtime.device_failed().cloned();
    }
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
        readbacks: rec.uploads.device_psnr,
        residency: crate::metrics::runtime_residency(settings, runtime),
        adapter_backend: adapter.backend.clone(),
        adapter_type: adapter.device_type.clone(),
        config: serde_json::to_value(settings).map_err(|e| e.to_string())?,
        errors,
        allocations: rec
            .allocations_at_start
            .filter(|_| alloc_count::installed())
            .map(|start| alloc_count::since(start, alloc_count::totals())),
        gpu_timing,
        gpu_stages_ms: rec
            .gpu
            .iter_mut()
            .map(|(stage, ms)| (stage.to_string(), LatencySummary::from_ms(ms)))
            .collect(),
    });
    s.add_transfers();
    s.validate()
        .map_err(|p| format!("{}: invalid summary: {}", s.case, p.join("; ")))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_opens_after_the_warm_up_and_waits_for_a_mask_when_asked() {
        let mut options = RecordOptions {
            warmup_frames: 3,
            ..RecordOptions::default()
        };
        // Three frames of warm-up, mask or not.
        assert_eq!(window_opens(2, &options, true), None);
        assert_eq!(window_opens(3, &options, false), Some(3));
        // None: the first frame is measured.
        options.warmup_frames = 0;
        assert_eq!(window_opens(1, &options, false), Some(0));
        // Waiting for a mask: maskless frames are warm-up too.
        options.warmup_until_mask = true;
        assert_eq!(window_opens(1, &options, false), None);
        assert_eq!(window_opens(7, &options, false), None);
        assert_eq!(window_opens(8, &options, true), Some(8));
        assert_eq!(window_opens(1, &options, true), Some(0));
        options.warmup_frames = 3;
        assert_eq!(window_opens(2, &options, true), None);
        assert_eq!(window_opens(5, &options, true), Some(5));
    }
}
