//! The perf summary: one JSON schema for every harness (the core harness and
//! the headless Bevy viewer, which adds a [`DisplaySummary`]), its
//! validation, and the [`PerfRecorder`] both use to fill it.

use std::collections::BTreeMap;
use web_time::Instant;

use serde::{Deserialize, Serialize};

use crate::frame::Frame;
use crate::memory::{MemorySampler, MemoryStats};
use crate::pacing::PaceStats;
use crate::pipeline::{FramePipeline, PipelineOptions, StepReport, time_frame_memcpy};
use crate::ring::RingCounters;
use crate::timing::{LatencySummary, ModelWork, Stage, TimingRecorder};
use crate::worker::WorkerCounters;

mod meta;
pub use meta::{RunMeta, machine, revision, utc_now};

/// Schema tag written into every summary.
pub const PERF_SCHEMA: &str = "burn_autogaze.perf/1";

/// Results of one harness run (one case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfSummary {
    /// Schema tag, [`PERF_SCHEMA`].
    pub schema: String,
    /// Case name, encoding its parameters (e.g. `core-720p-synthetic-pan`).
    pub case: String,
    /// Source kind (`synthetic-pan`, `static`, ...).
    pub source: String,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frames measured (after warm-up).
    pub frames: usize,
    /// Frames run before the measured ones (not in the figures).
    pub warmup_frames: usize,
    /// Wall time of the measured frames, seconds.
    pub wall_s: f64,
    /// Measured frames / wall time.
    pub fps: f64,
    /// Per-frame latency (sum of the stages).
    pub frame_ms: LatencySummary,
    /// Per-stage latency, for the stages that ran.
    pub stages: BTreeMap<Stage, LatencySummary>,
    /// Stage with the largest mean time.
    pub dominant_stage: Option<Stage>,
    /// The dominant stage's share of the frame time, in [0, 1].
    pub dominant_share: f64,
    /// Plain memcpy of one frame, measured in the same run (the yardstick).
    pub frame_memcpy_ms: LatencySummary,
    /// Mask source (`patch-diff` or `autogaze`).
    pub mask_source: String,
    /// Mask geometry (`native`, `deduplicated`, `effective`).
    pub geometry: String,
    /// Dispatch mode of the compositor (`adaptive` or a forced path).
    pub dispatch: String,
    /// Mean of the per-frame union coverage (keyframes excluded).
    pub gaze_ratio_mean: f64,
    /// EMA of the per-frame union coverage (keyframes excluded).
    pub gaze_ratio_ema: f64,
    /// Keyframes among the measured frames.
    pub keyframes: u64,
    /// Compose path taken, per measured frame.
    pub dispatch_histogram: BTreeMap<String, u64>,
    /// Output pixels written, per measured frame.
    pub updated_pixels_per_frame: f64,
    /// Bytes copied into the output, per measured frame.
    pub copied_bytes_per_frame: f64,
    /// Mean output-vs-input PSNR (dB, finite frames only) when measured.
    pub psnr_db_mean: Option<f64>,
    /// Lowest output-vs-input PSNR (dB, finite frames only) when measured.
    pub psnr_db_min: Option<f64>,
    /// Decoupled mode: the mask source ran on a worker thread.
    #[serde(default)]
    pub decoupled: bool,
    /// Frames whose composition received a new mask.
    #[serde(default)]
    pub mask_updates: u64,
    /// Mask latency on the worker (decoupled mode), per update.
    #[serde(default)]
    pub mask_latency_ms: Option<LatencySummary>,
    /// The inference worker's counters (decoupled mode).
    #[serde(default)]
    pub worker: Option<WorkerCounters>,
    /// What the model's engine did (model mask source, when it ran in the
    /// measured window): decoder calls, dispatches and readbacks.
    #[serde(default)]
    pub model: Option<ModelSummary>,
    /// Host<->device bytes per measured frame, everything counted: the
    /// display's texture writes and the model's transfers (None when a
    /// model engine that does not count its transfers ran).
    #[serde(default)]
    pub transfers: Option<TransferSummary>,
    /// The model's device failed and the model moved to the host
    /// ([`crate::device_fault`]).
    #[serde(default)]
    pub device_fault: Option<crate::device_fault::DeviceFault>,
    /// Paced playback: the source's frame rate.
    #[serde(default)]
    pub source_fps: Option<crate::pacing::SourceRate>,
    /// Paced playback: frames shown / dropped / late, realtime factor.
    #[serde(default)]
    pub pace: Option<PaceStats>,
    /// The frame ring's counters.
    pub ring: RingCounters,
    /// RGBA bytes that entered the pipeline, per measured frame.
    pub bytes_in_per_frame: f64,
    /// Bytes held by pooled buffers at the end of the run.
    pub pooled_bytes: usize,
    /// Process RSS and pooled/staging bytes, sampled over the run (at most
    /// four times a second) and at its end.
    #[serde(default)]
    pub memory: Option<MemoryStats>,
    /// Decode counters of a file source: time to first frame, decode cost,
    /// prefetch hits and reader misses.
    #[serde(default)]
    pub decode: Option<crate::source::DecodeStats>,
    /// Build profile of the harness (`release` for figures that count).
    pub profile: String,
    /// Commit the harness ran at.
    pub revision: String,
    /// When the case ran (UTC).
    pub date: String,
    /// The machine (CPU, cores, memory).
    pub machine: String,
    /// The graphics adapter (or `none`).
    pub adapter: String,
    /// The display side (headless Bevy viewer runs only).
    #[serde(default)]
    pub display: Option<DisplaySummary>,
}

/// The model's counted work over the measured frames: what its engine
/// launched and read back, per model frame (a frame whose mask the model
/// computed; decoupled, the worker's updates in the window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The engine that ran (`fused-gpu`, `host`, `burn-ops`).
    pub engine: String,
    /// Model frames counted.
    pub frames: u64,
    /// Decoder calls per model frame (streams in lockstep share a call).
    pub decoder_calls_per_frame: f64,
    /// Kernel dispatches per model frame (None: an engine running Burn
    /// ops, which does not count them).
    pub dispatches_per_frame: Option<f64>,
    /// Kernel dispatches per decoder call (its picks included).
    pub dispatches_per_call: Option<f64>,
    /// Device-to-host readbacks per model frame.
    pub readbacks_per_frame: f64,
    /// Bytes written from the host for the model per model frame: its
    /// input and the engine's buffers (None: an engine that does not count
    /// its transfers).
    #[serde(default)]
    pub upload_bytes_per_frame: Option<f64>,
    /// Bytes read back to the host per model frame (None: as above).
    #[serde(default)]
    pub readback_bytes_per_frame: Option<f64>,
    /// Model frames whose input the renderer lent (the display's upload of
    /// the frame, on the device already), of `frames`.
    #[serde(default)]
    pub lent_frames: u64,
}

impl ModelSummary {
    /// The summary of `work`, totals over its frames (None without one).
    pub fn of(work: &ModelWork) -> Option<Self> {
        let frames = work.frames;
        let per = |x: u64, n: u64| (n > 0).then(|| x as f64 / n as f64);
        Some(Self {
            engine: work.engine.to_string(),
            frames,
            decoder_calls_per_frame: per(work.decoder_calls, frames)?,
            dispatches_per_frame: work.dispatches.and_then(|d| per(d, frames)),
            dispatches_per_call: work.dispatches.and_then(|d| per(d, work.decoder_calls)),
            readbacks_per_frame: per(work.readbacks, frames)?,
            upload_bytes_per_frame: work.upload_bytes.and_then(|b| per(b, frames)),
            readback_bytes_per_frame: work.readback_bytes.and_then(|b| per(b, frames)),
            lent_frames: work.lent_frames,
        })
    }
}

/// Bytes between the host and the device per measured frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferSummary {
    /// Bytes written from the host: texture writes and the model's uploads.
    pub upload_bytes_per_frame: f64,
    /// Bytes read back to the host (the model's picks and task losses, the
    /// device's PSNR sums).
    pub readback_bytes_per_frame: f64,
    /// `upload_bytes_per_frame` in frames (`/ (4 w h)`): 1.0 is one upload
    /// of each frame.
    pub upload_frames: f64,
}

impl PerfSummary {
    /// Sets [`PerfSummary::transfers`] from the model and display sections
    /// (call again after adding the display).
    pub fn add_transfers(&mut self) {
        let frames = self.frames.max(1) as f64;
        let (up, back) = match &self.model {
            None => (Some(0.0), Some(0.0)),
            Some(m) => {
                let share = m.frames as f64 / frames;
                (
                    m.upload_bytes_per_frame.map(|b| b * share),
                    m.readback_bytes_per_frame.map(|b| b * share),
                )
            }
        };
        let display = self
            .display
            .as_ref()
            .map_or(0.0, |d| d.bytes_uploaded_per_frame);
        let display_back = self.display.as_ref().map_or(0.0, |d| {
            (d.readbacks * crate::quality::SSE_READBACK_BYTES) as f64 / frames
        });
        let frame_bytes = (4 * self.width as u64 * self.height as u64).max(1) as f64;
        self.transfers = up.zip(back).map(|(up, back)| TransferSummary {
            upload_bytes_per_frame: up + display,
            readback_bytes_per_frame: back + display_back,
            upload_frames: (up + display) / frame_bytes,
        });
    }
}

/// What a viewer adds: wall-clock frame intervals, uploads, residency, the
/// adapter and the configuration it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisplaySummary {
    /// `cpu` (dirty-region texture writes) or `gpu` (device copy pass).
    pub transfer: String,
    /// Wall-clock time between consecutive displayed frames (what a user
    /// sees; with pipelined rendering it overlaps main and render work).
    pub frame_interval_ms: LatencySummary,
    /// Bytes written into textures, per frame.
    pub bytes_uploaded_per_frame: f64,
    /// Texture-write calls, per frame.
    pub upload_calls_per_frame: f64,
    /// Frames whose output went up as one whole-texture write.
    pub full_uploads: u64,
    /// Device-side copies (GPU transfer) per frame.
    #[serde(default)]
    pub device_copies_per_frame: f64,
    /// Bytes those copies moved on the device, per frame.
    #[serde(default)]
    pub device_copy_bytes_per_frame: f64,
    /// The transfer each measured frame took (`auto` picks per frame).
    #[serde(default)]
    pub transfer_histogram: BTreeMap<String, u64>,
    /// Device-to-host readbacks over the window (a counted event, never a
    /// side effect): the device's PSNR sums, [`SSE_READBACK_BYTES`] each.
    ///
    /// [`SSE_READBACK_BYTES`]: crate::quality::SSE_READBACK_BYTES
    pub readbacks: u64,
    /// Where the data lives at each handoff, in order (e.g.
    /// `source: host rgba`, `output: bevy texture`).
    pub residency: Vec<String>,
    /// The adapter's backend, lower case (`vulkan`, `gl`, ...).
    pub adapter_backend: String,
    /// The adapter's device type, lower case (`discretegpu`, `cpu`, ...).
    pub adapter_type: String,
    /// The full settings the run used.
    pub config: serde_json::Value,
    /// Failures the viewer counted over the whole run (mask inference,
    /// frames, display); it keeps showing frames through them.
    #[serde(default)]
    pub errors: u64,
    /// Heap allocations on the per-frame path over the measured frames,
    /// where the viewer binary counts them (none elsewhere).
    #[serde(default)]
    pub allocations: Option<AllocationCounts>,
    /// How the plugin's GPU stages were timed (`timestamp queries`), or why
    /// they were not (None: a summary from before they were).
    #[serde(default)]
    pub gpu_timing: Option<String>,
    /// Device time of each GPU stage the plugin records (`device_compose`,
    /// `psnr`, `mask_panel`), over the measured frames that ran it.
    #[serde(default)]
    pub gpu_stages_ms: BTreeMap<String, LatencySummary>,
}

/// Heap allocations on the viewer's per-frame path, totals over the
/// measured frames. The viewer binary counts them with a per-thread counting
/// allocator around each piece of work (see
/// `bevy_burn_autogaze::alloc_count`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationCounts {
    /// In the pipeline's step on the main thread: the source's frame, the
    /// hand-off to the mask worker, the mask plan and the composition.
    pub frame_step: u64,
    /// On the upload path: staging the output's dirty regions and the
    /// panels (main world), and the render world's work around its writes.
    pub upload: u64,
    /// Inside wgpu's own calls (`write_texture`, the device copies and
    /// their submit): the driver's side, reported but not ours to judge.
    pub wgpu: u64,
}

impl PerfSummary {
    /// Checks schema, ranges and counter consistency; returns every problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.schema != PERF_SCHEMA {
            problems.push(format!(
                "schema {:?}, expected {PERF_SCHEMA:?}",
                self.schema
            ));
        }
        if self.frames == 0 {
            problems.push("no frames measured".into());
        }
        if self.width == 0 || self.height == 0 {
            problems.push(format!("frame size {}x{}", self.width, self.height));
        }
        if !(self.fps.is_finite() && self.fps > 0.0) {
            problems.push(format!("fps {} is not a positive number", self.fps));
        }
        if !(self.wall_s.is_finite() && self.wall_s > 0.0) {
            problems.push(format!("wall_s {} is not a positive number", self.wall_s));
        }
        let p = &mut problems;
        check_latency(p, "frame_ms", &self.frame_ms, self.frames);
        check_latency(p, "frame_memcpy_ms", &self.frame_memcpy_ms, self.frames);
        for (stage, l) in &self.stages {
            check_latency(p, stage.as_str(), l, self.frames);
        }
        if !(0.0..=1.0).contains(&self.dominant_share) {
            problems.push(format!(
                "dominant_share {} outside [0, 1]",
                self.dominant_share
            ));
        }
        if let Some(stage) = self.dominant_stage
            && !self.stages.contains_key(&stage)
        {
            problems.push(format!("dominant stage {} has no timings", stage.as_str()));
        }
        let measured = (self.frames + self.warmup_frames) as u64;
        if self.ring.admitted + self.ring.stale < measured {
            problems.push(format!(
                "ring saw {} frames, the run produced {measured}",
                self.ring.admitted + self.ring.stale
            ));
        }
        if self.ring.dropped > self.ring.admitted {
            problems.push("ring dropped more frames than it admitted".into());
        }
        let frame_bytes = self.width as f64 * self.height as f64 * 4.0;
        if self.bytes_in_per_frame > frame_bytes + 0.5 {
            problems.push(format!(
                "bytes_in_per_frame {} exceeds one frame ({frame_bytes})",
                self.bytes_in_per_frame
            ));
        }
        if let Some(m) = &self.memory {
            let l = &m.latest;
            if l.pooled_bytes > m.peak_pooled_bytes
                || l.staging_bytes > m.peak_staging_bytes
                || l.rss_bytes > m.peak_rss_bytes
                || m.samples == 0
            {
                problems.push(format!("memory: latest above its peak or no sample: {m:?}"));
            }
        }
        if let Some(d) = &self.display {
            check_latency(
                &mut problems,
                "frame_interval_ms",
                &d.frame_interval_ms,
                self.frames,
            );
            // Input, mask and output panels at most, each once a frame; a
            // write is counted when the render world runs it, up to one
            // frame after it was staged, so the window may hold one more.
            let most = 3.0 * frame_bytes * (self.frames + 1) as f64 / self.frames.max(1) as f64;
            if !(0.0..=most + 0.5).contains(&d.bytes_uploaded_per_frame) {
                problems.push(format!(
                    "bytes_uploaded_per_frame {} outside [0, 3 frames]",
                    d.bytes_uploaded_per_frame
                ));
            }
            if d.full_uploads > measured {
                problems.push(format!(
                    "{} full uploads in {measured} frames",
                    d.full_uploads
                ));
            }
            if d.residency.is_empty() {
                problems.push("display residency is empty".into());
            }
        }
        if let Some(t) = &self.transfers {
            let values = [
                t.upload_bytes_per_frame,
                t.readback_bytes_per_frame,
                t.upload_frames,
            ];
            if values.iter().any(|v| !v.is_finite() || *v < 0.0) {
                problems.push(format!("transfers: a negative count: {t:?}"));
            }
        }
        if let Some(m) = &self.model {
            let counts = [
                Some(m.decoder_calls_per_frame),
                m.dispatches_per_frame,
                m.dispatches_per_call,
                Some(m.readbacks_per_frame),
                m.upload_bytes_per_frame,
                m.readback_bytes_per_frame,
            ];
            if m.frames == 0 || counts.iter().flatten().any(|c| !c.is_finite() || *c < 0.0) {
                problems.push(format!("model: no frame or a negative count: {m:?}"));
            }
            if m.frames > (self.frames + self.warmup_frames) as u64 {
                problems.push(format!("model: {} frames in a run of {measured}", m.frames));
            }
        }
        if self.updated_pixels_per_frame > self.width as f64 * self.height as f64 + 0.5 {
            problems.push(format!(
                "updated_pixels_per_frame {} exceeds the frame",
                self.updated_pixels_per_frame
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

fn check_latency(problems: &mut Vec<String>, name: &str, l: &LatencySummary, count: usize) {
    let values = [l.mean_ms, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms];
    if values.iter().any(|v| !v.is_finite() || *v < 0.0) {
        problems.push(format!("{name}: non-finite or negative latency {l:?}"));
    }
    if !(l.p50_ms <= l.p95_ms && l.p95_ms <= l.p99_ms && l.p99_ms <= l.max_ms) {
        problems.push(format!("{name}: percentiles out of order {l:?}"));
    }
    if l.count != count {
        problems.push(format!("{name}: {} samples, expected {count}", l.count));
    }
}

/// Accumulates the measured frames of one case and builds its summary.
/// Storage is reserved for `frames` (at most
/// [`crate::limits::MAX_PREALLOCATED_FRAMES`]): recording those allocates
/// nothing; a longer run grows its storage as it goes.
pub struct PerfRecorder {
    timing: TimingRecorder,
    memcpy_ms: Vec<f64>,
    scratch: Vec<u8>,
    bytes_in: usize,
    histogram: BTreeMap<String, u64>,
    updated: u64,
    keyframes: u64,
    psnr: Vec<f64>,
    mask_updates: u64,
    mask_latency: Vec<f64>,
    model: Option<ModelWork>,
    decoupled: bool,
    started: Option<Instant>,
    memory: MemorySampler,
}

impl PerfRecorder {
    /// A recorder for up to `frames` measured frames of a pipeline built
    /// from `options`.
    pub fn new(frames: usize, options: &PipelineOptions) -> Self {
        let frames = frames.min(crate::limits::MAX_PREALLOCATED_FRAMES);
        Self {
            timing: TimingRecorder::with_capacity(frames),
            memcpy_ms: Vec::with_capacity(frames),
            scratch: Vec::new(),
            bytes_in: 0,
            histogram: BTreeMap::new(),
            updated: 0,
            keyframes: 0,
            psnr: Vec::with_capacity(frames),
            mask_updates: 0,
            mask_latency: Vec::with_capacity(frames),
            model: None,
            decoupled: options.decoupled,
            started: None,
            memory: MemorySampler::default(),
        }
    }

    /// Starts the measured window (the first call wins).
    pub fn start(&mut self) {
        self.started.get_or_insert_with(Instant::now);
    }

    /// Frames recorded.
    pub fn frames(&self) -> usize {
        self.timing.frames()
    }

    /// Records one measured frame (`report.times` may carry stages the
    /// caller ran after the pipeline: display transfer, upload, UI), and
    /// times a plain memcpy of `frame` as the yardstick.
    pub fn record(&mut self, report: &StepReport, frame: Option<&Frame>) {
        self.start();
        self.timing.record(&report.times);
        self.bytes_in += report.bytes_in;
        *self
            .histogram
            .entry(report.compose.path.as_str().to_string())
            .or_default() += 1;
        self.updated += report.compose.updated_pixels;
        self.keyframes += report.compose.keyframe as u64;
        if let Some(p) = report.compose.psnr_db.filter(|p| p.is_finite()) {
            self.psnr.push(p);
        }
        if let Some(t) = report.mask_times {
            self.mask_updates += 1;
            self.mask_latency.push(t.total().as_secs_f64() * 1e3);
        } else if !self.decoupled {
            self.mask_updates += 1;
        }
        // Inline, the model's work is in the frame's times; decoupled, in
        // the worker's times of the mask that arrived.
        for times in std::iter::once(&report.times).chain(&report.mask_times) {
            if let Some(work) = times.model_work() {
                work.add_into(&mut self.model);
            }
        }
        if let Some(frame) = frame {
            self.memcpy_ms
                .push(time_frame_memcpy(frame, &mut self.scratch).as_secs_f64() * 1e3);
        }
    }

    /// Samples memory when its interval has passed: the process RSS, the
    /// pipeline's pooled bytes and the caller's `staging` bytes.
    pub fn sample_memory(&mut self, pipeline: &FramePipeline, staging: impl FnOnce() -> usize) {
        self.memory
            .maybe_sample(Instant::now(), || pipeline.pooled_bytes(), staging);
    }

    /// The summary of what was recorded, validated.
    pub fn summary(
        &self,
        pipeline: &FramePipeline,
        options: &PipelineOptions,
        meta: &RunMeta,
    ) -> Result<PerfSummary, String> {
        let frames = self.frames();
        let wall_s = self
            .started
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let (dominant_stage, dominant_share) = match self.timing.dominant() {
            Some((stage, share)) => (Some(stage), share),
            None => (None, 0.0),
        };
        let (width, height) = pipeline
            .current_frame()
            .map(|f| (f.width(), f.height()))
            .unwrap_or((options.source.size.width, options.source.size.height));
        let per_frame = |x: f64| if frames > 0 { x / frames as f64 } else { 0.0 };
        let psnr = &self.psnr;
        let mut summary = PerfSummary {
            schema: PERF_SCHEMA.into(),
            case: meta.case.clone(),
            source: pipeline.source_name().to_string(),
            width,
            height,
            frames,
            warmup_frames: meta.warmup_frames,
            wall_s,
            fps: if wall_s > 0.0 {
                frames as f64 / wall_s
            } else {
                0.0
            },
            frame_ms: self.timing.total(),
            stages: self.timing.stages(),
            dominant_stage,
            dominant_share,
            frame_memcpy_ms: LatencySummary::from_ms(&mut self.memcpy_ms.clone()),
            mask_source: options.mask_source.to_string(),
            geometry: options.geometry.to_string(),
            dispatch: options.compositor.dispatch.to_string(),
            gaze_ratio_mean: pipeline.gaze().mean,
            gaze_ratio_ema: pipeline.gaze().ema.value().unwrap_or(0.0),
            keyframes: self.keyframes,
            dispatch_histogram: self.histogram.clone(),
            updated_pixels_per_frame: per_frame(self.updated as f64),
            copied_bytes_per_frame: per_frame(4.0 * self.updated as f64),
            psnr_db_mean: (!psnr.is_empty()).then(|| psnr.iter().sum::<f64>() / psnr.len() as f64),
            psnr_db_min: psnr.iter().copied().reduce(f64::min),
            decoupled: options.decoupled,
            mask_updates: self.mask_updates,
            mask_latency_ms: (!self.mask_latency.is_empty())
                .then(|| LatencySummary::from_ms(&mut self.mask_latency.clone())),
            worker: pipeline.worker_counters(),
            model: self.model.as_ref().and_then(ModelSummary::of),
            transfers: None,
            device_fault: pipeline.device_fault().cloned(),
            source_fps: options.source_fps,
            pace: pipeline.pace_stats(),
            ring: pipeline.ring_counters(),
            bytes_in_per_frame: per_frame(self.bytes_in as f64),
            pooled_bytes: pipeline.pooled_bytes(),
            memory: {
                // One closing sample, so a short run reports its end state.
                let mut memory = self.memory.clone();
                memory.add(crate::memory::MemorySample {
                    rss_bytes: crate::memory::process_rss_bytes(),
                    pooled_bytes: pipeline.pooled_bytes(),
                    staging_bytes: memory.stats().latest.staging_bytes,
                });
                Some(memory.stats())
            },
            decode: pipeline.decode_stats(),
            profile: meta.profile.clone(),
            revision: meta.revision.clone(),
            date: meta.date.clone(),
            machine: meta.machine.clone(),
            adapter: meta.adapter.clone(),
            display: None,
        };
        summary.add_transfers();
        summary.validate().map_err(|problems| {
            format!("{}: invalid summary: {}", summary.case, problems.join("; "))
        })?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask_source::MaskSourceKind;

    /// The summary's model section: the engine's counts per model frame, from
    /// the frames' own times inline.
    #[test]
    fn the_perf_summary_reports_the_models_work() {
        let mut options = PipelineOptions {
            source: crate::source::SourceOptions {
                kind: crate::source::SourceKind::SyntheticLocal,
                size: crate::frame::FrameSize::new(96, 54).unwrap(),
                ..Default::default()
            },
            preprocess: false,
            mask_source: MaskSourceKind::Autogaze,
            ..PipelineOptions::default()
        };
        options.model.gazing_ratio = 0.05;
        let mut pipeline = FramePipeline::new(&options).unwrap();
        pipeline.step().unwrap();
        let mut recorder = PerfRecorder::new(3, &options);
        for _ in 0..3 {
            let r = pipeline.step().unwrap();
            recorder.record(&r, pipeline.current_frame());
        }
        let meta = RunMeta {
            case: "model-work".into(),
            warmup_frames: 1,
            ..Default::default()
        };
        let summary = recorder.summary(&pipeline, &options, &meta).unwrap();
        let model = summary.model.expect("a model section");
        assert_eq!(model.engine, "host");
        assert_eq!(model.frames, 3, "the warm-up frame is not counted");
        assert_eq!(model.decoder_calls_per_frame, 2.0);
        assert_eq!(model.readbacks_per_frame, 4.0);
        assert_eq!(
            (model.dispatches_per_frame, model.dispatches_per_call),
            (None, None)
        );
        assert_eq!(
            (model.upload_bytes_per_frame, model.readback_bytes_per_frame),
            (None, None),
            "the host engine moves nothing to count"
        );
        // Patch-diff has no model section.
        options.mask_source = MaskSourceKind::PatchDiff;
        let mut pipeline = FramePipeline::new(&options).unwrap();
        let mut recorder = PerfRecorder::new(2, &options);
        for _ in 0..2 {
            let r = pipeline.step().unwrap();
            recorder.record(&r, pipeline.current_frame());
        }
        let meta = RunMeta {
            warmup_frames: 0,
            ..meta
        };
        let summary = recorder.summary(&pipeline, &options, &meta).unwrap();
        assert_eq!(summary.model, None);
        let t = summary.transfers.expect("nothing to count is zero");
        assert_eq!(
            (t.upload_bytes_per_frame, t.readback_bytes_per_frame),
            (0.0, 0.0)
        );
        // The host engine does not count its transfers: no total.
        options.mask_source = MaskSourceKind::Autogaze;
        let mut pipeline = FramePipeline::new(&options).unwrap();
        let mut recorder = PerfRecorder::new(1, &options);
        let r = pipeline.step().unwrap();
        recorder.record(&r, pipeline.current_frame());
        let summary = recorder.summary(&pipeline, &options, &meta).unwrap();
        assert_eq!(summary.transfers, None);
        #[cfg(feature = "wgpu")]
        {
            // The fused engine counts: the model's bytes per measured frame.
            options.model.backend = crate::mask_source::ModelBackend::Wgpu;
            let mut pipeline = FramePipeline::new(&options).unwrap();
            let mut recorder = PerfRecorder::new(2, &options);
            for _ in 0..2 {
                let r = pipeline.step().unwrap();
                recorder.record(&r, pipeline.current_frame());
            }
            let summary = recorder.summary(&pipeline, &options, &meta).unwrap();
            let m = summary.model.clone().unwrap();
            let t = summary.transfers.expect("counted");
            assert_eq!(Some(t.upload_bytes_per_frame), m.upload_bytes_per_frame);
            // 13 picks and their task losses.
            assert_eq!(t.readback_bytes_per_frame, 2.0 * 13.0 * 4.0);
            let input = 3.0 * 224.0 * 224.0 * 4.0;
            assert!(t.upload_bytes_per_frame > input, "{t:?}");
            assert_eq!(
                t.upload_frames,
                t.upload_bytes_per_frame / (96.0 * 54.0 * 4.0)
            );
        }
    }
}
