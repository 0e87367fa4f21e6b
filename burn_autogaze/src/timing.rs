//! Stage timings, latency percentiles and the perf summary every harness
//! writes (the core harness now, the headless Bevy viewer later: one schema).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A measured stage of the frame's way through the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Producing the frame (render, decode or copy).
    Source,
    /// The frame ring: admission and taking the newest frame.
    Buffer,
    /// Resizing and normalising the frame into the model input.
    Preprocess,
    /// The mask source: patch-diff, or the model (its encode and decode
    /// together). Summaries written before the rename call it `model`.
    #[serde(alias = "model")]
    MaskSource,
    /// Tokens to rectangles and the union's row spans.
    MaskPlan,
    /// The compositor: the planned regions into the output frame.
    Interframe,
    /// A viewer's staging of the display uploads (and the mask panel).
    DisplayTransfer,
    /// A viewer's texture writes (its render world).
    TextureUpload,
    /// A viewer's overlay.
    Ui,
    /// The renderer's frame (a viewer's render world: draw, submit, present;
    /// on a software adapter this is where rasterization runs).
    Render,
}

impl Stage {
    /// Every stage in pipeline order.
    pub const ALL: [Stage; 10] = [
        Stage::Source,
        Stage::Buffer,
        Stage::Preprocess,
        Stage::MaskSource,
        Stage::MaskPlan,
        Stage::Interframe,
        Stage::DisplayTransfer,
        Stage::TextureUpload,
        Stage::Ui,
        Stage::Render,
    ];

    /// snake_case name used in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Source => "source",
            Stage::Buffer => "buffer",
            Stage::Preprocess => "preprocess",
            Stage::MaskSource => "mask_source",
            Stage::MaskPlan => "mask_plan",
            Stage::Interframe => "interframe",
            Stage::DisplayTransfer => "display_transfer",
            Stage::TextureUpload => "texture_upload",
            Stage::Ui => "ui",
            Stage::Render => "render",
        }
    }
}

/// What the model's engine did for one frame, counted by the model (not
/// timed): its decoder calls, the kernel dispatches and transfer bytes of
/// an engine that counts them, and device-to-host readbacks. A frame's counts travel with
/// its [`StageTimes`], so they reach a summary from a mask worker too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ModelWork {
    /// The engine that ran (as registered: `fused-gpu`, `host`, ...).
    pub engine: &'static str,
    /// Frames the model ran (one per frame; a tiled frame is still one).
    pub frames: u64,
    /// Decoder calls (a call over streams in lockstep counts once).
    pub decoder_calls: u64,
    /// Kernel dispatches (None: the engine runs Burn ops, uncounted).
    pub dispatches: Option<u64>,
    /// Device-to-host reads (on Burn's CPU backend each is a copy).
    pub readbacks: u64,
    /// Bytes written from the host for the model: its input and what the
    /// engine uploads (None: an engine that does not count its transfers).
    pub upload_bytes: Option<u64>,
    /// Bytes read back to the host (None: as for `upload_bytes`).
    pub readback_bytes: Option<u64>,
    /// Frames whose input a renderer lent (on the device already: not in
    /// `upload_bytes`).
    pub lent_frames: u64,
}

/// `a - b` of two counts that may be uncounted.
fn diff(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    a.zip(b).map(|(a, b)| a.saturating_sub(b))
}

/// `a + b` of two counts that may be uncounted (one alone when the other is).
fn sum(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

impl ModelWork {
    /// The work done between `before` and `self` (two readings of the
    /// model's running totals), as one frame's.
    pub fn since(&self, before: &ModelWork) -> ModelWork {
        ModelWork {
            engine: self.engine,
            frames: self.frames.saturating_sub(before.frames),
            decoder_calls: self.decoder_calls.saturating_sub(before.decoder_calls),
            dispatches: diff(self.dispatches, before.dispatches),
            readbacks: self.readbacks.saturating_sub(before.readbacks),
            upload_bytes: diff(self.upload_bytes, before.upload_bytes),
            readback_bytes: diff(self.readback_bytes, before.readback_bytes),
            lent_frames: self.lent_frames.saturating_sub(before.lent_frames),
        }
    }

    /// Adds `self` to a running `total` (None: nothing counted yet).
    pub fn add_into(&self, total: &mut Option<ModelWork>) {
        *total = Some(match total {
            Some(before) => before.plus(self),
            None => *self,
        });
    }

    /// `self` and `other` added up (the engine of the later one).
    fn plus(&self, other: &ModelWork) -> ModelWork {
        ModelWork {
            engine: other.engine,
            frames: self.frames + other.frames,
            decoder_calls: self.decoder_calls + other.decoder_calls,
            dispatches: sum(self.dispatches, other.dispatches),
            readbacks: self.readbacks + other.readbacks,
            upload_bytes: sum(self.upload_bytes, other.upload_bytes),
            readback_bytes: sum(self.readback_bytes, other.readback_bytes),
            lent_frames: self.lent_frames + other.lent_frames,
        }
    }
}

/// Wall time of each stage for one frame (stages that did not run are zero
/// and are left out of summaries), and the model's counted work when the
/// model ran.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    times: [Duration; Stage::ALL.len()],
    ran: [bool; Stage::ALL.len()],
    model: Option<ModelWork>,
}

impl StageTimes {
    /// Adds `d` to `stage`.
    pub fn add(&mut self, stage: Stage, d: Duration) {
        self.times[stage as usize] += d;
        self.ran[stage as usize] = true;
    }

    /// Time of `stage` (zero if it did not run).
    pub fn get(&self, stage: Stage) -> Duration {
        self.times[stage as usize]
    }

    /// Sum over stages.
    pub fn total(&self) -> Duration {
        self.times.iter().sum()
    }

    /// Adds the model's counted work for this frame.
    pub fn add_model_work(&mut self, work: ModelWork) {
        work.add_into(&mut self.model);
    }

    /// The model's counted work for this frame, when the model ran.
    pub fn model_work(&self) -> Option<ModelWork> {
        self.model
    }
}

/// Latency statistics in milliseconds. Percentiles use the nearest-rank
/// method on the sorted samples (p-th: the `ceil(p * n)`-th smallest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: usize,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Median (nearest rank), ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest sample, ms.
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarises samples in milliseconds (sorts them in place).
    pub fn from_ms(samples: &mut [f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let rank = |p: f64| samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Self {
            count: n,
            mean_ms: samples.iter().sum::<f64>() / n as f64,
            p50_ms: rank(0.50),
            p95_ms: rank(0.95),
            p99_ms: rank(0.99),
            max_ms: samples[n - 1],
        }
    }
}

/// Collects per-frame stage times and produces summaries. Sample storage is
/// reserved up front (up to [`crate::limits::MAX_PREALLOCATED_FRAMES`]
/// frames): recording those frames allocates nothing; a longer run grows
/// its storage as it goes.
#[derive(Debug, Clone)]
pub struct TimingRecorder {
    stages: Vec<Vec<f64>>,
    totals: Vec<f64>,
    ran: [bool; Stage::ALL.len()],
}

impl TimingRecorder {
    /// A recorder for up to `frames` frames without reallocation (at most
    /// [`crate::limits::MAX_PREALLOCATED_FRAMES`] reserved).
    pub fn with_capacity(frames: usize) -> Self {
        let frames = frames.min(crate::limits::MAX_PREALLOCATED_FRAMES);
        Self {
            stages: (0..Stage::ALL.len())
                .map(|_| Vec::with_capacity(frames))
                .collect(),
            totals: Vec::with_capacity(frames),
            ran: [false; Stage::ALL.len()],
        }
    }

    /// Records one frame.
    pub fn record(&mut self, times: &StageTimes) {
        for stage in Stage::ALL {
            let i = stage as usize;
            self.stages[i].push(times.times[i].as_secs_f64() * 1e3);
            self.ran[i] |= times.ran[i];
        }
        self.totals.push(times.total().as_secs_f64() * 1e3);
    }

    /// Frames recorded.
    pub fn frames(&self) -> usize {
        self.totals.len()
    }

    /// Per-frame total latency.
    pub fn total(&self) -> LatencySummary {
        LatencySummary::from_ms(&mut self.totals.clone())
    }

    /// Summary of every stage that ran at least once.
    pub fn stages(&self) -> BTreeMap<Stage, LatencySummary> {
        Stage::ALL
            .into_iter()
            .filter(|s| self.ran[*s as usize])
            .map(|s| {
                (
                    s,
                    LatencySummary::from_ms(&mut self.stages[s as usize].clone()),
                )
            })
            .collect()
    }

    /// The stage with the largest mean time and its share of the mean total.
    pub fn dominant(&self) -> Option<(Stage, f64)> {
        let stages = self.stages();
        let total: f64 = stages.values().map(|s| s.mean_ms).sum();
        stages
            .into_iter()
            .max_by(|a, b| a.1.mean_ms.total_cmp(&b.1.mean_ms))
            .map(|(s, l)| (s, if total > 0.0 { l.mean_ms / total } else { 0.0 }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = LatencySummary::from_ms(&mut samples);
        assert_eq!(
            (s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms),
            (50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(s.mean_ms, 50.5);
        let one = LatencySummary::from_ms(&mut [3.0]);
        assert_eq!((one.p50_ms, one.p99_ms), (3.0, 3.0));
        assert_eq!(LatencySummary::from_ms(&mut []).count, 0);
    }

    #[test]
    fn recorder_reports_only_stages_that_ran_and_the_dominant_one() {
        let mut rec = TimingRecorder::with_capacity(4);
        for ms in [1u64, 2, 3, 4] {
            let mut t = StageTimes::default();
            t.add(Stage::Source, Duration::from_millis(ms));
            t.add(Stage::Preprocess, Duration::from_millis(3 * ms));
            rec.record(&t);
        }
        let stages = rec.stages();
        assert_eq!(
            stages.keys().copied().collect::<Vec<_>>(),
            vec![Stage::Source, Stage::Preprocess]
        );
        let (stage, share) = rec.dominant().unwrap();
        assert_eq!(stage, Stage::Preprocess);
        assert!((share - 0.75).abs() < 1e-9);
        assert_eq!(rec.total().max_ms, 16.0);
    }

    #[test]
    fn the_mask_source_stage_is_named_for_what_it_times_and_reads_the_old_name() {
        assert_eq!(Stage::MaskSource.as_str(), "mask_source");
        let written = serde_json::to_string(&Stage::MaskSource).unwrap();
        assert_eq!(written, "\"mask_source\"");
        // Summaries written before the rename name the stage `model`, as a
        // map key and as a value.
        let old: BTreeMap<Stage, u32> = serde_json::from_str(r#"{"model": 1}"#).unwrap();
        assert_eq!(old.get(&Stage::MaskSource), Some(&1));
        let stage: Stage = serde_json::from_str("\"model\"").unwrap();
        assert_eq!(stage, Stage::MaskSource);
        for stage in Stage::ALL {
            let name = format!("\"{}\"", stage.as_str());
            assert_eq!(serde_json::from_str::<Stage>(&name).unwrap(), stage);
        }
    }
}
