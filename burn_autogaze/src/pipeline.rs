//! The frame pipeline: one call per frame through every stage that exists,
//! returning stage timings and what each stage did. Every front end (perf
//! harness, Bevy plugin, web) drives this one type.
//!
//! source -> ring -> [preprocess] -> mask source (patch-diff) -> mask plan
//! -> interframe composition (dirty regions for the display stage).

use std::time::Duration;

use web_time::Instant;

use crate::device_fault::{DeviceFault, FaultWatch, HostFallback};
use crate::error::Result;
use crate::frame::Frame;
use crate::interframe::{ComposeReport, Compositor, CompositorOptions};
use crate::mask::{MaskGeometry, MaskPlan, MaskPlanner, PlanStats};
use crate::mask_source::{
    MaskSource, MaskSourceKind, MaskTiles, ModelOptions, TokenRect, token_rects,
};
use crate::pacing::{Clock, PaceStats, Pacer, SourceRate, SystemClock};
use crate::patch_diff::PatchDiffOptions;
use crate::preprocess::{ModelInput, Preprocessor};
use crate::quality::GazeStats;
use crate::ring::{FrameRing, RingCounters};
use crate::source::{FrameSource, SourceOptions, open_source};
use crate::timing::{Stage, StageTimes};
use crate::tokens::{GazeTokens, TokenLayout};
use crate::wait::Pending;
use crate::worker::{InferenceWorker, WorkerCounters, WorkerResult};

/// What a pipeline is built from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PipelineOptions {
    /// Where frames come from.
    pub source: SourceOptions,
    /// Frames the ring between source and consumer holds.
    pub ring_capacity: usize,
    /// Produce the model input every frame even for patch-diff (to measure
    /// it); the model source always preprocesses.
    pub preprocess: bool,
    /// Which built-in mask source runs (a host's own replaces it: see
    /// [`FramePipeline::new_with_mask`]).
    pub mask_source: MaskSourceKind,
    /// Settings of patch-diff.
    pub patch_diff: PatchDiffOptions,
    /// Settings of the model mask source.
    pub model: ModelOptions,
    /// How tokens become the update mask.
    pub geometry: MaskGeometry,
    /// Settings of the interframe compositor.
    pub compositor: CompositorOptions,
    /// Run the mask source on a worker thread (latest wins): every frame is
    /// composed at once with the newest mask available, and the display path
    /// never waits for the model. Patch-diff then compares each submitted
    /// frame with a snapshot of the output composed before it (one frame copy
    /// per submission, from a pool).
    pub decoupled: bool,
    /// Paced playback at this rate (none: as fast as possible). A run that
    /// cannot keep up skips frames (counted), never drifts.
    pub source_fps: Option<SourceRate>,
}

/// Output snapshots a decoupled patch-diff pipeline keeps: at most three are
/// in use at once (one the worker runs on, one waiting in its slot, one being
/// filled before the waiting one is replaced). With fewer, a frame that
/// finds them all in use allocated a new one (found by `cargo xtask soak`).
const SNAPSHOT_BUFFERS: usize = 3;

impl PipelineOptions {
    /// The counts and rates of these options against [`crate::limits`]
    /// (front ends parse flags into them; a library user may build them by
    /// hand): every pipeline checks them before it opens anything.
    pub fn check_limits(&self) -> Result<()> {
        use crate::limits::{self as l, at_most};
        let m = &self.model;
        m.check_limits()?;
        at_most(
            "--prefetch",
            self.source.prefetch,
            l::MAX_PREFETCH,
            "MAX_PREFETCH",
        )?;
        let cache_mib = self.source.cache_bytes >> 20;
        at_most("--cache-mib", cache_mib, l::MAX_CACHE_MIB, "MAX_CACHE_MIB")?;
        if let Some(SourceRate::Fps(fps)) = self.source_fps {
            l::fps("--source-fps", fps)?;
        }
        if self.source.fps != 0.0 {
            l::fps("nominal source fps", self.source.fps)?;
        }
        if !self.compositor.host_output && self.mask_source == MaskSourceKind::PatchDiff {
            return Err(crate::error::AutoGazeError::setting(
                "compositor host output",
                "off with patch-diff",
                "on: patch-diff compares each frame with the host output",
            ));
        }
        if let Some(floor) = self.compositor.psnr_floor
            && !floor.is_finite()
        {
            return Err(crate::error::AutoGazeError::setting(
                "--psnr-floor",
                floor,
                "a finite number of dB",
            ));
        }
        Ok(())
    }
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            source: SourceOptions::default(),
            ring_capacity: 2,
            preprocess: false,
            mask_source: MaskSourceKind::default(),
            patch_diff: PatchDiffOptions::default(),
            model: ModelOptions::default(),
            geometry: MaskGeometry::default(),
            compositor: CompositorOptions::default(),
            decoupled: false,
            source_fps: None,
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    /// Sequence number of the frame processed.
    pub seq: u64,
    /// Wall time of each stage.
    pub times: StageTimes,
    /// RGBA bytes that entered the pipeline.
    pub bytes_in: usize,
    /// The plan's counts.
    pub plan: PlanStats,
    /// The compositor's report.
    pub compose: ComposeReport,
    /// Decoupled mode: the frame whose mask is applied (None before the first
    /// result), and the worker's stage times when a new mask arrived this step.
    pub mask_seq: Option<u64>,
    /// Decoupled mode: the worker's stage times, when a new mask arrived.
    pub mask_times: Option<StageTimes>,
}

/// What the mask worker receives: the frame and, for patch-diff, a snapshot
/// of the output composed before it.
struct MaskJob {
    frame: Frame,
    reference: Option<std::sync::Arc<Vec<u8>>>,
}

/// A mask computed off the display thread.
struct MaskUpdate {
    tokens: GazeTokens,
    tiles: MaskTiles,
    times: StageTimes,
}

/// The decoupled mask source's job: one frame's tokens, its readbacks
/// awaited (the worker's thread waits for them; the browser's task yields
/// to the page meanwhile).
fn mask_job(source: &mut Box<dyn MaskSource>, job: MaskJob) -> Pending<'_, Result<MaskUpdate>> {
    Box::pin(async move {
        let mut update = MaskUpdate {
            tokens: GazeTokens::default(),
            tiles: Vec::new(),
            times: StageTimes::default(),
        };
        source
            .tokens_into_async(
                &job.frame,
                job.reference.as_deref().map(Vec::as_slice),
                &mut update.tokens,
                &mut update.tiles,
                &mut update.times,
            )
            .await?;
        Ok(update)
    })
}

/// Source -> ring -> mask -> composition, with buffers reused across steps.
pub struct FramePipeline {
    /// None: frames are pushed by the host ([`FramePipeline::push`]).
    source: Option<Box<dyn FrameSource>>,
    ring: FrameRing,
    preprocess: bool,
    preprocessor: Preprocessor,
    input: ModelInput,
    mask_source: Option<Box<dyn MaskSource>>,
    /// The mask source's device ([`MaskSource::device`]), read when it was
    /// built (a decoupled source lives on the worker).
    mask_device: Option<String>,
    worker: Option<InferenceWorker<MaskJob, MaskUpdate>>,
    /// Decoupled patch-diff: output snapshots handed to the worker.
    snapshots: Option<crate::frame::FramePool>,
    mask_seq: Option<u64>,
    /// The last failure of the mask worker, until taken.
    mask_error: Option<(u64, String)>,
    /// Where the model's device reports a fault (see [`crate::device_fault`]).
    faults: FaultWatch,
    /// The fault, once seen, and the watch's generation it was read at.
    device_fault: Option<DeviceFault>,
    fault_generation: u64,
    pacer: Option<(Pacer, SystemClock)>,
    tokens: GazeTokens,
    tiles: MaskTiles,
    tile_plan: MaskPlan,
    planner: MaskPlanner,
    plan: MaskPlan,
    geometry: MaskGeometry,
    compositor: Compositor,
    gaze: GazeStats,
    current: Option<Frame>,
}

impl FramePipeline {
    /// Opens the source and plans the stages.
    pub fn new(options: &PipelineOptions) -> Result<Self> {
        Self::open(options, None)
    }

    /// As [`FramePipeline::new`], with `mask` as the mask source in place of
    /// the one `options.mask_source` names (decoupled or not as the options
    /// say).
    pub fn new_with_mask(options: &PipelineOptions, mask: Box<dyn MaskSource>) -> Result<Self> {
        Self::open(options, Some(mask))
    }

    fn open(options: &PipelineOptions, mask: Option<Box<dyn MaskSource>>) -> Result<Self> {
        options.check_limits()?;
        let source = open_source(&options.source)?;
        let pace_fps = match options.source_fps {
            None => None,
            Some(SourceRate::Fps(fps)) => Some(fps),
            Some(SourceRate::Native) => Some(source.native_fps().ok_or_else(|| {
                crate::error::AutoGazeError::setting(
                    "source fps",
                    "native",
                    format!(
                        "a source with its own rate ({} has none): give a number",
                        source.name()
                    ),
                )
            })?),
        };
        Self::build(Some(source), pace_fps, options, mask)
    }

    /// A pipeline without a source: the host pushes each frame
    /// ([`FramePipeline::push`]), e.g. from a camera. `options.source` is
    /// ignored; pacing is the host's business, so `source_fps` must be unset.
    pub fn fed(options: &PipelineOptions) -> Result<Self> {
        Self::fed_from(options, None)
    }

    /// As [`FramePipeline::fed`], with `mask` as the mask source in place of
    /// the one `options.mask_source` names.
    pub fn fed_with_mask(options: &PipelineOptions, mask: Box<dyn MaskSource>) -> Result<Self> {
        Self::fed_from(options, Some(mask))
    }

    fn fed_from(options: &PipelineOptions, mask: Option<Box<dyn MaskSource>>) -> Result<Self> {
        options.check_limits()?;
        if let Some(rate) = options.source_fps {
            return Err(crate::error::AutoGazeError::setting(
                "source fps",
                format!("{rate:?}"),
                "none for host-fed frames (the host paces them)",
            ));
        }
        Self::build(None, None, options, mask)
    }

    fn build(
        source: Option<Box<dyn FrameSource>>,
        pace_fps: Option<f64>,
        options: &PipelineOptions,
        mask: Option<Box<dyn MaskSource>>,
    ) -> Result<Self> {
        let preprocessor = Preprocessor::release();
        let layout = TokenLayout::release();
        Self {
            source,
            ring: FrameRing::new(options.ring_capacity)?,
            preprocess: options.preprocess,
            input: ModelInput::new(preprocessor.model_size()),
            preprocessor,
            mask_source: None,
            mask_device: None,
            worker: None,
            snapshots: None,
            mask_seq: None,
            mask_error: None,
            faults: FaultWatch::default(),
            device_fault: None,
            fault_generation: 0,
            pacer: match pace_fps {
                Some(fps) => Some((Pacer::new(fps)?, SystemClock::default())),
                None => None,
            },
            tokens: GazeTokens::with_capacity(layout.tokens() as usize),
            tiles: Vec::new(),
            tile_plan: MaskPlan::default(),
            planner: MaskPlanner::new(layout),
            plan: MaskPlan::default(),
            geometry: options.geometry,
            compositor: Compositor::new(options.compositor),
            gaze: GazeStats::default(),
            current: None,
        }
        .start_mask_source(options, mask)
    }

    fn start_mask_source(
        mut self,
        options: &PipelineOptions,
        mask: Option<Box<dyn MaskSource>>,
    ) -> Result<Self> {
        let source = crate::fail_once::with_test_failure(match mask {
            Some(source) => source,
            None => options
                .mask_source
                .build(options.patch_diff, &options.model)?,
        });
        // The model on a wgpu device hands over to the host model if the
        // device fails (lost, out of memory).
        let source: Box<dyn MaskSource> = if options.mask_source == MaskSourceKind::Autogaze
            && options.model.backend == crate::mask_source::ModelBackend::Wgpu
            && source.device().is_some()
        {
            Box::new(HostFallback::new(
                source,
                &options.model,
                self.faults.clone(),
            ))
        } else {
            source
        };
        self.mask_device = source.device();
        if !options.decoupled {
            self.mask_source = Some(source);
            return Ok(self);
        }
        if source.wants_reference() {
            // Sized on the first frame.
            self.snapshots = Some(crate::frame::FramePool::new(0, SNAPSHOT_BUFFERS));
        }
        self.worker = Some(
            InferenceWorker::spawn_async("autogaze-mask", true, source, mask_job)
                .map_err(|e| crate::error::AutoGazeError::io("mask worker thread", e))?,
        );
        Ok(self)
    }

    /// Pulls one frame from the source through every stage. Paced, it
    /// first sleeps until the frame is due (a harness thread); a display
    /// loop that must not block uses [`FramePipeline::step_when_due`].
    pub fn step(&mut self) -> Result<StepReport> {
        self.pull(true)?.ok_or_else(|| {
            crate::error::AutoGazeError::setting("frame pipeline", "step", "a frame that is due")
        })
    }

    /// Like [`FramePipeline::step`], but never waits: when paced and the
    /// next frame is not due yet, returns `None` and changes nothing.
    /// Unpaced, it always steps.
    pub fn step_when_due(&mut self) -> Result<Option<StepReport>> {
        self.pull(false)
    }

    /// True when frames are paced at a source frame rate.
    pub fn is_paced(&self) -> bool {
        self.pacer.is_some()
    }

    fn pull(&mut self, sleep: bool) -> Result<Option<StepReport>> {
        // Paced and early: nothing to do yet (a decision that waits never
        // skips, so no frame is used up).
        if !sleep
            && let Some((pacer, clock)) = self.pacer.as_mut()
            && !pacer.decide(clock.now()).wait.is_zero()
        {
            return Ok(None);
        }
        let mut times = StageTimes::default();
        // Release the previous frame first so its buffer returns to the pool.
        self.current = None;
        let Some(source) = self.source.as_mut() else {
            return Err(crate::error::AutoGazeError::setting(
                "frame pipeline",
                "step",
                "a source (this pipeline is host-fed: use push)",
            ));
        };
        // Paced: skip what is overdue, wait for what is early.
        let pace = match self.pacer.as_mut() {
            Some((pacer, clock)) => {
                let decision = pacer.decide(clock.now());
                source.skip(decision.skip)?;
                if !decision.wait.is_zero() {
                    std::thread::sleep(decision.wait);
                }
                Some(decision)
            }
            None => None,
        };
        let t = Instant::now();
        let frame = source.next_frame()?;
        times.add(Stage::Source, t.elapsed());
        let report = self.process(frame, times)?;
        if let (Some(decision), Some((pacer, clock))) = (pace, self.pacer.as_mut()) {
            pacer.shown(decision, clock.now());
        }
        Ok(Some(report))
    }

    /// Pushes a host frame through every stage after the source. Its
    /// sequence number must be above the last one's (a repeat or an older
    /// frame is refused and counted as stale by the ring).
    pub fn push(&mut self, frame: Frame) -> Result<StepReport> {
        self.current = None;
        self.process(frame, StageTimes::default())
    }

    fn process(&mut self, frame: Frame, mut times: StageTimes) -> Result<StepReport> {
        let t = Instant::now();
        let seq = frame.seq;
        self.ring.push(frame);
        let frame = self.ring.take_latest();
        times.add(Stage::Buffer, t.elapsed());
        let frame = frame.ok_or_else(|| {
            crate::error::AutoGazeError::setting(
                "frame sequence",
                seq,
                "increasing sequence numbers",
            )
        })?;

        if self.preprocess {
            let t = Instant::now();
            self.preprocessor
                .clip_into(std::slice::from_ref(&frame), &mut self.input)?;
            times.add(Stage::Preprocess, t.elapsed());
        }

        let mut replan = true;
        let mut mask_times = None;
        if let Some(source) = self.mask_source.as_mut() {
            let reference = Some(self.compositor.output()).filter(|o| !o.is_empty());
            self.tokens.clear();
            self.tiles.clear();
            source.tokens_into(
                &frame,
                reference,
                &mut self.tokens,
                &mut self.tiles,
                &mut times,
            )?;
            self.mask_seq = Some(frame.seq);
        } else if let Some(worker) = self.worker.as_mut() {
            // Hand the frame over (no pixel copy; patch-diff also gets a
            // snapshot of the output so far) and apply the newest mask.
            let output = self.compositor.output();
            let reference = match self.snapshots.as_mut() {
                Some(pool) if !output.is_empty() => {
                    if pool.buffer_len() != output.len() {
                        *pool = crate::frame::FramePool::new(output.len(), SNAPSHOT_BUFFERS);
                    }
                    Some(pool.fill(|b| b.copy_from_slice(output)))
                }
                _ => None,
            };
            worker.submit(
                frame.seq,
                MaskJob {
                    frame: frame.clone(),
                    reference,
                },
            );
            replan = self.plan.size() != Some(frame.size());
            match worker.take_latest() {
                Some(WorkerResult::Done { seq, output }) => {
                    self.tokens = output.tokens;
                    self.tiles = output.tiles;
                    self.mask_seq = Some(seq);
                    mask_times = Some(output.times);
                    replan = true;
                }
                // Counted by the worker; kept for the caller to report. The
                // last good mask stays applied.
                Some(WorkerResult::Failed { seq, message }) => {
                    self.mask_error = Some((seq, message));
                }
                None => {}
            }
        }

        if self.faults.generation() != self.fault_generation {
            self.fault_generation = self.faults.generation();
            self.device_fault = self.faults.fault();
            self.mask_device = self.device_fault.as_ref().and_then(|f| f.fallback.clone());
        }

        let t = Instant::now();
        if replan {
            if self.tiles.is_empty() {
                self.planner.plan_into(
                    self.tokens.valid(),
                    frame.size(),
                    self.geometry,
                    &mut self.plan,
                );
            } else {
                self.planner.plan_tiles_into(
                    self.tiles.iter().map(|(r, ids)| (*r, ids.as_slice())),
                    frame.size(),
                    self.geometry,
                    &mut self.tile_plan,
                    &mut self.plan,
                );
            }
        }
        times.add(Stage::MaskPlan, t.elapsed());

        let t = Instant::now();
        let compose = self.compositor.compose(&frame, &self.plan)?;
        times.add(Stage::Interframe, t.elapsed());
        self.gaze.record(compose.coverage, compose.keyframe);

        let report = StepReport {
            seq: frame.seq,
            times,
            bytes_in: frame.rgba().len(),
            plan: self.plan.stats(),
            compose,
            mask_seq: self.mask_seq,
            mask_times,
        };
        self.current = Some(frame);
        Ok(report)
    }

    /// The device the mask source's model runs on, as Burn names it (None:
    /// a host source without a model device, e.g. patch-diff).
    pub fn mask_source_device(&self) -> Option<&str> {
        self.mask_device.as_deref()
    }

    /// The model's device fault, once its device failed and the model moved
    /// to the host ([`crate::device_fault`]).
    pub fn device_fault(&self) -> Option<&DeviceFault> {
        self.device_fault.as_ref()
    }

    /// Where the owner of the model's device reports what it saw (its lost
    /// callback, an out-of-memory error), so the fault names its kind.
    pub fn fault_watch(&self) -> &FaultWatch {
        &self.faults
    }

    /// The frame of the last step.
    pub fn current_frame(&self) -> Option<&Frame> {
        self.current.as_ref()
    }

    /// The composed output (RGBA8).
    pub fn output(&self) -> &[u8] {
        self.compositor.output()
    }

    /// The compositor (dirty regions, path counts, settings).
    pub fn compositor(&self) -> &Compositor {
        &self.compositor
    }

    /// The last mask plan.
    pub fn plan(&self) -> &MaskPlan {
        &self.plan
    }

    /// The tokens of the mask applied to the last frame, with their cells
    /// and pixel rectangles in it ([`token_rects`]).
    pub fn token_rects(&self) -> impl Iterator<Item = TokenRect> + '_ {
        let layout = self.planner.layout();
        self.plan
            .size()
            .into_iter()
            .flat_map(move |size| token_rects(layout, size, &self.tokens, &self.tiles))
    }

    /// The token layout the tokens of [`FramePipeline::token_rects`] are
    /// cells of.
    pub fn token_layout(&self) -> &TokenLayout {
        self.planner.layout()
    }

    /// Size of the source's frames (none when frames are pushed).
    pub fn source_size(&self) -> Option<crate::frame::FrameSize> {
        self.source.as_ref().map(|s| s.size())
    }

    /// The source's own frame rate, when it has one (a video file).
    pub fn native_fps(&self) -> Option<f64> {
        self.source.as_ref().and_then(|s| s.native_fps())
    }

    /// Frames in one loop of a source that repeats a finite clip.
    pub fn loop_len(&self) -> Option<u64> {
        self.source.as_ref().and_then(|s| s.loop_len())
    }

    /// The model input of the last step, when preprocessing is on.
    pub fn model_input(&self) -> &ModelInput {
        &self.input
    }

    /// The preprocessor that fills [`FramePipeline::model_input`].
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    /// True when every frame is preprocessed into the model input.
    pub fn preprocesses(&self) -> bool {
        self.preprocess
    }

    /// Gaze-ratio statistics (keyframes excluded).
    pub fn gaze(&self) -> &GazeStats {
        &self.gaze
    }

    /// The source's name (`host` when frames are pushed).
    pub fn source_name(&self) -> &str {
        self.source.as_ref().map_or("host", |s| s.name())
    }

    /// Changes the mask geometry from the next frame on.
    pub fn set_geometry(&mut self, geometry: MaskGeometry) {
        if geometry != self.geometry {
            self.geometry = geometry;
            // Forces a replan on the next frame.
            self.plan = MaskPlan::default();
        }
    }

    /// The compositor's settings, changeable between frames.
    pub fn compositor_options_mut(&mut self) -> &mut CompositorOptions {
        self.compositor.options_mut()
    }

    /// Pacing counters and the realtime factor (paced mode).
    pub fn pace_stats(&self) -> Option<PaceStats> {
        self.pacer.as_ref().map(|(p, _)| p.stats())
    }

    /// Decode counters of a file source (`images`).
    pub fn decode_stats(&self) -> Option<crate::source::DecodeStats> {
        self.source.as_ref().and_then(|s| s.decode_stats())
    }

    /// Counters of the mask worker (decoupled mode).
    pub fn worker_counters(&self) -> Option<WorkerCounters> {
        self.worker.as_ref().map(|w| w.counters())
    }

    /// The last mask-worker failure (frame and message) since the previous
    /// call, if any.
    pub fn take_mask_error(&mut self) -> Option<(u64, String)> {
        self.mask_error.take()
    }

    /// Ring counters.
    pub fn ring_counters(&self) -> RingCounters {
        self.ring.counters()
    }

    /// Bytes held by pooled buffers (source pools and caches, model input,
    /// compositor output and mask).
    pub fn pooled_bytes(&self) -> usize {
        self.source.as_ref().map_or(0, |s| s.pooled_bytes())
            + std::mem::size_of_val(self.input.data())
            + self.compositor.held_bytes()
            + self.snapshots.as_ref().map_or(0, |p| p.held_bytes())
    }
}

/// Times a plain copy of `frame`'s bytes into `scratch`: the memory-bound
/// yardstick every stage is compared with in the same run.
pub fn time_frame_memcpy(frame: &Frame, scratch: &mut Vec<u8>) -> Duration {
    scratch.resize(frame.rgba().len(), 0);
    let t = Instant::now();
    scratch.copy_from_slice(frame.rgba());
    std::hint::black_box(&scratch);
    t.elapsed()
}

#[cfg(test)]
mod tests;
