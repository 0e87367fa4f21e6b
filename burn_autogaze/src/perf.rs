//! The perf summary: one JSON schema for every harness (core now, the
//! headless Bevy viewer later), with its own validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pacing::PaceStats;
use crate::ring::RingCounters;
use crate::timing::{LatencySummary, Stage};
use crate::worker::WorkerCounters;

/// Schema tag written into every summary.
pub const PERF_SCHEMA: &str = "burn_autogaze.perf/1";

/// Results of one harness run (one case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfSummary {
    pub schema: String,
    /// Case name, encoding its parameters (e.g. `core-720p-synthetic-pan`).
    pub case: String,
    pub source: String,
    pub width: u32,
    pub height: u32,
    /// Frames measured (after warm-up).
    pub frames: usize,
    pub warmup_frames: usize,
    /// Wall time of the measured frames, seconds.
    pub wall_s: f64,
    /// Measured frames / wall time.
    pub fps: f64,
    /// Per-frame latency (sum of the stages).
    pub frame_ms: LatencySummary,
    /// Per-stage latency, for the stages that ran.
    pub stages: BTreeMap<Stage, LatencySummary>,
    /// Stage with the largest mean time, and its share of the frame.
    pub dominant_stage: Option<Stage>,
    pub dominant_share: f64,
    /// Plain memcpy of one frame, measured in the same run (the yardstick).
    pub frame_memcpy_ms: LatencySummary,
    /// Mask source (`patch-diff`, later `autogaze`), geometry and dispatch mode.
    pub mask_source: String,
    pub geometry: String,
    pub dispatch: String,
    /// Mean and EMA of the per-frame union coverage (keyframes excluded).
    pub gaze_ratio_mean: f64,
    pub gaze_ratio_ema: f64,
    /// Keyframes among the measured frames.
    pub keyframes: u64,
    /// Compose path taken, per measured frame.
    pub dispatch_histogram: BTreeMap<String, u64>,
    /// Output pixels written and bytes copied, per measured frame.
    pub updated_pixels_per_frame: f64,
    pub copied_bytes_per_frame: f64,
    /// Output-vs-input PSNR (dB, finite frames only) when measured.
    pub psnr_db_mean: Option<f64>,
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
    #[serde(default)]
    pub worker: Option<WorkerCounters>,
    /// Paced playback: source fps, frames shown / dropped / late, realtime factor.
    #[serde(default)]
    pub source_fps: Option<crate::pacing::SourceRate>,
    #[serde(default)]
    pub pace: Option<PaceStats>,
    pub ring: RingCounters,
    /// RGBA bytes that entered the pipeline, per measured frame.
    pub bytes_in_per_frame: f64,
    /// Bytes held by pooled buffers at the end of the run.
    pub pooled_bytes: usize,
    /// Build profile of the harness (`release` for figures that count).
    pub profile: String,
    pub revision: String,
    pub date: String,
    pub machine: String,
    pub adapter: String,
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
        let mut check = |name: &str, l: &LatencySummary, count: usize| {
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
        };
        check("frame_ms", &self.frame_ms, self.frames);
        check("frame_memcpy_ms", &self.frame_memcpy_ms, self.frames);
        for (stage, l) in &self.stages {
            check(stage.as_str(), l, self.frames);
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
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
