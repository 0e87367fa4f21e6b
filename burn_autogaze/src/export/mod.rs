//! `autogaze gaze`: the AutoGaze model over a video file, an image
//! directory or one image, with its results written for research use.
//!
//! One call, [`run_gaze`], streams the input through the frame pipeline
//! (the model as mask source, the interframe compositor) a frame at a time
//! and writes, in `out`:
//! - `gaze.jsonl`: one [`FrameRecord`] a line;
//! - `interframe.mp4`: the composed sparse output (with `side_by_side`:
//!   input | mask | output), encoded by piping raw frames into `ffmpeg`;
//! - `masks/NNNNNN.png` (with `masks`): the updated pixels of each frame;
//! - `summary.json`: a [`GazeSummary`] (stage timings, fps, settings,
//!   revision).
//!
//! Memory stays bounded whatever the input's length: nothing is kept per
//! frame. When `stop` is set (Ctrl-C), the run ends after the current frame
//! and every file is complete for the frames done.

mod progress;
#[cfg(feature = "cli")]
pub mod reference;
mod writers;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use web_time::Instant;

pub use progress::{Progress, format_progress};
pub use writers::{
    FrameRecord, JsonlWriter, Mp4Writer, TokenRecord, mask_image, side_by_side, write_json,
    write_mask_png,
};

use crate::error::{AutoGazeError, Result};
use crate::frame::FrameSize;
use crate::mask::render_panel;
use crate::mask_source::{MaskSourceKind, ModelOptions};
use crate::pipeline::{FramePipeline, PipelineOptions, StepReport};
use crate::source::{CameraOptions, FfmpegTools, SourceKind, SourceOptions, is_image_path};
use crate::timing::Stage;

/// What to run and where to write it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GazeJob {
    /// A video file, a directory of frames, or one image.
    pub input: PathBuf,
    /// Output directory (created).
    pub out: PathBuf,
    /// The model: weights (none: seeded random weights), gazing ratio,
    /// task-loss requirement, AnyRes tiles, backend, horizon.
    pub model: ModelOptions,
    /// At most this many frames (none: the whole input; one for an image).
    pub frames: Option<u64>,
    /// Where a video starts, seconds.
    pub start: f64,
    /// `interframe.mp4` shows input | mask | output.
    pub side_by_side: bool,
    /// Write one mask PNG per frame.
    pub masks: bool,
    /// Frame rate of an input without one (images; the mp4's rate).
    pub fps: f64,
    /// What to ask of a camera (`input` `camera` or `camera:INDEX`; the
    /// index there wins over this one's).
    #[serde(skip)]
    pub camera: CameraOptions,
}

impl Default for GazeJob {
    fn default() -> Self {
        Self {
            input: PathBuf::new(),
            out: PathBuf::from("autogaze-out"),
            model: ModelOptions::default(),
            frames: None,
            start: 0.0,
            side_by_side: false,
            masks: false,
            fps: 30.0,
            camera: CameraOptions::default(),
        }
    }
}

/// Mean and largest time of one stage over the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageSummary {
    /// Mean, ms.
    pub mean_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
    /// Sum, ms.
    pub total_ms: f64,
}

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GazeSummary {
    /// The input, as given.
    pub input: PathBuf,
    /// Which source read it (`video`, `images`, `static`).
    pub source: String,
    /// Frame size.
    pub size: FrameSize,
    /// Frames processed (lines in `gaze.jsonl`, frames in the mp4).
    pub frames: u64,
    /// Frames the input has (when known).
    pub frames_in_input: Option<u64>,
    /// The input's frame rate (the mp4's).
    pub input_fps: f64,
    /// Frames processed a second, wall clock.
    pub fps: f64,
    /// Wall time, seconds.
    pub elapsed_s: f64,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
    /// The error that ended the run early, if any (the frames before it
    /// are written).
    pub error: Option<String>,
    /// Mean gaze ratio (keyframe excluded when there are other frames).
    pub mean_gaze_ratio: f64,
    /// Per stage of the pipeline, plus `write` (the output files).
    pub stages: std::collections::BTreeMap<String, StageSummary>,
    /// The job's settings.
    pub settings: GazeJob,
    /// Crate version and source revision.
    pub revision: String,
}

/// The revision of this build: the crate version and, when the sources are
/// a git checkout, its commit.
pub fn revision() -> String {
    let version = env!("CARGO_PKG_VERSION");
    let commit = std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match commit {
        Some(c) if !c.is_empty() => format!("{version} ({c})"),
        _ => version.to_string(),
    }
}

/// The camera index `input` names (`camera`, `camera:INDEX`), when it is
/// no file.
fn camera_input(input: &std::path::Path) -> Option<u32> {
    if input.exists() {
        return None;
    }
    match input.to_str()? {
        "camera" => Some(0),
        s => s.strip_prefix("camera:")?.parse().ok(),
    }
}

/// The source options for `input`: a directory is `images`, a PNG/JPEG
/// file `static`, `camera` / `camera:INDEX` (no such file) the camera
/// (until `frames` or Ctrl-C), any other file `video` (not looping).
pub fn input_source(job: &GazeJob) -> Result<SourceOptions> {
    let input = &job.input;
    if let Some(index) = camera_input(input) {
        return Ok(SourceOptions {
            kind: SourceKind::Camera,
            fps: job.camera.fps.unwrap_or(job.fps),
            camera: CameraOptions {
                index,
                ..job.camera.clone()
            },
            ..SourceOptions::default()
        });
    }
    let kind = if input.is_dir() {
        SourceKind::Images
    } else if is_image_path(input) {
        SourceKind::Static
    } else {
        SourceKind::Video
    };
    Ok(SourceOptions {
        kind,
        path: Some(input.clone()),
        fps: job.fps,
        start: job.start,
        looping: false,
        // A small cache: each frame is read once.
        cache_bytes: 64 << 20,
        ..SourceOptions::default()
    })
}

/// Running sums of the stage times.
#[derive(Debug, Default)]
struct StageSums {
    sums: std::collections::BTreeMap<String, StageSummary>,
    frames: u64,
}

impl StageSums {
    fn add(&mut self, name: &str, d: Duration) {
        let ms = d.as_secs_f64() * 1e3;
        let s = self.sums.entry(name.to_string()).or_default();
        s.total_ms += ms;
        s.max_ms = s.max_ms.max(ms);
    }

    fn record(&mut self, report: &StepReport, write: Duration) {
        self.frames += 1;
        for stage in Stage::ALL {
            let d = report.times.get(stage);
            if !d.is_zero() {
                self.add(stage.as_str(), d);
            }
        }
        self.add("write", write);
    }

    fn summary(mut self) -> std::collections::BTreeMap<String, StageSummary> {
        let n = self.frames.max(1) as f64;
        for s in self.sums.values_mut() {
            s.mean_ms = s.total_ms / n;
        }
        self.sums
    }
}

/// The open output files.
struct Outputs {
    jsonl: JsonlWriter,
    mp4: Option<Mp4Writer>,
    masks: Option<PathBuf>,
    mask: Vec<u8>,
    panel: Vec<u8>,
    wide: Vec<u8>,
}

impl Outputs {
    fn open(job: &GazeJob, size: FrameSize, fps: f64) -> Result<Self> {
        std::fs::create_dir_all(&job.out).map_err(|e| AutoGazeError::io(&job.out, e))?;
        let masks = if job.masks {
            let dir = job.out.join("masks");
            std::fs::create_dir_all(&dir).map_err(|e| AutoGazeError::io(&dir, e))?;
            Some(dir)
        } else {
            None
        };
        let video_size = if job.side_by_side {
            FrameSize::new(size.width.saturating_mul(3), size.height)?
        } else {
            size
        };
        let mp4 = Mp4Writer::spawn(
            &FfmpegTools::from_env(),
            &job.out.join("interframe.mp4"),
            video_size,
            fps,
        )?;
        Ok(Self {
            jsonl: JsonlWriter::create(&job.out.join("gaze.jsonl"))?,
            mp4: Some(mp4),
            masks,
            mask: Vec::new(),
            panel: Vec::new(),
            wide: Vec::new(),
        })
    }

    /// Writes the frame the pipeline just processed.
    fn write(
        &mut self,
        pipeline: &FramePipeline,
        record: &FrameRecord,
        job: &GazeJob,
    ) -> Result<()> {
        self.jsonl.write(record)?;
        let Some(frame) = pipeline.current_frame() else {
            return Ok(());
        };
        let size = frame.size();
        if let Some(dir) = &self.masks {
            mask_image(pipeline.plan(), size, &mut self.mask);
            let path = dir.join(format!("{:06}.png", record.index));
            write_mask_png(&path, size, &self.mask)?;
        }
        let Some(mp4) = self.mp4.as_mut() else {
            return Ok(());
        };
        if job.side_by_side {
            self.panel.resize(size.rgba_len(), 0);
            render_panel(frame, pipeline.plan(), &mut self.panel)?;
            side_by_side(
                size,
                &[frame.rgba(), &self.panel, pipeline.output()],
                &mut self.wide,
            );
            mp4.write(&self.wide)
        } else {
            mp4.write(pipeline.output())
        }
    }

    /// Closes the mp4 (the encoder writes a complete file).
    fn finish(&mut self) -> Result<()> {
        match self.mp4.take() {
            Some(mp4) => mp4.finish().map(|_| ()),
            None => Ok(()),
        }
    }
}

/// The record of the frame the pipeline just processed.
fn frame_record(pipeline: &FramePipeline, index: u64, report: &StepReport) -> FrameRecord {
    let layout = pipeline.token_layout();
    let tokens: Vec<TokenRecord> = pipeline
        .token_rects()
        .map(|t| TokenRecord {
            id: layout
                .encode(t.cell.scale as usize, t.cell.row as u32, t.cell.col as u32)
                .unwrap_or(layout.pad_id()),
            scale: t.cell.scale,
            grid: t.cell.grid,
            row: t.cell.row,
            col: t.cell.col,
            rect: [t.rect.x0, t.rect.y0, t.rect.x1, t.rect.y1],
            padded: t.padded,
        })
        .collect();
    let size = pipeline.current_frame().map(|f| f.size());
    let pixels = size.map_or(1, |s| s.pixels()) as f64;
    FrameRecord {
        index,
        pts: pipeline
            .current_frame()
            .map_or(0.0, |f| f.timestamp.as_secs_f64()),
        tokens_before_stop: tokens.iter().filter(|t| !t.padded).count(),
        tokens,
        gaze_ratio: report.plan.updated_pixels as f64 / pixels,
        keyframe: report.compose.keyframe,
    }
}

/// Runs `job`, calling `progress` after every frame; stops early when
/// `stop` is set. The files are complete for the frames done, also when
/// an input error (a truncated video) ends the run: the summary then names
/// it and the error is returned after it is written.
pub fn run_gaze(
    job: &GazeJob,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<GazeSummary> {
    let start = Instant::now();
    let source = input_source(job)?;
    let options = PipelineOptions {
        source: source.clone(),
        mask_source: MaskSourceKind::Autogaze,
        model: job.model.clone(),
        decoupled: false,
        ..PipelineOptions::default()
    };
    let mut pipeline = FramePipeline::new(&options)?;
    let size = pipeline.source_size().unwrap_or(source.size);
    let input_fps = pipeline.native_fps().unwrap_or(job.fps);
    let in_input = match source.kind {
        SourceKind::Static => Some(1),
        _ => pipeline.loop_len(),
    };
    let total = match (job.frames, in_input) {
        (Some(n), Some(m)) if source.kind != SourceKind::Static => Some(n.min(m)),
        (Some(n), _) => Some(n),
        (None, m) => m,
    };
    let mut outputs = Outputs::open(job, size, input_fps)?;
    let mut sums = StageSums::default();
    let (mut done, mut ratio_sum, mut ratio_n) = (0u64, 0.0, 0u64);
    let mut failure = None;
    while total.is_none_or(|t| done < t) && !stop.load(Ordering::Relaxed) {
        let report = match pipeline.step() {
            Ok(report) => report,
            Err(AutoGazeError::EndOfStream { .. }) => break,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let t = Instant::now();
        let record = frame_record(&pipeline, done, &report);
        if let Err(e) = outputs.write(&pipeline, &record, job) {
            failure = Some(e);
            break;
        }
        sums.record(&report, t.elapsed());
        if !record.keyframe {
            ratio_sum += record.gaze_ratio;
            ratio_n += 1;
        }
        done += 1;
        progress(&Progress {
            done,
            total,
            elapsed: start.elapsed(),
        });
    }
    let finished = outputs.finish();
    let elapsed = start.elapsed().as_secs_f64();
    let summary = GazeSummary {
        input: job.input.clone(),
        source: pipeline.source_name().to_string(),
        size,
        frames: done,
        frames_in_input: in_input,
        input_fps,
        fps: if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        },
        elapsed_s: elapsed,
        interrupted: stop.load(Ordering::Relaxed),
        error: failure.as_ref().map(|e| e.to_string()),
        mean_gaze_ratio: if ratio_n > 0 {
            ratio_sum / ratio_n as f64
        } else {
            1.0
        },
        stages: sums.summary(),
        settings: job.clone(),
        revision: revision(),
    };
    write_json(&job.out.join("summary.json"), &summary)?;
    finished?;
    match failure {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}
