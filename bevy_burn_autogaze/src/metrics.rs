//! Per-frame metrics: rolling frame-time and stage windows, counters, quality,
//! and the snapshot the overlay shows and exports. Percentiles are computed
//! only when a snapshot is asked for (the overlay is shown, or an export).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use web_time::Instant;

use bevy::prelude::*;
use burn_autogaze::interframe::ComposePath;
use burn_autogaze::memory::{MemorySampler, MemoryStats};
use burn_autogaze::pacing::PaceStats;
use burn_autogaze::pipeline::StepReport;
use burn_autogaze::quality::{Ema, GazeStats};
use burn_autogaze::ring::RingCounters;
use burn_autogaze::source::DecodeStats;
use burn_autogaze::timing::{LatencySummary, ModelWork, Stage, StageTimes};
use burn_autogaze::worker::WorkerCounters;
use serde::Serialize;

use crate::display::{UploadQueue, UploadTotals};
use crate::feed::{HostFeedCounters, HostFrames};
use crate::messages::{AutoGazeFailure, AutoGazeFailureKind};
use crate::runtime::AutoGazeRuntime;
use crate::settings::{AutoGazeSettings, DisplayTransfer};

/// Frames in the short window.
pub const SHORT_WINDOW: usize = 60;
/// Frames in the long window.
pub const LONG_WINDOW: usize = 300;

/// One displayed frame, with every stage's time (the pipeline's, plus
/// display transfer, texture upload and UI).
#[derive(Debug, Clone, Copy)]
pub struct FrameRecord {
    /// Frames recorded before this one.
    pub index: u64,
    /// The pipeline's report, with the plugin's stage times added.
    pub report: StepReport,
    /// Wall time since the previous displayed frame.
    pub interval: Option<Duration>,
    /// Texture writes attributed to this frame (the render world writes a
    /// frame's uploads while the main world runs the next one).
    pub uploads: UploadTotals,
    /// The display transfer this frame took (none when nothing went up).
    pub transfer: Option<DisplayTransfer>,
}

/// p50 / p95 of one stage over the long window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageWindow {
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
}

/// What the overlay shows, and what "export JSON" writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// Frames recorded.
    pub frames: u64,
    /// Frame intervals over the short window.
    pub frame_short: LatencySummary,
    /// Frame intervals over the long window.
    pub frame_long: LatencySummary,
    /// Each stage that ran, over the long window.
    pub stages: BTreeMap<Stage, StageWindow>,
    /// Stage with the largest p50 over the long window.
    pub dominant: Option<Stage>,
    /// Gaze ratio of the last frame.
    pub gaze_ratio: f64,
    /// Its moving average (keyframes excluded).
    pub gaze_ratio_ema: f64,
    /// Output-vs-input PSNR of the last frame, when measured.
    pub psnr_db: Option<f64>,
    /// Its moving average.
    pub psnr_ema_db: Option<f64>,
    /// Rectangles of the last plan.
    pub rects: u32,
    /// Disjoint row bands of the last plan.
    pub spans: u32,
    /// Row copies of the last plan.
    pub row_spans: u64,
    /// Pixels the last frame updated.
    pub updated_pixels: u64,
    /// Bytes written to textures for the last frame.
    pub bytes_uploaded: u64,
    /// Texture writes for the last frame.
    pub upload_calls: u64,
    /// The compositor's path for the last frame.
    pub dispatch_path: Option<ComposePath>,
    /// Frames per compositor path.
    pub dispatch_histogram: BTreeMap<ComposePath, u64>,
    /// The display transfer of the last frame.
    pub transfer: Option<DisplayTransfer>,
    /// Device copies of the last frame.
    pub device_copies: u64,
    /// Where data lives at each handoff.
    pub residency: Vec<String>,
    /// Mask worker counters (decoupled inference).
    pub worker: Option<WorkerCounters>,
    /// The model's counted work on its last frame (model mask source).
    pub model: Option<ModelWork>,
    /// Frame ring counters.
    pub ring: RingCounters,
    /// Host feed counters.
    pub host: HostFeedCounters,
    /// Failures so far.
    pub errors: u64,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// Process RSS, pooled and staging bytes (sampled at most 4 times a second).
    pub memory: MemoryStats,
    /// Paced playback: shown / dropped / late frames, realtime factor.
    pub pace: Option<PaceStats>,
    /// A file source's decode counters (time to first frame, prefetch).
    pub decode: Option<DecodeStats>,
    /// Tensor-to-texture copies run and refused.
    pub tensor_copies: (u64, u64),
    /// Each GPU stage's median device time (ms), where timed.
    pub gpu_stages: Vec<(&'static str, f64)>,
    /// How GPU stages are timed, or why they are not.
    pub gpu_timing: Option<String>,
}

/// The plugin's metrics resource.
#[derive(Resource)]
pub struct AutoGazeMetrics {
    intervals: VecDeque<f64>,
    stages: Vec<VecDeque<f64>>,
    stage_ran: [bool; Stage::ALL.len()],
    /// Stage times of the frame in progress, added by the plugin's systems.
    pending: StageTimes,
    pending_uploads: UploadTotals,
    pending_transfer: Option<DisplayTransfer>,
    last_displayed: Option<Instant>,
    recording: bool,
    /// Frames recorded.
    pub frames: u64,
    /// The last recorded frame.
    pub last: Option<FrameRecord>,
    /// PSNR moving average.
    pub psnr_ema: Ema,
    /// Frames per compositor path.
    pub dispatch: BTreeMap<ComposePath, u64>,
    /// Texture writes since the start (or the last reset).
    pub uploads: UploadTotals,
    /// Gaze-ratio statistics (the pipeline's).
    pub gaze: GazeStats,
    /// Mask worker counters (decoupled inference).
    pub worker: Option<WorkerCounters>,
    /// The model's counted work on its last frame (inline: the frame's;
    /// decoupled: the newest mask's).
    pub model: Option<ModelWork>,
    /// Frame ring counters.
    pub ring: RingCounters,
    /// Host feed counters.
    pub host: HostFeedCounters,
    /// Failures so far.
    pub errors: u64,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// Failures not yet published as messages.
    pub(crate) unpublished: Vec<AutoGazeFailure>,
    /// True from recording a frame until it is published.
    pub(crate) fresh: bool,
    /// Where data lives at each handoff.
    pub residency: Vec<String>,
    /// A snapshot to compare against ("set baseline").
    pub baseline: Option<MetricsSnapshot>,
    /// Memory samples (RSS, pooled and staging bytes).
    pub memory: MemorySampler,
    /// Paced playback counters.
    pub pace: Option<PaceStats>,
    /// A file source's decode counters.
    pub decode: Option<DecodeStats>,
    /// Tensor-to-texture copies run and refused.
    pub tensor_copies: (u64, u64),
    /// GPU stage times by timestamp queries, where the device has them.
    pub gpu: crate::gpu_timing::GpuStages,
}

impl Default for AutoGazeMetrics {
    fn default() -> Self {
        Self {
            intervals: VecDeque::with_capacity(LONG_WINDOW),
            stages: (0..Stage::ALL.len())
                .map(|_| VecDeque::with_capacity(LONG_WINDOW))
                .collect(),
            stage_ran: [false; Stage::ALL.len()],
            pending: StageTimes::default(),
            pending_uploads: UploadTotals::default(),
            pending_transfer: None,
            last_displayed: None,
            recording: false,
            frames: 0,
            last: None,
            psnr_ema: Ema::new(0.15),
            dispatch: BTreeMap::new(),
            uploads: UploadTotals::default(),
            gaze: GazeStats::default(),
            worker: None,
            model: None,
            ring: RingCounters::default(),
            host: HostFeedCounters::default(),
            errors: 0,
            last_error: None,
            unpublished: Vec::new(),
            fresh: false,
            residency: Vec::new(),
            baseline: None,
            memory: MemorySampler::default(),
            pace: None,
            decode: None,
            tensor_copies: (0, 0),
            gpu: Default::default(),
        }
    }
}

fn push_window(window: &mut VecDeque<f64>, value: f64) {
    if window.len() == LONG_WINDOW {
        window.pop_front();
    }
    window.push_back(value);
}

fn summarize(window: &VecDeque<f64>, last: usize, scratch: &mut Vec<f64>) -> LatencySummary {
    scratch.clear();
    scratch.extend(window.iter().rev().take(last).copied());
    LatencySummary::from_ms(scratch)
}

impl AutoGazeMetrics {
    /// Adds time to a stage of the frame in progress.
    pub fn add_stage(&mut self, stage: Stage, d: Duration) {
        self.pending.add(stage, d);
    }

    /// The display transfer of the frame in progress.
    pub(crate) fn count_transfer(&mut self, transfer: DisplayTransfer) {
        self.pending_transfer = Some(transfer);
    }

    /// Counts a failure, keeps its message and queues it for the
    /// [`AutoGazeFailure`] message.
    pub fn record_failure(&mut self, kind: AutoGazeFailureKind, seq: Option<u64>, message: String) {
        self.errors += 1;
        self.last_error = Some(message.clone());
        self.unpublished
            .push(AutoGazeFailure { kind, seq, message });
    }

    /// True while a perf summary is being recorded (PSNR is then measured
    /// whether or not the overlay is shown).
    pub fn recording(&self) -> bool {
        self.recording
    }

    /// Marks a perf summary as being recorded (or no longer): PSNR is
    /// then measured whether or not the overlay shows it.
    pub fn set_recording(&mut self, on: bool) {
        self.recording = on;
    }

    /// Clears windows and counters (keeps the baseline and the tensor-copy
    /// counters last seen).
    pub fn reset(&mut self) {
        let baseline = self.baseline.take();
        let recording = self.recording;
        let residency = std::mem::take(&mut self.residency);
        // The copy counters live in `TensorCopies`; keeping the last seen
        // ones means a refusal from before the reset is not reported again.
        let tensor_copies = self.tensor_copies;
        // Failures still to be published are not the overlay's to drop.
        let unpublished = std::mem::take(&mut self.unpublished);
        *self = Self::default();
        self.unpublished = unpublished;
        self.baseline = baseline;
        self.recording = recording;
        self.residency = residency;
        self.tensor_copies = tensor_copies;
    }

    /// Records the frame stepped in this update, with the stage times the
    /// plugin's systems added.
    fn record(&mut self, mut report: StepReport, now: Instant) {
        for stage in Stage::ALL {
            let extra = self.pending.get(stage);
            if !extra.is_zero() {
                report.times.add(stage, extra);
            }
        }
        let uploads = std::mem::take(&mut self.pending_uploads);
        if !uploads.time.is_zero() {
            report.times.add(Stage::TextureUpload, uploads.time);
        }
        if !uploads.render.is_zero() {
            report.times.add(Stage::Render, uploads.render);
        }
        self.pending = StageTimes::default();
        let interval = self.last_displayed.map(|t| now - t);
        self.last_displayed = Some(now);
        if let Some(i) = interval {
            push_window(&mut self.intervals, i.as_secs_f64() * 1e3);
        }
        for stage in Stage::ALL {
            let d = report.times.get(stage);
            self.stage_ran[stage as usize] |= !d.is_zero();
            push_window(&mut self.stages[stage as usize], d.as_secs_f64() * 1e3);
        }
        let work = report.mask_times.unwrap_or(report.times).model_work();
        self.model = work.or(self.model);
        *self.dispatch.entry(report.compose.path).or_default() += 1;
        if let Some(p) = report.compose.psnr_db {
            self.psnr_ema.update(p);
        }
        self.last = Some(FrameRecord {
            index: self.frames,
            report,
            interval,
            uploads,
            transfer: self.pending_transfer.take(),
        });
        self.frames += 1;
        self.fresh = true;
    }

    /// The snapshot of the windows and counters (sorts at most
    /// `LONG_WINDOW` samples a stage).
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut scratch = Vec::with_capacity(LONG_WINDOW);
        let mut stages = BTreeMap::new();
        for stage in Stage::ALL {
            if !self.stage_ran[stage as usize] {
                continue;
            }
            let s = summarize(&self.stages[stage as usize], LONG_WINDOW, &mut scratch);
            stages.insert(
                stage,
                StageWindow {
                    p50_ms: s.p50_ms,
                    p95_ms: s.p95_ms,
                },
            );
        }
        let dominant = stages
            .iter()
            .max_by(|a, b| a.1.p50_ms.total_cmp(&b.1.p50_ms))
            .map(|(s, _)| *s);
        let last = self.last.as_ref();
        let plan = last.map(|l| l.report.plan).unwrap_or_default();
        MetricsSnapshot {
            frames: self.frames,
            frame_short: summarize(&self.intervals, SHORT_WINDOW, &mut scratch),
            frame_long: summarize(&self.intervals, LONG_WINDOW, &mut scratch),
            stages,
            dominant,
            gaze_ratio: self.gaze.last,
            gaze_ratio_ema: self.gaze.ema.value().unwrap_or(0.0),
            psnr_db: last.and_then(|l| l.report.compose.psnr_db),
            psnr_ema_db: self.psnr_ema.value(),
            rects: plan.rects,
            spans: plan.spans,
            row_spans: plan.row_spans,
            updated_pixels: last.map(|l| l.report.compose.updated_pixels).unwrap_or(0),
            bytes_uploaded: last.map(|l| l.uploads.bytes).unwrap_or(0),
            upload_calls: last.map(|l| l.uploads.calls).unwrap_or(0),
            dispatch_path: last.map(|l| l.report.compose.path),
            dispatch_histogram: self.dispatch.clone(),
            transfer: last.and_then(|l| l.transfer),
            device_copies: last.map(|l| l.uploads.device_copies).unwrap_or(0),
            residency: self.residency.clone(),
            worker: self.worker,
            model: self.model,
            ring: self.ring,
            host: self.host,
            errors: self.errors,
            last_error: self.last_error.clone(),
            memory: self.memory.stats(),
            pace: self.pace,
            decode: self.decode,
            tensor_copies: self.tensor_copies,
            gpu_stages: self.gpu.medians(),
            gpu_timing: self.gpu.timing.clone(),
        }
    }

    /// The frame-interval history of the long window (oldest first), ms.
    pub fn interval_history(&self) -> impl Iterator<Item = f64> + '_ {
        self.intervals.iter().copied()
    }
}

/// Where data lives at each handoff, for the settings in use; `model`: where
/// a wgpu model runs ([`AutoGazeRuntime::model_placement`](crate::AutoGazeRuntime::model_placement)).
pub fn residency(settings: &AutoGazeSettings, model: Option<&str>) -> Vec<String> {
    let worker = if settings.pipeline.decoupled {
        "worker thread"
    } else {
        "main thread"
    };
    let mut lines: Vec<String> = vec![
        "source frame: host RGBA (shared buffer, no copy to the worker)".into(),
        match model {
            Some(model) => format!(
                "mask source ({}): {model}, driven from the {worker}; {}",
                settings.mask_source_name(),
                match settings.pipeline.model.preprocess {
                    burn_autogaze::mask_source::InputPlace::Host => {
                        "its input preprocessed on the host and uploaded (f32)"
                    }
                    burn_autogaze::mask_source::InputPlace::Device => {
                        "the frame's bytes uploaded, its input made on the device"
                    }
                }
            ),
            None => format!(
                "mask source ({}): host, {worker}",
                settings.mask_source_name()
            ),
        },
        {
            // As applied while recording (PSNR is measured then, if on).
            let mut compositor = settings.pipeline.compositor;
            compositor.measure_psnr |= settings.psnr;
            if settings.device_composes(&compositor, true) {
                "composed output: on the device only (the host compositor decides the dirty regions, writes no bytes; PSNR, when on, is a device reduction read back asynchronously, 8 bytes)".into()
            } else {
                "composed output: host RGBA (persistent buffer)".into()
            }
        },
        match settings.display_transfer {
            DisplayTransfer::Cpu => {
                "display (cpu): output dirty regions staged on the host -> Bevy texture (queue.write_texture)".into()
            }
            DisplayTransfer::Gpu => {
                "display (gpu): input frame -> Bevy texture (queue.write_texture), output composed on the device (texture-to-texture region copies)".into()
            }
            DisplayTransfer::Auto => {
                "display (auto): per frame, cpu (host dirty regions -> texture) or gpu (region copies on the device from the uploaded input)".into()
            }
        },
    ];
    if settings.show_mask {
        lines.push(if settings.display_transfer == DisplayTransfer::Gpu {
            "mask panel: drawn on the device from the frame's texture (compute pass; the plan's rectangles go up, where the renderer runs compute)".into()
        } else {
            "mask panel: drawn on the host -> Bevy texture (queue.write_texture)".into()
        });
    }
    if settings.show_model_input {
        lines.push(
            "model input: host f32 -> Burn tensor on Bevy's wgpu device (one upload) -> RGBA8 texture by a compute pass (no readback)".into(),
        );
    }
    lines
}

/// [`residency`] as `runtime` runs the settings: where its wgpu model runs,
/// and a device fault's line after it.
pub(crate) fn runtime_residency(
    settings: &AutoGazeSettings,
    runtime: &AutoGazeRuntime,
) -> Vec<String> {
    let mut lines = residency(settings, runtime.model_placement());
    lines.extend(runtime.fault_line());
    lines
}

/// Last: completes the frame stepped in this update (adds upload and UI
/// times, moves the counters) and records it.
pub(crate) fn finish_frame(
    settings: Res<AutoGazeSettings>,
    mut runtime: ResMut<AutoGazeRuntime>,
    queue: Res<UploadQueue>,
    host: Res<HostFrames>,
    copies: Res<crate::TensorCopies>,
    mut metrics: ResMut<AutoGazeMetrics>,
) {
    let done = queue.take_done();
    let (copied, refused) = copies.counters();
    if refused > metrics.tensor_copies.1 {
        let why = copies.last_error().unwrap_or_default();
        metrics.record_failure(
            AutoGazeFailureKind::Display,
            None,
            format!("tensor copy refused: {why}"),
        );
    }
    metrics.tensor_copies = (copied, refused);
    metrics.gpu.arrived.clear();
    queue.take_gpu_times(&mut metrics.gpu.arrived);
    metrics.gpu.observe();
    if metrics.gpu.timing.is_none() {
        metrics.gpu.timing = queue.gpu_timing();
    }
    metrics.uploads.add(&done);
    metrics.pending_uploads.add(&done);
    metrics.host = host.counters();
    if settings.is_changed() || metrics.residency.is_empty() {
        metrics.residency = runtime_residency(&settings, &runtime);
    }
    let Some(mut report) = runtime.report.take() else {
        return;
    };
    // PSNR measured on the device arrives a frame or two after its frame:
    // it goes with the frame it arrives at.
    if let Some(db) = queue.take_device_psnr() {
        report.compose.psnr_db = report.compose.psnr_db.or(Some(db));
    }
    if let Some(p) = runtime.pipeline() {
        metrics.gaze = *p.gaze();
        metrics.worker = p.worker_counters();
        metrics.ring = p.ring_counters();
        metrics.pace = p.pace_stats();
        metrics.decode = p.decode_stats();
        metrics.memory.maybe_sample(
            Instant::now(),
            || p.pooled_bytes(),
            || queue.staging_bytes(),
        );
    }
    metrics.record(report, Instant::now());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_keep_the_last_frames_and_snapshots_name_the_dominant_stage() {
        let mut m = AutoGazeMetrics::default();
        let start = Instant::now();
        let mut report = StepReport {
            seq: 0,
            times: StageTimes::default(),
            bytes_in: 0,
            plan: Default::default(),
            compose: burn_autogaze::interframe::ComposeReport {
                seq: 0,
                path: ComposePath::Sparse,
                keyframe: false,
                coverage: 0.1,
                updated_pixels: 10,
                copied_bytes: 40,
                predicted_ns: [0.0; 3],
                psnr_db: Some(40.0),
            },
            mask_seq: None,
            mask_times: None,
        };
        report
            .times
            .add(Stage::MaskSource, Duration::from_millis(2));
        for i in 0..(LONG_WINDOW as u64 + 20) {
            m.add_stage(Stage::Ui, Duration::from_millis(5));
            m.record(report, start + Duration::from_millis(10 * i));
        }
        let s = m.snapshot();
        assert_eq!(s.frames, LONG_WINDOW as u64 + 20);
        assert_eq!(s.frame_long.count, LONG_WINDOW);
        assert_eq!(s.frame_short.count, SHORT_WINDOW);
        assert!((s.frame_short.p50_ms - 10.0).abs() < 1e-9);
        assert_eq!(s.dominant, Some(Stage::Ui));
        assert_eq!(s.dispatch_histogram[&ComposePath::Sparse], s.frames);
        assert_eq!(s.psnr_ema_db, Some(40.0));
        m.record_failure(AutoGazeFailureKind::Frame, Some(3), "boom".into());
        assert_eq!(m.unpublished.len(), 1);
        m.baseline = Some(s);
        m.reset();
        assert_eq!((m.frames, m.errors), (0, 0));
        assert!(m.baseline.is_some(), "reset keeps the baseline");
    }
}
